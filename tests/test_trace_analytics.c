/* Trace analytics (lib/trace_analytics.c): hand-built span records fed
 * through the internal API, checked against exact self times and critical
 * paths; bounds, overflow, late spans, settle; the public readers. */
#include "harness.h"
#include "internal/span_internal.h"

#include <pthread.h>

/* Internal counters (lib/trace_analytics.c). */
uint64_t pm__analytics_counter(pm_trace_analytics *a, const char *name);

#define MS 1000000ull /* ns */
#define SEC(ns) ((double)(ns) / 1e9)

static pm_span_rec rec_;

static void trace_id(uint8_t out[16], unsigned trace)
{
    memset(out, 0, 16);
    out[0] = 0xab;
    out[14] = (uint8_t)(trace >> 8);
    out[15] = (uint8_t)trace;
}

static void span_id(uint8_t out[8], unsigned id)
{
    memset(out, 0, 8);
    if (!id) return;
    out[0] = 0x5a;
    out[6] = (uint8_t)(id >> 8);
    out[7] = (uint8_t)id;
}

/* Feeds one ended span: ids are small integers (parent 0 = root), times in ms. */
static void feed_x(pm_trace_analytics *a, unsigned trace, unsigned id, unsigned parent, int remote,
                   const char *name, uint64_t start_ms, uint64_t end_ms, int error)
{
    memset(&rec_, 0, sizeof rec_);
    trace_id(rec_.base.ctx.trace_id, trace);
    span_id(rec_.base.ctx.span_id, id);
    span_id(rec_.base.parent_id, parent);
    rec_.base.parent_remote = (uint8_t)remote;
    rec_.base.sampled = 1;
    rec_.start_mono = 1000 * MS + start_ms * MS;
    rec_.end_mono = 1000 * MS + end_ms * MS;
    rec_.status = error ? PM_SPAN_STATUS_ERROR : PM_SPAN_STATUS_OK;
    snprintf(rec_.name, sizeof rec_.name, "%s", name);
    pm__analytics_add(a, &rec_);
}

static void feed(pm_trace_analytics *a, unsigned trace, unsigned id, unsigned parent,
                 const char *name, uint64_t start_ms, uint64_t end_ms)
{
    feed_x(a, trace, id, parent, 0, name, start_ms, end_ms, 0);
}

static pm_trace_analytics *mk(size_t max_ops, size_t slowest, size_t errors, size_t traces,
                              size_t spans)
{
    pm_trace_analytics *a = NULL;
    CHECK_OK(pm__analytics_new(max_ops, slowest, errors, traces, spans, &a));
    return a;
}

static size_t op_index(const pm_trace_ops_t *o, const char *name)
{
    for (size_t i = 0; i < pm_trace_ops_count(o); i++)
        if (strcmp(pm_trace_ops_name(o, i), name) == 0) return i;
    return (size_t)-1;
}

/* Checks one operation with a single span: count, errors, duration and self
 * time exactly (a single value is its own min and max). */
#define CHECK_OP1(o, name, dur_ms, self_ms)                                                        \
    do {                                                                                           \
        size_t i_ = op_index((o), (name));                                                         \
        REQUIRE(i_ != (size_t)-1);                                                                 \
        CHECK_EQ_U64(pm_trace_ops_spans((o), i_), 1);                                              \
        double v_ = -1;                                                                            \
        CHECK_OK(pm_trace_ops_duration((o), i_, 0.5, &v_));                                        \
        CHECK_EQ_DBL(v_, SEC((dur_ms)*MS));                                                        \
        CHECK_OK(pm_trace_ops_self_time((o), i_, 0.5, &v_));                                       \
        CHECK_EQ_DBL(v_, SEC((self_ms)*MS));                                                       \
        CHECK_EQ_DBL(pm_trace_ops_self_total((o), i_), SEC((self_ms)*MS));                         \
    } while (0)

/* Checks trace i's critical path: n steps given as name, ms pairs; and that
 * the steps sum to the duration. */
static void check_path(const pm_trace_list_t *l, size_t i, size_t n, const char *const *names,
                       const uint64_t *ms)
{
    CHECK_EQ_U64(pm_trace_list_path_length(l, i), n);
    if (pm_trace_list_path_length(l, i) != n) {
        for (size_t k = 0; k < pm_trace_list_path_length(l, i); k++)
            fprintf(stderr, "    step %zu: %s %.9f\n", k, pm_trace_list_path_name(l, i, k),
                    pm_trace_list_path_seconds(l, i, k));
        return;
    }
    double sum = 0;
    for (size_t k = 0; k < n; k++) {
        CHECK_STR(pm_trace_list_path_name(l, i, k), names[k]);
        CHECK_EQ_DBL(pm_trace_list_path_seconds(l, i, k), SEC(ms[k] * MS));
        sum += pm_trace_list_path_seconds(l, i, k);
    }
    CHECK_NEAR(sum, pm_trace_list_duration(l, i), 1e-12);
}

#define PATH(l, i, ...)                                                                            \
    do {                                                                                           \
        const struct {                                                                             \
            const char *n;                                                                         \
            uint64_t ms;                                                                           \
        } p_[] = {__VA_ARGS__};                                                                    \
        const char *n_[sizeof p_ / sizeof p_[0]];                                                  \
        uint64_t m_[sizeof p_ / sizeof p_[0]];                                                     \
        for (size_t k_ = 0; k_ < sizeof p_ / sizeof p_[0]; k_++) {                                 \
            n_[k_] = p_[k_].n;                                                                     \
            m_[k_] = p_[k_].ms;                                                                    \
        }                                                                                          \
        check_path((l), (i), sizeof p_ / sizeof p_[0], n_, m_);                                    \
    } while (0)

static pm_trace_list_t *slowest(pm_trace_analytics *a)
{
    pm_trace_list_t *l = NULL;
    CHECK_OK(pm__analytics_traces(a, PM_TRACES_SLOWEST, &l));
    return l;
}

