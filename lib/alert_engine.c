/* The alert engine: rules, one instance per label set and rule, the state
 * machine, history, health, the ALERTS family and the engine's own metrics,
 * ticks from the host or from a background thread.
 *
 * Locking: e->lock serialises ticks, rule changes and queries. Notifiers
 * never run under it (events are queued to the hub). The engine's collector
 * runs inside the snapshot a tick takes, on the ticking thread, so it reads
 * only atomics and never takes e->lock. */
#include "internal/alert_internal.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

/* ------------------------------------------------------------ options */
struct pm_alert_engine_opts {
    double interval;
    unsigned max_buckets;
    size_t history, queue, max_series, max_instances;
    int metrics, dispatch_thread;
};

static const struct pm_alert_engine_opts default_opts = {15.0, 60, 1024, 1024, 100000, 10000,
                                                         1, 1};

pm_status_t pm_alert_engine_opts_new(pm_alert_engine_opts_t **out)
{
    if (!out) return PM_EINVAL;
    *out = malloc(sizeof **out);
    if (!*out) return PM_ENOMEM;
    **out = default_opts;
    return PM_OK;
}

void pm_alert_engine_opts_free(pm_alert_engine_opts_t *o) { free(o); }

pm_status_t pm_alert_engine_opts_set_interval(pm_alert_engine_opts_t *o, double seconds)
{
    if (!o) return PM_EINVAL;
    if (!(seconds >= 0.001 && seconds <= 86400.0)) return PM_ERANGE;
    o->interval = seconds;
    return PM_OK;
}

pm_status_t pm_alert_engine_opts_set_max_buckets(pm_alert_engine_opts_t *o, unsigned n)
{
    if (!o) return PM_EINVAL;
    if (n < 1 || n > 4096) return PM_ERANGE;
    o->max_buckets = n;
    return PM_OK;
}

static pm_status_t set_size(pm_alert_engine_opts_t *o, size_t *field, size_t n, size_t max)
{
    if (!o) return PM_EINVAL;
    if (n < 1 || n > max) return PM_ERANGE;
    *field = n;
    return PM_OK;
}

pm_status_t pm_alert_engine_opts_set_history(pm_alert_engine_opts_t *o, size_t n)
{
    return set_size(o, o ? &o->history : NULL, n, (size_t)1 << 24);
}

pm_status_t pm_alert_engine_opts_set_queue(pm_alert_engine_opts_t *o, size_t n)
{
    return set_size(o, o ? &o->queue : NULL, n, (size_t)1 << 24);
}

pm_status_t pm_alert_engine_opts_set_max_series(pm_alert_engine_opts_t *o, size_t n)
{
    return set_size(o, o ? &o->max_series : NULL, n, (size_t)1 << 28);
}

pm_status_t pm_alert_engine_opts_set_max_instances(pm_alert_engine_opts_t *o, size_t n)
{
    return set_size(o, o ? &o->max_instances : NULL, n, (size_t)1 << 24);
}

pm_status_t pm_alert_engine_opts_set_metrics(pm_alert_engine_opts_t *o, int enabled)
{
    if (!o) return PM_EINVAL;
    o->metrics = enabled != 0;
    return PM_OK;
}

pm_status_t pm_alert_engine_opts_set_dispatch_thread(pm_alert_engine_opts_t *o, int enabled)
{
    if (!o) return PM_EINVAL;
    o->dispatch_thread = enabled != 0;
    return PM_OK;
}

/* ------------------------------------------------------------ structures */
typedef struct inst {
    uint64_t hash; /* of the series label set */
    uint32_t nlabels;
    char **lname, **lvalue; /* owned, sorted by name */
    pm_alert_state_t state; /* INACTIVE only between creation and the first transition */
    pm_severity_t sev;     /* as last recorded or notified */
    pm_severity_t cur_sev; /* as this tick's value puts it */
    double value;
    int64_t active_at, fired_at, last_true, last_sent;
    int64_t keep_since; /* first tick of a keep_firing_for spell; INT64_MIN: none */
    int64_t paused;     /* time spent pending without data (PM_NODATA_KEEP) */
    uint64_t seen; /* tick in which the condition held */
} inst_t;

typedef struct arule {
    pm_alert_rule_t *def;
    inst_t **inst;
    size_t ninst, cap;
    int32_t *slot; /* open-addressing index of inst by hash; -1 empty */
    size_t mask;
    unsigned alerts_mask; /* ALERTS series present: bit (state - 1) * 3 + (sev - 1) */
} arule_t;

struct pm_alert_engine {
    pm_alloc_t a;
    pm_registry_t *reg;
    struct pm_alert_engine_opts o;
    int64_t interval_ns;
    pthread_mutex_t lock;

    arule_t **rules; /* sorted by name */
    size_t nrules, caprules;
    pm__wstore *ws;
    pm__aeval *ev;
    pm__ahub *hub;
    pm_buf_t *buf; /* annotation rendering */

    pm_alert_event_t **hist; /* ring */
    size_t hhead, hcount;

    bool ticked;
    int64_t last_now;
    uint64_t tick;

    pm_family_t *f_alerts;
    pm_histogram_t *h_eval; /* perfmetrics_alert_evaluation_seconds */
    pm_collector_t *coll;

    _Atomic uint64_t st_evals, st_rule_failures, st_transitions, st_instances,
        st_instances_refused, st_last_eval_ns, st_windowed, st_refused,
        st_bytes, st_nrules, st_health_bits;

    /* background evaluation */
    pthread_mutex_t tlock;
    pthread_cond_t tcv;
    pthread_t thread;
    bool running, stop;
};

static void set_health(pm_alert_engine_t *e, double h)
{
    atomic_store(&e->st_health_bits, pm__d2u(h));
}

/* ------------------------------------------------------------ instances */
static void inst_free(pm_alert_engine_t *e, inst_t *in)
{
    if (!in) return;
    for (uint32_t i = 0; i < in->nlabels; i++) {
        pm__free(&e->a, in->lname[i]);
        pm__free(&e->a, in->lvalue[i]);
    }
    pm__free(&e->a, in->lname);
    pm__free(&e->a, in->lvalue);
    pm__free(&e->a, in);
}

