/* libperfmetrics — exposition of 10,000 counter series (100 families x 100
 * label values, the PEERS.md set-up) in each text format, and of 1,000
 * histogram series.
 *
 * The operations are timed on the main thread (pinned to CPU 0): a snapshot
 * alone, or snapshot + a new buffer + pm_format + free, which is what a
 * scrape handler pays; each repetition repeats one for BENCH_REP_MS. The
 * baseline writes the same text with snprintf into a growable buffer in the
 * same process. The library's own perfmetrics_* families are switched off so
 * the output is only the 10,000 series. Median of BENCH_REPS repetitions
 * (default 9, at least 7).
 *
 * glibc's malloc is given fixed mmap and trim thresholds first. With its
 * dynamic ones, whether a freed snapshot arena or output buffer goes back to
 * the kernel (and is faulted in again, page by page, on the next call)
 * depends on the sizes of the cases that ran before: on the KVM guests we
 * measure on a fault costs ~30 us, so a case's figure swung by up to 10 ms
 * with the order of the cases, not with the code. A long-running server
 * reaches the same steady state (a warm heap) by itself. Each row's info
 * gives the page faults per operation, so an allocator effect stays visible. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bench_common.h"

#include <perfmetrics/perfmetrics.h>

#include <sys/resource.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

/* The histogram set: HFAM families x HVAL series, HOBS observations each. */
#define HFAM 10
#define HVAL 100
#define HOBS 20
/* Target: OpenMetrics and JSON snapshot+format within this factor of
 * Prometheus text snapshot+format of the same snapshot. */
#define TEXT_RATIO_TARGET 1.5

/* ------------------------------------------------------------ baseline */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sbuf_reserve(sbuf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1) cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL) bench_die("realloc", -2);
    b->p = p;
    b->cap = cap;
}

/* The same families and samples as the library writes in Prometheus text. */
static size_t baseline_snprintf(void)
{
    sbuf_t b = {0};
    char name[32], lv[32];
    for (size_t f = 0; f < BENCH_NFAM; f++) {
        snprintf(name, sizeof name, "bench_family_%03zu", f);
        sbuf_reserve(&b, 256);
        b.len += (size_t)snprintf(
            b.p + b.len, b.cap - b.len,
            "# HELP %s_total Benchmark family %zu.\n# TYPE %s_total counter\n", name, f, name);
        for (size_t v = 0; v < BENCH_NVAL; v++) {
            snprintf(lv, sizeof lv, "value_%03zu", v);
            sbuf_reserve(&b, 128);
            b.len += (size_t)snprintf(b.p + b.len, b.cap - b.len, "%s_total{label=\"%s\"} %.17g\n",
                                      name, lv, bench_series_value(f, v));
        }
    }
    size_t n = b.len;
    free(b.p);
    return n;
}

/* ------------------------------------------------------------ cases */

typedef struct {
    pm_registry_t *r;
    pm_registry_t *agg;         /* the same series, attached from shared blocks */
    const pm_snapshot_t *held;  /* for the format-only cases */
    const pm_snapshot_t *hheld; /* the histogram set's snapshot */
    pm_format_t fmt;
    size_t bytes;
    size_t samples; /* lines containing "_total{" in Prometheus text */
} expo_ctx_t;

static size_t count_samples(const char *s)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, "_total{")) != NULL; p++) n++;
    return n;
}

static void snapshot_only(expo_ctx_t *e)
{
    pm_snapshot_t *s = NULL;
    bench_check(pm_snapshot_new(e->r, &s), "pm_snapshot_new");
    pm_snapshot_release(s);
}

static void snapshot_format(expo_ctx_t *e)
{
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    bench_check(pm_snapshot_new(e->r, &s), "pm_snapshot_new");
    bench_check(pm_buf_new(&b), "pm_buf_new");
    bench_check(pm_format(s, e->fmt, b), "pm_format");
    e->bytes = pm_buf_len(b);
    pm_buf_free(b);
    pm_snapshot_release(s);
}

/* The same two operations on the aggregate registry. */
static void agg_snapshot_only(expo_ctx_t *e)
{
    pm_registry_t *r = e->r;
    e->r = e->agg;
    snapshot_only(e);
    e->r = r;
}

