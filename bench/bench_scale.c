/* libperfmetrics — scale: 10k, 100k and 1M counter series, 10k and 100k
 * histogram series, and how every cost grows with the series count.
 *
 * Shape: the 10k exposition case (bench_exposition) scaled up: families of
 * PER_FAMILY = 100 series, one label `label` = value_000..value_099, so
 * N series are N / 100 families named bench_family_NNNNN ("Benchmark family
 * N." as help). The library's own perfmetrics_* families are switched off,
 * so every output holds exactly those series. Everything runs on the main
 * thread, pinned to CPU 0 (one recording thread).
 *
 * All sizes of one kind are built first, smallest first, each in a fresh
 * registry with a counting allocator hook, and stay alive together, so the
 * timed rounds can interleave them:
 *   1. registration: pm_family_new, then pm_counter_add_labeled with the
 *      series' value for every series, i.e. creation plus one record from
 *      one thread; histograms: the first pm_histogram_observe_labeled
 *      creates the series (timed), then 19 more values (20 distinct fine
 *      buckets, 1 us .. 10 s, log-spaced with a per-series offset) are
 *      recorded into each (not timed). While builds are cheap (under
 *      REG_BUDGET_MS in all) the registry is built again, up to BENCH_REPS
 *      times, and the median is reported; the last build is the one kept;
 *   2. memory, after pm_registry_maintain: the allocator hook's live bytes
 *      (sum of malloc_usable_size over the library's live blocks, plus 8 B
 *      of glibc chunk header per block: what malloc holds for the library),
 *      cross-checked with glibc mallinfo2 (in-use chunks + mmapped blocks)
 *      and the resident-set delta, from just before the build (malloc_trim
 *      first, so reused heap pages fault in again and count); registry,
 *      families, tables and label copies are all included. Then one held
 *      snapshot (its bytes through the hook: its arena uses the registry's
 *      allocator) and a check that every format gives the same bytes into
 *      a pm_buf and streamed, and that the Prometheus text has N samples;
 *   3. timed operations: a snapshot (pm_snapshot_new + release); for each
 *      format, pm_format of the held snapshot into a new pm_buf (freed) and
 *      pm_format_write of it to a callback that only reads and counts the
 *      bytes; for counters also the whole scrape in Prometheus text
 *      (snapshot + pm_buf_new + pm_format + free, and snapshot + stream).
 *      Rounds: every case of every size runs one repetition per round (its
 *      call repeated for BENCH_REP_MS, at least once; the mean), so load
 *      that drifts touches every size alike; the figure is the median over
 *      BENCH_REPS rounds (fewer, never under 7, when the rounds would take
 *      over ROUNDS_BUDGET_S). ns/op is per series: total / N. A page-fault
 *      baseline (fault in 8 MiB of fresh pages) runs in the same rounds, and
 *      every row counts its own minor faults (getrusage) and prices them at
 *      the baseline: on a VM, a fresh page can cost tens of microseconds;
 *   4. peak memory of each way, on each case's warm-up call: malloc_trim,
 *      reset the kernel's resident high-water mark (/proc/self/clear_refs =
 *      5), call, then VmHWM - VmRSS before: what the call needed on top of
 *      the registry and the held snapshot (format cases) or of the registry
 *      (snapshot, scrapes).
 * Linearity: for each quantity, baseline = the same quantity per series at
 * the previous size and ratio = this size's per series / that: a linear cost
 * gives 1.00x. The rows of the largest size add y = a + b N fitted by least
 * squares on the relative residuals over the sizes run, and the verdict
 * "every step linear within 15%" (|ratio - 1| <= 0.15 at every step).
 * Before building a size the bench checks MemAvailable against what it will
 * need (extrapolated from the previous size's registry, snapshot and text,
 * with a margin, keeping the larger of 2 GB and 10% of RAM free for the
 * rest of the machine), and stops there, saying so, when it cannot.
 *
 * Environment: BENCH_SCALE_MAX caps the largest size (e.g. 100000 for a
 * quick run), plus BENCH_REPS / BENCH_REP_MS as every bench.
 * Options: --only TEXT runs the rows whose case name contains TEXT (e.g.
 * "counters", "histograms 100k", "counters 1M: snapshot"; for perf), and the
 * registration and memory of each size it needs. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bench_common.h"

#include <malloc.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <perfmetrics/perfmetrics.h>

#define PER_FAMILY 100
#define HIST_VALUES 20
#define REG_BUDGET_MS 300
#define ROUNDS_BUDGET_S 40.0 /* per kind; repetitions shrink to 7, no fewer */
#define MAX_SIZES 3
#define MB 1e6

/* Targets (doc/performance.md, issue 10). */
#define TARGET_MEM_1M (200.0 * 1000 * 1000) /* bytes for 1M counter series */
#define TARGET_PROM_1M_NS 0.5e9             /* Prometheus exposition of 1M */
#define TARGET_STEP 0.15                    /* per-series cost step, relative */

/* ------------------------------------------------------------ allocator hook */

