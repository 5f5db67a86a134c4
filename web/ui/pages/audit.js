// Audit: the signed log (`/audit/entries`), newest page first with older/newer paging and a
// filter, each entry's details and hashes on demand, and Verify (`/audit/verify`): every
// entry, link, signature and checkpoint, naming the first bad entry if there is one.

import { get } from '../lib/api.js';
import { h, mount, when, num, short } from '../lib/dom.js';
import { errorBox, table, loading, busy } from '../lib/ui.js';
import { userNames, principal } from '../lib/names.js';

const PAGE = 50;

function outcomeBadge(o) {
  const kind = o === 'success' ? 'ok' : o === 'denied' || o === 'failure' ? 'bad' : '';
  return h('span', { class: `badge ${kind}` }, o);
}

export default {
  async mount(root, ctx) {
    const result = h('div', { 'aria-live': 'polite', id: 'verify-result' });
    const verify = h('button', { type: 'button', class: 'btn primary', id: 'verify-btn' }, 'Verify the log');
    const filter = h('input', { type: 'search', placeholder: 'Filter by actor, action or target', 'aria-label': 'Filter entries' });
    const older = h('button', { type: 'button', class: 'btn small' }, '← Older');
    const newer = h('button', { type: 'button', class: 'btn small' }, 'Newer →');
    const range = h('span', { class: 'muted small' });
    const box = h('div', {}, loading());
    root.append(
      h('div', { class: 'page-head' }, h('h1', {}, 'Audit log'), h('span', { class: 'spacer' }), verify),
      result,
      h('section', { class: 'card' },
        h('div', { class: 'row' }, h('div', { class: 'grow' }, filter), older, range, newer),
        box));

    let total = 0;
    let after = 0;
    let entries = [];
    const names = await userNames(ctx.app.me.role);
    const who = (text) => principal(names, text);

    verify.addEventListener('click', () => busy(verify, async () => {
      mount(result, loading('Verifying every entry and checkpoint…'));
      let v;
      try {
        v = await get('/audit/verify');
      } catch (err) {
        mount(result, errorBox(err));
        return;
      }
      mount(result, v.ok
        ? h('div', { class: 'alert ok', role: 'status' },
          h('strong', {}, 'Verified. '), `${num(v.entries)} entries and ${num(v.checkpoints)} checkpoints are intact and correctly signed.`,
          h('div', { class: 'small' }, 'Merkle root ', h('code', {}, v.root)),
          h('div', { class: 'small' }, `Signers: ${v.signers.map((s) => short(s, 14)).join(', ')}`))
        : h('div', { class: 'alert', role: 'alert' },
          h('strong', {}, 'The log does not verify. '), `First bad entry: #${v.first_bad_entry}. `, v.reason || ''));
    }));

    const matches = (e) => {
      const q = filter.value.trim().toLowerCase();
      return !q || [e.actor, e.action, e.target, e.outcome].some((x) => String(x).toLowerCase().includes(q));
    };
    function draw() {
      const rows = entries.filter(matches).slice().reverse();
      range.textContent = entries.length ? `#${entries[0].seq}–#${entries[entries.length - 1].seq} of ${num(total)}` : '';
      older.disabled = after <= 0;
      newer.disabled = after + PAGE >= total;
      mount(box, table([
        { label: '#', num: true, cell: (e) => String(e.seq) },
        { label: 'Time', cell: (e) => when(e.timestamp) },
        { label: 'Actor', cell: (e) => who(e.actor) },
        { label: 'Action', cell: (e) => h('code', {}, e.action) },
        { label: 'Target', cell: (e) => who(e.target) },
        { label: 'Outcome', cell: (e) => outcomeBadge(e.outcome) },
        { label: 'Details', cell: (e) => h('details', {}, h('summary', {}, 'Show'),
          h('pre', {}, JSON.stringify(e.details, null, 2)),
          h('dl', { class: 'kv small' },
            h('dt', {}, 'Hash'), h('dd', { class: 'mono' }, e.hash),
            h('dt', {}, 'Previous'), h('dd', { class: 'mono' }, e.prev_hash),
            h('dt', {}, 'Signer'), h('dd', { class: 'mono' }, e.signer))) },
      ], rows, { empty: filter.value ? 'No entry on this page matches.' : 'No entries.', caption: 'Audit entries' }));
    }
    filter.addEventListener('input', draw);

    async function load(at) {
      try {
        const info = await get('/system/info');
        total = info.audit_entries;
        after = Math.max(0, Math.min(at ?? total - PAGE, total - 1));
        entries = (await get('/audit/entries', { after, limit: PAGE })).entries;
        draw();
      } catch (err) {
        mount(box, errorBox(err));
      }
    }
    older.addEventListener('click', () => load(Math.max(0, after - PAGE)));
    newer.addEventListener('click', () => load(after + PAGE));
    await load();
    ctx.keys.add('v', 'Verify the audit log', () => verify.click());
  },
};
