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
 *   key | pm__wring: line 0, line 1 | the B buckets, column-wise |
 *   histograms: whist + wh_copy *[B]
 *
 * The key (name and label values, NUL-terminated, padded to 8 bytes) sits
 * right before the header, and the header's first line holds what finding a
 * ring and answering from its memo read: a lookup touches the table slot and
 * about two adjacent lines. The columns start at a fixed offset.
 *
 * Bucket k covers [k*width, (k+1)*width) ns on the Unix time line and lives
 * in slot k mod B; a slot is overwritten only when a later bucket takes it.
 * Samples arrive in time order (a sample at or before the last one is
 * dropped), so no slot holds a bucket after the newest sample's, and which
 * slots hold the newest bucket and the B-1 before it (all a window can hold
 * unless `now` stepped back) is one bit each in the header for B <= 64.
 * Otherwise a slot's bucket is the one its first sample falls in. No bucket
 * carries its index. Evaluating walks the buckets of the window.
 *
 * Every bucket keeps what the window functions need in mergeable form:
 * first/last sample, count, min, max, Welford mean/M2 (merged with Chan's
 * formula), least-squares sums relative to the bucket's start (re-centred on
 * `now` when merged, so large Unix times never meet in one sum), and the
 * counter increase split into the steps inside the bucket and the one step
 * into it from the previous sample. Summing both only for the buckets after
 * the oldest one gives the increase over the samples of the window, exactly
 * the steps Prometheus' rate() sees.
 *
 * The buckets are stored as columns, 128 bytes a bucket in all:
 *
 *   cnt   {n, resets}                8 B   rate, avg, count, stddev, slope..
 *   step  inc_in + inc_within        8 B   rate, increase
 *   mean, min, max               3 x 8 B   avg (stddev, zscore); min; max
 *   ends  {t0, t1, v0, v1}          32 B   rate, delta, last: two buckets'
 *   cold  {inc_in, inc_within, m2,  56 B   the oldest bucket's inc_within;
 *          sdt, sdt2, sdtv, sv}            stddev, zscore, slope, sum
 *
 * The store is far larger than the caches, so what an evaluation costs is
 * the lines it reads: rate over a full [5m] ring (B = 20) reads the cnt and
 * step columns and the oldest and newest buckets' ends and cold, about 8
 * lines instead of the 40 of whole buckets; avg 5, max 3. A push writes one
 * element per column (8 lines) and asks for them, and for the columns the
 * ring's last evaluation read, all at once. `step` repeats inc_in +
 * inc_within, computed as the evaluation used to, so results are the same to
 * the bit.
 *
 * Each ring memoises its last answer (function, parameter, status, value)
 * for the tick: rules that apply the same function to the same series and
 * range in one evaluation compute it once. A push drops the memo; a new tick
 * (a new `now`) does not match it.
 *
 * Histogram rings also keep, per bucket, a sparse copy of the cumulative
 * fine buckets at the bucket's first sample, and one copy at the last
 * sample: the window's observations are last minus the oldest bucket's
 * copy, i.e. those recorded between samples inside the window.
 *
 * Memory (x86-64), per windowed series of a range with B buckets:
 * pm__wstore_ring_bytes() = 128 (ring header) + 128 B, plus the key: the
 * name and the label values with their NULs, rounded up to a multiple of 8.
 * Histograms add 40 + 8 B, one copy of 40 + 12 n per non-empty bucket (n:
 * non-zero fine buckets at that bucket's first sample; a reused copy keeps
 * its larger capacity) and the last sample's copy, 40 + 12 cap with cap a
 * power of two >= max(n, 8). An EWMA state is 72 bytes. The table adds 16
 * bytes per slot (load <= 3/4), the store 144 bytes plus, while any
 * histogram ring exists, a 12-byte-per-entry scratch as large as the
 * largest distribution. pm__wstore_bytes() counts all of it.
 *
 * The store is used by one engine under its lock: no locking here, and no
 * global state. Every allocation goes through the store's allocator and is
 * tallied in `bytes`; a failed sample leaves the ring as it was. */
#include "internal/alert_internal.h"
#include "internal/snapshot_internal.h"

#include <math.h>

#define KIND_RING 1
#define KIND_EWMA 2
#define NO_BUCKET INT64_MIN
#define MAX_BUCKETS 4096
#define TABLE_MIN 16
#define NS 1e-9 /* seconds per ns */
#define KEY_LENS PM_MAX_LABELS /* label-value lengths kept while looking up */

