// Time charts on uPlot: times on the x axis in the chosen zone, sized to
// their container (a ResizeObserver follows it), an empty state instead
// of a flat line when there is nothing to draw.

import uPlot from 'uplot';
import { dateTime, ms, count, DASH } from './format.js';
import { h, replace } from './dom.js';
import { wall } from './time.js';

export const COLORS = {
  requests: '#2563eb',
  errors: '#dc2626',
  p50: '#059669',
  p95: '#d97706',
  p99: '#7c3aed',
  average: '#0891b2',
};

const AXIS = '#4b5563';
const GRID = 'rgba(17, 24, 39, 0.08)';

const compact = new Intl.NumberFormat('en-US', { notation: 'compact', maximumFractionDigits: 1 });

// Value formats of the y axes and the legend.
export const FORMATS = {
  count: { axis: (v) => compact.format(v), legend: count },
  ms: { axis: (v) => ms(v), legend: ms },
};

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad2 = (n) => String(n).padStart(2, '0');

// Whole-number steps for count axes (no 0.5 requests).
const COUNT_INCRS = [1, 2, 5];
for (let m = 10; m <= 1e12; m *= 10) COUNT_INCRS.push(m, 2.5 * m, 5 * m);

// timeTicks labels the x axis on a 24-hour clock in zone tz, naming the
// day (and year) on the first tick and wherever it changes.
export function timeTicks(splits, incr, tz) {
  let prev = null;
  return splits.map((s) => {
    const w = wall(s * 1000, tz);
    const day = `${MONTHS[w.month - 1]} ${w.day}`;
    let label;
    if (incr < 86_400) {
      const newDay = !prev || prev.day !== w.day || prev.month !== w.month || prev.year !== w.year;
      label = `${pad2(w.hour)}:${pad2(w.minute)}${newDay ? `\n${day}` : ''}`;
    } else if (incr < 28 * 86_400) {
      label = `${day}${!prev || prev.year !== w.year ? `\n${w.year}` : ''}`;
    } else {
      label = `${MONTHS[w.month - 1]} ${w.year}`;
    }
    prev = w;
    return label;
  });
}

function heightFor(width) {
  return width < 520 ? 200 : 260;
}

function fromZero(u, min, max) {
  return [0, max > 0 ? max * 1.08 : 1];
}

// timeChart draws spec.series ([{label, color, scale, format}], scale
// "left" or "right") into el. set() takes x values (Unix seconds) and one
// column per series; el's data-points attribute says how many points are
// drawn (0 for the empty state).
export function timeChart(el, spec) {
  let plot = null;
  let zone = null;
  let lastWidth = 0;
  let frame = 0;
  el.classList.add('chart');
  el.setAttribute('role', 'img');
  el.dataset.points = '0';

  const options = (width) => {
    const hasRight = spec.series.some((s) => s.scale === 'right');
    const fmt = (scale) => FORMATS[(spec.series.find((s) => (s.scale || 'left') === scale) || {}).format || 'count'];
    const incrs = (scale) => (fmt(scale) === FORMATS.count ? { incrs: COUNT_INCRS } : {});
    const axes = [
      { stroke: AXIS, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 }, space: 60,
        values: (u, splits, axisIdx, space, incr) => timeTicks(splits, incr, zone) },
      { scale: 'left', stroke: AXIS, size: 64, grid: { stroke: GRID, width: 1 }, ticks: { stroke: GRID, width: 1 },
        ...incrs('left'), values: (u, vals) => vals.map((v) => fmt('left').axis(v)) },
    ];
    if (hasRight) {
      axes.push({ scale: 'right', side: 1, stroke: AXIS, size: 56, grid: { show: false }, ticks: { stroke: GRID, width: 1 },
        ...incrs('right'), values: (u, vals) => vals.map((v) => fmt('right').axis(v)) });
    }
    return {
      width,
      height: heightFor(width),
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), zone),
      scales: { x: { time: true }, left: { range: fromZero }, right: { range: fromZero } },
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: 'Time', value: (u, v) => (v === null || v === undefined ? DASH : dateTime(v * 1000, zone, { zone: false })) },
        ...spec.series.map((s) => ({
          label: s.label,
          stroke: s.color,
          width: 2,
          scale: s.scale || 'left',
          spanGaps: false,
          points: { size: 5 },
          value: (u, v) => (v === null || v === undefined ? DASH : FORMATS[s.format || 'count'].legend(v)),
        })),
      ],
      axes,
    };
  };

  const width = () => Math.max(160, Math.floor(el.clientWidth));

  const observer = new ResizeObserver(() => {
    cancelAnimationFrame(frame);
    // Resizing in the next frame keeps the observer out of a resize loop.
    frame = requestAnimationFrame(() => {
      const w = width();
      if (plot && w !== lastWidth) {
        lastWidth = w;
        plot.setSize({ width: w, height: heightFor(w) });
      }
    });
  });
  observer.observe(el);

  return {
    // set draws the data; emptyText replaces the chart when empty is true.
    set({ times, columns, tz, empty = false, emptyText = 'No requests in this range.' }) {
      if (empty || times.length === 0) {
        plot?.destroy();
        plot = null;
        replace(el, h('p', { class: 'empty chart-empty' }, emptyText));
        el.dataset.points = '0';
        el.setAttribute('aria-label', `${spec.label}: ${emptyText}`);
        return;
      }
      const data = [times, ...columns];
      if (plot && zone === tz) {
        plot.setData(data);
      } else {
        plot?.destroy();
        replace(el);
        zone = tz;
        lastWidth = width();
        plot = new uPlot(options(lastWidth), data, el);
      }
      el.dataset.points = String(times.length);
      el.setAttribute('aria-label', `${spec.label}: ${times.length} points from ${dateTime(times[0] * 1000, tz)} to ${dateTime(times[times.length - 1] * 1000, tz)}`);
    },
    destroy() {
      cancelAnimationFrame(frame);
      observer.disconnect();
      plot?.destroy();
      plot = null;
    },
  };
}

// columnsOf takes a series answer's first group and returns x values and
// one column per metric. Latency of a bucket without requests is a gap,
// not a zero.
export function columnsOf(seriesJSON, metrics) {
  const item = seriesJSON && seriesJSON.series && seriesJSON.series[0];
  const points = item ? item.points : [];
  const times = points.map((p) => Date.parse(p.time) / 1000);
  const columns = metrics.map((m) => points.map((p) => {
    const v = p[m];
    if (v === undefined || v === null) return null;
    if (/ResponseTime$/.test(m) && p.requests === 0) return null;
    return v;
  }));
  const total = points.reduce((n, p) => n + (p.requests || 0), 0);
  return { times, columns, total };
}
