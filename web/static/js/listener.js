// Listener page: joins the session from the URL, plays its audio through
// an AudioWorklet with a small jitter buffer, shows captions and the
// session's state, and follows the speaker through reconnects.

import { Listener, getSession, normalizeSessionId } from './pentecost.js';
import { $, fillLanguages, languages, preferredLanguage, show, store, testHooks } from './ui.js';

const STREAM_RATE = 16000;
const LIVE_WINDOW_MS = 1500; // audio this recent means the speaker is live
const MAX_CAPTIONS = 200;

const ui = {
  code: $('session-code'), status: $('status'), text: $('state-text'), detail: $('state-detail'),
  play: $('play'), volume: $('volume'), lang: $('lang'), latency: $('latency'),
  noTranslation: $('no-translation'), noTranslationText: $('no-translation-text'), hearOriginal: $('hear-original'),
  captions: $('captions'), captionsEmpty: $('captions-empty'), larger: $('larger'),
};

const state = {
  sessionId: null,
  source: null,
  langs: [],
  conn: 'connecting',
  retryDelay: 0,
  ended: false,
  fatal: null, // message shown when the page cannot go on
  broadcast: { isPaused: false, isMuted: false, volume: 1 },
  speakerAway: false,
  noTranslation: false,
  lastAudioAt: 0,
  shown: null,
};

let listener = null;
let audio = null; // {ctx, node, gain} once Play was pressed
let playing = false;
let stats = null;
let wakeLock = null;

function langName(code) {
  const l = state.langs.find((x) => x.code === code);
  return l ? l.nativeName : code;
}

// --- state display ----------------------------------------------------------

function currentState() {
  if (state.ended) return ['ended', 'The session has ended.', 'Thank you for listening.'];
  if (state.fatal) return ['error', state.fatal, ''];
  if (state.conn === 'reconnecting') {
    return ['retrying', 'Connection lost. Reconnecting…', state.retryDelay > 1500 ? `Next try in ${Math.round(state.retryDelay / 1000)} s.` : ''];
  }
  if (state.conn === 'connecting') return ['connecting', 'Connecting…', ''];
  if (state.broadcast.isPaused) return ['paused', 'Paused by the speaker.', 'It will continue here by itself.'];
  if (state.speakerAway) return ['speakerAway', 'The speaker is reconnecting…', 'Stay here; it will continue by itself.'];
  if (state.noTranslation) return ['noTranslation', `No translation into ${langName(listener.targetLanguage)} yet.`, ''];
  if (state.broadcast.isMuted) return ['muted', 'The speaker has muted the broadcast.', ''];
  if (Date.now() - state.lastAudioAt < LIVE_WINDOW_MS) return ['live', 'Live', playing ? '' : 'Press Play to listen.'];
  return ['waiting', 'Waiting for the speaker…', ''];
}

function render() {
  const [key, text, detail] = currentState();
  const shown = key + '|' + text + '|' + detail;
  if (shown !== state.shown) {
    // Only real changes reach the live region, so screen readers are not
    // interrupted twice a second.
    state.shown = shown;
    ui.text.dataset.state = key;
    ui.status.dataset.state = key;
    ui.text.textContent = text;
    ui.detail.textContent = detail;
    if (testHooks) testHooks.state = key;
  }
  const showNotice = state.noTranslation && !state.ended && state.source && listener?.targetLanguage !== state.source;
  show(ui.noTranslation, !!showNotice);
  if (showNotice) {
    ui.noTranslationText.textContent = 'You can listen to the original while you wait, or pick another language.';
    ui.hearOriginal.textContent = `Hear the original (${langName(state.source)})`;
  }
  renderLatency();
}

function renderLatency() {
  let text = '–';
  if (playing && stats && stats.lastPlayedTs && listener && stats.playing) {
    const out = audio ? (audio.ctx.outputLatency || audio.ctx.baseLatency || 0) * 1000 : 0;
    const ms = Math.max(0, listener.serverNow() - stats.lastPlayedTs + out);
    text = ms < 10000 ? (ms / 1000).toFixed(1) + ' s' : Math.round(ms / 1000) + ' s';
  }
  if (ui.latency.textContent !== text) ui.latency.textContent = text;
}

// --- audio ------------------------------------------------------------------

