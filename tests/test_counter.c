/* Counters and gauges: recording, bad inputs, labeled forms, references. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

static pm_family_t *fam(pm_registry_t *r, pm_type_t t, const char *name, size_t nl)
{
    pm_family_opts_t *o;
    if (pm_family_opts_new(&o) != PM_OK) return NULL;
    const char *ln[2] = {"a", "b"};
    pm_family_opts_set_labels(o, ln, nl);
    pm_family_t *f = NULL;
    pm_family_new(r, t, name, "help", o, &f);
    pm_family_opts_free(o);
    return f;
}

static double rejected(pm_registry_t *r, const char *family)
{
    pm_snapshot_t *s;
    double v = -1;
    if (pm_snapshot_new(r, &s) != PM_OK) return v;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), "perfmetrics_values_rejected")) continue;
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++)
            if (!strcmp(pm_snap_series_label_value(pm_snap_family_series(f, j), 0), family))
                v = pm_snap_series_value(pm_snap_family_series(f, j));
    }
    pm_snapshot_release(s);
    return v;
}

TEST(test_counter_records)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_counter_t *c;
    REQUIRE(pm_counter_new(r, "events", "Events.", &c) == PM_OK);
    pm_counter_inc(c);
    pm_counter_add_u64(c, 41);
    pm_counter_add(c, 0.25);
    pm_counter_add(c, 2.0); /* whole numbers take the integer cell */
    pm_counter_add(c, 0);
    pm_counter_add(c, 1e300);
    pm_counter_add(c, -1e300);
    CHECK_EQ_DBL(pm_counter_value(c), 44.25 + 1e300);
    pm_registry_free(r);
}

TEST(test_counter_rejects_bad_values)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_counter_t *c;
    REQUIRE(pm_counter_new(r, "events", "Events.", &c) == PM_OK);
    pm_counter_add(c, 1);
    pm_counter_add(c, -1);
    pm_counter_add(c, -0.0001);
    pm_counter_add(c, NAN);
    pm_counter_add(c, INFINITY);
    pm_counter_add(c, -INFINITY);
    CHECK_EQ_DBL(pm_counter_value(c), 1);
    CHECK_EQ_DBL(rejected(r, "events"), 5);
    pm_family_t *f = fam(r, PM_TYPE_COUNTER, "lab", 1);
    const char *v[1] = {"x"};
    CHECK_STATUS(pm_counter_add_labeled(f, v, 1, -1), PM_ERANGE);
    CHECK_STATUS(pm_counter_add_labeled(f, v, 1, NAN), PM_ERANGE);
    CHECK_EQ_INT(pm_family_series_count(f), 0); /* no series created for a bad value */
    CHECK_EQ_DBL(rejected(r, "lab"), 2);
    pm_registry_free(r);
}

TEST(test_null_handles_ignored)
{
    pm_counter_inc(NULL);
    pm_counter_add(NULL, 1);
    pm_counter_add_u64(NULL, 1);
    pm_gauge_set(NULL, 1);
    pm_gauge_add(NULL, 1);
    pm_gauge_sub(NULL, 1);
    pm_histogram_observe(NULL, 1);
    pm_histogram_observe_ns(NULL, 1);
    pm_timer_stop(NULL, pm_timer_start());
    CHECK_EQ_DBL(pm_counter_value(NULL), 0);
    CHECK_EQ_DBL(pm_gauge_value(NULL), 0);
    pm_counter_release(NULL);
    pm_gauge_release(NULL);
    pm_histogram_release(NULL);
}

TEST(test_get_bad_inputs)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = fam(r, PM_TYPE_COUNTER, "two", 2);
    pm_family_t *g = fam(r, PM_TYPE_GAUGE, "gtwo", 2);
    REQUIRE(f && g);
    const char *v[2] = {"x", "y"};
    const char *vn[2] = {"x", NULL};
    pm_counter_t *c = (pm_counter_t *)1;
    CHECK_STATUS(pm_counter_get(NULL, v, 2, &c), PM_EINVAL);
    CHECK(c == NULL);
    CHECK_STATUS(pm_counter_get(f, v, 2, NULL), PM_EINVAL);
    CHECK_STATUS(pm_counter_get(f, v, 1, &c), PM_ELABELCOUNT);
    CHECK_STATUS(pm_counter_get(f, NULL, 2, &c), PM_EINVAL);
    CHECK_STATUS(pm_counter_get(f, vn, 2, &c), PM_EINVAL);
    CHECK_STATUS(pm_counter_get(g, v, 2, &c), PM_ETYPE);
    pm_gauge_t *gg;
    CHECK_STATUS(pm_gauge_get(f, v, 2, &gg), PM_ETYPE);
    CHECK_STATUS(pm_gauge_get(g, v, 2, NULL), PM_EINVAL);
    pm_histogram_t *h;
    CHECK_STATUS(pm_histogram_get(f, v, 2, &h), PM_ETYPE);
    CHECK_STATUS(pm_counter_add_labeled(NULL, v, 2, 1), PM_EINVAL);
    CHECK_STATUS(pm_counter_add_labeled(g, v, 2, 1), PM_ETYPE);
    CHECK_STATUS(pm_counter_add_labeled(f, v, 3, 1), PM_ELABELCOUNT);
    CHECK_STATUS(pm_counter_add_labeled(f, NULL, 2, 1), PM_EINVAL);
    CHECK_STATUS(pm_counter_add_labeled(f, vn, 2, 1), PM_EINVAL);
    CHECK_STATUS(pm_gauge_set_labeled(NULL, v, 2, 1), PM_EINVAL);
    CHECK_STATUS(pm_gauge_set_labeled(f, v, 2, 1), PM_ETYPE);
    CHECK_STATUS(pm_gauge_set_labeled(g, v, 1, 1), PM_ELABELCOUNT);
    CHECK_STATUS(pm_gauge_set_labeled(g, vn, 2, 1), PM_EINVAL);
    const char *bad[2] = {"x", "\xff"};
    CHECK_STATUS(pm_counter_add_labeled(f, bad, 2, 1), PM_EUTF8);
    CHECK_EQ_INT(pm_family_series_count(f), 0);
    CHECK_STATUS(pm_counter_new(NULL, "a", "h", &c), PM_EINVAL);
    CHECK_STATUS(pm_counter_new(r, "a", "h", NULL), PM_EINVAL);
    CHECK_STATUS(pm_counter_new(r, "two", "help", &c), PM_EEXIST); /* labels differ */
    CHECK(c == NULL);
    CHECK_STATUS(pm_gauge_new(r, "two", "help", &gg), PM_EEXIST);
    CHECK_STATUS(pm_gauge_new(r, "g", "h", NULL), PM_EINVAL);
    CHECK_STATUS(pm_histogram_new(r, "two", "help", &h), PM_EEXIST);
    CHECK_STATUS(pm_histogram_new(r, "h", "h", NULL), PM_EINVAL);
    pm_registry_free(r);
}

