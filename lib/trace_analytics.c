/* Trace analytics: per-operation span statistics (count, errors, duration and
 * self-time distributions), and the slowest and most recent error traces with
 * their critical paths, all in bounded memory (doc/trace-analytics.md).
 *
 * Spans arrive one by one from the tracer's flush (serialised by the tracer),
 * in ring order: roughly end order per thread, children usually before their
 * parent, traces interleaved. They are assembled per trace id; a trace whose
 * local root has arrived is "pending" and is processed (self times, critical
 * path, kept lists) at the next read, settle, or when its slot is needed, so
 * children flushed from other threads' rings after the root are still part of
 * it. Readers may run on any thread: everything is under one mutex. */
#include "internal/span_internal.h"

#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#define TA_LOWEST 1e-9 /* hdata range, seconds */
#define TA_HIGHEST 1e5
#define TA_OTHER_NAME "(other)"
#define TA_NONE UINT32_MAX

/* Counters for tests and diagnostics (not public yet; see the doc). */
uint64_t pm__analytics_counter(pm_trace_analytics *a, const char *name);

/* ------------------------------------------------------------ index */

/* Open addressing with linear probing over (hash, value + 1) pairs, load at
 * most 1/2; deletion shifts back, so there are no tombstones. Keys live in the
 * callers' tables (operations, traces, completed ids): each caller probes and
 * compares its own keys. */
typedef struct ix_slot {
    uint32_t h, v; /* v: value + 1, 0 = empty */
} ix_slot;

typedef struct ix {
    ix_slot *s;
    uint32_t mask, n;
} ix;

static void ix_place(ix_slot *s, uint32_t mask, uint32_t h, uint32_t v)
{
    uint32_t i = h & mask;
    while (s[i].v) i = (i + 1) & mask;
    s[i].h = h;
    s[i].v = v;
}

/* Makes room for one more entry. Returns 0, or -1 on allocation failure. */
static int ix_reserve1(ix *x)
{
    if (x->s && (x->n + 1) * 2 <= x->mask + 1) return 0;
    uint32_t cap = x->s ? (x->mask + 1) * 2 : 16;
    ix_slot *ns = calloc(cap, sizeof *ns);
    if (!ns) return -1;
    if (x->s)
        for (uint32_t i = 0; i <= x->mask; i++)
            if (x->s[i].v) ix_place(ns, cap - 1, x->s[i].h, x->s[i].v);
    free(x->s);
    x->s = ns;
    x->mask = cap - 1;
    return 0;
}

static void ix_insert(ix *x, uint32_t h, uint32_t value)
{
    ix_place(x->s, x->mask, h, value + 1);
    x->n++;
}

