/* Counters: striped cells, one relaxed atomic add per record. */
#include "internal/pm_internal.h"

#include <math.h>

static inline pm_counter_cell *my_cell(pm_series *s)
{
    return s->h.cells + (size_t)pm__stripe(s->mask) * PM_CHUNK_SLOTS;
}

/* The calling thread's own cell for s, or NULL when it has no shard in s's
 * registry. Only this thread writes it, so a relaxed load and store suffice. */
static inline pm_counter_cell *shard_cell(const pm_series *s)
{
    pm_shard *sh = pm__tls_shard;
    if (PM_LIKELY(sh == NULL) || sh->reg != s->reg) return NULL;
    return atomic_load_explicit(&sh->dir, memory_order_acquire)[s->slot / PM_CHUNK_SLOTS] +
           s->slot % PM_CHUNK_SLOTS;
}

/* First record of a thread: assign its stripe, then record. Out of line so
 * the fast path below needs no saved registers. */
__attribute__((noinline, cold)) static void add_n_first(pm_series *s, uint64_t delta)
{
    atomic_fetch_add_explicit(&my_cell(s)->n, delta, memory_order_relaxed);
}

static inline void add_n(pm_series *s, uint64_t delta)
{
    pm_counter_cell *own = shard_cell(s);
    if (own) {
        atomic_store_explicit(&own->n, atomic_load_explicit(&own->n, memory_order_relaxed) + delta,
                              memory_order_relaxed);
        return;
    }
    unsigned st = pm__tls_stripe;
    if (PM_UNLIKELY(st == 0)) {
        add_n_first(s, delta);
        return;
    }
    atomic_fetch_add_explicit(&s->h.cells[(size_t)((st - 1) & s->mask) * PM_CHUNK_SLOTS].n, delta,
                              memory_order_relaxed);
}

void pm_counter_inc(pm_counter_t *c)
{
    if (PM_UNLIKELY(!c)) return;
    add_n((pm_series *)c, 1);
}

void pm_counter_add_u64(pm_counter_t *c, uint64_t delta)
{
    if (PM_UNLIKELY(!c)) return;
    add_n((pm_series *)c, delta);
}

void pm__note_rejected(pm_series *s)
{
    atomic_fetch_add_explicit(&s->fam->rejected, 1, memory_order_relaxed);
}

void pm_counter_add(pm_counter_t *c, double delta)
{
    if (PM_UNLIKELY(!c)) return;
    pm_series *s = (pm_series *)c;
    if (PM_UNLIKELY(!(delta >= 0) || delta == INFINITY)) {
        pm__note_rejected(s);
        return;
    }
    /* Whole numbers take the integer cell (no CAS); others a CAS loop on a
     * cell that is uncontended as long as threads stay on their stripes. */
    if (delta < 18446744073709551616.0 && delta == (double)(uint64_t)delta) {
        add_n(s, (uint64_t)delta);
        return;
    }
    pm_counter_cell *own = shard_cell(s);
    if (own) {
        atomic_store_explicit(&own->dbits,
                              pm__d2u(pm__u2d(atomic_load_explicit(&own->dbits, memory_order_relaxed)) + delta),
                              memory_order_relaxed);
        return;
    }
    pm_counter_cell *cell = my_cell(s);
    uint64_t old = atomic_load_explicit(&cell->dbits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&cell->dbits, &old,
                                                  pm__d2u(pm__u2d(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

double pm__counter_read(const pm_series *s)
{
    uint64_t n = 0;
    double d = 0;
    for (unsigned st = 0; st <= s->mask; st++) {
        pm_counter_cell *c = s->h.cells + (size_t)st * PM_CHUNK_SLOTS;
        n += atomic_load_explicit(&c->n, memory_order_relaxed);
        d += pm__u2d(atomic_load_explicit(&c->dbits, memory_order_relaxed));
    }
    pm__shards_read(s->reg, s->slot, &n, &d);
    return (double)n + d;
}

double pm_counter_value(const pm_counter_t *c)
{
    const pm_series *s = (const pm_series *)c;
    if (!s || s->type != PM_TYPE_COUNTER) return 0.0;
    pthread_mutex_lock(&s->reg->lock); /* the shard list may change meanwhile */
    double v = pm__counter_read(s);
    pthread_mutex_unlock(&s->reg->lock);
    return v;
}

pm_status_t pm_counter_get(pm_family_t *f, const char *const *values, size_t n,
                           pm_counter_t **out)
{
    if (!out) return PM_EINVAL;
    return pm__series_get(f, PM_TYPE_COUNTER, values, n, (pm_series **)out);
}

void pm_counter_release(pm_counter_t *c) { pm__series_release((pm_series *)c); }

pm_status_t pm_counter_new(pm_registry_t *r, const char *name, const char *help,
                           pm_counter_t **out)
{
    if (!out) return PM_EINVAL;
    return pm__unlabeled_new(r, PM_TYPE_COUNTER, name, help, (pm_series **)out);
}

static void record_add(pm_series *s, double delta) { pm_counter_add((pm_counter_t *)s, delta); }

pm_status_t pm_counter_add_labeled(pm_family_t *f, const char *const *values, size_t n,
                                   double delta)
{
    if (!f) return PM_EINVAL;
    if (f->type != PM_TYPE_COUNTER || f->cb) return PM_ETYPE;
    if (!(delta >= 0) || delta == INFINITY) {
        atomic_fetch_add_explicit(&f->rejected, 1, memory_order_relaxed);
        return PM_ERANGE;
    }
    return pm__labeled_record(f, PM_TYPE_COUNTER, values, n, delta, record_add);
}
