/* Registries: options, life cycle, default registry, allocator, maintenance. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

TEST(test_opts_bad_inputs)
{
    CHECK_STATUS(pm_registry_opts_new(NULL), PM_EINVAL);
    pm_registry_opts_t *o;
    REQUIRE(pm_registry_opts_new(&o) == PM_OK);
    CHECK_STATUS(pm_registry_opts_set_stripes(NULL, 2), PM_EINVAL);
    CHECK_STATUS(pm_registry_opts_set_stripes(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_registry_opts_set_stripes(o, 65), PM_ERANGE);
    CHECK_OK(pm_registry_opts_set_stripes(o, 3)); /* rounded up to 4 */
    CHECK_STATUS(pm_registry_opts_set_self_metrics(NULL, 0), PM_EINVAL);
    CHECK_STATUS(pm_registry_opts_set_allocator(NULL, NULL, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_registry_opts_set_allocator(o, (pm_alloc_fn)1, NULL, NULL), PM_EINVAL);
    CHECK_OK(pm_registry_opts_set_allocator(o, NULL, NULL, NULL));
    pm_registry_opts_free(o);
    pm_registry_opts_free(NULL);
}

TEST(test_new_free)
{
    CHECK_STATUS(pm_registry_new(NULL, NULL), PM_EINVAL);
    pm_registry_t *r = (pm_registry_t *)1;
    CHECK_OK(pm_registry_new(NULL, &r));
    CHECK(r != NULL);
    pm_registry_free(r);
    pm_registry_free(NULL);
    CHECK_STATUS(pm_registry_maintain(NULL), PM_EINVAL);
}

static size_t live_blocks;
static void *count_alloc(void *u, size_t n)
{
    (void)u;
    live_blocks++;
    return malloc(n);
}
static void count_free(void *u, void *p)
{
    (void)u;
    live_blocks--;
    free(p);
}

TEST(test_custom_allocator_used_and_balanced)
{
    pm_registry_opts_t *o;
    REQUIRE(pm_registry_opts_new(&o) == PM_OK);
    CHECK_OK(pm_registry_opts_set_allocator(o, count_alloc, count_free, NULL));
    CHECK_OK(pm_registry_opts_set_stripes(o, 2));
    pm_registry_t *r;
    REQUIRE(pm_registry_new(o, &r) == PM_OK);
    pm_registry_opts_free(o); /* opts only read during the call */
    CHECK(live_blocks > 0);
    pm_counter_t *c;
    CHECK_OK(pm_counter_new(r, "c", "h", &c));
    pm_counter_inc(c);
    pm_snapshot_t *s;
    CHECK_OK(pm_snapshot_new(r, &s));
    pm_registry_free(r); /* the snapshot outlives the registry */
    CHECK(live_blocks > 0);
    CHECK(pm_snapshot_family_count(s) > 0);
    pm_snapshot_release(s);
    CHECK_EQ_INT(live_blocks, 0);
}

TEST(test_default_registry)
{
    pm_registry_t *a = pm_registry_default(), *b = pm_registry_default();
    CHECK(a != NULL);
    CHECK(a == b);
    pm_counter_t *c;
    CHECK_OK(pm_counter_new(a, "default_hits", "h", &c));
    pm_counter_inc(c);
    CHECK_EQ_DBL(pm_counter_value(c), 1);
}

TEST(test_registries_are_independent)
{
    pm_registry_t *a, *b;
    REQUIRE(pm_registry_new(NULL, &a) == PM_OK);
    REQUIRE(pm_registry_new(NULL, &b) == PM_OK);
    pm_counter_t *ca, *cb;
    CHECK_OK(pm_counter_new(a, "same", "h", &ca));
    CHECK_OK(pm_counter_new(b, "same", "other help", &cb));
    pm_counter_inc(ca);
    CHECK_EQ_DBL(pm_counter_value(ca), 1);
    CHECK_EQ_DBL(pm_counter_value(cb), 0);
    pm_registry_free(a);
    pm_registry_free(b);
}

TEST(test_self_metrics_off)
{
    pm_registry_opts_t *o;
    REQUIRE(pm_registry_opts_new(&o) == PM_OK);
    CHECK_OK(pm_registry_opts_set_self_metrics(o, 0));
    pm_registry_t *r;
    REQUIRE(pm_registry_new(o, &r) == PM_OK);
    pm_registry_opts_free(o);
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_EQ_INT(pm_snapshot_family_count(s), 0);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_maintain_ok) 
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    CHECK_OK(pm_registry_maintain(r));
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_opts_bad_inputs), TH_CASE(test_new_free),
          TH_CASE(test_custom_allocator_used_and_balanced), TH_CASE(test_default_registry),
          TH_CASE(test_registries_are_independent), TH_CASE(test_self_metrics_off),
          TH_CASE(test_maintain_ok))
