/* W3C Trace Context: the traceparent and tracestate header values.
 *
 * The rules are those of the W3C Recommendation "Trace Context" (Level 1) and
 * of the W3C test suite (w3c/trace-context test/test.py), with these choices:
 *  - Leading and trailing spaces and tabs around a whole traceparent value are
 *    ignored: HTTP strips that whitespace from a field value (RFC 7230 3.2.4),
 *    the test suite requires a service to accept it, and a caller handing us a
 *    raw header line should not lose the trace for it. Whitespace inside the
 *    value is invalid.
 *  - A higher version (not ff) is parsed by the four version-00 fields, and
 *    only its sampled bit is kept: its other flag bits mean something we do not
 *    know, and we re-emit the context as version 00. Version 00 keeps the raw
 *    flags byte.
 *  - tracestate keys follow Level 1 (simple-key / tenant@system); the Level 2
 *    draft's looser keys ("1abc", "a@b@c") are refused. The 512-byte limit
 *    applies to the value as received, OWS and empty members included (the
 *    spec counts them), so a normalised value never needs more than 513 bytes.
 * Nothing here allocates, locks or reads past `len`. */
#include "internal/span_internal.h"

#define TP_LEN 55 /* "vv-" + 32 + "-" + 16 + "-" + 2 */
#define TP_TRACE 3
#define TP_SPAN 36
#define TP_FLAGS 53

#define TS_MAX_LEN 512
#define TS_MAX_MEMBERS 32
#define TS_MAX_SIMPLE_KEY 256
#define TS_MAX_TENANT 241
#define TS_MAX_SYSTEM 14
#define TS_MAX_VALUE 256

void pm__hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

/* The value of a lower-case hex digit (HEXDIGLC), or -1: upper case is invalid. */
static int hexdig_lc(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

/* Decodes 2n lower-case hex digits at s into n bytes. */
static bool unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexdig_lc((unsigned char)s[2 * i]), lo = hexdig_lc((unsigned char)s[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) acc |= p[i];
    return acc == 0;
}

/* OWS of RFC 7230: space and horizontal tab. */
static bool is_ows(char c) { return c == ' ' || c == '\t'; }

/* Narrows [*b, *e) to drop OWS at both ends. */
static void trim_ows(const char *s, size_t *b, size_t *e)
{
    while (*b < *e && is_ows(s[*b])) ++*b;
    while (*e > *b && is_ows(s[*e - 1])) --*e;
}

pm_status_t pm_traceparent_parse(const char *header, size_t len, pm_trace_context_t *out)
{
    if (out) memset(out, 0, sizeof *out);
    if (!header || !out) return PM_EINVAL;

    size_t b = 0, e = len;
    trim_ows(header, &b, &e);
    const char *s = header + b;
    size_t n = e - b;

    pm_trace_context_t c;
    memset(&c, 0, sizeof c);
    uint8_t version;
    if (n < TP_LEN) return PM_EPARSE;
    if (!unhex(s, 1, &version) || version == 0xff || s[2] != '-') return PM_EPARSE;
    if (!unhex(s + TP_TRACE, sizeof c.trace_id, c.trace_id) || s[TP_SPAN - 1] != '-')
        return PM_EPARSE;
    if (!unhex(s + TP_SPAN, sizeof c.span_id, c.span_id) || s[TP_FLAGS - 1] != '-')
        return PM_EPARSE;
    if (!unhex(s + TP_FLAGS, 1, &c.flags)) return PM_EPARSE;
    /* Version 00 is exactly 55 characters; a later version may append fields,
     * each introduced by a dash, which we must not interpret. */
    if (version == 0 ? n != TP_LEN : (n > TP_LEN && s[TP_LEN] != '-')) return PM_EPARSE;
    if (all_zero(c.trace_id, sizeof c.trace_id) || all_zero(c.span_id, sizeof c.span_id))
        return PM_EPARSE;
    if (version != 0) c.flags &= PM_TRACE_FLAG_SAMPLED;
    c.remote = 1;
    *out = c;
    return PM_OK;
}

pm_status_t pm_traceparent_format(const pm_trace_context_t *ctx, char *buf, size_t size)
{
    if (buf && size) buf[0] = '\0';
    if (!ctx || !buf || size < TP_LEN + 1) return PM_EINVAL;
    if (all_zero(ctx->trace_id, sizeof ctx->trace_id) ||
        all_zero(ctx->span_id, sizeof ctx->span_id))
        return PM_EINVAL;
    buf[0] = '0';
    buf[1] = '0';
    buf[2] = '-';
    pm__hex(ctx->trace_id, sizeof ctx->trace_id, buf + TP_TRACE);
    buf[TP_SPAN - 1] = '-';
    pm__hex(ctx->span_id, sizeof ctx->span_id, buf + TP_SPAN);
    buf[TP_FLAGS - 1] = '-';
    pm__hex(&ctx->flags, 1, buf + TP_FLAGS);
    return PM_OK;
}

/* ---------------------------------------------------------------- tracestate */

static bool is_lcalpha(char c) { return c >= 'a' && c <= 'z'; }
static bool is_digit(char c) { return c >= '0' && c <= '9'; }
/* Characters allowed after the first one of a key part ('@' is not one). */
static bool is_keychar(char c)
{
    return is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

static bool keychars(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_keychar(s[i])) return false;
    return true;
}

/* simple-key       = lcalpha 0*255( lcalpha / DIGIT / "_" / "-" / "*" / "/" )
 * multi-tenant-key = tenant-id "@" system-id
 * tenant-id        = ( lcalpha / DIGIT ) 0*240( same )
 * system-id        = lcalpha 0*13( same ) */
static bool valid_key(const char *k, size_t n)
{
    const char *at = memchr(k, '@', n);
    if (!at) return n >= 1 && n <= TS_MAX_SIMPLE_KEY && is_lcalpha(k[0]) && keychars(k + 1, n - 1);
    size_t tn = (size_t)(at - k), sn = n - tn - 1;
    return tn >= 1 && tn <= TS_MAX_TENANT && (is_lcalpha(k[0]) || is_digit(k[0])) &&
           keychars(k + 1, tn - 1) && sn >= 1 && sn <= TS_MAX_SYSTEM && is_lcalpha(at[1]) &&
           keychars(at + 2, sn - 1);
}

/* value = 0*255( chr ) nblk-chr; chr = %x20 / nblk-chr;
 * nblk-chr = %x21-2B / %x2D-3C / %x3E-7E (printable ASCII but ',' and '='). */
static bool valid_value(const char *v, size_t n)
{
    if (n == 0 || n > TS_MAX_VALUE || v[n - 1] == ' ') return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)v[i];
        if (c < 0x20 || c > 0x7e || c == ',' || c == '=') return false;
    }
    return true;
}

