/* The push engine's HTTP/1.1 client: URLs, connecting with a timeout
 * (non-blocking connect + poll), sending, and reading one response framed by
 * Content-Length, chunked coding or the close. Response heads go through the
 * embedded server's parser (pm__http_parse_response in lib/http_request.c),
 * so requests and responses share one set of header rules. Only the sender
 * thread of a destination calls into it. */
#include "internal/http_client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_RESPONSE ((size_t)1 << 20)
#define READ_CHUNK 16384u

static const pm_alloc_t *A = &pm__default_alloc;

/* ---------------------------------------------------------------- URLs */

static char *dup_n(const char *s, size_t n)
{
    char *c = pm__alloc(A, n + 1);
    if (c) {
        memcpy(c, s, n);
        c[n] = '\0';
    }
    return c;
}

void pm__url_free(pm__url_t *u)
{
    if (!u) return;
    pm__free(A, u->host);
    pm__free(A, u->port);
    pm__free(A, u->host_header);
    pm__free(A, u->path);
    memset(u, 0, sizeof *u);
}

pm_status_t pm__url_parse(const char *url, pm__url_t *out)
{
    memset(out, 0, sizeof *out);
    if (!url || strlen(url) > 8192 || !pm__http_ieq(url, 7 < strlen(url) ? 7 : strlen(url), "http://"))
        return PM_EINVAL;
    for (const char *p = url; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#') return PM_EINVAL;
    const char *a = url + 7, *ae = a + strcspn(a, "/?");
    if (memchr(a, '@', (size_t)(ae - a))) return PM_EINVAL; /* userinfo: never sent in clear */
    const char *h = a, *he, *pp = NULL;
    if (*a == '[') {
        const char *rb = memchr(a, ']', (size_t)(ae - a));
        if (!rb || rb == a + 1) return PM_EINVAL;
        for (const char *q = a + 1; q < rb; q++)
            if (!strchr("0123456789abcdefABCDEF:.", *q)) return PM_EINVAL;
        h = a + 1;
        he = rb;
        if (rb + 1 < ae) {
            if (rb[1] != ':') return PM_EINVAL;
            pp = rb + 2;
        }
    } else {
        const char *colon = memchr(a, ':', (size_t)(ae - a));
        he = colon ? colon : ae;
        if (colon) pp = colon + 1;
        if (he == h) return PM_EINVAL;
        for (const char *q = h; q < he; q++)
            if (!((*q >= '0' && *q <= '9') || ((*q | 0x20) >= 'a' && (*q | 0x20) <= 'z') ||
                  *q == '.' || *q == '-' || *q == '_'))
                return PM_EINVAL;
    }
    char port[6] = "80";
    if (pp) {
        size_t n = (size_t)(ae - pp);
        if (n == 0 || n > 5) return PM_EINVAL;
        long v = 0;
        for (size_t i = 0; i < n; i++) {
            if (pp[i] < '0' || pp[i] > '9') return PM_EINVAL;
            v = v * 10 + (pp[i] - '0');
        }
        if (v < 1 || v > 65535) return PM_EINVAL;
        memcpy(port, pp, n);
        port[n] = '\0';
    }
    out->host = dup_n(h, (size_t)(he - h));
    out->port = dup_n(port, strlen(port));
    out->host_header = dup_n(a, (size_t)(ae - a));
    if (*ae == '/')
        out->path = dup_n(ae, strlen(ae));
    else if (*ae == '?') { /* origin-form needs a path before the query */
        size_t n = strlen(ae);
        out->path = pm__alloc(A, n + 2);
        if (out->path) {
            out->path[0] = '/';
            memcpy(out->path + 1, ae, n + 1);
        }
    } else
        out->path = dup_n("/", 1);
    if (!out->host || !out->port || !out->host_header || !out->path) {
        pm__url_free(out);
        return PM_ENOMEM;
    }
    return PM_OK;
}

/* ---------------------------------------------------------------- framing */

static long find_eol(const char *p, const char *end, size_t *eol)
{
    const char *lf = memchr(p, '\n', (size_t)(end - p));
    if (!lf) return -1;
    *eol = lf > p && lf[-1] == '\r' ? 2 : 1;
    return (lf - p) - (long)(*eol - 1);
}

/* The end of a chunked body starting at p: > 0 the offset after it (from
 * buf), 0 more bytes needed, -1 malformed. */
static long chunked_end(const char *buf, const char *p, const char *end)
{
    for (;;) {
        size_t eol;
        /* Bounds checked the same way on a prefix and on the whole line, so
         * that more bytes never turn a refusal into an acceptance or back. */
        long n = find_eol(p, end, &eol);
        if (n < 0) return (size_t)(end - p) >= 1024 ? -1 : 0;
        if ((size_t)n + eol > 1024) return -1;
        uint64_t size = 0;
        long i = 0;
        for (; i < n; i++) {
            char c = p[i];
            int d = c >= '0' && c <= '9' ? c - '0'
                    : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                           : -1;
            if (d < 0) break;
            if (i >= 15) return -1; /* bounded: no overflow */
            size = size * 16 + (uint64_t)d;
        }
        if (i == 0) return -1;
        if (i < n && p[i] != ';' && p[i] != ' ' && p[i] != '\t') return -1; /* chunk-ext */
        p += n + (long)eol;
        if (size == 0) {
            /* Trailer section: lines up to an empty one, 64 KiB at most. */
            const char *t0 = p;
            for (;;) {
                n = find_eol(p, end, &eol);
                if (n < 0) return (size_t)(end - t0) >= 65536 ? -1 : 0;
                p += n + (long)eol;
                if (p - t0 > 65536) return -1;
                if (n == 0) return p - buf;
            }
        }
        if (size > MAX_RESPONSE) return -1;
        if ((uint64_t)(end - p) < size + 1) return 0;
        p += size;
        if (*p == '\n')
            p++;
        else if (*p == '\r') {
            if (end - p < 2) return 0;
            if (p[1] != '\n') return -1;
            p += 2;
        } else
            return -1;
    }
}

static double retry_after_of(const pm__http_request_t *h)
{
    const pm__http_field_t *f = pm__http_field(h, "retry-after");
    if (!f || f->value_len == 0 || f->value_len > 9) return -1; /* HTTP-dates: not read */
    double v = 0;
    for (size_t i = 0; i < f->value_len; i++) {
        if (f->value[i] < '0' || f->value[i] > '9') return -1;
        v = v * 10 + (f->value[i] - '0');
    }
    return v;
}

/* Whether the last transfer coding is "chunked" (RFC 9112 6.3: otherwise the
 * body runs to the close). */
static int last_coding_chunked(const pm__http_request_t *h)
{
    const pm__http_field_t *last = NULL;
    for (size_t i = 0; i < h->nfields; i++)
        if (pm__http_ieq(h->fields[i].name, h->fields[i].name_len, "transfer-encoding"))
            last = &h->fields[i];
    if (!last) return 0;
    const char *v = last->value, *e = v + last->value_len;
    const char *c = e;
    while (c > v && c[-1] != ',') c--;
    while (c < e && (*c == ' ' || *c == '\t')) c++;
    return pm__http_ieq(c, (size_t)(e - c), "chunked");
}

long pm__http_response_frame(const char *buf, size_t len, int eof, int *status, int *keep_alive,
                             double *retry_after)
{
    static const pm__http_limits_t lim = {8192, 65536, 100};
    pm__http_field_t fields[100];
    size_t off = 0;
    for (;;) {
        pm__http_request_t h = {.fields = fields};
        int st = 0;
        int n = pm__http_parse_response(buf + off, len - off, &lim, &h, &st);
        if (n < 0) return -1;
        if (n == 0) return eof ? -1 : 0;
        if (st == 101) return -1; /* never asked for an upgrade */
        if (st < 200) {
            off += (size_t)n; /* interim (100 Continue, 103 Early Hints) */
            continue;
        }
        size_t body = off + (size_t)n;
        int ka = h.keep_alive;
        long total;
        if (st == 204 || st == 304) {
            total = (long)body;
        } else if (h.transfer_encoding) {
            if (last_coding_chunked(&h)) {
                total = chunked_end(buf, buf + body, buf + len);
                if (total < 0) return -1;
                if (total == 0) return eof ? -1 : 0;
            } else {
                if (!eof) return 0;
                total = (long)len;
                ka = 0;
            }
            if (h.content_length >= 0) ka = 0; /* both: never trust this connection again */
        } else if (h.content_length >= 0) {
            if ((uint64_t)h.content_length > MAX_RESPONSE) return -1;
            if (len - body < (uint64_t)h.content_length) return eof ? -1 : 0;
            total = (long)(body + (size_t)h.content_length);
        } else {
            if (!eof) return 0;
            total = (long)len;
            ka = 0;
        }
        *status = st;
        *keep_alive = ka;
        *retry_after = retry_after_of(&h);
        return total;
    }
}

/* ---------------------------------------------------------------- sockets */

pm_status_t pm__http_client_init(pm__http_client_t *c, const char *host, const char *port)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res) return PM_EIO;
    if (res->ai_addrlen > sizeof c->addr) {
        freeaddrinfo(res);
        return PM_EIO;
    }
    memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
    c->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return PM_OK;
}

