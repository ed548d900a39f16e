/* The alert expression parser and rule files (lib/alert_parse.c): tokens,
 * precedence and tree shapes, functions and their argument kinds, matchers,
 * durations, copy and walk, every rule-file field, pm_alert_rules_check and
 * exact error positions. Every text is handed over in an exact-size heap copy
 * without a terminating NUL, so ASan sees any read past `len`. */
#include "harness.h"

#include "internal/alert_internal.h"
#include <perfmetrics/perfmetrics.h>

#include <locale.h>
#include <stdarg.h>

/* ------------------------------------------------------------ helpers */

/* An exact-size copy of s[0..n) without a terminating NUL (free() it). */
static char *exact_copy(const char *s, size_t n)
{
    char *c = malloc(n ? n : 1);
    if (!c) abort();
    if (n) memcpy(c, s, n);
    return c;
}

static pm_status_t parse_n(const char *s, size_t n, pm__anode **out, pm_parse_error_t **err)
{
    char *c = exact_copy(s, n);
    pm_status_t st = pm__aexpr_parse(c, n, PM__SRCPOS_START, out, err);
    free(c);
    return st;
}

static pm_status_t parse(const char *s, pm__anode **out, pm_parse_error_t **err)
{
    return parse_n(s, strlen(s), out, err);
}

static pm_status_t check_n(const char *s, size_t n, size_t *nrules, pm_parse_error_t **err)
{
    char *c = exact_copy(s, n);
    pm_status_t st = pm_alert_rules_check(c, n, nrules, err);
    free(c);
    return st;
}

static pm_status_t check(const char *s, size_t *nrules, pm_parse_error_t **err)
{
    return check_n(s, strlen(s), nrules, err);
}

/* ---- a printed form of a tree, for shape checks */

static const char *const fn_names[] = {
    "?",         "rate",          "increase",      "delta",           "avg_over_time",
    "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "stddev_over_time", "quantile_over_time", "zscore", "zscore_ewma",  "slope",
    "predict_linear", "abs",       "absent"};
static const char *const op_names[] = {"?", "+", "-", "*", "/", "%", "^", "==", "!=", ">", "<",
                                       ">=", "<=", "and", "or", "unless"};
static const char *const agg_names[] = {"?", "sum", "avg", "min", "max", "count"};
static const char *const match_names[] = {"=", "!=", "=~", "!~"};

typedef struct sbuf {
    char s[8192];
    size_t n;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(b->s + b->n, sizeof b->s - b->n, fmt, ap);
    va_end(ap);
    if (k > 0) b->n += (size_t)k;
    if (b->n >= sizeof b->s) b->n = sizeof b->s - 1;
}

static void sb_num(sbuf *b, double v)
{
    if (isnan(v)) sb_add(b, "NaN");
    else if (isinf(v)) sb_add(b, v > 0 ? "+Inf" : "-Inf");
    else sb_add(b, "%.15g", v);
}

static void sb_labels(sbuf *b, char **l, size_t n)
{
    sb_add(b, "(");
    for (size_t i = 0; i < n; i++) sb_add(b, "%s%s", i ? "," : "", l[i]);
    sb_add(b, ")");
}

static void show(sbuf *b, const pm__anode *n)
{
    switch (n->kind) {
    case PM__AN_NUM: sb_num(b, n->u.num); break;
    case PM__AN_SEL:
    case PM__AN_RANGE:
        sb_add(b, "%s", n->u.sel.metric);
        if (n->u.sel.nm) {
            sb_add(b, "{");
            for (size_t i = 0; i < n->u.sel.nm; i++)
                sb_add(b, "%s%s%s\"%s\"", i ? "," : "", n->u.sel.m[i].name,
                       match_names[n->u.sel.m[i].op], n->u.sel.m[i].value);
            sb_add(b, "}");
        }
        if (n->kind == PM__AN_RANGE) {
            sb_add(b, "[");
            sb_num(b, (double)n->u.sel.range_ns / 1e9);
            sb_add(b, "s]");
        }
        break;
    case PM__AN_CALL:
        sb_add(b, "%s(", fn_names[n->u.call.fn]);
        if (n->u.call.fn == PM__FN_QUANTILE_OT) {
            sb_num(b, n->u.call.param);
            sb_add(b, ", ");
        }
        show(b, n->u.call.arg);
        if (n->u.call.fn == PM__FN_PREDICT_LINEAR || n->u.call.fn == PM__FN_ZSCORE_EWMA) {
            sb_add(b, ", ");
            sb_num(b, n->u.call.param);
        }
        sb_add(b, ")");
        break;
    case PM__AN_AGG:
        sb_add(b, "%s", agg_names[n->u.agg.op]);
        if (n->u.agg.grouped) {
            sb_add(b, n->u.agg.without ? " without " : " by ");
            sb_labels(b, n->u.agg.labels, n->u.agg.nlabels);
            sb_add(b, " ");
        }
        sb_add(b, "(");
        show(b, n->u.agg.arg);
        sb_add(b, ")");
        break;
    case PM__AN_BIN:
        sb_add(b, "(");
        show(b, n->u.bin.l);
        sb_add(b, " %s%s", op_names[n->u.bin.op], n->u.bin.bool_mod ? " bool" : "");
        if (n->u.bin.matching) {
            sb_add(b, n->u.bin.matching == 1 ? " on" : " ignoring");
            sb_labels(b, n->u.bin.mlabels, n->u.bin.nmlabels);
        }
        sb_add(b, " ");
        show(b, n->u.bin.r);
        sb_add(b, ")");
        break;
    case PM__AN_NEG:
        sb_add(b, "-");
        show(b, n->u.neg.arg);
        break;
    }
}

/* The printed tree of expression s, or "ERR <message>". */
static const char *tree(const char *s)
{
    static sbuf b;
    b.n = 0;
    b.s[0] = '\0';
    pm__anode *n = NULL;
    pm_parse_error_t *err = NULL;
    pm_status_t st = parse(s, &n, &err);
    if (st != PM_OK) sb_add(&b, "ERR %s", err ? pm_parse_error_message(err) : pm_status_name(st));
    else show(&b, n);
    pm__anode_free(n);
    pm_parse_error_free(err);
    return b.s;
}

#define CHECK_TREE(expr, want) CHECK_STR(tree(expr), want)

/* Checks that expression s fails with PM_EPARSE at line 1, column col
 * (offset col - 1), with `expected` and a message containing `msg`. */
static void check_err_(const char *file, int line, const char *s, unsigned col,
                       const char *expected, const char *msg)
{
    pm__anode *n = (pm__anode *)1;
    pm_parse_error_t *err = NULL;
    pm_status_t st = parse(s, &n, &err);
    if (st != PM_EPARSE || !err || n != NULL) {
        th_failures++;
        fprintf(stderr, "  %s:%d: parse(\"%s\") = %s, err %p, out %p; want PM_EPARSE\n", file, line,
                s, pm_status_name(st), (void *)err, (void *)n);
        if (st == PM_OK) pm__anode_free(n);
    } else if (pm_parse_error_line(err) != 1 || pm_parse_error_column(err) != col ||
               pm_parse_error_offset(err) != col - 1 ||
               strcmp(pm_parse_error_expected(err), expected) != 0 ||
               !strstr(pm_parse_error_message(err), msg)) {
        th_failures++;
        fprintf(stderr,
                "  %s:%d: parse(\"%s\"): got %u:%u off %zu expected \"%s\" msg \"%s\"; want "
                "1:%u expected \"%s\" msg containing \"%s\"\n",
                file, line, s, pm_parse_error_line(err), pm_parse_error_column(err),
                pm_parse_error_offset(err), pm_parse_error_expected(err),
                pm_parse_error_message(err), col, expected, msg);
    }
    pm_parse_error_free(err);
}
#define CHECK_ERR(s, col, expected, msg) check_err_(__FILE__, __LINE__, s, col, expected, msg)

/* Checks that rule file s fails with `want` at (l, col), the offset being
 * that position's, with `expected` and a message containing `msg`. */
static size_t offset_of(const char *s, unsigned l, unsigned col)
{
    size_t off = 0;
    for (unsigned k = 1; k < l; k++) off = (size_t)(strchr(s + off, '\n') - s) + 1;
    return off + col - 1;
}

static void check_rerr_(const char *file, int line, const char *s, pm_status_t want, unsigned l,
                        unsigned col, const char *expected, const char *msg)
{
    size_t nr = 99;
    pm_parse_error_t *err = NULL;
    pm_status_t st = check(s, &nr, &err);
    if (st != want || !err) {
        th_failures++;
        fprintf(stderr, "  %s:%d: check = %s (%s), want %s\n", file, line, pm_status_name(st),
                err ? pm_parse_error_message(err) : "no error", pm_status_name(want));
    } else if (pm_parse_error_line(err) != l || pm_parse_error_column(err) != col ||
               pm_parse_error_offset(err) != offset_of(s, l, col) ||
               strcmp(pm_parse_error_expected(err), expected) != 0 ||
               !strstr(pm_parse_error_message(err), msg) || nr != 0) {
        th_failures++;
        fprintf(stderr,
                "  %s:%d: got %u:%u off %zu expected \"%s\" msg \"%s\" (nrules %zu); want %u:%u off "
                "%zu expected \"%s\" msg containing \"%s\"\n",
                file, line, pm_parse_error_line(err), pm_parse_error_column(err),
                pm_parse_error_offset(err), pm_parse_error_expected(err),
                pm_parse_error_message(err), nr, l, col, offset_of(s, l, col), expected, msg);
    }
    pm_parse_error_free(err);
}
#define CHECK_RERR(s, want, l, col, expected, msg)                                                 \
    check_rerr_(__FILE__, __LINE__, s, want, l, col, expected, msg)

/* A rule file of one rule with the given body lines is accepted. */
static pm_alert_rule_t *g_rules[64];
static pm__srcpos g_at[64];
static size_t g_nrules;

static pm_status_t keep_sink(pm_alert_rule_t *r, pm__srcpos at, void *user,
                             pm_parse_error_t **err)
{
    (void)user;
    (void)err;
    if (g_nrules == 64) {
        pm_alert_rule_free(r);
        return PM_ERANGE;
    }
    g_at[g_nrules] = at;
    g_rules[g_nrules++] = r;
    return PM_OK;
}

static void free_kept(void)
{
    for (size_t i = 0; i < g_nrules; i++) pm_alert_rule_free(g_rules[i]);
    g_nrules = 0;
}

static pm_status_t parse_rules(const char *s, pm_parse_error_t **err)
{
    free_kept();
    char *c = exact_copy(s, strlen(s));
    pm_status_t st = pm__arules_parse(c, strlen(s), keep_sink, NULL, err);
    free(c);
    return st;
}

/* ------------------------------------------------------------ tokens */

