/* The alert engine (include/perfmetrics/alerts.h, lib/alert_engine.c): the
 * instance state machine driven by scripted ticks, the expressions rules are
 * written in, events, history, health, statistics, the ALERTS family and the
 * self-metrics, notifiers and their filters, rule files, bad inputs, and the
 * background evaluation thread.
 *
 * Every engine here (but the dispatch-thread ones) is made without a
 * dispatch thread and its notifications are delivered with
 * pm_alert_engine_deliver after each tick, so every case is deterministic:
 * time is the `now` handed to pm_alert_engine_tick, never a clock, and no
 * case sleeps except the background-thread ones.
 *
 * Times: T0 = 1700000100 s (2023-11-14T22:15:00Z) is a multiple of 15 and of
 * 60, so with the 15 s interval every tick falls at the start of a window
 * bucket and a [1m] window holds exactly the samples of the last 4 ticks. */
#include "harness.h"

#include "internal/alert_internal.h"
#include <perfmetrics/perfmetrics.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#define SEC INT64_C(1000000000)
#define T0S INT64_C(1700000100)
#define T0 (T0S * SEC)
#define AT(s) (T0 + (int64_t)(s)*SEC)
#define NODATA NAN /* in a table: remove the series instead of setting it */

/* ================================================================ helpers */

/* What a notifier saw, copied (an event is only valid during the call). */
typedef struct note {
    char rule[64];
    pm_alert_state_t state, prev;
    pm_severity_t sev;
    double value, at, active_at, starts_at, ends_at;
    uint64_t fp;
    char labels[512]; /* name=value,name=value,... */
    char annots[512];
} note_t;

#define MAXNOTES 256

typedef struct rec {
    note_t n[MAXNOTES];
    size_t count;      /* calls */
    int fail;          /* every call returns this */
    int fail_resolved; /* calls with a resolved event return 1 */
    int released;
} rec_t;

static void join_pairs(char *out, size_t cap, size_t n,
                       const char *(*name)(const pm_alert_event_t *, size_t),
                       const char *(*value)(const pm_alert_event_t *, size_t),
                       const pm_alert_event_t *ev)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s=%s", i ? "," : "", name(ev, i),
                                value(ev, i));
}

static void copy_event(note_t *n, const pm_alert_event_t *ev)
{
    snprintf(n->rule, sizeof n->rule, "%s", pm_alert_event_rule(ev));
    n->state = pm_alert_event_state(ev);
    n->prev = pm_alert_event_prev_state(ev);
    n->sev = pm_alert_event_severity(ev);
    n->value = pm_alert_event_value(ev);
    n->at = pm_alert_event_time(ev);
    n->active_at = pm_alert_event_active_at(ev);
    n->starts_at = pm_alert_event_starts_at(ev);
    n->ends_at = pm_alert_event_ends_at(ev);
    n->fp = pm_alert_event_fingerprint(ev);
    join_pairs(n->labels, sizeof n->labels, pm_alert_event_label_count(ev),
               pm_alert_event_label_name, pm_alert_event_label_value, ev);
    join_pairs(n->annots, sizeof n->annots, pm_alert_event_annotation_count(ev),
               pm_alert_event_annotation_name, pm_alert_event_annotation_value, ev);
}

static int rec_notify(const pm_alert_event_t *ev, void *user)
{
    rec_t *r = user;
    if (r->count < MAXNOTES) copy_event(&r->n[r->count], ev);
    r->count++;
    if (r->fail_resolved && pm_alert_event_state(ev) == PM_ALERT_RESOLVED) return 1;
    return r->fail;
}

static void rec_release(void *user) { ((rec_t *)user)->released++; }

static char state_letter(pm_alert_state_t s)
{
    switch (s) {
    case PM_ALERT_INACTIVE:
        return 'I';
    case PM_ALERT_PENDING:
        return 'P';
    case PM_ALERT_FIRING:
        return 'F';
    case PM_ALERT_RESOLVED:
        return 'R';
    }
    return '?';
}

static char sev_letter(pm_severity_t s)
{
    return s == PM_SEVERITY_INFO       ? 'i'
           : s == PM_SEVERITY_WARNING  ? 'w'
           : s == PM_SEVERITY_CRITICAL ? 'c'
                                       : '?';
}

/* "FPw RFw": per entry the state, the previous state and the severity. */
static void code_append(char *out, size_t cap, pm_alert_state_t st, pm_alert_state_t prev,
                        pm_severity_t sev)
{
    size_t len = strlen(out);
    snprintf(out + len, cap - len, "%s%c%c%c", len ? " " : "", state_letter(st), state_letter(prev),
             sev_letter(sev));
}

static void notes_code(const rec_t *r, char *out, size_t cap)
{
    out[0] = '\0';
    for (size_t i = 0; i < r->count && i < MAXNOTES; i++)
        code_append(out, cap, r->n[i].state, r->n[i].prev, r->n[i].sev);
}

static void history_code(pm_alert_engine_t *e, char *out, size_t cap)
{
    out[0] = '\0';
    pm_alert_list_t *l = NULL;
    if (pm_alert_engine_history(e, &l) != PM_OK) {
        snprintf(out, cap, "(history failed)");
        return;
    }
    for (size_t i = 0; i < pm_alert_list_count(l); i++) {
        const pm_alert_event_t *ev = pm_alert_list_get(l, i);
        code_append(out, cap, pm_alert_event_state(ev), pm_alert_event_prev_state(ev),
                    pm_alert_event_severity(ev));
    }
    pm_alert_list_free(l);
}

static size_t history_len(pm_alert_engine_t *e)
{
    pm_alert_list_t *l = NULL;
    if (pm_alert_engine_history(e, &l) != PM_OK) return (size_t)-1;
    size_t n = pm_alert_list_count(l);
    pm_alert_list_free(l);
    return n;
}

static size_t active_count(pm_alert_engine_t *e)
{
    pm_alert_list_t *l = NULL;
    if (pm_alert_engine_active(e, &l) != PM_OK) return (size_t)-1;
    size_t n = pm_alert_list_count(l);
    pm_alert_list_free(l);
    return n;
}

static pm_registry_t *new_registry(void)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    pm_registry_opts_set_self_metrics(o, 0);
    pm_registry_new(o, &r);
    pm_registry_opts_free(o);
    return r;
}

typedef struct eopts {
    size_t history, queue, max_instances, max_series;
    int no_metrics;
    int dispatch;
    double interval;
} eopts_t;

static pm_alert_engine_t *new_engine(pm_registry_t *r, eopts_t eo)
{
    pm_alert_engine_opts_t *o = NULL;
    pm_alert_engine_t *e = NULL;
    if (pm_alert_engine_opts_new(&o) != PM_OK) return NULL;
    pm_status_t st = pm_alert_engine_opts_set_dispatch_thread(o, eo.dispatch);
    if (st == PM_OK) st = pm_alert_engine_opts_set_interval(o, eo.interval > 0 ? eo.interval : 15);
    if (st == PM_OK && eo.history) st = pm_alert_engine_opts_set_history(o, eo.history);
    if (st == PM_OK && eo.queue) st = pm_alert_engine_opts_set_queue(o, eo.queue);
    if (st == PM_OK && eo.max_instances)
        st = pm_alert_engine_opts_set_max_instances(o, eo.max_instances);
    if (st == PM_OK && eo.max_series) st = pm_alert_engine_opts_set_max_series(o, eo.max_series);
    if (st == PM_OK && eo.no_metrics) st = pm_alert_engine_opts_set_metrics(o, 0);
    if (st == PM_OK) pm_alert_engine_new(r, o, &e);
    pm_alert_engine_opts_free(o);
    return e;
}

/* A rule, or NULL with the parse error printed. */
static pm_alert_rule_t *mkrule(const char *name, const char *expr)
{
    pm_alert_rule_t *r = NULL;
    pm_parse_error_t *err = NULL;
    pm_status_t st = pm_alert_rule_new(name, expr, &r, &err);
    if (st != PM_OK)
        fprintf(stderr, "  rule %s (%s): %s %s\n", name, expr, pm_status_name(st),
                pm_parse_error_message(err));
    pm_parse_error_free(err);
    return r;
}

/* Adds a copy of r to e and frees r. */
static pm_status_t add_free(pm_alert_engine_t *e, pm_alert_rule_t *r)
{
    pm_status_t st = pm_alert_engine_add_rule(e, r);
    pm_alert_rule_free(r);
    return st;
}

/* The usual set-up: a registry with a gauge family x{job}, an engine without
 * dispatch thread, and a notifier recording everything. */
typedef struct fx {
    pm_registry_t *reg;
    pm_alert_engine_t *e;
    pm_family_t *x;
    rec_t *rec;
} fx_t;

static const char *const JOB_API[] = {"api"};

static int fx_init(fx_t *f, eopts_t eo)
{
    memset(f, 0, sizeof *f);
    f->rec = calloc(1, sizeof *f->rec);
    f->reg = new_registry();
    if (!f->rec || !f->reg) return 0;
    pm_family_opts_t *fo = NULL;
    static const char *const lab[] = {"job"};
    if (pm_family_opts_new(&fo) != PM_OK) return 0;
    pm_family_opts_set_labels(fo, lab, 1);
    pm_status_t st = pm_family_new(f->reg, PM_TYPE_GAUGE, "x", "The x.", fo, &f->x);
    pm_family_opts_free(fo);
    if (st != PM_OK) return 0;
    f->e = new_engine(f->reg, eo);
    if (!f->e) return 0;
    return pm_alert_engine_add_notifier(f->e, "rec", NULL, rec_notify, f->rec, NULL) == PM_OK;
}

static void fx_fini(fx_t *f)
{
    pm_alert_engine_free(f->e);
    pm_registry_free(f->reg);
    free(f->rec);
}

static void set_x(fx_t *f, double v)
{
    if (isnan(v))
        pm_family_remove(f->x, JOB_API, 1); /* PM_ENOENT when already gone: fine */
    else
        pm_gauge_set_labeled(f->x, JOB_API, 1, v);
}

/* One evaluation at T0 + s, then delivery of everything it queued. */
static pm_status_t tick_deliver(pm_alert_engine_t *e, int s)
{
    pm_status_t st = pm_alert_engine_tick(e, AT(s));
    if (st != PM_OK) return st;
    return pm_alert_engine_deliver(e, 0, NULL);
}

/* The state (and severity) of the engine's single active instance;
 * INACTIVE when there is none. */
static pm_alert_state_t single_state(pm_alert_engine_t *e, pm_severity_t *sev, size_t *n)
{
    pm_alert_list_t *l = NULL;
    *sev = 0;
    *n = 0;
    if (pm_alert_engine_active(e, &l) != PM_OK) return (pm_alert_state_t)-1;
    *n = pm_alert_list_count(l);
    pm_alert_state_t st = PM_ALERT_INACTIVE;
    if (*n) {
        st = pm_alert_event_state(pm_alert_list_get(l, 0));
        *sev = pm_alert_event_severity(pm_alert_list_get(l, 0));
    }
    pm_alert_list_free(l);
    return st;
}

/* ================================================================ state tables */

/* One row: at T0 + t, record v into x{job="api"} (NODATA: remove the
 * series), tick, deliver; then the rule's instance must be in `state`
 * (INACTIVE: no instance — a resolved one is gone), `notes` notifications
 * must have been delivered and the history must hold `hist` transitions.
 * `sev` (0: not checked) is the instance's severity. */
typedef struct step {
    int t;
    double v;
    pm_alert_state_t state;
    int notes, hist;
    pm_severity_t sev;
} step_t;

#define I_ PM_ALERT_INACTIVE
#define P_ PM_ALERT_PENDING
#define F_ PM_ALERT_FIRING
#define W_ PM_SEVERITY_WARNING
#define C_ PM_SEVERITY_CRITICAL
#define NSTEPS(a) (sizeof(a) / sizeof((a)[0]))

static void run_table(fx_t *f, const char *what, const step_t *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        set_x(f, s[i].v);
        pm_status_t st = tick_deliver(f->e, s[i].t);
        if (st != PM_OK)
            TH_FAIL_("%s row %zu (t=%d): tick %s", what, i, s[i].t, pm_status_name(st));
        pm_severity_t sev;
        size_t ninst;
        pm_alert_state_t got = single_state(f->e, &sev, &ninst);
        size_t hist = history_len(f->e);
        if (ninst > 1) TH_FAIL_("%s row %zu (t=%d): %zu instances", what, i, s[i].t, ninst);
        if (got != s[i].state)
            TH_FAIL_("%s row %zu (t=%d): state %s, want %s", what, i, s[i].t,
                     pm_alert_state_name(got), pm_alert_state_name(s[i].state));
        if ((int)f->rec->count != s[i].notes)
            TH_FAIL_("%s row %zu (t=%d): %zu notifications, want %d", what, i, s[i].t,
                     f->rec->count, s[i].notes);
        if ((int)hist != s[i].hist)
            TH_FAIL_("%s row %zu (t=%d): history %zu, want %d", what, i, s[i].t, hist, s[i].hist);
        if (s[i].sev && sev != s[i].sev)
            TH_FAIL_("%s row %zu (t=%d): severity %s, want %s", what, i, s[i].t,
                     pm_severity_name(sev), pm_severity_name(s[i].sev));
    }
}

/* Runs a table on a fresh fixture with rule `r` (taken) and compares the
 * notification and history sequences ("FPw": firing from pending, warning). */
static void table_case(const char *what, pm_alert_rule_t *r, const step_t *s, size_t n,
                       const char *want_notes, const char *want_hist)
{
    fx_t f;
    if (!r || !fx_init(&f, (eopts_t){0})) {
        TH_FAIL_("%s: set-up failed", what);
        pm_alert_rule_free(r);
        return;
    }
    CHECK_OK(add_free(f.e, r));
    run_table(&f, what, s, n);
    char got[1024];
    notes_code(f.rec, got, sizeof got);
    if (strcmp(got, want_notes))
        TH_FAIL_("%s: notifications \"%s\", want \"%s\"", what, got, want_notes);
    history_code(f.e, got, sizeof got);
    if (strcmp(got, want_hist)) TH_FAIL_("%s: history \"%s\", want \"%s\"", what, got, want_hist);
    fx_fini(&f);
}

TEST(test_table_for)
{
    /* for 30 s: pending for two ticks, firing at the third. */
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 30));
    static const step_t s[] = {
        {0, 1, I_, 0, 0, 0},    {15, 10, P_, 0, 1, W_}, /* new, for > 0: pending, not notified */
        {30, 10, P_, 0, 1, W_},                         /* 15 s < 30 s */
        {45, 10, F_, 1, 2, W_},                         /* 30 s >= 30 s: firing, notified */
        {60, 10, F_, 1, 2, W_},                         /* repeat 0: no reminder */
        {75, 1, I_, 2, 3, 0},   /* resolved (keep_firing_for 0), notified, gone */
        {90, 10, P_, 2, 4, W_}, /* starts again at pending */
        {105, 1, I_, 2, 5, 0},  /* pending and false: back to inactive, not notified */
        {120, 1, I_, 2, 5, 0},
    };
    table_case("for", r, s, NSTEPS(s), "FPw RFw", "PIw FPw RFw PIw IPw");
}

