/* The alert engine's window store (see "window store" in
 * internal/alert_internal.h).
 *
 * One open-addressing table (linear probing, backward-shift deletion, so no
 * tombstones pile up under churn) holds two kinds of entries: rings, keyed by
 * (family name, family type, overflow flag, label values, range), and EWMA
 * states, keyed by (call node, label-set hash). Both count toward
 * max_series.
 *
 * A ring is one allocation:
 *
 *   pm__wring | wbucket[B] | histograms: whist + wh_copy *[B] | value
 *   pointers[nlabels] | name and values, NUL-terminated
 *
 * Bucket k covers [k*width, (k+1)*width) ns on the Unix time line and lives
 * in slot k mod B. A slot remembers its k, so a bucket that slid out of the
 * window is recognised (and reset) only when its slot is reused: pushing a
 * sample touches one bucket, and evaluating walks the B slots of the window.
 *
 * Every bucket keeps what the window functions need in mergeable form:
 * first/last sample, count, min, max, Welford mean/M2 (merged with Chan's
 * formula), least-squares sums relative to the bucket's start (re-centred on
 * `now` when merged, so large Unix times never meet in one sum), and the
 * counter increase split into the steps inside the bucket and the one step
 * into it from the previous sample. Summing the latter only for the buckets
 * after the oldest one gives the increase over the samples of the window,
 * exactly the steps Prometheus' rate() sees.
 *
 * Histogram rings also keep, per bucket, a sparse copy of the cumulative
 * fine buckets at the bucket's first sample, and one copy at the last
 * sample: the window's observations are last minus the oldest bucket's
 * copy, i.e. those recorded between samples inside the window.
 *
 * Memory (x86-64), per windowed series of a range with B buckets and L
 * labels: 104 (ring header) + 128 B + 8 L + the name and values with their
 * NULs; histograms add 40 + 8 B, one copy of 40 + 12 n per non-empty bucket
 * (n: non-zero fine buckets at that bucket's first sample; a reused copy
 * keeps its larger capacity) and the last sample's copy, 40 + 12 cap with
 * cap a power of two >= max(n, 8). An EWMA state is 88 bytes. The table adds
 * 16 bytes per slot (load <= 3/4), the store 136 bytes plus, while any
 * histogram ring exists, a 12-byte-per-entry scratch as large as the
 * largest distribution. pm__wstore_bytes() counts all of it.
 *
 * The store is used by one engine under its lock: no locking here, and no
 * global state. Every allocation goes through the store's allocator and is
 * tallied in `bytes`; a failed sample leaves the ring as it was. */
#include "internal/alert_internal.h"

#include <math.h>

#define KIND_RING 1
#define KIND_EWMA 2
#define NO_BUCKET INT64_MIN
#define MAX_BUCKETS 4096
#define TABLE_MIN 16
#define NS 1e-9 /* seconds per ns */

/* ------------------------------------------------------------ types */
/* First fields of every table entry. */
typedef struct whead {
    uint64_t hash;
    uint8_t kind;
    uint8_t type;     /* rings: the family's pm_type_t */
    uint8_t overflow; /* rings: the family's overflow series */
    uint8_t pad_[5];
} whead;

/* One sub-window bucket: 128 bytes, all 8-byte fields (the counts share one
 * word), no padding holes. */
typedef struct wbucket {
    int64_t k;          /* bucket index: covers [k*width, (k+1)*width) */
    uint32_t n;         /* samples; 0: empty slot */
    uint16_t rs_within; /* counter resets between samples inside (saturating) */
    uint16_t rs_in;     /* 1: the step from the previous sample was a reset */
    int64_t t0, t1;     /* first and last sample time, ns */
    double v0, v1;      /* first and last value */
    double min, max;
    double mean, m2;     /* Welford */
    double sdt, sdt2;    /* sum dt, sum dt^2; dt = seconds since k*width */
    double sdtv, sv;     /* sum dt*v, sum v */
    double inc_within;   /* increase over the steps between samples inside */
    double inc_in;       /* the step from the previous sample to the first */
} wbucket;
_Static_assert(sizeof(wbucket) == 128, "wbucket is meant to be two cache lines, no holes");

/* A sparse copy of a cumulative distribution; `cap` counts then `cap`
 * indexes follow in the same allocation. */
typedef struct wh_copy {
    uint64_t count;
    double sum, min, max;
    uint32_t n, cap;
} wh_copy;

static uint64_t *hc_cnt(wh_copy *c) { return (uint64_t *)(void *)(c + 1); }
static uint32_t *hc_idx(wh_copy *c) { return (uint32_t *)(void *)(hc_cnt(c) + c->cap); }
static const uint64_t *hc_ccnt(const wh_copy *c) { return (const uint64_t *)(const void *)(c + 1); }
static const uint32_t *hc_cidx(const wh_copy *c)
{
    return (const uint32_t *)(const void *)(hc_ccnt(c) + c->cap);
}
static size_t hc_size(uint32_t cap) { return sizeof(wh_copy) + (size_t)cap * 12; }

