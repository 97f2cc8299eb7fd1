// Pentecost browser client: the HTTP API calls the pages need and the
// WebSocket protocol (docs/protocol.md) for listeners and speakers, with
// heartbeats, reconnection with backoff, resume from the last frame and
// server-initiated refresh handled inside. Audio is PCM or Opus (opus.js
// encodes and decodes it). Documented in docs/web-client.md.

import { OpusEncoder, RATE, createOpusDecoder, frameSamples48, opusEncoderConfig, parsePacket } from './opus.js';

/** Close codes of the protocol (docs/protocol.md, section 5). */
export const Close = Object.freeze({
  NORMAL: 1000, GOING_AWAY: 1001, POLICY: 1008, TOO_BIG: 1009, INTERNAL: 1011,
  TRY_AGAIN: 1013, IDLE: 4000, TOO_SLOW: 4001, MAX_DURATION: 4002, REPLACED: 4003,
  TOKEN_INVALID: 4004,
});

/** Close code this client uses when it gives up on a silent connection. */
const CLIENT_DROP = 3000;

/** An error from the API or the socket, with the protocol's code. */
export class PentecostError extends Error {
  constructor(code, message, { status = 0, retryAfter = 0, details = null } = {}) {
    super(message);
    this.name = 'PentecostError';
    this.code = code;
    this.status = status;
    this.retryAfter = retryAfter;
    this.details = details;
  }
}

// ---------------------------------------------------------------------------
// Session IDs and the HTTP API

/**
 * Turns a session code as a person typed it ("Golden Eagle 427") into its
 * canonical form ("golden-eagle-427"), or returns null when it cannot be one.
 * Mirrors the server's forgiving parser.
 */
export function normalizeSessionId(input) {
  const s = String(input ?? '');
  if (s.length > 64) return null;
  const id = s
    .replace(/[A-Z]/g, (c) => c.toLowerCase())
    .replace(/[ \t\n\r_.-]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return /^[a-z]+-[a-z]+-[1-9][0-9]{2}$/.test(id) ? id : null;
}

async function api(baseUrl, method, path, { token, body, credentials = 'omit' } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = 'Bearer ' + token;
  let res;
  try {
    res = await fetch(baseUrl + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
      credentials, cache: 'no-store',
    });
  } catch (err) {
    throw new PentecostError('NETWORK_ERROR', 'The server could not be reached.');
  }
  if (res.status === 204) return null;
  let data = null;
  try { data = await res.json(); } catch { /* not JSON */ }
  if (!res.ok) {
    throw new PentecostError(data?.code || 'HTTP_' + res.status, data?.message || res.statusText,
      { status: res.status, retryAfter: data?.retryAfter || 0, details: data?.details ?? null });
  }
  return data;
}

/** Lists the languages the server knows: [{code, name, nativeName}]. */
export async function fetchLanguages(baseUrl = '') {
  const data = await api(baseUrl, 'GET', '/languages');
  return data.languages;
}

/** Looks a session up by ID (forgiving). Throws PentecostError. */
export function getSession(id, baseUrl = '') {
  return api(baseUrl, 'GET', '/sessions/' + encodeURIComponent(id));
}

/**
 * Signs in to an embedded account: {token, tokenType, expiresAt, user}. The
 * browser keeps the server's device cookie and sends it with the next
 * sign-in, so that guessing at the account cannot lock this browser out.
 * Only a same-origin API gets it: the server answers no CORS.
 */
export function login(username, password, baseUrl = '') {
  return api(baseUrl, 'POST', '/auth/login', { body: { username, password }, credentials: 'same-origin' });
}

/** Creates a session owned by the token's speaker. */
export function createSession(token, { sourceLanguage, qualityTier = 'standard' }, baseUrl = '') {
  return api(baseUrl, 'POST', '/sessions', { token, body: { sourceLanguage, qualityTier } });
}

/**
 * Lists the token's speaker's own sessions, newest first (GET /sessions):
 * {sessions, total}. status (optional) is 'active', 'paused' or 'ended';
 * limit (1–100, default 20) and offset page through them.
 */
export function listSessions(token, { status, limit, offset } = {}, baseUrl = '') {
  const q = new URLSearchParams();
  if (status) q.set('status', status);
  if (limit !== undefined) q.set('limit', String(limit));
  if (offset !== undefined) q.set('offset', String(offset));
  const qs = q.toString();
  return api(baseUrl, 'GET', '/sessions' + (qs ? '?' + qs : ''), { token });
}

/**
 * The languages a session offers now (GET /sessions/{id}/languages):
 * {sessionId, sourceLanguage, languages: [{code, status}]}, status being
 * 'source' (the speaker's), 'live' (a worker produces it now) or
 * 'available' (a connected worker starts it when a listener picks it).
 * Languages nobody can produce are not listed. No sign-in needed.
 */
