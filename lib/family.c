/* Families: options, registration, the lock-free series table, series
 * creation, removal, clearing and reclamation. */
#include "internal/exemplar_internal.h"

#include <math.h>
#include <stdlib.h>

struct pm_family_opts {
    char *unit;
    char **labels;
    size_t nlabels;
    size_t max_series;
    double ttl;
    double *bounds;
    size_t nbounds;
    double lowest, highest;
    int exemplars; /* -1: the type's default (histograms on, counters off) */
};

static const double default_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                        0.5,   1,    2.5,   5,    10};

pm_status_t pm_family_opts_new(pm_family_opts_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    pm_family_opts_t *o = calloc(1, sizeof *o);
    if (!o) return PM_ENOMEM;
    o->max_series = 10000;
    o->lowest = 1e-9;
    o->highest = 1e4;
    o->exemplars = -1;
    *out = o;
    return PM_OK;
}

static void free_strv(char **v, size_t n)
{
    if (!v) return;
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

void pm_family_opts_free(pm_family_opts_t *o)
{
    if (!o) return;
    free(o->unit);
    free_strv(o->labels, o->nlabels);
    free(o->bounds);
    free(o);
}

pm_status_t pm_family_opts_set_unit(pm_family_opts_t *o, const char *unit)
{
    if (!o) return PM_EINVAL;
    char *u = NULL;
    if (unit && *unit) {
        if (!pm__valid_unit(unit)) return PM_EBADNAME;
        if (!(u = strdup(unit))) return PM_ENOMEM;
    }
    free(o->unit);
    o->unit = u;
    return PM_OK;
}

pm_status_t pm_family_opts_set_labels(pm_family_opts_t *o, const char *const *names, size_t n)
{
    if (!o || (n && !names)) return PM_EINVAL;
    if (n > PM_MAX_LABELS) return PM_ERANGE;
    for (size_t i = 0; i < n; i++) {
        if (!names[i]) return PM_EINVAL;
        if (!pm__valid_label_name(names[i])) return PM_EBADLABEL;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(names[i], names[j])) return PM_EBADLABEL;
    }
    char **v = n ? calloc(n, sizeof *v) : NULL;
    if (n && !v) return PM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(v[i] = strdup(names[i]))) {
            free_strv(v, n);
            return PM_ENOMEM;
        }
    }
    free_strv(o->labels, o->nlabels);
    o->labels = v;
    o->nlabels = n;
    return PM_OK;
}

pm_status_t pm_family_opts_set_max_series(pm_family_opts_t *o, size_t max_series)
{
    if (!o) return PM_EINVAL;
    if (max_series < 1 || max_series > ((size_t)1 << 30)) return PM_ERANGE;
    o->max_series = max_series;
    return PM_OK;
}

pm_status_t pm_family_opts_set_ttl(pm_family_opts_t *o, double seconds)
{
    if (!o) return PM_EINVAL;
    if (!isfinite(seconds) || seconds < 0) return PM_ERANGE;
    o->ttl = seconds;
    return PM_OK;
}

pm_status_t pm_family_opts_set_buckets(pm_family_opts_t *o, const double *bounds, size_t n)
{
    if (!o || !bounds) return PM_EINVAL;
    if (n < 1 || n > PM_MAX_BOUNDS) return PM_ERANGE;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(bounds[i])) return PM_ERANGE;
        if (i && !(bounds[i] > bounds[i - 1])) return PM_ERANGE;
    }
    double *b = malloc(n * sizeof *b);
    if (!b) return PM_ENOMEM;
    memcpy(b, bounds, n * sizeof *b);
    free(o->bounds);
    o->bounds = b;
    o->nbounds = n;
    return PM_OK;
}

pm_status_t pm_family_opts_set_range(pm_family_opts_t *o, double lowest, double highest)
{
    if (!o) return PM_EINVAL;
    if (!isfinite(lowest) || !isfinite(highest) || !(lowest >= 2.2250738585072014e-308) ||
        !(highest > lowest))
        return PM_ERANGE;
    /* Bound the memory of one copy: at most 1100 octaves is all doubles; cap at 16384 buckets. */
    if ((pm__d2u(highest) >> PM_HIST_SHIFT) - (pm__d2u(lowest) >> PM_HIST_SHIFT) >= 16384)
        return PM_ERANGE;
    o->lowest = lowest;
    o->highest = highest;
    return PM_OK;
}

