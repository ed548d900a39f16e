/* A cell-block writer written from perfmetrics/cells.h's text alone, and the
 * checks around it: shared by the tests of local blocks (test_cells.c) and of
 * shared ones (test_cells_shared.c). Include after harness.h. */
#ifndef PM_TEST_CELLS_WRITER_H
#define PM_TEST_CELLS_WRITER_H

#include <perfmetrics/perfmetrics.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A writer's stores and loads, as a binding makes them: aligned 8-byte (and
 * 4-byte keys) plain accesses. Written as relaxed atomics, so a race
 * detector sees the contract rather than a data race. */
static inline double ld(const double *p)
{
    double v;
    __atomic_load(p, &v, __ATOMIC_RELAXED);
    return v;
}
static inline void st(double *p, double v) { __atomic_store(p, &v, __ATOMIC_RELAXED); }
static inline void add(double *p, double d) { st(p, ld(p) + d); }

static inline double *cell(pm_cells_t *b, size_t index)
{
    double *p = pm_cells_page(b, index / PM_CELLS_PAGE_DOUBLES);
    return p ? p + index % PM_CELLS_PAGE_DOUBLES : NULL;
}

static inline pm_registry_t *quiet_registry(void)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    pm_registry_opts_set_self_metrics(o, 0);
    pm_registry_new(o, &r);
    pm_registry_opts_free(o);
    return r;
}

/* The snapshot series of family `name` with label value v (NULL: unlabeled). */
static inline const pm_snap_series_t *find(const pm_snapshot_t *s, const char *name, const char *v)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), name)) continue;
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
            const pm_snap_series_t *x = pm_snap_family_series(f, j);
            if (!v || !strcmp(pm_snap_series_label_value(x, 0), v)) return x;
        }
    }
    return NULL;
}

/* field of the unlabelled series `name` in a fresh snapshot; NAN when absent. */
static inline double snap_read(pm_registry_t *r, const char *name,
                               double (*field)(const pm_snap_series_t *))
{
    pm_snapshot_t *s = NULL;
    if (pm_snapshot_new(r, &s) != PM_OK) return NAN;
    const pm_snap_series_t *x = find(s, name, NULL);
    double v = x ? field(x) : NAN;
    pm_snapshot_release(s);
    return v;
}

static inline double snap_value(pm_registry_t *r, const char *name)
{
    return snap_read(r, name, pm_snap_series_value);
}

/* The sum of the unlabelled histogram `name`. */
static inline double sum_of(pm_registry_t *r, const char *name)
{
    return snap_read(r, name, pm_snap_series_sum);
}

/* Three blocks' fractional cells whose sum a fold, adding them in another
 * order than a snapshot did, rounds down by an ulp (in some order of frees). */
static const double fold_cells[][3] = {{0.1, 0.2, 0},     {0.2, 0.1, 0},   {0.05, 0.1, 0.15},
                                       {0.15, 0.1, 0.05}, {0.7, 0.1, 0.2}, {1e16, 0.3, 0.7}};

/* ------------------------------------------------------------ a writer from the header */

/* What a binding does, from cells.h's text: key, open addressing, growth. */
typedef struct {
    pm_cells_t *b;
    pm_histogram_t *h;
    size_t idx;
    int at_max;
    uint64_t through_ffi; /* values recorded with pm_histogram_observe (no room) */
} hwriter;

