// Types for perfmetrics: prom-client's API over libperfmetrics.

export type LabelValues<T extends string> = Partial<Record<T, string | number>>;

export class PerfmetricsError extends Error {
  /** The library's status, e.g. -3. */
  status: number;
  /** The status's name, e.g. "PM_EEXIST". */
  code: string;
  /** Rule-file errors: where the parser stopped. */
  line?: number;
  column?: number;
}

export type Format = 'prometheus' | 'openmetrics' | 'json';

export interface MetricObjectValue<T extends string = string> {
  labels: LabelValues<T | 'le'>;
  value: number;
  metricName?: string;
}

export interface MetricObject {
  name: string;
  help: string;
  type: 'counter' | 'gauge' | 'histogram';
  values: MetricObjectValue[];
  aggregator: 'sum';
}

export interface RegistryOptions {
  /** Include the library's own perfmetrics_* families (default true). */
  selfMetrics?: boolean;
}

export class Registry {
  constructor(contentType?: string, options?: RegistryOptions);
  static readonly PROMETHEUS_CONTENT_TYPE: string;
  static readonly OPENMETRICS_CONTENT_TYPE: string;
  readonly contentType: string;
  setContentType(contentType: string): void;
  /** Exposition in this registry's content type. */
  metrics(): Promise<string>;
  /** The exposition in any of the library's formats, synchronously. */
  format(fmt?: Format): string;
  getMetricsAsJSON(): Promise<MetricObject[]>;
  getMetricsAsArray(): Array<Counter | Gauge | Histogram>;
  /** Only the registry the metric was made in. */
  registerMetric(metric: Counter | Gauge | Histogram): void;
  getSingleMetric(name: string): Counter | Gauge | Histogram | undefined;
  getSingleMetricAsString(name: string): Promise<string>;
  removeSingleMetric(name: string): void;
  clear(): void;
  resetMetrics(): void;
  collectDefaultMetrics(): void;
  /** An exporter: exportNow() hands fn the snapshot, to format during the call. */
  addExporter(name: string, fn: (snapshot: ExportSnapshot) => void): Exporter;
  /** Runs every exporter on one snapshot, on this thread; throws the first error one threw. */
  exportNow(): void;
  /** exportNow() every `seconds` from an unref'd timer. */
  startExporting(seconds: number, onError?: (e: unknown) => void): void;
  stopExporting(): void;
  /** Frees the registry (not the default one). */
  close(): void;
}

export interface AggregatorRegistryOptions {
  /** The directory to share: created if missing, kept at close (default: a fresh one under /dev/shm, or the temp dir, removed at close). */
  dir?: string;
  /** Add this registry's own perfmetrics_* families to the aggregate (default false). */
  selfMetrics?: boolean;
}

/** pm_cells_attach_stat's counters, after a refresh. */
export interface AggregatorStats {
  /** Blocks of live worker threads. */
  blocks: number;
  /** Blocks of ended workers, added for good. */
  folded: number;
  /** Series being added from live blocks. */
  bindings: number;
  /** Series refused: their family has another definition here, or a malformed record. */
  rejected: number;
  /** Block reads repeated because a worker grew a histogram meanwhile. */
  retries: number;
}

/**
 * The `cluster` aggregate: made in the primary before cluster.fork(). Every
 * worker's default registry is summed into it at each snapshot, with no IPC.
 */
export class AggregatorRegistry extends Registry {
  constructor(contentType?: string, options?: AggregatorRegistryOptions);
  /** The directory workers forked from now on write into (their PERFMETRICS_CLUSTER_DIR). */
  readonly dir: string;
  /** Every worker's metrics, summed: one snapshot of this registry, as metrics(). */
  clusterMetrics(): Promise<string>;
  /** Looks at the directory now (new workers and series, ended workers). */
  refresh(): void;
  stats(): AggregatorStats;
  /** Detaches and removes the directory it made; a second close() does nothing. */
  close(): void;
}

