/* W3C Trace Context: pm_traceparent_parse/_format, pm_tracestate_normalize
 * and pm__hex. The invalid and valid forms are those of the W3C test suite
 * (w3c/trace-context test/test.py) and of the spec's grammar; every input is
 * handed over in an exact-size heap copy with no NUL, so ASan sees any read
 * past `len`. */
#include "harness.h"

#include "internal/span_internal.h"
#include <perfmetrics/perfmetrics.h>

/* The spec's example and the test suite's ids. */
#define TP_EXAMPLE "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
#define TID "12345678901234567890123456789012"
#define PID "1234567890123456"
#define TP_SUITE "00-" TID "-" PID "-01"

static int is_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i]) return 0;
    return 1;
}

/* An exact-size copy of s[0..n) without a terminating NUL (free() it). */
static char *exact_copy(const char *s, size_t n)
{
    char *c = calloc(n ? n : 1, 1);
    if (!c) abort();
    if (n) memcpy(c, s, n);
    return c;
}

static pm_status_t tp_parse_n(const char *s, size_t n, pm_trace_context_t *out)
{
    char *c = exact_copy(s, n);
    memset(out, 0xa5, sizeof *out); /* so "zeroed on failure" is checked */
    pm_status_t st = pm_traceparent_parse(c, n, out);
    free(c);
    return st;
}

static pm_status_t tp_parse(const char *s, pm_trace_context_t *out)
{
    return tp_parse_n(s, strlen(s), out);
}

/* Checks that s is refused with PM_EPARSE and *out is left all zero. */
#define CHECK_TP_BAD(s)                                                                            \
    do {                                                                                           \
        const char *s_ = (s);                                                                      \
        pm_trace_context_t c_;                                                                     \
        int st_ = tp_parse(s_, &c_);                                                               \
        if (st_ != PM_EPARSE)                                                                      \
            TH_FAIL_("parse(\"%s\") = %s, want PM_EPARSE", s_, pm_status_name(st_));               \
        else if (!is_zero(&c_, sizeof c_))                                                         \
            TH_FAIL_("parse(\"%s\") failed but left *out non-zero", s_);                           \
    } while (0)

/* Checks that s parses to trace id `tid`, span id `sid` (hex) and flags. */
#define CHECK_TP_OK(s, tid, sid, fl)                                                               \
    do {                                                                                           \
        const char *s_ = (s);                                                                      \
        pm_trace_context_t c_;                                                                     \
        int st_ = tp_parse(s_, &c_);                                                               \
        char t_[33], p_[17];                                                                       \
        if (st_ != PM_OK) {                                                                        \
            TH_FAIL_("parse(\"%s\") = %s, want PM_OK", s_, pm_status_name(st_));                   \
            break;                                                                                 \
        }                                                                                          \
        pm__hex(c_.trace_id, 16, t_);                                                              \
        pm__hex(c_.span_id, 8, p_);                                                                \
        if (strcmp(t_, (tid)) || strcmp(p_, (sid)) || c_.flags != (fl) || c_.remote != 1 ||        \
            !is_zero(c_.reserved, sizeof c_.reserved))                                             \
            TH_FAIL_("parse(\"%s\") gave %s %s flags %02x remote %d", s_, t_, p_, c_.flags,        \
                     c_.remote);                                                                   \
    } while (0)

/* ---------------------------------------------------------------- pm__hex */

TEST(test_hex)
{
    const uint8_t in[] = {0x00, 0x01, 0x7f, 0xab, 0xff};
    char out[11];
    memset(out, 'X', sizeof out);
    pm__hex(in, sizeof in, out);
    CHECK_STR(out, "00017fabff");
    pm__hex(in, 0, out);
    CHECK_STR(out, "");
}

/* ---------------------------------------------------------------- traceparent */

