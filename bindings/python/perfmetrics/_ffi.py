"""The C declarations the package uses and the loading of libperfmetrics.so.1.

cffi's ABI mode (ffi.dlopen) is used rather than ctypes: a call through it
costs less than a ctypes call (bench/bench_python.py measures both), and it
converts Python floats and cdata pointers itself, so the hot paths need no
argtypes and no per-call wrapping (ctypes without argtypes cannot pass a
double or a 64-bit pointer safely). Nothing here is compiled: the
declarations below are a copy of the parts of include/perfmetrics/*.h that
the package calls, and cffi resolves them at run time.

The library is looked for, in order:
  1. the path in the environment variable PERFMETRICS_LIBRARY; when it is
     set it is the only place tried (an explicit choice must not be replaced
     silently by another copy of the library);
  2. libperfmetrics.so.1 next to this file (a wheel built with
     PERFMETRICS_BUNDLE_LIBRARY set carries a copy there);
  3. the dynamic linker's search path (LD_LIBRARY_PATH, ld.so.cache, /usr/lib ...).
When none loads, LibraryNotFoundError lists every attempt and why it failed.
"""

import os

import cffi

SONAME = "libperfmetrics.so.1"
ENV_VAR = "PERFMETRICS_LIBRARY"

CDEF = r"""
typedef int pm_status_t;
typedef int pm_type_t;
typedef int pm_format_t;
typedef void (*pm_release_fn)(void *user);

const char *pm_strerror(int status);
const char *pm_status_name(int status);
unsigned pm_version(void);
const char *pm_version_string(void);
void pm_free(void *ptr);

typedef struct pm_registry pm_registry_t;
typedef struct pm_registry_opts pm_registry_opts_t;
typedef struct pm_family pm_family_t;
typedef struct pm_family_opts pm_family_opts_t;
typedef struct pm_counter pm_counter_t;
typedef struct pm_gauge pm_gauge_t;
typedef struct pm_histogram pm_histogram_t;

pm_status_t pm_registry_opts_new(pm_registry_opts_t **out);
void pm_registry_opts_free(pm_registry_opts_t *o);
pm_status_t pm_registry_opts_set_stripes(pm_registry_opts_t *o, unsigned stripes);
pm_status_t pm_registry_opts_set_self_metrics(pm_registry_opts_t *o, int enabled);
pm_status_t pm_registry_new(const pm_registry_opts_t *opts, pm_registry_t **out);
void pm_registry_free(pm_registry_t *r);
pm_registry_t *pm_registry_default(void);

pm_status_t pm_family_opts_new(pm_family_opts_t **out);
void pm_family_opts_free(pm_family_opts_t *o);
pm_status_t pm_family_opts_set_unit(pm_family_opts_t *o, const char *unit);
pm_status_t pm_family_opts_set_labels(pm_family_opts_t *o, const char *const *names, size_t n);
pm_status_t pm_family_opts_set_max_series(pm_family_opts_t *o, size_t max_series);
pm_status_t pm_family_opts_set_ttl(pm_family_opts_t *o, double seconds);
pm_status_t pm_family_opts_set_buckets(pm_family_opts_t *o, const double *bounds, size_t n);
pm_status_t pm_family_opts_set_range(pm_family_opts_t *o, double lowest, double highest);
pm_status_t pm_family_new(pm_registry_t *r, pm_type_t type, const char *name,
                          const char *help, const pm_family_opts_t *opts, pm_family_t **out);
pm_status_t pm_family_remove(pm_family_t *f, const char *const *values, size_t n);
pm_status_t pm_family_clear(pm_family_t *f);
size_t pm_family_series_count(const pm_family_t *f);

pm_status_t pm_counter_get(pm_family_t *f, const char *const *values, size_t n, pm_counter_t **out);
void pm_counter_release(pm_counter_t *c);
void pm_counter_add(pm_counter_t *c, double delta);
double pm_counter_value(const pm_counter_t *c);

pm_status_t pm_gauge_get(pm_family_t *f, const char *const *values, size_t n, pm_gauge_t **out);
void pm_gauge_release(pm_gauge_t *g);
void pm_gauge_set(pm_gauge_t *g, double v);
void pm_gauge_add(pm_gauge_t *g, double delta);
double pm_gauge_value(const pm_gauge_t *g);
typedef double (*pm_gauge_fn)(void *user);
pm_status_t pm_gauge_callback_new(pm_registry_t *r, const char *name, const char *help,
                                  pm_gauge_fn fn, void *user);

pm_status_t pm_histogram_get(pm_family_t *f, const char *const *values, size_t n,
                             pm_histogram_t **out);
void pm_histogram_release(pm_histogram_t *h);
void pm_histogram_observe(pm_histogram_t *h, double v);

uint64_t pm_timer_start(void);
void pm_timer_stop(pm_histogram_t *h, uint64_t start);
const char *pm_clock_source(void);

typedef struct pm_snapshot pm_snapshot_t;
typedef struct pm_snap_family pm_snap_family_t;
typedef struct pm_snap_series pm_snap_series_t;
pm_status_t pm_snapshot_new(pm_registry_t *r, pm_snapshot_t **out);
pm_snapshot_t *pm_snapshot_ref(pm_snapshot_t *s);
void pm_snapshot_release(pm_snapshot_t *s);
double pm_snapshot_time(const pm_snapshot_t *s);
size_t pm_snapshot_family_count(const pm_snapshot_t *s);
const pm_snap_family_t *pm_snapshot_family(const pm_snapshot_t *s, size_t i);
const char *pm_snap_family_name(const pm_snap_family_t *f);
const char *pm_snap_family_help(const pm_snap_family_t *f);
const char *pm_snap_family_unit(const pm_snap_family_t *f);
pm_type_t pm_snap_family_type(const pm_snap_family_t *f);
size_t pm_snap_family_label_count(const pm_snap_family_t *f);
const char *pm_snap_family_label_name(const pm_snap_family_t *f, size_t i);
size_t pm_snap_family_bucket_count(const pm_snap_family_t *f);
double pm_snap_family_bucket_bound(const pm_snap_family_t *f, size_t i);
size_t pm_snap_family_series_count(const pm_snap_family_t *f);
const pm_snap_series_t *pm_snap_family_series(const pm_snap_family_t *f, size_t i);
const char *pm_snap_series_label_value(const pm_snap_series_t *s, size_t i);
int pm_snap_series_is_overflow(const pm_snap_series_t *s);
double pm_snap_series_value(const pm_snap_series_t *s);
uint64_t pm_snap_series_count(const pm_snap_series_t *s);
double pm_snap_series_sum(const pm_snap_series_t *s);
uint64_t pm_snap_series_bucket_cumulative(const pm_snap_series_t *s, size_t i);
pm_status_t pm_snap_series_quantile(const pm_snap_series_t *s, double q, double *out);

typedef struct pm_buf pm_buf_t;
pm_status_t pm_buf_new(pm_buf_t **out);
void pm_buf_free(pm_buf_t *b);
const char *pm_buf_data(const pm_buf_t *b);
size_t pm_buf_len(const pm_buf_t *b);
pm_status_t pm_format(const pm_snapshot_t *s, pm_format_t fmt, pm_buf_t *b);
const char *pm_format_content_type(pm_format_t fmt);

typedef struct pm_exporter pm_exporter_t;
typedef pm_status_t (*pm_export_fn)(const pm_snapshot_t *s, void *user);
pm_status_t pm_exporter_add(pm_registry_t *r, const char *name, pm_export_fn fn,
                            void *user, pm_release_fn release, pm_exporter_t **out);
pm_status_t pm_exporter_remove(pm_exporter_t *e);
pm_status_t pm_export_now(pm_registry_t *r);
pm_status_t pm_export_set_interval(pm_registry_t *r, double seconds);
pm_status_t pm_export_start(pm_registry_t *r);
pm_status_t pm_export_stop(pm_registry_t *r, int final);

pm_status_t pm_process_collector_enable(pm_registry_t *r);
typedef struct pm_collector pm_collector_t;
typedef struct pm_emit pm_emit_t;
typedef pm_status_t (*pm_collect_fn)(pm_emit_t *e, void *user);
pm_status_t pm_collector_add(pm_registry_t *r, const char *name, pm_collect_fn fn,
                             void *user, pm_release_fn release, pm_collector_t **out);
pm_status_t pm_collector_remove(pm_collector_t *c);
pm_status_t pm_emit_family(pm_emit_t *e, pm_type_t type, const char *name, const char *help,
                           const char *unit, const char *const *label_names, size_t n_labels);
pm_status_t pm_emit_sample(pm_emit_t *e, const char *const *label_values, size_t n,
                           double value);

typedef struct pm_tracer pm_tracer_t;
typedef struct pm_tracer_opts pm_tracer_opts_t;
typedef struct pm_span pm_span_t;
typedef struct pm_span_data pm_span_data_t;
typedef struct pm_span_batch pm_span_batch_t;
typedef struct pm_trace_context {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;
    uint8_t remote;
    uint8_t reserved[6];
} pm_trace_context_t;
pm_status_t pm_tracer_opts_new(pm_tracer_opts_t **out);
void pm_tracer_opts_free(pm_tracer_opts_t *o);
pm_status_t pm_tracer_opts_set_sampler(pm_tracer_opts_t *o, int sampler, double ratio);
pm_status_t pm_tracer_opts_set_buffer(pm_tracer_opts_t *o, size_t spans);
pm_status_t pm_tracer_opts_set_batch(pm_tracer_opts_t *o, size_t max_spans, double seconds);
pm_status_t pm_tracer_opts_set_service(pm_tracer_opts_t *o, const char *name);
pm_status_t pm_tracer_opts_set_registry(pm_tracer_opts_t *o, pm_registry_t *r);
pm_status_t pm_tracer_new(const pm_tracer_opts_t *opts, pm_tracer_t **out);
void pm_tracer_free(pm_tracer_t *t);
void pm_tracer_set_default(pm_tracer_t *t);
pm_tracer_t *pm_tracer_default(void);
typedef pm_status_t (*pm_span_export_fn)(const pm_span_batch_t *b, void *user);
pm_status_t pm_tracer_add_exporter(pm_tracer_t *t, const char *name, pm_span_export_fn fn,
                                   void *user, pm_release_fn release);
pm_status_t pm_tracer_remove_exporter(pm_tracer_t *t, const char *name);
pm_status_t pm_tracer_flush(pm_tracer_t *t, size_t *n);
pm_status_t pm_tracer_start(pm_tracer_t *t);
pm_status_t pm_tracer_stop(pm_tracer_t *t);
uint64_t pm_tracer_stat(const pm_tracer_t *t, int which);

pm_status_t pm_span_start(pm_tracer_t *t, const char *name, int kind,
                          const pm_trace_context_t *parent, pm_span_t **out);
void pm_span_end(pm_span_t *s);
pm_span_t *pm_span_enter(pm_span_t *s);
pm_span_t *pm_span_current(void);
pm_status_t pm_span_context(const pm_span_t *s, pm_trace_context_t *out);
int pm_span_is_sampled(const pm_span_t *s);
pm_status_t pm_span_set_string(pm_span_t *s, const char *key, const char *value);
pm_status_t pm_span_set_int(pm_span_t *s, const char *key, int64_t value);
pm_status_t pm_span_set_double(pm_span_t *s, const char *key, double value);
pm_status_t pm_span_set_bool(pm_span_t *s, const char *key, int value);
pm_status_t pm_span_add_event(pm_span_t *s, const char *name, const char *attr_key,
                              const char *attr_value);
pm_status_t pm_span_set_status(pm_span_t *s, int status, const char *message);

size_t pm_span_batch_count(const pm_span_batch_t *b);
const pm_span_data_t *pm_span_batch_span(const pm_span_batch_t *b, size_t i);
const char *pm_span_batch_service(const pm_span_batch_t *b);
pm_status_t pm_span_batch_format(const pm_span_batch_t *b, int fmt, pm_buf_t *buf);
const char *pm_span_data_name(const pm_span_data_t *s);
int pm_span_data_kind(const pm_span_data_t *s);
const pm_trace_context_t *pm_span_data_context(const pm_span_data_t *s);
const uint8_t *pm_span_data_parent_id(const pm_span_data_t *s);
uint64_t pm_span_data_start_ns(const pm_span_data_t *s);
uint64_t pm_span_data_end_ns(const pm_span_data_t *s);
int pm_span_data_status(const pm_span_data_t *s);
const char *pm_span_data_status_message(const pm_span_data_t *s);
size_t pm_span_data_attr_count(const pm_span_data_t *s);
const char *pm_span_data_attr_key(const pm_span_data_t *s, size_t i);
int pm_span_data_attr_type(const pm_span_data_t *s, size_t i);
const char *pm_span_data_attr_string(const pm_span_data_t *s, size_t i);
int64_t pm_span_data_attr_int(const pm_span_data_t *s, size_t i);
double pm_span_data_attr_double(const pm_span_data_t *s, size_t i);
int pm_span_data_attr_bool(const pm_span_data_t *s, size_t i);
size_t pm_span_data_event_count(const pm_span_data_t *s);
const char *pm_span_data_event_name(const pm_span_data_t *s, size_t i);
const char *pm_span_data_event_attr_key(const pm_span_data_t *s, size_t i);
const char *pm_span_data_event_attr_value(const pm_span_data_t *s, size_t i);

pm_status_t pm_traceparent_parse(const char *header, size_t len, pm_trace_context_t *out);
pm_status_t pm_traceparent_format(const pm_trace_context_t *ctx, char *buf, size_t size);

typedef struct pm_alert_engine pm_alert_engine_t;
typedef struct pm_alert_engine_opts pm_alert_engine_opts_t;
typedef struct pm_alert_event pm_alert_event_t;
typedef struct pm_alert_list pm_alert_list_t;
typedef struct pm_alert_filter pm_alert_filter_t;
typedef struct pm_parse_error pm_parse_error_t;
const char *pm_severity_name(int s);
const char *pm_alert_state_name(int s);
unsigned pm_parse_error_line(const pm_parse_error_t *e);
unsigned pm_parse_error_column(const pm_parse_error_t *e);
size_t pm_parse_error_offset(const pm_parse_error_t *e);
const char *pm_parse_error_expected(const pm_parse_error_t *e);
const char *pm_parse_error_message(const pm_parse_error_t *e);
void pm_parse_error_free(pm_parse_error_t *e);
pm_status_t pm_alert_rules_check(const char *text, size_t len, size_t *nrules,
                                 pm_parse_error_t **err);
pm_status_t pm_alert_engine_opts_new(pm_alert_engine_opts_t **out);
void pm_alert_engine_opts_free(pm_alert_engine_opts_t *o);
pm_status_t pm_alert_engine_opts_set_interval(pm_alert_engine_opts_t *o, double seconds);
pm_status_t pm_alert_engine_opts_set_metrics(pm_alert_engine_opts_t *o, int enabled);
pm_status_t pm_alert_engine_opts_set_dispatch_thread(pm_alert_engine_opts_t *o, int enabled);
pm_status_t pm_alert_engine_new(pm_registry_t *r, const pm_alert_engine_opts_t *opts,
                                pm_alert_engine_t **out);
void pm_alert_engine_free(pm_alert_engine_t *e);
pm_status_t pm_alert_engine_remove_rule(pm_alert_engine_t *e, const char *name);
pm_status_t pm_alert_engine_enable_rule(pm_alert_engine_t *e, const char *name, int enabled);
size_t pm_alert_engine_rule_count(const pm_alert_engine_t *e);
pm_status_t pm_alert_engine_load_string(pm_alert_engine_t *e, const char *text, size_t len,
                                        pm_parse_error_t **err);
pm_status_t pm_alert_engine_tick(pm_alert_engine_t *e, int64_t now);
pm_status_t pm_alert_engine_start(pm_alert_engine_t *e);
pm_status_t pm_alert_engine_stop(pm_alert_engine_t *e);
pm_status_t pm_alert_engine_deliver(pm_alert_engine_t *e, size_t max, size_t *delivered);
double pm_alert_engine_health(const pm_alert_engine_t *e);
uint64_t pm_alert_engine_stat(const pm_alert_engine_t *e, int which);
const char *pm_alert_event_rule(const pm_alert_event_t *ev);
int pm_alert_event_state(const pm_alert_event_t *ev);
int pm_alert_event_prev_state(const pm_alert_event_t *ev);
int pm_alert_event_severity(const pm_alert_event_t *ev);
double pm_alert_event_value(const pm_alert_event_t *ev);
double pm_alert_event_time(const pm_alert_event_t *ev);
double pm_alert_event_active_at(const pm_alert_event_t *ev);
double pm_alert_event_starts_at(const pm_alert_event_t *ev);
double pm_alert_event_ends_at(const pm_alert_event_t *ev);
uint64_t pm_alert_event_fingerprint(const pm_alert_event_t *ev);
size_t pm_alert_event_label_count(const pm_alert_event_t *ev);
const char *pm_alert_event_label_name(const pm_alert_event_t *ev, size_t i);
const char *pm_alert_event_label_value(const pm_alert_event_t *ev, size_t i);
size_t pm_alert_event_annotation_count(const pm_alert_event_t *ev);
const char *pm_alert_event_annotation_name(const pm_alert_event_t *ev, size_t i);
const char *pm_alert_event_annotation_value(const pm_alert_event_t *ev, size_t i);
pm_status_t pm_alert_engine_active(pm_alert_engine_t *e, pm_alert_list_t **out);
pm_status_t pm_alert_engine_history(pm_alert_engine_t *e, pm_alert_list_t **out);
size_t pm_alert_list_count(const pm_alert_list_t *l);
const pm_alert_event_t *pm_alert_list_get(const pm_alert_list_t *l, size_t i);
void pm_alert_list_free(pm_alert_list_t *l);
typedef int (*pm_alert_notify_fn)(const pm_alert_event_t *ev, void *user);
pm_status_t pm_alert_filter_new(pm_alert_filter_t **out);
void pm_alert_filter_free(pm_alert_filter_t *f);
pm_status_t pm_alert_filter_set_min_severity(pm_alert_filter_t *f, int s);
pm_status_t pm_alert_filter_add_matcher(pm_alert_filter_t *f, const char *label,
                                        const char *op, const char *value);
pm_status_t pm_alert_filter_add_rule(pm_alert_filter_t *f, const char *rule);
pm_status_t pm_alert_filter_set_send_resolved(pm_alert_filter_t *f, int enabled);
pm_status_t pm_alert_engine_add_notifier(pm_alert_engine_t *e, const char *name,
                                         const pm_alert_filter_t *filter,
                                         pm_alert_notify_fn fn, void *user,
                                         pm_release_fn release);
pm_status_t pm_alert_engine_remove_notifier(pm_alert_engine_t *e, const char *name);
pm_status_t pm_alert_event_format_line(const pm_alert_event_t *ev, pm_buf_t *out);

typedef struct pm_server pm_server_t;
typedef struct pm_server_opts pm_server_opts_t;
pm_status_t pm_server_opts_new(pm_server_opts_t **out);
void pm_server_opts_free(pm_server_opts_t *o);
pm_status_t pm_server_opts_set_address(pm_server_opts_t *o, const char *host, int port);
pm_status_t pm_server_opts_set_token(pm_server_opts_t *o, const char *token);
pm_status_t pm_server_opts_set_threads(pm_server_opts_t *o, unsigned n);
pm_status_t pm_server_opts_set_tracer(pm_server_opts_t *o, pm_tracer_t *t);
pm_status_t pm_server_opts_set_alert_engine(pm_server_opts_t *o, pm_alert_engine_t *e);
pm_status_t pm_server_opts_set_dashboard(pm_server_opts_t *o, int enabled);
pm_status_t pm_server_opts_set_title(pm_server_opts_t *o, const char *title);
pm_status_t pm_server_new(pm_registry_t *r, const pm_server_opts_t *opts, pm_server_t **out);
void pm_server_free(pm_server_t *s);
int pm_server_port(const pm_server_t *s);
pm_status_t pm_server_url(const pm_server_t *s, char *buf, size_t size);
uint64_t pm_server_stat(const pm_server_t *s, int which);
"""


