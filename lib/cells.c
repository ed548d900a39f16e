/* Cell blocks (include/perfmetrics/cells.h): pages of doubles a binding's own
 * code writes, summed into their series by snapshots.
 *
 * Everything structural (the binding table, pages, regions) changes only
 * under the registry lock, in calls the block's writer makes; snapshots read
 * it under the same lock, so they see every binding either before or after a
 * bind, grow or free, never half of one. The cells themselves are written by
 * the writer with no lock at all: aligned 8-byte stores, read here with
 * relaxed atomic loads of the same width (which compile to plain loads, and
 * tell the compiler and race detectors what they are). Nothing the writer stores is trusted: counts, keys and the
 * header words it could overwrite are checked before they index anything,
 * and the region geometry comes from the binding, not from the page.
 *
 * A bound series carries `bound` (set under the lock, never cleared), so
 * series no block ever bound cost a snapshot nothing. */
#include "internal/cells_internal.h"

#include <math.h>

#define PAGE_BYTES PM_CELLS_PAGE_BYTES
#define HCAP_MIN PM_CELLS_HCAP_MIN
#define HCAP_MAX PM_CELLS_HCAP_MAX

typedef pm_cells_binding binding;

/* ------------------------------------------------------------ reading cells */

#define cell_load pm__cell_load
#define cell_store pm__cell_store

static inline double *cell_at(const pm_cells_t *b, size_t index)
{
    return b->pages[index / PM_CELLS_PAGE_DOUBLES] + index % PM_CELLS_PAGE_DOUBLES;
}

/* A histogram region's parts. */
static inline size_t h_counts_off(uint32_t nbounds) { return PM_CELLS_H_BOUNDS + 2u * nbounds; }
static inline size_t h_doubles(uint32_t nbounds, uint32_t cap)
{
    return h_counts_off(nbounds) + cap + cap / 2;
}
size_t pm__cells_h_doubles(uint32_t nbounds, uint32_t cap) { return h_doubles(nbounds, cap); }
static inline uint32_t *h_keys(double *region, uint32_t nbounds, uint32_t cap)
{
    return (uint32_t *)(void *)(region + h_counts_off(nbounds) + cap);
}

/* A writer's count as a whole number of observations (a stray value counts
 * as none rather than corrupting the series). */
static inline uint64_t count_of(double c)
{
    return c >= 1 && c < 9007199254740992.0 ? (uint64_t)c : 0;
}

/* A counter cell's value: never negative, never NaN. */
static inline double counter_cell(double c) { return c > 0 && c <= INFINITY ? c : 0; }

/* ------------------------------------------------------------ the binding table
 * Open addressing by series address. A writer's block binds a series once;
 * an attached mirror may hold several entries for one series (several of the
 * writer's series that the attaching registry folds into one, such as its
 * overflow series), so readers visit every entry of the series. */

static size_t ptr_hash(const pm_series *s, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)s * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (cap - 1);
}

static binding *tab_find(const pm_cells_t *b, const pm_series *s)
{
    if (!b->tabcap) return NULL;
    for (size_t i = ptr_hash(s, b->tabcap);; i = (i + 1) & (b->tabcap - 1)) {
        if (b->tab[i].s == s) return &b->tab[i];
        if (!b->tab[i].s) return NULL;
    }
}

/* The entry after e for the same series, or NULL. */
static binding *tab_next(const pm_cells_t *b, const binding *e)
{
    size_t mask = b->tabcap - 1;
    for (size_t i = ((size_t)(e - b->tab) + 1) & mask; b->tab[i].s; i = (i + 1) & mask)
        if (b->tab[i].s == e->s) return &b->tab[i];
    return NULL;
}

#define for_each_binding(e, b, s) for (binding *e = tab_find(b, s); e; e = tab_next(b, e))

/* Room for one more binding (at most half full). */
pm_status_t pm__cells_tab_reserve(pm_cells_t *b)
{
    if (2 * (b->nbound + 1) <= b->tabcap) return PM_OK;
    size_t nc = b->tabcap ? 2 * b->tabcap : 16;
    binding *n = pm__calloc(&b->reg->a, nc * sizeof *n);
    if (!n) return PM_ENOMEM;
    for (size_t i = 0; i < b->tabcap; i++) {
        if (!b->tab[i].s) continue;
        size_t j = ptr_hash(b->tab[i].s, nc);
        while (n[j].s) j = (j + 1) & (nc - 1);
        n[j] = b->tab[i];
    }
    pm__free(&b->reg->a, b->tab);
    b->tab = n;
    b->tabcap = nc;
    return PM_OK;
}

