/* libperfmetrics — the alert-rule engine: evaluation cost, interference with
 * recording threads, memory.
 *
 * Registry: NCFAM counter families and NGFAM gauge families, each with one
 * label `shard` = s00..s99: (80 + 20) x 100 = 10,000 series, plus one
 * histogram. Each tick case has its own such registry (a registry carries
 * one engine with metrics on), built and moved alike. Time is a fake clock:
 * ticks at 15 s spacing, every series moved between ticks (counters +1..7,
 * gauges set), so windows hold real steps and rate() has something to
 * extrapolate.
 *
 *   1. One tick of R rules x S series each. Rules mix rate > X,
 *      sum by (shard) (rate(..)) > X, increase > X, rate * 60 > X on counters
 *      and avg_over_time / max_over_time / zscore / predict_linear > X on
 *      gauges; 1% of the rules fire (X = -1), the others never do. Every
 *      rule's range selector matches exactly S series of its family and scans
 *      all 100 (one regex matcher each; case e uses `=` instead). Each case
 *      warms its windows up (WARM_TICKS ticks: [5m] = B = 20 buckets of 15 s,
 *      full), reading the heap around each step (part 3); then all cases warm
 *      up again together and time BENCH_REPS x 2 + 1 rounds, a round being
 *      one tick of every case (rotating order), each tick followed by a
 *      pm_snapshot_new of the same registry (the baseline: a tick takes
 *      one); medians. These cases differ in more than size (rules sharing a
 *      series share its ring's memoised answer; a regex scans the family),
 *      so they are not fitted together; the sweeps are.
 *   1b. Linearity: two sweeps in which every rule reads series no other rule
 *      reads, selected with `=` through the equality index (a second label,
 *      group = g0..g9, groups each family's shards in tens) or with no
 *      matcher, one range function each dealt as in 1: N = 125, 250, 500,
 *      1000 rules x 10 series (up to the 10,000), and 100 rules x 1, 10, 100
 *      series (100 to 10,000 touches), plus an engine with no rule: its tick
 *      (the snapshot and the per-tick work) is the fixed part. The eight
 *      cases, each with its own grouped registry, are timed as in 1, with
 *      more rounds (6 x BENCH_REPS + 1: the small points' variable part is
 *      tens of us). Reported: ns per touch (rule x series), gross and net of
 *      the fixed part, and ms/tick against the largest point scaled by size;
 *      then tick = fixed + a x rules + b x touches fitted over these eight
 *      points only, by least squares on the relative residuals, with the
 *      verdict "linear" if every residual is <= 15% of its tick.
 *   2. pm_counter_inc / pm_histogram_observe on series a running engine
 *      reads (1,000 rules x 10 series + one p99 rule on the histogram), on 1
 *      and 2 threads, with no evaluation and with the engine ticking
 *      back-to-back on its own thread pinned to CPU 1 (the worst case: at a
 *      15 s cadence it is busy well under 1% of the time). Variants are
 *      interleaved (alternating which goes first) over BENCH_REPS rounds;
 *      medians. The figure is per-thread CPU time per op
 *      (CLOCK_THREAD_CPUTIME_ID): it counts every stall the engine can cause
 *      (cache lines it reads, memory bandwidth) but not time a thread waits
 *      for a CPU, which on a 2-vCPU VM changes whenever a second vCPU gets
 *      busy, and with 2 recorders worker 1 shares CPU 1 with the engine.
 *      Wall time is shown too, its with/without ratio divided by that of a
 *      control loop (an atomic add on the worker's own line, no library
 *      call) measured the same way: what is left is the library's own
 *      slow-down, blocking included, but with the noise of two ratios.
 *   3. Memory: mallinfo2 (in-use heap) before and after adding the rules
 *      (no tick) = per rule; after the warm-up ticks = per windowed series;
 *      the engine's own tally (PM_ALERT_STAT_WINDOW_BYTES) and the ring size
 *      from pm__wstore_ring_bytes, i.e. the formula with its numbers.
 * Every figure is measured in this process. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bench_common.h"

#include <malloc.h>
#include <math.h>

#include <perfmetrics/perfmetrics.h>

#include "internal/alert_internal.h" /* pm__wstore_*: the ring-size formula */

#define NSHARD 100
#define NCFAM 80
#define NGFAM 20
#define WARM_TICKS 24
#define NS_PER_S 1000000000LL
#define STEP_NS (15 * NS_PER_S)
#define NVALS 1024
#define MAX_TIMED 129
#define MAX_CASES 8 /* tick cases interleaved in one measure_ticks */

static double heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
#else
    return NAN;
#endif
}

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ the registries */

/* One registry with its series: each tick case gets its own, so all the
 * case's engines can live at once (a registry carries one engine with
 * metrics: the engine's collector name is taken) and their timed ticks can
 * be interleaved. They are built alike and moved alike. */
typedef struct world {
    int grouped; /* a second label, group = g0..g9 (shard / 10): the sweeps */
    pm_registry_t *reg;
    pm_counter_t *c[NCFAM][NSHARD];
    pm_gauge_t *g[NGFAM][NSHARD];
    pm_histogram_t *h;
} world_t;

static double g_vals[NVALS]; /* seconds, log-uniform over 1 us .. 10 s */
static int64_t g_now = 1800000000LL * NS_PER_S; /* fake clock, a multiple of 15 s */
static uint64_t g_round;

