/* libperfmetrics — exporters: host callbacks that receive snapshots, run on
 * demand, from a host-driven tick, or from an optional background thread.
 * A failing or slow exporter never blocks recording; failures are counted in
 * perfmetrics_exporter_failures_total{exporter="name"}. */
#ifndef PERFMETRICS_EXPORT_H
#define PERFMETRICS_EXPORT_H

#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>
#include <perfmetrics/snapshot.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_exporter pm_exporter_t;

/* Exporter callback: receives a borrowed snapshot (take pm_snapshot_ref to keep
 * it). Returns PM_OK, or any error status, which is counted as a failure.
 * Never called concurrently for one exporter. It must not free the registry. */
typedef pm_status_t (*pm_export_fn)(const pm_snapshot_t *s, void *user);

/* Registers an exporter called `name` (label-value text, copied; unique in the
 * registry). `release` (may be NULL) is called with `user` when the exporter is
 * removed or the registry freed, and also when this call fails (ownership of
 * `user` always passes to the library). The exporter is borrowed: it lives until
 * removed or the registry is freed; out may be NULL.
 * Errors: PM_EINVAL, PM_EUTF8 (empty, over 4096 bytes or not UTF-8),
 * PM_EEXIST (name taken), PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_exporter_add(pm_registry_t *r, const char *name, pm_export_fn fn,
                                   void *user, pm_release_fn release, pm_exporter_t **out);

/* Unregisters; waits if the exporter is running on another thread, so after
 * the call it is never called again. NULL is a no-op (PM_OK).
 * Must not be called from inside an exporter callback (PM_ESTATE).
 * Errors: PM_ESTATE. Thread-safety: any thread. */
PM_API pm_status_t pm_exporter_remove(pm_exporter_t *e);

/* Takes one snapshot and passes it to every exporter in registration order.
 * Returns PM_OK even when exporters fail (they are counted);
 * PM_EINVAL / PM_ENOMEM when no snapshot could be taken (when the
 * background thread meets that, it counts it in perfmetrics_export_errors_total);
 * PM_ESTATE from inside a callback.
 * Thread-safety: any thread; concurrent export runs of one registry are serialised. */
PM_API pm_status_t pm_export_now(pm_registry_t *r);

/* Sets the export interval used by pm_export_tick and the background thread
 * (seconds, > 0 and <= 1e9; default 10); a running background thread picks it
 * up at once. Errors: PM_EINVAL, PM_ERANGE. Thread-safety: any thread. */
PM_API pm_status_t pm_export_set_interval(pm_registry_t *r, double seconds);

/* Host-driven loop: runs an export if at least one interval has passed since
 * the last run, with `now_ns` supplied by the host (any monotonic clock, e.g.
 * pm_now_ns(), or a fake one in tests). *ran (may be NULL) is set to 1 if it ran.
 * Errors: as pm_export_now. Thread-safety: any thread. */
PM_API pm_status_t pm_export_tick(pm_registry_t *r, uint64_t now_ns, int *ran);

/* Starts a background thread that exports every interval. Errors: PM_EINVAL,
 * PM_ESTATE (already started), PM_ETHREAD. Thread-safety: any thread. */
PM_API pm_status_t pm_export_start(pm_registry_t *r);

/* Stops the background thread (runs a final export first when final != 0)
 * and joins it. PM_OK if it was not running. Must not be called from inside
 * an exporter callback (PM_ESTATE). Errors: PM_EINVAL, PM_ESTATE. Thread-safety: any thread. */
PM_API pm_status_t pm_export_stop(pm_registry_t *r, int final);

#ifdef __cplusplus
}
#endif
#endif
