// The user's preferences (`GET/PUT /users/preferences`, one JSON object per user) and the
// theme: "system", "light" or "dark". The theme is also kept in localStorage so the boot
// script (ui/theme.js) can apply it before the first paint.

import { get, put } from './api.js';
import { app } from './router.js';

const THEMES = ['system', 'light', 'dark'];

export function theme() {
  try { return localStorage.getItem('kai.theme') || 'system'; } catch { return 'system'; }
}

/** Applies a theme here (and remembers it in this browser). */
export function applyTheme(t) {
  const value = THEMES.includes(t) ? t : 'system';
  try {
    if (value === 'system') localStorage.removeItem('kai.theme');
    else localStorage.setItem('kai.theme', value);
  } catch { /* storage disabled */ }
  if (value === 'system') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = value;
  const btn = document.getElementById('theme-btn');
  if (btn) btn.setAttribute('aria-label', `Theme: ${value}`);
}

/** Loads the user's preferences and applies the theme they chose. */
export async function load() {
  try {
    app.prefs = (await get('/users/preferences')) || {};
  } catch {
    app.prefs = {};
  }
  if (app.prefs.theme) applyTheme(app.prefs.theme);
  return app.prefs;
}

/** Merges `changes` into the preferences and saves them on the node. */
export async function save(changes) {
  app.prefs = { ...app.prefs, ...changes };
  app.prefs = (await put('/users/preferences', app.prefs)) || app.prefs;
  return app.prefs;
}

/** Cycles system → light → dark and saves the choice. */
export async function cycleTheme() {
  const next = THEMES[(THEMES.indexOf(theme()) + 1) % THEMES.length];
  applyTheme(next);
  if (app.me) await save({ theme: next }).catch(() => {});
  return next;
}
