/* The alert engine's window store (lib/alert_window.c): ring geometry,
 * every window function against values computed by hand (the arithmetic is
 * in the comments), counter resets, Prometheus' extrapolation, sliding,
 * least squares, z-scores, EWMA, histogram windows, the series bound, the
 * sweep, bad inputs and allocation failures.
 *
 * Series come from real registries through snapshots; time is scripted
 * (`now` values handed to pm__wstore_begin), nothing sleeps. */
#include "harness.h"

#include "internal/alert_internal.h"
#include <perfmetrics/perfmetrics.h>

#define SEC 1000000000LL
/* A multiple of 60 s and of 150 s, so buckets of 15, 30, 60 and 150 s start
 * on it. */
#define T0 (1700000100LL * SEC)
#define AT(s) (T0 + (int64_t)((s) * (double)SEC))

/* ------------------------------------------------------------ fixtures */
/* One series of one family in its own registry. A counter "set" to a lower
 * value is a reset: the registry is recreated (same family, same labels),
 * as a restarted process would look. */
typedef struct sfx {
    pm_type_t type;
    const char *name;
    const char *label; /* value of label "job" */
    pm_registry_t *r;
    pm_family_t *f;
    pm_counter_t *c;
    pm_gauge_t *g;
    pm_histogram_t *h;
    double v;
} sfx;

static void sfx_close(sfx *x)
{
    pm_counter_release(x->c);
    pm_gauge_release(x->g);
    pm_histogram_release(x->h);
    pm_registry_free(x->r);
    x->r = NULL;
    x->c = NULL;
    x->g = NULL;
    x->h = NULL;
}

static void sfx_open(sfx *x, pm_type_t type, const char *name, const char *label)
{
    memset(x, 0, sizeof *x);
    x->type = type;
    x->name = name;
    x->label = label;
    x->v = 0;
    pm_registry_opts_t *o;
    if (pm_registry_opts_new(&o) != PM_OK) abort();
    pm_registry_opts_set_self_metrics(o, 0);
    if (pm_registry_new(o, &x->r) != PM_OK) abort();
    pm_registry_opts_free(o);
    pm_family_opts_t *fo;
    if (pm_family_opts_new(&fo) != PM_OK) abort();
    const char *ln[] = {"job"};
    pm_family_opts_set_labels(fo, ln, 1);
    if (pm_family_new(x->r, type, name, "help", fo, &x->f) != PM_OK) abort();
    pm_family_opts_free(fo);
    const char *lv[] = {label};
    pm_status_t st = type == PM_TYPE_COUNTER ? pm_counter_get(x->f, lv, 1, &x->c)
                     : type == PM_TYPE_GAUGE ? pm_gauge_get(x->f, lv, 1, &x->g)
                                             : pm_histogram_get(x->f, lv, 1, &x->h);
    if (st != PM_OK) abort();
}

static void sfx_set(sfx *x, double v)
{
    if (x->type == PM_TYPE_GAUGE) {
        pm_gauge_set(x->g, v);
        return;
    }
    if (v < x->v) { /* counter reset */
        sfx_close(x);
        sfx_open(x, x->type, x->name, x->label);
    }
    if (v > x->v) pm_counter_add(x->c, v - x->v);
    x->v = v;
}

/* A histogram reset: a fresh registry with the same family. */
static void sfx_reset(sfx *x)
{
    sfx_close(x);
    sfx_open(x, x->type, x->name, x->label);
}

static const pm_snap_family_t *snap_family(const pm_snapshot_t *s, const char *name)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!strcmp(pm_snap_family_name(f), name)) return f;
    }
    return NULL;
}

/* Samples the series into w for `range` (no begin). */
static pm_status_t feed(pm__wstore *w, sfx *x, int64_t range, pm__wring **ring)
{
    pm_snapshot_t *s;
    if (pm_snapshot_new(x->r, &s) != PM_OK) abort();
    const pm_snap_family_t *f = snap_family(s, x->name);
    if (!f || pm_snap_family_series_count(f) != 1) abort();
    pm_status_t st = pm__wstore_sample(w, f, pm_snap_family_series(f, 0), range, ring);
    pm_snapshot_release(s);
    return st;
}

/* begin(now) + feed. */
static pm__wring *tick(pm__wstore *w, sfx *x, int64_t now, int64_t range)
{
    pm__wring *r = NULL;
    pm__wstore_begin(w, now);
    if (feed(w, x, range, &r) != PM_OK) return NULL;
    return r;
}

static pm__wstore *store(int64_t interval, unsigned max_buckets, size_t max_series)
{
    pm__wstore *w = NULL;
    if (pm__wstore_new(&pm__default_alloc, interval, max_buckets, max_series, &w) != PM_OK)
        abort();
    return w;
}

#define CHECK_EVAL(ring, fn, param, want, tol)                                          \
    do {                                                                               \
        double v_ = NAN;                                                               \
        CHECK_OK(pm__wring_eval((ring), (fn), (param), &v_));                          \
        CHECK_NEAR(v_, (want), (tol));                                                 \
    } while (0)

#define CHECK_NOENT(ring, fn, param)                                                   \
    do {                                                                               \
        double v_ = 0;                                                                 \
        CHECK_STATUS(pm__wring_eval((ring), (fn), (param), &v_), PM_ENOENT);           \
        CHECK(isnan(v_));                                                              \
    } while (0)

#define EPS 1e-9

/* ------------------------------------------------------------ geometry */
TEST(test_geometry)
{
    pm__wstore *w = store(15 * SEC, 60, 100);
    size_t b1 = pm__wstore_ring_bytes(w, 1);       /* B = 1 */
    size_t b4 = pm__wstore_ring_bytes(w, 60 * SEC); /* B = ceil(60/15) = 4 */
    size_t hdr = b1 - 128;
    CHECK_EQ_U64(b4, hdr + 4 * 128);
    CHECK_EQ_U64(pm__wstore_ring_bytes(w, 100 * SEC), hdr + 7 * 128); /* ceil(100/15) = 7 */
    CHECK_EQ_U64(pm__wstore_ring_bytes(w, 61 * SEC), hdr + 5 * 128);  /* ceil(61/15) = 5 */
    CHECK_EQ_U64(pm__wstore_ring_bytes(w, 3600 * SEC), hdr + 60 * 128); /* 240, capped at 60 */
    CHECK_EQ_U64(pm__wstore_ring_bytes(w, 0), 0);
    CHECK_EQ_U64(pm__wstore_ring_bytes(NULL, SEC), 0);
    printf("ring header %zu bytes, bucket 128 bytes\n", hdr);
    CHECK(hdr > 0 && hdr <= 128);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ rate */
TEST(test_rate_basic)
{
    /* interval 15 s, [1m]: B = 4 buckets of 15 s. */
    pm__wstore *w = store(15 * SEC, 60, 100);
    sfx x;
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    int64_t R = 60 * SEC;

    sfx_set(&x, 0);
    pm__wring *r = tick(w, &x, AT(0), R);
    REQUIRE(r);
    CHECK_NOENT(r, PM__FN_RATE, 0); /* one sample */
    CHECK_NOENT(r, PM__FN_INCREASE, 0);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 1, 0);

    /* 0 at T0, 10 at T0+15, now = T0+15: rangeStart = T0-45.
     * increase 10, durationToStart 45, toEnd 0, sampled 15, avg 15;
     * toZero = 15 * 0/10 = 0 < 45 -> toStart 0; threshold 16.5:
     * extrapolated = 15 + 0 + 0 = 15 -> increase 10, rate 10/60. */
    sfx_set(&x, 10);
    r = tick(w, &x, AT(15), R);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 10, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 10.0 / 60, EPS);

    /* 0, 10, 20, 30 every 15 s, now = T0+45: increase 30, toStart
     * = T0 - (T0-15) = 15 but toZero = 45 * 0/30 = 0 -> 0; toEnd 0;
     * extrapolated 45/45 -> increase 30, rate 30/60 = 0.5. */
    sfx_set(&x, 20);
    tick(w, &x, AT(30), R);
    sfx_set(&x, 30);
    r = tick(w, &x, AT(45), R);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 30, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 0.5, EPS);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 4, 0);
    sfx_close(&x);
    pm__wstore_free(w);

    /* The same steps from 100: 100, 110, 120, 130. toZero = 45 * 100/30 =
     * 150 > toStart 15; 15 < 16.5 -> extrapolate by 15: (45+15)/45 * 30 = 40;
     * rate 40/60. */
    w = store(15 * SEC, 60, 100);
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    for (int i = 0; i < 4; i++) {
        sfx_set(&x, 100 + 10 * i);
        r = tick(w, &x, AT(15 * i), R);
    }
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 40, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 40.0 / 60, EPS);
    /* delta (no counter rules): 130-100 = 30, same extrapolation -> 40 */
    CHECK_EVAL(r, PM__FN_DELTA, 0, 40, EPS);
    sfx_close(&x);
    pm__wstore_free(w);
}

