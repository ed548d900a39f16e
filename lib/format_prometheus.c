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

typedef struct {
    const char *name;
    size_t name_len;
    const char *suffix; /* "_total" for counters, else "" */
    size_t suffix_len;
    const pm__labelset_t *ls;
} pm__prom_family_t;

static void pm__prom_metadata(pm__writer_t *w, const pm_snap_family_t *f,
                              const pm__prom_family_t *pf, const char *type)
{
    /* An empty HELP is the same as none; leaving the line out spares parsers
     * a trailing space. */
    const char *help = pm_snap_family_help(f);
    if (help && help[0]) {
        pm__w_meta_head(w, "HELP", pf->name, pf->name_len, pf->suffix, pf->suffix_len);
        pm__w_escaped_help(w, help);
        pm__w_char(w, '\n');
    }
    pm__w_meta_head(w, "TYPE", pf->name, pf->name_len, pf->suffix, pf->suffix_len);
    pm__w_str(w, type);
    pm__w_char(w, '\n');
}

static void pm__prom_scalar(pm__writer_t *w, const pm_snap_family_t *f, const pm__prom_family_t *pf,
                            const char *type)
{
    pm__prom_metadata(w, f, pf, type);
    size_t n = pm_snap_family_series_count(f);
    for (size_t i = 0; i < n; i++) {
        const pm_snap_series_t *s = pm_snap_family_series(f, i);
        if (!s) continue;
        pm__w_sample_head(w, pf->name, pf->name_len, pf->suffix, pf->suffix_len, pf->ls, s, NULL,
                          0);
        pm__w_double(w, pm_snap_series_value(s));
        pm__w_char(w, '\n');
        /* After a failed callback or allocation the rest is discarded anyway. */
        if ((i & 255) == 255 && pm__w_failed(w)) return;
    }
}

static void pm__prom_histogram(pm__writer_t *w, const pm_snap_family_t *f,
                               const pm__prom_family_t *pf, const pm__bounds_t *bd)
{
    pm__prom_metadata(w, f, pf, "histogram");
    size_t n = pm_snap_family_series_count(f);
    for (size_t i = 0; i < n; i++) {
        const pm_snap_series_t *s = pm_snap_family_series(f, i);
        if (!s) continue;
        uint64_t count = pm_snap_series_count(s);
        pm__w_buckets(w, pf->name, pf->name_len, pf->ls, s, bd, count, 0);
        pm__w_sample_head(w, pf->name, pf->name_len, PM__LIT_ARG("_sum"), pf->ls, s, NULL, 0);
        pm__w_double(w, pm_snap_series_sum(s));
        pm__w_char(w, '\n');
        pm__w_sample_head(w, pf->name, pf->name_len, PM__LIT_ARG("_count"), pf->ls, s, NULL, 0);
        pm__w_u64(w, count);
        pm__w_char(w, '\n');
        if (pm__w_failed(w)) return;
    }
}

pm_status_t pm__format_prometheus(const pm_snapshot_t *s, pm__writer_t *w)
{
    pm__labelset_t ls = {0};
    pm__bounds_t bd = {0};
    pm_status_t st = PM_OK;
    size_t nf = pm_snapshot_family_count(s);
    for (size_t i = 0; i < nf && st == PM_OK && !pm__w_failed(w); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!f) continue;
        const char *name = pm_snap_family_name(f);
        pm__prom_family_t pf = {name, strlen(name), "", 0, &ls};
        st = pm__labelset_prepare(&ls, f);
        if (st != PM_OK) break;
        switch (pm_snap_family_type(f)) {
        case PM_TYPE_COUNTER:
            pf.suffix = "_total";
            pf.suffix_len = 6;
            pm__prom_scalar(w, f, &pf, "counter");
            break;
        case PM_TYPE_GAUGE:
            pm__prom_scalar(w, f, &pf, "gauge");
            break;
        case PM_TYPE_HISTOGRAM:
            st = pm__bounds_prepare(&bd, f);
            if (st == PM_OK) pm__prom_histogram(w, f, &pf, &bd);
            break;
        }
    }
    pm__labelset_free(&ls);
    pm__bounds_free(&bd);
    return st;
}
