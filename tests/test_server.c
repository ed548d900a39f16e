/* The embedded HTTP server (include/perfmetrics/server.h, doc/server.md),
 * tested from outside: the small HTTP/1.1 client of tests/http_client.h sends
 * raw bytes to 127.0.0.1 over plain POSIX sockets and reads whole responses
 * with a deadline.
 *
 * Every response read goes through the same checks (resp_autocheck): the
 * status line is HTTP/1.1, Content-Length frames the body, Cache-Control:
 * no-store and X-Content-Type-Options: nosniff are there, and a JSON body
 * (decoded from gzip first) passes the recursive-descent validator below.
 * Where doc/server.md and the header are silent, RFC 9110/9112 decide.
 *
 * Cases that need the server's timeouts set them short (tenths of a second)
 * and wait for the outcome by polling with a deadline. Alert engines are
 * ticked with a fake clock. Every case runs in its own process (harness.h),
 * so a server that hangs or crashes fails that case only. */
#include "harness.h"

#include "http_client.h"
#include "internal/http_internal.h"

/* ================================================================ JSON */

/* A recogniser for RFC 8259 JSON text, UTF-8 checked: each j_ function
 * takes the position of a construct and returns the position after it, or
 * NULL when the text is not valid there. */
#define J_MAX_DEPTH 64

static const char *j_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Length of the UTF-8 sequence at p (lead byte >= 0x80), 0 if malformed,
 * overlong, a surrogate or past U+10FFFF. */
static size_t j_utf8(const unsigned char *p, const unsigned char *e)
{
    unsigned c = p[0], cp, min;
    size_t n;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2, cp = c & 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3, cp = c & 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4, cp = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if ((size_t)(e - p) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

static const char *j_string(const char *p, const char *e)
{
    if (p >= e || *p != '"') return NULL;
    for (p++; p < e;) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            if (++p >= e) return NULL;
            if (*p == 'u') {
                if (e - p < 5) return NULL;
                for (int i = 1; i <= 4; i++)
                    if (!isxdigit((unsigned char)p[i])) return NULL;
                p += 5;
            } else if (*p && strchr("\"\\/bfnrt", *p)) {
                p++;
            } else {
                return NULL;
            }
        } else if (c < 0x80) {
            p++;
        } else {
            size_t n = j_utf8((const unsigned char *)p, (const unsigned char *)e);
            if (!n) return NULL;
            p += n;
        }
    }
    return NULL;
}

static const char *j_digits(const char *p, const char *e)
{
    const char *s = p;
    while (p < e && isdigit((unsigned char)*p)) p++;
    return p > s ? p : NULL;
}

static const char *j_number(const char *p, const char *e)
{
    if (p < e && *p == '-') p++;
    if (p < e && *p == '0')
        p++;
    else if (!(p = j_digits(p, e)))
        return NULL;
    if (p < e && *p == '.' && !(p = j_digits(p + 1, e))) return NULL;
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (!(p = j_digits(p, e))) return NULL;
    }
    return p;
}

static const char *j_value(const char *p, const char *e, int depth);

/* An object or an array: the two differ only by the "key:" before each member. */
static const char *j_container(const char *p, const char *e, int depth)
{
    int obj = *p == '{';
    char close = obj ? '}' : ']';
    if (depth > J_MAX_DEPTH) return NULL;
    p = j_ws(p + 1, e);
    if (p < e && *p == close) return p + 1;
    for (;;) {
        if (obj) {
            if (!(p = j_string(p, e))) return NULL;
            p = j_ws(p, e);
            if (p >= e || *p != ':') return NULL;
            p = j_ws(p + 1, e);
        }
        if (!(p = j_value(p, e, depth + 1))) return NULL;
        p = j_ws(p, e);
        if (p < e && *p == ',') {
            p = j_ws(p + 1, e);
            continue;
        }
        return p < e && *p == close ? p + 1 : NULL;
    }
}

static const char *j_lit(const char *p, const char *e, const char *word)
{
    size_t n = strlen(word);
    return (size_t)(e - p) >= n && memcmp(p, word, n) == 0 ? p + n : NULL;
}

static const char *j_value(const char *p, const char *e, int depth)
{
    if (p >= e) return NULL;
    switch (*p) {
    case '{':
    case '[':
        return j_container(p, e, depth);
    case '"':
        return j_string(p, e);
    case 't':
        return j_lit(p, e, "true");
    case 'f':
        return j_lit(p, e, "false");
    case 'n':
        return j_lit(p, e, "null");
    default:
        return j_number(p, e);
    }
}

static int json_valid(const char *s, size_t n)
{
    const char *e = s + n, *p = j_value(j_ws(s, e), e, 0);
    return p && j_ws(p, e) == e;
}

/* Steps from the member or element at p to the next one inside a container
 * (past the value and a following comma); NULL on invalid text. */
static const char *j_next(const char *p, const char *e)
{
    if (!(p = j_value(p, e, 0))) return NULL;
    p = j_ws(p, e);
    return p < e && *p == ',' ? j_ws(p + 1, e) : p;
}

/* The value at `path` in a valid document: dot-separated object keys, a
 * decimal segment indexing an array ("active.0.labels.alertname"); "" is the
 * whole document. Returns 1 with *v, *vn set, or 0 when it is not there. */
static int json_at(const char *doc, const char *path, const char **v, size_t *vn)
{
    const char *e = doc + strlen(doc), *p = j_ws(doc, e);
    while (*path) {
        const char *dot = strchr(path, '.');
        size_t sl = dot ? (size_t)(dot - path) : strlen(path);
        if (p < e && *p == '{') {
            int found = 0;
            for (p = j_ws(p + 1, e); !found && p && p < e && *p == '"';) {
                const char *ke = j_string(p, e);
                if (!ke) return 0;
                found = (size_t)(ke - p - 2) == sl && memcmp(p + 1, path, sl) == 0;
                p = j_ws(ke, e);
                if (p >= e || *p != ':') return 0;
                p = j_ws(p + 1, e);
                if (!found) p = j_next(p, e);
            }
            if (!found) return 0;
        } else if (p < e && *p == '[') {
            char *end;
            unsigned long idx = strtoul(path, &end, 10);
            if (sl == 0 || end != path + sl) return 0;
            p = j_ws(p + 1, e);
            for (unsigned long i = 0; p && i < idx; i++)
                p = p < e && *p != ']' ? j_next(p, e) : NULL;
            if (!p || p >= e || *p == ']') return 0;
        } else {
            return 0;
        }
        path += sl + (dot ? 1 : 0);
    }
    const char *q = j_value(p, e, 0);
    if (!q) return 0;
    *v = p;
    *vn = (size_t)(q - p);
    return 1;
}

/* A number at path; NaN when absent or not a number. */
static double jnum(const char *doc, const char *path)
{
    const char *v;
    size_t n;
    if (!json_at(doc, path, &v, &n) || !(*v == '-' || isdigit((unsigned char)*v))) return NAN;
    return strtod(v, NULL);
}

/* Whether the value at path is exactly the literal `lit` (null, true, false). */
static int jis(const char *doc, const char *path, const char *lit)
{
    const char *v;
    size_t n;
    return json_at(doc, path, &v, &n) && n == strlen(lit) && memcmp(v, lit, n) == 0;
}

/* Members of the object or elements of the array at path; -1 otherwise. */
static long jcount(const char *doc, const char *path)
{
    const char *v, *e, *p;
    size_t n;
    if (!json_at(doc, path, &v, &n) || (*v != '{' && *v != '[')) return -1;
    e = v + n - 1; /* the closing bracket */
    long count = 0;
    for (p = j_ws(v + 1, e); p && p < e; count++) {
        if (*v == '{') { /* the key and its ':' */
            if (!(p = j_string(p, e))) return -1;
            p = j_ws(p, e);
            if (p >= e || *p != ':') return -1;
            p = j_ws(p + 1, e);
        }
        p = j_next(p, e);
    }
    return p ? count : -1;
}

/* The string at path, unescaped into buf (UTF-8); NULL when absent or not a
 * string. Only what the server writes is decoded (\uXXXX pairs included). */
static const char *jstr(const char *doc, const char *path, char *buf, size_t cap)
{
    const char *v;
    size_t n, o = 0;
    if (!json_at(doc, path, &v, &n) || *v != '"' || cap < 5) return NULL;
    for (const char *p = v + 1; p < v + n - 1 && o + 5 < cap; p++) {
        if (*p != '\\') {
            buf[o++] = *p;
            continue;
        }
        p++;
        if (*p != 'u') {
            const char *esc = *p ? strchr("\"\"\\\\//b\bf\fn\nr\rt\t", *p) : NULL;
            if (!esc) return NULL;
            buf[o++] = esc[1];
            continue;
        }
        unsigned cp = (unsigned)strtoul((char[5]){p[1], p[2], p[3], p[4], 0}, NULL, 16);
        p += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && p[1] == '\\' && p[2] == 'u') {
            unsigned lo = (unsigned)strtoul((char[5]){p[3], p[4], p[5], p[6], 0}, NULL, 16);
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            p += 6;
        }
        if (cp < 0x80) {
            buf[o++] = (char)cp;
        } else if (cp < 0x800) {
            buf[o++] = (char)(0xc0 | cp >> 6);
            buf[o++] = (char)(0x80 | (cp & 0x3f));
        } else if (cp < 0x10000) {
            buf[o++] = (char)(0xe0 | cp >> 12);
            buf[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[o++] = (char)(0x80 | (cp & 0x3f));
        } else {
            buf[o++] = (char)(0xf0 | cp >> 18);
            buf[o++] = (char)(0x80 | ((cp >> 12) & 0x3f));
            buf[o++] = (char)(0x80 | ((cp >> 6) & 0x3f));
            buf[o++] = (char)(0x80 | (cp & 0x3f));
        }
    }
    buf[o] = '\0';
    return buf;
}

/* Index of the element of array `path` whose member `key` is the string
 * `want`; -1 if none. */
static long jfind(const char *doc, const char *path, const char *key, const char *want)
{
    long n = jcount(doc, path);
    char p[256], s[512];
    for (long i = 0; i < n; i++) {
        snprintf(p, sizeof p, "%s%s%ld.%s", path, *path ? "." : "", i, key);
        const char *got = jstr(doc, p, s, sizeof s);
        if (got && strcmp(got, want) == 0) return i;
    }
    return -1;
}

/* ================================================================ HTTP checks */

/* What every response must carry (doc/server.md, RFC 9110/9112). Each kind
 * of miss fails the case every time but is printed only for its first two
 * responses, so one systematic omission does not bury everything else. */
enum {
    AC_VERSION,
    AC_CACHE,
    AC_NOSNIFF,
    AC_CL,
    AC_CL2,
    AC_CTYPE,
    AC_JSON,
    AC_KINDS
};
static unsigned ac_seen[AC_KINDS];
#define AC_FAIL(kind, ...)                                                                         \
    do {                                                                                           \
        if (ac_seen[kind]++ < 2)                                                                   \
            TH_FAIL_(__VA_ARGS__);                                                                 \
        else                                                                                       \
            th_failures++;                                                                         \
    } while (0)

static void resp_autocheck(const conn_t *c, const resp_t *r, int head_req)
{
    if (strcmp(r->version, "HTTP/1.1") != 0)
        AC_FAIL(AC_VERSION, "[%s] answered as %s, want HTTP/1.1", c->what, r->version);
    if (!hdr_is(r, "Cache-Control", "no-store"))
        AC_FAIL(AC_CACHE, "[%s] %d: Cache-Control \"%s\", want no-store", c->what, r->status,
                hdr(r, "Cache-Control") ? hdr(r, "Cache-Control") : "(none)");
    if (!hdr_is(r, "X-Content-Type-Options", "nosniff"))
        AC_FAIL(AC_NOSNIFF, "[%s] %d: no X-Content-Type-Options: nosniff", c->what, r->status);
    if (!r->has_cl) AC_FAIL(AC_CL, "[%s] %d: no Content-Length", c->what, r->status);
    if (hdr_count(r, "Content-Length") > 1)
        AC_FAIL(AC_CL2, "[%s] %d: several Content-Length fields", c->what, r->status);
    if (r->has_cl && r->cl > 0 && !hdr(r, "Content-Type"))
        AC_FAIL(AC_CTYPE, "[%s] %d: a body without Content-Type", c->what, r->status);
    const char *ct = hdr(r, "Content-Type");
    if (!head_req && ct && strncasecmp(ct, "application/json", 16) == 0 &&
        !json_valid(r->text, r->tlen))
        AC_FAIL(AC_JSON, "[%s] %d: invalid JSON (%zu bytes): %.300s", c->what, r->status, r->tlen,
                r->text);
}

/* Reads one response with http_client.h's http_read (head_req: to a HEAD
 * request) and runs resp_autocheck on it; a response that cannot be read as
 * HTTP fails the case, saying why. Returns RD_*; r must be resp_free'd
 * whatever the result. */
static int conn_read(conn_t *c, int head_req, double timeout, resp_t *r)
{
    int st = http_read(c, head_req ? READ_HEAD : 0, timeout, r);
    if (st == RD_BAD)
        TH_FAIL_("[%s] %s", c->what, c->err);
    else if (st == RD_OK)
        resp_autocheck(c, r, head_req);
    return st;
}

/* Client-side byte totals of every fetch_, for the byte statistics. */
static size_t g_sent, g_got;

/* One request on a new connection: `method path` with the extra field lines
 * `extra` (each ending in CRLF) and Connection: close; checks that the
 * server then closes with nothing after the response. Returns RD_*. */
static int fetch_(int port, const char *method, const char *path, const char *extra, resp_t *r)
{
    char req[16384];
    conn_t c;
    memset(r, 0, sizeof *r);
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sConnection: close\r\n\r\n",
             method, path, port, extra ? extra : "");
    if (conn_open(&c, port) != 0) {
        TH_FAIL_("connect to port %d: %s", port, strerror(errno));
        return RD_EOF;
    }
    conn_sends(&c, req);
    int st = conn_read(&c, strcmp(method, "HEAD") == 0, 10, r);
    if (st == RD_OK) {
        if (!conn_wait_eof(&c, 5))
            TH_FAIL_("[%s] still open 5 s after a Connection: close response", c.what);
        else if (c.len)
            TH_FAIL_("[%s] %zu bytes after the response: %.80s", c.what, c.len, c.buf);
    }
    g_sent += c.sent;
    g_got += c.got;
    conn_close(&c);
    return st;
}

/* The response to `method path`, failing the case (at the caller's line)
 * unless one arrived. */
#define FETCH(r, port, method, path, extra)                                                        \
    CHECK_EQ_INT(fetch_((port), (method), (path), (extra), (r)), RD_OK)
#define GET(r, port, path) FETCH(r, port, "GET", path, NULL)

/* Raw bytes on a new connection, one response read. *closed (may be NULL)
 * tells whether the server closed the connection within 5 s afterwards. */
static int exchange(int port, const char *raw, size_t len, int head_req, resp_t *r, int *closed)
{
    conn_t c;
    memset(r, 0, sizeof *r);
    if (conn_open(&c, port) != 0) {
        TH_FAIL_("connect to port %d: %s", port, strerror(errno));
        return RD_EOF;
    }
    conn_send(&c, raw, len);
    int st = conn_read(&c, head_req, 10, r);
    if (closed) *closed = st == RD_OK && conn_wait_eof(&c, 5);
    conn_close(&c);
    return st;
}

/* An error response: the status, the reason phrase, and (unless HEAD) the
 * JSON body {"error":"<reason phrase>","status":<code>}. The phrase wanted is
 * the library's own table (pm__http_reason): test_http_parse checks that
 * table against RFC 9110 for every code the server sends, so here it checks
 * that every path to an error answer uses it. */
