/* Span batch formats (pm_span_batch_format); schemas in doc/span-formats.md.
 *
 *   JSONL      one object per span per line, our own field names, times as
 *              JSON integers, non-finite doubles as null.
 *   OTLP_JSON  the OTLP/HTTP JSON encoding of an ExportTraceServiceRequest:
 *              proto3 JSON mapping with OTLP's deviations (hex trace and span
 *              ids, enums as integers), so 64-bit integers (times, intValue)
 *              are decimal strings and non-finite doubles are the strings
 *              "NaN", "Infinity", "-Infinity".
 *
 * Both read spans through the public pm_span_data_* accessors only, like any
 * exporter, and write through the formatters' writer (format_internal.h), so
 * escaping and numbers are the snapshot formats' own and a failed call leaves
 * the buffer as it was. One span per line in both keeps large batches
 * diffable and lets the loop stop at the first failure. */
#include "internal/format_internal.h"
#include "internal/span_internal.h"

#include <math.h>

/* ---------------------------------------------------------------- values */


static int pm__sf_is_zero(const uint8_t *id, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (id[i]) return 0;
    return 1;
}

/* A trace or span id as a quoted lower-case hex string. */
static void pm__sf_id(pm__writer_t *w, const uint8_t *id, size_t n)
{
    char hex[2 * 16 + 1];
    pm__hex(id, n, hex);
    pm__w_char(w, '"');
    pm__w_bytes(w, hex, 2 * n);
    pm__w_char(w, '"');
}

/* A 64-bit integer as a proto3 JSON decimal string. */
static void pm__sf_u64_string(pm__writer_t *w, uint64_t v)
{
    pm__w_char(w, '"');
    pm__w_u64(w, v);
    pm__w_char(w, '"');
}

/* A finite double as a JSON number that reads back as exactly v and still
 * reads as a float ("2.0", not "2"), so a double attribute keeps its type
 * through JSON parsers that tell integers from floats. */
static void pm__sf_finite_double(pm__writer_t *w, double v)
{
    char *p = pm__w_reserve(w, PM__NUM_MAX);
    w->p = p + pm__fmt_canonical(p, v);
}

static void pm__sf_bool(pm__writer_t *w, int b)
{
    if (b)
        PM__W_LIT(w, "true");
    else
        PM__W_LIT(w, "false");
}

static const char *const pm__sf_kind_names[] = {"unspecified", "internal", "server",
                                                "client",      "producer", "consumer"};
static const char *const pm__sf_status_names[] = {"unset", "ok", "error"};

/* The span kind as OTLP's SpanKind number; our enum uses the same values.
 * Anything else is SPAN_KIND_UNSPECIFIED (0). */
static unsigned pm__sf_kind(const pm_span_data_t *s)
{
    unsigned k = (unsigned)pm_span_data_kind(s);
    return k <= PM_SPAN_CONSUMER ? k : 0;
}

/* The status as OTLP's StatusCode number (same values); unknown is UNSET. */
static unsigned pm__sf_status(const pm_span_data_t *s)
{
    unsigned c = (unsigned)pm_span_data_status(s);
    return c <= PM_SPAN_STATUS_ERROR ? c : 0;
}

/* ----------------------------------------------------------------- JSONL */

static void pm__jsonl_attr_value(pm__writer_t *w, const pm_span_data_t *s, size_t i)
{
    switch (pm_span_data_attr_type(s, i)) {
    case PM_ATTR_STRING:
        pm__w_json_string(w, pm_span_data_attr_string(s, i));
        return;
    case PM_ATTR_INT:
        pm__w_i64(w, pm_span_data_attr_int(s, i));
        return;
    case PM_ATTR_DOUBLE: {
        double d = pm_span_data_attr_double(s, i);
        if (isfinite(d))
            pm__sf_finite_double(w, d);
        else
            PM__W_LIT(w, "null"); /* JSON has no spelling for NaN and infinities */
        return;
    }
    case PM_ATTR_BOOL:
        pm__sf_bool(w, pm_span_data_attr_bool(s, i));
        return;
    }
    PM__W_LIT(w, "null");
}