/* ------------------------------------------------------------ types */
/* First field of every table entry. */
typedef struct whead {
    uint8_t kind;
    uint8_t type;     /* rings: the family's pm_type_t */
    uint8_t overflow; /* rings: the family's overflow series */
    uint8_t pad_;
} whead;

/* The bucket columns (see the top of the file). */
typedef struct wcnt {
    uint32_t n;         /* samples; 0: no bucket here yet (or since the ring started over) */
    uint16_t rs_within; /* counter resets between samples inside (saturating) */
    uint16_t rs_in;     /* 1: the step from the previous sample was a reset */
} wcnt;

typedef struct wend {
    int64_t t0, t1; /* first and last sample time, ns */
    double v0, v1;  /* first and last value */
} wend;

typedef struct wcold {
    double inc_in;     /* the step from the previous sample to the first */
    double inc_within; /* increase over the steps between samples inside */
    double m2;         /* Welford */
    double sdt, sdt2;  /* sum dt, sum dt^2; dt = seconds since k*width */
    double sdtv, sv;   /* sum dt*v, sum v */
} wcold;

#define BUCKET_BYTES (sizeof(wcnt) + 4 * sizeof(double) + sizeof(wend) + sizeof(wcold))
_Static_assert(BUCKET_BYTES == 128, "a bucket is meant to be 128 bytes over its columns");

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
    /* line 0: finding the ring, deciding to push, the memo */
    whead h;
    uint8_t memo_fn;  /* 0: no memo */
    int8_t memo_st;   /* a pm_status_t */
    uint8_t last_fn;  /* the last function computed: what a push prefetches */
    uint8_t pad_;
    uint32_t keylen;  /* bytes of the key before the header */
    uint32_t nb;      /* B */
    int64_t range_ns;
    uint64_t tick;    /* tick of the last sample */
    pm__wstore *w;
    uint64_t memo_tick;
    double memo_param; /* compared bit for bit */
    double memo_val;
    /* line 1: pushing and evaluating */
    int64_t seen;     /* `now` of the last pm__wstore_sample: the sweep */
    int64_t width_ns;
    int64_t newest;   /* bucket index of the last sample, NO_BUCKET before any */
    uint32_t newest_slot;
    uint32_t now_slot; /* where `now` of tick now_tick falls: bucket now_k */
    whist *hist;      /* histograms only */
    /* B <= 64: bit s set when slot s holds one of the buckets newest - B + 1
     * .. newest (the window at any `now` not before the newest sample) */
    uint64_t live;
    uint64_t now_tick;
    int64_t now_k;
};
_Static_assert(sizeof(struct pm__wring) == 128, "the ring header is meant to be two lines");

typedef struct wewma {
    whead h;
    pm_status_t zst; /* this tick's answer, repeated to a second call */
    const void *node;
    uint64_t lhash;
    double mean, var, z;
    int64_t last; /* time of the last update, ns */
    uint64_t seen; /* samples taken */
    uint64_t tick;
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
    /* No entry is stale while now <= due (a lower bound of every entry's
     * last use plus its idle span): the sweep skips the table until then. */
    int64_t due;
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

static uint32_t next_slot(uint32_t s, uint32_t nb) { return s + 1 == nb ? 0 : s + 1; }

/* now - then > span, without overflow. */
static bool idle_longer(int64_t now, int64_t then, int64_t span)
{
    int64_t d;
    if (__builtin_sub_overflow(now, then, &d)) return now > then;
    return d > span;
}

/* a + b, saturating at INT64_MAX (b >= 0). */
static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t s;
    return __builtin_add_overflow(a, b, &s) ? INT64_MAX : s;
}

static int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

static uint64_t mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Folds len bytes of s into h, eight at a time. */
static uint64_t hash_bytes(uint64_t h, const char *s, size_t len)
{
    const uint64_t K = 0x9E3779B97F4A7C15ull;
    h = (h ^ len) * K;
    for (; len >= 8; s += 8, len -= 8) {
        uint64_t x;
        memcpy(&x, s, 8);
        h = (h ^ x) * K;
        h ^= h >> 29;
    }
    if (len) {
        uint64_t x = 0;
        for (size_t i = 0; i < len; i++) x |= (uint64_t)(unsigned char)s[i] << (8 * i);
        h = (h ^ x) * K;
        h ^= h >> 29;
    }
    return h;
}

