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

#include "http_client.h"

#include <stdarg.h>
#include <stdatomic.h>

#define RECORDERS 4
#define CLIENTS 4
#define OPS 100000L /* per recorder */
#define CHUNK 2000  /* recorders pause after every CHUNK operations... */
#define PAUSE 0.02  /* ...for this long, so recording spans about a second */

/* ================================================================ responses */

/* One response as every one here must be: HTTP/1.1 and framed by exactly one
 * Content-Length (http_read refuses Transfer-Encoding, a Content-Encoding
 * other than gzip and a gzip body that does not inflate). Returns RD_*, with
 * c->err saying what is wrong unless RD_OK. Client threads call it: it never
 * touches the harness's counters. */
static int read_checked(conn_t *c, double timeout, resp_t *r)
{
    int st = http_read(c, READ_FRAMED, timeout, r);
    if (st != RD_OK) return st;
    if (strcmp(r->version, "HTTP/1.1") != 0) {
        c->err = "not an HTTP/1.1 status line";
        return RD_BAD;
    }
    if (hdr_count(r, "Content-Length") != 1) {
        c->err = "two Content-Length fields";
        return RD_BAD;
    }
    return RD_OK;
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
static void client_check(client_t *cl, const resp_t *r, unsigned i)
{
    const char *why, *ct = hdr(r, "Content-Type");
    if (r->status != 200) {
        client_fail(cl, "scrape %u: status %d", i, r->status);
        return;
    }
    if (!ct || strcmp(ct, PROM_CT) != 0)
        client_fail(cl, "scrape %u: Content-Type %s", i, ct ? ct : "(none)");
    if ((why = prom_check(r->text, r->tlen)))
        client_fail(cl, "scrape %u: malformed exposition: %s", i, why);
    double ops = sample_value(r->text, "stress_ops_total");
    double count = sample_value(r->text, "stress_latency_seconds_count");
    double inf = sample_value(r->text, "stress_latency_seconds_bucket{le=\"+Inf\"}");
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
    conn_t keep = {.fd = -1};
    atomic_fetch_add(&clients_started, 1);
    for (unsigned i = 0;
         cl->failures < 10 && (atomic_load(&recorders_running) > 0 || cl->scrapes < 5); i++) {
        int fresh = (i + (unsigned)cl->id) % 4 == 0;
        int gz = pm_has_zlib() && (i + (unsigned)cl->id) % 2 == 0;
        conn_t tmp = {.fd = -1}, *c = fresh ? &tmp : &keep;
        if (c->fd < 0 && conn_open(c, cl->port) != 0) {
            client_fail(cl, "connect: %s", strerror(errno));
            continue;
        }
        char req[256];
        snprintf(req, sizeof req, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s%s\r\n",
                 cl->port, gz ? "Accept-Encoding: gzip\r\n" : "",
                 fresh ? "Connection: close\r\n" : "");
        resp_t r;
        memset(&r, 0, sizeof r);
        const char *err = NULL;
        if (conn_sends(c, req) != 0)
            err = "send failed";
        else if (read_checked(c, 10, &r) != RD_OK)
            err = c->err;
        if (err) {
            client_fail(cl, "request %u (%s%s): %s", i, fresh ? "fresh" : "keep-alive",
                        gz ? ", gzip" : "", err);
            conn_close(c);
        } else {
            cl->requests++;
            cl->scrapes += r.status == 200;
            cl->gzipped += hdr_is(&r, "Content-Encoding", "gzip");
            cl->fresh += fresh;
            client_check(cl, &r, i);
            if (fresh && !hdr_has_token(&r, "Connection", "close"))
                client_fail(cl, "request %u: no Connection: close", i);
            /* closed, and nothing sent after the response */
            if (fresh && (!conn_wait_eof(c, 5) || c->len))
                client_fail(cl, "request %u: not closed after Connection: close", i);
        }
        resp_free(&r);
        if (fresh) conn_close(&tmp);
    }
    conn_close(&keep);
    return NULL;
}

static pm_server_t *start_server(pm_registry_t *reg, unsigned threads)
{
    pm_server_opts_t *o = local_opts();
    pm_server_t *s = NULL;
    if (o && pm_server_opts_set_threads(o, threads) == PM_OK) pm_server_new(reg, o, &s);
    pm_server_opts_free(o);
    return s;
}

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
    conn_t c;
    resp_t r;
    memset(&r, 0, sizeof r);
    REQUIRE(conn_open(&c, port) == 0);
    CHECK(conn_sends(&c, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n") == 0);
    if (read_checked(&c, 10, &r) != RD_OK) {
        TH_FAIL_("final scrape: %s", c.err);
    } else {
        CHECK_EQ_INT(r.status, 200);
        CHECK(prom_check(r.text, r.tlen) == NULL);
        CHECK_EQ_DBL(sample_value(r.text, "stress_ops_total"), RECORDERS * OPS);
        CHECK_EQ_DBL(sample_value(r.text, "stress_latency_seconds_count"), RECORDERS * OPS);
        CHECK_EQ_DBL(sample_value(r.text, "stress_latency_seconds_bucket{le=\"+Inf\"}"),
                     RECORDERS * OPS);
        /* 0.25 and 0.5 alternate; every partial sum is exact in binary */
        CHECK_EQ_DBL(sample_value(r.text, "stress_latency_seconds_sum"), RECORDERS * OPS * 0.375);
    }
    resp_free(&r);
    conn_close(&c);
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
    conn_t c = {.fd = -1};
    for (unsigned i = 0; !atomic_load(h->stop); i++) {
        if (c.fd < 0 && conn_open(&c, h->port) != 0) {
            nap(0.001); /* refused: the server is gone; wait for stop */
            continue;
        }
        const char *req = i % 3 ? "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
                                : "GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
        resp_t r;
        memset(&r, 0, sizeof r);
        int st = conn_sends(&c, req) != 0 ? RD_EOF : read_checked(&c, 3, &r);
        if (st == RD_OK) {
            atomic_fetch_add(&h->answered, 1);
            if (r.status != 200 && h->failures++ == 0)
                snprintf(h->msg, sizeof h->msg, "status %d", r.status);
        } else if (st == RD_EOF) { /* closed or reset, before or during the response */
            h->cut++;
            conn_close(&c);
        } else {
            if (h->failures++ == 0) snprintf(h->msg, sizeof h->msg, "%s", c.err);
            conn_close(&c);
        }
        resp_free(&r);
    }
    conn_close(&c);
    return NULL;
}

TEST(test_free_under_load)
{
    pm_registry_t *reg = NULL;
    pm_counter_t *ops;
    REQUIRE(pm_registry_new(NULL, &reg) == PM_OK);
    REQUIRE(pm_counter_new(reg, "stress_ops", "Operations.", &ops) == PM_OK);
    warm_threads();
    size_t fds0 = open_fds(), threads0 = thread_count();
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
        conn_t half, idle, unread;
        REQUIRE(conn_open(&half, port) == 0 && conn_open(&idle, port) == 0 &&
                conn_open_rcvbuf(&unread, port, 2048) == 0);
        CHECK(conn_sends(&half, "GET /metrics HTTP/1.1\r\nHost:") == 0);
        CHECK(conn_sends(&unread, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n"
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
        conn_t *held[] = {&half, &idle, &unread};
        for (size_t k = 0; k < 3; k++) {
            if (!conn_wait_eof(held[k], 5))
                TH_FAIL_("round %d: held connection %zu still open after the free", round, k);
            conn_close(held[k]);
        }
        /* nothing listens any more */
        conn_t late;
        if (conn_open(&late, port) == 0) {
            TH_FAIL_("round %d: port %d still accepts after the free", round, port);
            conn_close(&late);
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
        CHECK_EQ_U64(settle_threads(threads0), threads0);
        CHECK_EQ_U64(open_fds(), fds0);
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