void pm__http_client_close(pm__http_client_t *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->reused = 0;
}

void pm__http_client_fini(pm__http_client_t *c)
{
    pm__http_client_close(c);
    pm__free(A, c->buf);
    c->buf = NULL;
    c->len = c->cap = 0;
}

/* Waits for `events` on fd for at most step_s and until deadline_ns:
 * 1 ready, 0 timed out, -1 error. */
static int wait_fd(int fd, short events, double step_s, uint64_t deadline_ns)
{
    uint64_t now = pm__mono_ns();
    if (now >= deadline_ns) return 0;
    double left_ms = (double)(deadline_ns - now) / 1e6, step_ms = step_s * 1e3;
    double ms = left_ms < step_ms ? left_ms : step_ms;
    int timeout = ms < 1 ? 1 : ms > 2e9 ? 2000000000 : (int)ms;
    struct pollfd pfd = {.fd = fd, .events = events};
    for (;;) {
        int rc = poll(&pfd, 1, timeout);
        if (rc > 0) return 1;
        if (rc == 0) return 0;
        if (errno != EINTR) return -1;
    }
}

static int do_connect(pm__http_client_t *c, double step_s, uint64_t deadline_ns)
{
    int fd = socket(c->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return PM__HTTP_RES_ERROR;
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (const struct sockaddr *)&c->addr, c->addrlen) != 0) {
        if (errno != EINPROGRESS && errno != EINTR) {
            close(fd);
            return PM__HTTP_RES_ERROR;
        }
        int w = wait_fd(fd, POLLOUT, step_s, deadline_ns);
        int err = 0;
        socklen_t el = sizeof err;
        if (w <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err != 0) {
            close(fd);
            return w == 0 ? PM__HTTP_RES_TIMEOUT : PM__HTTP_RES_ERROR;
        }
    }
    c->fd = fd;
    c->reused = 0;
    return PM__HTTP_RES_OK;
}

