'use strict';
// The exposition is checked by promtool (Prometheus' own checker of the
// text format) and its values against what prom-client, fed the same
// records, reports for the same metrics.

const test = require('node:test');
const assert = require('node:assert/strict');
const pm = require('..');
const client = require('prom-client');
const { samples, havePromtool, promtool } = require('./helpers');

// The same records into both libraries.
function record(lib, registry) {
  const c = new lib.Counter({ name: 'http_requests_total', help: 'Requests "served".\nSecond line \\ end.', labelNames: ['method', 'path'], registers: [registry] });
  const g = new lib.Gauge({ name: 'queue_depth', help: 'Depth.', labelNames: ['queue'], registers: [registry] });
  const h = new lib.Histogram({ name: 'latency_seconds', help: 'Latency.', labelNames: ['path'], buckets: [0.01, 0.1, 1], registers: [registry] });
  c.inc({ method: 'GET', path: '/a"b\\c\nd' }, 3);
  c.labels('POST', '/ü').inc();
  g.set({ queue: 'q1' }, -2.5);
  g.labels('q2').inc(7);
  for (const v of [0.005, 0.01, 0.05, 0.5, 2]) h.observe({ path: '/x' }, v);
}

test('Prometheus text passes promtool and matches prom-client sample for sample', { skip: !havePromtool() && 'promtool missing' }, async () => {
  const ours = new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
  const theirs = new client.Registry();
  record(pm, ours);
  record(client, theirs);
  const text = await ours.metrics();
  const check = promtool(text);
  assert.equal(check.status, 0, check.output);
  const a = samples(text);
  const b = samples(await theirs.metrics());
  // prom-client puts le first and prints bounds as JS does (le="1"); the
  // library puts it last and prints them as Prometheus' Go client does
  // (le="1.0"): compare label sets sorted, bounds as numbers.
  const norm = (m) => new Map([...m].map(([k, v]) => {
    const brace = k.indexOf('{');
    if (brace < 0) return [k, v];
    const pairs = [...k.slice(brace).matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)]
      .map(([, n, x]) => `${n}="${n === 'le' && x !== '+Inf' ? Number(x) : x}"`).sort();
    return [`${k.slice(0, brace)}{${pairs.join(',')}}`, v];
  }));
  assert.deepEqual(norm(a), norm(b));
  ours.close();
});

// promtool reads the Prometheus text format only: OpenMetrics is checked
// for its own markers, and the default registry (self metrics included) by
// promtool.
test('OpenMetrics text; the default registry with self metrics passes promtool', { skip: !havePromtool() && 'promtool missing' }, async () => {
  const r = new pm.Registry(pm.Registry.OPENMETRICS_CONTENT_TYPE);
  record(pm, r);
  const text = await r.metrics();
  assert.match(text, /^# TYPE http_requests counter$/m);
  assert.match(text, /^http_requests_total\{method="GET",path="\/a\\"b\\\\c\\nd"\} 3$/m);
  assert.match(text, /^latency_seconds_bucket\{path="\/x",le="0\.1"\} 3$/m);
  assert.match(text, /\n# EOF\n$/);
  const p = promtool(pm.register.format('prometheus'));
  assert.equal(p.status, 0, p.output);
  r.close();
});

test('10k series: exposition holds every series with its value', () => {
  const r = new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
  const c = new pm.Counter({ name: 'ops', help: 'h', labelNames: ['id'], maxSeries: 20000, registers: [r] });
  for (let i = 0; i < 10000; i++) c.labels(String(i)).inc(i);
  const s = samples(r.format());
  assert.equal(s.size, 10000);
  for (let i = 0; i < 10000; i += 997) assert.equal(s.get(`ops_total{id="${i}"}`), i);
  r.close();
});

test('large exposition with multi-byte UTF-8 decodes exactly across its 32 KiB pieces', () => {
  const r = new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
  const c = new pm.Counter({ name: 'utf', help: 'Hélp ✓.', labelNames: ['v'], registers: [r] });
  // Values of 1-, 2-, 3- and 4-byte characters shift where each piece ends.
  for (let i = 0; i < 5000; i++) c.labels(`${'aü€😀'.repeat(1 + (i % 7))}-${i}`).inc(i);
  const text = r.format();
  assert.ok(Buffer.byteLength(text) > 200000);
  assert.equal(text.includes('\ufffd'), false);
  const s = samples(text);
  for (let i = 0; i < 5000; i++) assert.equal(s.get(`utf_total{v="${'aü€😀'.repeat(1 + (i % 7))}-${i}"}`), i);
  assert.match(text, /^# HELP utf_total Hélp ✓\.$/m);
  r.close();
});