TEST(test_rate_extrapolation)
{
    int64_t R = 60 * SEC;
    pm__wring *r;
    sfx x;
    pm__wstore *w;

    /* Irregular ticks: 50 at T0+3, 60 at T0+20, 90 at T0+50; now = T0+50,
     * window = buckets [T0, T0+60). n 3, increase 40, rangeStart T0-10:
     * toStart 13, toEnd 0, sampled 47, avg 23.5, threshold 25.85;
     * toZero = 47 * 50/40 = 58.75 > 13. extrapolated = 47 + 13 = 60:
     * increase 40 * 60/47 = 51.063829787..., rate 0.85106382978... */
    w = store(15 * SEC, 60, 100);
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    sfx_set(&x, 50);
    tick(w, &x, AT(3), R);
    sfx_set(&x, 60);
    tick(w, &x, AT(20), R);
    sfx_set(&x, 90);
    r = tick(w, &x, AT(50), R);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 51.063829787234042, 1e-9);
    CHECK_EVAL(r, PM__FN_RATE, 0, 0.85106382978723405, 1e-12);
    sfx_close(&x);
    pm__wstore_free(w);

    /* Gap before now: 10 at T0+15, 20 at T0+30, evaluated at T0+59 without
     * a new sample. Window [T0, T0+60): n 2, increase 10, rangeStart T0-1:
     * toStart 16, toZero = 15 * 10/10 = 15 -> 15 (< 16.5: used whole);
     * toEnd 29 >= 16.5 -> avg/2 = 7.5. extrapolated 15+15+7.5 = 37.5:
     * increase 10 * 37.5/15 = 25, rate 25/60. */
    w = store(15 * SEC, 60, 100);
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    sfx_set(&x, 10);
    tick(w, &x, AT(15), R);
    sfx_set(&x, 20);
    r = tick(w, &x, AT(30), R);
    pm__wstore_begin(w, AT(59));
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 25, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 25.0 / 60, EPS);
    sfx_close(&x);
    pm__wstore_free(w);

    /* Series starting inside the window, far from zero: 100 at T0+30, 110 at
     * T0+45, now T0+45: toStart 45 >= 16.5 -> 7.5 (toZero 150 is larger);
     * extrapolated 15 + 7.5 = 22.5: increase 10 * 22.5/15 = 15, rate 0.25. */
    w = store(15 * SEC, 60, 100);
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    sfx_set(&x, 100);
    tick(w, &x, AT(30), R);
    sfx_set(&x, 110);
    r = tick(w, &x, AT(45), R);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 15, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 0.25, EPS);
    sfx_close(&x);
    pm__wstore_free(w);

    /* Zero-point clamp: 1 at T0+30, 11 at T0+45. toZero = 15 * 1/10 = 1.5 <
     * toStart 45 -> 1.5 (< 16.5): extrapolated 16.5: increase 10 * 16.5/15
     * = 11, rate 11/60. */
    w = store(15 * SEC, 60, 100);
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    sfx_set(&x, 1);
    tick(w, &x, AT(30), R);
    sfx_set(&x, 11);
    r = tick(w, &x, AT(45), R);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 11, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 11.0 / 60, EPS);
    sfx_close(&x);
    pm__wstore_free(w);

    /* The same values on a gauge, delta: no zero clamp: toStart 45 -> 7.5,
     * 10 * 22.5/15 = 15. */
    w = store(15 * SEC, 60, 100);
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    sfx_set(&x, 1);
    tick(w, &x, AT(30), R);
    sfx_set(&x, 11);
    r = tick(w, &x, AT(45), R);
    CHECK_EVAL(r, PM__FN_DELTA, 0, 15, EPS);
    /* gauge going down: 11 -> 5 at T0+60; window [T0+15, T0+75): samples
     * 1 (T0+30), 11, 5: delta 4, toStart = 30 - 0 = 30 >= threshold 16.5 ->
     * avg/2 = 7.5, toEnd 0: sampled 30, 4 * 37.5/30 = 5 */
    sfx_set(&x, 5);
    r = tick(w, &x, AT(60), R);
    CHECK_EVAL(r, PM__FN_DELTA, 0, 5, EPS);
    sfx_close(&x);
    pm__wstore_free(w);
}

TEST(test_counter_reset_in_bucket)
{
    /* max_buckets 2: [1m] is 2 buckets of 30 s, two samples in each. */
    pm__wstore *w = store(15 * SEC, 2, 100);
    int64_t R = 60 * SEC;
    sfx x;
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    /* T0:10, T0+15:4 (reset inside bucket 0: step 4), T0+30:8 (step into
     * bucket 1: 4), T0+45:2 (reset inside bucket 1: step 2). Increase
     * 4+4+2 = 10. n 4, toStart 15, toZero = 45 * 10/10 = 45 -> 15 < 16.5:
     * extrapolated 60 -> increase 10 * 60/45 = 13.333..., rate /60. */
    static const double v[] = {10, 4, 8, 2};
    pm__wring *r = NULL;
    for (int i = 0; i < 4; i++) {
        sfx_set(&x, v[i]);
        r = tick(w, &x, AT(15 * i), R);
    }
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 10.0 * 60 / 45, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 10.0 / 45, EPS);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 4, 0);

    /* T0+60: 6. Window [T0+30, T0+90): samples 8, 2, 6. The step 4 -> 8 into
     * the oldest bucket is outside: increase = 2 (reset) + 4 = 6. toStart =
     * 30 - 0 = 30; toZero = 30 * 8/6 = 40; 30 >= 16.5 -> 7.5; toEnd 0:
     * extrapolated 37.5 -> 6 * 37.5/30 = 7.5, rate 0.125. */
    sfx_set(&x, 6);
    r = tick(w, &x, AT(60), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 3, 0);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 7.5, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 0.125, EPS);
    sfx_close(&x);
    pm__wstore_free(w);
}

TEST(test_counter_reset_across_buckets)
{
    pm__wstore *w = store(15 * SEC, 60, 100);
    int64_t R = 60 * SEC;
    sfx x;
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    /* 10, 20, 5 (reset), 15 at 15 s steps, one per bucket: increase
     * 10 + 5 + 10 = 25. toStart 15, toZero = 45 * 10/25 = 18 -> 15 < 16.5:
     * extrapolated 60: 25 * 60/45 = 33.333..., rate 0.5555... */
    static const double v[] = {10, 20, 5, 15};
    pm__wring *r = NULL;
    for (int i = 0; i < 4; i++) {
        sfx_set(&x, v[i]);
        r = tick(w, &x, AT(15 * i), R);
    }
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 25.0 * 60 / 45, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 25.0 / 45, EPS);
    /* delta ignores resets: 15 - 10 = 5, same extrapolation (no zero rule):
     * 5 * 60/45 */
    CHECK_EVAL(r, PM__FN_DELTA, 0, 5.0 * 60 / 45, EPS);

    /* T0+60: 30. Window [T0+15, T0+75): 20, 5, 15, 30; the first step is a
     * reset: 5 + 10 + 15 = 30. toStart = 15 - 0 = 15, toZero = 45 * 20/30
     * = 30: extrapolated 60: 30 * 60/45 = 40, rate 40/60. */
    sfx_set(&x, 30);
    r = tick(w, &x, AT(60), R);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 40, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 40.0 / 60, EPS);
    sfx_close(&x);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ sliding */
TEST(test_window_sliding)
{
    /* max_buckets 2: [1m] = buckets of 30 s at multiples of 30 s; samples
     * every 15 s (values i at T0+15i). The window at now is the bucket of
     * now and the one before: [30*(floor(now/30)-1), 30*(floor(now/30)+1)). */
    pm__wstore *w = store(15 * SEC, 2, 100);
    int64_t R = 60 * SEC;
    sfx x;
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    /* count and sum after each tick:
     * T0      [T0-30, T0+30): {0}           1, 0
     * T0+15                   {0,1}         2, 1
     * T0+30   [T0, T0+60):    {0,1,2}       3, 3
     * T0+45                   {0,1,2,3}     4, 6
     * T0+60   [T0+30, T0+90): {2,3,4}       3, 9   (bucket [T0,T0+30) out)
     * T0+75                   {2,3,4,5}     4, 14
     * T0+90   [T0+60,T0+120): {4,5,6}       3, 15 */
    static const double cnt[] = {1, 2, 3, 4, 3, 4, 3};
    static const double sum[] = {0, 1, 3, 6, 9, 14, 15};
    pm__wring *r = NULL;
    for (int i = 0; i < 7; i++) {
        sfx_set(&x, i);
        r = tick(w, &x, AT(15 * i), R);
        CHECK_EVAL(r, PM__FN_COUNT_OT, 0, cnt[i], 0);
        CHECK_EVAL(r, PM__FN_SUM_OT, 0, sum[i], 0);
    }
    /* Without new samples: one ns before T0+120 the window is still
     * [T0+60, T0+120) = {4,5,6}; at T0+120 it is [T0+90, T0+150) = {6}; at
     * T0+150 nothing. */
    pm__wstore_begin(w, AT(120) - 1);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 3, 0);
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 4, 0);
    pm__wstore_begin(w, AT(120));
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 1, 0);
    CHECK_EVAL(r, PM__FN_LAST_OT, 0, 6, 0);
    pm__wstore_begin(w, AT(150));
    CHECK_NOENT(r, PM__FN_COUNT_OT, 0);
    CHECK_NOENT(r, PM__FN_LAST_OT, 0);
    CHECK_NOENT(r, PM__FN_AVG_OT, 0);
    /* The ring refills after the gap: slot reuse drops the stale buckets. */
    sfx_set(&x, 100);
    r = tick(w, &x, AT(165), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 1, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 100, 0);
    sfx_close(&x);
    pm__wstore_free(w);

    /* One sample per bucket (B = 4): the sample at T0 leaves the window
     * exactly when now reaches T0+60. */
    w = store(15 * SEC, 60, 100);
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    sfx_set(&x, 7);
    r = tick(w, &x, AT(0), R);
    pm__wstore_begin(w, AT(60) - 1);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 1, 0);
    pm__wstore_begin(w, AT(60));
    CHECK_NOENT(r, PM__FN_COUNT_OT, 0);
    sfx_close(&x);
    pm__wstore_free(w);
}

