// Browser test of Opus from the speaker page to listener pages
// (web/e2e_opus_session_test.go runs it against a real server, with wire
// clients of its own in the same session, and creates the session):
//
//   - the speaker page resumes the session with a sine as its fake
//     microphone, encodes it with WebCodecs and sends 100 ms Opus packets;
//   - a listener page on 127.0.0.1 decodes them with WebCodecs, one at
//     http://venue.test:PORT (not a secure context, so no WebCodecs) with
//     the vendored WebAssembly decoder on a 360 px screen, and one asks for
//     PCM with ?codec=pcm; each page's output analyser hears the tone at
//     its frequency and level, and the pages count what they receive;
//   - packets dropped on the way into the two Opus pages are concealed:
//     every lost number is played, as long as the packet before, carrying
//     the sound on from it, and the output does not fall silent;
//   - a speaker page without WebCodecs' encoder takes over and sends PCM,
//     which the Opus pages get on their stream and play.
//
// Writes the bandwidth it measured to $PENTECOST_E2E_RESULT.
//
//   PENTECOST_URL=http://127.0.0.1:8080 PENTECOST_USERNAME=admin PENTECOST_PASSWORD=… \
//   PENTECOST_SESSION=golden-eagle-427 node web/e2e/opus-session.mjs

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  SHOTS, STEP_TIMEOUT, check, launch, log, openPage, opusTOC, runScript, sampleOutput, shot, tapAudioOutput, waitFor, waitState, writeSineWav,
} from './lib.mjs';

const BASE = process.env.PENTECOST_URL;
const USERNAME = process.env.PENTECOST_USERNAME;
const PASSWORD = process.env.PENTECOST_PASSWORD;
const SESSION = process.env.PENTECOST_SESSION;
const RESULT = process.env.PENTECOST_E2E_RESULT;
const TONE_HZ = Number(process.env.PENTECOST_TONE_HZ || 440);
const TONE_AMPLITUDE = Number(process.env.PENTECOST_TONE_AMPLITUDE || 0.4);
const MEASURE_SECONDS = 10; // of audio, for the bandwidth
const DROPS = 6; // packets dropped per Opus listener
const DROP_EVERY = 4; // one Opus packet in this many, until DROPS are gone

if (!BASE || !USERNAME || !PASSWORD || !SESSION) {
  console.error('PENTECOST_URL, PENTECOST_USERNAME, PENTECOST_PASSWORD and PENTECOST_SESSION are required');
  process.exit(2);
}

// The venue's address: a name that is not localhost, so the page is not a
// secure context, resolved to this server by Chromium.
const VENUE = `http://venue.test:${new URL(BASE).port}`;
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];
const dB = (ratio) => 20 * Math.log10(ratio);
const f1 = (v) => v.toFixed(1);

// The listener pages, and what each must use.
const LISTENERS = [
  { name: 'local', url: `${BASE}/listen/${SESSION}?lang=en`, codec: 'opus', decoder: 'webcodecs', player: 'worklet', secure: true },
  { name: 'venue', url: `${VENUE}/listen/${SESSION}?lang=en`, codec: 'opus', decoder: 'wasm', player: 'buffers', secure: false },
  { name: 'pcm', url: `${BASE}/listen/${SESSION}?lang=en&codec=pcm`, codec: 'pcm', decoder: null, player: 'worklet', secure: true },
];

// received is what a listener page has counted: WebSocket payload bytes,
// audio frames and the seconds of audio they carry.
const received = (page) => page.evaluate(() => {
  const T = window.__PENTECOST_TEST__;
  return {
    bytes: T.listener.received.bytes, at: performance.now(), frames: T.frames.length,
    audio: T.frames.reduce((s, f) => s + f.pcm.length, 0) / 16000,
  };
});

// frameLevels returns, for the frames from index from on, their number,
// codec, whether concealed, sample count, RMS (0..1), and the RMS of each
// 20 ms.
const frameLevels = (page, from = 0) => page.evaluate((from) => window.__PENTECOST_TEST__.frames.slice(from).map((f) => {
  const rms = (a) => Math.sqrt(a.reduce((s, v) => s + v * v, 0) / Math.max(1, a.length)) / 32768;
  const parts = [];
  for (let i = 0; i + 320 <= f.pcm.length; i += 320) parts.push(rms(f.pcm.subarray(i, i + 320)));
  return { seq: f.seq, codec: f.codec, concealed: f.concealed, n: f.pcm.length, rms: rms(f.pcm), parts };
}), from);

