/* Registries: options, life cycle, the counter arena, stripes and the
 * grace-period machinery that makes lock-free look-ups safe against removal. */
#include "internal/snapshot_internal.h" /* pm__arena_pool_close */

#include <stdlib.h>
#include <unistd.h>

struct pm_registry_opts {
    pm_alloc_t a;
    unsigned stripes;
    int self_metrics;
    pm_clock_fn clock;
    void *clock_user;
};

PM_TLS unsigned pm__tls_stripe;
static _Atomic unsigned stripe_seq;

/* Threads get stripes round-robin in the order they first record, so the
 * first N recording threads never share a stripe when N <= stripes. */
unsigned pm__stripe_assign(void)
{
    unsigned s = atomic_fetch_add_explicit(&stripe_seq, 1, memory_order_relaxed) + 1;
    if (s == 0) s = atomic_fetch_add_explicit(&stripe_seq, 1, memory_order_relaxed) + 1;
    pm__tls_stripe = s;
    return s;
}

unsigned pm__default_stripes(void)
{
    long n = sysconf(_SC_NPROCESSORS_CONF);
    if (n < 2) n = 2;
    if (n > PM_MAX_STRIPES) n = PM_MAX_STRIPES;
    return (unsigned)pm__pow2_at_least((size_t)n);
}

pm_status_t pm_registry_opts_new(pm_registry_opts_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    pm_registry_opts_t *o = calloc(1, sizeof *o);
    if (!o) return PM_ENOMEM;
    o->a = pm__default_alloc;
    o->self_metrics = 1;
    *out = o;
    return PM_OK;
}

void pm_registry_opts_free(pm_registry_opts_t *o) { free(o); }

pm_status_t pm_registry_opts_set_allocator(pm_registry_opts_t *o, pm_alloc_fn alloc,
                                           pm_free_fn free_fn, void *user)
{
    if (!o || (!alloc) != (!free_fn)) return PM_EINVAL;
    if (!alloc) {
        o->a = pm__default_alloc;
    } else {
        o->a.alloc = alloc;
        o->a.free = free_fn;
        o->a.user = user;
    }
    return PM_OK;
}

pm_status_t pm_registry_opts_set_stripes(pm_registry_opts_t *o, unsigned stripes)
{
    if (!o) return PM_EINVAL;
    if (stripes < 1 || stripes > PM_MAX_STRIPES) return PM_ERANGE;
    o->stripes = (unsigned)pm__pow2_at_least(stripes);
    return PM_OK;
}

pm_status_t pm_registry_opts_set_clock(pm_registry_opts_t *o, pm_clock_fn fn, void *user)
{
    if (!o) return PM_EINVAL;
    o->clock = fn;
    o->clock_user = fn ? user : NULL;
    return PM_OK;
}

uint64_t pm__reg_now(const pm_registry *r)
{
    return r->clock ? r->clock(r->clock_user) : pm__mono_ns();
}

pm_status_t pm_registry_opts_set_self_metrics(pm_registry_opts_t *o, int enabled)
{
    if (!o) return PM_EINVAL;
    o->self_metrics = enabled != 0;
    return PM_OK;
}

pm_status_t pm_registry_new(const pm_registry_opts_t *opts, pm_registry_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    const pm_alloc_t *a = opts ? &opts->a : &pm__default_alloc;
    pm_registry *r = pm__calloc(a, sizeof *r);
    if (!r) return PM_ENOMEM;
    r->a = *a;
    r->stripes = opts && opts->stripes ? opts->stripes : pm__default_stripes();
    r->mask = r->stripes - 1; /* at most 63: fits the series' 8-bit mask */
    r->self_metrics = opts ? opts->self_metrics : 1;
    r->clock = opts ? opts->clock : NULL;
    r->clock_user = opts ? opts->clock_user : NULL;
    r->interval = 10.0;
    r->readers = pm__alloc_aligned(a, sizeof(pm_reader_cell) * 2 * r->stripes);
    r->arena_pool = pm__arena_pool_new(a);
    if (!r->readers || !r->arena_pool) {
        pm__free_aligned(a, r->readers);
        pm__arena_pool_close(r->arena_pool);
        pm__free(a, r);
        return PM_ENOMEM;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&r->lock, NULL);
    pthread_mutex_init(&r->snap_lock, NULL);
    pthread_mutex_init(&r->ex_lock, NULL);
    pthread_mutex_init(&r->run_lock, NULL);
    pthread_mutex_init(&r->th_lock, NULL);
    pthread_cond_init(&r->th_cond, &ca);
    pthread_condattr_destroy(&ca);
    pm__clock_init(); /* calibrate here, never on a recording path */
    *out = r;
    return PM_OK;
}

