/* Exemplars: the trace context of one recent observation per export bucket
 * (histograms) or per series (counters), kept in seqlock slots that precede
 * the series (layout in internal/exemplar_internal.h).
 *
 * Only the exemplar path runs here; recorders reach it after one load of
 * the thread's current span finds one set, so recording without a span
 * costs that load and a compare. */
#include "internal/exemplar_internal.h"
#include "internal/span_internal.h"

/* Readers give up after this many torn or busy reads of one slot: a writer
 * holds a slot for a handful of stores, so this only trips under heavy
 * contention, and the scrape then shows the slot as empty once. */
#define READ_TRIES 16

/* Sampled, with W3C-valid (non-zero) trace and span ids. */
static bool ctx_usable(const pm_trace_context_t *ctx)
{
    if (!(ctx->flags & PM_TRACE_FLAG_SAMPLED)) return false;
    uint64_t t[2], sp;
    memcpy(t, ctx->trace_id, sizeof t);
    memcpy(&sp, ctx->span_id, sizeof sp);
    return (t[0] | t[1]) != 0 && sp != 0;
}

uint32_t pm__exemplar_bucket(const pm_hist_layout *L, double v)
{
    /* Lower bound: the first k with v <= bounds[k]; NaN never gets here. */
    uint32_t lo = 0, hi = L->nbounds;
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (v <= L->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static void slot_put(pm_exemplar_slot *e, const pm_trace_context_t *ctx, double v)
{
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if (seq & 1u) return; /* another writer holds it: skip, never wait */
    if (!atomic_compare_exchange_strong_explicit(&e->seq, &seq, seq + 1, memory_order_acquire,
                                                 memory_order_relaxed))
        return;
    /* Orders the odd seq before the field stores for readers (their acquire
     * fence pairs with this one), so a reader that sees a new field also sees
     * the slot as changed. */
    atomic_thread_fence(memory_order_release);
    uint64_t t[2], sp;
    memcpy(t, ctx->trace_id, sizeof t);
    memcpy(&sp, ctx->span_id, sizeof sp);
    atomic_store_explicit(&e->trace[0], t[0], memory_order_relaxed);
    atomic_store_explicit(&e->trace[1], t[1], memory_order_relaxed);
    atomic_store_explicit(&e->span, sp, memory_order_relaxed);
    atomic_store_explicit(&e->vbits, pm__d2u(v), memory_order_relaxed);
    atomic_store_explicit(&e->mono_ns, pm_now_ns(), memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
}

void pm__exemplar_record(pm_series *s, double v, const pm_trace_context_t *ctx)
{
    size_t n = pm__exemplar_slots(s->fam);
    if (n == 0 || !ctx_usable(ctx)) return;
    size_t k = s->type == PM_TYPE_HISTOGRAM ? pm__exemplar_bucket(s->h.hl, v) : 0;
    slot_put(pm__series_exemplars(s) + k, ctx, v);
}

void pm__exemplar_span(pm_series *s, double v, const struct pm_span *sp)
{
    if (!(sp->ctx.flags & PM_TRACE_FLAG_SAMPLED)) return;
    pm__exemplar_record(s, v, &sp->ctx);
}

bool pm__exemplar_read(pm_exemplar_slot *e, pm_trace_context_t *ctx, double *value,
                       uint64_t *mono_ns)
{
    for (int i = 0; i < READ_TRIES; i++) {
        uint32_t s1 = atomic_load_explicit(&e->seq, memory_order_acquire);
        if (s1 & 1u) continue;
        uint64_t t0 = atomic_load_explicit(&e->trace[0], memory_order_relaxed);
        uint64_t t1 = atomic_load_explicit(&e->trace[1], memory_order_relaxed);
        uint64_t sp = atomic_load_explicit(&e->span, memory_order_relaxed);
        uint64_t vb = atomic_load_explicit(&e->vbits, memory_order_relaxed);
        uint64_t ns = atomic_load_explicit(&e->mono_ns, memory_order_relaxed);
        atomic_thread_fence(memory_order_acquire);
        if (atomic_load_explicit(&e->seq, memory_order_relaxed) != s1) continue;
        if ((t0 | t1) == 0) return false;
        memset(ctx, 0, sizeof *ctx);
        memcpy(ctx->trace_id, &t0, sizeof t0);
        memcpy(ctx->trace_id + 8, &t1, sizeof t1);
        memcpy(ctx->span_id, &sp, sizeof sp);
        ctx->flags = PM_TRACE_FLAG_SAMPLED;
        *value = pm__u2d(vb);
        *mono_ns = ns;
        return true;
    }
    return false;
}

void pm__exemplar_clear(pm_exemplar_slot *e)
{
    uint32_t seq = atomic_load_explicit(&e->seq, memory_order_relaxed);
    if ((seq & 1u) || !atomic_compare_exchange_strong_explicit(
                          &e->seq, &seq, seq + 1, memory_order_acquire, memory_order_relaxed))
        return;
    atomic_thread_fence(memory_order_release);
    atomic_store_explicit(&e->trace[0], 0, memory_order_relaxed);
    atomic_store_explicit(&e->trace[1], 0, memory_order_relaxed);
    atomic_store_explicit(&e->seq, seq + 2, memory_order_release);
}
