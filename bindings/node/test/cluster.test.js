'use strict';
// `cluster`: worker processes forked with node's cluster module record into
// their default registry, and the primary's AggregatorRegistry shows exact
// sums of every worker with no IPC per scrape (lib/cluster.js). IPC here
// only orchestrates the test: it tells workers when to record and exit.

const test = require('node:test');
const assert = require('node:assert/strict');
const cluster = require('node:cluster');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const pm = require('..');
const { samples, havePromtool, promtool, until } = require('./helpers');

const fixture = path.join(__dirname, 'fixtures', 'cluster_worker.js');
const skip = !pm.library.cluster && `${pm.library.version} has no shared cell blocks (1.7), or cells are off`;

// Worker output is piped, never inherited: stdout is the test runner's channel.
cluster.setupPrimary({ exec: fixture, silent: true });

// A worker with CW_ID = id, once it is online (its metrics are defined).
async function fork(id, threads = false) {
  const w = cluster.fork({ CW_ID: String(id), CW_THREADS: threads ? '1' : '0' });
  w.process.stdout.resume();
  w.process.stderr.on('data', (d) => process.stderr.write(`[worker ${id}] ${d}`));
  w.exited = new Promise((resolve) => w.once('exit', (code, signal) => resolve({ code, signal })));
  await reply(w, (m) => m.online);
  return w;
}

// The next message of w that pred accepts; rejects if w exits first.
function reply(w, pred) {
  return new Promise((resolve, reject) => {
    const onMessage = (m) => {
      if (!pred(m)) return;
      w.off('message', onMessage);
      w.off('exit', onExit);
      resolve(m);
    };
    const onExit = (code, signal) => reject(new Error(`worker exited (${code}, ${signal}) before replying`));
    w.on('message', onMessage);
    w.on('exit', onExit);
  });
}

async function record(ws) {
  return Promise.all(ws.map((w) => {
    const r = reply(w, (m) => m.done);
    w.send({ cmd: 'record' });
    return r;
  }));
}

async function stop(ws) {
  for (const w of ws) if (!w.isDead()) w.process.kill('SIGKILL');
  await Promise.all(ws.map((w) => w.exited));
}

// What workers with these ids contribute after `times` records each
// (cluster_worker.js's record()), `threads` of them with a worker thread.
function expected(ids, times = 1, threads = 0) {
  const sum = ids.reduce((a, b) => a + b, 0);
  const n = ids.length * times;
  return {
    ok: 100 * sum * times + 1000 * threads,
    err: sum * times,
    le01: 10 * sum * times,
    le1: 11 * sum * times,
    count: 11 * sum * times + n + threads,
    sum: (1.125 * sum + 2 * ids.length) * times + 4 * threads,
  };
}

function totals(s) {
  return {
    ok: s.get('cl_requests_total{code="200"}') || 0,
    err: s.get('cl_requests_total{code="500"}') || 0,
    le01: s.get('cl_latency_seconds_bucket{le="0.1"}') || 0,
    le1: s.get('cl_latency_seconds_bucket{le="1.0"}') || 0,
    count: s.get('cl_latency_seconds_count') || 0,
    sum: s.get('cl_latency_seconds_sum') || 0,
  };
}