TEST(test_tokens_numbers)
{
    CHECK_TREE("42", "42");
    CHECK_TREE("1.5", "1.5");
    CHECK_TREE(".5", "0.5");
    CHECK_TREE("1.", "1");
    CHECK_TREE("1e3", "1000");
    CHECK_TREE("1E-3", "0.001");
    CHECK_TREE("2.5e+2", "250");
    CHECK_TREE("007", "7");
    CHECK_TREE("0.000", "0");
    CHECK_TREE("Inf", "+Inf");
    CHECK_TREE("inf", "+Inf");
    CHECK_TREE("-Inf", "-Inf");
    CHECK_TREE("+INF", "+Inf");
    CHECK_TREE("NaN", "NaN");
    CHECK_TREE("nan", "NaN");
    CHECK_TREE("-nan", "NaN");
    /* a duration where a number stands is its seconds */
    CHECK_TREE("5m", "300");
    CHECK_TREE("1h30m", "5400");
    CHECK_TREE("500ms", "0.5");
    CHECK_TREE("1e999", "+Inf");
    CHECK_TREE("1e-999", "0");
    /* exact, correctly rounded values, whatever the path taken */
    const char *nums[] = {"0.1", "0.3", "123456789012345678901234567890", "1e-320",
                          "0.30000000000000004", "9007199254740993", "2.2250738585072011e-308",
                          "1.7976931348623157e308", "4.9406564584124654e-324",
                          "0.000000000000000000000000000000000000001234567890123456789",
                          "179769313486231580793728971405303415079934132710037826936173778980444"
                          "968292764750946649017977587207096330286416692887910946555547851940402"
                          "630657488671505820681908902000708383676273854845817711531764475730270"
                          "069855571366959622842914819860834936475292719074168444365510704342711"
                          "559699508093042880177904174497791.9999999999999999999999999999999999"};
    for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
        pm__anode *n = NULL;
        REQUIRE(parse(nums[i], &n, NULL) == PM_OK);
        CHECK(n->kind == PM__AN_NUM);
        if (n->u.num != strtod(nums[i], NULL)) {
            th_failures++;
            fprintf(stderr, "  %s: %.17g != %.17g\n", nums[i], n->u.num, strtod(nums[i], NULL));
        }
        pm__anode_free(n);
    }
}

TEST(test_tokens_names_and_operators)
{
    CHECK_TREE("job:rate5m:sum", "job:rate5m:sum");
    CHECK_TREE("_x", "_x");
    CHECK_TREE(":x", ":x");
    CHECK_TREE("x==1", "(x == 1)");
    CHECK_TREE("x!=1", "(x != 1)");
    CHECK_TREE("x>=1", "(x >= 1)");
    CHECK_TREE("x<=1", "(x <= 1)");
    CHECK_TREE("x>1", "(x > 1)");
    CHECK_TREE("x<1", "(x < 1)");
    CHECK_TREE("x%2", "(x % 2)");
    /* blanks of every kind, a trailing comment */
    CHECK_TREE(" \t rate( x [ 5m ] )\r\n ", "rate(x[300s])");
    CHECK_TREE("x # a comment", "x");
    CHECK_TREE("x + # comment\n y", "(x + y)");
    /* keywords are contextual */
    CHECK_TREE("sum", "sum");
    CHECK_TREE("rate", "rate");
    CHECK_TREE("rate(rate{a=\"b\"}[1m])", "rate(rate{a=\"b\"}[60s])");
    CHECK_TREE("sum + count", "(sum + count)");
    CHECK_TREE("on + ignoring", "(on + ignoring)");
    CHECK_TREE("and and and", "(and and and)");
    CHECK_TREE("x > bool", "(x > bool)");
    CHECK_TREE("by", "by");
    CHECK_TREE("p99", "p99");
    CHECK_TREE("x and on", "(x and on)");
}

/* ------------------------------------------------------------ shapes */

TEST(test_precedence_and_associativity)
{
    CHECK_TREE("a - b - c", "((a - b) - c)");
    CHECK_TREE("a / b / c", "((a / b) / c)");
    CHECK_TREE("2 ^ 3 ^ 2", "(2 ^ (3 ^ 2))");
    CHECK_TREE("-2 ^ 2", "-(2 ^ 2)");
    CHECK_TREE("2 ^ -1", "(2 ^ -1)");
    CHECK_TREE("-x", "-x");
    CHECK_TREE("- -2", "2");
    CHECK_TREE("-(1)", "-1");
    CHECK_TREE("+x", "x");
    CHECK_TREE("--x", "--x");
    CHECK_TREE("a + b * c", "(a + (b * c))");
    CHECK_TREE("a * b + c / d % e", "((a * b) + ((c / d) % e))");
    CHECK_TREE("(a + b) * c", "((a + b) * c)");
    CHECK_TREE("a + b > c - d", "((a + b) > (c - d))");
    CHECK_TREE("a > b == c", "((a > b) == c)");
    CHECK_TREE("a or b and c", "(a or (b and c))");
    CHECK_TREE("a and b or c", "((a and b) or c)");
    CHECK_TREE("a unless b and c", "((a unless b) and c)");
    CHECK_TREE("a or b or c", "((a or b) or c)");
    CHECK_TREE("a > 1 and b < 2", "((a > 1) and (b < 2))");
    CHECK_TREE("x > bool 1", "(x > bool 1)");
    CHECK_TREE("x == bool on(a) y", "(x == bool on(a) y)");
    CHECK_TREE("x > bool -1", "(x > bool -1)");
    CHECK_TREE("a + on(z, y, z,) b", "(a + on(y,z) b)");
    CHECK_TREE("a / ignoring(code) b", "(a / ignoring(code) b)");
    CHECK_TREE("a and on() b", "(a and on() b)");
    CHECK_TREE("a ^ on(x) b", "(a ^ on(x) b)");
    CHECK_TREE("1 > 0", "(1 > 0)");
    CHECK_TREE("-x ^ 2 * 3", "(-(x ^ 2) * 3)");
    /* positions of nodes: the first token of each */
    pm__anode *n = NULL;
    REQUIRE(parse("  -2 ^ x", &n, NULL) == PM_OK);
    CHECK_EQ_INT(n->kind, PM__AN_NEG);
    CHECK_EQ_U64(n->pos, 2);
    CHECK_EQ_U64(n->u.neg.arg->pos, 3);
    CHECK_EQ_U64(n->u.neg.arg->u.bin.r->pos, 7);
    pm__anode_free(n);
}

TEST(test_aggregations)
{
    CHECK_TREE("sum(x)", "sum(x)");
    CHECK_TREE("sum by (b, a) (x)", "sum by (a,b) (x)");
    CHECK_TREE("sum(x) by (a)", "sum by (a) (x)");
    CHECK_TREE("avg without (b, a, b) (x)", "avg without (a,b) (x)");
    CHECK_TREE("min(x) without (a,)", "min without (a) (x)");
    CHECK_TREE("max by () (x)", "max by () (x)");
    CHECK_TREE("count by(on, by) (x)", "count by (by,on) (x)");
    CHECK_TREE("sum by (service) (rate(tasks_total{status=\"error\"}[5m])) / sum by (service) "
               "(rate(tasks_total[5m])) > 0.05",
               "((sum by (service) (rate(tasks_total{status=\"error\"}[300s])) / sum by (service) "
               "(rate(tasks_total[300s]))) > 0.05)");
    CHECK_ERR("sum by (a) (x) by (b)", 16, "", "one 'by' or 'without' clause");
    CHECK_ERR("sum by (a) x", 12, "'('", "expected '(' but found 'x'");
    CHECK_ERR("sum by a (x)", 8, "'('", "expected '(' but found 'a'");
    CHECK_ERR("sum by (a b) (x)", 11, "',' or ')'", "found 'b'");
    CHECK_ERR("sum by (a:b) (x)", 9, "a label name", "expected a label name but found 'a:b'");
    CHECK_ERR("sum()", 5, "an expression", "expected an expression but found ')'");
    CHECK_ERR("sum(x[5m])", 5, "an instant vector", "found a range vector");
    CHECK_ERR("sum(1)", 5, "an instant vector", "found a scalar");
    CHECK_ERR("sum(x, y)", 6, "')'", "expected ')' but found ','");
}

TEST(test_functions)
{
    const char *range_fns[] = {"rate", "increase", "delta", "avg_over_time", "min_over_time",
                               "max_over_time", "sum_over_time", "count_over_time",
                               "last_over_time", "stddev_over_time", "zscore", "slope"};
    for (size_t i = 0; i < sizeof range_fns / sizeof range_fns[0]; i++) {
        char in[96], want[96];
        snprintf(in, sizeof in, "%s(x{a=\"b\"}[5m])", range_fns[i]);
        snprintf(want, sizeof want, "%s(x{a=\"b\"}[300s])", range_fns[i]);
        CHECK_TREE(in, want);
        /* an instant where a range is needed: at the argument */
        snprintf(in, sizeof in, "%s( x)", range_fns[i]);
        CHECK_ERR(in, (unsigned)strlen(range_fns[i]) + 3, "a range vector",
                  "expected a range vector but found an instant vector");
        snprintf(in, sizeof in, "%s(1)", range_fns[i]);
        CHECK_ERR(in, (unsigned)strlen(range_fns[i]) + 2, "a range vector", "found a scalar");
    }
    CHECK_TREE("rate((x[5m]))", "rate(x[300s])");
    CHECK_TREE("quantile_over_time(0.9, h[5m])", "quantile_over_time(0.9, h[300s])");
    CHECK_TREE("quantile_over_time(0, h[5m])", "quantile_over_time(0, h[300s])");
    CHECK_TREE("quantile_over_time(1, h[5m])", "quantile_over_time(1, h[300s])");
    CHECK_TREE("quantile_over_time((0.5), h[5m])", "quantile_over_time(0.5, h[300s])");
    CHECK_ERR("quantile_over_time(1.5, h[5m])", 20, "a quantile between 0 and 1",
              "quantile must be between 0 and 1");
    CHECK_ERR("quantile_over_time(-0.1, h[5m])", 20, "a quantile between 0 and 1", "quantile");
    CHECK_ERR("quantile_over_time(NaN, h[5m])", 20, "a quantile between 0 and 1", "quantile");
    CHECK_ERR("quantile_over_time(x, h[5m])", 20, "a number", "expected a number literal");
    CHECK_ERR("quantile_over_time(0.5)", 23, "','", "expected ',' but found ')'");
    CHECK_ERR("quantile_over_time(0.5, h)", 25, "a range vector", "an instant vector");
    CHECK_TREE("zscore_ewma(x, 1h)", "zscore_ewma(x, 3600)");
    CHECK_TREE("zscore_ewma(rate(x[5m]), 90s)", "zscore_ewma(rate(x[300s]), 90)");
    CHECK_ERR("zscore_ewma(x[5m], 1h)", 13, "an instant vector", "found a range vector");
    CHECK_ERR("zscore_ewma(1, 1h)", 13, "an instant vector", "found a scalar");
    CHECK_ERR("zscore_ewma(x, 0s)", 16, "a duration", "time constant must be longer than 0");
    CHECK_ERR("zscore_ewma(x, 5)", 16, "a duration", "expected a duration but found '5'");
    CHECK_ERR("zscore_ewma(x)", 14, "','", "expected ',' but found ')'");
    CHECK_TREE("predict_linear(d[1h], 3600)", "predict_linear(d[3600s], 3600)");
    CHECK_TREE("predict_linear(d[1h], -60)", "predict_linear(d[3600s], -60)");
    CHECK_TREE("predict_linear(d[1h], 4h)", "predict_linear(d[3600s], 14400)");
    CHECK_ERR("predict_linear(d[1h])", 21, "','", "expected ',' but found ')'");
    CHECK_ERR("predict_linear(d[1h], Inf)", 23, "a finite number", "finite");
    CHECK_ERR("predict_linear(d[1h], x)", 23, "a number", "expected a number literal");
    CHECK_ERR("predict_linear(d, 1)", 16, "a range vector", "an instant vector");
    CHECK_TREE("abs(x - 1)", "abs((x - 1))");
    CHECK_TREE("abs(-1)", "abs(-1)");
    CHECK_ERR("abs(x[1m])", 5, "an instant vector", "found a range vector");
    CHECK_TREE("absent(up{job=\"a\"})", "absent(up{job=\"a\"})");
    CHECK_ERR("absent(1)", 8, "an instant vector", "found a scalar");
    CHECK_ERR("absent(x[1m])", 8, "an instant vector", "found a range vector");
    CHECK_ERR("rate(x[5m], 1)", 11, "')'", "expected ')' but found ','");
    CHECK_ERR("rate()", 6, "an expression", "expected an expression but found ')'");
    CHECK_ERR("rate(x[5m]", 11, "')'", "expected ')' but found end of input");
    CHECK_ERR("foo(x)", 1, "a function name", "unknown function 'foo'");
    CHECK_ERR("x + histogram_quantile(0.9, y)", 5, "a function name", "unknown function");
    CHECK_ERR("Inf(x)", 1, "a function name", "unknown function 'Inf'");
}

