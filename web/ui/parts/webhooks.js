// Workflows → webhooks (`/webhooks`, admins): the list (name, what it starts, its delivery
// path), delete, and a form that creates one for a workflow or for an agent with a goal
// (`{{body}}` is the delivered body). The signing secret is shown once, in a dialog with the
// signing rule and a copy button; the node keeps it in the vault and never shows it again.

import { get, post, del } from '../lib/api.js';
import { h, mount, field, ago } from '../lib/dom.js';
import { errorBox, table, toast, confirmDialog, modal, copyButton, loading, busy } from '../lib/ui.js';

const target = (t) => (t?.workflow ? ['workflow ', h('a', { href: `#/workflows/${encodeURIComponent(t.workflow)}` }, t.workflow)]
  : t?.agent ? ['agent ', h('code', {}, t.agent), ': ', t.goal] : JSON.stringify(t));

export async function webhooksCard(root, workflowNames) {
  const box = h('div', { 'aria-live': 'polite' }, loading());
  mount(root, h('section', { class: 'card', 'aria-labelledby': 'hooks-h' }, h('h2', { id: 'hooks-h' }, 'Webhooks'),
    h('p', { class: 'muted small' }, 'Another service starts a run by POSTing to the path, signed with the webhook\'s secret: no API token needed.'), box),
  createForm());

  async function draw() {
    let hooks;
    try {
      ({ webhooks: hooks } = await get('/webhooks'));
    } catch (err) {
      mount(box, errorBox(err));
      return;
    }
    mount(box, table([
      { label: 'Name', cell: (w) => h('strong', {}, w.name) },
      { label: 'Starts', cell: (w) => target(w.target) },
      { label: 'Path', cell: (w) => h('code', {}, `POST /webhooks/${w.name}`) },
      { label: 'Created', cell: (w) => ago(w.created_at) },
      { label: 'Actions', cell: (w) => h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Delete webhook ${w.name}`, on: { click: (e) => busy(e.currentTarget, async () => {
        if (!await confirmDialog(`Delete webhook ${w.name}?`, 'Its secret is deleted; deliveries to its path are refused from now on.', 'Delete')) return;
        await del(`/webhooks/${encodeURIComponent(w.name)}`);
        toast(`Deleted webhook ${w.name}`, 'ok');
        draw();
      }) } }, 'Delete') },
    ], hooks, { empty: 'No webhooks yet.', caption: 'Webhooks' }));
  }

  function createForm() {
    const name = h('input', { type: 'text', required: true, maxlength: 64, autocomplete: 'off', spellcheck: 'false', placeholder: 'deploy-notice' });
    const kind = h('select', {}, h('option', { value: 'workflow' }, 'a workflow'), h('option', { value: 'agent' }, 'an agent with a goal'));
    const workflow = h('select', {}, workflowNames.map((n) => h('option', { value: n }, n)));
    const agent = h('input', { type: 'text', maxlength: 128, spellcheck: 'false', placeholder: 'kExecutor:executor' });
    const goal = h('textarea', { rows: 2, maxlength: 16384, placeholder: 'Summarize this delivery: {{body}}' });
    const wfField = field('Workflow', workflow, 'The delivery\'s "params" object is its parameters');
    const agentFields = h('div', { class: 'form-grid' }, field('Agent', agent), field('Goal', goal, '{{body}} is the delivered body'));
    const sync = () => {
      const forAgent = kind.value === 'agent';
      wfField.hidden = forAgent;
      agentFields.hidden = !forAgent;
      agent.required = forAgent;
      goal.required = forAgent;
    };
    kind.addEventListener('change', sync);
    if (!workflowNames.length) kind.value = 'agent';
    sync();
    const problem = h('div', { 'aria-live': 'polite' });
    const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Create webhook');
    return h('form', { class: 'card', 'aria-labelledby': 'hook-new-h', on: { submit: (e) => {
      e.preventDefault();
      mount(problem);
      busy(submit, async () => {
        const t = kind.value === 'agent' ? { agent: agent.value.trim(), goal: goal.value } : { workflow: workflow.value };
        let created;
        try {
          created = await post('/webhooks', { name: name.value.trim(), target: t });
        } catch (err) {
          mount(problem, errorBox(err));
          return;
        }
        name.value = '';
        draw();
        await showOnce(created);
      });
    } } },
    h('h2', { id: 'hook-new-h' }, 'New webhook'),
    h('div', { class: 'form-grid' }, field('Name', name, 'a-z, 0-9, - and _; an existing name gets a new secret'), field('Starts', kind), wfField),
    agentFields, problem, submit);
  }

  async function showOnce(created) {
    await modal('Your webhook\'s secret', h('div', {},
      h('p', {}, 'Copy it now: it is shown only this once.'),
      h('div', { class: 'token-once', id: 'webhook-secret', tabindex: '0' }, created.secret),
      h('div', { class: 'row' }, copyButton(created.secret, 'Copy secret')),
      h('p', { class: 'small' }, 'Deliver with ', h('code', {}, `POST ${created.path}`), '; sign each delivery: ', h('code', {}, created.signing))),
    [{ label: 'I have copied it', value: true, primary: true }]);
  }

  await draw();
}
