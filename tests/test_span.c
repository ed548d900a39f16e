/* Spans: life cycle, parents across threads, scopes, sampling, buffering,
 * limits, exporters and bad inputs. */
#include "harness.h"

#include <malloc.h>
#include <perfmetrics/perfmetrics.h>
#include <pthread.h>

struct sink {
    size_t batches, spans, max_batch;
    char names[64][32];
    uint8_t ids[64][8], parents[64][8], traces[64][16];
    int statuses[64];
    size_t nattrs[64], nevents[64];
    int fail;
};

static pm_status_t collect(const pm_span_batch_t *b, void *user)
{
    struct sink *k = user;
    size_t n = pm_span_batch_count(b);
    k->batches++;
    if (n > k->max_batch) k->max_batch = n;
    for (size_t i = 0; i < n; i++, k->spans++) {
        const pm_span_data_t *s = pm_span_batch_span(b, i);
        if (k->spans >= 64) continue;
        snprintf(k->names[k->spans], 32, "%s", pm_span_data_name(s));
        memcpy(k->ids[k->spans], pm_span_data_context(s)->span_id, 8);
        memcpy(k->traces[k->spans], pm_span_data_context(s)->trace_id, 16);
        memcpy(k->parents[k->spans], pm_span_data_parent_id(s), 8);
        k->statuses[k->spans] = pm_span_data_status(s);
        k->nattrs[k->spans] = pm_span_data_attr_count(s);
        k->nevents[k->spans] = pm_span_data_event_count(s);
    }
    return k->fail ? PM_EIO : PM_OK;
}

static int find(struct sink *k, const char *name)
{
    for (size_t i = 0; i < k->spans && i < 64; i++)
        if (!strcmp(k->names[i], name)) return (int)i;
    return -1;
}

static pm_tracer_t *tracer(pm_sampler_t smp, double ratio, size_t buffer, size_t batch)
{
    pm_tracer_opts_t *o;
    if (pm_tracer_opts_new(&o) != PM_OK) return NULL;
    pm_tracer_opts_set_sampler(o, smp, ratio);
    if (buffer) pm_tracer_opts_set_buffer(o, buffer);
    if (batch) pm_tracer_opts_set_batch(o, batch, 1.0);
    pm_tracer_t *t = NULL;
    pm_tracer_new(o, &t);
    pm_tracer_opts_free(o);
    return t;
}

TEST(test_opts_bad_inputs)
{
    CHECK_STATUS(pm_tracer_opts_new(NULL), PM_EINVAL);
    pm_tracer_opts_t *o;
    REQUIRE(pm_tracer_opts_new(&o) == PM_OK);
    CHECK_STATUS(pm_tracer_opts_set_sampler(NULL, PM_SAMPLER_ALWAYS, 1), PM_EINVAL);
    CHECK_STATUS(pm_tracer_opts_set_sampler(o, (pm_sampler_t)0, 1), PM_EINVAL);
    CHECK_STATUS(pm_tracer_opts_set_sampler(o, (pm_sampler_t)9, 1), PM_EINVAL);
    CHECK_STATUS(pm_tracer_opts_set_sampler(o, PM_SAMPLER_RATIO, 1.5), PM_ERANGE);
    CHECK_STATUS(pm_tracer_opts_set_sampler(o, PM_SAMPLER_RATIO, NAN), PM_ERANGE);
    CHECK_STATUS(pm_tracer_opts_set_buffer(o, 15), PM_ERANGE);
    CHECK_STATUS(pm_tracer_opts_set_buffer(NULL, 64), PM_EINVAL);
    CHECK_STATUS(pm_tracer_opts_set_batch(o, 0, 1), PM_ERANGE);
    CHECK_STATUS(pm_tracer_opts_set_batch(o, 10, 0), PM_ERANGE);
    CHECK_STATUS(pm_tracer_opts_set_limits(o, 2000, 1), PM_ERANGE);
    CHECK_STATUS(pm_tracer_opts_set_service(o, NULL), PM_EINVAL);
    CHECK_STATUS(pm_tracer_opts_set_service(o, "\xff"), PM_EUTF8);
    CHECK_OK(pm_tracer_opts_set_service(o, "svc"));
    CHECK_STATUS(pm_tracer_opts_set_analytics(o, 0, 1, 1, 1, 1), PM_ERANGE);
    CHECK_STATUS(pm_tracer_opts_set_registry(NULL, NULL), PM_EINVAL);
    pm_tracer_opts_free(o);
    pm_tracer_opts_free(NULL);
    CHECK_STATUS(pm_tracer_new(NULL, NULL), PM_EINVAL);
    pm_tracer_free(NULL);
}

