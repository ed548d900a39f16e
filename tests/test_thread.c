/* Writer-owned shards: attached threads record with plain stores; totals stay
 * exact through detach, thread exit, growth, slot reuse and registry free. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>
#include <pthread.h>

struct job {
    pm_registry_t *r;
    pm_counter_t *c;
    pm_family_t *f;
    long n;
    int attach, detach;
};

static void *work(void *arg)
{
    struct job *j = arg;
    if (j->attach && pm_thread_attach(j->r) != PM_OK) return (void *)1;
    for (long i = 0; i < j->n; i++) {
        pm_counter_inc(j->c);
        pm_counter_add(j->c, 0.5);
        pm_counter_add_u64(j->c, 2);
        if ((i & 255) == 0) {
            char id[16];
            snprintf(id, sizeof id, "s%ld", (i >> 8) % 40);
            const char *v[1] = {id};
            pm_counter_add_labeled(j->f, v, 1, 1);
        }
    }
    if (j->detach && pm_thread_detach(j->r) != PM_OK) return (void *)1;
    return NULL; /* attached without detach: folded at thread exit */
}

static double family_total(pm_registry_t *r, const char *name)
{
    pm_snapshot_t *s;
    double t = 0;
    if (pm_snapshot_new(r, &s) != PM_OK) return -1;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), name)) continue;
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++)
            t += pm_snap_series_value(pm_snap_family_series(f, j));
    }
    pm_snapshot_release(s);
    return t;
}

TEST(test_attach_bad_inputs)
{
    CHECK_STATUS(pm_thread_attach(NULL), PM_EINVAL);
    CHECK_STATUS(pm_thread_detach(NULL), PM_EINVAL);
    pm_registry_t *a, *b;
    REQUIRE(pm_registry_new(NULL, &a) == PM_OK);
    REQUIRE(pm_registry_new(NULL, &b) == PM_OK);
    CHECK_OK(pm_thread_detach(a)); /* not attached: nothing to do */
    CHECK_OK(pm_thread_attach(a));
    CHECK_OK(pm_thread_attach(a)); /* idempotent */
    CHECK_STATUS(pm_thread_attach(b), PM_ESTATE);
    CHECK_OK(pm_thread_detach(b)); /* attached elsewhere: no-op */
    CHECK_OK(pm_thread_detach(a));
    CHECK_OK(pm_thread_attach(b));
    CHECK_OK(pm_thread_detach(b));
    pm_registry_free(a);
    pm_registry_free(b);
}

TEST(test_mixed_threads_exact)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    struct job base = {.r = r, .n = 200000};
    CHECK_OK(pm_counter_new(r, "ops", "Ops.", &base.c));
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *ln[1] = {"id"};
    CHECK_OK(pm_family_opts_set_labels(o, ln, 1));
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "lab", "L.", o, &base.f));
    pm_family_opts_free(o);
    enum { T = 6 };
    struct job j[T];
    pthread_t th[T];
    for (int i = 0; i < T; i++) {
        j[i] = base;
        j[i].attach = i % 3 != 0;  /* 4 attached, 2 striped */
        j[i].detach = i % 3 == 1; /* 2 detach, 2 fold at exit */
        REQUIRE(pthread_create(&th[i], NULL, work, &j[i]) == 0);
    }
    /* Snapshots while shards come and go. */
    for (int k = 0; k < 50; k++) CHECK(family_total(r, "ops") >= 0);
    for (int i = 0; i < T; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        CHECK(rv == NULL);
    }
    CHECK_EQ_DBL(pm_counter_value(base.c), 3.5 * T * base.n);
    CHECK_EQ_DBL(family_total(r, "ops"), 3.5 * T * base.n);
    long per = (base.n + 255) / 256;
    CHECK_EQ_DBL(family_total(r, "lab"), (double)T * per);
    pm_registry_free(r);
}

TEST(test_growth_and_reuse_after_attach)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    CHECK_OK(pm_thread_attach(r));
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *ln[1] = {"id"};
    CHECK_OK(pm_family_opts_set_labels(o, ln, 1));
    pm_family_t *f;
    REQUIRE(pm_family_new(r, PM_TYPE_COUNTER, "grow", "G.", o, &f) == PM_OK);
    pm_family_opts_free(o);
    char id[16];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 1000; i++) { /* 4 chunks: directories grow too */
            snprintf(id, sizeof id, "%d", i);
            const char *v[1] = {id};
            CHECK_OK(pm_counter_add_labeled(f, v, 1, (double)(i + round)));
        }
        CHECK_EQ_DBL(family_total(r, "grow"), 1000.0 * 999 / 2 + 1000.0 * round);
        CHECK_OK(pm_family_clear(f)); /* slots freed; reuse must start from zero */
        CHECK_OK(pm_registry_maintain(r));
        CHECK_EQ_DBL(family_total(r, "grow"), 0);
    }
    CHECK_OK(pm_thread_detach(r));
    pm_registry_free(r);
}

static pthread_barrier_t gate;

static void *attach_and_linger(void *arg)
{
    struct job *j = arg;
    if (pm_thread_attach(j->r) != PM_OK) return (void *)1;
    pm_counter_inc(j->c);
    pthread_barrier_wait(&gate); /* recorded */
    pthread_barrier_wait(&gate); /* registry freed: exit with an orphaned shard */
    return NULL;
}

TEST(test_registry_freed_before_thread_exit)
{
    /* The main thread's shard is freed with the registry; another attached
     * thread's is orphaned and freed at its exit (ASan checks both). */
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    CHECK_OK(pm_thread_attach(r));
    struct job j = {.r = r};
    CHECK_OK(pm_counter_new(r, "x", "h", &j.c));
    pm_counter_inc(j.c);
    pthread_t t;
    pthread_barrier_init(&gate, NULL, 2);
    REQUIRE(pthread_create(&t, NULL, attach_and_linger, &j) == 0);
    pthread_barrier_wait(&gate);
    CHECK_EQ_DBL(pm_counter_value(j.c), 2); /* the live shard is summed */
    pm_registry_free(r);
    pthread_barrier_wait(&gate);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&gate);
    /* The calling thread can attach to a new registry afterwards. */
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    CHECK_OK(pm_thread_attach(r));
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_attach_bad_inputs), TH_CASE(test_mixed_threads_exact),
          TH_CASE(test_growth_and_reuse_after_attach),
          TH_CASE(test_registry_freed_before_thread_exit))
