// The one way the dashboard talks to the node: the public REST API with the user's access
// token. Errors arrive as application/problem+json and become `ApiError` (with the stable
// `code`); a 401 triggers one token refresh and a retry; a sealed node sends the app to the
// unlock page. Streaming replies (server-sent events over POST) are parsed here too.

import { session } from './session.js';
import { sseParser } from './sse.js';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `request failed (${status})`);
    this.status = status;
    this.code = problem?.code || 'error';
    this.problem = problem;
  }
}

function url(path, query) {
  const u = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') u.searchParams.set(k, String(v));
  }
  return u.pathname + u.search;
}

async function problemOf(resp) {
  const type = resp.headers.get('content-type') || '';
  if (type.includes('json')) {
    try { return await resp.json(); } catch { /* fall through */ }
  }
  return { detail: `${resp.status} ${resp.statusText}`, code: 'error' };
}

function announce(err) {
  if (err.code === 'sealed') window.dispatchEvent(new CustomEvent('kai:sealed'));
}

/**
 * Sends one request. `opts`: `body` (JSON), `query`, `headers`, `auth` (default true),
 * `raw` (return the Response), `signal`.
 */
export async function request(method, path, opts = {}) {
  const { body, query, auth = true, raw = false, signal } = opts;
  const send = async () => {
    const headers = { accept: 'application/json', ...(opts.headers || {}) };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (auth) {
      const token = await session.accessToken();
      if (!token) throw new ApiError(401, { code: 'unauthorized', detail: 'log in first' });
      headers.authorization = `Bearer ${token}`;
    }
    return fetch(url(path, query), {
      method, headers, signal, credentials: 'omit', cache: 'no-store',
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  let resp = await send();
  if (resp.status === 401 && auth && session.canRefresh()) {
    await session.refresh();
    resp = await send();
  }
  if (!resp.ok) {
    const err = new ApiError(resp.status, await problemOf(resp));
    announce(err);
    if (err.status === 401 && auth) session.expired();
    throw err;
  }
  if (raw) return resp;
  if (resp.status === 204) return null;
  const type = resp.headers.get('content-type') || '';
  return type.includes('json') ? resp.json() : resp.text();
}

export const get = (path, query, opts) => request('GET', path, { ...opts, query });
export const post = (path, body, opts) => request('POST', path, { ...opts, body });
export const put = (path, body, opts) => request('PUT', path, { ...opts, body });
export const patch = (path, body, opts) => request('PATCH', path, { ...opts, body });
export const del = (path, opts) => request('DELETE', path, opts);

/**
 * POSTs `body` asking for `text/event-stream` and calls `onEvent(name, data)` for each event
 * (data parsed as JSON when it is). Resolves when the stream ends.
 */
export async function stream(path, body, onEvent, { signal } = {}) {
  const resp = await request('POST', path, {
    body: body ?? undefined, raw: true, signal, headers: { accept: 'text/event-stream' },
  });
  const type = resp.headers.get('content-type') || '';
  if (!type.includes('text/event-stream')) {
    onEvent('json', await resp.json());
    return;
  }
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = sseParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.push(value);
  }
  parser.end();
}

/** Saves a response body as a file (for exports). */
export async function download(path, query, fallbackName) {
  const resp = await request('GET', path, { query, raw: true, headers: { accept: '*/*' } });
  const disposition = resp.headers.get('content-disposition') || '';
  const name = /filename="([^"]+)"/.exec(disposition)?.[1] || fallbackName;
  const blob = await resp.blob();
  const href = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = href;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
  return name;
}