static void ix_remove(ix *x, uint32_t h, uint32_t value)
{
    uint32_t i = h & x->mask;
    while (x->s[i].v != value + 1) i = (i + 1) & x->mask;
    x->s[i].v = 0;
    x->n--;
    for (uint32_t j = (i + 1) & x->mask; x->s[j].v; j = (j + 1) & x->mask) {
        uint32_t home = x->s[j].h & x->mask;
        /* Move j into the hole at i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            x->s[i] = x->s[j];
            x->s[j].v = 0;
            i = j;
        }
    }
}

/* ------------------------------------------------------------ state */

typedef struct ta_op {
    uint64_t spans, errors;
    double self_total; /* seconds */
    pm_hdata_t *dur, *self;
    char name[];
} ta_op;

/* One span as assembly keeps it. */
typedef struct ta_span {
    uint64_t id, parent; /* the 8 id bytes as one word: only equality and order matter */
    uint64_t start, end; /* monotonic ns, end >= start */
    uint32_t op;         /* index in ops, TA_NONE for "(other)" */
    uint8_t error, local_root;
} ta_span;

typedef struct ta_trace {
    uint8_t id[16];
    uint32_t hash;
    ta_span *spans;
    uint32_t n, cap;
    uint32_t dropped, dropped_errors; /* past max_spans_per_trace */
    uint32_t prev, next;              /* open or pending list; next = free list */
    uint8_t rooted;                   /* a local root has arrived: on the pending list */
    uint8_t late;                     /* a trace with this id completed before it opened */
} ta_trace;

typedef struct ta_list {
    uint32_t head, tail;
} ta_list;

typedef struct ta_step {
    uint32_t op;
    uint64_t ns;
} ta_step;

/* A completed trace kept in the slowest list and/or the error ring. */
typedef struct ta_kept {
    uint32_t refs;
    uint8_t id[16];
    uint32_t root_op;
    uint64_t dur_ns;
    size_t spans, errors;
    uint32_t npath;
    ta_step path[];
} ta_kept;

struct pm_trace_analytics {
    pthread_mutex_t lock;
    uint32_t max_ops, slowest, error_traces, max_traces, max_spans;

    ta_op **ops;
    uint32_t nops, capops;
    ix opix;
    ta_op *other; /* spans of operations beyond max_ops */

    ta_trace *tr; /* assembly pool, indexes stable */
    uint32_t captr, nlive, free_head;
    ix trix;
    ta_list open, pending;

    uint8_t (*recent)[16]; /* ids of recently completed traces, a FIFO ring */
    uint32_t caprecent, nrecent, recent_head;
    ix recix;

    ta_kept **slow; /* longest first */
    uint32_t nslow;
    ta_kept **err; /* ring, oldest at err_head */
    uint32_t nerr, err_head;

    uint64_t c_completed, c_forced, c_settled, c_detached, c_unassembled, c_nomem;
};

static const char *op_name(const pm_trace_analytics *a, uint32_t op)
{
    return op == TA_NONE ? TA_OTHER_NAME : a->ops[op]->name;
}

static ta_op *op_at(const pm_trace_analytics *a, uint32_t op)
{
    return op == TA_NONE ? a->other : a->ops[op];
}

/* ------------------------------------------------------------ operations */

static uint32_t hash_name(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

static ta_op *op_new(const char *name, size_t len)
{
    ta_op *o = calloc(1, sizeof *o + len + 1);
    if (!o) return NULL;
    memcpy(o->name, name, len);
    if (pm_hdata_new(TA_LOWEST, TA_HIGHEST, &o->dur) != PM_OK ||
        pm_hdata_new(TA_LOWEST, TA_HIGHEST, &o->self) != PM_OK) {
        pm_hdata_free(o->dur);
        free(o);
        return NULL;
    }
    return o;
}

static void op_free(ta_op *o)
{
    if (!o) return;
    pm_hdata_free(o->dur);
    pm_hdata_free(o->self);
    free(o);
}

/* The operation called name: found, created while fewer than max_ops exist,
 * or TA_NONE ("(other)"). */
static uint32_t op_get(pm_trace_analytics *a, const char *name)
{
    uint32_t h = hash_name(name);
    if (a->opix.s)
        for (uint32_t i = h & a->opix.mask; a->opix.s[i].v; i = (i + 1) & a->opix.mask) {
            uint32_t v = a->opix.s[i].v - 1;
            if (a->opix.s[i].h == h && strcmp(a->ops[v]->name, name) == 0) return v;
        }
    if (a->nops >= a->max_ops) return TA_NONE;
    if (a->nops == a->capops) {
        uint32_t cap = a->capops ? a->capops * 2 : 16;
        if (cap > a->max_ops) cap = a->max_ops;
        ta_op **n = realloc(a->ops, cap * sizeof *n);
        if (!n) goto nomem;
        a->ops = n;
        a->capops = cap;
    }
    ta_op *o;
    if (ix_reserve1(&a->opix) || !(o = op_new(name, strnlen(name, PM_SPAN_NAME_MAX)))) goto nomem;
    a->ops[a->nops] = o;
    ix_insert(&a->opix, h, a->nops);
    return a->nops++;
nomem:
    a->c_nomem++;
    return TA_NONE;
}

static void op_self(pm_trace_analytics *a, uint32_t op, uint64_t ns)
{
    ta_op *o = op_at(a, op);
    double s = (double)ns / 1e9;
    if (pm_hdata_record(o->self, s) != PM_OK) a->c_nomem++;
    o->self_total += s;
}

/* ------------------------------------------------------------ trace ids */

static uint32_t hash_id(const uint8_t id[16])
{
    uint64_t lo, hi;
    memcpy(&lo, id, 8);
    memcpy(&hi, id + 8, 8);
    uint64_t x = lo ^ (hi * 0x9E3779B97F4A7C15u);
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9u;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBu;
    return (uint32_t)(x ^ (x >> 31));
}

static uint32_t trace_find(const pm_trace_analytics *a, const uint8_t id[16], uint32_t h)
{
    if (!a->trix.s) return TA_NONE;
    for (uint32_t i = h & a->trix.mask; a->trix.s[i].v; i = (i + 1) & a->trix.mask) {
        uint32_t v = a->trix.s[i].v - 1;
        if (a->trix.s[i].h == h && memcmp(a->tr[v].id, id, 16) == 0) return v;
    }
    return TA_NONE;
}

static int recent_has(const pm_trace_analytics *a, const uint8_t id[16], uint32_t h)
{
    if (!a->recix.s) return 0;
    for (uint32_t i = h & a->recix.mask; a->recix.s[i].v; i = (i + 1) & a->recix.mask)
        if (a->recix.s[i].h == h && memcmp(a->recent[a->recix.s[i].v - 1], id, 16) == 0) return 1;
    return 0;
}

/* Remembers a completed trace id (the oldest is forgotten when the ring,
 * max_traces ids, is full), so spans that arrive after their trace completed
 * are recognised as late instead of opening a trace of their own. */
static void recent_add(pm_trace_analytics *a, const uint8_t id[16], uint32_t h)
{
    if (recent_has(a, id, h)) return;
    uint32_t pos;
    if (a->nrecent < a->caprecent) {
        pos = a->nrecent;
    } else if (a->caprecent < a->max_traces) {
        uint32_t cap = a->caprecent ? a->caprecent * 2 : 16;
        if (cap > a->max_traces) cap = a->max_traces;
        uint8_t(*n)[16] = realloc(a->recent, cap * sizeof *n);
        if (!n) return;
        a->recent = n;
        a->caprecent = cap;
        pos = a->nrecent;
    } else {
        pos = a->recent_head; /* full at the bound: replace the oldest */
        ix_remove(&a->recix, hash_id(a->recent[pos]), pos);
        a->nrecent--;
        a->recent_head = (a->recent_head + 1) % a->caprecent;
    }
    if (ix_reserve1(&a->recix)) return; /* not remembered: only a possible late fragment */
    memcpy(a->recent[pos], id, 16);
    ix_insert(&a->recix, h, pos);
    a->nrecent++;
}

/* ------------------------------------------------------------ lists */

static void list_push(pm_trace_analytics *a, ta_list *l, uint32_t i)
{
    a->tr[i].prev = l->tail;
    a->tr[i].next = TA_NONE;
    if (l->tail != TA_NONE)
        a->tr[l->tail].next = i;
    else
        l->head = i;
    l->tail = i;
}

static void list_unlink(pm_trace_analytics *a, ta_list *l, uint32_t i)
{
    ta_trace *e = &a->tr[i];
    if (e->prev != TA_NONE)
        a->tr[e->prev].next = e->next;
    else
        l->head = e->next;
    if (e->next != TA_NONE)
        a->tr[e->next].prev = e->prev;
    else
        l->tail = e->prev;
}

/* ------------------------------------------------------------ kept traces */

static void kept_unref(ta_kept *k)
{
    if (k && --k->refs == 0) free(k);
}

static void keep_slowest(pm_trace_analytics *a, ta_kept *k)
{
    uint32_t pos = 0;
    while (pos < a->nslow && a->slow[pos]->dur_ns >= k->dur_ns) pos++; /* ties: older first */
    if (pos >= a->slowest) return;
    if (a->nslow == a->slowest) kept_unref(a->slow[--a->nslow]);
    memmove(a->slow + pos + 1, a->slow + pos, (a->nslow - pos) * sizeof *a->slow);
    a->slow[pos] = k;
    a->nslow++;
    k->refs++;
}

static void keep_error(pm_trace_analytics *a, ta_kept *k)
{
    if (a->nerr < a->error_traces) {
        a->err[(a->err_head + a->nerr++) % a->error_traces] = k;
    } else {
        kept_unref(a->err[a->err_head]);
        a->err[a->err_head] = k;
        a->err_head = (a->err_head + 1) % a->error_traces;
    }
    k->refs++;
}

/* ------------------------------------------------------------ completion */

/* Scratch for processing one assembled trace of n spans; one allocation,
 * freed after the trace is processed. */
typedef struct ta_pair {
    uint64_t key, key2;
    uint32_t idx;
} ta_pair;

typedef struct ta_cand {
    uint64_t end, start; /* clipped to the parent's effective interval */
    uint32_t idx;
} ta_cand;

typedef struct ta_frame {
    uint32_t span;
    uint32_t beg, pos, end; /* candidate children in cand[beg, end); next at pos */
    uint64_t lo, hi, cursor;
} ta_frame;

typedef struct ta_visit {
    uint64_t start;
    uint32_t order, span;
} ta_visit;

typedef struct ta_work {
    ta_pair *pairs;
    uint32_t *par;   /* parent index or TA_NONE */
    uint32_t *first; /* children of i: kids[first[i], first[i + 1]), by start */
    uint32_t *kids;
    uint32_t *stack;
    uint8_t *mark;
    ta_cand *cand;
    ta_frame *frames;
    ta_visit *visits;
    uint64_t *credit;
    void *mem;
} ta_work;

static int cmp_pair(const void *x, const void *y)
{
    const ta_pair *p = x, *q = y;
    if (p->key != q->key) return p->key < q->key ? -1 : 1;
    if (p->key2 != q->key2) return p->key2 < q->key2 ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

/* Later end first; among equal ends the earlier start (it explains more of
 * the parent's time); then arrival order. */
static int cmp_cand(const void *x, const void *y)
{
    const ta_cand *p = x, *q = y;
    if (p->end != q->end) return p->end > q->end ? -1 : 1;
    if (p->start != q->start) return p->start < q->start ? -1 : 1;
    return p->idx < q->idx ? -1 : p->idx > q->idx;
}

static int cmp_visit(const void *x, const void *y)
{
    const ta_visit *p = x, *q = y;
    if (p->start != q->start) return p->start < q->start ? -1 : 1;
    return p->order < q->order ? -1 : p->order > q->order;
}

#define TA_ALIGN(n) (((n) + 7) & ~(size_t)7)

static int work_alloc(ta_work *w, uint32_t n)
{
    size_t sz[] = {n * sizeof(ta_pair),  n * sizeof(uint32_t), (n + 1) * sizeof(uint32_t),
                   n * sizeof(uint32_t), n * sizeof(uint32_t), n,
                   n * sizeof(ta_cand),  n * sizeof(ta_frame), n * sizeof(ta_visit),
                   n * sizeof(uint64_t)};
    size_t total = 0;
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) total += TA_ALIGN(sz[i]);
    char *p = malloc(total);
    if (!p) return -1;
    w->mem = p;
    void **dst[] = {(void **)&w->pairs, (void **)&w->par,    (void **)&w->first,
                    (void **)&w->kids,  (void **)&w->stack,  (void **)&w->mark,
                    (void **)&w->cand,  (void **)&w->frames, (void **)&w->visits,
                    (void **)&w->credit};
    for (size_t i = 0; i < sizeof sz / sizeof sz[0]; i++) {
        *dst[i] = p;
        p += TA_ALIGN(sz[i]);
    }
    return 0;
}

/* Children lists from par[], each in start order (pairs hold spans sorted by
 * start on entry). */
static void build_children(ta_work *w, uint32_t n)
{
    memset(w->first, 0, (n + 1) * sizeof *w->first);
    for (uint32_t i = 0; i < n; i++)
        if (w->par[i] != TA_NONE) w->first[w->par[i] + 1]++;
    for (uint32_t i = 0; i < n; i++) w->first[i + 1] += w->first[i];
    uint32_t *fill = w->stack; /* next free position per parent */
    memcpy(fill, w->first, n * sizeof *fill);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = w->pairs[k].idx;
        if (w->par[i] != TA_NONE) w->kids[fill[w->par[i]]++] = i;
    }
}

/* Marks (mark = 1) every span reachable from root and returns how many. */
static uint32_t mark_subtree(ta_work *w, uint32_t root)
{
    uint32_t sp = 0, count = 0;
    w->stack[sp++] = root;
    w->mark[root] = 1;
    while (sp) {
        uint32_t i = w->stack[--sp];
        count++;
        for (uint32_t k = w->first[i]; k < w->first[i + 1]; k++)
            if (!w->mark[w->kids[k]]) {
                w->mark[w->kids[k]] = 1;
                w->stack[sp++] = w->kids[k];
            }
    }
    return count;
}

/* Parent links within the trace: a span's parent is the collected span with
 * its parent id; local roots and spans whose parent was not collected have
 * none. Links that would form a cycle (only possible with colliding span ids)
 * are cut, so the result is a forest. */
static void link_spans(ta_work *w, const ta_span *s, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) w->pairs[i] = (ta_pair){s[i].id, 0, i};
    qsort(w->pairs, n, sizeof *w->pairs, cmp_pair);
    for (uint32_t i = 0; i < n; i++) {
        w->par[i] = TA_NONE;
        if (s[i].local_root || s[i].parent == 0) continue;
        uint32_t lo = 0, hi = n;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (w->pairs[mid].key < s[i].parent)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < n && w->pairs[lo].key == s[i].parent && w->pairs[lo].idx != i)
            w->par[i] = w->pairs[lo].idx;
    }
    for (uint32_t i = 0; i < n; i++) w->pairs[i] = (ta_pair){s[i].start, s[i].end, i};
    qsort(w->pairs, n, sizeof *w->pairs, cmp_pair);
    build_children(w, n);
    memset(w->mark, 0, n);
    uint32_t reached = 0;
    for (uint32_t i = 0; i < n; i++)
        if (w->par[i] == TA_NONE) reached += mark_subtree(w, i);
    if (reached == n) return;
    for (uint32_t i = 0; i < n; i++)
        if (!w->mark[i]) w->par[i] = TA_NONE;
    build_children(w, n);
}

