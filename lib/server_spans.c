/* The server's recent spans: a span exporter that keeps the last N ended
 * spans of a tracer in a ring, so /api/v1/traces can list recent traces and
 * answer one trace by id with its spans. Spans are copied on the tracer's
 * flush thread (where allocating is fine); readers take the ring's lock only
 * to walk it. Shared by the tracer (the exporter's user data) and the server,
 * each holding a reference, so either may go first. */
#include "internal/format_internal.h"
#include "internal/http_internal.h"
#include "internal/server_internal.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

typedef struct kspan {
    uint8_t trace[16], span[8], parent[8];
    uint8_t has_parent, remote_parent, kind, status;
    uint64_t start_ns, end_ns;
    char *name;  /* in the same block */
    char *attrs; /* a JSON object's text, in the same block */
} kspan;

struct pm__spankeep {
    atomic_int refs;
    pthread_mutex_t lock;
    kspan **ring;
    size_t cap, next, n; /* next: slot to write; n: slots filled */
    uint64_t kept;       /* spans ever kept */
};

pm_status_t pm__spankeep_new(size_t cap, pm__spankeep_t **out)
{
    *out = NULL;
    pm__spankeep_t *k = calloc(1, sizeof *k);
    if (!k || !(k->ring = calloc(cap ? cap : 1, sizeof *k->ring))) {
        free(k);
        return PM_ENOMEM;
    }
    atomic_init(&k->refs, 1);
    pthread_mutex_init(&k->lock, NULL);
    k->cap = cap;
    *out = k;
    return PM_OK;
}

pm__spankeep_t *pm__spankeep_ref(pm__spankeep_t *k)
{
    if (k) atomic_fetch_add(&k->refs, 1);
    return k;
}

void pm__spankeep_release(void *user)
{
    pm__spankeep_t *k = user;
    if (!k || atomic_fetch_sub(&k->refs, 1) != 1) return;
    for (size_t i = 0; i < k->cap; i++) free(k->ring[i]);
    free(k->ring);
    pthread_mutex_destroy(&k->lock);
    free(k);
}

/* Renders span s's attributes as a JSON object into b. */
static pm_status_t render_attrs(const pm_span_data_t *s, pm_buf_t *b)
{
    pm__writer_t w;
    pm_buf_reset(b);
    pm_status_t st = pm__writer_init_buf(&w, b);
    if (st != PM_OK) return st;
    pm__w_char(&w, '{');
    size_t n = pm_span_data_attr_count(s);
    for (size_t i = 0; i < n; i++) {
        if (i) pm__w_char(&w, ',');
        pm__w_json_string(&w, pm_span_data_attr_key(s, i));
        pm__w_char(&w, ':');
        switch (pm_span_data_attr_type(s, i)) {
        case PM_ATTR_STRING:
            pm__w_json_string(&w, pm_span_data_attr_string(s, i));
            break;
        case PM_ATTR_INT:
            pm__w_i64(&w, pm_span_data_attr_int(s, i));
            break;
        case PM_ATTR_DOUBLE:
            pm__w_json_number(&w, pm_span_data_attr_double(s, i));
            break;
        default:
            if (pm_span_data_attr_bool(s, i))
                PM__W_LIT(&w, "true");
            else
                PM__W_LIT(&w, "false");
        }
    }
    pm__w_char(&w, '}');
    return pm__writer_finish(&w);
}

static kspan *copy_span(const pm_span_data_t *s, pm_buf_t *scratch)
{
    if (render_attrs(s, scratch) != PM_OK) return NULL;
    const char *name = pm_span_data_name(s);
    size_t nl = strlen(name) + 1, al = pm_buf_len(scratch) + 1;
    kspan *k = malloc(sizeof *k + nl + al);
    if (!k) return NULL;
    const pm_trace_context_t *ctx = pm_span_data_context(s);
    const uint8_t *parent = pm_span_data_parent_id(s);
    memcpy(k->trace, ctx->trace_id, 16);
    memcpy(k->span, ctx->span_id, 8);
    memcpy(k->parent, parent, 8);
    k->has_parent = 0;
    for (int i = 0; i < 8; i++) k->has_parent |= parent[i] != 0;
    k->remote_parent = (uint8_t)pm_span_data_parent_remote(s);
    k->kind = (uint8_t)pm_span_data_kind(s);
    k->status = (uint8_t)pm_span_data_status(s);
    k->start_ns = pm_span_data_start_ns(s);
    k->end_ns = pm_span_data_end_ns(s);
    k->name = (char *)(k + 1);
    memcpy(k->name, name, nl);
    k->attrs = k->name + nl;
    memcpy(k->attrs, pm_buf_data(scratch), al);
    return k;
}

pm_status_t pm__spankeep_export(const pm_span_batch_t *b, void *user)
{
    pm__spankeep_t *k = user;
    if (!k->cap) return PM_OK;
    pm_buf_t *scratch;
    if (pm_buf_new(&scratch) != PM_OK) return PM_ENOMEM;
    size_t n = pm_span_batch_count(b), failed = 0;
    for (size_t i = 0; i < n; i++) {
        kspan *c = copy_span(pm_span_batch_span(b, i), scratch);
        if (!c) {
            failed++;
            continue;
        }
        pthread_mutex_lock(&k->lock);
        free(k->ring[k->next]);
        k->ring[k->next] = c;
        k->next = (k->next + 1) % k->cap;
        if (k->n < k->cap) k->n++;
        k->kept++;
        pthread_mutex_unlock(&k->lock);
    }
    pm_buf_free(scratch);
    return failed ? PM_ENOMEM : PM_OK;
}

