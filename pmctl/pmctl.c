/* pmctl — questions asked of a libperfmetrics history store (doc/pmctl.md).
 *
 *   pmctl summary --store DIR [range] [--label k=v]... [--format text|json]
 *   pmctl export  --store DIR [range] [--label k=v]... --format csv|json|prom
 *   pmctl trends  --store DIR [range] [--period DURATION] [--format text|json]
 *     (per task type: tasks per hour, success and mean duration per interval,
 *     the current period against the previous one, with the statistics)
 *   pmctl report  --store DIR [range] [--format html] [--output FILE]
 *     (one self-contained HTML file: the summary's tables and SVG charts over
 *     time; no script, no external resource)
 *   pmctl bottlenecks --store DIR [range] [--format text|json]
 *     (operations by self time from span records, agents with low success,
 *     slow task types, queue and saturation, each with a recommendation)
 *   pmctl top --url http://HOST:PORT [--interval 2s] [--count N | --once]
 *     (a live view of a running process's /metrics: per task type, tasks per
 *     second, success and quantiles over the last interval, and its queue
 *     and busy gauges; --once prints one frame from two scrapes)
 *   pmctl diff BASELINE CURRENT [--max-regression PCT] [--format text|json]
 *     (a latency quantile regresses when it grows by more than PCT percent of
 *     the baseline's, the success rate when it falls by more than PCT points)
 *
 * range: --since DURATION (30m, 12h, 7d) | --days N | --start T --end T
 * (T: Unix seconds or YYYY-MM-DD[THH:MM:SS]Z, UTC).
 *
 * What is asked of a window is its increase: counters and histograms are
 * cumulative, so a window's tasks are the last snapshot's count less the
 * first's, and its latency quantiles come from the difference of the two
 * snapshots' fine buckets (the 1/129 bound holds for the window too).
 * Names follow the orchestrator demo's (examples/orchestrator.c) and can be
 * changed: --tasks FAMILY [tasks], --duration FAMILY [task_duration_seconds],
 * --type-label [task_type], --agent-label [agent], --status-label [status],
 * --ok VALUE [ok]. Token and cost counters are the families whose name
 * contains "tokens" or "cost".
 *
 * Exit status: 0; 1 for a regression found by diff; 2 for a usage error or
 * an unreadable store. Progress goes to stderr on reads over 64 MiB
 * (PMCTL_PROGRESS_BYTES: another threshold). */
#include <perfmetrics/perfmetrics.h>

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_FILTERS 16

typedef struct {
    const char *store;
    double start, end;
    const char *fk[MAX_FILTERS], *fv[MAX_FILTERS]; /* fk: "k=v" from argv, the key before '=' */
    size_t fkl[MAX_FILTERS], nf;
    const char *format;
    const char *tasks, *duration, *type_label, *agent_label, *status_label, *ok;
    double max_regression; /* percent */
    double period;         /* trends: seconds, 0 = half the window */
    const char *output;    /* report: file, NULL = stdout */
    const char *url;       /* top: the endpoint */
    double interval;       /* top: seconds between frames */
    int count, once;       /* top: frames to print (0: until interrupted) */
} opts;

static void die(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pmctl: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(code);
}

/* ------------------------------------------------------------ arguments */

static double parse_duration(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    double unit = !strcmp(end, "s") || !*end ? 1
                  : !strcmp(end, "m")        ? 60
                  : !strcmp(end, "h")        ? 3600
                  : !strcmp(end, "d")        ? 86400
                  : !strcmp(end, "w")        ? 7 * 86400
                                             : NAN;
    if (end == s || !(v >= 0) || unit != unit) die(2, "bad duration '%s' (e.g. 30m, 12h, 7d)", s);
    return v * unit;
}

static double parse_time(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (end != s && !*end) return v;
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%d", &tm);
    if (rest && *rest == 'T') rest = strptime(rest + 1, "%H:%M:%S", &tm);
    if (!rest || (*rest && strcmp(rest, "Z"))) die(2, "bad time '%s' (Unix seconds or YYYY-MM-DD[THH:MM:SSZ])", s);
    return (double)timegm(&tm);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int parse_opts(int argc, char **argv, int first, opts *o, const char **pos, int npos)
{
    int got = 0;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
#define VAL() (i + 1 < argc ? argv[++i] : (die(2, "%s needs a value", a), ""))
        if (!strcmp(a, "--store")) o->store = VAL();
        else if (!strcmp(a, "--since")) o->start = now_s() - parse_duration(VAL());
        else if (!strcmp(a, "--days")) o->start = now_s() - 86400 * atof(VAL());
        else if (!strcmp(a, "--start")) o->start = parse_time(VAL());
        else if (!strcmp(a, "--end")) o->end = parse_time(VAL());
        else if (!strcmp(a, "--format")) o->format = VAL();
        else if (!strcmp(a, "--tasks")) o->tasks = VAL();
        else if (!strcmp(a, "--duration")) o->duration = VAL();
        else if (!strcmp(a, "--type-label")) o->type_label = VAL();
        else if (!strcmp(a, "--agent-label")) o->agent_label = VAL();
        else if (!strcmp(a, "--status-label")) o->status_label = VAL();
        else if (!strcmp(a, "--ok")) o->ok = VAL();
        else if (!strcmp(a, "--max-regression")) o->max_regression = atof(VAL());
        else if (!strcmp(a, "--period")) o->period = parse_duration(VAL());
        else if (!strcmp(a, "--output") || !strcmp(a, "-o")) o->output = VAL();
        else if (!strcmp(a, "--url")) o->url = VAL();
        else if (!strcmp(a, "--interval")) o->interval = parse_duration(VAL());
        else if (!strcmp(a, "--count")) o->count = atoi(VAL());
        else if (!strcmp(a, "--once")) o->once = 1;
        else if (!strcmp(a, "--label")) {
            const char *kv = VAL(), *eq = strchr(kv, '=');
            if (!eq || eq == kv || o->nf == MAX_FILTERS) die(2, "bad --label '%s' (k=v)", kv);
            o->fk[o->nf] = kv;
            o->fkl[o->nf] = (size_t)(eq - kv);
            o->fv[o->nf++] = eq + 1;
        } else if (a[0] == '-' && a[1] == '-') {
            die(2, "unknown option %s (pmctl --help)", a);
        } else if (got < npos) {
            pos[got++] = a;
        } else {
            die(2, "unexpected argument '%s'", a);
        }
#undef VAL
    }
    if (o->start > o->end) die(2, "the range starts after it ends");
    return got;
}

/* ------------------------------------------------------------ reading a window */

typedef struct {
    pm_snapshot_t *first, *last;
    size_t n;
} window;

/* A reader of store over [start, end]; exits with a message when the store
 * cannot be opened. */
static pm_history_reader_t *reader(const char *store, double start, double end)
{
    pm_history_reader_t *rd = NULL;
    pm_status_t st = pm_history_reader_open(store, &rd);
    if (st != PM_OK) die(2, "%s: %s", store, st == PM_ENOENT ? "no history store here" : pm_strerror(st));
    pm_history_reader_set_range(rd, start, end);
    return rd;
}

static window read_window(const char *store, double start, double end)
{
    pm_history_reader_t *rd = reader(store, start, end);
    pm_status_t st;
    window w = {NULL, NULL, 0};
    uint64_t total = 0, done = 0, shown = 0;
    pm_history_reader_progress(rd, NULL, &total);
    /* Progress from 64 MiB on; PMCTL_PROGRESS_BYTES moves the threshold
     * (the tests set it low, rather than write 64 MiB). */
    const char *pb = getenv("PMCTL_PROGRESS_BYTES");
    uint64_t from = pb && *pb ? strtoull(pb, NULL, 10) : (uint64_t)64 << 20;
    pm_snapshot_t *s;
    while ((st = pm_history_reader_next(rd, &s)) == PM_OK) {
        if (!w.first) w.first = pm_snapshot_ref(s);
        if (w.last) pm_snapshot_release(w.last);
        w.last = s;
        w.n++;
        pm_history_reader_progress(rd, &done, NULL);
        if (total > from && done - shown > total / 20) {
            fprintf(stderr, "pmctl: read %llu%%\r", (unsigned long long)(100 * done / total));
            shown = done;
        }
    }
    if (shown) fputc('\n', stderr);
    if (st != PM_ENOENT) die(2, "%s: %s", store, pm_strerror(st));
    if (pm_history_reader_skipped(rd))
        fprintf(stderr, "pmctl: %llu damaged records skipped\n",
                (unsigned long long)pm_history_reader_skipped(rd));
    pm_history_reader_close(rd);
    return w;
}

