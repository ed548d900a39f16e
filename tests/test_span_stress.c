/* Spans started and ended on many threads while another thread flushes:
 * every span is accounted for exactly (run under TSan in CI). */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>
#include <pthread.h>
#include <stdatomic.h>

static _Atomic uint64_t exported;

static pm_status_t count(const pm_span_batch_t *b, void *user)
{
    (void)user;
    for (size_t i = 0; i < pm_span_batch_count(b); i++)
        if (pm_span_data_end_ns(pm_span_batch_span(b, i)) < pm_span_data_start_ns(pm_span_batch_span(b, i)))
            return PM_EINVAL;
    atomic_fetch_add(&exported, pm_span_batch_count(b));
    return PM_OK;
}

struct job {
    pm_tracer_t *t;
    long n;
    _Atomic(pm_span_t *) *mailbox; /* spans handed to the next thread to end */
};

static void *spanner(void *arg)
{
    struct job *j = arg;
    for (long i = 0; i < j->n; i++) {
        pm_span_t *outer, *inner;
        if (pm_span_start(j->t, "outer", PM_SPAN_SERVER, NULL, &outer) != PM_OK) return (void *)1;
        pm_span_t *prev = pm_span_enter(outer);
        if (pm_span_start(j->t, "inner", PM_SPAN_INTERNAL, NULL, &inner) != PM_OK) return (void *)1;
        pm_span_set_int(inner, "i", i);
        pm_span_set_string(inner, "kind", "stress");
        if (i % 50 == 0) pm_span_add_event(inner, "tick", NULL, NULL);
        pm_span_end(inner);
        pm_span_exit(prev);
        /* Every 8th outer span is ended by whichever thread picks it up. */
        if (i % 8 == 0) {
            pm_span_t *other = atomic_exchange(j->mailbox, outer);
            if (other) pm_span_end(other);
        } else {
            pm_span_end(outer);
        }
    }
    return NULL;
}

static _Atomic int stop;

static void *flusher(void *arg)
{
    pm_tracer_t *t = arg;
    while (!atomic_load(&stop)) pm_tracer_flush(t, NULL);
    return NULL;
}

TEST(test_many_threads_exact_accounting)
{
    const char *sc = getenv("PM_STRESS_SCALE");
    long n = (long)(20000 * (sc ? atof(sc) : 1.0));
    if (n < 500) n = 500;
    pm_tracer_opts_t *o;
    REQUIRE(pm_tracer_opts_new(&o) == PM_OK);
    CHECK_OK(pm_tracer_opts_set_sampler(o, PM_SAMPLER_PARENT_RATIO, 0.5));
    CHECK_OK(pm_tracer_opts_set_buffer(o, 256)); /* small: drops happen */
    CHECK_OK(pm_tracer_opts_set_batch(o, 64, 0.01));
    pm_tracer_t *t;
    REQUIRE(pm_tracer_new(o, &t) == PM_OK);
    pm_tracer_opts_free(o);
    CHECK_OK(pm_tracer_add_exporter(t, "count", count, NULL, NULL));
    CHECK_OK(pm_tracer_start(t));
    _Atomic(pm_span_t *) mailbox = NULL;
    enum { T = 4 };
    struct job j = {t, n, &mailbox};
    pthread_t th[T], fl;
    REQUIRE(pthread_create(&fl, NULL, flusher, t) == 0);
    for (int i = 0; i < T; i++) REQUIRE(pthread_create(&th[i], NULL, spanner, &j) == 0);
    for (int i = 0; i < T; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        CHECK(rv == NULL);
    }
    pm_span_t *last = atomic_exchange(&mailbox, NULL);
    if (last) pm_span_end(last);
    atomic_store(&stop, 1);
    pthread_join(fl, NULL);
    CHECK_OK(pm_tracer_stop(t));
    uint64_t all = 2ull * T * (uint64_t)n; /* spans this test started */
    uint64_t started = pm_tracer_stat(t, PM_TRACER_STARTED);
    uint64_t ended = pm_tracer_stat(t, PM_TRACER_ENDED);
    uint64_t sampled = pm_tracer_stat(t, PM_TRACER_SAMPLED);
    uint64_t dropped = pm_tracer_stat(t, PM_TRACER_DROPPED);
    CHECK_EQ_U64(started, sampled);
    CHECK_EQ_U64(ended, sampled); /* every sampled span ended exactly once */
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_EXPORTED) + dropped, sampled);
    CHECK_EQ_U64(atomic_load(&exported), pm_tracer_stat(t, PM_TRACER_EXPORTED));
    CHECK(sampled > all / 4 && sampled < all * 3 / 4); /* ratio 0.5 by trace id */
    pm_tracer_free(t);
}

