// Speaker page: sign in, create a session (or resume one of the speaker's
// running sessions), show its code and QR code, and stream the microphone:
// as Opus packets of 100 ms where the browser can encode them (WebCodecs),
// else as 16 kHz PCM frames. The token and the session ID live in
// sessionStorage, so a reload of the page reattaches to the running
// session; the client module handles reconnects and server refreshes.
// "Show to the room" puts the code, the QR code and the listener counts
// full screen for a projector.

import { Speaker, capabilities, createSession, endSession, getSession, listSessions, sessionLanguages } from './pentecost.js';
import { $, fillLanguages, languages, pageConfig, publicBase, preferredLanguage, show, store, testHooks } from './ui.js';
import { forgetToken, saveToken, signIn, signedInUser, validToken } from './signin.js';

const KEY = { session: 'pentecost.session', oidc: 'pentecost.oidcState', listenerHost: 'pentecost.listenerHost' };
const STATUS_EVERY_MS = 10000;
const LANGUAGES_EVERY_MS = 3000; // at most one GET /sessions/{id}/languages this often

const views = ['loading', 'signin-view', 'create-view', 'live-view', 'room-view', 'ended-view'];
let speaker = null;
let mic = null; // {ctx, stream, node}
let langs = [];
let broadcast = { isPaused: false, isMuted: false, volume: 1 };
let statusTimer = 0;
let level = 0;
// The session shown: its ID and source language, the listeners by
// language, and which languages a worker produces (live) or could
// (available), from sessionStatus and GET /sessions/{id}/languages.
let current = { id: '', source: '', distribution: {}, count: 0, live: new Set(), available: new Set(), statusSaysLive: false, workers: {} };
let languagesTimer = 0;
let languagesAt = 0;

function view(id) {
  for (const v of views) show($(v), v === id);
  if (id !== 'room-view' && document.fullscreenElement) document.exitFullscreen().catch(() => {});
}

function fail(el, message) {
  el.textContent = message;
  show(el, true);
}

// --- sign-in ----------------------------------------------------------------

function signOut() {
  forgetToken();
  store.remove(KEY.session);
  showSignIn();
}

function jwtClaims(token) {
  try {
    const part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part + '='.repeat((4 - (part.length % 4)) % 4)));
  } catch {
    return {};
  }
}

// takeOIDCRedirect reads a token an identity provider put in the URL
// fragment (implicit flow), if its state matches the one we sent.
function takeOIDCRedirect() {
  if (!location.hash.includes('state=')) return;
  const params = new URLSearchParams(location.hash.slice(1));
  history.replaceState(null, '', location.pathname + location.search);
  const expected = store.get(KEY.oidc);
  store.remove(KEY.oidc);
  if (!expected || params.get('state') !== expected.split('|')[0]) return;
  const token = params.get(expected.split('|')[1] || 'id_token');
  if (!token) return;
  const c = jwtClaims(token);
  saveToken(token, (c.exp || 0) * 1000, c['cognito:username'] || c.preferred_username || c.email || c.name || c.sub || '');
}

function showSignIn(message) {
  view('signin-view');
  const links = pageConfig().signInLinks || [];
  const box = $('oidc-links');
  box.replaceChildren();
  for (const l of links) {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'secondary';
    b.textContent = l.name;
    b.addEventListener('click', () => {
      const state = crypto.randomUUID();
      store.set(KEY.oidc, state + '|' + (l.tokenParam || 'id_token'));
      const url = new URL(l.url);
      url.searchParams.set('state', state);
      location.assign(url.toString());
    });
    box.append(b);
  }
  show($('oidc'), links.length > 0);
  if (message) fail($('signin-error'), message);
  $('username').focus();
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('signin-error');
  show(err, false);
  const username = $('username').value.trim();
  const password = $('password').value;
  if (!username || !password) {
    fail(err, 'Enter your account name and password.');
    return;
  }
  $('signin').disabled = true;
  try {
    await signIn(username, password);
    $('password').value = '';
    await afterSignIn();
  } catch (e2) {
    fail(err, e2.code === 'AUTH_INVALID_CREDENTIALS' ? 'Wrong account name or password.'
      : e2.code === 'RATE_LIMIT_EXCEEDED' ? `Too many tries. Wait ${e2.retryAfter || 60} seconds.`
        : e2.message);
  } finally {
    $('signin').disabled = false;
  }
});

