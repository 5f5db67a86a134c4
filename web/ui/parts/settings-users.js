// Settings → Users and roles (`/users`, admins): every account with its role, disable or
// enable, change the role, delete, and create one. Only owners may grant the owner role;
// nobody changes their own role or disables or deletes themselves (the node refuses too).

import { get, post, patch, del } from '../lib/api.js';
import { h, mount, field, when } from '../lib/dom.js';
import { errorBox, table, toast, confirmDialog, loading, busy } from '../lib/ui.js';

const ROLES = ['owner', 'admin', 'member', 'viewer'];
const ROLE_TEXT = {
  owner: 'everything, including vault keys and other owners',
  admin: 'users, audit, configuration, secret policies, sealing',
  member: 'chat, secrets, events and their own API tokens',
  viewer: 'reads the dashboard, events and chat models',
};

export async function usersTab(panel, ctx) {
  const me = ctx.app.me;
  const box = h('div', {}, loading());
  panel.append(h('section', { class: 'card' }, h('h2', {}, 'Users'), box),
    h('section', { class: 'card' }, h('h2', {}, 'Roles'),
      h('dl', { class: 'kv' }, ROLES.map((r) => [h('dt', {}, r), h('dd', {}, ROLE_TEXT[r])])),
      h('p', { class: 'muted small' }, 'Agents get agent tokens (API tokens tab) with their own narrow role.')),
    createForm());
  const grantable = ROLES.filter((r) => r !== 'owner' || me.role === 'owner');

  async function draw() {
    let users;
    try {
      users = await get('/users');
    } catch (err) {
      mount(box, errorBox(err));
      return;
    }
    mount(box, table([
      { label: 'User', cell: (u) => h('span', {}, h('strong', {}, u.username), u.display_name ? h('span', { class: 'muted' }, ` ${u.display_name}`) : null) },
      { label: 'Role', cell: (u) => {
        const self = u.id === me.id;
        if (self || (u.role === 'owner' && me.role !== 'owner')) return u.role;
        const select = h('select', { 'aria-label': `Role of ${u.username}` }, grantable.map((r) => h('option', { value: r, selected: r === u.role }, r)));
        select.addEventListener('change', () => busy(select, async () => {
          try {
            await patch(`/users/${u.id}`, { role: select.value });
            toast(`${u.username} is now ${select.value}`, 'ok');
          } finally { draw(); }
        }));
        return select;
      } },
      { label: 'State', cell: (u) => h('span', { class: `badge ${u.disabled ? 'bad' : 'ok'}` }, u.disabled ? 'disabled' : 'active') },
      { label: 'Created', cell: (u) => when(u.created_at) },
      { label: 'Actions', cell: (u) => (u.id === me.id ? h('span', { class: 'muted small' }, 'you')
        : (u.role === 'owner' && me.role !== 'owner') ? null : [
          h('button', { type: 'button', class: 'btn small', on: { click: (e) => busy(e.target, async () => {
            await patch(`/users/${u.id}`, { disabled: !u.disabled });
            toast(`${u.username} ${u.disabled ? 'enabled' : 'disabled'}`, 'ok');
            draw();
          }) } }, u.disabled ? 'Enable' : 'Disable'),
          h('button', { type: 'button', class: 'btn small danger', on: { click: (e) => busy(e.target, async () => {
            if (!await confirmDialog(`Delete ${u.username}?`, 'The account and its sessions are removed.', 'Delete')) return;
            await del(`/users/${u.id}`);
            toast(`Deleted ${u.username}`, 'ok');
            draw();
          }) } }, 'Delete')]) },
    ], users, { caption: 'Users' }));
  }

  function createForm() {
    const username = h('input', { type: 'text', required: true, maxlength: 64, autocomplete: 'off', spellcheck: 'false' });
    const password = h('input', { type: 'password', required: true, minlength: 12, autocomplete: 'new-password' });
    const role = h('select', {}, ROLES.filter((r) => r !== 'owner' || me.role === 'owner').map((r) => h('option', { value: r, selected: r === 'member' }, r)));
    const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Create user');
    return h('form', { class: 'card', on: { submit: (e) => { e.preventDefault(); busy(submit, async () => {
      await post('/users', { username: username.value.trim(), password: password.value, role: role.value });
      toast(`Created ${username.value.trim()}`, 'ok');
      username.value = '';
      password.value = '';
      draw();
    }); } } },
    h('h2', {}, 'New user'),
    h('div', { class: 'form-grid' }, field('Username', username), field('Password', password, 'At least 12 characters'), field('Role', role)),
    submit);
  }

  await draw();
}
