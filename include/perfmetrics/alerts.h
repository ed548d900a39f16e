/* libperfmetrics — the alert-rule engine.
 *
 * An engine reads one registry. At every evaluation (a host tick with an
 * explicit `now`, or a background thread at a fixed interval) it takes a
 * snapshot, feeds the windows its rules reference, evaluates every enabled
 * rule's expression to a set of (label set, value) elements, and moves one
 * alert instance per label set through
 *
 *     inactive -> pending -> firing -> resolved (-> pending again ...)
 *
 * honouring `for`, `keep_firing_for`, the repeat (cooldown) interval, the
 * optional resolve condition (hysteresis) and the rule's no-data policy.
 * Transitions go to a bounded history and, through per-notifier filters and a
 * bounded queue, to notifiers that run off the evaluation path.
 *
 * Expressions are a PromQL subset, documented with the rule-file grammar in
 * doc/alerting.md:
 *     sum by (service) (rate(requests_total{status=~"5.."}[5m]))
 *       / sum by (service) (rate(requests_total[5m])) > 0.05
 *     p95(request_seconds[5m]) > 10
 *     zscore(queue_depth[1h]) > 3      slope(mem_bytes[15m]) > 0
 *     predict_linear(disk_used_bytes[1h], 3600) > 1e12
 *
 * Time: every `now` is Unix time in nanoseconds. Durations given to setters
 * are seconds (double). The engine never reads a clock when driven by
 * pm_alert_engine_tick, so tests drive it with a fake clock and never sleep.
 *
 * Thread-safety: an engine may be used from any thread; evaluation, rule
 * changes and queries are serialised by the engine's lock. Recording threads
 * are never blocked by evaluation (it reads snapshots only). Notifier
 * callbacks run on the dispatch thread (or inside pm_alert_engine_deliver)
 * and must not call pm_alert_engine_free on their own engine. */
#ifndef PERFMETRICS_ALERTS_H
#define PERFMETRICS_ALERTS_H

#include <perfmetrics/base.h>
#include <perfmetrics/format.h>
#include <perfmetrics/metrics.h>

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_alert_engine pm_alert_engine_t;
typedef struct pm_alert_engine_opts pm_alert_engine_opts_t;
typedef struct pm_alert_rule pm_alert_rule_t;
typedef struct pm_alert_event pm_alert_event_t;
typedef struct pm_alert_list pm_alert_list_t;
typedef struct pm_alert_filter pm_alert_filter_t;
typedef struct pm_parse_error pm_parse_error_t;

/* Severities, in increasing order (filters compare them). */
typedef enum pm_severity {
    PM_SEVERITY_INFO = 1,
    PM_SEVERITY_WARNING = 2,
    PM_SEVERITY_CRITICAL = 3
} pm_severity_t;

/* Alert instance states. A firing instance ends with a RESOLVED event
 * (recorded in the history and notified; it carries the last value seen while
 * active); a pending one whose condition stops ends with an INACTIVE event
 * (history only: pending transitions are never notified). An instance whose
 * condition comes back later starts again at PENDING (or FIRING when `for`
 * is 0). */
typedef enum pm_alert_state {
    PM_ALERT_INACTIVE = 0,
    PM_ALERT_PENDING = 1,
    PM_ALERT_FIRING = 2,
    PM_ALERT_RESOLVED = 3
} pm_alert_state_t;

/* What a rule does at an evaluation where its expression could not be
 * computed for any series (the family is absent, has no series, or every
 * window is still short of samples):
 *  - PM_NODATA_OK:       as if the condition were false: instances resolve
 *                        (after keep_firing_for). The default.
 *  - PM_NODATA_KEEP:     instances keep their state and timers do not
 *                        advance toward firing or resolving (active_at
 *                        stays; `for` counts only evaluations with data).
 *  - PM_NODATA_ALERTING: one instance labelled alertstate_reason="nodata"
 *                        (plus the rule's labels) goes through pending and
 *                        firing as if the condition held, with value NaN
 *                        (with thresholds: at the lower level set).
 * A single series that drops out of a non-empty result always counts as
 * "condition false" for its own instance. */
