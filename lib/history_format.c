/* The history store's record format (doc/history.md): frames, CRC-32C, and
 * a snapshot's body, written by lib/history.c and read back into a snapshot
 * by lib/history_read.c.
 *
 *   frame   = sync u32 | body length u32 | CRC-32C(body) u32 | body
 *   body    = kind u8 (1: snapshot) | time f64 | nfam varint | family...
 *   family  = name str | type u8 | help str | unit str | nlabels varint |
 *             label str... | nbounds varint | bound f64... | nseries varint |
 *             series...
 *   series  = value str... (nlabels) | flags u8 (1: overflow) | created f64 |
 *             counter, gauge: value f64
 *             histogram:      count varint | sum f64 | min f64 | max f64 |
 *                             stddev f64 | cumulative varint... (nbounds + 1,
 *                             each as its increase over the previous) |
 *                             lowest f64 | highest f64 | nfine varint |
 *                             (fine index delta varint, count varint)...
 *   str     = length varint | bytes;  f64 = IEEE-754 bits, little-endian
 * All integers little-endian. The sync word lets a reader find the next
 * record after a frame that does not hold. */
#include "internal/history_internal.h"
#include "internal/span_internal.h"

#include <math.h>

/* ------------------------------------------------------------ CRC-32C */

static uint32_t crc_table[256];
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[i] = c;
    }
}

