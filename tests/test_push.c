/* The push engine (lib/push.c, lib/push_opts.c, lib/http_client.c) against
 * an HTTP server thread written here on 127.0.0.1, whose behaviour each case
 * sets: answering 200 (plain or chunked, kept alive or closed), 500, 429
 * with Retry-After, 400, never answering, closing mid-response, or nothing
 * listening at all. Counts are checked exactly: queued = sent + rejected +
 * dropped + queue, and attempts against what the server saw. */
#include "harness.h"

#include "internal/http_client.h"
#include "internal/push_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <time.h>

/* ---------------------------------------------------------------- server */

/* REQUIRE for helpers that return a value. */
#define MUST(cond)                                                                      \
    do {                                                                                \
        if (!(cond)) {                                                                  \
            fprintf(stderr, "  %s:%d: %s\n", __FILE__, __LINE__, #cond);                 \
            abort();                                                                    \
        }                                                                               \
    } while (0)

enum {
    M_OK,          /* 200, Content-Length, kept alive */
    M_CHUNKED,     /* 200, chunked with an extension and a trailer */
    M_CLOSE,       /* 200 with Connection: close */
    M_500,         /* 500 */
    M_429,         /* 429 with Retry-After: 1 */
    M_400,         /* 400 */
    M_SILENT,      /* reads the request, never answers */
    M_TORN,        /* half a response, then close */
    M_EOF_BODY,    /* 200 without length: body up to the close */
    M_SLOW,        /* 200 after 150 ms */
    M_TRICKLE      /* a 200 whose bytes come one per 100 ms */
};

#define MAX_REQS 256

typedef struct server {
    int lfd;
    int port;
    pthread_t th;
    atomic_int stop;
    atomic_int mode;
    atomic_int fail_first; /* answer the first N requests with `fail_mode`, then `mode` */
    atomic_int fail_mode;
    atomic_int conns, reqs;
    pthread_mutex_t lock;
    char *bodies[MAX_REQS];
    char *heads[MAX_REQS];
    double at[MAX_REQS]; /* arrival, monotonic seconds */
} server;

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void send_str(int fd, const char *s) { (void)send(fd, s, strlen(s), MSG_NOSIGNAL); }

/* Reads one request (head and Content-Length body) into buf; returns its
 * length, 0 on close, -1 on stop. */
static long read_request(server *s, int fd, char *buf, size_t cap, size_t *head_len)
{
    size_t len = 0;
    for (;;) {
        buf[len] = '\0';
        char *e = strstr(buf, "\r\n\r\n");
        if (e) {
            *head_len = (size_t)(e + 4 - buf);
            const char *cl = strstr(buf, "Content-Length: ");
            size_t body = cl ? (size_t)strtoul(cl + 16, NULL, 10) : 0;
            if (len >= *head_len + body) return (long)len;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, 20);
        if (atomic_load(&s->stop)) return -1;
        if (rc <= 0) continue;
        ssize_t r = recv(fd, buf + len, cap - 1 - len, 0);
        if (r <= 0) return 0;
        len += (size_t)r;
    }
}

static void *server_main(void *arg)
{
    server *s = arg;
    static char buf[1 << 20];
    while (!atomic_load(&s->stop)) {
        struct pollfd p = {.fd = s->lfd, .events = POLLIN};
        if (poll(&p, 1, 20) <= 0) continue;
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0) continue;
        atomic_fetch_add(&s->conns, 1);
        for (;;) {
            size_t hl = 0;
            long n = read_request(s, fd, buf, sizeof buf, &hl);
            if (n <= 0) break;
            int i = atomic_load(&s->reqs);
            if (i < MAX_REQS) {
                pthread_mutex_lock(&s->lock);
                s->heads[i] = strndup(buf, hl);
                s->bodies[i] = strndup(buf + hl, (size_t)n - hl);
                s->at[i] = mono();
                pthread_mutex_unlock(&s->lock);
            }
            atomic_fetch_add(&s->reqs, 1);
            int mode = atomic_load(&s->mode);
            if (atomic_load(&s->fail_first) > 0) {
                atomic_fetch_sub(&s->fail_first, 1);
                mode = atomic_load(&s->fail_mode);
            }
            int keep = 1;
            switch (mode) {
            case M_OK: send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"); break;
            case M_CHUNKED:
                send_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                             "3;ext=1\r\nabc\r\n");
                send_str(fd, "a\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n");
                break;
            case M_CLOSE:
                send_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
                keep = 0;
                break;
            case M_500:
                send_str(fd, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\noops");
                break;
            case M_429:
                send_str(fd, "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\n"
                             "Content-Length: 0\r\n\r\n");
                break;
            case M_400: send_str(fd, "HTTP/1.1 400 Bad Request\r\nContent-Length: 3\r\n\r\nbad"); break;
            case M_SILENT:
                /* Holds the connection until the client gives up. */
                while (!atomic_load(&s->stop)) {
                    struct pollfd q = {.fd = fd, .events = POLLIN};
                    if (poll(&q, 1, 20) > 0) {
                        char tmp[256];
                        if (recv(fd, tmp, sizeof tmp, 0) <= 0) break;
                    }
                }
                keep = 0;
                break;
            case M_TORN:
                send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial");
                keep = 0;
                break;
            case M_SLOW: {
                struct timespec ts = {0, 150000000};
                nanosleep(&ts, NULL);
                send_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                break;
            }
            case M_TRICKLE: {
                const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
                for (size_t k = 0; r[k] && !atomic_load(&s->stop); k++) {
                    struct timespec ts = {0, 100000000};
                    nanosleep(&ts, NULL);
                    if (send(fd, r + k, 1, MSG_NOSIGNAL) != 1) break;
                }
                keep = 0;
                break;
            }
            case M_EOF_BODY:
                send_str(fd, "HTTP/1.0 200 OK\r\n\r\nbody up to the close");
                keep = 0;
                break;
            }
            if (!keep) break;
        }
        close(fd);
    }
    return NULL;
}

/* Starts a server on `port` (0: any free one). */
static server *server_start(int port, int mode)
{
    server *s = calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    atomic_store(&s->mode, mode);
    s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    MUST(bind(s->lfd, (struct sockaddr *)&a, sizeof a) == 0);
    MUST(listen(s->lfd, 16) == 0);
    socklen_t al = sizeof a;
    getsockname(s->lfd, (struct sockaddr *)&a, &al);
    s->port = ntohs(a.sin_port);
    MUST(pthread_create(&s->th, NULL, server_main, s) == 0);
    return s;
}