/* Histogram part of a ring: the fine-bucket layout the copies index into. */
typedef struct whist {
    double lowest, highest;
    uint64_t lo_key;
    uint32_t nb, pad_;
    wh_copy *cur; /* at the ring's last sample */
    wh_copy *hc[]; /* per slot: at that bucket's first sample */
} whist;

struct pm__wring {
    whead h;
    pm__wstore *w;
    size_t size;     /* bytes of this allocation */
    int64_t range_ns, width_ns;
    int64_t seen;    /* `now` of the last pm__wstore_sample: the sweep */
    int64_t newest;  /* bucket index of the last sample, NO_BUCKET before any */
    uint64_t tick;   /* tick of the last sample */
    uint32_t nb;     /* B */
    uint32_t nlabels;
    const char *name;
    const char **values;
    whist *hist;     /* histograms only */
    wbucket b[];
};

typedef struct wewma {
    whead h;
    const void *node;
    uint64_t lhash;
    double mean, var, z;
    int64_t last; /* time of the last update, ns */
    uint64_t seen; /* samples taken */
    uint64_t tick;
    pm_status_t zst; /* this tick's answer, repeated to a second call */
} wewma;

typedef struct wslot {
    uint64_t hash;
    whead *p;
} wslot;

struct pm__wstore {
    pm_alloc_t a;
    int64_t interval_ns;
    unsigned max_buckets;
    size_t max_series;
    int64_t now;
    uint64_t tick;
    wslot *slots;
    size_t cap, used; /* used: rings + EWMA states */
    size_t nhist;     /* histogram rings */
    uint64_t refused;
    size_t bytes;
    /* where a window's distribution is built at evaluation; sized at every
     * histogram sample so evaluation never allocates */
    uint64_t *scr_cnt;
    uint32_t *scr_idx;
    uint32_t scr_cap;
};

/* ------------------------------------------------------------ helpers */
static void *w_alloc(pm__wstore *w, size_t n)
{
    void *p = pm__alloc(&w->a, n);
    if (p) w->bytes += n;
    return p;
}

static void w_free(pm__wstore *w, void *p, size_t n)
{
    if (!p) return;
    pm__free(&w->a, p);
    w->bytes -= n;
}

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if (a % b != 0 && (a < 0) != (b < 0)) q--;
    return q;
}

static uint32_t slot_of(int64_t k, uint32_t nb)
{
    int64_t m = k % (int64_t)nb;
    return (uint32_t)(m < 0 ? m + nb : m);
}

/* now - then > span, without overflow. */
static bool idle_longer(int64_t now, int64_t then, int64_t span)
{
    int64_t d;
    if (__builtin_sub_overflow(now, then, &d)) return now > then;
    return d > span;
}

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint32_t hash_str(const char *s) { return pm__hash_values(&s, 1); }

static const char *label_value(const pm_snap_series_t *s, size_t i)
{
    const char *v = pm_snap_series_label_value(s, i);
    return v ? v : "";
}

/* B = min(ceil(range / interval), max_buckets), >= 1; width = ceil(range / B). */
static void geometry(const pm__wstore *w, int64_t range, uint32_t *nb, int64_t *width)
{
    int64_t b = range / w->interval_ns + (range % w->interval_ns != 0);
    if (b > (int64_t)w->max_buckets) b = w->max_buckets;
    if (b < 1) b = 1;
    *nb = (uint32_t)b;
    *width = range / b + (range % b != 0);
}

/* ------------------------------------------------------------ table */
static whead *table_find(const pm__wstore *w, uint64_t hash,
                         bool (*eq)(const whead *, const void *), const void *key)
{
    size_t mask = w->cap - 1;
    for (size_t i = hash & mask; w->slots[i].p; i = (i + 1) & mask)
        if (w->slots[i].hash == hash && eq(w->slots[i].p, key)) return w->slots[i].p;
    return NULL;
}

static void table_put(wslot *slots, size_t cap, uint64_t hash, whead *p)
{
    size_t i = hash & (cap - 1);
    while (slots[i].p) i = (i + 1) & (cap - 1);
    slots[i].hash = hash;
    slots[i].p = p;
}

/* Makes room for one more entry (load <= 3/4); the table is untouched when
 * the bigger one cannot be allocated. */
static pm_status_t table_reserve(pm__wstore *w)
{
    if ((w->used + 1) * 4 <= w->cap * 3) return PM_OK;
    if (w->cap > SIZE_MAX / 2 / sizeof(wslot)) return PM_ENOMEM;
    size_t cap = w->cap * 2;
    wslot *ns = w_alloc(w, cap * sizeof *ns);
    if (!ns) return PM_ENOMEM;
    memset(ns, 0, cap * sizeof *ns);
    for (size_t i = 0; i < w->cap; i++)
        if (w->slots[i].p) table_put(ns, cap, w->slots[i].hash, w->slots[i].p);
    w_free(w, w->slots, w->cap * sizeof *w->slots);
    w->slots = ns;
    w->cap = cap;
    return PM_OK;
}

