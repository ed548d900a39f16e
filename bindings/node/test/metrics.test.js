'use strict';
// Counter, Gauge and Histogram: every public call, both label spellings,
// registries and their errors, against values read back from exposition.

const test = require('node:test');
const assert = require('node:assert/strict');
const pm = require('..');
const { samples } = require('./helpers');

function fresh() {
  return new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
}

test('counter: inc forms, labels() children, get() and exposition', async () => {
  const r = fresh();
  const c = new pm.Counter({ name: 'jobs_total', help: 'Jobs.', labelNames: ['queue', 'state'], registers: [r] });
  c.inc({ queue: 'a', state: 'ok' });
  c.inc({ queue: 'a', state: 'ok' }, 2.5);
  c.labels('a', 'ok').inc();
  c.labels({ queue: 'b', state: 'err' }).inc(4);
  c.labels('b', 'err').inc(0);
  const plain = new pm.Counter({ name: 'ticks', help: 'Ticks.', registers: [r] });
  plain.inc();
  plain.inc(41);
  const s = samples(await r.metrics());
  assert.equal(s.get('jobs_total{queue="a",state="ok"}'), 4.5);
  assert.equal(s.get('jobs_total{queue="b",state="err"}'), 4);
  assert.equal(s.get('ticks_total'), 42);
  assert.equal(c.labels('a', 'ok').get(), 4.5);
  assert.equal(c.labels('a', 'ok'), c.labels({ queue: 'a', state: 'ok' }), 'one cached child per label set');
  const got = await c.get();
  assert.equal(got.name, 'jobs_total');
  assert.equal(got.type, 'counter');
  assert.deepEqual(got.values.find((v) => v.labels.queue === 'b'), { labels: { queue: 'b', state: 'err' }, value: 4 });
  r.close();
});

test('counter: bad increments and labels throw clear errors and record nothing', async () => {
  const r = fresh();
  const c = new pm.Counter({ name: 'c', help: 'h', labelNames: ['k'], registers: [r] });
  assert.throws(() => c.inc({ k: 'x' }, -1), /not possible to decrease a counter/);
  assert.throws(() => c.inc({ k: 'x' }, NaN), /Value is not a valid number: NaN/);
  assert.throws(() => c.inc({ k: 'x' }, Infinity), /Value is not a valid number: Infinity/);
  assert.throws(() => c.inc({ k: 'x' }, '3'), /Value is not a valid number: "3"/);
  assert.throws(() => c.labels('x').inc(-2), /not possible to decrease/);
  assert.throws(() => c.inc({ other: 'x' }), /Added label "other" is not included in initial labelset/);
  assert.throws(() => c.labels('x', 'y'), /Invalid number of arguments \(2\)/);
  assert.throws(() => c.labels('a\0b'), /contains a NUL character/);
  assert.throws(() => c.labels('v'.repeat(5000)), (e) => e instanceof pm.PerfmetricsError && e.code === 'PM_ERANGE' &&
    /c: label values: value out of range/.test(e.message));
  const s = samples(r.format());
  assert.equal(s.get('c_total{k="x"}'), 0, 'the child made by labels("x") holds 0; no bad value landed');
  assert.equal([...s.keys()].filter((k) => k.startsWith('c_total{k="x"')).length, 1);
  r.close();
});