TEST(test_once_per_tick)
{
    pm__wstore *w = store(15 * SEC, 60, 100);
    sfx x;
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    sfx_set(&x, 1);
    pm__wring *r1 = tick(w, &x, AT(0), 60 * SEC), *r2 = NULL, *r3 = NULL;
    sfx_set(&x, 2);
    CHECK_OK(feed(w, &x, 60 * SEC, &r2)); /* same tick: no second sample */
    CHECK(r1 == r2);
    CHECK_EVAL(r1, PM__FN_COUNT_OT, 0, 1, 0);
    CHECK_EVAL(r1, PM__FN_LAST_OT, 0, 1, 0);
    CHECK_OK(feed(w, &x, 120 * SEC, &r3)); /* another range: another ring */
    CHECK(r3 != r1);
    CHECK_EVAL(r3, PM__FN_LAST_OT, 0, 2, 0);
    CHECK_EQ_U64(pm__wstore_series(w), 2);
    /* A new tick at the same instant, or a step back, adds nothing. */
    r2 = tick(w, &x, AT(0), 60 * SEC);
    CHECK(r2 == r1);
    CHECK_EVAL(r1, PM__FN_COUNT_OT, 0, 1, 0);
    r2 = tick(w, &x, AT(0) - SEC, 60 * SEC);
    pm__wstore_begin(w, AT(0));
    CHECK_EVAL(r1, PM__FN_COUNT_OT, 0, 1, 0);
    r2 = tick(w, &x, AT(15), 60 * SEC);
    CHECK_EVAL(r2, PM__FN_COUNT_OT, 0, 2, 0);
    CHECK_EVAL(r2, PM__FN_LAST_OT, 0, 2, 0);
    sfx_close(&x);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ memo */
TEST(test_memo)
{
    /* A ring memoises its last answer for the tick. Repeated, alternated and
     * parametrised calls, a new tick without a sample, and a sample pushed
     * after an evaluation in the same tick must all see the window as it is.
     * Gauge 3, 7, 2 at T0, +15, +30; [1m] (B = 4), now T0+30.
     * avg (Chan over one-sample buckets): 3, 3 + 4/2 = 5, 5 - 3/3 = 4;
     * least squares at t' = -30, -15, 0 s: n 3, st -45, stt 1125, stv -195,
     * sv 12; den 3*1125 - 45^2 = 1350; slope (3*-195 + 45*12)/1350 = -1/30;
     * at now (12 - 1.5)/3 = 3.5: predict_linear 30 s ahead 2.5, 60 s 1.5. */
    pm__wstore *w = store(15 * SEC, 60, 100);
    sfx x;
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    static const double v[] = {3, 7, 2};
    pm__wring *r = NULL, *r2 = NULL;
    for (int i = 0; i < 3; i++) {
        sfx_set(&x, v[i]);
        r = tick(w, &x, AT(15 * i), 60 * SEC);
    }
    REQUIRE(r);
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 4, 0);
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 4, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 7, 0);
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 4, 0);
    CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 30, 2.5, EPS);
    CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 60, 1.5, EPS);
    CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 30, 2.5, EPS);
    CHECK_EVAL(r, PM__FN_SLOPE, 0, -1.0 / 30, EPS);
    double e = 0;
    CHECK_STATUS(pm__wring_eval(r, PM__FN_PREDICT_LINEAR, NAN, &e), PM_EINVAL);
    CHECK(isnan(e));
    CHECK_STATUS(pm__wring_eval(r, PM__FN_QUANTILE_OT, 0.5, &e), PM_ETYPE);
    CHECK_EVAL(r, PM__FN_SLOPE, 0, -1.0 / 30, EPS);
    /* A new tick, no sample yet: at T0+60 the window is [T0+15, T0+75) =
     * {7, 2}: avg 7 - 5/2 = 4.5. Its sample, pushed after that evaluation,
     * counts at once: {7, 2, 9}: avg 4.5 + 4.5/3 = 6, max 9. */
    pm__wstore_begin(w, AT(60));
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 4.5, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 7, 0);
    sfx_set(&x, 9);
    CHECK_OK(feed(w, &x, 60 * SEC, &r2));
    CHECK(r2 == r);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 9, 0); /* the function last memoised */
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 6, 0);
    /* A second sample in the tick adds nothing, so the memo stands. */
    sfx_set(&x, 100);
    CHECK_OK(feed(w, &x, 60 * SEC, &r2));
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 9, 0);
    sfx_close(&x);
    pm__wstore_free(w);

    /* Counter 0, 10, 20, 30 every 15 s, [1m]: increase 30, rate 0.5 (see
     * test_rate_basic), alternated; a status is memoised as well (one sample:
     * ENOENT, repeated). */
    w = store(15 * SEC, 60, 100);
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    r = tick(w, &x, AT(0), 60 * SEC);
    CHECK_NOENT(r, PM__FN_RATE, 0);
    CHECK_NOENT(r, PM__FN_RATE, 0);
    for (int i = 1; i <= 3; i++) {
        sfx_set(&x, 10 * i);
        r = tick(w, &x, AT(15 * i), 60 * SEC);
    }
    CHECK_EVAL(r, PM__FN_RATE, 0, 0.5, EPS);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 30, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 0.5, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 7, 0.5, EPS); /* a parameter rate ignores */
    sfx_close(&x);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ clock steps, gaps */
TEST(test_step_back_through_gap)
{
    /* [1m] at 15 s: B = 4 buckets of 15 s. Gauge 1 at T0 (bucket 0), 2 at
     * T0+15 (bucket 1), then nothing until 3 at T0+90 (bucket 6, slot 2):
     * buckets 2-5 were skipped, so slots 0 and 1 still hold buckets 0 and 1.
     * The clock then steps back. The window at now holds the buckets
     * floor(now/15) - 3 .. floor(now/15) whose slots still hold them:
     *   T0+30: buckets -1..2  -> 0, 1 (slot 2 holds 6): count 2, sum 3
     *   T0+45: buckets  0..3  -> 0, 1                   count 2
     *   T0+60: buckets  1..4  -> 1 (slot 0 holds 0)     count 1, last 2
     *   T0+75: buckets  2..5  -> none */
    pm__wstore *w = store(15 * SEC, 60, 100);
    int64_t R = 60 * SEC;
    sfx x;
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    sfx_set(&x, 1);
    pm__wring *r = tick(w, &x, AT(0), R);
    sfx_set(&x, 2);
    tick(w, &x, AT(15), R);
    sfx_set(&x, 3);
    tick(w, &x, AT(90), R);
    REQUIRE(r);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 1, 0); /* buckets 3..6 */
    CHECK_EVAL(r, PM__FN_LAST_OT, 0, 3, 0);
    sfx_set(&x, 5);
    CHECK(tick(w, &x, AT(30), R) == r); /* before the last sample: dropped */
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 2, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 3, 0);
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 1.5, 0);
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 1, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 2, 0);
    CHECK_EVAL(r, PM__FN_LAST_OT, 0, 2, 0);
    /* delta 2 - 1 over [T0, T0+15], the window from T0-30: toStart 30 s is
     * over 1.1 x 15 (avg/2 = 7.5 then), toEnd 15 s is not: 1 * 37.5/15 */
    CHECK_EVAL(r, PM__FN_DELTA, 0, 2.5, EPS);
    pm__wstore_begin(w, AT(45));
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 2, 0);
    pm__wstore_begin(w, AT(60));
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 1, 0);
    CHECK_EVAL(r, PM__FN_LAST_OT, 0, 2, 0);
    pm__wstore_begin(w, AT(75));
    CHECK_NOENT(r, PM__FN_COUNT_OT, 0);
    CHECK_NOENT(r, PM__FN_MAX_OT, 0);
    sfx_close(&x);
    pm__wstore_free(w);
}