static inst_t *inst_new(pm_alert_engine_t *e, const pm__aelem *el)
{
    inst_t *in = pm__calloc(&e->a, sizeof *in);
    if (!in) return NULL;
    in->hash = el->hash;
    if (el->nlabels) {
        in->lname = pm__calloc(&e->a, el->nlabels * sizeof *in->lname);
        in->lvalue = pm__calloc(&e->a, el->nlabels * sizeof *in->lvalue);
        if (!in->lname || !in->lvalue) goto fail;
        for (; in->nlabels < el->nlabels; in->nlabels++) {
            in->lname[in->nlabels] = pm__strdup(&e->a, el->lname[in->nlabels]);
            in->lvalue[in->nlabels] = pm__strdup(&e->a, el->lvalue[in->nlabels]);
            if (!in->lname[in->nlabels] || !in->lvalue[in->nlabels]) {
                in->nlabels++;
                goto fail;
            }
        }
    }
    return in;
fail:
    inst_free(e, in);
    return NULL;
}

/* The instance's label set as an element, to compare and look up. */
static pm__aelem inst_key(const inst_t *in)
{
    return (pm__aelem){(const char **)in->lname, (const char **)in->lvalue, in->nlabels, in->hash,
                       0};
}

static pm_status_t index_rebuild(pm_alert_engine_t *e, arule_t *ar)
{
    size_t cap = pm__pow2_at_least(ar->ninst * 2 + 8);
    if (cap != ar->mask + 1 || !ar->slot) {
        int32_t *s = pm__alloc(&e->a, cap * sizeof *s);
        if (!s) return PM_ENOMEM;
        pm__free(&e->a, ar->slot);
        ar->slot = s;
        ar->mask = cap - 1;
    }
    memset(ar->slot, 0xff, (ar->mask + 1) * sizeof *ar->slot);
    for (size_t i = 0; i < ar->ninst; i++) {
        size_t h = ar->inst[i]->hash & ar->mask;
        while (ar->slot[h] >= 0) h = (h + 1) & ar->mask;
        ar->slot[h] = (int32_t)i;
    }
    return PM_OK;
}

static inst_t *inst_find(const arule_t *ar, const pm__aelem *el)
{
    if (!ar->slot) return NULL;
    for (size_t h = el->hash & ar->mask;; h = (h + 1) & ar->mask) {
        if (ar->slot[h] < 0) return NULL;
        inst_t *in = ar->inst[ar->slot[h]];
        pm__aelem key = inst_key(in);
        if (pm__alabels_equal(&key, el)) return in;
    }
}

/* Adds an instance; the index keeps a load factor of at most 1/2. */
static pm_status_t inst_add(pm_alert_engine_t *e, arule_t *ar, inst_t *in)
{
    if (ar->ninst == ar->cap) {
        size_t cap = ar->cap ? ar->cap * 2 : 8;
        inst_t **g = pm__alloc(&e->a, cap * sizeof *g);
        if (!g) return PM_ENOMEM;
        if (ar->ninst) memcpy(g, ar->inst, ar->ninst * sizeof *g);
        pm__free(&e->a, ar->inst);
        ar->inst = g;
        ar->cap = cap;
    }
    ar->inst[ar->ninst++] = in;
    if (!ar->slot || ar->ninst * 2 > ar->mask + 1) {
        pm_status_t st = index_rebuild(e, ar);
        if (st != PM_OK) {
            ar->ninst--;
            return st;
        }
        return PM_OK;
    }
    size_t h = in->hash & ar->mask;
    while (ar->slot[h] >= 0) h = (h + 1) & ar->mask;
    ar->slot[h] = (int32_t)(ar->ninst - 1);
    return PM_OK;
}

/* ------------------------------------------------------------ events */
static const char *sev_name(pm_severity_t s) { return pm_severity_name(s); }

/* Builds the event of instance `in` of rule `ar` at `now`. NULL when out of
 * memory (the transition still happens; the event is lost). */
static pm_alert_event_t *make_event(pm_alert_engine_t *e, const arule_t *ar, const inst_t *in,
                                    pm_alert_state_t state, pm_alert_state_t prev, int64_t now)
{
    const pm_alert_rule_t *d = ar->def;
    size_t cap = 2 + d->nlabels + in->nlabels;
    const char **ln = malloc(cap * sizeof *ln), **lv = malloc(cap * sizeof *lv);
    const char **an = malloc((d->nannots + 1) * sizeof *an);
    const char **av = malloc((d->nannots + 1) * sizeof *av);
    size_t *off = malloc((d->nannots + 1) * sizeof *off);
    pm_alert_event_t *ev = NULL;
    if (!ln || !lv || !an || !av || !off) goto done;

    /* Merge the series' labels with the rule's (the rule's win), then put
     * alertname and severity in their sorted places. */
    size_t n = 0, i = 0, j = 0;
    const char *sevn = sev_name(in->sev);
    bool put_an = false, put_sev = false;
    for (;;) {
        const char *cand = NULL, *val = NULL;
        const char *si = i < in->nlabels ? in->lname[i] : NULL;
        const char *rj = j < d->nlabels ? d->labels[j].name : NULL;
        if (si && rj) {
            int c = strcmp(si, rj);
            if (c < 0) cand = si, val = in->lvalue[i++];
            else if (c > 0) cand = rj, val = d->labels[j++].value;
            else cand = rj, val = d->labels[j++].value, i++;
        } else if (si) {
            cand = si, val = in->lvalue[i++];
        } else if (rj) {
            cand = rj, val = d->labels[j++].value;
        }
        if (!put_an && (!cand || strcmp("alertname", cand) <= 0)) {
            ln[n] = "alertname", lv[n++] = d->name, put_an = true;
        }
        if (!put_sev && (!cand || strcmp("severity", cand) <= 0)) {
            ln[n] = "severity", lv[n++] = sevn, put_sev = true;
        }
        if (!cand) break;
        if (!strcmp(cand, "alertname") || !strcmp(cand, "severity")) continue;
        ln[n] = cand, lv[n++] = val;
    }

    pm_buf_reset(e->buf);
    for (size_t k = 0; k < d->nannots; k++) {
        off[k] = pm_buf_len(e->buf);
        if (pm__atmpl_render(d->annots[k].tmpl, in->value, d->name, sevn, ln, lv, n, e->buf) !=
                PM_OK ||
            pm_buf_append(e->buf, "", 1) != PM_OK)
            goto done;
        an[k] = d->annots[k].name;
    }
    for (size_t k = 0; k < d->nannots; k++) av[k] = pm_buf_data(e->buf) + off[k];

    pm__aevent_init init = {
        .rule = d->name,
        .state = state,
        .prev = prev,
        .severity = in->sev,
        .value = in->value,
        .at = now,
        .active_at = in->active_at,
        .starts_at = in->fired_at,
        .ends_at = state == PM_ALERT_RESOLVED ? now : INT64_MIN,
        .lname = ln,
        .lvalue = lv,
        .nlabels = n,
        .aname = an,
        .avalue = av,
        .nannots = d->nannots,
    };
    if (pm__aevent_new(&e->a, &init, &ev) != PM_OK) ev = NULL;
done:
    free(ln);
    free(lv);
    free(an);
    free(av);
    free(off);
    return ev;
}

