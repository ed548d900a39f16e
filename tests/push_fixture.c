/* Pushes a registry with known contents to a destination, for the checks
 * against real receivers (tests/validate_remote_write.py,
 * tests/validate_otlp.py).
 *
 *   push_fixture remote_write URL        one export to a remote-write receiver
 *   push_fixture otlp_metrics URL        one export as OTLP/HTTP JSON metrics
 *   push_fixture otlp_traces URL         one span batch as OTLP/HTTP JSON traces
 *   push_fixture dump_rw_raw | dump_rw_snappy | dump_otlp_metrics
 *                                        the body that would be sent, on stdout
 *                                        (snapshot time fixed at 1700000000.25)
 *   push_fixture bench_rw URL N          N more counter series; CPU time of each
 *                                        export on the exporting thread
 *
 * Destinations carry the labels job="push_fixture" and instance="fx1"; the
 * metrics are (keep in step with the checks that read them):
 *   fx_requests_total{code}: "200" = 42, "500" = 3
 *   fx_temperature_celsius = -12.5
 *   fx_latency_seconds (bounds 0.1, 1, 10): 0.05, 0.5, 0.5, 5, 50: buckets
 *     1, 3, 4, +Inf 5; sum 56.05; count 5; min 0.05, max 50
 * A push prints "sent=<payloads> failed=<attempts failed> dropped=<payloads>"
 * once the queue is flushed. Exits 0 when everything was delivered, 1 when a
 * call failed or a payload was not sent, 2 on bad arguments. */
#include "try.h"

#include <perfmetrics/perfmetrics.h>
#include <perfmetrics/push.h>

#include "internal/format_internal.h"
#include "internal/push_encode.h"
#include "internal/snapshot_internal.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Sanitized builds run several times slower: the CPU target is for the
 * others (tests/validate_remote_write.py). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifndef SANITIZED
#define SANITIZED 0
#endif

static int fixture_registry(pm_registry_t **out)
{
    pm_registry_opts_t *ro = NULL;
    TRY(pm_registry_opts_new(&ro));
    TRY(pm_registry_opts_set_self_metrics(ro, 0));
    TRY(pm_registry_new(ro, out));
    pm_registry_opts_free(ro);
    pm_registry_t *r = *out;

    pm_family_opts_t *fo = NULL;
    pm_family_t *req = NULL, *lat = NULL, *temp = NULL;
    const char *code[] = {"code"};
    TRY(pm_family_opts_new(&fo));
    TRY(pm_family_opts_set_labels(fo, code, 1));
    TRY(pm_family_new(r, PM_TYPE_COUNTER, "fx_requests", "Requests served.", fo, &req));
    pm_family_opts_free(fo);
    const char *c200[] = {"200"}, *c500[] = {"500"};
    TRY(pm_counter_add_labeled(req, c200, 1, 42));
    TRY(pm_counter_add_labeled(req, c500, 1, 3));

    TRY(pm_family_opts_new(&fo));
    TRY(pm_family_opts_set_unit(fo, "celsius"));
    TRY(pm_family_new(r, PM_TYPE_GAUGE, "fx_temperature_celsius", "Temperature.", fo, &temp));
    pm_family_opts_free(fo);
    TRY(pm_gauge_set_labeled(temp, NULL, 0, -12.5));

    const double bounds[] = {0.1, 1, 10};
    TRY(pm_family_opts_new(&fo));
    TRY(pm_family_opts_set_unit(fo, "seconds"));
    TRY(pm_family_opts_set_buckets(fo, bounds, 3));
    TRY(pm_family_new(r, PM_TYPE_HISTOGRAM, "fx_latency_seconds", "Latency.", fo, &lat));
    pm_family_opts_free(fo);
    const double obs[] = {0.05, 0.5, 0.5, 5, 50};
    for (size_t i = 0; i < 5; i++) TRY(pm_histogram_observe_labeled(lat, NULL, 0, obs[i]));
    return 0;
}