/* Empties slot i and pulls later members of its probe run back, so every
 * entry stays reachable from its home slot without tombstones. */
static void table_remove_at(pm__wstore *w, size_t i)
{
    size_t mask = w->cap - 1, j = i;
    w->slots[i].p = NULL;
    for (;;) {
        j = (j + 1) & mask;
        if (!w->slots[j].p) break;
        size_t home = w->slots[j].hash & mask;
        /* The entry stays when its home lies cyclically in (i, j]. */
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays) continue;
        w->slots[i] = w->slots[j];
        w->slots[j].p = NULL;
        i = j;
    }
    w->used--;
}

/* ------------------------------------------------------------ store */
pm_status_t pm__wstore_new(const pm_alloc_t *a, int64_t interval_ns, unsigned max_buckets,
                           size_t max_series, pm__wstore **out)
{
    if (out) *out = NULL;
    if (!a || !a->alloc || !a->free || !out || interval_ns <= 0 || max_buckets < 1 ||
        max_buckets > MAX_BUCKETS || max_series < 1)
        return PM_EINVAL;
    pm__wstore *w = pm__calloc(a, sizeof *w);
    if (!w) return PM_ENOMEM;
    w->a = *a;
    w->bytes = sizeof *w;
    w->interval_ns = interval_ns;
    w->max_buckets = max_buckets;
    w->max_series = max_series;
    w->cap = TABLE_MIN;
    w->slots = w_alloc(w, w->cap * sizeof *w->slots);
    if (!w->slots) {
        pm__free(a, w);
        return PM_ENOMEM;
    }
    memset(w->slots, 0, w->cap * sizeof *w->slots);
    *out = w;
    return PM_OK;
}

static void ring_free(pm__wstore *w, pm__wring *r)
{
    if (r->hist) {
        w->nhist--;
        whist *h = r->hist;
        if (h->cur) w_free(w, h->cur, hc_size(h->cur->cap));
        for (uint32_t i = 0; i < r->nb; i++)
            if (h->hc[i]) w_free(w, h->hc[i], hc_size(h->hc[i]->cap));
    }
    w_free(w, r, r->size);
}

static void entry_free(pm__wstore *w, whead *e)
{
    if (e->kind == KIND_RING)
        ring_free(w, (pm__wring *)(void *)e);
    else
        w_free(w, e, sizeof(wewma));
}

void pm__wstore_free(pm__wstore *w)
{
    if (!w) return;
    for (size_t i = 0; i < w->cap; i++)
        if (w->slots[i].p) entry_free(w, w->slots[i].p);
    w_free(w, w->slots, w->cap * sizeof *w->slots);
    if (w->scr_cnt) w_free(w, w->scr_cnt, (size_t)w->scr_cap * 12);
    pm_alloc_t a = w->a;
    pm__free(&a, w);
}

void pm__wstore_begin(pm__wstore *w, int64_t now)
{
    if (!w) return;
    w->now = now;
    w->tick++;
}

void pm__wstore_end(pm__wstore *w)
{
    if (!w) return;
    int64_t ewma_idle = w->interval_ns > INT64_MAX / 10 ? INT64_MAX : w->interval_ns * 10;
    int64_t span;
    for (size_t i = 0; i < w->cap;) {
        whead *e = w->slots[i].p;
        bool stale = false;
        if (e && e->kind == KIND_RING) {
            const pm__wring *r = (const pm__wring *)(const void *)e;
            if (__builtin_add_overflow(r->range_ns, w->interval_ns, &span)) span = INT64_MAX;
            stale = idle_longer(w->now, r->seen, span);
        } else if (e) {
            stale = idle_longer(w->now, ((const wewma *)(const void *)e)->last, ewma_idle);
        }
        if (stale) {
            entry_free(w, e);
            table_remove_at(w, i); /* slot i may now hold an entry not seen yet */
        } else {
            i++;
        }
    }
    if (!w->nhist && w->scr_cnt) { /* the last histogram ring went */
        w_free(w, w->scr_cnt, (size_t)w->scr_cap * 12);
        w->scr_cnt = NULL;
        w->scr_idx = NULL;
        w->scr_cap = 0;
    }
}

size_t pm__wstore_series(const pm__wstore *w) { return w ? w->used : 0; }
uint64_t pm__wstore_refused(const pm__wstore *w) { return w ? w->refused : 0; }
size_t pm__wstore_bytes(const pm__wstore *w) { return w ? w->bytes : 0; }

size_t pm__wstore_ring_bytes(const pm__wstore *w, int64_t range_ns)
{
    if (!w || range_ns <= 0) return 0;
    uint32_t nb;
    int64_t width;
    geometry(w, range_ns, &nb, &width);
    return sizeof(pm__wring) + (size_t)nb * sizeof(wbucket);
}