static void history_push(pm_alert_engine_t *e, pm_alert_event_t *ev)
{
    size_t cap = e->o.history;
    size_t pos = (e->hhead + e->hcount) % cap;
    if (e->hcount == cap) {
        pm__aevent_unref(e->hist[e->hhead]);
        e->hhead = (e->hhead + 1) % cap;
        pos = (e->hhead + e->hcount - 1) % cap;
    } else {
        e->hcount++;
    }
    e->hist[pos] = pm__aevent_ref(ev);
}

/* Records a transition (history) and/or a notification. */
static void emit(pm_alert_engine_t *e, const arule_t *ar, const inst_t *in, pm_alert_state_t state,
                 pm_alert_state_t prev, int64_t now, bool transition, bool notify)
{
    if (transition) atomic_fetch_add(&e->st_transitions, 1);
    pm_alert_event_t *ev = make_event(e, ar, in, state, prev, now);
    if (!ev) return;
    if (transition) history_push(e, ev);
    if (notify) pm__ahub_post(e->hub, ev);
    pm__aevent_unref(ev);
}

static void fire(pm_alert_engine_t *e, arule_t *ar, inst_t *in, int64_t now)
{
    pm_alert_state_t prev = in->state;
    in->state = PM_ALERT_FIRING;
    in->fired_at = in->last_true = in->last_sent = now;
    emit(e, ar, in, PM_ALERT_FIRING, prev, now, true, true);
}

/* Ends an instance: resolved (firing) or back to inactive (pending). */
static void end_instance(pm_alert_engine_t *e, arule_t *ar, inst_t *in, int64_t now)
{
    if (in->state == PM_ALERT_FIRING)
        emit(e, ar, in, PM_ALERT_RESOLVED, PM_ALERT_FIRING, now, true, true);
    else if (in->state == PM_ALERT_PENDING)
        emit(e, ar, in, PM_ALERT_INACTIVE, PM_ALERT_PENDING, now, true, false);
}

static void drop_all(pm_alert_engine_t *e, arule_t *ar, int64_t now)
{
    for (size_t i = 0; i < ar->ninst; i++) {
        end_instance(e, ar, ar->inst[i], now);
        inst_free(e, ar->inst[i]);
    }
    atomic_fetch_sub(&e->st_instances, ar->ninst);
    ar->ninst = 0;
    if (ar->slot) memset(ar->slot, 0xff, (ar->mask + 1) * sizeof *ar->slot);
}

/* ------------------------------------------------------------ evaluation */
/* A vector as elements: a number becomes one label-less element. */
static pm_status_t as_vector(pm_alert_engine_t *e, pm__avec *v)
{
    if (!v->scalar) return PM_OK;
    pm__aelem *el = pm__aeval_alloc(e->ev, sizeof *el);
    if (!el) return PM_ENOMEM;
    *el = pm__aelem_unlabeled(v->s);
    v->scalar = false;
    v->e = el;
    v->n = 1;
    return PM_OK;
}

/* The element of v (indexed by ix) with instance in's label set, or NULL. */
static const pm__aelem *vec_lookup(const pm__avec *v, const pm__aindex *ix, const inst_t *in)
{
    pm__aelem key = inst_key(in);
    int64_t i = pm__aindex_find(ix, &key);
    return i < 0 ? NULL : &v->e[i];
}

