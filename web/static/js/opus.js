// Opus for the pages (docs/opus.md, docs/protocol.md): reading and joining
// packets (RFC 6716 section 3), the microphone's encoder (WebCodecs
// AudioEncoder) and the listener's decoder (WebCodecs AudioDecoder, or the
// vendored WebAssembly decoder where WebCodecs is missing: it exists only
// in secure contexts, so a phone on a venue's plain-HTTP address has none).
// Every decoder here gives 16-bit PCM at 16 kHz, the PCM stream's format,
// so the players take both codecs alike.

/** The rate of the PCM going into the encoder and out of the decoders. */
export const RATE = 16000;

/** What the speaker sends: 100 ms packets (five 20 ms frames), as the protocol recommends. */
export const PACKET_48 = 4800; // in 48 kHz samples, the unit of RFC 6716 durations

const MAX_PACKET_48 = 5760; // 120 ms, the longest packet (RFC 6716 3.2.5, R5)
const MAX_FRAME_BYTES = 1275; // RFC 6716 3.2.1
const WASM_READY_MS = 10000; // where the policy forbids WebAssembly, ready never settles
const DECODE_TIMEOUT_MS = 2000; // a WebCodecs packet decodes in well under a millisecond
const VENDORED = new URL('../vendor/opus-decoder/opus-decoder.min.js', import.meta.url);

// --- packets ---------------------------------------------------------------

/** Duration of one frame of a TOC byte's configuration, in 48 kHz samples (RFC 6716 3.1). */
export function frameSamples48(toc) {
  const config = toc >> 3;
  if (config < 12) return [480, 960, 1920, 2880][config & 3]; // SILK 10/20/40/60 ms
  if (config < 16) return [480, 960][config & 1]; // hybrid 10/20 ms
  return [120, 240, 480, 960][config & 3]; // CELT 2.5/5/10/20 ms
}

// readLength reads a frame length of one or two bytes (RFC 6716 3.2.1) at
// p[i]: [length, bytes used], or null past the end.
function readLength(p, i) {
  if (i >= p.length) return null;
  if (p[i] < 252) return [p[i], 1];
  if (i + 1 >= p.length) return null;
  return [p[i] + 4 * p[i + 1], 2];
}

function writeLength(n) {
  if (n < 252) return [n];
  const first = 252 + (n & 3);
  return [first, (n - first) >> 2];
}

/**
 * Splits an Opus packet into its frames (RFC 6716 3.2, codes 0 to 3 with
 * padding): {toc, frames: [Uint8Array views], samples48}, or null when it
 * breaks the rules of section 3.4 (R1–R7) that can be checked without
 * decoding.
 */
export function parsePacket(p) {
  if (!(p instanceof Uint8Array) || p.length < 1) return null;
  const toc = p[0];
  const fs = frameSamples48(toc);
  const frames = [];
  switch (toc & 3) {
    case 0:
      frames.push(p.subarray(1));
      break;
    case 1: {
      if ((p.length - 1) % 2) return null;
      const half = (p.length - 1) / 2;
      frames.push(p.subarray(1, 1 + half), p.subarray(1 + half));
      break;
    }
    case 2: {
      const l = readLength(p, 1);
      if (!l) return null;
      const start = 1 + l[1];
      if (start + l[0] > p.length) return null;
      frames.push(p.subarray(start, start + l[0]), p.subarray(start + l[0]));
      break;
    }
    default: {
      if (p.length < 2) return null;
      const vbr = p[1] & 0x80;
      const m = p[1] & 0x3f;
      if (m === 0 || m * fs > MAX_PACKET_48) return null;
      let i = 2;
      let end = p.length;
      if (p[1] & 0x40) {
        let padding = 0;
        for (;;) {
          if (i >= end) return null;
          const b = p[i++];
          padding += b === 255 ? 254 : b;
          if (b !== 255) break;
        }
        end -= padding;
        if (end < i) return null;
      }
      if (vbr) {
        const lengths = [];
        for (let k = 0; k < m - 1; k++) {
          const l = readLength(p, i);
          if (!l || i + l[1] > end) return null;
          lengths.push(l[0]);
          i += l[1];
        }
        for (const n of lengths) {
          if (i + n > end) return null;
          frames.push(p.subarray(i, i + n));
          i += n;
        }
        frames.push(p.subarray(i, end));
      } else {
        if ((end - i) % m) return null;
        const n = (end - i) / m;
        for (let k = 0; k < m; k++) frames.push(p.subarray(i + k * n, i + (k + 1) * n));
      }
    }
  }
  if (frames.some((f) => f.length > MAX_FRAME_BYTES)) return null;
  return { toc, frames, samples48: frames.length * fs };
}