/* Feeds gauge value t at T0+t for t in [from, to]. */
static pm__wring *ramp(pm__wstore *w, sfx *x, int from, int to, int64_t range)
{
    pm__wring *r = NULL;
    for (int t = from; t <= to; t++) {
        sfx_set(x, t);
        r = tick(w, x, AT(t), range);
    }
    return r;
}

TEST(test_many_buckets)
{
    /* Interval 1 s, so every bucket is 1 s and holds the gauge value t
     * sampled at T0+t. Samples for t = 0..99 and 110..119, none between. */
    /* [1m], B = 60 (one bit per slot in the ring's live mask). */
    pm__wstore *w = store(SEC, 60, 100);
    sfx x;
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    ramp(w, &x, 0, 99, 60 * SEC);
    pm__wring *r = ramp(w, &x, 110, 119, 60 * SEC);
    REQUIRE(r);
    /* now T0+119: buckets 60..119 -> 60..99 and 110..119 (slots 50..59 no
     * longer hold 50..59: 110..119 took them): 40 + 10 samples,
     * sum 3180 + 1145 = 4325 */
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 50, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 4325, 0);
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 60, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 119, 0);
    /* back to T0+80: buckets 21..80 -> 40..49 (their slots were skipped by
     * 100..109) and 60..80; 21..39 were overwritten by 81..99, 50..59 by
     * 110..119: 10 + 21 samples, sum 445 + 1470 = 1915 */
    pm__wstore_begin(w, AT(80));
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 31, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 1915, 0);
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 40, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 80, 0);
    CHECK_EVAL(r, PM__FN_LAST_OT, 0, 80, 0);
    sfx_close(&x);
    pm__wstore_free(w);

    /* [100s], B = 100 (more slots than the mask covers); t = 0..149, then
     * 160..169. */
    w = store(SEC, 100, 100);
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    r = ramp(w, &x, 0, 149, 100 * SEC);
    /* now T0+149: buckets 50..149, sum (50 + 149) * 100 / 2 = 9950 */
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 100, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 9950, 0);
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 99.5, 1e-9);
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 50, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 149, 0);
    CHECK_EVAL(r, PM__FN_SLOPE, 0, 1, 1e-9);
    r = ramp(w, &x, 160, 169, 100 * SEC);
    /* now T0+169: buckets 70..169 -> 70..149 and 160..169 (slots 50..59
     * still hold 50..59, not 150..159): 80 + 10, sum 8760 + 1645 */
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 90, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 10405, 0);
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 70, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 169, 0);
    /* back to T0+120: buckets 21..120 -> 50..59 and 70..120: 10 + 51,
     * sum 545 + 4845 = 5390 */
    pm__wstore_begin(w, AT(120));
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 61, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 5390, 0);
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 50, 0);
    CHECK_EVAL(r, PM__FN_LAST_OT, 0, 120, 0);
    sfx_close(&x);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ gauges */
TEST(test_gauge_functions)
{
    /* 3, 7, 2, 8 at T0, +15, +30, +45; now T0+45, [1m]; with B = 4, 2 and 1
     * (Chan's merge across 4, 2 or no buckets must agree).
     * avg 20/4 = 5; min 2; max 8; sum 20; count 4; last 8;
     * deviations -2, 2, -3, 3: M2 = 4+4+9+9 = 26, population stddev
     * sqrt(26/4) = sqrt(6.5) = 2.5495097567963922;
     * zscore (8 - 5)/sqrt(6.5) = 1.1766968108291043;
     * delta 8 - 3 = 5, toStart 15 < 16.5: 5 * 60/45 = 6.666... */
    static const unsigned mb[] = {60, 2, 1};
    for (size_t k = 0; k < 3; k++) {
        pm__wstore *w = store(15 * SEC, mb[k], 100);
        sfx x;
        sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
        static const double v[] = {3, 7, 2, 8};
        pm__wring *r = NULL;
        for (int i = 0; i < 4; i++) {
            sfx_set(&x, v[i]);
            r = tick(w, &x, AT(15 * i), 60 * SEC);
        }
        CHECK_EVAL(r, PM__FN_AVG_OT, 0, 5, EPS);
        CHECK_EVAL(r, PM__FN_MIN_OT, 0, 2, 0);
        CHECK_EVAL(r, PM__FN_MAX_OT, 0, 8, 0);
        CHECK_EVAL(r, PM__FN_SUM_OT, 0, 20, 0);
        CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 4, 0);
        CHECK_EVAL(r, PM__FN_LAST_OT, 0, 8, 0);
        CHECK_EVAL(r, PM__FN_STDDEV_OT, 0, 2.5495097567963922, 1e-12);
        CHECK_EVAL(r, PM__FN_ZSCORE, 0, 1.1766968108291043, 1e-12);
        CHECK_EVAL(r, PM__FN_DELTA, 0, 5.0 * 60 / 45, EPS);
        sfx_close(&x);
        pm__wstore_free(w);
    }
}

TEST(test_zscore_edges)
{
    pm__wstore *w = store(15 * SEC, 60, 100);
    sfx x;
    sfx_open(&x, PM_TYPE_GAUGE, "temp", "api");
    sfx_set(&x, 4);
    pm__wring *r = tick(w, &x, AT(0), 60 * SEC);
    CHECK_NOENT(r, PM__FN_ZSCORE, 0);                 /* n < 2 */
    CHECK_EVAL(r, PM__FN_STDDEV_OT, 0, 0, 0);         /* one sample: 0 */
    r = tick(w, &x, AT(15), 60 * SEC);
    CHECK_NOENT(r, PM__FN_ZSCORE, 0);                 /* stddev 0 */
    /* 4, 4, 10: mean 6, deviations -2 -2 4: M2 24, sd sqrt(8);
     * z = (10 - 6)/sqrt(8) = 1.4142135623730951 */
    sfx_set(&x, 10);
    r = tick(w, &x, AT(30), 60 * SEC);
    CHECK_EVAL(r, PM__FN_ZSCORE, 0, 1.4142135623730951, 1e-12);
    sfx_close(&x);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ least squares */
TEST(test_slope_exact_line)
{
    /* v = 3 (t - T0)/s + 7 at irregular times; [5m], interval 15 s: B = 20
     * buckets of 15 s, then B = 2 buckets of 150 s (samples spread over both).
     * slope 3; predict_linear(p) = 3 (now + p - T0) + 7. */
    static const double ts[] = {0, 13, 31, 44, 58, 150, 170, 200, 280};
    static const unsigned mb[] = {60, 2};
    for (size_t k = 0; k < 2; k++) {
        pm__wstore *w = store(15 * SEC, mb[k], 100);
        sfx x;
        sfx_open(&x, PM_TYPE_GAUGE, "level", "api");
        pm__wring *r = NULL;
        for (int i = 0; i < 9; i++) {
            sfx_set(&x, 3 * ts[i] + 7);
            r = tick(w, &x, AT(ts[i]), 300 * SEC);
            if (i == 0) {
                CHECK_NOENT(r, PM__FN_SLOPE, 0);
                CHECK_NOENT(r, PM__FN_PREDICT_LINEAR, 10);
            }
            if (i == 4) {
                /* now T0+58: value at now 181, at now+30 3*88+7 = 271 */
                CHECK_EVAL(r, PM__FN_SLOPE, 0, 3, 1e-9);
                CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 0, 181, 1e-7);
                CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 30, 271, 1e-7);
            }
        }
        /* now T0+280, window [T0, T0+300) either way: 3*300+7 = 907 */
        CHECK_EVAL(r, PM__FN_SLOPE, 0, 3, 1e-9);
        CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 20, 907, 1e-7);
        CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, -280, 7, 1e-7);
        sfx_close(&x);
        pm__wstore_free(w);
    }

    /* Absolute time as the abscissa (v ~ 5.1e9): sums relative to bucket
     * starts keep this exact. v = 3 t/s + 7, t = T0 + 15 i, i = 0..4. */
    pm__wstore *w = store(15 * SEC, 60, 100);
    sfx x;
    sfx_open(&x, PM_TYPE_GAUGE, "level", "api");
    pm__wring *r = NULL;
    for (int i = 0; i < 5; i++) {
        sfx_set(&x, 3.0 * (1700000100.0 + 15 * i) + 7);
        r = tick(w, &x, AT(15 * i), 300 * SEC);
    }
    CHECK_EVAL(r, PM__FN_SLOPE, 0, 3, 1e-6);
    CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 60, 3.0 * (1700000100.0 + 120) + 7, 1e-4);
    sfx_close(&x);
    pm__wstore_free(w);
}

