// Pure helpers of the task pages (no DOM, unit-tested in Node): which plan version a task
// view shows, the state each step box is drawn in, and which task actions apply to a status.

/** Statuses after which a task changes no more. */
export const FINISHED = ['succeeded', 'failed', 'cancelled', 'budget_exceeded', 'rejected'];

/** The plan to draw: the approved version the task runs, else the newest proposed, else the newest. */
export function currentPlan(task, plans) {
  const list = plans || [];
  const byVersion = (a, b) => b.version - a.version;
  return list.find((p) => p.version === task?.plan_version && p.status === 'approved')
    || list.filter((p) => p.status === 'proposed').sort(byVersion)[0]
    || list.slice().sort(byVersion)[0]
    || null;
}

/** The box state of a plan step: its run row's status, else "pending" (not started yet). */
export function stepState(stepId, runs) {
  const row = (runs || []).find((r) => r.step_id === stepId);
  return row?.status || 'pending';
}

/** Which of cancel and retry apply to a task in `status`. */
export function taskActions(status) {
  return {
    cancel: ['planning', 'awaiting_approval', 'running'].includes(status),
    retry: ['failed', 'cancelled', 'budget_exceeded'].includes(status),
  };
}
