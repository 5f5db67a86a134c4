// Settings, in tabs (the tab is in the URL: `#/settings?tab=tokens`): preferences and theme,
// the account's password, providers and personas and the whole effective configuration with
// its sources and any rejected edit's validation problems (`/system/config`, admins), users
// and roles (`/users`, admins) and API tokens (`/tokens`, members and up).

import { get, post } from '../lib/api.js';
import { h, field } from '../lib/dom.js';
import { toast, tabs, busy } from '../lib/ui.js';
import { session } from '../lib/session.js';
import * as prefs from '../lib/prefs.js';
import * as keys from '../lib/keys.js';
import { atLeast } from '../pages.js';
import { configTab } from '../parts/settings-config.js';
import { usersTab } from '../parts/settings-users.js';
import { tokensTab } from '../parts/settings-tokens.js';

async function preferencesTab(panel, ctx) {
  const current = prefs.theme();
  const radios = ['system', 'light', 'dark'].map((t) => h('label', { class: 'check' },
    h('input', { type: 'radio', name: 'theme', value: t, checked: t === current }), { system: 'Follow the system', light: 'Light', dark: 'Dark' }[t]));
  let personas = [];
  try { personas = (await get('/v1/models')).data || []; } catch { personas = []; }
  const persona = h('select', {}, h('option', { value: '' }, 'The node’s default'),
    personas.map((p) => h('option', { value: p.id, selected: ctx.app.prefs.persona === p.id }, p.id)));
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Save preferences');
  panel.append(h('form', { class: 'card', on: { submit: (e) => { e.preventDefault(); busy(submit, async () => {
    const theme = panel.querySelector('input[name="theme"]:checked')?.value || 'system';
    prefs.applyTheme(theme);
    await prefs.save({ theme, persona: persona.value || undefined });
    toast('Preferences saved', 'ok');
  }); } } },
  h('h2', {}, 'Preferences'),
  h('fieldset', { class: 'field' }, h('legend', {}, h('strong', {}, 'Theme')), radios),
  field('Persona for new threads', persona),
  h('div', { class: 'row' }, submit,
    h('button', { type: 'button', class: 'btn', on: { click: () => keys.showHelp() } }, 'Keyboard shortcuts…')),
  h('p', { class: 'muted small' }, 'Preferences are stored on the node with your account, so they follow you to other browsers.')));
}

function accountTab(panel, ctx) {
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 12 });
  const again = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 12 });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Change password');
  const me = ctx.app.me;
  panel.append(h('section', { class: 'card' }, h('h2', {}, 'Account'),
    h('dl', { class: 'kv' },
      h('dt', {}, 'User'), h('dd', {}, me.user?.username || me.id),
      h('dt', {}, 'Role'), h('dd', {}, me.role),
      h('dt', {}, 'User id'), h('dd', { class: 'mono' }, me.id))),
  h('form', { class: 'card', on: { submit: (e) => { e.preventDefault(); busy(submit, async () => {
    if (next.value !== again.value) throw new Error('The new passwords differ.');
    await post('/auth/password', { current_password: current.value, new_password: next.value });
    toast('Password changed; log in again.', 'ok');
    session.expired();
  }); } } },
  h('h2', {}, 'Change password'),
  field('Current password', current), field('New password', next, 'At least 12 characters. Every session ends, this one too.'), field('New password again', again),
  submit));
}

export default {
  mount(root, ctx) {
    const role = ctx.app.me.role;
    const list = [
      { id: 'preferences', label: 'Preferences', render: (p) => preferencesTab(p, ctx) },
      { id: 'account', label: 'Account', render: (p) => accountTab(p, ctx) },
    ];
    if (atLeast(role, 'admin')) list.push({ id: 'config', label: 'Providers and configuration', render: (p) => configTab(p) });
    if (atLeast(role, 'admin')) list.push({ id: 'users', label: 'Users and roles', render: (p) => usersTab(p, ctx) });
    if (atLeast(role, 'member')) list.push({ id: 'tokens', label: 'API tokens', render: (p) => tokensTab(p, ctx) });
    root.append(h('h1', {}, 'Settings'), tabs(list, ctx.query.get('tab') || 'preferences', (id) => {
      history.replaceState(null, '', `#/settings?tab=${id}`);
    }));
  },
};
