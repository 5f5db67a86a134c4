// End-to-end: Debian's Chromium, driven by playwright-core, against a real `kai serve` (started
// sealed) and the repo's fake OpenAI-compatible model server. Unlock the vault, log in, watch a
// live event arrive, chat with a streaming reply, answer a tool call, regenerate and switch
// branches, rename/search/export/delete threads, store and reveal a secret, verify the audit
// log, register an agent and walk its lifecycle, submit goals and watch their task graphs
// complete (one after plan approval; the fake model plans, executes and reviews), cancel and
// retry a task, reject a plan, edit one into a new version and run it, save and run a workflow
// and start it from a signed webhook, remember and
// search memories, version/diff/render a prompt, upload/preview/share/download/delete
// artifacts, create (shown once) and revoke an API token, see a rejected config edit, manage users,
// switch theme, use the shortcut help, and use it at phone width. Any console error, page error,
// failed request or HTTP error fails the test. Every page's screenshot goes to
// target/screenshots/ (CI keeps them as artifacts).

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startStack, CHROMIUM, ROOT, PASSPHRASE, PASSWORD } from './stack.mjs';
import { checkA11y, checkFocusRing } from './a11y.mjs';

const SHOTS = process.env.KAI_SCREENSHOTS || path.join(ROOT, 'target', 'screenshots');
mkdirSync(SHOTS, { recursive: true });

let stack;
let browser;
let page;
const problems = [];

