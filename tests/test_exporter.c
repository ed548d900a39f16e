/* Exporters: registration, on-demand runs, host ticks with a fake clock, the
 * background thread, failure counting, release callbacks, re-entrancy. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

struct rec {
    _Atomic int calls;
    int fail;
    int released;
    pm_registry_t *r;
    pm_exporter_t *self;
    pm_status_t inner;
    char order[16];
};

static pm_status_t record_call(const pm_snapshot_t *s, void *user)
{
    struct rec *x = user;
    atomic_fetch_add(&x->calls, 1);
    return s && pm_snapshot_family_count(s) > 0 && !x->fail ? PM_OK : PM_EIO;
}

static void release_rec(void *user) { ((struct rec *)user)->released++; }

static double self_counter(pm_registry_t *r, const char *fam, const char *name)
{
    pm_snapshot_t *s;
    double v = -1;
    if (pm_snapshot_new(r, &s) != PM_OK) return v;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), fam)) continue;
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++)
            if (!strcmp(pm_snap_series_label_value(pm_snap_family_series(f, j), 0), name))
                v = pm_snap_series_value(pm_snap_family_series(f, j));
    }
    pm_snapshot_release(s);
    return v;
}

TEST(test_add_bad_inputs_release_user)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    struct rec x = {0};
    pm_exporter_t *e = (pm_exporter_t *)1;
    CHECK_STATUS(pm_exporter_add(NULL, "a", record_call, &x, release_rec, &e), PM_EINVAL);
    CHECK(e == NULL);
    CHECK_EQ_INT(x.released, 1); /* ownership passed even on failure */
    CHECK_STATUS(pm_exporter_add(r, NULL, record_call, &x, release_rec, &e), PM_EINVAL);
    CHECK_STATUS(pm_exporter_add(r, "a", NULL, &x, release_rec, &e), PM_EINVAL);
    CHECK_STATUS(pm_exporter_add(r, "", record_call, &x, release_rec, &e), PM_EUTF8);
    CHECK_STATUS(pm_exporter_add(r, "\xff", record_call, &x, release_rec, &e), PM_EUTF8);
    CHECK_EQ_INT(x.released, 5);
    CHECK_OK(pm_exporter_add(r, "a", record_call, &x, release_rec, &e));
    CHECK_STATUS(pm_exporter_add(r, "a", record_call, &x, NULL, NULL), PM_EEXIST);
    CHECK_OK(pm_exporter_add(r, "b", record_call, &x, NULL, NULL)); /* out may be NULL */
    CHECK_OK(pm_exporter_remove(e));
    CHECK_EQ_INT(x.released, 6);
    CHECK_OK(pm_exporter_remove(NULL));
    CHECK_STATUS(pm_export_now(NULL), PM_EINVAL);
    CHECK_STATUS(pm_export_set_interval(NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_export_set_interval(r, 0), PM_ERANGE);
    CHECK_STATUS(pm_export_set_interval(r, -1), PM_ERANGE);
    CHECK_STATUS(pm_export_set_interval(r, NAN), PM_ERANGE);
    CHECK_STATUS(pm_export_tick(NULL, 0, NULL), PM_EINVAL);
    CHECK_STATUS(pm_export_start(NULL), PM_EINVAL);
    CHECK_STATUS(pm_export_stop(NULL, 0), PM_EINVAL);
    CHECK_OK(pm_export_stop(r, 1)); /* not running: nothing to do */
    pm_registry_free(r);
    CHECK_EQ_INT(x.released, 6); /* "b" had no release callback */
}

TEST(test_now_runs_all_and_counts_failures)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    struct rec ok = {0}, bad = {.fail = 1};
    CHECK_OK(pm_exporter_add(r, "good", record_call, &ok, release_rec, NULL));
    CHECK_OK(pm_exporter_add(r, "bad", record_call, &bad, release_rec, NULL));
    for (int i = 0; i < 3; i++) CHECK_OK(pm_export_now(r));
    CHECK_EQ_INT(ok.calls, 3);
    CHECK_EQ_INT(bad.calls, 3);
    CHECK_EQ_DBL(self_counter(r, "perfmetrics_exporter_runs", "good"), 3);
    CHECK_EQ_DBL(self_counter(r, "perfmetrics_exporter_failures", "good"), 0);
    CHECK_EQ_DBL(self_counter(r, "perfmetrics_exporter_failures", "bad"), 3);
    pm_registry_free(r);
    CHECK_EQ_INT(ok.released, 1);
    CHECK_EQ_INT(bad.released, 1);
}