async function startAudio() {
  if (audio) {
    await audio.ctx.resume();
    return;
  }
  let ctx;
  try {
    // At the stream's rate the browser does the resampling to the device.
    ctx = new AudioContext({ sampleRate: STREAM_RATE, latencyHint: 'interactive' });
  } catch {
    ctx = new AudioContext({ latencyHint: 'interactive' });
  }
  await ctx.audioWorklet.addModule('/static/js/player-worklet.js');
  const node = new AudioWorkletNode(ctx, 'pentecost-player', {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { inputRate: STREAM_RATE, targetMs: 120, catchUpMs: 400 },
  });
  const gain = ctx.createGain();
  node.connect(gain).connect(ctx.destination);
  node.port.onmessage = (e) => {
    stats = e.data;
    if (testHooks) testHooks.stats = stats;
  };
  audio = { ctx, node, gain };
  applyVolume();
  await ctx.resume();
}

function applyVolume() {
  if (!audio) return;
  const broadcast = typeof state.broadcast.volume === 'number' ? state.broadcast.volume : 1;
  audio.gain.gain.setTargetAtTime(Number(ui.volume.value) * broadcast, audio.ctx.currentTime, 0.02);
}

async function togglePlay() {
  if (!playing) {
    try {
      await startAudio();
    } catch (err) {
      state.fatal = 'Sound could not start on this device.';
      render();
      return;
    }
    playing = true;
    try { wakeLock = await navigator.wakeLock?.request('screen'); } catch { /* optional */ }
  } else {
    playing = false;
    // Frames keep arriving (they tell the page the speaker is live) but are
    // no longer played; Play again starts from what is live then.
    audio?.node.port.postMessage({ type: 'flush' });
    audio?.ctx.suspend();
    wakeLock?.release().catch(() => {});
    wakeLock = null;
  }
  ui.play.textContent = playing ? 'Pause' : 'Play';
  ui.play.setAttribute('aria-pressed', String(playing));
  if (testHooks) testHooks.playing = playing;
  render();
}

// --- captions ---------------------------------------------------------------

function addCaption(msg) {
  if (msg.language && listener && msg.language !== listener.targetLanguage) return;
  show(ui.captionsEmpty, false);
  const nearBottom = ui.captions.scrollHeight - ui.captions.scrollTop - ui.captions.clientHeight < 40;
  let interim = ui.captions.querySelector('.interim');
  if (msg.final) {
    interim?.remove();
    const p = document.createElement('p');
    p.textContent = msg.text;
    ui.captions.append(p);
    while (ui.captions.childElementCount > MAX_CAPTIONS) ui.captions.firstElementChild.remove();
  } else {
    if (!interim) {
      interim = document.createElement('p');
      interim.className = 'interim';
      interim.setAttribute('aria-hidden', 'true'); // announced once final
      ui.captions.append(interim);
    }
    interim.textContent = msg.text;
  }
  if (nearBottom) ui.captions.scrollTop = ui.captions.scrollHeight;
}

function clearCaptions() {
  ui.captions.replaceChildren();
  show(ui.captionsEmpty, true);
}

// --- connection -------------------------------------------------------------

function connect(targetLanguage) {
  listener = new Listener({ sessionId: state.sessionId, targetLanguage });
  if (testHooks) {
    testHooks.listener = listener;
    testHooks.frames = [];
  }
  listener.on('status', (s) => {
    state.conn = s.status;
    if (s.delay !== undefined) state.retryDelay = s.delay;
    render();
  });
  const onState = (msg) => {
    if (msg.broadcastState) {
      state.broadcast = msg.broadcastState;
      applyVolume();
    }
    render();
  };
  for (const t of ['sessionPaused', 'sessionResumed', 'broadcastMuted', 'broadcastUnmuted', 'volumeChanged', 'speakerStateChanged']) {
    listener.on(t, onState);
  }
  listener.on('sessionJoined', (msg) => {
    state.source = msg.sourceLanguage;
    state.noTranslation = false;
    onState(msg);
  });
  listener.on('connectionRefreshComplete', onState);
  listener.on('speakerDisconnected', () => { state.speakerAway = true; render(); });
  listener.on('speakerReconnected', () => { state.speakerAway = false; render(); });
  listener.on('translationUnavailable', (msg) => {
    if (msg.targetLanguage === listener.targetLanguage) state.noTranslation = true;
    render();
  });
  listener.on('translationAvailable', (msg) => {
    if (msg.targetLanguage === listener.targetLanguage) state.noTranslation = false;
    render();
  });
  listener.on('languageChanged', (msg) => {
    state.noTranslation = false;
    ui.lang.value = msg.targetLanguage;
    document.documentElement.lang = msg.targetLanguage;
    render();
  });
  listener.on('sessionEnded', () => { state.ended = true; render(); });
  listener.on('caption', addCaption);
  listener.on('message', (m) => {
    if (testHooks) (testHooks.messages ??= {})[m.type] = (testHooks.messages[m.type] || 0) + 1;
  });
  listener.on('refreshed', () => { if (testHooks) testHooks.refreshes = (testHooks.refreshes || 0) + 1; });
  listener.on('audio', (f) => {
    state.lastAudioAt = Date.now();
    state.speakerAway = false;
    if (testHooks) testHooks.frames.push({ seq: f.seq, language: f.language, pcm: f.pcm.slice() });
    if (playing && audio) {
      audio.node.port.postMessage({ type: 'frame', pcm: f.pcm, seq: f.seq, ts: f.timestamp }, [f.pcm.buffer]);
    }
  });
  listener.on('closed', async ({ code, error }) => {
    if (state.ended) return;
    if (code === 1000 || error?.code === 'SESSION_NOT_FOUND' || error?.code === 'SESSION_ENDED') {
      // An ended session is "not found" to a joining listener; ask to tell them apart.
      try {
        const s = await getSession(state.sessionId);
        if (s.status === 'ended') state.ended = true;
        else state.fatal = 'The connection was closed. Reload the page to listen again.';
      } catch (err) {
        state.fatal = err.code === 'SESSION_NOT_FOUND' ? 'No session has this code.' : 'The connection was closed. Reload the page to listen again.';
      }
    } else if (error?.code === 'SESSION_FULL') {
      state.fatal = 'This session is full. Try again later.';
    } else if (error?.code === 'UNSUPPORTED_LANGUAGE' || error?.code === 'INVALID_LANGUAGE') {
      state.fatal = 'That language is not offered here. Pick another one and reload.';
    } else {
      state.fatal = error?.message || 'The connection was closed. Reload the page to listen again.';
    }
    render();
  });
  listener.connect();
}

