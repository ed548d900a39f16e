/* libperfmetrics — pushing to the engines operators run: a Prometheus
 * Pushgateway, Prometheus remote-write receivers (Prometheus, Thanos, Mimir,
 * Cortex), OpenTelemetry collectors (OTLP/HTTP), StatsD and DogStatsD
 * agents, and Alertmanager for alerts (symbol node PERFMETRICS_1.6).
 *
 * Model. A push destination (pm_push_t) is one target and one built-in
 * exporter: metric destinations register an exporter on their registry
 * (perfmetrics/export.h), the OTLP trace destination a span exporter on its
 * tracer, the Alertmanager destination a notifier on its alert engine. The
 * exporter only encodes the snapshot (or batch, or events) and queues the
 * payload: it never waits for the network. Each HTTP destination has its
 * own sender thread, a bounded queue (oldest payload dropped when full,
 * counted), timeouts, and retries with exponential backoff and full jitter
 * for connection failures, timeouts, 5xx and 429 (Retry-After honoured, up to
 * the backoff cap); other 4xx answers are not retried (counted as rejected).
 * Recording never touches any of it.
 *
 * Transport: HTTP/1.1 over plain TCP (http:// URLs only; TLS is out of scope:
 * point a destination at a local agent or collector that forwards with TLS),
 * and UDP for StatsD. URLs: http://host[:port][/path], host a name or an IPv4
 * or bracketed IPv6 address, resolved when the destination is created.
 *
 * Metric destinations report themselves in their registry's self-metrics
 * (when on), and every destination through pm_push_stat:
 *   perfmetrics_push_payloads_total{push,outcome="sent|rejected|dropped"}
 *   perfmetrics_push_attempts_total{push,result="ok|error|timeout|http_5xx|http_429|http_4xx"}
 *   perfmetrics_push_queue_payloads{push}, perfmetrics_push_sent_bytes_total{push}
 * See doc/push.md. */
#ifndef PERFMETRICS_PUSH_H
#define PERFMETRICS_PUSH_H

#include <perfmetrics/alerts.h>
#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>
#include <perfmetrics/spans.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_push_opts pm_push_opts_t;
typedef struct pm_push pm_push_t;

/* ---------------------------------------------------------------- options */

/* Creates destination options holding the defaults below. Release with
 * pm_push_opts_free. Errors: PM_EINVAL, PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_push_opts_new(pm_push_opts_t **out);

/* NULL is a no-op. */
PM_API void pm_push_opts_free(pm_push_opts_t *o);

/* Name of the destination: its exporter's (or notifier's) name and the `push`
 * label of its self-metrics [the kind: "pushgateway", "remote_write",
 * "otlp_metrics", "otlp_traces", "statsd", "alertmanager"]. Label-value text.
 * Errors: PM_EINVAL, PM_EUTF8, PM_ENOMEM. */
PM_API pm_status_t pm_push_opts_set_name(pm_push_opts_t *o, const char *name);

/* Timeout of each step of a request (connect, send, each read) and deadline
 * of the whole request, in seconds [2, 10]; 0 < step <= whole <= 3600.
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_push_opts_set_timeouts(pm_push_opts_t *o, double step_s, double whole_s);

/* Retries: attempts per payload (1 = no retry) [4], first backoff and cap in
 * seconds [0.5, 30]; attempt k waits a uniform random time in
 * [0, min(cap, first * 2^(k-1))]. Errors: PM_EINVAL, PM_ERANGE (attempts 0
 * or over 100, first <= 0, cap < first, cap over 86400). */
PM_API pm_status_t pm_push_opts_set_retry(pm_push_opts_t *o, unsigned attempts, double first_s,
                                          double cap_s);

/* Queue bounds: payloads and bytes [16, 64 MiB], both >= 1. A payload that
 * would pass either bound drops the oldest queued ones (counted); one larger
 * than the byte bound alone is dropped itself. Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_push_opts_set_queue(pm_push_opts_t *o, size_t payloads, size_t bytes);

/* Adds an HTTP header sent with every request (e.g. "Authorization",
 * "X-Scope-OrgID"); name a token, value printable ASCII, both copied. The
 * library's own headers (Host, Content-Type, Content-Length,
 * Content-Encoding, Connection, User-Agent and the protocol's) cannot be
 * set. Errors: PM_EINVAL, PM_EEXIST (reserved or already added), PM_ENOMEM. */
