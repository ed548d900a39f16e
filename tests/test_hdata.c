/* Histogram data (pm_hdata_*): the plain, mergeable, serialisable value.
 * Every function's bad inputs, merge rules, quantile edge cases, and the
 * encoding: round trips, and a decoder that rejects every malformed input
 * (each truncation, trailing bytes, inconsistent counts, bad indexes, NaN
 * fields) with PM_EPARSE and never reads past the given length.
 *
 * Encoding layout (lib/hdata.c, doc/histograms.md), little-endian:
 *   0 "PMH1" | 4 f64 lowest | 12 f64 highest | 20 u64 count | 28 f64 sum |
 *   36 f64 min | 44 f64 max | 52 u32 n | 56 n * (u32 fine index, u64 count) */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include <float.h>

#define OFF_LOWEST 4
#define OFF_HIGHEST 12
#define OFF_COUNT 20
#define OFF_SUM 28
#define OFF_MIN 36
#define OFF_MAX 44
#define OFF_N 52
#define HEADER 56
#define PAIR 12

/* ------------------------------------------------------------ helpers */

/* Exact equality that also holds for equal infinities (CHECK_EQ_DBL subtracts). */
#define CHECK_SAME_DBL(a, b)                                                                       \
    do {                                                                                           \
        double sd_a_ = (double)(a), sd_b_ = (double)(b);                                           \
        if (!(sd_a_ == sd_b_ || (isnan(sd_a_) && isnan(sd_b_))))                                   \
            TH_FAIL_("%s == %s: %.17g != %.17g", #a, #b, sd_a_, sd_b_);                            \
    } while (0)

static uint64_t d2u(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return u;
}

static double u2d(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static void put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Fine-bucket count of a range, as the library computes it (64 keys per octave). */
static uint32_t fine_buckets(double lowest, double highest)
{
    return (uint32_t)((d2u(highest) >> 46) - (d2u(lowest) >> 46) + 1);
}

/* Data over [1e-6, 100] with values spread over several buckets, including
 * one below the range and one above it. */
static pm_hdata_t *sample_data(void)
{
    pm_hdata_t *h = NULL;
    if (pm_hdata_new(1e-6, 100, &h) != PM_OK) return NULL;
    static const double v[] = {1e-9, 0.001, 0.002, 0.002, 0.5, 3.25, 1e6, 0.25, 0.001};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (pm_hdata_record(h, v[i]) != PM_OK) {
            pm_hdata_free(h);
            return NULL;
        }
    return h;
}

static int encode(const pm_hdata_t *h, unsigned char **buf, size_t *len)
{
    return pm_hdata_encode(h, buf, len) == PM_OK && *buf != NULL;
}

/* Decoding `buf` must fail with PM_EPARSE and leave *out NULL. */
#define CHECK_REJECTS(buf, len)                                                                    \
    do {                                                                                           \
        pm_hdata_t *rej_ = (pm_hdata_t *)(uintptr_t)1;                                             \
        CHECK_STATUS(pm_hdata_decode((buf), (len), &rej_), PM_EPARSE);                             \
        CHECK(rej_ == NULL);                                                                       \
        if (rej_ && rej_ != (pm_hdata_t *)(uintptr_t)1) pm_hdata_free(rej_);                       \
    } while (0)

static int same_bytes(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* ------------------------------------------------------------ construction */

TEST(test_new_bad_inputs)
{
    pm_hdata_t *h = (pm_hdata_t *)(uintptr_t)1;
    CHECK_STATUS(pm_hdata_new(1e-9, 1e4, NULL), PM_EINVAL);

    static const double bad[][2] = {
        {0, 1},             /* lowest <= 0 */
        {-0.0, 1},          /* lowest <= 0 */
        {-1, 1},            /* lowest <= 0 */
        {1, 1},             /* highest == lowest */
        {2, 1},             /* highest < lowest */
        {NAN, 1},           /* not finite */
        {1, NAN},           /* not finite */
        {INFINITY, 1e300},  /* not finite */
        {1, INFINITY},      /* not finite */
        {-INFINITY, 1},     /* not finite */
        {DBL_MIN / 2, 1},   /* denormal lowest: buckets would not be log-linear */
        {4.9e-324, 1},      /* the smallest denormal */
        {1e-300, 1e300},    /* too wide: more than 16384 fine buckets */
        {DBL_MIN, DBL_MAX}, /* too wide */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        h = (pm_hdata_t *)(uintptr_t)1;
        int st = pm_hdata_new(bad[i][0], bad[i][1], &h);
        if (st != PM_ERANGE)
            TH_FAIL_("pm_hdata_new(%g, %g) = %s, want PM_ERANGE", bad[i][0], bad[i][1],
                     pm_status_name(st));
        CHECK(h == NULL);
    }

    /* The smallest normal lowest is accepted, and so is the widest range:
     * 16384 fine buckets (256 octaves). One more bucket is refused. */
    CHECK_OK(pm_hdata_new(DBL_MIN, 1e-300, &h));
    pm_hdata_free(h);
    uint64_t k0 = d2u(1.0) >> 46;
    CHECK_OK(pm_hdata_new(1.0, u2d((k0 + 16383) << 46), &h));
    REQUIRE(h);
    pm_hdata_free(h);
    CHECK_STATUS(pm_hdata_new(1.0, u2d((k0 + 16384) << 46), &h), PM_ERANGE);
    CHECK(h == NULL);
    /* The default family range and the "1 ns .. 1 h" one. */
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &h));
    pm_hdata_free(h);
    CHECK_OK(pm_hdata_new(1e-9, 3600, &h));
    pm_hdata_free(h);
    pm_hdata_free(NULL); /* no-op */
}

TEST(test_empty_accessors)
{
    pm_hdata_t *h = NULL;
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &h));
    REQUIRE(h);
    CHECK_EQ_U64(pm_hdata_count(h), 0);
    CHECK_SAME_DBL(pm_hdata_sum(h), 0.0);
    CHECK(isnan(pm_hdata_min(h)));
    CHECK(isnan(pm_hdata_max(h)));
    double q = 42;
    CHECK_STATUS(pm_hdata_quantile(h, 0.5, &q), PM_ENOENT);
    CHECK_STATUS(pm_hdata_quantile(h, 0, &q), PM_ENOENT);
    CHECK_STATUS(pm_hdata_quantile(h, 1, &q), PM_ENOENT);
    /* A bad q is reported as such even when there is no data. */
    CHECK_STATUS(pm_hdata_quantile(h, 2, &q), PM_EINVAL);
    pm_hdata_free(h);

    /* NULL handles. */
    CHECK_EQ_U64(pm_hdata_count(NULL), 0);
    CHECK(isnan(pm_hdata_sum(NULL)));
    CHECK(isnan(pm_hdata_min(NULL)));
    CHECK(isnan(pm_hdata_max(NULL)));
}