function changeLanguage(code) {
  if (!listener || code === listener.targetLanguage) return;
  store.set('pentecost.lang', code, localStorage);
  const url = new URL(location.href);
  url.searchParams.set('lang', code);
  history.replaceState(null, '', url);
  audio?.node.port.postMessage({ type: 'flush' });
  clearCaptions();
  state.noTranslation = false;
  if (!listener.changeLanguage(code)) {
    // Not connected right now: the next connection asks for the new language.
    listener.targetLanguage = code;
  }
  render();
}

// --- start ------------------------------------------------------------------

async function init() {
  const raw = decodeURIComponent(location.pathname.replace(/^\/listen\//, ''));
  state.sessionId = normalizeSessionId(raw);
  if (!state.sessionId) {
    ui.code.textContent = raw;
    state.fatal = 'This link does not hold a valid session code.';
    render();
    ui.play.disabled = true;
    return;
  }
  ui.code.textContent = state.sessionId;
  document.title = state.sessionId + ' — Pentecost';

  if (store.get('pentecost.largeCaptions', localStorage) === '1') toggleLarger();

  let session = null;
  try {
    session = await getSession(state.sessionId);
  } catch (err) {
    if (err.code === 'SESSION_NOT_FOUND' || err.code === 'INVALID_SESSION_ID') {
      state.fatal = 'No session has this code. Check it with the speaker.';
      render();
      ui.play.disabled = true;
      return;
    }
    // Network trouble: the connection below retries by itself.
  }
  if (session?.status === 'ended') {
    state.ended = true;
    render();
    ui.play.disabled = true;
    return;
  }
  state.source = session?.sourceLanguage || null;
  if (session?.broadcastState) state.broadcast = session.broadcastState;

  try {
    state.langs = await languages();
  } catch {
    state.langs = [];
  }
  const wanted = new URLSearchParams(location.search).get('lang');
  const codes = new Set(state.langs.map((l) => l.code));
  const target = wanted && codes.has(wanted) ? wanted : preferredLanguage(state.langs, state.source || 'en');
  fillLanguages(ui.lang, state.langs, { selected: target, first: state.source, firstNote: '(original)' });
  document.documentElement.lang = target;
  connect(target);
  render();
}

function toggleLarger() {
  const on = !document.body.classList.contains('large-captions');
  document.body.classList.toggle('large-captions', on);
  ui.larger.setAttribute('aria-pressed', String(on));
  store.set('pentecost.largeCaptions', on ? '1' : '0', localStorage);
}

ui.play.addEventListener('click', togglePlay);
ui.volume.addEventListener('input', applyVolume);
ui.lang.addEventListener('change', () => changeLanguage(ui.lang.value));
ui.hearOriginal.addEventListener('click', () => {
  if (!state.source) return;
  ui.lang.value = state.source;
  changeLanguage(state.source);
});
ui.larger.addEventListener('click', toggleLarger);
setInterval(render, 500);

init();