static int fixture_opts(pm_push_opts_t **out)
{
    TRY(pm_push_opts_new(out));
    TRY(pm_push_opts_add_label(*out, "job", "push_fixture"));
    TRY(pm_push_opts_add_label(*out, "instance", "fx1"));
    TRY(pm_push_opts_set_retry(*out, 2, 0.1, 0.2));
    return 0;
}

static int report(pm_push_t *p)
{
    TRY(pm_push_flush(p, 20));
    uint64_t sent = 0, failed = 0, dropped = 0, rejected = 0;
    TRY(pm_push_stat(p, PM_PUSH_STAT_SENT, &sent));
    TRY(pm_push_stat(p, PM_PUSH_STAT_FAILED, &failed));
    TRY(pm_push_stat(p, PM_PUSH_STAT_DROPPED, &dropped));
    TRY(pm_push_stat(p, PM_PUSH_STAT_REJECTED, &rejected));
    printf("sent=%llu failed=%llu dropped=%llu rejected=%llu\n", (unsigned long long)sent,
           (unsigned long long)failed, (unsigned long long)dropped, (unsigned long long)rejected);
    fflush(stdout);
    return sent >= 1 && dropped == 0 && rejected == 0 ? 0 : 1;
}

static int push_metrics(const char *kind, const char *url)
{
    pm_registry_t *r = NULL;
    pm_push_opts_t *o = NULL;
    pm_push_t *p = NULL;
    int rc = fixture_registry(&r);
    if (rc) return rc;
    if ((rc = fixture_opts(&o))) return rc;
    if (strcmp(kind, "remote_write") == 0)
        TRY(pm_push_remote_write_new(r, url, o, &p));
    else
        TRY(pm_push_otlp_metrics_new(r, url, o, &p));
    pm_push_opts_free(o);
    TRY(pm_export_now(r));
    rc = report(p);
    pm_push_free(p);
    pm_registry_free(r);
    return rc;
}

static int bench_rw(const char *url, long n)
{
    pm_registry_t *r = NULL;
    pm_push_opts_t *o = NULL;
    pm_push_t *p = NULL;
    int rc = fixture_registry(&r);
    if (rc) return rc;
    pm_family_opts_t *fo = NULL;
    pm_family_t *f = NULL;
    const char *ln[] = {"service", "instance_id"};
    TRY(pm_family_opts_new(&fo));
    TRY(pm_family_opts_set_labels(fo, ln, 2));
    TRY(pm_family_opts_set_max_series(fo, (size_t)n + 1));
    TRY(pm_family_new(r, PM_TYPE_COUNTER, "fx_bench", "", fo, &f));
    pm_family_opts_free(fo);
    for (long i = 0; i < n; i++) {
        char svc[32], inst[32];
        snprintf(svc, sizeof svc, "svc-%ld", i % 50);
        snprintf(inst, sizeof inst, "10.0.%ld.%ld:8080", i / 256, i % 256);
        const char *v[] = {svc, inst};
        TRY(pm_counter_add_labeled(f, v, 2, (double)i));
    }
    if ((rc = fixture_opts(&o))) return rc;
    TRY(pm_push_remote_write_new(r, url, o, &p));
    pm_push_opts_free(o);
    /* The exporter runs on this thread: its CPU time is the thread's. The
     * snapshot is part of it; the sending is not (the sender thread's). */
    double best = 1e9, total = 0;
    int reps = 10;
    for (int i = 0; i < reps; i++) {
        struct timespec a, z;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
        TRY(pm_export_now(r));
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &z);
        double ms = (double)(z.tv_sec - a.tv_sec) * 1e3 + (double)(z.tv_nsec - a.tv_nsec) / 1e6;
        total += ms;
        if (ms < best) best = ms;
        TRY(pm_push_flush(p, 20));
    }
    printf("bench series=%ld best_cpu_ms=%.3f mean_cpu_ms=%.3f sanitized=%d\n", n, best,
           total / reps, SANITIZED);
    rc = report(p);
    pm_push_free(p);
    pm_registry_free(r);
    return rc;
}