static void server_stop(server *s)
{
    atomic_store(&s->stop, 1);
    pthread_join(s->th, NULL);
    close(s->lfd);
    for (int i = 0; i < MAX_REQS; i++) {
        free(s->bodies[i]);
        free(s->heads[i]);
    }
    free(s);
}

/* A port with nothing listening: bound once, then released. */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, (struct sockaddr *)&a, sizeof a);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

static int wait_reqs(server *s, int n, double timeout)
{
    double end = mono() + timeout;
    while (atomic_load(&s->reqs) < n)
        if (mono() > end) return 0;
        else {
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
    return 1;
}

/* ---------------------------------------------------------------- helpers */

static uint64_t stat_of(pm_push *p, pm_push_stat_t w)
{
    uint64_t v = 0;
    CHECK_OK(pm_push_stat(p, w, &v));
    return v;
}

static void check_balance(pm_push *p)
{
    uint64_t q = stat_of(p, PM_PUSH_STAT_QUEUED), s = stat_of(p, PM_PUSH_STAT_SENT),
             r = stat_of(p, PM_PUSH_STAT_REJECTED), d = stat_of(p, PM_PUSH_STAT_DROPPED),
             n = stat_of(p, PM_PUSH_STAT_QUEUE);
    CHECK_EQ_U64(q, s + r + d + n);
}

static pm_push *make(int port, const pm_push_opts_t *o)
{
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/in", port);
    pm_push *p = NULL;
    CHECK_OK(pm__push_http_new("test", url, o, NULL, NULL, &p));
    MUST(p);
    return p;
}

static pm_buf_t *body_of(const char *text)
{
    pm_buf_t *b = NULL;
    MUST(pm_buf_new(&b) == PM_OK);
    MUST(pm_buf_append(b, text, strlen(text)) == PM_OK);
    return b;
}

static void put(pm_push *p, const char *text)
{
    CHECK_OK(pm__push_enqueue(p, "POST", NULL, body_of(text), "text/plain", NULL, NULL));
}

static pm_push_opts_t *fast_opts(unsigned attempts)
{
    pm_push_opts_t *o = NULL;
    MUST(pm_push_opts_new(&o) == PM_OK);
    CHECK_OK(pm_push_opts_set_timeouts(o, 0.3, 0.6));
    CHECK_OK(pm_push_opts_set_retry(o, attempts, 0.01, 0.02));
    return o;
}

/* ---------------------------------------------------------------- options */

TEST(test_opts_bad_inputs)
{
    pm_push_opts_t *o = NULL;
    CHECK_STATUS(pm_push_opts_new(NULL), PM_EINVAL);
    CHECK_OK(pm_push_opts_new(&o));
    CHECK_STATUS(pm_push_opts_set_name(NULL, "x"), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_set_name(o, NULL), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_set_name(o, ""), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_set_name(o, "bad\xff"), PM_EUTF8);
    CHECK_OK(pm_push_opts_set_name(o, "gw-1"));
    CHECK_STR(pm__push_opts_name(o, "pushgateway"), "gw-1");
    CHECK_STR(pm__push_opts_name(NULL, "pushgateway"), "pushgateway");

    CHECK_STATUS(pm_push_opts_set_timeouts(NULL, 1, 2), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_set_timeouts(o, 0, 2), PM_ERANGE);
    CHECK_STATUS(pm_push_opts_set_timeouts(o, 3, 2), PM_ERANGE);
    CHECK_STATUS(pm_push_opts_set_timeouts(o, 1, 3601), PM_ERANGE);
    CHECK_STATUS(pm_push_opts_set_timeouts(o, NAN, 2), PM_ERANGE);
    CHECK_OK(pm_push_opts_set_timeouts(o, 1, 1));

    CHECK_STATUS(pm_push_opts_set_retry(NULL, 1, 1, 1), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_set_retry(o, 0, 1, 1), PM_ERANGE);
    CHECK_STATUS(pm_push_opts_set_retry(o, 101, 1, 1), PM_ERANGE);
    CHECK_STATUS(pm_push_opts_set_retry(o, 3, 0, 1), PM_ERANGE);
    CHECK_STATUS(pm_push_opts_set_retry(o, 3, 2, 1), PM_ERANGE);
    CHECK_STATUS(pm_push_opts_set_retry(o, 3, NAN, 1), PM_ERANGE);
    CHECK_OK(pm_push_opts_set_retry(o, 100, 0.1, 0.1));

    CHECK_STATUS(pm_push_opts_set_queue(NULL, 1, 1), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_set_queue(o, 0, 1), PM_ERANGE);
    CHECK_STATUS(pm_push_opts_set_queue(o, 1, 0), PM_ERANGE);
    CHECK_OK(pm_push_opts_set_queue(o, 1, 1));

    CHECK_STATUS(pm_push_opts_add_header(NULL, "A", "b"), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_add_header(o, "", "b"), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_add_header(o, "A B", "b"), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_add_header(o, "A:", "b"), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_add_header(o, "A", "b\r\nX: y"), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_add_header(o, "A", NULL), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_add_header(o, "content-length", "1"), PM_EEXIST);
    CHECK_STATUS(pm_push_opts_add_header(o, "HOST", "x"), PM_EEXIST);
    CHECK_STATUS(pm_push_opts_add_header(o, "Transfer-Encoding", "chunked"), PM_EEXIST);
    CHECK_OK(pm_push_opts_add_header(o, "X-Scope-OrgID", "tenant-1"));
    CHECK_STATUS(pm_push_opts_add_header(o, "x-scope-orgid", "tenant-2"), PM_EEXIST);
    CHECK_EQ_U64(pm__push_opts_nheaders(o), 1);

    CHECK_STATUS(pm_push_opts_add_label(NULL, "a", "b"), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_add_label(o, "a", NULL), PM_EINVAL);
    CHECK_STATUS(pm_push_opts_add_label(o, "0a", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_push_opts_add_label(o, "a-b", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_push_opts_add_label(o, "a", "\xc3"), PM_EUTF8);
    CHECK_OK(pm_push_opts_add_label(o, "instance", "host-1"));
    CHECK_OK(pm_push_opts_add_label(o, "path", "a/b"));
    CHECK_STATUS(pm_push_opts_add_label(o, "instance", "again"), PM_EEXIST);
    CHECK_EQ_U64(pm__push_opts_nlabels(o), 2);
    CHECK_STR(pm__push_opts_label_name(o, 1), "path");
    CHECK_STR(pm__push_opts_label_value(o, 1), "a/b");
    CHECK(pm__push_opts_label_name(o, 2) == NULL);

    CHECK(pm__push_opts_wants(o, "anything"));
    CHECK_STATUS(pm_push_opts_add_prefix(o, NULL), PM_EINVAL);
    CHECK_OK(pm_push_opts_add_prefix(o, "job_"));
    CHECK_OK(pm_push_opts_add_prefix(o, "batch_"));
    CHECK(pm__push_opts_wants(o, "job_seconds"));
    CHECK(pm__push_opts_wants(o, "batch_rows"));
    CHECK(!pm__push_opts_wants(o, "http_requests"));

    CHECK_STATUS(pm_push_opts_set_gzip(NULL, 1), PM_EINVAL);
    if (pm_has_zlib()) {
        CHECK_OK(pm_push_opts_set_gzip(o, 1));
        CHECK(pm__push_opts_gzip(o));
    } else {
        CHECK_STATUS(pm_push_opts_set_gzip(o, 1), PM_EUNSUPPORTED);
    }
    /* A copy is deep: the original can go at once. */
    pm_push_opts_t *c = NULL;
    CHECK_OK(pm__push_opts_copy(o, &c));
    pm_push_opts_free(o);
    CHECK_STR(pm__push_opts_name(c, "k"), "gw-1");
    CHECK_STR(pm__push_opts_label_value(c, 0), "host-1");
    CHECK_STR(pm__push_opts_header_value(c, 0), "tenant-1");
    CHECK(!pm__push_opts_wants(c, "http_requests"));
    pm_push_opts_free(c);
    pm_push_opts_free(NULL);
}

TEST(test_url_parse)
{
    pm__url_t u;
    CHECK_OK(pm__url_parse("http://127.0.0.1:9091", &u));
    CHECK_STR(u.host, "127.0.0.1");
    CHECK_STR(u.port, "9091");
    CHECK_STR(u.host_header, "127.0.0.1:9091");
    CHECK_STR(u.path, "/");
    pm__url_free(&u);
    CHECK_OK(pm__url_parse("HTTP://localhost/api/v1/write?x=1", &u));
    CHECK_STR(u.host, "localhost");
    CHECK_STR(u.port, "80");
    CHECK_STR(u.path, "/api/v1/write?x=1");
    pm__url_free(&u);
    CHECK_OK(pm__url_parse("http://[::1]:4318?q", &u));
    CHECK_STR(u.host, "::1");
    CHECK_STR(u.host_header, "[::1]:4318");
    CHECK_STR(u.path, "/?q");
    pm__url_free(&u);
    const char *bad[] = {"https://127.0.0.1/", "127.0.0.1:80", "http://", "http://:80/",
                         "http://h:0/", "http://h:65536/", "http://h:8x/", "http://u@h/",
                         "http://h/a b", "http://h/#frag", "http://[::1/", "http://[]/",
                         "http://h:/", "http://h\x01/", "http://[::1]x/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pm_status_t st = pm__url_parse(bad[i], &u);
        if (st != PM_EINVAL) fprintf(stderr, "accepted %s\n", bad[i]);
        CHECK_STATUS(st, PM_EINVAL);
    }
    CHECK_STATUS(pm__url_parse(NULL, &u), PM_EINVAL);
    pm_push *p = NULL;
    CHECK_STATUS(pm__push_http_new("t", "ftp://x/", NULL, NULL, NULL, &p), PM_EINVAL);
    CHECK(p == NULL);
    CHECK_STATUS(pm__push_http_new("t", "http://no-such-host.invalid/", NULL, NULL, NULL, &p),
                 PM_EIO);
}

static long frame(const char *s, int eof, int *st, int *ka, double *ra)
{
    return pm__http_response_frame(s, strlen(s), eof, st, ka, ra);
}

TEST(test_response_frame)
{
    int st = 0, ka = 0;
    double ra = 0;
    const char *r1 = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    CHECK_EQ_INT(frame(r1, 0, &st, &ka, &ra), (long)strlen(r1));
    CHECK_EQ_INT(st, 200);
    CHECK_EQ_INT(ka, 1);
    CHECK_EQ_DBL(ra, -1);
    /* Every proper prefix needs more bytes, or is torn at EOF. */
    for (size_t i = 0; i < strlen(r1); i++) {
        CHECK_EQ_INT(pm__http_response_frame(r1, i, 0, &st, &ka, &ra), 0);
        CHECK_EQ_INT(pm__http_response_frame(r1, i, 1, &st, &ka, &ra), -1);
    }
    const char *r2 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                     "4;a=b\r\nabcd\r\nA\r\n0123456789\r\n0\r\nT: x\r\n\r\n";
    CHECK_EQ_INT(frame(r2, 0, &st, &ka, &ra), (long)strlen(r2));
    for (size_t i = 0; i < strlen(r2); i++)
        CHECK_EQ_INT(pm__http_response_frame(r2, i, 0, &st, &ka, &ra), 0);
    CHECK_EQ_INT(frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nZ\r\n", 0, &st, &ka,
                       &ra),
                 -1);
    CHECK_EQ_INT(frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n", 0, &st,
                       &ka, &ra),
                 -1);
    CHECK_EQ_INT(frame("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "ffffffffffffffffff\r\n",
                       0, &st, &ka, &ra),
                 -1);
    /* Delimited by the close: complete only at EOF, never kept alive. */
    const char *r3 = "HTTP/1.0 200 OK\r\n\r\nto the end";
    CHECK_EQ_INT(frame(r3, 0, &st, &ka, &ra), 0);
    CHECK_EQ_INT(frame(r3, 1, &st, &ka, &ra), (long)strlen(r3));
    CHECK_EQ_INT(ka, 0);
    /* No body for 204 / 304 whatever the length says; 1xx skipped. */
    const char *r4 = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n";
    CHECK_EQ_INT(frame(r4, 0, &st, &ka, &ra), (long)strlen(r4));
    CHECK_EQ_INT(st, 204);
    const char *r5 = "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nConnection: close\r\n"
                     "Content-Length: 0\r\n\r\n";
    CHECK_EQ_INT(frame(r5, 0, &st, &ka, &ra), (long)strlen(r5));
    CHECK_EQ_INT(st, 429);
    CHECK_EQ_DBL(ra, 7);
    CHECK_EQ_INT(ka, 0);
    frame("HTTP/1.1 503 x\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\nContent-Length: 0\r\n\r\n",
          0, &st, &ka, &ra);
    CHECK_EQ_DBL(ra, -1); /* HTTP-dates are not read */
    const char *bad[] = {"HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 2000 OK\r\n\r\n",
                         "HTTP/1.1 099 x\r\n\r\n",
                         ("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                          "Content-Length: 2\r\n\r\n"), "HTTP/1.1 200 OK\r\n folded\r\n\r\n",
                         "HTTP/1.1 101 Switching\r\n\r\n", "HTTP/1.1 200 OK\rX\r\n\r\n",
                         "xyz\r\n\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        long n = frame(bad[i], 0, &st, &ka, &ra);
        if (n != -1) fprintf(stderr, "accepted #%zu\n", i);
        CHECK_EQ_INT(n, -1);
    }
    /* The reason may be empty (some servers send no space after the code). */
    CHECK(frame("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 0, &st, &ka, &ra) > 0);
    CHECK(frame("HTTP/1.0 200 \r\nContent-Length: 0\r\n\r\n", 0, &st, &ka, &ra) > 0);
    CHECK_EQ_INT(ka, 0); /* HTTP/1.0 without keep-alive */
}

/* ---------------------------------------------------------------- delivery */

TEST(test_delivers_with_keep_alive)
{
    server *s = server_start(0, M_OK);
    pm_push_opts_t *o = fast_opts(1);
    CHECK_OK(pm_push_opts_add_header(o, "X-Scope-OrgID", "t1"));
    pm_push *p = make(s->port, o);
    pm_push_opts_free(o);
    put(p, "one");
    put(p, "two");
    CHECK_OK(pm__push_enqueue(p, "DELETE", "/other/path", NULL, NULL, NULL, NULL));
    CHECK_OK(pm__push_enqueue(p, "PUT", NULL, body_of("three"), "text/plain; version=0.0.4",
                              "identity", "X-Extra: 1\r\n"));
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_INT(atomic_load(&s->reqs), 4);
    CHECK_EQ_INT(atomic_load(&s->conns), 1); /* one connection, kept alive */
    CHECK_STR(s->bodies[0], "one");
    CHECK_STR(s->bodies[1], "two");
    CHECK_STR(s->bodies[2], "");
    CHECK_STR(s->bodies[3], "three");
    CHECK(strncmp(s->heads[0], "POST /in HTTP/1.1\r\n", 19) == 0);
    CHECK(strncmp(s->heads[2], "DELETE /other/path HTTP/1.1\r\n", 29) == 0);
    CHECK(strncmp(s->heads[3], "PUT /in HTTP/1.1\r\n", 18) == 0);
    char host[64];
    snprintf(host, sizeof host, "Host: 127.0.0.1:%d\r\n", s->port);
    CHECK_CONTAINS(s->heads[0], host);
    CHECK_CONTAINS(s->heads[0], "X-Scope-OrgID: t1\r\n");
    CHECK_CONTAINS(s->heads[0], "Content-Length: 3\r\n");
    CHECK_CONTAINS(s->heads[0], "User-Agent: libperfmetrics/");
    CHECK_CONTAINS(s->heads[2], "Content-Length: 0\r\n");
    CHECK_CONTAINS(s->heads[3], "Content-Type: text/plain; version=0.0.4\r\n");
    CHECK_CONTAINS(s->heads[3], "Content-Encoding: identity\r\n");
    CHECK_CONTAINS(s->heads[3], "X-Extra: 1\r\n");
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_QUEUED), 4);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 4);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_ATTEMPTS), 4);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_FAILED), 0);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_BYTES), 11);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_QUEUE), 0);
    check_balance(p);
    uint64_t v;
    CHECK_STATUS(pm_push_stat(NULL, PM_PUSH_STAT_SENT, &v), PM_EINVAL);
    CHECK_STATUS(pm_push_stat(p, (pm_push_stat_t)8, &v), PM_EINVAL);
    CHECK_STATUS(pm_push_stat(p, PM_PUSH_STAT_SENT, NULL), PM_EINVAL);
    CHECK_STATUS(pm_push_flush(NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_push_flush(p, -1), PM_EINVAL);
    pm_push_free(p);
    pm_push_free(NULL);
    server_stop(s);
}

