/* libFuzzer target: pm_hdata_decode on arbitrary bytes. It must never crash,
 * read past the input or return an unknown status. When it accepts the input,
 * the data must survive a round trip: encode, decode again, and the second copy
 * must agree with the first (count, sum, min, max, quantiles), and encoding the
 * second copy must give the same bytes (the encoding is canonical). Merging a
 * clone into the data must double the count. */
#include "fuzz_common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, double a, double b)
{
    fprintf(stderr, "fuzz_hdata_decode: %s (%.17g vs %.17g)\n", what, a, b);
    abort();
}

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

static void compare(const pm_hdata_t *a, const pm_hdata_t *b)
{
    static const double qs[] = {0.0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0};
    if (pm_hdata_count(a) != pm_hdata_count(b))
        fail("count differs after a round trip", (double)pm_hdata_count(a),
             (double)pm_hdata_count(b));
    if (!same_double(pm_hdata_sum(a), pm_hdata_sum(b)))
        fail("sum differs after a round trip", pm_hdata_sum(a), pm_hdata_sum(b));
    if (!same_double(pm_hdata_min(a), pm_hdata_min(b)))
        fail("min differs after a round trip", pm_hdata_min(a), pm_hdata_min(b));
    if (!same_double(pm_hdata_max(a), pm_hdata_max(b)))
        fail("max differs after a round trip", pm_hdata_max(a), pm_hdata_max(b));
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double qa = NAN, qb = NAN;
        int sa = pm_hdata_quantile(a, qs[i], &qa);
        int sb = pm_hdata_quantile(b, qs[i], &qb);
        if (!known_status(sa)) fail("unknown status from pm_hdata_quantile", sa, qs[i]);
        if (sa != sb) fail("quantile status differs after a round trip", sa, sb);
        if (sa == PM_OK && !same_double(qa, qb))
            fail("quantile differs after a round trip", qa, qb);
        if (sa == PM_OK && pm_hdata_count(a) == 0)
            fail("quantile of empty data succeeded", qs[i], qa);
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* An exact-size heap copy, so ASan sees any read past the end. */
    unsigned char *in = malloc(size ? size : 1);
    if (!in) return 0;
    if (size) memcpy(in, data, size);

    pm_hdata_t *h = NULL, *h2 = NULL, *c = NULL;
    unsigned char *e1 = NULL, *e2 = NULL;
    size_t n1 = 0, n2 = 0;

    int st = pm_hdata_decode(in, size, &h);
    if (!known_status(st)) fail("unknown status from pm_hdata_decode", st, 0);
    if ((st == PM_OK) != (h != NULL)) fail("out-parameter does not match the status", st, 0);
    if (st != PM_OK) goto done;

    st = pm_hdata_encode(h, &e1, &n1);
    if (st == PM_ENOMEM) goto done;
    if (st != PM_OK || !e1) fail("pm_hdata_encode of decoded data", st, 0);
    st = pm_hdata_decode(e1, n1, &h2);
    if (st == PM_ENOMEM) goto done;
    if (st != PM_OK) fail("pm_hdata_decode of its own encoding", st, (double)n1);
    compare(h, h2);

    st = pm_hdata_encode(h2, &e2, &n2);
    if (st == PM_ENOMEM) goto done;
    if (st != PM_OK) fail("pm_hdata_encode after a round trip", st, 0);
    if (n1 != n2 || memcmp(e1, e2, n1) != 0)
        fail("encoding is not stable across a round trip", (double)n1, (double)n2);

    /* Merge a clone: same range, so it must succeed, and counts add up. */
    uint64_t count = pm_hdata_count(h);
    st = pm_hdata_clone(h, &c);
    if (st == PM_OK) {
        /* Counts near 2^64 may be refused rather than wrap. */
        st = pm_hdata_merge(h, c);
        if (!known_status(st)) fail("unknown status from pm_hdata_merge", st, 0);
        if (count <= UINT64_MAX / 2) {
            if (st != PM_OK) fail("merging a clone into its source", st, 0);
            if (pm_hdata_count(h) != 2 * count)
                fail("merged count", (double)pm_hdata_count(h), 2.0 * (double)count);
        }
    } else if (st != PM_ENOMEM) {
        fail("pm_hdata_clone", st, 0);
    }

done:
    pm_hdata_free(c);
    pm_hdata_free(h2);
    pm_hdata_free(h);
    pm_free(e1);
    pm_free(e2);
    free(in);
    return 0;
}
