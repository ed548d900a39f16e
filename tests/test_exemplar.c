/* Exemplars: the trace context of a record made while a sampled span is
 * current (or given explicitly) lands in the right export bucket, one per
 * bucket with the latest winning; nothing without a span, with an unsampled
 * one or with exemplars off; counters opt in; the snapshot accessor's bad
 * inputs; the OpenMetrics and JSON text; concurrent recorders and snapshots
 * (run it under TSan too). A fake current span is a stack pm_span set as
 * pm__tls_span, so most cases need no tracer. */
#include "harness.h"

#include "internal/span_internal.h"
#include <perfmetrics/perfmetrics.h>

#include <pthread.h>
#include <stdatomic.h>

/* ------------------------------------------------------------- helpers */

static const uint8_t TRACE_A[16] = {0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd,
                                    0x84, 0x48, 0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c};
#define TRACE_A_HEX "0af7651916cd43dd8448eb211c80319c"

static void set_span_id(uint8_t id[8], uint64_t n)
{
    for (int i = 7; i >= 0; i--, n >>= 8) id[i] = (uint8_t)n;
}

static uint64_t span_id_of(const pm_trace_context_t *c)
{
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n = n << 8 | c->span_id[i];
    return n;
}

static pm_trace_context_t make_ctx(const uint8_t trace[16], uint64_t span, int sampled)
{
    pm_trace_context_t c;
    memset(&c, 0, sizeof c);
    memcpy(c.trace_id, trace, 16);
    set_span_id(c.span_id, span);
    c.flags = sampled ? PM_TRACE_FLAG_SAMPLED : 0;
    return c;
}

/* Makes a stack span the thread's current span (what pm_span_enter does). */
static void fake_span(struct pm_span *sp, const uint8_t trace[16], uint64_t span, int sampled)
{
    memset(sp, 0, sizeof *sp);
    sp->ctx = make_ctx(trace, span, sampled);
    sp->sampled = (uint8_t)(sampled != 0);
    pm__tls_span = sp;
}

static pm_registry_t *registry(void)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    pm_registry_opts_set_self_metrics(o, 0);
    pm_registry_new(o, &r);
    pm_registry_opts_free(o);
    return r;
}

/* exemplars: -1 leaves the default. */
static pm_family_t *family(pm_registry_t *r, pm_type_t type, const char *name, int exemplars,
                           const double *bounds, size_t nb, size_t nlabels, size_t max_series)
{
    static const char *const labels[] = {"k"};
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    if (pm_family_opts_new(&o) != PM_OK) return NULL;
    if (exemplars >= 0 && pm_family_opts_set_exemplars(o, exemplars) != PM_OK) goto out;
    if (nb && pm_family_opts_set_buckets(o, bounds, nb) != PM_OK) goto out;
    if (nlabels && pm_family_opts_set_labels(o, labels, nlabels) != PM_OK) goto out;
    if (max_series && pm_family_opts_set_max_series(o, max_series) != PM_OK) goto out;
    pm_family_new(r, type, name, "help", o, &f);
out:
    pm_family_opts_free(o);
    return f;
}

static const pm_snap_family_t *find_family(const pm_snapshot_t *s, const char *name)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!strcmp(pm_snap_family_name(f), name)) return f;
    }
    return NULL;
}

/* The first series of family `name` in snapshot s. */
static const pm_snap_series_t *first_series(const pm_snapshot_t *s, const char *name)
{
    return pm_snap_family_series(find_family(s, name), 0);
}

static char *format(pm_snapshot_t *s, pm_format_t fmt)
{
    pm_buf_t *b = NULL;
    if (pm_buf_new(&b) != PM_OK) return NULL;
    char *out = NULL;
    if (pm_format(s, fmt, b) == PM_OK) out = strdup(pm_buf_data(b));
    pm_buf_free(b);
    return out;
}

static const double BOUNDS[] = {0.1, 1, 10};
#define NB 3

/* ------------------------------------------------------------- cases */

TEST(test_bucket_placement)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *f = family(r, PM_TYPE_HISTOGRAM, "lat_seconds", -1, BOUNDS, NB, 0, 0);
    REQUIRE(f);
    pm_histogram_t *h = NULL;
    REQUIRE(pm_histogram_get(f, NULL, 0, &h) == PM_OK);
    struct pm_span sp;
    /* Each value names the bucket it must land in: the first bound >= v. */
    static const struct {
        double v;
        size_t bucket;
    } obs[] = {{-5, 0},  {0.05, 0}, {0.1, 0},      {0.1000001, 1}, {0.5, 1},   {1, 1},
               {1.5, 2}, {10, 2},   {INFINITY, 3}, {1e300, 3},     {10.001, 3}};
    size_t n = sizeof obs / sizeof obs[0];
    size_t want_span[NB + 1] = {0}; /* span id of the latest record per bucket */
    double want_v[NB + 1] = {0};
    for (size_t i = 0; i < n; i++) {
        fake_span(&sp, TRACE_A, 100 + i, 1);
        pm_histogram_observe(h, obs[i].v);
        want_span[obs[i].bucket] = 100 + i;
        want_v[obs[i].bucket] = obs[i].v;
    }
    pm__tls_span = NULL;
    double t0 = pm_wall_seconds();
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *x = first_series(s, "lat_seconds");
    REQUIRE(x);
    CHECK_EQ_U64(pm_snap_series_count(x), n);
    for (size_t b = 0; b <= NB; b++) {
        pm_trace_context_t c;
        double v = 0, t = 0;
        CHECK_OK(pm_snap_series_exemplar(x, b, &c, &v, &t));
        CHECK_EQ_U64(span_id_of(&c), want_span[b]);
        CHECK(!memcmp(c.trace_id, TRACE_A, 16));
        CHECK_EQ_INT(c.flags, PM_TRACE_FLAG_SAMPLED);
        CHECK_EQ_DBL(v, want_v[b]);
        /* OpenMetrics: within the bucket, (previous bound, bound]. */
        if (b < NB) CHECK(v <= BOUNDS[b]);
        if (b > 0) CHECK(v > BOUNDS[b - 1]);
        /* Recorded just before the snapshot, dated in wall time. */
        CHECK(t > t0 - 5 && t <= t0 + 1);
    }
    pm_snapshot_release(s);
    pm_histogram_release(h);
    pm_registry_free(r);
}

