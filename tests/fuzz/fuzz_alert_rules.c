/* libFuzzer target: the alert rule-file parser (pm_alert_rules_check), the
 * expression parser and the annotation template parser on arbitrary bytes
 * (not NUL-terminated). They must never crash, read past the input, leak or
 * return a status outside their documented set. A parse error must carry a
 * position inside the input whose line and column agree with its offset, an
 * `expected` text and a message that starts with that position. An accepted
 * expression must copy to an equal tree and walk without trouble; an
 * accepted template must copy and render. */
#include "fuzz_common.h"

#include "internal/alert_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fail(const char *what, long a, long b)
{
    fprintf(stderr, "fuzz_alert_rules: %s (%ld, %ld)\n", what, a, b);
    abort();
}

/* The error must sit in [0, size] with line/column matching the offset:
 * in `multi_line` text by counting newlines, else on line 1. */
static void check_error(const pm_parse_error_t *e, const char *in, size_t size, int multi_line)
{
    if (!e) fail("PM_EPARSE without an error", 0, 0);
    size_t off = pm_parse_error_offset(e);
    unsigned line = pm_parse_error_line(e), col = pm_parse_error_column(e);
    if (off > size) fail("error offset past the input", (long)off, (long)size);
    unsigned want_line = 1;
    size_t line_start = 0;
    if (multi_line)
        for (size_t i = 0; i < off; i++)
            if (in[i] == '\n') {
                want_line++;
                line_start = i + 1;
            }
    if (line != want_line) fail("error line does not match its offset", line, want_line);
    if (col != off - line_start + 1) fail("error column does not match its offset", col, (long)off);
    char head[64];
    snprintf(head, sizeof head, "line %u, column %u: ", line, col);
    if (strncmp(pm_parse_error_message(e), head, strlen(head)) != 0)
        fail("message does not start with the position", line, col);
    if (!pm_parse_error_expected(e)) fail("NULL expected", 0, 0);
}

static int counter(const pm__anode *n, void *user)
{
    (void)n;
    return ++*(int *)user;
}

static void visit(const pm__anode *n, void *user)
{
    if (n->kind != PM__AN_RANGE &&
        !(n->kind == PM__AN_CALL && n->u.call.fn == PM__FN_ZSCORE_EWMA))
        fail("walk visited another kind of node", n->kind, 0);
    if (n->kind == PM__AN_RANGE && n->u.sel.range_ns <= 0) fail("range <= 0", 0, 0);
    counter(n, user);
}

static void check_expr(const char *in, size_t size)
{
    pm__anode *n = NULL;
    pm_parse_error_t *err = NULL;
    int st = pm__aexpr_parse(in, size, PM__SRCPOS_START, &n, &err);
    if (!known_status(st)) fail("unknown status from pm__aexpr_parse", st, 0);
    if (st != PM_OK && st != PM_EPARSE && st != PM_ENOMEM) fail("pm__aexpr_parse status", st, 0);
    if (st == PM_EPARSE) check_error(err, in, size, 0);
    if (st != PM_OK) {
        if (n) fail("tree left on failure", st, 0);
        pm_parse_error_free(err);
        return;
    }
    if (!n || err) fail("no tree, or an error, on success", 0, 0);
    if (n->kind == PM__AN_RANGE) fail("a range at the top", 0, 0);
    pm__anode *c = NULL;
    st = pm__anode_copy(n, &c);
    if (st != PM_OK) fail("pm__anode_copy", st, 0);
    int a = 0, b = 0;
    pm__anode_walk(n, visit, &a);
    pm__anode_walk(c, visit, &b);
    if (a != b) fail("copy walks differently", a, b);
    pm__anode_free(n);
    pm__anode_free(c);
}

static void check_rules(const char *in, size_t size)
{
    size_t nr = 12345;
    pm_parse_error_t *err = NULL;
    int st = pm_alert_rules_check(in, size, &nr, &err);
    if (!known_status(st)) fail("unknown status from pm_alert_rules_check", st, 0);
    if (st != PM_OK && st != PM_EPARSE && st != PM_EEXIST && st != PM_ENOMEM)
        fail("pm_alert_rules_check status", st, 0);
    if (st == PM_EPARSE || st == PM_EEXIST) check_error(err, in, size, 1);
    else if (err) fail("an error object without a parse error", st, 0);
    if (st != PM_OK && nr != 0) fail("rule count on failure", (long)nr, 0);
    pm_parse_error_free(err);
}

static void check_template(const char *in, size_t size)
{
    pm__atmpl *t = NULL;
    pm_parse_error_t *err = NULL;
    int st = pm__atmpl_parse(in, size, PM__SRCPOS_START, &t, &err);
    if (!known_status(st)) fail("unknown status from pm__atmpl_parse", st, 0);
    if (st != PM_OK && st != PM_EPARSE && st != PM_ENOMEM) fail("pm__atmpl_parse status", st, 0);
    if (st == PM_EPARSE) check_error(err, in, size, 0);
    pm_parse_error_free(err);
    if (st != PM_OK) {
        if (t) fail("template left on failure", st, 0);
        return;
    }
    pm__atmpl *c = NULL;
    if (pm__atmpl_copy(t, &c) != PM_OK) fail("pm__atmpl_copy", 0, 0);
    pm_buf_t *b1 = NULL, *b2 = NULL;
    if (pm_buf_new(&b1) != PM_OK || pm_buf_new(&b2) != PM_OK) abort();
    static const char *const ln[] = {"instance", "job"};
    static const char *const lv[] = {"host:1", "api"};
    static const double values[] = {0, -1.5, 0.0712, 3723, 1e300, -1e-300, NAN, INFINITY};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        pm_buf_reset(b1);
        pm_buf_reset(b2);
        if (pm__atmpl_render(t, values[i], "Rule", "critical", ln, lv, 2, b1) != PM_OK ||
            pm__atmpl_render(c, values[i], "Rule", "critical", ln, lv, 2, b2) != PM_OK)
            fail("render", (long)i, 0);
        if (pm_buf_len(b1) != pm_buf_len(b2) ||
            memcmp(pm_buf_data(b1), pm_buf_data(b2), pm_buf_len(b1)) != 0)
            fail("a copy renders differently", (long)i, 0);
    }
    pm_buf_free(b1);
    pm_buf_free(b2);
    pm__atmpl_free(t);
    pm__atmpl_free(c);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    /* An exact-size heap copy, so ASan sees any read past the end. */
    char *in = malloc(size ? size : 1);
    if (!in) return 0;
    if (size) memcpy(in, data, size);
    check_rules(in, size);
    check_expr(in, size);
    check_template(in, size);
    free(in);
    return 0;
}