static pm_trace_ops_t *ops(pm_trace_analytics *a)
{
    pm_trace_ops_t *o = NULL;
    CHECK_OK(pm__analytics_ops(a, &o));
    return o;
}

/* ------------------------------------------------------------ trees */

/* root [0,100] with children [10,30] [30,60] [70,90]: back to back, gaps. */
TEST(test_sequential_children)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 1, 2, 1, "a", 10, 30);
    feed(a, 1, 3, 1, "b", 30, 60);
    feed(a, 1, 4, 1, "c", 70, 90);
    feed(a, 1, 1, 0, "root", 0, 100);
    pm_trace_ops_t *o = ops(a);
    CHECK_EQ_U64(pm_trace_ops_count(o), 4);
    CHECK_OP1(o, "root", 100, 30);
    CHECK_OP1(o, "a", 20, 20);
    CHECK_OP1(o, "b", 30, 30);
    CHECK_OP1(o, "c", 20, 20);
    /* Ranked by total self time, ties by name. */
    CHECK_STR(pm_trace_ops_name(o, 0), "b");
    CHECK_STR(pm_trace_ops_name(o, 1), "root");
    CHECK_STR(pm_trace_ops_name(o, 2), "a");
    CHECK_STR(pm_trace_ops_name(o, 3), "c");
    pm_trace_ops_free(o);

    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    uint8_t id[16];
    trace_id(id, 1);
    CHECK(memcmp(pm_trace_list_trace_id(l, 0), id, 16) == 0);
    CHECK_STR(pm_trace_list_root(l, 0), "root");
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 4);
    CHECK_EQ_U64(pm_trace_list_errors(l, 0), 0);
    CHECK_EQ_DBL(pm_trace_list_duration(l, 0), SEC(100 * MS));
    /* Root owns [90,100], [60,70] and [0,10]; a child ending exactly at the
     * cursor (a at 30, b starting at 30) is taken. */
    PATH(l, 0, {"root", 30}, {"a", 20}, {"b", 30}, {"c", 20});
    pm_trace_list_free(l);
    CHECK_EQ_U64(pm__analytics_counter(a, "completed"), 1);
    CHECK_EQ_U64(pm__analytics_counter(a, "assembling"), 0);
    pm__analytics_free(a);
}

/* root [0,100]; a [0,60], b [50,90], c [20,40] overlap each other. */
TEST(test_overlapping_children)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 1, 4, 1, "c", 20, 40);
    feed(a, 1, 2, 1, "a", 0, 60);
    feed(a, 1, 3, 1, "b", 50, 90);
    feed(a, 1, 1, 0, "root", 0, 100);
    pm_trace_ops_t *o = ops(a);
    CHECK_OP1(o, "root", 100, 10); /* children cover [0,90] */
    CHECK_OP1(o, "a", 60, 60);
    CHECK_OP1(o, "b", 40, 40);
    CHECK_OP1(o, "c", 20, 20);
    pm_trace_ops_free(o);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    /* From 100: b (ends 90) -> cursor 50; a ends at 60 > 50, so it is not
     * what the path waited on; c (ends 40) -> cursor 20; the root owns the
     * rest: [90,100] + [40,50] + [0,20] = 40. */
    PATH(l, 0, {"root", 40}, {"c", 20}, {"b", 40});
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

/* root [0,100]; a [20,150] ends after its parent (and so arrives after it),
 * b [0,10]; d [0,5] starts with its parent. */
TEST(test_child_past_parent)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 1, 3, 1, "b", 0, 10);
    feed(a, 1, 4, 3, "d", 0, 5);
    feed(a, 1, 1, 0, "root", 0, 100);
    feed(a, 1, 2, 1, "a", 20, 150); /* after the root: still part of the trace */
    pm_trace_ops_t *o = ops(a);
    CHECK_OP1(o, "root", 100, 10);
    CHECK_OP1(o, "a", 130, 130);
    CHECK_OP1(o, "b", 10, 5);
    CHECK_OP1(o, "d", 5, 5);
    pm_trace_ops_free(o);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 4);
    CHECK_EQ_DBL(pm_trace_list_duration(l, 0), SEC(100 * MS));
    /* a is clipped to [20,100]: it owns 80; root owns [10,20]; b [5,10];
     * d [0,5]. */
    PATH(l, 0, {"root", 10}, {"b", 5}, {"d", 5}, {"a", 80});
    pm_trace_list_free(l);
    CHECK_EQ_U64(pm__analytics_counter(a, "detached"), 0);
    pm__analytics_free(a);
}

/* A child that starts before its parent and one entirely outside it. */
TEST(test_child_outside_parent)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 1, 2, 1, "early", 40, 70); /* clipped to [50,70] */
    feed(a, 1, 3, 1, "before", 0, 30); /* outside [50,100]: not on the path */
    feed(a, 1, 1, 0, "root", 50, 100);
    pm_trace_ops_t *o = ops(a);
    CHECK_OP1(o, "root", 50, 30);
    CHECK_OP1(o, "early", 30, 30);
    CHECK_OP1(o, "before", 30, 30);
    pm_trace_ops_free(o);
    pm_trace_list_t *l = slowest(a);
    PATH(l, 0, {"root", 30}, {"early", 20});
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

/* Two children end together: the one that started earlier is taken (it
 * explains more of the wait); the other ends after the new cursor. */
TEST(test_equal_end_children)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 1, 2, 1, "short", 60, 80);
    feed(a, 1, 3, 1, "long", 20, 80);
    feed(a, 1, 4, 1, "first", 0, 10);
    feed(a, 1, 1, 0, "root", 0, 100);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    PATH(l, 0, {"root", 30}, {"first", 10}, {"long", 60});
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