TEST(test_span_bad_inputs)
{
    pm_tracer_t *t = tracer(PM_SAMPLER_ALWAYS, 1, 0, 0);
    REQUIRE(t);
    pm_span_t *s = (pm_span_t *)1;
    CHECK_STATUS(pm_span_start(NULL, "a", PM_SPAN_INTERNAL, NULL, &s), PM_EINVAL);
    CHECK(s == NULL);
    CHECK_STATUS(pm_span_start(t, NULL, PM_SPAN_INTERNAL, NULL, &s), PM_EINVAL);
    CHECK_STATUS(pm_span_start(t, "a", (pm_span_kind_t)0, NULL, &s), PM_EINVAL);
    CHECK_STATUS(pm_span_start(t, "a", (pm_span_kind_t)6, NULL, &s), PM_EINVAL);
    CHECK_STATUS(pm_span_start(t, "a", PM_SPAN_INTERNAL, NULL, NULL), PM_EINVAL);
    REQUIRE(pm_span_start(t, "a", PM_SPAN_SERVER, NULL, &s) == PM_OK);
    CHECK_STATUS(pm_span_set_string(s, NULL, "v"), PM_EINVAL);
    CHECK_STATUS(pm_span_set_string(s, "k", NULL), PM_EINVAL);
    CHECK_STATUS(pm_span_set_string(s, "k", "\xff"), PM_EUTF8);
    CHECK_STATUS(pm_span_set_string(NULL, "k", "v"), PM_EINVAL);
    CHECK_STATUS(pm_span_set_int(NULL, "k", 1), PM_EINVAL);
    CHECK_STATUS(pm_span_set_double(s, NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_span_set_bool(s, "\xc3", 1), PM_EUTF8);
    CHECK_STATUS(pm_span_add_event(s, NULL, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_span_add_event(s, "e", "k", NULL), PM_EINVAL);
    CHECK_STATUS(pm_span_set_status(s, (pm_span_status_t)3, NULL), PM_EINVAL);
    CHECK_STATUS(pm_span_set_status(NULL, PM_SPAN_STATUS_OK, NULL), PM_EINVAL);
    CHECK_STATUS(pm_span_context(NULL, NULL), PM_EINVAL);
    CHECK_EQ_INT(pm_span_is_sampled(NULL), 0);
    pm_span_end(s);
    pm_span_end(NULL);
    CHECK_STATUS(pm_tracer_flush(NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_tracer_start(NULL), PM_EINVAL);
    CHECK_STATUS(pm_tracer_stop(NULL), PM_EINVAL);
    CHECK_STATUS(pm_tracer_add_exporter(NULL, "x", collect, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_tracer_add_exporter(t, "", collect, NULL, NULL), PM_EUTF8);
    CHECK_STATUS(pm_tracer_add_exporter(t, "x", NULL, NULL, NULL), PM_EINVAL);
    CHECK_EQ_U64(pm_tracer_stat(NULL, PM_TRACER_STARTED), 0);
    CHECK_EQ_U64(pm_tracer_stat(t, (pm_tracer_stat_t)99), 0);
    CHECK_EQ_U64(pm_tracer_stat(t, (pm_tracer_stat_t)0), 0);
    CHECK_EQ_U64(pm_tracer_stat(NULL, PM_TRACER_TRACES_COMPLETED), 0);
    pm_tracer_free(t);
}

TEST(test_parent_child_one_thread_and_scope)
{
    pm_tracer_t *t = tracer(PM_SAMPLER_ALWAYS, 1, 0, 0);
    REQUIRE(t);
    struct sink k = {0};
    CHECK_OK(pm_tracer_add_exporter(t, "sink", collect, &k, NULL));
    CHECK_STATUS(pm_tracer_add_exporter(t, "sink", collect, &k, NULL), PM_EEXIST);
    pm_tracer_set_default(t);
    CHECK(pm_tracer_default() == t);
    CHECK(pm_span_current() == NULL);
    {
        PM_SPAN_SCOPE("task");
        pm_span_t *task = pm_span_current();
        REQUIRE(task != NULL);
        {
            PM_SPAN_SCOPE("step1");
            CHECK(pm_span_current() != task);
        }
        CHECK(pm_span_current() == task); /* restored */
        {
            PM_SPAN_SCOPE("step2");
            PM_SPAN_SCOPE("leaf");
        }
        CHECK(pm_span_current() == task);
    }
    CHECK(pm_span_current() == NULL);
    size_t n = 0;
    CHECK_OK(pm_tracer_flush(t, &n));
    CHECK_EQ_INT(n, 4);
    /* Analytics saw one trace: it completes at the first read after its root. */
    pm_trace_ops_t *ops;
    CHECK_OK(pm_tracer_ops_snapshot(t, &ops));
    pm_trace_ops_free(ops);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_TRACES_COMPLETED), 1);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_TRACES_FORCED), 0);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_SPANS_DETACHED), 0);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_SPANS_UNASSEMBLED), 0);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_SPANS_OTHER), 0);
    int task = find(&k, "task"), s1 = find(&k, "step1"), s2 = find(&k, "step2"),
        leaf = find(&k, "leaf");
    REQUIRE(task >= 0 && s1 >= 0 && s2 >= 0 && leaf >= 0);
    static const uint8_t zero[8];
    CHECK(!memcmp(k.parents[task], zero, 8));
    CHECK(!memcmp(k.parents[s1], k.ids[task], 8));
    CHECK(!memcmp(k.parents[s2], k.ids[task], 8));
    CHECK(!memcmp(k.parents[leaf], k.ids[s2], 8));
    for (int i = 0; i < 4; i++) CHECK(!memcmp(k.traces[i], k.traces[task], 16));
    pm_tracer_set_default(NULL);
    pm_tracer_free(t);
}