/* The i-th kept span counting back from the newest (i < k->n); under lock. */
static const kspan *newest(const pm__spankeep_t *k, size_t i)
{
    return k->ring[(k->next + k->cap - 1 - i) % k->cap];
}

static void w_hex(pm__writer_t *w, const uint8_t *id, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *p = pm__w_reserve(w, 2 * n + 2);
    *p++ = '"';
    for (size_t i = 0; i < n; i++) {
        *p++ = hex[id[i] >> 4];
        *p++ = hex[id[i] & 15];
    }
    *p++ = '"';
    w->p = p;
}

void pm__w_hex_id(pm__writer_t *w, const uint8_t *id, size_t n) { w_hex(w, id, n); }

static void w_unix(pm__writer_t *w, uint64_t ns) { pm__w_json_number(w, (double)ns / 1e9); }

typedef struct recent {
    const uint8_t *trace;
    const kspan *root; /* local root if kept */
    size_t spans, errors;
    uint64_t start, end;
} recent;

void pm__spankeep_write_recent(pm__spankeep_t *k, pm__writer_t *w, size_t max)
{
    pm__w_char(w, '[');
    if (!k || !max) {
        pm__w_char(w, ']');
        return;
    }
    recent *r = calloc(max, sizeof *r);
    if (!r) {
        w->status = PM_ENOMEM;
        return;
    }
    size_t nr = 0;
    pthread_mutex_lock(&k->lock);
    /* Newest first: a trace's position is that of its newest span (the root
     * ends last, so a finished trace is listed by when it finished). */
    for (size_t i = 0; i < k->n; i++) {
        const kspan *s = newest(k, i);
        size_t j = 0;
        while (j < nr && memcmp(r[j].trace, s->trace, 16)) j++;
        if (j == nr) {
            if (nr == max) continue;
            r[nr++] = (recent){s->trace, NULL, 0, 0, s->start_ns, s->end_ns};
        }
        recent *t = &r[j];
        t->spans++;
        t->errors += s->status == PM_SPAN_STATUS_ERROR;
        if (s->start_ns < t->start) t->start = s->start_ns;
        if (s->end_ns > t->end) t->end = s->end_ns;
        if (!s->has_parent || s->remote_parent) t->root = s;
    }
    for (size_t j = 0; j < nr; j++) {
        if (j) pm__w_char(w, ',');
        PM__W_LIT(w, "{\"trace_id\":");
        w_hex(w, r[j].trace, 16);
        PM__W_LIT(w, ",\"root\":");
        pm__w_json_string(w, r[j].root ? r[j].root->name : "");
        PM__W_LIT(w, ",\"spans\":");
        pm__w_u64(w, r[j].spans);
        PM__W_LIT(w, ",\"start\":");
        w_unix(w, r[j].start);
        PM__W_LIT(w, ",\"duration\":");
        pm__w_json_number(w, (double)(r[j].end - r[j].start) / 1e9);
        PM__W_LIT(w, ",\"errors\":");
        pm__w_u64(w, r[j].errors);
        pm__w_char(w, '}');
    }
    pthread_mutex_unlock(&k->lock);
    free(r);
    pm__w_char(w, ']');
}

static const char *kind_name(unsigned k)
{
    static const char *const names[] = {"internal", "internal", "server",
                                        "client",   "producer", "consumer"};
    return k < 6 ? names[k] : "internal";
}

static const char *status_name(unsigned s)
{
    return s == PM_SPAN_STATUS_OK ? "ok" : s == PM_SPAN_STATUS_ERROR ? "error" : "unset";
}

static int by_start(const void *a, const void *b)
{
    const kspan *x = *(const kspan *const *)a, *y = *(const kspan *const *)b;
    return x->start_ns < y->start_ns ? -1 : x->start_ns > y->start_ns;
}

size_t pm__spankeep_write_trace(pm__spankeep_t *k, const uint8_t id[16], pm__writer_t *w)
{
    pm__w_char(w, '[');
    size_t found = 0;
    if (!k) {
        pm__w_char(w, ']');
        return 0;
    }
    pthread_mutex_lock(&k->lock);
    const kspan **list = malloc((k->n ? k->n : 1) * sizeof *list);
    if (!list) {
        pthread_mutex_unlock(&k->lock);
        w->status = PM_ENOMEM;
        return 0;
    }
    for (size_t i = 0; i < k->n; i++)
        if (!memcmp(k->ring[i]->trace, id, 16)) list[found++] = k->ring[i];
    qsort(list, found, sizeof *list, by_start);
    for (size_t i = 0; i < found; i++) {
        const kspan *s = list[i];
        if (i) pm__w_char(w, ',');
        PM__W_LIT(w, "{\"span_id\":");
        w_hex(w, s->span, 8);
        PM__W_LIT(w, ",\"parent_id\":");
        if (s->has_parent)
            w_hex(w, s->parent, 8);
        else
            PM__W_LIT(w, "null");
        PM__W_LIT(w, ",\"name\":");
        pm__w_json_string(w, s->name);
        PM__W_LIT(w, ",\"kind\":\"");
        pm__w_str(w, kind_name(s->kind));
        PM__W_LIT(w, "\",\"start\":");
        w_unix(w, s->start_ns);
        PM__W_LIT(w, ",\"end\":");
        w_unix(w, s->end_ns);
        PM__W_LIT(w, ",\"duration\":");
        pm__w_json_number(w, (double)(s->end_ns - s->start_ns) / 1e9);
        PM__W_LIT(w, ",\"status\":\"");
        pm__w_str(w, status_name(s->status));
        PM__W_LIT(w, "\",\"attributes\":");
        pm__w_str(w, s->attrs);
        pm__w_char(w, '}');
    }
    pthread_mutex_unlock(&k->lock);
    free(list);
    pm__w_char(w, ']');
    return found;
}