PM_API pm_status_t pm_push_opts_add_header(pm_push_opts_t *o, const char *name, const char *value);

/* Adds a label to everything the destination sends: a label on every
 * remote-write series, a resource attribute for OTLP, a tag for StatsD, a
 * grouping label for the Pushgateway. Name and value checked as label name
 * and value text. Errors: PM_EINVAL, PM_EBADLABEL, PM_EUTF8, PM_EEXIST (name
 * given twice), PM_ENOMEM. */
PM_API pm_status_t pm_push_opts_add_label(pm_push_opts_t *o, const char *name, const char *value);

/* Restricts a metric destination to the families whose name starts with one
 * of the prefixes added (none added: every family). Errors: PM_EINVAL,
 * PM_ENOMEM. */
PM_API pm_status_t pm_push_opts_add_prefix(pm_push_opts_t *o, const char *prefix);

/* gzip request bodies (Pushgateway and OTLP; zlib builds) [0].
 * Errors: PM_EINVAL, PM_EUNSUPPORTED (built without zlib, enabled != 0). */
PM_API pm_status_t pm_push_opts_set_gzip(pm_push_opts_t *o, int enabled);

/* ---------------------------------------------------------------- destinations */

/* Pushgateway at `url` (its base, e.g. http://127.0.0.1:9091), group
 * /metrics/job/<job> plus the labels added with pm_push_opts_add_label
 * (values path-encoded, base64 where needed). Every export PUTs the
 * snapshot's families (prefix-filtered) in the Prometheus text format,
 * replacing the group; with `merge` != 0 it POSTs instead (replacing only
 * the families sent). Errors: PM_EINVAL (NULL, bad URL), PM_EUTF8 (job),
 * PM_EEXIST (exporter name taken), PM_EIO (host not resolved), PM_ETHREAD,
 * PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_push_pushgateway_new(pm_registry_t *r, const char *url, const char *job,
                                           int merge, const pm_push_opts_t *o, pm_push_t **out);

/* Queues a DELETE of the destination's group (e.g. at the end of a batch
 * job). Errors: PM_EINVAL (not a Pushgateway destination), PM_ENOMEM. */
PM_API pm_status_t pm_push_pushgateway_delete(pm_push_t *p);

/* Prometheus remote-write 1.0 to `url` (e.g.
 * http://127.0.0.1:9090/api/v1/write): each export sends one WriteRequest
 * (protobuf, Snappy block format) with a sample per series at the
 * snapshot's time; histograms as their _bucket{le}, _sum and _count series,
 * counters with _total, labels sorted, the destination's labels added.
 * Errors: as pm_push_pushgateway_new. */
PM_API pm_status_t pm_push_remote_write_new(pm_registry_t *r, const char *url,
                                            const pm_push_opts_t *o, pm_push_t **out);

/* OTLP/HTTP metrics to `url` (e.g. http://127.0.0.1:4318/v1/metrics), JSON
 * encoding: cumulative sums for counters, gauges, explicit-bucket
 * histograms (count, sum, min, max, bucket counts and bounds), with the
 * destination's labels as resource attributes (service.name defaults to
 * "perfmetrics" unless added). Errors: as pm_push_pushgateway_new. */
PM_API pm_status_t pm_push_otlp_metrics_new(pm_registry_t *r, const char *url,
                                            const pm_push_opts_t *o, pm_push_t **out);

/* OTLP/HTTP traces to `url` (e.g. http://127.0.0.1:4318/v1/traces): a span
 * exporter on tracer t sending each batch as pm_span_batch_format's
 * PM_SPAN_FORMAT_OTLP_JSON body, with the destination's labels added as
 * resource attributes.
 * Errors: as pm_push_pushgateway_new. */