static size_t round8(size_t n) { return (n + 7) & ~(size_t)7; }

/* Asks for the lines of [p, p + n) at once: the store is far larger than the
 * caches, and misses in flight together cost about one. */
static void prefetch(const void *p, size_t n)
{
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)63, e = (uintptr_t)p + n;
    for (; a < e; a += 64) __builtin_prefetch((const void *)a);
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

/* ------------------------------------------------------------ rings */
typedef struct wcols {
    wcnt *cnt;
    double *step, *mean, *min, *max;
    wend *end;
    wcold *cold;
} wcols;

/* Rings are never const objects: evaluation takes a const ring for the
 * contract's sake but memoises its answer in it. */
static pm__wring *ring_mut(const pm__wring *r) { return (pm__wring *)(uintptr_t)r; }

static wcols cols_of(const pm__wring *r)
{
    size_t nb = r->nb;
    wcols c;
    c.cnt = (wcnt *)(void *)(ring_mut(r) + 1);
    c.step = (double *)(void *)(c.cnt + nb);
    c.mean = c.step + nb;
    c.min = c.mean + nb;
    c.max = c.min + nb;
    c.end = (wend *)(void *)(c.max + nb);
    c.cold = (wcold *)(void *)(c.end + nb);
    return c;
}

static const char *ring_key(const pm__wring *r) { return (const char *)r - round8(r->keylen); }

