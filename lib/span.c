/* Spans: life cycle, ids, sampling, the current-span chain, bounded
 * buffering of ended spans and batch export.
 *
 * Ended sampled spans go to one of K bounded rings (K = the stripe count of
 * the metrics hot path, the ring chosen by the ending thread's stripe), each a
 * Vyukov bounded MPMC queue: threads on different stripes never share a cache
 * line, and a full ring drops and counts instead of blocking. Span objects come
 * from per-thread caches, so neither kind of span calls malloc in steady state,
 * and each is whole cache lines of its own.
 *
 * The unsampled path writes only the span object and the thread's own state:
 * nothing another thread reads or writes (no counter, no tracer field), which
 * is why pm_tracer_stat does not count unsampled spans. */
#include "internal/span_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define CACHE_MAX 256

_Static_assert(sizeof(struct pm_span) == PM_SPAN_ALIGN, "an unsampled span is one cache line");

/* ------------------------------------------------------------ tracer types */

typedef struct ring_cell {
    _Atomic size_t seq;
    pm_span_rec *v;
} ring_cell;

typedef struct ring {
    _Alignas(64) _Atomic size_t enq; /* also: spans pushed since the start */
    _Alignas(64) _Atomic size_t deq;
    _Alignas(64) size_t mask;
    ring_cell *cells;
} ring;

/* One stripe: ended spans on their way to the flusher, span records on their
 * way back to producers, and this stripe's counters, all on lines no other
 * stripe writes. */
typedef struct stripe {
    ring full;  /* ended sampled spans */
    ring empty; /* flushed records for reuse */
    _Alignas(64) _Atomic uint64_t sampled, dropped;
    _Atomic uint64_t attrs_dropped, events_dropped; /* by limits, counted where they happen */
} stripe;

struct pm_tracer_opts {
    pm_sampler_t sampler;
    double ratio;
    size_t buffer, batch;
    double interval;
    size_t max_attrs, max_events;
    char *service;
    size_t max_ops, slowest, error_traces, max_traces, max_spans_per_trace;
    pm_registry_t *reg;
};

/* The first line holds what recording threads read on every span and nobody
 * writes after pm_tracer_new; what flushes write (counters, locks, lists)
 * starts on a line of its own, so a flush never takes the recorders' line
 * away from them. The tracer is allocated on a line boundary. */
struct pm_tracer {
    _Alignas(64) pm_sampler_t sampler;
    unsigned nrings;
    uint64_t threshold; /* sample when (trace id low 63 bits) < threshold */
    stripe *rings;
    int64_t wall_offset; /* wall ns = mono ns + offset */
    uint32_t max_attrs, max_events;
    /* read by flushes only */
    size_t batch;
    double interval;
    char *service;
    _Alignas(64) _Atomic uint64_t stat[9]; /* flusher-side: exported, export failures */
    pthread_mutex_t flush_lock; /* serialises flushes, exporter list, analytics feed */
    pm_cb_entry *exporters; /* fn is a pm_span_export_fn; under flush_lock */
    pm_trace_analytics *analytics;
    pm_family_t *f_dur, *f_err, *f_spans;
    /* background thread */
    pthread_mutex_t th_lock;
    pthread_cond_t th_cond;
    pthread_t thread;
    int running, stop;
};

static _Atomic(pm_tracer_t *) default_tracer;
PM_TLS pm_span_t *pm__tls_span;
static PM_TLS int in_exporter;

/* ------------------------------------------------------------ per-thread state */

/* Written on every span start and end; on a line of its own, so it cannot
 * share one with another thread's state (dynamic TLS blocks of a dlopen'ed
 * library come from malloc). */
typedef struct thread_state {
    _Alignas(64) uint64_t rng[4];
    int seeded; /* rng seeded and the exit destructor registered */
    unsigned nlight, nrecs;
    pm_span_t *light;
    pm_span_rec *recs;
} thread_state;

static PM_TLS thread_state ts;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static pthread_key_t cache_key;
static int key_ok;

static void rec_release_memory(pm_span_rec *r);

static void thread_exit(void *arg)
{
    thread_state *s = arg;
    while (s->light) {
        pm_span_t *n = s->light->next_free;
        free(s->light);
        s->light = n;
    }
    while (s->recs) {
        pm_span_rec *n = (pm_span_rec *)s->recs->base.next_free;
        rec_release_memory(s->recs);
        free(s->recs);
        s->recs = n;
    }
    s->nlight = s->nrecs = 0;
}

static void make_key(void) { key_ok = pthread_key_create(&cache_key, thread_exit) == 0; }

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

/* A thread's first span: seeds its generator from getrandom and registers the
 * destructor that frees its caches at exit. */
__attribute__((cold, noinline)) static void thread_init(void)
{
    uint64_t *s = ts.rng;
    if (getrandom(s, sizeof ts.rng, GRND_NONBLOCK) != (ssize_t)sizeof ts.rng) {
        /* No entropy yet (early boot): mix clock, address and thread id. */
        uint64_t z = pm__mono_ns() ^ (uint64_t)(uintptr_t)&ts ^ ((uint64_t)gettid() << 32);
        for (int i = 0; i < 4; i++) { /* splitmix64 */
            z += 0x9E3779B97F4A7C15ull;
            uint64_t x = z;
            x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
            x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
            s[i] = x ^ (x >> 31);
        }
    }
    if (!(s[0] | s[1] | s[2] | s[3])) s[0] = 1;
    ts.seeded = 1;
    pthread_once(&key_once, make_key);
    if (key_ok) pthread_setspecific(cache_key, &ts);
}