export function sessionLanguages(sessionId, baseUrl = '') {
  return api(baseUrl, 'GET', '/sessions/' + encodeURIComponent(sessionId) + '/languages');
}

/**
 * What the connected translation workers can do (GET /capabilities):
 * {tiers: ['standard', …], languages: {en: ['es', …]}, timestamp}. The
 * standard tier is always listed. No sign-in needed.
 */
export function capabilities(baseUrl = '') {
  return api(baseUrl, 'GET', '/capabilities');
}

/** Ends a session at once (DELETE /sessions/{id}). */
export function endSession(token, id, baseUrl = '') {
  return api(baseUrl, 'DELETE', '/sessions/' + encodeURIComponent(id), { token });
}

// The admin API (/admin/api/…): an admin's token only; any other account
// gets PentecostError FORBIDDEN (status 403).

/** Every embedded account: {accounts: [{name, role, createdAt, passwordChangedAt}]}. */
export function adminAccounts(token, baseUrl = '') {
  return api(baseUrl, 'GET', '/admin/api/accounts', { token });
}

/**
 * Adds an account, a speaker unless role is 'admin': {account, password}.
 * Without password the server makes one and returns it this once.
 */
export function adminAddAccount(token, { name, role, password } = {}, baseUrl = '') {
  const body = { name };
  if (role) body.role = role;
  if (password) body.password = password;
  return api(baseUrl, 'POST', '/admin/api/accounts', { token, body });
}

/**
 * Sets an account's password, or has one made when password is empty:
 * {account, password}. The account is signed out everywhere.
 */
export function adminSetPassword(token, name, password = '', baseUrl = '') {
  return api(baseUrl, 'POST', '/admin/api/accounts/' + encodeURIComponent(name) + '/password',
    { token, body: password ? { password } : {} });
}

/** Makes an account 'admin' or 'speaker'; the last admin stays (CONFLICT). */
export function adminSetRole(token, name, role, baseUrl = '') {
  return api(baseUrl, 'PATCH', '/admin/api/accounts/' + encodeURIComponent(name), { token, body: { role } });
}

/** Removes an account; the last admin stays (CONFLICT). */
export function adminRemoveAccount(token, name, baseUrl = '') {
  return api(baseUrl, 'DELETE', '/admin/api/accounts/' + encodeURIComponent(name), { token });
}

/**
 * Every speaker's live sessions: {sessions: [{session, listeners: {total,
 * byLanguage}, translations, speakerConnected}], total, workers, timestamp}.
 */
export function adminSessions(token, { limit } = {}, baseUrl = '') {
  const qs = limit !== undefined ? '?limit=' + encodeURIComponent(limit) : '';
  return api(baseUrl, 'GET', '/admin/api/sessions' + qs, { token });
}

/** Ends anyone's session at once: everyone in it gets sessionEnded. */
export function adminEndSession(token, id, baseUrl = '') {
  return api(baseUrl, 'DELETE', '/admin/api/sessions/' + encodeURIComponent(id), { token });
}

// ---------------------------------------------------------------------------
// Audio frames

/**
 * Decodes a binary audio frame (docs/protocol.md 3.1) into
 * {language, seq, timestamp, codec, pcm, packet}: kind 1 is PCM, pcm being
 * an Int16Array of the audio bytes as sent (packet null); kind 2 is Opus,
 * packet being the Opus packet's bytes (pcm null). Returns null for
 * unknown versions or kinds.
 */
export function decodeAudioFrame(buf) {
  if (!(buf instanceof ArrayBuffer) || buf.byteLength < 20) return null;
  const v = new DataView(buf);
  const kind = v.getUint8(1);
  if (v.getUint8(0) !== 1 || (kind !== 1 && kind !== 2)) return null;
  const language = String.fromCharCode(v.getUint8(2), v.getUint8(3));
  const seq = Number(v.getBigUint64(4));
  const timestamp = Number(v.getBigInt64(12));
  if (kind === 2) return { language, seq, timestamp, codec: 'opus', pcm: null, packet: new Uint8Array(buf, 20) };
  const pcm = new Int16Array(buf.slice(20, 20 + ((buf.byteLength - 20) & ~1)));
  return { language, seq, timestamp, codec: 'pcm', pcm, packet: null };
}

function base64ToBytes(b64) {
  const bin = atob(b64);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bytes.length; i++) bytes[i] = bin.charCodeAt(i);
  return bytes;
}

function base64ToInt16(b64) {
  const bytes = base64ToBytes(b64);
  return new Int16Array(bytes.buffer, 0, bytes.length >> 1);
}

