// The websocket: connects with the session cookie, resumes with ?since=<last seq>, reconnects
// with backoff, pings to notice dead connections, and reports its status.

const PING_EVERY = 25000;
const PONG_WITHIN = 10000;
const MAX_BACKOFF = 15000;

export class Live {
  constructor({ onFrame, onHello, onResync, onStatus, onGiveUp }) {
    this.handlers = { onFrame, onHello, onResync, onStatus, onGiveUp };
    this.seq = null;
    this.ws = null;
    this.attempts = 0;
    this.stopped = true;
    this.connectedOnce = false;
    this.timers = {};
    this.onOnline = () => this.reconnectNow();
    this.onOffline = () => this.drop();
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.onOnline);
    window.addEventListener('offline', this.onOffline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.removeEventListener('online', this.onOnline);
    window.removeEventListener('offline', this.onOffline);
    this.clearTimers();
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  connect() {
    if (this.stopped) return;
    if (navigator.onLine === false) {
      this.status('offline');
      return; // the 'online' event brings us back
    }
    const url = new URL('/ws', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const since = this.seq;
    if (since != null) url.searchParams.set('since', String(since));
    this.status(this.connectedOnce ? 'offline' : 'connecting');
    const ws = new WebSocket(url);
    this.ws = ws;
    ws.onmessage = (event) => this.receive(ws, event, since);
    ws.onclose = () => this.closed(ws);
    ws.onerror = () => {}; // onclose follows
  }

  receive(ws, event, since) {
    if (ws !== this.ws) return;
    this.lastFrameAt = Date.now();
    clearTimeout(this.timers.pong);
    let frame;
    try {
      frame = JSON.parse(event.data);
    } catch {
      return;
    }
    if (frame.type === 'hello') {
      // Without `since`, live events continue after hello's seq; with it, the replay follows.
      if (since == null) this.seq = frame.seq;
      const reconnect = this.connectedOnce;
      this.connectedOnce = true;
      this.attempts = 0;
      this.status('online');
      this.schedulePing();
      this.handlers.onHello(frame.data, { reconnect });
      return;
    }
    if (frame.type === 'resync_required') {
      if (frame.data && typeof frame.data.seq === 'number') this.seq = frame.data.seq;
      this.handlers.onResync();
      return;
    }
    if (frame.type === 'pong' || frame.type === 'error') return;
    if (typeof frame.seq === 'number') {
      if (this.seq != null && frame.seq <= this.seq) return; // already seen
      this.seq = frame.seq;
    }
    this.handlers.onFrame(frame);
  }

  schedulePing() {
    clearTimeout(this.timers.ping);
    this.timers.ping = setTimeout(() => {
      if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
      this.ws.send(JSON.stringify({ type: 'ping' }));
      // No answer in time: the connection is dead even if the browser has not noticed.
      this.timers.pong = setTimeout(() => this.drop(), PONG_WITHIN);
      this.schedulePing();
    }, PING_EVERY);
  }

  closed(ws) {
    if (ws !== this.ws) return;
    this.ws = null;
    this.clearTimers();
    if (this.stopped) return;
    this.status(this.connectedOnce ? 'offline' : 'connecting');
    this.attempts += 1;
    if (this.attempts === 3) this.handlers.onGiveUp?.();
    const backoff = Math.min(MAX_BACKOFF, 500 * 2 ** Math.min(this.attempts, 6));
    const delay = backoff / 2 + Math.random() * (backoff / 2);
    this.timers.retry = setTimeout(() => this.connect(), delay);
  }

  /** Close the current connection (it is dead or we are offline); reconnecting follows. */
  drop() {
    const ws = this.ws;
    if (!ws) return;
    this.closed(ws);
    try {
      ws.close();
    } catch {
      // already closing
    }
  }

  reconnectNow() {
    if (this.stopped) return;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return;
    clearTimeout(this.timers.retry);
    this.attempts = 0;
    this.connect();
  }

  clearTimers() {
    for (const timer of Object.values(this.timers)) clearTimeout(timer);
    this.timers = {};
  }

  status(value) {
    this.handlers.onStatus(value);
  }
}
