'use strict';
// The one place that knows about koffi: finds and loads libperfmetrics.so.1,
// declares the C functions the binding calls and turns status codes into
// errors. Every handle crosses as `void *` (a BigInt address in koffi 3):
// the C types stay opaque on this side and a plain pointer is koffi's
// cheapest argument.

const fs = require('node:fs');
const path = require('node:path');
const koffi = require('koffi');

const SONAME = 'libperfmetrics.so.1';
// The oldest library this package speaks to (1.3.0: pm_tracer_remove_exporter).
const MIN_VERSION = 10300;

// Candidates in order: the environment variable (an explicit choice: when it
// is set and fails, nothing else is tried, so a typo never silently loads
// another copy), a copy shipped next to the package, the system search path.
function candidates() {
  const env = process.env.PERFMETRICS_LIBRARY;
  if (env) return [{ how: 'PERFMETRICS_LIBRARY', path: env, only: true }];
  return [
    { how: 'next to the package', path: path.join(__dirname, '..', SONAME) },
    { how: 'system search path', path: SONAME },
  ];
}

function loadLibrary() {
  const tried = [];
  for (const c of candidates()) {
    const isFile = c.path.includes('/');
    if (isFile && !fs.existsSync(c.path)) {
      tried.push(`${c.how}: ${c.path} (no such file)`);
      continue;
    }
    try {
      return { lib: koffi.load(c.path), path: c.path };
    } catch (e) {
      tried.push(`${c.how}: ${c.path} (${String(e.message).trim()})`);
    }
  }
  throw new Error(
    `perfmetrics: cannot load ${SONAME}; tried:\n  ${tried.join('\n  ')}\n` +
      'Set PERFMETRICS_LIBRARY to the library file, or install libperfmetrics.',
  );
}

const { lib, path: libraryPath } = loadLibrary();