TEST(test_event_times)
{
    /* The times an event carries: active_at, starts_at (NaN before it
     * fired), ends_at (NaN until resolved), the event time. */
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 15));
    CHECK_OK(add_free(f.e, r));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));  /* pending */
    CHECK_OK(tick_deliver(f.e, 15)); /* firing */
    set_x(&f, 1);
    CHECK_OK(tick_deliver(f.e, 30)); /* resolved */
    REQUIRE(f.rec->count == 2);
    const note_t *fi = &f.rec->n[0], *re = &f.rec->n[1];
    CHECK_EQ_INT(fi->state, PM_ALERT_FIRING);
    CHECK_EQ_INT(fi->prev, PM_ALERT_PENDING);
    CHECK_EQ_DBL(fi->at, (double)T0S + 15);
    CHECK_EQ_DBL(fi->active_at, (double)T0S);
    CHECK_EQ_DBL(fi->starts_at, (double)T0S + 15);
    CHECK(isnan(fi->ends_at));
    CHECK_EQ_DBL(fi->value, 10);
    CHECK_EQ_INT(re->state, PM_ALERT_RESOLVED);
    CHECK_EQ_INT(re->prev, PM_ALERT_FIRING);
    CHECK_EQ_DBL(re->at, (double)T0S + 30);
    CHECK_EQ_DBL(re->active_at, (double)T0S);
    CHECK_EQ_DBL(re->starts_at, (double)T0S + 15);
    CHECK_EQ_DBL(re->ends_at, (double)T0S + 30);
    /* The pending entry of the history has no starts_at yet. */
    pm_alert_list_t *h = NULL;
    CHECK_OK(pm_alert_engine_history(f.e, &h));
    REQUIRE(pm_alert_list_count(h) == 3);
    const pm_alert_event_t *p = pm_alert_list_get(h, 0);
    CHECK_EQ_INT(pm_alert_event_state(p), PM_ALERT_PENDING);
    CHECK_EQ_INT(pm_alert_event_prev_state(p), PM_ALERT_INACTIVE);
    CHECK(isnan(pm_alert_event_starts_at(p)));
    CHECK(isnan(pm_alert_event_ends_at(p)));
    CHECK_EQ_DBL(pm_alert_event_time(p), (double)T0S);
    pm_alert_list_free(h);
    fx_fini(&f);
}

TEST(test_table_keep_firing_for)
{
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_keep_firing_for(r, 45));
    /* keep_firing_for counts from the first evaluation at which the
     * condition no longer holds (as Prometheus does). */
    static const step_t s[] = {
        {0, 10, F_, 1, 1, W_},  /* for 0: firing at once, from inactive */
        {15, 1, F_, 1, 1, W_},  /* first false evaluation: the clock starts */
        {30, 10, F_, 1, 1, W_}, /* true again: the clock is cleared */
        {45, 1, F_, 1, 1, W_},  /* starts again at 45: 0 s */
        {60, 1, F_, 1, 1, W_},  /* 15 s */
        {75, 1, F_, 1, 1, W_},  /* 30 s */
        {90, 1, I_, 2, 2, 0},   /* 45 s >= keep_firing_for: resolved */
        {105, 1, I_, 2, 2, 0},
    };
    table_case("keep_firing_for", r, s, NSTEPS(s), "FIw RFw", "FIw RFw");
}

TEST(test_table_repeat)
{
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_repeat_interval(r, 30));
    static const step_t s[] = {
        {0, 10, F_, 1, 1, W_},   {15, 10, F_, 1, 1, W_}, /* 15 s since the last notification */
        {30, 10, F_, 2, 1, W_}, /* 30 s: a reminder, FIRING -> FIRING, not history */
        {45, 10, F_, 2, 1, W_},  {60, 10, F_, 3, 1, W_}, /* the next one */
        {75, 1, I_, 4, 2, 0},                            /* resolved */
        {90, 10, F_, 5, 3, W_},                          /* fires again: a fresh repeat clock */
        {105, 10, F_, 5, 3, W_}, {120, 10, F_, 6, 3, W_},
    };
    table_case("repeat", r, s, NSTEPS(s), "FIw FFw FFw RFw FIw FFw", "FIw RFw FIw");
}

TEST(test_table_hysteresis_shorthand)
{
    pm_alert_rule_t *r = mkrule("HighX", "x > 90");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_resolve(r, "< 80", NULL));
    static const step_t s[] = {
        {0, 95, F_, 1, 1, W_},
        {15, 85, F_, 1, 1, W_}, /* condition false, 85 is not < 80: held */
        {30, 80, F_, 1, 1, W_}, /* still not < 80 */
        {45, 79, I_, 2, 2, 0},  /* resolve condition: resolved */
        {60, 85, I_, 2, 2, 0},  /* only active instances are held */
        {75, 91, F_, 3, 3, W_},
        {90, NODATA, I_, 4, 4, 0}, /* the series is gone: nothing holds it */
    };
    table_case("hysteresis <80", r, s, NSTEPS(s), "FIw RFw FIw RFw", "FIw RFw FIw RFw");
}

TEST(test_table_hysteresis_pending)
{
    /* Only a firing instance is held (lib/alert_engine.c): `for` needs the
     * firing condition itself at every evaluation, so a pending instance
     * whose condition stops goes back to inactive although the resolve
     * condition does not hold. */
    pm_alert_rule_t *r = mkrule("HighX", "x > 90");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 30));
    CHECK_OK(pm_alert_rule_set_resolve(r, "<80", NULL));
    static const step_t s[] = {
        {0, 95, P_, 0, 1, W_},  {15, 85, I_, 0, 2, 0},  /* pending is not held */
        {30, 95, P_, 0, 3, W_},                         /* a new pending spell */
        {45, 95, P_, 0, 3, W_}, {60, 95, F_, 1, 4, W_}, /* 30 s of the firing condition */
        {75, 85, F_, 1, 4, W_},                         /* firing: held (85 is not < 80) */
        {90, 70, I_, 2, 5, 0},
    };
    table_case("hysteresis pending", r, s, NSTEPS(s), "FPw RFw", "PIw IPw PIw FPw RFw");
}

TEST(test_table_hysteresis_thresholds)
{
    /* The MemoryHigh form: thresholds with a resolve shorthand. */
    pm_alert_rule_t *r = mkrule("MemoryHigh", "x");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_thresholds(r, ">", 85, 95));
    CHECK_OK(pm_alert_rule_set_resolve(r, "< 80", NULL));
    static const step_t s[] = {
        {0, 50, I_, 0, 0, 0},   {15, 90, F_, 1, 1, W_},
        {30, 82, F_, 1, 1, W_}, /* below warning: held, keeps its severity */
        {45, 97, F_, 2, 2, C_}, /* escalation: history and notification */
        {60, 82, F_, 2, 2, C_}, /* held: stays critical */
        {75, 90, F_, 3, 3, W_}, /* warning again: a change */
        {90, 79, I_, 4, 4, 0},
    };
    table_case("hysteresis thresholds", r, s, NSTEPS(s), "FIw FFc FFw RFw", "FIw FFc FFw RFw");
}

/* A full resolve expression: the instance resolves when the resolve
 * expression's result holds its label set. Rows: x, ok_flag, state, notes,
 * history. */
TEST(test_hysteresis_expression)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_family_opts_t *fo = NULL;
    static const char *const lab[] = {"job"};
    pm_family_t *ok = NULL;
    REQUIRE(pm_family_opts_new(&fo) == PM_OK);
    CHECK_OK(pm_family_opts_set_labels(fo, lab, 1));
    CHECK_OK(pm_family_new(f.reg, PM_TYPE_GAUGE, "ok_flag", "Recovered.", fo, &ok));
    pm_family_opts_free(fo);
    pm_alert_rule_t *r = mkrule("HighX", "x > 90");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_resolve(r, "ok_flag == 1", NULL));
    CHECK_OK(add_free(f.e, r));
    static const struct {
        int t;
        double x, ok;
        pm_alert_state_t state;
        int notes, hist;
    } s[] = {
        {0, 95, 0, F_, 1, 1},
        {15, 50, 0, F_, 1, 1}, /* false, resolve does not hold: held */
        {30, 50, 1, I_, 2, 2}, /* resolve holds for job="api": resolved */
        {45, 95, 1, F_, 3, 3}, /* the condition wins over the resolve one */
        {60, 95, 0, F_, 3, 3},
        {75, NODATA, 0, I_, 4, 4}, /* x gone: resolved although ok_flag is 0 */
    };
    for (size_t i = 0; i < NSTEPS(s); i++) {
        set_x(&f, s[i].x);
        CHECK_OK(pm_gauge_set_labeled(ok, JOB_API, 1, s[i].ok));
        CHECK_OK(tick_deliver(f.e, s[i].t));
        pm_severity_t sev;
        size_t n;
        pm_alert_state_t got = single_state(f.e, &sev, &n);
        if (got != s[i].state || (int)f.rec->count != s[i].notes ||
            (int)history_len(f.e) != s[i].hist)
            TH_FAIL_("row %zu (t=%d): %s/%zu notes/%zu hist, want %s/%d/%d", i, s[i].t,
                     pm_alert_state_name(got), f.rec->count, history_len(f.e),
                     pm_alert_state_name(s[i].state), s[i].notes, s[i].hist);
    }
    fx_fini(&f);
}

TEST(test_table_thresholds)
{
    pm_alert_rule_t *r = mkrule("HighX", "x");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_thresholds(r, ">", 80, 90));
    static const step_t s[] = {
        {0, 50, I_, 0, 0, 0},   {15, 85, F_, 1, 1, W_}, /* past warning only */
        {30, 95, F_, 2, 2, C_},                         /* escalation: FIRING -> FIRING critical */
        {45, 96, F_, 2, 2, C_},                         /* no change */
        {60, 85, F_, 3, 3, W_},                         /* de-escalation */
        {75, 50, I_, 4, 4, 0},                          /* resolved, with the last severity */
    };
    table_case("thresholds", r, s, NSTEPS(s), "FIw FFc FFw RFw", "FIw FFc FFw RFw");
}

TEST(test_table_thresholds_below)
{
    /* "<" thresholds (free space), and critical only (warning NaN). */
    pm_alert_rule_t *r = mkrule("LowX", "x");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_thresholds(r, "<", 20, 10));
    static const step_t s[] = {
        {0, 50, I_, 0, 0, 0},  {15, 15, F_, 1, 1, W_},
        {30, 5, F_, 2, 2, C_}, {45, 10, F_, 3, 3, W_}, /* 10 is not < 10 */
        {60, 20, I_, 4, 4, 0},
    };
    table_case("thresholds <", r, s, NSTEPS(s), "FIw FFc FFw RFw", "FIw FFc FFw RFw");

    r = mkrule("HighX", "x");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_thresholds(r, ">=", NAN, 90));
    static const step_t s2[] = {
        {0, 85, I_, 0, 0, 0}, /* no warning level */
        {15, 90, F_, 1, 1, C_},
        {30, 89, I_, 2, 2, 0},
    };
    table_case("critical only", r, s2, NSTEPS(s2), "FIc RFc", "FIc RFc");
}

TEST(test_table_thresholds_pending)
{
    /* A pending instance follows the severity silently and fires with the
     * one it has then. */
    pm_alert_rule_t *r = mkrule("HighX", "x");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_thresholds(r, ">", 80, 90));
    CHECK_OK(pm_alert_rule_set_for(r, 30));
    static const step_t s[] = {
        {0, 85, P_, 0, 1, W_},
        {15, 95, P_, 0, 1, C_},
        {30, 95, F_, 1, 2, C_},
        {45, 70, I_, 2, 3, 0},
    };
    table_case("thresholds pending", r, s, NSTEPS(s), "FPc RFc", "PIw FPc RFc");
}

TEST(test_table_nodata_ok)
{
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_keep_firing_for(r, 30));
    CHECK_OK(pm_alert_rule_set_nodata(r, PM_NODATA_OK));
    static const step_t s[] = {
        {0, 10, F_, 1, 1, W_},
        {15, NODATA, F_, 1, 1, W_}, /* as if false: keep_firing_for starts */
        {30, NODATA, F_, 1, 1, W_}, /* 15 s */
        {45, NODATA, I_, 2, 2, 0},  /* 30 s: resolved */
        {60, 10, F_, 3, 3, W_},
    };
    table_case("nodata ok", r, s, NSTEPS(s), "FIw RFw FIw", "FIw RFw FIw");
}

TEST(test_table_nodata_keep_pending)
{
    /* KEEP: the pending clock only runs over ticks with data; without the
     * gap it would fire at t=30. */
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 30));
    CHECK_OK(pm_alert_rule_set_nodata(r, PM_NODATA_KEEP));
    static const step_t s[] = {
        {0, 10, P_, 0, 1, W_},      {15, NODATA, P_, 0, 1, W_}, /* frozen */
        {30, NODATA, P_, 0, 1, W_},                             /* frozen */
        {45, 10, P_, 0, 1, W_},                                 /* 15 s with data */
        {60, 10, F_, 1, 2, W_},                                 /* 30 s with data */
        {75, NODATA, F_, 1, 2, W_},                             /* nothing changes */
        {90, NODATA, F_, 1, 2, W_}, {105, 1, I_, 2, 3, 0}, /* data, condition false: resolved */
    };
    table_case("nodata keep pending", r, s, NSTEPS(s), "FPw RFw", "PIw FPw RFw");
}

TEST(test_table_nodata_keep_firing)
{
    /* KEEP with keep_firing_for 30: the keep_firing_for clock (started at
     * the first false evaluation, t=15) stops over the gap; with
     * PM_NODATA_OK it would resolve at t=45. */
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_keep_firing_for(r, 30));
    CHECK_OK(pm_alert_rule_set_nodata(r, PM_NODATA_KEEP));
    static const step_t s[] = {
        {0, 10, F_, 1, 1, W_},      {15, 1, F_, 1, 1, W_}, /* false: the clock starts */
        {30, NODATA, F_, 1, 1, W_},                        /* the clock stops */
        {45, NODATA, F_, 1, 1, W_}, {60, 1, F_, 1, 1, W_}, /* 15 s of data-backed "false" */
        {75, 1, I_, 2, 2, 0},                              /* 30 s: resolved */
    };
    table_case("nodata keep firing", r, s, NSTEPS(s), "FIw RFw", "FIw RFw");
}

TEST(test_nodata_keep_active_at)
{
    /* alerts.h: pm_alert_event_active_at is "when the instance became
     * active". Freezing the pending clock over a no-data gap must not move
     * that time: the instance became pending at T0.
     * Fails against lib/alert_engine.c as written: eval_rule's KEEP branch
     * freezes the clock by moving active_at (active_at += dt), so the
     * firing event reports T0 + 15. A separate "pending time" field would
     * keep both promises. */
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 30));
    CHECK_OK(pm_alert_rule_set_nodata(r, PM_NODATA_KEEP));
    CHECK_OK(add_free(f.e, r));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    set_x(&f, NODATA);
    CHECK_OK(tick_deliver(f.e, 15));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 30));
    CHECK_OK(tick_deliver(f.e, 45)); /* fires: 30 s with data */
    REQUIRE(f.rec->count == 1);
    CHECK_EQ_INT(f.rec->n[0].state, PM_ALERT_FIRING);
    CHECK_EQ_DBL(f.rec->n[0].active_at, (double)T0S);
    fx_fini(&f);
}

