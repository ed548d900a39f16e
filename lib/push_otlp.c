/* OTLP/HTTP JSON: the metrics writer (an ExportMetricsServiceRequest from a
 * snapshot) and the two destination kinds, metrics and traces.
 *
 * Mapping (doc/push-formats.md): one ResourceMetrics whose resource holds
 * service.name ("perfmetrics", or the destination's service_name label: OTLP
 * spells it with a dot, which label names cannot hold) and the
 * destination's other labels; one ScopeMetrics (scope libperfmetrics and its
 * version); a Metric per family: counters a cumulative monotonic Sum,
 * gauges a Gauge, histograms a cumulative explicit-bucket Histogram with
 * per-bucket (not cumulative) counts, bounds +Inf excluded as OTLP wants.
 * Series labels are data-point attributes (empty values left out, the
 * overflow series as pm_overflow="true"). The proto3 JSON mapping with
 * OTLP's rules: 64-bit integers as decimal strings, enums as numbers, field
 * names in lowerCamelCase, NaN and infinities as "NaN", "Infinity",
 * "-Infinity". */
#include "internal/format_internal.h"
#include "internal/push_encode.h"
#include "internal/push_internal.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------ writer */

static void pm__oj_u64_string(pm__writer_t *w, uint64_t v)
{
    pm__w_char(w, '"');
    pm__w_u64(w, v);
    pm__w_char(w, '"');
}

/* A double field: a JSON number when finite, else proto3 JSON's strings. */
static void pm__oj_double(pm__writer_t *w, double v)
{
    if (isfinite(v))
        pm__w_double(w, v);
    else if (isnan(v))
        PM__W_LIT(w, "\"NaN\"");
    else if (v > 0)
        PM__W_LIT(w, "\"Infinity\"");
    else
        PM__W_LIT(w, "\"-Infinity\"");
}

/* Unix seconds as fixed64 nanoseconds (a string); times before the epoch or
 * unknown are not written by the callers. */
static uint64_t pm__oj_ns(double seconds)
{
    if (!(seconds > 0)) return 0;
    double ns = seconds * 1e9;
    return ns >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)llround(ns);
}

static void pm__oj_attr(pm__writer_t *w, const char *key, const char *value)
{
    PM__W_LIT(w, "{\"key\":");
    pm__w_json_string(w, key);
    PM__W_LIT(w, ",\"value\":{\"stringValue\":");
    pm__w_json_string(w, value);
    PM__W_LIT(w, "}}");
}

/* The resource's attributes after service.name: the view's labels, but
 * service_name, which is service.name itself. */
static void pm__oj_dest_attrs(pm__writer_t *w, const pm__push_view_t *v)
{
    for (size_t i = 0; i < v->nlabels; i++) {
        if (strcmp(v->label_name[i], "service_name") == 0) continue;
        pm__w_char(w, ',');
        pm__oj_attr(w, v->label_name[i], v->label_value[i]);
    }
}

static void pm__oj_point_head(pm__writer_t *w, const pm_snap_family_t *f, const pm_snap_series_t *s,
                              uint64_t now_ns)
{
    PM__W_LIT(w, "{\"attributes\":[");
    if (pm_snap_series_is_overflow(s)) {
        pm__oj_attr(w, "pm_overflow", "true");
    } else {
        size_t nl = pm_snap_family_label_count(f);
        int first = 1;
        for (size_t i = 0; i < nl; i++) {
            const char *val = pm_snap_series_label_value(s, i);
            if (!val[0]) continue;
            if (!first) pm__w_char(w, ',');
            first = 0;
            pm__oj_attr(w, pm_snap_family_label_name(f, i), val);
        }
    }
    pm__w_char(w, ']');
    uint64_t start = pm__oj_ns(pm_snap_series_created(s));
    if (start) {
        PM__W_LIT(w, ",\"startTimeUnixNano\":");
        pm__oj_u64_string(w, start);
    }
    PM__W_LIT(w, ",\"timeUnixNano\":");
    pm__oj_u64_string(w, now_ns);
}

static void pm__oj_histogram_point(pm__writer_t *w, const pm_snap_family_t *f,
                                   const pm_snap_series_t *s)
{
    uint64_t count = pm_snap_series_count(s);
    PM__W_LIT(w, ",\"count\":");
    pm__oj_u64_string(w, count);
    PM__W_LIT(w, ",\"sum\":");
    pm__oj_double(w, pm_snap_series_sum(s));
    PM__W_LIT(w, ",\"bucketCounts\":[");
    size_t nb = pm_snap_family_bucket_count(f);
    uint64_t prev = 0;
    for (size_t b = 0; b <= nb; b++) {
        uint64_t cum = b == nb ? count : pm_snap_series_bucket_cumulative(s, b);
        if (b) pm__w_char(w, ',');
        pm__oj_u64_string(w, cum - prev);
        prev = cum;
    }
    PM__W_LIT(w, "],\"explicitBounds\":[");
    for (size_t b = 0; b < nb; b++) {
        if (b) pm__w_char(w, ',');
        pm__oj_double(w, pm_snap_family_bucket_bound(f, b));
    }
    pm__w_char(w, ']');
    /* min and max are optional: absent without observations. */
    if (count) {
        PM__W_LIT(w, ",\"min\":");
        pm__oj_double(w, pm_snap_series_min(s));
        PM__W_LIT(w, ",\"max\":");
        pm__oj_double(w, pm_snap_series_max(s));
    }
}

