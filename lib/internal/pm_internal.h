/* Private definitions shared by lib/ files. Never installed.
 *
 * Layout of live state (see doc/concepts.md):
 *  - counters: stripe-major arenas. A chunk holds PM_CHUNK_SLOTS slots for each
 *    of K stripes; a series owns one slot in every stripe, so threads on
 *    different stripes never share a cache line, and a series costs K*16 B.
 *  - gauges: one 8-byte cell in the series (a set has last-writer semantics,
 *    which stripes cannot give).
 *  - histograms: sparse generations of (bucket key -> count) cells, one per
 *    recording stripe and one per attached thread, grown by maintenance
 *    (design in lib/histogram.c).
 *  - series tables: open addressing, read without locks (RCU-style: writers
 *    under the registry lock copy-and-publish, readers load one pointer);
 *    memory retired by writers is freed after a grace period (readers counted
 *    per stripe in two phases). */
#ifndef PM_INTERNAL_H
#define PM_INTERNAL_H

#include "pm_config.h"
#include <perfmetrics/perfmetrics.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#define PM_LIKELY(x) __builtin_expect(!!(x), 1)
#define PM_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define PM_CACHELINE 64
#define PM_MAX_STRIPES 64
#define PM_MAX_LABELS 32
#define PM_CHUNK_SLOTS 256
#define PM_MAX_NAME 256
#define PM_MAX_HELP 4096
#define PM_MAX_LABEL_VALUE 4096
#define PM_MAX_BOUNDS 256
#define PM_HIST_SHIFT 46 /* 52 mantissa bits - 6: 64 sub-buckets per octave */
#define PM_TLS __attribute__((tls_model("initial-exec"))) _Thread_local

/* ------------------------------------------------------------ allocation */
typedef struct pm_alloc {
    pm_alloc_fn alloc;
    pm_free_fn free;
    void *user;
} pm_alloc_t;

void *pm__alloc(const pm_alloc_t *a, size_t n);
void *pm__calloc(const pm_alloc_t *a, size_t n);
void pm__free(const pm_alloc_t *a, void *p);
/* 64-byte aligned, zeroed. */
void *pm__alloc_aligned(const pm_alloc_t *a, size_t n);
void pm__free_aligned(const pm_alloc_t *a, void *p);
char *pm__strdup(const pm_alloc_t *a, const char *s);
extern const pm_alloc_t pm__default_alloc;

/* ------------------------------------------------------------ validation */
bool pm__valid_metric_name(const char *s);
bool pm__valid_label_name(const char *s);
bool pm__valid_unit(const char *s);
bool pm__valid_utf8(const char *s, size_t len);
bool pm__names_clash(pm_type_t t1, const char *n1, pm_type_t t2, const char *n2);
/* Calls probe(ctx, n2) for every name n2 a family clashing with a `type`
 * family called `name` could have (name + a == n2 + b for sample suffixes a
 * of type and b of any type), until probe returns true; returns that. */
bool pm__names_clash_probe(pm_type_t type, const char *name,
                           bool (*probe)(void *ctx, const char *n2), void *ctx);

/* ------------------------------------------------------------ bit casts */
static inline uint64_t pm__d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}
static inline double pm__u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

/* The smallest power of two >= v (1 for 0). */
static inline size_t pm__pow2_at_least(size_t v)
{
    size_t p = 1;
    while (p < v) p <<= 1;
    return p;
}

/* ------------------------------------------------------------ stripes */
/* The CPU count rounded up to a power of two, in [2, PM_MAX_STRIPES]:
 * the registries' default stripe count and the tracers' ring count. */
unsigned pm__default_stripes(void);
extern PM_TLS unsigned pm__tls_stripe; /* 0 = unassigned, else sequence + 1 */
unsigned pm__stripe_assign(void) __attribute__((cold, noinline));
static inline unsigned pm__stripe(unsigned mask)
{
    unsigned s = pm__tls_stripe;
    if (PM_UNLIKELY(s == 0)) s = pm__stripe_assign();
    return (s - 1) & mask;
}

