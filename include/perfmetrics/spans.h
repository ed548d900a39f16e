/* libperfmetrics — spans and trace context.
 *
 * A tracer owns a sampler, a bounded buffer of ended spans, span exporters
 * and trace analytics. A span has a name, a kind, a parent, attributes,
 * events, a status and a start and end time; spans that share a trace id form
 * a trace. W3C Trace Context (traceparent/tracestate) carries a trace across
 * processes.
 *
 *   pm_tracer_t *t; pm_tracer_new(NULL, &t); pm_tracer_set_default(t);
 *   {
 *       PM_SPAN_SCOPE("handle_task");       // child of the thread's current span
 *       { PM_SPAN_SCOPE("load"); load(); }  // nested: its parent is handle_task
 *   }
 *
 * Thread classes: starting, annotating and ending spans — any thread, no lock
 * (an unsampled span never allocates; a sampled one takes an object from a
 * per-thread cache); tracer set-up, flush and analytics — any thread, may lock;
 * exporter callbacks — never re-entered. */
#ifndef PERFMETRICS_SPANS_H
#define PERFMETRICS_SPANS_H

#include <perfmetrics/base.h>
#include <perfmetrics/format.h>
#include <perfmetrics/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_tracer pm_tracer_t;
typedef struct pm_tracer_opts pm_tracer_opts_t;
typedef struct pm_span pm_span_t;
/* A read-only view of one ended span, valid for the duration of the callback
 * (or of the batch) it was handed with. */
typedef struct pm_span_data pm_span_data_t;
typedef struct pm_span_batch pm_span_batch_t;

/* The W3C trace context of a span: a fixed 32-byte layout (the W3C fields,
 * then padding) that never changes, so it may be copied, stored and passed
 * between threads and processes by value. An all-zero trace_id means "none". */
typedef struct pm_trace_context {
    uint8_t trace_id[16];
    uint8_t span_id[8];
    uint8_t flags;       /* bit 0: sampled */
    uint8_t remote;      /* 1 if parsed from another process */
    uint8_t reserved[6]; /* zero */
} pm_trace_context_t;

#define PM_TRACE_FLAG_SAMPLED 0x01

typedef enum pm_span_kind {
    PM_SPAN_INTERNAL = 1,
    PM_SPAN_SERVER = 2,
    PM_SPAN_CLIENT = 3,
    PM_SPAN_PRODUCER = 4,
    PM_SPAN_CONSUMER = 5
} pm_span_kind_t;

typedef enum pm_span_status {
    PM_SPAN_STATUS_UNSET = 0,
    PM_SPAN_STATUS_OK = 1,
    PM_SPAN_STATUS_ERROR = 2
} pm_span_status_t;

typedef enum pm_sampler {
    PM_SAMPLER_ALWAYS = 1,
    PM_SAMPLER_NEVER = 2,
    PM_SAMPLER_RATIO = 3,        /* by trace id: every process agrees */
    PM_SAMPLER_PARENT_RATIO = 4  /* parent's decision; roots by ratio (default, ratio 1) */
} pm_sampler_t;

typedef enum pm_attr_type {
    PM_ATTR_STRING = 1,
    PM_ATTR_INT = 2,
    PM_ATTR_DOUBLE = 3,
    PM_ATTR_BOOL = 4
} pm_attr_type_t;

/* ---------------------------------------------------------------- tracer */

