/* libperfmetrics — the embedded HTTP server answering over loopback, against
 * the in-process work a response needs.
 *
 * Set-up: the registry of bench_exposition (10,000 counter series, 100
 * families x 100 label values, the library's own perfmetrics_* families off)
 * served by pm_server_new on 127.0.0.1 (port 0, the default 2 server
 * threads). The server adds its perfmetrics_http_* families to the registry
 * (about 10 KB of the text); the baselines format them too.
 * Client threads each hold one keep-alive connection and send GET requests
 * back to back, reading every response in full (Content-Length) before the
 * next; a repetition runs for BENCH_REP_MS on 1 or 2 connections at once.
 *
 * Rows: ns/request is per connection (wall x connections / requests, the
 * mean time one client waits for a response); the info column gives the
 * aggregate requests/s and the response body bytes. Baselines, measured in
 * the same run on the main thread: pm_snapshot_new + pm_buf_new + pm_format
 * (+ pm_buf_gzip) of the same registry, which is the work a /metrics or
 * /api/v1/metrics response cannot avoid; for /health, which formats nothing,
 * a loopback round trip through a minimal blocking responder thread that
 * answers with a canned response of the same size as the server's, which is
 * what the sockets alone cost. Cases are interleaved (round r runs
 * repetition r of every case) and each figure is the median of BENCH_REPS
 * repetitions (default 9, at least 7).
 *
 * Threads are not pinned: the server's threads and the clients share the
 * machine's CPUs, as they would in a host process. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "bench_common.h"

#include <perfmetrics/perfmetrics.h>
#include <perfmetrics/server.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 2
#define MAX_HEAD 16384

static void die_errno(const char *what)
{
    fprintf(stderr, "bench_server: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void die_msg(const char *what)
{
    fprintf(stderr, "bench_server: %s\n", what);
    exit(1);
}

/* ------------------------------------------------------------ client */

typedef struct {
    int fd;
    char *buf; /* head and body of the last response */
    size_t cap;
} conn_t;

/* What a response said; filled by the warm-up request of each case. */
typedef struct {
    int status;
    char ctype[96];
    int gzip;
    size_t body;
} resp_t;

static int tcp_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) die_errno("socket");
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) die_errno("connect");
    int one = 1;
    /* Requests are one small write each: Nagle would only add delay. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static void conn_reserve(conn_t *c, size_t need)
{
    if (need <= c->cap) return;
    size_t cap = c->cap ? c->cap : 65536;
    while (cap < need) cap *= 2;
    char *p = realloc(c->buf, cap);
    if (p == NULL) die_msg("out of memory");
    c->buf = p;
    c->cap = cap;
}

static void send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) die_errno("send");
        p += w;
        n -= (size_t)w;
    }
}

/* Reads into c->buf at offset `have`; returns the new length. */
static size_t recv_more(conn_t *c, size_t have)
{
    conn_reserve(c, have + 65536);
    ssize_t got;
    do got = recv(c->fd, c->buf + have, c->cap - have, 0);
    while (got < 0 && errno == EINTR);
    if (got == 0) die_msg("the server closed a keep-alive connection");
    if (got < 0) die_errno("recv");
    return have + (size_t)got;
}

/* The value of header `name` (with its colon) in the head [p, end), or NULL;
 * *len gets its length without trailing blanks. */
static const char *header(const char *p, const char *end, const char *name, size_t *len)
{
    size_t nl = strlen(name);
    for (const char *line = p; line < end;) {
        const char *eol = memmem(line, (size_t)(end - line), "\r\n", 2);
        if (eol == NULL) eol = end;
        if ((size_t)(eol - line) > nl && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl;
            while (v < eol && (*v == ' ' || *v == '\t')) v++;
            const char *ve = eol;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t')) ve--;
            *len = (size_t)(ve - v);
            return v;
        }
        line = eol + 2;
    }
    return NULL;
}

