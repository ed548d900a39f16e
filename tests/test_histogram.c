/* Histograms: the recording API (pm_histogram_new/get/release/observe/
 * observe_ns/observe_labeled), the histogram family options (buckets, range),
 * and what a snapshot reads back: exact cumulative counts at every export
 * bound (values exactly at, one ulp below and one ulp above each bound, bounds
 * outside the fine range and negative ones), count, sum, min, max, mean,
 * infinities, and per-stripe copies recorded from several threads.
 * Output formats are tested elsewhere (test_format). */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include "internal/pm_internal.h" /* white-box: per-stripe copy pointers */

#include <float.h>
#include <math.h>
#include <pthread.h>

/* Exact equality that also holds for equal infinities (CHECK_EQ_DBL subtracts). */
#define CHECK_SAME_DBL(a, b)                                                                       \
    do {                                                                                           \
        double sd_a_ = (double)(a), sd_b_ = (double)(b);                                           \
        if (!(sd_a_ == sd_b_ || (isnan(sd_a_) && isnan(sd_b_))))                                   \
            TH_FAIL_("%s == %s: %.17g != %.17g", #a, #b, sd_a_, sd_b_);                            \
    } while (0)

/* The quantile error bound, with room for the rounding of the bucket value:
 * a value at a bucket's lower edge errs by exactly 1/129 in real arithmetic. */
#define REL_BOUND (1.0 / 129 + 1e-12)

/* ------------------------------------------------------------ helpers */

static pm_registry_t *new_registry(unsigned stripes)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    if (stripes && pm_registry_opts_set_stripes(o, stripes) != PM_OK) {
        pm_registry_opts_free(o);
        return NULL;
    }
    if (pm_registry_new(o, &r) != PM_OK) r = NULL;
    pm_registry_opts_free(o);
    return r;
}

static const pm_snap_family_t *find_family(const pm_snapshot_t *s, const char *name)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), name) == 0) return f;
    }
    return NULL;
}

/* The series whose first label value is v0, or the first series if v0 is NULL. */
static const pm_snap_series_t *find_series(const pm_snap_family_t *f, const char *v0)
{
    for (size_t i = 0; i < pm_snap_family_series_count(f); i++) {
        const pm_snap_series_t *se = pm_snap_family_series(f, i);
        if (!v0 || strcmp(pm_snap_series_label_value(se, 0), v0) == 0) return se;
    }
    return NULL;
}

/* perfmetrics_values_rejected{family=name}: NaN observations dropped. */
static double rejected_of(const pm_snapshot_t *s, const char *family)
{
    const pm_snap_series_t *se = find_series(find_family(s, "perfmetrics_values_rejected"), family);
    return se ? pm_snap_series_value(se) : -1;
}

/* A histogram family with the given bounds (NULL: default) and range (0,0: default). */
static pm_family_t *hist_family(pm_registry_t *r, const char *name, const double *bounds, size_t nb,
                                double lowest, double highest, const char *const *labels,
                                size_t nlabels)
{
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    if (pm_family_opts_new(&o) != PM_OK) return NULL;
    int ok = (!bounds || pm_family_opts_set_buckets(o, bounds, nb) == PM_OK) &&
             (lowest == 0 || pm_family_opts_set_range(o, lowest, highest) == PM_OK) &&
             (!nlabels || pm_family_opts_set_labels(o, labels, nlabels) == PM_OK) &&
             pm_family_new(r, PM_TYPE_HISTOGRAM, name, "Test histogram.", o, &f) == PM_OK;
    pm_family_opts_free(o);
    return ok ? f : NULL;
}

/* Checks every cumulative bucket of `se` against a count of `vals` <= bound,
 * the +Inf bucket against the count, and that the snapshot's bounds are `bounds`. */
static void check_cumulative(const pm_snap_family_t *sf, const pm_snap_series_t *se,
                             const double *bounds, size_t nb, const double *vals, size_t nv,
                             int line)
{
    if (pm_snap_family_bucket_count(sf) != nb) {
        TH_FAIL_("(line %d) bucket count %zu, want %zu", line, pm_snap_family_bucket_count(sf), nb);
        return;
    }
    for (size_t k = 0; k < nb; k++) {
        if (pm_snap_family_bucket_bound(sf, k) != bounds[k])
            TH_FAIL_("(line %d) bound %zu is %.17g, want %.17g", line, k,
                     pm_snap_family_bucket_bound(sf, k), bounds[k]);
        uint64_t want = 0;
        for (size_t i = 0; i < nv; i++)
            if (vals[i] <= bounds[k]) want++;
        uint64_t got = pm_snap_series_bucket_cumulative(se, k);
        if (got != want)
            TH_FAIL_("(line %d) le=%.17g: cumulative %llu, want %llu", line, bounds[k],
                     (unsigned long long)got, (unsigned long long)want);
    }
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, nb), nv);
    CHECK_EQ_U64(pm_snap_series_count(se), nv);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, nb + 1), 0); /* out of range */
}

/* Values exactly at, one ulp below and one ulp above every bound, plus extras. */
static size_t around_bounds(const double *bounds, size_t nb, const double *extra, size_t ne,
                            double *out)
{
    size_t n = 0;
    for (size_t k = 0; k < nb; k++) {
        out[n++] = bounds[k];
        out[n++] = nextafter(bounds[k], -INFINITY);
        out[n++] = nextafter(bounds[k], INFINITY);
    }
    for (size_t i = 0; i < ne; i++) out[n++] = extra[i];
    return n;
}

static const double default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NDEFAULT (sizeof default_bounds / sizeof default_bounds[0])

/* ------------------------------------------------------------ API bad inputs */

TEST(test_new_bad_inputs)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_histogram_t *h = (pm_histogram_t *)(uintptr_t)1;
    CHECK_STATUS(pm_histogram_new(NULL, "a_seconds", "", &h), PM_EINVAL);
    CHECK(h == NULL);
    CHECK_STATUS(pm_histogram_new(r, "a_seconds", "", NULL), PM_EINVAL);
    h = (pm_histogram_t *)(uintptr_t)1;
    CHECK_STATUS(pm_histogram_new(r, NULL, "", &h), PM_EINVAL);
    CHECK(h == NULL);
    h = (pm_histogram_t *)(uintptr_t)1;
    CHECK_STATUS(pm_histogram_new(r, "1bad", "", &h), PM_EBADNAME);
    CHECK(h == NULL);
    CHECK_STATUS(pm_histogram_new(r, "bad-name", "", &h), PM_EBADNAME);
    CHECK_STATUS(pm_histogram_new(r, "", "", &h), PM_EBADNAME);
    CHECK_STATUS(pm_histogram_new(r, "perfmetrics_mine", "", &h), PM_EBADNAME);
    CHECK_STATUS(pm_histogram_new(r, "a_seconds", "\xff", &h), PM_EUTF8);

    /* The same name and definition twice gives the same series. */
    pm_histogram_t *h1 = NULL, *h2 = NULL;
    CHECK_OK(pm_histogram_new(r, "a_seconds", "Help.", &h1));
    CHECK_OK(pm_histogram_new(r, "a_seconds", "Help.", &h2));
    CHECK(h1 != NULL && h1 == h2);
    /* Another definition under that name is refused. */
    CHECK_STATUS(pm_histogram_new(r, "a_seconds", "Other help.", &h), PM_EEXIST);
    pm_counter_t *c = NULL;
    CHECK_STATUS(pm_counter_new(r, "a_seconds", "Help.", &c), PM_EEXIST);
    /* Releasing the convenience handle is harmless: it stays valid. */
    pm_histogram_release(h1);
    pm_histogram_observe(h1, 1.0);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    CHECK_EQ_U64(pm_snap_series_count(find_series(find_family(s, "a_seconds"), NULL)), 1);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_get_bad_inputs)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    static const char *const lbl[] = {"route", "code"};
    pm_family_t *f = hist_family(r, "req_seconds", NULL, 0, 0, 0, lbl, 2);
    REQUIRE(f);
    pm_family_t *cf = NULL;
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "reqs", "", NULL, &cf));
    pm_family_t *gf = NULL;
    CHECK_OK(pm_family_new(r, PM_TYPE_GAUGE, "depth", "", NULL, &gf));

    const char *good[] = {"/a", "200"};
    const char *bad_utf8[] = {"/a", "\xc3\x28"};
    const char *overlong[] = {"\xc0\xaf", "200"};
    const char *surrogate[] = {"\xed\xa0\x80", "200"};
    const char *with_null[] = {"/a", NULL};
    pm_histogram_t *h = (pm_histogram_t *)(uintptr_t)1;

