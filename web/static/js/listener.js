// Listener page: joins the session from the URL, plays its audio (through
// an AudioWorklet, or scheduled buffers where the page is not a secure
// context: player.js), shows captions and the session's state, and follows
// the speaker through reconnects. Audio comes as Opus where the browser can
// decode it (WebCodecs, or the vendored WebAssembly decoder on plain HTTP),
// else as PCM; ?codec=pcm or ?codec=opus insists on one. Its strings come
// from the catalogues in /static/i18n/ (i18n.js).

import { Listener, getSession, normalizeSessionId, sessionLanguages } from './pentecost.js';
import { $, languages, preferredLanguage, show, store, testHooks } from './ui.js';
import { createPlayer } from './player.js';
import { setLanguage, t, uiLanguage } from './i18n.js';

const STREAM_RATE = 16000;
const MAX_CAPTIONS = 200;
const LANGUAGES_EVERY_MS = 30000;

const ui = {
  code: $('session-code'), status: $('status'), text: $('state-text'), detail: $('state-detail'),
  play: $('play'), volume: $('volume'), lang: $('lang'), latency: $('latency'), codec: $('codec'),
  noTranslation: $('no-translation'), noTranslationText: $('no-translation-text'), hearOriginal: $('hear-original'),
  captions: $('captions'), captionsEmpty: $('captions-empty'), larger: $('larger'),
};

const state = {
  sessionId: null,
  source: null,
  langs: [], // every language the server knows: [{code, name, nativeName}]
  offered: null, // this session's: [{code, status}], null when unknown
  langSignature: '',
  conn: 'connecting',
  joined: false,
  online: navigator.onLine !== false,
  retryDelay: 0,
  ended: false,
  fatal: null, // {key} or {text}: why the page cannot go on
  broadcast: { isPaused: false, isMuted: false, volume: 1 },
  // The speaker's presence, judged only from the server's events (never
  // from silence: translated audio comes in bursts).
  sawSpeaker: false,
  waiting: false, // no speaker has connected yet
  waitingSince: 0,
  speakerAway: false, // speakerDisconnected, not yet back
  awaySince: 0, // server time of the speakerDisconnected
  noTranslation: false,
  shown: null,
};

let listener = null;
let audio = null; // {ctx, player, gain} once Play was pressed
let playing = false;
let stats = null;
let wakeLock = null;
let languagesTimer = 0;

function langName(code) {
  const l = state.langs.find((x) => x.code === code);
  return l ? l.nativeName : code;
}

// --- state display ----------------------------------------------------------

function currentState() {
  if (state.ended) return ['ended', t('state.ended'), t('state.endedDetail')];
  if (state.fatal) return ['error', state.fatal.text ?? t(state.fatal.key), ''];
  if (!state.online) return ['retrying', t('state.retrying'), t('state.offline')];
  if (state.conn === 'reconnecting') {
    return ['retrying', t('state.retrying'), state.retryDelay > 1500 ? t('state.retryIn', { seconds: Math.round(state.retryDelay / 1000) }) : ''];
  }
  if (!state.joined) return ['connecting', t('state.connecting'), ''];
  if (state.waiting) return ['waiting', t('state.waiting'), t('state.waitingDetail')];
  if (state.speakerAway) return ['speakerAway', t('state.speakerAway'), t('state.speakerAwayDetail')];
  if (state.broadcast.isPaused) return ['paused', t('state.paused'), t('state.pausedDetail')];
  if (state.noTranslation) return ['noTranslation', t('state.noTranslation', { language: langName(listener.targetLanguage) }), ''];
  if (state.broadcast.isMuted) return ['muted', t('state.muted'), ''];
  return ['live', t('state.live'), playing ? '' : t('state.pressPlay')];
}

// stopAll lets the phone rest once the page cannot play any more (ended,
// or a fatal error): no wake lock keeping the screen on, no audio context,
// no timers feeding a player nobody hears.
function stopAll() {
  if (state.stopped) return;
  state.stopped = true;
  playing = false;
  wakeLock?.release().catch(() => {});
  wakeLock = null;
  clearInterval(languagesTimer);
  if (audio) {
    audio.player.close();
    audio.ctx.close().catch(() => {});
    audio = null;
  }
  renderPlayButton();
  if (testHooks) {
    testHooks.playing = false;
    testHooks.stopped = true;
  }
}

