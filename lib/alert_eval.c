/* Evaluation of an expression tree against one snapshot (and the window
 * store) to an instant vector. Everything an evaluation allocates comes from
 * an arena that the next pm__aeval_begin rewinds, so a steady-state tick
 * allocates nothing once the arena has grown to its high-water mark. */
#include "internal/alert_internal.h"
#include "internal/snapshot_internal.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------ arena */
typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} chunk;

/* An index of one family's series by the value of one label, built the
 * first time a selector with an `=` matcher on that label reads the family
 * in a tick: selecting 1 series of 10,000 then costs a probe, not a scan. */
typedef struct eq_index {
    size_t mask;
    int32_t *head; /* by value hash: first series, -1 none */
    int32_t *next; /* per series: the next with the same slot, -1 none */
} eq_index;

/* Per family and tick, filled lazily: its label names sorted (shared by the
 * elements whose values are all non-empty) and the equality indexes. */
typedef struct fam_info {
    const pm_snap_family_t *f;
    uint32_t *order;    /* order[k]: index of the k-th label by name */
    const char **names; /* the names in that order */
    eq_index **eq;      /* per label, or NULL */
} fam_info;

/* Regex results by (regex source, op, value), kept across ticks: label
 * values repeat from tick to tick, and regexec costs far more than a probe.
 * Keyed by text, not by matcher address, so a rule freed and another
 * allocated at the same address cannot inherit answers. Cleared when half
 * full. */
typedef struct memo_entry {
    uint64_t h;
    const char *re, *value; /* in the memo's pool */
    bool result;
} memo_entry;

#define MEMO_CAP 16384u

struct pm__aeval {
    pm_alloc_t a;
    pm__wstore *ws;
    const pm_snapshot_t *snap;
    int64_t now;
    chunk *head, *cur;
    fam_info *fi; /* per snapshot family, lazily filled */
    size_t nfi, capfi;
    uint32_t *scratch; /* matching series of one selection */
    size_t capscratch;
    memo_entry *memo; /* MEMO_CAP slots */
    size_t nmemo;
    chunk *pool; /* strings of the memo */
};

#define CHUNK_MIN (64u * 1024u)

void *pm__aeval_alloc(pm__aeval *c, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    for (;;) {
        if (c->cur && c->cur->cap - c->cur->used >= n) {
            void *p = c->cur->data + c->cur->used;
            c->cur->used += n;
            return p;
        }
        if (c->cur && c->cur->next) { /* reuse a chunk kept from an earlier tick */
            c->cur = c->cur->next;
            c->cur->used = 0;
            continue;
        }
        size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
        chunk *k = pm__alloc(&c->a, sizeof *k + cap);
        if (!k) return NULL;
        k->next = NULL;
        k->used = 0;
        k->cap = cap;
        if (c->cur) {
            k->next = c->cur->next;
            c->cur->next = k;
        } else {
            k->next = c->head;
            c->head = k;
        }
        c->cur = k;
    }
}

pm_status_t pm__aeval_new(const pm_alloc_t *a, pm__wstore *ws, pm__aeval **out)
{
    if (!a || !out) return PM_EINVAL;
    pm__aeval *c = pm__calloc(a, sizeof *c);
    if (!c) return PM_ENOMEM;
    c->a = *a;
    c->ws = ws;
    *out = c;
    return PM_OK;
}

void pm__aeval_free(pm__aeval *c)
{
    if (!c) return;
    for (chunk *k = c->head, *n; k; k = n) {
        n = k->next;
        pm__free(&c->a, k);
    }
    for (chunk *k = c->pool, *n; k; k = n) {
        n = k->next;
        pm__free(&c->a, k);
    }
    pm__free(&c->a, c->fi);
    pm__free(&c->a, c->scratch);
    pm__free(&c->a, c->memo);
    pm__free(&c->a, c);
}

void pm__aeval_begin(pm__aeval *c, const pm_snapshot_t *s, int64_t now)
{
    c->snap = s;
    c->now = now;
    c->cur = c->head;
    if (c->cur) c->cur->used = 0;
    size_t n = s ? s->nfam : 0;
    if (n > c->capfi) {
        fam_info *g = pm__alloc(&c->a, n * sizeof *g);
        if (g) {
            pm__free(&c->a, c->fi);
            c->fi = g;
            c->capfi = n;
        }
    }
    c->nfi = n <= c->capfi ? n : 0;
    if (c->nfi) memset(c->fi, 0, c->nfi * sizeof *c->fi);
}

/* ------------------------------------------------------------ label sets */
static inline uint64_t fnv(uint64_t h, const char *s)
{
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    h ^= 0xff;
    h *= 1099511628211ULL;
    return h;
}

