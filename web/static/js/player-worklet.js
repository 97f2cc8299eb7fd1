// AudioWorklet that plays the listener's stream: 16-bit PCM frames at the
// stream's rate go into a ring buffer (the jitter buffer), playback starts
// once a small margin is buffered, and the output is resampled to the
// context's rate by linear interpolation. Frames join without a seam, so
// there are no clicks at their boundaries; an underrun fades out and
// buffers again instead of cutting the sound.

const RING_SECONDS = 12;
const STATS_EVERY = 0.25; // seconds between reports to the page
const SILENCE_RMS = 0.004; // about -48 dBFS: a pause in speech

class PentecostPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.inRate = o.inputRate || 16000;
    this.step = this.inRate / sampleRate;
    this.target = Math.round(((o.targetMs || 120) / 1000) * this.inRate); // samples to buffer before playing
    this.catchUp = Math.round(((o.catchUpMs || 400) / 1000) * this.inRate); // above this, skip silent frames
    this.cap = RING_SECONDS * this.inRate;
    this.ring = new Float32Array(this.cap);
    this.written = 0; // samples written, ever
    this.readPos = 0; // absolute read position, fractional
    this.playing = false;
    this.fade = 0; // 0..1 gain ramp after a (re)start
    this.tail = 0; // last output sample, decayed after an underrun
    this.marks = []; // [{end, seq, ts}] frame ends, to know what has played
    this.lastPlayed = { seq: null, ts: null };
    this.underruns = 0;
    this.skipped = 0;
    this.sinceStats = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    if (m.type === 'frame') {
      this.push(m.pcm, m.seq, m.ts);
    } else if (m.type === 'flush') {
      // A language change: drop what is buffered and start over.
      this.readPos = this.written;
      this.marks = [];
      this.playing = false;
    }
  }

  push(pcm, seq, ts) {
    const n = pcm.length;
    const buffered = this.written - this.readPos;
    if (buffered > this.catchUp) {
      // Behind (after a reconnect's replay, say): catch up in the pauses
      // of speech rather than by dropping words.
      let sum = 0;
      for (let i = 0; i < n; i++) sum += pcm[i] * pcm[i];
      if (Math.sqrt(sum / n) / 32768 < SILENCE_RMS) {
        this.skipped++;
        return;
      }
    }
    if (buffered + n >= this.cap) {
      // Too far behind to keep everything: drop the oldest.
      this.readPos = this.written + n - this.cap + 1;
    }
    for (let i = 0; i < n; i++) {
      this.ring[(this.written + i) % this.cap] = pcm[i] / 32768;
    }
    this.written += n;
    this.marks.push({ end: this.written, seq, ts });
  }

  sample(pos) {
    const i = Math.floor(pos);
    const f = pos - i;
    const a = this.ring[i % this.cap];
    if (f === 0) return a;
    const b = this.ring[(i + 1) % this.cap];
    return a + (b - a) * f;
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const ch = out[0];
    if (!ch) return true;
    if (!this.playing && this.written - this.readPos >= this.target) {
      this.playing = true;
      this.fade = 0;
    }
    for (let k = 0; k < ch.length; k++) {
      // Interpolation reads one sample ahead, so keep one in reserve.
      if (this.playing && this.readPos + 1 >= this.written) {
        this.playing = false;
        this.underruns++;
      }
      if (this.playing) {
        let v = this.sample(this.readPos);
        if (this.fade < 1) {
          this.fade = Math.min(1, this.fade + 1 / 128);
          v *= this.fade;
        }
        ch[k] = v;
        this.tail = v;
        this.readPos += this.step;
      } else {
        this.tail *= 0.97; // fade what was playing instead of cutting it
        ch[k] = this.tail;
      }
    }
    for (let c = 1; c < out.length; c++) out[c].set(ch);
    while (this.marks.length && this.marks[0].end <= this.readPos) {
      const m = this.marks.shift();
      this.lastPlayed = { seq: m.seq, ts: m.ts };
    }
    this.sinceStats += ch.length / sampleRate;
    if (this.sinceStats >= STATS_EVERY) {
      this.sinceStats = 0;
      this.port.postMessage({
        type: 'stats',
        bufferedMs: ((this.written - this.readPos) / this.inRate) * 1000,
        playing: this.playing,
        lastPlayedSeq: this.lastPlayed.seq,
        lastPlayedTs: this.lastPlayed.ts,
        underruns: this.underruns,
        skipped: this.skipped,
      });
    }
    return true;
  }
}

registerProcessor('pentecost-player', PentecostPlayer);