// loseAndListen drops DROPS Opus packets (one in DROP_EVERY) on their way
// into the page's client, and samples the output's RMS every 50 ms from
// before the first loss until the frame after the last lost one has been
// heard; then the same length of lossless playback, for comparison.
function loseAndListen(page, { drops, every }) {
  return page.evaluate(async ({ drops, every }) => {
    const T = window.__PENTECOST_TEST__;
    const L = T.listener;
    const span = (until) => new Promise((resolve) => {
      const rms = [];
      const underruns = T.stats.underruns;
      const started = performance.now();
      const timer = setInterval(() => {
        rms.push(window.__PENTECOST_OUTPUT__.rms());
        if (until(performance.now() - started)) {
          clearInterval(timer);
          resolve({ rms, underruns: T.stats.underruns - underruns, ms: performance.now() - started });
        }
      }, 50);
    });
    const dropped = [];
    let n = 0;
    L.handleBinary = function (buf, ws) {
      const v = new DataView(buf);
      if (v.getUint8(1) === 2 && dropped.length < drops && ++n % every === 0) {
        dropped.push(Number(v.getBigUint64(4)));
        return;
      }
      Object.getPrototypeOf(this).handleBinary.call(this, buf, ws);
    };
    const lossy = await span(() => dropped.length === drops && T.stats.lastPlayedSeq > dropped[drops - 1] + 1);
    delete L.handleBinary;
    const lossless = await span((ms) => ms >= lossy.ms);
    return { dropped, lossy, lossless };
  }, { drops, every });
}