// Declares every function in `sigs` on `target`; `optional` ones that the
// loaded library lacks become null (newer symbol nodes, e.g. cells in 1.4).
function declare(target, sigs, optional) {
  for (const sig of sigs) {
    const name = /([A-Za-z_0-9]+)\s*\(/.exec(sig)[1];
    try {
      target[name] = lib.func(sig);
    } catch (e) {
      if (!optional) throw new Error(`perfmetrics: ${libraryPath} lacks ${name}: ${e.message}`);
      target[name] = null;
    }
  }
}

const C = {};
declare(C, [
  // base.h
  'const char *pm_strerror(int status)',
  'const char *pm_status_name(int status)',
  'uint32_t pm_version(void)',
  'const char *pm_version_string(void)',
  // metrics.h
  'void *pm_registry_default(void)',
  'int pm_registry_new(void *opts, _Out_ void **out)',
  'void pm_registry_free(void *r)',
  'int pm_registry_opts_new(_Out_ void **out)',
  'void pm_registry_opts_free(void *o)',
  'int pm_registry_opts_set_self_metrics(void *o, int enabled)',
  'int pm_family_opts_new(_Out_ void **out)',
  'void pm_family_opts_free(void *o)',
  'int pm_family_opts_set_labels(void *o, const char **names, size_t n)',
  'int pm_family_opts_set_buckets(void *o, double *bounds, size_t n)',
  'int pm_family_opts_set_range(void *o, double lowest, double highest)',
  'int pm_family_opts_set_max_series(void *o, size_t n)',
  'int pm_family_opts_set_unit(void *o, const char *unit)',
  'int pm_family_opts_set_ttl(void *o, double seconds)',
  'int pm_family_new(void *r, int type, const char *name, const char *help, void *opts, _Out_ void **out)',
  'int pm_family_remove(void *f, const char **values, size_t n)',
  'int pm_family_clear(void *f)',
  'int pm_counter_get(void *f, const char **values, size_t n, _Out_ void **out)',
  'void pm_counter_release(void *c)',
  'void pm_counter_add(void *c, double delta)',
  'double pm_counter_value(void *c)',
  'int pm_gauge_get(void *f, const char **values, size_t n, _Out_ void **out)',
  'void pm_gauge_release(void *g)',
  'void pm_gauge_set(void *g, double v)',
  'void pm_gauge_add(void *g, double delta)',
  'double pm_gauge_value(void *g)',
  'int pm_histogram_get(void *f, const char **values, size_t n, _Out_ void **out)',
  'void pm_histogram_release(void *h)',
  'void pm_histogram_observe(void *h, double v)',
  'int pm_process_collector_enable(void *r)',
  // export.h
  'int pm_exporter_add(void *r, const char *name, void *fn, void *user, void *release, _Out_ void **out)',
  'int pm_exporter_remove(void *e)',
  'int pm_export_now(void *r)',
  // snapshot.h, format.h
  'int pm_snapshot_new(void *r, _Out_ void **out)',
  'void pm_snapshot_release(void *s)',
  'int pm_buf_new(_Out_ void **out)',
  'void pm_buf_free(void *b)',
  'void *pm_buf_data(void *b)',
  'size_t pm_buf_len(void *b)',
  'void pm_buf_reset(void *b)',
  'int pm_format(void *s, int fmt, void *b)',
  'const char *pm_format_content_type(int fmt)',
  // timer.h
  'uint64_t pm_now_ns(void)',
  // spans.h
  'int pm_tracer_opts_new(_Out_ void **out)',
  'void pm_tracer_opts_free(void *o)',
  'int pm_tracer_opts_set_sampler(void *o, int sampler, double ratio)',
  'int pm_tracer_opts_set_service(void *o, const char *name)',
  'int pm_tracer_opts_set_registry(void *o, void *r)',
  'int pm_tracer_new(void *opts, _Out_ void **out)',
  'void pm_tracer_free(void *t)',
  'int pm_tracer_flush(void *t, _Out_ size_t *n)',
  'int pm_tracer_start(void *t)',
  'int pm_tracer_stop(void *t)',
  'int pm_tracer_opts_set_batch(void *o, size_t max_spans, double seconds)',
  'uint64_t pm_tracer_stat(void *t, int which)',
  'int pm_span_start(void *t, const char *name, int kind, const uint8_t *parent, _Out_ void **out)',
  'void pm_span_end(void *s)',
  'int pm_span_context(void *s, uint8_t *ctx)',
  'int pm_span_is_sampled(void *s)',
  'int pm_span_set_string(void *s, const char *key, const char *value)',
  'int pm_span_set_int(void *s, const char *key, int64_t value)',
  'int pm_span_set_double(void *s, const char *key, double value)',
  'int pm_span_set_bool(void *s, const char *key, int value)',
  'int pm_span_add_event(void *s, const char *name, const char *key, const char *value)',
  'int pm_span_set_status(void *s, int status, const char *message)',
  'int pm_traceparent_parse(const char *header, size_t len, uint8_t *ctx)',
  'int pm_traceparent_format(const uint8_t *ctx, uint8_t *buf, size_t size)',
  'int pm_tracer_ops_snapshot(void *t, _Out_ void **out)',
  'void pm_trace_ops_free(void *o)',
  'size_t pm_trace_ops_count(void *o)',
  'const char *pm_trace_ops_name(void *o, size_t i)',
  'uint64_t pm_trace_ops_spans(void *o, size_t i)',
  'uint64_t pm_trace_ops_errors(void *o, size_t i)',
  'int pm_trace_ops_duration(void *o, size_t i, double q, _Out_ double *out)',
  // alerts.h
  'int pm_alert_engine_opts_new(_Out_ void **out)',
  'void pm_alert_engine_opts_free(void *o)',
  'int pm_alert_engine_opts_set_interval(void *o, double seconds)',
  'int pm_alert_engine_opts_set_dispatch_thread(void *o, int enabled)',
  'int pm_alert_engine_new(void *r, void *opts, _Out_ void **out)',
  'void pm_alert_engine_free(void *e)',
  'int pm_alert_engine_load_string(void *e, const char *text, size_t len, _Out_ void **err)',
  'int pm_alert_rules_check(const char *text, size_t len, _Out_ size_t *n, _Out_ void **err)',
  'const char *pm_parse_error_message(void *e)',
  'uint32_t pm_parse_error_line(void *e)',
  'uint32_t pm_parse_error_column(void *e)',
  'void pm_parse_error_free(void *e)',
  'size_t pm_alert_engine_rule_count(void *e)',
  'int pm_alert_engine_remove_rule(void *e, const char *name)',
  'int pm_alert_engine_tick(void *e, int64_t now)',
  'int pm_alert_engine_start(void *e)',
  'int pm_alert_engine_stop(void *e)',
  'double pm_alert_engine_health(void *e)',
  'int pm_alert_engine_active(void *e, _Out_ void **out)',
  'int pm_alert_engine_history(void *e, _Out_ void **out)',
  'size_t pm_alert_list_count(void *l)',
  'void *pm_alert_list_get(void *l, size_t i)',
  'void pm_alert_list_free(void *l)',
  'const char *pm_alert_event_rule(void *ev)',
  'int pm_alert_event_state(void *ev)',
  'int pm_alert_event_severity(void *ev)',
  'double pm_alert_event_value(void *ev)',
  'double pm_alert_event_time(void *ev)',
  'size_t pm_alert_event_label_count(void *ev)',
  'const char *pm_alert_event_label_name(void *ev, size_t i)',
  'const char *pm_alert_event_label_value(void *ev, size_t i)',
  'size_t pm_alert_event_annotation_count(void *ev)',
  'const char *pm_alert_event_annotation_name(void *ev, size_t i)',
  'const char *pm_alert_event_annotation_value(void *ev, size_t i)',
  'int pm_alert_filter_new(_Out_ void **out)',
  'void pm_alert_filter_free(void *f)',
  'int pm_alert_filter_set_min_severity(void *f, int s)',
  'int pm_alert_filter_add_rule(void *f, const char *rule)',
  'int pm_alert_filter_add_matcher(void *f, const char *label, const char *op, const char *value)',
  'int pm_alert_filter_set_send_resolved(void *f, int enabled)',
  'int pm_alert_engine_add_notifier(void *e, const char *name, void *filter, void *fn, void *user, void *release)',
  'int pm_alert_engine_remove_notifier(void *e, const char *name)',
  'int pm_alert_engine_deliver(void *e, size_t max, _Out_ size_t *delivered)',
  'const char *pm_alert_state_name(int s)',
  'const char *pm_severity_name(int s)',
  // server.h
  'int pm_server_opts_new(_Out_ void **out)',
  'void pm_server_opts_free(void *o)',
  'int pm_server_opts_set_address(void *o, const char *host, int port)',
  'int pm_server_opts_set_token(void *o, const char *token)',
  'int pm_server_opts_set_threads(void *o, uint32_t n)',
  'int pm_server_opts_set_tracer(void *o, void *t)',
  'int pm_server_opts_set_alert_engine(void *o, void *e)',
  'int pm_server_opts_set_title(void *o, const char *title)',
  'int pm_server_new(void *r, void *opts, _Out_ void **out)',
  'void pm_server_free(void *s)',
  'int pm_server_port(void *s)',
  'int pm_server_url(void *s, uint8_t *buf, size_t size)',
  'uint64_t pm_server_stat(void *s, int which)',
]);

// Cell blocks (symbol node PERFMETRICS_1.4, include/perfmetrics/cells.h):
// with them the hot paths are plain typed-array stores; without them (an
// older library) every record is one FFI call.
declare(C, [
  'int pm_cells_new(void *r, _Out_ void **out)',
  'void pm_cells_free(void *b)',
  'int pm_cells_counter(void *b, void *c, _Out_ size_t *index)',
  'int pm_cells_histogram(void *b, void *h, _Out_ size_t *index)',
  'int pm_cells_histogram_grow(void *b, size_t index, _Out_ size_t *newIndex)',
  'size_t pm_cells_page_count(void *b)',
  'void *pm_cells_page(void *b, size_t page)',
  'int pm_gauge_cell(void *g, _Out_ void **cell)',
], true);

// Shared blocks (symbol node PERFMETRICS_1.7): cell blocks whose pages are
// files several processes map, for the `cluster` aggregate (lib/cluster.js).
// Without them (an older library) each process keeps its own records.
declare(C, [
  'int pm_cells_new_shared(void *r, const char *dir, _Out_ void **out)',
  'int pm_cells_gauge(void *b, void *g, _Out_ size_t *index)',
  'int pm_cells_attach(void *r, const char *dir, _Out_ void **out)',
  'int pm_cells_attach_refresh(void *a)',
  'int pm_cells_attach_stat(void *a, int which, _Out_ uint64_t *value)',
  'void pm_cells_detach(void *a)',
], true);

const version = C.pm_version();
if (Math.floor(version / 10000) !== 1 || version < MIN_VERSION) {
  throw new Error(
    `perfmetrics: ${libraryPath} is version ${C.pm_version_string()}; this package needs 1.x, at least 1.3.0`,
  );
}
// PERFMETRICS_NO_CELLS=1 takes the FFI forms even when the library has
// cells: how the suite tests the paths a 1.3 library gets.
const hasCells = C.pm_cells_new !== null && C.pm_gauge_cell !== null && process.env.PERFMETRICS_NO_CELLS !== '1';
// Writing into shared blocks needs the cell paths; attaching to them (the
// primary's side) needs only the library.
const hasSharedCells = hasCells && C.pm_cells_new_shared !== null && C.pm_cells_gauge !== null;
const hasAttach = C.pm_cells_attach !== null && C.pm_cells_attach_refresh !== null &&
  C.pm_cells_attach_stat !== null && C.pm_cells_detach !== null;

const STATUS = {
  OK: 0, EINVAL: -1, ENOMEM: -2, EEXIST: -3, ENOENT: -4, EBADNAME: -5, EBADLABEL: -6,
  ELABELCOUNT: -7, EUTF8: -8, ETYPE: -9, ERANGE: -10, ESTATE: -11, EIO: -12,
  ECALLBACK: -13, EPARSE: -14, EUNSUPPORTED: -15, ETHREAD: -16,
};

// An error from the C library: `code` is the status's name ("PM_EEXIST"),
// `status` its number, and the message says what was being done and the
// library's own sentence for the status.
class PerfmetricsError extends Error {
  constructor(status, what, detail) {
    const text = C.pm_strerror(status);
    super(`${what}: ${text}${detail ? ` (${detail})` : ''}`);
    this.name = 'PerfmetricsError';
    this.status = status;
    this.code = C.pm_status_name(status);
  }
}

function check(status, what, detail) {
  if (status !== 0) throw new PerfmetricsError(status, what, detail);
}

// A user's value in an error message: strings quoted, anything printable
// (Symbols and BigInts included, which JSON.stringify and templates refuse).
function describe(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'bigint') return `${v}n`;
  if (Array.isArray(v)) return `[${v.map(describe).join(', ')}]`;
  return String(v);
}