uint32_t pm__crc32c(const void *data, size_t n)
{
    pthread_once(&crc_once, crc_init);
    const unsigned char *p = data;
    uint32_t c = 0xFFFFFFFFu;
    while (n--) c = crc_table[(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ------------------------------------------------------------ writing */

static pm_status_t put(pm_buf_t *b, const void *p, size_t n) { return pm_buf_append(b, p, n); }

static pm_status_t put_u8(pm_buf_t *b, unsigned v)
{
    unsigned char c = (unsigned char)v;
    return put(b, &c, 1);
}

static pm_status_t put_varint(pm_buf_t *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7F);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    return put(b, tmp, n);
}

static pm_status_t put_f64(pm_buf_t *b, double v)
{
    uint64_t u = pm__d2u(v);
    unsigned char tmp[8];
    for (int i = 0; i < 8; i++) tmp[i] = (unsigned char)(u >> (8 * i));
    return put(b, tmp, 8);
}

static pm_status_t put_str(pm_buf_t *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    pm_status_t st = put_varint(b, n);
    return st == PM_OK && n ? put(b, s, n) : st;
}

#define TRY(x)                                                                                     \
    do {                                                                                           \
        pm_status_t st_ = (x);                                                                     \
        if (st_ != PM_OK) return st_;                                                              \
    } while (0)

static pm_status_t put_histogram(pm_buf_t *b, const pm_snap_family_t *f, const pm_snap_series_t *x)
{
    TRY(put_varint(b, pm_snap_series_count(x)));
    TRY(put_f64(b, pm_snap_series_sum(x)));
    TRY(put_f64(b, pm_snap_series_min(x)));
    TRY(put_f64(b, pm_snap_series_max(x)));
    TRY(put_f64(b, pm_snap_series_stddev(x)));
    uint64_t prev = 0;
    size_t nb = pm_snap_family_bucket_count(f);
    for (size_t k = 0; k <= nb; k++) {
        uint64_t c = pm_snap_series_bucket_cumulative(x, k);
        TRY(put_varint(b, c >= prev ? c - prev : 0));
        if (c > prev) prev = c;
    }
    const pm_hdata_t *h = pm_snap_series_hdata(x);
    TRY(put_f64(b, h ? h->lowest : 0));
    TRY(put_f64(b, h ? h->highest : 0));
    TRY(put_varint(b, h ? h->n : 0));
    uint32_t last = 0;
    for (uint32_t i = 0; h && i < h->n; i++) {
        TRY(put_varint(b, h->idx[i] - last));
        TRY(put_varint(b, h->cnt[i]));
        last = h->idx[i];
    }
    return PM_OK;
}

pm_status_t pm__history_encode(const pm_snapshot_t *s, bool (*wants)(const char *, const void *),
                               const void *ctx, pm_buf_t *b)
{
    TRY(put_u8(b, PM_HISTORY_KIND_SNAPSHOT));
    TRY(put_f64(b, pm_snapshot_time(s)));
    size_t nfam = 0, n = pm_snapshot_family_count(s);
    for (size_t i = 0; i < n; i++)
        if (!wants || wants(pm_snap_family_name(pm_snapshot_family(s, i)), ctx)) nfam++;
    TRY(put_varint(b, nfam));
    for (size_t i = 0; i < n; i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (wants && !wants(pm_snap_family_name(f), ctx)) continue;
        pm_type_t t = pm_snap_family_type(f);
        TRY(put_str(b, pm_snap_family_name(f)));
        TRY(put_u8(b, (unsigned)t));
        TRY(put_str(b, pm_snap_family_help(f)));
        TRY(put_str(b, pm_snap_family_unit(f)));
        size_t nl = pm_snap_family_label_count(f), nbo = pm_snap_family_bucket_count(f);
        TRY(put_varint(b, nl));
        for (size_t k = 0; k < nl; k++) TRY(put_str(b, pm_snap_family_label_name(f, k)));
        TRY(put_varint(b, nbo));
        for (size_t k = 0; k < nbo; k++) TRY(put_f64(b, pm_snap_family_bucket_bound(f, k)));
        size_t ns = pm_snap_family_series_count(f);
        TRY(put_varint(b, ns));
        for (size_t j = 0; j < ns; j++) {
            const pm_snap_series_t *x = pm_snap_family_series(f, j);
            for (size_t k = 0; k < nl; k++) TRY(put_str(b, pm_snap_series_label_value(x, k)));
            TRY(put_u8(b, pm_snap_series_is_overflow(x) ? 1 : 0));
            TRY(put_f64(b, pm_snap_series_created(x)));
            if (t == PM_TYPE_HISTOGRAM)
                TRY(put_histogram(b, f, x));
            else
                TRY(put_f64(b, pm_snap_series_value(x)));
        }
    }
    return PM_OK;
}

void pm__history_frame(unsigned char hdr[PM_HISTORY_FRAME], const void *body, size_t len)
{
    uint32_t w[3] = {PM_HISTORY_SYNC, (uint32_t)len, pm__crc32c(body, len)};
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 4; k++) hdr[4 * i + k] = (unsigned char)(w[i] >> (8 * k));
}

static uint32_t get_u32le(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bool pm__history_frame_ok(const unsigned char *p, const unsigned char *end, uint32_t *len)
{
    if (end - p < PM_HISTORY_FRAME || get_u32le(p) != PM_HISTORY_SYNC) return false;
    uint32_t n = get_u32le(p + 4);
    if (n == 0 || n > PM_HISTORY_MAX_BODY || (size_t)(end - p - PM_HISTORY_FRAME) < n) return false;
    if (pm__crc32c(p + PM_HISTORY_FRAME, n) != get_u32le(p + 8)) return false;
    *len = n;
    return true;
}

/* ------------------------------------------------------------ reading */

typedef struct {
    const unsigned char *p, *end;
    bool bad;
} rd;

static uint64_t get_varint(rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) break;
        unsigned char c = *r->p++;
        v |= (uint64_t)(c & 0x7F) << shift;
        if (!(c & 0x80)) return v;
    }
    r->bad = true;
    return 0;
}

static unsigned get_u8(rd *r)
{
    if (r->p >= r->end) {
        r->bad = true;
        return 0;
    }
    return *r->p++;
}

static double get_f64(rd *r)
{
    if (r->end - r->p < 8) {
        r->bad = true;
        r->p = r->end;
        return 0;
    }
    uint64_t u = 0;
    for (int i = 0; i < 8; i++) u |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    return pm__u2d(u);
}

/* A string copied into the snapshot's arena (NUL-terminated), or NULL. */
static const char *get_str(rd *r, pm_snapshot_t *s)
{
    uint64_t n = get_varint(r);
    if (r->bad || n > (uint64_t)(r->end - r->p) || memchr(r->p, 0, (size_t)n)) {
        r->bad = true;
        return NULL;
    }
    char *d = pm__arena_alloc(s, (size_t)n + 1);
    if (!d) {
        r->bad = true;
        return NULL;
    }
    memcpy(d, r->p, (size_t)n);
    d[n] = '\0';
    r->p += n;
    return d;
}