static const pm_snap_family_t *family(const pm_snapshot_t *s, const char *name)
{
    for (size_t i = 0; s && i < pm_snapshot_family_count(s); i++)
        if (!strcmp(pm_snap_family_name(pm_snapshot_family(s, i)), name))
            return pm_snapshot_family(s, i);
    return NULL;
}

/* The value of label `name` (its first n bytes) of series x of f, or NULL. */
static const char *label_n(const pm_snap_family_t *f, const pm_snap_series_t *x, const char *name,
                           size_t n)
{
    for (size_t k = 0; k < pm_snap_family_label_count(f); k++) {
        const char *l = pm_snap_family_label_name(f, k);
        if (!strncmp(l, name, n) && !l[n]) return pm_snap_series_label_value(x, k);
    }
    return NULL;
}

static const char *label(const pm_snap_family_t *f, const pm_snap_series_t *x, const char *name)
{
    return label_n(f, x, name, strlen(name));
}

static int passes(const opts *o, const pm_snap_family_t *f, const pm_snap_series_t *x)
{
    for (size_t i = 0; i < o->nf; i++) {
        const char *v = label_n(f, x, o->fk[i], o->fkl[i]);
        if (v && strcmp(v, o->fv[i])) return 0; /* families without the label are not filtered */
    }
    return 1;
}

/* The same series (same label values) in another snapshot's family. */
static const pm_snap_series_t *same_series(const pm_snap_family_t *f, const pm_snap_family_t *g,
                                           const pm_snap_series_t *x)
{
    if (!g || pm_snap_family_label_count(g) != pm_snap_family_label_count(f)) return NULL;
    for (size_t j = 0; j < pm_snap_family_series_count(g); j++) {
        const pm_snap_series_t *y = pm_snap_family_series(g, j);
        size_t k = 0;
        while (k < pm_snap_family_label_count(f) &&
               !strcmp(pm_snap_series_label_value(x, k), pm_snap_series_label_value(y, k)))
            k++;
        if (k == pm_snap_family_label_count(f)) return y;
    }
    return NULL;
}

/* ------------------------------------------------------------ histogram windows */

/* A histogram's fine buckets as pm_hdata_encode writes them (doc/histograms.md). */
typedef struct {
    double lowest, highest, min, max;
    uint32_t n, *idx;
    uint64_t *cnt;
} fine;

static uint64_t rd64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static double rdf(const unsigned char *p)
{
    uint64_t u = rd64(p);
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}

static int fine_of(const pm_hdata_t *h, fine *f)
{
    memset(f, 0, sizeof *f);
    unsigned char *b = NULL;
    size_t len = 0;
    if (!h || pm_hdata_encode(h, &b, &len) != PM_OK) return 0;
    f->lowest = rdf(b + 4);
    f->highest = rdf(b + 12);
    f->min = rdf(b + 36);
    f->max = rdf(b + 44);
    f->n = (uint32_t)(b[52] | b[53] << 8 | b[54] << 16 | (uint32_t)b[55] << 24);
    f->idx = calloc(f->n + 1, sizeof *f->idx);
    f->cnt = calloc(f->n + 1, sizeof *f->cnt);
    for (uint32_t i = 0; i < f->n; i++) {
        const unsigned char *p = b + 56 + 12 * (size_t)i;
        f->idx[i] = (uint32_t)(p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24);
        f->cnt[i] = rd64(p + 4);
    }
    pm_free(b);
    return 1;
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void putf(unsigned char *p, double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    put64(p, u);
}

/* The histogram of what was recorded between `a` (NULL: nothing) and `b`:
 * b's fine buckets less a's. NULL when there is none. */
static pm_hdata_t *window_hist(const pm_snap_series_t *a, const pm_snap_series_t *b)
{
    fine fb, fa;
    if (!fine_of(pm_snap_series_hdata(b), &fb)) return NULL;
    int have_a = a && fine_of(pm_snap_series_hdata(a), &fa) && fa.lowest == fb.lowest &&
                 fa.highest == fb.highest;
    size_t len = 56 + 12 * (size_t)fb.n;
    unsigned char *e = calloc(1, len);
    uint32_t n = 0, j = 0;
    uint64_t count = 0;
    unsigned char *p = e + 56;
    for (uint32_t i = 0; i < fb.n; i++) {
        uint64_t c = fb.cnt[i];
        if (have_a) {
            while (j < fa.n && fa.idx[j] < fb.idx[i]) j++;
            if (j < fa.n && fa.idx[j] == fb.idx[i]) c = c >= fa.cnt[j] ? c - fa.cnt[j] : 0;
        }
        if (!c) continue;
        p[0] = (unsigned char)fb.idx[i];
        p[1] = (unsigned char)(fb.idx[i] >> 8);
        p[2] = (unsigned char)(fb.idx[i] >> 16);
        p[3] = (unsigned char)(fb.idx[i] >> 24);
        put64(p + 4, c);
        p += 12;
        n++;
        count += c;
    }
    double sum = pm_snap_series_sum(b) - (have_a ? pm_snap_series_sum(a) : 0);
    memcpy(e, "PMH1", 4);
    putf(e + 4, fb.lowest);
    putf(e + 12, fb.highest);
    put64(e + 20, count);
    putf(e + 28, sum);
    putf(e + 36, count ? fb.min : INFINITY); /* the window's extremes lie within the whole's */
    putf(e + 44, count ? fb.max : -INFINITY);
    e[52] = (unsigned char)n;
    e[53] = (unsigned char)(n >> 8);
    e[54] = (unsigned char)(n >> 16);
    e[55] = (unsigned char)(n >> 24);
    pm_hdata_t *h = NULL;
    if (count && pm_hdata_decode(e, 56 + 12 * (size_t)n, &h) != PM_OK) h = NULL;
    free(e);
    free(fb.idx);
    free(fb.cnt);
    if (have_a) {
        free(fa.idx);
        free(fa.cnt);
    }
    return h;
}

static double q_of(const pm_hdata_t *h, double q)
{
    double v = NAN;
    if (h) pm_hdata_quantile(h, q, &v);
    return v;
}

/* ------------------------------------------------------------ summary */

typedef struct {
    char *key;
    double total, ok;
    pm_hdata_t *lat;
} group;

typedef struct {
    group *g;
    size_t n;
} groups;

/* The element with `key` of an array *v of n elements of `size` bytes whose
 * first member is their `char *key`, appended (zeroed, key copied) when
 * missing. Groups and tracks are both kept this way. */
static void *keyed(void *v, size_t *n, size_t size, const char *key)
{
    char **arr = v;
    for (size_t i = 0; i < *n; i++) {
        char *k;
        memcpy(&k, *arr + i * size, sizeof k);
        if (!strcmp(k, key)) return *arr + i * size;
    }
    char *grown = realloc(*arr, (*n + 1) * size);
    char *k = strdup(key);
    if (!grown || !k) die(2, "out of memory");
    *arr = grown;
    char *e = grown + (*n)++ * size;
    memset(e, 0, size);
    memcpy(e, &k, sizeof k);
    return e;
}

static group *group_get(groups *gs, const char *key)
{
    return keyed(&gs->g, &gs->n, sizeof *gs->g, key);
}

static int by_key(const void *a, const void *b)
{
    return strcmp(((const group *)a)->key, ((const group *)b)->key);
}

/* Task counts by a label (type or agent): the window's increase. */
static void count_tasks(const opts *o, const window *w, const char *by, groups *gs, double *all,
                        double *ok)
{
    const pm_snap_family_t *f = family(w->last, o->tasks), *f0 = family(w->first, o->tasks);
    for (size_t j = 0; f && j < pm_snap_family_series_count(f); j++) {
        const pm_snap_series_t *x = pm_snap_family_series(f, j);
        if (!passes(o, f, x)) continue;
        const pm_snap_series_t *x0 = w->n > 1 ? same_series(f, f0, x) : NULL;
        double d = pm_snap_series_value(x) - (x0 ? pm_snap_series_value(x0) : 0);
        if (d < 0) d = pm_snap_series_value(x); /* a reset: the process restarted */
        const char *k = label(f, x, by), *st = label(f, x, o->status_label);
        group *g = group_get(gs, k ? k : "-");
        g->total += d;
        int good = st && !strcmp(st, o->ok);
        if (good) g->ok += d;
        if (all) *all += d;
        if (ok && good) *ok += d;
    }
}

static void latency_by(const opts *o, const window *w, const char *by, groups *gs)
{
    const pm_snap_family_t *f = family(w->last, o->duration), *f0 = family(w->first, o->duration);
    for (size_t j = 0; f && j < pm_snap_family_series_count(f); j++) {
        const pm_snap_series_t *x = pm_snap_family_series(f, j);
        if (!passes(o, f, x)) continue;
        const char *k = label(f, x, by);
        if (!k) continue;
        pm_hdata_t *h = window_hist(w->n > 1 ? same_series(f, f0, x) : NULL, x);
        if (!h) continue;
        group *g = group_get(gs, k);
        if (!g->lat) {
            g->lat = h;
        } else {
            pm_hdata_merge(g->lat, h);
            pm_hdata_free(h);
        }
    }
}

static double counter_increase(const opts *o, const window *w, const char *needle)
{
    double v = 0;
    for (size_t i = 0; i < pm_snapshot_family_count(w->last); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(w->last, i);
        if (pm_snap_family_type(f) != PM_TYPE_COUNTER || !strstr(pm_snap_family_name(f), needle))
            continue;
        const pm_snap_family_t *f0 = family(w->first, pm_snap_family_name(f));
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
            const pm_snap_series_t *x = pm_snap_family_series(f, j);
            if (!passes(o, f, x)) continue;
            const pm_snap_series_t *x0 = w->n > 1 ? same_series(f, f0, x) : NULL;
            double d = pm_snap_series_value(x) - (x0 ? pm_snap_series_value(x0) : 0);
            v += d < 0 ? pm_snap_series_value(x) : d;
        }
    }
    return v;
}

