// Admin page: an admin signs in (the speaker page's sign-in, shared through
// signin.js), sees every speaker's live sessions with their listeners by
// language and which languages are translated, refreshed every few
// seconds, and can end any of them; manages the accounts: add (a password
// made by the server and shown once, or given), reset a password, make an
// account admin or speaker, remove. Everything goes through the admin API,
// which refuses any account that is not an admin (FORBIDDEN): the page then
// says so and offers another sign-in.

import {
  adminAccounts, adminAddAccount, adminEndSession, adminRemoveAccount, adminSessions, adminSetPassword, adminSetRole,
} from './pentecost.js';
import { $, languages, show, testHooks } from './ui.js';
import { forgetToken, signIn, signedInUser, validToken } from './signin.js';
import { setLanguage, t, uiLanguage } from './i18n.js';

const POLL_MS = 5000;

// Texts by state, each key written out so that the catalogue test finds it.
const STATE_TEXT = { live: () => t('admin.stateLive'), away: () => t('admin.stateAway'), paused: () => t('admin.statePaused') };
const LANG_TEXT = { source: () => t('admin.langSource'), live: () => t('admin.langLive'), none: () => t('admin.langNone') };
const views = ['loading', 'signin-view', 'refused-view', 'admin-view'];
const langNames = new Map();
let pollTimer = 0;
let active = false; // the admin view is shown and its data wanted
let signOutAfterSecret = ''; // a sign-out message held while a password is on screen

function view(id) {
  for (const v of views) show($(v), v === id);
  active = id === 'admin-view';
  if (!active) clearTimeout(pollTimer);
  if (testHooks) testHooks.view = id;
}

function fail(el, message) {
  el.textContent = message;
  show(el, true);
}

function errorText(err) {
  switch (err.code) {
    case 'NETWORK_ERROR': return t('admin.errNetwork');
    case 'RATE_LIMIT_EXCEEDED': return t('admin.errRate', { seconds: err.retryAfter || 60 });
    default: return err.message;
  }
}

// authFailed handles an answer that means this page cannot go on as
// signed in: an expired or revoked token, or an account that is not (or
// no longer) an admin. It returns whether it did.
function authFailed(err) {
  if (err.status === 401) {
    forgetToken();
    if (!$('secret').hidden) {
      // The admin reset its own password: keep the new one on screen.
      signOutAfterSecret = t('admin.expired');
      return true;
    }
    showSignIn(t('admin.expired'));
    return true;
  }
  if (err.code === 'FORBIDDEN') {
    showRefused();
    return true;
  }
  return false;
}

// --- signing in -------------------------------------------------------------

function showSignIn(message) {
  view('signin-view');
  show($('signin-error'), false);
  if (message) fail($('signin-error'), message);
  $('username').focus();
}

function showRefused() {
  view('refused-view');
  $('refused-text').textContent = t('admin.refusedText', { name: signedInUser() || '?' });
  $('other-account').focus();
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('signin-error');
  show(err, false);
  const username = $('username').value.trim();
  const password = $('password').value;
  if (!username || !password) {
    fail(err, t('admin.errEmptySignin'));
    return;
  }
  $('signin').disabled = true;
  try {
    const r = await signIn(username, password);
    $('password').value = '';
    if (r.user?.role && r.user.role !== 'admin') {
      showRefused();
      return;
    }
    await enter();
  } catch (e2) {
    fail(err, e2.code === 'AUTH_INVALID_CREDENTIALS' ? t('admin.errCredentials') : errorText(e2));
  } finally {
    $('signin').disabled = false;
  }
});

$('other-account').addEventListener('click', () => {
  forgetToken();
  showSignIn();
});

$('signout').addEventListener('click', () => {
  forgetToken();
  showSignIn();
});

// enter shows the admin view once the admin API has answered.
async function enter() {
  const token = validToken();
  if (!token) {
    showSignIn();
    return;
  }
  try {
    const [accounts, sessions] = await Promise.all([adminAccounts(token), adminSessions(token)]);
    view('admin-view');
    $('user-name').textContent = signedInUser();
    renderAccounts(accounts.accounts || []);
    renderSessions(sessions);
    schedulePoll();
  } catch (err) {
    if (authFailed(err)) return;
    showSignIn(errorText(err));
  }
}

// --- a list updated in place ----------------------------------------------------