TEST(test_record_bad_inputs)
{
    CHECK_STATUS(pm_hdata_record(NULL, 1.0), PM_EINVAL);
    pm_hdata_t *h = NULL;
    CHECK_OK(pm_hdata_new(1e-3, 10, &h));
    REQUIRE(h);
    CHECK_STATUS(pm_hdata_record(h, NAN), PM_EINVAL);
    CHECK_STATUS(pm_hdata_record(h, -NAN), PM_EINVAL);
    CHECK_EQ_U64(pm_hdata_count(h), 0); /* nothing partial */
    CHECK_SAME_DBL(pm_hdata_sum(h), 0.0);

    /* Everything else is data: outside the range, zero, negative, infinite. */
    static const double ok[] = {1e-9, 0.0, -0.0, -5.0, 1e6, INFINITY, -INFINITY, 2.0};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) CHECK_OK(pm_hdata_record(h, ok[i]));
    CHECK_EQ_U64(pm_hdata_count(h), sizeof ok / sizeof ok[0]);
    CHECK_SAME_DBL(pm_hdata_min(h), -INFINITY);
    CHECK_SAME_DBL(pm_hdata_max(h), INFINITY);
    double v = 0;
    CHECK_OK(pm_hdata_quantile(h, 0, &v));
    CHECK_SAME_DBL(v, -INFINITY); /* underflow bucket reports min */
    CHECK_OK(pm_hdata_quantile(h, 1, &v));
    CHECK_SAME_DBL(v, INFINITY); /* overflow bucket reports max */
    pm_hdata_free(h);
}

TEST(test_quantile_bad_inputs)
{
    pm_hdata_t *h = sample_data();
    REQUIRE(h);
    double v = 7;
    CHECK_STATUS(pm_hdata_quantile(NULL, 0.5, &v), PM_EINVAL);
    CHECK_STATUS(pm_hdata_quantile(h, 0.5, NULL), PM_EINVAL);
    static const double bad[] = {NAN, -NAN, -0.001, -1, 1.0000000000000002, 2, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int st = pm_hdata_quantile(h, bad[i], &v);
        if (st != PM_EINVAL)
            TH_FAIL_("pm_hdata_quantile(q=%g) = %s, want PM_EINVAL", bad[i], pm_status_name(st));
    }
    CHECK_SAME_DBL(v, 7); /* untouched on error */
    /* The closed interval's ends are valid, -0.0 included. */
    CHECK_OK(pm_hdata_quantile(h, 0, &v));
    CHECK_SAME_DBL(v, 1e-9); /* the smallest value is below the range: reported as min */
    CHECK_OK(pm_hdata_quantile(h, -0.0, &v));
    CHECK_SAME_DBL(v, 1e-9);
    CHECK_OK(pm_hdata_quantile(h, 1, &v));
    CHECK_SAME_DBL(v, 1e6); /* above the range: reported as max */
    /* Nearest rank on 9 values: rank ceil(0.5*9) = 5 -> 0.002 (sorted:
     * 1e-9 .001 .001 .002 .002 .25 .5 3.25 1e6). */
    CHECK_OK(pm_hdata_quantile(h, 0.5, &v));
    CHECK(fabs(v - 0.002) <= 0.002 * (1.0 / 129 + 1e-12));
    pm_hdata_free(h);
}