static void world_build(world_t *w)
{
    bench_check(pm_registry_new(NULL, &w->reg), "pm_registry_new");
    const char *lname[2] = {"shard", "group"};
    size_t nl = w->grouped ? 2 : 1;
    for (int kind = 0; kind < 2; kind++) {
        unsigned nfam = kind ? NGFAM : NCFAM;
        for (unsigned f = 0; f < nfam; f++) {
            pm_family_opts_t *o = NULL;
            pm_family_t *fam = NULL;
            char name[64];
            snprintf(name, sizeof name, "bench_alert_%c%02u", kind ? 'g' : 'c', f);
            bench_check(pm_family_opts_new(&o), "pm_family_opts_new");
            bench_check(pm_family_opts_set_labels(o, lname, nl), "pm_family_opts_set_labels");
            bench_check(pm_family_new(w->reg, kind ? PM_TYPE_GAUGE : PM_TYPE_COUNTER, name, "bench",
                                      o, &fam),
                        "pm_family_new");
            pm_family_opts_free(o);
            for (unsigned sh = 0; sh < NSHARD; sh++) {
                char v[8], gv[8];
                const char *vals[2] = {v, gv};
                snprintf(v, sizeof v, "s%02u", sh);
                snprintf(gv, sizeof gv, "g%u", sh / 10);
                if (kind)
                    bench_check(pm_gauge_get(fam, vals, nl, &w->g[f][sh]), "pm_gauge_get");
                else
                    bench_check(pm_counter_get(fam, vals, nl, &w->c[f][sh]), "pm_counter_get");
            }
        }
    }
    bench_check(pm_histogram_new(w->reg, "bench_alert_lat_seconds", "bench", &w->h),
                "pm_histogram_new");
}

static void world_free(world_t *w)
{
    for (unsigned f = 0; f < NCFAM; f++)
        for (unsigned sh = 0; sh < NSHARD; sh++)
            pm_counter_release(w->c[f][sh]);
    for (unsigned f = 0; f < NGFAM; f++)
        for (unsigned sh = 0; sh < NSHARD; sh++)
            pm_gauge_release(w->g[f][sh]);
    pm_histogram_release(w->h);
    pm_registry_free(w->reg);
}

/* What happens between two ticks: every series moves. */
static void world_move(world_t *w)
{
    for (unsigned f = 0; f < NCFAM; f++)
        for (unsigned sh = 0; sh < NSHARD; sh++)
            pm_counter_add(w->c[f][sh], (double)(1 + (f * NSHARD + sh + g_round) % 7));
    for (unsigned f = 0; f < NGFAM; f++)
        for (unsigned sh = 0; sh < NSHARD; sh++)
            pm_gauge_set(w->g[f][sh], 100.0 + (double)((f * 7 + sh) % 50) + (double)(g_round % 5));
    for (unsigned k = 0; k < 16; k++)
        pm_histogram_observe(w->h, g_vals[(g_round * 16 + k) & (NVALS - 1)]);
}

/* The fake clock steps 15 s. */
static void step(void)
{
    g_round++;
    g_now += STEP_NS;
}

/* ------------------------------------------------------------ rules */

/* Rule i of a set of `nrules`, each matching `per` (1, 10 or 100) series of
 * one family; `eq` selects the single series with `=` instead of `=~`.
 * Four of five rules read counters, one of five gauges; the families and
 * shard groups are dealt round-robin, so a set of 1,000 rules x 10 series
 * touches every series once and 1,000 x 1 touches 1,000 distinct series. */
static void rule_wrap(char *buf, size_t len, unsigned i, const char *sel);

static void rule_expr(char *buf, size_t len, unsigned i, unsigned per, int eq)
{
    int gauge = i % 5 == 4;
    unsigned j = gauge ? i / 5 : (i / 5) * 4 + i % 5;
    unsigned nfam = gauge ? NGFAM : NCFAM, fam = j % nfam, grp = j / nfam;
    char sel[96], m[48];
    if (per >= 100)
        snprintf(m, sizeof m, "shard=~\"s[0-9][0-9]\"");
    else if (per == 10)
        snprintf(m, sizeof m, "shard=~\"s%u[0-9]\"", grp % 10);
    else
        snprintf(m, sizeof m, "shard%s\"s%02u\"", eq ? "=" : "=~", grp % 100);
    snprintf(sel, sizeof sel, "bench_alert_%c%02u{%s}[5m]", gauge ? 'g' : 'c', fam, m);
    rule_wrap(buf, len, i, sel);
}

/* The sweeps' rule i, on a grouped world: it reads `per` (1, 10 or 100)
 * series that no other rule of its set reads, chosen with `=` (shard="sNN"
 * for 1, group="gN" for 10) or no matcher at all (the whole family, 100),
 * so the selection is an index probe, never a regex scan. Rules take their
 * kind's series in order, filling one family before the next: the families
 * a set reads (each costs one equality-index build over its 100 series per
 * tick) then grow with the set like the touches do, instead of a set of 125
 * rules already reading all 100 families. The kinds and functions are dealt
 * as in rule_expr. */
static void rule_expr_distinct(char *buf, size_t len, unsigned i, unsigned per)
{
    int gauge = i % 5 == 4;
    unsigned j = gauge ? i / 5 : (i / 5) * 4 + i % 5;
    unsigned first = j * per, fam = first / NSHARD, sh = first % NSHARD;
    if (fam >= (gauge ? NGFAM : NCFAM)) {
        fprintf(stderr, "bench_alerts: sweep rule %u x %u series: out of series\n", i, per);
        exit(1);
    }
    char sel[96], m[48] = "";
    if (per == 1)
        snprintf(m, sizeof m, "{shard=\"s%02u\"}", sh);
    else if (per == 10)
        snprintf(m, sizeof m, "{group=\"g%u\"}", sh / 10);
    snprintf(sel, sizeof sel, "bench_alert_%c%02u%s[5m]", gauge ? 'g' : 'c', fam, m);
    rule_wrap(buf, len, i, sel);
}

/* Rule i's function and threshold around its range selector. */
static void rule_wrap(char *buf, size_t len, unsigned i, const char *sel)
{
    int gauge = i % 5 == 4;
    /* One rule in 100 fires, a different kind in each hundred. */
    const char *x = i % 100 == 7 + (i / 100) % 5 ? "-1" : "1e9";
    if (gauge) {
        static const char *const fn[4] = {"avg_over_time(%s)", "max_over_time(%s)", "zscore(%s)",
                                          "predict_linear(%s, 3600)"};
        char call[160];
        snprintf(call, sizeof call, fn[(i / 5) % 4], sel);
        snprintf(buf, len, "%s > %s", call, x);
        return;
    }
    switch (i % 5) {
    case 0: snprintf(buf, len, "rate(%s) > %s", sel, x); break;
    case 1: snprintf(buf, len, "sum by (shard) (rate(%s)) > %s", sel, x); break;
    case 2: snprintf(buf, len, "increase(%s) > %s", sel, x); break;
    default: snprintf(buf, len, "rate(%s) * 60 > %s", sel, x); break;
    }
}

