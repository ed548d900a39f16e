/* libperfmetrics — memory per series.
 *
 *   counters:   100,000 series of one family with one label, created, then
 *               recorded into once each from one thread (pinned to CPU 0);
 *   histograms: 1,000 series with the default range [1e-9, 1e4] s, created,
 *               then 16 log-uniform values (1 us .. 10 s) recorded into each
 *               from the main thread (CPU 0), then also from a second thread
 *               (CPU 1), which lives for the whole program.
 * Each set-up runs twice in this process:
 *   1. default allocator: glibc mallinfo2() in-use bytes, uordblks (heap
 *      chunks) + hblkhd (large blocks malloc mmaps, e.g. big cell arenas),
 *      delta from before the registry existed; and the resident-set delta
 *      (catches memory mapped without malloc);
 *   2. a counting allocator set with pm_registry_opts_set_allocator: the bytes
 *      the library asked for, live at the time of the reading.
 * pm_registry_maintain runs before each reading so deferred work is done.
 * The figure is total bytes / series: registry, family, index and label
 * copies are all included. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bench_common.h"

#include <malloc.h>
#include <math.h>
#include <unistd.h>

#include <perfmetrics/perfmetrics.h>

#define N_COUNTERS 100000
#define N_HISTS 1000
#define N_OBS 16
/* PEERS.md: HdrHistogram_c for 1 ns..1 h at 2 significant digits is 37 KB. */
#define HDR_BYTES 37000.0

/* ------------------------------------------------------------ probes */

typedef struct {
    double heap; /* mallinfo2 uordblks + hblkhd */
    double rss;  /* resident set */
} probe_t;

static probe_t probe(void)
{
    probe_t p = {0, 0};
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 mi = mallinfo2();
    p.heap = (double)mi.uordblks + (double)mi.hblkhd;
#else
    p.heap = NAN;
#endif
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        unsigned long size = 0, res = 0;
        if (fscanf(f, "%lu %lu", &size, &res) == 2)
            p.rss = (double)res * (double)sysconf(_SC_PAGESIZE);
        else
            p.rss = NAN;
        fclose(f);
    } else {
        p.rss = NAN;
    }
    return p;
}

/* Counting allocator: a 16-byte header keeps each block's size. */
static atomic_llong g_live;

static void *count_alloc(void *user, size_t size)
{
    (void)user;
    unsigned char *p = malloc(size + 16);
    if (p == NULL)
        return NULL;
    memcpy(p, &size, sizeof size);
    atomic_fetch_add(&g_live, (long long)size);
    return p + 16;
}

static void count_free(void *user, void *ptr)
{
    (void)user;
    if (ptr == NULL)
        return;
    unsigned char *p = (unsigned char *)ptr - 16;
    size_t size;
    memcpy(&size, p, sizeof size);
    atomic_fetch_sub(&g_live, (long long)size);
    free(p);
}

static pm_registry_t *new_registry(int counting)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    bench_check(pm_registry_opts_new(&o), "pm_registry_opts_new");
    if (counting)
        bench_check(pm_registry_opts_set_allocator(o, count_alloc, count_free, NULL),
                    "pm_registry_opts_set_allocator");
    bench_check(pm_registry_new(o, &r), "pm_registry_new");
    pm_registry_opts_free(o);
    return r;
}

/* One reading per stage: heap, rss (default allocator run), alloc (counting run). */
typedef struct {
    double heap, rss, alloc;
} reading_t;

/* ------------------------------------------------------------ counters */

static pm_family_t *counter_family(pm_registry_t *r)
{
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    const char *names[1] = {"id"};
    bench_check(pm_family_opts_new(&o), "pm_family_opts_new");
    bench_check(pm_family_opts_set_labels(o, names, 1), "pm_family_opts_set_labels");
    bench_check(pm_family_opts_set_max_series(o, N_COUNTERS + 16), "pm_family_opts_set_max_series");
    bench_check(pm_family_new(r, PM_TYPE_COUNTER, "bench_mem_counter", "memory", o, &f),
                "pm_family_new");
    pm_family_opts_free(o);
    return f;
}