static void pm__jsonl_events(pm__writer_t *w, const pm_span_data_t *s)
{
    PM__W_LIT(w, ",\"events\":[");
    size_t n = pm_span_data_event_count(s);
    for (size_t i = 0; i < n; i++) {
        if (i) pm__w_char(w, ',');
        PM__W_LIT(w, "{\"name\":");
        pm__w_json_string(w, pm_span_data_event_name(s, i));
        PM__W_LIT(w, ",\"time_unix_nano\":");
        pm__w_u64(w, pm_span_data_event_time_ns(s, i));
        PM__W_LIT(w, ",\"attributes\":{");
        const char *key = pm_span_data_event_attr_key(s, i);
        if (key) {
            pm__w_json_string(w, key);
            pm__w_char(w, ':');
            pm__w_json_string(w, pm_span_data_event_attr_value(s, i));
        }
        PM__W_LIT(w, "}}");
    }
    pm__w_char(w, ']');
}

static void pm__jsonl_span(pm__writer_t *w, const pm_span_data_t *s, const char *service)
{
    const pm_trace_context_t *ctx = pm_span_data_context(s);
    const uint8_t *parent = pm_span_data_parent_id(s);
    uint64_t start = pm_span_data_start_ns(s), end = pm_span_data_end_ns(s);

    PM__W_LIT(w, "{\"trace_id\":");
    pm__sf_id(w, ctx->trace_id, sizeof ctx->trace_id);
    PM__W_LIT(w, ",\"span_id\":");
    pm__sf_id(w, ctx->span_id, sizeof ctx->span_id);
    PM__W_LIT(w, ",\"parent_span_id\":");
    if (pm__sf_is_zero(parent, 8))
        PM__W_LIT(w, "null");
    else
        pm__sf_id(w, parent, 8);
    PM__W_LIT(w, ",\"parent_remote\":");
    pm__sf_bool(w, pm_span_data_parent_remote(s));
    PM__W_LIT(w, ",\"name\":");
    pm__w_json_string(w, pm_span_data_name(s));
    PM__W_LIT(w, ",\"kind\":\"");
    pm__w_str(w, pm__sf_kind_names[pm__sf_kind(s)]);
    PM__W_LIT(w, "\",\"start_unix_nano\":");
    pm__w_u64(w, start);
    PM__W_LIT(w, ",\"end_unix_nano\":");
    pm__w_u64(w, end);
    PM__W_LIT(w, ",\"duration_ns\":");
    pm__w_u64(w, end > start ? end - start : 0);
    PM__W_LIT(w, ",\"status\":\"");
    pm__w_str(w, pm__sf_status_names[pm__sf_status(s)]);
    PM__W_LIT(w, "\",\"status_message\":");
    pm__w_json_string(w, pm_span_data_status_message(s));

    PM__W_LIT(w, ",\"attributes\":{");
    size_t na = pm_span_data_attr_count(s);
    for (size_t i = 0; i < na; i++) {
        if (i) pm__w_char(w, ',');
        pm__w_json_string(w, pm_span_data_attr_key(s, i));
        pm__w_char(w, ':');
        pm__jsonl_attr_value(w, s, i);
    }
    pm__w_char(w, '}');
    pm__jsonl_events(w, s);

    PM__W_LIT(w, ",\"dropped_attributes\":");
    pm__w_u64(w, pm_span_data_dropped_attrs(s));
    PM__W_LIT(w, ",\"dropped_events\":");
    pm__w_u64(w, pm_span_data_dropped_events(s));
    PM__W_LIT(w, ",\"service\":");
    pm__w_json_string(w, service);
    PM__W_LIT(w, "}\n");
}

static void pm__format_jsonl(const pm_span_batch_t *b, pm__writer_t *w)
{
    const char *service = pm_span_batch_service(b);
    size_t n = pm_span_batch_count(b);
    for (size_t i = 0; i < n && !pm__w_failed(w); i++) {
        const pm_span_data_t *s = pm_span_batch_span(b, i);
        if (s) pm__jsonl_span(w, s, service);
    }
}

