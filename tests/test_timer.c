/* Clocks and timers: pm_now_ns, pm_clock_source, pm_timer_start/stop,
 * PM_TIMER_SCOPE, pm_wall_seconds, and the version macros against the
 * run-time queries. Measuring a clock is the one place a test sleeps. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include <pthread.h>
#include <time.h>

/* ------------------------------------------------------------ helpers */

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Spins (no sleep: the thread stays on CPU) for `ns` of CLOCK_MONOTONIC. */
static void busy_wait_ns(uint64_t ns)
{
    uint64_t t0 = mono_ns();
    while (mono_ns() - t0 < ns) {
    }
}

static pm_registry_t *new_registry(void)
{
    pm_registry_t *r = NULL;
    return pm_registry_new(NULL, &r) == PM_OK ? r : NULL;
}

static pm_histogram_t *new_hist(pm_registry_t *r, const char *name)
{
    pm_histogram_t *h = NULL;
    return pm_histogram_new(r, name, "Durations.", &h) == PM_OK ? h : NULL;
}

typedef struct hstats {
    uint64_t count;
    double sum, min, max;
} hstats;

/* The unlabelled series of histogram family `name`, read through a snapshot. */
static hstats hist_stats(pm_registry_t *r, const char *name)
{
    hstats st = {0, NAN, NAN, NAN};
    pm_snapshot_t *s = NULL;
    if (pm_snapshot_new(r, &s) != PM_OK) return st;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), name) != 0) continue;
        const pm_snap_series_t *se = pm_snap_family_series(f, 0);
        st.count = pm_snap_series_count(se);
        st.sum = pm_snap_series_sum(se);
        st.min = pm_snap_series_min(se);
        st.max = pm_snap_series_max(se);
    }
    pm_snapshot_release(s);
    return st;
}

/* ------------------------------------------------------------ pm_now_ns */

TEST(test_now_monotonic_1e6_calls)
{
    uint64_t prev = pm_now_ns();
    CHECK(prev > 0);
    long backwards = 0;
    uint64_t first_bad_prev = 0, first_bad = 0;
    for (int i = 0; i < 1000000; i++) {
        uint64_t t = pm_now_ns();
        if (t < prev) {
            if (!backwards) first_bad_prev = prev, first_bad = t;
            backwards++;
        }
        prev = t;
    }
    if (backwards)
        TH_FAIL_("pm_now_ns went backwards %ld times (first: %llu after %llu)", backwards,
                 (unsigned long long)first_bad, (unsigned long long)first_bad_prev);
}

#define NTHREADS 4
#define PER_THREAD 250000

typedef struct now_arg {
    pthread_barrier_t *start;
    long backwards;
    uint64_t first, last;
} now_arg;

static void *now_thread(void *p)
{
    now_arg *a = p;
    pthread_barrier_wait(a->start);
    uint64_t prev = a->first = pm_now_ns();
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t t = pm_now_ns();
        if (t < prev) a->backwards++;
        prev = t;
    }
    a->last = prev;
    return NULL;
}

TEST(test_now_monotonic_per_thread)
{
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, NTHREADS);
    pthread_t th[NTHREADS];
    now_arg args[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        args[i] = (now_arg){&start, 0, 0, 0};
        REQUIRE(pthread_create(&th[i], NULL, now_thread, &args[i]) == 0);
    }
    for (int i = 0; i < NTHREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&start);
    for (int i = 0; i < NTHREADS; i++) {
        CHECK_EQ_INT(args[i].backwards, 0);
        CHECK(args[i].last >= args[i].first);
    }
}

/* One pm_now_ns read bracketed by two CLOCK_MONOTONIC reads, the tightest of
 * a few tries: the bracket's midpoint is the reference, its width the error. */
static void bracket(uint64_t *pm, double *mid, uint64_t *width)
{
    *width = UINT64_MAX;
    *pm = 0;
    *mid = 0;
    for (int i = 0; i < 16; i++) {
        uint64_t a = mono_ns(), p = pm_now_ns(), b = mono_ns();
        if (b - a < *width) *width = b - a, *pm = p, *mid = ((double)a + (double)b) / 2;
    }
}