struct handoff {
    pm_tracer_t *t;
    pm_trace_context_t parent;
};

static void *worker(void *arg)
{
    struct handoff *h = arg;
    pm_span_t *s;
    if (pm_span_start(h->t, "worker_step", PM_SPAN_INTERNAL, &h->parent, &s) != PM_OK)
        return (void *)1;
    pm_span_t *prev = pm_span_enter(s);
    pm_span_t *child;
    if (pm_span_start(h->t, "worker_child", PM_SPAN_INTERNAL, NULL, &child) != PM_OK)
        return (void *)1;
    pm_span_end(child);
    pm_span_exit(prev);
    pm_span_end(s);
    return NULL;
}

TEST(test_explicit_parent_across_threads)
{
    pm_tracer_t *t = tracer(PM_SAMPLER_ALWAYS, 1, 0, 0);
    REQUIRE(t);
    struct sink k = {0};
    CHECK_OK(pm_tracer_add_exporter(t, "sink", collect, &k, NULL));
    pm_span_t *d;
    REQUIRE(pm_span_start(t, "dispatch", PM_SPAN_PRODUCER, NULL, &d) == PM_OK);
    struct handoff h = {t, {{0}, {0}, 0, 0, {0}}};
    CHECK_OK(pm_span_context(d, &h.parent));
    pthread_t th;
    REQUIRE(pthread_create(&th, NULL, worker, &h) == 0);
    void *rv;
    pthread_join(th, &rv);
    CHECK(rv == NULL);
    pm_span_end(d);
    CHECK_OK(pm_tracer_flush(t, NULL));
    int a = find(&k, "dispatch"), b = find(&k, "worker_step"), c = find(&k, "worker_child");
    REQUIRE(a >= 0 && b >= 0 && c >= 0);
    CHECK(!memcmp(k.parents[b], k.ids[a], 8));
    CHECK(!memcmp(k.parents[c], k.ids[b], 8));
    CHECK(!memcmp(k.traces[c], k.traces[a], 16));
    /* A context with an all-zero trace id asks for a new root. */
    pm_trace_context_t root = {{0}, {0}, 0, 0, {0}};
    pm_span_t *r1, *r2;
    CHECK_OK(pm_span_start(t, "r1", PM_SPAN_INTERNAL, NULL, &r1));
    pm_span_t *prev = pm_span_enter(r1);
    CHECK_OK(pm_span_start(t, "r2", PM_SPAN_INTERNAL, &root, &r2));
    pm_trace_context_t c1, c2;
    pm_span_context(r1, &c1);
    pm_span_context(r2, &c2);
    CHECK(memcmp(c1.trace_id, c2.trace_id, 16) != 0);
    pm_span_end(r2);
    pm_span_exit(prev);
    pm_span_end(r1);
    pm_tracer_free(t);
}