unsigned pm__history_kind(const void *body, size_t len)
{
    return len ? *(const unsigned char *)body : 0;
}

double pm__history_time(const void *body, size_t len)
{
    rd r = {body, (const unsigned char *)body + len, false};
    (void)get_u8(&r);
    double t = get_f64(&r);
    return r.bad ? NAN : t;
}

/* Reads a histogram series into x; false when the bytes do not hold. */
static bool get_histogram(rd *r, pm_snapshot_t *s, pm_snap_family_t *f, pm_snap_series_t *x)
{
    pm_snap_hist *h = pm__arena_alloc(s, sizeof *h);
    uint64_t *cum = pm__arena_alloc(s, (f->nbounds + 1) * sizeof *cum);
    if (!h || !cum) return false;
    memset(h, 0, sizeof *h);
    h->count = get_varint(r);
    h->sum = get_f64(r);
    h->min = get_f64(r);
    h->max = get_f64(r);
    h->stddev = get_f64(r);
    uint64_t c = 0;
    for (size_t k = 0; k <= f->nbounds; k++) {
        uint64_t d = get_varint(r);
        if (d > UINT64_MAX - c) return false;
        cum[k] = c += d;
    }
    if (c != h->count) return false;
    h->cum = cum;
    pm_hdata_t *hd = &h->hd;
    hd->a = s->a;
    hd->borrowed = 1;
    hd->lowest = get_f64(r);
    hd->highest = get_f64(r);
    uint64_t n = get_varint(r);
    if (r->bad || !(hd->lowest > 0) || !(hd->highest > hd->lowest) || !isfinite(hd->highest) ||
        n > (uint64_t)(r->end - r->p) / 2)
        return false;
    hd->lo_key = pm__d2u(hd->lowest) >> PM_HIST_SHIFT;
    hd->nb = (uint32_t)((pm__d2u(hd->highest) >> PM_HIST_SHIFT) - hd->lo_key + 1);
    hd->idx = pm__arena_alloc(s, (n ? n : 1) * sizeof *hd->idx);
    hd->cnt = pm__arena_alloc(s, (n ? n : 1) * sizeof *hd->cnt);
    if (!hd->idx || !hd->cnt) return false;
    uint64_t idx = 0, total = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t d = get_varint(r), k = get_varint(r);
        if ((i && d == 0) || (idx += d) > hd->nb + 1 || k == 0 || k > UINT64_MAX - total)
            return false;
        hd->idx[i] = (uint32_t)idx;
        hd->cnt[i] = k;
        total += k;
    }
    if (r->bad || total != h->count) return false;
    hd->n = hd->cap = (uint32_t)n;
    hd->count = h->count;
    hd->sum = h->sum;
    hd->min = h->count ? h->min : INFINITY;
    hd->max = h->count ? h->max : -INFINITY;
    x->h = h;
    x->value = h->sum;
    return true;
}

