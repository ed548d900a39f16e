/* Collectors: the mechanism (pm_collector_add/remove, pm_emit_*) through the
 * public API, and the built-in process and system collectors checked against
 * what libc reports (getrusage, getrlimit, sysconf). */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>

/* ------------------------------------------------------------ helpers */

/* The library's failure counter, as a snapshot family (counters are named
 * without "_total"; the formatter adds it). */
#define FAILURES_FAMILY "perfmetrics_collector_failures"

static const pm_snap_family_t *find_family(const pm_snapshot_t *s, const char *name)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), name) == 0) return f;
    }
    return NULL;
}

/* The series whose first label value is `v0` (or the only series when v0 is NULL). */
static const pm_snap_series_t *find_series(const pm_snap_family_t *f, const char *v0)
{
    for (size_t i = 0; i < pm_snap_family_series_count(f); i++) {
        const pm_snap_series_t *se = pm_snap_family_series(f, i);
        if (!v0 || strcmp(pm_snap_series_label_value(se, 0), v0) == 0) return se;
    }
    return NULL;
}

/* Value of an unlabelled family's series; NaN if absent. */
static double value_of(const pm_snapshot_t *s, const char *family)
{
    return pm_snap_series_value(find_series(find_family(s, family), NULL));
}

/* perfmetrics_collector_failures_total{collector=name}; 0 if never failed. */
static double failures_of(const pm_snapshot_t *s, const char *collector)
{
    const pm_snap_series_t *se = find_series(find_family(s, FAILURES_FAMILY), collector);
    return se ? pm_snap_series_value(se) : 0.0;
}

static pm_registry_t *new_registry(void)
{
    pm_registry_t *r = NULL;
    if (pm_registry_new(NULL, &r) != PM_OK) return NULL;
    return r;
}

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double rusage_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static volatile double burn_sink;

/* Spends about `seconds` of CPU time in this thread. */
static void burn_cpu(double seconds)
{
    double start = rusage_cpu_seconds();
    double x = 1.0;
    while (rusage_cpu_seconds() - start < seconds) {
        for (int i = 0; i < 100000; i++) x = x * 1.0000001 + 1e-9;
        burn_sink = x;
    }
}

/* ------------------------------------------------------------ the mechanism */

struct queue_stats {
    int calls;
    double high, low, depth;
    int released;
};

static pm_status_t queue_collect(pm_emit_t *e, void *user)
{
    struct queue_stats *q = user;
    static const char *const labels[] = {"queue"};
    pm_status_t st;
    q->calls++;
    if ((st = pm_emit_family(e, PM_TYPE_COUNTER, "jobs_processed", "Jobs taken off the queue.",
                             "", labels, 1)) != PM_OK)
        return st;
    const char *high[] = {"high"}, *low[] = {"low"};
    if ((st = pm_emit_sample(e, high, 1, q->high)) != PM_OK) return st;
    if ((st = pm_emit_sample(e, low, 1, q->low)) != PM_OK) return st;
    if ((st = pm_emit_family(e, PM_TYPE_GAUGE, "queue_depth_bytes", "Bytes waiting.", "bytes",
                             NULL, 0)) != PM_OK)
        return st;
    return pm_emit_sample(e, NULL, 0, q->depth);
}

static void queue_release(void *user)
{
    struct queue_stats *q = user;
    q->released++;
}