static void iso(double t, char *buf, size_t n)
{
    time_t s = (time_t)t;
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void print_groups(const char *title, groups *gs, int json, int last)
{
    qsort(gs->g, gs->n, sizeof *gs->g, by_key);
    if (json) {
        printf("  \"%s\": [", title);
        for (size_t i = 0; i < gs->n; i++) {
            group *g = &gs->g[i];
            printf("%s\n    {\"name\": \"%s\", \"tasks\": %.17g, \"success_rate\": %.6g, "
                   "\"p50\": %.6g, \"p95\": %.6g, \"p99\": %.6g}",
                   i ? "," : "", g->key, g->total, g->total ? g->ok / g->total : 0,
                   q_of(g->lat, 0.5), q_of(g->lat, 0.95), q_of(g->lat, 0.99));
        }
        printf("\n  ]%s\n", last ? "" : ",");
        return;
    }
    printf("\n%-24s %10s %9s %10s %10s %10s\n", title, "tasks", "success", "p50", "p95", "p99");
    for (size_t i = 0; i < gs->n; i++) {
        group *g = &gs->g[i];
        printf("%-24s %10.0f %8.1f%% %9.3fs %9.3fs %9.3fs\n", g->key, g->total,
               g->total ? 100 * g->ok / g->total : 0, q_of(g->lat, 0.5), q_of(g->lat, 0.95),
               q_of(g->lat, 0.99));
    }
}

static void groups_free(groups *gs)
{
    for (size_t i = 0; i < gs->n; i++) {
        free(gs->g[i].key);
        pm_hdata_free(gs->g[i].lat);
    }
    free(gs->g);
}

static int cmd_summary(opts *o)
{
    if (!o->store) die(2, "summary needs --store DIR");
    window w = read_window(o->store, o->start, o->end);
    if (!w.n) die(2, "%s: no snapshot in the range", o->store);
    int json = o->format && !strcmp(o->format, "json");
    double all = 0, ok = 0;
    groups types = {0}, agents = {0};
    count_tasks(o, &w, o->type_label, &types, &all, &ok);
    count_tasks(o, &w, o->agent_label, &agents, NULL, NULL);
    latency_by(o, &w, o->type_label, &types);
    latency_by(o, &w, o->agent_label, &agents);
    double tokens = counter_increase(o, &w, "tokens"), cost = counter_increase(o, &w, "cost");
    char t0[32], t1[32];
    iso(pm_snapshot_time(w.first), t0, sizeof t0);
    iso(pm_snapshot_time(w.last), t1, sizeof t1);
    if (json) {
        printf("{\n  \"from\": \"%s\", \"to\": \"%s\", \"snapshots\": %zu,\n", t0, t1, w.n);
        printf("  \"tasks\": %.17g, \"success_rate\": %.6g, \"tokens\": %.17g, \"cost\": %.17g,\n",
               all, all ? ok / all : 0, tokens, cost);
        print_groups("by_type", &types, 1, 0);
        print_groups("by_agent", &agents, 1, 1);
        printf("}\n");
    } else {
        printf("window %s .. %s (%zu snapshots)\n", t0, t1, w.n);
        printf("tasks %.0f, success %.1f%%, tokens %.0f, cost %.4f\n", all,
               all ? 100 * ok / all : 0, tokens, cost);
        print_groups(o->type_label, &types, 0, 0);
        print_groups(o->agent_label, &agents, 0, 1);
    }
    groups_free(&types);
    groups_free(&agents);
    pm_snapshot_release(w.first);
    pm_snapshot_release(w.last);
    return 0;
}

/* ------------------------------------------------------------ export */

static void csv_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"') putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void export_csv(const opts *o, const pm_snapshot_t *s, int header)
{
    static const char *const types[] = {"", "counter", "gauge", "histogram"};
    if (header) puts("time,family,type,labels,value,count,sum,p50,p95,p99");
    char t[32];
    iso(pm_snapshot_time(s), t, sizeof t);
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        pm_type_t ty = pm_snap_family_type(f);
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
            const pm_snap_series_t *x = pm_snap_family_series(f, j);
            if (!passes(o, f, x)) continue;
            printf("%s,", t);
            csv_str(pm_snap_family_name(f));
            printf(",%s,", types[ty]);
            size_t need = 1;
            for (size_t k = 0; k < pm_snap_family_label_count(f); k++)
                need += strlen(pm_snap_family_label_name(f, k)) + strlen(pm_snap_series_label_value(x, k)) + 2;
            char *lb = calloc(1, need);
            for (size_t k = 0; k < pm_snap_family_label_count(f); k++) {
                if (k) strcat(lb, ";");
                strcat(lb, pm_snap_family_label_name(f, k));
                strcat(lb, "=");
                strcat(lb, pm_snap_series_label_value(x, k));
            }
            csv_str(lb);
            free(lb);
            if (ty == PM_TYPE_HISTOGRAM) {
                double q[3];
                pm_snap_series_quantile(x, 0.5, &q[0]);
                pm_snap_series_quantile(x, 0.95, &q[1]);
                pm_snap_series_quantile(x, 0.99, &q[2]);
                printf(",,%llu,%.17g,%.17g,%.17g,%.17g\n",
                       (unsigned long long)pm_snap_series_count(x), pm_snap_series_sum(x), q[0], q[1],
                       q[2]);
            } else {
                printf(",%.17g,,,,,\n", pm_snap_series_value(x));
            }
        }
    }
}

static int cmd_export(opts *o)
{
    if (!o->store) die(2, "export needs --store DIR");
    const char *fmt = o->format ? o->format : "csv";
    int csv = !strcmp(fmt, "csv"), json = !strcmp(fmt, "json"), prom = !strcmp(fmt, "prom");
    if (!csv && !json && !prom) die(2, "export --format csv|json|prom");
    pm_history_reader_t *rd = reader(o->store, o->start, o->end);
    pm_status_t st;
    pm_snapshot_t *s, *last = NULL;
    pm_buf_t *b = NULL;
    pm_buf_new(&b);
    size_t n = 0;
    while ((st = pm_history_reader_next(rd, &s)) == PM_OK) {
        if (csv) export_csv(o, s, n == 0);
        if (json) { /* JSON lines: one snapshot per line, as pm_format's JSON */
            pm_buf_reset(b);
            pm_format(s, PM_FORMAT_JSON, b);
            const char *d = pm_buf_data(b);
            for (; *d; d++)
                if (*d != '\n') putchar(*d);
            putchar('\n');
        }
        if (last) pm_snapshot_release(last);
        last = s;
        n++;
    }
    if (prom && last) { /* the newest snapshot of the range, as a scrape would see it */
        pm_buf_reset(b);
        pm_format(last, PM_FORMAT_PROMETHEUS, b);
        fputs(pm_buf_data(b), stdout);
    }
    pm_buf_free(b);
    if (last) pm_snapshot_release(last);
    pm_history_reader_close(rd);
    if (st != PM_ENOENT) die(2, "%s: %s", o->store, pm_strerror(st));
    return 0;
}