/* ------------------------------------------------------------ per-thread shards */
typedef struct pm_counter_cell pm_counter_cell;
/* A thread's own counter cells for one registry: dir[chunk][slot % CHUNK].
 * Only the owner writes the cells; snapshots read them under the registry
 * lock. Directories replaced on growth are kept until the shard is freed,
 * because the owner reads the directory without any lock. */
typedef struct pm_hgen pm_hgen;
#define PM_SHARD_REQS 64 /* histogram requests an owner can queue between maintenance passes */
typedef struct pm_shard {
    struct pm_registry *reg; /* NULL once the registry is gone (orphan) */
    _Atomic(pm_counter_cell **) dir;
    size_t dircap, nchunks;
    struct pm_shard *next;  /* registry list */
    void *old_dirs;         /* retired directories (singly linked through word 0) */
    /* Histograms: the owner's generation for each histogram slot,
     * hdir[slot / PM_CHUNK_SLOTS][slot % PM_CHUNK_SLOTS]: NULL, PM_HGEN_WANTED
     * or a generation only the owner writes (lib/histogram.c). Grown like dir. */
    _Atomic(_Atomic(pm_hgen *) **) hdir;
    size_t hdircap, hnchunks;
    void *old_hdirs;
    /* Slots whose generation needs maintenance (a first one, or a bigger
     * one): a ring the owner appends to and maintenance drains; when it is
     * full the owner sets req_lost and maintenance scans every slot. */
    _Atomic uint32_t req[PM_SHARD_REQS];
    _Atomic uint32_t req_head, req_tail;
    _Atomic uint32_t req_lost;
    /* Generations maintenance swapped in that still hold an older one, until
     * the owner has seen them (r->lock). */
    struct pm_hack *acks;
    size_t nacks, capacks;
} pm_shard;
extern PM_TLS pm_shard *pm__tls_shard;

/* ------------------------------------------------------------ deferred free */
typedef struct pm_registry pm_registry;
typedef struct pm_retired {
    struct pm_retired *next;
    void (*free_fn)(pm_registry *r, struct pm_retired *node);
} pm_retired;

typedef struct pm_reader_cell {
    _Atomic uint64_t n;
    char pad[PM_CACHELINE - sizeof(uint64_t)];
} pm_reader_cell;

/* ------------------------------------------------------------ histograms */
/* The design, its byte formula and its invariants: lib/histogram.c. */
typedef struct pm_hpool pm_hpool;
typedef struct pm_hist_layout {
    double lowest, highest;
    uint64_t lo_key;  /* bits(lowest) >> PM_HIST_SHIFT */
    uint32_t nb;      /* fine buckets in range; index 0 underflow, nb+1 overflow */
    uint32_t nbounds; /* exported bounds */
    uint32_t nkeys;   /* cell keys: nb + 2 fine buckets, then one per bound */
    double *bounds;
    uint32_t *bidx;    /* fine index holding each bound */
    uint16_t *straddle; /* per fine index: first bound index + 1 that lies in it, or 0 */
    pm_hpool *pool;     /* spare dense generations of nkeys cells (registry-owned) */
} pm_hist_layout;

/* A generation: a table of cells, key -> count. Sparse (open addressing on
 * keys + 1, 0 = empty, cap a power of two) or dense (keys == NULL, cell i is
 * key i, cap = nkeys). Written lock-free by recorders: with atomic
 * read-modify-writes when shared by a stripe's threads, with plain
 * load+store when single (one attached thread). `prev` chains older
 * generations of the same owner whose counts still count. */
#define PM_HG_SUMS 8 /* single writers: 8 sum words, chosen by key, so no FP add chain per record */
struct pm_hgen {
    _Atomic uint64_t *cnt;   /* cap counts */
    _Atomic uint16_t *keys;  /* sparse: cap keys + 1; NULL when dense */
    _Atomic uint64_t *sumw;  /* shared: the sum word of the chain's first generation, so a
                              * stripe keeps one running sum whatever its tables */
    pm_hgen *prev;
    uint32_t cap;
    uint32_t limit;          /* sparse: inserts stop at used == limit (7/8 full) */
    uint32_t want_at;        /* sparse: the insert reaching it asks for growth (3/4) */
    _Atomic uint32_t used;   /* sparse: keys inserted */
    _Atomic uint8_t fresh;   /* single: swapped in by maintenance, unseen by the owner */
    _Atomic uint8_t want;    /* growth asked for */
    uint8_t shift;           /* sparse: 32 - log2(cap) */
    uint8_t single;          /* one writer */
    uint8_t nsum;            /* sum words: PM_HG_SUMS when single, else 1 */
    _Atomic uint64_t sum[];  /* bits of doubles */
};
#define PM_HGEN_WANTED ((pm_hgen *)(uintptr_t)1) /* attached: a first generation is asked for */