/* ------------------------------------------------------------ ring keys */
typedef struct rkey {
    const char *name;
    const pm_snap_family_t *f;
    const pm_snap_series_t *s;
    size_t nlabels;
    int64_t range;
    uint8_t type, overflow;
} rkey;

static uint64_t rkey_hash(const rkey *k)
{
    uint64_t h = mix64(hash_str(k->name) ^ ((uint64_t)k->type << 40) ^
                       ((uint64_t)k->overflow << 48) ^ ((uint64_t)k->nlabels << 52));
    for (size_t i = 0; i < k->nlabels; i++) h = mix64(h ^ hash_str(label_value(k->s, i)));
    return mix64(h ^ (uint64_t)k->range) ^ KIND_RING;
}

static bool rkey_eq(const whead *e, const void *key)
{
    const rkey *k = key;
    if (e->kind != KIND_RING || e->type != k->type || e->overflow != k->overflow) return false;
    const pm__wring *r = (const pm__wring *)(const void *)e;
    if (r->range_ns != k->range || r->nlabels != k->nlabels || strcmp(r->name, k->name))
        return false;
    for (size_t i = 0; i < k->nlabels; i++)
        if (strcmp(r->values[i], label_value(k->s, i))) return false;
    return true;
}

static pm__wring *ring_new(pm__wstore *w, const rkey *k, uint64_t hash, const pm_hdata_t *hd)
{
    uint32_t nb;
    int64_t width;
    geometry(w, k->range, &nb, &width);
    size_t size = sizeof(pm__wring) + (size_t)nb * sizeof(wbucket);
    size_t hoff = size;
    if (hd) size += sizeof(whist) + (size_t)nb * sizeof(wh_copy *);
    size_t voff = size;
    size += k->nlabels * sizeof(char *);
    size_t soff = size;
    size_t nlen = strlen(k->name) + 1;
    size += nlen;
    for (size_t i = 0; i < k->nlabels; i++) size += strlen(label_value(k->s, i)) + 1;

    pm__wring *r = w_alloc(w, size);
    if (!r) return NULL;
    memset(r, 0, soff);
    r->h.hash = hash;
    r->h.kind = KIND_RING;
    r->h.type = k->type;
    r->h.overflow = k->overflow;
    r->w = w;
    r->size = size;
    r->range_ns = k->range;
    r->width_ns = width;
    r->seen = w->now;
    r->newest = NO_BUCKET;
    r->nb = nb;
    r->nlabels = (uint32_t)k->nlabels;
    for (uint32_t i = 0; i < nb; i++) r->b[i].k = NO_BUCKET;
    char *p = (char *)r + soff;
    memcpy(p, k->name, nlen);
    r->name = p;
    p += nlen;
    r->values = (const char **)(void *)((char *)r + voff);
    for (size_t i = 0; i < k->nlabels; i++) {
        const char *v = label_value(k->s, i);
        size_t len = strlen(v) + 1;
        memcpy(p, v, len);
        r->values[i] = p;
        p += len;
    }
    if (hd) {
        r->hist = (whist *)(void *)((char *)r + hoff);
        r->hist->lowest = hd->lowest;
        r->hist->highest = hd->highest;
        r->hist->lo_key = hd->lo_key;
        r->hist->nb = hd->nb;
    }
    return r;
}

/* ------------------------------------------------------------ pushing samples */
static const wbucket *bucket_at(const pm__wring *r, int64_t k)
{
    const wbucket *b = &r->b[slot_of(k, r->nb)];
    return b->n && b->k == k ? b : NULL;
}

/* A counter step: a decrease is a reset, after which the counter counted up
 * from zero to v (Prometheus' rule). */
static double counter_step(double prev, double v, bool *reset)
{
    *reset = v < prev;
    return *reset ? v : v - prev;
}

static void bucket_add(pm__wring *r, int64_t k, int64_t t, double v)
{
    wbucket *b = &r->b[slot_of(k, r->nb)];
    const wbucket *last = r->newest != NO_BUCKET ? bucket_at(r, r->newest) : NULL;
    bool has_prev = last != NULL, reset;
    double prev = has_prev ? last->v1 : 0; /* read before the slot may be reset */
    double dt = (double)(t - k * r->width_ns) * NS;
    if (b->k != k || b->n == 0) {
        memset(b, 0, sizeof *b);
        b->k = k;
        b->n = 1;
        b->t0 = b->t1 = t;
        b->v0 = b->v1 = v;
        b->min = b->max = v;
        b->mean = v;
        if (has_prev) {
            b->inc_in = counter_step(prev, v, &reset);
            b->rs_in = reset;
        }
    } else {
        b->inc_within += counter_step(b->v1, v, &reset);
        if (reset && b->rs_within < UINT16_MAX) b->rs_within++;
        b->n++;
        double d = v - b->mean;
        b->mean += d / b->n;
        b->m2 += d * (v - b->mean);
        if (v < b->min) b->min = v;
        if (v > b->max) b->max = v;
        b->t1 = t;
        b->v1 = v;
    }
    b->sdt += dt;
    b->sdt2 += dt * dt;
    b->sdtv += dt * v;
    b->sv += v;
    r->newest = k;
}