static void expect_error_(const resp_t *r, int code, int head_req, const char *what, int line)
{
    char s[128];
    const char *reason = pm__http_reason(code);
    if (strcmp(reason, "Unknown") == 0)
        TH_FAIL_("line %d: %s: want %d, a code the server has no reason phrase for", line, what,
                 code);
    if (r->status != code) {
        TH_FAIL_("line %d: %s: status %d, want %d (body %.120s)", line, what, r->status, code,
                 r->body ? r->body : "");
        return;
    }
    if (strcmp(r->reason, reason) != 0)
        TH_FAIL_("line %d: %s: reason \"%s\", want \"%s\"", line, what, r->reason, reason);
    const char *ct = hdr(r, "Content-Type");
    if (!ct || strncasecmp(ct, "application/json", 16) != 0)
        TH_FAIL_("line %d: %s: Content-Type %s", line, what, ct ? ct : "(none)");
    if (head_req) {
        if (r->blen) TH_FAIL_("line %d: %s: HEAD answered with a body", line, what);
        return;
    }
    if (jnum(r->text ? r->text : "", "status") != code || jcount(r->text, "") != 2 ||
        !jstr(r->text, "error", s, sizeof s) || strcmp(s, r->reason) != 0)
        TH_FAIL_("line %d: %s: error body %.200s", line, what, r->text ? r->text : "");
}
#define EXPECT_ERROR(r, code, what) expect_error_((r), (code), 0, (what), __LINE__)

static void expect_status_(const resp_t *r, int code, const char *what, int line)
{
    if (r->status != code)
        TH_FAIL_("line %d: %s: status %d %s, want %d (body %.160s)", line, what, r->status,
                 r->reason, code, r->text ? r->text : "");
}
#define EXPECT_STATUS(r, code, what) expect_status_((r), (code), (what), __LINE__)

/* Raw request bytes on a new connection: expect a response with `code`
 * (expect_status_ below 400, expect_error_ with its JSON body from 400 on);
 * `must_close`: the server closes the connection afterwards. `what` names
 * the request in messages (NULL: its bytes, escaped). */
static void expect_answer_(int port, const char *raw, size_t len, int code, int must_close,
                           const char *what, int line)
{
    resp_t r;
    int closed = 0;
    char esc[96];
    if (!what) {
        size_t o = 0;
        for (size_t i = 0; i < len && o + 5 < sizeof esc; i++) {
            unsigned char ch = (unsigned char)raw[i];
            if (isprint(ch))
                esc[o++] = (char)ch;
            else
                o += (size_t)snprintf(esc + o, sizeof esc - o, "\\x%02x", ch);
        }
        esc[o] = '\0';
        what = esc;
    }
    int st = exchange(port, raw, len, 0, &r, must_close ? &closed : NULL);
    if (st != RD_OK)
        TH_FAIL_("line %d: [%s]: no response (%d)", line, what, st);
    else if (code < 400)
        expect_status_(&r, code, what, line);
    else
        expect_error_(&r, code, 0, what, line);
    if (st == RD_OK && must_close && !closed)
        TH_FAIL_("line %d: [%s]: connection left open after %d", line, what, r.status);
    resp_free(&r);
}
/* A request given as a string literal, answered with the error `code`;
 * `close`: the server must then close the connection. */
#define EXPECT_BAD(port, lit, code, close)                                                         \
    expect_answer_((port), (lit), sizeof(lit) - 1, (code), (close), NULL, __LINE__)
/* A request of len bytes at req, answered with `code`. */
#define EXPECT_ANSWER(port, req, len, code, what)                                                  \
    expect_answer_((port), (req), (size_t)(len), (code), 0, (what), __LINE__)

/* ================================================================ fixtures */

#define ITEMS 40

/* A registry (with or without the library's self-metrics, which include the
 * server's perfmetrics_http_* families) holding fixed application families: app_jobs 42,
 * app_queue_depth 7, app_latency_seconds with one 0.25 s observation, and ITEMS series of
 * other_items{item} so that /metrics is well above the 1 KiB gzip threshold. */
static pm_registry_t *app_registry_self(int self_metrics)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    pm_registry_opts_set_self_metrics(o, self_metrics);
    pm_registry_new(o, &r);
    pm_registry_opts_free(o);
    if (!r) return NULL;
    pm_counter_t *c;
    pm_gauge_t *g;
    pm_histogram_t *h;
    pm_family_t *items;
    pm_family_opts_t *fo = NULL;
    static const char *const lab[] = {"item"};
    if (pm_counter_new(r, "app_jobs", "Jobs done.", &c) != PM_OK ||
        pm_gauge_new(r, "app_queue_depth", "Jobs waiting.", &g) != PM_OK ||
        pm_histogram_new(r, "app_latency_seconds", "Job latency.", &h) != PM_OK ||
        pm_family_opts_new(&fo) != PM_OK || pm_family_opts_set_labels(fo, lab, 1) != PM_OK ||
        pm_family_new(r, PM_TYPE_COUNTER, "other_items", "Items seen.", fo, &items) != PM_OK) {
        pm_family_opts_free(fo);
        pm_registry_free(r);
        return NULL;
    }
    pm_family_opts_free(fo);
    pm_counter_add_u64(c, 42);
    pm_gauge_set(g, 7);
    pm_histogram_observe(h, 0.25);
    for (int i = 0; i < ITEMS; i++) {
        char v[32];
        snprintf(v, sizeof v, "item-%03d", i);
        const char *vals[] = {v};
        pm_counter_add_labeled(items, vals, 1, i);
    }
    return r;
}

static pm_registry_t *app_registry(void) { return app_registry_self(0); }

typedef struct fx {
    pm_registry_t *reg;
    pm_server_t *srv;
    int port;
} fx_t;

/* Starts a server with options o (freed here; NULL: local defaults) over
 * reg (NULL: a new app_registry, owned by the fixture). 1 on success. */
static int fx_start_on(fx_t *f, pm_registry_t *reg, pm_server_opts_t *o)
{
    memset(f, 0, sizeof *f);
    if (!o) o = local_opts();
    f->reg = reg ? reg : app_registry();
    pm_status_t st = f->reg && o ? pm_server_new(f->reg, o, &f->srv) : PM_ENOMEM;
    pm_server_opts_free(o);
    if (st != PM_OK) {
        fprintf(stderr, "  pm_server_new: %s\n", pm_status_name(st));
        return 0;
    }
    f->port = pm_server_port(f->srv);
    return f->port > 0;
}

static int fx_start(fx_t *f, pm_server_opts_t *o) { return fx_start_on(f, NULL, o); }

/* Frees the server, and the registry when the fixture made it. */
static void fx_stop(fx_t *f, int own_registry)
{
    pm_server_free(f->srv);
    if (own_registry) pm_registry_free(f->reg);
    memset(f, 0, sizeof *f);
}

/* Whether this machine can bind ::1. */
static int have_ipv6(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_addr = in6addr_loopback;
    int ok = bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return ok;
}

/* A copy of text without the lines that contain `needle`. */
static char *drop_lines(const char *text, const char *needle)
{
    size_t n = strlen(text), o = 0;
    char *out = malloc(n + 1);
    if (!out) return NULL;
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t ln = nl ? (size_t)(nl - p) + 1 : strlen(p);
        char *line = strndup(p, ln);
        if (line && !strstr(line, needle)) {
            memcpy(out + o, p, ln);
            o += ln;
        }
        free(line);
        p += ln;
    }
    out[o] = '\0';
    return out;
}

/* What Prometheus 2.x sends when scraping. */
#define PROMETHEUS_ACCEPT                                                                          \
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"       \
    "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"

/* ================================================================ the validator itself */

