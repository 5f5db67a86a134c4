// Memory: hybrid search (`GET /memory/search?q=&k=&namespace=&tier=`) with each hit's tier,
// namespace and score; browse every memory (the `/memories/export` stream) filtered by
// namespace and tier; add one (`POST /memories`); forget (`DELETE /memories/{id}`); and the
// memory graph (`GET /memory/graph`) drawn as a circle of entities joined by their
// relations, with the same graph as a list for screen readers.

import { get, post, del, request } from '../lib/api.js';
import { h, mount, field, when } from '../lib/dom.js';
import { errorBox, table, toast, tabs, confirmDialog, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';
import { circle } from '../lib/layout.js';

const TIERS = ['short_term', 'working', 'long_term', 'episodic'];
const BROWSE_MAX = 200;
const SVG = 'http://www.w3.org/2000/svg';

const tierSelect = (label, any) => h('select', { 'aria-label': label || null },
  any ? h('option', { value: '' }, any) : null, TIERS.map((t) => h('option', { value: t, selected: !any && t === 'long_term' }, t.replace('_', ' '))));

function s(tag, attrs, ...kids) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, String(v));
  for (const c of kids) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

export default {
  async mount(root, ctx) {
    const member = atLeast(ctx.app.me.role, 'member');
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Memory')), h('div', { class: 'stack' },
      member ? addForm() : null,
      tabs([
        { id: 'search', label: 'Search', render: searchTab },
        { id: 'browse', label: 'Browse', render: browseTab },
        { id: 'graph', label: 'Graph', render: graphTab },
      ], 'search')));

    const forget = (m, after) => h('button', { type: 'button', class: 'btn small danger', 'aria-label': `Forget: ${m.text.slice(0, 40)}`, on: { click: (e) => busy(e.currentTarget, async () => {
      if (!await confirmDialog('Forget this memory?', m.text.slice(0, 200), 'Forget')) return;
      await del(`/memories/${encodeURIComponent(m.id)}`);
      toast('Forgotten', 'ok');
      after();
    }) } }, 'Forget');

    const memoryCols = (after) => [
      { label: 'Memory', cell: (m) => h('span', { class: 'mem-text' }, m.text, m.private ? h('span', { class: 'badge' }, 'private') : null) },
      { label: 'Tier', cell: (m) => h('span', { class: 'badge' }, m.tier.replace('_', ' ')) },
      { label: 'Namespace', cell: (m) => h('code', {}, m.namespace) },
      { label: 'Created', cell: (m) => when(m.created_at) },
      member ? { label: 'Actions', cell: (m) => forget(m, after) } : null,
    ].filter(Boolean);

    function searchTab(panel) {
      const q = h('input', { type: 'search', required: true, maxlength: 2000, placeholder: 'What do you remember about…', 'aria-label': 'Search memories' });
      const k = h('input', { type: 'number', min: '1', max: '100', value: '10' });
      const ns = h('input', { type: 'text', placeholder: 'any', spellcheck: 'false' });
      const tier = tierSelect(null, 'any tier');
      const out = h('div', { 'aria-live': 'polite', id: 'memory-results' });
      const go = h('button', { type: 'submit', class: 'btn primary' }, 'Search');
      const run = () => busy(go, async () => {
        try {
          const r = await get('/memory/search', { q: q.value.trim(), k: k.value, namespace: ns.value.trim(), tier: tier.value });
          const rows = r.results.map((x) => ({ ...x.memory, score: x.score, via: x.via }));
          mount(out, r.notice ? h('p', { class: 'muted small' }, r.notice) : null,
            table([{ label: 'Score', num: true, cell: (m) => m.score.toFixed(3) }, ...memoryCols(run),
              { label: 'Found by', cell: (m) => m.via }], rows, { empty: 'Nothing found.', caption: 'Search results' }));
        } catch (err) {
          mount(out, errorBox(err));
        }
      });
      panel.append(h('form', { on: { submit: (e) => { e.preventDefault(); run(); } } },
        h('div', { class: 'field' }, q),
        h('div', { class: 'form-grid' }, field('Results', k), field('Namespace', ns, 'user, agent, session:ID, thread:ID; comma-separated'), field('Tier', tier)),
        go), out);
    }

    async function browseTab(panel) {
      const ns = h('input', { type: 'search', placeholder: 'Namespace', 'aria-label': 'Filter by namespace' });
      const tier = tierSelect('Filter by tier', 'every tier');
      tier.classList.add('compact');
      const box = h('div', { 'aria-live': 'polite' }, loading());
      panel.append(h('div', { class: 'row' }, h('div', { class: 'grow' }, ns), tier), box);
      let all = [];
      const draw = () => {
        const n = ns.value.trim();
        const rows = all.filter((m) => (!n || m.namespace.startsWith(n)) && (!tier.value || m.tier === tier.value)).slice(0, BROWSE_MAX);
        mount(box, h('p', { class: 'muted small' }, `${rows.length} of ${all.length} memories`), table(memoryCols(load), rows, { empty: 'No memories here.', caption: 'Memories' }));
      };
      async function load() {
        try {
          const text = await (await request('GET', '/memories/export', { raw: true, headers: { accept: 'application/x-ndjson' } })).text();
          all = text.split('\n').filter(Boolean).map((l) => JSON.parse(l)).reverse();
          draw();
        } catch (err) {
          mount(box, errorBox(err));
        }
      }
      ns.addEventListener('input', draw);
      tier.addEventListener('change', draw);
      await load();
    }

    async function graphTab(panel) {
      const box = h('div', {}, loading());
      panel.append(box);
      let g;
      try {
        g = await get('/memory/graph', { limit: 60 });
      } catch (err) {
        mount(box, errorBox(err));
        return;
      }
      if (!g.entities.length) {
        mount(box, h('p', { class: 'empty' }, 'No entities yet. They are extracted from memories, or added with POST /memory/entities.'));
        return;
      }
      const W = 640;
      const pos = circle(g.entities.length, W / 2, W / 2, W / 2 - 90);
      const at = new Map(g.entities.map((e, i) => [e.id, pos[i]]));
      const name = new Map(g.entities.map((e) => [e.id, e.name]));
      const edges = g.relations.filter((r) => at.has(r.source) && at.has(r.target));
      const svg = s('svg', { viewBox: `0 0 ${W} ${W}`, class: 'mgraph', role: 'img', 'aria-label': `Memory graph: ${g.entities.length} entities, ${edges.length} relations` },
        ...edges.map((r) => {
          const [a, b] = [at.get(r.source), at.get(r.target)];
          return s('g', { class: 'medge' }, s('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y }),
            s('text', { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 - 4, 'text-anchor': 'middle' }, r.type));
        }),
        ...g.entities.map((e) => {
          const p = at.get(e.id);
          return s('g', { class: 'mnode' }, s('circle', { cx: p.x, cy: p.y, r: 7 }),
            s('text', { x: p.x, y: p.y - 12, 'text-anchor': 'middle' }, e.name.length > 24 ? `${e.name.slice(0, 24)}…` : e.name));
        }));
      mount(box, h('div', { class: 'mgraph-wrap' }, svg),
        h('details', {}, h('summary', {}, 'As a list'),
          table([
            { label: 'Entity', cell: (e) => e.name },
            { label: 'Kind', cell: (e) => e.kind || '—' },
            { label: 'Relations', cell: (e) => edges.filter((r) => r.source === e.id).map((r) => `${r.type} → ${name.get(r.target)}`).join('; ') || '—' },
          ], g.entities, { caption: 'Entities and their relations' })));
    }

    function addForm() {
      const text = h('textarea', { rows: 2, required: true, maxlength: 65536, id: 'memory-text' });
      const tier = tierSelect(null);
      const ns = h('input', { type: 'text', placeholder: 'user', spellcheck: 'false' });
      const priv = h('input', { type: 'checkbox' });
      const status = h('span', { class: 'small', 'aria-live': 'polite' });
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Remember');
      return h('form', { class: 'card', 'aria-labelledby': 'add-h', on: { submit: (e) => {
        e.preventDefault();
        busy(submit, async () => {
          const m = { text: text.value, tier: tier.value, private: priv.checked };
          if (ns.value.trim()) m.namespace = ns.value.trim();
          const r = await post('/memories', { memories: [m] });
          text.value = '';
          status.textContent = `Remembered in ${r.memories[0].namespace} (${r.memories[0].tier.replace('_', ' ')}); vectors: ${r.embedding}.`;
        });
      } } },
      h('h2', { id: 'add-h' }, 'Remember something'),
      field('Text', text),
      h('div', { class: 'form-grid' }, field('Tier', tier), field('Namespace', ns, 'default: yours'),
        h('label', { class: 'check field' }, priv, 'Private (encrypted with your vault key)')),
      h('div', { class: 'row' }, submit, status));
    }
  },
};
