/* Cell blocks (perfmetrics/cells.h): bad inputs, counters, gauges, and a
 * histogram writer written from the header's text alone, checked bucket for
 * bucket against the library's own recording of the same values; growth,
 * folding at free, removal while bound, hostile page contents, and a writer
 * racing snapshots. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include <pthread.h>
#include <stdatomic.h>

#include "cells_writer.h"

TEST(bad_inputs)
{
    pm_registry_t *r = quiet_registry(), *r2 = quiet_registry();
    REQUIRE(r && r2);
    pm_cells_t *b = (pm_cells_t *)1;
    CHECK_STATUS(pm_cells_new(NULL, &b), PM_EINVAL);
    CHECK(b == NULL);
    CHECK_STATUS(pm_cells_new(r, NULL), PM_EINVAL);
    REQUIRE(pm_cells_new(r, &b) == PM_OK);
    pm_counter_t *c = NULL, *c2 = NULL;
    pm_histogram_t *h = NULL;
    pm_gauge_t *g = NULL;
    REQUIRE(pm_counter_new(r, "c", "c", &c) == PM_OK);
    REQUIRE(pm_counter_new(r2, "c", "c", &c2) == PM_OK);
    REQUIRE(pm_histogram_new(r, "h_seconds", "h", &h) == PM_OK);
    REQUIRE(pm_gauge_new(r, "g", "g", &g) == PM_OK);
    size_t i = 7;
    CHECK_STATUS(pm_cells_counter(NULL, c, &i), PM_EINVAL);
    CHECK_STATUS(pm_cells_counter(b, NULL, &i), PM_EINVAL);
    CHECK_STATUS(pm_cells_counter(b, c, NULL), PM_EINVAL);
    CHECK_STATUS(pm_cells_counter(b, c2, &i), PM_EEXIST);
    CHECK_STATUS(pm_cells_counter(b, (pm_counter_t *)(void *)h, &i), PM_ETYPE);
    CHECK_STATUS(pm_cells_histogram(NULL, h, &i), PM_EINVAL);
    CHECK_STATUS(pm_cells_histogram(b, NULL, &i), PM_EINVAL);
    CHECK_STATUS(pm_cells_histogram(b, h, NULL), PM_EINVAL);
    CHECK_STATUS(pm_cells_histogram(b, (pm_histogram_t *)(void *)c, &i), PM_ETYPE);
    CHECK_EQ_U64(i, 7); /* nothing written on error */
    CHECK_EQ_U64(pm_cells_page_count(b), 0); /* and nothing allocated */
    CHECK_STATUS(pm_cells_histogram_grow(NULL, 0, &i), PM_EINVAL);
    CHECK_STATUS(pm_cells_histogram_grow(b, 0, NULL), PM_EINVAL);
    CHECK_STATUS(pm_cells_histogram_grow(b, 0, &i), PM_EINVAL); /* no binding there */
    size_t ci;
    REQUIRE(pm_cells_counter(b, c, &ci) == PM_OK);
    CHECK_STATUS(pm_cells_histogram_grow(b, ci, &i), PM_EINVAL); /* a counter's index */
    CHECK_EQ_U64(pm_cells_page_count(NULL), 0);
    CHECK(pm_cells_page(NULL, 0) == NULL);
    CHECK(pm_cells_page(b, 1) == NULL);
    CHECK(pm_cells_page(b, 0) != NULL);
    CHECK(((uintptr_t)pm_cells_page(b, 0) & 63) == 0);
    double *gc = (double *)1;
    CHECK_STATUS(pm_gauge_cell(NULL, &gc), PM_EINVAL);
    CHECK(gc == NULL);
    CHECK_STATUS(pm_gauge_cell(g, NULL), PM_EINVAL);
    CHECK_STATUS(pm_gauge_cell((pm_gauge_t *)(void *)c, &gc), PM_ETYPE);
    pm_cells_free(NULL);
    pm_cells_free(b);
    pm_counter_release(c);
    pm_counter_release(c2);
    pm_histogram_release(h);
    pm_gauge_release(g);
    pm_registry_free(r);
    pm_registry_free(r2);
}