// --- creating a session -------------------------------------------------------

async function showCreate() {
  view('create-view');
  $('user-name').textContent = signedInUser() || 'speaker';
  await loadLanguages();
  fillLanguages($('source'), langs, { selected: $('source').value || preferredLanguage(langs) });
  await Promise.all([showTiers(), showYourSessions()]);
}

// showTiers offers only the quality tiers a connected translation worker
// serves (GET /capabilities): standard always, premium when some worker
// offers it. Unknown (the request failed): standard only.
async function showTiers() {
  let tiers = ['standard'];
  try { tiers = (await capabilities()).tiers || tiers; } catch { /* standard only */ }
  const premium = tiers.includes('premium');
  $('tier-premium').hidden = !premium;
  $('tier-hint').hidden = premium;
  if (!premium) document.querySelector('input[name="tier"][value="standard"]').checked = true;
  if (testHooks) testHooks.tiers = tiers;
}

async function loadLanguages() {
  if (!langs.length) {
    try { langs = await languages(); } catch { langs = []; }
  }
}

// --- your sessions: finding a running session again ---------------------------

// showYourSessions lists the speaker's sessions that have not ended, so
// that one whose tab was closed (sessionStorage is per tab) can resume.
async function showYourSessions() {
  const box = $('your-sessions');
  const list = $('session-list');
  const token = validToken();
  if (!token) {
    show(box, false);
    return;
  }
  let sessions = [];
  try {
    const pages = await Promise.all(['active', 'paused'].map((status) => listSessions(token, { status, limit: 20 })));
    sessions = pages.flatMap((p) => p.sessions || [])
      .filter((s) => s.status !== 'ended' && (!s.expiresAt || s.expiresAt > Date.now()))
      .sort((a, b) => (b.createdAt || 0) - (a.createdAt || 0));
    show($('sessions-error'), false);
  } catch (err) {
    if (err.status === 401) {
      showSignIn('Your sign-in has expired. Sign in again.');
      return;
    }
    fail($('sessions-error'), 'Your running sessions could not be listed: ' + err.message);
    show(box, true);
    return;
  }
  list.replaceChildren();
  for (const s of sessions) list.append(sessionItem(s));
  show(box, sessions.length > 0);
  if (testHooks) testHooks.yourSessions = sessions.map((s) => s.sessionId);
}