/* xoshiro256** on a copy of the thread's state held in registers. */
typedef struct rng {
    uint64_t s0, s1, s2, s3;
} rng;

static inline uint64_t rng_step(rng *g)
{
    uint64_t r = rotl(g->s1 * 5, 7) * 9, x = g->s1 << 17;
    g->s2 ^= g->s0;
    g->s3 ^= g->s1;
    g->s1 ^= g->s2;
    g->s0 ^= g->s3;
    g->s2 ^= x;
    g->s3 = rotl(g->s3, 45);
    return r;
}

static inline rng rng_load(void) { return (rng){ts.rng[0], ts.rng[1], ts.rng[2], ts.rng[3]}; }

static inline void rng_store(const rng *g)
{
    ts.rng[0] = g->s0;
    ts.rng[1] = g->s1;
    ts.rng[2] = g->s2;
    ts.rng[3] = g->s3;
}

/* Span memory: whole cache lines (see PM_SPAN_ALIGN); released with free(). */
static void *span_mem(size_t size)
{
    void *p;
    size = (size + PM_SPAN_ALIGN - 1) & ~(size_t)(PM_SPAN_ALIGN - 1);
    return posix_memalign(&p, PM_SPAN_ALIGN, size) ? NULL : p;
}

static pm_span_t *light_get(void)
{
    pm_span_t *s = ts.light;
    if (PM_LIKELY(s != NULL)) {
        ts.light = s->next_free;
        ts.nlight--;
        return s;
    }
    return span_mem(sizeof(pm_span_t));
}

static void light_put(pm_span_t *s)
{
    if (ts.seeded && ts.nlight < CACHE_MAX) {
        s->next_free = ts.light;
        ts.light = s;
        ts.nlight++;
    } else {
        free(s);
    }
}

static void rec_release_memory(pm_span_rec *r)
{
    while (r->spill) {
        pm_span_spill *n = r->spill->next;
        free(r->spill);
        r->spill = n;
    }
    if (r->attrs != r->attrs_inline) free(r->attrs);
    if (r->events != r->events_inline) free(r->events);
    r->attrs = r->attrs_inline;
    r->events = r->events_inline;
}

static bool ring_push(ring *q, pm_span_rec *v);
static pm_span_rec *ring_pop(ring *q);

/* A record: this thread's cache, else one the flusher handed back on this
 * stripe, else malloc (only while the pool of records grows). */
static pm_span_rec *rec_get(stripe *sp)
{
    pm_span_rec *r = ts.recs;
    if (PM_LIKELY(r != NULL)) {
        ts.recs = (pm_span_rec *)r->base.next_free;
        ts.nrecs--;
    } else if (!(r = ring_pop(&sp->empty)) && !(r = span_mem(sizeof *r))) {
        return NULL;
    }
    r->attrs = r->attrs_inline;
    r->events = r->events_inline;
    r->capattrs = PM_SPAN_INLINE_ATTRS;
    r->capevents = PM_SPAN_INLINE_EVENTS;
    r->nattrs = r->nevents = 0;
    r->dropped_attrs = r->dropped_events = 0;
    r->status = PM_SPAN_STATUS_UNSET;
    r->status_msg = "";
    r->strused = 0;
    r->spill = NULL;
    return r;
}

/* Returns a record to this thread's cache (or frees it). */
static void rec_put(pm_span_rec *r)
{
    rec_release_memory(r);
    if (ts.seeded && ts.nrecs < CACHE_MAX / 4) {
        r->base.next_free = ts.recs ? &ts.recs->base : NULL;
        ts.recs = r;
        ts.nrecs++;
    } else {
        free(r);
    }
}

/* ------------------------------------------------------------ options */

pm_status_t pm_tracer_opts_new(pm_tracer_opts_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    pm_tracer_opts_t *o = calloc(1, sizeof *o);
    if (!o) return PM_ENOMEM;
    o->sampler = PM_SAMPLER_PARENT_RATIO;
    o->ratio = 1.0;
    o->buffer = 2048;
    o->batch = 512;
    o->interval = 5.0;
    o->max_attrs = 16;
    o->max_events = 16;
    o->max_ops = 256;
    o->slowest = 10;
    o->error_traces = 10;
    o->max_traces = 1024;
    o->max_spans_per_trace = 256;
    *out = o;
    return PM_OK;
}

void pm_tracer_opts_free(pm_tracer_opts_t *o)
{
    if (!o) return;
    free(o->service);
    free(o);
}

pm_status_t pm_tracer_opts_set_sampler(pm_tracer_opts_t *o, pm_sampler_t sampler, double ratio)
{
    if (!o || sampler < PM_SAMPLER_ALWAYS || sampler > PM_SAMPLER_PARENT_RATIO) return PM_EINVAL;
    if (!(ratio >= 0 && ratio <= 1)) return PM_ERANGE;
    o->sampler = sampler;
    o->ratio = ratio;
    return PM_OK;
}

