/* The push engine (include/perfmetrics/push.h, lib/internal/push_internal.h):
 * the destination object, its bounded queue, its sender thread with retries,
 * statistics and self-metrics, attaching to a registry or tracer, freeing.
 *
 * Threads. Exporters (on the registry's export thread, pm_export_now or a
 * tracer flush) call the kind, which encodes and calls pm__push_enqueue: a
 * short critical section on p->lock, no I/O, no waiting. The sender thread
 * owns the socket; it holds p->lock only to take the next payload and to
 * wait. Statistics are atomics, read by pm_push_stat and the registry's
 * snapshots without any lock of p.
 *
 * Retries. Attempt k (1-based) that fails is followed, when attempts are
 * left, by a wait drawn uniformly from [0, min(cap, first * 2^(k-1))] ("full
 * jitter": destinations that failed together do not retry together); a 429
 * or 503 with Retry-After waits that long instead, capped at `cap`. A
 * pm_push_free during a wait ends it: the drain that follows makes no more
 * retries. */
#include "internal/format_internal.h"
#include "internal/http_client.h"
#include "internal/push_internal.h"
#include "internal/snapshot_internal.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pm_alloc_t *A = &pm__default_alloc;

typedef struct item {
    struct item *next;
    const char *method, *content_type, *content_encoding, *extra_headers;
    char *path; /* NULL: the URL's */
    pm_buf_t *body;
    size_t bytes;
    int json_array; /* more JSON arrays may be appended while queued */
} item;

enum { R_OK, R_ERROR, R_TIMEOUT, R_5XX, R_429, R_4XX, R_N };
static const char *const result_names[R_N] = {"ok", "error", "timeout", "http_5xx", "http_429",
                                              "http_4xx"};

struct pm_push {
    char *kind, *name;
    pm_push_opts_t *o;
    void *state;
    pm__push_fini_fn fini;
    /* HTTP destinations */
    int http;
    pm__url_t url;
    pm__http_client_t client;
    char *fixed_head; /* "Host: ...\r\nUser-Agent: ...\r\n" + the host's headers */
    double step_s, whole_s, first_s, cap_s;
    unsigned attempts;
    size_t max_payloads, max_bytes;
    uint64_t rng;
    /* queue (lock) */
    pthread_mutex_t lock;
    pthread_cond_t wake; /* the sender: a payload, stop */
    pthread_cond_t idle; /* flushers: queue empty and nothing in flight */
    item *head, *tail;
    size_t qn, qbytes;
    int inflight, stop;
    uint64_t drain_deadline_ns;
    pthread_t thread;
    int thread_running;
    double periodic_s;
    void (*periodic)(pm_push *p);
    void (*detach)(pm_push *p);
    /* statistics */
    _Atomic uint64_t stats[8];
    _Atomic uint64_t results[R_N];
    /* attachment */
    pm_registry *reg;
    pm_exporter_t *exporter;
    pm_status_t (*export_fn)(const pm_snapshot_t *s, pm_push *p);
    pm_tracer_t *tracer;
    pm_status_t (*span_fn)(const pm_span_batch_t *b, pm_push *p);
    pm_push *gnext; /* the list of destinations with a registry, for self-metrics */
};

/* Destinations attached to registries, for their self-metrics. A leaf lock:
 * taken under a snapshot's locks, never while taking another. */
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static pm_push *g_list;

static void count(pm_push *p, pm_push_stat_t w, uint64_t n)
{
    atomic_fetch_add_explicit(&p->stats[w], n, memory_order_relaxed);
}

void pm__push_count(pm_push *p, pm_push_stat_t which, uint64_t n)
{
    if (p && (unsigned)which < 8) count(p, which, n);
}

void *pm__push_state(const pm_push *p) { return p->state; }
const pm_push_opts_t *pm__push_opts(const pm_push *p) { return p->o; }
const char *pm__push_url_path(const pm_push *p) { return p->http ? p->url.path : "/"; }
const char *pm__push_kind(const pm_push *p) { return p->kind; }

