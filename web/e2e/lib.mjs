// Helpers the browser test scripts share: launching Debian's Chromium the
// way a phone meets the pages, waiting for page state, a test signal the
// fake microphone plays, and an analyser tapped on a page's audio output.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SHOTS = process.env.PENTECOST_E2E_SCREENSHOTS || join(process.cwd(), 'screenshots');
export const STEP_TIMEOUT = 20000;
export const RATE = 16000;
export const FRAME = 320; // 20 ms at 16 kHz

export const log = (...a) => console.log(new Date().toISOString().slice(11, 23), ...a);

/** Throws with message unless cond holds. */
export function check(cond, message) {
  if (!cond) throw new Error(message);
}

/**
 * Starts Chromium headless with a phone-sized persistent context. extraArgs
 * are added to the flags this machine needs (no background networking: its
 * closed network refuses those connections).
 */
export async function launch(profileDir, { extraArgs = [], viewport = { width: 360, height: 740 }, ...options } = {}) {
  return chromium.launchPersistentContext(profileDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    deviceScaleFactor: 2,
    hasTouch: true,
    isMobile: true,
    ...options,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // Sound must start from the test's clicks as on a phone; no real
      // output device is needed for the analyser to hear it.
      '--autoplay-policy=no-user-gesture-required',
      ...extraArgs,
    ],
  });
}

/**
 * Opens a page that records console errors and page errors into problems
 * (an array); allow(text) may excuse an expected console error.
 */
