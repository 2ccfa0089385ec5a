// Health: GET /health for the key's scope; for admins also the incidents
// (GET /admin/incidents, each timeline from GET /admin/incidents/:id) and
// the background jobs (GET /admin/jobs), which only global admins read.

import { get, isAbort } from '../api.js';
import { h, replace, card, message, errorBox, table } from '../dom.js';
import { count, decimal, percent, ms, nanos, dateTime, statusLabel } from '../format.js';
import { heading, loader, settle, whose } from './common.js';

const METRIC_WORDS = { errorRate: 'error rate', averageResponseTime: 'average response time' };

function issueValue(metric, v) {
  return metric === 'errorRate' ? percent(v) : ms(v);
}

function healthBlock(res, tz) {
  const m = res.metrics || {};
  const issues = res.issues || [];
  return [
    h('div', { class: 'health-head' },
      h('span', { id: 'health-status', class: `badge status-${res.status}`, dataset: { status: res.status } }, statusLabel(res.status)),
      h('span', { class: 'muted' }, `Checked ${dateTime(res.checkedAt, tz)} over the five minutes from ${dateTime(res.window && res.window.startDate, tz, { zone: false })} to ${dateTime(res.window && res.window.endDate, tz)}.`)),
    h('div', { class: 'cards', id: 'health-metrics' },
      card('health-rpm', 'Requests per minute', decimal(m.requestsPerMinute), { value: String(m.requestsPerMinute ?? '') }),
      card('health-error-rate', 'Error rate', percent(m.errorRate), { value: String(m.errorRate ?? '') }),
      card('health-average', 'Average response', ms(m.averageResponseTime), { ms: String(m.averageResponseTime ?? '') }),
      card('health-endpoints', 'Active endpoints', count(m.activeEndpoints), { value: String(m.activeEndpoints ?? '') })),
    h('h3', null, 'Issues'),
    issues.length === 0
      ? h('p', { id: 'health-issues', class: 'empty' }, 'No issues.')
      : table('health-issues', 'Health issues', [
        { label: 'Where' }, { label: 'Metric' }, { label: 'Value', cls: 'num' }, { label: 'Threshold', cls: 'num' }, { label: 'Status' },
      ], issues.map((is) => h('tr', { dataset: { status: is.status } },
        h('td', null, is.scope === 'global' ? 'All endpoints' : `${is.method ? is.method + ' ' : ''}${is.endpoint || ''}`),
        h('td', null, METRIC_WORDS[is.metric] || is.metric),
        h('td', { class: 'num' }, issueValue(is.metric, is.value)),
        h('td', { class: 'num' }, issueValue(is.metric, is.threshold)),
        h('td', null, h('span', { class: `badge status-${is.status}` }, statusLabel(is.status)))))),
  ];
}

function timeline(incident, tz) {
  const updates = incident.updates || [];
  if (updates.length === 0) return message('No timeline entries.');
  return h('ol', { class: 'timeline' }, updates.map((u) => h('li', { dataset: { status: u.status } },
    h('time', { datetime: u.createdAt }, dateTime(u.createdAt, tz)), ' ',
    h('span', { class: 'badge' }, statusLabel(u.status)), ' ',
    h('span', null, u.message),
    h('span', { class: 'muted' }, ` — ${u.author}`),
    u.metrics && Object.keys(u.metrics).length
      ? h('span', { class: 'muted metrics' }, ` (${Object.entries(u.metrics).sort().map(([k, v]) => `${k} ${Number.isInteger(v) ? count(v) : decimal(v)}`).join(', ')})`)
      : null)));
}