/* stage 0: created; stage 1: recorded into from one thread. */
static void counters_run(int counting, reading_t out[2])
{
    probe_t p0 = probe();
    long long a0 = atomic_load(&g_live);
    pm_registry_t *r = new_registry(counting);
    pm_family_t *f = counter_family(r);
    char lv[32];
    const char *vals[1] = {lv};
    for (size_t i = 0; i < N_COUNTERS; i++) {
        snprintf(lv, sizeof lv, "series_%06zu", i);
        pm_counter_t *c = NULL;
        bench_check(pm_counter_get(f, vals, 1, &c), "pm_counter_get");
        pm_counter_release(c);
    }
    bench_check(pm_registry_maintain(r), "pm_registry_maintain");
    for (int stage = 0; stage < 2; stage++) {
        if (stage == 1) {
            for (size_t i = 0; i < N_COUNTERS; i++) {
                snprintf(lv, sizeof lv, "series_%06zu", i);
                bench_check(pm_counter_add_labeled(f, vals, 1, 1.0), "pm_counter_add_labeled");
            }
            bench_check(pm_registry_maintain(r), "pm_registry_maintain");
        }
        probe_t p = probe();
        if (counting) {
            out[stage].alloc = (double)(atomic_load(&g_live) - a0) / N_COUNTERS;
        } else {
            out[stage].heap = (p.heap - p0.heap) / N_COUNTERS;
            out[stage].rss = (p.rss - p0.rss) / N_COUNTERS;
        }
    }
    if (pm_family_series_count(f) < N_COUNTERS) {
        fprintf(stderr, "bench_memory: only %zu counter series\n", pm_family_series_count(f));
        exit(1);
    }
    pm_registry_free(r);
}

/* ------------------------------------------------------------ histograms */

static double g_obs[N_OBS];

static void record_all(pm_histogram_t **h)
{
    for (size_t i = 0; i < N_HISTS; i++)
        for (size_t k = 0; k < N_OBS; k++)
            pm_histogram_observe(h[i], g_obs[k]);
}

/* The second recording thread, pinned to CPU 1. It lives for the whole
 * program, so it is the same thread (and the library gives it the same
 * stripe) in both runs, and it is alive while memory is read. */
static struct {
    pthread_t th;
    pthread_barrier_t go, done;
    pm_histogram_t **h; /* NULL: quit */
} g_helper;

static void *helper_main(void *p)
{
    (void)p;
    bench_pin_self(1);
    for (;;) {
        pthread_barrier_wait(&g_helper.go);
        if (g_helper.h == NULL)
            return NULL;
        record_all(g_helper.h);
        pthread_barrier_wait(&g_helper.done);
    }
}

static void helper_record(pm_histogram_t **h)
{
    g_helper.h = h;
    pthread_barrier_wait(&g_helper.go);
    if (h != NULL)
        pthread_barrier_wait(&g_helper.done);
}

