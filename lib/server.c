/* The embedded HTTP/1.1 server: options, lifecycle and the event loops.
 *
 * Each server thread runs one poll() loop over the shared listening socket,
 * a wake-up pipe and its own connections, all non-blocking. A connection is
 * either reading a request head or writing one response (never both, which
 * gives pipelined requests back-pressure for free); every state has a
 * deadline, so a client that is slow to send, slow to read or idle is
 * closed without ever holding up the others. Responses are built whole by
 * the routes (server_api.c) into the connection's buffers and written with
 * sendmsg() of the head and the body, without copying the body. */
#include "internal/pm_internal.h"
#include "internal/server_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define PM__MAX_CHARTS 64
#define PM__MAX_TITLE 256
#define PM__MAX_TOKEN 1024
/* Bodies below this size are not worth a gzip stream's header and CPU. */
#define PM__GZIP_MIN 1024

struct pm_server_opts {
    char host[64];
    int port;
    char *token;
    size_t max_line, max_head, max_headers, max_conns;
    double t_read, t_write, t_idle;
    unsigned threads;
    pm_tracer_t *tracer;
    size_t recent;
    pm_alert_engine_t *engine;
    double health_min;
    int gzip, dashboard;
    char *title;
    char *charts[PM__MAX_CHARTS];
    size_t ncharts;
};

/* ---------------------------------------------------------------- options */

pm_status_t pm_server_opts_new(pm_server_opts_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    pm_server_opts_t *o = calloc(1, sizeof *o);
    if (!o) return PM_ENOMEM;
    strcpy(o->host, "127.0.0.1");
    o->port = 9464;
    o->max_line = 8192;
    o->max_head = 16384;
    o->max_headers = 100;
    o->max_conns = 64;
    o->t_read = 10;
    o->t_write = 10;
    o->t_idle = 60;
    o->threads = 2;
    o->recent = 4096;
    o->health_min = 50;
    o->gzip = 1;
    o->dashboard = 1;
    *out = o;
    return PM_OK;
}

void pm_server_opts_free(pm_server_opts_t *o)
{
    if (!o) return;
    free(o->token);
    free(o->title);
    for (size_t i = 0; i < o->ncharts; i++) free(o->charts[i]);
    free(o);
}

/* Resolves host (a numeric address or "localhost") and port into *ss. */
static pm_status_t parse_address(const char *host, int port, struct sockaddr_storage *ss,
                                 socklen_t *len)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (!strcmp(host, "localhost")) host = "127.0.0.1";
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        *len = sizeof *v4;
        return PM_OK;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        *len = sizeof *v6;
        return PM_OK;
    }
    return PM_EPARSE;
}

pm_status_t pm_server_opts_set_address(pm_server_opts_t *o, const char *host, int port)
{
    if (!o || !host) return PM_EINVAL;
    if (strlen(host) >= sizeof o->host) return PM_EPARSE;
    if (port < 0 || port > 65535) return PM_ERANGE;
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_address(host, port, &ss, &len) != PM_OK) return PM_EPARSE;
    strcpy(o->host, host);
    o->port = port;
    return PM_OK;
}

static int token68_ok(const char *t, size_t n)
{
    size_t i = 0;
    for (; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
        if (!ok) break;
    }
    if (i == 0) return 0;
    while (i < n && t[i] == '=') i++;
    return i == n;
}

pm_status_t pm_server_opts_set_token(pm_server_opts_t *o, const char *token)
{
    if (!o) return PM_EINVAL;
    if (!token || !*token) {
        free(o->token);
        o->token = NULL;
        return PM_OK;
    }
    size_t n = strlen(token);
    if (n > PM__MAX_TOKEN) return PM_ERANGE;
    if (!token68_ok(token, n)) return PM_EPARSE;
    char *c = strdup(token);
    if (!c) return PM_ENOMEM;
    free(o->token);
    o->token = c;
    return PM_OK;
}

pm_status_t pm_server_opts_set_limits(pm_server_opts_t *o, size_t max_request_line,
                                      size_t max_head_bytes, size_t max_headers,
                                      size_t max_connections)
{
    if (!o) return PM_EINVAL;
    if (max_request_line < 256 || max_request_line > 1048576 || max_head_bytes < 512 ||
        max_head_bytes > 1048576 || max_headers < 1 || max_headers > 10000 || max_connections < 1 ||
        max_connections > 65536)
        return PM_ERANGE;
    o->max_line = max_request_line;
    o->max_head = max_head_bytes;
    o->max_headers = max_headers;
    o->max_conns = max_connections;
    return PM_OK;
}

