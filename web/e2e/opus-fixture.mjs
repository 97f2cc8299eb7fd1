// Writes web/testdata/opus: what Chromium's WebCodecs Opus encoder makes of
// a known 16 kHz mono signal, for the tests of Opus decoders (web/
// opus_fixture_test.go in Go, web/e2e/opus.mjs in the browser). Run by hand
// when the fixture should change (it needs espeak-ng and sox, which
// ./scripts/test installs):
//
//   cd web/e2e && node opus-fixture.mjs
//
// The signal is 3 s: a second of tone bursts following the pseudo-random
// envelope of browser.mjs, half a second of a sweep to 7 kHz, and
// espeak-ng saying "Good morning, everyone." It is encoded as the speaker
// page will encode the microphone (16 kHz input, 20 ms frames, 24 kbit/s,
// application "voip"); a few other settings are encoded too and only
// reported, for docs/opus.md. The same Chromium, espeak-ng and sox give
// the same bytes (sox resamples without dither).

import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FRAME, RATE, check, launch, log, opusTOC, runScript, writePackets, writeWav } from './lib.mjs';

const OUT = join(dirname(fileURLToPath(import.meta.url)), '..', 'testdata', 'opus');
const SECONDS = 3;

// The setting the speaker page is to use; the fixture is its output.
const CHOSEN = { name: 'voip 24k', file: 'voip', bitrate: 24000, opus: { frameDuration: 20000, application: 'voip', signal: 'voice' } };
// Chromium's default application ("audio") switches between SILK and
// CELT on this signal: stored too, so decoders are tried on both modes
// and the switches between them.
const AUDIO = { name: 'default 24k', file: 'audio', bitrate: 24000, opus: { frameDuration: 20000 } };
// Others, reported only.
const OTHERS = [
  { name: 'voip 16k', bitrate: 16000, opus: { frameDuration: 20000, application: 'voip', signal: 'voice' } },
  { name: 'voip 32k', bitrate: 32000, opus: { frameDuration: 20000, application: 'voip', signal: 'voice' } },
  { name: 'lowdelay 24k', bitrate: 24000, opus: { frameDuration: 20000, application: 'lowdelay' } },
];

// levels is browser.mjs's envelope: a fixed pseudo-random pattern of
// silences and bursts of three loudnesses, one per 100 ms.
function levels(n) {
  let x = 0x2f1b; // 16-bit Galois LFSR, fixed seed
  const out = [];
  for (let i = 0; i < n; i++) {
    const bits = [];
    for (let j = 0; j < 3; j++) {
      x = (x >>> 1) ^ (-(x & 1) & 0xb400);
      bits.push(x & 1);
    }
    out.push(bits[0] ? [0.15, 0.3, 0.5, 0.5][bits[1] * 2 + bits[2]] : 0);
  }
  return out;
}

// speech returns espeak-ng's "Good morning, everyone." at 16 kHz, as floats.
function speech(work) {
  const wav = join(work, 'speech.wav');
  const raw = join(work, 'speech.raw');
  execFileSync('espeak-ng', ['-v', 'en-us', '-s', '165', '-w', wav, 'Good morning, everyone.']);
  execFileSync('sox', ['-D', wav, '-r', String(RATE), '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', raw]);
  const b = readFileSync(raw);
  return Array.from(new Int16Array(b.buffer, b.byteOffset, b.length >> 1), (v) => v / 32768);
}

function makeSignal(work) {
  const pcm = new Int16Array(SECONDS * RATE);
  const seg = RATE / 10;
  const lv = levels(10);
  const ramp = Math.round(0.005 * RATE);
  let i = 0;
  // 1 s of tone bursts, with short ramps so that they do not click.
  for (; i < RATE; i++) {
    const s = Math.floor(i / seg), k = i - s * seg;
    const prev = s > 0 ? lv[s - 1] : 0;
    const a = k < ramp ? prev + (lv[s] - prev) * (k / ramp) : lv[s];
    const t = i / RATE;
    pcm[i] = Math.round(32767 * a * (0.5 * Math.sin(2 * Math.PI * 330 * t) + 0.3 * Math.sin(2 * Math.PI * 710 * t) + 0.2 * Math.sin(2 * Math.PI * 1490 * t)));
  }
  // 0.5 s exponential sweep from 200 Hz to 7 kHz.
  const n = RATE / 2, f0 = 200, f1 = 7000, k = Math.log(f1 / f0);
  for (let j = 0; j < n; j++, i++) {
    const t = j / RATE, T = n / RATE;
    const phase = 2 * Math.PI * f0 * T / k * (Math.exp(t / T * k) - 1);
    const a = 0.3 * Math.min(1, j / ramp, (n - j) / ramp);
    pcm[i] = Math.round(32767 * a * Math.sin(phase));
  }
  // The rest: speech.
  const sp = speech(work);
  for (let j = 0; i < pcm.length && j < sp.length; j++, i++) pcm[i] = Math.round(32767 * sp[j]);
  return pcm;
}

