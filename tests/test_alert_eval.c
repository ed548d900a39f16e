/* The expression evaluator (lib/alert_eval.c) on a scripted registry: every
 * operator and aggregation against values worked out by hand. */
#include "harness.h"
#include "internal/alert_internal.h"

#include <perfmetrics/perfmetrics.h>

#define T0 ((int64_t)1700000000 * PM__NS_PER_S)
#define S(sec) ((int64_t)(sec) * PM__NS_PER_S)

typedef struct fixture {
    pm_registry_t *r;
    pm_family_t *req, *mem, *lat;
    pm__wstore *ws;
    pm__aeval *ev;
    pm_snapshot_t *snap;
    pm__anode *node;
    char last[256]; /* the expression node was parsed from: kept while the
                       same text runs again, so EWMA state (keyed by node)
                       carries over between ticks as in the engine */
} fixture_t;

/* req{service,status}: api/200 = 90, api/500 = 10, web/200 = 45, web/500 = 5
 * mem{host}: a = 0.5, b = 0.9
 * lat (histogram): 1, 2, 3, 4 (count 4, sum 10) */
static void fx_init(fixture_t *f)
{
    memset(f, 0, sizeof *f);
    REQUIRE(pm_registry_new(NULL, &f->r) == PM_OK);
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *rl[] = {"service", "status"};
    REQUIRE(pm_family_opts_set_labels(o, rl, 2) == PM_OK);
    REQUIRE(pm_family_new(f->r, PM_TYPE_COUNTER, "req", "requests", o, &f->req) == PM_OK);
    const char *ml[] = {"host"};
    REQUIRE(pm_family_opts_set_labels(o, ml, 1) == PM_OK);
    REQUIRE(pm_family_new(f->r, PM_TYPE_GAUGE, "mem", "memory", o, &f->mem) == PM_OK);
    REQUIRE(pm_family_opts_set_labels(o, NULL, 0) == PM_OK);
    REQUIRE(pm_family_new(f->r, PM_TYPE_HISTOGRAM, "lat", "latency", o, &f->lat) == PM_OK);
    pm_family_opts_free(o);
    const char *v[4][2] = {{"api", "200"}, {"api", "500"}, {"web", "200"}, {"web", "500"}};
    const double n[4] = {90, 10, 45, 5};
    for (int i = 0; i < 4; i++) REQUIRE(pm_counter_add_labeled(f->req, v[i], 2, n[i]) == PM_OK);
    const char *a[] = {"a"}, *b[] = {"b"};
    REQUIRE(pm_gauge_set_labeled(f->mem, a, 1, 0.5) == PM_OK);
    REQUIRE(pm_gauge_set_labeled(f->mem, b, 1, 0.9) == PM_OK);
    for (int i = 1; i <= 4; i++) REQUIRE(pm_histogram_observe_labeled(f->lat, NULL, 0, i) == PM_OK);
    REQUIRE(pm__wstore_new(&pm__default_alloc, S(15), 60, 1000, &f->ws) == PM_OK);
    REQUIRE(pm__aeval_new(&pm__default_alloc, f->ws, &f->ev) == PM_OK);
}

static void fx_fini(fixture_t *f)
{
    pm__anode_free(f->node);
    pm_snapshot_release(f->snap);
    pm__aeval_free(f->ev);
    pm__wstore_free(f->ws);
    pm_registry_free(f->r);
}

/* Takes a snapshot at `now` and evaluates `expr`; the status is returned. */
static pm_status_t run_at(fixture_t *f, const char *expr, int64_t now, pm__avec *out)
{
    pm_status_t st = PM_OK;
    if (!f->node || strcmp(f->last, expr)) {
        pm__anode_free(f->node);
        f->node = NULL;
        f->last[0] = '\0';
        pm_parse_error_t *err = NULL;
        st = pm__aexpr_parse(expr, strlen(expr), PM__SRCPOS_START, &f->node, &err);
        if (st != PM_OK) {
            fprintf(stderr, "  parse of \"%s\": %s\n", expr, pm_parse_error_message(err));
            pm_parse_error_free(err);
            return st;
        }
        snprintf(f->last, sizeof f->last, "%s", expr);
    }
    pm_snapshot_release(f->snap);
    f->snap = NULL;
    if ((st = pm_snapshot_new(f->r, &f->snap)) != PM_OK) return st;
    pm__wstore_begin(f->ws, now);
    pm__aeval_begin(f->ev, f->snap, now);
    st = pm__aeval_run(f->ev, f->node, out);
    pm__wstore_end(f->ws);
    return st;
}