static void pm__oj_metric(pm__writer_t *w, const pm_snap_family_t *f, uint64_t now_ns)
{
    pm_type_t type = pm_snap_family_type(f);
    PM__W_LIT(w, "{\"name\":");
    pm__w_json_string(w, pm_snap_family_name(f));
    PM__W_LIT(w, ",\"description\":");
    pm__w_json_string(w, pm_snap_family_help(f));
    PM__W_LIT(w, ",\"unit\":");
    pm__w_json_string(w, pm_snap_family_unit(f));
    switch (type) {
    case PM_TYPE_COUNTER:
        PM__W_LIT(w, ",\"sum\":{\"dataPoints\":[");
        break;
    case PM_TYPE_GAUGE:
        PM__W_LIT(w, ",\"gauge\":{\"dataPoints\":[");
        break;
    default:
        PM__W_LIT(w, ",\"histogram\":{\"dataPoints\":[");
        break;
    }
    size_t ns = pm_snap_family_series_count(f);
    for (size_t i = 0; i < ns && !pm__w_failed(w); i++) {
        const pm_snap_series_t *s = pm_snap_family_series(f, i);
        if (i) pm__w_char(w, ',');
        pm__oj_point_head(w, f, s, now_ns);
        if (type == PM_TYPE_HISTOGRAM) {
            pm__oj_histogram_point(w, f, s);
        } else {
            PM__W_LIT(w, ",\"asDouble\":");
            pm__oj_double(w, pm_snap_series_value(s));
        }
        pm__w_char(w, '}');
    }
    /* AGGREGATION_TEMPORALITY_CUMULATIVE = 2 */
    switch (type) {
    case PM_TYPE_COUNTER:
        PM__W_LIT(w, "],\"aggregationTemporality\":2,\"isMonotonic\":true}}");
        break;
    case PM_TYPE_GAUGE:
        PM__W_LIT(w, "]}}");
        break;
    default:
        PM__W_LIT(w, "],\"aggregationTemporality\":2}}");
        break;
    }
}

static const char *pm__oj_service(const pm__push_view_t *v)
{
    for (size_t i = 0; i < v->nlabels; i++)
        if (strcmp(v->label_name[i], "service_name") == 0) return v->label_value[i];
    return "perfmetrics";
}

pm_status_t pm__otlp_metrics_encode(const pm_snapshot_t *s, const pm__push_view_t *v, pm_buf_t *out)
{
    if (!s || !v || !out) return PM_EINVAL;
    pm__writer_t w;
    pm_status_t st = pm__writer_init_buf(&w, out);
    if (st != PM_OK) return st;
    uint64_t now_ns = pm__oj_ns(pm_snapshot_time(s));
    PM__W_LIT(&w, "{\"resourceMetrics\":[{\"resource\":{\"attributes\":[");
    pm__oj_attr(&w, "service.name", pm__oj_service(v));
    pm__oj_dest_attrs(&w, v);
    PM__W_LIT(&w, "]},\"scopeMetrics\":[{\"scope\":{\"name\":\"libperfmetrics\",\"version\":\"" PM_VERSION_STRING
                  "\"},\"metrics\":[");
    size_t nf = pm_snapshot_family_count(s);
    int first = 1;
    for (size_t i = 0; i < nf && !pm__w_failed(&w); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!f || (v->wants && !v->wants(v->wants_ctx, pm_snap_family_name(f)))) continue;
        if (!first) pm__w_char(&w, ',');
        pm__w_char(&w, '\n');
        first = 0;
        pm__oj_metric(&w, f, now_ns);
    }
    PM__W_LIT(&w, "\n]}]}]}\n");
    return pm__writer_finish(&w);
}

/* The span batch body with the destination's labels added to its resource:
 * pm_span_batch_format writes the resource as
 *   {"resourceSpans":[{"resource":{"attributes":[<service.name>]},"scopeSpans":...
 * and the first `]},"scopeSpans"` in it closes that list (inside a JSON
 * string every quote is escaped, so the sequence cannot occur there). The
 * attributes go in before it. A batch without spans has no resource: sent as
 * is. The tracer's service stays service.name: a service_name label is not
 * added. */
