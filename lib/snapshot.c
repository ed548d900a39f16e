/* Snapshots: an immutable view built from live state without blocking
 * recorders. Everything a snapshot holds lives in one arena owned by it, so
 * it outlives the registry and frees in one sweep. */
#include "internal/exemplar_internal.h"
#include "internal/format_internal.h" /* pm__snap_series_has_exemplars */
#include "internal/snapshot_internal.h"

#include <math.h>
#include <stdlib.h>

/* A copy of n strings: the pointers, then the strings, in one allocation. */
static const char **arena_strv(pm_snapshot_t *s, const char *const *v, size_t n)
{
    size_t total = (n ? n : 1) * sizeof(char *);
    for (size_t i = 0; i < n; i++) total += strlen(v[i]) + 1;
    const char **out = pm__arena_alloc(s, total);
    if (!out) return NULL;
    char *p = (char *)(out + (n ? n : 1));
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(v[i]) + 1;
        memcpy(p, v[i], l);
        out[i] = p;
        p += l;
    }
    return out;
}

pm_snap_family_t *pm__snap_family_add(pm_snapshot_t *s, pm_type_t type, const char *name,
                                      const char *help, const char *unit,
                                      const char *const *labels, size_t nlabels)
{
    if (s->nfam == s->capfam) {
        size_t nc = s->capfam ? s->capfam * 2 : 64;
        pm_snap_family_t **n = pm__arena_alloc(s, nc * sizeof *n);
        if (!n) return NULL;
        if (s->nfam) memcpy(n, s->fams, s->nfam * sizeof *n);
        s->fams = n;
        s->capfam = nc;
    }
    pm_snap_family_t *f = pm__arena_alloc(s, sizeof *f);
    if (!f) return NULL;
    memset(f, 0, sizeof *f);
    f->type = type;
    if (!(f->name = pm__arena_strdup(s, name)) || !(f->help = pm__arena_strdup(s, help)) ||
        !(f->unit = pm__arena_strdup(s, unit ? unit : "")) ||
        !(f->labels = arena_strv(s, labels, nlabels)))
        return NULL;
    f->nlabels = nlabels;
    s->fams[s->nfam++] = f;
    return f;
}

/* Room for n series in f; the array moves (the arena keeps the old one). */
static pm_status_t series_reserve(pm_snapshot_t *s, pm_snap_family_t *f, size_t n)
{
    if (n <= f->capseries) return PM_OK;
    pm_snap_series_t *a = pm__arena_alloc(s, n * sizeof *a);
    if (!a) return PM_ENOMEM;
    if (f->nseries) memcpy(a, f->series, f->nseries * sizeof *a);
    f->series = a;
    f->capseries = n;
    return PM_OK;
}

static pm_snap_series_t *series_slot(pm_snapshot_t *s, pm_snap_family_t *f)
{
    if (f->nseries == f->capseries &&
        series_reserve(s, f, f->capseries ? f->capseries * 2 : 8) != PM_OK)
        return NULL;
    pm_snap_series_t *x = &f->series[f->nseries];
    memset(x, 0, sizeof *x);
    x->fam = f;
    x->created = NAN;
    return x;
}

pm_snap_series_t *pm__snap_series_add(pm_snapshot_t *s, pm_snap_family_t *f,
                                      const char *const *values, double value)
{
    pm_snap_series_t *x = series_slot(s, f);
    if (!x || !(x->values = arena_strv(s, values, f->nlabels))) return NULL;
    x->value = value;
    f->nseries++;
    return x;
}

static void snapshot_free(pm_snapshot_t *s)
{
    pm_alloc_t a = s->a;
    pm__arena_free(s);
    pm__free(&a, s);
}

/* ------------------------------------------------------------ reading live state */

/* Scratch for one family's histograms: fine[nb + 2], parts[nbounds + 1] and a
 * bit per fine index touched, all zero between series. */
static size_t hist_scratch_words(const pm_hist_layout *L)
{
    return (size_t)L->nb + 2 + L->nbounds + 1 + ((size_t)L->nb + 2 + 63) / 64;
}

