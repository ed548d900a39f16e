/* Snapshot arenas, and the pool of arena chunks a registry keeps between
 * its snapshots.
 *
 * A snapshot allocates from its own arena of ARENA_CHUNK chunks and frees it
 * in one sweep. Fresh memory is what a large snapshot pays most for: at
 * 1,000,000 series its 70-160 MB go past glibc's trim and mmap ceilings, so
 * every snapshot would fault each page in again (about 11 us a page on a
 * VM). So a released snapshot gives its standard-size chunks to its
 * registry's pool, up to the number the latest snapshot used, and the next
 * snapshot starts from them: a registry that is scraped keeps one
 * snapshot's worth of memory warm between scrapes, and no more.
 *
 * The pool is shared by the registry and every snapshot that drew from it,
 * and counted: snapshots outlive their registry, and the last one out frees
 * the pool. Once the registry is gone the pool keeps nothing. */
#include "internal/snapshot_internal.h"

#include <stdlib.h>

#define ARENA_CHUNK 65536

struct pm_arena_pool {
    pthread_mutex_t mu;
    pm_alloc_t a;
    unsigned refs;         /* the registry's (while open) and each snapshot's */
    bool open;             /* the registry still lives */
    pm_arena_chunk *spare; /* standard chunks, ready for the next snapshot */
    size_t nspare;
    size_t keep; /* standard chunks the latest snapshot built used */
};

static void chunks_free(const pm_alloc_t *a, pm_arena_chunk *c)
{
    while (c) {
        pm_arena_chunk *n = c->next;
        pm__free(a, c);
        c = n;
    }
}

/* Under p->mu: drops one reference; true when it was the last. */
static bool pool_unref_locked(pm_arena_pool *p)
{
    return --p->refs == 0;
}

static void pool_destroy(pm_arena_pool *p)
{
    chunks_free(&p->a, p->spare);
    pthread_mutex_destroy(&p->mu);
    pm_alloc_t a = p->a;
    pm__free(&a, p);
}

pm_arena_pool *pm__arena_pool_new(const pm_alloc_t *a)
{
    pm_arena_pool *p = pm__calloc(a, sizeof *p);
    if (!p) return NULL;
    p->a = *a;
    p->refs = 1;
    p->open = true;
    pthread_mutex_init(&p->mu, NULL);
    return p;
}

void pm__arena_pool_close(pm_arena_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->open = false;
    pm_arena_chunk *spare = p->spare;
    p->spare = NULL;
    p->nspare = 0;
    bool last = pool_unref_locked(p);
    pthread_mutex_unlock(&p->mu);
    chunks_free(&p->a, spare);
    if (last) pool_destroy(p);
}

void pm__arena_draw(pm_snapshot_t *s, pm_arena_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->refs++;
    s->pool = p;
    s->spare = p->spare;
    p->spare = NULL;
    p->nspare = 0;
    pthread_mutex_unlock(&p->mu);
}

void pm__arena_built(pm_snapshot_t *s)
{
    pm_arena_pool *p = s->pool;
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->keep = s->nstd;
    pthread_mutex_unlock(&p->mu);
}

void *pm__arena_alloc(pm_snapshot_t *s, size_t n)
{
    /* 8-byte granules: nothing a snapshot holds needs more, and label
     * strings packed behind their pointers waste less. */
    n = (n + 7) & ~(size_t)7;
    pm_arena_chunk *c = s->chunks;
    if (!c || c->cap - c->used < n) {
        if (n <= ARENA_CHUNK && s->spare) {
            c = s->spare;
            s->spare = c->next;
        } else {
            size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
            if (!(c = pm__alloc(&s->a, sizeof *c + cap))) return NULL;
            c->cap = cap;
        }
        if (c->cap == ARENA_CHUNK) s->nstd++;
        c->used = 0;
        c->next = s->chunks;
        s->chunks = c;
    }
    void *p = c->data + c->used;
    c->used += n;
    return p;
}

void pm__arena_free(pm_snapshot_t *s)
{
    pm_arena_pool *p = s->pool;
    pm_arena_chunk *drop = NULL, *c = s->chunks, *next;
    /* Unused spares first: they are the coldest. */
    pm_arena_chunk *spare = s->spare;
    while (spare) {
        next = spare->next;
        spare->next = c;
        c = spare;
        spare = next;
    }
    if (p) pthread_mutex_lock(&p->mu);
    for (; c; c = next) {
        next = c->next;
        if (p && p->open && c->cap == ARENA_CHUNK && p->nspare < p->keep) {
            c->next = p->spare;
            p->spare = c;
            p->nspare++;
        } else {
            c->next = drop;
            drop = c;
        }
    }
    bool last = p && pool_unref_locked(p);
    if (p) pthread_mutex_unlock(&p->mu);
    chunks_free(&s->a, drop);
    if (last) pool_destroy(p);
    s->chunks = s->spare = NULL;
    s->pool = NULL;
}

const char *pm__arena_strdup(pm_snapshot_t *s, const char *str)
{
    size_t n = strlen(str) + 1;
    char *d = pm__arena_alloc(s, n);
    if (d) memcpy(d, str, n);
    return d;
}