pm_status_t pm__push_format_filtered(const pm_snapshot_t *s, const pm_push_opts_t *o,
                                     pm_format_t fmt, pm_buf_t *out)
{
    if (!s || !out) return PM_EINVAL;
    size_t n = pm_snapshot_family_count(s), k = 0;
    for (size_t i = 0; i < n; i++) k += pm__push_opts_wants(o, s->fams[i]->name);
    if (k == n) return pm_format(s, fmt, out);
    /* A view: the same snapshot with fewer families (formatters read the
     * family array and the times only; the view is never released). */
    pm_snap_family_t **fams = pm__alloc(A, (k ? k : 1) * sizeof *fams);
    if (!fams) return PM_ENOMEM;
    k = 0;
    for (size_t i = 0; i < n; i++)
        if (pm__push_opts_wants(o, s->fams[i]->name)) fams[k++] = s->fams[i];
    pm_snapshot_t view;
    memcpy(&view, s, sizeof view);
    view.fams = fams;
    view.nfam = view.capfam = k;
    pm_status_t st = pm_format(&view, fmt, out);
    pm__free(A, fams);
    return st;
}

void pm__push_set_periodic(pm_push *p, double interval_s, void (*fn)(pm_push *p))
{
    pthread_mutex_lock(&p->lock);
    p->periodic_s = interval_s;
    p->periodic = fn;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void pm__push_set_detach(pm_push *p, void (*fn)(pm_push *p)) { p->detach = fn; }

static void item_free(item *it)
{
    pm_buf_free(it->body);
    pm__free(A, it->path);
    pm__free(A, it);
}

/* ---------------------------------------------------------------- queue */

/* Appends the elements of JSON array `add` to the array `to` ("[a]" +
 * "[b,c]" -> "[a,b,c]"). */
static pm_status_t json_array_join(pm_buf_t *to, const pm_buf_t *add)
{
    size_t tl = pm_buf_len(to), al = pm_buf_len(add);
    const char *a = pm_buf_data(add);
    if (al <= 2) return PM_OK; /* "[]" */
    pm_status_t st = pm__buf_reserve(to, tl, al);
    if (st != PM_OK) return st;
    to->data[tl - 1] = ','; /* the closing bracket becomes the separator */
    memcpy(to->data + tl, a + 1, al - 1);
    to->len = tl + al - 1;
    to->data[to->len] = '\0';
    return PM_OK;
}

#define COALESCE_MAX ((size_t)1 << 20)

static pm_status_t enqueue(pm_push *p, const char *method, const char *path, pm_buf_t *body,
                           const char *content_type, const char *content_encoding,
                           const char *extra_headers, int json_array)
{
    if (json_array && body && pm_buf_len(body) >= 2 && p->http) {
        /* A burst of events (an evaluation firing many alerts) becomes one
         * request: joined into the last queued payload, which the sender has
         * not taken yet, while it stays under COALESCE_MAX. */
        int joined = 0;
        pthread_mutex_lock(&p->lock);
        item *t = p->tail;
        size_t add = pm_buf_len(body);
        if (t && t->json_array && strcmp(t->method, method) == 0 &&
            strcmp(t->content_type ? t->content_type : "", content_type ? content_type : "") == 0 &&
            t->bytes + add <= COALESCE_MAX && p->qbytes + add <= p->max_bytes &&
            strcmp(t->path ? t->path : "", path ? path : "") == 0 &&
            json_array_join(t->body, body) == PM_OK) {
            p->qbytes += pm_buf_len(t->body) - t->bytes;
            t->bytes = pm_buf_len(t->body);
            joined = 1;
        }
        pthread_mutex_unlock(&p->lock);
        if (joined) {
            pm_buf_free(body);
            return PM_OK;
        }
    }
    count(p, PM_PUSH_STAT_QUEUED, 1);
    item *it = pm__calloc(A, sizeof *it);
    if (!it || (path && !(it->path = pm__strdup(A, path)))) {
        pm__free(A, it);
        pm_buf_free(body);
        count(p, PM_PUSH_STAT_DROPPED, 1);
        return PM_ENOMEM;
    }
    it->method = method;
    it->content_type = content_type;
    it->content_encoding = content_encoding;
    it->extra_headers = extra_headers;
    it->body = body;
    it->bytes = body ? pm_buf_len(body) : 0;
    it->json_array = json_array;
    if (it->bytes > p->max_bytes || !p->http) {
        item_free(it); /* larger than the whole queue: it alone goes */
        count(p, PM_PUSH_STAT_DROPPED, 1);
        return PM_OK;
    }
    item *dropped = NULL;
    pthread_mutex_lock(&p->lock);
    while (p->head && (p->qn + 1 > p->max_payloads || p->qbytes + it->bytes > p->max_bytes)) {
        item *old = p->head;
        p->head = old->next;
        if (!p->head) p->tail = NULL;
        p->qn--;
        p->qbytes -= old->bytes;
        old->next = dropped;
        dropped = old;
    }
    if (p->tail)
        p->tail->next = it;
    else
        p->head = it;
    p->tail = it;
    p->qn++;
    p->qbytes += it->bytes;
    count(p, PM_PUSH_STAT_QUEUE, 1);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    /* Freed outside the lock: the sender never waits on an exporter's free. */
    for (item *d; (d = dropped);) {
        dropped = d->next;
        item_free(d);
        count(p, PM_PUSH_STAT_DROPPED, 1);
        atomic_fetch_sub_explicit(&p->stats[PM_PUSH_STAT_QUEUE], 1, memory_order_relaxed);
    }
    return PM_OK;
}

pm_status_t pm__push_enqueue(pm_push *p, const char *method, const char *path, pm_buf_t *body,
                             const char *content_type, const char *content_encoding,
                             const char *extra_headers)
{
    return enqueue(p, method, path, body, content_type, content_encoding, extra_headers, 0);
}

pm_status_t pm__push_enqueue_json_array(pm_push *p, const char *method, const char *path,
                                        pm_buf_t *body, const char *content_type)
{
    return enqueue(p, method, path, body, content_type, NULL, NULL, 1);
}

/* ---------------------------------------------------------------- sending */

static uint64_t rng_next(pm_push *p)
{
    /* xorshift64*: only the spread of retries depends on it. */
    uint64_t x = p->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Full jitter: uniform in [0, min(cap, first * 2^(k-1))] for attempt k. */
static double backoff(pm_push *p, unsigned k, double retry_after)
{
    if (retry_after >= 0) return retry_after < p->cap_s ? retry_after : p->cap_s;
    double top = p->first_s * ldexp(1.0, (int)(k > 60 ? 60 : k - 1));
    if (top > p->cap_s) top = p->cap_s;
    return top * ((double)(rng_next(p) >> 11) * 0x1.0p-53);
}

static char *build_head(pm_push *p, const item *it)
{
    pm_buf_t *b = NULL;
    if (pm_buf_new(&b) != PM_OK) return NULL;
    char len[32];
    snprintf(len, sizeof len, "%zu", it->bytes);
    const char *parts[] = {it->method, " ", it->path ? it->path : p->url.path, " HTTP/1.1\r\n",
                           p->fixed_head};
    pm_status_t st = PM_OK;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && st == PM_OK; i++)
        st = pm_buf_append(b, parts[i], strlen(parts[i]));
    if (st == PM_OK && it->content_type) {
        st = pm_buf_append(b, "Content-Type: ", 14);
        if (st == PM_OK) st = pm_buf_append(b, it->content_type, strlen(it->content_type));
        if (st == PM_OK) st = pm_buf_append(b, "\r\n", 2);
    }
    if (st == PM_OK && it->content_encoding) {
        st = pm_buf_append(b, "Content-Encoding: ", 18);
        if (st == PM_OK) st = pm_buf_append(b, it->content_encoding, strlen(it->content_encoding));
        if (st == PM_OK) st = pm_buf_append(b, "\r\n", 2);
    }
    if (st == PM_OK && it->extra_headers)
        st = pm_buf_append(b, it->extra_headers, strlen(it->extra_headers));
    /* Content-Length even when 0: a DELETE or empty POST is then framed. */
    if (st == PM_OK) st = pm_buf_append(b, "Content-Length: ", 16);
    if (st == PM_OK) st = pm_buf_append(b, len, strlen(len));
    if (st == PM_OK) st = pm_buf_append(b, "\r\n\r\n", 4);
    if (st != PM_OK) {
        pm_buf_free(b);
        return NULL;
    }
    char *s = pm__strdup(A, pm_buf_data(b));
    pm_buf_free(b);
    return s;
}

/* Waits on p->wake until deadline (monotonic ns) or stop, or with `for_work`
 * until a payload is queued; under p->lock. */
static void wait_until(pm_push *p, uint64_t deadline_ns, int for_work)
{
    while (!p->stop && !(for_work && p->head)) {
        uint64_t now = pm__mono_ns();
        if (now >= deadline_ns) return;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts = pm__timespec_after(ts, (double)(deadline_ns - now) * 1e-9);
        pthread_cond_timedwait(&p->wake, &p->lock, &ts);
    }
}

/* Sends one payload with its retries; called without p->lock. */
static void deliver(pm_push *p, item *it)
{
    char *head = build_head(p, it);
    if (!head) {
        count(p, PM_PUSH_STAT_DROPPED, 1);
        return;
    }
    const char *body = it->body ? pm_buf_data(it->body) : NULL;
    for (unsigned k = 1;; k++) {
        uint64_t start = pm__mono_ns();
        uint64_t deadline = start + (uint64_t)(p->whole_s * 1e9);
        pthread_mutex_lock(&p->lock);
        int stopping = p->stop;
        if (stopping && p->drain_deadline_ns < deadline) deadline = p->drain_deadline_ns;
        pthread_mutex_unlock(&p->lock);
        if (stopping && start >= deadline) {
            count(p, PM_PUSH_STAT_DROPPED, 1);
            break;
        }
        pm__http_result_t res;
        count(p, PM_PUSH_STAT_ATTEMPTS, 1);
        pm__http_exchange(&p->client, head, strlen(head), body, it->bytes, p->step_s, deadline,
                          &res);
        int r = res.outcome == PM__HTTP_RES_TIMEOUT ? R_TIMEOUT
                : res.outcome != PM__HTTP_RES_OK   ? R_ERROR
                : res.status < 300                 ? R_OK
                : res.status == 429                ? R_429
                : res.status >= 500                ? R_5XX
                                                   : R_4XX;
        atomic_fetch_add_explicit(&p->results[r], 1, memory_order_relaxed);
        if (r == R_OK) {
            count(p, PM_PUSH_STAT_SENT, 1);
            count(p, PM_PUSH_STAT_BYTES, it->bytes);
            break;
        }
        if (r == R_4XX) { /* the payload itself is wrong: sending it again cannot help */
            count(p, PM_PUSH_STAT_REJECTED, 1);
            break;
        }
        count(p, PM_PUSH_STAT_FAILED, 1);
        if (k >= p->attempts) {
            count(p, PM_PUSH_STAT_DROPPED, 1);
            break;
        }
        double ra = (r == R_429 || r == R_5XX) ? res.retry_after : -1;
        double wait = backoff(p, k, ra);
        pthread_mutex_lock(&p->lock);
        if (!p->stop) wait_until(p, pm__mono_ns() + (uint64_t)(wait * 1e9), 0);
        stopping = p->stop;
        pthread_mutex_unlock(&p->lock);
        if (stopping) { /* draining: no more retries */
            count(p, PM_PUSH_STAT_DROPPED, 1);
            break;
        }
    }
    pm__free(A, head);
}

static void *sender(void *arg)
{
    pm_push *p = arg;
    uint64_t next_periodic = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        if (p->periodic && !p->stop) {
            uint64_t now = pm__mono_ns();
            if (!next_periodic) next_periodic = now + (uint64_t)(p->periodic_s * 1e9);
            if (now >= next_periodic) {
                next_periodic = now + (uint64_t)(p->periodic_s * 1e9);
                pthread_mutex_unlock(&p->lock);
                p->periodic(p);
                pthread_mutex_lock(&p->lock);
                continue;
            }
        }
        if (!p->head) {
            if (p->stop) break;
            if (p->periodic) {
                wait_until(p, next_periodic, 1);
            } else {
                pthread_cond_wait(&p->wake, &p->lock);
            }
            continue;
        }
        if (p->stop && pm__mono_ns() >= p->drain_deadline_ns) break;
        item *it = p->head;
        p->head = it->next;
        if (!p->head) p->tail = NULL;
        p->qn--;
        p->qbytes -= it->bytes;
        p->inflight = 1;
        pthread_mutex_unlock(&p->lock);
        deliver(p, it);
        item_free(it);
        atomic_fetch_sub_explicit(&p->stats[PM_PUSH_STAT_QUEUE], 1, memory_order_relaxed);
        pthread_mutex_lock(&p->lock);
        p->inflight = 0;
        if (!p->head) pthread_cond_broadcast(&p->idle);
    }
    pthread_mutex_unlock(&p->lock);
    pm__http_client_close(&p->client);
    return NULL;
}