/* Single-threaded bench, but the hook is the library's: keep it exact
 * whichever thread calls. Bytes are malloc_usable_size, so free needs no
 * header (a header would change the very chunk sizes being measured). */
static atomic_size_t g_live, g_blocks;

static void *hook_alloc(void *user, size_t n)
{
    (void)user;
    void *p = malloc(n);
    if (p != NULL) {
        atomic_fetch_add(&g_live, malloc_usable_size(p));
        atomic_fetch_add(&g_blocks, 1);
    }
    return p;
}

static void hook_free(void *user, void *p)
{
    (void)user;
    if (p == NULL) return;
    atomic_fetch_sub(&g_live, malloc_usable_size(p));
    atomic_fetch_sub(&g_blocks, 1);
    free(p);
}

/* What malloc holds for the library: usable bytes + glibc's 8-byte chunk
 * header per block. */
static double hook_bytes(void)
{
    return (double)atomic_load(&g_live) + 8.0 * (double)atomic_load(&g_blocks);
}

/* ------------------------------------------------------------ probes */

static double heap_in_use(void)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    return (double)mi.uordblks + (double)mi.hblkhd;
#else
    return NAN;
#endif
}

/* A "Key:   123 kB" line of a /proc file, in bytes; NaN if absent. */
static double proc_kb(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return NAN;
    char line[256];
    size_t kl = strlen(key);
    double v = NAN;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtod(line + kl + 1, NULL) * 1024.0;
            break;
        }
    }
    fclose(f);
    return v;
}

static double rss_now(void) { return proc_kb("/proc/self/status", "VmRSS"); }
static double mem_available(void) { return proc_kb("/proc/meminfo", "MemAvailable"); }
static double mem_total(void) { return proc_kb("/proc/meminfo", "MemTotal"); }

/* Minor page faults of the process so far (first touches of fresh pages). */
static double minor_faults(void)
{
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) == 0 ? (double)u.ru_minflt : NAN;
}

/* Baseline: one fresh page faulted in (mmap FAULT_BYTES, write one byte per
 * page, munmap), timed in the same rounds as the cases, so it sees the same
 * load. On a VM this can cost tens of times the bare-metal figure, and every
 * operation that takes fresh memory from the kernel pays it per page. */
#define FAULT_BYTES (8u << 20)
static double g_fault_ns = NAN; /* per page, set by run_kind */

static void fault_in_fresh_pages(void)
{
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    char *p = mmap(NULL, FAULT_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) bench_die("mmap", -2);
    for (size_t i = 0; i < FAULT_BYTES; i += page) ((volatile char *)p)[i] = 1;
    munmap(p, FAULT_BYTES);
}

/* "; N page faults/call, ~X ms at the baseline (P% of the call)". */
static void fault_text(char *buf, size_t len, double faults, double ns)
{
    if (!isfinite(faults) || faults < 0.5 || !isfinite(g_fault_ns)) {
        snprintf(buf, len, "%s", isfinite(faults) ? "; no page faults" : "");
        return;
    }
    double cost = faults * g_fault_ns;
    snprintf(buf, len, "; %.0f page faults/call, ~%.1f ms at the baseline (%.0f%% of the call)",
             faults, cost / 1e6, ns > 0 ? 100 * cost / ns : 0.0);
}

/* Resets VmHWM to the current RSS (Linux >= 4.0); 0 if not possible. */
static int hwm_reset(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL) return 0;
    int ok = fputs("5", f) >= 0;
    ok = (fclose(f) == 0) && ok;
    return ok;
}

typedef struct {
    double hook, heap, rss, blocks;
} probe_t;

static probe_t probe(void)
{
    probe_t p = {hook_bytes(), heap_in_use(), rss_now(), (double)atomic_load(&g_blocks)};
    return p;
}

/* Peak-memory bracket around one call. */
typedef struct {
    int ok;
    double rss0;
} peak_t;

static peak_t peak_begin(void)
{
    peak_t p;
    malloc_trim(0);
    p.ok = hwm_reset();
    p.rss0 = rss_now();
    return p;
}

/* Bytes above the state at peak_begin: resident (VmHWM) or NaN. */
static double peak_end(const peak_t *p)
{
    double hwm = proc_kb("/proc/self/status", "VmHWM");
    return p->ok ? hwm - p->rss0 : NAN;
}

/* ------------------------------------------------------------ the world */

typedef enum {
    KIND_COUNTER,
    KIND_HIST
} kind_t;

static const char *g_only; /* --only TEXT */
static const char *kind_name(int k);
static const char *size_name(size_t n);

/* The row "scale <kind> <size>: <label>" and whether --only selects it. */
static int wanted(int kind, size_t n, const char *label, char *name, size_t len)
{
    char tmp[96];
    if (name == NULL) {
        name = tmp;
        len = sizeof tmp;
    }
    snprintf(name, len, "scale %s %s: %s", kind_name(kind), size_name(n), label);
    return g_only == NULL || strstr(name, g_only) != NULL;
}

