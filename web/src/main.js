// The dashboard's entry: sign-in, the role of the key, the hash router
// (#/overview, #/endpoints, #/endpoints/<encoded endpoint>, #/dimensions, #/limits,
// #/sla, #/health, #/admin) and live refresh.

import 'uplot/dist/uPlot.min.css';
import './app.css';

import * as api from './api.js';
import { createControls } from './controls.js';
import { errorText } from './dom.js';
import * as overview from './views/overview.js';
import * as endpoints from './views/endpoints.js';
import * as endpoint from './views/endpoint.js';
import * as limits from './views/limits.js';
import * as sla from './views/sla.js';
import * as dimensions from './views/dimensions.js';
import * as health from './views/health.js';
import * as admin from './views/admin.js';

const VIEWS = { overview, endpoints, endpoint, dimensions, limits, sla, health, admin };
const TITLES = { overview: 'Overview', endpoints: 'Endpoints', endpoint: 'Endpoint', dimensions: 'Dimensions', limits: 'Limits', sla: 'SLA', health: 'Health', admin: 'Admin' };
const RANGE_VIEWS = new Set(['overview', 'endpoints', 'endpoint', 'dimensions', 'admin']);
const ROLE_WORDS = { user: 'User key', admin: 'Tenant admin', global: 'Admin of every tenant' };
const LIVE_MS = 30_000;
// The role found at sign-in, kept beside the key so a reload need not
// ask again (a key that stopped working meets a 401 on the first call).
const ROLE_NAME = 'apimeter.role';

const $ = (id) => document.getElementById(id);

const app = { role: 'user', controls: null };
let current = null;
let liveTimer = 0;
let signedIn = false;
let knownUsers = [];