TEST(test_json_validator)
{
    /* The validator decides every JSON check below, so it is tested first. */
    static const char *const good[] = {
        "{}",
        "[]",
        " 0 ",
        "-0.5e+3",
        "1E9",
        "\"\"",
        "null",
        "true",
        "{\"a\":[1,-2.5e3,true,false,null,\"x\\u00e9\\n\\\"\\\\\\/\"],\"b\":{}}",
        "\"\xc3\xa9\xe2\x9c\x93\xf0\x9f\x98\x80\"",
        "[[[[[]]]]]",
        "\r\n\t{ \"k\" : [ 1 , 2 ] }\n",
    };
    static const char *const bad[] = {
        "",
        " ",
        "{",
        "}",
        "{\"a\":1,}",
        "[1,]",
        "[,1]",
        "01",
        "1.",
        ".5",
        "+1",
        "-",
        "1e",
        "\"\x01\"",
        "\"\\q\"",
        "{'a':1}",
        "nul",
        "True",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\":}",
        "\"\xff\"",
        "\"\xc0\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xe2\x9c\"",
        "1 2",
        "NaN",
        "Infinity",
        "\"\\u12g4\"",
        "\"abc",
        "{\"a\":1}}",
        "[\"a\"\"b\"]",
        "{1:2}",
        "\"tab\there\"",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        if (!json_valid(good[i], strlen(good[i]))) TH_FAIL_("rejected valid %s", good[i]);
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (json_valid(bad[i], strlen(bad[i]))) TH_FAIL_("accepted invalid \"%s\"", bad[i]);
    /* Nesting beyond the depth bound is refused rather than overflowing the stack. */
    char deep[2 * 200 + 1];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    deep[400] = '\0';
    CHECK(!json_valid(deep, 400));
    CHECK(json_valid(deep + 200 - 10, 20));

    const char *doc =
        "{\"s\":\"a\\\"b\\u00e9\\ud83d\\ude00\",\"n\":-1.5,\"z\":null,"
        "\"arr\":[{\"k\":\"x\"},{\"k\":\"y\",\"v\":[1,2,3]}],\"o\":{\"p\":{\"q\":true}}}";
    REQUIRE(json_valid(doc, strlen(doc)));
    char b[64];
    CHECK_STR(jstr(doc, "s", b, sizeof b), "a\"b\xc3\xa9\xf0\x9f\x98\x80");
    CHECK_EQ_DBL(jnum(doc, "n"), -1.5);
    CHECK(isnan(jnum(doc, "s")) && isnan(jnum(doc, "missing")));
    CHECK(jis(doc, "z", "null") && jis(doc, "o.p.q", "true") && !jis(doc, "n", "null"));
    CHECK_EQ_INT(jcount(doc, ""), 5);
    CHECK_EQ_INT(jcount(doc, "arr"), 2);
    CHECK_EQ_INT(jcount(doc, "arr.1.v"), 3);
    CHECK_EQ_INT(jcount(doc, "arr.0"), 1);
    CHECK_EQ_INT(jcount(doc, "n"), -1);
    CHECK_EQ_DBL(jnum(doc, "arr.1.v.2"), 3);
    CHECK(isnan(jnum(doc, "arr.1.v.3")));
    CHECK_STR(jstr(doc, "arr.1.k", b, sizeof b), "y");
    CHECK_EQ_INT(jfind(doc, "arr", "k", "y"), 1);
    CHECK_EQ_INT(jfind(doc, "arr", "k", "w"), -1);
    CHECK_EQ_INT(jcount("[]", ""), 0);
    CHECK_EQ_INT(jcount("{ }", ""), 0);
}

/* ================================================================ options and life cycle */

TEST(test_opts_bad_inputs)
{
    CHECK_STATUS(pm_server_opts_new(NULL), PM_EINVAL);
    pm_server_opts_free(NULL);
    pm_server_opts_t *o = NULL;
    REQUIRE(pm_server_opts_new(&o) == PM_OK && o);

    /* address */
    CHECK_STATUS(pm_server_opts_set_address(NULL, "127.0.0.1", 0), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_set_address(o, NULL, 0), PM_EINVAL);
    static const char *const bad_hosts[] = {
        "",           "example.com",       "256.1.1.1",  "127.0.0", "127.0.0.1 ",
        " 127.0.0.1", "1.2.3.4.5",         "[::1]",      "::g",     "127.0.0.1:80",
        "localhost.", "LOCALHOST.example", "0x7f.0.0.1",
    };
    for (size_t i = 0; i < sizeof bad_hosts / sizeof *bad_hosts; i++)
        if (pm_server_opts_set_address(o, bad_hosts[i], 0) != PM_EPARSE)
            TH_FAIL_("address \"%s\": %s, want PM_EPARSE", bad_hosts[i],
                     pm_status_name(pm_server_opts_set_address(o, bad_hosts[i], 0)));
    CHECK_STATUS(pm_server_opts_set_address(o, "127.0.0.1", -1), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_address(o, "127.0.0.1", 65536), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_address(o, "127.0.0.1", INT32_MIN), PM_ERANGE);
    static const char *const good_hosts[] = {
        "127.0.0.1", "::1",      "0.0.0.0", "::",
        "localhost", "10.1.2.3", "fe80::1", "::ffff:127.0.0.1"};
    for (size_t i = 0; i < sizeof good_hosts / sizeof *good_hosts; i++)
        if (pm_server_opts_set_address(o, good_hosts[i], 65535) != PM_OK)
            TH_FAIL_("address \"%s\" refused", good_hosts[i]);

    /* token: RFC 6750 token68, 1..1024 bytes */
    CHECK_STATUS(pm_server_opts_set_token(NULL, "abc"), PM_EINVAL);
    static const char *const bad_tokens[] = {
        "a b", "a=b", "==", "tok\n", "tok,en", "t\"k", "\xc3\xa9t\xc3\xa9", "tab\t", "a:b", "=abc"};
    for (size_t i = 0; i < sizeof bad_tokens / sizeof *bad_tokens; i++)
        if (pm_server_opts_set_token(o, bad_tokens[i]) != PM_EPARSE)
            TH_FAIL_("token \"%s\": want PM_EPARSE", bad_tokens[i]);
    char tok[1026];
    memset(tok, 'a', sizeof tok - 1);
    tok[1025] = '\0';
    CHECK_STATUS(pm_server_opts_set_token(o, tok), PM_ERANGE); /* 1025 bytes */
    tok[1024] = '\0';
    CHECK_OK(pm_server_opts_set_token(o, tok)); /* 1024 */
    CHECK_OK(pm_server_opts_set_token(o, "AZaz09-._~+/=="));
    CHECK_OK(pm_server_opts_set_token(o, "x"));
    CHECK_OK(pm_server_opts_set_token(o, NULL));
    CHECK_OK(pm_server_opts_set_token(o, ""));

    /* limits */
    CHECK_STATUS(pm_server_opts_set_limits(NULL, 8192, 16384, 100, 64), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_set_limits(o, 255, 16384, 100, 64), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_limits(o, 1048577, 16384, 100, 64), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_limits(o, 8192, 511, 100, 64), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_limits(o, 8192, 1048577, 100, 64), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_limits(o, 8192, 16384, 0, 64), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_limits(o, 8192, 16384, 10001, 64), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_limits(o, 8192, 16384, 100, 0), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_limits(o, 8192, 16384, 100, 65537), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_limits(o, SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX), PM_ERANGE);
    CHECK_OK(pm_server_opts_set_limits(o, 256, 512, 1, 1));
    CHECK_OK(pm_server_opts_set_limits(o, 1048576, 1048576, 10000, 65536));

    /* timeouts: 0.01..3600 s each */
    CHECK_STATUS(pm_server_opts_set_timeouts(NULL, 1, 1, 1), PM_EINVAL);
    const double bad_t[] = {0.0099, 0, -1, 3600.001, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad_t / sizeof *bad_t; i++) {
        if (pm_server_opts_set_timeouts(o, bad_t[i], 1, 1) != PM_ERANGE ||
            pm_server_opts_set_timeouts(o, 1, bad_t[i], 1) != PM_ERANGE ||
            pm_server_opts_set_timeouts(o, 1, 1, bad_t[i]) != PM_ERANGE)
            TH_FAIL_("timeout %g accepted in some position", bad_t[i]);
    }
    CHECK_OK(pm_server_opts_set_timeouts(o, 0.01, 3600, 0.01));

    /* threads */
    CHECK_STATUS(pm_server_opts_set_threads(NULL, 2), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_set_threads(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_threads(o, 65), PM_ERANGE);
    CHECK_OK(pm_server_opts_set_threads(o, 64));
    CHECK_OK(pm_server_opts_set_threads(o, 1));

    /* tracer, recent spans, engine, threshold */
    CHECK_STATUS(pm_server_opts_set_tracer(NULL, NULL), PM_EINVAL);
    CHECK_OK(pm_server_opts_set_tracer(o, NULL));
    CHECK_STATUS(pm_server_opts_set_recent_spans(NULL, 10), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_set_recent_spans(o, 1048577), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_recent_spans(o, SIZE_MAX), PM_ERANGE);
    CHECK_OK(pm_server_opts_set_recent_spans(o, 0));
    CHECK_OK(pm_server_opts_set_recent_spans(o, 1048576));
    CHECK_STATUS(pm_server_opts_set_alert_engine(NULL, NULL), PM_EINVAL);
    CHECK_OK(pm_server_opts_set_alert_engine(o, NULL));
    CHECK_STATUS(pm_server_opts_set_health_threshold(NULL, 50), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_set_health_threshold(o, -0.001), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_health_threshold(o, 100.001), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_health_threshold(o, NAN), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_health_threshold(o, INFINITY), PM_ERANGE);
    CHECK_OK(pm_server_opts_set_health_threshold(o, 0));
    CHECK_OK(pm_server_opts_set_health_threshold(o, 100));

    /* flags */
    CHECK_STATUS(pm_server_opts_set_gzip(NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_set_dashboard(NULL, 1), PM_EINVAL);
    CHECK_OK(pm_server_opts_set_gzip(o, 0));
    CHECK_OK(pm_server_opts_set_dashboard(o, 1));

    /* title: UTF-8, <= 256 bytes */
    CHECK_STATUS(pm_server_opts_set_title(NULL, "t"), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_set_title(o, NULL), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_set_title(o, "bad \xff title"), PM_EUTF8);
    CHECK_STATUS(pm_server_opts_set_title(o, "\xc3"), PM_EUTF8);
    CHECK_STATUS(pm_server_opts_set_title(o, "\xed\xa0\x80"), PM_EUTF8); /* a surrogate */
    char title[258];
    memset(title, 't', sizeof title - 1);
    title[257] = '\0';
    CHECK_STATUS(pm_server_opts_set_title(o, title), PM_ERANGE);
    title[256] = '\0';
    CHECK_OK(pm_server_opts_set_title(o, title));
    CHECK_OK(pm_server_opts_set_title(o, "Caf\xc3\xa9 \"ops\""));

    /* charts: metric names, at most 64 */
    CHECK_STATUS(pm_server_opts_add_chart(NULL, "x"), PM_EINVAL);
    CHECK_STATUS(pm_server_opts_add_chart(o, NULL), PM_EINVAL);
    static const char *const bad_names[] = {"", "1abc", "a-b", "a b", "a{b}", "\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
        if (pm_server_opts_add_chart(o, bad_names[i]) != PM_EBADNAME)
            TH_FAIL_("chart \"%s\": want PM_EBADNAME", bad_names[i]);
    for (int i = 0; i < 64; i++) {
        char n[32];
        snprintf(n, sizeof n, "chart_%d", i);
        if (pm_server_opts_add_chart(o, n) != PM_OK) TH_FAIL_("chart %d refused", i);
    }
    CHECK_STATUS(pm_server_opts_add_chart(o, "chart_64"), PM_ERANGE);
    pm_server_opts_free(o);
}

TEST(test_opts_usable_after_errors)
{
    /* Failed setters leave the options as they were: the server listens on
     * the address and port set before the bad calls, with the old token. */
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_token(o, "good-token"));
    CHECK_STATUS(pm_server_opts_set_address(o, "example.com", 80), PM_EPARSE);
    CHECK_STATUS(pm_server_opts_set_address(o, "127.0.0.1", 70000), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_token(o, "bad token"), PM_EPARSE);
    CHECK_STATUS(pm_server_opts_set_limits(o, 10, 16384, 100, 64), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_timeouts(o, 1, NAN, 1), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_threads(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_server_opts_set_title(o, "\xff"), PM_EUTF8);
    CHECK_STATUS(pm_server_opts_add_chart(o, "1bad"), PM_EBADNAME);
    CHECK_OK(pm_server_opts_add_chart(o, "app_jobs"));
    fx_t f;
    REQUIRE(fx_start(&f, o));
    char url[64], want[64];
    CHECK_OK(pm_server_url(f.srv, url, sizeof url));
    snprintf(want, sizeof want, "http://127.0.0.1:%d/", f.port);
    CHECK_STR(url, want);
    resp_t r;
    GET(&r, f.port, "/health");
    EXPECT_ERROR(&r, 401, "old token still required");
    resp_free(&r);
    FETCH(&r, f.port, "GET", "/api/v1/info", "Authorization: Bearer good-token\r\n");
    EXPECT_STATUS(&r, 200, "old token");
    char b[64];
    CHECK_STR(jstr(r.text, "title", b, sizeof b), "libperfmetrics"); /* the bad title left it */
    CHECK_EQ_INT(jcount(r.text, "charts"), 1);
    CHECK_STR(jstr(r.text, "charts.0", b, sizeof b), "app_jobs");
    resp_free(&r);
    fx_stop(&f, 1);
}

TEST(test_new_free_null)
{
    pm_registry_t *reg = app_registry();
    REQUIRE(reg);
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    pm_server_t *s = NULL;
    CHECK_STATUS(pm_server_new(NULL, o, &s), PM_EINVAL);
    CHECK(s == NULL);
    CHECK_STATUS(pm_server_new(NULL, NULL, &s), PM_EINVAL);
    CHECK_STATUS(pm_server_new(reg, o, NULL), PM_EINVAL);
    pm_server_free(NULL);
    CHECK_EQ_INT(pm_server_port(NULL), -1);
    char buf[64] = "untouched";
    CHECK_STATUS(pm_server_url(NULL, buf, sizeof buf), PM_EINVAL);
    for (int w = 0; w <= 13; w++) CHECK_EQ_U64(pm_server_stat(NULL, (pm_server_stat_t)w), 0);

    /* The options are only read during the call: freeing them after does
     * not affect the server, and one options object serves two servers. */
    pm_server_t *s1 = NULL, *s2 = NULL;
    CHECK_OK(pm_server_new(reg, o, &s1));
    CHECK_OK(pm_server_new(reg, o, &s2));
    pm_server_opts_free(o);
    REQUIRE(s1 && s2);
    CHECK(pm_server_port(s1) > 0 && pm_server_port(s2) > 0 &&
          pm_server_port(s1) != pm_server_port(s2));
    resp_t r;
    GET(&r, pm_server_port(s2), "/health");
    EXPECT_STATUS(&r, 200, "second server");
    resp_free(&r);
    /* Unknown stats are 0 on a live server too. */
    CHECK_EQ_U64(pm_server_stat(s1, (pm_server_stat_t)0), 0);
    CHECK_EQ_U64(pm_server_stat(s1, (pm_server_stat_t)13), 0);
    CHECK_EQ_U64(pm_server_stat(s1, (pm_server_stat_t)-1), 0);
    pm_server_free(s1);
    pm_server_free(s2);
    pm_registry_free(reg);
}

TEST(test_port_in_use)
{
    /* A port someone else listens on: PM_EIO, nothing left running (no
     * thread, no descriptor), and the tracer's exporter is not left behind
     * (a later server on the same tracer starts). */
    int ls = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(ls >= 0);
    struct sockaddr_in a;
    socklen_t al = sizeof a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(ls, (struct sockaddr *)&a, sizeof a) == 0 && listen(ls, 4) == 0);
    REQUIRE(getsockname(ls, (struct sockaddr *)&a, &al) == 0);
    int busy = ntohs(a.sin_port);

    pm_registry_t *reg = app_registry();
    pm_tracer_t *t = NULL;
    REQUIRE(reg && pm_tracer_new(NULL, &t) == PM_OK);
    pm_server_opts_t *o = NULL;
    REQUIRE(pm_server_opts_new(&o) == PM_OK);
    CHECK_OK(pm_server_opts_set_address(o, "127.0.0.1", busy));
    CHECK_OK(pm_server_opts_set_tracer(o, t));
    CHECK_OK(pm_server_opts_set_threads(o, 4));
    warm_threads();
    size_t fds = open_fds(), threads = thread_count();
    pm_server_t *s = NULL;
    CHECK_STATUS(pm_server_new(reg, o, &s), PM_EIO);
    CHECK(s == NULL);
    CHECK_EQ_U64(open_fds(), fds);
    CHECK_EQ_U64(settle_threads(threads), threads);
    /* again: a failure does not accumulate anything either */
    CHECK_STATUS(pm_server_new(reg, o, &s), PM_EIO);
    CHECK_EQ_U64(open_fds(), fds);

    CHECK_OK(pm_server_opts_set_address(o, "127.0.0.1", 0));
    CHECK_OK(pm_server_new(reg, o, &s));
    REQUIRE(s);
    CHECK(pm_server_port(s) != busy);
    pm_server_free(s);
    CHECK_EQ_U64(open_fds(), fds);
    CHECK_EQ_U64(settle_threads(threads), threads);
    /* the exporter went with the server: a third one starts as well */
    s = NULL;
    CHECK_OK(pm_server_new(reg, o, &s));
    pm_server_free(s);
    pm_server_opts_free(o);
    pm_tracer_free(t);
    pm_registry_free(reg);
    close(ls);
}

TEST(test_url)
{
    pm_registry_t *reg = app_registry();
    REQUIRE(reg);
    fx_t f;
    REQUIRE(fx_start_on(&f, reg, NULL));
    char want[64], buf[64];
    int n = snprintf(want, sizeof want, "http://127.0.0.1:%d/", f.port);
    CHECK_OK(pm_server_url(f.srv, buf, (size_t)n + 1)); /* exactly enough */
    CHECK_STR(buf, want);
    memset(buf, 'x', sizeof buf);
    CHECK_STATUS(pm_server_url(f.srv, buf, (size_t)n), PM_ERANGE);
    CHECK_EQ_INT(buf[0], '\0');
    memset(buf, 'x', sizeof buf);
    CHECK_STATUS(pm_server_url(f.srv, buf, 1), PM_ERANGE);
    CHECK_EQ_INT(buf[0], '\0');
    CHECK_STATUS(pm_server_url(f.srv, NULL, 64), PM_EINVAL);
    fx_stop(&f, 0);

    /* "localhost" is 127.0.0.1 */
    pm_server_opts_t *o = NULL;
    REQUIRE(pm_server_opts_new(&o) == PM_OK);
    CHECK_OK(pm_server_opts_set_address(o, "localhost", 0));
    REQUIRE(fx_start_on(&f, reg, o));
    snprintf(want, sizeof want, "http://127.0.0.1:%d/", f.port);
    CHECK_OK(pm_server_url(f.srv, buf, sizeof buf));
    CHECK_STR(buf, want);
    resp_t r;
    GET(&r, f.port, "/health");
    EXPECT_STATUS(&r, 200, "localhost server");
    resp_free(&r);
    fx_stop(&f, 0);

    if (have_ipv6()) {
        REQUIRE(pm_server_opts_new(&o) == PM_OK);
        CHECK_OK(pm_server_opts_set_address(o, "::1", 0));
        REQUIRE(fx_start_on(&f, reg, o));
        snprintf(want, sizeof want, "http://[::1]:%d/", f.port);
        CHECK_OK(pm_server_url(f.srv, buf, sizeof buf));
        CHECK_STR(buf, want);
        fx_stop(&f, 0);
    } else {
        printf("  (no IPv6 loopback: [::1] URL not checked)\n");
    }
    pm_registry_free(reg);
}

/* ================================================================ /metrics */

TEST(test_metrics_negotiation)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    static const struct {
        const char *accept, *query;
        int om;
    } cases[] = {
        {NULL, "", 0},
        {PROMETHEUS_ACCEPT, "", 1},
        {"text/plain", "", 0},
        {"text/plain;version=0.0.4", "", 0},
        {"text/plain; version=0.0.4; charset=utf-8", "", 0},
        {"application/openmetrics-text", "", 1},
        {"application/openmetrics-text; version=1.0.0", "", 1},
        {"application/openmetrics-text;version=1.0.0;charset=utf-8", "", 1},
        {"APPLICATION/OpenMetrics-Text;Version=1.0.0", "",
         1}, /* RFC 9110 8.3.1: case-insensitive */
        {"application/openmetrics-text;version=0.0.1", "", 0}, /* unsupported version */
        {"application/openmetrics-text;q=0", "", 0},           /* q=0: not acceptable */
        {"text/plain;q=0.9, application/openmetrics-text;q=0.3", "", 0},
        {"text/plain;version=0.0.4;q=0.5,application/openmetrics-text;version=1.0.0;q=0.6", "", 1},
        {"text/plain, application/openmetrics-text", "", 1}, /* a tie goes to OpenMetrics */
        {"application/openmetrics-text;q=0.5, text/plain;q=0.5", "", 1},
        {"*/*", "", 0},
        {"text/*", "", 0},
        {"text/*;q=0.2, application/openmetrics-text;q=0.1", "", 0},
        {"application/json", "", 0}, /* nothing supported: Prometheus text */
        {"image/png, application/xml;q=0.5", "", 0},
        {NULL, "?format=openmetrics", 1},
        {NULL, "?format=prometheus", 0},
        {PROMETHEUS_ACCEPT, "?format=prometheus", 0},
        {"text/plain", "?format=openmetrics", 1},
        {"text/plain", "?x=1&format=openmetrics&y=2", 1},
        {PROMETHEUS_ACCEPT, "?unrelated=1", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[128], extra[512] = "", what[640];
        snprintf(path, sizeof path, "/metrics%s", cases[i].query);
        if (cases[i].accept) snprintf(extra, sizeof extra, "Accept: %s\r\n", cases[i].accept);
        snprintf(what, sizeof what, "Accept %s, %s", cases[i].accept ? cases[i].accept : "(none)",
                 path);
        resp_t r;
        if (fetch_(f.port, "GET", path, extra, &r) != RD_OK) {
            TH_FAIL_("%s: no response", what);
            resp_free(&r);
            continue;
        }
        EXPECT_STATUS(&r, 200, what);
        const char *ct = hdr(&r, "Content-Type");
        const char *want = cases[i].om ? OM_CT : PROM_CT;
        if (!ct || strcmp(ct, want) != 0)
            TH_FAIL_("%s: Content-Type %s, want %s", what, ct ? ct : "(none)", want);
        CHECK_STR(want, pm_format_content_type(cases[i].om ? PM_FORMAT_OPENMETRICS
                                                           : PM_FORMAT_PROMETHEUS));
        int has_eof = r.tlen >= 6 && strcmp(r.text + r.tlen - 6, "# EOF\n") == 0;
        if (has_eof != cases[i].om)
            TH_FAIL_("%s: body is not %s", what, cases[i].om ? "OpenMetrics" : "Prometheus text");
        if (!hdr_has_token(&r, "Vary", "Accept") || !hdr_has_token(&r, "Vary", "Accept-Encoding"))
            TH_FAIL_("%s: Vary \"%s\"", what, hdr(&r, "Vary") ? hdr(&r, "Vary") : "(none)");
        if (hdr(&r, "Content-Encoding")) TH_FAIL_("%s: encoded without Accept-Encoding", what);
        /* The registry's contents, in either format. */
        if (sample_value(r.text, "app_jobs_total") != 42 ||
            sample_value(r.text, "app_queue_depth") != 7 ||
            sample_value(r.text, "app_latency_seconds_count") != 1)
            TH_FAIL_("%s: registry samples missing:\n%.400s", what, r.text);
        resp_free(&r);
    }
    EXPECT_STAT(f.srv, PM_SERVER_STAT_SCRAPES, sizeof cases / sizeof *cases);
    fx_stop(&f, 1);
}

TEST(test_metrics_gzip)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    resp_t plain, z;
    GET(&plain, f.port, "/metrics");
    REQUIRE(plain.status == 200 && plain.tlen >= 1024);
    FETCH(&z, f.port, "GET", "/metrics", "Accept-Encoding: gzip\r\n");
    EXPECT_STATUS(&z, 200, "gzip scrape");
    CHECK(hdr_has_token(&z, "Vary", "Accept-Encoding") && hdr_has_token(&z, "Vary", "Accept"));
    CHECK_STR(hdr(&z, "Content-Type"), PROM_CT);
    if (!pm_has_zlib()) {
        CHECK(hdr(&z, "Content-Encoding") == NULL);
        printf("  (library without zlib: identity only)\n");
    } else {
        CHECK_STR(hdr(&z, "Content-Encoding"), "gzip");
        CHECK_EQ_U64(z.cl, z.blen); /* Content-Length counts the compressed bytes */
        CHECK(z.blen < z.tlen);
        CHECK(z.blen >= 2 && (unsigned char)z.body[0] == 0x1f && (unsigned char)z.body[1] == 0x8b);
        /* The same text but for the server's own request metrics, which moved
         * between the two scrapes. */
        char *a = drop_lines(plain.text, "perfmetrics_http_");
        char *b = drop_lines(z.text, "perfmetrics_http_");
        REQUIRE(a && b);
        CHECK(strlen(a) > 1000);
        if (strcmp(a, b) != 0)
            TH_FAIL_("gzip body differs from the plain one (%zu vs %zu bytes)", strlen(b),
                     strlen(a));
        free(a);
        free(b);
    }
    resp_free(&z);
    resp_free(&plain);

    /* Accept-Encoding as RFC 9110 12.5.3 reads it. */
    static const struct {
        const char *ae;
        int gz;
    } ae[] = {
        {"gzip", 1},     {"GZIP", 1},        {"deflate, gzip;q=0.5", 1},
        {"br, gzip", 1}, {"gzip;q=0", 0},    {"gzip; q=0.000", 0},
        {"identity", 0}, {"deflate, br", 0}, {"gzip;q=1.0, identity;q=0.5", 1},
    };
    for (size_t i = 0; i < sizeof ae / sizeof *ae; i++) {
        char extra[128];
        snprintf(extra, sizeof extra, "Accept-Encoding: %s\r\n", ae[i].ae);
        resp_t r;
        if (fetch_(f.port, "GET", "/metrics", extra, &r) == RD_OK) {
            int gz = hdr_is(&r, "Content-Encoding", "gzip");
            if (gz != (ae[i].gz && pm_has_zlib()))
                TH_FAIL_("Accept-Encoding \"%s\": gzip %d, want %d", ae[i].ae, gz,
                         ae[i].gz && pm_has_zlib());
        } else {
            TH_FAIL_("Accept-Encoding \"%s\": no response", ae[i].ae);
        }
        resp_free(&r);
    }

    /* JSON endpoints: a large snapshot is compressed, a small /health is not
     * (under 1 KiB), and both say Vary: Accept-Encoding. */
    resp_t r;
    FETCH(&r, f.port, "GET", "/api/v1/metrics", "Accept-Encoding: gzip\r\n");
    EXPECT_STATUS(&r, 200, "gzip JSON");
    /* Without zlib nothing varies by encoding, so nothing says it does. */
    CHECK_EQ_INT(hdr_has_token(&r, "Vary", "Accept-Encoding"), pm_has_zlib());
    CHECK_EQ_INT(hdr_is(&r, "Content-Encoding", "gzip"), pm_has_zlib());
    CHECK(r.tlen >= 1024 && jcount(r.text, "families") >= 4);
    resp_free(&r);
    FETCH(&r, f.port, "GET", "/health", "Accept-Encoding: gzip\r\n");
    EXPECT_STATUS(&r, 200, "small body");
    CHECK(r.tlen < 1024);
    CHECK(hdr(&r, "Content-Encoding") == NULL);
    CHECK_EQ_INT(hdr_has_token(&r, "Vary", "Accept-Encoding"), pm_has_zlib());
    resp_free(&r);
    /* HEAD says what GET would: encoded, with the compressed length. */
    FETCH(&r, f.port, "HEAD", "/metrics", "Accept-Encoding: gzip\r\n");
    EXPECT_STATUS(&r, 200, "HEAD gzip");
    CHECK_EQ_INT(hdr_is(&r, "Content-Encoding", "gzip"), pm_has_zlib());
    CHECK_EQ_U64(r.blen, 0);
    resp_free(&r);
    fx_stop(&f, 1);

    /* gzip switched off */
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_gzip(o, 0));
    REQUIRE(fx_start(&f, o));
    FETCH(&r, f.port, "GET", "/metrics", "Accept-Encoding: gzip\r\n");
    EXPECT_STATUS(&r, 200, "gzip off");
    CHECK(hdr(&r, "Content-Encoding") == NULL);
    CHECK(r.blen >= 1024);
    resp_free(&r);
    fx_stop(&f, 1);
}

TEST(test_self_metrics)
{
    /* The server's perfmetrics_http_* families (doc/server.md) are in the
     * registry it serves, counting exactly what happened before the scrape;
     * with the registry's self-metrics off they are not there. */
    fx_t f;
    REQUIRE(fx_start_on(&f, app_registry_self(1), NULL));
    resp_t r;
    g_sent = g_got = 0;
    for (int i = 0; i < 3; i++) {
        GET(&r, f.port, "/health");
        resp_free(&r);
    }
    GET(&r, f.port, "/nope");
    resp_free(&r);
    FETCH(&r, f.port, "POST", "/metrics", NULL);
    resp_free(&r);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_REQUESTS, 5);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 0);
    size_t got_before = g_got; /* what the server had sent before the scrape */
    GET(&r, f.port, "/metrics");
    EXPECT_STATUS(&r, 200, "scrape");
    static const char *const types[] = {
        "# TYPE perfmetrics_http_requests_total counter",
        "# TYPE perfmetrics_http_request_duration_seconds histogram",
        "# TYPE perfmetrics_http_connections_total counter",
        "# TYPE perfmetrics_http_open_connections gauge",
        "# TYPE perfmetrics_http_rejected_connections_total counter",
        "# TYPE perfmetrics_http_timeouts_total counter",
        "# TYPE perfmetrics_http_received_bytes_total counter",
        "# TYPE perfmetrics_http_sent_bytes_total counter",
    };
    for (size_t i = 0; i < sizeof types / sizeof *types; i++)
        if (!strstr(r.text, types[i])) TH_FAIL_("no \"%s\" in /metrics", types[i]);
    CHECK_EQ_DBL(
        sample_value(r.text, "perfmetrics_http_requests_total{handler=\"health\",code=\"200\"}"),
        3);
    CHECK_EQ_DBL(
        sample_value(r.text, "perfmetrics_http_requests_total{handler=\"other\",code=\"404\"}"), 1);
    CHECK_EQ_DBL(
        sample_value(r.text, "perfmetrics_http_requests_total{handler=\"other\",code=\"405\"}"),
        1); /* refused before routing */
    CHECK_EQ_DBL(sample_value(r.text, "perfmetrics_http_connections_total"),
                 6); /* this one included */
    CHECK_EQ_DBL(sample_value(r.text, "perfmetrics_http_open_connections"), 1);
    CHECK_EQ_DBL(sample_value(r.text, "perfmetrics_http_rejected_connections_total"), 0);
    CHECK_EQ_DBL(sample_value(r.text, "perfmetrics_http_timeouts_total"), 0);
    /* the scrape's own request is in, its response is not yet */
    CHECK_EQ_DBL(sample_value(r.text, "perfmetrics_http_received_bytes_total"), (double)g_sent);
    CHECK_EQ_DBL(sample_value(r.text, "perfmetrics_http_sent_bytes_total"), (double)got_before);
    CHECK(sample_value(r.text,
                       "perfmetrics_http_request_duration_seconds_count{handler=\"health\"}") == 3);
    resp_free(&r);
    GET(&r, f.port, "/api/v1/metrics?prefix=perfmetrics_http_");
    EXPECT_STATUS(&r, 200, "JSON");
    long n = jcount(r.text, "families");
    CHECK_EQ_INT(n, 8);
    for (long i = 0; i < n; i++) {
        char p[64], name[128];
        snprintf(p, sizeof p, "families.%ld.name", i);
        if (!jstr(r.text, p, name, sizeof name) || strncmp(name, "perfmetrics_http_", 17) != 0)
            TH_FAIL_("family %ld: %s", i, jstr(r.text, p, name, sizeof name) ? name : "(no name)");
    }
    resp_free(&r);
    fx_stop(&f, 1);

    REQUIRE(fx_start(&f, NULL)); /* self-metrics off */
    GET(&r, f.port, "/health");
    resp_free(&r);
    GET(&r, f.port, "/metrics");
    EXPECT_STATUS(&r, 200, "scrape, self-metrics off");
    CHECK(strstr(r.text, "perfmetrics_http_") == NULL);
    resp_free(&r);
    fx_stop(&f, 1);
}

