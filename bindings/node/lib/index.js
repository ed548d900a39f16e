'use strict';
// perfmetrics: prom-client's API over libperfmetrics, with the library's
// spans, alert rules and HTTP endpoint.

const native = require('./native');
const registry = require('./registry');
const metrics = require('./metrics');
const cells = require('./cells');
const tracing = require('./tracing');
const alerts = require('./alerts');
const server = require('./server');
const cluster = require('./cluster');

module.exports = {
  Registry: registry.Registry,
  register: registry.register,
  Counter: metrics.Counter,
  Gauge: metrics.Gauge,
  Histogram: metrics.Histogram,
  linearBuckets: metrics.linearBuckets,
  exponentialBuckets: metrics.exponentialBuckets,
  // prom-client's collectDefaultMetrics({register}): the library's process
  // collector (process_* names, read from /proc at each scrape).
  collectDefaultMetrics: (config = {}) => {
    // The collector's names are Prometheus' standard ones: options that
    // would rename or relabel them are refused rather than ignored.
    for (const k of ['prefix', 'labels']) {
      if (config[k] !== undefined) throw new Error(`perfmetrics: collectDefaultMetrics does not support ${k}`);
    }
    (config.register || registry.register).collectDefaultMetrics();
  },
  prometheusContentType: registry.PROMETHEUS_CONTENT_TYPE,
  openMetricsContentType: registry.OPENMETRICS_CONTENT_TYPE,
  Tracer: tracing.Tracer,
  Span: tracing.Span,
  AlertEngine: alerts.AlertEngine,
  Server: server.Server,
  // The `cluster` aggregate: made in the primary before cluster.fork(), it
  // sums every worker's default registry with no IPC per scrape.
  AggregatorRegistry: cluster.AggregatorRegistry,
  startServer: server.startServer,
  PerfmetricsError: native.PerfmetricsError,
  // Frees this thread's cell blocks now (their counts fold into the series;
  // children made before drop what they record afterwards, new ones bind a
  // new block). A worker does this by itself when it exits.
  closeThread: () => cells.closeShards(),
  // Which library was loaded, whether it has cells (the FFI-free hot path)
  // and whether it has shared blocks (1.7: AggregatorRegistry, cluster workers).
  library: Object.freeze({
    path: native.libraryPath,
    version: native.C.pm_version_string(),
    cells: native.hasCells,
    cluster: native.hasAttach && native.hasSharedCells,
  }),
};
