/* Histograms: log-linear fine buckets read straight from the IEEE-754 bits
 * (the exponent picks the octave, the top 6 mantissa bits one of 64
 * sub-buckets), per-stripe copies, and exact counts for the exported bounds.
 *
 * Error bound: a fine bucket [lo, hi) has hi/lo <= 65/64. Reporting
 * v^ = 2*lo*hi/(lo+hi) gives |v^ - v|/v <= (hi-lo)/(hi+lo) <= 1/129 for every v
 * in the bucket, so any nearest-rank quantile of values inside the range errs
 * by at most 1/129 (0.775%). Merging adds bucket arrays: the bound survives. */
#include "internal/exemplar_internal.h"
#include "internal/span_internal.h"

#include <math.h>

pm_status_t pm__hist_layout_init(const pm_alloc_t *a, pm_hist_layout *L, double lowest,
                                 double highest, const double *bounds, size_t nbounds)
{
    memset(L, 0, sizeof *L);
    L->lowest = lowest;
    L->highest = highest;
    L->lo_key = pm__d2u(lowest) >> PM_HIST_SHIFT;
    L->nb = (uint32_t)((pm__d2u(highest) >> PM_HIST_SHIFT) - L->lo_key + 1);
    L->nbounds = (uint32_t)nbounds;
    L->copy_words = 3 + nbounds + (size_t)L->nb + 2;
    L->bounds = pm__alloc(a, nbounds * sizeof *L->bounds);
    L->bidx = pm__alloc(a, nbounds * sizeof *L->bidx);
    L->straddle = pm__calloc(a, ((size_t)L->nb + 2) * sizeof *L->straddle);
    if (!L->bounds || !L->bidx || !L->straddle) {
        pm__hist_layout_free(a, L);
        return PM_ENOMEM;
    }
    memcpy(L->bounds, bounds, nbounds * sizeof *bounds);
    for (size_t k = nbounds; k-- > 0;) {
        uint32_t i = pm__hist_index(L, bounds[k]);
        L->bidx[k] = i;
        L->straddle[i] = (uint16_t)(k + 1); /* descending loop leaves the first bound */
    }
    return PM_OK;
}

void pm__hist_layout_free(const pm_alloc_t *a, pm_hist_layout *L)
{
    pm__free(a, L->bounds);
    pm__free(a, L->bidx);
    pm__free(a, L->straddle);
    L->bounds = NULL;
    L->bidx = NULL;
    L->straddle = NULL;
}

/* The value reported for fine bucket idx: the harmonic mean of its edges,
 * clamped to the observed extremes; below/above the range, min/max. */
double pm__hist_bucket_value(const pm_hist_layout *L, uint32_t idx, double min, double max)
{
    if (idx == 0) return min;
    if (idx > L->nb) return max;
    uint64_t key = L->lo_key + idx - 1;
    double lo = pm__u2d(key << PM_HIST_SHIFT), hi = pm__u2d((key + 1) << PM_HIST_SHIFT);
    double v = 2 * lo * hi / (lo + hi);
    if (v < min) v = min;
    if (v > max) v = max;
    return v;
}