/* Two spans of one trace through a real tracer (service "push-fixture"),
 * flushed to an OTLP traces destination. */
static int push_traces(const char *url)
{
    pm_tracer_opts_t *to = NULL;
    pm_tracer_t *t = NULL;
    pm_push_opts_t *o = NULL;
    pm_push_t *p = NULL;
    TRY(pm_tracer_opts_new(&to));
    TRY(pm_tracer_opts_set_service(to, "push-fixture"));
    TRY(pm_tracer_new(to, &t));
    pm_tracer_opts_free(to);
    int rc = fixture_opts(&o);
    if (rc) return rc;
    TRY(pm_push_otlp_traces_new(t, url, o, &p));
    pm_push_opts_free(o);
    pm_span_t *root = NULL, *child = NULL;
    pm_trace_context_t rctx;
    TRY(pm_span_start(t, "fx.root", PM_SPAN_SERVER, NULL, &root));
    TRY(pm_span_set_string(root, "http.route", "/fx"));
    TRY(pm_span_set_int(root, "fx.count", 7));
    TRY(pm_span_context(root, &rctx));
    TRY(pm_span_start(t, "fx.child", PM_SPAN_CLIENT, &rctx, &child));
    TRY(pm_span_set_status(child, PM_SPAN_STATUS_ERROR, "boom"));
    pm_span_end(child);
    pm_span_end(root);
    size_t n = 0;
    TRY(pm_tracer_flush(t, &n));
    rc = report(p);
    if (n != 2) rc = 1;
    pm_push_free(p);
    pm_tracer_free(t);
    return rc;
}

/* The bodies as the encoders write them, for checks with other tools. */
static int dump(const char *what)
{
    pm_registry_t *r = NULL;
    int rc = fixture_registry(&r);
    if (rc) return rc;
    pm_snapshot_t *s = NULL;
    TRY(pm_snapshot_new(r, &s));
    s->time = 1700000000.25; /* the same bytes on every run */
    static const char *const ln[] = {"job", "instance"}, *const lv[] = {"push_fixture", "fx1"};
    pm__push_view_t v = {2, ln, lv, NULL, NULL};
    pm_buf_t *raw = NULL, *body = NULL;
    TRY(pm_buf_new(&raw));
    TRY(pm_buf_new(&body));
    if (strcmp(what, "dump_otlp_metrics") == 0) {
        TRY(pm__otlp_metrics_encode(s, &v, body));
    } else {
        TRY(pm__remote_write_body(s, &v, raw, body, NULL));
        if (strcmp(what, "dump_rw_raw") == 0) {
            pm_buf_t *tmp = raw;
            raw = body;
            body = tmp;
        }
    }
    fwrite(pm_buf_data(body), 1, pm_buf_len(body), stdout);
    pm_buf_free(raw);
    pm_buf_free(body);
    pm_snapshot_release(s);
    pm_registry_free(r);
    return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strncmp(argv[1], "dump_", 5) == 0) return dump(argv[1]);
    if (argc == 3 && (strcmp(argv[1], "remote_write") == 0 || strcmp(argv[1], "otlp_metrics") == 0))
        return push_metrics(argv[1], argv[2]);
    if (argc == 3 && strcmp(argv[1], "otlp_traces") == 0) return push_traces(argv[2]);
    if (argc == 4 && strcmp(argv[1], "bench_rw") == 0) return bench_rw(argv[2], atol(argv[3]));
    fprintf(stderr, "usage: push_fixture remote_write|otlp_metrics|otlp_traces URL | dump_rw_raw | "
                    "dump_rw_snappy | dump_otlp_metrics | bench_rw URL N\n");
    return 2;
}
