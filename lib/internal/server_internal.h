/* Private to the embedded server: the server object shared by its event
 * loops (lib/server.c), its routes (lib/server_api.c), its recent-span keeper
 * (lib/server_spans.c) and the embedded dashboard (lib/dashboard.c, made from
 * lib/dashboard.html at build time). Never installed. */
#ifndef PM_SERVER_INTERNAL_H
#define PM_SERVER_INTERNAL_H

#include "internal/format_internal.h"
#include "internal/http_internal.h"

#include <perfmetrics/collector.h>
#include <perfmetrics/server.h>

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* ---- recent spans (server_spans.c) ---- */
typedef struct pm__spankeep pm__spankeep_t;
/* A keeper of the last `cap` spans (0: keeps none), one reference. */
pm_status_t pm__spankeep_new(size_t cap, pm__spankeep_t **out);
pm__spankeep_t *pm__spankeep_ref(pm__spankeep_t *k);
/* Drops a reference (a pm_release_fn, for the tracer's side). */
void pm__spankeep_release(void *user);
/* The span exporter (a pm_span_export_fn). */
pm_status_t pm__spankeep_export(const pm_span_batch_t *b, void *user);
/* JSON array of the newest `max` traces among the kept spans (doc/server.md, RECENT). */
void pm__spankeep_write_recent(pm__spankeep_t *k, pm__writer_t *w, size_t max);
/* JSON array of trace id's kept spans in start order; returns how many. */
size_t pm__spankeep_write_trace(pm__spankeep_t *k, const uint8_t id[16], pm__writer_t *w);
/* `"<hex>"`: n bytes of an id as lower-case hex, quoted. */
void pm__w_hex_id(pm__writer_t *w, const uint8_t *id, size_t n);

/* ---- the dashboard page (dashboard.c, generated) ---- */
extern const unsigned char pm__dashboard_html[];
extern const size_t pm__dashboard_html_len;

/* ---- routes and their counters ---- */
enum {
    PM__H_METRICS,
    PM__H_HEALTH,
    PM__H_INFO,
    PM__H_API_METRICS,
    PM__H_ALERTS,
    PM__H_TRACES,
    PM__H_DASHBOARD,
    PM__H_OTHER, /* unknown paths and requests refused before routing */
    PM__H_COUNT
};
/* Status codes counted per handler, in this order; the last slot is "other". */
#define PM__CODES(XX)                                                                              \
    XX(200)                                                                                        \
    XX(400) XX(401) XX(404) XX(405) XX(408) XX(413) XX(414) XX(421) XX(431) XX(500) XX(501)        \
        XX(503) XX(505)
#define PM__NCODES 15

/* What a route produced; the loop turns it into the bytes on the wire. */
typedef struct pm__reply {
    int status;
    int handler;              /* PM__H_* */
    const char *content_type; /* static */
    pm_buf_t *body;           /* the connection's, filled by the route */
    char headers[256];        /* extra header lines, each ending in CRLF */
    size_t headers_len;
    int compressible; /* may be gzipped when the client accepts it */
    int close;        /* close the connection after this response */
} pm__reply_t;

typedef struct pm__loop pm__loop_t;

struct pm_server {
    pm_registry_t *reg;
    pm_tracer_t *tracer;
    pm_alert_engine_t *engine;
    pm__spankeep_t *spans; /* NULL without a tracer */
    char exporter_name[64];
    int exporter_added;

    char *token;
    size_t token_len;
    char *title;
    char **charts;
    size_t ncharts;
    pm__http_limits_t lim;
    size_t max_conns;
    double t_read, t_write, t_idle;
    int gzip, dashboard;
    double health_min;

    int listen_fd;
    int port;
    int loopback; /* bound to a loopback address: Host must be local */
    char url[96];
    double start_time; /* Unix seconds */

    unsigned nloops;
    pm__loop_t *loops;
    atomic_int stop;
    atomic_int open;
    _Atomic uint64_t stat[13]; /* by pm_server_stat_t */
    _Atomic uint64_t codes[PM__H_COUNT][PM__NCODES];
    pm_histogram_t *h_duration[PM__H_COUNT];
    pm_collector_t *coll;
};

/* Routes one parsed request (server_api.c). rep->body is empty on entry. */
void pm__server_route(pm_server_t *s, const pm__http_request_t *req, pm__reply_t *rep);
/* The JSON error body {"error":"<reason>","status":N} plus a line feed, into
 * buf; returns its length (0 if it does not fit). */
size_t pm__server_error_text(int status, char *buf, size_t size);
/* Fills rep with an error response with a JSON body (server_api.c). */
void pm__server_error(pm__reply_t *rep, int status, int close);
/* Counts a response (server.c): stats, per-handler codes. */
void pm__server_count(pm_server_t *s, int handler, int status);
/* The handler names used as label values (server_api.c). */
extern const char *const pm__server_handler_names[PM__H_COUNT];

#endif
