// SLA: a month's attainment of the service-level objectives (GET /sla)
// for the key's scope — per objective and tenant, each indicator's
// target, attainment, met or missed, error budget left, burn rates and
// worst hours.

import { get } from '../api.js';
import { h, replace, card, message, errorBox, table } from '../dom.js';
import { count, dateTime, DASH } from '../format.js';
import { wall } from '../time.js';
import { heading, loader, whose } from './common.js';

// MONTHS is how many months the picker offers, the current one included.
const MONTHS = 13;

const MONTH_NAMES = new Intl.DateTimeFormat('en-US', { month: 'long', year: 'numeric', timeZone: 'UTC' });

const pad = (n) => String(n).padStart(2, '0');

// months are the picker's months in zone tz, newest first: [{value, label}].
export function monthsBack(nowMs, tz, n = MONTHS) {
  const w = wall(nowMs, tz);
  const out = [];
  for (let i = 0; i < n; i++) {
    const d = new Date(Date.UTC(w.year, w.month - 1 - i, 1));
    out.push({ value: `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}`, label: MONTH_NAMES.format(d) });
  }
  return out;
}

// pct shows a percentage with the precision objectives need: 99.95 %.
function pct(v, digits = 3) {
  if (v === null || v === undefined) return DASH;
  return `${Number(v.toFixed(digits))} %`;
}

function rate(v) {
  if (v === null || v === undefined) return DASH;
  return `${Number(v.toFixed(2))}×`;
}

function sliName(s) {
  if (s.kind === 'latency') return `Latency: responses within ${count(s.thresholdMs)} ms`;
  return 'Availability: responses that are not 5xx';
}

function budgetWords(total, b) {
  if (!total) return 'No requests this month: the whole error budget is left.';
  const of = `${count(b.consumed)} bad of ${Number((b.allowed ?? 0).toFixed(1))} allowed`;
  if (b.remaining < 0) return `Error budget overspent: ${pct(100 - b.remaining, 1)} of it used (${of}).`;
  return `${pct(b.remaining, 1)} of the error budget left (${of}).`;
}

function sliBlock(s, id, tz) {
  const b = s.errorBudget || {};
  const left = Math.max(0, Math.min(100, b.remaining ?? 100));
  const burn = s.burnRate || {};
  const recent = ['1h', '6h', '24h'].filter((k) => burn[k] !== null && burn[k] !== undefined);
  const hours = s.worstHours || [];
  return h('div', { class: 'gauge sli', id, dataset: { kind: s.kind, met: String(s.met), total: String(s.total) } },
    h('div', { class: 'gauge-head' },
      h('span', { class: 'gauge-name' }, sliName(s)),
      h('span', { id: `${id}-met`, class: `badge ${s.met ? 'status-healthy' : 'status-unhealthy'}`, dataset: { met: String(s.met) } },
        s.met ? 'Met' : 'Missed')),
    h('div', { class: 'cards' },
      card(`${id}-target`, 'Target', pct(s.target), { value: String(s.target) }),
      card(`${id}-attainment`, 'Attainment', s.total ? pct(s.attainment) : 'No requests', { value: s.attainment === null ? '' : String(s.attainment) }),
      card(`${id}-total`, 'Requests', count(s.total), { value: String(s.total) }),
      card(`${id}-bad`, s.kind === 'latency' ? 'Too slow' : 'Failed (5xx)', count(b.consumed), { value: String(b.consumed ?? '') }),
      card(`${id}-burn`, 'Burn rate (month)', rate(burn.month), { value: burn.month === null || burn.month === undefined ? '' : String(burn.month) })),
    h('meter', {
      id: `${id}-budget`, min: '0', max: '100', value: String(left), low: '25', high: '50', optimum: '100',
      'aria-label': `Error budget left: ${pct(b.remaining, 1)}`, dataset: { remaining: String(b.remaining ?? '') },
    }),
    h('p', { class: 'gauge-used' }, budgetWords(s.total, b)),
    recent.length
      ? h('p', null, `Burn rate over the last ${recent.map((k) => `${k}: ${rate(burn[k])}`).join(', ')} (1× spends the budget exactly over a month).`)
      : null,
    hours.length
      ? table(`${id}-worst`, 'Worst hours', [{ label: 'Hour' }, { label: 'Requests', cls: 'num' }, { label: 'Bad', cls: 'num' }, { label: 'Attainment', cls: 'num' }],
        hours.map((w) => h('tr', { dataset: { hour: w.hour, bad: String(w.bad) } },
          h('th', { scope: 'row' }, dateTime(w.hour, tz)),
          h('td', { class: 'num' }, count(w.total)),
          h('td', { class: 'num' }, count(w.bad)),
          h('td', { class: 'num' }, pct(w.attainment, 2)))))
      : h('p', null, 'No bad hours.'));
}

export function mount(root, app) {
  const { title, subtitle } = heading('SLA');
  const picker = h('select', { id: 'sla-month' });
  const objectives = h('div', { id: 'sla-objectives' }, message('Loading…', 'muted'));
  replace(root, title, subtitle,
    h('div', { class: 'panel' },
      h('div', { class: 'panel-head' },
        h('h2', null, 'Service-level objectives'),
        h('div', { class: 'control' }, h('label', { for: 'sla-month' }, 'Month'), picker))),
    objectives);

  let chosen = '';
  let zone = '';
  const fillMonths = (tz) => {
    const months = monthsBack(Date.now(), tz);
    if (!months.some((m) => m.value === chosen)) chosen = months[0].value;
    replace(picker, months.map((m, i) => h('option', { value: m.value }, i === 0 ? `${m.label} (so far)` : m.label)));
    picker.value = chosen;
    zone = tz;
  };

  const load = loader(root);
  const update = () => load.run(async (stale) => {
    const tz = app.controls.tz;
    if (tz !== zone) fillMonths(tz);
    let res;
    try {
      res = await get('/sla', { ...app.controls.scope(), month: chosen, timezone: tz }, { signal: load.signal });
    } catch (e) {
      if (!stale()) replace(objectives, errorBox(e));
      return;
    }
    if (stale()) return;
    const label = picker.selectedOptions[0] ? picker.selectedOptions[0].textContent : res.month;
    replace(subtitle, `Objectives of ${whose(app)} in ${label}, days and hours in ${tz.replace(/_/g, ' ')}.`);
    const list = res.objectives || [];
    if (list.length === 0) {
      replace(objectives, message('No objectives apply here, or no tenant had requests this month.'));
      return;
    }
    replace(objectives, list.map((o, i) => h('section', {
      class: 'panel sla-objective', id: `sla-${i}`, dataset: { objective: o.name, tenant: o.tenantId },
    },
    h('h2', null, `${o.name} · tenant ${o.tenantId}`),
    h('p', { class: 'muted' }, o.endpoint ? `Endpoint ${o.endpoint}.` : 'Every endpoint.'),
    h('div', { class: 'sla-slis' }, (o.slis || []).map((s) => sliBlock(s, `sla-${i}-${s.kind}`, tz))))));
  });

  picker.addEventListener('change', () => {
    chosen = picker.value;
    update();
  });

  update();
  return { update, destroy: () => load.abort() };
}