// ---------------------------------------------------------------------------
// Connections

const DEFAULTS = {
  baseUrl: '',
  heartbeatInterval: 25000, // under the server's 30 s, within its rate limit
  backoffInitial: 250,
  backoffMax: 10000,
  tryAgainInitial: 2000, // after 1013: seconds, growing
};

/**
 * The part listeners and speakers share: one live WebSocket at a time,
 * heartbeats, a watchdog for silent connections, reconnection with
 * exponential backoff and jitter, and refresh without loss.
 *
 * Events (listen with on(type, fn); fn gets the event's detail):
 *  - every server message by its type ("sessionJoined", "sessionPaused", …),
 *    and all of them as "message";
 *  - "status": {status, attempt, delay, code, error} whenever the
 *    connection's status changes: "connecting", "open", "reconnecting",
 *    "closed";
 *  - "error": a PentecostError from an `error` message;
 *  - "closed": {code, reason, error} once the client has stopped for good.
 */
class Connection extends EventTarget {
  constructor(options) {
    super();
    this.options = { ...DEFAULTS, ...options };
    this.status = 'idle';
    this.ws = null; // the live socket
    this.pending = null; // a refresh socket waiting for connectionRefreshComplete
    this.attempt = 0;
    this.timers = {};
    this.stopped = false;
    this.lastError = null;
    this.rtt = null; // ms, from heartbeats
    this.serverOffset = 0; // server clock minus ours, ms
    // WebSocket payload received (JSON text counted as its length), for
    // measuring what a codec costs.
    this.received = { bytes: 0, messages: 0 };
    this.onOnline = () => { if (this.status === 'reconnecting') this.reconnectNow(); };
  }

