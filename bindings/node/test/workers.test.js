'use strict';
// Worker threads each record into their own cell block of the one C
// default registry: the main thread's register.metrics() sees every
// worker's records exactly, with no message per scrape.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { Worker } = require('node:worker_threads');
const pm = require('..');
const { samples, until } = require('./helpers');

const fixture = path.join(__dirname, 'fixtures', 'worker.js');

function run(incs, mode) {
  const w = new Worker(fixture, { workerData: { incs, mode } });
  const done = new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  const exited = new Promise((resolve) => w.once('exit', resolve));
  return { w, done, exited };
}

function totals(text) {
  const s = samples(text);
  return {
    bound: s.get('worker_ops_total{kind="bound"}') || 0,
    object: s.get('worker_ops_total{kind="object"}') || 0,
    count: s.get('worker_seconds_count') || 0,
    le05: s.get('worker_seconds_bucket{le="0.5"}') || 0,
    le1: s.get('worker_seconds_bucket{le="1.0"}') || 0,
    level: s.get('worker_level') || 0,
    wide: s.get('worker_wide_seconds_count') || 0,
    wideLe1: s.get('worker_wide_seconds_bucket{le="1.0"}') || 0,
  };
}

test('N workers x M records: exact totals in the main thread, while they run and after they exit', async () => {
  const N = 4;
  const M = 50000;
  const before = totals(pm.register.format());
  const modes = ['return', 'close', 'return', 'hang'];
  const ws = modes.slice(0, N).map((mode) => run(M, mode));
  const all = Promise.all(ws.map((x) => x.done));
  // Scrapes while the workers record: every total only ever grows.
  let finished = false;
  all.then(() => { finished = true; }, () => { finished = true; });
  let last = before;
  let scrapes = 0;
  while (!finished) {
    const now = totals(pm.register.format());
    for (const k of Object.keys(now)) assert.ok(now[k] >= last[k], `${k} went back from ${last[k]} to ${now[k]}`);
    last = now;
    scrapes++;
    await new Promise((r) => setImmediate(r));
  }
  assert.ok(scrapes > 0);
  const replies = await all;
  for (const r of replies) assert.equal(r.cells, pm.library.cells);
  // Every worker has finished recording; the 'hang' one is still alive with
  // its block unfreed, the others may be exiting: the totals are exact either way.
  const t = totals(await pm.register.metrics());
  assert.equal(t.bound - before.bound, N * M);
  assert.equal(t.object - before.object, 2 * N * M);
  assert.equal(t.count - before.count, N * M);
  assert.equal(t.le05 - before.le05, (N * M) / 2);
  assert.equal(t.le1 - before.le1, (3 * N * M) / 4);
  assert.equal(t.level - before.level, N * M);
  assert.equal(t.wide - before.wide, N * M);
  // exp(x / 250 - 10) <= 1 for x <= 2500: 2501 of every 5000 values.
  assert.equal(t.wideLe1 - before.wideLe1, N * (M / 5000) * 2501);
  await ws[3].w.terminate(); // no exit hook runs: the block stays, still summed
  await Promise.all(ws.map((x) => x.exited));
  const after = totals(pm.register.format());
  assert.deepEqual(after, t, 'exits and terminate() lose nothing');
});

test('the main thread records into the same series beside the workers', async () => {
  const before = totals(pm.register.format());
  const c = new pm.Counter({ name: 'worker_ops_total', help: 'Operations.', labelNames: ['kind'] });
  c.inc({ kind: 'bound' }, 7);
  const x = run(1000, 'return');
  await x.done;
  await x.exited;
  await until(() => totals(pm.register.format()).bound === before.bound + 1007);
  pm.register.removeSingleMetric('worker_ops_total');
});
