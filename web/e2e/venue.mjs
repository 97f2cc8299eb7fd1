// Browser test of the listener page in a venue (web/e2e_venue_test.go runs
// it against a real server): a phone on the venue's plain-HTTP address
// plays sound through scheduled buffers (no AudioWorklet outside secure
// contexts), measured by an analyser on the page's output; a listener on
// 127.0.0.1 plays through the AudioWorklet, measured the same way; each
// listener state shows at the event that causes it; the interface is
// translated (Arabic right to left, Chinese). Screenshots at 360×740.
//
//   PENTECOST_URL=http://127.0.0.1:8080 PENTECOST_USERNAME=admin \
//   PENTECOST_PASSWORD=… PENTECOST_WORKER_SECRET=… node web/e2e/venue.mjs

import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  STEP_TIMEOUT, check, checkA11y, launch, log, openPage, runScript, sampleOutput, shot, tapAudioOutput, waitFor, waitState, writeToneWav,
} from './lib.mjs';

const BASE = process.env.PENTECOST_URL;
const USERNAME = process.env.PENTECOST_USERNAME;
const PASSWORD = process.env.PENTECOST_PASSWORD;
const WORKER_SECRET = process.env.PENTECOST_WORKER_SECRET;

if (!BASE || !USERNAME || !PASSWORD || !WORKER_SECRET) {
  console.error('PENTECOST_URL, PENTECOST_USERNAME, PENTECOST_PASSWORD and PENTECOST_WORKER_SECRET are required');
  process.exit(2);
}

// The venue's address: a name that is not localhost, so the page is not a
// secure context, resolved to this server by Chromium.
const VENUE = `http://venue.test:${new URL(BASE).port}`;
const catalogue = (code) => JSON.parse(readFileSync(new URL(`../static/i18n/${code}.json`, import.meta.url), 'utf8'));

const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