typedef enum pm_nodata {
    PM_NODATA_OK = 0,
    PM_NODATA_KEEP = 1,
    PM_NODATA_ALERTING = 2
} pm_nodata_t;

/* "info", "warning", "critical"; "unknown" otherwise. Never NULL. */
PM_API const char *pm_severity_name(pm_severity_t s);
/* "inactive", "pending", "firing", "resolved"; "unknown" otherwise. */
PM_API const char *pm_alert_state_name(pm_alert_state_t s);

/* ---------------------------------------------------------------- parse errors */

/* Where a rule file, an expression or a template failed to parse. Returned
 * through the optional `pm_parse_error_t **err` argument of the functions
 * below (set to NULL on success, left NULL when the failure is not a parse
 * error); release with pm_parse_error_free. Lines and columns count from 1;
 * columns count bytes. Accessors are NULL-safe (0 or ""). */
PM_API unsigned pm_parse_error_line(const pm_parse_error_t *e);
PM_API unsigned pm_parse_error_column(const pm_parse_error_t *e);
/* Byte offset from the start of the parsed text. */
PM_API size_t pm_parse_error_offset(const pm_parse_error_t *e);
/* What the parser expected at that position, e.g. "')'", "a duration",
 * "a label matcher"; "" when the error is not about a missing token. */
PM_API const char *pm_parse_error_expected(const pm_parse_error_t *e);
/* The whole message: "line 3, column 14: expected ')' but found ','". */
PM_API const char *pm_parse_error_message(const pm_parse_error_t *e);
/* NULL is a no-op. */
PM_API void pm_parse_error_free(pm_parse_error_t *e);

/* Parses a rule file (see doc/alerting.md for the grammar) without loading
 * it: checks syntax, expressions, regexes, templates, durations and that rule
 * names are unique. `len` bytes of `text` are read (no terminator needed).
 * *nrules (optional) receives the number of rules.
 * Errors: PM_EINVAL (NULL text), PM_EPARSE (with *err), PM_EEXIST (a name
 * repeated, with *err pointing at the second), PM_ENOMEM.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_alert_rules_check(const char *text, size_t len, size_t *nrules,
                                        pm_parse_error_t **err);

/* ---------------------------------------------------------------- rules */

/* Creates a rule definition called `name` (a valid metric name: it becomes
 * the alertname label) with expression `expr`. The expression is parsed now.
 * A rule alerts for every element its expression returns: a comparison at the
 * top filters (`x > 5` returns the elements above 5), so a plain value
 * expression alerts for every series it yields — unless thresholds are set
 * (pm_alert_rule_set_thresholds), which make `expr` the value compared.
 * Defaults: for 0, keep_firing_for 0, repeat 0 (notify once per firing),
 * severity warning, enabled, no-data PM_NODATA_OK.
 * Errors: PM_EINVAL (NULL), PM_EBADNAME (name), PM_EPARSE (with *err),
 * PM_ENOMEM. Release with pm_alert_rule_free; an engine copies what it needs.
 * Thread-safety: a rule object is not shared; use it from one thread. */
PM_API pm_status_t pm_alert_rule_new(const char *name, const char *expr, pm_alert_rule_t **out,
                                     pm_parse_error_t **err);
/* NULL is a no-op. */
PM_API void pm_alert_rule_free(pm_alert_rule_t *r);

/* Pending duration: the condition must hold at every evaluation for this
 * long before the instance fires. Seconds, finite, >= 0. Errors: PM_EINVAL,
 * PM_ERANGE. The same errors apply to the two setters below. */
PM_API pm_status_t pm_alert_rule_set_for(pm_alert_rule_t *r, double seconds);
/* A firing instance stays firing this long after the first evaluation at
 * which its condition no longer holds (Prometheus' keep_firing_for). */
PM_API pm_status_t pm_alert_rule_set_keep_firing_for(pm_alert_rule_t *r, double seconds);
/* Cooldown: while an instance keeps firing, it is notified again (a
 * "repeat" event) at most once per interval; 0 notifies only when it starts
 * firing, changes severity and resolves. */