export interface ExportSnapshot {
  /** Only during the exporter's call. */
  format(fmt?: Format): string;
}

export interface Exporter {
  readonly name: string;
  remove(): void;
}

export const register: Registry;
export const prometheusContentType: string;
export const openMetricsContentType: string;

export interface MetricConfiguration<T extends string> {
  name: string;
  help: string;
  labelNames?: readonly T[];
  /** Exactly one registry (default: [register]). */
  registers?: Registry[];
  /** Called before each exposition; may return a promise (metrics() awaits it). */
  collect?: (this: any) => void | Promise<void>;
  /** OpenMetrics unit; the name must end with "_" + unit. */
  unit?: string;
  /** Cardinality limit; further label sets land in the overflow series. */
  maxSeries?: number;
  /** Series unchanged for this long are removed. */
  ttlSeconds?: number;
  /** prom-client's cluster aggregator: in a cluster worker's default registry only 'sum' (others throw); no effect elsewhere. */
  aggregator?: 'sum' | 'first' | 'min' | 'max' | 'average' | 'omit';
}

export interface HistogramConfiguration<T extends string> extends MetricConfiguration<T> {
  buckets?: number[];
  /** [lowest, highest]: where quantiles keep their 1/129 relative error. */
  range?: [number, number];
}

export interface CounterChild {
  inc(value?: number): void;
  /** This series' value over every thread. */
  get(): number;
}

export interface GaugeChild {
  set(value: number): void;
  inc(value?: number): void;
  dec(value?: number): void;
  setToCurrentTime(): void;
  startTimer(): () => number;
  get(): number;
}

export interface HistogramChild {
  observe(value: number): void;
  startTimer(): () => number;
}

declare class Metric<T extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: T[];
  readonly registry: Registry;
  remove(...values: Array<string | number>): void;
  remove(labels: LabelValues<T>): void;
  reset(): void;
  get(): Promise<MetricObject>;
}

export class Counter<T extends string = string> extends Metric<T> {
  constructor(config: MetricConfiguration<T>);
  readonly type: 'counter';
  inc(value?: number): void;
  inc(labels: LabelValues<T>, value?: number): void;
  labels(...values: Array<string | number>): CounterChild;
  labels(labels: LabelValues<T>): CounterChild;
}

export class Gauge<T extends string = string> extends Metric<T> {
  constructor(config: MetricConfiguration<T>);
  readonly type: 'gauge';
  set(value: number): void;
  set(labels: LabelValues<T>, value: number): void;
  inc(value?: number): void;
  inc(labels: LabelValues<T>, value?: number): void;
  dec(value?: number): void;
  dec(labels: LabelValues<T>, value?: number): void;
  setToCurrentTime(labels?: LabelValues<T>): void;
  startTimer(labels?: LabelValues<T>): (labels?: LabelValues<T>) => number;
  labels(...values: Array<string | number>): GaugeChild;
  labels(labels: LabelValues<T>): GaugeChild;
}

export class Histogram<T extends string = string> extends Metric<T> {
  constructor(config: HistogramConfiguration<T>);
  readonly type: 'histogram';
  observe(value: number): void;
  observe(labels: LabelValues<T>, value: number): void;
  startTimer(labels?: LabelValues<T>): (labels?: LabelValues<T>) => number;
  labels(...values: Array<string | number>): HistogramChild;
  labels(labels: LabelValues<T>): HistogramChild;
  zero(labels: LabelValues<T>): void;
}

export function linearBuckets(start: number, width: number, count: number): number[];
export function exponentialBuckets(start: number, factor: number, count: number): number[];
export function collectDefaultMetrics(config?: { register?: Registry; prefix?: never; labels?: never }): void;

export type SpanKind = 'internal' | 'server' | 'client' | 'producer' | 'consumer';

export class Span {
  readonly sampled: boolean;
  readonly traceId: string;
  readonly spanId: string;
  readonly traceparent: string;
  setAttribute(key: string, value: string | number | boolean): this;
  addEvent(name: string, attribute?: Record<string, string>): this;
  setStatus(status: 'unset' | 'ok' | 'error', message?: string): this;
  end(): void;
}