static int timeout_ok(double t) { return t >= 0.01 && t <= 3600; } /* false for NaN */

pm_status_t pm_server_opts_set_timeouts(pm_server_opts_t *o, double read, double write, double idle)
{
    if (!o) return PM_EINVAL;
    if (!timeout_ok(read) || !timeout_ok(write) || !timeout_ok(idle)) return PM_ERANGE;
    o->t_read = read;
    o->t_write = write;
    o->t_idle = idle;
    return PM_OK;
}

pm_status_t pm_server_opts_set_threads(pm_server_opts_t *o, unsigned n)
{
    if (!o) return PM_EINVAL;
    if (n < 1 || n > 64) return PM_ERANGE;
    o->threads = n;
    return PM_OK;
}

pm_status_t pm_server_opts_set_tracer(pm_server_opts_t *o, pm_tracer_t *t)
{
    if (!o) return PM_EINVAL;
    o->tracer = t;
    return PM_OK;
}

pm_status_t pm_server_opts_set_recent_spans(pm_server_opts_t *o, size_t n)
{
    if (!o) return PM_EINVAL;
    if (n > 1048576) return PM_ERANGE;
    o->recent = n;
    return PM_OK;
}

pm_status_t pm_server_opts_set_alert_engine(pm_server_opts_t *o, pm_alert_engine_t *e)
{
    if (!o) return PM_EINVAL;
    o->engine = e;
    return PM_OK;
}

pm_status_t pm_server_opts_set_health_threshold(pm_server_opts_t *o, double min_score)
{
    if (!o) return PM_EINVAL;
    if (!(min_score >= 0 && min_score <= 100)) return PM_ERANGE;
    o->health_min = min_score;
    return PM_OK;
}

pm_status_t pm_server_opts_set_gzip(pm_server_opts_t *o, int enabled)
{
    if (!o) return PM_EINVAL;
    o->gzip = enabled != 0;
    return PM_OK;
}

pm_status_t pm_server_opts_set_dashboard(pm_server_opts_t *o, int enabled)
{
    if (!o) return PM_EINVAL;
    o->dashboard = enabled != 0;
    return PM_OK;
}

pm_status_t pm_server_opts_set_title(pm_server_opts_t *o, const char *title)
{
    if (!o || !title) return PM_EINVAL;
    size_t n = strlen(title);
    if (n > PM__MAX_TITLE) return PM_ERANGE;
    if (!pm__valid_utf8(title, n)) return PM_EUTF8;
    char *c = strdup(title);
    if (!c) return PM_ENOMEM;
    free(o->title);
    o->title = c;
    return PM_OK;
}

pm_status_t pm_server_opts_add_chart(pm_server_opts_t *o, const char *family)
{
    if (!o || !family) return PM_EINVAL;
    if (!pm__valid_metric_name(family)) return PM_EBADNAME;
    if (o->ncharts == PM__MAX_CHARTS) return PM_ERANGE;
    if (!(o->charts[o->ncharts] = strdup(family))) return PM_ENOMEM;
    o->ncharts++;
    return PM_OK;
}

/* ---------------------------------------------------------------- counting */

static int code_index(int status)
{
    static const int codes[] = {
#define PM__CODE_ENTRY_(c) c,
        PM__CODES(PM__CODE_ENTRY_)
#undef PM__CODE_ENTRY_
    };
    for (int i = 0; i < (int)(sizeof codes / sizeof codes[0]); i++)
        if (codes[i] == status) return i;
    return PM__NCODES - 1;
}

static const char *code_text(int i)
{
    static const char *const texts[] = {
#define PM__CODE_TEXT_(c) #c,
        PM__CODES(PM__CODE_TEXT_)
#undef PM__CODE_TEXT_
            "other"};
    return texts[i];
}

static void stat_add(pm_server_t *s, pm_server_stat_t which, uint64_t n)
{
    atomic_fetch_add_explicit(&s->stat[which], n, memory_order_relaxed);
}

