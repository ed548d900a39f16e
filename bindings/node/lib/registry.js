'use strict';
// Registries: a JS face over pm_registry_t with prom-client's methods.
// The C registry is process-wide memory: the default registry is the same
// pm_registry_default() in every worker, so the main thread's
// register.metrics() shows what every thread recorded, with no message
// passing per scrape.

const { C, check, outPtr, bufString, scratchBuf, optionsObject, describe } = require('./native');
const cells = require('./cells');
const { Exporter } = require('./exporters');

const FORMATS = { prometheus: 1, openmetrics: 2, json: 3 };
const PROMETHEUS_CONTENT_TYPE = C.pm_format_content_type(FORMATS.prometheus);
const OPENMETRICS_CONTENT_TYPE = C.pm_format_content_type(FORMATS.openmetrics);

function formatCode(fmt) {
  const code = FORMATS[fmt];
  if (code === undefined) {
    throw new TypeError(`perfmetrics: unknown format ${describe(fmt)} (prometheus, openmetrics or json)`);
  }
  return code;
}

// Everything this thread has to close at exit, newest first: servers before
// the engines and tracers they read, those before registries.
const closers = new Set();
function onExit(obj) {
  closers.add(obj);
}
function forgetAtExit(obj) {
  closers.delete(obj);
}
process.on('exit', () => {
  for (const obj of [...closers].reverse()) {
    try {
      obj.close();
    } catch (e) {
      // Nothing can act on it any more; the rest still gets closed.
      process.stderr.write(`perfmetrics: at exit: ${e.message}\n`);
    }
  }
  cells.closeShards();
});

class Registry {
  // new Registry() creates a registry of its own; `contentType` chooses what
  // metrics() returns, as prom-client's Registry(contentType) does.
  constructor(contentType = PROMETHEUS_CONTENT_TYPE, options = {}) {
    if (contentType !== PROMETHEUS_CONTENT_TYPE && contentType !== OPENMETRICS_CONTENT_TYPE) {
      throw new TypeError(`perfmetrics: content type ${describe(contentType)} is not supported`);
    }
    optionsObject(options, 'Registry');
    this._contentType = contentType;
    this._metrics = new Map();
    // Tracers, alert engines and servers that read this registry.
    this._readers = new Set();
    this._exporters = new Set();
    this._exportErrors = [];
    this._exportTimer = null;
    if (options._ptr !== undefined) {
      this.ptr = options._ptr;
      this._owned = false;
      return;
    }
    const opts = outPtr((o) => C.pm_registry_opts_new(o), 'pm_registry_opts_new');
    try {
      if (options.selfMetrics === false) check(C.pm_registry_opts_set_self_metrics(opts, 0), 'selfMetrics');
      this.ptr = outPtr((o) => C.pm_registry_new(opts, o), 'pm_registry_new');
    } finally {
      C.pm_registry_opts_free(opts);
    }
    this._owned = true;
    onExit(this);
  }

  static get PROMETHEUS_CONTENT_TYPE() {
    return PROMETHEUS_CONTENT_TYPE;
  }

  static get OPENMETRICS_CONTENT_TYPE() {
    return OPENMETRICS_CONTENT_TYPE;
  }

  get contentType() {
    return this._contentType;
  }

  setContentType(contentType) {
    if (contentType !== PROMETHEUS_CONTENT_TYPE && contentType !== OPENMETRICS_CONTENT_TYPE) {
      throw new TypeError(`perfmetrics: content type ${describe(contentType)} is not supported`);
    }
    this._contentType = contentType;
  }

  _live() {
    if (this.ptr === null) throw new Error('perfmetrics: this registry is closed');
    return this.ptr;
  }

  _add(metric) {
    this._live();
    if (this._metrics.has(metric.name)) {
      throw new Error(`A metric with the name ${metric.name} has already been registered.`);
    }
    this._metrics.set(metric.name, metric);
  }

  // The registry's snapshot in `fmt` ('prometheus', 'openmetrics' or
  // 'json'), synchronously. Metrics with a collect() callback that returns a
  // promise are refreshed only by metrics(), which awaits them.
  format(fmt = 'prometheus') {
    const code = formatCode(fmt);
    for (const m of this._metrics.values()) if (m.collect) m.collect();
    return this._formatSnapshot(code);
  }

  _formatSnapshot(code) {
    const snap = outPtr((o) => C.pm_snapshot_new(this._live(), o), 'pm_snapshot_new');
    try {
      const buf = scratchBuf();
      check(C.pm_format(snap, code, buf), 'pm_format');
      return bufString(buf);
    } finally {
      C.pm_snapshot_release(snap);
    }
  }

  async _collect() {
    for (const m of this._metrics.values()) {
      if (m.collect) {
        const r = m.collect();
        if (r instanceof Promise) await r;
      }
    }
  }

  // prom-client: a promise of the exposition in this registry's content type.
  async metrics() {
    await this._collect();
    return this._formatSnapshot(this._contentType === OPENMETRICS_CONTENT_TYPE ? 2 : 1);
  }

  // prom-client's JSON shape: [{name, help, type, values: [{labels, value,
  // metricName?}], aggregator}], from the library's JSON document.
  async getMetricsAsJSON() {
    await this._collect();
    const doc = JSON.parse(this._formatSnapshot(FORMATS.json));
    return doc.families.map(toPromClientJSON);
  }