static void free_series_list(pm_registry *r, pm_series *s)
{
    while (s) {
        pm_series *next = s->next;
        pm__series_free_now(r, s);
        s = next;
    }
}

static void free_retired_list(pm_registry *r, pm_retired *n)
{
    while (n) {
        pm_retired *next = n->next;
        n->free_fn(r, n);
        n = next;
    }
}

void pm_registry_free(pm_registry_t *r)
{
    if (!r) return;
    pm_export_stop(r, 0);
    pm__exporters_free(r);
    pm__collectors_free(r);
    pm__shards_orphan(r);
    pm__cells_free_all(r);
    /* Nothing can read any more: everything retired goes now. */
    free_retired_list(r, r->waiting);
    free_retired_list(r, r->pending);
    free_series_list(r, r->waiting_s);
    free_series_list(r, r->pending_s);
    r->waiting = r->pending = NULL;
    r->waiting_s = r->pending_s = NULL;
    for (size_t i = 0; i < r->nfam; i++) pm__family_free(r, r->fams[i]);
    pm__free(&r->a, r->fams);
    pm__hist_pools_free(r);
    pm__free(&r->a, r->hseries);
    pm__free(&r->a, r->hfree);
    pm__free(&r->a, r->fam_index);
    for (size_t i = 0; i < r->nchunks; i++) pm__free_aligned(&r->a, r->chunks[i]);
    pm__free(&r->a, r->chunks);
    pm__free(&r->a, r->free_slots);
    pm__free_aligned(&r->a, r->readers);
    pm__arena_pool_close(r->arena_pool);
    pthread_mutex_destroy(&r->lock);
    pthread_mutex_destroy(&r->snap_lock);
    pthread_mutex_destroy(&r->ex_lock);
    pthread_mutex_destroy(&r->run_lock);
    pthread_mutex_destroy(&r->th_lock);
    pthread_cond_destroy(&r->th_cond);
    pm_alloc_t a = r->a;
    pm__free(&a, r);
}

static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;
static pm_registry *_Atomic default_registry;

pm_registry_t *pm_registry_default(void)
{
    pm_registry *r = atomic_load_explicit(&default_registry, memory_order_acquire);
    if (PM_LIKELY(r != NULL)) return r;
    pthread_mutex_lock(&default_lock);
    r = atomic_load_explicit(&default_registry, memory_order_relaxed);
    if (!r && pm_registry_new(NULL, &r) == PM_OK)
        atomic_store_explicit(&default_registry, r, memory_order_release);
    pthread_mutex_unlock(&default_lock);
    return r;
}

/* ------------------------------------------------------------ grace periods */

void pm__retire(pm_registry *r, pm_retired *node)
{
    node->next = r->pending;
    r->pending = node;
}

void pm__retire_series(pm_registry *r, pm_series *s)
{
    s->prev = NULL;
    s->next = r->pending_s;
    r->pending_s = s;
}


static bool phase_drained(pm_registry *r, unsigned p)
{
    for (unsigned s = 0; s < r->stripes; s++)
        if (atomic_load_explicit(&r->readers[p * r->stripes + s].n, memory_order_seq_cst) != 0)
            return false;
    return true;
}

/* A batch is freed once each reader phase has been seen empty after the batch
 * was unlinked: every reader that could have seen it was counted in one of the
 * two phases from before the unlink until it left. Flipping the phase steers
 * new readers away, so a busy phase drains. Never waits. */