  /** Subscribes fn to an event; returns a function that unsubscribes. */
  on(type, fn) {
    const h = (e) => fn(e.detail);
    this.addEventListener(type, h);
    return () => this.removeEventListener(type, h);
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Opens the connection. Reconnection is automatic until close(). */
  connect() {
    this.stopped = false;
    globalThis.addEventListener?.('online', this.onOnline);
    this.open(false);
  }

  /** Closes for good with 1000; no reconnection. */
  close() {
    this.stop(Close.NORMAL, 'client closed', null);
  }

  /** Sends a JSON message on the live socket; returns false if none is open. */
  send(msg) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.ws.joined) return false;
    this.ws.send(JSON.stringify(msg));
    return true;
  }

  /** Server time now, by our clock corrected with heartbeat round trips. */
  serverNow() {
    return Date.now() + this.serverOffset;
  }

  /**
   * Drops the live socket as if the network had failed, then reconnects
   * and resumes. Used when a socket has gone silent, and by tests.
   */
  dropConnection() {
    if (this.ws) this.lost(this.ws, CLIENT_DROP, 'dropped by client');
  }

  // Subclasses provide url(refresh), protocols() and handle(msg, ws).

  wsBase() {
    const base = this.options.baseUrl || globalThis.location.origin;
    return base.replace(/^http/, 'ws') + '/ws';
  }

  setStatus(status, extra = {}) {
    this.status = status;
    this.emit('status', { status, ...extra });
  }

  open(refresh) {
    const ws = new WebSocket(this.url(refresh), this.protocols());
    ws.binaryType = 'arraybuffer';
    ws.joined = false;
    ws.refresh = refresh;
    ws.lastHeard = Date.now();
    if (refresh) {
      this.pending = ws;
    } else {
      this.ws = ws;
      this.setStatus(this.attempt ? 'reconnecting' : 'connecting', { attempt: this.attempt });
    }
    ws.onmessage = (e) => this.onMessage(ws, e);
    ws.onclose = (e) => this.onClose(ws, e.code, e.reason);
    // onerror is always followed by onclose, which decides what to do.
    ws.onerror = () => {};
  }

  onMessage(ws, e) {
    ws.lastHeard = Date.now();
    this.received.bytes += typeof e.data === 'string' ? e.data.length : e.data.byteLength;
    this.received.messages++;
    if (ws !== this.ws && ws !== this.pending) return;
    if (typeof e.data !== 'string') {
      if (!ws.joined) return; // audio only counts once the join is answered
      this.handleBinary(e.data, ws);
      return;
    }
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (!msg || typeof msg.type !== 'string') return;
    switch (msg.type) {
      case 'heartbeatAck':
        this.onHeartbeatAck(msg);
        break;
      case 'error': {
        const err = new PentecostError(msg.code, msg.message,
          { status: msg.httpStatus, retryAfter: msg.retryAfter || 0, details: msg.details ?? null });
        ws.lastError = err;
        if (ws.joined) this.emit('error', err);
        return; // before a join, the close that follows reports it
      }
      case 'connectionRefreshRequired':
        this.startRefresh();
        break;
    }
    if (!ws.joined && this.isJoinReply(msg)) {
      ws.joined = true;
      // Presented when this socket is refreshed, so that the server counts
      // the new socket in its place (docs/protocol.md, Refresh).
      ws.refreshTicket = typeof msg.refreshTicket === 'string' ? msg.refreshTicket : null;
      if (ws === this.pending) this.completeRefresh(ws);
      this.joined(ws, msg);
    }
    this.handle(msg, ws);
    this.emit('message', msg);
    this.emit(msg.type, msg);
  }

  joined(ws, msg) {
    if (ws !== this.ws) return; // a refresh socket: completeRefresh takes over
    this.attempt = 0;
    this.setStatus('open', { message: msg });
    this.startHeartbeat();
    this.heartbeat();
  }

  startRefresh() {
    if (this.pending || this.stopped) return;
    this.open(true);
  }

  completeRefresh(ws) {
    const old = this.ws;
    this.pending = null;
    this.ws = ws;
    if (old) {
      this.detach(old);
      old.close(Close.NORMAL, 'refreshed');
    }
    this.emit('refreshed', {});
  }

  onClose(ws, code, reason) {
    if (ws === this.pending) {
      // A refresh that failed: keep the live socket; the server will ask again
      // or the connection will be resumed when it drops.
      this.pending = null;
      return;
    }
    if (ws !== this.ws) return;
    this.lost(ws, code, reason);
  }

  detach(ws) {
    ws.onmessage = ws.onclose = null;
    ws.onerror = () => {};
  }

  // lost decides, from the close code, whether to reconnect (docs/protocol.md 5).
  lost(ws, code, reason) {
    this.detach(ws);
    if (ws.readyState === WebSocket.OPEN || ws.readyState === WebSocket.CONNECTING) {
      try { ws.close(CLIENT_DROP, 'dropped'); } catch { /* already closing */ }
    }
    this.ws = null;
    clearInterval(this.timers.heartbeat);
    if (this.stopped) return;
    const err = ws.lastError;
    this.lastError = err || null;
    let delay;
    switch (code) {
      case Close.NORMAL:
      case Close.TOO_BIG:
      case Close.REPLACED:
      case Close.TOKEN_INVALID:
        this.stop(code, reason, err);
        return;
      case Close.POLICY:
        if (err?.code === 'RATE_LIMIT_EXCEEDED') {
          delay = Math.max(1, err.retryAfter || 1) * 1000;
          break;
        }
        this.stop(code, reason, err);
        return;
      case Close.GOING_AWAY:
        delay = Math.random() * this.options.backoffInitial;
        break;
      case Close.TRY_AGAIN:
        delay = Math.min(this.options.tryAgainInitial * 2 ** this.attempt, 30000) * (0.5 + Math.random() / 2);
        break;
      default:
        delay = this.backoff();
    }
    this.attempt++;
    this.setStatus('reconnecting', { attempt: this.attempt, delay, code, error: err });
    clearTimeout(this.timers.reconnect);
    this.timers.reconnect = setTimeout(() => this.open(false), delay);
  }

  backoff() {
    const d = Math.min(this.options.backoffInitial * 2 ** this.attempt, this.options.backoffMax);
    return d / 2 + Math.random() * d / 2;
  }

  reconnectNow() {
    clearTimeout(this.timers.reconnect);
    if (!this.ws && !this.stopped) this.open(false);
  }

  stop(code, reason, error) {
    if (this.stopped) return;
    this.stopped = true;
    globalThis.removeEventListener?.('online', this.onOnline);
    clearTimeout(this.timers.reconnect);
    clearInterval(this.timers.heartbeat);
    for (const ws of [this.ws, this.pending]) {
      if (!ws) continue;
      this.detach(ws);
      if (ws.readyState === WebSocket.OPEN) ws.close(Close.NORMAL, 'bye');
    }
    this.ws = this.pending = null;
    this.setStatus('closed', { code, error });
    this.emit('closed', { code, reason, error });
  }

  startHeartbeat() {
    clearInterval(this.timers.heartbeat);
    const every = this.options.heartbeatInterval;
    this.timers.heartbeat = setInterval(() => {
      const ws = this.ws;
      if (!ws) return;
      // Nothing heard for two heartbeats: the network is gone even if the
      // browser has not noticed. Resume on a new socket.
      if (Date.now() - ws.lastHeard > 2 * every + 5000) {
        this.lost(ws, CLIENT_DROP, 'silent');
        return;
      }
      this.heartbeat();
    }, every);
  }

  heartbeat() {
    this.heartbeatSent = Date.now();
    this.send({ action: 'heartbeat' });
  }

  onHeartbeatAck(msg) {
    if (!this.heartbeatSent || typeof msg.timestamp !== 'number') return;
    const now = Date.now();
    const rtt = now - this.heartbeatSent;
    this.heartbeatSent = 0;
    // Keep the offset from the quickest round trip: it is the most exact.
    if (this.rtt === null || rtt <= this.rtt * 1.5) {
      this.serverOffset = msg.timestamp - (now - rtt / 2);
    }
    this.rtt = rtt;
    this.emit('rtt', { rtt, serverOffset: this.serverOffset });
  }

  handleBinary() {}
}