uint64_t pm__alabels_hash(const char *const *lname, const char *const *lvalue, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h = fnv(h, lname[i]);
        h = fnv(h, lvalue[i]);
    }
    return h;
}

bool pm__alabels_equal(const pm__aelem *a, const pm__aelem *b)
{
    if (a->hash != b->hash || a->nlabels != b->nlabels) return false;
    for (uint32_t i = 0; i < a->nlabels; i++)
        if (strcmp(a->lname[i], b->lname[i]) || strcmp(a->lvalue[i], b->lvalue[i])) return false;
    return true;
}

/* ------------------------------------------------------------ selectors */
typedef enum { PART_VALUE, PART_COUNT, PART_SUM } part_t;

static bool has_suffix(const char *s, const char *suf, size_t *base)
{
    size_t n = strlen(s), k = strlen(suf);
    if (n <= k || strcmp(s + n - k, suf)) return false;
    *base = n - k;
    return true;
}

static size_t find_family(const pm_snapshot_t *s, const char *name, size_t len)
{
    size_t lo = 0, hi = s->nfam;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *k = s->fams[mid]->name;
        int c = strncmp(k, name, len);
        if (!c && k[len]) c = 1;
        if (!c) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return SIZE_MAX;
}

/* Resolves a selector's metric name: the family itself, a counter written
 * as name_total, or a histogram's name_count / name_sum. */
static size_t resolve_family(const pm_snapshot_t *s, const char *metric, part_t *part)
{
    *part = PART_VALUE;
    size_t i = find_family(s, metric, strlen(metric)), base;
    if (i != SIZE_MAX) return i;
    if (has_suffix(metric, "_total", &base)) {
        i = find_family(s, metric, base);
        if (i != SIZE_MAX && s->fams[i]->type == PM_TYPE_COUNTER) return i;
    }
    if (has_suffix(metric, "_count", &base)) {
        i = find_family(s, metric, base);
        if (i != SIZE_MAX && s->fams[i]->type == PM_TYPE_HISTOGRAM) {
            *part = PART_COUNT;
            return i;
        }
    }
    if (has_suffix(metric, "_sum", &base)) {
        i = find_family(s, metric, base);
        if (i != SIZE_MAX && s->fams[i]->type == PM_TYPE_HISTOGRAM) {
            *part = PART_SUM;
            return i;
        }
    }
    return SIZE_MAX;
}

static const uint32_t *label_order(pm__aeval *c, size_t fi)
{
    fam_info *x = &c->fi[fi];
    if (x->order) return x->order;
    const pm_snap_family_t *f = c->snap->fams[fi];
    uint32_t *o = pm__aeval_alloc(c, (f->nlabels + 1) * sizeof *o);
    const char **names = pm__aeval_alloc(c, (f->nlabels + 1) * sizeof *names);
    if (!o || !names) return NULL;
    for (uint32_t i = 0; i < f->nlabels; i++) {
        uint32_t k = i;
        while (k > 0 && strcmp(f->labels[o[k - 1]], f->labels[i]) > 0) {
            o[k] = o[k - 1];
            k--;
        }
        o[k] = i;
    }
    for (uint32_t i = 0; i < f->nlabels; i++) names[i] = f->labels[o[i]];
    x->f = f;
    x->order = o;
    x->names = names;
    return o;
}

/* ------------------------------------------------------------ regex memo */
static char *pool_strdup(pm__aeval *c, const char *str)
{
    size_t n = strlen(str) + 1;
    if (!c->pool || c->pool->cap - c->pool->used < n) {
        size_t cap = n > CHUNK_MIN ? n : CHUNK_MIN;
        chunk *k = pm__alloc(&c->a, sizeof *k + cap);
        if (!k) return NULL;
        k->next = c->pool;
        k->used = 0;
        k->cap = cap;
        c->pool = k;
    }
    char *d = (char *)c->pool->data + c->pool->used;
    memcpy(d, str, n);
    c->pool->used += n;
    return d;
}

static void memo_clear(pm__aeval *c)
{
    for (chunk *k = c->pool, *n; k; k = n) {
        n = k->next;
        pm__free(&c->a, k);
    }
    c->pool = NULL;
    if (c->memo) memset(c->memo, 0, MEMO_CAP * sizeof *c->memo);
    c->nmemo = 0;
}

