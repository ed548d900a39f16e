/* Custom exporter: a callback that receives each snapshot and writes one
 * line per series, "name{label="value",...} value", to a stream (stderr here;
 * a file, a socket or a queue in a real host).
 *
 * It is run three ways:
 *   1. on demand, with pm_export_now;
 *   2. from the host's own loop, with pm_export_tick and the host's clock
 *      (a fake one here, so the run is instant and repeatable);
 *   3. from the library's background thread, pm_export_start/pm_export_stop.
 * Then it prints how often the exporter ran.
 *
 *   cc custom_exporter.c $(pkg-config --cflags --libs libperfmetrics) && ./a.out */
#define _POSIX_C_SOURCE 200809L /* nanosleep */
#include <perfmetrics/perfmetrics.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The exporter's state: handed to the library, released by it. */
struct line_exporter {
    FILE *out;
    unsigned long runs;
};

static void write_labels(FILE *out, const pm_snap_family_t *f, const pm_snap_series_t *s)
{
    size_t n = pm_snap_family_label_count(f);
    if (n == 0) return;
    fputc('{', out);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%s=\"%s\"", i ? "," : "", pm_snap_family_label_name(f, i),
                pm_snap_series_label_value(s, i)); /* no escaping: a demo format */
    fputc('}', out);
}

/* Called with a borrowed snapshot, never concurrently with itself. Reads only
 * the snapshot, through its accessors. */
static pm_status_t export_lines(const pm_snapshot_t *snap, void *user)
{
    struct line_exporter *ex = user;
    ex->runs++;
    fprintf(ex->out, "# export %lu at %.3f\n", ex->runs, pm_snapshot_time(snap));
    for (size_t i = 0; i < pm_snapshot_family_count(snap); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(snap, i);
        const char *name = pm_snap_family_name(f);
        if (strncmp(name, "perfmetrics_", 12) == 0) continue; /* the library's own metrics */
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
            const pm_snap_series_t *s = pm_snap_family_series(f, j);
            fputs(name, ex->out);
            write_labels(ex->out, f, s);
            if (pm_snap_family_type(f) == PM_TYPE_HISTOGRAM) {
                double p99 = 0;
                pm_snap_series_quantile(s, 0.99, &p99); /* PM_ENOENT when empty: p99 stays 0 */
                fprintf(ex->out, " count=%llu sum=%g p99=%g\n",
                        (unsigned long long)pm_snap_series_count(s), pm_snap_series_sum(s), p99);
            } else {
                fprintf(ex->out, " %g\n", pm_snap_series_value(s));
            }
        }
    }
    return ferror(ex->out) ? PM_EIO : PM_OK; /* an error is counted as a failed run */
}

static void release_exporter(void *user) { free(user); }

static void sleep_seconds(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* perfmetrics_exporter_runs{exporter=name} as the library counts it. */
static double library_runs(pm_registry_t *reg, const char *name)
{
    pm_snapshot_t *snap;
    double runs = 0;
    if (pm_snapshot_new(reg, &snap) != PM_OK) return -1;
    for (size_t i = 0; i < pm_snapshot_family_count(snap); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(snap, i);
        if (strcmp(pm_snap_family_name(f), "perfmetrics_exporter_runs") != 0) continue;
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
            const pm_snap_series_t *s = pm_snap_family_series(f, j);
            if (strcmp(pm_snap_series_label_value(s, 0), name) == 0) runs = pm_snap_series_value(s);
        }
    }
    pm_snapshot_release(snap);
    return runs;
}

#define TRY(call)                                                                                  \
    do {                                                                                           \
        pm_status_t st_ = (call);                                                                  \
        if (st_ != PM_OK) {                                                                        \
            fprintf(stderr, "%s: %s\n", #call, pm_strerror(st_));                                  \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

int main(void)
{
    pm_registry_t *reg;
    TRY(pm_registry_new(NULL, &reg));

    /* Something to export. */
    pm_family_opts_t *opts;
    static const char *const labels[] = {"route"};
    TRY(pm_family_opts_new(&opts));
    TRY(pm_family_opts_set_labels(opts, labels, 1));
    pm_family_t *hits;
    TRY(pm_family_new(reg, PM_TYPE_COUNTER, "hits", "Hits per route.", opts, &hits));
    pm_family_opts_free(opts);
    pm_gauge_t *conns;
    TRY(pm_gauge_new(reg, "open_connections", "Open connections.", &conns));
    pm_histogram_t *h;
    TRY(pm_histogram_new(reg, "handler_seconds", "Handler latency.", &h));

    /* The library owns `ex` from here on and frees it through release_exporter. */
    struct line_exporter *ex = calloc(1, sizeof *ex);
    if (!ex) return 1;
    ex->out = stderr;
    pm_exporter_t *exporter;
    TRY(pm_exporter_add(reg, "lines", export_lines, ex, release_exporter, &exporter));

    /* 1. On demand. */
    const char *const home[] = {"/"}, *const api[] = {"/api"};
    TRY(pm_counter_add_labeled(hits, home, 1, 3));
    pm_gauge_set(conns, 2);
    pm_histogram_observe(h, 0.012);
    TRY(pm_export_now(reg));
    printf("export_now: %lu run(s)\n", ex->runs);

    /* 2. Host-driven: the host calls pm_export_tick from its loop with its
     * own clock; an export runs whenever an interval (10 s) has passed. */
    TRY(pm_export_set_interval(reg, 10));
    unsigned long before = ex->runs;
    for (uint64_t now_s = 0; now_s <= 35; now_s += 5) {
        int ran = 0;
        TRY(pm_counter_add_labeled(hits, api, 1, 1));
        TRY(pm_export_tick(reg, now_s * 1000000000ull, &ran));
        printf("tick at %2llu s: %s\n", (unsigned long long)now_s, ran ? "exported" : "-");
    }
    printf("export_tick: %lu run(s) over 35 fake seconds\n", ex->runs - before);

    /* 3. Background thread: exports every 0.05 s until stopped; the final
     * export on stop makes sure the last values leave. */
    TRY(pm_export_set_interval(reg, 0.05));
    before = ex->runs;
    TRY(pm_export_start(reg));
    for (int i = 0; i < 5; i++) {
        pm_histogram_observe(h, 0.001 * (i + 1));
        sleep_seconds(0.05);
    }
    TRY(pm_export_stop(reg, 1));
    printf("background thread: %lu run(s) in ~0.25 s, final one included\n", ex->runs - before);

    printf("exporter \"lines\": %lu run(s) counted by the exporter, %g by the library\n", ex->runs,
           library_runs(reg, "lines"));
    pm_registry_free(reg); /* removes the exporter: release_exporter frees ex */
    return 0;
}