/* Sends one request and reads its whole response into c->buf; returns its
 * length (head and body) and fills *r when not NULL. Dies on anything but a
 * complete response with a Content-Length on a connection that stays open: a
 * bench of a broken server measures nothing. */
static size_t http_get(conn_t *c, const char *req, size_t reqlen, resp_t *r)
{
    send_all(c->fd, req, reqlen);
    size_t have = 0;
    const char *eoh = NULL;
    while (eoh == NULL) {
        if (have > MAX_HEAD) die_msg("response head over 16 KiB");
        have = recv_more(c, have);
        eoh = memmem(c->buf, have, "\r\n\r\n", 4);
    }
    size_t head = (size_t)(eoh - c->buf) + 4, len = 0;
    const char *cl = header(c->buf, eoh, "content-length:", &len);
    if (cl == NULL) die_msg("response without Content-Length");
    size_t body = (size_t)strtoull(cl, NULL, 10);
    while (have < head + body) have = recv_more(c, have);
    if (have != head + body) die_msg("bytes after the response body (none were asked for)");
    if (r == NULL) return have;
    eoh = c->buf + head - 4; /* recv_more may have moved the buffer */
    r->status = (have > 12 && memcmp(c->buf, "HTTP/1.1 ", 9) == 0) ? atoi(c->buf + 9) : -1;
    r->body = body;
    const char *v = header(c->buf, eoh, "content-type:", &len);
    snprintf(r->ctype, sizeof r->ctype, "%.*s", v ? (int)len : 0, v ? v : "");
    v = header(c->buf, eoh, "content-encoding:", &len);
    r->gzip = v != NULL && len == 4 && strncasecmp(v, "gzip", 4) == 0;
    v = header(c->buf, eoh, "connection:", &len);
    if (v != NULL && len == 5 && strncasecmp(v, "close", 5) == 0)
        die_msg("the server answered Connection: close");
    return have;
}

/* One client thread of a repetition: requests back to back for `span` ns. */
typedef struct {
    conn_t *conn;
    const char *req;
    size_t reqlen;
    uint64_t span;
    pthread_barrier_t *start;
    uint64_t t0, t1, n;
} client_t;

static void *client_main(void *p)
{
    client_t *cl = p;
    pthread_barrier_wait(cl->start);
    uint64_t t0 = bench_now(), t1, n = 0;
    do {
        http_get(cl->conn, cl->req, cl->reqlen, NULL);
        n++;
        t1 = bench_now();
    } while (t1 - t0 < cl->span);
    cl->t0 = t0;
    cl->t1 = t1;
    cl->n = n;
    return NULL;
}

/* Runs `nconns` clients at once; returns ns per request per connection. */
static double run_clients(conn_t *conns, unsigned nconns, const char *req, uint64_t span,
                          uint64_t *requests)
{
    pthread_t th[MAX_CONNS];
    client_t cl[MAX_CONNS];
    pthread_barrier_t start;
    if (pthread_barrier_init(&start, NULL, nconns) != 0) die_msg("pthread_barrier_init failed");
    for (unsigned i = 0; i < nconns; i++) {
        cl[i] = (client_t){&conns[i], req, strlen(req), span, &start, 0, 0, 0};
        if (pthread_create(&th[i], NULL, client_main, &cl[i]) != 0)
            die_msg("pthread_create failed");
    }
    uint64_t first = UINT64_MAX, last = 0, n = 0;
    for (unsigned i = 0; i < nconns; i++) {
        pthread_join(th[i], NULL);
        first = cl[i].t0 < first ? cl[i].t0 : first;
        last = cl[i].t1 > last ? cl[i].t1 : last;
        n += cl[i].n;
    }
    pthread_barrier_destroy(&start);
    *requests += n;
    return (double)(last - first) * nconns / (double)n;
}

/* ------------------------------------------------------------ responder baseline */

/* Answers every request on its connection with one canned response. */
typedef struct {
    int fd;
    const char *resp;
    size_t len;
    pthread_t th;
} responder_t;