/* Adds every cell of the series (lib/histogram.c) into the scratch, then
 * stores the non-zero fine buckets sparsely and derives count, cumulative
 * bounds and stddev; leaves the scratch zeroed. */
static pm_status_t read_histogram(pm_snapshot_t *snap, const pm_series *s, pm_snap_series_t *x,
                                  uint64_t *scratch)
{
    const pm_hist_layout *L = s->h.hl;
    size_t nfine = (size_t)L->nb + 2, nwords = (nfine + 63) / 64;
    uint64_t *fine = scratch, *parts = fine + nfine, *touched = parts + L->nbounds + 1;
    const pm_hist_ext *ext = pm__hist_ext(s);
    double min = pm__u2d(atomic_load_explicit(&ext->min, memory_order_relaxed));
    double max = pm__u2d(atomic_load_explicit(&ext->max, memory_order_relaxed));
    double sum = pm__hist_collect(s, fine, parts, touched, &min, &max);
    uint32_t nz = 0;
    uint64_t count = 0;
    for (size_t w = 0; w < nwords; w++)
        for (uint64_t m = touched[w]; m; m &= m - 1) {
            uint64_t c = fine[w * 64 + (size_t)__builtin_ctzll(m)];
            if (c) nz++, count += c;
        }
    pm_snap_hist *hx = pm__arena_alloc(snap, sizeof *hx);
    uint64_t *cum = pm__arena_alloc(snap, (L->nbounds + 1) * sizeof *cum);
    uint32_t *idx = pm__arena_alloc(snap, (nz ? nz : 1) * sizeof *idx);
    uint64_t *cnt = pm__arena_alloc(snap, (nz ? nz : 1) * sizeof *cnt);
    pm_status_t st = hx && cum && idx && cnt ? PM_OK : PM_ENOMEM;
    if (st == PM_OK) {
        memset(hx, 0, sizeof *hx);
        x->h = hx;
        uint32_t j = 0;
        for (size_t w = 0; w < nwords; w++)
            for (uint64_t m = touched[w]; m; m &= m - 1) {
                size_t i = w * 64 + (size_t)__builtin_ctzll(m);
                if (fine[i]) idx[j] = (uint32_t)i, cnt[j++] = fine[i];
            }
        /* Recorders bump the cell before the extremes: a snapshot racing the
         * first observations can see a count with min/max not yet set. */
        if (count && !(min <= max)) {
            min = pm__hist_bucket_value(L, idx[0], -INFINITY, INFINITY);
            max = pm__hist_bucket_value(L, idx[nz - 1], -INFINITY, INFINITY);
            if (!isfinite(min)) min = 0;
            if (!isfinite(max) || max < min) max = min;
        }
        double wsum = 0;
        for (uint32_t i = 0; i < nz; i++)
            wsum += (double)cnt[i] * pm__hist_bucket_value(L, idx[i], min, max);
        double var = 0;
        if (count) {
            double mean_hat = wsum / (double)count;
            for (uint32_t i = 0; i < nz; i++) {
                double d = pm__hist_bucket_value(L, idx[i], min, max) - mean_hat;
                var += (double)cnt[i] * d * d;
            }
            var /= (double)count;
        }
        /* Cumulative counts per bound: every fine bucket below the bound's
         * bucket, plus the parts of that bucket at or below the bound (values
         * <= bounds[k'] for bounds k' <= k in it, coarse cells included). */
        uint64_t below = 0, inb = 0, prev = 0;
        uint32_t fi = 0;
        for (uint32_t k = 0; k < L->nbounds; k++) {
            for (; fi < nz && idx[fi] < L->bidx[k]; fi++) below += cnt[fi];
            if (k == 0 || L->bidx[k] != L->bidx[k - 1]) inb = 0;
            inb += parts[k];
            uint64_t v = below + inb;
            if (v < prev) v = prev;
            if (v > count) v = count;
            cum[k] = prev = v;
        }
        cum[L->nbounds] = count;
        hx->cum = cum;
        hx->count = count;
        hx->sum = sum;
        x->value = sum;
        hx->min = count ? min : NAN;
        hx->max = count ? max : NAN;
        hx->stddev = count ? sqrt(var) : NAN;
        hx->hd.a = snap->a;
        hx->hd.borrowed = 1;
        hx->hd.lowest = L->lowest;
        hx->hd.highest = L->highest;
        hx->hd.lo_key = L->lo_key;
        hx->hd.nb = L->nb;
        hx->hd.count = count;
        hx->hd.sum = sum;
        hx->hd.min = count ? min : INFINITY;
        hx->hd.max = count ? max : -INFINITY;
        hx->hd.idx = idx;
        hx->hd.cnt = cnt;
        hx->hd.n = nz;
        hx->hd.cap = nz;
    }
    for (size_t w = 0; w < nwords; w++)
        for (uint64_t m = touched[w]; m; m &= m - 1) fine[w * 64 + (size_t)__builtin_ctzll(m)] = 0;
    memset(parts, 0, ((size_t)L->nbounds + 1 + nwords) * sizeof *parts);
    return st;
}