pm_status_t pm_family_opts_set_exemplars(pm_family_opts_t *o, int enabled)
{
    if (!o) return PM_EINVAL;
    o->exemplars = enabled != 0;
    return PM_OK;
}

/* Whether series of a `type` family registered with o carry exemplar slots.
 * Counters default to off: a slot (48 bytes) would be paid by every series. */
static int exemplars_of(pm_type_t type, const pm_family_opts_t *o)
{
    if (type == PM_TYPE_GAUGE) return 0;
    return o->exemplars < 0 ? type == PM_TYPE_HISTOGRAM : o->exemplars;
}

/* ------------------------------------------------------------ families */

static bool has_suffix(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return n >= m && !memcmp(s + n - m, suf, m);
}

static bool same_definition(const pm_family *f, pm_type_t type, const char *help,
                            const pm_family_opts_t *o, pm_gauge_fn cb)
{
    if (f->type != type || strcmp(f->help, help) || f->cb != cb) return false;
    if (strcmp(f->unit, o->unit ? o->unit : "") || f->nlabels != o->nlabels) return false;
    for (size_t i = 0; i < o->nlabels; i++)
        if (strcmp(f->labels[i], o->labels[i])) return false;
    if (f->max_series != o->max_series || f->ttl != o->ttl) return false;
    if (f->exemplars != exemplars_of(type, o)) return false;
    if (type == PM_TYPE_HISTOGRAM) {
        const double *b = o->bounds ? o->bounds : default_bounds;
        size_t nb = o->bounds ? o->nbounds : sizeof default_bounds / sizeof *default_bounds;
        if (f->hl.lowest != o->lowest || f->hl.highest != o->highest || f->hl.nbounds != nb)
            return false;
        for (size_t i = 0; i < nb; i++)
            if (f->hl.bounds[i] != b[i]) return false;
    }
    return true;
}

void pm__family_free(pm_registry *r, pm_family *f)
{
    if (!f) return;
    pm_series *s = f->head;
    while (s) {
        pm_series *n = s->next;
        pm__series_free_now(r, s);
        s = n;
    }
    for (s = f->detached; s;) {
        pm_series *n = s->next;
        pm__series_free_now(r, s);
        s = n;
    }
    if (f->overflow) pm__series_free_now(r, f->overflow);
    pm__free(&r->a, atomic_load_explicit(&f->table, memory_order_relaxed));
    pm__hist_layout_free(&r->a, &f->hl);
    if (f->labels)
        for (size_t i = 0; i < f->nlabels; i++) pm__free(&r->a, f->labels[i]);
    pm__free(&r->a, f->labels);
    pm__free(&r->a, f->name);
    pm__free(&r->a, f->help);
    pm__free(&r->a, f->unit);
    pm__free(&r->a, f);
}

static pm_family_opts_t default_opts(void)
{
    pm_family_opts_t d = {NULL, NULL, 0, 10000, 0, NULL, 0, 1e-9, 1e4, -1};
    return d;
}

static pm_status_t family_validate(pm_registry *r, pm_type_t type, const char *name,
                                   const char **help, const pm_family_opts_t *o, bool reserved_ok)
{
    if (!r || !name) return PM_EINVAL;
    if (type != PM_TYPE_COUNTER && type != PM_TYPE_GAUGE && type != PM_TYPE_HISTOGRAM)
        return PM_EINVAL;
    if (!*help) *help = "";
    if (strlen(*help) > PM_MAX_HELP || !pm__valid_utf8(*help, strlen(*help))) return PM_EUTF8;
    if (!pm__valid_metric_name(name) || (!reserved_ok && !strncmp(name, "perfmetrics_", 12)))
        return PM_EBADNAME;
    if (type == PM_TYPE_COUNTER && has_suffix(name, "_total")) return PM_EBADNAME;
    if (o->unit) {
        char suf[80];
        suf[0] = '_';
        strcpy(suf + 1, o->unit);
        if (!has_suffix(name, suf)) return PM_EBADNAME;
    }
    return PM_OK;
}

