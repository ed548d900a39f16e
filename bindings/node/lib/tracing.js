'use strict';
// Spans over pm_tracer_t: a Tracer starts spans with explicit parents (a
// JS thread runs many tasks at once, so the C library's per-thread "current
// span" says nothing useful here), and spans carry W3C trace context.

const { C, check, outPtr, instanceOf, optionsObject, describe } = require('./native');
const { Registry, onExit, forgetAtExit } = require('./registry');

const SAMPLERS = { always: 1, never: 2, ratio: 3, parent: 4 };
const KINDS = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 };
const STATUS = { unset: 0, ok: 1, error: 2 };
const CTX_BYTES = 32; // sizeof(pm_trace_context_t)
const TRACEPARENT_SIZE = 56;

function hex(bytes) {
  return Buffer.from(bytes).toString('hex');
}

function pick(table, value, what) {
  const v = table[value];
  if (v === undefined) {
    throw new TypeError(`perfmetrics: ${what} must be one of ${Object.keys(table).join(', ')}; got ${describe(value)}`);
  }
  return v;
}

// A live object that others read must outlive them: closing it while one of
// its readers is open throws instead of leaving the reader on freed memory.
class Owned {
  constructor() {
    this._readers = new Set();
  }

  _checkUnread(what) {
    if (this._readers.size) throw new Error(`perfmetrics: close the server(s) reading this ${what} first`);
  }
}

class Span {
  constructor(tracer, handle) {
    this._tracer = tracer;
    this._handle = handle;
    this._ctx = Buffer.alloc(CTX_BYTES);
    check(C.pm_span_context(handle, this._ctx), 'pm_span_context');
    this.sampled = C.pm_span_is_sampled(handle) === 1;
  }

  _live(what) {
    if (this._handle === null) throw new Error(`perfmetrics: span.${what}() after end()`);
    return this._handle;
  }

  get traceId() {
    return hex(this._ctx.subarray(0, 16));
  }

  get spanId() {
    return hex(this._ctx.subarray(16, 24));
  }

  // The W3C traceparent header value for a request made inside this span.
  get traceparent() {
    const buf = Buffer.alloc(TRACEPARENT_SIZE);
    check(C.pm_traceparent_format(this._ctx, buf, buf.length), 'pm_traceparent_format');
    return buf.toString('latin1', 0, buf.indexOf(0));
  }

  // Strings, booleans, integers (as int64) and other numbers (as double).
  setAttribute(key, value) {
    const h = this._live('setAttribute');
    if (typeof key !== 'string') throw new TypeError('perfmetrics: an attribute key must be a string');
    let rc;
    if (typeof value === 'string') rc = C.pm_span_set_string(h, key, value);
    else if (typeof value === 'boolean') rc = C.pm_span_set_bool(h, key, value ? 1 : 0);
    else if (Number.isSafeInteger(value)) rc = C.pm_span_set_int(h, key, value);
    else if (typeof value === 'number') rc = C.pm_span_set_double(h, key, value);
    else throw new TypeError(`perfmetrics: attribute ${key}: a string, number or boolean is needed`);
    // Over the tracer's limit the attribute is dropped and counted, as the
    // library intends: not an error for the caller.
    if (rc !== -10) check(rc, `span attribute ${key}`);
    return this;
  }

  // An event, with at most one string attribute: addEvent(name, {key: value}).
  addEvent(name, attribute) {
    const h = this._live('addEvent');
    let key = null;
    let value = null;
    if (attribute !== undefined) {
      const keys = Object.keys(attribute);
      if (keys.length !== 1) throw new TypeError('perfmetrics: an event carries one attribute at most');
      key = keys[0];
      value = String(attribute[key]);
    }
    const rc = C.pm_span_add_event(h, String(name), key, value);
    if (rc !== -10) check(rc, `span event ${name}`);
    return this;
  }

  setStatus(status, message) {
    const code = pick(STATUS, status, 'status');
    check(C.pm_span_set_status(this._live('setStatus'), code, message === undefined ? null : String(message)),
      'span status');
    return this;
  }

  // Ends the span (once; later calls do nothing).
  end() {
    if (this._handle === null) return;
    C.pm_span_end(this._handle);
    this._handle = null;
  }
}