class LibraryNotFoundError(ImportError):
    """libperfmetrics.so.1 could not be loaded; .attempts lists (where, why)."""

    def __init__(self, attempts):
        self.attempts = attempts
        lines = ["perfmetrics: could not load %s; tried, in order:" % SONAME]
        lines += ["  %s: %s" % (where, why) for where, why in attempts]
        lines.append("Set %s to the library's path (e.g. <builddir>/lib/%s), or install "
                     "the library where the dynamic linker finds it." % (ENV_VAR, SONAME))
        super().__init__("\n".join(lines))


def candidates(environ=None, package_dir=None, soname=SONAME):
    """The (description, path) pairs tried, in order, without loading anything."""
    environ = os.environ if environ is None else environ
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    out = []
    env_path = environ.get(ENV_VAR)
    if env_path:
        out.append(("%s=%s" % (ENV_VAR, env_path), env_path))
    out.append(("next to the package", os.path.join(package_dir, soname)))
    out.append(("the dynamic linker's search path", soname))
    return out


def load(ffi, environ=None, package_dir=None, soname=SONAME):
    """Returns (lib, path) for the first candidate that loads and exports
    pm_version; raises LibraryNotFoundError listing every attempt."""
    attempts = []
    for where, path in candidates(environ, package_dir, soname):
        # A path (env var, bundled copy) that does not exist is reported as such
        # rather than as the dynamic linker's less precise message.
        if os.sep in path and not os.path.exists(path):
            attempts.append((where, "no such file"))
        else:
            try:
                lib = ffi.dlopen(path)
                lib.pm_version()
                return lib, path
            except (OSError, AttributeError) as e:
                attempts.append((where, str(e)))
        if where.startswith(ENV_VAR + "="):
            attempts.append(("(nothing else)", "%s is set, so no other place is tried" % ENV_VAR))
            break
    raise LibraryNotFoundError(attempts)


ffi = cffi.FFI()
ffi.cdef(CDEF)
lib, library_path = load(ffi)