/* Creates tracer options with defaults: sampler parent-based with ratio 1,
 * buffer 2048 spans, batches of 512 every 5 s, service name "unknown_service",
 * at most 16 attributes and 16 events per span, analytics for 256 operations,
 * 10 slowest traces, 10 recent error traces, 1024 traces in assembly of at
 * most 256 spans each. Release with pm_tracer_opts_free.
 * Errors: PM_EINVAL, PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_tracer_opts_new(pm_tracer_opts_t **out);
/* Frees; NULL is a no-op. */
PM_API void pm_tracer_opts_free(pm_tracer_opts_t *o);
/* Sampler and its ratio (0..1, used by RATIO and PARENT_RATIO).
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_tracer_opts_set_sampler(pm_tracer_opts_t *o, pm_sampler_t sampler,
                                              double ratio);
/* Ended-span buffer capacity (16..1048576, rounded up to a power of two);
 * when full, ended spans are dropped and counted. Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_tracer_opts_set_buffer(pm_tracer_opts_t *o, size_t spans);
/* Export batches: at most max_spans per exporter call (1..65536); the
 * background thread exports every `seconds` (> 0). Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_tracer_opts_set_batch(pm_tracer_opts_t *o, size_t max_spans,
                                            double seconds);
/* Per-span limits: attributes and events beyond them are dropped and
 * counted (0..1024 each). Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_tracer_opts_set_limits(pm_tracer_opts_t *o, size_t max_attrs,
                                             size_t max_events);
/* service.name of the OTLP resource (copied, UTF-8).
 * Errors: PM_EINVAL, PM_EUTF8, PM_ENOMEM. */
PM_API pm_status_t pm_tracer_opts_set_service(pm_tracer_opts_t *o, const char *name);
/* Analytics bounds: operations tracked (1..65536; further ones are counted
 * as dropped), slowest traces kept (0..1024), recent error traces kept
 * (0..1024), traces in assembly (1..65536) and spans per trace (1..65536).
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_tracer_opts_set_analytics(pm_tracer_opts_t *o, size_t max_ops,
                                                size_t slowest, size_t error_traces,
                                                size_t max_traces, size_t max_spans_per_trace);
/* RED metrics: when r is not NULL, every exported span also feeds the
 * histogram pm_span_duration_seconds{operation} and the counter
 * pm_span_errors_total{operation} in r (and pm_spans_total{operation}).
 * r must outlive the tracer. Errors: PM_EINVAL. */
PM_API pm_status_t pm_tracer_opts_set_registry(pm_tracer_opts_t *o, pm_registry_t *r);

/* Creates a tracer. opts may be NULL; it is only read during the call.
 * Errors: PM_EINVAL, PM_ENOMEM (nothing allocated). Thread-safety: any thread. */
PM_API pm_status_t pm_tracer_new(const pm_tracer_opts_t *opts, pm_tracer_t **out);
/* Stops the export thread, flushes every buffered span to the exporters,
 * then frees the tracer (exporters' release callbacks included). Spans not
 * yet ended must not be used afterwards. NULL is a no-op.
 * Thread-safety: no other thread may use the tracer during or after the call. */
PM_API void pm_tracer_free(pm_tracer_t *t);

/* The process-wide default tracer used by PM_SPAN_SCOPE (NULL until set).
 * Setting NULL clears it; the caller keeps ownership. Thread-safety: any thread. */
PM_API void pm_tracer_set_default(pm_tracer_t *t);
PM_API pm_tracer_t *pm_tracer_default(void);

/* Span exporter: receives a batch of ended, sampled spans (borrowed for the
 * call). Returns PM_OK or an error status (counted). Never called concurrently
 * for one exporter. */
typedef pm_status_t (*pm_span_export_fn)(const pm_span_batch_t *b, void *user);

/* Registers a span exporter named `name` (unique, copied). `release` (may be
 * NULL) is called with `user` when the tracer is freed, and also when this
 * call fails. Errors: PM_EINVAL, PM_EUTF8, PM_EEXIST, PM_ENOMEM.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_tracer_add_exporter(pm_tracer_t *t, const char *name,
                                          pm_span_export_fn fn, void *user,
                                          pm_release_fn release);

/* Removes the span exporter registered as `name` from tracer t and calls
 * its release callback; a flush that is calling it finishes first.
 * Errors: PM_EINVAL (NULL), PM_ENOENT (no such exporter), PM_ESTATE (called
 * from inside an exporter). Thread-safety: any thread. (Since 1.3.0.) */
PM_API pm_status_t pm_tracer_remove_exporter(pm_tracer_t *t, const char *name);

/* Drains the buffer now: every ended span goes to analytics and, in batches,
 * to every exporter. Returns the number of spans drained in *n (may be NULL).
 * Errors: PM_EINVAL, PM_ESTATE (from inside an exporter).
 * Thread-safety: any thread; flushes are serialised. */