/* root [0,100] -> A [10,80] -> {A1 [20,50] -> A1a [25,45], A2 [40,70] -> A2x [45,65]};
 * root -> B [85,95]. */
TEST(test_nested_grandchildren)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 7, 4, 3, "A1a", 25, 45);
    feed(a, 7, 3, 2, "A1", 20, 50);
    feed(a, 7, 6, 5, "A2x", 45, 65);
    feed(a, 7, 5, 2, "A2", 40, 70);
    feed(a, 7, 2, 1, "A", 10, 80);
    feed(a, 7, 7, 1, "B", 85, 95);
    feed(a, 7, 1, 0, "R", 0, 100);
    pm_trace_ops_t *o = ops(a);
    CHECK_OP1(o, "R", 100, 20);
    CHECK_OP1(o, "A", 70, 20); /* children cover [20,70] */
    CHECK_OP1(o, "A1", 30, 10);
    CHECK_OP1(o, "A1a", 20, 20);
    CHECK_OP1(o, "A2", 30, 10);
    CHECK_OP1(o, "A2x", 20, 20);
    CHECK_OP1(o, "B", 10, 10);
    pm_trace_ops_free(o);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 7);
    /* R: [95,100] [80,85] [0,10]; B [85,95]; A: [70,80] [10,40]; A2: [65,70]
     * [40,45]; A2x [45,65]. A1 ends at 50, after A2 started: off the path. */
    PATH(l, 0, {"R", 20}, {"A", 40}, {"A2", 10}, {"A2x", 20}, {"B", 10});
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

/* A local root whose parent is in another process. */
TEST(test_remote_parent_root)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 3, 11, 10, "db", 10, 40);
    feed_x(a, 3, 10, 99, 1, "server", 0, 50, 0);
    /* A span whose (local) parent never arrives keeps its trace open. */
    feed(a, 4, 21, 20, "orphan", 0, 10);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    CHECK_STR(pm_trace_list_root(l, 0), "server");
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 2);
    PATH(l, 0, {"server", 20}, {"db", 30});
    pm_trace_list_free(l);
    CHECK_EQ_U64(pm__analytics_counter(a, "completed"), 1);
    CHECK_EQ_U64(pm__analytics_counter(a, "assembling"), 1);
    /* The open trace's span already counts, its self time not yet. */
    pm_trace_ops_t *o = ops(a);
    size_t i = op_index(o, "orphan");
    REQUIRE(i != (size_t)-1);
    CHECK_EQ_U64(pm_trace_ops_spans(o, i), 1);
    double v;
    CHECK_OK(pm_trace_ops_duration(o, i, 1, &v));
    CHECK_STATUS(pm_trace_ops_self_time(o, i, 1, &v), PM_ENOENT);
    CHECK_EQ_DBL(pm_trace_ops_self_total(o, i), 0);
    pm_trace_ops_free(o);
    pm__analytics_free(a);
}

/* Two requests of one trace handled here, each a local root (remote parent). */
TEST(test_two_local_roots)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 5, 2, 1, "q1", 0, 10);
    feed_x(a, 5, 1, 90, 1, "rpc", 0, 20, 0);
    feed(a, 5, 4, 3, "q2", 100, 130);
    feed_x(a, 5, 3, 91, 1, "rpc", 100, 140, 1);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 2);
    CHECK_EQ_DBL(pm_trace_list_duration(l, 0), SEC(40 * MS));
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 2);
    CHECK_EQ_U64(pm_trace_list_errors(l, 0), 1);
    PATH(l, 0, {"rpc", 10}, {"q2", 30});
    CHECK_EQ_DBL(pm_trace_list_duration(l, 1), SEC(20 * MS));
    PATH(l, 1, {"rpc", 10}, {"q1", 10});
    pm_trace_list_free(l);
    CHECK_EQ_U64(pm__analytics_counter(a, "completed"), 2);
    pm__analytics_free(a);
}

/* ------------------------------------------------------------ statistics */

TEST(test_op_statistics)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    double sum = 0;
    for (unsigned t = 1; t <= 100; t++) {
        feed_x(a, t, 2, 1, 0, "leaf", 0, t, t % 10 == 0);
        feed(a, t, 1, 0, "top", 0, t + 1);
        sum += SEC(t * MS);
    }
    pm_trace_ops_t *o = ops(a);
    REQUIRE(pm_trace_ops_count(o) == 2);
    CHECK_STR(pm_trace_ops_name(o, 0), "leaf");
    CHECK_EQ_U64(pm_trace_ops_spans(o, 0), 100);
    CHECK_EQ_U64(pm_trace_ops_errors(o, 0), 10);
    CHECK_EQ_U64(pm_trace_ops_errors(o, 1), 0);
    double v;
    CHECK_OK(pm_trace_ops_duration(o, 0, 0, &v));
    CHECK_EQ_DBL(v, 0.001);
    CHECK_OK(pm_trace_ops_duration(o, 0, 1, &v));
    CHECK_EQ_DBL(v, 0.1);
    CHECK_OK(pm_trace_ops_duration(o, 0, 0.5, &v));
    CHECK_NEAR(v, 0.050, 0.050 / 129);
    CHECK_OK(pm_trace_ops_duration(o, 0, 0.99, &v));
    CHECK_NEAR(v, 0.099, 0.099 / 129);
    CHECK_OK(pm_trace_ops_self_time(o, 0, 0.9, &v));
    CHECK_NEAR(v, 0.090, 0.090 / 129);
    CHECK_NEAR(pm_trace_ops_self_total(o, 0), sum, 1e-12);
    /* top: 1 ms of self time each. */
    CHECK_OK(pm_trace_ops_self_time(o, 1, 0, &v));
    CHECK_EQ_DBL(v, 0.001);
    CHECK_OK(pm_trace_ops_self_time(o, 1, 1, &v));
    CHECK_EQ_DBL(v, 0.001);
    CHECK_NEAR(pm_trace_ops_self_total(o, 1), 0.1, 1e-12);
    CHECK_OK(pm_trace_ops_duration(o, 1, 1, &v));
    CHECK_EQ_DBL(v, 0.101);
    pm_trace_ops_free(o);
    pm__analytics_free(a);
}