TEST(test_sampling)
{
    enum { N = 20000 };
    const double ratios[] = {0.0, 0.1, 0.5, 1.0};
    for (size_t i = 0; i < 4; i++) {
        pm_tracer_t *t = tracer(PM_SAMPLER_RATIO, ratios[i], 1 << 20, 0);
        REQUIRE(t);
        size_t sampled = 0;
        for (int j = 0; j < N; j++) {
            pm_span_t *s;
            REQUIRE(pm_span_start(t, "x", PM_SPAN_INTERNAL, NULL, &s) == PM_OK);
            sampled += (size_t)pm_span_is_sampled(s);
            pm_span_end(s);
        }
        /* Binomial: 5 standard deviations plus one. */
        double p = ratios[i], mean = p * N, sd = sqrt(N * p * (1 - p));
        if (!(fabs((double)sampled - mean) <= 5 * sd + 1))
            TH_FAIL_("ratio %g: %zu of %d sampled", p, sampled, N);
        CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_SAMPLED), sampled);
        /* Unsampled spans are not counted (no shared write on their path). */
        CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_STARTED), sampled);
        CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_ENDED), sampled);
        pm_tracer_free(t);
    }
    /* The decision is a function of the trace id: two tracers with the same
     * ratio agree on every trace (processes agree too). Parent-based follows
     * the parent's flag whatever the ratio. */
    pm_tracer_t *a = tracer(PM_SAMPLER_RATIO, 0.3, 1 << 20, 0);
    pm_tracer_t *b = tracer(PM_SAMPLER_RATIO, 0.3, 1 << 20, 0);
    pm_tracer_t *pb = tracer(PM_SAMPLER_PARENT_RATIO, 0.0, 1 << 20, 0);
    REQUIRE(a && b && pb);
    for (int j = 0; j < 2000; j++) {
        pm_span_t *s, *s2, *s3;
        REQUIRE(pm_span_start(a, "x", PM_SPAN_INTERNAL, NULL, &s) == PM_OK);
        pm_trace_context_t c;
        pm_span_context(s, &c);
        memset(c.span_id, 0x11, 8);
        pm_trace_context_t c_unsampled = c;
        c_unsampled.flags = 0;
        c.flags = PM_TRACE_FLAG_SAMPLED; /* as a parent saying "sampled" */
        REQUIRE(pm_span_start(b, "y", PM_SPAN_INTERNAL, &c_unsampled, &s2) == PM_OK);
        CHECK_EQ_INT(pm_span_is_sampled(s2), pm_span_is_sampled(s));
        REQUIRE(pm_span_start(pb, "z", PM_SPAN_INTERNAL, &c, &s3) == PM_OK);
        CHECK_EQ_INT(pm_span_is_sampled(s3), 1);
        pm_span_end(s3);
        pm_span_end(s2);
        pm_span_end(s);
    }
    pm_tracer_t *never = tracer(PM_SAMPLER_NEVER, 1, 0, 0), *always = tracer(PM_SAMPLER_ALWAYS, 0, 0, 0);
    pm_span_t *s;
    REQUIRE(never && always);
    CHECK_OK(pm_span_start(never, "n", PM_SPAN_INTERNAL, NULL, &s));
    CHECK_EQ_INT(pm_span_is_sampled(s), 0);
    CHECK_OK(pm_span_set_string(s, "k", "v")); /* no-ops on unsampled spans */
    CHECK_OK(pm_span_add_event(s, "e", NULL, NULL));
    CHECK_OK(pm_span_set_status(s, PM_SPAN_STATUS_ERROR, "x"));
    pm_span_end(s);
    CHECK_OK(pm_span_start(always, "a", PM_SPAN_INTERNAL, NULL, &s));
    CHECK_EQ_INT(pm_span_is_sampled(s), 1);
    pm_span_end(s);
    pm_tracer_free(a);
    pm_tracer_free(b);
    pm_tracer_free(pb);
    pm_tracer_free(never);
    pm_tracer_free(always);
}

