// Agents: the registry (`/agent/status` joined with the `/agents` manifest): each agent's
// state, running and queued steps, built-in flag and DID, its definition on demand; for
// admins the lifecycle actions legal in its state (`POST /agents/{id}/lifecycle`, modify with
// a new definition) and a YAML editor that registers a new agent (`POST /agents`), showing
// the node's 422 detail, which names the bad field, beside the editor.

import { get, post } from '../lib/api.js';
import { h, mount, field, short, ago } from '../lib/dom.js';
import { errorBox, table, toast, modal, copyButton, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';
import { legalActions, definitionOf, toYaml } from '../lib/lifecycle.js';

const EXAMPLE = `name: kExecutor:researcher
version: 1.0.0
type: specialist
description: Looks things up
instructions: Find facts and cite them.
permissions:
  tools: [http_fetch]
`;

const STATE_KIND = { active: 'ok', terminated: 'bad', suspended: 'warn', modified: 'warn' };
const LABEL = { initialize: 'Initialize', activate: 'Activate', suspend: 'Suspend', resume: 'Resume', modify: 'Modify', apply: 'Apply', terminate: 'Terminate' };

/** A definition textarea with its inline problem box (filled from a 422 detail). */
function editor(value) {
  const text = h('textarea', { rows: 12, spellcheck: 'false', class: 'mono', value });
  const problem = h('div', { 'aria-live': 'polite' });
  return { text, problem, show: (err) => mount(problem, err ? errorBox(err) : null) };
}

export default {
  async mount(root, ctx) {
    const admin = atLeast(ctx.app.me.role, 'admin');
    const box = h('div', {}, loading());
    const refresh = h('button', { type: 'button', class: 'btn', on: { click: () => draw() } }, 'Refresh');
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Agents'), h('span', { class: 'spacer' }), refresh),
      h('div', { class: 'stack' }, box,
        admin ? createForm() : h('p', { class: 'muted small' }, 'Admins register agents and move them through their lifecycle.')));

    async function act(agent, action, btn) {
      const body = { action, reason: '' };
      if (action === 'modify' || action === 'terminate') {
        const reason = h('input', { type: 'text', maxlength: 2000 });
        const ed = action === 'modify' ? editor(toYaml(definitionOf(agent))) : null;
        const content = h('div', {},
          ed ? [field('Definition (YAML)', ed.text, 'Staged until you apply it'), ed.problem] : h('p', {}, `${agent.id} stops for good; its queued steps fail.`),
          field('Reason (optional)', reason));
        const ok = await modal(action === 'modify' ? `Modify ${agent.id}` : `Terminate ${agent.id}?`, content, [
          { label: 'Cancel', value: false },
          { label: LABEL[action], value: true, primary: action === 'modify', danger: action === 'terminate', submit: true },
        ]);
        if (!ok) return;
        body.reason = reason.value.trim();
        if (ed) body.definition = { definition: ed.text.value, format: 'yaml' };
      }
      await busy(btn, async () => {
        const v = await post(`/agents/${encodeURIComponent(agent.id)}/lifecycle`, body);
        toast(`${agent.id} is now ${v.state}`, 'ok');
        await draw();
      });
    }

    const actions = (a) => legalActions(a.state, a.builtin).map((action) => h('button', {
      type: 'button', class: `btn small ${action === 'terminate' ? 'danger' : ''}`, 'aria-label': `${LABEL[action]} ${a.id}`,
      on: { click: (e) => act(a, action, e.currentTarget) },
    }, LABEL[action]));

    const details = (a) => h('details', {}, h('summary', {}, 'Definition'),
      a.description ? h('p', {}, a.description) : null,
      h('pre', {}, toYaml(definitionOf(a))),
      a.staged ? [h('h3', {}, 'Staged (apply to use it)'), h('pre', {}, toYaml(a.staged))] : null);

    async function draw() {
      let status;
      let manifest;
      try {
        [status, manifest] = await Promise.all([get('/agent/status'), get('/agents')]);
      } catch (err) {
        mount(box, errorBox(err));
        return;
      }
      const byId = new Map(manifest.agents.map((m) => [m.id, m]));
      const rows = status.agents.map((s) => ({ ...byId.get(s.id), ...s }));
      mount(box, h('section', { class: 'card', 'aria-labelledby': 'agents-h' },
        h('h2', { id: 'agents-h' }, `Registry (${rows.length})`),
        table([
          { label: 'Agent', cell: (a) => h('span', {}, h('strong', { class: 'mono' }, a.id), a.builtin ? h('span', { class: 'badge' }, 'built-in') : null,
            h('span', { class: 'muted small' }, ` ${a.type || ''} ${a.version || ''}`)) },
          { label: 'State', cell: (a) => h('span', { class: `badge ${STATE_KIND[a.state] || ''}`, 'data-agent-state': a.id }, a.state) },
          { label: 'Running / queued', num: true, cell: (a) => `${a.running_steps} / ${a.queued_steps}` },
          { label: 'DID', cell: (a) => (a.did ? h('span', {}, h('code', { title: a.did }, short(a.did, 12)), ' ', copyButton(a.did)) : '—') },
          { label: 'Updated', cell: (a) => (a.updated_at ? ago(a.updated_at) : '—') },
          { label: 'Details', cell: details },
          admin ? { label: 'Actions', cell: actions } : null,
        ].filter(Boolean), rows, { empty: 'No agents registered.', caption: 'Agents' })));
    }

    function createForm() {
      const ed = editor(EXAMPLE);
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Register agent');
      return h('form', { class: 'card', 'aria-labelledby': 'new-agent-h', on: { submit: (e) => {
        e.preventDefault();
        ed.show(null);
        busy(submit, async () => {
          try {
            const m = await post('/agents', { definition: ed.text.value, format: 'yaml' });
            toast(`Registered ${m.id} (${m.state})`, 'ok');
            await draw();
          } catch (err) {
            if (err.status !== 422 && err.status !== 400 && err.status !== 409) throw err;
            ed.show(err);
            ed.text.focus();
          }
        });
      } } },
      h('h2', { id: 'new-agent-h' }, 'Register an agent'),
      field('Definition (YAML)', ed.text, 'name (kClass:name), version, type, description, instructions, permissions…'),
      ed.problem, submit);
    }

    await draw();
    ctx.keys.add('r', 'Refresh the registry', () => draw());
  },
};