static bool regex_match(pm__aeval *c, const pm__amatcher *m, const char *value)
{
    if (!value) value = "";
    uint64_t h = 14695981039346656037ULL;
    h = fnv(h, m->value);
    h = fnv(h, value);
    h ^= (uint64_t)m->op;
    if (!c->memo) {
        c->memo = pm__calloc(&c->a, MEMO_CAP * sizeof *c->memo);
        if (!c->memo) return pm__amatcher_match(m, value);
    }
    size_t mask = MEMO_CAP - 1, i = h & mask;
    for (;; i = (i + 1) & mask) {
        memo_entry *x = &c->memo[i];
        if (!x->re) break;
        if (x->h == h && !strcmp(x->value, value) && !strcmp(x->re, m->value)) return x->result;
    }
    bool r = pm__amatcher_match(m, value);
    if (c->nmemo >= MEMO_CAP / 2) {
        memo_clear(c);
        for (i = h & mask; c->memo[i].re; i = (i + 1) & mask) {}
    }
    const char *rs = pool_strdup(c, m->value), *vs = rs ? pool_strdup(c, value) : NULL;
    if (vs) {
        c->memo[i] = (memo_entry){h, rs, vs, r};
        c->nmemo++;
    }
    return r;
}

/* ------------------------------------------------------------ selection */
#define LI_NAME (-2)   /* the __name__ pseudo-label */
#define LI_ABSENT (-1) /* a label the family does not have */

/* The value of label li (an index, LI_ABSENT, or INT32_MAX for
 * pm_overflow) of series s. The overflow series has only pm_overflow. */
static const char *value_at(const pm_snap_series_t *s, int li)
{
    if (li == INT32_MAX) return s->overflow ? "true" : NULL;
    if (s->overflow) return NULL;
    return li >= 0 ? s->values[li] : NULL;
}

static bool matcher_holds(pm__aeval *c, const pm__amatcher *m, const char *v)
{
    if (m->op == PM__MATCH_RE || m->op == PM__MATCH_NRE) return regex_match(c, m, v);
    return pm__amatcher_match(m, v);
}

static const eq_index *eq_index_get(pm__aeval *c, size_t fi, int li)
{
    fam_info *x = &c->fi[fi];
    const pm_snap_family_t *f = c->snap->fams[fi];
    if (!x->eq) {
        x->eq = pm__aeval_alloc(c, (f->nlabels + 1) * sizeof *x->eq);
        if (!x->eq) return NULL;
        memset(x->eq, 0, (f->nlabels + 1) * sizeof *x->eq);
    }
    if (x->eq[li]) return x->eq[li];
    eq_index *q = pm__aeval_alloc(c, sizeof *q);
    size_t cap = pm__pow2_at_least(f->nseries * 2 + 2);
    if (!q) return NULL;
    q->mask = cap - 1;
    q->head = pm__aeval_alloc(c, cap * sizeof *q->head);
    q->next = pm__aeval_alloc(c, (f->nseries + 1) * sizeof *q->next);
    if (!q->head || !q->next) return NULL;
    memset(q->head, 0xff, cap * sizeof *q->head);
    /* Inserted backwards so each chain lists series in snapshot order. */
    for (size_t i = f->nseries; i-- > 0;) {
        const pm_snap_series_t *s = &f->series[i];
        if (s->overflow) {
            q->next[i] = -1;
            continue;
        }
        size_t h = fnv(14695981039346656037ULL, s->values[li]) & q->mask;
        q->next[i] = q->head[h];
        q->head[h] = (int32_t)i;
    }
    x->eq[li] = q;
    return q;
}

/* The indices of the series of family fi that selector n matches, in
 * snapshot order, in *out (the arena) and *count. */
static pm_status_t select_series(pm__aeval *c, size_t fi, const pm__anode *n, uint32_t **out,
                                 size_t *count)
{
    const pm_snap_family_t *f = c->snap->fams[fi];
    size_t nm = n->u.sel.nm;
    int li[64];
    if (nm > 64) return PM_ERANGE;
    int eq_at = -1; /* a matcher that can use an equality index */
    for (size_t k = 0; k < nm; k++) {
        const pm__amatcher *m = &n->u.sel.m[k];
        li[k] = LI_ABSENT;
        if (!strcmp(m->name, "__name__")) {
            li[k] = LI_NAME;
            continue;
        }
        if (!strcmp(m->name, "pm_overflow")) li[k] = INT32_MAX;
        for (size_t j = 0; j < f->nlabels; j++)
            if (!strcmp(f->labels[j], m->name)) li[k] = (int)j;
        if (eq_at < 0 && m->op == PM__MATCH_EQ && m->value[0] && li[k] >= 0 &&
            li[k] != INT32_MAX)
            eq_at = (int)k;
    }
    if (f->nseries > c->capscratch) {
        uint32_t *g = pm__alloc(&c->a, f->nseries * sizeof *g);
        if (!g) return PM_ENOMEM;
        pm__free(&c->a, c->scratch);
        c->scratch = g;
        c->capscratch = f->nseries;
    }
    const eq_index *q = eq_at >= 0 ? eq_index_get(c, fi, li[eq_at]) : NULL;
    if (eq_at >= 0 && !q) return PM_ENOMEM;
    int32_t it = q ? q->head[fnv(14695981039346656037ULL, n->u.sel.m[eq_at].value) & q->mask]
                   : (f->nseries ? 0 : -1);
    size_t got = 0;
    for (; it >= 0; it = q ? q->next[it] : (it + 1 < (int32_t)f->nseries ? it + 1 : -1)) {
        const pm_snap_series_t *s = &f->series[it];
        bool ok = true;
        for (size_t k = 0; k < nm && ok; k++) {
            const pm__amatcher *m = &n->u.sel.m[k];
            const char *v = li[k] == LI_NAME ? n->u.sel.metric : value_at(s, li[k]);
            ok = matcher_holds(c, m, v);
        }
        if (ok) c->scratch[got++] = (uint32_t)it;
    }
    *count = got;
    *out = NULL;
    if (!got) return PM_OK;
    *out = pm__aeval_alloc(c, got * sizeof **out);
    if (!*out) return PM_ENOMEM;
    memcpy(*out, c->scratch, got * sizeof **out);
    return PM_OK;
}

