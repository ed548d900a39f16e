/* Alert events, lists, filters, the notification hub (manual mode and the
 * dispatch thread), the engine's notifier wrappers, the log-line notifier and
 * the two event formatters (lib/alert_event.c, lib/alert_notify.c).
 *
 * Events are built with pm__aevent_new from literal inits; the hub is driven
 * directly (pm__ahub_*). The public notifier wrappers need an engine: until
 * lib/alert_engine.c is linked in, the stand-in below gives them one (see
 * "engine stand-in"). No sleep decides an outcome: threads meet on condition
 * variables; the one polling loop waits, with a generous bound, for another
 * thread to reach a point. */
#include "harness.h"

#include "internal/alert_internal.h"

#include <perfmetrics/perfmetrics.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

/* ------------------------------------------------------------ engine stand-in */
/* The wrappers only call pm__aengine_hub(e). This stand-in engine is a hub
 * holder; it is the only definition the test links (nothing here pulls the
 * real lib/alert_engine.c object out of the static library). */
struct pm_alert_engine {
    pm__ahub *hub;
};
pm__ahub *pm__aengine_hub(pm_alert_engine_t *e) { return e ? e->hub : NULL; }

/* ------------------------------------------------------------ helpers */

#define T0 1795428000LL /* 2026-11-23T10:00:00Z */
#define NS(s) ((int64_t)(s) * PM__NS_PER_S)
#define UNSET INT64_MIN

/* Counts live allocations, so a test can see that an event is one block and
 * that every reference was dropped. */
static _Atomic long live_blocks;
static _Atomic long total_blocks;
static void *count_alloc(void *user, size_t n)
{
    (void)user;
    atomic_fetch_add(&live_blocks, 1);
    atomic_fetch_add(&total_blocks, 1);
    return malloc(n);
}
static void count_free(void *user, void *p)
{
    (void)user;
    if (p) atomic_fetch_sub(&live_blocks, 1);
    free(p);
}
static const pm_alloc_t counting = {count_alloc, count_free, NULL};

typedef struct evspec {
    const char *rule;
    pm_alert_state_t state, prev;
    pm_severity_t sev;
    double value;
    int64_t at, active_at, starts_at, ends_at;
    const char *labels[24]; /* name, value, ..., NULL */
    const char *annots[12];
} evspec;

static pm_alert_event_t *mk(const pm_alloc_t *a, const evspec *s)
{
    const char *ln[12], *lv[12], *an[6], *av[6];
    size_t nl = 0, na = 0;
    while (s->labels[2 * nl]) {
        ln[nl] = s->labels[2 * nl];
        lv[nl] = s->labels[2 * nl + 1];
        nl++;
    }
    while (s->annots[2 * na]) {
        an[na] = s->annots[2 * na];
        av[na] = s->annots[2 * na + 1];
        na++;
    }
    pm__aevent_init in = {
        .rule = s->rule, .state = s->state, .prev = s->prev, .severity = s->sev,
        .value = s->value, .at = s->at, .active_at = s->active_at, .starts_at = s->starts_at,
        .ends_at = s->ends_at, .lname = ln, .lvalue = lv, .nlabels = nl, .aname = an,
        .avalue = av, .nannots = na};
    pm_alert_event_t *ev = NULL;
    return pm__aevent_new(a, &in, &ev) == PM_OK ? ev : NULL;
}

/* A firing event of `rule` whose value and label n are `i`. */
static pm_alert_event_t *mk_simple(const pm_alloc_t *a, const char *rule, pm_alert_state_t st,
                                   pm_severity_t sev, int i)
{
    char num[24];
    snprintf(num, sizeof num, "%d", i);
    evspec s = {.rule = rule, .state = st, .prev = PM_ALERT_PENDING, .sev = sev, .value = i,
                .at = NS(T0 + i), .active_at = NS(T0), .starts_at = NS(T0), .ends_at = UNSET,
                .labels = {"alertname", rule, "n", num, "severity", pm_severity_name(sev), NULL}};
    return mk(a, &s);
}

static unsigned refs(const pm_alert_event_t *ev) { return atomic_load(&ev->refs); }

static uint64_t stat(const pm__ahub *h, pm_alert_stat_t w) { return pm__ahub_stat(h, w); }

/* A notifier that records the values it sees (and may fail on odd ones). */
typedef struct recorder {
    int n;
    double seen[64];
    int fail_odd;
    int released;
} recorder;

static int rec_notify(const pm_alert_event_t *ev, void *user)
{
    recorder *r = user;
    if (r->n < 64) r->seen[r->n] = pm_alert_event_value(ev);
    r->n++;
    return r->fail_odd && ((long)pm_alert_event_value(ev) % 2) ? 1 : 0;
}
static void rec_release(void *user) { ((recorder *)user)->released++; }

/* A notifier that blocks until the test opens the gate; counts calls. */
typedef struct gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int open;
    int entered, done;
    int fail_odd;
    int released;
    int done_at_release;
    long last; /* values seen, in order, must increase */
    int out_of_order;
    double first;
} gate;

