// The sign-in the speaker and admin pages share: the token and the account
// name live in this tab's sessionStorage, so that a reload keeps them and
// signing in on one page signs this tab in on the other. The server checks
// the token (and, for the admin page, the account's role) at every request;
// what is kept here only saves typing.

import { login } from './pentecost.js';
import { store } from './ui.js';

const KEY = { token: 'pentecost.token', exp: 'pentecost.tokenExpiresAt', user: 'pentecost.user' };

/** Keeps a token, its expiry (Unix ms, 0 if unknown) and whose it is. */
export function saveToken(token, expiresAt, user) {
  store.set(KEY.token, token);
  store.set(KEY.exp, String(expiresAt || 0));
  store.set(KEY.user, user || '');
}

/**
 * Signs in to an embedded account and keeps the token: the login answer,
 * {token, expiresAt, user: {id, name, role}}. Throws PentecostError.
 */
export async function signIn(username, password) {
  const r = await login(username, password);
  saveToken(r.token, r.expiresAt, r.user?.name || username);
  return r;
}

/** The kept token, or null when there is none or it expires within a minute. */
export function validToken() {
  const token = store.get(KEY.token);
  const exp = Number(store.get(KEY.exp) || 0);
  if (!token || (exp && exp < Date.now() + 60000)) return null;
  return token;
}

/** The name of the account the kept token is for. */
export function signedInUser() {
  return store.get(KEY.user) || '';
}

/** Forgets the token. */
export function forgetToken() {
  for (const k of Object.values(KEY)) store.remove(k);
}