/* ------------------------------------------------------------ trends */

/* Per task type, one point per snapshot: cumulative tasks, successes,
 * duration count and sum. */
typedef struct {
    double t, tasks, ok, dcount, dsum;
} point;

typedef struct {
    char *key;
    point *p;
    size_t n, cap;
} track;

typedef struct {
    track *v;
    size_t n;
} tracks;

static track *track_get(tracks *ts, const char *key)
{
    return keyed(&ts->v, &ts->n, sizeof *ts->v, key);
}

/* Adds snapshot s's point to every type's track. */
static void track_snapshot(const opts *o, const pm_snapshot_t *s, tracks *ts)
{
    double tm = pm_snapshot_time(s);
    const pm_snap_family_t *f = family(s, o->tasks), *d = family(s, o->duration);
    for (size_t pass = 0; pass < 2; pass++) {
        const pm_snap_family_t *g = pass ? d : f;
        for (size_t j = 0; g && j < pm_snap_family_series_count(g); j++) {
            const pm_snap_series_t *x = pm_snap_family_series(g, j);
            const char *k = label(g, x, o->type_label);
            if (!k || !passes(o, g, x)) continue;
            track *tr = track_get(ts, k);
            if (!tr->n || tr->p[tr->n - 1].t != tm) {
                if (tr->n == tr->cap) {
                    tr->cap = tr->cap ? 2 * tr->cap : 64;
                    tr->p = realloc(tr->p, tr->cap * sizeof *tr->p);
                }
                tr->p[tr->n++] = (point){tm, 0, 0, 0, 0};
            }
            point *pt = &tr->p[tr->n - 1];
            if (pass) {
                pt->dcount += (double)pm_snap_series_count(x);
                pt->dsum += pm_snap_series_sum(x);
            } else {
                const char *st = label(g, x, o->status_label);
                pt->tasks += pm_snap_series_value(x);
                if (st && !strcmp(st, o->ok)) pt->ok += pm_snap_series_value(x);
            }
        }
    }
}

typedef struct {
    double mean, sd;
    size_t n;
} stats;

static stats stats_of(const double *v, size_t n)
{
    stats s = {NAN, NAN, n};
    if (!n) return s;
    double m = 0, q = 0;
    for (size_t i = 0; i < n; i++) m += v[i];
    m /= (double)n;
    for (size_t i = 0; i < n; i++) q += (v[i] - m) * (v[i] - m);
    s.mean = m;
    s.sd = n > 1 ? sqrt(q / (double)(n - 1)) : 0;
    return s;
}

/* The verdict on one measure from its per-interval values in the previous
 * and the current period: volatile when the current period's coefficient of
 * variation passes 0.5; stable when Welch's t is under 2 or the means differ
 * by under 5%; else improving or degrading by the measure's good direction. */
static const char *verdict(stats a, stats b, int up_is_good, double *t, double *change)
{
    double se = sqrt((a.n ? a.sd * a.sd / (double)a.n : 0) + (b.n ? b.sd * b.sd / (double)b.n : 0));
    *change = a.mean ? 100 * (b.mean - a.mean) / fabs(a.mean) : 0;
    *t = se > 0 ? (b.mean - a.mean) / se : (b.mean == a.mean ? 0 : INFINITY * (b.mean - a.mean));
    if (a.n < 2 || b.n < 2) return "insufficient";
    if (b.mean && b.sd / fabs(b.mean) > 0.5) return "volatile";
    if (fabs(*t) < 2 || fabs(*change) < 5) return "stable";
    return (b.mean > a.mean) == (up_is_good != 0) ? "improving" : "degrading";
}

static int cmd_trends(opts *o)
{
    if (!o->store) die(2, "trends needs --store DIR");
    pm_history_reader_t *rd = reader(o->store, o->start, o->end);
    pm_status_t st;
    tracks ts = {0};
    pm_snapshot_t *s;
    double t0 = NAN, t1 = NAN;
    while ((st = pm_history_reader_next(rd, &s)) == PM_OK) {
        if (t0 != t0) t0 = pm_snapshot_time(s);
        t1 = pm_snapshot_time(s);
        track_snapshot(o, s, &ts);
        pm_snapshot_release(s);
    }
    pm_history_reader_close(rd);
    if (st != PM_ENOENT) die(2, "%s: %s", o->store, pm_strerror(st));
    if (t0 != t0) die(2, "%s: no snapshot in the range", o->store);
    /* The current period is the second half of the snapshots' time span
     * (or the last --period), the previous one the same length before it. */
    double mid = o->period > 0 ? t1 - o->period : (t0 + t1) / 2;
    double lo = o->period > 0 ? mid - o->period : t0;
    int json = o->format && !strcmp(o->format, "json");
    char a[32], b[32], c[32];
    iso(lo, a, sizeof a);
    iso(mid, b, sizeof b);
    iso(t1, c, sizeof c);
    if (json)
        printf("{\"previous\": [\"%s\", \"%s\"], \"current\": [\"%s\", \"%s\"], \"rows\": [", a, b, b, c);
    else
        printf("previous %s .. %s, current %s .. %s\n%-16s %-15s %11s %11s %8s %7s %s\n", a, b, b,
               c, o->type_label, "measure", "previous", "current", "change", "t", "verdict");
    qsort(ts.v, ts.n, sizeof *ts.v, by_key);
    size_t rows = 0;
    for (size_t i = 0; i < ts.n; i++) {
        track *tr = &ts.v[i];
        size_t cap = tr->n ? tr->n : 1;
        double *v[3][2];
        size_t nv[3][2] = {{0}};
        for (int m = 0; m < 3; m++)
            for (int h = 0; h < 2; h++) v[m][h] = malloc(cap * sizeof(double));
        for (size_t k = 1; k < tr->n; k++) {
            const point *p = &tr->p[k - 1], *q = &tr->p[k];
            if (q->t <= lo || q->t - p->t <= 0) continue;
            int h = q->t > mid; /* the interval belongs to the period it ends in */
            double dt = q->t - p->t, dn = q->tasks - p->tasks, dk = q->ok - p->ok;
            double dc = q->dcount - p->dcount, ds = q->dsum - p->dsum;
            if (dn < 0 || dc < 0) continue; /* a restart */
            v[0][h][nv[0][h]++] = 3600 * dn / dt;
            if (dn > 0) v[1][h][nv[1][h]++] = 100 * dk / dn;
            if (dc > 0) v[2][h][nv[2][h]++] = ds / dc;
        }
        static const char *const names[] = {"tasks_per_hour", "success_pct", "mean_seconds"};
        static const int up_good[] = {1, 1, 0};
        for (int m = 0; m < 3; m++) {
            stats sa = stats_of(v[m][0], nv[m][0]), sb = stats_of(v[m][1], nv[m][1]);
            double tt, ch;
            const char *vd = verdict(sa, sb, up_good[m], &tt, &ch);
            /* t is infinite when both periods are constant and differ: JSON null. */
            char tj[32];
            snprintf(tj, sizeof tj, isfinite(tt) ? "%.6g" : "null", tt);
            if (json)
                printf("%s\n  {\"type\": \"%s\", \"measure\": \"%s\", \"previous\": {\"mean\": %.6g, "
                       "\"sd\": %.6g, \"n\": %zu}, \"current\": {\"mean\": %.6g, \"sd\": %.6g, "
                       "\"n\": %zu}, \"change_pct\": %.6g, \"t\": %s, \"verdict\": \"%s\"}",
                       rows++ ? "," : "", tr->key, names[m], sa.mean, sa.sd, sa.n, sb.mean, sb.sd,
                       sb.n, ch, tj, vd);
            else
                printf("%-16s %-15s %11.4g %11.4g %+7.1f%% %7.2f %s\n", tr->key, names[m], sa.mean,
                       sb.mean, ch, tt, vd);
            free(v[m][0]);
            free(v[m][1]);
        }
        free(tr->p);
        free(tr->key);
    }
    free(ts.v);
    if (json) printf("\n]}\n");
    return 0;
}

/* ------------------------------------------------------------ report */

static void html_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