void pm__server_count(pm_server_t *s, int handler, int status)
{
    stat_add(s, PM_SERVER_STAT_REQUESTS, 1);
    if (status >= 200 && status < 300) stat_add(s, PM_SERVER_STAT_2XX, 1);
    if (status >= 400 && status < 500) stat_add(s, PM_SERVER_STAT_4XX, 1);
    if (status >= 500) stat_add(s, PM_SERVER_STAT_5XX, 1);
    if (status == 401) stat_add(s, PM_SERVER_STAT_UNAUTHORIZED, 1);
    if (status == 200 && handler == PM__H_METRICS) stat_add(s, PM_SERVER_STAT_SCRAPES, 1);
    atomic_fetch_add_explicit(&s->codes[handler][code_index(status)], 1, memory_order_relaxed);
}

/* The perfmetrics_http_* families, read from the counters at snapshot time. */
static pm_status_t collect(pm_emit_t *em, void *user)
{
    pm_server_t *s = user;
    static const char *const labels[] = {"handler", "code"};
    pm_status_t st = pm__emit_family_reserved(em, PM_TYPE_COUNTER, "perfmetrics_http_requests",
                                              "HTTP requests answered by the embedded server, "
                                              "by handler and status code.",
                                              labels, 2);
    for (int h = 0; st == PM_OK && h < PM__H_COUNT; h++)
        for (int c = 0; st == PM_OK && c < PM__NCODES; c++) {
            uint64_t n = atomic_load_explicit(&s->codes[h][c], memory_order_relaxed);
            const char *v[2] = {pm__server_handler_names[h], code_text(c)};
            if (n) st = pm_emit_sample(em, v, 2, (double)n);
        }
    static const struct {
        pm_type_t type;
        const char *name, *help;
        pm_server_stat_t stat;
    } one[] = {
        {PM_TYPE_COUNTER, "perfmetrics_http_connections", "Connections accepted.",
         PM_SERVER_STAT_CONNECTIONS},
        {PM_TYPE_GAUGE, "perfmetrics_http_open_connections", "Connections open now.",
         PM_SERVER_STAT_OPEN},
        {PM_TYPE_COUNTER, "perfmetrics_http_rejected_connections",
         "Connections refused with 503 at the connection cap.", PM_SERVER_STAT_REJECTED},
        {PM_TYPE_COUNTER, "perfmetrics_http_timeouts",
         "Connections closed by a read, write or idle timeout.", PM_SERVER_STAT_TIMEOUTS},
        {PM_TYPE_COUNTER, "perfmetrics_http_received_bytes", "Bytes received.",
         PM_SERVER_STAT_BYTES_IN},
        {PM_TYPE_COUNTER, "perfmetrics_http_sent_bytes", "Bytes sent.", PM_SERVER_STAT_BYTES_OUT},
    };
    for (size_t i = 0; st == PM_OK && i < sizeof one / sizeof one[0]; i++) {
        st = pm__emit_family_reserved(em, one[i].type, one[i].name, one[i].help, NULL, 0);
        if (st == PM_OK) st = pm_emit_sample(em, NULL, 0, (double)pm_server_stat(s, one[i].stat));
    }
    return st;
}

/* ---------------------------------------------------------------- connections */

enum {
    C_READ,
    C_WRITE
};

typedef struct conn {
    int fd;
    int state;
    int started;     /* C_READ: the first byte of a request has arrived */
    int close_after; /* C_WRITE: close once written */
    int64_t deadline;
    char *in;
    size_t in_len, in_cap;
    char head[1024]; /* response head */
    size_t head_len, head_off;
    const char *body; /* into rep.body or gz */
    size_t body_len, body_off;
    pm_buf_t *rbody, *gz;
    pm__http_field_t *fields;
    struct conn *next;
} conn;

struct pm__loop {
    pm_server_t *s;
    pthread_t th;
    int started;
    int wake[2];
    conn *conns;
    size_t nconns;
    struct pollfd *pfd;
    conn **pconn;
    size_t pcap;
};

/* Deadlines are signed: the monotonic clock of lib/timer.c, as int64_t. */
static int64_t mono_ns(void) { return (int64_t)pm__mono_ns(); }

static int64_t secs_ns(double s) { return (int64_t)(s * 1e9); }

