/* Prometheus text exposition format 0.0.4.
 *
 * Counters are exposed as <name>_total (family names never carry the suffix),
 * and so are their HELP and TYPE lines, because the Prometheus parser ties
 * metadata to the exact sample name. Histograms are <name>_bucket (cumulative,
 * le="+Inf" equal to _count), <name>_sum and <name>_count. le values use the
 * OpenMetrics canonical spelling ("1.0", "0.005") so that a series keeps one
 * identity whichever of the two text formats a scraper negotiates. There is no
 * UNIT line in 0.0.4; the unit is already the name's suffix. */
#include "internal/format_internal.h"

/* The formatter's scratch texts, reused from family to family. */
typedef struct {
    pm__pad_t name, blk[2];
    pm__labelset_t ls;
    pm__bounds_t bd;
} pm__prom_t;

static void pm__prom_metadata(pm__writer_t *w, const pm_snap_family_t *f, const pm__prom_t *pt,
                              const pm__suffix_t *sfx, const char *type)
{
    /* An empty HELP is the same as none; leaving the line out spares parsers
     * a trailing space. */
    const char *help = pm_snap_family_help(f);
    if (help && help[0]) {
        pm__w_meta_head(w, "HELP", &pt->name, sfx);
        pm__w_escaped_help(w, help);
        pm__w_char(w, '\n');
    }
    pm__w_meta_head(w, "TYPE", &pt->name, sfx);
    pm__w_str(w, type);
    pm__w_char(w, '\n');
}

static pm_status_t pm__prom_scalar(pm__writer_t *w, const pm_snap_family_t *f, pm__prom_t *pt,
                                   const pm__suffix_t *sfx, const char *type)
{
    pm__prom_metadata(w, f, pt, sfx, type);
    pm__walk_t wk;
    pm__walk_start(&wk, f, &pt->ls, pt->blk);
    while (pm__walk_next(&wk)) {
        pm__w_sample(w, &pt->name, sfx, wk.blk, NULL, wk.row->value);
        /* After a failed callback or allocation the rest is discarded anyway. */
        if ((wk.index & 255) == 255 && pm__w_failed(w)) break;
    }
    return wk.st;
}

static pm_status_t pm__prom_histogram(pm__writer_t *w, const pm_snap_family_t *f, pm__prom_t *pt)
{
    pm__prom_metadata(w, f, pt, &pm__sfx_none, "histogram");
    pm__walk_t wk;
    pm__walk_start(&wk, f, &pt->ls, pt->blk);
    while (pm__walk_next(&wk)) {
        const pm_snap_series_t *s = wk.row->s;
        uint64_t count = pm_snap_series_count(s);
        pm__w_buckets(w, &pt->name, wk.blk, s, &pt->bd, count, 0);
        pm__w_sample(w, &pt->name, &pm__sfx_sum, wk.blk, NULL, pm_snap_series_sum(s));
        pm__w_sample_u64(w, &pt->name, &pm__sfx_count, wk.blk, NULL, count);
        if (pm__w_failed(w)) break;
    }
    return wk.st;
}

pm_status_t pm__format_prometheus(const pm_snapshot_t *s, pm__writer_t *w)
{
    pm__prom_t pt = {0};
    pm_status_t st = PM_OK;
    size_t nf = pm_snapshot_family_count(s);
    for (size_t i = 0; i < nf && st == PM_OK && !pm__w_failed(w); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!f) continue;
        const char *name = pm_snap_family_name(f);
        st = pm__pad_set(&pt.name, name, strlen(name));
        if (st == PM_OK) st = pm__labelset_prepare(&pt.ls, f, 0);
        if (st != PM_OK) break;
        switch (pm_snap_family_type(f)) {
        case PM_TYPE_COUNTER:
            st = pm__prom_scalar(w, f, &pt, &pm__sfx_total, "counter");
            break;
        case PM_TYPE_GAUGE:
            st = pm__prom_scalar(w, f, &pt, &pm__sfx_none, "gauge");
            break;
        case PM_TYPE_HISTOGRAM:
            st = pm__bounds_prepare(&pt.bd, f, 0);
            if (st == PM_OK) st = pm__prom_histogram(w, f, &pt);
            break;
        }
    }
    pm__pad_free(&pt.name);
    pm__pad_free(&pt.blk[0]);
    pm__pad_free(&pt.blk[1]);
    pm__labelset_free(&pt.ls);
    pm__bounds_free(&pt.bd);
    return st;
}