static void eval_rule(pm_alert_engine_t *e, arule_t *ar, int64_t now, int64_t dt)
{
    const pm_alert_rule_t *d = ar->def;
    pm__avec value, cond;
    pm_status_t st = pm__aeval_rule(e->ev, d->expr, &value, &cond);
    if (st == PM_OK) st = as_vector(e, &value);
    if (st == PM_OK) st = as_vector(e, &cond);
    if (st != PM_OK) {
        atomic_fetch_add(&e->st_rule_failures, 1);
        return;
    }
    /* The resolve expression is evaluated at every tick, not only while an
     * instance is firing, so that its windows are full when it is needed. */
    pm__avec rv = {0};
    bool have_r = false;
    if (d->resolve) {
        pm__avec rval;
        have_r = pm__aeval_rule(e->ev, d->resolve, &rval, &rv) == PM_OK &&
                 as_vector(e, &rv) == PM_OK;
        if (!have_r) atomic_fetch_add(&e->st_rule_failures, 1);
    }
    uint64_t tick = e->tick;
    bool nodata = value.n == 0;
    pm__aelem nodata_el;
    static const char *nd_name = "alertstate_reason", *nd_value = "nodata";
    if (nodata) {
        if (d->nodata == PM_NODATA_KEEP) {
            /* Hold everything still: the clocks toward firing and resolving
             * do not run while there is no data. */
            for (size_t i = 0; i < ar->ninst; i++) {
                inst_t *in = ar->inst[i];
                if (in->state == PM_ALERT_PENDING) in->paused += dt;
                else if (in->keep_since != INT64_MIN) in->keep_since += dt;
            }
            return;
        }
        if (d->nodata == PM_NODATA_ALERTING) {
            nodata_el = (pm__aelem){&nd_name, &nd_value, 1, 0, NAN};
            nodata_el.hash = pm__alabels_hash(&nd_name, &nd_value, 1);
            cond.e = &nodata_el;
            cond.n = 1;
        }
    }

    /* Mark the instances whose condition holds. */
    for (size_t i = 0; i < cond.n; i++) {
        const pm__aelem *el = &cond.e[i];
        pm_severity_t sev = d->severity;
        if (d->thresholds && el == &nodata_el) {
            /* No value to compare: the no-data alert takes the lower level set. */
            sev = isnan(d->warn) ? PM_SEVERITY_CRITICAL : PM_SEVERITY_WARNING;
        } else if (d->thresholds) {
            if (!isnan(d->crit) && pm__acmp_holds(d->th_op, el->v, d->crit)) sev = PM_SEVERITY_CRITICAL;
            else if (!isnan(d->warn) && pm__acmp_holds(d->th_op, el->v, d->warn))
                sev = PM_SEVERITY_WARNING;
            else continue;
        }
        inst_t *in = inst_find(ar, el);
        if (!in) {
            if (ar->ninst >= e->o.max_instances) {
                atomic_fetch_add(&e->st_instances_refused, 1);
                continue;
            }
            in = inst_new(e, el);
            if (!in || inst_add(e, ar, in) != PM_OK) {
                inst_free(e, in);
                atomic_fetch_add(&e->st_rule_failures, 1);
                continue;
            }
            atomic_fetch_add(&e->st_instances, 1);
            in->state = PM_ALERT_INACTIVE;
            in->active_at = now;
            in->fired_at = INT64_MIN;
            in->keep_since = INT64_MIN;
            in->sev = in->cur_sev = sev;
        }
        if (in->seen == tick) continue; /* a duplicate label set: first wins */
        in->seen = tick;
        in->value = el->v;
        in->cur_sev = sev;
    }

    /* Hysteresis: an active instance whose condition stopped stays active
     * until its resolve condition holds. */
    if ((d->resolve_short || d->resolve) && ar->ninst) {
        pm__aindex vx, rx;
        bool have_v = pm__aindex_build(e->ev, &value, &vx) == PM_OK;
        if (have_r) have_r = pm__aindex_build(e->ev, &rv, &rx) == PM_OK;
        for (size_t i = 0; i < ar->ninst && have_v; i++) {
            inst_t *in = ar->inst[i];
            /* Only a firing alert is held: `for` still needs the firing
             * condition itself at every evaluation. */
            if (in->seen == tick || in->state != PM_ALERT_FIRING) continue;
            const pm__aelem *el = vec_lookup(&value, &vx, in);
            if (!el) continue; /* the series is gone: nothing to hold it */
            bool resolved;
            if (d->resolve_short) resolved = pm__acmp_holds(d->resolve_op, el->v, d->resolve_val);
            else resolved = have_r ? vec_lookup(&rv, &rx, in) != NULL : false;
            if (!resolved) { /* held: keeps its severity */
                in->seen = tick;
                in->value = el->v;
                in->cur_sev = in->sev;
            }
        }
    }

    /* Advance every instance. */
    size_t kept = 0;
    bool removed = false;
    for (size_t i = 0; i < ar->ninst; i++) {
        inst_t *in = ar->inst[i];
        bool holds = in->seen == tick;
        bool drop = false;
        switch (in->state) {
        case PM_ALERT_INACTIVE:
        case PM_ALERT_PENDING:
            if (holds) in->sev = in->cur_sev;
            if (!holds) {
                if (in->state == PM_ALERT_PENDING) end_instance(e, ar, in, now);
                drop = true;
            } else if (now - in->active_at - in->paused >= d->for_ns) {
                fire(e, ar, in, now);
            } else if (in->state == PM_ALERT_INACTIVE) {
                in->state = PM_ALERT_PENDING;
                emit(e, ar, in, PM_ALERT_PENDING, PM_ALERT_INACTIVE, now, true, false);
            }
            break;
        case PM_ALERT_FIRING:
            if (holds) {
                in->last_true = now;
                in->keep_since = INT64_MIN;
                if (in->cur_sev != in->sev) { /* the thresholds moved it */
                    pm_alert_state_t st_prev = in->state;
                    in->sev = in->cur_sev;
                    in->last_sent = now;
                    emit(e, ar, in, PM_ALERT_FIRING, st_prev, now, true, true);
                }
                break;
            }
            /* keep_firing_for counts from the first evaluation where the
             * condition stopped holding, as Prometheus does. */
            if (d->keep_ns > 0) {
                if (in->keep_since == INT64_MIN) in->keep_since = now;
                if (now - in->keep_since < d->keep_ns) break;
            }
            end_instance(e, ar, in, now);
            drop = true;
            break;
        default: drop = true; break;
        }
        if (drop) {
            inst_free(e, in);
            atomic_fetch_sub(&e->st_instances, 1);
            removed = true;
        } else {
            ar->inst[kept++] = in;
        }
    }
    ar->ninst = kept;
    if (removed && index_rebuild(e, ar) != PM_OK) {
        /* Keep the old, larger table: rebuild in place at its size. */
        memset(ar->slot, 0xff, (ar->mask + 1) * sizeof *ar->slot);
        for (size_t i = 0; i < ar->ninst; i++) {
            size_t h = ar->inst[i]->hash & ar->mask;
            while (ar->slot[h] >= 0) h = (h + 1) & ar->mask;
            ar->slot[h] = (int32_t)i;
        }
    }
}