class Tracer extends Owned {
  // options: serviceName, sampler ('always', 'never', 'ratio', 'parent'),
  // ratio, registry (spans then feed pm_span_duration_seconds and friends),
  // flushSeconds (the interval of start()'s thread).
  constructor(options = {}) {
    super();
    optionsObject(options, 'Tracer');
    const opts = outPtr((o) => C.pm_tracer_opts_new(o), 'pm_tracer_opts_new');
    try {
      if (options.sampler !== undefined || options.ratio !== undefined) {
        const s = pick(SAMPLERS, options.sampler === undefined ? 'parent' : options.sampler, 'sampler');
        const ratio = options.ratio === undefined ? 1 : options.ratio;
        if (typeof ratio !== 'number') throw new TypeError('perfmetrics: ratio must be a number');
        check(C.pm_tracer_opts_set_sampler(opts, s, ratio), 'tracer sampler', `ratio ${ratio}`);
      }
      if (options.flushSeconds !== undefined) {
        if (typeof options.flushSeconds !== 'number') throw new TypeError('perfmetrics: flushSeconds must be a number');
        check(C.pm_tracer_opts_set_batch(opts, 512, options.flushSeconds), 'tracer flushSeconds', `${options.flushSeconds}`);
      }
      if (options.serviceName !== undefined) {
        check(C.pm_tracer_opts_set_service(opts, String(options.serviceName)), 'tracer serviceName');
      }
      if (options.registry !== undefined) {
        check(C.pm_tracer_opts_set_registry(opts, instanceOf(options.registry, Registry, 'registry')._live()), 'tracer registry');
        this._registry = options.registry;
      }
      this.ptr = outPtr((o) => C.pm_tracer_new(opts, o), 'pm_tracer_new');
    } finally {
      C.pm_tracer_opts_free(opts);
    }
    if (this._registry) this._registry._readers.add(this);
    onExit(this);
  }

  _live() {
    if (this.ptr === null) throw new Error('perfmetrics: this tracer is closed');
    return this.ptr;
  }

  // startSpan(name, {kind, parent}): parent is a Span, a traceparent string
  // (from another process), or omitted for a root span.
  startSpan(name, options = {}) {
    optionsObject(options, 'startSpan');
    if (typeof name !== 'string') throw new TypeError('perfmetrics: a span name must be a string');
    const kind = pick(KINDS, options.kind === undefined ? 'internal' : options.kind, 'kind');
    let parent = null;
    if (options.parent instanceof Span) {
      parent = options.parent._ctx;
    } else if (typeof options.parent === 'string') {
      parent = Buffer.alloc(CTX_BYTES);
      const rc = C.pm_traceparent_parse(options.parent, Buffer.byteLength(options.parent), parent);
      check(rc, 'traceparent', describe(options.parent));
    } else if (options.parent !== undefined && options.parent !== null) {
      throw new TypeError('perfmetrics: parent must be a Span or a traceparent string');
    }
    const handle = outPtr((o) => C.pm_span_start(this._live(), name, kind, parent, o), `span ${name}`);
    return new Span(this, handle);
  }

  // Drains ended spans to analytics, the RED metrics and the server's
  // trace views; returns how many.
  flush() {
    const n = [0];
    check(C.pm_tracer_flush(this._live(), n), 'pm_tracer_flush');
    return n[0];
  }

  // Flushes every `flushSeconds` (the tracer option, default 5) on the
  // library's own thread, which runs no JS: spans then reach the RED
  // metrics and the server without flush() calls. stop() joins it after a
  // last flush.
  start() {
    check(C.pm_tracer_start(this._live()), 'tracer start');
  }

  stop() {
    check(C.pm_tracer_stop(this._live()), 'tracer stop');
  }

  stats() {
    const t = this._live();
    return {
      started: C.pm_tracer_stat(t, 1),
      sampled: C.pm_tracer_stat(t, 2),
      ended: C.pm_tracer_stat(t, 3),
      dropped: C.pm_tracer_stat(t, 4),
      exported: C.pm_tracer_stat(t, 5),
    };
  }

  // Per-operation analytics of flushed spans: name, spans, errors and the
  // duration quantiles p50/p99 in seconds (null when unknown).
  operations() {
    const ops = outPtr((o) => C.pm_tracer_ops_snapshot(this._live(), o), 'pm_tracer_ops_snapshot');
    try {
      const out = [];
      const q = [0];
      const quantile = (i, p) => (C.pm_trace_ops_duration(ops, i, p, q) === 0 ? q[0] : null);
      for (let i = 0; i < C.pm_trace_ops_count(ops); i++) {
        out.push({
          name: C.pm_trace_ops_name(ops, i),
          spans: C.pm_trace_ops_spans(ops, i),
          errors: C.pm_trace_ops_errors(ops, i),
          p50: quantile(i, 0.5),
          p99: quantile(i, 0.99),
        });
      }
      return out;
    } finally {
      C.pm_trace_ops_free(ops);
    }
  }

  // Flushes what is buffered and frees the tracer; its spans must be ended.
  close() {
    if (this.ptr === null) return;
    this._checkUnread('tracer');
    C.pm_tracer_free(this.ptr);
    this.ptr = null;
    if (this._registry) this._registry._readers.delete(this);
    forgetAtExit(this);
  }
}

module.exports = { Tracer, Span, Owned, pick };