TEST(test_slope_noisy)
{
    /* t = 0, 15, 30, 45, 60 s; v = 1, 3, 2, 5, 4. mean t 30, mean v 3;
     * Sxy = (-30)(-2) + (-15)(0) + 0(-1) + 15(2) + 30(1) = 120;
     * Sxx = 900 + 225 + 0 + 225 + 900 = 2250; slope 120/2250 = 0.0533...;
     * at now (t = 60): 3 + 0.05333*30 = 4.6; predict_linear(60) = 4.6 +
     * 0.05333*60 = 7.8. */
    static const unsigned mb[] = {60, 2};
    for (size_t k = 0; k < 2; k++) {
        pm__wstore *w = store(15 * SEC, mb[k], 100);
        sfx x;
        sfx_open(&x, PM_TYPE_GAUGE, "level", "api");
        static const double v[] = {1, 3, 2, 5, 4};
        pm__wring *r = NULL;
        for (int i = 0; i < 5; i++) {
            sfx_set(&x, v[i]);
            r = tick(w, &x, AT(15 * i), 300 * SEC);
        }
        CHECK_EVAL(r, PM__FN_SLOPE, 0, 120.0 / 2250, 1e-12);
        CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 0, 4.6, 1e-9);
        CHECK_EVAL(r, PM__FN_PREDICT_LINEAR, 60, 7.8, 1e-9);
        sfx_close(&x);
        pm__wstore_free(w);
    }
}

/* ------------------------------------------------------------ EWMA */
typedef struct ewma_ref {
    double mean, var;
    int64_t last;
    int seen;
} ewma_ref;

/* The textbook update, written independently of the store. */
static int ewma_ref_step(ewma_ref *e, int64_t now, double x, double tau_s, double *z)
{
    if (!e->seen) {
        e->mean = x;
        e->var = 0;
        e->last = now;
        e->seen = 1;
        return 0;
    }
    double a = 1 - exp(-((double)(now - e->last) / 1e9) / tau_s);
    int ok = e->seen >= 2 && e->var > 0;
    if (ok) *z = (x - e->mean) / sqrt(e->var);
    double d = x - e->mean;
    e->mean = e->mean + a * d;
    e->var = (1 - a) * (e->var + a * d * d);
    e->seen++;
    e->last = now;
    return ok;
}

TEST(test_ewma)
{
    pm__wstore *w = store(15 * SEC, 60, 100);
    int node1, node2;
    int64_t tau = 30 * SEC;
    double z = 0;
    /* By hand, tau 30 s, steps of 15 s: alpha = 1 - e^-0.5 = 0.39346934...
     * x1 = 10: mean 10, var 0 (ENOENT).
     * x2 = 12: var before 0 (ENOENT); d = 2, mean 10.78693868,
     *   var = (1-a)(0 + a*4) = 0.95460487.
     * x3 = 9: z = (9 - 10.78693868)/sqrt(0.95460487) = -1.82893313. */
    pm__wstore_begin(w, AT(0));
    CHECK_STATUS(pm__wstore_ewma(w, &node1, 42, 10, tau, &z), PM_ENOENT);
    CHECK(isnan(z));
    pm__wstore_begin(w, AT(15));
    CHECK_STATUS(pm__wstore_ewma(w, &node1, 42, 12, tau, &z), PM_ENOENT);
    pm__wstore_begin(w, AT(30));
    CHECK_OK(pm__wstore_ewma(w, &node1, 42, 9, tau, &z));
    CHECK_NEAR(z, -1.828933126090041, 1e-12);
    /* once per tick: a second call repeats the answer, updates nothing */
    double z2 = 0;
    CHECK_OK(pm__wstore_ewma(w, &node1, 42, 1000, tau, &z2));
    CHECK_EQ_DBL(z2, z);

    /* A longer irregular run against the reference; other keys (another
     * node, another label hash) are independent. */
    ewma_ref ref = {0};
    static const double xs[] = {5, 6, 5.5, 7, 4, 9, 6, 6.5, 30, 5};
    static const int64_t dt[] = {0, 15, 15, 40, 15, 5, 15, 15, 90, 15};
    int64_t now = AT(1000);
    for (int i = 0; i < 10; i++) {
        now += dt[i] * SEC;
        pm__wstore_begin(w, now);
        double zr = NAN;
        int ok = ewma_ref_step(&ref, now, xs[i], 20, &zr);
        pm_status_t st = pm__wstore_ewma(w, &node2, 42, xs[i], 20 * SEC, &z);
        CHECK_STATUS(st, ok ? PM_OK : PM_ENOENT);
        if (ok) CHECK_NEAR(z, zr, 1e-12 * fmax(1, fabs(zr)));
        /* the first key is not touched by the second: same (node1, 42) */
        if (i == 2) {
            CHECK_EQ_U64(pm__wstore_series(w), 2);
            CHECK_STATUS(pm__wstore_ewma(w, &node1, 43, 1, tau, &z), PM_ENOENT); /* new */
            CHECK_EQ_U64(pm__wstore_series(w), 3);
        }
    }
    CHECK(ref.seen == 10);
    /* NaN and infinities are refused without touching the state */
    pm__wstore_begin(w, now + 15 * SEC);
    CHECK_STATUS(pm__wstore_ewma(w, &node2, 42, NAN, 20 * SEC, &z), PM_ENOENT);
    CHECK_STATUS(pm__wstore_ewma(w, &node2, 42, INFINITY, 20 * SEC, &z), PM_ENOENT);
    double zr = NAN;
    CHECK(ewma_ref_step(&ref, now + 15 * SEC, 6, 20, &zr));
    CHECK_OK(pm__wstore_ewma(w, &node2, 42, 6, 20 * SEC, &z));
    CHECK_NEAR(z, zr, 1e-12);
    /* bad arguments */
    CHECK_STATUS(pm__wstore_ewma(w, &node2, 42, 6, 0, &z), PM_EINVAL);
    CHECK_STATUS(pm__wstore_ewma(w, NULL, 42, 6, tau, &z), PM_EINVAL);
    CHECK_STATUS(pm__wstore_ewma(w, &node2, 42, 6, tau, NULL), PM_EINVAL);
    CHECK_STATUS(pm__wstore_ewma(NULL, &node2, 42, 6, tau, &z), PM_EINVAL);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ histograms */
static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest rank of the exact list, as pm__hdata_quantile_raw defines it. */
static double exact_quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_dbl);
    double t = q * (double)n;
    double rr = ceil(t - t * 0x1p-50);
    size_t rank = rr < 1 ? 1 : rr > (double)n ? n : (size_t)rr;
    return v[rank - 1];
}

/* Every quantile of the ring's window within 1/129 of the exact one of the
 * window's observations v[0..n). A value on a fine bucket's lower edge is
 * exactly 1/129 away from the bucket's representative: allow for rounding. */
#define REL (1.0 / 129 * (1 + 1e-12))
static void check_quantiles(const pm__wring *r, const double *v, size_t n)
{
    static const double qs[] = {0, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1};
    double *c = malloc(n * sizeof *c);
    if (!c) abort();
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        memcpy(c, v, n * sizeof *c);
        double want = exact_quantile(c, n, qs[i]), got = NAN;
        CHECK_OK(pm__wring_eval(r, PM__FN_QUANTILE_OT, qs[i], &got));
        if (!(fabs(got - want) <= want * REL))
            TH_FAIL_("q %g: got %.17g, exact %.17g (n %zu)", qs[i], got, want, n);
    }
    memcpy(c, v, n * sizeof *c);
    double lo = exact_quantile(c, n, 0), hi = c[n - 1], got = NAN;
    CHECK_OK(pm__wring_eval(r, PM__FN_MIN_OT, 0, &got));
    CHECK_NEAR(got, lo, lo * REL);
    CHECK_OK(pm__wring_eval(r, PM__FN_MAX_OT, 0, &got));
    CHECK_NEAR(got, hi, hi * REL);
    free(c);
}

static void observe(sfx *x, double v)
{
    pm_histogram_observe(x->h, v);
}