/* Self time: the span's duration minus the length of the union of its
 * children's intervals clipped to its own. Children arrive in start order. */
static uint64_t self_ns(const ta_work *w, const ta_span *s, uint32_t i)
{
    uint64_t lo = s[i].start, hi = s[i].end, covered = 0, cs = lo, ce = lo;
    for (uint32_t k = w->first[i]; k < w->first[i + 1]; k++) {
        const ta_span *c = &s[w->kids[k]];
        uint64_t a = c->start > lo ? c->start : lo, b = c->end < hi ? c->end : hi;
        if (b <= a) continue;
        if (a > ce) {
            covered += ce - cs;
            cs = a;
            ce = b;
        } else if (b > ce) {
            ce = b;
        }
    }
    covered += ce - cs;
    return (hi - lo) - covered;
}

/* Pushes a frame for span i over [lo, hi] (its interval clipped to its
 * parent's) with its children as candidates, latest clipped end first. */
static void path_push(ta_work *w, const ta_span *s, uint32_t *depth, uint32_t *top, uint32_t i,
                      uint64_t lo, uint64_t hi)
{
    ta_frame *f = &w->frames[(*depth)++];
    f->span = i;
    f->lo = lo;
    f->hi = hi;
    f->cursor = hi;
    f->beg = f->pos = *top;
    for (uint32_t k = w->first[i]; k < w->first[i + 1]; k++) {
        const ta_span *c = &s[w->kids[k]];
        uint64_t a = c->start > lo ? c->start : lo, b = c->end < hi ? c->end : hi;
        if (b > a) w->cand[(*top)++] = (ta_cand){b, a, w->kids[k]};
    }
    f->end = *top;
    qsort(w->cand + f->beg, f->end - f->beg, sizeof *w->cand, cmp_cand);
}

