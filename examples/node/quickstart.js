'use strict';
// perfmetrics for Node: prom-client's API over libperfmetrics, with a span,
// an alert rule and the embedded /metrics endpoint. Run from the repository:
//   PERFMETRICS_LIBRARY=build/lib/libperfmetrics.so.1 node examples/node/quickstart.js
// (installed as a package: require('perfmetrics') instead of the path below).
const pm = require('../../bindings/node');

const requests = new pm.Counter({
  name: 'http_requests_total',
  help: 'Requests served, by route and status code.',
  labelNames: ['route', 'code'],
});
const latency = new pm.Histogram({
  name: 'http_request_duration_seconds',
  help: 'Time to serve a request.',
  labelNames: ['route'],
});
const inFlight = new pm.Gauge({ name: 'http_requests_in_flight', help: 'Requests being served.' });

const tracer = new pm.Tracer({ serviceName: 'quickstart', registry: pm.register });
const alerts = new pm.AlertEngine({
  rules: `
alert ManyErrors {
  expr: sum(http_requests_total{code="500"}) > 2
  severity: warning
  annotation summary: "{{ $value }} requests failed"
}
`,
});

// A stand-in for a request handler: a span, a timer, and the counters.
function handle(route, fail) {
  const span = tracer.startSpan(`GET ${route}`, { kind: 'server' });
  const end = latency.startTimer({ route });
  inFlight.inc();
  let x = 0;
  for (let i = 0; i < 1e4; i++) x += Math.sqrt(i); // the "work"
  inFlight.dec();
  end();
  const code = fail ? '500' : '200';
  requests.labels(route, code).inc();
  span.setAttribute('http.status_code', Number(code)).setStatus(fail ? 'error' : 'ok');
  span.end();
  return x;
}

async function main() {
  for (let i = 0; i < 20; i++) handle(i % 2 ? '/users' : '/orders', i % 5 === 0);
  tracer.flush();
  alerts.tick();

  const server = pm.startServer({ port: 0, tracer, alertEngine: alerts });
  const text = await (await fetch(`${server.url}metrics`)).text();
  const lines = text.split('\n').filter((l) => l.startsWith('http_requests_total'));
  console.log(`scraped ${server.url}metrics:`);
  for (const l of lines) console.log(`  ${l}`);
  for (const a of alerts.active()) console.log(`alert ${a.rule} is ${a.state}: ${a.annotations.summary}`);
  console.log(`cells (no FFI call per record): ${pm.library.cells}`);
  server.close(); // also done at exit, as are the tracer and the engine
}

main();