test('metric definitions: names, help, label names, duplicates, registers', () => {
  const r = fresh();
  assert.throws(() => new pm.Counter({ name: '1bad', help: 'h', registers: [r] }), /Invalid metric name: "1bad"/);
  assert.throws(() => new pm.Counter({ name: 'x', registers: [r] }), /Missing mandatory help parameter/);
  assert.throws(() => new pm.Counter({ name: 'x', help: 'h', labelNames: ['a-b'], registers: [r] }), /Invalid label name/);
  assert.throws(() => new pm.Histogram({ name: 'x', help: 'h', labelNames: ['le'], registers: [r] }), /le is a reserved/);
  assert.throws(() => new pm.Counter({ name: 'x', help: 'h', labelNames: ['__r'], registers: [r] }),
    (e) => e.code === 'PM_EBADLABEL' && /labelNames: invalid or reserved label name/.test(e.message));
  assert.throws(() => new pm.Counter({ name: 'x', help: 'h', registers: [] }), /exactly one registry/);
  assert.throws(() => new pm.Counter({ name: 'x', help: 'h', registers: [r, r] }), /exactly one registry/);
  assert.throws(() => new pm.Counter({ name: 'x', help: 'h', registers: [{}] }), /exactly one registry/);
  assert.throws(() => new pm.Counter(null), /configuration object/);
  new pm.Counter({ name: 'dup', help: 'h', registers: [r] });
  assert.throws(() => new pm.Counter({ name: 'dup', help: 'h', registers: [r] }), /already been registered/);
  assert.throws(() => new pm.Gauge({ name: 'dup_total', help: 'h', registers: [r] }),
    (e) => e.code === 'PM_EEXIST' && /gauge dup_total: already registered with a different definition/.test(e.message));
  assert.throws(() => new pm.Counter({ name: 'u_bytes', help: 'h', unit: 'seconds', registers: [r] }),
    (e) => e.code === 'PM_EBADNAME');
  assert.throws(() => new pm.Counter({ name: 'm', help: 'h', maxSeries: 0, registers: [r] }), /maxSeries must be a positive integer/);
  assert.throws(() => new pm.Counter({ name: 'm', help: 'h', ttlSeconds: -1, registers: [r] }), (e) => e.code === 'PM_ERANGE');
  assert.throws(() => new pm.Counter({ name: 'm', help: 'h', ttlSeconds: '1', registers: [r] }), /ttlSeconds must be a number/);
  assert.throws(() => new pm.Histogram({ name: 'h1', help: 'h', buckets: [2, 1], registers: [r] }),
    (e) => e.code === 'PM_ERANGE' && /buckets/.test(e.message));
  assert.throws(() => new pm.Histogram({ name: 'h2', help: 'h', buckets: ['1'], registers: [r] }), /array of numbers/);
  assert.throws(() => new pm.Histogram({ name: 'h3', help: 'h', range: [1], registers: [r] }), /range must be/);
  assert.throws(() => new pm.Histogram({ name: 'h4', help: 'h', range: [2, 1], registers: [r] }), (e) => e.code === 'PM_ERANGE');
  r.close();
});

test('gauge: set, inc, dec, setToCurrentTime, startTimer, labels, bad values', () => {
  const r = fresh();
  const g = new pm.Gauge({ name: 'depth', help: 'h', registers: [r] });
  g.set(10);
  g.inc();
  g.inc(2);
  g.dec();
  g.dec(0.5);
  assert.equal(g.labels().get(), 11.5);
  g.set(-3);
  assert.equal(samples(r.format()).get('depth'), -3);
  const lg = new pm.Gauge({ name: 'temp', help: 'h', labelNames: ['room'], registers: [r] });
  lg.set({ room: 'a' }, 1);
  lg.inc({ room: 'a' }, 2);
  lg.dec({ room: 'a' }, 0.5);
  lg.labels('b').set(7);
  const before = Date.now() / 1e3;
  lg.setToCurrentTime({ room: 'now' });
  const end = lg.startTimer({ room: 't' });
  const secs = end();
  const s = samples(r.format());
  assert.equal(s.get('temp{room="a"}'), 2.5);
  assert.equal(s.get('temp{room="b"}'), 7);
  assert.ok(s.get('temp{room="now"}') >= before - 1 && s.get('temp{room="now"}') <= Date.now() / 1e3 + 1);
  assert.ok(secs >= 0 && s.get('temp{room="t"}') === secs);
  const rootEnd = g.startTimer();
  assert.ok(rootEnd() >= 0);
  assert.throws(() => g.set('1'), /Value is not a valid number: "1"/);
  assert.throws(() => g.inc(NaN), /not a valid number: NaN/);
  assert.throws(() => g.dec(Infinity), /not a valid number/);
  assert.throws(() => lg.set({ room: 'x' }, undefined), /not a valid number/);
  assert.throws(() => lg.inc({ room: 'x' }, 'a'), /not a valid number/);
  assert.throws(() => lg.dec({ room: 'x' }, NaN), /not a valid number/);
  assert.equal(s.has('temp{room="x"}'), false, 'a bad value creates no series');
  g.set(NaN); // a gauge may hold any double, as in prom-client
  assert.equal(samples(r.format()).get('depth'), NaN);
  r.close();
});

