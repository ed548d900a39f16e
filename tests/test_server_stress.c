/* The embedded HTTP server under load (run under TSan in CI).
 *
 * test_scrape_while_recording: RECORDERS threads increment a counter and
 * observe a histogram OPS times each while CLIENTS threads scrape /metrics
 * in a loop (keep-alive and fresh connections, every other one with gzip)
 * until the recorders end. Every response must be a well-formed 200, each
 * client must see the counter and the histogram count never go down, the
 * server's statistics must match what the clients counted, and a final
 * scrape must show the exact totals.
 *
 * test_free_under_load: the server is freed while clients are connected and
 * mid-request (hammering keep-alive scrapes, holding half a request, idle,
 * or not reading their response): pm_server_free returns promptly, every
 * connection is closed, the port stops listening, and no thread or
 * descriptor is left behind. Several rounds, to give races a chance.
 *
 * Threads other than the main one never touch the harness's counters: they
 * record their first failure in their own struct, which the main thread
 * reports after joining them. */
#include "harness.h"

#include "pm_config.h"
#include <perfmetrics/perfmetrics.h>
#include <perfmetrics/server.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#if PM_HAVE_ZLIB
#include <zlib.h>
#endif

#define RECORDERS 4
#define CLIENTS 4
#define OPS 100000L /* per recorder */
#define CHUNK 2000  /* recorders pause after every CHUNK operations... */
#define PAUSE 0.02  /* ...for this long, so recording spans about a second */
#define PROM_CT "text/plain; version=0.0.4; charset=utf-8"

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

static size_t count_dir(const char *path)
{
    DIR *d = opendir(path);
    size_t n = 0;
    if (!d) return 0;
    for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* A count from /proc once it is back to `want`, or whatever it is after 2 s
 * (a joined thread may linger in /proc/self/task for a moment). */
static size_t settle(const char *dir, size_t want)
{
    double dl = now_s() + 2;
    size_t n;
    while ((n = count_dir(dir)) != want && now_s() < dl) nap(0.002);
    return n;
}

static void *no_op(void *arg) { return arg; }

/* Starts and joins one thread, so that whatever the runtime starts along
 * with a process's first thread (TSan's background thread) is already there
 * when a test takes its baseline thread count. */
static void warm_threads(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, no_op, NULL) == 0) pthread_join(t, NULL);
}

/* ================================================================ a small client */

typedef struct sconn {
    int fd;
    char *buf;
    size_t len, cap;
} sconn_t;

typedef struct sresp {
    int status;
    char ctype[256];
    int gzip, close;
    char *body; /* decoded, NUL-terminated */
    size_t blen;
} sresp_t;

static int sc_open(sconn_t *c, int port, int rcvbuf)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {5, 0};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (rcvbuf) setsockopt(c->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    return 0;
}

static void sc_close(sconn_t *c)
{
    if (c->fd >= 0) close(c->fd);
    free(c->buf);
    memset(c, 0, sizeof *c);
    c->fd = -1;
}

static int sc_send(sconn_t *c, const char *s)
{
    for (size_t n = strlen(s), done = 0; done < n;) {
        ssize_t k = send(c->fd, s + done, n - done, MSG_NOSIGNAL);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        done += (size_t)k;
    }
    return 0;
}

/* 1: more bytes; 0: deadline passed; -1: closed or reset. */
static int sc_fill(sconn_t *c, double deadline)
{
    for (;;) {
        double left = deadline - now_s();
        if (left <= 0) return 0;
        struct pollfd p = {c->fd, POLLIN, 0};
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return 0;
        if (c->cap - c->len < 8192) {
            size_t ncap = c->cap ? 2 * c->cap : 65536;
            char *nb = realloc(c->buf, ncap);
            if (!nb) return -1;
            c->buf = nb;
            c->cap = ncap;
        }
        ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len - 1, 0);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) return -1;
        c->len += (size_t)k;
        return 1;
    }
}