pm_status_t pm_tracer_opts_set_buffer(pm_tracer_opts_t *o, size_t spans)
{
    if (!o) return PM_EINVAL;
    if (spans < 16 || spans > 1048576) return PM_ERANGE;
    o->buffer = spans;
    return PM_OK;
}

pm_status_t pm_tracer_opts_set_batch(pm_tracer_opts_t *o, size_t max_spans, double seconds)
{
    if (!o) return PM_EINVAL;
    if (max_spans < 1 || max_spans > 65536 || !(seconds > 0) || seconds > 1e9) return PM_ERANGE;
    o->batch = max_spans;
    o->interval = seconds;
    return PM_OK;
}

pm_status_t pm_tracer_opts_set_limits(pm_tracer_opts_t *o, size_t max_attrs, size_t max_events)
{
    if (!o) return PM_EINVAL;
    if (max_attrs > 1024 || max_events > 1024) return PM_ERANGE;
    o->max_attrs = max_attrs;
    o->max_events = max_events;
    return PM_OK;
}

pm_status_t pm_tracer_opts_set_service(pm_tracer_opts_t *o, const char *name)
{
    if (!o || !name) return PM_EINVAL;
    if (strlen(name) > PM_MAX_LABEL_VALUE || !pm__valid_utf8(name, strlen(name))) return PM_EUTF8;
    char *d = strdup(name);
    if (!d) return PM_ENOMEM;
    free(o->service);
    o->service = d;
    return PM_OK;
}

pm_status_t pm_tracer_opts_set_analytics(pm_tracer_opts_t *o, size_t max_ops, size_t slowest,
                                         size_t error_traces, size_t max_traces,
                                         size_t max_spans_per_trace)
{
    if (!o) return PM_EINVAL;
    if (max_ops < 1 || max_ops > 65536 || slowest > 1024 || error_traces > 1024 ||
        max_traces < 1 || max_traces > 65536 || max_spans_per_trace < 1 ||
        max_spans_per_trace > 65536)
        return PM_ERANGE;
    o->max_ops = max_ops;
    o->slowest = slowest;
    o->error_traces = error_traces;
    o->max_traces = max_traces;
    o->max_spans_per_trace = max_spans_per_trace;
    return PM_OK;
}

pm_status_t pm_tracer_opts_set_registry(pm_tracer_opts_t *o, pm_registry_t *r)
{
    if (!o) return PM_EINVAL;
    o->reg = r;
    return PM_OK;
}

/* ------------------------------------------------------------ tracer */

static pm_status_t red_families(pm_tracer_t *t, pm_registry_t *r)
{
    pm_family_opts_t *o;
    pm_status_t st = pm_family_opts_new(&o);
    if (st != PM_OK) return st;
    const char *op[1] = {"operation"};
    if ((st = pm_family_opts_set_labels(o, op, 1)) == PM_OK &&
        (st = pm_family_opts_set_max_series(o, 1024)) == PM_OK &&
        (st = pm_family_new(r, PM_TYPE_HISTOGRAM, "pm_span_duration_seconds",
                            "Duration of exported spans per operation.", o, &t->f_dur)) == PM_OK &&
        (st = pm_family_new(r, PM_TYPE_COUNTER, "pm_span_errors",
                            "Exported spans with error status per operation.", o, &t->f_err)) ==
            PM_OK)
        st = pm_family_new(r, PM_TYPE_COUNTER, "pm_spans", "Exported spans per operation.", o,
                           &t->f_spans);
    pm_family_opts_free(o);
    return st;
}

pm_status_t pm_tracer_new(const pm_tracer_opts_t *opts, pm_tracer_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    pm_tracer_opts_t *defaults = NULL;
    if (!opts) {
        pm_status_t st = pm_tracer_opts_new(&defaults);
        if (st != PM_OK) return st;
        opts = defaults;
    }
    pm_status_t st = PM_ENOMEM;
    pm_tracer_t *t = NULL;
    if (posix_memalign((void **)&t, 64, sizeof *t)) goto done;
    memset(t, 0, sizeof *t);
    t->sampler = opts->sampler;
    /* ratio 1 samples everything: threshold above every 63-bit value. */
    t->threshold = opts->ratio >= 1 ? UINT64_MAX : (uint64_t)(opts->ratio * 9223372036854775808.0);
    t->max_attrs = (uint32_t)opts->max_attrs; /* <= 1024 (opts setter) */
    t->max_events = (uint32_t)opts->max_events;
    t->batch = opts->batch;
    t->interval = opts->interval;
    if (!(t->service = strdup(opts->service ? opts->service : "unknown_service"))) goto fail;
    pm__clock_init();
    uint64_t mono = pm_now_ns();
    t->wall_offset = pm__wall_ns() - (int64_t)mono;
    t->nrings = pm__default_stripes(); /* rings are chosen by the metrics stripe */
    size_t per = pm__pow2_at_least((opts->buffer + t->nrings - 1) / t->nrings);
    if (per < 8) per = 8;
    if (posix_memalign((void **)&t->rings, 64, t->nrings * sizeof *t->rings)) goto fail;
    memset(t->rings, 0, t->nrings * sizeof *t->rings);
    for (unsigned i = 0; i < t->nrings * 2; i++) {
        ring *q = i % 2 ? &t->rings[i / 2].empty : &t->rings[i / 2].full;
        q->mask = per - 1;
        if (!(q->cells = calloc(per, sizeof *q->cells))) goto fail;
        for (size_t j = 0; j < per; j++) atomic_init(&q->cells[j].seq, j);
    }
    if ((st = pm__analytics_new(opts->max_ops, opts->slowest, opts->error_traces,
                                opts->max_traces, opts->max_spans_per_trace, &t->analytics)) !=
        PM_OK)
        goto fail;
    if (opts->reg && (st = red_families(t, opts->reg)) != PM_OK) goto fail;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&t->flush_lock, NULL);
    pthread_mutex_init(&t->th_lock, NULL);
    pthread_cond_init(&t->th_cond, &ca);
    pthread_condattr_destroy(&ca);
    *out = t;
    st = PM_OK;
    goto done;