/* Copies the exemplar slots of s, the snapshot family's series number idx
 * of nlive; arena memory is taken only once a slot holds an exemplar.
 * Recording times become wall time with the snapshot's own pair of clock
 * readings, so only clock drift since the record can shift them. */
static pm_status_t read_exemplars(pm_snapshot_t *snap, const pm_series *s, pm_snap_family_t *sf,
                                  size_t idx, size_t nlive)
{
    size_t n = pm__exemplar_slots(s->fam);
    pm_exemplar_slot *slots = pm__series_exemplars(s);
    pm_snap_exemplar *ex = NULL;
    if (idx >= nlive) return PM_OK; /* cannot happen: both walks run under r->lock */
    for (size_t i = 0; i < n; i++) {
        pm_trace_context_t ctx;
        double v;
        uint64_t t;
        if (!pm__exemplar_read(&slots[i], &ctx, &v, &t)) continue;
        if (!ex) {
            if (!sf->ex) {
                if (!(sf->ex = pm__arena_alloc(snap, nlive * sizeof *sf->ex))) return PM_ENOMEM;
                memset(sf->ex, 0, nlive * sizeof *sf->ex);
                sf->nex = nlive;
            }
            if (!(ex = pm__arena_alloc(snap, n * sizeof *ex))) return PM_ENOMEM;
            memset(ex, 0, n * sizeof *ex);
            sf->ex[idx] = ex;
        }
        ex[i].ctx = ctx;
        ex[i].value = v;
        ex[i].time = snap->time - (double)(int64_t)(snap->mono_ns - t) * 1e-9;
    }
    return PM_OK;
}

/* TTL bookkeeping: a series is active when its value moved since the last look. */
static void note_activity(pm_series *s, double value, uint64_t now)
{
    int touched = 0;
    if (s->type == PM_TYPE_GAUGE)
        touched = atomic_exchange_explicit(&s->gtouched, 0, memory_order_relaxed) != 0;
    bool same = value == s->last_value || (value != value && s->last_value != s->last_value);
    if (touched || !same) {
        s->last_change_ns = now;
        s->last_value = value;
    }
}

/* Up to this many series, a family's series are all asked for before its
 * list is walked (about 200 B each: they stay in a 1 MiB L2). */
#define PREFETCH_SERIES_MAX 2048

/* The series list is one dependent load per series: past the cache, every
 * series would be a miss after the previous one. The family's look-up
 * table holds the same pointers in an array, so their lines can be asked
 * for all at once and the misses overlap; the list walk then finds them in
 * the cache and keeps its order (registration order, as exposition shows).
 * False when the family is too large for it. */
static bool prefetch_series(const pm_family *f)
{
    pm_table *t = atomic_load_explicit(&f->table, memory_order_relaxed);
    if (!t || f->nseries > PREFETCH_SERIES_MAX) return false;
    for (size_t i = 0; i < t->cap; i++) {
        const pm_series *s = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (!s || s == PM_TOMB) continue;
        __builtin_prefetch(s);
        __builtin_prefetch((const char *)s + 64);
        __builtin_prefetch((const char *)s + 128);
    }
    return true;
}