TEST(test_slowest_ordering)
{
    pm_trace_analytics *a = mk(16, 3, 0, 16, 64);
    static const uint64_t dur[] = {5, 1, 9, 3, 9, 7, 2};
    for (unsigned t = 0; t < 7; t++) feed(a, t + 1, 1, 0, "op", 0, dur[t]);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 3);
    static const unsigned want[] = {3, 5, 6}; /* 9 ms (first), 9 ms, 7 ms */
    for (size_t i = 0; i < 3; i++) {
        uint8_t id[16];
        trace_id(id, want[i]);
        CHECK(memcmp(pm_trace_list_trace_id(l, i), id, 16) == 0);
        CHECK_EQ_DBL(pm_trace_list_duration(l, i), SEC(dur[want[i] - 1] * MS));
        PATH(l, i, {"op", dur[want[i] - 1]});
    }
    pm_trace_list_free(l);
    /* error_traces = 0: always empty. */
    CHECK_OK(pm__analytics_traces(a, PM_TRACES_ERRORS, &l));
    CHECK_EQ_U64(pm_trace_list_count(l), 0);
    pm_trace_list_free(l);
    pm__analytics_free(a);

    /* slowest = 0 keeps nothing. */
    a = mk(16, 0, 2, 16, 64);
    feed(a, 1, 1, 0, "op", 0, 5);
    l = slowest(a);
    CHECK_EQ_U64(pm_trace_list_count(l), 0);
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

TEST(test_error_ring)
{
    pm_trace_analytics *a = mk(16, 0, 2, 16, 64);
    for (unsigned t = 1; t <= 5; t++) {
        /* traces 1, 3, 4 and 5 have errors; trace 4 two of them */
        feed_x(a, t, 2, 1, 0, "child", 0, 5, t != 2);
        feed_x(a, t, 3, 1, 0, "child", 5, 8, t == 4);
        feed(a, t, 1, 0, "req", 0, 10 + t);
        if (t == 3) {
            pm_trace_list_t *l = NULL;
            CHECK_OK(pm__analytics_traces(a, PM_TRACES_ERRORS, &l));
            REQUIRE(pm_trace_list_count(l) == 2); /* 3 then 1 */
            CHECK_EQ_DBL(pm_trace_list_duration(l, 0), SEC(13 * MS));
            CHECK_EQ_DBL(pm_trace_list_duration(l, 1), SEC(11 * MS));
            pm_trace_list_free(l);
        }
    }
    pm_trace_list_t *l = NULL;
    CHECK_OK(pm__analytics_traces(a, PM_TRACES_ERRORS, &l));
    REQUIRE(pm_trace_list_count(l) == 2);
    uint8_t id[16];
    trace_id(id, 5); /* newest first */
    CHECK(memcmp(pm_trace_list_trace_id(l, 0), id, 16) == 0);
    CHECK_EQ_U64(pm_trace_list_errors(l, 0), 1);
    trace_id(id, 4);
    CHECK(memcmp(pm_trace_list_trace_id(l, 1), id, 16) == 0);
    CHECK_EQ_U64(pm_trace_list_errors(l, 1), 2);
    CHECK_EQ_U64(pm_trace_list_spans(l, 1), 3);
    CHECK_STR(pm_trace_list_root(l, 1), "req");
    PATH(l, 1, {"req", 6}, {"child", 5}, {"child", 3});
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

/* ------------------------------------------------------------ bounds */

TEST(test_assembly_overflow)
{
    pm_trace_analytics *a = mk(16, 8, 0, 2, 64);
    feed(a, 1, 2, 1, "t1_child", 0, 10);  /* T1 open (its root is still running) */
    feed(a, 1, 3, 1, "t1_child", 20, 50); /* a second orphan, starting later */
    feed(a, 1, 4, 3, "t1_grand", 30, 40);
    feed(a, 2, 1, 0, "t2_root", 0, 5);  /* T2 pending */
    feed(a, 3, 2, 1, "t3_child", 0, 7); /* full: the pending T2 completes first */
    CHECK_EQ_U64(pm__analytics_counter(a, "completed"), 1);
    CHECK_EQ_U64(pm__analytics_counter(a, "forced"), 0);
    feed(a, 4, 2, 1, "t4_child", 0, 3); /* full, nothing pending: T1 is forced */
    CHECK_EQ_U64(pm__analytics_counter(a, "forced"), 1);
    CHECK_EQ_U64(pm__analytics_counter(a, "assembling"), 2);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 2);
    /* T1 rooted at its earliest parentless span; the other orphan's subtree
     * is counted as detached. */
    CHECK_STR(pm_trace_list_root(l, 0), "t1_child");
    CHECK_EQ_DBL(pm_trace_list_duration(l, 0), SEC(10 * MS));
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 1);
    CHECK_STR(pm_trace_list_root(l, 1), "t2_root");
    pm_trace_list_free(l);
    CHECK_EQ_U64(pm__analytics_counter(a, "detached"), 2);
    pm_trace_ops_t *o = ops(a);
    size_t i = op_index(o, "t1_child");
    CHECK_EQ_U64(pm_trace_ops_spans(o, i), 2);
    CHECK_NEAR(pm_trace_ops_self_total(o, i), SEC(30 * MS), 1e-15); /* 10 + (30 - 10) */
    pm_trace_ops_free(o);

    /* A span of T1 after it was forced: late, never a trace of its own. */
    feed(a, 1, 1, 0, "t1_root", 0, 60);
    CHECK_EQ_U64(pm__analytics_counter(a, "forced"), 2); /* T3 made room */
    pm__analytics_settle(a);
    CHECK_EQ_U64(pm__analytics_counter(a, "settled"), 1);   /* T4 */
    CHECK_EQ_U64(pm__analytics_counter(a, "completed"), 2); /* T2, late T1 root */
    CHECK_EQ_U64(pm__analytics_counter(a, "assembling"), 0);
    pm__analytics_free(a);
}