TEST(test_labeled_and_handles_agree)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = fam(r, PM_TYPE_COUNTER, "req", 2);
    const char *v[2] = {"GET", "200"};
    CHECK_OK(pm_counter_add_labeled(f, v, 2, 2));
    pm_counter_t *a, *b;
    CHECK_OK(pm_counter_get(f, v, 2, &a));
    CHECK_OK(pm_counter_get(f, v, 2, &b));
    CHECK(a == b);
    pm_counter_inc(a);
    CHECK_EQ_DBL(pm_counter_value(b), 3);
    /* ("ab","c") and ("a","bc") are different series */
    const char *p[2] = {"ab", "c"}, *q[2] = {"a", "bc"};
    CHECK_OK(pm_counter_add_labeled(f, p, 2, 1));
    CHECK_OK(pm_counter_add_labeled(f, q, 2, 5));
    pm_counter_t *pc;
    CHECK_OK(pm_counter_get(f, p, 2, &pc));
    CHECK_EQ_DBL(pm_counter_value(pc), 1);
    CHECK_EQ_INT(pm_family_series_count(f), 3);
    pm_counter_release(a);
    pm_counter_release(b);
    pm_counter_release(pc);
    /* Released handles: the series stays (the family holds it). */
    CHECK_EQ_INT(pm_family_series_count(f), 3);
    pm_registry_free(r);
}

TEST(test_gauge_ops)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_gauge_t *g;
    REQUIRE(pm_gauge_new(r, "temp", "T.", &g) == PM_OK);
    pm_gauge_set(g, 10);
    pm_gauge_add(g, 2.5);
    pm_gauge_sub(g, 5);
    CHECK_EQ_DBL(pm_gauge_value(g), 7.5);
    pm_gauge_add(g, -10);
    CHECK_EQ_DBL(pm_gauge_value(g), -2.5);
    pm_gauge_set(g, NAN);
    CHECK(isnan(pm_gauge_value(g)));
    pm_gauge_set(g, -INFINITY);
    CHECK(pm_gauge_value(g) == -INFINITY);
    pm_family_t *f = fam(r, PM_TYPE_GAUGE, "load", 1);
    const char *v[1] = {"cpu0"};
    CHECK_OK(pm_gauge_set_labeled(f, v, 1, 0.5));
    CHECK_OK(pm_gauge_set_labeled(f, v, 1, 0.75));
    pm_gauge_t *h;
    CHECK_OK(pm_gauge_get(f, v, 1, &h));
    CHECK_EQ_DBL(pm_gauge_value(h), 0.75);
    pm_gauge_release(h);
    /* Values of the wrong kind of handle read as 0. */
    CHECK_EQ_DBL(pm_counter_value((const pm_counter_t *)g), 0);
    pm_registry_free(r);
}

TEST(test_counter_arena_grows)
{
    /* More than one arena chunk (256 slots) and slot reuse after removal. */
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = fam(r, PM_TYPE_COUNTER, "grow", 1);
    char id[16];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 700; i++) {
            snprintf(id, sizeof id, "%d", i);
            const char *v[1] = {id};
            CHECK_OK(pm_counter_add_labeled(f, v, 1, (double)(i + round)));
        }
        for (int i = 0; i < 700; i++) {
            snprintf(id, sizeof id, "%d", i);
            const char *v[1] = {id};
            pm_counter_t *c;
            CHECK_OK(pm_counter_get(f, v, 1, &c));
            CHECK_EQ_DBL(pm_counter_value(c), (double)(i + round));
            pm_counter_release(c);
        }
        CHECK_OK(pm_family_clear(f));
        CHECK_OK(pm_registry_maintain(r));
    }
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_counter_records), TH_CASE(test_counter_rejects_bad_values),
          TH_CASE(test_null_handles_ignored), TH_CASE(test_get_bad_inputs),
          TH_CASE(test_labeled_and_handles_agree), TH_CASE(test_gauge_ops),
          TH_CASE(test_counter_arena_grows))
