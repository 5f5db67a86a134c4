// Settings → API tokens (`/tokens`): the caller's tokens (everyone's for admins) with role,
// scopes, expiry and state; revoke; create one with at most the caller's role. A new token
// is shown once, in a dialog with a copy button, and is gone from the page when the dialog
// closes (the node keeps only its hash).

import { get, post, del } from '../lib/api.js';
import { h, mount, field, when } from '../lib/dom.js';
import { errorBox, table, toast, confirmDialog, modal, copyButton, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';

export async function tokensTab(panel, ctx) {
  const me = ctx.app.me;
  const box = h('div', {}, loading());
  panel.append(h('section', { class: 'card' }, h('h2', {}, 'API tokens'),
    h('p', { class: 'muted small' }, 'For scripts, the CLI and agents: send as Authorization: Bearer <token>. Tokens are shown once.'), box), createForm());

  async function draw() {
    let tokens;
    try {
      tokens = await get('/tokens');
    } catch (err) {
      mount(box, errorBox(err));
      return;
    }
    tokens.sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
    mount(box, table([
      { label: 'Name', cell: (t) => h('strong', {}, t.name) },
      { label: 'Role', cell: (t) => t.role },
      { label: 'Scopes', cell: (t) => (t.scopes.length ? t.scopes.map((s, i) => [i ? ' ' : null, h('code', {}, s)]) : 'everything the role allows') },
      { label: 'Created', cell: (t) => when(t.created_at) },
      { label: 'Expires', cell: (t) => (t.expires_at ? when(t.expires_at) : 'never') },
      { label: 'State', cell: (t) => h('span', { class: `badge ${t.revoked ? 'bad' : 'ok'}` }, t.revoked ? 'revoked' : 'active') },
      { label: 'Actions', cell: (t) => (t.revoked ? null : h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Revoke ${t.name}`, on: { click: (e) => busy(e.target, async () => {
        if (!await confirmDialog(`Revoke ${t.name}?`, 'Anything using this token stops working at once.', 'Revoke')) return;
        await del(`/tokens/${t.id}`);
        toast(`Revoked ${t.name}`, 'ok');
        draw();
      }) } }, 'Revoke')) },
    ], tokens, { empty: 'No API tokens yet.', rowClass: (t) => (t.revoked ? 'revoked' : null), caption: 'API tokens' }));
  }

  function createForm() {
    const roles = ['owner', 'admin', 'member', 'viewer'].filter((r) => atLeast(me.role, r));
    const name = h('input', { type: 'text', required: true, maxlength: 64, autocomplete: 'off', placeholder: 'backup script' });
    const role = h('select', {}, [...roles, 'agent'].map((r) => h('option', { value: r, selected: r === 'member' || (r === roles[roles.length - 1] && !roles.includes('member')) }, r)));
    const agent = h('input', { type: 'text', maxlength: 128, placeholder: 'kBridge:mail', spellcheck: 'false' });
    const agentField = field('Agent id', agent, 'kClass:name, for agent tokens');
    agentField.hidden = true;
    role.addEventListener('change', () => { agentField.hidden = role.value !== 'agent'; agent.required = role.value === 'agent'; });
    const scopes = h('input', { type: 'text', placeholder: 'events:write, secrets:read', spellcheck: 'false' });
    const days = h('input', { type: 'number', min: '1', max: '3650', step: '1', placeholder: 'never' });
    const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Create token');
    return h('form', { class: 'card', on: { submit: (e) => { e.preventDefault(); busy(submit, async () => {
      const body = { name: name.value.trim(), role: role.value, scopes: scopes.value.split(',').map((s) => s.trim()).filter(Boolean) };
      if (role.value === 'agent') body.agent = agent.value.trim();
      if (days.value) body.ttl_secs = Number(days.value) * 86400;
      const created = await post('/tokens', body);
      name.value = '';
      draw();
      await showOnce(created);
    }); } } },
    h('h2', {}, 'New token'),
    h('div', { class: 'form-grid' }, field('Name', name), field('Role', role, 'At most your own role'), agentField,
      field('Scopes', scopes, 'Comma-separated; empty: everything the role allows'), field('Expires after (days)', days)),
    submit);
  }

  async function showOnce(created) {
    const value = h('div', { class: 'token-once', id: 'new-token', tabindex: '0' }, created.token);
    await modal('Your new token', h('div', {},
      h('p', {}, 'Copy it now: it is shown only this once, and the node keeps only its hash.'),
      value, h('div', { class: 'row' }, copyButton(created.token, 'Copy token')),
      h('p', { class: 'muted small' }, `Name ${created.info.name} · role ${created.info.role}`)),
    [{ label: 'I have copied it', value: true, primary: true }]);
  }

  await draw();
}
