/* OpenMetrics 1.0 text format.
 *
 * Differences from Prometheus 0.0.4 that matter here: metadata uses the family
 * name (a counter's TYPE line has no _total; its samples do), metadata order
 * is TYPE, UNIT, HELP, HELP escapes '"' like a label value, series carry
 * _created, le values must be canonical ("1.0", "+Inf"), bucket and counter
 * _total lines may carry an exemplar, and the exposition ends with "# EOF".
 *
 * A series' label block is rendered once and copied onto each of its lines
 * (_total and _created; every bucket, _count, _sum and _created). */
#include "internal/format_internal.h"

#include <math.h>

/* The formatter's scratch texts, reused from family to family. */
typedef struct {
    pm__pad_t name, blk[2];
    pm__labelset_t ls;
    pm__bounds_t bd;
} pm__om_t;

static void pm__om_created(pm__writer_t *w, const pm__om_t *ot, const pm__pad_t *blk,
                           double created)
{
    /* _created is optional (SHOULD); an unknown creation time leaves it out. */
    if (isnan(created)) return;
    pm__w_sample(w, &ot->name, &pm__sfx_created, blk, NULL, created);
}

static void pm__om_metadata(pm__writer_t *w, const pm_snap_family_t *f, const pm__om_t *ot,
                            const char *type)
{
    pm__w_meta_head(w, "TYPE", &ot->name, &pm__sfx_none);
    pm__w_str(w, type);
    pm__w_char(w, '\n');
    /* An empty UNIT or HELP equals none (spec), so those lines are left out. */
    const char *unit = pm_snap_family_unit(f);
    if (unit && unit[0]) {
        pm__w_meta_head(w, "UNIT", &ot->name, &pm__sfx_none);
        pm__w_str(w, unit);
        pm__w_char(w, '\n');
    }
    const char *help = pm_snap_family_help(f);
    if (help && help[0]) {
        pm__w_meta_head(w, "HELP", &ot->name, &pm__sfx_none);
        pm__w_escaped_label(w, help);
        pm__w_char(w, '\n');
    }
}

static pm_status_t pm__om_scalar(pm__writer_t *w, const pm_snap_family_t *f, pm__om_t *ot,
                                 int counter)
{
    pm__om_metadata(w, f, ot, counter ? "counter" : "gauge");
    const pm__suffix_t *sfx = counter ? &pm__sfx_total : &pm__sfx_none;
    pm__walk_t wk;
    pm__walk_start(&wk, f, &ot->ls, ot->blk);
    while (pm__walk_next(&wk)) {
        const pm__snap_row_t *row = wk.row;
        if (counter && row->exemplars) {
            pm__w_head(w, &ot->name, sfx, wk.blk, NULL);
            pm__w_double(w, row->value);
            pm__w_exemplar(w, row->s, 0);
            pm__w_char(w, '\n');
        } else {
            pm__w_sample(w, &ot->name, sfx, wk.blk, NULL, row->value);
        }
        if (counter) pm__om_created(w, ot, wk.blk, row->created);
        /* After a failed callback or allocation the rest is discarded anyway. */
        if ((wk.index & 255) == 255 && pm__w_failed(w)) break;
    }
    return wk.st;
}

static pm_status_t pm__om_histogram(pm__writer_t *w, const pm_snap_family_t *f, pm__om_t *ot)
{
    pm__om_metadata(w, f, ot, "histogram");
    /* The spec forbids _sum when a bucket bound is negative, and _sum is a
     * counter (never negative or NaN); _count must appear iff _sum does. */
    int negative_bound = ot->bd.n > 0 && pm_snap_family_bucket_bound(f, 0) < 0;
    pm__walk_t wk;
    pm__walk_start(&wk, f, &ot->ls, ot->blk);
    while (pm__walk_next(&wk)) {
        const pm_snap_series_t *s = wk.row->s;
        uint64_t count = pm_snap_series_count(s);
        pm__w_buckets(w, &ot->name, wk.blk, s, &ot->bd, count, wk.row->exemplars);
        double sum = pm_snap_series_sum(s);
        if (!negative_bound && sum >= 0) {
            pm__w_sample_u64(w, &ot->name, &pm__sfx_count, wk.blk, NULL, count);
            pm__w_sample(w, &ot->name, &pm__sfx_sum, wk.blk, NULL, sum);
        }
        pm__om_created(w, ot, wk.blk, wk.row->created);
        if (pm__w_failed(w)) break;
    }
    return wk.st;
}

pm_status_t pm__format_openmetrics(const pm_snapshot_t *s, pm__writer_t *w)
{
    pm__om_t ot = {0};
    pm_status_t st = PM_OK;
    size_t nf = pm_snapshot_family_count(s);
    for (size_t i = 0; i < nf && st == PM_OK && !pm__w_failed(w); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!f) continue;
        const char *name = pm_snap_family_name(f);
        st = pm__pad_set(&ot.name, name, strlen(name));
        if (st == PM_OK) st = pm__labelset_prepare(&ot.ls, f, 0);
        if (st != PM_OK) break;
        switch (pm_snap_family_type(f)) {
        case PM_TYPE_COUNTER:
            st = pm__om_scalar(w, f, &ot, 1);
            break;
        case PM_TYPE_GAUGE:
            st = pm__om_scalar(w, f, &ot, 0);
            break;
        case PM_TYPE_HISTOGRAM:
            st = pm__bounds_prepare(&ot.bd, f, 0);
            if (st == PM_OK) st = pm__om_histogram(w, f, &ot);
            break;
        }
    }
    pm__pad_free(&ot.name);
    pm__pad_free(&ot.blk[0]);
    pm__pad_free(&ot.blk[1]);
    pm__labelset_free(&ot.ls);
    pm__bounds_free(&ot.bd);
    if (st == PM_OK) PM__W_LIT(w, "# EOF\n");
    return st;
}