fail:
    if (st == PM_OK) st = PM_ENOMEM;
    if (t) {
        if (t->rings)
            for (unsigned i = 0; i < t->nrings; i++) {
                free(t->rings[i].full.cells);
                free(t->rings[i].empty.cells);
            }
        free(t->rings);
        if (t->analytics) pm__analytics_free(t->analytics);
        free(t->service);
        free(t);
    }
done:
    pm_tracer_opts_free(defaults);
    return st;
}

void pm_tracer_free(pm_tracer_t *t)
{
    if (!t) return;
    pm_tracer_stop(t);
    pm_tracer_flush(t, NULL);
    pm_tracer_t *expected = t;
    atomic_compare_exchange_strong(&default_tracer, &expected, NULL);
    pthread_mutex_lock(&t->flush_lock);
    pm__analytics_settle(t->analytics);
    pthread_mutex_unlock(&t->flush_lock);
    pm__cb_free_all(&pm__default_alloc, &t->exporters);
    for (unsigned i = 0; i < t->nrings; i++) {
        pm_span_rec *r;
        while ((r = ring_pop(&t->rings[i].empty))) free(r);
        free(t->rings[i].full.cells);
        free(t->rings[i].empty.cells);
    }
    free(t->rings);
    pm__analytics_free(t->analytics);
    pthread_mutex_destroy(&t->flush_lock);
    pthread_mutex_destroy(&t->th_lock);
    pthread_cond_destroy(&t->th_cond);
    free(t->service);
    free(t);
}

void pm_tracer_set_default(pm_tracer_t *t) { atomic_store(&default_tracer, t); }
pm_tracer_t *pm_tracer_default(void) { return atomic_load_explicit(&default_tracer, memory_order_acquire); }
pm_trace_analytics *pm__tracer_analytics(pm_tracer_t *t) { return t ? t->analytics : NULL; }

uint64_t pm_tracer_stat(const pm_tracer_t *t, pm_tracer_stat_t which)
{
    if (!t || which < PM_TRACER_STARTED || which > PM_TRACER_SPANS_OTHER) return 0;
    pm_tracer_t *m = (pm_tracer_t *)t;
    if (which >= PM_TRACER_TRACES_COMPLETED) {
        static const char *const names[] = {"completed", "forced", "detached", "unassembled",
                                            "other"};
        uint64_t v = pm__analytics_counter(m->analytics, names[which - PM_TRACER_TRACES_COMPLETED]);
        return v == UINT64_MAX ? 0 : v;
    }
    uint64_t sampled = 0, dropped = 0, pushed = 0, attrs = 0, events = 0;
    for (unsigned i = 0; i < m->nrings; i++) {
        sampled += atomic_load_explicit(&m->rings[i].sampled, memory_order_relaxed);
        dropped += atomic_load_explicit(&m->rings[i].dropped, memory_order_relaxed);
        pushed += atomic_load_explicit(&m->rings[i].full.enq, memory_order_relaxed);
        attrs += atomic_load_explicit(&m->rings[i].attrs_dropped, memory_order_relaxed);
        events += atomic_load_explicit(&m->rings[i].events_dropped, memory_order_relaxed);
    }
    switch (which) {
    case PM_TRACER_STARTED: /* unsampled spans are not counted: no shared write */
    case PM_TRACER_SAMPLED:
        return sampled;
    case PM_TRACER_ENDED:
        return pushed + dropped;
    case PM_TRACER_DROPPED:
        return dropped;
    case PM_TRACER_ATTRS_DROPPED: /* recording threads count these on their stripe */
        return attrs;
    case PM_TRACER_EVENTS_DROPPED:
        return events;
    default:
        return atomic_load_explicit(&m->stat[which], memory_order_relaxed);
    }
}

static void stat_add(pm_tracer_t *t, pm_tracer_stat_t which, uint64_t n)
{
    atomic_fetch_add_explicit(&t->stat[which], n, memory_order_relaxed);
}