/* The critical path from root r (see doc/trace-analytics.md). Walking back
 * from the end of a span (cursor = its end), repeatedly take the child that
 * ends last at or before the cursor; the gap between that child's end and the
 * cursor is the span's own time on the path; descend into the child, then
 * move the cursor to the child's start. When no child is left, the span owns
 * the rest down to its start. Every child is clipped to its parent's clipped
 * interval first, so the segments partition the root's interval: the steps'
 * times sum to the root's duration exactly (in ns). Returns the steps, root
 * first then in start order, in a new ta_kept (NULL on allocation failure). */
static ta_kept *critical_path(ta_work *w, const ta_span *s, uint32_t r)
{
    uint32_t depth = 0, top = 0, nvisit = 0;
    path_push(w, s, &depth, &top, r, s[r].start, s[r].end);
    w->credit[r] = 0;
    w->visits[nvisit++] = (ta_visit){s[r].start, 0, r};
    while (depth) {
        ta_frame *f = &w->frames[depth - 1];
        while (f->pos < f->end && w->cand[f->pos].end > f->cursor) f->pos++;
        if (f->pos < f->end) {
            ta_cand c = w->cand[f->pos++];
            w->credit[f->span] += f->cursor - c.end;
            f->cursor = c.start;
            top = f->end;
            w->credit[c.idx] = 0;
            w->visits[nvisit] = (ta_visit){c.start, nvisit, c.idx};
            nvisit++;
            path_push(w, s, &depth, &top, c.idx, c.start, c.end);
        } else {
            w->credit[f->span] += f->cursor - f->lo;
            top = f->beg;
            depth--;
        }
    }
    qsort(w->visits, nvisit, sizeof *w->visits, cmp_visit);
    ta_kept *k = malloc(sizeof *k + nvisit * sizeof(ta_step));
    if (!k) return NULL;
    k->npath = nvisit;
    for (uint32_t v = 0; v < nvisit; v++)
        k->path[v] = (ta_step){s[w->visits[v].span].op, w->credit[w->visits[v].span]};
    return k;
}