static inline uint64_t bits(double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

static inline uint32_t hw_key(const double *r, double v)
{
    double lowest = r[PM_CELLS_H_LOWEST], highest = r[PM_CELLS_H_HIGHEST];
    uint32_t nbounds = (uint32_t)r[PM_CELLS_H_NBOUNDS];
    uint64_t lo = bits(lowest) >> 46;
    uint32_t nb = (uint32_t)((bits(highest) >> 46) - lo + 1), idx;
    if (!(v >= lowest)) {
        idx = 0;
    } else {
        uint64_t k = (bits(v) >> 46) - lo;
        idx = k >= nb ? nb + 1 : (uint32_t)k + 1;
    }
    for (uint32_t k = 0; k < nbounds; k++)
        if ((uint32_t)r[PM_CELLS_H_BOUNDS + nbounds + k] == idx && v <= r[PM_CELLS_H_BOUNDS + k])
            return nb + 2 + k;
    return idx;
}

static inline void hw_record(hwriter *w, double v)
{
    for (;;) {
        double *r = cell(w->b, w->idx);
        uint32_t cap = (uint32_t)r[PM_CELLS_H_CAP], nbounds = (uint32_t)r[PM_CELLS_H_NBOUNDS];
        double *counts = r + PM_CELLS_H_BOUNDS + 2 * nbounds;
        uint32_t *keys = (uint32_t *)(void *)(counts + cap);
        uint32_t key = hw_key(r, v), shift = 32u - (uint32_t)__builtin_ctz(cap);
        uint32_t h = (key * 0x9E3779B1u) >> shift, k;
        while ((k = __atomic_load_n(&keys[h], __ATOMIC_RELAXED)) && k != key + 1) h = (h + 1) & (cap - 1);
        if (!k) {
            double used = ld(&r[PM_CELLS_H_USED]);
            if (!w->at_max && used >= cap * 3 / 4) {
                size_t ni;
                pm_status_t s = pm_cells_histogram_grow(w->b, w->idx, &ni);
                if (s == PM_OK) {
                    w->idx = ni;
                    continue;
                }
                if (s != PM_ERANGE) abort();
                w->at_max = 1;
            }
            if (used >= cap * 7 / 8) {
                pm_histogram_observe(w->h, v);
                w->through_ffi++;
                return;
            }
            __atomic_store_n(&keys[h], key + 1, __ATOMIC_RELAXED);
            st(&r[PM_CELLS_H_USED], used + 1);
        }
        add(&counts[h], 1);
        add(&r[PM_CELLS_H_SUM], v);
        if (v < ld(&r[PM_CELLS_H_MIN])) st(&r[PM_CELLS_H_MIN], v);
        if (v > ld(&r[PM_CELLS_H_MAX])) st(&r[PM_CELLS_H_MAX], v);
        return;
    }
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static inline uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Values a histogram with bounds 0.005 .. 10 and range 1e-6 .. 100 must
 * place right: log-uniform ones, every bound exactly and one ulp either
 * side, below and above the range, zero and negatives. */
static inline size_t make_values(double *v, size_t n)
{
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    size_t i = 0;
    for (size_t k = 0; k < sizeof bounds / sizeof bounds[0]; k++) {
        v[i++] = bounds[k];
        v[i++] = nextafter(bounds[k], 0);
        v[i++] = nextafter(bounds[k], INFINITY);
    }
    v[i++] = 0;
    v[i++] = -3;
    v[i++] = 1e-9;
    v[i++] = 1e6;
    while (i < n) v[i++] = 1e-7 * pow(10, (double)(rng() % 1000000) / 1e6 * 10); /* 1e-7 .. 1e3 */
    return i;
}

static inline pm_family_t *hist_family(pm_registry_t *r, const char *name)
{
    static const double bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    if (pm_family_opts_new(&o) != PM_OK) return NULL;
    pm_family_opts_set_buckets(o, bounds, sizeof bounds / sizeof bounds[0]);
    pm_family_opts_set_range(o, 1e-6, 100);
    pm_family_new(r, PM_TYPE_HISTOGRAM, name, "Latency.", o, &f);
    pm_family_opts_free(o);
    return f;
}

/* Everything a snapshot says of a histogram series, equal between a and b. */
static inline void check_same_histogram(const pm_snap_series_t *a, const pm_snap_series_t *b,
                                 size_t nbounds)
{
    REQUIRE(a && b);
    CHECK_EQ_U64(pm_snap_series_count(a), pm_snap_series_count(b));
    CHECK_NEAR(pm_snap_series_sum(a), pm_snap_series_sum(b), 1e-9 * fabs(pm_snap_series_sum(b)));
    CHECK_EQ_DBL(pm_snap_series_min(a), pm_snap_series_min(b));
    CHECK_EQ_DBL(pm_snap_series_max(a), pm_snap_series_max(b));
    for (size_t k = 0; k <= nbounds; k++)
        CHECK_EQ_U64(pm_snap_series_bucket_cumulative(a, k), pm_snap_series_bucket_cumulative(b, k));
    static const double qs[] = {0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1};
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double qa = NAN, qb = NAN;
        CHECK_OK(pm_snap_series_quantile(a, qs[i], &qa));
        CHECK_OK(pm_snap_series_quantile(b, qs[i], &qb));
        CHECK_EQ_DBL(qa, qb);
    }
}

/* ------------------------------------------------------------ cases */

/* A counting allocator that fails once its budget is spent, for the
 * out-of-memory cases: live returns to zero when nothing leaked. */
struct failing {
    long live, budget; /* budget < 0: no failures */
};
static inline void *f_alloc(void *user, size_t n)
{
    struct failing *f = user;
    if (f->budget == 0) return NULL;
    if (f->budget > 0) f->budget--;
    void *p = malloc(n);
    if (p) f->live++;
    return p;
}
static inline void f_free(void *user, void *p)
{
    if (p) ((struct failing *)user)->live--;
    free(p);
}

#endif