TEST(test_table_nodata_alerting)
{
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 15));
    CHECK_OK(pm_alert_rule_set_nodata(r, PM_NODATA_ALERTING));
    static const step_t s[] = {
        {0, 1, I_, 0, 0, 0},        /* data, condition false */
        {15, NODATA, P_, 0, 1, W_}, /* the nodata instance, pending */
        {30, NODATA, F_, 1, 2, W_}, /* and firing after for */
        {45, 1, I_, 2, 3, 0},       /* data again: it resolves */
        {60, 10, P_, 2, 4, W_},     /* the series' own instance */
        {75, NODATA, P_, 2, 6, W_}, /* that one ends, the nodata one starts */
    };
    /* At t=75 the series' instance ends before the nodata one starts
     * (instances advance in creation order). */
    table_case("nodata alerting", r, s, NSTEPS(s), "FPw RFw", "PIw FPw RFw PIw IPw PIw");
}

TEST(test_nodata_alerting_event)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_nodata(r, PM_NODATA_ALERTING));
    CHECK_OK(pm_alert_rule_set_label(r, "team", "core"));
    CHECK_OK(add_free(f.e, r));
    CHECK_OK(tick_deliver(f.e, 0)); /* x has no series at all */
    REQUIRE(f.rec->count == 1);
    CHECK_EQ_INT(f.rec->n[0].state, PM_ALERT_FIRING);
    CHECK(isnan(f.rec->n[0].value));
    CHECK_STR(f.rec->n[0].labels,
              "alertname=HighX,alertstate_reason=nodata,severity=warning,team=core");
    fx_fini(&f);
}

TEST(test_nodata_alerting_thresholds)
{
    /* PM_NODATA_ALERTING applies to every rule; a thresholds rule has no
     * value to compare with the levels when there is no data, and must
     * still raise its nodata instance.
     * Fails against lib/alert_engine.c as written: the nodata element (value
     * NaN) goes through the threshold comparisons like any element, matches
     * neither level and is skipped, so no instance is ever made. */
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_alert_rule_t *r = mkrule("MemoryHigh", "x");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_thresholds(r, ">", 85, 95));
    CHECK_OK(pm_alert_rule_set_nodata(r, PM_NODATA_ALERTING));
    CHECK_OK(add_free(f.e, r));
    CHECK_OK(tick_deliver(f.e, 0));
    CHECK_EQ_U64(active_count(f.e), 1);
    CHECK_EQ_U64(f.rec->count, 1);
    if (f.rec->count) CHECK_CONTAINS(f.rec->n[0].labels, "alertstate_reason=nodata");
    fx_fini(&f);
}

TEST(test_table_flapping)
{
    /* A condition that alternates every tick with for > interval never
     * fires: each true tick starts a new pending instance. */
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 30));
    static const step_t s[] = {
        {0, 10, P_, 0, 1, W_},  {15, 1, I_, 0, 2, 0},   {30, 10, P_, 0, 3, W_},
        {45, 1, I_, 0, 4, 0},   {60, 10, P_, 0, 5, W_}, {75, 1, I_, 0, 6, 0},
        {90, 10, P_, 0, 7, W_}, {105, 1, I_, 0, 8, 0},  {120, 10, P_, 0, 9, W_},
    };
    table_case("flapping", r, s, NSTEPS(s), "", "PIw IPw PIw IPw PIw IPw PIw IPw PIw");
}

/* ================================================================ engine-level lifecycle */

TEST(test_disable_remove_readd)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_family_opts_t *fo = NULL;
    static const char *const lab[] = {"job"};
    pm_family_t *y = NULL;
    REQUIRE(pm_family_opts_new(&fo) == PM_OK);
    CHECK_OK(pm_family_opts_set_labels(fo, lab, 1));
    CHECK_OK(pm_family_new(f.reg, PM_TYPE_GAUGE, "y", "The y.", fo, &y));
    pm_family_opts_free(fo);
    /* Fire: firing now. Pend: pending (for 1h). */
    pm_alert_rule_t *fire = mkrule("Fire", "x > 5"), *pend = mkrule("Pend", "y > 5");
    REQUIRE(fire && pend);
    CHECK_OK(pm_alert_rule_set_for(pend, 3600));
    CHECK_OK(add_free(f.e, fire));
    CHECK_OK(add_free(f.e, pend));
    set_x(&f, 10);
    CHECK_OK(pm_gauge_set_labeled(y, JOB_API, 1, 10));
    CHECK_OK(tick_deliver(f.e, 0));
    CHECK_EQ_U64(active_count(f.e), 2);
    CHECK_EQ_U64(f.rec->count, 1);

    /* Disabling resolves the firing instance (notified) and drops the pending one. */
    CHECK_OK(pm_alert_engine_enable_rule(f.e, "Fire", 0));
    CHECK_OK(pm_alert_engine_enable_rule(f.e, "Pend", 0));
    CHECK_OK(pm_alert_engine_deliver(f.e, 0, NULL));
    CHECK_EQ_U64(active_count(f.e), 0);
    CHECK_EQ_U64(f.rec->count, 2);
    CHECK_EQ_INT(f.rec->n[1].state, PM_ALERT_RESOLVED);
    CHECK_EQ_DBL(f.rec->n[1].ends_at, (double)T0S); /* the last evaluation's time */
    char h[256];
    history_code(f.e, h, sizeof h);
    CHECK_STR(h, "FIw PIw RFw IPw");
    CHECK_EQ_U64(pm_alert_engine_rule_count(f.e), 2);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_INSTANCES), 0);
    /* Disabled twice: nothing more. A disabled rule is not evaluated. */
    CHECK_OK(pm_alert_engine_enable_rule(f.e, "Fire", 0));
    CHECK_OK(tick_deliver(f.e, 15));
    CHECK_EQ_U64(active_count(f.e), 0);
    CHECK_EQ_U64(f.rec->count, 2);
    CHECK_EQ_DBL(pm_alert_engine_health(f.e), 100);

    /* Enabled again: starts fresh (pending for a full hour again). */
    CHECK_OK(pm_alert_engine_enable_rule(f.e, "Fire", 1));
    CHECK_OK(pm_alert_engine_enable_rule(f.e, "Pend", 1));
    CHECK_OK(pm_alert_engine_enable_rule(f.e, "Pend", 1));
    CHECK_OK(tick_deliver(f.e, 30));
    CHECK_EQ_U64(active_count(f.e), 2);
    CHECK_EQ_U64(f.rec->count, 3);
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm_alert_engine_active(f.e, &l));
    REQUIRE(pm_alert_list_count(l) == 2);
    CHECK_STR(pm_alert_event_rule(pm_alert_list_get(l, 1)), "Pend");
    CHECK_EQ_DBL(pm_alert_event_active_at(pm_alert_list_get(l, 1)), (double)T0S + 30);
    pm_alert_list_free(l);

    /* Removing: the firing one resolves (notified), the pending one ends. */
    CHECK_OK(pm_alert_engine_remove_rule(f.e, "Fire"));
    CHECK_OK(pm_alert_engine_remove_rule(f.e, "Pend"));
    CHECK_STATUS(pm_alert_engine_remove_rule(f.e, "Pend"), PM_ENOENT);
    CHECK_OK(pm_alert_engine_deliver(f.e, 0, NULL));
    CHECK_EQ_U64(f.rec->count, 4);
    CHECK_EQ_INT(f.rec->n[3].state, PM_ALERT_RESOLVED);
    CHECK_STR(f.rec->n[3].rule, "Fire");
    CHECK_EQ_U64(pm_alert_engine_rule_count(f.e), 0);
    CHECK_EQ_U64(active_count(f.e), 0);
    history_code(f.e, h, sizeof h);
    CHECK_STR(h, "FIw PIw RFw IPw FIw PIw RFw IPw");

    /* Re-adding under the same name starts from nothing. */
    pm_alert_rule_t *again = mkrule("Fire", "x > 5");
    REQUIRE(again);
    CHECK_OK(pm_alert_rule_set_for(again, 15));
    CHECK_OK(add_free(f.e, again));
    CHECK_OK(tick_deliver(f.e, 45));
    pm_severity_t sev;
    size_t n;
    CHECK_EQ_INT(single_state(f.e, &sev, &n), PM_ALERT_PENDING);
    CHECK_OK(tick_deliver(f.e, 60));
    CHECK_EQ_INT(single_state(f.e, &sev, &n), PM_ALERT_FIRING);
    CHECK_EQ_U64(f.rec->count, 5);
    fx_fini(&f);
}

TEST(test_rule_added_disabled)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_enabled(r, 0));
    CHECK_OK(add_free(f.e, r));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    CHECK_EQ_U64(active_count(f.e), 0);
    CHECK_OK(pm_alert_engine_enable_rule(f.e, "HighX", 1));
    CHECK_OK(tick_deliver(f.e, 15));
    CHECK_EQ_U64(active_count(f.e), 1);
    CHECK_EQ_U64(f.rec->count, 1);
    fx_fini(&f);
}

TEST(test_rule_copied_by_engine)
{
    /* The engine copies the rule: changing or freeing the caller's object
     * afterwards changes nothing. */
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_engine_add_rule(f.e, r));
    CHECK_OK(pm_alert_rule_set_for(r, 3600));
    CHECK_OK(pm_alert_rule_set_severity(r, PM_SEVERITY_CRITICAL));
    pm_alert_rule_free(r);
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    pm_severity_t sev;
    size_t n;
    CHECK_EQ_INT(single_state(f.e, &sev, &n), PM_ALERT_FIRING);
    CHECK_EQ_INT(sev, PM_SEVERITY_WARNING);
    fx_fini(&f);
}

TEST(test_tick_backwards)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 30));
    CHECK_OK(add_free(f.e, r));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 15));
    CHECK_OK(tick_deliver(f.e, 30));
    uint64_t evals = pm_alert_engine_stat(f.e, PM_ALERT_STAT_EVALUATIONS);
    CHECK_EQ_U64(evals, 2);
    /* Backwards: refused, nothing changes — not even after 30 s of pending
     * "measured" from the earlier time. */
    CHECK_STATUS(pm_alert_engine_tick(f.e, AT(15)), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_tick(f.e, AT(30) - 1), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_tick(f.e, INT64_MIN), PM_ERANGE);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_EVALUATIONS), evals);
    CHECK_EQ_U64(history_len(f.e), 1);
    pm_severity_t sev;
    size_t n;
    CHECK_EQ_INT(single_state(f.e, &sev, &n), PM_ALERT_PENDING);
    /* The same time again is allowed. */
    CHECK_OK(tick_deliver(f.e, 30));
    CHECK_EQ_INT(single_state(f.e, &sev, &n), PM_ALERT_PENDING);
    CHECK_OK(tick_deliver(f.e, 45));
    CHECK_EQ_INT(single_state(f.e, &sev, &n), PM_ALERT_FIRING);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_EVALUATIONS), evals + 2);
    fx_fini(&f);
}

TEST(test_duplicate_rule_name)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    pm_alert_rule_t *a = mkrule("HighX", "x > 5"), *b = mkrule("HighX", "x > 100");
    REQUIRE(a && b);
    CHECK_OK(pm_alert_rule_set_severity(b, PM_SEVERITY_CRITICAL));
    CHECK_OK(add_free(f.e, a));
    CHECK_STATUS(pm_alert_engine_add_rule(f.e, b), PM_EEXIST);
    pm_alert_rule_free(b);
    CHECK_EQ_U64(pm_alert_engine_rule_count(f.e), 1);
    /* The first one is still the one evaluated. */
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    pm_severity_t sev;
    size_t n;
    CHECK_EQ_INT(single_state(f.e, &sev, &n), PM_ALERT_FIRING);
    CHECK_EQ_INT(sev, PM_SEVERITY_WARNING);
    fx_fini(&f);
}

/* ================================================================ expressions */

/* A counter family with labels (values for `labels` given per call). */
static pm_family_t *family(pm_registry_t *r, pm_type_t t, const char *name,
                           const char *const *labels, size_t n)
{
    pm_family_opts_t *fo = NULL;
    pm_family_t *f = NULL;
    if (pm_family_opts_new(&fo) != PM_OK) return NULL;
    if (n) pm_family_opts_set_labels(fo, labels, n);
    pm_family_new(r, t, name, "Test family.", fo, &f);
    pm_family_opts_free(fo);
    return f;
}

/* The value of the active instance of `rule` whose label `name` is `value`
 * (NULL: the first of the rule); NaN when there is none. */
static double active_value(pm_alert_engine_t *e, const char *rule, const char *name,
                           const char *value, pm_alert_state_t *state)
{
    pm_alert_list_t *l = NULL;
    double v = NAN;
    if (state) *state = PM_ALERT_INACTIVE;
    if (pm_alert_engine_active(e, &l) != PM_OK) return NAN;
    for (size_t i = 0; i < pm_alert_list_count(l); i++) {
        const pm_alert_event_t *ev = pm_alert_list_get(l, i);
        if (strcmp(pm_alert_event_rule(ev), rule)) continue;
        const char *lv = name ? pm_alert_event_label(ev, name) : NULL;
        if (name && (!lv || strcmp(lv, value))) continue;
        v = pm_alert_event_value(ev);
        if (state) *state = pm_alert_event_state(ev);
        break;
    }
    pm_alert_list_free(l);
    return v;
}

#define EPS 1e-9

TEST(test_expr_counter_rate)
{
    /* rate(requests[1m]) with the counter at 1000 and +30 per 15 s tick.
     * The window holds the samples of the last 4 ticks (B = 4 buckets of
     * 15 s). With Prometheus' extrapolation (no sample at the window's
     * start; the counter is far from zero so no clamp):
     *   2 samples: increase 30 over 15 s; 45 s to the window start > 1.1 x
     *     15 s, so extrapolate 7.5 s: 30 x 22.5/15 = 45 / 60 s = 0.75/s
     *   3 samples: 60 over 30 s, +7.5 s: 60 x 37.5/30 = 75 / 60 = 1.25/s
     *   4 samples: 90 over 45 s, 15 s to the start < 16.5: +15 s:
     *     90 x 60/45 = 120 / 60 = 2/s   (and 2/s from then on).
     * After the increments stop (last at t=60):
     *   t=75: samples 1060 1090 1120 1120: 60 x 60/45 / 60 = 1.333/s
     *   t=90: samples 1090 1120 1120 1120: 30 x 60/45 / 60 = 0.667/s. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    rec_t *rec = calloc(1, sizeof *rec);
    REQUIRE(rec);
    CHECK_OK(pm_alert_engine_add_notifier(e, "rec", NULL, rec_notify, rec, NULL));
    pm_counter_t *c = NULL;
    CHECK_OK(pm_counter_new(reg, "requests", "Requests.", &c));
    pm_counter_add(c, 1000);
    pm_alert_rule_t *r = mkrule("RequestRate", "rate(requests_total[1m]) > 1");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    static const struct {
        int t, inc;
        pm_alert_state_t state;
        double value; /* of the active instance, NaN: none */
    } s[] = {
        {0, 0, I_, NAN},   /* one sample: no rate yet (no data) */
        {15, 30, I_, NAN}, /* 0.75 */
        {30, 30, F_, 1.25}, {45, 30, F_, 2.0}, {60, 30, F_, 2.0}, {75, 0, F_, 60.0 * 60 / 45 / 60},
        {90, 0, I_, NAN}, /* 0.667: resolved */
    };
    for (size_t i = 0; i < NSTEPS(s); i++) {
        pm_counter_add(c, s[i].inc);
        CHECK_OK(tick_deliver(e, s[i].t));
        pm_alert_state_t st;
        double v = active_value(e, "RequestRate", NULL, NULL, &st);
        if (st != s[i].state) TH_FAIL_("t=%d: state %s", s[i].t, pm_alert_state_name(st));
        if (isnan(s[i].value) ? !isnan(v) : !(fabs(v - s[i].value) <= EPS))
            TH_FAIL_("t=%d: value %.17g, want %.17g", s[i].t, v, s[i].value);
    }
    REQUIRE(rec->count == 2);
    CHECK_NEAR(rec->n[0].value, 1.25, EPS);
    CHECK_EQ_INT(rec->n[1].state, PM_ALERT_RESOLVED);
    CHECK_STR(rec->n[0].labels, "alertname=RequestRate,severity=warning");
    pm_alert_engine_free(e);
    pm_registry_free(reg);
    free(rec);
}