typedef struct {
    kind_t kind;
    size_t n, nfam;
    pm_registry_t *r;
} world_t;

static const char *kind_name(int k) { return k == KIND_COUNTER ? "counters" : "histograms"; }

static double hist_value(size_t series, unsigned k)
{
    /* 20 log-spaced values 1 us .. 10 s (a factor ~2.2 apart, so each lands in
     * its own fine bucket), shifted per series so series differ. */
    double u = (double)((series * 2654435761u) % 1000u) / 1000.0;
    return pow(10.0, -6.0 + 7.0 * ((double)k + u) / HIST_VALUES);
}

static pm_registry_t *registry_new(void)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    bench_check(pm_registry_opts_new(&o), "pm_registry_opts_new");
    bench_check(pm_registry_opts_set_allocator(o, hook_alloc, hook_free, NULL),
                "pm_registry_opts_set_allocator");
    bench_check(pm_registry_opts_set_self_metrics(o, 0), "pm_registry_opts_set_self_metrics");
    bench_check(pm_registry_new(o, &r), "pm_registry_new");
    pm_registry_opts_free(o);
    return r;
}

/* Builds the world; returns the registration time in ns (families, and the
 * creating record of every series). */
static uint64_t world_build(world_t *w)
{
    w->r = registry_new();
    pm_family_opts_t *fo = NULL;
    const char *lname[1] = {"label"};
    bench_check(pm_family_opts_new(&fo), "pm_family_opts_new");
    bench_check(pm_family_opts_set_labels(fo, lname, 1), "pm_family_opts_set_labels");
    char lv[PER_FAMILY][16];
    for (size_t v = 0; v < PER_FAMILY; v++) snprintf(lv[v], sizeof lv[v], "value_%03zu", v);
    pm_family_t **fams = malloc(w->nfam * sizeof *fams);
    if (fams == NULL) bench_die("malloc", -2);
    uint64_t t0 = bench_now();
    for (size_t f = 0; f < w->nfam; f++) {
        char name[48], help[48];
        if (w->kind == KIND_COUNTER)
            snprintf(name, sizeof name, "bench_family_%05zu", f);
        else
            snprintf(name, sizeof name, "bench_family_%05zu_seconds", f);
        snprintf(help, sizeof help, "Benchmark family %zu.", f);
        bench_check(pm_family_new(w->r,
                                  w->kind == KIND_COUNTER ? PM_TYPE_COUNTER : PM_TYPE_HISTOGRAM,
                                  name, help, fo, &fams[f]),
                    "pm_family_new");
        for (size_t v = 0; v < PER_FAMILY; v++) {
            const char *vals[1] = {lv[v]};
            if (w->kind == KIND_COUNTER)
                bench_check(pm_counter_add_labeled(fams[f], vals, 1, bench_series_value(f, v)),
                            "pm_counter_add_labeled");
            else
                bench_check(pm_histogram_observe_labeled(fams[f], vals, 1,
                                                         hist_value(f * PER_FAMILY + v, 0)),
                            "pm_histogram_observe_labeled");
        }
    }
    uint64_t t1 = bench_now();
    pm_family_opts_free(fo);
    if (w->kind == KIND_HIST) {
        for (size_t f = 0; f < w->nfam; f++)
            for (size_t v = 0; v < PER_FAMILY; v++) {
                const char *vals[1] = {lv[v]};
                for (unsigned k = 1; k < HIST_VALUES; k++)
                    bench_check(pm_histogram_observe_labeled(fams[f], vals, 1,
                                                             hist_value(f * PER_FAMILY + v, k)),
                                "pm_histogram_observe_labeled");
            }
    }
    size_t got = 0;
    for (size_t f = 0; f < w->nfam; f++) got += pm_family_series_count(fams[f]);
    free(fams);
    if (got != w->n) {
        fprintf(stderr, "bench_scale: %zu series registered, expected %zu\n", got, w->n);
        exit(1);
    }
    bench_check(pm_registry_maintain(w->r), "pm_registry_maintain");
    return t1 - t0;
}

static void world_free(world_t *w)
{
    pm_registry_free(w->r);
    w->r = NULL;
}

/* ------------------------------------------------------------ quantities */

typedef enum {
    OP_SNAP,
    OP_BUF,
    OP_STREAM,
    OP_SCRAPE_BUF,
    OP_SCRAPE_STREAM
} op_t;

enum {
    Q_MEM,
    Q_REG,
    Q_SNAP,
    Q_PROM_B,
    Q_PROM_S,
    Q_OM_B,
    Q_OM_S,
    Q_JSON_B,
    Q_JSON_S,
    Q_SCRAPE_B,
    Q_SCRAPE_S,
    NQ
};
#define Q_FAULT NQ /* the page-fault baseline, timed with the cases */

/* Every row of a size, in print order. Histograms have no scrape target, so
 * no scrape rows: their scrape is the snapshot plus a format row. */