export function mount(root, app) {
  const { title, subtitle } = heading('Health');
  const health = h('div', { id: 'health' }, message('Loading…', 'muted'));
  const incidents = h('div', { id: 'incidents' });
  const jobs = h('div', { id: 'jobs-box' });
  const admin = app.role !== 'user';
  replace(root, title, subtitle,
    h('section', { class: 'panel' }, h('h2', null, 'Status'), health),
    admin ? h('section', { class: 'panel' }, h('h2', null, 'Incidents'), incidents) : null,
    admin ? h('section', { class: 'panel' }, h('h2', null, 'Background jobs'), jobs) : null);

  // Which incidents the user opened or closed, kept across refreshes.
  const opened = new Set();
  const closed = new Set();
  const load = loader(root);

  const incidentItem = (i, tz) => {
    const body = h('div', { class: 'incident-body' },
      i.description ? h('p', null, i.description) : null,
      h('p', { class: 'muted' },
        `Severity ${i.severity}; ${i.scope === 'endpoint' && i.endpoint ? `endpoint ${i.endpoint}` : 'all endpoints'}`,
        i.tenantId ? `; tenant ${i.tenantId}` : '', '.'),
      h('div', { class: 'incident-timeline' }, message('Loading the timeline…', 'muted')));
    const el = h('details', { class: 'incident', id: `incident-${i.id}`, dataset: { status: i.status, severity: i.severity } },
      h('summary', null,
        h('span', { class: `badge severity-${i.severity}` }, statusLabel(i.severity)), ' ',
        h('span', { class: 'incident-title' }, i.title), ' ',
        h('span', { class: 'badge' }, statusLabel(i.status)), ' ',
        h('span', { class: 'muted' }, i.resolvedAt
          ? `${dateTime(i.startedAt, tz)} – ${dateTime(i.resolvedAt, tz)}`
          : `since ${dateTime(i.startedAt, tz)}`)),
      body);
    const fill = async () => {
      const box = body.querySelector('.incident-timeline');
      try {
        const full = await get(`/admin/incidents/${encodeURIComponent(i.id)}`, null, { signal: load.signal });
        replace(box, timeline(full, app.controls.tz));
      } catch (e) {
        if (!isAbort(e)) replace(box, errorBox(e));
      }
    };
    el.addEventListener('toggle', () => {
      if (el.open) {
        opened.add(i.id);
        closed.delete(i.id);
        fill();
      } else {
        opened.delete(i.id);
        closed.add(i.id);
      }
    });
    // Open incidents show their timeline unless the user closed them.
    if (opened.has(i.id) || (i.status !== 'resolved' && !closed.has(i.id))) el.open = true;
    return el;
  };

  const renderIncidents = (open, recent, tz) => {
    const openIds = new Set(open.map((i) => i.id));
    const rest = recent.filter((i) => !openIds.has(i.id));
    replace(incidents,
      h('h3', null, 'Open'),
      open.length ? h('div', { id: 'incidents-open' }, open.map((i) => incidentItem(i, tz))) : h('p', { id: 'incidents-open', class: 'empty' }, 'No open incidents.'),
      h('h3', null, 'Recent'),
      rest.length ? h('div', { id: 'incidents-recent' }, rest.map((i) => incidentItem(i, tz))) : h('p', { id: 'incidents-recent', class: 'empty' }, 'No other recent incidents.'));
  };

  const renderJobs = (res, tz) => {
    const jobRows = (res.jobs || []).map((j) => h('tr', { dataset: { job: j.name } },
      h('th', { scope: 'row' }, j.name),
      h('td', null, j.schedule),
      h('td', null, dateTime(j.nextRun, tz)),
      h('td', null, j.running ? 'running' : 'idle'),
      h('td', null, j.lastRun ? `${j.lastRun.outcome}, ${dateTime(j.lastRun.start, tz)}` : '—')));
    const runRows = (res.runs || []).map((r) => h('tr', { dataset: { outcome: r.outcome } },
      h('th', { scope: 'row' }, r.job),
      h('td', null, dateTime(r.start, tz)),
      h('td', { class: 'num' }, nanos(r.duration)),
      h('td', { class: 'num' }, count(r.attempts)),
      h('td', null, h('span', { class: `badge outcome-${r.outcome}` }, r.outcome)),
      h('td', null, r.trigger),
      h('td', null, r.instance),
      h('td', { class: 'wrap' }, r.error || '')));
    replace(jobs,
      jobRows.length
        ? table('jobs', 'Jobs on this replica', [{ label: 'Job' }, { label: 'Schedule' }, { label: 'Next run' }, { label: 'State' }, { label: 'Last run here' }], jobRows)
        : message('This process does not run the scheduler; its runs are below.'),
      h('h3', null, 'Recent runs'),
      runRows.length
        ? table('job-runs', 'Recent job runs', [{ label: 'Job' }, { label: 'Started' }, { label: 'Took', cls: 'num' },
          { label: 'Attempts', cls: 'num' }, { label: 'Outcome' }, { label: 'Trigger' }, { label: 'Replica' }, { label: 'Error' }], runRows)
        : message('No runs yet.'));
  };

  const update = () => load.run(async (stale) => {
    const tz = app.controls.tz;
    replace(subtitle, `The last five minutes of ${whose(app)}; times in ${tz.replace(/_/g, ' ')}.`);
    const scope = app.controls.scope();
    const calls = [get('/health', scope, { signal: load.signal })];
    // Incidents and jobs are for admins of every tenant: a tenant admin's
    // calls would only be refused.
    const global = app.role === 'global';
    if (global) {
      calls.push(
        get('/admin/incidents', { status: 'open', limit: 100 }, { signal: load.signal }),
        get('/admin/incidents', { limit: 20 }, { signal: load.signal }),
        get('/admin/jobs', { limit: 20 }, { signal: load.signal }));
    }
    const [[hl, hlErr], open, recent, jb] = await settle(...calls);
    if (stale()) return;
    replace(health, hl ? healthBlock(hl, tz) : errorBox(hlErr));
    if (!admin) return;
    const forbidden = { status: 403 };
    const incErr = global ? open[1] || recent[1] : forbidden;
    if (incErr) {
      replace(incidents, incErr.status === 403
        ? h('p', { class: 'notice', id: 'incidents-forbidden' }, 'Incidents are visible to admins of every tenant.')
        : errorBox(incErr));
    } else {
      renderIncidents(open[0].incidents || [], recent[0].incidents || [], tz);
    }
    const [jobsRes, jobsErr] = global ? jb : [null, forbidden];
    if (jobsErr) {
      replace(jobs, jobsErr.status === 403
        ? h('p', { class: 'notice', id: 'jobs-forbidden' }, 'Jobs are visible to admins of every tenant.')
        : errorBox(jobsErr));
    } else {
      renderJobs(jobsRes, tz);
    }
  });

  update();
  return { update, destroy: () => load.abort() };
}
