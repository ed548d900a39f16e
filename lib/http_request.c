/* HTTP/1.1 request heads (RFC 9112) and the header fields the server reads:
 * Accept, Accept-Encoding, Authorization, Connection, Content-Length,
 * Transfer-Encoding and Host. Strict where leniency would let two parsers
 * disagree about where a request ends (bare CR, obs-fold, whitespace before
 * a colon, conflicting lengths), lenient where it cannot (bare LF line ends,
 * leading blank lines). */
#include "internal/http_internal.h"

#include <string.h>

/* tchar (RFC 9110 5.6.2). */
static int is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9') return 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

int pm__http_ieq(const char *s, size_t n, const char *lit)
{
    size_t i = 0;
    for (; i < n && lit[i]; i++) {
        unsigned char a = (unsigned char)s[i], b = (unsigned char)lit[i];
        if (a >= 'A' && a <= 'Z') a = (unsigned char)(a | 0x20);
        if (b >= 'A' && b <= 'Z') b = (unsigned char)(b | 0x20);
        if (a != b) return 0;
    }
    return i == n && !lit[i];
}

/* Finds the end of the line starting at p (bounded by end): returns the
 * length of its content and sets *eol_len to 2 (CRLF) or 1 (LF); returns
 * -1 when no line end is there yet and -2 on a CR not followed by LF. */
static long line_end(const char *p, const char *end, size_t *eol_len)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    const char *cr = memchr(p, '\r', (size_t)((lf ? lf : end) - p));
    if (cr) {
        if (cr + 1 == end) return -1; /* the LF may still come */
        if (cr[1] != '\n') return -2;
        *eol_len = 2;
        return cr - p;
    }
    if (!lf) return -1;
    *eol_len = 1;
    return lf - p;
}

static int parse_request_line(const char *p, size_t n, pm__http_request_t *req)
{
    const char *end = p + n, *sp1 = memchr(p, ' ', n);
    if (!sp1 || sp1 == p) return -400;
    for (const char *q = p; q < sp1; q++)
        if (!is_tchar((unsigned char)*q)) return -400;
    const char *t = sp1 + 1, *sp2 = memchr(t, ' ', (size_t)(end - t));
    if (!sp2 || sp2 == t) return -400;
    for (const char *q = t; q < sp2; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f) return -400;
    const char *v = sp2 + 1;
    size_t vn = (size_t)(end - v);
    /* HTTP-version = "HTTP/" DIGIT "." DIGIT, case-sensitive. */
    if (vn != 8 || memcmp(v, "HTTP/", 5) || v[5] < '0' || v[5] > '9' || v[6] != '.' || v[7] < '0' ||
        v[7] > '9')
        return -400;
    if (v[5] != '1') return -505;
    /* A later 1.x is answered as 1.1 (RFC 9110 2.5). */
    req->minor = v[7] == '0' ? 0 : 1;
    req->method_text = p;
    req->method_len = (size_t)(sp1 - p);
    req->method = req->method_len == 3 && !memcmp(p, "GET", 3)    ? PM__HTTP_GET
                  : req->method_len == 4 && !memcmp(p, "HEAD", 4) ? PM__HTTP_HEAD
                                                                  : PM__HTTP_OTHER;
    req->target = t;
    req->target_len = (size_t)(sp2 - t);
    const char *path = t, *tend = sp2;
    /* absolute-form (RFC 9112 3.2.2): keep the path of http://authority/path. */
    if (req->target_len > 7 && pm__http_ieq(t, 7, "http://")) {
        const char *slash = memchr(t + 7, '/', (size_t)(tend - t - 7));
        path = slash ? slash : tend;
    } else if (*t != '/') {
        /* asterisk-form and authority-form belong to OPTIONS and CONNECT,
         * which are answered 405; anything else is not a request target. */
        if (req->method == PM__HTTP_OTHER) {
            req->path = t;
            req->path_len = req->target_len;
            return 0;
        }
        return -400;
    }
    const char *qm = memchr(path, '?', (size_t)(tend - path));
    const char *frag = memchr(path, '#', (size_t)(tend - path));
    if (frag) return -400; /* a fragment is never sent (RFC 9110 4.2.4) */
    req->path = path == tend ? "/" : path;
    req->path_len = path == tend ? 1 : (size_t)((qm ? qm : tend) - path);
    req->query = qm ? qm + 1 : NULL;
    req->query_len = qm ? (size_t)(tend - qm - 1) : 0;
    return 0;
}

