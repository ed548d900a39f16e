/* The alert engine under concurrent use (run under TSan in CI):
 *
 *   recorder_thread x 4   increment counters, observe histograms and set
 *                         gauges on the series the rules read;
 *   main thread           ticks the engine 2,000 times with a fake clock
 *                         advancing 15 s per tick;
 *   dispatch thread       (the engine's) delivers to a counting notifier
 *                         that fails every fifth call;
 *   rule_churn_thread     adds, disables, enables, removes and loads rules
 *                         and reads active lists, the history, stats and
 *                         the health score.
 *
 * At the end the recorded totals must be exact (every thread's operations
 * visible in the counters and the snapshot), the notification accounting
 * must close (QUEUED = SENT + FAILED + DROPPED with one notifier that takes
 * everything, and the notifier saw SENT + FAILED calls), and nothing may
 * leak (ASan's leak checker in the sanitizer builds). */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <time.h>

#define SEC INT64_C(1000000000)
#define T0 (INT64_C(1700000100) * SEC)
#define NWORKERS 4
#define NTICKS 2000
/* Upper bound on each recorder's operations, so a slow (sanitized) build
 * on few cores keeps its run time bounded. */
#define MAX_OPS 2000000

static const char *const WORKER[NWORKERS][1] = {{"w0"}, {"w1"}, {"w2"}, {"w3"}};

typedef struct shared {
    pm_registry_t *reg;
    pm_alert_engine_t *e;
    pm_family_t *work, *lat, *level;
    atomic_int stop;
} shared_t;

typedef struct recorder {
    shared_t *sh;
    int k;
    /* results, read after join */
    uint64_t incs, observations;
    double last_level;
    int ok;
} recorder_t;

static void *recorder_thread(void *arg)
{
    recorder_t *r = arg;
    pm_counter_t *c = NULL;
    pm_histogram_t *h = NULL;
    pm_gauge_t *g = NULL;
    r->ok = pm_counter_get(r->sh->work, WORKER[r->k], 1, &c) == PM_OK &&
            pm_histogram_get(r->sh->lat, WORKER[r->k], 1, &h) == PM_OK &&
            pm_gauge_get(r->sh->level, WORKER[r->k], 1, &g) == PM_OK;
    if (!r->ok) goto done;
    for (uint64_t i = 0; i < MAX_OPS && !atomic_load(&r->sh->stop); i++) {
        pm_counter_inc(c);
        r->incs++;
        /* 0.01 .. 1.00: the p95 rule sees values past both thresholds. */
        pm_histogram_observe(h, (double)(i % 100 + 1) / 100.0);
        r->observations++;
        /* A level that crosses the rules' thresholds back and forth. */
        r->last_level = (double)((i * 7 + (uint64_t)r->k * 13) % 100);
        pm_gauge_set(g, r->last_level);
        if (i % 256 == 255) sched_yield(); /* leave the ticking thread some CPU */
    }
done:
    pm_counter_release(c);
    pm_histogram_release(h);
    pm_gauge_release(g);
    return NULL;
}

typedef struct churn {
    shared_t *sh;
    atomic_ullong rounds; /* read by the main thread to pace itself */
    uint64_t errors;
} churn_t;

static const char loaded_rules[] = "alert LoadedA {\n  expr: level > 20\n  for: 15s\n}\n"
                                   "alert LoadedB {\n  expr: sum(rate(work[1m])) > 0\n"
                                   "  severity: info\n}\n";

/* Reads every field of every event of a list (TSan sees any unsynchronised
 * write to them). */
static int read_list(const pm_alert_list_t *l)
{
    int bad = 0;
    for (size_t i = 0; i < pm_alert_list_count(l); i++) {
        const pm_alert_event_t *ev = pm_alert_list_get(l, i);
        if (!ev || !*pm_alert_event_rule(ev)) bad++;
        (void)pm_alert_event_state(ev);
        (void)pm_alert_event_value(ev);
        (void)pm_alert_event_fingerprint(ev);
        for (size_t k = 0; k < pm_alert_event_label_count(ev); k++)
            if (!pm_alert_event_label_name(ev, k) || !pm_alert_event_label_value(ev, k)) bad++;
        for (size_t k = 0; k < pm_alert_event_annotation_count(ev); k++)
            if (!pm_alert_event_annotation_value(ev, k)) bad++;
    }
    return bad;
}