TEST(test_chunked_close_and_eof_answers)
{
    const int modes[] = {M_CHUNKED, M_CLOSE, M_EOF_BODY};
    const int conns[] = {1, 3, 3};
    for (int m = 0; m < 3; m++) {
        server *s = server_start(0, modes[m]);
        pm_push_opts_t *o = fast_opts(1);
        pm_push *p = make(s->port, o);
        pm_push_opts_free(o);
        for (int i = 0; i < 3; i++) put(p, "x");
        CHECK_OK(pm_push_flush(p, 10));
        CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 3);
        CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_FAILED), 0);
        CHECK_EQ_INT(atomic_load(&s->conns), conns[m]);
        check_balance(p);
        pm_push_free(p);
        server_stop(s);
    }
}

TEST(test_server_down_then_back)
{
    int port = free_port();
    pm_push_opts_t *o = fast_opts(3);
    pm_push *p = make(port, o);
    pm_push_opts_free(o);
    put(p, "a");
    put(p, "b");
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 2);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_ATTEMPTS), 6);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_FAILED), 6);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 0);
    check_balance(p);
    /* Back on the same port: delivery resumes with the next payload. */
    server *s = server_start(port, M_OK);
    put(p, "c");
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 1);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_ATTEMPTS), 7);
    CHECK_STR(s->bodies[0], "c");
    check_balance(p);
    pm_push_free(p);
    server_stop(s);
}

