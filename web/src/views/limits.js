// Limits: the hourly and endpoint rate limits (GET /rate-limit) and the
// billing period's quota (GET /quota) as gauges.

import { get } from '../api.js';
import { h, replace, message, errorBox } from '../dom.js';
import { count, percent, dateTime, day } from '../format.js';
import { heading, loader, settle } from './common.js';

const NAMES = {
  hourly: 'Requests this hour (a sliding hour)',
  monthly_requests: 'Requests this billing period',
};

function safeId(s) {
  return s.replace(/[^A-Za-z0-9_-]+/g, '-');
}

// gauge shows one limit: used / limit, the share, and when it resets.
export function gauge(id, l, tz) {
  const name = NAMES[l.name] || l.name;
  const data = {
    name: l.name, used: String(l.used ?? 0), limit: l.limit === null || l.limit === undefined ? '' : String(l.limit),
    unlimited: String(Boolean(l.unlimited)), percent: String(l.percentUsed ?? 0),
  };
  const el = h('div', { class: 'gauge', id, dataset: data });
  const resets = h('p', { class: 'gauge-reset' }, `Resets at ${dateTime(l.resetAt, tz)}`,
    l.window ? ` · window ${l.window}` : '',
    l.periodStart ? ` · period started ${dateTime(l.periodStart, tz)}` : '',
    l.mode ? ` · ${l.mode === 'soft' ? 'soft: requests go on past it' : 'hard: requests are refused past it'}` : '');
  if (l.unlimited) {
    el.append(
      h('div', { class: 'gauge-head' }, h('span', { class: 'gauge-name' }, name), h('span', { class: 'gauge-figure' }, 'unlimited')),
      h('p', { class: 'gauge-used' }, `${count(l.used ?? 0)} used so far; this plan has no limit here.`),
      resets);
    return el;
  }
  const over = l.used >= l.limit;
  const meter = h('meter', {
    min: '0', max: String(Math.max(1, l.limit)), value: String(Math.min(l.used, Math.max(1, l.limit))),
    low: String(Math.max(1, l.limit) * 0.8), high: String(Math.max(1, l.limit) * 0.95), optimum: '0',
    'aria-label': `${name}: ${count(l.used)} of ${count(l.limit)} used`,
  });
  el.classList.toggle('over', over);
  el.append(
    h('div', { class: 'gauge-head' },
      h('span', { class: 'gauge-name' }, name),
      h('span', { class: 'gauge-figure' }, `${count(l.used)} / ${count(l.limit)} (${percent(l.percentUsed)})`)),
    meter,
    h('p', { class: 'gauge-used' }, over ? 'Used up.' : `${count(l.remaining)} left.`),
    resets);
  return el;
}

// forecast says where a quota is heading: the projected use at the
// period's end and the day it runs out at this pace (GET /quota's
// forecast, from the daily usage with its weekly pattern).
export function forecastLine(id, l) {
  const f = l.forecast;
  if (!f) return null;
  const parts = [`Forecast: about ${count(f.projectedAtPeriodEnd)} by the end of the period (${count(Math.round(f.dailyRate))} a day from now on).`];
  if (!l.unlimited && l.limit && l.used >= l.limit) {
    parts.push(' The limit is already reached.');
  } else if (f.runsOutAt) {
    parts.push(` At this rate you reach your limit on ${day(f.runsOutAt)}.`);
  } else if (!l.unlimited && l.limit) {
    parts.push(' At this rate you stay within your limit.');
  }
  if (!f.confident) parts.push(' Less than a week of history: a rough guess.');
  return h('p', {
    id, class: 'gauge-forecast' + (f.runsOutAt ? ' warn' : ''),
    dataset: { projected: String(f.projectedAtPeriodEnd), runsOut: f.runsOutAt || '' },
  }, parts.join(''));
}

export function mount(root, app) {
  const { title, subtitle } = heading('Limits');
  const rate = h('div', { id: 'rate-limit', class: 'gauges' }, message('Loading…', 'muted'));
  const quota = h('div', { id: 'quota', class: 'gauges' }, message('Loading…', 'muted'));
  replace(root, title, subtitle,
    h('section', { class: 'panel' }, h('h2', null, 'Rate limits'), rate),
    h('section', { class: 'panel' }, h('h2', null, 'Quota'), quota));

  // A refusal (429) names the limit that refused: show it as a gauge too.
  const refused = (err) => (err && err.status === 429 && err.body && err.body.limit
    ? gauge(`refused-${safeId(err.body.limit.name || 'limit')}`, err.body.limit, app.controls.tz) : null);

  const load = loader(root);
  const update = () => load.run(async (stale) => {
    const scope = app.controls.scope();
    if (app.role === 'global' && !scope.tenantId) {
      replace(subtitle, 'Limits belong to one user of one tenant.');
      const hint = 'Choose a tenant (and a user) above to see their limits.';
      replace(rate, message(hint));
      replace(quota, message(hint));
      return;
    }
    const [[rl, rlErr], [q, qErr]] = await settle(
      get('/rate-limit', scope, { signal: load.signal }),
      get('/quota', scope, { signal: load.signal }),
    );
    if (stale()) return;
    const tz = app.controls.tz;
    if (rl) {
      const own = app.role !== 'user' && !scope.userId ? ' (your own user: choose a user above to see theirs)' : '';
      replace(subtitle, `Limits of user ${rl.userId} of tenant ${rl.tenantId}${own} on the ${rl.plan} plan; times in ${tz.replace(/_/g, ' ')}.`);
      replace(rate,
        gauge('limit-hourly', rl.hourly, tz),
        (rl.endpoints || []).map((l, i) => gauge(`limit-endpoint-${i}`, l, tz)));
    } else {
      replace(subtitle, `Times in ${tz.replace(/_/g, ' ')}.`);
      replace(rate, errorBox(rlErr, refused(rlErr)));
    }
    if (q) {
      replace(quota, q.length
        ? q.map((l) => {
          const g = gauge(`quota-${safeId(l.name)}`, l, tz);
          const f = forecastLine(`forecast-${safeId(l.name)}`, l);
          if (f) g.append(f);
          return g;
        })
        : message('No quota applies.'));
    } else {
      replace(quota, errorBox(qErr, refused(qErr)));
    }
  });

  update();
  return { update, destroy: () => load.abort() };
}