/* Parses a Content-Length value: 1*DIGIT, at most 18 digits. */
static int64_t parse_length(const char *v, size_t n)
{
    if (!n || n > 18) return -1;
    int64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] < '0' || v[i] > '9') return -1;
        x = x * 10 + (v[i] - '0');
    }
    return x;
}

/* Calls fn for each comma-separated, OWS-trimmed, non-empty element of the
 * value of every field called `name`; stops when fn returns non-zero. */
static void for_each_element(const pm__http_request_t *req, const char *name,
                             int (*fn)(const char *e, size_t n, void *user), void *user)
{
    for (size_t i = 0; i < req->nfields; i++) {
        const pm__http_field_t *f = &req->fields[i];
        if (!pm__http_ieq(f->name, f->name_len, name)) continue;
        const char *p = f->value, *end = f->value + f->value_len;
        while (p < end) {
            const char *c = memchr(p, ',', (size_t)(end - p));
            const char *e = c ? c : end, *s = p;
            while (s < e && (*s == ' ' || *s == '\t')) s++;
            const char *t = e;
            while (t > s && (t[-1] == ' ' || t[-1] == '\t')) t--;
            if (t > s && fn(s, (size_t)(t - s), user)) return;
            p = c ? c + 1 : end;
        }
    }
}

static int connection_token(const char *e, size_t n, void *user)
{
    int *ka = user;
    if (pm__http_ieq(e, n, "close")) {
        *ka = 0;
        return 1; /* close wins over anything else */
    }
    if (pm__http_ieq(e, n, "keep-alive")) *ka = 1;
    return 0;
}

static int parse_field(const char *p, size_t n, pm__http_request_t *req)
{
    const char *colon = memchr(p, ':', n);
    if (!colon || colon == p) return -400;
    for (const char *q = p; q < colon; q++)
        if (!is_tchar((unsigned char)*q)) return -400; /* also whitespace before ':' */
    const char *v = colon + 1, *end = p + n;
    for (const char *q = v; q < end; q++) {
        unsigned char c = (unsigned char)*q;
        if ((c < 0x20 && c != '\t') || c == 0x7f) return -400;
    }
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t')) end--;
    pm__http_field_t *f = &req->fields[req->nfields++];
    f->name = p;
    f->name_len = (size_t)(colon - p);
    f->value = v;
    f->value_len = (size_t)(end - v);
    if (pm__http_ieq(f->name, f->name_len, "content-length")) {
        int64_t x = parse_length(f->value, f->value_len);
        if (x < 0 || (req->content_length >= 0 && req->content_length != x)) return -400;
        req->content_length = x;
    } else if (pm__http_ieq(f->name, f->name_len, "transfer-encoding")) {
        req->transfer_encoding = 1;
    } else if (pm__http_ieq(f->name, f->name_len, "host")) {
        if (++req->host_count > 1) return -400; /* RFC 9112 3.2 */
    }
    return 0;
}

/* The header section from p (after the start line of the message at buf)
 * to its blank line: the head length, 0 when more bytes are needed, or minus
 * an HTTP status. Shared by requests and responses. */
static int parse_fields(const char *buf, const char *p, const char *end,
                        const pm__http_limits_t *lim, pm__http_request_t *req)
{
    const char *head = p;
    size_t eol = 0;
    long n;
    int st;
    for (;;) {
        size_t used = (size_t)(p - head);
        if (used > lim->max_head) return -431;
        const char *lim_end = end;
        if ((size_t)(end - head) > lim->max_head + 2) lim_end = head + lim->max_head + 2;
        n = line_end(p, lim_end, &eol);
        if (n == -2) return -400;
        if (n < 0) return (size_t)(end - head) > lim->max_head ? -431 : 0;
        if (used + (size_t)n + eol > lim->max_head) return -431;
        if (n == 0) {
            p += eol;
            break;
        }
        if (*p == ' ' || *p == '\t') return -400; /* obs-fold (RFC 9112 5.2) */
        if (req->nfields == lim->max_headers) return -431;
        if ((st = parse_field(p, (size_t)n, req))) return st;
        p += n + eol;
    }
    req->head_len = (size_t)(p - buf);
    int ka = req->minor == 1;
    for_each_element(req, "connection", connection_token, &ka);
    req->keep_alive = ka;
    return (int)req->head_len;
}

