/* Private span structures, shared by lib/span.c (life cycle, sampling,
 * buffer, export), lib/tracecontext.c, lib/span_format.c and lib/trace_analytics.c.
 *
 * Every span handle points at a pm_span. An unsampled span is only that
 * (context, parent, links for the current-span chain). A sampled span is a
 * pm_span_rec, whose first member is the pm_span: name, times, attributes,
 * events and status, with strings in an inline buffer (spilling to malloc). */
#ifndef PM_SPAN_INTERNAL_H
#define PM_SPAN_INTERNAL_H

#include "pm_internal.h"

#include <perfmetrics/spans.h>

#define PM_SPAN_NAME_MAX 256
#define PM_SPAN_INLINE_ATTRS 8
#define PM_SPAN_INLINE_EVENTS 4
#define PM_SPAN_STRBUF 512

/* Span objects are allocated on their own cache lines (PM_SPAN_ALIGN, sizes
 * rounded up to it): a thread writes its span on every start and end, and a
 * span object moves to whichever thread ends it, so two objects that shared a
 * line would make two threads' unsampled spans fight over it (false sharing).
 * An unsampled span is exactly one line. */
#define PM_SPAN_ALIGN 64

struct pm_span {
    _Alignas(PM_SPAN_ALIGN) pm_tracer_t *t;
    pm_trace_context_t ctx; /* this span: trace id, span id, flags (sampled bit) */
    uint8_t parent_id[8];   /* zero for a root */
    uint8_t parent_remote;
    uint8_t kind;
    uint8_t sampled;
    uint8_t entered; /* has been made current at least once */
    union {
        struct pm_span *prev_current; /* live: current span when this one was entered */
        struct pm_span *next_free;    /* ended: per-thread cache link, or flusher's tag */
    };
};

typedef struct pm_span_attr {
    const char *key;
    pm_attr_type_t type;
    union {
        const char *s;
        int64_t i;
        double d;
        int b;
    } v;
} pm_span_attr;

typedef struct pm_span_event {
    const char *name;
    uint64_t time_ns; /* wall-clock Unix ns */
    const char *key, *value; /* optional attribute, NULL key if none */
} pm_span_event;

/* Extra string storage when the inline buffer is full (freed on recycle). */
typedef struct pm_span_spill {
    struct pm_span_spill *next;
    char data[];
} pm_span_spill;

typedef struct pm_span_rec {
    struct pm_span base; /* must be first: a pm_span_t* is a pm_span_rec* when sampled */
    uint64_t start_mono, end_mono; /* pm_now_ns() */
    uint64_t start_ns, end_ns;     /* wall-clock Unix ns */
    uint8_t status;
    uint32_t dropped_attrs, dropped_events;
    const char *status_msg;
    uint32_t nattrs, nevents, capattrs, capevents;
    pm_span_attr *attrs;   /* attrs_inline or malloc'd */
    pm_span_event *events; /* events_inline or malloc'd */
    pm_span_attr attrs_inline[PM_SPAN_INLINE_ATTRS];
    pm_span_event events_inline[PM_SPAN_INLINE_EVENTS];
    size_t strused;
    pm_span_spill *spill;
    char name[PM_SPAN_NAME_MAX + 1];
    char strbuf[PM_SPAN_STRBUF];
} pm_span_rec;

/* An ended span as exporters see it. */
struct pm_span_data {
    pm_span_rec rec;
};

struct pm_span_batch {
    const pm_span_rec *const *spans;
    size_t n;
    const char *service;
};

/* The calling thread's current span (NULL if none). Exemplars read it. */
extern PM_TLS pm_span_t *pm__tls_span;

/* ------------------------------------------------------------ analytics (trace_analytics.c) */
typedef struct pm_trace_analytics pm_trace_analytics;
/* Bounds as given to pm_tracer_opts_set_analytics. */
pm_status_t pm__analytics_new(size_t max_ops, size_t slowest, size_t error_traces,
                              size_t max_traces, size_t max_spans_per_trace,
                              pm_trace_analytics **out);
void pm__analytics_free(pm_trace_analytics *a);
/* Feeds one ended span (called by the flushing thread, serialised). The span
 * record is only borrowed: copy what is kept. */
void pm__analytics_add(pm_trace_analytics *a, const pm_span_rec *s);
/* Completes traces still in assembly (at tracer free / explicit flush end). */
void pm__analytics_settle(pm_trace_analytics *a);
/* The public readers (pm_tracer_ops_snapshot, pm_tracer_traces) call these. */
pm_status_t pm__analytics_ops(pm_trace_analytics *a, pm_trace_ops_t **out);
pm_status_t pm__analytics_traces(pm_trace_analytics *a, pm_trace_list_kind_t kind,
                                 pm_trace_list_t **out);
pm_trace_analytics *pm__tracer_analytics(pm_tracer_t *t);
/* Internal counters by name: completed, forced, settled, detached,
 * unassembled, other, nomem, assembling (doc/trace-analytics.md). */
uint64_t pm__analytics_counter(pm_trace_analytics *a, const char *name);

/* ------------------------------------------------------------ tracecontext.c */
/* Lower-case hex of n bytes into out (2n chars + NUL). */
void pm__hex(const uint8_t *in, size_t n, char *out);

#endif
