/* libperfmetrics — registries, metric families and their series:
 * counters, gauges and histograms.
 *
 * Model: a registry holds families; a family has a name, help, unit, type and
 * label names; each tuple of label values is a series with its own handle, so
 * a hot path records with no look-up at all. */
#ifndef PERFMETRICS_METRICS_H
#define PERFMETRICS_METRICS_H

#include <perfmetrics/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_registry pm_registry_t;
typedef struct pm_registry_opts pm_registry_opts_t;
typedef struct pm_family pm_family_t;
typedef struct pm_family_opts pm_family_opts_t;
typedef struct pm_counter pm_counter_t;
typedef struct pm_gauge pm_gauge_t;
typedef struct pm_histogram pm_histogram_t;
/* A W3C trace context (pm_trace_context_t, defined in <perfmetrics/spans.h>),
 * named here by its struct tag so this header stands alone. */
struct pm_trace_context;

typedef enum pm_type {
    PM_TYPE_COUNTER = 1,
    PM_TYPE_GAUGE = 2,
    PM_TYPE_HISTOGRAM = 3
} pm_type_t;

/* ---------------------------------------------------------------- registry */

/* Creates registry options holding the defaults. Release with pm_registry_opts_free.
 * Errors: PM_EINVAL (out NULL), PM_ENOMEM. On error *out is NULL.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_registry_opts_new(pm_registry_opts_t **out);

/* Frees options; NULL is a no-op. Thread-safety: not concurrently with other uses of o. */
PM_API void pm_registry_opts_free(pm_registry_opts_t *o);

/* Sets the allocator for everything the registry allocates (the registry
 * itself included, and the snapshots taken from it). alloc and free must both
 * be non-NULL, or both NULL to restore malloc/free. `user` is passed through.
 * Errors: PM_EINVAL. Thread-safety: not concurrently with other uses of o. */
PM_API pm_status_t pm_registry_opts_set_allocator(pm_registry_opts_t *o, pm_alloc_fn alloc,
                                                  pm_free_fn free_fn, void *user);

/* Sets the number of stripes (cells per counter series, 1..64; rounded up to a
 * power of two). Default: the CPU count rounded up to a power of two, at least 2.
 * More stripes means less contention and more memory (16 B per stripe per counter).
 * Errors: PM_EINVAL, PM_ERANGE. Thread-safety: not concurrently with other uses of o. */
PM_API pm_status_t pm_registry_opts_set_stripes(pm_registry_opts_t *o, unsigned stripes);

/* Turns the library's own metrics (perfmetrics_* families) on or off in every
 * snapshot of the registry. Default: on.
 * Errors: PM_EINVAL. Thread-safety: not concurrently with other uses of o. */
PM_API pm_status_t pm_registry_opts_set_self_metrics(pm_registry_opts_t *o, int enabled);

/* Monotonic clock in nanoseconds used by the registry for TTLs and
 * snapshot timing. */
typedef uint64_t (*pm_clock_fn)(void *user);

/* Sets the clock the registry uses for TTLs (and snapshot timing); NULL
 * restores the default (CLOCK_MONOTONIC). Lets tests and hosts with their own
 * notion of time drive expiry without sleeping. fn must be thread-safe and
 * non-decreasing. Errors: PM_EINVAL. Thread-safety: not concurrently with other uses of o. */
PM_API pm_status_t pm_registry_opts_set_clock(pm_registry_opts_t *o, pm_clock_fn fn, void *user);

/* Creates an independent registry. opts may be NULL (defaults); it is only read
 * during the call. Release with pm_registry_free.
 * Errors: PM_EINVAL (out NULL), PM_ENOMEM. On error *out is NULL and nothing is allocated.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_registry_new(const pm_registry_opts_t *opts, pm_registry_t **out);

/* Frees a registry and everything in it: families, series, collectors,
 * exporters (a running export thread is stopped first). Every handle taken
 * from it becomes invalid. NULL is a no-op. Snapshots already taken stay valid.
 * Thread-safety: no other thread may use the registry or its handles during or after the call. */
PM_API void pm_registry_free(pm_registry_t *r);

/* Returns the process-wide default registry, created with default options on
 * first use; NULL only if that creation failed (out of memory). It lives until
 * the process exits: never pass it to pm_registry_free. Libraries embedded in other programs should prefer their
 * own registry, so that two users of one process do not share state.
 * Thread-safety: any thread. */
PM_API pm_registry_t *pm_registry_default(void);

/* Runs deferred work now: frees series removed earlier once no reader can
 * still see them, adds cell copies for histograms recorded from new stripes.
 * Snapshots and registration calls do this too; a host that does neither for
 * long periods may call it from its own loop. Errors: PM_EINVAL.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_registry_maintain(pm_registry_t *r);

/* ---------------------------------------------------------------- threads */