TEST(test_timeouts_on_a_silent_server)
{
    server *s = server_start(0, M_SILENT);
    pm_push_opts_t *o = fast_opts(2);
    CHECK_OK(pm_push_opts_set_timeouts(o, 0.1, 0.2));
    pm_push *p = make(s->port, o);
    pm_push_opts_free(o);
    double t0 = mono();
    put(p, "a");
    CHECK_STATUS(pm_push_flush(p, 0.05), PM_ETIMEDOUT);
    CHECK_OK(pm_push_flush(p, 10));
    double took = mono() - t0;
    CHECK(took >= 0.2 && took < 2.0); /* two attempts of 0.1 s steps */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_ATTEMPTS), 2);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_FAILED), 2);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 1);
    CHECK_EQ_INT(atomic_load(&s->reqs), 2);
    check_balance(p);
    pm_push_free(p);
    server_stop(s);
}

/* A slow answer within the step timeout arrives; one trickling in byte by
 * byte, each within the step, still ends at the whole-request deadline. */
TEST(test_slow_and_trickling_servers)
{
    server *s = server_start(0, M_SLOW);
    pm_push_opts_t *o = fast_opts(1);
    CHECK_OK(pm_push_opts_set_timeouts(o, 0.5, 0.6));
    pm_push *p = make(s->port, o);
    put(p, "a");
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 1);
    pm_push_free(p);
    server_stop(s);
    s = server_start(0, M_TRICKLE);
    p = make(s->port, o);
    pm_push_opts_free(o);
    double t0 = mono();
    put(p, "a");
    CHECK_OK(pm_push_flush(p, 10));
    double took = mono() - t0;
    CHECK(took >= 0.55 && took < 1.5); /* the 3.7 s answer is cut at 0.6 s */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 0);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_FAILED), 1);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 1);
    check_balance(p);
    pm_push_free(p);
    server_stop(s);
}

