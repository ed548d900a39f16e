/* Private definitions of the alert-rule engine (include/perfmetrics/alerts.h),
 * shared by its files:
 *
 *   alert_match.c     parse errors, label matchers
 *   alert_parse.c     lexer, expression parser (-> pm__anode), rule-file
 *                     parser, pm_alert_rules_check, the engine's loaders
 *   alert_template.c  annotation templates
 *   alert_window.c    the window store: rings of sub-window buckets per
 *                     (series, range), EWMA baselines, the window functions
 *   alert_eval.c      evaluation of an expression tree to an instant vector
 *   alert_rule.c      rule definitions (pm_alert_rule_t)
 *   alert_engine.c    engine, instances, state machine, history, metrics
 *   alert_event.c     events (immutable, refcounted) and lists
 *   alert_notify.c    filters, the notification queue and dispatcher, the
 *                     log-line notifier, the Alertmanager formatter
 *
 * Time inside the engine is int64_t Unix nanoseconds; durations are int64_t
 * nanoseconds. */
#ifndef PM_ALERT_INTERNAL_H
#define PM_ALERT_INTERNAL_H

#include "pm_internal.h"

#include <perfmetrics/alerts.h>
#include <perfmetrics/snapshot.h>

#include <regex.h>
#include <stdarg.h>

#define PM__NS_PER_S 1000000000LL

/* ------------------------------------------------------------ parse errors */
struct pm_parse_error {
    unsigned line, column;
    size_t offset;
    char *expected; /* "" when none */
    char *message;
};

/* Where a piece of text sits in its file, so errors inside it are reported
 * at file positions. Expressions and templates are single-line: a byte at
 * offset k of the piece is at (line, column + k), file offset offset + k. */
typedef struct pm__srcpos {
    unsigned line, column;
    size_t offset;
} pm__srcpos;
#define PM__SRCPOS_START ((pm__srcpos){1, 1, 0})

/* Creates *err (when err is non-NULL and *err is NULL; a first error wins)
 * with "line L, column C: " + the formatted text. `expected` may be NULL.
 * Returns PM_EPARSE, or PM_ENOMEM when the error itself cannot be allocated
 * (then *err stays NULL). */
pm_status_t pm__perr(pm_parse_error_t **err, unsigned line, unsigned column, size_t offset,
                     const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
/* The same at `at`, with a va_list (for parsers' own error helpers). */
pm_status_t pm__perrv(pm_parse_error_t **err, pm__srcpos at, const char *expected,
                      const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));


/* ------------------------------------------------------------ matchers */
typedef enum pm__match_op {
    PM__MATCH_EQ = 0, /* =  */
    PM__MATCH_NE,     /* != */
    PM__MATCH_RE,     /* =~ */
    PM__MATCH_NRE     /* !~ */
} pm__match_op;

typedef struct pm__amatcher {
    char *name;
    char *value; /* the literal or the regex source as written */
    pm__match_op op;
    bool has_re;
    regex_t re; /* "^(" value ")$", REG_EXTENDED | REG_NOSUB */
} pm__amatcher;

/* Guards against regexes that make glibc's regcomp take gigabytes or minutes
 * (see alert_match.c): PM__RE_OK, or why the regex is refused; *cost is its
 * expansion in units. pm__amatcher_init applies it; the parser also sums
 * the cost over an expression (PM__EXPR_REGEX_BUDGET). */
#define PM__REGEX_BUDGET 2048u
#define PM__REGEX_NULLABLE 512u
#define PM__EXPR_REGEX_BUDGET 8192u
enum { PM__RE_OK = 0, PM__RE_TOO_BIG, PM__RE_EMPTY_LOOP };
int pm__regex_check(const char *s, size_t n, uint64_t *cost);

/* Parses "=", "!=", "=~", "!~" into *op; false otherwise. */
bool pm__match_op_parse(const char *s, pm__match_op *op);
/* Fills m (copies name and value, compiles the regex). On PM_EPARSE (bad
 * regex) *err (optional) says why at `at`. Nothing is left to free on error. */