TEST(test_pnn)
{
    struct {
        const char *in;
        double q;
    } c[] = {{"p50", 0.5}, {"p90", 0.9},  {"p95", 0.95}, {"p99", 0.99}, {"p999", 0.999},
             {"p100", 1.0}, {"p0", 0.0},  {"p5", 0.5},   {"p05", 0.05}, {"p9999", 0.9999}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        char in[64];
        snprintf(in, sizeof in, "%s(h[1m])", c[i].in);
        pm__anode *n = NULL;
        REQUIRE(parse(in, &n, NULL) == PM_OK);
        CHECK_EQ_INT(n->kind, PM__AN_CALL);
        CHECK_EQ_INT(n->u.call.fn, PM__FN_QUANTILE_OT);
        CHECK_EQ_DBL(n->u.call.param, c[i].q);
        CHECK_EQ_INT(n->u.call.arg->kind, PM__AN_RANGE);
        pm__anode_free(n);
    }
    CHECK_ERR("p99(h)", 5, "a range vector", "an instant vector");
    CHECK_ERR("p9x(h[1m])", 1, "a function name", "unknown function 'p9x'");
    CHECK_ERR("p(h[1m])", 1, "a function name", "unknown function 'p'");
    CHECK_TREE("p95(h[5m]) > 10", "(quantile_over_time(0.95, h[300s]) > 10)");
}

/* ------------------------------------------------------------ matchers */

TEST(test_matchers)
{
    pm__anode *n = NULL;
    REQUIRE(parse("x{a=\"b\", c!=\"d\", e=~\"f.*\", g!~'h', i=`j\\d`,}", &n, NULL) == PM_OK);
    REQUIRE(n->kind == PM__AN_SEL);
    CHECK_STR(n->u.sel.metric, "x");
    REQUIRE(n->u.sel.nm == 5);
    const pm__amatcher *m = n->u.sel.m;
    CHECK_STR(m[0].name, "a");
    CHECK_STR(m[0].value, "b");
    CHECK_EQ_INT(m[0].op, PM__MATCH_EQ);
    CHECK_EQ_INT(m[1].op, PM__MATCH_NE);
    CHECK_EQ_INT(m[2].op, PM__MATCH_RE);
    CHECK_EQ_INT(m[3].op, PM__MATCH_NRE);
    CHECK_STR(m[3].value, "h");
    CHECK_EQ_INT(m[4].op, PM__MATCH_EQ);
    CHECK_STR(m[4].value, "j\\d"); /* raw strings keep backslashes */
    CHECK(pm__amatcher_match(&m[0], "b"));
    CHECK(!pm__amatcher_match(&m[0], "bb"));
    CHECK(!pm__amatcher_match(&m[0], NULL));
    CHECK(pm__amatcher_match(&m[1], "x"));
    CHECK(pm__amatcher_match(&m[1], NULL));
    CHECK(!pm__amatcher_match(&m[1], "d"));
    CHECK(pm__amatcher_match(&m[2], "f"));
    CHECK(pm__amatcher_match(&m[2], "foo"));
    CHECK(!pm__amatcher_match(&m[2], "afoo"));
    CHECK(!pm__amatcher_match(&m[3], "h"));
    CHECK(pm__amatcher_match(&m[3], "hh"));
    pm__anode_free(n);

    /* regexes are anchored at both ends */
    REQUIRE(parse("x{status=~\"5..\", code!~\"2.*|3.*\"}", &n, NULL) == PM_OK);
    CHECK(pm__amatcher_match(&n->u.sel.m[0], "500"));
    CHECK(pm__amatcher_match(&n->u.sel.m[0], "503"));
    CHECK(!pm__amatcher_match(&n->u.sel.m[0], "1500"));
    CHECK(!pm__amatcher_match(&n->u.sel.m[0], "5000"));
    CHECK(!pm__amatcher_match(&n->u.sel.m[0], NULL));
    CHECK(!pm__amatcher_match(&n->u.sel.m[1], "200"));
    CHECK(!pm__amatcher_match(&n->u.sel.m[1], "301"));
    CHECK(pm__amatcher_match(&n->u.sel.m[1], "404"));
    CHECK(pm__amatcher_match(&n->u.sel.m[1], "1200"));
    pm__anode_free(n);

    /* an empty matcher matches an absent label */
    REQUIRE(parse("x{a=\"\"}", &n, NULL) == PM_OK);
    CHECK(pm__amatcher_match(&n->u.sel.m[0], NULL));
    pm__anode_free(n);

    /* escapes */
    REQUIRE(parse("x{a=\"q\\\"\\\\\\n\\t'\", b='it\\'s \"x\"'}", &n, NULL) == PM_OK);
    CHECK_STR(n->u.sel.m[0].value, "q\"\\\n\t'");
    CHECK_STR(n->u.sel.m[1].value, "it's \"x\"");
    pm__anode_free(n);

    /* many matchers: the array grows */
    char big[2048] = "x{";
    for (int i = 0; i < 40; i++) {
        char one[32];
        snprintf(one, sizeof one, "%sl%d=~\"v%d|w\"", i ? "," : "", i, i);
        strcat(big, one);
    }
    strcat(big, "}");
    REQUIRE(parse(big, &n, NULL) == PM_OK);
    CHECK_EQ_U64(n->u.sel.nm, 40);
    CHECK_STR(n->u.sel.m[39].name, "l39");
    CHECK(pm__amatcher_match(&n->u.sel.m[39], "v39"));
    CHECK(pm__amatcher_match(&n->u.sel.m[0], "w"));
    CHECK(!pm__amatcher_match(&n->u.sel.m[0], "v1"));
    pm__anode_free(n);

    CHECK_TREE("x{}", "x");
    CHECK_TREE("x{ a = \"b\" }", "x{a=\"b\"}");
    CHECK_ERR("x{a}", 4, "one of '=', '!=', '=~', '!~'", "but found '}'");
    CHECK_ERR("x{a==\"b\"}", 4, "one of '=', '!=', '=~', '!~'", "but found '=='");
    CHECK_ERR("x{a=b}", 5, "a string", "expected a string but found 'b'");
    CHECK_ERR("x{a=\"b\" c=\"d\"}", 9, "',' or '}'", "found 'c'");
    CHECK_ERR("x{=\"b\"}", 3, "a label matcher", "expected a label matcher but found '='");
    CHECK_ERR("x{a:b=\"c\"}", 3, "a label matcher", "found 'a:b'");
    CHECK_ERR("x{a=\"b\"", 8, "',' or '}'", "found end of input");
    CHECK_ERR("x{a=\"b", 5, "'\"'", "unterminated string");
    CHECK_ERR("x{a='b", 5, "\"'\"", "unterminated string");
    CHECK_ERR("x{a=`b", 5, "'`'", "unterminated string");
    CHECK_ERR("x{a=\"b\\", 5, "'\"'", "unterminated string");
    CHECK_ERR("x{a=\"b\nc\"}", 5, "'\"'", "unterminated string");
    CHECK_ERR("x{a=\"\\q\"}", 6, "an escape sequence", "invalid escape sequence '\\q'");
    CHECK_ERR("x{a=~\"(\"}", 6, "a POSIX extended regular expression",
              "invalid regular expression");
    CHECK_ERR("x{a=\"\xff\"}", 5, "", "not valid UTF-8");
    CHECK_ERR("x{a!\"b\"}", 4, "one of '=', '!=', '=~', '!~'", "found '!'");
    /* a NUL byte inside a string */
    pm_parse_error_t *err = NULL;
    n = NULL;
    CHECK_STATUS(parse_n("x{a=\"b\0c\"}", 10, &n, &err), PM_EPARSE);
    CHECK_EQ_INT(pm_parse_error_column(err), 7);
    CHECK_CONTAINS(pm_parse_error_message(err), "NUL byte");
    pm_parse_error_free(err);
}

/* Patterns glibc's regcomp would expand into gigabytes are refused. */
static void check_regex_(const char *file, int line, const char *re, int ok)
{
    char *e = malloc(strlen(re) * 2 + 16);
    size_t k = 0;
    memcpy(e, "x{a=~\"", 6);
    k = 6;
    for (const char *p = re; *p; p++) {
        if (*p == '"' || *p == '\\') e[k++] = '\\';
        e[k++] = *p;
    }
    memcpy(e + k, "\"}", 3);
    pm__anode *n = NULL;
    pm_parse_error_t *err = NULL;
    pm_status_t st = parse(e, &n, &err);
    if (ok ? st != PM_OK
           : (st != PM_EPARSE || pm_parse_error_column(err) != 6 ||
              strcmp(pm_parse_error_expected(err), "a simpler regular expression") != 0)) {
        th_failures++;
        fprintf(stderr, "  %s:%d: regex \"%.60s\": %s %s\n", file, line, re, pm_status_name(st),
                err ? pm_parse_error_message(err) : "");
    }
    pm__anode_free(n);
    pm_parse_error_free(err);
    free(e);
}
#define CHECK_REGEX_OK(re) check_regex_(__FILE__, __LINE__, re, 1)
#define CHECK_REGEX_REFUSED(re) check_regex_(__FILE__, __LINE__, re, 0)