static void *rule_churn_thread(void *arg)
{
    churn_t *c = arg;
    pm_alert_engine_t *e = c->sh->e;
    while (!atomic_load(&c->sh->stop)) {
        uint64_t k = atomic_fetch_add(&c->rounds, 1);
        pm_alert_rule_t *r = NULL;
        if (pm_alert_rule_new("Churn", "level > 10", &r, NULL) != PM_OK) {
            c->errors++;
            continue;
        }
        pm_alert_rule_set_label(r, "team", "churn");
        pm_alert_rule_set_annotation(r, "summary", "{{ $labels.worker }} at {{ $value }}", NULL);
        if (pm_alert_engine_add_rule(e, r) != PM_OK) c->errors++;
        pm_alert_rule_free(r);
        if (pm_alert_engine_enable_rule(e, "Churn", 0) != PM_OK) c->errors++;
        if (pm_alert_engine_enable_rule(e, "Churn", 1) != PM_OK) c->errors++;
        /* Disable and re-enable a rule the main thread's ticks evaluate. */
        if (pm_alert_engine_enable_rule(e, "LevelHigh", (int)(k % 2)) != PM_OK) c->errors++;

        pm_alert_list_t *l = NULL;
        if (pm_alert_engine_active(e, &l) != PM_OK) c->errors++;
        c->errors += (uint64_t)read_list(l);
        pm_alert_list_free(l);
        if (pm_alert_engine_history(e, &l) != PM_OK) c->errors++;
        c->errors += (uint64_t)read_list(l);
        pm_alert_list_free(l);

        double h = pm_alert_engine_health(e);
        if (!(h >= 0 && h <= 100)) c->errors++;
        (void)pm_alert_engine_stat(e, PM_ALERT_STAT_INSTANCES);
        (void)pm_alert_engine_rule_count(e);

        if (pm_alert_engine_remove_rule(e, "Churn") != PM_OK) c->errors++;
        if (k % 4 == 0) {
            if (pm_alert_engine_load_string(e, loaded_rules, sizeof loaded_rules - 1, NULL) !=
                PM_OK)
                c->errors++;
            sched_yield();
            if (pm_alert_engine_remove_rule(e, "LoadedA") != PM_OK ||
                pm_alert_engine_remove_rule(e, "LoadedB") != PM_OK)
                c->errors++;
        }
        sched_yield();
    }
    pm_alert_engine_enable_rule(e, "LevelHigh", 1);
    return NULL;
}

typedef struct counting {
    atomic_ullong calls, firing, resolved;
    atomic_int released;
} counting_t;

static int counting_notify(const pm_alert_event_t *ev, void *user)
{
    counting_t *c = user;
    unsigned long long n = atomic_fetch_add(&c->calls, 1);
    if (pm_alert_event_state(ev) == PM_ALERT_RESOLVED) atomic_fetch_add(&c->resolved, 1);
    if (pm_alert_event_state(ev) == PM_ALERT_FIRING) atomic_fetch_add(&c->firing, 1);
    return n % 5 == 4; /* every fifth call fails */
}

static void counting_release(void *user) { atomic_fetch_add(&((counting_t *)user)->released, 1); }

static pm_family_t *family(pm_registry_t *r, pm_type_t t, const char *name)
{
    static const char *const lab[] = {"worker"};
    pm_family_opts_t *fo = NULL;
    pm_family_t *f = NULL;
    if (pm_family_opts_new(&fo) != PM_OK) return NULL;
    pm_family_opts_set_labels(fo, lab, 1);
    pm_family_new(r, t, name, "Stress family.", fo, &f);
    pm_family_opts_free(fo);
    return f;
}