TEST(counter_cells_sum_and_fold)
{
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    pm_counter_t *c = NULL;
    REQUIRE(pm_counter_new(r, "jobs", "Jobs.", &c) == PM_OK);
    pm_cells_t *a = NULL, *b = NULL;
    REQUIRE(pm_cells_new(r, &a) == PM_OK && pm_cells_new(r, &b) == PM_OK);
    size_t ia, ia2, ib;
    REQUIRE(pm_cells_counter(a, c, &ia) == PM_OK);
    CHECK_OK(pm_cells_counter(a, c, &ia2));
    CHECK_EQ_U64(ia2, ia); /* the same series, the same cell */
    REQUIRE(pm_cells_counter(b, c, &ib) == PM_OK);
    pm_counter_add(c, 5);
    for (int i = 0; i < 1000; i++) *cell(a, ia) += 1;
    *cell(b, ib) += 0.25;
    CHECK_EQ_DBL(pm_counter_value(c), 1005.25);
    CHECK_EQ_DBL(snap_value(r, "jobs"), 1005.25);
    /* A stray negative or NaN cell never makes a counter go down. */
    double keep = *cell(b, ib);
    *cell(b, ib) = -100;
    CHECK_EQ_DBL(pm_counter_value(c), 1005);
    *cell(b, ib) = NAN;
    CHECK_EQ_DBL(pm_counter_value(c), 1005);
    *cell(b, ib) = keep;
    pm_counter_release(c); /* the blocks keep the series */
    pm_cells_free(a);      /* folded: nothing lost */
    CHECK_EQ_DBL(snap_value(r, "jobs"), 1005.25);
    pm_cells_free(b);
    CHECK_EQ_DBL(snap_value(r, "jobs"), 1005.25);
    pm_registry_free(r);
}

TEST(many_counters_across_pages)
{
    enum { N = 20000 };
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    static const char *const ln[] = {"id"};
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    pm_family_opts_set_labels(o, ln, 1);
    pm_family_opts_set_max_series(o, N);
    REQUIRE(pm_family_new(r, PM_TYPE_COUNTER, "many", "Many.", o, &f) == PM_OK);
    pm_family_opts_free(o);
    pm_cells_t *b = NULL;
    REQUIRE(pm_cells_new(r, &b) == PM_OK);
    static size_t idx[N];
    for (int i = 0; i < N; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *vv[] = {v};
        pm_counter_t *c = NULL;
        REQUIRE(pm_counter_get(f, vv, 1, &c) == PM_OK);
        REQUIRE(pm_cells_counter(b, c, &idx[i]) == PM_OK);
        pm_counter_release(c);
        *cell(b, idx[i]) += i;
    }
    CHECK(pm_cells_page_count(b) >= (size_t)N / PM_CELLS_PAGE_DOUBLES);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    int ok = 1;
    for (int i = 0; i < N && ok; i += 97) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const pm_snap_series_t *x = find(s, "many", v);
        ok = x && pm_snap_series_value(x) == i;
    }
    CHECK(ok);
    pm_snapshot_release(s);
    pm_cells_free(b);
    pm_registry_free(r);
}

TEST(gauge_cell)
{
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    pm_gauge_t *g = NULL;
    REQUIRE(pm_gauge_new(r, "depth", "Depth.", &g) == PM_OK);
    double *gc = NULL;
    REQUIRE(pm_gauge_cell(g, &gc) == PM_OK && gc);
    *gc = 42.5;
    CHECK_EQ_DBL(pm_gauge_value(g), 42.5);
    CHECK_EQ_DBL(snap_value(r, "depth"), 42.5);
    pm_gauge_add(g, 1);
    CHECK_EQ_DBL(*gc, 43.5);
    pm_gauge_set(g, -7);
    CHECK_EQ_DBL(*gc, -7);
    pm_gauge_release(g);
    pm_registry_free(r);
}

/* The header's writer against pm_histogram_observe, value for value; then
 * the block is freed and the folded series must still say the same. */
