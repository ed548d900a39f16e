/* Writer-owned counter shards (the Linux percpu-counter idea, per thread):
 * an attached thread records with a plain load and store into cells nobody
 * else writes; snapshots add the shards to the striped cells; detaching (or
 * thread exit) folds the shard into stripe 0 atomically, so nothing is lost.
 * A shard also holds the thread's histogram generations by histogram slot
 * (lib/histogram.c), which detaching relinks into their series. */
#include "internal/pm_internal.h"

#include <stdlib.h>

PM_TLS pm_shard *pm__tls_shard;

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
/* Guards sh->reg between a thread's exit handler and pm_registry_free, which
 * may run at the same time. Lock order: shard_mu, then r->lock. */
static pthread_mutex_t shard_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_key_t shard_key;
static int key_ok;

static void free_retired_dirs(void *old)
{
    while (old) {
        void *next;
        memcpy(&next, old, sizeof next);
        free(old);
        old = next;
    }
}

/* The shard's histogram generations are gone already (folded or dropped
 * under the registry lock); its acks array came from the registry's
 * allocator, which may be gone too, so it is freed there (shard_unhook). */
static void shard_free(pm_shard *sh)
{
    pm_counter_cell **dir = atomic_load_explicit(&sh->dir, memory_order_relaxed);
    for (size_t i = 0; i < sh->nchunks; i++) free(dir[i]);
    free(dir);
    free_retired_dirs(sh->old_dirs);
    _Atomic(pm_hgen *) **hdir = atomic_load_explicit(&sh->hdir, memory_order_relaxed);
    for (size_t i = 0; i < sh->hnchunks; i++) free(hdir[i]);
    free(hdir);
    free_retired_dirs(sh->old_hdirs);
    free(sh);
}

/* Under r->lock: what the shard took from the registry's allocator. */
static void shard_unhook(pm_registry *r, pm_shard *sh)
{
    pm__free(&r->a, sh->acks);
    sh->acks = NULL;
    sh->nacks = sh->capacks = 0;
}

/* Under r->lock: adds every shard cell into stripe 0, then unlinks and frees. */
static void shard_fold_locked(pm_registry *r, pm_shard *sh)
{
    pm_counter_cell **dir = atomic_load_explicit(&sh->dir, memory_order_relaxed);
    for (size_t ci = 0; ci < sh->nchunks; ci++) {
        pm_counter_cell *src = dir[ci];
        pm_counter_cell *dst = (pm_counter_cell *)(void *)r->chunks[ci];
        for (size_t i = 0; i < PM_CHUNK_SLOTS; i++) {
            uint64_t n = atomic_load_explicit(&src[i].n, memory_order_relaxed);
            double d = pm__u2d(atomic_load_explicit(&src[i].dbits, memory_order_relaxed));
            if (n) atomic_fetch_add_explicit(&dst[i].n, n, memory_order_relaxed);
            if (d != 0) {
                uint64_t old = atomic_load_explicit(&dst[i].dbits, memory_order_relaxed);
                while (!atomic_compare_exchange_weak_explicit(&dst[i].dbits, &old,
                                                              pm__d2u(pm__u2d(old) + d),
                                                              memory_order_relaxed,
                                                              memory_order_relaxed)) {
                }
            }
        }
    }
    pm__hist_shard_fold(r, sh);
    shard_unhook(r, sh);
    for (pm_shard **p = &r->shards; *p; p = &(*p)->next)
        if (*p == sh) {
            *p = sh->next;
            break;
        }
    shard_free(sh);
}

static void on_thread_exit(void *arg)
{
    pm_shard *sh = arg;
    pm__tls_shard = NULL;
    pthread_mutex_lock(&shard_mu);
    pm_registry *r = sh->reg;
    if (!r) { /* the registry went first */
        pthread_mutex_unlock(&shard_mu);
        shard_free(sh);
        return;
    }
    pthread_mutex_lock(&r->lock);
    shard_fold_locked(r, sh);
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_unlock(&shard_mu);
}

static void make_key(void) { key_ok = pthread_key_create(&shard_key, on_thread_exit) == 0; }

/* A copy of a directory of chunk pointers (`used` of them) with room for
 * `need`, or NULL; *cap becomes its capacity. The caller publishes it and
 * retires the old one with dir_retire. */