#define GET_FAILS(fam, vals, n, want)                                                              \
    do {                                                                                           \
        h = (pm_histogram_t *)(uintptr_t)1;                                                        \
        CHECK_STATUS(pm_histogram_get((fam), (vals), (n), &h), (want));                            \
        CHECK(h == NULL);                                                                          \
    } while (0)
    CHECK_STATUS(pm_histogram_get(f, good, 2, NULL), PM_EINVAL);
    GET_FAILS(NULL, good, 2, PM_EINVAL);
    GET_FAILS(cf, NULL, 0, PM_ETYPE);
    GET_FAILS(gf, NULL, 0, PM_ETYPE);
    GET_FAILS(f, good, 1, PM_ELABELCOUNT);
    GET_FAILS(f, good, 3, PM_ELABELCOUNT);
    GET_FAILS(f, NULL, 0, PM_ELABELCOUNT);
    GET_FAILS(f, NULL, 2, PM_EINVAL);
    GET_FAILS(f, with_null, 2, PM_EINVAL);
    GET_FAILS(f, bad_utf8, 2, PM_EUTF8);
    GET_FAILS(f, overlong, 2, PM_EUTF8);
    GET_FAILS(f, surrogate, 2, PM_EUTF8);
    char *huge = malloc(5000);
    REQUIRE(huge);
    memset(huge, 'x', 4999);
    huge[4999] = 0;
    const char *too_long[] = {huge, "200"};
    GET_FAILS(f, too_long, 2, PM_ERANGE);
    free(huge);
#undef GET_FAILS
    CHECK_EQ_U64(pm_family_series_count(f), 0); /* no partial state */

    /* A good look-up, twice: same handle, one series. UTF-8 is any UTF-8. */
    const char *utf8[] = {"/caf\xc3\xa9", "\xf0\x9f\x98\x80"};
    pm_histogram_t *a = NULL, *b = NULL;
    CHECK_OK(pm_histogram_get(f, utf8, 2, &a));
    CHECK_OK(pm_histogram_get(f, utf8, 2, &b));
    CHECK(a != NULL && a == b);
    CHECK_EQ_U64(pm_family_series_count(f), 1);
    pm_histogram_observe(a, 0.5);
    pm_histogram_release(b);
    pm_histogram_observe(a, 0.5); /* a still holds a reference */
    pm_histogram_release(a);
    pm_histogram_release(NULL); /* no-op */

    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_series_t *se = find_series(find_family(s, "req_seconds"), "/caf\xc3\xa9");
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), 2);
    CHECK_STR(pm_snap_series_label_value(se, 1), "\xf0\x9f\x98\x80");
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_observe_null_ignored)
{
    pm_histogram_observe(NULL, 1.0);
    pm_histogram_observe(NULL, NAN);
    pm_histogram_observe_ns(NULL, 1000);
    pm_histogram_release(NULL);
    CHECK_STATUS(pm_histogram_observe_labeled(NULL, NULL, 0, 1.0), PM_EINVAL);
}

TEST(test_nan_rejected_and_counted)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "nan_seconds", "", &h));
    static const char *const lbl[] = {"k"};
    pm_family_t *f = hist_family(r, "nan_labeled_seconds", NULL, 0, 0, 0, lbl, 1);
    REQUIRE(h && f);
    const char *v[] = {"x"};

    pm_histogram_observe(h, NAN);
    pm_histogram_observe(h, -NAN);
    pm_histogram_observe(h, 1.0);
    CHECK_STATUS(pm_histogram_observe_labeled(f, v, 1, NAN), PM_ERANGE);
    CHECK_OK(pm_histogram_observe_labeled(f, v, 1, 2.0));

    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    REQUIRE(s);
    const pm_snap_series_t *se = find_series(find_family(s, "nan_seconds"), NULL);
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), 1);
    CHECK_SAME_DBL(pm_snap_series_sum(se), 1.0);
    CHECK_SAME_DBL(pm_snap_series_min(se), 1.0);
    CHECK_SAME_DBL(pm_snap_series_max(se), 1.0);
    CHECK_SAME_DBL(rejected_of(s, "nan_seconds"), 2);
    CHECK_SAME_DBL(rejected_of(s, "nan_labeled_seconds"), 1);
    se = find_series(find_family(s, "nan_labeled_seconds"), "x");
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), 1);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_observe_labeled_bad_inputs)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    static const char *const lbl[] = {"route"};
    pm_family_t *f = hist_family(r, "lab_seconds", NULL, 0, 0, 0, lbl, 1);
    REQUIRE(f);
    pm_family_t *cf = NULL;
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "things", "", NULL, &cf));
    const char *good[] = {"/a"}, *bad[] = {"\xff"}, *nul[] = {NULL};

    CHECK_STATUS(pm_histogram_observe_labeled(NULL, good, 1, 1.0), PM_EINVAL);
    CHECK_STATUS(pm_histogram_observe_labeled(cf, NULL, 0, 1.0), PM_ETYPE);
    CHECK_STATUS(pm_histogram_observe_labeled(f, good, 0, 1.0), PM_ELABELCOUNT);
    CHECK_STATUS(pm_histogram_observe_labeled(f, good, 2, 1.0), PM_ELABELCOUNT);
    CHECK_STATUS(pm_histogram_observe_labeled(f, NULL, 1, 1.0), PM_EINVAL);
    CHECK_STATUS(pm_histogram_observe_labeled(f, nul, 1, 1.0), PM_EINVAL);
    CHECK_STATUS(pm_histogram_observe_labeled(f, bad, 1, 1.0), PM_EUTF8);
    CHECK_EQ_U64(pm_family_series_count(f), 0);

    /* First call creates the series, later ones find it without a lock. */
    for (int i = 0; i < 10; i++) CHECK_OK(pm_histogram_observe_labeled(f, good, 1, 0.25 * i));
    CHECK_EQ_U64(pm_family_series_count(f), 1);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_series_t *se = find_series(find_family(s, "lab_seconds"), "/a");
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), 10);
    CHECK_SAME_DBL(pm_snap_series_sum(se), 11.25);
    CHECK_SAME_DBL(pm_snap_series_max(se), 2.25);
    CHECK_SAME_DBL(pm_snap_series_min(se), 0.0);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ exact buckets */

