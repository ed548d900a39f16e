'use strict';
// Exporters written in JS: run by exportNow() (or a timer) on this thread,
// handed a snapshot they can format during the call.

const test = require('node:test');
const assert = require('node:assert/strict');
const pm = require('..');
const { samples, until } = require('./helpers');

test('exportNow runs every exporter on one snapshot, in every format; errors are counted and thrown', () => {
  const r = new pm.Registry();
  const c = new pm.Counter({ name: 'pushed', help: 'h', registers: [r] });
  c.inc(4);
  const seen = [];
  let kept = null;
  const e = r.addExporter('push', (snap) => {
    kept = snap;
    seen.push(samples(snap.format()).get('pushed_total'), JSON.parse(snap.format('json')).families.length > 0,
      snap.format('openmetrics').endsWith('# EOF\n'));
  });
  r.exportNow();
  assert.deepEqual(seen, [4, true, true]);
  assert.throws(() => kept.format(), /only valid during its callback/);
  const bad = r.addExporter('bad', () => {
    throw new Error('push failed');
  });
  assert.throws(() => r.exportNow(), /^Error: push failed$/);
  assert.equal(seen.length, 6, 'the other exporter still ran');
  assert.equal(samples(r.format()).get('perfmetrics_exporter_failures_total{exporter="bad"}'), 1);
  bad.remove();
  bad.remove();
  r.exportNow();
  assert.throws(() => r.addExporter('push', () => {}), (x) => x.code === 'PM_EEXIST');
  assert.throws(() => r.addExporter(1, () => {}), /name must be a string/);
  assert.throws(() => r.addExporter('x', 'f'), /needs a function/);
  assert.throws(() => r.addExporter('', () => {}), (x) => x.code === 'PM_EUTF8');
  r.close();
  assert.equal(e._ptr, null, 'closing the registry forgets its exporters');
  assert.throws(() => r.exportNow(), /registry is closed/);
});

test('startExporting drives exportNow from a timer; stopExporting ends it; errors go to onError', async () => {
  const r = new pm.Registry();
  let runs = 0;
  r.addExporter('count', () => {
    runs++;
  });
  r.startExporting(0.005);
  await until(() => runs >= 3);
  r.stopExporting();
  assert.equal(r._exportTimer, null);
  r.stopExporting(); // twice is fine
  const errors = [];
  r.addExporter('fails', () => {
    throw new Error('down');
  });
  r.startExporting(0.005, (e) => errors.push(e.message));
  await until(() => errors.length >= 2);
  assert.deepEqual(errors.slice(0, 2), ['down', 'down']);
  assert.throws(() => r.startExporting(0), /seconds > 0/);
  assert.throws(() => r.startExporting('1'), /seconds > 0/);
  r.close(); // stops the timer too
});
