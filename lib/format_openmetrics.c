/* OpenMetrics 1.0 text format.
 *
 * Differences from Prometheus 0.0.4 that matter here: metadata uses the family
 * name (a counter's TYPE line has no _total; its samples do), metadata order
 * is TYPE, UNIT, HELP, HELP escapes '"' like a label value, series carry
 * _created, le values must be canonical ("1.0", "+Inf"), bucket and counter
 * _total lines may carry an exemplar, and the exposition ends with "# EOF". */
#include "internal/format_internal.h"

#include <math.h>

typedef struct {
    const char *name;
    size_t name_len;
    const pm__labelset_t *ls;
} pm__om_family_t;

static void pm__om_head(pm__writer_t *w, const pm__om_family_t *of, const char *suffix,
                        size_t suffix_len, const pm_snap_series_t *s)
{
    pm__w_sample_head(w, of->name, of->name_len, suffix, suffix_len, of->ls, s, NULL, 0);
}

static void pm__om_created(pm__writer_t *w, const pm__om_family_t *of, const pm_snap_series_t *s)
{
    /* _created is optional (SHOULD); an unknown creation time leaves it out. */
    double created = pm_snap_series_created(s);
    if (isnan(created)) return;
    pm__om_head(w, of, PM__LIT_ARG("_created"), s);
    pm__w_double(w, created);
    pm__w_char(w, '\n');
}

static void pm__om_metadata(pm__writer_t *w, const pm_snap_family_t *f, const pm__om_family_t *of,
                            const char *type)
{
    pm__w_meta_head(w, "TYPE", of->name, of->name_len, NULL, 0);
    pm__w_str(w, type);
    pm__w_char(w, '\n');
    /* An empty UNIT or HELP equals none (spec), so those lines are left out. */
    const char *unit = pm_snap_family_unit(f);
    if (unit && unit[0]) {
        pm__w_meta_head(w, "UNIT", of->name, of->name_len, NULL, 0);
        pm__w_str(w, unit);
        pm__w_char(w, '\n');
    }
    const char *help = pm_snap_family_help(f);
    if (help && help[0]) {
        pm__w_meta_head(w, "HELP", of->name, of->name_len, NULL, 0);
        pm__w_escaped_label(w, help);
        pm__w_char(w, '\n');
    }
}

static void pm__om_scalar(pm__writer_t *w, const pm_snap_family_t *f, const pm__om_family_t *of,
                          int counter)
{
    pm__om_metadata(w, f, of, counter ? "counter" : "gauge");
    size_t n = pm_snap_family_series_count(f);
    for (size_t i = 0; i < n; i++) {
        const pm_snap_series_t *s = pm_snap_family_series(f, i);
        if (!s) continue;
        if (counter)
            pm__om_head(w, of, PM__LIT_ARG("_total"), s);
        else
            pm__om_head(w, of, NULL, 0, s);
        pm__w_double(w, pm_snap_series_value(s));
        if (counter && pm__snap_series_has_exemplars(s)) pm__w_exemplar(w, s, 0);
        pm__w_char(w, '\n');
        if (counter) pm__om_created(w, of, s);
        /* After a failed callback or allocation the rest is discarded anyway. */
        if ((i & 255) == 255 && pm__w_failed(w)) return;
    }
}

static void pm__om_histogram(pm__writer_t *w, const pm_snap_family_t *f, const pm__om_family_t *of,
                             const pm__bounds_t *bd)
{
    pm__om_metadata(w, f, of, "histogram");
    /* The spec forbids _sum when a bucket bound is negative, and _sum is a
     * counter (never negative or NaN); _count must appear iff _sum does. */
    int negative_bound = bd->n > 0 && pm_snap_family_bucket_bound(f, 0) < 0;
    size_t n = pm_snap_family_series_count(f);
    for (size_t i = 0; i < n; i++) {
        const pm_snap_series_t *s = pm_snap_family_series(f, i);
        if (!s) continue;
        uint64_t count = pm_snap_series_count(s);
        pm__w_buckets(w, of->name, of->name_len, of->ls, s, bd, count, 1);
        double sum = pm_snap_series_sum(s);
        if (!negative_bound && sum >= 0) {
            pm__om_head(w, of, PM__LIT_ARG("_count"), s);
            pm__w_u64(w, count);
            pm__w_char(w, '\n');
            pm__om_head(w, of, PM__LIT_ARG("_sum"), s);
            pm__w_double(w, sum);
            pm__w_char(w, '\n');
        }
        pm__om_created(w, of, s);
        if (pm__w_failed(w)) return;
    }
}

pm_status_t pm__format_openmetrics(const pm_snapshot_t *s, pm__writer_t *w)
{
    pm__labelset_t ls = {0};
    pm__bounds_t bd = {0};
    pm_status_t st = PM_OK;
    size_t nf = pm_snapshot_family_count(s);
    for (size_t i = 0; i < nf && st == PM_OK && !pm__w_failed(w); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!f) continue;
        const char *name = pm_snap_family_name(f);
        pm__om_family_t of = {name, strlen(name), &ls};
        st = pm__labelset_prepare(&ls, f);
        if (st != PM_OK) break;
        switch (pm_snap_family_type(f)) {
        case PM_TYPE_COUNTER:
            pm__om_scalar(w, f, &of, 1);
            break;
        case PM_TYPE_GAUGE:
            pm__om_scalar(w, f, &of, 0);
            break;
        case PM_TYPE_HISTOGRAM:
            st = pm__bounds_prepare(&bd, f);
            if (st == PM_OK) pm__om_histogram(w, f, &of, &bd);
            break;
        }
    }
    pm__labelset_free(&ls);
    pm__bounds_free(&bd);
    if (st == PM_OK) PM__W_LIT(w, "# EOF\n");
    return st;
}