// Concealment covers lost audio up to this long; a longer hole is not
// filled (the player has run dry by then and starts afresh anyway, and
// filling it would only add delay).
const MAX_CONCEAL_MS = 500;

// durationMs is how long a delivered frame plays.
function durationMs(a) {
  return a.codec === 'opus' ? a.samples48 / 48 : (a.samples / RATE) * 1000;
}

/** An error for a codec this browser cannot encode or decode. */
function noOpus(what) {
  return new PentecostError('OPUS_UNSUPPORTED', `This browser cannot ${what} Opus.`);
}

/**
 * A listener of one session in one language. Audio arrives as "audio"
 * events {seq, timestamp, language, codec, pcm, packet, concealed} in
 * sequence order, each number once, pcm being 16 kHz mono Int16 samples
 * whatever the codec on the wire (Opus is decoded here): after a reconnect
 * or a refresh the client asks for everything after the last frame it
 * delivered, and drops anything it has already delivered. Frames delivered
 * are the page's to play; a page that plays every frame it is given
 * therefore resumes exactly after the last one it will play. A number
 * missing from the stream is delivered too, concealed: as long as the frame
 * before it, made up by the Opus decoder (or a fade from PCM), with
 * concealed true and packet null.
 *
 * Other events: "caption" {text, final, language, sequenceNumber},
 * "gap" (a streamGap: frames were lost), and every server message by type.
 */
export class Listener extends Connection {
  /**
   * @param {object} options sessionId, targetLanguage, and optionally
   *   codec ('auto', the default: Opus when this browser can decode it,
   *   else PCM; 'opus': Opus or nothing; 'pcm'), baseUrl, binary (default
   *   true), heartbeatInterval, backoffInitial, backoffMax.
   */
  constructor(options) {
    super({ binary: true, codec: 'auto', ...options });
    this.sessionId = options.sessionId;
    this.targetLanguage = options.targetLanguage;
    this.sourceLanguage = null;
    this.epoch = null;
    this.lastSeq = null; // last sequence number delivered
    this.broadcastState = null;
    this.codec = null; // the stream joined: 'opus' or 'pcm'
    this.decoder = null; // the Opus decoder, once loaded: kind 'webcodecs' or 'wasm'
    this.decoderError = null;
    this.work = Promise.resolve(); // decoding, one frame after the other
    this.last = null; // the last audio frame of this stream: what a loss after it conceals
    this.captionSeqs = []; // captions' numbers since that frame: not audio lost
    this.concealed = 0;
    this.decodeErrors = 0;
  }

  /** Opens the connection, once an Opus decoder has loaded or failed to. */
  connect() {
    this.stopped = false;
    if (this.options.codec === 'pcm') {
      super.connect();
      return;
    }
    this.loading ??= createOpusDecoder().then((d) => { this.decoder = d; }, (err) => { this.decoderError = err; });
    this.loading.then(() => {
      if (this.stopped || this.ws) return;
      if (!this.decoder && this.options.codec === 'opus') {
        this.stop(CLIENT_DROP, 'no Opus decoder', noOpus('decode'));
        return;
      }
      super.connect();
    });
  }

  url(refresh) {
    const q = new URLSearchParams();
    if (refresh) {
      q.set('action', 'refreshConnection');
      q.set('role', 'listener');
      if (this.ws?.refreshTicket) q.set('refreshTicket', this.ws.refreshTicket);
    }
    q.set('sessionId', this.sessionId);
    q.set('targetLanguage', this.targetLanguage);
    if (this.options.binary) q.set('audioFormat', 'binary');
    if (this.decoder) q.set('codec', 'opus');
    if (this.lastSeq !== null && this.epoch) {
      q.set('lastSequenceNumber', String(this.lastSeq));
      q.set('epoch', this.epoch);
    }
    return this.wsBase() + '?' + q;
  }

  protocols() { return undefined; }