TEST(test_regex_budget)
{
    CHECK_REGEX_OK("5..");
    CHECK_REGEX_OK("api|web|db");
    CHECK_REGEX_OK("prod-.*|.*-canary");
    CHECK_REGEX_OK(".*foo.*bar.*");
    CHECK_REGEX_OK("(GET|POST)?/api/v[0-9]+/.*");
    CHECK_REGEX_OK("([a-z0-9-]+\\.){1,8}[a-z]{2,63}");
    CHECK_REGEX_OK("[]a[:alpha:][.-.][=e=]]+x");
    CHECK_REGEX_OK("x{2,}y{0,3}z{4}");
    CHECK_REGEX_OK("[a-z]{1000}");
    CHECK_REGEX_OK("(a?){100}");
    CHECK_REGEX_OK("a++++++++++"); /* 2^11 - 1 units */
    CHECK_REGEX_OK("((a+)+)+");
    CHECK_REGEX_OK("(^|$)x");
    /* too big */
    CHECK_REGEX_REFUSED("a+++++++++++++++++++++++++");
    CHECK_REGEX_REFUSED("a+++++++++++");
    CHECK_REGEX_REFUSED("(a{100}){100}");
    CHECK_REGEX_REFUSED("((a{30}){30}){30}");
    CHECK_REGEX_REFUSED(".{3000}");
    CHECK_REGEX_REFUSED("(((((((((((a+)+)+)+)+)+)+)+)+)+)+)+");
    CHECK_REGEX_REFUSED("x{99999}");
    /* too many optional parts */
    CHECK_REGEX_REFUSED("(a?){600}");
    CHECK_REGEX_REFUSED("((a?){20}){30}");
    CHECK_REGEX_REFUSED("(a*|b*|c*|d*|e*|f*|g*|h*|i*|j*|k*|l*|m*|n*|o*|p*|q*|r*|s*|t*|u*){30}");
    /* an unbounded loop over what can match the empty string */
    CHECK_REGEX_REFUSED("a*+");
    CHECK_REGEX_REFUSED("a?*");
    CHECK_REGEX_REFUSED("(a*)+");
    CHECK_REGEX_REFUSED("(a|b?)+");
    CHECK_REGEX_REFUSED("(a?b?){2,}");
    CHECK_REGEX_REFUSED("()*");
    CHECK_REGEX_REFUSED("a**"); /* just a*, but a loop over "" all the same */
    CHECK_REGEX_REFUSED("(^)+");
    CHECK_REGEX_REFUSED("5,+++)++*+++++++"); /* found by the fuzzer: minutes in regcomp */
    /* alternations of a few hundred names are fine, thousands are not */
    char alt[20000];
    size_t k = 0;
    for (int i = 0; i < 290; i++)
        k += (size_t)snprintf(alt + k, sizeof alt - k, "%sh%04d", i ? "|" : "", i);
    CHECK_REGEX_OK(alt);
    for (int i = 290; i < 2000; i++)
        k += (size_t)snprintf(alt + k, sizeof alt - k, "|h%04d", i);
    CHECK_REGEX_REFUSED(alt);
    /* deep groups: counted without recursion */
    k = 0;
    for (int i = 0; i < 300; i++) alt[k++] = '(';
    alt[k++] = 'a';
    for (int i = 0; i < 300; i++) alt[k++] = ')';
    alt[k] = '\0';
    CHECK_REGEX_OK(alt);
    k = 0;
    for (int i = 0; i < 5000; i++) alt[k++] = '(';
    alt[k] = '\0';
    CHECK_REGEX_REFUSED(alt);
    /* a budget per expression too: the fifth of these is refused */
    CHECK_ERR("x{a=~\"[a-z]{2000}\",b=~\"[a-z]{2000}\",c=~\"[a-z]{2000}\",d=~\"[a-z]{2000}\","
              "e=~\"[a-z]{2000}\"}",
              74, "a simpler regular expression", "expand to more than 8192 units");
    CHECK_TREE("x{a=~\"(a?){100}\"} + y{b=~\"(a?){100}\"}",
               "(x{a=~\"(a?){100}\"} + y{b=~\"(a?){100}\"})");
    CHECK_ERR("x{a=~\"a++++++++++++\"}", 6, "a simpler regular expression", "too complex");
    CHECK_ERR("x{a!~\"(a*)+\"}", 6, "a simpler regular expression",
              "repeats without bound a part that can match the empty string");
    /* equality matchers are not regexes */
    CHECK_TREE("x{a=\"(a*)+\"}", "x{a=\"(a*)+\"}");
}

/* ------------------------------------------------------------ durations */

/* The range of "rate(<s>)". */
static int64_t range_of(const char *s)
{
    char in[128];
    snprintf(in, sizeof in, "rate(%s)", s);
    pm__anode *n = NULL;
    if (parse(in, &n, NULL) != PM_OK) return -1;
    int64_t r = n->u.call.arg->kind == PM__AN_RANGE ? n->u.call.arg->u.sel.range_ns : -2;
    pm__anode_free(n);
    return r;
}

TEST(test_durations)
{
    const int64_t S = PM__NS_PER_S;
    CHECK_EQ_INT(range_of("x[1h30m]"), 5400 * S);
    CHECK_EQ_INT(range_of("x[500ms]"), 500000000);
    CHECK_EQ_INT(range_of("x[1.5h]"), 5400 * S);
    CHECK_EQ_INT(range_of("x[30s]"), 30 * S);
    CHECK_EQ_INT(range_of("x[1d]"), 86400 * S);
    CHECK_EQ_INT(range_of("x[2w]"), 14 * 86400 * S);
    CHECK_EQ_INT(range_of("x[1y]"), 365 * 86400 * S);
    CHECK_EQ_INT(range_of("x[1y2w3d4h5m6s7ms]"),
                 (365 + 14 + 3) * 86400 * S + 4 * 3600 * S + 5 * 60 * S + 6 * S + 7000000);
    CHECK_EQ_INT(range_of("x[0.25s]"), 250000000);
    CHECK_EQ_INT(range_of("x[1ms]"), 1000000);
    CHECK_EQ_INT(range_of("x[1s500ms]"), 1500000000);
    CHECK_ERR("x[0s]", 3, "a duration", "a range must be longer than 0");
    CHECK_ERR("x[0]", 3, "a duration", "expected a duration but found '0'");
    CHECK_ERR("x[5]", 3, "a duration", "expected a duration but found '5'");
    CHECK_ERR("x[5x]", 3, "a duration", "expected a duration but found '5x'");
    CHECK_ERR("x[m5]", 3, "a duration", "expected a duration but found 'm5'");
    CHECK_ERR("x[1m1h]", 3, "a duration", "units must be in decreasing order");
    CHECK_ERR("x[1s1s]", 3, "a duration", "units must be in decreasing order");
    CHECK_ERR("x[1ms1s]", 3, "a duration", "units must be in decreasing order");
    CHECK_ERR("x[1.h]", 3, "a duration", "expected a duration but found '1.h'");
    CHECK_ERR("x[99999999999y]", 3, "a duration", "out of range");
    CHECK_ERR("x[99999999999999999999999s]", 3, "a duration", "out of range");
    CHECK_ERR("x[]", 3, "a duration", "expected a duration but found ']'");
    CHECK_ERR("x[5m", 5, "']'", "expected ']' but found end of input");
    CHECK_ERR("x[5m)", 5, "']'", "expected ']' but found ')'");
    CHECK_ERR("rate(x[5m)", 10, "']'", "expected ']' but found ')'");
    /* a duration as a number in the wrong order */
    CHECK_ERR("1m1h + x", 1, "a duration", "decreasing order");
}

/* ------------------------------------------------------------ errors */

TEST(test_expression_errors)
{
    CHECK_ERR("", 1, "an expression", "expected an expression but found end of input");
    CHECK_ERR("   ", 4, "an expression", "found end of input");
    CHECK_ERR("x[5m] > 1", 1, "an instant vector",
              "expected an instant vector but found a range vector");
    CHECK_ERR("1 + x[5m]", 5, "an instant vector", "found a range vector");
    CHECK_ERR("-x[5m]", 2, "an instant vector", "found a range vector");
    CHECK_ERR("x[5m]", 1, "an instant vector", "found a range vector");
    CHECK_ERR("(x[5m])", 2, "an instant vector", "found a range vector");
    CHECK_ERR("x[5m] y", 1, "an instant vector", "found a range vector");
    CHECK_ERR("2 ^ x[5m]", 5, "an instant vector", "found a range vector");
    CHECK_ERR("x[5m] ^ 2", 1, "an instant vector", "found a range vector");
    CHECK_ERR("rate(x)", 6, "a range vector", "expected a range vector but found an instant vector");
    CHECK_ERR("a b", 3, "an operator or end of input", "but found 'b'");
    CHECK_ERR("x offset 5m", 3, "an operator or end of input", "found 'offset'");
    CHECK_ERR("(x", 3, "')'", "expected ')' but found end of input");
    CHECK_ERR("x)", 2, "an operator or end of input", "found ')'");
    CHECK_ERR("x +", 4, "an expression", "found end of input");
    CHECK_ERR("x + * y", 5, "an expression", "found '*'");
    CHECK_ERR("x = 1", 3, "an operator or end of input", "found '='");
    CHECK_ERR("x ! 1", 3, "an operator or end of input", "found '!'");
    CHECK_ERR("x $", 3, "an operator or end of input", "found '$'");
    CHECK_ERR("x \xff", 3, "an operator or end of input", "found byte 0xff");
    CHECK_ERR(".x", 1, "an expression", "found '.'");
    CHECK_ERR("5x", 1, "a number", "invalid number '5x'");
    CHECK_ERR("0x10", 1, "a number", "invalid number '0x10'");
    CHECK_ERR("1e", 1, "a number", "invalid number '1e'");
    CHECK_ERR("1e3m", 1, "a number", "invalid number '1e3m'");
    CHECK_ERR("1.2.3", 1, "a number", "invalid number '1.2.3'");
    CHECK_ERR("\"str\"", 1, "an expression", "expected an expression but found a string");
    CHECK_ERR("1 and x", 1, "an instant vector", "found a scalar");
    CHECK_ERR("x or 1", 6, "an instant vector", "found a scalar");
    CHECK_ERR("x unless (1 + 2)", 11, "an instant vector", "found a scalar");
    CHECK_ERR("a + on(b c", 10, "',' or ')'", "found 'c'");
    CHECK_ERR("a + on(1) b", 8, "a label name", "found '1'");
    /* the leftmost problem wins */
    CHECK_ERR("rate(x) + \"unterminated", 6, "a range vector", "an instant vector");
    CHECK_ERR("x{a=~\"(\"} + y[5m] + ", 6, "a POSIX extended regular expression", "regular");
    /* a long token is cut in the message */
    char longid[200] = "x ";
    memset(longid + 2, 'y', 100);
    longid[102] = '\0';
    CHECK_ERR(longid, 3, "an operator or end of input",
              "found 'yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy...'");
}