TEST(test_expr_error_ratio)
{
    /* sum(rate(tasks{status="error"}[1m])) / sum(rate(tasks[1m])) > 0.05,
     * for 15 s. Both series are sampled at the same ticks and are far from
     * zero, so the extrapolation factor cancels and the ratio is the ratio
     * of the increases over the window (the steps between its 4 samples):
     *   phase A (t <= 60): ok +58, error +2 per tick: 2/60 = 0.033
     *   phase B (t >= 75): ok +54, error +6 per tick
     *   t=75: steps A A B: (2+2+6)/180 = 0.0556 > 0.05: pending
     *   t=90: steps A B B: (2+6+6)/180 = 0.0778: firing
     *   t=105: B B B: 18/180 = 0.1. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    static const char *const lab[] = {"status"};
    pm_family_t *tasks = family(reg, PM_TYPE_COUNTER, "tasks", lab, 1);
    REQUIRE(tasks);
    static const char *const OK[] = {"ok"}, *const ERR[] = {"error"};
    CHECK_OK(pm_counter_add_labeled(tasks, OK, 1, 1000));
    CHECK_OK(pm_counter_add_labeled(tasks, ERR, 1, 100));
    pm_alert_rule_t *r = mkrule(
        "ErrorRatio", "sum(rate(tasks{status=\"error\"}[1m])) / sum(rate(tasks[1m])) > 0.05");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 15));
    CHECK_OK(add_free(e, r));
    static const struct {
        int t, ok, err;
        pm_alert_state_t state;
        double value;
    } s[] = {
        {0, 0, 0, I_, NAN},          {15, 58, 2, I_, NAN},        {30, 58, 2, I_, NAN},
        {45, 58, 2, I_, NAN},        {60, 58, 2, I_, NAN}, /* 0.033 */
        {75, 54, 6, P_, 10.0 / 180}, {90, 54, 6, F_, 14.0 / 180}, {105, 54, 6, F_, 0.1},
        {120, 54, 6, F_, 0.1},
    };
    for (size_t i = 0; i < NSTEPS(s); i++) {
        CHECK_OK(pm_counter_add_labeled(tasks, OK, 1, s[i].ok));
        CHECK_OK(pm_counter_add_labeled(tasks, ERR, 1, s[i].err));
        CHECK_OK(tick_deliver(e, s[i].t));
        pm_alert_state_t st;
        double v = active_value(e, "ErrorRatio", NULL, NULL, &st);
        if (st != s[i].state) TH_FAIL_("t=%d: state %s", s[i].t, pm_alert_state_name(st));
        if (isnan(s[i].value) ? !isnan(v) : !(fabs(v - s[i].value) <= EPS))
            TH_FAIL_("t=%d: value %.17g, want %.17g", s[i].t, v, s[i].value);
    }
    /* One label-less instance: alertname and severity only. */
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm_alert_engine_active(e, &l));
    REQUIRE(pm_alert_list_count(l) == 1);
    CHECK_EQ_U64(pm_alert_event_label_count(pm_alert_list_get(l, 0)), 2);
    pm_alert_list_free(l);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_expr_gauge_labels_annotations)
{
    /* A gauge threshold with labels: one instance per matching series; the
     * rule's labels win over the series' (zone), everything sorted by name;
     * annotations rendered per instance. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    rec_t *rec = calloc(1, sizeof *rec);
    REQUIRE(rec);
    CHECK_OK(pm_alert_engine_add_notifier(e, "rec", NULL, rec_notify, rec, NULL));
    static const char *const lab[] = {"queue", "zone"};
    pm_family_t *q = family(reg, PM_TYPE_GAUGE, "queue_depth", lab, 2);
    REQUIRE(q);
    static const char *const QA[] = {"a", "us"}, *const QB[] = {"b", "us"},
                             *const QC[] = {"c", "us"};
    CHECK_OK(pm_gauge_set_labeled(q, QA, 2, 150));
    CHECK_OK(pm_gauge_set_labeled(q, QB, 2, 20));
    CHECK_OK(pm_gauge_set_labeled(q, QC, 2, 500)); /* not matched by the selector */
    pm_alert_rule_t *r = mkrule("QueueDeep", "queue_depth{queue=~\"a|b\"} > 100");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_label(r, "team", "core"));
    CHECK_OK(pm_alert_rule_set_label(r, "zone", "eu"));
    CHECK_OK(pm_alert_rule_set_annotation(
        r, "summary", "queue {{ $labels.queue }} in {{ $labels.zone }} is {{ $value }}", NULL));
    CHECK_OK(pm_alert_rule_set_annotation(r, "about", "{{ $alertname }}/{{ $severity }}", NULL));
    CHECK_OK(add_free(e, r));
    CHECK_OK(tick_deliver(e, 0));
    REQUIRE(rec->count == 1);
    CHECK_STR(rec->n[0].labels, "alertname=QueueDeep,queue=a,severity=warning,team=core,zone=eu");
    CHECK_STR(rec->n[0].annots, "about=QueueDeep/warning,summary=queue a in eu is 150");
    CHECK_EQ_DBL(rec->n[0].value, 150);
    /* b rises: a second instance. */
    CHECK_OK(pm_gauge_set_labeled(q, QB, 2, 250));
    CHECK_OK(tick_deliver(e, 15));
    REQUIRE(rec->count == 2);
    CHECK_STR(rec->n[1].labels, "alertname=QueueDeep,queue=b,severity=warning,team=core,zone=eu");
    CHECK_STR(rec->n[1].annots, "about=QueueDeep/warning,summary=queue b in eu is 250");
    CHECK_EQ_U64(active_count(e), 2);
    /* Labels through the accessors, sorted by name. */
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm_alert_engine_active(e, &l));
    REQUIRE(pm_alert_list_count(l) == 2);
    const pm_alert_event_t *ev = pm_alert_list_get(l, 0);
    REQUIRE(pm_alert_event_label_count(ev) == 5);
    for (size_t i = 1; i < 5; i++)
        CHECK(strcmp(pm_alert_event_label_name(ev, i - 1), pm_alert_event_label_name(ev, i)) < 0);
    CHECK_STR(pm_alert_event_label(ev, "zone"), "eu");
    CHECK(pm_alert_event_label(ev, "nope") == NULL);
    CHECK(pm_alert_event_label_name(ev, 5) == NULL);
    CHECK_EQ_U64(pm_alert_event_annotation_count(ev), 2);
    CHECK_STR(pm_alert_event_annotation_name(ev, 0), "about");
    CHECK(pm_alert_event_annotation(ev, "nope") == NULL);
    pm_alert_list_free(l);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
    free(rec);
}

TEST(test_series_labels_named_reserved)
{
    /* A series may carry labels called alertname or severity: the event's
     * own values win, and each name appears once. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    static const char *const lab[] = {"alertname", "severity", "zone"};
    pm_family_t *g = family(reg, PM_TYPE_GAUGE, "odd", lab, 3);
    REQUIRE(g);
    static const char *const V[] = {"bogus", "page", "us"};
    CHECK_OK(pm_gauge_set_labeled(g, V, 3, 1));
    pm_alert_rule_t *r = mkrule("Odd", "odd > 0");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_severity(r, PM_SEVERITY_INFO));
    CHECK_OK(add_free(e, r));
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm_alert_engine_active(e, &l));
    REQUIRE(pm_alert_list_count(l) == 1);
    const pm_alert_event_t *ev = pm_alert_list_get(l, 0);
    REQUIRE(pm_alert_event_label_count(ev) == 3);
    CHECK_STR(pm_alert_event_label_name(ev, 0), "alertname");
    CHECK_STR(pm_alert_event_label_value(ev, 0), "Odd");
    CHECK_STR(pm_alert_event_label_name(ev, 1), "severity");
    CHECK_STR(pm_alert_event_label_value(ev, 1), "info");
    CHECK_STR(pm_alert_event_label(ev, "zone"), "us");
    pm_alert_list_free(l);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_expr_p95_histogram)
{
    /* p95(latency_seconds[1m]) > 0.5. The window's distribution is the
     * observations recorded between its oldest bucket's first sample and the
     * last sample. 100 observations 0.01 .. 1.00 made between t=0 and t=15:
     * the nearest-rank p95 is 0.95 (within 1/129). They stay in the window
     * while the t=0 bucket does (until t=45); at t=60 the window starts at
     * the t=15 sample, holds no observation: no data, resolved. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    pm_histogram_t *h = NULL;
    CHECK_OK(pm_histogram_new(reg, "latency_seconds", "Latency.", &h));
    pm_alert_rule_t *r = mkrule("SlowP95", "p95(latency_seconds[1m]) > 0.5");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    CHECK_OK(tick_deliver(e, 0));
    CHECK_EQ_U64(active_count(e), 0);
    for (int i = 1; i <= 100; i++) pm_histogram_observe(h, i / 100.0);
    static const struct {
        int t;
        pm_alert_state_t state;
    } s[] = {{15, F_}, {30, F_}, {45, F_}, {60, I_}};
    for (size_t i = 0; i < NSTEPS(s); i++) {
        CHECK_OK(tick_deliver(e, s[i].t));
        pm_alert_state_t st;
        double v = active_value(e, "SlowP95", NULL, NULL, &st);
        if (st != s[i].state) TH_FAIL_("t=%d: state %s", s[i].t, pm_alert_state_name(st));
        if (st == F_ && !(fabs(v - 0.95) <= 0.95 / 129 + EPS))
            TH_FAIL_("t=%d: p95 %.17g, want 0.95", s[i].t, v);
    }
    /* Fast observations only: p95 ~ 0.1, no alert. */
    for (int i = 0; i < 100; i++) pm_histogram_observe(h, 0.1);
    CHECK_OK(tick_deliver(e, 75));
    CHECK_EQ_U64(active_count(e), 0);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_expr_by_label)
{
    /* sum by (service) (rate(http_requests[1m])) > 1: one instance per
     * service; the code label is aggregated away. Counters start at 1000.
     *   api: +20 (200) +10 (500) per tick = 30 per 15 s: 0.75, 1.25, 2/s
     *   web: +6 per tick: 0.15, 0.25, 0.4/s; from t=60 +45 per tick:
     *   t=60 steps 6, 6, 45 = 57 x 60/45 / 60 = 57/45 = 1.267/s. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    static const char *const lab[] = {"service", "code"};
    pm_family_t *hr = family(reg, PM_TYPE_COUNTER, "http_requests", lab, 2);
    REQUIRE(hr);
    static const char *const A2[] = {"api", "200"}, *const A5[] = {"api", "500"},
                             *const W2[] = {"web", "200"};
    CHECK_OK(pm_counter_add_labeled(hr, A2, 2, 1000));
    CHECK_OK(pm_counter_add_labeled(hr, A5, 2, 1000));
    CHECK_OK(pm_counter_add_labeled(hr, W2, 2, 1000));
    pm_alert_rule_t *r = mkrule("ServiceBusy", "sum by (service) (rate(http_requests[1m])) > 1");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    static const struct {
        int t, web_inc;
        double api, web; /* active values, NaN: no instance */
    } s[] = {
        {0, 0, NAN, NAN},  {15, 6, NAN, NAN},        {30, 6, 1.25, NAN},
        {45, 6, 2.0, NAN}, {60, 45, 2.0, 57.0 / 45},
    };
    for (size_t i = 0; i < NSTEPS(s); i++) {
        if (s[i].t) {
            CHECK_OK(pm_counter_add_labeled(hr, A2, 2, 20));
            CHECK_OK(pm_counter_add_labeled(hr, A5, 2, 10));
            CHECK_OK(pm_counter_add_labeled(hr, W2, 2, s[i].web_inc));
        }
        CHECK_OK(tick_deliver(e, s[i].t));
        double a = active_value(e, "ServiceBusy", "service", "api", NULL);
        double w = active_value(e, "ServiceBusy", "service", "web", NULL);
        if (isnan(s[i].api) ? !isnan(a) : !(fabs(a - s[i].api) <= EPS))
            TH_FAIL_("t=%d: api %.17g, want %.17g", s[i].t, a, s[i].api);
        if (isnan(s[i].web) ? !isnan(w) : !(fabs(w - s[i].web) <= EPS))
            TH_FAIL_("t=%d: web %.17g, want %.17g", s[i].t, w, s[i].web);
    }
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm_alert_engine_active(e, &l));
    REQUIRE(pm_alert_list_count(l) == 2);
    for (size_t i = 0; i < 2; i++) {
        const pm_alert_event_t *ev = pm_alert_list_get(l, i);
        CHECK_EQ_U64(pm_alert_event_label_count(ev), 3);
        CHECK(pm_alert_event_label(ev, "code") == NULL);
    }
    pm_alert_list_free(l);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

/* ================================================================ lists, health, stats */

/* FNV-1a 64 over name 0xff value 0xff of the sorted label set: the
 * fingerprint is meant to be stable across runs and processes. */
static uint64_t fnv_labels(const char *const *n, const char *const *v, size_t k)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < k; i++) {
        for (const unsigned char *p = (const unsigned char *)n[i]; *p; p++)
            h = (h ^ *p) * 0x100000001b3ULL;
        h = (h ^ 0xffu) * 0x100000001b3ULL;
        for (const unsigned char *p = (const unsigned char *)v[i]; *p; p++)
            h = (h ^ *p) * 0x100000001b3ULL;
        h = (h ^ 0xffu) * 0x100000001b3ULL;
    }
    return h;
}

TEST(test_active_sorted)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    static const char *const lab[] = {"i"};
    pm_family_t *g = family(reg, PM_TYPE_GAUGE, "g", lab, 1);
    REQUIRE(g);
    char buf[16];
    for (int i = 0; i < 12; i++) {
        snprintf(buf, sizeof buf, "s%d", i);
        const char *v[1] = {buf};
        CHECK_OK(pm_gauge_set_labeled(g, v, 1, i));
    }
    /* Added out of order; "Bb" pending, the others firing. */
    const char *names[] = {"Cc", "Aa", "Bb"};
    for (int k = 0; k < 3; k++) {
        pm_alert_rule_t *r = mkrule(names[k], "g >= 0");
        REQUIRE(r);
        if (k == 2) CHECK_OK(pm_alert_rule_set_for(r, 60));
        CHECK_OK(add_free(e, r));
    }
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm_alert_engine_active(e, &l));
    REQUIRE(pm_alert_list_count(l) == 36);
    for (size_t i = 0; i < 36; i++) {
        const pm_alert_event_t *ev = pm_alert_list_get(l, i);
        CHECK_STR(pm_alert_event_rule(ev), names[i < 12 ? 1 : i < 24 ? 2 : 0]);
        CHECK_EQ_INT(pm_alert_event_state(ev), i >= 12 && i < 24 ? P_ : F_);
        if (i % 12)
            CHECK(pm_alert_event_fingerprint(pm_alert_list_get(l, i - 1)) <
                  pm_alert_event_fingerprint(ev));
        /* The fingerprint of the full sorted label set. */
        const char *ln[3], *lv[3];
        REQUIRE(pm_alert_event_label_count(ev) == 3);
        for (size_t k = 0; k < 3; k++) {
            ln[k] = pm_alert_event_label_name(ev, k);
            lv[k] = pm_alert_event_label_value(ev, k);
        }
        CHECK_EQ_U64(pm_alert_event_fingerprint(ev), fnv_labels(ln, lv, 3));
    }
    CHECK(pm_alert_list_get(l, 36) == NULL);
    pm_alert_list_free(l);
    /* A list is a copy: it stays valid after the engine moved on. */
    CHECK_OK(pm_alert_engine_active(e, &l));
    CHECK_OK(pm_alert_engine_remove_rule(e, "Aa"));
    CHECK_OK(pm_alert_engine_remove_rule(e, "Cc"));
    CHECK_EQ_U64(pm_alert_list_count(l), 36);
    CHECK_STR(pm_alert_event_rule(pm_alert_list_get(l, 0)), "Aa");
    pm_alert_engine_free(e);
    CHECK_STR(pm_alert_event_rule(pm_alert_list_get(l, 35)), "Cc");
    pm_alert_list_free(l);
    pm_registry_free(reg);
}