static void gate_init(gate *g)
{
    memset(g, 0, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->last = -1;
    g->first = -1;
}
static void gate_fini(gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}
static void gate_open(gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->open = 1;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}
static int gate_notify(const pm_alert_event_t *ev, void *user)
{
    gate *g = user;
    long v = (long)pm_alert_event_value(ev);
    pthread_mutex_lock(&g->mu);
    g->entered++;
    pthread_cond_broadcast(&g->cv);
    while (!g->open) pthread_cond_wait(&g->cv, &g->mu);
    if (v <= g->last) g->out_of_order++;
    if (g->first < 0) g->first = (double)v;
    g->last = v;
    g->done++;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return g->fail_odd && (v % 2) ? 1 : 0;
}
static void gate_release(void *user)
{
    gate *g = user;
    pthread_mutex_lock(&g->mu);
    g->released++;
    g->done_at_release = g->done;
    pthread_mutex_unlock(&g->mu);
}
static void gate_wait(gate *g, int *field, int n)
{
    pthread_mutex_lock(&g->mu);
    while (*field < n) pthread_cond_wait(&g->cv, &g->mu);
    pthread_mutex_unlock(&g->mu);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void nap_ms(long ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------ events */

static const evspec MAIN = {
    .rule = "HighErrorRate",
    .state = PM_ALERT_FIRING,
    .prev = PM_ALERT_PENDING,
    .sev = PM_SEVERITY_CRITICAL,
    .value = 0.0712,
    .at = NS(T0),
    .active_at = NS(T0 - 300),
    .starts_at = NS(T0),
    .ends_at = UNSET,
    .labels = {"alertname", "HighErrorRate", "path", "/a \"b\" \\c\nd", "service", "api",
               "severity", "critical", NULL},
    .annots = {"description", "line1\nline2", "summary", "error rate 7.12% on api", NULL},
};

TEST(test_event_accessors)
{
    evspec s = MAIN;
    s.at = NS(T0) + 123000000; /* .123 s */
    pm_alert_event_t *ev = mk(NULL, &s);
    REQUIRE(ev != NULL);
    CHECK_STR(pm_alert_event_rule(ev), "HighErrorRate");
    CHECK_EQ_INT(pm_alert_event_state(ev), PM_ALERT_FIRING);
    CHECK_EQ_INT(pm_alert_event_prev_state(ev), PM_ALERT_PENDING);
    CHECK_EQ_INT(pm_alert_event_severity(ev), PM_SEVERITY_CRITICAL);
    CHECK_EQ_DBL(pm_alert_event_value(ev), 0.0712);
    CHECK_NEAR(pm_alert_event_time(ev), 1795428000.123, 1e-6);
    CHECK_EQ_DBL(pm_alert_event_active_at(ev), 1795427700.0);
    CHECK_EQ_DBL(pm_alert_event_starts_at(ev), 1795428000.0);
    CHECK(isnan(pm_alert_event_ends_at(ev)));

    CHECK_EQ_INT(pm_alert_event_label_count(ev), 4);
    CHECK_STR(pm_alert_event_label_name(ev, 0), "alertname");
    CHECK_STR(pm_alert_event_label_value(ev, 0), "HighErrorRate");
    CHECK_STR(pm_alert_event_label_name(ev, 1), "path");
    CHECK_STR(pm_alert_event_label_value(ev, 1), "/a \"b\" \\c\nd");
    CHECK_STR(pm_alert_event_label_name(ev, 3), "severity");
    CHECK(pm_alert_event_label_name(ev, 4) == NULL);
    CHECK(pm_alert_event_label_value(ev, 4) == NULL);
    CHECK(pm_alert_event_label_name(ev, SIZE_MAX) == NULL);
    /* look-ups at both ends, inside, before, between and after */
    CHECK_STR(pm_alert_event_label(ev, "alertname"), "HighErrorRate");
    CHECK_STR(pm_alert_event_label(ev, "service"), "api");
    CHECK_STR(pm_alert_event_label(ev, "severity"), "critical");
    CHECK(pm_alert_event_label(ev, "a") == NULL);
    CHECK(pm_alert_event_label(ev, "q") == NULL);
    CHECK(pm_alert_event_label(ev, "zzz") == NULL);
    CHECK(pm_alert_event_label(ev, "") == NULL);
    CHECK(pm_alert_event_label(ev, NULL) == NULL);

    CHECK_EQ_INT(pm_alert_event_annotation_count(ev), 2);
    CHECK_STR(pm_alert_event_annotation_name(ev, 0), "description");
    CHECK_STR(pm_alert_event_annotation_value(ev, 1), "error rate 7.12% on api");
    CHECK(pm_alert_event_annotation_name(ev, 2) == NULL);
    CHECK(pm_alert_event_annotation_value(ev, 2) == NULL);
    CHECK_STR(pm_alert_event_annotation(ev, "summary"), "error rate 7.12% on api");
    CHECK_STR(pm_alert_event_annotation(ev, "description"), "line1\nline2");
    CHECK(pm_alert_event_annotation(ev, "runbook") == NULL);
    CHECK(pm_alert_event_annotation(ev, NULL) == NULL);
    /* hand-computed: see test_fingerprint */
    CHECK_EQ_U64(pm_alert_event_fingerprint(ev),
                 pm__alabels_hash(ev->lname, ev->lvalue, ev->nlabels));
    pm__aevent_unref(ev);

    /* No labels, no annotations, NaN value, times before 1970. */
    evspec e = {.rule = "R", .state = PM_ALERT_PENDING, .prev = PM_ALERT_INACTIVE,
                .sev = PM_SEVERITY_INFO, .value = NAN, .at = -1500000000LL, .active_at = 0,
                .starts_at = UNSET, .ends_at = UNSET};
    ev = mk(NULL, &e);
    REQUIRE(ev != NULL);
    CHECK_EQ_INT(pm_alert_event_label_count(ev), 0);
    CHECK(pm_alert_event_label_name(ev, 0) == NULL);
    CHECK(pm_alert_event_label(ev, "alertname") == NULL);
    CHECK_EQ_INT(pm_alert_event_annotation_count(ev), 0);
    CHECK(pm_alert_event_annotation(ev, "x") == NULL);
    CHECK(isnan(pm_alert_event_value(ev)));
    CHECK_EQ_DBL(pm_alert_event_time(ev), -1.5);
    CHECK_EQ_DBL(pm_alert_event_active_at(ev), 0.0);
    CHECK(isnan(pm_alert_event_starts_at(ev)));
    CHECK_EQ_U64(pm_alert_event_fingerprint(ev), 0xcbf29ce484222325ULL); /* FNV offset basis */
    pm__aevent_unref(ev);
}

TEST(test_event_null_accessors)
{
    CHECK_STR(pm_alert_event_rule(NULL), "");
    CHECK_EQ_INT(pm_alert_event_state(NULL), PM_ALERT_INACTIVE);
    CHECK_EQ_INT(pm_alert_event_prev_state(NULL), PM_ALERT_INACTIVE);
    CHECK_EQ_INT(pm_alert_event_severity(NULL), 0);
    CHECK(isnan(pm_alert_event_value(NULL)));
    CHECK(isnan(pm_alert_event_time(NULL)));
    CHECK(isnan(pm_alert_event_active_at(NULL)));
    CHECK(isnan(pm_alert_event_starts_at(NULL)));
    CHECK(isnan(pm_alert_event_ends_at(NULL)));
    CHECK_EQ_U64(pm_alert_event_fingerprint(NULL), 0);
    CHECK_EQ_INT(pm_alert_event_label_count(NULL), 0);
    CHECK(pm_alert_event_label_name(NULL, 0) == NULL);
    CHECK(pm_alert_event_label_value(NULL, 0) == NULL);
    CHECK(pm_alert_event_label(NULL, "alertname") == NULL);
    CHECK_EQ_INT(pm_alert_event_annotation_count(NULL), 0);
    CHECK(pm_alert_event_annotation_name(NULL, 0) == NULL);
    CHECK(pm_alert_event_annotation_value(NULL, 0) == NULL);
    CHECK(pm_alert_event_annotation(NULL, "summary") == NULL);
    pm__aevent_unref(NULL);
    CHECK(pm__aevent_ref(NULL) == NULL);
}

TEST(test_event_new_bad_inputs)
{
    const char *ln[] = {"alertname", "severity"}, *lv[] = {"R", "info"};
    const char *bad_order[] = {"severity", "alertname"};
    const char *dup[] = {"a", "a"};
    const char *with_null[] = {"alertname", NULL};
    pm__aevent_init ok = {.rule = "R", .lname = ln, .lvalue = lv, .nlabels = 2};
    pm_alert_event_t *ev = (pm_alert_event_t *)1;
    CHECK_STATUS(pm__aevent_new(NULL, NULL, &ev), PM_EINVAL);
    CHECK(ev == NULL);
    CHECK_STATUS(pm__aevent_new(NULL, &ok, NULL), PM_EINVAL);
    pm__aevent_init in = ok;
    in.rule = NULL;
    CHECK_STATUS(pm__aevent_new(NULL, &in, &ev), PM_EINVAL);
    in = ok;
    in.lname = NULL;
    CHECK_STATUS(pm__aevent_new(NULL, &in, &ev), PM_EINVAL);
    in = ok;
    in.lvalue = with_null;
    CHECK_STATUS(pm__aevent_new(NULL, &in, &ev), PM_EINVAL);
    in = ok;
    in.lname = bad_order;
    CHECK_STATUS(pm__aevent_new(NULL, &in, &ev), PM_EINVAL);
    in = ok;
    in.lname = dup;
    CHECK_STATUS(pm__aevent_new(NULL, &in, &ev), PM_EINVAL);
    in = ok;
    in.nannots = 1;
    CHECK_STATUS(pm__aevent_new(NULL, &in, &ev), PM_EINVAL);
    in.aname = bad_order;
    in.avalue = lv;
    in.nannots = 2;
    CHECK_STATUS(pm__aevent_new(NULL, &in, &ev), PM_EINVAL);
    CHECK(ev == NULL);
    /* NULL arrays are fine with a count of 0 */
    in = (pm__aevent_init){.rule = "R"};
    CHECK_OK(pm__aevent_new(NULL, &in, &ev));
    REQUIRE(ev != NULL);
    CHECK_STR(pm_alert_event_rule(ev), "R");
    pm__aevent_unref(ev);
}

TEST(test_event_one_block_refcount)
{
    atomic_store(&live_blocks, 0);
    atomic_store(&total_blocks, 0);
    pm_alert_event_t *ev = mk(&counting, &MAIN);
    REQUIRE(ev != NULL);
    CHECK_EQ_INT(atomic_load(&total_blocks), 1); /* struct, arrays and strings: one block */
    CHECK_EQ_INT(refs(ev), 1);
    CHECK(pm__aevent_ref(ev) == ev);
    CHECK_EQ_INT(refs(ev), 2);
    pm__aevent_unref(ev);
    CHECK_EQ_INT(atomic_load(&live_blocks), 1);
    /* The copy is deep: the caller's strings may go away. */
    char rule[] = "Tmp", val[] = "v1";
    const char *ln[] = {"k"}, *lv[] = {val};
    pm__aevent_init in = {.rule = rule, .lname = ln, .lvalue = lv, .nlabels = 1};
    pm_alert_event_t *e2 = NULL;
    REQUIRE(pm__aevent_new(&counting, &in, &e2) == PM_OK);
    rule[0] = 'X';
    val[1] = '9';
    CHECK_STR(pm_alert_event_rule(e2), "Tmp");
    CHECK_STR(pm_alert_event_label(e2, "k"), "v1");
    pm__aevent_unref(e2);
    pm__aevent_unref(ev);
    CHECK_EQ_INT(atomic_load(&live_blocks), 0);
}

TEST(test_fingerprint)
{
    /* FNV-1a 64 over name 0xff value 0xff per label, computed independently:
     *   python3 -c "h=0xcbf29ce484222325
     *   for s in [b'alertname',b'HighErrorRate',b'service',b'api',b'severity',b'critical']:
     *     for c in s+b'\xff': h=((h^c)*0x100000001b3)%2**64
     *   print(hex(h))"                                   -> 0xdf005333d9e37c9 */
    const char *ln[] = {"alertname", "service", "severity"};
    const char *lv[] = {"HighErrorRate", "api", "critical"};
    CHECK_EQ_U64(pm__alabels_hash(ln, lv, 3), 0x0df005333d9e37c9ULL);
    CHECK_EQ_U64(pm__alabels_hash(NULL, NULL, 0), 0xcbf29ce484222325ULL);
    /* the separator keeps name/value boundaries apart (same python, one label) */
    const char *a[] = {"a"}, *bc[] = {"bc"}, *ab[] = {"ab"}, *c[] = {"c"};
    CHECK_EQ_U64(pm__alabels_hash(a, bc, 1), 0xa0a3542c19b900abULL);
    CHECK_EQ_U64(pm__alabels_hash(ab, c, 1), 0x20ba9b3025a8b421ULL);
    /* an event's fingerprint is its label set's, however it was built */
    evspec s = {.rule = "HighErrorRate", .sev = PM_SEVERITY_WARNING, .at = 1,
                .labels = {"alertname", "HighErrorRate", "service", "api", "severity", "critical",
                           NULL},
                .annots = {"summary", "differs", NULL}};
    pm_alert_event_t *e1 = mk(NULL, &s);
    s.value = 42;
    s.annots[0] = NULL;
    pm_alert_event_t *e2 = mk(NULL, &s);
    REQUIRE(e1 && e2);
    CHECK_EQ_U64(pm_alert_event_fingerprint(e1), 0x0df005333d9e37c9ULL);
    CHECK_EQ_U64(pm_alert_event_fingerprint(e2), 0x0df005333d9e37c9ULL);
    pm__aevent_unref(e1);
    pm__aevent_unref(e2);
}

TEST(test_lists)
{
    atomic_store(&live_blocks, 0);
    pm_alert_event_t *ev[3];
    for (int i = 0; i < 3; i++) ev[i] = mk_simple(&counting, "R", PM_ALERT_FIRING,
                                                  PM_SEVERITY_WARNING, i);
    REQUIRE(ev[0] && ev[1] && ev[2]);
    pm_alert_list_t *l = NULL;
    CHECK_OK(pm__alist_new(&counting, ev, 3, &l));
    REQUIRE(l != NULL);
    CHECK_EQ_INT(refs(ev[0]), 2);
    for (int i = 0; i < 3; i++) pm__aevent_unref(ev[i]); /* the list keeps them */
    CHECK_EQ_INT(pm_alert_list_count(l), 3);
    for (int i = 0; i < 3; i++)
        CHECK_EQ_DBL(pm_alert_event_value(pm_alert_list_get(l, (size_t)i)), i);
    CHECK(pm_alert_list_get(l, 3) == NULL);
    CHECK_STR(pm_alert_event_label(pm_alert_list_get(l, 2), "n"), "2");
    pm_alert_list_free(l);
    CHECK_EQ_INT(atomic_load(&live_blocks), 0);

    pm_alert_list_t *empty = NULL;
    CHECK_OK(pm__alist_new(NULL, NULL, 0, &empty));
    REQUIRE(empty != NULL);
    CHECK_EQ_INT(pm_alert_list_count(empty), 0);
    CHECK(pm_alert_list_get(empty, 0) == NULL);
    pm_alert_list_free(empty);

    CHECK_EQ_INT(pm_alert_list_count(NULL), 0);
    CHECK(pm_alert_list_get(NULL, 0) == NULL);
    pm_alert_list_free(NULL);
    pm_alert_list_t *bad = (pm_alert_list_t *)1;
    CHECK_STATUS(pm__alist_new(NULL, NULL, 2, &bad), PM_EINVAL);
    CHECK(bad == NULL);
    pm_alert_event_t *holes[2] = {mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1), NULL};
    CHECK_STATUS(pm__alist_new(NULL, holes, 2, &bad), PM_EINVAL);
    CHECK_EQ_INT(refs(holes[0]), 1); /* no reference taken on failure */
    CHECK_STATUS(pm__alist_new(NULL, holes, 1, NULL), PM_EINVAL);
    pm__aevent_unref(holes[0]);
}

TEST(test_names)
{
    CHECK_STR(pm_severity_name(PM_SEVERITY_INFO), "info");
    CHECK_STR(pm_severity_name(PM_SEVERITY_WARNING), "warning");
    CHECK_STR(pm_severity_name(PM_SEVERITY_CRITICAL), "critical");
    CHECK_STR(pm_severity_name((pm_severity_t)0), "unknown");
    CHECK_STR(pm_severity_name((pm_severity_t)4), "unknown");
    CHECK_STR(pm_alert_state_name(PM_ALERT_INACTIVE), "inactive");
    CHECK_STR(pm_alert_state_name(PM_ALERT_PENDING), "pending");
    CHECK_STR(pm_alert_state_name(PM_ALERT_FIRING), "firing");
    CHECK_STR(pm_alert_state_name(PM_ALERT_RESOLVED), "resolved");
    CHECK_STR(pm_alert_state_name((pm_alert_state_t)-1), "unknown");
    CHECK_STR(pm_alert_state_name((pm_alert_state_t)4), "unknown");
}

/* ------------------------------------------------------------ filters */

TEST(test_filter_severity_and_nulls)
{
    pm_alert_event_t *info = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    pm_alert_event_t *warn = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_WARNING, 2);
    pm_alert_event_t *crit = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_CRITICAL, 3);
    REQUIRE(info && warn && crit);
    pm_alert_filter_t *f = NULL;
    CHECK_STATUS(pm_alert_filter_new(NULL), PM_EINVAL);
    CHECK_OK(pm_alert_filter_new(&f));
    REQUIRE(f != NULL);
    /* defaults: everything passes */
    CHECK_EQ_INT(pm_alert_filter_match(f, info), 1);
    CHECK_EQ_INT(pm_alert_filter_match(f, crit), 1);
    CHECK_OK(pm_alert_filter_set_min_severity(f, PM_SEVERITY_WARNING));
    CHECK_EQ_INT(pm_alert_filter_match(f, info), 0);
    CHECK_EQ_INT(pm_alert_filter_match(f, warn), 1);
    CHECK_EQ_INT(pm_alert_filter_match(f, crit), 1);
    CHECK_OK(pm_alert_filter_set_min_severity(f, PM_SEVERITY_CRITICAL));
    CHECK_EQ_INT(pm_alert_filter_match(f, warn), 0);
    CHECK_EQ_INT(pm_alert_filter_match(f, crit), 1);
    CHECK_STATUS(pm_alert_filter_set_min_severity(f, (pm_severity_t)0), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_set_min_severity(f, (pm_severity_t)4), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_set_min_severity(NULL, PM_SEVERITY_INFO), PM_EINVAL);
    CHECK_EQ_INT(pm_alert_filter_match(f, crit), 1); /* failed setters changed nothing */
    /* a NULL filter passes everything, a NULL event nothing */
    CHECK_EQ_INT(pm_alert_filter_match(NULL, info), 1);
    CHECK_EQ_INT(pm_alert_filter_match(f, NULL), 0);
    CHECK_EQ_INT(pm_alert_filter_match(NULL, NULL), 0);
    CHECK_STATUS(pm_alert_filter_set_send_resolved(NULL, 1), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_rule(NULL, "R"), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_rule(f, NULL), PM_EINVAL);
    pm_alert_filter_free(f);
    pm_alert_filter_free(NULL);
    pm__aevent_unref(info);
    pm__aevent_unref(warn);
    pm__aevent_unref(crit);
}

