/* libperfmetrics benchmarks — the harness shared by bench/bench_*.c.
 *
 * Method (doc/performance.md):
 *   - a persistent pool of two worker threads, pinned to CPUs 0 and 1 (best
 *     effort), runs every case; a 1-thread case runs on worker 0 only, so the
 *     library sees the same recording threads all along;
 *   - the workers of a case meet at a barrier, then spin on a shared counter
 *     so they start within a cache-line round trip of each other; each takes
 *     its own start and end stamp, and wall = last end - first start;
 *   - per-thread cost = wall * threads / total ops (= wall / ops per thread);
 *   - the op count of a repetition is calibrated to last BENCH_REP_MS
 *     (default 50 ms); the figure reported is the median of BENCH_REPS
 *     repetitions (default 9, never fewer than 7);
 *   - the repetitions of all cases of a program are interleaved (round r
 *     runs repetition r of every case), so drifting machine load touches
 *     every case alike.
 * Every figure printed is measured in the running process; nothing is quoted
 * from elsewhere except where a row says "PEERS.md" explicitly. */
#ifndef PM_BENCH_COMMON_H
#define PM_BENCH_COMMON_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h> /* program_invocation_short_name */
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <perfmetrics/perfmetrics.h>

#define BENCH_MAX_THREADS 2
#define BENCH_LINE 64

/* Keeps the compiler from moving or dropping memory accesses across it. */
#define BENCH_CLOBBER() __asm__ __volatile__("" ::: "memory")

static inline uint64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void bench_die(const char *what, int status)
{
    fprintf(stderr, "bench: %s failed (status %d)\n", what, status);
    exit(1);
}

/* Exits (status 1) unless a library call returned PM_OK: a bench whose
 * set-up failed measures nothing. */
static inline void bench_check(pm_status_t st, const char *what)
{
    if (st != PM_OK) {
        fprintf(stderr, "%s: %s: %s (%s)\n", program_invocation_short_name, what,
                pm_status_name(st), pm_strerror(st));
        exit(1);
    }
}

/* ------------------------------------------------------------ settings */

static inline unsigned bench_env_uint(const char *name, unsigned dflt, unsigned min)
{
    const char *s = getenv(name);
    if (s == NULL || *s == '\0')
        return dflt;
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (end == s || *end != '\0' || v > 1000000ul)
        return dflt;
    return (unsigned)v < min ? min : (unsigned)v;
}

static inline unsigned bench_reps(void) { return bench_env_uint("BENCH_REPS", 9, 7); }
static inline unsigned bench_rep_ms(void) { return bench_env_uint("BENCH_REP_MS", 50, 5); }

/* ------------------------------------------------------------ statistics */

static inline int bench_cmp_double_(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v). */
static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double_);
    return (n % 2) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

/* ------------------------------------------------------------ pinning */