export async function openPage(context, name, problems, allow = () => false) {
  const page = await context.newPage();
  page.on('console', (m) => {
    if (m.type() === 'error' && !allow(m.text())) problems.push(`${name} console: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`${name} page error: ${e.message}`));
  return page;
}

/** Waits until fn(arg) is truthy in page, with a readable timeout error. */
export async function waitFor(page, fn, arg, what, timeout = STEP_TIMEOUT) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 100 });
  } catch {
    const state = await page.evaluate(() => JSON.stringify({
      state: window.__PENTECOST_TEST__?.state, url: location.href,
      text: document.querySelector('[data-state]')?.textContent,
    })).catch(() => '?');
    throw new Error(`timed out waiting for ${what} (page: ${state})`);
  }
}

/** Waits until a page's test hooks report state. */
export const waitState = (page, state, who) =>
  waitFor(page, (s) => window.__PENTECOST_TEST__?.state === s, state, `${who} to show "${state}"`);

/** Screenshot of page; background tabs paint slowly, so it comes to the front first. */
export async function shot(page, name, options = {}) {
  await page.bringToFront();
  await page.screenshot({ path: join(SHOTS, name), animations: 'disabled', ...options });
}

/**
 * Writes a WAV of seconds of a steady three-partial tone at amplitude (0..1),
 * 16 kHz mono, for --use-file-for-fake-audio-capture.
 */
export function writeToneWav(path, { seconds = 4, amplitude = 0.4 } = {}) {
  const n = Math.round(seconds * RATE);
  const pcm = new Int16Array(n);
  for (let i = 0; i < n; i++) {
    const t = i / RATE;
    const v = amplitude * (0.5 * Math.sin(2 * Math.PI * 330 * t) + 0.3 * Math.sin(2 * Math.PI * 710 * t) + 0.2 * Math.sin(2 * Math.PI * 1490 * t));
    pcm[i] = Math.round(v * 32767);
  }
  writeWav(path, pcm);
  return pcm;
}

/**
 * Writes seconds of a sine at hz (0..1 amplitude), 16 kHz mono; with a
 * whole number of cycles in the file, Chromium's looping of it has no seam.
 */
export function writeSineWav(path, { hz = 440, seconds = 4, amplitude = 0.4 } = {}) {
  const n = Math.round(seconds * RATE);
  const pcm = new Int16Array(n);
  for (let i = 0; i < n; i++) pcm[i] = Math.round(amplitude * 32767 * Math.sin((2 * Math.PI * hz * i) / RATE));
  writeWav(path, pcm);
  return pcm;
}

/** Writes 16 kHz mono 16-bit PCM samples as a WAV file. */
export function writeWav(path, pcm) {
  const n = pcm.length;
  const header = Buffer.alloc(44);
  header.write('RIFF', 0);
  header.writeUInt32LE(36 + n * 2, 4);
  header.write('WAVE', 8);
  header.write('fmt ', 12);
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(1, 22); // mono
  header.writeUInt32LE(RATE, 24);
  header.writeUInt32LE(RATE * 2, 28);
  header.writeUInt16LE(2, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36);
  header.writeUInt32LE(n * 2, 40);
  writeFileSync(path, Buffer.concat([header, Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength)]));
}

/**
 * An init script for context.addInitScript: every AudioNode connected to an
 * AudioContext's destination is also connected to an AnalyserNode, and
 * window.__PENTECOST_OUTPUT__.rms() returns the RMS (0..1) of the last
 * analyser window summed over every context the page made, and peak() the
 * frequency (Hz) and level (dB) of the strongest bin of their spectra. It
 * measures what the page really plays, whichever playback path it chose.
 */
export function tapAudioOutput() {
  const analysers = [];
  const connect = AudioNode.prototype.connect;
  AudioNode.prototype.connect = function (dest, ...rest) {
    if (dest instanceof AudioDestinationNode) {
      const ctx = dest.context;
      let a = ctx.__pentecostTap;
      if (!a) {
        a = ctx.createAnalyser();
        a.fftSize = 2048;
        ctx.__pentecostTap = a;
        analysers.push(a);
      }
      connect.call(this, a);
    }
    return connect.call(this, dest, ...rest);
  };
  window.__PENTECOST_OUTPUT__ = {
    contexts: () => analysers.length,
    rms() {
      let sum = 0, n = 0;
      for (const a of analysers) {
        const buf = new Float32Array(a.fftSize);
        a.getFloatTimeDomainData(buf);
        for (const v of buf) { sum += v * v; n++; }
      }
      return n ? Math.sqrt(sum / n) : 0;
    },
    peak() {
      let best = { hz: 0, db: -Infinity };
      for (const a of analysers) {
        const bins = new Float32Array(a.frequencyBinCount);
        a.getFloatFrequencyData(bins);
        for (let i = 1; i < bins.length; i++) {
          if (bins[i] > best.db) best = { hz: (i * a.context.sampleRate) / a.fftSize, db: bins[i] };
        }
      }
      return best;
    },
  };
}

/**
 * Samples the page's output RMS (or, with what 'peak', its strongest
 * frequency) every interval ms for duration ms and returns the samples
 * (tapAudioOutput must have been installed).
 */
export function sampleOutput(page, duration = 2000, interval = 50, what = 'rms') {
  return page.evaluate(({ duration, interval, what }) => new Promise((resolve) => {
    const out = [];
    const t = setInterval(() => out.push(window.__PENTECOST_OUTPUT__[what]()), interval);
    setTimeout(() => { clearInterval(t); resolve(out); }, duration);
  }), { duration, interval, what });
}

/**
 * Runs main(work) with a bounded total time, cleans up work, and sets the
 * exit code; every script ends through it.
 */
export async function runScript(main, work, totalMs = Number(process.env.PENTECOST_E2E_TIMEOUT_MS || 240000)) {
  const { rmSync } = await import('node:fs');
  const timer = setTimeout(() => {
    console.error(`e2e: gave up after ${totalMs} ms`);
    process.exit(1);
  }, totalMs);
  const stop = () => { rmSync(work, { recursive: true, force: true }); process.exit(1); };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  try {
    await main(work);
    log(`PASS; screenshots in ${SHOTS}`);
    process.exitCode = 0;
  } catch (err) {
    console.error('FAIL:', err.message);
    process.exitCode = 1;
  } finally {
    clearTimeout(timer);
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Checks the accessibility rules every page keeps: one visible h1, tap
 * targets of at least 44 px, and no aria-label or aria-labelledby on
 * elements whose role forbids naming (span, div, p… without a role).
 */
export async function checkA11y(page, what) {
  const r = await page.evaluate(() => {
    const shown = (el) => el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const h1 = [...document.querySelectorAll('h1')].filter(shown).map((h) => h.textContent.trim());
    const small = [...document.querySelectorAll('main button, main select, main input, main a[href]')]
      .filter(shown)
      // A radio button's target is its whole label.
      .map((el) => ({ el, box: (el.type === 'radio' || el.type === 'checkbox' ? el.closest('label') || el : el).getBoundingClientRect() }))
      .filter(({ el, box }) => (el.type === 'range' ? box.height : Math.min(box.height, box.width)) < 44)
      .map(({ el, box }) => `${el.tagName.toLowerCase()}#${el.id || el.className} ${Math.round(box.width)}×${Math.round(box.height)}`);
    const generic = new Set(['SPAN', 'DIV', 'P', 'B', 'I', 'STRONG', 'EM', 'SMALL', 'CODE', 'PRE']);
    const prohibited = [...document.querySelectorAll('[aria-label], [aria-labelledby]')]
      .filter((el) => generic.has(el.tagName) && !el.getAttribute('role'))
      .map((el) => `${el.tagName.toLowerCase()}#${el.id || el.className}`);
    return { h1, small, prohibited };
  });
  check(r.h1.length === 1, `${what}: ${r.h1.length} visible h1 (${r.h1.join(' | ')}), want one`);
  check(r.small.length === 0, `${what}: tap targets under 44 px: ${r.small.join(', ')}`);
  check(r.prohibited.length === 0, `${what}: aria-label on elements that cannot be named: ${r.prohibited.join(', ')}`);
}

/**
 * Writes Opus packets (Uint8Arrays) to path as the fixtures of
 * web/testdata/opus store them: per packet, its length as uint16
 * little-endian, then its bytes.
 */
export function writePackets(path, packets) {
  const parts = [];
  for (const p of packets) {
    const len = Buffer.alloc(2);
    len.writeUInt16LE(p.length);
    parts.push(len, Buffer.from(p));
  }
  writeFileSync(path, Buffer.concat(parts));
}

/** Reads what writePackets wrote, as an array of Uint8Arrays. */
export function readPackets(path) {
  const b = readFileSync(path);
  const out = [];
  for (let i = 0; i < b.length;) {
    const n = b.readUInt16LE(i);
    check(i + 2 + n <= b.length, `${path}: packet at byte ${i} runs past the end`);
    out.push(new Uint8Array(b.subarray(i + 2, i + 2 + n)));
    i += 2 + n;
  }
  return out;
}

/** Reads the samples of a 16-bit mono WAV file such as writeWav writes. */
export function readWav(path) {
  const b = readFileSync(path);
  check(b.toString('ascii', 0, 4) === 'RIFF' && b.toString('ascii', 36, 40) === 'data', `${path}: not a plain WAV file`);
  return new Int16Array(b.buffer.slice(b.byteOffset + 44, b.byteOffset + 44 + b.readUInt32LE(40)));
}

/**
 * Reads an Opus packet's TOC byte (RFC 6716 section 3.1): configuration
 * number, mode, audio bandwidth, frame duration, stereo flag and frame
 * count code.
 */
export function opusTOC(toc) {
  const config = toc >> 3;
  let mode, bandwidth, frameMs;
  if (config < 12) {
    mode = 'SILK';
    bandwidth = ['NB', 'MB', 'WB'][config >> 2];
    frameMs = [10, 20, 40, 60][config & 3];
  } else if (config < 16) {
    mode = 'hybrid';
    bandwidth = config < 14 ? 'SWB' : 'FB';
    frameMs = [10, 20][config & 1];
  } else {
    mode = 'CELT';
    bandwidth = ['NB', 'WB', 'SWB', 'FB'][(config - 16) >> 2];
    frameMs = [2.5, 5, 10, 20][config & 3];
  }
  return { config, mode, bandwidth, frameMs, stereo: (toc >> 2) & 1, code: toc & 3 };
}
