// Prompts: the library (`GET /prompts`, search `GET /prompts/search?q=`), a new prompt
// (`POST /prompts`), and `/prompts/<id>`: edit (`PUT /prompts/{id}`, a new version from
// `base_version`), versions with a line diff between any two (`…/versions`, `…/diff?from=&to=`)
// and a test render with typed variable inputs (`POST …/render`). Template and variable
// problems (422) show beside the editor.

import { get, post, put } from '../lib/api.js';
import { h, mount, field, ago, when } from '../lib/dom.js';
import { errorBox, table, toast, tabs, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';

const VARS_HINT = 'JSON: [{"name": "who", "type": "string", "required": true}] (types: string, number, bool, list, object)';

function parseVars(text) {
  const t = text.trim();
  if (!t) return [];
  const v = JSON.parse(t);
  if (!Array.isArray(v)) throw new Error('variables are a JSON list');
  return v;
}

/** A form failure shown in `box`: a problem from the node, or a JSON mistake. */
const show = (box, err) => mount(box, err ? errorBox(err) : null);

function listPane(ctx, current) {
  const q = h('input', { type: 'search', placeholder: 'Search prompts', 'aria-label': 'Search prompts' });
  const list = h('ul', { class: 'plist', 'aria-live': 'polite' });
  let timer = 0;
  async function draw() {
    try {
      const rows = q.value.trim() ? await get('/prompts/search', { q: q.value.trim() }) : await get('/prompts');
      mount(list, rows.length ? rows.map((p) => h('li', {}, h('a', { href: `#/prompts/${encodeURIComponent(p.name)}`, 'aria-current': p.name === current || p.id === current ? 'true' : null },
        p.name, h('span', { class: 'tmeta' }, `v${p.latest_version} · ${p.tags.join(', ') || 'no tags'} · used ${p.usage_count}×`))))
        : h('li', { class: 'empty' }, q.value ? 'No prompt matches.' : 'No prompts yet.'));
    } catch (err) {
      mount(list, h('li', {}, errorBox(err)));
    }
  }
  q.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(draw, 200); });
  draw();
  return h('section', { class: 'card plist-pane', 'aria-label': 'Prompt library' },
    h('div', { class: 'row' }, h('div', { class: 'grow' }, q),
      atLeast(ctx.app.me.role, 'member') ? h('a', { class: 'btn small', href: '#/prompts' }, 'New') : null),
    list);
}

function createForm(ctx) {
  const name = h('input', { type: 'text', required: true, maxlength: 128, spellcheck: 'false', placeholder: 'summarise-notes' });
  const template = h('textarea', { rows: 8, required: true, class: 'mono', spellcheck: 'false', placeholder: 'Summarise for {{ who }}:\n{{ text }}' });
  const vars = h('textarea', { rows: 3, class: 'mono', spellcheck: 'false', value: '[]' });
  const problem = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Create prompt');
  return h('form', { class: 'card', 'aria-labelledby': 'np-h', on: { submit: (e) => {
    e.preventDefault();
    show(problem, null);
    busy(submit, async () => {
      try {
        const p = await post('/prompts', { name: name.value.trim(), template: template.value, variables: parseVars(vars.value) });
        toast(`Created ${p.version_reference}`, 'ok');
        ctx.navigate(`/prompts/${encodeURIComponent(p.name)}`);
      } catch (err) {
        show(problem, err);
      }
    });
  } } },
  h('h2', { id: 'np-h' }, 'New prompt'),
  field('Name', name, 'a-z, 0-9, -, _ and .'), field('Template (minijinja)', template), field('Variables', vars, VARS_HINT),
  problem, submit);
}

function editTab(panel, p, member, reload) {
  const description = h('input', { type: 'text', value: p.description, maxlength: 2000 });
  const template = h('textarea', { rows: 10, class: 'mono', spellcheck: 'false', value: p.template });
  const vars = h('textarea', { rows: 4, class: 'mono', spellcheck: 'false', value: JSON.stringify(p.variables, null, 1) });
  const message = h('input', { type: 'text', maxlength: 2000, placeholder: 'What changed and why' });
  const problem = h('div', { 'aria-live': 'polite' });
  const save = h('button', { type: 'submit', class: 'btn primary', disabled: !member }, `Save as v${p.latest_version + 1}`);
  panel.append(h('form', { on: { submit: (e) => {
    e.preventDefault();
    show(problem, null);
    busy(save, async () => {
      try {
        const v = await put(`/prompts/${encodeURIComponent(p.id)}`, { template: template.value, variables: parseVars(vars.value),
          description: description.value, message: message.value, base_version: p.latest_version });
        toast(`Saved ${v.version_reference}`, 'ok');
        reload();
      } catch (err) {
        show(problem, err.status === 409 ? new Error(`${err.message} Reload to edit the newest version.`) : err);
      }
    });
  } } },
  p.version !== p.latest_version ? h('p', { class: 'alert warn' }, `You are looking at v${p.version}; saving makes a new version from it.`) : null,
  field('Description', description), field('Template (minijinja)', template), field('Variables', vars, VARS_HINT),
  field('Edit note', message), problem, save));
}

