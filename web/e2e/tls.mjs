// Browser test of --tls-self-signed: Chromium, told to accept the server's
// certificate by its SPKI hash (--ignore-certificate-errors-spki-list, as
// a device that trusts the CA would), loads the speaker page over HTTPS
// as a secure context and opens a WSS connection that gets a message. A
// second browser without the hash must refuse the certificate, so that
// the first one's success means something. cmd/pentecost/tls_browser_test.go
// starts the server and runs this script; by hand:
//
//   PENTECOST_TLS_URL=https://127.0.0.1:8443 PENTECOST_SPKI=… PENTECOST_SESSION=… node tls.mjs

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { check, launch, log, openPage, runScript, waitFor } from './lib.mjs';

const BASE = process.env.PENTECOST_TLS_URL;
const SPKI = process.env.PENTECOST_SPKI;
const SESSION = process.env.PENTECOST_SESSION;
if (!BASE || !SPKI || !SESSION) {
  console.error('PENTECOST_TLS_URL, PENTECOST_SPKI and PENTECOST_SESSION are required');
  process.exit(2);
}

async function main(work) {
  // Without the hash: the certificate is refused.
  const untrusting = await launch(join(work, 'untrusting'));
  try {
    const page = await untrusting.newPage();
    let err = null;
    await page.goto(`${BASE}/speak`).catch((e) => { err = e; });
    check(err && /ERR_CERT/.test(err.message), `a browser without the CA loaded the page: ${err?.message}`);
    log('without the hash:', err.message.split('\n')[0]);
  } finally {
    await untrusting.close();
  }

  const problems = [];
  const browser = await launch(join(work, 'trusting'), { extraArgs: [`--ignore-certificate-errors-spki-list=${SPKI}`] });
  try {
    const page = await openPage(browser, 'speaker', problems);
    const resp = await page.goto(`${BASE}/speak`);
    check(resp && resp.ok(), `GET /speak over HTTPS: ${resp?.status()}`);
    const secure = await page.evaluate(() => ({ secure: window.isSecureContext, mic: !!navigator.mediaDevices?.getUserMedia, proto: location.protocol }));
    log('page:', JSON.stringify(secure));
    check(secure.secure && secure.mic && secure.proto === 'https:', `not a secure context with a microphone API: ${JSON.stringify(secure)}`);

    const wsURL = `${BASE.replace(/^https:/, 'wss:')}/ws?sessionId=${encodeURIComponent(SESSION)}&targetLanguage=en`;
    const first = await page.evaluate((url) => new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const t = setTimeout(() => reject(new Error('no WSS message within 15 s')), 15000);
      ws.onmessage = (e) => { clearTimeout(t); resolve(String(e.data)); ws.close(); };
      ws.onerror = () => { clearTimeout(t); reject(new Error('WSS connection failed')); };
    }), wsURL);
    log('first WSS message:', first.slice(0, 120));
    check(JSON.parse(first).type === 'sessionJoined', `unexpected first message ${first}`);
    await waitFor(page, () => document.readyState === 'complete', null, 'the page to finish loading');
    check(problems.length === 0, `console errors: ${problems.join('; ')}`);
  } finally {
    await browser.close();
  }
}

runScript(main, mkdtempSync(join(tmpdir(), 'pentecost-tls-')), Number(process.env.PENTECOST_E2E_TIMEOUT_MS || 120000));