// encode runs WebCodecs' AudioEncoder over pcm in 20 ms AudioData frames
// and returns its chunks and the decoder configuration it reported.
function encode(page, pcm, setting) {
  return page.evaluate(async ({ pcm, setting, rate, frame }) => {
    const chunks = [];
    let decoderConfig = null;
    let failure = null;
    const enc = new AudioEncoder({
      output: (chunk, meta) => {
        if (meta?.decoderConfig && !decoderConfig) {
          const d = meta.decoderConfig;
          decoderConfig = { codec: d.codec, sampleRate: d.sampleRate, numberOfChannels: d.numberOfChannels,
            description: d.description ? Array.from(new Uint8Array(d.description instanceof ArrayBuffer ? d.description : d.description.buffer)) : null };
        }
        const data = new Uint8Array(chunk.byteLength);
        chunk.copyTo(data);
        chunks.push({ type: chunk.type, timestamp: chunk.timestamp, duration: chunk.duration, data: Array.from(data) });
      },
      error: (e) => { failure = String(e); },
    });
    const config = { codec: 'opus', sampleRate: rate, numberOfChannels: 1, ...setting };
    delete config.name;
    delete config.file;
    const support = await AudioEncoder.isConfigSupported(config);
    if (!support.supported) return { failure: 'not supported: ' + JSON.stringify(config) };
    enc.configure(config);
    const samples = Int16Array.from(pcm);
    for (let i = 0; i + frame <= samples.length; i += frame) {
      const data = new AudioData({ format: 's16', sampleRate: rate, numberOfFrames: frame, numberOfChannels: 1,
        timestamp: Math.round((i / rate) * 1e6), data: samples.slice(i, i + frame) });
      enc.encode(data);
      data.close();
    }
    await enc.flush();
    enc.close();
    return { failure, chunks, decoderConfig, config: support.config };
  }, { pcm: Array.from(pcm), setting, rate: RATE, frame: FRAME });
}

// summarize reports what the packets are: modes and bandwidths from the
// TOC bytes (RFC 6716 section 3.1), sizes and bit rate.
function summarize(result) {
  const counts = {};
  let bytes = 0;
  for (const c of result.chunks) {
    const toc = opusTOC(c.data[0]);
    const key = `config ${toc.config} (${toc.mode} ${toc.bandwidth} ${toc.frameMs} ms, code ${toc.code}${toc.stereo ? ', stereo' : ''})`;
    counts[key] = (counts[key] || 0) + 1;
    bytes += c.data.length;
  }
  const sizes = result.chunks.map((c) => c.data.length).sort((a, b) => a - b);
  return {
    packets: result.chunks.length,
    bytes,
    kbitps: +((bytes * 8) / (result.chunks.length * 0.02) / 1000).toFixed(1),
    sizes: { min: sizes[0], median: sizes[sizes.length >> 1], max: sizes[sizes.length - 1] },
    tocs: counts,
  };
}

async function run(work) {
  const pcm = makeSignal(work);
  const context = await launch(join(work, 'profile'));
  try {
    const page = await context.newPage();
    // WebCodecs exists only in secure contexts; a routed http://localhost
    // page is one without a server.
    await page.route('http://localhost/**', (r) => r.fulfill({ contentType: 'text/html', body: '<!doctype html><title>opus</title>' }));
    await page.goto('http://localhost/');
    const version = await page.evaluate(async () => (await navigator.userAgentData.getHighEntropyValues(['fullVersionList']))
      .fullVersionList.map((b) => `${b.brand} ${b.version}`).join(', '));

    mkdirSync(OUT, { recursive: true });
    writeWav(join(OUT, 'input.wav'), pcm);
    const fixture = {
      about: 'Chromium WebCodecs AudioEncoder output for input.wav (16 kHz mono), written by web/e2e/opus-fixture.mjs. ' +
        'NAME.bin holds the packets of encodings[NAME]: per packet, its length as uint16 little-endian, then its bytes.',
      browser: version,
      encodings: {},
      others: {},
    };
    for (const setting of [CHOSEN, AUDIO, ...OTHERS]) {
      const r = await encode(page, pcm, setting);
      check(!r.failure, `${setting.name}: ${r.failure}`);
      const summary = summarize(r);
      log(setting.name, JSON.stringify(summary));
      if (!setting.file) {
        fixture.others[setting.name] = summary;
        continue;
      }
      const ts = r.chunks.map((c) => c.timestamp);
      writePackets(join(OUT, setting.file + '.bin'), r.chunks.map((c) => Uint8Array.from(c.data)));
      fixture.encodings[setting.file] = {
        encoderConfig: r.config,
        decoderConfig: { ...r.decoderConfig, description: r.decoderConfig.description ? Buffer.from(r.decoderConfig.description).toString('hex') : null },
        chunkTimestampsMicros: { first: ts[0], step: ts[1] - ts[0], last: ts[ts.length - 1] },
        chunkDurationsMicros: [...new Set(r.chunks.map((c) => c.duration))],
        ...summary,
      };
    }
    writeFileSync(join(OUT, 'fixture.json'), JSON.stringify(fixture, null, 2) + '\n');
    log('fixture written to', OUT);
  } finally {
    await context.close().catch(() => {});
  }
}

await runScript(run, mkdtempSync(join(tmpdir(), 'pentecost-opus-fixture-')));
