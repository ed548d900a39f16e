/* Histogram data: a plain, mergeable, serialisable value. Fine buckets are
 * kept sparse (sorted index/count pairs), so a snapshot of many mostly-empty
 * histograms stays small.
 *
 * Encoding (all integers little-endian):
 *   "PMH1" magic, f64 lowest, f64 highest, u64 count, f64 sum, f64 min, f64 max,
 *   u32 n, then n pairs (u32 fine index, u64 count) with strictly increasing index.
 * Decoding checks every field: range valid, indexes within [0, nb+1], counts
 * non-zero and summing to count. */
#include "internal/pm_internal.h"

#include <math.h>
#include <stdlib.h>

static bool range_ok(double lowest, double highest)
{
    return isfinite(lowest) && isfinite(highest) && lowest >= 2.2250738585072014e-308 &&
           highest > lowest &&
           (pm__d2u(highest) >> PM_HIST_SHIFT) - (pm__d2u(lowest) >> PM_HIST_SHIFT) < 16384;
}

static pm_hdata_t *hd_alloc(double lowest, double highest)
{
    pm_hdata_t *h = calloc(1, sizeof *h);
    if (!h) return NULL;
    h->a = pm__default_alloc;
    h->lowest = lowest;
    h->highest = highest;
    h->lo_key = pm__d2u(lowest) >> PM_HIST_SHIFT;
    h->nb = (uint32_t)((pm__d2u(highest) >> PM_HIST_SHIFT) - h->lo_key + 1);
    h->min = INFINITY;
    h->max = -INFINITY;
    return h;
}

pm_status_t pm_hdata_new(double lowest, double highest, pm_hdata_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!range_ok(lowest, highest)) return PM_ERANGE;
    pm_hdata_t *h = hd_alloc(lowest, highest);
    if (!h) return PM_ENOMEM;
    *out = h;
    return PM_OK;
}

void pm_hdata_free(pm_hdata_t *h)
{
    if (!h || h->borrowed) return;
    free(h->idx);
    free(h->cnt);
    free(h);
}

static pm_status_t reserve(pm_hdata_t *h, uint32_t cap)
{
    if (cap <= h->cap) return PM_OK;
    uint32_t *ni = malloc(cap * sizeof *ni);
    uint64_t *nc = malloc(cap * sizeof *nc);
    if (!ni || !nc) {
        free(ni);
        free(nc);
        return PM_ENOMEM;
    }
    if (h->n) {
        memcpy(ni, h->idx, h->n * sizeof *ni);
        memcpy(nc, h->cnt, h->n * sizeof *nc);
    }
    free(h->idx);
    free(h->cnt);
    h->idx = ni;
    h->cnt = nc;
    h->cap = cap;
    return PM_OK;
}

pm_status_t pm_hdata_clone(const pm_hdata_t *h, pm_hdata_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!h) return PM_EINVAL;
    pm_hdata_t *c = hd_alloc(h->lowest, h->highest);
    if (!c) return PM_ENOMEM;
    if (reserve(c, h->n) != PM_OK) {
        pm_hdata_free(c);
        return PM_ENOMEM;
    }
    c->n = h->n;
    if (h->n) {
        memcpy(c->idx, h->idx, h->n * sizeof *c->idx);
        memcpy(c->cnt, h->cnt, h->n * sizeof *c->cnt);
    }
    c->count = h->count;
    c->sum = h->sum;
    c->min = h->min;
    c->max = h->max;
    *out = c;
    return PM_OK;
}

static uint32_t hd_index(const pm_hdata_t *h, double v)
{
    pm_hist_layout L = {.lowest = h->lowest, .lo_key = h->lo_key, .nb = h->nb};
    return pm__hist_index(&L, v);
}