static void hc_fill(wh_copy *c, const pm_hdata_t *hd)
{
    c->count = hd->count;
    c->sum = hd->sum;
    c->min = hd->min;
    c->max = hd->max;
    c->n = hd->n;
    if (hd->n) {
        memcpy(hc_cnt(c), hd->cnt, (size_t)hd->n * sizeof(uint64_t));
        memcpy(hc_idx(c), hd->idx, (size_t)hd->n * sizeof(uint32_t));
    }
}

static wh_copy *hc_new(pm__wstore *w, uint32_t cap)
{
    wh_copy *c = w_alloc(w, hc_size(cap));
    if (c) {
        memset(c, 0, sizeof *c);
        c->cap = cap;
    }
    return c;
}

static pm_status_t scratch_reserve(pm__wstore *w, uint32_t n)
{
    if (n <= w->scr_cap) return PM_OK;
    uint32_t cap = (uint32_t)pm__pow2_at_least(n);
    uint64_t *c = w_alloc(w, (size_t)cap * 12);
    if (!c) return PM_ENOMEM;
    if (w->scr_cnt) w_free(w, w->scr_cnt, (size_t)w->scr_cap * 12);
    w->scr_cnt = c;
    w->scr_idx = (uint32_t *)(void *)(c + cap);
    w->scr_cap = cap;
    return PM_OK;
}

/* Pushes the series' current value at w->now. Every allocation is made
 * before anything changes, so a failure leaves the ring as it was. */
static pm_status_t ring_push(pm__wring *r, const pm_snap_series_t *s, const pm_hdata_t *hd)
{
    pm__wstore *w = r->w;
    int64_t t = w->now;
    int64_t k = floordiv(t, r->width_ns);
    /* One sample per instant: a tick at or before the last sample (a clock
     * stepping back) adds nothing. */
    const wbucket *last = r->newest != NO_BUCKET ? bucket_at(r, r->newest) : NULL;
    if (last && t <= last->t1) return PM_OK;
    if (!r->hist) {
        bucket_add(r, k, t, pm_snap_series_value(s));
        return PM_OK;
    }
    whist *h = r->hist;
    uint32_t si = slot_of(k, r->nb);
    bool fresh = r->b[si].k != k || r->b[si].n == 0;
    wh_copy *bc = NULL, *cc = NULL;
    if (scratch_reserve(w, hd->n) != PM_OK) return PM_ENOMEM;
    if (fresh && (!h->hc[si] || h->hc[si]->cap < hd->n) &&
        !(bc = hc_new(w, hd->n ? hd->n : 1)))
        return PM_ENOMEM;
    if ((!h->cur || h->cur->cap < hd->n) &&
        !(cc = hc_new(w, (uint32_t)pm__pow2_at_least(hd->n < 8 ? 8 : hd->n)))) {
        if (bc) w_free(w, bc, hc_size(bc->cap));
        return PM_ENOMEM;
    }
    /* Committed from here on. */
    if (h->lowest != hd->lowest || h->lo_key != hd->lo_key || h->nb != hd->nb) {
        /* The family was redefined with another range: the old copies index
         * another layout, so the ring starts over. */
        for (uint32_t i = 0; i < r->nb; i++) r->b[i].n = 0;
        r->newest = NO_BUCKET;
        h->lowest = hd->lowest;
        h->highest = hd->highest;
        h->lo_key = hd->lo_key;
        h->nb = hd->nb;
    }
    if (bc) {
        if (h->hc[si]) w_free(w, h->hc[si], hc_size(h->hc[si]->cap));
        h->hc[si] = bc;
    }
    if (cc) {
        if (h->cur) w_free(w, h->cur, hc_size(h->cur->cap));
        h->cur = cc;
    }
    if (fresh) hc_fill(h->hc[si], hd);
    hc_fill(h->cur, hd);
    bucket_add(r, k, t, (double)hd->count);
    return PM_OK;
}