TEST(test_history_bounded)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){.history = 3}));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(add_free(f.e, r));
    /* Five transitions: F R F R F at t = 0 15 30 45 60. */
    for (int i = 0; i < 5; i++) {
        set_x(&f, i % 2 ? 1 : 10);
        CHECK_OK(tick_deliver(f.e, 15 * i));
    }
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_TRANSITIONS), 5);
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm_alert_engine_history(f.e, &l));
    REQUIRE(pm_alert_list_count(l) == 3);
    /* The oldest two went; oldest first. */
    for (size_t i = 0; i < 3; i++)
        CHECK_EQ_DBL(pm_alert_event_time(pm_alert_list_get(l, i)),
                     (double)T0S + 30 + 15 * (double)i);
    CHECK_EQ_INT(pm_alert_event_state(pm_alert_list_get(l, 0)), F_);
    CHECK_EQ_INT(pm_alert_event_state(pm_alert_list_get(l, 1)), PM_ALERT_RESOLVED);
    pm_alert_list_free(l);
    /* Wrapping many times keeps the order. */
    for (int i = 5; i < 40; i++) {
        set_x(&f, i % 2 ? 1 : 10);
        CHECK_OK(tick_deliver(f.e, 15 * i));
    }
    CHECK_OK(pm_alert_engine_history(f.e, &l));
    REQUIRE(pm_alert_list_count(l) == 3);
    for (size_t i = 0; i < 3; i++)
        CHECK_EQ_DBL(pm_alert_event_time(pm_alert_list_get(l, i)),
                     (double)T0S + 15 * (37 + (double)i));
    pm_alert_list_free(l);
    fx_fini(&f);
}

TEST(test_health)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    CHECK_EQ_DBL(pm_alert_engine_health(e), 100);
    CHECK(isnan(pm_alert_engine_health(NULL)));
    static const char *const lab[] = {"i"};
    pm_family_t *hc = family(reg, PM_TYPE_GAUGE, "hc", lab, 1);
    pm_family_t *hw = family(reg, PM_TYPE_GAUGE, "hw", lab, 1);
    pm_family_t *hi = family(reg, PM_TYPE_GAUGE, "hi", lab, 1);
    pm_family_t *hp = family(reg, PM_TYPE_GAUGE, "hp", lab, 1);
    REQUIRE(hc && hw && hi && hp);
    static const char *const I1[] = {"1"}, *const I2[] = {"2"}, *const I3[] = {"3"};
    struct {
        const char *name, *expr;
        pm_severity_t sev;
        double for_s;
    } rules[] = {
        {"Crit", "hc > 0", PM_SEVERITY_CRITICAL, 0},
        {"Warn", "hw > 0", PM_SEVERITY_WARNING, 0},
        {"Info", "hi > 0", PM_SEVERITY_INFO, 0},
        {"Pend", "hp > 0", PM_SEVERITY_CRITICAL, 3600}, /* pending: 1 each, any severity */
    };
    for (size_t i = 0; i < NSTEPS(rules); i++) {
        pm_alert_rule_t *r = mkrule(rules[i].name, rules[i].expr);
        REQUIRE(r);
        CHECK_OK(pm_alert_rule_set_severity(r, rules[i].sev));
        CHECK_OK(pm_alert_rule_set_for(r, rules[i].for_s));
        CHECK_OK(add_free(e, r));
    }
    CHECK_OK(pm_gauge_set_labeled(hc, I1, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(hc, I2, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(hw, I1, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(hi, I1, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(hp, I1, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(hp, I2, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(hp, I3, 1, 1));
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    /* 100 - 2 x 25 - 10 - 2 - 3 x 1 = 35 */
    CHECK_EQ_DBL(pm_alert_engine_health(e), 35);
    CHECK_OK(pm_gauge_set_labeled(hw, I1, 1, 0)); /* the warning resolves */
    CHECK_OK(pm_alert_engine_tick(e, AT(15)));
    CHECK_EQ_DBL(pm_alert_engine_health(e), 45);
    /* Two more critical: 100 - 100 - 2 - 3 < 0: clamped to 0. */
    CHECK_OK(pm_gauge_set_labeled(hc, I3, 1, 1));
    static const char *const I4[] = {"4"};
    CHECK_OK(pm_gauge_set_labeled(hc, I4, 1, 1));
    CHECK_OK(pm_alert_engine_tick(e, AT(30)));
    CHECK_EQ_DBL(pm_alert_engine_health(e), 0);
    /* Removing rules moves it at once (not at the next tick). */
    CHECK_OK(pm_alert_engine_remove_rule(e, "Crit"));
    CHECK_EQ_DBL(pm_alert_engine_health(e), 95);
    CHECK_OK(pm_alert_engine_enable_rule(e, "Pend", 0));
    CHECK_EQ_DBL(pm_alert_engine_health(e), 98);
    CHECK_OK(pm_alert_engine_remove_rule(e, "Info"));
    CHECK_EQ_DBL(pm_alert_engine_health(e), 100);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_stats_exact)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    f.rec->fail_resolved = 1;
    pm_counter_t *c = NULL;
    CHECK_OK(pm_counter_new(f.reg, "things", "Things.", &c));
    pm_alert_rule_t *a = mkrule("HighX", "x > 5");
    /* p95 of a counter is a type error at evaluation: a rule failure per tick. */
    pm_alert_rule_t *bad = mkrule("Broken", "p95(things[1m]) > 1");
    REQUIRE(a && bad);
    CHECK_OK(add_free(f.e, a));
    CHECK_OK(add_free(f.e, bad));
    for (int i = 0; i < 3; i++)
        CHECK_EQ_U64(pm_alert_engine_stat(f.e, (pm_alert_stat_t)(i + 1)), 0);
    /* fire, resolve (the notifier fails it), fire */
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    set_x(&f, 1);
    CHECK_OK(tick_deliver(f.e, 15));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 30));
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_EVALUATIONS), 3);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_RULE_FAILURES), 3);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_TRANSITIONS), 3);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_QUEUED), 3);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_SENT), 2);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_FAILED), 1);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_DROPPED), 0);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_SERIES_WINDOWED), 1); /* things[1m] */
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_SERIES_REFUSED), 0);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_INSTANCES), 1);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_INSTANCES_REFUSED), 0);
    CHECK(pm_alert_engine_stat(f.e, PM_ALERT_STAT_WINDOW_BYTES) > 0);
    CHECK(pm_alert_engine_stat(f.e, PM_ALERT_STAT_LAST_EVAL_NS) > 0);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, (pm_alert_stat_t)0), 0);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, (pm_alert_stat_t)14), 0);
    CHECK_EQ_U64(pm_alert_engine_stat(NULL, PM_ALERT_STAT_EVALUATIONS), 0);
    /* The notifier's view agrees. */
    CHECK_EQ_U64(f.rec->count, 3);
    /* A refused tick is not an evaluation. */
    CHECK_STATUS(pm_alert_engine_tick(f.e, AT(0)), PM_ERANGE);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_EVALUATIONS), 3);
    fx_fini(&f);
}

TEST(test_queue_drops)
{
    /* Queue of 2, nothing delivered for 3 events: the oldest is dropped. */
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){.queue = 2}));
    pm_alert_rule_t *a = mkrule("HighX", "x > 5");
    REQUIRE(a);
    CHECK_OK(add_free(f.e, a));
    for (int i = 0; i < 3; i++) {
        set_x(&f, i % 2 ? 1 : 10);
        CHECK_OK(pm_alert_engine_tick(f.e, AT(15 * i)));
    }
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_QUEUED), 3);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_DROPPED), 1);
    size_t n = 99;
    CHECK_OK(pm_alert_engine_deliver(f.e, 1, &n)); /* one at a time */
    CHECK_EQ_U64(n, 1);
    CHECK_OK(pm_alert_engine_deliver(f.e, 0, &n));
    CHECK_EQ_U64(n, 1);
    CHECK_OK(pm_alert_engine_deliver(f.e, 0, &n));
    CHECK_EQ_U64(n, 0);
    REQUIRE(f.rec->count == 2);
    /* The survivors are the newer two, in order. */
    CHECK_EQ_INT(f.rec->n[0].state, PM_ALERT_RESOLVED);
    CHECK_EQ_INT(f.rec->n[1].state, PM_ALERT_FIRING);
    CHECK_EQ_DBL(f.rec->n[1].at, (double)T0S + 30);
    uint64_t q = pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_QUEUED);
    CHECK_EQ_U64(q, pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_SENT) +
                        pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_FAILED) +
                        pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_DROPPED));
    fx_fini(&f);
}

TEST(test_no_notifier_nothing_queued)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(reg, "x", "x.", &g));
    pm_gauge_set(g, 10);
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    CHECK_OK(tick_deliver(e, 0));
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_TRANSITIONS), 1);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_NOTIFY_QUEUED), 0);
    CHECK_EQ_U64(history_len(e), 1);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_max_instances)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){.max_instances = 2});
    REQUIRE(e);
    static const char *const lab[] = {"i"};
    pm_family_t *g = family(reg, PM_TYPE_GAUGE, "g", lab, 1);
    REQUIRE(g);
    static const char *const V[4][1] = {{"a"}, {"b"}, {"c"}, {"d"}};
    for (int i = 0; i < 4; i++) CHECK_OK(pm_gauge_set_labeled(g, V[i], 1, 1));
    pm_alert_rule_t *r = mkrule("G", "g > 0"), *r2 = mkrule("G2", "g > 0");
    REQUIRE(r && r2);
    CHECK_OK(add_free(e, r));
    CHECK_OK(add_free(e, r2)); /* the bound is per rule */
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    CHECK_EQ_U64(active_count(e), 4);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_INSTANCES), 4);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_INSTANCES_REFUSED), 4);
    /* Refused again at every evaluation while they stay out. */
    CHECK_OK(pm_alert_engine_tick(e, AT(15)));
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_INSTANCES_REFUSED), 8);
    CHECK_EQ_U64(active_count(e), 4);
    /* Room again once one resolves. */
    CHECK_OK(pm_alert_engine_remove_rule(e, "G2"));
    CHECK_OK(pm_family_clear(g));
    CHECK_OK(pm_alert_engine_tick(e, AT(30)));
    CHECK_EQ_U64(active_count(e), 0);
    CHECK_OK(pm_gauge_set_labeled(g, V[3], 1, 1));
    CHECK_OK(pm_alert_engine_tick(e, AT(45)));
    CHECK_EQ_U64(active_count(e), 1);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_INSTANCES_REFUSED), 8);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_max_series)
{
    /* One windowed series allowed: the second rate() series gets no window
     * and so no value. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){.max_series = 1});
    REQUIRE(e);
    static const char *const lab[] = {"i"};
    pm_family_t *c = family(reg, PM_TYPE_COUNTER, "c", lab, 1);
    REQUIRE(c);
    static const char *const A[] = {"a"}, *const B[] = {"b"};
    pm_alert_rule_t *r = mkrule("Rate", "rate(c[1m]) > 0");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(pm_counter_add_labeled(c, A, 1, 100));
        CHECK_OK(pm_counter_add_labeled(c, B, 1, 100));
        CHECK_OK(pm_alert_engine_tick(e, AT(15 * i)));
    }
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_SERIES_WINDOWED), 1);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_SERIES_REFUSED), 3);
    CHECK_EQ_U64(active_count(e), 1);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

/* ================================================================ ALERTS and self-metrics */

/* The value of series `vals` of family `fam` in a fresh snapshot; NaN when
 * absent. *nseries: the family's series count, -1 when the family is absent. */
static double snap_get(pm_registry_t *r, const char *fam, const char *const *vals, size_t n,
                       long *nseries)
{
    pm_snapshot_t *s = NULL;
    double v = NAN;
    if (nseries) *nseries = -1;
    if (pm_snapshot_new(r, &s) != PM_OK) return NAN;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(f), fam)) continue;
        if (nseries) *nseries = (long)pm_snap_family_series_count(f);
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
            const pm_snap_series_t *se = pm_snap_family_series(f, j);
            size_t k = 0;
            while (k < n && !strcmp(pm_snap_series_label_value(se, k), vals[k])) k++;
            if (k == n) {
                v = pm_snap_series_value(se);
                break;
            }
        }
        break;
    }
    pm_snapshot_release(s);
    return v;
}

TEST(test_alerts_family)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    static const char *const lab[] = {"job"};
    pm_family_t *y = family(f.reg, PM_TYPE_GAUGE, "y", lab, 1);
    REQUIRE(y);
    static const char *const JW[] = {"web"};
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_for(r, 15));
    CHECK_OK(add_free(f.e, r));
    r = mkrule("HighY", "y");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_thresholds(r, ">", 5, 50));
    CHECK_OK(add_free(f.e, r));
    long n;
    /* The family is registered with its labels before any instance. */
    CHECK(isnan(snap_get(f.reg, "ALERTS", NULL, 0, &n)));
    CHECK_EQ_INT(n, 0);

    set_x(&f, 10);
    CHECK_OK(pm_gauge_set_labeled(f.x, JW, 1, 10)); /* two x series */
    CHECK_OK(pm_gauge_set_labeled(y, JOB_API, 1, 10));
    CHECK_OK(tick_deliver(f.e, 0));
    static const char *const XP[] = {"HighX", "pending", "warning"};
    static const char *const XF[] = {"HighX", "firing", "warning"};
    static const char *const YW[] = {"HighY", "firing", "warning"};
    static const char *const YC[] = {"HighY", "firing", "critical"};
    CHECK_EQ_DBL(snap_get(f.reg, "ALERTS", XP, 3, &n), 2);
    CHECK_EQ_DBL(snap_get(f.reg, "ALERTS", YW, 3, &n), 1);
    CHECK_EQ_INT(n, 2);
    /* The family's label names. */
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(f.reg, &s));
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *fa = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(fa), "ALERTS")) continue;
        CHECK_EQ_INT(pm_snap_family_type(fa), PM_TYPE_GAUGE);
        REQUIRE(pm_snap_family_label_count(fa) == 3);
        CHECK_STR(pm_snap_family_label_name(fa, 0), "alertname");
        CHECK_STR(pm_snap_family_label_name(fa, 1), "alertstate");
        CHECK_STR(pm_snap_family_label_name(fa, 2), "severity");
    }
    pm_snapshot_release(s);

    /* Pending -> firing: the pending series goes, the firing one comes;
     * y escalates to critical. */
    CHECK_OK(pm_gauge_set_labeled(y, JOB_API, 1, 60));
    CHECK_OK(tick_deliver(f.e, 15));
    CHECK(isnan(snap_get(f.reg, "ALERTS", XP, 3, &n)));
    CHECK_EQ_DBL(snap_get(f.reg, "ALERTS", XF, 3, &n), 2);
    CHECK(isnan(snap_get(f.reg, "ALERTS", YW, 3, &n)));
    CHECK_EQ_DBL(snap_get(f.reg, "ALERTS", YC, 3, &n), 1);
    CHECK_EQ_INT(n, 2);

    /* One x resolves: the count drops; y resolves: its series goes. */
    CHECK_OK(pm_gauge_set_labeled(f.x, JW, 1, 0));
    CHECK_OK(pm_gauge_set_labeled(y, JOB_API, 1, 0));
    CHECK_OK(tick_deliver(f.e, 30));
    CHECK_EQ_DBL(snap_get(f.reg, "ALERTS", XF, 3, &n), 1);
    CHECK(isnan(snap_get(f.reg, "ALERTS", YC, 3, &n)));
    CHECK_EQ_INT(n, 1);
    /* Removing the rule removes its series. */
    CHECK_OK(pm_alert_engine_remove_rule(f.e, "HighX"));
    CHECK(isnan(snap_get(f.reg, "ALERTS", XF, 3, &n)));
    CHECK_EQ_INT(n, 0);
    /* Freeing the engine removes the rest. */
    CHECK_OK(pm_gauge_set_labeled(y, JOB_API, 1, 10));
    CHECK_OK(tick_deliver(f.e, 45));
    CHECK_EQ_DBL(snap_get(f.reg, "ALERTS", YW, 3, &n), 1);
    pm_alert_engine_free(f.e);
    f.e = NULL;
    CHECK_EQ_INT((snap_get(f.reg, "ALERTS", YW, 3, &n), n), 0);
    /* and its self-metrics */
    CHECK_EQ_INT((snap_get(f.reg, "perfmetrics_alert_evaluations", NULL, 0, &n), n), -1);
    fx_fini(&f);
}

