'use strict';
// Node binding against prom-client, in one process run.
//
// Each case does the same work with perfmetrics (bindings/node, over
// libperfmetrics.so.1 from PERFMETRICS_LIBRARY) and with prom-client (the
// package's devDependency); repetitions of the two alternate, and each
// figure is the median over BENCH_REPS repetitions (default 9, minimum 7) of
// about BENCH_REP_MS milliseconds (default 50). Rows follow bench/run's
// table: | case | threads | ns/op | baseline (ns/op) | ratio | info |, with
// ratio = perfmetrics / prom-client. Exits 1 when a target is missed.
//
//   PERFMETRICS_LIBRARY=build-bench/lib/libperfmetrics.so.1 node bench/bench_node.js
//
// The cluster row forks this same file as its workers
// (BENCH_NODE_CLUSTER_WORKER=1): each records into both libraries' default
// registries, and the primary's two AggregatorRegistry objects scrape them.

const cluster = require('node:cluster');
const path = require('node:path');
const { performance } = require('node:perf_hooks');

const nodePkg = path.join(__dirname, '..', 'bindings', 'node');
const pm = require(nodePkg);
const client = require(require.resolve('prom-client', { paths: [nodePkg] }));
const { C } = require(path.join(nodePkg, 'lib', 'native'));

const REPS = Math.max(7, Number(process.env.BENCH_REPS || 9));
const REP_MS = Number(process.env.BENCH_REP_MS || 50);

function fmtNs(ns) {
  if (ns < 100) return ns.toFixed(2);
  if (ns < 10000) return ns.toFixed(1);
  return ns.toFixed(0);
}