pm_status_t pm__wstore_sample(pm__wstore *w, const pm_snap_family_t *f,
                              const pm_snap_series_t *s, int64_t range_ns, pm__wring **out)
{
    if (out) *out = NULL;
    if (!w || !f || !s || !out || range_ns <= 0) return PM_EINVAL;
    pm_type_t type = pm_snap_family_type(f);
    if (type != PM_TYPE_COUNTER && type != PM_TYPE_GAUGE && type != PM_TYPE_HISTOGRAM)
        return PM_ETYPE;
    const pm_hdata_t *hd = NULL;
    if (type == PM_TYPE_HISTOGRAM && !(hd = pm_snap_series_hdata(s))) return PM_EINVAL;
    rkey key = {pm_snap_family_name(f), f, s, pm_snap_family_label_count(f), range_ns,
                (uint8_t)type, (uint8_t)(pm_snap_series_is_overflow(s) != 0)};
    if (!key.name) return PM_EINVAL;
    uint64_t hash = rkey_hash(&key);
    pm__wring *r = (pm__wring *)(void *)table_find(w, hash, rkey_eq, &key);
    if (r) {
        r->seen = w->now;
        if (r->tick != w->tick) {
            pm_status_t st = ring_push(r, s, hd);
            if (st != PM_OK) return st;
            r->tick = w->tick;
        }
        *out = r;
        return PM_OK;
    }
    if (w->used >= w->max_series) {
        w->refused++;
        return PM_ERANGE;
    }
    if (table_reserve(w) != PM_OK || !(r = ring_new(w, &key, hash, hd))) return PM_ENOMEM;
    if (r->hist) w->nhist++; /* ring_free takes it back */
    if (ring_push(r, s, hd) != PM_OK) {
        ring_free(w, r);
        return PM_ENOMEM;
    }
    r->tick = w->tick;
    table_put(w->slots, w->cap, hash, &r->h);
    w->used++;
    *out = r;
    return PM_OK;
}

/* ------------------------------------------------------------ EWMA */
typedef struct ekey {
    const void *node;
    uint64_t lhash;
} ekey;

static bool ekey_eq(const whead *e, const void *key)
{
    const ekey *k = key;
    const wewma *m = (const wewma *)(const void *)e;
    return e->kind == KIND_EWMA && m->node == k->node && m->lhash == k->lhash;
}

pm_status_t pm__wstore_ewma(pm__wstore *w, const void *node, uint64_t label_hash, double value,
                            int64_t tau_ns, double *z)
{
    if (z) *z = NAN;
    if (!w || !node || !z || tau_ns <= 0) return PM_EINVAL;
    ekey key = {node, label_hash};
    uint64_t hash = mix64((uint64_t)(uintptr_t)node ^ mix64(label_hash)) ^ KIND_EWMA;
    wewma *m = (wewma *)(void *)table_find(w, hash, ekey_eq, &key);
    if (m && m->tick == w->tick && m->seen) {
        *z = m->z;
        return m->zst;
    }
    /* A NaN or infinity would stay in the mean for good: not taken. */
    if (!isfinite(value)) return PM_ENOENT;
    if (!m) {
        if (w->used >= w->max_series) {
            w->refused++;
            return PM_ERANGE;
        }
        if (table_reserve(w) != PM_OK || !(m = w_alloc(w, sizeof *m))) return PM_ENOMEM;
        memset(m, 0, sizeof *m);
        m->h.hash = hash;
        m->h.kind = KIND_EWMA;
        m->node = node;
        m->lhash = label_hash;
        table_put(w->slots, w->cap, hash, &m->h);
        w->used++;
    }
    m->tick = w->tick;
    if (m->seen == 0) {
        m->mean = value;
        m->var = 0;
        m->seen = 1;
        m->last = w->now;
        m->z = NAN;
        m->zst = PM_ENOENT;
        return PM_ENOENT;
    }
    double dt = w->now > m->last ? (double)(w->now - m->last) * NS : 0;
    double alpha = 1 - exp(-dt / ((double)tau_ns * NS));
    double d = value - m->mean;
    if (m->seen >= 2 && m->var > 0) {
        m->z = d / sqrt(m->var);
        m->zst = PM_OK;
    } else {
        m->z = NAN;
        m->zst = PM_ENOENT;
    }
    m->mean += alpha * d;
    m->var = (1 - alpha) * (m->var + alpha * d * d);
    m->seen++;
    if (w->now > m->last) m->last = w->now;
    *z = m->z;
    return m->zst;
}

/* ------------------------------------------------------------ evaluation */
/* The window at `now`: buckets lo..hi. */
static void window_of(const pm__wring *r, int64_t *lo, int64_t *hi)
{
    *hi = floordiv(r->w->now, r->width_ns);
    *lo = *hi - (int64_t)r->nb + 1;
}

/* What every function starts from: the samples of the window, with the
 * counter increase over the steps between them. */
typedef struct wsum {
    uint64_t n;
    const wbucket *oldest, *newest;
    double inc;      /* counter increase between the window's samples */
    unsigned resets; /* counter resets between them */
    double mean, m2, min, max, sum;
} wsum;

static void window_sum(const pm__wring *r, wsum *o)
{
    int64_t lo, hi;
    window_of(r, &lo, &hi);
    memset(o, 0, sizeof *o);
    for (int64_t k = lo; k <= hi; k++) {
        const wbucket *b = bucket_at(r, k);
        if (!b) continue;
        if (!o->oldest) {
            o->oldest = b;
            o->inc = b->inc_within;
            o->resets = b->rs_within;
            o->mean = b->mean;
            o->m2 = b->m2;
            o->min = b->min;
            o->max = b->max;
        } else {
            o->inc += b->inc_in + b->inc_within;
            o->resets += b->rs_in + b->rs_within;
            /* Chan et al.: merge two (n, mean, M2) */
            double na = (double)o->n, nb = b->n, n = na + nb, d = b->mean - o->mean;
            o->mean += d * nb / n;
            o->m2 += b->m2 + d * d * na * nb / n;
            if (b->min < o->min) o->min = b->min;
            if (b->max > o->max) o->max = b->max;
        }
        o->sum += b->sv;
        o->n += b->n;
        o->newest = b;
    }
}