TEST(test_unsampled_spans_allocate_nothing_when_warm)
{
    pm_tracer_t *t = tracer(PM_SAMPLER_NEVER, 0, 0, 0);
    REQUIRE(t);
    pm_span_t *s[40];
    for (int i = 0; i < 40; i++) REQUIRE(pm_span_start(t, "w", PM_SPAN_INTERNAL, NULL, &s[i]) == PM_OK);
    for (int i = 0; i < 40; i++) pm_span_end(s[i]); /* warm the per-thread cache */
    struct mallinfo2 before = mallinfo2();
    for (int round = 0; round < 1000; round++) {
        for (int i = 0; i < 40; i++) REQUIRE(pm_span_start(t, "w", PM_SPAN_INTERNAL, NULL, &s[i]) == PM_OK);
        for (int i = 0; i < 40; i++) pm_span_end(s[i]);
    }
    struct mallinfo2 after = mallinfo2();
    CHECK_EQ_U64(after.uordblks, before.uordblks);
    pm_tracer_free(t);
}

/* A span's memory is whole cache lines of its own, whichever thread made it
 * and whichever ended it: two threads' spans never share a line. */
struct line_job {
    pm_tracer_t *t;
    pthread_barrier_t *bar;
    pm_span_t *given[8]; /* started by the main thread, ended here */
    uintptr_t seen[64];
    size_t nseen;
};

static void *line_worker(void *arg)
{
    struct line_job *j = arg;
    for (int i = 0; i < 8; i++) pm_span_end(j->given[i]); /* into this thread's cache */
    pm_span_t *s[16];
    for (int i = 0; i < 16; i++) {
        if (pm_span_start(j->t, "w", PM_SPAN_INTERNAL, NULL, &s[i]) != PM_OK) return (void *)1;
        j->seen[j->nseen++] = (uintptr_t)s[i];
    }
    pthread_barrier_wait(j->bar); /* both workers' spans are live together */
    for (int i = 0; i < 16; i++) pm_span_end(s[i]);
    return NULL;
}

