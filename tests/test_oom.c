/* Allocation-failure injection, in the style of SQLite's OOM loops and libuv's
 * test-loop-oom.c.
 *
 * A counting allocator (handed to the registry with
 * pm_registry_opts_set_allocator) fails its Nth allocation (and, in the
 * persistent mode, every one after it), and tracks outstanding blocks and
 * bytes. A scripted setup sequence that touches every allocating path of the
 * registry is run for N = 1, 2, 3, ... until it completes with no failure
 * injected. For every N:
 *   - the call that met the failure returns PM_ENOMEM with *out == NULL, or is
 *     one of the calls documented to absorb it (maintenance retries later; a
 *     collector whose emit fails is counted and its families left out);
 *   - the failed call left no partial state (families, series counts, counter
 *     values, snapshot count, TTL'd series are as they were), and retrying it
 *     with injection off succeeds;
 *   - the rest of the sequence then runs and the registry ends in exactly the
 *     state of a run without failures (same exposition text, same values);
 *   - after pm_registry_free no block is outstanding.
 *
 * Option objects, pm_buf and pm_hdata use malloc (documented), so they are
 * outside the injection. A few checks read lib/internal state (family count,
 * snapshot count, counter arena chunks, the calling thread's stripe) where
 * the public API has no allocation-free way to observe it. */
#include "harness.h"

#include "lib/internal/pm_internal.h"
#include <perfmetrics/perfmetrics.h>

#include <pthread.h>

/* ------------------------------------------------------------ counting allocator */

#define OOM_MAGIC 0x6f6f6d2d626c6b21ull /* "oom-blk!" */
#define OOM_FREED 0x6465616462656566ull /* poisoned on free: catches double frees */

typedef struct oom_hdr {
    uint64_t magic;
    uint64_t size;
} oom_hdr; /* 16 bytes: keeps malloc's 16-byte alignment for the caller */

static struct oom {
    pthread_mutex_t mu;
    long calls;     /* allocations requested since the last oom_reset */
    long fail_at;   /* 1-based index of the first allocation to fail; 0 = never */
    int persistent; /* fail every allocation from fail_at on */
    int armed;
    long injected; /* failures handed out */
    long blocks;   /* outstanding */
    size_t bytes;  /* outstanding */
    size_t peak_bytes;
    long bad_frees; /* frees of pointers this allocator did not hand out */
    long bad_user;  /* hooks called with another user pointer */
} g_oom = {.mu = PTHREAD_MUTEX_INITIALIZER};

static void *oom_alloc(void *user, size_t size)
{
    struct oom *o = user;
    if (o != &g_oom) {
        pthread_mutex_lock(&g_oom.mu);
        g_oom.bad_user++;
        pthread_mutex_unlock(&g_oom.mu);
        o = &g_oom;
    }
    pthread_mutex_lock(&o->mu);
    long n = ++o->calls;
    int fail = o->armed && o->fail_at > 0 && (n == o->fail_at || (o->persistent && n > o->fail_at));
    if (fail) o->injected++;
    pthread_mutex_unlock(&o->mu);
    if (fail || size > SIZE_MAX - sizeof(oom_hdr)) return NULL;
    oom_hdr *h = malloc(sizeof *h + size);
    if (!h) return NULL;
    h->magic = OOM_MAGIC;
    h->size = size;
    pthread_mutex_lock(&o->mu);
    o->blocks++;
    o->bytes += size;
    if (o->bytes > o->peak_bytes) o->peak_bytes = o->bytes;
    pthread_mutex_unlock(&o->mu);
    return h + 1;
}

static void oom_free(void *user, void *p)
{
    struct oom *o = &g_oom;
    if (!p) return;
    oom_hdr *h = (oom_hdr *)p - 1;
    pthread_mutex_lock(&o->mu);
    if (user != &g_oom) o->bad_user++;
    if (h->magic != OOM_MAGIC) {
        /* Not ours (or freed twice): count it and leave it alone. */
        o->bad_frees++;
        pthread_mutex_unlock(&o->mu);
        return;
    }
    o->blocks--;
    o->bytes -= (size_t)h->size;
    pthread_mutex_unlock(&o->mu);
    h->magic = OOM_FREED;
    free(h);
}

/* Forgets counts (not outstanding blocks) and disarms. */
static void oom_reset(void)
{
    pthread_mutex_lock(&g_oom.mu);
    g_oom.calls = 0;
    g_oom.fail_at = 0;
    g_oom.persistent = 0;
    g_oom.armed = 0;
    g_oom.injected = 0;
    pthread_mutex_unlock(&g_oom.mu);
}

/* Fails the `at`-th allocation counted from now (and all after it if persistent). */
static void oom_arm(long at, int persistent)
{
    pthread_mutex_lock(&g_oom.mu);
    g_oom.calls = 0;
    g_oom.injected = 0;
    g_oom.fail_at = at;
    g_oom.persistent = persistent;
    g_oom.armed = 1;
    pthread_mutex_unlock(&g_oom.mu);
}

static void oom_disarm(void)
{
    pthread_mutex_lock(&g_oom.mu);
    g_oom.armed = 0;
    pthread_mutex_unlock(&g_oom.mu);
}

static long oom_get(const long *field)
{
    pthread_mutex_lock(&g_oom.mu);
    long v = *field;
    pthread_mutex_unlock(&g_oom.mu);
    return v;
}

static long oom_injected(void) { return oom_get(&g_oom.injected); }
static long oom_calls(void) { return oom_get(&g_oom.calls); }
static long oom_blocks(void) { return oom_get(&g_oom.blocks); }

static pm_registry_opts_t *oom_opts(void)
{
    pm_registry_opts_t *o = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    if (pm_registry_opts_set_allocator(o, oom_alloc, oom_free, &g_oom) != PM_OK ||
        pm_registry_opts_set_stripes(o, 4) != PM_OK) {
        pm_registry_opts_free(o);
        return NULL;
    }
    return o;
}

/* Pins the calling thread to a stripe (0-based), so that which histogram
 * copies get requested, and thus the allocation sequence, is the same on
 * every run whatever order threads first recorded in. */
static void pin_stripe(unsigned stripe) { pm__tls_stripe = stripe + 1; }

/* Failure reports for loops: every failure counts, only the first few of
 * each kind are printed. */
#define OOM_FAIL(counter, ...)                                                                     \
    do {                                                                                           \
        th_failures++;                                                                             \
        if ((counter)++ < 4) {                                                                     \
            fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                      \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
        }                                                                                          \
    } while (0)

/* ------------------------------------------------------------ snapshot helpers */

static const pm_snap_family_t *find_family(const pm_snapshot_t *s, const char *name)
{
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), name) == 0) return f;
    }
    return NULL;
}

/* Families whose name starts with prefix. */
static size_t count_prefixed(const pm_snapshot_t *s, const char *prefix)
{
    size_t n = 0;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++)
        if (strncmp(pm_snap_family_name(pm_snapshot_family(s, i)), prefix, strlen(prefix)) == 0)
            n++;
    return n;
}

static size_t count_families(const pm_snapshot_t *s, const char *name)
{
    size_t n = 0;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++)
        if (strcmp(pm_snap_family_name(pm_snapshot_family(s, i)), name) == 0) n++;
    return n;
}

/* The series whose first label value is v0 (the first series when v0 is NULL). */
static const pm_snap_series_t *find_series(const pm_snap_family_t *f, const char *v0)
{
    for (size_t i = 0; i < pm_snap_family_series_count(f); i++) {
        const pm_snap_series_t *se = pm_snap_family_series(f, i);
        if (!v0 || strcmp(pm_snap_series_label_value(se, 0), v0) == 0) return se;
    }
    return NULL;
}

/* Value of family{first label = v0}; NaN if absent. */
static double value_of(const pm_snapshot_t *s, const char *family, const char *v0)
{
    const pm_snap_family_t *f = find_family(s, family);
    return f ? pm_snap_series_value(find_series(f, v0)) : NAN;
}