pm_status_t pm_tracer_add_exporter(pm_tracer_t *t, const char *name, pm_span_export_fn fn,
                                   void *user, pm_release_fn release)
{
    pm_cb_entry *e;
    /* From inside an exporter the flush lock is held: refuse, never deadlock. */
    return pm__cb_add(t ? &pm__default_alloc : NULL, t ? &t->flush_lock : NULL,
                      t ? &t->exporters : NULL, name, (void (*)(void))fn, user, release,
                      in_exporter != 0, &e);
}

pm_status_t pm_tracer_remove_exporter(pm_tracer_t *t, const char *name)
{
    if (!t || !name) return PM_EINVAL;
    if (in_exporter) return PM_ESTATE; /* the flush lock is held: never deadlock */
    pthread_mutex_lock(&t->flush_lock); /* waits for a flush calling it */
    pm_cb_entry *e = t->exporters;
    while (e && strcmp(e->name, name)) e = e->next;
    if (e) pm__cb_unlink(&t->exporters, e);
    pthread_mutex_unlock(&t->flush_lock);
    if (!e) return PM_ENOENT;
    pm__cb_free(&pm__default_alloc, e);
    return PM_OK;
}

/* ------------------------------------------------------------ rings */

static bool ring_push(ring *q, pm_span_rec *v)
{
    size_t pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
    for (;;) {
        ring_cell *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)pos;
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->enq, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                c->v = v;
                atomic_store_explicit(&c->seq, pos + 1, memory_order_release);
                return true;
            }
        } else if (dif < 0) {
            return false; /* full */
        } else {
            pos = atomic_load_explicit(&q->enq, memory_order_relaxed);
        }
    }
}

