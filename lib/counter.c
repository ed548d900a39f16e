/* Counters: striped cells, one relaxed atomic add per record. */
#include "internal/exemplar_internal.h"
#include "internal/span_internal.h"

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

/* Exemplars: each recorder first loads the thread's current span; without
 * one, that load and test is all exemplars cost. With one, the record goes
 * through these out-of-line twins (a tail call), so the common path keeps its
 * shape and saves no registers. */
__attribute__((noinline)) static void add_n_span(pm_series *s, uint64_t delta, const pm_span_t *sp)
{
    add_n(s, delta);
    pm__exemplar_span(s, (double)delta, sp);
}

void pm_counter_inc(pm_counter_t *c)
{
    if (PM_UNLIKELY(!c)) return;
    const pm_span_t *sp = pm__tls_span;
    if (PM_UNLIKELY(sp != NULL)) {
        add_n_span((pm_series *)c, 1, sp);
        return;
    }
    add_n((pm_series *)c, 1);
}

void pm_counter_add_u64(pm_counter_t *c, uint64_t delta)
{
    if (PM_UNLIKELY(!c)) return;
    const pm_span_t *sp = pm__tls_span;
    if (PM_UNLIKELY(sp != NULL)) {
        add_n_span((pm_series *)c, delta, sp);
        return;
    }
    add_n((pm_series *)c, delta);
}

void pm__note_rejected(pm_series *s)
{
    atomic_fetch_add_explicit(&s->fam->rejected, 1, memory_order_relaxed);
}

/* Adds delta, already checked finite and >= 0. */
static inline void add_value(pm_series *s, double delta)
{
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

/* A bad delta is dropped and counted. */
static inline bool delta_ok(pm_series *s, double delta)
{
    if (PM_LIKELY(delta >= 0 && delta != INFINITY)) return true;
    pm__note_rejected(s);
    return false;
}

__attribute__((noinline)) static void add_value_span(pm_series *s, double delta,
                                                     const pm_span_t *sp)
{
    add_value(s, delta);
    pm__exemplar_span(s, delta, sp);
}

void pm_counter_add(pm_counter_t *c, double delta)
{
    if (PM_UNLIKELY(!c)) return;
    pm_series *s = (pm_series *)c;
    if (PM_UNLIKELY(!delta_ok(s, delta))) return;
    const pm_span_t *sp = pm__tls_span;
    if (PM_UNLIKELY(sp != NULL)) {
        add_value_span(s, delta, sp);
        return;
    }
    add_value(s, delta);
}

void pm_counter_add_exemplar(pm_counter_t *c, double delta, const pm_trace_context_t *ctx)
{
    if (!ctx) {
        pm_counter_add(c, delta);
        return;
    }
    if (PM_UNLIKELY(!c)) return;
    pm_series *s = (pm_series *)c;
    if (PM_UNLIKELY(!delta_ok(s, delta))) return;
    add_value(s, delta);
    pm__exemplar_record(s, delta, ctx);
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
    if (PM_UNLIKELY(s->bound)) d += pm__cells_counter_read(s);
    return (double)n + d;
}

void pm__counter_fold(pm_series *s, double v)
{
    pm_counter_cell *c = s->h.cells; /* stripe 0 */
    if (v < 18446744073709551616.0 && v == (double)(uint64_t)v) {
        atomic_fetch_add_explicit(&c->n, (uint64_t)v, memory_order_relaxed);
        return;
    }
    uint64_t old = atomic_load_explicit(&c->dbits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(&c->dbits, &old, pm__d2u(pm__u2d(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
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