binding *pm__cells_tab_insert(pm_cells_t *b, pm_series *s)
{
    size_t i = ptr_hash(s, b->tabcap);
    while (b->tab[i].s) i = (i + 1) & (b->tabcap - 1);
    b->tab[i].s = s;
    b->tab[i].ok = 1;
    b->nbound++;
    return &b->tab[i];
}

/* ------------------------------------------------------------ pages */

static double *page_new(pm_cells_t *b)
{
    if (b->sh) return pm__cshared_page_new(b->sh, b->npages);
    double *page = pm__alloc_aligned(&b->reg->a, PAGE_BYTES);
    if (page) memset(page, 0, PAGE_BYTES);
    return page;
}

/* Under r->lock: the index of n zeroed doubles in one page. */
static pm_status_t take_doubles(pm_cells_t *b, size_t n, size_t *index)
{
    if (n > PM_CELLS_PAGE_DOUBLES) return PM_ERANGE;
    if (!b->npages || PM_CELLS_PAGE_DOUBLES - b->top < n) {
        if (b->npages == b->cappages) {
            size_t nc = b->cappages ? 2 * b->cappages : 4;
            double **p = pm__alloc(&b->reg->a, nc * sizeof *p);
            if (!p) return PM_ENOMEM;
            if (b->npages) memcpy(p, b->pages, b->npages * sizeof *p);
            pm__free(&b->reg->a, b->pages);
            b->pages = p;
            b->cappages = nc;
        }
        double *page = page_new(b);
        if (!page) return b->sh ? PM_EIO : PM_ENOMEM;
        b->pages[b->npages++] = page;
        b->top = 0;
    }
    *index = (b->npages - 1) * PM_CELLS_PAGE_DOUBLES + b->top;
    b->top += n;
    return PM_OK;
}

/* ------------------------------------------------------------ public calls */

static pm_status_t cells_new(pm_registry_t *r, const char *dir, pm_cells_t **out)
{
    if (out) *out = NULL;
    if (!r || !out || (dir && !*dir)) return PM_EINVAL;
    pm_cells_t *b = pm__calloc(&r->a, sizeof *b);
    if (!b) return PM_ENOMEM;
    b->reg = r;
    if (dir) {
        pm_status_t st = pm__cshared_open(r, dir, &b->sh);
        if (st != PM_OK) {
            pm__free(&r->a, b);
            return st;
        }
    }
    pthread_mutex_lock(&r->lock);
    b->next = r->cells;
    r->cells = b;
    pthread_mutex_unlock(&r->lock);
    *out = b;
    return PM_OK;
}

pm_status_t pm_cells_new(pm_registry_t *r, pm_cells_t **out) { return cells_new(r, NULL, out); }

pm_status_t pm_cells_new_shared(pm_registry_t *r, const char *dir, pm_cells_t **out)
{
    if (!dir) {
        if (out) *out = NULL;
        return PM_EINVAL;
    }
    return cells_new(r, dir, out);
}

/* Under r->lock: checks s for a bind of type t into b; the existing binding
 * when there is one. */
static pm_status_t bind_check(pm_cells_t *b, pm_series *s, pm_type_t t, binding **found)
{
    if (s->type != t) return PM_ETYPE;
    if (s->reg != b->reg) return PM_EEXIST;
    if (t == PM_TYPE_GAUGE && s->fam->cb) return PM_ETYPE;
    *found = tab_find(b, s);
    return PM_OK;
}

/* Under r->lock: a fresh histogram region of `cap` count cells for s. The
 * stores are atomic: an attaching process may be copying the page. */
static pm_status_t h_region_new(pm_cells_t *b, const pm_series *s, uint32_t cap, size_t *index)
{
    const pm_hist_layout *L = s->h.hl;
    pm_status_t st = take_doubles(b, h_doubles(L->nbounds, cap), index);
    if (st != PM_OK) return st;
    double *h = cell_at(b, *index);
    cell_store(&h[PM_CELLS_H_MIN], INFINITY);
    cell_store(&h[PM_CELLS_H_MAX], -INFINITY);
    cell_store(&h[PM_CELLS_H_CAP], cap);
    cell_store(&h[PM_CELLS_H_LOWEST], L->lowest);
    cell_store(&h[PM_CELLS_H_HIGHEST], L->highest);
    cell_store(&h[PM_CELLS_H_NBOUNDS], L->nbounds);
    for (uint32_t k = 0; k < L->nbounds; k++) {
        cell_store(&h[PM_CELLS_H_BOUNDS + k], L->bounds[k]);
        cell_store(&h[PM_CELLS_H_BOUNDS + L->nbounds + k], L->bidx[k]);
    }
    return PM_OK;
}