PM_API pm_status_t pm_alert_rule_set_repeat_interval(pm_alert_rule_t *r, double seconds);
/* Severity of every instance (ignored once thresholds are set).
 * Errors: PM_EINVAL (NULL or not a pm_severity_t). */
PM_API pm_status_t pm_alert_rule_set_severity(pm_alert_rule_t *r, pm_severity_t s);

/* The warning/critical convenience form: `expr` is a value expression and
 * each element is compared with `op` (one of ">", ">=", "<", "<=", "==",
 * "!=") against both thresholds. An element past `critical` is a critical
 * instance, past only `warning` a warning one; one instance per label set
 * moves between the two severities (a change is notified). NaN disables a
 * level; both NaN is PM_EINVAL. Errors: PM_EINVAL (NULL, bad op, both NaN,
 * or an expression whose top is already a comparison or set operation),
 * PM_ERANGE (an infinite threshold). */
PM_API pm_status_t pm_alert_rule_set_thresholds(pm_alert_rule_t *r, const char *op,
                                                double warning, double critical);

/* Hysteresis: once firing, an instance stays firing until the resolve
 * condition holds for its label set (or its series disappears), even if the
 * firing condition no longer does. A pending instance is not held: `for`
 * needs the firing condition itself at every evaluation. `cond` is either a
 * full expression (evaluated like the rule's, at every evaluation so that its
 * windows stay warm; the instance may resolve when the result contains its
 * label set)
 * or a comparison shorthand "< 80" / "<= 0.8" applied to the rule's value
 * (the left-hand side of a top-level comparison, or the thresholded value).
 * NULL removes it. Errors: PM_EINVAL, PM_EPARSE (with *err), PM_ENOMEM. */
PM_API pm_status_t pm_alert_rule_set_resolve(pm_alert_rule_t *r, const char *cond,
                                             pm_parse_error_t **err);

/* Adds (or replaces) a label attached to every instance. Rule labels win
 * over series labels of the same name; "alertname" and "severity" are
 * reserved (PM_EBADLABEL). Errors: PM_EINVAL, PM_EBADLABEL, PM_EUTF8,
 * PM_ENOMEM. */
PM_API pm_status_t pm_alert_rule_set_label(pm_alert_rule_t *r, const char *name,
                                           const char *value);
/* Adds (or replaces) an annotation: a template rendered for each instance
 * when an event is created. Template actions: {{ $value }},
 * {{ $labels.NAME }}, {{ $alertname }}, {{ $severity }}, and the pipes
 * {{ $value | humanize }}, {{ $value | humanizePercentage }},
 * {{ $value | humanizeDuration }}, {{ $value | printf "%.2f" }}.
 * Errors: PM_EINVAL, PM_EBADLABEL (name), PM_EPARSE (template, with *err),
 * PM_EUTF8, PM_ENOMEM. */
PM_API pm_status_t pm_alert_rule_set_annotation(pm_alert_rule_t *r, const char *name,
                                                const char *tmpl, pm_parse_error_t **err);
/* A disabled rule is kept but not evaluated (default enabled). */
PM_API pm_status_t pm_alert_rule_set_enabled(pm_alert_rule_t *r, int enabled);
/* Errors: PM_EINVAL (NULL or not a pm_nodata_t). */
PM_API pm_status_t pm_alert_rule_set_nodata(pm_alert_rule_t *r, pm_nodata_t policy);

/* ---------------------------------------------------------------- engine */

/* Engine options; defaults in brackets. */
PM_API pm_status_t pm_alert_engine_opts_new(pm_alert_engine_opts_t **out);
/* NULL is a no-op. */
PM_API void pm_alert_engine_opts_free(pm_alert_engine_opts_t *o);
/* Evaluation interval of the background thread [15 s]; also the expected
 * spacing of host ticks, which sizes the windows: a window of W seconds is a
 * ring of min(ceil(W / interval), max_buckets) sub-window buckets.
 * Errors: PM_EINVAL, PM_ERANGE (not in [0.001, 86400]). */
