/* Writer-owned shards: attached threads record with plain stores; totals stay
 * exact through detach, thread exit, growth, slot reuse and registry free;
 * histograms too, with concurrent snapshots, maintenance (tables grown and
 * swapped under their owners), series removal and TTL expiry. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

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

/* ------------------------------------------------------------ histograms */

static long scaled(long full)
{
    const char *e = getenv("PM_STRESS_SCALE"); /* sanitizer builds run fewer */
    long n = (long)((double)full * (e ? atof(e) : 1.0));
    return n < 2000 ? 2000 : n;
}

/* Value i of thread t: a dyadic fraction (1 .. 4096) x 2^-24 s, so every sum
 * below is exact in doubles, spread over ~700 fine buckets. */
static double hval(int t, long i) { return (double)(1 + (i * 7 + t * 131) % 4096) / 16777216.0; }

struct hjob {
    pm_registry_t *r;
    pm_histogram_t *h, *busy, *doomed;
    long n;
    int t, attach, detach;
};

static void *hwork(void *arg)
{
    struct hjob *j = arg;
    if (j->attach && pm_thread_attach(j->r) != PM_OK) return (void *)1;
    for (long i = 0; i < j->n; i++) {
        pm_histogram_observe(j->h, hval(j->t, i));
        if (j->busy) pm_histogram_observe(j->busy, 0.5);
        if (j->doomed) pm_histogram_observe(j->doomed, 0.25);
    }
    if (j->detach && pm_thread_detach(j->r) != PM_OK) return (void *)1;
    return NULL;
}

static const pm_snap_series_t *series_of(const pm_snapshot_t *s, const char *fam, const char *v0)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), fam)) continue;
        for (size_t k = 0; k < pm_snap_family_series_count(f); k++) {
            const pm_snap_series_t *se = pm_snap_family_series(f, k);
            if (!v0 || !strcmp(pm_snap_series_label_value(se, 0), v0)) return se;
        }
    }
    return NULL;
}

/* Three attached threads (one detaches, two fold at exit) and one striped
 * thread record into one histogram while the main thread snapshots and
 * maintains (tables are granted, grown and swapped under their owners):
 * every snapshot is consistent and never goes backwards, the end is exact
 * bucket by bucket. */
TEST(test_attached_histograms_exact_under_snapshots)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_histogram_t *h;
    CHECK_OK(pm_histogram_new(r, "lat_seconds", "L.", &h));
    enum { T = 4 };
    long n = scaled(1000000);
    struct hjob j[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        j[t] = (struct hjob){.r = r, .h = h, .n = n, .t = t, .attach = t != 3, .detach = t == 0};
        REQUIRE(pthread_create(&th[t], NULL, hwork, &j[t]) == 0);
    }
    uint64_t last = 0;
    double last_sum = 0;
    for (int k = 0; k < 200; k++) {
        pm_snapshot_t *s;
        REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
        const pm_snap_series_t *se = series_of(s, "lat_seconds", NULL);
        REQUIRE(se);
        uint64_t c = pm_snap_series_count(se);
        CHECK(c >= last);
        CHECK(pm_snap_series_sum(se) >= last_sum);
        for (size_t b = 0; b < 11; b++)
            CHECK(pm_snap_series_bucket_cumulative(se, b) <=
                  pm_snap_series_bucket_cumulative(se, b + 1));
        CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, 11), c);
        last = c;
        last_sum = pm_snap_series_sum(se);
        pm_snapshot_release(s);
        if (k % 3 == 0) CHECK_OK(pm_registry_maintain(r));
    }
    pm_hdata_t *ref;
    REQUIRE(pm_hdata_new(1e-9, 1e4, &ref) == PM_OK);
    double sum = 0;
    for (int t = 0; t < T; t++) {
        void *rv;
        pthread_join(th[t], &rv);
        CHECK(rv == NULL);
        for (long i = 0; i < n; i++) {
            CHECK_OK(pm_hdata_record(ref, hval(t, i)));
            sum += hval(t, i);
        }
    }
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *se = series_of(s, "lat_seconds", NULL);
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), (uint64_t)T * n);
    CHECK_EQ_DBL(pm_snap_series_sum(se), sum); /* dyadic values: exact in any order */
    const pm_hdata_t *live = pm_snap_series_hdata(se);
    for (unsigned q = 0; q <= 100; q++) {
        double a, b;
        CHECK_OK(pm_hdata_quantile(live, q / 100.0, &a));
        CHECK_OK(pm_hdata_quantile(ref, q / 100.0, &b));
        CHECK_EQ_DBL(a, b);
    }
    /* Cumulative at le=0.005 etc.: every value is < 0.25 ms. */
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, 0), (uint64_t)T * n);
    pm_snapshot_release(s);
    pm_hdata_free(ref);
    pm_registry_free(r);
}

static uint64_t fake_ns;
static uint64_t fake_clock(void *user)
{
    (void)user;
    return __atomic_load_n(&fake_ns, __ATOMIC_RELAXED);
}

/* Attached threads record into a busy series and into one the main thread
 * removes while they hold its handle; an idle series of a TTL family expires
 * meanwhile. The busy totals are exact, the removed series disappears, the
 * expired one comes back empty. */