TEST(histogram_writer_matches_library)
{
    enum { N = 200000 };
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    pm_family_t *fc = hist_family(r, "cells_seconds"), *fr = hist_family(r, "ref_seconds");
    REQUIRE(fc && fr);
    pm_histogram_t *hc = NULL, *hr = NULL;
    REQUIRE(pm_histogram_get(fc, NULL, 0, &hc) == PM_OK && pm_histogram_get(fr, NULL, 0, &hr) == PM_OK);
    pm_cells_t *b = NULL;
    REQUIRE(pm_cells_new(r, &b) == PM_OK);
    hwriter w = {b, hc, 0, 0, 0};
    size_t again;
    REQUIRE(pm_cells_histogram(b, hc, &w.idx) == PM_OK);
    CHECK_OK(pm_cells_histogram(b, hc, &again));
    CHECK_EQ_U64(again, w.idx);
    const double *hdr = cell(b, w.idx);
    CHECK_EQ_DBL(hdr[PM_CELLS_H_CAP], 32);
    CHECK_EQ_DBL(hdr[PM_CELLS_H_NBOUNDS], 11);
    CHECK_EQ_DBL(hdr[PM_CELLS_H_LOWEST], 1e-6);
    CHECK_EQ_DBL(hdr[PM_CELLS_H_HIGHEST], 100);
    CHECK(isinf(hdr[PM_CELLS_H_MIN]) && hdr[PM_CELLS_H_MIN] > 0);
    static double v[N];
    size_t n = make_values(v, N);
    for (size_t i = 0; i < n; i++) {
        hw_record(&w, v[i]);
        pm_histogram_observe(hr, v[i]);
    }
    CHECK(cell(b, w.idx)[PM_CELLS_H_CAP] > 32); /* it grew */
    for (int round = 0; round < 2; round++) {
        pm_snapshot_t *s = NULL;
        REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
        check_same_histogram(find(s, "cells_seconds", NULL), find(s, "ref_seconds", NULL), 11);
        CHECK_EQ_U64(pm_snap_series_count(find(s, "cells_seconds", NULL)), n);
        pm_snapshot_release(s);
        if (round == 0) pm_cells_free(b); /* fold, then the same again */
    }
    pm_histogram_release(hc);
    pm_histogram_release(hr);
    pm_registry_free(r);
}

/* Every fine bucket of a wide range hit: the region grows to its largest
 * size, and what has no room goes through pm_histogram_observe. */
TEST(histogram_grow_to_the_largest)
{
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL, *fr = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    pm_family_opts_set_range(o, 1e-9, 1e9); /* 60 octaves x 64 = 3840 fine buckets */
    REQUIRE(pm_family_new(r, PM_TYPE_HISTOGRAM, "wide", "Wide.", o, &f) == PM_OK);
    REQUIRE(pm_family_new(r, PM_TYPE_HISTOGRAM, "wide_ref", "Wide.", o, &fr) == PM_OK);
    pm_family_opts_free(o);
    pm_histogram_t *h = NULL, *hr = NULL;
    REQUIRE(pm_histogram_get(f, NULL, 0, &h) == PM_OK && pm_histogram_get(fr, NULL, 0, &hr) == PM_OK);
    pm_cells_t *b = NULL;
    REQUIRE(pm_cells_new(r, &b) == PM_OK);
    hwriter w = {b, h, 0, 0, 0};
    REQUIRE(pm_cells_histogram(b, h, &w.idx) == PM_OK);
    for (int rep = 0; rep < 3; rep++)
        for (double x = 1e-9; x < 1e9; x *= 1.005) { /* every fine bucket, twice */
            hw_record(&w, x);
            pm_histogram_observe(hr, x);
        }
    CHECK_EQ_DBL(cell(b, w.idx)[PM_CELLS_H_CAP], 4096);
    CHECK(w.at_max);
    size_t ni;
    CHECK_STATUS(pm_cells_histogram_grow(b, w.idx, &ni), PM_ERANGE);
    CHECK(w.through_ffi > 0);
    printf("  info: %.0f keys in the largest region, %llu values through pm_histogram_observe\n", cell(b, w.idx)[PM_CELLS_H_USED], (unsigned long long)w.through_ffi);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    check_same_histogram(find(s, "wide", NULL), find(s, "wide_ref", NULL), 0);
    pm_snapshot_release(s);
    pm_cells_free(b);
    pm_histogram_release(h);
    pm_histogram_release(hr);
    pm_registry_free(r);
}

/* Infinite values make the sum what the library's own recording makes it:
 * +Inf, then NaN once -Inf comes too; before and after folding. */
