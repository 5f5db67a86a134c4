// One chat thread on screen: its messages (the branch the thread shows), tool calls and their
// results, summaries, branch navigation between sibling replies, and the composer. Replies
// stream over server-sent events (`POST …/messages` with `Accept: text/event-stream`); the
// message log is an aria-live region that is aria-busy while a reply streams, so screen
// readers read the finished reply once. Replies started elsewhere (another tab, the CLI)
// stream in live from the WebSocket (`CHAT_DELTA`, `CHAT_MESSAGE` for this thread).

import { get, patch, stream } from '../lib/api.js';
import { live } from '../lib/live.js';
import { h, mount, field, ago } from '../lib/dom.js';
import { errorBox, toast } from '../lib/ui.js';

const MAX_CHARS = 200_000;

function toolCalls(m) {
  return Array.isArray(m.tool_calls) ? m.tool_calls : [];
}

function pretty(v) {
  if (typeof v === 'string') return v;
  try { return JSON.stringify(v, null, 2); } catch { return String(v); }
}

/** Parses the tools box: a JSON array of tool definitions, or nothing. */
function parseTools(text) {
  if (!text.trim()) return [];
  const v = JSON.parse(text);
  if (!Array.isArray(v)) throw new Error('Tools are a JSON array of {name, description, parameters}.');
  for (const t of v) {
    const name = (t.function || t).name;
    if (typeof name !== 'string' || !name) throw new Error('Every tool needs a name.');
  }
  return v;
}

/**
 * The conversation panel. `opts`: `threadId` (null for a new thread), `personas`,
 * `createThread(firstText)` → thread (for a new one), `onChange()` (the thread list should
 * reload), `signal`.
 */
