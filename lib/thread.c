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

static pm_status_t grow_dir(pm_shard *sh, size_t need)
{
    if (need <= sh->dircap) return PM_OK;
    pm_counter_cell **old = atomic_load_explicit(&sh->dir, memory_order_relaxed);
    pm_counter_cell **n = dir_grown(old, sh->nchunks, &sh->dircap, need);
    if (!n) return PM_ENOMEM;
    atomic_store_explicit(&sh->dir, n, memory_order_release);
    dir_retire(old, &sh->old_dirs);
    return PM_OK;
}

static pm_status_t grow_hdir(pm_shard *sh, size_t need)
{
    if (need <= sh->hdircap) return PM_OK;
    _Atomic(pm_hgen *) **old = atomic_load_explicit(&sh->hdir, memory_order_relaxed);
    _Atomic(pm_hgen *) **n = dir_grown(old, sh->hnchunks, &sh->hdircap, need);
    if (!n) return PM_ENOMEM;
    atomic_store_explicit(&sh->hdir, n, memory_order_release);
    dir_retire(old, &sh->old_hdirs);
    return PM_OK;
}

static pm_counter_cell *chunk_new(void)
{
    pm_counter_cell *c;
    if (posix_memalign((void **)&c, PM_CACHELINE, PM_CHUNK_SLOTS * sizeof *c)) return NULL;
    memset(c, 0, PM_CHUNK_SLOTS * sizeof *c);
    return c;
}

/* Under r->lock, before the registry commits chunk ci: give every shard its
 * part of it. Nothing changes on failure. */
pm_status_t pm__shards_add_chunk(pm_registry *r, size_t ci)
{
    size_t n = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next) n++;
    if (!n) return PM_OK;
    pm_counter_cell **fresh = calloc(n, sizeof *fresh);
    if (!fresh) return PM_ENOMEM;
    size_t i = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next, i++)
        if (grow_dir(sh, ci + 1) != PM_OK || !(fresh[i] = chunk_new())) goto fail;
    i = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next, i++) {
        atomic_load_explicit(&sh->dir, memory_order_relaxed)[ci] = fresh[i];
        sh->nchunks = ci + 1;
    }
    free(fresh);
    return PM_OK;
fail:
    for (size_t j = 0; j < n; j++) free(fresh[j]);
    free(fresh);
    return PM_ENOMEM;
}

/* Under r->lock, before the registry commits histogram slot chunk ci: every
 * shard gets its (empty) part of it. Nothing changes on failure. */
pm_status_t pm__shards_add_hchunk(pm_registry *r, size_t ci)
{
    size_t n = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next) n++;
    if (!n) return PM_OK;
    _Atomic(pm_hgen *) **fresh = calloc(n, sizeof *fresh);
    if (!fresh) return PM_ENOMEM;
    size_t i = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next, i++)
        if (grow_hdir(sh, ci + 1) != PM_OK ||
            !(fresh[i] = calloc(PM_CHUNK_SLOTS, sizeof *fresh[i])))
            goto fail;
    i = 0;
    for (pm_shard *sh = r->shards; sh; sh = sh->next, i++) {
        atomic_load_explicit(&sh->hdir, memory_order_relaxed)[ci] = fresh[i];
        sh->hnchunks = ci + 1;
    }
    free(fresh);
    return PM_OK;
fail:
    for (size_t j = 0; j < n; j++) free(fresh[j]);
    free(fresh);
    return PM_ENOMEM;
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
    pm_status_t st = grow_dir(sh, r->nchunks ? r->nchunks : 1);
    for (size_t ci = 0; st == PM_OK && ci < r->nchunks; ci++) {
        pm_counter_cell *c = chunk_new();
        if (!c) {
            st = PM_ENOMEM;
            break;
        }
        atomic_load_explicit(&sh->dir, memory_order_relaxed)[ci] = c;
        sh->nchunks = ci + 1;
    }
    if (st == PM_OK) st = grow_hdir(sh, r->hnchunks ? r->hnchunks : 1);
    for (size_t ci = 0; st == PM_OK && ci < r->hnchunks; ci++) {
        _Atomic(pm_hgen *) *c = calloc(PM_CHUNK_SLOTS, sizeof *c);
        if (!c) {
            st = PM_ENOMEM;
            break;
        }
        atomic_load_explicit(&sh->hdir, memory_order_relaxed)[ci] = c;
        sh->hnchunks = ci + 1;
    }
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
