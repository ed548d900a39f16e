/* Snapshots: accessors, NULL safety, ordering, references, immutability. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

TEST(test_accessors_null_safe)
{
    CHECK(isnan(pm_snapshot_time(NULL)));
    CHECK_EQ_INT(pm_snapshot_family_count(NULL), 0);
    CHECK(pm_snapshot_family(NULL, 0) == NULL);
    CHECK(pm_snap_family_name(NULL) == NULL);
    CHECK(pm_snap_family_help(NULL) == NULL);
    CHECK(pm_snap_family_unit(NULL) == NULL);
    CHECK_EQ_INT(pm_snap_family_type(NULL), 0);
    CHECK_EQ_INT(pm_snap_family_label_count(NULL), 0);
    CHECK(pm_snap_family_label_name(NULL, 0) == NULL);
    CHECK_EQ_INT(pm_snap_family_bucket_count(NULL), 0);
    CHECK(isnan(pm_snap_family_bucket_bound(NULL, 0)));
    CHECK_EQ_INT(pm_snap_family_series_count(NULL), 0);
    CHECK(pm_snap_family_series(NULL, 0) == NULL);
    CHECK(pm_snap_series_label_value(NULL, 0) == NULL);
    CHECK_EQ_INT(pm_snap_series_is_overflow(NULL), 0);
    CHECK(isnan(pm_snap_series_created(NULL)));
    CHECK(isnan(pm_snap_series_value(NULL)));
    CHECK_EQ_INT(pm_snap_series_count(NULL), 0);
    CHECK(isnan(pm_snap_series_sum(NULL)));
    CHECK(isnan(pm_snap_series_min(NULL)));
    CHECK(isnan(pm_snap_series_max(NULL)));
    CHECK(isnan(pm_snap_series_mean(NULL)));
    CHECK(isnan(pm_snap_series_stddev(NULL)));
    CHECK_EQ_INT(pm_snap_series_bucket_cumulative(NULL, 0), 0);
    double q;
    CHECK_STATUS(pm_snap_series_quantile(NULL, 0.5, &q), PM_EINVAL);
    CHECK(pm_snap_series_hdata(NULL) == NULL);
    CHECK_STATUS(pm_snapshot_new(NULL, NULL), PM_EINVAL);
    pm_snapshot_t *s = (pm_snapshot_t *)1;
    CHECK_STATUS(pm_snapshot_new(NULL, &s), PM_EINVAL);
    CHECK(s == NULL);
    CHECK(pm_snapshot_ref(NULL) == NULL);
    pm_snapshot_release(NULL);
}

TEST(test_contents_and_order)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *ln[2] = {"method", "code"};
    CHECK_OK(pm_family_opts_set_labels(o, ln, 2));
    CHECK_OK(pm_family_opts_set_unit(o, "bytes"));
    pm_family_t *f;
    REQUIRE(pm_family_new(r, PM_TYPE_COUNTER, "zz_sent_bytes", "Bytes sent.", o, &f) == PM_OK);
    pm_family_opts_free(o);
    const char *a[2] = {"GET", "200"}, *b[2] = {"POST", "500"};
    double before = pm_wall_seconds();
    CHECK_OK(pm_counter_add_labeled(f, a, 2, 10));
    CHECK_OK(pm_counter_add_labeled(f, b, 2, 20));
    pm_gauge_t *g;
    CHECK_OK(pm_gauge_new(r, "aa_first", "First.", &g));
    pm_gauge_set(g, 3);
    pm_histogram_t *h;
    CHECK_OK(pm_histogram_new(r, "mm_seconds", "Hist.", &h));
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK(fabs(pm_snapshot_time(s) - before) < 60);
    size_t n = pm_snapshot_family_count(s);
    for (size_t i = 1; i < n; i++)
        CHECK(strcmp(pm_snap_family_name(pm_snapshot_family(s, i - 1)),
                     pm_snap_family_name(pm_snapshot_family(s, i))) < 0);
    CHECK(pm_snapshot_family(s, n) == NULL);
    CHECK_STR(pm_snap_family_name(pm_snapshot_family(s, 0)), "aa_first");
    const pm_snap_family_t *sf = pm_snapshot_family(s, n - 1);
    CHECK_STR(pm_snap_family_name(sf), "zz_sent_bytes");
    CHECK_STR(pm_snap_family_help(sf), "Bytes sent.");
    CHECK_STR(pm_snap_family_unit(sf), "bytes");
    CHECK_EQ_INT(pm_snap_family_type(sf), PM_TYPE_COUNTER);
    CHECK_EQ_INT(pm_snap_family_label_count(sf), 2);
    CHECK_STR(pm_snap_family_label_name(sf, 1), "code");
    CHECK(pm_snap_family_label_name(sf, 2) == NULL);
    CHECK_EQ_INT(pm_snap_family_series_count(sf), 2);
    const pm_snap_series_t *x = pm_snap_family_series(sf, 1); /* creation order */
    CHECK_STR(pm_snap_series_label_value(x, 0), "POST");
    CHECK(pm_snap_series_label_value(x, 2) == NULL);
    CHECK_EQ_DBL(pm_snap_series_value(x), 20);
    CHECK(pm_snap_series_created(x) >= before - 1 && pm_snap_series_created(x) <= before + 60);
    CHECK(pm_snap_family_series(sf, 2) == NULL);
    /* Histogram accessors on a counter series give the documented defaults. */
    CHECK_EQ_INT(pm_snap_series_count(x), 0);
    CHECK(isnan(pm_snap_series_sum(x)));
    double q;
    CHECK_STATUS(pm_snap_series_quantile(x, 0.5, &q), PM_EINVAL);
    CHECK(pm_snap_series_hdata(x) == NULL);
    /* An empty histogram. */
    for (size_t i = 0; i < n; i++) {
        const pm_snap_family_t *hf = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(hf), "mm_seconds")) continue;
        const pm_snap_series_t *hs = pm_snap_family_series(hf, 0);
        CHECK_EQ_INT(pm_snap_series_count(hs), 0);
        CHECK(isnan(pm_snap_series_min(hs)));
        CHECK(isnan(pm_snap_series_mean(hs)));
        CHECK_STATUS(pm_snap_series_quantile(hs, 0.5, &q), PM_ENOENT);
        CHECK_STATUS(pm_snap_series_quantile(hs, 1.5, &q), PM_EINVAL);
        CHECK_STATUS(pm_snap_series_quantile(hs, 0.5, NULL), PM_EINVAL);
        CHECK_EQ_INT(pm_snap_family_bucket_count(hf), 11);
        CHECK_EQ_DBL(pm_snap_family_bucket_bound(hf, 0), 0.005);
        CHECK(isnan(pm_snap_family_bucket_bound(hf, 11)));
        CHECK_EQ_INT(pm_snap_series_bucket_cumulative(hs, 11), 0);
        CHECK_EQ_INT(pm_snap_series_bucket_cumulative(hs, 12), 0);
    }
    /* The snapshot is immutable: later recording does not change it. */
    pm_counter_add_labeled(f, a, 2, 100);
    CHECK_EQ_DBL(pm_snap_series_value(pm_snap_family_series(sf, 0)), 10);
    pm_snapshot_t *s2 = pm_snapshot_ref(s);
    CHECK(s2 == s);
    pm_snapshot_release(s);
    CHECK_STR(pm_snap_family_name(sf), "zz_sent_bytes"); /* still alive: one ref left */
    pm_snapshot_release(s2);
    pm_registry_free(r);
}