async function versionsTab(panel, p) {
  const box = h('div', {}, loading());
  panel.append(box);
  let data;
  try {
    data = await get(`/prompts/${encodeURIComponent(p.id)}/versions`);
  } catch (err) {
    mount(box, errorBox(err));
    return;
  }
  const vs = data.versions;
  const pick = (label, sel) => h('select', { 'aria-label': label, class: 'compact' }, vs.map((v) => h('option', { value: v.version, selected: v.version === sel }, `v${v.version}`)));
  const from = pick('Diff from version', Math.max(1, p.latest_version - 1));
  const to = pick('Diff to version', p.latest_version);
  const out = h('div', { 'aria-live': 'polite', id: 'prompt-diff' });
  const diff = h('button', { type: 'button', class: 'btn' }, 'Show diff');
  diff.addEventListener('click', () => busy(diff, async () => {
    const d = await get(`/prompts/${encodeURIComponent(p.id)}/diff`, { from: from.value, to: to.value });
    const lines = d.unified.split('\n').map((l) => h('span', { class: l.startsWith('+') && !l.startsWith('+++') ? 'd-add' : l.startsWith('-') && !l.startsWith('---') ? 'd-del' : null }, `${l}\n`));
    mount(out, h('p', { class: 'small' }, `v${d.from} → v${d.to}: +${d.insertions} −${d.deletions}, ${Math.round(d.similarity * 100)}% alike`,
      d.variables_added.length ? ` · variables added: ${d.variables_added.join(', ')}` : '',
      d.variables_removed.length ? ` · removed: ${d.variables_removed.join(', ')}` : '',
      d.variables_changed.length ? ` · changed: ${d.variables_changed.join(', ')}` : ''),
    d.unified ? h('pre', { class: 'diff' }, lines) : h('p', { class: 'muted' }, 'The templates are the same.'));
  }));
  mount(box, table([
    { label: 'Version', num: true, cell: (v) => h('a', { href: `#/prompts/${encodeURIComponent(`${p.name}@${v.version}`)}` }, `v${v.version}`) },
    { label: 'Note', cell: (v) => v.message || '—' },
    { label: 'Author', cell: (v) => v.author },
    { label: 'Created', cell: (v) => when(v.created_at) },
    { label: 'Bytes', num: true, cell: (v) => String(v.template_bytes) },
  ], vs.slice().reverse(), { caption: 'Versions' }),
  vs.length > 1 ? h('div', { class: 'row' }, from, to, diff) : h('p', { class: 'muted small' }, 'Only one version so far.'), out);
}

/** An input for one declared variable, by its type; `read()` gives the typed value. */
function varInput(v) {
  let el;
  if (v.type === 'bool') el = h('input', { type: 'checkbox', checked: v.default === true });
  else if (v.type === 'number') el = h('input', { type: 'number', step: 'any', value: v.default ?? '' });
  else if (v.type === 'list' || v.type === 'object') el = h('textarea', { rows: 2, class: 'mono', value: v.default !== undefined ? JSON.stringify(v.default) : '' });
  else el = h('input', { type: 'text', value: v.default ?? '' });
  const read = () => {
    if (v.type === 'bool') return el.checked;
    if (el.value === '') return undefined;
    if (v.type === 'number') return Number(el.value);
    if (v.type === 'list' || v.type === 'object') return JSON.parse(el.value);
    return el.value;
  };
  const label = `${v.name}${v.required ? ' (required)' : ''}`;
  const f = v.type === 'bool' ? h('label', { class: 'check' }, el, label) : field(label, el, [v.type, v.description].filter(Boolean).join(' · '));
  return { f, read };
}

function renderTab(panel, p) {
  const inputs = p.variables.map((v) => [v.name, varInput(v)]);
  const out = h('div', { 'aria-live': 'polite', id: 'render-output' });
  const run = h('button', { type: 'submit', class: 'btn primary' }, `Render v${p.version}`);
  panel.append(h('form', { on: { submit: (e) => {
    e.preventDefault();
    busy(run, async () => {
      const variables = {};
      try {
        for (const [name, i] of inputs) {
          const value = i.read();
          if (value !== undefined) variables[name] = value;
        }
        const r = await post(`/prompts/${encodeURIComponent(p.id)}/render`, { variables, version: p.version });
        mount(out, h('p', { class: 'muted small' }, `Rendered ${r.reference}`), h('pre', {}, r.output));
      } catch (err) {
        mount(out, errorBox(err));
      }
    });
  } } },
  inputs.length ? h('div', { class: 'form-grid' }, inputs.map(([, i]) => i.f)) : h('p', { class: 'muted small' }, 'This template declares no variables.'),
  run, out));
}

async function promptPane(pane, ctx, ref) {
  mount(pane, loading());
  let p;
  try {
    p = await get(`/prompts/${encodeURIComponent(ref)}`);
  } catch (err) {
    mount(pane, h('section', { class: 'card' }, errorBox(err)));
    return;
  }
  const member = atLeast(ctx.app.me.role, 'member');
  mount(pane, h('section', { class: 'card', 'aria-labelledby': 'prompt-h' },
    h('h2', { id: 'prompt-h' }, p.version_reference, h('span', { class: 'muted small' }, ` · ${p.tags.join(', ') || 'no tags'} · by ${p.author} `, ago(p.version_created_at))),
    p.description ? h('p', {}, p.description) : null,
    tabs([
      { id: 'edit', label: 'Edit', render: (panel) => editTab(panel, p, member, () => ctx.navigate(`/prompts/${encodeURIComponent(p.name)}`)) },
      { id: 'versions', label: `Versions (${p.latest_version})`, render: (panel) => versionsTab(panel, p) },
      { id: 'render', label: 'Test render', render: (panel) => renderTab(panel, p) },
    ], 'edit')));
}

export default {
  async mount(root, ctx) {
    const ref = ctx.params.join('/');
    const pane = h('div', { class: 'stack' });
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Prompts')),
      h('div', { class: 'split' }, listPane(ctx, ref.split('@')[0]), pane));
    if (ref) await promptPane(pane, ctx, ref);
    else if (atLeast(ctx.app.me.role, 'member')) pane.append(createForm(ctx));
    else pane.append(h('p', { class: 'muted' }, 'Pick a prompt.'));
  },
};