TEST(test_clone)
{
    pm_hdata_t *c = (pm_hdata_t *)(uintptr_t)1;
    CHECK_STATUS(pm_hdata_clone(NULL, &c), PM_EINVAL);
    CHECK(c == NULL);
    pm_hdata_t *h = sample_data();
    REQUIRE(h);
    CHECK_STATUS(pm_hdata_clone(h, NULL), PM_EINVAL);
    CHECK_OK(pm_hdata_clone(h, &c));
    REQUIRE(c);
    unsigned char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    REQUIRE(encode(h, &a, &alen) && encode(c, &b, &blen));
    CHECK(same_bytes(a, alen, b, blen));
    pm_free(b);
    /* Deep: recording into the clone leaves the original alone. */
    CHECK_OK(pm_hdata_record(c, 0.75));
    CHECK_EQ_U64(pm_hdata_count(c), pm_hdata_count(h) + 1);
    REQUIRE(encode(h, &b, &blen));
    CHECK(same_bytes(a, alen, b, blen));
    pm_free(a);
    pm_free(b);
    pm_hdata_free(c);

    /* Cloning empty data. */
    pm_hdata_t *e = NULL;
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &e));
    CHECK_OK(pm_hdata_clone(e, &c));
    REQUIRE(c);
    CHECK_EQ_U64(pm_hdata_count(c), 0);
    CHECK_OK(pm_hdata_record(c, 1));
    CHECK_EQ_U64(pm_hdata_count(c), 1);
    pm_hdata_free(c);
    pm_hdata_free(e);
    pm_hdata_free(h);
}

/* ------------------------------------------------------------ merge */

TEST(test_merge_bad_inputs)
{
    pm_hdata_t *h = sample_data();
    REQUIRE(h);
    CHECK_STATUS(pm_hdata_merge(NULL, h), PM_EINVAL);
    CHECK_STATUS(pm_hdata_merge(h, NULL), PM_EINVAL);
    CHECK_STATUS(pm_hdata_merge(NULL, NULL), PM_EINVAL);
    CHECK_EQ_U64(pm_hdata_count(h), 9);
    pm_hdata_free(h);
}

TEST(test_merge_different_ranges)
{
    pm_hdata_t *dst = sample_data(); /* [1e-6, 100] */
    REQUIRE(dst);
    unsigned char *before = NULL, *after = NULL;
    size_t blen = 0, alen = 0;
    REQUIRE(encode(dst, &before, &blen));
    static const double ranges[][2] = {
        {1e-9, 100},  /* other lowest */
        {1e-6, 1000}, /* other highest */
        {1e-9, 1e4},  /* both */
        /* Same fine-bucket keys, other bounds: still a different range. */
        {1.0000001e-6, 100},
        {1e-6, 100.00001},
    };
    for (size_t i = 0; i < sizeof ranges / sizeof ranges[0]; i++) {
        pm_hdata_t *src = NULL;
        CHECK_OK(pm_hdata_new(ranges[i][0], ranges[i][1], &src));
        REQUIRE(src);
        CHECK_OK(pm_hdata_record(src, 0.5));
        int st = pm_hdata_merge(dst, src);
        if (st != PM_ERANGE)
            TH_FAIL_("merge of [%g, %g] into [1e-6, 100] = %s, want PM_ERANGE", ranges[i][0],
                     ranges[i][1], pm_status_name(st));
        pm_hdata_free(src);
    }
    REQUIRE(encode(dst, &after, &alen));
    CHECK(same_bytes(before, blen, after, alen)); /* dst unchanged */
    pm_free(before);
    pm_free(after);
    pm_hdata_free(dst);
}

