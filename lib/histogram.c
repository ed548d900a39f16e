/* Histograms: log-linear fine buckets read straight from the IEEE-754 bits
 * (the exponent picks the octave, the top 6 mantissa bits one of 64
 * sub-buckets), stored sparsely, and exact counts for the exported bounds.
 *
 * Error bound: a fine bucket [lo, hi) has hi/lo <= 65/64. Reporting
 * v^ = 2*lo*hi/(lo+hi) gives |v^ - v|/v <= (hi-lo)/(hi+lo) <= 1/129 for every v
 * in the bucket, so any nearest-rank quantile of values inside the range errs
 * by at most 1/129 (0.775%). Merging adds bucket counts: the bound survives.
 *
 * ------------------------------------------------------------ design
 * Keys. A value's cell key is its fine index (0 underflow, 1..nb, nb+1
 * overflow), except that a value <= bounds[k] inside bound k's fine bucket
 * (its "straddle" bucket) takes key nb + 2 + k. A record therefore bumps
 * exactly one cell, and the snapshot knows each exported bound's cumulative
 * count exactly: the fine buckets below the bound's bucket plus the bound
 * keys up to k in it. nkeys = nb + 2 + nbounds.
 *
 * Generations. Cells live in generations (pm_hgen, internal/pm_internal.h):
 * a sparse open-addressing table of cap cells (u16 key + 1, u64 count; cap a
 * power of two >= 32, filled to at most 7/8, growth asked for at 3/4), or a
 * dense array of nkeys counts when a sparse table would cost more than half
 * of it. Memory follows the keys seen, not the range: a series whose values
 * hit 20 fine buckets holds a 32-cell table (320 B of cells).
 *
 * Who writes where. A series has one generation chain per recording stripe
 * (units[stripe]: stripe 0's from creation, another stripe's once
 * maintenance granted it; until then that stripe records into stripe 0's),
 * written with atomic read-modify-writes (one add on the cell, one CAS on
 * the stripe's sum word, as 1.3's dense copies), and one per attached thread
 * (pm_thread_attach), in the thread's shard directory by histogram slot,
 * written by that thread alone with plain loads and stores: no lock prefix,
 * and eight sum words chosen by key so consecutive records do not wait on
 * one floating-point add. min and max are shared words written only by new
 * extremes. acc holds generations folded in under the registry lock
 * (threads that detached or exited, replaced generations). A snapshot adds
 * every cell of every chain: count = the sum of all cells, always.
 *
 * A key that does not exist yet. A recorder inserts it into its own table
 * (a CAS on the key word when the table is shared, a store when it is its
 * own): no allocation. The insert that reaches 3/4 asks for growth (a bit
 * on the series' request stack, or an entry in the shard's request ring);
 * maintenance (every snapshot, registration and pm_registry_maintain)
 * allocates a table 4x as large (or dense), copies the keys and publishes
 * it, with the old one as its prev. When a stripe's table is full before
 * maintenance came, the recorder takes a spare dense generation from the
 * registry's pool for the layout (pm_hpool: one exchange, no allocation;
 * min(8, series) spares, refilled by maintenance) and installs it with a
 * CAS. An attached thread whose table is full, or not granted yet, records
 * into stripe 0's without asking a table for its own stripe.
 * Only when the pool is empty too does a value go to the series' coarse
 * cell for its export bucket: count, sum, min, max and every exported
 * bucket stay exact; its quantile is reported at that bucket's last fine
 * bucket; family->coarse counts such values (perfmetrics_coarse_observations).
 *
 * Reclaiming. A stripe's older generations can still be written by a
 * recorder that loaded the pointer before the swap, so they stay until the
 * series is freed; growing 4x at a time keeps them under 1/3 of the chain.
 * An attached thread is the only writer of its generations, so when
 * maintenance swaps one in, the owner's next record clears its `fresh` mark
 * (a release store) and the next maintenance moves the older one to acc,
 * which it may compact (allocation failures keep the chain as it is). Thread
 * exit and pm_thread_detach relink the thread's chains into acc: nothing is
 * copied, nothing can fail, nothing is lost. A removed or expired series is
 * freed, with every chain, once no handle holds it (family.c).
 *
 * Fast paths. Each entry point computes the key, then either the attached
 * path (out of line, a tail call) or the common striped case inline; any
 * miss (no stripe yet, no table, key not at its first probe position, table
 * full) tail-calls one function that finishes the whole record, so the fast
 * paths save no registers. Loads a locked add would delay are issued before
 * it.
 *
 * Bytes per series (what bench_memory measures, doc/histograms.md):
 *   88 (pm_series) + 48 + 8 x stripes + 8 x (nbounds + 1) (extension, coarse
 *   cells) + 48 x (nbounds + 1) exemplar slots when on + label values
 *   + per recording stripe: a generation of 64 + 10 x cap bytes (sparse,
 *     cap = the power of two >= 4/3 x keys, >= 32) or 64 + 8 x nkeys (dense),
 *     each allocation cache-line aligned (up to 72 B of slack)
 *   + per attached thread that records into it: 8 (directory entry) +
 *     120 + 10 x cap (or 120 + 8 x nkeys)
 *   + per registry and layout: min(8, series) x (64 + 8 x nkeys) spare. */
#include "internal/exemplar_internal.h"
#include "internal/span_internal.h"

#include <math.h>

#define HG_MIN_CAP 32u