static pm_status_t read_family(pm_snapshot_t *snap, pm_family *f, uint64_t now, uint64_t **dense,
                               size_t *dense_cap)
{
    pm_snap_family_t *sf = pm__snap_family_add(snap, f->type, f->name, f->help, f->unit,
                                               (const char *const *)f->labels, f->nlabels);
    if (!sf) return PM_ENOMEM;
    if (f->cb) {
        sf->cb = f->cb;
        sf->cb_user = f->cb_user;
        return PM_OK;
    }
    if (f->type == PM_TYPE_HISTOGRAM) {
        sf->nbounds = f->hl.nbounds;
        double *b = pm__arena_alloc(snap, f->hl.nbounds * sizeof *b);
        if (!b) return PM_ENOMEM;
        memcpy(b, f->hl.bounds, f->hl.nbounds * sizeof *b);
        sf->bounds = b;
        size_t need = hist_scratch_words(&f->hl);
        if (*dense_cap < need) {
            pm__free(&snap->a, *dense);
            if (!(*dense = pm__calloc(&snap->a, need * sizeof **dense))) {
                *dense_cap = 0;
                return PM_ENOMEM;
            }
            *dense_cap = need;
        }
    }
    bool big = !prefetch_series(f);
    /* Exactly the live series: a large registry's snapshot copies no arrays. */
    if (series_reserve(snap, sf, f->nseries + (f->overflow ? 1 : 0)) != PM_OK) return PM_ENOMEM;
    for (int pass = 0; pass < 2; pass++) {
        pm_series *s = pass == 0 ? f->head : f->overflow;
        for (; s; s = pass == 0 ? s->next : NULL) {
            /* A family too large for prefetch_series: at least start the
             * next series' lines while this one is read. */
            if (pass == 0 && big && s->next) {
                __builtin_prefetch(s->next);
                __builtin_prefetch((const char *)s->next + 64);
                __builtin_prefetch((const char *)s->next + 128);
            }
            pm_snap_series_t *x = pm__snap_series_add(snap, sf, pm__series_values(s), 0);
            if (!x) return PM_ENOMEM;
            x->overflow = s->overflow;
            x->created = s->created;
            if (f->type == PM_TYPE_COUNTER) {
                x->value = pm__counter_read(s);
            } else if (f->type == PM_TYPE_GAUGE) {
                x->value = pm__gauge_read(s);
            } else if (read_histogram(snap, s, x, *dense) != PM_OK) {
                return PM_ENOMEM;
            }
            /* A histogram is active when its count moves (exact below 2^53). */
            note_activity(s, f->type == PM_TYPE_HISTOGRAM ? (double)x->h->count : x->value, now);
        }
    }
    /* A second walk, in the same order, so families without exemplars pay
     * nothing per series. */
    if (f->exemplars) {
        size_t i = 0, nlive = sf->nseries;
        for (int pass = 0; pass < 2; pass++) {
            pm_series *s = pass == 0 ? f->head : f->overflow;
            for (; s; s = pass == 0 ? s->next : NULL)
                if (read_exemplars(snap, s, sf, i++, nlive) != PM_OK) return PM_ENOMEM;
        }
    }
    return PM_OK;
}

static void expire_ttl_locked(pm_registry *r, uint64_t now)
{
    for (size_t i = 0; i < r->nfam; i++) {
        pm_family *f = r->fams[i];
        if (f->ttl <= 0) continue;
        uint64_t ttl_ns = (uint64_t)(f->ttl * 1e9);
        for (pm_series *s = f->head, *next; s; s = next) {
            next = s->next;
            if (now - s->last_change_ns >= ttl_ns) pm__series_unlink_locked(r, s);
        }
    }
}

/* ------------------------------------------------------------ self metrics */