TEST(test_bounds_exact_default)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "d_seconds", "", &h));
    REQUIRE(h);
    static const double extra[] = {0.0, -1.0, 1e-12, 0.0075, 0.3, 7.0, 20.0, 1e5};
    double vals[3 * NDEFAULT + 8];
    size_t n = around_bounds(default_bounds, NDEFAULT, extra, 8, vals);
    for (size_t i = 0; i < n; i++) pm_histogram_observe(h, vals[i]);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_family_t *sf = find_family(s, "d_seconds");
    REQUIRE(sf);
    check_cumulative(sf, find_series(sf, NULL), default_bounds, NDEFAULT, vals, n, __LINE__);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* Custom bounds over a narrow range [1e-6, 100]: negative bounds and zero,
 * bounds below `lowest` (they share the underflow bucket), one at `lowest`
 * (values one ulp below it are underflow), three in one fine bucket
 * ([1, 1.015625) holds 1, 1.005 and 1.01), one at `highest`, and bounds in
 * the overflow bucket. */
static const double custom_bounds[] = {-5, -1e-300, 0,    1e-9, 1e-6, 0.3,
                                       1,  1.005,   1.01, 100,  1000, 1e300};
#define NCUSTOM (sizeof custom_bounds / sizeof custom_bounds[0])
static const double custom_extra[] = {-INFINITY, INFINITY, -0.0,      0.0,      5e-324,
                                      -5e-324,   DBL_MIN,  0.5,       2,        50,
                                      1e5,       -1e300,   1.0078125, 1.015625, 1.0149};
#define NCUSTOM_EXTRA (sizeof custom_extra / sizeof custom_extra[0])

TEST(test_bounds_exact_custom)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_family_t *f = hist_family(r, "c_seconds", custom_bounds, NCUSTOM, 1e-6, 100, NULL, 0);
    REQUIRE(f);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_get(f, NULL, 0, &h));
    REQUIRE(h);
    double vals[3 * NCUSTOM + NCUSTOM_EXTRA];
    size_t n = around_bounds(custom_bounds, NCUSTOM, custom_extra, NCUSTOM_EXTRA, vals);
    for (size_t i = 0; i < n; i++) pm_histogram_observe(h, vals[i]);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_family_t *sf = find_family(s, "c_seconds");
    REQUIRE(sf);
    const pm_snap_series_t *se = find_series(sf, NULL);
    check_cumulative(sf, se, custom_bounds, NCUSTOM, vals, n, __LINE__);
    CHECK_SAME_DBL(pm_snap_series_min(se), -INFINITY);
    CHECK_SAME_DBL(pm_snap_series_max(se), INFINITY);
    pm_histogram_release(h);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* A single bound, and the maximum of 256 bounds packed into a few fine buckets. */
TEST(test_bounds_exact_one_and_many)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    double one[] = {0.125};
    double many[256];
    for (int i = 0; i < 256; i++) many[i] = 1.0 + i / 4096.0; /* 64 per fine bucket */
    pm_family_t *f1 = hist_family(r, "one_seconds", one, 1, 0, 0, NULL, 0);
    pm_family_t *f2 = hist_family(r, "many_seconds", many, 256, 0, 0, NULL, 0);
    REQUIRE(f1 && f2);
    pm_histogram_t *h1 = NULL, *h2 = NULL;
    CHECK_OK(pm_histogram_get(f1, NULL, 0, &h1));
    CHECK_OK(pm_histogram_get(f2, NULL, 0, &h2));
    REQUIRE(h1 && h2);
    double v1[3], v2[3 * 256 + 2];
    size_t n1 = around_bounds(one, 1, NULL, 0, v1);
    static const double extra2[] = {0.5, 2.0};
    size_t n2 = around_bounds(many, 256, extra2, 2, v2);
    for (size_t i = 0; i < n1; i++) pm_histogram_observe(h1, v1[i]);
    for (size_t i = 0; i < n2; i++) pm_histogram_observe(h2, v2[i]);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_family_t *sf1 = find_family(s, "one_seconds"),
                           *sf2 = find_family(s, "many_seconds");
    REQUIRE(sf1 && sf2);
    check_cumulative(sf1, find_series(sf1, NULL), one, 1, v1, n1, __LINE__);
    check_cumulative(sf2, find_series(sf2, NULL), many, 256, v2, n2, __LINE__);
    pm_histogram_release(h1);
    pm_histogram_release(h2);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ statistics */

TEST(test_stats)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "st_seconds", "", &h));
    REQUIRE(h);

    /* Empty: count 0, sum 0, the rest NaN, no quantile. */
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_series_t *se = find_series(find_family(s, "st_seconds"), NULL);
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), 0);
    CHECK_SAME_DBL(pm_snap_series_sum(se), 0.0);
    CHECK(isnan(pm_snap_series_min(se)));
    CHECK(isnan(pm_snap_series_max(se)));
    CHECK(isnan(pm_snap_series_mean(se)));
    CHECK(isnan(pm_snap_series_stddev(se)));
    double q = 0;
    CHECK_STATUS(pm_snap_series_quantile(se, 0.5, &q), PM_ENOENT);
    for (size_t k = 0; k <= NDEFAULT; k++) CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, k), 0);
    pm_snapshot_release(s);

    /* Dyadic values: the sum is exact whatever the order. */
    static const double v[] = {0.25, 0.5, 0.5, 0.75, 2.0, 0.125, 4.0, 0.0078125};
    double sum = 0, mn = INFINITY, mx = -INFINITY;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        pm_histogram_observe(h, v[i]);
        sum += v[i];
        mn = fmin(mn, v[i]);
        mx = fmax(mx, v[i]);
    }
    CHECK_OK(pm_snapshot_new(r, &s));
    se = find_series(find_family(s, "st_seconds"), NULL);
    REQUIRE(se);
    size_t n = sizeof v / sizeof v[0];
    CHECK_EQ_U64(pm_snap_series_count(se), n);
    CHECK_SAME_DBL(pm_snap_series_sum(se), sum);
    CHECK_SAME_DBL(pm_snap_series_value(se), sum); /* a histogram's value is its sum */
    CHECK_SAME_DBL(pm_snap_series_min(se), mn);
    CHECK_SAME_DBL(pm_snap_series_max(se), mx);
    CHECK_SAME_DBL(pm_snap_series_mean(se), sum / (double)n);
    /* stddev from buckets: each value moves by at most 1/129 of itself, so the
     * estimate is within RMS(v)/129 of the exact population stddev. */
    double mean = sum / (double)n, var = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        var += (v[i] - mean) * (v[i] - mean);
        sq += v[i] * v[i];
    }
    double sd = sqrt(var / (double)n), rms = sqrt(sq / (double)n);
    CHECK_NEAR(pm_snap_series_stddev(se), sd, rms / 129 * (1 + 1e-9));
    CHECK_OK(pm_snap_series_quantile(se, 0, &q));
    CHECK(q >= mn && q <= mn * (1 + REL_BOUND)); /* min's bucket, never below min */
    CHECK_OK(pm_snap_series_quantile(se, 1, &q));
    CHECK_SAME_DBL(q, mx); /* max's bucket value is above 4.0: clamped to max */
    CHECK_STATUS(pm_snap_series_quantile(se, NAN, &q), PM_EINVAL);
    CHECK_STATUS(pm_snap_series_quantile(se, 1.5, &q), PM_EINVAL);
    CHECK_STATUS(pm_snap_series_quantile(se, 0.5, NULL), PM_EINVAL);
    CHECK_STATUS(pm_snap_series_quantile(NULL, 0.5, &q), PM_EINVAL);
    pm_snapshot_release(s);

    /* One value many times: stddev 0, every quantile is the value. */
    pm_histogram_t *c = NULL;
    CHECK_OK(pm_histogram_new(r, "const_seconds", "", &c));
    for (int i = 0; i < 1000; i++) pm_histogram_observe(c, 0.0421);
    CHECK_OK(pm_snapshot_new(r, &s));
    se = find_series(find_family(s, "const_seconds"), NULL);
    REQUIRE(se);
    CHECK_NEAR(pm_snap_series_stddev(se), 0.0, 1e-15); /* the mean's rounding only */
    CHECK_SAME_DBL(pm_snap_series_min(se), 0.0421);
    CHECK_SAME_DBL(pm_snap_series_max(se), 0.0421);
    CHECK_OK(pm_snap_series_quantile(se, 0.5, &q));
    CHECK_SAME_DBL(q, 0.0421);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* Values outside the range [lowest, highest] are still counted, summed and
 * bounded by min/max; quantiles that land on them report min or max. */