/* Under r->lock: the cells of a new binding of s. A shared block's histogram
 * also takes a slot, the double that tells an attaching process where the
 * region is now (it moves when it grows), and every shared binding is written
 * to the catalog before it counts as made. */
static pm_status_t bind_new(pm_cells_t *b, pm_series *s, size_t *at, size_t *slot)
{
    pm_status_t st = pm__cells_tab_reserve(b);
    *slot = 0;
    if (st == PM_OK && s->type == PM_TYPE_HISTOGRAM && b->sh) st = take_doubles(b, 1, slot);
    if (st == PM_OK)
        st = s->type == PM_TYPE_HISTOGRAM ? h_region_new(b, s, HCAP_MIN, at)
                                          : take_doubles(b, 1, at);
    if (st == PM_OK && b->sh) {
        if (s->type == PM_TYPE_HISTOGRAM) cell_store(cell_at(b, *slot), (double)*at);
        st = pm__cshared_catalog(b->sh, &b->reg->a, s,
                                 s->type == PM_TYPE_HISTOGRAM ? *slot : *at);
    }
    return st; /* on error the doubles taken stay unused: nothing names them */
}

/* Binds series s of type `type` (a counter's or gauge's one cell, a
 * histogram's region of HCAP_MIN count cells), or finds its binding. */
static pm_status_t bind(pm_cells_t *b, pm_series *s, pm_type_t type, size_t *index)
{
    pm_registry *r = b->reg;
    binding *e = NULL;
    pthread_mutex_lock(&r->lock);
    pm_status_t st = bind_check(b, s, type, &e);
    if (st == PM_OK && !e) {
        size_t at, slot;
        if ((st = bind_new(b, s, &at, &slot)) == PM_OK) {
            e = pm__cells_tab_insert(b, s);
            e->index = at;
            e->slot = slot;
            e->cap = type == PM_TYPE_HISTOGRAM ? HCAP_MIN : 0;
            atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
            s->bound = 1;
            if (type == PM_TYPE_GAUGE) __atomic_store_n(&s->slot, 1u, __ATOMIC_RELEASE);
        }
    }
    if (st == PM_OK) *index = e->index;
    pthread_mutex_unlock(&r->lock);
    return st;
}

pm_status_t pm_cells_counter(pm_cells_t *b, pm_counter_t *c, size_t *index)
{
    if (!b || !c || !index) return PM_EINVAL;
    return bind(b, (pm_series *)c, PM_TYPE_COUNTER, index);
}

pm_status_t pm_cells_histogram(pm_cells_t *b, pm_histogram_t *hist, size_t *index)
{
    if (!b || !hist || !index) return PM_EINVAL;
    return bind(b, (pm_series *)hist, PM_TYPE_HISTOGRAM, index);
}

pm_status_t pm_cells_gauge(pm_cells_t *b, pm_gauge_t *g, size_t *index)
{
    if (!b || !g || !index) return PM_EINVAL;
    return bind(b, (pm_series *)g, PM_TYPE_GAUGE, index);
}

/* Calls fn(key, count, ctx) for every counted key of a histogram binding. */
static void h_for_each(const pm_cells_t *b, const binding *e,
                       void (*fn)(uint32_t key, uint64_t n, void *ctx), void *ctx)
{
    const pm_hist_layout *L = e->s->h.hl;
    double *h = cell_at(b, e->index);
    const double *counts = h + h_counts_off(L->nbounds);
    const uint32_t *keys = h_keys(h, L->nbounds, e->cap);
    for (uint32_t i = 0; i < e->cap; i++) {
        uint32_t k = __atomic_load_n(&keys[i], __ATOMIC_RELAXED);
        if (!k || k > L->nkeys) continue; /* free, or not a key of this layout */
        uint64_t n = count_of(cell_load(&counts[i]));
        if (n) fn(k - 1, n, ctx);
    }
}

typedef struct {
    double *counts;
    uint32_t *keys;
    uint32_t mask, shift, used;
} h_dest;

static void h_reinsert(uint32_t key, uint64_t n, void *ctx)
{
    h_dest *d = ctx;
    uint32_t i = (key * 0x9E3779B1u) >> d->shift;
    while (__atomic_load_n(&d->keys[i], __ATOMIC_RELAXED)) i = (i + 1) & d->mask;
    __atomic_store_n(&d->keys[i], key + 1, __ATOMIC_RELAXED);
    cell_store(&d->counts[i], (double)n);
    d->used++;
}