TEST(test_host_check)
{
    /* DNS rebinding (doc/server.md, Security): on a loopback address a Host
     * that is not a loopback IP literal or localhost gets 421. */
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    char ok_hosts[8][64];
    snprintf(ok_hosts[0], 64, "127.0.0.1:%d", f.port);
    snprintf(ok_hosts[1], 64, "localhost:%d", f.port);
    snprintf(ok_hosts[2], 64, "127.0.0.1");
    snprintf(ok_hosts[3], 64, "localhost");
    snprintf(ok_hosts[4], 64, "LocalHost");
    snprintf(ok_hosts[5], 64, "dash.localhost:%d", f.port);
    snprintf(ok_hosts[6], 64, "[::1]:%d", f.port);
    snprintf(ok_hosts[7], 64, "127.0.0.2");
    for (int i = 0; i < 8; i++) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: %s\r\n\r\n", ok_hosts[i]);
        EXPECT_ANSWER(f.port, req, n, 200, ok_hosts[i]);
    }
    static const char *const bad_hosts[] = {
        "evil.example",  "evil.example:9464", "localhost.evil.example", "127.0.0.1.evil.example",
        "evillocalhost", "192.168.1.10",      "[2001:db8::1]",          "10.0.0.1:80",
    };
    for (size_t i = 0; i < sizeof bad_hosts / sizeof *bad_hosts; i++) {
        static const char *const paths[] = {"/health", "/metrics", "/"};
        for (size_t p = 0; p < 3; p++) {
            char req[256], what[128];
            int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", paths[p],
                             bad_hosts[i]);
            snprintf(what, sizeof what, "%s with Host %s", paths[p], bad_hosts[i]);
            EXPECT_ANSWER(f.port, req, n, 421, what);
        }
    }
    fx_stop(&f, 1);
}

/* ================================================================ JSON endpoints */

TEST(test_health_plain)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    resp_t r;
    GET(&r, f.port, "/health");
    EXPECT_STATUS(&r, 200, "no engine");
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    char b[64];
    CHECK_STR(jstr(r.text, "status", b, sizeof b), "healthy");
    CHECK_EQ_DBL(jnum(r.text, "health_score"), 100);
    CHECK_EQ_DBL(jnum(r.text, "firing.critical"), 0);
    CHECK_EQ_DBL(jnum(r.text, "firing.warning"), 0);
    CHECK_EQ_DBL(jnum(r.text, "firing.info"), 0);
    CHECK_EQ_DBL(jnum(r.text, "pending"), 0);
    double up = jnum(r.text, "uptime_seconds");
    CHECK(up >= 0 && up < 60);
    CHECK_STR(jstr(r.text, "version", b, sizeof b), pm_version_string());
    resp_free(&r);
    fx_stop(&f, 1);
}

#define SEC INT64_C(1000000000)
#define T0S INT64_C(1700000100)
#define AT(s) ((T0S + (int64_t)(s)) * SEC)

static pm_alert_engine_t *new_engine(pm_registry_t *r)
{
    pm_alert_engine_opts_t *o = NULL;
    pm_alert_engine_t *e = NULL;
    if (pm_alert_engine_opts_new(&o) != PM_OK) return NULL;
    if (pm_alert_engine_opts_set_dispatch_thread(o, 0) == PM_OK &&
        pm_alert_engine_opts_set_interval(o, 15) == PM_OK)
        pm_alert_engine_new(r, o, &e);
    pm_alert_engine_opts_free(o);
    return e;
}

/* Adds rule `name`: `expr` with severity, `for` and an optional annotation. */
static pm_status_t add_rule(pm_alert_engine_t *e, const char *name, const char *expr,
                            pm_severity_t sev, double for_s, const char *summary)
{
    pm_alert_rule_t *r = NULL;
    pm_status_t st = pm_alert_rule_new(name, expr, &r, NULL);
    if (st == PM_OK) st = pm_alert_rule_set_severity(r, sev);
    if (st == PM_OK) st = pm_alert_rule_set_for(r, for_s);
    if (st == PM_OK && summary) st = pm_alert_rule_set_annotation(r, "summary", summary, NULL);
    if (st == PM_OK) st = pm_alert_rule_set_label(r, "team", "core");
    if (st == PM_OK) st = pm_alert_engine_add_rule(e, r);
    pm_alert_rule_free(r);
    return st;
}

/* A gauge family `name` with the label job, room for max_series series. */
static pm_family_t *job_gauge_n(pm_registry_t *r, const char *name, size_t max_series)
{
    pm_family_opts_t *fo = NULL;
    pm_family_t *f = NULL;
    static const char *const lab[] = {"job"};
    if (pm_family_opts_new(&fo) != PM_OK) return NULL;
    if (pm_family_opts_set_labels(fo, lab, 1) == PM_OK &&
        pm_family_opts_set_max_series(fo, max_series) == PM_OK)
        pm_family_new(r, PM_TYPE_GAUGE, name, "A test gauge.", fo, &f);
    pm_family_opts_free(fo);
    return f;
}

static pm_family_t *job_gauge(pm_registry_t *r, const char *name)
{
    return job_gauge_n(r, name, 100);
}

static void set_job(pm_family_t *f, const char *job, double v)
{
    const char *vals[] = {job};
    pm_gauge_set_labeled(f, vals, 1, v);
}

/* /health: status, code and counts after the engine's last tick. */
static void expect_health_(int port, int code, const char *status, double score, int crit, int warn,
                           int pending, int line)
{
    resp_t r;
    char b[32], what[64];
    snprintf(what, sizeof what, "/health (%s)", status);
    if (fetch_(port, "GET", "/health", NULL, &r) != RD_OK) {
        TH_FAIL_("line %d: %s: no response", line, what);
    } else {
        expect_status_(&r, code, what, line);
        if (!jstr(r.text, "status", b, sizeof b) || strcmp(b, status) != 0 ||
            jnum(r.text, "health_score") != score || jnum(r.text, "firing.critical") != crit ||
            jnum(r.text, "firing.warning") != warn || jnum(r.text, "firing.info") != 0 ||
            jnum(r.text, "pending") != pending)
            TH_FAIL_("line %d: %s: %s", line, what, r.text);
    }
    resp_free(&r);
}
#define EXPECT_HEALTH(port, code, status, score, crit, warn, pending)                              \
    expect_health_((port), (code), (status), (score), (crit), (warn), (pending), __LINE__)