TEST(test_max_spans_per_trace)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 3);
    feed(a, 1, 2, 1, "c", 0, 10);
    feed(a, 1, 3, 1, "c", 20, 30);
    feed_x(a, 1, 4, 1, 0, "c", 40, 60, 1); /* dropped: the last place is the root's */
    feed(a, 1, 5, 1, "c", 70, 75);         /* dropped */
    feed(a, 1, 1, 0, "root", 0, 100);
    CHECK_EQ_U64(pm__analytics_counter(a, "unassembled"), 2);
    pm_trace_ops_t *o = ops(a);
    size_t i = op_index(o, "c");
    CHECK_EQ_U64(pm_trace_ops_spans(o, i), 4);
    CHECK_EQ_U64(pm_trace_ops_errors(o, i), 1);
    CHECK_NEAR(pm_trace_ops_self_total(o, i), SEC(45 * MS), 1e-15);
    /* Without the dropped children, the root's self time is 100 - 20. */
    CHECK_OP1(o, "root", 100, 80);
    pm_trace_ops_free(o);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 5);
    CHECK_EQ_U64(pm_trace_list_errors(l, 0), 1);
    PATH(l, 0, {"root", 80}, {"c", 10}, {"c", 10});
    pm_trace_list_free(l);
    pm__analytics_free(a);

    /* One span per trace: only roots are assembled. */
    a = mk(16, 4, 4, 16, 1);
    feed(a, 1, 2, 1, "c", 0, 10);
    feed(a, 1, 1, 0, "root", 0, 20);
    l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 2);
    PATH(l, 0, {"root", 20});
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

TEST(test_max_ops_other)
{
    pm_trace_analytics *a = mk(2, 4, 4, 16, 64);
    feed(a, 2, 1, 0, "a", 0, 1);
    feed(a, 1, 2, 1, "b", 0, 10);
    feed(a, 1, 3, 1, "c", 10, 30);         /* third operation: "(other)" */
    feed_x(a, 1, 4, 1, 0, "d", 30, 35, 1); /* "(other)" */
    feed(a, 1, 1, 0, "a", 0, 40);
    feed(a, 3, 1, 0, "e", 0, 1); /* "(other)" */
    CHECK_EQ_U64(pm__analytics_counter(a, "other"), 3);
    pm_trace_ops_t *o = ops(a);
    REQUIRE(pm_trace_ops_count(o) == 3);
    CHECK_STR(pm_trace_ops_name(o, 0), "b");
    CHECK_STR(pm_trace_ops_name(o, 1), "a");
    CHECK_STR(pm_trace_ops_name(o, 2), "(other)"); /* always last */
    CHECK_EQ_U64(pm_trace_ops_spans(o, 2), 3);
    CHECK_EQ_U64(pm_trace_ops_errors(o, 2), 1);
    CHECK_NEAR(pm_trace_ops_self_total(o, 2), SEC(26 * MS), 1e-15);
    CHECK_EQ_U64(pm_trace_ops_spans(o, 1), 2);
    CHECK_NEAR(pm_trace_ops_self_total(o, 1), SEC(6 * MS), 1e-15); /* 1 + (40 - 35) */
    CHECK_OP1(o, "b", 10, 10);
    pm_trace_ops_free(o);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 3);
    PATH(l, 0, {"a", 5}, {"b", 10}, {"(other)", 20}, {"(other)", 5});
    CHECK_STR(pm_trace_list_root(l, 1), "a");
    CHECK_STR(pm_trace_list_root(l, 2), "(other)");
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

/* ------------------------------------------------------------ arrival order */

TEST(test_interleaved_traces)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 1, 2, 1, "x", 0, 10);
    feed(a, 2, 2, 1, "y", 5, 25);
    feed(a, 1, 3, 1, "x", 10, 30);
    feed(a, 2, 3, 2, "z", 10, 20);
    feed(a, 2, 1, 0, "r2", 0, 40);
    feed(a, 1, 1, 0, "r1", 0, 35);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 2);
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 3);
    PATH(l, 0, {"r2", 20}, {"y", 10}, {"z", 10});
    PATH(l, 1, {"r1", 5}, {"x", 10}, {"x", 20});
    pm_trace_list_free(l);

    /* A child of trace 1 flushed after trace 1 completed (the read above):
     * counted for its operation, detached from any trace. */
    feed(a, 1, 9, 1, "x", 30, 80);
    pm__analytics_settle(a);
    CHECK_EQ_U64(pm__analytics_counter(a, "detached"), 1);
    CHECK_EQ_U64(pm__analytics_counter(a, "settled"), 0);
    l = slowest(a);
    CHECK_EQ_U64(pm_trace_list_count(l), 2);
    pm_trace_list_free(l);
    pm_trace_ops_t *o = ops(a);
    size_t i = op_index(o, "x");
    CHECK_EQ_U64(pm_trace_ops_spans(o, i), 3);
    CHECK_NEAR(pm_trace_ops_self_total(o, i), SEC(80 * MS), 1e-15);
    pm_trace_ops_free(o);
    pm__analytics_free(a);
}