TEST(test_latest_wins_one_per_bucket)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *f = family(r, PM_TYPE_HISTOGRAM, "lat_seconds", -1, BOUNDS, NB, 0, 0);
    pm_histogram_t *h = NULL;
    REQUIRE(f && pm_histogram_get(f, NULL, 0, &h) == PM_OK);
    struct pm_span sp;
    for (uint64_t i = 1; i <= 50; i++) {
        fake_span(&sp, TRACE_A, i, 1);
        pm_histogram_observe(h, 0.25 + (double)i * 0.001); /* all in bucket 1 */
    }
    pm__tls_span = NULL;
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *x = first_series(s, "lat_seconds");
    pm_trace_context_t c;
    double v;
    CHECK_OK(pm_snap_series_exemplar(x, 1, &c, &v, NULL));
    CHECK_EQ_U64(span_id_of(&c), 50);
    CHECK_NEAR(v, 0.3, 1e-12);
    CHECK_STATUS(pm_snap_series_exemplar(x, 0, NULL, NULL, NULL), PM_ENOENT);
    CHECK_STATUS(pm_snap_series_exemplar(x, 2, NULL, NULL, NULL), PM_ENOENT);
    CHECK_STATUS(pm_snap_series_exemplar(x, 3, NULL, NULL, NULL), PM_ENOENT);
    pm_snapshot_release(s);
    /* A later snapshot still shows it (exemplars are not reset by scrapes). */
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_OK(pm_snap_series_exemplar(first_series(s, "lat_seconds"), 1, &c, NULL, NULL));
    CHECK_EQ_U64(span_id_of(&c), 50);
    pm_snapshot_release(s);
    pm_histogram_release(h);
    pm_registry_free(r);
}

/* No exemplar: no current span, an unsampled span, exemplars off, a gauge. */
TEST(test_none_without_sampled_span)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_histogram_t *h_nospan, *h_unsampled, *h_off;
    pm_family_t *f1 = family(r, PM_TYPE_HISTOGRAM, "a_seconds", -1, BOUNDS, NB, 0, 0);
    pm_family_t *f2 = family(r, PM_TYPE_HISTOGRAM, "b_seconds", -1, BOUNDS, NB, 0, 0);
    pm_family_t *f3 = family(r, PM_TYPE_HISTOGRAM, "c_seconds", 0, BOUNDS, NB, 0, 0);
    pm_family_t *f4 = family(r, PM_TYPE_GAUGE, "d", 1, NULL, 0, 0, 0);
    REQUIRE(f1 && f2 && f3 && f4);
    REQUIRE(pm_histogram_get(f1, NULL, 0, &h_nospan) == PM_OK);
    REQUIRE(pm_histogram_get(f2, NULL, 0, &h_unsampled) == PM_OK);
    REQUIRE(pm_histogram_get(f3, NULL, 0, &h_off) == PM_OK);
    pm_gauge_t *g = NULL;
    REQUIRE(pm_gauge_get(f4, NULL, 0, &g) == PM_OK);
    struct pm_span sp;
    pm__tls_span = NULL;
    pm_histogram_observe(h_nospan, 0.5);
    pm_histogram_observe_ns(h_nospan, 500000000);
    fake_span(&sp, TRACE_A, 7, 0);
    pm_histogram_observe(h_unsampled, 0.5);
    fake_span(&sp, TRACE_A, 7, 1);
    pm_histogram_observe(h_off, 0.5);
    pm_histogram_observe(h_off, NAN); /* rejected: no exemplar anywhere */
    pm_gauge_set(g, 1);
    pm__tls_span = NULL;
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const char *names[] = {"a_seconds", "b_seconds", "c_seconds"};
    for (size_t i = 0; i < 3; i++) {
        const pm_snap_series_t *x = first_series(s, names[i]);
        REQUIRE(x);
        for (size_t b = 0; b <= NB; b++)
            CHECK_STATUS(pm_snap_series_exemplar(x, b, NULL, NULL, NULL), PM_ENOENT);
    }
    CHECK_EQ_U64(pm_snap_series_count(first_series(s, "a_seconds")), 2);
    CHECK_EQ_U64(pm_snap_series_count(first_series(s, "c_seconds")), 1);
    CHECK_STATUS(pm_snap_series_exemplar(first_series(s, "d"), 0, NULL, NULL, NULL), PM_ENOENT);
    char *om = format(s, PM_FORMAT_OPENMETRICS);
    REQUIRE(om);
    CHECK(strstr(om, " # {") == NULL);
    free(om);
    pm_snapshot_release(s);
    pm_histogram_release(h_nospan);
    pm_histogram_release(h_unsampled);
    pm_histogram_release(h_off);
    pm_gauge_release(g);
    pm_registry_free(r);
}