TEST(test_health_alerts)
{
    pm_registry_t *reg = app_registry();
    REQUIRE(reg);
    pm_family_t *x = job_gauge(reg, "x"), *y = job_gauge(reg, "y"), *z = job_gauge(reg, "z");
    pm_alert_engine_t *e = new_engine(reg);
    REQUIRE(x && y && z && e);
    CHECK_OK(add_rule(e, "CritX", "x > 5", PM_SEVERITY_CRITICAL, 0, NULL));
    CHECK_OK(add_rule(e, "WarnY", "y > 5", PM_SEVERITY_WARNING, 0, NULL));
    CHECK_OK(add_rule(e, "SlowZ", "z > 5", PM_SEVERITY_CRITICAL, 600, NULL));
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_alert_engine(o, e));
    fx_t f;
    REQUIRE(fx_start_on(&f, reg, o));
    pm_server_opts_t *o2 = local_opts(); /* a second server with threshold 10 */
    REQUIRE(o2);
    CHECK_OK(pm_server_opts_set_alert_engine(o2, e));
    CHECK_OK(pm_server_opts_set_health_threshold(o2, 10));
    fx_t f2;
    REQUIRE(fx_start_on(&f2, reg, o2));

    set_job(x, "a", 1);
    set_job(y, "a", 1);
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    EXPECT_HEALTH(f.port, 200, "healthy", 100, 0, 0, 0);

    set_job(y, "a", 10); /* one warning: 90, degraded but served with 200 */
    CHECK_OK(pm_alert_engine_tick(e, AT(15)));
    CHECK_EQ_DBL(pm_alert_engine_health(e), 90);
    EXPECT_HEALTH(f.port, 200, "degraded", 90, 0, 1, 0);

    set_job(z, "a", 10); /* and one pending (for 600 s): 89 */
    CHECK_OK(pm_alert_engine_tick(e, AT(30)));
    EXPECT_HEALTH(f.port, 200, "degraded", 89, 0, 1, 1);

    /* three critical instances: 100 - 75 - 10 - 1 = 14 < 50: unhealthy, 503 */
    set_job(x, "a", 10);
    set_job(x, "b", 10);
    set_job(x, "c", 10);
    CHECK_OK(pm_alert_engine_tick(e, AT(45)));
    CHECK_EQ_DBL(pm_alert_engine_health(e), 14);
    EXPECT_HEALTH(f.port, 503, "unhealthy", 14, 3, 1, 1);
    EXPECT_HEALTH(f2.port, 200, "degraded", 14, 3, 1, 1); /* 14 >= 10 */
    resp_t r;
    FETCH(&r, f.port, "HEAD", "/health", NULL);
    EXPECT_STATUS(&r, 503, "HEAD unhealthy");
    CHECK_EQ_U64(r.blen, 0);
    resp_free(&r);
    /* the 503 is counted as a 5xx answer */
    CHECK(pm_server_stat(f.srv, PM_SERVER_STAT_5XX) >= 1);

    set_job(x, "a", 1);
    set_job(x, "b", 1);
    set_job(x, "c", 1);
    set_job(y, "a", 1);
    set_job(z, "a", 1);
    CHECK_OK(pm_alert_engine_tick(e, AT(60)));
    EXPECT_HEALTH(f.port, 200, "healthy", 100, 0, 0, 0);

    fx_stop(&f2, 0);
    fx_stop(&f, 0);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_info)
{
    pm_registry_t *reg = app_registry();
    REQUIRE(reg);
    fx_t f;
    REQUIRE(fx_start_on(&f, reg, NULL));
    resp_t r;
    char b[300];
    GET(&r, f.port, "/api/v1/info");
    EXPECT_STATUS(&r, 200, "defaults");
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    CHECK_STR(jstr(r.text, "title", b, sizeof b), "libperfmetrics");
    CHECK_STR(jstr(r.text, "version", b, sizeof b), pm_version_string());
    double start = jnum(r.text, "start_time"), now = jnum(r.text, "now");
    double wall = (double)time(NULL);
    CHECK(start > 1.6e9 && start <= now && fabs(now - wall) < 5);
    CHECK(jnum(r.text, "uptime_seconds") >= 0 && jnum(r.text, "uptime_seconds") < 60);
    CHECK_NEAR(jnum(r.text, "uptime_seconds"), now - start, 0.5);
    CHECK(jnum(r.text, "refresh_seconds") > 0);
    CHECK(jis(r.text, "alerts", "false"));
    CHECK(jis(r.text, "traces", "false"));
    CHECK_EQ_INT(jcount(r.text, "charts"), 0);
    resp_free(&r);
    fx_stop(&f, 0);

    /* title with characters JSON must escape, charts in order, both attached */
    pm_tracer_t *t = NULL;
    pm_alert_engine_t *e = new_engine(reg);
    REQUIRE(e && pm_tracer_new(NULL, &t) == PM_OK);
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    const char *title = "Ops \"board\" \\ <b>caf\xc3\xa9</b>\t\x01";
    CHECK_OK(pm_server_opts_set_title(o, title));
    CHECK_OK(pm_server_opts_add_chart(o, "app_jobs"));
    CHECK_OK(pm_server_opts_add_chart(o, "app_latency_seconds"));
    CHECK_OK(pm_server_opts_add_chart(o, "app_queue_depth"));
    CHECK_OK(pm_server_opts_set_tracer(o, t));
    CHECK_OK(pm_server_opts_set_alert_engine(o, e));
    REQUIRE(fx_start_on(&f, reg, o));
    GET(&r, f.port, "/api/v1/info");
    EXPECT_STATUS(&r, 200, "custom");
    CHECK_STR(jstr(r.text, "title", b, sizeof b), title);
    CHECK(jis(r.text, "alerts", "true"));
    CHECK(jis(r.text, "traces", "true"));
    CHECK_EQ_INT(jcount(r.text, "charts"), 3);
    CHECK_STR(jstr(r.text, "charts.0", b, sizeof b), "app_jobs");
    CHECK_STR(jstr(r.text, "charts.1", b, sizeof b), "app_latency_seconds");
    CHECK_STR(jstr(r.text, "charts.2", b, sizeof b), "app_queue_depth");
    resp_free(&r);
    fx_stop(&f, 0);
    pm_alert_engine_free(e);
    pm_tracer_free(t);
    pm_registry_free(reg);
}

/* The family names of a /api/v1/metrics body, joined with spaces. */
static void family_names(const char *doc, char *out, size_t cap)
{
    size_t o = 0;
    long n = jcount(doc, "families");
    out[0] = '\0';
    for (long i = 0; i < n && o < cap; i++) {
        char p[64], name[128];
        snprintf(p, sizeof p, "families.%ld.name", i);
        o += (size_t)snprintf(out + o, cap - o, "%s%s", o ? " " : "",
                              jstr(doc, p, name, sizeof name) ? name : "?");
    }
}

TEST(test_api_metrics)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    resp_t r;
    char names[1024], b[64];
    GET(&r, f.port, "/api/v1/metrics");
    EXPECT_STATUS(&r, 200, "all");
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    CHECK(jnum(r.text, "timestamp") > 1.6e9);
    long ij = jfind(r.text, "families", "name", "app_jobs");
    REQUIRE(ij >= 0);
    char p[96];
    snprintf(p, sizeof p, "families.%ld.type", ij);
    CHECK_STR(jstr(r.text, p, b, sizeof b), "counter");
    snprintf(p, sizeof p, "families.%ld.series.0.value", ij);
    CHECK_EQ_DBL(jnum(r.text, p), 42);
    long io = jfind(r.text, "families", "name", "other_items");
    REQUIRE(io >= 0);
    snprintf(p, sizeof p, "families.%ld.series", io);
    CHECK_EQ_INT(jcount(r.text, p), ITEMS);
    CHECK(jfind(r.text, "families", "name", "app_latency_seconds") >= 0);
    resp_free(&r);

    static const struct {
        const char *query, *names;
    } cases[] = {
        {"?prefix=app_", "app_jobs app_latency_seconds app_queue_depth"},
        {"?prefix=app_jobs", "app_jobs"},
        {"?prefix=app_jobs_total", ""}, /* counters match by the name without _total */
        {"?prefix=app_jobs&prefix=other_", "app_jobs other_items"},
        {"?prefix=other_&prefix=app_queue", "app_queue_depth other_items"},
        {"?prefix=app_jobs&prefix=app_jobs", "app_jobs"},
        {"?prefix=nothing_here", ""},
        {"?prefix=app_l&unknown=1", "app_latency_seconds"},
        {"?unknown=1&prefix=app_q", "app_queue_depth"},
        {"?prefix=app%5Fjobs", "app_jobs"}, /* query values are percent-decoded */
        {"?prefix=%61pp_queue", "app_queue_depth"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char path[128];
        snprintf(path, sizeof path, "/api/v1/metrics%s", cases[i].query);
        if (fetch_(f.port, "GET", path, NULL, &r) != RD_OK || r.status != 200) {
            TH_FAIL_("%s: no 200 (%d)", path, r.status);
        } else {
            family_names(r.text, names, sizeof names);
            if (strcmp(names, cases[i].names) != 0)
                TH_FAIL_("%s: families \"%s\", want \"%s\"", path, names, cases[i].names);
            CHECK(jnum(r.text, "timestamp") > 1.6e9);
        }
        resp_free(&r);
    }
    /* A prefix longer than any buffer the server decodes it into: refused
     * or matching nothing, never a crash or a 5xx. */
    char path[6000];
    int n = snprintf(path, sizeof path, "/api/v1/metrics?prefix=");
    memset(path + n, 'a', 5000);
    path[n + 5000] = '\0';
    CHECK_EQ_INT(fetch_(f.port, "GET", path, NULL, &r), RD_OK);
    if (r.status == 200) {
        CHECK_EQ_INT(jcount(r.text, "families"), 0);
    } else if (r.status != 400 && r.status != 414) {
        TH_FAIL_("a 5000-byte prefix answered %d", r.status);
    }
    resp_free(&r);
    GET(&r, f.port, "/health");
    EXPECT_STATUS(&r, 200, "after a long prefix");
    resp_free(&r);
    fx_stop(&f, 1);
}

TEST(test_api_alerts)
{
    pm_registry_t *reg = app_registry();
    REQUIRE(reg);
    fx_t f;
    resp_t r;
    char b[256];
    /* no engine: empty lists, score 100 */
    REQUIRE(fx_start_on(&f, reg, NULL));
    GET(&r, f.port, "/api/v1/alerts");
    EXPECT_STATUS(&r, 200, "no engine");
    CHECK_EQ_DBL(jnum(r.text, "health_score"), 100);
    CHECK_EQ_INT(jcount(r.text, "active"), 0);
    CHECK_EQ_INT(jcount(r.text, "history"), 0);
    resp_free(&r);
    fx_stop(&f, 0);

    pm_family_t *x = job_gauge(reg, "x");
    pm_alert_engine_t *e = new_engine(reg);
    REQUIRE(x && e);
    CHECK_OK(add_rule(e, "HighX", "x > 5", PM_SEVERITY_CRITICAL, 15, "x is {{ $value }}"));
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_alert_engine(o, e));
    REQUIRE(fx_start_on(&f, reg, o));
    set_job(x, "api", 10);
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));  /* pending */
    CHECK_OK(pm_alert_engine_tick(e, AT(15))); /* firing */

    pm_alert_list_t *l = NULL;
    REQUIRE(pm_alert_engine_active(e, &l) == PM_OK && pm_alert_list_count(l) == 1);
    char fp[17];
    const pm_alert_event_t *act = pm_alert_list_get(l, 0);
    snprintf(fp, sizeof fp, "%016llx", (unsigned long long)pm_alert_event_fingerprint(act));
    const char *act_prev = pm_alert_state_name(pm_alert_event_prev_state(act));

    GET(&r, f.port, "/api/v1/alerts");
    EXPECT_STATUS(&r, 200, "firing");
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    CHECK_EQ_DBL(jnum(r.text, "health_score"), 75);
    CHECK_EQ_INT(jcount(r.text, "active"), 1);
    CHECK_STR(jstr(r.text, "active.0.rule", b, sizeof b), "HighX");
    CHECK_STR(jstr(r.text, "active.0.state", b, sizeof b), "firing");
    CHECK_STR(jstr(r.text, "active.0.prev_state", b, sizeof b), act_prev); /* the engine's */
    pm_alert_list_free(l);
    CHECK_STR(jstr(r.text, "active.0.severity", b, sizeof b), "critical");
    CHECK_EQ_DBL(jnum(r.text, "active.0.value"), 10);
    CHECK_NEAR(jnum(r.text, "active.0.time"), T0S + 15, 1e-3);
    CHECK_NEAR(jnum(r.text, "active.0.active_at"), T0S, 1e-3);
    CHECK_NEAR(jnum(r.text, "active.0.starts_at"), T0S + 15, 1e-3);
    CHECK(jis(r.text, "active.0.ends_at", "null"));
    CHECK_STR(jstr(r.text, "active.0.fingerprint", b, sizeof b), fp);
    CHECK_STR(jstr(r.text, "active.0.labels.alertname", b, sizeof b), "HighX");
    CHECK_STR(jstr(r.text, "active.0.labels.job", b, sizeof b), "api");
    CHECK_STR(jstr(r.text, "active.0.labels.team", b, sizeof b), "core");
    CHECK_STR(jstr(r.text, "active.0.annotations.summary", b, sizeof b), "x is 10");
    /* history, oldest first: inactive -> pending -> firing */
    CHECK_EQ_INT(jcount(r.text, "history"), 2);
    CHECK_STR(jstr(r.text, "history.0.state", b, sizeof b), "pending");
    CHECK_STR(jstr(r.text, "history.0.prev_state", b, sizeof b), "inactive");
    CHECK(jis(r.text, "history.0.starts_at", "null")); /* not fired yet */
    CHECK_NEAR(jnum(r.text, "history.0.time"), T0S, 1e-3);
    CHECK_STR(jstr(r.text, "history.1.state", b, sizeof b), "firing");
    CHECK_STR(jstr(r.text, "history.1.prev_state", b, sizeof b), "pending");
    CHECK_STR(jstr(r.text, "history.1.fingerprint", b, sizeof b), fp);
    /* every event has every documented field */
    static const char *const fields[] = {"rule",    "state",       "prev_state", "severity",
                                         "value",   "time",        "active_at",  "starts_at",
                                         "ends_at", "fingerprint", "labels",     "annotations"};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        const char *v;
        size_t vn;
        char path[64];
        snprintf(path, sizeof path, "history.1.%s", fields[i]);
        if (!json_at(r.text, path, &v, &vn)) TH_FAIL_("event without %s", fields[i]);
    }
    resp_free(&r);

    set_job(x, "api", 1);
    CHECK_OK(pm_alert_engine_tick(e, AT(30))); /* resolved */
    GET(&r, f.port, "/api/v1/alerts");
    EXPECT_STATUS(&r, 200, "resolved");
    CHECK_EQ_DBL(jnum(r.text, "health_score"), 100);
    CHECK_EQ_INT(jcount(r.text, "active"), 0);
    CHECK_EQ_INT(jcount(r.text, "history"), 3);
    CHECK_STR(jstr(r.text, "history.2.state", b, sizeof b), "resolved");
    CHECK_NEAR(jnum(r.text, "history.2.ends_at"), T0S + 30, 1e-3);
    CHECK_EQ_DBL(jnum(r.text, "history.2.value"), 10); /* the last value seen while active */
    resp_free(&r);
    fx_stop(&f, 0);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

static void hex_of(const uint8_t *id, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) sprintf(out + 2 * i, "%02x", id[i]);
}

/* One trace: a server span `root` with a client child "llm.call" (in error,
 * attribute agent=a1). Writes the trace id and the two span ids in hex. */
