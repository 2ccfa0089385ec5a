import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as t from '../src/time.js';

const iso = (ms) => new Date(ms).toISOString();

test('wall clocks map to instants across DST', () => {
  // Europe/Berlin springs forward at 02:00 on 2026-03-29 and falls back at 03:00 on 2026-10-25.
  assert.equal(iso(t.instant({ year: 2026, month: 3, day: 29, hour: 2, minute: 30 }, 'Europe/Berlin')), '2026-03-29T01:30:00.000Z');
  assert.equal(iso(t.instant({ year: 2026, month: 10, day: 25, hour: 2, minute: 30 }, 'Europe/Berlin')), '2026-10-25T00:30:00.000Z');
  assert.equal(iso(t.instant({ year: 2026, month: 11, day: 27, hour: 0, minute: 0 }, 'Asia/Kolkata')), '2026-11-26T18:30:00.000Z');
  assert.equal(iso(t.fromLocalInput('2026-11-27T10:15', 'America/New_York')), '2026-11-27T15:15:00.000Z');
  assert.ok(Number.isNaN(t.fromLocalInput('', 'UTC')));
  assert.equal(t.toLocalInput(Date.parse('2026-11-27T06:40:10Z'), 'Asia/Kolkata'), '2026-11-27T12:10');
});

test('ranges of the presets', () => {
  const now = Date.parse('2026-11-27T06:40:10Z');
  assert.deepEqual(t.rangeOf({ preset: '24h', granularity: 'hour', tz: 'UTC' }, now),
    { startDate: '2026-11-26T07:00:00.000Z', endDate: '2026-11-27T07:00:00.000Z', timezone: 'UTC', label: 'the last 24 hours' });
  // A half-hour zone's hours end on the half hour in UTC.
  assert.equal(t.rangeOf({ preset: '7d', granularity: 'hour', tz: 'Asia/Kolkata' }, now).endDate, '2026-11-27T07:30:00.000Z');
  assert.equal(t.rangeOf({ preset: '24h', granularity: 'minute', tz: 'UTC' }, now).endDate, '2026-11-27T06:41:00.000Z');
  const days = t.rangeOf({ preset: '30d', granularity: 'day', tz: 'America/New_York' }, now);
  assert.equal(days.startDate, '2026-10-29');
  assert.equal(days.endDate, '2026-11-27');
  assert.equal(t.rangeOf({ preset: '7d', granularity: 'day', tz: 'UTC' }, now).startDate, '2026-11-21');
});

test('custom ranges', () => {
  assert.deepEqual(t.rangeOf({ preset: 'custom', start: '2026-11-20T00:00', end: '2026-11-21T00:00', tz: 'Europe/Berlin' }),
    { startDate: '2026-11-19T23:00:00.000Z', endDate: '2026-11-20T23:00:00.000Z', timezone: 'Europe/Berlin', label: 'the chosen range' });
  assert.ok(t.rangeOf({ preset: 'custom', start: '', end: '2026-11-21T00:00', tz: 'UTC' }).error);
  assert.ok(t.rangeOf({ preset: 'custom', start: '2026-11-21T00:00', end: '2026-11-20T00:00', tz: 'UTC' }).error);
  assert.equal(t.inputValue('2026-11-27', 'UTC', true), '2026-11-28T00:00');
  assert.equal(t.inputValue('2026-11-21', 'UTC', false), '2026-11-21T00:00');
});

test('zones list UTC first and keeps the current one', () => {
  const z = t.zones('Etc/GMT+5');
  assert.equal(z[0], 'UTC');
  assert.ok(z.includes('Etc/GMT+5'));
});
