// Speaker page: sign in, create a session, show its code and QR code, and
// stream the microphone as 16 kHz PCM frames. The token and the session ID
// live in sessionStorage, so a reload of the page reattaches to the running
// session; the client module handles reconnects and server refreshes.

import { Speaker, createSession, endSession, getSession, login } from './pentecost.js';
import { $, fillLanguages, languages, listenerLink, pageConfig, preferredLanguage, show, store, testHooks } from './ui.js';

const KEY = { token: 'pentecost.token', exp: 'pentecost.tokenExpiresAt', user: 'pentecost.user', session: 'pentecost.session', oidc: 'pentecost.oidcState' };
const STATUS_EVERY_MS = 10000;

const views = ['loading', 'signin-view', 'create-view', 'live-view', 'ended-view'];
let speaker = null;
let mic = null; // {ctx, stream, node}
let langs = [];
let broadcast = { isPaused: false, isMuted: false, volume: 1 };
let statusTimer = 0;
let level = 0;

function view(id) {
  for (const v of views) show($(v), v === id);
}

function fail(el, message) {
  el.textContent = message;
  show(el, true);
}

// --- sign-in ----------------------------------------------------------------

function saveToken(token, expiresAt, user) {
  store.set(KEY.token, token);
  store.set(KEY.exp, String(expiresAt || 0));
  store.set(KEY.user, user || '');
}

function validToken() {
  const token = store.get(KEY.token);
  const exp = Number(store.get(KEY.exp) || 0);
  if (!token || (exp && exp < Date.now() + 60000)) return null;
  return token;
}

function signOut() {
  for (const k of [KEY.token, KEY.exp, KEY.user, KEY.session]) store.remove(k);
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
    const r = await login(username, password);
    saveToken(r.token, r.expiresAt, r.user?.name || username);
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
  $('user-name').textContent = store.get(KEY.user) || 'speaker';
  if (!langs.length) {
    try { langs = await languages(); } catch { langs = []; }
  }
  fillLanguages($('source'), langs, { selected: $('source').value || preferredLanguage(langs) });
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
}

function renderDistribution(msg) {
  if (typeof msg.listenerCount === 'number') $('listener-count').textContent = String(msg.listenerCount);
  if (!msg.languageDistribution) return;
  const list = $('distribution');
  list.replaceChildren();
  const entries = Object.entries(msg.languageDistribution).filter(([, n]) => n > 0).sort((a, b) => b[1] - a[1]);
  for (const [code, n] of entries) {
    const li = document.createElement('li');
    const l = langs.find((x) => x.code === code);
    li.textContent = `${l ? l.nativeName : code}: ${n}`;
    list.append(li);
  }
}

function showLive(session) {
  view('live-view');
  const id = session.sessionId;
  $('code').textContent = id;
  document.title = id + ' — Pentecost';
  $('qr').src = '/qr/' + id + '.svg';
  const link = listenerLink(id);
  $('share-link').href = link;
  $('share-link').textContent = link.replace(/^https?:\/\//, '');
  const host = new URL(link).hostname;
  show($('link-hint'), host === 'localhost' || host.startsWith('127.') || host === '[::1]');
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
  }
  const onState = (msg) => {
    if (msg.broadcastState) broadcast = msg.broadcastState;
    renderState();
  };
  speaker.on('status', renderState);
  speaker.on('message', (m) => {
    if (testHooks) (testHooks.messages ??= {})[m.type] = (testHooks.messages[m.type] || 0) + 1;
  });
  speaker.on('refreshed', () => { if (testHooks) testHooks.refreshes = (testHooks.refreshes || 0) + 1; });
  speaker.on('rtt', renderState);
  speaker.on('speakerConnected', (msg) => { onState(msg); renderDistribution(msg); speaker.requestStatus(); });
  speaker.on('stateRestored', (msg) => { onState(msg); renderDistribution(msg); });
  speaker.on('sessionStatus', (msg) => { onState(msg); renderDistribution(msg); });
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

function ended(text) {
  clearInterval(statusTimer);
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
  if (testHooks) testHooks.sent.push(new Int16Array(pcm));
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
  takeOIDCRedirect();
  requestAnimationFrame(drawMeter);
  if (!validToken()) {
    showSignIn();
    return;
  }
  await afterSignIn();
}

init();
