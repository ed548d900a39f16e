/* Exporters: callbacks that receive snapshots, run on demand, from a host
 * tick or from a background thread. Lock order: run_lock, then snap_lock,
 * then ex_lock; callbacks run holding only run_lock. */
#include "internal/snapshot_internal.h"

#include <errno.h>
#include <time.h>

pm_status_t pm_exporter_add(pm_registry_t *r, const char *name, pm_export_fn fn, void *user,
                            pm_release_fn release, pm_exporter_t **out)
{
    pm_cb_entry *e = NULL;
    pm_status_t st = pm__cb_add(r ? &r->a : NULL, r ? &r->ex_lock : NULL,
                                r ? &r->exporters : NULL, name, (void (*)(void))fn, user, release,
                                false, &e);
    if (e) e->r = r;
    if (out) *out = (pm_exporter_t *)e;
    return st;
}

pm_status_t pm_exporter_remove(pm_exporter_t *handle)
{
    pm_cb_entry *e = (pm_cb_entry *)handle;
    if (!e) return PM_OK;
    if (pm__in_callback) return PM_ESTATE;
    pm_registry *r = e->r;
    pthread_mutex_lock(&r->run_lock); /* waits for a running export */
    pthread_mutex_lock(&r->ex_lock);
    pm__cb_unlink(&r->exporters, e);
    pthread_mutex_unlock(&r->ex_lock);
    pthread_mutex_unlock(&r->run_lock);
    pm__cb_free(&r->a, e);
    return PM_OK;
}

void pm__exporters_free(pm_registry *r) { pm__cb_free_all(&r->a, &r->exporters); }

pm_status_t pm__exporters_self_metrics(pm_registry *r, pm_snapshot_t *s)
{
    static const char *const label[] = {"exporter"};
    pm_snap_family_t *runs = pm__snap_family_add(
        s, PM_TYPE_COUNTER, "perfmetrics_exporter_runs", "Exporter callback runs.", "", label, 1);
    pm_snap_family_t *fails = pm__snap_family_add(s, PM_TYPE_COUNTER,
                                                  "perfmetrics_exporter_failures",
                                                  "Exporter runs that returned an error.", "",
                                                  label, 1);
    if (!runs || !fails) return PM_ENOMEM;
    pm_snap_family_t *errs = pm__snap_family_add(
        s, PM_TYPE_COUNTER, "perfmetrics_export_errors",
        "Background export runs that could not take a snapshot (no exporter was called).", "", NULL, 0);
    if (!errs || !pm__snap_series_add(s, errs, NULL,
                                      (double)atomic_load_explicit(&r->export_errors,
                                                                   memory_order_relaxed)))
        return PM_ENOMEM;
    pm_status_t st = PM_OK;
    pthread_mutex_lock(&r->ex_lock);
    for (pm_cb_entry *e = r->exporters; e && st == PM_OK; e = e->next) {
        const char *v[1] = {e->name};
        if (!pm__snap_series_add(s, runs, v, (double)e->runs) ||
            !pm__snap_series_add(s, fails, v, (double)e->failures))
            st = PM_ENOMEM;
    }
    pthread_mutex_unlock(&r->ex_lock);
    return st;
}

pm_status_t pm_export_now(pm_registry_t *r)
{
    if (!r) return PM_EINVAL;
    if (pm__in_callback) return PM_ESTATE;
    pthread_mutex_lock(&r->run_lock);
    pm_snapshot_t *s;
    pm_status_t st = pm_snapshot_new(r, &s);
    if (st != PM_OK) {
        pthread_mutex_unlock(&r->run_lock);
        return st;
    }
    pthread_mutex_lock(&r->ex_lock);
    for (pm_cb_entry *e = r->exporters; e;) {
        pthread_mutex_unlock(&r->ex_lock);
        pm__in_callback++;
        pm_status_t rc = ((pm_export_fn)e->fn)(s, e->user);
        pm__in_callback--;
        pthread_mutex_lock(&r->ex_lock);
        e->runs++;
        if (rc != PM_OK) e->failures++;
        e = e->next;
    }
    pthread_mutex_unlock(&r->ex_lock);
    pthread_mutex_unlock(&r->run_lock);
    pm_snapshot_release(s);
    return PM_OK;
}