TEST(test_custom_collector_emits)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    struct queue_stats q = {0, 3, 7.5, 42, 0};
    pm_collector_t *c = NULL;
    CHECK_OK(pm_collector_add(r, "queue", queue_collect, &q, queue_release, &c));
    CHECK(c != NULL);
    CHECK_EQ_INT(q.calls, 0);

    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    REQUIRE(s);
    CHECK_EQ_INT(q.calls, 1);

    const pm_snap_family_t *f = find_family(s, "jobs_processed");
    REQUIRE(f);
    CHECK_EQ_INT(pm_snap_family_type(f), PM_TYPE_COUNTER);
    CHECK_STR(pm_snap_family_help(f), "Jobs taken off the queue.");
    CHECK_STR(pm_snap_family_unit(f), "");
    CHECK_EQ_INT(pm_snap_family_label_count(f), 1);
    CHECK_STR(pm_snap_family_label_name(f, 0), "queue");
    CHECK_EQ_INT(pm_snap_family_series_count(f), 2);
    CHECK_EQ_DBL(pm_snap_series_value(find_series(f, "high")), 3.0);
    CHECK_EQ_DBL(pm_snap_series_value(find_series(f, "low")), 7.5);

    f = find_family(s, "queue_depth_bytes");
    REQUIRE(f);
    CHECK_EQ_INT(pm_snap_family_type(f), PM_TYPE_GAUGE);
    CHECK_STR(pm_snap_family_unit(f), "bytes");
    CHECK_EQ_INT(pm_snap_family_label_count(f), 0);
    CHECK_EQ_DBL(value_of(s, "queue_depth_bytes"), 42.0);
    CHECK_EQ_DBL(failures_of(s, "queue"), 0.0);

    /* The text output names the counter with _total. */
    pm_buf_t *b = NULL;
    CHECK_OK(pm_buf_new(&b));
    CHECK_OK(pm_format(s, PM_FORMAT_PROMETHEUS, b));
    CHECK_CONTAINS(pm_buf_data(b), "# TYPE jobs_processed_total counter");
    CHECK_CONTAINS(pm_buf_data(b), "jobs_processed_total{queue=\"high\"} 3");
    CHECK_CONTAINS(pm_buf_data(b), "queue_depth_bytes 42");
    pm_buf_free(b);
    pm_snapshot_release(s);

    /* Every snapshot calls the collector again and sees current values. */
    q.high = 10;
    q.depth = -1.5;
    CHECK_OK(pm_snapshot_new(r, &s));
    REQUIRE(s);
    CHECK_EQ_INT(q.calls, 2);
    CHECK_EQ_DBL(pm_snap_series_value(find_series(find_family(s, "jobs_processed"), "high")),
                 10.0);
    CHECK_EQ_DBL(value_of(s, "queue_depth_bytes"), -1.5);
    pm_snapshot_release(s);

    CHECK_EQ_INT(q.released, 0);
    pm_registry_free(r);
    CHECK_EQ_INT(q.released, 1); /* registry free releases the user data */
}

static pm_status_t failing_collect(pm_emit_t *e, void *user)
{
    int *calls = user;
    (*calls)++;
    pm_status_t st = pm_emit_family(e, PM_TYPE_GAUGE, "half_done", "Never shown.", "", NULL, 0);
    if (st != PM_OK) return st;
    if ((st = pm_emit_sample(e, NULL, 0, 1.0)) != PM_OK) return st;
    return PM_EIO;
}

static pm_status_t good_collect(pm_emit_t *e, void *user)
{
    (void)user;
    pm_status_t st = pm_emit_family(e, PM_TYPE_GAUGE, "good_value", "Shown.", "", NULL, 0);
    if (st != PM_OK) return st;
    return pm_emit_sample(e, NULL, 0, 5.0);
}

TEST(test_failing_collector_discarded_and_counted)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    int calls = 0;
    CHECK_OK(pm_collector_add(r, "flaky", failing_collect, &calls, NULL, NULL));
    CHECK_OK(pm_collector_add(r, "steady", good_collect, NULL, NULL, NULL));

    for (int round = 1; round <= 2; round++) {
        pm_snapshot_t *s = NULL;
        CHECK_OK(pm_snapshot_new(r, &s)); /* a failing collector is not a snapshot error */
        REQUIRE(s);
        CHECK_EQ_INT(calls, round);
        CHECK(find_family(s, "half_done") == NULL);
        CHECK_EQ_DBL(value_of(s, "good_value"), 5.0);
        const pm_snap_family_t *f = find_family(s, FAILURES_FAMILY);
        REQUIRE(f);
        CHECK_EQ_INT(pm_snap_family_type(f), PM_TYPE_COUNTER);
        CHECK_EQ_INT(pm_snap_family_label_count(f), 1);
        CHECK_STR(pm_snap_family_label_name(f, 0), "collector");
        CHECK_EQ_DBL(failures_of(s, "flaky"), (double)round);
        CHECK_EQ_DBL(failures_of(s, "steady"), 0.0);

        pm_buf_t *b = NULL;
        CHECK_OK(pm_buf_new(&b));
        CHECK_OK(pm_format(s, PM_FORMAT_PROMETHEUS, b));
        CHECK_CONTAINS(pm_buf_data(b), "perfmetrics_collector_failures_total{collector=\"flaky\"}");
        pm_buf_free(b);
        pm_snapshot_release(s);
    }
    pm_registry_free(r);
}

/* Runs every pm_emit_* misuse from inside a real callback, then emits valid
 * families: a collector that saw errors but returns PM_OK keeps its output. */
struct emit_probe {
    int ran;
};