static void agg_snapshot_format(expo_ctx_t *e)
{
    pm_registry_t *r = e->r;
    e->r = e->agg;
    snapshot_format(e);
    e->r = r;
}

static void format_only(expo_ctx_t *e)
{
    pm_buf_t *b = NULL;
    bench_check(pm_buf_new(&b), "pm_buf_new");
    bench_check(pm_format(e->held, e->fmt, b), "pm_format");
    e->bytes = pm_buf_len(b);
    pm_buf_free(b);
}

static void format_hist(expo_ctx_t *e)
{
    pm_buf_t *b = NULL;
    bench_check(pm_buf_new(&b), "pm_buf_new");
    bench_check(pm_format(e->hheld, e->fmt, b), "pm_format");
    e->bytes = pm_buf_len(b);
    pm_buf_free(b);
}

/* pm_format_write's callback: counts the bytes and drops them, as a socket
 * writer would once they are sent. */
static int count_sink(void *user, const char *data, size_t len)
{
    (void)data;
    *(size_t *)user += len;
    return 0;
}

static void stream_only(expo_ctx_t *e)
{
    size_t n = 0;
    bench_check(pm_format_write(e->held, e->fmt, count_sink, &n), "pm_format_write");
    e->bytes = n;
}

static void baseline(expo_ctx_t *e) { e->bytes = baseline_snprintf(); }

static long minor_faults(void)
{
    struct rusage u;
    return getrusage(RUSAGE_SELF, &u) == 0 ? u.ru_minflt : 0;
}

/* One timed operation and what it measured. */
typedef struct {
    const char *name;
    void (*op)(expo_ctx_t *);
    pm_format_t fmt;
    double v[64]; /* mean ns of one call, per repetition */
    double ns;    /* median of v */
    size_t bytes;
    long faults;    /* minor page faults over the timed calls */
    uint64_t calls; /* timed calls */
} expo_case_t;

/* Runs every case: two warm-up calls each, then rounds in which every case
 * runs one repetition (the call repeated until BENCH_REP_MS have passed, at
 * least once; its mean is the repetition's figure), so drifting load touches
 * all cases alike. Each case's result is the median over the repetitions. */
static void measure_all(expo_case_t *cs, size_t n, expo_ctx_t *e)
{
    unsigned reps = bench_reps();
    if (reps > 64) reps = 64;
    const uint64_t span = (uint64_t)bench_rep_ms() * 1000000u;
    for (size_t c = 0; c < n; c++) {
        e->fmt = cs[c].fmt;
        cs[c].op(e);
        cs[c].op(e);
        cs[c].bytes = e->bytes;
    }
    for (unsigned r = 0; r < reps; r++) {
        for (size_t c = 0; c < n; c++) {
            e->fmt = cs[c].fmt;
            long f0 = minor_faults();
            uint64_t t0 = bench_now(), t1, k = 0;
            do {
                cs[c].op(e);
                k++;
                t1 = bench_now();
            } while (t1 - t0 < span);
            cs[c].v[r] = (double)(t1 - t0) / (double)k;
            cs[c].faults += minor_faults() - f0;
            cs[c].calls += k;
        }
    }
    for (size_t c = 0; c < n; c++) cs[c].ns = bench_median(cs[c].v, reps);
}

/* The histogram set: latencies between 1 ms and ~1 s (default buckets). */
static pm_registry_t *histogram_registry(void)
{
    pm_registry_t *r = bench_registry();
    pm_family_opts_t *fo = NULL;
    const char *lname[1] = {"route"};
    bench_check(pm_family_opts_new(&fo), "pm_family_opts_new");
    bench_check(pm_family_opts_set_labels(fo, lname, 1), "pm_family_opts_set_labels");
    bench_check(pm_family_opts_set_unit(fo, "seconds"), "pm_family_opts_set_unit");
    uint64_t x = 0x9E3779B97F4A7C15u;
    for (size_t f = 0; f < HFAM; f++) {
        char name[48];
        snprintf(name, sizeof name, "bench_latency_%02zu_seconds", f);
        pm_family_t *fam = NULL;
        bench_check(pm_family_new(r, PM_TYPE_HISTOGRAM, name, "Benchmark latency.", fo, &fam),
                    "pm_family_new");
        for (size_t v = 0; v < HVAL; v++) {
            char lv[32];
            snprintf(lv, sizeof lv, "/api/v1/item_%03zu", v);
            const char *vals[1] = {lv};
            for (int o = 0; o < HOBS; o++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                double ms = exp((double)(x >> 11) * 0x1p-53 * 7.0); /* 1 ms .. 1.1 s */
                bench_check(pm_histogram_observe_labeled(fam, vals, 1, ms * 1e-3),
                            "pm_histogram_observe_labeled");
            }
        }
    }
    pm_family_opts_free(fo);
    return r;
}