test('3 workers (one with a worker thread): exact counter, histogram and gauge sums; promtool; the server; JSON', { skip }, async () => {
  const agg = new pm.AggregatorRegistry();
  assert.equal(process.env.PERFMETRICS_CLUSTER_DIR, agg.dir);
  assert.ok(agg.dir.startsWith(fs.existsSync('/dev/shm') ? '/dev/shm/perfmetrics-cluster-' : path.join(os.tmpdir(), 'perfmetrics-cluster-')), agg.dir);
  const ws = [await fork(1), await fork(2), await fork(3, true)];
  let server = null;
  try {
    // The primary's own default registry is not part of the aggregate.
    new pm.Counter({ name: 'cl_requests_total', help: 'Requests.', labelNames: ['code'] }).inc({ code: '200' }, 5);
    const replies = await record(ws);
    // Inside a worker, a gauge reads its own contribution (and its threads').
    assert.deepEqual(replies.map((r) => r.queue), [2, 4, 6]);
    assert.deepEqual(replies.map((r) => r.inflight), [1, 2, 103]);
    const t0 = Date.now() / 1e3;
    const text = await agg.clusterMetrics();
    const s = samples(text);
    assert.deepEqual(totals(s), expected([1, 2, 3], 1, 1));
    assert.equal(s.get('cl_latency_seconds_bucket{le="+Inf"}'), expected([1, 2, 3], 1, 1).count);
    assert.equal(s.get('cl_inflight'), 1 + 2 + 3 + 100, 'set() per worker, inc() in the thread: summed');
    assert.equal(s.get('cl_queue'), 2 + 4 + 6);
    for (const id of [1, 2, 3]) assert.equal(s.get(`cl_worker_up{worker="${id}"}`), 1);
    assert.equal(s.get('cl_reset'), 6, 'a reset gauge leaves nothing of its value before the reset');
    assert.equal(s.get('cl_removed{k="a"}') || 0, 0, 'a removed gauge series contributes nothing');
    assert.equal(s.get('cl_removed{k="b"}'), 6);
    assert.ok(Math.abs(s.get('cl_time_seconds') - 3 * t0) < 3 * 60, `setToCurrentTime: ${s.get('cl_time_seconds')}`);
    assert.ok(s.get('cl_timer_seconds') >= 0 && s.get('cl_timer_seconds') < 30, 'startTimer');
    assert.doesNotMatch(text, /^perfmetrics_/m, 'no self metrics by default');
    assert.equal(await agg.metrics(), text, 'metrics() is the same snapshot');
    if (havePromtool()) {
      const p = promtool(text);
      assert.equal(p.status, 0, p.output);
    }
    const st = agg.stats();
    assert.deepEqual(Object.keys(st), ['blocks', 'folded', 'bindings', 'rejected', 'retries']);
    assert.equal(st.blocks, 4, 'one block per thread: 3 main threads and the worker thread');
    assert.equal(st.folded, 0);
    assert.equal(st.rejected, 0);
    assert.ok(st.bindings >= 4 * 3, `bindings ${st.bindings}`);
    // The embedded server over the aggregator serves the aggregate, from C
    // threads, with no JS per scrape.
    server = pm.startServer({ registry: agg, port: 0 });
    const served = await (await fetch(`${server.url}metrics`)).text();
    assert.deepEqual(samples(served), s);
    const json = await agg.getMetricsAsJSON();
    const req = json.find((f) => f.name === 'cl_requests_total');
    assert.deepEqual(req.values.find((v) => v.labels.code === '500'), { labels: { code: '500' }, value: 6 });
    agg.setContentType(pm.Registry.OPENMETRICS_CONTENT_TYPE);
    assert.equal(agg.contentType, pm.openMetricsContentType);
    assert.match(await agg.clusterMetrics(), /^cl_requests_total\{code="200"\} 1600\n[^]*# EOF\n$/m);
  } finally {
    if (server) server.close();
    await stop(ws);
    agg.close();
  }
  assert.equal(fs.existsSync(agg.dir), false, 'the directory is removed at close');
  assert.equal(process.env.PERFMETRICS_CLUSTER_DIR, undefined);
});

test('workers that exit (process.exit, SIGKILL) stay in counters and histograms, leave gauges; a restarted one adds on top', { skip }, async () => {
  const agg = new pm.AggregatorRegistry();
  const ws = [await fork(1), await fork(2), await fork(3)];
  try {
    await record(ws);
    await record(ws);
    const a = samples(await agg.clusterMetrics());
    assert.deepEqual(totals(a), expected([1, 2, 3], 2));
    assert.equal(a.get('cl_inflight'), 6);

    ws[0].send({ cmd: 'exit' }); // its exit hook frees its block
    assert.deepEqual(await ws[0].exited, { code: 0, signal: null });
    ws[1].process.kill('SIGKILL'); // no hook: the kernel drops its lock
    assert.deepEqual(await ws[1].exited, { code: null, signal: 'SIGKILL' });
    const b = samples(await agg.clusterMetrics());
    assert.deepEqual(totals(b), expected([1, 2, 3], 2), 'exact after two exits');
    assert.equal(b.get('cl_inflight'), 3, 'gauges of live workers only');
    assert.equal(b.get('cl_queue'), 12);
    // A per-worker gauge series of an ended worker goes (no series at 0 left).
    assert.equal(b.has('cl_worker_up{worker="1"}'), false);
    assert.equal(b.has('cl_worker_up{worker="2"}'), false);
    assert.equal(b.get('cl_worker_up{worker="3"}'), 1);
    let st = agg.stats();
    assert.equal(st.folded, 2);
    assert.equal(st.blocks, 1);
    assert.deepEqual(fs.readdirSync(agg.dir).filter((f) => !f.startsWith('.')).length, 2, 'folded blocks\' files are deleted');

    // A new fork in place of the dead ones: counters never go backwards.
    ws.push(await fork(4));
    await record([ws[3]]);
    const c = samples(await agg.clusterMetrics());
    const before = expected([1, 2, 3], 2);
    const added = expected([4], 1);
    assert.deepEqual(totals(c), Object.fromEntries(Object.keys(before).map((k) => [k, before[k] + added[k]])));
    assert.equal(c.get('cl_inflight'), 3 + 4);
    st = agg.stats();
    assert.equal(st.folded, 2);
    assert.equal(st.blocks, 2);
  } finally {
    await stop(ws);
    agg.close();
  }
});

test('live values: workers record after the first scrape, the next scrapes show it with no message sent to them', { skip }, async () => {
  const agg = new pm.AggregatorRegistry();
  const flags = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-cluster-flags-'));
  const go = path.join(flags, 'go');
  const halt = path.join(flags, 'stop');
  const ws = [await fork(1), await fork(2), await fork(3)];
  try {
    const second = ws.map((w) => reply(w, (m) => m.done === 2));
    // Awaited at the end; a failure before then must not leave them unhandled.
    for (const p of second) p.catch(() => {});
    await Promise.all(ws.map((w) => {
      const r = reply(w, (m) => m.done === 1);
      w.send({ cmd: 'live', go, stop: halt });
      return r;
    }));
    // From here on the workers' event loops are blocked: none could answer.
    const first = totals(samples(await agg.clusterMetrics()));
    assert.deepEqual(first, expected([1, 2, 3], 1));
    fs.writeFileSync(go, '');
    let last = first;
    const want = expected([1, 2, 3], 2);
    await until(async () => {
      const now = totals(samples(await agg.clusterMetrics()));
      for (const k of Object.keys(now)) assert.ok(now[k] >= last[k], `${k} went back from ${last[k]} to ${now[k]}`);
      last = now;
      return now.count === want.count && now.ok === want.ok && now.err === want.err;
    }, 20000);
    assert.deepEqual(last, want);
    fs.writeFileSync(halt, '');
    for (const r of await Promise.all(second)) assert.equal(r.received, 0, 'no message reached a worker between the scrapes');
  } finally {
    await stop(ws);
    agg.close();
    fs.rmSync(flags, { recursive: true, force: true });
  }
});

test('misuse: two on one directory, close twice, use after close, bad options, a given dir is kept', { skip }, () => {
  const a = new pm.AggregatorRegistry();
  assert.throws(() => new pm.AggregatorRegistry(undefined, { dir: a.dir }), (e) => {
    assert.ok(e instanceof pm.PerfmetricsError);
    assert.equal(e.code, 'PM_EEXIST');
    assert.ok(e.message.includes(a.dir), e.message);
    assert.match(e.message, /another AggregatorRegistry, in this process or another, is attached/);
    return true;
  });
  // From another process too (the directory's lock is flock(2)).
  const code = `const pm = require(${JSON.stringify(path.join(__dirname, '..'))});
    try { new pm.AggregatorRegistry(undefined, { dir: process.argv[1] }); console.log('attached'); }
    catch (e) { console.log(e.code); }`;
  const other = spawnSync(process.execPath, ['-e', code, a.dir], { encoding: 'utf8' });
  assert.equal(other.stdout.trim(), 'PM_EEXIST', other.stderr);
  assert.equal(fs.existsSync(a.dir), true, 'a refused attach leaves the other\'s directory');
  assert.equal(process.env.PERFMETRICS_CLUSTER_DIR, a.dir);

  assert.throws(() => new pm.AggregatorRegistry(undefined, { dir: 5 }), TypeError);
  assert.throws(() => new pm.AggregatorRegistry(undefined, { dir: '' }), TypeError);
  assert.throws(() => new pm.AggregatorRegistry(undefined, 'x'), TypeError);
  assert.throws(() => new pm.AggregatorRegistry('text/html'), /content type "text\/html" is not supported/);
  assert.throws(() => new pm.AggregatorRegistry(undefined, { dir: '/proc/no/such/dir' }), (e) => e.code === 'PM_EIO');

  const server = pm.startServer({ registry: a, port: 0 });
  assert.throws(() => a.close(), /close the tracers, alert engines and servers reading this registry first/);
  server.close();
  a.close();
  a.close();
  assert.equal(fs.existsSync(a.dir), false);
  assert.throws(() => a.stats(), /this AggregatorRegistry is closed/);
  assert.throws(() => a.refresh(), /this AggregatorRegistry is closed/);
  return assert.rejects(a.clusterMetrics(), /this registry is closed/).then(() => {
    // A directory of the caller's: attached again once free, kept at close.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pm-cluster-given-'));
    try {
      const b = new pm.AggregatorRegistry(undefined, { dir });
      const c = new pm.AggregatorRegistry();
      assert.equal(process.env.PERFMETRICS_CLUSTER_DIR, c.dir, 'the newest one is where forks go');
      b.close();
      assert.equal(process.env.PERFMETRICS_CLUSTER_DIR, c.dir);
      c.close();
      assert.equal(fs.existsSync(dir), true);
      new pm.AggregatorRegistry(undefined, { dir }).close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

test('any process with PERFMETRICS_CLUSTER_DIR writes into the aggregate; aggregator other than sum is refused there', { skip }, async () => {
  const agg = new pm.AggregatorRegistry();
  try {
    const code = `const pm = require(${JSON.stringify(path.join(__dirname, '..'))});
      const out = [];
      try { new pm.Gauge({ name: 'cl_max', help: 'h', aggregator: 'max' }); out.push('accepted'); } catch (e) { out.push(e.message); }
      new pm.Gauge({ name: 'cl_sum', help: 'h', aggregator: 'sum' }).set(2);
      const own = new pm.Registry();
      new pm.Gauge({ name: 'cl_own', help: 'h', aggregator: 'max', registers: [own] }).set(1);
      new pm.Counter({ name: 'cl_spawned_total', help: 'h' }).inc(5);
      console.log(JSON.stringify(out));`;
    const r = spawnSync(process.execPath, ['-e', code], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const [msg] = JSON.parse(r.stdout);
    assert.match(msg, /^perfmetrics: gauge cl_max: aggregator "max" is not supported in a cluster worker \(PERFMETRICS_CLUSTER_DIR is set\)/);
    const s = samples(await agg.clusterMetrics());
    assert.equal(s.get('cl_spawned_total'), 5, 'folded when it exited');
    assert.equal(s.get('cl_sum') || 0, 0, 'its gauge left with it');
    assert.equal(s.has('cl_own'), false, 'a registry of its own is private');
    // The primary itself (and its threads) is not a writer: aggregator is free there.
    new pm.Gauge({ name: 'cl_primary_max', help: 'h', aggregator: 'max' });
    const noDir = spawnSync(process.execPath, ['-e', code], {
      encoding: 'utf8', env: { ...process.env, PERFMETRICS_CLUSTER_DIR: '' },
    });
    assert.deepEqual(JSON.parse(noDir.stdout), ['accepted']);
  } finally {
    agg.close();
  }
});
