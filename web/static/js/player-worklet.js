// AudioWorklet that plays the listener's stream through the shared jitter
// buffer (jitter.js): frames posted by the page go into it, and each render
// quantum reads from it at the context's rate. Used where AudioWorklet
// exists (secure contexts); player.js falls back to scheduled buffers
// elsewhere. Worklet modules may import other modules, so both paths run
// the same buffering, catch-up and bookkeeping code.

import { JitterBuffer } from './jitter.js';

const STATS_EVERY = 0.25; // seconds between reports to the page

class PentecostPlayer extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const o = options.processorOptions || {};
    this.jb = new JitterBuffer({ ...o, outputRate: sampleRate });
    this.sinceStats = 0;
    this.port.onmessage = (e) => this.onMessage(e.data);
  }

  onMessage(m) {
    if (m.type === 'frame') this.jb.push(m.pcm, m.seq, m.ts);
    else if (m.type === 'flush') this.jb.flush();
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const ch = out[0];
    if (!ch) return true;
    this.jb.read(ch);
    for (let c = 1; c < out.length; c++) out[c].set(ch);
    this.jb.heard();
    this.sinceStats += ch.length / sampleRate;
    if (this.sinceStats >= STATS_EVERY) {
      this.sinceStats = 0;
      this.port.postMessage(this.jb.stats());
    }
    return true;
  }
}

registerProcessor('pentecost-player', PentecostPlayer);