static void conn_free(conn *c)
{
    if (!c) return;
    if (c->fd >= 0) close(c->fd);
    free(c->in);
    free(c->fields);
    pm_buf_free(c->rbody);
    pm_buf_free(c->gz);
    free(c);
}

/* The most a connection buffers: one head at the limits, with the blank
 * lines and line ends the parser allows around it. */
static size_t in_max(const pm_server_t *s) { return s->lim.max_line + s->lim.max_head + 16; }

static conn *conn_new(pm_server_t *s, int fd)
{
    conn *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->fd = fd;
    size_t first = in_max(s) < 4096 ? in_max(s) : 4096;
    c->in = malloc(first);
    c->fields = malloc(s->lim.max_headers * sizeof *c->fields);
    if (!c->in || !c->fields || pm_buf_new(&c->rbody) != PM_OK || pm_buf_new(&c->gz) != PM_OK) {
        c->fd = -1;
        conn_free(c);
        return NULL;
    }
    c->in_cap = first;
    c->state = C_READ;
    c->deadline = mono_ns() + secs_ns(s->t_read);
    return c;
}

/* The Date field value (RFC 9110 5.6.7 IMF-fixdate), in English whatever
 * the C locale: "Sun, 06 Nov 1994 08:49:37 GMT". */
static void http_date(char out[80])
{
    static const char days[] = "SunMonTueWedThuFriSat";
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    snprintf(out, 80, "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT", days + 3 * tm.tm_wday, tm.tm_mday,
             months + 3 * tm.tm_mon, tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Writes a response head into dst: status line, the fields every response
 * has, `extra` (whole header lines), the Connection field when `conn` is not
 * NULL, and the blank line. Returns its length, 0 if it does not fit. */
static size_t write_head(char *dst, size_t size, int status, const char *content_type, size_t len,
                         const char *extra, size_t extra_len, const char *connection)
{
    char date[80];
    http_date(date);
    int n = snprintf(dst, size,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n%.*s%s%s%s\r\n",
                     status, pm__http_reason(status), date, content_type, len, (int)extra_len,
                     extra, connection ? "Connection: " : "", connection ? connection : "",
                     connection ? "\r\n" : "");
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* Best-effort answer on a socket the server is about to close, without a
 * connection object (the connection cap, a read timeout): the same head and
 * JSON error body as any other error, sent with one non-blocking send. */
static void send_now(int fd, int status)
{
    char body[128], text[640];
    size_t bn = pm__server_error_text(status, body, sizeof body);
    size_t hn = write_head(text, sizeof text - bn, status, "application/json", bn, "", 0, "close");
    if (!hn) return;
    memcpy(text + hn, body, bn);
    ssize_t w = send(fd, text, hn + bn, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)w;
}

/* Frames rep into c's head and body and switches c to writing. */
static void start_response(pm_server_t *s, conn *c, const pm__http_request_t *req, pm__reply_t *rep,
                           int head_only, int keep_alive_10)
{
    const char *body = pm_buf_data(rep->body);
    size_t len = pm_buf_len(rep->body);
    int gz = 0;
    if (rep->compressible && s->gzip && len >= PM__GZIP_MIN && req && pm__http_accepts_gzip(req)) {
        pm_buf_reset(c->gz);
        if (pm__buf_gzip_level(rep->body, c->gz, 1) == PM_OK) {
            body = pm_buf_data(c->gz);
            len = pm_buf_len(c->gz);
            gz = 1;
        }
    }
    /* Fields that depend on the negotiation go before the route's own. */
    char extra[sizeof rep->headers + 64];
    int en = snprintf(extra, sizeof extra, "%s%s%.*s", gz ? "Content-Encoding: gzip\r\n" : "",
                      rep->compressible && s->gzip && !strstr(rep->headers, "Vary:")
                          ? "Vary: Accept-Encoding\r\n"
                          : "",
                      (int)rep->headers_len, rep->headers);
    size_t n = write_head(c->head, sizeof c->head, rep->status, rep->content_type, len, extra,
                          en > 0 ? (size_t)en : 0,
                          rep->close      ? "close"
                          : keep_alive_10 ? "keep-alive"
                                          : NULL);
    c->head_len = n;
    c->head_off = 0;
    c->body = body;
    c->body_len = head_only ? 0 : len;
    c->body_off = 0;
    c->close_after = rep->close;
    c->state = C_WRITE;
    c->deadline = mono_ns() + secs_ns(s->t_write);
    pm__server_count(s, rep->handler, rep->status);
}

/* Parses and answers the request at the start of c->in, if complete.
 * Returns 0 when c must be closed. */
static int process_input(pm_server_t *s, conn *c)
{
    if (!c->in_len) return 1;
    if (!c->started) {
        c->started = 1;
        c->deadline = mono_ns() + secs_ns(s->t_read);
    }
    pm__http_request_t req;
    req.fields = c->fields;
    int r = pm__http_parse(c->in, c->in_len, &s->lim, &req);
    /* The parser refuses a head before it can fill the buffer; a full buffer
     * it still waits on would never drain: refuse it too. */
    if (r == 0 && c->in_len < in_max(s)) return 1;
    if (r == 0) r = -431;
    pm_buf_reset(c->rbody);
    pm__reply_t rep;
    memset(&rep, 0, sizeof rep);
    rep.body = c->rbody;
    rep.handler = PM__H_OTHER;
    if (r < 0) {
        pm__server_error(&rep, -r, 1);
        start_response(s, c, NULL, &rep, 0, 0);
        c->in_len = 0; /* the rest cannot be framed: it is dropped with the connection */
        return 1;
    }
    int64_t t0 = mono_ns();
    pm__server_route(s, &req, &rep);
    if (!req.keep_alive) rep.close = 1;
    int head_only = req.method == PM__HTTP_HEAD;
    start_response(s, c, &req, &rep, head_only, !rep.close && req.minor == 0);
    if (s->h_duration[rep.handler])
        pm_histogram_observe(s->h_duration[rep.handler], (double)(mono_ns() - t0) / 1e9);
    /* The request is answered: drop its head, keep what follows (pipelining). */
    memmove(c->in, c->in + r, c->in_len - (size_t)r);
    c->in_len -= (size_t)r;
    return 1;
}

/* Reads what the socket has. Returns 0 when c must be closed. */
static int on_readable(pm_server_t *s, conn *c)
{
    for (;;) {
        if (c->in_len == c->in_cap) {
            size_t max = in_max(s);
            if (c->in_cap >= max) break; /* process_input refuses a full buffer */
            size_t cap = c->in_cap * 2 < max ? c->in_cap * 2 : max;
            char *p = realloc(c->in, cap);
            if (!p) return 0;
            c->in = p;
            c->in_cap = cap;
        }
        ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            stat_add(s, PM_SERVER_STAT_BYTES_IN, (uint64_t)n);
            continue;
        }
        if (n == 0) {
            /* The client closed its side: answer what it sent, then close. */
            if (!process_input(s, c) || c->state != C_WRITE) return 0;
            c->close_after = 1;
            c->in_len = 0;
            return 1;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        return 0;
    }
    return process_input(s, c);
}

/* Writes what the socket takes. Returns 0 when c must be closed. */
static int on_writable(pm_server_t *s, conn *c)
{
    while (c->head_off < c->head_len || c->body_off < c->body_len) {
        struct iovec iov[2];
        int k = 0;
        if (c->head_off < c->head_len)
            iov[k++] = (struct iovec){c->head + c->head_off, c->head_len - c->head_off};
        if (c->body_off < c->body_len)
            iov[k++] = (struct iovec){(char *)c->body + c->body_off, c->body_len - c->body_off};
        struct msghdr m;
        memset(&m, 0, sizeof m);
        m.msg_iov = iov;
        m.msg_iovlen = (size_t)k;
        ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
            return 0;
        }
        stat_add(s, PM_SERVER_STAT_BYTES_OUT, (uint64_t)n);
        size_t left = (size_t)n, h = c->head_len - c->head_off;
        size_t take = left < h ? left : h;
        c->head_off += take;
        c->body_off += left - take;
    }
    if (c->close_after) return 0;
    c->state = C_READ;
    c->started = 0;
    c->deadline = mono_ns() + secs_ns(s->t_idle);
    return process_input(s, c); /* a pipelined request may be waiting */
}

static void loop_close(pm__loop_t *l, conn *c, conn **link)
{
    *link = c->next;
    l->nconns--;
    conn_free(c);
    atomic_fetch_sub(&l->s->open, 1);
}

static void accept_all(pm__loop_t *l)
{
    pm_server_t *s = l->s;
    for (int i = 0; i < 64; i++) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) return; /* EAGAIN (another loop took it), or a transient error */
        if ((size_t)atomic_fetch_add(&s->open, 1) >= s->max_conns) {
            atomic_fetch_sub(&s->open, 1);
            stat_add(s, PM_SERVER_STAT_REJECTED, 1);
            send_now(fd, 503);
            close(fd);
            continue;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = conn_new(s, fd);
        if (!c) {
            atomic_fetch_sub(&s->open, 1);
            send_now(fd, 503);
            close(fd);
            continue;
        }
        stat_add(s, PM_SERVER_STAT_CONNECTIONS, 1);
        c->next = l->conns;
        l->conns = c;
        l->nconns++;
    }
}

static int grow_polls(pm__loop_t *l)
{
    size_t need = l->nconns + 2;
    if (need <= l->pcap) return 1;
    size_t cap = need * 2;
    struct pollfd *p = realloc(l->pfd, cap * sizeof *p);
    if (!p) return 0;
    l->pfd = p;
    conn **q = realloc(l->pconn, cap * sizeof *q);
    if (!q) return 0;
    l->pconn = q;
    l->pcap = cap;
    return 1;
}

static void *loop_main(void *arg)
{
    pm__loop_t *l = arg;
    pm_server_t *s = l->s;
    while (!atomic_load(&s->stop)) {
        if (!grow_polls(l)) {
            /* No memory for the poll set: shed the newest connection. */
            if (l->conns) loop_close(l, l->conns, &l->conns);
            continue;
        }
        int64_t now = mono_ns(), next = INT64_MAX;
        l->pfd[0] = (struct pollfd){l->wake[0], POLLIN, 0};
        l->pfd[1] = (struct pollfd){s->listen_fd, POLLIN, 0};
        size_t n = 2;
        for (conn *c = l->conns; c; c = c->next) {
            l->pfd[n] = (struct pollfd){c->fd, c->state == C_READ ? POLLIN : POLLOUT, 0};
            l->pconn[n++] = c;
            if (c->deadline < next) next = c->deadline;
        }
        int timeout = -1;
        if (next != INT64_MAX) {
            int64_t ms = (next - now + 999999) / 1000000;
            timeout = ms < 0 ? 0 : ms > 60000 ? 60000 : (int)ms;
        }
        int r = poll(l->pfd, n, timeout);
        if (r < 0 && errno != EINTR) break;
        if (atomic_load(&s->stop)) break;
        if (r > 0 && (l->pfd[0].revents & POLLIN)) {
            char buf[64];
            while (read(l->wake[0], buf, sizeof buf) > 0) {
            }
        }
        if (r > 0 && (l->pfd[1].revents & POLLIN)) accept_all(l);
        now = mono_ns();
        /* Handle events and deadlines; closing unlinks, so walk by link. */
        for (size_t i = 2; i < n; i++) {
            conn *c = l->pconn[i];
            short ev = l->pfd[i].revents;
            int keep = 1;
            if (ev & (POLLERR | POLLNVAL))
                keep = 0;
            else if (c->state == C_READ && (ev & (POLLIN | POLLHUP)))
                keep = on_readable(s, c);
            else if (c->state == C_WRITE && (ev & (POLLOUT | POLLHUP)))
                keep = on_writable(s, c);
            /* A response built by on_readable is written at once when it can. */
            if (keep && c->state == C_WRITE && c->head_off == 0 && c->body_off == 0)
                keep = on_writable(s, c);
            if (keep && c->deadline <= now) {
                stat_add(s, PM_SERVER_STAT_TIMEOUTS, 1);
                if (c->state == C_READ && c->started) {
                    send_now(c->fd, 408);
                    pm__server_count(s, PM__H_OTHER, 408);
                }
                keep = 0;
            }
            if (!keep) c->state = -1; /* closed below */
        }
        for (conn **link = &l->conns; *link;) {
            if ((*link)->state == -1)
                loop_close(l, *link, link);
            else
                link = &(*link)->next;
        }
    }
    while (l->conns) loop_close(l, l->conns, &l->conns);
    return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

static void set_url(pm_server_t *s, const struct sockaddr_storage *ss)
{
    char host[INET6_ADDRSTRLEN] = "127.0.0.1";
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
        if (v4->sin_addr.s_addr != htonl(INADDR_ANY))
            inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
        s->loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
        snprintf(s->url, sizeof s->url, "http://%s:%d/", host, s->port);
    } else {
        const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
        strcpy(host, "::1");
        if (!IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr))
            inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
        s->loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr);
        snprintf(s->url, sizeof s->url, "http://[%s]:%d/", host, s->port);
    }
}

