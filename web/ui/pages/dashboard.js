// Dashboard: the node (`/system/info`), its health (`/health`, `/ready`, `/vault/status`),
// token usage and spend (`/telemetry/usage`) and the newest events (`GET /events?tail=`),
// kept live over the WebSocket from the offset the page loaded up to (no gap, no repeat).

import { get } from '../lib/api.js';
import { live } from '../lib/live.js';
import { h, mount, ago, duration, num, usd, short, brief } from '../lib/dom.js';
import { errorBox, table, copyButton, loading } from '../lib/ui.js';
import { userNames, principal } from '../lib/names.js';

const MAX_EVENTS = 200;

function nodeCard(info) {
  return h('section', { class: 'card', 'aria-labelledby': 'node-h' },
    h('h2', { id: 'node-h' }, 'Node'),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Name'), h('dd', {}, info.name),
      h('dt', {}, 'Version'), h('dd', {}, info.version),
      h('dt', {}, 'Identity'), h('dd', {}, h('code', { title: info.did }, short(info.did, 16)), ' ', copyButton(info.did)),
      h('dt', {}, 'Up for'), h('dd', {}, duration(info.uptime_secs), h('span', { class: 'muted' }, ' (since ', ago(info.started_at), ')')),
      h('dt', {}, 'Storage'), h('dd', {}, `${info.storage_backend}, schema ${info.schema_version}`),
      h('dt', {}, 'Event bus'), h('dd', {}, info.bus_backend),
      h('dt', {}, 'Audit log'), h('dd', {}, `${num(info.audit_entries)} entries`)));
}

function healthCard(health, ready, vault) {
  const badge = (ok, text) => h('span', { class: `badge ${ok ? 'ok' : 'bad'}` }, text);
  return h('section', { class: 'card', 'aria-labelledby': 'health-h' },
    h('h2', { id: 'health-h' }, 'Health'),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Process'), h('dd', {}, badge(health?.status === 'ok', health?.status || 'down')),
      h('dt', {}, 'Ready'), h('dd', {}, ready.ok ? badge(true, `ready (${ready.value.storage})`) : badge(false, ready.error.message)),
      h('dt', {}, 'Vault'), h('dd', {}, badge(vault.state === 'unsealed', vault.state), vault.rekey_pending ? h('span', { class: 'badge warn' }, 'rekey pending') : null,
        h('span', { class: 'muted small' }, ` key generation ${vault.generation ?? '—'}`))));
}

function usageCard(usage, names) {
  const totals = usage.totals || [];
  const sum = (k) => totals.reduce((a, t) => a + (Number(t[k]) || 0), 0);
  return h('section', { class: 'card', 'aria-labelledby': 'usage-h' },
    h('h2', { id: 'usage-h' }, `Usage and spend (last ${usage.hours} h)`),
    h('div', { class: 'stats' },
      h('div', {}, h('div', { class: 'stat' }, num(sum('calls'))), h('div', { class: 'muted small' }, 'model calls')),
      h('div', {}, h('div', { class: 'stat' }, num(sum('prompt_tokens') + sum('completion_tokens'))), h('div', { class: 'muted small' }, 'tokens')),
      h('div', {}, h('div', { class: 'stat' }, usd(sum('cost_usd'))), h('div', { class: 'muted small' }, 'spent'))),
    table([
      { label: 'Principal', cell: (t) => principal(names, t.principal) },
      { label: 'Persona', cell: (t) => t.persona },
      { label: 'Calls', num: true, cell: (t) => num(t.calls) },
      { label: 'Tokens in / out', num: true, cell: (t) => `${num(t.prompt_tokens)} / ${num(t.completion_tokens)}` },
      { label: 'Cost', num: true, cell: (t) => usd(t.cost_usd) },
    ], totals, { empty: 'No model calls in this period.', caption: 'Usage per principal and persona' }));
}

