// Vault: its state (`/vault/status`), seal, and the secrets (`/vault/secrets`): names,
// versions, expiry and policies. Values are never fetched or shown unless the user clicks
// Reveal, which appears only when the user's role and the secret's policy allow reading; a
// revealed value hides itself again after 30 seconds. Add or replace a secret, edit its
// policy (admins), delete it.

import { get, put, del, post } from '../lib/api.js';
import { h, mount, field, when } from '../lib/dom.js';
import { errorBox, toast, table, confirmDialog, modal, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';
import { unlockForm } from '../parts/unlock-form.js';

const REVEAL_MS = 30_000;

/** Mirrors the node's rule (kai-core secret_policy): owner/admin always; else `read` grants. */
function mayRead(me, policy) {
  if (me.role === 'owner' || me.role === 'admin') return true;
  const g = policy?.read || {};
  return (g.roles || []).includes(me.role) || (g.users || []).includes(me.id);
}

function grantText(g) {
  const parts = [];
  if (g?.roles?.length) parts.push(`roles ${g.roles.join(', ')}`);
  if (g?.users?.length) parts.push(`users ${g.users.join(', ')}`);
  if (g?.agents?.length) parts.push(`agents ${g.agents.join(', ')}`);
  return parts.join('; ') || 'owner and admins only';
}

function listInput(values) {
  return h('input', { type: 'text', value: (values || []).join(', '), spellcheck: 'false' });
}
const splitList = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

async function editPolicy(secret) {
  const p = secret.policy || {};
  const inputs = {
    readRoles: listInput(p.read?.roles), readUsers: listInput(p.read?.users), readAgents: listInput(p.read?.agents),
    useRoles: listInput(p.use?.roles), useUsers: listInput(p.use?.users), useAgents: listInput(p.use?.agents),
  };
  const content = h('div', {},
    h('p', { class: 'muted small' }, 'Comma-separated. Read returns the value; use lets the node inject it for the caller without showing it. Owners and admins may always do both.'),
    h('h3', {}, 'Who may read'),
    field('Roles', inputs.readRoles, 'member, viewer'), field('User ids', inputs.readUsers), field('Agents', inputs.readAgents, 'kClass:name'),
    h('h3', {}, 'Who may only use'),
    field('Roles', inputs.useRoles), field('User ids', inputs.useUsers), field('Agents', inputs.useAgents));
  const policy = await modal(`Policy of ${secret.name}`, content, [
    { label: 'Cancel', value: null },
    { label: 'Save policy', primary: true, submit: true, value: () => ({
      read: { roles: splitList(inputs.readRoles.value), users: splitList(inputs.readUsers.value), agents: splitList(inputs.readAgents.value) },
      use: { roles: splitList(inputs.useRoles.value), users: splitList(inputs.useUsers.value), agents: splitList(inputs.useAgents.value) },
    }) },
  ]);
  if (!policy) return false;
  await put(`/vault/secrets/${encodeURIComponent(secret.name)}/policy`, policy);
  toast('Policy saved', 'ok');
  return true;
}

async function showVersions(secret) {
  const versions = await get(`/vault/secrets/${encodeURIComponent(secret.name)}/versions`);
  await modal(`Versions of ${secret.name}`, table([
    { label: 'Version', num: true, cell: (v) => String(v.version) },
    { label: 'Created', cell: (v) => when(v.created_at) },
    { label: 'By', cell: (v) => v.created_by },
    { label: 'Expires', cell: (v) => (v.expires_at ? `${when(v.expires_at)}${v.expired ? ' (expired)' : ''}` : 'never') },
  ], versions));
}

export default {
  async mount(root, ctx) {
    const me = ctx.app.me;
    const statusBox = h('div', {}, loading());
    const secretsBox = h('div', {});
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Vault')), h('div', { class: 'grid' }, statusBox), secretsBox);
    const timers = new Set();

    async function drawStatus() {
      try {
        const s = await get('/vault/status', undefined, { auth: false });
        const sealBtn = atLeast(me.role, 'admin') && s.state === 'unsealed'
          ? h('button', { type: 'button', class: 'btn danger', on: { click: seal } }, 'Seal the vault') : null;
        mount(statusBox, h('section', { class: 'card', 'aria-labelledby': 'vs-h' },
          h('h2', { id: 'vs-h' }, 'Status'),
          h('dl', { class: 'kv' },
            h('dt', {}, 'State'), h('dd', {}, h('span', { class: `badge ${s.state === 'unsealed' ? 'ok' : 'bad'}`, id: 'vault-state' }, s.state)),
            h('dt', {}, 'Key generation'), h('dd', {}, String(s.generation ?? '—')),
            h('dt', {}, 'Rekey pending'), h('dd', {}, s.rekey_pending ? 'yes' : 'no'),
            h('dt', {}, 'Unlock key file'), h('dd', {}, s.key_file_slot ? 'yes (the node can start unattended)' : 'no (the passphrase is needed at start)')),
          s.state === 'unsealed' ? null : unlockForm(() => window.dispatchEvent(new CustomEvent('kai:unsealed'))),
          sealBtn ? h('div', { class: 'row' }, sealBtn, h('span', { class: 'muted small' }, 'Sealing forgets every key; the node then answers only health and unlock.')) : null));
      } catch (err) {
        mount(statusBox, errorBox(err));
      }
    }

    async function seal(e) {
      if (!await confirmDialog('Seal the vault?', 'Every key is forgotten and every page stops working until someone unlocks the vault with its passphrase or unlock key.', 'Seal')) return;
      await busy(e.target, async () => {
        await post('/vault/seal');
        window.dispatchEvent(new CustomEvent('kai:sealed'));
      });
    }

    function revealCell(secret) {
      const cell = h('span', {});
      const reveal = h('button', { type: 'button', class: 'btn small', 'aria-label': `Reveal the value of ${secret.name}` }, 'Reveal');
      reveal.addEventListener('click', () => busy(reveal, async () => {
        const v = await get(`/vault/secrets/${encodeURIComponent(secret.name)}`);
        const value = h('code', { class: 'secret-value', 'data-secret': secret.name }, v.value);
        const hide = h('button', { type: 'button', class: 'btn small' }, 'Hide');
        const done = () => { clearTimeout(timer); timers.delete(timer); mount(cell, reveal); reveal.focus(); };
        const timer = setTimeout(done, REVEAL_MS);
        timers.add(timer);
        hide.addEventListener('click', done);
        mount(cell, value, ' ', hide);
        hide.focus();
      }));
      cell.append(reveal);
      return cell;
    }

    async function drawSecrets() {
      if (!atLeast(me.role, 'member')) {
        mount(secretsBox, h('section', { class: 'card' }, h('h2', {}, 'Secrets'), h('p', { class: 'muted' }, `Your role (${me.role}) may not list secrets.`)));
        return;
      }
      let secrets;
      try {
        secrets = await get('/vault/secrets');
      } catch (err) {
        mount(secretsBox, h('section', { class: 'card' }, h('h2', {}, 'Secrets'), errorBox(err)));
        return;
      }
      const admin = atLeast(me.role, 'admin');
      const actions = (s) => {
        const out = [];
        out.push(h('button', { type: 'button', class: 'btn small', on: { click: (e) => busy(e.target, () => showVersions(s)) } }, 'Versions'));
        if (admin) out.push(h('button', { type: 'button', class: 'btn small', on: { click: (e) => busy(e.target, async () => { if (await editPolicy(s)) drawSecrets(); }) } }, 'Policy'));
        out.push(h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Delete ${s.name}`, on: { click: (e) => busy(e.target, async () => {
          if (!await confirmDialog(`Delete ${s.name}?`, 'Every version of this secret is deleted.', 'Delete')) return;
          await del(`/vault/secrets/${encodeURIComponent(s.name)}`);
          toast(`Deleted ${s.name}`, 'ok');
          drawSecrets();
        }) } }, 'Delete'));
        return out;
      };
      mount(secretsBox, h('section', { class: 'card', 'aria-labelledby': 'sec-h' },
        h('h2', { id: 'sec-h' }, 'Secrets'),
        h('p', { class: 'muted small' }, 'Names and policies only. A value is fetched when you click Reveal (the read is audited).'),
        table([
          { label: 'Name', cell: (s) => h('code', {}, s.name) },
          { label: 'Version', num: true, cell: (s) => String(s.version) },
          { label: 'Updated', cell: (s) => when(s.created_at) },
          { label: 'Expires', cell: (s) => (s.expires_at ? when(s.expires_at) : 'never') },
          { label: 'Read', cell: (s) => grantText(s.policy?.read) },
          { label: 'Use', cell: (s) => grantText(s.policy?.use) },
          { label: 'Value', cell: (s) => (mayRead(me, s.policy) ? revealCell(s) : h('span', { class: 'muted' }, 'hidden by policy')) },
          { label: 'Actions', cell: actions },
        ], secrets, { empty: 'No secrets yet.', caption: 'Secrets' }),
        addForm()));
    }

    function addForm() {
      const name = h('input', { type: 'text', required: true, maxlength: 128, spellcheck: 'false', autocomplete: 'off', placeholder: 'openai/api-key' });
      const value = h('input', { type: 'password', required: true, autocomplete: 'new-password', maxlength: 65536 });
      const ttl = h('input', { type: 'number', min: '1', step: '1', placeholder: 'never' });
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Save secret');
      return h('form', { on: { submit: (e) => { e.preventDefault(); busy(submit, async () => {
        const body = { value: value.value };
        if (ttl.value) body.ttl_secs = Number(ttl.value);
        await put(`/vault/secrets/${encodeURIComponent(name.value.trim())}`, body);
        toast(`Saved ${name.value.trim()}`, 'ok');
        value.value = '';
        name.value = '';
        ttl.value = '';
        drawSecrets();
      }); } } },
      h('h3', {}, 'Add or replace a secret'),
      h('div', { class: 'form-grid' }, field('Name', name), field('Value', value), field('Expires after (seconds)', ttl)),
      submit);
    }

    await drawStatus();
    await drawSecrets();
    return () => { for (const t of timers) clearTimeout(t); };
  },
};