TEST(test_settle)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 1, 3, 2, "leaf", 10, 20);
    feed(a, 1, 2, 1, "mid", 5, 30); /* its parent, the root, is still running */
    feed(a, 2, 1, 0, "done", 0, 3);
    CHECK_EQ_U64(pm__analytics_counter(a, "assembling"), 2);
    pm__analytics_settle(a);
    CHECK_EQ_U64(pm__analytics_counter(a, "assembling"), 0);
    CHECK_EQ_U64(pm__analytics_counter(a, "settled"), 1);
    CHECK_EQ_U64(pm__analytics_counter(a, "completed"), 1);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 2);
    CHECK_STR(pm_trace_list_root(l, 0), "mid");
    CHECK_EQ_U64(pm_trace_list_spans(l, 0), 2);
    PATH(l, 0, {"mid", 15}, {"leaf", 10});
    pm_trace_list_free(l);
    pm__analytics_settle(a); /* nothing left: no-op */
    pm__analytics_settle(NULL);
    CHECK_EQ_U64(pm__analytics_counter(a, "settled"), 1);
    pm__analytics_free(a);
}

/* ------------------------------------------------------------ random trees */

/* Random trees on a 1 ms grid: self times against a per-millisecond oracle,
 * path steps summing to the root's duration. */
TEST(test_random_trees)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    for (int round = 0; round < 300; round++) {
        enum {
            N = 24
        };
        unsigned par[N] = {0};
        uint64_t st[N] = {0}, en[N] = {0};
        int n = 1 + (int)(seed % N);
        for (int i = 0; i < n; i++) {
            seed = seed * 6364136223846793005u + 1442695040888963407u;
            uint64_t r = seed >> 20;
            par[i] = i == 0 ? 0 : (unsigned)(r % (uint64_t)i) + 1; /* 1-based ids */
            st[i] = (r >> 8) % 60;
            en[i] = st[i] + (r >> 16) % 50;
        }
        pm_trace_analytics *a = mk(64, 1, 0, 4, 64);
        char name[16];
        for (int i = n - 1; i >= 0; i--) { /* children (higher ids) first */
            snprintf(name, sizeof name, "s%d", i);
            feed(a, 1, (unsigned)i + 1, par[i], name, st[i], en[i]);
        }
        pm_trace_ops_t *o = ops(a);
        for (int i = 0; i < n; i++) {
            uint64_t self = 0;
            for (uint64_t t = st[i]; t < en[i]; t++) {
                int covered = 0;
                for (int c = 1; c < n; c++)
                    if (par[c] == (unsigned)i + 1 && st[c] <= t && t < en[c]) covered = 1;
                self += !covered;
            }
            snprintf(name, sizeof name, "s%d", i);
            size_t k = op_index(o, name);
            CHECK_NEAR(pm_trace_ops_self_total(o, k), SEC(self * MS), 1e-15);
        }
        pm_trace_ops_free(o);
        pm_trace_list_t *l = slowest(a);
        REQUIRE(pm_trace_list_count(l) == 1);
        CHECK_STR(pm_trace_list_path_name(l, 0, 0), "s0");
        double sum = 0;
        for (size_t k = 0; k < pm_trace_list_path_length(l, 0); k++) {
            CHECK(pm_trace_list_path_seconds(l, 0, k) >= 0);
            sum += pm_trace_list_path_seconds(l, 0, k);
        }
        CHECK_NEAR(sum, SEC((en[0] - st[0]) * MS), 1e-12);
        pm_trace_list_free(l);
        pm__analytics_free(a);
    }
}

/* ------------------------------------------------------------ readers on other threads */

struct reader_arg {
    pm_trace_analytics *a;
    _Atomic int *stop;
    uint64_t reads;
};

static void *reader(void *p)
{
    struct reader_arg *r = p;
    while (!atomic_load(r->stop)) {
        pm_trace_ops_t *o = NULL;
        pm_trace_list_t *l = NULL;
        if (pm__analytics_ops(r->a, &o) == PM_OK) r->reads++;
        if (pm__analytics_traces(r->a, PM_TRACES_SLOWEST, &l) == PM_OK) r->reads++;
        for (size_t i = 0; i < pm_trace_list_count(l); i++)
            for (size_t k = 0; k < pm_trace_list_path_length(l, i); k++)
                (void)pm_trace_list_path_name(l, i, k);
        pm_trace_ops_free(o);
        pm_trace_list_free(l);
    }
    return NULL;
}

TEST(test_concurrent_readers)
{
    pm_trace_analytics *a = mk(8, 8, 8, 8, 16);
    _Atomic int stop = 0;
    struct reader_arg r[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        r[i] = (struct reader_arg){a, &stop, 0};
        REQUIRE(pthread_create(&th[i], NULL, reader, &r[i]) == 0);
    }
    for (unsigned t = 1; t <= 20000; t++) {
        feed_x(a, t, 2, 1, 0, "child", 0, t % 7, t % 5 == 0);
        feed(a, t, 1, 0, "root", 0, 10 + t % 13);
    }
    atomic_store(&stop, 1);
    for (int i = 0; i < 3; i++) pthread_join(th[i], NULL);
    pm_trace_ops_t *o = ops(a);
    CHECK_EQ_U64(pm_trace_ops_spans(o, op_index(o, "child")), 20000);
    CHECK_EQ_U64(pm_trace_ops_errors(o, op_index(o, "child")), 4000);
    double v;
    CHECK_OK(pm_trace_ops_self_time(o, op_index(o, "root"), 0, &v));
    CHECK_EQ_U64(pm_trace_ops_spans(o, op_index(o, "root")), 20000);
    pm_trace_ops_free(o);
    CHECK_EQ_U64(pm__analytics_counter(a, "completed"), 20000);
    pm__analytics_free(a);
}

/* ------------------------------------------------------------ bad arguments */

