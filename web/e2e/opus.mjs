// Browser test of the two Opus decoders a listener page can use, on the
// fixture of Chromium's own encoder output (web/testdata/opus):
// WebCodecs' AudioDecoder, and the WebAssembly decoder vendored in
// web/static/vendor/opus-decoder, loaded from the server under the pages'
// Content-Security-Policy in a page where WebCodecs is hidden, as on a
// browser without it. web/e2e_test.go (TestBrowserOpus) starts the
// server, decodes the fixture with github.com/pion/opus and runs this
// script, which checks that:
//
//   - each decoder gives 20 ms per packet, and its output follows the
//     input's loudness envelope at the input's level;
//   - pion/opus decodes the same samples as the browsers' libopus (on the
//     tone bursts and the speech; the sweep is only reported: see
//     docs/opus.md);
//   - with every 10th packet lost and concealed as a listener page is to
//     conceal it (a packet of just the last TOC byte, which makes libopus
//     conceal exactly one frame), the output keeps its length, the lost
//     frames are filled at about the right level, and the speech still
//     follows the input;
//   - the pages' repacketizer (static/js/opus.js) joins the 20 ms packets
//     into valid 100 ms code-3 packets of one configuration each, which
//     both decoders decode to exactly the samples of the packets joined.
//
// docs/opus.md reports the numbers this prints.

import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, launch, log, openPage, readPackets, readWav, runScript } from './lib.mjs';

const BASE = process.env.PENTECOST_URL;
const FIXTURE = process.env.PENTECOST_OPUS_FIXTURE;
const PION = process.env.PENTECOST_OPUS_PION;
const VENDORED = '/static/vendor/opus-decoder/opus-decoder.min.js';
const ENCODINGS = ['voip', 'audio'];
const LOST_EVERY = 10;
// The fixture's parts, in 20 ms frames (opus-fixture.mjs).
const PARTS = { tones: [0, 50], sweep: [50, 75], speech: [75, 150] };

if (!BASE || !FIXTURE || !PION) {
  console.error('PENTECOST_URL, PENTECOST_OPUS_FIXTURE and PENTECOST_OPUS_PION are required');
  process.exit(2);
}

// --- measures -----------------------------------------------------------------

// envelope returns the RMS of each 20 ms frame of samples at rate, from
// sample start on, in 16-bit units.
function envelope(samples, rate, start = 0) {
  const frame = rate / 50;
  const scale = samples instanceof Int16Array ? 1 : 32768;
  const out = [];
  for (let i = Math.round(start); i + frame <= samples.length; i += frame) {
    let s = 0;
    for (let j = i; j < i + frame; j++) s += samples[j] * samples[j];
    out.push(scale * Math.sqrt(s / frame));
  }
  return out;
}

function pearson(a, b) {
  const n = Math.min(a.length, b.length);
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) { ma += a[i]; mb += b[i]; }
  ma /= n; mb /= n;
  let num = 0, da = 0, db = 0;
  for (let i = 0; i < n; i++) {
    num += (a[i] - ma) * (b[i] - mb);
    da += (a[i] - ma) ** 2;
    db += (b[i] - mb) ** 2;
  }
  return num / Math.sqrt(da * db || 1);
}

// delayOf finds the codec's delay, 0..30 ms in 1 ms steps, as the one at
// which the output's envelope best follows the input's.
function delayOf(out, rate, input) {
  const want = envelope(input, 16000);
  let best = { correlation: -1, ms: 0 };
  for (let ms = 0; ms <= 30; ms++) {
    const c = pearson(envelope(out, rate, (ms * rate) / 1000), want);
    if (c > best.correlation) best = { correlation: c, ms };
  }
  return best;
}

// partMatch is the envelope correlation of out (delayed by ms) with the
// input over frames [from, to).
function partMatch(out, rate, ms, input, [from, to]) {
  return pearson(envelope(out, rate, (ms * rate) / 1000).slice(from, to), envelope(input, 16000).slice(from, to));
}

// snr is the ratio in dB of ref's power to that of out − ref, sample by
// sample, over frames [from, to) of frame samples.
function snr(out, ref, frame, [from, to] = [0, Infinity]) {
  let sig = 0, noise = 0;
  for (let i = from * frame; i < Math.min(to * frame, out.length, ref.length); i++) {
    sig += ref[i] * ref[i];
    noise += (out[i] - ref[i]) ** 2;
  }
  return 10 * Math.log10(sig / Math.max(noise, 1e-20));
}

const power = (a) => a.reduce((s, v) => s + v * v, 0) / a.length;
const dB = (ratio) => 10 * Math.log10(ratio);
const f1 = (v) => v.toFixed(1);

