// Helpers the three pages share: page configuration, language pickers,
// storage that never throws, and the hooks end-to-end tests read.

import { fetchLanguages } from './pentecost.js';

/** Returns the element with the given id. */
export const $ = (id) => document.getElementById(id);

/** The server's settings for the pages, from <meta name="pentecost-config">. */
export function pageConfig() {
  const meta = document.querySelector('meta[name="pentecost-config"]');
  try {
    return { publicUrl: '', signInLinks: [], ...JSON.parse(meta?.content || '{}') };
  } catch {
    return { publicUrl: '', signInLinks: [] };
  }
}

/** Base URL listeners use: the configured public URL or this page's origin. */
export function publicBase() {
  return pageConfig().publicUrl || location.origin;
}

/** The listener link of a session. */
export function listenerLink(sessionId) {
  return publicBase() + '/listen/' + sessionId;
}

let languagesPromise = null;

/** The server's languages, fetched once per page. */
export function languages() {
  languagesPromise ??= fetchLanguages().catch((err) => {
    languagesPromise = null;
    throw err;
  });
  return languagesPromise;
}

/**
 * Fills a <select> with languages, each shown in its own name (with the
 * English name for those whose script the reader may not know). first, if
 * given, is listed first with a note, e.g. the session's original language.
 */
export function fillLanguages(select, list, { selected, first, firstNote } = {}) {
  select.replaceChildren();
  const ordered = [...list].sort((a, b) => a.nativeName.localeCompare(b.nativeName));
  if (first) {
    const i = ordered.findIndex((l) => l.code === first);
    if (i > 0) ordered.unshift(...ordered.splice(i, 1));
  }
  for (const l of ordered) {
    const o = document.createElement('option');
    o.value = l.code;
    o.lang = l.code;
    let text = l.nativeName;
    if (l.name !== l.nativeName) text += ' — ' + l.name;
    if (l.code === first && firstNote) text += ' ' + firstNote;
    o.textContent = text;
    select.append(o);
  }
  if (selected && list.some((l) => l.code === selected)) select.value = selected;
}

/** The language to preselect: saved choice, then the browser's languages. */
export function preferredLanguage(list, fallback = 'en') {
  const codes = new Set(list.map((l) => l.code));
  const saved = store.get('pentecost.lang', localStorage);
  if (saved && codes.has(saved)) return saved;
  for (const tag of navigator.languages || [navigator.language]) {
    const code = String(tag || '').slice(0, 2).toLowerCase();
    if (codes.has(code)) return code;
  }
  return fallback;
}

/** Web storage that never throws (private modes, disabled storage). */
export const store = {
  get(key, area = sessionStorage) {
    try { return area.getItem(key); } catch { return null; }
  },
  set(key, value, area = sessionStorage) {
    try { area.setItem(key, value); } catch { /* storage unavailable */ }
  },
  remove(key, area = sessionStorage) {
    try { area.removeItem(key); } catch { /* storage unavailable */ }
  },
};

/**
 * Test hooks: present only when a test has defined window.__PENTECOST_TEST__
 * before the page loaded; the pages record into it what tests compare.
 */
export const testHooks = globalThis.__PENTECOST_TEST__ || null;

/** Shows or hides an element. */
export function show(el, visible = true) {
  el.hidden = !visible;
}
