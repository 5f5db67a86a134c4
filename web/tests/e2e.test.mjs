// End-to-end: Debian's Chromium, driven by playwright-core, against a real `kai serve` (started
// sealed) and the repo's fake OpenAI-compatible model server. Unlock the vault, log in, watch a
// live event arrive, chat with a streaming reply, answer a tool call, regenerate and switch
// branches, rename/search/export/delete threads, store and reveal a secret, verify the audit
// log, create (shown once) and revoke an API token, see a rejected config edit, manage users,
// switch theme, use the shortcut help, and use it at phone width. Any console error, page error,
// failed request or HTTP error fails the test. Every page's screenshot goes to
// target/screenshots/ (CI keeps them as artifacts).

import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
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
/** A go-to shortcut, typed the way a keyboard user would: Escape out of any field first. */
async function go(key) {
  await page.keyboard.press('Escape');
  await page.keyboard.press('g');
  await page.keyboard.press(key);
}

before(async () => {
  stack = await startStack({ chunkDelayMs: 80 });
  browser = await chromium.launch(CHROMIUM);
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(15_000);
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

test('phone width: menu, dashboard and chat fit', async () => {
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