static pm_alert_rule_t *rule(const char *name, const char *expr)
{
    pm_alert_rule_t *r = NULL;
    pm_parse_error_t *err = NULL;
    if (pm_alert_rule_new(name, expr, &r, &err) != PM_OK)
        fprintf(stderr, "  rule %s: %s\n", name, pm_parse_error_message(err));
    pm_parse_error_free(err);
    return r;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

static uint64_t stat_of(pm_alert_engine_t *e, pm_alert_stat_t s)
{
    return pm_alert_engine_stat(e, s);
}

TEST(test_stress_ticks_recorders_churn)
{
    static shared_t sh;
    memset(&sh, 0, sizeof sh);
    REQUIRE(pm_registry_new(NULL, &sh.reg) == PM_OK);
    sh.work = family(sh.reg, PM_TYPE_COUNTER, "work");
    sh.lat = family(sh.reg, PM_TYPE_HISTOGRAM, "lat");
    sh.level = family(sh.reg, PM_TYPE_GAUGE, "level");
    REQUIRE(sh.work && sh.lat && sh.level);

    pm_alert_engine_opts_t *o = NULL;
    REQUIRE(pm_alert_engine_opts_new(&o) == PM_OK);
    CHECK_OK(pm_alert_engine_opts_set_interval(o, 15));
    CHECK_OK(pm_alert_engine_opts_set_queue(o, 64)); /* small: drops are likely */
    CHECK_OK(pm_alert_engine_opts_set_history(o, 128));
    CHECK_OK(pm_alert_engine_new(sh.reg, o, &sh.e)); /* with its dispatch thread */
    pm_alert_engine_opts_free(o);
    REQUIRE(sh.e);

    static counting_t cnt;
    memset(&cnt, 0, sizeof cnt);
    CHECK_OK(
        pm_alert_engine_add_notifier(sh.e, "count", NULL, counting_notify, &cnt, counting_release));

    pm_alert_rule_t *r;
    REQUIRE((r = rule("WorkRate", "rate(work[1m]) > 0")));
    CHECK_OK(pm_alert_engine_add_rule(sh.e, r));
    pm_alert_rule_free(r);
    REQUIRE((r = rule("LatP95", "p95(lat[1m])")));
    CHECK_OK(pm_alert_rule_set_thresholds(r, ">", 0.5, 0.9));
    CHECK_OK(pm_alert_rule_set_resolve(r, "< 0.3", NULL));
    CHECK_OK(
        pm_alert_rule_set_annotation(r, "summary", "p95 {{ $value | humanizeDuration }}", NULL));
    CHECK_OK(pm_alert_engine_add_rule(sh.e, r));
    pm_alert_rule_free(r);
    REQUIRE((r = rule("LevelHigh", "level > 50")));
    CHECK_OK(pm_alert_rule_set_for(r, 30));
    CHECK_OK(pm_alert_rule_set_keep_firing_for(r, 15));
    CHECK_OK(pm_alert_rule_set_repeat_interval(r, 30));
    CHECK_OK(pm_alert_engine_add_rule(sh.e, r));
    pm_alert_rule_free(r);
    REQUIRE((r = rule("AnyHigh", "max by (worker) (level) > 90 or absent(level)")));
    CHECK_OK(pm_alert_rule_set_severity(r, PM_SEVERITY_CRITICAL));
    CHECK_OK(pm_alert_rule_set_nodata(r, PM_NODATA_ALERTING));
    CHECK_OK(pm_alert_engine_add_rule(sh.e, r));
    pm_alert_rule_free(r);

    static recorder_t rec[NWORKERS];
    pthread_t rt[NWORKERS], ct;
    static churn_t churn;
    memset(rec, 0, sizeof rec);
    memset(&churn, 0, sizeof churn);
    churn.sh = &sh;
    for (int k = 0; k < NWORKERS; k++) {
        rec[k].sh = &sh;
        rec[k].k = k;
        REQUIRE(pthread_create(&rt[k], NULL, recorder_thread, &rec[k]) == 0);
    }
    REQUIRE(pthread_create(&ct, NULL, rule_churn_thread, &churn) == 0);

    /* The ticks are paced so that rule changes interleave with them: one
     * churn round per 10 ticks at least (the churn thread never blocks for
     * long, so this wait ends). */
    int tick_errors = 0;
    for (int i = 0; i < NTICKS; i++) {
        while (atomic_load(&churn.rounds) < (unsigned long long)i / 10) sched_yield();
        pm_status_t st = pm_alert_engine_tick(sh.e, T0 + (int64_t)i * 15 * SEC);
        if (st != PM_OK && tick_errors++ == 0) TH_FAIL_("tick %d: %s", i, pm_status_name(st));
        double h = pm_alert_engine_health(sh.e);
        if (!(h >= 0 && h <= 100)) TH_FAIL_("tick %d: health %g", i, h);
    }
    atomic_store(&sh.stop, 1);
    for (int k = 0; k < NWORKERS; k++) pthread_join(rt[k], NULL);
    pthread_join(ct, NULL);
    CHECK_EQ_INT(tick_errors, 0);
    CHECK_EQ_U64(churn.errors, 0);
    CHECK(atomic_load(&churn.rounds) >= NTICKS / 10 - 1);
    CHECK_EQ_U64(stat_of(sh.e, PM_ALERT_STAT_EVALUATIONS), NTICKS);
    CHECK_EQ_U64(stat_of(sh.e, PM_ALERT_STAT_RULE_FAILURES), 0);
    CHECK(stat_of(sh.e, PM_ALERT_STAT_TRANSITIONS) > 0);
    CHECK_EQ_U64(pm_alert_engine_rule_count(sh.e), 4);

    /* Recorded totals are exact. */
    uint64_t total_incs = 0;
    for (int k = 0; k < NWORKERS; k++) {
        CHECK(rec[k].ok);
        total_incs += rec[k].incs;
        pm_counter_t *c = NULL;
        CHECK_OK(pm_counter_get(sh.work, WORKER[k], 1, &c));
        CHECK_EQ_DBL(pm_counter_value(c), (double)rec[k].incs);
        pm_counter_release(c);
    }
    CHECK(total_incs > 0);
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(sh.reg, &s));
    int seen = 0;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        const char *name = pm_snap_family_name(f);
        int which = !strcmp(name, "work")    ? 1
                    : !strcmp(name, "lat")   ? 2
                    : !strcmp(name, "level") ? 3
                                             : 0;
        if (!which) continue;
        for (size_t j = 0; j < pm_snap_family_series_count(f); j++) {
            const pm_snap_series_t *se = pm_snap_family_series(f, j);
            const char *w = pm_snap_series_label_value(se, 0);
            int k = w && w[0] == 'w' ? w[1] - '0' : -1;
            if (k < 0 || k >= NWORKERS) {
                TH_FAIL_("%s: unexpected series %s", name, w ? w : "(null)");
                continue;
            }
            seen++;
            if (which == 1) CHECK_EQ_DBL(pm_snap_series_value(se), (double)rec[k].incs);
            if (which == 2) CHECK_EQ_U64(pm_snap_series_count(se), rec[k].observations);
            if (which == 3) CHECK_EQ_DBL(pm_snap_series_value(se), rec[k].last_level);
        }
    }
    CHECK_EQ_INT(seen, 3 * NWORKERS);
    pm_snapshot_release(s);

    /* Notification accounting: once the dispatch thread has emptied the
     * queue, every queued event was either delivered to the one notifier
     * (a sent or failed call) or dropped from the full queue. */
    uint64_t q = 0, done = 0;
    for (int i = 0; i < 4000; i++) {
        q = stat_of(sh.e, PM_ALERT_STAT_NOTIFY_QUEUED);
        done = stat_of(sh.e, PM_ALERT_STAT_NOTIFY_SENT) +
               stat_of(sh.e, PM_ALERT_STAT_NOTIFY_FAILED) +
               stat_of(sh.e, PM_ALERT_STAT_NOTIFY_DROPPED);
        if (done == q) break;
        sleep_ms(5);
    }
    CHECK_EQ_U64(done, q);
    CHECK(q > 0);
    uint64_t sent = stat_of(sh.e, PM_ALERT_STAT_NOTIFY_SENT),
             failed = stat_of(sh.e, PM_ALERT_STAT_NOTIFY_FAILED);
    CHECK_EQ_U64(atomic_load(&cnt.calls), sent + failed);
    /* Every fifth call failed. */
    CHECK_EQ_U64(failed, atomic_load(&cnt.calls) / 5);
    CHECK(atomic_load(&cnt.firing) > 0);

    CHECK_EQ_INT(atomic_load(&cnt.released), 0);
    pm_alert_engine_free(sh.e);
    CHECK_EQ_INT(atomic_load(&cnt.released), 1);
    /* The engine's ALERTS series went with it. */
    CHECK_OK(pm_snapshot_new(sh.reg, &s));
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *f = pm_snapshot_family(s, i);
        if (!strcmp(pm_snap_family_name(f), "ALERTS"))
            CHECK_EQ_U64(pm_snap_family_series_count(f), 0);
    }
    pm_snapshot_release(s);
    pm_registry_free(sh.reg);
    printf("  %d ticks, %llu recorded increments, %llu churn rounds, %llu queued, %llu sent, "
           "%llu failed, %llu dropped\n",
           NTICKS, (unsigned long long)total_incs, (unsigned long long)atomic_load(&churn.rounds),
           (unsigned long long)q, (unsigned long long)sent, (unsigned long long)failed,
           (unsigned long long)(q - sent - failed));
}