int pm__http_parse(const char *buf, size_t len, const pm__http_limits_t *lim,
                   pm__http_request_t *req)
{
    pm__http_field_t *fields = req->fields;
    memset(req, 0, sizeof *req);
    req->fields = fields;
    req->content_length = -1;
    const char *p = buf, *end = buf + len;
    /* Skip blank lines before the request line, a bounded number of them. */
    for (int i = 0; i < 4 && p < end; i++) {
        if (*p == '\n')
            p++;
        else if (*p == '\r' && p + 1 < end && p[1] == '\n')
            p += 2;
        else
            break;
    }
    size_t eol = 0;
    size_t avail = (size_t)(end - p);
    long n = line_end(p, avail > lim->max_line + 2 ? p + lim->max_line + 2 : end, &eol);
    if (n == -2) return -400;
    if (n < 0) return avail > lim->max_line + 1 ? -414 : 0;
    if ((size_t)n > lim->max_line) return -414;
    int st = parse_request_line(p, (size_t)n, req);
    if (st) return st;
    p += n + eol;
    return parse_fields(buf, p, end, lim, req);
}

/* Status line (RFC 9112 4): HTTP/1.x SP 3DIGIT SP reason-phrase, the reason
 * possibly empty (its SP too, as some servers send it). */
static int parse_status_line(const char *p, size_t n, pm__http_request_t *head, int *status)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0) return -400;
    if (p[7] < '0' || p[7] > '9' || p[8] != ' ') return -400;
    head->minor = p[7] == '0' ? 0 : 1;
    int code = 0;
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9') return -400;
        code = code * 10 + (p[i] - '0');
    }
    if (code < 100) return -400;
    if (n > 12 && p[12] != ' ') return -400;
    for (size_t i = 13; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f) return -400;
    }
    *status = code;
    return 0;
}

int pm__http_parse_response(const char *buf, size_t len, const pm__http_limits_t *lim,
                            pm__http_request_t *head, int *status)
{
    pm__http_field_t *fields = head->fields;
    memset(head, 0, sizeof *head);
    head->fields = fields;
    head->content_length = -1;
    *status = 0;
    const char *p = buf, *end = buf + len;
    size_t eol = 0;
    long n = line_end(p, len > lim->max_line + 2 ? p + lim->max_line + 2 : end, &eol);
    if (n == -2) return -400;
    if (n < 0) return len > lim->max_line + 1 ? -414 : 0;
    if ((size_t)n > lim->max_line) return -414;
    int st = parse_status_line(p, (size_t)n, head, status);
    if (st) {
        *status = 0;
        return st;
    }
    st = parse_fields(buf, p + n + eol, end, lim, head);
    if (st <= 0) *status = 0;
    return st;
}

const pm__http_field_t *pm__http_field(const pm__http_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->nfields; i++)
        if (pm__http_ieq(req->fields[i].name, req->fields[i].name_len, name))
            return &req->fields[i];
    return NULL;
}

/* ---------------------------------------------------------------- negotiation */