pm_status_t pm__history_decode(const void *body, size_t len, pm_snapshot_t *s)
{
    rd r = {body, (const unsigned char *)body + len, false};
    if (get_u8(&r) != PM_HISTORY_KIND_SNAPSHOT) return PM_EPARSE;
    s->time = get_f64(&r);
    uint64_t nfam = get_varint(&r);
    for (uint64_t i = 0; i < nfam && !r.bad; i++) {
        const char *name = get_str(&r, s);
        unsigned type = get_u8(&r);
        const char *help = get_str(&r, s), *unit = get_str(&r, s);
        uint64_t nl = get_varint(&r);
        if (r.bad || type < PM_TYPE_COUNTER || type > PM_TYPE_HISTOGRAM ||
            nl > (uint64_t)(r.end - r.p))
            return PM_EPARSE;
        const char **labels = pm__arena_alloc(s, (nl ? nl : 1) * sizeof *labels);
        if (!labels) return PM_ENOMEM;
        for (uint64_t k = 0; k < nl; k++) labels[k] = get_str(&r, s);
        uint64_t nbo = get_varint(&r);
        if (r.bad || nbo > (uint64_t)(r.end - r.p) / 8) return PM_EPARSE;
        pm_snap_family_t *f = pm__snap_family_add(s, (pm_type_t)type, name, help, unit,
                                                  labels, (size_t)nl);
        if (!f) return PM_ENOMEM;
        if (nbo) {
            double *bounds = pm__arena_alloc(s, nbo * sizeof *bounds);
            if (!bounds) return PM_ENOMEM;
            for (uint64_t k = 0; k < nbo; k++) bounds[k] = get_f64(&r);
            f->bounds = bounds;
            f->nbounds = (size_t)nbo;
        }
        if (type != PM_TYPE_HISTOGRAM && nbo) return PM_EPARSE;
        uint64_t ns = get_varint(&r);
        if (r.bad || ns > (uint64_t)(r.end - r.p)) return PM_EPARSE;
        const char **values = pm__arena_alloc(s, (nl ? nl : 1) * sizeof *values);
        if (!values) return PM_ENOMEM;
        for (uint64_t j = 0; j < ns && !r.bad; j++) {
            for (uint64_t k = 0; k < nl; k++) values[k] = get_str(&r, s);
            unsigned flags = get_u8(&r);
            double created = get_f64(&r);
            if (r.bad) return PM_EPARSE;
            pm_snap_series_t *x = pm__snap_series_add(s, f, values, 0);
            if (!x) return PM_ENOMEM;
            x->overflow = flags & 1;
            x->created = created;
            if (type == PM_TYPE_HISTOGRAM) {
                if (!get_histogram(&r, s, f, x)) return r.bad ? PM_EPARSE : PM_EPARSE;
            } else {
                x->value = get_f64(&r);
            }
        }
    }
    return r.bad || r.p != r.end ? PM_EPARSE : PM_OK;
}

/* ------------------------------------------------------------ segment files */

#include <dirent.h>
#include <stdlib.h>