/* Counters: off by default (pm_counter_new too); on when asked, for every
 * record path, the value being the amount added. */
TEST(test_counters_opt_in)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *fdef = family(r, PM_TYPE_COUNTER, "c_default", -1, NULL, 0, 0, 0);
    pm_family_t *fon = family(r, PM_TYPE_COUNTER, "c_on", 1, NULL, 0, 1, 0);
    REQUIRE(fdef && fon);
    pm_counter_t *cdef = NULL, *cnew = NULL, *con = NULL;
    REQUIRE(pm_counter_get(fdef, NULL, 0, &cdef) == PM_OK);
    REQUIRE(pm_counter_new(r, "c_plain", "help", &cnew) == PM_OK);
    static const char *const k1[] = {"inc"}, *const k2[] = {"u64"}, *const k3[] = {"frac"},
                             *const k4[] = {"labeled"}, *const k5[] = {"attached"};
    REQUIRE(pm_counter_get(fon, k1, 1, &con) == PM_OK);
    struct pm_span sp;
    fake_span(&sp, TRACE_A, 1, 1);
    pm_counter_inc(cdef);
    pm_counter_add(cnew, 2);
    pm_counter_inc(con); /* value 1 */
    pm_counter_t *c2 = NULL, *c3 = NULL, *c5 = NULL;
    REQUIRE(pm_counter_get(fon, k2, 1, &c2) == PM_OK);
    REQUIRE(pm_counter_get(fon, k3, 1, &c3) == PM_OK);
    REQUIRE(pm_counter_get(fon, k5, 1, &c5) == PM_OK);
    fake_span(&sp, TRACE_A, 2, 1);
    pm_counter_add_u64(c2, 7);
    fake_span(&sp, TRACE_A, 3, 1);
    pm_counter_add(c3, 0.25);
    pm_counter_add(c3, -1); /* rejected: no exemplar */
    fake_span(&sp, TRACE_A, 4, 1);
    CHECK_OK(pm_counter_add_labeled(fon, k4, 1, 3));
    /* An attached thread records into its own shard: same exemplar path. */
    REQUIRE(pm_thread_attach(r) == PM_OK);
    fake_span(&sp, TRACE_A, 5, 1);
    pm_counter_add(c5, 4);
    fake_span(&sp, TRACE_A, 6, 1);
    pm_counter_add(c5, 0.5);
    CHECK_OK(pm_thread_detach(r));
    pm__tls_span = NULL;

    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_STATUS(pm_snap_series_exemplar(first_series(s, "c_default"), 0, NULL, NULL, NULL),
                 PM_ENOENT);
    CHECK_STATUS(pm_snap_series_exemplar(first_series(s, "c_plain"), 0, NULL, NULL, NULL),
                 PM_ENOENT);
    const pm_snap_family_t *sf = find_family(s, "c_on");
    REQUIRE(sf && pm_snap_family_series_count(sf) == 5);
    static const struct {
        const char *key;
        uint64_t span;
        double v;
        double total;
    } want[] = {{"inc", 1, 1, 1},
                {"u64", 2, 7, 7},
                {"frac", 3, 0.25, 0.25},
                {"labeled", 4, 3, 3},
                {"attached", 6, 0.5, 4.5}};
    for (size_t i = 0; i < 5; i++) {
        const pm_snap_series_t *x = pm_snap_family_series(sf, i);
        REQUIRE(x);
        size_t j = 0;
        while (j < 5 && strcmp(want[j].key, pm_snap_series_label_value(x, 0))) j++;
        REQUIRE(j < 5);
        pm_trace_context_t c;
        double v;
        CHECK_OK(pm_snap_series_exemplar(x, 0, &c, &v, NULL));
        CHECK_EQ_U64(span_id_of(&c), want[j].span);
        CHECK_EQ_DBL(v, want[j].v);
        CHECK_EQ_DBL(pm_snap_series_value(x), want[j].total);
        CHECK_STATUS(pm_snap_series_exemplar(x, 1, NULL, NULL, NULL), PM_ERANGE);
    }
    pm_snapshot_release(s);
    pm_counter_release(cdef);
    pm_counter_release(con);
    pm_counter_release(c2);
    pm_counter_release(c3);
    pm_counter_release(c5);
    pm_registry_free(r);
}

/* Explicit contexts: used instead of the current span; unsampled or zero
 * ids keep nothing; NULL is the plain recorder. */