static int send_all(pm__http_client_t *c, const char *p, size_t n, double step_s,
                    uint64_t deadline_ns)
{
    while (n > 0) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLOUT, step_s, deadline_ns);
            if (rc == 0) return PM__HTTP_RES_TIMEOUT;
            if (rc < 0) return PM__HTTP_RES_ERROR;
            continue;
        }
        return PM__HTTP_RES_ERROR;
    }
    return PM__HTTP_RES_OK;
}

static int read_response(pm__http_client_t *c, double step_s, uint64_t deadline_ns,
                         pm__http_result_t *res, int *keep_alive)
{
    c->len = 0;
    for (;;) {
        if (c->cap - c->len < READ_CHUNK) {
            if (c->cap >= MAX_RESPONSE + READ_CHUNK) return PM__HTTP_RES_ERROR;
            size_t cap = c->cap ? c->cap * 2 : 2 * READ_CHUNK;
            char *b = pm__alloc(A, cap);
            if (!b) return PM__HTTP_RES_ERROR;
            if (c->len) memcpy(b, c->buf, c->len);
            pm__free(A, c->buf);
            c->buf = b;
            c->cap = cap;
        }
        ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int rc = wait_fd(c->fd, POLLIN, step_s, deadline_ns);
            if (rc == 0) return PM__HTTP_RES_TIMEOUT;
            if (rc < 0) return PM__HTTP_RES_ERROR;
            continue;
        }
        if (r < 0) return PM__HTTP_RES_ERROR;
        c->len += (size_t)r;
        long n = pm__http_response_frame(c->buf, c->len, r == 0, &res->status, keep_alive,
                                         &res->retry_after);
        if (n < 0) return PM__HTTP_RES_ERROR;
        if (n > 0) {
            /* Bytes past the response: the server spoke out of turn. */
            if ((size_t)n != c->len) *keep_alive = 0;
            if (r == 0) *keep_alive = 0;
            return PM__HTTP_RES_OK;
        }
        if (r == 0) return PM__HTTP_RES_ERROR;
    }
}

void pm__http_exchange(pm__http_client_t *c, const char *head, size_t head_len, const char *body,
                       size_t body_len, double step_s, uint64_t deadline_ns,
                       pm__http_result_t *res)
{
    res->outcome = PM__HTTP_RES_ERROR;
    res->status = 0;
    res->retry_after = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = c->fd < 0;
        int rc = PM__HTTP_RES_OK;
        if (fresh) rc = do_connect(c, step_s, deadline_ns);
        if (rc != PM__HTTP_RES_OK) {
            res->outcome = rc;
            return;
        }
        rc = send_all(c, head, head_len, step_s, deadline_ns);
        if (rc == PM__HTTP_RES_OK && body_len)
            rc = send_all(c, body, body_len, step_s, deadline_ns);
        int ka = 0;
        c->len = 0;
        if (rc == PM__HTTP_RES_OK) rc = read_response(c, step_s, deadline_ns, res, &ka);
        if (rc == PM__HTTP_RES_ERROR && !fresh && c->len == 0) {
            /* The server closed an idle kept-alive connection: not this
             * request's fault (RFC 9112 9.3.1); once more on a new one. */
            pm__http_client_close(c);
            continue;
        }
        if (rc != PM__HTTP_RES_OK) {
            pm__http_client_close(c);
            res->outcome = rc;
            res->status = 0;
            res->retry_after = -1;
            return;
        }
        res->outcome = PM__HTTP_RES_OK;
        if (ka)
            c->reused++;
        else
            pm__http_client_close(c);
        return;
    }
}