static pm_status_t bad_inputs_collect(pm_emit_t *e, void *user)
{
    struct emit_probe *p = user;
    static const char *const ab[] = {"a", "b"};
    p->ran++;

    /* No family started yet. */
    CHECK_STATUS(pm_emit_sample(e, NULL, 0, 1.0), PM_ESTATE);
    /* NULLs. */
    CHECK_STATUS(pm_emit_family(NULL, PM_TYPE_GAUGE, "x", "h", "", NULL, 0), PM_EINVAL);
    CHECK_STATUS(pm_emit_sample(NULL, NULL, 0, 1.0), PM_EINVAL);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, NULL, "h", "", NULL, 0), PM_EINVAL);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "x", "h", "", NULL, 2), PM_EINVAL);
    /* Names and labels. */
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "", "h", "", NULL, 0), PM_EBADNAME);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "1abc", "h", "", NULL, 0), PM_EBADNAME);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "with space", "h", "", NULL, 0), PM_EBADNAME);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_COUNTER, "requests_total", "h", "", NULL, 0),
                 PM_EBADNAME);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "perfmetrics_mine", "h", "", NULL, 0),
                 PM_EBADNAME);
    const char *reserved[] = {"__x"}, *le[] = {"le"}, *dup[] = {"a", "a"}, *bad[] = {"0a"};
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "x", "h", "", reserved, 1), PM_EBADLABEL);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "x", "h", "", le, 1), PM_EBADLABEL);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "x", "h", "", dup, 2), PM_EBADLABEL);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "x", "h", "", bad, 1), PM_EBADLABEL);
    /* Types. */
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_HISTOGRAM, "x", "h", "", NULL, 0), PM_ETYPE);
    /* A clash with a registered family, then with an emitted one. */
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "registered_gauge", "h", "", NULL, 0),
                 PM_EEXIST);

    /* A valid counter family: sample misuse, then a good sample. */
    CHECK_OK(pm_emit_family(e, PM_TYPE_COUNTER, "probe_events", "Probe.", "", ab, 2));
    const char *one[] = {"x"}, *two[] = {"x", "y"}, *three[] = {"x", "y", "z"};
    const char *bad_utf8[] = {"x", "\xff\xfe"};
    CHECK_STATUS(pm_emit_sample(e, one, 1, 1.0), PM_ELABELCOUNT);
    CHECK_STATUS(pm_emit_sample(e, three, 3, 1.0), PM_ELABELCOUNT);
    CHECK_STATUS(pm_emit_sample(e, NULL, 0, 1.0), PM_ELABELCOUNT);
    CHECK_STATUS(pm_emit_sample(e, NULL, 2, 1.0), PM_EINVAL);
    CHECK_STATUS(pm_emit_sample(e, bad_utf8, 2, 1.0), PM_EUTF8);
    CHECK_STATUS(pm_emit_sample(e, two, 2, -1.0), PM_ERANGE);
    CHECK_STATUS(pm_emit_sample(e, two, 2, NAN), PM_ERANGE);
    CHECK_OK(pm_emit_sample(e, two, 2, 4.0));

    /* Gauges take any double. */
    CHECK_OK(pm_emit_family(e, PM_TYPE_GAUGE, "probe_level", "Probe.", "", NULL, 0));
    CHECK_OK(pm_emit_sample(e, NULL, 0, -2.5));

    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "probe_level", "Again.", "", NULL, 0),
                 PM_EEXIST);
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_COUNTER, "probe_events", "Again.", "", NULL, 0),
                 PM_EEXIST);
    /* A failed pm_emit_family leaves no family started: a sample cannot land
     * in the previous family by mistake. */
    CHECK_STATUS(pm_emit_sample(e, NULL, 0, 1.0), PM_ESTATE);
    /* A unit must be the name's last component. */
    CHECK_STATUS(pm_emit_family(e, PM_TYPE_GAUGE, "probe_size_seconds", "h", "bytes", NULL, 0),
                 PM_EBADNAME);
    CHECK_OK(pm_emit_family(e, PM_TYPE_GAUGE, "probe_size_bytes", "h", "bytes", NULL, 0));
    CHECK_OK(pm_emit_sample(e, NULL, 0, 512));
    return PM_OK;
}

TEST(test_emit_bad_inputs)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(r, "registered_gauge", "A normal gauge.", &g));
    pm_gauge_set(g, 9);
    struct emit_probe p = {0};
    CHECK_OK(pm_collector_add(r, "probe", bad_inputs_collect, &p, NULL, NULL));

    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    REQUIRE(s);
    CHECK_EQ_INT(p.ran, 1);
    CHECK_EQ_DBL(failures_of(s, "probe"), 0.0);
    CHECK_EQ_DBL(value_of(s, "registered_gauge"), 9.0);
    const pm_snap_family_t *f = find_family(s, "probe_events");
    REQUIRE(f);
    CHECK_EQ_INT(pm_snap_family_series_count(f), 1);
    CHECK_EQ_DBL(pm_snap_series_value(find_series(f, "x")), 4.0);
    CHECK_STR(pm_snap_series_label_value(find_series(f, "x"), 1), "y");
    CHECK_EQ_DBL(value_of(s, "probe_level"), -2.5);
    CHECK_EQ_DBL(value_of(s, "probe_size_bytes"), 512.0);
    CHECK_STR(pm_snap_family_unit(find_family(s, "probe_size_bytes")), "bytes");
    CHECK(find_family(s, "x") == NULL);
    CHECK(find_family(s, "probe_size_seconds") == NULL);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