function render() {
  if (state.ended || state.fatal) stopAll();
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
    if (testHooks && testHooks.state !== key) {
      testHooks.state = key;
      (testHooks.stateLog ??= []).push({ state: key, at: Date.now() });
    }
  }
  ui.play.disabled = state.ended || !!state.fatal;
  const showNotice = state.noTranslation && !state.ended && state.source && listener?.targetLanguage !== state.source;
  show(ui.noTranslation, !!showNotice);
  if (showNotice) {
    ui.noTranslationText.textContent = t('listen.noTranslationHelp');
    ui.hearOriginal.textContent = t('listen.hearOriginal', { language: langName(state.source) });
  }
  renderLatency();
}

// renderLatency shows mouth-to-ear delay: frame timestamps are when the
// speech was captured (for a translation, the speech it translates), so it
// is the server's clock now less the timestamp of the frame being heard,
// plus what the audio output adds.
function renderLatency() {
  let text = '–';
  if (playing && stats && stats.lastPlayedTs && listener && stats.playing) {
    const out = audio ? (audio.ctx.outputLatency || audio.ctx.baseLatency || 0) * 1000 : 0;
    const s = Math.max(0, listener.serverNow() - stats.lastPlayedTs + out) / 1000;
    const digits = s < 10 ? 1 : 0;
    const n = new Intl.NumberFormat(uiLanguage(), { minimumFractionDigits: digits, maximumFractionDigits: digits }).format(s);
    text = t('listen.delayValue', { seconds: n });
  }
  if (ui.latency.textContent !== text) ui.latency.textContent = text;
  renderCodec();
}

// renderCodec names the audio format next to the delay, for anyone
// diagnosing a phone: "Opus" (decoded by WebCodecs or WebAssembly, in the
// tooltip) or "PCM".
function renderCodec() {
  const codec = listener?.codec;
  const text = codec === 'opus' ? 'Opus' : codec === 'pcm' ? 'PCM' : '';
  if (ui.codec.textContent === text) return;
  ui.codec.textContent = text;
  ui.codec.title = codec === 'opus' ? (listener.decoder?.kind === 'wasm' ? 'Opus, WebAssembly decoder' : 'Opus, WebCodecs decoder') : '';
  if (testHooks) {
    testHooks.codec = codec;
    testHooks.decoder = listener.decoder?.kind || null;
  }
}

function renderPlayButton() {
  ui.play.textContent = t(playing ? 'listen.pause' : 'listen.play');
  ui.play.setAttribute('aria-pressed', String(playing));
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
  // Resume while the tap still counts as one (some browsers forget it
  // across an await).
  const resumed = ctx.resume();
  const player = await createPlayer(ctx, { inputRate: STREAM_RATE }, (s) => {
    stats = s;
    if (testHooks) testHooks.stats = s;
  });
  const gain = ctx.createGain();
  player.node.connect(gain).connect(ctx.destination);
  audio = { ctx, player, gain };
  if (testHooks) testHooks.player = player.kind;
  applyVolume();
  await resumed;
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
      console.warn('sound could not start', err);
      state.fatal = { key: 'error.sound' };
      render();
      return;
    }
    playing = true;
    try { wakeLock = await navigator.wakeLock?.request('screen'); } catch { /* optional */ }
  } else {
    playing = false;
    // Frames keep arriving but are no longer played; Play again starts
    // from what is live then.
    audio?.player.flush();
    audio?.ctx.suspend();
    wakeLock?.release().catch(() => {});
    wakeLock = null;
  }
  renderPlayButton();
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
    p.lang = msg.language || listener?.targetLanguage || '';
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

// --- languages --------------------------------------------------------------

let languagesBusy = false;

async function refreshLanguages() {
  if (languagesBusy || !state.sessionId) return;
  languagesBusy = true;
  try {
    const data = await sessionLanguages(state.sessionId);
    if (Array.isArray(data?.languages)) state.offered = data.languages;
  } catch {
    // Keep the list there is; the next refresh tries again.
  } finally {
    languagesBusy = false;
  }
  fillLanguageList();
}

function optionFor(code, note) {
  const o = document.createElement('option');
  o.value = code;
  const l = state.langs.find((x) => x.code === code);
  let text = l ? l.nativeName : code;
  if (l && l.name !== l.nativeName) text += ' — ' + l.name;
  if (note) text += ' ' + note;
  o.textContent = text;
  o.lang = code;
  return o;
}