/* Fills e's labels from a series: sorted by name, empty values dropped (an
 * empty label is an absent one, as in Prometheus). */
static pm_status_t series_labels(pm__aeval *c, size_t fi, const pm_snap_series_t *s, pm__aelem *e)
{
    const pm_snap_family_t *f = c->snap->fams[fi];
    if (s->overflow) {
        static const char *on = "pm_overflow", *tv = "true";
        e->lname = &on;
        e->lvalue = &tv;
        e->nlabels = 1;
        e->hash = pm__alabels_hash(e->lname, e->lvalue, 1);
        return PM_OK;
    }
    const uint32_t *o = label_order(c, fi);
    const char **vals = o ? pm__aeval_alloc(c, (f->nlabels + 1) * sizeof *vals) : NULL;
    if (!vals) return PM_ENOMEM;
    uint32_t k = 0;
    bool all = true;
    for (size_t i = 0; i < f->nlabels; i++) all = all && s->values[o[i]] && *s->values[o[i]];
    if (all) { /* the common case: share the family's sorted names */
        for (size_t i = 0; i < f->nlabels; i++) vals[i] = s->values[o[i]];
        e->lname = c->fi[fi].names;
        k = (uint32_t)f->nlabels;
    } else {
        const char **nm = pm__aeval_alloc(c, (f->nlabels + 1) * sizeof *nm);
        if (!nm) return PM_ENOMEM;
        for (size_t i = 0; i < f->nlabels; i++) {
            const char *v = s->values[o[i]];
            if (!v || !*v) continue;
            nm[k] = f->labels[o[i]];
            vals[k++] = v;
        }
        e->lname = nm;
    }
    e->lvalue = vals;
    e->nlabels = k;
    e->hash = pm__alabels_hash(e->lname, e->lvalue, k);
    return PM_OK;
}

static double instant_value(const pm_snap_family_t *f, const pm_snap_series_t *s, part_t part)
{
    if (f->type == PM_TYPE_HISTOGRAM) {
        if (!s->h) return NAN;
        return part == PART_SUM ? s->h->sum : (double)s->h->count;
    }
    return s->value;
}

static pm_status_t vec_alloc(pm__aeval *c, pm__avec *v, size_t n)
{
    memset(v, 0, sizeof *v);
    if (!n) return PM_OK;
    v->e = pm__aeval_alloc(c, n * sizeof *v->e);
    return v->e ? PM_OK : PM_ENOMEM;
}

static pm_status_t eval_selector(pm__aeval *c, const pm__anode *n, pm__avec *out)
{
    memset(out, 0, sizeof *out);
    part_t part;
    size_t fi = resolve_family(c->snap, n->u.sel.metric, &part);
    if (fi == SIZE_MAX) return PM_OK; /* absent: an empty vector */
    const pm_snap_family_t *f = c->snap->fams[fi];
    uint32_t *idx;
    size_t cnt;
    pm_status_t st = select_series(c, fi, n, &idx, &cnt);
    if (st == PM_OK) st = vec_alloc(c, out, cnt);
    for (size_t i = 0; i < cnt && st == PM_OK; i++) {
        const pm_snap_series_t *s = &f->series[idx[i]];
        pm__aelem *e = &out->e[out->n];
        if ((st = series_labels(c, fi, s, e)) != PM_OK) break;
        e->v = instant_value(f, s, part);
        out->n++;
    }
    return st;
}

/* A window function over every series a range selector matches. Series
 * whose window is short of samples, or refused by the store's bound, are
 * left out. */