TEST(test_filter_matchers)
{
    evspec s = {.rule = "HighErrorRate", .state = PM_ALERT_FIRING, .sev = PM_SEVERITY_WARNING,
                .at = 1,
                .labels = {"alertname", "HighErrorRate", "service", "api-7", "severity",
                           "warning", "status", "503", NULL}};
    pm_alert_event_t *ev = mk(NULL, &s);
    REQUIRE(ev != NULL);
    struct {
        const char *label, *op, *value;
        int want;
    } cases[] = {
        {"service", "=", "api-7", 1},      {"service", "=", "api", 0},
        {"service", "!=", "api", 1},       {"service", "!=", "api-7", 0},
        {"service", "=~", "api-[0-9]+", 1}, {"service", "=~", "api", 0}, /* anchored */
        {"status", "=~", "5..", 1},        {"status", "=~", "0", 0},    /* "503" contains 0 */
        {"service", "!~", "web.*", 1},     {"service", "!~", "api.*", 0},
        {"absent", "=", "", 1},            {"absent", "!=", "", 0}, /* absent matches as "" */
        {"absent", "=~", ".*", 1},         {"absent", "=~", ".+", 0},
        {"absent", "!~", "x", 1},
        {"alertname", "=", "HighErrorRate", 1}, {"alertname", "=~", "High.*", 1},
        {"severity", "=~", "warning|critical", 1}, {"severity", "=", "critical", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pm_alert_filter_t *f = NULL;
        REQUIRE(pm_alert_filter_new(&f) == PM_OK);
        CHECK_OK(pm_alert_filter_add_matcher(f, cases[i].label, cases[i].op, cases[i].value));
        if (pm_alert_filter_match(f, ev) != cases[i].want)
            TH_FAIL_("case %zu: %s %s \"%s\" should give %d", i, cases[i].label, cases[i].op,
                     cases[i].value, cases[i].want);
        pm_alert_filter_free(f);
    }
    /* every matcher must match */
    pm_alert_filter_t *f = NULL;
    REQUIRE(pm_alert_filter_new(&f) == PM_OK);
    CHECK_OK(pm_alert_filter_add_matcher(f, "service", "=~", "api.*"));
    CHECK_OK(pm_alert_filter_add_matcher(f, "status", "=", "503"));
    CHECK_OK(pm_alert_filter_add_matcher(f, "severity", "!=", "info"));
    CHECK_EQ_INT(pm_alert_filter_match(f, ev), 1);
    CHECK_OK(pm_alert_filter_add_matcher(f, "status", "!~", "5.."));
    CHECK_EQ_INT(pm_alert_filter_match(f, ev), 0);

    /* bad inputs leave the filter unchanged */
    CHECK_STATUS(pm_alert_filter_add_matcher(NULL, "a", "=", "b"), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, NULL, "=", "b"), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "a", NULL, "b"), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "a", "=", NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "a", "==", "b"), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "a", "~", "b"), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "a", "", "b"), PM_EINVAL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "", "=", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "1abc", "=", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "a-b", "=", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "__name__", "=", "b"), PM_EBADLABEL);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "service", "=~", "(unclosed"), PM_EPARSE);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "service", "!~", "a{2,1}"), PM_EPARSE);
    /* regexes that would make regcomp take gigabytes or minutes are refused */
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "service", "=~", "(a*)+"), PM_EPARSE);
    CHECK_STATUS(pm_alert_filter_add_matcher(f, "service", "=~", "a+++++++++++++++++++++"),
                 PM_EPARSE);
    CHECK_EQ_INT((int)f->nm, 4);
    /* a regex that failed for "=~" is fine as a literal */
    CHECK_OK(pm_alert_filter_add_matcher(f, "service", "!=", "(unclosed"));
    CHECK_EQ_INT(pm_alert_filter_match(f, ev), 0);
    pm_alert_filter_free(f);
    pm__aevent_unref(ev);
}

