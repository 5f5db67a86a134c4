// Tasks: a goal box (`POST /agent/task`, then the new task's page) and the list (`GET /tasks`,
// filtered by status, refreshed on task events); `/tasks/<id>` is one task (parts/task-view.js).

import { get, post } from '../lib/api.js';
import { live } from '../lib/live.js';
import { h, mount, field, ago, num, usd } from '../lib/dom.js';
import { errorBox, table, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';
import { taskView, statusBadge } from '../parts/task-view.js';

const STATUSES = ['planning', 'awaiting_approval', 'running', 'succeeded', 'failed', 'cancelled', 'budget_exceeded', 'rejected'];
const LIST_EVENTS = ['TASK_CREATED', 'PLAN_AWAITING_APPROVAL', 'PLAN_APPROVED', 'TASK_COMPLETED', 'TASK_FAILED', 'TASK_CANCELLED'];

function goalForm(ctx) {
  const goal = h('textarea', { rows: 3, required: true, maxlength: 16384, id: 'goal', placeholder: 'Summarise the three newest notes into one paragraph' });
  const approval = h('select', {}, h('option', { value: 'auto' }, 'Run unless a tool asks'), h('option', { value: 'ask' }, 'Ask me to approve the plan'));
  const review = h('input', { type: 'checkbox', checked: true });
  const problem = h('div', { 'aria-live': 'polite' });
  const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Start task');
  return h('form', { class: 'card', 'aria-labelledby': 'goal-h', on: { submit: (e) => {
    e.preventDefault();
    mount(problem);
    busy(submit, async () => {
      try {
        const t = await post('/agent/task', { goal: goal.value.trim(), approval: approval.value, review: review.checked });
        ctx.navigate(`/tasks/${encodeURIComponent(t.id)}`);
      } catch (err) {
        mount(problem, errorBox(err));
      }
    });
  } } },
  h('h2', { id: 'goal-h' }, 'New goal'),
  field('Goal', goal, 'The planner turns it into steps; agents run them.'),
  h('div', { class: 'row' }, h('div', { class: 'grow' }, field('Plan approval', approval)),
    h('label', { class: 'check' }, review, 'Review each step')),
  problem, submit);
}

async function listView(root, ctx) {
  const filter = h('select', { 'aria-label': 'Filter by status', class: 'compact' }, h('option', { value: '' }, 'Every status'),
    STATUSES.map((s) => h('option', { value: s }, s.replace('_', ' '))));
  const box = h('div', { 'aria-live': 'polite' }, loading());
  root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Tasks')), h('div', { class: 'stack' },
    atLeast(ctx.app.me.role, 'member') ? goalForm(ctx) : null,
    h('section', { class: 'card', 'aria-labelledby': 'tasks-h' },
      h('div', { class: 'row' }, h('h2', { id: 'tasks-h', class: 'grow' }, 'Recent tasks'), filter), box)));

  async function draw() {
    let tasks;
    try {
      tasks = await get('/tasks', { limit: 50, status: filter.value });
    } catch (err) {
      mount(box, errorBox(err));
      return;
    }
    mount(box, table([
      { label: 'Goal', cell: (t) => h('a', { href: `#/tasks/${encodeURIComponent(t.id)}` }, t.goal.length > 90 ? `${t.goal.slice(0, 90)}…` : t.goal) },
      { label: 'Status', cell: (t) => statusBadge(t.status) },
      { label: 'Steps', num: true, cell: (t) => num(t.usage.steps) },
      { label: 'Tokens', num: true, cell: (t) => num(t.usage.tokens) },
      { label: 'Cost', num: true, cell: (t) => usd(t.usage.cost_usd) },
      { label: 'Source', cell: (t) => t.workflow ? `${t.source} (${t.workflow})` : t.source },
      { label: 'Created', cell: (t) => ago(t.created_at) },
    ], tasks, { empty: filter.value ? 'No task in this status.' : 'No tasks yet. Give the node a goal above.', caption: 'Tasks' }));
  }
  filter.addEventListener('change', draw);
  await draw();
  let timer = 0;
  const stop = live.subscribe({ types: LIST_EVENTS }, () => {
    clearTimeout(timer);
    timer = setTimeout(draw, 300);
  });
  ctx.keys.add('n', 'New goal', () => document.getElementById('goal')?.focus());
  return () => { clearTimeout(timer); stop(); };
}

export default {
  mount(root, ctx) {
    return ctx.params[0] ? taskView(root, ctx, ctx.params[0]) : listView(root, ctx);
  },
};