function sessionItem(s) {
  const li = document.createElement('li');
  li.className = 'session-item';
  const text = document.createElement('div');
  text.className = 'session-text';
  const code = document.createElement('span');
  code.className = 'mono session-code';
  code.textContent = s.sessionId;
  const meta = document.createElement('span');
  meta.className = 'hint';
  const started = s.createdAt ? new Date(s.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '';
  const parts = [languageName(s.sourceLanguage)];
  if (started) parts.push('started ' + started);
  if (s.status === 'paused' || s.broadcastState?.isPaused) parts.push('paused');
  if (typeof s.listenerCount === 'number') parts.push(s.listenerCount === 1 ? '1 listener' : `${s.listenerCount} listeners`);
  meta.textContent = parts.join(' · ');
  text.append(code, meta);
  const b = document.createElement('button');
  b.type = 'button';
  b.className = 'primary resume';
  b.textContent = 'Resume';
  b.setAttribute('aria-label', 'Resume ' + s.sessionId);
  b.dataset.session = s.sessionId;
  b.addEventListener('click', () => resume(s.sessionId, b));
  li.append(text, b);
  return li;
}

// resume reattaches to a running session as a reload of its tab does.
async function resume(id, button) {
  button.disabled = true;
  try {
    const s = await getSession(id);
    if (s.status === 'ended') {
      await showYourSessions();
      return;
    }
    store.set(KEY.session, s.sessionId);
    showLive(s);
    // The tap that pressed Resume lets the microphone start at once.
    startMic().catch(() => renderState());
  } catch (err) {
    fail($('sessions-error'), err.code === 'SESSION_NOT_FOUND' ? 'That session has ended.' : err.message);
    await showYourSessions();
  } finally {
    button.disabled = false;
  }
}

function languageName(code) {
  const l = langs.find((x) => x.code === code);
  return l ? l.nativeName : code || '';
}

$('create-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('create-error');
  show(err, false);
  const token = validToken();
  if (!token) {
    showSignIn('Your sign-in has expired. Sign in again.');
    return;
  }
  $('create').disabled = true;
  try {
    const tier = document.querySelector('input[name="tier"]:checked')?.value || 'standard';
    const s = await createSession(token, { sourceLanguage: $('source').value, qualityTier: tier });
    store.set(KEY.session, s.sessionId);
    showLive(s);
  } catch (e2) {
    if (e2.status === 401) showSignIn('Your sign-in has expired. Sign in again.');
    else fail(err, e2.code === 'RATE_LIMIT_EXCEEDED' ? `Too many sessions. Try again in ${e2.retryAfter || 60} seconds.` : e2.message);
  } finally {
    $('create').disabled = false;
  }
});

// --- the live session ---------------------------------------------------------

function setSpeakerState(key, text, detail = '') {
  const el = $('speaker-state');
  if (el.dataset.state === key && el.textContent === text && $('speaker-detail').textContent === detail) return;
  el.dataset.state = key;
  $('speaker-status').dataset.state = key;
  el.textContent = text;
  $('speaker-detail').textContent = detail;
  if (testHooks) testHooks.state = key;
}

function renderState() {
  if (!speaker) return;
  if (speaker.status === 'reconnecting') {
    setSpeakerState('reconnecting', 'Connection lost. Reconnecting…', 'Your audio is kept and sent when it is back.');
  } else if (speaker.status === 'connecting') {
    setSpeakerState('connecting', 'Connecting…');
  } else if (speaker.status === 'open') {
    if (!mic) setSpeakerState('ready', 'Ready', 'Press Go live to start the microphone.');
    else if (mic.ctx.state !== 'running') setSpeakerState('micBlocked', 'Microphone stopped', 'Press Go live to resume it.');
    else if (broadcast.isPaused) setSpeakerState('paused', 'Paused', 'Listeners hear nothing until you resume.');
    else if (broadcast.isMuted) setSpeakerState('muted', 'Muted', 'Listeners hear nothing until you unmute.');
    else setSpeakerState('live', 'Live', '');
  }
  const live = speaker.status === 'open';
  $('pause').disabled = !live;
  $('mute').disabled = !live;
  $('pause').textContent = broadcast.isPaused ? 'Resume' : 'Pause';
  $('pause').setAttribute('aria-pressed', String(!!broadcast.isPaused));
  $('mute').textContent = broadcast.isMuted ? 'Unmute' : 'Mute';
  $('mute').setAttribute('aria-pressed', String(!!broadcast.isMuted));
  show($('golive'), !mic || mic.ctx.state !== 'running');
  $('health-conn').textContent = { open: 'Connected', connecting: 'Connecting', reconnecting: 'Reconnecting', closed: 'Closed' }[speaker.status] || speaker.status;
  $('health-rtt').textContent = speaker.rtt === null ? '–' : Math.round(speaker.rtt) + ' ms';
  const queued = speaker.queue.length;
  $('health-sent').textContent = `${speaker.sent} frames` + (queued ? `, ${queued} waiting` : '') + (speaker.dropped ? `, ${speaker.dropped} dropped` : '');
  $('health-codec').textContent = speaker.codec === 'opus' ? `Opus, ${Math.round(speaker.options.bitrate / 1000)} kbit/s`
    : speaker.codec === 'pcm' ? 'PCM, 16 kHz' : '–';
  if (testHooks) testHooks.codec = speaker.codec;
}