/* Gives the calling thread its own shard of counter cells in registry r, so
 * its counter records become a plain load and store (no lock prefix, no
 * shared cache line). Optional: without it, threads use striped atomic cells.
 * A thread may be attached to one registry at a time; the shard is folded
 * back into the registry (nothing is lost) by pm_thread_detach or when the
 * thread exits. Memory: 16 bytes per counter slot of the registry per attached
 * thread, allocated with malloc (a shard may outlive its registry until its
 * thread exits). Attaching twice to the same registry gives PM_OK.
 * Errors: PM_EINVAL, PM_ESTATE (attached to another registry), PM_ENOMEM.
 * Thread-safety: any thread, for itself. */
PM_API pm_status_t pm_thread_attach(pm_registry_t *r);

/* Folds the calling thread's shard into r and frees it. PM_OK if the thread
 * was not attached to r. Errors: PM_EINVAL. Thread-safety: any thread, for itself. */
PM_API pm_status_t pm_thread_detach(pm_registry_t *r);

/* ---------------------------------------------------------------- families */

/* Creates family options with defaults: no labels, no unit, max_series 10000,
 * no TTL, default histogram range [1e-9, 1e4] and default buckets.
 * Errors: PM_EINVAL, PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_family_opts_new(pm_family_opts_t **out);

/* Frees options; NULL is a no-op. */
PM_API void pm_family_opts_free(pm_family_opts_t *o);

/* Sets the unit (OpenMetrics; [a-zA-Z0-9_]+, e.g. "seconds", "bytes"). When
 * set, the family name must end with "_" unit (OpenMetrics rule). The string is copied.
 * NULL or "" clears it. Errors: PM_EINVAL, PM_EBADNAME, PM_ENOMEM. */
PM_API pm_status_t pm_family_opts_set_unit(pm_family_opts_t *o, const char *unit);

/* Sets the label names (each [a-zA-Z_][a-zA-Z0-9_]*, at most 256 bytes, not
 * starting with "__", not "le", "quantile" or "pm_overflow", no duplicates;
 * at most 32 names). The strings are copied.
 * Errors: PM_EINVAL, PM_EBADLABEL, PM_ERANGE (too many), PM_ENOMEM; on error o is unchanged. */
PM_API pm_status_t pm_family_opts_set_labels(pm_family_opts_t *o, const char *const *names,
                                             size_t n);

/* Sets the cardinality limit: at most `max_series` series (1..2^30); further
 * label tuples land in the family's overflow series, shown with the label
 * pm_overflow="true", and are counted in perfmetrics_series_refused_total.
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_family_opts_set_max_series(pm_family_opts_t *o, size_t max_series);

/* Sets a time-to-live: a series whose value did not change for `seconds`
 * (checked when snapshots are taken; a gauge set counts as a change) is
 * removed. A handle held across expiry keeps recording into the detached
 * series, which no export shows: get the handle again (or use the labeled
 * one-call forms) for series that may expire. 0 disables (default).
 * Errors: PM_EINVAL, PM_ERANGE (negative or not finite). */
PM_API pm_status_t pm_family_opts_set_ttl(pm_family_opts_t *o, double seconds);

/* Histograms: sets the exported bucket upper bounds (strictly increasing,
 * finite, 1..256 of them; +Inf is implied). Counts per bound are exact.
 * Default: 0.005 0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 10 (Prometheus's).
 * The array is copied. Errors: PM_EINVAL, PM_ERANGE, PM_ENOMEM. */
PM_API pm_status_t pm_family_opts_set_buckets(pm_family_opts_t *o, const double *bounds,
                                              size_t n);

/* Histograms: sets the range [lowest, highest] (0 < lowest < highest, finite)
 * in which quantiles carry the guaranteed relative error (at most 1/129, about
 * 0.78%). Values outside it are still counted, summed and bounded by min/max.
 * Memory is 64 buckets of 8 bytes per doubling of highest/lowest.
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_family_opts_set_range(pm_family_opts_t *o, double lowest, double highest);

/* Turns exemplars on (enabled != 0) or off for the family's series. An
 * exemplar is the trace context, value and time of one recent record made
 * while a sampled span was current (or given with an explicit context): one
 * per export bucket of a histogram series (the latest wins), one per counter
 * series; shown in OpenMetrics and JSON output (doc/formats.md).
 * Default: on for histograms (48 bytes per bucket, bounds + 1 of them, per
 * series), off for counters (48 bytes per series, which would take a default
 * counter series past 200 bytes). Ignored for gauges.
 * Errors: PM_EINVAL (o NULL). Thread-safety: not concurrently with other uses of o. */
PM_API pm_status_t pm_family_opts_set_exemplars(pm_family_opts_t *o, int enabled);