function eventItem(e) {
  return h('li', { 'data-offset': e.offset },
    h('span', { class: 'muted small' }, ago(e.timestamp)),
    h('div', {}, h('div', { class: 'etype' }, e.type, e.agent ? h('span', { class: 'muted' }, ` · ${e.agent}`) : null, e.task_id ? h('span', { class: 'muted' }, ` · task ${e.task_id}`) : null),
      h('div', { class: 'epayload' }, brief(e.payload))));
}

export default {
  async mount(root, ctx) {
    const cards = h('div', { class: 'grid' }, loading());
    const usageBox = h('div', {});
    const hours = h('select', { 'aria-label': 'Usage period' },
      [[24, 'Last 24 hours'], [168, 'Last 7 days'], [720, 'Last 30 days']].map(([v, t]) => h('option', { value: v }, t)));
    const filter = h('input', { type: 'search', placeholder: 'Filter by type or content', 'aria-label': 'Filter events' });
    const list = h('ul', { class: 'events', 'aria-live': 'polite', 'aria-relevant': 'additions', id: 'events' });
    const count = h('span', { class: 'muted small', id: 'event-count' });
    root.append(
      h('div', { class: 'page-head' }, h('h1', {}, 'Dashboard'), h('span', { class: 'spacer' }),
        h('button', { type: 'button', class: 'btn', on: { click: () => refresh() } }, 'Refresh')),
      cards,
      h('div', { class: 'grid' },
        h('div', { class: 'stack' }, h('div', { class: 'row' }, h('span', { class: 'grow' }), hours), usageBox),
        h('section', { class: 'card', 'aria-labelledby': 'events-h' },
          h('div', { class: 'row' }, h('h2', { id: 'events-h', class: 'grow' }, 'Recent events'), count),
          h('div', { class: 'field' }, filter),
          list)));

    const matches = (e) => {
      const q = filter.value.trim().toLowerCase();
      return !q || e.type.toLowerCase().includes(q) || brief(e.payload, 4000).toLowerCase().includes(q);
    };
    let events = [];
    const draw = () => {
      const shown = events.filter(matches);
      mount(list, shown.length ? shown.map(eventItem) : h('li', { class: 'empty' }, 'No events yet.'));
      count.textContent = `${shown.length} shown`;
    };
    filter.addEventListener('input', draw);

    async function refresh() {
      const settle = (p) => p.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
      const [info, health, ready, vault] = await Promise.all([
        settle(get('/system/info')), settle(get('/health', undefined, { auth: false })),
        settle(get('/ready', undefined, { auth: false })), settle(get('/vault/status', undefined, { auth: false }))]);
      mount(cards,
        info.ok ? nodeCard(info.value) : h('section', { class: 'card' }, h('h2', {}, 'Node'), errorBox(info.error)),
        healthCard(health.ok ? health.value : null, ready, vault.ok ? vault.value : { state: 'unknown' }));
      await loadUsage();
    }
    async function loadUsage() {
      try {
        const [usage, names] = await Promise.all([get('/telemetry/usage', { hours: hours.value }), userNames(ctx.app.me.role)]);
        mount(usageBox, usageCard(usage, names));
      } catch (err) {
        mount(usageBox, h('section', { class: 'card' }, h('h2', {}, 'Usage and spend'), errorBox(err)));
      }
    }
    hours.addEventListener('change', loadUsage);

    await refresh();
    let stop = () => {};
    try {
      const page = await get('/events', { tail: 50 });
      events = page.events.slice().reverse();
      draw();
      stop = live.subscribe({}, (e) => {
        events.unshift(e);
        if (events.length > MAX_EVENTS) events.length = MAX_EVENTS;
        if (matches(e)) {
          list.querySelector('.empty')?.remove();
          list.prepend(eventItem(e));
          while (list.children.length > MAX_EVENTS) list.lastChild.remove();
          count.textContent = `${list.children.length} shown`;
        }
      }, { after: page.next_after });
    } catch (err) {
      mount(list, h('li', {}, errorBox(err)));
    }
    const timer = setInterval(() => { if (!document.hidden) refresh().catch(() => {}); }, 30_000);
    ctx.keys.add('r', 'Refresh the dashboard', () => refresh());
    return () => { clearInterval(timer); stop(); };
  },
};