TEST(test_filter_rules_and_resolved)
{
    pm_alert_event_t *a = mk_simple(NULL, "RuleA", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    pm_alert_event_t *b = mk_simple(NULL, "RuleB", PM_ALERT_FIRING, PM_SEVERITY_INFO, 2);
    pm_alert_event_t *c = mk_simple(NULL, "RuleC", PM_ALERT_FIRING, PM_SEVERITY_INFO, 3);
    pm_alert_event_t *ra = mk_simple(NULL, "RuleA", PM_ALERT_RESOLVED, PM_SEVERITY_INFO, 4);
    evspec rep = {.rule = "RuleA", .state = PM_ALERT_FIRING, .prev = PM_ALERT_FIRING,
                  .sev = PM_SEVERITY_INFO, .at = 1,
                  .labels = {"alertname", "RuleA", "severity", "info", NULL}};
    pm_alert_event_t *repeat = mk(NULL, &rep);
    REQUIRE(a && b && c && ra && repeat);
    pm_alert_filter_t *f = NULL;
    REQUIRE(pm_alert_filter_new(&f) == PM_OK);
    CHECK_OK(pm_alert_filter_add_rule(f, "RuleA"));
    CHECK_OK(pm_alert_filter_add_rule(f, "RuleC"));
    CHECK_OK(pm_alert_filter_add_rule(f, "RuleA")); /* again: no-op */
    CHECK_EQ_INT((int)f->nrules, 2);
    CHECK_EQ_INT(pm_alert_filter_match(f, a), 1);
    CHECK_EQ_INT(pm_alert_filter_match(f, b), 0);
    CHECK_EQ_INT(pm_alert_filter_match(f, c), 1);
    CHECK_EQ_INT(pm_alert_filter_match(f, ra), 1); /* send_resolved defaults to on */
    CHECK_OK(pm_alert_filter_set_send_resolved(f, 0));
    CHECK_EQ_INT(pm_alert_filter_match(f, ra), 0);
    CHECK_EQ_INT(pm_alert_filter_match(f, a), 1);
    CHECK_EQ_INT(pm_alert_filter_match(f, repeat), 1); /* repeats are firing events */
    CHECK_OK(pm_alert_filter_set_send_resolved(f, 7));
    CHECK_EQ_INT(pm_alert_filter_match(f, ra), 1);

    /* pm__afilter_copy is deep */
    CHECK_OK(pm_alert_filter_add_matcher(f, "n", "=~", "[13]"));
    CHECK_OK(pm_alert_filter_set_min_severity(f, PM_SEVERITY_INFO));
    pm_alert_filter_t *copy = NULL;
    CHECK_OK(pm__afilter_copy(f, &copy));
    REQUIRE(copy != NULL);
    pm_alert_filter_free(f);
    CHECK_EQ_INT(pm_alert_filter_match(copy, a), 1);
    CHECK_EQ_INT(pm_alert_filter_match(copy, b), 0);
    CHECK_EQ_INT(pm_alert_filter_match(copy, c), 1);
    CHECK_EQ_INT(pm_alert_filter_match(copy, ra), 0); /* n=4 */
    pm_alert_filter_free(copy);
    pm_alert_filter_t *none = (pm_alert_filter_t *)1;
    CHECK_OK(pm__afilter_copy(NULL, &none));
    CHECK(none == NULL);
    CHECK_STATUS(pm__afilter_copy(NULL, NULL), PM_EINVAL);
    pm__aevent_unref(a);
    pm__aevent_unref(b);
    pm__aevent_unref(c);
    pm__aevent_unref(ra);
    pm__aevent_unref(repeat);
}

/* ------------------------------------------------------------ hub: manual mode */

TEST(test_hub_manual_order_and_counts)
{
    pm__ahub *h = NULL;
    CHECK_STATUS(pm__ahub_new(NULL, 0, false, &h), PM_EINVAL);
    CHECK_STATUS(pm__ahub_new(NULL, 8, false, NULL), PM_EINVAL);
    REQUIRE(pm__ahub_new(NULL, 8, false, &h) == PM_OK);
    recorder all = {0}, crit = {0};
    pm_alert_filter_t *f = NULL;
    REQUIRE(pm_alert_filter_new(&f) == PM_OK);
    CHECK_OK(pm_alert_filter_set_min_severity(f, PM_SEVERITY_CRITICAL));
    CHECK_OK(pm__ahub_add(h, "all", NULL, rec_notify, &all, rec_release));
    CHECK_OK(pm__ahub_add(h, "crit", f, rec_notify, &crit, rec_release));
    pm_alert_filter_free(f); /* the hub has its own copy */
    for (int i = 0; i < 5; i++) {
        pm_alert_event_t *ev = mk_simple(NULL, "R", PM_ALERT_FIRING,
                                         i % 2 ? PM_SEVERITY_CRITICAL : PM_SEVERITY_WARNING, i);
        REQUIRE(ev != NULL);
        pm__ahub_post(h, ev);
        CHECK_EQ_INT(refs(ev), 2);
        pm__aevent_unref(ev);
    }
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 5);
    CHECK_EQ_INT(all.n, 0); /* nothing runs until the host delivers */
    size_t d = 99;
    CHECK_OK(pm__ahub_deliver(h, 2, &d));
    CHECK_EQ_INT(d, 2);
    CHECK_EQ_INT(all.n, 2);
    CHECK_OK(pm__ahub_deliver(h, 0, &d));
    CHECK_EQ_INT(d, 3);
    CHECK_OK(pm__ahub_deliver(h, 0, &d));
    CHECK_EQ_INT(d, 0);
    CHECK_OK(pm__ahub_deliver(h, 0, NULL));
    CHECK_EQ_INT(all.n, 5);
    for (int i = 0; i < 5; i++) CHECK_EQ_DBL(all.seen[i], i);
    CHECK_EQ_INT(crit.n, 2);
    CHECK_EQ_DBL(crit.seen[0], 1);
    CHECK_EQ_DBL(crit.seen[1], 3);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_SENT), 7);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_FAILED), 0);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_DROPPED), 0);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 5);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_EVALUATIONS), 0); /* not a hub counter */
    CHECK_EQ_U64(stat(NULL, PM_ALERT_STAT_NOTIFY_SENT), 0);

    /* failures are counted per call */
    all.fail_odd = 1;
    for (int i = 10; i < 14; i++) {
        pm_alert_event_t *ev = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, i);
        pm__ahub_post(h, ev);
        pm__aevent_unref(ev);
    }
    CHECK_OK(pm__ahub_deliver(h, 0, &d));
    CHECK_EQ_INT(d, 4);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_SENT), 9);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_FAILED), 2);
    CHECK_STATUS(pm__ahub_deliver(NULL, 0, &d), PM_EINVAL);
    CHECK_EQ_INT(d, 0);
    CHECK_EQ_INT(all.released, 0);
    pm__ahub_free(h);
    CHECK_EQ_INT(all.released, 1);
    CHECK_EQ_INT(crit.released, 1);
    pm__ahub_free(NULL);
}

