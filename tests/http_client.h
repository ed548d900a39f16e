/* The HTTP/1.1 client of the embedded server's tests (tests/test_server.c,
 * tests/test_server_stress.c): plain POSIX sockets to 127.0.0.1, responses
 * read whole with a deadline and split into status line, fields and body
 * (gzip undone with zlib itself), and what the cases wait and count with:
 * a monotonic clock, /proc counts of descriptors and threads, and polling of
 * the server's statistics. Static functions, like harness.h (include that
 * first).
 *
 * Only expect_stat_ touches the harness's counters: the connection functions
 * report what went wrong in their RD_* result and conn_t.err, so client
 * threads may use them freely. */
#ifndef PM_TEST_HTTP_CLIENT_H
#define PM_TEST_HTTP_CLIENT_H

#include "pm_config.h"
#include <perfmetrics/perfmetrics.h>
#include <perfmetrics/server.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#if PM_HAVE_ZLIB
#include <zlib.h>
#endif

#define PROM_CT "text/plain; version=0.0.4; charset=utf-8"
#define OM_CT "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* ================================================================ time */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void nap(double seconds)
{
    struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* ================================================================ /proc counts */

static size_t count_dir(const char *path)
{
    DIR *d = opendir(path);
    size_t n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static size_t open_fds(void) { return count_dir("/proc/self/fd"); }
static size_t thread_count(void) { return count_dir("/proc/self/task"); }

static void *no_op(void *arg) { return arg; }

/* Starts and joins one thread, so that whatever the runtime starts along
 * with a process's first thread (TSan's background thread) is already there
 * when a test takes its baseline thread count. */
static void warm_threads(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, no_op, NULL) == 0) pthread_join(t, NULL);
}

/* The thread count once it is back to `want` (a joined thread may linger
 * in /proc/self/task for a moment), or whatever it is after 2 s. */
static size_t settle_threads(size_t want)
{
    double dl = now_s() + 2;
    size_t n;
    while ((n = thread_count()) != want && now_s() < dl) nap(0.002);
    return n;
}

/* ================================================================ gzip */

#if PM_HAVE_ZLIB
/* Inflates one gzip member with zlib itself; 0 on success, *out malloc'd. */
static int gunzip(const char *in, size_t len, char **out, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return -1;
    size_t cap = 4 * len + 4096, n = 0;
    char *buf = malloc(cap + 1);
    int rc = Z_OK;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    while (buf && rc == Z_OK) {
        if (cap - n < 4096) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        zs.next_out = (Bytef *)buf + n;
        zs.avail_out = (uInt)(cap - n);
        rc = inflate(&zs, Z_NO_FLUSH);
        n = cap - zs.avail_out;
    }
    int ok = rc == Z_STREAM_END && zs.avail_in == 0;
    inflateEnd(&zs);
    if (!ok) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    *outlen = n;
    return 0;
}
#else
static int gunzip(const char *in, size_t len, char **out, size_t *outlen)
{
    (void)in, (void)len, (void)out, (void)outlen;
    return -1; /* a server built without zlib never sends gzip */
}
#endif

/* ================================================================ connections */

enum {
    RD_OK = 0,
    RD_TIMEOUT = 1,
    RD_EOF = 2,
    RD_BAD = 3
};
#define MAX_FIELDS 64

typedef struct conn {
    int fd;
    char *buf; /* received, not yet consumed */
    size_t len, cap;
    int eof;          /* the peer closed (or reset) the connection */
    size_t sent, got; /* bytes written and read, for the byte statistics */
    char what[100];   /* the last request line sent, for messages */
    const char *err;  /* why the last read was not RD_OK */
} conn_t;

typedef struct resp {
    int status;
    char version[16], reason[64];
    size_t nfields;
    char *name[MAX_FIELDS], *value[MAX_FIELDS];
    char *head; /* owns the field strings */
    char *body; /* as received, NUL-terminated */
    size_t blen;
    char *text; /* the body with Content-Encoding: gzip undone */
    size_t tlen;
    int has_cl;
    size_t cl;
} resp_t;

static void resp_free(resp_t *r)
{
    if (r->text != r->body) free(r->text);
    free(r->body);
    free(r->head);
    memset(r, 0, sizeof *r);
}

/* Connects to 127.0.0.1:port; rcvbuf > 0 sets SO_RCVBUF first (before the
 * handshake, so that the window the server sees is that small). */
static int conn_open_rcvbuf(conn_t *c, int port, int rcvbuf)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* A server that stops reading must not hang a send for ever. */
    struct timeval tv = {5, 0};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf > 0) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static int conn_open(conn_t *c, int port) { return conn_open_rcvbuf(c, port, 0); }

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
    c->fd = -1;
    c->buf = NULL;
    c->len = c->cap = 0;
}

/* Sends everything (errors ignored but reported by the return value: a test
 * that talks to a server closing on it may legitimately see EPIPE). */