static int make_trace(pm_tracer_t *t, const char *root, char tid[33], char rid[17], char cid[17])
{
    pm_span_t *a = NULL, *c = NULL;
    pm_trace_context_t ac, cc;
    if (pm_span_start(t, root, PM_SPAN_SERVER, NULL, &a) != PM_OK) return 0;
    pm_span_t *prev = pm_span_enter(a);
    int ok = pm_span_start(t, "llm.call", PM_SPAN_CLIENT, NULL, &c) == PM_OK;
    if (ok) {
        pm_span_set_string(c, "agent", "a1");
        pm_span_set_status(c, PM_SPAN_STATUS_ERROR, "boom");
        pm_span_context(c, &cc);
        hex_of(cc.span_id, 8, cid);
        pm_span_end(c);
    }
    pm_span_exit(prev);
    pm_span_context(a, &ac);
    hex_of(ac.trace_id, 16, tid);
    hex_of(ac.span_id, 8, rid);
    pm_span_end(a);
    return ok;
}

TEST(test_api_traces)
{
    pm_tracer_t *t = NULL;
    REQUIRE(pm_tracer_new(NULL, &t) == PM_OK);
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_tracer(o, t));
    fx_t f;
    REQUIRE(fx_start(&f, o));
    char tid[3][33], rid[3][17], cid[3][17];
    for (int i = 0; i < 3; i++)
        REQUIRE(make_trace(t, i == 2 ? "task.last" : "task", tid[i], rid[i], cid[i]));
    size_t n = 0;
    CHECK_OK(pm_tracer_flush(t, &n));
    CHECK_EQ_U64(n, 6);

    resp_t r;
    char b[256], p[128];
    GET(&r, f.port, "/api/v1/traces");
    EXPECT_STATUS(&r, 200, "traces");
    CHECK_STR(hdr(&r, "Content-Type"), "application/json");
    /* operations: task, task.last and llm.call */
    CHECK_EQ_INT(jcount(r.text, "operations"), 3);
    long op = jfind(r.text, "operations", "name", "llm.call");
    REQUIRE(op >= 0);
    snprintf(p, sizeof p, "operations.%ld.spans", op);
    CHECK_EQ_DBL(jnum(r.text, p), 3);
    snprintf(p, sizeof p, "operations.%ld.errors", op);
    CHECK_EQ_DBL(jnum(r.text, p), 3);
    static const char *const qs[] = {"duration.p50", "duration.p95", "duration.p99", "self.p50",
                                     "self.p95",     "self.p99",     "self_total"};
    for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
        snprintf(p, sizeof p, "operations.%ld.%s", op, qs[i]);
        if (!(jnum(r.text, p) >= 0)) TH_FAIL_("%s: not a number >= 0", p);
    }
    /* sorted by self_total, largest first */
    for (long i = 1; i < jcount(r.text, "operations"); i++) {
        char p0[64];
        snprintf(p0, sizeof p0, "operations.%ld.self_total", i - 1);
        snprintf(p, sizeof p, "operations.%ld.self_total", i);
        CHECK(jnum(r.text, p0) >= jnum(r.text, p));
    }
    /* slowest and errors know the three traces; recent has them newest first */
    CHECK_EQ_INT(jcount(r.text, "slowest"), 3);
    CHECK_EQ_INT(jcount(r.text, "errors"), 3);
    long s0 = jfind(r.text, "slowest", "trace_id", tid[0]);
    REQUIRE(s0 >= 0);
    snprintf(p, sizeof p, "slowest.%ld.root", s0);
    CHECK_STR(jstr(r.text, p, b, sizeof b), "task");
    snprintf(p, sizeof p, "slowest.%ld.spans", s0);
    CHECK_EQ_DBL(jnum(r.text, p), 2);
    snprintf(p, sizeof p, "slowest.%ld.errors", s0);
    CHECK_EQ_DBL(jnum(r.text, p), 1);
    snprintf(p, sizeof p, "slowest.%ld.duration", s0);
    CHECK(jnum(r.text, p) >= 0);
    snprintf(p, sizeof p, "slowest.%ld.critical_path", s0);
    CHECK(jcount(r.text, p) >= 1);
    snprintf(p, sizeof p, "slowest.%ld.critical_path.0.name", s0);
    CHECK_STR(jstr(r.text, p, b, sizeof b), "task");
    snprintf(p, sizeof p, "slowest.%ld.critical_path.0.seconds", s0);
    CHECK(jnum(r.text, p) >= 0);
    CHECK(jfind(r.text, "errors", "trace_id", tid[1]) >= 0);
    CHECK_EQ_INT(jcount(r.text, "recent"), 3);
    CHECK_STR(jstr(r.text, "recent.0.trace_id", b, sizeof b), tid[2]);
    CHECK_STR(jstr(r.text, "recent.0.root", b, sizeof b), "task.last");
    CHECK_STR(jstr(r.text, "recent.2.trace_id", b, sizeof b), tid[0]);
    CHECK_EQ_DBL(jnum(r.text, "recent.0.spans"), 2);
    CHECK_EQ_DBL(jnum(r.text, "recent.0.errors"), 1);
    CHECK(jnum(r.text, "recent.0.start") > 1.6e9);
    CHECK(jnum(r.text, "recent.0.duration") >= 0);
    resp_free(&r);

    /* one trace by id: its spans in start order */
    snprintf(p, sizeof p, "/api/v1/traces?id=%s", tid[1]);
    GET(&r, f.port, p);
    EXPECT_STATUS(&r, 200, "by id");
    CHECK_STR(jstr(r.text, "trace_id", b, sizeof b), tid[1]);
    CHECK_EQ_INT(jcount(r.text, "spans"), 2);
    CHECK_STR(jstr(r.text, "spans.0.name", b, sizeof b), "task");
    CHECK_STR(jstr(r.text, "spans.0.span_id", b, sizeof b), rid[1]);
    CHECK(jis(r.text, "spans.0.parent_id", "null"));
    CHECK_STR(jstr(r.text, "spans.0.kind", b, sizeof b), "server");
    CHECK_STR(jstr(r.text, "spans.0.status", b, sizeof b), "unset");
    CHECK_STR(jstr(r.text, "spans.1.name", b, sizeof b), "llm.call");
    CHECK_STR(jstr(r.text, "spans.1.span_id", b, sizeof b), cid[1]);
    CHECK_STR(jstr(r.text, "spans.1.parent_id", b, sizeof b), rid[1]);
    CHECK_STR(jstr(r.text, "spans.1.kind", b, sizeof b), "client");
    CHECK_STR(jstr(r.text, "spans.1.status", b, sizeof b), "error");
    CHECK_STR(jstr(r.text, "spans.1.attributes.agent", b, sizeof b), "a1");
    CHECK(jnum(r.text, "spans.0.start") <= jnum(r.text, "spans.1.start"));
    CHECK(jnum(r.text, "spans.1.end") >= jnum(r.text, "spans.1.start"));
    CHECK_NEAR(jnum(r.text, "spans.1.duration"),
               jnum(r.text, "spans.1.end") - jnum(r.text, "spans.1.start"), 1e-3);
    CHECK_STR(jstr(r.text, "summary.trace_id", b, sizeof b), tid[1]);
    CHECK_EQ_DBL(jnum(r.text, "summary.spans"), 2);
    resp_free(&r);

    /* unknown id: 404; malformed: 400 */
    GET(&r, f.port, "/api/v1/traces?id=0123456789abcdef0123456789abcdef");
    EXPECT_ERROR(&r, 404, "unknown trace id");
    resp_free(&r);
    static const char *const bad_ids[] = {
        "xyz",
        "",
        "0123456789abcdef0123456789abcde",
        "0123456789abcdef0123456789abcdef0",
        "0123456789abcdef0123456789abcdeg",
        "0123456789abcdef 123456789abcdef",
    };
    for (size_t i = 0; i < sizeof bad_ids / sizeof *bad_ids; i++) {
        char what[96];
        snprintf(p, sizeof p, "/api/v1/traces?id=%s", bad_ids[i]);
        for (char *q = p; *q; q++)
            if (*q == ' ') *q = '+'; /* keep the request line valid */
        snprintf(what, sizeof what, "id \"%s\"", bad_ids[i]);
        GET(&r, f.port, p);
        EXPECT_ERROR(&r, 400, what);
        resp_free(&r);
    }
    fx_stop(&f, 1);

    /* The exporter left with the server: spans flush fine, and a server with
     * recent_spans 0 on the same tracer starts; it shows no recent traces but
     * still knows a trace by id from the tracer's lists. */
    REQUIRE(make_trace(t, "task", tid[0], rid[0], cid[0]));
    CHECK_OK(pm_tracer_flush(t, &n));
    CHECK_EQ_U64(n, 2);
    o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_tracer(o, t));
    CHECK_OK(pm_server_opts_set_recent_spans(o, 0));
    REQUIRE(fx_start(&f, o));
    REQUIRE(make_trace(t, "task", tid[1], rid[1], cid[1]));
    CHECK_OK(pm_tracer_flush(t, NULL));
    GET(&r, f.port, "/api/v1/traces");
    EXPECT_STATUS(&r, 200, "recent 0");
    CHECK_EQ_INT(jcount(r.text, "recent"), 0);
    CHECK(jfind(r.text, "slowest", "trace_id", tid[1]) >= 0);
    resp_free(&r);
    snprintf(p, sizeof p, "/api/v1/traces?id=%s", tid[1]);
    GET(&r, f.port, p);
    EXPECT_STATUS(&r, 200, "by id from the tracer's lists");
    CHECK_EQ_INT(jcount(r.text, "spans"), 0);
    CHECK_STR(jstr(r.text, "summary.trace_id", b, sizeof b), tid[1]);
    resp_free(&r);
    fx_stop(&f, 1);
    pm_tracer_free(t);
}

TEST(test_api_traces_without_tracer)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    resp_t r;
    GET(&r, f.port, "/api/v1/traces");
    EXPECT_STATUS(&r, 200, "no tracer");
    CHECK_EQ_INT(jcount(r.text, ""), 4);
    CHECK_EQ_INT(jcount(r.text, "operations"), 0);
    CHECK_EQ_INT(jcount(r.text, "slowest"), 0);
    CHECK_EQ_INT(jcount(r.text, "errors"), 0);
    CHECK_EQ_INT(jcount(r.text, "recent"), 0);
    resp_free(&r);
    GET(&r, f.port, "/api/v1/traces?id=0123456789abcdef0123456789abcdef");
    EXPECT_ERROR(&r, 404, "no tracer, by id");
    resp_free(&r);
    fx_stop(&f, 1);
}

/* ================================================================ dashboard, HEAD, 404 */

TEST(test_dashboard)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    resp_t r, r2;
    GET(&r, f.port, "/");
    EXPECT_STATUS(&r, 200, "dashboard");
    CHECK_STR(hdr(&r, "Content-Type"), "text/html; charset=utf-8");
    const char *csp = hdr(&r, "Content-Security-Policy");
    CHECK(csp && *csp);
    CHECK_STR(hdr(&r, "X-Frame-Options"), "DENY");
    CHECK_STR(hdr(&r, "Referrer-Policy"), "no-referrer");
    CHECK(r.tlen > 1000);
    CHECK(strcasestr(r.text, "<html") != NULL);
    CHECK(strcasestr(r.text, "</html>") != NULL);
    /* self-contained: no script or style fetched from elsewhere */
    CHECK(strcasestr(r.text, "src=\"http") == NULL && strcasestr(r.text, "href=\"http") == NULL);
    CHECK(strcasestr(r.text, "src=\"//") == NULL && strcasestr(r.text, "@import") == NULL);
    GET(&r2, f.port, "/index.html");
    EXPECT_STATUS(&r2, 200, "/index.html");
    CHECK_EQ_U64(r2.tlen, r.tlen);
    CHECK(r2.tlen == r.tlen && memcmp(r2.text, r.text, r.tlen) == 0);
    resp_free(&r2);
    resp_free(&r);
    GET(&r, f.port, "/?refresh=5");
    EXPECT_STATUS(&r, 200, "dashboard with a query");
    resp_free(&r);
    fx_stop(&f, 1);

    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_dashboard(o, 0));
    REQUIRE(fx_start(&f, o));
    GET(&r, f.port, "/");
    EXPECT_ERROR(&r, 404, "dashboard off");
    resp_free(&r);
    GET(&r, f.port, "/index.html");
    EXPECT_ERROR(&r, 404, "dashboard off, /index.html");
    resp_free(&r);
    GET(&r, f.port, "/health"); /* the rest still served */
    EXPECT_STATUS(&r, 200, "dashboard off, /health");
    resp_free(&r);
    fx_stop(&f, 1);
}

TEST(test_date_header)
{
    /* RFC 9110 6.6.1: an origin server with a clock MUST send Date in 2xx,
     * 3xx and 4xx responses, as an IMF-fixdate. */
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    static const char *const paths[] = {"/health", "/metrics", "/", "/nope"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        resp_t r;
        GET(&r, f.port, paths[i]);
        const char *d = hdr(&r, "Date");
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = d ? strptime(d, "%a, %d %b %Y %H:%M:%S GMT", &tm) : NULL;
        if (!d || !end || *end || strlen(d) != 29)
            TH_FAIL_("%s (%d): Date %s", paths[i], r.status, d ? d : "(none)");
        else if (fabs((double)timegm(&tm) - (double)time(NULL)) > 5)
            TH_FAIL_("%s: Date %s is not now", paths[i], d);
        resp_free(&r);
    }
    fx_stop(&f, 1);
}

TEST(test_not_found)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    static const char *const paths[] = {
        "/nope",     "/metrics/",        "/METRICS",   "/api/v1/",  "/api/v1",   "/api/v2/info",
        "/health/x", "/api/v1/metricsx", "/index.htm", "//metrics", "/nope?x=1",
    };
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        resp_t r;
        GET(&r, f.port, paths[i]);
        EXPECT_ERROR(&r, 404, paths[i]);
        resp_free(&r);
    }
    resp_t r;
    GET(&r, f.port, "/metrics?x=1&y"); /* unknown parameters are ignored */
    EXPECT_STATUS(&r, 200, "unknown parameters");
    resp_free(&r);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_4XX, sizeof paths / sizeof *paths);
    fx_stop(&f, 1);
}

TEST(test_head)
{
    /* HEAD on each path, then GET on the same connection: the same status
     * and headers, Content-Length that of the GET's body (exactly, where
     * the body cannot change between the two), and no body: the GET's
     * response must start right after the HEAD's headers. */
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    static const struct {
        const char *path;
        int stable; /* the body is the same from one request to the next */
    } paths[] = {
        {"/metrics", 0},
        {"/health", 0},
        {"/api/v1/info", 0},
        {"/api/v1/metrics", 0},
        {"/api/v1/alerts", 1},
        {"/api/v1/traces", 1},
        {"/", 1},
        {"/index.html", 1},
        {"/nope", 1},
    };
    static const char *const same[] = {"Content-Type",  "Content-Encoding",
                                       "Vary",          "Content-Security-Policy",
                                       "Cache-Control", "X-Content-Type-Options"};
    for (size_t i = 0; i < sizeof paths / sizeof *paths; i++) {
        conn_t c;
        REQUIRE(conn_open(&c, f.port) == 0);
        char req[512];
        snprintf(
            req, sizeof req,
            "HEAD %s HTTP/1.1\r\nHost: localhost\r\n\r\nGET %s HTTP/1.1\r\nHost: localhost\r\n\r\n",
            paths[i].path, paths[i].path);
        conn_sends(&c, req);
        resp_t h, g;
        int sh = conn_read(&c, 1, 10, &h), sg = sh == RD_OK ? conn_read(&c, 0, 10, &g) : RD_BAD;
        if (sh != RD_OK || sg != RD_OK) {
            TH_FAIL_("%s: HEAD %d then GET %d", paths[i].path, sh, sg);
        } else {
            if (h.status != g.status || h.blen != 0)
                TH_FAIL_("%s: HEAD %d (%zu body bytes), GET %d", paths[i].path, h.status, h.blen,
                         g.status);
            if (!h.has_cl || h.cl == 0 || (paths[i].stable && h.cl != g.blen))
                TH_FAIL_("%s: HEAD Content-Length %zu, GET body %zu", paths[i].path, h.cl, g.blen);
            for (size_t k = 0; k < sizeof same / sizeof *same; k++) {
                const char *a = hdr(&h, same[k]), *b = hdr(&g, same[k]);
                if ((a == NULL) != (b == NULL) || (a && strcmp(a, b) != 0))
                    TH_FAIL_("%s: %s differs: HEAD %s, GET %s", paths[i].path, same[k],
                             a ? a : "(none)", b ? b : "(none)");
            }
        }
        resp_free(&h);
        if (sh == RD_OK) resp_free(&g);
        conn_close(&c);
    }
    fx_stop(&f, 1);
}