TEST(test_hub_no_notifiers_no_queue)
{
    atomic_store(&live_blocks, 0);
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(&counting, 4, false, &h) == PM_OK);
    pm_alert_event_t *ev = mk_simple(&counting, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    REQUIRE(ev != NULL);
    long before = atomic_load(&live_blocks);
    pm__ahub_post(h, ev);
    CHECK_EQ_INT(refs(ev), 1);
    CHECK_EQ_INT(atomic_load(&live_blocks), before); /* nothing allocated either */
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 0);
    pm__ahub_post(h, NULL);
    pm__ahub_post(NULL, ev);
    /* after the last notifier goes, posts stop queueing again */
    recorder r = {0};
    CHECK_OK(pm__ahub_add(h, "r", NULL, rec_notify, &r, NULL));
    pm__ahub_post(h, ev);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 1);
    CHECK_OK(pm__ahub_remove(h, "r"));
    pm__ahub_post(h, ev);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 1);
    size_t d = 0;
    CHECK_OK(pm__ahub_deliver(h, 0, &d));
    CHECK_EQ_INT(d, 1); /* handed to the filters of nobody */
    CHECK_EQ_INT(r.n, 0);
    CHECK_EQ_INT(refs(ev), 1);
    pm__aevent_unref(ev);
    pm__ahub_free(h);
    CHECK_EQ_INT(atomic_load(&live_blocks), 0);
}

TEST(test_hub_drop_oldest)
{
    atomic_store(&live_blocks, 0);
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(&counting, 4, false, &h) == PM_OK);
    recorder r = {0};
    CHECK_OK(pm__ahub_add(h, "r", NULL, rec_notify, &r, NULL));
    for (int i = 0; i < 10; i++) {
        pm_alert_event_t *ev = mk_simple(&counting, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, i);
        REQUIRE(ev != NULL);
        pm__ahub_post(h, ev);
        pm__aevent_unref(ev);
    }
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 10);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_DROPPED), 6);
    size_t d = 0;
    CHECK_OK(pm__ahub_deliver(h, 0, &d));
    CHECK_EQ_INT(d, 4);
    REQUIRE(r.n == 4);
    for (int i = 0; i < 4; i++) CHECK_EQ_DBL(r.seen[i], 6 + i); /* the newest four */
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED),
                 stat(h, PM_ALERT_STAT_NOTIFY_SENT) + stat(h, PM_ALERT_STAT_NOTIFY_FAILED) +
                     stat(h, PM_ALERT_STAT_NOTIFY_DROPPED));

    /* a large bound is not allocated up front; the ring grows and keeps order */
    pm__ahub *big = NULL;
    REQUIRE(pm__ahub_new(&counting, (size_t)1 << 24, false, &big) == PM_OK);
    recorder rb = {0};
    CHECK_OK(pm__ahub_add(big, "r", NULL, rec_notify, &rb, NULL));
    for (int i = 0; i < 60; i++) { /* wraps the first ring of 64 before it grows */
        pm_alert_event_t *ev = mk_simple(&counting, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, i);
        pm__ahub_post(big, ev);
        pm__aevent_unref(ev);
    }
    CHECK_OK(pm__ahub_deliver(big, 50, &d));
    for (int i = 60; i < 200; i++) {
        pm_alert_event_t *ev = mk_simple(&counting, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, i);
        pm__ahub_post(big, ev);
        pm__aevent_unref(ev);
    }
    CHECK_OK(pm__ahub_deliver(big, 0, &d));
    CHECK_EQ_INT(d, 150);
    CHECK_EQ_INT(rb.n, 200);
    CHECK_EQ_U64(stat(big, PM_ALERT_STAT_NOTIFY_DROPPED), 0);
    int ordered = 1;
    for (int i = 0; i < 64; i++) ordered &= rb.seen[i] == i;
    CHECK(ordered);
    pm__ahub_free(big);

    /* manual mode: free drops (and releases) what is still queued */
    for (int i = 0; i < 3; i++) {
        pm_alert_event_t *ev = mk_simple(&counting, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, i);
        pm__ahub_post(h, ev);
        pm__aevent_unref(ev);
    }
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 13);
    pm__ahub_free(h);
    CHECK_EQ_INT(r.n, 4); /* not delivered */
    CHECK_EQ_INT(atomic_load(&live_blocks), 0);
}

TEST(test_hub_add_remove)
{
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(NULL, 8, false, &h) == PM_OK);
    recorder a = {0}, b = {0};
    CHECK_STATUS(pm__ahub_add(NULL, "a", NULL, rec_notify, &a, rec_release), PM_EINVAL);
    CHECK_STATUS(pm__ahub_add(h, NULL, NULL, rec_notify, &a, rec_release), PM_EINVAL);
    CHECK_STATUS(pm__ahub_add(h, "a", NULL, NULL, &a, rec_release), PM_EINVAL);
    CHECK_STATUS(pm__ahub_add(h, "", NULL, rec_notify, &a, rec_release), PM_EINVAL);
    CHECK_STATUS(pm__ahub_add(h, "\xff\xfe", NULL, rec_notify, &a, rec_release), PM_EINVAL);
    CHECK_OK(pm__ahub_add(h, "a", NULL, rec_notify, &a, rec_release));
    CHECK_STATUS(pm__ahub_add(h, "a", NULL, rec_notify, &b, rec_release), PM_EEXIST);
    CHECK_EQ_INT(a.released + b.released, 0); /* not called on error */
    CHECK_OK(pm__ahub_add(h, "b", NULL, rec_notify, &b, rec_release));
    CHECK_STATUS(pm__ahub_remove(h, "c"), PM_ENOENT);
    CHECK_STATUS(pm__ahub_remove(h, NULL), PM_EINVAL);
    CHECK_STATUS(pm__ahub_remove(NULL, "a"), PM_EINVAL);
    CHECK_OK(pm__ahub_remove(h, "a"));
    CHECK_EQ_INT(a.released, 1);
    CHECK_STATUS(pm__ahub_remove(h, "a"), PM_ENOENT);
    CHECK_EQ_INT(a.released, 1);
    /* the name is free again; a removed notifier gets nothing more */
    recorder a2 = {0};
    CHECK_OK(pm__ahub_add(h, "a", NULL, rec_notify, &a2, rec_release));
    pm_alert_event_t *ev = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    pm__ahub_post(h, ev);
    pm__aevent_unref(ev);
    CHECK_OK(pm__ahub_deliver(h, 0, NULL));
    CHECK_EQ_INT(a.n, 0);
    CHECK_EQ_INT(a2.n, 1);
    CHECK_EQ_INT(b.n, 1);
    /* a notifier starts with the events posted after it was added */
    recorder late = {0};
    ev = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 2);
    pm__ahub_post(h, ev);
    CHECK_OK(pm__ahub_add(h, "late", NULL, rec_notify, &late, rec_release));
    pm__ahub_post(h, ev);
    pm__aevent_unref(ev);
    size_t d = 0;
    CHECK_OK(pm__ahub_deliver(h, 0, &d));
    CHECK_EQ_INT(d, 2);
    CHECK_EQ_INT(b.n, 3);
    CHECK_EQ_INT(late.n, 1);
    pm__ahub_free(h);
    CHECK_EQ_INT(late.released, 1);
    CHECK_EQ_INT(a.released, 1);
    CHECK_EQ_INT(a2.released, 1);
    CHECK_EQ_INT(b.released, 1);
}

/* A notifier that tries everything it must not do. */
typedef struct reentry {
    pm__ahub *h;
    pm_alert_engine_t *e;
    int calls;
    int in_flag;
    pm_status_t remove_self, remove_other, deliver, eng_remove, eng_deliver;
} reentry;

static int reentry_notify(const pm_alert_event_t *ev, void *user)
{
    (void)ev;
    reentry *r = user;
    r->calls++;
    r->in_flag = pm__ahub_in_notifier();
    r->remove_self = pm__ahub_remove(r->h, "self");
    r->remove_other = pm__ahub_remove(r->h, "other");
    size_t d = 77;
    r->deliver = pm__ahub_deliver(r->h, 0, &d);
    if (d != 0) r->deliver = PM_EIO;
    r->eng_remove = pm_alert_engine_remove_notifier(r->e, "self");
    r->eng_deliver = pm_alert_engine_deliver(r->e, 0, NULL);
    return 0;
}

