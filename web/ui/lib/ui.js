// Small shared widgets: toasts, modal dialogs (native <dialog>: focus is trapped and Escape
// closes), error boxes, tabs, tables and a copy button.

import { h, mount, field, uid } from './dom.js';

/** A short message in the polite live region. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const el = h('div', { class: `toast ${kind}` }, message);
  box.append(el);
  while (box.children.length > 3) box.firstChild.remove();
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

/** An error as an alert box (the problem's detail and code). */
export function errorBox(err) {
  return h('div', { class: 'alert', role: 'alert' },
    err?.message || String(err),
    err?.code && err.code !== 'error' ? h('span', { class: 'muted small' }, ` (${err.code})`) : null);
}

/** Shows a modal dialog with `content` and `buttons`; resolves with the clicked value. */
export function modal(title, content, buttons = [{ label: 'Close', value: null }]) {
  return new Promise((resolve) => {
    const titleId = uid('dlg');
    const dlg = h('dialog', { 'aria-labelledby': titleId });
    const close = (value) => { dlg.close(); dlg.remove(); resolve(value); };
    const actions = buttons.map((b) => h('button', {
      type: b.submit ? 'submit' : 'button',
      class: `btn ${b.primary ? 'primary' : ''} ${b.danger ? 'danger' : ''}`,
      on: { click: (e) => { e.preventDefault(); close(typeof b.value === 'function' ? b.value() : b.value); } },
    }, b.label));
    const form = h('form', { method: 'dialog', on: { submit: (e) => {
      e.preventDefault();
      const b = buttons.find((x) => x.submit);
      if (b) close(typeof b.value === 'function' ? b.value() : b.value);
    } } }, h('h2', { id: titleId }, title), content, h('div', { class: 'actions' }, actions));
    dlg.append(form);
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); close(null); });
    document.body.append(dlg);
    dlg.showModal();
    const first = dlg.querySelector('input, textarea, select') || dlg.querySelector('.btn.primary') || actions[0];
    first?.focus();
  });
}

/** Asks to confirm; resolves true or false. */
export async function confirmDialog(title, message, label = 'Confirm', danger = true) {
  const v = await modal(title, h('p', {}, message), [
    { label: 'Cancel', value: false },
    { label, value: true, primary: !danger, danger, submit: true },
  ]);
  return v === true;
}

/** Asks for one line of text; resolves with it or null. */
export async function promptDialog(title, label, value = '', { maxlength = 200 } = {}) {
  const input = h('input', { type: 'text', value, maxlength, required: true });
  const v = await modal(title, field(label, input), [
    { label: 'Cancel', value: null },
    { label: 'Save', value: () => input.value.trim(), primary: true, submit: true },
  ]);
  return v ? v : null;
}

/**
 * ARIA tabs: `tabs` is [{id, label, render(panel)}]; arrow keys move between tabs. Returns
 * the element; `select(id)` is on it.
 */
export function tabs(list, initial, onSelect) {
  const bar = h('div', { class: 'tabs', role: 'tablist' });
  const panelId = uid('tabpanel');
  const panel = h('div', { role: 'tabpanel', tabindex: '0', id: panelId });
  const buttons = list.map((t) => h('button', {
    type: 'button', role: 'tab', id: `tab-${t.id}`, 'aria-controls': panelId, 'aria-selected': 'false', tabindex: '-1',
    on: { click: () => select(t.id) },
  }, t.label));
  bar.append(...buttons);
  bar.addEventListener('keydown', (e) => {
    const i = buttons.indexOf(document.activeElement);
    if (i < 0) return;
    let j = null;
    if (e.key === 'ArrowRight') j = (i + 1) % buttons.length;
    if (e.key === 'ArrowLeft') j = (i - 1 + buttons.length) % buttons.length;
    if (e.key === 'Home') j = 0;
    if (e.key === 'End') j = buttons.length - 1;
    if (j !== null) { e.preventDefault(); select(list[j].id); buttons[j].focus(); }
  });
  const root = h('div', {}, bar, panel);
  function select(id) {
    const t = list.find((x) => x.id === id) || list[0];
    for (const [k, b] of buttons.entries()) {
      const on = list[k].id === t.id;
      b.setAttribute('aria-selected', String(on));
      b.tabIndex = on ? 0 : -1;
    }
    panel.setAttribute('aria-labelledby', `tab-${t.id}`);
    mount(panel);
    t.render(panel);
    onSelect?.(t.id);
  }
  root.select = select;
  select(initial);
  return root;
}

/** A table: `cols` is [{label, cell(row) → node|string, num?}]. */
export function table(cols, rows, { empty = 'Nothing here yet.', rowClass, caption } = {}) {
  if (!rows.length) return h('p', { class: 'empty' }, empty);
  return h('div', { class: 'table-wrap' }, h('table', {},
    caption ? h('caption', { class: 'sr-only' }, caption) : null,
    h('thead', {}, h('tr', {}, cols.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label)))),
    h('tbody', {}, rows.map((r) => h('tr', { class: rowClass?.(r) || null },
      cols.map((c) => h('td', { class: c.num ? 'num' : null }, c.cell(r))))))));
}

/** A button that copies `text` to the clipboard. */
export function copyButton(text, label = 'Copy') {
  return h('button', { type: 'button', class: 'btn small', on: { click: async (e) => {
    try {
      await navigator.clipboard.writeText(text);
      e.target.textContent = 'Copied';
    } catch {
      e.target.textContent = 'Select and copy';
    }
    setTimeout(() => { e.target.textContent = label; }, 1500);
  } } }, label);
}

/** Runs `fn` with the button disabled; shows an error toast when it throws. */
export async function busy(button, fn) {
  if (button) button.disabled = true;
  try {
    return await fn();
  } catch (err) {
    toast(err.message || String(err), 'error');
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

/** A "Loading…" paragraph. */
export const loading = (what = 'Loading…') => h('p', { class: 'muted', 'aria-busy': 'true' }, what);