TEST(test_self_metrics_present)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_counter_t *c;
    CHECK_OK(pm_counter_new(r, "x", "h", &c));
    pm_snapshot_t *s;
    for (int i = 0; i < 3; i++) {
        REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
        if (i < 2) pm_snapshot_release(s);
    }
    const char *want[] = {"perfmetrics_series", "perfmetrics_series_refused",
                          "perfmetrics_series_removed", "perfmetrics_values_rejected",
                          "perfmetrics_snapshots", "perfmetrics_snapshot_duration_seconds",
                          "perfmetrics_collector_runs", "perfmetrics_collector_failures",
                          "perfmetrics_exporter_runs", "perfmetrics_exporter_failures",
                          "perfmetrics_export_errors"};
    for (size_t w = 0; w < sizeof want / sizeof *want; w++) {
        int found = 0;
        for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
            const pm_snap_family_t *f = pm_snapshot_family(s, i);
            if (strcmp(pm_snap_family_name(f), want[w])) continue;
            found = 1;
            if (!strcmp(want[w], "perfmetrics_snapshots"))
                CHECK_EQ_DBL(pm_snap_series_value(pm_snap_family_series(f, 0)), 3);
            if (!strcmp(want[w], "perfmetrics_snapshot_duration_seconds"))
                CHECK(pm_snap_series_value(pm_snap_family_series(f, 0)) >= 0);
        }
        if (!found) TH_FAIL_("missing self metric %s", want[w]);
    }
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* An allocator that counts live bytes, so the arena pool's bound shows. */
struct ts_count {
    long long live;
};
static void *ts_alloc(void *user, size_t n)
{
    size_t *p = malloc(n + 16);
    if (!p) return NULL;
    *p = n;
    ((struct ts_count *)user)->live += (long long)n;
    return (char *)p + 16;
}
static void ts_free(void *user, void *q)
{
    if (!q) return;
    size_t *p = (size_t *)(void *)((char *)q - 16);
    ((struct ts_count *)user)->live -= (long long)*p;
    free(p);
}