PM_API pm_status_t pm_alert_engine_opts_set_interval(pm_alert_engine_opts_t *o, double seconds);
/* Upper bound on buckets per window [60]; 1..4096, else PM_ERANGE. */
PM_API pm_status_t pm_alert_engine_opts_set_max_buckets(pm_alert_engine_opts_t *o, unsigned n);
/* Transitions kept in the history ring [1024]; 1..1<<24, else PM_ERANGE. */
PM_API pm_status_t pm_alert_engine_opts_set_history(pm_alert_engine_opts_t *o, size_t n);
/* Notification queue capacity [1024]; 1..1<<24, else PM_ERANGE. When full,
 * the oldest queued notification is dropped (and counted). */
PM_API pm_status_t pm_alert_engine_opts_set_queue(pm_alert_engine_opts_t *o, size_t n);
/* Bound on windowed series across all rules [100000]; beyond it a series
 * gets no window (counted as PM_ALERT_STAT_SERIES_REFUSED). 1..1<<28. */
PM_API pm_status_t pm_alert_engine_opts_set_max_series(pm_alert_engine_opts_t *o, size_t n);
/* Bound on alert instances per rule [10000]; beyond it new label sets are
 * ignored (counted as PM_ALERT_STAT_INSTANCES_REFUSED). 1..1<<24. */
PM_API pm_status_t pm_alert_engine_opts_set_max_instances(pm_alert_engine_opts_t *o, size_t n);
/* Whether the engine registers its families in the registry [1]: the
 * ALERTS{alertname,alertstate,severity} gauge (number of instances of that
 * rule in that state and severity) and perfmetrics_alert_* self-metrics. */
PM_API pm_status_t pm_alert_engine_opts_set_metrics(pm_alert_engine_opts_t *o, int enabled);
/* Whether notifications are delivered by a dispatch thread the engine starts
 * with its first notifier [1]. With 0, the host delivers them by calling
 * pm_alert_engine_deliver (deterministic tests, single-threaded hosts). */
PM_API pm_status_t pm_alert_engine_opts_set_dispatch_thread(pm_alert_engine_opts_t *o,
                                                            int enabled);

/* Creates an engine over registry `r` (NULL: the default registry; the
 * registry must outlive the engine). opts may be NULL (defaults).
 * Errors: PM_EINVAL, PM_EEXIST (the registry already has an ALERTS family of
 * another shape, or another engine with metrics on: one such engine per
 * registry), PM_ENOMEM. Thread-safety: any thread. */
PM_API pm_status_t pm_alert_engine_new(pm_registry_t *r, const pm_alert_engine_opts_t *opts,
                                       pm_alert_engine_t **out);
/* Stops the background threads, delivers what is queued (so a notifier that
 * never returns would hang it), unregisters the engine's families' series and
 * frees everything, calling notifiers' release callbacks. NULL is a no-op.
 * Must not be called from a notifier of this engine. */
PM_API void pm_alert_engine_free(pm_alert_engine_t *e);

/* Adds a copy of rule `r` (the rule object stays the caller's).
 * Errors: PM_EINVAL, PM_EEXIST (a rule of that name exists), PM_ENOMEM. */
PM_API pm_status_t pm_alert_engine_add_rule(pm_alert_engine_t *e, const pm_alert_rule_t *r);
/* Removes a rule; its firing instances get a resolved event.
 * Errors: PM_EINVAL, PM_ENOENT. */
PM_API pm_status_t pm_alert_engine_remove_rule(pm_alert_engine_t *e, const char *name);
/* Enables or disables a rule; disabling resolves its active instances (a
 * resolved event for firing ones). Errors: PM_EINVAL, PM_ENOENT. */
PM_API pm_status_t pm_alert_engine_enable_rule(pm_alert_engine_t *e, const char *name,
                                               int enabled);
/* Number of rules (enabled or not); 0 for NULL. */
PM_API size_t pm_alert_engine_rule_count(const pm_alert_engine_t *e);