/* ------------------------------------------------------------- OTLP JSON */

/* Span.flags (fixed32): the W3C trace flags in bits 0-7; bit 8
 * (SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK) says bit 9
 * (SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK) is known: whether the parent was remote. */
#define PM__OTLP_HAS_IS_REMOTE 0x100u
#define PM__OTLP_IS_REMOTE 0x200u

/* One KeyValue: {"key":k,"value":{...}}; the caller writes the AnyValue body. */
static void pm__otlp_kv_head(pm__writer_t *w, const char *key)
{
    PM__W_LIT(w, "{\"key\":");
    pm__w_json_string(w, key);
    PM__W_LIT(w, ",\"value\":{");
}

static void pm__otlp_attr(pm__writer_t *w, const pm_span_data_t *s, size_t i)
{
    pm__otlp_kv_head(w, pm_span_data_attr_key(s, i));
    switch (pm_span_data_attr_type(s, i)) {
    case PM_ATTR_STRING:
        PM__W_KEY(w, "stringValue");
        pm__w_json_string(w, pm_span_data_attr_string(s, i));
        break;
    case PM_ATTR_INT: /* int64: a decimal string */
        PM__W_LIT(w, "\"intValue\":\"");
        pm__w_i64(w, pm_span_data_attr_int(s, i));
        pm__w_char(w, '"');
        break;
    case PM_ATTR_DOUBLE: {
        double d = pm_span_data_attr_double(s, i);
        PM__W_KEY(w, "doubleValue");
        if (isfinite(d))
            pm__sf_finite_double(w, d);
        else if (isnan(d))
            PM__W_LIT(w, "\"NaN\"");
        else if (d > 0)
            PM__W_LIT(w, "\"Infinity\"");
        else
            PM__W_LIT(w, "\"-Infinity\"");
        break;
    }
    case PM_ATTR_BOOL:
        PM__W_KEY(w, "boolValue");
        pm__sf_bool(w, pm_span_data_attr_bool(s, i));
        break;
    }
    /* An unknown type leaves the AnyValue empty: "no value" in OTLP. */
    PM__W_LIT(w, "}}");
}

static void pm__otlp_events(pm__writer_t *w, const pm_span_data_t *s)
{
    PM__W_LIT(w, ",\"events\":[");
    size_t n = pm_span_data_event_count(s);
    for (size_t i = 0; i < n; i++) {
        if (i) pm__w_char(w, ',');
        PM__W_LIT(w, "{\"timeUnixNano\":");
        pm__sf_u64_string(w, pm_span_data_event_time_ns(s, i));
        PM__W_LIT(w, ",\"name\":");
        pm__w_json_string(w, pm_span_data_event_name(s, i));
        PM__W_LIT(w, ",\"attributes\":[");
        const char *key = pm_span_data_event_attr_key(s, i);
        if (key) {
            pm__otlp_kv_head(w, key);
            PM__W_KEY(w, "stringValue");
            pm__w_json_string(w, pm_span_data_event_attr_value(s, i));
            PM__W_LIT(w, "}}");
        }
        PM__W_LIT(w, "]}");
    }
    pm__w_char(w, ']');
}