static const struct {
    const char *label;
    op_t op; /* timed operation (Q_SNAP and later) */
    pm_format_t fmt;
    int counters_only;
} QDEF[NQ] = {
    [Q_MEM] = {"memory", 0, 0, 0},
    [Q_REG] = {"registration", 0, 0, 0},
    [Q_SNAP] = {"snapshot", OP_SNAP, 0, 0},
    [Q_PROM_B] = {"prometheus, pm_buf", OP_BUF, PM_FORMAT_PROMETHEUS, 0},
    [Q_PROM_S] = {"prometheus, streamed", OP_STREAM, PM_FORMAT_PROMETHEUS, 0},
    [Q_OM_B] = {"openmetrics, pm_buf", OP_BUF, PM_FORMAT_OPENMETRICS, 0},
    [Q_OM_S] = {"openmetrics, streamed", OP_STREAM, PM_FORMAT_OPENMETRICS, 0},
    [Q_JSON_B] = {"json, pm_buf", OP_BUF, PM_FORMAT_JSON, 0},
    [Q_JSON_S] = {"json, streamed", OP_STREAM, PM_FORMAT_JSON, 0},
    [Q_SCRAPE_B] = {"scrape prometheus, pm_buf", OP_SCRAPE_BUF, PM_FORMAT_PROMETHEUS, 1},
    [Q_SCRAPE_S] = {"scrape prometheus, streamed", OP_SCRAPE_STREAM, PM_FORMAT_PROMETHEUS, 1},
};

static int q_wanted(kind_t kind, size_t n, int q)
{
    if (QDEF[q].counters_only && kind != KIND_COUNTER) return 0;
    return wanted(kind, n, QDEF[q].label, NULL, 0);
}

static int size_wanted(kind_t kind, size_t n)
{
    for (int q = 0; q < NQ; q++)
        if (q_wanted(kind, n, q)) return 1;
    return 0;
}

/* One size: its world, what was measured at build time, and the results. */
typedef struct {
    world_t w;
    pm_snapshot_t *held; /* the format cases' snapshot */
    size_t n;
    double y[NQ];      /* total: bytes (Q_MEM) or ns; NaN = not measured */
    double faults[NQ]; /* minor page faults per call (registration: per build) */
    double peak[NQ];   /* resident bytes the operation added at its peak; NaN = n/a */
    probe_t mem;       /* registry: deltas in bytes */
    double blocks;     /* the library's live blocks */
    double snap_bytes;
    unsigned builds;
    size_t text[4];    /* bytes of text per format (index: pm_format_t) */
    size_t samples;    /* sample lines in the Prometheus text */
    double peak_total; /* registry + the worst operation, resident */
} size_res_t;

/* "10k", "100k", "1M": a string that stays valid (one per size run). */
static const char *size_name(size_t n)
{
    static struct {
        size_t n;
        char s[24];
    } names[8];
    for (size_t i = 0; i < 8; i++) {
        if (names[i].n == n) return names[i].s;
        if (names[i].n == 0) {
            names[i].n = n;
            if (n % 1000000 == 0)
                snprintf(names[i].s, sizeof names[i].s, "%zuM", n / 1000000);
            else if (n % 1000 == 0)
                snprintf(names[i].s, sizeof names[i].s, "%zuk", n / 1000);
            else
                snprintf(names[i].s, sizeof names[i].s, "%zu", n);
            return names[i].s;
        }
    }
    return "?";
}

static const char *fmt_name(pm_format_t f)
{
    return f == PM_FORMAT_PROMETHEUS    ? "prometheus"
           : f == PM_FORMAT_OPENMETRICS ? "openmetrics"
                                        : "json";
}

/* ------------------------------------------------------------ timed cases */

typedef struct {
    size_res_t *s; /* its size */
    int q;
    double v[64];
    double ns;            /* median, whole operation */
    double peak;          /* resident bytes above the state before the warm-up call */
    double faults, calls; /* minor page faults over the timed calls */
} tcase_t;

static int discard(void *user, const char *data, size_t len)
{
    size_t *n = user;
    /* Read the chunk as a consumer would (first and last byte). */
    if (len) {
        volatile char sink = (char)(data[0] ^ data[len - 1]);
        (void)sink;
    }
    *n += len;
    return 0;
}

static size_t run_op(const tcase_t *k)
{
    if (k->q == Q_FAULT) {
        fault_in_fresh_pages();
        return 0;
    }
    op_t op = QDEF[k->q].op;
    pm_format_t fmt = QDEF[k->q].fmt;
    pm_snapshot_t *s = NULL;
    const pm_snapshot_t *snap = k->s->held;
    size_t bytes = 0;
    if (op == OP_SNAP || op == OP_SCRAPE_BUF || op == OP_SCRAPE_STREAM) {
        bench_check(pm_snapshot_new(k->s->w.r, &s), "pm_snapshot_new");
        snap = s;
    }
    if (op == OP_BUF || op == OP_SCRAPE_BUF) {
        pm_buf_t *b = NULL;
        bench_check(pm_buf_new(&b), "pm_buf_new");
        bench_check(pm_format(snap, fmt, b), "pm_format");
        bytes = pm_buf_len(b);
        pm_buf_free(b);
    } else if (op == OP_STREAM || op == OP_SCRAPE_STREAM) {
        bench_check(pm_format_write(snap, fmt, discard, &bytes), "pm_format_write");
    }
    if (s != NULL) pm_snapshot_release(s);
    return bytes;
}