pm_status_t pm_tracestate_normalize(const char *header, size_t len, char *buf, size_t size)
{
    if (buf && size) buf[0] = '\0';
    if (!header || !buf) return PM_EINVAL;
    if (len > TS_MAX_LEN) return PM_EPARSE;

    /* Members as [off, off + len) of header; key length for the duplicate check.
     * 512 bytes fit in uint16_t. */
    struct member {
        uint16_t off, len, klen;
    } m[TS_MAX_MEMBERS];
    size_t nm = 0, total = 0;

    for (size_t i = 0; i <= len;) {
        const char *comma = memchr(header + i, ',', len - i);
        size_t end = comma ? (size_t)(comma - header) : len;
        size_t b = i, e = end;
        trim_ows(header, &b, &e);
        i = end + 1;
        if (b == e) continue; /* empty or whitespace-only member: allowed, dropped */
        if (nm == TS_MAX_MEMBERS) return PM_EPARSE;
        const char *eq = memchr(header + b, '=', e - b);
        if (!eq) return PM_EPARSE;
        size_t klen = (size_t)(eq - (header + b));
        if (!valid_key(header + b, klen) || !valid_value(eq + 1, e - b - klen - 1))
            return PM_EPARSE;
        for (size_t j = 0; j < nm; j++)
            if (m[j].klen == klen && memcmp(header + m[j].off, header + b, klen) == 0)
                return PM_EPARSE; /* one entry per key */
        m[nm].off = (uint16_t)b;
        m[nm].len = (uint16_t)(e - b);
        m[nm].klen = (uint16_t)klen;
        total += (nm ? 1 : 0) + (e - b);
        nm++;
    }

    if (total >= size) return PM_ERANGE;
    char *p = buf;
    for (size_t j = 0; j < nm; j++) {
        if (j) *p++ = ',';
        memmove(p, header + m[j].off, m[j].len);
        p += m[j].len;
    }
    *p = '\0';
    return PM_OK;
}
