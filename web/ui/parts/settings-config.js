// Settings → Providers and configuration: `/system/config` shown as providers, personas and
// every effective key with the layer that set it; a rejected live edit's validation problems
// (file or variable, key, what is allowed) and keys waiting for a restart are shown first.

import { get } from '../lib/api.js';
import { h, mount, when } from '../lib/dom.js';
import { errorBox, table, loading } from '../lib/ui.js';

/**
 * `{a: {b: 1}}` → [['a.b', 1]]; lists of named tables by name, as provenance names them
 * (`providers[openai].kind`).
 */
export function flatten(value, key = '', out = []) {
  const named = Array.isArray(value) && value.length && value.every((x) => x && typeof x === 'object' && 'name' in x);
  if (named) {
    for (const item of value) flatten(item, `${key}[${item.name}]`, out);
  } else if (value && typeof value === 'object' && !Array.isArray(value) && Object.keys(value).length) {
    for (const [k, v] of Object.entries(value)) flatten(v, key ? `${key}.${k}` : k, out);
  } else {
    out.push([key, value]);
  }
  return out;
}

/** The layer that set `key` or its nearest ancestor (`a.b[c].d` → `a.b[c]` → `a.b` → `a`). */
export function sourceOf(sources, key) {
  for (let k = key; k; k = k.replace(/(\.[^.[\]]*|\[[^\]]*\])$/, '')) {
    if (sources[k]) return sources[k];
    if (!/[.[]/.test(k)) break;
  }
  return 'built-in defaults';
}

const show = (v) => (v === null || v === undefined ? '—' : typeof v === 'object' ? JSON.stringify(v) : String(v));

export async function configTab(panel) {
  const box = h('div', { class: 'stack' }, loading());
  panel.append(box);
  let data;
  try {
    data = await get('/system/config');
  } catch (err) {
    mount(box, errorBox(err));
    return;
  }
  const { config, sources } = data;
  const problems = data.problems || [];
  const filter = h('input', { type: 'search', placeholder: 'Filter keys', 'aria-label': 'Filter configuration keys' });
  const rows = flatten(config);
  const keysBox = h('div', {});
  const drawKeys = () => {
    const q = filter.value.trim().toLowerCase();
    mount(keysBox, table([
      { label: 'Key', cell: ([k]) => h('code', {}, k) },
      { label: 'Value', cell: ([, v]) => h('span', { class: 'mono small' }, show(v)) },
      { label: 'Set by', cell: ([k]) => sourceOf(sources, k) },
    ], rows.filter(([k, v]) => !q || k.toLowerCase().includes(q) || show(v).toLowerCase().includes(q)), { caption: 'Effective configuration' }));
  };
  filter.addEventListener('input', drawKeys);
  drawKeys();
  mount(box,
    problems.length ? h('div', { class: 'alert', role: 'alert', id: 'config-problems' },
      h('strong', {}, 'A configuration change was rejected'), data.rejected_at ? ` (${when(data.rejected_at)})` : '',
      '; the node keeps running on the configuration below. Fix these and save the file again:',
      h('ul', {}, problems.map((p) => h('li', {}, h('span', {}, p.source), p.key ? [': key ', h('code', {}, p.key)] : null, `: ${p.message}`)))) : null,
    (data.pending_restart || []).length ? h('div', { class: 'alert warn', role: 'status' },
      'Changed keys that take effect after a restart: ', data.pending_restart.map((k, i) => [i ? ', ' : null, h('code', {}, k)])) : null,
    h('section', { class: 'card' }, h('h2', {}, 'Providers'),
      table([
        { label: 'Name', cell: (p) => p.name || p.kind },
        { label: 'Kind', cell: (p) => p.kind },
        { label: 'Endpoint', cell: (p) => h('span', { class: 'mono small' }, p.base_url || 'the provider’s default') },
        { label: 'Chat model', cell: (p) => show(p.chat_model) },
        { label: 'Key', cell: (p) => (p.key_secret ? h('span', {}, 'vault secret ', h('code', {}, p.key_secret)) : 'none') },
        { label: 'Price in / out (per M tokens)', cell: (p) => (p.prompt_price || p.completion_price ? `$${p.prompt_price ?? 0} / $${p.completion_price ?? 0}` : '—') },
      ], config.providers || [], { empty: 'No providers configured ([[providers]] in the config file).', caption: 'Providers' })),
    h('section', { class: 'card' }, h('h2', {}, 'Personas'),
      table([
        { label: 'Name', cell: (p) => p.name },
        { label: 'Providers (fallback order)', cell: (p) => (p.providers || []).join(' → ') },
        { label: 'Description', cell: (p) => p.description || '—' },
        { label: 'System prompt', cell: (p) => h('span', { class: 'small' }, (p.system_prompt || '—').slice(0, 160)) },
      ], config.personas || [], { empty: 'No personas configured ([[personas]]).', caption: 'Personas' })),
    h('section', { class: 'card' }, h('h2', {}, 'Every key'),
      h('p', { class: 'muted small' }, 'Secrets never appear here: credentials in URLs are masked and provider keys live in the vault. Edit the configuration files; valid edits apply live.'),
      h('div', { class: 'field' }, filter), keysBox));
}