/* Reads a q value ("q=0.5"): 0..1000 in thousandths; -1 when malformed. */
static int parse_q(const char *v, size_t n)
{
    if (!n || n > 5 || (v[0] != '0' && v[0] != '1')) return -1;
    int q = (v[0] - '0') * 1000;
    if (n == 1) return q;
    if (v[1] != '.') return -1;
    int scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (v[i] < '0' || v[i] > '9') return -1;
        q += (v[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* Splits one element "type/subtype;p=v;..." into its media range and the
 * q and version parameters. Returns 0 when malformed. */
static int media_range(const char *e, size_t n, const char **type, size_t *type_len, int *q,
                       const char **version, size_t *version_len)
{
    const char *end = e + n, *semi = memchr(e, ';', n);
    const char *t_end = semi ? semi : end;
    while (t_end > e && (t_end[-1] == ' ' || t_end[-1] == '\t')) t_end--;
    *type = e;
    *type_len = (size_t)(t_end - e);
    *q = 1000;
    *version = NULL;
    *version_len = 0;
    const char *p = semi;
    while (p && p < end) {
        p++;
        const char *next = memchr(p, ';', (size_t)(end - p));
        const char *pe = next ? next : end;
        while (p < pe && (*p == ' ' || *p == '\t')) p++;
        const char *eq = memchr(p, '=', (size_t)(pe - p));
        if (eq) {
            const char *v = eq + 1, *ve = pe;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            if (v < ve && *v == '"' && ve[-1] == '"' && ve - v >= 2) v++, ve--;
            if (pm__http_ieq(p, (size_t)(eq - p), "q")) {
                if ((*q = parse_q(v, (size_t)(ve - v))) < 0) return 0;
            } else if (pm__http_ieq(p, (size_t)(eq - p), "version")) {
                *version = v;
                *version_len = (size_t)(ve - v);
            }
        }
        p = next;
    }
    return *type_len > 0;
}

struct accept_best {
    int om_q, prom_q; /* best q seen for each format, -1 if none */
};

static int accept_element(const char *e, size_t n, void *user)
{
    struct accept_best *b = user;
    const char *type, *ver;
    size_t tn, vn;
    int q;
    if (!media_range(e, n, &type, &tn, &q, &ver, &vn)) return 0;
    if (pm__http_ieq(type, tn, "application/openmetrics-text")) {
        if (!ver || pm__http_ieq(ver, vn, "1.0.0"))
            if (q > b->om_q) b->om_q = q;
    } else if (pm__http_ieq(type, tn, "text/plain")) {
        if (!ver || pm__http_ieq(ver, vn, "0.0.4"))
            if (q > b->prom_q) b->prom_q = q;
    } else if (pm__http_ieq(type, tn, "text/*") || pm__http_ieq(type, tn, "*/*")) {
        if (q > b->prom_q) b->prom_q = q;
    }
    return 0;
}

pm_format_t pm__http_accept_format(const pm__http_request_t *req)
{
    struct accept_best b = {-1, -1};
    for_each_element(req, "accept", accept_element, &b);
    if (b.om_q > 0 && b.om_q >= b.prom_q) return PM_FORMAT_OPENMETRICS;
    return PM_FORMAT_PROMETHEUS;
}

struct gzip_seen {
    int gzip_q, star_q; /* -1: not listed */
};

static int encoding_element(const char *e, size_t n, void *user)
{
    struct gzip_seen *g = user;
    const char *type, *ver;
    size_t tn, vn;
    int q;
    if (!media_range(e, n, &type, &tn, &q, &ver, &vn)) return 0;
    if (pm__http_ieq(type, tn, "gzip") || pm__http_ieq(type, tn, "x-gzip")) {
        if (q > g->gzip_q) g->gzip_q = q;
    } else if (pm__http_ieq(type, tn, "*")) {
        if (q > g->star_q) g->star_q = q;
    }
    return 0;
}

int pm__http_accepts_gzip(const pm__http_request_t *req)
{
    struct gzip_seen g = {-1, -1};
    for_each_element(req, "accept-encoding", encoding_element, &g);
    return g.gzip_q >= 0 ? g.gzip_q > 0 : g.star_q > 0;
}

/* ---------------------------------------------------------------- authorization */

int pm__http_bearer_ok(const pm__http_request_t *req, const char *token, size_t token_len)
{
    const pm__http_field_t *f = pm__http_field(req, "authorization");
    if (!f || f->value_len < 7 || !pm__http_ieq(f->value, 6, "bearer") ||
        (f->value[6] != ' ' && f->value[6] != '\t'))
        return 0;
    const char *v = f->value + 7, *end = f->value + f->value_len;
    while (v < end && (*v == ' ' || *v == '\t')) v++;
    size_t n = (size_t)(end - v);
    /* Every byte of the expected token is looked at whatever the input: the
     * time depends on the two lengths only, never on where they differ. */
    volatile unsigned char diff = (unsigned char)(n != token_len);
    for (size_t i = 0; i < token_len; i++) {
        unsigned char c = i < n ? (unsigned char)v[i] : 0;
        diff = (unsigned char)(diff | (c ^ (unsigned char)token[i]));
    }
    return diff == 0;
}

/* ---------------------------------------------------------------- host */

static int is_ipv4_loopback(const char *h, size_t n)
{
    /* 127.d.d.d with 1-3 digit parts <= 255 */
    if (n < 9 || memcmp(h, "127.", 4)) return 0;
    int parts = 2, digits = 0, val = 0; /* "127" and the one being read */
    for (size_t i = 4; i < n; i++) {
        if (h[i] == '.') {
            if (!digits) return 0;
            parts++, digits = 0, val = 0;
        } else if (h[i] >= '0' && h[i] <= '9') {
            val = val * 10 + (h[i] - '0');
            if (++digits > 3 || val > 255) return 0;
        } else {
            return 0;
        }
    }
    return parts == 4 && digits > 0;
}

int pm__http_host_is_local(const pm__http_request_t *req)
{
    const pm__http_field_t *f = pm__http_field(req, "host");
    if (!f || !f->value_len) return 0;
    const char *h = f->value;
    size_t n = f->value_len;
    if (h[0] == '[') {
        const char *rb = memchr(h, ']', n);
        if (!rb) return 0;
        size_t hn = (size_t)(rb - h - 1);
        /* ::1 in its usual spellings */
        if (!(pm__http_ieq(h + 1, hn, "::1") || pm__http_ieq(h + 1, hn, "0:0:0:0:0:0:0:1")))
            return 0;
        h = rb + 1;
        n = (size_t)(f->value + f->value_len - h);
        if (n == 0) return 1;
        if (*h != ':') return 0;
        for (size_t i = 1; i < n; i++)
            if (h[i] < '0' || h[i] > '9') return 0;
        return 1;
    }
    const char *colon = memchr(h, ':', n);
    size_t hn = colon ? (size_t)(colon - h) : n;
    if (colon)
        for (const char *p = colon + 1; p < h + n; p++)
            if (*p < '0' || *p > '9') return 0;
    if (pm__http_ieq(h, hn, "localhost")) return 1;
    if (hn > 10 && pm__http_ieq(h + hn - 10, 10, ".localhost")) return 1; /* RFC 6761 */
    return is_ipv4_loopback(h, hn);
}

/* ---------------------------------------------------------------- query strings */

int pm__query_next(const char *q, size_t qlen, size_t *pos, const char **name, size_t *name_len,
                   const char **value, size_t *value_len)
{
    while (q && *pos < qlen) {
        const char *p = q + *pos, *end = q + qlen;
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *e = amp ? amp : end;
        *pos = (size_t)(e - q) + (amp ? 1 : 0);
        if (e == p) continue;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        *name = p;
        *name_len = (size_t)((eq ? eq : e) - p);
        *value = eq ? eq + 1 : e;
        *value_len = eq ? (size_t)(e - eq - 1) : 0;
        return 1;
    }
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c = (char)(c | 0x20);
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
}

long pm__query_decode(const char *src, size_t len, char *dst, size_t size)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            int hi, lo;
            if (i + 2 >= len) return -1;
            if ((hi = hexval(src[i + 1])) < 0 || (lo = hexval(src[i + 2])) < 0) return -1;
            c = hi * 16 + lo;
            i += 2;
            if (!c) return -1;
        }
        if (o + 1 >= size) return -1;
        dst[o++] = (char)c;
    }
    dst[o] = '\0';
    return (long)o;
}

/* ---------------------------------------------------------------- reasons */

const char *pm__http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 421:
        return "Misdirected Request";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Unknown";
    }
}
