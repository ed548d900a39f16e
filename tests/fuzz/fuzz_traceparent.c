/* libFuzzer target: the W3C Trace Context parsers on arbitrary bytes (not
 * NUL-terminated). They must never crash, read past the input or return a
 * status outside their documented set. An accepted traceparent must survive a
 * round trip: format it, parse that, and the context must be the same; a
 * version-00 header must format back to its own (OWS-trimmed) text. An
 * accepted tracestate must come out no longer than it went in, without OWS or
 * empty members, and normalising the output again must change nothing; a buffer
 * one byte short must give PM_ERANGE. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, int a, int b)
{
    fprintf(stderr, "fuzz_traceparent: %s (%d, %d)\n", what, a, b);
    abort();
}

static int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

static int is_ows(char c) { return c == ' ' || c == '\t'; }

/* The length of in[0..size) without OWS at its ends; *start: where it begins. */
static size_t trim_ows(const char *in, size_t size, size_t *start)
{
    size_t b = 0, e = size;
    while (b < e && is_ows(in[b])) b++;
    while (e > b && is_ows(in[e - 1])) e--;
    *start = b;
    return e - b;
}

static void check_traceparent(const char *in, size_t size)
{
    pm_trace_context_t c, c2;
    memset(&c, 0xa5, sizeof c);
    int st = pm_traceparent_parse(in, size, &c);
    if (!known_status(st)) fail("unknown status from pm_traceparent_parse", st, 0);
    if (st != PM_OK && st != PM_EPARSE) fail("pm_traceparent_parse: undocumented status", st, 0);
    if (st != PM_OK) {
        if (!all_zero(&c, sizeof c)) fail("*out not zeroed on failure", st, 0);
        return;
    }
    if (c.remote != 1 || !all_zero(c.reserved, sizeof c.reserved))
        fail("remote/reserved of a parsed context", c.remote, 0);
    if (all_zero(c.trace_id, sizeof c.trace_id) || all_zero(c.span_id, sizeof c.span_id))
        fail("accepted an all-zero id", 0, 0);

    char buf[56];
    st = pm_traceparent_format(&c, buf, sizeof buf);
    if (st != PM_OK) fail("pm_traceparent_format of a parsed context", st, 0);
    if (strlen(buf) != 55) fail("formatted length", (int)strlen(buf), 55);
    st = pm_traceparent_parse(buf, 55, &c2);
    if (st != PM_OK) fail("pm_traceparent_parse of its own output", st, 0);
    if (memcmp(&c, &c2, sizeof c) != 0) fail("context differs after a round trip", 0, 0);

    size_t b, n = trim_ows(in, size, &b);
    if (n < 55) fail("accepted a header shorter than 55", (int)n, 0);
    if (in[b] == '0' && in[b + 1] == '0' && (n != 55 || memcmp(in + b, buf, 55) != 0))
        fail("version 00 header does not format back to itself", (int)n, 0);
}

static void check_tracestate(const char *in, size_t size)
{
    char out[513], again[513];
    memset(out, 'X', sizeof out);
    int st = pm_tracestate_normalize(in, size, out, sizeof out);
    if (!known_status(st)) fail("unknown status from pm_tracestate_normalize", st, 0);
    /* 513 bytes always suffice, so PM_ERANGE is a bug here. */
    if (st != PM_OK && st != PM_EPARSE) fail("pm_tracestate_normalize: undocumented status", st, 0);
    if (st != PM_OK) {
        if (out[0] != '\0') fail("output left on failure", st, 0);
        return;
    }
    size_t n = strlen(out);
    if (n > size || size > 512) fail("normalised output longer than input", (int)n, (int)size);
    for (size_t i = 0; i < n; i++) {
        if (out[i] == '\t') fail("tab in normalised output", (int)i, 0);
        if (out[i] == ',' &&
            (i == 0 || i + 1 == n || out[i + 1] == ',' || out[i + 1] == ' ' || out[i - 1] == ' '))
            fail("OWS or empty member left in normalised output", (int)i, 0);
    }
    if (n && (out[0] == ' ' || out[n - 1] == ' ')) fail("OWS left at an end", 0, 0);

    /* An exact-size copy of the output, so over-reads show. */
    char *copy = malloc(n ? n : 1);
    if (!copy) return;
    if (n) memcpy(copy, out, n);
    st = pm_tracestate_normalize(copy, n, again, sizeof again);
    if (st != PM_OK) fail("normalising the normalised output", st, 0);
    if (strcmp(again, out) != 0) fail("normalising is not idempotent", 0, 0);
    /* One byte short of what the output needs. */
    memset(again, 'X', sizeof again);
    st = pm_tracestate_normalize(copy, n, again, n);
    if (st != PM_ERANGE || (n && again[0] != '\0')) fail("short buffer", st, (int)n);
    free(copy);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* An exact-size heap copy, so ASan sees any read past the end. */
    char *in = malloc(size ? size : 1);
    if (!in) return 0;
    if (size) memcpy(in, data, size);
    check_traceparent(in, size);
    check_tracestate(in, size);
    free(in);
    return 0;
}