#if PM_HAVE_ZLIB
static char *gunzip(const char *in, size_t len, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) return NULL;
    size_t cap = 8 * len + 4096;
    char *out = malloc(cap + 1);
    int rc = Z_OK;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    while (out && rc == Z_OK) {
        if (cap - zs.total_out < 4096) {
            char *nb = realloc(out, 2 * cap + 1);
            if (!nb) break;
            out = nb;
            cap *= 2;
        }
        zs.next_out = (Bytef *)out + zs.total_out;
        zs.avail_out = (uInt)(cap - zs.total_out);
        rc = inflate(&zs, Z_NO_FLUSH);
    }
    *outlen = zs.total_out;
    int ok = rc == Z_STREAM_END && zs.avail_in == 0;
    inflateEnd(&zs);
    if (!ok) {
        free(out);
        return NULL;
    }
    out[*outlen] = '\0';
    return out;
}
#endif

static int has_token(const char *list, const char *tok)
{
    size_t n = strlen(tok);
    for (const char *p = list; *p;) {
        while (*p == ' ' || *p == ',') p++;
        size_t k = strcspn(p, ",");
        size_t t = k;
        while (t && p[t - 1] == ' ') t--;
        if (t == n && strncasecmp(p, tok, n) == 0) return 1;
        p += k;
    }
    return 0;
}

/* Reads one response framed by Content-Length. NULL on success, else what
 * went wrong ("closed" when the connection ended first). */
static const char *sc_read(sconn_t *c, double timeout, sresp_t *r)
{
    memset(r, 0, sizeof *r);
    double dl = now_s() + timeout;
    char *end;
    int st;
    while (!(end = c->len ? memmem(c->buf, c->len, "\r\n\r\n", 4) : NULL))
        if ((st = sc_fill(c, dl)) <= 0) return st < 0 ? "closed" : "timeout";
    size_t hlen = (size_t)(end - c->buf) + 4;
    *end = '\0';
    if (strncmp(c->buf, "HTTP/1.1 ", 9) != 0 || !isdigit((unsigned char)c->buf[9]))
        return "bad status line";
    r->status = atoi(c->buf + 9);
    long long cl = -1;
    for (char *line = strstr(c->buf, "\r\n"); line && line < end; line = strstr(line, "\r\n")) {
        line += 2;
        char *colon = strchr(line, ':'), *eol = strstr(line, "\r\n");
        if (!colon || (eol && colon > eol)) return "bad header line";
        const char *v = colon + 1;
        while (*v == ' ') v++;
        size_t vl = (size_t)((eol ? eol : end) - v);
        size_t nl = (size_t)(colon - line);
        char val[256];
        snprintf(val, sizeof val, "%.*s", (int)vl, v);
        if (nl == 14 && strncasecmp(line, "Content-Length", nl) == 0) {
            if (cl >= 0) return "two Content-Length fields";
            cl = atoll(val);
        } else if (nl == 12 && strncasecmp(line, "Content-Type", nl) == 0) {
            snprintf(r->ctype, sizeof r->ctype, "%s", val);
        } else if (nl == 16 && strncasecmp(line, "Content-Encoding", nl) == 0) {
            if (strcasecmp(val, "gzip") != 0) return "unknown Content-Encoding";
            r->gzip = 1;
        } else if (nl == 10 && strncasecmp(line, "Connection", nl) == 0) {
            r->close = has_token(val, "close");
        } else if (nl == 17 && strncasecmp(line, "Transfer-Encoding", nl) == 0) {
            return "Transfer-Encoding in a response";
        }
    }
    if (cl < 0) return "no Content-Length";
    while (c->len < hlen + (size_t)cl)
        if ((st = sc_fill(c, dl)) <= 0) return st < 0 ? "closed mid-body" : "timeout mid-body";
    const char *raw = c->buf + hlen;
    size_t rl = (size_t)cl;
    if (r->gzip) {
#if PM_HAVE_ZLIB
        if (!(r->body = gunzip(raw, rl, &r->blen))) return "gzip body does not inflate";
#else
        return "gzip from a library without zlib";
#endif
    } else {
        if (!(r->body = malloc(rl + 1))) return "out of memory";
        memcpy(r->body, raw, rl);
        r->body[rl] = '\0';
        r->blen = rl;
    }
    memmove(c->buf, c->buf + hlen + rl, c->len - hlen - rl);
    c->len -= hlen + rl;
    return NULL;
}

/* Prometheus text 0.0.4 as the exposition format defines it: comment lines,
 * and samples `name{label="value",...} value [timestamp]`. NULL if fine. */
