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

TEST_MAIN(TH_CASE(test_accessors_null_safe), TH_CASE(test_contents_and_order),
          TH_CASE(test_self_metrics_present))
