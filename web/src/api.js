// Calls to apimeter's API on this origin: the key, the bearer header,
// JSON bodies, and errors as ApiError. The key lives in sessionStorage
// only (gone with the tab), never in a URL.

export const BASE = '/api/api-usage';
const KEY_NAME = 'apimeter.key';

export function getKey() {
  try {
    return sessionStorage.getItem(KEY_NAME) || '';
  } catch {
    return '';
  }
}

export function setKey(key) {
  sessionStorage.setItem(KEY_NAME, key);
}

export function clearKey() {
  try {
    sessionStorage.removeItem(KEY_NAME);
  } catch {
    // Storage unavailable: nothing was kept.
  }
}

// ApiError is a refused or failed call. status is 0 when the server was
// not reached; retryAfter is in seconds (429s).
export class ApiError extends Error {
  constructor(status, code, message, { retryAfter = null, body = null } = {}) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
    this.body = body;
  }
}

let unauthorized = null;

// onUnauthorized sets what happens when a call meets a 401 (the key
// expired or was revoked): the app signs the user out.
export function onUnauthorized(fn) {
  unauthorized = fn;
}

// rateLimitedUntil is when the last 429 said to try again (epoch ms), so
// live refresh can wait instead of hammering the limit.
export let rateLimitedUntil = 0;

function retryAfterOf(res, body) {
  const h = res.headers.get('Retry-After');
  if (h) {
    const n = Number(h);
    if (Number.isFinite(n)) return n;
    const t = Date.parse(h);
    if (!Number.isNaN(t)) return Math.max(0, Math.ceil((t - Date.now()) / 1000));
  }
  const s = body && body.retryAfterSeconds;
  return Number.isFinite(s) ? s : null;
}

// query builds a query string, leaving out empty values.
export function queryString(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

// request calls the API. Options: query (object), body (JSON-encoded),
// key (instead of the stored one), raw (return the Response), accept
// (the Accept header, JSON by default), signal,
// quiet401 (do not sign out on a 401: the sign-in form checks keys).
export async function request(method, path, opts = {}) {
  const key = opts.key ?? getKey();
  const headers = { Accept: opts.accept || 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const init = { method, headers, signal: opts.signal, cache: 'no-store', credentials: 'same-origin' };
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(opts.body);
  }
  let res;
  try {
    res = await fetch(BASE + path + queryString(opts.query), init);
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'Could not reach apimeter. Check your connection and try again.');
  }
  if (res.ok) {
    if (opts.raw) return res;
    if (res.status === 204) return null;
    return res.json();
  }
  let body = null;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  const e = body && body.error;
  const message = (e && e.message) || `The server answered ${res.status} ${res.statusText}`.trim();
  const err = new ApiError(res.status, (e && e.code) || 'http_' + res.status, message, {
    retryAfter: res.status === 429 ? retryAfterOf(res, body) : null, body,
  });
  if (res.status === 429 && err.retryAfter !== null) {
    rateLimitedUntil = Date.now() + err.retryAfter * 1000;
  }
  if (res.status === 401 && !opts.quiet401 && unauthorized) unauthorized(err);
  throw err;
}

export const get = (path, query, opts = {}) => request('GET', path, { ...opts, query });
export const post = (path, body, opts = {}) => request('POST', path, { ...opts, body });

// isAbort says an error is a cancelled call (the view was left).
export function isAbort(e) {
  return Boolean(e) && e.name === 'AbortError';
}

// filenameOf reads the file name of a Content-Disposition header.
export function filenameOf(disposition) {
  if (!disposition) return '';
  const star = /filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)/.exec(disposition);
  if (star) {
    try {
      return decodeURIComponent(star[1].trim());
    } catch {
      // Fall through to the plain name.
    }
  }
  const quoted = /filename\s*=\s*"((?:[^"\\]|\\.)*)"/.exec(disposition);
  if (quoted) return quoted[1].replace(/\\(.)/g, '$1');
  const plain = /filename\s*=\s*([^;]+)/.exec(disposition);
  return plain ? plain[1].trim() : '';
}