static const char *const palette[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                                      "#ff7f0e", "#17becf", "#8c564b", "#e377c2"};

/* One SVG line chart: per track, measure m over the intervals (0 tasks per
 * hour, 1 success percent, 2 mean seconds). */
static void svg_chart(FILE *f, const char *title, const tracks *ts, int m, double t0, double t1)
{
    const double W = 720, H = 220, L = 56, R = 12, T = 26, B = 28;
    double ymax = 0;
    for (size_t i = 0; i < ts->n; i++)
        for (size_t k = 1; k < ts->v[i].n; k++) {
            const point *p = &ts->v[i].p[k - 1], *q = &ts->v[i].p[k];
            double dt = q->t - p->t, dn = q->tasks - p->tasks, dc = q->dcount - p->dcount;
            double y = m == 0 ? (dt > 0 ? 3600 * dn / dt : 0)
                       : m == 1 ? (dn > 0 ? 100 * (q->ok - p->ok) / dn : 0)
                                : (dc > 0 ? (q->dsum - p->dsum) / dc : 0);
            if (y > ymax) ymax = y;
        }
    if (ymax <= 0) ymax = 1;
    double span = t1 > t0 ? t1 - t0 : 1;
    fprintf(f, "<figure><figcaption>");
    html_text(f, title);
    fprintf(f, "</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
               "role=\"img\" aria-label=\"", W, H);
    html_text(f, title);
    fprintf(f, "\">\n<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" class=\"plot\"/>\n",
            L, T, W - L - R, H - T - B);
    for (int g = 0; g <= 4; g++) {
        double y = T + (H - T - B) * (1 - g / 4.0);
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%.0f\" y=\"%.1f\" class=\"tick\">%.4g</text>\n",
                L, W - R, y, y, L - 4, y + 4, ymax * g / 4);
    }
    char a[32], b[32];
    iso(t0, a, sizeof a);
    iso(t1, b, sizeof b);
    fprintf(f, "<text x=\"%.0f\" y=\"%.0f\" class=\"axis\">%s</text>"
               "<text x=\"%.0f\" y=\"%.0f\" class=\"axis end\">%s</text>\n",
            L, H - 8, a, W - R, H - 8, b);
    for (size_t i = 0; i < ts->n; i++) {
        fprintf(f, "<polyline class=\"series\" stroke=\"%s\" data-series=\"", palette[i % 8]);
        html_text(f, ts->v[i].key);
        fprintf(f, "\" points=\"");
        for (size_t k = 1; k < ts->v[i].n; k++) {
            const point *p = &ts->v[i].p[k - 1], *q = &ts->v[i].p[k];
            double dt = q->t - p->t, dn = q->tasks - p->tasks, dc = q->dcount - p->dcount;
            /* An interval with no task has no success or mean: no point. */
            if (dt <= 0 || dn < 0 || dc < 0 || (m == 1 && dn == 0) || (m == 2 && dc == 0)) continue;
            double y = m == 0 ? 3600 * dn / dt : m == 1 ? 100 * (q->ok - p->ok) / dn
                                               : (q->dsum - p->dsum) / dc;
            fprintf(f, "%.1f,%.1f ", L + (W - L - R) * (q->t - t0) / span,
                    T + (H - T - B) * (1 - y / ymax));
        }
        fprintf(f, "\"/>\n");
    }
    fprintf(f, "</svg>\n<p class=\"legend\">");
    for (size_t i = 0; i < ts->n; i++) {
        fprintf(f, "<span style=\"color:%s\">&#9632;</span> ", palette[i % 8]);
        html_text(f, ts->v[i].key);
        fputs(i + 1 < ts->n ? " &nbsp; " : "", f);
    }
    fprintf(f, "</p></figure>\n");
}

static void html_groups(FILE *f, const char *title, groups *gs)
{
    qsort(gs->g, gs->n, sizeof *gs->g, by_key);
    fprintf(f, "<table><caption>");
    html_text(f, title);
    fprintf(f, "</caption>\n<tr><th>%s</th><th>tasks</th><th>success</th><th>p50 (s)</th>"
               "<th>p95 (s)</th><th>p99 (s)</th></tr>\n", "name");
    for (size_t i = 0; i < gs->n; i++) {
        group *g = &gs->g[i];
        fprintf(f, "<tr><td>");
        html_text(f, g->key);
        fprintf(f, "</td><td>%.0f</td><td>%.1f%%</td><td>%.3f</td><td>%.3f</td><td>%.3f</td></tr>\n",
                g->total, g->total ? 100 * g->ok / g->total : 0, q_of(g->lat, 0.5),
                q_of(g->lat, 0.95), q_of(g->lat, 0.99));
    }
    fprintf(f, "</table>\n");
}

static int cmd_report(opts *o, const char *outpath)
{
    if (!o->store) die(2, "report needs --store DIR");
    if (o->format && strcmp(o->format, "html")) die(2, "report --format html (the only format)");
    pm_history_reader_t *rd = reader(o->store, o->start, o->end);
    pm_status_t st;
    tracks ts = {0};
    window w = {NULL, NULL, 0};
    pm_snapshot_t *s;
    while ((st = pm_history_reader_next(rd, &s)) == PM_OK) {
        track_snapshot(o, s, &ts);
        if (!w.first) w.first = pm_snapshot_ref(s);
        if (w.last) pm_snapshot_release(w.last);
        w.last = s;
        w.n++;
    }
    pm_history_reader_close(rd);
    if (st != PM_ENOENT) die(2, "%s: %s", o->store, pm_strerror(st));
    if (!w.n) die(2, "%s: no snapshot in the range", o->store);
    FILE *f = outpath ? fopen(outpath, "w") : stdout;
    if (!f) die(2, "%s: %s", outpath, strerror(errno));
    double all = 0, ok = 0;
    groups types = {0}, agents = {0};
    count_tasks(o, &w, o->type_label, &types, &all, &ok);
    count_tasks(o, &w, o->agent_label, &agents, NULL, NULL);
    latency_by(o, &w, o->type_label, &types);
    latency_by(o, &w, o->agent_label, &agents);
    double t0 = pm_snapshot_time(w.first), t1 = pm_snapshot_time(w.last);
    char a[32], b[32];
    iso(t0, a, sizeof a);
    iso(t1, b, sizeof b);
    qsort(ts.v, ts.n, sizeof *ts.v, by_key);
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
               "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
               "style-src 'unsafe-inline'\">\n<title>Performance report %s .. %s</title>\n"
               "<style>body{font:14px system-ui,sans-serif;margin:24px;max-width:780px;color:#222}"
               "table{border-collapse:collapse;margin:12px 0 24px}td,th{padding:3px 10px;"
               "border-bottom:1px solid #ddd;text-align:right}td:first-child,th:first-child{"
               "text-align:left}caption{text-align:left;font-weight:600;padding-bottom:4px}"
               "svg{width:100%%;height:auto}.plot{fill:#fafafa;stroke:#ccc}.grid{stroke:#eee}"
               ".tick{font-size:10px;text-anchor:end;fill:#666}.axis{font-size:10px;fill:#666}"
               ".end{text-anchor:end}.series{fill:none;stroke-width:1.6}"
               "figcaption{font-weight:600}.legend{margin:2px 0 20px;font-size:12px}"
               ".kpi span{display:inline-block;margin-right:24px}.kpi b{font-size:20px}</style>\n"
               "</head><body>\n<h1>Performance report</h1>\n<p>%s .. %s, %zu snapshots from ",
            a, b, a, b, w.n);
    html_text(f, o->store);
    fprintf(f, "</p>\n<p class=\"kpi\"><span><b id=\"tasks\">%.0f</b> tasks</span><span><b "
               "id=\"success\">%.1f%%</b> success</span><span><b>%.0f</b> tokens</span><span><b>"
               "%.4f</b> cost</span></p>\n",
            all, all ? 100 * ok / all : 0, counter_increase(o, &w, "tokens"),
            counter_increase(o, &w, "cost"));
    html_groups(f, o->type_label, &types);
    html_groups(f, o->agent_label, &agents);
    svg_chart(f, "Tasks per hour", &ts, 0, t0, t1);
    svg_chart(f, "Success (%)", &ts, 1, t0, t1);
    svg_chart(f, "Mean duration (s)", &ts, 2, t0, t1);
    fprintf(f, "</body></html>\n");
    if (outpath && fclose(f) != 0) die(2, "%s: %s", outpath, strerror(errno));
    for (size_t i = 0; i < ts.n; i++) {
        free(ts.v[i].p);
        free(ts.v[i].key);
    }
    free(ts.v);
    groups_free(&types);
    groups_free(&agents);
    pm_snapshot_release(w.first);
    pm_snapshot_release(w.last);
    return 0;
}