test('histogram: observe forms, buckets, startTimer with start and end labels', () => {
  const r = fresh();
  const h = new pm.Histogram({ name: 'lat_seconds', help: 'h', buckets: [0.1, 1, 10, Infinity], registers: [r] });
  for (const v of [0.05, 0.1, 0.5, 1, 5, 50, -2, 0]) h.observe(v);
  const lh = new pm.Histogram({ name: 'req_seconds', help: 'h', labelNames: ['path', 'code'], registers: [r] });
  lh.observe({ path: '/a', code: '200' }, 0.2);
  lh.labels('/a', '200').observe(0.3);
  const end = lh.startTimer({ path: '/b' });
  const secs = end({ code: '500' });
  const endRoot = h.startTimer();
  endRoot();
  lh.zero({ path: '/z', code: '200' });
  const s = samples(r.format());
  // The timed empty block lands in the first bucket.
  assert.equal(s.get('lat_seconds_bucket{le="0.1"}'), 5);
  assert.equal(s.get('lat_seconds_bucket{le="1.0"}'), 7);
  assert.equal(s.get('lat_seconds_bucket{le="10.0"}'), 8);
  assert.equal(s.get('lat_seconds_bucket{le="+Inf"}'), 9);
  assert.equal(s.get('lat_seconds_count'), 9);
  assert.equal(s.get('req_seconds_count{path="/a",code="200"}'), 2);
  assert.ok(Math.abs(s.get('req_seconds_sum{path="/a",code="200"}') - 0.5) < 1e-12);
  assert.equal(s.get('req_seconds_count{path="/b",code="500"}'), 1);
  assert.ok(Math.abs(s.get('req_seconds_sum{path="/b",code="500"}') - secs) < 1e-9);
  assert.equal(s.get('req_seconds_count{path="/z",code="200"}'), 0);
  assert.throws(() => h.observe(NaN), /not a valid number: NaN/);
  assert.throws(() => h.observe(Infinity), /not a valid number: Infinity/);
  assert.throws(() => h.observe('1'), /not a valid number: "1"/);
  assert.throws(() => lh.observe({ path: '/q', code: '1' }, undefined), /not a valid number: undefined/);
  assert.equal(samples(r.format()).has('req_seconds_count{path="/q",code="1"}'), false);
  r.close();
});