/* A generation of a shard that maintenance replaced while its owner was
 * recording into it: `gen` holds it in prev until the owner's next record
 * (r->lock). */
typedef struct pm_hack {
    uint32_t slot;
    pm_hgen *gen;
} pm_hack;

/* Spare dense generations for one key count, which recorders whose table is
 * full take without allocating (lib/histogram.c). Registry-owned, r->lock
 * except the slots. */
#define PM_HPOOL_SLOTS 8
struct pm_hpool {
    pm_hpool *next;
    uint32_t nkeys;
    size_t series; /* live series with this key count */
    _Atomic(pm_hgen *) slot[PM_HPOOL_SLOTS];
};

static inline uint32_t pm__hist_index(const pm_hist_layout *L, double v)
{
    if (!(v >= L->lowest)) return 0; /* below range, negative, -Inf */
    uint64_t k = (pm__d2u(v) >> PM_HIST_SHIFT) - L->lo_key;
    return k >= L->nb ? L->nb + 1 : (uint32_t)k + 1;
}
double pm__hist_bucket_value(const pm_hist_layout *L, uint32_t idx, double min, double max);
/* The cell key of v: its fine index, or nb + 2 + k when v <= bounds[k] lies
 * in bound k's straddled fine bucket (the first such k). */
static inline uint32_t pm__hist_key(const pm_hist_layout *L, double v)
{
    uint32_t idx = pm__hist_index(L, v);
    uint32_t k1 = L->straddle[idx];
    if (PM_UNLIKELY(k1 != 0)) {
        for (uint32_t k = k1 - 1; k < L->nbounds && L->bidx[k] == idx; k++)
            if (v <= L->bounds[k]) return L->nb + 2 + k;
    }
    return idx;
}

struct pm_hdata {
    pm_alloc_t a;
    int borrowed; /* arrays live in a snapshot */
    double lowest, highest;
    uint64_t lo_key;
    uint32_t nb;
    uint64_t count;
    double sum, min, max;
    uint32_t n, cap; /* sparse non-zero fine buckets, sorted by idx */
    uint32_t *idx;
    uint64_t *cnt;
};
pm_status_t pm__hist_layout_init(const pm_alloc_t *a, pm_hist_layout *L, double lowest,
                                 double highest, const double *bounds, size_t nbounds);
void pm__hist_layout_free(const pm_alloc_t *a, pm_hist_layout *L);
pm_status_t pm__hdata_quantile_raw(double lowest, uint64_t lo_key, uint32_t nb, uint64_t count,
                                   double min, double max, const uint32_t *idx,
                                   const uint64_t *cnt, uint32_t n, double q, double *out);

/* ------------------------------------------------------------ series */
typedef struct pm_series pm_series;
typedef struct pm_family pm_family;

struct pm_counter_cell {
    _Atomic uint64_t n;    /* integer adds */
    _Atomic uint64_t dbits; /* double adds (bits of a double) */
};

/* A series is one allocation: this struct, then (histograms only) a
 * pm_hist_ext with one generation pointer per stripe and nbounds + 1 coarse
 * cells, then the label-value pointers and their strings. Kept to 96 bytes:
 * every field here is paid per series. */