TEST(test_spans_never_share_a_cache_line)
{
    pm_tracer_t *never = tracer(PM_SAMPLER_NEVER, 0, 0, 0),
                *always = tracer(PM_SAMPLER_ALWAYS, 1, 0, 0);
    REQUIRE(never && always);
    pm_tracer_t *ts[2] = {never, always};
    for (int k = 0; k < 2; k++) {
        struct line_job j[2];
        pthread_barrier_t bar;
        REQUIRE(pthread_barrier_init(&bar, NULL, 2) == 0);
        memset(j, 0, sizeof j);
        for (int w = 0; w < 2; w++) {
            j[w].t = ts[k];
            j[w].bar = &bar;
        }
        /* Started back to back, alternately for each worker: neighbours in
         * memory, if anything is, go to different threads. */
        for (int i = 0; i < 8; i++)
            for (int w = 0; w < 2; w++)
                REQUIRE(pm_span_start(ts[k], "d", PM_SPAN_SERVER, NULL, &j[w].given[i]) == PM_OK);
        pthread_t th[2];
        for (int w = 0; w < 2; w++) REQUIRE(pthread_create(&th[w], NULL, line_worker, &j[w]) == 0);
        for (int w = 0; w < 2; w++) {
            void *rv;
            pthread_join(th[w], &rv);
            CHECK(rv == NULL);
        }
        pthread_barrier_destroy(&bar);
        /* Unsampled: the workers reused the handed-over objects (their caches
         * are LIFO); sampled: the records went to the buffer and the workers
         * took fresh ones. Either way every object starts a line, and an
         * object of one worker and one of the other are at least a span's
         * rounded-up size apart. */
        uint64_t size = k ? 1024 : 64; /* an unsampled span is one line; a record is many */
        uint64_t misaligned = 0, closest = UINT64_MAX;
        for (size_t a = 0; a < j[0].nseen; a++) {
            misaligned += j[0].seen[a] % 64 != 0;
            for (size_t b = 0; b < j[1].nseen; b++) {
                uintptr_t x = j[0].seen[a], y = j[1].seen[b];
                if (a == 0) misaligned += y % 64 != 0;
                if ((x > y ? x - y : y - x) < closest) closest = x > y ? x - y : y - x;
            }
        }
        CHECK_EQ_U64(misaligned, 0);
        if (closest < size)
            TH_FAIL_("%s spans of two threads %llu bytes apart", k ? "sampled" : "unsampled",
                     (unsigned long long)closest);
    }
    CHECK_OK(pm_tracer_flush(always, NULL));
    pm_tracer_free(never);
    pm_tracer_free(always);
}

/* Unsampled spans leave every tracer counter alone (pm_tracer_stat: they
 * are not counted), also when their attributes and events would exceed the
 * limits and when another thread ends them. */
static void *end_it(void *arg)
{
    pm_span_end(arg);
    return NULL;
}

TEST(test_unsampled_spans_count_nothing)
{
    pm_tracer_opts_t *o;
    REQUIRE(pm_tracer_opts_new(&o) == PM_OK);
    CHECK_OK(pm_tracer_opts_set_sampler(o, PM_SAMPLER_NEVER, 0));
    CHECK_OK(pm_tracer_opts_set_limits(o, 0, 0));
    pm_tracer_t *t;
    REQUIRE(pm_tracer_new(o, &t) == PM_OK);
    pm_tracer_opts_free(o);
    for (int i = 0; i < 1000; i++) {
        pm_span_t *s;
        REQUIRE(pm_span_start(t, "u", PM_SPAN_INTERNAL, NULL, &s) == PM_OK);
        CHECK_OK(pm_span_set_int(s, "over", i));
        CHECK_OK(pm_span_add_event(s, "over", NULL, NULL));
        if (i % 100 == 0) {
            pthread_t th;
            REQUIRE(pthread_create(&th, NULL, end_it, s) == 0);
            pthread_join(th, NULL);
        } else {
            pm_span_end(s);
        }
    }
    size_t n = 1;
    CHECK_OK(pm_tracer_flush(t, &n));
    CHECK_EQ_U64(n, 0);
    for (int w = PM_TRACER_STARTED; w <= PM_TRACER_SPANS_OTHER; w++)
        CHECK_EQ_U64(pm_tracer_stat(t, (pm_tracer_stat_t)w), 0);
    pm_tracer_free(t);
}

TEST(test_buffer_overflow_counts_exactly)
{
    pm_tracer_t *t = tracer(PM_SAMPLER_ALWAYS, 1, 16, 4);
    REQUIRE(t);
    struct sink k = {0};
    CHECK_OK(pm_tracer_add_exporter(t, "sink", collect, &k, NULL));
    enum { N = 1000 };
    for (int i = 0; i < N; i++) {
        pm_span_t *s;
        REQUIRE(pm_span_start(t, "burst", PM_SPAN_INTERNAL, NULL, &s) == PM_OK);
        pm_span_end(s);
    }
    uint64_t dropped = pm_tracer_stat(t, PM_TRACER_DROPPED);
    size_t n = 0;
    CHECK_OK(pm_tracer_flush(t, &n));
    CHECK(n >= 8 && n <= 64); /* one ring's capacity: this thread used one stripe */
    CHECK_EQ_U64(dropped + n, N);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_EXPORTED), n);
    CHECK_EQ_U64(k.spans, n);
    CHECK(k.max_batch <= 4); /* batches respect the configured size */
    pm_tracer_free(t);
}

