// One endpoint's drill-down: GET /endpoints/:endpoint/analytics (the
// endpoint URL-encoded in the path) for its latency percentiles, status
// codes, methods and series.

import { get } from '../api.js';
import { h, replace, card, message } from '../dom.js';
import { count, percent, ms } from '../format.js';
import { timeChart, columnsOf, COLORS } from '../charts.js';
import { heading, errorArea, loader, whose, rangeWords, viewRange } from './common.js';

const METRICS = ['requests', 'errors', 'averageResponseTime', 'p95ResponseTime'];

function raw(x) {
  return x === undefined || x === null ? '' : String(x);
}

// breakdown is a table of counts with a bar for each row's share.
function breakdown(id, caption, keyLabel, entries, total) {
  if (entries.length === 0) return message('No requests in this range.');
  const rows = entries.map(([k, n]) => {
    const share = total > 0 ? (n / total) * 100 : 0;
    const bar = h('span', { class: 'bar-fill' });
    bar.style.width = `${Math.min(100, share).toFixed(2)}%`;
    const cls = /^\d{3}$/.test(k) ? `status-${k[0]}xx` : '';
    return h('tr', { dataset: { key: k, value: String(n) } },
      h('th', { scope: 'row', class: cls }, k),
      h('td', { class: 'num' }, count(n)),
      h('td', { class: 'num' }, percent(share)),
      h('td', { class: 'bar-cell', 'aria-hidden': 'true' }, h('span', { class: `bar ${cls}` }, bar)));
  });
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', { id, class: 'data' },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', null, h('tr', null,
        h('th', { scope: 'col' }, keyLabel), h('th', { scope: 'col', class: 'num' }, 'Requests'),
        h('th', { scope: 'col', class: 'num' }, 'Share'), h('th', { scope: 'col' }, h('span', { class: 'visually-hidden' }, 'Bar')))),
      h('tbody', null, rows)));
}

export function mount(root, app, params) {
  const endpoint = params.endpoint;
  const { title, subtitle } = heading(`Endpoint ${endpoint}`);
  title.classList.add('endpoint-title');
  const errors = errorArea('endpoint-error');
  const cards = h('div', { class: 'cards', id: 'endpoint-totals', 'aria-label': 'Totals' }, message('Loading…', 'muted'));
  const codes = h('div', { id: 'endpoint-codes' });
  const methods = h('div', { id: 'endpoint-methods-box' });
  const reqEl = h('div', { id: 'endpoint-chart' });
  const latEl = h('div', { id: 'endpoint-latency-chart' });
  const reqChart = timeChart(reqEl, {
    label: `Requests and errors of ${endpoint}`,
    series: [
      { label: 'Requests', color: COLORS.requests, scale: 'left', format: 'count' },
      { label: 'Errors (5xx)', color: COLORS.errors, scale: 'right', format: 'count' },
    ],
  });
  const latChart = timeChart(latEl, {
    label: `Latency of ${endpoint}`,
    series: [
      { label: 'Average', color: COLORS.average, format: 'ms' },
      { label: 'p95', color: COLORS.p95, format: 'ms' },
    ],
  });
  replace(root,
    h('p', { class: 'back' }, h('a', { href: '#/endpoints' }, '← All endpoints')),
    title, subtitle, errors.el, cards,
    h('section', { class: 'panel' }, h('h2', null, 'Requests and errors'), reqEl),
    h('section', { class: 'panel' }, h('h2', null, 'Latency'), latEl),
    h('div', { class: 'split' },
      h('section', { class: 'panel' }, h('h2', null, 'Status codes'), codes),
      h('section', { class: 'panel' }, h('h2', null, 'Methods'), methods)));

  const load = loader(root);
  const update = () => load.run(async (stale) => {
    replace(subtitle, `${whose(app)}, ${rangeWords(app)}`);
    const range = viewRange(app, errors);
    if (!range) return;
    const { startDate, endDate, timezone } = range;
    try {
      const res = await get(`/endpoints/${encodeURIComponent(endpoint)}/analytics`,
        { startDate, endDate, timezone, granularity: app.controls.prefs.granularity, ...app.controls.scope() },
        { signal: load.signal });
      if (stale()) return;
      errors.clear();
      const t = res.totals;
      replace(cards,
        card('endpoint-requests', 'Requests', count(t.requests), { value: raw(t.requests) }),
        card('endpoint-errors', 'Errors (5xx)', count(t.errors), { value: raw(t.errors) }),
        card('endpoint-error-rate', 'Error rate', percent(t.errorRate), { value: raw(t.errorRate) }),
        card('endpoint-client-error-rate', '4xx rate', percent(t.clientErrorRate), { value: raw(t.clientErrorRate) }),
        card('endpoint-average', 'Average', ms(t.averageResponseTime), { ms: raw(t.averageResponseTime) }),
        card('endpoint-p50', 'p50', ms(t.p50ResponseTime), { ms: raw(t.p50ResponseTime) }),
        card('endpoint-p90', 'p90', ms(t.p90ResponseTime), { ms: raw(t.p90ResponseTime) }),
        card('endpoint-p95', 'p95', ms(t.p95ResponseTime), { ms: raw(t.p95ResponseTime) }),
        card('endpoint-p99', 'p99', ms(t.p99ResponseTime), { ms: raw(t.p99ResponseTime) }));
      const codeEntries = Object.entries(res.statusCodes || {}).sort((a, b) => a[0].localeCompare(b[0]));
      const methodEntries = Object.entries(res.methods || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      replace(codes, breakdown('endpoint-status-codes', `Status codes of ${endpoint}`, 'Status', codeEntries, t.requests));
      replace(methods, breakdown('endpoint-methods', `Methods of ${endpoint}`, 'Method', methodEntries, t.requests));
      const { times, columns, total } = columnsOf(res.series, METRICS);
      const tz = (res.series && res.series.timezone) || timezone;
      reqChart.set({ times, columns: [columns[0], columns[1]], tz, empty: total === 0 });
      latChart.set({ times, columns: [columns[2], columns[3]], tz, empty: total === 0 });
    } catch (e) {
      if (stale()) return;
      errors.show([e]);
    }
  });

  update();
  return {
    update,
    destroy() {
      load.abort();
      reqChart.destroy();
      latChart.destroy();
    },
  };
}
