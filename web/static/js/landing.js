// Landing page: type a session code, pick a language, join.

import { getSession, normalizeSessionId } from './pentecost.js';
import { $, fillLanguages, languages, preferredLanguage, show, store, testHooks } from './ui.js';
import { setLanguage, t, uiLanguage } from './i18n.js';

const form = $('join-form');
const code = $('code');
const lang = $('lang');
const error = $('code-error');

function fail(message) {
  error.textContent = message;
  show(error);
  code.setAttribute('aria-invalid', 'true');
  code.focus();
}

// The interface follows the language picked, when it has a catalogue,
// else the browser's languages.
async function translatePage(code) {
  await setLanguage([code, ...(navigator.languages || [navigator.language])]);
  if (testHooks) testHooks.uiLanguage = uiLanguage();
}

async function init() {
  const fromQuery = new URLSearchParams(location.search).get('code');
  if (fromQuery) code.value = fromQuery;
  const early = translatePage(store.get('pentecost.lang', localStorage) || '');
  try {
    const list = await languages();
    fillLanguages(lang, list, { selected: preferredLanguage(list) });
    await early;
    await translatePage(lang.value);
  } catch {
    await early;
    $('lang-error').dataset.i18n = 'landing.languagesFailed';
    $('lang-error').textContent = t('landing.languagesFailed');
    show($('lang-error'));
  }
}

lang.addEventListener('change', () => translatePage(lang.value));

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  show(error, false);
  code.removeAttribute('aria-invalid');
  const id = normalizeSessionId(code.value);
  if (!id) {
    fail(t(code.value.trim() ? 'landing.malformed' : 'landing.empty'));
    return;
  }
  const button = $('join');
  button.disabled = true;
  try {
    const s = await getSession(id);
    if (s.status === 'ended') {
      fail(t('landing.ended'));
      return;
    }
  } catch (err) {
    if (err.code === 'SESSION_NOT_FOUND') {
      fail(t('landing.notFound'));
      return;
    }
    if (err.code === 'INVALID_SESSION_ID') {
      fail(t('landing.invalid'));
      return;
    }
    // Anything else (a network hiccup): the listener page will retry.
  } finally {
    button.disabled = false;
  }
  if (lang.value) store.set('pentecost.lang', lang.value, localStorage);
  const q = lang.value ? '?lang=' + encodeURIComponent(lang.value) : '';
  location.assign('/listen/' + id + q);
});

init();