// syncList makes list show one element per item, in order, reusing the
// element of the same key, so that a refresh neither moves the reader nor
// takes the keyboard focus away from a button that is still there.
function syncList(list, items, key, create, update) {
  const old = new Map([...list.children].map((el) => [el.dataset.key, el]));
  items.forEach((item, i) => {
    const k = key(item);
    let el = old.get(k);
    old.delete(k);
    if (!el) {
      el = create(item);
      el.dataset.key = k;
    }
    update(el, item);
    if (list.children[i] !== el) list.insertBefore(el, list.children[i] || null);
  });
  for (const el of old.values()) el.remove();
}

function button(text, className, onClick) {
  const b = document.createElement('button');
  b.type = 'button';
  b.className = className;
  b.textContent = text;
  b.addEventListener('click', onClick);
  return b;
}

function span(className) {
  const s = document.createElement('span');
  s.className = className;
  return s;
}

function langName(code) {
  return langNames.get(code) || (code || '').toUpperCase();
}

function clock(ms) {
  return ms ? new Date(ms).toLocaleTimeString(uiLanguage(), { hour: '2-digit', minute: '2-digit' }) : '';
}

function day(ms) {
  return ms ? new Date(ms).toLocaleDateString(uiLanguage(), { year: 'numeric', month: 'short', day: 'numeric' }) : '';
}

// --- live sessions ----------------------------------------------------------------

function schedulePoll() {
  clearTimeout(pollTimer);
  if (active) pollTimer = setTimeout(poll, POLL_MS);
}

async function poll() {
  if (!active) return;
  if (document.hidden) {
    schedulePoll(); // resumes at once when the tab is shown again
    return;
  }
  await refreshSessions();
  schedulePoll();
}

document.addEventListener('visibilitychange', () => {
  if (!document.hidden && active) refreshSessions().then(schedulePoll);
});

async function refreshSessions() {
  const token = validToken();
  if (!token) {
    showSignIn(t('admin.expired'));
    return;
  }
  try {
    renderSessions(await adminSessions(token));
    show($('sessions-error'), false);
  } catch (err) {
    if (authFailed(err)) return;
    fail($('sessions-error'), t('admin.errSessions', { error: errorText(err) }));
  }
}

$('sessions-refresh').addEventListener('click', () => refreshSessions().then(schedulePoll));

function renderSessions(data) {
  const sessions = data.sessions || [];
  $('session-total').textContent = '(' + (data.total ?? sessions.length) + ')';
  syncList($('session-list'), sessions, (s) => s.session.sessionId, createSessionItem, updateSessionItem);
  show($('sessions-empty'), sessions.length === 0);
  const more = (data.total || 0) > sessions.length;
  show($('sessions-more'), more);
  if (more) $('sessions-more').textContent = t('admin.moreSessions', { shown: sessions.length, total: data.total });
  $('sessions-updated').textContent = t('admin.updated', { time: new Date(data.timestamp || Date.now()).toLocaleTimeString(uiLanguage()) });
  renderWorkers(data.workers);
  if (testHooks) {
    testHooks.polls = (testHooks.polls || 0) + 1;
    testHooks.sessions = sessions.map((s) => ({
      id: s.session.sessionId, speaker: s.session.speakerId, byLanguage: s.listeners.byLanguage,
      translations: s.translations, speakerConnected: s.speakerConnected,
    }));
  }
}

function renderWorkers(workers) {
  const langs = Object.entries(workers?.languages || {}).filter(([, targets]) => targets.length > 0);
  if (!langs.length) {
    $('workers').textContent = t('admin.noWorkers');
    return;
  }
  const offers = langs.sort(([a], [b]) => a.localeCompare(b))
    .map(([src, targets]) => langName(src) + ' → ' + targets.map(langName).join(', '));
  $('workers').textContent = t('admin.workers', { offers: offers.join('; ') });
}

function createSessionItem(s) {
  const li = document.createElement('li');
  li.className = 'admin-item';
  const head = document.createElement('div');
  head.className = 'item-head';
  const code = span('mono item-title');
  const badge = span('badge');
  head.append(code, badge);
  const meta = document.createElement('p');
  meta.className = 'hint item-meta';
  const count = document.createElement('p');
  count.className = 'item-count';
  const langs = document.createElement('ul');
  langs.className = 'lang-list';
  const end = button(t('admin.end'), 'danger end', () => confirmEnd(li.dataset.key, end));
  li.append(head, meta, count, langs, end);
  return li;
}