  isJoinReply(msg) {
    return msg.type === 'sessionJoined' || msg.type === 'connectionRefreshComplete';
  }

  /** Switches to another language without reconnecting. */
  changeLanguage(targetLanguage) {
    this.targetLanguage = targetLanguage;
    return this.send({ action: 'changeLanguage', targetLanguage });
  }

  handle(msg) {
    if (msg.broadcastState) this.broadcastState = msg.broadcastState;
    switch (msg.type) {
      case 'sessionJoined':
      case 'connectionRefreshComplete':
        this.sourceLanguage = msg.sourceLanguage ?? this.sourceLanguage;
        if (msg.targetLanguage) this.targetLanguage = msg.targetLanguage;
        // A server from before Opus does not say, and sends PCM.
        if (msg.type === 'sessionJoined' || msg.codec) this.codec = msg.codec === 'opus' ? 'opus' : 'pcm';
        if (msg.epoch !== this.epoch || this.lastSeq === null) {
          // A new stream (or a first join): start from what is live now.
          this.epoch = msg.epoch ?? null;
          this.lastSeq = msg.sequenceNumber ?? 0;
          this.newStream();
        }
        break;
      case 'languageChanged':
        this.targetLanguage = msg.targetLanguage;
        this.epoch = msg.epoch ?? null;
        this.lastSeq = msg.sequenceNumber ?? 0;
        this.newStream();
        break;
      case 'streamGap':
        if (msg.reason === 'epochChanged') this.epoch = msg.epoch;
        this.lastSeq = msg.firstSequenceNumber - 1;
        this.newStream();
        this.emit('gap', msg);
        break;
      case 'audioSkipped':
        // Left out on purpose (too old to hear): nothing to conceal, and
        // nothing to ask for again.
        if (msg.language === this.targetLanguage && this.lastSeq !== null && msg.toSequenceNumber > this.lastSeq) {
          this.lastSeq = msg.toSequenceNumber;
          this.newStream();
        }
        break;
      case 'caption':
        if (typeof msg.sequenceNumber === 'number' && this.lastSeq !== null && msg.sequenceNumber > this.lastSeq) {
          this.captionSeqs.push(msg.sequenceNumber);
        }
        break;
      case 'audioData':
        if (typeof msg.audioData !== 'string') break;
        if (msg.codec === 'opus') {
          this.deliver({ language: msg.language, seq: msg.sequenceNumber, timestamp: msg.timestamp, codec: 'opus', pcm: null, packet: base64ToBytes(msg.audioData) });
        } else {
          this.deliver({ language: msg.language, seq: msg.sequenceNumber, timestamp: msg.timestamp, codec: 'pcm', pcm: base64ToInt16(msg.audioData), packet: null });
        }
        break;
    }
  }

  handleBinary(buf) {
    const f = decodeAudioFrame(buf);
    if (f) this.deliver(f);
  }

  // newStream forgets the audio before: what follows is not its
  // continuation, so a loss cannot be concealed from it and the decoder
  // starts afresh.
  newStream() {
    this.last = null;
    this.captionSeqs = [];
    const d = this.decoder;
    if (d) this.enqueue(() => d.reset());
  }

  // enqueue runs task after the frames before it: decoding is
  // asynchronous, delivery stays in order.
  enqueue(task) {
    this.work = this.work.then(task).catch(() => { this.decodeErrors++; });
  }

  deliver(f) {
    if (f.language !== this.targetLanguage) return; // left over from before a language change
    if (this.lastSeq !== null && f.seq <= this.lastSeq) return; // already delivered
    if (!this.decoder) {
      // PCM as it came (and, for a listener that insisted on Opus without
      // a decoder, nothing: it never joins).
      this.lastSeq = f.seq;
      if (f.codec === 'pcm') this.emit('audio', { ...f, concealed: false });
      return;
    }
    const lost = this.lostBefore(f.seq);
    this.lastSeq = f.seq;
    const before = this.last;
    const parsed = f.codec === 'opus' ? parsePacket(f.packet) : null;
    if (f.codec === 'opus' && !parsed) {
      // Not an Opus packet: as good as lost.
      this.decodeErrors++;
      if (before) this.enqueue(() => this.conceal(f.language, [...lost, f.seq], before));
      return;
    }
    this.last = f.codec === 'opus'
      ? { seq: f.seq, timestamp: f.timestamp, codec: 'opus', toc: parsed.toc, samples48: parsed.samples48 }
      : { seq: f.seq, timestamp: f.timestamp, codec: 'pcm', samples: f.pcm.length, end: f.pcm[f.pcm.length - 1] || 0 };
    const frame = this.last;
    this.enqueue(async () => {
      if (lost.length && before) await this.conceal(f.language, lost, before);
      if (f.codec === 'opus') {
        try {
          f.pcm = await this.decoder.decode(f.packet, parsed.samples48);
        } catch {
          this.decodeErrors++;
          f.pcm = await this.fill(frame);
        }
      }
      this.emitAudio({ ...f, concealed: false });
    });
  }

