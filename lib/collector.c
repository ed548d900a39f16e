/* Collectors: host callbacks that emit families into a snapshot being built.
 * The list is guarded by the registry's snapshot lock, which is also held
 * while collectors run, so removal waits for a running collector. */
#include "internal/snapshot_internal.h"

#include <math.h>

struct pm_emit {
    pm_registry *r;
    pm_snapshot_t *s;
    pm_snap_family_t *cur;
    size_t first_fam; /* families emitted by this collector start here */
    pm_status_t err;  /* first allocation failure */
    uint32_t *seen;   /* open-addressed series index + 1 of cur, by label hash */
    size_t seencap;
};

PM_TLS int pm__in_callback;

pm_status_t pm_collector_add(pm_registry_t *r, const char *name, pm_collect_fn fn, void *user,
                             pm_release_fn release, pm_collector_t **out)
{
    pm_cb_entry *e = NULL;
    /* From inside a callback the snapshot lock is held: refuse, never deadlock. */
    pm_status_t st = pm__cb_add(r ? &r->a : NULL, r ? &r->snap_lock : NULL,
                                r ? &r->collectors : NULL, name, (void (*)(void))fn, user, release,
                                pm__in_callback != 0, &e);
    if (e) e->r = r;
    if (out) *out = (pm_collector_t *)e;
    return st;
}

pm_status_t pm_collector_remove(pm_collector_t *handle)
{
    pm_cb_entry *c = (pm_cb_entry *)handle;
    if (!c) return PM_OK;
    if (pm__in_callback) return PM_ESTATE;
    pm_registry *r = c->r;
    pthread_mutex_lock(&r->snap_lock); /* waits for a running collector */
    pm__cb_unlink(&r->collectors, c);
    pthread_mutex_unlock(&r->snap_lock);
    pm__cb_free(&r->a, c);
    return PM_OK;
}

void pm__collectors_free(pm_registry *r) { pm__cb_free_all(&r->a, &r->collectors); }

void pm__collectors_run(pm_registry *r, pm_snapshot_t *s)
{
    for (pm_cb_entry *c = r->collectors; c; c = c->next) {
        pm_emit_t e = {r, s, NULL, s->nfam, PM_OK, NULL, 0};
        pm__in_callback++;
        pm_status_t st = ((pm_collect_fn)c->fn)(&e, c->user);
        pm__in_callback--;
        c->runs_new++;
        if (st != PM_OK || e.err != PM_OK) {
            c->failures_new++;
            s->nfam = e.first_fam; /* drop what it emitted; the arena keeps the bytes */
        }
    }
}

void pm__collectors_settle(pm_registry *r, bool keep)
{
    for (pm_cb_entry *c = r->collectors; c; c = c->next) {
        if (keep) {
            c->runs += c->runs_new;
            c->failures += c->failures_new;
        }
        c->runs_new = c->failures_new = 0;
    }
}

pm_status_t pm__collectors_self_metrics(pm_registry *r, pm_snapshot_t *s)
{
    static const char *const label[] = {"collector"};
    pm_snap_family_t *runs = pm__snap_family_add(
        s, PM_TYPE_COUNTER, "perfmetrics_collector_runs", "Collector callback runs.", "", label, 1);
    pm_snap_family_t *fails = pm__snap_family_add(
        s, PM_TYPE_COUNTER, "perfmetrics_collector_failures",
        "Collector runs that failed (their output was dropped).", "", label, 1);
    if (!runs || !fails) return PM_ENOMEM;
    for (pm_cb_entry *c = r->collectors; c; c = c->next) {
        const char *v[1] = {c->name};
        if (!pm__snap_series_add(s, runs, v, (double)(c->runs + c->runs_new)) ||
            !pm__snap_series_add(s, fails, v, (double)(c->failures + c->failures_new)))
            return PM_ENOMEM;
    }
    return PM_OK;
}

static bool name_taken(pm_emit_t *e, pm_type_t type, const char *name)
{
    for (size_t i = 0; i < e->s->nfam; i++)
        if (pm__names_clash(type, name, e->s->fams[i]->type, e->s->fams[i]->name)) return true;
    return false;
}

static pm_status_t emit_family(pm_emit_t *e, pm_type_t type, const char *name, const char *help,
                               const char *unit, const char *const *label_names, size_t n_labels,
                               bool reserved_ok);

pm_status_t pm_emit_family(pm_emit_t *e, pm_type_t type, const char *name, const char *help,
                           const char *unit, const char *const *label_names, size_t n_labels)
{
    return emit_family(e, type, name, help, unit, label_names, n_labels, false);
}

pm_status_t pm__emit_family_reserved(pm_emit_t *e, pm_type_t type, const char *name,
                                     const char *help, const char *const *label_names,
                                     size_t n_labels)
{
    return emit_family(e, type, name, help, "", label_names, n_labels, true);
}