/* ================================================================ bad requests */

TEST(test_malformed_requests)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    /* A keep-alive client that was there before, and is still served after. */
    conn_t keep;
    resp_t r;
    REQUIRE(conn_open(&keep, f.port) == 0);
    conn_sends(&keep, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&keep, 0, 10, &r), RD_OK);
    resp_free(&r);

    /* RFC 9112 2.2: a message that does not match the grammar gets 400 and
     * the connection is closed. */
    EXPECT_BAD(f.port, "\x01\x02garbage\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "hello\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health\r\n\r\n", 400, 1); /* no version */
    EXPECT_BAD(f.port, "GET\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1 extra\r\nHost: localhost\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET  /health HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, 1); /* two spaces */
    EXPECT_BAD(f.port, "GET /health  HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1 \r\nHost: localhost\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health http/1.1\r\nHost: localhost\r\n\r\n", 400,
               1); /* HTTP-name is case-sensitive */
    EXPECT_BAD(f.port, "GET /health HTTP/1.x\r\nHost: localhost\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/11\r\nHost: localhost\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET health HTTP/1.1\r\nHost: localhost\r\n\r\n", 400,
               1); /* not origin-form */
    EXPECT_BAD(f.port, "GET /hea\x01lth HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /he alth HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "G(T /health HTTP/1.1\r\nHost: localhost\r\n\r\n", 400, 1); /* not a token */
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost : localhost\r\n\r\n", 400,
               1); /* RFC 9112 5.1 */
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-A\t: 1\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nNoColon\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\n: empty\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX(A): 1\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\x01z\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\x7fz\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\0z\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\rz\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\n\r\n", 400,
               1); /* obs-fold */
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n\tb\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\n Host: localhost\r\n\r\n", 400, 1);
    /* RFC 9112 3.2: HTTP/1.1 needs exactly one Host */
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\n\r\n", 400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nHost: 127.0.0.1\r\n\r\n", 400,
               1);
    /* RFC 9112 6.3: an invalid Content-Length is unrecoverable */
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: abc\r\n\r\n",
               400, 1);
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n", 400,
               1);
    EXPECT_BAD(
        f.port,
        "GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        400, 1);
    /* versions the server does not speak: 505 */
    EXPECT_BAD(f.port, "GET /health HTTP/2.0\r\nHost: localhost\r\n\r\n", 505, 0);
    EXPECT_BAD(f.port, "GET /health HTTP/3.0\r\nHost: localhost\r\n\r\n", 505, 0);
    EXPECT_BAD(f.port, "GET /health HTTP/9.9\r\nHost: localhost\r\n\r\n", 505, 0);
    /* a later 1.x minor is answered as 1.1 (RFC 9110 2.5; doc/server.md) */
    {
        conn_t c12;
        resp_t r12;
        REQUIRE(conn_open(&c12, f.port) == 0);
        conn_sends(&c12, "GET /health HTTP/1.2\r\nHost: localhost\r\n\r\n");
        CHECK_EQ_INT(conn_read(&c12, 0, 10, &r12), RD_OK);
        CHECK_EQ_INT(r12.status, 200);
        resp_free(&r12);
        conn_close(&c12);
    }
    /* a body the server will not read: 413; a transfer coding it does not
     * implement: 501 (RFC 9112 6.1); the body cannot be skipped: closed */
    EXPECT_BAD(f.port, "GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello",
               413, 1);
    EXPECT_BAD(f.port,
               "GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000000000\r\n\r\n",
               413, 1);
    EXPECT_BAD(
        f.port,
        "GET /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        501, 1);
    EXPECT_BAD(f.port,
               "GET /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, "
               "chunked\r\n\r\n0\r\n\r\n",
               501, 1);

    /* and what is fine */
    static const char *const good[] = {
        "GET /health HTTP/1.0\r\n\r\n", /* Host is optional in HTTP/1.0 */
        "GET /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        "GET /health HTTP/1.1\r\nhOsT: localhost\r\n\r\n", /* field names are case-insensitive */
        "GET /health HTTP/1.1\r\nHost:localhost\r\nX-Empty:\r\nX-Sp:   v   \r\n\r\n",
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Utf8: caf\xc3\xa9\r\n\r\n", /* obs-text */
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Tab: a\tb\r\n\r\n",
        "GET /health?a=%20&b HTTP/1.1\r\nHost: localhost\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        EXPECT_ANSWER(f.port, good[i], strlen(good[i]), 200, NULL);
    /* RFC 9112 2.2: empty lines before the request line are ignored */
    static const char crlf_first[] = "\r\nGET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    EXPECT_ANSWER(f.port, crlf_first, sizeof crlf_first - 1, 200, "leading CRLF");

    /* the earlier client is still served */
    conn_sends(&keep, "GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&keep, 0, 10, &r), RD_OK);
    EXPECT_STATUS(&r, 200, "keep-alive client after the bad ones");
    resp_free(&r);
    conn_close(&keep);
    fx_stop(&f, 1);
}

TEST(test_methods)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    static const char *const methods[] = {"POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"};
    static const char *const paths[] = {"/metrics", "/health", "/", "/api/v1/info"};
    for (size_t m = 0; m < sizeof methods / sizeof *methods; m++)
        for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
            char what[64];
            snprintf(what, sizeof what, "%s %s", methods[m], paths[p]);
            resp_t r;
            FETCH(&r, f.port, methods[m], paths[p], NULL);
            EXPECT_ERROR(&r, 405, what);
            if (!hdr_has_token(&r, "Allow", "GET") || !hdr_has_token(&r, "Allow", "HEAD") ||
                hdr_has_token(&r, "Allow", "POST"))
                TH_FAIL_("%s: Allow \"%s\"", what, hdr(&r, "Allow") ? hdr(&r, "Allow") : "(none)");
            resp_free(&r);
        }
    /* A 405 on a well-formed request leaves the connection usable. */
    conn_t c;
    resp_t r;
    REQUIRE(conn_open(&c, f.port) == 0);
    conn_sends(&c, "DELETE /metrics HTTP/1.1\r\nHost: localhost\r\n\r\nGET /health "
                   "HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    EXPECT_ERROR(&r, 405, "pipelined DELETE");
    resp_free(&r);
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    EXPECT_STATUS(&r, 200, "GET after a 405");
    resp_free(&r);
    conn_close(&c);
    fx_stop(&f, 1);
}

TEST(test_limits)
{
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_limits(o, 256, 512, 5, 64));
    fx_t f;
    REQUIRE(fx_start(&f, o));
    char req[4096], pad[2048];
    resp_t r;
    /* The request line at exactly 256 bytes (CRLF excluded) passes, 257 is 414. */
    const char *pre = "GET /health?pad=", *post = " HTTP/1.1";
    size_t fixed = strlen(pre) + strlen(post);
    for (size_t len = 256; len <= 257; len++) {
        memset(pad, 'a', len - fixed);
        pad[len - fixed] = '\0';
        int n = snprintf(req, sizeof req, "%s%s%s\r\nHost: localhost\r\n\r\n", pre, pad, post);
        CHECK_EQ_U64(strcspn(req, "\r"), len);
        EXPECT_ANSWER(f.port, req, n, len == 256 ? 200 : 414,
                      len == 256 ? "request line at the limit" : "request line over the limit");
    }
    /* An over-long line is refused without waiting for its end (the read
     * timeout is the default 10 s; the answer must come well before). */
    memset(pad, 'a', 1000);
    pad[1000] = '\0';
    int n = snprintf(req, sizeof req, "GET /%s", pad);
    double t0 = now_s();
    EXPECT_ANSWER(f.port, req, n, 414, "unterminated long line");
    CHECK(now_s() - t0 < 5);

    /* the head after the request line: ~400 bytes pass, ~600 are 431 */
    static const struct {
        size_t pad;
        int code;
        const char *what;
    } heads[] = {{380, 200, "head under the limit"}, {600, 431, "head over the limit"}};
    for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) {
        memset(pad, 'b', heads[i].pad);
        pad[heads[i].pad] = '\0';
        n = snprintf(req, sizeof req,
                     "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Pad: %s\r\n\r\n", pad);
        EXPECT_ANSWER(f.port, req, n, heads[i].code, heads[i].what);
    }
    /* spread over many small fields, and unterminated */
    n = snprintf(req, sizeof req, "GET /health HTTP/1.1\r\nHost: localhost\r\n");
    for (int i = 0; i < 40; i++)
        n += snprintf(req + n, sizeof req - (size_t)n, "X-%02d: 0123456789\r\n", i);
    EXPECT_ANSWER(f.port, req, n, 431, "unterminated head over the limit");

    /* fields: 5 pass (Host counts), 6 are 431 */
    static const char five[] =
        "GET /health HTTP/1.1\r\nHost: localhost\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
    static const char six[] =
        "GET /health HTTP/1.1\r\nHost: localhost\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
    EXPECT_ANSWER(f.port, five, sizeof five - 1, 200, "5 fields");
    EXPECT_ANSWER(f.port, six, sizeof six - 1, 431, "6 fields");

    /* still serving */
    GET(&r, f.port, "/health");
    EXPECT_STATUS(&r, 200, "after the limits");
    resp_free(&r);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_4XX, 5);
    fx_stop(&f, 1);
}

TEST(test_auth)
{
    const char *token = "s3cr3t-._~+/AZaz09==";
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_token(o, token));
    fx_t f;
    REQUIRE(fx_start(&f, o));
    char good[128], b[64];
    snprintf(good, sizeof good, "Authorization: Bearer %s\r\n", token);
    static const char *const paths[] = {"/metrics",        "/health",        "/api/v1/info",
                                        "/api/v1/metrics", "/api/v1/alerts", "/api/v1/traces"};
    static const char *const wrong[] = {
        NULL,
        "Authorization: Bearer wrong\r\n",
        "Authorization: Bearer s3cr3t-._~+/AZaz09=\r\n",   /* a prefix */
        "Authorization: Bearer s3cr3t-._~+/AZaz09===\r\n", /* longer */
        "Authorization: Bearer S3CR3T-._~+/AZaz09==\r\n",  /* tokens are case-sensitive */
        "Authorization: Basic czNjcjN0LS5ffisvQVphejA5PT0=\r\n",
        "Authorization: Bearer\r\n",
        "Authorization: s3cr3t-._~+/AZaz09==\r\n",
        "Authorization: \r\n",
        "X-Authorization: Bearer s3cr3t-._~+/AZaz09==\r\n",
    };
    size_t unauthorized = 0;
    resp_t r;
    for (size_t p = 0; p < sizeof paths / sizeof *paths; p++) {
        for (size_t w = 0; w < sizeof wrong / sizeof *wrong; w++) {
            char what[160];
            snprintf(what, sizeof what, "%s with [%.60s]", paths[p], wrong[w] ? wrong[w] : "none");
            FETCH(&r, f.port, "GET", paths[p], wrong[w]);
            EXPECT_ERROR(&r, 401, what);
            const char *wa = hdr(&r, "WWW-Authenticate");
            if (!wa || strncasecmp(wa, "Bearer ", 7) != 0 || !strstr(wa, "realm=\"perfmetrics\""))
                TH_FAIL_("%s: WWW-Authenticate %s", what, wa ? wa : "(none)");
            unauthorized++;
            resp_free(&r);
        }
        FETCH(&r, f.port, "GET", paths[p], good);
        EXPECT_STATUS(&r, 200, paths[p]);
        resp_free(&r);
    }
    /* the auth-scheme is case-insensitive (RFC 9110 11.1) */
    char lower[128];
    snprintf(lower, sizeof lower, "Authorization: bearer %s\r\n", token);
    FETCH(&r, f.port, "GET", "/health", lower);
    EXPECT_STATUS(&r, 200, "lower-case scheme");
    resp_free(&r);
    /* HEAD is refused the same way, without a body */
    FETCH(&r, f.port, "HEAD", "/metrics", NULL);
    expect_error_(&r, 401, 1, "HEAD without token", __LINE__);
    CHECK(hdr(&r, "WWW-Authenticate") != NULL);
    resp_free(&r);
    unauthorized++;
    /* The dashboard page holds no data: served without a token. */
    GET(&r, f.port, "/");
    EXPECT_STATUS(&r, 200, "dashboard without token");
    CHECK_STR(hdr(&r, "Content-Type"), "text/html; charset=utf-8");
    resp_free(&r);
    GET(&r, f.port, "/index.html");
    EXPECT_STATUS(&r, 200, "/index.html without token");
    resp_free(&r);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_UNAUTHORIZED, unauthorized);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_SCRAPES, 1);
    /* a 401 on keep-alive does not end the connection */
    conn_t c;
    REQUIRE(conn_open(&c, f.port) == 0);
    char both[512];
    snprintf(both, sizeof both,
             "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET /health HTTP/1.1\r\nHost: "
             "localhost\r\n%s\r\n",
             good);
    conn_sends(&c, both);
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    EXPECT_ERROR(&r, 401, "keep-alive 401");
    resp_free(&r);
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    EXPECT_STATUS(&r, 200, "after a 401");
    CHECK_STR(jstr(r.text, "status", b, sizeof b), "healthy");
    resp_free(&r);
    conn_close(&c);
    fx_stop(&f, 1);
}

/* ================================================================ connections */

TEST(test_keep_alive_and_pipelining)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    conn_t c;
    resp_t r;
    char b[64];
    REQUIRE(conn_open(&c, f.port) == 0);
    static const char *const seq[] = {"/health", "/metrics", "/api/v1/info", "/nope", "/"};
    for (size_t i = 0; i < sizeof seq / sizeof *seq; i++) {
        char req[128];
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", seq[i]);
        conn_sends(&c, req);
        CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
        EXPECT_STATUS(&r, strcmp(seq[i], "/nope") ? 200 : 404, seq[i]);
        CHECK(!hdr_has_token(&r, "Connection", "close"));
        resp_free(&r);
    }
    CHECK(!c.eof);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_CONNECTIONS, 1);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_REQUESTS, 5);

    /* Pipelining: three requests in one write, answered in order. */
    conn_sends(&c, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n"
                   "HEAD /api/v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n"
                   "GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    CHECK(jstr(r.text, "status", b, sizeof b) != NULL); /* /health's body */
    resp_free(&r);
    CHECK_EQ_INT(conn_read(&c, 1, 10, &r), RD_OK);
    EXPECT_STATUS(&r, 200, "pipelined HEAD");
    resp_free(&r);
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    CHECK_STR(jstr(r.text, "title", b, sizeof b), "libperfmetrics");
    resp_free(&r);
    /* Pipelining across writes: a request split mid-way, the next glued to it. */
    conn_sends(&c, "GET /heal");
    nap(0.05);
    conn_sends(&c, "th HTTP/1.1\r\nHost: localhost\r\n\r\nGET /api/v1/alerts HTTP/1.1\r\nHo");
    nap(0.05);
    conn_sends(&c, "st: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    CHECK(jstr(r.text, "status", b, sizeof b) != NULL);
    resp_free(&r);
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    CHECK_EQ_DBL(jnum(r.text, "health_score"), 100);
    CHECK_EQ_INT(jcount(r.text, "active"), 0);
    resp_free(&r);
    /* Many at once: 50 pipelined requests, 50 responses, none lost. */
    char many[50 * 64];
    size_t n = 0;
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(many + n, sizeof many - n,
                              "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn_send(&c, many, n);
    int ok = 0;
    for (int i = 0; i < 50; i++) {
        if (conn_read(&c, 0, 10, &r) == RD_OK && r.status == 200) ok++;
        resp_free(&r);
    }
    CHECK_EQ_INT(ok, 50);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_CONNECTIONS, 1);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_REQUESTS, 5 + 3 + 2 + 50);
    conn_close(&c);
    fx_stop(&f, 1);
}