TEST(histogram_infinite_values)
{
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    pm_histogram_t *h = NULL, *hr = NULL;
    REQUIRE(pm_histogram_new(r, "inf_seconds", "i", &h) == PM_OK);
    REQUIRE(pm_histogram_new(r, "inf_ref_seconds", "i", &hr) == PM_OK);
    pm_cells_t *b = NULL;
    REQUIRE(pm_cells_new(r, &b) == PM_OK);
    hwriter w = {b, h, 0, 0, 0};
    REQUIRE(pm_cells_histogram(b, h, &w.idx) == PM_OK);
    static const double v[] = {1, INFINITY, -INFINITY};
    for (int step = 0; step < 3; step++) {
        hw_record(&w, v[step]);
        pm_histogram_observe(hr, v[step]);
        for (int fold = 0; fold < (step == 2 ? 2 : 1); fold++) {
            if (fold) pm_cells_free(b);
            pm_snapshot_t *s = NULL;
            REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
            double a = pm_snap_series_sum(find(s, "inf_seconds", NULL));
            double e = pm_snap_series_sum(find(s, "inf_ref_seconds", NULL));
            CHECK(a == e || (a != a && e != e));
            CHECK_EQ_U64(pm_snap_series_count(find(s, "inf_seconds", NULL)), (uint64_t)step + 1);
            pm_snapshot_release(s);
        }
    }
    pm_histogram_release(h);
    pm_histogram_release(hr);
    pm_registry_free(r);
}

/* Whatever the writer scribbles over its pages, a snapshot neither crashes
 * nor reads outside them, and counts only what parses as counts. */
TEST(hostile_pages)
{
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    pm_histogram_t *h = NULL;
    pm_counter_t *c = NULL;
    REQUIRE(pm_histogram_new(r, "h_seconds", "h", &h) == PM_OK);
    REQUIRE(pm_counter_new(r, "c", "c", &c) == PM_OK);
    pm_cells_t *b = NULL;
    REQUIRE(pm_cells_new(r, &b) == PM_OK);
    size_t ih, ic;
    REQUIRE(pm_cells_histogram(b, h, &ih) == PM_OK && pm_cells_counter(b, c, &ic) == PM_OK);
    for (int round = 0; round < 20; round++) {
        double *page = pm_cells_page(b, 0);
        for (size_t i = 0; i < PM_CELLS_PAGE_DOUBLES; i++) {
            uint64_t x = rng();
            memcpy(&page[i], &x, sizeof x);
        }
        pm_snapshot_t *s = NULL;
        REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
        pm_buf_t *buf = NULL;
        REQUIRE(pm_buf_new(&buf) == PM_OK);
        CHECK_OK(pm_format(s, PM_FORMAT_OPENMETRICS, buf));
        pm_buf_free(buf);
        const pm_snap_series_t *x = find(s, "c", NULL);
        CHECK(x && pm_snap_series_value(x) >= 0);
        pm_snapshot_release(s);
    }
    memset(pm_cells_page(b, 0), 0, PM_CELLS_PAGE_DOUBLES * sizeof(double));
    pm_cells_free(b);
    pm_histogram_release(h);
    pm_counter_release(c);
    pm_registry_free(r);
}

TEST(removed_while_bound_and_registry_first)
{
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    static const char *const ln[] = {"k"};
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    pm_family_opts_set_labels(o, ln, 1);
    REQUIRE(pm_family_new(r, PM_TYPE_COUNTER, "gone", "Gone.", o, &f) == PM_OK);
    pm_family_opts_free(o);
    const char *v[] = {"a"};
    pm_counter_t *c = NULL;
    REQUIRE(pm_counter_get(f, v, 1, &c) == PM_OK);
    pm_cells_t *b = NULL;
    size_t i;
    REQUIRE(pm_cells_new(r, &b) == PM_OK && pm_cells_counter(b, c, &i) == PM_OK);
    pm_counter_release(c);
    *cell(b, i) += 3;
    CHECK_OK(pm_family_remove(f, v, 1));
    CHECK_EQ_INT(pm_family_series_count(f), 0);
    *cell(b, i) += 1; /* like any handle's records into a removed series: not reported */
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    CHECK(find(s, "gone", "a") == NULL);
    pm_snapshot_release(s);
    pm_cells_free(b); /* drops the last reference: the series goes */
    /* A block its writer never freed goes with the registry. */
    pm_cells_t *left = NULL;
    pm_counter_t *c2 = NULL;
    REQUIRE(pm_counter_new(r, "left", "Left.", &c2) == PM_OK);
    REQUIRE(pm_cells_new(r, &left) == PM_OK && pm_cells_counter(left, c2, &i) == PM_OK);
    pm_counter_release(c2);
    pm_registry_free(r);
}