static double family_sum(const pm_snap_family_t *f)
{
    double sum = 0;
    for (size_t i = 0; i < pm_snap_family_series_count(f); i++)
        sum += pm_snap_series_value(pm_snap_family_series(f, i));
    return sum;
}

/* Copies of the exposition text without the lines that legitimately differ
 * between two runs: the snapshot's own duration, and the collector's
 * self-metrics (checked separately, with the counts each run expects). */
static char *canonical_text(const char *text)
{
    size_t n = strlen(text);
    char *out = malloc(n + 1), *o = out;
    if (!out) return NULL;
    for (const char *p = text; *p;) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) + 1 : strlen(p);
        char line[256];
        size_t cl = len < sizeof line - 1 ? len : sizeof line - 1;
        memcpy(line, p, cl);
        line[cl] = 0;
        if (!strstr(line, "perfmetrics_snapshot_duration_seconds") &&
            !strstr(line, "perfmetrics_collector_")) {
            memcpy(o, p, len);
            o += len;
        }
        p += len;
    }
    *o = 0;
    return out;
}

/* Prints the first differing line of two texts. */
static void print_first_diff(const char *a, const char *b)
{
    size_t line = 1;
    while (*a && *a == *b) {
        if (*a == '\n') line++;
        a++, b++;
    }
    while (line > 1 && a[-1] != '\n') a--, b--;
    int la = (int)(strchr(a, '\n') ? strchr(a, '\n') - a : (long)strlen(a));
    int lb = (int)(strchr(b, '\n') ? strchr(b, '\n') - b : (long)strlen(b));
    fprintf(stderr, "    first difference at line %zu:\n      got:  %.*s\n      want: %.*s\n", line,
            la, a, lb, b);
}

/* ------------------------------------------------------------ the scripted sequence */

#define NREQ 300 /* > PM_CHUNK_SLOTS: a second counter arena chunk, several table growths */
#define NTTL 3
#define NWORK 3
#define COL_SAMPLES 20 /* x ~4 KB of label text: the collector's output needs new arena chunks */

enum {
    F_REQ,
    F_TEMP,
    F_LAT,
    F_TTL,
    F_WORK,
    NFAM
};

typedef struct ctx {
    pm_registry_opts_t *opts;
    pm_registry_t *r;
    pm_family_t *fam[NFAM];
    pm_counter_t *req[NREQ];
    pm_counter_t *events;
    pm_gauge_t *temp;
    pm_histogram_t *lat;
    pm_gauge_t *ttl[NTTL];
    pm_gauge_t *work[NWORK];
    pm_buf_t *buf;
    /* exporter and collector user data */
    int exp_runs, exp_released, exp_bad;
    int col_calls, col_released;
    int cb_calls;
    /* failure protocol: what the last failed call stored in its out-parameter */
    int out_checked, out_null;
    /* snapshots that succeeded, and the ones among them whose collector
     * output was dropped because an emit met the injected failure */
    int snapshots_ok, collector_absorbed;
    long step_injected_before;
    long fail_count; /* shared OOM_FAIL counter */
} ctx;

static char col_label[4001]; /* 4000 x 'x': big label values */

static pm_status_t collect_cb(pm_emit_t *e, void *user)
{
    ctx *c = user;
    c->col_calls++;
    static const char *const names[] = {"blob", "idx"};
    pm_status_t st =
        pm_emit_family(e, PM_TYPE_GAUGE, "oom_collected", "Collector output.", NULL, names, 2);
    for (int i = 0; st == PM_OK && i < COL_SAMPLES; i++) {
        char idx[16];
        snprintf(idx, sizeof idx, "%d", i);
        const char *v[2] = {col_label, idx};
        st = pm_emit_sample(e, v, 2, (double)i);
    }
    return st;
}

static void col_release(void *user) { ((ctx *)user)->col_released++; }

/* Walks the snapshot through the accessors, as a real exporter would. */
static pm_status_t export_cb(const pm_snapshot_t *s, void *user)
{
    ctx *c = user;
    c->exp_runs++;
    const pm_snap_family_t *f = find_family(s, "oom_requests");
    /* At export time series m0 was removed: 2 + ... + NREQ. */
    double want = (double)NREQ * (NREQ + 1) / 2 - 1;
    if (!f || pm_snap_family_series_count(f) != NREQ - 1 || family_sum(f) != want) c->exp_bad++;
    return PM_OK;
}

static void exp_release(void *user) { ((ctx *)user)->exp_released++; }

static double queue_depth(void *user)
{
    ctx *c = user;
    c->cb_calls++;
    return 7;
}

/* Step outcome bookkeeping for calls with an out-parameter. */
static pm_status_t note_out(ctx *c, pm_status_t st, const void *out)
{
    if (st != PM_OK) {
        c->out_checked = 1;
        c->out_null = out == NULL;
    }
    return st;
}

#define SENTINEL ((void *)&g_oom)

static pm_status_t s_registry_new(ctx *c, int arg)
{
    (void)arg;
    pm_registry_t *r = SENTINEL;
    pm_status_t st = pm_registry_new(c->opts, &r);
    if (st == PM_OK) c->r = r;
    return note_out(c, st, r);
}

/* The main thread records through its own counter shard (malloc-backed, so
 * never failed here): the arena growth below must extend shards too. */
static pm_status_t s_thread_attach(ctx *c, int arg)
{
    (void)arg;
    return pm_thread_attach(c->r);
}

static pm_status_t make_family(ctx *c, int which, pm_family_t **out)
{
    static const char *const req_labels[] = {"method", "code"};
    static const char *const one_label[] = {"id"};
    static const char *const work_label[] = {"worker"};
    static const double bounds[] = {0.001, 0.01, 0.1, 1};
    pm_family_opts_t *o = NULL;
    pm_status_t st = pm_family_opts_new(&o);
    if (st != PM_OK) return st;
    pm_type_t type = PM_TYPE_COUNTER;
    const char *name = "", *help = "";
    switch (which) {
    case F_REQ:
        name = "oom_requests", help = "Requests.";
        st = pm_family_opts_set_labels(o, req_labels, 2);
        break;
    case F_TEMP:
        type = PM_TYPE_GAUGE, name = "oom_temperature", help = "A gauge.";
        break;
    case F_LAT:
        type = PM_TYPE_HISTOGRAM, name = "oom_latency_seconds", help = "Latency.";
        if (st == PM_OK) st = pm_family_opts_set_unit(o, "seconds");
        if (st == PM_OK) st = pm_family_opts_set_buckets(o, bounds, 4);
        break;
    case F_TTL:
        /* A TTL this short removes, at the next successful snapshot, every
         * series whose value did not change since the previous look. */
        type = PM_TYPE_GAUGE, name = "oom_sessions", help = "TTL'd series.";
        st = pm_family_opts_set_labels(o, one_label, 1);
        if (st == PM_OK) st = pm_family_opts_set_ttl(o, 1e-9);
        break;
    case F_WORK:
        type = PM_TYPE_GAUGE, name = "oom_workers", help = "Capped at 2 series.";
        st = pm_family_opts_set_labels(o, work_label, 1);
        if (st == PM_OK) st = pm_family_opts_set_max_series(o, 2);
        break;
    }
    if (st == PM_OK) st = pm_family_new(c->r, type, name, help, o, out);
    pm_family_opts_free(o);
    return st;
}

static pm_status_t s_family(ctx *c, int which)
{
    pm_family_t *f = SENTINEL;
    pm_status_t st = make_family(c, which, &f);
    if (st == PM_OK) c->fam[which] = f;
    return note_out(c, st, f);
}

static pm_status_t s_counter_new(ctx *c, int arg)
{
    (void)arg;
    pm_counter_t *h = SENTINEL;
    pm_status_t st = pm_counter_new(c->r, "oom_events", "Events.", &h);
    if (st == PM_OK) c->events = h;
    return note_out(c, st, h);
}