static void *dir_grown(const void *old, size_t used, size_t *cap, size_t need)
{
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *n = calloc(c, sizeof(void *));
    if (!n) return NULL;
    if (used) memcpy(n, old, used * sizeof(void *));
    *cap = c;
    return n;
}

/* The owner may still be reading a replaced directory: keep it until the
 * shard goes (linked through its first word). */
static void dir_retire(void *old, void **list)
{
    if (!old) return;
    memcpy(old, list, sizeof(void *));
    *list = old;
}

/* A shard has two directories of the same shape: counter cells by slot, and
 * histogram generation entries by histogram slot. */
enum dir_kind { DIR_CELLS, DIR_HGENS };

/* Makes room for `need` chunk pointers in the directory of kind k. */
static pm_status_t dir_grow(pm_shard *sh, enum dir_kind k, size_t need)
{
    size_t *cap = k == DIR_CELLS ? &sh->dircap : &sh->hdircap;
    if (need <= *cap) return PM_OK;
    void *old = k == DIR_CELLS ? (void *)atomic_load_explicit(&sh->dir, memory_order_relaxed)
                               : (void *)atomic_load_explicit(&sh->hdir, memory_order_relaxed);
    void *n = dir_grown(old, k == DIR_CELLS ? sh->nchunks : sh->hnchunks, cap, need);
    if (!n) return PM_ENOMEM;
    if (k == DIR_CELLS)
        atomic_store_explicit(&sh->dir, (pm_counter_cell **)n, memory_order_release);
    else
        atomic_store_explicit(&sh->hdir, (_Atomic(pm_hgen *) **)n, memory_order_release);
    dir_retire(old, k == DIR_CELLS ? &sh->old_dirs : &sh->old_hdirs);
    return PM_OK;
}

/* A zeroed chunk for a directory of kind k: counter cells (cache-line
 * aligned) or empty generation entries. */
static void *dir_chunk_new(enum dir_kind k)
{
    if (k == DIR_HGENS) return calloc(PM_CHUNK_SLOTS, sizeof(_Atomic(pm_hgen *)));
    void *c;
    if (posix_memalign(&c, PM_CACHELINE, PM_CHUNK_SLOTS * sizeof(pm_counter_cell))) return NULL;
    memset(c, 0, PM_CHUNK_SLOTS * sizeof(pm_counter_cell));
    return c;
}

/* Puts chunk ci in place (room made by dir_grow). */
static void dir_install(pm_shard *sh, enum dir_kind k, size_t ci, void *chunk)
{
    if (k == DIR_CELLS) {
        atomic_load_explicit(&sh->dir, memory_order_relaxed)[ci] = chunk;
        sh->nchunks = ci + 1;
    } else {
        atomic_load_explicit(&sh->hdir, memory_order_relaxed)[ci] = chunk;
        sh->hnchunks = ci + 1;
    }
}

/* Under r->lock, before the registry commits chunk ci of kind k (counter
 * slots, histogram slots): every shard gets its part of it. Nothing
 * changes on failure. */
static pm_status_t shards_add(pm_registry *r, size_t ci, enum dir_kind k)
{
    size_t n = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next) n++;
    if (!n) return PM_OK;
    void **fresh = calloc(n, sizeof *fresh);
    if (!fresh) return PM_ENOMEM;
    size_t i = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next, i++)
        if (dir_grow(sh, k, ci + 1) != PM_OK || !(fresh[i] = dir_chunk_new(k))) goto fail;
    i = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next, i++) dir_install(sh, k, ci, fresh[i]);
    free(fresh);
    return PM_OK;
fail:
    for (size_t j = 0; j < n; j++) free(fresh[j]);
    free(fresh);
    return PM_ENOMEM;
}

pm_status_t pm__shards_add_chunk(pm_registry *r, size_t ci) { return shards_add(r, ci, DIR_CELLS); }

pm_status_t pm__shards_add_hchunk(pm_registry *r, size_t ci) { return shards_add(r, ci, DIR_HGENS); }

