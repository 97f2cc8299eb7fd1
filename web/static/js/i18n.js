// The pages' interface strings, from one plain JSON catalogue per language
// in /static/i18n/ (see its README.md): index.json lists the catalogues
// and their writing direction; {code}.json maps keys to strings with {name}
// placeholders. English is always loaded too, so a key a catalogue lacks
// still shows something.

const BASE = new URL('../i18n/', import.meta.url);

let indexPromise = null;
const catalogues = new Map(); // code -> Promise<object>
let strings = {}; // the current language's
let english = {};
let current = 'en';

function getJSON(url) {
  return fetch(url, { credentials: 'omit' }).then((r) => {
    if (!r.ok) throw new Error(`${url}: ${r.status}`);
    return r.json();
  });
}

/** The catalogue index: {languages: {code: {name, dir}}}. */
export function catalogueIndex() {
  indexPromise ??= getJSON(new URL('index.json', BASE)).catch(() => {
    indexPromise = null;
    return { languages: { en: { name: 'English', dir: 'ltr' } } };
  });
  return indexPromise;
}

function load(code) {
  if (!catalogues.has(code)) {
    catalogues.set(code, getJSON(new URL(code + '.json', BASE)).catch(() => {
      catalogues.delete(code);
      return {};
    }));
  }
  return catalogues.get(code);
}

/**
 * The first of wanted (language codes or tags, e.g. navigator.languages)
 * that has a catalogue, else English.
 */
export async function pickLanguage(wanted) {
  const { languages } = await catalogueIndex();
  for (const tag of wanted) {
    const code = String(tag || '').toLowerCase().split(/[-_]/)[0];
    if (code && languages[code]) return code;
  }
  return 'en';
}

/**
 * Switches the interface to the first of wanted with a catalogue: loads
 * it, sets <html lang> and dir, and translates the document. Returns the
 * code chosen.
 */
export async function setLanguage(wanted, root = document) {
  const code = await pickLanguage(wanted);
  const [index, en, cat] = await Promise.all([catalogueIndex(), load('en'), load(code)]);
  english = en;
  strings = cat;
  current = code;
  const html = document.documentElement;
  html.lang = code;
  html.dir = index.languages[code]?.dir === 'rtl' ? 'rtl' : 'ltr';
  translate(root);
  return code;
}

/** The interface language now. */
export function uiLanguage() {
  return current;
}

/** The string of key, with {name} placeholders filled from params. */
export function t(key, params = {}) {
  const s = strings[key] ?? english[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
}

/**
 * Translates the elements under root that ask for it: data-i18n="key" sets
 * the text, data-i18n-attr="attr:key;attr:key" sets attributes.
 */
export function translate(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-attr]')) {
    for (const pair of el.dataset.i18nAttr.split(';')) {
      const [attr, key] = pair.split(':').map((s) => s.trim());
      if (attr && key) el.setAttribute(attr, t(key));
    }
  }
}