static pm_span_rec *ring_pop(ring *q)
{
    size_t pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
    for (;;) {
        ring_cell *c = &q->cells[pos & q->mask];
        size_t seq = atomic_load_explicit(&c->seq, memory_order_acquire);
        intptr_t dif = (intptr_t)seq - (intptr_t)(pos + 1);
        if (dif == 0) {
            if (atomic_compare_exchange_weak_explicit(&q->deq, &pos, pos + 1,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                pm_span_rec *v = c->v;
                atomic_store_explicit(&c->seq, pos + q->mask + 1, memory_order_release);
                return v;
            }
        } else if (dif < 0) {
            return NULL; /* empty */
        } else {
            pos = atomic_load_explicit(&q->deq, memory_order_relaxed);
        }
    }
}

/* ------------------------------------------------------------ spans */

/* 8 bytes in memory order (the compiler makes it one load or store). */
static inline uint64_t load8(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline void store8(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* lo: bytes 8..15 of the trace id, as stored in memory. */
static bool sample_root(const pm_tracer_t *t, uint64_t lo)
{
    switch (t->sampler) {
    case PM_SAMPLER_ALWAYS:
        return true;
    case PM_SAMPLER_NEVER:
        return false;
    default: {
        /* The last 8 bytes of the trace id, big-endian, top bit dropped:
         * the same decision in every process that sees the trace. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        uint64_t x = __builtin_bswap64(lo);
#else
        uint8_t b[8];
        memcpy(b, &lo, 8);
        uint64_t x = 0;
        for (int i = 0; i < 8; i++) x = (x << 8) | b[i];
#endif
        return t->threshold == UINT64_MAX || (x >> 1) < t->threshold;
    }
    }
}

static bool ctx_has_trace(const pm_trace_context_t *c)
{
    return (load8(c->trace_id) | load8(c->trace_id + 8)) != 0;
}

/* A span's ids: the trace id's two halves in memory order, the span id. */
typedef struct span_ids {
    uint64_t trace0, trace1, span;
} span_ids;

/* The fields every span has. */
static inline void span_init(pm_span_t *s, pm_tracer_t *t, span_ids id,
                             const pm_trace_context_t *pc, pm_span_kind_t kind, bool sampled)
{
    s->t = t;
    /* 8-byte stores of values held in registers: a 16-byte copy from the
     * stack would stall on store forwarding. */
    store8(s->ctx.trace_id, id.trace0);
    store8(s->ctx.trace_id + 8, id.trace1);
    store8(s->ctx.span_id, id.span);
    s->ctx.flags = sampled ? PM_TRACE_FLAG_SAMPLED : 0;
    s->ctx.remote = 0;
    memset(s->ctx.reserved, 0, sizeof s->ctx.reserved);
    store8(s->parent_id, pc ? load8(pc->span_id) : 0);
    s->parent_remote = pc ? pc->remote : 0;
    s->kind = (uint8_t)kind;
    s->sampled = sampled;
    s->entered = 0;
    s->prev_current = NULL;
}

/* The sampled part of pm_span_start: a record, its name and start time. Out
 * of line, so the unsampled path stays a short leaf. */
__attribute__((noinline)) static pm_status_t start_sampled(pm_tracer_t *t, const char *name,
                                                           pm_span_kind_t kind,
                                                           const span_ids *id,
                                                           const pm_trace_context_t *pc,
                                                           pm_span_t **out)
{
    stripe *sp = &t->rings[pm__stripe(t->nrings - 1)];
    pm_span_rec *r = rec_get(sp);
    if (!r) return PM_ENOMEM;
    atomic_fetch_add_explicit(&sp->sampled, 1, memory_order_relaxed);
    span_init(&r->base, t, *id, pc, kind, true);
    /* The name, cut at 256 bytes on a character boundary. */
    size_t n = strnlen(name, PM_SPAN_NAME_MAX + 1);
    if (n > PM_SPAN_NAME_MAX) {
        n = PM_SPAN_NAME_MAX;
        while (n > 0 && ((unsigned char)name[n] & 0xC0) == 0x80) n--;
    }
    memcpy(r->name, name, n);
    r->name[n] = 0;
    if (!pm__valid_utf8(r->name, n)) r->name[0] = 0;
    r->start_mono = pm_now_ns();
    r->start_ns = (uint64_t)((int64_t)r->start_mono + t->wall_offset);
    *out = &r->base;
    return PM_OK;
}

pm_status_t pm_span_start(pm_tracer_t *t, const char *name, pm_span_kind_t kind,
                          const pm_trace_context_t *parent, pm_span_t **out)
{
    if (out) *out = NULL;
    if (!t || !name || !out || kind < PM_SPAN_INTERNAL || kind > PM_SPAN_CONSUMER)
        return PM_EINVAL;
    if (PM_UNLIKELY(!ts.seeded)) thread_init();
    const pm_trace_context_t *pc = parent;
    if (!pc && pm__tls_span) pc = &pm__tls_span->ctx;
    if (pc && !ctx_has_trace(pc)) pc = NULL; /* all-zero trace id: a root */
    /* Random ids, never all zero (W3C: zero means none). */
    span_ids id;
    rng g = rng_load();
    if (pc) {
        id.trace0 = load8(pc->trace_id);
        id.trace1 = load8(pc->trace_id + 8);
    } else {
        do {
            id.trace0 = rng_step(&g);
            id.trace1 = rng_step(&g);
        } while (PM_UNLIKELY(!(id.trace0 | id.trace1)));
    }
    do id.span = rng_step(&g);
    while (PM_UNLIKELY(!id.span));
    rng_store(&g);
    bool sampled;
    if (pc && t->sampler == PM_SAMPLER_PARENT_RATIO)
        sampled = pc->flags & PM_TRACE_FLAG_SAMPLED;
    else
        sampled = sample_root(t, id.trace1);
    if (PM_UNLIKELY(sampled)) return start_sampled(t, name, kind, &id, pc, out);
    pm_span_t *s = light_get();
    if (PM_UNLIKELY(!s)) return PM_ENOMEM;
    span_init(s, t, id, pc, kind, false);
    *out = s;
    return PM_OK;
}

/* The sampled part of pm_span_end: end time, then the stripe's ring (or the
 * drop count when it is full). */
__attribute__((noinline)) static void end_sampled(pm_span_rec *r)
{
    pm_tracer_t *t = r->base.t;
    r->end_mono = pm_now_ns();
    if (r->end_mono < r->start_mono) r->end_mono = r->start_mono;
    r->end_ns = r->start_ns + (r->end_mono - r->start_mono);
    stripe *sp = &t->rings[pm__stripe(t->nrings - 1)];
    if (!ring_push(&sp->full, r)) {
        atomic_fetch_add_explicit(&sp->dropped, 1, memory_order_relaxed);
        rec_put(r);
    }
}

void pm_span_end(pm_span_t *s)
{
    if (!s) return;
    if (pm__tls_span == s) pm__tls_span = s->entered ? s->prev_current : NULL;
    if (PM_UNLIKELY(s->sampled)) {
        end_sampled((pm_span_rec *)s);
        return;
    }
    light_put(s);
}

pm_span_t *pm_span_enter(pm_span_t *s)
{
    pm_span_t *prev = pm__tls_span;
    if (s) {
        s->prev_current = prev;
        s->entered = 1;
    }
    pm__tls_span = s;
    return prev;
}

void pm_span_exit(pm_span_t *previous) { pm__tls_span = previous; }

pm_span_t *pm_span_current(void) { return pm__tls_span; }

pm_status_t pm_span_context(const pm_span_t *s, pm_trace_context_t *out)
{
    if (!s || !out) return PM_EINVAL;
    *out = s->ctx;
    return PM_OK;
}

int pm_span_is_sampled(const pm_span_t *s) { return s && s->sampled; }

/* ------------------------------------------------------------ attributes, events, status */

/* Copies str into the span's string storage (inline buffer, then spill). */
static const char *rec_strdup(pm_span_rec *r, const char *str, size_t n)
{
    if (n + 1 <= PM_SPAN_STRBUF - r->strused) {
        char *d = r->strbuf + r->strused;
        memcpy(d, str, n);
        d[n] = 0;
        r->strused += n + 1;
        return d;
    }
    pm_span_spill *sp = malloc(sizeof *sp + n + 1);
    if (!sp) return NULL;
    memcpy(sp->data, str, n);
    sp->data[n] = 0;
    sp->next = r->spill;
    r->spill = sp;
    return sp->data;
}

static pm_status_t check_text(const char *s, size_t *len)
{
    if (!s) return PM_EINVAL;
    *len = strlen(s);
    if (*len > PM_MAX_LABEL_VALUE || !pm__valid_utf8(s, *len)) return PM_EUTF8;
    return PM_OK;
}

/* Finds the attribute `key` or appends a slot for it (growing past the inline ones). */
static pm_status_t attr_slot(pm_span_t *s, const char *key, pm_span_attr **out)
{
    pm_span_rec *r = (pm_span_rec *)s;
    size_t klen;
    pm_status_t st = check_text(key, &klen);
    if (st != PM_OK) return st;
    for (uint32_t i = 0; i < r->nattrs; i++)
        if (!strcmp(r->attrs[i].key, key)) {
            *out = &r->attrs[i];
            return PM_OK;
        }
    pm_tracer_t *t = s->t;
    if (r->nattrs >= t->max_attrs) {
        r->dropped_attrs++;
        atomic_fetch_add_explicit(&t->rings[pm__stripe(t->nrings - 1)].attrs_dropped, 1,
                                  memory_order_relaxed);
        return PM_ERANGE;
    }
    if (r->nattrs == r->capattrs) {
        uint32_t cap = r->capattrs * 2;
        pm_span_attr *n = malloc(cap * sizeof *n);
        if (!n) return PM_ENOMEM;
        memcpy(n, r->attrs, r->nattrs * sizeof *n);
        if (r->attrs != r->attrs_inline) free(r->attrs);
        r->attrs = n;
        r->capattrs = cap;
    }
    const char *k = rec_strdup(r, key, klen);
    if (!k) return PM_ENOMEM;
    pm_span_attr *a = &r->attrs[r->nattrs++];
    a->key = k;
    *out = a;
    return PM_OK;
}

pm_status_t pm_span_set_string(pm_span_t *s, const char *key, const char *value)
{
    if (!s || !key || !value) return PM_EINVAL;
    if (!s->sampled) return PM_OK;
    size_t vlen;
    pm_status_t st = check_text(value, &vlen);
    if (st != PM_OK) return st;
    pm_span_attr *a;
    if ((st = attr_slot(s, key, &a)) != PM_OK) return st;
    const char *v = rec_strdup((pm_span_rec *)s, value, vlen);
    if (!v) return PM_ENOMEM;
    a->type = PM_ATTR_STRING;
    a->v.s = v;
    return PM_OK;
}

pm_status_t pm_span_set_int(pm_span_t *s, const char *key, int64_t value)
{
    if (!s || !key) return PM_EINVAL;
    if (!s->sampled) return PM_OK;
    pm_span_attr *a;
    pm_status_t st = attr_slot(s, key, &a);
    if (st != PM_OK) return st;
    a->type = PM_ATTR_INT;
    a->v.i = value;
    return PM_OK;
}

pm_status_t pm_span_set_double(pm_span_t *s, const char *key, double value)
{
    if (!s || !key) return PM_EINVAL;
    if (!s->sampled) return PM_OK;
    pm_span_attr *a;
    pm_status_t st = attr_slot(s, key, &a);
    if (st != PM_OK) return st;
    a->type = PM_ATTR_DOUBLE;
    a->v.d = value;
    return PM_OK;
}

pm_status_t pm_span_set_bool(pm_span_t *s, const char *key, int value)
{
    if (!s || !key) return PM_EINVAL;
    if (!s->sampled) return PM_OK;
    pm_span_attr *a;
    pm_status_t st = attr_slot(s, key, &a);
    if (st != PM_OK) return st;
    a->type = PM_ATTR_BOOL;
    a->v.b = value != 0;
    return PM_OK;
}

pm_status_t pm_span_add_event(pm_span_t *s, const char *name, const char *attr_key,
                              const char *attr_value)
{
    if (!s || !name || (!attr_key) != (!attr_value)) return PM_EINVAL;
    if (!s->sampled) return PM_OK;
    pm_span_rec *r = (pm_span_rec *)s;
    size_t nlen, klen = 0, vlen = 0;
    pm_status_t st = check_text(name, &nlen);
    if (st == PM_OK && attr_key && (st = check_text(attr_key, &klen)) == PM_OK)
        st = check_text(attr_value, &vlen);
    if (st != PM_OK) return st;
    pm_tracer_t *t = s->t;
    if (r->nevents >= t->max_events) {
        r->dropped_events++;
        atomic_fetch_add_explicit(&t->rings[pm__stripe(t->nrings - 1)].events_dropped, 1,
                                  memory_order_relaxed);
        return PM_ERANGE;
    }
    if (r->nevents == r->capevents) {
        uint32_t cap = r->capevents * 2;
        pm_span_event *n = malloc(cap * sizeof *n);
        if (!n) return PM_ENOMEM;
        memcpy(n, r->events, r->nevents * sizeof *n);
        if (r->events != r->events_inline) free(r->events);
        r->events = n;
        r->capevents = cap;
    }
    pm_span_event ev = {NULL, 0, NULL, NULL};
    if (!(ev.name = rec_strdup(r, name, nlen))) return PM_ENOMEM;
    if (attr_key && (!(ev.key = rec_strdup(r, attr_key, klen)) ||
                     !(ev.value = rec_strdup(r, attr_value, vlen))))
        return PM_ENOMEM;
    ev.time_ns = (uint64_t)((int64_t)pm_now_ns() + t->wall_offset);
    r->events[r->nevents++] = ev;
    return PM_OK;
}

pm_status_t pm_span_set_status(pm_span_t *s, pm_span_status_t status, const char *message)
{
    if (!s || status < PM_SPAN_STATUS_UNSET || status > PM_SPAN_STATUS_ERROR) return PM_EINVAL;
    if (!s->sampled) return PM_OK;
    pm_span_rec *r = (pm_span_rec *)s;
    const char *m = "";
    if (status == PM_SPAN_STATUS_ERROR && message) {
        size_t len;
        pm_status_t st = check_text(message, &len);
        if (st != PM_OK) return st;
        if (!(m = rec_strdup(r, message, len))) return PM_ENOMEM;
    }
    r->status = (uint8_t)status;
    r->status_msg = m;
    return PM_OK;
}

/* ------------------------------------------------------------ flush and export */

static void feed_red(pm_tracer_t *t, const pm_span_rec *r)
{
    if (!t->f_dur) return;
    const char *v[1] = {r->name};
    pm_histogram_observe_labeled(t->f_dur, v, 1, (double)(r->end_mono - r->start_mono) / 1e9);
    pm_counter_add_labeled(t->f_spans, v, 1, 1);
    if (r->status == PM_SPAN_STATUS_ERROR) pm_counter_add_labeled(t->f_err, v, 1, 1);
}

pm_status_t pm_tracer_flush(pm_tracer_t *t, size_t *n)
{
    if (n) *n = 0;
    if (!t) return PM_EINVAL;
    if (in_exporter) return PM_ESTATE;
    pm_span_rec **batch = malloc(t->batch * sizeof *batch);
    if (!batch) return PM_ENOMEM;
    pthread_mutex_lock(&t->flush_lock);
    size_t total = 0;
    for (;;) {
        size_t k = 0;
        for (unsigned q = 0; q < t->nrings && k < t->batch; q++) {
            pm_span_rec *r;
            while (k < t->batch && (r = ring_pop(&t->rings[q].full))) {
                r->base.next_free = (pm_span_t *)(uintptr_t)q; /* its stripe, for the way back */
                batch[k++] = r;
            }
        }
        if (!k) break;
        for (size_t i = 0; i < k; i++) {
            pm__analytics_add(t->analytics, batch[i]);
            feed_red(t, batch[i]);
        }
        pm_span_batch_t b = {(const pm_span_rec *const *)batch, k, t->service};
        for (pm_cb_entry *e = t->exporters; e; e = e->next) {
            in_exporter++;
            pm_status_t st = ((pm_span_export_fn)e->fn)(&b, e->user);
            in_exporter--;
            if (st != PM_OK) stat_add(t, PM_TRACER_EXPORT_FAILURES, 1);
        }
        stat_add(t, PM_TRACER_EXPORTED, k);
        for (size_t i = 0; i < k; i++) {
            /* Back to the producers of its stripe, so they need no malloc. */
            pm_span_rec *r = batch[i];
            unsigned q = (unsigned)(uintptr_t)r->base.next_free;
            rec_release_memory(r);
            if (!ring_push(&t->rings[q].empty, r)) rec_put(r);
        }
        total += k;
    }
    pthread_mutex_unlock(&t->flush_lock);
    free(batch);
    if (n) *n = total;
    return PM_OK;
}

static void *export_thread(void *arg)
{
    pm_tracer_t *t = arg;
    pthread_mutex_lock(&t->th_lock);
    while (!t->stop) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        struct timespec ts_ = pm__timespec_after(now, t->interval);
        while (!t->stop && pthread_cond_timedwait(&t->th_cond, &t->th_lock, &ts_) != ETIMEDOUT) {
        }
        if (t->stop) break;
        pthread_mutex_unlock(&t->th_lock);
        pm_tracer_flush(t, NULL);
        pthread_mutex_lock(&t->th_lock);
    }
    pthread_mutex_unlock(&t->th_lock);
    return NULL;
}

pm_status_t pm_tracer_start(pm_tracer_t *t)
{
    if (!t) return PM_EINVAL;
    if (in_exporter) return PM_ESTATE;
    pthread_mutex_lock(&t->th_lock);
    pm_status_t st = PM_OK;
    if (t->running) {
        st = PM_ESTATE;
    } else {
        t->stop = 0;
        if (pthread_create(&t->thread, NULL, export_thread, t) == 0)
            t->running = 1;
        else
            st = PM_ETHREAD;
    }
    pthread_mutex_unlock(&t->th_lock);
    return st;
}

pm_status_t pm_tracer_stop(pm_tracer_t *t)
{
    if (!t) return PM_EINVAL;
    if (in_exporter) return PM_ESTATE;
    pthread_mutex_lock(&t->th_lock);
    int running = t->running;
    t->stop = 1;
    pthread_cond_broadcast(&t->th_cond);
    pthread_mutex_unlock(&t->th_lock);
    if (running) {
        pthread_join(t->thread, NULL);
        t->running = 0;
    }
    return pm_tracer_flush(t, NULL);
}
