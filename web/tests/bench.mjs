// Dashboard benchmarks in Chromium against a real node: page weight (bytes of JS and CSS the
// browser loads for the shell and for the dashboard, uncompressed and gzipped; and the whole
// embedded app) and time to interactive, cold cache, median and p95 of RUNS loads:
//   shell: the login page of a fresh visitor; dashboard: a logged-in tab's dashboard with its
//   data (system info, health, usage, newest events) and the live WebSocket.
// "Interactive" is the later of the app's `kai:interactive` mark (the page is mounted with its
// data and handlers) and the end of the last long task (> 50 ms) before it. Prints JSON.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { chromium } from 'playwright-core';
import { startStack, CHROMIUM, ROOT, PASSWORD } from './stack.mjs';

const RUNS = Number(process.env.RUNS || 10);

function filesUnder(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = path.join(dir, f);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q) => s[Math.min(s.length - 1, Math.round((s.length - 1) * q))];
  return { median: +at(0.5).toFixed(1), p95: +at(0.95).toFixed(1), min: +s[0].toFixed(1), max: +s[s.length - 1].toFixed(1) };
};

async function load(browser, url, refreshToken, waitFor) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  await context.addInitScript((token) => {
    window.__longTasks = [];
    try {
      new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__longTasks.push(e.startTime + e.duration); })
        .observe({ type: 'longtask', buffered: true });
    } catch { /* not supported */ }
    if (token) sessionStorage.setItem('kai.refresh', token);
  }, refreshToken || null);
  const page = await context.newPage();
  const bytes = { js: 0, css: 0, html: 0, jsGzip: 0, cssGzip: 0, files: 0 };
  const pending = [];
  page.on('response', (r) => {
    const type = r.request().resourceType();
    if (!['script', 'stylesheet', 'document'].includes(type)) return;
    pending.push(r.body().then((b) => {
      const gz = zlib.gzipSync(b).length;
      bytes.files += 1;
      if (type === 'script') { bytes.js += b.length; bytes.jsGzip += gz; }
      if (type === 'stylesheet') { bytes.css += b.length; bytes.cssGzip += gz; }
      if (type === 'document') bytes.html += b.length;
    }, () => {}));
  });
  await page.goto(url);
  await page.waitForFunction(() => performance.getEntriesByName('kai:interactive').length > 0, null, { timeout: 30_000 });
  await page.locator(waitFor).first().waitFor();
  const t = await page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0];
    const mark = performance.getEntriesByName('kai:interactive')[0].startTime;
    const fcp = performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null;
    const lastLong = Math.max(0, ...window.__longTasks.filter((end) => end <= mark + 50));
    return { dcl: nav.domContentLoadedEventEnd, load: nav.loadEventEnd, mark, fcp, tti: Math.max(mark, lastLong), longTasks: window.__longTasks.length };
  });
  await Promise.all(pending);
  await context.close();
  return { t, bytes };
}

async function main() {
  const stack = await startStack({ unlocked: true, chunkDelayMs: 0, env: { KAI_LOG__LEVEL: 'warn', KAI_LIMITS__REQUESTS_PER_SECOND: '0' } });
  const browser = await chromium.launch(CHROMIUM);
  try {
    // Something for the dashboard to show.
    for (let i = 0; i < 20; i += 1) await stack.api('POST', '/events', { type: 'BENCH_SEED', payload: { i } });
    const runs = { shell: [], dashboard: [] };
    for (let i = 0; i < RUNS + 1; i += 1) {
      const shell = await load(browser, `${stack.url}/`, null, 'form input[name="username"]');
      const login = await fetch(`${stack.url}/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'owner', password: PASSWORD }) });
      const tokens = await login.json();
      const dash = await load(browser, `${stack.url}/#/`, tokens.refresh_token, '#events li[data-offset]');
      if (i === 0) continue; // warm-up: the node's first requests (and Chromium's first start)
      runs.shell.push(shell);
      runs.dashboard.push(dash);
    }
    const embedded = filesUnder(path.join(ROOT, 'web', 'ui')).filter((f) => /\.(js|css)$/.test(f));
    const all = embedded.reduce((a, f) => a + readFileSync(f).length, 0);
    const allGzip = embedded.reduce((a, f) => a + zlib.gzipSync(readFileSync(f)).length, 0);
    const summary = (rs) => ({
      bytes_js_css: rs[0].bytes.js + rs[0].bytes.css,
      bytes_js: rs[0].bytes.js,
      bytes_css: rs[0].bytes.css,
      bytes_html: rs[0].bytes.html,
      bytes_js_css_gzip: rs[0].bytes.jsGzip + rs[0].bytes.cssGzip,
      files: rs[0].bytes.files,
      first_contentful_paint_ms: stats(rs.map((r) => r.t.fcp ?? r.t.mark)),
      dom_content_loaded_ms: stats(rs.map((r) => r.t.dcl)),
      interactive_ms: stats(rs.map((r) => r.t.tti)),
      long_tasks_max: Math.max(...rs.map((r) => r.t.longTasks)),
    });
    console.log(JSON.stringify({
      runs: RUNS,
      chromium: browser.version(),
      budget_bytes_js_css: 150 * 1024,
      shell: summary(runs.shell),
      dashboard: summary(runs.dashboard),
      embedded_js_css_bytes: all,
      embedded_js_css_gzip_bytes: allGzip,
      embedded_files: embedded.length,
    }, null, 2));
  } finally {
    await browser.close();
    await stack.stop();
  }
}

main().catch((err) => { console.error(err); process.exit(1); });