static void run_reentry(bool thread)
{
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(NULL, 8, thread, &h) == PM_OK);
    pm_alert_engine_t eng = {h};
    reentry r = {.h = h, .e = &eng};
    gate other;
    gate_init(&other);
    gate_open(&other);
    CHECK_OK(pm__ahub_add(h, "self", NULL, reentry_notify, &r, NULL));
    CHECK_OK(pm__ahub_add(h, "other", NULL, gate_notify, &other, gate_release));
    CHECK(!pm__ahub_in_notifier());
    pm_alert_event_t *ev = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    pm__ahub_post(h, ev);
    pm__aevent_unref(ev);
    if (thread)
        gate_wait(&other, &other.done, 1); /* "other" runs after "self" */
    else
        CHECK_OK(pm__ahub_deliver(h, 0, NULL));
    CHECK_EQ_INT(r.calls, 1);
    CHECK_EQ_INT(r.in_flag, 1);
    CHECK_STATUS(r.remove_self, PM_ESTATE);
    CHECK_STATUS(r.remove_other, PM_ESTATE);
    CHECK_STATUS(r.deliver, PM_ESTATE);
    CHECK_STATUS(r.eng_remove, PM_ESTATE);
    CHECK_STATUS(r.eng_deliver, PM_ESTATE);
    CHECK(!pm__ahub_in_notifier());
    CHECK_EQ_INT(other.done, 1); /* still registered, still called */
    CHECK_EQ_INT(other.released, 0);
    CHECK_OK(pm__ahub_remove(h, "self")); /* fine from outside */
    pm__ahub_free(h);
    CHECK_EQ_INT(other.released, 1);
    gate_fini(&other);
}

TEST(test_hub_reentry_manual) { run_reentry(false); }
TEST(test_hub_reentry_thread) { run_reentry(true); }

/* ------------------------------------------------------------ hub: dispatch thread */

TEST(test_hub_thread_blocked_notifier_never_blocks_post)
{
    enum { CAP = 64, BURST = 10000 };
    atomic_store(&live_blocks, 0);
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(&counting, CAP, true, &h) == PM_OK);
    CHECK_STATUS(pm__ahub_deliver(h, 0, NULL), PM_ESTATE); /* the thread delivers */
    gate g;
    gate_init(&g);
    CHECK_OK(pm__ahub_add(h, "slow", NULL, gate_notify, &g, gate_release));
    /* Event 0 goes in flight and blocks the dispatch thread in the notifier. */
    pm_alert_event_t *ev = mk_simple(&counting, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 0);
    REQUIRE(ev != NULL);
    pm__ahub_post(h, ev);
    pm__aevent_unref(ev);
    gate_wait(&g, &g.entered, 1);
    /* Prebuilt so the timing below is the posts' alone. */
    pm_alert_event_t **evs = malloc(BURST * sizeof *evs);
    REQUIRE(evs != NULL);
    for (int i = 0; i < BURST; i++) {
        evs[i] = mk_simple(&counting, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, i + 1);
        REQUIRE(evs[i] != NULL);
    }
    double t = now_s(), worst = 0;
    for (int i = 0; i < BURST; i++) {
        double t1 = now_s();
        pm__ahub_post(h, evs[i]);
        double dt = now_s() - t1;
        if (dt > worst) worst = dt;
        pm__aevent_unref(evs[i]);
    }
    double total = now_s() - t;
    free(evs);
    /* If a post waited for the notifier this would never get here (the gate
     * opens below); the bounds are generous for sanitizers. */
    CHECK(total < 10.0);
    CHECK(worst < 1.0);
    CHECK_EQ_INT(g.done, 0);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), BURST + 1);
    /* posted - capacity - in flight */
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_DROPPED), BURST + 1 - CAP - 1);
    gate_open(&g);
    gate_wait(&g, &g.done, 1 + CAP);
    /* the thread has delivered everything; SENT is counted after the call
     * returns, so wait for the counter itself too (bounded) */
    for (int i = 0; i < 20000 && stat(h, PM_ALERT_STAT_NOTIFY_SENT) < 1 + CAP; i++) nap_ms(1);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_SENT), 1 + CAP);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_FAILED), 0);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED),
                 stat(h, PM_ALERT_STAT_NOTIFY_SENT) + stat(h, PM_ALERT_STAT_NOTIFY_FAILED) +
                     stat(h, PM_ALERT_STAT_NOTIFY_DROPPED));
    /* the survivors are the newest CAP, in order, after the one in flight */
    CHECK_EQ_DBL(g.first, 0);
    CHECK_EQ_INT(g.last, BURST);
    CHECK_EQ_INT(g.out_of_order, 0);
    pm__ahub_free(h);
    CHECK_EQ_INT(g.done, 1 + CAP);
    CHECK_EQ_INT(g.released, 1);
    CHECK_EQ_INT(atomic_load(&live_blocks), 0); /* dropped events were released */
    gate_fini(&g);
}

TEST(test_hub_thread_failures_and_drain_on_free)
{
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(NULL, 64, true, &h) == PM_OK);
    gate g;
    gate_init(&g);
    g.fail_odd = 1;
    gate_open(&g);
    CHECK_OK(pm__ahub_add(h, "flaky", NULL, gate_notify, &g, gate_release));
    for (int i = 0; i < 10; i++) {
        pm_alert_event_t *ev = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, i);
        pm__ahub_post(h, ev);
        pm__aevent_unref(ev);
    }
    gate_wait(&g, &g.done, 10);
    for (int i = 0; i < 20000 && stat(h, PM_ALERT_STAT_NOTIFY_SENT) +
                                         stat(h, PM_ALERT_STAT_NOTIFY_FAILED) < 10; i++)
        nap_ms(1);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_SENT), 5);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_FAILED), 5);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 10);
    CHECK_EQ_INT(g.out_of_order, 0);
    pm__ahub_free(h);
    CHECK_EQ_INT(g.released, 1);
    gate_fini(&g);

    /* free lets the thread deliver everything still queued */
    REQUIRE(pm__ahub_new(NULL, 64, true, &h) == PM_OK);
    gate_init(&g);
    CHECK_OK(pm__ahub_add(h, "slow", NULL, gate_notify, &g, gate_release));
    for (int i = 0; i < 20; i++) {
        pm_alert_event_t *ev = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, i);
        pm__ahub_post(h, ev);
        pm__aevent_unref(ev);
    }
    gate_wait(&g, &g.entered, 1);
    CHECK_EQ_INT(g.done, 0);
    gate_open(&g);
    pm__ahub_free(h);
    CHECK_EQ_INT(g.done, 20);
    CHECK_EQ_INT(g.out_of_order, 0);
    CHECK_EQ_INT(g.released, 1);
    CHECK_EQ_INT(g.done_at_release, 20); /* released after the last call */
    gate_fini(&g);

    /* a thread hub that never got a notifier has no thread to join */
    REQUIRE(pm__ahub_new(NULL, 4, true, &h) == PM_OK);
    pm__ahub_free(h);
}

typedef struct remover {
    pm__ahub *h;
    const char *name;
    pm_status_t st;
    atomic_int returned;
} remover;

static void *remover_main(void *arg)
{
    remover *r = arg;
    r->st = pm__ahub_remove(r->h, r->name);
    atomic_store(&r->returned, 1);
    return NULL;
}

TEST(test_hub_remove_waits_for_call)
{
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(NULL, 8, true, &h) == PM_OK);
    gate g;
    gate_init(&g);
    recorder after = {0};
    CHECK_OK(pm__ahub_add(h, "blocker", NULL, gate_notify, &g, gate_release));
    CHECK_OK(pm__ahub_add(h, "after", NULL, rec_notify, &after, rec_release));
    pm_alert_event_t *ev = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    pm__ahub_post(h, ev);
    pm__aevent_unref(ev);
    gate_wait(&g, &g.entered, 1); /* the call is in progress */

    remover rm = {.h = h, .name = "blocker"};
    atomic_init(&rm.returned, 0);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, remover_main, &rm) == 0);
    /* Wait (bounded) until the remover has marked it: the name is then free
     * for a new notifier (a probe, which never blocks), while the call the
     * remover waits for is still held by the gate. */
    recorder probe = {0};
    pm_status_t st = PM_EEXIST;
    for (int i = 0; i < 20000 && st == PM_EEXIST; i++) {
        st = pm__ahub_add(h, "blocker", NULL, rec_notify, &probe, rec_release);
        if (st == PM_EEXIST) nap_ms(1);
    }
    CHECK_OK(st);
    CHECK_EQ_INT(atomic_load(&rm.returned), 0);
    CHECK_EQ_INT(g.released, 0);
    gate_open(&g);
    pthread_join(t, NULL);
    CHECK_OK(rm.st);
    CHECK_EQ_INT(g.released, 1);
    CHECK_EQ_INT(g.done_at_release, 1); /* the call had returned */
    CHECK_OK(pm__ahub_remove(h, "blocker")); /* the probe */
    CHECK_EQ_INT(probe.released, 1);
    CHECK_EQ_INT(probe.n, 0);
    pm__ahub_free(h);
    CHECK_EQ_INT(g.released, 1);
    CHECK_EQ_INT(after.n, 1); /* the next notifier still got the event */
    CHECK_EQ_INT(after.released, 1);
    gate_fini(&g);
}