struct pm_series {
    /* hot, read-only after creation */
    union {
        pm_counter_cell *cells; /* counter: stripe 0 cell; stripe s at +s*PM_CHUNK_SLOTS */
        const pm_hist_layout *hl;
    } h;
    uint32_t slot; /* counter slot; gauges: 1 once a cell block bound it (atomic access) */
    uint8_t mask;  /* stripe mask */
    uint8_t type;
    uint8_t overflow : 1, permanent : 1, linked : 1, bound : 1; /* registry lock; bound: by a cell block */
    _Atomic uint8_t gtouched;                       /* gauge written since last snapshot */
    struct pm_registry *reg;
    _Atomic uint64_t gbits; /* gauge cell */
    /* cold */
    pm_family *fam;
    double created;          /* wall seconds */
    uint64_t last_change_ns; /* TTL bookkeeping (snapshot side) */
    double last_value;       /* value, or count for histograms, at the last look */
    pm_series *prev, *next;  /* family or detached list; retire list (next) */
    uint32_t hash;
    _Atomic uint32_t refs; /* 1 for the table link while linked, +1 per handle */
};

typedef struct pm_hist_ext {
    _Atomic uint64_t min, max;  /* bits of doubles, shared: written only by new extremes */
    _Atomic uint64_t want_mask; /* stripes asking for a first or a bigger generation */
    _Atomic uint32_t want_pending;
    uint32_t hslot;             /* index into the attached threads' generation directories */
    pm_series *want_next;
    pm_hgen *acc;               /* folded generations (exited threads, replaced ones): r->lock */
    _Atomic(pm_hgen *) units[]; /* per stripe; stripe 0's from creation. Then coarse[] */
} pm_hist_ext;

static inline pm_hist_ext *pm__hist_ext(const pm_series *s)
{
    return (pm_hist_ext *)(void *)((char *)(uintptr_t)s + sizeof(pm_series));
}

/* Bytes of a histogram series' extension: units, then nbounds + 1 coarse cells. */
static inline size_t pm__hist_ext_bytes(unsigned stripes, uint32_t nbounds)
{
    return sizeof(pm_hist_ext) + (size_t)stripes * sizeof(pm_hgen *) +
           ((size_t)nbounds + 1) * sizeof(uint64_t);
}

/* Values recorded while every table of their stripe was full and no spare
 * generation was left, counted per export bucket (k: v <= bounds[k] and
 * > bounds[k-1]; nbounds: above the last bound), so counts stay exact. */
static inline _Atomic uint64_t *pm__hist_coarse(const pm_series *s)
{
    return (_Atomic uint64_t *)(void *)&pm__hist_ext(s)->units[(size_t)s->mask + 1];
}

static inline const char *const *pm__series_values(const pm_series *s)
{
    size_t off = sizeof(pm_series);
    if (s->type == PM_TYPE_HISTOGRAM) off += pm__hist_ext_bytes(s->mask + 1u, s->h.hl->nbounds);
    return (const char *const *)(const void *)((const char *)s + off);
}

/* ------------------------------------------------------------ families */
typedef struct pm_table {
    pm_retired retired;
    size_t cap;  /* power of two */
    size_t used; /* live + tombstones */
    _Atomic(pm_series *) slots[];
} pm_table;
#define PM_TOMB ((pm_series *)(uintptr_t)1)

struct pm_family {
    pm_registry *reg;
    pm_type_t type;
    char *name, *help, *unit;
    size_t nlabels;
    char **labels;
    size_t max_series;
    double ttl;
    int exemplars; /* series carry exemplar slots (lib/exemplar.c); fixed at registration */
    pm_hist_layout hl;
    pm_gauge_fn cb;
    void *cb_user;
    _Atomic(pm_table *) table;
    size_t nseries; /* linked, overflow excluded */
    pm_series *head, *tail;
    pm_series *detached; /* unlinked, still referenced by handles (singly linked via next) */
    pm_series *overflow;
    _Atomic uint64_t refused, removed, rejected;
    _Atomic uint64_t coarse; /* histogram values kept at export-bucket resolution */
};

/* ------------------------------------------------------------ registry */
/* A named callback with user data: the shape collectors, exporters and span
 * exporters share (lib/callback.c). fn is cast back to its real type to call;
 * r is set by registry-owned lists. */
typedef struct pm_cb_entry {
    struct pm_cb_entry *next;
    pm_registry *r;
    char *name;
    void (*fn)(void);
    void *user;
    pm_release_fn release;
    uint64_t runs, failures;         /* under the list's lock */
    uint64_t runs_new, failures_new; /* collectors: this snapshot's, kept if it succeeds */
} pm_cb_entry;