PM_API pm_status_t pm_tracer_flush(pm_tracer_t *t, size_t *n);

/* Starts / stops the background export thread (stop flushes first).
 * Errors: PM_EINVAL, PM_ESTATE (already running / inside an exporter), PM_ETHREAD. */
PM_API pm_status_t pm_tracer_start(pm_tracer_t *t);
PM_API pm_status_t pm_tracer_stop(pm_tracer_t *t);

/* Tracer counters, all about sampled spans (an unsampled span does no shared
 * write, so it is not counted): started (= sampled), sampled, ended, dropped
 * because the buffer was full, exported, attributes and events dropped by
 * limits, exporter failures; then the analytics' own bounds at work (see
 * doc/trace-analytics.md): traces completed, traces completed early because
 * the assembly table was full, spans that arrived after their trace had
 * completed, spans beyond max_spans_per_trace, and spans of operations beyond
 * max_ops (pooled as "(other)"). 0 for NULL or an unknown index. */
typedef enum pm_tracer_stat {
    PM_TRACER_STARTED = 1,
    PM_TRACER_SAMPLED = 2,
    PM_TRACER_ENDED = 3,
    PM_TRACER_DROPPED = 4,
    PM_TRACER_EXPORTED = 5,
    PM_TRACER_ATTRS_DROPPED = 6,
    PM_TRACER_EVENTS_DROPPED = 7,
    PM_TRACER_EXPORT_FAILURES = 8,
    PM_TRACER_TRACES_COMPLETED = 9,
    PM_TRACER_TRACES_FORCED = 10,
    PM_TRACER_SPANS_DETACHED = 11,
    PM_TRACER_SPANS_UNASSEMBLED = 12,
    PM_TRACER_SPANS_OTHER = 13
} pm_tracer_stat_t;
/* Returns one of the tracer's counters (see pm_tracer_stat_t); 0 for NULL or
 * an unknown index. Thread-safety: any thread; lock-free for 1..8, the
 * analytics counters (9..13) take the analytics lock briefly. */
PM_API uint64_t pm_tracer_stat(const pm_tracer_t *t, pm_tracer_stat_t which);

/* ---------------------------------------------------------------- spans */

/* Starts a span called `name` (copied; UTF-8, at most 256 bytes, longer is
 * truncated at a character boundary). parent: NULL means the calling thread's
 * current span (a root span if there is none); a context with an all-zero
 * trace id means "root"; otherwise the given context, from this process or
 * another (pm_span_context / pm_traceparent_parse). The new span is not made
 * current (see pm_span_enter). *out is never NULL on PM_OK, sampled or not.
 * Errors: PM_EINVAL (NULL tracer/name/out, bad kind), PM_ENOMEM.
 * Thread-safety: any thread; no lock; an unsampled span allocates nothing. */
PM_API pm_status_t pm_span_start(pm_tracer_t *t, const char *name, pm_span_kind_t kind,
                                 const pm_trace_context_t *parent, pm_span_t **out);

/* Ends the span: records the end time and hands a sampled span to the
 * buffer (dropped and counted if full). The handle is invalid afterwards.
 * If the span is the thread's current span, the current span reverts to the
 * one that was current when it was entered. NULL is ignored.
 * Thread-safety: any thread (not concurrently with other calls on this span). */
PM_API void pm_span_end(pm_span_t *s);

/* Makes s the calling thread's current span; returns the previous one (pass
 * it to pm_span_exit to restore). s may be NULL (no current span). */
PM_API pm_span_t *pm_span_enter(pm_span_t *s);
/* Restores `previous` (from pm_span_enter) as the current span. */
PM_API void pm_span_exit(pm_span_t *previous);
/* The calling thread's current span, or NULL. */
PM_API pm_span_t *pm_span_current(void);

