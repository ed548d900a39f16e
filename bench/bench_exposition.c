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
    for (size_t f = 0; f < BENCH_NFAM; f++) {
        snprintf(name, sizeof name, "bench_family_%03zu", f);
        sbuf_reserve(&b, 256);
        b.len += (size_t)snprintf(b.p + b.len, b.cap - b.len,
                                  "# HELP %s_total Benchmark family %zu.\n# TYPE %s_total counter\n",
                                  name, f, name);
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

static void snapshot_only(void *ctx)
{
    expo_ctx_t *e = ctx;
    pm_snapshot_t *s = NULL;
    bench_check(pm_snapshot_new(e->r, &s), "pm_snapshot_new");
    pm_snapshot_release(s);
}

static void snapshot_format(void *ctx)
{
    expo_ctx_t *e = ctx;
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    bench_check(pm_snapshot_new(e->r, &s), "pm_snapshot_new");
    bench_check(pm_buf_new(&b), "pm_buf_new");
    bench_check(pm_format(s, e->fmt, b), "pm_format");
    e->bytes = pm_buf_len(b);
    pm_buf_free(b);
    pm_snapshot_release(s);
}

static void format_only(void *ctx)
{
    expo_ctx_t *e = ctx;
    pm_buf_t *b = NULL;
    bench_check(pm_buf_new(&b), "pm_buf_new");
    bench_check(pm_format(e->held, e->fmt, b), "pm_format");
    e->bytes = pm_buf_len(b);
    pm_buf_free(b);
}

static void baseline(void *ctx)
{
    expo_ctx_t *e = ctx;
    e->bytes = baseline_snprintf();
}

/* One timed operation and what it measured. */
typedef struct {
    const char *name;
    void (*op)(void *);
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
            cs[c].v[r] = bench_repeat_for(span, cs[c].op, e);
        }
    }
    for (size_t c = 0; c < n; c++)
        cs[c].ns = bench_median(cs[c].v, reps);
}

int main(void)
{
    bench_pin_self(0);

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
    bench_check(pm_snapshot_new(e.r, &held), "pm_snapshot_new");
    e.held = held;
    measure_all(cs, NCASES, &e);
    pm_snapshot_release(held);

    const char *BN = "snprintf same text";
    double base = cs[BASE].ns;
    bench_row(cs[BASE].name, 1, base, NULL, 0, "%.2f ms, %zu B", base / 1e6, cs[BASE].bytes);
    bench_row(cs[SNAP].name, 1, cs[SNAP].ns, BN, base, "%.2f ms, %.0f ns/series", cs[SNAP].ns / 1e6,
              cs[SNAP].ns / (BENCH_NFAM * BENCH_NVAL));
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
    if (e.samples != BENCH_NFAM * BENCH_NVAL)
        fprintf(stderr, "bench_exposition: Prometheus text holds %zu samples, expected %d\n",
                e.samples, BENCH_NFAM * BENCH_NVAL);

    pm_registry_free(e.r);
    return e.samples == BENCH_NFAM * BENCH_NVAL ? 0 : 1;
}
