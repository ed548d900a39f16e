'use strict';
// The hot paths in cell blocks: the JS histogram key and open addressing
// must agree with the library's own pm_histogram_observe on every value;
// counters and gauges read back exactly.

const test = require('node:test');
const assert = require('node:assert/strict');
const pm = require('..');
const cells = require('../lib/cells');
const { samples } = require('./helpers');

const skip = !pm.library.cells && `the library at ${pm.library.path} has no cells (1.4)`;

function fresh() {
  return new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
}

// A small deterministic generator (the same values every run).
function lcg(seed) {
  let x = seed >>> 0;
  return () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    return x / 2 ** 32;
  };
}

function histogramsAgree(opts, values) {
  const r = fresh();
  const ours = new pm.Histogram({ name: 'js_seconds', help: 'h', registers: [r], ...opts });
  const ref = new pm.Histogram({ name: 'c_seconds', help: 'h', registers: [r], ...opts });
  const ffi = new cells.FfiHistogram(null, ref.labels().handle);
  for (const v of values) {
    ours.observe(v);
    ffi.observe(v);
  }
  const doc = JSON.parse(r.format('json'));
  const series = (name) => doc.families.find((f) => f.name === name).series.map((s) => ({ ...s, created: 0 }));
  assert.deepEqual(series('js_seconds'), series('c_seconds'));
  const full = ours.labels().cell.full;
  r.close();
  return full;
}

test('histogram: JS keys equal the library\'s over 200k values from 1e-11 to 1e6, through every grow', { skip }, () => {
  const rnd = lcg(12345);
  const values = [0, -1, -1e300, 1e-12, 1e-9, 1e4, 1e5, 0.001, 0.0015, 1e-6, 2.5, 100, Number.MIN_VALUE, 1e300];
  for (let i = 0; i < 200000; i++) values.push(Math.exp(rnd() * 40 - 25));
  histogramsAgree({ buckets: [1e-6, 0.001, 0.0015, 0.1, 1, 2.5, 100] }, values);
});

test('histogram: bounds exactly on fine-bucket edges, default buckets, a custom range', { skip }, () => {
  const rnd = lcg(7);
  const bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
  const values = [];
  for (const b of bounds) values.push(b, b * (1 - 2 ** -52), b * (1 + 2 ** -52), b / 2, b * 2);
  for (let i = 0; i < 20000; i++) values.push(rnd() * 20);
  histogramsAgree({}, values);
  histogramsAgree({ range: [0.5, 8], buckets: [0.75, 1, 1.0000001, 3] }, values);
});

test('histogram: at the largest region, new keys go through the FFI and still count', { skip }, () => {
  // 8192 keys at most per region: a range with more fine buckets than that,
  // filled with one value per fine bucket.
  const values = [];
  for (let e = -70; e < 70; e += 0.01) values.push(2 ** e);
  const full = histogramsAgree({ range: [1e-20, 1e20], buckets: [1] }, values);
  assert.equal(full, true, 'the region reached its largest size');
});

test('histogram: label sets sharing the overflow series share one region through its grows', { skip }, () => {
  const r = fresh();
  const h = new pm.Histogram({ name: 'shared_seconds', help: 'h', labelNames: ['k'], maxSeries: 1, registers: [r] });
  const ref = new pm.Histogram({ name: 'ref_seconds', help: 'h', registers: [r] });
  const ffi = new cells.FfiHistogram(null, ref.labels().handle);
  h.observe({ k: 'own' }, 1); // takes the one series; the rest overflow
  const b = h.labels('b');
  const c = h.labels('c');
  assert.equal(b.cell, c.cell);
  const rnd = lcg(99);
  for (let i = 0; i < 30000; i++) {
    const v = Math.exp(rnd() * 30 - 20);
    (i % 2 ? b : c).observe(v);
    ffi.observe(v);
  }
  const doc = JSON.parse(r.format('json'));
  const over = doc.families.find((f) => f.name === 'shared_seconds').series.find((x) => x.overflow);
  const want = doc.families.find((f) => f.name === 'ref_seconds').series[0];
  assert.deepEqual({ ...over, labels: {}, overflow: false, created: 0 }, { ...want, created: 0 });
  r.close();
});

test('counter cells: exact sums of integers and of binary fractions', { skip }, () => {
  const r = fresh();
  const c = new pm.Counter({ name: 'n', help: 'h', labelNames: ['k'], registers: [r] });
  const a = c.labels('a');
  for (let i = 0; i < 1e6; i++) a.inc();
  for (let i = 0; i < 1000; i++) c.inc({ k: 'b' }, 0.25);
  const s = samples(r.format());
  assert.equal(s.get('n_total{k="a"}'), 1e6);
  assert.equal(s.get('n_total{k="b"}'), 250);
  assert.equal(a.get(), 1e6, 'pm_counter_value sums the cell too');
  r.close();
});

test('cells: a thread block freed by closeThread() folds its counts; new children bind a new block', { skip }, () => {
  const r = fresh();
  const c = new pm.Counter({ name: 'f', help: 'h', registers: [r] });
  const h = new pm.Histogram({ name: 'fh', help: 'h', registers: [r] });
  c.inc(5);
  h.observe(0.3);
  cells.closeShards(r.ptr);
  let s = samples(r.format());
  assert.equal(s.get('f_total'), 5);
  assert.equal(s.get('fh_count'), 1);
  c.inc(5); // dropped: this child's block is gone
  c.reset(); // a fresh child binds a fresh block
  c.inc(2);
  s = samples(r.format());
  assert.equal(s.get('f_total'), 2);
  r.close();
});

test('gauge cells: set is a store into the series, inc/dec are atomic adds', { skip }, () => {
  const r = fresh();
  const g = new pm.Gauge({ name: 'g', help: 'h', registers: [r] });
  const child = g.labels();
  assert.ok(child.cell instanceof cells.Gauge);
  g.set(3);
  g.inc(0.5);
  assert.equal(child.get(), 3.5);
  g.set(-1e300);
  assert.equal(samples(r.format()).get('g'), -1e300);
  r.close();
});