/**
 * Joins frames of one configuration (a TOC byte's top six bits) into one
 * packet: code 0 for one frame, else code 3 (RFC 6716 3.2.5), CBR when
 * every frame has the same length, else VBR with the lengths, no padding.
 */
export function joinFrames(toc, frames) {
  const head = [];
  if (frames.length === 1) {
    head.push(toc & 0xfc);
  } else {
    const cbr = frames.every((f) => f.length === frames[0].length);
    head.push((toc & 0xfc) | 3, (cbr ? 0 : 0x80) | frames.length);
    if (!cbr) for (let k = 0; k < frames.length - 1; k++) head.push(...writeLength(frames[k].length));
  }
  const out = new Uint8Array(head.length + frames.reduce((n, f) => n + f.length, 0));
  out.set(head);
  let i = head.length;
  for (const f of frames) {
    out.set(f, i);
    i += f.length;
  }
  return out;
}

/**
 * Gathers short packets into packets of at least target (48 kHz samples;
 * default 100 ms): a packet as long alone passes unchanged; shorter ones
 * are joined frame by frame, and a packet of another configuration (or
 * one that would pass 120 ms) sends what is gathered first.
 */
export class Repacketizer {
  constructor(target = PACKET_48) {
    this.target = target;
    this.toc = 0;
    this.frames = [];
    this.samples = 0;
    this.invalid = 0;
  }

  /** Takes one packet; returns the packets now complete, in order. */
  push(packet) {
    const p = parsePacket(packet);
    if (!p) {
      this.invalid++;
      return [];
    }
    const out = [];
    if (this.frames.length && ((p.toc & 0xfc) !== this.toc || this.samples + p.samples48 > MAX_PACKET_48)) {
      out.push(...this.flush());
    }
    if (!this.frames.length && p.samples48 >= this.target) {
      out.push(packet);
      return out;
    }
    this.toc = p.toc & 0xfc;
    this.frames.push(...p.frames);
    this.samples += p.samples48;
    if (this.samples >= this.target) out.push(...this.flush());
    return out;
  }

  /** Returns what is gathered as one packet (none when nothing is). */
  flush() {
    if (!this.frames.length) return [];
    const packet = joinFrames(this.toc, this.frames);
    this.frames = [];
    this.samples = 0;
    return [packet];
  }
}

// --- encoding ------------------------------------------------------------------

/**
 * The AudioEncoder configuration the speaker uses, or null where the
 * browser cannot encode Opus (no WebCodecs: older browsers, and every page
 * that is not a secure context). 100 ms packets where the encoder makes
 * them (Chromium does: five SILK frames in one code-3 packet), else 20 ms
 * ones that OpusEncoder joins in fives. SILK wideband at 24 kbit/s:
 * about 20 kbit/s of speech (docs/opus.md).
 */
export async function opusEncoderConfig(bitrate = 24000) {
  if (typeof AudioEncoder !== 'function' || typeof AudioData !== 'function') return null;
  for (const frameDuration of [100000, 20000]) {
    const config = {
      codec: 'opus', sampleRate: RATE, numberOfChannels: 1, bitrate,
      opus: { application: 'voip', signal: 'voice', frameDuration },
    };
    try {
      if ((await AudioEncoder.isConfigSupported(config)).supported) return config;
    } catch {
      // A browser that does not know a member: try the next.
    }
  }
  return null;
}

/**
 * Encodes 16 kHz mono PCM (Int16Arrays of any length) with WebCodecs and
 * hands onPacket one Opus packet of 100 ms at a time. onError gets the
 * encoder's error; the encoder is closed then.
 */
