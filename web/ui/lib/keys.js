// Keyboard shortcuts: single keys (`t`, `/`, `?`) and two-key sequences (`g c`). Global ones
// live for the whole app; pages add their own for as long as they are shown. Keys typed into
// a text field are left alone (Escape leaves the field). `?` opens the help overlay listing
// them all.

import { h } from './dom.js';
import { modal } from './ui.js';

const global = [];
let page = [];
let pending = null;
let pendingTimer = 0;

/** Adds a global shortcut. */
export function addGlobal(keys, description, run) {
  global.push({ keys, description, run });
}

/** Adds a shortcut for the current page; it is removed when the page changes. */
export function addPage(keys, description, run) {
  page.push({ keys, description, run });
}

/** Drops the current page's shortcuts. */
export function clearPage() {
  page = [];
}

function typing(target) {
  const t = target?.closest?.('input, textarea, select, [contenteditable="true"]');
  return Boolean(t) && !(t.type === 'checkbox' || t.type === 'radio' || t.type === 'button');
}

function onKey(e) {
  if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector('dialog[open]')) return;
  if (typing(e.target)) {
    // Escape leaves a text field, so the shortcuts are reachable from the keyboard.
    if (e.key === 'Escape') e.target.blur();
    return;
  }
  const key = e.key;
  const all = [...page, ...global];
  if (pending) {
    const seq = `${pending} ${key}`;
    pending = null;
    clearTimeout(pendingTimer);
    const hit = all.find((s) => s.keys === seq);
    if (hit) { e.preventDefault(); hit.run(e); }
    return;
  }
  if (all.some((s) => s.keys.startsWith(`${key} `))) {
    pending = key;
    pendingTimer = setTimeout(() => { pending = null; }, 1500);
    e.preventDefault();
    return;
  }
  const hit = all.find((s) => s.keys === key);
  if (hit) { e.preventDefault(); hit.run(e); }
}

/** Starts listening. */
export function install() {
  document.addEventListener('keydown', onKey);
}

function row(s) {
  return [h('dt', {}, s.keys.split(' ').map((k, i) => [i ? ' then ' : null, h('kbd', {}, k)])), h('dd', {}, s.description)];
}

/** The help overlay. */
export function showHelp() {
  const content = h('div', {},
    h('h3', {}, 'Everywhere'), h('dl', { class: 'keys' }, global.map(row)),
    page.length ? [h('h3', {}, 'On this page'), h('dl', { class: 'keys' }, page.map(row))] : null,
    h('p', { class: 'muted small' }, 'In the chat box: Enter sends, Shift+Enter adds a line. Escape closes dialogs.'));
  return modal('Keyboard shortcuts', content);
}