// Each language with listeners is the source, translated by a worker now,
// or not translated (listeners wait for a language nobody produces): the
// last is what the speaker must notice.
const LANG_STATUS = {
  source: 'original',
  live: 'translated, live',
  available: 'no translation yet',
  none: 'no translation',
};

function languageStatus(code) {
  if (code === current.source) return 'source';
  if (current.live.has(code)) return 'live';
  if (current.available.has(code)) return 'available';
  return 'none';
}

// What a language's worker reports, in words: never the engine's text,
// only its error code, which says what the speaker can do about it.
const STAGE_SERVICE = { recognize: 'speech recognition', translate: 'translation service', synthesize: 'voice service', '': 'translation service' };
const ERROR_WORDS = {
  timeout: (s) => `the ${s} is not answering in time`,
  throttled: (s) => `the ${s} is rate-limiting`,
  unavailable: (s) => `the ${s} is unavailable`,
  refused: (s) => `the ${s} refused the request (check its key or account)`,
  bad_response: (s) => `the ${s} gave an answer that could not be used`,
  unsupported: (s) => `the ${s} does not support this language`,
  internal: () => 'the translation worker hit an internal error',
};

// workerText describes a produced language's last report: failing (and
// why), or by which worker and how far behind the speaker.
function workerText(st) {
  if (!st) return '';
  if (st.errorCode) {
    const words = ERROR_WORDS[st.errorCode] || (() => 'the translation worker reports a problem');
    return 'failing: ' + words(STAGE_SERVICE[st.stage] ?? STAGE_SERVICE['']);
  }
  const parts = [];
  if (st.workerId) parts.push('by ' + st.workerId);
  if (st.latencyMs > 0) parts.push((st.latencyMs / 1000).toFixed(1) + ' s behind');
  return parts.join(' · ');
}

function onStatusMessage(msg) {
  if (msg.languageStatus && typeof msg.languageStatus === 'object') current.workers = msg.languageStatus;
  if (typeof msg.listenerCount === 'number') current.count = msg.listenerCount;
  if (msg.languageDistribution) current.distribution = msg.languageDistribution;
  if (msg.sourceLanguage) current.source = msg.sourceLanguage;
  if (Array.isArray(msg.producedLanguages)) {
    current.live = new Set(msg.producedLanguages);
    current.statusSaysLive = true;
  }
  renderDistribution();
  if (Object.keys(current.distribution).some((c) => current.distribution[c] > 0 && c !== current.source)) refreshLanguages();
}

// refreshLanguages asks which languages are live or available, at most
// every LANGUAGES_EVERY_MS; a request inside that time is made at its end.
function refreshLanguages() {
  if (languagesTimer) return;
  const wait = Math.max(0, languagesAt + LANGUAGES_EVERY_MS - Date.now());
  languagesTimer = setTimeout(async () => {
    const id = current.id;
    languagesAt = Date.now();
    try {
      const r = await sessionLanguages(id);
      if (id !== current.id) return;
      // The socket's producedLanguages is the fresher word on what is
      // live; the endpoint adds what a connected worker could start.
      if (!current.statusSaysLive) current.live = new Set(r.languages.filter((l) => l.status === 'live').map((l) => l.code));
      current.available = new Set(r.languages.filter((l) => l.status === 'available').map((l) => l.code));
      if (r.sourceLanguage) current.source = r.sourceLanguage;
      renderDistribution();
    } catch {
      // Shown again at the next status; the counts stay right meanwhile.
    } finally {
      languagesTimer = 0;
    }
  }, wait);
}