pm_status_t pm__amatcher_init(pm__amatcher *m, const char *name, pm__match_op op,
                              const char *value, pm__srcpos at, pm_parse_error_t **err);
/* Deep copy. */
pm_status_t pm__amatcher_copy(pm__amatcher *dst, const pm__amatcher *src);
void pm__amatcher_fini(pm__amatcher *m);
/* `value` NULL matches as "" (an absent label). */
bool pm__amatcher_match(const pm__amatcher *m, const char *value);

/* Binary search of `name` in a sorted array of n entries of `stride` bytes
 * whose first member is a name (a char *), as rule labels, annotations,
 * events' name arrays and label lists are kept: its index with *found, or
 * the insertion point. */
size_t pm__sorted_find(const void *base, size_t n, size_t stride, const char *name, bool *found);

/* ------------------------------------------------------------ expressions */
typedef enum pm__anode_kind {
    PM__AN_NUM = 1, /* number literal or duration used as a number (seconds) */
    PM__AN_SEL,     /* instant selector          name{...}        */
    PM__AN_RANGE,   /* range selector            name{...}[5m]    */
    PM__AN_CALL,    /* function call             rate(x[5m])      */
    PM__AN_AGG,     /* aggregation               sum by (a) (x)   */
    PM__AN_BIN,     /* binary operation          a / b, a > 5     */
    PM__AN_NEG      /* unary minus               -x               */
} pm__anode_kind;

typedef enum pm__afn {
    PM__FN_RATE = 1,        /* rate(range)                 per second, Prometheus extrapolation */
    PM__FN_INCREASE,        /* increase(range)             rate x range */
    PM__FN_DELTA,           /* delta(range)                gauges: last - first, extrapolated */
    PM__FN_AVG_OT,          /* avg_over_time(range)        histograms: mean of observations */
    PM__FN_MIN_OT,          /* min_over_time(range) */
    PM__FN_MAX_OT,          /* max_over_time(range) */
    PM__FN_SUM_OT,          /* sum_over_time(range) */
    PM__FN_COUNT_OT,        /* count_over_time(range)      samples (histograms: observations) */
    PM__FN_LAST_OT,         /* last_over_time(range) */
    PM__FN_STDDEV_OT,       /* stddev_over_time(range)     population stddev */
    PM__FN_QUANTILE_OT,     /* quantile_over_time(q, range); pNN(range) short form */
    PM__FN_ZSCORE,          /* zscore(range): (last - mean) / stddev over the window */
    PM__FN_ZSCORE_EWMA,     /* zscore_ewma(instant, tau): EWMA mean/variance, no window */
    PM__FN_SLOPE,           /* slope(range): least-squares slope, per second */
    PM__FN_PREDICT_LINEAR,  /* predict_linear(range, seconds) */
    PM__FN_ABS,             /* abs(instant) */
    PM__FN_ABSENT           /* absent(instant): 1 with no labels when empty */
} pm__afn;

typedef enum pm__abinop {
    PM__OP_ADD = 1, PM__OP_SUB, PM__OP_MUL, PM__OP_DIV, PM__OP_MOD, PM__OP_POW,
    PM__OP_EQ, PM__OP_NE, PM__OP_GT, PM__OP_LT, PM__OP_GE, PM__OP_LE,
    PM__OP_AND, PM__OP_OR, PM__OP_UNLESS
} pm__abinop;
#define PM__OP_IS_CMP(op) ((op) >= PM__OP_EQ && (op) <= PM__OP_LE)
#define PM__OP_IS_SET(op) ((op) >= PM__OP_AND)

typedef enum pm__aaggop {
    PM__AGG_SUM = 1, PM__AGG_AVG, PM__AGG_MIN, PM__AGG_MAX, PM__AGG_COUNT
} pm__aaggop;