TEST(test_self_metrics)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    f.rec->fail_resolved = 1;
    pm_counter_t *c = NULL;
    CHECK_OK(pm_counter_new(f.reg, "things", "Things.", &c));
    pm_alert_rule_t *a = mkrule("HighX", "x > 5"), *bad = mkrule("Broken", "p95(things[1m]) > 1");
    REQUIRE(a && bad);
    CHECK_OK(add_free(f.e, a));
    CHECK_OK(add_free(f.e, bad));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    set_x(&f, 1);
    CHECK_OK(tick_deliver(f.e, 15));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 30));
    long n;
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_evaluations", NULL, 0, &n), 3);
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_rule_failures", NULL, 0, &n), 3);
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_transitions", NULL, 0, &n), 3);
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_rules", NULL, 0, &n), 2);
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_instances", NULL, 0, &n), 1);
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_windowed_series", NULL, 0, &n), 1);
    CHECK(snap_get(f.reg, "perfmetrics_alert_window_bytes", NULL, 0, &n) > 0);
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_health_score", NULL, 0, &n), 90);
    CHECK(snap_get(f.reg, "perfmetrics_alert_last_evaluation_seconds", NULL, 0, &n) >= 0);
    static const char *const SENT[] = {"sent"}, *const FAILED[] = {"failed"},
                             *const DROPPED[] = {"dropped"};
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_notifications", SENT, 1, &n), 2);
    CHECK_EQ_INT(n, 3);
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_notifications", FAILED, 1, &n), 1);
    CHECK_EQ_DBL(snap_get(f.reg, "perfmetrics_alert_notifications", DROPPED, 1, &n), 0);
    /* Types. */
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(f.reg, &s));
    int seen = 0;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *fa = pm_snapshot_family(s, i);
        const char *nm = pm_snap_family_name(fa);
        if (strncmp(nm, "perfmetrics_alert_", 18)) continue;
        seen++;
        int counter = !strcmp(nm, "perfmetrics_alert_evaluations") ||
                      !strcmp(nm, "perfmetrics_alert_rule_failures") ||
                      !strcmp(nm, "perfmetrics_alert_transitions") ||
                      !strcmp(nm, "perfmetrics_alert_notifications");
        int hist = !strcmp(nm, "perfmetrics_alert_evaluation_seconds");
        int want = hist ? PM_TYPE_HISTOGRAM : counter ? PM_TYPE_COUNTER : PM_TYPE_GAUGE;
        if ((int)pm_snap_family_type(fa) != want)
            TH_FAIL_("%s has type %d", nm, (int)pm_snap_family_type(fa));
        if (hist) {
            /* one observation per evaluation, each a positive duration */
            const pm_snap_series_t *se = pm_snap_family_series(fa, 0);
            CHECK_EQ_INT(pm_snap_family_series_count(fa), 1);
            CHECK_EQ_U64(pm_snap_series_count(se), 3);
            CHECK(pm_snap_series_sum(se) > 0);
        }
    }
    CHECK_EQ_INT(seen, 11);
    pm_snapshot_release(s);
    fx_fini(&f);
}

TEST(test_metrics_off)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){.no_metrics = 1});
    REQUIRE(e);
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(reg, "x", "x.", &g));
    pm_gauge_set(g, 10);
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    long n;
    snap_get(reg, "ALERTS", NULL, 0, &n);
    CHECK_EQ_INT(n, -1);
    snap_get(reg, "perfmetrics_alert_evaluations", NULL, 0, &n);
    CHECK_EQ_INT(n, -1);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS), 1);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_alerts_family_clash)
{
    /* An ALERTS family of another shape: PM_EEXIST, nothing left behind. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    static const char *const lab[] = {"foo"};
    REQUIRE(family(reg, PM_TYPE_GAUGE, "ALERTS", lab, 1));
    pm_alert_engine_t *e = (pm_alert_engine_t *)&e; /* must be reset */
    CHECK_STATUS(pm_alert_engine_new(reg, NULL, &e), PM_EEXIST);
    CHECK(e == NULL);
    /* No collector was left: another engine without metrics works, and
     * the collector name is free. */
    e = new_engine(reg, (eopts_t){.no_metrics = 1});
    CHECK(e != NULL);
    pm_alert_engine_free(e);
    long n;
    snap_get(reg, "perfmetrics_alert_evaluations", NULL, 0, &n);
    CHECK_EQ_INT(n, -1);
    pm_registry_free(reg);
}

TEST(test_two_engines_one_registry)
{
    /* One engine with metrics per registry (the self-metrics families would
     * clash): a second one with metrics is refused, PM_EEXIST; one without
     * metrics is fine; after the first is freed a new one with metrics is
     * accepted. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e1 = new_engine(reg, (eopts_t){0});
    REQUIRE(e1);
    pm_alert_engine_t *e2 = new_engine(reg, (eopts_t){.no_metrics = 1});
    CHECK(e2 != NULL);
    pm_alert_engine_opts_t *o = NULL;
    CHECK_OK(pm_alert_engine_opts_new(&o));
    CHECK_OK(pm_alert_engine_opts_set_dispatch_thread(o, 0));
    pm_alert_engine_t *e3 = NULL;
    CHECK_STATUS(pm_alert_engine_new(reg, o, &e3), PM_EEXIST);
    CHECK(e3 == NULL);
    /* e1 still works, its metrics too. */
    CHECK_OK(pm_alert_engine_tick(e1, AT(0)));
    long n;
    CHECK_EQ_DBL(snap_get(reg, "perfmetrics_alert_evaluations", NULL, 0, &n), 1);
    pm_alert_engine_free(e1);
    CHECK_OK(pm_alert_engine_new(reg, o, &e3));
    CHECK(e3 != NULL);
    pm_alert_engine_opts_free(o);
    pm_alert_engine_free(e3);
    pm_alert_engine_free(e2);
    pm_registry_free(reg);
}

/* ================================================================ notifiers */

TEST(test_notifier_filters)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    pm_gauge_t *ga = NULL, *gb = NULL;
    CHECK_OK(pm_gauge_new(reg, "a", "a.", &ga));
    CHECK_OK(pm_gauge_new(reg, "b", "b.", &gb));
    pm_alert_rule_t *ra = mkrule("RuleA", "a > 0"), *rb = mkrule("RuleB", "b > 0");
    REQUIRE(ra && rb);
    CHECK_OK(pm_alert_rule_set_severity(ra, PM_SEVERITY_CRITICAL));
    CHECK_OK(pm_alert_rule_set_label(ra, "team", "core"));
    CHECK_OK(pm_alert_rule_set_label(rb, "team", "web"));
    CHECK_OK(add_free(e, ra));
    CHECK_OK(add_free(e, rb));

    enum {
        ALL,
        CRIT,
        CORE,
        WEBRE,
        RULEB,
        NORES,
        NOTW,
        NN
    };
    static rec_t recs[NN];
    memset(recs, 0, sizeof recs);
    pm_alert_filter_t *fl[NN] = {0};
    for (int i = 1; i < NN; i++) REQUIRE(pm_alert_filter_new(&fl[i]) == PM_OK);
    CHECK_OK(pm_alert_filter_set_min_severity(fl[CRIT], PM_SEVERITY_CRITICAL));
    CHECK_OK(pm_alert_filter_add_matcher(fl[CORE], "team", "=", "core"));
    CHECK_OK(pm_alert_filter_add_matcher(fl[WEBRE], "team", "=~", "w.*"));
    CHECK_OK(pm_alert_filter_add_rule(fl[RULEB], "RuleB"));
    CHECK_OK(pm_alert_filter_add_rule(fl[RULEB], "NoSuchRule"));
    CHECK_OK(pm_alert_filter_set_send_resolved(fl[NORES], 0));
    CHECK_OK(pm_alert_filter_add_matcher(fl[NOTW], "severity", "!=", "warning"));
    static const char *names[NN] = {"all", "crit", "core", "webre", "ruleb", "nores", "notw"};
    for (int i = 0; i < NN; i++)
        CHECK_OK(pm_alert_engine_add_notifier(e, names[i], fl[i], rec_notify, &recs[i], NULL));
    /* The engine copied the filters. */
    for (int i = 1; i < NN; i++) pm_alert_filter_free(fl[i]);

    pm_gauge_set(ga, 1);
    pm_gauge_set(gb, 1);
    CHECK_OK(tick_deliver(e, 0));
    pm_gauge_set(ga, 0);
    pm_gauge_set(gb, 0);
    CHECK_OK(tick_deliver(e, 15));
    /* 4 events: A firing, B firing, A resolved, B resolved. */
    static const size_t want[NN] = {4, 2, 2, 2, 2, 2, 2};
    for (int i = 0; i < NN; i++)
        if (recs[i].count != want[i])
            TH_FAIL_("notifier %s got %zu events, want %zu", names[i], recs[i].count, want[i]);
    CHECK_STR(recs[CRIT].n[0].rule, "RuleA");
    CHECK_STR(recs[CORE].n[1].rule, "RuleA");
    CHECK_STR(recs[WEBRE].n[0].rule, "RuleB");
    CHECK_STR(recs[RULEB].n[1].rule, "RuleB");
    CHECK_EQ_INT(recs[NORES].n[0].state, F_);
    CHECK_EQ_INT(recs[NORES].n[1].state, F_);
    CHECK_STR(recs[NOTW].n[0].rule, "RuleA");
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_NOTIFY_QUEUED), 4);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_NOTIFY_SENT), 16);
    /* Removing one: it gets nothing more. */
    CHECK_OK(pm_alert_engine_remove_notifier(e, "all"));
    CHECK_STATUS(pm_alert_engine_remove_notifier(e, "all"), PM_ENOENT);
    pm_gauge_set(ga, 1);
    CHECK_OK(tick_deliver(e, 30));
    CHECK_EQ_U64(recs[ALL].count, 4);
    CHECK_EQ_U64(recs[CRIT].count, 3);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_notifier_failing_and_release)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    rec_t *bad = calloc(1, sizeof *bad);
    REQUIRE(bad);
    bad->fail = 7;
    CHECK_OK(pm_alert_engine_add_notifier(f.e, "bad", NULL, rec_notify, bad, rec_release));
    /* A second notifier of the same name: refused, release not called. */
    rec_t *dup = calloc(1, sizeof *dup);
    REQUIRE(dup);
    CHECK_STATUS(pm_alert_engine_add_notifier(f.e, "bad", NULL, rec_notify, dup, rec_release),
                 PM_EEXIST);
    CHECK_EQ_INT(dup->released, 0);
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(add_free(f.e, r));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    CHECK_EQ_U64(bad->count, 1);
    CHECK_EQ_U64(dup->count, 0);
    CHECK_EQ_U64(f.rec->count, 1);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_QUEUED), 1);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_SENT), 1);
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_NOTIFY_FAILED), 1);
    /* Removing calls release once; freeing the engine releases the rest. */
    CHECK_OK(pm_alert_engine_remove_notifier(f.e, "bad"));
    CHECK_EQ_INT(bad->released, 1);
    CHECK_OK(pm_alert_engine_add_notifier(f.e, "bad", NULL, rec_notify, bad, rec_release));
    pm_alert_engine_free(f.e);
    f.e = NULL;
    CHECK_EQ_INT(bad->released, 2);
    CHECK_EQ_INT(dup->released, 0);
    free(bad);
    free(dup);
    fx_fini(&f);
}

TEST(test_log_notifier)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    FILE *tf = tmpfile();
    REQUIRE(tf);
    CHECK_OK(pm_alert_engine_add_log_notifier(f.e, "log", NULL, tf));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(pm_alert_rule_set_label(r, "team", "core"));
    CHECK_OK(pm_alert_rule_set_annotation(r, "summary", "x is {{ $value }}", NULL));
    CHECK_OK(add_free(f.e, r));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    set_x(&f, 1);
    CHECK_OK(tick_deliver(f.e, 15));
    char buf[1024];
    rewind(tf);
    size_t len = fread(buf, 1, sizeof buf - 1, tf);
    buf[len] = '\0';
    CHECK_STR(buf, "2023-11-14T22:15:00.000Z FIRING warning HighX{job=\"api\",team=\"core\"} "
                   "value=10 summary=\"x is 10\"\n"
                   "2023-11-14T22:15:15.000Z RESOLVED warning HighX{job=\"api\",team=\"core\"} "
                   "value=10 summary=\"x is 10\"\n");
    /* The notifier goes before the FILE does. */
    CHECK_OK(pm_alert_engine_remove_notifier(f.e, "log"));
    fclose(tf);
    fx_fini(&f);
}

/* ================================================================ rule files */

static const char rule_file[] =
    "# Three rules.\n"
    "alert ErrorRatio {\n"
    "  expr: sum(rate(tasks{status=\"error\"}[1m])) / sum(rate(tasks[1m])) > 0.05\n"
    "  for: 15s\n"
    "  severity: critical\n"
    "  label team: \"core\"   # the owners\n"
    "  annotation summary: \"error ratio {{ $value }}\"\n"
    "}\n"
    "\n"
    "alert QueueDeep {\n"
    "  expr: queue_depth\n"
    "  warning: > 100\n"
    "  critical: > 200\n"
    "  resolve: < 50\n"
    "}\n"
    "alert Disabled {\n"
    "  expr: queue_depth > 0\n"
    "  enabled: false\n"
    "}\n";