TEST(test_explicit_context)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *fh = family(r, PM_TYPE_HISTOGRAM, "h_seconds", -1, BOUNDS, NB, 0, 0);
    pm_family_t *fc = family(r, PM_TYPE_COUNTER, "c", 1, NULL, 0, 0, 0);
    pm_family_t *foff = family(r, PM_TYPE_COUNTER, "c_off", -1, NULL, 0, 0, 0);
    pm_histogram_t *h = NULL;
    pm_counter_t *c = NULL, *coff = NULL;
    REQUIRE(fh && fc && foff);
    REQUIRE(pm_histogram_get(fh, NULL, 0, &h) == PM_OK);
    REQUIRE(pm_counter_get(fc, NULL, 0, &c) == PM_OK);
    REQUIRE(pm_counter_get(foff, NULL, 0, &coff) == PM_OK);
    static const uint8_t TRACE_B[16] = {0xb0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    static const uint8_t ZERO[16] = {0};
    pm_trace_context_t ok = make_ctx(TRACE_B, 11, 1), unsampled = make_ctx(TRACE_B, 12, 0),
                       zero_trace = make_ctx(ZERO, 13, 1), zero_span = make_ctx(TRACE_B, 0, 1);
    pm__tls_span = NULL;
    pm_histogram_observe_exemplar(h, 0.05, &ok);       /* bucket 0 */
    pm_histogram_observe_exemplar(h, 0.5, &unsampled); /* bucket 1: none */
    pm_histogram_observe_exemplar(h, 5, &zero_trace);  /* bucket 2: none */
    pm_histogram_observe_exemplar(h, 5, &zero_span);   /* bucket 2: none */
    pm_histogram_observe_exemplar(h, NAN, &ok);        /* rejected */
    pm_histogram_observe_exemplar(NULL, 1, &ok);       /* ignored */
    struct pm_span sp;
    fake_span(&sp, TRACE_A, 21, 1);
    pm_histogram_observe_exemplar(h, 50, &ok);        /* bucket 3: ctx beats the span */
    pm_histogram_observe_exemplar(h, 50, &unsampled); /* ... and an unsampled one keeps none */
    pm_histogram_observe_exemplar(h, 0.7, NULL);      /* bucket 1: NULL = the current span */
    pm_counter_add_exemplar(c, 2, &ok);
    pm_counter_add_exemplar(c, -1, &ok);       /* rejected */
    pm_counter_add_exemplar(c, INFINITY, &ok); /* rejected */
    pm_counter_add_exemplar(NULL, 1, &ok);     /* ignored */
    pm_counter_add_exemplar(coff, 1, &ok);     /* family without exemplars */
    pm__tls_span = NULL;

    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *x = first_series(s, "h_seconds");
    CHECK_EQ_U64(pm_snap_series_count(x), 7);
    pm_trace_context_t got;
    double v;
    CHECK_OK(pm_snap_series_exemplar(x, 0, &got, &v, NULL));
    CHECK(!memcmp(got.trace_id, TRACE_B, 16));
    CHECK_EQ_U64(span_id_of(&got), 11);
    CHECK_EQ_DBL(v, 0.05);
    CHECK_OK(pm_snap_series_exemplar(x, 1, &got, &v, NULL));
    CHECK(!memcmp(got.trace_id, TRACE_A, 16));
    CHECK_EQ_U64(span_id_of(&got), 21);
    CHECK_EQ_DBL(v, 0.7);
    CHECK_STATUS(pm_snap_series_exemplar(x, 2, &got, &v, NULL), PM_ENOENT);
    CHECK_OK(pm_snap_series_exemplar(x, 3, &got, &v, NULL));
    CHECK_EQ_U64(span_id_of(&got), 11);
    CHECK_EQ_DBL(v, 50);
    const pm_snap_series_t *y = first_series(s, "c");
    CHECK_EQ_DBL(pm_snap_series_value(y), 2);
    CHECK_OK(pm_snap_series_exemplar(y, 0, &got, &v, NULL));
    CHECK_EQ_U64(span_id_of(&got), 11);
    CHECK_EQ_DBL(v, 2);
    CHECK_EQ_DBL(pm_snap_series_value(first_series(s, "c_off")), 1);
    CHECK_STATUS(pm_snap_series_exemplar(first_series(s, "c_off"), 0, NULL, NULL, NULL), PM_ENOENT);
    pm_snapshot_release(s);
    pm_histogram_release(h);
    pm_counter_release(c);
    pm_counter_release(coff);
    pm_registry_free(r);
}