// fillLanguageList lists first what the session offers now (its source
// language, then translations being produced or that a worker can
// produce), then every other language, "not available yet".
function fillLanguageList() {
  const selected = listener?.targetLanguage || ui.lang.value;
  const sorted = [...state.langs].sort((a, b) => a.nativeName.localeCompare(b.nativeName));
  let now = [];
  if (state.offered) {
    now = state.offered.map((l) => l.code);
  } else if (state.source) {
    now = [state.source];
  }
  const later = sorted.map((l) => l.code).filter((c) => !now.includes(c));
  const signature = JSON.stringify([now, later, uiLanguage(), !!state.offered]);
  if (signature !== state.langSignature) {
    state.langSignature = signature;
    const original = t('listen.original');
    const nodes = [];
    if (state.offered) {
      const g1 = document.createElement('optgroup');
      g1.label = t('listen.availableNow');
      g1.dataset.group = 'now';
      for (const c of now) g1.append(optionFor(c, c === state.source ? original : ''));
      const g2 = document.createElement('optgroup');
      g2.label = t('listen.notYet');
      g2.dataset.group = 'later';
      for (const c of later) g2.append(optionFor(c));
      nodes.push(g1);
      if (later.length) nodes.push(g2);
    } else {
      // The server does not say what is offered: every language, the
      // original first.
      for (const c of [...now, ...later]) nodes.push(optionFor(c, c === state.source ? original : ''));
    }
    ui.lang.replaceChildren(...nodes);
  }
  if (selected && [...ui.lang.options].some((o) => o.value === selected)) ui.lang.value = selected;
}

async function setInterfaceLanguage(code) {
  await setLanguage([code, ...(navigator.languages || [navigator.language])]);
  if (testHooks) testHooks.uiLanguage = uiLanguage();
  state.shown = null;
  renderPlayButton();
  fillLanguageList();
  render();
}

// --- connection -------------------------------------------------------------

function onSpeakerPresence(msg) {
  if (typeof msg.speakerConnected !== 'boolean') return; // a server that does not say
  if (msg.speakerConnected) {
    state.sawSpeaker = true;
    state.waiting = state.speakerAway = false;
  } else if (state.sawSpeaker) {
    // Back after a drop of our own, to find the speaker gone.
    state.speakerAway = true;
    state.awaySince = Math.max(state.awaySince, msg.timestamp || 0);
  } else {
    state.waiting = true;
    state.waitingSince = msg.timestamp || 0;
  }
}