/* ---------------------------------------------------------------- creation */

static pm_status_t common_new(const char *kind, const pm_push_opts_t *o, void *state,
                              pm__push_fini_fn fini, pm_push **out)
{
    *out = NULL;
    pm_push *p = pm__calloc(A, sizeof *p);
    if (!p) {
        if (fini) fini(state);
        return PM_ENOMEM;
    }
    p->state = state;
    p->fini = fini;
    p->client.fd = -1;
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->wake, &ca);
    pthread_cond_init(&p->idle, &ca);
    pthread_condattr_destroy(&ca);
    *out = p;
    if (pm__push_opts_copy(o, &p->o) != PM_OK) return PM_ENOMEM;
    p->kind = pm__strdup(A, kind);
    p->name = pm__strdup(A, pm__push_opts_name(o, kind));
    if (!p->kind || !p->name) return PM_ENOMEM;
    pm__push_opts_timeouts(p->o, &p->step_s, &p->whole_s);
    pm__push_opts_retry(p->o, &p->attempts, &p->first_s, &p->cap_s);
    pm__push_opts_queue(p->o, &p->max_payloads, &p->max_bytes);
    p->rng = (pm__mono_ns() ^ (uint64_t)(uintptr_t)p) | 1;
    return PM_OK;
}

static pm_status_t fixed_head(pm_push *p)
{
    pm_buf_t *b = NULL;
    pm_status_t st = pm_buf_new(&b);
    const char *parts[] = {"Host: ", p->url.host_header, "\r\nUser-Agent: libperfmetrics/",
                           PM_VERSION_STRING, "\r\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0] && st == PM_OK; i++)
        st = pm_buf_append(b, parts[i], strlen(parts[i]));
    for (size_t i = 0; i < pm__push_opts_nheaders(p->o) && st == PM_OK; i++) {
        const char *n = pm__push_opts_header_name(p->o, i), *v = pm__push_opts_header_value(p->o, i);
        st = pm_buf_append(b, n, strlen(n));
        if (st == PM_OK) st = pm_buf_append(b, ": ", 2);
        if (st == PM_OK) st = pm_buf_append(b, v, strlen(v));
        if (st == PM_OK) st = pm_buf_append(b, "\r\n", 2);
    }
    if (st == PM_OK && !(p->fixed_head = pm__strdup(A, pm_buf_data(b)))) st = PM_ENOMEM;
    pm_buf_free(b);
    return st;
}

pm_status_t pm__push_http_new(const char *kind, const char *url, const pm_push_opts_t *o,
                              void *state, pm__push_fini_fn fini, pm_push **out)
{
    pm_push *p;
    pm_status_t st = common_new(kind, o, state, fini, &p);
    if (st == PM_OK) {
        p->http = 1;
        st = pm__url_parse(url, &p->url);
    }
    if (st == PM_OK) st = pm__http_client_init(&p->client, p->url.host, p->url.port);
    if (st == PM_OK) st = fixed_head(p);
    if (st == PM_OK) {
        if (pthread_create(&p->thread, NULL, sender, p) == 0)
            p->thread_running = 1;
        else
            st = PM_ETHREAD;
    }
    if (st != PM_OK) {
        pm__push_discard(p);
        p = NULL;
    }
    *out = p;
    return st;
}

pm_status_t pm__push_local_new(const char *kind, const pm_push_opts_t *o, void *state,
                               pm__push_fini_fn fini, pm_push **out)
{
    pm_push *p;
    pm_status_t st = common_new(kind, o, state, fini, &p);
    if (st != PM_OK) {
        pm__push_discard(p);
        p = NULL;
    }
    *out = p;
    return st;
}

/* ---------------------------------------------------------------- attaching */

static pm_status_t export_trampoline(const pm_snapshot_t *s, void *user)
{
    pm_push *p = user;
    return p->export_fn(s, p);
}

static pm_status_t span_trampoline(const pm_span_batch_t *b, void *user)
{
    pm_push *p = user;
    return p->span_fn(b, p);
}

pm_status_t pm__push_attach_exporter(pm_push *p, pm_registry *r,
                                     pm_status_t (*fn)(const pm_snapshot_t *s, pm_push *p))
{
    p->export_fn = fn;
    pm_status_t st = pm_exporter_add(r, p->name, export_trampoline, p, NULL, &p->exporter);
    if (st != PM_OK) return st;
    p->reg = r;
    pthread_mutex_lock(&g_lock);
    p->gnext = g_list;
    g_list = p;
    pthread_mutex_unlock(&g_lock);
    return PM_OK;
}

pm_status_t pm__push_attach_tracer(pm_push *p, pm_tracer_t *t,
                                   pm_status_t (*fn)(const pm_span_batch_t *b, pm_push *p))
{
    p->span_fn = fn;
    pm_status_t st = pm_tracer_add_exporter(t, p->name, span_trampoline, p, NULL);
    if (st == PM_OK) p->tracer = t;
    return st;
}

/* ---------------------------------------------------------------- running */

pm_status_t pm_push_stat(const pm_push_t *p, pm_push_stat_t which, uint64_t *value)
{
    if (value) *value = 0;
    if (!p || !value || (unsigned)which > PM_PUSH_STAT_QUEUE) return PM_EINVAL;
    *value = atomic_load_explicit(&p->stats[which], memory_order_relaxed);
    return PM_OK;
}

pm_status_t pm_push_flush(pm_push_t *p, double timeout_s)
{
    if (!p || !(timeout_s >= 0) || timeout_s > 1e9) return PM_EINVAL;
    if (!p->http) return PM_OK;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts = pm__timespec_after(ts, timeout_s);
    pm_status_t st = PM_OK;
    pthread_mutex_lock(&p->lock);
    while (p->head || p->inflight) {
        if (pthread_cond_timedwait(&p->idle, &p->lock, &ts) == ETIMEDOUT) {
            st = (p->head || p->inflight) ? PM_ETIMEDOUT : PM_OK;
            break;
        }
    }
    pthread_mutex_unlock(&p->lock);
    return st;
}

void pm__push_discard(pm_push *p)
{
    if (!p) return;
    if (p->thread_running) {
        pthread_mutex_lock(&p->lock);
        p->stop = 1;
        p->drain_deadline_ns = pm__mono_ns() + (uint64_t)(p->whole_s * 1e9);
        pthread_cond_broadcast(&p->wake);
        pthread_mutex_unlock(&p->lock);
        pthread_join(p->thread, NULL);
    }
    for (item *it = p->head, *next; it; it = next) {
        next = it->next;
        item_free(it);
        count(p, PM_PUSH_STAT_DROPPED, 1);
        atomic_fetch_sub_explicit(&p->stats[PM_PUSH_STAT_QUEUE], 1, memory_order_relaxed);
    }
    if (p->fini) p->fini(p->state);
    pm__http_client_fini(&p->client);
    pm__url_free(&p->url);
    pm_push_opts_free(p->o);
    pm__free(A, p->fixed_head);
    pm__free(A, p->kind);
    pm__free(A, p->name);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->idle);
    pthread_mutex_destroy(&p->lock);
    pm__free(A, p);
}