TEST(test_tick_fake_clock)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    struct rec x = {0};
    CHECK_OK(pm_exporter_add(r, "t", record_call, &x, NULL, NULL));
    CHECK_OK(pm_export_set_interval(r, 5));
    int ran = -1;
    uint64_t s = 1000000000ull;
    CHECK_OK(pm_export_tick(r, 100 * s, &ran));
    CHECK_EQ_INT(ran, 1); /* first tick runs */
    CHECK_OK(pm_export_tick(r, 104 * s, &ran));
    CHECK_EQ_INT(ran, 0);
    CHECK_OK(pm_export_tick(r, 105 * s, &ran));
    CHECK_EQ_INT(ran, 1);
    CHECK_OK(pm_export_tick(r, 105 * s + 1, NULL));
    CHECK_OK(pm_export_tick(r, 50 * s, &ran)); /* clock went back: run and resync */
    CHECK_EQ_INT(ran, 1);
    CHECK_EQ_INT(x.calls, 3);
    pm_registry_free(r);
}

static pm_status_t reentrant(const pm_snapshot_t *s, void *user)
{
    (void)s;
    struct rec *x = user;
    atomic_fetch_add(&x->calls, 1);
    pm_status_t a = pm_exporter_remove(x->self);
    pm_status_t b = pm_export_now(x->r);
    pm_status_t c = pm_export_stop(x->r, 0);
    pm_snapshot_t *snap;
    pm_status_t d = pm_snapshot_new(x->r, &snap);
    x->inner = (a == PM_ESTATE && b == PM_ESTATE && c == PM_ESTATE && d == PM_ESTATE) ? PM_OK
                                                                                     : PM_EINVAL;
    /* Recording and registration are fine from a callback. */
    pm_counter_t *cc;
    if (pm_counter_new(x->r, "from_callback", "h", &cc) == PM_OK) pm_counter_inc(cc);
    return PM_OK;
}

TEST(test_callbacks_cannot_reenter)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    struct rec x = {.r = r, .inner = PM_EIO};
    CHECK_OK(pm_exporter_add(r, "re", reentrant, &x, NULL, &x.self));
    CHECK_OK(pm_export_now(r));
    CHECK_EQ_INT(x.calls, 1);
    CHECK_OK(x.inner);
    CHECK_OK(pm_export_now(r)); /* it is still registered */
    CHECK_EQ_INT(x.calls, 2);
    pm_registry_free(r);
}

TEST(test_background_thread)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    struct rec x = {0};
    CHECK_OK(pm_exporter_add(r, "bg", record_call, &x, NULL, NULL));
    CHECK_OK(pm_export_set_interval(r, 0.01));
    CHECK_OK(pm_export_start(r));
    CHECK_STATUS(pm_export_start(r), PM_ESTATE);
    /* Waiting for a background thread to do its work is what is tested here. */
    for (int i = 0; i < 500 && atomic_load(&x.calls) < 3; i++) usleep(10000);
    CHECK(atomic_load(&x.calls) >= 3);
    int before = atomic_load(&x.calls);
    CHECK_OK(pm_export_stop(r, 1));
    CHECK_EQ_INT(atomic_load(&x.calls), before + 1); /* the final export */
    usleep(30000);
    CHECK_EQ_INT(atomic_load(&x.calls), before + 1); /* stopped */
    CHECK_OK(pm_export_start(r)); /* restartable */
    pm_registry_free(r);          /* stops it */
}

static pm_status_t slow(const pm_snapshot_t *s, void *user)
{
    (void)s;
    atomic_store((_Atomic int *)user, 1);
    usleep(50000);
    atomic_store((_Atomic int *)user, 2);
    return PM_OK;
}

static void *run_export(void *r)
{
    pm_export_now(r);
    return NULL;
}

TEST(test_remove_waits_for_running_export)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    _Atomic int state = 0;
    pm_exporter_t *e;
    CHECK_OK(pm_exporter_add(r, "slow", slow, (void *)&state, NULL, &e));
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, run_export, r) == 0);
    while (atomic_load(&state) == 0) sched_yield();
    /* Recording is never blocked by a slow exporter. */
    pm_counter_t *c;
    CHECK_OK(pm_counter_new(r, "still_recording", "h", &c));
    pm_counter_inc(c);
    CHECK_OK(pm_exporter_remove(e));
    CHECK_EQ_INT(atomic_load(&state), 2);
    pthread_join(t, NULL);
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_add_bad_inputs_release_user), TH_CASE(test_now_runs_all_and_counts_failures),
          TH_CASE(test_tick_fake_clock), TH_CASE(test_callbacks_cannot_reenter),
          TH_CASE(test_background_thread), TH_CASE(test_remove_waits_for_running_export))