/* Records trace r (the subtree of span r, plus extra dropped spans/errors):
 * builds its kept form when it enters the slowest list or the error ring. */
static void finish_trace(pm_trace_analytics *a, ta_work *w, const ta_trace *e, uint32_t r,
                         uint32_t extra_spans, uint32_t extra_errors)
{
    const ta_span *s = e->spans;
    size_t spans = extra_spans, errors = extra_errors;
    uint32_t sp = 0;
    w->stack[sp++] = r;
    while (sp) {
        uint32_t i = w->stack[--sp];
        spans++;
        errors += s[i].error;
        for (uint32_t k = w->first[i]; k < w->first[i + 1]; k++) w->stack[sp++] = w->kids[k];
    }
    uint64_t dur = s[r].end - s[r].start;
    int slow = a->slowest && (a->nslow < a->slowest || dur > a->slow[a->nslow - 1]->dur_ns);
    int err = a->error_traces && errors;
    if (!slow && !err) return;
    ta_kept *k = critical_path(w, s, r);
    if (!k) {
        a->c_nomem++;
        return;
    }
    k->refs = 1;
    memcpy(k->id, e->id, 16);
    k->root_op = s[r].op;
    k->dur_ns = dur;
    k->spans = spans;
    k->errors = errors;
    if (slow) keep_slowest(a, k);
    if (err) keep_error(a, k);
    kept_unref(k);
}

enum {
    TA_ROOTED,
    TA_FORCED,
    TA_SETTLED
};

/* Processes entry e: self time of every collected span, then one trace per
 * local root (or, for a trace forced out without one, rooted at the earliest
 * span whose parent was not collected). Spans outside those traces count as
 * detached: their operations' statistics include them, no kept trace does. */
static void process(pm_trace_analytics *a, ta_trace *e, int why)
{
    uint32_t n = e->n;
    const ta_span *s = e->spans;
    ta_work w;
    if (n == 0 || work_alloc(&w, n)) {
        for (uint32_t i = 0; i < n; i++) op_self(a, s[i].op, s[i].end - s[i].start);
        if (n) a->c_nomem++;
        a->c_detached += n + e->dropped;
        return;
    }
    link_spans(&w, s, n);
    for (uint32_t i = 0; i < n; i++) op_self(a, s[i].op, self_ns(&w, s, i));

    uint32_t in_traces = 0, extra = e->dropped, extra_err = e->dropped_errors;
    memset(w.mark, 0, n);
    if (why == TA_ROOTED) {
        for (uint32_t i = 0; i < n; i++) {
            if (!s[i].local_root) continue;
            in_traces += mark_subtree(&w, i);
            finish_trace(a, &w, e, i, extra, extra_err);
            extra = extra_err = 0;
            a->c_completed++;
        }
    } else if (!e->late) {
        uint32_t r = TA_NONE;
        for (uint32_t i = 0; i < n; i++)
            if (w.par[i] == TA_NONE && (r == TA_NONE || s[i].start < s[r].start ||
                                        (s[i].start == s[r].start && s[i].end > s[r].end)))
                r = i;
        in_traces = mark_subtree(&w, r);
        finish_trace(a, &w, e, r, extra, extra_err);
        extra = 0;
        if (why == TA_FORCED)
            a->c_forced++;
        else
            a->c_settled++;
    }
    a->c_detached += (n - in_traces) + extra;
    free(w.mem);
}

static void trace_close(pm_trace_analytics *a, uint32_t ti, int why)
{
    ta_trace *e = &a->tr[ti];
    process(a, e, why);
    recent_add(a, e->id, e->hash);
    list_unlink(a, e->rooted ? &a->pending : &a->open, ti);
    ix_remove(&a->trix, e->hash, ti);
    free(e->spans);
    e->spans = NULL;
    e->next = a->free_head;
    a->free_head = ti;
    a->nlive--;
}

static void complete_pending(pm_trace_analytics *a)
{
    while (a->pending.head != TA_NONE) trace_close(a, a->pending.head, TA_ROOTED);
}

/* Opens an assembly entry for trace id (making room if the table is full:
 * the oldest pending trace completes, else the oldest open one is forced).
 * Returns its index or TA_NONE on allocation failure. */