TEST(test_5xx_torn_retried_4xx_rejected)
{
    const int fails[] = {M_500, M_TORN};
    for (int m = 0; m < 2; m++) {
        server *s = server_start(0, M_OK);
        atomic_store(&s->fail_mode, fails[m]);
        atomic_store(&s->fail_first, 2);
        pm_push_opts_t *o = fast_opts(4);
        pm_push *p = make(s->port, o);
        pm_push_opts_free(o);
        put(p, "a");
        CHECK_OK(pm_push_flush(p, 10));
        CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_ATTEMPTS), 3);
        CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_FAILED), 2);
        CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 1);
        CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 0);
        check_balance(p);
        pm_push_free(p);
        server_stop(s);
    }
    server *s = server_start(0, M_400);
    pm_push_opts_t *o = fast_opts(4);
    pm_push *p = make(s->port, o);
    pm_push_opts_free(o);
    put(p, "a");
    put(p, "b");
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_ATTEMPTS), 2); /* never retried */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_REJECTED), 2);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_FAILED), 0);
    CHECK_EQ_INT(atomic_load(&s->conns), 1); /* a 4xx keeps the connection */
    check_balance(p);
    pm_push_free(p);
    server_stop(s);
}

TEST(test_429_retry_after_honoured)
{
    server *s = server_start(0, M_OK);
    atomic_store(&s->fail_mode, M_429);
    atomic_store(&s->fail_first, 1);
    pm_push_opts_t *o = fast_opts(3);
    CHECK_OK(pm_push_opts_set_retry(o, 3, 0.01, 5));
    pm_push *p = make(s->port, o);
    pm_push_opts_free(o);
    put(p, "a");
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 1);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_ATTEMPTS), 2);
    CHECK_EQ_INT(atomic_load(&s->reqs), 2);
    double gap = s->at[1] - s->at[0];
    CHECK(gap >= 0.95 && gap < 3); /* Retry-After: 1, not the 10 ms backoff */
    pm_push_free(p);
    server_stop(s);
    /* Capped at the backoff cap. */
    s = server_start(0, M_OK);
    atomic_store(&s->fail_mode, M_429);
    atomic_store(&s->fail_first, 1);
    o = fast_opts(3);
    CHECK_OK(pm_push_opts_set_retry(o, 3, 0.01, 0.05));
    p = make(s->port, o);
    pm_push_opts_free(o);
    put(p, "a");
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 1);
    gap = s->at[1] - s->at[0];
    CHECK(gap >= 0.04 && gap < 0.9);
    pm_push_free(p);
    server_stop(s);
}

TEST(test_queue_bound_drops_oldest)
{
    server *s = server_start(0, M_OK);
    atomic_store(&s->fail_mode, M_SILENT);
    atomic_store(&s->fail_first, 1);
    pm_push_opts_t *o = fast_opts(2);
    CHECK_OK(pm_push_opts_set_timeouts(o, 0.5, 0.5));
    CHECK_OK(pm_push_opts_set_queue(o, 2, 100));
    pm_push *p = make(s->port, o);
    pm_push_opts_free(o);
    put(p, "A");
    REQUIRE(wait_reqs(s, 1, 5)); /* A is in flight (the server holds it) */
    put(p, "B");
    put(p, "C");
    put(p, "D"); /* over 2 payloads: B goes */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 1);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_QUEUE), 3); /* C, D and A in flight */
    char big[101];
    memset(big, 'x', 100);
    big[100] = '\0';
    put(p, big + 10); /* 90 bytes fit, but 3 payloads do not: C goes */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 2);
    put(p, big); /* 100 bytes: fits only alone, so everything queued goes */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 4);
    pm_buf_t *huge = body_of(big);
    pm_buf_append(huge, "y", 1);
    CHECK_OK(pm__push_enqueue(p, "POST", NULL, huge, NULL, NULL, NULL)); /* over the byte bound */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 5);
    check_balance(p);
    CHECK_OK(pm_push_flush(p, 10));
    /* A retried after its timeout, then the 100-byte one. */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 2);
    CHECK_EQ_INT(atomic_load(&s->reqs), 3);
    CHECK_STR(s->bodies[1], "A");
    CHECK_STR(s->bodies[2], big);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_QUEUED), 7);
    check_balance(p);
    pm_push_free(p);
    server_stop(s);
}

TEST(test_free_with_down_or_silent_server_is_bounded)
{
    int port = free_port();
    pm_push_opts_t *o = fast_opts(100);
    CHECK_OK(pm_push_opts_set_retry(o, 100, 5, 30)); /* long backoff: free must cut it */
    CHECK_OK(pm_push_opts_set_timeouts(o, 0.2, 0.4));
    pm_push *p = make(port, o);
    for (int i = 0; i < 10; i++) put(p, "x");
    REQUIRE(stat_of(p, PM_PUSH_STAT_QUEUED) == 10);
    double t0 = mono();
    pm_push_free(p);
    CHECK(mono() - t0 < 1.0);
    server *s = server_start(0, M_SILENT);
    p = make(s->port, o);
    for (int i = 0; i < 10; i++) put(p, "x");
    REQUIRE(wait_reqs(s, 1, 5));
    t0 = mono();
    pm_push_free(p);
    CHECK(mono() - t0 < 1.2); /* within the whole-request timeout (0.4 s) and slack */
    pm_push_opts_free(o);
    server_stop(s);
}