/* Every case of every size: one warm-up call each (bracketed for its peak
 * memory), then rounds in which every case runs one repetition (its call
 * repeated for BENCH_REP_MS, at least once; the mean), so load that drifts
 * touches every size alike and the steps compare fairly. Medians. */
static unsigned measure(tcase_t *cs, size_t ncases)
{
    unsigned reps = bench_reps();
    if (reps > 64) reps = 64;
    const uint64_t span = (uint64_t)bench_rep_ms() * 1000000u;
    double round_ns = 0;
    for (size_t i = 0; i < ncases; i++) {
        peak_t p = peak_begin();
        uint64_t t0 = bench_now();
        run_op(&cs[i]);
        double t = (double)(bench_now() - t0);
        cs[i].peak = peak_end(&p);
        round_ns += t > (double)span ? t : (double)span;
    }
    /* A time budget for the rounds, never below the harness's 7 repetitions. */
    while (reps > 7 && (double)reps * round_ns > ROUNDS_BUDGET_S * 1e9) reps--;
    for (unsigned r = 0; r < reps; r++) {
        for (size_t i = 0; i < ncases; i++) {
            double f0 = minor_faults();
            uint64_t t0 = bench_now(), t1, k = 0;
            do {
                run_op(&cs[i]);
                k++;
                t1 = bench_now();
            } while (t1 - t0 < span);
            cs[i].v[r] = (double)(t1 - t0) / (double)k;
            cs[i].faults += minor_faults() - f0;
            cs[i].calls += (double)k;
        }
    }
    for (size_t i = 0; i < ncases; i++) cs[i].ns = bench_median(cs[i].v, reps);
    return reps;
}

/* ------------------------------------------------------------ linearity */

/* y = a + b n over the sizes with a measured y, least squares on the
 * relative residuals (weights 1/y^2: the criterion is relative and the
 * sizes span two decades). Residuals are (fit - y) / y. Returns the count
 * of points; idx[] lists them. */
static size_t fit_linear(const size_res_t *res, size_t nres, int q, double *a, double *b,
                         double resid[MAX_SIZES], size_t idx[MAX_SIZES])
{
    double s00 = 0, s01 = 0, s11 = 0, t0 = 0, t1 = 0;
    size_t k = 0;
    for (size_t i = 0; i < nres; i++) {
        double x = (double)res[i].n, y = res[i].y[q];
        if (!isfinite(y) || y <= 0) continue;
        double w = 1 / (y * y);
        s00 += w;
        s01 += w * x;
        s11 += w * x * x;
        t0 += w * y;
        t1 += w * x * y;
        idx[k++] = i;
    }
    double det = s00 * s11 - s01 * s01;
    *a = (t0 * s11 - t1 * s01) / det;
    *b = (s00 * t1 - s01 * t0) / det;
    for (size_t j = 0; j < k; j++) {
        const size_res_t *r = &res[idx[j]];
        resid[j] = (*a + *b * (double)r->n - r->y[q]) / r->y[q];
    }
    return k;
}

/* Ratio of per-series costs, this size over the previous one: 1 = linear. */
static double step_ratio(const size_res_t *cur, const size_res_t *prev, int q)
{
    return (cur->y[q] / (double)cur->n) / (prev->y[q] / (double)prev->n);
}

/* The fit over every size run, for the largest size's row. Returns 0 when a
 * step misses TARGET_STEP. */
static int fit_text(char *buf, size_t len, const size_res_t *res, size_t nres, int q)
{
    double a, b, resid[MAX_SIZES];
    size_t idx[MAX_SIZES];
    size_t k = fit_linear(res, nres, q, &a, &b, resid, idx);
    buf[0] = '\0';
    if (k < 2) {
        snprintf(buf, len, "; no fit: one size run");
        return 1;
    }
    int ok = 1, first_only = 1; /* only the step from the smallest size misses */
    size_t off = 0;
#define APPEND(...) (off += (size_t)snprintf(buf + off, off < len ? len - off : 0, __VA_ARGS__))
    APPEND("; fit over");
    for (size_t j = 0; j < k; j++) APPEND("%s%s", j ? "/" : " ", size_name(res[idx[j]].n));
    if (q == Q_MEM)
        APPEND(": %.2f MB + %.1f B/series", a / 1e6, b);
    else
        APPEND(": %.3f ms + %.1f ns/series", a / 1e6, b);
    APPEND(", residuals");
    for (size_t j = 0; j < k; j++) APPEND(" %+.1f%%", 100 * resid[j]);
    APPEND("; per-series steps");
    for (size_t j = 1; j < k; j++) {
        double d = step_ratio(&res[idx[j]], &res[idx[j - 1]], q) - 1;
        if (fabs(d) > TARGET_STEP) {
            ok = 0;
            if (j > 1) first_only = 0;
        }
        APPEND(" %s->%s %+.1f%%", size_name(res[idx[j - 1]].n), size_name(res[idx[j]].n), 100 * d);
    }
    APPEND("; every step linear within 15%%: %s", bench_verdict(ok));
    if (!ok && first_only && k > 2)
        APPEND(" (from %s on it is: the %s registry and snapshot stay in the cache between "
               "rounds, larger ones are read from DRAM; doc/performance.md, Scale)",
               size_name(res[idx[1]].n), size_name(res[idx[0]].n));
    else if (!ok)
        APPEND(" (see doc/performance.md, Scale)");
#undef APPEND
    return ok;
}

