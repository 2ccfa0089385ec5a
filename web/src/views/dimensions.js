// Dimensions: the declared custom dimensions in the range (GET
// /dimensions): their busiest values, how many distinct values were kept
// against the cap, and the requests folded into __other__ or __invalid__.

import { get } from '../api.js';
import { h, replace, message } from '../dom.js';
import { count, percent } from '../format.js';
import { heading, errorArea, loader, whose, rangeWords, viewRange } from './common.js';

const FOLDED = { __other__: 'past the cap', __invalid__: 'not of the type' };

function summary(d) {
  const kept = `${count(d.distinctValues)} of ${count(d.cap)} values kept`;
  if (!d.requests) return `No request carried it. ${kept}.`;
  const parts = [`${count(d.requests)} requests carried it; ${kept}.`];
  if (d.otherRequests) parts.push(` ${count(d.otherRequests)} (${percent((100 * d.otherRequests) / d.requests)}) had a value past the cap and count as __other__.`);
  if (d.invalidRequests) parts.push(` ${count(d.invalidRequests)} had a value that is not ${d.type === 'int' ? 'an int' : `a ${d.type}`} (__invalid__).`);
  return parts.join('');
}

function panel(d) {
  const id = `dimension-${d.name}`;
  const rows = d.values.map((v) => h('tr', { dataset: { value: v.value } },
    h('th', { scope: 'row' }, v.value, FOLDED[v.value] ? h('span', { class: 'muted' }, ` (${FOLDED[v.value]})`) : ''),
    h('td', { class: 'num', dataset: { value: String(v.requests) } }, count(v.requests)),
    h('td', { class: 'num' }, d.requests ? percent((100 * v.requests) / d.requests) : '—')));
  const table = h('table', { id: `${id}-values`, class: 'data' },
    h('caption', { class: 'visually-hidden' }, `Busiest values of ${d.name}`),
    h('thead', null, h('tr', null,
      h('th', { scope: 'col' }, 'Value'), h('th', { scope: 'col', class: 'num' }, 'Requests'), h('th', { scope: 'col', class: 'num' }, 'Share'))),
    h('tbody', null, rows.length ? rows : h('tr', null, h('td', { colspan: '3', class: 'empty' }, 'No values in this range.'))));
  return h('section', { class: 'panel', id },
    h('h2', null, d.name, h('span', { class: 'muted' }, ` · ${d.type}, cap ${count(d.cap)} per tenant`)),
    h('p', {
      id: `${id}-summary`,
      dataset: { requests: String(d.requests), distinct: String(d.distinctValues), other: String(d.otherRequests), invalid: String(d.invalidRequests) },
    }, summary(d)),
    h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': `Values of ${d.name}` }, table));
}

export function mount(root, app) {
  const { title, subtitle } = heading('Dimensions');
  const errors = errorArea('dimensions-error');
  const list = h('div', { id: 'dimensions' }, message('Loading…', 'muted'));
  replace(root, title, subtitle, errors.el, list);

  const load = loader(root);
  const update = () => load.run(async (stale) => {
    replace(subtitle, `${whose(app)}, ${rangeWords(app, { buckets: false })}; whole hours`);
    const range = viewRange(app, errors);
    if (!range) return;
    const { startDate, endDate, timezone } = range;
    try {
      const res = await get('/dimensions', { startDate, endDate, timezone, limit: 10, ...app.controls.scope() }, { signal: load.signal });
      if (stale()) return;
      errors.clear();
      replace(list, res.dimensions.length
        ? res.dimensions.map(panel)
        : message('No custom dimensions are declared: set APIMETER_DIMENSIONS (for example region:string:50) and send those keys in metadata.'));
    } catch (e) {
      if (stale()) return;
      errors.show([e]);
    }
  });

  update();
  return { update, destroy: () => load.abort() };
}