/* Background evaluation thread, host ticks and dispatch at once: the host
 * may tick an engine whose thread also ticks (a `now` behind the thread's
 * last one is refused with PM_ERANGE, never a crash or a race). */
static void *host_ticker_thread(void *arg)
{
    shared_t *sh = arg;
    struct timespec ts;
    while (!atomic_load(&sh->stop)) {
        clock_gettime(CLOCK_REALTIME, &ts);
        pm_status_t st = pm_alert_engine_tick(sh->e, (int64_t)ts.tv_sec * SEC + ts.tv_nsec);
        if (st != PM_OK && st != PM_ERANGE) return (void *)1;
        sched_yield();
    }
    return NULL;
}

TEST(test_stress_background_thread)
{
    static shared_t sh;
    memset(&sh, 0, sizeof sh);
    REQUIRE(pm_registry_new(NULL, &sh.reg) == PM_OK);
    sh.work = family(sh.reg, PM_TYPE_COUNTER, "work");
    sh.lat = family(sh.reg, PM_TYPE_HISTOGRAM, "lat");
    sh.level = family(sh.reg, PM_TYPE_GAUGE, "level");
    REQUIRE(sh.work && sh.lat && sh.level);
    pm_alert_engine_opts_t *o = NULL;
    REQUIRE(pm_alert_engine_opts_new(&o) == PM_OK);
    CHECK_OK(pm_alert_engine_opts_set_interval(o, 0.002));
    CHECK_OK(pm_alert_engine_new(sh.reg, o, &sh.e));
    pm_alert_engine_opts_free(o);
    REQUIRE(sh.e);
    static counting_t cnt;
    memset(&cnt, 0, sizeof cnt);
    CHECK_OK(
        pm_alert_engine_add_notifier(sh.e, "count", NULL, counting_notify, &cnt, counting_release));
    pm_alert_rule_t *r = rule("LevelHigh", "level > 50");
    REQUIRE(r);
    CHECK_OK(pm_alert_engine_add_rule(sh.e, r));
    pm_alert_rule_free(r);

    static recorder_t rec[2];
    memset(rec, 0, sizeof rec);
    pthread_t rt[2], ht;
    for (int k = 0; k < 2; k++) {
        rec[k].sh = &sh;
        rec[k].k = k;
        REQUIRE(pthread_create(&rt[k], NULL, recorder_thread, &rec[k]) == 0);
    }
    CHECK_OK(pm_alert_engine_start(sh.e));
    REQUIRE(pthread_create(&ht, NULL, host_ticker_thread, &sh) == 0);
    for (int i = 0; i < 4000 && stat_of(sh.e, PM_ALERT_STAT_EVALUATIONS) < 50; i++) sleep_ms(5);
    CHECK(stat_of(sh.e, PM_ALERT_STAT_EVALUATIONS) >= 50);
    atomic_store(&sh.stop, 1);
    void *hres = NULL;
    pthread_join(ht, &hres);
    CHECK(hres == NULL);
    for (int k = 0; k < 2; k++) pthread_join(rt[k], NULL);
    CHECK_OK(pm_alert_engine_stop(sh.e));
    uint64_t evals = stat_of(sh.e, PM_ALERT_STAT_EVALUATIONS);
    sleep_ms(20);
    CHECK_EQ_U64(stat_of(sh.e, PM_ALERT_STAT_EVALUATIONS), evals);
    for (int k = 0; k < 2; k++) {
        pm_counter_t *c = NULL;
        CHECK_OK(pm_counter_get(sh.work, WORKER[k], 1, &c));
        CHECK_EQ_DBL(pm_counter_value(c), (double)rec[k].incs);
        pm_counter_release(c);
    }
    /* Freed with the dispatch thread possibly still delivering: it delivers
     * what is queued first, then releases the notifier. */
    pm_alert_engine_free(sh.e);
    CHECK_EQ_INT(atomic_load(&cnt.released), 1);
    pm_registry_free(sh.reg);
}

TEST_MAIN(TH_CASE(test_stress_ticks_recorders_churn), TH_CASE(test_stress_background_thread))