TEST(test_load_string_and_tick)
{
    size_t nrules = 0;
    pm_parse_error_t *err = NULL;
    CHECK_OK(pm_alert_rules_check(rule_file, strlen(rule_file), &nrules, &err));
    CHECK_EQ_U64(nrules, 3);
    CHECK(err == NULL);

    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    rec_t *rec = calloc(1, sizeof *rec);
    REQUIRE(rec);
    CHECK_OK(pm_alert_engine_add_notifier(e, "rec", NULL, rec_notify, rec, NULL));
    CHECK_OK(pm_alert_engine_load_string(e, rule_file, strlen(rule_file), &err));
    CHECK(err == NULL);
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);

    static const char *const sl[] = {"status"}, *const ql[] = {"queue"};
    pm_family_t *tasks = family(reg, PM_TYPE_COUNTER, "tasks", sl, 1);
    pm_family_t *qd = family(reg, PM_TYPE_GAUGE, "queue_depth", ql, 1);
    REQUIRE(tasks && qd);
    static const char *const OK[] = {"ok"}, *const ERR[] = {"error"}, *const QA[] = {"a"};
    CHECK_OK(pm_counter_add_labeled(tasks, OK, 1, 1000));
    CHECK_OK(pm_counter_add_labeled(tasks, ERR, 1, 100));
    /* Error ratio 0.1 from the start; the queue 150 -> 250 -> 80 -> 40. */
    static const double depth[] = {150, 250, 80, 40, 40};
    for (int i = 0; i < 5; i++) {
        CHECK_OK(pm_counter_add_labeled(tasks, OK, 1, 54));
        CHECK_OK(pm_counter_add_labeled(tasks, ERR, 1, 6));
        CHECK_OK(pm_gauge_set_labeled(qd, QA, 1, depth[i]));
        CHECK_OK(tick_deliver(e, 15 * i));
    }
    /* t=0: QueueDeep warning fires (ErrorRatio: one sample, no rate).
     * t=15: ErrorRatio pending (0.1); QueueDeep critical.
     * t=30: ErrorRatio fires; QueueDeep held at 80 (resolve < 50).
     * t=45: QueueDeep resolves (40). Disabled never evaluated. */
    char got[512];
    notes_code(rec, got, sizeof got);
    CHECK_STR(got, "FIw FFc FPc RFc");
    history_code(e, got, sizeof got);
    CHECK_STR(got, "FIw PIc FFc FPc RFc");
    REQUIRE(rec->count == 4);
    CHECK_STR(rec->n[2].rule, "ErrorRatio");
    CHECK_STR(rec->n[2].labels, "alertname=ErrorRatio,severity=critical,team=core");
    CHECK_CONTAINS(rec->n[2].annots, "summary=error ratio 0.1");
    CHECK_NEAR(rec->n[2].value, 0.1, EPS);
    CHECK_STR(rec->n[3].rule, "QueueDeep");
    CHECK_STR(rec->n[3].labels, "alertname=QueueDeep,queue=a,severity=critical");

    /* Loading the same names again: PM_EEXIST at the first rule, nothing
     * added (all or nothing). */
    static const char again[] = "alert Fresh {\n  expr: queue_depth > 0\n}\n"
                                "alert QueueDeep {\n  expr: queue_depth > 1\n}\n";
    CHECK_STATUS(pm_alert_engine_load_string(e, again, strlen(again), &err), PM_EEXIST);
    CHECK(err != NULL);
    CHECK_EQ_INT(pm_parse_error_line(err), 4);
    pm_parse_error_free(err);
    err = NULL;
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);
    CHECK_STATUS(pm_alert_engine_enable_rule(e, "Fresh", 1), PM_ENOENT);
    /* A parse error: nothing added either. */
    static const char broken[] = "alert Fine {\n  expr: queue_depth > 0\n}\n"
                                 "alert Broken {\n  expr: rate(queue_depth[1m)\n}\n";
    CHECK_STATUS(pm_alert_engine_load_string(e, broken, strlen(broken), &err), PM_EPARSE);
    CHECK(err != NULL);
    CHECK_EQ_INT(pm_parse_error_line(err), 5);
    pm_parse_error_free(err);
    err = NULL;
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);
    /* A name repeated inside the file. */
    static const char twice[] = "alert Same {\n  expr: a > 0\n}\nalert Same {\n  expr: b > 0\n}\n";
    CHECK_STATUS(pm_alert_engine_load_string(e, twice, strlen(twice), &err), PM_EEXIST);
    CHECK_EQ_INT(pm_parse_error_line(err), 4);
    pm_parse_error_free(err);
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);
    /* Without err. */
    CHECK_STATUS(pm_alert_engine_load_string(e, broken, strlen(broken), NULL), PM_EPARSE);
    /* Empty text: no rules, fine. */
    CHECK_OK(pm_alert_engine_load_string(e, "", 0, NULL));
    CHECK_OK(pm_alert_engine_load_string(e, "# nothing\n", 10, NULL));
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
    free(rec);
}