function renderDistribution() {
  $('listener-count').textContent = String(current.count);
  const entries = Object.entries(current.distribution).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const list = $('distribution');
  const room = $('room-languages');
  list.replaceChildren();
  room.replaceChildren();
  for (const [code, n] of entries) {
    const status = languageStatus(code);
    const li = document.createElement('li');
    li.className = 'lang-row';
    li.dataset.lang = code;
    li.dataset.status = status;
    const name = document.createElement('span');
    name.className = 'lang-name';
    name.lang = code;
    name.textContent = languageName(code);
    const count = document.createElement('span');
    count.className = 'lang-count';
    count.textContent = String(n);
    const tag = document.createElement('span');
    tag.className = 'lang-status';
    tag.textContent = LANG_STATUS[status];
    li.append(name, count, tag);
    const st = status === 'live' ? current.workers?.[code] : null;
    if (st) {
      const w = document.createElement('span');
      w.className = 'lang-worker';
      w.dataset.failing = st.errorCode ? 'true' : 'false';
      w.textContent = workerText(st);
      li.append(w);
    }
    list.append(li);

    const r = document.createElement('li');
    r.dataset.lang = code;
    const rn = document.createElement('span');
    rn.lang = code;
    rn.textContent = languageName(code);
    const rc = document.createElement('strong');
    rc.textContent = String(n);
    r.append(rn, ' ', rc);
    room.append(r);
  }
  $('room-count').textContent = String(current.count);
  $('room-count-unit').textContent = current.count === 1 ? 'listener' : 'listening';
  if (testHooks) {
    testHooks.distribution = Object.fromEntries(entries);
    testHooks.languageStatus = Object.fromEntries(entries.map(([c]) => [c, languageStatus(c)]));
    testHooks.workerText = Object.fromEntries(entries.map(([c]) => [c, languageStatus(c) === 'live' ? workerText(current.workers?.[c]) : '']));
  }
}

// --- listener links: which address phones open --------------------------------

// The base URLs the server offers for listener links (this machine's LAN
// addresses when the page is open as localhost), the default first.
const bases = (() => {
  const list = pageConfig().listenerBases;
  return Array.isArray(list) && list.length ? list : [publicBase()];
})();
let baseIndex = 0;

function hostOf(base) {
  try { return new URL(base).host; } catch { return ''; }
}

function isLoopback(base) {
  let h = '';
  try { h = new URL(base).hostname.toLowerCase(); } catch { return false; }
  return h === 'localhost' || h.endsWith('.localhost') || h.startsWith('127.') || h === '[::1]';
}

function setupLinkPicker() {
  const saved = store.get(KEY.listenerHost, localStorage);
  const i = bases.findIndex((b) => hostOf(b) === saved);
  baseIndex = i >= 0 ? i : 0;
  const select = $('link-base');
  select.replaceChildren();
  bases.forEach((b, n) => {
    const o = document.createElement('option');
    o.value = String(n);
    o.textContent = hostOf(b) || b;
    select.append(o);
  });
  select.value = String(baseIndex);
  show($('link-pick'), bases.length > 1);
}

$('link-base').addEventListener('change', () => {
  baseIndex = Number($('link-base').value) || 0;
  store.set(KEY.listenerHost, hostOf(bases[baseIndex]), localStorage);
  renderShare();
});