typedef struct {
    pm_registry *r;
    pm_type_t type;
    const char *name;
} clash_ctx;

/* A candidate name from pm__names_clash_probe: a registered family by that
 * name clashes if the exact rule says so. */
static bool clash_probe(void *p, const char *n2)
{
    const clash_ctx *c = p;
    pm_family *g = pm__find_family_locked(c->r, n2);
    return g && pm__names_clash(c->type, c->name, g->type, g->name);
}

/* Under r->lock: finds the identical family or creates it (*created = true).
 * Nothing is left behind on failure. */
static pm_status_t family_register_locked(pm_registry *r, pm_type_t type, const char *name,
                                          const char *help, const pm_family_opts_t *o,
                                          pm_gauge_fn cb, void *cb_user, pm_family **out,
                                          bool *created)
{
    *created = false;
    pm_family *old = pm__find_family_locked(r, name);
    if (old) {
        if (!same_definition(old, type, help, o, cb) || cb) return PM_EEXIST;
        *out = old;
        return PM_OK;
    }
    /* Only the few names that could clash are looked up, not every family. */
    clash_ctx cc = {r, type, name};
    if (pm__names_clash_probe(type, name, clash_probe, &cc)) return PM_EEXIST;
    pm_status_t st = PM_ENOMEM;
    pm_family *f = pm__calloc(&r->a, sizeof *f);
    if (!f) goto fail;
    f->reg = r;
    f->type = type;
    f->max_series = o->max_series;
    f->ttl = o->ttl;
    f->exemplars = cb ? 0 : exemplars_of(type, o);
    f->cb = cb;
    f->cb_user = cb_user;
    if (!(f->name = pm__strdup(&r->a, name)) || !(f->help = pm__strdup(&r->a, help)) ||
        !(f->unit = pm__strdup(&r->a, o->unit ? o->unit : "")))
        goto fail;
    if (o->nlabels) {
        if (!(f->labels = pm__calloc(&r->a, o->nlabels * sizeof *f->labels))) goto fail;
        f->nlabels = o->nlabels;
        for (size_t i = 0; i < o->nlabels; i++)
            if (!(f->labels[i] = pm__strdup(&r->a, o->labels[i]))) goto fail;
    }
    if (type == PM_TYPE_HISTOGRAM) {
        const double *b = o->bounds ? o->bounds : default_bounds;
        size_t nb = o->bounds ? o->nbounds : sizeof default_bounds / sizeof *default_bounds;
        if ((st = pm__hist_layout_init(&r->a, &f->hl, o->lowest, o->highest, b, nb)) != PM_OK)
            goto fail;
        st = PM_ENOMEM;
    }
    if (r->nfam == r->capfam) {
        size_t nc = r->capfam ? r->capfam * 2 : 16;
        pm_family **n = pm__alloc(&r->a, nc * sizeof *n);
        if (!n) goto fail;
        if (r->nfam) memcpy(n, r->fams, r->nfam * sizeof *n);
        pm__free(&r->a, r->fams);
        r->fams = n;
        r->capfam = nc;
    }
    if (pm__family_index_reserve(r, r->nfam + 1) != PM_OK) goto fail;
    r->fams[r->nfam++] = f;
    pm__family_index_add(r, f);
    *out = f;
    *created = true;
    return PM_OK;
fail:
    pm__family_free(r, f);
    return st;
}

static pm_status_t family_register(pm_registry *r, pm_type_t type, const char *name,
                                   const char *help, const pm_family_opts_t *opts,
                                   pm_gauge_fn cb, void *cb_user, pm_family **out,
                                   bool reserved_ok)
{
    if (out) *out = NULL;
    if (!out) return PM_EINVAL;
    pm_family_opts_t defaults = default_opts();
    const pm_family_opts_t *o = opts ? opts : &defaults;
    pm_status_t st = family_validate(r, type, name, &help, o, reserved_ok);
    if (st != PM_OK) return st;
    pthread_mutex_lock(&r->lock);
    pm__maintain_locked(r);
    bool created;
    st = family_register_locked(r, type, name, help, o, cb, cb_user, out, &created);
    pthread_mutex_unlock(&r->lock);
    return st;
}

