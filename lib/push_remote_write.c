/* Prometheus remote-write 1.0: the WriteRequest protobuf written by hand and
 * the destination kind that sends it (Snappy block compressed).
 *
 * The messages (prometheus/prompb types.proto, remote.proto):
 *   WriteRequest { repeated TimeSeries timeseries = 1; }
 *   TimeSeries   { repeated Label labels = 1; repeated Sample samples = 2; }
 *   Label        { string name = 1; string value = 2; }
 *   Sample       { double value = 1; int64 timestamp = 2; }   (ms)
 * Every field is written, in field order, with minimal varints: the bytes
 * are what a protobuf encoder would produce except that a 0 value or
 * timestamp is written rather than left out (both decode the same).
 *
 * Protobuf puts each message's length before it, so each TimeSeries' size is
 * computed from the string lengths first and then written in one pass into
 * room reserved for it: no second buffer, no patching of lengths. */
#include "internal/format_internal.h"
#include "internal/push_encode.h"
#include "internal/push_internal.h"
#include "internal/snappy.h"

#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------ protobuf */

static inline size_t pm__pb_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *pm__pb_varint(uint8_t *p, uint64_t v)
{
    while (v >= 0x80) {
        *p++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *p++ = (uint8_t)v;
    return p;
}

/* Field tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 bytes). */
#define PM__PB_WR_TIMESERIES 0x0a
#define PM__PB_TS_LABEL 0x0a
#define PM__PB_TS_SAMPLE 0x12
#define PM__PB_LABEL_NAME 0x0a
#define PM__PB_LABEL_VALUE 0x12
#define PM__PB_SAMPLE_VALUE 0x09
#define PM__PB_SAMPLE_TS 0x10

/* Prometheus reads one NaN bit pattern (0x7ff0000000000002) as a staleness
 * marker: a gauge that is NaN must not turn its series stale, so every NaN
 * is sent as Prometheus' ordinary NaN. */
static inline uint64_t pm__rw_value_bits(double v)
{
    return isnan(v) ? UINT64_C(0x7ff8000000000001) : pm__d2u(v);
}

/* ------------------------------------------------------------ label order */

/* Where a label of a family's series comes from. */
enum { PM__RW_NAME, PM__RW_FAMILY, PM__RW_DEST, PM__RW_LE, PM__RW_OVERFLOW };

typedef struct pm__rw_ent {
    const char *name;
    size_t nlen;
    int kind;
    size_t idx; /* family label index or destination label index */
} pm__rw_ent;

/* The labels of one sample, in wire order. */
typedef struct pm__rw_lab {
    const char *name, *value;
    size_t nlen, vlen;
} pm__rw_lab;

typedef struct pm__rw_enc {
    pm__rw_ent *ent; /* the family's labels, sorted by name */
    size_t nent, capent;
    pm__rw_lab *lab; /* one sample's */
    size_t caplab;
    char name[PM_MAX_NAME + 16]; /* __name__: family name and suffix */
    size_t famlen;
    pm__bounds_t bd;
    size_t vlen[PM_MAX_LABELS]; /* the current series' label value lengths */
    const char *val[PM_MAX_LABELS];
} pm__rw_enc;

static int pm__rw_ent_cmp(const void *a, const void *b)
{
    const pm__rw_ent *x = a, *y = b;
    return strcmp(x->name, y->name); /* strcmp compares as unsigned char: byte order */
}

static bool pm__rw_family_has(const pm_snap_family_t *f, const char *name)
{
    size_t nl = pm_snap_family_label_count(f);
    for (size_t i = 0; i < nl; i++)
        if (strcmp(pm_snap_family_label_name(f, i), name) == 0) return true;
    return false;
}

static pm_status_t pm__rw_prepare(pm__rw_enc *e, const pm_snap_family_t *f, const pm__push_view_t *v)
{
    pm_type_t type = pm_snap_family_type(f);
    size_t nl = pm_snap_family_label_count(f);
    size_t need = nl + v->nlabels + 3;
    if (need > e->capent) {
        void *p = realloc(e->ent, need * sizeof *e->ent);
        if (!p) return PM_ENOMEM;
        e->ent = p;
        e->capent = need;
        p = realloc(e->lab, need * sizeof *e->lab);
        if (!p) return PM_ENOMEM;
        e->lab = p;
        e->caplab = need;
    }
    size_t n = 0;
    e->ent[n++] = (pm__rw_ent){"__name__", 8, PM__RW_NAME, 0};
    for (size_t i = 0; i < nl; i++) {
        const char *ln = pm_snap_family_label_name(f, i);
        e->ent[n++] = (pm__rw_ent){ln, strlen(ln), PM__RW_FAMILY, i};
    }
    if (type == PM_TYPE_HISTOGRAM) e->ent[n++] = (pm__rw_ent){"le", 2, PM__RW_LE, 0};
    /* The overflow series stands for many label tuples: as in the text
     * formats, it is pm_overflow="true" instead of the family's labels. */
    e->ent[n++] = (pm__rw_ent){"pm_overflow", 11, PM__RW_OVERFLOW, 0};
    /* A destination label is the series' unless the series has its own (as
     * Prometheus' external_labels: the series' labels win). */
    for (size_t i = 0; i < v->nlabels; i++) {
        const char *ln = v->label_name[i];
        if (strcmp(ln, "__name__") == 0 || pm__rw_family_has(f, ln) ||
            (type == PM_TYPE_HISTOGRAM && strcmp(ln, "le") == 0) || strcmp(ln, "pm_overflow") == 0)
            continue;
        e->ent[n++] = (pm__rw_ent){ln, strlen(ln), PM__RW_DEST, i};
    }
    qsort(e->ent, n, sizeof *e->ent, pm__rw_ent_cmp);
    e->nent = n;
    const char *fn = pm_snap_family_name(f);
    e->famlen = strlen(fn);
    if (e->famlen > PM_MAX_NAME) return PM_EINVAL; /* families are validated: not reached */
    memcpy(e->name, fn, e->famlen);
    if (type == PM_TYPE_HISTOGRAM) return pm__bounds_prepare(&e->bd, f, 0);
    return PM_OK;
}

/* Appends one TimeSeries: the family's labels for series s (its values in
 * e->val / e->vlen), `suffix` after the name, `le` (may be NULL), value v at
 * ts_ms. */
static pm_status_t pm__rw_series(pm__rw_enc *e, pm_buf_t *out, const pm__push_view_t *v, bool ovf,
                                 const char *suffix, size_t sfxlen, const char *le, size_t lelen,
                                 double value, int64_t ts_ms)
{
    memcpy(e->name + e->famlen, suffix, sfxlen);
    size_t nlab = 0, size = 0;
    for (size_t i = 0; i < e->nent; i++) {
        const pm__rw_ent *en = &e->ent[i];
        const char *val;
        size_t vlen;
        switch (en->kind) {
        case PM__RW_NAME:
            val = e->name;
            vlen = e->famlen + sfxlen;
            break;
        case PM__RW_FAMILY:
            if (ovf) continue;
            val = e->val[en->idx];
            vlen = e->vlen[en->idx];
            break;
        case PM__RW_LE:
            val = le;
            vlen = lelen;
            break;
        case PM__RW_OVERFLOW:
            if (!ovf) continue;
            val = "true";
            vlen = 4;
            break;
        default:
            val = v->label_value[en->idx];
            vlen = strlen(val);
            break;
        }
        if (vlen == 0) continue; /* an empty value is no label */
        size_t inner = 1 + pm__pb_varint_len(en->nlen) + en->nlen + 1 + pm__pb_varint_len(vlen) + vlen;
        size += 1 + pm__pb_varint_len(inner) + inner;
        e->lab[nlab++] = (pm__rw_lab){en->name, val, en->nlen, vlen};
    }
    size_t sample = 9 + 1 + pm__pb_varint_len((uint64_t)ts_ms);
    size += 1 + pm__pb_varint_len(sample) + sample;

    size_t total = 1 + pm__pb_varint_len(size) + size;
    pm_status_t st = pm__buf_reserve(out, out->len, total);
    if (st != PM_OK) return st;
    uint8_t *p = (uint8_t *)out->data + out->len;
    *p++ = PM__PB_WR_TIMESERIES;
    p = pm__pb_varint(p, size);
    for (size_t i = 0; i < nlab; i++) {
        const pm__rw_lab *l = &e->lab[i];
        size_t inner = 1 + pm__pb_varint_len(l->nlen) + l->nlen + 1 + pm__pb_varint_len(l->vlen) + l->vlen;
        *p++ = PM__PB_TS_LABEL;
        p = pm__pb_varint(p, inner);
        *p++ = PM__PB_LABEL_NAME;
        p = pm__pb_varint(p, l->nlen);
        memcpy(p, l->name, l->nlen);
        p += l->nlen;
        *p++ = PM__PB_LABEL_VALUE;
        p = pm__pb_varint(p, l->vlen);
        memcpy(p, l->value, l->vlen);
        p += l->vlen;
    }
    *p++ = PM__PB_TS_SAMPLE;
    p = pm__pb_varint(p, sample);
    *p++ = PM__PB_SAMPLE_VALUE;
    uint64_t bits = pm__rw_value_bits(value);
    for (int i = 0; i < 8; i++) *p++ = (uint8_t)(bits >> (8 * i)); /* fixed64: little-endian */
    *p++ = PM__PB_SAMPLE_TS;
    p = pm__pb_varint(p, (uint64_t)ts_ms); /* int64: two's complement as a varint */
    out->len = (size_t)((char *)p - out->data);
    out->data[out->len] = '\0';
    return PM_OK;
}

static void pm__rw_enc_free(pm__rw_enc *e)
{
    free(e->ent);
    free(e->lab);
    pm__bounds_free(&e->bd);
}

pm_status_t pm__remote_write_encode(const pm_snapshot_t *s, const pm__push_view_t *v, pm_buf_t *out,
                                    size_t *nseries)
{
    if (!s || !v || !out) return PM_EINVAL;
    pm__rw_enc e = {0};
    size_t start = out->len, count = 0;
    int64_t ts = (int64_t)llround(pm_snapshot_time(s) * 1000.0);
    pm_status_t st = PM_OK;
    size_t nf = pm_snapshot_family_count(s);
    for (size_t fi = 0; fi < nf && st == PM_OK; fi++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, fi);
        if (!f) continue;
        if (v->wants && !v->wants(v->wants_ctx, pm_snap_family_name(f))) continue;
        st = pm__rw_prepare(&e, f, v);
        pm_type_t type = pm_snap_family_type(f);
        size_t nl = pm_snap_family_label_count(f);
        size_t ns = pm_snap_family_series_count(f);
        for (size_t si = 0; si < ns && st == PM_OK; si++) {
            const pm_snap_series_t *se = pm_snap_family_series(f, si);
            bool ovf = pm_snap_series_is_overflow(se) != 0;
            for (size_t li = 0; li < nl; li++) {
                e.val[li] = pm_snap_series_label_value(se, li);
                e.vlen[li] = strlen(e.val[li]);
            }
            switch (type) {
            case PM_TYPE_COUNTER:
                st = pm__rw_series(&e, out, v, ovf, PM__LIT_ARG("_total"), NULL, 0,
                                   pm_snap_series_value(se), ts);
                count++;
                break;
            case PM_TYPE_GAUGE:
                st = pm__rw_series(&e, out, v, ovf, "", 0, NULL, 0, pm_snap_series_value(se), ts);
                count++;
                break;
            case PM_TYPE_HISTOGRAM: {
                uint64_t c = pm_snap_series_count(se);
                for (size_t b = 0; b < e.bd.n && st == PM_OK; b++)
                    st = pm__rw_series(&e, out, v, ovf, PM__LIT_ARG("_bucket"), e.bd.item[b].text,
                                       e.bd.item[b].len,
                                       (double)pm_snap_series_bucket_cumulative(se, b), ts);
                /* +Inf is the count, so the two always agree. */
                if (st == PM_OK)
                    st = pm__rw_series(&e, out, v, ovf, PM__LIT_ARG("_bucket"), "+Inf", 4,
                                       (double)c, ts);
                if (st == PM_OK)
                    st = pm__rw_series(&e, out, v, ovf, PM__LIT_ARG("_sum"), NULL, 0,
                                       pm_snap_series_sum(se), ts);
                if (st == PM_OK)
                    st = pm__rw_series(&e, out, v, ovf, PM__LIT_ARG("_count"), NULL, 0, (double)c,
                                       ts);
                count += e.bd.n + 3;
                break;
            }
            }
        }
    }
    pm__rw_enc_free(&e);
    if (st != PM_OK) {
        if (out->data) {
            out->len = start;
            out->data[start] = '\0';
        }
        return st;
    }
    if (nseries) *nseries = count;
    return PM_OK;
}

