// Building DOM from data without HTML strings: text always goes in as
// text, so nothing the API returns can become markup.

import { ApiError } from './api.js';
import { seconds } from './format.js';

// h creates an element. attrs: class, dataset (object), on (object of
// listeners), hidden, and any other attribute; false/null/undefined
// attributes are left out. Children: nodes, strings, numbers, arrays;
// null and false are skipped.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.append(c);
    else el.append(String(c));
  }
}

// replace empties an element and puts new children in.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// errorText says what went wrong in words for the page.
export function errorText(err) {
  if (!(err instanceof ApiError)) return err && err.message ? err.message : String(err);
  if (err.status === 429) {
    let s = err.message;
    if (err.retryAfter !== null) s += ` Try again in ${seconds(err.retryAfter)} (Retry-After: ${err.retryAfter} s).`;
    const up = err.body && err.body.upgrade && err.body.upgrade.message;
    if (up) s += ` ${up}`;
    return s;
  }
  return err.message;
}

// errorBox is an inline error (never an alert dialog).
export function errorBox(err, extra) {
  const box = h('div', { class: 'error', role: 'alert', dataset: { status: err instanceof ApiError ? String(err.status) : '' } },
    h('p', null, errorText(err)));
  if (extra) box.append(extra);
  return box;
}

// message is a plain notice (an empty state, a hint).
export function message(text, cls = 'empty') {
  return h('p', { class: cls }, text);
}

// table builds a scrollable table: columns [{label, cls}], rows of cells.
export function table(id, caption, columns, rows) {
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': caption },
    h('table', { id },
      h('caption', { class: 'visually-hidden' }, caption),
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.cls }, c.label)))),
      h('tbody', null, rows)));
}

// card is one figure: a label and a value.
export function card(id, label, value, data) {
  return h('div', { class: 'card' },
    h('span', { class: 'card-label', id: id ? `${id}-label` : null }, label),
    h('span', { class: 'card-value', id, 'aria-labelledby': id ? `${id}-label ${id}` : null, dataset: data }, value));
}
