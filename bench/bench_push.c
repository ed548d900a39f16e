/* Push destinations (include/perfmetrics/push.h) against the recording path.
 *
 * Rows:
 *  1. pm_counter_inc on 2 recording threads (one counter series of a
 *     registry that also holds 10,000 other series), CPU time per op (each
 *     worker's CLOCK_THREAD_CPUTIME_ID over its run, summed, over all ops):
 *     with no exporter, then while destinations export the registry every
 *     1 s (the registry's export thread) to a port with nothing listening:
 *     a Pushgateway, an Alertmanager notifier on an alert engine evaluating
 *     every 1 s (100 firing instances, resent every 1 s), and remote-write
 *     and OTLP metrics when those kinds are built. Target: < 1.05x.
 *     Destinations are made before each "with" run and freed after it, so
 *     a "without" run has no sender thread retrying in the background.
 *     Runs alternate, BENCH_PUSH_RUN_MS (default 2000) each, BENCH_REPS of
 *     each; medians.
 *  2. remote-write: CPU time of one export of the 10,000 series (snapshot,
 *     encoding, Snappy, queueing), with the snapshot included and excluded
 *     (pm_snapshot_new alone, subtracted). Target: < 10 ms, judged on the
 *     figure with the snapshot included. Only when the remote-write kind is
 *     built (lib/push_remote_write.c). */
#include "bench_common.h"

#include <perfmetrics/push.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A loopback port with nothing listening: bound, then released. */
static int down_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0) bench_die("bind", -1);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct rec_ctx {
    pm_counter_t *c;
    uint64_t cpu[BENCH_MAX_THREADS];
} rec_ctx_t;

static void body_inc(void *p, unsigned tid, uint64_t n)
{
    rec_ctx_t *ctx = p;
    uint64_t c0 = thread_cpu_ns();
    for (uint64_t i = 0; i < n; i++) {
        pm_counter_inc(ctx->c);
        BENCH_CLOBBER();
    }
    ctx->cpu[tid] = thread_cpu_ns() - c0;
}

#define MAX_DESTS 4

typedef struct world {
    pm_registry_t *r;
    pm_alert_engine_t *e;
    char url[64];
    pm_push_t *d[MAX_DESTS];
    const char *names[MAX_DESTS];
    size_t nd;
    uint64_t attempts, failed, dropped, queued;
} world_t;

static pm_push_opts_t *opts_named(const char *name)
{
    pm_push_opts_t *o = NULL;
    bench_check(pm_push_opts_new(&o), "pm_push_opts_new");
    bench_check(pm_push_opts_set_name(o, name), "pm_push_opts_set_name");
    return o;
}

static void exporters_on(world_t *w)
{
    pm_push_opts_t *o = opts_named("bench_pushgateway");
    w->nd = 0;
    bench_check(pm_push_pushgateway_new(w->r, w->url, "bench", 0, o, &w->d[w->nd]),
                "pm_push_pushgateway_new");
    w->names[w->nd++] = "pushgateway";
    pm_push_opts_free(o);
    o = opts_named("bench_alertmanager");
    bench_check(pm_push_alertmanager_new(w->e, w->url, NULL, 1.0, NULL, o, &w->d[w->nd]),
                "pm_push_alertmanager_new");
    w->names[w->nd++] = "alertmanager";
    pm_push_opts_free(o);
#if PM_BENCH_HAVE_REMOTE_WRITE
    o = opts_named("bench_remote_write");
    bench_check(pm_push_remote_write_new(w->r, w->url, o, &w->d[w->nd]), "pm_push_remote_write_new");
    w->names[w->nd++] = "remote-write";
    pm_push_opts_free(o);
#endif
#if PM_BENCH_HAVE_OTLP
    o = opts_named("bench_otlp");
    bench_check(pm_push_otlp_metrics_new(w->r, w->url, o, &w->d[w->nd]), "pm_push_otlp_metrics_new");
    w->names[w->nd++] = "OTLP metrics";
    pm_push_opts_free(o);
#endif
    bench_check(pm_export_start(w->r), "pm_export_start");
    bench_check(pm_alert_engine_start(w->e), "pm_alert_engine_start");
}

static void exporters_off(world_t *w)
{
    bench_check(pm_alert_engine_stop(w->e), "pm_alert_engine_stop");
    bench_check(pm_export_stop(w->r, 0), "pm_export_stop");
    for (size_t i = 0; i < w->nd; i++) {
        uint64_t v;
        pm_push_stat(w->d[i], PM_PUSH_STAT_ATTEMPTS, &v);
        w->attempts += v;
        pm_push_stat(w->d[i], PM_PUSH_STAT_FAILED, &v);
        w->failed += v;
        pm_push_stat(w->d[i], PM_PUSH_STAT_QUEUED, &v);
        w->queued += v;
        pm_push_stat(w->d[i], PM_PUSH_STAT_DROPPED, &v);
        w->dropped += v;
        pm_push_free(w->d[i]); /* counts what is left as dropped */
        w->d[i] = NULL;
    }
}

static double g_wall_ns; /* wall time of all runs */

static double run_once(bench_pool_t *pool, rec_ctx_t *ctx, uint64_t n)
{
    memset(ctx->cpu, 0, sizeof ctx->cpu);
    g_wall_ns += (double)bench_pool_run(pool, body_inc, ctx, 2, n);
    return (double)(ctx->cpu[0] + ctx->cpu[1]) / (double)(2 * n);
}

