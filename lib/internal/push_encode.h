/* The pure encoders of the push kinds (lib/push_remote_write.c,
 * lib/push_otlp.c): snapshot in, request body out, no engine involved, so
 * tests/test_push_encode.c checks their bytes directly. */
#ifndef PM_PUSH_ENCODE_H
#define PM_PUSH_ENCODE_H

#include <perfmetrics/format.h>
#include <perfmetrics/snapshot.h>
#include <perfmetrics/spans.h>

#include <stdbool.h>
#include <stddef.h>

/* What of a destination's options an encoder reads: its labels and its
 * prefix filter (wants NULL: every family). */
typedef struct pm__push_view {
    size_t nlabels;
    const char *const *label_name;
    const char *const *label_value;
    bool (*wants)(const void *ctx, const char *family);
    const void *wants_ctx;
} pm__push_view_t;

/* Appends the uncompressed protobuf WriteRequest (prometheus/prompb, remote
 * write 1.0) of snapshot s to out: one TimeSeries per sample, counters as
 * <name>_total, histograms as <name>_bucket{le} (cumulative, +Inf = count),
 * <name>_sum and <name>_count; labels sorted by name in byte order, empty
 * values left out, the view's labels added unless the series has one of the
 * same name; every sample at the snapshot's time (ms). *nseries (may be
 * NULL) receives the number of TimeSeries written. On error out keeps its
 * length. Errors: PM_ENOMEM. */
pm_status_t pm__remote_write_encode(const pm_snapshot_t *s, const pm__push_view_t *v, pm_buf_t *out,
                                    size_t *nseries);

/* Appends the OTLP/HTTP JSON ExportMetricsServiceRequest of snapshot s to
 * out (doc/push-formats.md). Errors: PM_ENOMEM. */
pm_status_t pm__otlp_metrics_encode(const pm_snapshot_t *s, const pm__push_view_t *v,
                                    pm_buf_t *out);

/* Appends span batch b as pm_span_batch_format's OTLP JSON with the view's
 * labels added to the resource's attributes (service_name excepted: the
 * tracer's service is service.name). Errors: as pm_span_batch_format. */
pm_status_t pm__otlp_traces_body(const pm_span_batch_t *b, const pm__push_view_t *v, pm_buf_t *out);

/* The Snappy-compressed remote-write body of s into body (its old contents
 * replaced), through raw (scratch, reused). Errors: PM_ENOMEM. */
pm_status_t pm__remote_write_body(const pm_snapshot_t *s, const pm__push_view_t *v, pm_buf_t *raw,
                                  pm_buf_t *body, size_t *nseries);

/* Kind side (needs the engine): a view of destination p's options, valid
 * while p lives; fini frees its arrays. Errors: PM_ENOMEM. */
struct pm_push;
pm_status_t pm__push_view_init(pm__push_view_t *v, const struct pm_push *p);
void pm__push_view_fini(pm__push_view_t *v);

#endif