static void *responder_main(void *p)
{
    responder_t *rs = p;
    char buf[4096];
    size_t have = 0;
    for (;;) {
        ssize_t got = recv(rs->fd, buf + have, sizeof buf - have, 0);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break; /* the client closed: the bench is over */
        have += (size_t)got;
        /* A client sends one request and waits, so a head never straddles two. */
        char *eoh = memmem(buf, have, "\r\n\r\n", 4);
        if (eoh != NULL) {
            send_all(rs->fd, rs->resp, rs->len);
            have = 0;
        } else if (have == sizeof buf) {
            break;
        }
    }
    close(rs->fd);
    return NULL;
}

/* Connects `n` clients to a listener of our own and starts a responder
 * thread for each accepted connection. */
static void responders_start(responder_t *rs, conn_t *conns, unsigned n, const char *resp)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) die_errno("socket");
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof a;
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(lfd, (struct sockaddr *)&a, sizeof a) != 0 || listen(lfd, MAX_CONNS) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0)
        die_errno("listen");
    for (unsigned i = 0; i < n; i++) {
        /* The kernel completes the handshake from the backlog before accept. */
        conns[i].fd = tcp_connect(ntohs(a.sin_port));
        rs[i].fd = accept(lfd, NULL, NULL);
        if (rs[i].fd < 0) die_errno("accept");
        int one = 1;
        setsockopt(rs[i].fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        rs[i].resp = resp;
        rs[i].len = strlen(resp);
        if (pthread_create(&rs[i].th, NULL, responder_main, &rs[i]) != 0)
            die_msg("pthread_create failed");
    }
    close(lfd);
}

/* ------------------------------------------------------------ in-process baselines */

typedef struct {
    pm_registry_t *r;
    pm_format_t fmt;
    int gzip;
    size_t bytes;
} inproc_t;

/* What a /metrics or /api/v1/metrics response cannot avoid: snapshot, format
 * into a new buffer (and gzip it), free. */
static void snapshot_format(void *ctx)
{
    inproc_t *e = ctx;
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL, *z = NULL;
    bench_check(pm_snapshot_new(e->r, &s), "pm_snapshot_new");
    bench_check(pm_buf_new(&b), "pm_buf_new");
    bench_check(pm_format(s, e->fmt, b), "pm_format");
    e->bytes = pm_buf_len(b);
    if (e->gzip) {
        bench_check(pm_buf_new(&z), "pm_buf_new");
        bench_check(pm_buf_gzip(b, z), "pm_buf_gzip");
        e->bytes = pm_buf_len(z);
        pm_buf_free(z);
    }
    pm_buf_free(b);
    pm_snapshot_release(s);
}

/* ------------------------------------------------------------ cases */

typedef struct {
    const char *name;
    const char *short_name; /* baselines: as the other rows' baseline column */
    unsigned conns;         /* 0: in-process baseline on the main thread */
    pm_format_t fmt;        /* baselines */
    int gzip;               /* baselines: also pm_buf_gzip */
    const char *req;        /* client cases */
    conn_t *target;         /* the connections the request goes to */
    const char *ctype;      /* expected Content-Type prefix */
    int want_gzip;          /* expected Content-Encoding: gzip */
    int base;               /* index of the baseline case, -1 for a baseline */
    int skip;
    double v[64];
    double ns;
    uint64_t requests;
    size_t bytes;
} bcase_t;

/* The first request of a case, checked: the rows must measure what they say. */
static void warm_up(bcase_t *c, inproc_t *e)
{
    if (c->conns == 0) {
        e->fmt = c->fmt;
        e->gzip = c->gzip;
        snapshot_format(e);
        snapshot_format(e);
        c->bytes = e->bytes;
        return;
    }
    for (unsigned i = 0; i < c->conns; i++) {
        resp_t r;
        http_get(&c->target[i], c->req, strlen(c->req), &r);
        if (r.status != 200 || strncmp(r.ctype, c->ctype, strlen(c->ctype)) != 0 ||
            r.gzip != c->want_gzip) {
            fprintf(stderr,
                    "bench_server: %s: status %d, Content-Type \"%s\", gzip %d; want 200, "
                    "\"%s...\", gzip %d\n",
                    c->name, r.status, r.ctype, r.gzip, c->ctype, c->want_gzip);
            exit(1);
        }
        c->bytes = r.body;
    }
}

