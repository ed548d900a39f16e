/* Gauges: one cell per series; set is a store, add a CAS loop. */
#include "internal/pm_internal.h"

void pm_gauge_set(pm_gauge_t *g, double v)
{
    if (PM_UNLIKELY(!g)) return;
    pm_series *s = (pm_series *)g;
    atomic_store_explicit(&s->gbits, pm__d2u(v), memory_order_relaxed);
    /* The line is already ours after the store; this marks activity for TTLs. */
    atomic_store_explicit(&s->gtouched, 1, memory_order_relaxed);
}

void pm_gauge_add(pm_gauge_t *g, double delta)
{
    if (PM_UNLIKELY(!g)) return;
    pm_series *s = (pm_series *)g;
    uint64_t old = atomic_load_explicit(&s->gbits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&s->gbits, &old, pm__d2u(pm__u2d(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
    atomic_store_explicit(&s->gtouched, 1, memory_order_relaxed);
}

void pm_gauge_sub(pm_gauge_t *g, double delta) { pm_gauge_add(g, -delta); }

/* Under r->lock when the series is bound to cell blocks. */
double pm__gauge_read(const pm_series *s)
{
    double v = pm__u2d(atomic_load_explicit(&((pm_series *)s)->gbits, memory_order_relaxed));
    if (PM_UNLIKELY(s->bound)) v += pm__cells_gauge_read(s);
    return v;
}

double pm_gauge_value(const pm_gauge_t *g)
{
    const pm_series *s = (const pm_series *)g;
    if (!s || s->type != PM_TYPE_GAUGE) return 0.0;
    /* Lock-free unless a cell block ever bound it (then the block list may
     * change meanwhile). */
    if (PM_LIKELY(!__atomic_load_n(&s->slot, __ATOMIC_ACQUIRE)))
        return pm__u2d(atomic_load_explicit(&((pm_series *)s)->gbits, memory_order_relaxed));
    pthread_mutex_lock(&s->reg->lock);
    double v = pm__gauge_read(s);
    pthread_mutex_unlock(&s->reg->lock);
    return v;
}

pm_status_t pm_gauge_get(pm_family_t *f, const char *const *values, size_t n, pm_gauge_t **out)
{
    if (!out) return PM_EINVAL;
    return pm__series_get(f, PM_TYPE_GAUGE, values, n, (pm_series **)out);
}

void pm_gauge_release(pm_gauge_t *g) { pm__series_release((pm_series *)g); }

pm_status_t pm_gauge_new(pm_registry_t *r, const char *name, const char *help,
                           pm_gauge_t **out)
{
    if (!out) return PM_EINVAL;
    return pm__unlabeled_new(r, PM_TYPE_GAUGE, name, help, (pm_series **)out);
}

static void record_set(pm_series *s, double v) { pm_gauge_set((pm_gauge_t *)s, v); }

pm_status_t pm_gauge_set_labeled(pm_family_t *f, const char *const *values, size_t n, double v)
{
    if (!f) return PM_EINVAL;
    if (f->type != PM_TYPE_GAUGE || f->cb) return PM_ETYPE;
    return pm__labeled_record(f, PM_TYPE_GAUGE, values, n, v, record_set);
}