/* ------------------------------------------------------------ out of memory */

static _Atomic int allocs_left = -1; /* -1: never fail */
static void *failing_alloc(void *user, size_t n)
{
    (void)user;
    int left = atomic_load(&allocs_left);
    if (left == 0) return NULL;
    if (left > 0) atomic_fetch_sub(&allocs_left, 1);
    return count_alloc(NULL, n);
}
static const pm_alloc_t failing = {failing_alloc, count_free, NULL};

TEST(test_out_of_memory)
{
    atomic_store(&live_blocks, 0);
    atomic_store(&allocs_left, 0);
    pm_alert_event_t *ev = (pm_alert_event_t *)1;
    pm__aevent_init in = {.rule = "R"};
    CHECK_STATUS(pm__aevent_new(&failing, &in, &ev), PM_ENOMEM);
    CHECK(ev == NULL);
    atomic_store(&allocs_left, -1);
    ev = mk_simple(&failing, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    REQUIRE(ev != NULL);
    atomic_store(&allocs_left, 0);
    pm_alert_list_t *l = (pm_alert_list_t *)1;
    CHECK_STATUS(pm__alist_new(&failing, &ev, 1, &l), PM_ENOMEM);
    CHECK(l == NULL);
    CHECK_EQ_INT(refs(ev), 1);
    pm__ahub *h = (pm__ahub *)1;
    CHECK_STATUS(pm__ahub_new(&failing, 8, false, &h), PM_ENOMEM);
    CHECK(h == NULL);

    /* adding fails at each of its allocations without calling release */
    recorder r = {0};
    atomic_store(&allocs_left, 1);
    REQUIRE(pm__ahub_new(&failing, 8, false, &h) == PM_OK);
    for (int k = 0; k < 2; k++) {
        atomic_store(&allocs_left, k);
        CHECK_STATUS(pm__ahub_add(h, "r", NULL, rec_notify, &r, rec_release), PM_ENOMEM);
    }
    CHECK_EQ_INT(r.released, 0);
    atomic_store(&allocs_left, 2);
    CHECK_OK(pm__ahub_add(h, "r", NULL, rec_notify, &r, rec_release));
    /* no memory for the ring: the event is counted as queued and dropped */
    atomic_store(&allocs_left, 0);
    pm__ahub_post(h, ev);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_QUEUED), 1);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_DROPPED), 1);
    CHECK_EQ_INT(refs(ev), 1);
    atomic_store(&allocs_left, -1);
    pm__ahub_post(h, ev);
    CHECK_EQ_INT(refs(ev), 2);
    size_t d = 0;
    CHECK_OK(pm__ahub_deliver(h, 0, &d));
    CHECK_EQ_INT(d, 1);
    CHECK_EQ_INT(r.n, 1);

    pm__ahub_free(h);
    CHECK_EQ_INT(r.released, 1);
    pm__aevent_unref(ev);
    CHECK_EQ_INT(atomic_load(&live_blocks), 0);
}

/* ------------------------------------------------------------ wrappers, log notifier */

TEST(test_engine_wrappers)
{
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(NULL, 8, false, &h) == PM_OK);
    pm_alert_engine_t eng = {h};
    recorder r = {0};
    size_t d = 5;
    CHECK_STATUS(pm_alert_engine_add_notifier(NULL, "r", NULL, rec_notify, &r, rec_release),
                 PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_notifier(&eng, NULL, NULL, rec_notify, &r, rec_release),
                 PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_notifier(&eng, "r", NULL, NULL, &r, rec_release), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_remove_notifier(NULL, "r"), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_remove_notifier(&eng, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_deliver(NULL, 0, &d), PM_EINVAL);
    CHECK_EQ_INT(d, 0);
    CHECK_STATUS(pm_alert_engine_add_log_notifier(NULL, "log", NULL, stdout), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_log_notifier(&eng, NULL, NULL, stdout), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_add_log_notifier(&eng, "log", NULL, NULL), PM_EINVAL);
    CHECK_EQ_INT(r.released, 0);
    CHECK_OK(pm_alert_engine_add_notifier(&eng, "r", NULL, rec_notify, &r, rec_release));
    CHECK_STATUS(pm_alert_engine_add_notifier(&eng, "r", NULL, rec_notify, &r, NULL), PM_EEXIST);
    pm_alert_event_t *ev = mk_simple(NULL, "R", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    pm__ahub_post(h, ev);
    pm__aevent_unref(ev);
    CHECK_OK(pm_alert_engine_deliver(&eng, 0, &d));
    CHECK_EQ_INT(d, 1);
    CHECK_EQ_INT(r.n, 1);
    CHECK_OK(pm_alert_engine_remove_notifier(&eng, "r"));
    CHECK_STATUS(pm_alert_engine_remove_notifier(&eng, "r"), PM_ENOENT);
    CHECK_EQ_INT(r.released, 1);
    pm__ahub_free(h);
    CHECK_EQ_INT(r.released, 1);
}

static char *slurp(FILE *f)
{
    static char text[4096];
    rewind(f);
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    return text;
}

TEST(test_log_notifier)
{
    pm__ahub *h = NULL;
    REQUIRE(pm__ahub_new(NULL, 8, false, &h) == PM_OK);
    pm_alert_engine_t eng = {h};
    FILE *out = tmpfile();
    REQUIRE(out != NULL);
    pm_alert_filter_t *f = NULL;
    REQUIRE(pm_alert_filter_new(&f) == PM_OK);
    CHECK_OK(pm_alert_filter_set_min_severity(f, PM_SEVERITY_WARNING));
    CHECK_OK(pm_alert_engine_add_log_notifier(&eng, "log", f, out));
    pm_alert_filter_free(f);
    pm_alert_event_t *a = mk(NULL, &MAIN);
    pm_alert_event_t *info = mk_simple(NULL, "Quiet", PM_ALERT_FIRING, PM_SEVERITY_INFO, 1);
    pm_alert_event_t *b = mk_simple(NULL, "Disk", PM_ALERT_RESOLVED, PM_SEVERITY_WARNING, 2);
    REQUIRE(a && info && b);
    pm__ahub_post(h, a);
    pm__ahub_post(h, info);
    pm__ahub_post(h, b);
    CHECK_OK(pm_alert_engine_deliver(&eng, 0, NULL));
    CHECK_STR(slurp(out),
              "2026-11-23T10:00:00.000Z FIRING critical HighErrorRate{path=\"/a \\\"b\\\" "
              "\\\\c\\nd\",service=\"api\"} value=0.0712 description=\"line1\\nline2\" "
              "summary=\"error rate 7.12% on api\"\n"
              "2026-11-23T10:00:02.000Z RESOLVED warning Disk{n=\"2\"} value=2\n");
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_SENT), 2);

    /* a write that fails is a failed notification */
    FILE *ro = fopen("/dev/null", "r");
    REQUIRE(ro != NULL);
    CHECK_OK(pm_alert_engine_add_log_notifier(&eng, "ro", NULL, ro));
    pm__ahub_post(h, a);
    CHECK_OK(pm_alert_engine_deliver(&eng, 0, NULL));
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_SENT), 3);
    CHECK_EQ_U64(stat(h, PM_ALERT_STAT_NOTIFY_FAILED), 1);
    pm__ahub_free(h); /* the FILEs stay ours */
    fclose(ro);
    fclose(out);
    pm__aevent_unref(a);
    pm__aevent_unref(info);
    pm__aevent_unref(b);
}

/* ------------------------------------------------------------ formatters */

static const char *line_of(const evspec *s)
{
    static char text[1024];
    pm_alert_event_t *ev = mk(NULL, s);
    pm_buf_t *b = NULL;
    text[0] = '\0';
    if (ev && pm_buf_new(&b) == PM_OK && pm_alert_event_format_line(ev, b) == PM_OK)
        snprintf(text, sizeof text, "%s", pm_buf_data(b));
    pm_buf_free(b);
    pm__aevent_unref(ev);
    return text;
}