/* stage 0: created; 1: recorded from one thread; 2: from two threads. */
static void hists_run(int counting, reading_t out[3])
{
    static pm_histogram_t *h[N_HISTS];
    probe_t p0 = probe();
    long long a0 = atomic_load(&g_live);
    pm_registry_t *r = new_registry(counting);
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    const char *names[1] = {"id"};
    bench_check(pm_family_opts_new(&o), "pm_family_opts_new");
    bench_check(pm_family_opts_set_labels(o, names, 1), "pm_family_opts_set_labels");
    bench_check(pm_family_new(r, PM_TYPE_HISTOGRAM, "bench_mem_hist_seconds", "memory", o, &f),
                "pm_family_new");
    pm_family_opts_free(o);
    for (size_t i = 0; i < N_HISTS; i++) {
        char lv[32];
        const char *vals[1] = {lv};
        snprintf(lv, sizeof lv, "series_%04zu", i);
        bench_check(pm_histogram_get(f, vals, 1, &h[i]), "pm_histogram_get");
    }
    bench_check(pm_registry_maintain(r), "pm_registry_maintain");

    for (int stage = 0; stage < 3; stage++) {
        if (stage == 1)
            record_all(h); /* the main thread, pinned to CPU 0 */
        else if (stage == 2)
            helper_record(h); /* the helper, pinned to CPU 1 */
        if (stage > 0) bench_check(pm_registry_maintain(r), "pm_registry_maintain");
        probe_t p = probe();
        if (counting) {
            out[stage].alloc = (double)(atomic_load(&g_live) - a0) / N_HISTS;
        } else {
            out[stage].heap = (p.heap - p0.heap) / N_HISTS;
            out[stage].rss = (p.rss - p0.rss) / N_HISTS;
        }
    }
    for (size_t i = 0; i < N_HISTS; i++)
        pm_histogram_release(h[i]);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ output */

static const char *rss_note(const reading_t *x)
{
    /* Resident memory well above what malloc handed out: something maps memory itself. */
    if (x->rss > 1.25 * x->heap && x->rss - x->heap > 16)
        return " (RSS well above malloc: memory mapped outside malloc?)";
    return "";
}

int main(void)
{
    bench_pin_self(0);
    atomic_init(&g_live, 0);
    if (pthread_barrier_init(&g_helper.go, NULL, 2) != 0 ||
        pthread_barrier_init(&g_helper.done, NULL, 2) != 0 ||
        pthread_create(&g_helper.th, NULL, helper_main, NULL) != 0)
        bench_die("helper thread", -1);
    uint64_t x = 0x2545F4914F6CDD1Dull;
    for (size_t k = 0; k < N_OBS; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0;
        g_obs[k] = pow(10.0, -6.0 + 7.0 * u);
    }

    /* The counter run goes first, on a fresh heap, so the RSS delta means something. */
    reading_t c[2] = {{0, 0, 0}, {0, 0, 0}}, cc[2] = {{0, 0, 0}, {0, 0, 0}};
    counters_run(0, c);
    counters_run(1, cc);
    c[0].alloc = cc[0].alloc;
    c[1].alloc = cc[1].alloc;

    reading_t h[3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    reading_t hc[3] = {{0, 0, 0}, {0, 0, 0}, {0, 0, 0}};
    hists_run(0, h);
    hists_run(1, hc);
    for (int i = 0; i < 3; i++)
        h[i].alloc = hc[i].alloc;
    helper_record(NULL);
    pthread_join(g_helper.th, NULL);

    bench_row("memory/counter series, created", 0, -1, NULL, 0,
              "%.1f B/series (malloc); allocator hook %.1f B; RSS %.1f B%s", c[0].heap,
              c[0].alloc, c[0].rss, rss_note(&c[0]));
    bench_row("memory/counter series, recorded", 1, -1, NULL, 0,
              "%.1f B/series (malloc); allocator hook %.1f B; RSS %.1f B%s; target <= 200 B: %s; "
              "PEERS.md (not this run): prometheus-cpp 238 B, prometheus-client-c 455 B",
              c[1].heap, c[1].alloc, c[1].rss, rss_note(&c[1]),
              bench_verdict(c[1].heap <= 200.0 && c[1].alloc <= 200.0));
    static const char *hname[3] = {"memory/histogram series, created",
                                   "memory/histogram series, recorded",
                                   "memory/histogram series, recorded"};
    for (unsigned i = 0; i < 3; i++)
        bench_row(hname[i], i, -1, NULL, 0,
                  "%.0f B/series (malloc) = %.2fx HdrHistogram_c 37 KB (PEERS.md); allocator "
                  "hook %.0f B; RSS %.0f B%s",
                  h[i].heap, h[i].heap / HDR_BYTES, h[i].alloc, h[i].rss, rss_note(&h[i]));
    return 0;
}