TEST(test_merge_values)
{
    pm_hdata_t *a = NULL, *b = NULL, *all = NULL;
    CHECK_OK(pm_hdata_new(1e-6, 100, &a));
    CHECK_OK(pm_hdata_new(1e-6, 100, &b));
    CHECK_OK(pm_hdata_new(1e-6, 100, &all));
    REQUIRE(a && b && all);

    /* Empty into empty, empty into data, data into empty. */
    CHECK_OK(pm_hdata_merge(a, b));
    CHECK_EQ_U64(pm_hdata_count(a), 0);
    CHECK(isnan(pm_hdata_min(a)));
    for (int i = 1; i <= 50; i++) {
        double v = i * 0.01;
        CHECK_OK(pm_hdata_record(i % 3 ? a : b, v));
        CHECK_OK(pm_hdata_record(all, v));
    }
    CHECK_OK(pm_hdata_record(b, 1e-9)); /* underflow, only in b */
    CHECK_OK(pm_hdata_record(all, 1e-9));
    CHECK_OK(pm_hdata_record(a, 1e9)); /* overflow, only in a */
    CHECK_OK(pm_hdata_record(all, 1e9));

    pm_hdata_t *m = NULL;
    CHECK_OK(pm_hdata_clone(a, &m));
    REQUIRE(m);
    CHECK_OK(pm_hdata_merge(m, b));
    CHECK_EQ_U64(pm_hdata_count(m), pm_hdata_count(all));
    CHECK_SAME_DBL(pm_hdata_min(m), 1e-9);
    CHECK_SAME_DBL(pm_hdata_max(m), 1e9);
    CHECK_NEAR(pm_hdata_sum(m), pm_hdata_sum(all), 1e-12 * fabs(pm_hdata_sum(all)));
    for (int k = 0; k <= 100; k++) {
        double x = 0, y = 0;
        CHECK_OK(pm_hdata_quantile(m, k / 100.0, &x));
        CHECK_OK(pm_hdata_quantile(all, k / 100.0, &y));
        if (x != y) TH_FAIL_("q=%d%%: merged %.17g vs direct %.17g", k, x, y);
    }

    /* Merging empty data changes nothing; merging into empty copies. */
    pm_hdata_t *e = NULL, *e2 = NULL;
    CHECK_OK(pm_hdata_new(1e-6, 100, &e));
    CHECK_OK(pm_hdata_new(1e-6, 100, &e2));
    CHECK_OK(pm_hdata_merge(m, e));
    CHECK_EQ_U64(pm_hdata_count(m), pm_hdata_count(all));
    CHECK_OK(pm_hdata_merge(e2, all));
    unsigned char *x1 = NULL, *x2 = NULL;
    size_t l1 = 0, l2 = 0;
    REQUIRE(encode(e2, &x1, &l1) && encode(all, &x2, &l2));
    /* Same buckets, count, min, max; the sum is 0 + sum, so the bytes match. */
    CHECK(same_bytes(x1, l1, x2, l2));
    pm_free(x1);
    pm_free(x2);

    /* Merging data into itself doubles it. */
    uint64_t n = pm_hdata_count(all);
    double med = 0, med2 = 0;
    CHECK_OK(pm_hdata_quantile(all, 0.5, &med));
    CHECK_OK(pm_hdata_merge(all, all));
    CHECK_EQ_U64(pm_hdata_count(all), 2 * n);
    CHECK_OK(pm_hdata_quantile(all, 0.5, &med2));
    CHECK_SAME_DBL(med, med2);

    pm_hdata_free(e);
    pm_hdata_free(e2);
    pm_hdata_free(m);
    pm_hdata_free(a);
    pm_hdata_free(b);
    pm_hdata_free(all);
}

/* The total count is a u64; merging two totals that do not fit must not wrap
 * silently (a wrapped count makes the data claim fewer values than it holds).
 * Decoded data can carry any count, so this is reachable from input bytes. */
TEST(test_merge_count_overflow)
{
    unsigned char buf[HEADER + PAIR];
    memset(buf, 0, sizeof buf);
    memcpy(buf, "PMH1", 4);
    put_le(buf + OFF_LOWEST, d2u(1e-9), 8);
    put_le(buf + OFF_HIGHEST, d2u(1e4), 8);
    put_le(buf + OFF_COUNT, (uint64_t)1 << 63, 8);
    put_le(buf + OFF_SUM, d2u(1.0), 8);
    put_le(buf + OFF_MIN, d2u(1.0), 8);
    put_le(buf + OFF_MAX, d2u(1.0), 8);
    put_le(buf + OFF_N, 1, 4);
    put_le(buf + HEADER, 1, 4);
    put_le(buf + HEADER + 4, (uint64_t)1 << 63, 8);
    pm_hdata_t *h = NULL, *c = NULL;
    CHECK_OK(pm_hdata_decode(buf, sizeof buf, &h));
    REQUIRE(h);
    CHECK_EQ_U64(pm_hdata_count(h), (uint64_t)1 << 63);
    CHECK_OK(pm_hdata_clone(h, &c));
    REQUIRE(c);
    /* 2^63 + 2^63 does not fit in a u64: PM_ERANGE, dst unchanged. */
    CHECK_STATUS(pm_hdata_merge(h, c), PM_ERANGE);
    CHECK_EQ_U64(pm_hdata_count(h), (uint64_t)1 << 63);
    double v = 0;
    CHECK_OK(pm_hdata_quantile(h, 0.5, &v));
    pm_hdata_free(c);
    pm_hdata_free(h);
}

/* ------------------------------------------------------------ encoding */

TEST(test_encode_bad_inputs)
{
    pm_hdata_t *h = sample_data();
    REQUIRE(h);
    unsigned char *buf = (unsigned char *)(uintptr_t)1;
    size_t len = 99;
    CHECK_STATUS(pm_hdata_encode(NULL, &buf, &len), PM_EINVAL);
    CHECK(buf == NULL);
    CHECK_EQ_U64(len, 0);
    len = 99;
    CHECK_STATUS(pm_hdata_encode(h, NULL, &len), PM_EINVAL);
    CHECK_EQ_U64(len, 0);
    buf = (unsigned char *)(uintptr_t)1;
    CHECK_STATUS(pm_hdata_encode(h, &buf, NULL), PM_EINVAL);
    CHECK(buf == NULL);
    pm_hdata_free(h);
    pm_free(NULL); /* no-op */
}

TEST(test_decode_bad_inputs)
{
    pm_hdata_t *h = sample_data(), *d = (pm_hdata_t *)(uintptr_t)1;
    REQUIRE(h);
    unsigned char *buf = NULL;
    size_t len = 0;
    REQUIRE(encode(h, &buf, &len));
    CHECK_STATUS(pm_hdata_decode(buf, len, NULL), PM_EINVAL);
    CHECK_STATUS(pm_hdata_decode(NULL, len, &d), PM_EINVAL);
    CHECK(d == NULL);
    d = (pm_hdata_t *)(uintptr_t)1;
    CHECK_STATUS(pm_hdata_decode(NULL, 0, &d), PM_EINVAL);
    CHECK(d == NULL);
    pm_free(buf);
    pm_hdata_free(h);
}

