// Browser test of the speaker page in a room (web/e2e_speaker_test.go
// starts the server and runs it): listener links that phones can open, the
// address picker, the full-screen "Show to the room" view with listeners
// by language, whether each language is translated, and "Your sessions"
// finding a running session again from a new tab (which sends the device
// cookie the first sign-in left); what a translation worker reports
// (latency, a failure in words), the server's microphone
// warnings (the fake microphone clips for 2 s of every 5), and the premium
// tier offered only while a worker serves it. Screenshots at phone size,
// and of the room view at projector size.
//
//   PENTECOST_URL=http://127.0.0.1:8080 PENTECOST_USERNAME=admin PENTECOST_PASSWORD=… \
//   PENTECOST_WORKER_SECRET=… PENTECOST_LISTENER_BASES='["http://192.168.1.20:8080",…]' \
//   PENTECOST_E2E_RESULT=/tmp/result.json node web/e2e/speaker.mjs

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RATE, SHOTS, STEP_TIMEOUT, check, checkA11y, launch, log, openPage, runScript, shot, waitFor, waitState, writeToneWav, writeWav } from './lib.mjs';

const BASE = process.env.PENTECOST_URL;
const USERNAME = process.env.PENTECOST_USERNAME;
const PASSWORD = process.env.PENTECOST_PASSWORD;
const WORKER_SECRET = process.env.PENTECOST_WORKER_SECRET;
const LISTENER_BASES = JSON.parse(process.env.PENTECOST_LISTENER_BASES || 'null');
const RESULT = process.env.PENTECOST_E2E_RESULT;

if (!BASE || !USERNAME || !PASSWORD || !WORKER_SECRET || !Array.isArray(LISTENER_BASES) || LISTENER_BASES.length < 2 || !RESULT) {
  console.error('PENTECOST_URL, PENTECOST_USERNAME, PENTECOST_PASSWORD, PENTECOST_WORKER_SECRET, PENTECOST_LISTENER_BASES (two or more) and PENTECOST_E2E_RESULT are required');
  process.exit(2);
}

// link returns the listener link the page shows, the QR code's src, and
// the SVG that src serves (the Go test checks that it encodes the link).
async function link(page) {
  await waitFor(page, () => {
    const img = document.getElementById('qr');
    return img.complete && img.naturalWidth > 0 && img.src.includes('?host=');
  }, null, 'the QR code');
  return page.evaluate(async () => {
    const href = document.getElementById('share-link').href;
    const qr = document.getElementById('qr').getAttribute('src');
    const svg = await (await fetch(qr)).text();
    return { href, qr, svg };
  });
}

// visible returns whether an element is shown.
const visible = (page, sel) => page.locator(sel).isVisible();


// roomFits checks that the room view's code, QR code and link fit the
// window without scrolling sideways, and returns the code's font size.
async function roomFits(page, what) {
  const r = await page.evaluate(() => {
    const box = (id) => document.getElementById(id).getBoundingClientRect();
    const code = box('room-code');
    const qr = box('room-qr');
    const view = document.getElementById('room-view');
    return {
      w: innerWidth, h: innerHeight,
      code, qr,
      font: parseFloat(getComputedStyle(document.getElementById('room-code')).fontSize),
      sideways: view.scrollWidth > view.clientWidth + 1,
      codeLines: Math.round(code.height / parseFloat(getComputedStyle(document.getElementById('room-code')).lineHeight)),
    };
  });
  check(!r.sideways, `${what}: the room view scrolls sideways`);
  check(r.code.left >= 0 && r.code.right <= r.w + 1, `${what}: the code does not fit across (${Math.round(r.code.left)}–${Math.round(r.code.right)} of ${r.w})`);
  check(r.qr.width >= Math.min(r.w, r.h) * 0.4, `${what}: the QR code is ${Math.round(r.qr.width)} px wide in a ${r.w}×${r.h} window`);
  return r;
}