/* Bytes of the allocation; it starts at the key. */
static size_t ring_size(uint32_t nb, size_t keylen, bool hist)
{
    size_t size = round8(keylen) + sizeof(pm__wring) + (size_t)nb * BUCKET_BYTES;
    if (hist) size += sizeof(whist) + (size_t)nb * sizeof(wh_copy *);
    return size;
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
    w->due = INT64_MAX;
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
    w_free(w, (void *)(uintptr_t)ring_key(r), ring_size(r->nb, r->keylen, r->hist != NULL));
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

static int64_t ring_span(const pm__wstore *w, const pm__wring *r)
{
    return add_sat(r->range_ns, w->interval_ns);
}

static int64_t ewma_idle(const pm__wstore *w)
{
    return w->interval_ns > INT64_MAX / 10 ? INT64_MAX : w->interval_ns * 10;
}

/* The entry's last use plus its idle span: it is stale once now is past. */
static int64_t entry_due(const pm__wstore *w, const whead *e)
{
    if (e->kind == KIND_RING) {
        const pm__wring *r = (const pm__wring *)(const void *)e;
        return add_sat(r->seen, ring_span(w, r));
    }
    return add_sat(((const wewma *)(const void *)e)->last, ewma_idle(w));
}

static void note_due(pm__wstore *w, int64_t due)
{
    if (due < w->due) w->due = due;
}

void pm__wstore_end(pm__wstore *w)
{
    if (!w) return;
    if (w->now > w->due) {
        int64_t idle = ewma_idle(w), due = INT64_MAX;
        for (size_t i = 0; i < w->cap;) {
            whead *e = w->slots[i].p;
            bool stale = false;
            if (e && e->kind == KIND_RING) {
                const pm__wring *r = (const pm__wring *)(const void *)e;
                stale = idle_longer(w->now, r->seen, ring_span(w, r));
            } else if (e) {
                stale = idle_longer(w->now, ((const wewma *)(const void *)e)->last, idle);
            }
            if (stale) {
                entry_free(w, e);
                table_remove_at(w, i); /* slot i may now hold an entry not seen yet */
            } else {
                if (e) due = min64(due, entry_due(w, e));
                i++;
            }
        }
        w->due = due;
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
    return sizeof(pm__wring) + (size_t)nb * BUCKET_BYTES;
}

/* ------------------------------------------------------------ ring keys */
/* A series' key as pm__wstore_sample sees it, with the lengths measured
 * once for the hash and the comparison. */
typedef struct rkey {
    const char *name;
    const pm_snap_series_t *s;
    size_t nname;
    size_t nlabels;
    size_t keylen; /* name and values with their NULs */
    int64_t range;
    uint64_t hash;
    uint8_t type, overflow;
    uint32_t vlen[KEY_LENS];
} rkey;

static const char *label_value(const pm_snap_series_t *s, size_t i)
{
    const char *v = i < s->fam->nlabels ? s->values[i] : NULL;
    return v ? v : "";
}

static size_t value_len(const rkey *k, size_t i)
{
    return i < KEY_LENS ? k->vlen[i] : strlen(label_value(k->s, i));
}

static void rkey_init(rkey *k, const pm_snap_family_t *f, const pm_snap_series_t *s,
                      int64_t range)
{
    k->name = f->name;
    k->s = s;
    k->nlabels = f->nlabels;
    k->range = range;
    k->type = (uint8_t)f->type;
    k->overflow = (uint8_t)(s->overflow != 0);
    k->nname = strlen(k->name);
    k->keylen = k->nname + 1;
    uint64_t h = hash_bytes(mix64(((uint64_t)k->type << 40) ^ ((uint64_t)k->overflow << 48) ^
                                  ((uint64_t)k->nlabels << 52)),
                            k->name, k->nname);
    for (size_t i = 0; i < k->nlabels; i++) {
        const char *v = label_value(s, i);
        size_t len = strlen(v);
        if (i < KEY_LENS) k->vlen[i] = (uint32_t)len;
        k->keylen += len + 1;
        h = hash_bytes(h, v, len);
    }
    k->hash = mix64(h ^ (uint64_t)range) ^ KIND_RING;
}

/* The stored key is the strings back to back with their NULs, so equal
 * bytes mean equal strings, in number too. */
static bool rkey_eq(const pm__wring *r, const rkey *k)
{
    if (r->h.type != k->type || r->h.overflow != k->overflow || r->range_ns != k->range ||
        r->keylen != k->keylen)
        return false;
    const char *p = ring_key(r);
    if (memcmp(p, k->name, k->nname + 1)) return false;
    p += k->nname + 1;
    for (size_t i = 0; i < k->nlabels; i++) {
        size_t len = value_len(k, i);
        if (memcmp(p, label_value(k->s, i), len + 1)) return false;
        p += len + 1;
    }
    return true;
}

static pm__wring *ring_find(const pm__wstore *w, const rkey *k)
{
    size_t mask = w->cap - 1;
    for (size_t i = k->hash & mask; w->slots[i].p; i = (i + 1) & mask) {
        if (w->slots[i].hash != k->hash) continue;
        whead *e = w->slots[i].p;
        /* the header and (when it is the one) the key before it, together */
        prefetch((const char *)e - round8(k->keylen), round8(k->keylen) + sizeof(pm__wring));
        if (e->kind == KIND_RING && rkey_eq((const pm__wring *)(const void *)e, k))
            return (pm__wring *)(void *)e;
    }
    return NULL;
}

static pm__wring *ring_new(pm__wstore *w, const rkey *k, const pm_hdata_t *hd)
{
    uint32_t nb;
    int64_t width;
    geometry(w, k->range, &nb, &width);
    size_t size = ring_size(nb, k->keylen, hd != NULL);
    char *p = w_alloc(w, size);
    if (!p) return NULL;
    memset(p, 0, size); /* every count 0: no bucket yet */
    pm__wring *r = (pm__wring *)(void *)(p + round8(k->keylen));
    r->h.kind = KIND_RING;
    r->h.type = k->type;
    r->h.overflow = k->overflow;
    r->keylen = (uint32_t)k->keylen;
    r->nb = nb;
    r->range_ns = k->range;
    r->w = w;
    r->seen = w->now;
    r->width_ns = width;
    r->newest = NO_BUCKET;
    memcpy(p, k->name, k->nname + 1);
    p += k->nname + 1;
    for (size_t i = 0; i < k->nlabels; i++) {
        size_t len = value_len(k, i);
        memcpy(p, label_value(k->s, i), len + 1);
        p += len + 1;
    }
    if (hd) {
        r->hist = (whist *)(void *)((char *)(r + 1) + (size_t)nb * BUCKET_BYTES);
        r->hist->lowest = hd->lowest;
        r->hist->highest = hd->highest;
        r->hist->lo_key = hd->lo_key;
        r->hist->nb = hd->nb;
    }
    return r;
}

/* ------------------------------------------------------------ pushing samples */
/* A counter step: a decrease is a reset, after which the counter counted up
 * from zero to v (Prometheus' rule). */
static double counter_step(double prev, double v, bool *reset)
{
    *reset = v < prev;
    return *reset ? v : v - prev;
}

/* The ring moves on from bucket `newest` to k > newest: the slots of the
 * buckets skipped in between hold buckets B or more before k. */
static void skip_to(pm__wring *r, int64_t k, uint32_t si)
{
    if (r->nb > 64) return;
    uint64_t gap = (uint64_t)k - (uint64_t)r->newest - 1;
    if (gap >= r->nb) {
        r->live = 0;
    } else {
        for (uint32_t s = next_slot(r->newest_slot, r->nb); gap; gap--, s = next_slot(s, r->nb))
            r->live &= ~((uint64_t)1 << s);
    }
    r->live |= (uint64_t)1 << si;
}

static void bucket_add(pm__wring *r, int64_t k, uint32_t si, int64_t t, double v)
{
    wcols c = cols_of(r);
    bool has_prev = r->newest != NO_BUCKET, reset;
    /* read before the slot may be reused */
    double prev = has_prev ? c.end[r->newest_slot].v1 : 0;
    double dt = (double)(t - k * r->width_ns) * NS;
    wcnt *cn = &c.cnt[si];
    wend *eb = &c.end[si];
    wcold *cb = &c.cold[si];
    if (!has_prev || k != r->newest) {
        if (has_prev)
            skip_to(r, k, si);
        else if (r->nb <= 64)
            r->live = (uint64_t)1 << si;
        *cn = (wcnt){1, 0, 0};
        *eb = (wend){t, t, v, v};
        *cb = (wcold){0, 0, 0, 0, 0, 0, 0};
        c.min[si] = c.max[si] = v;
        c.mean[si] = v;
        if (has_prev) {
            cb->inc_in = counter_step(prev, v, &reset);
            cn->rs_in = reset;
        }
    } else {
        cb->inc_within += counter_step(eb->v1, v, &reset);
        if (reset && cn->rs_within < UINT16_MAX) cn->rs_within++;
        cn->n++;
        double d = v - c.mean[si];
        c.mean[si] += d / cn->n;
        cb->m2 += d * (v - c.mean[si]);
        if (v < c.min[si]) c.min[si] = v;
        if (v > c.max[si]) c.max[si] = v;
        eb->t1 = t;
        eb->v1 = v;
    }
    /* the sum an evaluation would form, formed the same way */
    c.step[si] = cb->inc_in + cb->inc_within;
    /* added to zeros as the sums always were: bit for bit the same values */
    cb->sdt += dt;
    cb->sdt2 += dt * dt;
    cb->sdtv += dt * v;
    cb->sv += v;
    r->newest = k;
    r->newest_slot = si;
    r->memo_fn = 0;
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

/* Asks for what evaluating fn over a full window reads; `first` is (a guess
 * at) the window's first slot. min and max need no counts: the live mask says which
 * slots to read. */
static void prefetch_for(const pm__wring *r, const wcols *c, pm__afn fn, uint32_t first)
{
    size_t nb = r->nb;
    if (r->hist && fn != PM__FN_RATE && fn != PM__FN_INCREASE && fn != PM__FN_DELTA) {
        prefetch(c->cnt, nb * sizeof(wcnt)); /* the rest is in the distribution copies */
        return;
    }
    switch (fn) {
    case PM__FN_MIN_OT: prefetch(c->min, nb * sizeof(double)); return;
    case PM__FN_MAX_OT: prefetch(c->max, nb * sizeof(double)); return;
    default: break;
    }
    prefetch(c->cnt, nb * sizeof(wcnt));
    switch (fn) {
    case PM__FN_RATE:
    case PM__FN_INCREASE:
        prefetch(c->step, nb * sizeof(double));
        __builtin_prefetch(&c->cold[first].inc_within);
        /* fall through */
    case PM__FN_DELTA: __builtin_prefetch(&c->end[first]); break;
    case PM__FN_AVG_OT: prefetch(c->mean, nb * sizeof(double)); break;
    case PM__FN_STDDEV_OT:
    case PM__FN_ZSCORE: prefetch(c->mean, nb * sizeof(double)); /* fall through */
    case PM__FN_SLOPE:
    case PM__FN_PREDICT_LINEAR:
    case PM__FN_SUM_OT: prefetch(c->cold, nb * sizeof(wcold)); break;
    default: break;
    }
}

/* Pushes the series' current value at w->now. Every allocation is made
 * before anything changes, so a failure leaves the ring as it was. */
static pm_status_t ring_push(pm__wring *r, const pm_snap_series_t *s, const pm_hdata_t *hd)
{
    pm__wstore *w = r->w;
    int64_t t = w->now;
    int64_t k = floordiv(t, r->width_ns);
    uint32_t si = slot_of(k, r->nb);
    /* kept for the evaluations of this tick: two divisions less each */
    r->now_tick = w->tick;
    r->now_k = k;
    r->now_slot = si;
    wcols c = cols_of(r);
    /* Every line the push touches, and those the next evaluation will
     * likely read, asked for together rather than one miss after another. */
    uint32_t ps = r->newest_slot;
    __builtin_prefetch(&c.end[ps]);
    __builtin_prefetch(&c.cnt[si]);
    __builtin_prefetch(&c.step[si]);
    __builtin_prefetch(&c.mean[si]);
    __builtin_prefetch(&c.min[si]);
    __builtin_prefetch(&c.max[si]);
    __builtin_prefetch(&c.end[si]);
    prefetch(&c.cold[si], sizeof(wcold));
    if (r->last_fn) prefetch_for(r, &c, (pm__afn)r->last_fn, next_slot(si, r->nb));
    /* One sample per instant: a tick at or before the last sample (a clock
     * stepping back) adds nothing. */
    bool has_prev = r->newest != NO_BUCKET;
    if (has_prev && t <= c.end[ps].t1) return PM_OK;
    if (!r->hist) {
        bucket_add(r, k, si, t, s->value);
        return PM_OK;
    }
    whist *h = r->hist;
    bool fresh = !has_prev || k != r->newest;
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
        for (uint32_t i = 0; i < r->nb; i++) c.cnt[i].n = 0;
        r->live = 0;
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
    bucket_add(r, k, si, t, (double)hd->count);
    return PM_OK;
}

pm_status_t pm__wstore_sample(pm__wstore *w, const pm_snap_family_t *f,
                              const pm_snap_series_t *s, int64_t range_ns, pm__wring **out)
{
    if (out) *out = NULL;
    if (!w || !f || !s || !out || range_ns <= 0) return PM_EINVAL;
    pm_type_t type = f->type;
    if (type != PM_TYPE_COUNTER && type != PM_TYPE_GAUGE && type != PM_TYPE_HISTOGRAM)
        return PM_ETYPE;
    const pm_hdata_t *hd = NULL;
    if (type == PM_TYPE_HISTOGRAM && !(hd = pm_snap_series_hdata(s))) return PM_EINVAL;
    if (!f->name) return PM_EINVAL;
    rkey key;
    rkey_init(&key, f, s, range_ns);
    pm__wring *r = ring_find(w, &key);
    if (r) {
        /* `now` changes only with the tick: seen needs setting once a tick */
        if (r->tick != w->tick) {
            r->seen = w->now;
            note_due(w, add_sat(w->now, ring_span(w, r)));
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
    if (table_reserve(w) != PM_OK || !(r = ring_new(w, &key, hd))) return PM_ENOMEM;
    if (r->hist) w->nhist++; /* ring_free takes it back */
    if (ring_push(r, s, hd) != PM_OK) {
        ring_free(w, r);
        return PM_ENOMEM;
    }
    r->tick = w->tick;
    table_put(w->slots, w->cap, key.hash, &r->h);
    w->used++;
    note_due(w, add_sat(w->now, ring_span(w, r)));
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
        note_due(w, add_sat(m->last, ewma_idle(w)));
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
    if (w->now > m->last) m->last = w->now; /* only later: `due` still holds */
    *z = m->z;
    return m->zst;
}

/* ------------------------------------------------------------ evaluation */
/* The buckets of the window at `now` (the bucket holding now and the B-1
 * before it) that can hold samples: first .. last (none after the newest
 * sample's), the first in slot s0. Empty when first > last. */
typedef struct wwin {
    wcols c;
    int64_t first, last;
    int64_t mask_from; /* buckets from here on are told live by the mask */
    uint64_t live;
    int64_t width;
    uint32_t s0, nb;
} wwin;

static void window_of(const pm__wring *r, wwin *v)
{
    v->c = cols_of(r);
    v->nb = r->nb;
    v->first = 1;
    v->last = 0;
    v->s0 = 0;
    v->live = r->live;
    v->width = r->width_ns;
    v->mask_from = INT64_MAX;
    if (r->newest == NO_BUCKET) return;
    bool known = r->now_tick == r->w->tick;
    int64_t hi = known ? r->now_k : floordiv(r->w->now, r->width_ns);
    v->first = hi - (int64_t)r->nb + 1;
    v->last = min64(hi, r->newest);
    /* first = hi - B + 1 sits in the slot after hi's */
    if (v->first <= v->last)
        v->s0 = known ? next_slot(r->now_slot, r->nb) : slot_of(v->first, r->nb);
    if (r->nb <= 64) v->mask_from = r->newest - (int64_t)r->nb + 1;
}

/* Whether slot s holds bucket k (k <= the newest). */
static inline __attribute__((always_inline)) bool live_at(const wwin *v, uint32_t s, int64_t k)
{
    if (k >= v->mask_from) return (v->live >> s) & 1;
    /* an older bucket survives where no later one took its slot */
    int64_t t0 = v->c.end[s].t0, start = k * v->width;
    return v->c.cnt[s].n && t0 >= start && t0 - start < v->width;
}

/* What the functions start from: the samples of the window, with the
 * counter increase over the steps between them. Only what `what` asks for
 * is merged (each caller passes a constant, so each gets its own loop that
 * reads only its columns); the arithmetic is the same whatever is asked. */
enum { W_INC = 1, W_RS = 2, W_MEAN = 4, W_M2 = 8, W_MIN = 16, W_MAX = 32, W_SUM = 64 };

typedef struct wsum {
    uint64_t n;
    int64_t oldest, newest;  /* slots; -1: the window is empty */
    int64_t newest_k;        /* the newest's bucket index */
    double inc;      /* counter increase between the window's samples */
    unsigned resets; /* counter resets between them */
    double mean, m2, min, max, sum;
} wsum;

static inline __attribute__((always_inline)) void window_sum(const pm__wring *r, unsigned what,
                                                             wwin *v, wsum *o)
{
    window_of(r, v);
    memset(o, 0, sizeof *o);
    o->oldest = o->newest = -1;
    const wcols *c = &v->c;
    uint32_t s = v->s0;
    for (int64_t k = v->first; k <= v->last; k++, s = next_slot(s, v->nb)) {
        if (!live_at(v, s, k)) continue;
        const wcnt *cb = &c->cnt[s];
        if (o->oldest < 0) {
            o->oldest = s;
            if (what & W_INC) o->inc = c->cold[s].inc_within;
            if (what & W_RS) o->resets = cb->rs_within;
            if (what & (W_MEAN | W_M2)) o->mean = c->mean[s];
            if (what & W_M2) o->m2 = c->cold[s].m2;
            if (what & W_MIN) o->min = c->min[s];
            if (what & W_MAX) o->max = c->max[s];
        } else {
            if (what & W_INC) o->inc += c->step[s];
            if (what & W_RS) o->resets += cb->rs_in + cb->rs_within;
            if (what & (W_MEAN | W_M2)) {
                /* Chan et al.: merge two (n, mean, M2) */
                double na = (double)o->n, nb = cb->n, n = na + nb, d = c->mean[s] - o->mean;
                o->mean += d * nb / n;
                if (what & W_M2) o->m2 += c->cold[s].m2 + d * d * na * nb / n;
            }
            if ((what & W_MIN) && c->min[s] < o->min) o->min = c->min[s];
            if ((what & W_MAX) && c->max[s] > o->max) o->max = c->max[s];
        }
        if (what & W_SUM) o->sum += c->cold[s].sv;
        o->n += cb->n;
        o->newest = s;
        o->newest_k = k;
    }
}

/* Prometheus' extrapolatedRate over the window's samples. */
static pm_status_t extrapolated(const pm__wring *r, const wwin *v, const wsum *ws, bool counter,
                                bool rate, double *out)
{
    if (ws->n < 2) return PM_ENOENT;
    int64_t now = r->w->now;
    const wend *old = &v->c.end[ws->oldest], *last = &v->c.end[ws->newest];
    int64_t t1 = old->t0, tn = last->t1;
    double v1 = old->v0;
    double result = counter ? ws->inc : last->v1 - v1;
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
    int64_t now = r->w->now;
    wwin v;
    window_of(r, &v);
    double n = 0, st = 0, stt = 0, stv = 0, sv = 0;
    uint32_t s = v.s0;
    for (int64_t k = v.first; k <= v.last; k++, s = next_slot(s, v.nb)) {
        if (!live_at(&v, s, k)) continue;
        const wcold *b = &v.c.cold[s];
        /* re-centre the bucket's dt on now: t' = dt + c */
        double c = (double)(k * r->width_ns - now) * NS, bn = v.c.cnt[s].n;
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
    if (ws->oldest < 0 || !cur || ws->newest_k != r->newest) return PM_ENOENT;
    const wh_copy *old = h->hc[ws->oldest];
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

static pm_status_t eval_hist(const pm__wring *r, pm__afn fn, double param, double *out)
{
    wwin v;
    wsum ws;
    window_sum(r, W_RS, &v, &ws);
    wdist d;
    pm_status_t st = window_dist(r, &ws, &d);
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

static pm_status_t eval_fn(const pm__wring *r, pm__afn fn, double param, double *out)
{
    bool hist = r->hist != NULL;
    if (hist && (fn == PM__FN_QUANTILE_OT || fn == PM__FN_COUNT_OT || fn == PM__FN_SUM_OT ||
                 fn == PM__FN_AVG_OT || fn == PM__FN_MIN_OT || fn == PM__FN_MAX_OT))
        return eval_hist(r, fn, param, out);
    wwin v;
    wsum ws;
    double slope, at_now, sd;
    pm_status_t st;
    switch (fn) {
    case PM__FN_RATE:
    case PM__FN_INCREASE:
        window_sum(r, W_INC, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        return extrapolated(r, &v, &ws, true, fn == PM__FN_RATE, out);
    case PM__FN_DELTA:
        window_sum(r, 0, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        return extrapolated(r, &v, &ws, false, false, out);
    case PM__FN_AVG_OT:
        window_sum(r, W_MEAN, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        *out = ws.mean;
        return PM_OK;
    case PM__FN_MIN_OT:
        window_sum(r, W_MIN, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        *out = ws.min;
        return PM_OK;
    case PM__FN_MAX_OT:
        window_sum(r, W_MAX, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        *out = ws.max;
        return PM_OK;
    case PM__FN_SUM_OT:
        window_sum(r, W_SUM, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        *out = ws.sum;
        return PM_OK;
    case PM__FN_COUNT_OT:
        window_sum(r, 0, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        *out = (double)ws.n;
        return PM_OK;
    case PM__FN_LAST_OT:
        window_sum(r, 0, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        *out = v.c.end[ws.newest].v1;
        return PM_OK;
    case PM__FN_STDDEV_OT:
    case PM__FN_ZSCORE:
        window_sum(r, W_MEAN | W_M2, &v, &ws);
        if (ws.n == 0) return PM_ENOENT;
        if (fn == PM__FN_STDDEV_OT) {
            *out = sqrt(fmax(0, ws.m2 / (double)ws.n));
            return PM_OK;
        }
        if (ws.n < 2) return PM_ENOENT;
        sd = sqrt(fmax(0, ws.m2 / (double)ws.n));
        if (!(sd > 0)) return PM_ENOENT;
        *out = (v.c.end[ws.newest].v1 - ws.mean) / sd;
        return PM_OK;
    case PM__FN_SLOPE:
    case PM__FN_PREDICT_LINEAR:
        /* an empty window has n = 0 < 2: PM_ENOENT from the regression */
        if ((st = regression(r, &slope, &at_now)) != PM_OK) return st;
        *out = fn == PM__FN_SLOPE ? slope : at_now + slope * param;
        return PM_OK;
    default: return PM_EINVAL;
    }
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
    pm__wring *m = ring_mut(r);
    if (m->memo_fn == (uint8_t)fn && m->memo_tick == r->w->tick &&
        pm__d2u(m->memo_param) == pm__d2u(param)) {
        *out = m->memo_val;
        return (pm_status_t)m->memo_st;
    }
    if (m->last_fn != (uint8_t)fn && r->newest != NO_BUCKET) { /* not asked for by a push */
        wcols c = cols_of(r);
        /* a hint: the window of a ring sampled now starts after its newest bucket */
        prefetch_for(r, &c, fn, next_slot(r->newest_slot, r->nb));
    }
    pm_status_t st = eval_fn(r, fn, param, out);
    m->memo_fn = m->last_fn = (uint8_t)fn;
    m->memo_st = (int8_t)st;
    m->memo_tick = r->w->tick;
    m->memo_param = param;
    m->memo_val = *out;
    return st;
}