TEST(test_round_trip)
{
    pm_hdata_t *h = sample_data();
    REQUIRE(h);
    unsigned char *buf = NULL, *buf2 = NULL;
    size_t len = 0, len2 = 0;
    REQUIRE(encode(h, &buf, &len));
    /* Layout: header, then one pair per non-empty fine bucket. The sample's 9
     * values fill 7 buckets (0.001 and 0.002 twice). */
    CHECK_EQ_U64(len, HEADER + 7 * PAIR);
    CHECK(memcmp(buf, "PMH1", 4) == 0);
    CHECK_SAME_DBL(u2d(get_le(buf + OFF_LOWEST, 8)), 1e-6);
    CHECK_SAME_DBL(u2d(get_le(buf + OFF_HIGHEST, 8)), 100);
    CHECK_EQ_U64(get_le(buf + OFF_COUNT, 8), 9);
    CHECK_SAME_DBL(u2d(get_le(buf + OFF_SUM, 8)), pm_hdata_sum(h));
    CHECK_SAME_DBL(u2d(get_le(buf + OFF_MIN, 8)), 1e-9);
    CHECK_SAME_DBL(u2d(get_le(buf + OFF_MAX, 8)), 1e6);
    CHECK_EQ_U64(get_le(buf + OFF_N, 4), 7);
    /* Underflow is index 0, overflow nb+1. */
    uint32_t nb = fine_buckets(1e-6, 100);
    CHECK_EQ_U64(get_le(buf + HEADER, 4), 0);
    CHECK_EQ_U64(get_le(buf + HEADER + 6 * PAIR, 4), nb + 1);

    pm_hdata_t *d = NULL;
    CHECK_OK(pm_hdata_decode(buf, len, &d));
    REQUIRE(d);
    CHECK_EQ_U64(pm_hdata_count(d), pm_hdata_count(h));
    CHECK_SAME_DBL(pm_hdata_sum(d), pm_hdata_sum(h));
    CHECK_SAME_DBL(pm_hdata_min(d), pm_hdata_min(h));
    CHECK_SAME_DBL(pm_hdata_max(d), pm_hdata_max(h));
    for (int k = 0; k <= 1000; k++) {
        double x = 0, y = 0;
        CHECK_OK(pm_hdata_quantile(h, k / 1000.0, &x));
        CHECK_OK(pm_hdata_quantile(d, k / 1000.0, &y));
        if (x != y) TH_FAIL_("q=%g: %.17g before, %.17g after", k / 1000.0, x, y);
    }
    /* Canonical: encoding the decoded copy gives the same bytes. */
    REQUIRE(encode(d, &buf2, &len2));
    CHECK(same_bytes(buf, len, buf2, len2));
    pm_free(buf2);
    /* The decoded copy is ordinary data: it records and merges. */
    CHECK_OK(pm_hdata_record(d, 0.5));
    CHECK_OK(pm_hdata_merge(d, h));
    CHECK_EQ_U64(pm_hdata_count(d), 19);
    pm_hdata_free(d);
    pm_free(buf);

    /* Empty data: header only. */
    pm_hdata_t *e = NULL;
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &e));
    REQUIRE(encode(e, &buf, &len));
    CHECK_EQ_U64(len, HEADER);
    CHECK_OK(pm_hdata_decode(buf, len, &d));
    REQUIRE(d);
    CHECK_EQ_U64(pm_hdata_count(d), 0);
    CHECK(isnan(pm_hdata_min(d)));
    double v;
    CHECK_STATUS(pm_hdata_quantile(d, 0.5, &v), PM_ENOENT);
    REQUIRE(encode(d, &buf2, &len2));
    CHECK(same_bytes(buf, len, buf2, len2));
    pm_free(buf2);
    pm_free(buf);
    pm_hdata_free(d);
    pm_hdata_free(e);
    pm_hdata_free(h);
}

/* Infinities are data: +Inf lands in the overflow bucket (max +Inf), -Inf in
 * the underflow one (min -Inf). Both round-trip. */
TEST(test_round_trip_infinities)
{
    pm_hdata_t *h = NULL, *d = NULL;
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &h));
    REQUIRE(h);
    CHECK_OK(pm_hdata_record(h, INFINITY));
    CHECK_OK(pm_hdata_record(h, 1.0));
    unsigned char *buf = NULL;
    size_t len = 0;
    REQUIRE(encode(h, &buf, &len));
    CHECK_OK(pm_hdata_decode(buf, len, &d));
    REQUIRE(d);
    CHECK_SAME_DBL(pm_hdata_max(d), INFINITY);
    CHECK_SAME_DBL(pm_hdata_sum(d), INFINITY);
    pm_free(buf);
    pm_hdata_free(d);
    pm_hdata_free(h);
}