static void add_rule(pm_alert_engine_t *e, const char *name, const char *expr)
{
    pm_alert_rule_t *r = NULL;
    pm_parse_error_t *err = NULL;
    pm_status_t st = pm_alert_rule_new(name, expr, &r, &err);
    if (st != PM_OK) {
        fprintf(stderr, "bench_alerts: rule %s: %s: %s\n", expr, pm_status_name(st),
                err ? pm_parse_error_message(err) : "");
        exit(1);
    }
    bench_check(pm_alert_engine_add_rule(e, r), "pm_alert_engine_add_rule");
    pm_alert_rule_free(r);
}

static void add_rules(pm_alert_engine_t *e, unsigned nrules, unsigned per, int eq, int distinct)
{
    for (unsigned i = 0; i < nrules; i++) {
        char name[32], expr[256];
        snprintf(name, sizeof name, "bench_rule_%04u", i);
        if (distinct)
            rule_expr_distinct(expr, sizeof expr, i, per);
        else
            rule_expr(expr, sizeof expr, i, per, eq);
        add_rule(e, name, expr);
    }
}

static pm_alert_engine_t *new_engine(pm_registry_t *r)
{
    pm_alert_engine_opts_t *o = NULL;
    pm_alert_engine_t *e = NULL;
    bench_check(pm_alert_engine_opts_new(&o), "pm_alert_engine_opts_new");
    bench_check(pm_alert_engine_opts_set_interval(o, 15.0), "pm_alert_engine_opts_set_interval");
    bench_check(pm_alert_engine_opts_set_dispatch_thread(o, 0),
                "pm_alert_engine_opts_set_dispatch");
    bench_check(pm_alert_engine_new(r, o, &e), "pm_alert_engine_new");
    pm_alert_engine_opts_free(o);
    return e;
}

/* ------------------------------------------------------------ part 1 */

typedef struct tick_case {
    const char *name;
    unsigned nrules, per;
    int eq, distinct; /* distinct: a sweep case (rule_expr_distinct, grouped world) */
    size_t expect_windowed;
    world_t w;
    pm_alert_engine_t *e;
    /* results */
    double tick_ns, snap_ns, last_eval_ns;
    double tick_q1, tick_q3; /* quartiles of the timed ticks: their spread */
    uint64_t windowed, refused, failures, instances, window_bytes;
    double heap_engine, heap_rules, heap_warm; /* mallinfo2 deltas */
} tick_case_t;

/* Creates the case's engine and rules and warms its windows up alone, with
 * mallinfo2 readings around each step (only this thread allocates). */
static void tick_case_setup(tick_case_t *c)
{
    double h0 = heap_in_use();
    c->e = new_engine(c->w.reg);
    double h1 = heap_in_use();
    add_rules(c->e, c->nrules, c->per, c->eq, c->distinct);
    double h2 = heap_in_use();
    for (unsigned k = 0; k < WARM_TICKS; k++) {
        step();
        world_move(&c->w);
        bench_check(pm_alert_engine_tick(c->e, g_now), "pm_alert_engine_tick");
    }
    double h3 = heap_in_use();
    c->heap_engine = h1 - h0;
    c->heap_rules = h2 - h1;
    c->heap_warm = h3 - h2;
    c->windowed = pm_alert_engine_stat(c->e, PM_ALERT_STAT_SERIES_WINDOWED);
    c->window_bytes = pm_alert_engine_stat(c->e, PM_ALERT_STAT_WINDOW_BYTES);
}

/* One round: every world moves, then each case ticks (its windows take a
 * sample) and takes a snapshot of its registry, in an order that rotates
 * with the round so no case always follows the same one. */
static void tick_round(tick_case_t *cs, size_t n, unsigned round, double (*tv)[MAX_TIMED],
                       double (*sv)[MAX_TIMED], double (*lv)[MAX_TIMED], unsigned slot)
{
    step();
    for (size_t i = 0; i < n; i++)
        world_move(&cs[i].w);
    for (size_t k = 0; k < n; k++) {
        size_t i = (k + round) % n;
        tick_case_t *c = &cs[i];
        uint64_t t0 = bench_now();
        bench_check(pm_alert_engine_tick(c->e, g_now), "pm_alert_engine_tick");
        uint64_t t1 = bench_now();
        pm_snapshot_t *snap = NULL;
        bench_check(pm_snapshot_new(c->w.reg, &snap), "pm_snapshot_new");
        pm_snapshot_release(snap);
        uint64_t t2 = bench_now();
        if (tv) {
            tv[i][slot] = (double)(t1 - t0);
            sv[i][slot] = (double)(t2 - t1);
            lv[i][slot] = (double)pm_alert_engine_stat(c->e, PM_ALERT_STAT_LAST_EVAL_NS);
        }
    }
}

