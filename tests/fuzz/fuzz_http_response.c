/* libFuzzer target: the push client's response framing
 * (pm__http_response_frame in lib/http_client.c, with the status-line and
 * header parser of lib/http_request.c under it) on arbitrary bytes, as a
 * server could send them. The first byte says whether the connection has
 * closed after the input (bit 0). The framer must never crash or read past
 * the input, must answer -1, 0 or a length within the input, and must be
 * consistent: a response it frames ends where it says (framing exactly its
 * own bytes gives the same length, status and keep-alive; one that is not
 * delimited by the close is also complete before the close), no strict
 * prefix of it is already complete, and the status is a final one. */
#include "fuzz_common.h"

#include "internal/http_client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_http_response: %s (%ld, %ld)\n", what, a, b);
    abort();
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1) return 0;
    int eof = data[0] & 1;
    size_t len = size - 1;
    /* An exact-size heap copy, so ASan sees any read past the end. */
    char *in = malloc(len ? len : 1);
    if (!in) return 0;
    if (len) memcpy(in, data + 1, len);
    int st = 0, ka = 0;
    double ra = 0;
    long n = pm__http_response_frame(in, len, eof, &st, &ka, &ra);
    if (n < -1 || n > (long)len) fail("length outside the input", n, (long)len);
    if (n > 0) {
        if (st < 200 || st > 999) fail("status", st, 0);
        if (ka != 0 && ka != 1) fail("keep-alive", ka, 0);
        if (!(ra == -1 || (ra >= 0 && ra <= 999999999))) fail("retry-after", (long)ra, 0);
        int st2 = 0, ka2 = 0;
        double ra2 = 0;
        long n2 = pm__http_response_frame(in, (size_t)n, eof, &st2, &ka2, &ra2);
        if (n2 != n || st2 != st || ka2 != ka || ra2 != ra)
            fail("its own bytes frame differently", n, n2);
        long n3 = pm__http_response_frame(in, (size_t)n, 0, &st2, &ka2, &ra2);
        if (n3 != 0 && n3 != n) fail("complete only at the close, yet framed before", n, n3);
        if (n3 == n) {
            /* Delimited by its length or chunks: no prefix is complete. */
            for (size_t cut = 0; cut < (size_t)n; cut += 1 + (size_t)n / 32) {
                long np = pm__http_response_frame(in, cut, 0, &st2, &ka2, &ra2);
                if (np != 0 && np != -1) fail("a strict prefix is complete", (long)cut, np);
            }
        } else if (n != (long)len || ka) {
            fail("close-delimited but not to the end, or kept alive", n, ka);
        }
    }
    free(in);
    return 0;
}