static int conn_send(conn_t *c, const char *data, size_t len)
{
    size_t i = 0, o = 0;
    for (; i < len && data[i] != '\r' && data[i] != '\n' && o + 1 < sizeof c->what; i++)
        c->what[o++] = isprint((unsigned char)data[i]) ? data[i] : '?';
    if (o) c->what[o] = '\0';
    for (size_t done = 0; done < len;) {
        ssize_t k = send(c->fd, data + done, len - done, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        done += (size_t)k;
        c->sent += (size_t)k;
    }
    return 0;
}

static int conn_sends(conn_t *c, const char *s) { return conn_send(c, s, strlen(s)); }

/* Waits until more bytes arrive (RD_OK), the deadline passes (RD_TIMEOUT)
 * or the peer closes (RD_EOF). */
static int conn_fill(conn_t *c, double deadline)
{
    for (;;) {
        if (c->eof) return RD_EOF;
        double left = deadline - now_s();
        if (left <= 0) return RD_TIMEOUT;
        struct pollfd p = {c->fd, POLLIN, 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR) continue;
        if (n == 0) return RD_TIMEOUT;
        if (c->cap - c->len < 4096) {
            size_t ncap = c->cap ? 2 * c->cap : 16384;
            char *nb = realloc(c->buf, ncap);
            if (!nb) return RD_BAD;
            c->buf = nb;
            c->cap = ncap;
        }
        ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) {
            c->eof = 1; /* 0: orderly close; < 0: reset */
            return RD_EOF;
        }
        c->len += (size_t)k;
        c->got += (size_t)k;
        c->buf[c->len] = '\0';
        return RD_OK;
    }
}

/* 1 when the peer closes within `timeout` seconds (bytes that arrive
 * meanwhile are kept in c->buf), 0 when it is still open. */
static int conn_wait_eof(conn_t *c, double timeout)
{
    double dl = now_s() + timeout;
    int st;
    while ((st = conn_fill(c, dl)) == RD_OK) {
    }
    return st == RD_EOF;
}

/* ================================================================ responses */

static const char *hdr(const resp_t *r, const char *name)
{
    for (size_t i = 0; i < r->nfields; i++)
        if (strcasecmp(r->name[i], name) == 0) return r->value[i];
    return NULL;
}

static size_t hdr_count(const resp_t *r, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < r->nfields; i++) n += strcasecmp(r->name[i], name) == 0;
    return n;
}

/* Whether the comma-separated list header `name` (all its field lines)
 * holds `tok`, compared case-insensitively (Vary, Allow, Connection). */
static int hdr_has_token(const resp_t *r, const char *name, const char *tok)
{
    for (size_t i = 0; i < r->nfields; i++) {
        if (strcasecmp(r->name[i], name) != 0) continue;
        for (const char *p = r->value[i]; *p;) {
            while (*p == ' ' || *p == '\t' || *p == ',') p++;
            size_t n = strcspn(p, ",");
            size_t t = n;
            while (t && (p[t - 1] == ' ' || p[t - 1] == '\t')) t--;
            if (t == strlen(tok) && t && strncasecmp(p, tok, t) == 0) return 1;
            p += n;
        }
    }
    return 0;
}

static int hdr_is(const resp_t *r, const char *name, const char *want)
{
    const char *v = hdr(r, name);
    return v && strcasecmp(v, want) == 0;
}

/* Splits the head (status line and fields, without the final CRLF CRLF). */
static int parse_head(const char *h, size_t n, resp_t *r)
{
    if (!(r->head = strndup(h, n))) return -1;
    char *line = r->head, *nl = strstr(line, "\r\n");
    if (nl) *nl = '\0';
    char *sp = strchr(line, ' ');
    if (!sp || sp - line >= (ptrdiff_t)sizeof r->version || !isdigit((unsigned char)sp[1]) ||
        !isdigit((unsigned char)sp[2]) || !isdigit((unsigned char)sp[3]) ||
        (sp[4] != ' ' && sp[4] != '\0'))
        return -1;
    memcpy(r->version, line, (size_t)(sp - line));
    r->status = atoi(sp + 1);
    snprintf(r->reason, sizeof r->reason, "%s", sp[4] ? sp + 5 : "");
    while (nl) {
        line = nl + 2;
        if ((nl = strstr(line, "\r\n"))) *nl = '\0';
        char *colon = strchr(line, ':');
        if (!colon || colon == line) return -1;
        *colon = '\0';
        char *v = colon + 1, *ve = v + strlen(v);
        while (*v == ' ' || *v == '\t') v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) *--ve = '\0';
        if (r->nfields < MAX_FIELDS) {
            r->name[r->nfields] = line;
            r->value[r->nfields++] = v;
        }
    }
    return 0;
}

/* http_read flags */
#define READ_HEAD 1   /* the response to a HEAD request: no body */
#define READ_FRAMED 2 /* no Content-Length is RD_BAD, not a body read up to the close */