static pm_status_t run(fixture_t *f, const char *expr, pm__avec *out)
{
    return run_at(f, expr, T0, out);
}

/* The element whose labels render as `want` ("{a=x,b=y}", "{}" for none). */
static const pm__aelem *find(const pm__avec *v, const char *want)
{
    for (size_t i = 0; i < v->n; i++) {
        char buf[256];
        size_t k = 0;
        buf[k++] = '{';
        for (uint32_t j = 0; j < v->e[i].nlabels; j++)
            k += (size_t)snprintf(buf + k, sizeof buf - k, "%s%s=%s", j ? "," : "",
                                  v->e[i].lname[j], v->e[i].lvalue[j]);
        snprintf(buf + k, sizeof buf - k, "}");
        if (!strcmp(buf, want)) return &v->e[i];
    }
    return NULL;
}

#define CHECK_ELEM(vec, labels, value)                                                      \
    do {                                                                                   \
        const pm__aelem *el_ = find(&(vec), labels);                                       \
        if (!el_) TH_FAIL_("no element %s", labels);                                       \
        else CHECK_NEAR(el_->v, value, 1e-12 * fabs((double)(value)));                     \
    } while (0)

TEST(selectors_and_matchers)
{
    fixture_t f;
    fx_init(&f);
    pm__avec v;
    CHECK_OK(run(&f, "req", &v));
    CHECK_EQ_INT(v.n, 4);
    CHECK(!v.scalar);
    CHECK_ELEM(v, "{service=api,status=200}", 90);
    CHECK_ELEM(v, "{service=web,status=500}", 5);
    /* Counters also answer to the exposition name. */
    CHECK_OK(run(&f, "req_total", &v));
    CHECK_EQ_INT(v.n, 4);
    CHECK_OK(run(&f, "req{status=\"500\"}", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_ELEM(v, "{service=api,status=500}", 10);
    CHECK_OK(run(&f, "req{status!=\"500\"}", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_ELEM(v, "{service=web,status=200}", 45);
    CHECK_OK(run(&f, "req{status=~\"5..\"}", &v));
    CHECK_EQ_INT(v.n, 2);
    /* Regexes are anchored: "5" does not match "500". */
    CHECK_OK(run(&f, "req{status=~\"5\"}", &v));
    CHECK_EQ_INT(v.n, 0);
    CHECK_OK(run(&f, "req{status!~\"2.*\"}", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_OK(run(&f, "req{service=\"api\",status=\"500\"}", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{service=api,status=500}", 10);
    /* An absent label matches "" and nothing else. */
    CHECK_OK(run(&f, "req{zone=\"\"}", &v));
    CHECK_EQ_INT(v.n, 4);
    CHECK_OK(run(&f, "req{zone=\"x\"}", &v));
    CHECK_EQ_INT(v.n, 0);
    /* An unknown metric is an empty vector, not an error. */
    CHECK_OK(run(&f, "nothing_here", &v));
    CHECK_EQ_INT(v.n, 0);
    CHECK(!v.scalar);
    fx_fini(&f);
}

/* Selection through the per-tick equality index and the regex memo, on a
 * family larger than the memo: ids 0..19999, so "1.*" matches 1 + 10 + 100
 * + 1000 + 10000 = 11111 of them, on every run (the memo clears itself
 * when half full and must still answer right). */
TEST(selection_index_and_memo)
{
    fixture_t f;
    fx_init(&f);
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *ln[] = {"id", "parity"};
    REQUIRE(pm_family_opts_set_labels(o, ln, 2) == PM_OK);
    REQUIRE(pm_family_opts_set_max_series(o, 30000) == PM_OK);
    pm_family_t *big;
    REQUIRE(pm_family_new(f.r, PM_TYPE_GAUGE, "big", "", o, &big) == PM_OK);
    pm_family_opts_free(o);
    for (int i = 0; i < 20000; i++) {
        char id[16];
        snprintf(id, sizeof id, "%d", i);
        const char *v[] = {id, (i % 2) ? "odd" : "even"};
        REQUIRE(pm_gauge_set_labeled(big, v, 2, i) == PM_OK);
    }
    pm__avec v;
    for (int round = 0; round < 3; round++) {
        CHECK_OK(run(&f, "big{id=~\"1.*\"}", &v));
        CHECK_EQ_INT(v.n, 11111);
        CHECK_OK(run(&f, "big{id=~\"1.*\", parity=\"odd\"}", &v));
        /* the odd ones among them: 1; 11,13..19 (5); 101..199 (50);
         * 1001..1999 (500); 10001..19999 (5000) */
        CHECK_EQ_INT(v.n, 5556);
        CHECK_OK(run(&f, "big{id!~\"[0-9]*[02468]\"}", &v));
        CHECK_EQ_INT(v.n, 10000);
    }
    CHECK_OK(run(&f, "big{id=\"12345\"}", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{id=12345,parity=odd}", 12345);
    CHECK_OK(run(&f, "big{parity=\"even\", id=\"12345\"}", &v));
    CHECK_EQ_INT(v.n, 0);
    CHECK_OK(run(&f, "big{id=\"nope\"}", &v));
    CHECK_EQ_INT(v.n, 0);
    CHECK_OK(run(&f, "count(big{parity=\"even\"})", &v));
    CHECK_ELEM(v, "{}", 10000);
    CHECK_OK(run(&f, "big{__name__=\"big\", id=\"7\"}", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_OK(run(&f, "big{__name__=~\"b.g\", id=\"7\"}", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_OK(run(&f, "big{__name__=\"other\", id=\"7\"}", &v));
    CHECK_EQ_INT(v.n, 0);
    fx_fini(&f);
}

/* The overflow series carries only pm_overflow="true". */
TEST(overflow_series)
{
    fixture_t f;
    fx_init(&f);
    pm_family_opts_t *o;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    const char *ln[] = {"user"};
    REQUIRE(pm_family_opts_set_labels(o, ln, 1) == PM_OK);
    REQUIRE(pm_family_opts_set_max_series(o, 2) == PM_OK);
    pm_family_t *per;
    REQUIRE(pm_family_new(f.r, PM_TYPE_COUNTER, "per_user", "", o, &per) == PM_OK);
    pm_family_opts_free(o);
    const char *u[] = {"a", "b", "c", "d"};
    for (int i = 0; i < 4; i++) REQUIRE(pm_counter_add_labeled(per, &u[i], 1, 1) == PM_OK);
    pm__avec v;
    CHECK_OK(run(&f, "per_user", &v));
    CHECK_EQ_INT(v.n, 3);
    CHECK_ELEM(v, "{pm_overflow=true}", 2);
    CHECK_OK(run(&f, "per_user{pm_overflow=\"true\"}", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_OK(run(&f, "per_user{user=\"a\"}", &v));
    CHECK_EQ_INT(v.n, 1);
    fx_fini(&f);
}

TEST(histogram_parts)
{
    fixture_t f;
    fx_init(&f);
    pm__avec v;
    CHECK_OK(run(&f, "lat", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{}", 4);
    CHECK_OK(run(&f, "lat_count", &v));
    CHECK_ELEM(v, "{}", 4);
    CHECK_OK(run(&f, "lat_sum", &v));
    CHECK_ELEM(v, "{}", 10);
    /* lat_sum is windowed as a counter: the Prometheus mean-latency pattern.
     * Ticks every 15 s from t = 0; between ticks 2 observations of 1.5 (sum
     * +3, count +2). At t = 60 s the [1m] window holds the samples at 15..60
     * s: sums 13, 16, 19, 22 (increase 9 over 45 s) and counts 6, 8, 10, 12
     * (increase 6). The first sample is 15 s after the window start (< 1.1
     * x the 15 s spacing; the zero points, 45 x 13/9 and 45 x 6/6 s, are
     * further back), so both extrapolate by 60/45: increases 12 and 8, and
     * the ratio of the rates is 1.5, the mean of the window's observations. */
    for (int k = 0; k <= 4; k++) {
        if (k)
            for (int j = 0; j < 2; j++)
                REQUIRE(pm_histogram_observe_labeled(f.lat, NULL, 0, 1.5) == PM_OK);
        CHECK_OK(run_at(&f, "rate(lat_sum[1m]) / rate(lat_count[1m])", T0 + S(15 * k), &v));
    }
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{}", 1.5);
    CHECK_OK(run_at(&f, "increase(lat_sum[1m])", T0 + S(60), &v));
    CHECK_ELEM(v, "{}", 12.0);
    CHECK_OK(run_at(&f, "increase(lat_count[1m])", T0 + S(60), &v));
    CHECK_ELEM(v, "{}", 8.0);
    fx_fini(&f);
}

TEST(aggregations)
{
    fixture_t f;
    fx_init(&f);
    pm__avec v;
    CHECK_OK(run(&f, "sum(req)", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{}", 150);
    CHECK_OK(run(&f, "sum by (service) (req)", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_ELEM(v, "{service=api}", 100);
    CHECK_ELEM(v, "{service=web}", 50);
    CHECK_OK(run(&f, "sum(req) by (status)", &v));
    CHECK_ELEM(v, "{status=200}", 135);
    CHECK_ELEM(v, "{status=500}", 15);
    CHECK_OK(run(&f, "sum without (status) (req)", &v));
    CHECK_ELEM(v, "{service=api}", 100);
    CHECK_OK(run(&f, "count(req)", &v));
    CHECK_ELEM(v, "{}", 4);
    CHECK_OK(run(&f, "avg(req)", &v));
    CHECK_ELEM(v, "{}", 37.5);
    CHECK_OK(run(&f, "min(req)", &v));
    CHECK_ELEM(v, "{}", 5);
    CHECK_OK(run(&f, "max by (status) (req)", &v));
    CHECK_ELEM(v, "{status=200}", 90);
    CHECK_ELEM(v, "{status=500}", 10);
    /* by () collapses everything; by a missing label groups as absent. */
    CHECK_OK(run(&f, "sum by () (req)", &v));
    CHECK_ELEM(v, "{}", 150);
    CHECK_OK(run(&f, "count by (zone) (req)", &v));
    CHECK_ELEM(v, "{}", 4);
    /* Aggregating nothing gives nothing. */
    CHECK_OK(run(&f, "sum(nothing_here)", &v));
    CHECK_EQ_INT(v.n, 0);
    fx_fini(&f);
}

TEST(arithmetic)
{
    fixture_t f;
    fx_init(&f);
    pm__avec v;
    CHECK_OK(run(&f, "2 ^ 3 ^ 2", &v)); /* right-associative: 2^9 */
    CHECK(v.scalar);
    CHECK_EQ_DBL(v.s, 512);
    CHECK_OK(run(&f, "7 % 4 + 10 / 4 - 1", &v));
    CHECK_EQ_DBL(v.s, 4.5);
    CHECK_OK(run(&f, "-2 ^ 2", &v));
    CHECK_EQ_DBL(v.s, -4);
    CHECK_OK(run(&f, "mem * 100", &v));
    CHECK_ELEM(v, "{host=a}", 50);
    CHECK_ELEM(v, "{host=b}", 90);
    CHECK_OK(run(&f, "1 - mem", &v));
    CHECK_ELEM(v, "{host=b}", 1 - 0.9);
    CHECK_OK(run(&f, "-mem", &v));
    CHECK_ELEM(v, "{host=a}", -0.5);
    /* The error-ratio pattern: 10 / 100 and 5 / 50. */
    CHECK_OK(run(&f, "sum by (service) (req{status=\"500\"}) / sum by (service) (req)", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_ELEM(v, "{service=api}", 0.1);
    CHECK_ELEM(v, "{service=web}", 0.1);
    /* Vector/vector with different label sets: no match, no element. */
    CHECK_OK(run(&f, "req / mem", &v));
    CHECK_EQ_INT(v.n, 0);
    /* ignoring / on: 10 / 90 and 5 / 45; the result keeps the matched labels. */
    CHECK_OK(run(&f, "req{status=\"500\"} / ignoring (status) req{status=\"200\"}", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_ELEM(v, "{service=api}", 10.0 / 90.0);
    CHECK_ELEM(v, "{service=web}", 5.0 / 45.0);
    CHECK_OK(run(&f, "req{status=\"500\"} / on (service) req{status=\"200\"}", &v));
    CHECK_ELEM(v, "{service=api}", 10.0 / 90.0);
    /* Many-to-one is refused, not guessed. */
    CHECK_STATUS(run(&f, "req / on (service) req", &v), PM_EEXIST);
    fx_fini(&f);
}

TEST(comparisons)
{
    fixture_t f;
    fx_init(&f);
    pm__avec v;
    CHECK_OK(run(&f, "mem > 0.8", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{host=b}", 0.9);
    CHECK_OK(run(&f, "mem > bool 0.8", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_ELEM(v, "{host=a}", 0);
    CHECK_ELEM(v, "{host=b}", 1);
    /* scalar op vector keeps the vector's value */
    CHECK_OK(run(&f, "0.8 < mem", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{host=b}", 0.9);
    CHECK_OK(run(&f, "mem == 0.5", &v));
    CHECK_ELEM(v, "{host=a}", 0.5);
    CHECK_OK(run(&f, "mem != 0.5", &v));
    CHECK_ELEM(v, "{host=b}", 0.9);
    CHECK_OK(run(&f, "mem >= 0.9", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_OK(run(&f, "mem <= 0.9", &v));
    CHECK_EQ_INT(v.n, 2);
    /* Two numbers: one label-less element when it holds. */
    CHECK_OK(run(&f, "1 > 0", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{}", 1);
    CHECK_OK(run(&f, "1 < 0", &v));
    CHECK_EQ_INT(v.n, 0);
    CHECK(!v.scalar);
    CHECK_OK(run(&f, "1 < bool 0", &v));
    CHECK(v.scalar);
    CHECK_EQ_DBL(v.s, 0);
    /* vector against vector filters on the left value */
    CHECK_OK(run(&f, "req{status=\"500\"} > ignoring (status) req{status=\"200\"} / 10", &v));
    /* 10 > 9 holds for api; 5 > 4.5 holds for web */
    CHECK_EQ_INT(v.n, 2);
    CHECK_ELEM(v, "{service=api}", 10);
    fx_fini(&f);
}

TEST(set_operations)
{
    fixture_t f;
    fx_init(&f);
    pm__avec v;
    CHECK_OK(run(&f, "mem and mem > 0.8", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{host=b}", 0.9);
    CHECK_OK(run(&f, "mem unless mem > 0.8", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{host=a}", 0.5);
    CHECK_OK(run(&f, "mem > 0.8 or mem < 0.6", &v));
    CHECK_EQ_INT(v.n, 2);
    /* `or` keeps the left element when both sides have the label set */
    CHECK_OK(run(&f, "mem * 2 or mem", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_ELEM(v, "{host=a}", 1.0);
    /* on (): everything matches everything */
    CHECK_OK(run(&f, "mem and on () req", &v));
    CHECK_EQ_INT(v.n, 2);
    CHECK_OK(run(&f, "mem and on () nothing_here", &v));
    CHECK_EQ_INT(v.n, 0);
    /* A set operation with a number is refused by the parser already. */
    CHECK_STATUS(run(&f, "mem and 1", &v), PM_EPARSE);
    fx_fini(&f);
}

TEST(functions_instant)
{
    fixture_t f;
    fx_init(&f);
    pm__avec v;
    CHECK_OK(run(&f, "abs(-mem)", &v));
    CHECK_ELEM(v, "{host=b}", 0.9);
    CHECK_OK(run(&f, "abs(-3)", &v));
    CHECK(v.scalar);
    CHECK_EQ_DBL(v.s, 3);
    CHECK_OK(run(&f, "absent(nothing_here)", &v));
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{}", 1);
    CHECK_OK(run(&f, "absent(mem)", &v));
    CHECK_EQ_INT(v.n, 0);
    fx_fini(&f);
}

/* A counter growing 15 per 15 s tick: at t = 60 s the [1m] window holds
 * the samples at 15, 30, 45, 60 (values 15..60). Increase 45 over 45 s;
 * durationToStart = 15 s (< 1.1 x 15 s) and the zero point is also 15 s
 * back, so it extrapolates to 60 s: increase 60, rate 1/s. */
TEST(rate_through_the_store)
{
    fixture_t f;
    fx_init(&f);
    pm_family_t *jobs;
    REQUIRE(pm_family_new(f.r, PM_TYPE_COUNTER, "jobs", "", NULL, &jobs) == PM_OK);
    pm__avec v;
    for (int k = 0; k <= 4; k++) {
        if (k) REQUIRE(pm_counter_add_labeled(jobs, NULL, 0, 15) == PM_OK);
        CHECK_OK(run_at(&f, "rate(jobs[1m])", T0 + S(15 * k), &v));
        if (k == 0) CHECK_EQ_INT(v.n, 0); /* one sample: not enough */
    }
    CHECK_EQ_INT(v.n, 1);
    CHECK_ELEM(v, "{}", 1.0);
    CHECK_OK(run_at(&f, "increase(jobs[1m]) > 59", T0 + S(60), &v));
    CHECK_ELEM(v, "{}", 60.0);
    fx_fini(&f);
}

/* zscore_ewma against a reference EWMA computed here: alpha = 1 -
 * exp(-dt / tau) with dt = 15 s, tau = 60 s; z uses the mean and variance
 * from before the update; mean += alpha d, var = (1 - alpha)(var + alpha d^2). */
TEST(zscore_ewma_reference)
{
    fixture_t f;
    fx_init(&f);
    pm_gauge_t *g;
    REQUIRE(pm_gauge_new(f.r, "depth", "", &g) == PM_OK);
    const double alpha = 1 - exp(-15.0 / 60.0);
    double mean = 0, var = 0;
    pm__avec v;
    for (int k = 0; k < 20; k++) {
        double x = k == 19 ? 30 : (k % 2) ? 11 : 9;
        pm_gauge_set(g, x);
        CHECK_OK(run_at(&f, "zscore_ewma(depth, 1m)", T0 + S(15 * k), &v));
        if (k == 0) {
            CHECK_EQ_INT(v.n, 0);
            mean = x;
            continue;
        }
        double d = x - mean;
        if (var > 0) {
            CHECK_EQ_INT(v.n, 1);
            if (v.n) CHECK_NEAR(v.e[0].v, d / sqrt(var), 1e-9);
        } else {
            CHECK_EQ_INT(v.n, 0);
        }
        mean += alpha * d;
        var = (1 - alpha) * (var + alpha * d * d);
    }
    /* the jump to 30 from a baseline near 10 is far out */
    CHECK(v.n == 1 && v.e[0].v > 5);
    fx_fini(&f);
}

TEST(bad_inputs)
{
    fixture_t f;
    fx_init(&f);
    pm__avec v;
    CHECK_STATUS(pm__aeval_run(NULL, NULL, &v), PM_EINVAL);
    CHECK_STATUS(pm__aeval_run(f.ev, NULL, &v), PM_EINVAL);
    pm__anode num = {.kind = PM__AN_NUM, .u.num = 1};
    /* no snapshot yet */
    CHECK_STATUS(pm__aeval_run(f.ev, &num, &v), PM_EINVAL);
    CHECK_STATUS(pm__aeval_new(NULL, NULL, NULL), PM_EINVAL);
    pm__aeval_free(NULL);
    fx_fini(&f);
}

TEST_MAIN(TH_CASE(selectors_and_matchers), TH_CASE(selection_index_and_memo), TH_CASE(overflow_series), TH_CASE(histogram_parts), TH_CASE(aggregations),
          TH_CASE(arithmetic), TH_CASE(comparisons), TH_CASE(set_operations),
          TH_CASE(functions_instant), TH_CASE(rate_through_the_store),
          TH_CASE(zscore_ewma_reference), TH_CASE(bad_inputs))