static pm_status_t eval_range_fn(pm__aeval *c, const pm__anode *call, pm__avec *out)
{
    const pm__anode *r = call->u.call.arg;
    memset(out, 0, sizeof *out);
    if (!r || r->kind != PM__AN_RANGE) return PM_ETYPE;
    part_t part;
    size_t fi = resolve_family(c->snap, r->u.sel.metric, &part);
    if (fi == SIZE_MAX) return PM_OK;
    const pm_snap_family_t *f = c->snap->fams[fi];
    /* A histogram's _sum is windowed as a counter of its own, keyed by the
     * name h_sum, so rate(h_sum[5m]) / rate(h_count[5m]) works as in
     * Prometheus: the store sees a counter family "h_sum" whose series carry
     * the sums. */
    pm_snap_family_t sum_fam;
    if (part == PART_SUM) {
        sum_fam = *f;
        sum_fam.name = r->u.sel.metric;
        sum_fam.type = PM_TYPE_COUNTER;
    }
    uint32_t *idx;
    size_t cnt;
    pm_status_t st = select_series(c, fi, r, &idx, &cnt);
    if (st == PM_OK) st = vec_alloc(c, out, cnt);
    for (size_t i = 0; i < cnt && st == PM_OK; i++) {
        const pm_snap_series_t *s = &f->series[idx[i]];
        pm__wring *ring;
        if (part == PART_SUM) {
            pm_snap_series_t sum_series = *s;
            sum_series.fam = &sum_fam;
            sum_series.value = s->h ? s->h->sum : NAN;
            sum_series.h = NULL;
            st = pm__wstore_sample(c->ws, &sum_fam, &sum_series, r->u.sel.range_ns, &ring);
        } else {
            st = pm__wstore_sample(c->ws, f, s, r->u.sel.range_ns, &ring);
        }
        if (st == PM_ERANGE) { /* refused: counted by the store */
            st = PM_OK;
            continue;
        }
        if (st != PM_OK) break;
        double v;
        st = pm__wring_eval(ring, call->u.call.fn, call->u.call.param, &v);
        if (st == PM_ENOENT) {
            st = PM_OK;
            continue;
        }
        if (st != PM_OK) break;
        pm__aelem *e = &out->e[out->n];
        if ((st = series_labels(c, fi, s, e)) != PM_OK) break;
        e->v = v;
        out->n++;
    }
    return st;
}

/* ------------------------------------------------------------ arithmetic */
static double arith(pm__abinop op, double a, double b)
{
    switch (op) {
    case PM__OP_ADD: return a + b;
    case PM__OP_SUB: return a - b;
    case PM__OP_MUL: return a * b;
    case PM__OP_DIV: return a / b;
    case PM__OP_MOD: return fmod(a, b);
    case PM__OP_POW: return pow(a, b);
    default: return NAN;
    }
}

bool pm__acmp_holds(pm__abinop op, double a, double b)
{
    switch (op) {
    case PM__OP_EQ: return a == b;
    case PM__OP_NE: return a != b;
    case PM__OP_GT: return a > b;
    case PM__OP_LT: return a < b;
    case PM__OP_GE: return a >= b;
    case PM__OP_LE: return a <= b;
    default: return false;
    }
}

/* Restricts e's labels to those in (keep = true) or not in (keep = false)
 * the sorted list; the result shares e's strings. */
static pm_status_t project(pm__aeval *c, const pm__aelem *e, char *const *list, size_t nlist,
                           bool keep, pm__aelem *out)
{
    *out = *e;
    const char **nv = pm__aeval_alloc(c, 2 * (e->nlabels + 1) * sizeof *nv);
    if (!nv) return PM_ENOMEM;
    uint32_t k = 0;
    for (uint32_t i = 0; i < e->nlabels; i++) {
        bool found;
        pm__sorted_find(list, nlist, sizeof *list, e->lname[i], &found);
        if (found != keep) continue;
        nv[k] = e->lname[i];
        nv[e->nlabels + 1 + k] = e->lvalue[i];
        k++;
    }
    out->lname = nv;
    out->lvalue = nv + e->nlabels + 1;
    out->nlabels = k;
    out->hash = pm__alabels_hash(out->lname, out->lvalue, k);
    return PM_OK;
}

/* The label set two operands are matched on (the whole set for b NULL). */
static pm_status_t match_key(pm__aeval *c, const pm__anode *b, const pm__aelem *e, pm__aelem *key)
{
    if (!b || b->u.bin.matching == 0) {
        *key = *e;
        return PM_OK;
    }
    return project(c, e, b->u.bin.mlabels, b->u.bin.nmlabels, b->u.bin.matching == 1, key);
}

typedef pm__aindex index_t;