function watch(p) {
  p.on('console', (m) => { if (m.type() === 'error') problems.push(`console error: ${m.text()}`); });
  p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  p.on('requestfailed', (r) => problems.push(`request failed: ${r.method()} ${r.url()} (${r.failure()?.errorText})`));
  p.on('response', (r) => { if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`); });
}

const shot = (name, p = page) => p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
const heading = (name) => page.getByRole('heading', { level: 1, name });
/**
 * Runs `wait`; when it fails, prints what was on screen, what the browser reported, the newest
 * tasks as the node has them and the tail of the node's log, so a rare failure can be read
 * from the CI output alone.
 */
async function explained(wait) {
  try {
    return await wait();
  } catch (err) {
    const main = await page.locator('#main').innerText().catch((e) => `(no text: ${e.message})`);
    const tasks = await stack.api('GET', '/tasks?limit=3').catch((e) => ({ data: e.message }));
    const newest = tasks.data?.[0]?.id ? (await stack.api('GET', `/tasks/${tasks.data[0].id}`)).data : null;
    console.log(JSON.stringify({ url: page.url(), main: main.slice(0, 2000), problems, tasks: tasks.data, newest }, null, 1));
    console.log(stack.log().split('\n').slice(-60).join('\n'));
    throw err;
  }
}

/**
 * A go-to shortcut, typed the way a keyboard user would: Escape out of any field first. Waits
 * until the router has drawn the page: going to the page already shown draws it afresh, and a
 * field filled before that lands in the old, discarded form.
 */
async function go(key) {
  await page.keyboard.press('Escape');
  const drawn = await page.evaluate(() => window.kaiPagesDrawn || 0);
  await page.keyboard.press('g');
  await page.keyboard.press(key);
  await page.waitForFunction((n) => (window.kaiPagesDrawn || 0) > n, drawn);
}

before(async () => {
  stack = await startStack({ chunkDelayMs: 80 });
  browser = await chromium.launch(CHROMIUM);
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
  // Counts the router's `kai:page` events (one per page drawn), for `go`.
  await page.addInitScript(() => {
    window.addEventListener('kai:page', () => { window.kaiPagesDrawn = (window.kaiPagesDrawn || 0) + 1; });
  });
  watch(page);
});

after(async () => {
  await browser?.close();
  await stack?.stop();
});

afterEach(() => {
  const found = problems.splice(0);
  assert.deepEqual(found, [], `the browser reported problems:\n${found.join('\n')}`);
});

test('a sealed node shows the unlock page; the passphrase unlocks it', async () => {
  await page.goto(`${stack.url}/`);
  await heading('The vault is sealed').waitFor();
  await checkA11y(page, 'unlock');
  await shot('01-unlock');
  await page.getByLabel('Passphrase').fill(PASSPHRASE);
  await page.getByRole('button', { name: 'Unlock' }).click();
  await heading('Log in to kai').waitFor();
  const status = await stack.api('GET', '/vault/status');
  assert.equal(status.data.state, 'unsealed');
});

test('log in, and the dashboard shows the node and live events', async () => {
  await checkA11y(page, 'login');
  await shot('02-login');
  await page.getByLabel('Username').fill('owner');
  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Log in' }).click();
  await heading('Dashboard').waitFor();
  await page.locator('#live-status[data-state="on"]').waitFor();
  await page.getByText('e2e', { exact: true }).waitFor();
  // An event published elsewhere arrives over the WebSocket.
  const published = await stack.api('POST', '/events', { type: 'E2E_PING', payload: { hello: 'browser' } });
  assert.equal(published.status, 201);
  await page.locator(`#events li[data-offset="${published.data.offset}"]`, { hasText: 'E2E_PING' }).waitFor();
  await checkA11y(page, 'dashboard');
  await shot('03-dashboard');
  await checkFocusRing(page, 'dashboard');
});

test('the live stream resumes after a dropped connection with nothing missed', async () => {
  // Drop the socket (as a network blip would), publish while it is down, and watch the
  // reconnect resubscribe after the last offset seen: every missed event arrives, once.
  await page.evaluate(async () => {
    const { live } = await import('/ui/lib/live.js');
    live.ws.close(4000, 'test: dropped');
  });
  const missed = [];
  for (let i = 0; i < 3; i += 1) {
    const r = await stack.api('POST', '/events', { type: 'E2E_MISSED', payload: { i } });
    assert.equal(r.status, 201);
    missed.push(r.data.offset);
  }
  await page.locator('#live-status[data-state="on"]').waitFor();
  for (const offset of missed) await page.locator(`#events li[data-offset="${offset}"]`, { hasText: 'E2E_MISSED' }).waitFor();
  const shown = await page.locator('#events li[data-offset]').evaluateAll((els) => els.map((e) => Number(e.dataset.offset)));
  assert.equal(new Set(shown).size, shown.length, `no event shown twice: ${shown}`);
});

test('chat: a streamed reply arrives piece by piece', async () => {
  await go('c');
  await page.locator('#composer').waitFor();
  await page.getByRole('heading', { name: 'New thread' }).waitFor();
  const pieces = ['Streaming', ' works', ' one', ' piece', ' at', ' a', ' time', ' here.'];
  await stack.fake.send({ chunks: pieces });
  await page.locator('#composer').fill('Hello from the browser test');
  await page.keyboard.press('Enter');
  const log = page.getByRole('log', { name: 'Messages' });
  await page.locator('.msg.assistant.streaming .text').filter({ hasText: 'Streaming' }).waitFor();
  const partial = await page.locator('.msg.assistant.streaming .text').textContent();
  assert.equal(await log.getAttribute('aria-busy'), 'true', 'the log is busy while the reply streams');
  await page.locator('.msg.assistant:not(.streaming) .text', { hasText: pieces.join('') }).waitFor();
  assert.ok(partial.length < pieces.join('').length, `saw a partial reply first: ${JSON.stringify(partial)}`);
  assert.equal(await log.getAttribute('aria-busy'), 'false');
  await page.locator('.threads a', { hasText: 'Hello from the browser test' }).waitFor();
  await page.getByRole('heading', { name: 'Hello from the browser test' }).waitFor();
});

test('chat: a tool call is shown, answered, and its result shown', async () => {
  await stack.fake.send({ tool_calls: [{ id: 'call_e2e', name: 'clock', arguments: { tz: 'UTC' } }] });
  await page.getByText('Tools the model may call').click();
  await page.getByLabel('Tool definitions (JSON)').fill(JSON.stringify([{ name: 'clock', description: 'The time', parameters: { type: 'object', properties: { tz: { type: 'string' } } } }]));
  await page.locator('#composer').fill('What time is it?');
  await page.getByRole('button', { name: 'Send', exact: true }).click();
  const call = page.locator('.toolcall[data-tool-call="call_e2e"]');
  await call.locator('.tname', { hasText: 'clock' }).waitFor();
  assert.match(await call.locator('pre').textContent(), /"tz": "UTC"/);
  await stack.fake.send({ text: 'It is noon in UTC.' });
  await page.getByLabel('Result of clock').fill('12:00 UTC');
  await page.getByRole('button', { name: 'Send result' }).click();
  await page.locator('.msg.tool', { hasText: '12:00 UTC' }).waitFor();
  await page.locator('.msg.assistant:not(.streaming)', { hasText: 'It is noon in UTC.' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Send result' }).count(), 0, 'an answered call asks no more');
});

test('chat: regenerate makes a branch; switch between branches', async () => {
  await stack.fake.send({ text: 'A second answer.' });
  await page.locator('.msg.assistant').last().getByRole('button', { name: 'Regenerate' }).click();
  await page.locator('.msg.assistant:not(.streaming)', { hasText: 'A second answer.' }).waitFor();
  const nav = page.locator('.msg.assistant').last().getByRole('group', { name: 'Branches' });
  await nav.getByText('2/2').waitFor();
  await nav.getByRole('button', { name: 'Previous branch' }).click();
  await page.locator('.msg.assistant').last().getByText('1/2').waitFor();
  await page.locator('.msg.assistant', { hasText: 'It is noon in UTC.' }).waitFor();
});

test('chat: rename, search, persona, export and delete threads', async () => {
  await page.getByRole('button', { name: 'Rename' }).click();
  await page.getByRole('dialog').getByLabel('Title').fill('E2E thread');
  await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
  await page.getByRole('heading', { name: 'E2E thread' }).waitFor();
  await page.getByLabel('Persona').selectOption('terse');
  await page.locator('.toast', { hasText: 'Persona: terse' }).waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export Markdown' }).click()]);
  assert.match(download.suggestedFilename(), /\.md$/);
  const md = readFileSync(await download.path(), 'utf8');
  assert.match(md, /# E2E thread/);
  assert.match(md, /12:00 UTC/);
  await page.getByLabel('Search threads').fill('E2E');
  await page.locator('.threads a', { hasText: 'E2E thread' }).waitFor();
  await page.getByLabel('Search threads').fill('no such thread anywhere');
  await page.getByText('No thread matches.').waitFor();
  await page.getByLabel('Search threads').fill('');
  await page.locator('.threads a', { hasText: 'E2E thread' }).waitFor();
  await checkA11y(page, 'chat');
  await shot('04-chat');
  // A second thread, deleted again.
  await page.getByRole('button', { name: 'New', exact: true }).click();
  await page.getByRole('heading', { name: 'New thread' }).waitFor();
  await page.locator('#composer').fill('Delete me soon');
  await page.keyboard.press('Enter');
  await page.locator('.msg.assistant:not(.streaming)', { hasText: 'echo: Delete me soon' }).waitFor();
  await page.getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('heading', { name: 'New thread' }).waitFor();
  await page.locator('.threads a', { hasText: 'E2E thread' }).waitFor();
  assert.equal(await page.locator('.threads a', { hasText: 'Delete me soon' }).count(), 0);
});

test('vault: secret names and policies; a value only on Reveal', async () => {
  await go('v');
  await heading('Vault').waitFor();
  await page.locator('#vault-state', { hasText: 'unsealed' }).waitFor();
  const value = 'sk-e2e-SECRET-value-123';
  await page.getByLabel('Name').fill('e2e/api-key');
  await page.getByLabel('Value').fill(value);
  await page.getByRole('button', { name: 'Save secret' }).click();
  await page.locator('td code', { hasText: 'e2e/api-key' }).waitFor();
  assert.ok(!(await page.content()).includes(value), 'the value is not in the page before Reveal');
  await checkA11y(page, 'vault');
  await shot('05-vault');
  await page.getByRole('button', { name: 'Reveal the value of e2e/api-key' }).click();
  await page.locator('code[data-secret="e2e/api-key"]', { hasText: value }).waitFor();
  await page.getByRole('button', { name: 'Hide' }).click();
  assert.ok(!(await page.content()).includes(value), 'hidden again');
});

test('audit: entries and a verified log', async () => {
  await go('a');
  await heading('Audit log').waitFor();
  await page.locator('td code', { hasText: 'vault.secret.read' }).waitFor();
  await page.getByRole('button', { name: 'Verify the log' }).click();
  await page.locator('#verify-result', { hasText: 'Verified.' }).waitFor();
  await checkA11y(page, 'audit');
  await shot('06-audit');
});

/** Drops the problems a test provoked on purpose (a 422 it expects, and Chromium's log of it). */
function expected(re) {
  for (let i = problems.length - 1; i >= 0; i -= 1) if (re.test(problems[i])) problems.splice(i, 1);
}

// A 1×1 PNG.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64');

test('agents: the registry, a registered agent walked through its lifecycle, a bad definition explained', async () => {
  await go('n');
  await heading('Agents').waitFor();
  await page.locator('[data-agent-state="kPlanner:planner"]', { hasText: 'active' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Terminate kPlanner:planner' }).count(), 0, 'built-ins cannot be terminated');
  await page.getByRole('button', { name: 'Register agent' }).click();
  await page.locator('[data-agent-state="kExecutor:researcher"]', { hasText: 'created' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Activate kExecutor:researcher' }).count(), 0, 'only legal actions are offered');
  await page.getByRole('button', { name: 'Initialize kExecutor:researcher' }).click();
  await page.locator('[data-agent-state="kExecutor:researcher"]', { hasText: 'initialized' }).waitFor();
  await page.getByRole('button', { name: 'Activate kExecutor:researcher' }).click();
  await page.locator('[data-agent-state="kExecutor:researcher"]', { hasText: 'active' }).waitFor();
  await page.getByRole('button', { name: 'Suspend kExecutor:researcher' }).waitFor();
  await page.getByLabel('Definition (YAML)').fill('name: nope\nversion: 1\n');
  await page.getByRole('button', { name: 'Register agent' }).click();
  const alert = page.locator('form .alert[role="alert"]');
  await alert.waitFor();
  assert.match(await alert.textContent(), /name/, 'the problem names the field');
  expected(/422|Unprocessable/);
  await checkA11y(page, 'agents');
  await shot('20-agents');
});

test('tasks: a goal is planned, run and reviewed while its graph fills in live', async () => {
  await stack.fake.tasks({ steps: [
    { id: 'gather', instruction: 'gather the facts' },
    { id: 'outline', instruction: 'outline the answer' },
    { id: 'write', instruction: 'write the summary', depends_on: ['gather', 'outline'] },
  ] });
  await go('t');
  await heading('Tasks').waitFor();
  await page.getByLabel('Goal', { exact: true }).fill('Summarise what the browser test knows');
  await page.getByRole('button', { name: 'Start task' }).click();
  await heading('Summarise what the browser test knows').waitFor();
  assert.match(page.url(), /#\/tasks\/[^/]+$/);
  await page.locator('.tstep[data-step="write"][data-state="succeeded"]').waitFor({ timeout: 60_000 });
  await page.locator('#task-status[data-status="succeeded"]').waitFor();
  for (const id of ['gather', 'outline']) await page.locator(`.tstep[data-step="${id}"][data-state="succeeded"]`).waitFor();
  const stages = await page.locator('.tcol').evaluateAll((cols) => cols.map((c) => [...c.querySelectorAll('[data-step]')].map((b) => b.dataset.step)));
  assert.deepEqual(stages, [['gather', 'outline'], ['write']], 'steps sit in their dependency columns');
  assert.match(await page.locator('#task-result').textContent(), /done: write the summary/);
  await page.locator('.tstep[data-step="gather"]').click();
  await page.locator('#step-details .step-output', { hasText: 'done: gather the facts' }).waitFor();
  await checkA11y(page, 'task');
  await shot('21-task-done');
  await go('t');
  await page.locator('td a', { hasText: 'Summarise what the browser test knows' }).waitFor();
  await page.locator('tr', { hasText: 'Summarise what the browser test knows' }).getByText('succeeded').waitFor();
  await checkA11y(page, 'tasks');
  await shot('22-tasks');
});

test('tasks: a plan that asks for approval runs once approved', async () => {
  await page.getByLabel('Goal', { exact: true }).fill('Plan first, then ask me');
  await page.getByLabel('Plan approval').selectOption('ask');
  await page.getByRole('button', { name: 'Start task' }).click();
  await explained(() => page.locator('#approval').waitFor({ timeout: 30_000 }));
  await page.locator('.tstep[data-step="write"][data-state="pending"]').waitFor();
  await shot('23-task-approval');
  await page.getByRole('button', { name: /Approve plan v1/ }).click();
  await page.locator('#task-status[data-status="succeeded"]').waitFor({ timeout: 60_000 });
  assert.equal(await page.locator('#approval').count(), 0, 'the approval box is gone');
});

test('tasks: a step asks a question; the answer box sends the reply and the step goes on', async () => {
  await stack.fake.tasks({ steps: [{ id: 'confirm', instruction: 'ask: Which day suits you?' }] });
  await go('t');
  await page.getByLabel('Goal', { exact: true }).fill('Book the table');
  await page.getByRole('button', { name: 'Start task' }).click();
  await page.locator('.question', { hasText: 'Step confirm asks: Which day suits you?' }).waitFor({ timeout: 30_000 });
  await page.locator('.tstep[data-step="confirm"][data-state="waiting"]').waitFor();
  await checkA11y(page, 'task-question');
  await shot('24-task-question');
  await page.getByLabel('Your answer').fill('Tuesday');
  await page.getByRole('button', { name: 'Answer', exact: true }).click();
  await page.locator('#task-status[data-status="succeeded"]').waitFor({ timeout: 60_000 });
  assert.match(await page.locator('#task-result').textContent(), /Tuesday/);
  assert.equal(await page.getByText('Questions for you').count(), 0, 'an answered question is gone');
});

test('tasks: a waiting task is cancelled, then retried to the end', async () => {
  await stack.fake.tasks({ steps: [{ id: 'room', instruction: 'ask: Which room?' }] });
  await go('t');
  await page.getByLabel('Goal', { exact: true }).fill('Reserve a room');
  await page.getByRole('button', { name: 'Start task' }).click();
  await page.locator('.tstep[data-step="room"][data-state="waiting"]').waitFor({ timeout: 30_000 });
  await page.getByRole('button', { name: 'Cancel task' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Cancel task' }).click();
  await page.locator('#task-status[data-status="cancelled"]').waitFor();
  assert.match(await page.locator('#task-status').textContent(), /cancelled/);
  assert.equal(await page.getByText('Questions for you').count(), 0, 'a finished task asks nothing');
  assert.equal(await page.getByRole('button', { name: 'Cancel task' }).count(), 0, 'no cancel on a cancelled task');
  await shot('25-task-cancelled');
  await page.getByRole('button', { name: 'Retry' }).click();
  try {
    await page.locator('.question', { hasText: 'Step room asks: Which room?' }).waitFor({ timeout: 30_000 });
  } catch (e) {
    const id = page.url().split('/').pop();
    console.log(JSON.stringify((await stack.api('GET', `/tasks/${id}`)).data, null, 1));
    throw e;
  }
  await page.getByLabel('Your answer').fill('The blue one');
  await page.getByRole('button', { name: 'Answer', exact: true }).click();
  await page.locator('#task-status[data-status="succeeded"]').waitFor({ timeout: 60_000 });
  assert.match(await page.locator('#task-result').textContent(), /The blue one/);
  assert.equal(await page.getByRole('button', { name: 'Retry' }).count(), 0, 'no retry once it succeeded');
});

test('tasks: a plan awaiting approval is rejected with a reason', async () => {
  await stack.fake.tasks({ steps: [{ id: 'spend', instruction: 'buy the thing' }] });
  await go('t');
  await page.getByLabel('Goal', { exact: true }).fill('Buy it, once I agree');
  await page.getByLabel('Plan approval').selectOption('ask');
  await page.getByRole('button', { name: 'Start task' }).click();
  await explained(() => page.locator('#approval').waitFor({ timeout: 30_000 }));
  await page.getByRole('button', { name: 'Reject' }).click();
  await page.getByRole('dialog').getByRole('textbox').fill('Too expensive');
  await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
  await page.locator('#task-status[data-status="rejected"]').waitFor();
  assert.equal(await page.locator('#approval').count(), 0, 'the approval box is gone');
  assert.equal(await page.locator('.tstep[data-step="spend"][data-state="pending"]').count(), 1, 'nothing ran');
  await go('t');
  await page.locator('tr', { hasText: 'Buy it, once I agree' }).getByText('rejected').waitFor();
});

test('tasks: a plan is edited into v2 (bad edits explained) and v2 runs once approved', async () => {
  await stack.fake.tasks({ steps: [
    { id: 'draft', instruction: 'draft the note' },
    { id: 'send', instruction: 'send the note', depends_on: ['draft'] },
  ] });
  await go('t');
  await page.getByLabel('Goal', { exact: true }).fill('Write and send the note');
  await page.getByLabel('Plan approval').selectOption('ask');
  await page.getByRole('button', { name: 'Start task' }).click();
  await explained(() => page.locator('#approval').waitFor({ timeout: 30_000 }));
  await page.getByRole('button', { name: 'Edit plan' }).click();
  const editor = page.getByLabel('Steps (JSON)');
  assert.match(await editor.inputValue(), /"send the note"/, 'the editor starts from the proposed plan');
  await editor.fill('{"steps": [');
  await page.getByRole('button', { name: 'Save as v2' }).click();
  await page.locator('#plan-problem', { hasText: 'Not valid JSON' }).waitFor();
  await editor.fill(JSON.stringify({ steps: [{ id: 'draft', instruction: 'draft it', depends_on: ['nowhere'] }] }));
  await page.getByRole('button', { name: 'Save as v2' }).click();
  await page.locator('#plan-problem .alert', { hasText: 'nowhere' }).waitFor();
  expected(/400|Bad Request/);
  await checkA11y(page, 'plan-editor');
  await shot('26-plan-editor');
  await editor.fill(JSON.stringify({ steps: [
    { id: 'draft', instruction: 'draft the short note' },
    { id: 'check', instruction: 'check the tone', depends_on: ['draft'] },
    { id: 'send', instruction: 'send the note', depends_on: ['check'] },
  ] }, null, 2));
  await page.getByRole('button', { name: 'Save as v2' }).click();
  await page.getByRole('button', { name: 'Approve plan v2' }).waitFor();
  const stages = await page.locator('.tcol').evaluateAll((cols) => cols.map((c) => [...c.querySelectorAll('[data-step]')].map((b) => b.dataset.step)));
  assert.deepEqual(stages, [['draft'], ['check'], ['send']], 'the graph shows the edited plan');
  await page.getByRole('button', { name: 'Approve plan v2' }).click();
  await page.locator('#task-status[data-status="succeeded"]').waitFor({ timeout: 60_000 });
  for (const id of ['draft', 'check', 'send']) await page.locator(`.tstep[data-step="${id}"][data-state="succeeded"]`).waitFor();
  await page.locator('.tstep[data-step="draft"]').click();
  await page.locator('#step-details .step-output', { hasText: 'done: draft the short note' }).waitFor();
  await page.getByText(/Plan v2 \(approved\)/).waitFor();
});

test('workflows: a bad definition explained, one saved, run with parameters, and a signed webhook starts it', async () => {
  await stack.fake.tasks({ steps: [] });
  await go('w');
  await heading('Workflows').waitFor();
  await page.getByText('No workflows yet.').waitFor();
  const def = page.getByLabel('Definition (YAML)');
  await def.fill('name: Bad Name\nsteps: []\n');
  await page.getByRole('button', { name: 'Save workflow' }).click();
  await page.locator('#workflow-problem .alert', { hasText: 'workflow name' }).waitFor();
  expected(/400|Bad Request/);
  await checkA11y(page, 'workflows');
  await shot('27-workflows');
  await def.fill([
    'name: greet',
    'description: Write a greeting',
    'parameters:',
    '  who: {type: string}',
    '  times: {type: integer, default: 2}',
    'steps:',
    '  - id: hello',
    '    instruction: "greet {{params.who}} {{params.times}} times"',
    '',
  ].join('\n'));
  await page.getByRole('button', { name: 'Save workflow' }).click();
  await heading('greet').waitFor();
  assert.match(await page.locator('#workflow-text').textContent(), /params\.who/);
  assert.equal(await page.getByLabel('times').inputValue(), '2', 'defaults are filled in');
  await page.getByLabel('who').fill('Ada');
  await page.getByRole('button', { name: 'Run workflow' }).click();
  await page.locator('#task-status[data-status="succeeded"]').waitFor({ timeout: 60_000 });
  assert.match(await page.locator('#task-result').textContent(), /done: greet Ada 2 times/);
  await go('w');
  await page.locator('td a', { hasText: 'greet' }).waitFor();
  await page.getByLabel('Name', { exact: true }).fill('greeter');
  await page.getByRole('button', { name: 'Create webhook' }).click();
  const secret = (await page.locator('#webhook-secret').textContent()).trim();
  assert.ok(secret.length >= 32, 'the secret is shown once');
  await shot('28-webhook-secret');
  await page.getByRole('dialog').getByRole('button', { name: 'I have copied it' }).click();
  await page.locator('td', { hasText: 'POST /webhooks/greeter' }).waitFor();
  assert.equal(await page.getByText(secret).count(), 0, 'the secret is gone from the page');
  const body = JSON.stringify({ params: { who: 'the webhook', times: 3 } });
  const ts = String(Math.floor(Date.now() / 1000));
  const sig = createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex');
  const res = await fetch(`${stack.url}/webhooks/greeter`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-kai-timestamp': ts, 'x-kai-signature': `sha256=${sig}` } });
  assert.equal(res.status, 202, await res.clone().text());
  const started = await res.json();
  await page.goto(`${stack.url}/#/tasks/${encodeURIComponent(started.id)}`);
  await page.locator('#task-status[data-status="succeeded"]').waitFor({ timeout: 60_000 });
  assert.match(await page.locator('#task-result').textContent(), /done: greet the webhook 3 times/);
  await go('w');
  await page.getByRole('button', { name: 'Delete webhook greeter' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.getByText('No webhooks yet.').waitFor();
  const after = await fetch(`${stack.url}/webhooks/greeter`, { method: 'POST', body, headers: { 'content-type': 'application/json', 'x-kai-timestamp': ts, 'x-kai-signature': `sha256=${sig}` } });
  assert.equal(after.status, 404, 'a deleted webhook refuses deliveries');
});

test('memory: remember, search, browse and the graph', async () => {
  await go('m');
  await heading('Memory').waitFor();
  await page.getByLabel('Text').fill('The e2e cat is called Miso and likes boxes');
  await page.getByRole('button', { name: 'Remember' }).click();
  await page.getByText(/Remembered in /).waitFor();
  await page.getByLabel('Search memories').fill('Miso');
  await page.getByRole('button', { name: 'Search', exact: true }).click();
  await page.locator('#memory-results td', { hasText: 'The e2e cat is called Miso' }).waitFor();
  await checkA11y(page, 'memory');
  await shot('25-memory');
  await page.getByRole('tab', { name: 'Browse' }).click();
  await page.locator('td', { hasText: 'The e2e cat is called Miso' }).waitFor();
  await page.getByRole('tab', { name: 'Graph' }).click();
  await page.locator('.mgraph, [role="tabpanel"] .empty').first().waitFor();
  await shot('26-memory-graph');
});

test('prompts: create, edit into a second version, diff and test render', async () => {
  await go('p');
  await heading('Prompts').waitFor();
  const main = page.locator('main');
  await main.getByLabel('Name').fill('greet');
  await main.getByLabel('Template (minijinja)').fill('Hello {{ who }}!');
  await main.getByLabel('Variables').fill('[{"name": "who", "type": "string", "required": true}]');
  await page.getByRole('button', { name: 'Create prompt' }).click();
  await page.getByRole('heading', { name: /greet@1/ }).waitFor();
  await main.getByLabel('Template (minijinja)').fill('Hello there, {{ who }}!');
  await main.getByLabel('Edit note').fill('friendlier');
  await page.getByRole('button', { name: 'Save as v2' }).click();
  await page.getByRole('heading', { name: /greet@2/ }).waitFor();
  await page.getByLabel('Search prompts').fill('greet');
  await page.locator('.plist a', { hasText: 'greet' }).waitFor();
  await page.getByRole('tab', { name: /Versions/ }).click();
  await page.getByRole('button', { name: 'Show diff' }).click();
  await page.locator('#prompt-diff .d-add', { hasText: 'Hello there' }).waitFor();
  await checkA11y(page, 'prompt-diff');
  await shot('27-prompt-diff');
  await page.getByRole('tab', { name: 'Test render' }).click();
  await page.getByLabel('who (required)').fill('Ana');
  await page.getByRole('button', { name: 'Render v2' }).click();
  await page.locator('#render-output pre', { hasText: 'Hello there, Ana!' }).waitFor();
  await shot('28-prompt-render');
});

test('artifacts: upload with progress, previews, a share link used and revoked, download, delete', async () => {
  await go('f');
  await heading('Artifacts').waitFor();
  const file = page.locator('input[type="file"]');
  await file.setInputFiles({ name: 'notes.md', mimeType: 'text/markdown', buffer: Buffer.from('# E2E notes\n\nSome *markdown* here.\n') });
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('#upload-status', { hasText: 'Uploaded notes.md' }).waitFor();
  assert.equal(await page.locator('progress').evaluate((p) => p.value), 100);
  await page.getByRole('heading', { name: /notes\.md/ }).waitFor();
  const frame = page.frameLocator('iframe.preview-frame');
  await frame.getByRole('heading', { name: 'E2E notes' }).waitFor();
  assert.equal(await page.locator('iframe.preview-frame').getAttribute('sandbox'), '', 'the preview may run nothing');
  await checkA11y(page, 'artifacts');
  await shot('29-artifact-markdown');
  await file.setInputFiles({ name: 'dot.png', mimeType: 'image/png', buffer: PNG });
  await page.getByRole('button', { name: 'Upload' }).click();
  await page.locator('img.preview-img[alt="Preview of dot.png"]').waitFor();
  assert.ok((await page.locator('img.preview-img').evaluate((i) => i.naturalWidth)) === 1, 'the image decoded');
  // A share link: shown once, works without a login, then revoked.
  await page.getByRole('button', { name: 'Create share link' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Create link' }).click();
  const link = (await page.locator('#share-link').textContent()).trim();
  const shared = await fetch(link);
  assert.equal(shared.status, 200);
  assert.deepEqual(Buffer.from(await shared.arrayBuffer()), PNG);
  await page.getByRole('dialog').getByRole('button', { name: 'Done' }).click();
  await page.locator('#artifact-detail td', { hasText: 'active' }).waitFor();
  await page.locator('#artifact-detail').getByRole('button', { name: 'Revoke' }).click();
  await page.locator('#artifact-detail td', { hasText: 'revoked' }).waitFor();
  assert.equal((await fetch(link)).status, 410, 'a revoked link is gone');
  const [dl] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Download' }).click()]);
  assert.equal(dl.suggestedFilename(), 'dot.png');
  assert.deepEqual(readFileSync(await dl.path()), PNG);
  await shot('30-artifact-image');
  await page.locator('#artifact-detail').getByRole('button', { name: 'Delete' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
  await page.locator('.toast', { hasText: 'Deleted dot.png' }).waitFor();
  await page.locator('td button', { hasText: 'dot.png' }).waitFor({ state: 'detached' });
  await page.locator('td button', { hasText: 'notes.md' }).waitFor();
});

test('settings: an API token is shown once, works, and is revoked', async () => {
  await go('s');
  await heading('Settings').waitFor();
  await page.getByRole('tab', { name: 'API tokens' }).click();
  await page.getByLabel('Name').fill('e2e-token');
  await page.getByLabel('Role', { exact: true }).selectOption('member');
  await page.getByRole('button', { name: 'Create token' }).click();
  const token = (await page.locator('#new-token').textContent()).trim();
  assert.match(token, /^kai_/);
  assert.equal((await stack.api('GET', '/auth/me', undefined, token)).status, 200, 'the new token works');
  await shot('07-token-once');
  await page.getByRole('button', { name: 'I have copied it' }).click();
  assert.ok(!(await page.content()).includes(token), 'the token is gone from the page');
  await page.locator('tr', { hasText: 'e2e-token' }).getByText('active').waitFor();
  await checkA11y(page, 'tokens');
  await page.getByRole('button', { name: 'Revoke e2e-token' }).click();
  await page.getByRole('dialog').getByRole('button', { name: 'Revoke' }).click();
  await page.locator('tr', { hasText: 'e2e-token' }).getByText('revoked').waitFor();
  assert.equal((await stack.api('GET', '/auth/me', undefined, token)).status, 401, 'the revoked token is refused');
  await shot('08-tokens');
});

test('settings: providers, personas and a rejected config edit', async () => {
  writeFileSync(stack.configFile, `${stack.config}bogus_key = 1\n`);
  const tab = page.getByRole('tab', { name: 'Providers and configuration' });
  const deadline = Date.now() + 20_000;
  for (;;) {
    await tab.click();
    await page.locator('td', { hasText: 'fake-chat' }).first().waitFor();
    if (await page.locator('#config-problems').count()) break;
    assert.ok(Date.now() < deadline, 'the rejected edit shows up');
    await page.getByRole('tab', { name: 'Preferences' }).click();
    await page.waitForTimeout(250);
  }
  assert.match(await page.locator('#config-problems').textContent(), /bogus_key/);
  await checkA11y(page, 'config');
  await shot('09-config');
  writeFileSync(stack.configFile, stack.config);
});

test('settings: users and roles', async () => {
  await page.getByRole('tab', { name: 'Users and roles' }).click();
  await page.getByLabel('Username').fill('alice');
  await page.getByLabel('Password').fill('alice password 1');
  await page.getByLabel('Role', { exact: true }).selectOption('viewer');
  await page.getByRole('button', { name: 'Create user' }).click();
  await page.getByRole('combobox', { name: 'Role of alice' }).waitFor();
  await page.getByRole('combobox', { name: 'Role of alice' }).selectOption('member');
  await page.locator('.toast', { hasText: 'alice is now member' }).waitFor();
  await checkA11y(page, 'users');
  await shot('10-users');
});

test('roles: a member sees the registry without lifecycle actions and may start tasks', async () => {
  // alice was made a member above; a second tab logs in as her.
  const other = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const p2 = await other.newPage();
  watch(p2);
  await p2.goto(`${stack.url}/#/agents`);
  await p2.getByLabel('Username').fill('alice');
  await p2.getByLabel('Password').fill('alice password 1');
  await p2.getByRole('button', { name: 'Log in' }).click();
  await p2.getByRole('heading', { level: 1, name: 'Agents' }).waitFor();
  await p2.locator('[data-agent-state="kPlanner:planner"]').waitFor();
  assert.equal(await p2.getByRole('button', { name: 'Register agent' }).count(), 0, 'no editor for members');
  assert.equal(await p2.getByRole('button', { name: /^(Suspend|Terminate) / }).count(), 0, 'no lifecycle actions for members');
  await p2.goto(`${stack.url}/#/tasks`);
  await p2.getByRole('button', { name: 'Start task' }).waitFor();
  await other.close();
});

test('preferences: dark theme, saved on the node; shortcut help', async () => {
  await page.getByRole('tab', { name: 'Preferences' }).click();
  await page.getByLabel('Dark').check();
  await page.getByRole('button', { name: 'Save preferences' }).click();
  await page.locator('.toast', { hasText: 'Preferences saved' }).waitFor();
  assert.equal(await page.locator('html').getAttribute('data-theme'), 'dark');
  const prefs = await page.evaluate(async () => (await import('/ui/lib/api.js')).get('/users/preferences'));
  assert.equal(prefs.theme, 'dark');
  await go('d');
  await heading('Dashboard').waitFor();
  await checkA11y(page, 'dashboard-dark');
  await shot('11-dashboard-dark');
  await page.keyboard.press('?');
  const help = page.getByRole('dialog', { name: 'Keyboard shortcuts' });
  await help.waitFor();
  await help.getByText('Go to Chat').waitFor();
  await page.keyboard.press('Escape');
  await help.waitFor({ state: 'detached' });
  await page.keyboard.press('t');
  await page.locator('.toast', { hasText: 'Theme: system' }).waitFor();
});

test('phone width: menu, dashboard, chat and a task graph fit', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await heading('Dashboard').waitFor();
  const menu = page.getByRole('button', { name: 'Menu' });
  await menu.click();
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: /Chat/ }).click();
  await page.locator('#composer').waitFor();
  await page.locator('.threads a', { hasText: 'E2E thread' }).click();
  await page.locator('.msg.tool', { hasText: '12:00 UTC' }).waitFor();
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scrolling at phone width (${overflow}px)`);
  await checkA11y(page, 'chat-phone');
  await shot('12-chat-phone');
  await go('t');
  await page.locator('td a', { hasText: 'Summarise what the browser test knows' }).click();
  await page.locator('.tstep[data-step="write"]').waitFor();
  const wide = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(wide <= 1, `the task graph scrolls inside its card at phone width (${wide}px)`);
  await checkA11y(page, 'task-phone');
  await shot('14-task-phone');
  await go('d');
  await heading('Dashboard').waitFor();
  await shot('13-dashboard-phone');
  await page.setViewportSize({ width: 1280, height: 860 });
});

test('log out ends the session and the live stream', async () => {
  await page.getByRole('button', { name: 'Log out' }).click();
  await heading('Log in to kai').waitFor();
  await page.locator('#live-status[data-state="off"]').waitFor({ state: 'attached' });
});