TEST(test_format_line)
{
    CHECK_STR(line_of(&MAIN),
              "2026-11-23T10:00:00.000Z FIRING critical HighErrorRate{path=\"/a \\\"b\\\" "
              "\\\\c\\nd\",service=\"api\"} value=0.0712 description=\"line1\\nline2\" "
              "summary=\"error rate 7.12% on api\"\n");
    /* only alertname and severity: no braces; NaN; pending; milliseconds */
    evspec s = {.rule = "NoData", .state = PM_ALERT_PENDING, .sev = PM_SEVERITY_INFO,
                .value = NAN, .at = NS(1709210096) + 789999999, /* 2024-02-29T12:34:56.789999999 */
                .labels = {"alertname", "NoData", "severity", "info", NULL}};
    CHECK_STR(line_of(&s), "2024-02-29T12:34:56.789Z PENDING info NoData value=NaN\n");
    /* before the epoch, and the ends of the int64 range */
    s.at = -1;
    s.value = -1.5e-7;
    s.state = PM_ALERT_INACTIVE;
    CHECK_STR(line_of(&s), "1969-12-31T23:59:59.999Z INACTIVE info NoData value=-1.5e-07\n");
    s.at = INT64_MAX;
    s.value = INFINITY;
    s.state = PM_ALERT_RESOLVED;
    s.sev = PM_SEVERITY_WARNING;
    CHECK_STR(line_of(&s), "2262-04-11T23:47:16.854Z RESOLVED warning NoData value=+Inf\n");
    s.at = INT64_MIN;
    s.value = 1e21;
    s.state = (pm_alert_state_t)9;
    s.sev = (pm_severity_t)0;
    CHECK_STR(line_of(&s), "1677-09-21T00:12:43.145Z UNKNOWN unknown NoData value=1e+21\n");
    s.at = NS(951782400); /* 2000-02-29T00:00:00Z, a leap day of a century year */
    s.value = 3;
    s.state = PM_ALERT_FIRING;
    s.sev = PM_SEVERITY_CRITICAL;
    CHECK_STR(line_of(&s), "2000-02-29T00:00:00.000Z FIRING critical NoData value=3\n");

    /* appends; bad inputs change nothing */
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    REQUIRE(pm_buf_append(b, "x|", 2) == PM_OK);
    pm_alert_event_t *ev = mk(NULL, &s);
    CHECK_OK(pm_alert_event_format_line(ev, b));
    CHECK_STR(pm_buf_data(b), "x|2000-02-29T00:00:00.000Z FIRING critical NoData value=3\n");
    CHECK_STATUS(pm_alert_event_format_line(NULL, b), PM_EINVAL);
    CHECK_STATUS(pm_alert_event_format_line(ev, NULL), PM_EINVAL);
    CHECK_EQ_INT(pm_buf_len(b), strlen(pm_buf_data(b)));
    CHECK_EQ_INT(pm_buf_len(b), 58);
    pm_buf_free(b);
    pm__aevent_unref(ev);
}

TEST(test_format_alertmanager)
{
    evspec resolved = {
        .rule = "DiskFull", .state = PM_ALERT_RESOLVED, .prev = PM_ALERT_FIRING,
        .sev = PM_SEVERITY_WARNING, .value = 0.5, .at = NS(T0 + 60),
        .active_at = NS(T0 - 600), .starts_at = NS(T0 - 300) + 250000000,
        .ends_at = NS(T0 + 60),
        .labels = {"alertname", "DiskFull", "mount", "C:\\data \"x\"\t\x01 \xc3\xa9\xe2\x9c\x93",
                   "severity", "warning", NULL}};
    evspec pending = {.rule = "Slow", .state = PM_ALERT_PENDING, .sev = PM_SEVERITY_INFO,
                      .at = NS(T0), .active_at = NS(T0), .starts_at = UNSET, .ends_at = UNSET,
                      .labels = {"alertname", "Slow", "severity", "info", NULL}};
    /* resolved without ever firing, and without ends_at: the fallbacks */
    evspec bare = {.rule = "Blip", .state = PM_ALERT_RESOLVED, .sev = PM_SEVERITY_INFO,
                   .at = NS(T0 + 5), .active_at = NS(T0), .starts_at = UNSET, .ends_at = UNSET,
                   .labels = {"alertname", "Blip", "severity", "info", NULL}};
    pm_alert_event_t *ev[4] = {mk(NULL, &MAIN), mk(NULL, &pending), mk(NULL, &resolved),
                               mk(NULL, &bare)};
    REQUIRE(ev[0] && ev[1] && ev[2] && ev[3]);
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm_alert_format_alertmanager((const pm_alert_event_t *const *)ev, 4,
                                          "http://h:9090/graph?g0.expr=up&x=\"1\"", b));
    CHECK_STR(pm_buf_data(b),
              "[{\"labels\":{\"alertname\":\"HighErrorRate\",\"path\":\"/a \\\"b\\\" \\\\c\\nd\","
              "\"service\":\"api\",\"severity\":\"critical\"},"
              "\"annotations\":{\"description\":\"line1\\nline2\","
              "\"summary\":\"error rate 7.12% on api\"},"
              "\"startsAt\":\"2026-11-23T10:00:00.000Z\","
              "\"generatorURL\":\"http://h:9090/graph?g0.expr=up&x=\\\"1\\\"\"},"
              "{\"labels\":{\"alertname\":\"DiskFull\","
              "\"mount\":\"C:\\\\data \\\"x\\\"\\t\\u0001 \xc3\xa9\xe2\x9c\x93\","
              "\"severity\":\"warning\"},\"annotations\":{},"
              "\"startsAt\":\"2026-11-23T09:55:00.250Z\",\"endsAt\":\"2026-11-23T10:01:00.000Z\","
              "\"generatorURL\":\"http://h:9090/graph?g0.expr=up&x=\\\"1\\\"\"},"
              "{\"labels\":{\"alertname\":\"Blip\",\"severity\":\"info\"},\"annotations\":{},"
              "\"startsAt\":\"2026-11-23T10:00:00.000Z\",\"endsAt\":\"2026-11-23T10:00:05.000Z\","
              "\"generatorURL\":\"http://h:9090/graph?g0.expr=up&x=\\\"1\\\"\"}]");
    pm_buf_reset(b);
    /* no generator URL; only pending: an empty array */
    CHECK_OK(pm_alert_format_alertmanager((const pm_alert_event_t *const *)ev + 3, 1, NULL, b));
    CHECK_STR(pm_buf_data(b),
              "[{\"labels\":{\"alertname\":\"Blip\",\"severity\":\"info\"},\"annotations\":{},"
              "\"startsAt\":\"2026-11-23T10:00:00.000Z\","
              "\"endsAt\":\"2026-11-23T10:00:05.000Z\"}]");
    pm_buf_reset(b);
    CHECK_OK(pm_alert_format_alertmanager((const pm_alert_event_t *const *)ev + 1, 1, NULL, b));
    CHECK_STR(pm_buf_data(b), "[]");
    pm_buf_reset(b);
    CHECK_OK(pm_alert_format_alertmanager(NULL, 0, NULL, b));
    CHECK_STR(pm_buf_data(b), "[]");
    /* bad inputs leave the buffer as it was */
    const pm_alert_event_t *holes[2] = {ev[0], NULL};
    CHECK_STATUS(pm_alert_format_alertmanager(holes, 2, NULL, b), PM_EINVAL);
    CHECK_STATUS(pm_alert_format_alertmanager(NULL, 1, NULL, b), PM_EINVAL);
    CHECK_STATUS(pm_alert_format_alertmanager(holes, 1, NULL, NULL), PM_EINVAL);
    CHECK_STR(pm_buf_data(b), "[]");
    pm_buf_free(b);
    for (int i = 0; i < 4; i++) pm__aevent_unref(ev[i]);
}

TEST_MAIN(TH_CASE(test_event_accessors), TH_CASE(test_event_null_accessors),
          TH_CASE(test_event_new_bad_inputs), TH_CASE(test_event_one_block_refcount),
          TH_CASE(test_fingerprint), TH_CASE(test_lists), TH_CASE(test_names),
          TH_CASE(test_filter_severity_and_nulls), TH_CASE(test_filter_matchers),
          TH_CASE(test_filter_rules_and_resolved), TH_CASE(test_hub_manual_order_and_counts),
          TH_CASE(test_hub_no_notifiers_no_queue), TH_CASE(test_hub_drop_oldest),
          TH_CASE(test_hub_add_remove), TH_CASE(test_hub_reentry_manual),
          TH_CASE(test_hub_reentry_thread),
          TH_CASE(test_hub_thread_blocked_notifier_never_blocks_post),
          TH_CASE(test_hub_thread_failures_and_drain_on_free),
          TH_CASE(test_hub_remove_waits_for_call), TH_CASE(test_out_of_memory),
          TH_CASE(test_engine_wrappers),
          TH_CASE(test_log_notifier), TH_CASE(test_format_line),
          TH_CASE(test_format_alertmanager))
