/* libperfmetrics — the embedded HTTP/1.1 endpoint: /metrics for Prometheus,
 * JSON APIs over snapshots, alerts and traces, and a live dashboard page.
 *
 * The server runs on its own threads (each an event loop over non-blocking
 * sockets, so a slow client never holds another one up). It reads only
 * snapshots, alert lists and trace lists: serving never blocks a recording
 * thread. Nothing is read from or written to the file system.
 *
 * Endpoints (GET and HEAD only; any other method gets 405):
 *   /metrics          Prometheus text 0.0.4 or OpenMetrics 1.0 by the Accept
 *                     header; gzip when the client accepts it (zlib builds)
 *   /health           JSON status and health score; 200, or 503 when unhealthy
 *   /api/v1/info      JSON: title, version, uptime, what is attached, charts
 *   /api/v1/metrics   JSON snapshot (doc/formats.md); ?prefix=NAME (repeatable)
 *   /api/v1/alerts    JSON: health score, active alerts and the history
 *   /api/v1/traces    JSON: operations, slowest, error and recent traces;
 *                     ?id=<32 hex> gives one trace with its spans
 *   /                 the dashboard (one self-contained HTML page)
 * doc/server.md has every response schema, the limits and the security model. */
#ifndef PERFMETRICS_SERVER_H
#define PERFMETRICS_SERVER_H

#include <perfmetrics/alerts.h>
#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>
#include <perfmetrics/spans.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_server pm_server_t;
typedef struct pm_server_opts pm_server_opts_t;

/* Creates server options with the defaults: address 127.0.0.1, port 9464,
 * 2 threads, no token, request line <= 8 KiB, request head <= 16 KiB and
 * <= 100 header fields, 64 connections, read timeout 10 s, write timeout
 * 10 s, keep-alive idle timeout 60 s, gzip on (when built with zlib),
 * dashboard on, title "libperfmetrics", health threshold 50, 4096 recent
 * spans kept for /api/v1/traces. Release with pm_server_opts_free.
 * Errors: PM_EINVAL (out NULL), PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_server_opts_new(pm_server_opts_t **out);
/* Frees; NULL is a no-op. */
PM_API void pm_server_opts_free(pm_server_opts_t *o);

/* Address to listen on: a numeric IPv4 or IPv6 address ("127.0.0.1", "::1",
 * "0.0.0.0", "::") or "localhost" (127.0.0.1), copied; port 0..65535, where
 * 0 lets the kernel pick a free port (pm_server_port tells which).
 * Errors: PM_EINVAL (NULL), PM_EPARSE (host is not a numeric address or
 * "localhost"; no name resolution is done), PM_ERANGE (port). */
PM_API pm_status_t pm_server_opts_set_address(pm_server_opts_t *o, const char *host, int port);

/* Requires `Authorization: Bearer <token>` on every endpoint but the
 * dashboard page itself (a static page that holds no data; it asks for the
 * token and sends it with its own requests). The token is copied and
 * compared in constant time; a request without it, or with another one,
 * gets 401. NULL or "" removes the requirement. A token is 1..1024 bytes of
 * the RFC 6750 token68 alphabet (A-Z a-z 0-9 - . _ ~ + / and trailing =).
 * Errors: PM_EINVAL (o NULL), PM_EPARSE (bad characters), PM_ERANGE (too
 * long), PM_ENOMEM. */
PM_API pm_status_t pm_server_opts_set_token(pm_server_opts_t *o, const char *token);

/* Limits: longest request line (bytes, CRLF excluded; 256..1048576; longer
 * gets 414), largest request head after the request line (bytes; 512..1048576;
 * larger gets 431), most header fields (1..10000; more gets 431), most open
 * connections (1..65536; beyond it a connection gets 503 and is closed).
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_server_opts_set_limits(pm_server_opts_t *o, size_t max_request_line,
                                             size_t max_head_bytes, size_t max_headers,
                                             size_t max_connections);

/* Timeouts in seconds (each 0.01..3600): `read` bounds the time from a
 * request's first byte to its last (a client that is slower gets 408 and is
 * closed), `write` the time a client may take to read a response, `idle`
 * the time a keep-alive connection may wait for its next request.
 * Errors: PM_EINVAL, PM_ERANGE (also NaN). */
PM_API pm_status_t pm_server_opts_set_timeouts(pm_server_opts_t *o, double read, double write,
                                               double idle);

/* Number of server threads (event loops), 1..64. Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_server_opts_set_threads(pm_server_opts_t *o, unsigned n);

/* The tracer behind /api/v1/traces (NULL detaches). The server registers a
 * span exporter on it while it runs, to keep the last `recent_spans` spans
 * (pm_server_opts_set_recent_spans), and removes it when freed. The tracer
 * must outlive the server. Errors: PM_EINVAL. */