pm_status_t pm_family_new(pm_registry_t *r, pm_type_t type, const char *name, const char *help,
                          const pm_family_opts_t *opts, pm_family_t **out)
{
    return family_register(r, type, name, help, opts, NULL, NULL, out, false);
}

pm_status_t pm__family_new_reserved(pm_registry_t *r, pm_type_t type, const char *name,
                                    const char *help, const pm_family_opts_t *opts,
                                    pm_family_t **out)
{
    return family_register(r, type, name, help, opts, NULL, NULL, out, true);
}

pm_status_t pm_gauge_callback_new(pm_registry_t *r, const char *name, const char *help,
                                  pm_gauge_fn fn, void *user)
{
    if (!fn) return PM_EINVAL;
    pm_family *f;
    return family_register(r, PM_TYPE_GAUGE, name, help, NULL, fn, user, &f, false);
}

/* ------------------------------------------------------------ hashing */

/* Word-at-a-time hash of the label tuple (lengths included, so ("ab","c")
 * and ("a","bc") differ). Not cryptographic: tables are bounded by the
 * cardinality limit, so collisions only cost probes. */
uint32_t pm__hash_values(const char *const *values, size_t n)
{
    const uint64_t K = 0x9E3779B97F4A7C15ull;
    uint64_t h = 0x2545F4914F6CDD1Dull ^ n;
    for (size_t i = 0; i < n; i++) {
        const char *s = values[i];
        size_t len = strlen(s);
        h = (h ^ len) * K;
        while (len >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            h = (h ^ w) * K;
            h ^= h >> 29;
            s += 8;
            len -= 8;
        }
        if (len) {
            /* Built in a register: a memcpy into a stack word would be read
             * back whole and stall on store forwarding. */
            uint64_t w = 0;
            for (size_t b = 0; b < len; b++) w |= (uint64_t)(unsigned char)s[b] << (8 * b);
            h = (h ^ w) * K;
            h ^= h >> 29;
        }
    }
    h ^= h >> 32;
    h *= K;
    h ^= h >> 29;
    return (uint32_t)(h ^ (h >> 32));
}

static bool values_equal(const pm_series *s, const char *const *values, size_t n)
{
    const char *const *mine = pm__series_values(s);
    for (size_t i = 0; i < n; i++)
        if (strcmp(mine[i], values[i])) return false;
    return true;
}

pm_status_t pm__check_values(const pm_family *f, pm_type_t type, const char *const *values,
                             size_t n)
{
    if (!f) return PM_EINVAL;
    if (f->type != type) return PM_ETYPE;
    if (f->cb) return PM_ETYPE; /* callback gauges have no recordable series */
    if (n != f->nlabels) return PM_ELABELCOUNT;
    if (n && !values) return PM_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!values[i]) return PM_EINVAL;
        size_t len = strlen(values[i]);
        if (len > PM_MAX_LABEL_VALUE) return PM_ERANGE;
        if (!pm__valid_utf8(values[i], len)) return PM_EUTF8;
    }
    return PM_OK;
}

static pm_series *table_find(pm_table *t, uint32_t hash, const char *const *values, size_t n)
{
    if (!t) return NULL;
    size_t mask = t->cap - 1, i = hash & mask;
    for (size_t probe = 0; probe < t->cap; probe++, i = (i + 1) & mask) {
        pm_series *s = atomic_load_explicit(&t->slots[i], memory_order_acquire);
        if (!s) return NULL;
        if (s != PM_TOMB && s->hash == hash && values_equal(s, values, n)) return s;
    }
    return NULL;
}

pm_series *pm__series_find(pm_family *f, const char *const *values, size_t n)
{
    pm_table *t = atomic_load_explicit(&f->table, memory_order_acquire);
    return table_find(t, pm__hash_values(values, n), values, n);
}

static void table_free_retired(pm_registry *r, pm_retired *node)
{
    pm__free(&r->a, (pm_table *)(void *)node);
}

static pm_table *table_new(pm_registry *r, size_t cap)
{
    pm_table *t = pm__calloc(&r->a, sizeof *t + cap * sizeof t->slots[0]);
    if (t) {
        t->cap = cap;
        t->retired.free_fn = table_free_retired;
    }
    return t;
}

