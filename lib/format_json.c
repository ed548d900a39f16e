/* JSON document (schema in doc/formats.md):
 *
 *   {"timestamp":T,"families":[
 *   {"name":..,"help":..,"unit":..,"type":"counter|gauge|histogram",
 *    "labels":[names],"series":[
 *   {"labels":{name:value},"overflow":false,"created":C,"value":V},...]},...]}
 *
 * Histogram series carry count, sum, min, max, mean, stddev, quantiles and
 * cumulative buckets instead of "value". A series with exemplars also has
 * "exemplars":[{"le":..,"value":V,"timestamp":T,"trace_id":..,"span_id":..}]
 * ("le" for histograms only). Every non-finite number (NaN, +Inf,
 * -Inf) is written as null: JSON has no spelling for them, and null keeps each
 * field's type "number or null" for consumers. One family and one series per
 * line keeps large documents diffable without costing a pretty-printer. */
#include "internal/format_internal.h"

#include <math.h>

/* Quantiles every histogram series reports, with their key text. */
static const struct {
    double q;
    const char *key;
} pm__json_quantiles[] = {{0.5, "0.5"}, {0.9, "0.9"}, {0.99, "0.99"}, {0.999, "0.999"}};

/* The formatter's scratch texts, reused from family to family. */
typedef struct {
    pm__pad_t blk[2];
    pm__labelset_t ls;
    pm__bounds_t bd; /* JSON number texts of the bounds */
} pm__json_t;

static void pm__json_histogram_fields(pm__writer_t *w, const pm__json_t *jt,
                                      const pm_snap_series_t *s)
{
    uint64_t count = pm_snap_series_count(s);
    PM__W_LIT(w, ",\"count\":");
    pm__w_u64(w, count);
    PM__W_LIT(w, ",\"sum\":");
    pm__w_json_number(w, pm_snap_series_sum(s));
    PM__W_LIT(w, ",\"min\":");
    pm__w_json_number(w, pm_snap_series_min(s));
    PM__W_LIT(w, ",\"max\":");
    pm__w_json_number(w, pm_snap_series_max(s));
    PM__W_LIT(w, ",\"mean\":");
    pm__w_json_number(w, pm_snap_series_mean(s));
    PM__W_LIT(w, ",\"stddev\":");
    pm__w_json_number(w, pm_snap_series_stddev(s));
    PM__W_LIT(w, ",\"quantiles\":{");
    for (size_t i = 0; i < sizeof pm__json_quantiles / sizeof pm__json_quantiles[0]; i++) {
        if (i) pm__w_char(w, ',');
        pm__w_char(w, '"');
        pm__w_str(w, pm__json_quantiles[i].key);
        PM__W_LIT(w, "\":");
        double v = NAN;
        /* PM_ENOENT (no observations) and any other failure read as null. */
        if (pm_snap_series_quantile(s, pm__json_quantiles[i].q, &v) != PM_OK) v = NAN;
        pm__w_json_number(w, v);
    }
    PM__W_LIT(w, "},\"buckets\":[");
    for (size_t b = 0; b < jt->bd.n; b++) {
        PM__W_LIT(w, "{\"le\":");
        pm__w_bytes(w, jt->bd.item[b].text, jt->bd.item[b].len);
        PM__W_LIT(w, ",\"count\":");
        pm__w_u64(w, pm_snap_series_bucket_cumulative(s, b));
        PM__W_LIT(w, "},");
    }
    PM__W_LIT(w, "{\"le\":\"+Inf\",\"count\":");
    pm__w_u64(w, count);
    PM__W_LIT(w, "}]");
}

/* `,"exemplars":[...]` when the series has any: one object per bucket that
 * holds one (histograms), or the counter's one. */
static void pm__json_exemplars(pm__writer_t *w, const pm_snap_family_t *f,
                               const pm_snap_series_t *s, int histogram)
{
    size_t nb = histogram ? pm_snap_family_bucket_count(f) : 0;
    int first = 1;
    for (size_t b = 0; b <= nb; b++) {
        pm__exemplar_ids_t ids;
        double value, t;
        if (pm__exemplar_get(s, b, &ids, &value, &t) != PM_OK) continue;
        if (first)
            PM__W_LIT(w, ",\"exemplars\":[{");
        else
            PM__W_LIT(w, ",{");
        first = 0;
        if (histogram) {
            if (b == nb) {
                PM__W_LIT(w, "\"le\":\"+Inf\",");
            } else {
                PM__W_LIT(w, "\"le\":");
                pm__w_json_number(w, pm_snap_family_bucket_bound(f, b));
                pm__w_char(w, ',');
            }
        }
        PM__W_LIT(w, "\"value\":");
        pm__w_json_number(w, value);
        PM__W_LIT(w, ",\"timestamp\":");
        pm__w_json_number(w, t);
        PM__W_LIT(w, ",\"trace_id\":\"");
        pm__w_bytes(w, ids.trace_id, 32);
        PM__W_LIT(w, "\",\"span_id\":\"");
        pm__w_bytes(w, ids.span_id, 16);
        PM__W_LIT(w, "\"}");
    }
    if (!first) pm__w_char(w, ']');
}

