'use strict';
// Counter, Gauge and Histogram with prom-client's shape: a metric is a C
// family; each label set is a child that holds its series handle and the
// thread's cell for it, found once and cached by its label values.

const { performance } = require('node:perf_hooks');
const { C, check, outPtr, describe } = require('./native');
const cells = require('./cells');
const { Registry, register } = require('./registry');

const TYPE = { counter: 1, gauge: 2, histogram: 3 };
const GET = { counter: C.pm_counter_get, gauge: C.pm_gauge_get, histogram: C.pm_histogram_get };
const RELEASE = {
  counter: C.pm_counter_release,
  gauge: C.pm_gauge_release,
  histogram: C.pm_histogram_release,
};
const NAME_RE = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_RE = /^[a-zA-Z_][a-zA-Z0-9_]*$/;

function badValue(v) {
  return new TypeError(`Value is not a valid number: ${describe(v)}`);
}

// Throws unless v is a counter increment (a finite number >= 0, or omitted).
// NaN fails v >= 0; Infinity is refused as prom-client refuses it.
function checkInc(v) {
  if (typeof v !== 'number' || !(v >= 0) || v === Infinity) {
    if (typeof v === 'number' && v < 0) throw new Error('It is not possible to decrease a counter');
    throw badValue(v);
  }
}

function checkFinite(v) {
  if (!Number.isFinite(v)) throw badValue(v);
}

// A timer's clock: performance.now() is a double read with no allocation
// (process.hrtime.bigint() allocates a BigInt per read; doc/node.md has the
// costs); sub-microsecond resolution is more than a histogram bucket needs.
function timerStart() {
  return performance.now();
}
function timerSeconds(t0) {
  return (performance.now() - t0) / 1e3;
}

class CounterChild {
  constructor(metric, handle) {
    this.handle = handle;
    this.cell = cells.Counter.of(metric._shard(), handle);
  }

  inc(v) {
    if (v === undefined) {
      this.cell.add(1);
      return;
    }
    if (typeof v !== 'number' || !(v >= 0) || v === Infinity) checkInc(v);
    this.cell.add(v);
  }

  // Current value of this series (all threads), read through the library.
  get() {
    return C.pm_counter_value(this.handle);
  }
}

class GaugeChild {
  constructor(metric, handle) {
    this.handle = handle;
    this.cell = cells.gaugeCell(metric.registry._live(), handle);
  }

  set(v) {
    if (typeof v !== 'number') throw badValue(v);
    this.cell.set(v);
  }

  inc(v) {
    if (v === undefined) v = 1;
    else checkFinite(v);
    this.cell.add(v);
  }

  dec(v) {
    if (v === undefined) v = 1;
    else checkFinite(v);
    this.cell.add(-v);
  }

  setToCurrentTime() {
    this.cell.set(Date.now() / 1e3);
  }

  // Returns end(): sets the gauge to the seconds since startTimer().
  startTimer() {
    const t0 = timerStart();
    return () => {
      const s = timerSeconds(t0);
      this.cell.set(s);
      return s;
    };
  }

  get() {
    return C.pm_gauge_value(this.handle);
  }
}

class HistogramChild {
  constructor(metric, handle) {
    this.handle = handle;
    this.cell = cells.Histogram.of(metric._shard(), handle, metric);
  }

  observe(v) {
    if (!Number.isFinite(v)) checkFinite(v);
    this.cell.observe(v);
  }

  // Returns end(): records the seconds since startTimer() and returns them.
  startTimer() {
    const t0 = timerStart();
    return () => {
      const s = timerSeconds(t0);
      this.cell.observe(s);
      return s;
    };
  }
}

const CHILD = { counter: CounterChild, gauge: GaugeChild, histogram: HistogramChild };