/* pm_family_new for the library's own families: allows the reserved
 * perfmetrics_ prefix (family.c). */
pm_status_t pm__family_new_reserved(pm_registry_t *r, pm_type_t type, const char *name,
                                    const char *help, const pm_family_opts_t *opts,
                                    pm_family_t **out);
/* pm_emit_family for the library's own collectors: allows the reserved
 * perfmetrics_ prefix (collector.c). */
pm_status_t pm__emit_family_reserved(pm_emit_t *e, pm_type_t type, const char *name,
                                     const char *help, const char *const *label_names,
                                     size_t n_labels);
extern PM_TLS int pm__in_callback; /* inside a collector, exporter or gauge callback */
/* Adds a uniquely named entry under `lock`, allocated with a; `refuse` (the
 * caller's "called from a callback that holds this lock") gives PM_ESTATE.
 * On any failure calls release(user). */
pm_status_t pm__cb_add(const pm_alloc_t *a, pthread_mutex_t *lock, pm_cb_entry **head,
                       const char *name, void (*fn)(void), void *user, pm_release_fn release,
                       bool refuse, pm_cb_entry **out);
void pm__cb_unlink(pm_cb_entry **head, pm_cb_entry *e); /* under the list's lock */
void pm__cb_free(const pm_alloc_t *a, pm_cb_entry *e);  /* calls release */
void pm__cb_free_all(const pm_alloc_t *a, pm_cb_entry **head);

struct pm_registry {
    pm_alloc_t a;
    unsigned stripes, mask;
    int self_metrics;
    pm_clock_fn clock;
    void *clock_user;
    pthread_mutex_t lock; /* registration, removal, table writes, maintenance */
    pm_family **fams;
    size_t nfam, capfam;
    pm_family **fam_index; /* by name, open addressing (registry.c); under lock */
    size_t fam_index_cap;
    /* counter arena */
    pm_shard *shards; /* attached threads */
    struct pm_cells *cells; /* cell blocks (lib/cells.c), attached mirrors included */
    struct pm_cells_attach *attaches; /* lib/cells_attach.c; under snap_lock */
    unsigned char **chunks;
    size_t nchunks, capchunks;
    uint32_t *free_slots;
    size_t nfree, capfree;
    uint32_t next_slot;
    /* grace periods */
    pm_reader_cell *readers; /* [2][stripes] */
    _Atomic unsigned phase;
    pm_retired *pending, *waiting;     /* tables */
    pm_series *pending_s, *waiting_s;  /* series, linked through next */
    unsigned drained;
    /* histograms: generation requests of stripes, histogram slots (index
     * into the shards' directories), spare dense generations */
    _Atomic(pm_series *) want_head;
    pm_series **hseries; /* by histogram slot */
    uint32_t *hfree;
    size_t nhfree, hcap, hnchunks;
    uint32_t next_hslot;
    pm_hpool *hpools;
    _Atomic(pm_hgen *) hspare; /* taken from a pool but not installed: freed by maintenance */
    /* snapshots and collectors */
    pthread_mutex_t snap_lock;
    struct pm_arena_pool *arena_pool; /* chunks for the next snapshot (lib/arena.c) */
    uint64_t snapshots;
    double last_snapshot_seconds;
    pm_cb_entry *collectors;
    /* exporters */
    pthread_mutex_t ex_lock;  /* exporter list */
    pthread_mutex_t run_lock; /* serialises export runs */
    pm_cb_entry *exporters;
    _Atomic uint64_t export_errors; /* export runs that got no snapshot */
    double interval;
    uint64_t last_tick_ns;
    int tick_started;
    pthread_t thread;
    int thread_running, thread_stop;
    pthread_mutex_t th_lock;
    pthread_cond_t th_cond;
};