static void grace_poll(pm_registry *r)
{
    atomic_thread_fence(memory_order_seq_cst);
    for (int round = 0; round < 2; round++) {
        if (!r->waiting && !r->waiting_s) {
            if (!r->pending && !r->pending_s) return;
            r->waiting = r->pending;
            r->waiting_s = r->pending_s;
            r->pending = NULL;
            r->pending_s = NULL;
            r->drained = 0;
        }
        for (int i = 0; i < 2; i++) {
            unsigned inactive = 1u - (atomic_load_explicit(&r->phase, memory_order_relaxed) & 1u);
            if (!(r->drained & (1u << inactive)) && phase_drained(r, inactive)) {
                r->drained |= 1u << inactive;
                atomic_store_explicit(&r->phase, inactive, memory_order_seq_cst);
            }
        }
        if (r->drained != 3) return;
        pm_retired *batch = r->waiting;
        pm_series *batch_s = r->waiting_s;
        r->waiting = NULL;
        r->waiting_s = NULL;
        /* Readers of the batch have all left, so any copy request they pushed
         * is on the stack now: drain it before the series go. */
        pm__hist_grant_wants_locked(r);
        free_retired_list(r, batch);
        free_series_list(r, batch_s);
    }
}

void pm__maintain_locked(pm_registry *r)
{
    pm__hist_maintain_locked(r);
    grace_poll(r);
}

pm_status_t pm_registry_maintain(pm_registry_t *r)
{
    if (!r) return PM_EINVAL;
    pthread_mutex_lock(&r->lock);
    pm__maintain_locked(r);
    pthread_mutex_unlock(&r->lock);
    return PM_OK;
}

/* ------------------------------------------------------------ counter arena */

static size_t chunk_bytes(const pm_registry *r)
{
    return (size_t)r->stripes * PM_CHUNK_SLOTS * sizeof(pm_counter_cell);
}

static pm_counter_cell *slot_cell(pm_registry *r, uint32_t slot)
{
    pm_counter_cell *base = (pm_counter_cell *)(void *)r->chunks[slot / PM_CHUNK_SLOTS];
    return base + slot % PM_CHUNK_SLOTS;
}

pm_status_t pm__counter_slot_alloc(pm_registry *r, uint32_t *slot, pm_counter_cell **cell)
{
    uint32_t s;
    if (r->nfree) {
        s = r->free_slots[r->nfree - 1];
        pm_counter_cell *c = slot_cell(r, s);
        for (unsigned st = 0; st < r->stripes; st++) {
            atomic_store_explicit(&c[st * PM_CHUNK_SLOTS].n, 0, memory_order_relaxed);
            atomic_store_explicit(&c[st * PM_CHUNK_SLOTS].dbits, 0, memory_order_relaxed);
        }
        pm__shards_zero_slot(r, s);
        r->nfree--;
    } else {
        if (r->next_slot == UINT32_MAX) return PM_ENOMEM;
        s = r->next_slot;
        size_t ci = s / PM_CHUNK_SLOTS;
        if (ci >= r->nchunks) {
            if (r->nchunks == r->capchunks) {
                size_t nc = r->capchunks ? r->capchunks * 2 : 16;
                unsigned char **n = pm__alloc(&r->a, nc * sizeof *n);
                if (!n) return PM_ENOMEM;
                if (r->nchunks) memcpy(n, r->chunks, r->nchunks * sizeof *n);
                pm__free(&r->a, r->chunks);
                r->chunks = n;
                r->capchunks = nc;
            }
            unsigned char *c = pm__alloc_aligned(&r->a, chunk_bytes(r));
            if (!c) return PM_ENOMEM;
            if (pm__shards_add_chunk(r, ci) != PM_OK) {
                pm__free_aligned(&r->a, c);
                return PM_ENOMEM;
            }
            r->chunks[r->nchunks++] = c;
        }
        /* The free list must be able to take every slot back without failing. */
        if (r->capfree < (size_t)s + 1) {
            size_t nc = r->capfree ? r->capfree * 2 : 64;
            while (nc < (size_t)s + 1) nc *= 2;
            uint32_t *n = pm__alloc(&r->a, nc * sizeof *n);
            if (!n) return PM_ENOMEM;
            if (r->nfree) memcpy(n, r->free_slots, r->nfree * sizeof *n);
            pm__free(&r->a, r->free_slots);
            r->free_slots = n;
            r->capfree = nc;
        }
        r->next_slot++;
    }
    *slot = s;
    *cell = slot_cell(r, s);
    return PM_OK;
}