TEST(test_outside_range)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "out_seconds", "", &h)); /* default range [1e-9, 1e4] */
    static const double v[] = {-2.0, 0.0, 1e-12, 1.0, 1e5, 1e7};
    for (size_t i = 0; i < 6; i++) pm_histogram_observe(h, v[i]);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_series_t *se = find_series(find_family(s, "out_seconds"), NULL);
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), 6);
    CHECK_NEAR(pm_snap_series_sum(se), 1e7 + 1e5 - 1.0 + 1e-12, 1e-6);
    CHECK_SAME_DBL(pm_snap_series_min(se), -2.0);
    CHECK_SAME_DBL(pm_snap_series_max(se), 1e7);
    double q = 0;
    CHECK_OK(pm_snap_series_quantile(se, 0, &q));
    CHECK_SAME_DBL(q, -2.0);
    CHECK_OK(pm_snap_series_quantile(se, 0.5, &q)); /* rank 3: 1e-12, underflow */
    CHECK_SAME_DBL(q, -2.0);
    CHECK_OK(pm_snap_series_quantile(se, 0.6, &q)); /* rank ceil(3.6) = 4: 1.0, in range */
    CHECK(fabs(q - 1.0) <= REL_BOUND);
    CHECK_OK(pm_snap_series_quantile(se, 1, &q));
    CHECK_SAME_DBL(q, 1e7);
    CHECK_OK(pm_snap_series_quantile(se, 0.8, &q)); /* rank ceil(4.8) = 5: 1e5, overflow */
    CHECK_SAME_DBL(q, 1e7);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, 0), 3);            /* <= 0.005 */
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, NDEFAULT - 1), 4); /* <= 10 */
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(test_infinities)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_histogram_t *p = NULL, *m = NULL;
    CHECK_OK(pm_histogram_new(r, "pinf_seconds", "", &p));
    CHECK_OK(pm_histogram_new(r, "minf_seconds", "", &m));
    pm_histogram_observe(p, 1.0);
    pm_histogram_observe(p, INFINITY);
    pm_histogram_observe(m, -INFINITY);
    pm_histogram_observe(m, 1.0);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_series_t *sp = find_series(find_family(s, "pinf_seconds"), NULL);
    const pm_snap_series_t *sm = find_series(find_family(s, "minf_seconds"), NULL);
    REQUIRE(sp && sm);
    /* +Inf: in the overflow bucket, above every finite bound, in +Inf only. */
    CHECK_EQ_U64(pm_snap_series_count(sp), 2);
    CHECK_SAME_DBL(pm_snap_series_max(sp), INFINITY);
    CHECK_SAME_DBL(pm_snap_series_min(sp), 1.0);
    CHECK_SAME_DBL(pm_snap_series_sum(sp), INFINITY);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(sp, NDEFAULT - 1), 1);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(sp, NDEFAULT), 2);
    double q = 0;
    CHECK_OK(pm_snap_series_quantile(sp, 1, &q));
    CHECK_SAME_DBL(q, INFINITY);
    CHECK_OK(pm_snap_series_quantile(sp, 0.5, &q));
    CHECK(fabs(q - 1.0) <= REL_BOUND);
    /* -Inf: in the underflow bucket, below every bound. */
    CHECK_EQ_U64(pm_snap_series_count(sm), 2);
    CHECK_SAME_DBL(pm_snap_series_min(sm), -INFINITY);
    CHECK_SAME_DBL(pm_snap_series_sum(sm), -INFINITY);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(sm, 0), 1);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(sm, 7), 2); /* <= 1 */
    CHECK_OK(pm_snap_series_quantile(sm, 0, &q));
    CHECK_SAME_DBL(q, -INFINITY);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ observe_ns */

/* observe_ns(ns) records ns nanoseconds in seconds: count, min/max and sum
 * agree with ns/1e9 to within one rounding, 0 ns is a zero (underflow). */
TEST(test_observe_ns_conversion)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "ns_seconds", "", &h));
    pm_histogram_observe_ns(h, 0);
    pm_histogram_observe_ns(h, 1);
    pm_histogram_observe_ns(h, 1500);
    pm_histogram_observe_ns(h, 250000000);
    pm_histogram_observe_ns(h, UINT64_C(3600000000000)); /* 1 h */
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_series_t *se = find_series(find_family(s, "ns_seconds"), NULL);
    REQUIRE(se);
    CHECK_EQ_U64(pm_snap_series_count(se), 5);
    CHECK_SAME_DBL(pm_snap_series_min(se), 0.0);
    CHECK_SAME_DBL(pm_snap_series_max(se), 3600.0);
    CHECK_NEAR(pm_snap_series_sum(se), 3600.250001501, 1e-9);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, 0), 3); /* <= 0.005 */
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, 5), 4); /* <= 0.25 */
    double q = 0;
    CHECK_OK(pm_snap_series_quantile(se, 0.4, &q)); /* rank 2: 1 ns */
    CHECK(fabs(q - 1e-9) <= 1e-9 * REL_BOUND);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* A whole number of nanoseconds must become the double nearest to ns/1e9,
 * the same value a caller passing seconds would write: then 300 ms lands in
 * le="0.3". ns * 1e-9 rounds twice (1e-9 is not a double) and is one ulp off
 * for about 40% of integers, e.g. 300000000 * 1e-9 = 0.30000000000000004. */
TEST(test_observe_ns_correctly_rounded)
{
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    static const double bounds[] = {0.005, 0.3, 0.7, 1.1, 3.3};
    static const uint64_t ns[] = {5000000, 300000000, 700000000, 1100000000, 3300000000u};
    pm_family_t *f = hist_family(r, "nsb_seconds", bounds, 5, 0, 0, NULL, 0);
    REQUIRE(f);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_get(f, NULL, 0, &h));
    for (size_t i = 0; i < 5; i++) pm_histogram_observe_ns(h, ns[i]);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_series_t *se = find_series(find_family(s, "nsb_seconds"), NULL);
    REQUIRE(se);
    for (size_t k = 0; k < 5; k++) {
        if (pm_snap_series_bucket_cumulative(se, k) != k + 1)
            TH_FAIL_("observe_ns(%llu): le=%g holds %llu, want %zu", (unsigned long long)ns[k],
                     bounds[k], (unsigned long long)pm_snap_series_bucket_cumulative(se, k), k + 1);
    }
    CHECK_SAME_DBL(pm_snap_series_max(se), 3.3);
    pm_snapshot_release(s);

    /* And in general: a one-value histogram's min is (double)ns / 1e9. */
    int wrong = 0;
    for (uint64_t i = 1; i <= 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "one%llu_seconds", (unsigned long long)i);
        pm_histogram_t *one = NULL;
        if (pm_histogram_new(r, name, "", &one) != PM_OK) continue;
        pm_histogram_observe_ns(one, i * 1000003);
    }
    CHECK_OK(pm_snapshot_new(r, &s));
    for (uint64_t i = 1; i <= 1000; i++) {
        char name[32];
        snprintf(name, sizeof name, "one%llu_seconds", (unsigned long long)i);
        const pm_snap_series_t *o = find_series(find_family(s, name), NULL);
        if (!o || pm_snap_series_min(o) != (double)(i * 1000003) / 1e9) wrong++;
    }
    CHECK_EQ_INT(wrong, 0);
    pm_histogram_release(h);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ stripes */