/* Repeats (cooldown elapsed) of instances that keep firing. */
static void notify_repeats(pm_alert_engine_t *e, arule_t *ar, int64_t now)
{
    const pm_alert_rule_t *d = ar->def;
    for (size_t i = 0; i < ar->ninst; i++) {
        inst_t *in = ar->inst[i];
        if (in->state != PM_ALERT_FIRING || in->fired_at == now) continue;
        if (d->repeat_ns > 0 && now - in->last_sent >= d->repeat_ns) {
            in->last_sent = now;
            emit(e, ar, in, PM_ALERT_FIRING, PM_ALERT_FIRING, now, false, true);
        }
    }
}

/* ------------------------------------------------------------ ALERTS */
static void alerts_update(pm_alert_engine_t *e, arule_t *ar, bool gone)
{
    if (!e->f_alerts) return;
    size_t count[2][3] = {{0}};
    if (!gone)
        for (size_t i = 0; i < ar->ninst; i++) {
            const inst_t *in = ar->inst[i];
            if (in->state != PM_ALERT_PENDING && in->state != PM_ALERT_FIRING) continue;
            count[in->state - 1][in->sev - 1]++;
        }
    unsigned mask = 0;
    for (int s = 0; s < 2; s++)
        for (int v = 0; v < 3; v++) {
            unsigned bit = 1u << (s * 3 + v);
            const char *vals[3] = {ar->def->name, pm_alert_state_name((pm_alert_state_t)(s + 1)),
                                   pm_severity_name((pm_severity_t)(v + 1))};
            if (count[s][v]) {
                if (pm_gauge_set_labeled(e->f_alerts, vals, 3, (double)count[s][v]) == PM_OK)
                    mask |= bit;
            } else if (ar->alerts_mask & bit) {
                pm_family_remove(e->f_alerts, vals, 3);
            }
        }
    ar->alerts_mask = mask;
}

static double health_of(const pm_alert_engine_t *e)
{
    double h = 100.0;
    for (size_t r = 0; r < e->nrules; r++)
        for (size_t i = 0; i < e->rules[r]->ninst; i++) {
            const inst_t *in = e->rules[r]->inst[i];
            if (in->state == PM_ALERT_PENDING) h -= 1.0;
            else if (in->state == PM_ALERT_FIRING)
                h -= in->sev == PM_SEVERITY_CRITICAL  ? 25.0
                     : in->sev == PM_SEVERITY_WARNING ? 10.0
                                                      : 2.0;
        }
    return h < 0 ? 0 : h > 100 ? 100 : h;
}

static void publish_stats(pm_alert_engine_t *e)
{
    atomic_store(&e->st_windowed, pm__wstore_series(e->ws));
    atomic_store(&e->st_refused, pm__wstore_refused(e->ws));
    atomic_store(&e->st_bytes, pm__wstore_bytes(e->ws));
    atomic_store(&e->st_nrules, e->nrules);
    set_health(e, health_of(e));
}

/* ------------------------------------------------------------ self-metrics */
static pm_status_t emit_one(pm_emit_t *em, pm_type_t t, const char *name, const char *help,
                            double v)
{
    pm_status_t st = pm__emit_family_reserved(em, t, name, help, NULL, 0);
    return st == PM_OK ? pm_emit_sample(em, NULL, 0, v) : st;
}

static pm_status_t collect(pm_emit_t *em, void *user)
{
    pm_alert_engine_t *e = user;
    pm_status_t st;
#define ONE(t, n, h, v)                                                                            \
    if ((st = emit_one(em, t, n, h, (double)(v))) != PM_OK) return st
    ONE(PM_TYPE_COUNTER, "perfmetrics_alert_evaluations", "Alert engine evaluations (ticks).",
        atomic_load(&e->st_evals));
    ONE(PM_TYPE_COUNTER, "perfmetrics_alert_rule_failures",
        "Rule evaluations that failed (the rule was skipped for that tick).",
        atomic_load(&e->st_rule_failures));
    ONE(PM_TYPE_GAUGE, "perfmetrics_alert_last_evaluation_seconds",
        "Duration of the last evaluation.", (double)atomic_load(&e->st_last_eval_ns) / 1e9);
    ONE(PM_TYPE_COUNTER, "perfmetrics_alert_transitions", "Alert state transitions recorded.",
        atomic_load(&e->st_transitions));
    ONE(PM_TYPE_GAUGE, "perfmetrics_alert_rules", "Rules loaded (enabled or not).",
        atomic_load(&e->st_nrules));
    ONE(PM_TYPE_GAUGE, "perfmetrics_alert_instances", "Alert instances (pending or firing).",
        atomic_load(&e->st_instances));
    ONE(PM_TYPE_GAUGE, "perfmetrics_alert_windowed_series",
        "Series (and EWMA baselines) the engine keeps windows for.",
        atomic_load(&e->st_windowed));
    ONE(PM_TYPE_GAUGE, "perfmetrics_alert_window_bytes", "Bytes held by the windows.",
        atomic_load(&e->st_bytes));
    ONE(PM_TYPE_GAUGE, "perfmetrics_alert_health_score",
        "Health score 0..100 derived from the active alerts.",
        pm__u2d(atomic_load(&e->st_health_bits)));
#undef ONE
    static const char *const result[] = {"result"};
    if ((st = pm__emit_family_reserved(em, PM_TYPE_COUNTER, "perfmetrics_alert_notifications",
                                       "Notifications by result: sent and failed notifier "
                                       "calls, events dropped from the full queue.",
                                       result, 1)) != PM_OK)
        return st;
    static const struct {
        const char *v;
        pm_alert_stat_t s;
    } rs[] = {{"sent", PM_ALERT_STAT_NOTIFY_SENT},
              {"failed", PM_ALERT_STAT_NOTIFY_FAILED},
              {"dropped", PM_ALERT_STAT_NOTIFY_DROPPED}};
    for (size_t i = 0; i < 3; i++) {
        const char *v[1] = {rs[i].v};
        if ((st = pm_emit_sample(em, v, 1, (double)pm__ahub_stat(e->hub, rs[i].s))) != PM_OK)
            return st;
    }
    return PM_OK;
}