static void row_recording(bench_pool_t *pool, world_t *w)
{
    rec_ctx_t ctx = {0};
    bench_check(pm_counter_new(w->r, "bench_push_ops", "Recorded by the bench.", &ctx.c),
                "pm_counter_new");
    unsigned run_ms = bench_env_uint("BENCH_PUSH_RUN_MS", 3000, 1200);
    /* Calibrate: n ops per thread last run_ms of wall on 2 threads. */
    uint64_t k = 1u << 16, n;
    for (;;) {
        uint64_t wall = bench_pool_run(pool, body_inc, &ctx, 2, k);
        if (wall >= 200000000u || k >= (1ull << 36)) {
            n = (uint64_t)((double)k * run_ms * 1e6 / (double)wall);
            break;
        }
        k *= 4;
    }
    /* Once more at full length: short runs extrapolate poorly on a busy machine. */
    uint64_t wall = bench_pool_run(pool, body_inc, &ctx, 2, n);
    if (wall > 0) n = (uint64_t)((double)n * run_ms * 1e6 / (double)wall);
    unsigned reps = bench_reps();
    if (reps > 32) reps = 32;
    double off[32], on[32];
    for (unsigned r = 0; r < reps; r++) {
        for (int kk = 0; kk < 2; kk++) {
            int with = (kk + (int)r) % 2; /* alternate which goes first */
            if (with) {
                exporters_on(w);
                on[r] = run_once(pool, &ctx, n);
                exporters_off(w);
            } else {
                off[r] = run_once(pool, &ctx, n);
            }
        }
    }
    double moff = bench_median(off, reps), mon = bench_median(on, reps);
    bench_row("pm_counter_inc, no exporter", 2, moff, NULL, 0,
              "CPU time/op (thread CPU clocks), %u runs of each kind, %.0f ms each (target %u), "
              "10,000 other series in the registry",
              reps, g_wall_ns / (2.0 * reps) / 1e6, run_ms);
    char dests[128] = "";
    for (size_t i = 0; i < w->nd; i++) {
        strncat(dests, i ? ", " : "", sizeof dests - strlen(dests) - 1);
        strncat(dests, w->names[i], sizeof dests - strlen(dests) - 1);
    }
    bench_row("pm_counter_inc, push every 1 s, server down", 2, mon, "no exporter 2T", moff,
              "CPU time/op; target < 1.05x: %s; %zu destinations (%s) to a port with nothing "
              "listening: %llu payloads queued, %llu attempts, %llu failed, %llu dropped over "
              "%u runs",
              bench_verdict(mon < 1.05 * moff), w->nd, dests, (unsigned long long)w->queued,
              (unsigned long long)w->attempts, (unsigned long long)w->failed,
              (unsigned long long)w->dropped, reps);
    pm_counter_release(ctx.c);
}

static void row_remote_write(world_t *w)
{
#if PM_BENCH_HAVE_REMOTE_WRITE
    pm_push_opts_t *o = opts_named("bench_rw_encode");
    bench_check(pm_push_opts_set_queue(o, 4, (size_t)64 << 20), "pm_push_opts_set_queue");
    pm_push_t *p = NULL;
    bench_check(pm_push_remote_write_new(w->r, w->url, o, &p), "pm_push_remote_write_new");
    pm_push_opts_free(o);
    enum { N = 20 };
    double with[N], snap[N];
    for (int i = 0; i < N; i++) {
        uint64_t c0 = thread_cpu_ns();
        bench_check(pm_export_now(w->r), "pm_export_now");
        with[i] = (double)(thread_cpu_ns() - c0);
        pm_snapshot_t *s = NULL;
        c0 = thread_cpu_ns();
        bench_check(pm_snapshot_new(w->r, &s), "pm_snapshot_new");
        pm_snapshot_release(s);
        snap[i] = (double)(thread_cpu_ns() - c0);
    }
    uint64_t queued = 0;
    pm_push_stat(p, PM_PUSH_STAT_QUEUED, &queued);
    pm_push_free(p);
    double mw = bench_median(with, N), ms = bench_median(snap, N);
    bench_row("remote-write: one push of 10,000 series", 1, mw, "pm_snapshot_new", ms,
              "CPU time per export, snapshot included; target < 10 ms: %s; snapshot excluded "
              "%.2f ms (encode + Snappy + queue); %llu payloads queued; median of %d",
              bench_verdict(mw < 10e6), (mw - ms) / 1e6, (unsigned long long)queued, N);
#else
    (void)w;
    bench_row("remote-write: one push of 10,000 series", 1, -1, NULL, 0,
              "not built: the remote-write kind (lib/push_remote_write.c) is not in this tree");
#endif
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    bench_pool_t pool;
    bench_pool_start(&pool);
    world_t w = {0};
    w.r = bench_series_registry();
    snprintf(w.url, sizeof w.url, "http://127.0.0.1:%d/", down_port());
    pm_alert_engine_opts_t *eo = NULL;
    bench_check(pm_alert_engine_opts_new(&eo), "pm_alert_engine_opts_new");
    bench_check(pm_alert_engine_opts_set_interval(eo, 1), "pm_alert_engine_opts_set_interval");
    bench_check(pm_alert_engine_new(w.r, eo, &w.e), "pm_alert_engine_new");
    pm_alert_engine_opts_free(eo);
    pm_alert_rule_t *rule = NULL;
    /* 100 firing instances: every series of one family is above 0. */
    bench_check(pm_alert_rule_new("BenchHigh", "bench_family_001 > 0", &rule, NULL),
                "pm_alert_rule_new");
    bench_check(pm_alert_engine_add_rule(w.e, rule), "pm_alert_engine_add_rule");
    pm_alert_rule_free(rule);
    bench_check(pm_export_set_interval(w.r, 1.0), "pm_export_set_interval");
    row_recording(&pool, &w);
    row_remote_write(&w);
    pm_alert_engine_free(w.e);
    pm_registry_free(w.r);
    bench_pool_stop(&pool);
    return 0;
}