async function api(method, path, body, token) {
  const res = await fetch(BASE + path, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: 'Bearer ' + token } : {}) },
    body: body && JSON.stringify(body),
  });
  const data = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(data)}`);
  return data;
}

// listenAndMeasure presses Play and returns the median output RMS over 2 s
// once the page plays.
async function listenAndMeasure(page, who) {
  await page.click('#play');
  await waitFor(page, () => window.__PENTECOST_TEST__.stats?.playing && window.__PENTECOST_TEST__.stats.lastPlayedSeq > 0, null, `${who} to play`);
  const rms = median(await sampleOutput(page, 2000));
  const stats = await page.evaluate(() => window.__PENTECOST_TEST__.stats);
  log(`${who}: player ${await page.evaluate(() => window.__PENTECOST_TEST__.player)}, median output RMS ${rms.toFixed(4)}, ` +
    `buffered ${Math.round(stats.bufferedMs)} ms, underruns ${stats.underruns}`);
  return rms;
}

const stateLogSince = (page, since) =>
  page.evaluate((t) => (window.__PENTECOST_TEST__.stateLog || []).filter((e) => e.at >= t).map((e) => e.state), since);

async function run(work) {
  mkdirSync(join(process.env.PENTECOST_E2E_SCREENSHOTS || 'screenshots'), { recursive: true });
  const wav = join(work, 'tone.wav');
  writeToneWav(wav, { seconds: 4, amplitude: 0.4 });
  const context = await launch(join(work, 'profile'), {
    extraArgs: [
      '--host-resolver-rules=MAP venue.test 127.0.0.1',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
    ],
  });
  const problems = [];
  // Going offline on purpose makes Chromium log the connections it cannot open.
  let offline = false;
  const allow = (text) => offline && /ERR_INTERNET_DISCONNECTED|WebSocket connection/.test(text);
  const open = (name) => openPage(context, name, problems, allow);
  try {
    await context.addInitScript(() => { window.__PENTECOST_TEST__ = {}; });
    await context.addInitScript(tapAudioOutput);

    // The speaker goes live from a secure context (127.0.0.1) with the tone
    // as microphone.
    const speaker = await open('speaker');
    await speaker.goto(BASE + '/speak');
    await speaker.fill('#username', USERNAME);
    await speaker.fill('#password', PASSWORD);
    await speaker.click('#signin');
    await speaker.locator('#create-view').waitFor({ timeout: STEP_TIMEOUT });
    await speaker.selectOption('#source', 'en');
    await speaker.click('#create');
    await speaker.locator('#live-view').waitFor({ timeout: STEP_TIMEOUT });
    const code = (await speaker.locator('#code').textContent()).trim();
    await waitState(speaker, 'ready', 'speaker');
    await speaker.click('#golive');
    await waitState(speaker, 'live', 'speaker');
    log('speaker live with session', code);

    // A phone on the venue's network: plain HTTP, not a secure context.
    const venue = await open('venue listener');
    await venue.goto(`${VENUE}/listen/${code}?lang=en`);
    check(await venue.evaluate(() => window.isSecureContext) === false, 'venue.test is a secure context; the test proves nothing');
    check(await venue.evaluate(() => !('audioWorklet' in BaseAudioContext.prototype)), 'AudioWorklet exists outside a secure context');
    await waitState(venue, 'live', 'venue listener');
    const venueRms = await listenAndMeasure(venue, 'venue listener');
    check(await venue.evaluate(() => window.__PENTECOST_TEST__.player) === 'buffers', 'venue listener does not play through scheduled buffers');
    // No WebCodecs outside a secure context: the speaker page's Opus is
    // decoded by the vendored WebAssembly decoder.
    const venueCodec = await venue.evaluate(() => `${window.__PENTECOST_TEST__.codec} ${window.__PENTECOST_TEST__.decoder}`);
    check(venueCodec === 'opus wasm', `venue listener: codec and decoder ${venueCodec}, want opus wasm`);
    check(venueRms > 0.02, `venue listener: output RMS ${venueRms.toFixed(4)}, want the tone (> 0.02)`);
    check(/^\d+(\.\d)? s$/.test(await venue.locator('#latency').textContent()), 'venue listener shows no delay');
    await shot(venue, 'listener-venue-live.png');
    await checkA11y(venue, 'listener page over plain HTTP');

    // A listener on 127.0.0.1 plays through the AudioWorklet.
    const local = await open('local listener');
    await local.goto(`${BASE}/listen/${code}?lang=en`);
    check(await local.evaluate(() => window.isSecureContext), '127.0.0.1 is not a secure context');
    await waitState(local, 'live', 'local listener');
    const localRms = await listenAndMeasure(local, 'local listener');
    check(await local.evaluate(() => window.__PENTECOST_TEST__.player) === 'worklet', 'local listener does not play through the AudioWorklet');
    const localCodec = await local.evaluate(() => `${window.__PENTECOST_TEST__.codec} ${window.__PENTECOST_TEST__.decoder}`);
    check(localCodec === 'opus webcodecs', `local listener: codec and decoder ${localCodec}, want opus webcodecs`);
    check(localRms > 0.02, `local listener: output RMS ${localRms.toFixed(4)}, want the tone (> 0.02)`);

    // Muted by the speaker: the state says so and the output goes silent.
    await speaker.bringToFront();
    await speaker.click('#mute');
    await waitState(venue, 'muted', 'venue listener');
    await waitState(local, 'muted', 'local listener');
    await waitFor(venue, () => window.__PENTECOST_TEST__.stats && !window.__PENTECOST_TEST__.stats.playing, null, 'the venue player to run dry');
    await waitFor(local, () => window.__PENTECOST_TEST__.stats && !window.__PENTECOST_TEST__.stats.playing, null, 'the local player to run dry');
    const silent = [median(await sampleOutput(venue, 1000)), median(await sampleOutput(local, 1000))];
    log(`muted: median output RMS venue ${silent[0].toFixed(4)}, local ${silent[1].toFixed(4)}`);
    check(silent.every((r) => r < 0.002), `output not silent while muted: ${silent}`);
    await shot(venue, 'listener-muted.png');
    await speaker.bringToFront();
    await speaker.click('#mute');
    await waitState(venue, 'live', 'venue listener after unmute');
    await waitFor(venue, () => window.__PENTECOST_TEST__.stats?.playing, null, 'the venue listener to play again');
    log('mute and unmute reached the listeners; silence measured');

    // The interface in the listener's language: Arabic right to left, Chinese.
    for (const [lang, script] of [['ar', /[\u0600-\u06ff]/], ['zh', /[\u4e00-\u9fff]/]]) {
      const strings = catalogue(lang);
      const p = await open(`${lang} listener`);
      await p.goto(`${VENUE}/listen/${code}?lang=${lang}`);
      await waitFor(p, (l) => window.__PENTECOST_TEST__.uiLanguage === l && window.__PENTECOST_TEST__.state === 'noTranslation', lang, `the ${lang} interface`);
      const seen = await p.evaluate(() => ({
        dir: document.dir, lang: document.documentElement.lang, play: document.getElementById('play').textContent,
        state: document.getElementById('state-text').textContent, session: document.querySelector('h1 [data-i18n]').textContent,
        volume: document.querySelector('label[for="volume"]').textContent, hear: document.getElementById('hear-original').textContent,
      }));
      check(seen.dir === (lang === 'ar' ? 'rtl' : 'ltr'), `${lang}: document.dir is ${seen.dir}`);
      check(seen.lang === lang, `${lang}: <html lang> is ${seen.lang}`);
      check(seen.play === strings['listen.play'] && seen.session === strings['listen.session'] && seen.volume === strings['listen.volume'],
        `${lang}: static strings not translated: ${JSON.stringify(seen)}`);
      check(script.test(seen.state) && script.test(seen.hear), `${lang}: state not in ${lang}: ${JSON.stringify(seen)}`);
      await shot(p, `listener-${lang}.png`);
      await checkA11y(p, `listener page in ${lang}`);
      await p.close();
    }
    log('Arabic (right to left) and Chinese interfaces shown');

    // --- states, on a session of their own --------------------------------
    const { token } = await api('POST', '/auth/login', { username: USERNAME, password: PASSWORD });
    const session = await api('POST', '/sessions', { sourceLanguage: 'en', qualityTier: 'standard' }, token);
    const id = session.sessionId;

    // No speaker yet: connecting, then waiting.
    const w = await open('waiting listener');
    await w.goto(`${VENUE}/listen/${id}?lang=en`);
    await waitState(w, 'waiting', 'a listener before the speaker');
    const first = await w.evaluate(() => window.__PENTECOST_TEST__.stateLog.map((e) => e.state));
    check(first[0] === 'connecting' && first.indexOf('waiting') > 0 && !first.includes('live'),
      `states before the speaker came: ${first}`);
    await shot(w, 'listener-waiting.png');
    await w.click('#play');

    // A stand-in speaker (the client module, run in a helper page) arrives.
    // It sends PCM, 20 ms a frame, so that the counts below are of short
    // frames; its listeners get it on their Opus stream as PCM frames.
    const helper = await open('helper');
    await helper.goto(BASE + '/');
    await helper.evaluate(async ({ id, token }) => {
      const { Speaker } = await import('/static/js/pentecost.js');
      window.__connectSpeaker = () => {
        const s = new Speaker({ sessionId: id, token, codec: 'pcm' });
        window.__spk = s;
        s.connect();
      };
      let n = 0;
      window.__tone = setInterval(() => {
        const pcm = new Int16Array(320);
        for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 440 * (n * 320 + i)) / 16000));
        n++;
        if (window.__spk && !window.__spk.stopped) window.__spk.sendAudio(pcm);
      }, 20);
      window.__connectSpeaker();
    }, { id, token });
    await waitState(w, 'live', 'the waiting listener once the speaker connected');
    log('connecting → waiting → live at the speaker\'s arrival');

    // A stand-in worker produces Spanish in bursts with 3 s pauses.
    await helper.evaluate(({ secret, id }) => new Promise((resolve, reject) => {
      const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws?role=worker', ['pentecost', 'bearer.' + secret]);
      window.__worker = ws;
      ws.onerror = () => reject(new Error('worker socket failed'));
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.type === 'workerConnected' && !window.__claimed) {
          window.__claimed = true;
          ws.send(JSON.stringify({ action: 'claimLanguage', sessionId: id, targetLanguage: 'es' }));
        }
        if (m.type === 'error') reject(new Error('worker: ' + m.code));
        if (m.type === 'languageClaimed') resolve();
      };
      // burst(frames) publishes that many 20 ms frames of a tone, paced.
      window.__burst = (frames) => new Promise((done) => {
        let n = 0;
        const timer = setInterval(() => {
          const pcm = new Int16Array(320);
          for (let i = 0; i < pcm.length; i++) pcm[i] = Math.round(8000 * Math.sin((2 * Math.PI * 500 * (n * 320 + i)) / 16000));
          ws.send(JSON.stringify({ action: 'publishAudio', sessionId: id, targetLanguage: 'es', audioData: btoa(String.fromCharCode(...new Uint8Array(pcm.buffer))) }));
          if (++n === frames) { clearInterval(timer); done(); }
        }, 20);
      });
    }), { secret: WORKER_SECRET, id });

    const es = await open('Spanish listener');
    await es.goto(`${VENUE}/listen/${id}?lang=es`);
    await waitState(es, 'live', 'the Spanish listener');
    // Languages that are live come first.
    await waitFor(es, () => {
      const now = [...document.querySelectorAll('#lang optgroup[data-group="now"] option')].map((o) => o.value);
      const later = [...document.querySelectorAll('#lang optgroup[data-group="later"] option')].map((o) => o.value);
      return now[0] === 'en' && now.includes('es') && later.includes('de') && !later.includes('es');
    }, null, 'the language list to offer English and Spanish first');
    await es.click('#play');
    const quietFrom = Date.now();
    await helper.evaluate(async () => {
      await window.__burst(50);
      await new Promise((r) => setTimeout(r, 3000)); // the pause between sentences under test
      await window.__burst(50);
    });
    await waitFor(es, () => window.__PENTECOST_TEST__.frames.filter((f) => f.language === 'es').length >= 100, null, 'two Spanish bursts');
    const arrivals = await es.evaluate(() => window.__PENTECOST_TEST__.frames.filter((f) => f.language === 'es').map((f) => f.at));
    const longest = Math.max(...arrivals.slice(1).map((t, i) => t - arrivals[i]));
    const during = await stateLogSince(es, quietFrom);
    check(longest >= 2500, `no pause in the Spanish audio (longest gap ${longest} ms)`);
    check(during.every((s) => s === 'live'), `states during a pause in translated audio: ${during}`);
    log(`still live through a ${longest} ms pause in translated audio`);

    // The speaker's socket drops while a listener is behind: speakerAway,
    // and neither the translation's backlog nor the source's replay clears it.
    await w.evaluate(() => {
      const L = window.__PENTECOST_TEST__.listener;
      const openNow = L.open.bind(L);
      window.__hold = true;
      L.open = (refresh) => {
        if (window.__hold && !refresh) { window.__release = () => openNow(refresh); return; }
        openNow(refresh);
      };
      window.__framesAtDrop = window.__PENTECOST_TEST__.frames.length;
      window.__skippedAtDrop = window.__PENTECOST_TEST__.messages?.audioSkipped || 0;
      L.dropConnection();
    });
    // The phone is online; only its socket is gone: "reconnecting", not
    // "waiting for the speaker".
    await waitState(w, 'retrying', 'the listener whose socket dropped, still online');
    const sentAtDrop = await helper.evaluate(() => window.__spk.sent);
    await waitFor(helper, (n) => window.__spk.sent >= n + 25, sentAtDrop, 'the speaker to send while a listener is away');
    await helper.evaluate(() => window.__spk.close());
    await waitState(es, 'speakerAway', 'the Spanish listener after the speaker dropped');
    const awayFrom = Date.now();
    const esFrames = await es.evaluate(() => window.__PENTECOST_TEST__.frames.length);
    await helper.evaluate(() => window.__burst(25)); // the last sentence's translation, late
    await waitFor(es, (n) => window.__PENTECOST_TEST__.frames.length >= n + 25, esFrames, 'the translation backlog');
    await w.evaluate(() => { window.__hold = false; window.__release(); });
    // The replay: what it missed, or, where the steps above took more than
    // 2 s (a loaded machine), the last 2 s of it and an audioSkipped for
    // the rest (docs/protocol.md, section 6).
    await waitFor(w, () => window.__PENTECOST_TEST__.frames.length >= window.__framesAtDrop + 25 ||
      (window.__PENTECOST_TEST__.messages?.audioSkipped || 0) > window.__skippedAtDrop, null, 'the replay of what the listener missed');
    await waitState(w, 'speakerAway', 'the listener back from its own drop');
    for (const [p, who] of [[es, 'Spanish listener'], [w, 'English listener']]) {
      const seen = await stateLogSince(p, awayFrom);
      check(!seen.includes('live') && !seen.includes('waiting'), `${who}: backlog audio changed the state: ${seen}`);
      check(await p.evaluate(() => window.__PENTECOST_TEST__.state) === 'speakerAway', `${who} no longer shows the speaker away`);
    }
    await shot(es, 'listener-speaker-away.png');
    await helper.evaluate(() => window.__connectSpeaker());
    await waitState(es, 'live', 'the Spanish listener after the speaker came back');
    await waitState(w, 'live', 'the English listener after the speaker came back');
    log('speakerAway held through backlog, live again on the speaker\'s return');

    // No translation, with the original offered.
    await w.selectOption('#lang', 'de');
    await waitState(w, 'noTranslation', 'a listener of German');
    check(await w.locator('#hear-original').isVisible(), '"hear the original" is not offered');
    await shot(w, 'listener-venue-no-translation.png');
    await w.click('#hear-original');
    await waitState(w, 'live', 'the listener back on the original');

    // Paused by the speaker.
    await helper.evaluate(() => window.__spk.pause());
    await waitState(w, 'paused', 'the listener of a paused session');
    await helper.evaluate(() => window.__spk.resume());
    await waitState(w, 'live', 'the listener after resume');

    // Offline: the phone lost its network.
    offline = true;
    await context.setOffline(true);
    await waitState(w, 'retrying', 'the listener offline');
    check(await w.locator('#state-detail').textContent() === catalogue('en')['state.offline'], 'offline not explained');
    await shot(w, 'listener-offline.png');
    await context.setOffline(false);
    await waitState(w, 'live', 'the listener back online');
    await waitFor(helper, () => window.__spk.status === 'open', null, 'the stand-in speaker back online');
    offline = false;
    log('offline shown as retrying, then live');

    // The end: Play is disabled.
    await helper.evaluate(() => window.__spk.end());
    await waitState(w, 'ended', 'the listener of an ended session');
    check(await w.locator('#play').isDisabled(), 'Play is enabled after the end');
    // The phone may rest: no wake lock, no audio context, no timers.
    await waitFor(w, () => window.__PENTECOST_TEST__.stopped === true && window.__PENTECOST_TEST__.playing === false, null, 'the ended page to let go of sound and timers');
    await shot(w, 'listener-venue-ended.png');
    log('ended, Play disabled');

    check(problems.length === 0, 'console errors:\n' + problems.join('\n'));
  } finally {
    await context.close().catch(() => {});
  }
}

await runScript(run, mkdtempSync(join(tmpdir(), 'pentecost-venue-')));