static pm_status_t open_listener(pm_server_t *s, const pm_server_opts_t *o)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (parse_address(o->host, o->port, &ss, &len) != PM_OK) return PM_EINVAL;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return PM_EIO;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 128) != 0) {
        close(fd);
        return PM_EIO;
    }
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    if (getsockname(fd, (struct sockaddr *)&bound, &blen) != 0) {
        close(fd);
        return PM_EIO;
    }
    s->port = ntohs(bound.ss_family == AF_INET ? ((struct sockaddr_in *)&bound)->sin_port
                                               : ((struct sockaddr_in6 *)&bound)->sin6_port);
    s->listen_fd = fd;
    set_url(s, &ss);
    return PM_OK;
}

static pm_status_t copy_opts(pm_server_t *s, const pm_server_opts_t *o)
{
    s->lim = (pm__http_limits_t){o->max_line, o->max_head, o->max_headers};
    s->max_conns = o->max_conns;
    s->t_read = o->t_read;
    s->t_write = o->t_write;
    s->t_idle = o->t_idle;
    s->gzip = o->gzip && pm_has_zlib();
    s->dashboard = o->dashboard;
    s->health_min = o->health_min;
    s->tracer = o->tracer;
    s->engine = o->engine;
    s->nloops = o->threads;
    if (o->token) {
        if (!(s->token = strdup(o->token))) return PM_ENOMEM;
        s->token_len = strlen(s->token);
    }
    if (!(s->title = strdup(o->title ? o->title : "libperfmetrics"))) return PM_ENOMEM;
    if (o->ncharts && !(s->charts = calloc(o->ncharts, sizeof *s->charts))) return PM_ENOMEM;
    for (; s->ncharts < o->ncharts; s->ncharts++)
        if (!(s->charts[s->ncharts] = strdup(o->charts[s->ncharts]))) return PM_ENOMEM;
    return PM_OK;
}