static uint32_t trace_open(pm_trace_analytics *a, const uint8_t id[16], uint32_t h)
{
    if (a->nlive == a->max_traces) {
        if (a->pending.head != TA_NONE)
            trace_close(a, a->pending.head, TA_ROOTED);
        else
            trace_close(a, a->open.head, TA_FORCED);
    }
    if (a->free_head == TA_NONE) {
        uint32_t cap = a->captr ? a->captr * 2 : 16;
        if (cap > a->max_traces) cap = a->max_traces;
        ta_trace *n = realloc(a->tr, cap * sizeof *n);
        if (!n) return TA_NONE;
        a->tr = n;
        for (uint32_t i = cap; i-- > a->captr;) {
            a->tr[i].next = a->free_head;
            a->free_head = i;
        }
        a->captr = cap;
    }
    if (ix_reserve1(&a->trix)) return TA_NONE;
    uint32_t ti = a->free_head;
    ta_trace *e = &a->tr[ti];
    a->free_head = e->next;
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, 16);
    e->hash = h;
    e->late = (uint8_t)recent_has(a, id, h);
    ix_insert(&a->trix, h, ti);
    list_push(a, &a->open, ti);
    a->nlive++;
    return ti;
}

/* Appends span x to e unless e is at its bound (the last place is kept for
 * the local root). Returns 0, or -1 if not assembled. */
static int trace_append(pm_trace_analytics *a, ta_trace *e, const ta_span *x)
{
    uint32_t limit = x->local_root ? a->max_spans : a->max_spans - 1;
    if (e->n >= limit) {
        a->c_unassembled++;
        return -1;
    }
    if (e->n == e->cap) {
        uint32_t cap = e->cap ? e->cap * 2 : 8;
        if (cap > a->max_spans) cap = a->max_spans;
        ta_span *n = realloc(e->spans, cap * sizeof *n);
        if (!n) {
            a->c_nomem++;
            return -1;
        }
        e->spans = n;
        e->cap = cap;
    }
    e->spans[e->n++] = *x;
    return 0;
}

/* ------------------------------------------------------------ internal API */

pm_status_t pm__analytics_new(size_t max_ops, size_t slowest, size_t error_traces,
                              size_t max_traces, size_t max_spans_per_trace,
                              pm_trace_analytics **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (max_ops < 1 || max_ops > 65536 || slowest > 1024 || error_traces > 1024 || max_traces < 1 ||
        max_traces > 65536 || max_spans_per_trace < 1 || max_spans_per_trace > 65536)
        return PM_ERANGE;
    pm_trace_analytics *a = calloc(1, sizeof *a);
    if (!a) return PM_ENOMEM;
    a->max_ops = (uint32_t)max_ops;
    a->slowest = (uint32_t)slowest;
    a->error_traces = (uint32_t)error_traces;
    a->max_traces = (uint32_t)max_traces;
    a->max_spans = (uint32_t)max_spans_per_trace;
    a->free_head = TA_NONE;
    a->open = a->pending = (ta_list){TA_NONE, TA_NONE};
    a->other = op_new(TA_OTHER_NAME, strlen(TA_OTHER_NAME));
    if (slowest) a->slow = calloc(slowest, sizeof *a->slow);
    if (error_traces) a->err = calloc(error_traces, sizeof *a->err);
    if (!a->other || (slowest && !a->slow) || (error_traces && !a->err) ||
        pthread_mutex_init(&a->lock, NULL) != 0) {
        op_free(a->other);
        free(a->slow);
        free(a->err);
        free(a);
        return PM_ENOMEM;
    }
    *out = a;
    return PM_OK;
}

void pm__analytics_free(pm_trace_analytics *a)
{
    if (!a) return;
    for (uint32_t i = 0; i < a->nops; i++) op_free(a->ops[i]);
    free(a->ops);
    free(a->opix.s);
    op_free(a->other);
    for (uint32_t l = a->open.head; l != TA_NONE; l = a->tr[l].next) free(a->tr[l].spans);
    for (uint32_t l = a->pending.head; l != TA_NONE; l = a->tr[l].next) free(a->tr[l].spans);
    free(a->tr);
    free(a->trix.s);
    free(a->recent);
    free(a->recix.s);
    for (uint32_t i = 0; i < a->nslow; i++) kept_unref(a->slow[i]);
    for (uint32_t i = 0; i < a->nerr; i++) kept_unref(a->err[i]);
    free(a->slow);
    free(a->err);
    pthread_mutex_destroy(&a->lock);
    free(a);
}

void pm__analytics_add(pm_trace_analytics *a, const pm_span_rec *rec)
{
    if (!a || !rec) return;
    ta_span x;
    memcpy(&x.id, rec->base.ctx.span_id, 8);
    memcpy(&x.parent, rec->base.parent_id, 8);
    x.start = rec->start_mono;
    x.end = rec->end_mono > rec->start_mono ? rec->end_mono : rec->start_mono;
    x.error = rec->status == PM_SPAN_STATUS_ERROR;
    x.local_root = x.parent == 0 || rec->base.parent_remote;
    uint32_t h = hash_id(rec->base.ctx.trace_id);

    pthread_mutex_lock(&a->lock);
    x.op = op_get(a, rec->name);
    ta_op *o = op_at(a, x.op);
    o->spans++;
    o->errors += x.error;
    if (pm_hdata_record(o->dur, (double)(x.end - x.start) / 1e9) != PM_OK) a->c_nomem++;

    uint32_t ti = trace_find(a, rec->base.ctx.trace_id, h);
    if (ti == TA_NONE && (ti = trace_open(a, rec->base.ctx.trace_id, h)) == TA_NONE) {
        a->c_nomem++;
        a->c_detached++;
        op_self(a, x.op, x.end - x.start);
    } else if (trace_append(a, &a->tr[ti], &x) != 0) {
        /* Not assembled: its children (if any) cannot be subtracted. */
        a->tr[ti].dropped++;
        a->tr[ti].dropped_errors += x.error;
        op_self(a, x.op, x.end - x.start);
    } else if (x.local_root && !a->tr[ti].rooted) {
        list_unlink(a, &a->open, ti);
        list_push(a, &a->pending, ti);
        a->tr[ti].rooted = 1;
    }
    pthread_mutex_unlock(&a->lock);
}