static pm_status_t s_gauge_get(ctx *c, int arg)
{
    (void)arg;
    pm_gauge_t *h = SENTINEL;
    pm_status_t st = pm_gauge_get(c->fam[F_TEMP], NULL, 0, &h);
    if (st == PM_OK) c->temp = h;
    return note_out(c, st, h);
}

static pm_status_t s_hist_get(ctx *c, int arg)
{
    (void)arg;
    pm_histogram_t *h = SENTINEL;
    pm_status_t st = pm_histogram_get(c->fam[F_LAT], NULL, 0, &h);
    if (st == PM_OK) c->lat = h;
    return note_out(c, st, h);
}

static pm_status_t s_counter_get(ctx *c, int i)
{
    char method[16], code[16];
    snprintf(method, sizeof method, "m%d", i);
    snprintf(code, sizeof code, "%d", 200 + i % 7);
    const char *v[2] = {method, code};
    pm_counter_t *h = SENTINEL;
    pm_status_t st = pm_counter_get(c->fam[F_REQ], v, 2, &h);
    if (st == PM_OK) c->req[i] = h;
    return note_out(c, st, h);
}

static pm_status_t s_ttl_get(ctx *c, int i)
{
    char id[16];
    snprintf(id, sizeof id, "s%d", i);
    const char *v[1] = {id};
    pm_gauge_t *h = SENTINEL;
    pm_status_t st = pm_gauge_get(c->fam[F_TTL], v, 1, &h);
    if (st == PM_OK) c->ttl[i] = h;
    return note_out(c, st, h);
}

static pm_status_t s_worker_get(ctx *c, int i)
{
    char id[16];
    snprintf(id, sizeof id, "w%d", i);
    const char *v[1] = {id};
    pm_gauge_t *h = SENTINEL;
    pm_status_t st = pm_gauge_get(c->fam[F_WORK], v, 1, &h); /* the third lands in overflow */
    if (st == PM_OK) c->work[i] = h;
    return note_out(c, st, h);
}

static pm_status_t s_gauge_callback(ctx *c, int arg)
{
    (void)arg;
    return pm_gauge_callback_new(c->r, "oom_queue_depth", "Callback gauge.", queue_depth, c);
}

static pm_status_t s_collector_add(ctx *c, int arg)
{
    (void)arg;
    pm_collector_t *h = SENTINEL;
    pm_status_t st = pm_collector_add(c->r, "oomcol", collect_cb, c, col_release, &h);
    return note_out(c, st, h);
}

static pm_status_t s_exporter_add(ctx *c, int arg)
{
    (void)arg;
    pm_exporter_t *h = SENTINEL;
    pm_status_t st = pm_exporter_add(c->r, "oomexp", export_cb, c, exp_release, &h);
    return note_out(c, st, h);
}

static void *helper_observe(void *arg)
{
    pin_stripe(1); /* stripe 1 has no histogram copy yet: records into stripe 0's, asks for one */
    for (int i = 0; i < 3; i++) pm_histogram_observe(arg, 0.002);
    return NULL;
}

static pm_status_t s_record(ctx *c, int arg)
{
    (void)arg;
    for (int i = 0; i < NREQ; i++) pm_counter_add(c->req[i], i + 1);
    for (int i = 0; i < 5; i++) pm_counter_inc(c->events);
    pm_gauge_set(c->temp, 21.5);
    static const double obs[] = {0.0005, 0.005, 0.05, 0.5, 5};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) pm_histogram_observe(c->lat, obs[i]);
    for (int i = 0; i < NWORK; i++) pm_gauge_set(c->work[i], i + 1);
    pthread_t t;
    if (pthread_create(&t, NULL, helper_observe, c->lat) != 0) return PM_ETHREAD;
    pthread_join(t, NULL);
    return PM_OK;
}

static pm_status_t s_maintain(ctx *c, int arg)
{
    (void)arg;
    return pm_registry_maintain(c->r);
}

/* The registry's snapshot count (internal: the public view needs a snapshot). */
static uint64_t reg_snapshots(ctx *c) { return c->r ? ((pm_registry *)c->r)->snapshots : 0; }

/* Checks a snapshot taken by the script; `absorbed` says whether an injected
 * failure met the collector while taking it. */
static void check_script_snapshot(ctx *c, const pm_snapshot_t *s, int absorbed)
{
    CHECK_EQ_DBL(family_sum(find_family(s, "oom_requests")), (double)NREQ * (NREQ + 1) / 2);
    CHECK_EQ_DBL(value_of(s, "oom_events", NULL), 5);
    CHECK_EQ_DBL(value_of(s, "oom_temperature", NULL), 21.5);
    CHECK_EQ_DBL(value_of(s, "oom_queue_depth", NULL), 7);
    const pm_snap_series_t *h = find_series(find_family(s, "oom_latency_seconds"), NULL);
    CHECK_EQ_U64(pm_snap_series_count(h), 8);
    CHECK_EQ_U64(pm_snap_series_bucket_cumulative(h, 1), 5);
    /* TTL'd series are still in the snapshot that expires them. */
    CHECK_EQ_INT(pm_snap_family_series_count(find_family(s, "oom_sessions")), NTTL);
    const pm_snap_family_t *col = find_family(s, "oom_collected");
    if (absorbed) {
        CHECK(col == NULL);
        CHECK_EQ_DBL(value_of(s, "perfmetrics_collector_failures", "oomcol"),
                     c->collector_absorbed);
    } else {
        CHECK(col != NULL);
        CHECK_EQ_INT(pm_snap_family_series_count(col), COL_SAMPLES);
    }
}

static pm_status_t s_snapshot(ctx *c, int arg)
{
    (void)arg;
    pm_snapshot_t *s = SENTINEL;
    long inj0 = oom_injected();
    pm_status_t st = pm_snapshot_new(c->r, &s);
    if (st != PM_OK) return note_out(c, st, s);
    int absorbed = oom_injected() > inj0;
    c->snapshots_ok++;
    c->collector_absorbed += absorbed;
    check_script_snapshot(c, s, absorbed);
    pm_buf_reset(c->buf);
    CHECK_OK(pm_format(s, PM_FORMAT_PROMETHEUS, c->buf));
    CHECK_CONTAINS(pm_buf_data(c->buf), "oom_events_total 5\n");
    CHECK_CONTAINS(pm_buf_data(c->buf), "oom_requests_total{method=\"m299\",code=\"205\"} 300\n");
    CHECK_CONTAINS(pm_buf_data(c->buf), "oom_latency_seconds_bucket{le=\"0.01\"} 5\n");
    pm_snapshot_release(s);
    CHECK_EQ_INT(pm_family_series_count(c->fam[F_TTL]), 0); /* expired by that snapshot */
    return PM_OK;
}

static pm_status_t s_remove(ctx *c, int arg)
{
    (void)arg;
    const char *v[2] = {"m0", "200"};
    pm_status_t st = pm_family_remove(c->fam[F_REQ], v, 2);
    if (st == PM_OK) {
        pm_counter_add(c->req[0], 1000); /* a detached series still takes records, unseen */
        pm_counter_release(c->req[0]);
        c->req[0] = NULL;
    }
    return st;
}

static pm_status_t s_clear(ctx *c, int arg)
{
    (void)arg;
    return pm_family_clear(c->fam[F_WORK]);
}

static pm_status_t s_export_now(ctx *c, int arg)
{
    (void)arg;
    long inj0 = oom_injected();
    int runs0 = c->exp_runs;
    pm_status_t st = pm_export_now(c->r);
    if (st == PM_OK) {
        c->snapshots_ok++;
        c->collector_absorbed += oom_injected() > inj0;
        CHECK_EQ_INT(c->exp_runs, runs0 + 1);
    } else {
        CHECK_EQ_INT(c->exp_runs, runs0); /* no snapshot, no export */
    }
    return st;
}

