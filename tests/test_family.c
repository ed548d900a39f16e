/* Families: options, registration rules, cardinality limit and overflow,
 * removal, clear, TTL, references. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

static const pm_snap_family_t *find(pm_snapshot_t *s, const char *name)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++)
        if (!strcmp(pm_snap_family_name(pm_snapshot_family(s, i)), name))
            return pm_snapshot_family(s, i);
    return NULL;
}

static double self_value(pm_registry_t *r, const char *fam, const char *family_label)
{
    pm_snapshot_t *s;
    if (pm_snapshot_new(r, &s) != PM_OK) return -1;
    double v = -1;
    const pm_snap_family_t *f = find(s, fam);
    for (size_t i = 0; f && i < pm_snap_family_series_count(f); i++) {
        const pm_snap_series_t *x = pm_snap_family_series(f, i);
        if (!strcmp(pm_snap_series_label_value(x, 0), family_label)) v = pm_snap_series_value(x);
    }
    pm_snapshot_release(s);
    return v;
}

static pm_family_t *labeled(pm_registry_t *r, pm_type_t t, const char *name, size_t max,
                            double ttl)
{
    pm_family_opts_t *o;
    if (pm_family_opts_new(&o) != PM_OK) return NULL;
    const char *ln[1] = {"id"};
    pm_family_opts_set_labels(o, ln, 1);
    if (max) pm_family_opts_set_max_series(o, max);
    if (ttl > 0) pm_family_opts_set_ttl(o, ttl);
    pm_family_t *f = NULL;
    pm_family_new(r, t, name, "help", o, &f);
    pm_family_opts_free(o);
    return f;
}

TEST(test_opts_bad_inputs)
{
    CHECK_STATUS(pm_family_opts_new(NULL), PM_EINVAL);
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    CHECK_STATUS(pm_family_opts_set_max_series(NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_family_opts_set_max_series(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_max_series(o, ((size_t)1 << 30) + 1), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_ttl(NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_family_opts_set_ttl(o, -1), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_ttl(o, NAN), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_ttl(o, INFINITY), PM_ERANGE);
    CHECK_OK(pm_family_opts_set_ttl(o, 0));
    pm_family_opts_free(o);
    pm_family_opts_free(NULL);
}

TEST(test_new_bad_inputs)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = (pm_family_t *)1;
    CHECK_STATUS(pm_family_new(NULL, PM_TYPE_GAUGE, "a", "h", NULL, &f), PM_EINVAL);
    CHECK(f == NULL);
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, NULL, "h", NULL, &f), PM_EINVAL);
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "a", "h", NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_family_new(r, (pm_type_t)0, "a", "h", NULL, &f), PM_EINVAL);
    CHECK_STATUS(pm_family_new(r, (pm_type_t)99, "a", "h", NULL, &f), PM_EINVAL);
    pm_registry_free(r);
}

TEST(test_reregistration)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *a, *b;
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "req", "Requests", NULL, &a));
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "req", "Requests", NULL, &b));
    CHECK(a == b);
    CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "req", "Requests", NULL, &b), PM_EEXIST);
    CHECK_STATUS(pm_family_new(r, PM_TYPE_COUNTER, "req", "Other", NULL, &b), PM_EEXIST);
    CHECK(labeled(r, PM_TYPE_COUNTER, "req", 0, 0) == NULL); /* labels differ */
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    CHECK_OK(pm_family_opts_set_max_series(o, 5));
    CHECK_STATUS(pm_family_new(r, PM_TYPE_COUNTER, "req", "Requests", o, &b), PM_EEXIST);
    pm_family_opts_free(o);
    pm_registry_free(r);
}

static double forty_two(void *u)
{
    (void)u;
    return 42;
}