static pm_registry_t *ts_counted_registry(struct ts_count *c, int series)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    pm_registry_opts_set_allocator(o, ts_alloc, ts_free, c);
    pm_status_t st = pm_registry_new(o, &r);
    pm_registry_opts_free(o);
    if (st != PM_OK) return NULL;
    static const char *const ln[] = {"id"};
    pm_family_opts_t *fo = NULL;
    pm_family_t *f = NULL;
    if (pm_family_opts_new(&fo) != PM_OK) return NULL;
    pm_family_opts_set_labels(fo, ln, 1);
    pm_family_opts_set_max_series(fo, (size_t)series + 1);
    st = pm_family_new(r, PM_TYPE_COUNTER, "pool_events", "Events.", fo, &f);
    pm_family_opts_free(fo);
    if (st != PM_OK) return NULL;
    for (int i = 0; i < series; i++) {
        char v[32];
        snprintf(v, sizeof v, "series-%06d", i);
        const char *vv[] = {v};
        if (pm_counter_add_labeled(f, vv, 1, (double)i) != PM_OK) return NULL;
    }
    return r;
}

static double ts_family_sum(const pm_snapshot_t *s, const char *name)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), name)) continue;
        double sum = 0;
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++)
            sum += pm_snap_series_value(pm_snap_family_series(f, j));
        return sum;
    }
    return NAN;
}

/* The registry keeps the chunks of a released snapshot for the next one
 * (lib/arena.c): repeated snapshots stay correct and do not grow memory
 * past one snapshot's worth, and everything is freed with the registry. */
TEST(test_arena_pool_bounded)
{
    enum { N = 20000 };
    const double want = (double)N * (N - 1) / 2;
    struct ts_count c = {0};
    pm_registry_t *r = ts_counted_registry(&c, N);
    REQUIRE(r);
    long long base = c.live;
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    long long one = c.live - base; /* one snapshot's bytes */
    CHECK(one > (long long)N * 40);
    CHECK_EQ_DBL(ts_family_sum(s, "pool_events"), want);
    pm_snapshot_release(s);
    long long kept = c.live - base;
    CHECK(kept > 0 && kept <= one); /* the pool: at most one snapshot */
    for (int i = 0; i < 10; i++) {
        REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
        CHECK(c.live - base <= one + 65536 + 1024);
        CHECK_EQ_DBL(ts_family_sum(s, "pool_events"), want);
        pm_snapshot_release(s);
        CHECK(c.live - base <= kept);
    }
    /* Two held at once: the second is built from fresh memory; releasing
     * both keeps only one snapshot's worth. */
    pm_snapshot_t *a = NULL, *b = NULL;
    REQUIRE(pm_snapshot_new(r, &a) == PM_OK && pm_snapshot_new(r, &b) == PM_OK);
    CHECK_EQ_DBL(ts_family_sum(a, "pool_events"), want);
    CHECK_EQ_DBL(ts_family_sum(b, "pool_events"), want);
    pm_snapshot_release(a);
    pm_snapshot_release(b);
    CHECK(c.live - base <= kept);
    pm_registry_free(r);
    CHECK_EQ_INT(c.live, 0);
}

/* Snapshots outlive their registry with the pool between them: the last
 * one out frees it, and nothing is kept once the registry is gone. */
TEST(test_arena_pool_outlives_registry)
{
    enum { N = 5000 };
    const double want = (double)N * (N - 1) / 2;
    struct ts_count c = {0};
    pm_registry_t *r = ts_counted_registry(&c, N);
    REQUIRE(r);
    pm_snapshot_t *s = NULL, *a = NULL, *b = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    pm_snapshot_release(s); /* fills the pool */
    REQUIRE(pm_snapshot_new(r, &a) == PM_OK && pm_snapshot_new(r, &b) == PM_OK);
    pm_registry_free(r);
    CHECK_EQ_DBL(ts_family_sum(a, "pool_events"), want);
    pm_snapshot_release(a);
    CHECK_EQ_DBL(ts_family_sum(b, "pool_events"), want);
    pm_snapshot_t *b2 = pm_snapshot_ref(b);
    pm_snapshot_release(b);
    CHECK_EQ_DBL(ts_family_sum(b2, "pool_events"), want);
    pm_snapshot_release(b2);
    CHECK_EQ_INT(c.live, 0);
}

TEST_MAIN(TH_CASE(test_accessors_null_safe), TH_CASE(test_contents_and_order),
          TH_CASE(test_self_metrics_present), TH_CASE(test_arena_pool_bounded),
          TH_CASE(test_arena_pool_outlives_registry))