void pm__counter_slot_free(pm_registry *r, uint32_t slot) { r->free_slots[r->nfree++] = slot; }

/* ------------------------------------------------------------ histogram slots */

/* A histogram series' index into every attached thread's generation
 * directory; slots come in chunks of PM_CHUNK_SLOTS, and each new chunk is
 * added to every shard first. The free list can always take a slot back. */
pm_status_t pm__hslot_alloc(pm_registry *r, pm_series *s, uint32_t *slot)
{
    uint32_t h;
    if (r->nhfree) {
        h = r->hfree[--r->nhfree];
    } else {
        if (r->next_hslot == UINT32_MAX - PM_CHUNK_SLOTS) return PM_ENOMEM;
        h = r->next_hslot;
        if (h >= r->hcap) {
            size_t cap = r->hcap + PM_CHUNK_SLOTS;
            pm_series **hs = pm__calloc(&r->a, cap * sizeof *hs);
            uint32_t *hf = pm__alloc(&r->a, cap * sizeof *hf);
            if (!hs || !hf || pm__shards_add_hchunk(r, r->hcap / PM_CHUNK_SLOTS) != PM_OK) {
                pm__free(&r->a, hs);
                pm__free(&r->a, hf);
                return PM_ENOMEM;
            }
            if (r->hcap) memcpy(hs, r->hseries, r->hcap * sizeof *hs);
            pm__free(&r->a, r->hseries);
            pm__free(&r->a, r->hfree);
            r->hseries = hs;
            r->hfree = hf;
            r->hcap = cap;
            r->hnchunks = cap / PM_CHUNK_SLOTS;
        }
        r->next_hslot++;
    }
    r->hseries[h] = s;
    *slot = h;
    return PM_OK;
}

void pm__hslot_free(pm_registry *r, uint32_t slot)
{
    r->hseries[slot] = NULL;
    r->hfree[r->nhfree++] = slot;
}

/* ------------------------------------------------------------ family names */

/* Families by name in an open-addressing table (linear probing, at most half
 * full), so registering F families costs O(F), not O(F^2) string compares.
 * Registration only: everything runs under r->lock, nothing reads it
 * without. Families are never removed one by one, except the last one added
 * when pm_counter_new and friends fail half-way (pm__family_index_forget). */
static size_t family_slot(const pm_registry *r, const char *name)
{
    return pm__hash_values(&name, 1) & (r->fam_index_cap - 1);
}

static void family_index_put(pm_registry *r, pm_family *f)
{
    size_t mask = r->fam_index_cap - 1, i = family_slot(r, f->name);
    while (r->fam_index[i]) i = (i + 1) & mask;
    r->fam_index[i] = f;
}

pm_status_t pm__family_index_reserve(pm_registry *r, size_t nfam)
{
    if (nfam <= r->fam_index_cap / 2) return PM_OK;
    size_t cap = r->fam_index_cap ? r->fam_index_cap : 32;
    while (cap / 2 < nfam) {
        if (cap > SIZE_MAX / 2 / sizeof *r->fam_index) return PM_ENOMEM;
        cap *= 2;
    }
    pm_family **t = pm__calloc(&r->a, cap * sizeof *t);
    if (!t) return PM_ENOMEM;
    pm__free(&r->a, r->fam_index);
    r->fam_index = t;
    r->fam_index_cap = cap;
    for (size_t i = 0; i < r->nfam; i++) family_index_put(r, r->fams[i]);
    return PM_OK;
}

void pm__family_index_add(pm_registry *r, pm_family *f) { family_index_put(r, f); }

void pm__family_index_forget(pm_registry *r)
{
    /* Rare (a failed convenience constructor): rebuild from r->fams. */
    if (!r->fam_index) return;
    memset(r->fam_index, 0, r->fam_index_cap * sizeof *r->fam_index);
    for (size_t i = 0; i < r->nfam; i++) family_index_put(r, r->fams[i]);
}

pm_family *pm__find_family_locked(pm_registry *r, const char *name)
{
    if (!r->fam_index) return NULL;
    size_t mask = r->fam_index_cap - 1;
    for (size_t i = family_slot(r, name); r->fam_index[i]; i = (i + 1) & mask)
        if (!strcmp(r->fam_index[i]->name, name)) return r->fam_index[i];
    return NULL;
}