export interface TracerOptions {
  serviceName?: string;
  sampler?: 'always' | 'never' | 'ratio' | 'parent';
  ratio?: number;
  /** Spans feed pm_span_duration_seconds, pm_spans_total and pm_span_errors_total here. */
  registry?: Registry;
  /** Interval of the flush thread start() runs (default 5 s). */
  flushSeconds?: number;
}

export interface OperationStats {
  name: string;
  spans: number;
  errors: number;
  p50: number | null;
  p99: number | null;
}

export class Tracer {
  constructor(options?: TracerOptions);
  startSpan(name: string, options?: { kind?: SpanKind; parent?: Span | string }): Span;
  flush(): number;
  /** Flushes on the library's own thread every flushSeconds; stop() joins it. */
  start(): void;
  stop(): void;
  stats(): { started: number; sampled: number; ended: number; dropped: number; exported: number };
  operations(): OperationStats[];
  close(): void;
}

export interface AlertEvent {
  rule: string;
  state: 'inactive' | 'pending' | 'firing' | 'resolved';
  severity: 'info' | 'warning' | 'critical';
  value: number;
  /** Seconds since the Unix epoch. */
  time: number;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export class AlertEngine {
  constructor(options?: { registry?: Registry; interval?: number; rules?: string });
  static checkRules(text: string): number;
  loadRules(text: string): void;
  removeRule(name: string): void;
  readonly ruleCount: number;
  tick(nowMs?: number): void;
  start(): void;
  stop(): void;
  readonly health: number;
  active(): AlertEvent[];
  history(): AlertEvent[];
  /** fn runs inside deliver(), on the calling thread, for events that pass the filter. */
  addNotifier(name: string, fn: (event: AlertEvent) => void, filter?: {
    minSeverity?: 'info' | 'warning' | 'critical';
    rules?: string[];
    matchers?: Array<[string, '=' | '!=' | '=~' | '!~', string]>;
    sendResolved?: boolean;
  }): void;
  removeNotifier(name: string): void;
  /** Delivers up to max queued events (0: all); returns how many. */
  deliver(max?: number): number;
  close(): void;
}

export interface ServerOptions {
  registry?: Registry;
  host?: string;
  port?: number;
  token?: string;
  threads?: number;
  title?: string;
  tracer?: Tracer;
  alertEngine?: AlertEngine;
}

export interface ServerStats {
  connections: number; open: number; rejected: number; requests: number;
  responses2xx: number; responses4xx: number; responses5xx: number; timeouts: number;
  bytesIn: number; bytesOut: number; scrapes: number; unauthorized: number;
}

export class Server {
  constructor(options?: ServerOptions);
  readonly port: number;
  readonly url: string;
  stats(): ServerStats;
  close(): void;
}

export function startServer(options?: ServerOptions): Server;
export function closeThread(): void;
export const library: {
  readonly path: string; readonly version: string; readonly cells: boolean;
  /** Shared cell blocks (1.7): AggregatorRegistry and cluster workers. */
  readonly cluster: boolean;
};

declare const perfmetrics: {
  Registry: typeof Registry; register: Registry; Counter: typeof Counter; Gauge: typeof Gauge;
  Histogram: typeof Histogram; linearBuckets: typeof linearBuckets;
  exponentialBuckets: typeof exponentialBuckets; collectDefaultMetrics: typeof collectDefaultMetrics;
  prometheusContentType: string; openMetricsContentType: string; Tracer: typeof Tracer;
  Span: typeof Span; AlertEngine: typeof AlertEngine; Server: typeof Server;
  startServer: typeof startServer; AggregatorRegistry: typeof AggregatorRegistry;
  PerfmetricsError: typeof PerfmetricsError;
  closeThread: typeof closeThread; library: typeof library;
};
export default perfmetrics;