static const char *pm__json_type(pm_type_t t)
{
    switch (t) {
    case PM_TYPE_COUNTER:
        return "counter";
    case PM_TYPE_GAUGE:
        return "gauge";
    case PM_TYPE_HISTOGRAM:
        return "histogram";
    }
    return NULL;
}

/* A JSON number at p, unchecked (PM__NUM_MAX bytes): null when not finite. */
static inline char *pm__json_number_put(pm__writer_t *w, char *p, double v)
{
    if (!isfinite(v)) {
        memcpy(p, "null", 4);
        return p + 4;
    }
    return p + pm__fmt_double_c(p, v, &w->num);
}

/* `,` (but before the first series), then the series' block (its label
 * object between `\n{"labels":` and `,"created":`, see pm__block_render) and
 * the creation time, with one room check. */
static void pm__json_series_head(pm__writer_t *w, const pm__pad_t *blk, double created, int first)
{
    if ((size_t)(w->end - w->p) < blk->len + PM__PAD + PM__NUM_MAX + 1) {
        if (!first) pm__w_char(w, ',');
        pm__w_bytes(w, blk->p, blk->len);
        pm__w_json_number(w, created);
        return;
    }
    char *p = w->p;
    *p = ',';
    p += first == 0;
    pm__copy16(p, blk->p, blk->len);
    w->p = pm__json_number_put(w, p + blk->len, created);
}

/* `,"value":V` with one room check. */
static void pm__json_value(pm__writer_t *w, double v)
{
    if ((size_t)(w->end - w->p) < 16 + PM__NUM_MAX) {
        PM__W_LIT(w, ",\"value\":");
        pm__w_json_number(w, v);
        return;
    }
    static const char key[16] = ",\"value\":";
    memcpy(w->p, key, 16);
    w->p = pm__json_number_put(w, w->p + 9, v);
}

static pm_status_t pm__json_family(pm__writer_t *w, const pm_snap_family_t *f, const char *type,
                                   pm__json_t *jt)
{
    int histogram = pm_snap_family_type(f) == PM_TYPE_HISTOGRAM;
    pm_status_t st = pm__labelset_prepare(&jt->ls, f, 1);
    if (st == PM_OK && histogram) st = pm__bounds_prepare(&jt->bd, f, 1);
    if (st != PM_OK) return st;
    PM__W_LIT(w, "{\"name\":");
    pm__w_json_string(w, pm_snap_family_name(f));
    PM__W_LIT(w, ",\"help\":");
    pm__w_json_string(w, pm_snap_family_help(f));
    PM__W_LIT(w, ",\"unit\":");
    pm__w_json_string(w, pm_snap_family_unit(f));
    PM__W_LIT(w, ",\"type\":\"");
    pm__w_str(w, type);
    PM__W_LIT(w, "\",\"labels\":[");
    size_t nl = pm_snap_family_label_count(f);
    for (size_t i = 0; i < nl; i++) {
        if (i) pm__w_char(w, ',');
        pm__w_json_string(w, pm_snap_family_label_name(f, i));
    }
    PM__W_LIT(w, "],\"series\":[");
    pm__walk_t wk;
    pm__walk_start(&wk, f, &jt->ls, jt->blk);
    while (pm__walk_next(&wk)) {
        const pm__snap_row_t *row = wk.row;
        pm__json_series_head(w, wk.blk, row->created, wk.index == 0);
        if (histogram) {
            pm__json_histogram_fields(w, jt, row->s);
        } else {
            pm__json_value(w, row->value);
        }
        if (row->exemplars) pm__json_exemplars(w, f, row->s, histogram);
        pm__w_char(w, '}');
        if ((wk.index & 255) == 255 && pm__w_failed(w)) return wk.st;
    }
    if (wk.st != PM_OK) return wk.st;
    PM__W_LIT(w, "]}");
    return PM_OK;
}

pm_status_t pm__format_json(const pm_snapshot_t *s, pm__writer_t *w)
{
    return pm__format_json_filtered(s, w, NULL, NULL);
}

pm_status_t pm__format_json_filtered(const pm_snapshot_t *s, pm__writer_t *w,
                                     int (*keep)(const char *family, void *user), void *user)
{
    PM__W_LIT(w, "{\"timestamp\":");
    pm__w_json_number(w, pm_snapshot_time(s));
    PM__W_LIT(w, ",\"families\":[");
    size_t nf = pm_snapshot_family_count(s);
    int first = 1;
    pm__json_t jt = {0};
    pm_status_t st = PM_OK;
    for (size_t i = 0; i < nf && st == PM_OK && !pm__w_failed(w); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        const char *type = pm__json_type(pm_snap_family_type(f));
        if (!f || !type || (keep && !keep(pm_snap_family_name(f), user))) continue;
        if (!first) pm__w_char(w, ',');
        pm__w_char(w, '\n');
        first = 0;
        st = pm__json_family(w, f, type, &jt);
    }
    pm__pad_free(&jt.blk[0]);
    pm__pad_free(&jt.blk[1]);
    pm__labelset_free(&jt.ls);
    pm__bounds_free(&jt.bd);
    PM__W_LIT(w, "\n]}\n");
    return st;
}