/* Copies the span's trace context to *out. Errors: PM_EINVAL. Any thread. */
PM_API pm_status_t pm_span_context(const pm_span_t *s, pm_trace_context_t *out);
/* 1 if the span is sampled (recorded and exported), 0 otherwise or for NULL. */
PM_API int pm_span_is_sampled(const pm_span_t *s);

/* Attributes (key: UTF-8, copied; later values of the same key replace
 * earlier ones). On an unsampled span they do nothing and return PM_OK.
 * Errors: PM_EINVAL (NULL), PM_EUTF8, PM_ERANGE (over the limit: dropped and
 * counted), PM_ENOMEM. Thread-safety: not concurrently with other calls on s. */
PM_API pm_status_t pm_span_set_string(pm_span_t *s, const char *key, const char *value);
PM_API pm_status_t pm_span_set_int(pm_span_t *s, const char *key, int64_t value);
PM_API pm_status_t pm_span_set_double(pm_span_t *s, const char *key, double value);
PM_API pm_status_t pm_span_set_bool(pm_span_t *s, const char *key, int value);

/* Adds a timestamped event (name copied) with one optional string attribute
 * (attr_key/attr_value may be NULL). Errors as the attribute setters. */
PM_API pm_status_t pm_span_add_event(pm_span_t *s, const char *name, const char *attr_key,
                                     const char *attr_value);

/* Sets the status; message (copied, may be NULL) is kept for ERROR only.
 * Errors: PM_EINVAL, PM_EUTF8, PM_ENOMEM. */
PM_API pm_status_t pm_span_set_status(pm_span_t *s, pm_span_status_t status,
                                      const char *message);

/* ---------------------------------------------------------------- ended spans */

/* Batch accessors (for exporters). */
PM_API size_t pm_span_batch_count(const pm_span_batch_t *b);
PM_API const pm_span_data_t *pm_span_batch_span(const pm_span_batch_t *b, size_t i);
/* The tracer's service name, for the batch's resource. */
PM_API const char *pm_span_batch_service(const pm_span_batch_t *b);

/* Ended-span accessors. Strings are never NULL for a valid span ("" if unset),
 * except an event's attribute key, NULL when the event has none; all return
 * 0/NULL/"" for NULL or out-of-range arguments, and a typed attribute getter
 * called on an attribute of another type returns 0 or "" (no conversion). Times are Unix
 * nanoseconds (wall clock at start plus the monotonic duration). */
PM_API const char *pm_span_data_name(const pm_span_data_t *s);
PM_API pm_span_kind_t pm_span_data_kind(const pm_span_data_t *s);
PM_API const pm_trace_context_t *pm_span_data_context(const pm_span_data_t *s);
/* The parent's span id; all zero for a root span. 1 if the parent was remote. */
PM_API const uint8_t *pm_span_data_parent_id(const pm_span_data_t *s);
PM_API int pm_span_data_parent_remote(const pm_span_data_t *s);
PM_API uint64_t pm_span_data_start_ns(const pm_span_data_t *s);
PM_API uint64_t pm_span_data_end_ns(const pm_span_data_t *s);
PM_API pm_span_status_t pm_span_data_status(const pm_span_data_t *s);
PM_API const char *pm_span_data_status_message(const pm_span_data_t *s);
PM_API size_t pm_span_data_attr_count(const pm_span_data_t *s);
PM_API const char *pm_span_data_attr_key(const pm_span_data_t *s, size_t i);
PM_API pm_attr_type_t pm_span_data_attr_type(const pm_span_data_t *s, size_t i);
PM_API const char *pm_span_data_attr_string(const pm_span_data_t *s, size_t i);
PM_API int64_t pm_span_data_attr_int(const pm_span_data_t *s, size_t i);
PM_API double pm_span_data_attr_double(const pm_span_data_t *s, size_t i);
PM_API int pm_span_data_attr_bool(const pm_span_data_t *s, size_t i);
PM_API size_t pm_span_data_event_count(const pm_span_data_t *s);
PM_API const char *pm_span_data_event_name(const pm_span_data_t *s, size_t i);
PM_API uint64_t pm_span_data_event_time_ns(const pm_span_data_t *s, size_t i);
/* The event's one optional attribute; NULL key if none. */
PM_API const char *pm_span_data_event_attr_key(const pm_span_data_t *s, size_t i);
PM_API const char *pm_span_data_event_attr_value(const pm_span_data_t *s, size_t i);
/* Attributes and events dropped by the tracer's limits. */
PM_API uint32_t pm_span_data_dropped_attrs(const pm_span_data_t *s);
PM_API uint32_t pm_span_data_dropped_events(const pm_span_data_t *s);