pm_status_t pm_hdata_record(pm_hdata_t *h, double v)
{
    if (!h || h->borrowed || v != v) return PM_EINVAL;
    uint32_t idx = hd_index(h, v);
    uint32_t lo = 0, hi = h->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (h->idx[mid] < idx)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == h->n || h->idx[lo] != idx) {
        if (h->n == h->cap && reserve(h, h->cap ? h->cap * 2 : 16) != PM_OK) return PM_ENOMEM;
        memmove(h->idx + lo + 1, h->idx + lo, (h->n - lo) * sizeof *h->idx);
        memmove(h->cnt + lo + 1, h->cnt + lo, (h->n - lo) * sizeof *h->cnt);
        h->idx[lo] = idx;
        h->cnt[lo] = 0;
        h->n++;
    }
    h->cnt[lo]++;
    h->count++;
    h->sum += v;
    if (v < h->min) h->min = v;
    if (v > h->max) h->max = v;
    return PM_OK;
}

pm_status_t pm_hdata_merge(pm_hdata_t *dst, const pm_hdata_t *src)
{
    if (!dst || !src || dst->borrowed) return PM_EINVAL;
    if (dst->lowest != src->lowest || dst->highest != src->highest) return PM_ERANGE;
    /* Bucket counts never exceed the total, so checking the total suffices. */
    if (dst->count + src->count < dst->count) return PM_ERANGE;
    uint32_t cap = dst->n + src->n;
    uint32_t *ni = malloc((cap ? cap : 1) * sizeof *ni);
    uint64_t *nc = malloc((cap ? cap : 1) * sizeof *nc);
    if (!ni || !nc) {
        free(ni);
        free(nc);
        return PM_ENOMEM;
    }
    uint32_t i = 0, j = 0, k = 0;
    while (i < dst->n || j < src->n) {
        if (j == src->n || (i < dst->n && dst->idx[i] < src->idx[j])) {
            ni[k] = dst->idx[i];
            nc[k++] = dst->cnt[i++];
        } else if (i == dst->n || src->idx[j] < dst->idx[i]) {
            ni[k] = src->idx[j];
            nc[k++] = src->cnt[j++];
        } else {
            ni[k] = dst->idx[i];
            nc[k++] = dst->cnt[i++] + src->cnt[j++];
        }
    }
    free(dst->idx);
    free(dst->cnt);
    dst->idx = ni;
    dst->cnt = nc;
    dst->n = k;
    dst->cap = cap ? cap : 1;
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) dst->min = src->min;
    if (src->max > dst->max) dst->max = src->max;
    return PM_OK;
}

pm_status_t pm__hdata_quantile_raw(double lowest, uint64_t lo_key, uint32_t nb, uint64_t count,
                                   double min, double max, const uint32_t *idx,
                                   const uint64_t *cnt, uint32_t n, double q, double *out)
{
    if (!(q >= 0 && q <= 1)) return PM_EINVAL;
    if (count == 0) return PM_ENOENT;
    /* Nearest rank: the smallest value with at least ceil(q*count) values <= it. */
    /* q*count rounds up by an ulp at times (0.07*100 = 7.000000000000001):
     * shave that off before ceil. Exact for counts below 2^50. */
    double t = q * (double)count;
    double rr = ceil(t - t * 0x1p-50);
    uint64_t rank = rr < 1 ? 1 : rr > (double)count ? count : (uint64_t)rr;
    /* The extremes are known exactly. */
    if (rank == 1) {
        *out = min;
        return PM_OK;
    }
    if (rank == count) {
        *out = max;
        return PM_OK;
    }
    uint64_t cum = 0;
    pm_hist_layout L = {.lowest = lowest, .lo_key = lo_key, .nb = nb};
    for (uint32_t i = 0; i < n; i++) {
        cum += cnt[i];
        if (cum >= rank) {
            *out = pm__hist_bucket_value(&L, idx[i], min, max);
            return PM_OK;
        }
    }
    *out = max;
    return PM_OK;
}

pm_status_t pm_hdata_quantile(const pm_hdata_t *h, double q, double *out)
{
    if (!h || !out) return PM_EINVAL;
    return pm__hdata_quantile_raw(h->lowest, h->lo_key, h->nb, h->count, h->min, h->max, h->idx,
                                  h->cnt, h->n, q, out);
}