void pm__analytics_settle(pm_trace_analytics *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->lock);
    complete_pending(a);
    while (a->open.head != TA_NONE) trace_close(a, a->open.head, TA_SETTLED);
    pthread_mutex_unlock(&a->lock);
}

uint64_t pm__analytics_counter(pm_trace_analytics *a, const char *name)
{
    if (!a || !name) return UINT64_MAX;
    static const struct {
        const char *name;
        size_t off;
    } map[] = {
        {"completed", offsetof(pm_trace_analytics, c_completed)},
        {"forced", offsetof(pm_trace_analytics, c_forced)},
        {"settled", offsetof(pm_trace_analytics, c_settled)},
        {"detached", offsetof(pm_trace_analytics, c_detached)},
        {"unassembled", offsetof(pm_trace_analytics, c_unassembled)},
        {"nomem", offsetof(pm_trace_analytics, c_nomem)},
    };
    uint64_t v = UINT64_MAX;
    pthread_mutex_lock(&a->lock);
    if (strcmp(name, "other") == 0) v = a->other->spans;
    if (strcmp(name, "assembling") == 0) v = a->nlive;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(name, map[i].name) == 0) memcpy(&v, (const char *)a + map[i].off, sizeof v);
    pthread_mutex_unlock(&a->lock);
    return v;
}

/* ------------------------------------------------------------ operations snapshot */

typedef struct ta_op_snap {
    char *name;
    uint64_t spans, errors;
    double self_total;
    pm_hdata_t *dur, *self;
    int other;
} ta_op_snap;

struct pm_trace_ops {
    size_t n;
    ta_op_snap *v;
};

/* Largest total self time first (the bottleneck ranking), then by name;
 * "(other)" last. */
static int cmp_op_snap(const void *x, const void *y)
{
    const ta_op_snap *p = x, *q = y;
    if (p->other != q->other) return p->other - q->other;
    if (p->self_total != q->self_total) return p->self_total > q->self_total ? -1 : 1;
    return strcmp(p->name, q->name);
}

void pm_trace_ops_free(pm_trace_ops_t *o)
{
    if (!o) return;
    for (size_t i = 0; i < o->n; i++) {
        free(o->v[i].name);
        pm_hdata_free(o->v[i].dur);
        pm_hdata_free(o->v[i].self);
    }
    free(o->v);
    free(o);
}

pm_status_t pm__analytics_ops(pm_trace_analytics *a, pm_trace_ops_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!a) return PM_EINVAL;
    pm_status_t st = PM_ENOMEM;
    pthread_mutex_lock(&a->lock);
    complete_pending(a);
    size_t n = a->nops + (a->other->spans ? 1 : 0);
    pm_trace_ops_t *o = calloc(1, sizeof *o);
    if (!o || !(o->v = calloc(n ? n : 1, sizeof *o->v))) goto done;
    for (size_t i = 0; i < n; i++) {
        const ta_op *src = i < a->nops ? a->ops[i] : a->other;
        ta_op_snap *d = &o->v[o->n++];
        d->spans = src->spans;
        d->errors = src->errors;
        d->self_total = src->self_total;
        d->other = src == a->other;
        size_t len = strlen(src->name) + 1;
        if (!(d->name = malloc(len)) || pm_hdata_clone(src->dur, &d->dur) != PM_OK ||
            pm_hdata_clone(src->self, &d->self) != PM_OK)
            goto done;
        memcpy(d->name, src->name, len);
    }
    qsort(o->v, o->n, sizeof *o->v, cmp_op_snap);
    *out = o;
    o = NULL;
    st = PM_OK;
done:
    pthread_mutex_unlock(&a->lock);
    pm_trace_ops_free(o);
    return st;
}

pm_status_t pm_tracer_ops_snapshot(pm_tracer_t *t, pm_trace_ops_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!t) return PM_EINVAL;
    return pm__analytics_ops(pm__tracer_analytics(t), out);
}

size_t pm_trace_ops_count(const pm_trace_ops_t *o) { return o ? o->n : 0; }

static const ta_op_snap *op_snap(const pm_trace_ops_t *o, size_t i)
{
    return o && i < o->n ? &o->v[i] : NULL;
}

const char *pm_trace_ops_name(const pm_trace_ops_t *o, size_t i)
{
    const ta_op_snap *p = op_snap(o, i);
    return p ? p->name : NULL;
}

uint64_t pm_trace_ops_spans(const pm_trace_ops_t *o, size_t i)
{
    const ta_op_snap *p = op_snap(o, i);
    return p ? p->spans : 0;
}

uint64_t pm_trace_ops_errors(const pm_trace_ops_t *o, size_t i)
{
    const ta_op_snap *p = op_snap(o, i);
    return p ? p->errors : 0;
}

pm_status_t pm_trace_ops_duration(const pm_trace_ops_t *o, size_t i, double q, double *out)
{
    const ta_op_snap *p = op_snap(o, i);
    if (out) *out = NAN;
    if (!p || !out) return PM_EINVAL;
    return pm_hdata_quantile(p->dur, q, out);
}

