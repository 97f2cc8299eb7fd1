// Landing page: type a session code, pick a language, join.

import { getSession, normalizeSessionId } from './pentecost.js';
import { $, fillLanguages, languages, preferredLanguage, show, store } from './ui.js';

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

async function init() {
  const fromQuery = new URLSearchParams(location.search).get('code');
  if (fromQuery) code.value = fromQuery;
  try {
    const list = await languages();
    fillLanguages(lang, list, { selected: preferredLanguage(list) });
  } catch {
    $('lang-error').textContent = 'Languages could not be loaded. Check your connection and reload.';
    show($('lang-error'));
  }
}

form.addEventListener('submit', async (e) => {
  e.preventDefault();
  show(error, false);
  code.removeAttribute('aria-invalid');
  const id = normalizeSessionId(code.value);
  if (!id) {
    fail(code.value.trim()
      ? 'That does not look like a session code. It has two words and a number, like “golden eagle 427”.'
      : 'Type the session code first.');
    return;
  }
  const button = $('join');
  button.disabled = true;
  try {
    const s = await getSession(id);
    if (s.status === 'ended') {
      fail('That session has ended.');
      return;
    }
  } catch (err) {
    if (err.code === 'SESSION_NOT_FOUND') {
      fail('No session has that code. Check it with the speaker.');
      return;
    }
    if (err.code === 'INVALID_SESSION_ID') {
      fail('That does not look like a session code.');
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