static void table_put(pm_table *t, pm_series *s)
{
    size_t mask = t->cap - 1, i = s->hash & mask;
    for (;;) {
        pm_series *cur = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (!cur) break;
        i = (i + 1) & mask;
    }
    atomic_store_explicit(&t->slots[i], s, memory_order_release);
    t->used++;
}

/* Makes room for one more series (rebuilding without tombstones when the
 * table is half full), publishing the new table and retiring the old one. */
static pm_status_t table_reserve(pm_family *f)
{
    pm_registry *r = f->reg;
    pm_table *t = atomic_load_explicit(&f->table, memory_order_relaxed);
    /* Linear probing stays short up to 2/3 full (about 2 probes per hit);
     * a rebuild leaves the table at most half full and drops tombstones. */
    if (t && (t->used + 1) * 3 <= t->cap * 2) return PM_OK;
    size_t cap = 16;
    while (cap < (f->nseries + 1) * 2) cap *= 2;
    pm_table *nt = table_new(r, cap);
    if (!nt) return PM_ENOMEM;
    for (pm_series *s = f->head; s; s = s->next) table_put(nt, s);
    atomic_store_explicit(&f->table, nt, memory_order_release);
    if (t) pm__retire(r, &t->retired);
    return PM_OK;
}

static void table_remove(pm_family *f, pm_series *s)
{
    pm_table *t = atomic_load_explicit(&f->table, memory_order_relaxed);
    size_t mask = t->cap - 1, i = s->hash & mask;
    for (size_t probe = 0; probe < t->cap; probe++, i = (i + 1) & mask) {
        pm_series *cur = atomic_load_explicit(&t->slots[i], memory_order_relaxed);
        if (cur == s) {
            atomic_store_explicit(&t->slots[i], PM_TOMB, memory_order_release);
            return;
        }
        if (!cur) return;
    }
}

/* ------------------------------------------------------------ series */

/* The start of the series' allocation: its exemplar slots, if any, come first. */
static void *series_base(pm_series *s) { return pm__series_exemplars(s); }

void pm__series_free_now(pm_registry *r, pm_series *s)
{
    if (s->type == PM_TYPE_COUNTER) pm__counter_slot_free(r, s->slot);
    if (s->type == PM_TYPE_HISTOGRAM) pm__hist_series_free(r, s);
    pm__free(&r->a, series_base(s));
}

static pm_series *series_new(pm_family *f, const char *const *values, size_t n, uint32_t hash,
                             bool overflow)
{
    pm_registry *r = f->reg;
    size_t ext = f->type == PM_TYPE_HISTOGRAM ? pm__hist_ext_bytes(r->stripes, f->hl.nbounds) : 0;
    size_t exb = pm__exemplar_slots(f) * sizeof(pm_exemplar_slot);
    size_t size = exb + sizeof(pm_series) + ext + n * sizeof(char *);
    size_t strbytes = 0;
    for (size_t i = 0; i < n; i++) strbytes += strlen(overflow ? "" : values[i]) + 1;
    unsigned char *base = pm__calloc(&r->a, size + strbytes);
    if (!base) return NULL;
    pm_series *s = (pm_series *)(void *)(base + exb);
    s->fam = f;
    s->reg = r;
    s->type = (uint8_t)f->type;
    if (f->type == PM_TYPE_HISTOGRAM) s->h.hl = &f->hl; /* before pm__series_values */
    s->mask = (uint8_t)r->mask;
    s->hash = hash;
    s->overflow = overflow;
    s->created = pm__wall_now();
    s->last_change_ns = pm__reg_now(r);
    atomic_init(&s->refs, 1);
    const char **vals = (const char **)(uintptr_t)pm__series_values(s);
    char *str = (char *)(vals + n);
    for (size_t i = 0; i < n; i++) {
        const char *v = overflow ? "" : values[i];
        size_t len = strlen(v) + 1;
        memcpy(str, v, len);
        vals[i] = str;
        str += len;
    }
    if (f->type == PM_TYPE_COUNTER) {
        if (pm__counter_slot_alloc(r, &s->slot, &s->h.cells) != PM_OK) {
            pm__free(&r->a, base);
            return NULL;
        }
    } else if (f->type == PM_TYPE_HISTOGRAM && pm__hist_series_init(r, s) != PM_OK) {
        pm__free(&r->a, base);
        return NULL;
    }
    return s;
}

