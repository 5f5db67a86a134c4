// Workflows: saved task graphs in YAML with declared parameters that run without the planner
// (`/workflows`: list, save as the next version with the node's check shown, show, run with
// parameters), and the webhooks that start them (parts/webhooks.js, admins only).
// `/workflows/<name>` is one workflow: its definition, a form generated from its parameters,
// and "edit as a new version".

import { get, post } from '../lib/api.js';
import { h, mount, field, ago, when } from '../lib/dom.js';
import { errorBox, table, toast, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';
import { webhooksCard } from '../parts/webhooks.js';

const EXAMPLE = `name: digest
description: Summarize a page
parameters:
  url: {type: string}
  words: {type: integer, default: 100}
steps:
  - id: fetch
    tool: http_fetch
    inputs: {url: "{{params.url}}"}
  - id: summarize
    instruction: "Summarize in {{params.words}} words: {{steps.fetch.output}}"
    depends_on: [fetch]
# schedule: "0 7 * * *"   # optional: run daily at 07:00 with the defaults
`;

/** The YAML editor; `initial` is a definition to start from (a new version of it). */
function editor(ctx, initial) {
  const text = h('textarea', { rows: 16, required: true, id: 'workflow-definition', class: 'mono', spellcheck: 'false', maxlength: 65536 }, initial || EXAMPLE);
  const problem = h('div', { 'aria-live': 'polite', id: 'workflow-problem' });
  const save = h('button', { type: 'submit', class: 'btn primary' }, 'Save workflow');
  return h('form', { class: 'card', 'aria-labelledby': 'wf-edit-h', on: { submit: (e) => {
    e.preventDefault();
    mount(problem);
    busy(save, async () => {
      try {
        const saved = await post('/workflows', { definition: text.value });
        toast(`Saved ${saved.name} v${saved.version} (${saved.steps} steps)`, 'ok');
        ctx.navigate(`/workflows/${encodeURIComponent(saved.name)}`);
      } catch (err) {
        mount(problem, errorBox(err));
      }
    });
  } } },
  h('h2', { id: 'wf-edit-h' }, initial ? 'Edit as a new version' : 'New workflow'),
  field('Definition (YAML)', text, '{{params.NAME}} is a run\'s parameter, {{steps.ID.output}} an earlier step\'s output. Saving an existing name adds a version; the node checks it like a plan.'),
  problem, save);
}

async function listView(root, ctx) {
  const member = atLeast(ctx.app.me.role, 'member');
  const box = h('div', { 'aria-live': 'polite' }, loading());
  const hooks = h('div', { class: 'stack' });
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Workflows')), h('div', { class: 'stack' },
    h('section', { class: 'card', 'aria-labelledby': 'wf-h' }, h('h2', { id: 'wf-h' }, 'Saved workflows'),
      h('p', { class: 'muted small' }, 'Task graphs that run as written, without the planner: by hand, on a schedule or from a webhook.'), box),
    member ? editor(ctx) : null, hooks));
  try {
    const { workflows } = await get('/workflows');
    mount(box, table([
      { label: 'Name', cell: (w) => h('a', { href: `#/workflows/${encodeURIComponent(w.name)}` }, w.name) },
      { label: 'Version', num: true, cell: (w) => `v${w.version}` },
      { label: 'Author', cell: (w) => w.author },
      { label: 'Saved', cell: (w) => ago(w.created_at) },
    ], workflows, { empty: 'No workflows yet. Write one below.', caption: 'Workflows' }));
    if (atLeast(ctx.app.me.role, 'admin')) await webhooksCard(hooks, workflows.map((w) => w.name));
  } catch (err) {
    mount(box, errorBox(err));
  }
}

/** One input per declared parameter, typed, with its default. */
function paramInputs(parameters) {
  return Object.entries(parameters || {}).map(([name, p]) => {
    const attrs = { name, 'data-kind': p.type };
    let input;
    if (p.type === 'boolean') input = h('input', { ...attrs, type: 'checkbox', checked: p.default === true });
    else if (p.type === 'integer' || p.type === 'number') {
      input = h('input', { ...attrs, type: 'number', step: p.type === 'integer' ? '1' : 'any', value: p.default ?? '', required: p.default === undefined || p.default === null });
    } else input = h('input', { ...attrs, type: 'text', value: p.default ?? '', required: p.default === undefined || p.default === null, maxlength: 16384 });
    return { name, input, el: field(name, input, [p.type, p.description].filter(Boolean).join(' · ')) };
  });
}

function paramValues(inputs) {
  const out = {};
  for (const { name, input } of inputs) {
    const kind = input.dataset.kind;
    if (kind === 'boolean') out[name] = input.checked;
    else if (input.value === '') continue;
    else if (kind === 'integer' || kind === 'number') out[name] = Number(input.value);
    else out[name] = input.value;
  }
  return out;
}

async function oneView(root, ctx, name) {
  const member = atLeast(ctx.app.me.role, 'member');
  root.append(h('p', { class: 'small' }, h('a', { href: '#/workflows' }, '← All workflows')));
  let wf;
  try {
    wf = await get(`/workflows/${encodeURIComponent(name)}`);
  } catch (err) {
    root.append(h('h1', {}, name), errorBox(err));
    return;
  }
  const { parsed } = wf;
  const inputs = paramInputs(parsed.parameters);
  const problem = h('div', { 'aria-live': 'polite', id: 'run-problem' });
  const run = h('button', { type: 'submit', class: 'btn primary' }, 'Run workflow');
  const editBox = h('div', {});
  const editButton = h('button', { type: 'button', class: 'btn', on: { click: () => {
    editButton.hidden = true;
    mount(editBox, editor(ctx, wf.definition));
    editBox.querySelector('textarea').focus();
  } } }, 'Edit as a new version');
  root.append(h('div', { class: 'page-head' }, h('h1', {}, parsed.name), h('span', { class: 'spacer' }), member ? editButton : null),
    h('div', { class: 'stack' },
      h('p', {}, parsed.description || h('span', { class: 'muted' }, 'No description.'),
        h('span', { class: 'muted small' }, ` · v${wf.version} by ${wf.author}, ${when(wf.created_at)} · ${parsed.steps.length} steps`,
          parsed.schedule ? [' · runs on schedule ', h('code', {}, parsed.schedule)] : null)),
      member ? h('form', { class: 'card', 'aria-labelledby': 'run-h', on: { submit: (e) => {
        e.preventDefault();
        mount(problem);
        busy(run, async () => {
          try {
            const task = await post(`/workflows/${encodeURIComponent(name)}/run`, { params: paramValues(inputs) });
            ctx.navigate(`/tasks/${encodeURIComponent(task.id)}`);
          } catch (err) {
            mount(problem, errorBox(err));
          }
        });
      } } }, h('h2', { id: 'run-h' }, 'Run it'),
      inputs.length ? h('div', { class: 'form-grid' }, inputs.map((i) => i.el)) : h('p', { class: 'muted small' }, 'This workflow has no parameters.'),
      problem, run) : null,
      editBox,
      h('section', { class: 'card', 'aria-labelledby': 'def-h' }, h('h2', { id: 'def-h' }, 'Definition'),
        h('pre', { id: 'workflow-text' }, wf.definition))));
}

export default {
  mount(root, ctx) {
    return ctx.params[0] ? oneView(root, ctx, ctx.params[0]) : listView(root, ctx);
  },
};