// parseHash reads a route; null for anything unknown.
function parseHash(hash) {
  const path = (hash || '').replace(/^#\/?/, '');
  if (path.startsWith('endpoints/')) {
    const enc = path.slice('endpoints/'.length);
    if (!enc) return { name: 'endpoints', params: {} };
    try {
      return { name: 'endpoint', params: { endpoint: decodeURIComponent(enc) } };
    } catch {
      return null;
    }
  }
  if (Object.hasOwn(VIEWS, path) && path !== 'endpoint') return { name: path, params: {} };
  return null;
}

function route({ focus = true } = {}) {
  if (!signedIn) return;
  const r = parseHash(location.hash);
  if (!r) {
    history.replaceState(null, '', '#/overview');
    route({ focus });
    return;
  }
  current?.view.destroy();
  const navName = r.name === 'endpoint' ? 'endpoints' : r.name;
  for (const a of document.querySelectorAll('.nav a')) {
    if (a.dataset.route === navName) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  app.controls.usesRange(RANGE_VIEWS.has(r.name));
  const root = $('view');
  root.dataset.view = r.name;
  current = { name: r.name, view: VIEWS[r.name].mount(root, app, r.params) };
  document.title = `${r.name === 'endpoint' ? r.params.endpoint : TITLES[r.name]} · apimeter`;
  if (focus) $('view-title')?.focus();
}

function setLive(on) {
  clearInterval(liveTimer);
  liveTimer = 0;
  if (on) {
    liveTimer = setInterval(() => {
      // No refresh while the tab is hidden or a 429 asked to wait.
      if (document.hidden || Date.now() < api.rateLimitedUntil) return;
      current?.view.update();
    }, LIVE_MS);
  }
}

// identify checks a key and finds its role with one call every valid key
// may make: GET /stats of today answers 401 for a key that is not
// accepted, and names the scope the key reads — a user (a user key), a
// tenant (a tenant admin) or neither (an admin of every tenant).
async function identify(key) {
  const today = new Date().toISOString().slice(0, 10);
  const res = await api.get('/stats', { startDate: today, endDate: today }, { key, quiet401: true });
  const scope = (res && res.scope) || {};
  if (scope.userId) return 'user';
  if (scope.tenantId) return 'admin';
  return 'global';
}

// loadScopeLists fills the tenant choice and the user suggestions from
// the top users of the last 30 days.
async function loadScopeLists() {
  try {
    const res = await api.get('/top-users', { limit: 1000 });
    const list = res.users || [];
    knownUsers = list.map((u) => ({ tenant: u.tenantId, user: u.userId }));
    // "*" is where the usage of keys of every tenant is metered, not a
    // tenant one can name.
    if (app.role === 'global') app.controls.setTenants(list.map((u) => u.tenantId).filter((t) => t !== '*'));
    fillUsers();
  } catch {
    // Only suggestions: the fields still take typed values.
  }
}

function fillUsers() {
  const tenant = app.controls.prefs.tenant;
  app.controls.setUsers(knownUsers.filter((u) => !tenant || u.tenant === tenant).map((u) => u.user));
}

function showSignin(msg) {
  $('app').hidden = true;
  $('signin-view').hidden = false;
  const err = $('signin-error');
  err.textContent = msg || '';
  err.hidden = !msg;
  document.title = 'Sign in · apimeter';
  $('key').focus();
}

function start(role, { focus = true } = {}) {
  signedIn = true;
  try {
    sessionStorage.setItem(ROLE_NAME, role);
  } catch {
    // Asked again after a reload.
  }
  app.role = role;
  app.controls.setRole(role);
  $('nav-admin').hidden = role === 'user';
  $('whoami').textContent = ROLE_WORDS[role];
  $('signin-view').hidden = true;
  $('signin-error').hidden = true;
  $('app').hidden = false;
  if (role !== 'user') loadScopeLists();
  setLive(app.controls.prefs.live);
  route({ focus });
}

function signOut(msg) {
  const was = signedIn;
  signedIn = false;
  api.clearKey();
  try {
    sessionStorage.removeItem(ROLE_NAME);
  } catch {
    // Nothing was kept.
  }
  setLive(false);
  current?.view.destroy();
  current = null;
  $('view').replaceChildren();
  knownUsers = [];
  app.controls.setTenants([]);
  app.controls.setUsers([]);
  app.controls.setRole('user');
  if (was || msg) showSignin(msg);
}

function onControls(what) {
  if (!signedIn) return;
  if (what === 'live') {
    setLive(app.controls.prefs.live);
    return;
  }
  if (what === 'scope') fillUsers();
  current?.view.update();
}

function init() {
  app.controls = createControls(onControls);

  api.onUnauthorized((err) => {
    if (signedIn) signOut(`This key is no longer accepted: ${err.message}. Sign in again.`);
  });

  $('signin').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const input = $('key');
    const button = $('signin-submit');
    const err = $('signin-error');
    const key = input.value.trim();
    if (!key) {
      err.textContent = 'Enter an API key.';
      err.hidden = false;
      input.focus();
      return;
    }
    button.disabled = true;
    button.textContent = 'Checking…';
    err.hidden = true;
    try {
      const role = await identify(key);
      api.setKey(key);
      input.value = '';
      start(role);
    } catch (e) {
      err.textContent = e.status === 401 ? `This key was not accepted: ${e.message}` : errorText(e);
      err.hidden = false;
      input.focus();
    } finally {
      button.disabled = false;
      button.textContent = 'Sign in';
    }
  });

  $('signout').addEventListener('click', () => signOut(''));
  document.querySelector('.skip').addEventListener('click', (ev) => {
    ev.preventDefault();
    $('view').focus();
  });
  window.addEventListener('hashchange', () => route());

  const key = api.getKey();
  if (!key) {
    showSignin('');
    return;
  }
  let role = '';
  try {
    role = sessionStorage.getItem(ROLE_NAME) || '';
  } catch {
    role = '';
  }
  if (Object.hasOwn(ROLE_WORDS, role)) {
    start(role, { focus: false });
    return;
  }
  identify(key).then((r) => start(r, { focus: false }), (e) => {
    if (e.status === 401) api.clearKey();
    showSignin(e.status === 401 ? `This key is no longer accepted: ${e.message}. Sign in again.` : errorText(e));
  });
}

if (typeof document !== 'undefined') init();
