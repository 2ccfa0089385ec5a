// Pieces the views share: their heading, the line saying what is shown,
// and the inline error area.

import { h, replace, errorBox } from '../dom.js';
import { isAbort } from '../api.js';

const GRAIN_WORDS = { minute: 'per minute', hour: 'per hour', day: 'per day', week: 'per week', month: 'per month' };

// whose says whose usage a view shows.
export function whose(app) {
  if (app.role === 'user') return 'your usage';
  const { tenantId, userId } = app.controls.scope();
  if (userId && tenantId) return `user ${userId} of tenant ${tenantId}`;
  if (userId) return `user ${userId}`;
  if (tenantId) return `tenant ${tenantId}`;
  return app.role === 'global' ? 'all tenants' : 'your tenant';
}

// rangeWords says what range and buckets a view shows.
export function rangeWords(app, { buckets = true } = {}) {
  const r = app.controls.range();
  const g = app.controls.prefs.granularity;
  const parts = [r.label || ''];
  if (buckets) parts.push(GRAIN_WORDS[g] || g);
  return `${parts.filter(Boolean).join(', ')} (${app.controls.tz.replace(/_/g, ' ')})`;
}

// heading is a view's title (focused after navigation) and its subtitle.
export function heading(title, subtitle) {
  const sub = h('p', { class: 'subtitle', id: 'view-subtitle' }, subtitle || '');
  return { title: h('h1', { id: 'view-title', tabindex: '-1' }, title), subtitle: sub };
}

// errorArea shows the errors of one load, or nothing.
export function errorArea(id) {
  const el = h('div', { id, class: 'errors' });
  return {
    el,
    show(errors) {
      const seen = new Set();
      const boxes = [];
      for (const e of errors) {
        if (!e || isAbort(e)) continue;
        const k = `${e.status}|${e.message}`;
        if (seen.has(k)) continue;
        seen.add(k);
        boxes.push(errorBox(e));
      }
      replace(el, boxes);
    },
    clear() {
      replace(el);
    },
  };
}

// viewRange is the controls' range, or null once its error is shown.
export function viewRange(app, errors) {
  const range = app.controls.range();
  if (range.error) {
    errors.show([new Error(range.error)]);
    return null;
  }
  return range;
}

// loader runs one load at a time: a newer load makes older answers
// stale, and leaving the view cancels the calls in flight.
export function loader(root) {
  let seq = 0;
  const ctrl = new AbortController();
  return {
    signal: ctrl.signal,
    async run(fn) {
      const mine = ++seq;
      root.setAttribute('aria-busy', 'true');
      try {
        await fn(() => mine !== seq || ctrl.signal.aborted);
      } finally {
        if (mine === seq) root.setAttribute('aria-busy', 'false');
      }
    },
    abort() {
      ctrl.abort();
    },
  };
}

// settle waits for every call and returns [value, error] pairs.
export async function settle(...promises) {
  const out = await Promise.allSettled(promises);
  return out.map((r) => (r.status === 'fulfilled' ? [r.value, null] : [null, r.reason]));
}