TEST(test_limits_attributes_events_status)
{
    pm_tracer_opts_t *o;
    REQUIRE(pm_tracer_opts_new(&o) == PM_OK);
    CHECK_OK(pm_tracer_opts_set_limits(o, 3, 2));
    pm_tracer_t *t;
    REQUIRE(pm_tracer_new(o, &t) == PM_OK);
    pm_tracer_opts_free(o);
    struct sink k = {0};
    CHECK_OK(pm_tracer_add_exporter(t, "sink", collect, &k, NULL));
    pm_span_t *s;
    REQUIRE(pm_span_start(t, "limited", PM_SPAN_CLIENT, NULL, &s) == PM_OK);
    CHECK_OK(pm_span_set_string(s, "a", "1"));
    CHECK_OK(pm_span_set_int(s, "b", 2));
    CHECK_OK(pm_span_set_double(s, "c", 3.5));
    CHECK_OK(pm_span_set_bool(s, "a", 1)); /* replaces, does not add */
    CHECK_STATUS(pm_span_set_int(s, "d", 4), PM_ERANGE);
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CHECK_OK(pm_span_set_string(s, "c", big)); /* spills past the inline buffer */
    CHECK_OK(pm_span_add_event(s, "e1", NULL, NULL));
    CHECK_OK(pm_span_add_event(s, "e2", "k", "v"));
    CHECK_STATUS(pm_span_add_event(s, "e3", NULL, NULL), PM_ERANGE);
    CHECK_OK(pm_span_set_status(s, PM_SPAN_STATUS_ERROR, "boom"));
    pm_span_end(s);
    CHECK_OK(pm_tracer_flush(t, NULL));
    REQUIRE(k.spans == 1);
    CHECK_EQ_INT(k.nattrs[0], 3);
    CHECK_EQ_INT(k.nevents[0], 2);
    CHECK_EQ_INT(k.statuses[0], PM_SPAN_STATUS_ERROR);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_ATTRS_DROPPED), 1);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_EVENTS_DROPPED), 1);
    pm_tracer_free(t);
}

static int released;
static void on_release(void *u)
{
    (void)u;
    released++;
}

TEST(test_exporter_batches_flushed_on_shutdown)
{
    pm_tracer_t *t = tracer(PM_SAMPLER_ALWAYS, 1, 1024, 10);
    REQUIRE(t);
    static struct sink k, bad = {.fail = 1};
    CHECK_OK(pm_tracer_add_exporter(t, "sink", collect, &k, on_release));
    CHECK_OK(pm_tracer_add_exporter(t, "bad", collect, &bad, on_release));
    CHECK_OK(pm_tracer_start(t));
    CHECK_STATUS(pm_tracer_start(t), PM_ESTATE);
    for (int i = 0; i < 25; i++) {
        pm_span_t *s;
        REQUIRE(pm_span_start(t, "job", PM_SPAN_INTERNAL, NULL, &s) == PM_OK);
        pm_span_end(s);
    }
    pm_tracer_free(t); /* stops the thread and flushes: nothing is lost */
    CHECK_EQ_U64(k.spans, 25);
    CHECK(k.batches >= 3);
    CHECK(k.max_batch <= 10);
    CHECK_EQ_INT(released, 2);
}