static const char *prom_check(const char *t, size_t n)
{
    if (n == 0 || t[n - 1] != '\n') return "does not end with a newline";
    if (strlen(t) != n) return "NUL in the body";
    for (const char *p = t; *p;) {
        const char *eol = strchr(p, '\n');
        if (eol == p) return "empty line";
        if (*p == '#') {
            if (strncmp(p, "# HELP ", 7) != 0 && strncmp(p, "# TYPE ", 7) != 0)
                return "unknown comment";
            p = eol + 1;
            continue;
        }
        if (!(isalpha((unsigned char)*p) || *p == '_' || *p == ':')) return "bad metric name";
        while (isalnum((unsigned char)*p) || *p == '_' || *p == ':') p++;
        if (*p == '{') {
            for (p++; *p != '}';) {
                if (!(isalpha((unsigned char)*p) || *p == '_')) return "bad label name";
                while (isalnum((unsigned char)*p) || *p == '_') p++;
                if (p[0] != '=' || p[1] != '"') return "bad label";
                for (p += 2; *p != '"'; p++) {
                    if (*p == '\n' || !*p) return "unterminated label value";
                    if (*p == '\\' && !strchr("\\\"n", *++p)) return "bad escape";
                }
                p++;
                if (*p == ',')
                    p++;
                else if (*p != '}')
                    return "bad label separator";
            }
            p++;
        }
        if (*p++ != ' ') return "no space before the value";
        char *e;
        strtod(p, &e);
        if (e == p) return "bad value";
        p = e;
        if (*p == ' ') {
            strtoll(p + 1, &e, 10);
            if (e == p + 1) return "bad timestamp";
            p = e;
        }
        if (*p != '\n') return "junk after the value";
        p++;
    }
    return NULL;
}

/* The value of the sample line that starts with `series` and a space. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
    return NAN;
}

/* ================================================================ scrape while recording */

static pm_counter_t *g_ops;
static pm_histogram_t *g_lat;
static _Atomic int recorders_running;
static _Atomic int clients_started;

typedef struct client {
    int id, port;
    uint64_t requests, scrapes, gzipped, fresh;
    uint64_t failures;
    char msg[256]; /* the first failure */
    double last_ops, last_count;
} client_t;

static void client_fail(client_t *cl, const char *fmt, ...)
{
    if (cl->failures++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cl->msg, sizeof cl->msg, fmt, ap);
        va_end(ap);
    }
}

static void *recorder_main(void *arg)
{
    (void)arg;
    /* Start once every client scrapes, so scrapes overlap the recording. */
    while (atomic_load(&clients_started) < CLIENTS) nap(0.001);
    for (long i = 0; i < OPS; i++) {
        pm_counter_inc(g_ops);
        pm_histogram_observe(g_lat, (i & 1) ? 0.5 : 0.25);
        if ((i + 1) % CHUNK == 0) nap(PAUSE);
    }
    atomic_fetch_sub(&recorders_running, 1);
    return NULL;
}

/* Checks one scrape's body and that the totals did not go down. */
static void client_check(client_t *cl, const sresp_t *r, unsigned i)
{
    const char *why;
    if (r->status != 200) {
        client_fail(cl, "scrape %u: status %d", i, r->status);
        return;
    }
    if (strcmp(r->ctype, PROM_CT) != 0) client_fail(cl, "scrape %u: Content-Type %s", i, r->ctype);
    if ((why = prom_check(r->body, r->blen)))
        client_fail(cl, "scrape %u: malformed exposition: %s", i, why);
    double ops = sample(r->body, "stress_ops_total");
    double count = sample(r->body, "stress_latency_seconds_count");
    double inf = sample(r->body, "stress_latency_seconds_bucket{le=\"+Inf\"}");
    if (isnan(ops) || isnan(count) || inf != count)
        client_fail(cl, "scrape %u: samples ops %g count %g +Inf %g", i, ops, count, inf);
    if (ops < cl->last_ops || count < cl->last_count)
        client_fail(cl, "scrape %u: went down: ops %g after %g, count %g after %g", i, ops,
                    cl->last_ops, count, cl->last_count);
    if (ops > RECORDERS * OPS || count > RECORDERS * OPS)
        client_fail(cl, "scrape %u: more than recorded: ops %g count %g", i, ops, count);
    cl->last_ops = ops;
    cl->last_count = count;
}

