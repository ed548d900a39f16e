/* The demo (`bash examples/run`): a simulated multi-agent task orchestrator,
 * instrumented with libperfmetrics and watched live on the embedded server's
 * dashboard.
 *
 * A producer submits tasks in bursts to a bounded queue; N agents (worker
 * threads) take them and run each one as a trace:
 *
 *   task:<type>                       root, attributes task_type and agent
 *     plan -> llm_call                the agent plans with the large model
 *     llm_call, tool_call             1-4 rounds: decide (small model), act
 *     review -> llm_call              the large model checks the result
 *
 * Five task types have their own log-normal durations, failure rates, tools
 * and token appetites. Nothing real runs: the agents sleep for the sampled
 * durations. The script, scaled to --duration (times for the default 60 s):
 *
 *   0-21 s   normal load, about half of the agents' capacity
 *   21-39 s  incident: the CI runner behind test_run gets 8x slower and fails
 *            55% of its runs, and a release fans out 4 test_run tasks per
 *            agent at once (16 with the default 4 agents)
 *   39 s on  the runner has recovered; the queue drains
 *
 * Three alert rules (HighErrorRate, SlowTasks per task type, TaskQueueBacklog)
 * fire during the incident and resolve after it. The end of the run prints a
 * summary: tasks, latency quantiles per type, the operations that took the
 * time, the slowest trace's critical path, the alerts that fired.
 *
 *   build/examples/orchestrator [--duration S] [--workers N] [--host H]
 *                               [--port N] [--seed N] [--quiet]
 *
 * Ctrl-C (or SIGTERM) ends the run early; the summary is printed either way. */
#define _POSIX_C_SOURCE 200809L /* sigtimedwait, pthread_condattr_setclock */

#include <perfmetrics/perfmetrics.h>
#include <perfmetrics/server.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_AGENTS 64
#define QUEUE_CAPACITY 256
#define MAX_TOOLS 4
#define MAX_STEPS (2 * MAX_TOOLS + 2)
#define UTILISATION 0.50      /* normal load, as a share of the agents' capacity */
#define CI_SLOWDOWN 8.0       /* test_run tool calls during the incident */
#define CI_FAILURE 0.55       /* test_run failure rate during the incident */
#define FANOUT_PER_AGENT 4    /* test_run tasks the release submits at once */
#define OBJECTIVE_FACTOR 2.5  /* latency objective = this x the type's normal p95 */
#define ERROR_RATE_LIMIT 0.10 /* HighErrorRate threshold */
#define BACKLOG_PER_AGENT 3   /* TaskQueueBacklog threshold, per agent */

/* ---------------------------------------------------------------- options */

struct config {
    double duration;
    unsigned workers;
    const char *host;
    int port;
    uint64_t seed;
    int quiet;
};

static void usage(FILE *f)
{
    fputs("usage: orchestrator [--duration SECONDS] [--workers N] [--host ADDRESS]\n"
          "                    [--port N] [--seed N] [--quiet]\n"
          "  --duration  length of the run in seconds (default 60; the incident and the\n"
          "              alert windows scale with it)\n"
          "  --workers   agents, 1..64 (default 4)\n"
          "  --host      address the dashboard listens on (default 127.0.0.1)\n"
          "  --port      its port (default 9464, or a free one if taken; 0: any free port)\n"
          "  --seed      seed of the simulated workload (default 1)\n"
          "  --quiet     no progress or alert lines: only the URLs and the summary\n",
          f);
}

/* Whole-string number parsing with bounds; 0 on success. */
static int parse_number(const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= lo && v <= hi)) return -1;
    *out = v;
    return 0;
}

/* 0: run; 1: --help was printed; -1: bad arguments (a message was printed). */
static int parse_args(int argc, char **argv, struct config *c)
{
    *c = (struct config){60, 4, "127.0.0.1", 9464, 1, 0};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double num;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(a, "--quiet")) {
            c->quiet = 1;
            continue;
        }
        int known = !strcmp(a, "--duration") || !strcmp(a, "--workers") || !strcmp(a, "--host") ||
                    !strcmp(a, "--port") || !strcmp(a, "--seed");
        if (!known) {
            fprintf(stderr, "orchestrator: unknown argument '%s'\n", a);
            usage(stderr);
            return -1;
        }
        if (!v) {
            fprintf(stderr, "orchestrator: %s needs a value\n", a);
            return -1;
        }
        i++;
        if (!strcmp(a, "--host")) {
            c->host = v;
        } else if (!strcmp(a, "--duration")) {
            if (parse_number(v, 1, 86400, &c->duration)) goto bad;
        } else if (!strcmp(a, "--workers")) {
            if (parse_number(v, 1, MAX_AGENTS, &num) || num != (unsigned)num) goto bad;
            c->workers = (unsigned)num;
        } else if (!strcmp(a, "--port")) {
            if (parse_number(v, 0, 65535, &num) || num != (int)num) goto bad;
            c->port = (int)num;
        } else {
            char *end;
            errno = 0;
            c->seed = strtoull(v, &end, 10);
            if (errno || end == v || *end || *v == '-') goto bad;
        }
        continue;
    bad:
        fprintf(stderr, "orchestrator: bad value '%s' for %s\n", v, a);
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- clocks */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static double wall_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct timespec mono_deadline(int64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000), (long)(ns % 1000000000)};
    return ts;
}

/* ---------------------------------------------------------------- randomness */

/* splitmix64: one generator owned by the producer, so the workload (types,
 * durations, tokens, failure draws) is a function of --seed. */
struct rng {
    uint64_t s;
};