// Argument checks shared by the classes: clear TypeErrors instead of a
// property read on the wrong kind of value.
function instanceOf(value, cls, what) {
  if (!(value instanceof cls)) throw new TypeError(`perfmetrics: ${what} must be a ${cls.name}`);
  return value;
}

function optionsObject(options, what) {
  if (options === null || typeof options !== 'object') throw new TypeError(`perfmetrics: ${what} options must be an object`);
  return options;
}

// Runs fn(out) with a one-slot out-parameter and returns the pointer it got.
function outPtr(fn, what, detail) {
  const out = [null];
  check(fn(out), what, detail);
  return out[0];
}

// The bytes of a pm_buf as a string, decoded as UTF-8 (the library writes
// only UTF-8) from a zero-copy view of the C bytes. Decoded in pieces of at
// most 32 KiB, cut at character boundaries, and joined: V8 joins them as a
// rope, while one flat string of a large exposition goes to V8's large-object
// space, which costs far more than the decoding (1.4 ms against 0.03 ms for
// 400 KB here). prom-client's output is such a rope too.
const PIECE = 32768;
function bufString(buf) {
  const len = C.pm_buf_len(buf);
  if (len === 0) return '';
  const bytes = Buffer.from(koffi.view(C.pm_buf_data(buf), len));
  if (len <= PIECE) return bytes.toString('utf8');
  let out = '';
  for (let start = 0; start < len;) {
    let end = Math.min(len, start + PIECE);
    // Never end inside a character: back up over continuation bytes.
    if (end < len) while ((bytes[end] & 0xc0) === 0x80) end--;
    out += bytes.toString('utf8', start, end);
    start = end;
  }
  return out;
}

// A scratch pm_buf for the calling thread, reused across calls.
let scratch = null;
function scratchBuf() {
  if (scratch === null) scratch = outPtr((o) => C.pm_buf_new(o), 'pm_buf_new');
  else C.pm_buf_reset(scratch);
  return scratch;
}

module.exports = {
  koffi, C, STATUS, PerfmetricsError, check, outPtr, bufString, scratchBuf, instanceOf, optionsObject, describe,
  hasCells, hasSharedCells, hasAttach, libraryPath, SONAME,
};
