// Browser test of the admin page (web/e2e_admin_test.go starts the server,
// a speaker's session with a listener in Spanish and one in French, and a
// worker translating into Spanish, then runs it): an admin signs in at
// /admin on a 360 px phone, sees the session with its listeners by
// language and which are translated, adds a speaker account (password made
// by the server, shown once, good for signing in), resets its password
// (the old one stops working, the new one works), ends the session after a
// confirmation, and removes the account with the keyboard alone (Esc
// cancels the confirmation, Enter on its button confirms). A speaker
// account signing in at /admin is told it is not an administrator.
// Screenshots at 360×740.
//
//   PENTECOST_URL=http://127.0.0.1:8080 PENTECOST_ADMIN_USERNAME=admin PENTECOST_ADMIN_PASSWORD=… \
//   PENTECOST_USERNAME=speaker PENTECOST_PASSWORD=… PENTECOST_SESSION=golden-eagle-427 node web/e2e/admin.mjs

import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SHOTS, STEP_TIMEOUT, check, checkA11y, launch, log, openPage, runScript, shot, waitFor } from './lib.mjs';

const BASE = process.env.PENTECOST_URL;
const ADMIN = process.env.PENTECOST_ADMIN_USERNAME;
const ADMIN_PASSWORD = process.env.PENTECOST_ADMIN_PASSWORD;
const SPEAKER = process.env.PENTECOST_USERNAME;
const SPEAKER_PASSWORD = process.env.PENTECOST_PASSWORD;
const SESSION = process.env.PENTECOST_SESSION;

if (!BASE || !ADMIN || !ADMIN_PASSWORD || !SPEAKER || !SPEAKER_PASSWORD || !SESSION) {
  console.error('PENTECOST_URL, PENTECOST_ADMIN_USERNAME, PENTECOST_ADMIN_PASSWORD, PENTECOST_USERNAME, PENTECOST_PASSWORD and PENTECOST_SESSION are required');
  process.exit(2);
}

// signInStatus signs in over the API, as any client would, and returns the
// status: 200 for a good password.
async function signInStatus(username, password) {
  const r = await fetch(BASE + '/auth/login', {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ username, password }),
  });
  return r.status;
}

const hooks = (page) => page.evaluate(() => window.__PENTECOST_TEST__);
const item = (page, list, key) => page.locator(`#${list} > li[data-key="${key}"]`);

// fitsWidth checks that the page does not scroll sideways at its width.
async function fitsWidth(page, what) {
  const r = await page.evaluate(() => ({ scroll: document.documentElement.scrollWidth, width: innerWidth }));
  check(r.scroll <= r.width, `${what}: the page is ${r.scroll} px wide in a ${r.width} px window`);
}

// secret waits for the password shown once and returns it, then closes it.
async function secret(page, what) {
  await page.locator('#secret').waitFor({ timeout: STEP_TIMEOUT });
  const value = (await page.locator('#secret-value').textContent()).trim();
  check(value.length >= 20, `${what}: the password shown is ${JSON.stringify(value)}`);
  return value;
}