/* ------------------------------------------------------------ the view */

static bool pm__push_view_wants(const void *ctx, const char *family)
{
    return pm__push_opts_wants(ctx, family);
}

pm_status_t pm__push_view_init(pm__push_view_t *v, const pm_push *p)
{
    const pm_push_opts_t *o = pm__push_opts(p);
    size_t n = pm__push_opts_nlabels(o);
    const char **names = NULL, **values = NULL;
    if (n) {
        names = calloc(n, sizeof *names);
        values = calloc(n, sizeof *values);
        if (!names || !values) {
            free(names);
            free(values);
            return PM_ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
            names[i] = pm__push_opts_label_name(o, i);
            values[i] = pm__push_opts_label_value(o, i);
        }
    }
    *v = (pm__push_view_t){n, names, values, pm__push_view_wants, o};
    return PM_OK;
}

void pm__push_view_fini(pm__push_view_t *v)
{
    free((void *)(uintptr_t)v->label_name);
    free((void *)(uintptr_t)v->label_value);
    memset(v, 0, sizeof *v);
}

/* ------------------------------------------------------------ the kind */

typedef struct pm__rw_state {
    pm__push_view_t view;
    pm_buf_t *raw; /* the uncompressed body, reused from push to push (NULL: none yet) */
} pm__rw_state;

