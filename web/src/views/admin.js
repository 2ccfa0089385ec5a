// Admin: the top users of the range (GET /top-users) and the system's
// state (GET /system-metrics: traffic, ingest rate and lag, dead letters,
// storage; the last three for global admins).

import { get } from '../api.js';
import { h, replace, card, message, errorBox, table } from '../dom.js';
import { count, decimal, percent, ms, bytes, dateTime } from '../format.js';
import { heading, loader, settle, whose, rangeWords } from './common.js';

const SORTS = [
  { value: 'requests', label: 'Requests' },
  { value: 'errors', label: 'Errors' },
  { value: 'responseTime', label: 'Response time' },
  { value: 'bytes', label: 'Bytes' },
];

let sortBy = 'requests';

const WINDOW_WORDS = { lastHour: 'Last hour', last24Hours: 'Last 24 hours' };

function trafficTable(m) {
  const windows = ['lastHour', 'last24Hours'].filter((w) => m.traffic && m.traffic[w]);
  return table('system-traffic', 'Traffic', [
    { label: 'Window' }, { label: 'Requests', cls: 'num' }, { label: 'Errors (5xx)', cls: 'num' }, { label: 'Error rate', cls: 'num' },
    { label: 'p95', cls: 'num' }, { label: 'Active users', cls: 'num' }, { label: 'Active endpoints', cls: 'num' },
  ], windows.map((w) => {
    const t = m.traffic[w];
    return h('tr', { dataset: { window: w } },
      h('th', { scope: 'row' }, WINDOW_WORDS[w]),
      h('td', { class: 'num' }, count(t.requests)),
      h('td', { class: 'num' }, count(t.errors)),
      h('td', { class: 'num' }, percent(t.errorRate)),
      h('td', { class: 'num' }, ms(t.p95ResponseTime)),
      h('td', { class: 'num' }, count(m.activeUsers && m.activeUsers[w])),
      h('td', { class: 'num' }, count(m.activeEndpoints && m.activeEndpoints[w])));
  }));
}

function ingestBlock(st, tz) {
  const lag = Object.values(st.lagByPartition || {}).reduce((a, b) => a + b, 0);
  const parts = Object.entries(st.lagByPartition || {}).sort((a, b) => Number(a[0]) - Number(b[0]));
  return h('div', { id: 'ingest' },
    h('div', { class: 'cards' },
      card('ingest-rate', 'Records per second', decimal(st.recordsPerSecond), { value: String(st.recordsPerSecond ?? '') }),
      card('ingest-lag', 'Lag (records)', count(lag), { value: String(lag) }),
      card('ingest-stored', 'Stored', count(st.stored), { value: String(st.stored ?? '') }),
      card('ingest-rejected', 'Rejected', count(st.rejected), { value: String(st.rejected ?? '') }),
      card('ingest-duplicates', 'Duplicates dropped', count(st.duplicates), { value: String(st.duplicates ?? '') }),
      card('ingest-batches', 'Batches', count(st.batches), { value: String(st.batches ?? '') })),
    h('p', { class: 'muted' },
      `Last batch: ${count(st.lastBatchRecords)} records, loaded in ${ms(st.lastLoadMs)} at ${dateTime(st.lastLoadedAt, tz)}. `,
      `${count(st.partitions)} partitions${parts.length ? `; lag by partition: ${parts.map(([p, n]) => `${p}: ${count(n)}`).join(', ')}` : ''}.`,
      st.replays ? ` ${count(st.replays)} replays, ${count(st.loadRetries)} load retries.` : ''));
}

function deadLetterBlock(dl) {
  const reasons = Object.entries(dl.byReason || {}).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return h('div', { id: 'dead-letters', dataset: { value: String(dl.last24Hours) } },
    h('p', null, `${count(dl.last24Hours)} records went to the dead-letter topic in the last 24 hours.`),
    reasons.length ? table('dead-letter-reasons', 'Dead letters by reason', [{ label: 'Reason' }, { label: 'Records', cls: 'num' }],
      reasons.map(([r, n]) => h('tr', null, h('th', { scope: 'row' }, r), h('td', { class: 'num' }, count(n))))) : null);
}

function storageBlock(list) {
  const total = list.reduce((a, s) => a + s.bytesOnDisk, 0);
  return [
    h('p', { class: 'muted' }, `${bytes(total)} on disk in ${count(list.length)} tables.`),
    table('storage', 'Storage by table', [
      { label: 'Table' }, { label: 'Rows', cls: 'num' }, { label: 'On disk', cls: 'num' }, { label: 'Uncompressed', cls: 'num' },
      { label: 'Ratio', cls: 'num' }, { label: 'Parts', cls: 'num' },
    ], list.map((s) => h('tr', { dataset: { table: s.table } },
      h('th', { scope: 'row' }, s.table),
      h('td', { class: 'num' }, count(s.rows)),
      h('td', { class: 'num', dataset: { value: String(s.bytesOnDisk) } }, bytes(s.bytesOnDisk)),
      h('td', { class: 'num' }, bytes(s.uncompressedBytes)),
      h('td', { class: 'num' }, s.bytesOnDisk > 0 ? `${decimal(s.uncompressedBytes / s.bytesOnDisk)}×` : '—'),
      h('td', { class: 'num' }, count(s.parts))))),
  ];
}