/* Loads every rule of a rule file held in `len` bytes of `text`, all or
 * nothing. Errors: as pm_alert_rules_check, plus PM_EEXIST (with *err at the
 * rule) when a name is already loaded. */
PM_API pm_status_t pm_alert_engine_load_string(pm_alert_engine_t *e, const char *text,
                                               size_t len, pm_parse_error_t **err);
/* Same, reading the file at `path`. PM_EIO when it cannot be read. */
PM_API pm_status_t pm_alert_engine_load_file(pm_alert_engine_t *e, const char *path,
                                             pm_parse_error_t **err);

/* Evaluates every enabled rule once at time `now` (Unix ns). Rules that
 * fail to evaluate are counted and skipped (PM_OK overall); notifications are
 * queued, never delivered inline.
 * Errors: PM_EINVAL, PM_ERANGE (now earlier than the previous evaluation),
 * PM_ESTATE (called from a notifier, collector or callback gauge),
 * PM_ENOMEM (the snapshot failed; nothing changed).
 * Thread-safety: any thread; serialised with the background thread. */
PM_API pm_status_t pm_alert_engine_tick(pm_alert_engine_t *e, int64_t now);

/* Starts the background evaluation thread (interval from the options,
 * `now` from CLOCK_REALTIME). Errors: PM_EINVAL, PM_ESTATE (running),
 * PM_ETHREAD. pm_alert_engine_stop joins it (PM_ESTATE if not running). */
PM_API pm_status_t pm_alert_engine_start(pm_alert_engine_t *e);
PM_API pm_status_t pm_alert_engine_stop(pm_alert_engine_t *e);

/* Delivers up to `max` queued notifications (0: all) on the calling thread,
 * for engines created without a dispatch thread; *delivered (optional)
 * receives the number of events handed to the filters.
 * Errors: PM_EINVAL, PM_ESTATE (the engine has a dispatch thread, or called
 * from a notifier). */
PM_API pm_status_t pm_alert_engine_deliver(pm_alert_engine_t *e, size_t max, size_t *delivered);

/* Health score 0..100 from the active instances:
 *     100 - 25 x critical firing - 10 x warning firing - 2 x info firing
 *         - 1 x pending (any severity), clamped to [0, 100].
 * NaN for NULL. */
PM_API double pm_alert_engine_health(const pm_alert_engine_t *e);

/* Engine counters. */
typedef enum pm_alert_stat {
    PM_ALERT_STAT_EVALUATIONS = 1,       /* ticks run */
    PM_ALERT_STAT_RULE_FAILURES = 2,     /* rule evaluations that failed */
    PM_ALERT_STAT_TRANSITIONS = 3,       /* state changes recorded */
    PM_ALERT_STAT_NOTIFY_QUEUED = 4,     /* events queued for notifiers */
    PM_ALERT_STAT_NOTIFY_SENT = 5,       /* notifier calls that returned 0 */
    PM_ALERT_STAT_NOTIFY_FAILED = 6,     /* notifier calls that returned non-0 */
    PM_ALERT_STAT_NOTIFY_DROPPED = 7,    /* events dropped from a full queue */
    PM_ALERT_STAT_SERIES_WINDOWED = 8,   /* series with windows now */
    PM_ALERT_STAT_SERIES_REFUSED = 9,    /* windows refused by max_series */
    PM_ALERT_STAT_INSTANCES = 10,        /* alert instances now (any state) */
    PM_ALERT_STAT_INSTANCES_REFUSED = 11, /* label sets refused by max_instances */
    PM_ALERT_STAT_WINDOW_BYTES = 12,     /* bytes held by windows now */
    PM_ALERT_STAT_LAST_EVAL_NS = 13      /* duration of the last evaluation */
} pm_alert_stat_t;
/* Returns one engine counter; 0 for NULL or an unknown index. */
PM_API uint64_t pm_alert_engine_stat(const pm_alert_engine_t *e, pm_alert_stat_t which);