TEST(test_bad_arguments)
{
    pm_trace_analytics *a = (pm_trace_analytics *)1;
    CHECK_STATUS(pm__analytics_new(16, 4, 4, 16, 64, NULL), PM_EINVAL);
    CHECK_STATUS(pm__analytics_new(0, 4, 4, 16, 64, &a), PM_ERANGE);
    CHECK(a == NULL);
    CHECK_STATUS(pm__analytics_new(65537, 4, 4, 16, 64, &a), PM_ERANGE);
    CHECK_STATUS(pm__analytics_new(16, 1025, 4, 16, 64, &a), PM_ERANGE);
    CHECK_STATUS(pm__analytics_new(16, 4, 1025, 16, 64, &a), PM_ERANGE);
    CHECK_STATUS(pm__analytics_new(16, 4, 4, 0, 64, &a), PM_ERANGE);
    CHECK_STATUS(pm__analytics_new(16, 4, 4, 65537, 64, &a), PM_ERANGE);
    CHECK_STATUS(pm__analytics_new(16, 4, 4, 16, 0, &a), PM_ERANGE);
    CHECK_STATUS(pm__analytics_new(16, 4, 4, 16, 65537, &a), PM_ERANGE);
    CHECK_OK(pm__analytics_new(65536, 1024, 1024, 65536, 65536, &a));
    pm__analytics_free(a);
    pm__analytics_free(NULL);
    pm__analytics_add(NULL, &rec_);

    a = mk(16, 4, 4, 16, 64);
    pm__analytics_add(a, NULL);
    pm_trace_ops_t *o = (pm_trace_ops_t *)1;
    CHECK_STATUS(pm__analytics_ops(NULL, &o), PM_EINVAL);
    CHECK(o == NULL);
    CHECK_STATUS(pm__analytics_ops(a, NULL), PM_EINVAL);
    pm_trace_list_t *l = (pm_trace_list_t *)1;
    CHECK_STATUS(pm__analytics_traces(NULL, PM_TRACES_SLOWEST, &l), PM_EINVAL);
    CHECK(l == NULL);
    CHECK_STATUS(pm__analytics_traces(a, (pm_trace_list_kind_t)0, &l), PM_EINVAL);
    CHECK_STATUS(pm__analytics_traces(a, (pm_trace_list_kind_t)3, &l), PM_EINVAL);
    CHECK_STATUS(pm__analytics_traces(a, PM_TRACES_ERRORS, NULL), PM_EINVAL);
    CHECK_EQ_U64(pm__analytics_counter(a, "nope"), UINT64_MAX);
    CHECK_EQ_U64(pm__analytics_counter(NULL, "completed"), UINT64_MAX);

    /* Public wrappers: NULL tracer. */
    o = (pm_trace_ops_t *)1;
    CHECK_STATUS(pm_tracer_ops_snapshot(NULL, &o), PM_EINVAL);
    CHECK(o == NULL);
    l = (pm_trace_list_t *)1;
    CHECK_STATUS(pm_tracer_traces(NULL, PM_TRACES_SLOWEST, &l), PM_EINVAL);
    CHECK(l == NULL);

    /* Accessors: NULL snapshots, indexes out of range. */
    double v = 0;
    CHECK_EQ_U64(pm_trace_ops_count(NULL), 0);
    CHECK(pm_trace_ops_name(NULL, 0) == NULL);
    CHECK_EQ_U64(pm_trace_ops_spans(NULL, 0), 0);
    CHECK_EQ_U64(pm_trace_ops_errors(NULL, 0), 0);
    CHECK_STATUS(pm_trace_ops_duration(NULL, 0, 0.5, &v), PM_EINVAL);
    CHECK(isnan(v));
    CHECK_STATUS(pm_trace_ops_self_time(NULL, 0, 0.5, &v), PM_EINVAL);
    CHECK(isnan(pm_trace_ops_self_total(NULL, 0)));
    pm_trace_ops_free(NULL);
    CHECK_EQ_U64(pm_trace_list_count(NULL), 0);
    CHECK(pm_trace_list_trace_id(NULL, 0) == NULL);
    CHECK(pm_trace_list_root(NULL, 0) == NULL);
    CHECK_EQ_U64(pm_trace_list_spans(NULL, 0), 0);
    CHECK(isnan(pm_trace_list_duration(NULL, 0)));
    CHECK_EQ_U64(pm_trace_list_errors(NULL, 0), 0);
    CHECK_EQ_U64(pm_trace_list_path_length(NULL, 0), 0);
    CHECK(pm_trace_list_path_name(NULL, 0, 0) == NULL);
    CHECK(isnan(pm_trace_list_path_seconds(NULL, 0, 0)));
    pm_trace_list_free(NULL);

    feed(a, 1, 1, 0, "op", 0, 5);
    o = ops(a);
    REQUIRE(pm_trace_ops_count(o) == 1);
    CHECK(pm_trace_ops_name(o, 1) == NULL);
    CHECK_EQ_U64(pm_trace_ops_spans(o, 1), 0);
    CHECK_STATUS(pm_trace_ops_duration(o, 1, 0.5, &v), PM_EINVAL);
    CHECK_STATUS(pm_trace_ops_duration(o, 0, 1.5, &v), PM_EINVAL);
    CHECK_STATUS(pm_trace_ops_duration(o, 0, NAN, &v), PM_EINVAL);
    CHECK_STATUS(pm_trace_ops_self_time(o, 0, -0.1, &v), PM_EINVAL);
    CHECK_STATUS(pm_trace_ops_duration(o, 0, 0.5, NULL), PM_EINVAL);
    CHECK(isnan(pm_trace_ops_self_total(o, 1)));
    pm_trace_ops_free(o);
    l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 1);
    CHECK(pm_trace_list_trace_id(l, 1) == NULL);
    CHECK(pm_trace_list_root(l, 1) == NULL);
    CHECK(isnan(pm_trace_list_duration(l, 1)));
    CHECK(pm_trace_list_path_name(l, 0, 1) == NULL);
    CHECK(isnan(pm_trace_list_path_seconds(l, 0, 1)));
    CHECK_EQ_U64(pm_trace_list_path_length(l, 1), 0);
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

/* ------------------------------------------------------------ through a tracer */