/* ------------------------------------------------------------ engine */
pm__ahub *pm__aengine_hub(pm_alert_engine_t *e) { return e ? e->hub : NULL; }

static void arule_free(pm_alert_engine_t *e, arule_t *ar)
{
    if (!ar) return;
    for (size_t i = 0; i < ar->ninst; i++) inst_free(e, ar->inst[i]);
    pm__free(&e->a, ar->inst);
    pm__free(&e->a, ar->slot);
    pm_alert_rule_free(ar->def);
    pm__free(&e->a, ar);
}

pm_status_t pm_alert_engine_new(pm_registry_t *r, const pm_alert_engine_opts_t *opts,
                                pm_alert_engine_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!r) r = pm_registry_default();
    if (!r) return PM_ENOMEM;
    pm_alert_engine_t *e = calloc(1, sizeof *e);
    if (!e) return PM_ENOMEM;
    e->a = pm__default_alloc;
    e->reg = r;
    e->o = opts ? *opts : default_opts;
    e->interval_ns = (int64_t)llround(e->o.interval * 1e9);
    set_health(e, 100.0);
    pm_status_t st = PM_ENOMEM;
    bool lock_ok = false, tlock_ok = false, cv_ok = false;
    if (pthread_mutex_init(&e->lock, NULL)) goto fail;
    lock_ok = true;
    if (pthread_mutex_init(&e->tlock, NULL)) goto fail;
    tlock_ok = true;
    pthread_condattr_t ca;
    if (pthread_condattr_init(&ca)) goto fail;
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    cv_ok = pthread_cond_init(&e->tcv, &ca) == 0;
    pthread_condattr_destroy(&ca);
    if (!cv_ok) goto fail;
    e->hist = calloc(e->o.history, sizeof *e->hist);
    if (!e->hist) goto fail;
    if ((st = pm_buf_new(&e->buf)) != PM_OK) goto fail;
    if ((st = pm__wstore_new(&e->a, e->interval_ns, e->o.max_buckets, e->o.max_series, &e->ws)) !=
        PM_OK)
        goto fail;
    if ((st = pm__aeval_new(&e->a, e->ws, &e->ev)) != PM_OK) goto fail;
    if ((st = pm__ahub_new(&e->a, e->o.queue, e->o.dispatch_thread != 0, &e->hub)) != PM_OK)
        goto fail;
    if (e->o.metrics) {
        pm_family_opts_t *fo = NULL;
        static const char *const names[] = {"alertname", "alertstate", "severity"};
        if ((st = pm_family_opts_new(&fo)) != PM_OK) goto fail;
        st = pm_family_opts_set_labels(fo, names, 3);
        if (st == PM_OK)
            st = pm_family_new(r, PM_TYPE_GAUGE, "ALERTS",
                               "Alert instances by rule, state and severity.", fo, &e->f_alerts);
        pm_family_opts_free(fo);
        if (st != PM_OK) goto fail;
        pm_family_t *fh;
        if ((st = pm__family_new_reserved(r, PM_TYPE_HISTOGRAM,
                                          "perfmetrics_alert_evaluation_seconds",
                                          "Duration of each alert evaluation (tick).", NULL,
                                          &fh)) != PM_OK ||
            (st = pm_histogram_get(fh, NULL, 0, &e->h_eval)) != PM_OK)
            goto fail;
        if ((st = pm_collector_add(r, "perfmetrics_alerts", collect, e, NULL, &e->coll)) != PM_OK)
            goto fail;
    }
    *out = e;
    return PM_OK;
fail:
    pm_histogram_release(e->h_eval);
    pm__ahub_free(e->hub);
    pm__aeval_free(e->ev);
    pm__wstore_free(e->ws);
    pm_buf_free(e->buf);
    free(e->hist);
    if (cv_ok) pthread_cond_destroy(&e->tcv);
    if (tlock_ok) pthread_mutex_destroy(&e->tlock);
    if (lock_ok) pthread_mutex_destroy(&e->lock);
    free(e);
    return st == PM_OK ? PM_ENOMEM : st;
}

void pm_alert_engine_free(pm_alert_engine_t *e)
{
    if (!e) return;
    pm_alert_engine_stop(e);
    if (e->coll) pm_collector_remove(e->coll);
    pthread_mutex_lock(&e->lock);
    for (size_t i = 0; i < e->nrules; i++) {
        alerts_update(e, e->rules[i], true);
        arule_free(e, e->rules[i]);
    }
    free(e->rules);
    for (size_t i = 0; i < e->hcount; i++)
        pm__aevent_unref(e->hist[(e->hhead + i) % e->o.history]);
    free(e->hist);
    pthread_mutex_unlock(&e->lock);
    /* Without a dispatch thread nobody else will deliver what is queued
     * (instances still active at free are dropped silently). With one,
     * pm__ahub_free drains the queue through it. */
    if (!e->o.dispatch_thread) pm__ahub_deliver(e->hub, 0, NULL);
    pm__ahub_free(e->hub);
    pm__aeval_free(e->ev);
    pm__wstore_free(e->ws);
    pm_buf_free(e->buf);
    pm_histogram_release(e->h_eval);
    pthread_cond_destroy(&e->tcv);
    pthread_mutex_destroy(&e->tlock);
    pthread_mutex_destroy(&e->lock);
    free(e);
}

static size_t rule_pos(const pm_alert_engine_t *e, const char *name, bool *found)
{
    size_t lo = 0, hi = e->nrules;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(e->rules[mid]->def->name, name);
        if (!c) {
            *found = true;
            return mid;
        }
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    *found = false;
    return lo;
}