/* Prometheus' extrapolatedRate over the window's samples. */
static pm_status_t extrapolated(const pm__wring *r, const wsum *ws, bool counter, bool rate,
                                double *out)
{
    if (ws->n < 2) return PM_ENOENT;
    int64_t now = r->w->now;
    int64_t t1 = ws->oldest->t0, tn = ws->newest->t1;
    double v1 = ws->oldest->v0;
    double result = counter ? ws->inc : ws->newest->v1 - v1;
    /* The window starts up to B-1 ns before now - range (width is rounded
     * up) and may end after a clock step back: never extrapolate inwards. */
    double to_start = fmax(0, (double)(t1 - now + r->range_ns) * NS);
    double to_end = fmax(0, (double)(now - tn) * NS);
    double sampled = (double)(tn - t1) * NS;
    if (!(sampled > 0)) return PM_ENOENT;
    double avg = sampled / (double)(ws->n - 1);
    if (counter && result > 0 && v1 >= 0) {
        /* A counter is never negative: do not extrapolate before its zero. */
        double to_zero = sampled * (v1 / result);
        if (to_zero < to_start) to_start = to_zero;
    }
    double threshold = avg * 1.1, ext = sampled;
    ext += to_start < threshold ? to_start : avg / 2;
    ext += to_end < threshold ? to_end : avg / 2;
    result *= ext / sampled;
    if (rate) result /= (double)r->range_ns * NS;
    *out = result;
    return PM_OK;
}

/* Least squares of v against t over the window, around t = now. */
static pm_status_t regression(const pm__wring *r, double *slope, double *at_now)
{
    int64_t lo, hi, now = r->w->now;
    window_of(r, &lo, &hi);
    double n = 0, st = 0, stt = 0, stv = 0, sv = 0;
    for (int64_t k = lo; k <= hi; k++) {
        const wbucket *b = bucket_at(r, k);
        if (!b) continue;
        /* re-centre the bucket's dt on now: t' = dt + c */
        double c = (double)(k * r->width_ns - now) * NS, bn = b->n;
        n += bn;
        st += b->sdt + bn * c;
        stt += b->sdt2 + 2 * c * b->sdt + bn * c * c;
        stv += b->sdtv + c * b->sv;
        sv += b->sv;
    }
    if (n < 2) return PM_ENOENT;
    double den = n * stt - st * st;
    if (!(den > 0)) return PM_ENOENT;
    *slope = (n * stv - st * sv) / den;
    *at_now = (sv - *slope * st) / n;
    return PM_OK;
}

/* The window's distribution: the last sample's minus the oldest bucket's
 * first, into the store's scratch arrays. With a reset inside the window the
 * last sample's distribution is taken whole (it holds only observations made
 * since the reset, all inside the window). */
typedef struct wdist {
    uint64_t count;
    double sum, min, max;
    uint32_t n;
} wdist;

static double fine_value(const whist *h, uint32_t idx, const wh_copy *cur)
{
    double v;
    if (idx == 0)
        v = h->lowest; /* below the range: bound it as Prometheus bounds +Inf */
    else if (idx > h->nb)
        v = h->highest;
    else {
        pm_hist_layout L = {.lowest = h->lowest, .lo_key = h->lo_key, .nb = h->nb};
        v = pm__hist_bucket_value(&L, idx, -INFINITY, INFINITY);
    }
    return fmin(fmax(v, cur->min), cur->max);
}