test('remove, reset, removeSingleMetric, clear, resetMetrics', async () => {
  const r = fresh();
  const c = new pm.Counter({ name: 'a', help: 'h', labelNames: ['k'], registers: [r] });
  c.inc({ k: 'x' }, 3);
  c.inc({ k: 'y' }, 4);
  c.remove('x');
  c.remove({ k: 'never' }); // absent: nothing to do, as prom-client
  let s = samples(r.format());
  assert.equal(s.has('a_total{k="x"}'), false);
  assert.equal(s.get('a_total{k="y"}'), 4);
  c.inc({ k: 'x' });
  assert.equal(samples(r.format()).get('a_total{k="x"}'), 1, 'a removed series starts again at zero');
  const p = new pm.Counter({ name: 'p', help: 'h', registers: [r] });
  p.inc(5);
  p.reset();
  assert.equal(samples(r.format()).get('p_total'), 0);
  p.inc(2);
  assert.equal(samples(r.format()).get('p_total'), 2);
  r.resetMetrics();
  s = samples(r.format());
  assert.equal(s.get('p_total'), 0);
  assert.equal(s.has('a_total{k="y"}'), false);
  assert.equal(r.getSingleMetric('p'), p);
  assert.deepEqual(r.getMetricsAsArray(), [c, p]);
  r.removeSingleMetric('p');
  r.removeSingleMetric('absent');
  r.registerMetric(p); // back in the registry it was made in
  assert.equal(r.getSingleMetric('p'), p);
  r.registerMetric(p); // already there: nothing to do
  assert.throws(() => pm.register.registerMetric(p), /only be registered in the registry it was made in/);
  assert.throws(() => r.registerMetric(null), /only be registered/);
  r.removeSingleMetric('p');
  assert.equal(r.getSingleMetric('p'), undefined);
  const again = new pm.Counter({ name: 'p', help: 'h', registers: [r] });
  again.inc();
  assert.equal(samples(r.format()).get('p_total'), 1);
  r.clear();
  assert.deepEqual(r.getMetricsAsArray(), []);
  r.close();
});