pm_status_t pm__otlp_traces_body(const pm_span_batch_t *b, const pm__push_view_t *v, pm_buf_t *out)
{
    size_t start = out->len;
    pm_status_t st = pm_span_batch_format(b, PM_SPAN_FORMAT_OTLP_JSON, out);
    if (st != PM_OK || v->nlabels == 0 || !out->data) return st;
    static const char mark[] = "]},\"scopeSpans\"";
    char *at = strstr(out->data + start, mark);
    if (!at) return PM_OK;
    pm_buf_t *attrs = NULL;
    if ((st = pm_buf_new(&attrs)) != PM_OK) return st;
    pm__writer_t w;
    if ((st = pm__writer_init_buf(&w, attrs)) == PM_OK) {
        pm__oj_dest_attrs(&w, v);
        st = pm__writer_finish(&w);
    }
    size_t pos = (size_t)(at - out->data), n = attrs->len;
    if (st == PM_OK && n) st = pm__buf_reserve(out, out->len, n);
    if (st == PM_OK && n) {
        memmove(out->data + pos + n, out->data + pos, out->len - pos + 1);
        memcpy(out->data + pos, attrs->data, n);
        out->len += n;
    }
    pm_buf_free(attrs);
    return st;
}

/* ------------------------------------------------------------ the kinds */

typedef struct pm__otlp_state {
    pm__push_view_t view;
} pm__otlp_state;

static void pm__otlp_fini(void *state)
{
    pm__otlp_state *os = state;
    if (!os) return;
    pm__push_view_fini(&os->view);
    free(os);
}

static pm_status_t pm__otlp_send(pm_push *p, pm_buf_t *body)
{
    const char *enc = NULL;
#if PM_HAVE_ZLIB
    if (pm__push_opts_gzip(pm__push_opts(p))) {
        pm_buf_t *gz = NULL;
        pm_status_t st = pm_buf_new(&gz);
        if (st == PM_OK) st = pm_buf_gzip(body, gz);
        if (st != PM_OK) {
            pm_buf_free(gz);
            pm_buf_free(body);
            return st;
        }
        pm_buf_free(body);
        body = gz;
        enc = "gzip";
    }
#endif
    return pm__push_enqueue(p, "POST", NULL, body, "application/json", enc, NULL);
}

static pm_status_t pm__otlp_metrics_export(const pm_snapshot_t *s, pm_push *p)
{
    pm__otlp_state *os = pm__push_state(p);
    pm_buf_t *body = NULL;
    pm_status_t st = pm_buf_new(&body);
    if (st == PM_OK) st = pm__otlp_metrics_encode(s, &os->view, body);
    if (st != PM_OK) {
        pm_buf_free(body);
        return st;
    }
    return pm__otlp_send(p, body);
}

static pm_status_t pm__otlp_traces_export(const pm_span_batch_t *b, pm_push *p)
{
    pm__otlp_state *os = pm__push_state(p);
    if (pm_span_batch_count(b) == 0) return PM_OK;
    pm_buf_t *body = NULL;
    pm_status_t st = pm_buf_new(&body);
    if (st == PM_OK) st = pm__otlp_traces_body(b, &os->view, body);
    if (st != PM_OK) {
        pm_buf_free(body);
        return st;
    }
    return pm__otlp_send(p, body);
}

static pm_status_t pm__otlp_new(const char *kind, const char *url, const pm_push_opts_t *o,
                                pm_push **out)
{
    pm__otlp_state *os = calloc(1, sizeof *os);
    if (!os) return PM_ENOMEM;
    pm_status_t st = pm__push_http_new(kind, url, o, os, pm__otlp_fini, out);
    if (st != PM_OK) return st;
    st = pm__push_view_init(&os->view, *out);
    if (st != PM_OK) {
        pm__push_discard(*out);
        *out = NULL;
    }
    return st;
}

pm_status_t pm_push_otlp_metrics_new(pm_registry_t *r, const char *url, const pm_push_opts_t *o,
                                     pm_push_t **out)
{
    if (out) *out = NULL;
    if (!r || !url || !out) return PM_EINVAL;
    pm_push *p = NULL;
    pm_status_t st = pm__otlp_new("otlp_metrics", url, o, &p);
    if (st != PM_OK) return st;
    st = pm__push_attach_exporter(p, r, pm__otlp_metrics_export);
    if (st != PM_OK) {
        pm__push_discard(p);
        return st;
    }
    *out = p;
    return PM_OK;
}

pm_status_t pm_push_otlp_traces_new(pm_tracer_t *t, const char *url, const pm_push_opts_t *o,
                                    pm_push_t **out)
{
    if (out) *out = NULL;
    if (!t || !url || !out) return PM_EINVAL;
    pm_push *p = NULL;
    pm_status_t st = pm__otlp_new("otlp_traces", url, o, &p);
    if (st != PM_OK) return st;
    st = pm__push_attach_tracer(p, t, pm__otlp_traces_export);
    if (st != PM_OK) {
        pm__push_discard(p);
        return st;
    }
    *out = p;
    return PM_OK;
}
