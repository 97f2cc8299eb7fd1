// Playback of the listener's stream, by whichever path the browser offers:
// an AudioWorklet (player-worklet.js) where it exists, which is only in
// secure contexts (HTTPS, localhost), and otherwise scheduled
// AudioBufferSourceNodes, so that a phone on a venue's plain-HTTP address
// plays too. Both read from the same jitter buffer (jitter.js).

import { JitterBuffer } from './jitter.js';

const STATS_EVERY_MS = 250;

// Scheduled-buffer timing, in seconds of context time. Buffers are rendered
// ahead of the clock and started back to back at exact sample times, so
// their joins are seamless; about 100 ms each keeps the number of nodes low.
const BATCH = 0.1; // longest buffer
const REFILL = 0.1; // schedule more when less than this is ahead
const LOW = 0.05; // with less than this ahead and nothing buffered: underrun
const LEAD = 0.03; // where playback (re)starts, ahead of the clock
const TAIL = 0.012; // fade-out rendered after the last sound, so it does not click
const TICK_MS = 20;

/**
 * Creates a player on ctx; onStats gets the jitter buffer's statistics
 * about four times a second. Returns {kind, node, push(pcm, seq, ts),
 * flush(), close()}: connect node onwards; kind is 'worklet' or 'buffers'.
 * options go to the jitter buffer (inputRate, targetMs, catchUpMs, maxMs).
 */
export async function createPlayer(ctx, options, onStats) {
  if (ctx.audioWorklet && typeof AudioWorkletNode === 'function') {
    try {
      return await workletPlayer(ctx, options, onStats);
    } catch {
      // An old engine without module imports in worklets: fall through.
    }
  }
  return new BufferPlayer(ctx, options, onStats);
}

async function workletPlayer(ctx, options, onStats) {
  await ctx.audioWorklet.addModule(new URL('./player-worklet.js', import.meta.url));
  const node = new AudioWorkletNode(ctx, 'pentecost-player', {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { targetMs: 120, catchUpMs: 400, ...options },
  });
  node.port.onmessage = (e) => onStats(e.data);
  return {
    kind: 'worklet',
    node,
    push(pcm, seq, ts) { node.port.postMessage({ type: 'frame', pcm, seq, ts }, [pcm.buffer]); },
    flush() { node.port.postMessage({ type: 'flush' }); },
    close() { node.disconnect(); },
  };
}

/** The fallback: AudioBufferSourceNodes scheduled on the context's clock. */
class BufferPlayer {
  constructor(ctx, options, onStats) {
    this.kind = 'buffers';
    this.ctx = ctx;
    this.onStats = onStats;
    this.jb = new JitterBuffer({ targetMs: 100, catchUpMs: 500, ...options, outputRate: ctx.sampleRate });
    this.node = ctx.createGain();
    this.out = this.newOut();
    this.chunks = []; // [{src, start, end, pos0, pos1}] scheduled, in order
    this.end = 0; // context time where the scheduled audio ends
    this.lastStats = 0;
    this.timer = setInterval(() => this.tick(), TICK_MS);
  }

  newOut() {
    // Each generation of buffers goes through its own gain, so a flush can
    // fade out what is already scheduled.
    const g = this.ctx.createGain();
    g.connect(this.node);
    return g;
  }

  push(pcm, seq, ts) {
    this.jb.push(pcm, seq, ts);
    this.tick();
  }

  flush() {
    const now = this.ctx.currentTime;
    this.out.gain.setTargetAtTime(0, now, 0.005);
    for (const c of this.chunks) {
      try { c.src.stop(now + 0.05); } catch { /* already stopped */ }
    }
    const old = this.out;
    setTimeout(() => old.disconnect(), 200);
    this.out = this.newOut();
    this.chunks = [];
    this.end = 0;
    this.jb.flush();
    this.jb.tail = 0;
  }

  close() {
    clearInterval(this.timer);
    this.flush();
    this.node.disconnect();
  }

  // schedule renders n samples from the jitter buffer into a buffer that
  // starts where the scheduled audio ends.
  schedule(n) {
    const ctx = this.ctx;
    const buf = ctx.createBuffer(1, n, ctx.sampleRate);
    const data = buf.getChannelData(0);
    const pos0 = this.jb.readPos;
    this.jb.read(data);
    const src = ctx.createBufferSource();
    src.buffer = buf;
    src.connect(this.out);
    const start = this.end;
    src.start(start);
    this.end = start + n / ctx.sampleRate;
    const chunk = { src, start, end: this.end, pos0, pos1: this.jb.readPos };
    src.onended = () => {
      src.disconnect();
      this.tick();
    };
    this.chunks.push(chunk);
  }

  tick() {
    const ctx = this.ctx;
    if (ctx.state !== 'running') return;
    const now = ctx.currentTime;
    const rate = ctx.sampleRate;
    let ahead = this.end - now;
    if (this.jb.playing && this.end < now) {
      // The page stalled (a long task, a throttled tab) past everything
      // scheduled: buffers started now would overlap the next ones' times.
      // Re-anchor on the clock and fade in, as after an underrun.
      this.end = now + LEAD;
      this.jb.fade = 0;
      this.jb.underruns++;
      ahead = LEAD;
    }
    if (!this.jb.playing) {
      if (this.end <= now) this.jb.tail = 0; // ran out: nothing left sounding
      if (ahead < LOW && this.jb.tailing()) this.schedule(Math.round(TAIL * rate));
      if (this.jb.ready()) {
        if (ahead < LEAD) {
          // (Re)anchor on the clock; the jitter buffer fades in.
          this.end = now + LEAD;
        }
      } else {
        this.report(now);
        return;
      }
    }
    ahead = this.end - now;
    while (ahead < REFILL) {
      const readable = this.jb.readable();
      if (readable >= Math.round(0.01 * rate) || (readable > 0 && ahead < LOW)) {
        this.schedule(Math.min(readable, Math.round(BATCH * rate)));
      } else if (ahead < LOW) {
        // Nothing left to play: let the sound fade out and count an
        // underrun; playback starts again, anchored anew, once the margin
        // is buffered.
        if (this.end < now) this.end = now + 0.005;
        this.schedule(Math.round(TAIL * rate));
        break;
      } else {
        break;
      }
      ahead = this.end - now;
    }
    this.report(now);
  }

  // report moves the jitter buffer's "heard" position to what the context
  // is playing now, and passes on statistics.
  report(now) {
    while (this.chunks.length && this.chunks[0].end <= now) this.chunks.shift();
    const c = this.chunks[0];
    let pos = this.jb.readPos;
    if (c) {
      pos = now <= c.start ? c.pos0 : c.pos0 + ((now - c.start) / (c.end - c.start)) * (c.pos1 - c.pos0);
    }
    this.jb.heard(pos);
    const t = performance.now();
    if (t - this.lastStats >= STATS_EVERY_MS) {
      this.lastStats = t;
      this.onStats(this.jb.stats());
    }
  }
}