test('registry: content types, formats, JSON shapes, collect callbacks, getSingleMetricAsString', async () => {
  assert.equal(pm.register.contentType, 'text/plain; version=0.0.4; charset=utf-8');
  assert.equal(pm.prometheusContentType, pm.Registry.PROMETHEUS_CONTENT_TYPE);
  assert.match(pm.openMetricsContentType, /^application\/openmetrics-text; version=1.0.0/);
  const r = new pm.Registry(pm.Registry.OPENMETRICS_CONTENT_TYPE);
  assert.equal(r.contentType, pm.openMetricsContentType);
  let calls = 0;
  const g = new pm.Gauge({
    name: 'queue', help: 'h', registers: [r],
    async collect() {
      calls++;
      this.set(calls * 10);
    },
  });
  const c = new pm.Counter({ name: 'x', help: 'h', registers: [r] });
  c.inc(2);
  const om = await r.metrics();
  assert.match(om, /\n# EOF\n$/, 'OpenMetrics ends with # EOF');
  assert.equal(samples(om).get('queue'), 10);
  assert.match(om, /^perfmetrics_/m, 'self metrics are on by default');
  r.setContentType(pm.Registry.PROMETHEUS_CONTENT_TYPE);
  assert.doesNotMatch(await r.metrics(), /# EOF/);
  assert.throws(() => r.setContentType('text/html'), /not supported/);
  assert.throws(() => new pm.Registry('text/html'), /not supported/);
  const json = JSON.parse(r.format('json'));
  assert.equal(json.families.find((f) => f.name === 'x').series[0].value, 2);
  assert.throws(() => r.format('xml'), /unknown format "xml"/);
  const pj = await r.getMetricsAsJSON();
  assert.deepEqual(pj.find((f) => f.name === 'x_total'),
    { name: 'x_total', help: 'h', type: 'counter', values: [{ labels: {}, value: 2 }], aggregator: 'sum' });
  assert.equal(pj.find((f) => f.name === 'queue').values[0].value, calls * 10);
  const one = await r.getSingleMetricAsString('x');
  assert.equal(one, '# HELP x_total h\n# TYPE x_total counter\nx_total 2');
  await assert.rejects(r.getSingleMetricAsString('nope'), /no metric named nope/);
  new pm.Gauge({ name: 'x_total_extra', help: 'h', registers: [r] }).set(1); // shares the prefix
  assert.equal(await r.getSingleMetricAsString('x'), one);
  const hist = new pm.Histogram({ name: 'hs', help: 'h', buckets: [1], registers: [r] });
  hist.observe(0.5);
  assert.equal(await r.getSingleMetricAsString('hs'),
    '# HELP hs h\n# TYPE hs histogram\nhs_bucket{le="1.0"} 1\nhs_bucket{le="+Inf"} 1\nhs_sum 0.5\nhs_count 1');
  assert.equal((await g.get()).values[0].value, calls * 10);
  r.close();
});

test('histogram JSON: prom-client shape with buckets, sum and count', async () => {
  const r = fresh();
  const h = new pm.Histogram({ name: 'd', help: 'h', labelNames: ['a'], buckets: [1, 2], registers: [r] });
  h.observe({ a: 'x' }, 1.5);
  const [fam] = (await r.getMetricsAsJSON()).filter((f) => f.name === 'd');
  assert.deepEqual(fam.values, [
    { labels: { a: 'x', le: 1 }, value: 0, metricName: 'd_bucket' },
    { labels: { a: 'x', le: 2 }, value: 1, metricName: 'd_bucket' },
    { labels: { a: 'x', le: '+Inf' }, value: 1, metricName: 'd_bucket' },
    { labels: { a: 'x' }, value: 1.5, metricName: 'd_sum' },
    { labels: { a: 'x' }, value: 1, metricName: 'd_count' },
  ]);
  r.close();
});

test('cardinality limit: label sets past maxSeries land in the overflow series', () => {
  const r = fresh();
  const c = new pm.Counter({ name: 'ids', help: 'h', labelNames: ['id'], maxSeries: 2, registers: [r] });
  for (let i = 0; i < 5; i++) c.inc({ id: String(i) });
  const s = samples(r.format());
  assert.equal(s.get('ids_total{id="0"}'), 1);
  assert.equal(s.get('ids_total{id="1"}'), 1);
  assert.equal(s.get('ids_total{pm_overflow="true"}'), 3);
  r.close();
});

test('closed registry: calls throw, held children drop records without crashing', () => {
  const r = fresh();
  const c = new pm.Counter({ name: 'c', help: 'h', registers: [r] });
  const h = new pm.Histogram({ name: 'h', help: 'h', registers: [r] });
  const g = new pm.Gauge({ name: 'g', help: 'h', registers: [r] });
  const child = c.labels();
  const hchild = h.labels();
  const gchild = g.labels();
  r.close();
  r.close(); // twice is fine
  child.inc(5);
  hchild.observe(1);
  for (let i = 0; i < 100; i++) hchild.observe(i * 1.37); // new keys after close
  gchild.set(1);
  gchild.inc(1);
  assert.throws(() => r.format(), /registry is closed/);
  assert.throws(() => new pm.Counter({ name: 'n', help: 'h', registers: [r] }), /registry is closed/);
  assert.throws(() => c.labels(), /registry is closed/);
  assert.throws(() => c.remove(), /registry is closed/);
  assert.throws(() => c.reset(), /registry is closed/);
  assert.throws(() => r.resetMetrics(), /registry is closed/);
  assert.throws(() => c.inc(), /registry is closed/);
  pm.register.close(); // the default registry is never freed
  assert.doesNotThrow(() => pm.register.format());
});

test('bucket helpers and collectDefaultMetrics', () => {
  assert.deepEqual(pm.linearBuckets(1, 2, 3), [1, 3, 5]);
  assert.deepEqual(pm.exponentialBuckets(1, 10, 3), [1, 10, 100]);
  assert.throws(() => pm.linearBuckets(0, 1, 0), /positive count/);
  assert.throws(() => pm.exponentialBuckets(0, 2, 3), /positive start/);
  assert.throws(() => pm.exponentialBuckets(1, 1, 3), /factor greater than 1/);
  assert.throws(() => pm.exponentialBuckets(1, 2, 0), /positive count/);
  const r = fresh();
  assert.throws(() => pm.collectDefaultMetrics({ register: r, prefix: 'app_' }), /does not support prefix/);
  assert.throws(() => pm.collectDefaultMetrics({ register: r, labels: { a: '1' } }), /does not support labels/);
  pm.collectDefaultMetrics({ register: r });
  const s = samples(r.format());
  assert.ok(s.get('process_resident_memory_bytes') > 0);
  assert.ok(s.has('process_cpu_seconds_total'));
  r.close();
});