#define STRIPE_THREADS 3
#define PER_PHASE 30000

/* Values around the bounds of stripe_bounds, cycled by every thread. */
static const double stripe_bounds[] = {0.001, 0.01, 0.1, 1};
static double stripe_vals[3 * 4 + 4];
static size_t stripe_nvals;

struct stripe_arg {
    pm_histogram_t *h;
    pthread_barrier_t *bar;
    unsigned stripe; /* the stripe this thread's records went to */
};

static void *stripe_worker(void *p)
{
    struct stripe_arg *a = p;
    for (int i = 0; i < PER_PHASE; i++) pm_histogram_observe(a->h, stripe_vals[i % stripe_nvals]);
    a->stripe = pm__stripe(((pm_series *)a->h)->mask); /* assigned by the first record */
    pthread_barrier_wait(a->bar);                      /* phase 1 done */
    pthread_barrier_wait(a->bar);                      /* main ran maintenance */
    for (int i = 0; i < PER_PHASE; i++) pm_histogram_observe(a->h, stripe_vals[i % stripe_nvals]);
    return NULL;
}

/* Sum of the counts of stripe st's generations (white-box: see pm_hgen). */
static uint64_t copy_total(const pm_series *s, unsigned st)
{
    uint64_t n = 0;
    for (const pm_hgen *g = atomic_load_explicit(&pm__hist_ext(s)->units[st], memory_order_acquire);
         g; g = g->prev)
        for (uint32_t i = 0; i < g->cap; i++) n += atomic_load_explicit(&g->cnt[i], memory_order_relaxed);
    return n;
}

/* Threads on stripes without a generation share stripe 0's (exactly) and
 * ask for their own; pm_registry_maintain grants it; later records go there.
 * The totals are exact throughout. */
TEST(test_stripes_three_threads)
{
    pm_registry_t *r = new_registry(8);
    REQUIRE(r);
    pm_family_t *f = hist_family(r, "str_seconds", stripe_bounds, 4, 0, 0, NULL, 0);
    REQUIRE(f);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_get(f, NULL, 0, &h));
    REQUIRE(h);
    static const double extra[] = {0.0, 0.0005, 0.5, 3.0};
    stripe_nvals = around_bounds(stripe_bounds, 4, extra, 4, stripe_vals);
    const pm_series *s = (const pm_series *)h;

    /* The main thread records first: its stripe is assigned now. */
    pm_histogram_observe(h, 0.05);
    unsigned main_stripe = pm__stripe(s->mask);

    pthread_barrier_t bar;
    REQUIRE(pthread_barrier_init(&bar, NULL, STRIPE_THREADS + 1) == 0);
    struct stripe_arg args[STRIPE_THREADS];
    pthread_t th[STRIPE_THREADS];
    for (int i = 0; i < STRIPE_THREADS; i++) {
        args[i] = (struct stripe_arg){h, &bar, 0};
        REQUIRE(pthread_create(&th[i], NULL, stripe_worker, &args[i]) == 0);
    }
    pthread_barrier_wait(&bar); /* phase 1 done */

    /* Four threads, four distinct stripes (consecutive sequence numbers, 8 stripes). */
    unsigned seen = 1u << main_stripe;
    for (int i = 0; i < STRIPE_THREADS; i++) {
        CHECK(!(seen & (1u << args[i].stripe)));
        seen |= 1u << args[i].stripe;
    }
    /* Nothing granted yet: everything went to the shared stripe-0 copy. */
    uint64_t all = 0;
    for (unsigned st = 0; st < 8; st++) {
        if (st != 0 && st != main_stripe)
            CHECK(atomic_load_explicit(&pm__hist_ext(s)->units[st], memory_order_relaxed) == NULL);
        all += copy_total(s, st);
    }
    CHECK_EQ_U64(all, 1 + (uint64_t)STRIPE_THREADS * PER_PHASE);

    CHECK_OK(pm_registry_maintain(r));
    for (int i = 0; i < STRIPE_THREADS; i++)
        CHECK(atomic_load_explicit(&pm__hist_ext(s)->units[args[i].stripe], memory_order_relaxed) !=
              NULL);
    pthread_barrier_wait(&bar); /* let them record phase 2 */
    for (int i = 0; i < STRIPE_THREADS; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);

    /* Phase 2 went to each thread's own copy (when it is not stripe 0). */
    for (int i = 0; i < STRIPE_THREADS; i++)
        if (args[i].stripe != 0) CHECK_EQ_U64(copy_total(s, args[i].stripe), PER_PHASE);

    pm_histogram_observe(h, 0.05);
    pm_snapshot_t *snap = NULL;
    CHECK_OK(pm_snapshot_new(r, &snap));
    const pm_snap_family_t *sf = find_family(snap, "str_seconds");
    REQUIRE(sf);
    const pm_snap_series_t *se = find_series(sf, NULL);
    REQUIRE(se);
    uint64_t total = 2 + 2 * (uint64_t)STRIPE_THREADS * PER_PHASE;
    CHECK_EQ_U64(pm_snap_series_count(se), total);
    /* Expected cumulative counts: per-thread multiset, times threads, plus main's two. */
    uint64_t per_val[3 * 4 + 4] = {0};
    for (int i = 0; i < PER_PHASE; i++) per_val[i % stripe_nvals] += 2 * STRIPE_THREADS;
    double sum = 0.1;
    for (size_t k = 0; k < 4; k++) {
        uint64_t want = 0.05 <= stripe_bounds[k] ? 2 : 0;
        for (size_t i = 0; i < stripe_nvals; i++)
            if (stripe_vals[i] <= stripe_bounds[k]) want += per_val[i];
        CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, k), want);
    }
    for (size_t i = 0; i < stripe_nvals; i++) sum += (double)per_val[i] * stripe_vals[i];
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, 4), total);
    CHECK_NEAR(pm_snap_series_sum(se), sum, 1e-9 * sum);
    CHECK_SAME_DBL(pm_snap_series_min(se), 0.0);
    CHECK_SAME_DBL(pm_snap_series_max(se), 3.0);
    pm_snapshot_release(snap);
    pm_histogram_release(h);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ family options */