typedef struct pm__anode pm__anode;
struct pm__anode {
    pm__anode_kind kind;
    size_t pos; /* byte offset of the node's first token in the expression */
    union {
        double num;
        struct { /* SEL and RANGE */
            char *metric;
            pm__amatcher *m;
            size_t nm;
            int64_t range_ns; /* RANGE only, > 0 */
        } sel;
        struct {
            pm__afn fn;
            pm__anode *arg;  /* the RANGE (or instant expression for ABS,
                                ABSENT, ZSCORE_EWMA) */
            double param;    /* QUANTILE_OT: q in [0,1]; PREDICT_LINEAR:
                                seconds ahead; ZSCORE_EWMA: tau in seconds */
        } call;
        struct {
            pm__aaggop op;
            bool without;    /* `without (...)` instead of `by (...)` */
            bool grouped;    /* a by/without clause was given */
            char **labels;   /* sorted, unique */
            size_t nlabels;
            pm__anode *arg;
        } agg;
        struct {
            pm__abinop op;
            bool bool_mod;   /* comparison with `bool`: 0/1 instead of filter */
            int matching;    /* 0: full label sets; 1: on (labels); 2: ignoring (labels) */
            char **mlabels;  /* sorted, unique */
            size_t nmlabels;
            pm__anode *l, *r;
        } bin;
        struct {
            pm__anode *arg;
        } neg;
    } u;
};

/* Parses `len` bytes of `text` (one expression, surrounding blanks allowed)
 * into *out. Errors are reported at `at` + offset. Durations: an integer or
 * decimal followed by ms, s, m, h, d, w, y, composable ("1h30m").
 * Errors: PM_EINVAL, PM_EPARSE (with *err), PM_ENOMEM. */
pm_status_t pm__aexpr_parse(const char *text, size_t len, pm__srcpos at, pm__anode **out,
                            pm_parse_error_t **err);
void pm__anode_free(pm__anode *n);
pm_status_t pm__anode_copy(const pm__anode *n, pm__anode **out);
/* Calls fn for every RANGE node (and the instant argument of ZSCORE_EWMA
 * with its tau) — how the engine learns the windows a rule needs. */
typedef void (*pm__anode_visit_fn)(const pm__anode *n, void *user);
void pm__anode_walk(const pm__anode *n, pm__anode_visit_fn fn, void *user);

/* Parses all of s[0..n) as a number of the grammar (decimal, exponent, Inf,
 * NaN), independently of the locale. */
bool pm__aparse_number(const char *s, size_t n, double *out);

/* ------------------------------------------------------------ templates */
typedef struct pm__atmpl pm__atmpl;
/* Parses an annotation template (see pm_alert_rule_set_annotation). */
pm_status_t pm__atmpl_parse(const char *text, size_t len, pm__srcpos at, pm__atmpl **out,
                            pm_parse_error_t **err);
void pm__atmpl_free(pm__atmpl *t);
pm_status_t pm__atmpl_copy(const pm__atmpl *t, pm__atmpl **out);
/* Renders into b (appending). Labels are the instance's full label set,
 * sorted by name; a missing label renders as "". */
pm_status_t pm__atmpl_render(const pm__atmpl *t, double value, const char *alertname,
                             const char *severity, const char *const *lname,
                             const char *const *lvalue, size_t nlabels, pm_buf_t *b);

/* ------------------------------------------------------------ rule files */
/* Parses a rule file; calls `add` with each rule in file order (the callee
 * takes ownership of the rule), together with the position of its `alert`
 * keyword. A non-OK return from `add` stops the parse and is returned (the
 * callee may have set *err). Rule objects are built with the public
 * pm_alert_rule_* functions. */
typedef pm_status_t (*pm__arule_sink_fn)(pm_alert_rule_t *r, pm__srcpos at, void *user,
                                         pm_parse_error_t **err);
pm_status_t pm__arules_parse(const char *text, size_t len, pm__arule_sink_fn add, void *user,
                             pm_parse_error_t **err);

/* ------------------------------------------------------------ rules */
typedef struct pm__alabel {
    char *name, *value;
} pm__alabel;

typedef struct pm__aannot {
    char *name;
    char *text; /* as written */
    pm__atmpl *tmpl;
} pm__aannot;