static inline void atomic_min_d(_Atomic uint64_t *cell, double v)
{
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
    while (v < pm__u2d(old) &&
           !atomic_compare_exchange_weak_explicit(cell, &old, pm__d2u(v), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

static inline void atomic_max_d(_Atomic uint64_t *cell, double v)
{
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
    while (v > pm__u2d(old) &&
           !atomic_compare_exchange_weak_explicit(cell, &old, pm__d2u(v), memory_order_relaxed,
                                                  memory_order_relaxed)) {
    }
}

/* Records v (not NaN) into s from stripe `st` (pm__tls_stripe, assigned).
 * Inlined into each recording entry point; the exemplar step is theirs. */
static inline __attribute__((always_inline)) void observe_value(pm_series *s, double v, unsigned st)
{
    st = (st - 1) & s->mask;
    pm_hist_ext *x = pm__hist_ext(s);
    _Atomic uint64_t *c = (_Atomic uint64_t *)atomic_load_explicit(&x->copies[st],
                                                                   memory_order_acquire);
    if (PM_UNLIKELY(!c)) {
        /* No copy for this stripe yet: share stripe 0's (still exact) and ask
         * maintenance for our own. */
        pm__hist_want(s, st);
        c = (_Atomic uint64_t *)atomic_load_explicit(&x->copies[0], memory_order_acquire);
    }
    const pm_hist_layout *L = s->h.hl;
    uint32_t idx = pm__hist_index(L, v);
    atomic_fetch_add_explicit(&c[PM_HC_EXTRA + L->nbounds + idx], 1, memory_order_relaxed);
    uint32_t k1 = L->straddle[idx];
    if (PM_UNLIKELY(k1 != 0)) {
        /* This fine bucket holds export bound(s): count values <= each exactly. */
        for (uint32_t k = k1 - 1; k < L->nbounds && L->bidx[k] == idx; k++)
            if (v <= L->bounds[k])
                atomic_fetch_add_explicit(&c[PM_HC_EXTRA + k], 1, memory_order_relaxed);
    }
    uint64_t old = atomic_load_explicit(&c[PM_HC_SUM], memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&c[PM_HC_SUM], &old, pm__d2u(pm__u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
    atomic_min_d(&c[PM_HC_MIN], v);
    atomic_max_d(&c[PM_HC_MAX], v);
}

/* A thread's first record: assign its stripe, then record. Out of line so the
 * fast path needs no saved registers for the call. */
__attribute__((noinline, cold)) static void observe_first(pm_histogram_t *h, double v)
{
    pm__stripe_assign();
    pm_histogram_observe(h, v);
}

/* A record while a span is current: the same record, then the exemplar. Out
 * of line (a tail call), so the common path keeps its shape and pays one
 * load and test for exemplars. */
__attribute__((noinline)) static void observe_span(pm_series *s, double v, const pm_span_t *sp)
{
    unsigned st = pm__tls_stripe;
    if (PM_UNLIKELY(st == 0)) st = pm__stripe_assign();
    observe_value(s, v, st);
    pm__exemplar_span(s, v, sp);
}

void pm_histogram_observe(pm_histogram_t *h, double v)
{
    if (PM_UNLIKELY(!h)) return;
    pm_series *s = (pm_series *)h;
    if (PM_UNLIKELY(v != v)) {
        pm__note_rejected(s);
        return;
    }
    const pm_span_t *sp = pm__tls_span;
    if (PM_UNLIKELY(sp != NULL)) {
        observe_span(s, v, sp);
        return;
    }
    unsigned st = pm__tls_stripe;
    if (PM_UNLIKELY(st == 0)) {
        observe_first(h, v);
        return;
    }
    observe_value(s, v, st);
}

void pm_histogram_observe_exemplar(pm_histogram_t *h, double v, const pm_trace_context_t *ctx)
{
    if (!ctx) {
        pm_histogram_observe(h, v);
        return;
    }
    if (PM_UNLIKELY(!h)) return;
    pm_series *s = (pm_series *)h;
    if (PM_UNLIKELY(v != v)) {
        pm__note_rejected(s);
        return;
    }
    unsigned st = pm__tls_stripe;
    if (PM_UNLIKELY(st == 0)) st = pm__stripe_assign();
    observe_value(s, v, st);
    pm__exemplar_record(s, v, ctx);
}

void pm_histogram_observe_ns(pm_histogram_t *h, uint64_t ns)
{
    /* Divide rather than multiply by 1e-9: correctly rounded, so 300 ms is
     * exactly the double 0.3 and lands in le="0.3". */
    pm_histogram_observe(h, (double)ns / 1e9);
}

pm_status_t pm_histogram_get(pm_family_t *f, const char *const *values, size_t n,
                             pm_histogram_t **out)
{
    if (!out) return PM_EINVAL;
    return pm__series_get(f, PM_TYPE_HISTOGRAM, values, n, (pm_series **)out);
}

void pm_histogram_release(pm_histogram_t *h) { pm__series_release((pm_series *)h); }

pm_status_t pm_histogram_new(pm_registry_t *r, const char *name, const char *help,
                             pm_histogram_t **out)
{
    if (!out) return PM_EINVAL;
    return pm__unlabeled_new(r, PM_TYPE_HISTOGRAM, name, help, (pm_series **)out);
}

static void record_observe(pm_series *s, double v) { pm_histogram_observe((pm_histogram_t *)s, v); }

pm_status_t pm_histogram_observe_labeled(pm_family_t *f, const char *const *values, size_t n,
                                         double v)
{
    if (!f) return PM_EINVAL;
    if (f->type != PM_TYPE_HISTOGRAM) return PM_ETYPE;
    if (v != v) {
        atomic_fetch_add_explicit(&f->rejected, 1, memory_order_relaxed);
        return PM_ERANGE;
    }
    return pm__labeled_record(f, PM_TYPE_HISTOGRAM, values, n, v, record_observe);
}