/* A new shard's directory of kind k, for the registry's n chunks of it. */
static pm_status_t shard_fill(pm_shard *sh, enum dir_kind k, size_t n)
{
    pm_status_t st = dir_grow(sh, k, n ? n : 1);
    for (size_t ci = 0; st == PM_OK && ci < n; ci++) {
        void *c = dir_chunk_new(k);
        if (!c) return PM_ENOMEM;
        dir_install(sh, k, ci, c);
    }
    return st;
}

void pm__shards_zero_slot(pm_registry *r, uint32_t slot)
{
    for (pm_shard *sh = r->shards; sh; sh = sh->next) {
        pm_counter_cell *c = atomic_load_explicit(&sh->dir, memory_order_relaxed)[slot / PM_CHUNK_SLOTS] +
                             slot % PM_CHUNK_SLOTS;
        atomic_store_explicit(&c->n, 0, memory_order_relaxed);
        atomic_store_explicit(&c->dbits, 0, memory_order_relaxed);
    }
}

void pm__shards_read(const pm_registry *r, uint32_t slot, uint64_t *n, double *d)
{
    for (pm_shard *sh = r->shards; sh; sh = sh->next) {
        pm_counter_cell *c = atomic_load_explicit(&sh->dir, memory_order_relaxed)[slot / PM_CHUNK_SLOTS] +
                             slot % PM_CHUNK_SLOTS;
        *n += atomic_load_explicit(&c->n, memory_order_relaxed);
        *d += pm__u2d(atomic_load_explicit(&c->dbits, memory_order_relaxed));
    }
}

/* Registry free: shards of other threads cannot be reached through their
 * TLS, so they are orphaned and freed by their thread's exit handler. The
 * caller's own shard is freed now. */
void pm__shards_orphan(pm_registry *r)
{
    pthread_mutex_lock(&shard_mu); /* waits for exit handlers folding into r */
    pthread_mutex_lock(&r->lock);
    for (pm_shard *s = r->shards; s; s = s->next) {
        pm__hist_shard_drop(r, s); /* their series go with the registry */
        shard_unhook(r, s);
    }
    pthread_mutex_unlock(&r->lock);
    pm_shard *sh = r->shards;
    r->shards = NULL;
    while (sh) {
        pm_shard *next = sh->next;
        if (sh == pm__tls_shard) {
            pm__tls_shard = NULL;
            if (key_ok) pthread_setspecific(shard_key, NULL);
            shard_free(sh);
        } else {
            sh->reg = NULL;
        }
        sh = next;
    }
    pthread_mutex_unlock(&shard_mu);
}

pm_status_t pm_thread_attach(pm_registry_t *r)
{
    if (!r) return PM_EINVAL;
    pthread_once(&key_once, make_key);
    if (pm__tls_shard && !pm__tls_shard->reg) { /* orphaned by a freed registry */
        shard_free(pm__tls_shard);
        pm__tls_shard = NULL;
        pthread_setspecific(shard_key, NULL);
    }
    if (pm__tls_shard) return pm__tls_shard->reg == r ? PM_OK : PM_ESTATE;
    if (!key_ok) return PM_ENOMEM;
    pm_shard *sh = calloc(1, sizeof *sh);
    if (!sh) return PM_ENOMEM;
    sh->reg = r;
    pthread_mutex_lock(&r->lock);
    pm_status_t st = shard_fill(sh, DIR_CELLS, r->nchunks);
    if (st == PM_OK) st = shard_fill(sh, DIR_HGENS, r->hnchunks);
    if (st == PM_OK && pthread_setspecific(shard_key, sh) != 0) st = PM_ENOMEM;
    if (st == PM_OK) {
        sh->next = r->shards;
        r->shards = sh;
        pm__tls_shard = sh;
    }
    pthread_mutex_unlock(&r->lock);
    if (st != PM_OK) shard_free(sh);
    return st;
}

pm_status_t pm_thread_detach(pm_registry_t *r)
{
    if (!r) return PM_EINVAL;
    pm_shard *sh = pm__tls_shard;
    if (!sh || sh->reg != r) return PM_OK;
    pm__tls_shard = NULL;
    pthread_setspecific(shard_key, NULL);
    pthread_mutex_lock(&r->lock);
    shard_fold_locked(r, sh);
    pthread_mutex_unlock(&r->lock);
    return PM_OK;
}