TEST(test_histogram_window)
{
    pm__wstore *w = store(15 * SEC, 60, 100);
    int64_t R = 60 * SEC;
    sfx x;
    sfx_open(&x, PM_TYPE_HISTOGRAM, "lat", "api");
    double win[256];
    size_t nw = 0;

    /* 1000 observations of 1000 before the first sample: never in a window. */
    for (int i = 0; i < 1000; i++) observe(&x, 1000);
    pm__wring *r = tick(w, &x, AT(0), R);
    REQUIRE(r);
    /* one sample: no observation between samples of the window */
    CHECK_NOENT(r, PM__FN_QUANTILE_OT, 0.5);
    CHECK_NOENT(r, PM__FN_COUNT_OT, 0);
    CHECK_NOENT(r, PM__FN_AVG_OT, 0);
    CHECK_NOENT(r, PM__FN_RATE, 0);
    CHECK_EVAL(r, PM__FN_LAST_OT, 0, 1000, 0); /* the count, as h alone */

    /* 1..100 between T0 and T0+15. Window [T0, T0+60): oldest copy taken at
     * T0 (count 1000): the window holds exactly these 100.
     * count 100, sum 5050, avg 50.5. rate of the count: 1000 -> 1100,
     * increase 100, toStart = T0 - (T0+15-60) = 45, toZero = 15 * 1000/100
     * = 150, 45 >= 16.5 -> 7.5, toEnd 0: 100 * 22.5/15 = 150, rate 2.5. */
    for (int i = 1; i <= 100; i++) {
        observe(&x, i);
        win[nw++] = i;
    }
    r = tick(w, &x, AT(15), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 100, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 5050, 1e-9);
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 50.5, 1e-9);
    CHECK_EVAL(r, PM__FN_INCREASE, 0, 150, EPS);
    CHECK_EVAL(r, PM__FN_RATE, 0, 2.5, EPS);
    CHECK_EVAL(r, PM__FN_QUANTILE_OT, 0.5, 50, 50.0 * REL);
    CHECK_EVAL(r, PM__FN_QUANTILE_OT, 0.99, 99, 99.0 * REL);
    /* min: the all-time min 1 was recorded after the copy (whose min is
     * 1000): exact. max: 1000 is older: estimated from the fine buckets. */
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 1, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 100, 100.0 * REL);
    check_quantiles(r, win, nw);

    /* 201..300 before T0+30: window still from T0: 200 observations;
     * median rank 100 -> 100, p75 rank 150 -> 250. */
    for (int i = 201; i <= 300; i++) {
        observe(&x, i);
        win[nw++] = i;
    }
    r = tick(w, &x, AT(30), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 200, 0);
    CHECK_EVAL(r, PM__FN_QUANTILE_OT, 0.5, 100, 100.0 * REL);
    CHECK_EVAL(r, PM__FN_QUANTILE_OT, 0.75, 250, 250.0 * REL);
    check_quantiles(r, win, nw);
    r = tick(w, &x, AT(45), R); /* nothing new */
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 200, 0);

    /* 401..410 before T0+60. Window [T0+15, T0+75): the oldest bucket's
     * copy is from T0+15 (count 1100): 201..300 and 401..410, 110
     * observations, sum 25050 + 4055 = 29105; median rank 55 -> 255. */
    nw = 0;
    for (int i = 201; i <= 300; i++) win[nw++] = i;
    for (int i = 401; i <= 410; i++) {
        observe(&x, i);
        win[nw++] = i;
    }
    r = tick(w, &x, AT(60), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 110, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 29105, 1e-6);
    CHECK_EVAL(r, PM__FN_AVG_OT, 0, 29105.0 / 110, 1e-9);
    CHECK_EVAL(r, PM__FN_QUANTILE_OT, 0.5, 255, 255.0 * REL);
    check_quantiles(r, win, nw);

    /* Reset (the process restarted): 7 new observations 2, 4, .. 14 with a
     * lower count. The window uses the new distribution whole: min and max
     * exact. */
    sfx_reset(&x);
    nw = 0;
    for (int i = 1; i <= 7; i++) {
        observe(&x, 2 * i);
        win[nw++] = 2 * i;
    }
    r = tick(w, &x, AT(75), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 7, 0);
    CHECK_EVAL(r, PM__FN_SUM_OT, 0, 56, 0);
    CHECK_EVAL(r, PM__FN_MIN_OT, 0, 2, 0);
    CHECK_EVAL(r, PM__FN_MAX_OT, 0, 14, 0);
    check_quantiles(r, win, nw);
    /* the count's counter view: window [T0+30, T0+90): 1200, 1200, 1210, 7:
     * steps 0, 10, reset 7: increase 17 */
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 7, 0);
    double inc = 0;
    CHECK_OK(pm__wring_eval(r, PM__FN_INCREASE, 0, &inc));
    /* toStart = 30 - 15 = 15, toZero = 45 * 1200/17 (large): 15 < 16.5;
     * toEnd 0: 17 * 60/45 */
    CHECK_NEAR(inc, 17.0 * 60 / 45, EPS);

    /* Later observations after the reset, one more tick: the reset is still
     * inside the window, so the distribution is the current one whole. */
    observe(&x, 100);
    win[nw++] = 100;
    r = tick(w, &x, AT(90), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 8, 0);
    check_quantiles(r, win, nw);
    /* Still inside at T0+105 (window [T0+60, T0+120), the reset is the step
     * into T0+75, not the oldest bucket). */
    r = tick(w, &x, AT(105), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 8, 0);
    /* Once the reset is the step into the oldest bucket (window [T0+75,
     * T0+135), copy at T0+75 with count 7), only the 100 is left. */
    r = tick(w, &x, AT(120), R);
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 1, 0);
    CHECK_EVAL(r, PM__FN_QUANTILE_OT, 0.5, 100, 100.0 * REL);

    /* types and parameters */
    double v;
    CHECK_STATUS(pm__wring_eval(r, PM__FN_STDDEV_OT, 0, &v), PM_ETYPE);
    CHECK_STATUS(pm__wring_eval(r, PM__FN_QUANTILE_OT, 1.5, &v), PM_EINVAL);
    CHECK_STATUS(pm__wring_eval(r, PM__FN_QUANTILE_OT, -0.1, &v), PM_EINVAL);
    CHECK_STATUS(pm__wring_eval(r, PM__FN_QUANTILE_OT, NAN, &v), PM_EINVAL);
    sfx_close(&x);
    pm__wstore_free(w);
}

TEST(test_histogram_many_samples_per_bucket)
{
    /* max_buckets 2: [1m] = 2 buckets of 30 s; a sample every 15 s with 10
     * new observations each. The oldest bucket's copy is the one of its
     * FIRST sample, so the window holds the observations made after it. */
    pm__wstore *w = store(15 * SEC, 2, 100);
    sfx x;
    sfx_open(&x, PM_TYPE_HISTOGRAM, "lat", "api");
    double all[100];
    pm__wring *r = NULL;
    for (int t = 0; t < 6; t++) {
        for (int i = 0; i < 10; i++) {
            all[t * 10 + i] = 10 * t + i + 1;
            observe(&x, all[t * 10 + i]);
        }
        r = tick(w, &x, AT(15 * t), 60 * SEC);
    }
    /* now T0+75: window [T0+30, T0+90); the oldest bucket's first sample is
     * T0+30 (after batches 0..2): the window holds batches 3, 4, 5 = values
     * 31..60. */
    CHECK_EVAL(r, PM__FN_COUNT_OT, 0, 30, 0);
    check_quantiles(r, all + 30, 30);
    sfx_close(&x);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ bounds, sweep */
TEST(test_max_series)
{
    pm__wstore *w = store(15 * SEC, 60, 3);
    sfx a, b;
    sfx_open(&a, PM_TYPE_COUNTER, "req", "api");
    sfx_open(&b, PM_TYPE_COUNTER, "req", "web");
    int node;
    double z;
    pm__wring *r;
    pm__wstore_begin(w, AT(0));
    CHECK_OK(feed(w, &a, 60 * SEC, &r));
    CHECK_OK(feed(w, &a, 120 * SEC, &r));
    CHECK_STATUS(pm__wstore_ewma(w, &node, 1, 5, SEC, &z), PM_ENOENT); /* created */
    CHECK_EQ_U64(pm__wstore_series(w), 3);
    r = (pm__wring *)&node;
    CHECK_STATUS(feed(w, &b, 60 * SEC, &r), PM_ERANGE);
    CHECK(r == NULL);
    CHECK_EQ_U64(pm__wstore_refused(w), 1);
    CHECK_STATUS(pm__wstore_ewma(w, &node, 2, 5, SEC, &z), PM_ERANGE);
    CHECK_EQ_U64(pm__wstore_refused(w), 2);
    CHECK_EQ_U64(pm__wstore_series(w), 3);
    /* existing keys still work */
    CHECK_OK(feed(w, &a, 60 * SEC, &r));
    CHECK(r != NULL);
    pm__wstore_begin(w, AT(15));
    CHECK_OK(feed(w, &a, 60 * SEC, &r));
    CHECK_STATUS(pm__wstore_ewma(w, &node, 1, 6, SEC, &z), PM_ENOENT); /* var 0 */
    /* the [2m] ring goes stale after 2m + 15 s: room for b */
    pm__wstore_begin(w, AT(136));
    CHECK_OK(feed(w, &a, 60 * SEC, &r));
    CHECK_OK(pm__wstore_ewma(w, &node, 1, 6, SEC, &z)); /* third sample, var > 0 */
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 2);
    CHECK_OK(feed(w, &b, 60 * SEC, &r));
    CHECK_EQ_U64(pm__wstore_series(w), 3);
    CHECK_EQ_U64(pm__wstore_refused(w), 2);
    sfx_close(&a);
    sfx_close(&b);
    pm__wstore_free(w);
}