static pm_status_t index_build(pm__aeval *c, index_t *ix, const pm__avec *v, const pm__anode *b,
                               bool *dup)
{
    size_t cap = pm__pow2_at_least(v->n * 2 + 2);
    ix->mask = cap - 1;
    ix->slot = pm__aeval_alloc(c, cap * sizeof *ix->slot);
    ix->keys = pm__aeval_alloc(c, (v->n + 1) * sizeof *ix->keys);
    if (!ix->slot || !ix->keys) return PM_ENOMEM;
    memset(ix->slot, 0xff, cap * sizeof *ix->slot);
    *dup = false;
    for (size_t i = 0; i < v->n; i++) {
        pm_status_t st = match_key(c, b, &v->e[i], &ix->keys[i]);
        if (st != PM_OK) return st;
        size_t h = ix->keys[i].hash & ix->mask;
        for (;; h = (h + 1) & ix->mask) {
            if (ix->slot[h] < 0) {
                ix->slot[h] = (int64_t)i;
                break;
            }
            if (pm__alabels_equal(&ix->keys[ix->slot[h]], &ix->keys[i])) {
                *dup = true;
                break;
            }
        }
    }
    return PM_OK;
}

static int64_t index_find(const index_t *ix, const pm__aelem *key)
{
    for (size_t h = key->hash & ix->mask;; h = (h + 1) & ix->mask) {
        if (ix->slot[h] < 0) return -1;
        if (pm__alabels_equal(&ix->keys[ix->slot[h]], key)) return ix->slot[h];
    }
}

pm_status_t pm__aindex_build(pm__aeval *c, const pm__avec *v, pm__aindex *ix)
{
    bool dup;
    return index_build(c, ix, v, NULL, &dup);
}

int64_t pm__aindex_find(const pm__aindex *ix, const pm__aelem *key)
{
    return index_find(ix, key);
}

/* The label set of an arithmetic or comparison result: the left operand's,
 * reduced to the matching labels with `on`, without them with `ignoring`. */
static pm_status_t result_labels(pm__aeval *c, const pm__anode *b, const pm__aelem *l,
                                 pm__aelem *out)
{
    return match_key(c, b, l, out);
}

static pm_status_t eval_node(pm__aeval *c, const pm__anode *n, pm__avec *out, int depth);

static pm_status_t eval_set_op(pm__aeval *c, const pm__anode *n, const pm__avec *l,
                               const pm__avec *r, pm__avec *out)
{
    if (l->scalar || r->scalar) return PM_ETYPE;
    pm__abinop op = n->u.bin.op;
    index_t ir, il;
    bool dup;
    pm_status_t st = index_build(c, &ir, r, n, &dup);
    if (st != PM_OK) return st;
    if ((st = vec_alloc(c, out, l->n + (op == PM__OP_OR ? r->n : 0))) != PM_OK) return st;
    for (size_t i = 0; i < l->n; i++) {
        pm__aelem key;
        if ((st = match_key(c, n, &l->e[i], &key)) != PM_OK) return st;
        bool found = index_find(&ir, &key) >= 0;
        if (op == PM__OP_AND ? found : op == PM__OP_UNLESS ? !found : true)
            out->e[out->n++] = l->e[i];
    }
    if (op == PM__OP_OR) {
        if ((st = index_build(c, &il, l, n, &dup)) != PM_OK) return st;
        for (size_t i = 0; i < r->n; i++)
            if (index_find(&il, &ir.keys[i]) < 0) out->e[out->n++] = r->e[i];
    }
    return PM_OK;
}

static pm_status_t combine(pm__aeval *c, const pm__anode *n, pm__avec l, pm__avec r,
                           pm__avec *out);

static pm_status_t eval_bin(pm__aeval *c, const pm__anode *n, pm__avec *out, int depth)
{
    pm__avec l, r;
    pm_status_t st = eval_node(c, n->u.bin.l, &l, depth + 1);
    if (st == PM_OK) st = eval_node(c, n->u.bin.r, &r, depth + 1);
    if (st != PM_OK) return st;
    return combine(c, n, l, r, out);
}