// Options shared by the three kinds (prom-client's names, plus the
// library's: unit, maxSeries, ttlSeconds, and range for histograms).
function familyOptions(kind, cfg, labelNames) {
  const opts = outPtr((o) => C.pm_family_opts_new(o), 'pm_family_opts_new');
  try {
    const what = `${cfg.name}`;
    if (labelNames.length) {
      check(C.pm_family_opts_set_labels(opts, labelNames, labelNames.length), `${what}: labelNames`,
        labelNames.join(', '));
    }
    if (cfg.unit !== undefined) check(C.pm_family_opts_set_unit(opts, String(cfg.unit)), `${what}: unit`);
    if (cfg.maxSeries !== undefined) {
      if (!Number.isInteger(cfg.maxSeries) || cfg.maxSeries < 1) {
        throw new TypeError(`perfmetrics: ${what}: maxSeries must be a positive integer`);
      }
      check(C.pm_family_opts_set_max_series(opts, cfg.maxSeries), `${what}: maxSeries`);
    }
    if (cfg.ttlSeconds !== undefined) {
      if (typeof cfg.ttlSeconds !== 'number') throw new TypeError(`perfmetrics: ${what}: ttlSeconds must be a number`);
      check(C.pm_family_opts_set_ttl(opts, cfg.ttlSeconds), `${what}: ttlSeconds`);
    }
    if (kind === 'histogram') {
      if (cfg.buckets !== undefined) {
        if (!Array.isArray(cfg.buckets) || !cfg.buckets.every((b) => typeof b === 'number')) {
          throw new TypeError(`perfmetrics: ${what}: buckets must be an array of numbers`);
        }
        // prom-client accepts a trailing +Inf; the library implies it.
        const b = cfg.buckets.filter((x) => x !== Infinity);
        check(C.pm_family_opts_set_buckets(opts, b, b.length), `${what}: buckets`, `[${b.join(', ')}]`);
      }
      if (cfg.range !== undefined) {
        if (!Array.isArray(cfg.range) || cfg.range.length !== 2) {
          throw new TypeError(`perfmetrics: ${what}: range must be [lowest, highest]`);
        }
        check(C.pm_family_opts_set_range(opts, cfg.range[0], cfg.range[1]), `${what}: range`,
          `[${cfg.range.join(', ')}]`);
      }
    }
    return opts;
  } catch (e) {
    C.pm_family_opts_free(opts);
    throw e;
  }
}

// prom-client's `aggregator` says how its AggregatorRegistry combines the
// workers' values. Here the primary's library sums every worker's cells
// (lib/cluster.js) and cannot take min, max, first or an average of them, so
// in a cluster worker's default registry anything but 'sum' is refused rather
// than silently summed. Elsewhere the option has no effect, as prom-client's
// has none outside a cluster.
function checkAggregator(kind, cfg, registry) {
  if (cfg.aggregator === 'sum' || !cells.clusterShared(registry._live())) return;
  throw new Error(`perfmetrics: ${kind} ${cfg.name}: aggregator ${describe(cfg.aggregator)} is not supported in a cluster ` +
    "worker (PERFMETRICS_CLUSTER_DIR is set): the primary sums every worker's values; use 'sum', or a label per worker");
}

class Metric {
  constructor(kind, cfg) {
    if (cfg === null || typeof cfg !== 'object') throw new TypeError('perfmetrics: a metric needs a configuration object');
    if (typeof cfg.name !== 'string' || !NAME_RE.test(cfg.name)) {
      throw new Error(`Invalid metric name: ${describe(cfg.name)}`);
    }
    if (typeof cfg.help !== 'string' || cfg.help === '') throw new Error('Missing mandatory help parameter');
    const labelNames = cfg.labelNames === undefined ? [] : cfg.labelNames;
    if (!Array.isArray(labelNames) || !labelNames.every((l) => typeof l === 'string' && LABEL_RE.test(l))) {
      throw new Error(`Invalid label name: ${describe(labelNames)}`);
    }
    if (kind === 'histogram' && labelNames.includes('le')) throw new Error('le is a reserved label keyword');
    const registers = cfg.registers === undefined ? [register] : cfg.registers;
    if (!Array.isArray(registers) || registers.length !== 1 || !(registers[0] instanceof Registry)) {
      throw new Error('perfmetrics: a metric lives in exactly one registry: pass registers: [registry]');
    }
    this.name = cfg.name;
    this.help = cfg.help;
    this.type = kind;
    this.labelNames = labelNames.slice();
    this.registry = registers[0];
    if (cfg.aggregator !== undefined) checkAggregator(kind, cfg, this.registry);
    this.collect = typeof cfg.collect === 'function' ? cfg.collect : null;
    this.layout = null; // histograms: the family's bucket layout (cells.js)
    this._kind = kind;
    this._children = new Map();
    // Counters are named without _total in the library, which adds it on
    // output; prom-client users name them with it.
    const cname = kind === 'counter' && this.name.endsWith('_total') ? this.name.slice(0, -6) : this.name;
    this._exposedName = kind === 'counter' ? `${cname}_total` : this.name;
    const opts = familyOptions(kind, cfg, this.labelNames);
    try {
      this._family = outPtr(
        (o) => C.pm_family_new(this.registry._live(), TYPE[kind], cname, this.help, opts, o),
        `${kind} ${this.name}`,
      );
    } finally {
      C.pm_family_opts_free(opts);
    }
    this.registry._add(this);
    // Each root field is stored once here, after the child is made: V8 then
    // treats them as constant fields on the inc path.
    const root = this.labelNames.length === 0 ? this._resolve([]) : null;
    this._root = root;
    this._rootCell = root !== null ? root.cell : kind === 'counter' ? cells.NO_COUNTER : null;
  }