pm_status_t pm__aengine_add_rules(pm_alert_engine_t *e, pm_alert_rule_t *const *rules, size_t n,
                                  size_t *bad)
{
    if (!e || (n && !rules)) return PM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!rules[i]) return PM_EINVAL;
    pthread_mutex_lock(&e->lock);
    pm_status_t st = PM_OK;
    arule_t **add = n ? calloc(n, sizeof *add) : NULL;
    if (n && !add) st = PM_ENOMEM;
    for (size_t i = 0; i < n && st == PM_OK; i++) {
        bool found;
        rule_pos(e, rules[i]->name, &found);
        for (size_t j = 0; j < i && !found; j++)
            found = !strcmp(rules[j]->name, rules[i]->name);
        if (found) {
            if (bad) *bad = i;
            st = PM_EEXIST;
            break;
        }
        add[i] = pm__calloc(&e->a, sizeof **add);
        if (!add[i]) st = PM_ENOMEM;
        else st = pm__arule_copy(rules[i], &add[i]->def);
    }
    if (st == PM_OK && e->nrules + n > e->caprules) {
        size_t cap = e->caprules ? e->caprules : 16;
        while (cap < e->nrules + n) cap *= 2;
        arule_t **g = realloc(e->rules, cap * sizeof *g);
        if (!g) st = PM_ENOMEM;
        else e->rules = g, e->caprules = cap;
    }
    if (st != PM_OK) {
        for (size_t i = 0; i < n && add; i++) arule_free(e, add[i]);
        free(add);
        pthread_mutex_unlock(&e->lock);
        return st;
    }
    for (size_t i = 0; i < n; i++) {
        bool found;
        size_t pos = rule_pos(e, add[i]->def->name, &found);
        memmove(e->rules + pos + 1, e->rules + pos, (e->nrules - pos) * sizeof *e->rules);
        e->rules[pos] = add[i];
        e->nrules++;
    }
    free(add);
    atomic_store(&e->st_nrules, e->nrules);
    pthread_mutex_unlock(&e->lock);
    return PM_OK;
}

pm_status_t pm_alert_engine_add_rule(pm_alert_engine_t *e, const pm_alert_rule_t *r)
{
    if (!e || !r) return PM_EINVAL;
    pm_alert_rule_t *one = (pm_alert_rule_t *)r;
    return pm__aengine_add_rules(e, &one, 1, NULL);
}

static int64_t event_time(const pm_alert_engine_t *e)
{
    return e->ticked ? e->last_now : pm__wall_ns();
}

pm_status_t pm_alert_engine_remove_rule(pm_alert_engine_t *e, const char *name)
{
    if (!e || !name) return PM_EINVAL;
    pthread_mutex_lock(&e->lock);
    bool found;
    size_t pos = rule_pos(e, name, &found);
    if (!found) {
        pthread_mutex_unlock(&e->lock);
        return PM_ENOENT;
    }
    arule_t *ar = e->rules[pos];
    drop_all(e, ar, event_time(e));
    alerts_update(e, ar, true);
    arule_free(e, ar);
    memmove(e->rules + pos, e->rules + pos + 1, (e->nrules - pos - 1) * sizeof *e->rules);
    e->nrules--;
    publish_stats(e);
    pthread_mutex_unlock(&e->lock);
    return PM_OK;
}

pm_status_t pm_alert_engine_enable_rule(pm_alert_engine_t *e, const char *name, int enabled)
{
    if (!e || !name) return PM_EINVAL;
    pthread_mutex_lock(&e->lock);
    bool found;
    size_t pos = rule_pos(e, name, &found);
    if (!found) {
        pthread_mutex_unlock(&e->lock);
        return PM_ENOENT;
    }
    arule_t *ar = e->rules[pos];
    if (ar->def->enabled && !enabled) {
        drop_all(e, ar, event_time(e));
        alerts_update(e, ar, true);
    }
    ar->def->enabled = enabled != 0;
    publish_stats(e);
    pthread_mutex_unlock(&e->lock);
    return PM_OK;
}

size_t pm_alert_engine_rule_count(const pm_alert_engine_t *e)
{
    return e ? (size_t)atomic_load(&((pm_alert_engine_t *)e)->st_nrules) : 0;
}

pm_status_t pm_alert_engine_tick(pm_alert_engine_t *e, int64_t now)
{
    if (!e) return PM_EINVAL;
    if (pm__in_callback || pm__ahub_in_notifier()) return PM_ESTATE;
    uint64_t t0 = pm_now_ns();
    pthread_mutex_lock(&e->lock);
    if (e->ticked && now < e->last_now) {
        pthread_mutex_unlock(&e->lock);
        return PM_ERANGE;
    }
    pm_snapshot_t *snap = NULL;
    pm_status_t st = pm_snapshot_new(e->reg, &snap);
    if (st != PM_OK) {
        pthread_mutex_unlock(&e->lock);
        return st;
    }
    int64_t dt = e->ticked ? now - e->last_now : 0;
    e->tick++;
    pm__wstore_begin(e->ws, now);
    pm__aeval_begin(e->ev, snap, now);
    for (size_t i = 0; i < e->nrules; i++) {
        arule_t *ar = e->rules[i];
        if (!ar->def->enabled) continue;
        eval_rule(e, ar, now, dt);
        notify_repeats(e, ar, now);
        alerts_update(e, ar, false);
    }
    pm__wstore_end(e->ws);
    pm_snapshot_release(snap);
    e->ticked = true;
    e->last_now = now;
    publish_stats(e);
    uint64_t took = pm_now_ns() - t0;
    atomic_store(&e->st_last_eval_ns, took);
    if (e->h_eval) pm_histogram_observe_ns(e->h_eval, took);
    atomic_fetch_add(&e->st_evals, 1);
    pthread_mutex_unlock(&e->lock);
    return PM_OK;
}