static pm_status_t combine(pm__aeval *c, const pm__anode *n, pm__avec l, pm__avec r,
                           pm__avec *out)
{
    pm_status_t st;
    pm__abinop op = n->u.bin.op;
    if (PM__OP_IS_SET(op)) return eval_set_op(c, n, &l, &r, out);
    bool cmp = PM__OP_IS_CMP(op), filter = cmp && !n->u.bin.bool_mod;

    if (l.scalar && r.scalar) {
        memset(out, 0, sizeof *out);
        if (!filter) {
            out->scalar = true;
            out->s = cmp ? (pm__acmp_holds(op, l.s, r.s) ? 1.0 : 0.0) : arith(op, l.s, r.s);
            return PM_OK;
        }
        /* A filtering comparison of two numbers: one label-less element
         * when it holds, none otherwise (so `1 > 0` can be a rule). */
        if (!pm__acmp_holds(op, l.s, r.s)) return PM_OK;
        if ((st = vec_alloc(c, out, 1)) != PM_OK) return st;
        out->e[0] = pm__aelem_unlabeled(l.s);
        out->n = 1;
        return PM_OK;
    }
    if (l.scalar || r.scalar) {
        const pm__avec *v = l.scalar ? &r : &l;
        double k = l.scalar ? l.s : r.s;
        if ((st = vec_alloc(c, out, v->n)) != PM_OK) return st;
        for (size_t i = 0; i < v->n; i++) {
            double a = l.scalar ? k : v->e[i].v, b = l.scalar ? v->e[i].v : k;
            pm__aelem e = v->e[i];
            if (cmp) {
                bool ok = pm__acmp_holds(op, a, b);
                if (filter && !ok) continue;
                if (!filter) e.v = ok ? 1.0 : 0.0;
            } else {
                e.v = arith(op, a, b);
            }
            out->e[out->n++] = e;
        }
        return PM_OK;
    }
    /* Vector against vector, one to one. */
    index_t ir;
    bool dup;
    if ((st = index_build(c, &ir, &r, n, &dup)) != PM_OK) return st;
    if (dup) return PM_EEXIST; /* many-to-one matching is not supported */
    if ((st = vec_alloc(c, out, l.n)) != PM_OK) return st;
    index_t il;
    if ((st = index_build(c, &il, &l, n, &dup)) != PM_OK) return st;
    if (dup) return PM_EEXIST;
    for (size_t i = 0; i < l.n; i++) {
        int64_t j = index_find(&ir, &il.keys[i]);
        if (j < 0) continue;
        double a = l.e[i].v, b = r.e[j].v;
        pm__aelem e;
        if ((st = result_labels(c, n, &l.e[i], &e)) != PM_OK) return st;
        if (cmp) {
            bool ok = pm__acmp_holds(op, a, b);
            if (filter && !ok) continue;
            e.v = filter ? a : (ok ? 1.0 : 0.0);
        } else {
            e.v = arith(op, a, b);
        }
        out->e[out->n++] = e;
    }
    return PM_OK;
}

/* ------------------------------------------------------------ aggregation */
typedef struct group {
    pm__aelem key;
    double sum, min, max;
    size_t count;
} group_t;

static pm_status_t eval_agg(pm__aeval *c, const pm__anode *n, pm__avec *out, int depth)
{
    pm__avec in;
    pm_status_t st = eval_node(c, n->u.agg.arg, &in, depth + 1);
    if (st != PM_OK) return st;
    if (in.scalar) return PM_ETYPE;
    memset(out, 0, sizeof *out);
    if (!in.n) return PM_OK;
    size_t cap = pm__pow2_at_least(in.n * 2 + 2), mask = cap - 1, ng = 0;
    int64_t *slot = pm__aeval_alloc(c, cap * sizeof *slot);
    group_t *g = pm__aeval_alloc(c, in.n * sizeof *g);
    if (!slot || !g) return PM_ENOMEM;
    memset(slot, 0xff, cap * sizeof *slot);
    for (size_t i = 0; i < in.n; i++) {
        pm__aelem key;
        if (!n->u.agg.grouped || (n->u.agg.without && !n->u.agg.nlabels)) {
            if (!n->u.agg.grouped) {
                key = pm__aelem_unlabeled(0);
            } else {
                key = in.e[i];
            }
        } else if ((st = project(c, &in.e[i], n->u.agg.labels, n->u.agg.nlabels,
                                 !n->u.agg.without, &key)) != PM_OK) {
            return st;
        }
        size_t h = key.hash & mask;
        group_t *gr = NULL;
        for (;; h = (h + 1) & mask) {
            if (slot[h] < 0) {
                slot[h] = (int64_t)ng;
                gr = &g[ng++];
                gr->key = key;
                gr->sum = 0;
                gr->count = 0;
                gr->min = INFINITY;
                gr->max = -INFINITY;
                break;
            }
            if (pm__alabels_equal(&g[slot[h]].key, &key)) {
                gr = &g[slot[h]];
                break;
            }
        }
        double v = in.e[i].v;
        gr->sum += v;
        gr->count++;
        /* NaN is replaced by any number, as Prometheus' min and max do. */
        if (v < gr->min || isnan(gr->min)) gr->min = v;
        if (v > gr->max || isnan(gr->max)) gr->max = v;
    }
    if ((st = vec_alloc(c, out, ng)) != PM_OK) return st;
    for (size_t i = 0; i < ng; i++) {
        pm__aelem e = g[i].key;
        switch (n->u.agg.op) {
        case PM__AGG_SUM: e.v = g[i].sum; break;
        case PM__AGG_AVG: e.v = g[i].sum / (double)g[i].count; break;
        case PM__AGG_MIN: e.v = g[i].min; break;
        case PM__AGG_MAX: e.v = g[i].max; break;
        case PM__AGG_COUNT: e.v = (double)g[i].count; break;
        default: return PM_EINVAL;
        }
        out->e[out->n++] = e;
    }
    return PM_OK;
}