/* Steps that may meet an injected failure and still return PM_OK. */
#define ABSORBS 1u

typedef struct step {
    const char *name;
    pm_status_t (*fn)(ctx *, int);
    int arg;
    unsigned flags;
} step;

#define MAX_STEPS (NREQ + 64)
static step g_steps[MAX_STEPS];
static size_t g_nsteps;

static void add_step(const char *name, pm_status_t (*fn)(ctx *, int), int arg, unsigned flags)
{
    g_steps[g_nsteps++] = (step){name, fn, arg, flags};
}

static void build_script(void)
{
    memset(col_label, 'x', sizeof col_label - 1);
    g_nsteps = 0;
    add_step("pm_registry_new", s_registry_new, 0, 0);
    add_step("pm_thread_attach", s_thread_attach, 0, 0);
    add_step("pm_family_new(counter, 2 labels)", s_family, F_REQ, 0);
    add_step("pm_family_new(gauge)", s_family, F_TEMP, 0);
    add_step("pm_family_new(histogram, custom buckets)", s_family, F_LAT, 0);
    add_step("pm_family_new(gauge, TTL)", s_family, F_TTL, 0);
    add_step("pm_family_new(gauge, max_series 2)", s_family, F_WORK, 0);
    add_step("pm_counter_new", s_counter_new, 0, 0);
    add_step("pm_gauge_get", s_gauge_get, 0, 0);
    add_step("pm_histogram_get", s_hist_get, 0, 0);
    for (int i = 0; i < NREQ; i++) add_step("pm_counter_get", s_counter_get, i, 0);
    for (int i = 0; i < NTTL; i++) add_step("pm_gauge_get(TTL family)", s_ttl_get, i, 0);
    for (int i = 0; i < NWORK; i++) add_step("pm_gauge_get(capped family)", s_worker_get, i, 0);
    add_step("pm_gauge_callback_new", s_gauge_callback, 0, 0);
    add_step("pm_collector_add", s_collector_add, 0, 0);
    add_step("pm_exporter_add", s_exporter_add, 0, 0);
    add_step("record", s_record, 0, 0);
    add_step("pm_registry_maintain", s_maintain, 0, ABSORBS);
    add_step("pm_snapshot_new + pm_format", s_snapshot, 0, ABSORBS);
    add_step("pm_family_remove", s_remove, 0, 0);
    add_step("pm_family_clear", s_clear, 0, 0);
    add_step("pm_export_now", s_export_now, 0, ABSORBS);
    add_step("pm_registry_maintain", s_maintain, 0, ABSORBS);
}

/* What a failed call must leave as it was. */
typedef struct observed {
    int have_reg;
    size_t nfam;
    size_t series[NFAM];
    double counters;
    double temp;
    uint64_t snapshots;
    int exp_runs;
} observed;

static observed observe(ctx *c)
{
    observed o;
    memset(&o, 0, sizeof o);
    o.have_reg = c->r != NULL;
    if (c->r) o.nfam = ((pm_registry *)c->r)->nfam;
    for (int i = 0; i < NFAM; i++) o.series[i] = pm_family_series_count(c->fam[i]);
    for (int i = 0; i < NREQ; i++) o.counters += pm_counter_value(c->req[i]);
    o.counters += pm_counter_value(c->events);
    o.temp = pm_gauge_value(c->temp);
    o.snapshots = reg_snapshots(c);
    o.exp_runs = c->exp_runs;
    return o;
}

static void compare_observed(ctx *c, const char *step_name, long n, const observed *a,
                             const observed *b)
{
    static const char *fam_names[NFAM] = {"oom_requests", "oom_temperature", "oom_latency_seconds",
                                          "oom_sessions", "oom_workers"};
    if (a->have_reg != b->have_reg || a->nfam != b->nfam)
        OOM_FAIL(c->fail_count, "N=%ld, failed %s: family count %zu -> %zu (partial state)", n,
                 step_name, a->nfam, b->nfam);
    for (int i = 0; i < NFAM; i++)
        if (a->series[i] != b->series[i])
            OOM_FAIL(c->fail_count, "N=%ld, failed %s: %s series count %zu -> %zu", n, step_name,
                     fam_names[i], a->series[i], b->series[i]);
    if (a->counters != b->counters || a->temp != b->temp)
        OOM_FAIL(c->fail_count, "N=%ld, failed %s: recorded values changed", n, step_name);
    if (a->snapshots != b->snapshots)
        OOM_FAIL(c->fail_count, "N=%ld, failed %s: snapshot count %llu -> %llu", n, step_name,
                 (unsigned long long)a->snapshots, (unsigned long long)b->snapshots);
    if (a->exp_runs != b->exp_runs)
        OOM_FAIL(c->fail_count, "N=%ld, failed %s: exporter ran", n, step_name);
}

typedef struct run_result {
    long allocs;        /* allocations the script made (up to its end) */
    long injected;      /* failures handed out */
    size_t failed_step; /* index of the step that met the first failure, or SIZE_MAX */
    int absorbed;       /* that step returned PM_OK */
    char *text;         /* canonical exposition after the script (malloc) */
    double col_runs, col_failures;
    int col_calls;
} run_result;

/* Runs the script; with fail_at > 0 the fail_at-th allocation fails (and the
 * following ones in the same step when persistent). The step that meets the
 * failure is checked, retried with injection off, and the script goes on. */