TEST(test_positions_offset_by_at)
{
    /* Errors are reported at `at` + offset: a value deep in a file. */
    pm__srcpos at = {7, 12, 300};
    pm_parse_error_t *err = NULL;
    pm__anode *n = NULL;
    const char *s = "rate(x[5m)";
    char *c = exact_copy(s, strlen(s));
    CHECK_STATUS(pm__aexpr_parse(c, strlen(s), at, &n, &err), PM_EPARSE);
    free(c);
    CHECK_EQ_INT(pm_parse_error_line(err), 7);
    CHECK_EQ_INT(pm_parse_error_column(err), 21);
    CHECK_EQ_U64(pm_parse_error_offset(err), 309);
    CHECK_STR(pm_parse_error_expected(err), "']'");
    CHECK_STR(pm_parse_error_message(err), "line 7, column 21: expected ']' but found ')'");
    pm_parse_error_free(err);
    /* the first error wins: an error already there is kept */
    err = NULL;
    CHECK_STATUS(pm__perr(&err, 1, 1, 0, "x", "first"), PM_EPARSE);
    CHECK_STATUS(parse("rate(x)", &n, &err), PM_EPARSE);
    CHECK_STR(pm_parse_error_message(err), "line 1, column 1: first");
    pm_parse_error_free(err);
    /* no error object wanted */
    CHECK_STATUS(parse("rate(x)", &n, NULL), PM_EPARSE);
    CHECK(n == NULL);
}

TEST(test_depth_and_length_limits)
{
    /* 256 nested parentheses are fine, 257 are not */
    char *s = malloc(70000);
    REQUIRE(s);
    for (int depth = 256; depth <= 257; depth++) {
        size_t k = 0;
        for (int i = 0; i < depth; i++) s[k++] = '(';
        s[k++] = 'x';
        for (int i = 0; i < depth; i++) s[k++] = ')';
        pm__anode *n = NULL;
        pm_parse_error_t *err = NULL;
        pm_status_t st = parse_n(s, k, &n, &err);
        if (depth == 256) {
            CHECK_OK(st);
        } else {
            CHECK_STATUS(st, PM_EPARSE);
            CHECK_EQ_INT(pm_parse_error_column(err), 257);
            CHECK_CONTAINS(pm_parse_error_message(err), "nested too deeply");
        }
        pm__anode_free(n);
        pm_parse_error_free(err);
    }
    /* 60000 parentheses, minus signs, carets and arguments: refused, no crash */
    const char *units[] = {"(", "-", "2^", "abs(", "sum(", "rate("};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t k = 0, ul = strlen(units[u]);
        while (k + ul < 60000) {
            memcpy(s + k, units[u], ul);
            k += ul;
        }
        s[k++] = 'x';
        pm_parse_error_t *err = NULL;
        pm__anode *n = NULL;
        CHECK_STATUS(parse_n(s, k, &n, &err), PM_EPARSE);
        CHECK_CONTAINS(pm_parse_error_message(err), "nested too deeply");
        pm_parse_error_free(err);
    }
    /* a left-deep chain: 255 operators make a tree of height 256, 256 do not */
    for (int ops = 255; ops <= 256; ops++) {
        size_t k = 0;
        s[k++] = 'x';
        for (int i = 0; i < ops; i++) {
            memcpy(s + k, "+x", 2);
            k += 2;
        }
        pm_parse_error_t *err = NULL;
        pm__anode *n = NULL;
        pm_status_t st = parse_n(s, k, &n, &err);
        if (ops == 255) {
            CHECK_OK(st);
        } else {
            CHECK_STATUS(st, PM_EPARSE);
            CHECK_EQ_INT(pm_parse_error_column(err), 2 * 256); /* the 256th '+' */
            CHECK_CONTAINS(pm_parse_error_message(err), "nested too deeply");
        }
        pm__anode_free(n);
        pm_parse_error_free(err);
    }
    /* 255 minus signs before a name are a chain of 256 nodes */
    for (int signs = 255; signs <= 256; signs++) {
        memset(s, '-', (size_t)signs);
        s[signs] = 'x';
        pm__anode *n = NULL;
        pm_status_t st = parse_n(s, (size_t)signs + 1, &n, NULL);
        CHECK_STATUS(st, signs == 255 ? PM_OK : PM_EPARSE);
        pm__anode_free(n);
    }
    /* 64 KiB of expression is the limit */
    memset(s, ' ', 65536);
    s[0] = 'x';
    pm__anode *n = NULL;
    CHECK_OK(parse_n(s, 65536, &n, NULL));
    pm__anode_free(n);
    pm_parse_error_t *err = NULL;
    CHECK_STATUS(parse_n(s, 65537, &n, &err), PM_EPARSE);
    CHECK_CONTAINS(pm_parse_error_message(err), "longer than 65536 bytes");
    pm_parse_error_free(err);
    free(s);
}