/* ---------------------------------------------------------------- formats */

typedef enum pm_span_format {
    PM_SPAN_FORMAT_JSONL = 1,    /* one JSON object per line (doc/span-formats.md) */
    PM_SPAN_FORMAT_OTLP_JSON = 2 /* OTLP/HTTP JSON ExportTraceServiceRequest */
} pm_span_format_t;

/* Appends the batch in format fmt to buf; on error buf is restored.
 * Errors: PM_EINVAL, PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_span_batch_format(const pm_span_batch_t *b, pm_span_format_t fmt,
                                        pm_buf_t *buf);

/* ---------------------------------------------------------------- W3C trace context */

/* Size of a buffer for pm_traceparent_format, and one that always fits the
 * output of pm_tracestate_normalize. */
#define PM_TRACEPARENT_SIZE 56
#define PM_TRACESTATE_SIZE 513

/* Parses a traceparent header value ("00-<32 hex>-<16 hex>-<2 hex>", lower
 * case; a future version may carry more fields after a '-'). Spaces and tabs
 * at either end are ignored (HTTP strips them); none inside. Rejects every
 * form the W3C spec calls invalid: version ff, all-zero trace or span id,
 * wrong lengths, upper-case or non-hex digits, bad separators. Version 00
 * keeps the flags byte as received; a higher version keeps only the sampled
 * bit. On success *out is filled with remote = 1.
 * Errors: PM_EINVAL (NULL), PM_EPARSE (*out zeroed).
 * Thread-safety: any thread; no allocation. */
PM_API pm_status_t pm_traceparent_parse(const char *header, size_t len, pm_trace_context_t *out);
/* Writes the 55-character traceparent (version 00) plus a NUL into buf
 * (size >= PM_TRACEPARENT_SIZE). Errors: PM_EINVAL (NULL, small buffer,
 * all-zero ids). Thread-safety: any thread; no allocation. */
PM_API pm_status_t pm_traceparent_format(const pm_trace_context_t *ctx, char *buf, size_t size);
/* Validates a tracestate header value (list members key=value per W3C, at
 * most 32, 512 bytes) and writes its normalised form (empty members removed,
 * OWS trimmed) into buf (NUL-terminated; "" on any error). The 512 bytes
 * are counted as received, so PM_TRACESTATE_SIZE always suffices.
 * Errors: PM_EINVAL, PM_EPARSE, PM_ERANGE (buf too small).
 * Thread-safety: any thread; no allocation. */
PM_API pm_status_t pm_tracestate_normalize(const char *header, size_t len, char *buf,
                                           size_t size);

/* ---------------------------------------------------------------- analytics */

/* Per-operation statistics, read from a tracer's analytics (spans count once
 * they have been flushed). pm_trace_ops_* are snapshot reads under the
 * tracer's analytics lock; indexes are positions in a snapshot taken by
 * pm_tracer_ops_snapshot. */
typedef struct pm_trace_ops pm_trace_ops_t;
/* Copies the current per-operation table. Release with pm_trace_ops_free.
 * Errors: PM_EINVAL, PM_ENOMEM. */
PM_API pm_status_t pm_tracer_ops_snapshot(pm_tracer_t *t, pm_trace_ops_t **out);
PM_API void pm_trace_ops_free(pm_trace_ops_t *o);
PM_API size_t pm_trace_ops_count(const pm_trace_ops_t *o);
PM_API const char *pm_trace_ops_name(const pm_trace_ops_t *o, size_t i);
PM_API uint64_t pm_trace_ops_spans(const pm_trace_ops_t *o, size_t i);
PM_API uint64_t pm_trace_ops_errors(const pm_trace_ops_t *o, size_t i);
/* Duration and self-time (duration minus the time covered by its children)
 * quantiles in seconds, error <= 1/129. Errors: PM_EINVAL, PM_ENOENT. */
