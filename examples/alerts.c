/* Alerting: rules over a registry, evaluated with a fake clock.
 *
 * A scheduler records its finished tasks (a counter by status), their
 * durations (a histogram) and its worker's memory (a gauge). The rules in
 * examples/alerts.rules watch them. The program plays 4.5 minutes of scripted
 * activity, one evaluation per simulated second, and never sleeps:
 *
 *   0-60 s    healthy: 10 tasks a second, no errors, memory at 60%
 *   60-150 s  a dependency fails: 3 tasks in 10 fail, slowly
 *   90-150 s  memory climbs to 90% (warning), then 97% (critical)
 *   150 s on  errors stop; memory falls to 82% (still alerting: it must go
 *             below 80%), then to 70% at 200 s
 *
 * Notifications are printed as they are delivered, then the history, and the
 * Alertmanager body for the error-rate alert. It exits 1 if the alerts did
 * not fire and resolve as expected.
 *
 *   build/examples/alerts examples/alerts.rules
 *   build/examples/alerts                         (a built-in copy of the rules) */
#include <perfmetrics/perfmetrics.h>

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define TRY(call)                                                                                  \
    do {                                                                                           \
        pm_status_t st_ = (call);                                                                  \
        if (st_ != PM_OK) {                                                                        \
            fprintf(stderr, "%s: %s\n", #call, pm_strerror(st_));                                  \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* Used when no rule file is given: examples/alerts.rules without comments. */
static const char builtin_rules[] =
    "alert HighErrorRate {\n"
    "  expr: sum(rate(tasks_total{status=\"error\"}[30s])) / sum(rate(tasks_total[30s])) > 0.05\n"
    "  for: 20s\n  repeat: 1m\n  severity: critical\n  label component: \"scheduler\"\n"
    "  annotation summary: \"{{ $value | humanizePercentage }} of tasks failed over 30s\"\n}\n"
    "alert TaskLatencyHigh {\n  expr: p95(task_duration_seconds[1m]) > 1\n  for: 10s\n"
    "  severity: info\n  label component: \"scheduler\"\n"
    "  annotation summary: \"p95 task duration is {{ $value | humanizeDuration }}\"\n}\n"
    "alert WorkerMemoryHigh {\n  expr: worker_memory_bytes / 1e9\n  warning: > 0.85\n"
    "  critical: > 0.95\n  resolve: < 0.80\n  for: 10s\n  label component: \"worker\"\n"
    "  annotation summary: \"worker memory at {{ $value | humanizePercentage }} of its limit\"\n"
    "}\n";

/* The engine never reads a clock when driven by ticks: `now` is ours, Unix
 * time in nanoseconds. The script starts at 2026-11-23T10:00:00Z. */
#define SEC INT64_C(1000000000)
#define T0 (INT64_C(1795428000) * SEC)
#define END 270 /* seconds */

/* Seconds since the start of the script, for printing. */
static double rel(double unix_seconds) { return unix_seconds - (double)(T0 / SEC); }

struct scheduler {
    pm_counter_t *ok, *failed;
    pm_histogram_t *duration;
    pm_gauge_t *memory;
};

/* The work done during second `s` of the script. */
static void play_second(const struct scheduler *w, int s)
{
    int spike = s >= 60 && s < 150, nok = spike ? 7 : 10, nfail = spike ? 3 : 0;
    pm_counter_add_u64(w->ok, (uint64_t)nok);
    pm_counter_add_u64(w->failed, (uint64_t)nfail);
    for (int i = 0; i < nok; i++) pm_histogram_observe(w->duration, 0.2 + 0.02 * i);
    for (int i = 0; i < nfail; i++) pm_histogram_observe(w->duration, 2.5); /* timeouts */
    double used = s < 90 ? 0.60 : s < 120 ? 0.90 : s < 150 ? 0.97 : s < 200 ? 0.82 : 0.70;
    pm_gauge_set(w->memory, used * 1e9);
}

/* A notifier of our own: the "pager", which only sees critical alerts of the
 * scheduler (see its filter in main). It runs inside pm_alert_engine_deliver,
 * on this thread, so it needs no lock. Returning 0 means "delivered". */
struct pager {
    int fired, repeated, resolved;
};

static int page(const pm_alert_event_t *ev, void *user)
{
    struct pager *p = user;
    pm_alert_state_t state = pm_alert_event_state(ev);
    /* firing -> firing is a repeat (this rule's severity is fixed, so it is
     * not a severity change) */
    int repeat = state == PM_ALERT_FIRING && pm_alert_event_prev_state(ev) == PM_ALERT_FIRING;
    if (repeat)
        p->repeated++;
    else if (state == PM_ALERT_FIRING)
        p->fired++;
    else if (state == PM_ALERT_RESOLVED)
        p->resolved++;
    printf("  pager <- %s %s%s\n", pm_alert_event_rule(ev), pm_alert_state_name(state),
           repeat ? " (repeat)" : "");
    return 0;
}

/* One transition of the history: when, which rule, from which state to which. */
static void print_transition(const pm_alert_event_t *ev)
{
    printf("  t=%3.0fs  %-16s %-8s -> %-8s %-8s value=%.4g\n", rel(pm_alert_event_time(ev)),
           pm_alert_event_rule(ev), pm_alert_state_name(pm_alert_event_prev_state(ev)),
           pm_alert_state_name(pm_alert_event_state(ev)),
           pm_severity_name(pm_alert_event_severity(ev)), pm_alert_event_value(ev));
}

/* Whether rule `rule` has an active (pending or firing) instance now. */
static int is_active(pm_alert_engine_t *e, const char *rule)
{
    pm_alert_list_t *l;
    int found = 0;
    if (pm_alert_engine_active(e, &l) != PM_OK) return 0;
    for (size_t i = 0; i < pm_alert_list_count(l); i++)
        if (!strcmp(pm_alert_event_rule(pm_alert_list_get(l, i)), rule)) found = 1;
    pm_alert_list_free(l);
    return found;
}

int main(int argc, char **argv)
{
    /* 1. The metrics, in a registry of their own. */
    pm_registry_t *reg;
    TRY(pm_registry_new(NULL, &reg));
    static const char *const status[] = {"status"}, *const ok[] = {"ok"}, *const err[] = {"error"};
    pm_family_opts_t *fo;
    pm_family_t *tasks; /* selected in rules as tasks_total, its Prometheus name */
    TRY(pm_family_opts_new(&fo));
    TRY(pm_family_opts_set_labels(fo, status, 1));
    TRY(pm_family_new(reg, PM_TYPE_COUNTER, "tasks", "Tasks finished.", fo, &tasks));
    pm_family_opts_free(fo);
    struct scheduler w;
    /* Create both series up front: a rate needs two samples, so an error
     * series born with the first failure would hide that failure. */
    TRY(pm_counter_get(tasks, ok, 1, &w.ok));
    TRY(pm_counter_get(tasks, err, 1, &w.failed));
    TRY(pm_histogram_new(reg, "task_duration_seconds", "Task durations.", &w.duration));
    TRY(pm_gauge_new(reg, "worker_memory_bytes", "Worker resident memory.", &w.memory));

    /* 2. The engine: evaluated by our ticks, one per (simulated) second, and
     * notifications delivered by us (no threads, so the run is repeatable). */
    pm_alert_engine_opts_t *eo;
    pm_alert_engine_t *e;
    TRY(pm_alert_engine_opts_new(&eo));
    TRY(pm_alert_engine_opts_set_interval(eo, 1.0));
    TRY(pm_alert_engine_opts_set_dispatch_thread(eo, 0));
    TRY(pm_alert_engine_new(reg, eo, &e));
    pm_alert_engine_opts_free(eo);

    pm_parse_error_t *perr = NULL;
    pm_status_t st = argc > 1 ? pm_alert_engine_load_file(e, argv[1], &perr)
                              : pm_alert_engine_load_string(e, builtin_rules,
                                                            sizeof builtin_rules - 1, &perr);
    if (st != PM_OK) { /* e.g. "line 3, column 14: expected ')' but found ','" */
        fprintf(stderr, "%s: %s\n", argc > 1 ? argv[1] : "built-in rules",
                perr ? pm_parse_error_message(perr) : pm_strerror(st));
        pm_parse_error_free(perr);
        return 1;
    }
    printf("%zu rules loaded from %s\n", pm_alert_engine_rule_count(e),
           argc > 1 ? argv[1] : "the built-in copy");

    /* 3. Notifiers. A log line on stdout for warning and critical alerts... */
    pm_alert_filter_t *log_filter, *pager_filter;
    TRY(pm_alert_filter_new(&log_filter));
    TRY(pm_alert_filter_set_min_severity(log_filter, PM_SEVERITY_WARNING));
    TRY(pm_alert_engine_add_log_notifier(e, "log", log_filter, stdout));
    /* ...and the pager for critical alerts of the scheduler only. */
    struct pager pager = {0, 0, 0};
    TRY(pm_alert_filter_new(&pager_filter));
    TRY(pm_alert_filter_set_min_severity(pager_filter, PM_SEVERITY_CRITICAL));
    TRY(pm_alert_filter_add_matcher(pager_filter, "component", "=", "scheduler"));
    TRY(pm_alert_engine_add_notifier(e, "pager", pager_filter, page, &pager, NULL));
    pm_alert_filter_free(pager_filter); /* the engine keeps a copy */

    /* 4. The script: record a second's work, evaluate, deliver. */
    int memory_held = 0; /* WorkerMemoryHigh still active at 82%? (hysteresis) */
    double worst_health = 100;
    for (int s = 0; s <= END; s++) {
        play_second(&w, s);
        TRY(pm_alert_engine_tick(e, T0 + s * SEC));
        TRY(pm_alert_engine_deliver(e, 0, NULL));
        double health = pm_alert_engine_health(e);
        if (health < worst_health) worst_health = health;
        if (s == 199) memory_held = is_active(e, "WorkerMemoryHigh");
        if (s == 140) { /* the worst moment of the script */
            pm_alert_list_t *active;
            TRY(pm_alert_engine_active(e, &active));
            printf("\nactive alerts at t=140s (health score %.0f):\n", health);
            for (size_t i = 0; i < pm_alert_list_count(active); i++) {
                const pm_alert_event_t *ev = pm_alert_list_get(active, i);
                printf("  %-16s %-8s %-8s value=%-6.4g active since t=%.0fs\n",
                       pm_alert_event_rule(ev), pm_alert_state_name(pm_alert_event_state(ev)),
                       pm_severity_name(pm_alert_event_severity(ev)), pm_alert_event_value(ev),
                       rel(pm_alert_event_active_at(ev)));
            }
            pm_alert_list_free(active);
            printf("\n");
        }
    }

    /* 5. What happened: the history (transitions, oldest first). The firing
     * and resolved events of HighErrorRate also go to Alertmanager's format. */
    pm_alert_list_t *hist;
    TRY(pm_alert_engine_history(e, &hist));
    printf("\nhistory:\n");
    const pm_alert_event_t *for_am[32];
    size_t n_am = 0;
    double err_pending = -1, err_firing = -1, err_resolved = -1;
    int mem_critical = 0, mem_resolved = 0, info_logged = 0;
    for (size_t i = 0; i < pm_alert_list_count(hist); i++) {
        const pm_alert_event_t *ev = pm_alert_list_get(hist, i);
        const char *rule = pm_alert_event_rule(ev);
        pm_alert_state_t state = pm_alert_event_state(ev);
        double t = rel(pm_alert_event_time(ev));
        print_transition(ev);
        if (!strcmp(rule, "HighErrorRate")) {
            if (state == PM_ALERT_PENDING && err_pending < 0) err_pending = t;
            if (state == PM_ALERT_FIRING && err_firing < 0) err_firing = t;
            if (state == PM_ALERT_RESOLVED && err_resolved < 0) err_resolved = t;
            if ((state == PM_ALERT_FIRING || state == PM_ALERT_RESOLVED) && n_am < 32)
                for_am[n_am++] = ev;
        } else if (!strcmp(rule, "WorkerMemoryHigh")) {
            if (pm_alert_event_severity(ev) == PM_SEVERITY_CRITICAL) mem_critical = 1;
            if (state == PM_ALERT_RESOLVED) mem_resolved = 1;
        } else if (!strcmp(rule, "TaskLatencyHigh")) {
            info_logged |= pm_alert_filter_match(log_filter, ev); /* an info alert: never */
        }
    }

    pm_buf_t *body;
    TRY(pm_buf_new(&body));
    TRY(pm_alert_format_alertmanager(for_am, n_am, "http://scheduler.local/alerts", body));
    printf("\nPOST /api/v2/alerts body for HighErrorRate:\n%s\n", pm_buf_data(body));
    pm_buf_free(body);
    pm_alert_list_free(hist);

    double final_health = pm_alert_engine_health(e);
    int still_active = is_active(e, "HighErrorRate") || is_active(e, "WorkerMemoryHigh");
    printf("\nhealth score: worst %.0f, now %.0f; %llu evaluations, %llu notifications sent, "
           "%llu windowed series in %llu bytes\n",
           worst_health, final_health,
           (unsigned long long)pm_alert_engine_stat(e, PM_ALERT_STAT_EVALUATIONS),
           (unsigned long long)pm_alert_engine_stat(e, PM_ALERT_STAT_NOTIFY_SENT),
           (unsigned long long)pm_alert_engine_stat(e, PM_ALERT_STAT_SERIES_WINDOWED),
           (unsigned long long)pm_alert_engine_stat(e, PM_ALERT_STAT_WINDOW_BYTES));

    /* 6. Check the story: the error alert waited out its `for`, fired during
     * the spike, paged once, reminded, and resolved after it; memory went
     * critical and held until it fell below 80%; everything is calm at the end. */
    int ok_run = err_pending >= 60 && err_firing >= err_pending + 20 && err_resolved > 150 &&
                 pager.fired == 1 && pager.repeated >= 1 && pager.resolved == 1 && mem_critical &&
                 memory_held && mem_resolved && !info_logged && !still_active &&
                 worst_health < 100 && final_health == 100;
    printf("%s\n", ok_run ? "alerts: fired and resolved as expected"
                          : "alerts: UNEXPECTED outcome (see above)");

    pm_alert_filter_free(log_filter);
    pm_alert_engine_free(e); /* before the registry it reads */
    pm_registry_free(reg);
    return ok_run ? 0 : 1;
}