/* Attributes and events dropped by the limits are counted by the recording
 * threads (each on its stripe's line): exact totals from many threads while
 * a flusher runs, and an unsampled tracer used at the same time counts
 * nothing. */
struct limits_job {
    pm_tracer_t *t, *never;
    long n;
};

static void *limited(void *arg)
{
    struct limits_job *j = arg;
    for (long i = 0; i < j->n; i++) {
        pm_span_t *s, *u;
        if (pm_span_start(j->t, "limited", PM_SPAN_INTERNAL, NULL, &s) != PM_OK) return (void *)1;
        if (pm_span_start(j->never, "free", PM_SPAN_INTERNAL, NULL, &u) != PM_OK) return (void *)1;
        pm_span_set_int(s, "a", i);
        pm_span_set_int(s, "b", i); /* dropped */
        pm_span_set_int(s, "c", i); /* dropped */
        pm_span_set_int(u, "b", i); /* unsampled: a no-op */
        pm_span_add_event(s, "e1", NULL, NULL);
        pm_span_add_event(s, "e2", NULL, NULL); /* dropped */
        pm_span_add_event(u, "e2", NULL, NULL);
        pm_span_end(u);
        pm_span_end(s);
    }
    return NULL;
}

TEST(test_limit_drops_counted_exactly_across_threads)
{
    const char *sc = getenv("PM_STRESS_SCALE");
    long n = (long)(20000 * (sc ? atof(sc) : 1.0));
    if (n < 500) n = 500;
    pm_tracer_opts_t *o;
    REQUIRE(pm_tracer_opts_new(&o) == PM_OK);
    CHECK_OK(pm_tracer_opts_set_sampler(o, PM_SAMPLER_ALWAYS, 1));
    CHECK_OK(pm_tracer_opts_set_limits(o, 1, 1));
    CHECK_OK(pm_tracer_opts_set_buffer(o, 256));
    pm_tracer_t *t, *never;
    REQUIRE(pm_tracer_new(o, &t) == PM_OK);
    CHECK_OK(pm_tracer_opts_set_sampler(o, PM_SAMPLER_NEVER, 0));
    REQUIRE(pm_tracer_new(o, &never) == PM_OK);
    pm_tracer_opts_free(o);
    atomic_store(&stop, 0);
    enum { T = 4 };
    struct limits_job j = {t, never, n};
    pthread_t th[T], fl;
    REQUIRE(pthread_create(&fl, NULL, flusher, t) == 0);
    for (int i = 0; i < T; i++) REQUIRE(pthread_create(&th[i], NULL, limited, &j) == 0);
    for (int i = 0; i < T; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        CHECK(rv == NULL);
    }
    atomic_store(&stop, 1);
    pthread_join(fl, NULL);
    CHECK_OK(pm_tracer_flush(t, NULL));
    uint64_t spans = (uint64_t)T * (uint64_t)n;
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_SAMPLED), spans);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_ENDED), spans);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_EXPORTED) + pm_tracer_stat(t, PM_TRACER_DROPPED),
                 spans);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_ATTRS_DROPPED), 2 * spans);
    CHECK_EQ_U64(pm_tracer_stat(t, PM_TRACER_EVENTS_DROPPED), spans);
    for (int w = PM_TRACER_STARTED; w <= PM_TRACER_SPANS_OTHER; w++)
        CHECK_EQ_U64(pm_tracer_stat(never, (pm_tracer_stat_t)w), 0);
    pm_tracer_free(t);
    pm_tracer_free(never);
}

TEST_MAIN(TH_CASE(test_many_threads_exact_accounting),
          TH_CASE(test_limit_drops_counted_exactly_across_threads))
