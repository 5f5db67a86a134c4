// The live event stream: one WebSocket to `GET /ws` per tab, shared by every page. The access
// token travels as the `kai.token.<jwt>` subprotocol (browsers cannot set an Authorization
// header on a WebSocket; the token expires in 15 minutes and never appears in a URL).
// Subscriptions remember the offset of the last event they saw; after any reconnect they
// resubscribe with `after` so nothing is missed or repeated. Close 1013 (too slow) and 4401
// (credential expired or revoked) are answered by reconnecting (after a token refresh); 4503
// means the vault was sealed.

import { session } from './session.js';

const CLOSE_TOO_SLOW = 1013;
const CLOSE_AUTH = 4401;
const CLOSE_SEALED = 4503;

class Live extends EventTarget {
  constructor() {
    super();
    this.ws = null;
    this.subs = new Map();
    this.seq = 0;
    this.backoff = 500;
    this.timer = 0;
    this.wanted = false;
    this.state = 'off';
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent('state', { detail: state }));
  }

  /**
   * Subscribes to events matching `filter` ({types, agents, task_ids, threads}); `after`
   * replays from that offset first. `onReady` runs each time the node confirms the
   * subscription: a page that loaded its data before that moment reloads it there, so an event
   * published between its load and the subscription is not lost. Returns a function that
   * unsubscribes.
   */
  subscribe(filter, onEvent, { after, onReady } = {}) {
    this.seq += 1;
    const id = `s${this.seq}`;
    const sub = { id, filter: filter || {}, after, onEvent, onReady };
    this.subs.set(id, sub);
    this.send(subscribeOp(sub));
    return () => {
      if (this.subs.delete(id)) this.send({ op: 'unsubscribe', id });
    };
  }

  send(op) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(op));
  }

  start() {
    this.wanted = true;
    if (!this.ws) this.connect();
  }

  stop() {
    this.wanted = false;
    clearTimeout(this.timer);
    this.subs.clear();
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, 'logged out');
    this.setState('off');
  }

  async connect() {
    clearTimeout(this.timer);
    if (!this.wanted) return;
    let token;
    try {
      token = await session.accessToken();
    } catch {
      token = null;
    }
    if (!token || !this.wanted) {
      this.setState('off');
      return;
    }
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${scheme}//${location.host}/ws`, ['kai', `kai.token.${token}`]);
    this.ws = ws;
    this.setState('connecting');
    ws.addEventListener('open', () => {
      this.backoff = 500;
      this.setState('on');
      for (const sub of this.subs.values()) ws.send(JSON.stringify(subscribeOp(sub)));
    });
    ws.addEventListener('message', (e) => this.receive(e.data));
    ws.addEventListener('close', (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (!this.wanted) return;
      this.setState('retry');
      if (e.code === CLOSE_SEALED) {
        this.setState('off');
        window.dispatchEvent(new CustomEvent('kai:sealed'));
        return;
      }
      if (e.code === CLOSE_AUTH) {
        session.refresh().then(() => this.connect(), () => this.setState('off'));
        return;
      }
      const wait = e.code === CLOSE_TOO_SLOW ? Math.max(this.backoff, 1000) : this.backoff;
      this.backoff = Math.min(this.backoff * 2, 30_000);
      this.timer = setTimeout(() => this.connect(), wait);
    });
  }

  receive(text) {
    let msg;
    try { msg = JSON.parse(text); } catch { return; }
    if (msg.op === 'event') {
      const sub = this.subs.get(msg.sub);
      if (!sub) return;
      if (typeof msg.event.offset === 'number') {
        if (sub.after !== undefined && msg.event.offset <= sub.after) return;
        sub.after = msg.event.offset;
      }
      sub.onEvent(msg.event);
    } else if (msg.op === 'subscribed') {
      const sub = this.subs.get(msg.id);
      if (sub && sub.after === undefined && typeof msg.after === 'number') sub.after = msg.after;
      if (sub && sub.onReady) sub.onReady();
    } else if (msg.op === 'error') {
      this.dispatchEvent(new CustomEvent('error', { detail: msg }));
    }
  }
}

function subscribeOp(sub) {
  const op = { op: 'subscribe', id: sub.id, filter: sub.filter };
  if (sub.after !== undefined) op.after = sub.after;
  return op;
}

export const live = new Live();
