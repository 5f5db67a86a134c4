// Building the DOM safely: every piece of text from the API goes in as a text node (never
// innerHTML), and formatters for times, numbers and money.

let nextId = 0;

/** A unique element id with a readable prefix (for label/for and aria-describedby). */
export function uid(prefix = 'k') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/**
 * Creates an element. `attrs`: `class`, `text`, `on: {event: fn}`, booleans (true sets the
 * attribute, false/null omits it), anything else as an attribute (aria-*, data-*, …).
 * Children: nodes, strings (as text), arrays (flattened), null/false (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === 'on') {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === 'text') {
      el.textContent = String(v);
    } else if (k === 'value') {
      el.value = v;
    } else if (k === 'checked' || k === 'selected' || k === 'disabled') {
      el[k] = Boolean(v);
    } else if (v === true) {
      el.setAttribute(k, '');
    } else {
      el.setAttribute(k, String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A labelled form field: `<div class=field><label for>…</label>control<hint></div>`. */
export function field(label, control, hint) {
  const id = control.id || uid('f');
  control.id = id;
  const parts = [h('label', { for: id }, label), control];
  if (hint) {
    const hid = uid('hint');
    control.setAttribute('aria-describedby', hid);
    parts.push(h('span', { class: 'hint', id: hid }, hint));
  }
  return h('div', { class: 'field' }, parts);
}

const rtf = typeof Intl !== 'undefined' && Intl.RelativeTimeFormat
  ? new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' }) : null;

/** "3 minutes ago" (with the exact time in the title of the returned <time>). */
export function ago(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', {}, '—');
  const secs = Math.round((d.getTime() - Date.now()) / 1000);
  const abs = Math.abs(secs);
  let text;
  if (!rtf) text = d.toLocaleString();
  else if (abs < 60) text = rtf.format(secs, 'second');
  else if (abs < 3600) text = rtf.format(Math.round(secs / 60), 'minute');
  else if (abs < 86400) text = rtf.format(Math.round(secs / 3600), 'hour');
  else text = rtf.format(Math.round(secs / 86400), 'day');
  return h('time', { datetime: d.toISOString(), title: d.toLocaleString() }, text);
}

/** A local date and time. */
export function when(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '—' : d.toLocaleString();
}

/** "2 d 3 h", "5 min", "12 s". */
export function duration(secs) {
  const s = Math.max(0, Math.floor(secs));
  if (s >= 86400) return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min`;
  return `${s} s`;
}

const nf = new Intl.NumberFormat();
export const num = (n) => nf.format(Number(n) || 0);
export const usd = (n) => `$${(Number(n) || 0).toFixed(4)}`;

/** Shortens long identifiers in the middle: `did:key:z6Mk…3xQa`. */
export function short(text, keep = 10) {
  const s = String(text ?? '');
  return s.length <= keep * 2 + 1 ? s : `${s.slice(0, keep)}…${s.slice(-keep / 2)}`;
}

/** Compact one-line JSON, cut at `max` characters. */
export function brief(value, max = 160) {
  let s;
  try { s = JSON.stringify(value); } catch { s = String(value); }
  return s && s.length > max ? `${s.slice(0, max)}…` : s ?? '';
}
