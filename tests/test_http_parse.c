/* The embedded server's request parser and header helpers
 * (lib/http_request.c), on crafted heads: what is accepted and how it is
 * read, every refusal with its status, the limits on complete and on
 * incomplete input, content negotiation, the bearer check, the Host check
 * and query strings. */
#include "harness.h"

#include "internal/http_internal.h"

#include <perfmetrics/perfmetrics.h>

static pm__http_field_t fields[128];
static const pm__http_limits_t lim = {64, 256, 8};

static int parse(const char *text, pm__http_request_t *r)
{
    r->fields = fields;
    return pm__http_parse(text, strlen(text), &lim, r);
}

static int slice_is(const char *p, size_t n, const char *want)
{
    return p && n == strlen(want) && !memcmp(p, want, n);
}

TEST(accepts_simple_get)
{
    pm__http_request_t r;
    const char *t = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9464\r\nAccept:  text/plain \r\n\r\n";
    CHECK_EQ_INT(parse(t, &r), (int)strlen(t));
    CHECK_EQ_INT(r.method, PM__HTTP_GET);
    CHECK_EQ_INT(r.minor, 1);
    CHECK(slice_is(r.path, r.path_len, "/metrics"));
    CHECK(r.query == NULL);
    CHECK_EQ_INT(r.nfields, 2);
    CHECK(r.keep_alive);
    CHECK_EQ_INT(r.content_length, -1);
    CHECK_EQ_INT(r.host_count, 1);
    const pm__http_field_t *f = pm__http_field(&r, "ACCEPT");
    REQUIRE(f);
    CHECK(slice_is(f->value, f->value_len, "text/plain")); /* OWS stripped */
    CHECK(pm__http_field(&r, "x-none") == NULL);
}