static pm_status_t self_metrics(pm_registry *r, pm_snapshot_t *s, pm_family **fams, size_t nfam,
                                uint64_t *stats)
{
    static const char *const fam_label[] = {"family"};
    static const struct {
        pm_type_t type;
        const char *name, *help;
    } defs[] = {
        {PM_TYPE_GAUGE, "perfmetrics_series", "Live series per family (overflow series included)."},
        {PM_TYPE_COUNTER, "perfmetrics_series_refused", "Look-ups past the cardinality limit (recorded into the overflow series)."},
        {PM_TYPE_COUNTER, "perfmetrics_series_removed", "Series removed (explicitly, by clear or by TTL)."},
        {PM_TYPE_COUNTER, "perfmetrics_values_rejected", "Recorded values rejected (negative or non-finite counter adds, NaN observations)."},
    };
    for (size_t d = 0; d < sizeof defs / sizeof defs[0]; d++) {
        pm_snap_family_t *sf = pm__snap_family_add(s, defs[d].type, defs[d].name, defs[d].help, "",
                                                   fam_label, 1);
        if (!sf) return PM_ENOMEM;
        for (size_t i = 0; i < nfam; i++) {
            if (fams[i]->cb) continue;
            const char *v[1] = {fams[i]->name};
            if (!pm__snap_series_add(s, sf, v, (double)stats[i * 5 + d])) return PM_ENOMEM;
        }
    }
    /* Histogram values kept at export-bucket resolution (lib/histogram.c):
     * only registries with histograms show it. */
    pm_snap_family_t *cf = NULL;
    for (size_t i = 0; i < nfam; i++) {
        if (fams[i]->type != PM_TYPE_HISTOGRAM || fams[i]->cb) continue;
        if (!cf && !(cf = pm__snap_family_add(
                         s, PM_TYPE_COUNTER, "perfmetrics_coarse_observations",
                         "Histogram values recorded at export-bucket resolution (a table was full "
                         "and no spare was left before maintenance); counts, sums and buckets "
                         "stay exact.",
                         "", fam_label, 1)))
            return PM_ENOMEM;
        const char *v[1] = {fams[i]->name};
        if (!pm__snap_series_add(s, cf, v, (double)stats[i * 5 + 4])) return PM_ENOMEM;
    }
    pm_snap_family_t *sf = pm__snap_family_add(s, PM_TYPE_COUNTER, "perfmetrics_snapshots",
                                               "Snapshots taken of this registry.", "", NULL, 0);
    if (!sf || !pm__snap_series_add(s, sf, NULL, (double)(r->snapshots + 1))) return PM_ENOMEM;
    sf = pm__snap_family_add(s, PM_TYPE_GAUGE, "perfmetrics_snapshot_duration_seconds",
                             "Duration of the previous snapshot.", "seconds", NULL, 0);
    if (!sf || !pm__snap_series_add(s, sf, NULL, r->last_snapshot_seconds)) return PM_ENOMEM;
    pm_status_t st = pm__collectors_self_metrics(r, s);
    if (st == PM_OK) st = pm__exporters_self_metrics(r, s);
    if (st == PM_OK) st = pm__push_self_metrics(r, s);
    return st;
}

static int cmp_family(const void *a, const void *b)
{
    return strcmp((*(pm_snap_family_t *const *)a)->name, (*(pm_snap_family_t *const *)b)->name);
}

