/* libperfmetrics — snapshots: an immutable, reference-counted view of every
 * family and series of a registry at one moment. Formatters, exporters and
 * collectors' output are all read through it; it never touches live state.
 *
 * Pointers returned by the accessors below are borrowed from the snapshot and
 * valid until its last reference is dropped. All accessors are NULL-safe and
 * index-checked: a NULL or out-of-range argument gives NULL, 0 or NaN as stated.
 * Thread-safety: a snapshot may be read from any number of threads at once. */
#ifndef PERFMETRICS_SNAPSHOT_H
#define PERFMETRICS_SNAPSHOT_H

#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_snapshot pm_snapshot_t;
typedef struct pm_snap_family pm_snap_family_t;
typedef struct pm_snap_series pm_snap_series_t;
typedef struct pm_hdata pm_hdata_t;

/* Takes a snapshot: sums every series' cells, runs collectors and callback
 * gauges, adds the library's own metrics, and applies TTLs. Recording threads
 * are never blocked. Release with pm_snapshot_release.
 * Errors: PM_EINVAL, PM_ESTATE (called from a collector, exporter or callback
 * gauge), PM_ENOMEM (no series, family or count changes; only idle-time
 * bookkeeping for TTLs and deferred frees may have run).
 * A collector that fails is counted and its families left out (PM_OK overall).
 * Thread-safety: any thread; snapshots of one registry are serialised. */
PM_API pm_status_t pm_snapshot_new(pm_registry_t *r, pm_snapshot_t **out);

/* Adds a reference (for handing the snapshot to another thread). Returns s.
 * Thread-safety: any thread, lock-free. */
PM_API pm_snapshot_t *pm_snapshot_ref(pm_snapshot_t *s);

/* Drops a reference; the last one frees the snapshot. NULL is a no-op.
 * Thread-safety: any thread. */
PM_API void pm_snapshot_release(pm_snapshot_t *s);

/* Wall-clock time of the snapshot, seconds since the Unix epoch; NaN for NULL. */
PM_API double pm_snapshot_time(const pm_snapshot_t *s);

/* Number of families (the library's own included, sorted by name); 0 for NULL. */
PM_API size_t pm_snapshot_family_count(const pm_snapshot_t *s);
/* The i-th family, or NULL. */
PM_API const pm_snap_family_t *pm_snapshot_family(const pm_snapshot_t *s, size_t i);

/* Family accessors. Strings are never NULL for a valid family ("" when unset). */
PM_API const char *pm_snap_family_name(const pm_snap_family_t *f);
PM_API const char *pm_snap_family_help(const pm_snap_family_t *f);
PM_API const char *pm_snap_family_unit(const pm_snap_family_t *f);
/* The type, or 0 for NULL. */
PM_API pm_type_t pm_snap_family_type(const pm_snap_family_t *f);
PM_API size_t pm_snap_family_label_count(const pm_snap_family_t *f);
PM_API const char *pm_snap_family_label_name(const pm_snap_family_t *f, size_t i);
/* Histograms: the exported upper bounds (without +Inf). */
PM_API size_t pm_snap_family_bucket_count(const pm_snap_family_t *f);
PM_API double pm_snap_family_bucket_bound(const pm_snap_family_t *f, size_t i);
PM_API size_t pm_snap_family_series_count(const pm_snap_family_t *f);
PM_API const pm_snap_series_t *pm_snap_family_series(const pm_snap_family_t *f, size_t i);

/* Series accessors. Label values follow the family's label names; an overflow
 * series has "" for every value and pm_snap_series_is_overflow() == 1. */
PM_API const char *pm_snap_series_label_value(const pm_snap_series_t *s, size_t i);
PM_API int pm_snap_series_is_overflow(const pm_snap_series_t *s);
/* Creation time, seconds since the Unix epoch (OpenMetrics _created); NaN if unknown. */
PM_API double pm_snap_series_created(const pm_snap_series_t *s);
/* Counter or gauge value; for a histogram, its sum. NaN for NULL. */
PM_API double pm_snap_series_value(const pm_snap_series_t *s);

/* Histogram series: count, sum, min, max, mean, standard deviation.
 * min/max/mean/stddev are NaN when count is 0. stddev is estimated from the
 * buckets (each value taken as its bucket's representative). */