static pm_status_t noop_collect(pm_emit_t *e, void *user)
{
    (void)e;
    int *calls = user;
    if (calls) (*calls)++;
    return PM_OK;
}

static int released_count;
static void count_release(void *user)
{
    (void)user;
    released_count++;
}

TEST(test_collector_add_bad_inputs)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    int dummy = 0;
    pm_collector_t *c = (pm_collector_t *)&dummy; /* must be reset on error */
    released_count = 0;

    CHECK_STATUS(pm_collector_add(NULL, "a", noop_collect, NULL, count_release, &c), PM_EINVAL);
    CHECK(c == NULL);
    CHECK_STATUS(pm_collector_add(r, NULL, noop_collect, NULL, count_release, NULL), PM_EINVAL);
    CHECK_STATUS(pm_collector_add(r, "a", NULL, NULL, count_release, NULL), PM_EINVAL);
    CHECK_STATUS(pm_collector_add(r, "\xc3\x28", noop_collect, NULL, count_release, NULL),
                 PM_EUTF8);
    /* Ownership of user passes even when the call fails. */
    CHECK_EQ_INT(released_count, 4);

    CHECK_OK(pm_collector_add(r, "a", noop_collect, NULL, count_release, NULL));
    CHECK_STATUS(pm_collector_add(r, "a", noop_collect, NULL, count_release, NULL), PM_EEXIST);
    CHECK_EQ_INT(released_count, 5);
    /* Names are label values: any UTF-8 text. */
    CHECK_OK(pm_collector_add(r, "b c/\xc3\xa9", noop_collect, NULL, NULL, NULL));

    CHECK_OK(pm_collector_remove(NULL));
    pm_registry_free(r);
    CHECK_EQ_INT(released_count, 6);
}

TEST(test_collector_remove_stops_calls)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    struct queue_stats q = {0, 1, 2, 3, 0};
    pm_collector_t *c = NULL;
    CHECK_OK(pm_collector_add(r, "queue", queue_collect, &q, queue_release, &c));
    REQUIRE(c);

    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    REQUIRE(s);
    CHECK(find_family(s, "jobs_processed") != NULL);
    pm_snapshot_release(s);
    CHECK_EQ_INT(q.calls, 1);

    CHECK_OK(pm_collector_remove(c));
    CHECK_EQ_INT(q.released, 1); /* released at removal, not at registry free */
    CHECK_OK(pm_snapshot_new(r, &s));
    REQUIRE(s);
    CHECK_EQ_INT(q.calls, 1);
    CHECK(find_family(s, "jobs_processed") == NULL);
    pm_snapshot_release(s);

    /* The name is free again. */
    CHECK_OK(pm_collector_add(r, "queue", queue_collect, &q, queue_release, &c));
    CHECK_OK(pm_snapshot_new(r, &s));
    REQUIRE(s);
    CHECK_EQ_INT(q.calls, 2);
    pm_snapshot_release(s);
    pm_registry_free(r);
    CHECK_EQ_INT(q.released, 2);
}

struct self_remover {
    pm_registry_t *r;
    pm_collector_t *self, *other;
    int calls;
};

static pm_status_t self_remove_collect(pm_emit_t *e, void *user)
{
    (void)e;
    struct self_remover *sr = user;
    sr->calls++;
    CHECK_STATUS(pm_collector_remove(sr->self), PM_ESTATE);
    CHECK_STATUS(pm_collector_remove(sr->other), PM_ESTATE);
    /* Nor can a collector re-enter the snapshot machinery. */
    pm_snapshot_t *s = (pm_snapshot_t *)sr;
    CHECK_STATUS(pm_snapshot_new(sr->r, &s), PM_ESTATE);
    CHECK(s == NULL);
    released_count = 0;
    CHECK_STATUS(pm_collector_add(sr->r, "late", noop_collect, NULL, count_release, NULL),
                 PM_ESTATE);
    CHECK_EQ_INT(released_count, 1);
    return PM_OK;
}