  // prom-client's way to add a metric made with registers: [] elsewhere: a
  // library family belongs to the registry it was made in, so only that
  // registry takes it (again, after removeSingleMetric).
  registerMetric(metric) {
    if (metric === null || typeof metric !== 'object' || metric.registry !== this) {
      throw new Error('perfmetrics: a metric can only be registered in the registry it was made in (registers: [registry])');
    }
    if (this._metrics.get(metric.name) !== metric) this._add(metric);
  }

  getMetricsAsArray() {
    return [...this._metrics.values()];
  }

  getSingleMetric(name) {
    return this._metrics.get(name);
  }

  async getSingleMetricAsString(name) {
    const m = this._metrics.get(name);
    if (m === undefined) throw new Error(`perfmetrics: no metric named ${name} in this registry`);
    const text = await this.metrics();
    // Keep the family's own block: its HELP/TYPE lines and its samples.
    const fam = m._exposedName;
    const own = new Set(m.type === 'histogram' ? [`${fam}_bucket`, `${fam}_sum`, `${fam}_count`] : [fam]);
    return text
      .split('\n')
      .filter((l) => l.startsWith(`# HELP ${fam} `) || l.startsWith(`# TYPE ${fam} `) ||
        own.has(l.slice(0, l.search(/[{ ]/))))
      .join('\n');
  }

  // The library keeps a family until its registry is freed: removing one
  // drops its series and forgets it here, so that a metric of the same
  // definition may be created again.
  removeSingleMetric(name) {
    const m = this._metrics.get(name);
    if (m === undefined) return;
    m._clear();
    this._metrics.delete(name);
  }

  clear() {
    for (const name of [...this._metrics.keys()]) this.removeSingleMetric(name);
  }

  resetMetrics() {
    for (const m of this._metrics.values()) m.reset();
  }

  // process_* metrics (Prometheus' standard names) from the library's
  // process collector, read from /proc at each snapshot.
  collectDefaultMetrics() {
    check(C.pm_process_collector_enable(this._live()), 'collectDefaultMetrics');
  }

  // Registers fn as an exporter: exportNow() hands it the snapshot, which
  // it may format(fmt) during the call. Returns the Exporter (remove()).
  addExporter(name, fn) {
    const e = new Exporter(this, name, fn);
    this._exporters.add(e);
    if (this._exporters.size === 1) onExit(this._exitExporters);
    return e;
  }

  // Takes one snapshot and runs every exporter on it, on this thread; throws
  // the first error an exporter threw (after all of them ran).
  exportNow() {
    this._exportErrors = [];
    check(C.pm_export_now(this._live()), 'exportNow');
    const errors = this._exportErrors;
    this._exportErrors = [];
    if (errors.length) throw errors[0];
  }

  // Runs exportNow() every `seconds` from a timer that does not keep the
  // process alive; onError(e) gets what an export threw (default: a
  // process warning).
  startExporting(seconds, onError = (e) => process.emitWarning(e)) {
    if (!(seconds > 0) || typeof seconds !== 'number') throw new TypeError('perfmetrics: startExporting needs seconds > 0');
    this.stopExporting();
    this._exportTimer = setInterval(() => {
      try {
        this.exportNow();
      } catch (e) {
        onError(e);
      }
    }, seconds * 1e3);
    this._exportTimer.unref();
  }

  stopExporting() {
    if (this._exportTimer !== null) clearInterval(this._exportTimer);
    this._exportTimer = null;
  }

  // At exit: the exporters go before their callbacks do.
  get _exitExporters() {
    if (this._exitCloser === undefined) {
      this._exitCloser = {
        close: () => {
          this.stopExporting();
          for (const e of [...this._exporters]) e.remove();
        },
      };
    }
    return this._exitCloser;
  }

  // Frees the registry (never the default one): this thread's cells are
  // folded and freed, every metric of it stops recording (records are
  // dropped, not written to freed memory) and later calls throw.
  close() {
    if (this.ptr === null || !this._owned) return;
    if (this._readers.size) throw new Error('perfmetrics: close the tracers, alert engines and servers reading this registry first');
    for (const m of this._metrics.values()) m._detach();
    cells.closeShards(this.ptr);
    this.stopExporting();
    C.pm_registry_free(this.ptr); // frees the exporters too
    for (const e of [...this._exporters]) e._forget();
    this.ptr = null;
    forgetAtExit(this);
  }
}

function toPromClientJSON(fam) {
  const name = fam.type === 'counter' ? `${fam.name}_total` : fam.name;
  const values = [];
  for (const s of fam.series) {
    const labels = s.overflow ? { pm_overflow: 'true' } : s.labels;
    if (fam.type !== 'histogram') {
      values.push({ labels, value: s.value === null ? NaN : s.value });
      continue;
    }
    for (const b of s.buckets) {
      values.push({
        labels: { ...labels, le: b.le === '+Inf' ? '+Inf' : b.le },
        value: b.count,
        metricName: `${name}_bucket`,
      });
    }
    values.push({ labels, value: s.sum === null ? 0 : s.sum, metricName: `${name}_sum` });
    values.push({ labels, value: s.count, metricName: `${name}_count` });
  }
  return { name, help: fam.help, type: fam.type, values, aggregator: 'sum' };
}

const register = new Registry(PROMETHEUS_CONTENT_TYPE, { _ptr: C.pm_registry_default() });

module.exports = {
  Registry, register, formatCode, onExit, forgetAtExit,
  PROMETHEUS_CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE,
};
