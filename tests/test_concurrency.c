/* Concurrency: N threads x M updates give exact totals while snapshots,
 * exports, series creation and removal, and registry reads run at the same
 * time. Meant to run under TSan as well (suite 'concurrency'). */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#define THREADS 4

static long iters(long full)
{
    /* Sanitizer builds are ~10x slower; keep the suite in budget. */
    const char *s = getenv("PM_STRESS_SCALE");
    double scale = s ? atof(s) : 1.0;
    long n = (long)((double)full * scale);
    return n < 1000 ? 1000 : n;
}

struct ctx {
    pm_registry_t *r;
    pm_counter_t *c;
    pm_gauge_t *g;
    pm_histogram_t *h;
    pm_family_t *lab, *churn, *hist_lab;
    long n;
    int id;
    _Atomic int *stop;
};

static void *recorder(void *arg)
{
    struct ctx *x = arg;
    char id[16];
    snprintf(id, sizeof id, "t%d", x->id);
    const char *v[2] = {"shared", id};
    pm_counter_t *own;
    if (pm_counter_get(x->lab, v, 2, &own) != PM_OK) return (void *)1;
    for (long i = 0; i < x->n; i++) {
        pm_counter_inc(x->c);
        pm_counter_add(x->c, 0.5);
        pm_counter_inc(own);
        pm_gauge_add(x->g, 1.0);
        pm_histogram_observe(x->h, (double)(i % 1000 + 1) * 1e-6);
        if ((i & 15) == 0) {
            const char *lv[2] = {"labeled", "x"};
            pm_counter_add_labeled(x->lab, lv, 2, 1);
            const char *hv[1] = {"h"};
            pm_histogram_observe_labeled(x->hist_lab, hv, 1, 0.25);
        }
    }
    pm_counter_release(own);
    return NULL;
}

/* Creates, records into and removes short-lived series, holding handles
 * across removal (the handle must stay usable). */
static void *churner(void *arg)
{
    struct ctx *x = arg;
    char name[32];
    for (long i = 0; !atomic_load(x->stop); i++) {
        snprintf(name, sizeof name, "task-%ld", i % 64);
        const char *v[1] = {name};
        pm_counter_t *c;
        if (pm_counter_get(x->churn, v, 1, &c) == PM_OK) {
            pm_counter_inc(c);
            if (i % 3 == 0) pm_family_remove(x->churn, v, 1);
            pm_counter_inc(c); /* after removal: detached, still safe */
            pm_counter_release(c);
        }
        pm_counter_add_labeled(x->churn, v, 1, 1);
        if (i % 97 == 0) pm_family_clear(x->churn);
        if (i % 13 == 0) pm_registry_maintain(x->r);
    }
    return NULL;
}

static _Atomic long exports_seen;

static pm_status_t count_export(const pm_snapshot_t *s, void *user)
{
    (void)user;
    if (pm_snapshot_family_count(s) > 0) atomic_fetch_add(&exports_seen, 1);
    return PM_OK;
}

static void *reader(void *arg)
{
    struct ctx *x = arg;
    pm_buf_t *b;
    if (pm_buf_new(&b) != PM_OK) return (void *)1;
    while (!atomic_load(x->stop)) {
        pm_snapshot_t *s;
        if (pm_snapshot_new(x->r, &s) == PM_OK) {
            pm_buf_reset(b);
            pm_format(s, PM_FORMAT_PROMETHEUS, b);
            pm_snapshot_release(s);
        }
        pm_export_now(x->r);
        (void)pm_counter_value(x->c);
        (void)pm_family_series_count(x->churn);
    }
    pm_buf_free(b);
    return NULL;
}

static double snap_value(pm_snapshot_t *s, const char *fam, const char *l0, const char *l1)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), fam)) continue;
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
            const pm_snap_series_t *x = pm_snap_family_series(f, j);
            if (l0 && strcmp(pm_snap_series_label_value(x, 0), l0)) continue;
            if (l1 && strcmp(pm_snap_series_label_value(x, 1), l1)) continue;
            return pm_snap_family_type(f) == PM_TYPE_HISTOGRAM ? (double)pm_snap_series_count(x)
                                                                : pm_snap_series_value(x);
        }
    }
    return -1;
}