TEST(test_callback_gauge)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    CHECK_STATUS(pm_gauge_callback_new(r, "q", "h", NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_gauge_callback_new(NULL, "q", "h", forty_two, NULL), PM_EINVAL);
    CHECK_STATUS(pm_gauge_callback_new(r, "9q", "h", forty_two, NULL), PM_EBADNAME);
    CHECK_OK(pm_gauge_callback_new(r, "queue_length", "Queue.", forty_two, NULL));
    CHECK_STATUS(pm_gauge_callback_new(r, "queue_length", "Queue.", forty_two, NULL), PM_EEXIST);
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_family_t *f = find(s, "queue_length");
    REQUIRE(f != NULL);
    CHECK_EQ_INT(pm_snap_family_series_count(f), 1);
    CHECK_EQ_DBL(pm_snap_series_value(pm_snap_family_series(f, 0)), 42);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_cardinality_limit_and_overflow)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = labeled(r, PM_TYPE_COUNTER, "tasks", 3, 0);
    REQUIRE(f != NULL);
    pm_counter_t *c[6];
    for (int i = 0; i < 6; i++) {
        char id[8];
        snprintf(id, sizeof id, "t%d", i);
        const char *v[1] = {id};
        CHECK_OK(pm_counter_get(f, v, 1, &c[i]));
        pm_counter_add_u64(c[i], (uint64_t)i + 1);
    }
    CHECK(c[3] == c[4] && c[4] == c[5]); /* all overflow */
    CHECK(c[2] != c[3]);
    CHECK_EQ_INT(pm_family_series_count(f), 4);
    CHECK_EQ_DBL(self_value(r, "perfmetrics_series_refused", "tasks"), 3);
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_family_t *sf = find(s, "tasks");
    REQUIRE(sf && pm_snap_family_series_count(sf) == 4);
    const pm_snap_series_t *ov = pm_snap_family_series(sf, 3);
    CHECK(pm_snap_series_is_overflow(ov));
    CHECK_STR(pm_snap_series_label_value(ov, 0), "");
    CHECK_EQ_DBL(pm_snap_series_value(ov), 4 + 5 + 6);
    pm_snapshot_release(s);
    /* The labeled form lands in the overflow series too. */
    const char *v[1] = {"new"};
    CHECK_OK(pm_counter_add_labeled(f, v, 1, 10));
    CHECK_EQ_DBL(pm_counter_value(c[3]), 25);
    for (int i = 0; i < 6; i++) pm_counter_release(c[i]);
    /* Removing frees a place under the limit. */
    const char *t0[1] = {"t0"};
    CHECK_OK(pm_family_remove(f, t0, 1));
    pm_counter_t *n;
    CHECK_OK(pm_counter_get(f, v, 1, &n));
    CHECK(n != c[3]);
    pm_counter_release(n);
    pm_registry_free(r);
}

TEST(test_remove_and_handles)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = labeled(r, PM_TYPE_GAUGE, "g", 0, 0);
    const char *v[1] = {"a"};
    pm_gauge_t *g;
    REQUIRE(pm_gauge_get(f, v, 1, &g) == PM_OK);
    pm_gauge_set(g, 5);
    CHECK_STATUS(pm_family_remove(NULL, v, 1), PM_EINVAL);
    CHECK_STATUS(pm_family_remove(f, v, 2), PM_ELABELCOUNT);
    CHECK_STATUS(pm_family_remove(f, NULL, 1), PM_EINVAL);
    const char *nope[1] = {"zzz"};
    CHECK_STATUS(pm_family_remove(f, nope, 1), PM_ENOENT);
    CHECK_OK(pm_family_remove(f, v, 1));
    CHECK_STATUS(pm_family_remove(f, v, 1), PM_ENOENT);
    /* The handle keeps working (detached) until released. */
    pm_gauge_set(g, 7);
    CHECK_EQ_DBL(pm_gauge_value(g), 7);
    CHECK_OK(pm_registry_maintain(r));
    CHECK_EQ_DBL(pm_gauge_value(g), 7);
    CHECK_EQ_INT(pm_family_series_count(f), 0);
    /* Getting the same labels again makes a fresh series. */
    pm_gauge_t *g2;
    REQUIRE(pm_gauge_get(f, v, 1, &g2) == PM_OK);
    CHECK(g2 != g);
    CHECK_EQ_DBL(pm_gauge_value(g2), 0);
    pm_gauge_release(g);
    pm_gauge_release(g2);
    pm_gauge_release(NULL);
    CHECK_EQ_DBL(self_value(r, "perfmetrics_series_removed", "g"), 1);
    pm_registry_free(r);
}

TEST(test_unreleased_detached_handle_freed_with_registry)
{
    /* ASan's leak check proves the detached list is freed. */
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = labeled(r, PM_TYPE_HISTOGRAM, "h", 0, 0);
    const char *v[1] = {"a"};
    pm_histogram_t *h;
    REQUIRE(pm_histogram_get(f, v, 1, &h) == PM_OK);
    pm_histogram_observe(h, 1);
    CHECK_OK(pm_family_remove(f, v, 1));
    pm_histogram_observe(h, 2);
    pm_registry_free(r);
}