TEST(test_sweep_and_bytes)
{
    pm__wstore *w = store(15 * SEC, 60, 100);
    size_t empty = pm__wstore_bytes(w);
    CHECK(empty > 0);
    sfx x;
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    pm__wring *r = tick(w, &x, AT(0), 60 * SEC);
    REQUIRE(r);
    /* A windowed counter costs the ring (header + B buckets) plus its key:
     * the strings "req\0" "api\0", rounded up to a multiple of 8 bytes. */
    size_t ring = pm__wstore_ring_bytes(w, 60 * SEC);
    CHECK_EQ_U64(pm__wstore_bytes(w), empty + ring + 8);
    /* "requests\0" "api\0" is 13 bytes: 16 */
    sfx y;
    sfx_open(&y, PM_TYPE_COUNTER, "requests", "api");
    REQUIRE(tick(w, &y, AT(0), 60 * SEC));
    CHECK_EQ_U64(pm__wstore_bytes(w), empty + 2 * ring + 8 + 16);
    sfx_close(&y);
    /* Sampled at T0, [1m], interval 15 s: kept while idle <= 75 s. */
    pm__wstore_begin(w, AT(75));
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 2);
    pm__wstore_begin(w, AT(75) + 1);
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 0);
    CHECK_EQ_U64(pm__wstore_bytes(w), empty);

    /* A histogram ring costs more than its buckets: the histogram part and
     * the distribution copies; all returned by the sweep. */
    sfx h;
    sfx_open(&h, PM_TYPE_HISTOGRAM, "lat", "api");
    for (int i = 1; i <= 50; i++) observe(&h, i);
    r = tick(w, &h, AT(100), 60 * SEC);
    REQUIRE(r);
    size_t with_h = pm__wstore_bytes(w);
    CHECK(with_h > empty + ring + 200);
    for (int i = 51; i <= 100; i++) observe(&h, i);
    r = tick(w, &h, AT(115), 60 * SEC);
    CHECK(pm__wstore_bytes(w) > with_h); /* a second bucket copy */

    /* EWMA states: kept while updated within 10 intervals (150 s). */
    int node;
    double z;
    CHECK_STATUS(pm__wstore_ewma(w, &node, 7, 1, SEC, &z), PM_ENOENT);
    CHECK_EQ_U64(pm__wstore_series(w), 2);
    pm__wstore_begin(w, AT(115) + 150 * SEC);
    pm__wstore_end(w); /* the histogram ring goes (idle 150 s > 75 s) */
    CHECK_EQ_U64(pm__wstore_series(w), 1);
    pm__wstore_begin(w, AT(115) + 150 * SEC + 1);
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 0);
    CHECK_EQ_U64(pm__wstore_bytes(w), empty);
    sfx_close(&x);
    sfx_close(&h);
    pm__wstore_free(w);
}

TEST(test_sweep_after_step_back)
{
    /* The sweep skips the table while no entry can be stale; a ring sampled
     * again after the clock stepped back is due earlier and must still go
     * on time. [1m] at 15 s: kept while idle <= 75 s; [5m]: <= 315 s. */
    pm__wstore *w = store(15 * SEC, 60, 100);
    size_t empty = pm__wstore_bytes(w);
    sfx x, g;
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    sfx_open(&g, PM_TYPE_GAUGE, "temp", "api");
    pm__wring *r;
    pm__wstore_begin(w, AT(100));
    CHECK_OK(feed(w, &x, 60 * SEC, &r));
    CHECK_OK(feed(w, &g, 300 * SEC, &r));
    pm__wstore_end(w);
    pm__wstore_begin(w, AT(0)); /* back: the sample is dropped, the use counts */
    CHECK_OK(feed(w, &x, 60 * SEC, &r));
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 2);
    pm__wstore_begin(w, AT(75));
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 2);
    pm__wstore_begin(w, AT(75) + 1);
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 1);
    pm__wstore_begin(w, AT(415));
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 1);
    pm__wstore_begin(w, AT(415) + 1);
    pm__wstore_end(w);
    CHECK_EQ_U64(pm__wstore_series(w), 0);
    CHECK_EQ_U64(pm__wstore_bytes(w), empty);
    sfx_close(&x);
    sfx_close(&g);
    pm__wstore_free(w);
}

TEST(test_many_series)
{
    /* 600 labeled gauges (the table grows many times), then only the even
     * ones are sampled: the odd ones are swept, the even ones are found
     * again (same ring) after the deletions shifted the table. */
    enum { N = 600 };
    pm__wstore *w = store(15 * SEC, 60, 10000);
    pm_registry_t *reg;
    REQUIRE(pm_registry_new(NULL, &reg) == PM_OK);
    pm_family_opts_t *fo;
    REQUIRE(pm_family_opts_new(&fo) == PM_OK);
    const char *ln[] = {"id"};
    pm_family_opts_set_labels(fo, ln, 1);
    (void)pm_family_opts_set_max_series(fo, 100000);
    pm_family_t *f;
    REQUIRE(pm_family_new(reg, PM_TYPE_GAUGE, "g", "h", fo, &f) == PM_OK);
    pm_family_opts_free(fo);
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "s%d", i);
        const char *lv[] = {id};
        REQUIRE(pm_gauge_set_labeled(f, lv, 1, i) == PM_OK);
    }
    pm__wring **rings = calloc(N, sizeof *rings);
    REQUIRE(rings);
    for (int t = 0; t < 10; t++) {
        pm_snapshot_t *s;
        REQUIRE(pm_snapshot_new(reg, &s) == PM_OK);
        const pm_snap_family_t *sf = snap_family(s, "g");
        REQUIRE(sf && pm_snap_family_series_count(sf) == N);
        pm__wstore_begin(w, AT(15 * t));
        for (size_t i = 0; i < N; i++) {
            const pm_snap_series_t *ss = pm_snap_family_series(sf, i);
            int id = atoi(pm_snap_series_label_value(ss, 0) + 1);
            if (t >= 2 && id % 2) continue;
            pm__wring *r;
            CHECK_OK(pm__wstore_sample(w, sf, ss, 30 * SEC, &r));
            if (t == 0) rings[id] = r;
            CHECK(r == rings[id]);
            CHECK_EVAL(r, PM__FN_LAST_OT, 0, id, 0);
        }
        pm__wstore_end(w);
        pm_snapshot_release(s);
        /* odd ones last sampled at T0+15: gone once idle > 30 + 15 s */
        CHECK_EQ_U64(pm__wstore_series(w), 15 * t - 15 > 45 ? N / 2 : N);
    }
    free(rings);
    pm_registry_free(reg);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ bad inputs */
TEST(test_bad_inputs)
{
    pm__wstore *w = NULL;
    const pm_alloc_t *a = &pm__default_alloc;
    CHECK_STATUS(pm__wstore_new(NULL, SEC, 60, 10, &w), PM_EINVAL);
    CHECK_STATUS(pm__wstore_new(a, SEC, 60, 10, NULL), PM_EINVAL);
    CHECK_STATUS(pm__wstore_new(a, 0, 60, 10, &w), PM_EINVAL);
    CHECK_STATUS(pm__wstore_new(a, -SEC, 60, 10, &w), PM_EINVAL);
    CHECK_STATUS(pm__wstore_new(a, SEC, 0, 10, &w), PM_EINVAL);
    CHECK_STATUS(pm__wstore_new(a, SEC, 4097, 10, &w), PM_EINVAL);
    CHECK_STATUS(pm__wstore_new(a, SEC, 60, 0, &w), PM_EINVAL);
    CHECK(w == NULL);
    CHECK_OK(pm__wstore_new(a, SEC, 4096, 10, &w));
    pm__wstore_free(w);
    w = store(15 * SEC, 60, 10);

    sfx x;
    sfx_open(&x, PM_TYPE_COUNTER, "req", "api");
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(x.r, &s) == PM_OK);
    const pm_snap_family_t *f = snap_family(s, "req");
    const pm_snap_series_t *ss = pm_snap_family_series(f, 0);
    pm__wring *r = (pm__wring *)&x;
    pm__wstore_begin(w, AT(0));
    CHECK_STATUS(pm__wstore_sample(NULL, f, ss, SEC, &r), PM_EINVAL);
    CHECK(r == NULL);
    CHECK_STATUS(pm__wstore_sample(w, NULL, ss, SEC, &r), PM_EINVAL);
    CHECK_STATUS(pm__wstore_sample(w, f, NULL, SEC, &r), PM_EINVAL);
    CHECK_STATUS(pm__wstore_sample(w, f, ss, SEC, NULL), PM_EINVAL);
    CHECK_STATUS(pm__wstore_sample(w, f, ss, 0, &r), PM_EINVAL);
    CHECK_STATUS(pm__wstore_sample(w, f, ss, -SEC, &r), PM_EINVAL);
    CHECK_EQ_U64(pm__wstore_series(w), 0);
    CHECK_OK(pm__wstore_sample(w, f, ss, 60 * SEC, &r));
    pm_snapshot_release(s);

    double v = 0;
    CHECK_STATUS(pm__wring_eval(NULL, PM__FN_RATE, 0, &v), PM_EINVAL);
    CHECK(isnan(v));
    CHECK_STATUS(pm__wring_eval(r, PM__FN_RATE, 0, NULL), PM_EINVAL);
    /* not window functions */
    CHECK_STATUS(pm__wring_eval(r, PM__FN_ABS, 0, &v), PM_EINVAL);
    CHECK_STATUS(pm__wring_eval(r, PM__FN_ABSENT, 0, &v), PM_EINVAL);
    CHECK_STATUS(pm__wring_eval(r, PM__FN_ZSCORE_EWMA, 0, &v), PM_EINVAL);
    CHECK_STATUS(pm__wring_eval(r, (pm__afn)0, 0, &v), PM_EINVAL);
    CHECK_STATUS(pm__wring_eval(r, (pm__afn)999, 0, &v), PM_EINVAL);
    /* not for this type */
    CHECK_STATUS(pm__wring_eval(r, PM__FN_QUANTILE_OT, 0.5, &v), PM_ETYPE);
    CHECK_STATUS(pm__wring_eval(r, PM__FN_PREDICT_LINEAR, NAN, &v), PM_EINVAL);
    CHECK_STATUS(pm__wring_eval(r, PM__FN_PREDICT_LINEAR, INFINITY, &v), PM_EINVAL);

    /* NULL-safe no-ops and zero answers */
    pm__wstore_free(NULL);
    pm__wstore_begin(NULL, 0);
    pm__wstore_end(NULL);
    CHECK_EQ_U64(pm__wstore_series(NULL), 0);
    CHECK_EQ_U64(pm__wstore_refused(NULL), 0);
    CHECK_EQ_U64(pm__wstore_bytes(NULL), 0);
    sfx_close(&x);
    pm__wstore_free(w);
}

