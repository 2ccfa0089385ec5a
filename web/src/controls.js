// The controls bar: range, granularity, time zone, live refresh and, for
// admins, the tenant and user the views read. The choices (never the
// key) are kept in sessionStorage so a reload keeps them.

import { rangeOf, PRESETS, defaultZone, zones, toLocalInput, fromLocalInput, inputValue } from './time.js';
import { h, replace } from './dom.js';

const PREFS = 'apimeter.prefs';
const GRANULARITIES = ['minute', 'hour', 'day', 'week', 'month'];

const $ = (id) => document.getElementById(id);

function load() {
  const base = { preset: '7d', start: '', end: '', granularity: 'hour', tz: defaultZone(), tenant: '', user: '', live: false };
  try {
    const saved = JSON.parse(sessionStorage.getItem(PREFS) || '{}');
    for (const k of Object.keys(base)) {
      if (typeof saved[k] === typeof base[k]) base[k] = saved[k];
    }
  } catch {
    // Unreadable preferences: start from the defaults.
  }
  if (!PRESETS[base.preset] && base.preset !== 'custom') base.preset = '7d';
  if (!GRANULARITIES.includes(base.granularity)) base.granularity = 'hour';
  return base;
}

export function createControls(onChange) {
  const prefs = load();
  const els = {
    form: $('controls'), range: $('range'), start: $('start'), end: $('end'), granularity: $('granularity'),
    tz: $('tz'), live: $('live'), tenant: $('tenant'), user: $('user'), users: $('user-list'),
    tenantBox: $('scope-tenant'), userBox: $('scope-user'),
  };
  let role = 'user';

  const save = () => {
    try {
      sessionStorage.setItem(PREFS, JSON.stringify(prefs));
    } catch {
      // Not kept across reloads; still works.
    }
  };

  replace(els.tz, zones(prefs.tz).map((z) => h('option', { value: z }, z.replace(/_/g, ' '))));

  const showCustom = () => {
    for (const el of document.querySelectorAll('.custom-only')) el.hidden = prefs.preset !== 'custom';
  };

  const sync = () => {
    els.range.value = prefs.preset;
    els.start.value = prefs.start;
    els.end.value = prefs.end;
    els.granularity.value = prefs.granularity;
    els.tz.value = prefs.tz;
    els.live.checked = prefs.live;
    els.user.value = prefs.user;
    if ([...els.tenant.options].some((o) => o.value === prefs.tenant)) els.tenant.value = prefs.tenant;
    showCustom();
  };

  const changed = (what) => {
    save();
    onChange(what);
  };

  els.range.addEventListener('change', () => {
    const before = rangeOf(prefs);
    prefs.preset = els.range.value;
    if (prefs.preset === 'custom' && !before.error) {
      // The custom range starts as the range that was on screen.
      prefs.start = inputValue(before.startDate, prefs.tz, false);
      prefs.end = inputValue(before.endDate, prefs.tz, true);
    } else {
      prefs.granularity = PRESETS[prefs.preset].granularity;
    }
    sync();
    changed('range');
  });
  for (const name of ['start', 'end']) {
    els[name].addEventListener('change', () => {
      prefs[name] = els[name].value;
      changed('range');
    });
  }
  els.granularity.addEventListener('change', () => {
    prefs.granularity = els.granularity.value;
    changed('range');
  });
  els.tz.addEventListener('change', () => {
    // Keep a custom range on the same instants when the zone changes.
    if (prefs.preset === 'custom') {
      const s = fromLocalInput(prefs.start, prefs.tz);
      const e = fromLocalInput(prefs.end, prefs.tz);
      if (!Number.isNaN(s)) prefs.start = toLocalInput(s, els.tz.value);
      if (!Number.isNaN(e)) prefs.end = toLocalInput(e, els.tz.value);
    }
    prefs.tz = els.tz.value;
    sync();
    changed('tz');
  });
  els.live.addEventListener('change', () => {
    prefs.live = els.live.checked;
    changed('live');
  });
  els.tenant.addEventListener('change', () => {
    prefs.tenant = els.tenant.value;
    prefs.user = '';
    sync();
    changed('scope');
  });
  els.user.addEventListener('change', () => {
    prefs.user = els.user.value.trim();
    changed('scope');
  });
  els.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    if (els.user.value.trim() !== prefs.user) {
      prefs.user = els.user.value.trim();
      save();
    }
    onChange('refresh');
  });

  sync();

  return {
    prefs,
    get tz() {
      return prefs.tz;
    },
    // range is the API's startDate, endDate and timezone, or {error}.
    range() {
      return rangeOf(prefs);
    },
    // scope is the tenantId and userId an admin narrowed the views to.
    scope() {
      if (role === 'user') return {};
      return { tenantId: role === 'global' ? prefs.tenant : '', userId: prefs.user };
    },
    // usesRange shows the range controls only on views that read them.
    usesRange(on) {
      for (const el of document.querySelectorAll('.range-only')) el.hidden = !on;
      if (on) showCustom();
    },
    setRole(r) {
      role = r;
      els.tenantBox.hidden = r !== 'global';
      els.userBox.hidden = r === 'user';
      if (r === 'user') {
        prefs.tenant = '';
        prefs.user = '';
        save();
      }
      sync();
    },
    setTenants(list) {
      const current = prefs.tenant;
      const all = [...new Set([...list, current].filter(Boolean))].sort();
      replace(els.tenant, h('option', { value: '' }, 'All tenants'), all.map((t) => h('option', { value: t }, t)));
      els.tenant.value = current;
    },
    setUsers(list) {
      replace(els.users, [...new Set(list)].sort().map((u) => h('option', { value: u })));
    },
    setUser(user, tenant) {
      if (tenant !== undefined && role === 'global') {
        if (![...els.tenant.options].some((o) => o.value === tenant)) els.tenant.append(h('option', { value: tenant }, tenant));
        prefs.tenant = tenant;
      }
      prefs.user = user;
      sync();
      changed('scope');
    },
    setLive(on) {
      prefs.live = on;
      sync();
      save();
    },
  };
}