static pm_status_t self_metrics(pm_server_t *s)
{
    if (!s->reg->self_metrics) return PM_OK; /* pm_registry_opts_set_self_metrics(o, 0) */
    static const char *const label[] = {"handler"};
    pm_family_opts_t *fo;
    pm_family_t *f = NULL;
    pm_status_t st = pm_family_opts_new(&fo);
    if (st != PM_OK) return st;
    st = pm_family_opts_set_labels(fo, label, 1);
    if (st == PM_OK)
        st = pm__family_new_reserved(s->reg, PM_TYPE_HISTOGRAM,
                                     "perfmetrics_http_request_duration_seconds",
                                     "Time to build each response, by handler (the network "
                                     "write excluded).",
                                     fo, &f);
    pm_family_opts_free(fo);
    for (int h = 0; st == PM_OK && h < PM__H_COUNT; h++) {
        const char *v[1] = {pm__server_handler_names[h]};
        st = pm_histogram_get(f, v, 1, &s->h_duration[h]);
    }
    if (st != PM_OK) return st;
    st = pm_collector_add(s->reg, "perfmetrics_http", collect, s, NULL, &s->coll);
    /* A second server on one registry leaves the counters to the first. */
    return st == PM_EEXIST ? PM_OK : st;
}

static void stop_loops(pm_server_t *s)
{
    atomic_store(&s->stop, 1);
    for (unsigned i = 0; i < s->nloops; i++) {
        pm__loop_t *l = &s->loops[i];
        if (l->started) {
            ssize_t w = write(l->wake[1], "x", 1);
            (void)w;
            pthread_join(l->th, NULL);
            l->started = 0;
        }
    }
}

