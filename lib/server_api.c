/* The server's routes: what each path answers (doc/server.md has every
 * schema). Routes read snapshots, alert lists and trace lists only, and
 * write their bodies through the formatters' writer into the connection's
 * buffer; the event loop (server.c) frames them. */
#include "internal/pm_internal.h"
#include "internal/server_internal.h"

#include <perfmetrics/snapshot.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *const pm__server_handler_names[PM__H_COUNT] = {
    "metrics", "health", "info", "api_metrics", "alerts", "traces", "dashboard", "other"};

static void add_header(pm__reply_t *rep, const char *line)
{
    size_t n = strlen(line);
    if (rep->headers_len + n + 2 >= sizeof rep->headers) return; /* fixed texts only: never */
    memcpy(rep->headers + rep->headers_len, line, n);
    memcpy(rep->headers + rep->headers_len + n, "\r\n", 2);
    rep->headers_len += n + 2;
}

static const char json_type[] = "application/json";

size_t pm__server_error_text(int status, char *buf, size_t size)
{
    int n =
        snprintf(buf, size, "{\"error\":\"%s\",\"status\":%d}\n", pm__http_reason(status), status);
    return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

void pm__server_error(pm__reply_t *rep, int status, int close)
{
    rep->status = status;
    rep->content_type = json_type;
    rep->close = rep->close || close;
    rep->compressible = 0;
    pm_buf_reset(rep->body);
    char text[96];
    size_t n = pm__server_error_text(status, text, sizeof text);
    if (pm_buf_append(rep->body, text, n) != PM_OK) pm_buf_reset(rep->body);
}

/* Starts a JSON body: a writer over rep->body. */
static int json_begin(pm__reply_t *rep, pm__writer_t *w)
{
    rep->status = 200;
    rep->content_type = json_type;
    rep->compressible = 1;
    return pm__writer_init_buf(w, rep->body) == PM_OK;
}

static void json_end(pm__reply_t *rep, pm__writer_t *w)
{
    pm__w_char(w, '\n');
    int status = rep->status;
    if (pm__writer_finish(w) != PM_OK)
        pm__server_error(rep, 500, 0);
    else
        rep->status = status;
}

/* ---------------------------------------------------------------- /metrics */

static void route_metrics(pm_server_t *s, const pm__http_request_t *req, pm__reply_t *rep)
{
    pm_format_t fmt = pm__http_accept_format(req);
    size_t pos = 0, nl, vl;
    const char *n, *v;
    while (pm__query_next(req->query, req->query_len, &pos, &n, &nl, &v, &vl)) {
        if (nl != 6 || memcmp(n, "format", 6)) continue;
        if (pm__http_ieq(v, vl, "openmetrics"))
            fmt = PM_FORMAT_OPENMETRICS;
        else if (pm__http_ieq(v, vl, "prometheus") || pm__http_ieq(v, vl, "text"))
            fmt = PM_FORMAT_PROMETHEUS;
        else {
            pm__server_error(rep, 400, 0);
            return;
        }
    }
    pm_snapshot_t *snap;
    pm_status_t st = pm_snapshot_new(s->reg, &snap);
    if (st != PM_OK) {
        pm__server_error(rep, 503, 0);
        return;
    }
    st = pm_format(snap, fmt, rep->body);
    pm_snapshot_release(snap);
    if (st != PM_OK) {
        pm__server_error(rep, 500, 0);
        return;
    }
    rep->status = 200;
    rep->content_type = pm_format_content_type(fmt);
    rep->compressible = 1;
    add_header(rep, "Vary: Accept, Accept-Encoding");
}

/* ---------------------------------------------------------------- /health */

typedef struct alert_counts {
    size_t critical, warning, info, pending;
} alert_counts;

static void count_active(pm_server_t *s, alert_counts *c)
{
    memset(c, 0, sizeof *c);
    pm_alert_list_t *l;
    if (!s->engine || pm_alert_engine_active(s->engine, &l) != PM_OK) return;
    for (size_t i = 0; i < pm_alert_list_count(l); i++) {
        const pm_alert_event_t *ev = pm_alert_list_get(l, i);
        if (pm_alert_event_state(ev) == PM_ALERT_PENDING) {
            c->pending++;
            continue;
        }
        if (pm_alert_event_state(ev) != PM_ALERT_FIRING) continue;
        switch (pm_alert_event_severity(ev)) {
        case PM_SEVERITY_CRITICAL:
            c->critical++;
            break;
        case PM_SEVERITY_WARNING:
            c->warning++;
            break;
        default:
            c->info++;
        }
    }
    pm_alert_list_free(l);
}

static double health_score(pm_server_t *s)
{
    double h = s->engine ? pm_alert_engine_health(s->engine) : 100.0;
    return isnan(h) ? 100.0 : h;
}

static void route_health(pm_server_t *s, pm__reply_t *rep)
{
    pm__writer_t w;
    if (!json_begin(rep, &w)) {
        pm__server_error(rep, 500, 0);
        return;
    }
    double score = health_score(s);
    alert_counts c;
    count_active(s, &c);
    const char *status = score < s->health_min ? "unhealthy" : score < 100 ? "degraded" : "healthy";
    PM__W_LIT(&w, "{\"status\":\"");
    pm__w_str(&w, status);
    PM__W_LIT(&w, "\",\"health_score\":");
    pm__w_json_number(&w, score);
    PM__W_LIT(&w, ",\"firing\":{\"critical\":");
    pm__w_u64(&w, c.critical);
    PM__W_LIT(&w, ",\"warning\":");
    pm__w_u64(&w, c.warning);
    PM__W_LIT(&w, ",\"info\":");
    pm__w_u64(&w, c.info);
    PM__W_LIT(&w, "},\"pending\":");
    pm__w_u64(&w, c.pending);
    PM__W_LIT(&w, ",\"uptime_seconds\":");
    pm__w_json_number(&w, pm__wall_now() - s->start_time);
    PM__W_LIT(&w, ",\"version\":");
    pm__w_json_string(&w, pm_version_string());
    pm__w_char(&w, '}');
    json_end(rep, &w);
    if (rep->status == 200 && score < s->health_min) rep->status = 503;
}

/* ---------------------------------------------------------------- /api/v1/info */

static void route_info(pm_server_t *s, pm__reply_t *rep)
{
    pm__writer_t w;
    if (!json_begin(rep, &w)) {
        pm__server_error(rep, 500, 0);
        return;
    }
    double now = pm__wall_now();
    PM__W_LIT(&w, "{\"title\":");
    pm__w_json_string(&w, s->title);
    PM__W_LIT(&w, ",\"version\":");
    pm__w_json_string(&w, pm_version_string());
    PM__W_LIT(&w, ",\"start_time\":");
    pm__w_json_number(&w, s->start_time);
    PM__W_LIT(&w, ",\"now\":");
    pm__w_json_number(&w, now);
    PM__W_LIT(&w, ",\"uptime_seconds\":");
    pm__w_json_number(&w, now - s->start_time);
    PM__W_LIT(&w, ",\"refresh_seconds\":2,\"alerts\":");
    if (s->engine)
        PM__W_LIT(&w, "true");
    else
        PM__W_LIT(&w, "false");
    PM__W_LIT(&w, ",\"traces\":");
    if (s->tracer)
        PM__W_LIT(&w, "true");
    else
        PM__W_LIT(&w, "false");
    PM__W_LIT(&w, ",\"charts\":[");
    for (size_t i = 0; i < s->ncharts; i++) {
        if (i) pm__w_char(&w, ',');
        pm__w_json_string(&w, s->charts[i]);
    }
    PM__W_LIT(&w, "]}");
    json_end(rep, &w);
}

/* ---------------------------------------------------------------- /api/v1/metrics */

#define PM__MAX_PREFIXES 16
#define PM__MAX_PREFIX 256

typedef struct prefixes {
    char text[PM__MAX_PREFIXES][PM__MAX_PREFIX];
    size_t n;
} prefixes;

static int keep_family(const char *family, void *user)
{
    const prefixes *p = user;
    for (size_t i = 0; i < p->n; i++)
        if (!strncmp(family, p->text[i], strlen(p->text[i]))) return 1;
    return 0;
}

static void route_api_metrics(pm_server_t *s, const pm__http_request_t *req, pm__reply_t *rep)
{
    prefixes p;
    p.n = 0;
    size_t pos = 0, nl, vl;
    const char *n, *v;
    while (pm__query_next(req->query, req->query_len, &pos, &n, &nl, &v, &vl)) {
        if (nl != 6 || memcmp(n, "prefix", 6)) continue;
        if (p.n == PM__MAX_PREFIXES || pm__query_decode(v, vl, p.text[p.n], PM__MAX_PREFIX) < 0) {
            pm__server_error(rep, 400, 0);
            return;
        }
        p.n++;
    }
    pm_snapshot_t *snap;
    if (pm_snapshot_new(s->reg, &snap) != PM_OK) {
        pm__server_error(rep, 503, 0);
        return;
    }
    pm__writer_t w;
    if (!json_begin(rep, &w)) {
        pm_snapshot_release(snap);
        {
            pm__server_error(rep, 500, 0);
            return;
        }
    }
    pm__format_json_filtered(snap, &w, p.n ? keep_family : NULL, &p);
    pm_snapshot_release(snap);
    if (pm__writer_finish(&w) != PM_OK) pm__server_error(rep, 500, 0);
}

/* ---------------------------------------------------------------- /api/v1/alerts */

static void w_event(pm__writer_t *w, const pm_alert_event_t *ev)
{
    PM__W_LIT(w, "{\"rule\":");
    pm__w_json_string(w, pm_alert_event_rule(ev));
    PM__W_LIT(w, ",\"state\":\"");
    pm__w_str(w, pm_alert_state_name(pm_alert_event_state(ev)));
    PM__W_LIT(w, "\",\"prev_state\":\"");
    pm__w_str(w, pm_alert_state_name(pm_alert_event_prev_state(ev)));
    PM__W_LIT(w, "\",\"severity\":\"");
    pm__w_str(w, pm_severity_name(pm_alert_event_severity(ev)));
    PM__W_LIT(w, "\",\"value\":");
    pm__w_json_number(w, pm_alert_event_value(ev));
    PM__W_LIT(w, ",\"time\":");
    pm__w_json_number(w, pm_alert_event_time(ev));
    PM__W_LIT(w, ",\"active_at\":");
    pm__w_json_number(w, pm_alert_event_active_at(ev));
    PM__W_LIT(w, ",\"starts_at\":");
    pm__w_json_number(w, pm_alert_event_starts_at(ev));
    PM__W_LIT(w, ",\"ends_at\":");
    pm__w_json_number(w, pm_alert_event_ends_at(ev));
    uint64_t fp = pm_alert_event_fingerprint(ev);
    uint8_t fpb[8];
    for (int i = 0; i < 8; i++) fpb[i] = (uint8_t)(fp >> (56 - 8 * i));
    PM__W_LIT(w, ",\"fingerprint\":");
    pm__w_hex_id(w, fpb, 8);
    PM__W_LIT(w, ",\"labels\":{");
    for (size_t i = 0; i < pm_alert_event_label_count(ev); i++) {
        if (i) pm__w_char(w, ',');
        pm__w_json_string(w, pm_alert_event_label_name(ev, i));
        pm__w_char(w, ':');
        pm__w_json_string(w, pm_alert_event_label_value(ev, i));
    }
    PM__W_LIT(w, "},\"annotations\":{");
    for (size_t i = 0; i < pm_alert_event_annotation_count(ev); i++) {
        if (i) pm__w_char(w, ',');
        pm__w_json_string(w, pm_alert_event_annotation_name(ev, i));
        pm__w_char(w, ':');
        pm__w_json_string(w, pm_alert_event_annotation_value(ev, i));
    }
    PM__W_LIT(w, "}}");
}

static void w_events(pm__writer_t *w, const pm_alert_list_t *l)
{
    pm__w_char(w, '[');
    for (size_t i = 0; i < pm_alert_list_count(l); i++) {
        if (i) pm__w_char(w, ',');
        pm__w_char(w, '\n');
        w_event(w, pm_alert_list_get(l, i));
    }
    pm__w_char(w, ']');
}

static void route_alerts(pm_server_t *s, pm__reply_t *rep)
{
    pm_alert_list_t *active = NULL, *history = NULL;
    if (s->engine && (pm_alert_engine_active(s->engine, &active) != PM_OK ||
                      pm_alert_engine_history(s->engine, &history) != PM_OK)) {
        pm_alert_list_free(active);
        {
            pm__server_error(rep, 500, 0);
            return;
        }
    }
    pm__writer_t w;
    if (json_begin(rep, &w)) {
        PM__W_LIT(&w, "{\"health_score\":");
        pm__w_json_number(&w, health_score(s));
        PM__W_LIT(&w, ",\"active\":");
        w_events(&w, active);
        PM__W_LIT(&w, ",\"history\":");
        w_events(&w, history);
        pm__w_char(&w, '}');
        json_end(rep, &w);
    } else {
        pm__server_error(rep, 500, 0);
    }
    pm_alert_list_free(active);
    pm_alert_list_free(history);
}

/* ---------------------------------------------------------------- /api/v1/traces */

static void w_quantiles(pm__writer_t *w, const pm_trace_ops_t *o, size_t i, int self)
{
    static const struct {
        double q;
        const char *key;
    } qs[] = {{0.5, "{\"p50\":"}, {0.95, ",\"p95\":"}, {0.99, ",\"p99\":"}};
    for (size_t k = 0; k < 3; k++) {
        double v = NAN;
        if (self)
            pm_trace_ops_self_time(o, i, qs[k].q, &v);
        else
            pm_trace_ops_duration(o, i, qs[k].q, &v);
        pm__w_str(w, qs[k].key);
        pm__w_json_number(w, v);
    }
    pm__w_char(w, '}');
}

typedef struct op_rank {
    double self_total;
    size_t i;
} op_rank;

static int by_self_total(const void *a, const void *b)
{
    const op_rank *x = a, *y = b;
    return x->self_total > y->self_total ? -1 : x->self_total < y->self_total;
}

static void w_operations(pm__writer_t *w, const pm_trace_ops_t *o)
{
    size_t n = pm_trace_ops_count(o);
    op_rank *order = n ? malloc(n * sizeof *order) : NULL;
    pm__w_char(w, '[');
    if (n && !order) {
        w->status = PM_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++) order[i] = (op_rank){pm_trace_ops_self_total(o, i), i};
    if (n > 1) qsort(order, n, sizeof *order, by_self_total);
    for (size_t k = 0; k < n; k++) {
        size_t i = order[k].i;
        if (k) pm__w_char(w, ',');
        PM__W_LIT(w, "\n{\"name\":");
        pm__w_json_string(w, pm_trace_ops_name(o, i));
        PM__W_LIT(w, ",\"spans\":");
        pm__w_u64(w, pm_trace_ops_spans(o, i));
        PM__W_LIT(w, ",\"errors\":");
        pm__w_u64(w, pm_trace_ops_errors(o, i));
        PM__W_LIT(w, ",\"duration\":");
        w_quantiles(w, o, i, 0);
        PM__W_LIT(w, ",\"self\":");
        w_quantiles(w, o, i, 1);
        PM__W_LIT(w, ",\"self_total\":");
        pm__w_json_number(w, pm_trace_ops_self_total(o, i));
        pm__w_char(w, '}');
    }
    free(order);
    pm__w_char(w, ']');
}

static void w_trace_summary(pm__writer_t *w, const pm_trace_list_t *l, size_t i)
{
    PM__W_LIT(w, "{\"trace_id\":");
    pm__w_hex_id(w, pm_trace_list_trace_id(l, i), 16);
    PM__W_LIT(w, ",\"root\":");
    pm__w_json_string(w, pm_trace_list_root(l, i));
    PM__W_LIT(w, ",\"spans\":");
    pm__w_u64(w, pm_trace_list_spans(l, i));
    PM__W_LIT(w, ",\"duration\":");
    pm__w_json_number(w, pm_trace_list_duration(l, i));
    PM__W_LIT(w, ",\"errors\":");
    pm__w_u64(w, pm_trace_list_errors(l, i));
    PM__W_LIT(w, ",\"critical_path\":[");
    size_t n = pm_trace_list_path_length(l, i);
    for (size_t k = 0; k < n; k++) {
        if (k) pm__w_char(w, ',');
        PM__W_LIT(w, "{\"name\":");
        pm__w_json_string(w, pm_trace_list_path_name(l, i, k));
        PM__W_LIT(w, ",\"seconds\":");
        pm__w_json_number(w, pm_trace_list_path_seconds(l, i, k));
        pm__w_char(w, '}');
    }
    PM__W_LIT(w, "]}");
}

static void w_trace_list(pm__writer_t *w, const pm_trace_list_t *l)
{
    pm__w_char(w, '[');
    for (size_t i = 0; i < pm_trace_list_count(l); i++) {
        if (i) pm__w_char(w, ',');
        pm__w_char(w, '\n');
        w_trace_summary(w, l, i);
    }
    pm__w_char(w, ']');
}

static int parse_trace_id(const char *v, size_t n, uint8_t id[16])
{
    if (n != 32) return 0;
    int nonzero = 0;
    for (size_t i = 0; i < 16; i++) {
        int b = 0;
        for (size_t k = 0; k < 2; k++) {
            char c = v[2 * i + k];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (d < 0) return 0;
            b = b * 16 + d;
        }
        id[i] = (uint8_t)b;
        nonzero |= b;
    }
    return nonzero != 0;
}

/* The summary of trace id in list l, if it is there. */
static int w_summary_if_listed(pm__writer_t *w, const pm_trace_list_t *l, const uint8_t id[16])
{
    for (size_t i = 0; i < pm_trace_list_count(l); i++)
        if (!memcmp(pm_trace_list_trace_id(l, i), id, 16)) {
            w_trace_summary(w, l, i);
            return 1;
        }
    return 0;
}

static void route_one_trace(pm_server_t *s, const uint8_t id[16], pm__reply_t *rep)
{
    pm_trace_list_t *slow = NULL, *err = NULL;
    if (s->tracer && (pm_tracer_traces(s->tracer, PM_TRACES_SLOWEST, &slow) != PM_OK ||
                      pm_tracer_traces(s->tracer, PM_TRACES_ERRORS, &err) != PM_OK)) {
        pm_trace_list_free(slow);
        {
            pm__server_error(rep, 500, 0);
            return;
        }
    }
    pm__writer_t w;
    if (!json_begin(rep, &w)) {
        pm_trace_list_free(slow);
        pm_trace_list_free(err);
        {
            pm__server_error(rep, 500, 0);
            return;
        }
    }
    PM__W_LIT(&w, "{\"trace_id\":");
    pm__w_hex_id(&w, id, 16);
    PM__W_LIT(&w, ",\"spans\":");
    size_t found = pm__spankeep_write_trace(s->spans, id, &w);
    PM__W_LIT(&w, ",\"summary\":");
    int listed = w_summary_if_listed(&w, slow, id) || w_summary_if_listed(&w, err, id);
    if (!listed) PM__W_LIT(&w, "null");
    pm__w_char(&w, '}');
    pm_trace_list_free(slow);
    pm_trace_list_free(err);
    if (!found && !listed) {
        pm__writer_finish(&w);
        {
            pm__server_error(rep, 404, 0);
            return;
        }
    }
    json_end(rep, &w);
}

static void route_traces(pm_server_t *s, const pm__http_request_t *req, pm__reply_t *rep)
{
    size_t pos = 0, nl, vl;
    const char *n, *v;
    while (pm__query_next(req->query, req->query_len, &pos, &n, &nl, &v, &vl)) {
        if (nl != 2 || memcmp(n, "id", 2)) continue;
        uint8_t id[16];
        if (!parse_trace_id(v, vl, id)) {
            pm__server_error(rep, 400, 0);
            return;
        }
        route_one_trace(s, id, rep);
        return;
    }
    pm_trace_ops_t *ops = NULL;
    pm_trace_list_t *slow = NULL, *err = NULL;
    if (s->tracer && (pm_tracer_ops_snapshot(s->tracer, &ops) != PM_OK ||
                      pm_tracer_traces(s->tracer, PM_TRACES_SLOWEST, &slow) != PM_OK ||
                      pm_tracer_traces(s->tracer, PM_TRACES_ERRORS, &err) != PM_OK)) {
        pm_trace_ops_free(ops);
        pm_trace_list_free(slow);
        {
            pm__server_error(rep, 500, 0);
            return;
        }
    }
    pm__writer_t w;
    if (json_begin(rep, &w)) {
        PM__W_LIT(&w, "{\"operations\":");
        w_operations(&w, ops);
        PM__W_LIT(&w, ",\"slowest\":");
        w_trace_list(&w, slow);
        PM__W_LIT(&w, ",\"errors\":");
        w_trace_list(&w, err);
        PM__W_LIT(&w, ",\"recent\":");
        pm__spankeep_write_recent(s->spans, &w, 50);
        pm__w_char(&w, '}');
        json_end(rep, &w);
    } else {
        pm__server_error(rep, 500, 0);
    }
    pm_trace_ops_free(ops);
    pm_trace_list_free(slow);
    pm_trace_list_free(err);
}

/* ---------------------------------------------------------------- / */

static void route_dashboard(pm__reply_t *rep)
{
    if (pm_buf_append(rep->body, pm__dashboard_html, pm__dashboard_html_len) != PM_OK) {
        pm__server_error(rep, 500, 0);
        return;
    }
    rep->status = 200;
    rep->content_type = "text/html; charset=utf-8";
    rep->compressible = 1;
    add_header(rep, "Content-Security-Policy: default-src 'none'; script-src 'unsafe-inline'; "
                    "style-src 'unsafe-inline'; img-src data:; connect-src 'self'; "
                    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
    add_header(rep, "X-Frame-Options: DENY");
    add_header(rep, "Referrer-Policy: no-referrer");
}

/* ---------------------------------------------------------------- routing */

static int path_is(const pm__http_request_t *req, const char *p)
{
    size_t n = strlen(p);
    return req->path_len == n && !memcmp(req->path, p, n);
}

void pm__server_route(pm_server_t *s, const pm__http_request_t *req, pm__reply_t *rep)
{
    int body = req->transfer_encoding || req->content_length > 0;
    rep->handler = PM__H_OTHER;
    if (req->method == PM__HTTP_OTHER) {
        add_header(rep, "Allow: GET, HEAD");
        {
            pm__server_error(rep, 405, body);
            return;
        }
    }
    if (req->minor == 1 && req->host_count == 0) {
        pm__server_error(rep, 400, 1);
        return;
    }
    /* A page on another site that re-binds its own name to 127.0.0.1 sends
     * its name as Host: refuse it, so loopback stays loopback. */
    if (s->loopback && req->host_count && !pm__http_host_is_local(req)) {
        pm__server_error(rep, 421, 0);
        return;
    }
    if (req->transfer_encoding) {
        pm__server_error(rep, 501, 1);
        return;
    }
    if (req->content_length > 0) {
        pm__server_error(rep, 413, 1);
        return;
    }

    int h = path_is(req, "/metrics")                                             ? PM__H_METRICS
            : path_is(req, "/health")                                            ? PM__H_HEALTH
            : path_is(req, "/api/v1/info")                                       ? PM__H_INFO
            : path_is(req, "/api/v1/metrics")                                    ? PM__H_API_METRICS
            : path_is(req, "/api/v1/alerts")                                     ? PM__H_ALERTS
            : path_is(req, "/api/v1/traces")                                     ? PM__H_TRACES
            : (path_is(req, "/") || path_is(req, "/index.html")) && s->dashboard ? PM__H_DASHBOARD
                                                                                 : PM__H_OTHER;
    rep->handler = h;
    if (h == PM__H_OTHER) {
        pm__server_error(rep, 404, 0);
        return;
    }
    /* The dashboard page holds no data: it is what asks a person for the token. */
    if (s->token && h != PM__H_DASHBOARD && !pm__http_bearer_ok(req, s->token, s->token_len)) {
        add_header(rep, "WWW-Authenticate: Bearer realm=\"perfmetrics\"");
        {
            pm__server_error(rep, 401, 0);
            return;
        }
    }
    switch (h) {
    case PM__H_METRICS:
        route_metrics(s, req, rep);
        return;
    case PM__H_HEALTH:
        route_health(s, rep);
        return;
    case PM__H_INFO:
        route_info(s, rep);
        return;
    case PM__H_API_METRICS:
        route_api_metrics(s, req, rep);
        return;
    case PM__H_ALERTS:
        route_alerts(s, rep);
        return;
    case PM__H_TRACES:
        route_traces(s, req, rep);
        return;
    default:
        route_dashboard(rep);
    }
}