// renderShare shows the listener link and its QR code for the chosen
// address; the server makes the QR code only of an address it offered.
function renderShare() {
  const id = current.id;
  if (!id) return;
  const base = bases[baseIndex] || bases[0];
  const link = base + '/listen/' + id;
  const qr = '/qr/' + id + '.svg?host=' + encodeURIComponent(hostOf(base));
  $('share-link').href = link;
  $('share-link').textContent = link.replace(/^https?:\/\//, '');
  show($('qr-error'), false);
  $('qr').src = qr;
  $('room-qr').src = qr;
  $('room-link').textContent = link;
  show($('link-hint'), isLoopback(base));
  if (testHooks) testHooks.listenerLink = link;
}

$('qr').addEventListener('error', () => show($('qr-error'), true));

// --- show to the room -------------------------------------------------------

let roomFullscreen = false;

async function openRoom() {
  view('room-view');
  $('room-code').textContent = current.id;
  renderDistribution();
  if (testHooks) testHooks.room = true;
  $('room-close').focus();
  const el = $('room-view');
  if (el.requestFullscreen && document.fullscreenEnabled) {
    try {
      await el.requestFullscreen({ navigationUI: 'hide' });
      roomFullscreen = true;
    } catch {
      // Not allowed here (an embedded frame, a policy): the view still fills the window.
    }
  }
}

function closeRoom() {
  if ($('room-view').hidden) return;
  const wasFull = roomFullscreen;
  roomFullscreen = false;
  if (wasFull && document.fullscreenElement) document.exitFullscreen().catch(() => {});
  if (speaker || current.id) view('live-view');
  if (testHooks) testHooks.room = false;
  $('room-open').focus();
}

$('room-open').addEventListener('click', openRoom);
$('room-close').addEventListener('click', closeRoom);
document.addEventListener('keydown', (e) => {
  if (e.key === 'Escape' && !$('room-view').hidden) closeRoom();
});
// Esc in full screen is taken by the browser, which leaves full screen:
// take the room view down with it.
document.addEventListener('fullscreenchange', () => {
  if (!document.fullscreenElement && roomFullscreen) closeRoom();
});

function showLive(session) {
  view('live-view');
  const id = session.sessionId;
  if (current.id !== id) {
    current = { id, source: session.sourceLanguage || '', distribution: {}, count: 0, live: new Set(), available: new Set(), statusSaysLive: false, workers: {} };
  } else if (session.sourceLanguage) {
    current.source = session.sourceLanguage;
  }
  if (typeof session.listenerCount === 'number') current.count = session.listenerCount;
  $('code').textContent = id;
  $('room-code').textContent = id;
  // CSSOM, which the policy allows (unlike style attributes): the room
  // view sizes the code to fit one line.
  $('room-code').style.setProperty('--chars', String(id.length));
  document.title = id + ' — Pentecost';
  renderShare();
  renderDistribution();
  if (!langs.length) loadLanguages().then(renderDistribution);
  if (session.broadcastState) broadcast = session.broadcastState;
  $('volume').value = String(broadcast.volume ?? 1);
  attach(id);
}

function attach(sessionId) {
  const old = speaker;
  speaker = null;
  old?.close();
  const token = validToken();
  if (!token) {
    showSignIn('Your sign-in has expired. Sign in again to continue your session.');
    return;
  }
  const s = new Speaker({ sessionId, token });
  speaker = s;
  if (testHooks) {
    testHooks.speaker = speaker;
    testHooks.sent ??= [];
    // What went on the wire (or into the queue for it): PCM frames or Opus packets.
    speaker.on('frame', (f) => testHooks.sent.push(f.data));
  }
  const onState = (msg) => {
    if (msg.broadcastState) broadcast = msg.broadcastState;
    renderState();
  };
  speaker.on('status', renderState);
  speaker.on('message', (m) => {
    if (testHooks) (testHooks.messages ??= {})[m.type] = (testHooks.messages[m.type] || 0) + 1;
  });
  // A new connection checks the microphone afresh: its warnings start over.
  speaker.on('refreshed', () => { clearAudioWarnings(); if (testHooks) testHooks.refreshes = (testHooks.refreshes || 0) + 1; });
  speaker.on('rtt', renderState);
  speaker.on('speakerConnected', (msg) => { clearAudioWarnings(); onState(msg); onStatusMessage(msg); speaker.requestStatus(); });
  speaker.on('audioWarning', (msg) => setAudioWarning(msg.warning, msg.value));
  speaker.on('audioWarningCleared', (msg) => setAudioWarning(msg.warning, null));
  speaker.on('stateRestored', (msg) => { onState(msg); onStatusMessage(msg); });
  speaker.on('sessionStatus', (msg) => { onState(msg); onStatusMessage(msg); });
  for (const t of ['sessionPaused', 'sessionResumed', 'broadcastMuted', 'broadcastUnmuted', 'volumeChanged']) speaker.on(t, onState);
  speaker.on('sessionEnded', () => ended('Listeners have been told. Thank you.'));
  speaker.on('error', (err) => setSpeakerState('error', 'The server refused that.', err.message));
  speaker.on('closed', ({ code, error }) => {
    if (s !== speaker) return; // one this page closed itself
    if (code === 1000 || error?.code === 'SESSION_NOT_FOUND' || error?.code === 'SESSION_ENDED') {
      ended('This session has ended.');
    } else if (code === 4003) {
      stopMic();
      setSpeakerState('replaced', 'Taken over', 'This session is now running in another window or device.');
    } else if (error?.code === 'AUTH_REQUIRED' || error?.code === 'AUTH_INVALID_TOKEN') {
      stopMic();
      showSignIn('Your sign-in has expired. Sign in again to continue your session.');
    } else if (error?.code === 'FORBIDDEN') {
      store.remove(KEY.session);
      stopMic();
      showCreate();
    } else {
      setSpeakerState('error', 'Disconnected.', error?.message || 'Reload the page to reconnect.');
    }
  });
  speaker.connect();
  clearInterval(statusTimer);
  statusTimer = setInterval(() => { speaker?.requestStatus(); renderState(); }, STATUS_EVERY_MS);
  renderState();
}

// --- microphone checks (the server's audioWarning) ----------------------------

// Calm words: what the speaker hears about, and what to do.
const AUDIO_WARNING_TEXT = {
  clipping: () => 'Your microphone is too loud and the sound distorts. Move it a little away or turn its input level down.',
  silence: (v) => `No sound from your microphone for ${Math.round(v) || 'several'} seconds. Check that it is switched on and not muted.`,
  lowLevel: () => 'Your voice comes through very quietly. Move closer to the microphone or turn its input level up.',
};
const audioWarnings = new Map(); // warning → value

function setAudioWarning(warning, value) {
  if (!AUDIO_WARNING_TEXT[warning]) return; // one this page does not know
  if (value === null) audioWarnings.delete(warning);
  else audioWarnings.set(warning, value);
  renderAudioWarnings();
}

function clearAudioWarnings() {
  audioWarnings.clear();
  renderAudioWarnings();
}

function renderAudioWarnings() {
  const list = $('audio-warnings');
  list.replaceChildren(...[...audioWarnings].map(([w, v]) => {
    const li = document.createElement('li');
    li.className = 'audio-warning';
    li.dataset.warning = w;
    li.textContent = AUDIO_WARNING_TEXT[w](v);
    return li;
  }));
  if (testHooks) testHooks.audioWarnings = Object.fromEntries(audioWarnings);
}

function ended(text) {
  clearInterval(statusTimer);
  if (!$('room-view').hidden) closeRoom();
  current.id = '';
  stopMic();
  store.remove(KEY.session);
  const s = speaker;
  speaker = null;
  s?.close();
  $('ended-text').textContent = text;
  if (testHooks) testHooks.state = 'ended';
  view('ended-view');
}

// --- microphone -------------------------------------------------------------

async function startMic() {
  if (mic) {
    await mic.ctx.resume();
    renderState();
    return;
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    // Raw sound: the processing meant for calls pumps levels and cuts
    // quiet words, which translation and listeners hear as artefacts.
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const ctx = new AudioContext({ latencyHint: 'interactive' });
  await ctx.audioWorklet.addModule('/static/js/capture-worklet.js');
  const source = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'pentecost-capture', { numberOfOutputs: 1, outputChannelCount: [1] });
  // Connected to the output through a silent gain so browsers keep pulling it.
  const sink = ctx.createGain();
  sink.gain.value = 0;
  source.connect(node).connect(sink).connect(ctx.destination);
  node.port.onmessage = (e) => onFrame(e.data);
  ctx.onstatechange = renderState;
  mic = { ctx, stream, node };
  await ctx.resume();
  renderState();
}

function onFrame({ pcm, rms }) {
  level = Math.max(rms, level * 0.85);
  if (!speaker || broadcast.isPaused || broadcast.isMuted) return;
  speaker.sendAudio(pcm);
}

function stopMic() {
  if (!mic) return;
  for (const t of mic.stream.getTracks()) t.stop();
  mic.ctx.close().catch(() => {});
  mic = null;
  level = 0;
}

function drawMeter() {
  const db = level > 0 ? 20 * Math.log10(level) : -100;
  const pct = Math.max(0, Math.min(100, ((db + 60) / 60) * 100));
  $('meter-fill').style.width = pct.toFixed(1) + '%';
  $('meter-fill').classList.toggle('hot', db > -3);
  level *= 0.9;
  requestAnimationFrame(drawMeter);
}

setInterval(() => {
  const m = $('meter');
  const v = String(Math.round(Math.max(0, Math.min(100, ((20 * Math.log10(level || 1e-5) + 60) / 60) * 100))));
  if (m.getAttribute('aria-valuenow') !== v) m.setAttribute('aria-valuenow', v);
}, 1000);

$('golive').addEventListener('click', async () => {
  $('golive').disabled = true;
  try {
    await startMic();
  } catch (err) {
    setSpeakerState('micError', 'The microphone could not start.',
      !window.isSecureContext ? 'Browsers allow the microphone only on HTTPS pages or on localhost.'
        : err?.name === 'NotAllowedError' ? 'Allow microphone access for this site and try again.'
          : 'Check that a microphone is connected.');
  } finally {
    $('golive').disabled = false;
  }
});

$('pause').addEventListener('click', () => (broadcast.isPaused ? speaker?.resume() : speaker?.pause()));
$('mute').addEventListener('click', () => (broadcast.isMuted ? speaker?.unmute() : speaker?.mute()));
$('volume').addEventListener('change', () => speaker?.setVolume(Number($('volume').value)));

$('copy-link').addEventListener('click', async () => {
  const link = $('share-link').href;
  try {
    await navigator.clipboard.writeText(link);
  } catch {
    // Without clipboard access (plain HTTP on a LAN): select it for the user.
    const range = document.createRange();
    range.selectNodeContents($('share-link'));
    getSelection().removeAllRanges();
    getSelection().addRange(range);
    $('copy-done').textContent = 'Selected: copy it with your device’s copy command.';
    return;
  }
  $('copy-done').textContent = 'Copied.';
  setTimeout(() => { $('copy-done').textContent = ''; }, 3000);
});

$('end').addEventListener('click', () => $('end-dialog').showModal());
$('end-dialog').addEventListener('close', async () => {
  if ($('end-dialog').returnValue !== 'end') return;
  const id = store.get(KEY.session);
  if (speaker && speaker.end()) return; // sessionEnded follows
  try {
    const token = validToken();
    if (token && id) await endSession(token, id);
    ended('Listeners have been told. Thank you.');
  } catch (err) {
    if (err.code === 'SESSION_ENDED' || err.code === 'SESSION_NOT_FOUND') ended('This session has ended.');
    else setSpeakerState('error', 'The session could not be ended.', err.message);
  }
});

$('new-session').addEventListener('click', () => showCreate());
$('signout').addEventListener('click', signOut);

// --- start ------------------------------------------------------------------

async function afterSignIn() {
  const id = store.get(KEY.session);
  if (id) {
    try {
      const s = await getSession(id);
      if (s.status !== 'ended') {
        showLive(s);
        // After a reload the microphone may start again without a tap if
        // the browser allows it; otherwise Go live is shown.
        startMic().catch(() => renderState());
        return;
      }
    } catch (err) {
      if (err.code === 'NETWORK_ERROR') {
        showLive({ sessionId: id });
        return;
      }
    }
    store.remove(KEY.session);
  }
  await showCreate();
}

async function init() {
  setupLinkPicker();
  takeOIDCRedirect();
  requestAnimationFrame(drawMeter);
  if (!validToken()) {
    showSignIn();
    return;
  }
  await afterSignIn();
}

init();