pm_status_t pm__hist_layout_init(const pm_alloc_t *a, pm_hist_layout *L, double lowest,
                                 double highest, const double *bounds, size_t nbounds)
{
    memset(L, 0, sizeof *L);
    L->lowest = lowest;
    L->highest = highest;
    L->lo_key = pm__d2u(lowest) >> PM_HIST_SHIFT;
    L->nb = (uint32_t)((pm__d2u(highest) >> PM_HIST_SHIFT) - L->lo_key + 1);
    L->nbounds = (uint32_t)nbounds;
    L->nkeys = L->nb + 2 + L->nbounds;
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

/* ------------------------------------------------------------ generations */

static size_t hgen_header(unsigned nsum)
{
    return sizeof(pm_hgen) + (size_t)nsum * sizeof(uint64_t);
}

/* A zeroed generation of cap cells (sparse) or nkeys cells (cap == 0: dense). */
static pm_hgen *hgen_new(const pm_alloc_t *a, uint32_t nkeys, uint32_t cap, bool single)
{
    bool dense = cap == 0;
    if (dense) cap = nkeys;
    unsigned nsum = single ? PM_HG_SUMS : 1;
    size_t hdr = hgen_header(nsum);
    size_t bytes = hdr + (size_t)cap * sizeof(uint64_t) + (dense ? 0 : (size_t)cap * sizeof(uint16_t));
    pm_hgen *g = pm__alloc_aligned(a, bytes);
    if (!g) return NULL;
    g->cnt = (_Atomic uint64_t *)(void *)((char *)g + hdr);
    g->keys = dense ? NULL : (_Atomic uint16_t *)(void *)(g->cnt + cap);
    g->sumw = &g->sum[0];
    g->cap = cap;
    g->single = single;
    g->nsum = (uint8_t)nsum;
    if (!dense) {
        unsigned lg = 0;
        while ((1u << lg) < cap) lg++;
        g->shift = (uint8_t)(32 - lg);
        g->limit = cap - cap / 8;
        g->want_at = cap - cap / 4;
    }
    return g;
}

static void hgen_free_chain(const pm_alloc_t *a, pm_hgen *g)
{
    while (g) {
        pm_hgen *p = g->prev;
        pm__free_aligned(a, g);
        g = p;
    }
}

static inline uint32_t hash_slot(const pm_hgen *g, uint32_t key)
{
    return (key * 0x9E3779B1u) >> g->shift;
}

/* Keys a generation holds, for sizing the next one: all of them when dense. */
static uint32_t hgen_keys(const pm_hgen *g, uint32_t nkeys)
{
    if (!g) return 0;
    return g->keys ? atomic_load_explicit(&g->used, memory_order_relaxed) : nkeys;
}

/* A generation for about `keys` keys with room to spare (x4 when growing,
 * x4/3 for a new owner), dense when a sparse table would cost more than half
 * of a dense one. */
static pm_hgen *hgen_for(const pm_alloc_t *a, const pm_hist_layout *L, uint32_t keys, bool single,
                         bool grow)
{
    uint64_t need = grow ? (uint64_t)keys * 4 : (uint64_t)keys * 4 / 3 + 1;
    uint64_t cap = HG_MIN_CAP;
    while (cap < need) cap *= 2;
    bool dense = keys >= L->nkeys || cap * 10 > (uint64_t)L->nkeys * 4;
    return hgen_new(a, L->nkeys, dense ? 0 : (uint32_t)cap, single);
}

/* Plain insert-or-find (the generation is not published, or r->lock makes
 * this the only writer). The table has room: callers size it. */
static _Atomic uint64_t *hgen_cell_plain(pm_hgen *g, uint32_t key)
{
    if (!g->keys) return &g->cnt[key];
    uint16_t want = (uint16_t)(key + 1);
    uint32_t mask = g->cap - 1;
    for (uint32_t h = hash_slot(g, key);; h = (h + 1) & mask) {
        uint16_t k = atomic_load_explicit(&g->keys[h], memory_order_relaxed);
        if (k == want) return &g->cnt[h];
        if (k == 0) {
            atomic_store_explicit(&g->keys[h], want, memory_order_relaxed);
            atomic_store_explicit(&g->used, atomic_load_explicit(&g->used, memory_order_relaxed) + 1,
                                  memory_order_relaxed);
            return &g->cnt[h];
        }
    }
}

static void hgen_copy_keys(pm_hgen *dst, const pm_hgen *src)
{
    if (!dst->keys || !src->keys) return;
    for (uint32_t i = 0; i < src->cap; i++) {
        uint16_t k = atomic_load_explicit(&src->keys[i], memory_order_relaxed);
        if (k) (void)hgen_cell_plain(dst, k - 1u);
    }
}

static void hgen_add_plain(_Atomic uint64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static double hgen_sum(const pm_hgen *g)
{
    double s = 0;
    for (unsigned i = 0; i < g->nsum; i++)
        s += pm__u2d(atomic_load_explicit(&g->sum[i], memory_order_relaxed));
    return s;
}

/* ------------------------------------------------------------ spare dense generations */

static pm_hgen *pool_take(pm_hpool *p)
{
    for (unsigned i = 0; i < PM_HPOOL_SLOTS; i++) {
        pm_hgen *g = atomic_load_explicit(&p->slot[i], memory_order_relaxed);
        if (g && atomic_compare_exchange_strong_explicit(&p->slot[i], &g, NULL,
                                                         memory_order_acquire, memory_order_relaxed))
            return g;
    }
    return NULL;
}

/* A spare a recorder took but could not install (another thread installed
 * first): untouched, so maintenance can put it back. */
static void spare_push(pm_registry *r, pm_hgen *g)
{
    pm_hgen *head = atomic_load_explicit(&r->hspare, memory_order_relaxed);
    do {
        g->prev = head;
    } while (!atomic_compare_exchange_weak_explicit(&r->hspare, &head, g, memory_order_release,
                                                    memory_order_relaxed));
}

/* ------------------------------------------------------------ recording: shared tables */

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

static inline void sum_into(_Atomic uint64_t *w, double v)
{
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(w, &old, pm__d2u(pm__u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

static inline void sum_shared(pm_hgen *g, double v) { sum_into(g->sumw, v); }

static inline void add_shared(pm_hgen *g, _Atomic uint64_t *c, double v)
{
    /* The sum word and its value are loaded before the locked add: loads
     * after it wait for it to complete. A stale value only fails the CAS. */
    _Atomic uint64_t *w = g->sumw;
    uint64_t old = atomic_load_explicit(w, memory_order_relaxed);
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(w, &old, pm__d2u(pm__u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* The cell of key in a shared table from probe position h on, inserting it
 * with a CAS on the key word; NULL when the table is full. */
__attribute__((noinline)) static _Atomic uint64_t *probe_shared(pm_series *s, unsigned unit,
                                                                pm_hgen *g, uint32_t key, uint32_t h)
{
    uint16_t want = (uint16_t)(key + 1);
    uint32_t mask = g->cap - 1;
    for (uint32_t n = 0; n <= mask; n++, h = (h + 1) & mask) {
        uint16_t k = atomic_load_explicit(&g->keys[h], memory_order_relaxed);
        if (k == want) return &g->cnt[h];
        if (k != 0) continue;
        if (atomic_load_explicit(&g->used, memory_order_relaxed) >= g->limit) return NULL;
        if (!atomic_compare_exchange_strong_explicit(&g->keys[h], &k, want, memory_order_relaxed,
                                                     memory_order_relaxed)) {
            if (k == want) return &g->cnt[h];
            continue;
        }
        if (atomic_fetch_add_explicit(&g->used, 1, memory_order_relaxed) + 1 == g->want_at) {
            atomic_store_explicit(&g->want, 1, memory_order_relaxed);
            pm__hist_want(s, unit);
        }
        return &g->cnt[h];
    }
    return NULL;
}

static inline _Atomic uint64_t *cell_shared(pm_series *s, unsigned unit, pm_hgen *g, uint32_t key)
{
    if (!g->keys) return &g->cnt[key];
    uint32_t h = hash_slot(g, key);
    if (PM_LIKELY(atomic_load_explicit(&g->keys[h], memory_order_relaxed) == (uint16_t)(key + 1)))
        return &g->cnt[h];
    return probe_shared(s, unit, g, key, h);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* The stripe's table is full: a newer generation, a spare dense one, or the
 * coarse cell of v's export bucket. */
__attribute__((noinline, cold)) static void record_full(pm_series *s, unsigned unit, pm_hgen *g,
                                                        uint32_t key, double v)
{
    pm_hist_ext *x = pm__hist_ext(s);
    const pm_hist_layout *L = s->h.hl;
    for (int tries = 0; tries < 64; tries++) {
        pm_hgen *cur = atomic_load_explicit(&x->units[unit], memory_order_acquire);
        if (cur != g) {
            g = cur;
            _Atomic uint64_t *c = cell_shared(s, unit, g, key);
            if (c) {
                add_shared(g, c, v);
                return;
            }
            continue;
        }
        pm_hgen *d = L->pool ? pool_take(L->pool) : NULL;
        if (!d) {
            /* Another thread of this stripe may have just taken the last
             * spare and be about to install it: look again a few times. */
            if (tries == 63) break;
            cpu_relax();
            continue;
        }
        d->prev = g;
        d->sumw = g->sumw;
        if (atomic_compare_exchange_strong_explicit(&x->units[unit], &cur, d, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            add_shared(d, &d->cnt[key], v);
            return;
        }
        d->prev = NULL;
        d->sumw = &d->sum[0];
        spare_push(s->reg, d);
    }
    atomic_fetch_add_explicit(&pm__hist_coarse(s)[pm__exemplar_bucket(L, v)], 1,
                              memory_order_relaxed);
    atomic_fetch_add_explicit(&s->fam->coarse, 1, memory_order_relaxed);
    sum_shared(g, v);
}

static inline __attribute__((always_inline)) void extremes(pm_series *s, double v)
{
    pm_hist_ext *x = pm__hist_ext(s);
    atomic_min_d(&x->min, v);
    atomic_max_d(&x->max, v);
}

/* The whole record of key/v through the calling thread's stripe, every case
 * (stripe not assigned yet, no generation for it, key to insert, table
 * full). `ask`: request the stripe's own generation if it has none (an
 * attached thread waiting for its own table does not: it shares stripe 0's
 * meanwhile). The fast paths tail-call it on any miss, so they save no
 * registers. */
__attribute__((noinline)) static void observe_striped_slow(pm_series *s, uint32_t key, double v,
                                                            bool ask)
{
    pm_hist_ext *x = pm__hist_ext(s);
    unsigned st = pm__tls_stripe;
    if (PM_UNLIKELY(st == 0)) st = pm__stripe_assign();
    unsigned unit = (st - 1) & s->mask;
    pm_hgen *g = atomic_load_explicit(&x->units[unit], memory_order_acquire);
    if (!g) {
        /* No generation for this stripe yet: share stripe 0's (still exact)
         * and ask maintenance for our own. */
        if (ask) pm__hist_want(s, unit);
        unit = 0;
        g = atomic_load_explicit(&x->units[0], memory_order_acquire);
    }
    _Atomic uint64_t *c = cell_shared(s, unit, g, key);
    if (c)
        add_shared(g, c, v);
    else
        record_full(s, unit, g, key, v);
    extremes(s, v);
}

/* The common case inline: stripe assigned, its generation there, the key
 * found at its first probe position. */
static inline __attribute__((always_inline)) void observe_striped(pm_series *s, uint32_t key,
                                                                  double v)
{
    unsigned st = pm__tls_stripe;
    pm_hgen *g;
    if (PM_UNLIKELY(st == 0) ||
        PM_UNLIKELY(!(g = atomic_load_explicit(&pm__hist_ext(s)->units[(st - 1) & s->mask],
                                               memory_order_acquire)))) {
        observe_striped_slow(s, key, v, true);
        return;
    }
    _Atomic uint64_t *c;
    if (!g->keys) {
        c = &g->cnt[key];
    } else {
        uint32_t h = hash_slot(g, key);
        if (PM_UNLIKELY(atomic_load_explicit(&g->keys[h], memory_order_relaxed) !=
                        (uint16_t)(key + 1))) {
            observe_striped_slow(s, key, v, true);
            return;
        }
        c = &g->cnt[h];
    }
    add_shared(g, c, v);
    extremes(s, v);
}

/* ------------------------------------------------------------ recording: attached threads */

static void shard_request(pm_shard *sh, uint32_t slot)
{
    uint32_t h = atomic_load_explicit(&sh->req_head, memory_order_relaxed);
    uint32_t t = atomic_load_explicit(&sh->req_tail, memory_order_acquire);
    if (h - t >= PM_SHARD_REQS) {
        atomic_store_explicit(&sh->req_lost, 1, memory_order_release);
        return;
    }
    atomic_store_explicit(&sh->req[h % PM_SHARD_REQS], slot, memory_order_relaxed);
    atomic_store_explicit(&sh->req_head, h + 1, memory_order_release);
}

__attribute__((noinline, cold)) static void ask_first(pm_shard *sh, _Atomic(pm_hgen *) *e,
                                                      uint32_t slot)
{
    atomic_store_explicit(e, PM_HGEN_WANTED, memory_order_relaxed);
    shard_request(sh, slot);
}

/* The owner's cell for key from probe position h on, inserting it; NULL when
 * the table is full. */
__attribute__((noinline)) static _Atomic uint64_t *probe_own(pm_shard *sh, uint32_t slot, pm_hgen *g,
                                                             uint32_t key, uint32_t h)
{
    uint16_t want = (uint16_t)(key + 1);
    uint32_t mask = g->cap - 1;
    for (uint32_t n = 0; n <= mask; n++, h = (h + 1) & mask) {
        uint16_t k = atomic_load_explicit(&g->keys[h], memory_order_relaxed);
        if (k == want) return &g->cnt[h];
        if (k != 0) continue;
        uint32_t used = atomic_load_explicit(&g->used, memory_order_relaxed);
        if (used >= g->limit) return NULL;
        atomic_store_explicit(&g->keys[h], want, memory_order_relaxed);
        atomic_store_explicit(&g->used, used + 1, memory_order_relaxed);
        if (used + 1 == g->want_at) {
            atomic_store_explicit(&g->want, 1, memory_order_relaxed);
            shard_request(sh, slot);
        }
        return &g->cnt[h];
    }
    return NULL;
}

/* Records key/v into the calling thread's own generation for s, or through
 * its stripe when it has none yet or it is full. Out of line (a tail call
 * from the entry points), so the unattached path keeps its shape. */
__attribute__((noinline)) static void observe_own(pm_shard *sh, pm_series *s, uint32_t key,
                                                  double v)
{
    if (sh->reg != s->reg) { /* attached to another registry */
        observe_striped(s, key, v);
        return;
    }
    uint32_t slot = pm__hist_ext(s)->hslot;
    _Atomic(pm_hgen *) *e = pm__shard_hentry(sh, slot);
    pm_hgen *g = atomic_load_explicit(e, memory_order_acquire);
    if (PM_UNLIKELY((uintptr_t)g <= (uintptr_t)PM_HGEN_WANTED)) {
        if (!g) ask_first(sh, e, slot);
        observe_striped_slow(s, key, v, false);
        return;
    }
    /* Seen: the generation it replaced takes no more writes from us. */
    if (PM_UNLIKELY(atomic_load_explicit(&g->fresh, memory_order_relaxed)))
        atomic_store_explicit(&g->fresh, 0, memory_order_release);
    _Atomic uint64_t *c;
    if (!g->keys) {
        c = &g->cnt[key];
    } else {
        uint32_t h = hash_slot(g, key);
        if (PM_LIKELY(atomic_load_explicit(&g->keys[h], memory_order_relaxed) == (uint16_t)(key + 1)))
            c = &g->cnt[h];
        else if (!(c = probe_own(sh, slot, g, key, h))) {
            observe_striped_slow(s, key, v, false);
            return;
        }
    }
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1, memory_order_relaxed);
    /* The sum word follows the key: records of different buckets add to
     * different words, with no counter of our own to carry from record to
     * record. */
    uint32_t r = key & (PM_HG_SUMS - 1);
    atomic_store_explicit(&g->sum[r],
                          pm__d2u(pm__u2d(atomic_load_explicit(&g->sum[r], memory_order_relaxed)) + v),
                          memory_order_relaxed);
    extremes(s, v);
}

/* ------------------------------------------------------------ recording: entry points */

/* Records v (not NaN) into s. Inlined into each recording entry point; the
 * exemplar step is theirs. */
static inline __attribute__((always_inline)) void observe_value(pm_series *s, double v)
{
    uint32_t key = pm__hist_key(s->h.hl, v);
    pm_shard *sh = pm__tls_shard;
    if (PM_UNLIKELY(sh != NULL)) {
        observe_own(sh, s, key, v);
        return;
    }
    observe_striped(s, key, v);
}

/* A record while a span is current: the same record, then the exemplar. Out
 * of line (a tail call), so the common path keeps its shape and pays one
 * load and test for exemplars. */
__attribute__((noinline)) static void observe_span(pm_series *s, double v, const pm_span_t *sp)
{
    observe_value(s, v);
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
    observe_value(s, v);
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
    observe_value(s, v);
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

/* ------------------------------------------------------------ series and families */

static void pool_free(pm_registry *r, pm_hpool *p)
{
    for (unsigned i = 0; i < PM_HPOOL_SLOTS; i++)
        pm__free_aligned(&r->a, atomic_load_explicit(&p->slot[i], memory_order_relaxed));
    pm__free(&r->a, p);
}

/* Fills p's empty slots up to min(PM_HPOOL_SLOTS, series): spares from
 * `spare` (a chain, consumed) first. */
static pm_status_t pool_fill(pm_registry *r, pm_hpool *p, size_t series, pm_hgen **spare)
{
    size_t want = series < PM_HPOOL_SLOTS ? series : PM_HPOOL_SLOTS;
    for (size_t i = 0; i < want; i++) {
        if (atomic_load_explicit(&p->slot[i], memory_order_relaxed)) continue;
        pm_hgen *g = NULL;
        for (pm_hgen **pp = spare; pp && *pp; pp = &(*pp)->prev)
            if ((*pp)->cap == p->nkeys && !(*pp)->keys) {
                g = *pp;
                *pp = g->prev;
                g->prev = NULL;
                break;
            }
        if (!g && !(g = hgen_new(&r->a, p->nkeys, 0, false))) return PM_ENOMEM;
        atomic_store_explicit(&p->slot[i], g, memory_order_release);
    }
    return PM_OK;
}

/* The pool for f's key count, found or created, and filled for one more
 * series: a registration may allocate, a record may not. */
static pm_status_t pool_join(pm_registry *r, pm_family *f)
{
    pm_hpool *p = f->hl.pool;
    if (!p) {
        for (p = r->hpools; p && p->nkeys != f->hl.nkeys; p = p->next) {
        }
        if (!p) {
            if (!(p = pm__calloc(&r->a, sizeof *p))) return PM_ENOMEM;
            p->nkeys = f->hl.nkeys;
            p->next = r->hpools;
            r->hpools = p;
        }
        f->hl.pool = p;
    }
    pm_status_t st = pool_fill(r, p, p->series + 1, NULL);
    if (st == PM_OK) p->series++;
    return st;
}

void pm__hist_pools_free(pm_registry *r)
{
    while (r->hpools) {
        pm_hpool *p = r->hpools;
        r->hpools = p->next;
        pool_free(r, p);
    }
    hgen_free_chain(&r->a, atomic_exchange_explicit(&r->hspare, NULL, memory_order_acquire));
}

pm_status_t pm__hist_series_init(pm_registry *r, pm_series *s)
{
    pm_hist_ext *x = pm__hist_ext(s);
    const pm_hist_layout *L = s->h.hl;
    atomic_init(&x->min, pm__d2u(INFINITY));
    atomic_init(&x->max, pm__d2u(-INFINITY));
    pm_hgen *g = hgen_new(&r->a, L->nkeys, HG_MIN_CAP, false);
    if (!g) return PM_ENOMEM;
    if (pm__hslot_alloc(r, s, &x->hslot) != PM_OK) {
        pm__free_aligned(&r->a, g);
        return PM_ENOMEM;
    }
    if (pool_join(r, s->fam) != PM_OK) {
        pm__hslot_free(r, x->hslot);
        pm__free_aligned(&r->a, g);
        return PM_ENOMEM;
    }
    atomic_init(&x->units[0], g);
    return PM_OK;
}

static void acks_forget(pm_shard *sh, uint32_t slot)
{
    for (size_t i = 0; i < sh->nacks;)
        if (sh->acks[i].slot == slot)
            sh->acks[i] = sh->acks[--sh->nacks];
        else
            i++;
}

void pm__hist_series_free(pm_registry *r, pm_series *s)
{
    pm_hist_ext *x = pm__hist_ext(s);
    for (unsigned i = 0; i <= s->mask; i++)
        hgen_free_chain(&r->a, atomic_load_explicit(&x->units[i], memory_order_relaxed));
    for (pm_shard *sh = r->shards; sh; sh = sh->next) {
        _Atomic(pm_hgen *) *e = pm__shard_hentry(sh, x->hslot);
        pm_hgen *g = atomic_exchange_explicit(e, NULL, memory_order_relaxed);
        if (g != PM_HGEN_WANTED) hgen_free_chain(&r->a, g);
        acks_forget(sh, x->hslot);
    }
    hgen_free_chain(&r->a, x->acc);
    x->acc = NULL;
    pm__hslot_free(r, x->hslot);
    pm_hpool *p = s->h.hl->pool;
    if (p) p->series--;
}

/* Compacts acc into one generation when it holds several; on allocation
 * failure the chain stays as it is (snapshots add every link). */
static void acc_compact(pm_registry *r, pm_series *s)
{
    pm_hist_ext *x = pm__hist_ext(s);
    const pm_hist_layout *L = s->h.hl;
    uint64_t keys = 0;
    unsigned links = 0;
    for (pm_hgen *g = x->acc; g; g = g->prev, links++) keys += hgen_keys(g, L->nkeys);
    if (links < 4) return;
    pm_hgen *n = hgen_for(&r->a, L, keys > L->nkeys ? L->nkeys : (uint32_t)keys, false, false);
    if (!n) return;
    double sum = 0;
    for (pm_hgen *g = x->acc; g; g = g->prev) {
        sum += hgen_sum(g);
        for (uint32_t i = 0; i < g->cap; i++) {
            uint64_t c = atomic_load_explicit(&g->cnt[i], memory_order_relaxed);
            uint16_t k = g->keys ? atomic_load_explicit(&g->keys[i], memory_order_relaxed) : 0;
            if (c && (!g->keys || k)) hgen_add_plain(hgen_cell_plain(n, g->keys ? k - 1u : i), c);
        }
    }
    atomic_store_explicit(&n->sum[0], pm__d2u(sum), memory_order_relaxed);
    hgen_free_chain(&r->a, x->acc);
    x->acc = n;
}

/* Moves chain g (no writer left) into s's acc. */
static void acc_link(pm_registry *r, pm_series *s, pm_hgen *g)
{
    pm_hist_ext *x = pm__hist_ext(s);
    pm_hgen *t = g;
    while (t->prev) t = t->prev;
    t->prev = x->acc;
    x->acc = g;
    acc_compact(r, s);
}

/* Calls fn for every generation of s: each stripe's chain, each attached
 * thread's chain, acc (r->lock). */
static void for_each_gen(const pm_series *s, void (*fn)(const pm_hgen *g, void *ctx), void *ctx)
{
    const pm_hist_ext *x = pm__hist_ext(s);
    for (unsigned i = 0; i <= s->mask; i++)
        for (const pm_hgen *g = atomic_load_explicit(&x->units[i], memory_order_acquire); g;
             g = g->prev)
            fn(g, ctx);
    for (const pm_shard *sh = s->reg->shards; sh; sh = sh->next) {
        const pm_hgen *g = atomic_load_explicit(pm__shard_hentry(sh, x->hslot), memory_order_acquire);
        if (g == PM_HGEN_WANTED) continue;
        for (; g; g = g->prev) fn(g, ctx);
    }
    for (const pm_hgen *g = x->acc; g; g = g->prev) fn(g, ctx);
}

/* Calls fn(key, count, ctx) for every non-zero cell of g. */
static inline void for_each_cell(const pm_hgen *g, void (*fn)(uint32_t key, uint64_t c, void *ctx),
                                 void *ctx)
{
    for (uint32_t i = 0; i < g->cap; i++) {
        uint32_t key = i;
        if (g->keys) {
            uint16_t k = atomic_load_explicit(&g->keys[i], memory_order_relaxed);
            if (!k) continue;
            key = k - 1u;
        }
        uint64_t c = atomic_load_explicit(&g->cnt[i], memory_order_relaxed);
        if (c) fn(key, c, ctx);
    }
}

typedef struct {
    uint32_t nkeys;
    uint64_t keys;
} count_ctx;

static void count_keys(const pm_hgen *g, void *ctx)
{
    count_ctx *c = ctx;
    c->keys += hgen_keys(g, c->nkeys);
}

typedef struct {
    pm_hgen *dst;
    double sum;
} negate_ctx;

static void negate_cell(uint32_t key, uint64_t c, void *ctx)
{
    negate_ctx *n = ctx;
    hgen_add_plain(hgen_cell_plain(n->dst, key), 0 - c);
}

static void negate_gen(const pm_hgen *g, void *ctx)
{
    negate_ctx *n = ctx;
    n->sum -= hgen_sum(g);
    for_each_cell(g, negate_cell, ctx);
}

void pm__hist_series_reset(pm_registry *r, pm_series *s)
{
    /* Counts are cancelled in acc rather than zeroed in place: an attached
     * owner's plain store would undo a zeroing that raced it. acc becomes
     * -(every cell) in u64 arithmetic, which wraps, so acc + cells is zero
     * now and counts what comes after. Best effort: when the generation
     * cannot be allocated, the values stay. */
    pm_hist_ext *x = pm__hist_ext(s);
    const pm_hist_layout *L = s->h.hl;
    count_ctx cc = {L->nkeys, 0};
    for_each_gen(s, count_keys, &cc);
    negate_ctx n = {hgen_for(&r->a, L, cc.keys > L->nkeys ? L->nkeys : (uint32_t)cc.keys, false,
                             false),
                    0};
    if (!n.dst) return;
    for_each_gen(s, negate_gen, &n);
    atomic_store_explicit(&n.dst->sum[0], pm__d2u(n.sum), memory_order_relaxed);
    hgen_free_chain(&r->a, x->acc);
    x->acc = n.dst;
    _Atomic uint64_t *coarse = pm__hist_coarse(s);
    for (uint32_t k = 0; k <= L->nbounds; k++)
        atomic_store_explicit(&coarse[k], 0, memory_order_relaxed);
    atomic_store_explicit(&x->min, pm__d2u(INFINITY), memory_order_relaxed);
    atomic_store_explicit(&x->max, pm__d2u(-INFINITY), memory_order_relaxed);
}

/* ------------------------------------------------------------ attached threads' generations */

void pm__hist_shard_fold(pm_registry *r, pm_shard *sh)
{
    for (size_t ci = 0; ci < sh->hnchunks; ci++)
        for (uint32_t i = 0; i < PM_CHUNK_SLOTS; i++) {
            uint32_t slot = (uint32_t)(ci * PM_CHUNK_SLOTS + i);
            pm_hgen *g = atomic_exchange_explicit(pm__shard_hentry(sh, slot), NULL,
                                                  memory_order_acquire);
            if ((uintptr_t)g > (uintptr_t)PM_HGEN_WANTED) acc_link(r, r->hseries[slot], g);
        }
    sh->nacks = 0;
}

void pm__hist_shard_drop(pm_registry *r, pm_shard *sh)
{
    for (size_t ci = 0; ci < sh->hnchunks; ci++)
        for (uint32_t i = 0; i < PM_CHUNK_SLOTS; i++) {
            uint32_t slot = (uint32_t)(ci * PM_CHUNK_SLOTS + i);
            pm_hgen *g = atomic_exchange_explicit(pm__shard_hentry(sh, slot), NULL,
                                                  memory_order_acquire);
            if (g != PM_HGEN_WANTED) hgen_free_chain(&r->a, g);
        }
    sh->nacks = 0;
}

/* The keys s holds, for sizing a generation for a new owner. */
static uint32_t series_keys(const pm_series *s)
{
    const pm_hist_ext *x = pm__hist_ext(s);
    uint32_t nkeys = s->h.hl->nkeys, keys = hgen_keys(x->acc, nkeys);
    for (unsigned i = 0; i <= s->mask; i++) {
        uint32_t k = hgen_keys(atomic_load_explicit(&x->units[i], memory_order_relaxed), nkeys);
        if (k > keys) keys = k;
    }
    return keys;
}

/* A bigger generation for g (its keys copied), or NULL. */
static pm_hgen *hgen_grown(pm_registry *r, const pm_hist_layout *L, const pm_hgen *g, bool single)
{
    pm_hgen *n = hgen_for(&r->a, L, hgen_keys(g, L->nkeys), single, true);
    if (n) hgen_copy_keys(n, g);
    return n;
}

/* One request of a shard for slot: a first generation, or a bigger one.
 * Returns false when it must be retried (out of memory). */
static bool shard_serve(pm_registry *r, pm_shard *sh, uint32_t slot)
{
    pm_series *s = r->hseries[slot];
    _Atomic(pm_hgen *) *e = pm__shard_hentry(sh, slot);
    pm_hgen *g = atomic_load_explicit(e, memory_order_acquire);
    if (!s || !g) return true; /* the series went, or nothing is asked */
    const pm_hist_layout *L = s->h.hl;
    if (g == PM_HGEN_WANTED) {
        pm_hgen *n = hgen_for(&r->a, L, series_keys(s), true, false);
        if (!n) return false;
        atomic_store_explicit(e, n, memory_order_release);
        return true;
    }
    if (!atomic_load_explicit(&g->want, memory_order_relaxed) || !g->keys) return true;
    if (g->prev) return false; /* the previous swap is not settled yet: next pass */
    if (sh->nacks == sh->capacks) {
        size_t nc = sh->capacks ? sh->capacks * 2 : 8;
        pm_hack *na = pm__alloc(&r->a, nc * sizeof *na);
        if (!na) return false;
        if (sh->nacks) memcpy(na, sh->acks, sh->nacks * sizeof *na);
        pm__free(&r->a, sh->acks);
        sh->acks = na;
        sh->capacks = nc;
    }
    pm_hgen *n = hgen_grown(r, L, g, true);
    if (!n) return false;
    n->prev = g;
    atomic_store_explicit(&n->fresh, 1, memory_order_relaxed);
    atomic_store_explicit(e, n, memory_order_release);
    sh->acks[sh->nacks++] = (pm_hack){slot, n};
    return true;
}

static void shard_maintain(pm_registry *r, pm_shard *sh)
{
    /* Swaps the owner has seen: the older generation takes no more writes. */
    for (size_t i = 0; i < sh->nacks;) {
        pm_hack a = sh->acks[i];
        pm_hgen *g = atomic_load_explicit(pm__shard_hentry(sh, a.slot), memory_order_relaxed);
        if (g == a.gen && atomic_load_explicit(&g->fresh, memory_order_acquire)) {
            i++;
            continue;
        }
        if (g == a.gen && g->prev) {
            pm_hgen *old = g->prev;
            g->prev = NULL;
            acc_link(r, r->hseries[a.slot], old);
        }
        sh->acks[i] = sh->acks[--sh->nacks];
    }
    bool retry = false;
    uint32_t t = atomic_load_explicit(&sh->req_tail, memory_order_relaxed);
    uint32_t h = atomic_load_explicit(&sh->req_head, memory_order_acquire);
    for (; t != h; t++)
        if (!shard_serve(r, sh, atomic_load_explicit(&sh->req[t % PM_SHARD_REQS], memory_order_relaxed)))
            retry = true;
    atomic_store_explicit(&sh->req_tail, t, memory_order_release);
    if (atomic_exchange_explicit(&sh->req_lost, 0, memory_order_acquire)) {
        for (size_t slot = 0; slot < sh->hnchunks * PM_CHUNK_SLOTS; slot++)
            if (!shard_serve(r, sh, (uint32_t)slot)) retry = true;
    }
    /* Out of memory: serve it again on a later pass. */
    if (retry) atomic_store_explicit(&sh->req_lost, 1, memory_order_relaxed);
}

/* ------------------------------------------------------------ stripes' requests */

void pm__hist_want(pm_series *s, unsigned stripe)
{
    pm_hist_ext *x = pm__hist_ext(s);
    /* Every record of a stripe without a table asks: only the first writes,
     * so the series' line is not bounced by the others. */
    uint64_t bit = 1ull << stripe;
    if ((atomic_load_explicit(&x->want_mask, memory_order_relaxed) & bit) &&
        atomic_load_explicit(&x->want_pending, memory_order_relaxed))
        return;
    atomic_fetch_or_explicit(&x->want_mask, bit, memory_order_relaxed);
    if (atomic_load_explicit(&x->want_pending, memory_order_relaxed)) return;
    if (atomic_exchange_explicit(&x->want_pending, 1, memory_order_acq_rel)) return;
    pm_registry *r = s->reg;
    pm_series *head = atomic_load_explicit(&r->want_head, memory_order_relaxed);
    do {
        x->want_next = head;
    } while (!atomic_compare_exchange_weak_explicit(&r->want_head, &head, s, memory_order_release,
                                                    memory_order_relaxed));
}

/* Serves stripe st of s: a first generation, or a bigger one. false: retry. */
static bool stripe_serve(pm_registry *r, pm_series *s, unsigned st)
{
    pm_hist_ext *x = pm__hist_ext(s);
    const pm_hist_layout *L = s->h.hl;
    pm_hgen *g = atomic_load_explicit(&x->units[st], memory_order_acquire);
    pm_hgen *n;
    if (!g) {
        if (!(n = hgen_for(&r->a, L, series_keys(s), false, false))) return false;
    } else if (g->keys && atomic_load_explicit(&g->want, memory_order_relaxed)) {
        if (!(n = hgen_grown(r, L, g, false))) return false;
        n->prev = g;
        n->sumw = g->sumw;
    } else {
        return true;
    }
    /* A recorder may have installed a spare meanwhile: then ours is not needed. */
    if (!atomic_compare_exchange_strong_explicit(&x->units[st], &g, n, memory_order_release,
                                                 memory_order_relaxed)) {
        n->prev = NULL;
        pm__free_aligned(&r->a, n);
    }
    return true;
}

/* Under r->lock, before any retired memory is freed in the same pass, so every
 * series on the stack is still allocated. */
void pm__hist_grant_wants_locked(pm_registry *r)
{
    pm_series *s = atomic_exchange_explicit(&r->want_head, NULL, memory_order_acquire);
    while (s) {
        pm_hist_ext *x = pm__hist_ext(s);
        pm_series *next = x->want_next;
        uint64_t want = atomic_exchange_explicit(&x->want_mask, 0, memory_order_relaxed);
        uint64_t failed = 0;
        for (unsigned st = 0; st <= s->mask; st++)
            if ((want & (1ull << st)) && !stripe_serve(r, s, st)) failed |= 1ull << st;
        atomic_store_explicit(&x->want_pending, 0, memory_order_release);
        /* Asked again while we served (the ask saw pending set and left its
         * bit), or out of memory: queue it for a later pass. */
        failed |= atomic_exchange_explicit(&x->want_mask, 0, memory_order_relaxed);
        for (unsigned st = 0; failed && st <= s->mask; st++)
            if (failed & (1ull << st)) pm__hist_want(s, st);
        s = next;
    }
}

/* ------------------------------------------------------------ maintenance */

static void pools_refill(pm_registry *r)
{
    pm_hgen *spare = atomic_exchange_explicit(&r->hspare, NULL, memory_order_acquire);
    for (pm_hpool *p = r->hpools; p; p = p->next)
        if (pool_fill(r, p, p->series, &spare) != PM_OK) break; /* retried next pass */
    hgen_free_chain(&r->a, spare);
}

void pm__hist_maintain_locked(pm_registry *r)
{
    pm__hist_grant_wants_locked(r);
    for (pm_shard *sh = r->shards; sh; sh = sh->next) shard_maintain(r, sh);
    pools_refill(r);
}

/* ------------------------------------------------------------ snapshot side */

typedef struct {
    const pm_hist_layout *L;
    uint64_t *fine, *parts, *touched;
    double sum;
} collect_ctx;

static inline void collect_add(collect_ctx *c, uint32_t idx, uint64_t n)
{
    c->fine[idx] += n;
    c->touched[idx / 64] |= 1ull << (idx % 64);
}

static void collect_cell(uint32_t key, uint64_t n, void *ctx)
{
    collect_ctx *c = ctx;
    const pm_hist_layout *L = c->L;
    if (key >= L->nb + 2) {
        uint32_t k = key - (L->nb + 2);
        c->parts[k] += n;
        key = L->bidx[k];
    }
    collect_add(c, key, n);
}

static void collect_gen(const pm_hgen *g, void *ctx)
{
    collect_ctx *c = ctx;
    c->sum += hgen_sum(g);
    for_each_cell(g, collect_cell, ctx);
}

double pm__hist_collect(const pm_series *s, uint64_t *fine, uint64_t *parts, uint64_t *touched,
                        double *min, double *max)
{
    const pm_hist_layout *L = s->h.hl;
    collect_ctx c = {L, fine, parts, touched, 0};
    for_each_gen(s, collect_gen, &c);
    if (PM_UNLIKELY(s->bound)) pm__cells_hist_read(s, collect_cell, &c, &c.sum, min, max);
    _Atomic uint64_t *coarse = pm__hist_coarse(s);
    for (uint32_t k = 0; k <= L->nbounds; k++) {
        uint64_t n = atomic_load_explicit(&coarse[k], memory_order_relaxed);
        if (!n) continue;
        parts[k] += n;
        collect_add(&c, k < L->nbounds ? L->bidx[k] : L->nb + 1, n);
    }
    return c.sum;
}

static void sum_gen(const pm_hgen *g, void *ctx) { *(double *)ctx += hgen_sum(g); }

double pm__hist_sum_read(const pm_series *s)
{
    double sum = 0, min = INFINITY, max = -INFINITY;
    for_each_gen(s, sum_gen, &sum); /* in pm__hist_collect's order: the same rounding */
    if (PM_UNLIKELY(s->bound)) pm__cells_hist_read(s, NULL, NULL, &sum, &min, &max);
    return sum;
}

/* ------------------------------------------------------------ folding cell blocks */

/* The export bucket of key: a straddle key names its bound; a fine index
 * holds values above every bound whose fine index is at or below it. */
static uint32_t key_bucket(const pm_hist_layout *L, uint32_t key)
{
    if (key >= L->nb + 2) return key - (L->nb + 2);
    uint32_t k = 0;
    while (k < L->nbounds && L->bidx[k] <= key) k++;
    return k;
}

void pm__hist_fold_count(pm_series *s, uint32_t key, uint64_t n)
{
    pm_hist_ext *x = pm__hist_ext(s);
    const pm_hist_layout *L = s->h.hl;
    for (int tries = 0; tries < 4; tries++) {
        pm_hgen *g = atomic_load_explicit(&x->units[0], memory_order_acquire);
        _Atomic uint64_t *c = cell_shared(s, 0, g, key);
        if (c) {
            atomic_fetch_add_explicit(c, n, memory_order_relaxed);
            return;
        }
        pm_hgen *d = L->pool ? pool_take(L->pool) : NULL;
        if (!d) break;
        d->prev = g;
        d->sumw = g->sumw;
        if (atomic_compare_exchange_strong_explicit(&x->units[0], &g, d, memory_order_acq_rel,
                                                    memory_order_acquire)) {
            atomic_fetch_add_explicit(&d->cnt[key], n, memory_order_relaxed);
            return;
        }
        d->prev = NULL;
        d->sumw = &d->sum[0];
        spare_push(s->reg, d);
    }
    atomic_fetch_add_explicit(&pm__hist_coarse(s)[key_bucket(L, key)], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&s->fam->coarse, n, memory_order_relaxed);
}

void pm__hist_fold_extra(pm_series *s, double sum, double min, double max)
{
    pm_hgen *g = atomic_load_explicit(&pm__hist_ext(s)->units[0], memory_order_acquire);
    if (sum != 0) sum_shared(g, sum); /* NaN too: the sum of +Inf and -Inf, as recorded */
    if (min <= max) {
        extremes(s, min);
        extremes(s, max);
    }
}
