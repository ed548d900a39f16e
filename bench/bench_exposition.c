/* libperfmetrics — exposition of 10,000 counter series (100 families x 100
 * label values, the PEERS.md set-up) in each text format.
 *
 * The operations are timed on the main thread (pinned to CPU 0): a snapshot
 * alone, or snapshot + a new buffer + pm_format + free, which is what a
 * scrape handler pays; each repetition repeats one for BENCH_REP_MS. The
 * baseline writes the same text with snprintf into a growable buffer in the
 * same process. The library's own perfmetrics_* families are switched off so
 * the output is only the 10,000 series. Median of BENCH_REPS repetitions
 * (default 9, at least 7). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bench_common.h"

#include <perfmetrics/perfmetrics.h>

#define NFAM 100
#define NVAL 100

static void check(pm_status_t st, const char *what)
{
    if (st != PM_OK) {
        fprintf(stderr, "bench_exposition: %s: %s (%s)\n", what, pm_status_name(st),
                pm_strerror(st));
        exit(1);
    }
}

static double value_of(size_t fam, size_t val) { return (double)((fam * 7919 + val * 104729) % 1000003); }

/* ------------------------------------------------------------ baseline */

typedef struct {
    char *p;
    size_t len, cap;
} sbuf_t;

static void sbuf_reserve(sbuf_t *b, size_t more)
{
    if (b->len + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        bench_die("realloc", -2);
    b->p = p;
    b->cap = cap;
}

/* The same families and samples as the library writes in Prometheus text. */
static size_t baseline_snprintf(void)
{
    sbuf_t b = {0};
    char name[32], lv[32];
    for (size_t f = 0; f < NFAM; f++) {
        snprintf(name, sizeof name, "bench_family_%03zu", f);
        sbuf_reserve(&b, 256);
        b.len += (size_t)snprintf(b.p + b.len, b.cap - b.len,
                                  "# HELP %s_total Benchmark family %zu.\n# TYPE %s_total counter\n",
                                  name, f, name);
        for (size_t v = 0; v < NVAL; v++) {
            snprintf(lv, sizeof lv, "value_%03zu", v);
            sbuf_reserve(&b, 128);
            b.len += (size_t)snprintf(b.p + b.len, b.cap - b.len, "%s_total{label=\"%s\"} %.17g\n",
                                      name, lv, value_of(f, v));
        }
    }
    size_t n = b.len;
    free(b.p);
    return n;
}

/* ------------------------------------------------------------ cases */

typedef struct {
    pm_registry_t *r;
    const pm_snapshot_t *held; /* for the format-only case */
    pm_format_t fmt;
    size_t bytes;
    size_t samples; /* lines containing "_total{" in Prometheus text */
} expo_ctx_t;

static size_t count_samples(const char *s)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, "_total{")) != NULL; p++)
        n++;
    return n;
}

static void snapshot_only(expo_ctx_t *e)
{
    pm_snapshot_t *s = NULL;
    check(pm_snapshot_new(e->r, &s), "pm_snapshot_new");
    pm_snapshot_release(s);
}

static void snapshot_format(expo_ctx_t *e)
{
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    check(pm_snapshot_new(e->r, &s), "pm_snapshot_new");
    check(pm_buf_new(&b), "pm_buf_new");
    check(pm_format(s, e->fmt, b), "pm_format");
    e->bytes = pm_buf_len(b);
    pm_buf_free(b);
    pm_snapshot_release(s);
}

static void format_only(expo_ctx_t *e)
{
    pm_buf_t *b = NULL;
    check(pm_buf_new(&b), "pm_buf_new");
    check(pm_format(e->held, e->fmt, b), "pm_format");
    e->bytes = pm_buf_len(b);
    pm_buf_free(b);
}

static void baseline(expo_ctx_t *e) { e->bytes = baseline_snprintf(); }

/* One timed operation and what it measured. */
typedef struct {
    const char *name;
    void (*op)(expo_ctx_t *);
    pm_format_t fmt;
    double v[64]; /* mean ns of one call, per repetition */
    double ns;    /* median of v */
    size_t bytes;
} expo_case_t;

/* Runs every case: two warm-up calls each, then rounds in which every case
 * runs one repetition (the call repeated until BENCH_REP_MS have passed, at
 * least once; its mean is the repetition's figure), so drifting load touches
 * all cases alike. Each case's result is the median over the repetitions. */
static void measure_all(expo_case_t *cs, size_t n, expo_ctx_t *e)
{
    unsigned reps = bench_reps();
    if (reps > 64)
        reps = 64;
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
            uint64_t t0 = bench_now(), t1, k = 0;
            do {
                cs[c].op(e);
                k++;
                t1 = bench_now();
            } while (t1 - t0 < span);
            cs[c].v[r] = (double)(t1 - t0) / (double)k;
        }
    }
    for (size_t c = 0; c < n; c++)
        cs[c].ns = bench_median(cs[c].v, reps);
}

