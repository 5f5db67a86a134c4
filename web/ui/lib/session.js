// The user's login session: `POST /auth/login` gives a 15-minute access token and a single-use
// refresh token. The access token lives in memory only; the refresh token is kept in this
// tab's sessionStorage so a reload stays logged in (closing the tab ends it). Refreshes are
// single-flight (a refresh token used twice revokes the session on the node) and happen a
// minute before the access token expires.

const KEY = 'kai.refresh';
const EARLY_MS = 60_000;

function stored() {
  try { return sessionStorage.getItem(KEY); } catch { return null; }
}
function store(token) {
  try {
    if (token) sessionStorage.setItem(KEY, token);
    else sessionStorage.removeItem(KEY);
  } catch { /* storage disabled: the session lasts until reload */ }
}

async function call(path, body, access) {
  const headers = { 'content-type': 'application/json', accept: 'application/json' };
  if (access) headers.authorization = `Bearer ${access}`;
  const resp = await fetch(path, {
    method: 'POST', headers, credentials: 'omit', cache: 'no-store',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  if (resp.status !== 204) {
    try { data = await resp.json(); } catch { data = null; }
  }
  return { ok: resp.ok, status: resp.status, data };
}

class Session extends EventTarget {
  constructor() {
    super();
    this.access = null;
    this.refreshToken = stored();
    this.expiresAt = 0;
    this.inflight = null;
    this.timer = 0;
    this.me = null;
  }

  /** True when the user is (or can get) logged in. */
  get active() {
    return Boolean(this.access || this.refreshToken);
  }

  canRefresh() {
    return Boolean(this.refreshToken);
  }

  /** Logs in; throws `{status, problem}` on failure. */
  async login(username, password) {
    const r = await call('/auth/login', { username, password });
    if (!r.ok) throw Object.assign(new Error(r.data?.detail || 'login failed'), { status: r.status, code: r.data?.code });
    this.accept(r.data);
    this.dispatchEvent(new Event('login'));
  }

  accept(tokens) {
    this.access = tokens.access_token;
    this.refreshToken = tokens.refresh_token;
    this.expiresAt = Date.now() + tokens.expires_in * 1000;
    store(this.refreshToken);
    clearTimeout(this.timer);
    this.timer = setTimeout(() => { this.refresh().catch(() => {}); }, Math.max(5_000, tokens.expires_in * 1000 - EARLY_MS));
    this.dispatchEvent(new Event('token'));
  }

  /** Exchanges the refresh token for new tokens (once at a time). */
  refresh() {
    if (!this.refreshToken) return Promise.reject(new Error('not logged in'));
    if (!this.inflight) {
      const token = this.refreshToken;
      this.inflight = call('/auth/refresh', { refresh_token: token })
        .then((r) => {
          if (!r.ok) {
            // 401: the session is over. Anything else (a sealed vault, a hiccup) keeps it.
            if (r.status === 401) this.expired();
            if (r.data?.code === 'sealed') window.dispatchEvent(new CustomEvent('kai:sealed'));
            throw Object.assign(new Error(r.data?.detail || 'session ended'), { status: r.status, code: r.data?.code });
          }
          this.accept(r.data);
        })
        .finally(() => { this.inflight = null; });
    }
    return this.inflight;
  }

  /** A valid access token (refreshed first when it is about to expire), or null. */
  async accessToken() {
    if (this.access && Date.now() < this.expiresAt - EARLY_MS / 2) return this.access;
    if (!this.refreshToken) return null;
    await this.refresh();
    return this.access;
  }

  /** The node no longer accepts this session. */
  expired() {
    const was = this.active;
    this.clear();
    if (was) this.dispatchEvent(new Event('logout'));
  }

  clear() {
    clearTimeout(this.timer);
    this.access = null;
    this.refreshToken = null;
    this.expiresAt = 0;
    this.me = null;
    store(null);
  }

  /** Ends the session on the node, then here. */
  async logout() {
    const access = this.access;
    this.clear();
    if (access) await call('/auth/logout', undefined, access).catch(() => {});
    this.dispatchEvent(new Event('logout'));
  }
}

export const session = new Session();
