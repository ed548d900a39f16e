'use strict';
// Every public entry point given values of the wrong kind: each throws an
// Error that says what was wrong (never a raw "Cannot read properties of
// ..." from inside the package), and the process survives to say so.

const test = require('node:test');
const assert = require('node:assert/strict');
const pm = require('..');

const RAW = /Cannot read properties|is not a function|is not iterable|Cannot convert|Maximum call stack/;
const junk = [null, undefined, 0, -1, NaN, '', 'x', {}, [], () => 1, Symbol('s'), 10n];

function throwsClearly(label, fn) {
  let err = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  if (err === null) return false;
  assert.ok(err instanceof Error, `${label}: threw a non-Error ${String(err)}`);
  assert.doesNotMatch(err.message, RAW, `${label}: ${err.message}`);
  return true;
}

test('constructors and factories refuse every kind of junk with clear errors', () => {
  const r = new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
  let i = 0;
  for (const v of junk) {
    const name = `m${i++}`;
    for (const [label, fn] of [
      ['Counter(v)', () => new pm.Counter(v)],
      ['Counter name', () => new pm.Counter({ name: v, help: 'h', registers: [r] })],
      ['Counter help', () => new pm.Counter({ name, help: v, registers: [r] })],
      ['Counter labelNames', () => new pm.Counter({ name, help: 'h', labelNames: v, registers: [r] })],
      ['Counter registers', () => new pm.Counter({ name, help: 'h', registers: v })],
      ['Histogram buckets', () => new pm.Histogram({ name, help: 'h', buckets: v, registers: [r] })],
      ['Histogram range', () => new pm.Histogram({ name, help: 'h', range: v, registers: [r] })],
      ['Gauge maxSeries', () => new pm.Gauge({ name, help: 'h', maxSeries: v, registers: [r] })],
      ['Gauge ttlSeconds', () => new pm.Gauge({ name, help: 'h', ttlSeconds: v, registers: [r] })],
      ['Registry(contentType)', () => new pm.Registry(v)],
      ['Registry options', () => new pm.Registry(undefined, v)],
      ['Tracer(v)', () => new pm.Tracer(v)],
      ['Tracer registry', () => new pm.Tracer({ registry: v })],
      ['AlertEngine(v)', () => new pm.AlertEngine(v)],
      ['AlertEngine registry', () => new pm.AlertEngine({ registry: v })],
      ['AlertEngine rules', () => new pm.AlertEngine({ registry: r, rules: v })],
      // (Never the default port: a junk options object would listen on 9464.)
      ['startServer(v)', () => pm.startServer(v === undefined || (v !== null && typeof v === 'object') ? { ...v, port: 0 } : v)],
      ['startServer registry', () => pm.startServer({ port: 0, registry: v })],
      ['startServer tracer', () => pm.startServer({ port: 0, tracer: v })],
      ['startServer alertEngine', () => pm.startServer({ port: 0, alertEngine: v })],
      ['startServer port', () => pm.startServer({ port: v === undefined ? 'default' : v })],
    ]) {
      // Some junk is acceptable for some options (undefined is "default",
      // '' a valid value for some): those calls must then just work.
      const made = [];
      const threw = throwsClearly(`${label} ${String(v)}`, () => made.push(fn()));
      if (!threw) for (const m of made) if (m && typeof m.close === 'function' && !(m instanceof pm.Registry && m === pm.register)) m.close();
    }
  }
  r.close();
});

test('record, label and span calls refuse junk values with clear errors', () => {
  const r = new pm.Registry(pm.Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
  const c = new pm.Counter({ name: 'c', help: 'h', labelNames: ['k'], registers: [r] });
  const g = new pm.Gauge({ name: 'g', help: 'h', registers: [r] });
  const h = new pm.Histogram({ name: 'h', help: 'h', registers: [r] });
  const t = new pm.Tracer();
  const s = t.startSpan('s');
  const e = new pm.AlertEngine({ registry: r });
  for (const v of [NaN, 'x', {}, [], () => 1, Symbol('s'), 10n, null, -1, Infinity]) {
    throwsClearly(`c.labels ${String(v)}`, () => c.labels('a').inc(v));
    throwsClearly(`c.inc labels ${String(v)}`, () => c.inc({ k: 'a' }, v));
    throwsClearly(`g.set ${String(v)}`, () => g.set(v));
    throwsClearly(`g.inc ${String(v)}`, () => g.inc(v));
    throwsClearly(`h.observe ${String(v)}`, () => h.observe(v));
    throwsClearly(`span attr ${String(v)}`, () => s.setAttribute('k', v));
    throwsClearly(`span status ${String(v)}`, () => s.setStatus(v));
    throwsClearly(`startSpan ${String(v)}`, () => t.startSpan('x', { parent: v }).end());
    throwsClearly(`tick ${String(v)}`, () => e.tick(v));
    throwsClearly(`format ${String(v)}`, () => r.format(v));
  }
  s.end();
  t.close();
  e.close();
  assert.equal(c.labels('a').get(), 0, 'no junk value was recorded');
});