TEST(test_opts_set_buckets_bad_inputs)
{
    pm_family_opts_t *o = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    double good[] = {0.1, 0.2};
    CHECK_STATUS(pm_family_opts_set_buckets(NULL, good, 2), PM_EINVAL);
    CHECK_STATUS(pm_family_opts_set_buckets(o, NULL, 2), PM_EINVAL);
    CHECK_STATUS(pm_family_opts_set_buckets(o, NULL, 0), PM_EINVAL);
    CHECK_STATUS(pm_family_opts_set_buckets(o, good, 0), PM_ERANGE); /* empty */
    CHECK_OK(pm_family_opts_set_buckets(o, good, 2));                /* the ones kept */

    static const double unsorted[] = {0.2, 0.1}, dup[] = {0.1, 0.1, 0.2}, nan_b[] = {0.1, NAN},
                        nan0[] = {NAN}, inf_b[] = {0.1, INFINITY}, ninf_b[] = {-INFINITY, 0.1},
                        zeros[] = {-0.0, 0.0};
    CHECK_STATUS(pm_family_opts_set_buckets(o, unsorted, 2), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_buckets(o, dup, 3), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_buckets(o, nan_b, 2), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_buckets(o, nan0, 1), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_buckets(o, inf_b, 2), PM_ERANGE); /* +Inf is implied */
    CHECK_STATUS(pm_family_opts_set_buckets(o, ninf_b, 2), PM_ERANGE);
    CHECK_STATUS(pm_family_opts_set_buckets(o, zeros, 2), PM_ERANGE); /* -0 == 0: duplicate */
    double many[257];
    for (int i = 0; i < 257; i++) many[i] = i + 1;
    CHECK_STATUS(pm_family_opts_set_buckets(o, many, 257), PM_ERANGE); /* too many */

    /* After the failures the options still hold {0.1, 0.2}. */
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_family_t *f = NULL;
    CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "b_seconds", "", o, &f));
    CHECK_OK(pm_family_opts_set_buckets(o, many, 256)); /* the maximum is fine */
    pm_family_t *f256 = NULL;
    CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "b256_seconds", "", o, &f256));
    CHECK_OK(pm_histogram_observe_labeled(f, NULL, 0, 0.15));
    CHECK_OK(pm_histogram_observe_labeled(f256, NULL, 0, 256));
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_family_t *sf = find_family(s, "b_seconds");
    REQUIRE(sf);
    CHECK_EQ_U64(pm_snap_family_bucket_count(sf), 2);
    CHECK_SAME_DBL(pm_snap_family_bucket_bound(sf, 0), 0.1);
    CHECK_SAME_DBL(pm_snap_family_bucket_bound(sf, 1), 0.2);
    CHECK(isnan(pm_snap_family_bucket_bound(sf, 2)));
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(find_series(sf, NULL), 0), 0);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(find_series(sf, NULL), 1), 1);
    const pm_snap_family_t *sf256 = find_family(s, "b256_seconds");
    REQUIRE(sf256);
    CHECK_EQ_U64(pm_snap_family_bucket_count(sf256), 256);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(find_series(sf256, NULL), 254), 0);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(find_series(sf256, NULL), 255), 1);
    pm_snapshot_release(s);
    pm_registry_free(r);
    pm_family_opts_free(o);
    pm_family_opts_free(NULL);
}

/* The family's range is not exposed directly; its data merges only with data
 * of the same range, which tells which range the family got. */
static int family_has_range(pm_registry_t *r, const char *name, double lowest, double highest)
{
    pm_snapshot_t *s = NULL;
    if (pm_snapshot_new(r, &s) != PM_OK) return 0;
    const pm_hdata_t *hd = pm_snap_series_hdata(find_series(find_family(s, name), NULL));
    pm_hdata_t *probe = NULL;
    int same =
        hd && pm_hdata_new(lowest, highest, &probe) == PM_OK && pm_hdata_merge(probe, hd) == PM_OK;
    pm_hdata_free(probe);
    pm_snapshot_release(s);
    return same;
}

TEST(test_opts_set_range_bad_inputs)
{
    pm_family_opts_t *o = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    CHECK_STATUS(pm_family_opts_set_range(NULL, 1e-6, 10), PM_EINVAL);
    CHECK_OK(pm_family_opts_set_range(o, 1e-6, 10)); /* the one kept */
    static const double bad[][2] = {
        {0, 10},           {-1e-6, 10},  {-0.0, 10},           {10, 10},           {10, 1e-6},
        {NAN, 10},         {1e-6, NAN},  {INFINITY, INFINITY}, {1e-6, INFINITY},   {-INFINITY, 10},
        {DBL_MIN / 2, 10}, {5e-324, 10}, {1e-300, 1e300},      {DBL_MIN, DBL_MAX},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = pm_family_opts_set_range(o, bad[i][0], bad[i][1]);
        if (st != PM_ERANGE)
            TH_FAIL_("set_range(%g, %g) = %s, want PM_ERANGE", bad[i][0], bad[i][1],
                     pm_status_name(st));
    }
    pm_registry_t *r = new_registry(0);
    REQUIRE(r);
    pm_family_t *f = NULL;
    CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "rng_seconds", "", o, &f));
    CHECK_OK(pm_histogram_observe_labeled(f, NULL, 0, 1.0));
    CHECK(family_has_range(r, "rng_seconds", 1e-6, 10));
    CHECK(!family_has_range(r, "rng_seconds", 1e-9, 1e4));
    /* Registering the name again with another range is another definition. */
    CHECK_OK(pm_family_opts_set_range(o, 1e-6, 20));
    pm_family_t *f2 = NULL;
    CHECK_STATUS(pm_family_new(r, PM_TYPE_HISTOGRAM, "rng_seconds", "", o, &f2), PM_EEXIST);
    /* The default family range. */
    pm_histogram_t *d = NULL;
    CHECK_OK(pm_histogram_new(r, "dflt_seconds", "", &d));
    CHECK(family_has_range(r, "dflt_seconds", 1e-9, 1e4));
    pm_registry_free(r);
    pm_family_opts_free(o);
}

/* ------------------------------------------------------------ sparse storage */

/* Log-uniform values over [lo, hi), fixed seed, plus the values around each
 * default bound: many distinct fine buckets and every straddle case. */
static size_t wide_values(double lo, double hi, uint64_t seed, size_t n, double *out)
{
    uint64_t x = seed | 1;
    size_t k = around_bounds(default_bounds, NDEFAULT, NULL, 0, out);
    for (; k < n; k++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double u = (double)(x >> 11) / 9007199254740992.0;
        out[k] = lo * pow(hi / lo, u);
    }
    return n;
}

/* The snapshot's data of `se` holds exactly the buckets of `ref` (built with
 * pm_hdata_record from the same values): same fine buckets, same counts. */
static void check_same_buckets(const pm_snap_series_t *se, const pm_hdata_t *ref, int line)
{
    const pm_hdata_t *h = pm_snap_series_hdata(se);
    if (!h) {
        TH_FAIL_("(line %d) no hdata", line);
        return;
    }
    if (h->n != ref->n || h->count != ref->count) {
        TH_FAIL_("(line %d) %u buckets, count %llu; want %u, %llu", line, h->n,
                 (unsigned long long)h->count, ref->n, (unsigned long long)ref->count);
        return;
    }
    for (uint32_t i = 0; i < h->n; i++)
        if (h->idx[i] != ref->idx[i] || h->cnt[i] != ref->cnt[i]) {
            TH_FAIL_("(line %d) bucket %u: index %u count %llu, want %u %llu", line, i, h->idx[i],
                     (unsigned long long)h->cnt[i], ref->idx[i], (unsigned long long)ref->cnt[i]);
            return;
        }
    CHECK_SAME_DBL(pm_snap_series_min(se), pm_hdata_min(ref));
    CHECK_SAME_DBL(pm_snap_series_max(se), pm_hdata_max(ref));
    CHECK_NEAR(pm_snap_series_sum(se), pm_hdata_sum(ref), 1e-12 * fabs(pm_hdata_sum(ref)));
}

/* Snapshot, find series v0 of `name`, run both checks, release. */
static void check_live(pm_registry_t *r, const char *name, const char *v0, const pm_hdata_t *ref,
                       const double *vals, size_t nv, int line)
{
    pm_snapshot_t *snap = NULL;
    if (pm_snapshot_new(r, &snap) != PM_OK) {
        TH_FAIL_("(line %d) pm_snapshot_new", line);
        return;
    }
    const pm_snap_family_t *sf = find_family(snap, name);
    const pm_snap_series_t *se = sf ? find_series(sf, v0) : NULL;
    if (!se) {
        TH_FAIL_("(line %d) series %s{%s} missing", line, name, v0 ? v0 : "");
    } else {
        check_same_buckets(se, ref, line);
        check_cumulative(sf, se, default_bounds, NDEFAULT, vals, nv, line);
    }
    pm_snapshot_release(snap);
}

