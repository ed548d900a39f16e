/* Prints the exposition of a fixed, deterministic registry in the format named
 * by argv[1] (prometheus | openmetrics | json) to stdout, for
 * tests/validate_exposition.py to check with parsers and tools we did not
 * write. The registry covers every type, several label sets, hostile label
 * values and HELP text, units, an overflow series, an empty family, a callback
 * gauge, non-finite gauge values, a histogram with negative bounds and
 * exemplars (on hostile-labeled counters, the overflow series and histogram
 * buckets, a value on a bound included); the library's own metrics are left
 * on so they are validated too.
 *
 * Keep in step with EXPECTED in tests/validate_exposition.py. */
#include "try.h"

#include <perfmetrics/perfmetrics.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

static pm_status_t family(pm_registry_t *r, pm_type_t type, const char *name, const char *help,
                          const char *unit, const char *const *labels, size_t nl,
                          const double *bounds, size_t nb, size_t max_series, pm_family_t **out)
{
    pm_family_opts_t *o = NULL;
    pm_status_t st = pm_family_opts_new(&o);
    if (st == PM_OK && type == PM_TYPE_COUNTER) st = pm_family_opts_set_exemplars(o, 1);
    if (st == PM_OK && unit) st = pm_family_opts_set_unit(o, unit);
    if (st == PM_OK && nl) st = pm_family_opts_set_labels(o, labels, nl);
    if (st == PM_OK && nb) st = pm_family_opts_set_buckets(o, bounds, nb);
    if (st == PM_OK && max_series) st = pm_family_opts_set_max_series(o, max_series);
    if (st == PM_OK) st = pm_family_new(r, type, name, help, o, out);
    pm_family_opts_free(o);
    return st;
}

/* Exemplar contexts: one trace, span id n (keep in step with exemplar() in
 * validate_exposition.py). */
static const pm_trace_context_t *ctx(uint64_t n)
{
    static pm_trace_context_t c = {{0x0a, 0xf7, 0x65, 0x19, 0x16, 0xcd, 0x43, 0xdd, 0x84, 0x48,
                                    0xeb, 0x21, 0x1c, 0x80, 0x31, 0x9c},
                                   {0},
                                   PM_TRACE_FLAG_SAMPLED,
                                   0,
                                   {0}};
    for (int i = 7; i >= 0; i--, n >>= 8) c.span_id[i] = (uint8_t)n;
    return &c;
}

static pm_status_t add_exemplar(pm_family_t *f, const char *const *values, size_t n, double v,
                                uint64_t span)
{
    pm_counter_t *c = NULL;
    pm_status_t st = pm_counter_get(f, values, n, &c);
    pm_counter_add_exemplar(c, v, ctx(span));
    pm_counter_release(c);
    return st;
}

static pm_status_t observe_exemplar(pm_family_t *f, const char *const *values, size_t n, double v,
                                    uint64_t span)
{
    pm_histogram_t *h = NULL;
    pm_status_t st = pm_histogram_get(f, values, n, &h);
    pm_histogram_observe_exemplar(h, v, ctx(span));
    pm_histogram_release(h);
    return st;
}

static double uptime(void *user)
{
    (void)user;
    return 4242.5;
}

