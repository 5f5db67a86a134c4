// One task (`GET /tasks/{id}` → {task, plans, steps, questions}), kept live: every event of
// the task on the WebSocket re-fetches it (debounced), and while the socket is down it is
// polled every 2 s. Shows the task graph (steps in dependency columns, coloured and labelled
// by status; click a step for its output, error and review feedback), usage, result or
// error; plan approval (`…/plan/approve`, `…/plan/reject`) while a plan awaits it, and the
// plan editor (`PUT …/plan`: the steps as JSON, saved as the next version and checked again by
// the node, whose problems are shown); unanswered questions with an answer box
// (`/questions/{id}/answer`); cancel and retry when they apply.

import { get, post, put } from '../lib/api.js';
import { live } from '../lib/live.js';
import { h, mount, field, ago, when, num, usd } from '../lib/dom.js';
import { errorBox, toast, promptDialog, confirmDialog, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';
import { FINISHED, currentPlan, stepState, taskActions } from '../lib/taskgraph.js';
import { columns } from '../lib/layout.js';

const DEBOUNCE_MS = 150;
const POLL_MS = 2000;
const KIND = { succeeded: 'ok', failed: 'bad', rejected: 'bad', budget_exceeded: 'bad', cancelled: '', awaiting_approval: 'warn', running: 'warn', planning: '' };

export const statusBadge = (s) => h('span', { class: `badge ${KIND[s] || ''}` }, s.replace('_', ' '));

/** The graph: one column per dependency depth, one button per step. */
function graph(plan, runs, selected, onSelect) {
  const steps = plan.graph?.steps || [];
  const byId = new Map(steps.map((s) => [s.id, s]));
  const asks = new Map((plan.checked?.needs_approval || []).map(([step, tool]) => [step, tool]));
  return h('ol', { class: 'tgraph', 'aria-label': `Task graph, plan version ${plan.version}` },
    columns(steps).map((col, i) => h('li', { class: 'tcol' },
      h('h3', { class: 'small muted' }, `Stage ${i + 1}`),
      h('ul', {}, col.map((id) => {
        const s = byId.get(id);
        const state = stepState(id, runs);
        return h('li', {}, h('button', {
          type: 'button', class: `tstep s-${state}`, 'data-step': id, 'data-state': state, 'data-fkey': `step:${id}`,
          'aria-pressed': String(selected === id), on: { click: () => onSelect(id) },
        },
        h('span', { class: 'tstep-id' }, id),
        h('span', { class: 'tstep-state' }, state),
        h('span', { class: 'tstep-what' }, s.tool ? `tool ${s.tool}` : (s.title || s.instruction || '').slice(0, 80)),
        s.depends_on?.length ? h('span', { class: 'tstep-deps' }, `after ${s.depends_on.join(', ')}`) : null,
        asks.has(id) ? h('span', { class: 'badge warn' }, `asks: ${asks.get(id)}`) : null));
      })))));
}

function stepDetails(plan, runs, id) {
  const s = (plan?.graph?.steps || []).find((x) => x.id === id);
  if (!s) return h('p', { class: 'muted' }, 'Select a step to see its output.');
  const r = runs.find((x) => x.step_id === id);
  return h('div', { id: 'step-details', class: 'step-details' },
    h('h3', {}, `Step ${id} `, h('span', { class: 'muted small' }, stepState(id, runs))),
    h('dl', { class: 'kv small' },
      h('dt', {}, 'Instruction'), h('dd', {}, s.instruction || '—'),
      s.tool ? [h('dt', {}, 'Tool'), h('dd', {}, h('code', {}, s.tool))] : null,
      h('dt', {}, 'Agent'), h('dd', {}, r?.agent || s.agent || 'the default executor'),
      r ? [h('dt', {}, 'Attempts'), h('dd', {}, String(r.attempts)),
        h('dt', {}, 'Tokens / tool calls'), h('dd', {}, `${num(r.tokens)} / ${num(r.tool_calls)}`),
        h('dt', {}, 'Started'), h('dd', {}, r.started_at ? when(r.started_at) : '—'),
        h('dt', {}, 'Finished'), h('dd', {}, r.finished_at ? when(r.finished_at) : '—')] : null),
    s.inputs && Object.keys(s.inputs).length ? [h('h4', {}, 'Inputs'), h('pre', {}, JSON.stringify(s.inputs, null, 2))] : null,
    r?.output ? [h('h4', {}, 'Output'), h('pre', { class: 'step-output' }, r.output)] : null,
    r?.feedback ? [h('h4', {}, 'Reviewer feedback'), h('pre', {}, r.feedback)] : null,
    r?.error ? h('div', { class: 'alert', role: 'alert' }, h('strong', {}, 'Error: '), r.error) : null);
}

export async function taskView(root, ctx, id) {
  const member = atLeast(ctx.app.me.role, 'member');
  const title = h('h1', {}, 'Task');
  const actionsBox = h('span', { class: 'row' });
  const statusBox = h('p', { 'aria-live': 'polite', id: 'task-status' });
  const approvalBox = h('div', {});
  const questionsBox = h('div', {});
  const graphBox = h('div', {}, loading('Loading the task…'));
  const detailBox = h('div', { 'aria-live': 'polite' });
  const outcomeBox = h('div', {});
  const usageBox = h('div', {});
  root.append(
    h('p', { class: 'small' }, h('a', { href: '#/tasks' }, '← All tasks')),
    h('div', { class: 'page-head' }, title, h('span', { class: 'spacer' }), actionsBox),
    statusBox, h('div', { class: 'stack' }, approvalBox, questionsBox,
      h('section', { class: 'card', 'aria-labelledby': 'graph-h' }, h('h2', { id: 'graph-h' }, 'Task graph'), graphBox, detailBox),
      h('div', { class: 'grid' }, outcomeBox, usageBox)));

  let view = null;
  let selected = null;
  let questionKey = '';
  let approvalKey = '';
  let stopped = false;

  const select = (stepId) => {
    selected = stepId;
    draw();
  };

  function drawApproval(task, plan) {
    const key = task.status === 'awaiting_approval' && plan ? `${plan.version}` : '';
    if (key === approvalKey) return;
    approvalKey = key;
    if (!key) { mount(approvalBox); return; }
    const asks = plan.checked?.needs_approval || [];
    const approve = h('button', { type: 'button', class: 'btn primary', 'data-fkey': 'approve' }, `Approve plan v${plan.version}`);
    const reject = h('button', { type: 'button', class: 'btn danger' }, 'Reject');
    approve.addEventListener('click', () => busy(approve, async () => {
      await post(`/tasks/${encodeURIComponent(id)}/plan/approve`, { version: plan.version });
      toast('Plan approved', 'ok');
      await refresh();
    }));
    reject.addEventListener('click', async () => {
      const reason = await promptDialog('Reject the plan', 'Why (the planner does not see this; the task ends)', '', { maxlength: 2000 });
      if (reason === null) return;
      await busy(reject, async () => {
        await post(`/tasks/${encodeURIComponent(id)}/plan/reject`, { version: plan.version, reason });
        toast('Plan rejected', 'ok');
        await refresh();
      });
    });
    const edit = h('button', { type: 'button', class: 'btn' }, 'Edit plan');
    const editorBox = h('div', {});
    edit.addEventListener('click', () => {
      edit.hidden = true;
      mount(editorBox, planEditor(plan, () => { edit.hidden = false; mount(editorBox); edit.focus(); }));
      editorBox.querySelector('textarea').focus();
    });
    mount(approvalBox, h('section', { class: 'alert warn', 'aria-labelledby': 'approval-h', id: 'approval' },
      h('h2', { id: 'approval-h' }, 'This plan waits for your approval'),
      asks.length ? h('ul', {}, asks.map(([step, tool]) => h('li', {}, 'Step ', h('code', {}, step), ' uses tool ', h('code', {}, tool), ', whose policy asks first.')))
        : h('p', {}, 'The task was submitted with plan approval on: nothing runs until you approve.'),
      (plan.checked?.repairs || []).length ? h('p', { class: 'small' }, `Repairs made by the check: ${plan.checked.repairs.map((r) => `${r.step}: ${r.what}`).join('; ')}`) : null,
      member ? h('div', { class: 'row' }, approve, edit, reject) : null, editorBox));
  }

  /** The steps of `plan` as editable JSON; saving proposes them as the next version. */
  function planEditor(plan, close) {
    const text = h('textarea', { rows: 14, id: 'plan-editor', class: 'mono', spellcheck: 'false', maxlength: 262144 },
      JSON.stringify({ steps: plan.graph?.steps || [] }, null, 2));
    const problem = h('div', { 'aria-live': 'polite', id: 'plan-problem' });
    const save = h('button', { type: 'submit', class: 'btn primary' }, `Save as v${plan.version + 1}`);
    const cancelEdit = h('button', { type: 'button', class: 'btn', on: { click: close } }, 'Discard changes');
    return h('form', { class: 'stack plan-edit', 'aria-label': 'Edit the plan', on: { submit: (e) => {
      e.preventDefault();
      mount(problem);
      let graph;
      try {
        graph = JSON.parse(text.value);
      } catch (err) {
        mount(problem, h('div', { class: 'alert', role: 'alert' }, `Not valid JSON: ${err.message}`));
        return;
      }
      busy(save, async () => {
        try {
          const saved = await put(`/tasks/${encodeURIComponent(id)}/plan`, { graph });
          toast(`Plan v${saved.version} saved; approve it to run`, 'ok');
          await refresh();
        } catch (err) {
          mount(problem, errorBox(err));
        }
      });
    } } },
    field('Steps (JSON)', text, 'Each step: id, instruction or tool with inputs, depends_on, optional agent and title. The node checks the edit again before it can run.'),
    problem, h('div', { class: 'row' }, save, cancelEdit));
  }

  function drawQuestions(questions) {
    const open = questions.filter((q) => q.answer === null || q.answer === undefined);
    const key = open.map((q) => q.id).join(',');
    if (key === questionKey) return;
    questionKey = key;
    mount(questionsBox, open.length ? h('section', { class: 'card', 'aria-labelledby': 'q-h' },
      h('h2', { id: 'q-h' }, 'Questions for you'),
      open.map((q) => {
        const answer = h('textarea', { rows: 2, required: true, maxlength: 16384 });
        const send = h('button', { type: 'submit', class: 'btn primary' }, 'Answer');
        return h('form', { class: 'question', on: { submit: (e) => {
          e.preventDefault();
          busy(send, async () => {
            await post(`/questions/${encodeURIComponent(q.id)}/answer`, { answer: answer.value });
            toast('Answer sent; the step goes on', 'ok');
            await refresh();
          });
        } } }, h('p', {}, h('strong', {}, `Step ${q.step_id} asks: `), q.question, h('span', { class: 'muted small' }, ' · ', ago(q.asked_at))),
        field('Your answer', answer), member ? send : null);
      })) : null);
  }

  function draw() {
    const { task, plans, steps, questions } = view;
    const focusKey = document.activeElement?.dataset?.fkey;
    title.textContent = task.goal.length > 120 ? `${task.goal.slice(0, 120)}…` : task.goal;
    document.title = `Task: ${task.goal.slice(0, 40)} · kai`;
    statusBox.dataset.status = task.status;
    mount(statusBox, 'Status: ', statusBadge(task.status), h('span', { class: 'muted small' }, ` · created `, ago(task.created_at),
      task.finished_at ? [' · finished ', ago(task.finished_at)] : null, ` · ${task.source}`));
    const can = taskActions(task.status);
    mount(actionsBox, member && can.cancel ? h('button', { type: 'button', class: 'btn danger', 'data-fkey': 'cancel', on: { click: (e) => cancel(e.currentTarget) } }, 'Cancel task') : null,
      member && can.retry ? h('button', { type: 'button', class: 'btn', 'data-fkey': 'retry', on: { click: (e) => busy(e.currentTarget, async () => {
        await post(`/tasks/${encodeURIComponent(id)}/retry`);
        toast('Retrying the unfinished steps', 'ok');
        await refresh();
      }) } }, 'Retry') : null);
    const plan = currentPlan(task, plans);
    const runs = plan?.status === 'approved' ? steps.filter((r) => r.plan_version === plan.version) : [];
    drawApproval(task, plan);
    // A finished task waits for nothing (a retry asks again).
    drawQuestions(FINISHED.includes(task.status) ? [] : questions || []);
    if (!plan) {
      mount(graphBox, h('p', { class: 'muted', 'aria-busy': String(!FINISHED.includes(task.status)) },
        FINISHED.includes(task.status) ? 'This task has no plan.' : 'The planner is working on a plan…'));
    } else {
      mount(graphBox, h('p', { class: 'muted small' }, `Plan v${plan.version} (${plan.status}) by ${plan.author} · `, legend()),
        h('div', { class: 'table-wrap' }, graph(plan, runs, selected, select)));
    }
    mount(detailBox, selected ? stepDetails(plan, runs, selected) : null);
    mount(outcomeBox, h('section', { class: 'card', 'aria-labelledby': 'out-h' }, h('h2', { id: 'out-h' }, 'Result'),
      task.result ? h('pre', { id: 'task-result' }, task.result) : null,
      task.error ? h('div', { class: 'alert', role: 'alert' }, task.error) : null,
      !task.result && !task.error ? h('p', { class: 'muted' }, FINISHED.includes(task.status) ? 'No result.' : 'Not finished yet.') : null));
    const u = task.usage;
    mount(usageBox, h('section', { class: 'card', 'aria-labelledby': 'use-h' }, h('h2', { id: 'use-h' }, 'Usage'),
      h('div', { class: 'stats' },
        [[num(u.steps), 'steps'], [num(u.tool_calls), 'tool calls'], [num(u.tokens), 'tokens'], [usd(u.cost_usd), 'cost']]
          .map(([v, l]) => h('div', {}, h('div', { class: 'stat' }, v), h('div', { class: 'muted small' }, l))))));
    if (focusKey) root.querySelector(`[data-fkey="${CSS.escape(focusKey)}"]`)?.focus();
  }

  const legend = () => h('span', { class: 'legend' }, ['pending', 'queued', 'running', 'waiting', 'succeeded', 'failed']
    .map((s) => h('span', { class: `tkey s-${s}` }, s)));

  async function cancel(btn) {
    if (!await confirmDialog('Cancel this task?', 'Queued steps are dropped; running ones finish without effect.', 'Cancel task')) return;
    await busy(btn, async () => {
      await post(`/tasks/${encodeURIComponent(id)}/cancel`);
      toast('Task cancelled', 'ok');
      await refresh();
    });
  }

  let inflight = null;
  let again = false;
  async function refresh() {
    if (inflight) { again = true; return inflight; }
    inflight = (async () => {
      do {
        again = false;
        try {
          view = await get(`/tasks/${encodeURIComponent(id)}`);
          if (!stopped) draw();
        } catch (err) {
          if (!view) mount(graphBox, errorBox(err));
          else toast(err.message, 'error');
        }
      } while (again && !stopped);
    })().finally(() => { inflight = null; });
    return inflight;
  }

  let debounce = 0;
  const later = () => {
    clearTimeout(debounce);
    debounce = setTimeout(refresh, DEBOUNCE_MS);
  };
  // Reloaded once the node confirms the subscription: a change made between the first load
  // and that moment (the plan proposed, say) would otherwise never be shown.
  const stop = live.subscribe({ task_ids: [id] }, later, { onReady: later });
  // Every 2 s while the live stream is down, every 10 s while it is up (a safety net for an
  // event missed around a subscription), never once the task finished.
  let ticks = 0;
  const poll = setInterval(() => {
    ticks += 1;
    const due = live.state !== 'on' || ticks % 5 === 0;
    if (due && !document.hidden && view && !FINISHED.includes(view.task.status)) refresh();
  }, POLL_MS);
  await refresh();
  ctx.keys.add('r', 'Refresh the task', () => refresh());
  return () => { stopped = true; clearTimeout(debounce); clearInterval(poll); stop(); };
}