/* ------------------------------------------------------------ building a size */

static size_t count_lines_with(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p++) n++;
    return n;
}

/* Every format once into a pm_buf and once streamed: the same bytes, or the
 * bench stops. Returns the Prometheus text's sample count. */
static size_t verify_output(const world_t *w, const pm_snapshot_t *held, size_t text[4])
{
    size_t samples = 0;
    for (int f = PM_FORMAT_PROMETHEUS; f <= PM_FORMAT_JSON; f++) {
        pm_buf_t *b = NULL;
        bench_check(pm_buf_new(&b), "pm_buf_new");
        bench_check(pm_format(held, (pm_format_t)f, b), "pm_format");
        size_t streamed = 0;
        bench_check(pm_format_write(held, (pm_format_t)f, discard, &streamed), "pm_format_write");
        text[f] = pm_buf_len(b);
        if (streamed != pm_buf_len(b)) {
            fprintf(stderr, "bench_scale: %s: streamed %zu bytes, pm_buf holds %zu\n",
                    fmt_name((pm_format_t)f), streamed, pm_buf_len(b));
            exit(1);
        }
        if (f == PM_FORMAT_PROMETHEUS)
            samples =
                count_lines_with(pm_buf_data(b), w->kind == KIND_COUNTER ? "_total{" : "_count{");
        pm_buf_free(b);
    }
    return samples;
}

/* What building and measuring size n will add to the process, with a
 * margin: per series, the previous size's registry, snapshot and longest
 * text (a pm_buf may grow to twice its text, and a scrape holds a second
 * snapshot), else a generous prior (a counter series, its snapshot and text
 * are well under 1 KB; a histogram series may hold a dense copy of its
 * buckets, ~22 KB, before sparse storage). */
static double need_bytes(kind_t kind, size_t n, const size_res_t *prev)
{
    double per = kind == KIND_COUNTER ? 1024.0 : 64.0 * 1024.0;
    if (prev != NULL) {
        size_t text = 0;
        for (int f = PM_FORMAT_PROMETHEUS; f <= PM_FORMAT_JSON; f++)
            if (prev->text[f] > text) text = prev->text[f];
        double reg = prev->mem.rss > prev->mem.hook ? prev->mem.rss : prev->mem.hook;
        per = (reg + 2 * prev->snap_bytes + 2.0 * (double)text) / (double)prev->n;
    }
    return 1.5 * per * (double)n + 64.0 * MB;
}

/* Whether the machine can spare `need`: MemAvailable minus a reserve for
 * everyone else (the larger of 2 GiB and 10% of RAM). */
static int memory_ok(double need, char *why, size_t len)
{
    double avail = mem_available(), total = mem_total();
    double reserve = 0.1 * total > 2000 * MB ? 0.1 * total : 2000 * MB;
    if (!isfinite(avail)) {
        snprintf(why, len, "MemAvailable unreadable");
        return 0;
    }
    if (avail - need >= reserve) return 1;
    snprintf(why, len, "needs ~%.0f MB, MemAvailable %.0f MB, keeping %.0f MB free", need / MB,
             avail / MB, reserve / MB);
    return 0;
}

/* Builds size n (registration timed, repeated while cheap), reads its
 * memory, takes the snapshot the format cases use and checks the output. */
static void build_size(kind_t kind, size_t n, size_res_t *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    for (int q = 0; q < NQ; q++) out->y[q] = out->peak[q] = out->faults[q] = NAN;
    out->w = (world_t){kind, n, n / PER_FAMILY, NULL};
    unsigned reps = bench_reps();
    double reg[64];
    unsigned builds = 0;
    uint64_t spent = 0;
    probe_t p0;
    for (;;) {
        malloc_trim(0);
        p0 = probe();
        double f0 = minor_faults();
        uint64_t t = world_build(&out->w);
        out->faults[Q_REG] = minor_faults() - f0; /* the build kept: the last one */
        reg[builds++] = (double)t;
        spent += t;
        if (builds >= reps || builds >= 64 || spent >= (uint64_t)REG_BUDGET_MS * 1000000u) break;
        world_free(&out->w);
    }
    out->builds = builds;
    out->y[Q_REG] = bench_median(reg, builds);
    probe_t p1 = probe();
    out->mem.hook = p1.hook - p0.hook;
    out->mem.heap = p1.heap - p0.heap;
    out->mem.rss = p1.rss - p0.rss;
    out->blocks = p1.blocks - p0.blocks;
    out->y[Q_MEM] = out->mem.hook;
    double h0 = hook_bytes();
    bench_check(pm_snapshot_new(out->w.r, &out->held), "pm_snapshot_new");
    out->snap_bytes = hook_bytes() - h0;
    out->samples = verify_output(&out->w, out->held, out->text);
}