TEST(test_bad_inputs)
{
    CHECK_STATUS(pm_family_opts_set_exemplars(NULL, 1), PM_EINVAL);
    pm_trace_context_t c;
    double v = 0, t = 0;
    memset(&c, 0xff, sizeof c);
    CHECK_STATUS(pm_snap_series_exemplar(NULL, 0, &c, &v, &t), PM_EINVAL);
    CHECK(isnan(v) && isnan(t));
    pm_trace_context_t zero;
    memset(&zero, 0, sizeof zero);
    CHECK(!memcmp(&c, &zero, sizeof c));
    CHECK_STATUS(pm_snap_series_exemplar(NULL, 0, NULL, NULL, NULL), PM_EINVAL);
    /* The explicit recorders ignore NULL handles, with or without a context. */
    pm_histogram_observe_exemplar(NULL, 1, NULL);
    pm_counter_add_exemplar(NULL, 1, NULL);

    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *fh = family(r, PM_TYPE_HISTOGRAM, "h_seconds", -1, BOUNDS, NB, 0, 0);
    pm_family_t *fg = family(r, PM_TYPE_GAUGE, "g", -1, NULL, 0, 0, 0);
    pm_family_t *fc = family(r, PM_TYPE_COUNTER, "c", 1, NULL, 0, 0, 0);
    REQUIRE(fh && fg && fc);
    pm_histogram_t *h;
    pm_gauge_t *g;
    pm_counter_t *cc;
    REQUIRE(pm_histogram_get(fh, NULL, 0, &h) == PM_OK);
    REQUIRE(pm_gauge_get(fg, NULL, 0, &g) == PM_OK);
    REQUIRE(pm_counter_get(fc, NULL, 0, &cc) == PM_OK);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *x = first_series(s, "h_seconds");
    CHECK_STATUS(pm_snap_series_exemplar(x, NB + 1, &c, &v, &t), PM_ERANGE);
    CHECK(isnan(v) && isnan(t));
    CHECK_STATUS(pm_snap_series_exemplar(x, (size_t)-1, NULL, NULL, NULL), PM_ERANGE);
    CHECK_STATUS(pm_snap_series_exemplar(x, NB, &c, &v, &t), PM_ENOENT);
    CHECK(!memcmp(&c, &zero, sizeof c) && isnan(v) && isnan(t));
    const pm_snap_series_t *y = first_series(s, "g");
    CHECK_STATUS(pm_snap_series_exemplar(y, 0, NULL, NULL, NULL), PM_ENOENT);
    CHECK_STATUS(pm_snap_series_exemplar(y, 1, NULL, NULL, NULL), PM_ERANGE);
    const pm_snap_series_t *z = first_series(s, "c");
    CHECK_STATUS(pm_snap_series_exemplar(z, 0, NULL, NULL, NULL), PM_ENOENT);
    CHECK_STATUS(pm_snap_series_exemplar(z, 1, NULL, NULL, NULL), PM_ERANGE);
    pm_snapshot_release(s);
    pm_histogram_release(h);
    pm_gauge_release(g);
    pm_counter_release(cc);
    pm_registry_free(r);
}

/* The exemplar setting is part of a family's definition: registering the
 * name again with another setting is refused; the gauge ignores it. */
TEST(test_definition)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *a = family(r, PM_TYPE_HISTOGRAM, "h_seconds", -1, NULL, 0, 0, 0);
    REQUIRE(a);
    CHECK(family(r, PM_TYPE_HISTOGRAM, "h_seconds", 1, NULL, 0, 0, 0) == a); /* = default */
    CHECK(family(r, PM_TYPE_HISTOGRAM, "h_seconds", 0, NULL, 0, 0, 0) == NULL);
    pm_histogram_t *h = NULL;
    CHECK_STATUS(pm_histogram_new(r, "h_seconds", "help", &h), PM_OK); /* default: on */
    pm_family_t *c = family(r, PM_TYPE_COUNTER, "c", -1, NULL, 0, 0, 0);
    REQUIRE(c);
    CHECK(family(r, PM_TYPE_COUNTER, "c", 0, NULL, 0, 0, 0) == c);
    CHECK(family(r, PM_TYPE_COUNTER, "c", 1, NULL, 0, 0, 0) == NULL);
    pm_family_t *g = family(r, PM_TYPE_GAUGE, "g", -1, NULL, 0, 0, 0);
    REQUIRE(g);
    CHECK(family(r, PM_TYPE_GAUGE, "g", 1, NULL, 0, 0, 0) == g);
    pm_registry_free(r);
}

/* Series with slots are removed, cleared, expire into the deferred free and
 * the registry frees the rest (ASan checks the allocation's true start is
 * what is freed). Clearing resets the overflow series' exemplars. */
TEST(test_series_life_cycle)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *fh = family(r, PM_TYPE_HISTOGRAM, "h_seconds", -1, BOUNDS, NB, 1, 2);
    pm_family_t *fc = family(r, PM_TYPE_COUNTER, "c", 1, NULL, 0, 1, 2);
    REQUIRE(fh && fc);
    struct pm_span sp;
    fake_span(&sp, TRACE_A, 5, 1);
    static const char *const keys[][1] = {{"a"}, {"b"}, {"c"}, {"d"}};
    for (size_t i = 0; i < 4; i++) { /* c and d overflow */
        CHECK_OK(pm_histogram_observe_labeled(fh, keys[i], 1, 0.5));
        CHECK_OK(pm_counter_add_labeled(fc, keys[i], 1, 1));
    }
    pm_histogram_t *held = NULL;
    REQUIRE(pm_histogram_get(fh, keys[1], 1, &held) == PM_OK);
    CHECK_OK(pm_family_remove(fh, keys[0], 1));
    CHECK_OK(pm_family_remove(fh, keys[1], 1)); /* detached: the handle still records */
    pm_histogram_observe(held, 0.05);
    pm_histogram_release(held);
    CHECK_OK(pm_family_clear(fc));
    pm__tls_span = NULL;
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_family_t *sf = find_family(s, "c");
    REQUIRE(sf && pm_snap_family_series_count(sf) == 1);
    const pm_snap_series_t *ov = pm_snap_family_series(sf, 0);
    CHECK(pm_snap_series_is_overflow(ov));
    CHECK_STATUS(pm_snap_series_exemplar(ov, 0, NULL, NULL, NULL), PM_ENOENT);
    sf = find_family(s, "h_seconds");
    REQUIRE(sf && pm_snap_family_series_count(sf) == 1); /* the overflow series */
    CHECK_OK(pm_snap_series_exemplar(pm_snap_family_series(sf, 0), 1, NULL, NULL, NULL));
    pm_snapshot_release(s);
    CHECK_OK(pm_registry_maintain(r));
    pm_registry_free(r);
}

