// Compiled (never run) by package.test.js with tsc --strict: the declarations
// in index.d.ts must accept prom-client-style code and refuse misuse.
import pm, {
  AggregatorRegistry, AlertEngine, Counter, Gauge, Histogram, PerfmetricsError, Registry, Tracer, register, startServer,
} from 'perfmetrics';

const r: Registry = new Registry(Registry.OPENMETRICS_CONTENT_TYPE, { selfMetrics: false });
const c = new Counter({ name: 'jobs_total', help: 'Jobs.', labelNames: ['queue', 'state'] as const, registers: [r] });
c.inc();
c.inc(2);
c.inc({ queue: 'a' }, 1);
c.labels('a', 'ok').inc();
const n: number = c.labels({ queue: 'a', state: 'ok' }).get();
// @ts-expect-error: not a label name of this counter
c.inc({ colour: 'red' });
const g = new Gauge({ name: 'depth', help: 'h', maxSeries: 10, ttlSeconds: 60 });
g.set(1);
g.dec({}, 2);
const stopG: () => number = g.labels().startTimer();
const h = new Histogram({ name: 'lat_seconds', help: 'h', buckets: pm.linearBuckets(0.1, 0.1, 5), range: [1e-6, 10] });
h.observe(0.2);
const end = h.startTimer();
const secs: number = end();
h.zero({});
const text: Promise<string> = register.metrics();
const json: string = r.format('json');
const ex = r.addExporter('push', (snap) => console.log(snap.format('openmetrics').length));
r.exportNow();
r.startExporting(10, (err) => console.error(err));
r.stopExporting();
ex.remove();
// @ts-expect-error: not a format
r.format('xml');
const t = new Tracer({ sampler: 'ratio', ratio: 0.5, registry: r, flushSeconds: 1 });
t.start();
t.stop();
const s = t.startSpan('op', { kind: 'server' });
s.setAttribute('k', 1).addEvent('e', { a: 'b' }).setStatus('ok');
const tp: string = s.traceparent;
s.end();
const e = new AlertEngine({ registry: r, rules: 'alert A {\n  expr: depth > 1\n}\n' });
e.addNotifier('log', (ev) => console.log(ev.rule), { minSeverity: 'critical', matchers: [['team', '=', 'core']] });
const delivered: number = e.deliver();
// @ts-expect-error: not a matcher operator
e.addNotifier('bad', () => {}, { matchers: [['team', '~', 'core']] });
const firing: string[] = e.active().map((a) => `${a.rule} ${a.state} ${a.labels.alertname}`);
const srv = startServer({ registry: r, port: 0, tracer: t, alertEngine: e });
const port: number = srv.port;
try {
  AlertEngine.checkRules('x');
} catch (err) {
  if (err instanceof PerfmetricsError) console.log(err.code, err.status, err.line);
}
const agg: Registry = new AggregatorRegistry(Registry.PROMETHEUS_CONTENT_TYPE, { selfMetrics: false });
const aggr = new pm.AggregatorRegistry(undefined, { dir: '/dev/shm/app-cluster' });
const clusterText: Promise<string> = aggr.clusterMetrics();
const folded: number = aggr.stats().folded;
const dir: string = aggr.dir;
aggr.refresh();
aggr.close();
const summed = new Gauge({ name: 'workers_busy', help: 'h', aggregator: 'sum' });
// @ts-expect-error: not one of prom-client's aggregators
new Gauge({ name: 'workers_busy2', help: 'h', aggregator: 'median' });
// @ts-expect-error: dir is a string
new AggregatorRegistry(undefined, { dir: 1 });
console.log(delivered, n, stopG, secs, text, json, tp, firing, port, pm.library.cells, pm.library.cluster, agg, clusterText,
  folded, dir, summed);