  _shard() {
    return cells.shardFor(this.registry._live());
  }

  // The child for these label values, from the cache or the library.
  _resolve(values) {
    const key = values.join('\0');
    const hit = this._children.get(key);
    if (hit !== undefined) return hit;
    this.registry._live(); // throws once the registry is closed
    for (const v of values) {
      if (v.includes('\0')) throw new Error(`perfmetrics: ${this.name}: label value ${JSON.stringify(v)} contains a NUL character`);
    }
    const handle = outPtr(
      (o) => GET[this._kind](this._family, values, values.length, o),
      `${this.name}: label values`,
      values.map((v) => JSON.stringify(v)).join(', '),
    );
    let child;
    try {
      child = new CHILD[this._kind](this, handle);
    } catch (e) {
      RELEASE[this._kind](handle);
      throw e;
    }
    this._children.set(key, child);
    return child;
  }

  // Label values from prom-client's two spellings: an object keyed by label
  // name (missing names are ""), or the values in labelNames order.
  _values(args) {
    const names = this.labelNames;
    if (args.length === 1 && args[0] !== null && typeof args[0] === 'object') {
      const obj = args[0];
      for (const k in obj) {
        if (!names.includes(k)) {
          throw new Error(`Added label "${k}" is not included in initial labelset: [ ${names.map((n) => `'${n}'`).join(', ')} ]`);
        }
      }
      return names.map((n) => (obj[n] === undefined ? '' : String(obj[n])));
    }
    if (args.length !== names.length) {
      throw new Error(
        `Invalid number of arguments (${args.length}): "${args.map(describe).join(', ')}" for label names (${names.length}): "${names.join(', ')}".`,
      );
    }
    return args.map(String);
  }

  // Fast key for the common calls (one or two positional values, or an
  // object): a cache hit allocates only the key string.
  labels(...args) {
    const names = this.labelNames;
    if (args.length === names.length && args.length <= 2 && typeof args[0] !== 'object') {
      const key = args.length === 1 ? String(args[0]) : args.length === 0 ? '' : `${args[0]}\0${args[1]}`;
      const hit = this._children.get(key);
      if (hit !== undefined) return hit;
    }
    return this._resolve(this._values(args));
  }

  // The child for a labels object given to inc/set/observe.
  _child(obj) {
    const names = this.labelNames;
    let n = 0;
    let key = '';
    for (const k in obj) n++;
    if (n === names.length) {
      for (let i = 0; i < names.length; i++) {
        const v = obj[names[i]];
        if (v === undefined) break;
        key = i === 0 ? String(v) : `${key}\0${v}`;
        if (i === names.length - 1) {
          const hit = this._children.get(key);
          if (hit !== undefined) return hit;
        }
      }
    }
    return this._resolve(this._values([obj]));
  }

  // The unlabelled child, and (counters) its cell for Counter.inc's
  // shortest path.
  _setRoot(child) {
    this._root = child;
    if (this._kind === 'counter') this._rootCell = child === null ? cells.NO_COUNTER : child.cell;
  }

  _rootChild() {
    return this._root !== null ? this._root : this._resolve(this._values([{}]));
  }

  remove(...args) {
    const values = this._values(args);
    const key = values.join('\0');
    this.registry._live();
    const rc = C.pm_family_remove(this._family, values, values.length);
    if (rc !== -4) check(rc, `${this.name}: remove`);
    this._drop(key);
  }