  // lostBefore lists the numbers between the last audio frame and seq that
  // are neither audio received nor captions: audio lost on the way. Only
  // within a stream that had audio, and no more than MAX_CONCEAL_MS of it.
  lostBefore(seq) {
    const captions = this.captionSeqs;
    this.captionSeqs = captions.filter((s) => s > seq);
    if (!this.last || this.lastSeq === null) return [];
    const n = seq - this.lastSeq - 1;
    if (n <= 0 || n * durationMs(this.last) > MAX_CONCEAL_MS + 1) return [];
    const lost = [];
    for (let s = this.lastSeq + 1; s < seq; s++) if (!captions.includes(s)) lost.push(s);
    return lost;
  }

  // conceal delivers each lost number as audio as long as the frame
  // before.
  async conceal(language, seqs, before) {
    for (let k = 0; k < seqs.length; k++) {
      const pcm = await this.fill(before);
      this.concealed++;
      this.emitAudio({
        language, seq: seqs[k], timestamp: before.timestamp + (k + 1) * durationMs(before),
        codec: before.codec, pcm, packet: null, concealed: true,
      });
    }
  }

  // fill makes up audio as long as frame a: for Opus, the decoder's
  // concealment, asked for with packets of just a TOC byte (code 0, so one
  // frame each: libopus treats a frame without data as lost, docs/opus.md);
  // for PCM, the last sample fading out.
  async fill(a) {
    if (a.codec === 'opus') {
      const toc = a.toc & 0xfc;
      const each = frameSamples48(toc);
      const parts = [];
      try {
        for (let n = 0; n < a.samples48; n += each) parts.push(await this.decoder.decode(Uint8Array.of(toc), each));
        const out = new Int16Array(parts.reduce((n, p) => n + p.length, 0));
        let i = 0;
        for (const p of parts) { out.set(p, i); i += p.length; }
        return out;
      } catch {
        return new Int16Array(Math.round((a.samples48 * RATE) / 48000));
      }
    }
    const out = new Int16Array(a.samples);
    let v = a.end;
    for (let i = 0; i < out.length && v !== 0; i++) {
      v = Math.trunc(v * 0.97);
      out[i] = v;
    }
    return out;
  }

  emitAudio(f) {
    if (f.language !== this.targetLanguage) return; // the language changed while it was decoded
    this.emit('audio', f);
  }
}

/**
 * The speaker of one session. Audio given to sendAudio (16 kHz mono PCM) is
 * sent as binary frames: PCM as given, or encoded to Opus packets of
 * 100 ms. While the connection is down it is kept (up to maxQueue frames)
 * and sent after the reconnect.
 *
 * Events besides the shared ones: "frame" {codec, data} for every audio
 * frame handed to the socket or the queue, data being its bytes.
 */
export class Speaker extends Connection {
  /**
   * @param {object} options sessionId, token, and optionally codec ('auto',
   *   the default: Opus when this browser can encode it, else PCM; 'opus':
   *   Opus or nothing; 'pcm'), bitrate (Opus, default 24000), maxQueue
   *   (default 10 s of audio: 500 PCM frames of 20 ms, 100 Opus packets),
   *   baseUrl, heartbeatInterval, backoffInitial, backoffMax.
   */
  constructor(options) {
    super({ codec: 'auto', bitrate: 24000, ...options });
    this.sessionId = options.sessionId;
    this.token = options.token;
    this.queue = [];
    this.dropped = 0;
    this.sent = 0;
    this.broadcastState = null;
    this.codec = null; // 'opus' or 'pcm' once chosen at connect()
    this.encoderConfig = null;
    this.encoder = null;
    this.encoderFailures = 0;
    this.held = []; // PCM given before the codec was chosen
  }

  /** Opens the connection, once the codec is chosen. */
  connect() {
    this.stopped = false;
    if (this.options.codec === 'pcm') this.codec = 'pcm';
    if (this.codec) {
      super.connect();
      return;
    }
    this.choosing ??= opusEncoderConfig(this.options.bitrate).catch(() => null).then((config) => {
      this.encoderConfig = config;
      this.codec = config ? 'opus' : 'pcm';
    });
    this.choosing.then(() => {
      if (this.stopped || this.ws) return;
      if (this.codec !== 'opus' && this.options.codec === 'opus') {
        this.stop(CLIENT_DROP, 'no Opus encoder', noOpus('encode'));
        return;
      }
      const held = this.held;
      this.held = [];
      for (const pcm of held) this.sendAudio(pcm);
      super.connect();
    });
  }

