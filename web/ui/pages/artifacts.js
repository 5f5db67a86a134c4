// Artifacts: upload with a progress bar (`POST /artifact/upload?name=&tags=`, the raw file as
// the body, sent by XMLHttpRequest for its upload progress), the list (`GET /artifacts`), and
// one artifact: preview (`…/preview`: images as data URLs, the node's sanitized Markdown HTML
// in a sandboxed frame that may run nothing, text as text), download, share links (create,
// shown once; revoke: `POST /artifacts/{id}/shares`, `DELETE /shares/{id}`) and delete.

import { get, post, del, request, download, ApiError } from '../lib/api.js';
import { session } from '../lib/session.js';
import { h, mount, field, when, num } from '../lib/dom.js';
import { errorBox, table, toast, confirmDialog, modal, copyButton, loading, busy } from '../lib/ui.js';
import { atLeast } from '../pages.js';

const PREVIEWABLE = /^(image\/(png|jpeg|gif|webp|svg\+xml)|text\/|application\/pdf)/;

export function size(n) {
  const units = ['B', 'KB', 'MB', 'GB'];
  let v = Number(n) || 0;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i ? v.toFixed(1) : v} ${units[i]}`;
}

/** Sends one file; `onProgress(sent, total)`. Resolves with the node's answer. */
function upload(file, name, tags, onProgress) {
  const send = (token) => new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const q = new URLSearchParams({ name });
    if (tags) q.set('tags', tags);
    xhr.open('POST', `/artifact/upload?${q}`);
    xhr.setRequestHeader('authorization', `Bearer ${token}`);
    xhr.setRequestHeader('accept', 'application/json');
    xhr.upload.addEventListener('progress', (e) => { if (e.lengthComputable) onProgress(e.loaded, e.total); });
    xhr.addEventListener('load', () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) resolve(body);
      else reject(new ApiError(xhr.status, body || { detail: `upload failed (${xhr.status})` }));
    });
    xhr.addEventListener('error', () => reject(new Error('the upload was interrupted; try again')));
    xhr.send(file);
  });
  return session.accessToken().then((t) => {
    if (!t) throw new ApiError(401, { detail: 'log in first', code: 'unauthorized' });
    return send(t);
  });
}

const dataUrl = (blob) => new Promise((resolve, reject) => {
  const r = new FileReader();
  r.onload = () => resolve(r.result);
  r.onerror = () => reject(r.error);
  r.readAsDataURL(blob);
});

async function preview(a) {
  const resp = await request('GET', `/artifacts/${encodeURIComponent(a.id)}/preview`, { raw: true, headers: { accept: '*/*' } });
  const kind = resp.headers.get('x-kai-preview') || '';
  const type = resp.headers.get('content-type') || '';
  if (type.startsWith('image/')) {
    return h('img', { class: 'preview-img', src: await dataUrl(await resp.blob()), alt: `Preview of ${a.name}` });
  }
  const text = await resp.text();
  if (type.startsWith('text/html')) {
    // Sanitized by the node; still framed with every sandbox restriction (no scripts, no forms,
    // a unique origin) so nothing in it can reach this page.
    return h('iframe', { class: 'preview-frame', sandbox: '', srcdoc: text, title: `Preview of ${a.name}`, 'data-preview': kind });
  }
  return h('pre', { class: 'preview-text', 'data-preview': kind }, text);
}

export default {
  async mount(root, ctx) {
    const member = atLeast(ctx.app.me.role, 'member');
    const listBox = h('div', {}, loading());
    const detail = h('div', { 'aria-live': 'polite' });
    root.append(h('div', { class: 'page-head' }, h('h1', {}, 'Artifacts')), h('div', { class: 'stack' },
      member ? uploadForm() : null,
      h('section', { class: 'card', 'aria-labelledby': 'art-h' }, h('h2', { id: 'art-h' }, 'Stored files'), listBox),
      detail));
    let selected = null;

    function uploadForm() {
      const file = h('input', { type: 'file', required: true, multiple: true });
      const tags = h('input', { type: 'text', placeholder: 'report, draft', spellcheck: 'false' });
      const bar = h('progress', { max: 100, value: 0, 'aria-label': 'Upload progress' });
      const status = h('span', { class: 'small', 'aria-live': 'polite', id: 'upload-status' });
      const submit = h('button', { type: 'submit', class: 'btn primary' }, 'Upload');
      bar.hidden = true;
      return h('form', { class: 'card', 'aria-labelledby': 'up-h', on: { submit: (e) => {
        e.preventDefault();
        busy(submit, async () => {
          const files = [...file.files];
          bar.hidden = false;
          let last = null;
          for (const [i, f] of files.entries()) {
            bar.value = 0;
            status.textContent = `Uploading ${f.name} (${size(f.size)})…`;
            try {
              const r = await upload(f, f.name, tags.value.trim(), (sent, total) => {
                bar.value = Math.round((sent / total) * 100);
                bar.setAttribute('aria-valuetext', `${bar.value}% of ${f.name}`);
              });
              bar.value = 100;
              last = r.artifact;
              status.textContent = `Uploaded ${f.name} as version ${r.artifact.version}${r.deduplicated ? ' (same contents as before: stored once)' : ''}${files.length > 1 ? ` (${i + 1}/${files.length})` : ''}.`;
            } catch (err) {
              status.textContent = `${f.name}: ${err.message}`;
              throw err;
            }
          }
          file.value = '';
          await drawList();
          if (last) open(last);
        });
      } } },
      h('h2', { id: 'up-h' }, 'Upload'),
      h('div', { class: 'form-grid' }, field('Files', file), field('Tags', tags, 'Comma-separated')),
      h('div', { class: 'row' }, submit, bar, status));
    }

    async function drawList() {
      let rows;
      try {
        rows = await get('/artifacts', { limit: 200 });
      } catch (err) {
        mount(listBox, errorBox(err));
        return;
      }
      mount(listBox, table([
        { label: 'Name', cell: (a) => h('button', { type: 'button', class: 'linkish', 'aria-pressed': String(selected === a.id), on: { click: () => open(a) } }, a.name) },
        { label: 'Version', num: true, cell: (a) => String(a.version) },
        { label: 'Size', num: true, cell: (a) => size(a.size) },
        { label: 'Type', cell: (a) => h('code', {}, a.content_type) },
        { label: 'Tags', cell: (a) => a.tags.join(', ') || '—' },
        { label: 'Created', cell: (a) => when(a.created_at) },
      ], rows, { empty: 'No files yet.', caption: 'Artifacts' }));
    }

    async function open(a) {
      selected = a.id;
      const previewBox = h('div', { class: 'preview' }, PREVIEWABLE.test(a.content_type) ? loading('Loading the preview…') : h('p', { class: 'muted' }, `No preview for ${a.content_type}; download it instead.`));
      const sharesBox = h('div', {});
      const dl = h('button', { type: 'button', class: 'btn' }, 'Download');
      dl.addEventListener('click', () => busy(dl, () => download(`/artifact/${encodeURIComponent(a.id)}`, undefined, a.name.split('/').pop())));
      const share = h('button', { type: 'button', class: 'btn' }, 'Create share link');
      share.addEventListener('click', () => createShare(a, share, sharesBox));
      const remove = h('button', { type: 'button', class: 'btn danger' }, 'Delete');
      remove.addEventListener('click', () => busy(remove, async () => {
        if (!await confirmDialog(`Delete ${a.name} v${a.version}?`, 'This version is deleted; its share links stop working.', 'Delete')) return;
        await del(`/artifacts/${encodeURIComponent(a.id)}`);
        toast(`Deleted ${a.name} v${a.version}`, 'ok');
        selected = null;
        mount(detail);
        drawList();
      }));
      mount(detail, h('section', { class: 'card', 'aria-labelledby': 'one-h', id: 'artifact-detail' },
        h('h2', { id: 'one-h', tabindex: '-1' }, a.name, h('span', { class: 'muted small' }, ` v${a.version}`)),
        h('dl', { class: 'kv small' },
          h('dt', {}, 'Size'), h('dd', {}, `${size(a.size)} (${num(a.size)} bytes)`),
          h('dt', {}, 'Type'), h('dd', {}, a.content_type),
          h('dt', {}, 'BLAKE3'), h('dd', { class: 'mono' }, a.digest),
          h('dt', {}, 'Owner'), h('dd', {}, a.owner),
          a.task_id ? [h('dt', {}, 'Task'), h('dd', {}, h('a', { href: `#/tasks/${encodeURIComponent(a.task_id)}` }, a.task_id))] : null),
        h('div', { class: 'row' }, dl, member ? share : null, member ? remove : null),
        h('h3', { class: 'sub' }, 'Preview'), previewBox,
        h('h3', { class: 'sub' }, 'Share links'), sharesBox));
      detail.querySelector('h2').focus();
      drawList();
      drawShares(a, sharesBox);
      if (PREVIEWABLE.test(a.content_type)) {
        try {
          mount(previewBox, await preview(a));
        } catch (err) {
          mount(previewBox, errorBox(err));
        }
      }
    }

    async function drawShares(a, box) {
      let shares;
      try {
        shares = await get(`/artifacts/${encodeURIComponent(a.id)}/shares`);
      } catch (err) {
        mount(box, errorBox(err));
        return;
      }
      const active = (s) => !s.revoked_at && new Date(s.expires_at) > new Date();
      mount(box, table([
        { label: 'Created', cell: (s) => when(s.created_at) },
        { label: 'Expires', cell: (s) => when(s.expires_at) },
        { label: 'Uses', num: true, cell: (s) => String(s.uses) },
        { label: 'State', cell: (s) => h('span', { class: `badge ${active(s) ? 'ok' : 'bad'}` }, s.revoked_at ? 'revoked' : active(s) ? 'active' : 'expired') },
        { label: 'Actions', cell: (s) => (active(s) && member ? h('button', { type: 'button', class: 'btn small danger', on: { click: (e) => busy(e.currentTarget, async () => {
          await del(`/shares/${encodeURIComponent(s.id)}`);
          toast('Share link revoked', 'ok');
          drawShares(a, box);
        }) } }, 'Revoke') : null) },
      ], shares, { empty: 'No share links.', caption: 'Share links' }));
    }

    async function createShare(a, btn, box) {
      const hours = h('input', { type: 'number', min: '1', max: '168', step: '1', value: '1' });
      const ok = await modal(`Share ${a.name}`, h('div', {},
        h('p', {}, 'Anyone with the link can download this version until it expires or you revoke it.'),
        field('Valid for (hours)', hours, '1 to 168')), [
        { label: 'Cancel', value: null },
        { label: 'Create link', value: () => Number(hours.value) || 1, primary: true, submit: true },
      ]);
      if (!ok) return;
      await busy(btn, async () => {
        const s = await post(`/artifacts/${encodeURIComponent(a.id)}/shares`, { ttl_secs: Math.round(ok * 3600) });
        const link = `${location.origin}${s.url}`;
        drawShares(a, box);
        await modal('Your share link', h('div', {},
          h('p', {}, 'Copy it now: it is shown only this once.'),
          h('div', { class: 'token-once', id: 'share-link', tabindex: '0' }, link),
          h('div', { class: 'row' }, copyButton(link, 'Copy link'))), [{ label: 'Done', value: true, primary: true }]);
      });
    }

    await drawList();
  },
};