static void *client_main(void *arg)
{
    client_t *cl = arg;
    sconn_t keep = {.fd = -1};
    atomic_fetch_add(&clients_started, 1);
    for (unsigned i = 0;
         cl->failures < 10 && (atomic_load(&recorders_running) > 0 || cl->scrapes < 5); i++) {
        int fresh = (i + (unsigned)cl->id) % 4 == 0;
        int gz = pm_has_zlib() && (i + (unsigned)cl->id) % 2 == 0;
        sconn_t tmp = {.fd = -1}, *c = fresh ? &tmp : &keep;
        if (c->fd < 0 && sc_open(c, cl->port, 0) != 0) {
            client_fail(cl, "connect: %s", strerror(errno));
            continue;
        }
        char req[256];
        snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s\r\n",
                 cl->port, gz ? "Accept-Encoding: gzip\r\n" : "",
                 fresh ? "Connection: close\r\n" : "");
        sresp_t r;
        memset(&r, 0, sizeof r);
        const char *err = sc_send(c, req) != 0 ? "send failed" : sc_read(c, 10, &r);
        if (err) {
            client_fail(cl, "request %u (%s%s): %s", i, fresh ? "fresh" : "keep-alive",
                        gz ? ", gzip" : "", err);
            sc_close(c);
        } else {
            cl->requests++;
            cl->scrapes += r.status == 200;
            cl->gzipped += r.gzip;
            cl->fresh += fresh;
            client_check(cl, &r, i);
            if (fresh && !r.close) client_fail(cl, "request %u: no Connection: close", i);
            if (fresh && sc_fill(c, now_s() + 5) != -1)
                client_fail(cl, "request %u: not closed after Connection: close", i);
        }
        free(r.body);
        if (fresh) sc_close(&tmp);
    }
    sc_close(&keep);
    return NULL;
}

static pm_server_t *start_server(pm_registry_t *reg, unsigned threads)
{
    pm_server_opts_t *o = NULL;
    pm_server_t *s = NULL;
    if (pm_server_opts_new(&o) != PM_OK) return NULL;
    if (pm_server_opts_set_address(o, "127.0.0.1", 0) == PM_OK &&
        pm_server_opts_set_threads(o, threads) == PM_OK)
        pm_server_new(reg, o, &s);
    pm_server_opts_free(o);
    return s;
}

/* Polls a server counter until it is `want` (stats may trail the response
 * by a moment), then checks it exactly. */
static void expect_stat_(pm_server_t *s, pm_server_stat_t w, uint64_t want, const char *name,
                         int line)
{
    double dl = now_s() + 5;
    while (pm_server_stat(s, w) != want && now_s() < dl) nap(0.002);
    if (pm_server_stat(s, w) != want)
        TH_FAIL_("line %d: %s = %llu, want %llu", line, name,
                 (unsigned long long)pm_server_stat(s, w), (unsigned long long)want);
}
#define EXPECT_STAT(s, w, want) expect_stat_((s), (w), (want), #w, __LINE__)

