// Numbers, durations, sizes and times as people read them. One locale
// (en-US grouping: 1,234,567) so every screen and test reads the same;
// times are always shown in the zone the user picked.

const LOCALE = 'en-US';
const DASH = '—';

const integer = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat(LOCALE, { minimumFractionDigits: 1, maximumFractionDigits: 1 });

function missing(v) {
  return v === null || v === undefined || Number.isNaN(v);
}

// count formats a whole number: 1,234,567.
export function count(n) {
  return missing(n) ? DASH : integer.format(n);
}

// decimal formats a number with one decimal: 1,234.5.
export function decimal(n) {
  return missing(n) ? DASH : oneDecimal.format(n);
}

// percent formats a percentage (0-100) with one decimal: 12.3 %.
export function percent(p) {
  if (missing(p)) return DASH;
  if (p > 0 && p < 0.05) return '< 0.1 %';
  return `${oneDecimal.format(p)} %`;
}

// ms formats milliseconds: 4.5 ms, 245 ms, 1.2 s, 2.5 min.
export function ms(v) {
  if (missing(v)) return DASH;
  const a = Math.abs(v);
  if (a === 0) return '0 ms';
  if (a < 10) return `${oneDecimal.format(v)} ms`;
  if (Math.round(a) < 1000) return `${integer.format(v)} ms`;
  if (a < 60_000) return `${oneDecimal.format(v / 1000)} s`;
  return `${oneDecimal.format(v / 60_000)} min`;
}

// nanos formats a Go time.Duration (nanoseconds in JSON) like ms.
export function nanos(ns) {
  return missing(ns) ? DASH : ms(ns / 1e6);
}

const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];

// bytes formats a size: 512 B, 1.2 MiB.
export function bytes(n) {
  if (missing(n)) return DASH;
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < BYTE_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${integer.format(v)} B` : `${oneDecimal.format(v)} ${BYTE_UNITS[i]}`;
}

// seconds formats a wait: 45 s, 12 min, 3 h 5 min, 3 d 17 h.
export function seconds(s) {
  if (missing(s)) return DASH;
  const n = Math.max(0, Math.ceil(s));
  if (n < 60) return `${n} s`;
  if (n < 3600) return `${Math.ceil(n / 60)} min`;
  if (n < 86_400) {
    const h = Math.floor(n / 3600);
    const m = Math.floor((n % 3600) / 60);
    return m ? `${h} h ${m} min` : `${h} h`;
  }
  const d = Math.floor(n / 86_400);
  const h = Math.floor((n % 86_400) / 3600);
  return h ? `${d} d ${h} h` : `${d} d`;
}

const dateTimeFormats = new Map();

function dateTimeFormat(tz, withZone) {
  const k = `${tz}|${withZone}`;
  let f = dateTimeFormats.get(k);
  if (!f) {
    f = new Intl.DateTimeFormat(LOCALE, {
      timeZone: tz, year: 'numeric', month: 'short', day: 'numeric',
      hour: '2-digit', minute: '2-digit', hourCycle: 'h23',
      ...(withZone ? { timeZoneName: 'short' } : {}),
    });
    dateTimeFormats.set(k, f);
  }
  return f;
}

function toDate(t) {
  if (t instanceof Date) return t;
  if (typeof t === 'number') return new Date(t);
  return new Date(String(t));
}

// dateTime formats an instant (ISO string, Date or epoch ms) in a zone:
// "Nov 27, 2026, 07:00 GMT+1".
export function dateTime(t, tz, { zone = true } = {}) {
  if (missing(t) || t === '') return DASH;
  const d = toDate(t);
  if (Number.isNaN(d.getTime())) return DASH;
  // Go's zero time is "never" (a job that has not been scheduled yet).
  if (d.getUTCFullYear() <= 1) return DASH;
  return dateTimeFormat(tz, zone).format(d);
}

// day formats a UTC calendar day (an ISO instant at 00:00 UTC):
// "Friday, November 27, 2026".
export function day(t) {
  if (missing(t) || t === '') return DASH;
  const d = toDate(t);
  if (Number.isNaN(d.getTime())) return DASH;
  return new Intl.DateTimeFormat('en-US', { timeZone: 'UTC', weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' }).format(d);
}

// statusLabel capitalises a status word: "healthy" → "Healthy".
export function statusLabel(s) {
  if (!s) return DASH;
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export { DASH };
