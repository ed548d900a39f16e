/* Name, label-name, unit and UTF-8 rules, through the public API. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

static pm_status_t new_family(pm_registry_t *r, const char *name)
{
    pm_family_t *f;
    return pm_family_new(r, PM_TYPE_GAUGE, name, "h", NULL, &f);
}

TEST(test_metric_names)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    const char *good[] = {"a", "_a", "a:b", ":a", "abc_123", "A_Z", "x9"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) CHECK_OK(new_family(r, good[i]));
    const char *bad[] = {"", "9a", "a-b", "a b", "a.b", "é", "a\n", "perfmetrics_x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_STATUS(new_family(r, bad[i]), PM_EBADNAME);
    char longname[300];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = 0;
    CHECK_STATUS(new_family(r, longname), PM_EBADNAME);
    pm_family_t *f;
    CHECK_STATUS(pm_family_new(r, PM_TYPE_COUNTER, "x_total", "h", NULL, &f), PM_EBADNAME);
    pm_registry_free(r);
}

TEST(test_label_names)
{
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *good[] = {"a", "_a", "a1", "Path"};
    CHECK_OK(pm_family_opts_set_labels(o, good, 4));
    const char *bad[] = {"", "1a", "a:b", "__x", "le", "quantile", "pm_overflow", "a-b", "é"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        const char *one[1] = {bad[i]};
        CHECK_STATUS(pm_family_opts_set_labels(o, one, 1), PM_EBADLABEL);
    }
    const char *dup[2] = {"a", "a"};
    CHECK_STATUS(pm_family_opts_set_labels(o, dup, 2), PM_EBADLABEL);
    const char *withnull[2] = {"a", NULL};
    CHECK_STATUS(pm_family_opts_set_labels(o, withnull, 2), PM_EINVAL);
    CHECK_STATUS(pm_family_opts_set_labels(o, NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_family_opts_set_labels(NULL, good, 1), PM_EINVAL);
    const char *many[33];
    for (int i = 0; i < 33; i++) many[i] = "a";
    CHECK_STATUS(pm_family_opts_set_labels(o, many, 33), PM_ERANGE);
    pm_family_opts_free(o);
}

TEST(test_units)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    CHECK_STATUS(pm_family_opts_set_unit(o, "se-conds"), PM_EBADNAME);
    CHECK_STATUS(pm_family_opts_set_unit(NULL, "s"), PM_EINVAL);
    CHECK_OK(pm_family_opts_set_unit(o, "seconds"));
    pm_family_t *f;
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "latency", "h", o, &f), PM_EBADNAME);
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "latencyseconds", "h", o, &f), PM_EBADNAME);
    CHECK_OK(pm_family_new(r, PM_TYPE_GAUGE, "latency_seconds", "h", o, &f));
    CHECK_OK(pm_family_opts_set_unit(o, NULL)); /* clears */
    CHECK_OK(pm_family_new(r, PM_TYPE_GAUGE, "plain", "h", o, &f));
    pm_family_opts_free(o);
    pm_registry_free(r);
}

TEST(test_label_values_utf8)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *ln[1] = {"v"};
    CHECK_OK(pm_family_opts_set_labels(o, ln, 1));
    pm_family_t *f;
    REQUIRE(pm_family_new(r, PM_TYPE_COUNTER, "c", "h", o, &f) == PM_OK);
    pm_family_opts_free(o);
    const char *good[] = {"", "plain", "quote\"back\\slash\nnewline", "é✓😀", "\x7f"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        pm_counter_t *c;
        const char *v[1] = {good[i]};
        CHECK_OK(pm_counter_get(f, v, 1, &c));
        pm_counter_release(c);
    }
    const char *bad[] = {"\xff", "\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80",
                         "ok\xe2\x9c", "\xe0\x80\x80"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pm_counter_t *c = (pm_counter_t *)1;
        const char *v[1] = {bad[i]};
        CHECK_STATUS(pm_counter_get(f, v, 1, &c), PM_EUTF8);
        CHECK(c == NULL);
    }
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = 0;
    const char *v[1] = {big};
    pm_counter_t *c;
    CHECK_STATUS(pm_counter_get(f, v, 1, &c), PM_ERANGE);
    free(big);
    CHECK_EQ_INT(pm_family_series_count(f), sizeof good / sizeof *good);
    pm_registry_free(r);
}

TEST(test_help_text)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f;
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "g", "bad \xff", NULL, &f), PM_EUTF8);
    CHECK_OK(pm_family_new(r, PM_TYPE_GAUGE, "g", NULL, NULL, &f)); /* NULL help = "" */
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_metric_names), TH_CASE(test_label_names), TH_CASE(test_units),
          TH_CASE(test_label_values_utf8), TH_CASE(test_help_text))
