// ESM entry: the CommonJS module's exports as named exports, one module
// instance for both (so `import` and `require` in one thread share the
// default registry's JS side and the thread's cell blocks).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const pm = require('./index.js');

export default pm;
export const {
  Registry, register, Counter, Gauge, Histogram, linearBuckets, exponentialBuckets,
  collectDefaultMetrics, prometheusContentType, openMetricsContentType, Tracer, Span,
  AlertEngine, Server, startServer, AggregatorRegistry, PerfmetricsError, closeThread, library,
} = pm;
