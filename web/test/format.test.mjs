import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as f from '../src/format.js';

test('counts and percentages', () => {
  assert.equal(f.count(1234567), '1,234,567');
  assert.equal(f.count(0), '0');
  assert.equal(f.count(undefined), '—');
  assert.equal(f.percent(12.345), '12.3 %');
  assert.equal(f.percent(0), '0.0 %');
  assert.equal(f.percent(0.01), '< 0.1 %');
  assert.equal(f.percent(100), '100.0 %');
});

test('durations', () => {
  assert.equal(f.ms(0), '0 ms');
  assert.equal(f.ms(4.56), '4.6 ms');
  assert.equal(f.ms(245.4), '245 ms');
  assert.equal(f.ms(999.6), '1.0 s');
  assert.equal(f.ms(1234), '1.2 s');
  assert.equal(f.ms(150_000), '2.5 min');
  assert.equal(f.ms(null), '—');
  assert.equal(f.nanos(652_363_432), '652 ms');
  assert.equal(f.seconds(45), '45 s');
  assert.equal(f.seconds(90), '2 min');
  assert.equal(f.seconds(3 * 3600 + 300), '3 h 5 min');
  assert.equal(f.seconds(321_541), '3 d 17 h');
});

test('sizes', () => {
  assert.equal(f.bytes(512), '512 B');
  assert.equal(f.bytes(1536), '1.5 KiB');
  assert.equal(f.bytes(11_755_798), '11.2 MiB');
});

test('times in the chosen zone', () => {
  assert.equal(f.dateTime('2026-11-27T06:00:00Z', 'UTC'), 'Nov 27, 2026, 06:00 UTC');
  assert.equal(f.dateTime('2026-11-27T06:00:00Z', 'Asia/Kolkata'), 'Nov 27, 2026, 11:30 GMT+5:30');
  assert.equal(f.dateTime('2026-11-27T06:00:00Z', 'Europe/Berlin', { zone: false }), 'Nov 27, 2026, 07:00');
  assert.equal(f.dateTime('0001-01-01T00:00:00Z', 'UTC'), '—');
  assert.equal(f.dateTime('', 'UTC'), '—');
});
