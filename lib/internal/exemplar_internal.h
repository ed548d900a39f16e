/* Exemplar slots (lib/exemplar.c), shared by the recorders (counter.c,
 * histogram.c), family.c (allocation) and snapshot.c (reading). Never installed.
 *
 * A series of a family with exemplars carries one slot per export bucket
 * (histograms: bounds + 1, the last for +Inf) or one slot (counters). The
 * slots sit right before the pm_series in the series' one allocation, so the
 * series structure, its histogram extension and the label look-up stay as
 * they are; a series without exemplars has none and pays nothing.
 *
 * A slot is a seqlock: a writer takes it by moving seq from even to odd with
 * one CAS (a busy slot is skipped, never waited for: an exemplar is a
 * sample), stores the fields and releases it with seq + 2. Readers retry a
 * bounded number of times. Every field is an atomic word, so a torn read is
 * detected by seq and never undefined behaviour. */
#ifndef PM_EXEMPLAR_INTERNAL_H
#define PM_EXEMPLAR_INTERNAL_H

#include "pm_internal.h"

#include <perfmetrics/spans.h>

typedef struct pm_exemplar_slot {
    _Atomic uint32_t seq; /* odd while a writer holds the slot */
    uint32_t unused_;
    _Atomic uint64_t trace[2]; /* trace id bytes; all zero: empty slot */
    _Atomic uint64_t span;     /* span id bytes */
    _Atomic uint64_t vbits;    /* the value (bits of a double) */
    _Atomic uint64_t mono_ns;  /* pm_now_ns() when recorded; wall time is derived at snapshot */
} pm_exemplar_slot;

/* Slots in front of each series of family f (0 when exemplars are off). */
static inline size_t pm__exemplar_slots(const pm_family *f)
{
    if (!f->exemplars) return 0;
    return f->type == PM_TYPE_HISTOGRAM ? (size_t)f->hl.nbounds + 1 : 1;
}

/* The first slot of series s; valid only when pm__exemplar_slots(s->fam) > 0. */
static inline pm_exemplar_slot *pm__series_exemplars(const pm_series *s)
{
    return (pm_exemplar_slot *)(uintptr_t)s - pm__exemplar_slots(s->fam);
}

/* The recorders' slow path: the thread's current span `sp` is set. Keeps an
 * exemplar of value v if the span is sampled and s's family has exemplars. */
void pm__exemplar_span(pm_series *s, double v, const struct pm_span *sp);
/* Keeps an exemplar of value v with trace context ctx (sampled, non-zero
 * trace and span ids; otherwise nothing) if s's family has exemplars. */
void pm__exemplar_record(pm_series *s, double v, const pm_trace_context_t *ctx);
/* Copies a slot. Returns false when it is empty or stayed busy. */
bool pm__exemplar_read(pm_exemplar_slot *e, pm_trace_context_t *ctx, double *value,
                       uint64_t *mono_ns);
/* Empties a slot (a concurrent writer may win; its exemplar is new anyway). */
void pm__exemplar_clear(pm_exemplar_slot *e);
/* Export bucket of v: the index of the first bound >= v, nbounds for +Inf. */
uint32_t pm__exemplar_bucket(const pm_hist_layout *L, double v);

#endif