static int build(pm_registry_t *r)
{
    pm_family_t *f = NULL;

    /* Counter with three labels and hostile values. */
    static const char *const req_labels[] = {"method", "path", "code"};
    TRY(family(r, PM_TYPE_COUNTER, "app_requests",
               "Requests with \"quotes\", a back\\slash and a\nnewline.", NULL, req_labels, 3, NULL,
               0, 0, &f));
    static const char *const req[][3] = {
        {"GET", "/", "200"},          {"GET", "/a\"b", "404"},
        {"POST", "C:\\dir\\", "500"}, {"PUT", "multi\nline", "201"},
        {"DELETE", "é✓ üñí", "204"},  {"GET", "", "200"},
        {"GET", "{}=,# x", "200"},    {"GET", "\\n is not a newline", "200"},
    };
    for (size_t i = 0; i < sizeof req / sizeof req[0]; i++)
        TRY(add_exemplar(f, req[i], 3, (double)(i + 1) * 10, i + 1));

    /* Counter with a unit, a large integer and a fractional value. */
    static const char *const dir[] = {"direction"};
    TRY(family(r, PM_TYPE_COUNTER, "app_transferred_bytes", "Bytes moved.", "bytes", dir, 1, NULL,
               0, 0, &f));
    static const char *const rx[] = {"rx"}, *const tx[] = {"tx"};
    TRY(pm_counter_add_labeled(f, rx, 1, 1e15));
    TRY(pm_counter_add_labeled(f, tx, 1, 0.125));

    /* Gauges: plain, negative, non-finite. */
    static const char *const sensor[] = {"sensor"};
    TRY(family(r, PM_TYPE_GAUGE, "app_temperature_celsius", "Sensor temperature.", "celsius",
               sensor, 1, NULL, 0, 0, &f));
    static const char *const s1[] = {"inlet"}, *const s2[] = {"outlet"}, *const s3[] = {"broken"},
                             *const s4[] = {"hot"}, *const s5[] = {"cold"};
    TRY(pm_gauge_set_labeled(f, s1, 1, 21.5));
    TRY(pm_gauge_set_labeled(f, s2, 1, -3.25));
    TRY(pm_gauge_set_labeled(f, s3, 1, NAN));
    TRY(pm_gauge_set_labeled(f, s4, 1, INFINITY));
    TRY(pm_gauge_set_labeled(f, s5, 1, -INFINITY));

    /* A gauge family that has no series yet. */
    static const char *const pool[] = {"pool"};
    TRY(family(r, PM_TYPE_GAUGE, "app_idle_workers", "Idle workers per pool.", NULL, pool, 1, NULL,
               0, 0, &f));

    /* Callback gauge. */
    TRY(pm_gauge_callback_new(r, "app_uptime_seconds", "Seconds since start.", uptime, NULL));

    /* Histogram with default buckets and a label. */
    static const char *const route[] = {"route"};
    TRY(family(r, PM_TYPE_HISTOGRAM, "app_latency_seconds", "Request latency.", "seconds", route, 1,
               NULL, 0, 0, &f));
    static const char *const home[] = {"/home"}, *const api[] = {"/api \"v1\""};
    static const double home_obs[] = {0.001953125, 0.0078125, 0.03125, 0.125, 0.5, 2, 8, 32};
    for (size_t i = 0; i < sizeof home_obs / sizeof home_obs[0]; i++)
        TRY(observe_exemplar(f, home, 1, home_obs[i], 101 + i));
    TRY(pm_histogram_observe_labeled(f, api, 1, 0.25));

    /* Histogram with custom buckets, no labels. */
    static const double size_bounds[] = {100, 1000, 1e4, 1e5, 1e6};
    TRY(family(r, PM_TYPE_HISTOGRAM, "app_payload_bytes", "Payload sizes.", "bytes", NULL, 0,
               size_bounds, 5, 0, &f));
    static const double sizes[] = {64, 512, 4096, 65536, 2097152};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        TRY(pm_histogram_observe_labeled(f, NULL, 0, sizes[i]));

    /* Histogram with negative bounds (OpenMetrics forbids its _sum). */
    static const double offs[] = {-1, -0.5, 0, 0.5, 1};
    TRY(family(r, PM_TYPE_HISTOGRAM, "app_clock_offset_seconds", "Clock offset.", "seconds", NULL,
               0, offs, 5, 0, &f));
    TRY(observe_exemplar(f, NULL, 0, -0.75, 201));
    TRY(observe_exemplar(f, NULL, 0, 0.25, 202));

    /* Cardinality limit: 3 series allowed, 6 users recorded. */
    static const char *const user[] = {"user"};
    TRY(family(r, PM_TYPE_COUNTER, "app_logins", "Logins per user.", NULL, user, 1, NULL, 0, 3,
               &f));
    static const char *const users[] = {"ann", "bob", "cid", "dee", "eve", "fay"};
    for (size_t i = 0; i < 6; i++) TRY(add_exemplar(f, &users[i], 1, 1, 301 + i));
    return 0;
}

int main(int argc, char **argv)
{
    pm_format_t fmt;
    if (argc != 2) {
        fprintf(stderr, "usage: dump_exposition prometheus|openmetrics|json\n");
        return 2;
    }
    if (!strcmp(argv[1], "prometheus"))
        fmt = PM_FORMAT_PROMETHEUS;
    else if (!strcmp(argv[1], "openmetrics"))
        fmt = PM_FORMAT_OPENMETRICS;
    else if (!strcmp(argv[1], "json"))
        fmt = PM_FORMAT_JSON;
    else {
        fprintf(stderr, "dump_exposition: unknown format \"%s\"\n", argv[1]);
        return 2;
    }
    pm_registry_t *r = NULL;
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    TRY(pm_registry_new(NULL, &r));
    int rc = build(r);
    if (rc == 0) {
        pm_status_t st = pm_snapshot_new(r, &s);
        if (st == PM_OK) st = pm_buf_new(&b);
        if (st == PM_OK) st = pm_format(s, fmt, b);
        if (st != PM_OK)
            rc = fail("format", st);
        else if (fwrite(pm_buf_data(b), 1, pm_buf_len(b), stdout) != pm_buf_len(b) ||
                 fflush(stdout) != 0)
            rc = 1;
    }
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
    return rc;
}