/* Reader sections for lock-free look-ups. */
static inline unsigned pm__read_enter(pm_registry *r)
{
    unsigned st = pm__stripe(r->mask);
    unsigned p = atomic_load_explicit(&r->phase, memory_order_relaxed) & 1u;
    atomic_fetch_add_explicit(&r->readers[p * r->stripes + st].n, 1, memory_order_seq_cst);
    return p * r->stripes + st;
}
static inline void pm__read_exit(pm_registry *r, unsigned tok)
{
    atomic_fetch_sub_explicit(&r->readers[tok].n, 1, memory_order_release);
}

/* The registry's clock (TTL, snapshot timing). */
uint64_t pm__reg_now(const pm_registry *r);

/* Under r->lock. */
void pm__retire(pm_registry *r, pm_retired *node);
void pm__retire_series(pm_registry *r, pm_series *s);
void pm__maintain_locked(pm_registry *r);
pm_status_t pm__counter_slot_alloc(pm_registry *r, uint32_t *slot, pm_counter_cell **cell);
void pm__counter_slot_free(pm_registry *r, uint32_t slot);
/* thread.c: under r->lock. */
pm_status_t pm__shards_add_chunk(pm_registry *r, size_t ci);
void pm__shards_zero_slot(pm_registry *r, uint32_t slot);
void pm__shards_read(const pm_registry *r, uint32_t slot, uint64_t *n, double *d);
void pm__shards_orphan(pm_registry *r);
pm_family *pm__find_family_locked(pm_registry *r, const char *name);
/* The family name index (registry.c), under r->lock: reserve room for nfam
 * families first (the only step that can fail), then add; after removing a
 * family from r->fams, drop it with pm__family_index_forget. */
pm_status_t pm__family_index_reserve(pm_registry *r, size_t nfam);
void pm__family_index_add(pm_registry *r, pm_family *f);
void pm__family_index_forget(pm_registry *r);

/* family.c */
uint32_t pm__hash_values(const char *const *values, size_t n);
/* Gets a series with a new reference (creating it). */
pm_status_t pm__series_get(pm_family *f, pm_type_t type, const char *const *values, size_t n,
                           pm_series **out);
void pm__series_release(pm_series *s);
pm_status_t pm__unlabeled_new(pm_registry *r, pm_type_t type, const char *name, const char *help,
                              pm_series **out);
/* Lock-free look-up inside a reader section; no reference taken. */
pm_series *pm__series_find(pm_family *f, const char *const *values, size_t n);
pm_status_t pm__check_values(const pm_family *f, pm_type_t type, const char *const *values,
                             size_t n);
void pm__family_free(pm_registry *r, pm_family *f);
void pm__series_free_now(pm_registry *r, pm_series *s);
/* histogram.c: live state. Under r->lock unless said otherwise. */
void pm__hist_want(pm_series *s, unsigned stripe); /* any thread, lock-free */
void pm__hist_grant_wants_locked(pm_registry *r);  /* stripes' requests only */
void pm__hist_maintain_locked(pm_registry *r);     /* everything, pools included */
pm_status_t pm__hist_series_init(pm_registry *r, pm_series *s);
void pm__hist_series_free(pm_registry *r, pm_series *s);
void pm__hist_series_reset(pm_registry *r, pm_series *s);
void pm__hist_pools_free(pm_registry *r);
/* A shard's generations: folded into their series (detach, thread exit) or
 * freed with the registry. */
void pm__hist_shard_fold(pm_registry *r, pm_shard *sh);
void pm__hist_shard_drop(pm_registry *r, pm_shard *sh);
/* Snapshot side: adds every cell of s into fine[nb + 2] and parts[nbounds + 1]
 * (bound parts and coarse cells; fine[] includes them), marking the fine
 * indexes touched in `touched` (a bit per index); returns the sum. */
double pm__hist_collect(const pm_series *s, uint64_t *fine, uint64_t *parts, uint64_t *touched,
                        double *min, double *max);
/* Under r->lock, for cell blocks being freed: n observations of key into s
 * (never fails: a full table takes a spare, else the coarse cell); then
 * their sum and extremes. */