static run_result run_script(long fail_at, int persistent, long *fail_count)
{
    run_result res = {0, 0, SIZE_MAX, 0, NULL, 0, 0, 0};
    ctx *c = calloc(1, sizeof *c);
    if (!c) {
        TH_FAIL_("calloc");
        return res;
    }
    c->fail_count = *fail_count;
    c->opts = oom_opts();
    if (!c->opts || pm_buf_new(&c->buf) != PM_OK) {
        TH_FAIL_("setup");
        free(c);
        return res;
    }
    long blocks0 = oom_blocks();
    if (fail_at > 0)
        oom_arm(fail_at, persistent);
    else
        oom_reset();
    for (size_t i = 0; i < g_nsteps; i++) {
        const step *sp = &g_steps[i];
        observed before = observe(c);
        long inj0 = oom_injected();
        int exp_rel0 = c->exp_released, col_rel0 = c->col_released;
        c->out_checked = 0;
        pm_status_t st = sp->fn(c, sp->arg);
        if (oom_injected() == inj0) {
            if (st != PM_OK)
                OOM_FAIL(c->fail_count, "N=%ld: step %zu %s returned %s with no failure injected",
                         fail_at, i, sp->name, pm_status_name(st));
            if (!c->r) break;
            continue;
        }
        /* This step met the injected failure. */
        oom_disarm();
        res.failed_step = i;
        if (st == PM_OK) {
            res.absorbed = 1;
            if (!(sp->flags & ABSORBS))
                OOM_FAIL(c->fail_count,
                         "N=%ld: step %zu %s met an allocation failure but returned PM_OK", fail_at,
                         i, sp->name);
            continue;
        }
        if (st != PM_ENOMEM)
            OOM_FAIL(c->fail_count, "N=%ld: step %zu %s returned %s, want PM_ENOMEM", fail_at, i,
                     sp->name, pm_status_name(st));
        if (c->out_checked && !c->out_null)
            OOM_FAIL(c->fail_count, "N=%ld: step %zu %s failed but left *out non-NULL", fail_at, i,
                     sp->name);
        if (sp->fn == s_exporter_add && c->exp_released != exp_rel0 + 1)
            OOM_FAIL(c->fail_count, "N=%ld: failed pm_exporter_add called release %d times",
                     fail_at, c->exp_released - exp_rel0);
        if (sp->fn == s_collector_add && c->col_released != col_rel0 + 1)
            OOM_FAIL(c->fail_count, "N=%ld: failed pm_collector_add called release %d times",
                     fail_at, c->col_released - col_rel0);
        observed after = observe(c);
        compare_observed(c, sp->name, fail_at, &before, &after);
        if (sp->fn == s_registry_new && oom_blocks() != blocks0)
            OOM_FAIL(c->fail_count, "N=%ld: failed pm_registry_new left %ld blocks", fail_at,
                     oom_blocks() - blocks0);
        /* The registry must still be usable: the same call now succeeds. */
        st = sp->fn(c, sp->arg);
        if (st != PM_OK)
            OOM_FAIL(c->fail_count, "N=%ld: retrying step %zu %s gave %s", fail_at, i, sp->name,
                     pm_status_name(st));
        if (!c->r) break;
    }
    res.allocs = oom_calls();
    res.injected = oom_injected();
    oom_disarm();

    if (c->r) {
        /* The end state must not depend on where the failure was. */
        CHECK_EQ_INT(c->exp_bad, 0);
        CHECK_EQ_INT(c->exp_runs, 1);
        pm_snapshot_t *s = NULL;
        CHECK_OK(pm_snapshot_new(c->r, &s));
        if (s) {
            CHECK_EQ_INT(count_families(s, "oom_requests"), 1);
            const pm_snap_family_t *req = find_family(s, "oom_requests");
            CHECK_EQ_INT(pm_snap_family_series_count(req), NREQ - 1);
            CHECK_EQ_DBL(family_sum(req), (double)NREQ * (NREQ + 1) / 2 - 1);
            CHECK_EQ_INT(pm_snap_family_series_count(find_family(s, "oom_sessions")), 0);
            const pm_snap_family_t *w = find_family(s, "oom_workers");
            CHECK_EQ_INT(pm_snap_family_series_count(w), 1);
            CHECK_EQ_INT(pm_snap_series_is_overflow(pm_snap_family_series(w, 0)), 1);
            CHECK_EQ_DBL(value_of(s, "oom_workers", ""), 0);
            CHECK_EQ_DBL(value_of(s, "perfmetrics_series_removed", "oom_sessions"), NTTL);
            CHECK_EQ_DBL(value_of(s, "perfmetrics_exporter_runs", "oomexp"), 1);
            CHECK(find_family(s, "oom_collected") != NULL);
            res.col_runs = value_of(s, "perfmetrics_collector_runs", "oomcol");
            res.col_failures = value_of(s, "perfmetrics_collector_failures", "oomcol");
            if (res.col_failures != c->collector_absorbed)
                OOM_FAIL(c->fail_count, "N=%ld: collector failures %g, want %d", fail_at,
                         res.col_failures, c->collector_absorbed);
            pm_buf_reset(c->buf);
            CHECK_OK(pm_format(s, PM_FORMAT_PROMETHEUS, c->buf));
            res.text = canonical_text(pm_buf_data(c->buf));
        }
        /* A snapshot outlives its registry, and owns memory from its allocator. */
        pm_registry_free(c->r);
        if (s) {
            CHECK(oom_blocks() > blocks0);
            CHECK_EQ_DBL(value_of(s, "oom_events", NULL), 5);
            pm_snapshot_release(s);
        }
        res.col_calls = c->col_calls;
    }
    if (oom_blocks() != blocks0)
        OOM_FAIL(c->fail_count, "N=%ld (failed step %s): %ld blocks outstanding after free",
                 fail_at, res.failed_step == SIZE_MAX ? "none" : g_steps[res.failed_step].name,
                 oom_blocks() - blocks0);
    CHECK_EQ_INT(c->exp_released, 1 + (res.failed_step != SIZE_MAX &&
                                       g_steps[res.failed_step].fn == s_exporter_add));
    CHECK_EQ_INT(c->col_released, 1 + (res.failed_step != SIZE_MAX &&
                                       g_steps[res.failed_step].fn == s_collector_add));
    *fail_count = c->fail_count;
    pm_buf_free(c->buf);
    pm_registry_opts_free(c->opts);
    free(c);
    return res;
}

static void oom_loop(int persistent)
{
    pin_stripe(0);
    build_script();
    long fails = 0;
    long text_diffs = 0, runs_diffs = 0;
    run_result ref = run_script(0, 0, &fails);
    REQUIRE(ref.text != NULL);
    REQUIRE(ref.allocs > NREQ);
    CHECK_EQ_INT(ref.injected, 0);
    CHECK_EQ_DBL(ref.col_runs, 3);
    CHECK_EQ_DBL(ref.col_failures, 0);

    long n, absorbed = 0, per_step_hits = 0;
    char absorbed_at[256] = "";
    int last_injected = 1;
    for (n = 1; n <= ref.allocs + 1 && last_injected; n++) {
        run_result res = run_script(n, persistent, &fails);
        last_injected = res.injected > 0;
        if (!last_injected) {
            free(res.text);
            break;
        }
        per_step_hits++;
        absorbed += res.absorbed;
        if (res.absorbed && strlen(absorbed_at) < 200) {
            size_t l = strlen(absorbed_at);
            snprintf(absorbed_at + l, sizeof absorbed_at - l, "%s%s", l ? ", " : "",
                     g_steps[res.failed_step].name);
        }
        if (res.text && strcmp(res.text, ref.text) != 0) {
            th_failures++;
            if (text_diffs++ < 3) {
                fprintf(stderr,
                        "  N=%ld (failed step %zu %s): exposition differs from the "
                        "failure-free run\n",
                        n, res.failed_step, g_steps[res.failed_step].name);
                print_first_diff(res.text, ref.text);
            }
        }
        /* Each successful snapshot runs the collector once; a failed one must not count. */
        if (res.col_runs != ref.col_runs) {
            th_failures++;
            if (runs_diffs++ < 3)
                fprintf(stderr,
                        "  N=%ld (failed step %zu %s): "
                        "perfmetrics_collector_runs{collector=\"oomcol\"} "
                        "= %g, want %g (collector calls: %d)\n",
                        n, res.failed_step, g_steps[res.failed_step].name, res.col_runs,
                        ref.col_runs, res.col_calls);
        }
        free(res.text);
    }
    /* The allocation sequence is deterministic: every allocation of the
     * failure-free run was failed once, then the run went through. */
    CHECK(!last_injected);
    CHECK_EQ_INT(n, ref.allocs + 1);
    printf("  info: %s mode: %ld allocations in the script, %ld runs with a failure injected; "
           "%ld absorbed (%s); %ld exposition diffs, %ld collector-run diffs\n",
           persistent ? "persistent" : "one-shot", ref.allocs, per_step_hits, absorbed, absorbed_at,
           text_diffs, runs_diffs);
    CHECK_EQ_INT(g_oom.bad_frees, 0);
    CHECK_EQ_INT(g_oom.bad_user, 0);
    free(ref.text);
}

TEST(test_oom_loop_once) { oom_loop(0); }

TEST(test_oom_loop_persistent) { oom_loop(1); }

/* ------------------------------------------------------------ focused cases */

TEST(test_registry_new_oom_leaves_nothing)
{
    pm_registry_opts_t *o = oom_opts();
    REQUIRE(o != NULL);
    long blocks0 = oom_blocks();
    int failures = 0;
    for (long n = 1; n < 100; n++) {
        for (int persistent = 0; persistent < 2; persistent++) {
            pm_registry_t *r = SENTINEL;
            oom_arm(n, persistent);
            pm_status_t st = pm_registry_new(o, &r);
            long injected = oom_injected();
            oom_disarm();
            if (!injected) {
                CHECK_OK(st);
                CHECK(r != NULL && r != SENTINEL);
                pm_registry_free(r);
                CHECK_EQ_INT(oom_blocks(), blocks0);
                if (persistent) {
                    CHECK(failures >= 2); /* the registry and its reader cells */
                    pm_registry_opts_free(o);
                    return;
                }
                continue;
            }
            failures += !persistent;
            CHECK_STATUS(st, PM_ENOMEM);
            CHECK(r == NULL);
            CHECK_EQ_INT(oom_blocks(), blocks0);
        }
    }
    TH_FAIL_("pm_registry_new never succeeded");
    pm_registry_opts_free(o);
}