export function conversation(opts) {
  const log = h('div', { class: 'messages', role: 'log', 'aria-live': 'polite', 'aria-busy': 'false', 'aria-label': 'Messages', tabindex: '0' });
  const input = h('textarea', { rows: 3, maxlength: MAX_CHARS, placeholder: 'Write a message…', id: 'composer' });
  const tools = h('textarea', { rows: 4, spellcheck: 'false', placeholder: '[{"name": "clock", "description": "Current time", "parameters": {"type": "object"}}]', class: 'mono' });
  const send = h('button', { type: 'submit', class: 'btn primary' }, 'Send');
  const stop = h('button', { type: 'button', class: 'btn', hidden: true }, 'Stop');
  const status = h('span', { class: 'muted small', 'aria-live': 'polite' });
  const state = { threadId: opts.threadId, view: null, all: [], streaming: null, parentId: null, remote: new Map() };

  const composer = h('form', { class: 'composer', on: { submit: (e) => { e.preventDefault(); submit(); } } },
    h('label', { for: 'composer', class: 'sr-only' }, 'Message'),
    input,
    h('div', { class: 'row' }, send, stop, status, h('span', { class: 'spacer' }),
      h('span', { class: 'muted small' }, 'Enter to send, Shift+Enter for a new line')),
    h('details', {}, h('summary', {}, 'Tools the model may call'),
      field('Tool definitions (JSON)', tools, 'OpenAI function shape or {name, description, parameters}; the model answers with tool calls you reply to below.')));
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); submit(); }
    if (e.key === 'Escape' && state.parentId) { state.parentId = null; status.textContent = ''; }
  });
  stop.addEventListener('click', () => state.streaming?.abort());

  const root = h('div', { class: 'conv-body' }, log, composer);

  function children(id) {
    return state.all.filter((m) => m.parent_id === id).sort((a, b) => a.seq - b.seq);
  }
  function leafOf(m) {
    let cur = m;
    for (let kids = children(cur.id); kids.length; kids = children(cur.id)) cur = kids[kids.length - 1];
    return cur;
  }

  function branchNav(m) {
    const siblings = children(m.parent_id);
    if (siblings.length < 2) return null;
    const i = siblings.findIndex((s) => s.id === m.id);
    const go = async (j) => {
      try {
        await patch(`/chat/threads/${state.threadId}`, { head_id: leafOf(siblings[j]).id });
        await reload();
      } catch (err) { toast(err.message, 'error'); }
    };
    return h('span', { class: 'branch-nav', role: 'group', 'aria-label': 'Branches' },
      h('button', { type: 'button', class: 'btn small', 'aria-label': 'Previous branch', disabled: i <= 0, on: { click: () => go(i - 1) } }, '‹'),
      h('span', { class: 'small' }, `${i + 1}/${siblings.length}`),
      h('button', { type: 'button', class: 'btn small', 'aria-label': 'Next branch', disabled: i >= siblings.length - 1, on: { click: () => go(i + 1) } }, '›'));
  }

  function toolCallCard(call, answered) {
    const card = h('div', { class: 'toolcall', 'data-tool-call': call.id },
      h('div', {}, 'Tool call ', h('span', { class: 'tname' }, call.name), h('span', { class: 'muted small' }, ` · ${call.id}`)),
      h('pre', {}, pretty(call.arguments)));
    if (!answered && !state.streaming) {
      const result = h('textarea', { rows: 2, maxlength: MAX_CHARS, required: true });
      card.append(h('form', { on: { submit: (e) => { e.preventDefault(); if (result.value.trim()) run({ content: result.value, tool_call_id: call.id }, null); } } },
        field(`Result of ${call.name}`, result),
        h('button', { type: 'submit', class: 'btn small primary' }, 'Send result')));
    }
    return card;
  }

  function bubble(m, branch) {
    const answered = new Set(branch.filter((x) => x.role === 'tool').map((x) => x.tool_call_id));
    const who = m.role === 'user' ? 'You'
      : m.role === 'assistant' ? (m.persona || 'assistant') + (m.meta?.model ? ` · ${m.meta.model}` : '')
        : m.role === 'tool' ? `Tool result · ${m.tool_call_id}` : m.role;
    const actions = h('div', { class: 'actions' });
    if (m.role === 'assistant') {
      actions.append(h('button', { type: 'button', class: 'btn small', on: { click: () => run(null, m.id) } }, 'Regenerate'));
    }
    if (m.role === 'user') {
      actions.append(h('button', { type: 'button', class: 'btn small', on: { click: () => {
        state.parentId = m.parent_id;
        input.value = m.content;
        status.textContent = 'Editing: sending starts a new branch (Escape cancels).';
        input.focus();
      } } }, 'Edit as new branch'));
    }
    const nav = branchNav(m);
    if (nav) actions.append(nav);
    return h('article', { class: `msg ${m.role}`, 'data-id': m.id, 'data-role': m.role, 'aria-label': `${m.role === 'user' ? 'You' : who}` },
      h('div', { class: 'who' }, h('span', {}, who), ago(m.created_at)),
      m.content ? h(m.role === 'tool' ? 'pre' : 'div', { class: 'text' }, m.content) : null,
      toolCalls(m).map((c) => toolCallCard(c, answered.has(c.id))),
      state.streaming ? null : actions);
  }

  function draw() {
    const v = state.view;
    if (!v) {
      mount(log, h('p', { class: 'empty' }, 'Start the conversation below. The first message names the thread.'));
      return;
    }
    const bySummary = new Map(v.summaries.map((s) => [s.upto_id, s]));
    const items = [];
    for (const m of v.messages) {
      items.push(bubble(m, v.messages));
      const s = bySummary.get(m.id);
      if (s) items.push(h('details', { class: 'summary-note' }, h('summary', {}, 'Earlier messages were summarized for the model (the originals are kept)'), h('div', { class: 'text' }, s.content)));
    }
    mount(log, items.length ? items : h('p', { class: 'empty' }, 'No messages yet.'));
    log.scrollTop = log.scrollHeight;
  }

  async function reload() {
    if (!state.threadId) { state.view = null; draw(); return; }
    const [view, all] = await Promise.all([
      get(`/chat/threads/${state.threadId}`, undefined, { signal: opts.signal }),
      get(`/chat/threads/${state.threadId}/messages`, undefined, { signal: opts.signal }),
    ]);
    state.view = view;
    state.all = all.messages;
    draw();
  }

  /** Sends `body` as a new message, or regenerates `regenerateId`, streaming the reply. */
  async function run(body, regenerateId) {
    if (state.streaming) return;
    if (!state.threadId) {
      try {
        const t = await opts.createThread(body?.content || 'New chat');
        state.threadId = t.id;
        follow();
      } catch (err) { toast(err.message, 'error'); return; }
    }
    const abort = new AbortController();
    state.streaming = abort;
    opts.signal.addEventListener('abort', () => abort.abort(), { once: true });
    draw();
    log.querySelector('.empty')?.remove();
    if (body && !body.tool_call_id) log.append(h('article', { class: 'msg user pending' }, h('div', { class: 'who' }, 'You'), h('div', { class: 'text' }, body.content)));
    const text = h('div', { class: 'text' });
    const reply = h('article', { class: 'msg assistant streaming', 'aria-label': 'Reply' }, h('div', { class: 'who' }, 'Replying…'), text);
    log.append(reply);
    log.setAttribute('aria-busy', 'true');
    send.disabled = true;
    stop.hidden = false;
    status.textContent = 'Streaming the reply…';
    const path = regenerateId
      ? `/chat/threads/${state.threadId}/messages/${regenerateId}/regenerate`
      : `/chat/threads/${state.threadId}/messages`;
    let failed = null;
    try {
      await stream(path, regenerateId ? undefined : body, (name, data) => {
        if (name === 'delta') { text.textContent += data.text; log.scrollTop = log.scrollHeight; }
        if (name === 'error') failed = data;
        if (name === 'json' && data.reply) text.textContent = data.reply.content;
      }, { signal: abort.signal });
    } catch (err) {
      if (err.name !== 'AbortError') failed = { detail: err.message, code: err.code };
    }
    state.streaming = null;
    log.setAttribute('aria-busy', 'false');
    send.disabled = false;
    stop.hidden = true;
    status.textContent = failed ? '' : 'Reply received.';
    try {
      await reload();
    } catch (err) { failed = failed || { detail: err.message }; }
    if (failed) log.append(errorBox({ message: `The reply failed: ${failed.detail}`, code: failed.code }));
    opts.onChange?.(state.threadId);
  }

  function submit() {
    const content = input.value;
    if (!content.trim() || state.streaming) return;
    let toolDefs;
    try {
      toolDefs = parseTools(tools.value);
    } catch (err) {
      toast(`Tools: ${err.message}`, 'error');
      tools.focus();
      return;
    }
    const body = { content };
    if (toolDefs.length) body.tools = toolDefs;
    if (state.parentId) body.parent_id = state.parentId;
    state.parentId = null;
    input.value = '';
    run(body, null);
  }

  // Replies made elsewhere, live.
  let unsub = () => {};
  function follow() {
    unsub();
    if (!state.threadId) return;
    unsub = live.subscribe({ threads: [state.threadId], types: ['CHAT_DELTA', 'CHAT_MESSAGE'] }, (e) => {
      if (state.streaming) return;
      if (e.type === 'CHAT_DELTA') {
        let el = state.remote.get(e.payload.message_id);
        if (!el) {
          el = h('div', { class: 'text' });
          state.remote.set(e.payload.message_id, el);
          log.append(h('article', { class: 'msg assistant streaming' }, h('div', { class: 'who' }, 'Replying (elsewhere)…'), el));
        }
        el.textContent += e.payload.text;
      } else if (!state.view?.messages.some((m) => m.id === e.payload.message?.id)) {
        state.remote.clear();
        reload().catch(() => {});
      }
    });
  }

  return {
    el: root,
    focus: () => input.focus(),
    async open(threadId) {
      state.threadId = threadId;
      await reload();
      follow();
    },
    close: () => { unsub(); state.streaming?.abort(); },
    get threadId() { return state.threadId; },
    started: () => follow(),
  };
}