/* Sets c->err for a read that ended with st: RD_TIMEOUT, RD_EOF, or RD_BAD
 * from an allocation. Returns st. */
static int read_failed_(conn_t *c, int st, int mid_body)
{
    if (st == RD_TIMEOUT)
        c->err = mid_body ? "timeout mid-body" : "timeout before the head ended";
    else if (st == RD_EOF)
        c->err = mid_body ? "closed mid-body" : "closed before the head ended";
    else
        c->err = "out of memory";
    return st;
}

/* Reads one response (no body for READ_HEAD, 1xx, 204 and 304; a body framed
 * by Content-Length, else up to the close). A response is RD_BAD when its
 * head does not parse, its Content-Length is not a number, it has
 * Transfer-Encoding (the server frames every body with Content-Length), or
 * its Content-Encoding is not gzip or does not inflate; gzip is undone into
 * r->text. Returns RD_*, with c->err set unless RD_OK; r must be resp_free'd
 * whatever the result. */
static int http_read(conn_t *c, int flags, double timeout, resp_t *r)
{
    memset(r, 0, sizeof *r);
    c->err = NULL;
    double dl = now_s() + timeout;
    const char *end;
    int st;
    while (!(end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL))
        if ((st = conn_fill(c, dl)) != RD_OK) return read_failed_(c, st, 0);
    size_t hlen = (size_t)(end - c->buf) + 4, blen = 0;
    if (parse_head(c->buf, hlen - 4, r) != 0) {
        c->err = "malformed status line or field line";
        return RD_BAD;
    }
    if (hdr(r, "Transfer-Encoding")) {
        c->err = "Transfer-Encoding in a response";
        return RD_BAD;
    }
    const char *cl = hdr(r, "Content-Length");
    if (cl) {
        char *e;
        errno = 0;
        unsigned long long v = strtoull(cl, &e, 10);
        if (e == cl || *e || errno || !isdigit((unsigned char)*cl)) {
            c->err = "Content-Length is not a number";
            return RD_BAD;
        }
        r->has_cl = 1;
        r->cl = (size_t)v;
    } else if (flags & READ_FRAMED) {
        c->err = "no Content-Length";
        return RD_BAD;
    }
    int to_eof = 0;
    if ((flags & READ_HEAD) || r->status / 100 == 1 || r->status == 204 || r->status == 304)
        blen = 0;
    else if (cl)
        blen = r->cl;
    else
        to_eof = 1;
    while (to_eof ? !c->eof : c->len < hlen + blen) {
        st = conn_fill(c, dl);
        if (st == RD_EOF && to_eof) break;
        if (st != RD_OK) return read_failed_(c, st, 1);
    }
    if (to_eof) blen = c->len - hlen;
    if (!(r->body = malloc(blen + 1))) return read_failed_(c, RD_BAD, 1);
    memcpy(r->body, c->buf + hlen, blen);
    r->body[blen] = '\0';
    r->blen = blen;
    memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
    c->len -= hlen + blen;
    r->text = r->body;
    r->tlen = blen;
    const char *ce = hdr(r, "Content-Encoding");
    if (ce && strcasecmp(ce, "gzip") != 0) {
        c->err = "a Content-Encoding other than gzip";
        return RD_BAD;
    }
    if (ce && blen && gunzip(r->body, blen, &r->text, &r->tlen) != 0) {
        r->text = r->body;
        c->err = "Content-Encoding gzip: the body does not inflate";
        return RD_BAD;
    }
    return RD_OK;
}

/* The value of the first sample line starting with `series` (name and
 * labels, e.g. "app_jobs_total") followed by a space; NaN if none. */
static double sample_value(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    return NAN;
}

/* ================================================================ the server */

/* Options for a server on 127.0.0.1 at a port the kernel picks. */
static pm_server_opts_t *local_opts(void)
{
    pm_server_opts_t *o = NULL;
    if (pm_server_opts_new(&o) != PM_OK) return NULL;
    if (pm_server_opts_set_address(o, "127.0.0.1", 0) != PM_OK) {
        pm_server_opts_free(o);
        return NULL;
    }
    return o;
}

/* Polls a server counter until it reaches `want` or 5 s pass, then checks
 * it is exactly `want` (stat updates may trail the response by a moment).
 * The main thread's: it fails the case. */
static void expect_stat_(pm_server_t *s, pm_server_stat_t w, uint64_t want, const char *name,
                         int line)
{
    double dl = now_s() + 5;
    while (pm_server_stat(s, w) != want && now_s() < dl) nap(0.002);
    uint64_t got = pm_server_stat(s, w);
    if (got != want)
        TH_FAIL_("line %d: stat %s = %llu, want %llu", line, name, (unsigned long long)got,
                 (unsigned long long)want);
}
#define EXPECT_STAT(s, w, want) expect_stat_((s), (w), (want), #w, __LINE__)

#endif