export class OpusEncoder {
  constructor(config, onPacket, onError) {
    this.config = config;
    this.onPacket = onPacket;
    this.samples = 0;
    this.packer = new Repacketizer();
    this.encoder = new AudioEncoder({
      output: (chunk) => this.output(chunk),
      error: (err) => {
        this.encoder = null;
        onError(err);
      },
    });
    this.encoder.configure(config);
  }

  /** Encodes pcm; false when the encoder has failed. */
  encode(pcm) {
    if (!this.encoder || this.encoder.state !== 'configured') return false;
    const data = new AudioData({
      format: 's16', sampleRate: RATE, numberOfChannels: 1, numberOfFrames: pcm.length,
      timestamp: Math.round((this.samples * 1e6) / RATE), data: pcm,
    });
    this.samples += pcm.length;
    this.encoder.encode(data);
    data.close();
    return true;
  }

  output(chunk) {
    const packet = new Uint8Array(chunk.byteLength);
    chunk.copyTo(packet);
    for (const p of this.packer.push(packet)) this.onPacket(p);
  }

  close() {
    try { this.encoder?.close(); } catch { /* already closed */ }
    this.encoder = null;
  }
}

// --- decoding ------------------------------------------------------------------

const DECODER_CONFIG = { codec: 'opus', sampleRate: RATE, numberOfChannels: 1 };

function toInt16(v) {
  const s = Math.round(v * 32768);
  return s > 32767 ? 32767 : s < -32768 ? -32768 : s;
}

// A 95-tap low-pass at 7.2 kHz for 48 kHz (windowed sinc, Blackman), to
// take WebCodecs' 48 kHz output down to 16 kHz without aliasing: flat to
// about 5.8 kHz, which wideband Opus (at most 8 kHz) hardly passes anyway.
const TAPS = (() => {
  const n = 95;
  const fc = 7200 / 48000;
  const h = new Float32Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    const x = i - (n - 1) / 2;
    const sinc = x === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * x) / (Math.PI * x);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (n - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (n - 1));
    h[i] = sinc * w;
    sum += h[i];
  }
  for (let i = 0; i < n; i++) h[i] /= sum;
  return h;
})();

/**
 * Brings decoded audio at any rate to 16-bit PCM at 16 kHz, continuously
 * across calls: 48 kHz (WebCodecs' rate) filtered and taken every third
 * sample, 16 kHz as it is, anything else by linear interpolation.
 */
export class Downsampler {
  constructor() {
    this.reset();
  }

  reset() {
    this.rate = 0;
    this.hist = new Float32Array(TAPS.length - 1);
    this.phase = 0; // position of the next output, in input samples
    this.prev = 0;
  }

  run(x, rate) {
    if (rate !== this.rate) {
      this.reset();
      this.rate = rate;
    }
    if (rate === RATE) return Int16Array.from(x, toInt16);
    if (rate === 3 * RATE) {
      const H = this.hist.length;
      const ext = new Float32Array(H + x.length);
      ext.set(this.hist);
      ext.set(x, H);
      const out = new Int16Array(Math.max(0, Math.ceil((x.length - this.phase) / 3)));
      let k = 0;
      let i = this.phase;
      for (; i < x.length; i += 3) {
        let s = 0;
        for (let j = 0; j < TAPS.length; j++) s += TAPS[j] * ext[i + j];
        out[k++] = toInt16(s);
      }
      this.phase = i - x.length;
      this.hist = ext.slice(ext.length - H);
      return out;
    }
    const step = rate / RATE;
    const out = [];
    let pos = this.phase; // -1 ≤ pos: -1 is the previous call's last sample
    for (; pos < x.length - 1; pos += step) {
      const i = Math.floor(pos);
      const f = pos - i;
      const a = i < 0 ? this.prev : x[i];
      out.push(toInt16(a + (x[i + 1] - a) * f));
    }
    this.phase = pos - x.length;
    this.prev = x[x.length - 1];
    return Int16Array.from(out);
  }
}

/**
 * Loads an Opus decoder: WebCodecs' AudioDecoder where the browser has it
 * (webCodecs false skips it), else the WebAssembly decoder vendored in
 * /static/vendor/opus-decoder. Resolves to {kind: 'webcodecs' | 'wasm',
 * decode(packet, samples48) → Promise<Int16Array at 16 kHz>, reset(),
 * close()}; rejects when neither loads.
 */