function updateSessionItem(li, s) {
  const sess = s.session;
  const [head, meta, count, langs, end] = li.children;
  head.children[0].textContent = sess.sessionId;
  const paused = sess.status === 'paused' || sess.broadcastState?.isPaused;
  const state = paused ? 'paused' : s.speakerConnected ? 'live' : 'away';
  head.children[1].dataset.state = state;
  head.children[1].textContent = STATE_TEXT[state]();
  meta.textContent = t('admin.sessionMeta', { speaker: sess.speakerId || '?', language: langName(sess.sourceLanguage), time: clock(sess.createdAt) });
  const total = s.listeners?.total || 0;
  count.textContent = total === 1 ? t('admin.oneListener') : t('admin.listeners', { count: total });
  const rows = Object.entries(s.listeners?.byLanguage || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  langs.replaceChildren(...rows.map(([lang, n]) => {
    const row = document.createElement('li');
    const status = lang === sess.sourceLanguage ? 'source' : (s.translations || []).includes(lang) ? 'live' : 'none';
    row.className = 'lang-row';
    row.dataset.status = status;
    row.dataset.lang = lang;
    const name = span('lang-name');
    name.textContent = langName(lang);
    const num = span('lang-count');
    num.textContent = String(n);
    const note = span('lang-status');
    note.textContent = LANG_TEXT[status]();
    row.append(name, num, note);
    return row;
  }));
  end.setAttribute('aria-label', t('admin.endLabel', { id: sess.sessionId }));
}

async function confirmEnd(id, b) {
  if (!await confirmAction(t('admin.endTitle', { id }), t('admin.endText'), t('admin.end'))) return;
  const token = validToken();
  b.disabled = true;
  try {
    await adminEndSession(token, id);
  } catch (err) {
    if (authFailed(err)) return;
    if (err.code !== 'SESSION_ENDED' && err.code !== 'SESSION_NOT_FOUND') {
      fail($('sessions-error'), t('admin.errEnd', { id, error: errorText(err) }));
    }
  } finally {
    b.disabled = false;
  }
  await refreshSessions();
  // The item is gone; the keyboard goes on from the section.
  if (!b.isConnected) $('sessions-refresh').focus();
}

// --- accounts -----------------------------------------------------------------------

// refreshAccounts reloads the list; an error shown above it stays (the
// next change clears it).
async function refreshAccounts() {
  try {
    renderAccounts((await adminAccounts(validToken())).accounts || []);
  } catch (err) {
    if (authFailed(err)) return;
    fail($('accounts-error'), errorText(err));
  }
}

function renderAccounts(accounts) {
  syncList($('account-list'), accounts, (a) => a.name, createAccountItem, updateAccountItem);
  if (testHooks) testHooks.accounts = accounts.map((a) => ({ name: a.name, role: a.role }));
}

function createAccountItem(a) {
  const li = document.createElement('li');
  li.className = 'admin-item';
  const head = document.createElement('div');
  head.className = 'item-head';
  head.append(span('item-title'), span('badge'));
  const meta = document.createElement('p');
  meta.className = 'hint item-meta';
  const actions = document.createElement('div');
  actions.className = 'buttons';
  const name = () => li.dataset.key;
  actions.append(
    button(t('admin.reset'), 'secondary small reset', (e) => resetPassword(name(), e.currentTarget)),
    button('', 'secondary small role', (e) => toggleRole(name(), li.dataset.role, e.currentTarget)),
    button(t('admin.remove'), 'danger small remove', (e) => removeAccount(name(), e.currentTarget)),
  );
  li.append(head, meta, actions);
  return li;
}

function updateAccountItem(li, a) {
  const [head, meta, actions] = li.children;
  const me = a.name === signedInUser();
  li.dataset.role = a.role;
  head.children[0].textContent = me ? t('admin.you', { name: a.name }) : a.name;
  head.children[1].dataset.role = a.role;
  head.children[1].textContent = t(a.role === 'admin' ? 'admin.roleAdmin' : 'admin.roleSpeaker');
  meta.textContent = t('admin.created', { date: day(a.createdAt) });
  const [reset, role, remove] = actions.children;
  reset.setAttribute('aria-label', t('admin.resetLabel', { name: a.name }));
  role.textContent = t(a.role === 'admin' ? 'admin.makeSpeaker' : 'admin.makeAdmin');
  role.setAttribute('aria-label', t(a.role === 'admin' ? 'admin.makeSpeakerLabel' : 'admin.makeAdminLabel', { name: a.name }));
  remove.setAttribute('aria-label', t('admin.removeLabel', { name: a.name }));
}

// accountAction runs one change of an account, shows a refusal (the last
// admin, for one) above the list, and reloads the list.
async function accountAction(b, run) {
  show($('accounts-error'), false);
  b.disabled = true;
  try {
    return await run(validToken());
  } catch (err) {
    if (authFailed(err)) return null;
    fail($('accounts-error'), err.code === 'CONFLICT' ? t('admin.errLastAdmin') : errorText(err));
    return null;
  } finally {
    b.disabled = false;
    if (active) await refreshAccounts();
  }
}

async function resetPassword(name, b) {
  if (!await confirmAction(t('admin.resetTitle', { name }), t('admin.resetText'), t('admin.reset'))) return;
  const r = await accountAction(b, (token) => adminSetPassword(token, name));
  if (r?.password) showSecret(t('admin.secretReset', { name }), r.password);
}

async function toggleRole(name, role, b) {
  const next = role === 'admin' ? 'speaker' : 'admin';
  if (name === signedInUser() && next !== 'admin'
    && !await confirmAction(t('admin.demoteSelfTitle'), t('admin.demoteSelfText'), t('admin.makeSpeaker'))) return;
  await accountAction(b, (token) => adminSetRole(token, name, next));
  if (name === signedInUser() && next !== 'admin' && active) showRefused();
}

async function removeAccount(name, b) {
  const self = name === signedInUser();
  if (!await confirmAction(t('admin.removeTitle', { name }), t(self ? 'admin.removeSelfText' : 'admin.removeText'), t('admin.remove'))) return;
  await accountAction(b, (token) => adminRemoveAccount(token, name));
  if (!b.isConnected && active) $('accounts-title').focus();
}

$('add-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('add-error');
  show(err, false);
  for (const id of ['add-name', 'add-password']) $(id).removeAttribute('aria-invalid');
  const name = $('add-name').value.trim();
  if (!name) {
    fail(err, t('admin.errName'));
    $('add-name').setAttribute('aria-invalid', 'true');
    $('add-name').focus();
    return;
  }
  $('add').disabled = true;
  try {
    const r = await adminAddAccount(validToken(), { name, role: $('add-role').value, password: $('add-password').value });
    $('add-name').value = '';
    $('add-password').value = '';
    $('add-role').value = 'speaker';
    await refreshAccounts();
    if (r.password) showSecret(t('admin.secretNew', { name: r.account.name }), r.password);
    else $('add-name').focus();
  } catch (e2) {
    if (authFailed(e2)) return;
    const field = e2.details?.field;
    const input = field === 'password' ? $('add-password') : $('add-name');
    let message = errorText(e2);
    if (e2.code === 'CONFLICT') message = t('admin.errTaken', { name });
    else if (field === 'name') message = t('admin.errNameRule');
    else if (field === 'password') message = t('admin.errPasswordRule');
    fail(err, message);
    input.setAttribute('aria-invalid', 'true');
    input.focus();
  } finally {
    $('add').disabled = false;
  }
});