/* The public readers over a real tracer: spans started, ended and flushed. */
TEST(test_tracer_readers)
{
    pm_tracer_opts_t *opts;
    REQUIRE(pm_tracer_opts_new(&opts) == PM_OK);
    CHECK_OK(pm_tracer_opts_set_analytics(opts, 8, 4, 4, 16, 64));
    pm_tracer_t *t = NULL;
    CHECK_OK(pm_tracer_new(opts, &t));
    pm_tracer_opts_free(opts);
    REQUIRE(t);

    pm_trace_ops_t *o = NULL;
    CHECK_OK(pm_tracer_ops_snapshot(t, &o)); /* nothing yet */
    CHECK_EQ_U64(pm_trace_ops_count(o), 0);
    pm_trace_ops_free(o);

    for (int i = 0; i < 3; i++) {
        pm_span_t *root, *child;
        pm_trace_context_t none = {{0}, {0}, 0, 0, {0}}, ctx;
        REQUIRE(pm_span_start(t, "handle", PM_SPAN_SERVER, &none, &root) == PM_OK);
        REQUIRE(pm_span_context(root, &ctx) == PM_OK);
        REQUIRE(pm_span_start(t, "load", PM_SPAN_INTERNAL, &ctx, &child) == PM_OK);
        if (i == 1) CHECK_OK(pm_span_set_status(child, PM_SPAN_STATUS_ERROR, "boom"));
        pm_span_end(child);
        pm_span_end(root);
    }
    size_t n = 0;
    CHECK_OK(pm_tracer_flush(t, &n));
    CHECK_EQ_U64(n, 6);

    CHECK_OK(pm_tracer_ops_snapshot(t, &o));
    REQUIRE(pm_trace_ops_count(o) == 2);
    size_t h = op_index(o, "handle"), l = op_index(o, "load");
    REQUIRE(h != (size_t)-1 && l != (size_t)-1);
    CHECK_EQ_U64(pm_trace_ops_spans(o, h), 3);
    CHECK_EQ_U64(pm_trace_ops_spans(o, l), 3);
    CHECK_EQ_U64(pm_trace_ops_errors(o, l), 1);
    double v;
    CHECK_OK(pm_trace_ops_self_time(o, h, 1, &v));
    CHECK(v >= 0);
    CHECK_OK(pm_trace_ops_duration(o, l, 0.5, &v));
    CHECK(v >= 0);
    pm_trace_ops_free(o);

    pm_trace_list_t *lst = NULL;
    CHECK_OK(pm_tracer_traces(t, PM_TRACES_SLOWEST, &lst));
    REQUIRE(pm_trace_list_count(lst) == 3);
    for (size_t i = 0; i < 3; i++) {
        CHECK_STR(pm_trace_list_root(lst, i), "handle");
        CHECK_EQ_U64(pm_trace_list_spans(lst, i), 2);
        CHECK_STR(pm_trace_list_path_name(lst, i, 0), "handle");
        double sum = 0;
        for (size_t k = 0; k < pm_trace_list_path_length(lst, i); k++)
            sum += pm_trace_list_path_seconds(lst, i, k);
        CHECK_NEAR(sum, pm_trace_list_duration(lst, i), 1e-9);
        if (i) CHECK(pm_trace_list_duration(lst, i) <= pm_trace_list_duration(lst, i - 1));
    }
    pm_trace_list_free(lst);
    CHECK_OK(pm_tracer_traces(t, PM_TRACES_ERRORS, &lst));
    REQUIRE(pm_trace_list_count(lst) == 1);
    CHECK_EQ_U64(pm_trace_list_errors(lst, 0), 1);
    pm_trace_list_free(lst);
    CHECK_STATUS(pm_tracer_traces(t, (pm_trace_list_kind_t)9, &lst), PM_EINVAL);
    CHECK(lst == NULL);
    CHECK_STATUS(pm_tracer_ops_snapshot(t, NULL), PM_EINVAL);
    pm_tracer_free(t);
}

/* Zero-length spans and a root that ends before it starts (clamped). */
TEST(test_degenerate_spans)
{
    pm_trace_analytics *a = mk(16, 4, 4, 16, 64);
    feed(a, 1, 2, 1, "zero", 10, 10);
    feed(a, 1, 1, 0, "root", 0, 20);
    feed(a, 2, 1, 0, "backwards", 20, 10);
    pm_trace_ops_t *o = ops(a);
    CHECK_OP1(o, "zero", 0, 0);
    CHECK_OP1(o, "root", 20, 20);
    CHECK_OP1(o, "backwards", 0, 0);
    pm_trace_ops_free(o);
    pm_trace_list_t *l = slowest(a);
    REQUIRE(pm_trace_list_count(l) == 2);
    PATH(l, 0, {"root", 20}); /* a zero-length child is never a step */
    PATH(l, 1, {"backwards", 0});
    pm_trace_list_free(l);
    pm__analytics_free(a);
}

TEST_MAIN(TH_CASE(test_sequential_children), TH_CASE(test_overlapping_children),
          TH_CASE(test_child_past_parent), TH_CASE(test_child_outside_parent),
          TH_CASE(test_equal_end_children), TH_CASE(test_nested_grandchildren),
          TH_CASE(test_remote_parent_root), TH_CASE(test_two_local_roots),
          TH_CASE(test_op_statistics), TH_CASE(test_slowest_ordering), TH_CASE(test_error_ring),
          TH_CASE(test_assembly_overflow), TH_CASE(test_max_spans_per_trace),
          TH_CASE(test_max_ops_other), TH_CASE(test_interleaved_traces), TH_CASE(test_settle),
          TH_CASE(test_random_trees), TH_CASE(test_concurrent_readers), TH_CASE(test_bad_arguments),
          TH_CASE(test_degenerate_spans), TH_CASE(test_tracer_readers))