export async function createOpusDecoder({ webCodecs = true } = {}) {
  if (webCodecs && typeof AudioDecoder === 'function' && typeof EncodedAudioChunk === 'function') {
    try {
      if ((await AudioDecoder.isConfigSupported(DECODER_CONFIG)).supported) return new WebCodecsDecoder();
    } catch {
      // Fall back to WebAssembly.
    }
  }
  return WasmDecoder.load();
}

// WebCodecsDecoder decodes with AudioDecoder, configured without an
// OpusHead (so that no pre-skip is trimmed: every packet gives its whole
// duration, docs/opus.md), and matches outputs to packets in order.
class WebCodecsDecoder {
  constructor() {
    this.kind = 'webcodecs';
    this.pending = []; // [{resolve, reject}] per chunk given, in order
    this.decoder = null;
    this.ts = 0;
    this.down = new Downsampler();
  }

  open() {
    this.decoder = new AudioDecoder({ output: (d) => this.output(d), error: (e) => this.fail(e) });
    this.decoder.configure(DECODER_CONFIG);
    this.down.reset();
  }

  decode(packet, samples48) {
    // A decoder that failed is closed: the next packet gets a new one.
    if (!this.decoder || this.decoder.state !== 'configured') this.open();
    const duration = Math.round((samples48 * 1e6) / 48000);
    const chunk = new EncodedAudioChunk({ type: 'key', timestamp: this.ts, duration, data: packet });
    this.ts += duration;
    return new Promise((resolve, reject) => {
      // A packet that never comes out would hold up every later one:
      // give up on the decoder instead.
      const timer = setTimeout(() => this.close(), DECODE_TIMEOUT_MS);
      this.pending.push({
        resolve: (v) => { clearTimeout(timer); resolve(v); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      try {
        this.decoder.decode(chunk);
      } catch (err) {
        this.pending.pop().reject(err);
      }
    });
  }

  output(data) {
    const pcm = new Float32Array(data.numberOfFrames);
    data.copyTo(pcm, { planeIndex: 0, format: 'f32-planar' });
    const rate = data.sampleRate;
    data.close();
    this.pending.shift()?.resolve(this.down.run(pcm, rate));
  }

  fail(err) {
    this.decoder = null;
    const pending = this.pending;
    this.pending = [];
    for (const p of pending) p.reject(err);
  }

  // reset starts a new stream: the next packet opens a fresh decoder.
  reset() {
    this.close();
  }

  close() {
    const d = this.decoder;
    this.fail(new DOMException('closed', 'AbortError'));
    try { d?.close(); } catch { /* already closed */ }
  }
}

// WasmDecoder decodes with libopus compiled to WebAssembly, at 16 kHz
// directly, synchronously.
class WasmDecoder {
  static async load() {
    await import(VENDORED.href);
    const OpusDecoder = globalThis['opus-decoder']?.OpusDecoder;
    if (typeof OpusDecoder !== 'function') throw new Error('the WebAssembly Opus decoder did not load');
    const d = new OpusDecoder({ sampleRate: RATE, channels: 1 });
    let timer = 0;
    const ready = await Promise.race([
      d.ready.then(() => true, () => false),
      new Promise((resolve) => { timer = setTimeout(resolve, WASM_READY_MS, false); }),
    ]);
    clearTimeout(timer);
    if (!ready) {
      try { d.free(); } catch { /* never started */ }
      throw new Error("the WebAssembly Opus decoder did not start (does the page's policy allow 'wasm-unsafe-eval'?)");
    }
    return new WasmDecoder(d);
  }

  constructor(d) {
    this.kind = 'wasm';
    this.d = d;
  }

  decode(packet) {
    const r = this.d.decodeFrame(packet);
    if (r.errors?.length || !r.samplesDecoded) {
      return Promise.reject(new Error(r.errors?.[0]?.message || 'nothing decoded'));
    }
    return Promise.resolve(Int16Array.from(r.channelData[0].subarray(0, r.samplesDecoded), toInt16));
  }

  reset() {
    this.d.reset();
  }

  close() {
    this.d.free();
  }
}