static void measure_ticks(tick_case_t *cs, size_t n, unsigned ntimed)
{
    if (n > MAX_CASES) {
        fprintf(stderr, "bench_alerts: %zu tick cases, at most %d\n", n, MAX_CASES);
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        tick_case_setup(&cs[i]);
    /* The cases set up first sat idle while the others warmed up, long
     * enough for their rings to be swept: warm everyone up again together. */
    for (unsigned k = 0; k < WARM_TICKS; k++)
        tick_round(cs, n, k, NULL, NULL, NULL, 0);
    static double tv[MAX_CASES][MAX_TIMED], sv[MAX_CASES][MAX_TIMED], lv[MAX_CASES][MAX_TIMED];
    for (unsigned k = 0; k < ntimed; k++)
        tick_round(cs, n, k, tv, sv, lv, k);
    for (size_t i = 0; i < n; i++) {
        tick_case_t *c = &cs[i];
        c->tick_ns = bench_median(tv[i], ntimed);
        c->tick_q1 = tv[i][ntimed / 4]; /* tv[i] is sorted now */
        c->tick_q3 = tv[i][(3 * ntimed) / 4];
        c->snap_ns = bench_median(sv[i], ntimed);
        c->last_eval_ns = bench_median(lv[i], ntimed);
        c->refused = pm_alert_engine_stat(c->e, PM_ALERT_STAT_SERIES_REFUSED);
        c->failures = pm_alert_engine_stat(c->e, PM_ALERT_STAT_RULE_FAILURES);
        c->instances = pm_alert_engine_stat(c->e, PM_ALERT_STAT_INSTANCES);
        if (pm_alert_engine_stat(c->e, PM_ALERT_STAT_SERIES_WINDOWED) != c->windowed)
            c->windowed = 0; /* not steady: reported as UNEXPECTED */
        pm_alert_engine_free(c->e);
        c->e = NULL;
    }
}

/* ------------------------------------------------------------ part 2 */

/* The engine thread: ticks back-to-back (fake clock, 15 s per tick) while
 * `run` is set, sleeps on the condition variable otherwise. */
static struct {
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int want, quit, idle; /* under mu */
    atomic_int run;
    pm_alert_engine_t *e;
    int64_t now;
    atomic_uint_fast64_t ticks, busy_ns, fails;
} g_eng;

static void *engine_main(void *p)
{
    (void)p;
    bench_pin_self(1);
    pthread_mutex_lock(&g_eng.mu);
    for (;;) {
        while (!g_eng.want && !g_eng.quit) {
            g_eng.idle = 1;
            pthread_cond_broadcast(&g_eng.cv);
            pthread_cond_wait(&g_eng.cv, &g_eng.mu);
        }
        if (g_eng.quit)
            break;
        g_eng.idle = 0;
        pthread_mutex_unlock(&g_eng.mu);
        while (atomic_load_explicit(&g_eng.run, memory_order_acquire)) {
            g_eng.now += STEP_NS;
            uint64_t t0 = bench_now();
            if (pm_alert_engine_tick(g_eng.e, g_eng.now) != PM_OK)
                atomic_fetch_add(&g_eng.fails, 1);
            atomic_fetch_add(&g_eng.busy_ns, bench_now() - t0);
            atomic_fetch_add(&g_eng.ticks, 1);
        }
        pthread_mutex_lock(&g_eng.mu);
    }
    pthread_mutex_unlock(&g_eng.mu);
    return NULL;
}

/* Returns once the engine has finished one tick: the next is under way. */
static void engine_on(void)
{
    uint64_t t = atomic_load(&g_eng.ticks);
    pthread_mutex_lock(&g_eng.mu);
    g_eng.want = 1;
    atomic_store(&g_eng.run, 1);
    pthread_cond_broadcast(&g_eng.cv);
    pthread_mutex_unlock(&g_eng.mu);
    while (atomic_load(&g_eng.ticks) == t)
        sched_yield();
}

/* Returns once the engine sleeps (its last tick finished). */
static void engine_off(void)
{
    pthread_mutex_lock(&g_eng.mu);
    g_eng.want = 0;
    atomic_store(&g_eng.run, 0);
    while (!g_eng.idle)
        pthread_cond_wait(&g_eng.cv, &g_eng.mu);
    pthread_mutex_unlock(&g_eng.mu);
}

/* What the recording threads do. OP_XADD is the control: an atomic add on
 * the worker's own cache line, which never touches the library, so any
 * change it shows when the engine runs is the machine's, not the library's. */
enum { OP_XADD, OP_INC, OP_OBSERVE, NOPS };

typedef struct {
    _Alignas(BENCH_LINE) atomic_uint_fast64_t v;
} line_t;

typedef struct {
    int op;
    pm_counter_t *c;
    pm_histogram_t *h;
    line_t own[BENCH_MAX_THREADS];
    _Alignas(BENCH_LINE) uint64_t cpu[BENCH_MAX_THREADS];
} rec_ctx_t;

static void body_record(void *ctx, unsigned tid, uint64_t n)
{
    rec_ctx_t *x = ctx;
    uint64_t c0 = thread_cpu_ns();
    if (x->op == OP_OBSERVE) {
        pm_histogram_t *h = x->h;
        size_t off = tid * (NVALS / 2);
        for (uint64_t i = 0; i < n; i++)
            pm_histogram_observe(h, g_vals[(i + off) & (NVALS - 1)]);
    } else if (x->op == OP_INC) {
        pm_counter_t *c = x->c;
        for (uint64_t i = 0; i < n; i++)
            pm_counter_inc(c);
    } else {
        atomic_uint_fast64_t *p = &x->own[tid].v;
        for (uint64_t i = 0; i < n; i++) {
            atomic_fetch_add_explicit(p, 1, memory_order_relaxed);
            BENCH_CLOBBER();
        }
    }
    x->cpu[tid] = thread_cpu_ns() - c0;
}

/* One measured run; per-op figures in ns, per thread. */
typedef struct {
    double wall, cpu;
    uint64_t ticks, busy;
} rec_run_t;

static rec_run_t record_run(bench_pool_t *pool, rec_ctx_t *x, unsigned threads, uint64_t n,
                            int with_engine)
{
    rec_run_t out;
    if (with_engine)
        engine_on();
    uint64_t tk0 = atomic_load(&g_eng.ticks), b0 = atomic_load(&g_eng.busy_ns);
    uint64_t wall = bench_pool_run(pool, body_record, x, threads, n);
    out.ticks = atomic_load(&g_eng.ticks) - tk0;
    out.busy = atomic_load(&g_eng.busy_ns) - b0;
    if (with_engine)
        engine_off();
    uint64_t cpu = 0;
    for (unsigned t = 0; t < threads; t++)
        cpu += x->cpu[t];
    out.wall = (double)wall / (double)n;
    out.cpu = (double)cpu / ((double)n * threads);
    return out;
}

typedef struct {
    double wall, cpu; /* medians */
    double ticks_per_run, ms_per_tick;
} rec_result_t;

/* [op][threads - 1][with engine] */
static rec_result_t g_rec[NOPS][2][2];

static void measure_recording(bench_pool_t *pool, world_t *world)
{
    unsigned reps = bench_reps();
    if (reps > 64)
        reps = 64;
    static rec_ctx_t ctx[NOPS];
    uint64_t n[NOPS];
    for (int op = 0; op < NOPS; op++) {
        ctx[op].op = op;
        ctx[op].c = world->c[0][0];
        ctx[op].h = world->h;
        /* Calibrate on one thread without the engine: a run lasts BENCH_REP_MS. */
        uint64_t k = 1u << 14;
        for (;;) {
            uint64_t w = bench_pool_run(pool, body_record, &ctx[op], 1, k);
            if (w >= 5000000u || k >= (1ull << 34)) {
                n[op] = (uint64_t)((double)k * bench_rep_ms() * 1e6 / (double)w);
                break;
            }
            k *= 4;
        }
        if (n[op] < 1000)
            n[op] = 1000;
    }
    static rec_run_t runs[NOPS][2][2][64];
    for (unsigned r = 0; r < reps; r++)
        for (int op = 0; op < NOPS; op++)
            for (unsigned th = 1; th <= 2; th++)
                for (int k = 0; k < 2; k++) {
                    int with = (k + (int)r) % 2; /* alternate which goes first */
                    runs[op][th - 1][with][r] = record_run(pool, &ctx[op], th, n[op], with);
                }
    for (int op = 0; op < NOPS; op++)
        for (int th = 0; th < 2; th++)
            for (int with = 0; with < 2; with++) {
                double w[64], c[64], tk[64];
                double ticks = 0, busy = 0;
                for (unsigned r = 0; r < reps; r++) {
                    const rec_run_t *x = &runs[op][th][with][r];
                    w[r] = x->wall;
                    c[r] = x->cpu;
                    tk[r] = (double)x->ticks;
                    ticks += (double)x->ticks;
                    busy += (double)x->busy;
                }
                rec_result_t *o = &g_rec[op][th][with];
                o->wall = bench_median(w, reps);
                o->cpu = bench_median(c, reps);
                o->ticks_per_run = bench_median(tk, reps);
                o->ms_per_tick = ticks > 0 ? busy / ticks / 1e6 : NAN;
            }
}

static void print_recording(void)
{
    static const char *const opname[NOPS] = {"baseline: private xadd", "pm_counter_inc",
                                             "pm_histogram_observe"};
    for (int op = 0; op < NOPS; op++)
        for (int th = 0; th < 2; th++) {
            const rec_result_t *off = &g_rec[op][th][0], *on = &g_rec[op][th][1];
            const rec_result_t *xoff = &g_rec[OP_XADD][th][0], *xon = &g_rec[OP_XADD][th][1];
            char name[64], base[64];
            unsigned threads = (unsigned)th + 1;
            snprintf(name, sizeof name, "%s, no evaluation", opname[op]);
            bench_row(name, threads, off->cpu, NULL, 0, "CPU time/op%s; wall %.2f ns/op",
                      op == OP_XADD ? ", own cache line"
                      : threads == 2 ? ", one series the engine reads, both threads"
                                     : ", a series the engine reads",
                      off->wall);
            snprintf(name, sizeof name, "%s, engine ticking", opname[op]);
            snprintf(base, sizeof base, "no evaluation %uT", threads);
            double wr = on->wall / off->wall, xwr = xon->wall / xoff->wall;
            if (op == OP_XADD) {
                bench_row(name, threads, on->cpu, base, off->cpu,
                          "CPU time/op; wall %.2f ns/op = %.2fx of no evaluation: this loop "
                          "never calls the library, so its wall ratio is the machine's (two "
                          "busy vCPUs)",
                          on->wall, wr);
                continue;
            }
            bench_row(name, threads, on->cpu, base, off->cpu,
                      "CPU time/op; target <= 1.10x: %s; wall %.2f ns/op = %.2fx, xadd "
                      "control %.2fx, so %.2fx net of the machine (wall is noisy here); engine "
                      "back-to-back on CPU 1%s: %.1f ticks/run, %.1f ms/tick",
                      bench_verdict(on->cpu <= 1.10 * off->cpu), on->wall, wr, xwr, wr / xwr,
                      threads == 2 ? " (sharing it with worker 1)" : ", recorder on CPU 0",
                      on->ticks_per_run, on->ms_per_tick);
        }
}


/* ------------------------------------------------------------ part 1b: sweeps */

/* Weighted least squares: p[0..np) minimising sum w (y - sum p_k x_k)^2,
 * by Gaussian elimination on the normal equations. */
static void lsq(size_t n, size_t np, const double (*x)[3], const double *y, const double *w,
                double *p)
{
    double m[3][4] = {{0}};
    for (size_t i = 0; i < n; i++)
        for (size_t r = 0; r < np; r++) {
            for (size_t c = 0; c < np; c++)
                m[r][c] += w[i] * x[i][r] * x[i][c];
            m[r][np] += w[i] * x[i][r] * y[i];
        }
    for (size_t k = 0; k < np; k++) {
        for (size_t r = k + 1; r < np; r++) {
            double f = m[r][k] / m[k][k];
            for (size_t c = k; c <= np; c++)
                m[r][c] -= f * m[k][c];
        }
    }
    for (size_t k = np; k-- > 0;) {
        double v = m[k][np];
        for (size_t c = k + 1; c < np; c++)
            v -= m[k][c] * p[c];
        p[k] = v / m[k][k];
    }
}

/* The two sweeps (see the top comment): every rule reads series no other
 * rule reads, so no ring's memo is shared and no selection scans; plus an
 * engine with no rules, whose tick (its snapshot of the registry and the
 * per-tick work) is the fixed part. All eight are interleaved like part 1. */
enum { SW0, SWN1, SWN2, SWN3, SWN4, SWS1, SWS2, SWS3, NSW };

static void sweep_run(unsigned ntimed, int *wrong)
{
    static tick_case_t sw[NSW] = {
        [SW0] = {.name = "alert sweep: 0 rules (the fixed part)"},
        [SWN1] = {.name = "alert sweep N: 125 rules x 10 series", .nrules = 125, .per = 10},
        [SWN2] = {.name = "alert sweep N: 250 rules x 10 series", .nrules = 250, .per = 10},
        [SWN3] = {.name = "alert sweep N: 500 rules x 10 series", .nrules = 500, .per = 10},
        [SWN4] = {.name = "alert sweep N: 1000 rules x 10 series", .nrules = 1000, .per = 10},
        [SWS1] = {.name = "alert sweep S: 100 rules x 1 series", .nrules = 100, .per = 1},
        [SWS2] = {.name = "alert sweep S: 100 rules x 10 series", .nrules = 100, .per = 10},
        [SWS3] = {.name = "alert sweep S: 100 rules x 100 series", .nrules = 100, .per = 100},
    };
    static const char *const tag[NSW] = {"0", "N125", "N250", "N500", "N1000",
                                         "S1", "S10", "S100"};
    for (int i = 0; i < NSW; i++) {
        sw[i].distinct = 1;
        sw[i].eq = 1;
        sw[i].expect_windowed = (size_t)sw[i].nrules * sw[i].per;
        sw[i].w.grouped = 1;
        world_build(&sw[i].w);
        world_move(&sw[i].w);
        bench_check(pm_registry_maintain(sw[i].w.reg), "pm_registry_maintain");
    }
    measure_ticks(sw, NSW, ntimed);

    /* Not tick - snapshot here: the snapshot timed after a tick finds the
     * registry warmer the less the tick read (the baseline column grows with
     * the case), so it is no constant; the 0-rule tick, interleaved like the
     * others, is. */
    double fixed = sw[SW0].tick_ns;
    double x[NSW][3], y[NSW], wt[NSW];
    for (int i = 0; i < NSW; i++) {
        x[i][0] = 1;
        x[i][1] = sw[i].nrules;
        x[i][2] = (double)sw[i].nrules * sw[i].per;
        y[i] = sw[i].tick_ns;
        wt[i] = 1 / (y[i] * y[i]);
    }
    const tick_case_t *top = &sw[SWN4];
    double top_touch = x[SWN4][2], top_net = (top->tick_ns - fixed) / top_touch;
    double dev_n = 0, marg[NSW] = {0};
    for (int i = 0; i < NSW; i++) {
        const tick_case_t *c = &sw[i];
        double t = x[i][2], net = c->tick_ns - fixed;
        char tgt[96] = "", bad[160] = "";
        if (c->windowed != c->expect_windowed || c->failures || c->refused) {
            snprintf(bad, sizeof bad, "; UNEXPECTED: windowed %llu (expected %zu), %llu rule "
                                      "failures, %llu refused",
                     (unsigned long long)c->windowed, c->expect_windowed,
                     (unsigned long long)c->failures, (unsigned long long)c->refused);
            *wrong = 1;
        }
        if (i == SW0) {
            bench_row(c->name, 1, c->tick_ns, "pm_snapshot_new", c->snap_ns,
                      "%.2f ms/tick: an engine with no rule on the same registry (10,000 "
                      "series), i.e. its own snapshot and per-tick work; the rows below "
                      "subtract it as the fixed part%s",
                      c->tick_ns / 1e6, bad);
            continue;
        }
        if (c->nrules == 1000)
            snprintf(tgt, sizeof tgt, "; target <= 20 ms (1,000 rules, 10,000 series): %s",
                     bench_verdict(c->tick_ns <= 20e6));
        if (i <= SWN4) {
            double dev = (net / t) / top_net - 1;
            if (fabs(dev) > fabs(dev_n))
                dev_n = dev;
            bench_row(c->name, 1, c->tick_ns, "pm_snapshot_new", c->snap_ns,
                      "%.2f ms/tick%s; %.0f touched (rule x series; each series read by one "
                      "rule, group=\"gN\"), %.1f ns/touch; net of the fixed part: %.2f ms, "
                      "%.1f ns/touch (%+.1f%% vs N=1000's); ms/tick vs N=1000's scaled by N: "
                      "%.2fx, net %.2fx; %llu windowed series; %llu instances%s",
                      c->tick_ns / 1e6, tgt, t, c->tick_ns / t, net / 1e6, net / t, 100 * dev,
                      (c->tick_ns / top->tick_ns) * (top->nrules / (double)c->nrules),
                      (net / (top->tick_ns - fixed)) * (top->nrules / (double)c->nrules),
                      (unsigned long long)c->windowed, (unsigned long long)c->instances, bad);
            continue;
        }
        const tick_case_t *big = &sw[SWS3];
        char mg[96] = "";
        if (i > SWS1) {
            /* Same rules, same fixed part: the difference is the touches. */
            marg[i] = (c->tick_ns - sw[i - 1].tick_ns) / (t - x[i - 1][2]);
            snprintf(mg, sizeof mg, "; from the row above: %.1f ns per added touch", marg[i]);
        }
        bench_row(c->name, 1, c->tick_ns, "pm_snapshot_new", c->snap_ns,
                  "%.2f ms/tick; %.0f touched (rule x series; each series read by one rule, "
                  "%s), %.1f ns/touch; net of the fixed part: %.2f ms, %.1f ns/touch (the "
                  "100 rules' own cost over %u touch%s each); ms/tick vs 100 x 100's scaled by "
                  "touches: %.2fx%s; %llu windowed series; %llu instances%s",
                  c->tick_ns / 1e6, t,
                  c->per == 1 ? "shard=\"sNN\"" : c->per == 10 ? "group=\"gN\"" : "no matcher",
                  c->tick_ns / t, net / 1e6, net / t, c->per, c->per == 1 ? "" : "es",
                  (c->tick_ns / big->tick_ns) * (x[SWS3][2] / t), mg,
                  (unsigned long long)c->windowed, (unsigned long long)c->instances, bad);
    }

    /* tick = fixed + a x rules + b x touches, least squares on the relative
     * residuals (weights 1/tick^2: the criterion is relative, and the points
     * span 0.4 to 5 ms), over the eight sweep points only. */
    double p[3];
    lsq(NSW, 3, (const double(*)[3])x, y, wt, p);
    double worst = 0, worst_us = 0;
    char res[256];
    int off = 0;
    for (int i = 0; i < NSW; i++) {
        double f = p[0] + p[1] * x[i][1] + p[2] * x[i][2];
        double d = (f - y[i]) / y[i];
        if (fabs(d) > fabs(worst)) {
            worst = d;
            worst_us = (f - y[i]) / 1e3;
        }
        off += snprintf(res + off, sizeof res - (size_t)off, "%s%s %+.1f%%", i ? ", " : "",
                        tag[i], 100 * d);
    }
    bench_row("alert tick: linear fit, sweeps", 1, -1, NULL, 0,
              "tick = %.3f ms + %.0f ns/rule + %.1f ns/touch (relative least squares over the "
              "8 sweep points; fixed part measured at 0 rules: %.3f ms, quartiles %.3f..%.3f ms "
              "over the rounds); residuals %s; worst %+.1f%% of the tick (%+.0f us); sweep N: "
              "net ns/touch at worst %+.1f%% vs N=1000's; sweep S: %.1f and %.1f ns per added "
              "touch; linear (every residual <= 15%% of the tick): %s",
              p[0] / 1e6, p[1], p[2], fixed / 1e6, sw[SW0].tick_q1 / 1e6, sw[SW0].tick_q3 / 1e6,
              res, 100 * worst, worst_us, 100 * dev_n, marg[SWS2], marg[SWS3],
              bench_verdict(fabs(worst) <= 0.15));
    for (int i = 0; i < NSW; i++)
        world_free(&sw[i].w);
}

/* ------------------------------------------------------------ main */

int main(int argc, char **argv)
{
    if (argc > 1) {
        fprintf(stderr, "usage: %s\n", argv[0]);
        return 2;
    }
    bench_pin_self(0);
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < NVALS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0;
        g_vals[i] = pow(10.0, -6.0 + 7.0 * u);
    }
    unsigned ntimed = 2 * bench_reps() + 1;
    if (ntimed > MAX_TIMED)
        ntimed = MAX_TIMED;

    /* ---- 1. one tick ---- */
    enum { TA, TB, TC, TD, TE, NTC };
    static tick_case_t tc[NTC] = {
        [TA] = {.name = "alert tick (a): 1000 rules x 10 series", .nrules = 1000, .per = 10,
                .expect_windowed = 10000},
        [TB] = {.name = "alert tick (b): 1000 rules x 100 series", .nrules = 1000, .per = 100,
                .expect_windowed = 10000},
        [TC] = {.name = "alert tick (c): 100 rules x 100 series", .nrules = 100, .per = 100,
                .expect_windowed = 10000},
        [TD] = {.name = "alert tick (d): 1000 rules x 1 series", .nrules = 1000, .per = 1,
                .expect_windowed = 1000},
        [TE] = {.name = "alert tick (e): 1000 rules x 1 series, =", .nrules = 1000, .per = 1,
                .eq = 1, .expect_windowed = 1000},
    };
    for (int i = 0; i < NTC; i++) {
        /* Every series has a value and the registry's first-use work is
         * done before anything is timed or counted. */
        world_build(&tc[i].w);
        world_move(&tc[i].w);
        bench_check(pm_registry_maintain(tc[i].w.reg), "pm_registry_maintain");
    }
    measure_ticks(tc, NTC, ntimed);

    /* d and e differ only in the matcher: what the regex scan costs. */
    double re_rule = ((tc[TD].tick_ns - tc[TD].snap_ns) - (tc[TE].tick_ns - tc[TE].snap_ns)) /
                     tc[TD].nrules;
    int wrong = 0;
    for (int i = 0; i < NTC; i++) {
        const tick_case_t *c = &tc[i];
        double touched = (double)c->nrules * c->per;
        double eval = c->tick_ns - c->snap_ns;
        char tgt[96] = "", bad[160] = "", re[128] = "";
        if (i == TE)
            snprintf(re, sizeof re, "; vs (d), the regex scan costs %.2f us/rule (%.0f ns per "
                                    "series scanned)",
                     re_rule / 1e3, re_rule / NSHARD);
        if (c->nrules == 1000)
            snprintf(tgt, sizeof tgt, "; target <= 20 ms (1,000 rules, 10,000 series): %s",
                     bench_verdict(c->tick_ns <= 20e6));
        if (c->windowed != c->expect_windowed || c->failures || c->refused) {
            snprintf(bad, sizeof bad, "; UNEXPECTED: windowed %llu (expected %zu), %llu rule "
                                      "failures, %llu refused",
                     (unsigned long long)c->windowed, c->expect_windowed,
                     (unsigned long long)c->failures, (unsigned long long)c->refused);
            wrong = 1;
        }
        bench_row(c->name, 1, c->tick_ns, "pm_snapshot_new", c->snap_ns,
                  "%.2f ms/tick%s; %.0f touched (rule x series), %.1f ns/touch, %.1f ns/touch "
                  "net of the snapshot; %u series scanned by %s matchers; %llu windowed "
                  "series; %llu instances; engine's own timing %.2f ms%s%s",
                  c->tick_ns / 1e6, tgt, touched, c->tick_ns / touched, eval / touched,
                  c->nrules * NSHARD, c->eq ? "=" : "=~", (unsigned long long)c->windowed,
                  (unsigned long long)c->instances, c->last_eval_ns / 1e6, re, bad);
    }
    /* ---- 1b. the linearity sweeps ---- */
    {
        /* A sweep round costs ~20 ms: more rounds for the small points,
         * whose variable part is tens of us over a ~0.4 ms fixed part. */
        unsigned nsweep = 6 * bench_reps() + 1;
        sweep_run(nsweep < MAX_TIMED ? nsweep : MAX_TIMED, &wrong);
    }

    /* ---- 2. recording while the engine ticks ---- */
    world_t *w2 = &tc[TA].w;
    g_eng.e = new_engine(w2->reg);
    add_rules(g_eng.e, 1000, 10, 0, 0);
    add_rule(g_eng.e, "bench_rule_latency", "p99(bench_alert_lat_seconds[5m]) > 100");
    static bench_pool_t pool;
    bench_pool_start(&pool);
    {
        /* Both workers record into the histogram once and maintenance gives
         * their stripes their own copies (steady state, as after a scrape). */
        static rec_ctx_t warm;
        warm.op = OP_OBSERVE;
        warm.h = w2->h;
        bench_pool_run(&pool, body_record, &warm, 2, 1000);
        bench_check(pm_registry_maintain(w2->reg), "pm_registry_maintain");
    }
    for (unsigned k = 0; k < WARM_TICKS; k++) {
        step();
        world_move(w2);
        bench_check(pm_alert_engine_tick(g_eng.e, g_now), "pm_alert_engine_tick");
    }
    g_eng.now = g_now;
    if (pthread_mutex_init(&g_eng.mu, NULL) != 0 || pthread_cond_init(&g_eng.cv, NULL) != 0 ||
        pthread_create(&g_eng.th, NULL, engine_main, NULL) != 0)
        bench_die("engine thread", -1);
    measure_recording(&pool, w2);
    pthread_mutex_lock(&g_eng.mu);
    g_eng.quit = 1;
    pthread_cond_broadcast(&g_eng.cv);
    pthread_mutex_unlock(&g_eng.mu);
    pthread_join(g_eng.th, NULL);
    pthread_cond_destroy(&g_eng.cv);
    pthread_mutex_destroy(&g_eng.mu);
    uint64_t eng_fails = atomic_load(&g_eng.fails);
    uint64_t eng_rule_fails = pm_alert_engine_stat(g_eng.e, PM_ALERT_STAT_RULE_FAILURES);
    pm_alert_engine_free(g_eng.e);
    bench_pool_stop(&pool);

    print_recording();
    if (eng_fails || eng_rule_fails) {
        fprintf(stderr, "bench_alerts: the ticking engine failed %llu ticks, %llu rule "
                        "evaluations\n",
                (unsigned long long)eng_fails, (unsigned long long)eng_rule_fails);
        wrong = 1;
    }

    /* ---- 3. memory ---- */
    {
        pm__wstore *w = NULL;
        bench_check(pm__wstore_new(&pm__default_alloc, STEP_NS, 60, 100000, &w), "pm__wstore_new");
        /* Header and bucket size from the store itself: B = 1 at 15 s, 2 at 30 s. */
        double r1 = (double)pm__wstore_ring_bytes(w, STEP_NS);
        double r2 = (double)pm__wstore_ring_bytes(w, 2 * STEP_NS);
        double r5m = (double)pm__wstore_ring_bytes(w, 300 * NS_PER_S);
        double r1h = (double)pm__wstore_ring_bytes(w, 3600 * NS_PER_S);
        pm__wstore_free(w);
        double bucket = r2 - r1, head = r1 - bucket;
        double nb5m = (r5m - head) / bucket, nb1h = (r1h - head) / bucket;
        const tick_case_t *a = &tc[TA], *d = &tc[TD], *eq = &tc[TE];
        /* A ring also holds its key: the family name and label values,
         * NUL-terminated, rounded up to 8 bytes; the store's table has
         * 16-byte slots at load <= 3/4. */
        size_t key = strlen("bench_alert_c00") + 1 + strlen("s00") + 1;
        double names = (double)((key + 7) & ~(size_t)7);
        double tally = (double)a->window_bytes / (double)a->windowed;
        double cap = 16; /* the table's size at a->windowed entries */
        while ((double)a->windowed * 4 > cap * 3)
            cap *= 2;
        double slot = 16.0 * cap / (double)a->windowed;
        bench_row("memory/alert rule, regex matcher", 1, -1, NULL, 0,
                  "%.0f B/rule (malloc, 1000 rules x 10 series: parsed tree, copy, compiled "
                  "regex, instance index); 1000 x 1 series: %.0f B/rule",
                  a->heap_rules / a->nrules, d->heap_rules / d->nrules);
        bench_row("memory/alert rule, = matcher", 1, -1, NULL, 0,
                  "%.0f B/rule (malloc, 1000 rules x 1 series); the engine itself: %.0f B",
                  eq->heap_rules / eq->nrules, eq->heap_engine);
        double warm = a->heap_warm / (double)a->windowed;
        const tick_case_t *c100 = &tc[TC];
        bench_row("memory/alert windowed series, [5m]", 1, -1, NULL, 0,
                  "%.0f B/series by the engine's tally (PM_ALERT_STAT_WINDOW_BYTES %llu / %llu "
                  "series); malloc after %u warm-up ticks: %.0f B/series; beyond the windows "
                  "(evaluation arena at its high-water mark, instances, history, ALERTS "
                  "series): %.1f MB with 1000 rules x 10, %.1f MB with 100 x 100, %.1f MB with "
                  "1000 x 1 (=), i.e. it grows with rules, not windowed series",
                  tally, (unsigned long long)a->window_bytes, (unsigned long long)a->windowed,
                  WARM_TICKS, warm, (a->heap_warm - (double)a->window_bytes) / 1e6,
                  (c100->heap_warm - (double)c100->window_bytes) / 1e6,
                  (eq->heap_warm - (double)eq->window_bytes) / 1e6);
        bench_row("memory/alert window formula", 1, -1, NULL, 0,
                  "per windowed series = ring (%.0f B header + B x %.0f B/bucket) + name and "
                  "label values (%.0f B here) + table slots (16 B at load <= 3/4: %.0f B here); "
                  "[5m] at 15 s: B = %.0f, ring %.0f B (pm__wstore_ring_bytes), total ~%.0f B "
                  "(tally %.0f B); [1h]: B = %.0f (max_buckets 60), ring %.0f B; histograms add "
                  "sparse bucket copies",
                  head, bucket, names, slot, nb5m, r5m, r5m + names + slot, tally, nb1h, r1h);
    }

    for (int i = 0; i < NTC; i++)
        world_free(&tc[i].w);
    return wrong;
}