/* ------------------------------------------------------------ allocation failures */
typedef struct cnt_alloc {
    long calls, fail_at, failed;
    long live;
    size_t live_bytes;
} cnt_alloc;

/* Each block carries its size in a 16-byte prefix so live bytes can be
 * compared with the store's own tally. */
static void *ca_alloc(void *user, size_t n)
{
    cnt_alloc *c = user;
    if (++c->calls == c->fail_at) {
        c->failed++;
        return NULL;
    }
    unsigned char *p = malloc(n + 16);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    c->live++;
    c->live_bytes += n;
    return p + 16;
}

static void ca_free(void *user, void *ptr)
{
    cnt_alloc *c = user;
    unsigned char *p = (unsigned char *)ptr - 16;
    size_t n;
    memcpy(&n, p, sizeof n);
    c->live--;
    c->live_bytes -= n;
    free(p);
}

#define SCRIPT_TICKS 8

/* Snapshots for the script: a counter, a gauge and a histogram whose
 * distribution widens each tick, in one registry. */
static void script_snaps(pm_snapshot_t **snaps)
{
    pm_registry_t *reg;
    if (pm_registry_new(NULL, &reg) != PM_OK) abort();
    pm_family_opts_t *fo;
    if (pm_family_opts_new(&fo) != PM_OK) abort();
    const char *ln[] = {"job"};
    pm_family_opts_set_labels(fo, ln, 1);
    pm_family_t *cf, *gf, *hf;
    if (pm_family_new(reg, PM_TYPE_COUNTER, "req", "h", fo, &cf) != PM_OK ||
        pm_family_new(reg, PM_TYPE_GAUGE, "temp", "h", fo, &gf) != PM_OK ||
        pm_family_new(reg, PM_TYPE_HISTOGRAM, "lat", "h", fo, &hf) != PM_OK)
        abort();
    pm_family_opts_free(fo);
    const char *lv[] = {"api"};
    for (int t = 0; t < SCRIPT_TICKS; t++) {
        pm_counter_add_labeled(cf, lv, 1, 10);
        pm_gauge_set_labeled(gf, lv, 1, t % 3);
        for (int i = 0; i < 40 * (t + 1); i++)
            pm_histogram_observe_labeled(hf, lv, 1, 1 + i * 7.5 + t);
        if (pm_snapshot_new(reg, &snaps[t]) != PM_OK) abort();
    }
    pm_registry_free(reg);
}

static const pm_snap_series_t *series_of(const pm_snapshot_t *s, const char *name,
                                         const pm_snap_family_t **f)
{
    *f = snap_family(s, name);
    return *f ? pm_snap_family_series(*f, 0) : NULL;
}

/* Runs the script; returns whether an allocation failed. Every status is OK
 * or ENOMEM (ENOENT where the window is short), and the store's byte tally
 * always equals what the allocator holds. */
static void run_script(cnt_alloc *ca, pm_snapshot_t **snaps)
{
    pm_alloc_t a = {ca_alloc, ca_free, ca};
    pm__wstore *w = NULL;
    pm_status_t st = pm__wstore_new(&a, 15 * SEC, 4, 100, &w);
    if (st != PM_OK) {
        CHECK_STATUS(st, PM_ENOMEM);
        CHECK(w == NULL);
        return;
    }
    static const char *names[] = {"req", "temp", "lat"};
    static const int64_t ranges[] = {60 * SEC, 30 * SEC, 60 * SEC};
    int node;
    for (int t = 0; t < SCRIPT_TICKS; t++) {
        pm__wstore_begin(w, AT(15 * t));
        for (int k = 0; k < 3; k++) {
            if (t >= 6 && k == 1) continue; /* the gauge ring goes stale */
            const pm_snap_family_t *f;
            const pm_snap_series_t *s = series_of(snaps[t], names[k], &f);
            pm__wring *r = NULL;
            st = pm__wstore_sample(w, f, s, ranges[k], &r);
            if (st != PM_OK) {
                CHECK_STATUS(st, PM_ENOMEM);
                CHECK(r == NULL);
            } else {
                static const pm__afn fns[] = {PM__FN_RATE, PM__FN_AVG_OT, PM__FN_QUANTILE_OT,
                                              PM__FN_SLOPE, PM__FN_COUNT_OT};
                for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++) {
                    double v;
                    pm_status_t e = pm__wring_eval(r, fns[i], 0.5, &v);
                    CHECK(e == PM_OK || e == PM_ENOENT || (e == PM_ETYPE && k != 2));
                }
            }
            CHECK_EQ_U64(pm__wstore_bytes(w), ca->live_bytes);
        }
        for (uint64_t key = 0; key < 14; key++) { /* the table grows past 12 */
            double z;
            st = pm__wstore_ewma(w, &node, key, t * (double)key, 30 * SEC, &z);
            CHECK(st == PM_OK || st == PM_ENOENT || st == PM_ENOMEM);
        }
        CHECK_EQ_U64(pm__wstore_bytes(w), ca->live_bytes);
        pm__wstore_end(w);
        CHECK(pm__wstore_series(w) <= 17);
    }
    pm__wstore_free(w);
}

TEST(test_alloc_failures)
{
    pm_snapshot_t *snaps[SCRIPT_TICKS];
    script_snaps(snaps);
    /* the reference run: how many allocations the script makes */
    cnt_alloc ref = {0};
    run_script(&ref, snaps);
    CHECK_EQ_INT(ref.live, 0);
    CHECK(ref.calls > 10);
    printf("script: %ld allocations, each failed in turn\n", ref.calls);
    for (long n = 1; n <= ref.calls; n++) {
        cnt_alloc ca = {.fail_at = n};
        run_script(&ca, snaps);
        CHECK_EQ_INT(ca.failed, 1);
        if (ca.live != 0 || ca.live_bytes != 0)
            TH_FAIL_("failing allocation %ld: %ld blocks, %zu bytes leaked", n, ca.live,
                     ca.live_bytes);
    }
    for (int t = 0; t < SCRIPT_TICKS; t++) pm_snapshot_release(snaps[t]);
}

TEST_MAIN(TH_CASE(test_geometry), TH_CASE(test_rate_basic), TH_CASE(test_rate_extrapolation),
          TH_CASE(test_counter_reset_in_bucket), TH_CASE(test_counter_reset_across_buckets),
          TH_CASE(test_window_sliding), TH_CASE(test_once_per_tick), TH_CASE(test_memo),
          TH_CASE(test_step_back_through_gap), TH_CASE(test_many_buckets),
          TH_CASE(test_gauge_functions), TH_CASE(test_zscore_edges),
          TH_CASE(test_slope_exact_line), TH_CASE(test_slope_noisy), TH_CASE(test_ewma),
          TH_CASE(test_histogram_window), TH_CASE(test_histogram_many_samples_per_bucket),
          TH_CASE(test_max_series), TH_CASE(test_sweep_and_bytes),
          TH_CASE(test_sweep_after_step_back), TH_CASE(test_many_series),
          TH_CASE(test_bad_inputs), TH_CASE(test_alloc_failures))