// --- a password shown once ---------------------------------------------------------

function showSecret(title, password) {
  $('secret-title').textContent = title;
  $('secret-value').textContent = password;
  $('secret-status').textContent = '';
  show($('secret'), true);
  $('secret').scrollIntoView({ block: 'nearest' });
  $('secret-copy').focus();
  if (testHooks) testHooks.secret = password;
}

$('secret-copy').addEventListener('click', async () => {
  try {
    await navigator.clipboard.writeText($('secret-value').textContent);
    $('secret-status').textContent = t('admin.copied');
  } catch {
    // No clipboard (plain HTTP at a LAN address): select it for copying by hand.
    getSelection().selectAllChildren($('secret-value'));
    $('secret-status').textContent = t('admin.copyByHand');
  }
});

$('secret-done').addEventListener('click', () => {
  $('secret-value').textContent = '';
  show($('secret'), false);
  if (signOutAfterSecret) {
    const message = signOutAfterSecret;
    signOutAfterSecret = '';
    showSignIn(message);
    return;
  }
  $('add-name').focus();
});

// --- confirmation -------------------------------------------------------------------

// confirmAction asks before a change that cannot be undone; Cancel has the
// focus first, and Esc cancels.
function confirmAction(title, text, ok) {
  const d = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  $('confirm-ok').textContent = ok;
  d.returnValue = '';
  return new Promise((resolve) => {
    d.addEventListener('close', () => resolve(d.returnValue === 'ok'), { once: true });
    d.showModal();
    $('confirm-cancel').focus();
  });
}

// --- start ------------------------------------------------------------------------

async function init() {
  await setLanguage(navigator.languages || [navigator.language]);
  try {
    for (const l of await languages()) langNames.set(l.code, l.nativeName || l.name);
  } catch { /* codes are shown instead */ }
  if (!validToken()) {
    showSignIn();
    return;
  }
  await enter();
}

init();