TEST(test_attached_histograms_removal_and_ttl)
{
    pm_registry_opts_t *ro;
    REQUIRE(pm_registry_opts_new(&ro) == PM_OK);
    CHECK_OK(pm_registry_opts_set_clock(ro, fake_clock, NULL));
    pm_registry_t *r;
    REQUIRE(pm_registry_new(ro, &r) == PM_OK);
    pm_registry_opts_free(ro);
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *ln[1] = {"id"};
    CHECK_OK(pm_family_opts_set_labels(o, ln, 1));
    pm_family_t *f;
    CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "req_seconds", "R.", o, &f));
    CHECK_OK(pm_family_opts_set_ttl(o, 1.0));
    pm_family_t *ft;
    CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "ttl_seconds", "T.", o, &ft));
    pm_family_opts_free(o);
    const char *busy[1] = {"busy"}, *doomed[1] = {"doomed"}, *idle[1] = {"idle"},
               *kept[1] = {"kept"};
    pm_histogram_t *hb, *hd, *hk;
    CHECK_OK(pm_histogram_get(f, busy, 1, &hb));
    CHECK_OK(pm_histogram_get(f, doomed, 1, &hd));
    CHECK_OK(pm_histogram_get(ft, kept, 1, &hk));
    CHECK_OK(pm_histogram_observe_labeled(ft, idle, 1, 0.125));
    enum { T = 3 };
    long n = scaled(100000);
    struct hjob j[T];
    pthread_t th[T];
    for (int t = 0; t < T; t++) {
        j[t] = (struct hjob){.r = r, .h = hk, .busy = hb, .doomed = hd, .n = n, .t = t,
                             .attach = 1, .detach = t == 0};
        REQUIRE(pthread_create(&th[t], NULL, hwork, &j[t]) == 0);
    }
    long kept_main = 0;
    int removed = 0, expired = 0;
    for (int k = 0; k < 60; k++) {
        if (k == 10) CHECK_OK(pm_family_remove(f, doomed, 1));
        removed |= k >= 10;
        pm_histogram_observe(hk, 1e-3); /* kept always changes: never expires */
        kept_main++;
        __atomic_fetch_add(&fake_ns, 600000000ull, __ATOMIC_RELAXED); /* 0.6 s per pass */
        pm_snapshot_t *s;
        REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
        if (removed) CHECK(series_of(s, "req_seconds", "doomed") == NULL);
        if (!series_of(s, "ttl_seconds", "idle")) expired = 1;
        CHECK(series_of(s, "ttl_seconds", "kept") != NULL);
        pm_snapshot_release(s);
    }
    CHECK(expired);
    for (int t = 0; t < T; t++) {
        void *rv;
        pthread_join(th[t], &rv);
        CHECK(rv == NULL);
    }
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *se = series_of(s, "req_seconds", "busy");
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), (uint64_t)T * n);
    CHECK_EQ_DBL(pm_snap_series_sum(se), 0.5 * T * n);
    CHECK(series_of(s, "req_seconds", "doomed") == NULL);
    const pm_snap_series_t *sk = series_of(s, "ttl_seconds", "kept");
    REQUIRE(sk);
    CHECK_EQ_U64(pm_snap_series_count(sk), (uint64_t)T * n + (uint64_t)kept_main);
    pm_snapshot_release(s);
    /* The expired series comes back from zero. */
    CHECK_OK(pm_histogram_observe_labeled(ft, idle, 1, 0.125));
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *si = series_of(s, "ttl_seconds", "idle");
    REQUIRE(si);
    CHECK_EQ_U64(pm_snap_series_count(si), 1);
    pm_snapshot_release(s);
    pm_histogram_release(hb);
    pm_histogram_release(hd);
    pm_histogram_release(hk);
    pm_registry_free(r);
}

static void *attach_hist_and_linger(void *arg)
{
    struct hjob *j = arg;
    if (pm_thread_attach(j->r) != PM_OK) return (void *)1;
    for (long i = 0; i < 3000; i++) pm_histogram_observe(j->h, hval(0, i));
    pthread_barrier_wait(&gate); /* recorded */
    pthread_barrier_wait(&gate); /* maintained: it has its own table */
    for (long i = 0; i < 3000; i++) pm_histogram_observe(j->h, hval(1, i));
    pthread_barrier_wait(&gate); /* recorded again */
    pthread_barrier_wait(&gate); /* registry freed: exit with an orphaned shard */
    return NULL;
}

/* A thread holding its own histogram tables outlives the registry (ASan
 * checks the tables go with the registry and the shard with the thread). */
TEST(test_registry_freed_before_histogram_owner_exits)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    struct hjob j = {.r = r};
    CHECK_OK(pm_histogram_new(r, "own_seconds", "h", &j.h));
    pthread_t t;
    pthread_barrier_init(&gate, NULL, 2);
    REQUIRE(pthread_create(&t, NULL, attach_hist_and_linger, &j) == 0);
    pthread_barrier_wait(&gate);
    CHECK_OK(pm_registry_maintain(r));
    pthread_barrier_wait(&gate);
    pthread_barrier_wait(&gate);
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_EQ_U64(pm_snap_series_count(series_of(s, "own_seconds", NULL)), 6000);
    pm_snapshot_release(s);
    pm_registry_free(r);
    pthread_barrier_wait(&gate);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&gate);
}

TEST_MAIN(TH_CASE(test_attach_bad_inputs), TH_CASE(test_mixed_threads_exact),
          TH_CASE(test_growth_and_reuse_after_attach),
          TH_CASE(test_registry_freed_before_thread_exit),
          TH_CASE(test_attached_histograms_exact_under_snapshots),
          TH_CASE(test_attached_histograms_removal_and_ttl),
          TH_CASE(test_registry_freed_before_histogram_owner_exits))