/* ------------------------------------------------------------ calls */
static pm_status_t eval_call(pm__aeval *c, const pm__anode *n, pm__avec *out, int depth)
{
    pm__afn fn = n->u.call.fn;
    if (fn != PM__FN_ABS && fn != PM__FN_ABSENT && fn != PM__FN_ZSCORE_EWMA)
        return eval_range_fn(c, n, out);
    pm__avec in;
    pm_status_t st = eval_node(c, n->u.call.arg, &in, depth + 1);
    if (st != PM_OK) return st;
    if (fn == PM__FN_ABS) {
        if (in.scalar) {
            *out = in;
            out->s = fabs(in.s);
            return PM_OK;
        }
        for (size_t i = 0; i < in.n; i++) in.e[i].v = fabs(in.e[i].v);
        *out = in;
        return PM_OK;
    }
    if (in.scalar) return PM_ETYPE;
    if (fn == PM__FN_ABSENT) {
        if ((st = vec_alloc(c, out, 1)) != PM_OK) return st;
        if (!in.n) {
            out->e[0] = pm__aelem_unlabeled(1.0);
            out->n = 1;
        }
        return PM_OK;
    }
    /* zscore_ewma */
    int64_t tau = (int64_t)llround(n->u.call.param * 1e9);
    if ((st = vec_alloc(c, out, in.n)) != PM_OK) return st;
    for (size_t i = 0; i < in.n; i++) {
        double z;
        st = pm__wstore_ewma(c->ws, n, in.e[i].hash, in.e[i].v, tau, &z);
        if (st == PM_ENOENT || st == PM_ERANGE) continue;
        if (st != PM_OK) return st;
        pm__aelem e = in.e[i];
        e.v = z;
        out->e[out->n++] = e;
    }
    return PM_OK;
}

#define MAX_DEPTH 512

static pm_status_t eval_node(pm__aeval *c, const pm__anode *n, pm__avec *out, int depth)
{
    if (!n || depth > MAX_DEPTH) return PM_EINVAL;
    switch (n->kind) {
    case PM__AN_NUM:
        memset(out, 0, sizeof *out);
        out->scalar = true;
        out->s = n->u.num;
        return PM_OK;
    case PM__AN_SEL: return eval_selector(c, n, out);
    case PM__AN_RANGE: return PM_ETYPE; /* only as a function's argument */
    case PM__AN_CALL: return eval_call(c, n, out, depth);
    case PM__AN_AGG: return eval_agg(c, n, out, depth);
    case PM__AN_BIN: return eval_bin(c, n, out, depth);
    case PM__AN_NEG: {
        pm_status_t st = eval_node(c, n->u.neg.arg, out, depth + 1);
        if (st != PM_OK) return st;
        if (out->scalar) out->s = -out->s;
        for (size_t i = 0; i < out->n; i++) out->e[i].v = -out->e[i].v;
        return PM_OK;
    }
    }
    return PM_EINVAL;
}

pm_status_t pm__aeval_run(pm__aeval *c, const pm__anode *n, pm__avec *out)
{
    if (!c || !n || !out || !c->snap) return PM_EINVAL;
    return eval_node(c, n, out, 0);
}

pm_status_t pm__aeval_rule(pm__aeval *c, const pm__anode *n, pm__avec *value, pm__avec *cond)
{
    if (!c || !n || !value || !cond || !c->snap) return PM_EINVAL;
    if (n->kind != PM__AN_BIN || !PM__OP_IS_CMP(n->u.bin.op) || n->u.bin.bool_mod) {
        pm_status_t st = eval_node(c, n, cond, 0);
        if (st == PM_OK) *value = *cond;
        return st;
    }
    pm__avec l, r;
    pm_status_t st = eval_node(c, n->u.bin.l, &l, 1);
    if (st == PM_OK) st = eval_node(c, n->u.bin.r, &r, 1);
    if (st != PM_OK) return st;
    /* The value side: the vector operand (the left one when both are). */
    *value = (l.scalar && !r.scalar) ? r : l;
    return combine(c, n, l, r, cond);
}