/* A writer thread records through its block while another thread takes
 * snapshots: counts never go down, and the last snapshot is exact. */
struct race {
    pm_registry_t *r;
    pm_cells_t *b;
    pm_counter_t *c;
    pm_histogram_t *h;
    _Atomic int done;
    uint64_t n;
};

static void *race_writer(void *arg)
{
    struct race *x = arg;
    size_t ic;
    hwriter w = {x->b, x->h, 0, 0, 0};
    if (pm_cells_counter(x->b, x->c, &ic) != PM_OK || pm_cells_histogram(x->b, x->h, &w.idx) != PM_OK)
        abort();
    for (uint64_t i = 0; i < x->n; i++) {
        add(cell(x->b, ic), 1);
        hw_record(&w, 1e-6 * (double)(1 + i % 5000));
    }
    atomic_store(&x->done, 1);
    return NULL;
}

TEST(writer_races_snapshots)
{
    struct race x = {quiet_registry(), NULL, NULL, NULL, 0, 300000};
    REQUIRE(x.r);
    REQUIRE(pm_counter_new(x.r, "race", "Race.", &x.c) == PM_OK);
    REQUIRE(pm_histogram_new(x.r, "race_seconds", "Race.", &x.h) == PM_OK);
    REQUIRE(pm_cells_new(x.r, &x.b) == PM_OK);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, race_writer, &x) == 0);
    double last = 0;
    uint64_t last_n = 0;
    int monotonic = 1, snaps = 0;
    while (!atomic_load(&x.done) || snaps < 3) {
        pm_snapshot_t *s = NULL;
        REQUIRE(pm_snapshot_new(x.r, &s) == PM_OK);
        const pm_snap_series_t *c = find(s, "race", NULL), *h = find(s, "race_seconds", NULL);
        REQUIRE(c && h);
        monotonic &= pm_snap_series_value(c) >= last && pm_snap_series_count(h) >= last_n;
        last = pm_snap_series_value(c);
        last_n = pm_snap_series_count(h);
        pm_snapshot_release(s);
        snaps++;
    }
    pthread_join(t, NULL);
    CHECK(monotonic);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(x.r, &s) == PM_OK);
    CHECK_EQ_DBL(pm_snap_series_value(find(s, "race", NULL)), (double)x.n);
    CHECK_EQ_U64(pm_snap_series_count(find(s, "race_seconds", NULL)), x.n);
    pm_snapshot_release(s);
    pm_cells_free(x.b);
    CHECK_EQ_DBL(pm_counter_value(x.c), (double)x.n);
    pm_counter_release(x.c);
    pm_histogram_release(x.h);
    pm_registry_free(x.r);
}

/* Every allocation a bind or grow makes fails in turn: a clear PM_ENOMEM,
 * nothing half made (the block and its earlier bindings keep working), and
 * no leak (the counting allocator is back to zero at the end). */