TEST(test_scrape_while_recording)
{
    pm_registry_t *reg = NULL;
    REQUIRE(pm_registry_new(NULL, &reg) == PM_OK);
    REQUIRE(pm_counter_new(reg, "stress_ops", "Operations.", &g_ops) == PM_OK);
    REQUIRE(pm_histogram_new(reg, "stress_latency_seconds", "Latency.", &g_lat) == PM_OK);
    pm_server_t *srv = start_server(reg, 2);
    REQUIRE(srv);
    int port = pm_server_port(srv);

    client_t cl[CLIENTS];
    pthread_t ct[CLIENTS], rt[RECORDERS];
    memset(cl, 0, sizeof cl);
    atomic_store(&recorders_running, RECORDERS);
    atomic_store(&clients_started, 0);
    double t0 = now_s();
    for (int i = 0; i < CLIENTS; i++) {
        cl[i].id = i;
        cl[i].port = port;
        REQUIRE(pthread_create(&ct[i], NULL, client_main, &cl[i]) == 0);
    }
    for (int i = 0; i < RECORDERS; i++)
        REQUIRE(pthread_create(&rt[i], NULL, recorder_main, NULL) == 0);
    for (int i = 0; i < RECORDERS; i++) pthread_join(rt[i], NULL);
    double t_rec = now_s() - t0;
    for (int i = 0; i < CLIENTS; i++) pthread_join(ct[i], NULL);
    double t_all = now_s() - t0;

    uint64_t requests = 0, scrapes = 0, gzipped = 0, fresh = 0;
    for (int i = 0; i < CLIENTS; i++) {
        if (cl[i].failures)
            TH_FAIL_("client %d: %llu failures, first: %s", i, (unsigned long long)cl[i].failures,
                     cl[i].msg);
        if (cl[i].scrapes < 5)
            TH_FAIL_("client %d: only %llu scrapes", i, (unsigned long long)cl[i].scrapes);
        requests += cl[i].requests;
        scrapes += cl[i].scrapes;
        gzipped += cl[i].gzipped;
        fresh += cl[i].fresh;
    }
    if (pm_has_zlib()) CHECK(gzipped > 0);
    CHECK(fresh > 0);
    /* the server counted what the clients saw */
    EXPECT_STAT(srv, PM_SERVER_STAT_REQUESTS, requests);
    EXPECT_STAT(srv, PM_SERVER_STAT_SCRAPES, scrapes);
    EXPECT_STAT(srv, PM_SERVER_STAT_2XX, requests);
    EXPECT_STAT(srv, PM_SERVER_STAT_4XX, 0);
    EXPECT_STAT(srv, PM_SERVER_STAT_5XX, 0);
    EXPECT_STAT(srv, PM_SERVER_STAT_REJECTED, 0);
    EXPECT_STAT(srv, PM_SERVER_STAT_OPEN, 0);

    /* the final scrape has the exact totals */
    sconn_t c;
    sresp_t r;
    memset(&r, 0, sizeof r);
    REQUIRE(sc_open(&c, port, 0) == 0);
    CHECK(sc_send(&c, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n") == 0);
    const char *err = sc_read(&c, 10, &r);
    if (err) {
        TH_FAIL_("final scrape: %s", err);
    } else {
        CHECK_EQ_INT(r.status, 200);
        CHECK(prom_check(r.body, r.blen) == NULL);
        CHECK_EQ_DBL(sample(r.body, "stress_ops_total"), RECORDERS * OPS);
        CHECK_EQ_DBL(sample(r.body, "stress_latency_seconds_count"), RECORDERS * OPS);
        CHECK_EQ_DBL(sample(r.body, "stress_latency_seconds_bucket{le=\"+Inf\"}"), RECORDERS * OPS);
        /* 0.25 and 0.5 alternate; every partial sum is exact in binary */
        CHECK_EQ_DBL(sample(r.body, "stress_latency_seconds_sum"), RECORDERS * OPS * 0.375);
    }
    free(r.body);
    sc_close(&c);
    CHECK_EQ_DBL(pm_counter_value(g_ops), RECORDERS * OPS);
    printf("  %llu requests (%llu scrapes, %llu gzip, %llu on fresh connections) in %.2f s; "
           "recording took %.2f s; %.0f scrapes/s\n",
           (unsigned long long)requests, (unsigned long long)scrapes, (unsigned long long)gzipped,
           (unsigned long long)fresh, t_all, t_rec, (double)scrapes / t_all);
    pm_server_free(srv);
    pm_registry_free(reg);
}

/* ================================================================ free under load */

#define HAMMERS 3
#define ROUNDS 5

typedef struct hammer {
    int port;
    _Atomic int *stop;
    _Atomic uint64_t answered; /* complete responses */
    uint64_t cut;              /* requests cut short by the free */
    uint64_t failures;
    char msg[256];
} hammer_t;

/* Keep-alive scrapes and health checks as fast as they go. Once the server
 * is gone, connections end (closed, reset or refused): that is expected, a
 * malformed or non-200 complete response is not. */
static void *hammer_main(void *arg)
{
    hammer_t *h = arg;
    sconn_t c = {.fd = -1};
    for (unsigned i = 0; !atomic_load(h->stop); i++) {
        if (c.fd < 0 && sc_open(&c, h->port, 0) != 0) {
            nap(0.001); /* refused: the server is gone; wait for stop */
            continue;
        }
        const char *req = i % 3 ? "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
                                : "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
        sresp_t r;
        memset(&r, 0, sizeof r);
        const char *err = sc_send(&c, req) != 0 ? "closed" : sc_read(&c, 3, &r);
        if (!err) {
            atomic_fetch_add(&h->answered, 1);
            if (r.status != 200 && h->failures++ == 0)
                snprintf(h->msg, sizeof h->msg, "status %d", r.status);
        } else if (strncmp(err, "closed", 6) == 0) {
            h->cut++;
            sc_close(&c);
        } else {
            if (h->failures++ == 0) snprintf(h->msg, sizeof h->msg, "%s", err);
            sc_close(&c);
        }
        free(r.body);
    }
    sc_close(&c);
    return NULL;
}

TEST(test_free_under_load)
{
    pm_registry_t *reg = NULL;
    pm_counter_t *ops;
    REQUIRE(pm_registry_new(NULL, &reg) == PM_OK);
    REQUIRE(pm_counter_new(reg, "stress_ops", "Operations.", &ops) == PM_OK);
    warm_threads();
    size_t fds0 = count_dir("/proc/self/fd"), threads0 = count_dir("/proc/self/task");
    double worst = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pm_server_t *srv = start_server(reg, 2);
        REQUIRE(srv);
        int port = pm_server_port(srv);
        _Atomic int stop = 0;
        hammer_t h[HAMMERS];
        pthread_t ht[HAMMERS];
        for (int i = 0; i < HAMMERS; i++) {
            memset(&h[i], 0, sizeof h[i]);
            h[i].port = port;
            h[i].stop = &stop;
            REQUIRE(pthread_create(&ht[i], NULL, hammer_main, &h[i]) == 0);
        }
        /* three more: half a request, nothing at all, a response not read */
        sconn_t half, idle, unread;
        REQUIRE(sc_open(&half, port, 0) == 0 && sc_open(&idle, port, 0) == 0 &&
                sc_open(&unread, port, 2048) == 0);
        CHECK(sc_send(&half, "GET /metrics HTTP/1.1\r\nHost:") == 0);
        CHECK(sc_send(&unread, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
                               "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n") == 0);
        /* free in the middle of the traffic, not at its start */
        double dl = now_s() + 10;
        for (int i = 0; i < HAMMERS; i++)
            while (atomic_load(&h[i].answered) < 20 && now_s() < dl) nap(0.001);
        for (int i = 0; i < HAMMERS; i++) CHECK(atomic_load(&h[i].answered) >= 20);
        pm_counter_inc(ops);

        double t0 = now_s();
        pm_server_free(srv);
        double took = now_s() - t0;
        worst = took > worst ? took : worst;
        CHECK(took < 5);

        /* every connection was closed by the server */
        sconn_t *held[] = {&half, &idle, &unread};
        for (size_t k = 0; k < 3; k++) {
            int st;
            double end = now_s() + 5;
            while ((st = sc_fill(held[k], end)) == 1) {
            }
            if (st != -1)
                TH_FAIL_("round %d: held connection %zu still open after the free", round, k);
            sc_close(held[k]);
        }
        /* nothing listens any more */
        sconn_t late;
        if (sc_open(&late, port, 0) == 0) {
            TH_FAIL_("round %d: port %d still accepts after the free", round, port);
            sc_close(&late);
        }
        atomic_store(&stop, 1);
        for (int i = 0; i < HAMMERS; i++) {
            pthread_join(ht[i], NULL);
            if (h[i].failures)
                TH_FAIL_("round %d, hammer %d: %llu failures, first: %s", round, i,
                         (unsigned long long)h[i].failures, h[i].msg);
        }
        if (round == 0)
            printf("  round 0: %llu/%llu/%llu answered, %llu/%llu/%llu cut short; "
                   "pm_server_free took %.1f ms\n",
                   (unsigned long long)atomic_load(&h[0].answered),
                   (unsigned long long)atomic_load(&h[1].answered),
                   (unsigned long long)atomic_load(&h[2].answered), (unsigned long long)h[0].cut,
                   (unsigned long long)h[1].cut, (unsigned long long)h[2].cut, took * 1e3);
        CHECK_EQ_U64(settle("/proc/self/task", threads0), threads0);
        CHECK_EQ_U64(count_dir("/proc/self/fd"), fds0);
    }
    printf("  slowest pm_server_free under load: %.1f ms over %d rounds\n", worst * 1e3, ROUNDS);
    /* the registry outlives its servers intact */
    pm_counter_inc(ops);
    CHECK_EQ_DBL(pm_counter_value(ops), ROUNDS + 1);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(reg, &s));
    pm_snapshot_release(s);
    pm_registry_free(reg);
}

TEST_MAIN(TH_CASE(test_scrape_while_recording), TH_CASE(test_free_under_load))