/* Over a 50 ms window pm_now_ns advances as CLOCK_MONOTONIC does, within 1 ms. */
TEST(test_now_agrees_with_clock_monotonic)
{
    (void)pm_now_ns(); /* the first call may calibrate the TSC: keep it out of the window */
    uint64_t p0, p1, w0, w1;
    double m0, m1;
    bracket(&p0, &m0, &w0);
    struct timespec d = {0, 50 * 1000 * 1000};
    while (nanosleep(&d, &d) != 0) {
    }
    bracket(&p1, &m1, &w1);
    CHECK(w0 < 100000 && w1 < 100000); /* reads take well under 0.1 ms */
    CHECK(m1 - m0 >= 50e6);
    CHECK_NEAR((double)(p1 - p0), m1 - m0, 1e6);
}

TEST(test_clock_source)
{
    const char *src = pm_clock_source();
    REQUIRE(src != NULL);
    CHECK(strcmp(src, "tsc") == 0 || strcmp(src, "clock_monotonic") == 0);
    CHECK_STR(pm_clock_source(), src); /* stable */
    printf("  info: clock source %s\n", src);
}

/* ------------------------------------------------------------ timers */

/* These cases name the histogram h; test_timer_scope_any_expression checks
 * that any expression works as PM_TIMER_SCOPE's argument. */

static void timed_work(pm_histogram_t *h, uint64_t ns)
{
    PM_TIMER_SCOPE(h);
    busy_wait_ns(ns);
}

TEST(test_timer_scope_one_observation)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r != NULL);
    pm_histogram_t *h = new_hist(r, "scope_seconds");
    REQUIRE(h != NULL);
    {
        PM_TIMER_SCOPE(h);
        busy_wait_ns(1000000);
    }
    hstats st = hist_stats(r, "scope_seconds");
    CHECK_EQ_U64(st.count, 1);
    if (!(st.sum >= 0.9e-3 && st.sum <= 50e-3))
        TH_FAIL_("a ~1 ms scope recorded %.9f s, want [0.0009, 0.05]", st.sum);
    /* min and max are that one value. */
    CHECK_EQ_DBL(st.min, st.sum);
    CHECK_EQ_DBL(st.max, st.sum);
    pm_registry_free(r);
}

TEST(test_timer_scope_per_iteration)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r != NULL);
    pm_histogram_t *h = new_hist(r, "loop_seconds");
    REQUIRE(h != NULL);
    for (int i = 0; i < 10; i++) {
        PM_TIMER_SCOPE(h);
        if (i == 3) continue; /* leaving early still records */
        if (i == 7) break;
    }
    CHECK_EQ_U64(hist_stats(r, "loop_seconds").count, 8); /* iterations 0..7 */
    pm_registry_free(r);
}

/* On an attached thread the scope records into the thread's own table
 * (after maintenance granted it): every iteration counted, before and after. */
TEST(test_timer_scope_attached)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r != NULL);
    pm_histogram_t *h = new_hist(r, "own_loop_seconds");
    REQUIRE(h != NULL);
    CHECK_OK(pm_thread_attach(r));
    for (int i = 0; i < 20000; i++) {
        PM_TIMER_SCOPE(h);
        if (i == 1000) CHECK_OK(pm_registry_maintain(r));
    }
    hstats st = hist_stats(r, "own_loop_seconds");
    CHECK_EQ_U64(st.count, 20000);
    CHECK(st.min >= 0 && st.max >= st.min && st.sum >= 0);
    CHECK_OK(pm_thread_detach(r));
    CHECK_EQ_U64(hist_stats(r, "own_loop_seconds").count, 20000);
    pm_registry_free(r);
}