static pm_status_t emit_family(pm_emit_t *e, pm_type_t type, const char *name, const char *help,
                               const char *unit, const char *const *label_names, size_t n_labels,
                               bool reserved_ok)
{
    if (!e || !name) return PM_EINVAL;
    e->cur = NULL;
    if (type == PM_TYPE_HISTOGRAM) return PM_ETYPE;
    if (type != PM_TYPE_COUNTER && type != PM_TYPE_GAUGE) return PM_EINVAL;
    if (!help) help = "";
    if (strlen(help) > PM_MAX_HELP || !pm__valid_utf8(help, strlen(help))) return PM_EUTF8;
    if (!pm__valid_metric_name(name) || (!reserved_ok && !strncmp(name, "perfmetrics_", 12)))
        return PM_EBADNAME;
    size_t nl = strlen(name);
    if (type == PM_TYPE_COUNTER && nl >= 6 && !strcmp(name + nl - 6, "_total")) return PM_EBADNAME;
    if (unit && *unit) {
        size_t ul = strlen(unit);
        if (!pm__valid_unit(unit)) return PM_EBADNAME;
        if (nl <= ul || name[nl - ul - 1] != '_' || strcmp(name + nl - ul, unit)) return PM_EBADNAME;
    }
    if (n_labels > PM_MAX_LABELS) return PM_ERANGE;
    if (n_labels && !label_names) return PM_EINVAL;
    for (size_t i = 0; i < n_labels; i++) {
        if (!label_names[i]) return PM_EINVAL;
        if (!pm__valid_label_name(label_names[i])) return PM_EBADLABEL;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(label_names[i], label_names[j])) return PM_EBADLABEL;
    }
    if (name_taken(e, type, name)) return PM_EEXIST;
    e->seen = NULL;
    e->seencap = 0;
    e->cur = pm__snap_family_add(e->s, type, name, help, unit, label_names, n_labels);
    if (!e->cur) {
        e->err = PM_ENOMEM;
        return PM_ENOMEM;
    }
    return PM_OK;
}

static bool same_values(const pm_snap_series_t *x, const char *const *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(x->values[i], v[i])) return false;
    return true;
}

/* Finds the sample of cur with these values; *slot gets where a new one goes.
 * Rebuilds the index (in the snapshot arena) when half full. */
static pm_status_t seen_find(pm_emit_t *e, const char *const *v, size_t n, bool *dup,
                             size_t *slot)
{
    pm_snap_family_t *f = e->cur;
    if ((f->nseries + 1) * 2 > e->seencap) {
        size_t cap = 16;
        while (cap < (f->nseries + 1) * 4) cap *= 2;
        uint32_t *t = pm__arena_alloc(e->s, cap * sizeof *t);
        if (!t) return PM_ENOMEM;
        memset(t, 0, cap * sizeof *t);
        for (size_t i = 0; i < f->nseries; i++) {
            size_t j = pm__hash_values(f->series[i].values, n) & (cap - 1);
            while (t[j]) j = (j + 1) & (cap - 1);
            t[j] = (uint32_t)i + 1;
        }
        e->seen = t;
        e->seencap = cap;
    }
    size_t j = pm__hash_values(v, n) & (e->seencap - 1);
    for (; e->seen[j]; j = (j + 1) & (e->seencap - 1))
        if (same_values(&f->series[e->seen[j] - 1], v, n)) {
            *dup = true;
            return PM_OK;
        }
    *dup = false;
    *slot = j;
    return PM_OK;
}

pm_status_t pm_emit_sample(pm_emit_t *e, const char *const *label_values, size_t n, double value)
{
    if (!e) return PM_EINVAL;
    if (!e->cur) return PM_ESTATE;
    if (n != e->cur->nlabels) return PM_ELABELCOUNT;
    if (n && !label_values) return PM_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!label_values[i]) return PM_EINVAL;
        size_t len = strlen(label_values[i]);
        if (len > PM_MAX_LABEL_VALUE || !pm__valid_utf8(label_values[i], len)) return PM_EUTF8;
    }
    if (e->cur->type == PM_TYPE_COUNTER && !(value >= 0)) return PM_ERANGE;
    if (e->cur->nseries >= UINT32_MAX - 1) return PM_ERANGE;
    bool dup;
    size_t slot;
    pm_status_t st = seen_find(e, label_values, n, &dup, &slot);
    if (st == PM_OK && dup) return PM_EEXIST;
    if (st != PM_OK || !pm__snap_series_add(e->s, e->cur, label_values, value)) {
        e->err = PM_ENOMEM;
        return PM_ENOMEM;
    }
    e->seen[slot] = (uint32_t)e->cur->nseries; /* index + 1 of the sample just added */
    return PM_OK;
}