function row(c, ns, baseName, baseNs, info) {
  const base = `${baseName} (${baseNs < 100 ? baseNs.toFixed(2) : baseNs.toFixed(0)})`;
  const ratio = `${(ns / baseNs).toFixed(2)}x`;
  console.log(`| ${c.padEnd(40)} | ${'1'.padStart(7)} | ${fmtNs(ns).padStart(10)} | ${base.padEnd(32)} | ${ratio.padStart(7)} | ${info} |`);
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// ns per iteration of loop(n), a function that runs its body n times.
function timeLoop(loop, n) {
  const t0 = performance.now();
  loop(n);
  return ((performance.now() - t0) * 1e6) / n;
}

function calibrate(loop) {
  let n = 1000;
  for (;;) {
    const t0 = performance.now();
    loop(n);
    const ms = performance.now() - t0;
    if (ms >= REP_MS / 4) return Math.max(1, Math.round((n * REP_MS) / ms));
    n *= 4;
  }
}

// Median ns/op of two loops, their repetitions interleaved so that both see
// the same machine.
function compare(ours, theirs) {
  const nOurs = calibrate(ours);
  const nTheirs = calibrate(theirs);
  const a = [];
  const b = [];
  for (let i = 0; i < REPS; i++) {
    a.push(timeLoop(ours, nOurs));
    b.push(timeLoop(theirs, nTheirs));
  }
  return [median(a), median(b)];
}

let ok = true;
function target(c, ns, baseNs, extra) {
  const met = ns <= baseNs;
  ok = ok && met;
  row(c, ns, 'prom-client', baseNs, `target <= 1.0: ${met ? 'MET' : 'MISSED'}${extra ? `; ${extra}` : ''}`);
}

async function main() {
  const ours = new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
  const theirs = new client.Registry();
  const mode = pm.library.cells ? 'cells' : 'FFI per record (no cells in this library)';

  // counter.inc(), no labels (prom-client's counter is kept for the floor row)
  const theirInc = new client.Counter({ name: 'b_inc', help: 'h', registers: [theirs] });
  {
    const a = new pm.Counter({ name: 'b_inc', help: 'h', registers: [ours] });
    const b = theirInc;
    const [x, y] = compare(
      (n) => { for (let i = 0; i < n; i++) a.inc(); },
      (n) => { for (let i = 0; i < n; i++) b.inc(); },
    );
    target('node: counter.inc()', x, y, mode);
  }

  // labels(): a pre-bound child, and labels(...) + inc each time
  {
    const a = new pm.Counter({ name: 'b_lab', help: 'h', labelNames: ['method', 'code'], registers: [ours] });
    const b = new client.Counter({ name: 'b_lab', help: 'h', labelNames: ['method', 'code'], registers: [theirs] });
    const ca = a.labels('GET', '200');
    const cb = b.labels('GET', '200');
    let [x, y] = compare(
      (n) => { for (let i = 0; i < n; i++) ca.inc(); },
      (n) => { for (let i = 0; i < n; i++) cb.inc(); },
    );
    target('node: pre-bound child.inc(), 2 labels', x, y);
    [x, y] = compare(
      (n) => { for (let i = 0; i < n; i++) a.labels('GET', '200').inc(); },
      (n) => { for (let i = 0; i < n; i++) b.labels('GET', '200').inc(); },
    );
    target("node: labels('GET','200').inc()", x, y);
    [x, y] = compare(
      (n) => { for (let i = 0; i < n; i++) a.inc({ method: 'GET', code: '200' }); },
      (n) => { for (let i = 0; i < n; i++) b.inc({ method: 'GET', code: '200' }); },
    );
    target('node: inc({method, code})', x, y);
  }

  // gauge.set()
  {
    const a = new pm.Gauge({ name: 'b_set', help: 'h', registers: [ours] });
    const b = new client.Gauge({ name: 'b_set', help: 'h', registers: [theirs] });
    const [x, y] = compare(
      (n) => { for (let i = 0; i < n; i++) a.set(i); },
      (n) => { for (let i = 0; i < n; i++) b.set(i); },
    );
    target('node: gauge.set(v)', x, y);
  }

  // histogram.observe(), default buckets, values spread over them
  const vals = new Float64Array(1024);
  for (let i = 0; i < vals.length; i++) vals[i] = 10 ** (((i * 7919) % 1024) / 256 - 3); // 1 ms .. 10 s
  {
    const a = new pm.Histogram({ name: 'b_obs', help: 'h', registers: [ours] });
    const b = new client.Histogram({ name: 'b_obs', help: 'h', registers: [theirs] });
    const [x, y] = compare(
      (n) => { for (let i = 0; i < n; i++) a.observe(vals[i & 1023]); },
      (n) => { for (let i = 0; i < n; i++) b.observe(vals[i & 1023]); },
    );
    target('node: histogram.observe(v), 11 buckets', x, y, mode);
  }

  // startTimer() / end() around an empty block; and the two clocks
  {
    const a = new pm.Histogram({ name: 'b_tim', help: 'h', registers: [ours] });
    const b = new client.Histogram({ name: 'b_tim', help: 'h', registers: [theirs] });
    const [x, y] = compare(
      (n) => { for (let i = 0; i < n; i++) a.startTimer()(); },
      (n) => { for (let i = 0; i < n; i++) b.startTimer()(); },
    );
    let sink = 0;
    const [pn, hb] = compare(
      (n) => { for (let i = 0; i < n; i++) sink += performance.now(); },
      (n) => { for (let i = 0; i < n; i++) sink += Number(process.hrtime.bigint() & 1n); },
    );
    target('node: startTimer() + end()', x, y,
      `clock performance.now() ${fmtNs(pn)} ns, process.hrtime.bigint() ${fmtNs(hb)} ns${sink === -1 ? '' : ''}`);
  }

  // 10k-series exposition: 100 counter families of 100 series each
  {
    const ea = new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
    const eb = new client.Registry();
    for (let f = 0; f < 100; f++) {
      const name = `bench_family_${String(f).padStart(3, '0')}`;
      const fa = new pm.Counter({ name, help: `Family ${f}.`, labelNames: ['v'], registers: [ea] });
      const fb = new client.Counter({ name, help: `Family ${f}.`, labelNames: ['v'], registers: [eb] });
      for (let v = 0; v < 100; v++) {
        fa.labels(`value_${String(v).padStart(3, '0')}`).inc(v);
        fb.labels(`value_${String(v).padStart(3, '0')}`).inc(v);
      }
    }
    const ta = [];
    const tb = [];
    let la = 0;
    let lb = 0;
    await ea.metrics();
    await eb.metrics();
    for (let i = 0; i < REPS; i++) {
      let t0 = performance.now();
      la = (await ea.metrics()).length;
      ta.push((performance.now() - t0) * 1e6);
      t0 = performance.now();
      lb = (await eb.metrics()).length;
      tb.push((performance.now() - t0) * 1e6);
    }
    const x = median(ta);
    const y = median(tb);
    const met = x * 5 <= y;
    ok = ok && met;
    row('node: register.metrics(), 10k series', x, 'prom-client', y,
      `target >= 5x faster: ${met ? 'MET' : 'MISSED'} (${(y / x).toFixed(1)}x); ${la} vs ${lb} bytes`);
    ea.close();
  }

  // A cluster scrape: 2 workers with 1k series each. prom-client's
  // clusterMetrics() sends each worker a request over IPC and merges their
  // JSON replies; ours is a snapshot of the primary's registry, which reads
  // the workers' shared cell blocks (no message at all).
  if (pm.library.cluster) await clusterRow();
  else process.stderr.write('bench_node: cluster row skipped: the library has no shared cell blocks (1.7), or cells are off\n');

  // The koffi floor: one FFI call to a library function that does nothing
  // but return, against prom-client's inc: what a record would cost if it
  // crossed, and why none does.
  {
    const b = theirInc;
    const version = C.pm_version;
    let sink = 0;
    const [x, y] = compare(
      (n) => { for (let i = 0; i < n; i++) sink += version(); },
      (n) => { for (let i = 0; i < n; i++) b.inc(); },
    );
    row('node: koffi call, pm_version()', x, 'prom-client counter.inc()', y,
      `the FFI floor, no target: each record would pay it without cells${sink === -1 ? '' : ''}`);
  }
  ours.close();
  return ok ? 0 : 1;
}

const CLUSTER_WORKERS = 2;
const CLUSTER_FAMILIES = 10;
const CLUSTER_VALUES = 100;

async function clusterRow() {
  const ea = new pm.AggregatorRegistry(); // before fork: the workers inherit its directory
  const eb = new client.AggregatorRegistry();
  cluster.setupPrimary({ exec: __filename, silent: true });
  const workers = [];
  const ready = [];
  for (let i = 0; i < CLUSTER_WORKERS; i++) {
    const w = cluster.fork({ BENCH_NODE_CLUSTER_WORKER: '1' });
    w.process.stdout.resume();
    w.process.stderr.pipe(process.stderr);
    ready.push(new Promise((resolve, reject) => {
      w.on('message', (m) => { if (m === 'bench-ready') resolve(); });
      w.once('exit', (code) => reject(new Error(`bench_node: cluster worker exited (${code}) before it was ready`)));
    }));
    workers.push(w);
  }
  try {
    await Promise.all(ready);
    const ta = [];
    const tb = [];
    let la = 0;
    let lb = 0;
    await ea.clusterMetrics();
    await eb.clusterMetrics();
    for (let i = 0; i < REPS; i++) {
      let t0 = performance.now();
      la = (await ea.clusterMetrics()).length;
      ta.push((performance.now() - t0) * 1e6);
      t0 = performance.now();
      lb = (await eb.clusterMetrics()).length;
      tb.push((performance.now() - t0) * 1e6);
    }
    target('node: clusterMetrics(), 2 x 1k series', median(ta), median(tb),
      `${CLUSTER_WORKERS} workers, no IPC per scrape (prom-client: a request to each); ${la} vs ${lb} bytes`);
  } finally {
    await Promise.all(workers.map((w) => new Promise((resolve) => {
      if (w.isDead()) resolve();
      else {
        w.once('exit', resolve);
        w.process.kill('SIGKILL');
      }
    })));
    ea.close();
  }
}

// A cluster worker of clusterRow(): the same 1k counter series in each
// library's default registry. prom-client's worker answers its primary's
// requests through the listener its AggregatorRegistry installs.
function clusterWorker() {
  new client.AggregatorRegistry();
  for (let f = 0; f < CLUSTER_FAMILIES; f++) {
    const name = `bench_cluster_${String(f).padStart(2, '0')}`;
    const fa = new pm.Counter({ name, help: `Family ${f}.`, labelNames: ['v'] });
    const fb = new client.Counter({ name, help: `Family ${f}.`, labelNames: ['v'] });
    for (let v = 0; v < CLUSTER_VALUES; v++) {
      fa.labels(`value_${String(v).padStart(3, '0')}`).inc(v);
      fb.labels(`value_${String(v).padStart(3, '0')}`).inc(v);
    }
  }
  process.send('bench-ready');
}

if (cluster.isWorker && process.env.BENCH_NODE_CLUSTER_WORKER === '1') {
  clusterWorker();
} else {
  main().then((code) => {
    process.exitCode = code;
  }, (e) => {
    console.error(e);
    process.exitCode = 2;
  });
}