async function run(work) {
  mkdirSync(SHOTS, { recursive: true });
  // The fake microphone loops 3 s of a tone at a good level and 2 s of the
  // same tone driven far past full scale (clipped), so that the server
  // warns of clipping and the warning shows on the page.
  const wav = join(work, 'tone.wav');
  const good = writeToneWav(wav, { seconds: 3 });
  const clipped = Int16Array.from({ length: 2 * RATE }, (_, i) => Math.max(-32767, Math.min(32767, good[i % good.length] * 8)));
  const pcm = new Int16Array(good.length + clipped.length);
  pcm.set(good);
  pcm.set(clipped, good.length);
  writeWav(wav, pcm);
  const context = await launch(join(work, 'profile'), {
    extraArgs: ['--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream', `--use-file-for-fake-audio-capture=${wav}`],
  });
  const problems = [];
  const result = { links: [] };
  try {
    await context.addInitScript(() => { window.__PENTECOST_TEST__ = {}; });

    // 1. The speaker opens the page as 127.0.0.1, as the microphone needs.
    let speaker = await openPage(context, 'speaker', problems);
    await speaker.goto(BASE + '/speak');
    check(new URL(speaker.url()).hostname === '127.0.0.1', `speaker page at ${speaker.url()}`);
    await speaker.fill('#username', USERNAME);
    await speaker.fill('#password', PASSWORD);
    await speaker.click('#signin');
    await speaker.locator('#create-view').waitFor({ timeout: STEP_TIMEOUT });
    // The browser keeps the device cookie that exempts it from the
    // account's sign-in backoff (checked sent at the next sign-in, step 7).
    const device = (await context.cookies(BASE + '/auth/login')).find((c) => c.name === 'pentecost_device');
    check(device && device.httpOnly && device.sameSite === 'Strict', `device cookie after signing in: ${JSON.stringify(device)}`);
    check(!(await context.cookies(BASE + '/sessions')).some((c) => c.name === 'pentecost_device'), 'the device cookie reaches beyond /auth/');
    check(!(await visible(speaker, '#your-sessions')), '"Your sessions" is shown with no session running');
    // No worker serves premium: only standard is offered, and why.
    await waitFor(speaker, () => Array.isArray(window.__PENTECOST_TEST__.tiers), null, 'the tiers to load');
    check(!(await visible(speaker, '#tier-premium')) && await visible(speaker, '#tier-hint'), 'premium offered with no worker serving it');
    await checkA11y(speaker, 'create view');
    await speaker.selectOption('#source', 'en');
    await speaker.click('#create');
    await speaker.locator('#live-view').waitFor({ timeout: STEP_TIMEOUT });
    const code = (await speaker.locator('#code').textContent()).trim();
    check(/^[a-z]+-[a-z]+-\d{3}$/.test(code), `session code ${code}`);

    // 2. The link and QR code carry the LAN address, not 127.0.0.1.
    const first = await link(speaker);
    check(first.href === `${LISTENER_BASES[0]}/listen/${code}`, `listener link ${first.href}, want ${LISTENER_BASES[0]}/listen/${code}`);
    check(first.qr === `/qr/${code}.svg?host=${encodeURIComponent(new URL(LISTENER_BASES[0]).host)}`, `QR code src ${first.qr}`);
    check(!(await visible(speaker, '#link-hint')), 'the "phones cannot open this address" hint is shown for a LAN address');
    check(await visible(speaker, '#link-pick'), 'no address picker with several addresses');
    const options = await speaker.locator('#link-base option').allTextContents();
    check(options.length === LISTENER_BASES.length && options.every((o, i) => o === new URL(LISTENER_BASES[i]).host),
      `picker offers ${options.join(', ')}`);
    result.links.push(first);

    // 3. Picking another address switches the link and the QR code.
    await speaker.selectOption('#link-base', '1');
    await waitFor(speaker, (b) => document.getElementById('share-link').href.startsWith(b), LISTENER_BASES[1], 'the link to switch');
    const second = await link(speaker);
    check(second.href === `${LISTENER_BASES[1]}/listen/${code}`, `picked link ${second.href}`);
    check(second.qr !== first.qr && second.svg !== first.svg, 'the QR code did not change with the address');
    result.links.push(second);
    // A QR code of an address the server did not offer is refused.
    const refused = await speaker.evaluate(async (c) => {
      const r = await fetch(`/qr/${c}.svg?host=evil.example`);
      return { status: r.status, body: await r.json() };
    }, code);
    check(refused.status === 400 && refused.body.code === 'VALIDATION_INVALID_FIELD', `QR of another host: ${JSON.stringify(refused)}`);
    problems.splice(0, problems.length, ...problems.filter((p) => !p.includes('status of 400'))); // Chromium logs the 400 above
    await speaker.selectOption('#link-base', '0');
    await waitFor(speaker, (b) => document.getElementById('share-link').href.startsWith(b), LISTENER_BASES[0], 'the link to switch back');
    await link(speaker);

    await waitState(speaker, 'ready', 'speaker');
    await speaker.click('#golive');
    await waitState(speaker, 'live', 'speaker');
    await checkA11y(speaker, 'live view');
    // The microphone clips for 2 s of every 5: the server warns, calmly.
    await waitFor(speaker, () => 'clipping' in (window.__PENTECOST_TEST__.audioWarnings || {})
      && document.querySelector('#audio-warnings li[data-warning="clipping"]')?.textContent.includes('too loud'), null, 'the clipping warning', 30000);
    await shot(speaker, 'speaker-audio-warning.png', { fullPage: true });
    log('clipping warning shown');
    await shot(speaker, 'speaker-lan-link.png', { fullPage: true });
    log('link and QR code point at', first.href, 'and the picker switches them');

    // 4. The room view: code, QR code, link, and no listeners yet.
    await speaker.click('#room-open');
    await speaker.locator('#room-view').waitFor({ timeout: STEP_TIMEOUT });
    check(!(await visible(speaker, '#live-view')), 'the live view is still shown under the room view');
    check((await speaker.locator('#room-code').textContent()).trim() === code, 'room view code');
    check((await speaker.locator('#room-link').textContent()).trim() === first.href, 'room view link');
    await waitFor(speaker, (src) => {
      const img = document.getElementById('room-qr');
      return img.complete && img.naturalWidth > 0 && img.getAttribute('src') === src;
    }, first.qr, 'the room view QR code');
    check((await speaker.locator('#room-count').textContent()).trim() === '0', 'room count before anyone joined');
    await checkA11y(speaker, 'room view');
    const phoneRoom = await roomFits(speaker, 'room view at 360×740');
    log('room view opened; fullscreen:', await speaker.evaluate(() => document.fullscreenElement?.id || 'no'), 'code font', phoneRoom.font, 'px');

    // 5. Listeners join: the counts by language follow, in the room view
    // and the live view, with whether each language is translated.
    const esListener = await openPage(context, 'listener es', problems);
    await esListener.goto(`${BASE}/listen/${code}?lang=es`);
    await waitFor(speaker, () => document.getElementById('room-count').textContent === '1'
      && document.querySelector('#room-languages li[data-lang="es"] strong')?.textContent === '1', null, 'the room view to count the Spanish listener');
    const enListener = await openPage(context, 'listener en', problems);
    await enListener.goto(`${BASE}/listen/${code}?lang=en`);
    await waitFor(speaker, () => document.getElementById('room-count').textContent === '2'
      && document.querySelector('#room-languages li[data-lang="en"] strong')?.textContent === '1', null, 'the room view to count the English listener');
    await waitFor(speaker, () => {
      const s = window.__PENTECOST_TEST__.languageStatus || {};
      return s.en === 'source' && s.es === 'none';
    }, null, 'English shown as the original, Spanish as not translated');
    await shot(speaker, 'speaker-room.png');

    // Projector size: still one screen, code large enough for the back row.
    await speaker.setViewportSize({ width: 1280, height: 720 });
    const projector = await roomFits(speaker, 'room view at 1280×720');
    // Session codes run to about 25 characters; one line of them at 1280 px.
    check(projector.font >= 64 && projector.codeLines === 1, `the code is ${projector.font} px on ${projector.codeLines} lines at 1280×720`);
    check(projector.qr.bottom <= 720 + 1 && projector.code.top >= 0, 'the room view does not fit 1280×720 without scrolling');
    await shot(speaker, 'speaker-room-projector.png');
    await speaker.setViewportSize({ width: 1920, height: 1080 });
    const fullHD = await roomFits(speaker, 'room view at 1920×1080');
    check(fullHD.font >= 96 && fullHD.codeLines === 1 && fullHD.qr.bottom <= 1081, `at 1920×1080 the code is ${fullHD.font} px, the QR code ends at ${fullHD.qr.bottom}`);
    // The longest code the word lists can make still fits on one line.
    await speaker.evaluate(() => {
      const el = document.getElementById('room-code');
      el.dataset.real = el.textContent;
      el.textContent = 'wholehearted-frankincense-427';
      el.style.setProperty('--chars', '29');
    });
    for (const [width, height, least] of [[1920, 1080, 96], [1280, 720, 64]]) {
      await speaker.setViewportSize({ width, height });
      const r = await roomFits(speaker, `the longest code at ${width}×${height}`);
      check(r.font >= least && r.codeLines === 1 && r.qr.bottom <= height + 1, `the longest code at ${width}×${height}: ${r.font} px on ${r.codeLines} lines`);
    }
    await speaker.evaluate(() => {
      const el = document.getElementById('room-code');
      el.textContent = el.dataset.real;
      el.style.setProperty('--chars', String(el.textContent.length));
    });
    await speaker.setViewportSize({ width: 360, height: 740 });

    // Esc (or the browser leaving full screen) closes the room view.
    await speaker.keyboard.press('Escape');
    await speaker.locator('#live-view').waitFor({ timeout: STEP_TIMEOUT });
    await waitFor(speaker, () => document.getElementById('room-view').hidden && !document.fullscreenElement, null, 'the room view to close');
    log('room view counted 2 listeners by language and closed with Esc');

    // 6. A worker starts producing Spanish: the live view says so.
    await esListener.evaluate(({ secret, sessionId }) => new Promise((resolve, reject) => {
      const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws?role=worker', ['pentecost', 'bearer.' + secret]);
      window.__worker = ws;
      ws.onerror = () => reject(new Error('worker socket failed'));
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.type === 'workerConnected') ws.send(JSON.stringify({ action: 'claimLanguage', sessionId, targetLanguage: 'es' }));
        if (m.type === 'error') reject(new Error('worker: ' + m.code));
        if (m.type === 'languageClaimed') resolve();
      };
    }), { secret: WORKER_SECRET, sessionId: code });
    await waitFor(speaker, () => window.__PENTECOST_TEST__.languageStatus?.es === 'live'
      && document.querySelector('#distribution li[data-lang="es"]')?.dataset.status === 'live', null, 'Spanish to show as translated live');
    const row = await speaker.locator('#distribution li[data-lang="es"] .lang-status').textContent();
    check(row === 'translated, live', `Spanish row says "${row}"`);
    // The worker reports its latency, then a failure: the page says both
    // in words (never an engine's text).
    const report = (st) => esListener.evaluate((m) => window.__worker.send(JSON.stringify(m)),
      { action: 'reportLanguageStatus', sessionId: code, targetLanguage: 'es', ...st });
    await report({ latencyMs: 1200 });
    await waitFor(speaker, () => /^by \S+ · 1\.2 s behind$/.test(document.querySelector('#distribution li[data-lang="es"] .lang-worker')?.textContent || ''),
      null, 'the Spanish worker and its latency');
    await report({ stage: 'translate', errorCode: 'throttled', latencyMs: 5000 });
    await waitFor(speaker, () => {
      const el = document.querySelector('#distribution li[data-lang="es"] .lang-worker');
      return el?.dataset.failing === 'true' && el.textContent === 'failing: the translation service is rate-limiting';
    }, null, 'the Spanish failure in words');
    await shot(speaker, 'speaker-language-failing.png', { fullPage: true });
    log('worker status shown:', await speaker.locator('#distribution li[data-lang="es"] .lang-worker').textContent());
    await esListener.evaluate(() => window.__worker.close());
    await waitFor(speaker, () => window.__PENTECOST_TEST__.languageStatus?.es === 'none', null, 'Spanish to show as not translated once the worker left', 30000);
    log('translation status follows the worker');

    // 7. The speaker's tab closes. A new tab (sessionStorage is per tab)
    // signs in and finds the session under "Your sessions"; a worker that
    // serves premium is connected now, so premium is offered.
    await esListener.evaluate((secret) => new Promise((resolve, reject) => {
      const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws?role=worker', ['pentecost', 'bearer.' + secret]);
      window.__premium = ws;
      ws.onerror = () => reject(new Error('premium worker socket failed'));
      ws.onmessage = (e) => {
        const m = JSON.parse(e.data);
        if (m.type === 'workerConnected') ws.send(JSON.stringify({ action: 'offerLanguages', languages: { en: ['es'] }, tiers: ['standard', 'premium'] }));
        if (m.type === 'error') reject(new Error('premium worker: ' + m.code));
        if (m.type === 'languagesOffered') resolve();
      };
    }), WORKER_SECRET);
    await speaker.close();
    speaker = await openPage(context, 'speaker again', problems);
    await speaker.goto(BASE + '/speak');
    await speaker.locator('#signin-view').waitFor({ timeout: STEP_TIMEOUT });
    await speaker.fill('#username', USERNAME);
    await speaker.fill('#password', PASSWORD);
    const signin = speaker.waitForRequest((r) => r.url() === BASE + '/auth/login' && r.method() === 'POST');
    await speaker.click('#signin');
    const sent = (await (await signin).headerValue('cookie')) || '';
    check(sent.split(/;\s*/).includes(`pentecost_device=${device.value}`), `second sign-in sent cookies "${sent}", want the device cookie`);
    log('the device cookie from the first sign-in went with the second');
    await speaker.locator('#your-sessions').waitFor({ timeout: STEP_TIMEOUT });
    const listed = await speaker.locator('#session-list .session-code').allTextContents();
    check(listed.length === 1 && listed[0] === code, `"Your sessions" lists ${listed.join(', ')}, want ${code}`);
    await waitFor(speaker, () => window.__PENTECOST_TEST__.tiers?.includes('premium'), null, 'premium to be offered');
    check(await visible(speaker, '#tier-premium') && !(await visible(speaker, '#tier-hint')), 'premium not offered while a worker serves it');
    await esListener.evaluate(() => window.__premium.close());
    await checkA11y(speaker, 'create view with your sessions');
    await shot(speaker, 'speaker-sessions.png', { fullPage: true });
    await speaker.click(`#session-list button[data-session="${code}"]`);
    await speaker.locator('#live-view').waitFor({ timeout: STEP_TIMEOUT });
    check((await speaker.locator('#code').textContent()).trim() === code, 'Resume opened another session');
    await waitState(speaker, 'live', 'speaker after Resume');
    await waitFor(speaker, () => document.getElementById('listener-count').textContent === '2', null, 'the resumed page to count both listeners');
    check((await link(speaker)).href === first.href, 'the resumed page links elsewhere');
    log('"Your sessions" found', code, 'and Resume reattached');

    // Ending it takes it off the list. (The listeners leave first: what
    // their page does at the end is browser.mjs's to test.)
    await esListener.close();
    await enListener.close();
    await speaker.click('#end');
    await speaker.click('#confirm-end');
    await speaker.locator('#ended-view').waitFor({ timeout: STEP_TIMEOUT });
    await speaker.click('#new-session');
    await speaker.locator('#create-view').waitFor({ timeout: STEP_TIMEOUT });
    await waitFor(speaker, () => Array.isArray(window.__PENTECOST_TEST__.yourSessions) && window.__PENTECOST_TEST__.yourSessions.length === 0, null, 'the ended session to leave "Your sessions"');
    check(!(await visible(speaker, '#your-sessions')), '"Your sessions" still shown with none running');

    writeFileSync(RESULT, JSON.stringify(result));
    check(problems.length === 0, 'console errors:\n' + problems.join('\n'));
  } finally {
    await context.close();
  }
}

runScript(run, mkdtempSync(join(tmpdir(), 'pentecost-speaker-')));