void pm__hist_fold_count(pm_series *s, uint32_t key, uint64_t n);
void pm__hist_fold_extra(pm_series *s, double sum, double min, double max);
/* Under r->lock: the sum a snapshot would report for s (same order of adds). */
double pm__hist_sum_read(const pm_series *s);
/* counter.c: adds v (> 0) into s's stripe 0 (cell blocks being freed). */
void pm__counter_fold(pm_series *s, double v);
/* cells.c, under r->lock, for series marked bound: what the registry's cell
 * blocks hold for s. The histogram reader calls fn (unless NULL) for every
 * key counted, adds the blocks' sums to *sum and lowers *min / raises *max. */
double pm__cells_counter_read(const pm_series *s);
double pm__cells_gauge_read(const pm_series *s);
void pm__cells_hist_read(const pm_series *s, void (*fn)(uint32_t key, uint64_t n, void *ctx),
                         void *ctx, double *sum, double *min, double *max);
/* Registry free: blocks their writers did not free. */
void pm__cells_free_all(pm_registry *r);
/* cells_attach.c, for snapshots of a registry with attachments: under
 * snap_lock, before r->lock (finds blocks and bindings, registers series);
 * under r->lock (copies the blocks, folds those whose writer is gone); after
 * r->lock (closes and deletes what was folded). Then registry free. */
pm_status_t pm__cells_attach_scan(pm_registry *r);
pm_status_t pm__cells_attach_copy_locked(pm_registry *r);
void pm__cells_attach_settle(pm_registry *r);
void pm__cells_attach_free_all(pm_registry *r);
/* family.c: the overflow series, created if absent, with a reference. */
pm_status_t pm__series_overflow(pm_family *f, pm_series **out);
/* family.c: drops a reference taken under r->lock (a cell block's). */
void pm__series_unref_locked(pm_registry *r, pm_series *s);
/* registry.c: histogram slots; thread.c: the shards' directories. */
pm_status_t pm__hslot_alloc(pm_registry *r, pm_series *s, uint32_t *slot);
void pm__hslot_free(pm_registry *r, uint32_t slot);
pm_status_t pm__shards_add_hchunk(pm_registry *r, size_t ci);
static inline _Atomic(pm_hgen *) *pm__shard_hentry(const pm_shard *sh, uint32_t slot)
{
    return &atomic_load_explicit(&sh->hdir, memory_order_acquire)[slot / PM_CHUNK_SLOTS]
                                                               [slot % PM_CHUNK_SLOTS];
}
/* Removes a series from its family (under lock). */
void pm__series_unlink_locked(pm_registry *r, pm_series *s);

/* The one-call labeled forms: look the series up inside a reader section
 * (no lock), create it on a miss, record v. The caller has checked the type
 * and the value. `record` is a constant at every call site, so this inlines
 * to a direct call. */
static inline pm_status_t pm__labeled_record(pm_family *f, pm_type_t type,
                                             const char *const *values, size_t n, double v,
                                             void (*record)(pm_series *, double))
{
    if (n != f->nlabels) return PM_ELABELCOUNT;
    if (n && !values) return PM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!values[i]) return PM_EINVAL;
    pm_registry *r = f->reg;
    unsigned tok = pm__read_enter(r);
    pm_series *s = pm__series_find(f, values, n);
    if (PM_LIKELY(s != NULL)) {
        record(s, v);
        pm__read_exit(r, tok);
        return PM_OK;
    }
    pm__read_exit(r, tok);
    pm_status_t st = pm__series_get(f, type, values, n, &s);
    if (st != PM_OK) return st;
    record(s, v);
    pm__series_release(s);
    return PM_OK;
}

/* counter/gauge/histogram readers (snapshot side; counters under r->lock) */
double pm__counter_read(const pm_series *s);
double pm__gauge_read(const pm_series *s);
void pm__note_rejected(pm_series *s);

/* snapshot.c / collector.c / exporter.c */
void pm__collectors_free(pm_registry *r);
void pm__exporters_free(pm_registry *r);

/* timer.c */
void pm__clock_init(void);
double pm__wall_now(void);
/* CLOCK_REALTIME in nanoseconds since the Unix epoch. */
int64_t pm__wall_ns(void);
uint64_t pm__mono_ns(void);
/* `from` plus `secs` seconds, normalised (for timed condition waits). */
struct timespec pm__timespec_after(struct timespec from, double secs);

#endif
