/* libperfmetrics — collectors: callbacks that emit families at snapshot time,
 * for values that live elsewhere (a queue length, a pool's stats, /proc).
 * Built in: a process collector (Prometheus's standard process_* names) and a
 * system collector (load, memory, CPU utilisation), both read from /proc. */
#ifndef PERFMETRICS_COLLECTOR_H
#define PERFMETRICS_COLLECTOR_H

#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_collector pm_collector_t;
/* The emitter handed to a collector callback; valid only during the call. */
typedef struct pm_emit pm_emit_t;

/* Collector callback: emits families with pm_emit_family / pm_emit_sample.
 * Returns PM_OK, or an error status: then everything it emitted in this run is
 * discarded and perfmetrics_collector_failures_total{collector} is incremented.
 * Runs on the thread taking the snapshot; never concurrently with itself. */
typedef pm_status_t (*pm_collect_fn)(pm_emit_t *e, void *user);

/* Registers a collector named `name` (unique in the registry, copied).
 * `release` (may be NULL) is called with `user` when the collector is removed
 * or the registry freed, and also when this call fails, so ownership of `user`
 * always passes to the library. The collector is borrowed until
 * pm_collector_remove or registry free; out may be NULL.
 * Errors: PM_EINVAL, PM_EUTF8 (empty, over 4096 bytes or not UTF-8),
 * PM_EEXIST, PM_ESTATE (called from a callback), PM_ENOMEM.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_collector_add(pm_registry_t *r, const char *name, pm_collect_fn fn,
                                    void *user, pm_release_fn release, pm_collector_t **out);

/* Unregisters; after it returns the callback is never called again. NULL is a
 * no-op. Errors: PM_ESTATE (called from inside a collector). Thread-safety: any thread. */
PM_API pm_status_t pm_collector_remove(pm_collector_t *c);

/* Starts a family in the collector's output (counter or gauge; counters
 * without "_total", which is added on output). Names and labels follow the
 * rules of pm_family_new; the name must not clash with a registered family
 * or another emitted one (PM_EEXIST). Strings are copied.
 * Errors: PM_EINVAL, PM_EBADNAME, PM_EBADLABEL, PM_ETYPE (histogram), PM_EEXIST, PM_ENOMEM. */
PM_API pm_status_t pm_emit_family(pm_emit_t *e, pm_type_t type, const char *name,
                                  const char *help, const char *unit,
                                  const char *const *label_names, size_t n_labels);

/* Adds a sample to the family last started with pm_emit_family.
 * Errors: PM_EINVAL, PM_ESTATE (no family started), PM_ELABELCOUNT, PM_EUTF8,
 * PM_ERANGE (negative or NaN counter value), PM_EEXIST (these label values
 * already have a sample in this family), PM_ENOMEM. */
PM_API pm_status_t pm_emit_sample(pm_emit_t *e, const char *const *label_values, size_t n,
                                  double value);

/* Enables the process collector: process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds, process_threads.
 * Calling it twice gives PM_OK. Errors: PM_EINVAL, PM_ENOMEM, PM_EUNSUPPORTED (no /proc).
 * Thread-safety: any thread. */
PM_API pm_status_t pm_process_collector_enable(pm_registry_t *r);

/* Enables the system collector: system_load1/5/15, system_memory_total_bytes,
 * system_memory_available_bytes, system_cpu_utilisation_ratio (busy share
 * since the previous snapshot), system_cpus.
 * Calling it twice gives PM_OK. Errors: PM_EINVAL, PM_ENOMEM, PM_EUNSUPPORTED.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_system_collector_enable(pm_registry_t *r);

#ifdef __cplusplus
}
#endif
#endif