  url(refresh) {
    const q = new URLSearchParams();
    if (refresh) {
      q.set('action', 'refreshConnection');
      q.set('role', 'speaker');
      if (this.ws?.refreshTicket) q.set('refreshTicket', this.ws.refreshTicket);
    }
    q.set('sessionId', this.sessionId);
    if (this.codec === 'opus') q.set('codec', 'opus');
    return this.wsBase() + '?' + q;
  }

  // The token travels as a subprotocol: browsers cannot set headers, and a
  // query string ends up in logs.
  protocols() { return ['pentecost', 'bearer.' + this.token]; }

  isJoinReply(msg) {
    return msg.type === 'speakerConnected' || msg.type === 'connectionRefreshComplete' || msg.type === 'sessionCreated';
  }

  joined(ws, msg) {
    // A server from before Opus takes every frame for PCM and says no
    // codec: send it PCM.
    if (msg.type === 'speakerConnected' && this.codec === 'opus' && msg.codec !== 'opus') this.usePCM();
    super.joined(ws, msg);
    if (ws === this.ws) this.flush();
  }

  completeRefresh(ws) {
    super.completeRefresh(ws);
    this.flush();
  }

  handle(msg) {
    if (msg.broadcastState) this.broadcastState = msg.broadcastState;
  }

  /**
   * Sends 16 kHz mono 16-bit PCM (an Int16Array, or an ArrayBuffer of its
   * bytes), encoded when the connection is Opus; any length, usually the
   * 20 ms the capture worklet makes.
   */
  sendAudio(chunk) {
    if (this.stopped) return;
    const pcm = chunk instanceof Int16Array ? chunk
      : chunk instanceof ArrayBuffer ? new Int16Array(chunk, 0, chunk.byteLength >> 1)
        : new Int16Array(chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + (chunk.byteLength & ~1)));
    if (this.codec === null) {
      this.held.push(pcm.slice());
      if (this.held.length > 500) this.held.shift();
      return;
    }
    if (this.codec === 'pcm') {
      this.sendFrame(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + pcm.byteLength));
      return;
    }
    if (!this.encoder) {
      try {
        this.encoder = new OpusEncoder(this.encoderConfig, (packet) => this.sendFrame(packet.buffer), () => this.encoderFailed());
      } catch {
        this.encoderFailed();
        return;
      }
    }
    if (!this.encoder.encode(pcm)) this.encoderFailed();
  }

  // encoderFailed makes a new encoder, up to three times; then the
  // speaker goes on in PCM, on a new connection (the server reads each
  // connection's frames in the codec it joined with).
  encoderFailed() {
    this.encoder?.close();
    this.encoder = null;
    if (++this.encoderFailures < 3 || this.codec !== 'opus') return;
    this.usePCM();
    if (this.ws) this.dropConnection();
  }

  usePCM() {
    this.encoder?.close();
    this.encoder = null;
    this.codec = 'pcm';
    this.queue = []; // Opus packets: no use on a PCM connection
  }

  sendFrame(buf) {
    this.emit('frame', { codec: this.codec, data: new Uint8Array(buf) });
    if (this.queue.length === 0 && this.ws && this.ws.joined && this.ws.readyState === WebSocket.OPEN) {
      this.ws.send(buf);
      this.sent++;
      return;
    }
    this.queue.push(buf);
    const max = this.options.maxQueue || (this.codec === 'opus' ? 100 : 500);
    while (this.queue.length > max) {
      this.queue.shift();
      this.dropped++;
    }
  }

  flush() {
    const ws = this.ws;
    while (this.queue.length && ws && ws.joined && ws.readyState === WebSocket.OPEN) {
      ws.send(this.queue.shift());
      this.sent++;
    }
  }

  /** Bytes handed to the socket but not yet sent: a sign of a slow uplink. */
  get bufferedAmount() {
    return this.ws ? this.ws.bufferedAmount : 0;
  }

  pause() { return this.send({ action: 'controlSession', command: 'pause' }); }
  resume() { return this.send({ action: 'controlSession', command: 'resume' }); }
  mute() { return this.send({ action: 'controlSession', command: 'mute' }); }
  unmute() { return this.send({ action: 'controlSession', command: 'unmute' }); }
  setVolume(volumeLevel) { return this.send({ action: 'setVolume', volumeLevel }); }
  requestStatus() { return this.send({ action: 'getSessionStatus' }); }
  /** Ends the session for everyone. The server then closes with 1000. */
  end() { return this.send({ action: 'endSession' }); }
}
