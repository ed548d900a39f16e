/* Serves a registry with known contents through pm_server_new, for the checks
 * against a real Prometheus (validate_prometheus_scrape.py) and headless
 * Chromium (validate_dashboard.py).
 *
 *   serve_fixture [--port N] [--token T] [--threads N] [--series N] [--duration S]
 *
 * Prints one line, "listening <port> <url>", once the server is up, then runs
 * until stdin reaches EOF (so a test that dies takes the fixture with it: give
 * it a pipe, not /dev/null), SIGINT or SIGTERM, or for S seconds with
 * --duration. Exits 0 after freeing everything; 2 on a bad argument, 1 when a
 * library call fails.
 *
 * Contents (keep in step with the tests that read them):
 *   fixed values
 *     fixture_requests_total{method,code}: GET/200 = 42, POST/500 = 7
 *     fixture_temperature = 21.5
 *     fixture_latency_seconds: 100 observations (i - 0.5) ms, i = 1..100, so
 *       no value sits on a bound: count 100, sum 5.0, le="0.005" 5,
 *       le="0.01" 10, le="0.025" 25, le="0.05" 50, le="0.1" and up 100
 *     fixture_load_total{shard="s<i>"} = i, i = 0..N-1 (--series N; none by default)
 *   moving values, every 100 ms
 *     fixture_ticks_total += 1
 *     fixture_queue_length: a triangle wave 0..30 with a 6 s period
 *     fixture_task_seconds{task_type="build"|"test"|"deploy"}: one observation each
 *   traces, one every 200 ms (tracer batches every 0.2 s; RED metrics
 *     pm_span_* in the registry): root "fixture.task" {task_type, agent} with
 *     children "fixture.plan" and "fixture.llm_call", the latter holding
 *     "fixture.tool"; every 4th trace has an error status on the tool and the root
 *   alerts (engine interval 0.5 s)
 *     FixtureAlwaysFiring: fixture_temperature > 20, firing from the first
 *       evaluation on (severity warning, annotation summary)
 *     FixtureQueueHigh: fixture_queue_length > 20, firing about 2 s of every 6 s
 *       (severity info), so the history fills with firing and resolved events
 *   dashboard: title "perfmetrics fixture", charts fixture_ticks,
 *     fixture_queue_length, fixture_task_seconds */
#include "try.h"

#include <perfmetrics/perfmetrics.h>
#include <perfmetrics/server.h>

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TICK_MS 100
#define TRACE_MS 200

static const char RULES[] = "alert FixtureAlwaysFiring {\n"
                            "  expr: fixture_temperature > 20\n"
                            "  for: 0\n"
                            "  severity: warning\n"
                            "  annotation summary: \"temperature {{ $value }} is above 20\"\n"
                            "}\n"
                            "alert FixtureQueueHigh {\n"
                            "  expr: fixture_queue_length > 20\n"
                            "  severity: info\n"
                            "  annotation summary: \"queue length {{ $value }} is above 20\"\n"
                            "}\n";

static const char *const TASK_TYPES[] = {"build", "test", "deploy"};
#define NTASK_TYPES (sizeof TASK_TYPES / sizeof TASK_TYPES[0])

struct args {
    int port;
    const char *token;
    unsigned threads;
    size_t series;
    double duration; /* < 0: until stdin EOF or a signal */
};

/* The worker threads sleep on `cond` so that shutdown wakes them at once. */
struct fixture {
    pm_registry_t *reg;
    pm_tracer_t *tracer;
    pm_alert_engine_t *engine;
    pm_server_t *server;
    pm_counter_t *ticks;
    pm_gauge_t *queue;
    pm_histogram_t *task[NTASK_TYPES];
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int stopping; /* under lock */
};

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
    (void)sig;
    got_signal = 1;
}

static void term_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits `ms` milliseconds or until shutdown; returns 0 once stopping. */
static int pause_ms(struct fixture *fx, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&fx->lock);
    while (!fx->stopping && pthread_cond_timedwait(&fx->cond, &fx->lock, &until) != ETIMEDOUT) {
    }
    int go_on = !fx->stopping;
    pthread_mutex_unlock(&fx->lock);
    return go_on;
}

/* A small deterministic generator: the data moves, the same way every run. */
static uint32_t next_rand(uint32_t *state)
{
    *state = *state * 1664525u + 1013904223u;
    return *state >> 8;
}