/* perfmetrics_coarse_observations{family=name} (0 when absent). */
static double coarse_of(pm_registry_t *r, const char *family)
{
    pm_snapshot_t *snap = NULL;
    if (pm_snapshot_new(r, &snap) != PM_OK) return -1;
    const pm_snap_family_t *f = find_family(snap, "perfmetrics_coarse_observations");
    const pm_snap_series_t *se = f ? find_series(f, family) : NULL;
    double v = se ? pm_snap_series_value(se) : 0;
    pm_snapshot_release(snap);
    return v;
}

/* The head of stripe st's generation chain (white-box). */
static const pm_hgen *unit_head(const pm_histogram_t *h, unsigned st)
{
    return atomic_load_explicit(&pm__hist_ext((const pm_series *)h)->units[st],
                                memory_order_acquire);
}

#define NWIDE 60000

/* One thread, no maintenance: the first table fills, a spare dense table
 * from the pool takes over; every bucket, bound, extreme and the sum are
 * those of pm_hdata_record. */
TEST(test_sparse_burst_without_maintenance)
{
    static double vals[NWIDE];
    pm_registry_t *r = new_registry(1);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "burst_seconds", "", &h));
    REQUIRE(h);
    size_t n = wide_values(1e-9, 1e4, 7, NWIDE, vals);
    pm_hdata_t *ref = NULL;
    REQUIRE(pm_hdata_new(1e-9, 1e4, &ref) == PM_OK);
    for (size_t i = 0; i < n; i++) {
        pm_histogram_observe(h, vals[i]);
        CHECK_OK(pm_hdata_record(ref, vals[i]));
    }
    REQUIRE(ref->n > 2000); /* nearly every fine bucket of the range */
    const pm_hgen *g = unit_head(h, 0);
    CHECK(g && g->keys == NULL && g->prev && g->prev->cap == 32); /* dense, over the first table */
    check_live(r, "burst_seconds", NULL, ref, vals, n, __LINE__);
    CHECK_EQ_DBL(coarse_of(r, "burst_seconds"), 0);
    /* The sum is one running naive sum, as pm_hdata_record's. */
    pm_snapshot_t *snap = NULL;
    CHECK_OK(pm_snapshot_new(r, &snap));
    CHECK(pm_snap_series_sum(find_series(find_family(snap, "burst_seconds"), NULL)) ==
          pm_hdata_sum(ref));
    pm_snapshot_release(snap);
    pm_hdata_free(ref);
    pm_registry_free(r);
}

/* Keys arriving a few at a time with maintenance in between: the table grows
 * (32 -> 128 -> 512 cells) and stays sparse; nothing is coarse, nothing lost. */
TEST(test_sparse_growth_by_maintenance)
{
    static double vals[4000];
    pm_registry_t *r = new_registry(1);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "grow_seconds", "", &h));
    REQUIRE(h);
    /* 0.1 ms .. 1 ms: about 210 fine buckets. */
    size_t n = wide_values(1e-4, 1e-3, 11, 4000, vals);
    pm_hdata_t *ref = NULL;
    REQUIRE(pm_hdata_new(1e-9, 1e4, &ref) == PM_OK);
    uint32_t caps[8] = {0};
    unsigned ncaps = 0;
    for (size_t i = 0; i < n; i++) {
        pm_histogram_observe(h, vals[i]);
        CHECK_OK(pm_hdata_record(ref, vals[i]));
        if (i % 8 == 7) {
            CHECK_OK(pm_registry_maintain(r));
            const pm_hgen *g = unit_head(h, 0);
            if (g->keys && (ncaps == 0 || caps[ncaps - 1] != g->cap) && ncaps < 8)
                caps[ncaps++] = g->cap;
        }
        if (i == 999) check_live(r, "grow_seconds", NULL, ref, vals, i + 1, __LINE__);
    }
    CHECK(ncaps >= 3);
    CHECK_EQ_INT(caps[0], 32);
    for (unsigned k = 1; k < ncaps; k++) CHECK_EQ_INT(caps[k], caps[k - 1] * 4);
    const pm_hgen *g = unit_head(h, 0);
    CHECK(g->keys != NULL); /* ~230 keys: sparse is still smaller than dense */
    CHECK(atomic_load(&g->used) >= ref->n - NDEFAULT - 1);
    check_live(r, "grow_seconds", NULL, ref, vals, n, __LINE__);
    CHECK_EQ_DBL(coarse_of(r, "grow_seconds"), 0);
    pm_hdata_free(ref);
    pm_registry_free(r);
}

/* More series bursting before maintenance than the pool has spares
 * (min(8, series)): the last ones keep their overflow at export-bucket
 * resolution; count, sum, min, max and every exported bucket stay exact, the
 * coarse values are counted, and after maintenance the series is fine again. */
#define NCOARSE 10
TEST(test_coarse_when_no_spare_left)
{
    static double vals[8000];
    pm_registry_t *r = new_registry(1);
    REQUIRE(r);
    static const char *const lab[] = {"id"};
    pm_family_t *f = hist_family(r, "spill_seconds", NULL, 0, 0, 0, lab, 1);
    REQUIRE(f);
    pm_histogram_t *h[NCOARSE];
    char names[NCOARSE][8];
    for (int i = 0; i < NCOARSE; i++) {
        snprintf(names[i], sizeof names[i], "s%d", i);
        const char *v[1] = {names[i]};
        CHECK_OK(pm_histogram_get(f, v, 1, &h[i]));
    }
    size_t n = wide_values(1e-9, 1e4, 13, 8000, vals);
    pm_hdata_t *ref = NULL;
    REQUIRE(pm_hdata_new(1e-9, 1e4, &ref) == PM_OK);
    for (size_t k = 0; k < n; k++) CHECK_OK(pm_hdata_record(ref, vals[k]));
    for (int i = 0; i < NCOARSE; i++)
        for (size_t k = 0; k < n; k++) pm_histogram_observe(h[i], vals[k]);
    double coarse = coarse_of(r, "spill_seconds"); /* maintenance runs after the read */
    CHECK(coarse > 0);
    pm_snapshot_t *snap = NULL;
    CHECK_OK(pm_snapshot_new(r, &snap));
    const pm_snap_family_t *sf = find_family(snap, "spill_seconds");
    int exact_buckets = 0;
    for (int i = 0; i < NCOARSE; i++) {
        const pm_snap_series_t *se = find_series(sf, names[i]);
        REQUIRE(se);
        check_cumulative(sf, se, default_bounds, NDEFAULT, vals, n, __LINE__);
        CHECK_SAME_DBL(pm_snap_series_min(se), pm_hdata_min(ref));
        CHECK_SAME_DBL(pm_snap_series_max(se), pm_hdata_max(ref));
        CHECK_NEAR(pm_snap_series_sum(se), pm_hdata_sum(ref), 1e-12 * pm_hdata_sum(ref));
        const pm_hdata_t *hd = pm_snap_series_hdata(se);
        if (hd->n == ref->n && !memcmp(hd->cnt, ref->cnt, ref->n * sizeof *ref->cnt)) exact_buckets++;
    }
    CHECK_EQ_INT(exact_buckets, 8); /* the pool's spares */
    pm_snapshot_release(snap);
    /* Maintenance gave the coarse series bigger tables: no more coarse values. */
    CHECK_OK(pm_registry_maintain(r));
    for (int i = 0; i < NCOARSE; i++)
        for (size_t k = 0; k < 500; k++) pm_histogram_observe(h[i], vals[k]);
    CHECK_EQ_DBL(coarse_of(r, "spill_seconds"), coarse);
    for (int i = 0; i < NCOARSE; i++) pm_histogram_release(h[i]);
    pm_hdata_free(ref);
    pm_registry_free(r);
}