TEST(test_connection_close_and_http10)
{
    fx_t f;
    REQUIRE(fx_start(&f, NULL));
    conn_t c;
    resp_t r;
    /* Answered, then closed with nothing more sent: HTTP/1.1 with
     * Connection: close (a request pipelined after it is not answered; the
     * connection options are case-insensitive tokens in a list), and
     * HTTP/1.0 without keep-alive. */
    static const struct {
        const char *what, *req;
        const char *token; /* in the response's Connection field... */
        int has;           /* ...or not */
    } closing[] = {
        {"Connection: close",
         "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
         "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n",
         "close", 1},
        {"Connection: foo, CLOSE",
         "GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: foo, CLOSE\r\n\r\n", "close", 1},
        {"HTTP/1.0", "GET /health HTTP/1.0\r\n\r\n", "keep-alive", 0},
    };
    for (size_t i = 0; i < sizeof closing / sizeof *closing; i++) {
        REQUIRE(conn_open(&c, f.port) == 0);
        conn_sends(&c, closing[i].req);
        if (conn_read(&c, 0, 10, &r) != RD_OK) {
            TH_FAIL_("%s: no response", closing[i].what);
        } else {
            EXPECT_STATUS(&r, 200, closing[i].what);
            if (hdr_has_token(&r, "Connection", closing[i].token) != closing[i].has)
                TH_FAIL_("%s: Connection \"%s\"", closing[i].what,
                         hdr(&r, "Connection") ? hdr(&r, "Connection") : "(none)");
            if (!conn_wait_eof(&c, 5))
                TH_FAIL_("%s: still open 5 s after the response", closing[i].what);
            else if (c.len)
                TH_FAIL_("%s: %zu bytes after the response: %.80s", closing[i].what, c.len, c.buf);
        }
        resp_free(&r);
        conn_close(&c);
    }
    /* HTTP/1.0 asking for keep-alive stays open, which the response confirms. */
    REQUIRE(conn_open(&c, f.port) == 0);
    conn_sends(&c, "GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    EXPECT_STATUS(&r, 200, "HTTP/1.0 keep-alive");
    CHECK(hdr_has_token(&r, "Connection", "keep-alive"));
    resp_free(&r);
    conn_sends(&c, "GET /api/v1/info HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    EXPECT_STATUS(&r, 200, "HTTP/1.0 keep-alive, second request");
    resp_free(&r);
    conn_sends(&c, "GET /health HTTP/1.0\r\n\r\n"); /* the last one */
    CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
    resp_free(&r);
    CHECK(conn_wait_eof(&c, 5));
    conn_close(&c);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 0);
    fx_stop(&f, 1);
}

TEST(test_slow_client)
{
    /* One event-loop thread, read timeout 0.5 s: a client that sends half a
     * request and stalls does not hold up another, which is answered while
     * the slow one still waits; the slow one gets 408 no sooner than the
     * timeout and is closed. A client trickling one byte every 50 ms gets
     * 408 as well: the timeout runs from the first byte, not between bytes. */
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_threads(o, 1));
    CHECK_OK(pm_server_opts_set_timeouts(o, 0.5, 5, 30));
    fx_t f;
    REQUIRE(fx_start(&f, o));
    conn_t slow, drip;
    resp_t r;
    REQUIRE(conn_open(&slow, f.port) == 0);
    double t0 = now_s();
    conn_sends(&slow, "GET /health HTTP/1.1\r\nHost: localhost\r\n");
    GET(&r, f.port, "/health");
    double t_other = now_s() - t0;
    EXPECT_STATUS(&r, 200, "the other client");
    resp_free(&r);
    struct pollfd p = {slow.fd, POLLIN, 0};
    CHECK_EQ_INT(poll(&p, 1, 0), 0); /* the slow one has had nothing yet */
    CHECK(t_other < 0.5);
    CHECK_EQ_INT(conn_read(&slow, 0, 10, &r), RD_OK);
    double t_slow = now_s() - t0;
    EXPECT_ERROR(&r, 408, "stalled request");
    CHECK(t_slow >= 0.5 - 0.01 && t_slow < 5);
    resp_free(&r);
    CHECK(conn_wait_eof(&slow, 5));
    conn_close(&slow);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_TIMEOUTS, 1);

    REQUIRE(conn_open(&drip, f.port) == 0);
    const char *req = "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Long: "
                      "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    t0 = now_s();
    for (size_t i = 0;
         req[i] && !drip.eof && !memmem(drip.buf ? drip.buf : "", drip.len, "\r\n\r\n", 4); i++) {
        if (conn_send(&drip, req + i, 1) != 0) break;
        conn_fill(&drip, now_s() + 0.05);
    }
    double t_drip = now_s() - t0;
    CHECK_EQ_INT(conn_read(&drip, 0, 5, &r), RD_OK);
    EXPECT_ERROR(&r, 408, "trickled request");
    CHECK(t_drip >= 0.5 - 0.01 && t_drip < 2.5);
    resp_free(&r);
    CHECK(conn_wait_eof(&drip, 5));
    conn_close(&drip);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_TIMEOUTS, 2);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 0);
    printf("  other client answered after %.1f ms; 408 after %.3f s (stalled), %.3f s (trickle)\n",
           t_other * 1e3, t_slow, t_drip);
    fx_stop(&f, 1);
}

TEST(test_idle_timeout)
{
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_timeouts(o, 5, 5, 0.3));
    fx_t f;
    REQUIRE(fx_start(&f, o));
    conn_t c;
    resp_t r;
    /* Requests 0.1 s apart keep the connection alive past 0.3 s in total. */
    REQUIRE(conn_open(&c, f.port) == 0);
    double t0 = now_s();
    for (int i = 0; i < 6; i++) {
        conn_sends(&c, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
        if (conn_read(&c, 0, 5, &r) != RD_OK || r.status != 200)
            TH_FAIL_("request %d on a busy keep-alive connection failed", i);
        resp_free(&r);
        if (i < 5) nap(0.1);
    }
    CHECK(now_s() - t0 > 0.4);
    /* Then idle: closed after 0.3 s. */
    t0 = now_s();
    CHECK(conn_wait_eof(&c, 5));
    double idle = now_s() - t0;
    CHECK(idle >= 0.2 && idle < 5);
    conn_close(&c);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_TIMEOUTS, 1);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 0);
    /* A connection that never sends anything is closed as well. */
    REQUIRE(conn_open(&c, f.port) == 0);
    CHECK(conn_wait_eof(&c, 10));
    conn_close(&c);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 0);
    printf("  idle keep-alive connection closed after %.3f s (idle timeout 0.3 s)\n", idle);
    fx_stop(&f, 1);
}

TEST(test_write_timeout)
{
    /* A client that asks for a large /metrics and never reads: closed after
     * the write timeout, while others are served meanwhile. */
    pm_registry_t *reg = app_registry();
    REQUIRE(reg);
    /* ~9 MB of text: more than the loopback socket buffers on both sides
     * hold (the client's receive buffer is made small, too). */
    pm_family_t *big = job_gauge_n(reg, "big", 100000);
    REQUIRE(big);
    char pad[121], v[160];
    memset(pad, 'p', 120);
    pad[120] = '\0';
    for (int i = 0; i < 60000; i++) {
        snprintf(v, sizeof v, "%05d-%s", i, pad);
        set_job(big, v, i);
    }
    CHECK_EQ_U64(pm_family_series_count(big), 60000);
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_timeouts(o, 5, 0.3, 30));
    CHECK_OK(pm_server_opts_set_gzip(o, 0));
    fx_t f;
    REQUIRE(fx_start_on(&f, reg, o));
    conn_t stuck;
    REQUIRE(conn_open_rcvbuf(&stuck, f.port, 4096) == 0);
    REQUIRE(conn_sends(&stuck, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n") == 0);
    resp_t r;
    GET(&r, f.port, "/health");
    EXPECT_STATUS(&r, 200, "while another client is stuck");
    resp_free(&r);
    double t0 = now_s();
    EXPECT_STAT(f.srv, PM_SERVER_STAT_TIMEOUTS, 1);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 0);
    printf("  stuck reader closed %.3f s after the check began (write timeout 0.3 s)\n",
           now_s() - t0);
    conn_close(&stuck);
    fx_stop(&f, 1);
}

TEST(test_connection_cap)
{
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_limits(o, 8192, 16384, 100, 2));
    fx_t f;
    REQUIRE(fx_start(&f, o));
    conn_t c1, c2, c3, c4;
    resp_t r;
    REQUIRE(conn_open(&c1, f.port) == 0 && conn_open(&c2, f.port) == 0);
    conn_sends(&c1, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    conn_sends(&c2, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c1, 0, 10, &r), RD_OK);
    resp_free(&r);
    CHECK_EQ_INT(conn_read(&c2, 0, 10, &r), RD_OK);
    resp_free(&r);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 2);
    /* the third gets 503 and is closed */
    REQUIRE(conn_open(&c3, f.port) == 0);
    conn_sends(&c3, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c3, 0, 10, &r), RD_OK);
    EXPECT_ERROR(&r, 503, "third connection");
    resp_free(&r);
    CHECK(conn_wait_eof(&c3, 5));
    conn_close(&c3);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_REJECTED, 1);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 2);
    /* the two admitted ones are unaffected */
    conn_sends(&c2, "GET /api/v1/info HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c2, 0, 10, &r), RD_OK);
    EXPECT_STATUS(&r, 200, "admitted connection after a refusal");
    resp_free(&r);
    /* closing one frees a place */
    conn_close(&c1);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 1);
    REQUIRE(conn_open(&c4, f.port) == 0);
    conn_sends(&c4, "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    CHECK_EQ_INT(conn_read(&c4, 0, 10, &r), RD_OK);
    EXPECT_STATUS(&r, 200, "after a place was freed");
    resp_free(&r);
    conn_close(&c4);
    conn_close(&c2);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 0);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_REJECTED, 1);
    /* c1, c2, c4: a connection refused at the cap is counted in REJECTED only */
    EXPECT_STAT(f.srv, PM_SERVER_STAT_CONNECTIONS, 3);
    fx_stop(&f, 1);
}

TEST(test_stats_exact)
{
    const char *auth = "Authorization: Bearer tok\r\n";
    pm_server_opts_t *o = local_opts();
    REQUIRE(o);
    CHECK_OK(pm_server_opts_set_token(o, "tok"));
    fx_t f;
    REQUIRE(fx_start(&f, o));
    for (int w = 1; w <= 12; w++)
        if (w != PM_SERVER_STAT_OPEN && pm_server_stat(f.srv, (pm_server_stat_t)w) != 0)
            TH_FAIL_("stat %d is %llu before any request", w,
                     (unsigned long long)pm_server_stat(f.srv, (pm_server_stat_t)w));
    g_sent = g_got = 0;
    resp_t r;
    /* eight connections, eleven requests: seven alone... */
    static const struct {
        const char *method, *path;
        int auth, code;
    } alone[] = {
        {"GET", "/metrics", 1, 200},     /* a scrape */
        {"GET", "/metrics", 1, 200},     /* a scrape */
        {"HEAD", "/health", 1, 200},     /* no body */
        {"GET", "/api/v1/info", 1, 200}, /* JSON */
        {"GET", "/nope", 1, 404},        /* 4xx */
        {"GET", "/metrics", 0, 401},     /* 4xx and unauthorized: not a scrape */
        {"POST", "/metrics", 1, 405},    /* 4xx */
    };
    for (size_t i = 0; i < sizeof alone / sizeof *alone; i++) {
        char what[64];
        snprintf(what, sizeof what, "%s %s%s", alone[i].method, alone[i].path,
                 alone[i].auth ? "" : " without the token");
        const char *extra = alone[i].auth ? auth : NULL;
        if (fetch_(f.port, alone[i].method, alone[i].path, extra, &r) != RD_OK)
            TH_FAIL_("%s: no response", what);
        else
            EXPECT_STATUS(&r, alone[i].code, what);
        resp_free(&r);
    }
    /* ...and four on one connection: 200, 200, 401, 505 (which closes) */
    conn_t c;
    REQUIRE(conn_open(&c, f.port) == 0);
    char req[1024];
    snprintf(
        req, sizeof req,
        "GET /health HTTP/1.1\r\nHost: localhost\r\n%s\r\nGET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\nGET /health HTTP/2.0\r\nHost: "
        "localhost\r\n%s\r\n",
        auth, auth);
    conn_sends(&c, req);
    static const int want[] = {200, 200, 401, 505};
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(conn_read(&c, 0, 10, &r), RD_OK);
        CHECK_EQ_INT(r.status, want[i]);
        resp_free(&r);
    }
    conn_wait_eof(&c, 5);
    g_sent += c.sent;
    g_got += c.got;
    conn_close(&c);

    EXPECT_STAT(f.srv, PM_SERVER_STAT_CONNECTIONS, 8);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_REQUESTS, 11);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_2XX, 6);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_4XX, 4);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_5XX, 1);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_SCRAPES, 2);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_UNAUTHORIZED, 2);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_REJECTED, 0);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_TIMEOUTS, 0);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_OPEN, 0);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_BYTES_IN, g_sent);
    EXPECT_STAT(f.srv, PM_SERVER_STAT_BYTES_OUT, g_got);
    printf("  %zu bytes in, %zu bytes out over 8 connections\n", g_sent, g_got);
    fx_stop(&f, 1);
}

TEST_MAIN(TH_CASE(test_json_validator), TH_CASE(test_opts_bad_inputs),
          TH_CASE(test_opts_usable_after_errors), TH_CASE(test_new_free_null),
          TH_CASE(test_port_in_use), TH_CASE(test_url), TH_CASE(test_metrics_negotiation),
          TH_CASE(test_metrics_gzip), TH_CASE(test_self_metrics), TH_CASE(test_host_check),
          TH_CASE(test_health_plain), TH_CASE(test_health_alerts), TH_CASE(test_info),
          TH_CASE(test_api_metrics), TH_CASE(test_api_alerts), TH_CASE(test_api_traces),
          TH_CASE(test_api_traces_without_tracer), TH_CASE(test_dashboard),
          TH_CASE(test_date_header), TH_CASE(test_not_found), TH_CASE(test_head),
          TH_CASE(test_malformed_requests), TH_CASE(test_methods), TH_CASE(test_limits),
          TH_CASE(test_auth), TH_CASE(test_keep_alive_and_pipelining),
          TH_CASE(test_connection_close_and_http10), TH_CASE(test_slow_client),
          TH_CASE(test_idle_timeout), TH_CASE(test_write_timeout), TH_CASE(test_connection_cap),
          TH_CASE(test_stats_exact))
