// Chat: the caller's threads (`/chat/threads`: list, search, create, rename, delete, export,
// persona per thread) beside the open conversation (parts/conversation.js: streaming replies,
// tool calls and results, regenerate, branches). The URL names the open thread
// (`#/chat/<id>`).

import { get, post, patch, del, download } from '../lib/api.js';
import { h, mount, ago } from '../lib/dom.js';
import { errorBox, toast, confirmDialog, promptDialog, loading } from '../lib/ui.js';
import { conversation } from '../parts/conversation.js';

export default {
  async mount(root, ctx) {
    const search = h('input', { type: 'search', placeholder: 'Search threads', 'aria-label': 'Search threads', maxlength: 500 });
    const list = h('ul', { 'aria-label': 'Threads' });
    const toggle = h('button', { type: 'button', class: 'btn small threads-toggle', 'aria-expanded': 'true' }, 'Threads');
    const threadsPanel = h('section', { class: 'card threads', 'aria-labelledby': 'threads-h' },
      h('div', { class: 'row' }, h('h2', { id: 'threads-h', class: 'grow' }, 'Threads'), toggle,
        h('button', { type: 'button', class: 'btn small primary', title: 'New thread (n)', on: { click: () => ctx.navigate('/chat') } }, 'New')),
      h('div', { class: 'row' }, search),
      list);
    toggle.addEventListener('click', () => {
      const collapsed = threadsPanel.classList.toggle('collapsed');
      toggle.setAttribute('aria-expanded', String(!collapsed));
    });
    const head = h('div', { class: 'conv-head' });
    const body = h('div', { class: 'conv-slot' });
    const convPanel = h('section', { class: 'card conv', 'aria-labelledby': 'conv-title' }, head, body);
    root.append(h('h1', { class: 'sr-only' }, 'Chat'), h('div', { class: 'chat' }, threadsPanel, convPanel));

    let personas = [];
    try {
      personas = (await get('/v1/models')).data || [];
    } catch (err) {
      mount(body, errorBox(err));
    }
    let threads = [];
    let threadId = ctx.params[0] || null;

    async function loadThreads() {
      try {
        threads = (await get('/chat/threads', { q: search.value.trim(), limit: 200 })).threads;
        drawList();
      } catch (err) {
        mount(list, h('li', {}, errorBox(err)));
      }
    }
    function drawList() {
      mount(list, threads.length ? threads.map((t) => h('li', {},
        h('a', { href: `#/chat/${encodeURIComponent(t.id)}`, 'aria-current': t.id === threadId ? 'true' : null, 'data-thread': t.id },
          t.title, h('span', { class: 'tmeta' }, `${t.persona} · ${t.message_count} messages · `, ago(t.updated_at)))))
        : h('li', { class: 'empty' }, search.value ? 'No thread matches.' : 'No threads yet.'));
    }
    let searchTimer = 0;
    search.addEventListener('input', () => { clearTimeout(searchTimer); searchTimer = setTimeout(loadThreads, 250); });

    const personaSelect = (value) => h('select', { id: 'persona', 'aria-label': 'Persona' },
      personas.map((p) => h('option', { value: p.id, selected: p.id === value, title: p.description || null }, p.id)));

    const conv = conversation({
      threadId,
      signal: ctx.signal,
      createThread: async (first) => {
        const persona = head.querySelector('#persona')?.value;
        const t = await post('/chat/threads', { title: first.trim().split('\n')[0].slice(0, 80) || 'New chat', persona: persona || undefined });
        threadId = t.id;
        history.replaceState(null, '', `#/chat/${encodeURIComponent(t.id)}`);
        threads.unshift(t);
        drawList();
        drawHead(t);
        return t;
      },
      onChange: async () => {
        await loadThreads();
        const t = threads.find((x) => x.id === threadId);
        if (t) drawHead(t);
      },
    });
    mount(body, conv.el);

    function drawHead(t) {
      if (!t) {
        mount(head, h('h2', { id: 'conv-title' }, 'New thread'),
          personas.length ? h('label', { for: 'persona', class: 'small' }, 'Persona') : null,
          personas.length ? personaSelect(ctx.app.prefs.persona || personas[0]?.id) : h('span', { class: 'badge bad' }, 'no persona configured'));
        return;
      }
      const select = personaSelect(t.persona);
      select.addEventListener('change', async () => {
        try {
          await patch(`/chat/threads/${t.id}`, { persona: select.value });
          toast(`Persona: ${select.value}`, 'ok');
          loadThreads();
        } catch (err) { toast(err.message, 'error'); select.value = t.persona; }
      });
      mount(head,
        h('h2', { id: 'conv-title' }, t.title),
        h('label', { for: 'persona', class: 'small' }, 'Persona'), select,
        h('button', { type: 'button', class: 'btn small', on: { click: () => rename(t) } }, 'Rename'),
        h('button', { type: 'button', class: 'btn small', on: { click: () => exportThread(t, 'markdown') } }, 'Export Markdown'),
        h('button', { type: 'button', class: 'btn small', on: { click: () => exportThread(t, 'json') } }, 'Export JSON'),
        h('button', { type: 'button', class: 'btn small danger', on: { click: () => remove(t) } }, 'Delete'));
    }

    async function rename(t) {
      const title = await promptDialog('Rename thread', 'Title', t.title);
      if (!title) return;
      try {
        const updated = await patch(`/chat/threads/${t.id}`, { title });
        toast('Renamed', 'ok');
        drawHead(updated);
        loadThreads();
      } catch (err) { toast(err.message, 'error'); }
    }
    async function exportThread(t, format) {
      try {
        const name = await download(`/chat/threads/${t.id}/export`, { format }, `${t.id}.${format === 'json' ? 'json' : 'md'}`);
        toast(`Saved ${name}`, 'ok');
      } catch (err) { toast(err.message, 'error'); }
    }
    async function remove(t) {
      if (!await confirmDialog('Delete this thread?', `“${t.title}” and every message in it will be deleted. This cannot be undone.`, 'Delete')) return;
      try {
        await del(`/chat/threads/${t.id}`);
        toast('Thread deleted', 'ok');
        ctx.navigate('/chat');
      } catch (err) { toast(err.message, 'error'); }
    }

    mount(list, h('li', {}, loading()));
    await loadThreads();
    if (threadId) {
      try {
        const t = threads.find((x) => x.id === threadId) || (await get(`/chat/threads/${threadId}`)).thread;
        drawHead(t);
        await conv.open(threadId);
      } catch (err) {
        mount(head, h('h2', { id: 'conv-title' }, 'Thread'));
        mount(body, errorBox(err));
      }
    } else {
      drawHead(null);
      await conv.open(null);
      conv.focus();
    }
    ctx.keys.add('n', 'New thread', () => { if (threadId) ctx.navigate('/chat'); else conv.focus(); });
    ctx.keys.add('i', 'Write a message', () => conv.focus());
    return () => conv.close();
  },
};