async function run(work) {
  mkdirSync(SHOTS, { recursive: true });
  const context = await launch(join(work, 'profile'));
  const problems = [];
  try {
    await context.addInitScript(() => { window.__PENTECOST_TEST__ = {}; });

    // 1. The admin signs in; the session shows with its listeners.
    // Chromium logs the refusals this test asks for: the last admin kept
    // (409) and a speaker's token on the admin API (403).
    const page = await openPage(context, 'admin', problems, (text) => /status of (403|409)\b/.test(text));
    await page.goto(BASE + '/admin');
    await page.locator('#signin-view').waitFor({ timeout: STEP_TIMEOUT });
    await page.fill('#username', ADMIN);
    await page.fill('#password', ADMIN_PASSWORD);
    await page.click('#signin');
    await page.locator('#admin-view').waitFor({ timeout: STEP_TIMEOUT });
    await waitFor(page, ({ id }) => {
      const s = (window.__PENTECOST_TEST__.sessions || []).find((x) => x.id === id);
      return s && s.byLanguage.es === 1 && s.byLanguage.fr === 1 && s.translations.includes('es');
    }, { id: SESSION }, 'the session with a listener in Spanish and one in French');
    const row = (lang) => item(page, 'session-list', SESSION).locator(`.lang-row[data-lang="${lang}"]`);
    check(await row('es').getAttribute('data-status') === 'live', 'Spanish is not shown as translated');
    check(await row('fr').getAttribute('data-status') === 'none', 'French is not shown as untranslated');
    check((await item(page, 'session-list', SESSION).textContent()).includes(SPEAKER), 'the session does not name its speaker');
    check((await page.locator('#workers').textContent()).includes('Español'), `the workers line: ${await page.locator('#workers').textContent()}`);
    await checkA11y(page, 'admin view');
    await fitsWidth(page, 'admin view');
    await shot(page, 'admin.png');
    await shot(page, 'admin-full.png', { fullPage: true });
    log('admin signed in; the session shows es (translated) and fr (not)');

    // The list refreshes by itself.
    const polls = (await hooks(page)).polls;
    await waitFor(page, (n) => window.__PENTECOST_TEST__.polls > n, polls, 'the sessions to refresh by themselves', 15000);

    // 2. A speaker account with a password made by the server.
    await page.fill('#add-name', 'deacon');
    await page.click('#add');
    const first = await secret(page, 'new account');
    check(await page.evaluate(() => document.activeElement?.id) === 'secret-copy', 'the focus is not on Copy after adding');
    await shot(page, 'admin-password.png');
    await page.click('#secret-done');
    check(!(await page.locator('#secret').isVisible()), 'the password is still shown after Done');
    await waitFor(page, () => (window.__PENTECOST_TEST__.accounts || []).some((a) => a.name === 'deacon' && a.role === 'speaker'), null, 'deacon listed as a speaker');
    check(await signInStatus('deacon', first) === 200, 'the generated password does not sign in');
    log('account added; its password signs in');

    // 3. Its password reset, after a confirmation.
    await item(page, 'account-list', 'deacon').locator('button.reset').click();
    await page.locator('#confirm-dialog').waitFor({ timeout: STEP_TIMEOUT });
    check((await page.locator('#confirm-title').textContent()).includes('deacon'), 'the confirmation does not name the account');
    await page.click('#confirm-ok');
    const second = await secret(page, 'reset');
    check(second !== first, 'the reset gave the same password');
    await page.click('#secret-done');
    check(await signInStatus('deacon', first) === 401, 'the old password still signs in after the reset');
    check(await signInStatus('deacon', second) === 200, 'the new password does not sign in');
    log('password reset; the new one signs in, the old one does not');

    // 4. The session ended, after a confirmation; it leaves the list.
    await item(page, 'session-list', SESSION).locator('button.end').click();
    await page.locator('#confirm-dialog').waitFor({ timeout: STEP_TIMEOUT });
    await page.click('#confirm-cancel');
    check(await item(page, 'session-list', SESSION).count() === 1, 'Cancel ended the session');
    await item(page, 'session-list', SESSION).locator('button.end').click();
    await page.click('#confirm-ok');
    await waitFor(page, (id) => !(window.__PENTECOST_TEST__.sessions || []).some((x) => x.id === id), SESSION, 'the session to leave the list');
    check(await page.locator('#sessions-empty').isVisible(), '"No session is live" is not shown');
    log('session ended from the admin page');

    // 5. The account removed with the keyboard: Esc cancels, Enter confirms.
    await item(page, 'account-list', 'deacon').locator('button.remove').focus();
    await page.keyboard.press('Enter');
    await page.locator('#confirm-dialog').waitFor({ timeout: STEP_TIMEOUT });
    check(await page.evaluate(() => document.activeElement?.id) === 'confirm-cancel', 'the confirmation does not start on Cancel');
    await page.keyboard.press('Escape');
    await page.locator('#confirm-dialog').waitFor({ state: 'hidden', timeout: STEP_TIMEOUT });
    check(await item(page, 'account-list', 'deacon').count() === 1, 'Esc removed the account');
    await item(page, 'account-list', 'deacon').locator('button.remove').focus();
    await page.keyboard.press('Enter');
    await page.locator('#confirm-dialog').waitFor({ timeout: STEP_TIMEOUT });
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement?.id) === 'confirm-ok', 'Tab does not reach the confirm button');
    await page.keyboard.press('Enter');
    await waitFor(page, () => !(window.__PENTECOST_TEST__.accounts || []).some((a) => a.name === 'deacon'), null, 'deacon to leave the list');
    check(await signInStatus('deacon', second) === 401, 'a removed account still signs in');
    // The last admin stays.
    await item(page, 'account-list', ADMIN).locator('button.remove').click();
    await page.click('#confirm-ok');
    await page.locator('#accounts-error').waitFor({ timeout: STEP_TIMEOUT });
    check((await page.locator('#accounts-error').textContent()).includes('last admin'), 'no word on the last admin');
    check(await item(page, 'account-list', ADMIN).count() === 1, 'the last admin was removed');
    log('account removed from the keyboard; the last admin stays');

    // 6. A speaker account is told it is not an administrator.
    await page.click('#signout');
    await page.locator('#signin-view').waitFor({ timeout: STEP_TIMEOUT });
    await page.fill('#username', SPEAKER);
    await page.fill('#password', SPEAKER_PASSWORD);
    await page.click('#signin');
    await page.locator('#refused-view').waitFor({ timeout: STEP_TIMEOUT });
    const told = await page.locator('#refused-text').textContent();
    check(told.includes(SPEAKER) && told.includes('not an administrator'), `the refusal says: ${told}`);
    check(!(await page.locator('#admin-view').isVisible()), 'the admin view is shown to a speaker');
    await checkA11y(page, 'refused view');
    await fitsWidth(page, 'refused view');
    await shot(page, 'admin-refused.png');
    // The same tab's token, with the page reloaded: the server refuses it too.
    await page.reload();
    await page.locator('#refused-view').waitFor({ timeout: STEP_TIMEOUT });
    await page.click('#other-account');
    await page.locator('#signin-view').waitFor({ timeout: STEP_TIMEOUT });
    log('a speaker is refused with a clear message');

    check(problems.length === 0, `console problems:\n${problems.join('\n')}`);
  } finally {
    await context.close();
  }
}

runScript(run, mkdtempSync(join(tmpdir(), 'pentecost-admin-e2e-')));
