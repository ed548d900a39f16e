/* Pushgateway destinations: every export PUTs (or POSTs, `merge`) the
 * snapshot's families in the Prometheus text format to the group
 * <base>/metrics/job/<job>{/<label>/<value>}. Group path segments follow the
 * Pushgateway's rules: a value that is empty or holds anything but URL
 * unreserved characters (a '/' above all) is sent as <name>@base64/<value in
 * base64url>, so no value can change the path's shape. */
#include "internal/format_internal.h"
#include "internal/push_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct pgw {
    char *path;
    int merge;
} pgw;

static void pgw_fini(void *state)
{
    pgw *g = state;
    if (!g) return;
    free(g->path);
    free(g);
}

static int plain_segment(const char *v)
{
    if (!*v) return 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (!((*p >= '0' && *p <= '9') || ((*p | 0x20) >= 'a' && (*p | 0x20) <= 'z') ||
              *p == '-' || *p == '.' || *p == '_' || *p == '~'))
            return 0;
    return 1;
}

/* RFC 4648 section 5 (URL-safe alphabet), padded: "=" for the empty value,
 * as the Pushgateway documents. */
static pm_status_t append_base64url(pm_buf_t *b, const char *v)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(v);
    if (n == 0) return pm_buf_append(b, "=", 1);
    const unsigned char *s = (const unsigned char *)v;
    pm_status_t st = PM_OK;
    for (size_t i = 0; i < n && st == PM_OK; i += 3) {
        uint32_t x = (uint32_t)s[i] << 16;
        if (i + 1 < n) x |= (uint32_t)s[i + 1] << 8;
        if (i + 2 < n) x |= s[i + 2];
        char out[4] = {tab[(x >> 18) & 63], tab[(x >> 12) & 63],
                       i + 1 < n ? tab[(x >> 6) & 63] : '=', i + 2 < n ? tab[x & 63] : '='};
        st = pm_buf_append(b, out, 4);
    }
    return st;
}

static pm_status_t append_pair(pm_buf_t *b, const char *name, const char *value)
{
    pm_status_t st = pm_buf_append(b, "/", 1);
    if (st == PM_OK) st = pm_buf_append(b, name, strlen(name));
    if (plain_segment(value)) {
        if (st == PM_OK) st = pm_buf_append(b, "/", 1);
        if (st == PM_OK) st = pm_buf_append(b, value, strlen(value));
    } else {
        if (st == PM_OK) st = pm_buf_append(b, "@base64/", 8);
        if (st == PM_OK) st = append_base64url(b, value);
    }
    return st;
}

/* The group's path under the URL's base path. Exposed to the tests. */
pm_status_t pm__pushgateway_path(const char *base, const char *job, const pm_push_opts_t *o,
                                 char **out);
pm_status_t pm__pushgateway_path(const char *base, const char *job, const pm_push_opts_t *o,
                                 char **out)
{
    *out = NULL;
    pm_buf_t *b = NULL;
    pm_status_t st = pm_buf_new(&b);
    if (st != PM_OK) return st;
    size_t bl = strlen(base);
    const char *q = strchr(base, '?');
    if (q) bl = (size_t)(q - base); /* a query on the base URL has no place in the group path */
    while (bl > 0 && base[bl - 1] == '/') bl--;
    st = pm_buf_append(b, base, bl);
    if (st == PM_OK) st = pm_buf_append(b, "/metrics", 8);
    if (st == PM_OK) st = append_pair(b, "job", job);
    for (size_t i = 0; i < pm__push_opts_nlabels(o) && st == PM_OK; i++)
        st = append_pair(b, pm__push_opts_label_name(o, i), pm__push_opts_label_value(o, i));
    if (st == PM_OK && !(*out = strdup(pm_buf_data(b)))) st = PM_ENOMEM;
    pm_buf_free(b);
    return st;
}

static const char content_type[] = "text/plain; version=0.0.4; charset=utf-8";

static pm_status_t pgw_export(const pm_snapshot_t *s, pm_push *p)
{
    pgw *g = pm__push_state(p);
    const pm_push_opts_t *o = pm__push_opts(p);
    pm_buf_t *b = NULL;
    pm_status_t st = pm_buf_new(&b);
    if (st == PM_OK) st = pm__push_format_filtered(s, o, PM_FORMAT_PROMETHEUS, b);
    const char *enc = NULL;
#if PM_HAVE_ZLIB
    if (st == PM_OK && pm__push_opts_gzip(o)) {
        pm_buf_t *z = NULL;
        st = pm_buf_new(&z);
        if (st == PM_OK) st = pm__buf_gzip_level(b, z, 1);
        pm_buf_free(b);
        b = z;
        enc = "gzip";
    }
#endif
    if (st != PM_OK) {
        pm_buf_free(b);
        return st;
    }
    return pm__push_enqueue(p, g->merge ? "POST" : "PUT", g->path, b, content_type, enc, NULL);
}

pm_status_t pm_push_pushgateway_new(pm_registry_t *r, const char *url, const char *job,
                                    int merge, const pm_push_opts_t *o, pm_push_t **out)
{
    if (out) *out = NULL;
    if (!r || !url || !job || !out || !*job || strlen(job) > PM_MAX_LABEL_VALUE) return PM_EINVAL;
    if (!pm__valid_utf8(job, strlen(job))) return PM_EUTF8;
    pgw *g = calloc(1, sizeof *g);
    if (!g) return PM_ENOMEM;
    g->merge = merge != 0;
    pm_push *p = NULL;
    pm_status_t st = pm__push_http_new("pushgateway", url, o, g, pgw_fini, &p);
    if (st != PM_OK) return st; /* g went with the failure */
    st = pm__pushgateway_path(pm__push_url_path(p), job, pm__push_opts(p), &g->path);
    if (st == PM_OK) st = pm__push_attach_exporter(p, r, pgw_export);
    if (st != PM_OK) {
        pm__push_discard(p);
        return st;
    }
    *out = p;
    return PM_OK;
}

pm_status_t pm_push_pushgateway_delete(pm_push_t *p)
{
    if (!p || strcmp(pm__push_kind(p), "pushgateway") != 0) return PM_EINVAL;
    pgw *g = pm__push_state(p);
    return pm__push_enqueue(p, "DELETE", g->path, NULL, NULL, NULL, NULL);
}