/* The 10,000 series of bench_series_registry recorded by another registry
 * (standing for worker processes) into AGG_BLOCKS shared cell blocks in a
 * fresh directory, and an aggregate registry attached to it, as a Node
 * cluster primary is: its snapshots copy the blocks' pages and add them. */
#define AGG_BLOCKS 4
typedef struct {
    char dir[64];
    pm_registry_t *w, *agg;
    pm_cells_t *b[AGG_BLOCKS];
    pm_cells_attach_t *a;
} agg_setup_t;

/* Series (f, v) goes into block f * AGG_BLOCKS / BENCH_NFAM, its cell
 * holding the local registry's value. */
static void agg_bind(void *ctx, pm_family_t *fam, size_t f, size_t v, const char *const *values)
{
    agg_setup_t *x = ctx;
    pm_cells_t *b = x->b[f * AGG_BLOCKS / BENCH_NFAM];
    pm_counter_t *c = NULL;
    size_t idx;
    bench_check(pm_counter_get(fam, values, 1, &c), "pm_counter_get");
    bench_check(pm_cells_counter(b, c, &idx), "pm_cells_counter");
    pm_cells_page(b, idx / PM_CELLS_PAGE_DOUBLES)[idx % PM_CELLS_PAGE_DOUBLES] = bench_series_value(f, v);
    pm_counter_release(c);
}

static void agg_build(agg_setup_t *x)
{
    snprintf(x->dir, sizeof x->dir, "%s/pm-bench-XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    if (!mkdtemp(x->dir)) bench_die("mkdtemp", -1);
    x->w = bench_registry();
    x->agg = bench_registry();
    bench_check(pm_cells_attach(x->agg, x->dir, &x->a), "pm_cells_attach");
    for (size_t i = 0; i < AGG_BLOCKS; i++)
        bench_check(pm_cells_new_shared(x->w, x->dir, &x->b[i]), "pm_cells_new_shared");
    bench_series_each(x->w, agg_bind, x);
}

static void agg_free(agg_setup_t *x)
{
    pm_cells_detach(x->a);
    pm_registry_free(x->agg);
    pm_registry_free(x->w); /* frees the blocks: their files stay until removed here */
    char cmd[96];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", x->dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_exposition: could not remove %s\n", x->dir);
}