static pm_status_t window_dist(const pm__wring *r, const wsum *ws, wdist *d)
{
    const whist *h = r->hist;
    pm__wstore *w = r->w;
    const wh_copy *cur = h->cur;
    /* cur is the last sample's: it must be inside the window */
    if (!ws->oldest || !cur || ws->newest->k != r->newest) return PM_ENOENT;
    const wh_copy *old = h->hc[slot_of(ws->oldest->k, r->nb)];
    if (!old) return PM_ENOENT; /* not reached: a non-empty bucket has its copy */
    const uint64_t *cc = hc_ccnt(cur), *oc = hc_ccnt(old);
    const uint32_t *ci = hc_cidx(cur), *oi = hc_cidx(old);
    bool whole = ws->resets > 0 || cur->count < old->count;
    uint32_t n = 0;
    if (!whole) {
        uint32_t j = 0;
        for (uint32_t i = 0; i < cur->n && !whole; i++) {
            uint64_t prev = 0;
            if (j < old->n && oi[j] < ci[i]) whole = true; /* a bucket went away */
            else if (j < old->n && oi[j] == ci[i])
                prev = oc[j++];
            if (cc[i] < prev) whole = true;
            else if (cc[i] > prev) {
                w->scr_idx[n] = ci[i];
                w->scr_cnt[n++] = cc[i] - prev;
            }
        }
        if (j < old->n) whole = true;
    }
    if (whole) {
        memcpy(w->scr_idx, ci, (size_t)cur->n * sizeof *ci);
        memcpy(w->scr_cnt, cc, (size_t)cur->n * sizeof *cc);
        *d = (wdist){cur->count, cur->sum, cur->min, cur->max, cur->n};
        return cur->count ? PM_OK : PM_ENOENT;
    }
    d->count = cur->count - old->count;
    d->sum = cur->sum - old->sum;
    d->n = n;
    if (!d->count || !n) return PM_ENOENT;
    /* A new extreme since the copy is exact; otherwise the representative of
     * the outermost non-empty fine bucket (within 1/129 inside the range). */
    d->min = cur->min < old->min ? cur->min : fine_value(h, w->scr_idx[0], cur);
    d->max = cur->max > old->max ? cur->max : fine_value(h, w->scr_idx[n - 1], cur);
    return PM_OK;
}

static pm_status_t eval_hist(const pm__wring *r, const wsum *ws, pm__afn fn, double param,
                             double *out)
{
    wdist d;
    pm_status_t st = window_dist(r, ws, &d);
    if (st != PM_OK) return st;
    const whist *h = r->hist;
    switch (fn) {
    case PM__FN_COUNT_OT: *out = (double)d.count; return PM_OK;
    case PM__FN_SUM_OT: *out = d.sum; return PM_OK;
    case PM__FN_AVG_OT: *out = d.sum / (double)d.count; return PM_OK;
    case PM__FN_MIN_OT: param = 0; break;
    case PM__FN_MAX_OT: param = 1; break;
    default: break;
    }
    return pm__hdata_quantile_raw(h->lowest, h->lo_key, h->nb, d.count, d.min, d.max,
                                  r->w->scr_idx, r->w->scr_cnt, d.n, param, out);
}

pm_status_t pm__wring_eval(const pm__wring *r, pm__afn fn, double param, double *out)
{
    if (out) *out = NAN;
    if (!r || !out) return PM_EINVAL;
    if (fn < PM__FN_RATE || fn > PM__FN_PREDICT_LINEAR || fn == PM__FN_ZSCORE_EWMA)
        return PM_EINVAL;
    bool hist = r->hist != NULL;
    if ((fn == PM__FN_QUANTILE_OT && !hist) || (fn == PM__FN_STDDEV_OT && hist)) return PM_ETYPE;
    if (fn == PM__FN_QUANTILE_OT && !(param >= 0 && param <= 1)) return PM_EINVAL;
    if (fn == PM__FN_PREDICT_LINEAR && !isfinite(param)) return PM_EINVAL;
    wsum ws;
    window_sum(r, &ws);
    if (hist && (fn == PM__FN_QUANTILE_OT || fn == PM__FN_COUNT_OT || fn == PM__FN_SUM_OT ||
                 fn == PM__FN_AVG_OT || fn == PM__FN_MIN_OT || fn == PM__FN_MAX_OT))
        return eval_hist(r, &ws, fn, param, out);
    if (ws.n == 0) return PM_ENOENT;
    double slope, at_now, sd;
    pm_status_t st;
    switch (fn) {
    case PM__FN_RATE: return extrapolated(r, &ws, true, true, out);
    case PM__FN_INCREASE: return extrapolated(r, &ws, true, false, out);
    case PM__FN_DELTA: return extrapolated(r, &ws, false, false, out);
    case PM__FN_AVG_OT: *out = ws.mean; return PM_OK;
    case PM__FN_MIN_OT: *out = ws.min; return PM_OK;
    case PM__FN_MAX_OT: *out = ws.max; return PM_OK;
    case PM__FN_SUM_OT: *out = ws.sum; return PM_OK;
    case PM__FN_COUNT_OT: *out = (double)ws.n; return PM_OK;
    case PM__FN_LAST_OT: *out = ws.newest->v1; return PM_OK;
    case PM__FN_STDDEV_OT: *out = sqrt(fmax(0, ws.m2 / (double)ws.n)); return PM_OK;
    case PM__FN_ZSCORE:
        if (ws.n < 2) return PM_ENOENT;
        sd = sqrt(fmax(0, ws.m2 / (double)ws.n));
        if (!(sd > 0)) return PM_ENOENT;
        *out = (ws.newest->v1 - ws.mean) / sd;
        return PM_OK;
    case PM__FN_SLOPE:
    case PM__FN_PREDICT_LINEAR:
        if ((st = regression(r, &slope, &at_now)) != PM_OK) return st;
        *out = fn == PM__FN_SLOPE ? slope : at_now + slope * param;
        return PM_OK;
    default: return PM_EINVAL;
    }
}