void pm_push_free(pm_push_t *p)
{
    if (!p) return;
    if (p->detach) p->detach(p);
    if (p->exporter) {
        pthread_mutex_lock(&g_lock);
        for (pm_push **pp = &g_list; *pp; pp = &(*pp)->gnext)
            if (*pp == p) {
                *pp = p->gnext;
                break;
            }
        pthread_mutex_unlock(&g_lock);
        (void)pm_exporter_remove(p->exporter);
        p->exporter = NULL;
    }
    if (p->tracer) (void)pm_tracer_remove_exporter(p->tracer, p->name);
    pm__push_discard(p);
}

/* ---------------------------------------------------------------- self-metrics */

pm_status_t pm__push_self_metrics(pm_registry *r, pm_snapshot_t *s)
{
    static const char *const outcome_labels[] = {"push", "outcome"};
    static const char *const result_labels[] = {"push", "result"};
    static const char *const push_label[] = {"push"};
    pm_status_t st = PM_OK;
    pthread_mutex_lock(&g_lock);
    int any = 0;
    for (pm_push *p = g_list; p && !any; p = p->gnext) any = p->reg == r;
    if (!any) {
        pthread_mutex_unlock(&g_lock);
        return PM_OK;
    }
    pm_snap_family_t *pay = pm__snap_family_add(
        s, PM_TYPE_COUNTER, "perfmetrics_push_payloads",
        "Payloads of push destinations by outcome (sent, rejected by a 4xx, dropped).", "",
        outcome_labels, 2);
    pm_snap_family_t *att = pm__snap_family_add(
        s, PM_TYPE_COUNTER, "perfmetrics_push_attempts", "Requests of push destinations by result.",
        "", result_labels, 2);
    pm_snap_family_t *q = pm__snap_family_add(s, PM_TYPE_GAUGE, "perfmetrics_push_queue_payloads",
                                              "Payloads queued (or in flight) now.", "",
                                              push_label, 1);
    pm_snap_family_t *by = pm__snap_family_add(s, PM_TYPE_COUNTER, "perfmetrics_push_sent_bytes",
                                               "Body bytes delivered by push destinations.",
                                               "bytes", push_label, 1);
    if (!pay || !att || !q || !by) st = PM_ENOMEM;
    for (pm_push *p = g_list; p && st == PM_OK; p = p->gnext) {
        if (p->reg != r) continue;
        static const struct {
            const char *name;
            pm_push_stat_t w;
        } outs[] = {{"sent", PM_PUSH_STAT_SENT},
                    {"rejected", PM_PUSH_STAT_REJECTED},
                    {"dropped", PM_PUSH_STAT_DROPPED}};
        for (size_t i = 0; i < 3 && st == PM_OK; i++) {
            const char *v[2] = {p->name, outs[i].name};
            if (!pm__snap_series_add(s, pay, v,
                                     (double)atomic_load_explicit(&p->stats[outs[i].w],
                                                                  memory_order_relaxed)))
                st = PM_ENOMEM;
        }
        for (size_t i = 0; i < R_N && st == PM_OK; i++) {
            const char *v[2] = {p->name, result_names[i]};
            if (!pm__snap_series_add(
                    s, att, v,
                    (double)atomic_load_explicit(&p->results[i], memory_order_relaxed)))
                st = PM_ENOMEM;
        }
        const char *v[1] = {p->name};
        if (st == PM_OK &&
            (!pm__snap_series_add(s, q, v,
                                  (double)atomic_load_explicit(&p->stats[PM_PUSH_STAT_QUEUE],
                                                               memory_order_relaxed)) ||
             !pm__snap_series_add(s, by, v,
                                  (double)atomic_load_explicit(&p->stats[PM_PUSH_STAT_BYTES],
                                                               memory_order_relaxed))))
            st = PM_ENOMEM;
    }
    pthread_mutex_unlock(&g_lock);
    return st;
}