static pm_registry_t *new_oom_registry(void)
{
    pm_registry_opts_t *o = oom_opts();
    pm_registry_t *r = NULL;
    if (o) pm_registry_new(o, &r);
    pm_registry_opts_free(o);
    return r;
}

static void family_new_failures(int persistent)
{
    static const char *const labels[] = {"a", "b"};
    static const double bounds[] = {0.1, 0.2, 0.3};
    pm_family_opts_t *o = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    CHECK_OK(pm_family_opts_set_labels(o, labels, 2));
    CHECK_OK(pm_family_opts_set_buckets(o, bounds, 3));
    CHECK_OK(pm_family_opts_set_unit(o, "seconds"));
    long blocks0 = oom_blocks();
    long n;
    for (n = 1; n < 1000; n++) {
        pm_registry_t *r = new_oom_registry();
        REQUIRE(r != NULL);
        /* 16 families already: the next one needs the family array and the name
         * index to grow. */
        for (int i = 0; i < 16; i++) {
            char name[32];
            snprintf(name, sizeof name, "pre_%d", i);
            pm_family_t *f;
            CHECK_OK(pm_family_new(r, PM_TYPE_GAUGE, name, "", NULL, &f));
        }
        size_t nfam0 = ((pm_registry *)r)->nfam;
        pm_family_t *f = SENTINEL;
        oom_arm(n, persistent);
        pm_status_t st = pm_family_new(r, PM_TYPE_HISTOGRAM, "h_seconds", "help", o, &f);
        long injected = oom_injected();
        oom_disarm();
        if (!injected) {
            CHECK_OK(st);
            pm_registry_free(r);
            break;
        }
        CHECK_STATUS(st, PM_ENOMEM);
        CHECK(f == NULL);
        CHECK_EQ_INT(((pm_registry *)r)->nfam, nfam0);
        /* A retry with the same definition creates it; asking again finds that
         * one, and another definition conflicts: it exists exactly once. */
        CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "h_seconds", "help", o, &f));
        pm_family_t *f2 = NULL;
        CHECK_OK(pm_family_new(r, PM_TYPE_HISTOGRAM, "h_seconds", "help", o, &f2));
        CHECK(f2 == f);
        CHECK_STATUS(pm_family_new(r, PM_TYPE_GAUGE, "h_seconds", "help", NULL, &f2), PM_EEXIST);
        CHECK_EQ_INT(((pm_registry *)r)->nfam, nfam0 + 1);
        pm_snapshot_t *s = NULL;
        CHECK_OK(pm_snapshot_new(r, &s));
        CHECK_EQ_INT(count_families(s, "h_seconds"), 1);
        pm_snapshot_release(s);
        pm_registry_free(r);
        CHECK_EQ_INT(oom_blocks(), blocks0);
    }
    /* family, name, help, unit, label array, 2 labels, 3 layout arrays, family array,
     * the registry's name index (it grows at the 17th family too) */
    CHECK_EQ_INT(n, 13);
    pm_family_opts_free(o);
}

TEST(test_family_new_failure_leaves_no_family)
{
    pin_stripe(0);
    family_new_failures(0);
    family_new_failures(1);
}

TEST(test_counter_get_failure_keeps_series_count)
{
    pin_stripe(0);
    static const char *const labels[] = {"k"};
    pm_family_opts_t *o = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    CHECK_OK(pm_family_opts_set_labels(o, labels, 1));
    pm_registry_t *r = new_oom_registry();
    REQUIRE(r != NULL);
    pm_family_t *f = NULL;
    REQUIRE(pm_family_new(r, PM_TYPE_COUNTER, "c", "", o, &f) == PM_OK);
    pm_family_opts_free(o);
    /* Fail every allocation of every get up to the second arena chunk. */
    int fails = 0;
    for (int i = 0; i < 2 * PM_CHUNK_SLOTS + 10; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        const char *v[1] = {key};
        for (long n = 1;; n++) {
            size_t count0 = pm_family_series_count(f);
            pm_counter_t *c = SENTINEL;
            oom_arm(n, 0);
            pm_status_t st = pm_counter_get(f, v, 1, &c);
            long injected = oom_injected();
            oom_disarm();
            if (!injected) {
                CHECK_OK(st);
                CHECK_EQ_INT(pm_family_series_count(f), count0 + 1);
                pm_counter_add(c, (double)i);
                break;
            }
            fails++;
            CHECK_STATUS(st, PM_ENOMEM);
            CHECK(c == NULL);
            CHECK_EQ_INT(pm_family_series_count(f), count0);
        }
    }
    CHECK(((pm_registry *)r)->nchunks >= 2);
    CHECK(fails > 2 * PM_CHUNK_SLOTS + 10);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    const pm_snap_family_t *sf = find_family(s, "c");
    CHECK_EQ_INT(pm_snap_family_series_count(sf), 2 * PM_CHUNK_SLOTS + 10);
    double n = 2 * PM_CHUNK_SLOTS + 10;
    CHECK_EQ_DBL(family_sum(sf), n * (n - 1) / 2);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

static double cb_seven(void *u)
{
    (void)u;
    return 7;
}

static pm_status_t count_collect(pm_emit_t *e, void *user)
{
    (*(int *)user)++;
    pm_status_t st = pm_emit_family(e, PM_TYPE_GAUGE, "emitted", "", NULL, NULL, 0);
    return st == PM_OK ? pm_emit_sample(e, NULL, 0, 1) : st;
}

/* A failed snapshot changes nothing: no TTL removal, no recorded value, not
 * counted as a snapshot, and a collector that ran for it is not counted as
 * having run. 150 families with long names make the library's own metrics,
 * built after the collectors ran, need arena chunks of their own. */
#define SNAP_FAMS 150

static pm_registry_t *snapshot_registry(pm_family_t **ttl, pm_counter_t **ev, int *calls)
{
    static const char *const labels[] = {"id"};
    pm_registry_t *r = new_oom_registry();
    if (!r) return NULL;
    pm_family_opts_t *o = NULL;
    if (pm_family_opts_new(&o) != PM_OK) return r;
    CHECK_OK(pm_family_opts_set_labels(o, labels, 1));
    CHECK_OK(pm_family_opts_set_ttl(o, 1e-9));
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "ttl", "", o, ttl));
    pm_family_opts_free(o);
    for (int i = 0; i < 4; i++) {
        char id[8];
        snprintf(id, sizeof id, "%d", i);
        const char *v[1] = {id};
        pm_counter_t *c;
        CHECK_OK(pm_counter_get(*ttl, v, 1, &c));
    }
    CHECK_OK(pm_counter_new(r, "ev", "", ev));
    pm_counter_add(*ev, 3);
    for (int i = 0; i < SNAP_FAMS; i++) {
        char name[160];
        snprintf(name, sizeof name, "g_%0120d", i);
        pm_gauge_t *g;
        CHECK_OK(pm_gauge_new(r, name, "", &g));
    }
    CHECK_OK(pm_gauge_callback_new(r, "cb", "", cb_seven, NULL));
    CHECK_OK(pm_collector_add(r, "col", count_collect, calls, NULL, NULL));
    return r;
}