TEST(test_red_metrics)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_tracer_opts_t *o;
    REQUIRE(pm_tracer_opts_new(&o) == PM_OK);
    CHECK_OK(pm_tracer_opts_set_registry(o, r));
    pm_tracer_t *t;
    REQUIRE(pm_tracer_new(o, &t) == PM_OK);
    pm_tracer_opts_free(o);
    for (int i = 0; i < 5; i++) {
        pm_span_t *s;
        REQUIRE(pm_span_start(t, "call", PM_SPAN_CLIENT, NULL, &s) == PM_OK);
        if (i < 2) pm_span_set_status(s, PM_SPAN_STATUS_ERROR, "x");
        pm_span_end(s);
    }
    CHECK_OK(pm_tracer_flush(t, NULL));
    pm_snapshot_t *snap;
    REQUIRE(pm_snapshot_new(r, &snap) == PM_OK);
    double spans = -1, errors = -1;
    uint64_t count = 0;
    for (size_t i = 0; i < pm_snapshot_family_count(snap); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(snap, i);
        const pm_snap_series_t *x = pm_snap_family_series(f, 0);
        if (!strcmp(pm_snap_family_name(f), "pm_spans")) spans = pm_snap_series_value(x);
        if (!strcmp(pm_snap_family_name(f), "pm_span_errors")) errors = pm_snap_series_value(x);
        if (!strcmp(pm_snap_family_name(f), "pm_span_duration_seconds")) {
            count = pm_snap_series_count(x);
            CHECK_STR(pm_snap_series_label_value(x, 0), "call");
        }
    }
    CHECK_EQ_DBL(spans, 5);
    CHECK_EQ_DBL(errors, 2);
    CHECK_EQ_U64(count, 5);
    pm_snapshot_release(snap);
    pm_tracer_free(t);
    pm_registry_free(r);
}

TEST(test_analytics_bounds_are_counted)
{
    pm_tracer_opts_t *o;
    REQUIRE(pm_tracer_opts_new(&o) == PM_OK);
    CHECK_OK(pm_tracer_opts_set_sampler(o, PM_SAMPLER_ALWAYS, 1));
    /* 2 operations, 3 spans per trace, 1 trace in assembly. */
    CHECK_OK(pm_tracer_opts_set_analytics(o, 2, 4, 4, 1, 3));
    pm_tracer_t *t;
    REQUIRE(pm_tracer_new(o, &t) == PM_OK);
    pm_tracer_opts_free(o);
    const char *names[] = {"a", "b", "c", "d", "e"};
    for (int trace = 0; trace < 2; trace++) {
        pm_span_t *root;
        REQUIRE(pm_span_start(t, "root", PM_SPAN_SERVER, NULL, &root) == PM_OK);
        pm_span_t *prev = pm_span_enter(root);
        for (int i = 0; i < 5; i++) {
            pm_span_t *c;
            REQUIRE(pm_span_start(t, names[i], PM_SPAN_INTERNAL, NULL, &c) == PM_OK);
            pm_span_end(c);
        }
        pm_span_exit(prev);
        pm_span_end(root);
        CHECK_OK(pm_tracer_flush(t, NULL));
    }
    pm_trace_ops_t *ops;
    CHECK_OK(pm_tracer_ops_snapshot(t, &ops));
    pm_trace_ops_free(ops);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_TRACES_COMPLETED), 2);
    /* 6 spans per trace, 3 kept per trace: 3 beyond the bound each time. */
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_SPANS_UNASSEMBLED), 6);
    /* a and b end first and take the two operations; c, d, e and root of both
     * traces pool as (other). */
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_SPANS_OTHER), 8);
    pm_tracer_free(t);
}

TEST_MAIN(TH_CASE(test_analytics_bounds_are_counted), TH_CASE(test_opts_bad_inputs), TH_CASE(test_span_bad_inputs),
          TH_CASE(test_parent_child_one_thread_and_scope),
          TH_CASE(test_explicit_parent_across_threads), TH_CASE(test_sampling),
          TH_CASE(test_unsampled_spans_allocate_nothing_when_warm),
          TH_CASE(test_spans_never_share_a_cache_line), TH_CASE(test_unsampled_spans_count_nothing),
          TH_CASE(test_buffer_overflow_counts_exactly), TH_CASE(test_limits_attributes_events_status),
          TH_CASE(test_exporter_batches_flushed_on_shutdown), TH_CASE(test_red_metrics))
