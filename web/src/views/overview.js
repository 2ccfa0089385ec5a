// Overview: totals from GET /stats, requests/errors and latency over time
// from POST /time-series, and the exports.

import { get, post } from '../api.js';
import { h, replace, card, message } from '../dom.js';
import { count, percent, ms } from '../format.js';
import { timeChart, columnsOf, COLORS } from '../charts.js';
import { exportPanel } from '../exports.js';
import { heading, errorArea, loader, settle, whose, rangeWords, viewRange } from './common.js';

const METRICS = ['requests', 'errors', 'errorRate', 'p50ResponseTime', 'p95ResponseTime', 'p99ResponseTime'];

function totalCards(t) {
  const v = (x) => (x === undefined || x === null ? '' : String(x));
  return [
    card('total-requests', 'Requests', count(t.requests), { value: v(t.requests) }),
    card('total-errors', 'Errors (5xx)', count(t.errors), { value: v(t.errors) }),
    card('total-error-rate', 'Error rate', percent(t.errorRate), { value: v(t.errorRate) }),
    card('total-client-error-rate', 'Client errors (4xx)', percent(t.clientErrorRate), { value: v(t.clientErrorRate) }),
    card('total-p50', 'Latency p50', ms(t.p50ResponseTime), { ms: v(t.p50ResponseTime) }),
    card('total-p95', 'Latency p95', ms(t.p95ResponseTime), { ms: v(t.p95ResponseTime) }),
    card('total-p99', 'Latency p99', ms(t.p99ResponseTime), { ms: v(t.p99ResponseTime) }),
  ];
}

export function mount(root, app) {
  const { title, subtitle } = heading('Overview');
  const errors = errorArea('overview-error');
  const cards = h('div', { class: 'cards', id: 'totals', 'aria-label': 'Totals' }, message('Loading…', 'muted'));
  const reqEl = h('div', { id: 'overview-chart' });
  const latEl = h('div', { id: 'latency-chart' });
  const reqChart = timeChart(reqEl, {
    label: 'Requests and errors over time',
    series: [
      { label: 'Requests', color: COLORS.requests, scale: 'left', format: 'count' },
      { label: 'Errors (5xx)', color: COLORS.errors, scale: 'right', format: 'count' },
    ],
  });
  const latChart = timeChart(latEl, {
    label: 'Latency percentiles over time',
    series: [
      { label: 'p50', color: COLORS.p50, format: 'ms' },
      { label: 'p95', color: COLORS.p95, format: 'ms' },
      { label: 'p99', color: COLORS.p99, format: 'ms' },
    ],
  });
  replace(root,
    title, subtitle, errors.el, cards,
    h('section', { class: 'panel' }, h('h2', null, 'Requests and errors'), reqEl),
    h('section', { class: 'panel' }, h('h2', null, 'Latency'), latEl),
    exportPanel(app));

  const load = loader(root);

  const update = () => load.run(async (stale) => {
    replace(subtitle, `${whose(app)}, ${rangeWords(app)}`);
    const range = viewRange(app, errors);
    if (!range) return;
    const scope = app.controls.scope();
    const { startDate, endDate, timezone } = range;
    const body = { startDate, endDate, timezone, granularity: app.controls.prefs.granularity, metrics: METRICS };
    if (scope.tenantId) body.tenantId = scope.tenantId;
    if (scope.userId) body.userId = scope.userId;
    const [[stats, statsErr], [series, seriesErr]] = await settle(
      get('/stats', { startDate, endDate, timezone, limit: 1, ...scope }, { signal: load.signal }),
      post('/time-series', body, { signal: load.signal }),
    );
    if (stale()) return;
    errors.show([statsErr, seriesErr]);
    if (stats) replace(cards, totalCards(stats.totals));
    else if (statsErr) replace(cards);
    if (series) {
      const { times, columns, total } = columnsOf(series, METRICS);
      const empty = total === 0;
      reqChart.set({ times, columns: [columns[0], columns[1]], tz: series.timezone || timezone, empty });
      latChart.set({ times, columns: [columns[3], columns[4], columns[5]], tz: series.timezone || timezone, empty });
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