PM_API pm_status_t pm_trace_ops_duration(const pm_trace_ops_t *o, size_t i, double q,
                                         double *out);
PM_API pm_status_t pm_trace_ops_self_time(const pm_trace_ops_t *o, size_t i, double q,
                                          double *out);
/* Total self time in seconds (sum), for ranking bottlenecks. */
PM_API double pm_trace_ops_self_total(const pm_trace_ops_t *o, size_t i);

/* Completed traces kept by analytics: the slowest N and the most recent error
 * traces. A trace completes when its local root span is flushed. */
typedef struct pm_trace_list pm_trace_list_t;
typedef enum pm_trace_list_kind { PM_TRACES_SLOWEST = 1, PM_TRACES_ERRORS = 2 } pm_trace_list_kind_t;
PM_API pm_status_t pm_tracer_traces(pm_tracer_t *t, pm_trace_list_kind_t kind,
                                    pm_trace_list_t **out);
PM_API void pm_trace_list_free(pm_trace_list_t *l);
PM_API size_t pm_trace_list_count(const pm_trace_list_t *l);
/* Trace i: id, root operation, span count, duration (seconds), error count. */
PM_API const uint8_t *pm_trace_list_trace_id(const pm_trace_list_t *l, size_t i);
PM_API const char *pm_trace_list_root(const pm_trace_list_t *l, size_t i);
PM_API size_t pm_trace_list_spans(const pm_trace_list_t *l, size_t i);
PM_API double pm_trace_list_duration(const pm_trace_list_t *l, size_t i);
PM_API size_t pm_trace_list_errors(const pm_trace_list_t *l, size_t i);
/* The critical path of trace i: the chain of spans, root first, that
 * determines its end-to-end time; each step's operation name and the time
 * (seconds) it contributes to the path. */
PM_API size_t pm_trace_list_path_length(const pm_trace_list_t *l, size_t i);
PM_API const char *pm_trace_list_path_name(const pm_trace_list_t *l, size_t i, size_t step);
PM_API double pm_trace_list_path_seconds(const pm_trace_list_t *l, size_t i, size_t step);

#ifdef __cplusplus
}
#endif

/* ---- scope: inline helpers over the functions above, not part of the ABI */
#if defined(__GNUC__) || defined(__clang__)
struct pm_span_scope_ {
    pm_span_t *span;
    pm_span_t *prev;
};
__attribute__((unused)) static inline struct pm_span_scope_ pm_span_scope_begin_(pm_tracer_t *t,
                                                                                const char *name)
{
    struct pm_span_scope_ sc = {NULL, NULL};
    if (t && pm_span_start(t, name, PM_SPAN_INTERNAL, NULL, &sc.span) == PM_OK)
        sc.prev = pm_span_enter(sc.span);
    return sc;
}
__attribute__((unused)) static inline void pm_span_scope_end_(struct pm_span_scope_ *sc)
{
    if (sc->span) {
        pm_span_exit(sc->prev);
        pm_span_end(sc->span);
    }
}
/* Opens a span for the enclosing block in tracer t and makes it the thread's
 * current span; at block exit the previous current span is restored and the
 * span ends. PM_SPAN_SCOPE(name) uses the default tracer (nothing if none). */
#define PM_SPAN_SCOPE_T(t, name)                                                        \
    __attribute__((cleanup(pm_span_scope_end_), unused)) struct pm_span_scope_ PM_SPAN_CAT_( \
        pm_span_scope_, __LINE__) = pm_span_scope_begin_((t), (name))
#define PM_SPAN_SCOPE(name) PM_SPAN_SCOPE_T(pm_tracer_default(), (name))
#define PM_SPAN_CAT2_(a, b) a##b
#define PM_SPAN_CAT_(a, b) PM_SPAN_CAT2_(a, b)
#endif

#endif