static void *metrics_thread(void *arg)
{
    struct fixture *fx = arg;
    uint32_t seed = 1;
    for (unsigned long tick = 0; pause_ms(fx, TICK_MS); tick++) {
        pm_counter_inc(fx->ticks);
        unsigned phase = (unsigned)(tick % 60);
        pm_gauge_set(fx->queue, phase < 30 ? phase : 60 - phase);
        for (size_t i = 0; i < NTASK_TYPES; i++) {
            /* build ~50 ms, test ~100 ms, deploy ~150 ms, each with a spread */
            double base = 0.05 * (double)(i + 1);
            double jitter = (double)(next_rand(&seed) % 1000) / 1000.0;
            pm_histogram_observe(fx->task[i], base * (0.5 + jitter));
        }
    }
    return NULL;
}

/* Starts a child of `parent` (explicit context, so nothing depends on the
 * thread's current span). */
static pm_span_t *child(pm_tracer_t *t, pm_span_t *parent, const char *name, pm_span_kind_t kind)
{
    pm_trace_context_t ctx;
    pm_span_t *s = NULL;
    if (pm_span_context(parent, &ctx) != PM_OK) return NULL;
    if (pm_span_start(t, name, kind, &ctx, &s) != PM_OK) return NULL;
    return s;
}

static void *trace_thread(void *arg)
{
    struct fixture *fx = arg;
    static const char *const agents[] = {"planner", "coder", "reviewer"};
    uint32_t seed = 7;
    for (unsigned long n = 0; pause_ms(fx, TRACE_MS); n++) {
        pm_trace_context_t root_ctx = {{0}, {0}, 0, 0, {0}};
        pm_span_t *root = NULL;
        if (pm_span_start(fx->tracer, "fixture.task", PM_SPAN_SERVER, &root_ctx, &root) != PM_OK)
            continue;
        int failed = n % 4 == 3;
        pm_span_set_string(root, "task_type", TASK_TYPES[n % NTASK_TYPES]);
        pm_span_set_string(root, "agent", agents[n % 3]);
        pm_span_set_int(root, "attempt", (int64_t)(n % 5));

        pm_span_t *plan = child(fx->tracer, root, "fixture.plan", PM_SPAN_INTERNAL);
        pm_span_set_string(plan, "agent", agents[n % 3]);
        pause_ms(fx, 2 + (long)(next_rand(&seed) % 4));
        pm_span_end(plan);

        pm_span_t *llm = child(fx->tracer, root, "fixture.llm_call", PM_SPAN_CLIENT);
        pm_span_set_string(llm, "model", "fixture-model");
        pm_span_set_int(llm, "tokens", 100 + (int64_t)(next_rand(&seed) % 900));
        pause_ms(fx, 5 + (long)(next_rand(&seed) % 20));
        pm_span_t *tool = child(fx->tracer, llm, "fixture.tool", PM_SPAN_INTERNAL);
        pm_span_set_string(tool, "tool", n % 2 ? "search" : "compile");
        pause_ms(fx, 2 + (long)(next_rand(&seed) % 10));
        if (failed) pm_span_set_status(tool, PM_SPAN_STATUS_ERROR, "tool failed");
        pm_span_end(tool);
        pm_span_end(llm);

        pm_span_set_status(root, failed ? PM_SPAN_STATUS_ERROR : PM_SPAN_STATUS_OK,
                           failed ? "task failed" : NULL);
        pm_span_end(root);
    }
    return NULL;
}

static pm_status_t new_family(pm_registry_t *r, pm_type_t type, const char *name, const char *help,
                              const char *unit, const char *const *labels, size_t nl,
                              size_t max_series, pm_family_t **out)
{
    pm_family_opts_t *o = NULL;
    pm_status_t st = pm_family_opts_new(&o);
    if (st == PM_OK && unit) st = pm_family_opts_set_unit(o, unit);
    if (st == PM_OK && nl) st = pm_family_opts_set_labels(o, labels, nl);
    if (st == PM_OK && max_series) st = pm_family_opts_set_max_series(o, max_series);
    if (st == PM_OK) st = pm_family_new(r, type, name, help, o, out);
    pm_family_opts_free(o);
    return st;
}