/* A custom allocator sees every byte back: the slots live in the series
 * allocation, freed from its start. */
static _Atomic long live_allocs;
static void *count_alloc(void *user, size_t n)
{
    (void)user;
    atomic_fetch_add(&live_allocs, 1);
    return malloc(n);
}
static void count_free(void *user, void *p)
{
    (void)user;
    atomic_fetch_sub(&live_allocs, 1);
    free(p);
}

TEST(test_allocator_balance)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    REQUIRE(pm_registry_opts_new(&o) == PM_OK);
    REQUIRE(pm_registry_opts_set_allocator(o, count_alloc, count_free, NULL) == PM_OK);
    REQUIRE(pm_registry_new(o, &r) == PM_OK);
    pm_registry_opts_free(o);
    pm_family_t *fh = family(r, PM_TYPE_HISTOGRAM, "h_seconds", -1, BOUNDS, NB, 1, 0);
    pm_family_t *fc = family(r, PM_TYPE_COUNTER, "c", 1, NULL, 0, 1, 0);
    REQUIRE(fh && fc);
    static const char *const k[] = {"x"};
    pm_trace_context_t ctx = make_ctx(TRACE_A, 9, 1);
    pm_histogram_t *h;
    pm_counter_t *c;
    REQUIRE(pm_histogram_get(fh, k, 1, &h) == PM_OK);
    REQUIRE(pm_counter_get(fc, k, 1, &c) == PM_OK);
    pm_histogram_observe_exemplar(h, 3, &ctx);
    pm_counter_add_exemplar(c, 3, &ctx);
    pm_histogram_release(h);
    pm_counter_release(c);
    CHECK_OK(pm_family_remove(fc, k, 1));
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    pm_snapshot_release(s);
    pm_registry_free(r);
    CHECK_EQ_INT(atomic_load(&live_allocs), 0);
}

/* Out of memory while a snapshot copies exemplars: PM_ENOMEM and nothing
 * leaked, for every allocation that can fail; then it succeeds. */
static _Atomic long alloc_budget = -1; /* -1: unlimited */
static void *budget_alloc(void *user, size_t n)
{
    (void)user;
    if (atomic_load(&alloc_budget) >= 0 && atomic_fetch_sub(&alloc_budget, 1) <= 0) return NULL;
    return malloc(n);
}
static void budget_free(void *user, void *p)
{
    (void)user;
    free(p);
}

TEST(test_snapshot_oom)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    REQUIRE(pm_registry_opts_new(&o) == PM_OK);
    REQUIRE(pm_registry_opts_set_allocator(o, budget_alloc, budget_free, NULL) == PM_OK);
    REQUIRE(pm_registry_opts_set_self_metrics(o, 0) == PM_OK);
    REQUIRE(pm_registry_new(o, &r) == PM_OK);
    pm_registry_opts_free(o);
    pm_family_t *fh = family(r, PM_TYPE_HISTOGRAM, "h_seconds", -1, BOUNDS, NB, 1, 0);
    pm_family_t *fc = family(r, PM_TYPE_COUNTER, "c", 1, NULL, 0, 1, 0);
    REQUIRE(fh && fc);
    pm_trace_context_t ctx = make_ctx(TRACE_A, 9, 1);
    for (int i = 0; i < 40; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        const char *k[] = {key};
        pm_histogram_t *h;
        pm_counter_t *c;
        REQUIRE(pm_histogram_get(fh, k, 1, &h) == PM_OK);
        REQUIRE(pm_counter_get(fc, k, 1, &c) == PM_OK);
        pm_histogram_observe_exemplar(h, (double)i, &ctx);
        pm_counter_add_exemplar(c, 1, &ctx);
        pm_histogram_release(h);
        pm_counter_release(c);
    }
    pm_snapshot_t *s = NULL;
    long n = 0;
    for (;; n++) {
        atomic_store(&alloc_budget, n);
        pm_status_t st = pm_snapshot_new(r, &s);
        atomic_store(&alloc_budget, -1);
        if (st == PM_OK) break;
        CHECK_STATUS(st, PM_ENOMEM);
        CHECK(s == NULL);
        REQUIRE(n < 100000);
    }
    CHECK(n > 0);
    const pm_snap_family_t *sf = find_family(s, "c");
    REQUIRE(sf && pm_snap_family_series_count(sf) == 40);
    for (size_t i = 0; i < 40; i++)
        CHECK_OK(pm_snap_series_exemplar(pm_snap_family_series(sf, i), 0, NULL, NULL, NULL));
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* The text formats: OpenMetrics on the bucket holding the value and on
 * _total; none in Prometheus 0.0.4; "exemplars" in JSON. */