function readF32(path) {
  const b = readFileSync(path);
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

// --- in the page -----------------------------------------------------------------

// decodeWebCodecs decodes packets with AudioDecoder. For each packet lost
// (an index in lost) it either decodes a packet of just the previous
// packet's TOC byte ('plc': libopus then conceals one frame, as it does
// for DTX), or leaves the frame silent ('silence'). AudioDecoder has no
// loss API of its own: it refuses an empty chunk (EncodingError, and
// closes), and times its output by counting samples, whatever the
// chunks' timestamps say, so a listener page must go by sequence numbers.
function decodeWebCodecs(page, packets, lost, conceal) {
  return page.evaluate(async ({ packets, lost, conceal }) => {
    const outputs = [];
    let failure = null;
    const dec = new AudioDecoder({
      output: (ad) => {
        const pcm = new Float32Array(ad.numberOfFrames);
        ad.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
        outputs.push({ rate: ad.sampleRate, pcm });
        ad.close();
      },
      error: (e) => { failure = String(e); },
    });
    // No description: Chromium's encoder writes its 16 kHz lookahead (104
    // samples) as OpusHead's pre-skip, which Chromium's decoder trims at
    // 48 kHz from the first frame. Without it every packet gives 20 ms.
    dec.configure({ codec: 'opus', sampleRate: 16000, numberOfChannels: 1 });
    const slot = []; // per packet: the index of its output, or -1
    for (let i = 0; i < packets.length; i++) {
      let data = Uint8Array.from(packets[i]);
      if (lost.includes(i)) {
        if (conceal === 'silence') { slot.push(-1); continue; }
        data = Uint8Array.of(packets[i - 1][0]);
      }
      slot.push(slot.filter((k) => k >= 0).length);
      dec.decode(new EncodedAudioChunk({ type: 'key', timestamp: i * 20000, duration: 20000, data }));
    }
    await dec.flush();
    dec.close();
    if (failure) return { failure };
    const rate = outputs[0].rate;
    const frame = rate / 50;
    const bad = outputs.findIndex((o) => o.rate !== rate || o.pcm.length !== frame);
    if (bad >= 0) return { failure: `output ${bad}: ${outputs[bad].pcm.length} samples at ${outputs[bad].rate} Hz, want ${frame} at ${rate}` };
    const pcm = new Float32Array(packets.length * frame);
    slot.forEach((k, i) => { if (k >= 0) pcm.set(outputs[k].pcm, i * frame); });
    return { rate, pcm: Array.from(pcm) };
  }, { packets, lost, conceal });
}

// decodeWasm decodes packets with the vendored decoder at 16 kHz, a lost
// packet as a packet of just the previous TOC byte. (An empty frame also
// makes libopus conceal, but 120 ms of it at once.)
function decodeWasm(page, packets, lost) {
  return page.evaluate(async ({ packets, lost }) => {
    const { OpusDecoder } = globalThis['opus-decoder'];
    const dec = new OpusDecoder({ sampleRate: 16000, channels: 1 });
    // Where the page's policy forbids compiling WebAssembly, ready never
    // settles (measured in Chromium 156): a page must not wait forever.
    const ready = await Promise.race([dec.ready.then(() => true), new Promise((r) => setTimeout(r, 10000, false))]);
    if (!ready) return { failure: "the decoder's WebAssembly did not compile within 10 s (does script-src allow 'wasm-unsafe-eval'?)" };
    const frame = 320;
    const pcm = new Float32Array(packets.length * frame);
    for (let i = 0; i < packets.length; i++) {
      const data = lost.includes(i) ? Uint8Array.of(packets[i - 1][0]) : Uint8Array.from(packets[i]);
      const r = dec.decodeFrame(data);
      if (r.errors.length) return { failure: `packet ${i}: ${r.errors.map((e) => e.message).join('; ')}` };
      if (r.samplesDecoded !== frame || r.sampleRate !== 16000) return { failure: `packet ${i}: ${r.samplesDecoded} samples at ${r.sampleRate} Hz` };
      pcm.set(r.channelData[0], i * frame);
    }
    dec.free();
    return { rate: 16000, pcm: Array.from(pcm) };
  }, { packets, lost });
}

// repacketize joins packets in fives with the pages' Repacketizer, in a
// page of ours, and decodes the originals and the joined packets with the
// page's own decoder wrappers (WebCodecs, or WebAssembly where the page has
// no WebCodecs); returns the joined packets (as arrays) and both decodes.
function repacketize(page, packets) {
  return page.evaluate(async (packets) => {
    const { Repacketizer, createOpusDecoder, parsePacket } = await import('/static/js/opus.js');
    const r = new Repacketizer();
    const joined = [];
    for (const p of packets) joined.push(...r.push(Uint8Array.from(p)));
    joined.push(...r.flush());
    const decode = async (list) => {
      const d = await createOpusDecoder();
      const parts = [];
      for (const p of list) parts.push(...await d.decode(p, parsePacket(p).samples48));
      d.close();
      return { kind: d.kind, pcm: parts };
    };
    const a = await decode(packets.map((p) => Uint8Array.from(p)));
    const b = await decode(joined);
    const parsed = joined.map((p) => {
      const q = parsePacket(p);
      return q && { frames: q.frames.length, samples48: q.samples48, code: p[0] & 3 };
    });
    return { joined: joined.map((p) => Array.from(p)), parsed, kind: a.kind, original: a.pcm, repacketized: b.pcm, invalid: r.invalid };
  }, packets);
}

// --- the test -------------------------------------------------------------------

async function run(work) {
  const input = readWav(join(FIXTURE, 'input.wav'));
  const vendored = readFileSync(join('..', VENDORED));
  const context = await launch(join(work, 'profile'));
  const problems = [];
  try {
    // A page of ours, with its Content-Security-Policy, for WebCodecs.
    const withCodecs = await openPage(context, 'landing', problems);
    await withCodecs.goto(BASE + '/');
    check(await withCodecs.evaluate(() => typeof AudioDecoder === 'function'), 'this Chromium has no WebCodecs AudioDecoder');

    // The same page as a browser without WebCodecs sees it, with the
    // vendored decoder loaded from the server.
    const without = await openPage(context, 'landing without WebCodecs', problems);
    await without.addInitScript(() => {
      for (const name of ['AudioDecoder', 'AudioEncoder', 'EncodedAudioChunk', 'AudioData']) delete window[name];
    });
    await without.goto(BASE + '/');
    const served = await without.evaluate(async (url) => {
      const r = await fetch(url);
      const length = (await r.arrayBuffer()).byteLength;
      await import(url);
      return { status: r.status, type: r.headers.get('content-type'), length, codecs: typeof AudioDecoder, api: typeof globalThis['opus-decoder']?.OpusDecoder };
    }, VENDORED);
    check(served.status === 200 && served.type === 'text/javascript; charset=utf-8' && served.length === vendored.length,
      `${VENDORED}: ${JSON.stringify(served)}, want 200, text/javascript; charset=utf-8, ${vendored.length} bytes`);
    check(served.codecs === 'undefined' && served.api === 'function', `vendored decoder did not load: ${JSON.stringify(served)}`);
    log(`vendored decoder served (${served.length} bytes, ${served.type}) and loaded in a page without WebCodecs`);

    const delays = {};
    for (const name of ENCODINGS) {
      const packets = readPackets(join(FIXTURE, `${name}.bin`)).map((p) => Array.from(p));
      const lost = packets.map((_, i) => i).filter((i) => i % LOST_EVERY === LOST_EVERY - 1);
      const pion = { 16000: readF32(join(PION, `${name}-16000.f32`)), 48000: readF32(join(PION, `${name}-48000.f32`)) };
      const decoders = [
        ['WebCodecs', (l) => decodeWebCodecs(withCodecs, packets, l, 'plc')],
        ['wasm', (l) => decodeWasm(without, packets, l)],
      ];
      for (const [decoder, decode] of decoders) {
        const who = `${name}, ${decoder}`;
        const full = await decode([]);
        check(!full.failure, `${who}: ${full.failure}`);
        const out = Float32Array.from(full.pcm);
        const rate = full.rate, frame = rate / 50;
        check(out.length === packets.length * frame, `${who}: ${out.length} samples, want ${packets.length * frame}`);
        const d = delayOf(out, rate, input);
        delays[decoder] = d.ms;
        const level = dB(power(out) / power(Array.from(input, (v) => v / 32768)));
        const vsPion = Object.fromEntries(Object.entries(PARTS).map(([part, range]) => [part, snr(pion[rate], out, frame, range)]));
        log(`${who}: ${packets.length} packets → ${out.length} samples at ${rate} Hz; envelope correlation ${d.correlation.toFixed(4)} at ${d.ms} ms delay; level ${f1(level)} dB of the input's; pion/opus vs this decoder: ${f1(snr(pion[rate], out, frame))} dB SNR (${Object.entries(vsPion).map(([p, v]) => `${p} ${f1(v)}`).join(', ')})`);
        check(d.correlation > 0.99, `${who}: envelope correlation ${d.correlation.toFixed(3)} with the input`);
        check(Math.abs(level) < 1, `${who}: output level ${f1(level)} dB of the input's`);
        check(vsPion.tones > 30 && vsPion.speech > 30, `${who}: pion/opus's decode differs from libopus's: ${JSON.stringify(vsPion)}`);

        const lossy = await decode(lost);
        check(!lossy.failure, `${who} with loss: ${lossy.failure}`);
        const lout = Float32Array.from(lossy.pcm);
        check(lout.length === out.length, `${who} with loss: ${lout.length} samples, want ${out.length}`);
        const concealed = dB(power(lost.flatMap((i) => Array.from(lout.subarray(i * frame, (i + 1) * frame)))) /
          power(lost.flatMap((i) => Array.from(out.subarray(i * frame, (i + 1) * frame)))));
        const tones = partMatch(lout, rate, d.ms, input, PARTS.tones);
        const speech = partMatch(lout, rate, d.ms, input, PARTS.speech);
        log(`${who}, every ${LOST_EVERY}th packet lost (${lost.length}): ${lout.length} samples; lost frames at ${f1(concealed)} dB of the lossless decode; envelope correlation tones ${tones.toFixed(3)}, speech ${speech.toFixed(3)}`);
        check(Math.abs(concealed) < 6, `${who} with loss: lost frames at ${f1(concealed)} dB of the lossless decode`);
        // Concealment guesses, and libopus eases the level back in after a
        // loss: the envelope follows less closely (measured 0.88 to 0.90 on
        // the speech), but it must still follow.
        check(tones > 0.9 && speech > 0.8, `${who} with loss: envelope correlation tones ${tones.toFixed(3)}, speech ${speech.toFixed(3)}`);
      }
      // The pages' repacketizer: 100 ms packets of one configuration each,
      // decoding to the very samples of the 20 ms packets they join.
      for (const page of [withCodecs, without]) {
        const rp = await repacketize(page, packets);
        const who = `${name}, repacketized, ${rp.kind}`;
        check(rp.invalid === 0 && rp.parsed.every(Boolean), `${who}: a packet does not parse: ${JSON.stringify(rp.parsed)}`);
        const configs = rp.joined.map((p) => p[0] >> 3);
        const sourceConfigs = packets.map((p) => p[0] >> 3);
        const samples = rp.parsed.reduce((n, q) => n + q.samples48, 0);
        check(samples === packets.length * 960, `${who}: ${samples} samples at 48 kHz in the joined packets, want ${packets.length * 960}`);
        // A packet of another configuration ends the one being gathered,
        // so only runs of five of one configuration make 100 ms.
        let run = 0, full = 0;
        for (let i = 0; i < sourceConfigs.length; i++) {
          run = i && sourceConfigs[i] === sourceConfigs[i - 1] ? run + 1 : 1;
          if (run % 5 === 0) full++;
        }
        const hundred = rp.parsed.filter((q) => q.samples48 === 4800 && q.code === 3).length;
        check(hundred === full, `${who}: ${hundred} packets of 100 ms, want ${full}`);
        let k = 0;
        rp.parsed.forEach((q, j) => {
          const from = new Set(sourceConfigs.slice(k, k + q.frames));
          check(from.size === 1 && from.has(configs[j]), `${who}: joined packet ${j} (configuration ${configs[j]}) joins configurations ${[...from]}`);
          k += q.frames;
        });
        check(rp.original.length === packets.length * 320 && rp.repacketized.length === rp.original.length,
          `${who}: ${rp.repacketized.length} samples from the joined packets, ${rp.original.length} from the originals, want ${packets.length * 320}`);
        const differ = rp.original.findIndex((v, i) => v !== rp.repacketized[i]);
        check(differ < 0, `${who}: the joined packets decode differently from sample ${differ}`);
        const bytes = (list) => list.reduce((n, p) => n + p.length, 0);
        log(`${who}: ${packets.length} packets → ${rp.joined.length} (${hundred} of 100 ms), ${bytes(packets)} → ${bytes(rp.joined)} bytes, decoded sample for sample alike`);
      }

      // What silence in place of lost packets would give, for comparison.
      const silent = await decodeWebCodecs(withCodecs, packets, lost, 'silence');
      check(!silent.failure, `${name}, WebCodecs with silence: ${silent.failure}`);
      const sout = Float32Array.from(silent.pcm);
      log(`${name}, WebCodecs, lost packets left silent instead: envelope correlation tones ${partMatch(sout, silent.rate, delays.WebCodecs, input, PARTS.tones).toFixed(3)}, speech ${partMatch(sout, silent.rate, delays.WebCodecs, input, PARTS.speech).toFixed(3)}`);
    }
    check(problems.length === 0, 'console errors:\n' + problems.join('\n'));
  } finally {
    await context.close().catch(() => {});
  }
}

await runScript(run, mkdtempSync(join(tmpdir(), 'pentecost-opus-')));