uint64_t pm_hdata_count(const pm_hdata_t *h) { return h ? h->count : 0; }
double pm_hdata_sum(const pm_hdata_t *h) { return h ? h->sum : NAN; }
double pm_hdata_min(const pm_hdata_t *h) { return h && h->count ? h->min : NAN; }
double pm_hdata_max(const pm_hdata_t *h) { return h && h->count ? h->max : NAN; }

/* ------------------------------------------------------------ encoding */

static unsigned char *put_u64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) *p++ = (unsigned char)(v >> (8 * i));
    return p;
}
static unsigned char *put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) *p++ = (unsigned char)(v >> (8 * i));
    return p;
}
static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}
static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

#define HD_HEADER (4 + 6 * 8 + 4)

pm_status_t pm_hdata_encode(const pm_hdata_t *h, unsigned char **out, size_t *len)
{
    if (out) *out = NULL;
    if (len) *len = 0;
    if (!h || !out || !len) return PM_EINVAL;
    size_t n = HD_HEADER + (size_t)h->n * 12;
    unsigned char *b = malloc(n), *p = b;
    if (!b) return PM_ENOMEM;
    memcpy(p, "PMH1", 4);
    p += 4;
    p = put_u64(p, pm__d2u(h->lowest));
    p = put_u64(p, pm__d2u(h->highest));
    p = put_u64(p, h->count);
    p = put_u64(p, pm__d2u(h->sum));
    p = put_u64(p, pm__d2u(h->min));
    p = put_u64(p, pm__d2u(h->max));
    p = put_u32(p, h->n);
    for (uint32_t i = 0; i < h->n; i++) {
        p = put_u32(p, h->idx[i]);
        p = put_u64(p, h->cnt[i]);
    }
    *out = b;
    *len = n;
    return PM_OK;
}

pm_status_t pm_hdata_decode(const unsigned char *data, size_t len, pm_hdata_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!data) return PM_EINVAL;
    if (len < HD_HEADER || memcmp(data, "PMH1", 4)) return PM_EPARSE;
    const unsigned char *p = data + 4;
    double lowest = pm__u2d(get_u64(p)), highest = pm__u2d(get_u64(p + 8));
    uint64_t count = get_u64(p + 16);
    double sum = pm__u2d(get_u64(p + 24)), min = pm__u2d(get_u64(p + 32)),
           max = pm__u2d(get_u64(p + 40));
    uint32_t n = get_u32(p + 48);
    p += 52;
    if (!range_ok(lowest, highest)) return PM_EPARSE;
    if ((len - HD_HEADER) / 12 < n || len != HD_HEADER + (size_t)n * 12) return PM_EPARSE;
    /* NaN is never recorded; a NaN sum needs values of both signs (both
     * infinities, or partial sums that overflowed both ways). */
    if (min != min || max != max) return PM_EPARSE;
    if (sum != sum && !(count >= 2 && min < 0 && max > 0)) return PM_EPARSE;
    if (count == 0 ? (n != 0) : !(min <= max)) return PM_EPARSE;
    pm_hdata_t *h = hd_alloc(lowest, highest);
    if (!h) return PM_ENOMEM;
    if (n && reserve(h, n) != PM_OK) {
        pm_hdata_free(h);
        return PM_ENOMEM;
    }
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++, p += 12) {
        uint32_t idx = get_u32(p);
        uint64_t c = get_u64(p + 4);
        if (idx > h->nb + 1 || c == 0 || (i && idx <= h->idx[i - 1]) || total + c < total) {
            pm_hdata_free(h);
            return PM_EPARSE;
        }
        total += c;
        h->idx[i] = idx;
        h->cnt[i] = c;
    }
    if (total != count) {
        pm_hdata_free(h);
        return PM_EPARSE;
    }
    h->n = n;
    h->count = count;
    h->sum = sum;
    if (count) {
        h->min = min;
        h->max = max;
    }
    *out = h;
    return PM_OK;
}