static void measure_all(bcase_t *cs, size_t n, inproc_t *e)
{
    unsigned reps = bench_reps();
    if (reps > 64) reps = 64;
    const uint64_t span = (uint64_t)bench_rep_ms() * 1000000u;
    for (size_t c = 0; c < n; c++)
        if (!cs[c].skip) warm_up(&cs[c], e);
    for (unsigned r = 0; r < reps; r++) {
        for (size_t c = 0; c < n; c++) {
            if (cs[c].skip) continue;
            if (cs[c].conns > 0) {
                cs[c].v[r] =
                    run_clients(cs[c].target, cs[c].conns, cs[c].req, span, &cs[c].requests);
                continue;
            }
            e->fmt = cs[c].fmt;
            e->gzip = cs[c].gzip;
            cs[c].v[r] = bench_repeat_for(span, snapshot_format, e);
        }
    }
    for (size_t c = 0; c < n; c++)
        if (!cs[c].skip) cs[c].ns = bench_median(cs[c].v, reps);
}

#define REQ(path, extra) "GET " path " HTTP/1.1\r\nHost: 127.0.0.1\r\n" extra "\r\n"

int main(void)
{
    inproc_t e = {0};
    e.r = bench_series_registry();

    pm_server_opts_t *so = NULL;
    pm_server_t *srv = NULL;
    bench_check(pm_server_opts_new(&so), "pm_server_opts_new");
    bench_check(pm_server_opts_set_address(so, "127.0.0.1", 0), "pm_server_opts_set_address");
    bench_check(pm_server_new(e.r, so, &srv), "pm_server_new");
    pm_server_opts_free(so);

    conn_t conns[MAX_CONNS] = {{0}}, echo[MAX_CONNS] = {{0}};
    for (unsigned i = 0; i < MAX_CONNS; i++) conns[i].fd = tcp_connect(pm_server_port(srv));

    static const char PROM[] = REQ("/metrics", "Accept: text/plain;version=0.0.4\r\n");
    static const char GZ[] =
        REQ("/metrics", "Accept: text/plain;version=0.0.4\r\nAccept-Encoding: gzip\r\n");
    static const char OM[] =
        REQ("/metrics", "Accept: application/openmetrics-text;version=1.0.0\r\n");
    static const char JSON[] = REQ("/api/v1/metrics", "");
    static const char HEALTH[] = REQ("/health", "");

    /* The responder's canned answer is the server's own /health response,
     * byte for byte, so both move the same bytes. */
    size_t hlen = http_get(&conns[0], HEALTH, strlen(HEALTH), NULL);
    char *canned = malloc(hlen + 1);
    if (canned == NULL) die_msg("out of memory");
    memcpy(canned, conns[0].buf, hlen);
    canned[hlen] = '\0';
    responder_t rs[MAX_CONNS];
    responders_start(rs, echo, MAX_CONNS, canned);

    enum {
        B_PROM,
        B_GZ,
        B_OM,
        B_JSON,
        B_ECHO1,
        B_ECHO2,
        S_PROM1,
        S_PROM2,
        S_GZ1,
        S_GZ2,
        S_OM1,
        S_OM2,
        S_JSON1,
        S_JSON2,
        S_H1,
        S_H2,
        NCASES
    };
    const char *TXT = "text/plain", *OMT = "application/openmetrics-text", *JS = "application/json";
    static bcase_t cs[NCASES];
    cs[B_PROM] = (bcase_t){.name = "baseline: snapshot+format prometheus",
                           .short_name = "format prom",
                           .fmt = PM_FORMAT_PROMETHEUS,
                           .base = -1};
    cs[B_GZ] = (bcase_t){.name = "baseline: snapshot+format+gzip prom",
                         .short_name = "format+gzip prom",
                         .fmt = PM_FORMAT_PROMETHEUS,
                         .gzip = 1,
                         .base = -1};
    cs[B_OM] = (bcase_t){.name = "baseline: snapshot+format openmetrics",
                         .short_name = "format om",
                         .fmt = PM_FORMAT_OPENMETRICS,
                         .base = -1};
    cs[B_JSON] = (bcase_t){.name = "baseline: snapshot+format json",
                           .short_name = "format json",
                           .fmt = PM_FORMAT_JSON,
                           .base = -1};
    cs[B_ECHO1] = (bcase_t){.name = "baseline: loopback canned /health",
                            .short_name = "loopback, 1 conn",
                            .conns = 1,
                            .req = HEALTH,
                            .target = echo,
                            .ctype = JS,
                            .base = -1};
    cs[B_ECHO2] = cs[B_ECHO1];
    cs[B_ECHO2].conns = 2;
    cs[B_ECHO2].short_name = "loopback, 2 conns";
    struct {
        int id, base;
        const char *name, *req, *ctype;
        int gz;
    } srv_cases[] = {
        {S_PROM1, B_PROM, "server 10k: /metrics prometheus", PROM, TXT, 0},
        {S_GZ1, B_GZ, "server 10k: /metrics prometheus gzip", GZ, TXT, 1},
        {S_OM1, B_OM, "server 10k: /metrics openmetrics", OM, OMT, 0},
        {S_JSON1, B_JSON, "server 10k: /api/v1/metrics json", JSON, JS, 0},
        {S_H1, B_ECHO1, "server: /health", HEALTH, JS, 0},
    };
    for (size_t i = 0; i < sizeof srv_cases / sizeof srv_cases[0]; i++) {
        bcase_t c = {.name = srv_cases[i].name,
                     .conns = 1,
                     .req = srv_cases[i].req,
                     .target = conns,
                     .ctype = srv_cases[i].ctype,
                     .want_gzip = srv_cases[i].gz,
                     .base = srv_cases[i].base};
        cs[srv_cases[i].id] = c;
        c.conns = 2;
        /* /health's 2-connection row compares with the 2-connection round trip. */
        if (c.base == B_ECHO1) c.base = B_ECHO2;
        cs[srv_cases[i].id + 1] = c;
    }
    if (!pm_has_zlib()) {
        cs[B_GZ].skip = cs[S_GZ1].skip = cs[S_GZ2].skip = 1;
    }

    measure_all(cs, NCASES, &e);

    for (size_t i = 0; i < NCASES; i++) {
        bcase_t *c = &cs[i];
        unsigned threads = c->conns ? c->conns : 1;
        if (c->skip) {
            bench_row(c->name, threads, -1, NULL, 0, "skipped: library built without zlib");
        } else if (c->base < 0) {
            bench_row(c->name, threads, c->ns, NULL, 0, "%.0f ops/s, %zu B", 1e9 * threads / c->ns,
                      c->bytes);
        } else {
            const bcase_t *b = &cs[c->base];
            bench_row(c->name, threads, c->ns, b->short_name, b->ns,
                      "%.0f req/s over %u connection%s, %zu B body, %llu requests",
                      1e9 * threads / c->ns, threads, threads > 1 ? "s" : "", c->bytes,
                      (unsigned long long)c->requests);
        }
    }

    for (unsigned i = 0; i < MAX_CONNS; i++) {
        close(conns[i].fd);
        free(conns[i].buf);
        close(echo[i].fd);
        pthread_join(rs[i].th, NULL);
        free(echo[i].buf);
    }
    free(canned);
    pm_server_free(srv);
    pm_registry_free(e.r);
    return 0;
}