PM_API pm_status_t pm_push_otlp_traces_new(pm_tracer_t *t, const char *url,
                                           const pm_push_opts_t *o, pm_push_t **out);

/* StatsD flavours. */
typedef enum pm_statsd_flavor {
    PM_STATSD_PLAIN = 0,    /* labels become name segments: name.value1.value2 */
    PM_STATSD_DOGSTATSD = 1 /* labels become tags: name:v|c|#label:value,... */
} pm_statsd_flavor_t;

/* StatsD over UDP to `host_port` (e.g. "127.0.0.1:8125"), aggregated on this
 * side: each export sends, per series, the counter's increase since the
 * previous export (|c, skipped when 0), the gauge's value (|g), and for a
 * histogram the increase of its count and sum (|c, as <name>.count and
 * <name>.sum) and its p50, p90, p99 and max over the whole series (|g).
 * Lines are packed into datagrams of at most 1432 bytes. A send that fails
 * (no listener: ECONNREFUSED) is counted, never retried, never blocks.
 * Errors: PM_EINVAL, PM_EIO (bad address), PM_EEXIST, PM_ENOMEM. */
PM_API pm_status_t pm_push_statsd_new(pm_registry_t *r, const char *host_port,
                                      pm_statsd_flavor_t flavor, const pm_push_opts_t *o,
                                      pm_push_t **out);

/* Alertmanager notifier on engine e, posting to `url` (its base, e.g.
 * http://127.0.0.1:9093) /api/v2/alerts: each firing or resolved event
 * passing `filter` (NULL: all) as pm_alert_format_alertmanager's body, and
 * every `resend_s` seconds (> 0; Alertmanager's own guidance is well under
 * its resolve_timeout, e.g. 60) all active firing instances again, so
 * Alertmanager keeps them firing. Resolved alerts carry endsAt.
 * `generator_url` may be NULL. Errors: as pm_push_pushgateway_new, and as
 * pm_alert_engine_add_notifier. */
PM_API pm_status_t pm_push_alertmanager_new(pm_alert_engine_t *e, const char *url,
                                            const pm_alert_filter_t *filter, double resend_s,
                                            const char *generator_url, const pm_push_opts_t *o,
                                            pm_push_t **out);

/* ---------------------------------------------------------------- running */

typedef enum pm_push_stat {
    PM_PUSH_STAT_QUEUED = 0,   /* payloads queued */
    PM_PUSH_STAT_SENT = 1,     /* payloads delivered (2xx; StatsD: datagrams sent) */
    PM_PUSH_STAT_REJECTED = 2, /* payloads answered with a 4xx other than 429 (or a 3xx) */
    PM_PUSH_STAT_DROPPED = 3,  /* payloads dropped: queue full, or attempts used up */
    PM_PUSH_STAT_ATTEMPTS = 4, /* requests made (first tries and retries) */
    PM_PUSH_STAT_FAILED = 5,   /* attempts that failed (connect, timeout, 5xx, 429, torn answer) */
    PM_PUSH_STAT_BYTES = 6,    /* body bytes delivered */
    PM_PUSH_STAT_QUEUE = 7     /* payloads queued now */
} pm_push_stat_t;

/* One counter of p into *value. Errors: PM_EINVAL (NULL, unknown stat).
 * Thread-safety: any thread. */
PM_API pm_status_t pm_push_stat(const pm_push_t *p, pm_push_stat_t which, uint64_t *value);

/* Waits until p's queue is empty and no request is in flight, at most
 * timeout_s seconds (>= 0). Errors: PM_EINVAL, PM_ETIMEDOUT. Thread-safety: any
 * thread but p's own exporter. */
PM_API pm_status_t pm_push_flush(pm_push_t *p, double timeout_s);

/* Unregisters p's exporter (or notifier), lets its queue drain for at most
 * the whole-request timeout, stops its thread and frees it; payloads left are
 * counted as dropped. NULL is a no-op. Must be called before the registry,
 * tracer or engine it was made for is freed. Thread-safety: any thread but
 * p's own exporter. */
PM_API void pm_push_free(pm_push_t *p);

#ifdef __cplusplus
}
#endif

#endif