/* JSON arrays queued behind a payload in flight join into one request. */
TEST(test_json_arrays_coalesce)
{
    server *s = server_start(0, M_OK);
    atomic_store(&s->fail_mode, M_SILENT);
    atomic_store(&s->fail_first, 1);
    pm_push_opts_t *o = fast_opts(2);
    CHECK_OK(pm_push_opts_set_timeouts(o, 0.3, 0.3));
    pm_push *p = make(s->port, o);
    pm_push_opts_free(o);
    CHECK_OK(pm__push_enqueue_json_array(p, "POST", NULL, body_of("[1]"), "application/json"));
    REQUIRE(wait_reqs(s, 1, 5)); /* [1] in flight: never joined */
    CHECK_OK(pm__push_enqueue_json_array(p, "POST", NULL, body_of("[2]"), "application/json"));
    CHECK_OK(pm__push_enqueue_json_array(p, "POST", NULL, body_of("[3,4]"), "application/json"));
    CHECK_OK(pm__push_enqueue_json_array(p, "POST", NULL, body_of("[]"), "application/json"));
    CHECK_OK(pm__push_enqueue_json_array(p, "POST", "/elsewhere", body_of("[5]"),
                                         "application/json"));
    put(p, "plain"); /* not an array: never joined */
    CHECK_OK(pm__push_enqueue_json_array(p, "POST", NULL, body_of("[6]"), "application/json"));
    CHECK_OK(pm__push_enqueue_json_array(p, "POST", NULL, body_of("[7]"), "application/json"));
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_QUEUED), 5);
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_INT(atomic_load(&s->reqs), 6);
    CHECK_STR(s->bodies[1], "[1]");
    CHECK_STR(s->bodies[2], "[2,3,4]");
    CHECK_STR(s->bodies[3], "[5]");
    CHECK(strncmp(s->heads[3], "POST /elsewhere ", 16) == 0);
    CHECK_STR(s->bodies[4], "plain");
    CHECK_STR(s->bodies[5], "[6,7]");
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 5);
    check_balance(p);
    pm_push_free(p);
    server_stop(s);
}

/* ---------------------------------------------------------------- exporter path */

static pm_status_t export_text(const pm_snapshot_t *snap, pm_push *p)
{
    pm_buf_t *b = NULL;
    pm_status_t st = pm_buf_new(&b);
    if (st == PM_OK) st = pm_format(snap, PM_FORMAT_PROMETHEUS, b);
    if (st != PM_OK) {
        pm_buf_free(b);
        return st;
    }
    return pm__push_enqueue(p, "PUT", NULL, b, "text/plain", NULL, NULL);
}

TEST(test_exporter_and_self_metrics)
{
    server *s = server_start(0, M_OK);
    pm_registry_t *r = NULL;
    CHECK_OK(pm_registry_new(NULL, &r));
    pm_counter_t *c = NULL;
    CHECK_OK(pm_counter_new(r, "jobs", "Jobs.", &c));
    pm_counter_inc(c);
    pm_push_opts_t *o = fast_opts(1);
    CHECK_OK(pm_push_opts_set_name(o, "gw"));
    pm_push *p = make(s->port, o);
    CHECK_OK(pm__push_attach_exporter(p, r, export_text));
    /* A second destination with the same name is refused by the exporter API. */
    pm_push *p2 = make(s->port, o);
    CHECK_STATUS(pm__push_attach_exporter(p2, r, export_text), PM_EEXIST);
    pm__push_discard(p2);
    pm_push_opts_free(o);
    CHECK_OK(pm_export_now(r));
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_OK(pm_export_now(r));
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_INT(atomic_load(&s->reqs), 2);
    CHECK_CONTAINS(s->bodies[0], "jobs_total 1\n");
    /* The second push carries the first one's outcome in the self-metrics. */
    CHECK_CONTAINS(s->bodies[1], "perfmetrics_push_payloads_total{push=\"gw\",outcome=\"sent\"} 1\n");
    CHECK_CONTAINS(s->bodies[1], "perfmetrics_push_attempts_total{push=\"gw\",result=\"ok\"} 1\n");
    CHECK_CONTAINS(s->bodies[1], "perfmetrics_push_queue_payloads{push=\"gw\"} ");
    CHECK_CONTAINS(s->bodies[1], "perfmetrics_push_sent_bytes_total{push=\"gw\"} ");
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), 2);
    pm_push_free(p);
    /* Gone from the self-metrics with the destination. */
    pm_snapshot_t *snap = NULL;
    CHECK_OK(pm_snapshot_new(r, &snap));
    pm_buf_t *b = NULL;
    CHECK_OK(pm_buf_new(&b));
    CHECK_OK(pm_format(snap, PM_FORMAT_PROMETHEUS, b));
    CHECK(strstr(pm_buf_data(b), "perfmetrics_push_") == NULL);
    pm_buf_free(b);
    pm_snapshot_release(snap);
    pm_registry_free(r);
    server_stop(s);
}

/* A server that never answers stalls the sender, never the exporter: each
 * export returns at once, and the queue drops exactly what passes its bound. */
TEST(test_exporter_never_waits)
{
    server *s = server_start(0, M_SILENT);
    pm_registry_t *r = NULL;
    CHECK_OK(pm_registry_new(NULL, &r));
    pm_push_opts_t *o = fast_opts(1);
    CHECK_OK(pm_push_opts_set_timeouts(o, 2, 2)); /* longer than the 20 exports take */
    pm_push *p = make(s->port, o);
    pm_push_opts_free(o);
    CHECK_OK(pm__push_attach_exporter(p, r, export_text));
    CHECK_OK(pm_export_now(r));
    REQUIRE(wait_reqs(s, 1, 5)); /* the first is in flight, the server holding it */
    double worst = 0;
    for (int i = 0; i < 19; i++) {
        double t0 = mono();
        CHECK_OK(pm_export_now(r));
        double d = mono() - t0;
        if (d > worst) worst = d;
    }
    CHECK(worst < 0.1);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_QUEUED), 20);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_DROPPED), 3); /* 19 behind the one in flight, bound 16 */
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_QUEUE), 17);
    check_balance(p);
    double t0 = mono();
    pm_push_free(p);
    CHECK(mono() - t0 < 2.8); /* the drain is bounded by the 2 s request timeout */
    pm_registry_free(r);
    server_stop(s);
}