TEST(request_line_forms)
{
    pm__http_request_t r;
    CHECK(parse("HEAD /a?b=c&d HTTP/1.0\r\n\r\n", &r) > 0);
    CHECK_EQ_INT(r.method, PM__HTTP_HEAD);
    CHECK_EQ_INT(r.minor, 0);
    CHECK(!r.keep_alive);
    CHECK(slice_is(r.path, r.path_len, "/a"));
    CHECK(slice_is(r.query, r.query_len, "b=c&d"));
    /* absolute-form keeps the path */
    CHECK(parse("GET http://h:1/api/v1/info?x=1 HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
    CHECK(slice_is(r.path, r.path_len, "/api/v1/info"));
    CHECK(slice_is(r.query, r.query_len, "x=1"));
    CHECK(parse("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
    CHECK(slice_is(r.path, r.path_len, "/"));
    /* other methods parse, so they can be answered 405 */
    CHECK(parse("DELETE /metrics HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
    CHECK_EQ_INT(r.method, PM__HTTP_OTHER);
    CHECK(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
    CHECK_EQ_INT(r.method, PM__HTTP_OTHER);
    /* methods are case-sensitive: "get" is another method */
    CHECK(parse("get / HTTP/1.1\r\nHost: h\r\n\r\n", &r) > 0);
    CHECK_EQ_INT(r.method, PM__HTTP_OTHER);
    /* bare LF line ends and leading blank lines */
    CHECK(parse("\r\n\nGET / HTTP/1.1\nHost: h\n\n", &r) > 0);
    CHECK_EQ_INT(r.nfields, 1);
}

TEST(refusals)
{
    static const struct {
        const char *text;
        int status;
    } cases[] = {
        {"garbage\r\n\r\n", -400},
        {"GET /\r\n\r\n", -400},                      /* no version */
        {"GET  / HTTP/1.1\r\n\r\n", -400},            /* two spaces */
        {"GET / HTTP/1.1 \r\n\r\n", -400},            /* trailing space */
        {"GET / http/1.1\r\n\r\n", -400},             /* version is case-sensitive */
        {"GET / HTTP/1.12\r\n\r\n", -400},
        {"GET / HTTP/2.0\r\n\r\n", -505},
        {"GET / HTTP/0.9\r\n\r\n", -505},
        {"GET x HTTP/1.1\r\nHost: h\r\n\r\n", -400},  /* not a path */
        {"GET /a#f HTTP/1.1\r\nHost: h\r\n\r\n", -400},
        {"G(T / HTTP/1.1\r\n\r\n", -400},             /* not a token */
        {"GET /\x01 HTTP/1.1\r\n\r\n", -400},
        {"GET / HTTP/1.1\rHost: h\r\n\r\n", -400},    /* bare CR */
        {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", -400}, /* space before colon */
        {"GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\n: v\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nNoColon\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nX: a\x01z\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nX: a\x7fz\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", -400},
        {"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", -400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pm__http_request_t r;
        int st = parse(cases[i].text, &r);
        if (st != cases[i].status)
            TH_FAIL_("case %zu \"%s\": got %d, want %d", i, cases[i].text, st, cases[i].status);
    }
    /* a later 1.x minor is read as 1.1 (RFC 9110 2.5) */
    pm__http_request_t r12;
    CHECK(parse("GET / HTTP/1.2\r\nHost: h\r\n\r\n", &r12) > 0);
    CHECK_EQ_INT(r12.minor, 1);
    /* the same Content-Length twice is fine */
    pm__http_request_t r;
    CHECK(parse("GET / HTTP/1.1\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\n", &r) > 0);
    CHECK_EQ_INT(r.content_length, 3);
    CHECK(parse("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &r) > 0);
    CHECK(r.transfer_encoding);
}

static char big[4096];

TEST(limits)
{
    pm__http_request_t r;
    /* request line of exactly max_line (64) bytes passes, 65 is 414 */
    char line[128];
    memset(line, 'a', sizeof line);
    memcpy(line, "GET /", 5);
    memcpy(line + 64 - 9, " HTTP/1.1", 9);
    snprintf(big, sizeof big, "%.*s\r\n\r\n", 64, line);
    CHECK(parse(big, &r) > 0);
    memcpy(line + 65 - 9, " HTTP/1.1", 9);
    snprintf(big, sizeof big, "%.*s\r\n\r\n", 65, line);
    CHECK_EQ_INT(parse(big, &r), -414);
    /* incomplete but already too long: 414 before the line ends */
    memset(big, 'a', 200);
    memcpy(big, "GET /", 5);
    big[200] = '\0';
    CHECK_EQ_INT(parse(big, &r), -414);
    big[60] = '\0';
    CHECK_EQ_INT(parse(big, &r), 0); /* still might fit */
    /* head over max_head (256) */
    size_t n = (size_t)snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX: ");
    memset(big + n, 'v', 300);
    strcpy(big + n + 300, "\r\n\r\n");
    CHECK_EQ_INT(parse(big, &r), -431);
    big[n + 300] = '\0'; /* incomplete and already too big */
    CHECK_EQ_INT(parse(big, &r), -431);
    big[n + 100] = '\0';
    CHECK_EQ_INT(parse(big, &r), 0);
    /* more than max_headers (8) fields */
    strcpy(big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 8; i++) strcat(big, "A: b\r\n");
    strcat(big, "\r\n");
    CHECK(parse(big, &r) > 0);
    CHECK_EQ_INT(r.nfields, 8);
    strcpy(big, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < 9; i++) strcat(big, "A: b\r\n");
    strcat(big, "\r\n");
    CHECK_EQ_INT(parse(big, &r), -431);
}

TEST(incomplete_input)
{
    const char *t = "GET /health HTTP/1.1\r\nHost: h\r\n\r\n";
    size_t n = strlen(t);
    pm__http_request_t r;
    r.fields = fields;
    for (size_t cut = 0; cut < n; cut++)
        if (pm__http_parse(t, cut, &lim, &r) != 0) TH_FAIL_("prefix of %zu bytes not incomplete", cut);
    CHECK_EQ_INT(pm__http_parse(t, n, &lim, &r), (int)n);
    /* pipelined: the first head only */
    const char *two = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
    CHECK_EQ_INT(pm__http_parse(two, strlen(two), &lim, &r), (int)strlen(two) / 2);
    CHECK(slice_is(r.path, r.path_len, "/a"));
}

TEST(connection_tokens)
{
    pm__http_request_t r;
    CHECK(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &r) > 0);
    CHECK(!r.keep_alive);
    CHECK(parse("GET / HTTP/1.1\r\nConnection: Keep-Alive, Close\r\n\r\n", &r) > 0);
    CHECK(!r.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", &r) > 0);
    CHECK(r.keep_alive);
    CHECK(parse("GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n", &r) > 0);
    CHECK(!r.keep_alive);
}

/* Parses "GET / HTTP/1.1" with the one field `name: value`, under limits
 * roomy enough for any value here, into *r. 1 when the parser accepts it. The
 * slices of *r point into a static buffer, valid until the next call. */
static int parse_with(const char *name, const char *value, pm__http_request_t *r)
{
    static char text[512];
    static const pm__http_limits_t roomy = {8192, 8192, 100};
    snprintf(text, sizeof text, "GET / HTTP/1.1\r\n%s: %s\r\n\r\n", name, value);
    r->fields = fields;
    return pm__http_parse(text, strlen(text), &roomy, r) > 0;
}

/* What each helper reads from a request with that one field; -1 when the
 * request does not even parse. */
static int fmt_of(const char *accept)
{
    pm__http_request_t r;
    return parse_with("Accept", accept, &r) ? (int)pm__http_accept_format(&r) : -1;
}

TEST(accept_negotiation)
{
    /* what Prometheus 2.x sends */
    CHECK_EQ_INT(fmt_of("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                        "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
                 PM_FORMAT_OPENMETRICS);
    CHECK_EQ_INT(fmt_of("text/plain;version=0.0.4"), PM_FORMAT_PROMETHEUS);
    CHECK_EQ_INT(fmt_of("*/*"), PM_FORMAT_PROMETHEUS);
    CHECK_EQ_INT(fmt_of("application/openmetrics-text"), PM_FORMAT_OPENMETRICS);
    CHECK_EQ_INT(fmt_of("application/openmetrics-text; version=\"1.0.0\"; q=0.9, text/plain"),
                 PM_FORMAT_PROMETHEUS); /* text/plain has q=1 */
    CHECK_EQ_INT(fmt_of("application/openmetrics-text;version=0.0.1"), PM_FORMAT_PROMETHEUS);
    CHECK_EQ_INT(fmt_of("application/openmetrics-text;q=0"), PM_FORMAT_PROMETHEUS);
    CHECK_EQ_INT(fmt_of("text/plain;q=0.2, application/openmetrics-text;q=0.2"),
                 PM_FORMAT_OPENMETRICS); /* ties go to OpenMetrics */
    CHECK_EQ_INT(fmt_of("application/openmetrics-text;q=2"), PM_FORMAT_PROMETHEUS); /* bad q */
    CHECK_EQ_INT(fmt_of("image/png"), PM_FORMAT_PROMETHEUS);
    CHECK_EQ_INT(fmt_of(",,;"), PM_FORMAT_PROMETHEUS);
    pm__http_request_t r;
    CHECK(parse("GET / HTTP/1.1\r\n\r\n", &r) > 0);
    CHECK_EQ_INT(pm__http_accept_format(&r), PM_FORMAT_PROMETHEUS);
}

static int gzip_of(const char *ae)
{
    pm__http_request_t r;
    return parse_with("Accept-Encoding", ae, &r) ? pm__http_accepts_gzip(&r) : -1;
}

TEST(accept_encoding)
{
    CHECK_EQ_INT(gzip_of("gzip"), 1);
    CHECK_EQ_INT(gzip_of("deflate, gzip;q=0.5"), 1);
    CHECK_EQ_INT(gzip_of("x-gzip"), 1);
    CHECK_EQ_INT(gzip_of("*"), 1);
    CHECK_EQ_INT(gzip_of("gzip;q=0"), 0);
    CHECK_EQ_INT(gzip_of("gzip;q=0, *"), 0); /* an explicit refusal beats * */
    CHECK_EQ_INT(gzip_of("identity"), 0);
    CHECK_EQ_INT(gzip_of("br, deflate"), 0);
}

static int bearer(const char *auth)
{
    pm__http_request_t r;
    return parse_with("Authorization", auth, &r) ? pm__http_bearer_ok(&r, "abc.DEF-1", 9) : -1;
}

TEST(bearer_token)
{
    CHECK_EQ_INT(bearer("Bearer abc.DEF-1"), 1);
    CHECK_EQ_INT(bearer("bearer   abc.DEF-1"), 1);
    CHECK_EQ_INT(bearer("Bearer abc.DEF-2"), 0);
    CHECK_EQ_INT(bearer("Bearer abc.DEF-"), 0);
    CHECK_EQ_INT(bearer("Bearer abc.DEF-12"), 0);
    CHECK_EQ_INT(bearer("Bearer"), 0);
    CHECK_EQ_INT(bearer("Bearerabc.DEF-1"), 0);
    CHECK_EQ_INT(bearer("Basic abc.DEF-1"), 0);
    CHECK_EQ_INT(bearer("Bearer ABC.def-1"), 0); /* the token is case-sensitive */
    pm__http_request_t r;
    CHECK(parse("GET / HTTP/1.1\r\n\r\n", &r) > 0);
    CHECK_EQ_INT(pm__http_bearer_ok(&r, "abc", 3), 0);
}

static int host_local(const char *host)
{
    pm__http_request_t r;
    return parse_with("Host", host, &r) ? pm__http_host_is_local(&r) : -1;
}

TEST(host_check)
{
    CHECK_EQ_INT(host_local("127.0.0.1:9464"), 1);
    CHECK_EQ_INT(host_local("127.1.2.3"), 1);
    CHECK_EQ_INT(host_local("localhost:80"), 1);
    CHECK_EQ_INT(host_local("LOCALHOST"), 1);
    CHECK_EQ_INT(host_local("app.localhost"), 1);
    CHECK_EQ_INT(host_local("[::1]:9464"), 1);
    CHECK_EQ_INT(host_local("[::1]"), 1);
    CHECK_EQ_INT(host_local("evil.example"), 0);
    CHECK_EQ_INT(host_local("127.0.0.1.evil.example"), 0);
    CHECK_EQ_INT(host_local("localhost.evil.example"), 0);
    CHECK_EQ_INT(host_local("127.0.0.256"), 0);
    CHECK_EQ_INT(host_local("127.0.0"), 0);
    CHECK_EQ_INT(host_local("10.0.0.1"), 0);
    CHECK_EQ_INT(host_local("[::2]"), 0);
    CHECK_EQ_INT(host_local("127.0.0.1:x"), 0);
    CHECK_EQ_INT(host_local(""), 0);
}

TEST(query_strings)
{
    const char *q = "prefix=task_&&id=%41b+c&flag&=x";
    size_t pos = 0, nl, vl;
    const char *n, *v;
    char dec[16];
    REQUIRE(pm__query_next(q, strlen(q), &pos, &n, &nl, &v, &vl));
    CHECK(slice_is(n, nl, "prefix") && slice_is(v, vl, "task_"));
    REQUIRE(pm__query_next(q, strlen(q), &pos, &n, &nl, &v, &vl));
    CHECK(slice_is(n, nl, "id"));
    CHECK_EQ_INT(pm__query_decode(v, vl, dec, sizeof dec), 4);
    CHECK_STR(dec, "Ab c");
    REQUIRE(pm__query_next(q, strlen(q), &pos, &n, &nl, &v, &vl));
    CHECK(slice_is(n, nl, "flag") && vl == 0);
    REQUIRE(pm__query_next(q, strlen(q), &pos, &n, &nl, &v, &vl));
    CHECK(nl == 0 && slice_is(v, vl, "x"));
    CHECK(!pm__query_next(q, strlen(q), &pos, &n, &nl, &v, &vl));
    CHECK(!pm__query_next(NULL, 0, &pos, &n, &nl, &v, &vl));
    CHECK_EQ_INT(pm__query_decode("%4", 2, dec, sizeof dec), -1);
    CHECK_EQ_INT(pm__query_decode("%zz", 3, dec, sizeof dec), -1);
    CHECK_EQ_INT(pm__query_decode("%00", 3, dec, sizeof dec), -1);
    CHECK_EQ_INT(pm__query_decode("abcd", 4, dec, 4), -1); /* no room for the NUL */
    CHECK_EQ_INT(pm__query_decode("abc", 3, dec, 4), 3);
}

TEST(reasons)
{
    /* The phrases as the RFCs register them, typed in from the RFCs and not
     * from lib/http_request.c: this is the independent source the server's
     * answers are checked against (test_server takes its phrases from
     * pm__http_reason, once this table has vouched for it). Every code the
     * server sends is here. */
    static const struct {
        int code;
        const char *phrase;
    } rfc[] = {
        {200, "OK"},                              /* RFC 9110 15.3.1 */
        {400, "Bad Request"},                     /* 15.5.1 */
        {401, "Unauthorized"},                    /* 15.5.2 */
        {403, "Forbidden"},                       /* 15.5.4 */
        {404, "Not Found"},                       /* 15.5.5 */
        {405, "Method Not Allowed"},              /* 15.5.6 */
        {408, "Request Timeout"},                 /* 15.5.9 */
        {413, "Content Too Large"},               /* 15.5.14 */
        {414, "URI Too Long"},                    /* 15.5.15 */
        {421, "Misdirected Request"},             /* 15.5.20 */
        {431, "Request Header Fields Too Large"}, /* RFC 6585 5 */
        {500, "Internal Server Error"},           /* RFC 9110 15.6.1 */
        {501, "Not Implemented"},                 /* 15.6.2 */
        {503, "Service Unavailable"},             /* 15.6.4 */
        {505, "HTTP Version Not Supported"},      /* 15.6.6 */
    };
    for (size_t i = 0; i < sizeof rfc / sizeof rfc[0]; i++)
        CHECK_STR(pm__http_reason(rfc[i].code), rfc[i].phrase);
    CHECK_STR(pm__http_reason(299), "Unknown");
}

TEST_MAIN(TH_CASE(accepts_simple_get), TH_CASE(request_line_forms), TH_CASE(refusals),
          TH_CASE(limits), TH_CASE(incomplete_input), TH_CASE(connection_tokens),
          TH_CASE(accept_negotiation), TH_CASE(accept_encoding), TH_CASE(bearer_token),
          TH_CASE(host_check), TH_CASE(query_strings), TH_CASE(reasons))