struct pm_alert_rule {
    char *name;
    char *expr_text;
    pm__anode *expr;
    int64_t for_ns, keep_ns, repeat_ns;
    pm_severity_t severity;
    bool thresholds;         /* warning/critical form */
    pm__abinop th_op;        /* comparison for the thresholds */
    double warn, crit;       /* NaN: level unused */
    char *resolve_text;      /* NULL: none */
    pm__anode *resolve;      /* full expression, or NULL */
    bool resolve_short;      /* "< 80" shorthand on the rule's value */
    pm__abinop resolve_op;
    double resolve_val;
    pm__alabel *labels;      /* sorted by name */
    size_t nlabels;
    pm__aannot *annots;      /* sorted by name */
    size_t nannots;
    bool enabled;
    pm_nodata_t nodata;
};
pm_status_t pm__arule_copy(const pm_alert_rule_t *r, pm_alert_rule_t **out);
/* The setters that parse text, with errors reported at file position `at`
 * (the rule-file parser uses these; the public ones pass PM__SRCPOS_START). */
pm_status_t pm__arule_new_at(const char *name, const char *expr, size_t expr_len, pm__srcpos at,
                             pm_alert_rule_t **out, pm_parse_error_t **err);
pm_status_t pm__arule_set_resolve_at(pm_alert_rule_t *r, const char *cond, size_t len,
                                     pm__srcpos at, pm_parse_error_t **err);
pm_status_t pm__arule_set_annotation_at(pm_alert_rule_t *r, const char *name, const char *tmpl,
                                        size_t len, pm__srcpos at, pm_parse_error_t **err);
/* Whether `a op b` holds for a comparison op (false for any other op). */
bool pm__acmp_holds(pm__abinop op, double a, double b);
/* ">" ... "!=" to PM__OP_*; false otherwise. */
bool pm__acmp_parse(const char *s, size_t len, pm__abinop *op);

/* ------------------------------------------------------------ window store */
/* Per (series, range) a ring of B sub-window buckets of width w = ceil(range
 * / B), B = min(ceil(range / interval), max_buckets), aligned at multiples of
 * w on the Unix time line. The window of a range at `now` is the bucket that
 * holds `now` and the B-1 before it. Each bucket keeps the aggregates of the
 * samples that fell into it (first/last sample, count, sum, min, max, Welford
 * mean/M2, least-squares sums relative to the bucket start, counter increase
 * with resets handled as Prometheus does). Histogram series also keep, per
 * bucket, a sparse copy of the cumulative fine buckets at the bucket's first
 * sample; a window's distribution is the current one minus the copy of its
 * oldest non-empty bucket (the observations between the window's samples). */
typedef struct pm__wstore pm__wstore;
typedef struct pm__wring pm__wring;

pm_status_t pm__wstore_new(const pm_alloc_t *a, int64_t interval_ns, unsigned max_buckets,
                           size_t max_series, pm__wstore **out);
void pm__wstore_free(pm__wstore *w);
/* Starts an evaluation at `now`: samples pushed until the next begin are
 * dated `now`; each (series, range) takes at most one sample per tick. */
void pm__wstore_begin(pm__wstore *w, int64_t now);
/* Finds or creates the ring of series `s` of family `f` for `range_ns`, and
 * pushes the series' current value (counters, gauges: the value; histograms:
 * count, sum and the distribution) once per tick. PM_ERANGE when the store
 * is at max_series (counted); PM_ENOMEM. */
pm_status_t pm__wstore_sample(pm__wstore *w, const pm_snap_family_t *f,
                              const pm_snap_series_t *s, int64_t range_ns, pm__wring **out);
/* The EWMA z-score of one element of the argument of zscore_ewma: `node`
 * (the call node, stable while its rule exists) and `label_hash` identify the
 * state. Updates the state's EWMA mean and variance with `value` (once per
 * tick; alpha = 1 - exp(-dt / tau) for the time dt since its last update)
 * and sets *z to (value - mean_before) / sqrt(var_before). PM_ENOENT while
 * fewer than 2 samples were seen or the variance is 0 (the value still
 * updates the state). States count toward max_series. */