static void pm__rw_fini(void *state)
{
    pm__rw_state *rs = state;
    if (!rs) return;
    pm__push_view_fini(&rs->view);
    pm_buf_free(rs->raw); /* may be a mapping of its own (lib/buf.c): not free() */
    free(rs);
}

pm_status_t pm__remote_write_body(const pm_snapshot_t *s, const pm__push_view_t *v, pm_buf_t *raw,
                                  pm_buf_t *body, size_t *nseries)
{
    raw->len = 0;
    pm_status_t st = pm__remote_write_encode(s, v, raw, nseries);
    if (st != PM_OK) return st;
    size_t bound = pm__snappy_bound(raw->len);
    st = pm__buf_reserve(body, 0, bound);
    if (st != PM_OK) return st;
    body->len = pm__snappy_compress((const uint8_t *)(raw->data ? raw->data : ""), raw->len,
                                    (uint8_t *)body->data);
    body->data[body->len] = '\0';
    return PM_OK;
}

static pm_status_t pm__rw_export(const pm_snapshot_t *s, pm_push *p)
{
    pm__rw_state *rs = pm__push_state(p);
    pm_buf_t *body = NULL;
    pm_status_t st = rs->raw ? PM_OK : pm_buf_new(&rs->raw);
    if (st == PM_OK) st = pm_buf_new(&body);
    if (st != PM_OK) return st;
    size_t n = 0;
    st = pm__remote_write_body(s, &rs->view, rs->raw, body, &n);
    /* A big body once should not pin its memory: keep the raw buffer only
     * while it stays modest. */
    if (rs->raw->cap > (size_t)64 << 20) {
        pm_buf_free(rs->raw);
        rs->raw = NULL;
    }
    if (st != PM_OK || n == 0) { /* nothing to send: no request */
        pm_buf_free(body);
        return st;
    }
    return pm__push_enqueue(p, "POST", NULL, body, "application/x-protobuf", "snappy",
                            "X-Prometheus-Remote-Write-Version: 0.1.0\r\n");
}

pm_status_t pm_push_remote_write_new(pm_registry_t *r, const char *url, const pm_push_opts_t *o,
                                     pm_push_t **out)
{
    if (out) *out = NULL;
    if (!r || !url || !out) return PM_EINVAL;
    pm__rw_state *rs = calloc(1, sizeof *rs);
    if (!rs) return PM_ENOMEM;
    pm_push *p = NULL;
    pm_status_t st = pm__push_http_new("remote_write", url, o, rs, pm__rw_fini, &p);
    if (st != PM_OK) return st;
    st = pm__push_view_init(&rs->view, p);
    if (st == PM_OK) st = pm__push_attach_exporter(p, r, pm__rw_export);
    if (st != PM_OK) {
        pm__push_discard(p);
        return st;
    }
    *out = p;
    return PM_OK;
}
