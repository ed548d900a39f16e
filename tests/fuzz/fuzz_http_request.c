/* libFuzzer target: the embedded server's request parser and the header
 * helpers behind it, on arbitrary bytes. The parser must never crash or read
 * past the input, must answer one of its documented statuses, and must be
 * consistent: a head it accepts is at most the input, ends in a blank line,
 * points every slice inside the input, has as many fields as the limits allow
 * at most, and parses to the same result when handed exactly its own bytes;
 * a prefix of an accepted head is never accepted as a different request
 * (it needs more bytes, or is refused). Limits are taken from the first
 * bytes so small ones get exercised too. Negotiation, bearer and Host
 * checks and the query helpers run on whatever was accepted. */
#include "fuzz_common.h"

#include "internal/http_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_http_request: %s (%ld, %ld)\n", what, a, b);
    abort();
}

static int inside(const char *p, size_t n, const char *buf, size_t len)
{
    return p >= buf && p + n <= buf + len;
}

static void check_accepted(const pm__http_request_t *r, const char *in, size_t size,
                           const pm__http_limits_t *lim)
{
    if (r->head_len == 0 || r->head_len > size) fail("head length", (long)r->head_len, (long)size);
    if (in[r->head_len - 1] != '\n') fail("head does not end in LF", (long)r->head_len, 0);
    if (r->nfields > lim->max_headers) fail("more fields than allowed", (long)r->nfields, 0);
    if (r->method < PM__HTTP_GET || r->method > PM__HTTP_OTHER) fail("method", r->method, 0);
    if (r->minor != 0 && r->minor != 1) fail("minor version", r->minor, 0);
    if (!inside(r->method_text, r->method_len, in, r->head_len) ||
        !inside(r->target, r->target_len, in, r->head_len))
        fail("request-line slice outside the head", 0, 0);
    if (r->path_len == 0) fail("empty path", 0, 0);
    if (r->query && !inside(r->query, r->query_len, in, r->head_len))
        fail("query outside the head", 0, 0);
    for (size_t i = 0; i < r->nfields; i++) {
        const pm__http_field_t *f = &r->fields[i];
        if (!f->name_len || !inside(f->name, f->name_len, in, r->head_len) ||
            !inside(f->value, f->value_len, in, r->head_len))
            fail("field slice outside the head", (long)i, 0);
        for (size_t k = 0; k < f->value_len; k++)
            if ((unsigned char)f->value[k] < 0x20 && f->value[k] != '\t')
                fail("control character in a value", (long)i, (long)k);
        if (f->value_len && (f->value[0] == ' ' || f->value[f->value_len - 1] == ' '))
            fail("OWS left around a value", (long)i, 0);
    }
    if (r->host_count > 1) fail("two Host fields accepted", r->host_count, 0);
    /* The helpers, on what was accepted: they must only answer. */
    pm_format_t fmt = pm__http_accept_format(r);
    if (fmt != PM_FORMAT_PROMETHEUS && fmt != PM_FORMAT_OPENMETRICS) fail("format", fmt, 0);
    int g = pm__http_accepts_gzip(r);
    if (g != 0 && g != 1) fail("gzip", g, 0);
    if (pm__http_bearer_ok(r, "s3cret-token", 12)) {
        const pm__http_field_t *a = pm__http_field(r, "authorization");
        if (!a || a->value_len < 19 ||
            memcmp(a->value + a->value_len - 12, "s3cret-token", 12) != 0)
            fail("bearer accepted without the token", 0, 0);
    }
    (void)pm__http_host_is_local(r);
    size_t pos = 0, nl, vl, steps = 0;
    const char *n, *v;
    char dec[64];
    while (pm__query_next(r->query, r->query_len, &pos, &n, &nl, &v, &vl)) {
        if (++steps > r->query_len + 1) fail("query iteration does not end", (long)steps, 0);
        if (!inside(n, nl, r->query, r->query_len) || !inside(v, vl, r->query, r->query_len))
            fail("query slice outside the query", 0, 0);
        long d = pm__query_decode(v, vl, dec, sizeof dec);
        if (d >= 0 && ((size_t)d >= sizeof dec || strlen(dec) != (size_t)d))
            fail("decoded length", d, 0);
    }
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    pm__http_limits_t lim = {8192, 16384, 100};
    if (size >= 1 && (data[0] & 1)) {
        /* small limits from the first byte */
        lim.max_line = 16 + (data[0] >> 1);
        lim.max_head = 32 + data[0];
        lim.max_headers = 1 + (data[0] & 7);
    }
    /* An exact-size heap copy, so ASan sees any read past the end. */
    char *in = malloc(size ? size : 1);
    pm__http_field_t *fields = malloc(lim.max_headers * sizeof *fields);
    if (!in || !fields) goto done;
    if (size) memcpy(in, data, size);
    pm__http_request_t r;
    r.fields = fields;
    int st = pm__http_parse(in, size, &lim, &r);
    if (st != 0 && st != -400 && st != -414 && st != -431 && st != -505 && st <= 0)
        fail("undocumented status", st, 0);
    if (st > 0) {
        check_accepted(&r, in, size, &lim);
        /* The head alone parses the same. */
        pm__http_request_t r2;
        r2.fields = fields;
        char *head = malloc((size_t)st);
        if (!head) goto done;
        memcpy(head, in, (size_t)st);
        int st2 = pm__http_parse(head, (size_t)st, &lim, &r2);
        if (st2 != st) fail("head alone parses differently", st, st2);
        /* A strict prefix is never a complete request. */
        for (size_t cut = 0; cut < (size_t)st; cut += 1 + (size_t)st / 16) {
            int st3 = pm__http_parse(head, cut, &lim, &r2);
            if (st3 > 0) fail("a prefix of a head was accepted", (long)cut, st3);
        }
        free(head);
    } else if (st < 0 && size > 0) {
        /* Once refused, more bytes never make it acceptable. */
        char *more = malloc(size + 4);
        if (!more) goto done;
        memcpy(more, in, size);
        memcpy(more + size, "\r\n\r\n", 4);
        pm__http_request_t r3;
        r3.fields = fields;
        int st3 = pm__http_parse(more, size + 4, &lim, &r3);
        if (st3 >= 0) fail("refused input accepted with more bytes", st, st3);
        free(more);
    }
done:
    free(in);
    free(fields);
    return 0;
}
