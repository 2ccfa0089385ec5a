// Endpoints: the busiest endpoints and methods of the range (GET /stats,
// its top endpoints), sortable, each linking to its drill-down.

import { get } from '../api.js';
import { h, replace, message } from '../dom.js';
import { count, percent, ms, bytes } from '../format.js';
import { heading, errorArea, loader, whose, rangeWords, viewRange } from './common.js';

const COLUMNS = [
  { key: 'endpoint', label: 'Endpoint', text: true },
  { key: 'method', label: 'Method', text: true },
  { key: 'requests', label: 'Requests', fmt: count },
  { key: 'errors', label: 'Errors (5xx)', fmt: count },
  { key: 'errorRate', label: 'Error rate', fmt: percent },
  { key: 'clientErrorRate', label: '4xx rate', fmt: percent },
  { key: 'averageResponseTime', label: 'Avg latency', fmt: ms },
  { key: 'maxResponseTime', label: 'Max latency', fmt: ms },
  { key: 'responseBytes', label: 'Bytes out', fmt: bytes },
];

// endpointHash is the drill-down route of an endpoint.
export function endpointHash(endpoint) {
  return `#/endpoints/${encodeURIComponent(endpoint)}`;
}

// sortRows orders rows by a column; text ascending, numbers descending by
// default, ties by endpoint then method so the order is stable.
export function sortRows(rows, key, dir) {
  const col = COLUMNS.find((c) => c.key === key) || COLUMNS[2];
  const sign = dir === 'ascending' ? 1 : -1;
  return [...rows].sort((a, b) => {
    const x = a[col.key];
    const y = b[col.key];
    let d = col.text ? String(x).localeCompare(String(y)) : (x ?? -Infinity) - (y ?? -Infinity);
    if (d === 0) d = a.endpoint.localeCompare(b.endpoint) || a.method.localeCompare(b.method);
    return d * sign;
  });
}

let sort = { key: 'requests', dir: 'descending' };

export function mount(root, app) {
  const { title, subtitle } = heading('Endpoints');
  const errors = errorArea('endpoints-error');
  const summary = h('p', { class: 'muted', id: 'endpoints-summary' });
  const wrap = h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Endpoints' });
  replace(root, title, subtitle, errors.el, h('section', { class: 'panel' }, summary, wrap));

  let rows = [];

  const render = () => {
    const head = h('tr', null, COLUMNS.map((c) => {
      const active = sort.key === c.key;
      const th = h('th', { scope: 'col', class: c.text ? '' : 'num', 'aria-sort': active ? sort.dir : null },
        h('button', {
          type: 'button', class: 'sort', dataset: { sort: c.key },
          on: {
            click: () => {
              const textDefault = c.text ? 'ascending' : 'descending';
              const flip = (d) => (d === 'ascending' ? 'descending' : 'ascending');
              sort = { key: c.key, dir: active ? flip(sort.dir) : textDefault };
              render();
              wrap.querySelector(`button[data-sort="${c.key}"]`)?.focus();
            },
          },
        }, c.label, h('span', { class: 'sort-mark', 'aria-hidden': 'true' }, active ? (sort.dir === 'ascending' ? ' ▲' : ' ▼') : '')));
      return th;
    }));
    const body = sortRows(rows, sort.key, sort.dir).map((r) => h('tr', { dataset: { endpoint: r.endpoint, method: r.method } },
      COLUMNS.map((c) => {
        if (c.key === 'endpoint') {
          return h('th', { scope: 'row', class: 'endpoint-cell' }, h('a', { href: endpointHash(r.endpoint) }, r.endpoint));
        }
        if (c.text) return h('td', null, r[c.key]);
        return h('td', { class: 'num', dataset: { value: String(r[c.key] ?? '') } }, c.fmt(r[c.key]));
      })));
    const caption = h('caption', { class: 'visually-hidden' }, 'Endpoints by method; the column buttons sort the table');
    replace(wrap, body.length
      ? h('table', { id: 'endpoints', class: 'data' }, caption, h('thead', null, head), h('tbody', null, body))
      : h('table', { id: 'endpoints', class: 'data' }, caption, h('thead', null, head),
        h('tbody', null, h('tr', null, h('td', { colspan: String(COLUMNS.length), class: 'empty' }, 'No requests in this range.')))));
  };

  const load = loader(root);
  const update = () => load.run(async (stale) => {
    replace(subtitle, `${whose(app)}, ${rangeWords(app, { buckets: false })}`);
    const range = viewRange(app, errors);
    if (!range) return;
    const { startDate, endDate, timezone } = range;
    try {
      const stats = await get('/stats', { startDate, endDate, timezone, limit: 100, ...app.controls.scope() }, { signal: load.signal });
      if (stale()) return;
      errors.clear();
      rows = stats.topEndpoints || [];
      const shown = rows.length;
      replace(summary, shown < stats.uniqueEndpoints
        ? `The ${count(shown)} busiest endpoint and method pairs of ${count(stats.uniqueEndpoints)} endpoints.`
        : `${count(stats.uniqueEndpoints)} ${stats.uniqueEndpoints === 1 ? 'endpoint' : 'endpoints'}, by method.`);
      render();
    } catch (e) {
      if (stale()) return;
      errors.show([e]);
    }
  });

  replace(wrap, message('Loading…', 'muted'));
  update();
  return { update, destroy: () => load.abort() };
}