export function mount(root, app) {
  const { title, subtitle } = heading('Admin');
  if (app.role === 'user') {
    replace(root, title, h('p', { class: 'notice' }, 'This view needs an admin key.'));
    return { update() {}, destroy() {} };
  }
  const sortSelect = h('select', { id: 'top-users-sort' }, SORTS.map((s) => h('option', { value: s.value }, s.label)));
  sortSelect.value = sortBy;
  const users = h('div', { id: 'top-users-box' }, message('Loading…', 'muted'));
  const system = h('div', { id: 'system-metrics' }, message('Loading…', 'muted'));
  replace(root, title, subtitle,
    h('section', { class: 'panel' },
      h('div', { class: 'panel-head' }, h('h2', null, 'Top users'),
        h('div', { class: 'control control-inline' }, h('label', { for: 'top-users-sort' }, 'Rank by'), sortSelect)),
      users),
    h('section', { class: 'panel' }, h('h2', null, 'System'), system));

  const load = loader(root);

  const renderUsers = (res) => {
    const list = res.users || [];
    if (list.length === 0) {
      replace(users, message('No requests in this range.'));
      return;
    }
    replace(users, table('top-users', 'Top users', [
      { label: 'Rank', cls: 'num' }, { label: 'Tenant' }, { label: 'User' }, { label: 'Requests', cls: 'num' },
      { label: 'Errors (5xx)', cls: 'num' }, { label: 'Error rate', cls: 'num' }, { label: 'Avg latency', cls: 'num' },
      { label: 'Bytes out', cls: 'num' },
    ], list.map((u) => h('tr', { dataset: { tenant: u.tenantId, user: u.userId } },
      h('td', { class: 'num' }, String(u.rank)),
      h('td', null, u.tenantId),
      h('th', { scope: 'row' }, h('button', {
        type: 'button', class: 'link', title: `Show only ${u.userId}'s usage`,
        on: { click: () => app.controls.setUser(u.userId, u.tenantId) },
      }, u.userId)),
      h('td', { class: 'num' }, count(u.requests)),
      h('td', { class: 'num' }, count(u.errors)),
      h('td', { class: 'num' }, percent(u.errorRate)),
      h('td', { class: 'num' }, ms(u.averageResponseTime)),
      h('td', { class: 'num' }, bytes(u.responseBytes))))));
  };

  const update = () => load.run(async (stale) => {
    const tz = app.controls.tz;
    replace(subtitle, `${whose(app)}, ${rangeWords(app, { buckets: false })}. Choosing a user narrows every view to them.`);
    const range = app.controls.range();
    const scope = app.controls.scope();
    const calls = [get('/system-metrics', scope, { signal: load.signal })];
    if (!range.error) {
      const { startDate, endDate, timezone } = range;
      calls.push(get('/top-users', { startDate, endDate, timezone, tenantId: scope.tenantId, sortBy, limit: 20 }, { signal: load.signal }));
    }
    const [[sys, sysErr], top] = await settle(...calls);
    if (stale()) return;
    if (range.error) replace(users, errorBox(new Error(range.error)));
    else if (top[0]) renderUsers(top[0]);
    else replace(users, errorBox(top[1]));
    if (!sys) {
      replace(system, errorBox(sysErr));
      return;
    }
    replace(system,
      h('p', { class: 'muted' }, `Checked ${dateTime(sys.checkedAt, tz)}.`),
      trafficTable(sys),
      h('h3', null, 'Ingest'),
      sys.ingest ? ingestBlock(sys.ingest, tz) : message(app.role === 'global' && !scope.tenantId
        ? 'This process does not run the ingester.' : 'Ingest figures are shown to global admins without a tenant chosen.', 'muted'),
      h('h3', null, 'Dead letters'),
      sys.deadLetters ? deadLetterBlock(sys.deadLetters) : message('Dead letters are shown to global admins without a tenant chosen.', 'muted'),
      h('h3', null, 'Storage'),
      sys.storage && sys.storage.length ? storageBlock(sys.storage) : message('Storage is shown to global admins without a tenant chosen.', 'muted'));
  });

  sortSelect.addEventListener('change', () => {
    sortBy = sortSelect.value;
    update();
  });

  update();
  return { update, destroy: () => load.abort() };
}