/* Registers every family and records the fixed values. */
static int fill_registry(struct fixture *fx, size_t series)
{
    static const char *const req_labels[] = {"method", "code"};
    static const char *const get200[] = {"GET", "200"};
    static const char *const post500[] = {"POST", "500"};
    static const char *const task_label[] = {"task_type"};
    static const char *const shard_label[] = {"shard"};
    pm_family_t *f = NULL;
    pm_gauge_t *temp = NULL;
    pm_histogram_t *lat = NULL;

    TRY(new_family(fx->reg, PM_TYPE_COUNTER, "fixture_requests", "Requests by method and code.",
                   NULL, req_labels, 2, 0, &f));
    TRY(pm_counter_add_labeled(f, get200, 2, 42));
    TRY(pm_counter_add_labeled(f, post500, 2, 7));

    TRY(pm_gauge_new(fx->reg, "fixture_temperature", "A fixed temperature.", &temp));
    pm_gauge_set(temp, 21.5);

    TRY(new_family(fx->reg, PM_TYPE_HISTOGRAM, "fixture_latency_seconds",
                   "100 known latencies, (i - 0.5) ms for i = 1..100.", "seconds", NULL, 0, 0, &f));
    TRY(pm_histogram_get(f, NULL, 0, &lat));
    for (int i = 1; i <= 100; i++) pm_histogram_observe(lat, ((double)i - 0.5) / 1000.0);
    pm_histogram_release(lat);

    if (series) {
        TRY(new_family(fx->reg, PM_TYPE_COUNTER, "fixture_load", "One series per shard.", NULL,
                       shard_label, 1, series, &f));
        for (size_t i = 0; i < series; i++) {
            char shard[32];
            const char *v[1] = {shard};
            snprintf(shard, sizeof shard, "s%zu", i);
            TRY(pm_counter_add_labeled(f, v, 1, (double)i));
        }
    }

    TRY(pm_counter_new(fx->reg, "fixture_ticks", "Ticks of the fixture's metrics thread.",
                       &fx->ticks));
    TRY(pm_gauge_new(fx->reg, "fixture_queue_length", "A triangle wave, 0..30 every 6 s.",
                     &fx->queue));
    TRY(new_family(fx->reg, PM_TYPE_HISTOGRAM, "fixture_task_seconds",
                   "Task durations by task type.", "seconds", task_label, 1, 0, &f));
    for (size_t i = 0; i < NTASK_TYPES; i++) {
        const char *v[1] = {TASK_TYPES[i]};
        TRY(pm_histogram_get(f, v, 1, &fx->task[i]));
    }
    return 0;
}

static int start_tracer(struct fixture *fx)
{
    pm_tracer_opts_t *o = NULL;
    TRY(pm_tracer_opts_new(&o));
    pm_status_t st = pm_tracer_opts_set_batch(o, 512, 0.2);
    if (st == PM_OK) st = pm_tracer_opts_set_service(o, "serve_fixture");
    if (st == PM_OK) st = pm_tracer_opts_set_registry(o, fx->reg);
    if (st == PM_OK) st = pm_tracer_new(o, &fx->tracer);
    pm_tracer_opts_free(o);
    TRY(st);
    TRY(pm_tracer_start(fx->tracer));
    return 0;
}

static int start_alerts(struct fixture *fx)
{
    pm_alert_engine_opts_t *o = NULL;
    pm_parse_error_t *err = NULL;
    TRY(pm_alert_engine_opts_new(&o));
    pm_status_t st = pm_alert_engine_opts_set_interval(o, 0.5);
    if (st == PM_OK) st = pm_alert_engine_new(fx->reg, o, &fx->engine);
    pm_alert_engine_opts_free(o);
    TRY(st);
    st = pm_alert_engine_load_string(fx->engine, RULES, sizeof RULES - 1, &err);
    if (st != PM_OK) {
        fprintf(stderr, "serve_fixture: rules: %s\n",
                err ? pm_parse_error_message(err) : pm_strerror(st));
        pm_parse_error_free(err);
        return 1;
    }
    TRY(pm_alert_engine_start(fx->engine));
    return 0;
}

static int start_server(struct fixture *fx, const struct args *a)
{
    static const char *const charts[] = {"fixture_ticks", "fixture_queue_length",
                                         "fixture_task_seconds"};
    pm_server_opts_t *o = NULL;
    TRY(pm_server_opts_new(&o));
    pm_status_t st = pm_server_opts_set_address(o, "127.0.0.1", a->port);
    if (st == PM_OK && a->token) st = pm_server_opts_set_token(o, a->token);
    if (st == PM_OK && a->threads) st = pm_server_opts_set_threads(o, a->threads);
    if (st == PM_OK) st = pm_server_opts_set_tracer(o, fx->tracer);
    if (st == PM_OK) st = pm_server_opts_set_alert_engine(o, fx->engine);
    if (st == PM_OK) st = pm_server_opts_set_title(o, "perfmetrics fixture");
    for (size_t i = 0; st == PM_OK && i < sizeof charts / sizeof charts[0]; i++)
        st = pm_server_opts_add_chart(o, charts[i]);
    if (st == PM_OK) st = pm_server_new(fx->reg, o, &fx->server);
    pm_server_opts_free(o);
    TRY(st);
    char url[128];
    TRY(pm_server_url(fx->server, url, sizeof url));
    printf("listening %d %s\n", pm_server_port(fx->server), url);
    fflush(stdout);
    return 0;
}

