/* Quantile accuracy of histograms against exact nearest-rank quantiles.
 *
 * For each distribution (uniform, log-normal, bimodal, constant, Pareto with
 * alpha 1.1, exponential, and log-uniform over the whole 1 ns .. 1 h span) and
 * each size (1, 2, 10, 1000, 100000, 1000000), data from a fixed-seed PRNG is
 * recorded into a live histogram (family range [1e-9, 3600] seconds) and read
 * back from a snapshot. At q = 0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1 the
 * estimate must be within 1/129 (relative; + 1e-12 for the rounding of the
 * bucket value) of the exact nearest-rank quantile of the sorted data, where
 * rank = max(1, ceil(q * n)) is computed in integers (q = k/1000).
 *
 * The same bound is asserted for the union of two halves recorded in two
 * registries and merged with pm_hdata_clone + pm_hdata_merge, and for the
 * halves sent through pm_hdata_encode -> pm_hdata_decode -> merge (two
 * processes). Merged and pm_hdata_record-built data must give exactly the
 * quantiles of the single live histogram: they hold the same bucket counts.
 *
 * Count, min and max must be exact, sum and mean within 1e-9 relative (a
 * naive double sum of n positive values errs by at most (n-1) * 2^-53
 * relative: 1.1e-10 at n = 10^6). stddev is estimated from the buckets: each
 * value x is replaced by a bucket value within x/129 of it, so by the
 * triangle inequality (Minkowski) the population stddev moves by at most the
 * RMS of those displacements: |sd^ - sd| <= RMS(x)/129. That bound is asserted
 * (with 1e-9 relative slack); for these distributions it is 0.8% to 1.6% of sd.
 *
 * The largest relative error seen per distribution is printed to stdout. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include "internal/pm_internal.h" /* white-box: pm_hdata's buckets */

#include <time.h>

#define LOWEST 1e-9
#define HIGHEST 3600.0
#define BOUND (1.0 / 129)
#define REL_BOUND (BOUND + 1e-12)

/* q = k / 1000 */
static const unsigned q_permille[] = {0, 10, 250, 500, 900, 990, 999, 1000};
#define NQ (sizeof q_permille / sizeof q_permille[0])
static const size_t sizes[] = {1, 2, 10, 1000, 100000, 1000000};
#define NSIZES (sizeof sizes / sizeof sizes[0])

/* ------------------------------------------------------------ PRNG */