/* An attached thread records into its own table (plain stores), grown by
 * maintenance with the owner's acknowledgement; snapshots in between, then
 * detach, are exact. */
TEST(test_attached_exact_through_growth_and_detach)
{
    static double vals[NWIDE];
    pm_registry_t *r = new_registry(2);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "own_seconds", "", &h));
    REQUIRE(h);
    CHECK_OK(pm_thread_attach(r));
    size_t n = wide_values(1e-7, 10, 17, NWIDE, vals);
    pm_hdata_t *ref = NULL;
    REQUIRE(pm_hdata_new(1e-9, 1e4, &ref) == PM_OK);
    const pm_series *s = (const pm_series *)h;
    int owned = 0;
    for (size_t i = 0; i < n; i++) {
        pm_histogram_observe(h, vals[i]);
        CHECK_OK(pm_hdata_record(ref, vals[i]));
        if (i % 500 == 499) {
            CHECK_OK(pm_registry_maintain(r));
            const pm_hgen *g = atomic_load(pm__shard_hentry(pm__tls_shard, pm__hist_ext(s)->hslot));
            if ((uintptr_t)g > (uintptr_t)PM_HGEN_WANTED && g->single) owned = 1;
        }
        if (i % 15000 == 14999) check_live(r, "own_seconds", NULL, ref, vals, i + 1, __LINE__);
    }
    CHECK(owned);
    check_live(r, "own_seconds", NULL, ref, vals, n, __LINE__);
    CHECK_OK(pm_thread_detach(r)); /* the thread's tables move into the series */
    check_live(r, "own_seconds", NULL, ref, vals, n, __LINE__);
    for (size_t i = 0; i < 1000; i++) {
        pm_histogram_observe(h, vals[i]); /* unattached now */
        CHECK_OK(pm_hdata_record(ref, vals[i]));
    }
    size_t m = 0;
    static double all[NWIDE + 1000];
    memcpy(all, vals, n * sizeof *vals);
    memcpy(all + n, vals, 1000 * sizeof *vals);
    m = n + 1000;
    check_live(r, "own_seconds", NULL, ref, all, m, __LINE__);
    pm_hdata_free(ref);
    pm_registry_free(r);
}

struct exit_arg {
    pm_registry_t *r;
    pm_histogram_t *h;
    const double *vals;
    size_t n;
};

static void *record_and_exit(void *p)
{
    struct exit_arg *a = p;
    if (pm_thread_attach(a->r) != PM_OK) return (void *)1;
    for (size_t i = 0; i < a->n; i++) {
        pm_histogram_observe(a->h, a->vals[i]);
        if (i == a->n / 2) pm_registry_maintain(a->r); /* the thread gets its own table */
    }
    return NULL; /* no detach: the exit handler folds the tables */
}

/* Attached threads that exit without detaching leave every value behind. */
TEST(test_attached_thread_exit_folds)
{
    static double vals[20000];
    pm_registry_t *r = new_registry(2);
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "exit_seconds", "", &h));
    size_t n = wide_values(1e-6, 1, 19, 20000, vals);
    pm_hdata_t *ref = NULL;
    REQUIRE(pm_hdata_new(1e-9, 1e4, &ref) == PM_OK);
    static double all[3 * 20000];
    for (int t = 0; t < 3; t++) {
        struct exit_arg a = {r, h, vals, n};
        pthread_t th;
        REQUIRE(pthread_create(&th, NULL, record_and_exit, &a) == 0);
        void *ret = NULL;
        pthread_join(th, &ret);
        CHECK(ret == NULL);
        for (size_t i = 0; i < n; i++) CHECK_OK(pm_hdata_record(ref, vals[i]));
        memcpy(all + (size_t)t * n, vals, n * sizeof *vals);
        check_live(r, "exit_seconds", NULL, ref, all, (size_t)(t + 1) * n, __LINE__);
    }
    pm_hdata_free(ref);
    pm_registry_free(r);
}

/* pm_family_clear resets the overflow series even while an attached owner's
 * table holds counts: they are cancelled, not raced. */
TEST(test_clear_overflow_series_with_attached_counts)
{
    pm_registry_t *r = new_registry(2);
    REQUIRE(r);
    static const char *const lab[] = {"id"};
    pm_family_opts_t *o = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    CHECK_OK(pm_family_opts_set_labels(o, lab, 1));
    CHECK_OK(pm_family_opts_set_max_series(o, 1));
    pm_family_t *f = NULL;
    CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "clr_seconds", "", o, &f));
    pm_family_opts_free(o);
    const char *a[1] = {"a"}, *b[1] = {"b"};
    pm_histogram_t *ha = NULL, *hb = NULL;
    CHECK_OK(pm_histogram_get(f, a, 1, &ha));
    CHECK_OK(pm_histogram_get(f, b, 1, &hb)); /* past the limit: the overflow series */
    CHECK_OK(pm_thread_attach(r));
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 3000; i++) pm_histogram_observe(hb, 1e-3 * (1 + i % 700));
        CHECK_OK(pm_registry_maintain(r)); /* the owner's table comes in the first round */
    }
    CHECK_OK(pm_family_clear(f));
    for (int i = 0; i < 50; i++) pm_histogram_observe(hb, 0.02);
    pm_snapshot_t *snap = NULL;
    CHECK_OK(pm_snapshot_new(r, &snap));
    const pm_snap_family_t *sf = find_family(snap, "clr_seconds");
    REQUIRE(sf && pm_snap_family_series_count(sf) == 1);
    const pm_snap_series_t *se = pm_snap_family_series(sf, 0);
    CHECK(pm_snap_series_is_overflow(se));
    CHECK_EQ_U64(pm_snap_series_count(se), 50);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, 1), 0);  /* le=0.01 */
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(se, 2), 50); /* le=0.025 */
    CHECK_NEAR(pm_snap_series_sum(se), 1.0, 1e-9);
    CHECK_SAME_DBL(pm_snap_series_min(se), 0.02);
    CHECK_SAME_DBL(pm_snap_series_max(se), 0.02);
    pm_snapshot_release(snap);
    CHECK_OK(pm_thread_detach(r));
    pm_histogram_release(ha);
    pm_histogram_release(hb);
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_new_bad_inputs), TH_CASE(test_get_bad_inputs),
          TH_CASE(test_observe_null_ignored), TH_CASE(test_nan_rejected_and_counted),
          TH_CASE(test_observe_labeled_bad_inputs), TH_CASE(test_bounds_exact_default),
          TH_CASE(test_bounds_exact_custom), TH_CASE(test_bounds_exact_one_and_many),
          TH_CASE(test_stats), TH_CASE(test_outside_range), TH_CASE(test_infinities),
          TH_CASE(test_observe_ns_conversion), TH_CASE(test_observe_ns_correctly_rounded),
          TH_CASE(test_stripes_three_threads), TH_CASE(test_opts_set_buckets_bad_inputs),
          TH_CASE(test_opts_set_range_bad_inputs), TH_CASE(test_sparse_burst_without_maintenance),
          TH_CASE(test_sparse_growth_by_maintenance), TH_CASE(test_coarse_when_no_spare_left),
          TH_CASE(test_attached_exact_through_growth_and_detach),
          TH_CASE(test_attached_thread_exit_folds),
          TH_CASE(test_clear_overflow_series_with_attached_counts))