static void list_append(pm_family *f, pm_series *s)
{
    s->prev = f->tail;
    s->next = NULL;
    if (f->tail)
        f->tail->next = s;
    else
        f->head = s;
    f->tail = s;
}

static void list_unlink(pm_family *f, pm_series *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        f->head = s->next;
    if (s->next)
        s->next->prev = s->prev;
    else
        f->tail = s->prev;
    s->prev = s->next = NULL;
}

/* Takes a reference unless the count already fell to zero (a series being
 * reclaimed must not come back). */
static bool ref_if_live(pm_series *s)
{
    uint32_t n = atomic_load_explicit(&s->refs, memory_order_relaxed);
    while (n != 0)
        if (atomic_compare_exchange_weak_explicit(&s->refs, &n, n + 1, memory_order_acquire,
                                                  memory_order_relaxed))
            return true;
    return false;
}

/* Under r->lock: finds or creates the series and takes a reference. */
static pm_status_t series_get_locked(pm_family *f, const char *const *values, size_t n,
                                     uint32_t hash, pm_series **out)
{
    pm_series *s = table_find(atomic_load_explicit(&f->table, memory_order_relaxed), hash,
                              values, n);
    if (!s && f->nseries >= f->max_series) {
        if (!f->overflow && !(f->overflow = series_new(f, values, n, 0, true)))
            return PM_ENOMEM;
        atomic_fetch_add_explicit(&f->refused, 1, memory_order_relaxed);
        s = f->overflow;
    } else if (!s) {
        if (table_reserve(f) != PM_OK || !(s = series_new(f, values, n, hash, false)))
            return PM_ENOMEM;
        s->linked = true;
        list_append(f, s);
        table_put(atomic_load_explicit(&f->table, memory_order_relaxed), s);
        f->nseries++;
    }
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    *out = s;
    return PM_OK;
}

pm_status_t pm__series_get(pm_family *f, pm_type_t type, const char *const *values, size_t n,
                           pm_series **out)
{
    *out = NULL;
    pm_status_t st = pm__check_values(f, type, values, n);
    if (st != PM_OK) return st;
    pm_registry *r = f->reg;
    uint64_t hash = pm__hash_values(values, n);

    unsigned tok = pm__read_enter(r);
    pm_series *s = table_find(atomic_load_explicit(&f->table, memory_order_acquire), hash,
                              values, n);
    bool got = s && ref_if_live(s);
    pm__read_exit(r, tok);
    if (got) {
        *out = s;
        return PM_OK;
    }
    pthread_mutex_lock(&r->lock);
    st = series_get_locked(f, values, n, hash, out);
    pm__maintain_locked(r);
    pthread_mutex_unlock(&r->lock);
    return st;
}

/* The family's overflow series, created if absent, with a reference (the
 * attaching side of shared cell blocks: a writer's overflow series adds into
 * it). */
pm_status_t pm__series_overflow(pm_family *f, pm_series **out)
{
    *out = NULL;
    if (f->cb) return PM_ETYPE;
    pm_registry *r = f->reg;
    pthread_mutex_lock(&r->lock);
    if (!f->overflow) f->overflow = series_new(f, NULL, f->nlabels, 0, true);
    if (f->overflow) {
        atomic_fetch_add_explicit(&f->overflow->refs, 1, memory_order_relaxed);
        *out = f->overflow;
    }
    pthread_mutex_unlock(&r->lock);
    return *out ? PM_OK : PM_ENOMEM;
}

/* pm_counter_new and friends: the family and its one series are created
 * under one lock hold, so a failure leaves no family that others could have
 * seen. The series is permanent (never freed before the registry). */
pm_status_t pm__unlabeled_new(pm_registry *r, pm_type_t type, const char *name, const char *help,
                              pm_series **out)
{
    *out = NULL;
    pm_family_opts_t o = default_opts();
    pm_status_t st = family_validate(r, type, name, &help, &o, false);
    if (st != PM_OK) return st;
    pthread_mutex_lock(&r->lock);
    pm__maintain_locked(r);
    pm_family *f = NULL;
    bool created;
    st = family_register_locked(r, type, name, help, &o, NULL, NULL, &f, &created);
    if (st == PM_OK) st = series_get_locked(f, NULL, 0, pm__hash_values(NULL, 0), out);
    if (st == PM_OK) {
        (*out)->permanent = 1;
    } else if (created) {
        r->nfam--;
        pm__family_index_forget(r);
        pm__family_free(r, f);
    }
    pthread_mutex_unlock(&r->lock);
    return st;
}