static void size_free(size_res_t *s)
{
    pm_snapshot_release(s->held);
    s->held = NULL;
    world_free(&s->w);
    malloc_trim(0);
}

/* ------------------------------------------------------------ rows */

/* Prints the rows of res[idx]; the fits go on the rows of the last size. */
static void print_size(kind_t kind, const size_res_t *res, size_t idx, int last)
{
    const size_res_t *r = &res[idx], *prev = idx ? &res[idx - 1] : NULL;
    double n = (double)r->n;
    int is_1m_counters = kind == KIND_COUNTER && r->n == 1000000;
    for (int q = 0; q < NQ; q++) {
        char name[96], info[768], fit[512] = "", base[48];
        if (!q_wanted(kind, r->n, q) || !isfinite(r->y[q])) continue;
        wanted(kind, r->n, QDEF[q].label, name, sizeof name);
        if (last) fit_text(fit, sizeof fit, res, idx + 1, q);
        int have_prev = prev != NULL && isfinite(prev->y[q]);
        if (q == Q_MEM) {
            char tgt[160] = "", step[64] = "";
            if (have_prev)
                snprintf(step, sizeof step, "; per series vs %s: %.2fx", size_name(prev->n),
                         step_ratio(r, prev, q));
            if (is_1m_counters) {
                double worst = r->mem.rss > r->mem.hook ? r->mem.rss : r->mem.hook;
                snprintf(tgt, sizeof tgt,
                         "; target 1M counter series <= 200 MB total (malloc and RSS): %s, "
                         "%.1f MB",
                         bench_verdict(worst <= TARGET_MEM_1M), worst / 1e6);
            }
            bench_row(name, 1, -1, NULL, 0,
                      "%.1f B/series, %.1f MB total (allocator hook: malloc_usable_size + 8 B "
                      "per block, %.0f blocks); mallinfo2 %.1f B; RSS %.1f B; a snapshot "
                      "holds %.1f B/series more (hook); peak resident with the worst operation "
                      "below: %.1f MB%s%s%s",
                      r->mem.hook / n, r->mem.hook / 1e6, r->blocks, r->mem.heap / n,
                      r->mem.rss / n, r->snap_bytes / n, r->peak_total / 1e6, tgt, step, fit);
            continue;
        }
        if (q == Q_REG) {
            snprintf(info, sizeof info,
                     "%.1f ms for %zu families x %d series (pm_family_new, then the %s that "
                     "creates each series), median of %u build%s",
                     r->y[q] / 1e6, r->n / PER_FAMILY, PER_FAMILY,
                     kind == KIND_COUNTER ? "pm_counter_add_labeled"
                                          : "pm_histogram_observe_labeled",
                     r->builds, r->builds == 1 ? "" : "s");
        } else if (q == Q_SNAP) {
            snprintf(info, sizeof info, "%.2f ms; the snapshot holds %.1f MB (%.1f B/series)",
                     r->y[q] / 1e6, r->snap_bytes / 1e6, r->snap_bytes / n);
        } else if (q == Q_SCRAPE_B || q == Q_SCRAPE_S) {
            char tgt[96] = "";
            if (is_1m_counters)
                snprintf(tgt, sizeof tgt, "; target Prometheus exposition of 1M <= 0.5 s: %s",
                         bench_verdict(r->y[q] <= TARGET_PROM_1M_NS));
            snprintf(info, sizeof info,
                     "%.2f ms = snapshot + %s; peak RSS over the registry %.1f MB; %zu "
                     "samples in the text%s",
                     r->y[q] / 1e6,
                     q == Q_SCRAPE_B ? "pm_buf_new + pm_format + pm_buf_free"
                                     : "pm_format_write to a discarding callback",
                     r->peak[q] / MB, r->samples, tgt);
        } else {
            pm_format_t f = QDEF[q].fmt;
            snprintf(info, sizeof info,
                     "%.2f ms, %.1f MB of text (%.1f B/series); peak RSS over the held "
                     "snapshot %.1f MB (%s)",
                     r->y[q] / 1e6, (double)r->text[f] / 1e6, (double)r->text[f] / n,
                     r->peak[q] / MB,
                     QDEF[q].op == OP_STREAM ? "a 16 KiB stage, then the callback"
                                             : "the whole text in one pm_buf");
        }
        char ft[128];
        fault_text(ft, sizeof ft, r->faults[q], r->y[q]);
        if (have_prev) snprintf(base, sizeof base, "%s, per series", size_name(prev->n));
        bench_row(name, 1, r->y[q] / n, have_prev ? base : NULL,
                  have_prev ? prev->y[q] / (double)prev->n : 0, "%s%s%s", info, ft, fit);
    }
}