TEST(test_parse_spec_examples)
{
    CHECK_TP_OK(TP_EXAMPLE, "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x01);
    CHECK_TP_OK("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0x00);
    CHECK_TP_OK(TP_SUITE, TID, PID, 0x01);
    /* Version 00 keeps the raw flags byte (bit 0 is "sampled"). */
    CHECK_TP_OK("00-" TID "-" PID "-09", TID, PID, 0x09);
    CHECK_TP_OK("00-" TID "-" PID "-ff", TID, PID, 0xff);
    /* Only one of the ids needs a non-zero digit. */
    CHECK_TP_OK("00-00000000000000000000000000000001-0000000000000001-00",
                "00000000000000000000000000000001", "0000000000000001", 0x00);
    CHECK_TP_OK("00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-01",
                "ffffffffffffffffffffffffffffffff", "ffffffffffffffff", 0x01);
}

TEST(test_parse_version)
{
    CHECK_TP_BAD("ff-" TID "-" PID "-01"); /* forbidden version */
    CHECK_TP_BAD(".0-" TID "-" PID "-01"); /* illegal characters */
    CHECK_TP_BAD("0.-" TID "-" PID "-01");
    CHECK_TP_BAD("000-" TID "-" PID "-01"); /* too long */
    CHECK_TP_BAD("0000-" TID "-" PID "-01");
    CHECK_TP_BAD("0-" TID "-" PID "-01"); /* too short */
    CHECK_TP_BAD("-" TID "-" PID "-01");
    CHECK_TP_BAD("0A-" TID "-" PID "-01"); /* upper case */
    CHECK_TP_BAD("Cc-" TID "-" PID "-01");
    CHECK_TP_BAD("FF-" TID "-" PID "-01");
    CHECK_TP_BAD("0g-" TID "-" PID "-01"); /* not hex */

    /* Every version but ff parses (a higher one by its first four fields). */
    for (int v = 0; v < 256; v++) {
        char h[64];
        snprintf(h, sizeof h, "%02x-%s-%s-01", v, TID, PID);
        pm_trace_context_t c;
        int st = tp_parse(h, &c);
        if (st != (v == 0xff ? PM_EPARSE : PM_OK))
            TH_FAIL_("version %02x: %s", v, pm_status_name(st));
    }
}

TEST(test_parse_future_version)
{
    /* The test suite's version cc cases. */
    CHECK_TP_OK("cc-" TID "-" PID "-01", TID, PID, 0x01);
    CHECK_TP_OK("cc-" TID "-" PID "-01-what-the-future-will-be-like", TID, PID, 0x01);
    CHECK_TP_BAD("cc-" TID "-" PID "-01.what-the-future-will-be-like");
    CHECK_TP_BAD("cc-" TID "-" PID "-01what");
    /* A dash right after the flags opens a (possibly empty) future field. */
    CHECK_TP_OK("cc-" TID "-" PID "-01-", TID, PID, 0x01);
    CHECK_TP_OK("01-" TID "-" PID "-00-x-y-z", TID, PID, 0x00);
    /* Of a higher version's flags only the sampled bit is known. */
    CHECK_TP_OK("cc-" TID "-" PID "-ff", TID, PID, 0x01);
    CHECK_TP_OK("fe-" TID "-" PID "-02-abc", TID, PID, 0x00);
    /* The first four fields are still checked. */
    CHECK_TP_BAD("cc-00000000000000000000000000000000-" PID "-01-x");
    CHECK_TP_BAD("cc-" TID "-0000000000000000-01-x");
    CHECK_TP_BAD("cc-" TID "-" PID "-0G-x");
    CHECK_TP_BAD("cc-" TID "-" PID "-1-x");
    CHECK_TP_BAD("cc-" TID "-" PID "01-x");
    CHECK_TP_BAD("cc-" TID "-" PID);
    /* Version ff stays forbidden, with or without extra fields. */
    CHECK_TP_BAD("ff-" TID "-" PID "-01-x");
}

TEST(test_parse_version00_trailing)
{
    CHECK_TP_BAD(TP_SUITE ".");
    CHECK_TP_BAD(TP_SUITE "-what-the-future-will-be-like");
    CHECK_TP_BAD(TP_SUITE "-");
    CHECK_TP_BAD(TP_SUITE "0");
    CHECK_TP_BAD(TP_SUITE "x");
    /* len bounds the value: the same bytes with len 55 are valid. */
    const char *longer = TP_SUITE "-what-the-future-will-be-like";
    pm_trace_context_t c;
    CHECK_OK(tp_parse_n(longer, 55, &c));
    CHECK_STATUS(tp_parse_n(longer, 56, &c), PM_EPARSE);
}

TEST(test_parse_trace_id)
{
    CHECK_TP_BAD("00-00000000000000000000000000000000-" PID "-01"); /* all zero */
    CHECK_TP_BAD("00-.2345678901234567890123456789012-" PID "-01"); /* illegal chars */
    CHECK_TP_BAD("00-1234567890123456789012345678901.-" PID "-01");
    CHECK_TP_BAD("00-123456789012345678901234567890123-" PID "-01"); /* too long */
    CHECK_TP_BAD("00-1234567890123456789012345678901-" PID "-01");   /* too short */
    CHECK_TP_BAD("00--" PID "-01");                                  /* empty */
    CHECK_TP_BAD("00-4BF92F3577B34DA6A3CE929D0E0E4736-" PID "-01");  /* upper case */
    CHECK_TP_BAD("00-4bf92f3577b34da6a3ce929d0e0e473A-" PID "-01");
    CHECK_TP_BAD("00-g2345678901234567890123456789012-" PID "-01"); /* not hex */
    CHECK_TP_BAD("00-12345678901234567890123456789 12-" PID "-01");
}

TEST(test_parse_parent_id)
{
    CHECK_TP_BAD("00-" TID "-0000000000000000-01"); /* all zero */
    CHECK_TP_BAD("00-" TID "-.234567890123456-01"); /* illegal chars */
    CHECK_TP_BAD("00-" TID "-123456789012345.-01");
    CHECK_TP_BAD("00-" TID "-12345678901234567-01"); /* too long */
    CHECK_TP_BAD("00-" TID "-123456789012345-01");   /* too short */
    CHECK_TP_BAD("00-" TID "--01");                  /* empty */
    CHECK_TP_BAD("00-" TID "-00F067AA0BA902B7-01");  /* upper case */
    CHECK_TP_BAD("00-" TID "-00f067aa0ba902bZ-01");  /* not hex */
}

TEST(test_parse_flags)
{
    CHECK_TP_BAD("00-" TID "-" PID "-.0"); /* illegal chars */
    CHECK_TP_BAD("00-" TID "-" PID "-0.");
    CHECK_TP_BAD("00-" TID "-" PID "-001"); /* too long */
    CHECK_TP_BAD("00-" TID "-" PID "-1");   /* too short */
    CHECK_TP_BAD("00-" TID "-" PID "-");    /* empty */
    CHECK_TP_BAD("00-" TID "-" PID);        /* missing */
    CHECK_TP_BAD("00-" TID "-" PID "-0A");  /* upper case */
    CHECK_TP_BAD("00-" TID "-" PID "-0x");  /* not hex */
    CHECK_TP_OK("00-" TID "-" PID "-0a", TID, PID, 0x0a);
}

TEST(test_parse_separators)
{
    CHECK_TP_BAD("00_" TID "-" PID "-01");
    CHECK_TP_BAD("00-" TID "_" PID "-01");
    CHECK_TP_BAD("00-" TID "-" PID "_01");
    CHECK_TP_BAD("00 " TID " " PID " 01");
    CHECK_TP_BAD("00:" TID ":" PID ":01");
    CHECK_TP_BAD("00" TID "-" PID "-01-"); /* a separator moved */
    CHECK_TP_BAD("00-" TID PID "-01--");
    CHECK_TP_BAD("00--" TID "-" PID "-01"); /* doubled */
    CHECK_TP_BAD("00-" TID "--" PID "-01");
    CHECK_TP_BAD("00-" TID "-" PID "--01");
}

/* Every one-byte change of a valid header: only a lower-case hex digit in a
 * hex position (or '-' in a separator position) keeps it valid. */
TEST(test_parse_every_substitution)
{
    const char *base = TP_EXAMPLE;
    char h[56];
    for (size_t pos = 0; pos < 55; pos++) {
        int sep = pos == 2 || pos == 35 || pos == 52;
        for (int b = 0; b < 256; b++) {
            memcpy(h, base, 56);
            h[pos] = (char)b;
            int hex = (b >= '0' && b <= '9') || (b >= 'a' && b <= 'f');
            int want_ok = sep ? b == '-' : hex;
            pm_trace_context_t c;
            int st = tp_parse_n(h, 55, &c);
            if (st != (want_ok ? PM_OK : PM_EPARSE))
                TH_FAIL_("byte 0x%02x at %zu: %s", (unsigned)b, pos, pm_status_name(st));
        }
    }
}

TEST(test_parse_lengths)
{
    pm_trace_context_t c;
    /* Every proper prefix of a valid header is refused. */
    for (size_t n = 0; n < 55; n++)
        if (tp_parse_n(TP_EXAMPLE, n, &c) != PM_EPARSE) TH_FAIL_("prefix of length %zu", n);
    CHECK_OK(tp_parse_n(TP_EXAMPLE, 55, &c));
    CHECK_TP_BAD("");
    CHECK_TP_BAD(" ");
    CHECK_TP_BAD("00");
    CHECK_TP_BAD("00-");
    /* An embedded NUL is a byte like any other (and not hex). */
    char h[56];
    memcpy(h, TP_EXAMPLE, 56);
    h[10] = '\0';
    CHECK_STATUS(tp_parse_n(h, 55, &c), PM_EPARSE);
    CHECK(is_zero(&c, sizeof c));
    /* A higher version's future fields may be long. */
    char big[4096];
    memset(big, 'x', sizeof big);
    memcpy(big, "cc-" TID "-" PID "-01-", 56);
    CHECK_OK(tp_parse_n(big, sizeof big, &c));
    big[0] = big[1] = '0';
    CHECK_STATUS(tp_parse_n(big, sizeof big, &c), PM_EPARSE);
}

/* Leading/trailing OWS around the value is ignored (as HTTP strips it and the
 * test suite expects); whitespace inside, or other control characters, is not. */
TEST(test_parse_ows)
{
    CHECK_TP_OK(" " TP_SUITE, TID, PID, 1);
    CHECK_TP_OK("\t" TP_SUITE, TID, PID, 1);
    CHECK_TP_OK(TP_SUITE " ", TID, PID, 1);
    CHECK_TP_OK(TP_SUITE "\t", TID, PID, 1);
    CHECK_TP_OK("\t " TP_SUITE " \t", TID, PID, 1);
    CHECK_TP_OK("    " TP_SUITE "     ", TID, PID, 1);
    CHECK_TP_OK(" cc-" TID "-" PID "-01-future ", TID, PID, 1);
    CHECK_TP_BAD("\n" TP_SUITE);
    CHECK_TP_BAD(TP_SUITE "\r\n");
    CHECK_TP_BAD("\v" TP_SUITE);
    CHECK_TP_BAD(TP_SUITE "\f");
    CHECK_TP_BAD("00 -" TID "-" PID "-01");
    CHECK_TP_BAD("00- " TID "-" PID "-01");
    CHECK_TP_BAD("00-" TID "-" PID "- 01");
    CHECK_TP_BAD("00-" TID "-" PID " -01");
    CHECK_TP_BAD("00-" TID "-" PID "-01 x");
}

TEST(test_parse_bad_args)
{
    pm_trace_context_t c;
    memset(&c, 0xa5, sizeof c);
    CHECK_STATUS(pm_traceparent_parse(NULL, 0, &c), PM_EINVAL);
    CHECK(is_zero(&c, sizeof c));
    memset(&c, 0xa5, sizeof c);
    CHECK_STATUS(pm_traceparent_parse(NULL, 55, &c), PM_EINVAL);
    CHECK(is_zero(&c, sizeof c));
    CHECK_STATUS(pm_traceparent_parse(TP_EXAMPLE, 55, NULL), PM_EINVAL);
    CHECK_STATUS(pm_traceparent_parse(NULL, 0, NULL), PM_EINVAL);
}

TEST(test_format)
{
    pm_trace_context_t c;
    memset(&c, 0, sizeof c);
    for (int i = 0; i < 16; i++) c.trace_id[i] = (uint8_t)(0x10 * i + i);
    for (int i = 0; i < 8; i++) c.span_id[i] = (uint8_t)(0xf0 - 0x10 * i);
    c.flags = PM_TRACE_FLAG_SAMPLED;
    char buf[56];
    memset(buf, 'X', sizeof buf);
    CHECK_OK(pm_traceparent_format(&c, buf, sizeof buf));
    CHECK_STR(buf, "00-00112233445566778899aabbccddeeff-f0e0d0c0b0a09080-01");
    c.flags = 0;
    CHECK_OK(pm_traceparent_format(&c, buf, sizeof buf));
    CHECK_STR(buf, "00-00112233445566778899aabbccddeeff-f0e0d0c0b0a09080-00");
    /* The flags byte is written as given; remote and padding are not written. */
    c.flags = 0xff;
    c.remote = 1;
    CHECK_OK(pm_traceparent_format(&c, buf, sizeof buf));
    CHECK_STR(buf, "00-00112233445566778899aabbccddeeff-f0e0d0c0b0a09080-ff");
    /* A larger buffer: only 56 bytes are written. */
    char big[80];
    memset(big, 'X', sizeof big);
    CHECK_OK(pm_traceparent_format(&c, big, sizeof big));
    CHECK_EQ_INT(strlen(big), 55);
    CHECK_EQ_INT(big[56], 'X');
}

TEST(test_format_bad_args)
{
    pm_trace_context_t c;
    memset(&c, 0, sizeof c);
    c.trace_id[15] = 1;
    c.span_id[7] = 1;
    char buf[56];
    memset(buf, 'X', sizeof buf);
    CHECK_STATUS(pm_traceparent_format(&c, buf, 55), PM_EINVAL);
    CHECK_EQ_INT(buf[0], '\0');
    memset(buf, 'X', sizeof buf);
    CHECK_STATUS(pm_traceparent_format(&c, buf, 0), PM_EINVAL);
    CHECK_EQ_INT(buf[0], 'X'); /* size 0: not one byte written */
    CHECK_STATUS(pm_traceparent_format(&c, NULL, 56), PM_EINVAL);
    CHECK_STATUS(pm_traceparent_format(NULL, buf, sizeof buf), PM_EINVAL);
    CHECK_EQ_INT(buf[0], '\0');
    c.trace_id[15] = 0;
    CHECK_STATUS(pm_traceparent_format(&c, buf, sizeof buf), PM_EINVAL);
    c.trace_id[15] = 1;
    c.span_id[7] = 0;
    CHECK_STATUS(pm_traceparent_format(&c, buf, sizeof buf), PM_EINVAL);
    c.span_id[7] = 1;
    CHECK_OK(pm_traceparent_format(&c, buf, sizeof buf));
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

TEST(test_round_trip)
{
    /* header -> context -> header gives back the same text ... */
    const char *headers[] = {TP_EXAMPLE, TP_SUITE, "00-" TID "-" PID "-00", "00-" TID "-" PID "-ff",
                             "00-00000000000000000000000000000001-8000000000000000-01"};
    for (size_t i = 0; i < sizeof headers / sizeof *headers; i++) {
        pm_trace_context_t c;
        char buf[56];
        CHECK_OK(tp_parse(headers[i], &c));
        CHECK_OK(pm_traceparent_format(&c, buf, sizeof buf));
        CHECK_STR(buf, headers[i]);
    }
    /* ... a future version comes back as version 00 with its four fields ... */
    {
        pm_trace_context_t c;
        char buf[56];
        CHECK_OK(tp_parse("\tcc-" TID "-" PID "-01-future ", &c));
        CHECK_OK(pm_traceparent_format(&c, buf, sizeof buf));
        CHECK_STR(buf, TP_SUITE);
    }
    /* ... and context -> header -> context gives the same context (remote set). */
    for (int i = 0; i < 10000; i++) {
        pm_trace_context_t a, b;
        memset(&a, 0, sizeof a);
        uint64_t r[3] = {rng(), rng(), rng()};
        memcpy(a.trace_id, r, 16);
        memcpy(a.span_id, &r[2], 8);
        if (i % 7 == 0) memset(a.trace_id, 0, 15); /* sparse ids too */
        if (i % 11 == 0) memset(a.span_id, 0, 7);
        a.trace_id[15] |= 1;
        a.span_id[7] |= 1;
        a.flags = (uint8_t)rng();
        char buf[56];
        REQUIRE(pm_traceparent_format(&a, buf, sizeof buf) == PM_OK);
        REQUIRE(tp_parse(buf, &b) == PM_OK);
        a.remote = 1;
        if (memcmp(&a, &b, sizeof a) != 0) {
            TH_FAIL_("round trip of %s differs", buf);
            return;
        }
    }
}

/* ---------------------------------------------------------------- tracestate */

/* Normalises s[0..n) from an exact-size copy into buf. */
static pm_status_t ts_norm_n(const char *s, size_t n, char *buf, size_t size)
{
    char *c = exact_copy(s, n);
    pm_status_t st = pm_tracestate_normalize(c, n, buf, size);
    free(c);
    return st;
}

#define CHECK_TS(in, want)                                                                         \
    do {                                                                                           \
        const char *in_ = (in), *want_ = (want);                                                   \
        char out_[600];                                                                            \
        memset(out_, 'X', sizeof out_);                                                            \
        int st_ = ts_norm_n(in_, strlen(in_), out_, sizeof out_);                                  \
        if (st_ != PM_OK)                                                                          \
            TH_FAIL_("normalize(\"%.80s\") = %s, want PM_OK", in_, pm_status_name(st_));           \
        else if (strcmp(out_, want_) != 0)                                                         \
            TH_FAIL_("normalize(\"%.80s\") = \"%.80s\", want \"%.80s\"", in_, out_, want_);        \
    } while (0)

#define CHECK_TS_BAD(in)                                                                           \
    do {                                                                                           \
        const char *in_ = (in);                                                                    \
        char out_[600];                                                                            \
        memset(out_, 'X', sizeof out_);                                                            \
        int st_ = ts_norm_n(in_, strlen(in_), out_, sizeof out_);                                  \
        if (st_ != PM_EPARSE)                                                                      \
            TH_FAIL_("normalize(\"%.80s\") = %s, want PM_EPARSE", in_, pm_status_name(st_));       \
        else if (out_[0] != '\0')                                                                  \
            TH_FAIL_("normalize(\"%.80s\") failed but left output", in_);                          \
    } while (0)

/* A string of n copies of ch (static storage; n < 600). */
static const char *rep(char ch, size_t n)
{
    static char bufs[16][600];
    static int next;
    char *b = bufs[next++ % 16];
    memset(b, ch, n);
    b[n] = '\0';
    return b;
}

/* a followed by b (static storage, rotating through 16 buffers). */
static const char *cat(const char *a, const char *b)
{
    static char bufs[16][1200];
    static int next;
    char *o = bufs[next++ % 16];
    size_t la = strlen(a), lb = strlen(b);
    if (la + lb >= sizeof bufs[0]) abort();
    /* memmove: the compiler cannot tell that a and b are not in bufs[next]. */
    memmove(o, a, la);
    memmove(o + la, b, lb + 1);
    return o;
}

TEST(test_tracestate_valid)
{
    CHECK_TS("congo=t61rcWkgMzE", "congo=t61rcWkgMzE");
    CHECK_TS("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    CHECK_TS("a=1", "a=1");
    /* Multiple header fields combined with "," keep their order. */
    CHECK_TS("foo=1,bar=2,rojo=1,congo=2,baz=3", "foo=1,bar=2,rojo=1,congo=2,baz=3");
    /* Values: printable ASCII but ',' and '='; inner and leading spaces kept. */
    CHECK_TS("foo= 1", "foo= 1");
    CHECK_TS("foo=a b  c", "foo=a b  c");
    CHECK_TS("foo=!\"#$%&'()*+-./09:;<>?@AZ[\\]^_`az{|}~",
             "foo=!\"#$%&'()*+-./09:;<>?@AZ[\\]^_`az{|}~");
}

/* The test suite's all-allowed-characters case, plain and multi-tenant keys. */
TEST(test_tracestate_all_allowed_characters)
{
    char key[64] = "", value[128] = "";
    size_t k = 0, v = 0;
    for (int c = 'a'; c <= 'z'; c++) key[k++] = (char)c;
    for (int c = '0'; c <= '9'; c++) key[k++] = (char)c;
    memcpy(key + k, "_-*/", 5);
    for (int c = 0x20; c <= 0x7e; c++)
        if (c != ',' && c != '=') value[v++] = (char)c;
    value[v] = '\0';
    CHECK_EQ_INT(strlen(value), 93);
    const char *plain = cat(cat(key, "="), value);
    CHECK_TS(plain, plain);
    const char *tenant = cat(cat(cat(key, "@a-z0-9_-*/"), "="), value);
    CHECK_TS(tenant, tenant);
}

TEST(test_tracestate_empty_and_ows)
{
    CHECK_TS("", "");
    CHECK_TS(" ", "");
    CHECK_TS("\t \t", "");
    CHECK_TS(",", "");
    CHECK_TS(",,,", "");
    CHECK_TS(" , \t ,", "");
    CHECK_TS(",,foo=1,,bar=2,,", "foo=1,bar=2");
    CHECK_TS("foo=1, ,bar=2", "foo=1,bar=2");
    /* The test suite's OWS cases. */
    CHECK_TS("foo=1 \t , \t bar=2, \t baz=3", "foo=1,bar=2,baz=3");
    CHECK_TS("foo=1\t \t,\t \tbar=2,\t \tbaz=3", "foo=1,bar=2,baz=3");
    CHECK_TS(" foo=1", "foo=1");
    CHECK_TS("\tfoo=1", "foo=1");
    CHECK_TS("foo=1 ", "foo=1");
    CHECK_TS("foo=1\t", "foo=1");
    CHECK_TS("\t foo=1 \t", "foo=1");
    CHECK_TS("foo=1, bar=2", "foo=1,bar=2");
    /* Other whitespace is not OWS. */
    CHECK_TS_BAD("\nfoo=1");
    CHECK_TS_BAD("foo=1\r\n");
    CHECK_TS_BAD("foo=1,\vbar=2");
    /* OWS is not allowed between key and '='. */
    CHECK_TS_BAD("foo =1");
    CHECK_TS_BAD("foo\t=1");
}

TEST(test_tracestate_keys)
{
    CHECK_TS_BAD("FOO=1");
    CHECK_TS_BAD("Foo=1");
    CHECK_TS_BAD("foo.bar=1");
    CHECK_TS_BAD("=1");
    CHECK_TS_BAD("_foo=1");
    CHECK_TS_BAD("1foo=1"); /* a simple key starts with a letter (Level 1) */
    CHECK_TS_BAD("f\xc3\xa9=1");
    CHECK_TS("f00_-*/=1", "f00_-*/=1");
    /* Simple key length: 256 valid, 257 not. */
    CHECK_TS(cat("foo=1,", cat(rep('z', 256), "=1")), cat("foo=1,", cat(rep('z', 256), "=1")));
    CHECK_TS_BAD(cat("foo=1,", cat(rep('z', 257), "=1")));
}

TEST(test_tracestate_multi_tenant_keys)
{
    CHECK_TS("tenant@vendor=1", "tenant@vendor=1");
    CHECK_TS("1tenant@vendor=1", "1tenant@vendor=1"); /* tenant may start with a digit */
    CHECK_TS("t@v=1", "t@v=1");
    CHECK_TS("t-_*/9@v-_*/9=1", "t-_*/9@v-_*/9=1");
    /* tenant 241 + system 14 is the longest; one more on either side is not. */
    const char *longest = cat(cat(rep('t', 241), "@"), cat(rep('v', 14), "=1"));
    CHECK_TS(cat("foo=1,", longest), cat("foo=1,", longest));
    CHECK_TS_BAD(cat("foo=1,", cat(rep('t', 242), "@v=1")));
    CHECK_TS_BAD(cat("foo=1,", cat("t@", cat(rep('v', 15), "=1"))));
    /* The test suite's illegal vendor formats (the whole header is refused). */
    CHECK_TS_BAD("foo@=1,bar=2");
    CHECK_TS_BAD("@foo=1,bar=2");
    CHECK_TS_BAD("foo@@bar=1,bar=2");
    CHECK_TS_BAD("foo@bar@baz=1,bar=2");
    CHECK_TS_BAD("t@1v=1"); /* system id starts with a letter */
    CHECK_TS_BAD("t@_v=1");
    CHECK_TS_BAD("_t@v=1");
    CHECK_TS_BAD("T@v=1");
    CHECK_TS_BAD("t@V=1");
}

TEST(test_tracestate_values)
{
    CHECK_TS_BAD("foo=bar=baz");
    CHECK_TS_BAD("foo=");
    CHECK_TS_BAD("foo=,bar=3");
    CHECK_TS_BAD("foo=   ");   /* only OWS: empty value */
    CHECK_TS_BAD("foo");       /* no '=' */
    CHECK_TS_BAD("foo=1,bar"); /* one bad member spoils the header */
    CHECK_TS_BAD("foo=a\tb");
    CHECK_TS_BAD("foo=a\x7f");
    CHECK_TS_BAD("foo=\x01");
    CHECK_TS_BAD("foo=caf\xc3\xa9");
    /* Value length: 256 valid, 257 not (trailing OWS is not counted). */
    CHECK_TS(cat("foo=", rep('x', 256)), cat("foo=", rep('x', 256)));
    CHECK_TS(cat(cat("foo=", rep('x', 256)), "   "), cat("foo=", rep('x', 256)));
    CHECK_TS_BAD(cat("foo=", rep('x', 257)));
    CHECK_TS(cat("foo=", cat(rep(' ', 255), "x")), cat("foo=", cat(rep(' ', 255), "x")));
    CHECK_TS_BAD(cat("foo=", cat(rep(' ', 256), "x")));
    /* An embedded NUL is a byte like any other, and not a valid one. */
    char buf[32];
    CHECK_STATUS(ts_norm_n("foo=1\0x", 7, buf, sizeof buf), PM_EPARSE);
    CHECK_STATUS(ts_norm_n("foo=1\0", 6, buf, sizeof buf), PM_EPARSE);
}

TEST(test_tracestate_duplicates)
{
    CHECK_TS_BAD("foo=1,foo=1");
    CHECK_TS_BAD("foo=1,foo=2");
    CHECK_TS_BAD("foo=1, \tfoo=2");
    CHECK_TS_BAD("foo=1,bar=2,baz=3,foo=4");
    CHECK_TS_BAD("t@v=1,t@v=2");
    /* Keys that share a prefix or a tenant are different keys. */
    CHECK_TS("foo=1,foo1=2,foo@v=3,foo@w=4,f=5", "foo=1,foo1=2,foo@v=3,foo@w=4,f=5");
}

TEST(test_tracestate_member_count)
{
    /* The test suite's four header fields, combined. */
    const char *f1 = "bar01=01,bar02=02,bar03=03,bar04=04,bar05=05,bar06=06,bar07=07,bar08=08,"
                     "bar09=09,bar10=10";
    const char *f2 = "bar11=11,bar12=12,bar13=13,bar14=14,bar15=15,bar16=16,bar17=17,bar18=18,"
                     "bar19=19,bar20=20";
    const char *f3 = "bar21=21,bar22=22,bar23=23,bar24=24,bar25=25,bar26=26,bar27=27,bar28=28,"
                     "bar29=29,bar30=30";
    const char *h32 = cat(cat(cat(f1, ","), cat(f2, ",")), cat(cat(f3, ","), "bar31=31,bar32=32"));
    CHECK_TS(h32, h32);
    CHECK_TS_BAD(cat(h32, ",bar33=33"));
    /* Empty members do not count. */
    CHECK_TS(cat(cat(",, ,", h32), ", ,,"), h32);
}

TEST(test_tracestate_length_limit)
{
    /* "a=" + 256 + "," + "b=" + L: 512 bytes when L = 251. */
    const char *m1 = cat("a=", rep('x', 256));
    const char *h512 = cat(cat(m1, ",b="), rep('y', 251));
    CHECK_EQ_INT(strlen(h512), 512);
    CHECK_TS(h512, h512);
    const char *h513 = cat(cat(m1, ",b="), rep('y', 252));
    CHECK_TS_BAD(h513);
    /* OWS and empty members count towards the 512 bytes received. */
    const char *h511 = cat(cat(m1, ",b="), rep('y', 250));
    CHECK_TS(cat(h511, " "), h511);
    CHECK_TS_BAD(cat(h511, "  "));
    CHECK_TS_BAD(cat(h511, ",,"));
    CHECK_TS_BAD(cat(rep(' ', 513), ""));
    /* The longest key with the longest value (513 bytes) is over the limit. */
    CHECK_TS_BAD(cat(cat(rep('k', 256), "="), rep('v', 256)));
}

TEST(test_tracestate_buffer)
{
    const char *in = " foo=1 , bar=2 ";
    char buf[32];
    /* The output needs strlen("foo=1,bar=2") + 1 = 12 bytes, fewer than the input. */
    memset(buf, 'X', sizeof buf);
    CHECK_OK(ts_norm_n(in, strlen(in), buf, 12));
    CHECK_STR(buf, "foo=1,bar=2");
    memset(buf, 'X', sizeof buf);
    CHECK_STATUS(ts_norm_n(in, strlen(in), buf, 11), PM_ERANGE);
    CHECK_EQ_INT(buf[0], '\0');
    CHECK_EQ_INT(buf[1], 'X');
    memset(buf, 'X', sizeof buf);
    CHECK_STATUS(ts_norm_n(in, strlen(in), buf, 1), PM_ERANGE);
    CHECK_EQ_INT(buf[0], '\0');
    memset(buf, 'X', sizeof buf);
    CHECK_STATUS(ts_norm_n(in, strlen(in), buf, 0), PM_ERANGE);
    CHECK_EQ_INT(buf[0], 'X'); /* size 0: nothing written */
    /* The empty list needs only the NUL. */
    CHECK_OK(ts_norm_n(" , ", 3, buf, 1));
    CHECK_EQ_INT(buf[0], '\0');
    CHECK_STATUS(ts_norm_n("", 0, buf, 0), PM_ERANGE);
    /* Validation comes first: an invalid value is PM_EPARSE whatever the buffer. */
    CHECK_STATUS(ts_norm_n("FOO=1", 5, buf, 1), PM_EPARSE);
    /* 513 bytes always suffice: the output is never longer than the input. */
    const char *h512 = cat(cat(cat("a=", rep('x', 256)), ",b="), rep('y', 251));
    char out[513];
    CHECK_OK(ts_norm_n(h512, 512, out, sizeof out));
    CHECK_STATUS(ts_norm_n(h512, 512, out, 512), PM_ERANGE);
}

TEST(test_tracestate_len_bounds_input)
{
    char buf[32];
    /* Bytes past len are never looked at: here they would spoil the value. */
    CHECK_OK(pm_tracestate_normalize("foo=1,BAD", 5, buf, sizeof buf));
    CHECK_STR(buf, "foo=1");
    CHECK_OK(pm_tracestate_normalize("foo=1,BAD", 6, buf, sizeof buf));
    CHECK_STR(buf, "foo=1");
    CHECK_STATUS(pm_tracestate_normalize("foo=1,BAD", 7, buf, sizeof buf), PM_EPARSE);
}

TEST(test_tracestate_bad_args)
{
    char buf[8];
    memset(buf, 'X', sizeof buf);
    CHECK_STATUS(pm_tracestate_normalize(NULL, 0, buf, sizeof buf), PM_EINVAL);
    CHECK_EQ_INT(buf[0], '\0');
    CHECK_STATUS(pm_tracestate_normalize("a=1", 3, NULL, 8), PM_EINVAL);
    CHECK_STATUS(pm_tracestate_normalize(NULL, 3, NULL, 0), PM_EINVAL);
}

/* Normalising twice changes nothing. */
TEST(test_tracestate_idempotent)
{
    const char *ins[] = {"foo=1 \t , \t bar=2, \t baz=3", ",,a=1,,b= 2 ,", " t@v=x y ",
                         "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"};
    for (size_t i = 0; i < sizeof ins / sizeof *ins; i++) {
        char a[600], b[600];
        CHECK_OK(ts_norm_n(ins[i], strlen(ins[i]), a, sizeof a));
        CHECK_OK(ts_norm_n(a, strlen(a), b, sizeof b));
        CHECK_STR(b, a);
    }
}

TEST_MAIN(TH_CASE(test_hex), TH_CASE(test_parse_spec_examples), TH_CASE(test_parse_version),
          TH_CASE(test_parse_future_version), TH_CASE(test_parse_version00_trailing),
          TH_CASE(test_parse_trace_id), TH_CASE(test_parse_parent_id), TH_CASE(test_parse_flags),
          TH_CASE(test_parse_separators), TH_CASE(test_parse_every_substitution),
          TH_CASE(test_parse_lengths), TH_CASE(test_parse_ows), TH_CASE(test_parse_bad_args),
          TH_CASE(test_format), TH_CASE(test_format_bad_args), TH_CASE(test_round_trip),
          TH_CASE(test_tracestate_valid), TH_CASE(test_tracestate_all_allowed_characters),
          TH_CASE(test_tracestate_empty_and_ows), TH_CASE(test_tracestate_keys),
          TH_CASE(test_tracestate_multi_tenant_keys), TH_CASE(test_tracestate_values),
          TH_CASE(test_tracestate_duplicates), TH_CASE(test_tracestate_member_count),
          TH_CASE(test_tracestate_length_limit), TH_CASE(test_tracestate_buffer),
          TH_CASE(test_tracestate_len_bounds_input), TH_CASE(test_tracestate_bad_args),
          TH_CASE(test_tracestate_idempotent))