uint64_t pm__history_segment_seq(const char *name)
{
    if (strncmp(name, "hist-", 5) || strlen(name) != 5 + 20 + 4 || strcmp(name + 25, ".pmh"))
        return 0;
    uint64_t v = 0;
    for (int i = 5; i < 25; i++) {
        if (name[i] < '0' || name[i] > '9') return 0;
        v = v * 10 + (uint64_t)(name[i] - '0');
    }
    return v;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void pm__history_list_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

pm_status_t pm__history_list(const char *dir, char ***names, size_t *n)
{
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return PM_EIO;
    char **v = NULL;
    size_t len = 0, cap = 0;
    pm_status_t st = PM_OK;
    for (struct dirent *e; (e = readdir(d));) {
        if (!pm__history_segment_seq(e->d_name)) continue;
        if (len == cap) {
            size_t nc = cap ? 2 * cap : 16;
            char **nv = realloc(v, nc * sizeof *nv);
            if (!nv) {
                st = PM_ENOMEM;
                break;
            }
            v = nv;
            cap = nc;
        }
        if (!(v[len] = strdup(e->d_name))) {
            st = PM_ENOMEM;
            break;
        }
        len++;
    }
    closedir(d);
    if (st != PM_OK) {
        pm__history_list_free(v, len);
        return st;
    }
    /* Fixed-width sequence numbers: name order is age order. */
    if (len > 1) qsort(v, len, sizeof *v, by_name);
    *names = v;
    *n = len;
    return PM_OK;
}

/* ------------------------------------------------------------ span records
 *
 *   body  = kind u8 (2: spans) | time f64 (the batch's last end, Unix s) |
 *           service str | nspans varint | span...
 *   span  = trace id 16 | span id 8 | flags u8 | parent id 8 | parent remote u8 |
 *           kind u8 | name str | start ns varint | end ns varint | status u8 |
 *           status message str | nattrs varint | attr... | nevents varint |
 *           (name str | time ns varint | key str (empty: none) | value str)...
 *   attr  = key str | type u8 | string str / int zigzag varint / double f64 / bool u8 */

static pm_status_t put_raw(pm_buf_t *b, const void *p, size_t n) { return put(b, p, n); }

pm_status_t pm__history_encode_spans(const pm_span_batch_t *batch, pm_buf_t *b)
{
    size_t n = pm_span_batch_count(batch);
    uint64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t e = pm_span_data_end_ns(pm_span_batch_span(batch, i));
        if (e > last) last = e;
    }
    TRY(put_u8(b, PM_HISTORY_KIND_SPANS));
    TRY(put_f64(b, (double)last * 1e-9));
    TRY(put_str(b, pm_span_batch_service(batch)));
    TRY(put_varint(b, n));
    for (size_t i = 0; i < n; i++) {
        const pm_span_data_t *s = pm_span_batch_span(batch, i);
        const pm_trace_context_t *c = pm_span_data_context(s);
        TRY(put_raw(b, c->trace_id, 16));
        TRY(put_raw(b, c->span_id, 8));
        TRY(put_u8(b, c->flags));
        TRY(put_raw(b, pm_span_data_parent_id(s), 8));
        TRY(put_u8(b, pm_span_data_parent_remote(s) ? 1 : 0));
        TRY(put_u8(b, (unsigned)pm_span_data_kind(s)));
        TRY(put_str(b, pm_span_data_name(s)));
        TRY(put_varint(b, pm_span_data_start_ns(s)));
        TRY(put_varint(b, pm_span_data_end_ns(s)));
        TRY(put_u8(b, (unsigned)pm_span_data_status(s)));
        TRY(put_str(b, pm_span_data_status_message(s)));
        size_t na = pm_span_data_attr_count(s);
        TRY(put_varint(b, na));
        for (size_t k = 0; k < na; k++) {
            pm_attr_type_t ty = pm_span_data_attr_type(s, k);
            TRY(put_str(b, pm_span_data_attr_key(s, k)));
            TRY(put_u8(b, (unsigned)ty));
            if (ty == PM_ATTR_STRING) {
                TRY(put_str(b, pm_span_data_attr_string(s, k)));
            } else if (ty == PM_ATTR_INT) {
                int64_t v = pm_span_data_attr_int(s, k);
                TRY(put_varint(b, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63)));
            } else if (ty == PM_ATTR_DOUBLE) {
                TRY(put_f64(b, pm_span_data_attr_double(s, k)));
            } else {
                TRY(put_u8(b, pm_span_data_attr_bool(s, k) ? 1 : 0));
            }
        }
        size_t ne = pm_span_data_event_count(s);
        TRY(put_varint(b, ne));
        for (size_t k = 0; k < ne; k++) {
            const char *key = pm_span_data_event_attr_key(s, k);
            TRY(put_str(b, pm_span_data_event_name(s, k)));
            TRY(put_varint(b, pm_span_data_event_time_ns(s, k)));
            TRY(put_str(b, key ? key : ""));
            TRY(put_str(b, key ? pm_span_data_event_attr_value(s, k) : ""));
        }
    }
    return PM_OK;
}

/* Spans decoded from a record: the batch the public accessors read, the
 * records behind it, and their strings in an arena. */
struct pm__history_spans {
    struct pm_span_batch b; /* first: a pm_span_batch_t * is this */
    pm_span_rec **recs;
    size_t n;
    pm_snapshot_t *strings; /* an arena, only for its allocator */
};

void pm__history_spans_free(pm_span_batch_t *b)
{
    struct pm__history_spans *h = (struct pm__history_spans *)(void *)b;
    if (!h) return;
    for (size_t i = 0; i < h->n; i++) free(h->recs[i]);
    free(h->recs);
    pm_snapshot_release(h->strings);
    free(h);
}

static bool get_raw(rd *r, void *out, size_t n)
{
    if ((size_t)(r->end - r->p) < n) {
        r->bad = true;
        return false;
    }
    memcpy(out, r->p, n);
    r->p += n;
    return true;
}