TEST(test_clear)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = labeled(r, PM_TYPE_COUNTER, "c", 2, 0);
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "%d", i);
        const char *v[1] = {id};
        CHECK_OK(pm_counter_add_labeled(f, v, 1, 1));
    }
    CHECK_EQ_INT(pm_family_series_count(f), 3);
    CHECK_STATUS(pm_family_clear(NULL), PM_EINVAL);
    CHECK_OK(pm_family_clear(f));
    CHECK_EQ_INT(pm_family_series_count(f), 1); /* the overflow series stays, reset */
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    const pm_snap_family_t *sf = find(s, "c");
    REQUIRE(sf && pm_snap_family_series_count(sf) == 1);
    CHECK_EQ_DBL(pm_snap_series_value(pm_snap_family_series(sf, 0)), 0);
    pm_snapshot_release(s);
    CHECK_EQ_INT(pm_family_series_count(NULL), 0);
    pm_registry_free(r);
}

static uint64_t fake_now;
static uint64_t fake_clock(void *u)
{
    (void)u;
    return fake_now;
}

TEST(test_ttl_drops_idle_series)
{
    pm_registry_opts_t *ro;
    REQUIRE(pm_registry_opts_new(&ro) == PM_OK);
    CHECK_STATUS(pm_registry_opts_set_clock(NULL, fake_clock, NULL), PM_EINVAL);
    CHECK_OK(pm_registry_opts_set_clock(ro, fake_clock, NULL));
    fake_now = 1000000000;
    pm_registry_t *r;
    REQUIRE(pm_registry_new(ro, &r) == PM_OK);
    pm_registry_opts_free(ro);
    pm_family_t *f = labeled(r, PM_TYPE_COUNTER, "agent_steps", 0, 0.05);
    pm_family_t *g = labeled(r, PM_TYPE_GAUGE, "agent_load", 0, 0.05);
    const char *busy[1] = {"busy"}, *idle[1] = {"idle"};
    CHECK_OK(pm_counter_add_labeled(f, busy, 1, 1));
    CHECK_OK(pm_counter_add_labeled(f, idle, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(g, busy, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(g, idle, 1, 1));
    pm_snapshot_t *s;
    for (int i = 0; i < 8; i++) {
        fake_now += 20000000; /* 8 x 20 ms crosses the 0.05 s TTL */
        if (i == 1) { /* not yet expired */
            CHECK_EQ_INT(pm_family_series_count(f), 2);
        }
        CHECK_OK(pm_counter_add_labeled(f, busy, 1, 1));
        CHECK_OK(pm_gauge_set_labeled(g, busy, 1, 1)); /* same value, still activity */
        REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
        pm_snapshot_release(s);
    }
    CHECK_EQ_INT(pm_family_series_count(f), 1);
    CHECK_EQ_INT(pm_family_series_count(g), 1);
    CHECK_EQ_DBL(self_value(r, "perfmetrics_series_removed", "agent_steps"), 1);
    pm_registry_free(r);
}

TEST(test_many_series_grow_tables)
{
    pm_registry_t *r;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_family_t *f = labeled(r, PM_TYPE_COUNTER, "many", 100000, 0);
    char id[16];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "s%d", i);
        const char *v[1] = {id};
        CHECK_OK(pm_counter_add_labeled(f, v, 1, (double)i));
        if (i % 7 == 0) CHECK_OK(pm_family_remove(f, v, 1));
    }
    size_t expect = 5000 - (5000 + 6) / 7;
    CHECK_EQ_INT(pm_family_series_count(f), expect);
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof id, "s%d", i);
        const char *v[1] = {id};
        pm_counter_t *c;
        CHECK_OK(pm_counter_get(f, v, 1, &c));
        CHECK_EQ_DBL(pm_counter_value(c), i % 7 == 0 ? 0.0 : (double)i);
        pm_counter_release(c);
    }
    pm_registry_free(r);
}

/* The name-clash rule, written out plainly: two families clash when one
 * would write a sample name the other writes (name + suffix), e.g. a gauge
 * "x_total" beside a counter "x" (doc/metrics.md). */
static const char *const *ref_suffixes(pm_type_t t)
{
    static const char *const counter[] = {"", "_total", "_created", NULL};
    static const char *const gauge[] = {"", NULL};
    static const char *const histogram[] = {"", "_bucket", "_count", "_sum", "_created", NULL};
    return t == PM_TYPE_COUNTER ? counter : t == PM_TYPE_HISTOGRAM ? histogram : gauge;
}