pm_status_t pm__wstore_ewma(pm__wstore *w, const void *node, uint64_t label_hash, double value,
                            int64_t tau_ns, double *z);
/* Frees rings not sampled for longer than their range plus one interval.
 * Called at the end of every evaluation. */
void pm__wstore_end(pm__wstore *w);
/* Evaluates window function fn (RATE .. PREDICT_LINEAR, not ABS/ABSENT/
 * ZSCORE_EWMA) on a ring at the current tick. PM_ENOENT when the window does
 * not hold enough samples (rate, increase, delta, slope, predict_linear and
 * zscore need 2; the others 1; quantile needs one observation); PM_ETYPE when
 * fn does not apply (quantile_over_time on a non-histogram). */
pm_status_t pm__wring_eval(const pm__wring *r, pm__afn fn, double param, double *out);
size_t pm__wstore_series(const pm__wstore *w); /* rings + EWMA states now */
uint64_t pm__wstore_refused(const pm__wstore *w);
size_t pm__wstore_bytes(const pm__wstore *w);
/* Bytes one ring of `range_ns` costs (without histogram copies): for the
 * docs' formula and the bench. */
size_t pm__wstore_ring_bytes(const pm__wstore *w, int64_t range_ns);

/* ------------------------------------------------------------ evaluation */
/* An element of an instant vector: a label set (metric name dropped, sorted
 * by name) and a value. Strings are borrowed from the snapshot or the
 * evaluation arena. */
typedef struct pm__aelem {
    const char **lname, **lvalue;
    uint32_t nlabels;
    uint64_t hash; /* of the label set, pm__alabels_hash */
    double v;
} pm__aelem;

typedef struct pm__avec {
    bool scalar;      /* a number, not a vector */
    double s;
    pm__aelem *e;
    size_t n;
} pm__avec;

typedef struct pm__aeval pm__aeval; /* per-engine evaluation context */
pm_status_t pm__aeval_new(const pm_alloc_t *a, pm__wstore *ws, pm__aeval **out);
void pm__aeval_free(pm__aeval *c);
/* Prepares an evaluation of snapshot s at `now` (indexes families by name,
 * resets the arena). */
void pm__aeval_begin(pm__aeval *c, const pm_snapshot_t *s, int64_t now);
/* Evaluates n. The result lives in the arena until the next begin.
 * PM_ENOMEM; PM_ETYPE (a function applied to the wrong kind of operand,
 * e.g. a range where an instant is needed); PM_ERANGE (window refused). */
pm_status_t pm__aeval_run(pm__aeval *c, const pm__anode *n, pm__avec *out);
/* For a rule: *cond is the expression's result; *value is what the rule's
 * instances report and the hysteresis shorthand compares: for a top-level
 * filtering comparison its vector operand (evaluated once, not twice),
 * otherwise the result itself. An empty, non-scalar *value is "no data". */
pm_status_t pm__aeval_rule(pm__aeval *c, const pm__anode *n, pm__avec *value, pm__avec *cond);
/* Arena allocation for callers that build vectors (the engine). */
void *pm__aeval_alloc(pm__aeval *c, size_t n);
/* FNV-1a 64 over name 0xff value 0xff for each label in order (0xff never
 * occurs in UTF-8, so "a"="bc" and "ab"="c" differ); NULL strings hash as
 * "". Also an event's fingerprint, which equals Alertmanager's own. */
uint64_t pm__alabels_hash(const char *const *lname, const char *const *lvalue, size_t n);
bool pm__alabels_equal(const pm__aelem *a, const pm__aelem *b);
/* One label-less element (a number used where a vector is needed). */
static inline pm__aelem pm__aelem_unlabeled(double v)
{
    return (pm__aelem){NULL, NULL, 0, pm__alabels_hash(NULL, NULL, 0), v};
}
/* An open-addressing index of a vector's elements by label set, in the
 * arena (valid until the next pm__aeval_begin). A label set that occurs
 * twice is found as its first element. */