  _drop(key) {
    const child = this._children.get(key);
    if (child === undefined) return;
    this._children.delete(key);
    if (child === this._root) this._setRoot(null);
    if (this._kind === 'gauge') child.cell.removed();
    RELEASE[this._kind](child.handle);
  }

  _clear() {
    this.registry._live();
    check(C.pm_family_clear(this._family), `${this.name}: clear`);
    for (const key of [...this._children.keys()]) this._drop(key);
  }

  // Drops every series; an unlabelled metric starts again at zero.
  reset() {
    this._clear();
    if (this.labelNames.length === 0) this._setRoot(this._resolve([]));
  }

  // The registry is being freed: children stop recording.
  _detach() {
    for (const child of this._children.values()) {
      child.cell.orphan();
      child.handle = null;
    }
    this._children.clear();
    this._setRoot(null);
  }

  // prom-client's get(): {name, help, type, values, aggregator}.
  async get() {
    const all = await this.registry.getMetricsAsJSON();
    const mine = all.find((f) => f.name === this._exposedName);
    return mine !== undefined ? { ...mine, name: this.name } :
      { name: this.name, help: this.help, type: this.type, values: [], aggregator: 'sum' };
  }
}

class Counter extends Metric {
  constructor(cfg) {
    super('counter', cfg);
  }

  // inc(), inc(value), inc(labels), inc(labels, value)
  inc(a, b) {
    if (a === undefined && this._root !== null) {
      this._rootCell.add(1);
      return;
    }
    if (a !== null && typeof a === 'object') {
      // The value is checked before the label set can create a series.
      if (b !== undefined) checkInc(b);
      this._child(a).inc(b);
    } else this._rootChild().inc(a);
  }
}

class Gauge extends Metric {
  constructor(cfg) {
    super('gauge', cfg);
  }

  set(a, b) {
    if (a !== null && typeof a === 'object') {
      if (typeof b !== 'number') throw badValue(b);
      this._child(a).set(b);
    } else this._rootChild().set(a);
  }

  inc(a, b) {
    if (a !== null && typeof a === 'object') {
      if (b !== undefined) checkFinite(b);
      this._child(a).inc(b);
    } else this._rootChild().inc(a);
  }

  dec(a, b) {
    if (a !== null && typeof a === 'object') {
      if (b !== undefined) checkFinite(b);
      this._child(a).dec(b);
    } else this._rootChild().dec(a);
  }

  setToCurrentTime(labels) {
    (labels ? this._child(labels) : this._rootChild()).setToCurrentTime();
  }

  startTimer(labels) {
    if (labels === undefined) return this._rootChild().startTimer();
    const t0 = timerStart();
    return (endLabels) => {
      const s = timerSeconds(t0);
      this._child(endLabels ? { ...labels, ...endLabels } : labels).set(s);
      return s;
    };
  }
}

class Histogram extends Metric {
  constructor(cfg) {
    super('histogram', cfg);
  }

  observe(a, b) {
    if (a !== null && typeof a === 'object') {
      checkFinite(b);
      this._child(a).observe(b);
    } else this._rootChild().observe(a);
  }

  // end() records the seconds since startTimer() (labels given at start,
  // merged with those given to end) and returns them.
  startTimer(labels) {
    if (labels === undefined && this._root !== null) return this._root.startTimer();
    const t0 = timerStart();
    return (endLabels) => {
      const s = timerSeconds(t0);
      const all = endLabels ? { ...labels, ...endLabels } : labels;
      (all ? this._child(all) : this._rootChild()).observe(s);
      return s;
    };
  }

  zero(labels) {
    this._child(labels);
  }
}

// prom-client's bucket helpers.
function linearBuckets(start, width, count) {
  if (!(count >= 1)) throw new Error('Linear buckets needs a positive count');
  return Array.from({ length: count }, (_, i) => start + i * width);
}

function exponentialBuckets(start, factor, count) {
  if (!(start > 0)) throw new Error('Exponential buckets needs a positive start');
  if (!(factor > 1)) throw new Error('Exponential buckets needs a factor greater than 1');
  if (!(count >= 1)) throw new Error('Exponential buckets needs a positive count');
  return Array.from({ length: count }, (_, i) => start * factor ** i);
}

module.exports = { Counter, Gauge, Histogram, linearBuckets, exponentialBuckets };
