// Hash routing (`#/chat/<id>`) over the page registry: finds the page for the location,
// enforces the guards (sealed vault → unlock page, no session → login page, role too low →
// dashboard), mounts the page with its context and unmounts the previous one, keeps the
// navigation's aria-current and the document title in step, and moves focus to the new
// page's heading so keyboard and screen-reader users land on it.

import { pages, allowed } from '../pages.js';
import { h, mount } from './dom.js';
import { session } from './session.js';
import * as keys from './keys.js';
import { errorBox } from './ui.js';

export const app = { sealed: false, me: null, prefs: {} };
/** Set by the app: loads the account after login (`/auth/me`, preferences, live stream). */
export const hooks = { enter: null };

let current = null;
let renderSeq = 0;

function parse() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const [path, query = ''] = raw.split('?');
  return { path: path.startsWith('/') ? path : `/${path}`, query: new URLSearchParams(query) };
}

function match(path) {
  let best = null;
  for (const p of pages) {
    const hit = p.path === '/' ? path === '/' : path === p.path || path.startsWith(`${p.path}/`);
    if (hit && (!best || p.path.length > best.path.length)) best = p;
  }
  return best;
}

/** Goes to `path` (e.g. `/chat/thr_1`). */
export function navigate(path, { replace = false } = {}) {
  const target = `#${path}`;
  if (location.hash === target) { render(); return; }
  if (replace) { history.replaceState(null, '', target); render(); } else location.hash = target;
}

/** Draws the main navigation for the current role. */
export function drawNav(active) {
  const nav = document.getElementById('nav');
  const role = app.me?.role;
  mount(nav, pages.filter((p) => p.nav && allowed(p, role)).map((p) => h('a', {
    href: `#${p.path}`, 'aria-current': p === active ? 'page' : null,
  }, p.title, h('kbd', { 'aria-hidden': 'true' }, p.keys.replace('g ', 'g·')))));
}

export async function render() {
  const seq = ++renderSeq;
  const { path, query } = parse();
  let page = match(path);
  const next = encodeURIComponent(path + (query.toString() ? `?${query}` : ''));
  if (app.sealed && page?.id !== 'unlock') return navigate(`/unlock?next=${next}`, { replace: true });
  if (!app.sealed && page?.id === 'unlock') return navigate(query.get('next') ? decodeURIComponent(query.get('next')) : '/', { replace: true });
  if (!page?.public && !session.active) return navigate(`/login?next=${next}`, { replace: true });
  if (page?.id === 'login' && session.active) return navigate('/', { replace: true });
  if (page && !page.public && !app.me && hooks.enter) await hooks.enter();
  if (seq !== renderSeq) return;
  if (page && !page.public && !app.me) {
    mount(document.getElementById('main'), h('h1', { tabindex: '-1' }, 'Your account could not be loaded'),
      h('p', {}, 'The node did not answer /auth/me. ', h('a', { href: location.hash || '#/' }, 'Try again'), ' or log out and in.'));
    return;
  }
  if (page && !allowed(page, app.me?.role)) page = match('/');

  if (current?.cleanup) { try { current.cleanup(); } catch (e) { console.warn(e); } }
  current?.abort.abort();
  keys.clearPage();
  const shell = document.querySelector('.shell');
  const bare = !page || Boolean(page.public);
  shell.classList.toggle('bare', bare);
  document.getElementById('nav').hidden = bare;
  document.getElementById('menu-btn').hidden = bare;
  drawNav(page);
  const main = document.getElementById('main');
  if (!page) {
    mount(main, h('h1', { tabindex: '-1' }, 'Not found'), h('p', {}, 'There is no page at this address. ', h('a', { href: '#/' }, 'Go to the dashboard.')));
    current = null;
    return;
  }
  const abort = new AbortController();
  current = { page, abort, cleanup: null };
  document.title = `${page.title} · kai`;
  const params = path.slice(page.path.length).split('/').filter(Boolean).map(decodeURIComponent);
  const ctx = { params, query, navigate, app, signal: abort.signal, keys: { add: keys.addPage } };
  try {
    const mod = await page.load();
    if (seq !== renderSeq) return;
    mount(main);
    current.cleanup = (await mod.default.mount(main, ctx)) || null;
  } catch (err) {
    if (seq !== renderSeq) return;
    mount(main, h('h1', { tabindex: '-1' }, page.title), errorBox(err));
  }
  if (seq !== renderSeq) return;
  const heading = main.querySelector('h1');
  if (heading) {
    heading.tabIndex = -1;
    if (!document.activeElement || document.activeElement === document.body || !main.contains(document.activeElement)) heading.focus({ preventScroll: true });
  }
  document.getElementById('nav').classList.remove('open');
  document.getElementById('menu-btn').setAttribute('aria-expanded', 'false');
  if (!performance.getEntriesByName('kai:interactive').length) performance.mark('kai:interactive');
  window.dispatchEvent(new CustomEvent('kai:page', { detail: page.id }));
}

/** Starts following the location. */
export function start() {
  window.addEventListener('hashchange', render);
  return render();
}