/* Under r->lock: the series leaves the table and the export list; the link's
 * reference goes, and the memory is retired once no handle holds it. */
void pm__series_unlink_locked(pm_registry *r, pm_series *s)
{
    pm_family *f = s->fam;
    if (!s->linked) return;
    table_remove(f, s);
    list_unlink(f, s);
    s->linked = false;
    f->nseries--;
    atomic_fetch_add_explicit(&f->removed, 1, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        pm__retire_series(r, s);
    } else { /* handles remain: keep it findable for registry free */
        s->next = f->detached;
        if (f->detached) f->detached->prev = s;
        f->detached = s;
    }
}

static void detached_unlink(pm_family *f, pm_series *s)
{
    if (s->prev)
        s->prev->next = s->next;
    else
        f->detached = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
}

void pm__series_unref_locked(pm_registry *r, pm_series *s)
{
    /* The family holds one reference on linked and overflow series, so only
     * a detached series can reach zero here. */
    if (!s->permanent && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1) {
        detached_unlink(s->fam, s);
        pm__retire_series(r, s);
    }
}

void pm__series_release(pm_series *s)
{
    if (!s) return;
    pm_registry *r = s->reg;
    /* Take the lock before dropping, so "unlinked and no refs" is decided
     * once; the flags share a byte written under it. */
    pthread_mutex_lock(&r->lock);
    pm__series_unref_locked(r, s);
    pm__maintain_locked(r);
    pthread_mutex_unlock(&r->lock);
}

pm_status_t pm_family_remove(pm_family_t *f, const char *const *values, size_t n)
{
    if (!f) return PM_EINVAL;
    pm_status_t st = pm__check_values(f, f->type, values, n);
    if (st != PM_OK) return st;
    pm_registry *r = f->reg;
    pthread_mutex_lock(&r->lock);
    pm_series *s = table_find(atomic_load_explicit(&f->table, memory_order_relaxed),
                              pm__hash_values(values, n), values, n);
    if (s)
        pm__series_unlink_locked(r, s);
    else
        st = PM_ENOENT;
    pm__maintain_locked(r);
    pthread_mutex_unlock(&r->lock);
    return st;
}

static void reset_series_values(pm_series *s)
{
    pm_exemplar_slot *ex = pm__series_exemplars(s);
    for (size_t i = 0, n = pm__exemplar_slots(s->fam); i < n; i++) pm__exemplar_clear(&ex[i]);
    if (s->type == PM_TYPE_COUNTER) {
        for (unsigned st = 0; st <= s->mask; st++) {
            atomic_store_explicit(&s->h.cells[st * PM_CHUNK_SLOTS].n, 0, memory_order_relaxed);
            atomic_store_explicit(&s->h.cells[st * PM_CHUNK_SLOTS].dbits, 0, memory_order_relaxed);
        }
        pm__shards_zero_slot(s->reg, s->slot);
    } else if (s->type == PM_TYPE_GAUGE) {
        atomic_store_explicit(&s->gbits, 0, memory_order_relaxed);
    } else {
        pm__hist_series_reset(s->reg, s);
    }
}

pm_status_t pm_family_clear(pm_family_t *f)
{
    if (!f) return PM_EINVAL;
    pm_registry *r = f->reg;
    pthread_mutex_lock(&r->lock);
    while (f->head) pm__series_unlink_locked(r, f->head);
    /* Reset rather than free the overflow series: handles to it are never counted as gone. */
    if (f->overflow) reset_series_values(f->overflow);
    pm__maintain_locked(r);
    pthread_mutex_unlock(&r->lock);
    return PM_OK;
}

size_t pm_family_series_count(const pm_family_t *f)
{
    if (!f) return 0;
    pm_registry *r = f->reg;
    pthread_mutex_lock(&r->lock);
    size_t n = f->nseries + (f->overflow ? 1 : 0);
    pthread_mutex_unlock(&r->lock);
    return n;
}