/* xoshiro256** seeded through splitmix64 (Blackman & Vigna, public domain). */
typedef struct rng {
    uint64_t s[4];
} rng_t;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static void rng_seed(rng_t *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(rng_t *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in (0, 1]: never 0, so logs and negative powers are finite. */
static double rng_unit(rng_t *r) { return (double)((rng_next(r) >> 11) + 1) * 0x1p-53; }

/* Standard normal (Box-Muller; one of the pair is enough here). */
static double rng_normal(rng_t *r)
{
    double u = rng_unit(r), v = rng_unit(r);
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

static double clip(double x) { return x < LOWEST ? LOWEST : x > HIGHEST ? HIGHEST : x; }

/* ------------------------------------------------------------ distributions */

static double gen_uniform(rng_t *r) { return 1e-3 + rng_unit(r) * (2.0 - 1e-3); }
static double gen_lognormal(rng_t *r) { return clip(0.01 * exp(2.0 * rng_normal(r))); }
static double gen_bimodal(rng_t *r)
{
    /* Fast path ~2 ms (70%) and slow path ~500 ms (30%). */
    if (rng_unit(r) <= 0.7) return clip(2e-3 + 2e-4 * rng_normal(r));
    return clip(0.5 + 0.05 * rng_normal(r));
}
static double gen_constant(rng_t *r)
{
    (void)rng_next(r);
    return 0.0421;
}
static double gen_pareto(rng_t *r) { return clip(1e-4 * pow(rng_unit(r), -1 / 1.1)); }
static double gen_exponential(rng_t *r) { return clip(-0.1 * log(rng_unit(r))); }
static double gen_loguniform(rng_t *r)
{
    return clip(LOWEST * exp(rng_unit(r) * log(HIGHEST / LOWEST)));
}

struct dist {
    const char *name;
    double (*gen)(rng_t *);
};

static const struct dist dists[] = {
    {"uniform", gen_uniform},       {"lognormal", gen_lognormal}, {"bimodal", gen_bimodal},
    {"constant", gen_constant},     {"pareto", gen_pareto},       {"exponential", gen_exponential},
    {"loguniform", gen_loguniform},
};

/* Fills data[n]; log-uniform data also holds both ends of the range. */
static void generate(const struct dist *d, uint64_t seed, double *data, size_t n)
{
    rng_t r;
    rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++) data[i] = d->gen(&r);
    if (d->gen == gen_loguniform) {
        if (n >= 1) data[0] = LOWEST;
        if (n >= 2) data[n - 1] = HIGHEST;
    }
}

/* ------------------------------------------------------------ helpers */

/* Bit-identical doubles (the two quantile paths must agree exactly). */
#define CHECK_SAME_BITS_(a, b)                                                                     \
    do {                                                                                           \
        double sb_a_ = (a), sb_b_ = (b);                                                           \
        if (memcmp(&sb_a_, &sb_b_, sizeof sb_a_) != 0)                                             \
            TH_FAIL_("%s vs %s: %.17g != %.17g", #a, #b, sb_a_, sb_b_);                            \
    } while (0)

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Exact nearest rank, in integers: max(1, ceil(k * n / 1000)). */
static size_t nearest_rank(unsigned k, size_t n)
{
    size_t rank = (size_t)(((uint64_t)k * n + 999) / 1000);
    return rank < 1 ? 1 : rank;
}

static double rel_err(double est, double exact) { return fabs(est - exact) / exact; }

struct live {
    pm_registry_t *r;
    pm_histogram_t *h;
    pm_snapshot_t *snap;
    const pm_snap_series_t *se;
};

static int live_open(struct live *l, double lowest, double highest)
{
    memset(l, 0, sizeof *l);
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    if (pm_registry_new(NULL, &l->r) != PM_OK) return 0;
    int ok =
        pm_family_opts_new(&o) == PM_OK && pm_family_opts_set_range(o, lowest, highest) == PM_OK &&
        pm_family_new(l->r, PM_TYPE_HISTOGRAM, "latency_seconds", "Latency.", o, &f) == PM_OK &&
        pm_histogram_get(f, NULL, 0, &l->h) == PM_OK;
    pm_family_opts_free(o);
    return ok;
}

/* Snapshots the registry; l->se is the histogram's series. */
static int live_read(struct live *l)
{
    if (pm_snapshot_new(l->r, &l->snap) != PM_OK) return 0;
    for (size_t i = 0; i < pm_snapshot_family_count(l->snap); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(l->snap, i);
        if (strcmp(pm_snap_family_name(f), "latency_seconds") == 0)
            l->se = pm_snap_family_series(f, 0);
    }
    return l->se != NULL;
}

static void live_close(struct live *l)
{
    pm_histogram_release(l->h);
    pm_snapshot_release(l->snap);
    pm_registry_free(l->r);
}

/* Per-distribution maxima, for the report. */
struct maxima {
    double live, merged, decoded, permille, stddev_rel;
    size_t checks;
};

/* Checks every quantile of `h` against the sorted data; `what` names the path. */
static void check_quantiles(const pm_hdata_t *h, const double *sorted, size_t n, const char *dist,
                            const char *what, double *max_err, size_t *checks)
{
    for (size_t i = 0; i < NQ; i++) {
        double exact = sorted[nearest_rank(q_permille[i], n) - 1], est = NAN;
        int st = pm_hdata_quantile(h, q_permille[i] / 1000.0, &est);
        if (st != PM_OK) {
            TH_FAIL_("%s n=%zu %s q=%g: %s", dist, n, what, q_permille[i] / 1000.0,
                     pm_status_name(st));
            continue;
        }
        double e = rel_err(est, exact);
        if (!(e <= REL_BOUND))
            TH_FAIL_("%s n=%zu %s q=%g: %.17g vs exact %.17g, relative error %.6g > 1/129", dist, n,
                     what, q_permille[i] / 1000.0, est, exact, e);
        if (e > *max_err) *max_err = e;
        (*checks)++;
    }
}

/* The quantiles of `a` and `b` must be identical (same bucket counts). */
static void check_same_quantiles(const pm_hdata_t *a, const pm_hdata_t *b, const char *dist,
                                 size_t n, const char *what)
{
    for (unsigned k = 0; k <= 1000; k += 5) {
        double x = NAN, y = NAN;
        if (pm_hdata_quantile(a, k / 1000.0, &x) != PM_OK ||
            pm_hdata_quantile(b, k / 1000.0, &y) != PM_OK || x != y) {
            TH_FAIL_("%s n=%zu q=%g: live %.17g, %s %.17g", dist, n, k / 1000.0, x, what, y);
            return;
        }
    }
}

/* Count, sum, min, max, mean, stddev of a series against the exact data. */
static void check_stats(const pm_snap_series_t *se, const double *sorted, size_t n,
                        const char *dist, struct maxima *m)
{
    long double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) {
        sum += sorted[i];
        sq += (long double)sorted[i] * sorted[i];
    }
    long double mean = sum / (long double)n, var = 0;
    for (size_t i = 0; i < n; i++) var += (sorted[i] - mean) * (sorted[i] - mean);
    double sd = (double)sqrtl(var / (long double)n), rms = (double)sqrtl(sq / (long double)n);

    if (pm_snap_series_count(se) != n)
        TH_FAIL_("%s n=%zu: count %llu", dist, n, (unsigned long long)pm_snap_series_count(se));
    double got_sum = pm_snap_series_sum(se);
    if (!(fabs(got_sum - (double)sum) <= 1e-9 * (double)sum))
        TH_FAIL_("%s n=%zu: sum %.17g vs exact %.17Lg", dist, n, got_sum, sum);
    if (pm_snap_series_min(se) != sorted[0])
        TH_FAIL_("%s n=%zu: min %.17g vs %.17g", dist, n, pm_snap_series_min(se), sorted[0]);
    if (pm_snap_series_max(se) != sorted[n - 1])
        TH_FAIL_("%s n=%zu: max %.17g vs %.17g", dist, n, pm_snap_series_max(se), sorted[n - 1]);
    double got_mean = pm_snap_series_mean(se);
    if (!(fabs(got_mean - (double)mean) <= 1e-9 * (double)mean))
        TH_FAIL_("%s n=%zu: mean %.17g vs exact %.17Lg", dist, n, got_mean, mean);
    double got_sd = pm_snap_series_stddev(se), sd_bound = rms * BOUND * (1 + 1e-9) + 1e-300;
    if (!(fabs(got_sd - sd) <= sd_bound))
        TH_FAIL_("%s n=%zu: stddev %.17g vs exact %.17g (bound RMS/129 = %.3g)", dist, n, got_sd,
                 sd, sd_bound);
    if (sd > 1e-9 * (double)mean && n >= 1000) { /* constant data: sd is only rounding */
        double e = fabs(got_sd - sd) / sd;
        if (e > m->stddev_rel) m->stddev_rel = e;
    }
}

/* ------------------------------------------------------------ the matrix */

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void run_distribution(size_t di)
{
    const struct dist *d = &dists[di];
    struct maxima m = {0, 0, 0, 0, 0, 0};
    double t0 = seconds_now();
    for (size_t si = 0; si < NSIZES; si++) {
        size_t n = sizes[si];
        double *data = malloc(n * sizeof *data), *sorted = malloc(n * sizeof *sorted);
        REQUIRE(data && sorted);
        generate(d, 0x5eed0000u + di * 131 + si, data, n);

        /* One live histogram with everything; two registries with one half each. */
        struct live all, half[2];
        REQUIRE(live_open(&all, LOWEST, HIGHEST));
        REQUIRE(live_open(&half[0], LOWEST, HIGHEST) && live_open(&half[1], LOWEST, HIGHEST));
        pm_hdata_t *rec = NULL;
        REQUIRE(pm_hdata_new(LOWEST, HIGHEST, &rec) == PM_OK);
        for (size_t i = 0; i < n; i++) {
            pm_histogram_observe(all.h, data[i]);
            pm_histogram_observe(half[i < n / 2 ? 0 : 1].h, data[i]);
            CHECK_OK(pm_hdata_record(rec, data[i]));
        }
        REQUIRE(live_read(&all) && live_read(&half[0]) && live_read(&half[1]));
        memcpy(sorted, data, n * sizeof *data);
        qsort(sorted, n, sizeof *sorted, cmp_double);

        const pm_hdata_t *live = pm_snap_series_hdata(all.se);
        REQUIRE(live);
        /* Live snapshot: the bound, through the series accessor and the hdata. */
        for (size_t i = 0; i < NQ; i++) {
            double a = NAN, b = NAN;
            CHECK_OK(pm_snap_series_quantile(all.se, q_permille[i] / 1000.0, &a));
            CHECK_OK(pm_hdata_quantile(live, q_permille[i] / 1000.0, &b));
            CHECK_SAME_BITS_(a, b);
        }
        check_quantiles(live, sorted, n, d->name, "live", &m.live, &m.checks);
        /* And every permille, not just the listed q. */
        for (unsigned k = 0; k <= 1000; k++) {
            double est = NAN, exact = sorted[nearest_rank(k, n) - 1];
            CHECK_OK(pm_hdata_quantile(live, k / 1000.0, &est));
            double e = rel_err(est, exact);
            if (!(e <= REL_BOUND))
                TH_FAIL_("%s n=%zu live q=%g: %.17g vs exact %.17g, relative error %.6g", d->name,
                         n, k / 1000.0, est, exact, e);
            if (e > m.permille) m.permille = e;
        }
        check_stats(all.se, sorted, n, d->name, &m);

        /* pm_hdata_record-built data: the same buckets, so the same quantiles. */
        check_same_quantiles(live, rec, d->name, n, "pm_hdata_record");
        CHECK_EQ_U64(pm_hdata_count(rec), n);
        CHECK(pm_hdata_min(rec) == sorted[0] && pm_hdata_max(rec) == sorted[n - 1]);
        CHECK(pm_hdata_sum(rec) == pm_snap_series_sum(all.se)); /* same order, one stripe */

        /* Merge in process: clone one half, merge the other. */
        pm_hdata_t *merged = NULL;
        CHECK_OK(pm_hdata_clone(pm_snap_series_hdata(half[0].se), &merged));
        REQUIRE(merged);
        CHECK_OK(pm_hdata_merge(merged, pm_snap_series_hdata(half[1].se)));
        check_quantiles(merged, sorted, n, d->name, "merged", &m.merged, &m.checks);
        check_same_quantiles(live, merged, d->name, n, "merged");
        CHECK_EQ_U64(pm_hdata_count(merged), n);
        CHECK(pm_hdata_min(merged) == sorted[0] && pm_hdata_max(merged) == sorted[n - 1]);
        CHECK_NEAR(pm_hdata_sum(merged), pm_snap_series_sum(all.se),
                   1e-9 * pm_snap_series_sum(all.se));

        /* Two processes: each half encoded, decoded elsewhere, merged there. */
        unsigned char *buf[2] = {NULL, NULL};
        size_t len[2] = {0, 0};
        pm_hdata_t *dec[2] = {NULL, NULL};
        for (int k = 0; k < 2; k++) {
            CHECK_OK(pm_hdata_encode(pm_snap_series_hdata(half[k].se), &buf[k], &len[k]));
            CHECK_OK(pm_hdata_decode(buf[k], len[k], &dec[k]));
            REQUIRE(dec[k]);
            pm_free(buf[k]);
        }
        CHECK_OK(pm_hdata_merge(dec[0], dec[1]));
        check_quantiles(dec[0], sorted, n, d->name, "decoded+merged", &m.decoded, &m.checks);
        check_same_quantiles(live, dec[0], d->name, n, "decoded+merged");
        CHECK_EQ_U64(pm_hdata_count(dec[0]), n);
        CHECK(pm_hdata_min(dec[0]) == sorted[0] && pm_hdata_max(dec[0]) == sorted[n - 1]);

        pm_hdata_free(dec[0]);
        pm_hdata_free(dec[1]);
        pm_hdata_free(merged);
        pm_hdata_free(rec);
        live_close(&all);
        live_close(&half[0]);
        live_close(&half[1]);
        free(data);
        free(sorted);
    }
    printf("accuracy %-12s max relative error at the listed q: live %.6f, merged %.6f, "
           "decoded+merged %.6f (%zu checks); every permille (live): %.6f; bound 1/129 = %.6f; "
           "stddev error %.4f%% (n >= 1000); %.2f s\n",
           d->name, m.live, m.merged, m.decoded, m.checks, m.permille, BOUND, 100 * m.stddev_rel,
           seconds_now() - t0);
}

TEST(test_uniform) { run_distribution(0); }
TEST(test_lognormal) { run_distribution(1); }
TEST(test_bimodal) { run_distribution(2); }
TEST(test_constant) { run_distribution(3); }
TEST(test_pareto) { run_distribution(4); }
TEST(test_exponential) { run_distribution(5); }
TEST(test_loguniform) { run_distribution(6); }

/* ------------------------------------------------------------ the bound is tight */

/* In every fine bucket inside [1e-9, 3600], record the bucket's lowest and
 * highest doubles twice each: ranks 1 and 4 are the exact min and max, while
 * rank 2 (true value: the low edge) and rank 3 (the high edge) are both
 * reported as the bucket value. Their errors approach 1/129 (low edge:
 * exactly 1/129 in real arithmetic), never exceed it. */
TEST(test_bucket_edges)
{
    uint64_t lo_key, hi_key, k;
    double x = LOWEST, y = HIGHEST;
    memcpy(&lo_key, &x, sizeof x);
    memcpy(&hi_key, &y, sizeof y);
    lo_key = (lo_key >> 46) + 1; /* first bucket wholly inside the range */
    hi_key >>= 46;
    double worst = 0;
    size_t buckets = 0;
    for (k = lo_key; k < hi_key; k++) {
        uint64_t blo = k << 46, bhi = ((k + 1) << 46) - 1;
        double lo, hi;
        memcpy(&lo, &blo, sizeof lo);
        memcpy(&hi, &bhi, sizeof hi);
        pm_hdata_t *h = NULL;
        REQUIRE(pm_hdata_new(LOWEST, HIGHEST, &h) == PM_OK);
        CHECK_OK(pm_hdata_record(h, lo));
        CHECK_OK(pm_hdata_record(h, lo));
        CHECK_OK(pm_hdata_record(h, hi));
        CHECK_OK(pm_hdata_record(h, hi));
        double q0 = NAN, q1 = NAN, qmin = NAN, qmax = NAN;
        CHECK_OK(pm_hdata_quantile(h, 0.5, &q0));  /* rank 2 */
        CHECK_OK(pm_hdata_quantile(h, 0.75, &q1)); /* rank 3 */
        CHECK(q0 == q1);                           /* one bucket, one value */
        CHECK_OK(pm_hdata_quantile(h, 0.0, &qmin));
        CHECK_OK(pm_hdata_quantile(h, 1.0, &qmax));
        CHECK(qmin == lo && qmax == hi); /* the extremes are exact */
        double e0 = rel_err(q0, lo), e1 = rel_err(q1, hi);
        if (!(e0 <= REL_BOUND && e1 <= REL_BOUND))
            TH_FAIL_("bucket [%.17g, %.17g]: value %.17g, errors %.3g %.3g", lo, hi, q0, e0, e1);
        worst = fmax(worst, fmax(e0, e1));
        buckets++;
        pm_hdata_free(h);
    }
    CHECK(worst > BOUND * (1 - 1e-6)); /* attained: the bound cannot be tightened */
    printf("accuracy %-12s max relative error %.9f over %zu buckets at their edges "
           "(bound %.9f)\n",
           "edges", worst, buckets, BOUND);
}

/* The same adversarial data through live histograms, which keep only the
 * buckets hit (lib/histogram.c): both edges of every bucket, twice, into one
 * series, (0) from one thread with no maintenance (the first table fills, a
 * spare dense one takes over), (1) with maintenance every 1000 records (the
 * table grows), (2) from an attached thread with maintenance (its own table,
 * swapped under it). The buckets equal pm_hdata_record's and every rank's
 * value errs by at most 1/129. */
static void edges_live(int mode)
{
    uint64_t lo_key, hi_key;
    double x = LOWEST, y = HIGHEST;
    memcpy(&lo_key, &x, sizeof x);
    memcpy(&hi_key, &y, sizeof y);
    lo_key = (lo_key >> 46) + 1;
    hi_key >>= 46;
    size_t nb = (size_t)(hi_key - lo_key), n = 4 * nb;
    double *data = malloc(n * sizeof *data);
    REQUIRE(data);
    struct live l;
    REQUIRE(live_open(&l, LOWEST, HIGHEST));
    if (mode == 2) CHECK_OK(pm_thread_attach(l.r));
    pm_hdata_t *ref = NULL;
    REQUIRE(pm_hdata_new(LOWEST, HIGHEST, &ref) == PM_OK);
    size_t m = 0;
    for (uint64_t k = lo_key; k < hi_key; k++) {
        uint64_t blo = k << 46, bhi = ((k + 1) << 46) - 1;
        double lo, hi;
        memcpy(&lo, &blo, sizeof lo);
        memcpy(&hi, &bhi, sizeof hi);
        double four[4] = {lo, lo, hi, hi};
        for (int j = 0; j < 4; j++) {
            pm_histogram_observe(l.h, four[j]);
            CHECK_OK(pm_hdata_record(ref, four[j]));
            data[m++] = four[j];
            if (mode && m % 1000 == 0) CHECK_OK(pm_registry_maintain(l.r));
        }
    }
    REQUIRE(live_read(&l));
    const pm_hdata_t *h = pm_snap_series_hdata(l.se);
    REQUIRE(h);
    CHECK_EQ_U64(pm_hdata_count(h), n);
    CHECK(h->n == ref->n && !memcmp(h->idx, ref->idx, h->n * sizeof *h->idx) &&
          !memcmp(h->cnt, ref->cnt, h->n * sizeof *h->cnt));
    double worst = 0;
    for (size_t r = 1; r <= n; r++) {
        double est = NAN;
        CHECK_OK(pm_hdata_quantile(h, ((double)r - 0.5) / (double)n, &est)); /* rank r */
        double e = rel_err(est, data[r - 1]);                                /* data is sorted */
        if (!(e <= REL_BOUND)) {
            TH_FAIL_("mode %d rank %zu: %.17g vs %.17g, error %.3g", mode, r, est, data[r - 1], e);
            break;
        }
        worst = fmax(worst, e);
    }
    CHECK(worst > BOUND * (1 - 1e-6));
    printf("accuracy %-12s max relative error %.9f over %zu ranks, live (%s)\n", "edges", worst, n,
           mode == 0 ? "one thread, no maintenance"
           : mode == 1 ? "maintenance every 1000"
                       : "attached thread, maintenance every 1000");
    if (mode == 2) CHECK_OK(pm_thread_detach(l.r));
    pm_hdata_free(ref);
    live_close(&l);
    free(data);
}

TEST(test_bucket_edges_live) { edges_live(0); }
TEST(test_bucket_edges_live_maintained) { edges_live(1); }
TEST(test_bucket_edges_live_attached) { edges_live(2); }

/* The default family range [1e-9, 1e4] covers 1 ns .. 1 h as well. */
TEST(test_default_range)
{
    size_t n = 100000;
    double *data = malloc(n * sizeof *data);
    REQUIRE(data);
    generate(&dists[6], 42, data, n);
    pm_registry_t *r = NULL;
    REQUIRE(pm_registry_new(NULL, &r) == PM_OK);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "latency_seconds", "", &h));
    for (size_t i = 0; i < n; i++) pm_histogram_observe(h, data[i]);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_series_t *se = NULL;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++)
        if (!strcmp(pm_snap_family_name(pm_snapshot_family(s, i)), "latency_seconds"))
            se = pm_snap_family_series(pm_snapshot_family(s, i), 0);
    REQUIRE(se);
    qsort(data, n, sizeof *data, cmp_double);
    double worst = 0;
    size_t checks = 0;
    check_quantiles(pm_snap_series_hdata(se), data, n, "loguniform", "default range", &worst,
                    &checks);
    /* Finer: every permille. */
    for (unsigned k = 0; k <= 1000; k++) {
        double est = NAN, exact = data[nearest_rank(k, n) - 1];
        CHECK_OK(pm_snap_series_quantile(se, k / 1000.0, &est));
        double e = rel_err(est, exact);
        if (!(e <= REL_BOUND)) TH_FAIL_("q=%g: %.17g vs %.17g", k / 1000.0, est, exact);
        worst = fmax(worst, e);
    }
    printf("accuracy %-12s max relative error %.6f (default range, n=%zu, 1001 quantiles)\n",
           "loguniform", worst, n);
    pm_snapshot_release(s);
    pm_registry_free(r);
    free(data);
}

