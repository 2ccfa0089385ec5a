// Wall clocks in a chosen IANA zone, and the ranges the controls ask for.
// The API takes RFC 3339 instants or YYYY-MM-DD dates read in the
// request's timezone (a date-only end includes that whole day).

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const partFormats = new Map();

function partFormat(tz) {
  let f = partFormats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    });
    partFormats.set(tz, f);
  }
  return f;
}

// wall is the wall clock of instant ms in zone tz.
export function wall(ms, tz) {
  const out = {};
  for (const p of partFormat(tz).formatToParts(new Date(ms))) {
    if (p.type !== 'literal') out[p.type] = Number(p.value);
  }
  return { year: out.year, month: out.month, day: out.day, hour: out.hour % 24, minute: out.minute, second: out.second };
}

// offset is how far zone tz is ahead of UTC at instant ms, in ms.
export function offset(ms, tz) {
  const w = wall(ms, tz);
  const asUTC = Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, w.second);
  return asUTC - (ms - (((ms % 1000) + 1000) % 1000));
}

// instant is the instant a wall clock names in zone tz. A wall time that
// occurs twice (clocks going back) maps to its first occurrence; one in a
// spring-forward gap maps past the gap, as clocks read it.
export function instant(w, tz) {
  const guess = Date.UTC(w.year, w.month - 1, w.day, w.hour ?? 0, w.minute ?? 0, w.second ?? 0);
  const before = guess - offset(guess - DAY, tz);
  const after = guess - offset(guess + DAY, tz);
  const fits = (t) => {
    const x = wall(t, tz);
    return Date.UTC(x.year, x.month - 1, x.day, x.hour, x.minute, x.second) === guess;
  };
  const ok = [before, after].filter(fits);
  return ok.length ? Math.min(...ok) : before;
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

// dateString is the YYYY-MM-DD date of instant ms in zone tz.
export function dateString(ms, tz) {
  const w = wall(ms, tz);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}`;
}

// toLocalInput is the value of an <input type="datetime-local"> showing
// instant ms in zone tz.
export function toLocalInput(ms, tz) {
  const w = wall(ms, tz);
  return `${pad(w.year, 4)}-${pad(w.month)}-${pad(w.day)}T${pad(w.hour)}:${pad(w.minute)}`;
}

// inputValue turns an API date (an instant, or a YYYY-MM-DD date whose
// end includes the whole day) into a datetime-local value in zone tz.
export function inputValue(apiDate, tz, isEnd) {
  const d = /^(\d{4})-(\d{2})-(\d{2})$/.exec(apiDate || '');
  if (!d) return toLocalInput(Date.parse(apiDate), tz);
  const day = new Date(Date.UTC(+d[1], +d[2] - 1, +d[3] + (isEnd ? 1 : 0)));
  return `${day.toISOString().slice(0, 10)}T00:00`;
}

// fromLocalInput reads an <input type="datetime-local"> value as a wall
// clock in zone tz; NaN when it is empty or malformed.
export function fromLocalInput(value, tz) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?$/.exec(value || '');
  if (!m) return NaN;
  return instant({ year: +m[1], month: +m[2], day: +m[3], hour: +m[4], minute: +m[5], second: +(m[6] || 0) }, tz);
}

// ceilMinute rounds an instant up to the next whole minute (every zone's
// offset is a whole number of minutes, so minutes line up everywhere).
function ceilMinute(ms) {
  return Math.ceil(ms / MINUTE) * MINUTE;
}

// ceilHour rounds an instant up to the next whole hour of zone tz.
function ceilHour(ms, tz) {
  const m = ceilMinute(ms);
  const w = wall(m, tz);
  return w.minute === 0 ? m : m + (60 - w.minute) * MINUTE;
}

export const PRESETS = {
  '24h': { label: 'the last 24 hours', span: DAY, days: 2, granularity: 'hour' },
  '7d': { label: 'the last 7 days', span: 7 * DAY, days: 7, granularity: 'hour' },
  '30d': { label: 'the last 30 days', span: 30 * DAY, days: 30, granularity: 'day' },
};

const FINE = new Set(['minute', 'hour']);

// rangeOf turns the controls into the API's startDate, endDate and
// timezone. Fine buckets (minute, hour) get a rolling window ending at
// the current bucket's end, so the series does not run into the future;
// coarse ones (day, week, month) get whole days in the zone, which the
// daily rollups answer exactly.
export function rangeOf({ preset, start, end, granularity, tz }, now = Date.now()) {
  if (preset === 'custom') {
    const s = fromLocalInput(start, tz);
    const e = fromLocalInput(end, tz);
    if (Number.isNaN(s) || Number.isNaN(e)) return { error: 'Choose a start and an end for the custom range.' };
    if (e <= s) return { error: 'The end of the custom range must be after its start.' };
    return { startDate: new Date(s).toISOString(), endDate: new Date(e).toISOString(), timezone: tz, label: 'the chosen range' };
  }
  const p = PRESETS[preset] || PRESETS['7d'];
  if (FINE.has(granularity)) {
    const e = granularity === 'minute' ? ceilMinute(now) : ceilHour(now, tz);
    return { startDate: new Date(e - p.span).toISOString(), endDate: new Date(e).toISOString(), timezone: tz, label: p.label };
  }
  const today = wall(now, tz);
  const first = instant({ year: today.year, month: today.month, day: today.day - (p.days - 1), hour: 12 }, tz);
  return { startDate: dateString(first, tz), endDate: dateString(now, tz), timezone: tz, label: p.label };
}

// defaultZone is the browser's zone, or UTC when it has none.
export function defaultZone() {
  try {
    return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
  } catch {
    return 'UTC';
  }
}

// zones lists the zones to choose from, UTC first.
export function zones(current) {
  let list = [];
  try {
    list = Intl.supportedValuesOf('timeZone');
  } catch {
    list = [];
  }
  const out = ['UTC', ...list.filter((z) => z !== 'UTC')];
  if (current && !out.includes(current)) out.splice(1, 0, current);
  return out;
}

// toSeconds reads an RFC 3339 time as Unix seconds (uPlot's x values).
export function toSeconds(iso) {
  return Date.parse(iso) / 1000;
}