/* ------------------------------------------------------------ top */

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

/* GET url's path from host:port over plain HTTP/1.1; the body, malloc'd, or
 * NULL (with *why set). One request per connection, to keep it simple: top
 * asks once every interval. */
static char *http_get(const char *url, const char *path, const char **why)
{
    *why = "bad URL (http://host:port)";
    if (strncmp(url, "http://", 7)) return NULL;
    char host[256];
    const char *h = url + 7, *end = h + strcspn(h, "/");
    if ((size_t)(end - h) >= sizeof host) return NULL;
    memcpy(host, h, (size_t)(end - h));
    host[end - h] = '\0';
    char *port = strrchr(host, ':');
    if (!port || strchr(port, ']')) return NULL;
    *port++ = '\0';
    char *name = host;
    if (name[0] == '[') { /* [v6]:port */
        name++;
        name[strlen(name) - 1] = '\0';
    }
    struct addrinfo hints = {0}, *ai = NULL;
    hints.ai_socktype = SOCK_STREAM;
    *why = "cannot resolve the host";
    if (getaddrinfo(name, port, &hints, &ai) != 0) return NULL;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    struct timeval tv = {5, 0};
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
    *why = "cannot connect";
    if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        if (fd >= 0) close(fd);
        freeaddrinfo(ai);
        return NULL;
    }
    freeaddrinfo(ai);
    char req[512];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/plain\r\n"
                     "Connection: close\r\nUser-Agent: pmctl\r\n\r\n", path, host);
    *why = "cannot send the request";
    if (send(fd, req, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return NULL;
    }
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap + 1);
    for (ssize_t r; buf && (r = recv(fd, buf + len, cap - len, 0)) > 0;) {
        len += (size_t)r;
        if (len == cap) {
            char *nb = realloc(buf, 2 * cap + 1);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
    }
    close(fd);
    *why = "no HTTP answer";
    if (!buf || len < 12 || strncmp(buf, "HTTP/1.", 7)) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    int status = atoi(buf + 9);
    char *body = strstr(buf, "\r\n\r\n");
    *why = status == 401 ? "401: the endpoint wants a token" : "the endpoint did not answer 200";
    if (status != 200 || !body) {
        free(buf);
        return NULL;
    }
    memmove(buf, body + 4, len - (size_t)(body + 4 - buf) + 1);
    return buf;
}

/* One sample line of the Prometheus text format: name, the labels' text
 * (between the braces) and the value. False for comments and blank lines. */
static int sample_line(char *line, char **name, char **labels, double *value)
{
    if (!*line || *line == '#') return 0;
    char *sp = line + strcspn(line, "{ ");
    *labels = NULL;
    if (*sp == '{') {
        *sp = '\0';
        *labels = sp + 1;
        char *close = *labels, *q = NULL;
        int inq = 0;
        for (; *close; close++) {
            if (inq && *close == '\\' && close[1]) close++;
            else if (*close == '"') inq = !inq;
            else if (!inq && *close == '}') { q = close; break; }
        }
        if (!q) return 0;
        *q = '\0';
        sp = q + 1;
    } else if (*sp == ' ') {
        *sp = '\0';
    } else {
        return 0;
    }
    *name = line;
    *value = strtod(sp + 1, NULL);
    return 1;
}

/* The value of label k in a labels text (copied into out), or NULL. */
static const char *text_label(const char *labels, const char *k, char *out, size_t n)
{
    size_t kl = strlen(k);
    for (const char *p = labels; p && *p;) {
        if (!strncmp(p, k, kl) && p[kl] == '=' && p[kl + 1] == '"') {
            size_t j = 0;
            for (p += kl + 2; *p && *p != '"' && j + 1 < n; p++) {
                if (*p == '\\' && p[1]) p++;
                out[j++] = *p;
            }
            out[j] = '\0';
            return out;
        }
        const char *q = strchr(p, '"');
        if (!q) break;
        for (q++; *q && *q != '"'; q++)
            if (*q == '\\' && q[1]) q++;
        p = *q ? q + 1 : q;
        if (*p == ',') p++;
    }
    return NULL;
}

#define TOP_BUCKETS 64
typedef struct {
    char key[96];
    double tasks, ok;
    double le[TOP_BUCKETS], cum[TOP_BUCKETS];
    int nb;
} top_row;

typedef struct {
    top_row rows[64];
    int n;
    double gauges[8];
    char gname[8][64];
    int ng;
} top_frame;

static top_row *top_get(top_frame *f, const char *key)
{
    for (int i = 0; i < f->n; i++)
        if (!strcmp(f->rows[i].key, key)) return &f->rows[i];
    if (f->n == 64) return NULL;
    top_row *r = &f->rows[f->n++];
    memset(r, 0, sizeof *r);
    snprintf(r->key, sizeof r->key, "%s", key);
    return r;
}

static void top_parse(const opts *o, char *text, top_frame *f)
{
    memset(f, 0, sizeof *f);
    size_t tl = strlen(o->tasks), dl = strlen(o->duration);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        char *name, *labels, ty[96], st[64], le[64];
        double v;
        if (!sample_line(line, &name, &labels, &v)) continue;
        if (!strncmp(name, o->tasks, tl) && !strcmp(name + tl, "_total") && labels) {
            top_row *r = text_label(labels, o->type_label, ty, sizeof ty) ? top_get(f, ty) : NULL;
            if (!r) continue;
            r->tasks += v;
            if (text_label(labels, o->status_label, st, sizeof st) && !strcmp(st, o->ok)) r->ok += v;
        } else if (!strncmp(name, o->duration, dl) && !strcmp(name + dl, "_bucket") && labels &&
                   text_label(labels, o->type_label, ty, sizeof ty) &&
                   text_label(labels, "le", le, sizeof le)) {
            top_row *r = top_get(f, ty);
            if (r && r->nb < TOP_BUCKETS) {
                r->le[r->nb] = strtod(le, NULL); /* "+Inf" parses as inf */
                r->cum[r->nb++] = v;
            }
        } else if (!labels && f->ng < 8 && (strstr(name, "queue_length") || strstr(name, "busy"))) {
            snprintf(f->gname[f->ng], sizeof f->gname[0], "%s", name);
            f->gauges[f->ng++] = v;
        }
    }
}

/* The q quantile of the buckets' increase between two frames, as PromQL's
 * histogram_quantile (linear within the bucket). */
static double bucket_quantile(const top_row *a, const top_row *b, double q)
{
    if (!b->nb) return NAN;
    double total = b->cum[b->nb - 1] - (a && a->nb == b->nb ? a->cum[a->nb - 1] : 0);
    if (total <= 0) return NAN;
    double rank = q * total, prev_le = 0, prev_c = 0;
    for (int i = 0; i < b->nb; i++) {
        double c = b->cum[i] - (a && a->nb == b->nb ? a->cum[i] : 0);
        if (c >= rank) {
            if (isinf(b->le[i])) return prev_le;
            return prev_le + (b->le[i] - prev_le) * (c > prev_c ? (rank - prev_c) / (c - prev_c) : 0);
        }
        prev_le = b->le[i];
        prev_c = c;
    }
    return prev_le;
}