/* pm_hdata_decode "decodes what pm_hdata_encode produced". Recording +Inf and
 * -Inf (both accepted by pm_hdata_record and pm_histogram_observe) makes the
 * sum NaN, and the decoder must still accept that encoding: a NaN sum is only
 * malformed when no infinity was recorded (see test_decode_rejects). */
TEST(test_round_trip_both_infinities)
{
    pm_hdata_t *h = NULL, *d = NULL;
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &h));
    REQUIRE(h);
    CHECK_OK(pm_hdata_record(h, INFINITY));
    CHECK_OK(pm_hdata_record(h, -INFINITY));
    CHECK_OK(pm_hdata_record(h, 1.0));
    CHECK(isnan(pm_hdata_sum(h)));
    unsigned char *buf = NULL;
    size_t len = 0;
    REQUIRE(encode(h, &buf, &len));
    CHECK_OK(pm_hdata_decode(buf, len, &d));
    if (d) {
        CHECK_EQ_U64(pm_hdata_count(d), 3);
        CHECK(isnan(pm_hdata_sum(d)));
        CHECK_SAME_DBL(pm_hdata_min(d), -INFINITY);
        CHECK_SAME_DBL(pm_hdata_max(d), INFINITY);
    }
    pm_free(buf);
    pm_hdata_free(d);
    pm_hdata_free(h);
}

/* A NaN sum also comes from finite values whose running sum overflowed:
 * -DBL_MAX twice makes -Inf, then +Inf gives NaN with min finite; and two
 * halves whose sums overflowed to +Inf and -Inf merge to NaN with both
 * extremes finite (as do two stripes of a live histogram). Each encoding must
 * decode. What every NaN sum does need is a negative and a positive value:
 * count >= 2 and min < 0 < max. */
TEST(test_round_trip_nan_sum_from_overflow)
{
    pm_hdata_t *h = NULL, *d = NULL;
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &h));
    REQUIRE(h);
    CHECK_OK(pm_hdata_record(h, -DBL_MAX));
    CHECK_OK(pm_hdata_record(h, -DBL_MAX));
    CHECK_OK(pm_hdata_record(h, INFINITY));
    CHECK(isnan(pm_hdata_sum(h)));
    unsigned char *buf = NULL;
    size_t len = 0;
    REQUIRE(encode(h, &buf, &len));
    CHECK_OK(pm_hdata_decode(buf, len, &d));
    if (d) CHECK_EQ_U64(pm_hdata_count(d), 3);
    pm_hdata_free(d);
    d = NULL;
    pm_free(buf);
    pm_hdata_free(h);

    pm_hdata_t *pos = NULL, *neg = NULL;
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &pos));
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &neg));
    REQUIRE(pos && neg);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(pm_hdata_record(pos, DBL_MAX));
        CHECK_OK(pm_hdata_record(neg, -DBL_MAX));
    }
    CHECK_OK(pm_hdata_merge(pos, neg));
    CHECK(isnan(pm_hdata_sum(pos)));
    CHECK(isfinite(pm_hdata_min(pos)) && isfinite(pm_hdata_max(pos)));
    REQUIRE(encode(pos, &buf, &len));
    CHECK_OK(pm_hdata_decode(buf, len, &d));
    if (d) CHECK_EQ_U64(pm_hdata_count(d), 4);
    pm_hdata_free(d);
    pm_free(buf);
    pm_hdata_free(pos);
    pm_hdata_free(neg);
}

/* Builds a valid two-bucket encoding over [1e-6, 100] by hand, for mutation. */
static size_t two_buckets(unsigned char *buf, uint32_t i0, uint64_t c0, uint32_t i1, uint64_t c1)
{
    memset(buf, 0, HEADER + 2 * PAIR);
    memcpy(buf, "PMH1", 4);
    put_le(buf + OFF_LOWEST, d2u(1e-6), 8);
    put_le(buf + OFF_HIGHEST, d2u(100), 8);
    put_le(buf + OFF_COUNT, c0 + c1, 8);
    put_le(buf + OFF_SUM, d2u(3.5), 8);
    put_le(buf + OFF_MIN, d2u(0.5), 8);
    put_le(buf + OFF_MAX, d2u(2.0), 8);
    put_le(buf + OFF_N, 2, 4);
    put_le(buf + HEADER, i0, 4);
    put_le(buf + HEADER + 4, c0, 8);
    put_le(buf + HEADER + PAIR, i1, 4);
    put_le(buf + HEADER + PAIR + 4, c1, 8);
    return HEADER + 2 * PAIR;
}