/* Registers a family (or finds the identical one already registered: same
 * type, help, unit, labels and options give PM_OK and that family). The name is
 * [a-zA-Z_:][a-zA-Z0-9_:]*; counters must not end in "_total" (it is added on
 * output), and names starting "perfmetrics_" are reserved. Strings are copied.
 * opts may be NULL; it is only read during the call. The family is borrowed:
 * it lives until the registry is freed. Help is UTF-8 of at most 4096 bytes.
 * Errors: PM_EINVAL, PM_EBADNAME, PM_EUTF8 (help), PM_EEXIST (same name with
 * another definition, or a name whose samples would clash with another
 * family's, e.g. a gauge "x_total" beside a counter "x"), PM_ENOMEM.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_family_new(pm_registry_t *r, pm_type_t type, const char *name,
                                 const char *help, const pm_family_opts_t *opts,
                                 pm_family_t **out);

/* Removes the series with these label values. Threads that hold its handle may
 * keep recording into it safely: the series is detached (no export shows it)
 * and freed once the last handle is released and no look-up can still see it.
 * Errors: PM_EINVAL, PM_ETYPE (callback gauge), PM_ELABELCOUNT, PM_EUTF8,
 * PM_ERANGE (as pm_counter_get), PM_ENOENT. Thread-safety: any thread. */
PM_API pm_status_t pm_family_remove(pm_family_t *f, const char *const *values, size_t n);

/* Removes every series of the family (the overflow series is reset to zero),
 * with the same safety as pm_family_remove. Errors: PM_EINVAL. Thread-safety: any thread. */
PM_API pm_status_t pm_family_clear(pm_family_t *f);

/* Returns the number of live series of the family, overflow series included;
 * 0 for NULL. Thread-safety: any thread. */
PM_API size_t pm_family_series_count(const pm_family_t *f);

/* ---------------------------------------------------------------- counters */

/* Returns the counter series for these label values, creating it if needed.
 * n must equal the family's label count (values may be NULL when n is 0);
 * values are any UTF-8 and are copied. The handle holds a reference: it stays
 * valid until pm_counter_release, or until the registry is freed.
 * Past the cardinality limit the overflow series is returned (PM_OK).
 * Errors: PM_EINVAL, PM_ETYPE (other type, or a callback gauge),
 * PM_ELABELCOUNT, PM_EUTF8, PM_ERANGE (a value over 4096 bytes), PM_ENOMEM;
 * *out NULL on error.
 * Thread-safety: any thread; the look-up of an existing series takes no lock. */
PM_API pm_status_t pm_counter_get(pm_family_t *f, const char *const *values, size_t n,
                                  pm_counter_t **out);

/* Drops the reference pm_counter_get gave. NULL is a no-op. The handle must
 * not be used afterwards by this caller. Thread-safety: any thread. */
PM_API void pm_counter_release(pm_counter_t *c);

/* Convenience: registers a counter family without labels and returns its one
 * series (borrowed; valid until the registry is freed). Same errors as
 * pm_family_new. Thread-safety: any thread. */
PM_API pm_status_t pm_counter_new(pm_registry_t *r, const char *name, const char *help,
                                  pm_counter_t **out);

/* Adds 1. NULL is ignored.
 * Thread-safety: any thread, lock-free, no allocation, no syscall. */
PM_API void pm_counter_inc(pm_counter_t *c);

/* Adds an integer amount. NULL is ignored.
 * Thread-safety: any thread, lock-free, no allocation, no syscall. */
PM_API void pm_counter_add_u64(pm_counter_t *c, uint64_t delta);

/* Adds `delta`, which must be finite and >= 0; a bad delta is dropped and
 * counted in perfmetrics_values_rejected_total. NULL is ignored.
 * Thread-safety: any thread, lock-free, no allocation, no syscall. */
PM_API void pm_counter_add(pm_counter_t *c, double delta);

/* As pm_counter_add, with an explicit trace context for the exemplar
 * instead of the thread's current span: when ctx is sampled (flags bit 0)
 * with non-zero trace and span ids and the family has exemplars, the
 * series' exemplar becomes (ctx, delta, now). ctx NULL: exactly pm_counter_add.
 * Thread-safety: any thread, lock-free, no allocation, no syscall.
 * Ownership: ctx is borrowed for the call (its ids are copied). */
PM_API void pm_counter_add_exemplar(pm_counter_t *c, double delta,
                                    const struct pm_trace_context *ctx);

/* One call: looks up (or creates) the series and adds delta.
 * Errors: those of pm_counter_get, and PM_ERANGE for a negative or non-finite delta.
 * Thread-safety: any thread; no lock when the series exists. */
PM_API pm_status_t pm_counter_add_labeled(pm_family_t *f, const char *const *values, size_t n,
                                          double delta);

