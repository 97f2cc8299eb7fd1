// The listener's jitter buffer, shared by both playback paths: the
// AudioWorklet (player-worklet.js, in secure contexts) and scheduled
// AudioBufferSourceNodes (player.js, where there is no AudioWorklet, e.g. a
// phone on http://192.168.1.20:8080). 16-bit PCM frames at the stream's rate
// go into a ring; read() takes samples out at the output rate (linear
// interpolation), starting once a margin is buffered, fading in after every
// (re)start and fading out, instead of cutting, when it runs dry. Frames are
// joined without a seam, so there are no clicks at their boundaries. The
// margin grows with the frames: 100 ms Opus packets arrive five times less
// often than 20 ms PCM frames, so the buffer must hold 80 ms more to ride
// out the same lateness.

const RING_SECONDS = 12;
const SILENCE_RMS = 0.004; // about -48 dBFS: a pause in speech
const FADE_IN = 1 / 128; // gain step per output sample after a (re)start
const TAIL_DECAY = 0.97; // per output sample, of what was playing at an underrun
const BASE_FRAME_MS = 20; // the frames targetMs and catchUpMs are meant for
const MAX_FRAME_MS = 120; // the longest Opus packet; longer frames leave the margin alone

export class JitterBuffer {
  /**
   * @param {object} o inputRate (Hz, default 16000), outputRate (Hz),
   *   targetMs (buffered before playing starts), catchUpMs (above this,
   *   silent frames are skipped), maxMs (above this, the oldest audio is
   *   dropped).
   */
  constructor(o = {}) {
    this.inRate = o.inputRate || 16000;
    this.step = this.inRate / (o.outputRate || this.inRate);
    this.baseTarget = Math.round(((o.targetMs || 120) / 1000) * this.inRate);
    this.baseCatchUp = Math.round(((o.catchUpMs || 400) / 1000) * this.inRate);
    this.target = this.baseTarget;
    this.catchUp = this.baseCatchUp;
    this.frameMax = Math.round((BASE_FRAME_MS / 1000) * this.inRate); // longest frame seen
    this.cap = RING_SECONDS * this.inRate;
    this.max = Math.min(this.cap - 1, Math.round(((o.maxMs || 6000) / 1000) * this.inRate));
    this.ring = new Float32Array(this.cap);
    this.written = 0; // samples written, ever
    this.readPos = 0; // absolute read position, fractional
    this.played = 0; // position heard now: readPos, less what is scheduled ahead
    this.playing = false;
    this.fade = 0; // 0..1 gain ramp after a (re)start
    this.tail = 0; // last output sample, decayed after an underrun
    this.marks = []; // [{end, seq, ts}] frame ends, to know what has played
    this.lastPlayed = { seq: null, ts: null };
    this.underruns = 0;
    this.skipped = 0;
    this.dropped = 0;
  }

  /** Input samples buffered and not yet read. */
  available() {
    return this.written - this.readPos;
  }

  /** Adds a frame of Int16 PCM with its sequence number and timestamp. */
  push(pcm, seq, ts) {
    const n = pcm.length;
    if (n > this.frameMax && n <= (MAX_FRAME_MS / 1000) * this.inRate) {
      const more = n - Math.round((BASE_FRAME_MS / 1000) * this.inRate);
      this.frameMax = n;
      this.target = this.baseTarget + more;
      this.catchUp = this.baseCatchUp + more;
    }
    const behind = this.written - this.played; // read or not, not yet heard
    if (behind > this.catchUp) {
      // Behind (after a stall, or a reconnect's replay): catch up in the
      // pauses of speech rather than by dropping words.
      let sum = 0;
      for (let i = 0; i < n; i++) sum += pcm[i] * pcm[i];
      if (Math.sqrt(sum / n) / 32768 < SILENCE_RMS) {
        this.skipped++;
        return;
      }
    }
    if (this.available() + n > this.max) {
      // Too far behind to keep everything: drop the oldest, and fade in
      // again where playing resumes.
      this.readPos = this.written + n - this.max;
      this.played = Math.max(this.played, this.readPos);
      this.fade = 0;
      this.dropped++;
      // Marks of dropped audio will never be heard; without this they pile
      // up while the context is not running (a locked iPhone).
      let k = 0;
      while (k < this.marks.length && this.marks[k].end <= this.readPos) k++;
      if (k) this.marks.splice(0, k);
    }
    for (let i = 0; i < n; i++) this.ring[(this.written + i) % this.cap] = pcm[i] / 32768;
    this.written += n;
    this.marks.push({ end: this.written, seq, ts });
  }

  /** Drops what is buffered (a language change, a pause) and starts over. */
  flush() {
    this.readPos = this.written;
    this.played = this.written;
    this.marks = [];
    this.playing = false;
  }

  /** Whether playing should start: stopped, with the margin buffered. */
  ready() {
    return !this.playing && this.available() >= this.target;
  }

  /**
   * Output samples that can be read without running dry (interpolation
   * keeps one input sample in reserve).
   */
  readable() {
    return Math.max(0, Math.floor((this.available() - 1) / this.step));
  }

  sample(pos) {
    const i = Math.floor(pos);
    const f = pos - i;
    const a = this.ring[i % this.cap];
    if (f === 0) return a;
    const b = this.ring[(i + 1) % this.cap];
    return a + (b - a) * f;
  }

  /**
   * Fills out[from..to) at the output rate. Starts playing when ready;
   * when the buffer runs dry it counts an underrun and the sound decays
   * from its last value.
   */
  read(out, from = 0, to = out.length) {
    if (this.ready()) {
      this.playing = true;
      this.fade = 0;
    }
    for (let k = from; k < to; k++) {
      if (this.playing && this.readPos + 1 >= this.written) {
        this.playing = false;
        this.underruns++;
      }
      if (this.playing) {
        let v = this.sample(this.readPos);
        if (this.fade < 1) {
          this.fade = Math.min(1, this.fade + FADE_IN);
          v *= this.fade;
        }
        out[k] = v;
        this.tail = v;
        this.readPos += this.step;
      } else {
        this.tail *= TAIL_DECAY; // fade what was playing instead of cutting it
        out[k] = this.tail;
      }
    }
  }

  /** Whether a decaying tail is still audible. */
  tailing() {
    return Math.abs(this.tail) > 1e-4;
  }

  /**
   * Sets the position heard now (default: everything read) and moves
   * lastPlayed to the last frame that has ended by then.
   */
  heard(pos = this.readPos) {
    this.played = Math.min(pos, this.readPos);
    while (this.marks.length && this.marks[0].end <= this.played) {
      const m = this.marks.shift();
      this.lastPlayed = { seq: m.seq, ts: m.ts };
    }
  }

  /** What the listener page shows and tests read. */
  stats(playing = this.playing) {
    return {
      type: 'stats',
      bufferedMs: ((this.written - this.played) / this.inRate) * 1000,
      playing,
      lastPlayedSeq: this.lastPlayed.seq,
      lastPlayedTs: this.lastPlayed.ts,
      underruns: this.underruns,
      skipped: this.skipped,
      dropped: this.dropped,
    };
  }
}