int main(void)
{
    bench_pin_self(0);

    pm_registry_opts_t *ro = NULL;
    check(pm_registry_opts_new(&ro), "pm_registry_opts_new");
    check(pm_registry_opts_set_self_metrics(ro, 0), "pm_registry_opts_set_self_metrics");
    expo_ctx_t e = {0};
    check(pm_registry_new(ro, &e.r), "pm_registry_new");
    pm_registry_opts_free(ro);

    pm_family_opts_t *fo = NULL;
    const char *lname[1] = {"label"};
    check(pm_family_opts_new(&fo), "pm_family_opts_new");
    check(pm_family_opts_set_labels(fo, lname, 1), "pm_family_opts_set_labels");
    for (size_t f = 0; f < NFAM; f++) {
        char name[32], help[48];
        snprintf(name, sizeof name, "bench_family_%03zu", f);
        snprintf(help, sizeof help, "Benchmark family %zu.", f);
        pm_family_t *fam = NULL;
        check(pm_family_new(e.r, PM_TYPE_COUNTER, name, help, fo, &fam), "pm_family_new");
        for (size_t v = 0; v < NVAL; v++) {
            char lv[32];
            snprintf(lv, sizeof lv, "value_%03zu", v);
            const char *vals[1] = {lv};
            check(pm_counter_add_labeled(fam, vals, 1, value_of(f, v)), "pm_counter_add_labeled");
        }
    }
    pm_family_opts_free(fo);

    /* Sanity: the Prometheus text really holds the 10,000 samples. */
    {
        pm_snapshot_t *s = NULL;
        pm_buf_t *b = NULL;
        check(pm_snapshot_new(e.r, &s), "pm_snapshot_new");
        check(pm_buf_new(&b), "pm_buf_new");
        check(pm_format(s, PM_FORMAT_PROMETHEUS, b), "pm_format");
        e.samples = count_samples(pm_buf_data(b));
        pm_buf_free(b);
        pm_snapshot_release(s);
    }

    enum { BASE, SNAP, PROM, PROM_F, OM, OM_F, JSON, JSON_F, NCASES };
    static expo_case_t cs[NCASES] = {
        [BASE] = {.name = "baseline: snprintf same prometheus text", .op = baseline},
        [SNAP] = {.name = "expo 10k: snapshot only", .op = snapshot_only},
        [PROM] = {.name = "expo 10k: snapshot+format prometheus", .op = snapshot_format,
                  .fmt = PM_FORMAT_PROMETHEUS},
        [PROM_F] = {.name = "expo 10k: format only, prometheus", .op = format_only,
                    .fmt = PM_FORMAT_PROMETHEUS},
        [OM] = {.name = "expo 10k: snapshot+format openmetrics", .op = snapshot_format,
                .fmt = PM_FORMAT_OPENMETRICS},
        [OM_F] = {.name = "expo 10k: format only, openmetrics", .op = format_only,
                  .fmt = PM_FORMAT_OPENMETRICS},
        [JSON] = {.name = "expo 10k: snapshot+format json", .op = snapshot_format,
                  .fmt = PM_FORMAT_JSON},
        [JSON_F] = {.name = "expo 10k: format only, json", .op = format_only,
                    .fmt = PM_FORMAT_JSON},
    };
    pm_snapshot_t *held = NULL;
    check(pm_snapshot_new(e.r, &held), "pm_snapshot_new");
    e.held = held;
    measure_all(cs, NCASES, &e);
    pm_snapshot_release(held);

    const char *BN = "snprintf same text";
    double base = cs[BASE].ns;
    bench_row(cs[BASE].name, 1, base, NULL, 0, "%.2f ms, %zu B", base / 1e6, cs[BASE].bytes);
    bench_row(cs[SNAP].name, 1, cs[SNAP].ns, BN, base, "%.2f ms, %.0f ns/series",
              cs[SNAP].ns / 1e6, cs[SNAP].ns / (NFAM * NVAL));
    for (size_t i = PROM; i < NCASES; i++) {
        if (i == PROM)
            bench_row(cs[i].name, 1, cs[i].ns, BN, base,
                      "%.2f ms, %zu B, %zu samples; target <= 5 ms: %s; PEERS.md (not this "
                      "run): prometheus-cpp 6.6 ms, prometheus-client-c 9.1 ms",
                      cs[i].ns / 1e6, cs[i].bytes, e.samples, bench_verdict(cs[i].ns <= 5e6));
        else
            bench_row(cs[i].name, 1, cs[i].ns, BN, base, "%.2f ms, %zu B", cs[i].ns / 1e6,
                      cs[i].bytes);
    }
    if (e.samples != NFAM * NVAL)
        fprintf(stderr, "bench_exposition: Prometheus text holds %zu samples, expected %d\n",
                e.samples, NFAM * NVAL);

    pm_registry_free(e.r);
    return e.samples == NFAM * NVAL ? 0 : 1;
}