int main(void)
{
    bench_pin_self(0);
#ifdef __GLIBC__
    /* Fixed thresholds: a warm heap for every case (see the top comment). */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
#endif

    expo_ctx_t e = {0};
    e.r = bench_series_registry();

    /* Sanity: the Prometheus text really holds the 10,000 samples. */
    {
        pm_snapshot_t *s = NULL;
        pm_buf_t *b = NULL;
        bench_check(pm_snapshot_new(e.r, &s), "pm_snapshot_new");
        bench_check(pm_buf_new(&b), "pm_buf_new");
        bench_check(pm_format(s, PM_FORMAT_PROMETHEUS, b), "pm_format");
        e.samples = count_samples(pm_buf_data(b));
        pm_buf_free(b);
        pm_snapshot_release(s);
    }

    agg_setup_t agg;
    agg_build(&agg);
    e.agg = agg.agg;

    pm_registry_t *hr = histogram_registry();
    pm_snapshot_t *hheld = NULL;
    bench_check(pm_snapshot_new(hr, &hheld), "pm_snapshot_new");
    e.hheld = hheld;

    enum {
        BASE,
        SNAP,
        PROM,
        PROM_F,
        OM,
        OM_F,
        JSON,
        JSON_F,
        PROM_W,
        OM_W,
        JSON_W,
        HPROM,
        HOM,
        HJSON,
        AGG_SNAP,
        AGG_PROM,
        NCASES
    };
    static expo_case_t cs[NCASES] = {
        [BASE] = {.name = "baseline: snprintf same prometheus text", .op = baseline},
        [SNAP] = {.name = "expo 10k: snapshot only", .op = snapshot_only},
        [PROM] = {.name = "expo 10k: snapshot+format prometheus",
                  .op = snapshot_format,
                  .fmt = PM_FORMAT_PROMETHEUS},
        [PROM_F] = {.name = "expo 10k: format only, prometheus",
                    .op = format_only,
                    .fmt = PM_FORMAT_PROMETHEUS},
        [OM] = {.name = "expo 10k: snapshot+format openmetrics",
                .op = snapshot_format,
                .fmt = PM_FORMAT_OPENMETRICS},
        [OM_F] = {.name = "expo 10k: format only, openmetrics",
                  .op = format_only,
                  .fmt = PM_FORMAT_OPENMETRICS},
        [JSON] = {.name = "expo 10k: snapshot+format json",
                  .op = snapshot_format,
                  .fmt = PM_FORMAT_JSON},
        [JSON_F] = {.name = "expo 10k: format only, json",
                    .op = format_only,
                    .fmt = PM_FORMAT_JSON},
        [PROM_W] = {.name = "expo 10k: streamed, prometheus",
                    .op = stream_only,
                    .fmt = PM_FORMAT_PROMETHEUS},
        [OM_W] = {.name = "expo 10k: streamed, openmetrics",
                  .op = stream_only,
                  .fmt = PM_FORMAT_OPENMETRICS},
        [JSON_W] = {.name = "expo 10k: streamed, json", .op = stream_only, .fmt = PM_FORMAT_JSON},
        [HPROM] = {.name = "expo 1k histograms: format, prometheus",
                   .op = format_hist,
                   .fmt = PM_FORMAT_PROMETHEUS},
        [HOM] = {.name = "expo 1k histograms: format, openmetrics",
                 .op = format_hist,
                 .fmt = PM_FORMAT_OPENMETRICS},
        [HJSON] = {.name = "expo 1k histograms: format, json",
                   .op = format_hist,
                   .fmt = PM_FORMAT_JSON},
        [AGG_SNAP] = {.name = "expo 10k attached: snapshot only", .op = agg_snapshot_only},
        [AGG_PROM] = {.name = "expo 10k attached: snapshot+format prom",
                      .op = agg_snapshot_format,
                      .fmt = PM_FORMAT_PROMETHEUS},
    };
    pm_snapshot_t *held = NULL;
    bench_check(pm_snapshot_new(e.r, &held), "pm_snapshot_new");
    e.held = held;
    measure_all(cs, NCASES, &e);
    pm_snapshot_release(held);
    pm_snapshot_release(hheld);
    pm_registry_free(hr);

    const char *BN = "snprintf same text";
    double base = cs[BASE].ns;
#define FAULTS(c) ((double)cs[c].faults / (double)(cs[c].calls ? cs[c].calls : 1))
    bench_row(cs[BASE].name, 1, base, NULL, 0, "%.2f ms, %zu B", base / 1e6, cs[BASE].bytes);
    bench_row(cs[SNAP].name, 1, cs[SNAP].ns, BN, base, "%.2f ms, %.0f ns/series; %.1f faults/op",
              cs[SNAP].ns / 1e6, cs[SNAP].ns / (BENCH_NFAM * BENCH_NVAL), FAULTS(SNAP));
    bench_row(cs[PROM].name, 1, cs[PROM].ns, BN, base,
              "%.2f ms, %zu B, %zu samples; target <= 5 ms: %s; %.1f faults/op; PEERS.md (not "
              "this run): prometheus-cpp 6.6 ms, prometheus-client-c 9.1 ms",
              cs[PROM].ns / 1e6, cs[PROM].bytes, e.samples, bench_verdict(cs[PROM].ns <= 5e6),
              FAULTS(PROM));
    bench_row(cs[PROM_F].name, 1, cs[PROM_F].ns, BN, base, "%.2f ms, %zu B", cs[PROM_F].ns / 1e6,
              cs[PROM_F].bytes);
    /* OpenMetrics and JSON against Prometheus text of the same snapshot:
     * the target is on what a scrape pays (snapshot + format). */
    const size_t text[2][2] = {{OM, OM_F}, {JSON, JSON_F}};
    for (size_t k = 0; k < 2; k++) {
        size_t sf = text[k][0], only = text[k][1];
        double r = cs[sf].ns / cs[PROM].ns;
        bench_row(cs[sf].name, 1, cs[sf].ns, "prometheus snapshot+format", cs[PROM].ns,
                  "%.2f ms, %zu B (%.2fx the text); target <= %.1fx prometheus: %s%s; %.1f "
                  "faults/op",
                  cs[sf].ns / 1e6, cs[sf].bytes, (double)cs[sf].bytes / (double)cs[PROM].bytes,
                  TEXT_RATIO_TARGET, bench_verdict(r <= TEXT_RATIO_TARGET),
                  r <= TEXT_RATIO_TARGET
                      ? ""
                      : " (every series carries a 16-17 digit timestamp the Prometheus text "
                        "has not, and more bytes)",
                  FAULTS(sf));
        bench_row(cs[only].name, 1, cs[only].ns, "prometheus format only", cs[PROM_F].ns,
                  "%.2f ms, %zu B", cs[only].ns / 1e6, cs[only].bytes);
    }
    for (size_t i = PROM_W; i <= JSON_W; i++) {
        size_t buffered = i == PROM_W ? PROM_F : i == OM_W ? OM_F : JSON_F;
        bench_row(cs[i].name, 1, cs[i].ns, "the same into a pm_buf", cs[buffered].ns,
                  "%.2f ms, %zu B in chunks of <= 16 KiB (pm_format_write; the text is never "
                  "held whole); %s",
                  cs[i].ns / 1e6, cs[i].bytes,
                  cs[i].bytes == cs[buffered].bytes ? "same length as pm_format"
                                                    : "LENGTH DIFFERS from pm_format");
    }
    for (size_t i = HPROM; i <= HJSON; i++)
        bench_row(cs[i].name, 1, cs[i].ns, "prometheus", cs[HPROM].ns,
                  "%.2f ms, %zu B, %.0f ns/series (%d x %d series, default buckets%s)",
                  cs[i].ns / 1e6, cs[i].bytes, cs[i].ns / (HFAM * HVAL), HFAM, HVAL,
                  i == HJSON ? ", 4 quantiles each" : "");
    bench_row(cs[AGG_SNAP].name, 1, cs[AGG_SNAP].ns, "snapshot only, local", cs[SNAP].ns,
              "%.2f ms: the same 10,000 series from %d shared blocks (another registry's, as "
              "cluster workers'), pages copied and added at each snapshot; no message to the "
              "writers",
              cs[AGG_SNAP].ns / 1e6, AGG_BLOCKS);
    bench_row(cs[AGG_PROM].name, 1, cs[AGG_PROM].ns, "prometheus snapshot+format", cs[PROM].ns,
              "%.2f ms, %zu B: %s", cs[AGG_PROM].ns / 1e6, cs[AGG_PROM].bytes,
              cs[AGG_PROM].bytes == cs[PROM].bytes ? "same length as the local text"
                                                   : "LENGTH DIFFERS from the local text");
#undef FAULTS
    int agg_same = cs[AGG_PROM].bytes == cs[PROM].bytes;
    agg_free(&agg);
    if (!agg_same) fprintf(stderr, "bench_exposition: the attached text differs from the local one\n");
    if (e.samples != BENCH_NFAM * BENCH_NVAL)
        fprintf(stderr, "bench_exposition: Prometheus text holds %zu samples, expected %d\n",
                e.samples, BENCH_NFAM * BENCH_NVAL);

    pm_registry_free(e.r);
    return e.samples == BENCH_NFAM * BENCH_NVAL && agg_same ? 0 : 1;
}