TEST(test_output)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *fh = family(r, PM_TYPE_HISTOGRAM, "lat_seconds", -1, BOUNDS, NB, 0, 0);
    pm_family_t *fc = family(r, PM_TYPE_COUNTER, "req", 1, NULL, 0, 1, 0);
    REQUIRE(fh && fc);
    pm_histogram_t *h;
    REQUIRE(pm_histogram_get(fh, NULL, 0, &h) == PM_OK);
    static const char *const k[] = {"a\"b"};
    pm_counter_t *c;
    REQUIRE(pm_counter_get(fc, k, 1, &c) == PM_OK);
    struct pm_span sp;
    fake_span(&sp, TRACE_A, 0xb7ad6b7169203331ull, 1);
    pm_histogram_observe(h, 0.5);
    pm_histogram_observe(h, 0.5);
    pm_histogram_observe(h, 0.25);
    pm_counter_add(c, 3);
    pm__tls_span = NULL;
    pm_histogram_observe(h, 50);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    char *om = format(s, PM_FORMAT_OPENMETRICS), *prom = format(s, PM_FORMAT_PROMETHEUS),
         *json = format(s, PM_FORMAT_JSON);
    REQUIRE(om && prom && json);
    const char *ex = " # {trace_id=\"" TRACE_A_HEX "\",span_id=\"b7ad6b7169203331\"} ";
    char line[256];
    snprintf(line, sizeof line, "lat_seconds_bucket{le=\"1.0\"} 3%s0.25 ", ex);
    CHECK_CONTAINS(om, line);
    CHECK_CONTAINS(om, "lat_seconds_bucket{le=\"0.1\"} 0\n");
    CHECK_CONTAINS(om, "lat_seconds_bucket{le=\"10.0\"} 3\n");
    CHECK_CONTAINS(om, "lat_seconds_bucket{le=\"+Inf\"} 4\n");
    snprintf(line, sizeof line, "req_total{k=\"a\\\"b\"} 3%s3 ", ex);
    CHECK_CONTAINS(om, line);
    /* Exactly two exemplars, each line ending in a wall-clock timestamp. */
    int n = 0;
    for (const char *p = strstr(om, " # {"); p; p = strstr(p + 1, " # {")) {
        n++;
        const char *eol = strchr(p, '\n');
        REQUIRE(eol);
        const char *sp2 = eol;
        while (sp2 > p && sp2[-1] != ' ') sp2--;
        double t = strtod(sp2, NULL);
        CHECK(t > 1.6e9 && t < 4.2e9);
    }
    CHECK_EQ_INT(n, 2);
    CHECK(strstr(prom, "# {") == NULL);
    CHECK(strstr(prom, TRACE_A_HEX) == NULL);
    CHECK_CONTAINS(json, "\"exemplars\":[{\"le\":1,\"value\":0.25,\"timestamp\":");
    CHECK_CONTAINS(json, "\"trace_id\":\"" TRACE_A_HEX "\",\"span_id\":\"b7ad6b7169203331\"}]");
    CHECK_CONTAINS(json, "\"value\":3,\"exemplars\":[{\"value\":3,\"timestamp\":");
    free(om);
    free(prom);
    free(json);
    pm_snapshot_release(s);
    pm_histogram_release(h);
    pm_counter_release(c);
    pm_registry_free(r);
}

/* A real tracer: the exemplar carries the current span's context. */
TEST(test_real_span)
{
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_tracer_t *t = NULL;
    REQUIRE(pm_tracer_new(NULL, &t) == PM_OK);
    pm_histogram_t *h = NULL;
    REQUIRE(pm_histogram_new(r, "work_seconds", "help", &h) == PM_OK);
    pm_span_t *span = NULL;
    REQUIRE(pm_span_start(t, "op", PM_SPAN_INTERNAL, NULL, &span) == PM_OK);
    pm_trace_context_t want;
    REQUIRE(pm_span_context(span, &want) == PM_OK);
    pm_span_t *prev = pm_span_enter(span);
    pm_histogram_observe(h, 0.03); /* default buckets: le 0.05 is index 3 */
    pm_span_exit(prev);
    pm_histogram_observe(h, 0.04); /* no span any more */
    pm_span_end(span);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *x = first_series(s, "work_seconds");
    pm_trace_context_t got;
    double v;
    CHECK(want.flags & PM_TRACE_FLAG_SAMPLED); /* the default sampler keeps every root */
    CHECK_OK(pm_snap_series_exemplar(x, 3, &got, &v, NULL));
    CHECK(!memcmp(got.trace_id, want.trace_id, 16));
    CHECK(!memcmp(got.span_id, want.span_id, 8));
    CHECK_EQ_DBL(v, 0.03);
    CHECK_STATUS(pm_snap_series_exemplar(x, 4, NULL, NULL, NULL), PM_ENOENT);
    pm_snapshot_release(s);
    pm_tracer_free(t);
    pm_registry_free(r);
}

/* ------------------------------------------------------------- concurrency */

#define CONC_THREADS 2