pm_status_t pm_export_set_interval(pm_registry_t *r, double seconds)
{
    if (!r) return PM_EINVAL;
    if (!(seconds > 0) || seconds > 1e9) return PM_ERANGE;
    pthread_mutex_lock(&r->th_lock);
    r->interval = seconds;
    pthread_cond_broadcast(&r->th_cond);
    pthread_mutex_unlock(&r->th_lock);
    return PM_OK;
}

pm_status_t pm_export_tick(pm_registry_t *r, uint64_t now_ns, int *ran)
{
    if (ran) *ran = 0;
    if (!r) return PM_EINVAL;
    if (pm__in_callback) return PM_ESTATE;
    pthread_mutex_lock(&r->th_lock);
    uint64_t interval_ns = (uint64_t)(r->interval * 1e9);
    bool due = !r->tick_started || now_ns < r->last_tick_ns ||
               now_ns - r->last_tick_ns >= interval_ns;
    int was_started = r->tick_started;
    uint64_t was_last = r->last_tick_ns;
    if (due) {
        r->tick_started = 1;
        r->last_tick_ns = now_ns;
    }
    pthread_mutex_unlock(&r->th_lock);
    if (!due) return PM_OK;
    pm_status_t st = pm_export_now(r);
    if (st == PM_OK) {
        if (ran) *ran = 1;
        return st;
    }
    /* No snapshot means no run: the next tick tries again. */
    pthread_mutex_lock(&r->th_lock);
    if (r->last_tick_ns == now_ns) {
        r->tick_started = was_started;
        r->last_tick_ns = was_last;
    }
    pthread_mutex_unlock(&r->th_lock);
    return st;
}

static void *export_thread(void *arg)
{
    pm_registry *r = arg;
    pthread_mutex_lock(&r->th_lock);
    while (!r->thread_stop) {
        struct timespec start;
        clock_gettime(CLOCK_MONOTONIC, &start);
        for (;;) {
            /* Recomputed after every wake-up, so a new interval applies at once. */
            struct timespec ts = pm__timespec_after(start, r->interval);
            if (r->thread_stop ||
                pthread_cond_timedwait(&r->th_cond, &r->th_lock, &ts) == ETIMEDOUT)
                break;
        }
        if (r->thread_stop) break;
        pthread_mutex_unlock(&r->th_lock);
        /* Nobody sees this status: count it. */
        if (pm_export_now(r) != PM_OK)
            atomic_fetch_add_explicit(&r->export_errors, 1, memory_order_relaxed);
        pthread_mutex_lock(&r->th_lock);
    }
    pthread_mutex_unlock(&r->th_lock);
    return NULL;
}

pm_status_t pm_export_start(pm_registry_t *r)
{
    if (!r) return PM_EINVAL;
    if (pm__in_callback) return PM_ESTATE;
    pthread_mutex_lock(&r->th_lock);
    if (r->thread_running) {
        pthread_mutex_unlock(&r->th_lock);
        return PM_ESTATE;
    }
    r->thread_stop = 0;
    int rc = pthread_create(&r->thread, NULL, export_thread, r);
    if (rc == 0) r->thread_running = 1;
    pthread_mutex_unlock(&r->th_lock);
    return rc == 0 ? PM_OK : PM_ETHREAD;
}

pm_status_t pm_export_stop(pm_registry_t *r, int final)
{
    if (!r) return PM_EINVAL;
    if (pm__in_callback) return PM_ESTATE;
    pthread_mutex_lock(&r->th_lock);
    int running = r->thread_running;
    r->thread_stop = 1;
    pthread_cond_broadcast(&r->th_cond);
    pthread_mutex_unlock(&r->th_lock);
    if (running) {
        pthread_join(r->thread, NULL);
        pthread_mutex_lock(&r->th_lock);
        r->thread_running = 0;
        pthread_mutex_unlock(&r->th_lock);
    }
    if (final && running) return pm_export_now(r);
    return PM_OK;
}