/* ---------------------------------------------------------------- events, lists */

/* An event is one alert instance at one moment: a transition (history), a
 * notification, or an active instance (pm_alert_engine_active). Events are
 * immutable. In a notifier the event is valid for the call; in a list, until
 * the list is freed. All accessors are NULL-safe (NULL, 0, NaN or "").
 *
 * Labels are the instance's full label set sorted by name: alertname,
 * severity, the rule's labels and the series' labels. */
PM_API const char *pm_alert_event_rule(const pm_alert_event_t *ev);
PM_API pm_alert_state_t pm_alert_event_state(const pm_alert_event_t *ev);
/* The state before this event; equal to the state for a repeat
 * notification (FIRING -> FIRING) or a severity change. */
PM_API pm_alert_state_t pm_alert_event_prev_state(const pm_alert_event_t *ev);
PM_API pm_severity_t pm_alert_event_severity(const pm_alert_event_t *ev);
/* The expression's value for this instance at the event (NaN for no-data). */
PM_API double pm_alert_event_value(const pm_alert_event_t *ev);
/* When the event happened, seconds since the Unix epoch. */
PM_API double pm_alert_event_time(const pm_alert_event_t *ev);
/* When the instance became active (pending or firing). */
PM_API double pm_alert_event_active_at(const pm_alert_event_t *ev);
/* When it started firing (Alertmanager startsAt); NaN if it never fired. */
PM_API double pm_alert_event_starts_at(const pm_alert_event_t *ev);
/* When it resolved (Alertmanager endsAt); NaN while not resolved. */
PM_API double pm_alert_event_ends_at(const pm_alert_event_t *ev);
/* A 64-bit hash of the label set, stable across runs and processes. */
PM_API uint64_t pm_alert_event_fingerprint(const pm_alert_event_t *ev);
PM_API size_t pm_alert_event_label_count(const pm_alert_event_t *ev);
PM_API const char *pm_alert_event_label_name(const pm_alert_event_t *ev, size_t i);
PM_API const char *pm_alert_event_label_value(const pm_alert_event_t *ev, size_t i);
/* The value of label `name`, or NULL when absent. */
PM_API const char *pm_alert_event_label(const pm_alert_event_t *ev, const char *name);
/* Annotations, rendered, sorted by name. */
PM_API size_t pm_alert_event_annotation_count(const pm_alert_event_t *ev);
PM_API const char *pm_alert_event_annotation_name(const pm_alert_event_t *ev, size_t i);
PM_API const char *pm_alert_event_annotation_value(const pm_alert_event_t *ev, size_t i);
PM_API const char *pm_alert_event_annotation(const pm_alert_event_t *ev, const char *name);

/* Copies the active instances (pending and firing), sorted by rule name then
 * fingerprint. Errors: PM_EINVAL, PM_ENOMEM. Release with pm_alert_list_free. */
PM_API pm_status_t pm_alert_engine_active(pm_alert_engine_t *e, pm_alert_list_t **out);
/* Copies the history ring, oldest first. Errors: PM_EINVAL, PM_ENOMEM. */
PM_API pm_status_t pm_alert_engine_history(pm_alert_engine_t *e, pm_alert_list_t **out);
/* 0 for NULL. */
PM_API size_t pm_alert_list_count(const pm_alert_list_t *l);
/* The i-th event, or NULL; valid until the list is freed. */
PM_API const pm_alert_event_t *pm_alert_list_get(const pm_alert_list_t *l, size_t i);
/* NULL is a no-op. Thread-safety: a list may be read from any thread. */
PM_API void pm_alert_list_free(pm_alert_list_t *l);

/* ---------------------------------------------------------------- notifiers */

/* A notifier: called once per event that passes its filter. Return 0 for
 * delivered, anything else for failed (counted). Runs on the dispatch thread
 * (or in pm_alert_engine_deliver); a slow or blocking notifier delays other
 * notifiers only, never evaluation or recording. */
typedef int (*pm_alert_notify_fn)(const pm_alert_event_t *ev, void *user);