static int ref_clash(pm_type_t t1, const char *n1, pm_type_t t2, const char *n2)
{
    for (const char *const *a = ref_suffixes(t1); *a; a++)
        for (const char *const *b = ref_suffixes(t2); *b; b++) {
            char x[64], y[64]; /* names here are under 40 characters */
            snprintf(x, sizeof x, "%.40s%s", n1, *a);
            snprintf(y, sizeof y, "%.40s%s", n2, *b);
            if (!strcmp(x, y)) return 1;
        }
    return 0;
}

/* Registration against the plain rule over every family registered before,
 * with enough families that the registry's name index grows many times:
 * same verdict for every attempt, and the snapshot lists exactly the
 * families the rule accepted. */
TEST(test_name_clashes_many_families)
{
    pm_registry_opts_t *ro;
    REQUIRE(pm_registry_opts_new(&ro) == PM_OK);
    CHECK_OK(pm_registry_opts_set_self_metrics(ro, 0));
    pm_registry_t *r;
    REQUIRE(pm_registry_new(ro, &r) == PM_OK);
    pm_registry_opts_free(ro);
    pm_family_t *f;
    enum { PAD = 3000, STEMS = 40, TRIES = 4000 };
    char name[64];
    for (int i = 0; i < PAD; i++) {
        snprintf(name, sizeof name, "pad_%d", i);
        CHECK_OK(pm_family_new(r, PM_TYPE_GAUGE, name, "h", NULL, &f));
    }
    static const char *const suf[] = {"", "_total", "_created", "_bucket", "_count", "_sum", "_x"};
    static const pm_type_t types[] = {PM_TYPE_COUNTER, PM_TYPE_GAUGE, PM_TYPE_HISTOGRAM};
    static char names[TRIES][40];
    static pm_type_t ntype[TRIES];
    size_t nreg = 0, accepted = 0, refused = 0;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int i = 0; i < TRIES; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        pm_type_t t = types[x % 3];
        snprintf(name, sizeof name, "m%u%s%s", (unsigned)(x >> 8) % STEMS, suf[(x >> 16) % 7],
                 suf[(x >> 24) % 7]);
        pm_status_t want = PM_OK;
        size_t same = SIZE_MAX;
        for (size_t j = 0; j < nreg; j++)
            if (!strcmp(names[j], name)) same = j;
        size_t n = strlen(name);
        if (t == PM_TYPE_COUNTER && n >= 6 && !strcmp(name + n - 6, "_total"))
            want = PM_EBADNAME;
        else if (same != SIZE_MAX)
            want = ntype[same] == t ? PM_OK : PM_EEXIST;
        else
            for (size_t j = 0; j < nreg && want == PM_OK; j++)
                if (ref_clash(t, name, ntype[j], names[j])) want = PM_EEXIST;
        pm_status_t got = pm_family_new(r, t, name, "h", NULL, &f);
        if (got != want)
            TH_FAIL_("attempt %d: %s of type %d: got %s, want %s", i, name, (int)t,
                     pm_status_name(got), pm_status_name(want));
        if (got == PM_OK && same == SIZE_MAX) {
            snprintf(names[nreg], sizeof names[nreg], "%s", name);
            ntype[nreg++] = t;
            accepted++;
        } else if (got == PM_EEXIST) {
            refused++;
        }
    }
    CHECK(accepted > 50 && refused > 50); /* both verdicts were exercised */
    pm_snapshot_t *s;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK_EQ_INT(pm_snapshot_family_count(s), PAD + nreg);
    for (size_t j = 0; j < nreg; j++) {
        const pm_snap_family_t *sf = find(s, names[j]);
        CHECK(sf != NULL && pm_snap_family_type(sf) == ntype[j]);
    }
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_opts_bad_inputs), TH_CASE(test_new_bad_inputs),
          TH_CASE(test_reregistration), TH_CASE(test_callback_gauge),
          TH_CASE(test_cardinality_limit_and_overflow), TH_CASE(test_remove_and_handles),
          TH_CASE(test_unreleased_detached_handle_freed_with_registry), TH_CASE(test_clear),
          TH_CASE(test_ttl_drops_idle_series), TH_CASE(test_many_series_grow_tables),
          TH_CASE(test_name_clashes_many_families))