/* Nearest rank for a q the caller wrote as a decimal: q = 0.56 of 100 values
 * is rank 56, but the double product 0.56 * 100 is 56.00000000000001 and its
 * ceiling 57. When ranks 56 and 57 lie in different modes the answer is off by
 * far more than 1/129. Here the lower `rank` values are 1.0 and the rest 2.0,
 * so every q = k/1000 must report about 1.0 (nearest_rank gives the rank in
 * integers). Ranks are decided before any bucket: this is not about buckets. */
TEST(test_rank_of_decimal_q)
{
    static const size_t ns[] = {10, 100, 1000, 100000};
    size_t wrong = 0, first_k = 0, first_n = 0;
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        size_t n = ns[i];
        for (unsigned k = 0; k < 1000; k++) {
            size_t rank = nearest_rank(k, n);
            if (rank >= n) continue;
            pm_hdata_t *h = NULL;
            REQUIRE(pm_hdata_new(LOWEST, HIGHEST, &h) == PM_OK);
            for (size_t j = 0; j < n; j++) CHECK_OK(pm_hdata_record(h, j < rank ? 1.0 : 2.0));
            double v = NAN;
            CHECK_OK(pm_hdata_quantile(h, k / 1000.0, &v));
            if (!(rel_err(v, 1.0) <= REL_BOUND) && wrong++ == 0) {
                first_k = k;
                first_n = n;
            }
            pm_hdata_free(h);
        }
    }
    if (wrong)
        TH_FAIL_("%zu of the (n, q = k/1000) pairs report the next rank's value, first "
                 "q=%g n=%zu (ceil(%.17g) = %g)",
                 wrong, first_k / 1000.0, first_n, first_k / 1000.0 * (double)first_n,
                 ceil(first_k / 1000.0 * (double)first_n));
}

TEST_MAIN(TH_CASE(test_uniform), TH_CASE(test_lognormal), TH_CASE(test_bimodal),
          TH_CASE(test_constant), TH_CASE(test_pareto), TH_CASE(test_exponential),
          TH_CASE(test_loguniform), TH_CASE(test_bucket_edges), TH_CASE(test_bucket_edges_live), TH_CASE(test_bucket_edges_live_maintained),
          TH_CASE(test_bucket_edges_live_attached), TH_CASE(test_default_range),
          TH_CASE(test_rank_of_decimal_q))