static void pm__otlp_span(pm__writer_t *w, const pm_span_data_t *s)
{
    const pm_trace_context_t *ctx = pm_span_data_context(s);
    const uint8_t *parent = pm_span_data_parent_id(s);
    unsigned flags = ctx->flags | PM__OTLP_HAS_IS_REMOTE;
    if (pm_span_data_parent_remote(s)) flags |= PM__OTLP_IS_REMOTE;

    PM__W_LIT(w, "{\"traceId\":");
    pm__sf_id(w, ctx->trace_id, sizeof ctx->trace_id);
    PM__W_LIT(w, ",\"spanId\":");
    pm__sf_id(w, ctx->span_id, sizeof ctx->span_id);
    /* A root span's parent_span_id is empty bytes: omitted, as proto3 JSON
     * omits default values. */
    if (!pm__sf_is_zero(parent, 8)) {
        PM__W_LIT(w, ",\"parentSpanId\":");
        pm__sf_id(w, parent, 8);
    }
    PM__W_LIT(w, ",\"flags\":");
    pm__w_u64(w, flags);
    PM__W_LIT(w, ",\"name\":");
    pm__w_json_string(w, pm_span_data_name(s));
    PM__W_LIT(w, ",\"kind\":");
    pm__w_u64(w, pm__sf_kind(s));
    PM__W_LIT(w, ",\"startTimeUnixNano\":");
    pm__sf_u64_string(w, pm_span_data_start_ns(s));
    PM__W_LIT(w, ",\"endTimeUnixNano\":");
    pm__sf_u64_string(w, pm_span_data_end_ns(s));

    PM__W_LIT(w, ",\"attributes\":[");
    size_t na = pm_span_data_attr_count(s);
    for (size_t i = 0; i < na; i++) {
        if (i) pm__w_char(w, ',');
        pm__otlp_attr(w, s, i);
    }
    PM__W_LIT(w, "],\"droppedAttributesCount\":");
    pm__w_u64(w, pm_span_data_dropped_attrs(s));
    pm__otlp_events(w, s);
    PM__W_LIT(w, ",\"droppedEventsCount\":");
    pm__w_u64(w, pm_span_data_dropped_events(s));
    PM__W_LIT(w, ",\"status\":{\"code\":");
    pm__w_u64(w, pm__sf_status(s));
    PM__W_LIT(w, ",\"message\":");
    pm__w_json_string(w, pm_span_data_status_message(s));
    PM__W_LIT(w, "}}");
}

static void pm__format_otlp_json(const pm_span_batch_t *b, pm__writer_t *w)
{
    size_t n = pm_span_batch_count(b);
    /* OTLP: senders should not create envelopes without spans; an empty
     * batch is a request with no ResourceSpans. */
    int any = 0;
    for (size_t i = 0; i < n && !any; i++) any = pm_span_batch_span(b, i) != NULL;
    if (!any) {
        PM__W_LIT(w, "{\"resourceSpans\":[]}\n");
        return;
    }
    PM__W_LIT(w, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    pm__otlp_kv_head(w, "service.name");
    PM__W_KEY(w, "stringValue");
    pm__w_json_string(w, pm_span_batch_service(b));
    PM__W_LIT(w, "}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"libperfmetrics\",\"version\":"
                 "\"" PM_VERSION_STRING "\"},\"spans\":[");
    int first = 1;
    for (size_t i = 0; i < n && !pm__w_failed(w); i++) {
        const pm_span_data_t *s = pm_span_batch_span(b, i);
        if (!s) continue;
        if (!first) pm__w_char(w, ',');
        pm__w_char(w, '\n');
        first = 0;
        pm__otlp_span(w, s);
    }
    PM__W_LIT(w, "\n]}]}]}\n");
}

/* -------------------------------------------------------------- dispatch */

typedef void (*pm__span_format_fn)(const pm_span_batch_t *b, pm__writer_t *w);

static pm__span_format_fn pm__span_format_lookup(pm_span_format_t fmt)
{
    switch (fmt) {
    case PM_SPAN_FORMAT_JSONL:
        return pm__format_jsonl;
    case PM_SPAN_FORMAT_OTLP_JSON:
        return pm__format_otlp_json;
    }
    return NULL; /* a value outside the enum, e.g. from a binding */
}

pm_status_t pm_span_batch_format(const pm_span_batch_t *b, pm_span_format_t fmt, pm_buf_t *buf)
{
    pm__span_format_fn fn = pm__span_format_lookup(fmt);
    if (!b || !buf || !fn) return PM_EINVAL;
    pm__writer_t w;
    pm_status_t st = pm__writer_init_buf(&w, buf);
    if (st != PM_OK) return st;
    fn(b, &w);
    return pm__writer_finish(&w); /* on error, buf keeps its old length */
}
