'use strict';
// Spans, the alert engine with rules from text, and the HTTP endpoint
// fetched over loopback.

const test = require('node:test');
const assert = require('node:assert/strict');
const pm = require('..');
const { samples, until } = require('./helpers');

function fresh() {
  return new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
}

test('spans: parents, remote traceparent, attributes, events, status, analytics and RED metrics', () => {
  const r = fresh();
  const t = new pm.Tracer({ serviceName: 'svc', sampler: 'always', registry: r });
  const root = t.startSpan('handle', { kind: 'server' });
  assert.equal(root.sampled, true);
  assert.match(root.traceId, /^[0-9a-f]{32}$/);
  assert.match(root.spanId, /^[0-9a-f]{16}$/);
  assert.equal(root.traceparent, `00-${root.traceId}-${root.spanId}-01`);
  root.setAttribute('user', 'ann').setAttribute('n', 3).setAttribute('ratio', 0.5).setAttribute('ok', true);
  root.addEvent('cache miss', { key: 'k1' }).addEvent('plain');
  const child = t.startSpan('load', { parent: root, kind: 'client' });
  assert.equal(child.traceId, root.traceId);
  child.setStatus('error', 'timed out');
  child.end();
  child.end(); // once only
  root.setStatus('ok');
  root.end();
  const remote = t.startSpan('job', { parent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' });
  assert.equal(remote.traceId, '0af7651916cd43dd8448eb211c80319c');
  remote.end();
  assert.equal(t.flush(), 3);
  assert.deepEqual(t.stats(), { started: 3, sampled: 3, ended: 3, dropped: 0, exported: 3 });
  const ops = Object.fromEntries(t.operations().map((o) => [o.name, o]));
  assert.equal(ops.load.errors, 1);
  assert.equal(ops.handle.spans, 1);
  assert.ok(ops.handle.p50 >= 0 && ops.handle.p99 >= ops.handle.p50);
  const s = samples(r.format());
  assert.equal(s.get('pm_spans_total{operation="load"}'), 1);
  assert.equal(s.get('pm_span_errors_total{operation="load"}'), 1);
  assert.equal(s.get('pm_span_duration_seconds_count{operation="handle"}'), 1);
  assert.throws(() => r.close(), /close the tracers/);
  t.close();
  t.close();
  r.close();
});

test('spans: start() flushes on the library\'s thread into the RED metrics', async () => {
  const r = new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
  const t = new pm.Tracer({ registry: r, flushSeconds: 0.01 });
  t.start();
  assert.throws(() => t.start(), (e) => e.code === 'PM_ESTATE');
  t.startSpan('tick').end();
  await until(() => samples(r.format()).get('pm_spans_total{operation="tick"}') === 1);
  t.stop();
  assert.throws(() => new pm.Tracer({ flushSeconds: 0 }), (e) => e.code === 'PM_ERANGE');
  assert.throws(() => new pm.Tracer({ flushSeconds: '1' }), /flushSeconds must be a number/);
  t.close();
  r.close();
});

test('spans: bad inputs', () => {
  const t = new pm.Tracer({ sampler: 'never' });
  const s = t.startSpan('x');
  assert.equal(s.sampled, false);
  assert.throws(() => t.startSpan(1), /span name must be a string/);
  assert.throws(() => t.startSpan('x', { kind: 'sideways' }), /kind must be one of internal, server/);
  assert.throws(() => t.startSpan('x', { parent: 5 }), /parent must be a Span or a traceparent/);
  assert.throws(() => t.startSpan('x', { parent: '00-zz' }), (e) => e.code === 'PM_EPARSE' && /traceparent: malformed input/.test(e.message));
  assert.throws(() => s.setAttribute(1, 'a'), /key must be a string/);
  assert.throws(() => s.setAttribute('k', {}), /string, number or boolean/);
  assert.throws(() => s.addEvent('e', { a: '1', b: '2' }), /one attribute at most/);
  assert.throws(() => s.setStatus('fine'), /status must be one of unset, ok, error/);
  assert.throws(() => new pm.Tracer({ sampler: 'ratio', ratio: 2 }), (e) => e.code === 'PM_ERANGE');
  assert.throws(() => new pm.Tracer({ ratio: 'half' }), /ratio must be a number/);
  assert.throws(() => new pm.Tracer({ sampler: 'x' }), /sampler must be one of/);
  s.end();
  assert.throws(() => s.setAttribute('k', 'v'), /after end\(\)/);
  t.close();
  assert.throws(() => t.startSpan('late'), /tracer is closed/);
});

const RULES = `
alert QueueDeep {
  expr: queue_depth > 10
  severity: critical
  label team: "core"
  annotation summary: "depth {{ $value }}"
}
alert QueueSlow {
  expr: queue_depth > 100
  for: 1m
}
`;

test('alert rules from text: load, tick with an explicit clock, active, history, health, remove', () => {
  const r = fresh();
  assert.equal(pm.AlertEngine.checkRules(RULES), 2);
  const g = new pm.Gauge({ name: 'queue_depth', help: 'h', registers: [r] });
  const e = new pm.AlertEngine({ registry: r, interval: 1, rules: RULES });
  assert.equal(e.ruleCount, 2);
  const t0 = Date.UTC(2026, 0, 1);
  g.set(5);
  e.tick(t0);
  assert.deepEqual(e.active(), []);
  assert.equal(e.health, 100);
  g.set(50);
  e.tick(t0 + 1000);
  const [a] = e.active();
  assert.equal(a.rule, 'QueueDeep');
  assert.equal(a.state, 'firing');
  assert.equal(a.severity, 'critical');
  assert.equal(a.value, 50);
  assert.equal(a.time, (t0 + 1000) / 1e3);
  assert.deepEqual(a.labels, { alertname: 'QueueDeep', severity: 'critical', team: 'core' });
  assert.deepEqual(a.annotations, { summary: 'depth 50' });
  assert.equal(e.health, 75);
  g.set(1);
  e.tick(t0 + 2000);
  assert.deepEqual(e.active(), []);
  assert.deepEqual(e.history().map((h) => h.state), ['firing', 'resolved']);
  assert.match(r.format(), /^# TYPE ALERTS gauge$/m);
  e.removeRule('QueueSlow');
  assert.equal(e.ruleCount, 1);
  e.loadRules('alert Later {\n  expr: queue_depth < 0\n}\n');
  assert.equal(e.ruleCount, 2);
  assert.throws(() => e.loadRules('alert Later {\n  expr: up > 1\n}\n'), (x) => x.code === 'PM_EEXIST');
  assert.throws(() => e.loadRules(null), /rule-file text/);
  assert.throws(() => e.removeRule('QueueSlow'), (x) => x.code === 'PM_ENOENT');
  assert.throws(() => e.tick(t0), (x) => x.code === 'PM_ERANGE', 'time going backwards');
  assert.throws(() => e.tick(NaN), /finite time/);
  e.start();
  assert.throws(() => e.start(), (x) => x.code === 'PM_ESTATE');
  e.stop();
  e.close();
  assert.throws(() => e.active(), /alert engine is closed/);
  r.close();
});

test('alert notifiers in JS: filters, deliver() on this thread, errors counted and thrown, remove', () => {
  const r = fresh();
  const g = new pm.Gauge({ name: 'queue_depth', help: 'h', registers: [r] });
  const e = new pm.AlertEngine({ registry: r, rules: RULES });
  const all = [];
  const critical = [];
  e.addNotifier('all', (ev) => all.push(`${ev.rule} ${ev.state} ${ev.labels.team}`));
  e.addNotifier('pager', (ev) => critical.push(ev.state), { minSeverity: 'critical', rules: ['QueueDeep'],
    matchers: [['team', '=~', 'co.*']], sendResolved: false });
  e.addNotifier('broken', () => {
    throw new Error('webhook down');
  }, { rules: ['QueueDeep'] });
  g.set(50);
  e.tick(1000);
  assert.deepEqual(all, [], 'nothing runs before deliver()');
  assert.throws(() => e.deliver(), /^Error: webhook down$/);
  assert.deepEqual(all, ['QueueDeep firing core']);
  assert.deepEqual(critical, ['firing']);
  e.removeNotifier('broken');
  g.set(0);
  e.tick(2000);
  assert.equal(e.deliver(), 1);
  assert.deepEqual(all, ['QueueDeep firing core', 'QueueDeep resolved core']);
  assert.deepEqual(critical, ['firing'], 'sendResolved: false');
  assert.throws(() => e.addNotifier('all', () => {}), (x) => x.code === 'PM_EEXIST');
  assert.throws(() => e.addNotifier('x', () => {}, { minSeverity: 'loud' }), /minSeverity must be one of info/);
  assert.throws(() => e.addNotifier('x', () => {}, { matchers: [['team', '~', 'x']] }), (x) => x.code === 'PM_EINVAL');
  assert.throws(() => e.addNotifier('x', () => {}, { matchers: ['team'] }), /a matcher is \[label, op, value\]/);
  assert.throws(() => e.addNotifier(1, () => {}), /name must be a string/);
  assert.throws(() => e.addNotifier('x', null), /needs a function/);
  assert.throws(() => e.removeNotifier('nope'), (x) => x.code === 'PM_ENOENT');
  assert.throws(() => e.deliver(-1), /integer >= 0/);
  g.set(60);
  e.tick(3000);
  e.close(); // delivers what is queued, on this thread
  assert.equal(all.length, 3);
  r.close();
});

test('alert rules: parse errors say where, with the library message', () => {
  assert.throws(() => pm.AlertEngine.checkRules('alert X {\n  expr: sum(rate(x[5m])\n}\n'), (e) => {
    assert.equal(e.code, 'PM_EPARSE');
    assert.equal(e.line, 2);
    assert.equal(e.column, 24);
    assert.equal(e.message, "alert rules: malformed input (line 2, column 24: expected ')' but found end of input)");
    return true;
  });
  assert.throws(() => pm.AlertEngine.checkRules('alert A {\n  expr: x > 1\n}\nalert A {\n  expr: y > 1\n}\n'),
    (e) => e.code === 'PM_EEXIST' && e.line === 4);
  assert.throws(() => pm.AlertEngine.checkRules(5), /rule-file text/);
  const r = fresh();
  assert.throws(() => new pm.AlertEngine({ registry: r, rules: 'nonsense' }), (e) => e.code === 'PM_EPARSE');
  assert.throws(() => new pm.AlertEngine({ registry: r, interval: 'x' }), /interval must be a number/);
  assert.throws(() => new pm.AlertEngine({ registry: r, interval: 0 }), (e) => e.code === 'PM_ERANGE');
  r.close(); // the failed engines left nothing reading r
});

test('HTTP endpoint: /metrics over loopback, token, traces and alerts, stats, close', async () => {
  const r = fresh();
  const c = new pm.Counter({ name: 'served', help: 'h', registers: [r] });
  c.inc(3);
  const t = new pm.Tracer({ registry: r });
  const e = new pm.AlertEngine({ registry: r, rules: RULES });
  const srv = pm.startServer({ registry: r, port: 0, tracer: t, alertEngine: e, title: 'test', threads: 1 });
  assert.ok(srv.port > 0);
  assert.equal(srv.url, `http://127.0.0.1:${srv.port}/`);
  const res = await fetch(`${srv.url}metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type'), /^text\/plain; version=0.0.4/);
  assert.equal(samples(await res.text()).get('served_total'), 3);
  const om = await fetch(`${srv.url}metrics`, { headers: { accept: 'application/openmetrics-text' } });
  assert.match(await om.text(), /# EOF\n$/);
  const span = t.startSpan('req');
  span.end();
  t.flush();
  const traces = await (await fetch(`${srv.url}api/v1/traces`)).json();
  assert.ok(JSON.stringify(traces).includes('req'));
  const health = await (await fetch(`${srv.url}health`)).json();
  assert.equal(health.health_score, 100);
  assert.equal(health.status, 'healthy');
  await until(() => srv.stats().scrapes === 2);
  assert.throws(() => t.close(), /close the server/);
  assert.throws(() => e.close(), /close the server/);
  srv.close();
  srv.close();
  assert.throws(() => srv.stats(), /server is closed/);
  await assert.rejects(fetch(`http://127.0.0.1:${srv.port}/metrics`));
  const guarded = new pm.Server({ registry: r, port: 0, token: 'secret' });
  assert.equal((await fetch(`${guarded.url}metrics`)).status, 401);
  assert.equal((await fetch(`${guarded.url}metrics`, { headers: { authorization: 'Bearer secret' } })).status, 200);
  guarded.close();
  e.close();
  t.close();
  r.close();
});

test('HTTP endpoint: bad options', () => {
  assert.throws(() => pm.startServer({ port: 0, host: 'example.invalid' }), (e) => e.code === 'PM_EPARSE' &&
    /server address: malformed input \(example.invalid:0\)/.test(e.message));
  assert.throws(() => pm.startServer({ port: 70000 }), (e) => e.code === 'PM_ERANGE');
  assert.throws(() => pm.startServer({ port: '1' }), /port must be an integer/);
  assert.throws(() => pm.startServer({ host: 1, port: 0 }), /host must be a string/);
  assert.throws(() => pm.startServer({ port: 0, token: 'bad token' }), (e) => e.code === 'PM_EPARSE');
  assert.throws(() => pm.startServer({ port: 0, threads: 0 }), (e) => e.code === 'PM_ERANGE');
  assert.throws(() => pm.startServer({ port: 0, threads: 1.5 }), /threads must be an integer/);
  const a = pm.startServer({ port: 0 });
  assert.throws(() => pm.startServer({ port: a.port }), (e) => e.code === 'PM_EIO');
  a.close();
});