PM_API uint64_t pm_snap_series_count(const pm_snap_series_t *s);
PM_API double pm_snap_series_sum(const pm_snap_series_t *s);
PM_API double pm_snap_series_min(const pm_snap_series_t *s);
PM_API double pm_snap_series_max(const pm_snap_series_t *s);
PM_API double pm_snap_series_mean(const pm_snap_series_t *s);
PM_API double pm_snap_series_stddev(const pm_snap_series_t *s);
/* Cumulative count of values <= the family's i-th bucket bound; i equal to the
 * bound count gives the +Inf bucket (= count). 0 when out of range. */
PM_API uint64_t pm_snap_series_bucket_cumulative(const pm_snap_series_t *s, size_t i);
/* Quantile q in [0,1] (nearest rank) with relative error <= 1/129 for values
 * inside the family's range. Errors: PM_EINVAL (NULL, q outside [0,1] or NaN,
 * not a histogram), PM_ENOENT (no observations). */
PM_API pm_status_t pm_snap_series_quantile(const pm_snap_series_t *s, double q, double *out);
/* The series' full histogram data, for merging; NULL if not a histogram.
 * Borrowed from the snapshot (copy it with pm_hdata_clone to keep or merge). */
PM_API const pm_hdata_t *pm_snap_series_hdata(const pm_snap_series_t *s);

/* The exemplar of a counter series (bucket 0) or of a histogram series'
 * export bucket `bucket` (0..bucket count; the bucket count itself is +Inf;
 * the exemplar's value is <= that bucket's bound and > the previous one's):
 * its trace context (trace and span id, flags = sampled) into *ctx, the
 * recorded value into *value and its wall-clock time, seconds since the Unix
 * epoch, into *unix_seconds. Each output may be NULL; on any error the
 * non-NULL ones are set to an all-zero context and NaN.
 * Errors: PM_EINVAL (s NULL), PM_ERANGE (bucket out of range: above the
 * bucket count, or not 0 for a counter or gauge), PM_ENOENT (no exemplar:
 * none recorded, exemplars off, or a gauge).
 * Thread-safety: any thread (the snapshot is immutable). */
PM_API pm_status_t pm_snap_series_exemplar(const pm_snap_series_t *s, size_t bucket,
                                           struct pm_trace_context *ctx, double *value,
                                           double *unix_seconds);

/* ---- histogram data: mergeable, serialisable, owned by the caller ---- */

/* Creates empty histogram data for range [lowest, highest] (as
 * pm_family_opts_set_range). Release with pm_hdata_free.
 * Errors: PM_EINVAL, PM_ERANGE, PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_hdata_new(double lowest, double highest, pm_hdata_t **out);
/* Frees; NULL is a no-op. */
PM_API void pm_hdata_free(pm_hdata_t *h);
/* Deep copy. Errors: PM_EINVAL, PM_ENOMEM. */
PM_API pm_status_t pm_hdata_clone(const pm_hdata_t *h, pm_hdata_t **out);
/* Adds one value (not thread-safe: this is a plain data object). Errors: PM_EINVAL (NaN or NULL). */
PM_API pm_status_t pm_hdata_record(pm_hdata_t *h, double v);
/* dst += src. Both must have the same range, and the merged count must fit
 * in 64 bits (PM_ERANGE otherwise); the error bound is kept. On error dst is
 * unchanged. Errors: PM_EINVAL, PM_ERANGE, PM_ENOMEM. */
PM_API pm_status_t pm_hdata_merge(pm_hdata_t *dst, const pm_hdata_t *src);
/* As pm_snap_series_quantile. */
PM_API pm_status_t pm_hdata_quantile(const pm_hdata_t *h, double q, double *out);
/* Count, sum, min, max; NaN/0 as for series. */
PM_API uint64_t pm_hdata_count(const pm_hdata_t *h);
PM_API double pm_hdata_sum(const pm_hdata_t *h);
PM_API double pm_hdata_min(const pm_hdata_t *h);
PM_API double pm_hdata_max(const pm_hdata_t *h);
/* Encodes into a portable byte string (documented in doc/histograms.md) so
 * another process can decode and merge. *out is released with pm_free.
 * Errors: PM_EINVAL, PM_ENOMEM. */
PM_API pm_status_t pm_hdata_encode(const pm_hdata_t *h, unsigned char **out, size_t *len);
/* Decodes what pm_hdata_encode produced; rejects malformed input with
 * PM_EPARSE and never reads past len. Errors: PM_EINVAL, PM_EPARSE, PM_ENOMEM. */
PM_API pm_status_t pm_hdata_decode(const unsigned char *data, size_t len, pm_hdata_t **out);

#ifdef __cplusplus
}
#endif
#endif