async function run(work) {
  mkdirSync(SHOTS, { recursive: true });
  const wav = join(work, 'tone.wav');
  writeSineWav(wav, { hz: TONE_HZ, seconds: 4, amplitude: TONE_AMPLITUDE });
  const context = await launch(join(work, 'profile'), {
    extraArgs: [
      '--host-resolver-rules=MAP venue.test 127.0.0.1',
      '--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-audio-capture=${wav}`,
    ],
  });
  const problems = [];
  const open = (name) => openPage(context, name, problems);
  const result = { bandwidth: [] };
  try {
    await context.addInitScript(() => { window.__PENTECOST_TEST__ = {}; });
    await context.addInitScript(tapAudioOutput);

    // The speaker resumes the session the test made, and goes live.
    const speaker = await open('speaker');
    await speaker.goto(BASE + '/speak');
    await speaker.fill('#username', USERNAME);
    await speaker.fill('#password', PASSWORD);
    await speaker.click('#signin');
    const resume = speaker.locator(`#session-list button[data-session="${SESSION}"]`);
    await resume.waitFor({ timeout: 3 * STEP_TIMEOUT });
    await resume.click();
    await speaker.locator('#live-view').waitFor({ timeout: STEP_TIMEOUT });
    await waitState(speaker, 'live', 'speaker');
    await waitFor(speaker, () => window.__PENTECOST_TEST__.codec === 'opus', null, 'the speaker page to send Opus');
    const format = await speaker.locator('#health-codec').textContent();
    check(/^Opus, 24 kbit\/s$/.test(format), `the speaker page shows the format as "${format}"`);
    await waitFor(speaker, () => window.__PENTECOST_TEST__.sent.length >= 10, null, 'ten packets from the speaker');
    const sent = await speaker.evaluate(() => window.__PENTECOST_TEST__.sent.slice(0, 10).map((p) => Array.from(p)));
    for (const p of sent) {
      const toc = opusTOC(p[0]);
      check(toc.mode === 'SILK' && toc.bandwidth === 'WB' && toc.frameMs === 20 && toc.code === 3 && (p[1] & 0x3f) === 5,
        `the speaker sent a packet of ${p.length} bytes starting ${p.slice(0, 2)}: want five 20 ms SILK WB frames in one code-3 packet (${JSON.stringify(toc)})`);
    }
    log(`speaker live with ${SESSION}, sending Opus: ${format}; packets of ${sent.map((p) => p.length).join(', ')} bytes (100 ms each)`);
    await shot(speaker, 'speaker-opus.png', { fullPage: true });

    // Listeners: each decodes with what its page offers, and plays the tone.
    const pages = {};
    for (const want of LISTENERS) {
      const who = `${want.name} listener`;
      const page = await open(who);
      await page.goto(want.url);
      await waitState(page, 'live', who);
      await waitFor(page, () => !!window.__PENTECOST_TEST__.codec, null, `${who} to show its codec`);
      const seen = await page.evaluate(() => ({
        codec: window.__PENTECOST_TEST__.codec, decoder: window.__PENTECOST_TEST__.decoder,
        shown: document.getElementById('codec').textContent, secure: window.isSecureContext,
        webCodecs: typeof AudioDecoder === 'function', width: window.innerWidth,
      }));
      check(seen.codec === want.codec && seen.decoder === want.decoder,
        `${who}: codec ${seen.codec}, decoder ${seen.decoder}; want ${want.codec}, ${want.decoder}`);
      check(seen.shown === (want.codec === 'opus' ? 'Opus' : 'PCM'), `${who} shows the codec as "${seen.shown}"`);
      check(seen.secure === want.secure && seen.webCodecs === want.secure, `${who}: secure context ${seen.secure}, WebCodecs ${seen.webCodecs}`);
      check(seen.width === 360, `${who}: the screen is ${seen.width} px wide, want a phone's 360`);
      await page.click('#play');
      await waitFor(page, () => window.__PENTECOST_TEST__.stats?.playing && window.__PENTECOST_TEST__.stats.lastPlayedSeq > 0, null, `${who} to play`);
      check(await page.evaluate(() => window.__PENTECOST_TEST__.player) === want.player, `${who} does not play through ${want.player}`);
      // In front, as a phone shows it: a background tab's timers run once
      // a second, and the scheduled-buffer player runs on them.
      await page.bringToFront();
      const rms = median(await sampleOutput(page, 2000));
      const hz = median((await sampleOutput(page, 2000, 50, 'peak')).map((p) => p.hz));
      const level = dB(rms / (TONE_AMPLITUDE / Math.SQRT2));
      const frames = await frameLevels(page);
      const codecs = [...new Set(frames.map((f) => f.codec))];
      log(`${who}: ${want.codec}${want.decoder ? ` (${want.decoder})` : ''}, player ${want.player}; ${frames.length} frames of ${[...new Set(frames.map((f) => f.n))].join('/')} samples; ` +
        `output: strongest at ${f1(hz)} Hz, median RMS ${rms.toFixed(3)} (${f1(level)} dB of the input's)`);
      check(codecs.length === 1 && codecs[0] === want.codec, `${who} received frames of ${codecs.join(', ')}, want ${want.codec} only`);
      check(!frames.some((f) => f.concealed), `${who} concealed frames before any were lost`);
      // The analyser's bins are 8 Hz wide at 16 kHz (23 at 48 kHz).
      check(Math.abs(hz - TONE_HZ) <= 25, `${who}: the output is strongest at ${f1(hz)} Hz, want the tone's ${TONE_HZ}`);
      check(level > -6 && level < 3, `${who}: the output is at ${f1(level)} dB of the input's level, want within -6..+3 dB`);
      if (want.name === 'venue') {
        await shot(page, 'listener-opus-venue.png');
      }
      pages[want.name] = page;
    }

    // The client module with JSON audio (binary: false): Opus arrives as
    // base64 audioData with "codec":"opus", and is decoded the same.
    const json = await pages.local.evaluate(async ({ id, rate }) => {
      const { Listener } = await import('/static/js/pentecost.js');
      const L = new Listener({ sessionId: id, targetLanguage: 'en', binary: false });
      const frames = [];
      let text = 0;
      const done = new Promise((resolve) => {
        L.on('audio', (f) => {
          let s = 0;
          for (const v of f.pcm) s += v * v;
          frames.push({ codec: f.codec, n: f.pcm.length, rms: Math.sqrt(s / f.pcm.length) / 32768, packet: !!f.packet });
          if (frames.length === 20) resolve();
        });
      });
      L.on('message', (m) => { if (m.type === 'audioData' && m.codec === 'opus') text++; });
      L.connect();
      await done;
      L.close();
      return { codec: L.codec, decoder: L.decoder?.kind, frames, text, rate };
    }, { id: SESSION, rate: 16000 });
    const jsonLevel = dB(median(json.frames.slice(5).map((f) => f.rms)) / (TONE_AMPLITUDE / Math.SQRT2));
    log(`client module with JSON audio: codec ${json.codec} (${json.decoder}), ${json.text} audioData messages with codec opus, frames of ${[...new Set(json.frames.map((f) => f.n))]} samples at ${f1(jsonLevel)} dB of the input's level`);
    check(json.codec === 'opus' && json.text >= 20 && json.frames.every((f) => f.codec === 'opus' && f.packet && f.n === 1600),
      `client module with JSON audio: ${JSON.stringify({ ...json, frames: json.frames.slice(0, 3) })}`);
    check(Math.abs(jsonLevel) < 6, `client module with JSON audio: decoded at ${f1(jsonLevel)} dB of the input's level`);

    // What each costs: WebSocket payload over MEASURE_SECONDS of audio.
    const before = {};
    for (const want of LISTENERS) before[want.name] = await received(pages[want.name]);
    for (const want of LISTENERS) {
      await waitFor(pages[want.name], ({ audio, seconds }) => window.__PENTECOST_TEST__.frames.reduce((s, f) => s + f.pcm.length, 0) / 16000 >= audio + seconds,
        { audio: before[want.name].audio, seconds: MEASURE_SECONDS }, `${want.name} listener to receive ${MEASURE_SECONDS} s of audio`, 60000);
    }
    for (const want of LISTENERS) {
      const a = before[want.name];
      const b = await received(pages[want.name]);
      const bits = (b.bytes - a.bytes) * 8;
      const delay = await pages[want.name].locator('#latency').textContent();
      const row = {
        name: want.name, codec: want.codec, decoder: want.decoder || '',
        kbps: bits / (b.at - a.at), kbpsAudio: bits / 1000 / (b.audio - a.audio), seconds: (b.at - a.at) / 1000,
        delaySecond: Number.parseFloat(delay) || 0,
      };
      result.bandwidth.push(row);
      log(`${want.name} listener: ${f1(row.kbps)} kbit/s of WebSocket payload (${f1(row.kbpsAudio)} per second of audio) over ${f1(row.seconds)} s, ${b.frames - a.frames} frames; delay shown ${delay}`);
    }
    const kbps = Object.fromEntries(result.bandwidth.map((r) => [r.name, r.kbpsAudio]));
    check(kbps.local < 32 && kbps.venue < 32, `Opus listeners receive ${f1(kbps.local)} and ${f1(kbps.venue)} kbit/s per second of audio, want under 32`);
    check(kbps.pcm > 5 * kbps.local, `the PCM listener receives ${f1(kbps.pcm)} kbit/s per second of audio, not five times the Opus listener's ${f1(kbps.local)}`);

    // Loss: every lost packet is played, concealed, and playback goes on.
    for (const name of ['local', 'venue']) {
      const page = pages[name];
      const who = `${name} listener`;
      const from = await page.evaluate(() => window.__PENTECOST_TEST__.frames.length);
      await page.bringToFront();
      const r = await loseAndListen(page, { drops: DROPS, every: DROP_EVERY });
      const frames = (await frameLevels(page, from)).filter((f) => f.seq <= r.dropped[DROPS - 1] + 2);
      const normal = median(frames.filter((f) => !f.concealed).map((f) => f.rms));
      const concealed = frames.filter((f) => f.concealed);
      // How each concealed frame continues the one before it: its first
      // 20 ms against that frame's last 20 ms, both above a floor of
      // -60 dBFS (after a silence, concealment is rightly silent too).
      const onset = (f) => {
        const prev = frames[frames.indexOf(f) - 1];
        return { ratio: (f.parts[0] + 1e-3) / (prev.parts[prev.parts.length - 1] + 1e-3) };
      };
      log(`${who}: dropped ${r.dropped.join(', ')}; concealed ${concealed.map((f) => `${f.seq} (${f1(dB(f.rms / normal))} dB, ` +
        `by 20 ms ${f.parts.map((v) => f1(dB(v / normal))).join('/')}; its first 20 ms at ${f1(dB(onset(f).ratio))} dB of the last before)`).join(', ')}`);
      check(concealed.length === DROPS && concealed.every((f, i) => f.seq === r.dropped[i] && f.codec === 'opus'),
        `${who}: concealed ${concealed.map((f) => f.seq)}, want the dropped ${r.dropped}`);
      for (let i = 1; i < frames.length; i++) {
        check(frames[i].seq === frames[i - 1].seq + 1, `${who}: numbers jump from ${frames[i - 1].seq} to ${frames[i].seq} across the losses`);
      }
      check(concealed.every((f) => f.n === 1600), `${who}: concealed frames of ${concealed.map((f) => f.n)} samples, want 1600 (100 ms) each`);
      // libopus carries the sound on into the loss and fades it (a lost
      // 100 ms mostly comes out at -2 to -6 dB for its first 20 ms, at
      // times near -19, then fades to near silence); concealment must not
      // start from silence (30 dB down, as below).
      check(concealed.every((f) => onset(f).ratio > 1 / 32),
        `${who}: a concealed frame starts more than 30 dB under the frame before it: ${concealed.map((f) => f1(dB(onset(f).ratio)))} dB`);
      const lossy = median(r.lossy.rms);
      const lossless = median(r.lossless.rms);
      // Silence: 30 dB under the tone. Concealment fades (see above) but
      // fills the time; a player that ran dry at each loss would be silent
      // for a tenth of a second or more each time, in several of the
      // analyser's 128 ms windows.
      const silent = (list) => list.filter((v) => v < lossless / 32).length / list.length;
      log(`${who}: output while losing: median RMS ${lossy.toFixed(3)}, ${(100 * silent(r.lossy.rms)).toFixed(0)} % of samples silent, ${r.lossy.underruns} underruns in ${f1(r.lossy.ms / 1000)} s; ` +
        `lossless after: median ${lossless.toFixed(3)}, ${(100 * silent(r.lossless.rms)).toFixed(0)} % silent, ${r.lossless.underruns} underruns`);
      check(lossy > lossless / 2, `${who}: output while losing packets at median RMS ${lossy.toFixed(3)}, under half the ${lossless.toFixed(3)} without loss`);
      // The machine's own hiccups (a starved CPU) count against both spans alike.
      check(silent(r.lossy.rms) <= silent(r.lossless.rms) + 0.1,
        `${who}: the output fell silent while packets were lost (${(100 * silent(r.lossy.rms)).toFixed(0)} % of samples silent, ${(100 * silent(r.lossless.rms)).toFixed(0)} % without loss)`);
    }

    // A browser without WebCodecs' encoder takes the session over: it
    // sends PCM as before Opus, which reaches the Opus listeners as PCM
    // frames on their stream, and they play those from the next frame on.
    const marks = {};
    for (const want of LISTENERS) marks[want.name] = await pages[want.name].evaluate(() => window.__PENTECOST_TEST__.frames.length);
    const plain = await open('speaker without an encoder');
    await plain.addInitScript(() => { delete window.AudioEncoder; });
    await plain.goto(BASE + '/speak');
    await plain.fill('#username', USERNAME);
    await plain.fill('#password', PASSWORD);
    await plain.click('#signin');
    const again = plain.locator(`#session-list button[data-session="${SESSION}"]`);
    await again.waitFor({ timeout: 3 * STEP_TIMEOUT }).catch(async (err) => {
      throw new Error(`${err.message.split('\n')[0]}; the page shows: ${(await plain.locator('main').innerText()).slice(0, 300)}`);
    });
    await again.click();
    await waitState(plain, 'live', 'the speaker without an encoder');
    await waitFor(plain, () => window.__PENTECOST_TEST__.codec === 'pcm', null, 'the speaker page without an encoder to send PCM');
    const plainFormat = await plain.locator('#health-codec').textContent();
    check(plainFormat === 'PCM, 16 kHz', `the speaker page without an encoder shows the format as "${plainFormat}"`);
    await waitState(speaker, 'replaced', 'the first speaker page');
    for (const want of LISTENERS) {
      const who = `${want.name} listener`;
      const page = pages[want.name];
      await waitFor(page, (k) => window.__PENTECOST_TEST__.frames.slice(k).filter((f) => f.codec === 'pcm').length >= 100, marks[want.name], `${who} to receive 2 s of the PCM speaker`);
      await page.bringToFront();
      const rms = median(await sampleOutput(page, 1500));
      const hz = median((await sampleOutput(page, 1500, 50, 'peak')).map((p) => p.hz));
      const sizes = [...new Set((await frameLevels(page, marks[want.name])).filter((f) => f.codec === 'pcm').map((f) => f.n))];
      log(`${who}, PCM speaker: PCM frames of ${sizes.join('/')} samples; output strongest at ${f1(hz)} Hz, median RMS ${rms.toFixed(3)} (${f1(dB(rms / (TONE_AMPLITUDE / Math.SQRT2)))} dB)`);
      check(Math.abs(hz - TONE_HZ) <= 25 && Math.abs(dB(rms / (TONE_AMPLITUDE / Math.SQRT2))) < 6,
        `${who} does not play the PCM speaker's tone: ${f1(hz)} Hz, RMS ${rms.toFixed(3)}`);
      check(await page.evaluate(() => window.__PENTECOST_TEST__.codec) === want.codec, `${who} changed stream`);
    }

    // The end reaches every page (and the test's wire clients).
    await plain.bringToFront();
    await plain.click('#end');
    await plain.click('#confirm-end');
    await plain.locator('#ended-view').waitFor({ timeout: STEP_TIMEOUT });
    for (const want of LISTENERS) await waitState(pages[want.name], 'ended', `${want.name} listener`);
    log('session ended');

    if (RESULT) writeFileSync(RESULT, JSON.stringify(result));
    check(problems.length === 0, 'console errors:\n' + problems.join('\n'));
  } finally {
    await context.close().catch(() => {});
  }
}

await runScript(run, mkdtempSync(join(tmpdir(), 'pentecost-opus-session-')));