static int cmd_top(opts *o)
{
    if (!o->url) die(2, "top needs --url http://host:port (the process's embedded endpoint)");
    double interval = o->interval > 0 ? o->interval : 2;
    int frames = o->count > 0 ? o->count : o->once ? 2 : 0, tty = isatty(1) && !o->once;
    top_frame *prev = calloc(1, sizeof *prev), *cur = calloc(1, sizeof *cur);
    if (!prev || !cur) die(2, "out of memory");
    double tprev = 0;
    int have_prev = 0;
    for (int frame = 0; !frames || frame < frames; frame++) {
        const char *why;
        char *text = http_get(o->url, "/metrics", &why);
        if (!text) die(2, "%s: %s", o->url, why);
        double now = now_s();
        top_parse(o, text, cur);
        free(text);
        if (have_prev) {
            double dt = now - tprev;
            if (tty) fputs("\033[H\033[2J", stdout);
            char ts[32];
            iso(now, ts, sizeof ts);
            printf("%s  %s  every %.1fs\n", o->url, ts, interval);
            for (int g = 0; g < cur->ng; g++)
                printf("%s%s %.6g", g ? "   " : "", cur->gname[g], cur->gauges[g]);
            if (cur->ng) putchar('\n');
            printf("%-20s %10s %9s %10s %10s %10s\n", o->type_label, "tasks/s", "success", "p50",
                   "p95", "p99");
            for (int i = 0; i < cur->n; i++) {
                const top_row *b = &cur->rows[i], *a = NULL;
                for (int j = 0; j < prev->n; j++)
                    if (!strcmp(prev->rows[j].key, b->key)) a = &prev->rows[j];
                double dn = b->tasks - (a ? a->tasks : 0), dk = b->ok - (a ? a->ok : 0);
                if (dn < 0) dn = b->tasks, dk = b->ok; /* the process restarted */
                char q[3][16];
                static const double qs[] = {0.5, 0.95, 0.99};
                for (int k = 0; k < 3; k++) { /* "-": nothing finished in the interval */
                    double v = bucket_quantile(a, b, qs[k]);
                    snprintf(q[k], sizeof q[k], v == v ? "%.3fs" : "-", v);
                }
                char succ[16];
                snprintf(succ, sizeof succ, dn > 0 ? "%.1f%%" : "-", dn > 0 ? 100 * dk / dn : 0);
                printf("%-20s %10.2f %9s %10s %10s %10s\n", b->key, dn / dt, succ, q[0], q[1], q[2]);
            }
            fflush(stdout);
        }
        top_frame *t = prev;
        prev = cur;
        cur = t;
        tprev = now;
        have_prev = 1;
        if (frames && frame + 1 == frames) break;
        struct timespec ts = {(time_t)interval, (long)((interval - floor(interval)) * 1e9)};
        nanosleep(&ts, NULL);
    }
    free(prev);
    free(cur);
    return 0;
}

/* ------------------------------------------------------------ bottlenecks */

typedef struct {
    char name[257];
    double self_ns, total_ns;
    uint64_t n, errors;
} op;

typedef struct {
    op *v;
    size_t n, cap;
} ops;

static op *op_get(ops *os, const char *name)
{
    for (size_t i = 0; i < os->n; i++)
        if (!strcmp(os->v[i].name, name)) return &os->v[i];
    if (os->n == os->cap) {
        os->cap = os->cap ? 2 * os->cap : 32;
        os->v = realloc(os->v, os->cap * sizeof *os->v);
    }
    op *o = &os->v[os->n++];
    memset(o, 0, sizeof *o);
    snprintf(o->name, sizeof o->name, "%s", name);
    return o;
}

static int by_self(const void *a, const void *b)
{
    double x = ((const op *)a)->self_ns, y = ((const op *)b)->self_ns;
    return x < y ? 1 : x > y ? -1 : strcmp(((const op *)a)->name, ((const op *)b)->name);
}

/* Self time per operation from the store's span records: a span's duration
 * less the time covered by its children (of the same batch; overlapping
 * children cover once per child, so the self time is clipped at 0). */
static size_t span_ops(const opts *o, ops *os)
{
    pm_history_reader_t *rd = reader(o->store, o->start, o->end);
    pm_span_batch_t *b;
    size_t spans = 0;
    while (pm_history_reader_next_spans(rd, &b) == PM_OK) {
        size_t n = pm_span_batch_count(b);
        double *child = calloc(n ? n : 1, sizeof *child);
        for (size_t i = 0; i < n; i++) {
            const pm_span_data_t *c = pm_span_batch_span(b, i);
            const uint8_t *pid = pm_span_data_parent_id(c);
            for (size_t j = 0; j < n; j++) {
                const pm_span_data_t *p = pm_span_batch_span(b, j);
                if (j != i && !memcmp(pm_span_data_context(p)->span_id, pid, 8) &&
                    !memcmp(pm_span_data_context(p)->trace_id, pm_span_data_context(c)->trace_id, 16))
                    child[j] += (double)(pm_span_data_end_ns(c) - pm_span_data_start_ns(c));
            }
        }
        for (size_t i = 0; i < n; i++) {
            const pm_span_data_t *s = pm_span_batch_span(b, i);
            double d = (double)(pm_span_data_end_ns(s) - pm_span_data_start_ns(s));
            op *x = op_get(os, pm_span_data_name(s));
            x->n++;
            x->total_ns += d;
            x->self_ns += d > child[i] ? d - child[i] : 0;
            if (pm_span_data_status(s) == PM_SPAN_STATUS_ERROR) x->errors++;
        }
        spans += n;
        free(child);
        pm_history_spans_free(b);
    }
    pm_history_reader_close(rd);
    return spans;
}

/* The mean of a gauge family's series over the window's snapshots and its
 * largest value. */
static int gauge_stats(const opts *o, const char *needle, char *name, size_t nn, double *mean,
                       double *max)
{
    pm_history_reader_t *rd = reader(o->store, o->start, o->end);
    pm_snapshot_t *s;
    double sum = 0;
    size_t n = 0;
    *max = -INFINITY;
    name[0] = '\0';
    while (pm_history_reader_next(rd, &s) == PM_OK) {
        for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
            const pm_snap_family_t *f = pm_snapshot_family(s, i);
            if (pm_snap_family_type(f) != PM_TYPE_GAUGE || !strstr(pm_snap_family_name(f), needle))
                continue;
            snprintf(name, nn, "%s", pm_snap_family_name(f));
            double v = 0;
            for (size_t j = 0; j < pm_snap_family_series_count(f); j++)
                v += pm_snap_series_value(pm_snap_family_series(f, j));
            sum += v;
            n++;
            if (v > *max) *max = v;
            break;
        }
        pm_snapshot_release(s);
    }
    pm_history_reader_close(rd);
    *mean = n ? sum / (double)n : NAN;
    return n > 0;
}

static int cmd_bottlenecks(opts *o)
{
    if (!o->store) die(2, "bottlenecks needs --store DIR");
    window w = read_window(o->store, o->start, o->end);
    if (!w.n) die(2, "%s: no snapshot in the range", o->store);
    int json = o->format && !strcmp(o->format, "json");
    size_t found = 0;
    if (json) printf("{\"findings\": [");
#define FINDING(kind, subject, measure, value, recommendation)                                     \
    do {                                                                                           \
        if (json)                                                                                  \
            printf("%s\n  {\"kind\": \"%s\", \"subject\": \"%s\", \"measure\": \"%s\", "          \
                   "\"value\": %.6g, \"recommendation\": \"%s\"}",                                 \
                   found ? "," : "", kind, subject, measure, value, recommendation);             \
        else                                                                                       \
            printf("%-13s %-20s %-24s %10.4g  %s\n", kind, subject, measure, value,               \
                   recommendation);                                                                \
        found++;                                                                                   \
    } while (0)
    if (!json) printf("%-13s %-20s %-24s %10s  %s\n", "kind", "subject", "measure", "value", "recommendation");
    /* 1. Operations by self time (span records). */
    ops os = {0};
    size_t spans = span_ops(o, &os);
    qsort(os.v, os.n, sizeof *os.v, by_self);
    double self_all = 0;
    for (size_t i = 0; i < os.n; i++) self_all += os.v[i].self_ns;
    for (size_t i = 0; i < os.n && i < 5; i++) {
        double share = self_all > 0 ? 100 * os.v[i].self_ns / self_all : 0;
        if (share < 10) break;
        FINDING("slow_op", os.v[i].name, "self_time_share_pct", share,
                "the largest share of time is spent in this operation itself: profile or cache it, or run it in parallel");
    }
    /* 2. Agents whose success is well below everyone's. */
    groups agents = {0};
    double all = 0, ok = 0;
    count_tasks(o, &w, o->agent_label, &agents, &all, &ok);
    qsort(agents.g, agents.n, sizeof *agents.g, by_key);
    double overall = all ? 100 * ok / all : 100;
    for (size_t i = 0; i < agents.n; i++) {
        group *g = &agents.g[i];
        double rate = g->total ? 100 * g->ok / g->total : 100;
        if (g->total >= 10 && rate < overall - 10)
            FINDING("low_success", g->key, "success_pct", rate,
                    "success well below the other agents': look at its errors, or route fewer tasks to it");
    }
    /* 3. Task types whose p95 is far above the others'. */
    groups types = {0};
    count_tasks(o, &w, o->type_label, &types, NULL, NULL);
    latency_by(o, &w, o->type_label, &types);
    qsort(types.g, types.n, sizeof *types.g, by_key);
    double *p95 = calloc(types.n ? types.n : 1, sizeof *p95);
    size_t np = 0;
    for (size_t i = 0; i < types.n; i++)
        if (types.g[i].lat) p95[np++] = q_of(types.g[i].lat, 0.95);
    for (size_t i = 1; i < np; i++)
        for (size_t j = i; j > 0 && p95[j - 1] > p95[j]; j--) {
            double x = p95[j];
            p95[j] = p95[j - 1];
            p95[j - 1] = x;
        }
    double median = np ? p95[np / 2] : NAN;
    for (size_t i = 0; i < types.n; i++) {
        double v = q_of(types.g[i].lat, 0.95);
        if (np >= 2 && v > 2 * median)
            FINDING("slow_type", types.g[i].key, "p95_seconds", v,
                    "p95 over twice the median type's: split the work, raise its timeout budget, or give it its own agents");
    }
    free(p95);
    /* 4. Resource pressure: the queue and the agents' occupancy. */
    char gname[128];
    double mean, max;
    if (gauge_stats(o, "queue_length", gname, sizeof gname, &mean, &max) && mean >= 1)
        FINDING("queue", gname, "mean", mean,
                "tasks wait for an agent most of the time: add agents or smooth the bursts");
    double busy_mean, busy_max;
    char bname[128];
    if (gauge_stats(o, "busy", bname, sizeof bname, &busy_mean, &busy_max) && busy_max > 0 &&
        busy_mean >= 0.9 * busy_max)
        FINDING("saturation", bname, "mean_of_max_pct", 100 * busy_mean / busy_max,
                "agents are busy nearly all the time: capacity is the limit");
#undef FINDING
    if (json)
        printf("\n], \"spans\": %zu, \"snapshots\": %zu}\n", spans, w.n);
    else
        printf("%zu finding%s from %zu snapshots and %zu spans%s\n", found, found == 1 ? "" : "s",
               w.n, spans, spans ? "" : " (no span records: pm_history_add_tracer keeps them)");
    free(os.v);
    groups_free(&agents);
    groups_free(&types);
    pm_snapshot_release(w.first);
    pm_snapshot_release(w.last);
    return 0;
}