/* ------------------------------------------------------------ background */
static void *run(void *arg)
{
    pm_alert_engine_t *e = arg;
    pthread_mutex_lock(&e->tlock);
    while (!e->stop) {
        pthread_mutex_unlock(&e->tlock);
        int64_t now = pm__wall_ns();
        if (pm_alert_engine_tick(e, now) == PM_ERANGE) {
            /* The wall clock stepped back: evaluate at the last time again
             * rather than refuse forever. */
            pthread_mutex_lock(&e->lock);
            int64_t last = e->last_now;
            pthread_mutex_unlock(&e->lock);
            pm_alert_engine_tick(e, last);
        }
        pthread_mutex_lock(&e->tlock);
        struct timespec now_m;
        clock_gettime(CLOCK_MONOTONIC, &now_m);
        struct timespec until = pm__timespec_after(now_m, e->o.interval);
        while (!e->stop)
            if (pthread_cond_timedwait(&e->tcv, &e->tlock, &until) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&e->tlock);
    return NULL;
}

pm_status_t pm_alert_engine_start(pm_alert_engine_t *e)
{
    if (!e) return PM_EINVAL;
    pthread_mutex_lock(&e->tlock);
    if (e->running) {
        pthread_mutex_unlock(&e->tlock);
        return PM_ESTATE;
    }
    e->stop = false;
    if (pthread_create(&e->thread, NULL, run, e)) {
        pthread_mutex_unlock(&e->tlock);
        return PM_ETHREAD;
    }
    e->running = true;
    pthread_mutex_unlock(&e->tlock);
    return PM_OK;
}

pm_status_t pm_alert_engine_stop(pm_alert_engine_t *e)
{
    if (!e) return PM_EINVAL;
    pthread_mutex_lock(&e->tlock);
    if (!e->running) {
        pthread_mutex_unlock(&e->tlock);
        return PM_ESTATE;
    }
    e->stop = true;
    pthread_cond_broadcast(&e->tcv);
    pthread_t t = e->thread;
    pthread_mutex_unlock(&e->tlock);
    pthread_join(t, NULL);
    pthread_mutex_lock(&e->tlock);
    e->running = false;
    pthread_mutex_unlock(&e->tlock);
    return PM_OK;
}

/* ------------------------------------------------------------ queries */
double pm_alert_engine_health(const pm_alert_engine_t *e)
{
    return e ? pm__u2d(atomic_load(&((pm_alert_engine_t *)e)->st_health_bits)) : NAN;
}

uint64_t pm_alert_engine_stat(const pm_alert_engine_t *ce, pm_alert_stat_t which)
{
    pm_alert_engine_t *e = (pm_alert_engine_t *)ce;
    if (!e) return 0;
    switch (which) {
    case PM_ALERT_STAT_EVALUATIONS: return atomic_load(&e->st_evals);
    case PM_ALERT_STAT_RULE_FAILURES: return atomic_load(&e->st_rule_failures);
    case PM_ALERT_STAT_TRANSITIONS: return atomic_load(&e->st_transitions);
    case PM_ALERT_STAT_NOTIFY_QUEUED:
    case PM_ALERT_STAT_NOTIFY_SENT:
    case PM_ALERT_STAT_NOTIFY_FAILED:
    case PM_ALERT_STAT_NOTIFY_DROPPED: return pm__ahub_stat(e->hub, which);
    case PM_ALERT_STAT_SERIES_WINDOWED: return atomic_load(&e->st_windowed);
    case PM_ALERT_STAT_SERIES_REFUSED: return atomic_load(&e->st_refused);
    case PM_ALERT_STAT_INSTANCES: return atomic_load(&e->st_instances);
    case PM_ALERT_STAT_INSTANCES_REFUSED: return atomic_load(&e->st_instances_refused);
    case PM_ALERT_STAT_WINDOW_BYTES: return atomic_load(&e->st_bytes);
    case PM_ALERT_STAT_LAST_EVAL_NS: return atomic_load(&e->st_last_eval_ns);
    }
    return 0;
}

static int cmp_event(const void *a, const void *b)
{
    const pm_alert_event_t *x = *(pm_alert_event_t *const *)a, *y = *(pm_alert_event_t *const *)b;
    int c = strcmp(x->rule, y->rule);
    if (c) return c;
    return x->fingerprint < y->fingerprint ? -1 : x->fingerprint > y->fingerprint;
}

pm_status_t pm_alert_engine_active(pm_alert_engine_t *e, pm_alert_list_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!e) return PM_EINVAL;
    pthread_mutex_lock(&e->lock);
    size_t n = 0;
    for (size_t r = 0; r < e->nrules; r++) n += e->rules[r]->ninst;
    pm_alert_event_t **evs = calloc(n + 1, sizeof *evs);
    pm_status_t st = evs ? PM_OK : PM_ENOMEM;
    size_t k = 0;
    int64_t now = event_time(e);
    for (size_t r = 0; r < e->nrules && st == PM_OK; r++)
        for (size_t i = 0; i < e->rules[r]->ninst && st == PM_OK; i++) {
            const inst_t *in = e->rules[r]->inst[i];
            if (in->state != PM_ALERT_PENDING && in->state != PM_ALERT_FIRING) continue;
            evs[k] = make_event(e, e->rules[r], in, in->state, in->state, now);
            if (!evs[k]) st = PM_ENOMEM;
            else k++;
        }
    pthread_mutex_unlock(&e->lock);
    if (st == PM_OK) {
        qsort(evs, k, sizeof *evs, cmp_event);
        st = pm__alist_new(&e->a, evs, k, out);
    }
    for (size_t i = 0; i < k; i++) pm__aevent_unref(evs[i]);
    free(evs);
    return st;
}

pm_status_t pm_alert_engine_history(pm_alert_engine_t *e, pm_alert_list_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!e) return PM_EINVAL;
    pthread_mutex_lock(&e->lock);
    pm_alert_event_t **evs = calloc(e->hcount + 1, sizeof *evs);
    pm_status_t st = PM_ENOMEM;
    if (evs) {
        for (size_t i = 0; i < e->hcount; i++) evs[i] = e->hist[(e->hhead + i) % e->o.history];
        st = pm__alist_new(&e->a, evs, e->hcount, out);
    }
    pthread_mutex_unlock(&e->lock);
    free(evs);
    return st;
}
