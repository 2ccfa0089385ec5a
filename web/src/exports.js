// Downloads of the raw events of the range on screen: POST /export, the
// answer read as a Blob and saved under the name the server gives.

import { request, filenameOf } from './api.js';
import { h, replace, errorText } from './dom.js';
import { count } from './format.js';

const FORMATS = [
  { format: 'csv', label: 'CSV', ext: 'csv' },
  { format: 'json', label: 'JSON', ext: 'json' },
  { format: 'arrow', label: 'Arrow', ext: 'arrow' },
];

function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h('a', { href: url, download: name, class: 'visually-hidden' });
  document.body.append(a);
  a.click();
  a.remove();
  // The click has started the download; the URL can go shortly after.
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

// exportPanel is the export buttons and their status line.
export function exportPanel(app) {
  const status = h('p', { id: 'export-status', class: 'status', role: 'status', 'aria-live': 'polite' });
  const buttons = FORMATS.map((f) => h('button', { type: 'button', id: `export-${f.format}`, dataset: { format: f.format } },
    `Download ${f.label}`));
  let busy = false;

  const run = async (f) => {
    if (busy) return;
    const range = app.controls.range();
    if (range.error) {
      status.dataset.state = 'error';
      replace(status, range.error);
      return;
    }
    busy = true;
    for (const b of buttons) b.disabled = true;
    status.dataset.state = 'busy';
    delete status.dataset.rows;
    replace(status, `Preparing the ${f.label} export…`);
    try {
      const body = { format: f.format, dataset: 'events', startDate: range.startDate, endDate: range.endDate, timezone: range.timezone };
      const { tenantId, userId } = app.controls.scope();
      if (tenantId) body.tenantId = tenantId;
      if (userId) body.userId = userId;
      const res = await request('POST', '/export', { body, raw: true, accept: '*/*' });
      const blob = await res.blob();
      const name = filenameOf(res.headers.get('Content-Disposition')) || `apimeter-events.${f.ext}`;
      const rows = res.headers.get('X-Export-Rows');
      save(blob, name);
      status.dataset.state = 'done';
      status.dataset.rows = rows ?? '';
      status.dataset.filename = name;
      const n = rows === null ? null : Number(rows);
      replace(status, n === null ? `Downloaded ${name}.` : `Downloaded ${name}: ${count(n)} ${n === 1 ? 'row' : 'rows'}.`);
    } catch (e) {
      status.dataset.state = 'error';
      replace(status, h('span', { class: 'error-text' }, `The export failed: ${errorText(e)}`));
    } finally {
      busy = false;
      for (const b of buttons) b.disabled = false;
    }
  };
  FORMATS.forEach((f, i) => buttons[i].addEventListener('click', () => run(f)));

  return h('section', { class: 'panel', 'aria-labelledby': 'export-title' },
    h('h2', { id: 'export-title' }, 'Export raw events'),
    h('p', { class: 'muted' }, 'Every usage record of the range and scope on screen, as a file.'),
    h('div', { class: 'button-row' }, buttons),
    status);
}