/* Under r->lock: the histogram binding whose region starts at index. */
static binding *h_binding_at(const pm_cells_t *b, size_t index)
{
    for (size_t i = 0; i < b->tabcap; i++)
        if (b->tab[i].s && b->tab[i].cap && b->tab[i].index == index) return &b->tab[i];
    return NULL;
}

/* Under r->lock: moves e's counts, sum and extremes into the fresh region at
 * `at` of cap cells, points the binding (and a shared block's slot) at it and
 * zeroes the old region. A shared block's header sequence is odd meanwhile;
 * the slot moves before the old region is cleared, so a writer that dies
 * half way leaves one complete region named by the slot. */
static void h_move(pm_cells_t *b, binding *e, size_t at, uint32_t cap)
{
    uint32_t nb = e->s->h.hl->nbounds;
    double *from = cell_at(b, e->index), *to = cell_at(b, at);
    if (b->sh) pm__cshared_grow_begin(b->sh);
    h_dest d = {to + h_counts_off(nb), h_keys(to, nb, cap), cap - 1,
                32u - (uint32_t)__builtin_ctz(cap), 0};
    h_for_each(b, e, h_reinsert, &d);
    for (unsigned i = PM_CELLS_H_SUM; i <= PM_CELLS_H_MAX; i++) cell_store(&to[i], cell_load(&from[i]));
    cell_store(&to[PM_CELLS_H_USED], d.used);
    if (b->sh) cell_store(cell_at(b, e->slot), (double)at);
    for (size_t i = 0, n = h_doubles(nb, e->cap); i < n; i++) cell_store(&from[i], 0);
    if (b->sh) pm__cshared_grow_end(b->sh);
    e->index = at;
    e->cap = cap;
}

pm_status_t pm_cells_histogram_grow(pm_cells_t *b, size_t index, size_t *new_index)
{
    if (!b || !new_index) return PM_EINVAL;
    pm_registry *r = b->reg;
    pthread_mutex_lock(&r->lock);
    binding *e = h_binding_at(b, index);
    pm_status_t st = e ? PM_OK : PM_EINVAL;
    size_t at = 0;
    if (st == PM_OK && e->cap >= HCAP_MAX) st = PM_ERANGE;
    uint32_t cap = st == PM_OK && e->cap * 4 < HCAP_MAX ? e->cap * 4 : HCAP_MAX;
    if (st == PM_OK) st = h_region_new(b, e->s, cap, &at);
    if (st == PM_OK) {
        h_move(b, e, at, cap);
        *new_index = at;
    }
    pthread_mutex_unlock(&r->lock);
    return st;
}

size_t pm_cells_page_count(const pm_cells_t *b) { return b ? b->npages : 0; }

double *pm_cells_page(const pm_cells_t *b, size_t page)
{
    return b && page < b->npages ? b->pages[page] : NULL;
}

/* ------------------------------------------------------------ snapshot side */

double pm__cells_counter_read(const pm_series *s)
{
    double v = 0;
    for (const pm_cells_t *b = s->reg->cells; b; b = b->next)
        for_each_binding(e, b, s) if (e->ok) v += counter_cell(cell_load(cell_at(b, e->index)));
    return v;
}

double pm__cells_gauge_read(const pm_series *s)
{
    double v = 0;
    for (const pm_cells_t *b = s->reg->cells; b; b = b->next)
        for_each_binding(e, b, s) if (e->ok) v += cell_load(cell_at(b, e->index));
    return v;
}

void pm__cells_hist_read(const pm_series *s, void (*fn)(uint32_t key, uint64_t n, void *ctx),
                         void *ctx, double *sum, double *min, double *max)
{
    for (const pm_cells_t *b = s->reg->cells; b; b = b->next)
        for_each_binding(e, b, s) {
            if (!e->ok) continue;
            if (fn) h_for_each(b, e, fn, ctx);
            const double *h = cell_at(b, e->index);
            double v = cell_load(&h[PM_CELLS_H_SUM]), lo = cell_load(&h[PM_CELLS_H_MIN]),
                   hi = cell_load(&h[PM_CELLS_H_MAX]);
            *sum += v; /* as the library's own sum: +Inf and -Inf recorded make NaN */
            if (lo < *min) *min = lo;
            if (hi > *max) *max = hi;
        }
}