static uint64_t rng_next(struct rng *r)
{
    uint64_t z = (r->s += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static double rng_uniform(struct rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* A standard normal variate as the sum of 12 uniforms minus 6 (Irwin-Hall):
 * bounded at +-6 sigma, which suits simulated durations. */
static double rng_normal(struct rng *r)
{
    double s = -6;
    for (int i = 0; i < 12; i++) s += rng_uniform(r);
    return s;
}

static double rng_lognormal(struct rng *r, double median, double sigma)
{
    return median * exp(sigma * rng_normal(r));
}

/* ---------------------------------------------------------------- the workload */

enum {
    CODE_REVIEW,
    TEST_RUN,
    DEPLOY,
    RESEARCH,
    SUMMARIZE,
    N_TYPES
};
enum {
    ST_OK,
    ST_ERROR,
    ST_CANCELLED,
    N_STATUS
};
static const char *const STATUS_NAMES[N_STATUS] = {"ok", "error", "cancelled"};

struct task_type {
    const char *name, *span_name;
    double share;         /* of arrivals */
    double median, sigma; /* log-normal task duration, seconds */
    double failure;       /* probability, outside the incident */
    unsigned min_tools, max_tools;
    const char *tool_a, *tool_b; /* the rounds alternate between them */
    double tokens;               /* token appetite, relative */
    const char *failure_message;
};

static const struct task_type TYPES[N_TYPES] = {
    {"code_review", "task:code_review", 0.20, 0.35, 0.50, 0.02, 1, 3, "git_diff", "static_analysis",
     1.5, "static_analysis: blocking findings"},
    {"test_run", "task:test_run", 0.30, 0.30, 0.45, 0.04, 1, 2, "ci_runner", "ci_runner", 0.6,
     "ci_runner: tests failed"},
    {"deploy", "task:deploy", 0.10, 0.45, 0.35, 0.03, 2, 3, "kubectl_apply", "health_check", 0.5,
     "health_check: pods not ready"},
    {"research", "task:research", 0.15, 0.60, 0.50, 0.02, 2, 4, "web_search", "fetch_page", 2.5,
     "fetch_page: HTTP 503"},
    {"summarize", "task:summarize", 0.25, 0.12, 0.40, 0.01, 1, 1, "read_file", "read_file", 1.2,
     "read_file: no such file"},
};

enum step_kind {
    STEP_PLAN,
    STEP_DECIDE,
    STEP_TOOL,
    STEP_REVIEW
};

/* An LLM step has tokens; a tool step names one of its type's tools. */
struct step {
    unsigned char kind, tool; /* tool: 0 for tool_a, 1 for tool_b */
    uint32_t tokens_in, tokens_out;
    double seconds;
};

struct task {
    uint64_t id;
    int64_t enqueued_ns;
    double failure_draw; /* fails when below the failure rate at its last tool call */
    unsigned char type, nsteps;
    struct step steps[MAX_STEPS];
};

/* The mean of a log-normal: median e^(sigma^2 / 2). */
static double mean_task_seconds(void)
{
    double m = 0;
    for (int i = 0; i < N_TYPES; i++)
        m += TYPES[i].share * TYPES[i].median * exp(TYPES[i].sigma * TYPES[i].sigma / 2);
    return m;
}

static int pick_type(struct rng *r)
{
    double u = rng_uniform(r);
    for (int i = 0; i < N_TYPES - 1; i++) {
        if (u < TYPES[i].share) return i;
        u -= TYPES[i].share;
    }
    return N_TYPES - 1;
}

/* Samples a whole task: its duration split over plan, rounds and review
 * (with jitter), and the tokens of each LLM call. */
static void plan_task(struct rng *r, int type, uint64_t id, struct task *t)
{
    const struct task_type *ty = &TYPES[type];
    unsigned rounds =
        ty->min_tools + (unsigned)(rng_uniform(r) * (ty->max_tools - ty->min_tools + 1));
    if (rounds > ty->max_tools) rounds = ty->max_tools;
    static const double share[] = {0.12, 0.30, 0.43, 0.15}; /* by step kind, rounds split theirs */
    static const double tokens_in[] = {1800, 1200, 0, 2500}, tokens_out[] = {350, 120, 0, 400};
    memset(t, 0, sizeof *t);
    t->id = id;
    t->type = (unsigned char)type;
    t->failure_draw = rng_uniform(r);
    t->steps[t->nsteps++].kind = STEP_PLAN;
    for (unsigned i = 0; i < rounds; i++) {
        t->steps[t->nsteps++].kind = STEP_DECIDE;
        t->steps[t->nsteps].kind = STEP_TOOL;
        t->steps[t->nsteps++].tool = (unsigned char)(i % 2);
    }
    t->steps[t->nsteps++].kind = STEP_REVIEW;
    double total = rng_lognormal(r, ty->median, ty->sigma), weight = 0;
    for (unsigned i = 0; i < t->nsteps; i++) {
        struct step *s = &t->steps[i];
        int per_round = s->kind == STEP_DECIDE || s->kind == STEP_TOOL;
        s->seconds = share[s->kind] / (per_round ? rounds : 1) * (0.6 + 0.8 * rng_uniform(r));
        weight += s->seconds;
        if (s->kind != STEP_TOOL) {
            s->tokens_in = (uint32_t)rng_lognormal(r, tokens_in[s->kind] * ty->tokens, 0.4);
            s->tokens_out = (uint32_t)rng_lognormal(r, tokens_out[s->kind] * ty->tokens, 0.5);
        }
    }
    for (unsigned i = 0; i < t->nsteps; i++) t->steps[i].seconds *= total / weight;
}

/* ---------------------------------------------------------------- the script */

/* Times in seconds from the start. A short run compresses the incident, the
 * engine's interval and the rule windows so that its alerts still fire. */
struct timeline {
    double duration, incident_start, incident_end;
    double interval, window, hold, hold_short, hold_long, progress;
};

static struct timeline make_timeline(double duration)
{
    double scale = duration < 60 ? duration / 60 : 1;
    struct timeline t;
    t.duration = duration;
    t.incident_start = 0.35 * duration;
    t.incident_end = 0.65 * duration;
    t.interval = scale > 0.25 ? scale : 0.25;
    t.window = 10 * scale > 8 * t.interval ? 10 * scale : 8 * t.interval;
    t.hold = 3 * t.interval;
    t.hold_short = 2 * t.interval;
    t.hold_long = t.window + t.interval;
    t.progress = duration / 12 < 1 ? 1 : duration / 12 > 5 ? 5 : duration / 12;
    return t;
}

/* ---------------------------------------------------------------- metrics */

struct metrics {
    pm_counter_t **tasks; /* [type][status][agent] */
    pm_counter_t *rejected[N_TYPES];
    pm_counter_t *tokens[N_TYPES][2]; /* input, output */
    pm_counter_t *cost[N_TYPES];
    pm_histogram_t *duration[N_TYPES];
    pm_histogram_t *queue_wait;
    pm_gauge_t *queue_length, *busy;
};

#define TRY(call)                                                                                  \
    do {                                                                                           \
        pm_status_t st_ = (call);                                                                  \
        if (st_ != PM_OK) {                                                                        \
            fprintf(stderr, "orchestrator: %s: %s\n", #call, pm_strerror(st_));                    \
            return st_;                                                                            \
        }                                                                                          \
    } while (0)

/* Bounds of the exported buckets of the latency histograms, in seconds: fine
 * enough around the tasks' durations for Prometheus's histogram_quantile and
 * the dashboard's charts (the library's own quantiles do not need them). */
static const double LATENCY_BUCKETS[] = {0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1,
                                         1.5,   2,    3,   5,   7.5, 10,  20,   60};

/* A family with `n` labels; `seconds` gives it that unit and, for a
 * histogram, LATENCY_BUCKETS. */
static pm_status_t new_family(pm_registry_t *reg, pm_type_t type, const char *name,
                              const char *help, const char *const *labels, size_t n, int seconds,
                              pm_family_t **out)
{
    pm_family_opts_t *o;
    TRY(pm_family_opts_new(&o));
    pm_status_t st = n ? pm_family_opts_set_labels(o, labels, n) : PM_OK;
    if (st == PM_OK && seconds) st = pm_family_opts_set_unit(o, "seconds");
    if (st == PM_OK && seconds && type == PM_TYPE_HISTOGRAM)
        st = pm_family_opts_set_buckets(o, LATENCY_BUCKETS,
                                        sizeof LATENCY_BUCKETS / sizeof *LATENCY_BUCKETS);
    if (st == PM_OK) st = pm_family_new(reg, type, name, help, o, out);
    pm_family_opts_free(o);
    if (st != PM_OK) fprintf(stderr, "orchestrator: family %s: %s\n", name, pm_strerror(st));
    return st;
}

/* Registers every family and resolves every series handle up front: the
 * agents then record through handles only, and every series exists from the
 * start (a rate needs two samples, so an error series born with its first
 * error would hide that error from the alert). */
static pm_status_t metrics_init(pm_registry_t *reg, unsigned agents, char (*agent_names)[24],
                                struct metrics *m)
{
    static const char *const l_tasks[] = {"task_type", "status", "agent"},
                             *const l_type[] = {"task_type"},
                             *const l_tokens[] = {"task_type", "direction"};
    static const char *const directions[] = {"input", "output"};
    pm_family_t *tasks, *rejected, *tokens, *cost, *duration, *objective, *queue_wait;
    TRY(new_family(reg, PM_TYPE_COUNTER, "tasks", "Tasks finished, by type, outcome and agent.",
                   l_tasks, 3, 0, &tasks));
    TRY(new_family(reg, PM_TYPE_COUNTER, "tasks_rejected",
                   "Tasks refused because the queue was full.", l_type, 1, 0, &rejected));
    TRY(new_family(reg, PM_TYPE_COUNTER, "llm_tokens", "LLM tokens used.", l_tokens, 2, 0,
                   &tokens));
    TRY(new_family(reg, PM_TYPE_COUNTER, "llm_cost_dollars", "LLM spend in US dollars.", l_type, 1,
                   0, &cost));
    TRY(new_family(reg, PM_TYPE_HISTOGRAM, "task_duration_seconds",
                   "Time from an agent taking a task to its end.", l_type, 1, 1, &duration));
    TRY(new_family(reg, PM_TYPE_GAUGE, "task_duration_objective_seconds",
                   "The p95 latency objective of each task type.", l_type, 1, 1, &objective));
    TRY(new_family(reg, PM_TYPE_HISTOGRAM, "task_queue_seconds", "Time tasks waited in the queue.",
                   NULL, 0, 1, &queue_wait));
    TRY(pm_histogram_get(queue_wait, NULL, 0, &m->queue_wait));
    TRY(pm_gauge_new(reg, "task_queue_length", "Tasks waiting for an agent.", &m->queue_length));
    TRY(pm_gauge_new(reg, "agents_busy", "Agents working on a task.", &m->busy));

    m->tasks = calloc((size_t)N_TYPES * N_STATUS * agents, sizeof *m->tasks);
    if (!m->tasks) return PM_ENOMEM;
    for (int t = 0; t < N_TYPES; t++) {
        const char *type = TYPES[t].name;
        for (int s = 0; s < N_STATUS; s++)
            for (unsigned a = 0; a < agents; a++) {
                const char *v[] = {type, STATUS_NAMES[s], agent_names[a]};
                TRY(pm_counter_get(tasks, v, 3,
                                   &m->tasks[((size_t)t * N_STATUS + s) * agents + a]));
            }
        for (int d = 0; d < 2; d++) {
            const char *v[] = {type, directions[d]};
            TRY(pm_counter_get(tokens, v, 2, &m->tokens[t][d]));
        }
        TRY(pm_counter_get(rejected, &type, 1, &m->rejected[t]));
        TRY(pm_counter_get(cost, &type, 1, &m->cost[t]));
        TRY(pm_histogram_get(duration, &type, 1, &m->duration[t]));
        /* the SlowTasks rule compares each type's p95 with this */
        double normal_p95 = TYPES[t].median * exp(1.645 * TYPES[t].sigma);
        TRY(pm_gauge_set_labeled(objective, &type, 1, OBJECTIVE_FACTOR * normal_p95));
    }
    return PM_OK;
}

/* ---------------------------------------------------------------- the simulation */

struct sim {
    struct config cfg;
    struct timeline tl;
    int64_t t0_ns;  /* start of the run, monotonic */
    double t0_wall; /* the same moment, Unix seconds (alert event times are wall times) */
    pm_tracer_t *tracer;
    struct metrics m;
    char agent_names[MAX_AGENTS][24];

    /* the queue and the stop flag, under one lock */
    pthread_mutex_t mu;
    pthread_cond_t nonempty, stop_cv;
    int stopping;
    struct task queue[QUEUE_CAPACITY];
    size_t head, len;
};

static double since_start(const struct sim *s) { return (mono_ns() - s->t0_ns) / 1e9; }

static int in_incident(const struct sim *s)
{
    double t = since_start(s);
    return t >= s->tl.incident_start && t < s->tl.incident_end;
}

/* Sleeps until `deadline_ns` (monotonic) unless the run stops first: 1 when
 * the time passed, 0 when the run is stopping. */
static int nap_until(struct sim *s, int64_t deadline_ns)
{
    struct timespec ts = mono_deadline(deadline_ns);
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && mono_ns() < deadline_ns)
        if (pthread_cond_timedwait(&s->stop_cv, &s->mu, &ts) == ETIMEDOUT) break;
    int ok = !s->stopping;
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int nap(struct sim *s, double seconds)
{
    return nap_until(s, mono_ns() + (int64_t)(seconds * 1e9));
}

/* Enqueues, or counts the task as rejected when the queue is full. */
static void submit(struct sim *s, struct task *t)
{
    pthread_mutex_lock(&s->mu);
    int full = s->len == QUEUE_CAPACITY;
    if (!full) {
        t->enqueued_ns = mono_ns();
        s->queue[(s->head + s->len) % QUEUE_CAPACITY] = *t;
        s->len++;
        pm_gauge_set(s->m.queue_length, (double)s->len);
        pthread_cond_signal(&s->nonempty);
    }
    pthread_mutex_unlock(&s->mu);
    if (full) pm_counter_inc(s->m.rejected[t->type]);
}

/* Takes the oldest task; 0 when the run is stopping. */
static int take(struct sim *s, struct task *out)
{
    pthread_mutex_lock(&s->mu);
    while (!s->stopping && s->len == 0) pthread_cond_wait(&s->nonempty, &s->mu);
    int ok = !s->stopping;
    if (ok) {
        *out = s->queue[s->head];
        s->head = (s->head + 1) % QUEUE_CAPACITY;
        s->len--;
        pm_gauge_set(s->m.queue_length, (double)s->len);
    }
    pthread_mutex_unlock(&s->mu);
    return ok;
}

/* The producer: batches of 1-4 tasks at jittered gaps, sized for
 * UTILISATION of the agents, and the release's fan-out when the incident
 * starts. */
static void *producer(void *arg)
{
    struct sim *s = arg;
    struct rng r = {s->cfg.seed};
    const double batch_mean = 1 + 0.45 + 0.45 * 0.45 + 0.45 * 0.45 * 0.45;
    const double rate = UTILISATION * s->cfg.workers / mean_task_seconds(); /* tasks/s */
    const int64_t fanout_at = s->t0_ns + (int64_t)(s->tl.incident_start * 1e9);
    int fanned_out = 0;
    uint64_t id = 0;
    struct task t;
    for (;;) {
        if (!fanned_out && mono_ns() >= fanout_at) {
            for (unsigned i = 0; i < FANOUT_PER_AGENT * s->cfg.workers; i++) {
                plan_task(&r, TEST_RUN, ++id, &t);
                submit(s, &t);
            }
            fanned_out = 1;
        }
        unsigned batch = 1;
        while (batch < 4 && rng_uniform(&r) < 0.45) batch++;
        for (unsigned i = 0; i < batch; i++) {
            plan_task(&r, pick_type(&r), ++id, &t);
            submit(s, &t);
        }
        int64_t next = mono_ns() + (int64_t)(2 * rng_uniform(&r) * batch_mean / rate * 1e9);
        if (!fanned_out && next > fanout_at) next = fanout_at;
        if (!nap_until(s, next)) return NULL;
    }
}

struct agent {
    struct sim *sim;
    unsigned index;
    pthread_t thread;
};

enum outcome {
    DONE,
    FAILED,
    CANCELLED
};

/* A child span of the thread's current span, made current itself. */
struct open_span {
    pm_span_t *span, *prev;
};

static struct open_span span_open(pm_tracer_t *t, const char *name, pm_span_kind_t kind)
{
    struct open_span o = {NULL, NULL};
    if (pm_span_start(t, name, kind, NULL, &o.span) == PM_OK) o.prev = pm_span_enter(o.span);
    return o;
}

static void span_close(struct open_span *o)
{
    if (!o->span) return;
    pm_span_exit(o->prev);
    pm_span_end(o->span);
}

/* One LLM call: the large model plans and reviews, the small one decides. */
static enum outcome llm_call(struct sim *s, const struct task *t, const struct step *st)
{
    static const double per_token_in[] = {3e-6, 0.25e-6}, per_token_out[] = {15e-6, 1.25e-6};
    int small = st->kind == STEP_DECIDE;
    struct open_span o = span_open(s->tracer, "llm_call", PM_SPAN_CLIENT);
    pm_span_set_string(o.span, "gen_ai.request.model", small ? "small" : "large");
    pm_span_set_int(o.span, "gen_ai.usage.input_tokens", st->tokens_in);
    pm_span_set_int(o.span, "gen_ai.usage.output_tokens", st->tokens_out);
    int ok = nap(s, st->seconds);
    if (ok) {
        pm_counter_add_u64(s->m.tokens[t->type][0], st->tokens_in);
        pm_counter_add_u64(s->m.tokens[t->type][1], st->tokens_out);
        pm_counter_add(s->m.cost[t->type],
                       st->tokens_in * per_token_in[small] + st->tokens_out * per_token_out[small]);
    }
    span_close(&o);
    return ok ? DONE : CANCELLED;
}

/* One tool call; the last one of a task decides whether the task fails.
 * During the incident test_run's CI runner is slow and fails often. */
static enum outcome tool_call(struct sim *s, const struct task *t, const struct step *st, int last)
{
    const struct task_type *ty = &TYPES[t->type];
    int degraded = t->type == TEST_RUN && in_incident(s);
    struct open_span o = span_open(s->tracer, "tool_call", PM_SPAN_CLIENT);
    pm_span_set_string(o.span, "gen_ai.tool.name", st->tool ? ty->tool_b : ty->tool_a);
    enum outcome out = nap(s, st->seconds * (degraded ? CI_SLOWDOWN : 1)) ? DONE : CANCELLED;
    if (out == DONE && last && t->failure_draw < (degraded ? CI_FAILURE : ty->failure)) {
        pm_span_set_status(o.span, PM_SPAN_STATUS_ERROR,
                           degraded ? "ci_runner: timed out" : ty->failure_message);
        out = FAILED;
    }
    span_close(&o);
    return out;
}

/* plan and review wrap their LLM call in a span of their own. */
static enum outcome run_step(struct sim *s, const struct task *t, unsigned i)
{
    const struct step *st = &t->steps[i];
    /* the last tool call is the one before the review, the last step */
    if (st->kind == STEP_TOOL) return tool_call(s, t, st, i + 2 == t->nsteps);
    if (st->kind == STEP_DECIDE) return llm_call(s, t, st);
    struct open_span o =
        span_open(s->tracer, st->kind == STEP_PLAN ? "plan" : "review", PM_SPAN_INTERNAL);
    enum outcome out = llm_call(s, t, st);
    span_close(&o);
    return out;
}

static void run_task(struct agent *a, const struct task *t)
{
    struct sim *s = a->sim;
    const char *agent = s->agent_names[a->index];
    int64_t start = mono_ns();
    pm_histogram_observe(s->m.queue_wait, (start - t->enqueued_ns) / 1e9);
    pm_gauge_add(s->m.busy, 1);

    struct open_span root = span_open(s->tracer, TYPES[t->type].span_name, PM_SPAN_CONSUMER);
    pm_span_set_string(root.span, "task_type", TYPES[t->type].name);
    pm_span_set_string(root.span, "agent", agent);
    pm_span_set_int(root.span, "task.id", (int64_t)t->id);
    pm_span_set_double(root.span, "task.queue_seconds", (start - t->enqueued_ns) / 1e9);
    enum outcome out = DONE;
    for (unsigned i = 0; i < t->nsteps && out == DONE; i++) out = run_step(s, t, i);

    int status = out == DONE ? ST_OK : out == FAILED ? ST_ERROR : ST_CANCELLED;
    if (out == FAILED) pm_span_set_status(root.span, PM_SPAN_STATUS_ERROR, "a tool call failed");
    if (out == CANCELLED) pm_span_add_event(root.span, "cancelled", "reason", "shutdown");
    if (out != CANCELLED) /* observed while the root is current: its exemplar links the trace */
        pm_histogram_observe(s->m.duration[t->type], (mono_ns() - start) / 1e9);
    pm_counter_inc(s->m.tasks[((size_t)t->type * N_STATUS + status) * s->cfg.workers + a->index]);
    span_close(&root);
    pm_gauge_sub(s->m.busy, 1);
}

static void *agent_main(void *arg)
{
    struct agent *a = arg;
    struct task t;
    while (take(a->sim, &t)) run_task(a, &t);
    return NULL;
}

/* ---------------------------------------------------------------- alerts */

/* The rules, with their windows and holds scaled to the run (struct timeline). */
static const char RULES_FORMAT[] =
    "# More than 10%% of the tasks finished in the window failed.\n"
    "alert HighErrorRate {\n"
    "  expr: sum(rate(tasks_total{status=\"error\"}[%s])) / sum(rate(tasks_total[%s])) > %g\n"
    "  for: %s\n"
    "  severity: critical\n"
    "  annotation summary: \"{{ $value | humanizePercentage }} of tasks failed over %s\"\n"
    "}\n"
    "# A task type's p95 over the window is above its objective (a gauge per type).\n"
    "# The hold is longer than the window: one slow task, which stays in the\n"
    "# window for its length, cannot fire it alone.\n"
    "alert SlowTasks {\n"
    "  expr: p95(task_duration_seconds[%s]) > task_duration_objective_seconds\n"
    "  for: %s\n"
    "  severity: warning\n"
    "  annotation summary: \"p95 of {{ $labels.task_type }} is {{ $value | humanizeDuration }}\"\n"
    "}\n"
    "# More tasks wait than the agents can take soon.\n"
    "alert TaskQueueBacklog {\n"
    "  expr: task_queue_length > %u\n"
    "  for: %s\n"
    "  severity: warning\n"
    "  annotation summary: \"{{ $value }} tasks wait for an agent\"\n"
    "}\n";

/* A rule-file duration: whole seconds when exact, else milliseconds. */
static void format_duration(char *buf, size_t size, double seconds)
{
    long long ms = (long long)(seconds * 1000 + 0.5);
    if (ms % 1000 == 0)
        snprintf(buf, size, "%llds", ms / 1000);
    else
        snprintf(buf, size, "%lldms", ms);
}

static pm_status_t load_rules(pm_alert_engine_t *e, const struct timeline *tl, unsigned workers)
{
    char w[32], hold[32], hold_short[32], hold_long[32], text[sizeof RULES_FORMAT + 256];
    format_duration(w, sizeof w, tl->window);
    format_duration(hold, sizeof hold, tl->hold);
    format_duration(hold_short, sizeof hold_short, tl->hold_short);
    format_duration(hold_long, sizeof hold_long, tl->hold_long);
    int n = snprintf(text, sizeof text, RULES_FORMAT, w, w, ERROR_RATE_LIMIT, hold, w, w, hold_long,
                     BACKLOG_PER_AGENT * workers, hold_short);
    pm_parse_error_t *err = NULL;
    pm_status_t st = pm_alert_engine_load_string(e, text, (size_t)n, &err);
    if (st != PM_OK) {
        fprintf(stderr, "orchestrator: rules: %s\n",
                err ? pm_parse_error_message(err) : pm_strerror(st));
        pm_parse_error_free(err);
    }
    return st;
}

/* "SlowTasks{task_type="test_run"}": the rule and the labels that tell its
 * instances apart (alertname and severity left out). */
static void instance_name(const pm_alert_event_t *ev, char *buf, size_t size)
{
    size_t len = (size_t)snprintf(buf, size, "%s", pm_alert_event_rule(ev));
    const char *sep = "{";
    for (size_t i = 0; i < pm_alert_event_label_count(ev) && len < size; i++) {
        const char *name = pm_alert_event_label_name(ev, i);
        if (!strcmp(name, "alertname") || !strcmp(name, "severity")) continue;
        len += (size_t)snprintf(buf + len, size - len, "%s%s=\"%s\"", sep, name,
                                pm_alert_event_label_value(ev, i));
        sep = ",";
    }
    if (*sep == ',' && len < size) snprintf(buf + len, size - len, "}");
}

/* An alert's value in its rule's unit. */
static void alert_value(const pm_alert_event_t *ev, char *buf, size_t size)
{
    const char *rule = pm_alert_event_rule(ev);
    double v = pm_alert_event_value(ev);
    if (!strcmp(rule, "HighErrorRate"))
        snprintf(buf, size, "%.1f%%", v * 100);
    else if (!strcmp(rule, "SlowTasks"))
        snprintf(buf, size, "%.2f s", v);
    else
        snprintf(buf, size, "%.0f", v);
}

/* The live alert lines, on the engine's dispatch thread. */
static int print_alert(const pm_alert_event_t *ev, void *user)
{
    const struct sim *s = user;
    char name[128];
    instance_name(ev, name, sizeof name);
    int resolved = pm_alert_event_state(ev) == PM_ALERT_RESOLVED;
    const char *summary = pm_alert_event_annotation(ev, "summary");
    char detail[256];
    if (resolved)
        snprintf(detail, sizeof detail, "after %.0f s",
                 pm_alert_event_ends_at(ev) - pm_alert_event_starts_at(ev));
    else
        snprintf(detail, sizeof detail, "%s", summary ? summary : "");
    printf("[%5.1fs] ALERT %-8s %-8s %-34s %s\n", pm_alert_event_time(ev) - s->t0_wall,
           resolved ? "resolved" : "FIRING", pm_severity_name(pm_alert_event_severity(ev)), name,
           detail);
    return 0;
}

/* ---------------------------------------------------------------- reading a snapshot */

/* `match` is label/value pairs ending with NULL; NULL matches every series. */
static int series_matches(const pm_snap_family_t *f, const pm_snap_series_t *s,
                          const char *const *match)
{
    for (; match && match[0]; match += 2) {
        size_t i, n = pm_snap_family_label_count(f);
        for (i = 0; i < n && strcmp(pm_snap_family_label_name(f, i), match[0]); i++) continue;
        if (i == n || strcmp(pm_snap_series_label_value(s, i), match[1])) return 0;
    }
    return 1;
}

static const pm_snap_family_t *snap_family(const pm_snapshot_t *snap, const char *name)
{
    for (size_t i = 0; i < pm_snapshot_family_count(snap); i++)
        if (!strcmp(pm_snap_family_name(pm_snapshot_family(snap, i)), name))
            return pm_snapshot_family(snap, i);
    return NULL;
}

/* Sum of the matching series of a counter or gauge family. */
static double snap_sum(const pm_snapshot_t *snap, const char *family, const char *const *match)
{
    const pm_snap_family_t *f = snap_family(snap, family);
    double sum = 0;
    for (size_t i = 0; i < pm_snap_family_series_count(f); i++)
        if (series_matches(f, pm_snap_family_series(f, i), match))
            sum += pm_snap_series_value(pm_snap_family_series(f, i));
    return sum;
}

static const pm_snap_series_t *snap_series(const pm_snapshot_t *snap, const char *family,
                                           const char *const *match)
{
    const pm_snap_family_t *f = snap_family(snap, family);
    for (size_t i = 0; i < pm_snap_family_series_count(f); i++)
        if (series_matches(f, pm_snap_family_series(f, i), match))
            return pm_snap_family_series(f, i);
    return NULL;
}

#define MATCH(...) ((const char *const[]){__VA_ARGS__, NULL})

/* 1234 -> "1.23k": token counts. */
static void format_si(char *buf, size_t size, double v)
{
    if (v >= 1e6)
        snprintf(buf, size, "%.2fM", v / 1e6);
    else if (v >= 1e3)
        snprintf(buf, size, "%.1fk", v / 1e3);
    else
        snprintf(buf, size, "%.0f", v);
}

/* p50, p95 and p99 in seconds, or "-" without observations. */
struct quantiles {
    char p[3][16];
};

static struct quantiles format_quantiles(const pm_snap_series_t *s)
{
    static const double qs[3] = {0.5, 0.95, 0.99};
    struct quantiles out;
    for (int i = 0; i < 3; i++) {
        double v;
        if (pm_snap_series_quantile(s, qs[i], &v) == PM_OK)
            snprintf(out.p[i], sizeof out.p[i], "%.3f", v);
        else
            snprintf(out.p[i], sizeof out.p[i], "-");
    }
    return out;
}

/* ---------------------------------------------------------------- progress and summary */

static void print_progress(const struct sim *s, pm_registry_t *reg, pm_alert_engine_t *e)
{
    pm_snapshot_t *snap;
    if (pm_snapshot_new(reg, &snap) != PM_OK) return;
    double ok = snap_sum(snap, "tasks", MATCH("status", "ok"));
    double failed = snap_sum(snap, "tasks", MATCH("status", "error"));
    char tokens[16], firing[256] = "";
    format_si(tokens, sizeof tokens, snap_sum(snap, "llm_tokens", NULL));
    pm_alert_list_t *active;
    if (pm_alert_engine_active(e, &active) == PM_OK) {
        size_t len = 0;
        const char *prev = "";
        for (size_t i = 0; i < pm_alert_list_count(active) && len < sizeof firing; i++) {
            const pm_alert_event_t *ev = pm_alert_list_get(active, i);
            const char *rule = pm_alert_event_rule(ev);
            if (pm_alert_event_state(ev) != PM_ALERT_FIRING || !strcmp(rule, prev)) continue;
            len += (size_t)snprintf(firing + len, sizeof firing - len, "%s%s",
                                    len ? ", " : "   firing: ", rule);
            prev = rule; /* the list is sorted by rule: one name per rule */
        }
        pm_alert_list_free(active);
    }
    char rate[16] = "-", cost[16];
    if (ok + failed > 0) snprintf(rate, sizeof rate, "%.1f%%", 100 * ok / (ok + failed));
    snprintf(cost, sizeof cost, "$%.2f", snap_sum(snap, "llm_cost_dollars", NULL));
    printf("[%5.1fs] done %5.0f  ok %6s  queue %3.0f  busy %2.0f/%-2u  tokens %6s  cost %7s  "
           "health %3.0f%s\n",
           since_start(s), ok + failed, rate, snap_sum(snap, "task_queue_length", NULL),
           snap_sum(snap, "agents_busy", NULL), s->cfg.workers, tokens, cost,
           pm_alert_engine_health(e), firing);
    pm_snapshot_release(snap);
}

static void summary_tasks(const pm_snapshot_t *snap, size_t left_in_queue)
{
    double ok = snap_sum(snap, "tasks", MATCH("status", "ok"));
    double failed = snap_sum(snap, "tasks", MATCH("status", "error"));
    double cancelled = snap_sum(snap, "tasks", MATCH("status", "cancelled"));
    double done = ok + failed;
    char in[16], out[16];
    format_si(in, sizeof in, snap_sum(snap, "llm_tokens", MATCH("direction", "input")));
    format_si(out, sizeof out, snap_sum(snap, "llm_tokens", MATCH("direction", "output")));
    printf("tasks:       %.0f done, %.0f ok, %.0f failed (success rate %.1f%%)\n", done, ok, failed,
           done > 0 ? 100 * ok / done : 0);
    printf("             %.0f cancelled at shutdown, %zu left in the queue, %.0f rejected "
           "(queue full)\n",
           cancelled, left_in_queue, snap_sum(snap, "tasks_rejected", NULL));
    printf("llm usage:   %s input tokens, %s output tokens, $%.2f\n", in, out,
           snap_sum(snap, "llm_cost_dollars", NULL));
    struct quantiles q = format_quantiles(snap_series(snap, "task_queue_seconds", NULL));
    printf("queue wait:  p50 %s s, p95 %s s, p99 %s s\n", q.p[0], q.p[1], q.p[2]);

    printf("\ntask latency in seconds (task_duration_seconds)\n");
    printf("  %-12s %6s %7s %8s %8s %8s %10s\n", "task_type", "tasks", "failed", "p50", "p95",
           "p99", "objective");
    for (int t = 0; t < N_TYPES; t++) {
        const char *type = TYPES[t].name;
        const pm_snap_series_t *d =
            snap_series(snap, "task_duration_seconds", MATCH("task_type", type));
        double errors = snap_sum(snap, "tasks", MATCH("task_type", type, "status", "error"));
        double objective =
            snap_sum(snap, "task_duration_objective_seconds", MATCH("task_type", type));
        q = format_quantiles(d);
        printf("  %-12s %6" PRIu64 " %7.0f %8s %8s %8s %10.3f\n", type, pm_snap_series_count(d),
               errors, q.p[0], q.p[1], q.p[2], objective);
    }
}

static void summary_traces(pm_tracer_t *t)
{
    pm_trace_ops_t *ops;
    if (pm_tracer_ops_snapshot(t, &ops) == PM_OK) {
        printf("\ntop operations by self time (span analytics)\n");
        printf("  %-18s %6s %7s %11s %9s %13s\n", "operation", "spans", "errors", "self total",
               "self p95", "duration p95");
        for (size_t i = 0; i < pm_trace_ops_count(ops) && i < 6; i++) {
            double self95 = 0, dur95 = 0;
            pm_trace_ops_self_time(ops, i, 0.95, &self95);
            pm_trace_ops_duration(ops, i, 0.95, &dur95);
            printf("  %-18s %6" PRIu64 " %7" PRIu64 " %9.2f s %7.3f s %11.3f s\n",
                   pm_trace_ops_name(ops, i), pm_trace_ops_spans(ops, i),
                   pm_trace_ops_errors(ops, i), pm_trace_ops_self_total(ops, i), self95, dur95);
        }
        pm_trace_ops_free(ops);
    }
    pm_trace_list_t *slow;
    if (pm_tracer_traces(t, PM_TRACES_SLOWEST, &slow) == PM_OK && pm_trace_list_count(slow)) {
        char id[33];
        const uint8_t *raw = pm_trace_list_trace_id(slow, 0);
        for (int i = 0; i < 16; i++) snprintf(id + 2 * i, 3, "%02x", raw[i]);
        double total = pm_trace_list_duration(slow, 0);
        printf("\nslowest trace: %s, %zu spans, %.3f s, %zu errors\n", pm_trace_list_root(slow, 0),
               pm_trace_list_spans(slow, 0), total, pm_trace_list_errors(slow, 0));
        printf("  trace id %s\n  critical path:\n", id);
        for (size_t k = 0; k < pm_trace_list_path_length(slow, 0); k++) {
            double sec = pm_trace_list_path_seconds(slow, 0, k);
            printf("    %-18s %7.3f s %5.1f%%\n", pm_trace_list_path_name(slow, 0, k), sec,
                   total > 0 ? 100 * sec / total : 0);
        }
    }
    pm_trace_list_free(slow);
}

/* Every instance that fired, from the history: when it fired, when it
 * resolved (matched by fingerprint), its value when it fired. */
static void summary_alerts(const struct sim *s, pm_alert_engine_t *e)
{
    enum {
        MAX_FIRED = 32
    };
    struct fired {
        uint64_t fp;
        const pm_alert_event_t *ev;
        double resolved;
    } fired[MAX_FIRED];
    size_t n = 0, resolved = 0, more = 0;
    pm_alert_list_t *hist;
    if (pm_alert_engine_history(e, &hist) != PM_OK) return;
    for (size_t i = 0; i < pm_alert_list_count(hist); i++) {
        const pm_alert_event_t *ev = pm_alert_list_get(hist, i);
        pm_alert_state_t st = pm_alert_event_state(ev);
        uint64_t fp = pm_alert_event_fingerprint(ev);
        if (st == PM_ALERT_FIRING && pm_alert_event_prev_state(ev) != PM_ALERT_FIRING) {
            if (n < MAX_FIRED)
                fired[n++] = (struct fired){fp, ev, -1};
            else
                more++;
        } else if (st == PM_ALERT_RESOLVED) {
            for (size_t k = n; k-- > 0;)
                if (fired[k].fp == fp && fired[k].resolved < 0) {
                    fired[k].resolved = pm_alert_event_time(ev) - s->t0_wall;
                    resolved++;
                    break;
                }
        }
    }
    printf("\nalerts that fired (alert engine history)\n");
    if (n) {
        printf("  %-34s %-9s %9s %12s  %s\n", "alert", "severity", "fired at", "resolved at",
               "value when fired");
        for (size_t k = 0; k < n; k++) {
            char name[128], value[32], res[16] = "-";
            instance_name(fired[k].ev, name, sizeof name);
            alert_value(fired[k].ev, value, sizeof value);
            if (fired[k].resolved >= 0) snprintf(res, sizeof res, "%.1f s", fired[k].resolved);
            printf("  %-34s %-9s %7.1f s %12s  %s\n", name,
                   pm_severity_name(pm_alert_event_severity(fired[k].ev)),
                   pm_alert_event_starts_at(fired[k].ev) - s->t0_wall, res, value);
        }
    }
    printf("  %zu alert%s fired, %zu resolved; health score now %.0f\n", n + more,
           n + more == 1 ? "" : "s", resolved, pm_alert_engine_health(e));
    pm_alert_list_free(hist);
}

/* ---------------------------------------------------------------- the server */

/* Listens on the asked address, or on a free port when that one is taken. */
static pm_status_t start_server(const struct sim *s, pm_registry_t *reg, pm_alert_engine_t *e,
                                pm_server_t **out)
{
    static const char *const charts[] = {"tasks", "task_queue_length", "agents_busy",
                                         "task_duration_seconds"};
    pm_server_opts_t *o;
    TRY(pm_server_opts_new(&o));
    pm_status_t st = pm_server_opts_set_address(o, s->cfg.host, s->cfg.port);
    if (st == PM_EPARSE) fprintf(stderr, "orchestrator: --host must be a numeric address\n");
    if (st == PM_OK) st = pm_server_opts_set_title(o, "libperfmetrics: agent orchestrator demo");
    if (st == PM_OK) st = pm_server_opts_set_alert_engine(o, e);
    if (st == PM_OK) st = pm_server_opts_set_tracer(o, s->tracer);
    for (size_t i = 0; i < sizeof charts / sizeof *charts && st == PM_OK; i++)
        st = pm_server_opts_add_chart(o, charts[i]);
    if (st == PM_OK) st = pm_server_new(reg, o, out);
    if (st == PM_EIO && s->cfg.port != 0) {
        fprintf(stderr, "orchestrator: cannot listen on %s:%d (in use?); using a free port\n",
                s->cfg.host, s->cfg.port);
        st = pm_server_opts_set_address(o, s->cfg.host, 0);
        if (st == PM_OK) st = pm_server_new(reg, o, out);
    }
    if (st != PM_OK && st != PM_EPARSE)
        fprintf(stderr, "orchestrator: the dashboard server: %s\n", pm_strerror(st));
    pm_server_opts_free(o);
    return st;
}

/* ---------------------------------------------------------------- main */

/* Waits for the end of the run or a signal, printing the script's events
 * and a progress line every few seconds. Returns the signal, or 0. */
static int watch(struct sim *s, pm_registry_t *reg, pm_alert_engine_t *e, const sigset_t *sigs)
{
    const struct timeline *tl = &s->tl;
    double next_progress = tl->progress;
    int started = 0, ended = 0;
    for (;;) {
        double now = since_start(s);
        if (!started && now >= tl->incident_start) {
            started = 1;
            if (!s->cfg.quiet)
                printf("[%5.1fs] incident: the CI runner behind test_run is %.0fx slower and fails "
                       "%.0f%% of runs;\n         a release fans out %u test_run tasks at once\n",
                       now, CI_SLOWDOWN, CI_FAILURE * 100, FANOUT_PER_AGENT * s->cfg.workers);
        }
        if (!ended && now >= tl->incident_end) {
            ended = 1;
            if (!s->cfg.quiet) printf("[%5.1fs] incident over: the CI runner has recovered\n", now);
        }
        if (now >= next_progress) {
            if (!s->cfg.quiet) print_progress(s, reg, e);
            next_progress += tl->progress;
        }
        if (now >= tl->duration) return 0;
        double next = tl->duration;
        if (next_progress < next) next = next_progress;
        if (!started && tl->incident_start < next) next = tl->incident_start;
        if (!ended && tl->incident_end < next) next = tl->incident_end;
        double wait = next > now ? next - now : 0;
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        int sig = sigtimedwait(sigs, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM) return sig;
    }
}

/* Creates the tracer, engine and server, runs the simulation, prints the
 * summary, and frees what it created. The registry is the caller's. */
static int run(struct sim *s, pm_registry_t *reg, const sigset_t *sigs)
{
    pm_alert_engine_t *e = NULL;
    pm_server_t *srv = NULL;
    struct agent agents[MAX_AGENTS];
    pthread_t prod;
    unsigned started = 0;
    int rc = 1, producing = 0, sig = 0;
    char url[128];

    pm_tracer_opts_t *to;
    if (pm_tracer_opts_new(&to) != PM_OK) return 1;
    pm_status_t st = pm_tracer_opts_set_service(to, "orchestrator");
    if (st == PM_OK) st = pm_tracer_opts_set_registry(to, reg);    /* RED metrics per operation */
    if (st == PM_OK) st = pm_tracer_opts_set_buffer(to, 8192);     /* the fan-out's bursts */
    if (st == PM_OK) st = pm_tracer_opts_set_batch(to, 1024, 1.0); /* fresh analytics each second */
    if (st == PM_OK) st = pm_tracer_new(to, &s->tracer);
    pm_tracer_opts_free(to);
    if (st != PM_OK) {
        fprintf(stderr, "orchestrator: tracer: %s\n", pm_strerror(st));
        return 1;
    }

    pm_alert_engine_opts_t *eo;
    st = pm_alert_engine_opts_new(&eo);
    if (st == PM_OK) st = pm_alert_engine_opts_set_interval(eo, s->tl.interval);
    if (st == PM_OK) st = pm_alert_engine_new(reg, eo, &e);
    pm_alert_engine_opts_free(eo);
    if (st == PM_OK) st = load_rules(e, &s->tl, s->cfg.workers);
    if (st == PM_OK && !s->cfg.quiet)
        st = pm_alert_engine_add_notifier(e, "console", NULL, print_alert, s, NULL);
    if (st == PM_OK) st = start_server(s, reg, e, &srv);
    if (st != PM_OK) goto out;

    pm_server_url(srv, url, sizeof url);
    printf("libperfmetrics orchestrator demo: %u agents, %.0f s, seed %" PRIu64 "\n",
           s->cfg.workers, s->tl.duration, s->cfg.seed);
    printf("dashboard: %s\n", url);
    printf("metrics:   %smetrics\n", url);
    printf("incident from %.1f s to %.1f s; alerts evaluated every %g s; Ctrl-C ends the run\n%s",
           s->tl.incident_start, s->tl.incident_end, s->tl.interval, s->cfg.quiet ? "" : "\n");

    s->t0_ns = mono_ns();
    s->t0_wall = wall_seconds();
    if ((st = pm_tracer_start(s->tracer)) != PM_OK || (st = pm_alert_engine_start(e)) != PM_OK) {
        fprintf(stderr, "orchestrator: start: %s\n", pm_strerror(st));
        goto out;
    }
    for (; started < s->cfg.workers; started++) {
        agents[started].sim = s;
        agents[started].index = started;
        if (pthread_create(&agents[started].thread, NULL, agent_main, &agents[started])) break;
    }
    producing = started == s->cfg.workers && !pthread_create(&prod, NULL, producer, s);
    if (!producing) {
        fprintf(stderr, "orchestrator: cannot start threads\n");
        goto out;
    }

    sig = watch(s, reg, e, sigs);
    rc = 0;
out:
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_cond_broadcast(&s->nonempty);
    pthread_cond_broadcast(&s->stop_cv);
    pthread_mutex_unlock(&s->mu);
    if (producing) pthread_join(prod, NULL);
    while (started) pthread_join(agents[--started].thread, NULL);
    if (e) pm_alert_engine_stop(e); /* PM_ESTATE when it never started */
    pm_tracer_stop(s->tracer);      /* flushes: analytics sees every span */

    if (rc == 0) {
        pm_snapshot_t *snap;
        double elapsed = since_start(s);
        printf("\n== summary: %.1f s%s, %u agents, seed %" PRIu64 " ==\n", elapsed,
               sig ? " (interrupted)" : "", s->cfg.workers, s->cfg.seed);
        if (pm_snapshot_new(reg, &snap) == PM_OK) {
            summary_tasks(snap, s->len);
            pm_snapshot_release(snap);
        }
        summary_traces(s->tracer);
        summary_alerts(s, e);
        printf("\nspans: %" PRIu64 " recorded, %" PRIu64 " dropped\n",
               pm_tracer_stat(s->tracer, PM_TRACER_SAMPLED),
               pm_tracer_stat(s->tracer, PM_TRACER_DROPPED));
        printf("server: %" PRIu64 " requests answered (%" PRIu64 " scrapes of /metrics)\n",
               pm_server_stat(srv, PM_SERVER_STAT_REQUESTS),
               pm_server_stat(srv, PM_SERVER_STAT_SCRAPES));
    }
    pm_server_free(srv); /* before the engine and tracer it reads */
    pm_alert_engine_free(e);
    pm_tracer_free(s->tracer);
    return rc;
}

int main(int argc, char **argv)
{
    struct sim *s = calloc(1, sizeof *s);
    if (!s) return 1;
    int parsed = parse_args(argc, argv, &s->cfg);
    if (parsed) {
        free(s);
        return parsed > 0 ? 0 : 2;
    }
    /* Output goes to terminals and pipes (tests read it while it runs). */
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Block the stop signals before any thread exists, so every thread
     * inherits the mask and main alone takes them, in sigtimedwait. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    s->tl = make_timeline(s->cfg.duration);
    for (unsigned a = 0; a < s->cfg.workers; a++)
        snprintf(s->agent_names[a], sizeof s->agent_names[a], "agent-%u", a + 1);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC); /* naps use monotonic deadlines */
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->nonempty, NULL);
    pthread_cond_init(&s->stop_cv, &ca);
    pthread_condattr_destroy(&ca);

    int rc = 1;
    pm_registry_t *reg;
    if (pm_registry_new(NULL, &reg) == PM_OK) {
        if (metrics_init(reg, s->cfg.workers, s->agent_names, &s->m) == PM_OK)
            rc = run(s, reg, &sigs);
        pm_registry_free(reg);
    }
    free(s->m.tasks);
    pthread_cond_destroy(&s->stop_cv);
    pthread_cond_destroy(&s->nonempty);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return rc;
}