/* Filters: an event passes when its severity is >= the minimum, its rule is
 * one of the listed rule names (if any are listed), every label matcher
 * matches, and (for resolved events) resolved events are wanted. */
PM_API pm_status_t pm_alert_filter_new(pm_alert_filter_t **out);
/* NULL is a no-op. */
PM_API void pm_alert_filter_free(pm_alert_filter_t *f);
/* [PM_SEVERITY_INFO]. Errors: PM_EINVAL. */
PM_API pm_status_t pm_alert_filter_set_min_severity(pm_alert_filter_t *f, pm_severity_t s);
/* Adds a matcher on the event's labels: op "=", "!=", "=~" or "!~" (POSIX
 * extended regex, anchored at both ends; an absent label matches as "").
 * Errors: PM_EINVAL (NULL, bad op), PM_EBADLABEL, PM_EPARSE (bad regex),
 * PM_ENOMEM. */
PM_API pm_status_t pm_alert_filter_add_matcher(pm_alert_filter_t *f, const char *label,
                                               const char *op, const char *value);
/* Adds a rule name to the allow-list. Errors: PM_EINVAL, PM_ENOMEM. */
PM_API pm_status_t pm_alert_filter_add_rule(pm_alert_filter_t *f, const char *rule);
/* Whether resolved events pass [1]. Repeats and severity changes are firing
 * events and always pass when firing events do. */
PM_API pm_status_t pm_alert_filter_set_send_resolved(pm_alert_filter_t *f, int enabled);
/* Whether `ev` passes `f` (1) or not (0); a NULL filter passes everything,
 * a NULL event nothing. */
PM_API int pm_alert_filter_match(const pm_alert_filter_t *f, const pm_alert_event_t *ev);

/* Registers notifier `name` (unique per engine) with a copy of `filter`
 * (NULL: everything). `release(user)` runs when it is removed or the engine
 * freed. Errors: PM_EINVAL, PM_EEXIST, PM_ETHREAD (the dispatch thread could
 * not start), PM_ENOMEM; on error release is not called. */
PM_API pm_status_t pm_alert_engine_add_notifier(pm_alert_engine_t *e, const char *name,
                                                const pm_alert_filter_t *filter,
                                                pm_alert_notify_fn fn, void *user,
                                                pm_release_fn release);
/* Removes a notifier; waits for a call in progress to return.
 * Errors: PM_EINVAL, PM_ENOENT, PM_ESTATE (from a notifier). */
PM_API pm_status_t pm_alert_engine_remove_notifier(pm_alert_engine_t *e, const char *name);
/* A built-in notifier writing one line per event (pm_alert_event_format_line)
 * to `f`, flushed after each line. The FILE stays the caller's and must
 * outlive the notifier. Errors: as pm_alert_engine_add_notifier. */
PM_API pm_status_t pm_alert_engine_add_log_notifier(pm_alert_engine_t *e, const char *name,
                                                    const pm_alert_filter_t *filter, FILE *f);

/* Appends one log line (with '\n') for `ev` to `out`:
 *   2026-11-23T10:00:00.000Z FIRING critical HighErrorRate{service="api"}
 *     value=0.0712 summary="..."      (one line; annotations in name order)
 * Errors: PM_EINVAL, PM_ENOMEM. */
PM_API pm_status_t pm_alert_event_format_line(const pm_alert_event_t *ev, pm_buf_t *out);
/* Appends the Alertmanager v2 `POST /api/v2/alerts` body for `n` events to
 * `out`: a JSON array of {labels, annotations, startsAt, endsAt,
 * generatorURL} (RFC 3339 times; endsAt only for resolved events;
 * generatorURL omitted when NULL). Pending events are skipped: Alertmanager
 * only receives firing and resolved alerts.
 * Errors: PM_EINVAL, PM_ENOMEM. */
PM_API pm_status_t pm_alert_format_alertmanager(const pm_alert_event_t *const *evs, size_t n,
                                                const char *generator_url, pm_buf_t *out);

#ifdef __cplusplus
}
#endif
#endif