TEST(test_timer_scope_nested)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r != NULL);
    pm_histogram_t *h = new_hist(r, "outer_seconds");
    pm_histogram_t *inner = new_hist(r, "inner_seconds");
    REQUIRE(h != NULL && inner != NULL);
    {
        PM_TIMER_SCOPE(h);
        busy_wait_ns(500000);
        timed_work(inner, 1000000);
        timed_work(inner, 1000000);
    }
    hstats o = hist_stats(r, "outer_seconds"), in = hist_stats(r, "inner_seconds");
    CHECK_EQ_U64(o.count, 1);
    CHECK_EQ_U64(in.count, 2);
    CHECK(in.min >= 0.9e-3);
    /* The outer scope contains both inner ones. */
    CHECK(o.sum >= in.sum);
    CHECK(o.sum <= 100e-3);

    /* Same histogram, nested, and two scopes in one block (distinct variables). */
    h = new_hist(r, "same_seconds");
    REQUIRE(h != NULL);
    {
        PM_TIMER_SCOPE(h);
        {
            PM_TIMER_SCOPE(h);
            PM_TIMER_SCOPE(h);
            busy_wait_ns(1000000);
        }
    }
    hstats sm = hist_stats(r, "same_seconds");
    CHECK_EQ_U64(sm.count, 3);
    CHECK(sm.min >= 0.9e-3);
    CHECK(sm.max >= sm.min);
    pm_registry_free(r);
}

TEST(test_timer_start_stop)
{
    /* NULL histogram: ignored, no crash. */
    pm_timer_stop(NULL, pm_timer_start());
    pm_timer_stop(NULL, 0);
    pm_histogram_t *h = NULL;
    {
        PM_TIMER_SCOPE(h);
    }
    timed_work(NULL, 1000);
    pm_registry_t *r = new_registry();
    REQUIRE(r != NULL);
    h = new_hist(r, "manual_seconds");
    REQUIRE(h != NULL);
    uint64_t t = pm_timer_start();
    uint64_t n0 = pm_now_ns();
    busy_wait_ns(2000000);
    uint64_t n1 = pm_now_ns();
    pm_timer_stop(h, t);
    hstats st = hist_stats(r, "manual_seconds");
    CHECK_EQ_U64(st.count, 1);
    /* The timer and pm_now_ns measure the same thing. */
    CHECK_NEAR(st.sum, (double)(n1 - n0) * 1e-9, 0.5e-3);
    CHECK(st.sum >= 1.9e-3);
    /* One start can be stopped into several histograms, several times. */
    pm_histogram_t *h2 = new_hist(r, "manual2_seconds");
    REQUIRE(h2 != NULL);
    pm_timer_stop(h2, t);
    pm_timer_stop(h2, t);
    CHECK_EQ_U64(hist_stats(r, "manual2_seconds").count, 2);
    pm_registry_free(r);
}

/* PM_TIMER_SCOPE(x) must accept any expression of type pm_histogram_t *, as
 * the header's own example (PM_TIMER_SCOPE(h) "in a block") implies and as
 * the C++ form does. Compiled in a child compiler so that a header that
 * rejects it fails this case, not the whole build. Skipped (passes) when
 * PM_SOURCE_ROOT is unset or no C compiler is on PATH. */
TEST(test_timer_scope_any_expression)
{
    const char *root = getenv("PM_SOURCE_ROOT");
    if (!root || system("command -v cc >/dev/null 2>&1") != 0) {
        printf("  info: skipped (needs PM_SOURCE_ROOT and cc)\n");
        return;
    }
    static const char snippet[] = "#include <perfmetrics/perfmetrics.h>\n"
                                  "static pm_histogram_t *table[2];\n"
                                  "static pm_histogram_t *get(void) { return table[0]; }\n"
                                  "void f(pm_histogram_t *latency);\n"
                                  "void f(pm_histogram_t *latency)\n"
                                  "{\n"
                                  "    { PM_TIMER_SCOPE(latency); }\n"
                                  "    { PM_TIMER_SCOPE(table[1]); }\n"
                                  "    { PM_TIMER_SCOPE(get()); }\n"
                                  "    { PM_TIMER_SCOPE(NULL); }\n"
                                  "}\n";
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "cc -std=c11 -Wall -Wextra -Wpedantic -Werror -fsyntax-only -I'%s/include' -x c - "
             ">&2",
             root);
    FILE *p = popen(cmd, "w");
    REQUIRE(p != NULL);
    fputs(snippet, p);
    int rc = pclose(p);
    if (rc != 0)
        TH_FAIL_("PM_TIMER_SCOPE(latency), (table[1]), (get()) or (NULL) does not compile "
                 "(cc exit status %d; diagnostics above)",
                 rc);
}