TEST(out_of_memory)
{
    for (long fail_at = 0; fail_at < 40; fail_at++) {
        struct failing fa = {0, -1};
        pm_registry_opts_t *o = NULL;
        pm_registry_t *r = NULL;
        REQUIRE(pm_registry_opts_new(&o) == PM_OK);
        pm_registry_opts_set_allocator(o, f_alloc, f_free, &fa);
        pm_registry_opts_set_self_metrics(o, 0);
        REQUIRE(pm_registry_new(o, &r) == PM_OK);
        pm_registry_opts_free(o);
        pm_counter_t *c = NULL, *c2 = NULL;
        pm_histogram_t *h = NULL;
        REQUIRE(pm_counter_new(r, "a", "a", &c) == PM_OK && pm_counter_new(r, "b", "b", &c2) == PM_OK);
        REQUIRE(pm_histogram_new(r, "h_seconds", "h", &h) == PM_OK);
        pm_cells_t *b = NULL;
        size_t ic, ic2 = 0, ih = 0, ni = 0;
        REQUIRE(pm_cells_new(r, &b) == PM_OK && pm_cells_counter(b, c, &ic) == PM_OK);
        add(cell(b, ic), 2);
        fa.budget = fail_at;
        pm_status_t s1 = pm_cells_counter(b, c2, &ic2);
        pm_status_t s2 = pm_cells_histogram(b, h, &ih);
        pm_status_t s3 = s2 == PM_OK ? pm_cells_histogram_grow(b, ih, &ni) : PM_ENOMEM;
        fa.budget = -1;
        CHECK(s1 == PM_OK || s1 == PM_ENOMEM);
        CHECK(s2 == PM_OK || s2 == PM_ENOMEM);
        CHECK(s3 == PM_OK || s3 == PM_ENOMEM);
        if (s1 == PM_OK) add(cell(b, ic2), 3);
        if (s2 == PM_OK) { /* the binding works from the index it was given */
            size_t at = s3 == PM_OK ? ni : ih;
            hwriter w = {b, h, at, 0, 0};
            hw_record(&w, 0.5);
        }
        CHECK_EQ_DBL(pm_counter_value(c), 2);
        CHECK_EQ_DBL(pm_counter_value(c2), s1 == PM_OK ? 3 : 0);
        pm_cells_free(b);
        CHECK_EQ_DBL(pm_counter_value(c), 2);
        CHECK_EQ_DBL(pm_counter_value(c2), s1 == PM_OK ? 3 : 0);
        pm_counter_release(c);
        pm_counter_release(c2);
        pm_histogram_release(h);
        pm_registry_free(r);
        CHECK_EQ_INT(fa.live, 0);
        if (s1 == PM_OK && s2 == PM_OK && s3 == PM_OK) break;
    }
}

/* Freeing a block folds its doubles into the series in another order than
 * the live read added them: a fractional counter, or a histogram's sum, must
 * not come out an ulp lower (a scraper would read a counter reset). */
TEST(fold_holds_fractional_totals)
{
    int monotonic = 1;
    for (size_t k = 0; k < sizeof fold_cells / sizeof fold_cells[0]; k++)
        for (int order = 0; order < 2; order++) {
            pm_registry_t *r = quiet_registry();
            REQUIRE(r);
            pm_counter_t *c = NULL;
            pm_histogram_t *h = NULL;
            REQUIRE(pm_counter_new(r, "busy_seconds", "Busy.", &c) == PM_OK);
            REQUIRE(pm_histogram_new(r, "step_seconds", "Steps.", &h) == PM_OK);
            pm_cells_t *b[3];
            for (int i = 0; i < 3; i++) {
                size_t ic, ih;
                REQUIRE(pm_cells_new(r, &b[i]) == PM_OK);
                REQUIRE(pm_cells_counter(b[i], c, &ic) == PM_OK);
                REQUIRE(pm_cells_histogram(b[i], h, &ih) == PM_OK);
                hwriter hw = {b[i], h, ih, 0, 0};
                hw_record(&hw, fold_cells[k][i]);
                st(cell(b[i], ic), fold_cells[k][i]);
            }
            double last = snap_value(r, "busy_seconds"), last_sum = sum_of(r, "step_seconds");
            for (int i = 0; i < 3; i++) {
                pm_cells_free(b[order ? 2 - i : i]);
                double v = snap_value(r, "busy_seconds"), sum = sum_of(r, "step_seconds");
                monotonic &= v >= last && sum >= last_sum;
                last = v;
                last_sum = sum;
            }
            CHECK_NEAR(last, fold_cells[k][0] + fold_cells[k][1] + fold_cells[k][2], 1e-15 * last);
            CHECK_NEAR(last_sum, last, 1e-15 * last);
            pm_counter_release(c);
            pm_histogram_release(h);
            pm_registry_free(r);
        }
    CHECK(monotonic);
}

TEST_MAIN(TH_CASE(bad_inputs), TH_CASE(counter_cells_sum_and_fold),
          TH_CASE(many_counters_across_pages), TH_CASE(gauge_cell),
          TH_CASE(histogram_writer_matches_library), TH_CASE(histogram_grow_to_the_largest),
          TH_CASE(histogram_infinite_values), TH_CASE(hostile_pages), TH_CASE(removed_while_bound_and_registry_first),
          TH_CASE(writer_races_snapshots), TH_CASE(out_of_memory),
          TH_CASE(fold_holds_fractional_totals))
