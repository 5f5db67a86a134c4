// Boot: learns whether the vault is sealed (a public call), resumes the session if this tab
// has one, wires the header (menu, theme, help, logout), the global shortcuts and the live
// status dot, then hands over to the router.

import { get } from './lib/api.js';
import { session } from './lib/session.js';
import { live } from './lib/live.js';
import { app, hooks, navigate, render, start } from './lib/router.js';
import * as keys from './lib/keys.js';
import * as prefs from './lib/prefs.js';
import { pages, allowed } from './pages.js';
import { toast } from './lib/ui.js';

async function vaultSealed() {
  try {
    const s = await get('/vault/status', undefined, { auth: false });
    return s.state !== 'unsealed';
  } catch {
    return false;
  }
}

/** After login or unlock: who am I, my preferences, the live stream. */
export async function enter() {
  try {
    app.me = await get('/auth/me');
    session.me = app.me;
  } catch {
    app.me = null;
    return;
  }
  const who = document.getElementById('who');
  who.textContent = `${app.me.user?.username || app.me.id} (${app.me.role})`;
  who.hidden = false;
  document.getElementById('logout-btn').hidden = false;
  await prefs.load();
  live.start();
}

function leave() {
  app.me = null;
  live.stop();
  document.getElementById('who').hidden = true;
  document.getElementById('logout-btn').hidden = true;
}

function wireHeader() {
  const menu = document.getElementById('menu-btn');
  const nav = document.getElementById('nav');
  menu.addEventListener('click', () => {
    const open = !nav.classList.contains('open');
    nav.classList.toggle('open', open);
    menu.setAttribute('aria-expanded', String(open));
    if (open) nav.querySelector('a')?.focus();
  });
  nav.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && nav.classList.contains('open')) {
      nav.classList.remove('open');
      menu.setAttribute('aria-expanded', 'false');
      menu.focus();
    }
  });
  document.getElementById('theme-btn').addEventListener('click', async () => toast(`Theme: ${await prefs.cycleTheme()}`));
  document.getElementById('help-btn').addEventListener('click', () => keys.showHelp());
  document.getElementById('logout-btn').addEventListener('click', () => session.logout());
  const dot = document.getElementById('live-status');
  live.addEventListener('state', (e) => {
    const label = { on: 'connected', connecting: 'connecting', retry: 'reconnecting', off: 'off' }[e.detail];
    dot.hidden = e.detail === 'off';
    dot.className = `live-dot ${e.detail === 'on' ? 'on' : e.detail === 'off' ? '' : 'retry'}`;
    dot.setAttribute('aria-label', `Live updates: ${label}`);
    dot.title = `Live updates: ${label}`;
    dot.dataset.state = e.detail;
  });
}

function wireShortcuts() {
  for (const p of pages.filter((x) => x.keys)) {
    keys.addGlobal(p.keys, `Go to ${p.title}`, () => {
      if (allowed(p, app.me?.role)) navigate(p.path);
    });
  }
  keys.addGlobal('t', 'Switch theme (system, light, dark)', async () => toast(`Theme: ${await prefs.cycleTheme()}`));
  keys.addGlobal('/', 'Search on this page', () => document.querySelector('main input[type="search"]')?.focus());
  keys.addGlobal('?', 'Show this help', () => keys.showHelp());
  keys.install();
}

async function boot() {
  hooks.enter = enter;
  prefs.applyTheme(prefs.theme());
  wireHeader();
  wireShortcuts();
  session.addEventListener('login', async () => {
    await enter();
    const next = new URLSearchParams(location.hash.split('?')[1] || '').get('next');
    navigate(next ? decodeURIComponent(next) : '/', { replace: true });
  });
  session.addEventListener('logout', () => {
    leave();
    render();
  });
  window.addEventListener('kai:sealed', () => {
    if (app.sealed) return;
    app.sealed = true;
    live.stop();
    render();
  });
  window.addEventListener('kai:unsealed', async () => {
    app.sealed = false;
    if (session.active) await enter();
    render();
  });
  app.sealed = await vaultSealed();
  if (!app.sealed && session.canRefresh()) {
    try {
      await session.refresh();
    } catch {
      session.clear();
    }
    if (session.active) await enter();
  }
  await start();
}

boot();