TEST(test_exact_totals_under_churn)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    struct ctx base = {.r = r};
    CHECK_OK(pm_counter_new(r, "ops", "Ops.", &base.c));
    CHECK_OK(pm_gauge_new(r, "level", "Level.", &base.g));
    CHECK_OK(pm_histogram_new(r, "lat_seconds", "Latency.", &base.h));
    pm_family_opts_t *o;
    CHECK_OK(pm_family_opts_new(&o));
    const char *ln[2] = {"kind", "thread"};
    CHECK_OK(pm_family_opts_set_labels(o, ln, 2));
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "labeled", "L.", o, &base.lab));
    const char *ln1[1] = {"task"};
    CHECK_OK(pm_family_opts_set_labels(o, ln1, 1));
    CHECK_OK(pm_family_opts_set_max_series(o, 32)); /* overflow gets exercised too */
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "churn", "C.", o, &base.churn));
    const char *lnh[1] = {"op"};
    CHECK_OK(pm_family_opts_set_labels(o, lnh, 1));
    CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "hlab_seconds", "H.", o, &base.hist_lab));
    pm_family_opts_free(o);
    CHECK_OK(pm_exporter_add(r, "counting", count_export, NULL, NULL, NULL));

    _Atomic int stop = 0;
    base.stop = &stop;
    base.n = iters(200000);
    pthread_t rec[THREADS], aux[3];
    struct ctx cx[THREADS], ax[3];
    for (int i = 0; i < THREADS; i++) {
        cx[i] = base;
        cx[i].id = i;
        REQUIRE(pthread_create(&rec[i], NULL, recorder, &cx[i]) == 0);
    }
    for (int i = 0; i < 3; i++) {
        ax[i] = base;
        REQUIRE(pthread_create(&aux[i], NULL, i == 0 ? churner : reader, &ax[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        void *rv;
        pthread_join(rec[i], &rv);
        CHECK(rv == NULL);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(aux[i], NULL);

    long n = base.n, per16 = (n + 15) / 16;
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_EQ_DBL(snap_value(s, "ops", NULL, NULL), (double)THREADS * n * 1.5);
    CHECK_EQ_DBL(pm_counter_value(base.c), (double)THREADS * n * 1.5);
    CHECK_EQ_DBL(snap_value(s, "level", NULL, NULL), (double)THREADS * n);
    CHECK_EQ_DBL(snap_value(s, "lat_seconds", NULL, NULL), (double)THREADS * n);
    CHECK_EQ_DBL(snap_value(s, "labeled", "labeled", "x"), (double)THREADS * per16);
    CHECK_EQ_DBL(snap_value(s, "hlab_seconds", "h", NULL), (double)THREADS * per16);
    for (int i = 0; i < THREADS; i++) {
        char id[16];
        snprintf(id, sizeof id, "t%d", i);
        CHECK_EQ_DBL(snap_value(s, "labeled", "shared", id), (double)n);
    }
    CHECK(atomic_load(&exports_seen) > 0);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* Many threads hammering one counter through both forms; also checks that
 * per-stripe histogram copies (granted while threads record) lose nothing. */
static void *hammer(void *arg)
{
    struct ctx *x = arg;
    for (long i = 0; i < x->n; i++) {
        pm_counter_add_u64(x->c, 2);
        pm_histogram_observe_ns(x->h, (uint64_t)(i % 5000) + 1);
        if ((i & 1023) == 0) pm_registry_maintain(x->r);
    }
    return NULL;
}

TEST(test_hammer_one_series)
{
    pm_registry_t *r;
    pm_registry_opts_t *ro;
    REQUIRE(pm_registry_opts_new(&ro) == PM_OK);
    CHECK_OK(pm_registry_opts_set_stripes(ro, 4));
    REQUIRE(pm_registry_new(ro, &r) == PM_OK);
    pm_registry_opts_free(ro);
    struct ctx base = {.r = r, .n = iters(300000)};
    CHECK_OK(pm_counter_new(r, "hits", "Hits.", &base.c));
    CHECK_OK(pm_histogram_new(r, "work_seconds", "W.", &base.h));
    enum { T = 6 };
    pthread_t th[T];
    for (int i = 0; i < T; i++) REQUIRE(pthread_create(&th[i], NULL, hammer, &base) == 0);
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_EQ_DBL(snap_value(s, "hits", NULL, NULL), 2.0 * T * base.n);
    CHECK_EQ_DBL(snap_value(s, "work_seconds", NULL, NULL), (double)T * base.n);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* Labeled look-ups racing removal of the same series: the look-up must
 * never touch freed memory (ASan/TSan catch it) and totals of the series
 * that is never removed stay exact. */
static void *lookup_loop(void *arg)
{
    struct ctx *x = arg;
    const char *keep[1] = {"keep"};
    const char *gone[1] = {"gone"};
    for (long i = 0; i < x->n; i++) {
        pm_counter_add_labeled(x->churn, keep, 1, 1);
        pm_counter_add_labeled(x->churn, gone, 1, 1);
    }
    return NULL;
}

static void *remove_loop(void *arg)
{
    struct ctx *x = arg;
    const char *gone[1] = {"gone"};
    while (!atomic_load(x->stop)) {
        pm_family_remove(x->churn, gone, 1);
        pm_registry_maintain(x->r);
    }
    return NULL;
}

TEST(test_lookup_races_removal)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_opts_t *o;
    CHECK_OK(pm_family_opts_new(&o));
    const char *ln[1] = {"task"};
    CHECK_OK(pm_family_opts_set_labels(o, ln, 1));
    struct ctx base = {.r = r, .n = iters(100000)};
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "jobs", "J.", o, &base.churn));
    pm_family_opts_free(o);
    _Atomic int stop = 0;
    base.stop = &stop;
    pthread_t a, b, c;
    REQUIRE(pthread_create(&a, NULL, lookup_loop, &base) == 0);
    REQUIRE(pthread_create(&b, NULL, lookup_loop, &base) == 0);
    REQUIRE(pthread_create(&c, NULL, remove_loop, &base) == 0);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    atomic_store(&stop, 1);
    pthread_join(c, NULL);
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_EQ_DBL(snap_value(s, "jobs", "keep", NULL), 2.0 * base.n);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* Histogram tables filled by racing inserters: six threads on one stripe
 * (one shared table chain) insert new keys with CAS, race to install the
 * spare dense table when it fills, and (second run) race maintenance
 * growing it. Every bucket ends exact. */
struct ins {
    pm_registry_t *r;
    pm_histogram_t *h;
    long n;
    int t;
    _Atomic int *stop;
};

static double ival(int t, long i)
{
    uint64_t x = (uint64_t)(i * 6 + t) * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    return 1e-8 * pow(1e11, (double)(x >> 11) / 9007199254740992.0); /* 10 ns .. 1000 s */
}

static void *inserter(void *arg)
{
    struct ins *x = arg;
    for (long i = 0; i < x->n; i++) pm_histogram_observe(x->h, ival(x->t, i));
    return NULL;
}

static void *maintainer(void *arg)
{
    struct ins *x = arg;
    while (!atomic_load(x->stop)) pm_registry_maintain(x->r);
    return NULL;
}

static void insert_race(int with_maintenance)
{
    pm_registry_opts_t *ro;
    REQUIRE(pm_registry_opts_new(&ro) == PM_OK);
    CHECK_OK(pm_registry_opts_set_stripes(ro, 1));
    pm_registry_t *r;
    REQUIRE(pm_registry_new(ro, &r) == PM_OK);
    pm_registry_opts_free(ro);
    pm_histogram_t *h;
    CHECK_OK(pm_histogram_new(r, "race_seconds", "R.", &h));
    enum { T = 6 };
    long n = iters(40000);
    _Atomic int stop = 0;
    struct ins x[T + 1];
    pthread_t th[T + 1];
    for (int t = 0; t <= T; t++) {
        x[t] = (struct ins){r, h, n, t, &stop};
        REQUIRE(pthread_create(&th[t], NULL, t < T ? inserter : maintainer, &x[t]) == 0);
        if (t == T - 1 && !with_maintenance) break;
    }
    for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
    atomic_store(&stop, 1);
    if (with_maintenance) pthread_join(th[T], NULL);
    pm_hdata_t *ref;
    REQUIRE(pm_hdata_new(1e-9, 1e4, &ref) == PM_OK);
    for (int t = 0; t < T; t++)
        for (long i = 0; i < n; i++) CHECK_OK(pm_hdata_record(ref, ival(t, i)));
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *se = NULL;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++)
        if (!strcmp(pm_snap_family_name(pm_snapshot_family(s, i)), "race_seconds"))
            se = pm_snap_family_series(pm_snapshot_family(s, i), 0);
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), (uint64_t)T * n);
    const pm_hdata_t *live = pm_snap_series_hdata(se);
    for (unsigned q = 0; q <= 1000; q++) {
        double a, b;
        CHECK_OK(pm_hdata_quantile(live, q / 1000.0, &a));
        CHECK_OK(pm_hdata_quantile(ref, q / 1000.0, &b));
        if (a != b) {
            TH_FAIL_("maintenance %d, q=%u/1000: %.17g vs %.17g", with_maintenance, q, a, b);
            break;
        }
    }
    CHECK(pm_snap_series_min(se) == pm_hdata_min(ref) && pm_snap_series_max(se) == pm_hdata_max(ref));
    pm_snapshot_release(s);
    pm_hdata_free(ref);
    pm_registry_free(r);
}

TEST(test_histogram_insert_races) { insert_race(0); }
TEST(test_histogram_insert_races_maintenance) { insert_race(1); }

TEST_MAIN(TH_CASE(test_exact_totals_under_churn), TH_CASE(test_hammer_one_series),
          TH_CASE(test_lookup_races_removal), TH_CASE(test_histogram_insert_races),
          TH_CASE(test_histogram_insert_races_maintenance))