PM_API pm_status_t pm_server_opts_set_tracer(pm_server_opts_t *o, pm_tracer_t *t);
/* Spans the server keeps for "recent" traces and for ?id= (0..1048576;
 * 0 keeps none: only the tracer's slowest and error traces are shown).
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_server_opts_set_recent_spans(pm_server_opts_t *o, size_t n);

/* The alert engine behind /api/v1/alerts and the health score of /health
 * (NULL detaches; the score is then 100). It must outlive the server.
 * Errors: PM_EINVAL. */
PM_API pm_status_t pm_server_opts_set_alert_engine(pm_server_opts_t *o, pm_alert_engine_t *e);

/* /health answers 503 ("unhealthy") when the health score is below
 * min_score (0..100), else 200 ("healthy" at 100, "degraded" below).
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_server_opts_set_health_threshold(pm_server_opts_t *o, double min_score);

/* gzip responses for clients that send Accept-Encoding: gzip (default on;
 * without zlib it has no effect). Errors: PM_EINVAL. */
PM_API pm_status_t pm_server_opts_set_gzip(pm_server_opts_t *o, int enabled);

/* Serve the dashboard at / (default on; off gives 404 there).
 * Errors: PM_EINVAL. */
PM_API pm_status_t pm_server_opts_set_dashboard(pm_server_opts_t *o, int enabled);

/* The dashboard's title (copied, UTF-8, at most 256 bytes).
 * Errors: PM_EINVAL, PM_EUTF8, PM_ERANGE, PM_ENOMEM. */
PM_API pm_status_t pm_server_opts_set_title(pm_server_opts_t *o, const char *title);

/* Adds a metric family name the dashboard charts over time when it opens
 * (the page lets the viewer add and remove charts as well; these are the
 * defaults). Copied; at most 64 charts. Counters are drawn as a rate per
 * second, gauges as their value, histograms as p50/p95/p99 per interval.
 * Errors: PM_EINVAL, PM_EBADNAME (not a metric name), PM_ERANGE (too many),
 * PM_ENOMEM. */
PM_API pm_status_t pm_server_opts_add_chart(pm_server_opts_t *o, const char *family);

/* Binds, listens and starts the server's threads; the server reads r (and
 * the tracer and alert engine set in opts), which must outlive it. opts may
 * be NULL (defaults) and is only read during the call. On success the server
 * also records its own perfmetrics_http_* families in r (doc/server.md).
 * Errors: PM_EINVAL, PM_EIO (socket, bind or listen failed: address in use,
 * not local, permission), PM_ENOMEM, PM_ETHREAD, or the tracer's errors
 * when its exporter cannot be added. Nothing is left running on failure.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_server_new(pm_registry_t *r, const pm_server_opts_t *opts, pm_server_t **out);

/* Stops accepting, closes every connection (a response being written is cut
 * short), joins the threads, removes the span exporter and frees the server.
 * NULL is a no-op. Thread-safety: any thread but the server's own; not
 * concurrently with any other call on s. */
PM_API void pm_server_free(pm_server_t *s);

/* The port the server listens on (the chosen one when 0 was asked for);
 * -1 for NULL. Thread-safety: any thread, lock-free. */
PM_API int pm_server_port(const pm_server_t *s);

/* Writes the dashboard URL, "http://HOST:PORT/" (IPv6 in brackets; a
 * wildcard address as 127.0.0.1 or [::1]), NUL-terminated, into buf.
 * Errors: PM_EINVAL (NULL), PM_ERANGE (size too small; buf gets ""). */
PM_API pm_status_t pm_server_url(const pm_server_t *s, char *buf, size_t size);

typedef enum pm_server_stat {
    PM_SERVER_STAT_CONNECTIONS = 1, /* connections accepted */
    PM_SERVER_STAT_OPEN = 2,        /* connections open now */
    PM_SERVER_STAT_REJECTED = 3,    /* connections refused at the cap (503) */
    PM_SERVER_STAT_REQUESTS = 4,    /* requests answered (any status) */
    PM_SERVER_STAT_2XX = 5,         /* responses by class */
    PM_SERVER_STAT_4XX = 6,
    PM_SERVER_STAT_5XX = 7,
    PM_SERVER_STAT_TIMEOUTS = 8,     /* connections closed by a read, write or idle timeout */
    PM_SERVER_STAT_BYTES_IN = 9,     /* bytes received */
    PM_SERVER_STAT_BYTES_OUT = 10,   /* bytes sent */
    PM_SERVER_STAT_SCRAPES = 11,     /* /metrics answered with 200 */
    PM_SERVER_STAT_UNAUTHORIZED = 12 /* requests answered with 401 */
} pm_server_stat_t;

/* One of the counters above; 0 for NULL or an unknown stat.
 * Thread-safety: any thread, lock-free. */
PM_API uint64_t pm_server_stat(const pm_server_t *s, pm_server_stat_t which);

#ifdef __cplusplus
}
#endif
#endif