/* Reads the current value (sum over stripes and thread shards). Not a
 * snapshot: for tests and hosts that read one value. Returns 0 for NULL.
 * Thread-safety: any thread; takes the registry lock briefly. */
PM_API double pm_counter_value(const pm_counter_t *c);

/* ---------------------------------------------------------------- gauges */

/* As pm_counter_get, for gauges. */
PM_API pm_status_t pm_gauge_get(pm_family_t *f, const char *const *values, size_t n,
                                pm_gauge_t **out);
/* As pm_counter_release, for gauges. */
PM_API void pm_gauge_release(pm_gauge_t *g);
/* As pm_counter_new, for gauges. */
PM_API pm_status_t pm_gauge_new(pm_registry_t *r, const char *name, const char *help,
                                pm_gauge_t **out);

/* Sets the value (any double, NaN and infinities included). NULL is ignored.
 * Thread-safety: any thread, lock-free, no allocation, no syscall. */
PM_API void pm_gauge_set(pm_gauge_t *g, double v);
/* Adds delta (may be negative). NULL is ignored.
 * Thread-safety: any thread, lock-free, no allocation, no syscall. */
PM_API void pm_gauge_add(pm_gauge_t *g, double delta);
/* Subtracts delta. NULL is ignored.
 * Thread-safety: any thread, lock-free, no allocation, no syscall. */
PM_API void pm_gauge_sub(pm_gauge_t *g, double delta);
/* Reads the current value; 0 for NULL. Thread-safety: any thread, lock-free
 * (except for a gauge a cell block bound, pm_cells_gauge: then it takes the
 * registry lock, as the block list may change meanwhile). */
PM_API double pm_gauge_value(const pm_gauge_t *g);

/* One call: looks up (or creates) the series and sets it.
 * Errors: those of pm_gauge_get. Thread-safety: any thread; no lock when the series exists. */
PM_API pm_status_t pm_gauge_set_labeled(pm_family_t *f, const char *const *values, size_t n,
                                        double v);

/* Callback gauge: the value is fn(user) read at snapshot time (on the thread
 * taking the snapshot). Registers a gauge family without labels.
 * fn must be thread-safe with respect to the host's own state; it must not
 * take snapshots or export (registration and recording are allowed).
 * A callback gauge is never shared: registering its name again gives PM_EEXIST.
 * Errors: as pm_family_new, PM_EINVAL for NULL fn.
 * Thread-safety: any thread. */
typedef double (*pm_gauge_fn)(void *user);
PM_API pm_status_t pm_gauge_callback_new(pm_registry_t *r, const char *name, const char *help,
                                         pm_gauge_fn fn, void *user);

/* ---------------------------------------------------------------- histograms */

/* As pm_counter_get, for histograms. */
PM_API pm_status_t pm_histogram_get(pm_family_t *f, const char *const *values, size_t n,
                                    pm_histogram_t **out);
/* As pm_counter_release, for histograms. */
PM_API void pm_histogram_release(pm_histogram_t *h);
/* Convenience: a histogram family without labels, default buckets and range. */
PM_API pm_status_t pm_histogram_new(pm_registry_t *r, const char *name, const char *help,
                                    pm_histogram_t **out);

/* Records one value (in the family's unit). NaN is dropped and counted in
 * perfmetrics_values_rejected_total. NULL is ignored.
 * Thread-safety: any thread, lock-free, no allocation, no syscall. */
PM_API void pm_histogram_observe(pm_histogram_t *h, double v);

/* Records a duration given in integer nanoseconds into a histogram measured in
 * seconds (v = ns / 1e9, correctly rounded). NULL is ignored.
 * Thread-safety: any thread, lock-free, no allocation, no syscall. */
PM_API void pm_histogram_observe_ns(pm_histogram_t *h, uint64_t ns);

/* As pm_histogram_observe, with an explicit trace context for the exemplar
 * instead of the thread's current span: when ctx is sampled (flags bit 0)
 * with non-zero trace and span ids and the family has exemplars, the
 * exemplar of the export bucket holding v (the first bound >= v, or +Inf)
 * becomes (ctx, v, now). ctx NULL: exactly pm_histogram_observe.
 * Thread-safety: any thread, lock-free, no allocation, no syscall.
 * Ownership: ctx is borrowed for the call (its ids are copied). */
PM_API void pm_histogram_observe_exemplar(pm_histogram_t *h, double v,
                                          const struct pm_trace_context *ctx);

/* One call: looks up (or creates) the series and records v.
 * Errors: those of pm_histogram_get, PM_ERANGE for NaN. */
PM_API pm_status_t pm_histogram_observe_labeled(pm_family_t *f, const char *const *values,
                                                size_t n, double v);

#ifdef __cplusplus
}
#endif
#endif