/* ------------------------------------------------------------ wall clock */

TEST(test_wall_seconds)
{
    time_t t0 = time(NULL);
    double w = pm_wall_seconds();
    time_t t1 = time(NULL);
    CHECK(w >= (double)t0 - 0.001 && w < (double)t1 + 1.001);
    CHECK(w > 1.5e9); /* after 2017: a real epoch time, not a monotonic one */
    double w2 = pm_wall_seconds();
    CHECK(w2 >= w - 0.1);
    /* Snapshots are stamped with it. */
    pm_registry_t *r = new_registry();
    REQUIRE(r != NULL);
    pm_snapshot_t *s = NULL;
    double before = pm_wall_seconds();
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    double after = pm_wall_seconds();
    CHECK(pm_snapshot_time(s) >= before && pm_snapshot_time(s) <= after);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ versions */

TEST(test_version_macros_agree)
{
    CHECK_EQ_INT(pm_version(), PM_VERSION_NUMBER);
    CHECK_EQ_INT(PM_VERSION_NUMBER,
                 PM_VERSION_MAJOR * 10000 + PM_VERSION_MINOR * 100 + PM_VERSION_PATCH);
    REQUIRE(pm_version_string() != NULL);
    CHECK_STR(pm_version_string(), PM_VERSION_STRING);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", PM_VERSION_MAJOR, PM_VERSION_MINOR, PM_VERSION_PATCH);
    CHECK_STR(PM_VERSION_STRING, want);
    CHECK(PM_VERSION_MINOR < 100 && PM_VERSION_PATCH < 100); /* the number's encoding holds */
}

TEST(test_version_at_least)
{
    CHECK(PM_VERSION_AT_LEAST(PM_VERSION_MAJOR, PM_VERSION_MINOR, PM_VERSION_PATCH));
    CHECK(PM_VERSION_AT_LEAST(0, 0, 0));
    CHECK(PM_VERSION_AT_LEAST(0, 99, 99));
    CHECK(PM_VERSION_AT_LEAST(1, 0, 0));
    CHECK(!PM_VERSION_AT_LEAST(PM_VERSION_MAJOR, PM_VERSION_MINOR, PM_VERSION_PATCH + 1));
    CHECK(!PM_VERSION_AT_LEAST(PM_VERSION_MAJOR, PM_VERSION_MINOR + 1, 0));
    CHECK(!PM_VERSION_AT_LEAST(PM_VERSION_MAJOR + 1, 0, 0));
    /* Usable in the preprocessor, where feature tests run. */
#if !PM_VERSION_AT_LEAST(1, 0, 0)
    TH_FAIL_("PM_VERSION_AT_LEAST(1, 0, 0) is false in #if");
#endif
#if PM_VERSION_AT_LEAST(PM_VERSION_MAJOR + 1, 0, 0)
    TH_FAIL_("PM_VERSION_AT_LEAST(next major) is true in #if");
#endif
    /* The run-time number compares the same way. */
    CHECK(pm_version() >= 10000u);
}

TEST_MAIN(TH_CASE(test_now_monotonic_1e6_calls), TH_CASE(test_now_monotonic_per_thread),
          TH_CASE(test_now_agrees_with_clock_monotonic), TH_CASE(test_clock_source),
          TH_CASE(test_timer_scope_one_observation), TH_CASE(test_timer_scope_per_iteration),
          TH_CASE(test_timer_scope_attached),
          TH_CASE(test_timer_scope_nested), TH_CASE(test_timer_start_stop),
          TH_CASE(test_timer_scope_any_expression), TH_CASE(test_wall_seconds),
          TH_CASE(test_version_macros_agree), TH_CASE(test_version_at_least))