pm_status_t pm_snapshot_new(pm_registry_t *r, pm_snapshot_t **out)
{
    if (out) *out = NULL;
    if (!r || !out) return PM_EINVAL;
    if (pm__in_callback) return PM_ESTATE;
    pm_snapshot_t *s = pm__calloc(&r->a, sizeof *s);
    if (!s) return PM_ENOMEM;
    s->a = r->a;
    atomic_init(&s->refs, 1);
    s->time = pm__wall_now();
    s->mono_ns = pm_now_ns();

    pthread_mutex_lock(&r->snap_lock);
    /* Other processes' blocks (pm_cells_attach): found and registered now; a
     * failure is retried by the next snapshot. */
    if (r->attaches) (void)pm__cells_attach_scan(r);
    pm__arena_draw(s, r->arena_pool);
    uint64_t t0 = pm__reg_now(r);
    uint64_t *dense = NULL, *stats = NULL;
    size_t dense_cap = 0;
    pm_family **fams = NULL;
    pm_status_t st = PM_ENOMEM;

    pthread_mutex_lock(&r->lock);
    if (r->attaches) (void)pm__cells_attach_copy_locked(r);
    pm__maintain_locked(r);
    size_t nfam = r->nfam;
    fams = pm__alloc(&r->a, (nfam ? nfam : 1) * sizeof *fams);
    stats = pm__alloc(&r->a, (nfam ? nfam : 1) * 5 * sizeof *stats);
    if (fams && stats) {
        st = PM_OK;
        for (size_t i = 0; i < nfam && st == PM_OK; i++) {
            pm_family *f = fams[i] = r->fams[i];
            st = read_family(s, f, t0, &dense, &dense_cap);
            stats[i * 5 + 0] = f->nseries + (f->overflow ? 1 : 0);
            stats[i * 5 + 1] = atomic_load_explicit(&f->refused, memory_order_relaxed);
            stats[i * 5 + 2] = atomic_load_explicit(&f->removed, memory_order_relaxed);
            stats[i * 5 + 3] = atomic_load_explicit(&f->rejected, memory_order_relaxed);
            stats[i * 5 + 4] = atomic_load_explicit(&f->coarse, memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&r->lock);
    if (r->attaches) pm__cells_attach_settle(r);

    /* User code (callback gauges, collectors) runs without the registry lock. */
    for (size_t i = 0; i < s->nfam && st == PM_OK; i++) {
        pm_snap_family_t *sf = s->fams[i];
        if (!sf->cb) continue;
        pm__in_callback++;
        double v = sf->cb(sf->cb_user);
        pm__in_callback--;
        if (!pm__snap_series_add(s, sf, NULL, v)) st = PM_ENOMEM;
    }
    if (st == PM_OK) pm__collectors_run(r, s);
    if (st == PM_OK && r->self_metrics) st = self_metrics(r, s, fams, nfam, stats);
    if (st == PM_OK) {
        if (s->nfam > 1) qsort(s->fams, s->nfam, sizeof *s->fams, cmp_family);
        pthread_mutex_lock(&r->lock);
        expire_ttl_locked(r, t0);
        pm__maintain_locked(r);
        pthread_mutex_unlock(&r->lock);
        r->snapshots++;
        pm__arena_built(s);
        uint64_t t1 = pm__reg_now(r);
        r->last_snapshot_seconds = t1 > t0 ? (double)(t1 - t0) * 1e-9 : 0.0;
    }
    pm__collectors_settle(r, st == PM_OK);
    pthread_mutex_unlock(&r->snap_lock);
    pm__free(&r->a, dense);
    pm__free(&r->a, stats);
    pm__free(&r->a, fams);
    if (st != PM_OK) {
        snapshot_free(s);
        return st;
    }
    *out = s;
    return PM_OK;
}

pm_snapshot_t *pm_snapshot_ref(pm_snapshot_t *s)
{
    if (s) atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void pm_snapshot_release(pm_snapshot_t *s)
{
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) snapshot_free(s);
}

/* ------------------------------------------------------------ accessors */

double pm_snapshot_time(const pm_snapshot_t *s) { return s ? s->time : NAN; }
size_t pm_snapshot_family_count(const pm_snapshot_t *s) { return s ? s->nfam : 0; }
const pm_snap_family_t *pm_snapshot_family(const pm_snapshot_t *s, size_t i)
{
    return s && i < s->nfam ? s->fams[i] : NULL;
}

const char *pm_snap_family_name(const pm_snap_family_t *f) { return f ? f->name : NULL; }
const char *pm_snap_family_help(const pm_snap_family_t *f) { return f ? f->help : NULL; }
const char *pm_snap_family_unit(const pm_snap_family_t *f) { return f ? f->unit : NULL; }
pm_type_t pm_snap_family_type(const pm_snap_family_t *f) { return f ? f->type : (pm_type_t)0; }
size_t pm_snap_family_label_count(const pm_snap_family_t *f) { return f ? f->nlabels : 0; }
const char *pm_snap_family_label_name(const pm_snap_family_t *f, size_t i)
{
    return f && i < f->nlabels ? f->labels[i] : NULL;
}
size_t pm_snap_family_bucket_count(const pm_snap_family_t *f) { return f ? f->nbounds : 0; }
double pm_snap_family_bucket_bound(const pm_snap_family_t *f, size_t i)
{
    return f && i < f->nbounds ? f->bounds[i] : NAN;
}
size_t pm_snap_family_series_count(const pm_snap_family_t *f) { return f ? f->nseries : 0; }
const pm_snap_series_t *pm_snap_family_series(const pm_snap_family_t *f, size_t i)
{
    return f && i < f->nseries ? &f->series[i] : NULL;
}

const char *pm_snap_series_label_value(const pm_snap_series_t *s, size_t i)
{
    return s && i < s->fam->nlabels ? s->values[i] : NULL;
}
int pm_snap_series_is_overflow(const pm_snap_series_t *s) { return s ? s->overflow : 0; }
double pm_snap_series_created(const pm_snap_series_t *s) { return s ? s->created : NAN; }
double pm_snap_series_value(const pm_snap_series_t *s) { return s ? s->value : NAN; }

static bool is_hist(const pm_snap_series_t *s) { return s && s->h; }

uint64_t pm_snap_series_count(const pm_snap_series_t *s) { return is_hist(s) ? s->h->count : 0; }
double pm_snap_series_sum(const pm_snap_series_t *s) { return is_hist(s) ? s->h->sum : NAN; }
double pm_snap_series_min(const pm_snap_series_t *s) { return is_hist(s) ? s->h->min : NAN; }
double pm_snap_series_max(const pm_snap_series_t *s) { return is_hist(s) ? s->h->max : NAN; }
double pm_snap_series_mean(const pm_snap_series_t *s)
{
    return is_hist(s) && s->h->count ? s->h->sum / (double)s->h->count : NAN;
}
double pm_snap_series_stddev(const pm_snap_series_t *s) { return is_hist(s) ? s->h->stddev : NAN; }
uint64_t pm_snap_series_bucket_cumulative(const pm_snap_series_t *s, size_t i)
{
    return is_hist(s) && i <= s->fam->nbounds ? s->h->cum[i] : 0;
}
pm_status_t pm_snap_series_quantile(const pm_snap_series_t *s, double q, double *out)
{
    if (!is_hist(s) || !out) return PM_EINVAL;
    return pm_hdata_quantile(&s->h->hd, q, out);
}
const pm_hdata_t *pm_snap_series_hdata(const pm_snap_series_t *s)
{
    return is_hist(s) ? &s->h->hd : NULL;
}

/* The exemplars of s by export bucket, or NULL. */
static const pm_snap_exemplar *series_exemplars(const pm_snap_series_t *s)
{
    const pm_snap_family_t *f = s->fam;
    if (!f->ex) return NULL;
    size_t i = (size_t)(s - f->series);
    return i < f->nex ? f->ex[i] : NULL;
}

int pm__snap_series_has_exemplars(const pm_snap_series_t *s)
{
    return s && series_exemplars(s) != NULL;
}

pm_status_t pm_snap_series_exemplar(const pm_snap_series_t *s, size_t bucket,
                                    pm_trace_context_t *ctx, double *value, double *unix_seconds)
{
    static const uint8_t none[16];
    pm_status_t st = PM_OK;
    const pm_snap_exemplar *e = NULL;
    if (!s) {
        st = PM_EINVAL;
    } else if (bucket > (s->fam->type == PM_TYPE_HISTOGRAM ? s->fam->nbounds : 0)) {
        st = PM_ERANGE;
    } else {
        const pm_snap_exemplar *ex = series_exemplars(s);
        if (!ex || !memcmp((e = &ex[bucket])->ctx.trace_id, none, sizeof none)) st = PM_ENOENT;
    }
    if (ctx) {
        if (st == PM_OK)
            *ctx = e->ctx;
        else
            memset(ctx, 0, sizeof *ctx);
    }
    if (value) *value = st == PM_OK ? e->value : NAN;
    if (unix_seconds) *unix_seconds = st == PM_OK ? e->time : NAN;
    return st;
}