typedef struct pm__aindex {
    size_t mask;
    int64_t *slot;   /* element index, -1 empty */
    pm__aelem *keys; /* the label sets indexed, by element */
} pm__aindex;
pm_status_t pm__aindex_build(pm__aeval *c, const pm__avec *v, pm__aindex *ix);
/* The index of the element with key's label set, or -1. */
int64_t pm__aindex_find(const pm__aindex *ix, const pm__aelem *key);

/* ------------------------------------------------------------ events */
struct pm_alert_event {
    _Atomic unsigned refs;
    pm_alloc_t a;
    const char *rule;
    pm_alert_state_t state, prev;
    pm_severity_t severity;
    double value;
    int64_t at, active_at, starts_at, ends_at; /* ns; INT64_MIN: unset */
    uint64_t fingerprint;
    size_t nlabels;
    const char **lname, **lvalue; /* sorted by name */
    size_t nannots;
    const char **aname, **avalue; /* sorted by name */
    /* strings and arrays follow in the same allocation */
};

/* Everything an event is built from; copied. Labels must be sorted by name
 * and include alertname and severity. */
typedef struct pm__aevent_init {
    const char *rule;
    pm_alert_state_t state, prev;
    pm_severity_t severity;
    double value;
    int64_t at, active_at, starts_at, ends_at;
    const char *const *lname, *const *lvalue;
    size_t nlabels;
    const char *const *aname, *const *avalue;
    size_t nannots;
} pm__aevent_init;

pm_status_t pm__aevent_new(const pm_alloc_t *a, const pm__aevent_init *in,
                           pm_alert_event_t **out);
pm_alert_event_t *pm__aevent_ref(pm_alert_event_t *ev);
void pm__aevent_unref(pm_alert_event_t *ev);

struct pm_alert_list {
    pm_alloc_t a;
    size_t n;
    pm_alert_event_t **ev; /* each holds a reference */
};
/* Takes a reference on each of the n events. */
pm_status_t pm__alist_new(const pm_alloc_t *a, pm_alert_event_t *const *ev, size_t n,
                          pm_alert_list_t **out);

/* ------------------------------------------------------------ notifications */
struct pm_alert_filter {
    pm_severity_t min_severity;
    bool send_resolved;
    pm__amatcher *m;
    size_t nm;
    char **rules;
    size_t nrules;
};
pm_status_t pm__afilter_copy(const pm_alert_filter_t *f, pm_alert_filter_t **out);

/* The hub: notifiers, the bounded queue, the dispatch thread. */
typedef struct pm__ahub pm__ahub;
pm_status_t pm__ahub_new(const pm_alloc_t *a, size_t queue_cap, bool dispatch_thread,
                         pm__ahub **out);
/* Delivers what is queued (when it has a thread), stops it, releases the
 * notifiers. */
void pm__ahub_free(pm__ahub *h);
/* Queues an event (takes a reference) for every notifier; never blocks on a
 * notifier: drops the oldest queued event when full. Cheap when there are
 * no notifiers (the event is not queued). */
void pm__ahub_post(pm__ahub *h, pm_alert_event_t *ev);
pm_status_t pm__ahub_add(pm__ahub *h, const char *name, const pm_alert_filter_t *filter,
                         pm_alert_notify_fn fn, void *user, pm_release_fn release);
pm_status_t pm__ahub_remove(pm__ahub *h, const char *name);
pm_status_t pm__ahub_deliver(pm__ahub *h, size_t max, size_t *delivered);
/* PM_ALERT_STAT_NOTIFY_* counters. */
uint64_t pm__ahub_stat(const pm__ahub *h, pm_alert_stat_t which);
/* True on a thread that is running one of the hub's notifiers. */
bool pm__ahub_in_notifier(void);

/* ------------------------------------------------------------ engine */
/* For alert_notify.c's public wrappers. */
pm__ahub *pm__aengine_hub(pm_alert_engine_t *e);
/* For the loaders: adds every rule or none. On PM_EEXIST, *bad is the index
 * of the rule whose name is taken. Takes ownership of none of them. */
pm_status_t pm__aengine_add_rules(pm_alert_engine_t *e, pm_alert_rule_t *const *rules, size_t n,
                                  size_t *bad);

#endif