static void snapshot_failures(int persistent, int *runs_wrong)
{
    long blocks0 = oom_blocks();
    long n;
    for (n = 1; n < 200; n++) {
        pm_family_t *ttl = NULL;
        pm_counter_t *ev = NULL;
        int calls = 0;
        pm_registry_t *r = snapshot_registry(&ttl, &ev, &calls);
        REQUIRE(r != NULL && ttl != NULL);
        pm_snapshot_t *s = SENTINEL;
        oom_arm(n, persistent);
        pm_status_t st = pm_snapshot_new(r, &s);
        long injected = oom_injected();
        oom_disarm();
        if (!injected) {
            CHECK_OK(st);
            CHECK_EQ_INT(pm_family_series_count(ttl), 0);
            pm_snapshot_release(s);
            pm_registry_free(r);
            break;
        }
        if (st == PM_OK) { /* absorbed by the collector's emit: counted as its failure */
            CHECK(find_family(s, "emitted") == NULL);
            CHECK_EQ_DBL(value_of(s, "perfmetrics_collector_failures", "col"), 1);
            pm_snapshot_release(s);
            pm_registry_free(r);
            continue;
        }
        CHECK_STATUS(st, PM_ENOMEM);
        CHECK(s == NULL);
        CHECK_EQ_INT(pm_family_series_count(ttl), 4); /* no TTL removal */
        CHECK_EQ_DBL(pm_counter_value(ev), 3);
        CHECK_EQ_INT(((pm_registry *)r)->snapshots, 0);
        /* The next snapshot is the first one. */
        CHECK_OK(pm_snapshot_new(r, &s));
        CHECK_EQ_DBL(value_of(s, "perfmetrics_snapshots", NULL), 1);
        CHECK_EQ_DBL(value_of(s, "ev", NULL), 3);
        CHECK_EQ_INT(pm_snap_family_series_count(find_family(s, "ttl")), 4);
        double runs = value_of(s, "perfmetrics_collector_runs", "col");
        if (runs != 1) {
            th_failures++;
            if ((*runs_wrong)++ < 2)
                fprintf(stderr,
                        "  %s:%d: %s N=%ld: after a failed pm_snapshot_new the next snapshot "
                        "shows perfmetrics_collector_runs{collector=\"col\"} = %g, want 1 (the "
                        "failed snapshot's collector run was counted)\n",
                        __FILE__, __LINE__, persistent ? "persistent" : "one-shot", n, runs);
        }
        pm_snapshot_release(s);
        CHECK_EQ_INT(pm_family_series_count(ttl), 0);
        pm_registry_free(r);
        CHECK_EQ_INT(oom_blocks(), blocks0);
    }
    CHECK(n > 3);
    CHECK_EQ_INT(oom_blocks(), blocks0);
}

TEST(test_snapshot_failure_changes_nothing)
{
    pin_stripe(0);
    int runs_wrong = 0;
    snapshot_failures(0, &runs_wrong);
    snapshot_failures(1, &runs_wrong);
    if (runs_wrong)
        fprintf(stderr, "  %d failed snapshots had their collector run counted\n", runs_wrong);
}

/* pm_counter_new / pm_gauge_new / pm_histogram_new are constructors: when the
 * series cannot be allocated, the family they registered must not stay behind. */
static pm_status_t conv_new(pm_registry_t *r, int kind)
{
    pm_counter_t *c = SENTINEL;
    pm_gauge_t *g = SENTINEL;
    pm_histogram_t *h = SENTINEL;
    pm_status_t st = kind == 0   ? pm_counter_new(r, "conv", "", &c)
                     : kind == 1 ? pm_gauge_new(r, "conv", "", &g)
                                 : pm_histogram_new(r, "conv_seconds", "", &h);
    const void *out = kind == 0 ? (const void *)c : kind == 1 ? (const void *)g : (const void *)h;
    if (st != PM_OK && out != NULL) return PM_EIO; /* *out not cleared */
    return st;
}

TEST(test_convenience_new_failure_leaves_no_family)
{
    pin_stripe(0);
    long blocks0 = oom_blocks();
    for (int kind = 0; kind < 3; kind++) {
        long n;
        for (n = 1; n < 100; n++) {
            pm_registry_t *r = new_oom_registry();
            REQUIRE(r != NULL);
            size_t nfam0 = ((pm_registry *)r)->nfam;
            oom_arm(n, 0);
            pm_status_t st = conv_new(r, kind);
            long injected = oom_injected();
            oom_disarm();
            if (!injected) {
                CHECK_OK(st);
                pm_registry_free(r);
                break;
            }
            CHECK_STATUS(st, PM_ENOMEM);
            size_t nfam1 = ((pm_registry *)r)->nfam;
            if (nfam1 != nfam0)
                TH_FAIL_("kind %d (0 counter, 1 gauge, 2 histogram), N=%ld: the failed "
                         "constructor left its family registered (%zu -> %zu families)",
                         kind, n, nfam0, nfam1);
            CHECK_OK(conv_new(r, kind)); /* retry works either way */
            pm_registry_free(r);
            CHECK_EQ_INT(oom_blocks(), blocks0);
        }
    }
}

/* A cardinality-capped family: a get that fails to allocate the overflow
 * series must not count a refused tuple (the call failed, nothing was refused
 * into overflow). */
TEST(test_overflow_failure_not_counted)
{
    pin_stripe(0);
    static const char *const labels[] = {"k"};
    long n;
    for (n = 1; n < 20; n++) {
        pm_registry_t *r = new_oom_registry();
        REQUIRE(r != NULL);
        pm_family_opts_t *o = NULL;
        REQUIRE(pm_family_opts_new(&o) == PM_OK);
        CHECK_OK(pm_family_opts_set_labels(o, labels, 1));
        CHECK_OK(pm_family_opts_set_max_series(o, 1));
        pm_family_t *f = NULL;
        CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "capped", "", o, &f));
        pm_family_opts_free(o);
        const char *a[1] = {"a"}, *b[1] = {"b"};
        pm_counter_t *c = NULL;
        CHECK_OK(pm_counter_get(f, a, 1, &c));
        oom_arm(n, 0);
        pm_status_t st = pm_counter_get(f, b, 1, &c);
        long injected = oom_injected();
        oom_disarm();
        if (!injected) {
            CHECK_OK(st);
            pm_registry_free(r);
            break;
        }
        CHECK_STATUS(st, PM_ENOMEM);
        CHECK_EQ_INT(pm_family_series_count(f), 1);
        pm_snapshot_t *s = NULL;
        CHECK_OK(pm_snapshot_new(r, &s));
        CHECK_EQ_DBL(value_of(s, "perfmetrics_series_refused", "capped"), 0);
        pm_snapshot_release(s);
        pm_registry_free(r);
    }
    CHECK(n > 1);
}

/* The one-call labeled forms create the series and record in one go: a
 * failure records nothing and creates nothing; the retry records once. */
static pm_status_t labeled_call(pm_family_t *f, int kind, const char *const *v)
{
    switch (kind) {
    case 0:
        return pm_counter_add_labeled(f, v, 2, 5);
    case 1:
        return pm_gauge_set_labeled(f, v, 2, 5);
    default:
        return pm_histogram_observe_labeled(f, v, 2, 5);
    }
}

TEST(test_labeled_one_call_failure_records_nothing)
{
    pin_stripe(0);
    static const char *const labels[] = {"a", "b"};
    static const pm_type_t types[] = {PM_TYPE_COUNTER, PM_TYPE_GAUGE, PM_TYPE_HISTOGRAM};
    long blocks0 = oom_blocks();
    for (int kind = 0; kind < 3; kind++) {
        long n, failures = 0;
        for (n = 1; n < 50; n++) {
            pm_registry_t *r = new_oom_registry();
            REQUIRE(r != NULL);
            pm_family_opts_t *o = NULL;
            REQUIRE(pm_family_opts_new(&o) == PM_OK);
            CHECK_OK(pm_family_opts_set_labels(o, labels, 2));
            pm_family_t *f = NULL;
            CHECK_OK(pm_family_new(r, types[kind], "one_call", "", o, &f));
            pm_family_opts_free(o);
            const char *v[2] = {"x", "y"};
            oom_arm(n, n % 2);
            pm_status_t st = labeled_call(f, kind, v);
            long injected = oom_injected();
            oom_disarm();
            if (injected) {
                failures++;
                CHECK_STATUS(st, PM_ENOMEM);
                CHECK_EQ_INT(pm_family_series_count(f), 0);
                CHECK_OK(labeled_call(f, kind, v));
            } else {
                CHECK_OK(st);
            }
            CHECK_EQ_INT(pm_family_series_count(f), 1);
            pm_snapshot_t *s = NULL;
            CHECK_OK(pm_snapshot_new(r, &s));
            const pm_snap_series_t *se = find_series(find_family(s, "one_call"), "x");
            CHECK_EQ_DBL(pm_snap_series_value(se), 5); /* recorded once (a histogram's sum) */
            if (kind == 2) CHECK_EQ_U64(pm_snap_series_count(se), 1);
            pm_snapshot_release(s);
            pm_registry_free(r);
            CHECK_EQ_INT(oom_blocks(), blocks0);
            if (!injected) break;
        }
        CHECK(failures >= 2); /* the series table and the series, at least */
    }
}

