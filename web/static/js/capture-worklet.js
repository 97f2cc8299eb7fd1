// AudioWorklet that turns the microphone into the protocol's audio: mono,
// 16 kHz, signed 16-bit little-endian PCM in frames of 20 ms (320 samples,
// 640 bytes). Input at the context's rate is low-pass filtered below the
// new Nyquist frequency, then resampled by linear interpolation. Each frame
// is posted to the page with its level (RMS, 0..1) for the meter.

const OUT_RATE = 16000;
const FRAME = 320; // 20 ms at 16 kHz

// Biquad low-pass section (RBJ cookbook), for anti-aliasing.
class Biquad {
  constructor(fs, f0, q) {
    const w = (2 * Math.PI * f0) / fs;
    const alpha = Math.sin(w) / (2 * q);
    const cos = Math.cos(w);
    const a0 = 1 + alpha;
    this.b0 = (1 - cos) / 2 / a0;
    this.b1 = (1 - cos) / a0;
    this.b2 = this.b0;
    this.a1 = (-2 * cos) / a0;
    this.a2 = (1 - alpha) / a0;
    this.x1 = this.x2 = this.y1 = this.y2 = 0;
  }

  run(x) {
    const y = this.b0 * x + this.b1 * this.x1 + this.b2 * this.x2 - this.a1 * this.y1 - this.a2 * this.y2;
    this.x2 = this.x1; this.x1 = x;
    this.y2 = this.y1; this.y1 = y;
    return y;
  }
}

class PentecostCapture extends AudioWorkletProcessor {
  constructor() {
    super();
    this.ratio = sampleRate / OUT_RATE; // input samples per output sample
    // Fourth-order Butterworth at 0.45 of the output rate, when downsampling.
    this.filters = this.ratio > 1
      ? [new Biquad(sampleRate, 0.45 * OUT_RATE, 0.5412), new Biquad(sampleRate, 0.45 * OUT_RATE, 1.3066)]
      : [];
    this.pos = 0; // next output position, in input samples from this block's start
    this.last = 0; // last filtered sample of the previous block
    this.block = new Float32Array(128);
    this.frame = new Int16Array(FRAME);
    this.n = 0;
    this.sumSq = 0;
  }

  emit(v) {
    const s = Math.max(-1, Math.min(1, v));
    this.frame[this.n++] = s < 0 ? Math.round(s * 32768) : Math.round(s * 32767);
    this.sumSq += s * s;
    if (this.n === FRAME) {
      const rms = Math.sqrt(this.sumSq / FRAME);
      this.port.postMessage({ pcm: this.frame.buffer, rms }, [this.frame.buffer]);
      this.frame = new Int16Array(FRAME);
      this.n = 0;
      this.sumSq = 0;
    }
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || !input[0]) return true;
    const len = input[0].length;
    if (this.block.length < len) this.block = new Float32Array(len);
    const y = this.block;
    for (let i = 0; i < len; i++) {
      let v = 0;
      for (let c = 0; c < input.length; c++) v += input[c][i];
      v /= input.length;
      for (const f of this.filters) v = f.run(v);
      y[i] = v;
    }
    // Output positions in [-1, len-1) lie between two known samples; -1 is
    // the previous block's last one.
    while (this.pos < len - 1) {
      const i = Math.floor(this.pos);
      const frac = this.pos - i;
      const a = i < 0 ? this.last : y[i];
      const b = y[i + 1];
      this.emit(frac === 0 ? a : a + (b - a) * frac);
      this.pos += this.ratio;
    }
    this.pos -= len;
    this.last = y[len - 1];
    return true;
  }
}

registerProcessor('pentecost-capture', PentecostCapture);