/* All sizes of one kind live at once: built smallest first (each checked
 * against MemAvailable before it is built), measured interleaved, printed,
 * freed. Returns 0 if an output check failed. */
static int run_kind(kind_t kind, const size_t *sizes, size_t nsizes, size_t cap)
{
    static size_res_t res[MAX_SIZES];
    size_t nres = 0, ntodo = 0, todo[MAX_SIZES];
    int ok = 1;
    char why[160] = "";
    for (size_t i = 0; i < nsizes; i++)
        if (sizes[i] <= cap && size_wanted(kind, sizes[i])) todo[ntodo++] = sizes[i];
    if (ntodo == 0) return 1;
    size_t skipped = ntodo;
    for (size_t i = 0; i < ntodo; i++) {
        if (!memory_ok(need_bytes(kind, todo[i], nres ? &res[nres - 1] : NULL), why, sizeof why)) {
            skipped = i;
            break;
        }
        size_res_t *r = &res[nres++];
        build_size(kind, todo[i], r);
        if (r->samples != r->n) {
            fprintf(stderr,
                    "bench_scale: %s %s: the Prometheus text holds %zu samples, "
                    "expected %zu\n",
                    kind_name(kind), size_name(r->n), r->samples, r->n);
            ok = 0;
        }
    }
    tcase_t *cs = calloc(nres * NQ + 1, sizeof *cs);
    if (cs == NULL) bench_die("calloc", -2);
    cs[0].q = Q_FAULT;
    size_t nc = 1;
    for (size_t i = 0; i < nres; i++)
        for (int q = Q_SNAP; q < NQ; q++)
            if (q_wanted(kind, res[i].n, q)) {
                cs[nc].s = &res[i];
                cs[nc++].q = q;
            }
    unsigned reps = measure(cs, nc);
    const double pages = (double)FAULT_BYTES / (double)sysconf(_SC_PAGESIZE);
    g_fault_ns = cs[0].ns / pages;
    bench_row("baseline: first touch of a fresh page", 1, g_fault_ns, NULL, 0,
              "mmap %u MiB, write one byte per page, munmap, timed in the rounds of the %s "
              "below (%.2f faults/page by getrusage): the kernel's page-fault cost here; the "
              "rows count their own minor faults and price them at this figure; timed rows "
              "below: median of %u interleaved rounds%s",
              FAULT_BYTES >> 20, kind_name(kind), cs[0].faults / cs[0].calls / pages, reps,
              reps < bench_reps() ? " (fewer than BENCH_REPS: the 40 s time budget)" : "");
    for (size_t i = 1; i < nc; i++) {
        size_res_t *r = cs[i].s;
        r->y[cs[i].q] = cs[i].ns;
        r->faults[cs[i].q] = cs[i].calls > 0 ? cs[i].faults / cs[i].calls : NAN;
        r->peak[cs[i].q] = cs[i].peak;
    }
    free(cs);
    for (size_t i = 0; i < nres; i++) {
        size_res_t *r = &res[i];
        double reg = r->mem.rss > r->mem.hook ? r->mem.rss : r->mem.hook;
        double worst = r->snap_bytes;
        for (int q = Q_SNAP; q < NQ; q++) {
            if (!isfinite(r->peak[q])) continue;
            /* Format cases run over the held snapshot; the others take their own. */
            double extra = QDEF[q].op == OP_BUF || QDEF[q].op == OP_STREAM
                               ? r->snap_bytes + r->peak[q]
                               : r->peak[q];
            if (extra > worst) worst = extra;
        }
        r->peak_total = reg + worst;
        print_size(kind, res, i, i + 1 == nres);
    }
    for (size_t i = 0; i < nres; i++) size_free(&res[i]);
    for (size_t i = skipped; i < ntodo; i++) {
        char name[96];
        wanted(kind, todo[i], "not run", name, sizeof name);
        bench_row(name, 1, -1, NULL, 0, "%s; its targets: MISSED (not measured)", why);
        break;
    }
    if (kind == KIND_COUNTER && cap < 1000000)
        bench_row("scale counters 1M: not run", 1, -1, NULL, 0,
                  "BENCH_SCALE_MAX=%zu: the 1M targets (<= 200 MB, Prometheus <= 0.5 s) are "
                  "not checked",
                  cap);
    return ok;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
            g_only = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--only TEXT]\n", argv[0]);
            return 2;
        }
    }
    bench_pin_self(0);
    size_t cap = bench_env_uint("BENCH_SCALE_MAX", 1000000, 10000);
    static const size_t csizes[] = {10000, 100000, 1000000};
    static const size_t hsizes[] = {10000, 100000};
    int ok = run_kind(KIND_COUNTER, csizes, 3, cap);
    ok = run_kind(KIND_HIST, hsizes, 2, cap) && ok;
    return ok ? 0 : 1;
}