/* ------------------------------------------------------------ freeing */

static void h_fold_key(uint32_t key, uint64_t n, void *ctx)
{
    pm__hist_fold_count(ctx, key, n);
}

/* Under r->lock: adds the binding's cells into its series (the block is
 * already off the registry's list, so no snapshot counts them twice). A
 * gauge's cell was its writer's live contribution: it goes with the block. */
void pm__cells_fold_locked(pm_cells_t *b, binding *e)
{
    pm_series *s = e->s;
    if (!e->ok) return;
    if (s->type == PM_TYPE_COUNTER) {
        double c = counter_cell(cell_load(cell_at(b, e->index)));
        if (c > 0) pm__counter_fold(s, c);
        return;
    }
    if (s->type != PM_TYPE_HISTOGRAM) return;
    h_for_each(b, e, h_fold_key, s);
    const double *h = cell_at(b, e->index);
    pm__hist_fold_extra(s, cell_load(&h[PM_CELLS_H_SUM]), cell_load(&h[PM_CELLS_H_MIN]),
                        cell_load(&h[PM_CELLS_H_MAX]));
}

/* A counter's total, or a histogram's sum, as a snapshot reads it. */
static double total_of(const pm_series *s)
{
    return s->type == PM_TYPE_COUNTER ? pm__counter_read(s) : pm__hist_sum_read(s);
}

/* Folding adds the block's doubles into the series in another order than the
 * live read did, which can round a fractional total down by an ulp: a scraper
 * would read a counter reset. The total before the fold is held: what
 * rounding took is added back, never more than 2^-40 of the total (a larger
 * drop is not rounding but a negative value observed meanwhile). */
void pm__cells_fold_held_locked(pm_cells_t *b, binding *e)
{
    pm_series *s = e->s;
    if (!e->ok) return;
    if (s->type == PM_TYPE_GAUGE) {
        e->ok = 0;
        return;
    }
    double before = total_of(s);
    pm__cells_fold_locked(b, e);
    e->ok = 0; /* reads no longer count this binding: the series holds it */
    double d = before - total_of(s);
    if (!(d > 0) || d > fabs(before) * 0x1p-40) return;
    for (int i = 0; i < 8 && d > 0; i++) {
        if (s->type == PM_TYPE_COUNTER)
            pm__counter_fold(s, d);
        else
            pm__hist_fold_extra(s, d, INFINITY, -INFINITY);
        d = before - total_of(s);
    }
}

void pm__cells_unlink_locked(pm_registry *r, pm_cells_t *b)
{
    for (pm_cells_t **p = &r->cells; *p; p = &(*p)->next)
        if (*p == b) {
            *p = b->next;
            break;
        }
}

void pm_cells_free(pm_cells_t *b)
{
    if (!b) return;
    pm_registry *r = b->reg;
    pthread_mutex_lock(&r->lock);
    /* Each binding is folded while the block is still listed, so that the
     * series' total before and after can be compared. */
    for (size_t i = 0; i < b->tabcap; i++)
        if (b->tab[i].s) pm__cells_fold_held_locked(b, &b->tab[i]);
    pm__cells_unlink_locked(r, b);
    for (size_t i = 0; i < b->tabcap; i++)
        if (b->tab[i].s) pm__series_unref_locked(r, b->tab[i].s);
    pm__maintain_locked(r);
    pthread_mutex_unlock(&r->lock);
    if (b->sh) {
        pm__cshared_close(b->sh, b->pages, b->npages); /* unmaps; the files stay */
    } else {
        for (size_t i = 0; i < b->npages; i++) pm__free_aligned(&r->a, b->pages[i]);
    }
    pm__free(&r->a, b->pages);
    pm__free(&r->a, b->tab);
    pm__free(&r->a, b);
}

/* ------------------------------------------------------------ gauges */

pm_status_t pm_gauge_cell(pm_gauge_t *g, double **cell)
{
    if (cell) *cell = NULL;
    pm_series *s = (pm_series *)g;
    if (!s || !cell) return PM_EINVAL;
    if (s->type != PM_TYPE_GAUGE) return PM_ETYPE;
    /* The cell holds a double's bits; an aligned store of a double is the
     * same store as pm_gauge_set's. */
    *cell = (double *)(void *)&s->gbits;
    return PM_OK;
}

void pm__cells_free_all(pm_registry *r)
{
    pm__cells_attach_free_all(r); /* mirrors first: they are not the writers' blocks */
    while (r->cells) pm_cells_free(r->cells);
}