pm_status_t pm__history_decode_spans(const void *body, size_t len, pm_span_batch_t **out)
{
    *out = NULL;
    rd r = {body, (const unsigned char *)body + len, false};
    if (get_u8(&r) != PM_HISTORY_KIND_SPANS) return PM_EPARSE;
    (void)get_f64(&r);
    struct pm__history_spans *h = calloc(1, sizeof *h);
    if (!h) return PM_ENOMEM;
    pm_status_t st = PM_OK;
    if (!(h->strings = pm__calloc(&pm__default_alloc, sizeof *h->strings))) st = PM_ENOMEM;
    if (st == PM_OK) {
        h->strings->a = pm__default_alloc;
        atomic_init(&h->strings->refs, 1);
        h->b.service = get_str(&r, h->strings);
    }
    uint64_t n = st == PM_OK ? get_varint(&r) : 0;
    if (st == PM_OK && (r.bad || n > (uint64_t)(r.end - r.p) / 40)) st = PM_EPARSE;
    if (st == PM_OK && !(h->recs = calloc(n ? n : 1, sizeof *h->recs))) st = PM_ENOMEM;
    for (uint64_t i = 0; st == PM_OK && i < n; i++) {
        pm_span_rec *s = calloc(1, sizeof(struct pm_span_data));
        if (!s) {
            st = PM_ENOMEM;
            break;
        }
        h->recs[h->n++] = s;
        get_raw(&r, s->base.ctx.trace_id, 16);
        get_raw(&r, s->base.ctx.span_id, 8);
        s->base.ctx.flags = (uint8_t)get_u8(&r);
        get_raw(&r, s->base.parent_id, 8);
        s->base.parent_remote = (uint8_t)get_u8(&r);
        s->base.kind = (uint8_t)get_u8(&r);
        s->base.sampled = 1;
        const char *name = get_str(&r, h->strings);
        if (name) snprintf(s->name, sizeof s->name, "%s", name);
        s->start_ns = get_varint(&r);
        s->end_ns = get_varint(&r);
        s->start_mono = 0;
        s->end_mono = s->end_ns - s->start_ns;
        s->status = (uint8_t)get_u8(&r);
        s->status_msg = get_str(&r, h->strings);
        uint64_t na = get_varint(&r);
        if (r.bad || na > (uint64_t)(r.end - r.p)) {
            st = PM_EPARSE;
            break;
        }
        s->attrs = na ? pm__arena_alloc(h->strings, na * sizeof *s->attrs) : s->attrs_inline;
        if (!s->attrs) {
            st = PM_ENOMEM;
            break;
        }
        s->nattrs = s->capattrs = (uint32_t)na;
        for (uint64_t k = 0; k < na && !r.bad; k++) {
            pm_span_attr *a = &s->attrs[k];
            a->key = get_str(&r, h->strings);
            a->type = (pm_attr_type_t)get_u8(&r);
            if (a->type == PM_ATTR_STRING) {
                a->v.s = get_str(&r, h->strings);
            } else if (a->type == PM_ATTR_INT) {
                uint64_t z = get_varint(&r);
                a->v.i = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
            } else if (a->type == PM_ATTR_DOUBLE) {
                a->v.d = get_f64(&r);
            } else if (a->type == PM_ATTR_BOOL) {
                a->v.b = get_u8(&r) != 0;
            } else {
                r.bad = true;
            }
        }
        uint64_t ne = get_varint(&r);
        if (r.bad || ne > (uint64_t)(r.end - r.p)) {
            st = PM_EPARSE;
            break;
        }
        s->events = ne ? pm__arena_alloc(h->strings, ne * sizeof *s->events) : s->events_inline;
        if (!s->events) {
            st = PM_ENOMEM;
            break;
        }
        s->nevents = s->capevents = (uint32_t)ne;
        for (uint64_t k = 0; k < ne && !r.bad; k++) {
            pm_span_event *e = &s->events[k];
            e->name = get_str(&r, h->strings);
            e->time_ns = get_varint(&r);
            e->key = get_str(&r, h->strings);
            e->value = get_str(&r, h->strings);
            if (e->key && !*e->key) e->key = e->value = NULL;
        }
        if (r.bad) st = PM_EPARSE;
    }
    if (st == PM_OK && (r.bad || r.p != r.end)) st = PM_EPARSE;
    if (st != PM_OK) {
        pm__history_spans_free(&h->b);
        return st;
    }
    h->b.spans = (const pm_span_rec *const *)h->recs;
    h->b.n = h->n;
    *out = &h->b;
    return PM_OK;
}