TEST(test_bad_arguments)
{
    pm__anode *n = (pm__anode *)1;
    pm_parse_error_t *err = NULL;
    CHECK_STATUS(pm__aexpr_parse(NULL, 0, PM__SRCPOS_START, &n, &err), PM_EINVAL);
    CHECK(n == NULL);
    CHECK(err == NULL);
    CHECK_STATUS(pm__aexpr_parse("x", 1, PM__SRCPOS_START, NULL, &err), PM_EINVAL);
    pm__anode_free(NULL);
    pm__anode_walk(NULL, NULL, NULL);
    CHECK_STATUS(pm__anode_copy(NULL, &n), PM_EINVAL);
    CHECK(n == NULL);
    REQUIRE(parse("x", &n, NULL) == PM_OK);
    CHECK_STATUS(pm__anode_copy(n, NULL), PM_EINVAL);
    pm__anode_walk(n, NULL, NULL);
    pm__anode_free(n);
    size_t nr = 5;
    CHECK_STATUS(pm_alert_rules_check(NULL, 0, &nr, &err), PM_EINVAL);
    CHECK(err == NULL);
    CHECK_EQ_U64(nr, 0);
    CHECK_STATUS(pm_alert_rules_check(NULL, 10, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm__arules_parse(NULL, 0, keep_sink, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm__arules_parse("", 0, NULL, NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_load_string(NULL, "", 0, &err), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_load_file(NULL, "/nonexistent", &err), PM_EINVAL);
    CHECK(err == NULL);
    /* a stale error pointer is cleared at the public entry */
    CHECK_OK(pm_alert_rules_check("", 0, &nr, &err));
    CHECK(err == NULL);
    CHECK_EQ_U64(nr, 0);
    CHECK_OK(pm_alert_rules_check("", 0, NULL, NULL));
    CHECK_STATUS(pm_alert_rules_check("x", 1, NULL, NULL), PM_EPARSE);
}

/* ------------------------------------------------------------ copy and walk */

static void same_tree(const pm__anode *a, const pm__anode *b)
{
    sbuf x, y;
    x.n = y.n = 0;
    show(&x, a);
    show(&y, b);
    x.s[x.n] = y.s[y.n] = '\0';
    CHECK_STR(x.s, y.s);
}

typedef struct visits {
    int ranges, ewma;
    sbuf order;
} visits;

static void visit(const pm__anode *n, void *user)
{
    visits *v = user;
    if (n->kind == PM__AN_RANGE) {
        v->ranges++;
        sb_add(&v->order, "%s[%lld] ", n->u.sel.metric, (long long)(n->u.sel.range_ns / 1000000000));
    } else if (n->kind == PM__AN_CALL && n->u.call.fn == PM__FN_ZSCORE_EWMA) {
        v->ewma++;
        sb_add(&v->order, "ewma(%g) ", n->u.call.param);
    } else {
        sb_add(&v->order, "?? ");
    }
}

TEST(test_copy_and_walk)
{
    const char *exprs[] = {
        "sum by (b,a) (rate(x{s=~\"5..\",t!=\"u\"}[5m])) / ignoring(z) sum without (c) (rate(x[5m])) > bool 0.05",
        "-zscore_ewma(abs(a - b), 1h) ^ 2 or p99(h[1m]) and on(q) quantile_over_time(0.5, h[2m])",
        "predict_linear(d{m!~\"x|y\"}[1h], 3600) > 1e12 unless absent(up)",
        "1", "x", "-x"};
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        pm__anode *a = NULL, *b = NULL;
        REQUIRE(parse(exprs[i], &a, NULL) == PM_OK);
        REQUIRE(pm__anode_copy(a, &b) == PM_OK);
        same_tree(a, b);
        CHECK(a != b);
        pm__anode_free(a); /* the copy stands alone */
        pm__anode *c = NULL;
        REQUIRE(pm__anode_copy(b, &c) == PM_OK);
        same_tree(b, c);
        pm__anode_free(b);
        pm__anode_free(c);
    }
    /* a copy's regexes are compiled: they match on their own */
    pm__anode *a = NULL, *b = NULL;
    REQUIRE(parse("rate(x{s=~\"5..\"}[5m])", &a, NULL) == PM_OK);
    REQUIRE(pm__anode_copy(a, &b) == PM_OK);
    pm__anode_free(a);
    const pm__amatcher *m = &b->u.call.arg->u.sel.m[0];
    CHECK(m->has_re);
    CHECK(pm__amatcher_match(m, "503"));
    CHECK(!pm__amatcher_match(m, "1503"));
    CHECK_EQ_INT(b->u.call.arg->u.sel.range_ns, 300 * PM__NS_PER_S);
    pm__anode_free(b);

    /* walk: every range and every zscore_ewma call, in source order */
    REQUIRE(parse("rate(a[1m]) + zscore_ewma(sum(rate(b[2m])), 1h) / -p99(c[3m]) "
                  "or predict_linear(d[4m], 60) and zscore_ewma(e, 30s)",
                  &a, NULL) == PM_OK);
    visits v;
    memset(&v, 0, sizeof v);
    pm__anode_walk(a, visit, &v);
    CHECK_EQ_INT(v.ranges, 4);
    CHECK_EQ_INT(v.ewma, 2);
    CHECK_STR(v.order.s, "a[60] ewma(3600) b[120] c[180] d[240] ewma(30) ");
    pm__anode_free(a);
    memset(&v, 0, sizeof v);
    REQUIRE(parse("x + 1", &a, NULL) == PM_OK);
    pm__anode_walk(a, visit, &v);
    CHECK_EQ_INT(v.ranges + v.ewma, 0);
    pm__anode_free(a);
}

/* ------------------------------------------------------------ rule files */

static const char *const example_file =
    "# Error rate above 5% for an hour (seed 002).\n"
    "alert HighErrorRate {\n"
    "  expr: sum by (service) (rate(tasks_total{status=\"error\"}[5m])) / sum by (service) "
    "(rate(tasks_total[5m])) > 0.05\n"
    "  for: 1h\n"
    "  repeat: 30m\n"
    "  severity: critical\n"
    "  label team: \"orchestration\"\n"
    "  annotation summary: \"error rate {{ $value | humanizePercentage }} on {{ $labels.service "
    "}}\"\n"
    "}\n"
    "\n"
    "alert MemoryHigh {\n"
    "  expr: process_resident_memory_bytes / machine_memory_bytes\n"
    "  warning: > 0.85\n"
    "  critical: > 0.95\n"
    "  resolve: < 0.80\n"
    "  for: 5m\n"
    "}\n";

TEST(test_rules_example)
{
    size_t nr = 0;
    pm_parse_error_t *err = NULL;
    CHECK_OK(check(example_file, &nr, &err));
    CHECK(err == NULL);
    CHECK_EQ_U64(nr, 2);

    REQUIRE(parse_rules(example_file, NULL) == PM_OK);
    REQUIRE(g_nrules == 2);
    const pm_alert_rule_t *r = g_rules[0];
    CHECK_STR(r->name, "HighErrorRate");
    CHECK_EQ_INT(g_at[0].line, 2);
    CHECK_EQ_INT(g_at[0].column, 1);
    CHECK_EQ_U64(g_at[0].offset, 46);
    CHECK(r->expr && r->expr->kind == PM__AN_BIN && r->expr->u.bin.op == PM__OP_GT);
    CHECK_EQ_INT(r->for_ns, 3600 * PM__NS_PER_S);
    CHECK_EQ_INT(r->repeat_ns, 1800 * PM__NS_PER_S);
    CHECK_EQ_INT(r->severity, PM_SEVERITY_CRITICAL);
    REQUIRE(r->nlabels == 1);
    CHECK_STR(r->labels[0].name, "team");
    CHECK_STR(r->labels[0].value, "orchestration");
    REQUIRE(r->nannots == 1);
    CHECK_STR(r->annots[0].name, "summary");
    CHECK_STR(r->annots[0].text,
              "error rate {{ $value | humanizePercentage }} on {{ $labels.service }}");
    r = g_rules[1];
    CHECK_STR(r->name, "MemoryHigh");
    CHECK_EQ_INT(g_at[1].line, 11);
    CHECK(r->thresholds);
    CHECK_EQ_INT(r->th_op, PM__OP_GT);
    CHECK_EQ_DBL(r->warn, 0.85);
    CHECK_EQ_DBL(r->crit, 0.95);
    CHECK(r->resolve_short);
    CHECK_EQ_INT(r->resolve_op, PM__OP_LT);
    CHECK_EQ_DBL(r->resolve_val, 0.80);
    CHECK_EQ_INT(r->for_ns, 300 * PM__NS_PER_S);
    CHECK_EQ_INT(r->severity, PM_SEVERITY_WARNING); /* the default */
    free_kept();
}

TEST(test_rules_every_field)
{
    const char *f =
        "alert every_field:x {   # a comment after the brace\r\n"
        "\texpr:   rate(x{a=\"#not a comment\"}[5m]) > 1   # a comment\r\n"
        "  for: 1h30m\r\n"
        "  keep_firing_for : 500ms\r\n"
        "  cooldown: 1.5h\r\n"
        "\r\n"
        "  # a comment line\r\n"
        "  severity: info # trailing\r\n"
        "  resolve: rate(x[5m]) < 0.5\r\n"
        "  nodata: alerting\r\n"
        "  enabled: false\r\n"
        "  label team: \"core\"\r\n"
        "  label  tier : \"a \\\"b\\\" \\\\ \\n\\t c\"\r\n"
        "  annotation summary: \"{{ $alertname }} {{ $severity }} {{ $value }}\"\r\n"
        "  annotation description: \"\"\r\n"
        "  }  # end\r\n"
        "alert second { \n"
        " expr: y\n"
        " for: 0\n"
        " nodata: keep\n"
        " enabled: true\n"
        " repeat: 0s\n"
        " keep_firing_for: 2d\n"
        " severity: warning\n"
        " resolve: >= -Inf\n"
        "}\n"
        "alert third{\n"
        " expr: z\n"
        " nodata: ok\n"
        " critical: <= 10\n"
        " severity_typo_is_not_here: 1\n"
        "}";
    pm_parse_error_t *err = NULL;
    /* the unknown field on the last rule is reported exactly */
    CHECK_STATUS(parse_rules(f, &err), PM_EPARSE);
    CHECK_EQ_INT(pm_parse_error_line(err), 31);
    CHECK_EQ_INT(pm_parse_error_column(err), 2);
    CHECK_STR(pm_parse_error_expected(err), "a field name");
    CHECK_STR(pm_parse_error_message(err),
              "line 31, column 2: unknown field 'severity_typo_is_not_here'");
    pm_parse_error_free(err);
    err = NULL;
    /* the two rules before it reached the sink */
    CHECK_EQ_U64(g_nrules, 2);
    free_kept();

    char *g = strdup(f);
    *strstr(g, " severity_typo_is_not_here: 1\n") = '\0';
    strcat(g, "}\n");
    REQUIRE(parse_rules(g, &err) == PM_OK);
    REQUIRE(g_nrules == 3);
    const pm_alert_rule_t *r = g_rules[0];
    CHECK_STR(r->name, "every_field:x");
    CHECK_STR(r->expr_text, "rate(x{a=\"#not a comment\"}[5m]) > 1");
    CHECK_EQ_INT(r->for_ns, 5400 * PM__NS_PER_S);
    CHECK_EQ_INT(r->keep_ns, 500000000);
    CHECK_EQ_INT(r->repeat_ns, 5400 * PM__NS_PER_S);
    CHECK_EQ_INT(r->severity, PM_SEVERITY_INFO);
    CHECK(!r->resolve_short);
    CHECK(r->resolve != NULL);
    CHECK_STR(r->resolve_text, "rate(x[5m]) < 0.5");
    CHECK_EQ_INT(r->nodata, PM_NODATA_ALERTING);
    CHECK(!r->enabled);
    REQUIRE(r->nlabels == 2);
    CHECK_STR(r->labels[0].name, "team");
    CHECK_STR(r->labels[1].name, "tier");
    CHECK_STR(r->labels[1].value, "a \"b\" \\ \n\t c");
    REQUIRE(r->nannots == 2);
    CHECK_STR(r->annots[0].name, "description");
    CHECK_STR(r->annots[0].text, "");
    CHECK_STR(r->annots[1].name, "summary");
    CHECK_STR(r->annots[1].text, "{{ $alertname }} {{ $severity }} {{ $value }}");
    CHECK_EQ_INT(g_at[0].line, 1);
    r = g_rules[1];
    CHECK_STR(r->name, "second");
    CHECK_EQ_INT(g_at[1].line, 17);
    CHECK_EQ_INT(r->for_ns, 0);
    CHECK_EQ_INT(r->repeat_ns, 0);
    CHECK_EQ_INT(r->keep_ns, 2 * 86400 * PM__NS_PER_S);
    CHECK_EQ_INT(r->nodata, PM_NODATA_KEEP);
    CHECK(r->enabled);
    CHECK_EQ_INT(r->severity, PM_SEVERITY_WARNING);
    CHECK(r->resolve_short);
    CHECK_EQ_INT(r->resolve_op, PM__OP_GE);
    CHECK(isinf(r->resolve_val) && r->resolve_val < 0);
    r = g_rules[2];
    CHECK_STR(r->name, "third");
    CHECK_EQ_INT(r->nodata, PM_NODATA_OK);
    CHECK(r->thresholds);
    CHECK_EQ_INT(r->th_op, PM__OP_LE);
    CHECK(isnan(r->warn));
    CHECK_EQ_DBL(r->crit, 10);
    free_kept();
    free(g);

    /* a file without a final newline, blanks only, comments only */
    size_t nr = 9;
    CHECK_OK(check("alert a {\nexpr: x\n}", &nr, NULL));
    CHECK_EQ_U64(nr, 1);
    CHECK_OK(check("  \n\t\n\r\n", &nr, NULL));
    CHECK_EQ_U64(nr, 0);
    CHECK_OK(check("# only\n   # comments\n", &nr, NULL));
    CHECK_EQ_U64(nr, 0);
    CHECK_OK(check("alert a { # c\n expr: x\n} # c\nalert b {\n expr: y\n}\n", &nr, NULL));
    CHECK_EQ_U64(nr, 2);
    /* thresholds with every comparison, numbers of every form */
    const char *ops[] = {">", ">=", "<", "<=", "==", "!="};
    const pm__abinop want[] = {PM__OP_GT, PM__OP_GE, PM__OP_LT, PM__OP_LE, PM__OP_EQ, PM__OP_NE};
    for (int i = 0; i < 6; i++) {
        char t[160];
        snprintf(t, sizeof t, "alert a {\n expr: x\n warning: %s-1.5e1\n critical:%s +2 \n}\n",
                 ops[i], ops[i]);
        REQUIRE(parse_rules(t, NULL) == PM_OK);
        CHECK_EQ_INT(g_rules[0]->th_op, want[i]);
        CHECK_EQ_DBL(g_rules[0]->warn, -15);
        CHECK_EQ_DBL(g_rules[0]->crit, 2);
        free_kept();
    }
    /* a thresholded rule may use a `bool` comparison as its value */
    CHECK_OK(check("alert a {\n expr: x > bool 1\n warning: > 0\n}\n", &nr, NULL));
}

TEST(test_rules_check_counts_and_duplicates)
{
    char big[40000] = "";
    for (int i = 0; i < 300; i++) {
        char one[96];
        snprintf(one, sizeof one, "alert r%d {\n  expr: x%d > %d\n}\n", i, i, i);
        strcat(big, one);
    }
    size_t nr = 0;
    CHECK_OK(check(big, &nr, NULL));
    CHECK_EQ_U64(nr, 300);
    /* a repeated name: PM_EEXIST at the second `alert` keyword */
    strcat(big, "\n  alert r17 {\n  expr: y\n}\n");
    CHECK_RERR(big, PM_EEXIST, 902, 3, "", "rule 'r17' is already defined at line 52");
    /* even when the second has a broken body: the duplicate comes first */
    CHECK_RERR("alert a {\n expr: x\n}\nalert a {\n expr: rate(x)\n}\n", PM_EEXIST, 4, 1, "",
               "rule 'a' is already defined at line 1");
    /* names are case-sensitive */
    CHECK_OK(check("alert a {\n expr: x\n}\nalert A {\n expr: x\n}\n", &nr, NULL));
    CHECK_EQ_U64(nr, 2);
}

TEST(test_rules_errors)
{
    /* 1: unknown field */
    CHECK_RERR("alert a {\n  expr: x\n  fro: 5m\n}\n", PM_EPARSE, 3, 3, "a field name",
               "unknown field 'fro'");
    /* 2: duplicate field, the alias included */
    CHECK_RERR("alert a {\n  expr: x\n  for: 5m\n  for: 6m\n}\n", PM_EPARSE, 4, 3, "",
               "duplicate field 'for' (first at line 3)");
    CHECK_RERR("alert a {\n  expr: x\n  repeat: 5m\n  cooldown: 6m\n}\n", PM_EPARSE, 4, 3, "",
               "duplicate field 'cooldown' (first at line 3)");
    CHECK_RERR("alert a {\n  expr: x\n  expr: y\n}\n", PM_EPARSE, 3, 3, "", "duplicate field 'expr'");
    /* 3: missing expr: at the closing brace */
    CHECK_RERR("alert a {\n  for: 5m\n }\n", PM_EPARSE, 3, 2, "an 'expr' field",
               "rule 'a' has no 'expr' field");
    /* 4: an error deep inside an expr value, at its file column */
    CHECK_RERR("# x\n\nalert a {\n  for: 1m\n  expr:   sum(rate(x{a=\"b\"}[5m)) > 1\n}\n",
               PM_EPARSE, 5, 31, "']'", "expected ']' but found ')'");
    /* 5: an instant where a range is needed, and a range where an instant is */
    CHECK_RERR("alert a {\n expr: 1 + rate(x)\n}\n", PM_EPARSE, 2, 17, "a range vector",
               "an instant vector");
    CHECK_RERR("alert a {\n expr: x[5m] > 1\n}\n", PM_EPARSE, 2, 8, "an instant vector",
               "range vector");
    /* 6: bad regex: at the string */
    CHECK_RERR("alert a {\n expr: x{a=~\"[\"}\n}\n", PM_EPARSE, 2, 13,
               "a POSIX extended regular expression", "invalid regular expression");
    /* 7: quantile out of range */
    CHECK_RERR("alert a {\n expr: quantile_over_time(2, h[5m])\n}\n", PM_EPARSE, 2, 27,
               "a quantile between 0 and 1", "quantile must be between 0 and 1");
    /* 8: trailing garbage in an expression */
    CHECK_RERR("alert a {\n expr: x y\n}\n", PM_EPARSE, 2, 10, "an operator or end of input",
               "found 'y'");
    /* 9: unterminated string in an expression and in a label */
    CHECK_RERR("alert a {\n expr: x{a=\"b}\n}\n", PM_EPARSE, 2, 12, "'\"'", "unterminated string");
    CHECK_RERR("alert a {\n expr: x\n label t: \"abc\n}\n", PM_EPARSE, 3, 11, "'\"'",
               "unterminated string");
    /* 10: bad durations */
    CHECK_RERR("alert a {\n expr: x\n for: 5x\n}\n", PM_EPARSE, 3, 7, "a duration",
               "expected a duration but found '5x'");
    CHECK_RERR("alert a {\n expr: x\n for: m5\n}\n", PM_EPARSE, 3, 7, "a duration",
               "expected a duration but found 'm5'");
    CHECK_RERR("alert a {\n expr: x\n for: 1m1h\n}\n", PM_EPARSE, 3, 7, "a duration",
               "units must be in decreasing order");
    CHECK_RERR("alert a {\n expr: x\n for:\n}\n", PM_EPARSE, 3, 6, "a duration",
               "expected a duration but found end of line");
    CHECK_RERR("alert a {\n expr: x\n keep_firing_for: 5m 3s\n}\n", PM_EPARSE, 3, 22,
               "end of line", "expected end of line but found '3s'");
    CHECK_RERR("alert a {\n expr: x\n repeat: -5m\n}\n", PM_EPARSE, 3, 10, "a duration",
               "found '-5m'");
    CHECK_RERR("alert a {\n expr: x\n for: 999999999999y\n}\n", PM_EPARSE, 3, 7, "a duration",
               "out of range");
    /* 11: an error inside an annotation template, after escapes */
    CHECK_RERR("alert a {\n expr: x\n annotation s: \"a\\\"b\\\\ {{ $valu }}\"\n}\n", PM_EPARSE, 3,
               27, "a variable ($value, $labels.NAME, $alertname, $severity)",
               "unknown variable '$valu'");
    CHECK_RERR("alert a {\n expr: x\n annotation s: \"v {{ $value | humanise }}\"\n}\n",
               PM_EPARSE, 3, 31,
               "a function (humanize, humanizePercentage, humanizeDuration, printf)",
               "unknown function 'humanise'");
    CHECK_RERR("alert a {\n expr: x\n annotation s: \"\\t{{ $value\"\n}\n", PM_EPARSE, 3, 19,
               "'}}'", "unclosed action");
    CHECK_RERR("alert a {\n expr: x\n annotation s: \"{{ $value | printf `%d` }}\"\n}\n",
               PM_EPARSE, 3, 37, "one %f, %e or %g conversion", "unsupported conversion");
    /* 12: severity and thresholds, both orders */
    CHECK_RERR("alert a {\n expr: x\n severity: info\n warning: > 1\n}\n", PM_EPARSE, 4, 2, "",
               "cannot be combined with 'severity'");
    CHECK_RERR("alert a {\n expr: x\n critical: > 1\n severity: info\n}\n", PM_EPARSE, 4, 2, "",
               "'severity' cannot be combined");
    /* 13: thresholds with different comparisons */
    CHECK_RERR("alert a {\n expr: x\n warning: > 1\n critical: >= 2\n}\n", PM_EPARSE, 4, 12,
               "'>'", "same comparison: expected '>' but found '>='");
    /* 14: thresholds on a comparison, both orders */
    CHECK_RERR("alert a {\n expr: x > 1\n warning: > 1\n}\n", PM_EPARSE, 3, 2, "a value expression",
               "need a value expression");
    CHECK_RERR("alert a {\n critical: > 1\n expr: x and y\n}\n", PM_EPARSE, 3, 8,
               "a value expression", "not a comparison");
    /* 15: bad threshold values */
    CHECK_RERR("alert a {\n expr: x\n warning: 0.8\n}\n", PM_EPARSE, 3, 11, "a comparison operator",
               "expected a comparison operator but found '0.8'");
    CHECK_RERR("alert a {\n expr: x\n warning: > abc\n}\n", PM_EPARSE, 3, 13, "a number",
               "expected a number but found 'abc'");
    CHECK_RERR("alert a {\n expr: x\n warning: > 1 2\n}\n", PM_EPARSE, 3, 15, "end of line",
               "found '2'");
    CHECK_RERR("alert a {\n expr: x\n warning: > Inf\n}\n", PM_EPARSE, 3, 13, "a finite number",
               "finite");
    CHECK_RERR("alert a {\n expr: x\n critical: >\n}\n", PM_EPARSE, 3, 13, "a number",
               "found end of line");
    CHECK_RERR("alert a {\n expr: x\n critical: !=   \n}\n", PM_EPARSE, 3, 17, "a number",
               "found end of line");
    CHECK_RERR("alert a {\n expr: x\n critical: <= # c\n}\n", PM_EPARSE, 3, 15, "a number",
               "found end of line");
    CHECK_RERR("alert a {\n expr: x\n resolve: <  \t\n}\n", PM_EPARSE, 3, 15, "a number",
               "found end of line");
    /* 16: enum values */
    CHECK_RERR("alert a {\n expr: x\n severity: high\n}\n", PM_EPARSE, 3, 12,
               "'info', 'warning' or 'critical'", "found 'high'");
    CHECK_RERR("alert a {\n expr: x\n nodata: maybe\n}\n", PM_EPARSE, 3, 10,
               "'ok', 'keep' or 'alerting'", "found 'maybe'");
    CHECK_RERR("alert a {\n expr: x\n enabled: yes\n}\n", PM_EPARSE, 3, 11, "'true' or 'false'",
               "found 'yes'");
    CHECK_RERR("alert a {\n expr: x\n enabled: true false\n}\n", PM_EPARSE, 3, 16, "end of line",
               "found 'false'");
    /* 17: labels and annotations */
    CHECK_RERR("alert a {\n expr: x\n label t: \"1\"\n label t: \"2\"\n}\n", PM_EPARSE, 4, 8, "",
               "duplicate label 't' (first at line 3)");
    CHECK_RERR("alert a {\n expr: x\n annotation t: \"1\"\n annotation t: \"2\"\n}\n", PM_EPARSE, 4,
               13, "", "duplicate annotation 't'");
    CHECK_OK(check("alert a {\n expr: x\n label t: \"1\"\n annotation t: \"2\"\n}\n", NULL, NULL));
    CHECK_RERR("alert a {\n expr: x\n label alertname: \"1\"\n}\n", PM_EPARSE, 3, 8,
               "a label name", "invalid or reserved label name 'alertname'");
    CHECK_RERR("alert a {\n expr: x\n label severity: \"1\"\n}\n", PM_EPARSE, 3, 8,
               "a label name", "reserved");
    CHECK_RERR("alert a {\n expr: x\n label __x: \"1\"\n}\n", PM_EPARSE, 3, 8, "a label name",
               "reserved");
    CHECK_RERR("alert a {\n expr: x\n label: \"1\"\n}\n", PM_EPARSE, 3, 7, "a label name",
               "found ':'");
    CHECK_RERR("alert a {\n expr: x\n label t \"1\"\n}\n", PM_EPARSE, 3, 10, "':'",
               "expected ':' but found '\"1\"'");
    CHECK_RERR("alert a {\n expr: x\n label t: core\n}\n", PM_EPARSE, 3, 11, "a string",
               "expected a string but found 'core'");
    CHECK_RERR("alert a {\n expr: x\n label t: \"a\\qb\"\n}\n", PM_EPARSE, 3, 13,
               "an escape sequence", "invalid escape sequence '\\q'");
    CHECK_RERR("alert a {\n expr: x\n label t: \"\xc3\x28\"\n}\n", PM_EPARSE, 3, 11, "",
               "not valid UTF-8");
    CHECK_RERR("alert a {\n expr: x\n label t: \"a\" b\n}\n", PM_EPARSE, 3, 15, "end of line",
               "found 'b'");
    CHECK_RERR("alert a {\n expr: x\n annotation 9: \"a\"\n}\n", PM_EPARSE, 3, 13,
               "an annotation name", "found '9:'");
    /* 18: headers */
    CHECK_RERR("alrt a {\n expr: x\n}\n", PM_EPARSE, 1, 1, "'alert'", "found 'alrt'");
    CHECK_RERR("  expr: x\n", PM_EPARSE, 1, 3, "'alert'", "expected 'alert' but found 'expr:'");
    CHECK_RERR("alert {\n expr: x\n}\n", PM_EPARSE, 1, 7, "an alert name", "found '{'");
    CHECK_RERR("alert 9a {\n expr: x\n}\n", PM_EPARSE, 1, 7, "an alert name", "found '9a'");
    CHECK_RERR("alert a-b {\n expr: x\n}\n", PM_EPARSE, 1, 8, "'{'", "found '-b'");
    CHECK_RERR("alert a\n{\n expr: x\n}\n", PM_EPARSE, 1, 8, "'{'", "found end of line");
    CHECK_RERR("alert a { expr: x\n}\n", PM_EPARSE, 1, 11, "end of line", "found 'expr:'");
    CHECK_RERR("}\n", PM_EPARSE, 1, 1, "'alert'", "found '}'");
    CHECK_RERR("alert a {\n expr: x\n} alert b {\n", PM_EPARSE, 3, 3, "end of line",
               "found 'alert'");
    /* 19: a rule never closed: at the end of the text */
    CHECK_RERR("alert a {\n expr: x\n", PM_EPARSE, 3, 1, "'}'", "expected '}' but found end of input");
    CHECK_RERR("alert a {\n expr: x", PM_EPARSE, 2, 9, "'}'", "found end of input");
    /* 20: nested rule header is an unknown field */
    CHECK_RERR("alert a {\n expr: x\nalert b {\n}\n", PM_EPARSE, 3, 1, "a field name",
               "unknown field 'alert'");
    /* 21: empty values */
    CHECK_RERR("alert a {\n expr:    # nothing\n}\n", PM_EPARSE, 2, 11, "an expression",
               "expected an expression but found end of line");
    CHECK_RERR("alert a {\n expr: x\n resolve:\n}\n", PM_EPARSE, 3, 10, "an expression",
               "found end of line");
    /* 22: the resolve shorthand and a resolve expression */
    CHECK_RERR("alert a {\n expr: x\n resolve: < abc\n}\n", PM_EPARSE, 3, 13, "a number",
               "found 'abc'");
    CHECK_RERR("alert a {\n expr: x\n resolve: = 1\n}\n", PM_EPARSE, 3, 11,
               "a comparison operator", "found '='");
    CHECK_RERR("alert a {\n expr: x\n resolve: x[5m] < 1\n}\n", PM_EPARSE, 3, 11,
               "an instant vector", "range vector");
    /* 23: field syntax */
    CHECK_RERR("alert a {\n expr x\n}\n", PM_EPARSE, 2, 7, "':'", "expected ':' but found 'x'");
    CHECK_RERR("alert a {\n 1expr: x\n}\n", PM_EPARSE, 2, 2, "a field name", "found '1expr:'");
    CHECK_RERR("alert a {\n expr: x\n\x01\n}\n", PM_EPARSE, 3, 1, "a field name", "found '?'");
    /* 24: an invalid alert name (too long for a metric name) */
    char longname[400] = "alert ";
    memset(longname + 6, 'n', 300);
    strcpy(longname + 306, " {\n expr: x\n}\n");
    CHECK_RERR(longname, PM_EPARSE, 1, 7, "an alert name", "invalid alert name");
    /* 25: the first error of the file wins over later ones */
    CHECK_RERR("alert a {\n expr: rate(x)\n for: 5x\n}\nalert a {\n}\n", PM_EPARSE, 2, 13,
               "a range vector", "an instant vector");
    /* 26: an error on a CRLF line: columns do not count the CR */
    CHECK_RERR("alert a {\r\n expr: x\r\n for: 5\r\n}\r\n", PM_EPARSE, 3, 7, "a duration",
               "found '5'");
    /* 27: the example of doc/alerting.md, to the letter */
    {
        pm_parse_error_t *e = NULL;
        const char *f = "alert Broken {\n  expr: rate(tasks_total[5m) > 1\n}\n";
        CHECK_STATUS(check(f, NULL, &e), PM_EPARSE);
        CHECK_STR(pm_parse_error_message(e), "line 2, column 28: expected ']' but found ')'");
        CHECK_STR(pm_parse_error_expected(e), "']'");
        CHECK_EQ_U64(pm_parse_error_offset(e), 42);
        pm_parse_error_free(e);
    }
    /* 28: the NUL byte */
    size_t nr;
    pm_parse_error_t *err = NULL;
    const char nul[] = "alert a {\n expr: x\n label t: \"a\0b\"\n}\n";
    CHECK_STATUS(check_n(nul, sizeof nul - 1, &nr, &err), PM_EPARSE);
    CHECK_EQ_INT(pm_parse_error_line(err), 3);
    CHECK_EQ_INT(pm_parse_error_column(err), 13);
    CHECK_CONTAINS(pm_parse_error_message(err), "NUL byte");
    pm_parse_error_free(err);
    err = NULL;
    const char nul2[] = "alert a {\n expr: x\0\n}\n";
    CHECK_STATUS(check_n(nul2, sizeof nul2 - 1, &nr, &err), PM_EPARSE);
    CHECK_EQ_INT(pm_parse_error_column(err), 9);
    CHECK_STR(pm_parse_error_expected(err), "an operator or end of input");
    pm_parse_error_free(err);
}

TEST(test_rules_file_limit)
{
    /* 16 MiB is the limit */
    size_t n = (16u << 20) + 1;
    char *s = malloc(n);
    REQUIRE(s);
    memset(s, '\n', n);
    size_t nr;
    pm_parse_error_t *err = NULL;
    CHECK_STATUS(pm_alert_rules_check(s, n, &nr, &err), PM_ERANGE);
    CHECK(err == NULL);
    CHECK_OK(pm_alert_rules_check(s, n - 1, &nr, &err));
    free(s);
}

/* Set LOCPATH to a directory made with `localedef -i de_DE -f UTF-8
 * DIR/de_DE.UTF-8` to run this where no such locale is installed. */
TEST(test_numbers_ignore_the_locale)
{
    const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "ru_RU.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got) printf("  (no locale with a decimal comma installed: checked in the C locale only)\n");
    pm__anode *n = NULL;
    REQUIRE(parse("0.5 + 1.25e-1", &n, NULL) == PM_OK);
    CHECK_EQ_DBL(n->u.bin.l->u.num, 0.5);
    CHECK_EQ_DBL(n->u.bin.r->u.num, 0.125);
    pm__anode_free(n);
    REQUIRE(parse("rate(x[1.5m])", &n, NULL) == PM_OK);
    CHECK_EQ_INT(n->u.call.arg->u.sel.range_ns, 90 * PM__NS_PER_S);
    pm__anode_free(n);
    /* the slow path (more than 19 digits) */
    REQUIRE(parse("12345678901234567890123.5", &n, NULL) == PM_OK);
    CHECK_EQ_DBL(n->u.num, 12345678901234567890123.5);
    pm__anode_free(n);
    REQUIRE(parse("1.0000000000000000000000001e-5", &n, NULL) == PM_OK);
    CHECK_EQ_DBL(n->u.num, 1e-5);
    pm__anode_free(n);
    REQUIRE(parse_rules("alert a {\n expr: x\n warning: > 0.25\n for: 1.5m\n}\n", NULL) == PM_OK);
    CHECK_EQ_DBL(g_rules[0]->warn, 0.25);
    CHECK_EQ_INT(g_rules[0]->for_ns, 90 * PM__NS_PER_S);
    free_kept();
    setlocale(LC_NUMERIC, "C");
}

/* ------------------------------------------------------------ loaders */

static char *write_temp(const char *text, size_t n)
{
    char *path = strdup("/tmp/pm_alert_rules_XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) abort();
    if (write(fd, text, n) != (ssize_t)n) abort();
    close(fd);
    return path;
}

TEST(test_loaders)
{
    pm_registry_t *reg = NULL;
    REQUIRE(pm_registry_new(NULL, &reg) == PM_OK);
    pm_alert_engine_opts_t *o = NULL;
    REQUIRE(pm_alert_engine_opts_new(&o) == PM_OK);
    pm_alert_engine_opts_set_metrics(o, 0);
    pm_alert_engine_opts_set_dispatch_thread(o, 0);
    pm_alert_engine_t *e = NULL;
    REQUIRE(pm_alert_engine_new(reg, o, &e) == PM_OK);
    pm_parse_error_t *err = NULL;

    CHECK_OK(pm_alert_engine_load_string(e, example_file, strlen(example_file), &err));
    CHECK(err == NULL);
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 2);
    /* all or nothing: the second file repeats a loaded name at line 4 */
    const char *f2 = "alert NewOne {\n expr: y\n}\nalert MemoryHigh {\n expr: z\n}\n";
    CHECK_STATUS(pm_alert_engine_load_string(e, f2, strlen(f2), &err), PM_EEXIST);
    CHECK_EQ_INT(pm_parse_error_line(err), 4);
    CHECK_EQ_INT(pm_parse_error_column(err), 1);
    CHECK_EQ_U64(pm_parse_error_offset(err), 26);
    CHECK_CONTAINS(pm_parse_error_message(err), "'MemoryHigh' is already loaded");
    pm_parse_error_free(err);
    err = NULL;
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 2);
    /* a parse error loads nothing */
    const char *f3 = "alert A1 {\n expr: y\n}\nalert A2 {\n expr: rate(z)\n}\n";
    CHECK_STATUS(pm_alert_engine_load_string(e, f3, strlen(f3), &err), PM_EPARSE);
    CHECK_EQ_INT(pm_parse_error_line(err), 5);
    CHECK_EQ_INT(pm_parse_error_column(err), 13);
    pm_parse_error_free(err);
    err = NULL;
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 2);
    /* duplicates inside one file */
    const char *f4 = "alert B {\n expr: y\n}\nalert B {\n expr: z\n}\n";
    CHECK_STATUS(pm_alert_engine_load_string(e, f4, strlen(f4), &err), PM_EEXIST);
    CHECK_EQ_INT(pm_parse_error_line(err), 4);
    pm_parse_error_free(err);
    err = NULL;
    CHECK_OK(pm_alert_engine_load_string(e, "", 0, &err));
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 2);

    /* from a file: positions are file positions */
    const char *f5 = "# rules\nalert FromFile {\n  expr: up == 0\n  for: 1m\n}\n";
    char *path = write_temp(f5, strlen(f5));
    CHECK_OK(pm_alert_engine_load_file(e, path, &err));
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);
    unlink(path);
    free(path);
    const char *f6 = "# rules\nalert Broken {\n  expr: up ==\n}\n";
    path = write_temp(f6, strlen(f6));
    CHECK_STATUS(pm_alert_engine_load_file(e, path, &err), PM_EPARSE);
    CHECK_EQ_INT(pm_parse_error_line(err), 3);
    CHECK_EQ_INT(pm_parse_error_column(err), 14);
    CHECK_EQ_U64(pm_parse_error_offset(err), 36);
    pm_parse_error_free(err);
    err = NULL;
    unlink(path);
    free(path);
    CHECK_STATUS(pm_alert_engine_load_file(e, "/nonexistent/rules.alert", &err), PM_EIO);
    CHECK(err == NULL);
    CHECK_STATUS(pm_alert_engine_load_file(e, "/tmp", &err), PM_EIO);
    CHECK_STATUS(pm_alert_engine_load_file(e, NULL, &err), PM_EINVAL);
    CHECK_STATUS(pm_alert_engine_load_string(e, NULL, 0, &err), PM_EINVAL);
    /* over 16 MiB */
    size_t big = (16u << 20) + 1;
    char *blank = malloc(big);
    REQUIRE(blank);
    memset(blank, '\n', big);
    path = write_temp(blank, big);
    CHECK_STATUS(pm_alert_engine_load_file(e, path, &err), PM_ERANGE);
    CHECK(err == NULL);
    unlink(path);
    free(path);
    /* exactly 16 MiB is fine */
    path = write_temp(blank, big - 1);
    CHECK_OK(pm_alert_engine_load_file(e, path, &err));
    unlink(path);
    free(path);
    free(blank);
    CHECK_EQ_U64(pm_alert_engine_rule_count(e), 3);

    pm_alert_engine_free(e);
    pm_alert_engine_opts_free(o);
    pm_registry_free(reg);
}

TEST_MAIN(TH_CASE(test_tokens_numbers), TH_CASE(test_tokens_names_and_operators),
          TH_CASE(test_precedence_and_associativity), TH_CASE(test_aggregations),
          TH_CASE(test_functions), TH_CASE(test_pnn), TH_CASE(test_matchers), TH_CASE(test_regex_budget),
          TH_CASE(test_durations), TH_CASE(test_expression_errors),
          TH_CASE(test_positions_offset_by_at), TH_CASE(test_depth_and_length_limits),
          TH_CASE(test_bad_arguments), TH_CASE(test_copy_and_walk), TH_CASE(test_rules_example),
          TH_CASE(test_rules_every_field), TH_CASE(test_rules_check_counts_and_duplicates),
          TH_CASE(test_rules_errors), TH_CASE(test_rules_file_limit),
          TH_CASE(test_numbers_ignore_the_locale), TH_CASE(test_loaders))