/* Faults drawn at random against many payloads: the books still balance. */
TEST(test_counts_exact_under_faults)
{
    server *s = server_start(0, M_OK);
    pm_push_opts_t *o = fast_opts(2);
    CHECK_OK(pm_push_opts_set_timeouts(o, 0.05, 0.1));
    CHECK_OK(pm_push_opts_set_queue(o, 8, 1 << 20));
    pm_push *p = make(s->port, o);
    pm_push_opts_free(o);
    const int modes[] = {M_OK, M_500, M_400, M_TORN, M_CLOSE, M_CHUNKED, M_SILENT};
    unsigned seed = 12345;
    for (int i = 0; i < 120; i++) {
        seed = seed * 1103515245u + 12345u;
        atomic_store(&s->mode, modes[(seed >> 16) % 7]);
        put(p, "payload");
        if (i % 10 == 9) check_balance(p);
    }
    atomic_store(&s->mode, M_OK);
    CHECK_OK(pm_push_flush(p, 30));
    check_balance(p);
    uint64_t sent = stat_of(p, PM_PUSH_STAT_SENT), rej = stat_of(p, PM_PUSH_STAT_REJECTED),
             att = stat_of(p, PM_PUSH_STAT_ATTEMPTS), failed = stat_of(p, PM_PUSH_STAT_FAILED);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_QUEUED), 120);
    CHECK_EQ_U64(att, sent + rej + failed); /* each attempt ends one way */
    CHECK((uint64_t)atomic_load(&s->reqs) <= att);
    pm_push_free(p);
    server_stop(s);
}

pm_status_t pm__pushgateway_path(const char *base, const char *job, const pm_push_opts_t *o,
                                 char **out);

TEST(test_pushgateway_paths)
{
    pm_push_opts_t *o = NULL;
    CHECK_OK(pm_push_opts_new(&o));
    char *path = NULL;
    CHECK_OK(pm__pushgateway_path("/", "batch", o, &path));
    CHECK_STR(path, "/metrics/job/batch");
    free(path);
    CHECK_OK(pm_push_opts_add_label(o, "instance", "host-1.example_x~"));
    CHECK_OK(pm_push_opts_add_label(o, "path", "/var/tmp"));
    CHECK_OK(pm_push_opts_add_label(o, "empty", ""));
    CHECK_OK(pm_push_opts_add_label(o, "utf", "\xc3\xa9t\xc3\xa9?"));
    CHECK_OK(pm__pushgateway_path("/gw/?x=1", "a/b", o, &path));
    /* base64url of "a/b" is YS9i, of "/var/tmp" L3Zhci90bXA=, of "été?" w6l0w6k_ */
    CHECK_STR(path, "/gw/metrics/job@base64/YS9i/instance/host-1.example_x~"
                    "/path@base64/L3Zhci90bXA=/empty@base64/=/utf@base64/w6l0w6k_");
    free(path);
    pm_push_opts_free(o);

    pm_registry_t *r = NULL;
    CHECK_OK(pm_registry_new(NULL, &r));
    pm_push_t *p = NULL;
    CHECK_STATUS(pm_push_pushgateway_new(NULL, "http://127.0.0.1:1", "j", 0, NULL, &p), PM_EINVAL);
    CHECK_STATUS(pm_push_pushgateway_new(r, NULL, "j", 0, NULL, &p), PM_EINVAL);
    CHECK_STATUS(pm_push_pushgateway_new(r, "http://127.0.0.1:1", "", 0, NULL, &p), PM_EINVAL);
    CHECK_STATUS(pm_push_pushgateway_new(r, "http://127.0.0.1:1", "\xff", 0, NULL, &p), PM_EUTF8);
    CHECK_STATUS(pm_push_pushgateway_new(r, "https://127.0.0.1:1", "j", 0, NULL, &p), PM_EINVAL);
    CHECK_OK(pm_push_pushgateway_new(r, "http://127.0.0.1:1", "j", 0, NULL, &p));
    pm_push_t *p2 = NULL;
    CHECK_STATUS(pm_push_pushgateway_new(r, "http://127.0.0.1:1", "j", 0, NULL, &p2), PM_EEXIST);
    CHECK(p2 == NULL);
    CHECK_STATUS(pm_push_pushgateway_delete(NULL), PM_EINVAL);
    pm_push *other = make(1, NULL);
    CHECK_STATUS(pm_push_pushgateway_delete(other), PM_EINVAL);
    pm_push_free(other);
    pm_push_free(p);
    pm_registry_free(r);
}