TEST(test_decode_rejects)
{
    unsigned char b[HEADER + 2 * PAIR + 16];
    size_t len = two_buckets(b, 10, 3, 20, 4);
    pm_hdata_t *d = NULL;
    CHECK_OK(pm_hdata_decode(b, len, &d)); /* the baseline is valid */
    REQUIRE(d);
    CHECK_EQ_U64(pm_hdata_count(d), 7);
    pm_hdata_free(d);
    uint32_t nb = fine_buckets(1e-6, 100);

    /* Wrong magic (each byte in turn, and the lower-case form). */
    for (int i = 0; i < 4; i++) {
        len = two_buckets(b, 10, 3, 20, 4);
        b[i] ^= 0x20;
        CHECK_REJECTS(b, len);
    }
    len = two_buckets(b, 10, 3, 20, 4);
    memcpy(b, "PMH2", 4);
    CHECK_REJECTS(b, len);

    /* Trailing bytes. */
    len = two_buckets(b, 10, 3, 20, 4);
    CHECK_REJECTS(b, len + 1);
    CHECK_REJECTS(b, len + PAIR); /* a whole extra (zero) pair */

    /* Count in the header disagrees with the pairs. */
    len = two_buckets(b, 10, 3, 20, 4);
    put_le(b + OFF_COUNT, 8, 8);
    CHECK_REJECTS(b, len);
    put_le(b + OFF_COUNT, 6, 8);
    CHECK_REJECTS(b, len);
    put_le(b + OFF_COUNT, 0, 8); /* count 0 with pairs */
    CHECK_REJECTS(b, len);

    /* Pair count n disagrees with the length (larger, smaller, huge). */
    len = two_buckets(b, 10, 3, 20, 4);
    put_le(b + OFF_N, 3, 4);
    CHECK_REJECTS(b, len);
    put_le(b + OFF_N, 1, 4);
    CHECK_REJECTS(b, len);
    put_le(b + OFF_N, 0xFFFFFFFFu, 4);
    CHECK_REJECTS(b, len);
    put_le(b + OFF_N, 0x15555556u, 4); /* n * 12 wraps a 32-bit size */
    CHECK_REJECTS(b, len);

    /* Indexes not strictly increasing. */
    len = two_buckets(b, 10, 3, 10, 4);
    CHECK_REJECTS(b, len);
    len = two_buckets(b, 20, 3, 10, 4);
    CHECK_REJECTS(b, len);

    /* Index out of range: nb+1 (overflow) is the last valid one. */
    len = two_buckets(b, 10, 3, nb + 1, 4);
    CHECK_OK(pm_hdata_decode(b, len, &d));
    pm_hdata_free(d);
    len = two_buckets(b, 10, 3, nb + 2, 4);
    CHECK_REJECTS(b, len);
    len = two_buckets(b, 10, 3, 0xFFFFFFFFu, 4);
    CHECK_REJECTS(b, len);

    /* A pair with count zero (the total still matches). */
    len = two_buckets(b, 10, 0, 20, 7);
    CHECK_REJECTS(b, len);
    len = two_buckets(b, 10, 7, 20, 0);
    CHECK_REJECTS(b, len);

    /* Pair counts whose sum wraps to the header's count. */
    len = two_buckets(b, 10, UINT64_MAX, 20, 8);
    put_le(b + OFF_COUNT, 7, 8);
    CHECK_REJECTS(b, len);

    /* NaN in sum, min or max; min > max. A NaN sum with finite extremes
     * cannot come from recording (only +Inf + -Inf makes one). */
    static const int nan_fields[] = {OFF_SUM, OFF_MIN, OFF_MAX};
    for (size_t i = 0; i < 3; i++) {
        len = two_buckets(b, 10, 3, 20, 4);
        put_le(b + nan_fields[i], d2u(NAN), 8);
        CHECK_REJECTS(b, len);
    }
    len = two_buckets(b, 10, 3, 20, 4);
    put_le(b + OFF_MIN, d2u(3.0), 8);
    CHECK_REJECTS(b, len);

    /* Bad ranges in the header. */
    static const double bad_ranges[][2] = {
        {0, 100},   {-1e-6, 100},     {1e-6, 1e-6},       {1e-6, 1e-7},
        {NAN, 100}, {1e-6, INFINITY}, {DBL_MIN / 4, 100}, {1e-300, 1e300},
    };
    for (size_t i = 0; i < sizeof bad_ranges / sizeof bad_ranges[0]; i++) {
        len = two_buckets(b, 10, 3, 20, 4);
        put_le(b + OFF_LOWEST, d2u(bad_ranges[i][0]), 8);
        put_le(b + OFF_HIGHEST, d2u(bad_ranges[i][1]), 8);
        CHECK_REJECTS(b, len);
    }

    /* Empty data with a pair count of zero but a non-zero count. */
    len = two_buckets(b, 10, 3, 20, 4);
    put_le(b + OFF_N, 0, 4);
    CHECK_REJECTS(b, HEADER);
}

/* A NaN sum needs a negative and a positive value (count >= 2, min < 0 < max);
 * other encodings with one are malformed. (The accepting side is
 * test_round_trip_both_infinities and test_round_trip_nan_sum_from_overflow.) */