void pm_server_free(pm_server_t *s)
{
    if (!s) return;
    if (s->loops) {
        stop_loops(s);
        for (unsigned i = 0; i < s->nloops; i++) {
            pm__loop_t *l = &s->loops[i];
            if (l->wake[0] >= 0) close(l->wake[0]);
            if (l->wake[1] >= 0) close(l->wake[1]);
            free(l->pfd);
            free(l->pconn);
        }
        free(s->loops);
    }
    if (s->listen_fd >= 0) close(s->listen_fd);
    if (s->exporter_added) pm_tracer_remove_exporter(s->tracer, s->exporter_name);
    pm__spankeep_release(s->spans);
    pm_collector_remove(s->coll);
    for (int h = 0; h < PM__H_COUNT; h++) pm_histogram_release(s->h_duration[h]);
    free(s->token);
    free(s->title);
    for (size_t i = 0; i < s->ncharts; i++) free(s->charts[i]);
    free(s->charts);
    free(s);
}

pm_status_t pm_server_new(pm_registry_t *r, const pm_server_opts_t *opts, pm_server_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!r) return PM_EINVAL;
    pm_server_opts_t *defaults = NULL;
    if (!opts) {
        pm_status_t st = pm_server_opts_new(&defaults);
        if (st != PM_OK) return st;
        opts = defaults;
    }
    pm_status_t st = PM_ENOMEM;
    pm_server_t *s = calloc(1, sizeof *s);
    if (!s) goto done;
    s->reg = r;
    s->listen_fd = -1;
    s->start_time = pm__wall_now();
    if ((st = copy_opts(s, opts)) != PM_OK) goto done;
    if ((st = open_listener(s, opts)) != PM_OK) goto done;
    if ((st = self_metrics(s)) != PM_OK) goto done;
    if (s->tracer) {
        static atomic_uint serial;
        if ((st = pm__spankeep_new(opts->recent, &s->spans)) != PM_OK) goto done;
        snprintf(s->exporter_name, sizeof s->exporter_name, "perfmetrics_server_%u_port_%d",
                 atomic_fetch_add(&serial, 1), s->port);
        /* The tracer gets its own reference: it is released on removal. */
        st = pm_tracer_add_exporter(s->tracer, s->exporter_name, pm__spankeep_export,
                                    pm__spankeep_ref(s->spans), pm__spankeep_release);
        if (st != PM_OK) goto done;
        s->exporter_added = 1;
    }
    st = PM_ENOMEM;
    if (!(s->loops = calloc(s->nloops, sizeof *s->loops))) goto done;
    for (unsigned i = 0; i < s->nloops; i++) {
        s->loops[i].wake[0] = s->loops[i].wake[1] = -1;
        s->loops[i].s = s;
    }
    /* Server threads take no signal: the host's handlers stay on its own threads. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (unsigned i = 0; i < s->nloops; i++) {
        pm__loop_t *l = &s->loops[i];
        if (pipe2(l->wake, O_NONBLOCK | O_CLOEXEC) != 0) {
            st = PM_EIO;
            break;
        }
        if (pthread_create(&l->th, NULL, loop_main, l) != 0) {
            st = PM_ETHREAD;
            break;
        }
        l->started = 1;
        st = PM_OK;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
done:
    pm_server_opts_free(defaults);
    if (st != PM_OK) {
        pm_server_free(s);
        return st;
    }
    *out = s;
    return PM_OK;
}

int pm_server_port(const pm_server_t *s) { return s ? s->port : -1; }

pm_status_t pm_server_url(const pm_server_t *s, char *buf, size_t size)
{
    if (!s || !buf || !size) return PM_EINVAL;
    size_t n = strlen(s->url);
    if (n >= size) {
        buf[0] = '\0';
        return PM_ERANGE;
    }
    memcpy(buf, s->url, n + 1);
    return PM_OK;
}

uint64_t pm_server_stat(const pm_server_t *s, pm_server_stat_t which)
{
    if (!s) return 0;
    if (which == PM_SERVER_STAT_OPEN) return (uint64_t)atomic_load(&((pm_server_t *)s)->open);
    if (which < PM_SERVER_STAT_CONNECTIONS || which > PM_SERVER_STAT_UNAUTHORIZED) return 0;
    return atomic_load_explicit(&((pm_server_t *)s)->stat[which], memory_order_relaxed);
}