TEST(test_load_file)
{
    char path[] = "/tmp/pm_alert_rulesXXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    FILE *fp = fdopen(fd, "w");
    REQUIRE(fp);
    fputs(rule_file, fp);
    fclose(fp);
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    pm_parse_error_t *err = NULL;
    CHECK_OK(pm_alert_engine_load_file(e, path, &err));
    CHECK(err == NULL);
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);
    unlink(path);
    CHECK_STATUS(pm_alert_engine_load_file(e, path, &err), PM_EIO);
    CHECK(err == NULL);
    CHECK_STATUS(pm_alert_engine_load_file(e, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_load_file(NULL, "/dev/null", NULL), PM_EINVAL);
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

/* ================================================================ bad inputs */

TEST(test_opts_bad_inputs)
{
    CHECK_STATUS(pm_alert_engine_opts_new(NULL), PM_EINVAL);
    pm_alert_engine_opts_free(NULL);
    pm_alert_engine_opts_t *o = NULL;
    REQUIRE(pm_alert_engine_opts_new(&o) == PM_OK);
    CHECK_STATUS(pm_alert_engine_opts_set_interval(NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_opts_set_interval(o, 0.0009), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_interval(o, 86400.5), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_interval(o, NAN), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_interval(o, -1), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_interval(o, INFINITY), PM_ERANGE);
    CHECK_OK(pm_alert_engine_opts_set_interval(o, 0.001));
    CHECK_OK(pm_alert_engine_opts_set_interval(o, 86400));
    CHECK_STATUS(pm_alert_engine_opts_set_max_buckets(NULL, 4), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_opts_set_max_buckets(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_max_buckets(o, 4097), PM_ERANGE);
    CHECK_OK(pm_alert_engine_opts_set_max_buckets(o, 1));
    CHECK_OK(pm_alert_engine_opts_set_max_buckets(o, 4096));
    CHECK_STATUS(pm_alert_engine_opts_set_history(NULL, 4), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_opts_set_history(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_history(o, ((size_t)1 << 24) + 1), PM_ERANGE);
    CHECK_OK(pm_alert_engine_opts_set_history(o, 1));
    CHECK_STATUS(pm_alert_engine_opts_set_queue(NULL, 4), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_opts_set_queue(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_queue(o, ((size_t)1 << 24) + 1), PM_ERANGE);
    CHECK_OK(pm_alert_engine_opts_set_queue(o, (size_t)1 << 24));
    CHECK_STATUS(pm_alert_engine_opts_set_max_series(NULL, 4), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_opts_set_max_series(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_max_series(o, ((size_t)1 << 28) + 1), PM_ERANGE);
    CHECK_OK(pm_alert_engine_opts_set_max_series(o, (size_t)1 << 28));
    CHECK_STATUS(pm_alert_engine_opts_set_max_instances(NULL, 4), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_opts_set_max_instances(o, 0), PM_ERANGE);
    CHECK_STATUS(pm_alert_engine_opts_set_max_instances(o, ((size_t)1 << 24) + 1), PM_ERANGE);
    CHECK_OK(pm_alert_engine_opts_set_max_instances(o, 1));
    CHECK_STATUS(pm_alert_engine_opts_set_metrics(NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_opts_set_dispatch_thread(NULL, 1), PM_EINVAL);
    /* A failed setter left the earlier value: history 1 and max_instances 1
     * are in force below. */
    CHECK_OK(pm_alert_engine_opts_set_dispatch_thread(o, 0));
    CHECK_OK(pm_alert_engine_opts_set_interval(o, 15));
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = NULL;
    CHECK_OK(pm_alert_engine_new(reg, o, &e));
    REQUIRE(e);
    /* The engine copied the options. */
    pm_alert_engine_opts_free(o);
    static const char *const lab[] = {"i"};
    pm_family_t *g = family(reg, PM_TYPE_GAUGE, "g", lab, 1);
    static const char *const A[] = {"a"}, *const B[] = {"b"};
    CHECK_OK(pm_gauge_set_labeled(g, A, 1, 1));
    CHECK_OK(pm_gauge_set_labeled(g, B, 1, 1));
    pm_alert_rule_t *r = mkrule("G", "g > 0");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    CHECK_EQ_U64(active_count(e), 1);
    CHECK_EQ_U64(history_len(e), 1);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_rule_bad_inputs)
{
    pm_alert_rule_t *r = (pm_alert_rule_t *)&r;
    pm_parse_error_t *err = NULL;
    CHECK_STATUS(pm_alert_rule_new(NULL, "x", &r, NULL), PM_EINVAL);
    CHECK(r == NULL);
    CHECK_STATUS(pm_alert_rule_new("X", NULL, &r, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_new("X", "x", NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_new("1X", "x", &r, NULL), PM_EBADNAME);
    CHECK_STATUS(pm_alert_rule_new("", "x", &r, NULL), PM_EBADNAME);
    CHECK_STATUS(pm_alert_rule_new("a-b", "x", &r, NULL), PM_EBADNAME);
    CHECK(r == NULL);
    CHECK_STATUS(pm_alert_rule_new("X", "x >", &r, &err), PM_EPARSE);
    CHECK(r == NULL);
    CHECK(err != NULL);
    CHECK_EQ_INT(pm_parse_error_line(err), 1);
    pm_parse_error_free(err);
    err = NULL;
    CHECK_STATUS(pm_alert_rule_new("X", "", &r, &err), PM_EPARSE);
    pm_parse_error_free(err);
    err = NULL;
    CHECK_STATUS(pm_alert_rule_new("X", "rate(x)", &r, NULL), PM_EPARSE); /* not a range */
    pm_alert_rule_free(NULL);

    r = mkrule("X", "x > 5");
    REQUIRE(r);
    /* Durations. */
    pm_status_t (*const setd[])(pm_alert_rule_t *, double) = {pm_alert_rule_set_for,
                                                              pm_alert_rule_set_keep_firing_for,
                                                              pm_alert_rule_set_repeat_interval};
    int64_t *const field[] = {&r->for_ns, &r->keep_ns, &r->repeat_ns};
    for (int i = 0; i < 3; i++) {
        CHECK_STATUS(setd[i](NULL, 1), PM_EINVAL);
        CHECK_OK(setd[i](r, 2.5));
        CHECK_EQ_INT(*field[i], 2500000000LL);
        CHECK_STATUS(setd[i](r, -1), PM_ERANGE);
        CHECK_STATUS(setd[i](r, NAN), PM_ERANGE);
        CHECK_STATUS(setd[i](r, INFINITY), PM_ERANGE);
        CHECK_STATUS(setd[i](r, 1e300), PM_ERANGE);
        CHECK_EQ_INT(*field[i], 2500000000LL); /* unchanged */
        CHECK_OK(setd[i](r, 0));
    }
    /* Severity and no-data enums. */
    CHECK_STATUS(pm_alert_rule_set_severity(NULL, PM_SEVERITY_INFO), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_severity(r, (pm_severity_t)0), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_severity(r, (pm_severity_t)4), PM_EINVAL);
    CHECK_EQ_INT(r->severity, PM_SEVERITY_WARNING);
    CHECK_STATUS(pm_alert_rule_set_nodata(NULL, PM_NODATA_OK), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_nodata(r, (pm_nodata_t)3), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_nodata(r, (pm_nodata_t)-1), PM_EINVAL);
    CHECK_EQ_INT(r->nodata, PM_NODATA_OK);
    CHECK_STATUS(pm_alert_rule_set_enabled(NULL, 1), PM_EINVAL);
    /* Thresholds: the rule's top is a comparison here. */
    CHECK_STATUS(pm_alert_rule_set_thresholds(r, ">", 1, 2), PM_EINVAL);
    CHECK(!r->thresholds);
    pm_alert_rule_t *v = mkrule("V", "x"), *s = mkrule("S", "x and y");
    REQUIRE(v && s);
    CHECK_STATUS(pm_alert_rule_set_thresholds(s, ">", 1, 2), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_thresholds(NULL, ">", 1, 2), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_thresholds(v, NULL, 1, 2), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_thresholds(v, "=>", 1, 2), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_thresholds(v, "", 1, 2), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_thresholds(v, "> ", 1, 2), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_thresholds(v, ">", NAN, NAN), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_thresholds(v, ">", INFINITY, 2), PM_ERANGE);
    CHECK_STATUS(pm_alert_rule_set_thresholds(v, ">", 1, -INFINITY), PM_ERANGE);
    CHECK(!v->thresholds);
    static const char *const ops[] = {">", ">=", "<", "<=", "==", "!="};
    for (int i = 0; i < 6; i++) CHECK_OK(pm_alert_rule_set_thresholds(v, ops[i], 1, 2));
    /* A `bool` comparison yields values, so it can be thresholded. */
    pm_alert_rule_t *b = mkrule("B", "x > bool 1");
    REQUIRE(b);
    CHECK_OK(pm_alert_rule_set_thresholds(b, ">", 0.5, NAN));
    pm_alert_rule_free(b);
    pm_alert_rule_free(s);
    pm_alert_rule_free(v);
    /* Resolve. */
    CHECK_STATUS(pm_alert_rule_set_resolve(NULL, "< 1", NULL), PM_EINVAL);
    CHECK_OK(pm_alert_rule_set_resolve(r, "< 1", NULL));
    CHECK(r->resolve_short);
    CHECK_STATUS(pm_alert_rule_set_resolve(r, "< abc", &err), PM_EPARSE);
    CHECK(err != NULL);
    pm_parse_error_free(err);
    err = NULL;
    CHECK_STATUS(pm_alert_rule_set_resolve(r, "<", NULL), PM_EPARSE);
    CHECK_STATUS(pm_alert_rule_set_resolve(r, "< 1 2", NULL), PM_EPARSE);
    CHECK_STATUS(pm_alert_rule_set_resolve(r, "x <", &err), PM_EPARSE);
    CHECK(err != NULL);
    pm_parse_error_free(err);
    err = NULL;
    /* The earlier resolve condition is still in force. */
    CHECK(r->resolve_short);
    CHECK_EQ_DBL(r->resolve_val, 1);
    CHECK(r->resolve == NULL);
    CHECK_OK(pm_alert_rule_set_resolve(r, "x < 1", NULL));
    CHECK(!r->resolve_short && r->resolve != NULL);
    CHECK_OK(pm_alert_rule_set_resolve(r, NULL, NULL));
    CHECK(!r->resolve_short && r->resolve == NULL);
    /* Labels. */
    CHECK_STATUS(pm_alert_rule_set_label(NULL, "a", "b"), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_label(r, NULL, "b"), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_label(r, "a", NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_label(r, "alertname", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_rule_set_label(r, "severity", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_rule_set_label(r, "1a", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_rule_set_label(r, "", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_rule_set_label(r, "a", "\xff"), PM_EUTF8);
    CHECK_EQ_U64(r->nlabels, 0);
    CHECK_OK(pm_alert_rule_set_label(r, "b", "1"));
    CHECK_OK(pm_alert_rule_set_label(r, "a", "2"));
    CHECK_OK(pm_alert_rule_set_label(r, "b", "3")); /* replaced */
    CHECK_STATUS(pm_alert_rule_set_label(r, "b", "\xc3"), PM_EUTF8);
    REQUIRE(r->nlabels == 2);
    CHECK_STR(r->labels[0].name, "a");
    CHECK_STR(r->labels[1].value, "3");
    /* Annotations. */
    CHECK_STATUS(pm_alert_rule_set_annotation(NULL, "a", "t", NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_annotation(r, NULL, "t", NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_annotation(r, "a", NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_rule_set_annotation(r, "1a", "t", NULL), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_rule_set_annotation(r, "a", "\xff", NULL), PM_EUTF8);
    CHECK_OK(pm_alert_rule_set_annotation(r, "summary", "v={{ $value }}", NULL));
    CHECK_STATUS(pm_alert_rule_set_annotation(r, "summary", "v={{ $value", &err), PM_EPARSE);
    CHECK(err != NULL);
    pm_parse_error_free(err);
    err = NULL;
    CHECK_STATUS(pm_alert_rule_set_annotation(r, "other", "{{ $nope }}", NULL), PM_EPARSE);
    REQUIRE(r->nannots == 1);
    CHECK_STR(r->annots[0].text, "v={{ $value }}"); /* the old template stays */
    pm_alert_rule_free(r);
}

static int null_notify(const pm_alert_event_t *ev, void *user)
{
    (void)ev;
    (void)user;
    return 0;
}

TEST(test_engine_bad_inputs)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    CHECK_STATUS(pm_alert_engine_new(reg, NULL, NULL), PM_EINVAL);
    pm_alert_engine_free(NULL);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    pm_alert_rule_t *r = mkrule("X", "x > 5");
    REQUIRE(r);
    CHECK_STATUS(pm_alert_engine_add_rule(NULL, r), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_rule(e, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_remove_rule(NULL, "X"), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_remove_rule(e, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_remove_rule(e, "X"), PM_ENOENT);
    CHECK_STATUS(pm_alert_engine_enable_rule(NULL, "X", 1), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_enable_rule(e, NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_enable_rule(e, "X", 1), PM_ENOENT);
    CHECK_OK(pm_alert_engine_add_rule(e, r));
    CHECK_STATUS(pm_alert_engine_add_rule(e, r), PM_EEXIST);
    CHECK_STATUS(pm_alert_engine_remove_rule(e, "x"), PM_ENOENT); /* names are case-sensitive */
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 1);
    CHECK_EQ_U64(pm_alert_engine_rule_count(NULL), 0);
    pm_alert_rule_free(r);
    pm_parse_error_t *err = NULL;
    CHECK_STATUS(pm_alert_engine_load_string(NULL, "", 0, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_load_string(e, NULL, 0, &err), PM_EINVAL);
    CHECK(err == NULL);
    CHECK_STATUS(pm_alert_rules_check(NULL, 0, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_tick(NULL, AT(0)), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_start(NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_stop(NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_stop(e), PM_ESTATE); /* not running */
    size_t n = 99;
    CHECK_STATUS(pm_alert_engine_deliver(NULL, 0, &n), PM_EINVAL);
    CHECK_EQ_U64(n, 0);
    CHECK_OK(pm_alert_engine_deliver(e, 0, NULL));
    pm_alert_list_t *l = (pm_alert_list_t *)&l;
    CHECK_STATUS(pm_alert_engine_active(NULL, &l), PM_EINVAL);
    CHECK(l == NULL);
    CHECK_STATUS(pm_alert_engine_active(e, NULL), PM_EINVAL);
    l = (pm_alert_list_t *)&l;
    CHECK_STATUS(pm_alert_engine_history(NULL, &l), PM_EINVAL);
    CHECK(l == NULL);
    CHECK_STATUS(pm_alert_engine_history(e, NULL), PM_EINVAL);
    CHECK_EQ_U64(pm_alert_list_count(NULL), 0);
    CHECK(pm_alert_list_get(NULL, 0) == NULL);
    pm_alert_list_free(NULL);
    /* Empty lists are lists. */
    CHECK_OK(pm_alert_engine_active(e, &l));
    CHECK(l != NULL);
    CHECK_EQ_U64(pm_alert_list_count(l), 0);
    CHECK(pm_alert_list_get(l, 0) == NULL);
    pm_alert_list_free(l);
    /* Notifiers. */
    CHECK_STATUS(pm_alert_engine_add_notifier(NULL, "n", NULL, null_notify, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_notifier(e, NULL, NULL, null_notify, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_notifier(e, "n", NULL, NULL, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_notifier(e, "", NULL, null_notify, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_log_notifier(NULL, "l", NULL, stderr), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_log_notifier(e, NULL, NULL, stderr), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_log_notifier(e, "l", NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_remove_notifier(NULL, "n"), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_remove_notifier(e, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_remove_notifier(e, "n"), PM_ENOENT);
    CHECK_OK(pm_alert_engine_add_notifier(e, "n", NULL, null_notify, NULL, NULL));
    CHECK_STATUS(pm_alert_engine_add_log_notifier(e, "n", NULL, stderr), PM_EEXIST);
    /* Filters' enums. */
    pm_alert_filter_t *fl = NULL;
    CHECK_OK(pm_alert_filter_new(&fl));
    CHECK_STATUS(pm_alert_filter_set_min_severity(fl, (pm_severity_t)0), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_set_min_severity(fl, (pm_severity_t)4), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(fl, "team", "==", "x"), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(fl, "team", "=~", "("), PM_EPARSE);
    CHECK_EQ_U64(fl->nm, 0);
    CHECK_EQ_INT(fl->min_severity, PM_SEVERITY_INFO);
    CHECK_STATUS(pm_alert_engine_add_notifier(e, "n", fl, null_notify, NULL, NULL), PM_EEXIST);
    pm_alert_filter_free(fl);
    /* Names. */
    CHECK_STR(pm_severity_name(PM_SEVERITY_CRITICAL), "critical");
    CHECK_STR(pm_severity_name((pm_severity_t)0), "unknown");
    CHECK_STR(pm_alert_state_name(PM_ALERT_RESOLVED), "resolved");
    CHECK_STR(pm_alert_state_name((pm_alert_state_t)9), "unknown");
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

/* ================================================================ re-entrancy */

typedef struct reent {
    pm_alert_engine_t *e;
    _Atomic int calls;
    _Atomic int tick_st, deliver_st, remove_st, active_st;
} reent_t;

static int reent_notify(const pm_alert_event_t *ev, void *user)
{
    (void)ev;
    reent_t *r = user;
    r->tick_st = pm_alert_engine_tick(r->e, AT(1000));
    r->deliver_st = pm_alert_engine_deliver(r->e, 0, NULL);
    r->remove_st = pm_alert_engine_remove_notifier(r->e, "reent");
    pm_alert_list_t *l = NULL;
    r->active_st = pm_alert_engine_active(r->e, &l); /* queries are fine */
    pm_alert_list_free(l);
    r->calls++;
    return 0;
}

TEST(test_tick_from_notifier)
{
    fx_t f;
    REQUIRE(fx_init(&f, (eopts_t){0}));
    static reent_t re;
    memset(&re, 0, sizeof re);
    re.e = f.e;
    CHECK_OK(pm_alert_engine_add_notifier(f.e, "reent", NULL, reent_notify, &re, NULL));
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(add_free(f.e, r));
    set_x(&f, 10);
    CHECK_OK(tick_deliver(f.e, 0));
    CHECK_EQ_INT(re.calls, 1);
    CHECK_STATUS(re.tick_st, PM_ESTATE);
    CHECK_STATUS(re.deliver_st, PM_ESTATE);
    CHECK_STATUS(re.remove_st, PM_ESTATE);
    CHECK_OK(re.active_st);
    /* The refused tick changed nothing: the next one may be earlier than it. */
    CHECK_EQ_U64(pm_alert_engine_stat(f.e, PM_ALERT_STAT_EVALUATIONS), 1);
    CHECK_OK(tick_deliver(f.e, 15));
    fx_fini(&f);
}

TEST(test_tick_from_dispatch_thread)
{
    /* With a dispatch thread: deliver is refused on the host's thread, and
     * a tick from the notifier is refused on the dispatch thread. */
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){.dispatch = 1});
    REQUIRE(e);
    CHECK_STATUS(pm_alert_engine_deliver(e, 0, NULL), PM_ESTATE);
    static reent_t re;
    memset(&re, 0, sizeof re);
    re.e = e;
    CHECK_OK(pm_alert_engine_add_notifier(e, "reent", NULL, reent_notify, &re, NULL));
    CHECK_STATUS(pm_alert_engine_deliver(e, 0, NULL), PM_ESTATE);
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(reg, "x", "x.", &g));
    pm_gauge_set(g, 10);
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    for (int i = 0; i < 10000 && re.calls == 0; i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    CHECK_EQ_INT(re.calls, 1);
    CHECK_STATUS(re.tick_st, PM_ESTATE);
    CHECK_STATUS(re.deliver_st, PM_ESTATE);
    CHECK_STATUS(re.remove_st, PM_ESTATE);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS), 1);
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

typedef struct cbtick {
    pm_alert_engine_t *e;
    int st, calls;
} cbtick_t;

static double tick_in_callback(void *user)
{
    cbtick_t *c = user;
    if (c->e) {
        c->st = pm_alert_engine_tick(c->e, AT(5000));
        c->calls++;
    }
    return 1;
}

TEST(test_tick_from_callback_gauge)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){0});
    REQUIRE(e);
    static cbtick_t cb;
    memset(&cb, 0, sizeof cb);
    CHECK_OK(pm_gauge_callback_new(reg, "cbg", "Ticks from a callback.", tick_in_callback, &cb));
    cb.e = e;
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(reg, &s));
    pm_snapshot_release(s);
    CHECK_EQ_INT(cb.calls, 1);
    CHECK_STATUS(cb.st, PM_ESTATE);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS), 0);
    /* The engine's own tick runs the callback too: refused inside, the
     * outer tick fine. */
    CHECK_OK(pm_alert_engine_tick(e, AT(0)));
    CHECK_EQ_INT(cb.calls, 2);
    CHECK_STATUS(cb.st, PM_ESTATE);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS), 1);
    cb.e = NULL;
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

/* ================================================================ background thread */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Polls until the engine has made `n` evaluations; false after ~20 s. */
static int wait_evals(pm_alert_engine_t *e, uint64_t n)
{
    for (int i = 0; i < 4000; i++) {
        if (pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS) >= n) return 1;
        sleep_ms(5);
    }
    return 0;
}

TEST(test_background_thread)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){.interval = 0.01});
    REQUIRE(e);
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(reg, "x", "x.", &g));
    pm_gauge_set(g, 10);
    pm_alert_rule_t *r = mkrule("HighX", "x > 5");
    REQUIRE(r);
    CHECK_OK(add_free(e, r));
    struct timespec t0;
    clock_gettime(CLOCK_REALTIME, &t0);
    CHECK_OK(pm_alert_engine_start(e));
    CHECK_STATUS(pm_alert_engine_start(e), PM_ESTATE);
    CHECK(wait_evals(e, 3));
    CHECK_OK(pm_alert_engine_stop(e));
    CHECK_STATUS(pm_alert_engine_stop(e), PM_ESTATE);
    uint64_t n = pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS);
    CHECK(n >= 3);
    sleep_ms(60);
    CHECK_EQ_U64(pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS), n);
    /* It evaluated at the wall clock's time. */
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm_alert_engine_active(e, &l));
    REQUIRE(pm_alert_list_count(l) == 1);
    double at = pm_alert_event_active_at(pm_alert_list_get(l, 0));
    CHECK(at >= (double)t0.tv_sec - 1 && at <= (double)t0.tv_sec + 60);
    pm_alert_list_free(l);
    /* A host tick earlier than the thread's last one is refused; a later
     * one is fine. */
    CHECK_STATUS(pm_alert_engine_tick(e, (int64_t)t0.tv_sec * SEC - 10 * SEC), PM_ERANGE);
    CHECK_OK(pm_alert_engine_tick(e, ((int64_t)t0.tv_sec + 3600) * SEC));
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST(test_background_restart_and_free_running)
{
    pm_registry_t *reg = new_registry();
    REQUIRE(reg);
    pm_alert_engine_t *e = new_engine(reg, (eopts_t){.interval = 0.01});
    REQUIRE(e);
    CHECK_OK(pm_alert_engine_start(e));
    CHECK(wait_evals(e, 1));
    CHECK_OK(pm_alert_engine_stop(e));
    uint64_t n = pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS);
    CHECK_OK(pm_alert_engine_start(e));
    CHECK(wait_evals(e, n + 2));
    /* Freed while running: free stops it. */
    pm_alert_engine_free(e);
    pm_registry_free(reg);
}

TEST_MAIN(TH_CASE(test_table_for), TH_CASE(test_event_times), TH_CASE(test_table_keep_firing_for),
          TH_CASE(test_table_repeat), TH_CASE(test_table_hysteresis_shorthand),
          TH_CASE(test_table_hysteresis_pending), TH_CASE(test_table_hysteresis_thresholds),
          TH_CASE(test_hysteresis_expression), TH_CASE(test_table_thresholds),
          TH_CASE(test_table_thresholds_below), TH_CASE(test_table_thresholds_pending),
          TH_CASE(test_table_nodata_ok), TH_CASE(test_table_nodata_keep_pending),
          TH_CASE(test_table_nodata_keep_firing), TH_CASE(test_nodata_keep_active_at),
          TH_CASE(test_table_nodata_alerting), TH_CASE(test_nodata_alerting_event),
          TH_CASE(test_nodata_alerting_thresholds), TH_CASE(test_table_flapping),
          TH_CASE(test_disable_remove_readd), TH_CASE(test_rule_added_disabled),
          TH_CASE(test_rule_copied_by_engine), TH_CASE(test_tick_backwards),
          TH_CASE(test_duplicate_rule_name), TH_CASE(test_expr_counter_rate),
          TH_CASE(test_expr_error_ratio), TH_CASE(test_expr_gauge_labels_annotations),
          TH_CASE(test_series_labels_named_reserved), TH_CASE(test_expr_p95_histogram),
          TH_CASE(test_expr_by_label), TH_CASE(test_active_sorted), TH_CASE(test_history_bounded),
          TH_CASE(test_health), TH_CASE(test_stats_exact), TH_CASE(test_queue_drops),
          TH_CASE(test_no_notifier_nothing_queued), TH_CASE(test_max_instances),
          TH_CASE(test_max_series), TH_CASE(test_alerts_family), TH_CASE(test_self_metrics),
          TH_CASE(test_metrics_off), TH_CASE(test_alerts_family_clash),
          TH_CASE(test_two_engines_one_registry), TH_CASE(test_notifier_filters),
          TH_CASE(test_notifier_failing_and_release), TH_CASE(test_log_notifier),
          TH_CASE(test_load_string_and_tick), TH_CASE(test_load_file),
          TH_CASE(test_opts_bad_inputs), TH_CASE(test_rule_bad_inputs),
          TH_CASE(test_engine_bad_inputs), TH_CASE(test_tick_from_notifier),
          TH_CASE(test_tick_from_dispatch_thread), TH_CASE(test_tick_from_callback_gauge),
          TH_CASE(test_background_thread), TH_CASE(test_background_restart_and_free_running))