/* ------------------------------------------------------------ diff */

static int cmd_diff(opts *o, const char *base, const char *cur)
{
    if (!base || !cur) die(2, "diff BASELINE CURRENT (two stores)");
    window a = read_window(base, o->start, o->end), b = read_window(cur, o->start, o->end);
    if (!a.n || !b.n) die(2, "diff: a store has no snapshot in the range");
    groups ga = {0}, gb = {0};
    double alla = 0, oka = 0, allb = 0, okb = 0;
    count_tasks(o, &a, o->type_label, &ga, &alla, &oka);
    count_tasks(o, &b, o->type_label, &gb, &allb, &okb);
    latency_by(o, &a, o->type_label, &ga);
    latency_by(o, &b, o->type_label, &gb);
    int json = o->format && !strcmp(o->format, "json"), regressions = 0;
    double lim = o->max_regression;
    if (json) printf("{\"max_regression_pct\": %.6g, \"rows\": [", lim);
    else printf("%-24s %-12s %12s %12s %9s %s\n", "type", "measure", "baseline", "current", "change", "verdict");
    qsort(gb.g, gb.n, sizeof *gb.g, by_key);
    size_t rows = 0;
    for (size_t i = 0; i < gb.n; i++) {
        group *y = &gb.g[i], *x = group_get(&ga, y->key);
        static const double qs[] = {0.5, 0.95, 0.99};
        static const char *const qn[] = {"p50", "p95", "p99"};
        for (int k = 0; k < 4; k++) {
            double va, vb;
            const char *m;
            int worse_up = 1;
            if (k < 3) {
                va = q_of(x->lat, qs[k]);
                vb = q_of(y->lat, qs[k]);
                m = qn[k];
            } else {
                va = x->total ? 100 * x->ok / x->total : NAN;
                vb = y->total ? 100 * y->ok / y->total : NAN;
                m = "success_pct";
                worse_up = 0;
            }
            if (va != va || vb != vb) continue;
            double pct = va ? 100 * (vb - va) / va : 0;
            /* success is compared in points, latency in percent of the baseline */
            double worse = worse_up ? pct : va - vb;
            int bad = worse > lim;
            regressions += bad;
            if (json)
                printf("%s\n  {\"type\": \"%s\", \"measure\": \"%s\", \"baseline\": %.6g, "
                       "\"current\": %.6g, \"change\": %.6g, \"unit\": \"%s\", "
                       "\"regression\": %s}",
                       rows++ ? "," : "", y->key, m, va, vb, worse_up ? pct : vb - va,
                       worse_up ? "percent" : "points", bad ? "true" : "false");
            else if (worse_up)
                printf("%-24s %-12s %12.6g %12.6g %+8.1f%% %s\n", y->key, m, va, vb, pct,
                       bad ? "REGRESSION" : "ok");
            else
                printf("%-24s %-12s %12.6g %12.6g %+7.1fpt %s\n", y->key, m, va, vb, vb - va,
                       bad ? "REGRESSION" : "ok");
        }
    }
    if (json) printf("\n], \"regressions\": %d}\n", regressions);
    else printf("%d regression%s (threshold %.1f%%)\n", regressions, regressions == 1 ? "" : "s", lim);
    groups_free(&ga);
    groups_free(&gb);
    pm_snapshot_release(a.first);
    pm_snapshot_release(a.last);
    pm_snapshot_release(b.first);
    pm_snapshot_release(b.last);
    return regressions ? 1 : 0;
}

/* ------------------------------------------------------------ main */

static const char usage[] =
    "usage: pmctl summary --store DIR [range] [--label k=v]... [--format text|json]\n"
    "       pmctl export  --store DIR [range] [--label k=v]... --format csv|json|prom\n"
    "       pmctl trends  --store DIR [range] [--period DURATION] [--label k=v]... [--format text|json]\n"
    "       pmctl report  --store DIR [range] [--label k=v]... [--format html] [--output FILE]\n"
    "       pmctl bottlenecks --store DIR [range] [--label k=v]... [--format text|json]\n"
    "       pmctl top     --url http://HOST:PORT [--interval 2s] [--count N | --once]\n"
    "       pmctl diff BASELINE CURRENT [range] [--max-regression PCT] [--format text|json]\n"
    "range: --since 30m|12h|7d, --days N, --start T --end T (Unix seconds or\n"
    "       YYYY-MM-DD[THH:MM:SSZ], UTC)\n"
    "names: --tasks FAMILY [tasks] --duration FAMILY [task_duration_seconds]\n"
    "       --type-label [task_type] --agent-label [agent] --status-label [status] --ok [ok]\n"
    "exit: 0; 1 regression (diff); 2 usage or store error\n";

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    opts o = {NULL, -INFINITY, INFINITY, {0}, {0}, {0}, 0, NULL, "tasks", "task_duration_seconds",
              "task_type", "agent", "status", "ok", 10.0, 0, NULL, NULL, 0, 0, 0};
    const char *pos[2] = {NULL, NULL};
    const char *cmd = argv[1];
    if (!strcmp(cmd, "summary")) {
        parse_opts(argc, argv, 2, &o, pos, 0);
        return cmd_summary(&o);
    }
    if (!strcmp(cmd, "export")) {
        parse_opts(argc, argv, 2, &o, pos, 0);
        return cmd_export(&o);
    }
    if (!strcmp(cmd, "bottlenecks")) {
        parse_opts(argc, argv, 2, &o, pos, 0);
        return cmd_bottlenecks(&o);
    }
    if (!strcmp(cmd, "top")) {
        parse_opts(argc, argv, 2, &o, pos, 0);
        return cmd_top(&o);
    }
    if (!strcmp(cmd, "report")) {
        parse_opts(argc, argv, 2, &o, pos, 0);
        return cmd_report(&o, o.output);
    }
    if (!strcmp(cmd, "trends")) {
        parse_opts(argc, argv, 2, &o, pos, 0);
        return cmd_trends(&o);
    }
    if (!strcmp(cmd, "diff")) {
        parse_opts(argc, argv, 2, &o, pos, 2);
        return cmd_diff(&o, pos[0], pos[1]);
    }
    fprintf(stderr, "pmctl: unknown command '%s'\n%s", cmd, usage);
    return 2;
}