static inline void bench_pin_self(unsigned cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    /* Best effort: a container may forbid it or have fewer CPUs. */
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* ------------------------------------------------------------ worker pool */

/* A case body: run `n` operations as thread `tid` of the case. */
typedef void (*bench_body_fn)(void *ctx, unsigned tid, uint64_t n);

typedef struct bench_pool bench_pool_t;

typedef struct bench_worker_arg_ {
    bench_pool_t *pool;
    unsigned tid;
} bench_worker_arg_t;

struct bench_pool {
    pthread_t th[BENCH_MAX_THREADS];
    bench_worker_arg_t args[BENCH_MAX_THREADS];
    pthread_barrier_t start, done;
    /* job, written by the main thread before `start` */
    bench_body_fn fn;
    void *ctx;
    unsigned active;
    uint64_t n;
    int quit;
    _Alignas(BENCH_LINE) atomic_uint ready;
    _Alignas(BENCH_LINE) uint64_t t0[BENCH_MAX_THREADS], t1[BENCH_MAX_THREADS];
};

static inline void *bench_worker_(void *p)
{
    bench_worker_arg_t *a = p;
    bench_pool_t *pool = a->pool;
    unsigned tid = a->tid;
    bench_pin_self(tid);
    for (;;) {
        pthread_barrier_wait(&pool->start);
        if (pool->quit)
            return NULL;
        if (tid < pool->active) {
            /* Spin until every active worker is here: starts line up. */
            atomic_fetch_add_explicit(&pool->ready, 1, memory_order_acq_rel);
            while (atomic_load_explicit(&pool->ready, memory_order_acquire) < pool->active) {
            }
            uint64_t t0 = bench_now();
            pool->fn(pool->ctx, tid, pool->n);
            uint64_t t1 = bench_now();
            pool->t0[tid] = t0;
            pool->t1[tid] = t1;
        }
        pthread_barrier_wait(&pool->done);
    }
}

static inline void bench_pool_start(bench_pool_t *pool)
{
    memset(pool, 0, sizeof *pool);
    atomic_init(&pool->ready, 0);
    if (pthread_barrier_init(&pool->start, NULL, BENCH_MAX_THREADS + 1) != 0 ||
        pthread_barrier_init(&pool->done, NULL, BENCH_MAX_THREADS + 1) != 0)
        bench_die("pthread_barrier_init", -1);
    for (unsigned i = 0; i < BENCH_MAX_THREADS; i++) {
        pool->args[i].pool = pool;
        pool->args[i].tid = i;
        if (pthread_create(&pool->th[i], NULL, bench_worker_, &pool->args[i]) != 0)
            bench_die("pthread_create", -1);
    }
}

static inline void bench_pool_stop(bench_pool_t *pool)
{
    pool->quit = 1;
    pthread_barrier_wait(&pool->start);
    for (unsigned i = 0; i < BENCH_MAX_THREADS; i++)
        pthread_join(pool->th[i], NULL);
    pthread_barrier_destroy(&pool->start);
    pthread_barrier_destroy(&pool->done);
}

/* Runs fn on `threads` workers, n ops each; returns the wall time in ns
 * (first start to last end). */
static inline uint64_t bench_pool_run(bench_pool_t *pool, bench_body_fn fn, void *ctx,
                                      unsigned threads, uint64_t n)
{
    pool->fn = fn;
    pool->ctx = ctx;
    pool->active = threads;
    pool->n = n;
    atomic_store(&pool->ready, 0);
    pthread_barrier_wait(&pool->start);
    pthread_barrier_wait(&pool->done);
    uint64_t first = UINT64_MAX, last = 0;
    for (unsigned i = 0; i < threads; i++) {
        if (pool->t0[i] < first)
            first = pool->t0[i];
        if (pool->t1[i] > last)
            last = pool->t1[i];
    }
    return last > first ? last - first : 1;
}

/* One case of an interleaved set (see bench_measure_all). */
typedef struct bench_case {
    const char *name;
    unsigned threads;
    bench_body_fn fn;
    void *ctx;
    int skip;      /* set by the caller: not measured, ns stays NaN */
    uint64_t n;    /* ops per thread per repetition (calibrated) */
    uint64_t ops;  /* ops per thread run in total, calibration included */
    double ns;     /* result: median per-thread ns/op */
} bench_case_t;

/* Calibrates one case: grows n until a run takes >= 2 ms, then scales it so
 * a repetition lasts bench_rep_ms(). */
static inline void bench_calibrate(bench_pool_t *pool, bench_case_t *c)
{
    uint64_t n = 1u << 12, wall;
    for (;;) {
        wall = bench_pool_run(pool, c->fn, c->ctx, c->threads, n);
        c->ops += n;
        if (wall >= 2000000u || n >= (1ull << 34))
            break;
        n *= 4;
    }
    double per_op = (double)wall / (double)n;
    double target = (double)bench_rep_ms() * 1e6;
    c->n = (uint64_t)(target / (per_op > 0.01 ? per_op : 0.01));
    if (c->n < 1000)
        c->n = 1000;
}

/* Measures every case not marked skip: all are calibrated first, then the
 * repetitions are interleaved (round r runs repetition r of every case), so
 * a slow drift in machine load touches all cases alike and ratios between
 * them stay fair. Each case's result is the median per-thread ns/op
 * (wall * threads / total ops) of its repetitions. */
static inline void bench_measure_all(bench_pool_t *pool, bench_case_t *cs, size_t ncases)
{
    unsigned reps = bench_reps();
    if (reps > 64)
        reps = 64;
    double(*v)[64] = calloc(ncases ? ncases : 1, sizeof *v);
    if (v == NULL)
        bench_die("calloc", -2);
    for (size_t i = 0; i < ncases; i++) {
        cs[i].ns = NAN;
        cs[i].ops = 0;
        if (!cs[i].skip)
            bench_calibrate(pool, &cs[i]);
    }
    for (unsigned r = 0; r < reps; r++) {
        for (size_t i = 0; i < ncases; i++) {
            if (cs[i].skip)
                continue;
            uint64_t wall = bench_pool_run(pool, cs[i].fn, cs[i].ctx, cs[i].threads, cs[i].n);
            cs[i].ops += cs[i].n;
            v[i][r] = (double)wall / (double)cs[i].n;
        }
    }
    for (size_t i = 0; i < ncases; i++)
        if (!cs[i].skip)
            cs[i].ns = bench_median(v[i], reps);
    free(v);
}

/* Runs fn(ctx) over and over, at least once, until `span` ns have passed on
 * the calling thread; returns the mean ns of one call (one repetition of a
 * case timed on the main thread). */
static inline double bench_repeat_for(uint64_t span, void (*fn)(void *), void *ctx)
{
    uint64_t t0 = bench_now(), t1, k = 0;
    do {
        fn(ctx);
        k++;
        t1 = bench_now();
    } while (t1 - t0 < span);
    return (double)(t1 - t0) / (double)k;
}

/* ------------------------------------------------------------ the 10,000-series registry */

/* The PEERS.md set-up that bench_exposition formats and bench_server serves:
 * BENCH_NFAM counter families bench_family_000.. ("Benchmark family <f>.")
 * with one label, each with BENCH_NVAL series label="value_000"..; series
 * (f, v) holds bench_series_value(f, v). The library's own perfmetrics_*
 * families are off, so the registry holds only these series. */
#define BENCH_NFAM 100
#define BENCH_NVAL 100

static inline double bench_series_value(size_t fam, size_t val)
{
    return (double)((fam * 7919 + val * 104729) % 1000003);
}

/* A registry without the library's own perfmetrics_* families, so a
 * bench's output holds only the series it made. */
static inline pm_registry_t *bench_registry(void)
{
    pm_registry_opts_t *ro = NULL;
    pm_registry_t *r = NULL;
    bench_check(pm_registry_opts_new(&ro), "pm_registry_opts_new");
    bench_check(pm_registry_opts_set_self_metrics(ro, 0), "pm_registry_opts_set_self_metrics");
    bench_check(pm_registry_new(ro, &r), "pm_registry_new");
    pm_registry_opts_free(ro);
    return r;
}

/* Registers the set's families in r and calls fn(ctx, family, f, v, values)
 * for each of its series, values being its one label value. */
typedef void (*bench_series_fn)(void *ctx, pm_family_t *fam, size_t f, size_t v,
                                const char *const *values);
static inline void bench_series_each(pm_registry_t *r, bench_series_fn fn, void *ctx)
{
    pm_family_opts_t *fo = NULL;
    const char *lname[1] = {"label"};
    bench_check(pm_family_opts_new(&fo), "pm_family_opts_new");
    bench_check(pm_family_opts_set_labels(fo, lname, 1), "pm_family_opts_set_labels");
    for (size_t f = 0; f < BENCH_NFAM; f++) {
        char name[32], help[48];
        snprintf(name, sizeof name, "bench_family_%03zu", f);
        snprintf(help, sizeof help, "Benchmark family %zu.", f);
        pm_family_t *fam = NULL;
        bench_check(pm_family_new(r, PM_TYPE_COUNTER, name, help, fo, &fam), "pm_family_new");
        for (size_t v = 0; v < BENCH_NVAL; v++) {
            char lv[32];
            snprintf(lv, sizeof lv, "value_%03zu", v);
            const char *vals[1] = {lv};
            fn(ctx, fam, f, v, vals);
        }
    }
    pm_family_opts_free(fo);
}

static inline void bench_series_add_(void *ctx, pm_family_t *fam, size_t f, size_t v,
                                     const char *const *values)
{
    (void)ctx;
    bench_check(pm_counter_add_labeled(fam, values, 1, bench_series_value(f, v)),
                "pm_counter_add_labeled");
}

static inline pm_registry_t *bench_series_registry(void)
{
    pm_registry_t *r = bench_registry();
    bench_series_each(r, bench_series_add_, NULL);
    return r;
}

/* ------------------------------------------------------------ output */

/* Prints one row of the table bench/run shows:
 * | case | threads | ns/op | baseline | ratio | info |
 * ns < 0 prints "-"; base_name NULL prints "-" for baseline and ratio. */
static inline void bench_row(const char *name, unsigned threads, double ns, const char *base_name,
                             double base_ns, const char *fmt, ...)
{
    char nsbuf[32], basebuf[96], ratiobuf[32], info[512];
    if (ns < 0)
        snprintf(nsbuf, sizeof nsbuf, "-");
    else if (ns < 100)
        snprintf(nsbuf, sizeof nsbuf, "%.2f", ns);
    else if (ns < 10000)
        snprintf(nsbuf, sizeof nsbuf, "%.1f", ns);
    else
        snprintf(nsbuf, sizeof nsbuf, "%.0f", ns);
    if (base_name == NULL) {
        snprintf(basebuf, sizeof basebuf, "-");
        snprintf(ratiobuf, sizeof ratiobuf, "-");
    } else {
        if (base_ns < 100)
            snprintf(basebuf, sizeof basebuf, "%s (%.2f)", base_name, base_ns);
        else
            snprintf(basebuf, sizeof basebuf, "%s (%.0f)", base_name, base_ns);
        snprintf(ratiobuf, sizeof ratiobuf, "%.2fx", ns / base_ns);
    }
    info[0] = '\0';
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(info, sizeof info, fmt, ap);
        va_end(ap);
    }
    printf("| %-40s | %7u | %10s | %-32s | %7s | %s |\n", name, threads, nsbuf, basebuf, ratiobuf,
           info);
    fflush(stdout);
}

static inline const char *bench_verdict(int met) { return met ? "MET" : "MISSED"; }

#endif