/* The prefix filter and the group path against the in-test server. */
TEST(test_pushgateway_requests)
{
    server *s = server_start(0, M_OK);
    pm_registry_opts_t *ro = NULL;
    CHECK_OK(pm_registry_opts_new(&ro));
    CHECK_OK(pm_registry_opts_set_self_metrics(ro, 0));
    pm_registry_t *r = NULL;
    CHECK_OK(pm_registry_new(ro, &r));
    pm_registry_opts_free(ro);
    pm_counter_t *c = NULL;
    CHECK_OK(pm_counter_new(r, "batch_rows", "Rows.", &c));
    pm_counter_add(c, 5);
    pm_counter_t *c2 = NULL;
    CHECK_OK(pm_counter_new(r, "other_rows", "Rows.", &c2));
    pm_push_opts_t *o = fast_opts(1);
    CHECK_OK(pm_push_opts_add_prefix(o, "batch_"));
    CHECK_OK(pm_push_opts_add_label(o, "instance", "h1"));
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", s->port);
    pm_push_t *p = NULL;
    CHECK_OK(pm_push_pushgateway_new(r, url, "nightly", 1, o, &p));
    pm_push_opts_free(o);
    CHECK_OK(pm_export_now(r));
    CHECK_OK(pm_push_pushgateway_delete(p));
    CHECK_OK(pm_push_flush(p, 10));
    CHECK_EQ_INT(atomic_load(&s->reqs), 2);
    CHECK(strncmp(s->heads[0], "POST /metrics/job/nightly/instance/h1 HTTP/1.1\r\n", 48) == 0);
    CHECK_CONTAINS(s->heads[0], "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
    CHECK_STR(s->bodies[0], "# HELP batch_rows_total Rows.\n# TYPE batch_rows_total counter\n"
                            "batch_rows_total 5\n");
    CHECK(strncmp(s->heads[1], "DELETE /metrics/job/nightly/instance/h1 HTTP/1.1\r\n", 50) == 0);
    pm_push_free(p);
    pm_registry_free(r);
    server_stop(s);
}

/* The Alertmanager notifier against the in-test server: events as they
 * happen, the resend of what is firing, and the resolved event with endsAt. */
TEST(test_alertmanager_requests)
{
    server *s = server_start(0, M_OK);
    pm_registry_opts_t *ro = NULL;
    CHECK_OK(pm_registry_opts_new(&ro));
    CHECK_OK(pm_registry_opts_set_self_metrics(ro, 0));
    pm_registry_t *r = NULL;
    CHECK_OK(pm_registry_new(ro, &r));
    pm_registry_opts_free(ro);
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(r, "queue_depth", "Depth.", &g));
    pm_alert_engine_opts_t *eo = NULL;
    CHECK_OK(pm_alert_engine_opts_new(&eo));
    CHECK_OK(pm_alert_engine_opts_set_dispatch_thread(eo, 0));
    CHECK_OK(pm_alert_engine_opts_set_interval(eo, 1));
    pm_alert_engine_t *e = NULL;
    CHECK_OK(pm_alert_engine_new(r, eo, &e));
    pm_alert_engine_opts_free(eo);
    pm_alert_rule_t *rule = NULL;
    CHECK_OK(pm_alert_rule_new("QueueDeep", "queue_depth > 10", &rule, NULL));
    CHECK_OK(pm_alert_engine_add_rule(e, rule));
    pm_alert_rule_free(rule);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/am/", s->port);
    pm_push_t *p = NULL;
    pm_push_opts_t *o = fast_opts(1);
    CHECK_STATUS(pm_push_alertmanager_new(NULL, url, NULL, 1, NULL, o, &p), PM_EINVAL);
    CHECK_STATUS(pm_push_alertmanager_new(e, url, NULL, 0, NULL, o, &p), PM_EINVAL);
    CHECK_STATUS(pm_push_alertmanager_new(e, url, NULL, NAN, NULL, o, &p), PM_EINVAL);
    CHECK_STATUS(pm_push_alertmanager_new(e, "http:/x", NULL, 1, NULL, o, &p), PM_EINVAL);
    CHECK_OK(pm_push_alertmanager_new(e, url, NULL, 0.3, "http://gen/", o, &p));
    pm_push_t *p2 = NULL;
    CHECK_STATUS(pm_push_alertmanager_new(e, url, NULL, 0.3, NULL, o, &p2), PM_EEXIST);
    pm_push_opts_free(o);
    int64_t t = 1700000000LL * 1000000000LL;
    pm_gauge_set(g, 50);
    CHECK_OK(pm_alert_engine_tick(e, t));
    CHECK_OK(pm_alert_engine_deliver(e, 0, NULL));
    CHECK_OK(pm_push_flush(p, 10));
    CHECK(atomic_load(&s->reqs) >= 1);
    CHECK(strncmp(s->heads[0], "POST /am/api/v2/alerts HTTP/1.1\r\n", 33) == 0);
    CHECK_CONTAINS(s->heads[0], "Content-Type: application/json\r\n");
    CHECK_CONTAINS(s->bodies[0], "\"alertname\":\"QueueDeep\"");
    CHECK_CONTAINS(s->bodies[0], "\"generatorURL\":\"http://gen/\"");
    CHECK(strstr(s->bodies[0], "endsAt") == NULL);
    /* The resend: the firing instance again, with no new event. */
    REQUIRE(wait_reqs(s, 3, 10));
    CHECK_CONTAINS(s->bodies[2], "\"alertname\":\"QueueDeep\"");
    pm_gauge_set(g, 0);
    CHECK_OK(pm_alert_engine_tick(e, t + 1000000000LL));
    CHECK_OK(pm_alert_engine_deliver(e, 0, NULL));
    CHECK_OK(pm_push_flush(p, 10));
    int n = atomic_load(&s->reqs);
    int found = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < n && i < MAX_REQS; i++)
        if (s->bodies[i] && strstr(s->bodies[i], "\"endsAt\":\"2023-11-14T22:13:21.000Z\""))
            found++;
    pthread_mutex_unlock(&s->lock);
    CHECK_EQ_INT(found, 1);
    /* Nothing firing: the resends stop. */
    double end = mono() + 0.8;
    int before = atomic_load(&s->reqs);
    while (mono() < end) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    CHECK_EQ_INT(atomic_load(&s->reqs), before);
    CHECK_EQ_U64(stat_of(p, PM_PUSH_STAT_SENT), (uint64_t)before);
    pm_push_free(p);
    /* The notifier went with the destination: a new one may take its name. */
    o = fast_opts(1);
    CHECK_OK(pm_push_alertmanager_new(e, url, NULL, 1, NULL, o, &p));
    pm_push_opts_free(o);
    pm_push_free(p);
    pm_alert_engine_free(e);
    pm_registry_free(r);
    server_stop(s);
}

TEST_MAIN(TH_CASE(test_opts_bad_inputs), TH_CASE(test_url_parse), TH_CASE(test_response_frame),
          TH_CASE(test_delivers_with_keep_alive), TH_CASE(test_chunked_close_and_eof_answers),
          TH_CASE(test_server_down_then_back), TH_CASE(test_timeouts_on_a_silent_server),
          TH_CASE(test_slow_and_trickling_servers),
          TH_CASE(test_5xx_torn_retried_4xx_rejected), TH_CASE(test_429_retry_after_honoured),
          TH_CASE(test_queue_bound_drops_oldest),
          TH_CASE(test_free_with_down_or_silent_server_is_bounded),
          TH_CASE(test_exporter_and_self_metrics), TH_CASE(test_exporter_never_waits), TH_CASE(test_counts_exact_under_faults),
          TH_CASE(test_pushgateway_paths), TH_CASE(test_pushgateway_requests),
          TH_CASE(test_alertmanager_requests), TH_CASE(test_json_arrays_coalesce))