struct conc {
    pm_histogram_t *h;
    pm_counter_t *c;
    long n;
    int id;
    _Atomic int *go;
};

/* The span id encodes the record number i, and the value is a function of
 * i, so a reader can tell a torn exemplar from a whole one. */
static double conc_value(uint64_t i) { return (double)(i % 4) * 0.3 + 0.05; }

static void *conc_recorder(void *arg)
{
    struct conc *x = arg;
    uint8_t trace[16];
    memcpy(trace, TRACE_A, 16);
    trace[0] = (uint8_t)(0x10 + x->id);
    struct pm_span sp;
    while (!atomic_load(x->go)) {
    }
    for (long i = 1; i <= x->n; i++) {
        fake_span(&sp, trace, (uint64_t)i, 1);
        pm_histogram_observe(x->h, conc_value((uint64_t)i));
        pm_counter_add(x->c, 1);
    }
    pm__tls_span = NULL;
    return NULL;
}

static int whole(const pm_trace_context_t *c, double v)
{
    if (c->trace_id[0] != 0x10 && c->trace_id[0] != 0x11) return 0;
    if (memcmp(c->trace_id + 1, TRACE_A + 1, 15)) return 0;
    uint64_t i = span_id_of(c);
    return i >= 1 && v == conc_value(i);
}

TEST(test_concurrent_record_and_snapshot)
{
    const char *scale = getenv("PM_STRESS_SCALE");
    long n = (long)(200000 * (scale ? atof(scale) : 1.0));
    if (n < 2000) n = 2000;
    pm_registry_t *r = registry();
    REQUIRE(r);
    pm_family_t *fh = family(r, PM_TYPE_HISTOGRAM, "h_seconds", -1, BOUNDS, NB, 0, 0);
    pm_family_t *fc = family(r, PM_TYPE_COUNTER, "c", 1, NULL, 0, 0, 0);
    REQUIRE(fh && fc);
    pm_histogram_t *h;
    pm_counter_t *c;
    REQUIRE(pm_histogram_get(fh, NULL, 0, &h) == PM_OK);
    REQUIRE(pm_counter_get(fc, NULL, 0, &c) == PM_OK);
    _Atomic int go = 0;
    struct conc cx[CONC_THREADS];
    pthread_t th[CONC_THREADS];
    for (int i = 0; i < CONC_THREADS; i++) {
        cx[i] = (struct conc){h, c, n, i, &go};
        REQUIRE(pthread_create(&th[i], NULL, conc_recorder, &cx[i]) == 0);
    }
    atomic_store(&go, 1);
    long snaps = 0, seen = 0, torn = 0;
    for (;;) {
        pm_snapshot_t *s = NULL;
        REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
        snaps++;
        const pm_snap_series_t *x = first_series(s, "h_seconds");
        uint64_t count = pm_snap_series_count(x);
        for (size_t b = 0; b <= NB; b++) {
            pm_trace_context_t got;
            double v;
            if (pm_snap_series_exemplar(x, b, &got, &v, NULL) != PM_OK) continue;
            seen++;
            if (!whole(&got, v)) torn++;
            if (b < NB && !(v <= BOUNDS[b])) torn++;
            if (b > 0 && !(v > BOUNDS[b - 1])) torn++;
        }
        pm_trace_context_t got;
        double v;
        if (pm_snap_series_exemplar(first_series(s, "c"), 0, &got, &v, NULL) == PM_OK) {
            seen++;
            if (v != 1 || (got.trace_id[0] != 0x10 && got.trace_id[0] != 0x11)) torn++;
        }
        pm_snapshot_release(s);
        if (count == (uint64_t)(CONC_THREADS * n)) break;
    }
    for (int i = 0; i < CONC_THREADS; i++) pthread_join(th[i], NULL);
    CHECK_EQ_INT(torn, 0);
    CHECK(seen > 0);
    /* Exact totals: exemplars never cost an update. */
    CHECK_EQ_DBL(pm_counter_value(c), (double)(CONC_THREADS * n));
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_series_t *x = first_series(s, "h_seconds");
    CHECK_EQ_U64(pm_snap_series_count(x), (uint64_t)(CONC_THREADS * n));
    /* At rest every bucket the values reach (0.05, 0.35, 0.65, 0.95: buckets
     * 0 and 1) holds one whole exemplar. */
    for (size_t b = 0; b <= 1; b++) {
        pm_trace_context_t got;
        double v;
        CHECK_OK(pm_snap_series_exemplar(x, b, &got, &v, NULL));
        CHECK(whole(&got, v));
    }
    pm_snapshot_release(s);
    printf("  %ld snapshots during recording, %ld exemplars read\n", snaps, seen);
    pm_histogram_release(h);
    pm_counter_release(c);
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_bucket_placement), TH_CASE(test_latest_wins_one_per_bucket),
          TH_CASE(test_none_without_sampled_span), TH_CASE(test_counters_opt_in),
          TH_CASE(test_explicit_context), TH_CASE(test_bad_inputs), TH_CASE(test_definition),
          TH_CASE(test_series_life_cycle), TH_CASE(test_allocator_balance),
          TH_CASE(test_snapshot_oom), TH_CASE(test_output), TH_CASE(test_real_span),
          TH_CASE(test_concurrent_record_and_snapshot))