TEST(test_collector_remove_inside_is_estate)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    struct self_remover sr = {r, NULL, NULL, 0};
    int other_calls = 0;
    CHECK_OK(pm_collector_add(r, "other", noop_collect, &other_calls, NULL, &sr.other));
    CHECK_OK(pm_collector_add(r, "remover", self_remove_collect, &sr, NULL, &sr.self));
    REQUIRE(sr.self && sr.other);

    for (int i = 1; i <= 2; i++) {
        pm_snapshot_t *s = NULL;
        CHECK_OK(pm_snapshot_new(r, &s));
        pm_snapshot_release(s);
        /* Both are still registered and still called. */
        CHECK_EQ_INT(sr.calls, i);
        CHECK_EQ_INT(other_calls, i);
    }
    CHECK_OK(pm_collector_remove(sr.self)); /* fine from outside */
    pm_registry_free(r);
}

/* ------------------------------------------------------------ process collector */

static const char *const process_names[] = {
    "process_cpu_seconds",        "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_open_fds",           "process_max_fds",               "process_start_time_seconds",
    "process_threads",
};

static pm_snapshot_t *snap(pm_registry_t *r)
{
    pm_snapshot_t *s = NULL;
    if (pm_snapshot_new(r, &s) != PM_OK) return NULL;
    return s;
}

TEST(test_process_collector_families)
{
    CHECK_STATUS(pm_process_collector_enable(NULL), PM_EINVAL);
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    CHECK_OK(pm_process_collector_enable(r));
    CHECK_OK(pm_process_collector_enable(r)); /* twice is fine */

    pm_snapshot_t *s = snap(r);
    REQUIRE(s);
    CHECK_EQ_DBL(failures_of(s, "process"), 0.0);
    for (size_t i = 0; i < sizeof process_names / sizeof *process_names; i++) {
        const pm_snap_family_t *f = find_family(s, process_names[i]);
        if (!f) {
            TH_FAIL_("family %s missing", process_names[i]);
            continue;
        }
        CHECK_EQ_INT(pm_snap_family_type(f), i == 0 ? PM_TYPE_COUNTER : PM_TYPE_GAUGE);
        CHECK_EQ_INT(pm_snap_family_series_count(f), 1); /* enabled twice, emitted once */
        CHECK_EQ_INT(pm_snap_family_label_count(f), 0);
        CHECK(pm_snap_family_help(f)[0] != '\0');
    }
    CHECK_STR(pm_snap_family_help(find_family(s, "process_cpu_seconds")),
              "Total user and system CPU time spent in seconds.");
    CHECK_STR(pm_snap_family_help(find_family(s, "process_resident_memory_bytes")),
              "Resident memory size in bytes.");
    CHECK_STR(pm_snap_family_help(find_family(s, "process_start_time_seconds")),
              "Start time of the process since unix epoch in seconds.");
    CHECK_STR(pm_snap_family_unit(find_family(s, "process_cpu_seconds")), "seconds");
    CHECK_STR(pm_snap_family_unit(find_family(s, "process_start_time_seconds")), "seconds");
    CHECK_STR(pm_snap_family_unit(find_family(s, "process_virtual_memory_bytes")), "bytes");
    CHECK_STR(pm_snap_family_unit(find_family(s, "process_resident_memory_bytes")), "bytes");
    CHECK_STR(pm_snap_family_unit(find_family(s, "process_open_fds")), "");
    CHECK_STR(pm_snap_family_unit(find_family(s, "process_threads")), "");

    pm_buf_t *b = NULL;
    CHECK_OK(pm_buf_new(&b));
    CHECK_OK(pm_format(s, PM_FORMAT_PROMETHEUS, b));
    CHECK_CONTAINS(pm_buf_data(b), "# TYPE process_cpu_seconds_total counter");
    CHECK_CONTAINS(pm_buf_data(b), "\nprocess_cpu_seconds_total ");
    CHECK_CONTAINS(pm_buf_data(b), "\nprocess_open_fds ");
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_process_collector_values)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    CHECK_OK(pm_process_collector_enable(r));
    burn_cpu(0.3);

    double cpu_before = rusage_cpu_seconds();
    double wall = now_seconds();
    pm_snapshot_t *s = snap(r);
    REQUIRE(s);
    double cpu_after = rusage_cpu_seconds();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    struct rlimit rl;
    CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
    double page = (double)sysconf(_SC_PAGESIZE);

    /* /proc counts CPU in clock ticks: allow a few ticks either side. */
    double tick = 1.0 / (double)sysconf(_SC_CLK_TCK);
    double cpu = value_of(s, "process_cpu_seconds");
    CHECK(cpu >= 0.25);
    CHECK(cpu >= cpu_before - 3 * tick);
    CHECK(cpu <= cpu_after + 3 * tick);

    double rss = value_of(s, "process_resident_memory_bytes");
    double vm = value_of(s, "process_virtual_memory_bytes");
    CHECK(rss > 0);
    CHECK(fmod(rss, page) == 0.0);
    /* Not above the peak getrusage reports, within the slack of the kernel's
     * per-CPU RSS counters (getrusage reads them approximately, statm summed). */
    CHECK(rss <= (double)ru.ru_maxrss * 1024.0 * 1.1 + 4e6);
    CHECK(rss >= (double)ru.ru_maxrss * 1024.0 / 4);
    CHECK(vm >= rss);

    /* Touching 32 MiB shows in both memory figures. */
    size_t big = (size_t)32 << 20;
    unsigned char *mem = malloc(big);
    REQUIRE(mem);
    for (size_t i = 0; i < big; i += 4096) mem[i] = (unsigned char)i | 1;
    pm_snapshot_t *s2 = snap(r);
    REQUIRE(s2);
    CHECK(value_of(s2, "process_resident_memory_bytes") >= rss + 30.0 * (1 << 20));
    CHECK(value_of(s2, "process_virtual_memory_bytes") >= vm + 30.0 * (1 << 20));
    burn_sink = mem[4096];
    free(mem);
    pm_snapshot_release(s2);

    double max_fds = value_of(s, "process_max_fds");
    if (rl.rlim_cur == RLIM_INFINITY)
        CHECK(isinf(max_fds));
    else
        CHECK_EQ_DBL(max_fds, (double)rl.rlim_cur);
    double fds = value_of(s, "process_open_fds");
    CHECK(fds >= 3); /* at least /proc/self/fd itself and the harness's std streams */
    CHECK(fds <= max_fds);

    double start = value_of(s, "process_start_time_seconds");
    CHECK(start <= wall + 1.0); /* btime is whole seconds */
    CHECK(start >= wall - 3600.0);

    CHECK(value_of(s, "process_threads") >= 1);
    pm_snapshot_release(s);

    /* A changed soft limit shows at the next snapshot. */
    struct rlimit lower = rl;
    lower.rlim_cur = 200;
    if (rl.rlim_max == RLIM_INFINITY || rl.rlim_max >= 200) {
        CHECK(setrlimit(RLIMIT_NOFILE, &lower) == 0);
        s = snap(r);
        REQUIRE(s);
        CHECK_EQ_DBL(value_of(s, "process_max_fds"), 200.0);
        pm_snapshot_release(s);
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    pm_registry_free(r);
}