/* Returns once stdin reaches EOF (or fails), a signal arrives, or the
 * duration has passed. */
static void wait_for_end(double duration)
{
    double end = mono_now() + duration;
    while (!got_signal) {
        if (duration >= 0) {
            double left = end - mono_now();
            if (left <= 0) return;
            /* A signal interrupts the sleep early; the loop looks at the flag. */
            struct timespec ts = {(time_t)left, (long)((left - (double)(time_t)left) * 1e9)};
            nanosleep(&ts, NULL);
            continue;
        }
        struct pollfd p = {STDIN_FILENO, POLLIN, 0};
        int n = poll(&p, 1, -1);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 || (p.revents & (POLLERR | POLLNVAL))) return;
        if (p.revents & (POLLIN | POLLHUP)) {
            char buf[256];
            ssize_t got = read(STDIN_FILENO, buf, sizeof buf);
            if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) return;
        }
    }
}

static int parse_args(int argc, char **argv, struct args *a)
{
    a->port = 0;
    a->token = NULL;
    a->threads = 0;
    a->series = 0;
    a->duration = -1;
    for (int i = 1; i < argc; i++) {
        const char *opt = argv[i];
        if (i + 1 >= argc) goto usage;
        const char *val = argv[++i];
        char *end = NULL;
        errno = 0;
        if (strcmp(opt, "--token") == 0) {
            a->token = val;
            continue;
        }
        if (strcmp(opt, "--duration") == 0) {
            a->duration = strtod(val, &end);
            if (*end || errno || !(a->duration >= 0)) goto usage;
            continue;
        }
        unsigned long n = strtoul(val, &end, 10);
        if (*end || errno || *val == '-' || *val == '\0') goto usage;
        if (strcmp(opt, "--port") == 0 && n <= 65535)
            a->port = (int)n;
        else if (strcmp(opt, "--threads") == 0 && n >= 1 && n <= 64)
            a->threads = (unsigned)n;
        else if (strcmp(opt, "--series") == 0 && n <= 1000000)
            a->series = n;
        else
            goto usage;
    }
    return 0;
usage:
    fprintf(stderr, "usage: serve_fixture [--port N] [--token T] [--threads 1..64] "
                    "[--series N] [--duration S]\n");
    return 2;
}

/* Frees in dependency order: the server uses the tracer and the engine, the
 * engine and the tracer's RED metrics use the registry. */
static void teardown(struct fixture *fx)
{
    pm_server_free(fx->server);
    pm_alert_engine_free(fx->engine);
    pm_tracer_free(fx->tracer);
    for (size_t i = 0; i < NTASK_TYPES; i++) pm_histogram_release(fx->task[i]);
    pm_registry_free(fx->reg);
    pthread_cond_destroy(&fx->cond);
    pthread_mutex_destroy(&fx->lock);
}

static int run(struct fixture *fx, const struct args *a)
{
    pthread_t workers[2];
    void *(*const bodies[2])(void *) = {metrics_thread, trace_thread};
    size_t started = 0;
    int rc = fill_registry(fx, a->series);
    if (rc == 0) rc = start_tracer(fx);
    if (rc == 0) rc = start_alerts(fx);
    for (; rc == 0 && started < 2; started++)
        if (pthread_create(&workers[started], NULL, bodies[started], fx) != 0)
            rc = fail("pthread_create", PM_ETHREAD);
    if (rc == 0) rc = start_server(fx, a);

    /* Every thread is started: let this one take the signals again. */
    sigset_t sigs;
    term_signals(&sigs);
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    if (rc == 0) wait_for_end(a->duration);

    pthread_mutex_lock(&fx->lock);
    fx->stopping = 1;
    pthread_cond_broadcast(&fx->cond);
    pthread_mutex_unlock(&fx->lock);
    for (size_t i = 0; i < started; i++) pthread_join(workers[i], NULL);
    return rc;
}

int main(int argc, char **argv)
{
    struct args a;
    if (parse_args(argc, argv, &a)) return 2;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: poll and nanosleep return EINTR */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* Threads started from here on (ours and the library's) inherit the mask,
     * so the signals reach the main thread. */
    sigset_t sigs;
    term_signals(&sigs);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    struct fixture fx;
    memset(&fx, 0, sizeof fx);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&fx.cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&fx.lock, NULL);

    pm_status_t st = pm_registry_new(NULL, &fx.reg);
    int rc = st == PM_OK ? run(&fx, &a) : fail("pm_registry_new", st);
    teardown(&fx);
    return rc;
}