/* The built-in collectors: enabling fails cleanly and can be retried; their
 * output is a collector's, so allocation failures while it runs are counted
 * as its failures (or fail the snapshot), never a crash or a leak. */
TEST(test_builtin_collectors_under_oom)
{
    pin_stripe(0);
    long blocks0 = oom_blocks();
    for (int which = 0; which < 2; which++) {
        const char *prefix = which ? "system_" : "process_";
        long n;
        for (n = 1; n < 20; n++) {
            pm_registry_t *r = new_oom_registry();
            REQUIRE(r != NULL);
            oom_arm(n, 0);
            pm_status_t st = which ? pm_system_collector_enable(r) : pm_process_collector_enable(r);
            long injected = oom_injected();
            oom_disarm();
            if (st == PM_EUNSUPPORTED) {
                pm_registry_free(r);
                printf("  info: no /proc: skipped\n");
                return;
            }
            if (injected) {
                CHECK_STATUS(st, PM_ENOMEM);
                CHECK_OK(which ? pm_system_collector_enable(r) : pm_process_collector_enable(r));
            } else {
                CHECK_OK(st);
            }
            CHECK_OK(which ? pm_system_collector_enable(r) : pm_process_collector_enable(r));
            pm_snapshot_t *s = NULL;
            CHECK_OK(pm_snapshot_new(r, &s));
            CHECK(count_prefixed(s, prefix) >= 3);
            pm_snapshot_release(s);
            pm_registry_free(r);
            CHECK_EQ_INT(oom_blocks(), blocks0);
            if (!injected) break;
        }
        CHECK(n >= 2);
        /* Snapshots of a registry with the collector, failing at every allocation. */
        for (n = 1; n < 100; n++) {
            pm_registry_t *r = new_oom_registry();
            REQUIRE(r != NULL);
            CHECK_OK(which ? pm_system_collector_enable(r) : pm_process_collector_enable(r));
            pm_snapshot_t *s = SENTINEL;
            oom_arm(n, n % 2);
            pm_status_t st = pm_snapshot_new(r, &s);
            long injected = oom_injected();
            oom_disarm();
            if (st == PM_OK) {
                /* Either nothing failed, or the collector's run did and was counted. */
                double fails =
                    value_of(s, "perfmetrics_collector_failures", which ? "system" : "process");
                CHECK(injected ? fails == 1 : fails == 0);
                if (injected)
                    CHECK_EQ_INT(count_prefixed(s, prefix), 0); /* the run's output is dropped */
                else
                    CHECK(count_prefixed(s, prefix) >= 3);
                pm_snapshot_release(s);
            } else {
                CHECK_STATUS(st, PM_ENOMEM);
                CHECK(s == NULL);
            }
            pm_registry_free(r);
            CHECK_EQ_INT(oom_blocks(), blocks0);
            if (!injected) break;
        }
        CHECK(n > 3);
    }
}

static pm_status_t count_export(const pm_snapshot_t *s, void *user)
{
    (void)s;
    (*(int *)user)++;
    return PM_OK;
}

/* pm_export_tick runs "if at least one interval has passed since the last
 * run": an export that failed for want of memory was not a run, so the next
 * tick must try again rather than wait a whole interval. */
TEST(test_export_tick_failure_is_retried)
{
    pin_stripe(0);
    pm_registry_t *r = new_oom_registry();
    REQUIRE(r != NULL);
    int runs = 0;
    CHECK_OK(pm_exporter_add(r, "e", count_export, &runs, NULL, NULL));
    CHECK_OK(pm_export_set_interval(r, 10));
    const uint64_t t0 = 1000000000ull, iv = 10000000000ull;
    int ran = -1;
    CHECK_OK(pm_export_tick(r, t0, &ran));
    CHECK_EQ_INT(ran, 1);
    CHECK_EQ_INT(runs, 1);
    oom_arm(1, 1);
    CHECK_STATUS(pm_export_tick(r, t0 + iv, &ran), PM_ENOMEM);
    oom_disarm();
    CHECK_EQ_INT(ran, 0);
    CHECK_EQ_INT(runs, 1);
    CHECK_OK(pm_export_tick(r, t0 + iv + 1, &ran));
    CHECK_EQ_INT(ran, 1);
    CHECK_EQ_INT(runs, 2);
    /* And the schedule then follows the successful run. */
    CHECK_OK(pm_export_tick(r, t0 + iv + 2, &ran));
    CHECK_EQ_INT(ran, 0);
    pm_registry_free(r);
}

/* Everything the registry allocates goes through the hooks with the user
 * pointer given, and comes back through them. */
TEST(test_allocator_accounting)
{
    pin_stripe(0);
    long blocks0 = oom_blocks();
    size_t bytes0 = g_oom.bytes;
    oom_reset();
    pm_registry_t *r = new_oom_registry();
    REQUIRE(r != NULL);
    CHECK(oom_calls() >= 2);
    pm_counter_t *c = NULL;
    CHECK_OK(pm_counter_new(r, "x", "", &c));
    pm_counter_inc(c);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(r, "y_seconds", "", &h));
    pm_histogram_observe(h, 0.5);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    long with_snap = oom_blocks();
    CHECK(with_snap > blocks0);
    pm_registry_free(r);
    long snap_only = oom_blocks() - blocks0;
    CHECK(snap_only > 0 && snap_only < with_snap - blocks0);
    CHECK_EQ_DBL(value_of(s, "x", NULL), 1);
    pm_snapshot_release(s);
    CHECK_EQ_INT(oom_blocks(), blocks0);
    CHECK_EQ_INT(g_oom.bytes, bytes0);
    CHECK_EQ_INT(g_oom.bad_frees, 0);
    CHECK_EQ_INT(g_oom.bad_user, 0);
    /* Bad allocator arguments. */
    pm_registry_opts_t *o = NULL;
    REQUIRE(pm_registry_opts_new(&o) == PM_OK);
    CHECK_STATUS(pm_registry_opts_set_allocator(o, oom_alloc, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_registry_opts_set_allocator(o, NULL, oom_free, NULL), PM_EINVAL);
    CHECK_STATUS(pm_registry_opts_set_allocator(NULL, oom_alloc, oom_free, NULL), PM_EINVAL);
    CHECK_OK(pm_registry_opts_set_allocator(o, NULL, NULL, NULL)); /* back to malloc */
    pm_registry_opts_free(o);
}

TEST_MAIN(TH_CASE(test_oom_loop_once), TH_CASE(test_oom_loop_persistent),
          TH_CASE(test_registry_new_oom_leaves_nothing),
          TH_CASE(test_family_new_failure_leaves_no_family),
          TH_CASE(test_counter_get_failure_keeps_series_count),
          TH_CASE(test_snapshot_failure_changes_nothing),
          TH_CASE(test_convenience_new_failure_leaves_no_family),
          TH_CASE(test_overflow_failure_not_counted), TH_CASE(test_export_tick_failure_is_retried),
          TH_CASE(test_labeled_one_call_failure_records_nothing),
          TH_CASE(test_builtin_collectors_under_oom), TH_CASE(test_allocator_accounting))