TEST(test_decode_nan_sum_rules)
{
    unsigned char b[HEADER + 2 * PAIR];
    uint32_t nb = fine_buckets(1e-6, 100);
    pm_hdata_t *d = NULL;
    /* Not with count 0 (empty data with a NaN sum would poison every merge)... */
    memset(b, 0, HEADER);
    memcpy(b, "PMH1", 4);
    put_le(b + OFF_LOWEST, d2u(1e-6), 8);
    put_le(b + OFF_HIGHEST, d2u(100), 8);
    put_le(b + OFF_SUM, d2u(NAN), 8);
    put_le(b + OFF_MIN, d2u(-INFINITY), 8);
    put_le(b + OFF_MAX, d2u(INFINITY), 8);
    CHECK_REJECTS(b, HEADER);
    /* ...nor with min >= 0 (here min = max = +Inf, one value). */
    (void)two_buckets(b, nb + 1, 1, 0, 0);
    put_le(b + OFF_N, 1, 4);
    put_le(b + OFF_COUNT, 1, 8);
    put_le(b + OFF_SUM, d2u(NAN), 8);
    put_le(b + OFF_MIN, d2u(INFINITY), 8);
    put_le(b + OFF_MAX, d2u(INFINITY), 8);
    CHECK_REJECTS(b, HEADER + PAIR);
    put_le(b + OFF_SUM, d2u(INFINITY), 8); /* the same with its real sum is fine */
    CHECK_OK(pm_hdata_decode(b, HEADER + PAIR, &d));
    pm_hdata_free(d);
}

/* Every proper prefix of a valid encoding is rejected, and the decoder reads
 * only inside it: each prefix is copied into a buffer of exactly its length,
 * so ASan catches any read past len. */
TEST(test_decode_truncated_everywhere)
{
    pm_hdata_t *h = sample_data();
    REQUIRE(h);
    unsigned char *full = NULL;
    size_t len = 0;
    REQUIRE(encode(h, &full, &len));
    size_t rejected = 0;
    for (size_t n = 0; n < len; n++) {
        unsigned char *cut = malloc(n ? n : 1);
        REQUIRE(cut);
        memcpy(cut, full, n);
        pm_hdata_t *d = (pm_hdata_t *)(uintptr_t)1;
        int st = pm_hdata_decode(cut, n, &d);
        if (st == PM_EPARSE && d == NULL)
            rejected++;
        else
            TH_FAIL_("prefix of %zu/%zu bytes: %s", n, len, pm_status_name(st));
        if (st == PM_OK) pm_hdata_free(d);
        free(cut);
    }
    CHECK_EQ_U64(rejected, len);
    pm_hdata_t *d = NULL;
    CHECK_OK(pm_hdata_decode(full, len, &d));
    pm_hdata_free(d);
    pm_free(full);
    pm_hdata_free(h);
}

/* A snapshot's data is borrowed: it can be read, cloned, encoded and merged
 * from, but not changed or freed through the pm_hdata_* calls. */
TEST(test_borrowed_from_snapshot)
{
    pm_registry_t *r = NULL;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_histogram_t *hh = NULL;
    CHECK_OK(pm_histogram_new(r, "work_seconds", "Work.", &hh));
    pm_histogram_observe(hh, 0.25);
    pm_histogram_observe(hh, 0.5);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    REQUIRE(s);
    const pm_snap_series_t *se = NULL;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++)
        if (!strcmp(pm_snap_family_name(pm_snapshot_family(s, i)), "work_seconds"))
            se = pm_snap_family_series(pm_snapshot_family(s, i), 0);
    REQUIRE(se);
    const pm_hdata_t *bh = pm_snap_series_hdata(se);
    REQUIRE(bh);
    CHECK_EQ_U64(pm_hdata_count(bh), 2);

    pm_hdata_t *mut = (pm_hdata_t *)(uintptr_t)bh; /* misuse, on purpose */
    CHECK_STATUS(pm_hdata_record(mut, 1.0), PM_EINVAL);
    pm_hdata_t *other = NULL;
    CHECK_OK(pm_hdata_new(1e-9, 1e4, &other)); /* the default family range */
    CHECK_STATUS(pm_hdata_merge(mut, other), PM_EINVAL);
    pm_hdata_free(mut); /* no-op */
    CHECK_EQ_U64(pm_hdata_count(bh), 2);

    /* Reading from it is fine. */
    CHECK_OK(pm_hdata_merge(other, bh));
    CHECK_EQ_U64(pm_hdata_count(other), 2);
    pm_hdata_t *c = NULL;
    CHECK_OK(pm_hdata_clone(bh, &c));
    CHECK_OK(pm_hdata_record(c, 1.0));
    CHECK_EQ_U64(pm_hdata_count(c), 3);
    unsigned char *buf = NULL;
    size_t len = 0;
    CHECK_OK(pm_hdata_encode(bh, &buf, &len));
    pm_free(buf);
    pm_hdata_free(c);
    pm_hdata_free(other);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(test_new_bad_inputs), TH_CASE(test_empty_accessors),
          TH_CASE(test_record_bad_inputs), TH_CASE(test_quantile_bad_inputs), TH_CASE(test_clone),
          TH_CASE(test_merge_bad_inputs), TH_CASE(test_merge_different_ranges),
          TH_CASE(test_merge_values), TH_CASE(test_merge_count_overflow),
          TH_CASE(test_encode_bad_inputs), TH_CASE(test_decode_bad_inputs),
          TH_CASE(test_round_trip), TH_CASE(test_round_trip_infinities),
          TH_CASE(test_round_trip_both_infinities), TH_CASE(test_round_trip_nan_sum_from_overflow),
          TH_CASE(test_decode_rejects), TH_CASE(test_decode_nan_sum_rules),
          TH_CASE(test_decode_truncated_everywhere), TH_CASE(test_borrowed_from_snapshot))
