/* Private snapshot structures, shared by snapshot.c, collector.c and exporter.c. */
#ifndef PM_SNAPSHOT_INTERNAL_H
#define PM_SNAPSHOT_INTERNAL_H

#include "pm_internal.h"

#include <perfmetrics/spans.h>

typedef struct pm_arena_pool pm_arena_pool;

typedef struct pm_arena_chunk {
    struct pm_arena_chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} pm_arena_chunk;

/* Histogram-only part of a snapshot series, allocated for histograms only
 * (a snapshot of many counters stays small). */
typedef struct pm_snap_hist {
    uint64_t count;
    double sum, min, max, stddev;
    uint64_t *cum; /* per bound, then +Inf */
    pm_hdata_t hd;
} pm_snap_hist;

/* One exemplar as a snapshot holds it; an all-zero trace id means none. */
typedef struct pm_snap_exemplar {
    pm_trace_context_t ctx;
    double value;
    double time; /* wall seconds */
} pm_snap_exemplar;

struct pm_snap_series {
    const struct pm_snap_family *fam;
    const char **values;
    double created;
    double value;
    pm_snap_hist *h; /* histograms only */
    int overflow;
};

struct pm_snap_family {
    const char *name, *help, *unit;
    pm_type_t type;
    size_t nlabels;
    const char **labels;
    size_t nbounds;
    const double *bounds;
    size_t nseries, capseries;
    pm_snap_series_t *series;
    /* Exemplars by series index (NULL: none), each per export bucket
     * (counters: one); kept beside the series, not in them, so a snapshot of
     * many series without exemplars stays small. NULL when no series has any. */
    pm_snap_exemplar **ex;
    size_t nex;
    /* build-time only */
    pm_gauge_fn cb;
    void *cb_user;
};

struct pm_snapshot {
    pm_alloc_t a;
    _Atomic unsigned refs;
    double time;
    uint64_t mono_ns; /* pm_now_ns() read with time: dates exemplars */
    pm_arena_chunk *chunks;
    pm_arena_chunk *spare; /* chunks drawn from the pool, not used yet */
    size_t nstd;           /* standard-size chunks in use */
    pm_arena_pool *pool;   /* where released chunks go, or NULL */
    size_t nfam, capfam;
    pm_snap_family_t **fams;
};

/* arena.c: a snapshot's arena, and the registry's pool of chunks for the
 * next snapshot (NULL pools are allowed everywhere: no reuse). */
pm_arena_pool *pm__arena_pool_new(const pm_alloc_t *a);
/* The registry is going: the pool keeps nothing more, and goes with the
 * last snapshot holding it. */
void pm__arena_pool_close(pm_arena_pool *p);
/* Before a snapshot is built: it takes the pool's chunks (and a reference). */
void pm__arena_draw(pm_snapshot_t *s, pm_arena_pool *p);
/* After a snapshot is built: the pool keeps as many chunks as it used. */
void pm__arena_built(pm_snapshot_t *s);
/* Frees the arena, giving the pool what it keeps. */
void pm__arena_free(pm_snapshot_t *s);
void *pm__arena_alloc(pm_snapshot_t *s, size_t n);
const char *pm__arena_strdup(pm_snapshot_t *s, const char *str);
pm_snap_family_t *pm__snap_family_add(pm_snapshot_t *s, pm_type_t type, const char *name,
                                      const char *help, const char *unit,
                                      const char *const *labels, size_t nlabels);
pm_snap_series_t *pm__snap_series_add(pm_snapshot_t *s, pm_snap_family_t *f,
                                      const char *const *values, double value);

/* collector.c: runs every collector into s (under r->snap_lock). */
void pm__collectors_run(pm_registry *r, pm_snapshot_t *s);
pm_status_t pm__collectors_self_metrics(pm_registry *r, pm_snapshot_t *s);
/* Keeps (or drops, for a failed snapshot) the run counts of the last run. */
void pm__collectors_settle(pm_registry *r, bool keep);
/* exporter.c */
pm_status_t pm__exporters_self_metrics(pm_registry *r, pm_snapshot_t *s);
/* lib/push.c: perfmetrics_push_* of the push destinations attached to r. */
pm_status_t pm__push_self_metrics(pm_registry *r, pm_snapshot_t *s);

#endif