/* Entries of a /proc directory, "." and ".." excluded. */
static long count_dir_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    struct dirent *ent;
    while ((ent = readdir(d)) != NULL)
        if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, open;
};

static void *gate_thread(void *arg)
{
    struct gate *g = arg;
    pthread_mutex_lock(&g->mu);
    g->started++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

TEST(test_process_collector_threads)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    CHECK_OK(pm_process_collector_enable(r));
    /* Start and join one thread first: runtimes such as TSan start a helper
     * thread of their own with the first pthread_create. */
    struct gate warm = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 1};
    pthread_t w;
    REQUIRE(pthread_create(&w, NULL, gate_thread, &warm) == 0);
    pthread_join(w, NULL);

    pm_snapshot_t *s = snap(r);
    REQUIRE(s);
    double base = value_of(s, "process_threads");
    pm_snapshot_release(s);
    CHECK(base >= 1);
    CHECK_EQ_DBL(base, (double)count_dir_entries("/proc/self/task"));

    struct gate g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    pthread_t t[3];
    for (int i = 0; i < 3; i++) REQUIRE(pthread_create(&t[i], NULL, gate_thread, &g) == 0);
    pthread_mutex_lock(&g.mu);
    while (g.started < 3) pthread_cond_wait(&g.cv, &g.mu);
    pthread_mutex_unlock(&g.mu);

    s = snap(r);
    REQUIRE(s);
    CHECK_EQ_DBL(value_of(s, "process_threads"), base + 3);
    pm_snapshot_release(s);

    pthread_mutex_lock(&g.mu);
    g.open = 1;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    /* pthread_join returns once a thread's tid is cleared, a moment before
     * the kernel drops the task from the thread group: wait (bounded) until
     * /proc agrees, then the collector must report exactly that. */
    for (int i = 0; i < 2000 && count_dir_entries("/proc/self/task") != (long)base; i++)
        usleep(1000);

    s = snap(r);
    REQUIRE(s);
    CHECK_EQ_DBL(value_of(s, "process_threads"), base);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_process_collector_open_fds)
{
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    CHECK_OK(pm_process_collector_enable(r));
    pm_snapshot_t *s = snap(r);
    REQUIRE(s);
    double base = value_of(s, "process_open_fds");
    pm_snapshot_release(s);

    int fds[5];
    for (int i = 0; i < 5; i++) REQUIRE((fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
    s = snap(r);
    REQUIRE(s);
    CHECK_EQ_DBL(value_of(s, "process_open_fds"), base + 5);
    pm_snapshot_release(s);

    for (int i = 0; i < 5; i++) close(fds[i]);
    s = snap(r);
    REQUIRE(s);
    CHECK_EQ_DBL(value_of(s, "process_open_fds"), base);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* comm may hold spaces, parentheses and even newlines; the fields after it
 * must still be found (after the last ')'). */
TEST(test_process_collector_odd_comm)
{
    static const char *const names[] = {"a b", "x) (y", "q)\n) 1 2 (", ")))"};
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    CHECK_OK(pm_process_collector_enable(r));
    burn_cpu(0.05);
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        REQUIRE(prctl(PR_SET_NAME, names[i], 0, 0, 0) == 0);
        double cpu_before = rusage_cpu_seconds();
        pm_snapshot_t *s = snap(r);
        REQUIRE(s);
        CHECK_EQ_DBL(failures_of(s, "process"), 0.0);
        CHECK(value_of(s, "process_threads") >= 1.0);
        double cpu = value_of(s, "process_cpu_seconds");
        CHECK(cpu >= cpu_before - 0.05 && cpu <= cpu_before + 1.0);
        double start = value_of(s, "process_start_time_seconds");
        CHECK(start >= now_seconds() - 3600.0 && start <= now_seconds() + 1.0);
        pm_snapshot_release(s);
    }
    pm_registry_free(r);
}

TEST(test_process_collector_name_clash_counted)
{
    /* A family the host registered under a process_* name makes the collector
     * fail (PM_EEXIST from pm_emit_family): counted, and the host's family kept. */
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(r, "process_threads", "Mine.", &g));
    pm_gauge_set(g, 77);
    CHECK_OK(pm_process_collector_enable(r));
    pm_snapshot_t *s = snap(r);
    REQUIRE(s);
    CHECK_EQ_DBL(failures_of(s, "process"), 1.0);
    CHECK_EQ_DBL(value_of(s, "process_threads"), 77.0);
    CHECK(find_family(s, "process_cpu_seconds") == NULL);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ system collector */

static const char *const system_names[] = {
    "system_load1",
    "system_load5",
    "system_load15",
    "system_memory_total_bytes",
    "system_memory_available_bytes",
    "system_cpu_utilisation_ratio",
    "system_cpus",
};

TEST(test_system_collector_values)
{
    CHECK_STATUS(pm_system_collector_enable(NULL), PM_EINVAL);
    pm_registry_t *r = new_registry();
    REQUIRE(r);
    CHECK_OK(pm_system_collector_enable(r));
    CHECK_OK(pm_system_collector_enable(r));

    pm_snapshot_t *s = snap(r);
    REQUIRE(s);
    CHECK_EQ_DBL(failures_of(s, "system"), 0.0);
    for (size_t i = 0; i < sizeof system_names / sizeof *system_names; i++) {
        const pm_snap_family_t *f = find_family(s, system_names[i]);
        if (!f) {
            TH_FAIL_("family %s missing", system_names[i]);
            continue;
        }
        CHECK_EQ_INT(pm_snap_family_type(f), PM_TYPE_GAUGE);
        CHECK_EQ_INT(pm_snap_family_series_count(f), 1);
        CHECK(pm_snap_family_help(f)[0] != '\0');
    }
    CHECK_STR(pm_snap_family_unit(find_family(s, "system_memory_total_bytes")), "bytes");
    CHECK_STR(pm_snap_family_unit(find_family(s, "system_cpu_utilisation_ratio")), "");

    CHECK_EQ_DBL(value_of(s, "system_cpus"), (double)sysconf(_SC_NPROCESSORS_ONLN));
    for (int i = 0; i < 3; i++) {
        double load = value_of(s, system_names[i]);
        CHECK(isfinite(load) && load >= 0);
    }
    double total = value_of(s, "system_memory_total_bytes");
    double avail = value_of(s, "system_memory_available_bytes");
    double page = (double)sysconf(_SC_PAGESIZE);
    CHECK(avail > 0);
    CHECK(avail <= total);
    /* sysconf's physical pages come from the same kernel figure (totalram). */
    CHECK_NEAR(total, (double)sysconf(_SC_PHYS_PAGES) * page, page);
    double util = value_of(s, "system_cpu_utilisation_ratio");
    CHECK(util >= 0.0 && util <= 1.0);
    pm_snapshot_release(s);

    /* Busy between two snapshots: the window covers our own CPU use. */
    burn_cpu(0.3);
    s = snap(r);
    REQUIRE(s);
    util = value_of(s, "system_cpu_utilisation_ratio");
    CHECK(util > 0.0 && util <= 1.0);
    pm_snapshot_release(s);
    /* Back-to-back (maybe no tick in between): still a ratio. */
    s = snap(r);
    REQUIRE(s);
    util = value_of(s, "system_cpu_utilisation_ratio");
    CHECK(util >= 0.0 && util <= 1.0);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_system_collector_per_registry_state)
{
    /* Each registry has its own window and frees its own state (ASan/valgrind
     * builds check no leak); registries come and go. */
    for (int round = 0; round < 3; round++) {
        pm_registry_t *a = new_registry(), *b = new_registry();
        REQUIRE(a && b);
        CHECK_OK(pm_system_collector_enable(a));
        CHECK_OK(pm_system_collector_enable(b));
        CHECK_OK(pm_process_collector_enable(b));
        for (int i = 0; i < 2; i++) {
            pm_snapshot_t *sa = snap(a), *sb = snap(b);
            REQUIRE(sa && sb);
            double ua = value_of(sa, "system_cpu_utilisation_ratio");
            double ub = value_of(sb, "system_cpu_utilisation_ratio");
            CHECK(ua >= 0.0 && ua <= 1.0);
            CHECK(ub >= 0.0 && ub <= 1.0);
            CHECK(find_family(sb, "process_threads") != NULL);
            CHECK(find_family(sa, "process_threads") == NULL);
            pm_snapshot_release(sa);
            pm_snapshot_release(sb);
        }
        pm_registry_free(a);
        pm_registry_free(b);
    }
}

struct dup_result {
    pm_status_t dup, other, clash, clash2;
};

static pm_status_t emit_dups(pm_emit_t *e, void *user)
{
    struct dup_result *d = user;
    const char *ln[1] = {"k"};
    pm_emit_family(e, PM_TYPE_GAUGE, "dup_gauge", "h", "", ln, 1);
    const char *a[1] = {"a"}, *b[1] = {"b"};
    for (int i = 0; i < 100; i++) { /* enough to rebuild the index a few times */
        char v[16];
        snprintf(v, sizeof v, "v%d", i);
        const char *x[1] = {v};
        if (pm_emit_sample(e, x, 1, i) != PM_OK) return PM_EIO;
    }
    pm_emit_sample(e, a, 1, 1);
    d->dup = pm_emit_sample(e, a, 1, 2);
    d->other = pm_emit_sample(e, b, 1, 3);
    /* A gauge "reg_total" would print the same samples as the counter "reg". */
    d->clash = pm_emit_family(e, PM_TYPE_GAUGE, "reg_total", "h", "", NULL, 0);
    d->clash2 = pm_emit_family(e, PM_TYPE_GAUGE, "dup_gauge", "h", "", NULL, 0);
    return PM_OK;
}

TEST(test_duplicate_samples_and_name_clashes)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_counter_t *c;
    CHECK_OK(pm_counter_new(r, "reg", "h", &c));
    struct dup_result d = {PM_OK, PM_EIO, PM_OK, PM_OK};
    CHECK_OK(pm_collector_add(r, "dups", emit_dups, &d, NULL, NULL));
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_STATUS(d.dup, PM_EEXIST);
    CHECK_OK(d.other);
    CHECK_STATUS(d.clash, PM_EEXIST);
    CHECK_STATUS(d.clash2, PM_EEXIST);
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!strcmp(pm_snap_family_name(f), "dup_gauge"))
            CHECK_EQ_INT(pm_snap_family_series_count(f), 102);
    }
    pm_snapshot_release(s);
    /* Registered families clash the same way. */
    pm_family_t *f;
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "reg_total", "h", NULL, &f), PM_EEXIST);
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "reg_created", "h", NULL, &f), PM_EEXIST);
    pm_histogram_t *h;
    CHECK_OK(pm_histogram_new(r, "lat", "h", &h));
    CHECK_STATUS(pm_family_new(r, PM_TYPE_COUNTER, "lat_count", "h", NULL, &f), PM_EEXIST);
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "lat_bucket", "h", NULL, &f), PM_EEXIST);
    CHECK_OK(pm_family_new(r, PM_TYPE_GAUGE, "lat_other", "h", NULL, &f));
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_duplicate_samples_and_name_clashes), TH_CASE(test_custom_collector_emits), TH_CASE(test_failing_collector_discarded_and_counted),
          TH_CASE(test_emit_bad_inputs), TH_CASE(test_collector_add_bad_inputs),
          TH_CASE(test_collector_remove_stops_calls), TH_CASE(test_collector_remove_inside_is_estate),
          TH_CASE(test_process_collector_families), TH_CASE(test_process_collector_values),
          TH_CASE(test_process_collector_threads), TH_CASE(test_process_collector_open_fds),
          TH_CASE(test_process_collector_odd_comm),
          TH_CASE(test_process_collector_name_clash_counted),
          TH_CASE(test_system_collector_values), TH_CASE(test_system_collector_per_registry_state))