function connect(targetLanguage) {
  const codec = new URLSearchParams(location.search).get('codec');
  listener = new Listener({ sessionId: state.sessionId, targetLanguage, codec: ['opus', 'pcm'].includes(codec) ? codec : 'auto' });
  if (testHooks) {
    testHooks.listener = listener;
    testHooks.frames = [];
  }
  listener.on('status', (s) => {
    state.conn = s.status;
    if (s.delay !== undefined) state.retryDelay = s.delay;
    // "open" comes with the join's reply, which says whether the speaker
    // is there: render once that has been read.
    if (s.status !== 'open') render();
  });
  const onState = (msg) => {
    if (msg.broadcastState) {
      state.broadcast = msg.broadcastState;
      applyVolume();
    }
    render();
  };
  for (const type of ['sessionPaused', 'sessionResumed', 'broadcastMuted', 'broadcastUnmuted', 'volumeChanged', 'speakerStateChanged']) {
    listener.on(type, onState);
  }
  listener.on('sessionJoined', (msg) => {
    state.joined = true;
    state.source = msg.sourceLanguage || state.source;
    state.noTranslation = false;
    onSpeakerPresence(msg);
    onState(msg);
  });
  listener.on('connectionRefreshComplete', (msg) => {
    onSpeakerPresence(msg);
    onState(msg);
  });
  listener.on('speakerDisconnected', (msg) => {
    state.sawSpeaker = true;
    state.waiting = false;
    state.speakerAway = true;
    state.awaySince = msg.timestamp || listener.serverNow();
    render();
  });
  listener.on('speakerReconnected', () => {
    // Also sent when a speaker connects for the first time.
    state.sawSpeaker = true;
    state.waiting = state.speakerAway = false;
    render();
  });
  const onTranslation = (available) => (msg) => {
    if (msg.targetLanguage === listener.targetLanguage) state.noTranslation = !available;
    render();
    refreshLanguages();
  };
  listener.on('translationUnavailable', onTranslation(false));
  listener.on('translationAvailable', onTranslation(true));
  listener.on('languageChanged', (msg) => {
    state.noTranslation = false;
    ui.lang.value = msg.targetLanguage;
    render();
  });
  listener.on('sessionEnded', () => {
    state.ended = true;
    render();
  });
  listener.on('caption', addCaption);
  listener.on('message', (m) => {
    if (testHooks) (testHooks.messages ??= {})[m.type] = (testHooks.messages[m.type] || 0) + 1;
  });
  listener.on('refreshed', () => { if (testHooks) testHooks.refreshes = (testHooks.refreshes || 0) + 1; });
  listener.on('audio', (f) => {
    if (f.language === state.source) {
      // The speaker's own voice, captured after they left or before they
      // came: they are back. Older audio (a backlog being replayed) is not.
      if (state.speakerAway && f.timestamp > state.awaySince) state.speakerAway = false;
      if (state.waiting && f.timestamp > state.waitingSince) state.waiting = false;
      state.sawSpeaker = true;
    }
    if (testHooks) {
      testHooks.frames.push({
        seq: f.seq, language: f.language, ts: f.timestamp, at: Date.now(), pcm: f.pcm.slice(),
        codec: f.codec, concealed: f.concealed, wire: f.packet ? f.packet.slice() : new Uint8Array(f.pcm.buffer.slice(f.pcm.byteOffset, f.pcm.byteOffset + f.pcm.byteLength)),
      });
    }
    if (playing && audio) audio.player.push(f.pcm, f.seq, f.timestamp);
  });
  listener.on('closed', async ({ code, error }) => {
    if (state.ended) return;
    const closed = { key: 'error.closed' };
    if (code === 1000 || error?.code === 'SESSION_NOT_FOUND' || error?.code === 'SESSION_ENDED') {
      // An ended session is "not found" to a joining listener; ask to tell them apart.
      try {
        const s = await getSession(state.sessionId);
        if (s.status === 'ended') state.ended = true;
        else state.fatal = closed;
      } catch (err) {
        state.fatal = err.code === 'SESSION_NOT_FOUND' ? { key: 'error.noSession' } : closed;
      }
    } else if (error?.code === 'SESSION_FULL') {
      state.fatal = { key: 'error.full' };
    } else if (error?.code === 'UNSUPPORTED_LANGUAGE' || error?.code === 'INVALID_LANGUAGE') {
      state.fatal = { key: 'error.language' };
    } else {
      state.fatal = error?.message ? { text: error.message } : closed;
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
  audio?.player.flush();
  clearCaptions();
  state.noTranslation = false;
  if (!listener.changeLanguage(code)) {
    // Not connected right now: the next connection asks for the new language.
    listener.targetLanguage = code;
  }
  setInterfaceLanguage(code);
  render();
}

// --- start ------------------------------------------------------------------

async function init() {
  const wanted = new URLSearchParams(location.search).get('lang');
  // The interface's language, as best known before the session is: it is
  // settled below once the listener's language is.
  const early = setInterfaceLanguage(wanted || store.get('pentecost.lang', localStorage) || '');
  const raw = decodeURIComponent(location.pathname.replace(/^\/listen\//, ''));
  state.sessionId = normalizeSessionId(raw);
  if (!state.sessionId) {
    ui.code.textContent = raw;
    state.fatal = { key: 'error.badLink' };
    await early;
    render();
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
      state.fatal = { key: 'error.noSession' };
      await early;
      render();
      return;
    }
    // Network trouble: the connection below retries by itself.
  }
  if (session?.status === 'ended') {
    state.ended = true;
    await early;
    render();
    return;
  }
  state.source = session?.sourceLanguage || null;
  if (session?.broadcastState) state.broadcast = session.broadcastState;

  const [langs] = await Promise.all([languages().catch(() => []), refreshLanguages()]);
  state.langs = langs;
  const codes = new Set(state.langs.map((l) => l.code));
  const target = wanted && codes.has(wanted) ? wanted : preferredLanguage(state.langs, state.source || 'en');
  ui.lang.value = target;
  connect(target);
  await early;
  await setInterfaceLanguage(target);
  languagesTimer = setInterval(refreshLanguages, LANGUAGES_EVERY_MS);
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
// A phone that lost its network says so at once; the socket may take a
// while to notice.
addEventListener('offline', () => { state.online = false; render(); });
addEventListener('online', () => { state.online = true; render(); });
setInterval(render, 500);

init();