pm_status_t pm_trace_ops_self_time(const pm_trace_ops_t *o, size_t i, double q, double *out)
{
    const ta_op_snap *p = op_snap(o, i);
    if (out) *out = NAN;
    if (!p || !out) return PM_EINVAL;
    return pm_hdata_quantile(p->self, q, out);
}

double pm_trace_ops_self_total(const pm_trace_ops_t *o, size_t i)
{
    const ta_op_snap *p = op_snap(o, i);
    return p ? p->self_total : NAN;
}

/* ------------------------------------------------------------ trace lists */

typedef struct ta_item {
    uint8_t id[16];
    const char *root;
    size_t spans, errors, npath;
    double duration;
    const char **names;
    double *seconds;
} ta_item;

/* One allocation: this header, the items, then every item's path arrays,
 * then the strings. */
struct pm_trace_list {
    size_t n;
    ta_item *v;
};

void pm_trace_list_free(pm_trace_list_t *l) { free(l); }

/* Appends a copy of s at *str and returns it. */
static const char *put_str(char **str, const char *s)
{
    size_t len = strlen(s) + 1;
    memcpy(*str, s, len);
    *str += len;
    return *str - len;
}

pm_status_t pm__analytics_traces(pm_trace_analytics *a, pm_trace_list_kind_t kind,
                                 pm_trace_list_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!a || (kind != PM_TRACES_SLOWEST && kind != PM_TRACES_ERRORS)) return PM_EINVAL;
    pthread_mutex_lock(&a->lock);
    complete_pending(a);
    uint32_t n = kind == PM_TRACES_SLOWEST ? a->nslow : a->nerr;
    const ta_kept *ks[1024];
    for (uint32_t i = 0; i < n; i++)
        ks[i] = kind == PM_TRACES_SLOWEST
                    ? a->slow[i]
                    : a->err[(a->err_head + a->nerr - 1 - i) % a->error_traces]; /* newest first */
    size_t steps = 0, chars = 0;
    for (uint32_t i = 0; i < n; i++) {
        chars += strlen(op_name(a, ks[i]->root_op)) + 1;
        steps += ks[i]->npath;
        for (uint32_t j = 0; j < ks[i]->npath; j++)
            chars += strlen(op_name(a, ks[i]->path[j].op)) + 1;
    }
    size_t head = TA_ALIGN(sizeof(pm_trace_list_t)), items = TA_ALIGN(n * sizeof(ta_item));
    pm_trace_list_t *l =
        malloc(head + items + steps * (sizeof(double) + sizeof(const char *)) + chars);
    if (!l) {
        pthread_mutex_unlock(&a->lock);
        return PM_ENOMEM;
    }
    l->n = n;
    l->v = (ta_item *)((char *)l + head);
    double *secs = (void *)((char *)l->v + items);
    const char **names = (void *)(secs + steps);
    char *str = (void *)(names + steps);
    for (uint32_t i = 0; i < n; i++) {
        const ta_kept *k = ks[i];
        ta_item *it = &l->v[i];
        memcpy(it->id, k->id, 16);
        it->root = put_str(&str, op_name(a, k->root_op));
        it->spans = k->spans;
        it->errors = k->errors;
        it->duration = (double)k->dur_ns / 1e9;
        it->npath = k->npath;
        it->seconds = secs;
        it->names = names;
        for (uint32_t j = 0; j < k->npath; j++) {
            *secs++ = (double)k->path[j].ns / 1e9;
            *names++ = put_str(&str, op_name(a, k->path[j].op));
        }
    }
    pthread_mutex_unlock(&a->lock);
    *out = l;
    return PM_OK;
}

pm_status_t pm_tracer_traces(pm_tracer_t *t, pm_trace_list_kind_t kind, pm_trace_list_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!t) return PM_EINVAL;
    return pm__analytics_traces(pm__tracer_analytics(t), kind, out);
}

size_t pm_trace_list_count(const pm_trace_list_t *l) { return l ? l->n : 0; }

static const ta_item *item(const pm_trace_list_t *l, size_t i)
{
    return l && i < l->n ? &l->v[i] : NULL;
}

const uint8_t *pm_trace_list_trace_id(const pm_trace_list_t *l, size_t i)
{
    const ta_item *it = item(l, i);
    return it ? it->id : NULL;
}

const char *pm_trace_list_root(const pm_trace_list_t *l, size_t i)
{
    const ta_item *it = item(l, i);
    return it ? it->root : NULL;
}

size_t pm_trace_list_spans(const pm_trace_list_t *l, size_t i)
{
    const ta_item *it = item(l, i);
    return it ? it->spans : 0;
}

double pm_trace_list_duration(const pm_trace_list_t *l, size_t i)
{
    const ta_item *it = item(l, i);
    return it ? it->duration : NAN;
}

size_t pm_trace_list_errors(const pm_trace_list_t *l, size_t i)
{
    const ta_item *it = item(l, i);
    return it ? it->errors : 0;
}

size_t pm_trace_list_path_length(const pm_trace_list_t *l, size_t i)
{
    const ta_item *it = item(l, i);
    return it ? it->npath : 0;
}

const char *pm_trace_list_path_name(const pm_trace_list_t *l, size_t i, size_t step)
{
    const ta_item *it = item(l, i);
    return it && step < it->npath ? it->names[step] : NULL;
}

double pm_trace_list_path_seconds(const pm_trace_list_t *l, size_t i, size_t step)
{
    const ta_item *it = item(l, i);
    return it && step < it->npath ? it->seconds[step] : NAN;
}
