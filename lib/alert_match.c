/* Parse errors and label matchers: shared by the expression parser, the
 * templates and the notifier filters. */
#include "internal/alert_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------ parse errors */

pm_status_t pm__perrv(pm_parse_error_t **err, pm__srcpos at, const char *expected,
                      const char *fmt, va_list ap)
{
    if (!err || *err) return PM_EPARSE;
    char text[512];
    vsnprintf(text, sizeof text, fmt, ap);
    char msg[600];
    snprintf(msg, sizeof msg, "line %u, column %u: %s", at.line, at.column, text);

    pm_parse_error_t *e = calloc(1, sizeof *e);
    if (!e) return PM_ENOMEM;
    e->line = at.line;
    e->column = at.column;
    e->offset = at.offset;
    e->expected = pm__strdup(&pm__default_alloc, expected ? expected : "");
    e->message = pm__strdup(&pm__default_alloc, msg);
    if (!e->expected || !e->message) {
        pm_parse_error_free(e);
        return PM_ENOMEM;
    }
    *err = e;
    return PM_EPARSE;
}

pm_status_t pm__perr(pm_parse_error_t **err, unsigned line, unsigned column, size_t offset,
                     const char *expected, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pm_status_t st = pm__perrv(err, (pm__srcpos){line, column, offset}, expected, fmt, ap);
    va_end(ap);
    return st;
}

unsigned pm_parse_error_line(const pm_parse_error_t *e) { return e ? e->line : 0; }
unsigned pm_parse_error_column(const pm_parse_error_t *e) { return e ? e->column : 0; }
size_t pm_parse_error_offset(const pm_parse_error_t *e) { return e ? e->offset : 0; }
const char *pm_parse_error_expected(const pm_parse_error_t *e) { return e ? e->expected : ""; }
const char *pm_parse_error_message(const pm_parse_error_t *e) { return e ? e->message : ""; }

void pm_parse_error_free(pm_parse_error_t *e)
{
    if (!e) return;
    free(e->expected);
    free(e->message);
    free(e);
}

/* ------------------------------------------------------------ matchers */

bool pm__match_op_parse(const char *s, pm__match_op *op)
{
    if (!s) return false;
    if (!strcmp(s, "=")) *op = PM__MATCH_EQ;
    else if (!strcmp(s, "!=")) *op = PM__MATCH_NE;
    else if (!strcmp(s, "=~")) *op = PM__MATCH_RE;
    else if (!strcmp(s, "!~")) *op = PM__MATCH_NRE;
    else return false;
    return true;
}

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

/* glibc's regcomp expands every repetition into copies of its operand ("a+"
 * is "aa*", "x{3}" is "xxx") and computes epsilon closures over the result,
 * so a short pattern can take gigabytes or minutes: "a++++++++++++++++++++"
 * doubles 20 times; a loop over something that can match the empty string
 * ("a*+++++", "(a|b?)+") makes the closures exponential; a long run of
 * optional parts ("(a*|b*|c*)" twenty times) makes them quadratic. A regex
 * is refused when
 *   - its expansion exceeds PM__REGEX_BUDGET units, counted as regcomp copies
 *     (an atom 1, a group or a quantifier one more, x+ twice x, x{m,n} n
 *     times x);
 *   - an unbounded loop (*, +, {m,}) repeats an operand that can match the
 *     empty string (never needed: (a*)+ is a*);
 *   - its optional parts (those that can match the empty string, copies
 *     included) exceed PM__REGEX_NULLABLE units.
 * Values saturate just past the budget. Groups use an explicit stack, so
 * deep nesting stays off the C stack. */
typedef struct re_val {
    uint64_t cost, eps; /* expansion; of which in parts that can match "" */
    bool nullable;      /* can match the empty string */
} re_val;

typedef struct re_frame {
    re_val alt;  /* the finished branches of the group */
    re_val pre;  /* the current branch before its last atom */
    re_val last; /* the last atom, which a quantifier applies to */
    bool has_alt, has_last;
} re_frame;

static uint64_t sat(uint64_t v) { return v > PM__REGEX_BUDGET ? PM__REGEX_BUDGET + 1 : v; }

static re_val re_cat(re_val a, re_val b)
{
    return (re_val){sat(a.cost + b.cost), sat(a.eps + b.eps), a.nullable && b.nullable};
}

static re_val re_branch(const re_frame *f) { return f->has_last ? re_cat(f->pre, f->last) : f->pre; }

static re_val re_group(const re_frame *f)
{
    re_val b = re_branch(f), v = b;
    if (f->has_alt)
        v = (re_val){sat(f->alt.cost + b.cost + 1), sat(f->alt.eps + b.eps),
                     f->alt.nullable || b.nullable};
    v.cost = sat(v.cost + 1);
    if (v.nullable) v.eps = v.cost;
    return v;
}

/* "{m}", "{m,}" or "{m,n}" at s[i]: its bounds (hi 0: none), its length. */
static bool re_bound(const char *s, size_t n, size_t i, uint64_t *lo, uint64_t *hi, bool *open,
                     size_t *len)
{
    size_t j = i + 1;
    uint64_t m = 0, h = 0;
    bool digits = false, comma = false, hdigits = false;
    for (; j < n && is_digit(s[j]); j++, digits = true)
        if (m < 100000) m = m * 10 + (uint64_t)(s[j] - '0');
    if (j < n && s[j] == ',') {
        comma = true;
        for (j++; j < n && is_digit(s[j]); j++, hdigits = true)
            if (h < 100000) h = h * 10 + (uint64_t)(s[j] - '0');
    }
    if (!digits || j >= n || s[j] != '}') return false;
    *lo = m;
    *hi = !comma ? m : hdigits ? h : 0;
    *open = comma && !hdigits;
    *len = j + 1 - i;
    return true;
}

/* Applies a quantifier to the last atom of f. */
static int re_quantify(re_frame *f, uint64_t lo, uint64_t hi, bool open)
{
    re_val x = f->last, v;
    if (open && x.nullable) return PM__RE_EMPTY_LOOP;
    uint64_t copies = open ? lo + 1 : (hi > lo ? hi : lo);
    if (open && lo == 1) copies = 2; /* x+ is x x* */
    if (open && lo == 0) copies = 1; /* x* */
    v.cost = sat(copies * x.cost + 1);
    v.nullable = lo == 0 || x.nullable;
    v.eps = v.nullable ? v.cost : sat(copies * x.eps);
    f->last = v;
    return PM__RE_OK;
}

int pm__regex_check(const char *s, size_t n, uint64_t *cost)
{
    re_frame stack[32], *heap = NULL, *st = stack;
    size_t depth = 0, cap = 32;
    int rc = PM__RE_OK;
    const re_frame empty = {{0, 0, false}, {0, 0, true}, {0, 0, false}, false, false};
    st[0] = empty;
    for (size_t i = 0; i < n && rc == PM__RE_OK; i++) {
        re_frame *fr = &st[depth];
        char c = s[i];
        re_val atom = {1, 0, false};
        uint64_t lo, hi;
        bool open;
        size_t blen;
        if (c == '\\') {
            i++;
        } else if (c == '[') {
            size_t j = i + 1;
            if (j < n && s[j] == '^') j++;
            if (j < n && s[j] == ']') j++;
            while (j < n && s[j] != ']') {
                if (s[j] == '[' && j + 1 < n && strchr(":=.", s[j + 1])) {
                    size_t k = j + 2;
                    while (k + 1 < n && !(s[k] == s[j + 1] && s[k + 1] == ']')) k++;
                    j = k + 2;
                } else {
                    j++;
                }
            }
            i = j;
        } else if (c == '^' || c == '$') {
            atom = (re_val){1, 1, true};
        } else if (c == '(') {
            if (depth + 1 == cap) {
                re_frame *g = pm__alloc(&pm__default_alloc, cap * 2 * sizeof *g);
                if (!g) {
                    rc = PM__RE_TOO_BIG; /* refuse rather than guess */
                    break;
                }
                memcpy(g, st, cap * sizeof *g);
                pm__free(&pm__default_alloc, heap);
                st = heap = g;
                cap *= 2;
            }
            st[++depth] = empty;
            continue;
        } else if (c == ')' && depth > 0) {
            atom = re_group(fr);
            depth--;
        } else if (c == '|') {
            re_val b = re_branch(fr);
            fr->alt = fr->has_alt ? (re_val){sat(fr->alt.cost + b.cost + 1),
                                             sat(fr->alt.eps + b.eps), fr->alt.nullable || b.nullable}
                                  : b;
            fr->has_alt = true;
            fr->pre = empty.pre;
            fr->has_last = false;
            continue;
        } else if ((c == '*' || c == '?' || c == '+') && fr->has_last) {
            rc = re_quantify(fr, c == '+' ? 1 : 0, c == '?' ? 1 : 0, c != '?');
            continue;
        } else if (c == '{' && fr->has_last && re_bound(s, n, i, &lo, &hi, &open, &blen)) {
            rc = re_quantify(fr, lo, hi, open);
            i += blen - 1;
            continue;
        }
        fr = &st[depth];
        if (fr->has_last) fr->pre = re_cat(fr->pre, fr->last);
        fr->last = atom;
        fr->has_last = true;
    }
    while (rc == PM__RE_OK && depth > 0) { /* unclosed groups: regcomp refuses them anyway */
        re_val g = re_group(&st[depth--]);
        re_frame *fr = &st[depth];
        if (fr->has_last) fr->pre = re_cat(fr->pre, fr->last);
        fr->last = g;
        fr->has_last = true;
    }
    if (rc == PM__RE_OK) {
        re_val v = st[0].has_alt ? re_group(&st[0]) : re_branch(&st[0]);
        if (v.cost > PM__REGEX_BUDGET || v.eps > PM__REGEX_NULLABLE) rc = PM__RE_TOO_BIG;
        *cost = v.cost;
    }
    pm__free(&pm__default_alloc, heap);
    return rc;
}

static pm_status_t compile(pm__amatcher *m, pm__srcpos at, pm_parse_error_t **err)
{
    uint64_t cost;
    int guard = pm__regex_check(m->value, strlen(m->value), &cost);
    if (guard != PM__RE_OK)
        return pm__perr(err, at.line, at.column, at.offset, "a simpler regular expression",
                        guard == PM__RE_EMPTY_LOOP
                            ? "regular expression repeats without bound a part that can match "
                              "the empty string (as in (a*)+)"
                            : "regular expression too complex (it expands to more than %u units, "
                              "or more than %u optional ones)",
                        PM__REGEX_BUDGET, PM__REGEX_NULLABLE);
    /* Anchored at both ends, as Prometheus does: "5.." matches "500", not "1500". */
    size_t n = strlen(m->value);
    char *src = malloc(n + 5);
    if (!src) return PM_ENOMEM;
    memcpy(src, "^(", 2);
    memcpy(src + 2, m->value, n);
    memcpy(src + 2 + n, ")$", 3);
    int rc = regcomp(&m->re, src, REG_EXTENDED | REG_NOSUB);
    free(src);
    if (rc != 0) {
        char why[160];
        regerror(rc, &m->re, why, sizeof why);
        if (rc == REG_ESPACE) return PM_ENOMEM;
        return pm__perr(err, at.line, at.column, at.offset, "a POSIX extended regular expression",
                        "invalid regular expression \"%.80s\": %s", m->value, why);
    }
    m->has_re = true;
    return PM_OK;
}

pm_status_t pm__amatcher_init(pm__amatcher *m, const char *name, pm__match_op op,
                              const char *value, pm__srcpos at, pm_parse_error_t **err)
{
    if (!m || !name || !value || op < PM__MATCH_EQ || op > PM__MATCH_NRE) return PM_EINVAL;
    memset(m, 0, sizeof *m);
    m->op = op;
    m->name = pm__strdup(&pm__default_alloc, name);
    m->value = pm__strdup(&pm__default_alloc, value);
    pm_status_t st = (m->name && m->value) ? PM_OK : PM_ENOMEM;
    if (st == PM_OK && (op == PM__MATCH_RE || op == PM__MATCH_NRE)) st = compile(m, at, err);
    if (st != PM_OK) {
        pm__amatcher_fini(m);
        memset(m, 0, sizeof *m);
    }
    return st;
}

pm_status_t pm__amatcher_copy(pm__amatcher *dst, const pm__amatcher *src)
{
    if (!dst || !src) return PM_EINVAL;
    pm_status_t st = pm__amatcher_init(dst, src->name, src->op, src->value, PM__SRCPOS_START, NULL);
    /* The source compiled, so only memory can fail here. */
    return st == PM_EPARSE ? PM_ENOMEM : st;
}

void pm__amatcher_fini(pm__amatcher *m)
{
    if (!m) return;
    if (m->has_re) regfree(&m->re);
    pm__free(&pm__default_alloc, m->name);
    pm__free(&pm__default_alloc, m->value);
    m->has_re = false;
    m->name = m->value = NULL;
}

bool pm__amatcher_match(const pm__amatcher *m, const char *value)
{
    if (!value) value = "";
    switch (m->op) {
    case PM__MATCH_EQ: return strcmp(value, m->value) == 0;
    case PM__MATCH_NE: return strcmp(value, m->value) != 0;
    case PM__MATCH_RE: return m->has_re && regexec(&m->re, value, 0, NULL, 0) == 0;
    case PM__MATCH_NRE: return !(m->has_re && regexec(&m->re, value, 0, NULL, 0) == 0);
    }
    return false;
}

/* ------------------------------------------------------------ sorted names */

size_t pm__sorted_find(const void *base, size_t n, size_t stride, const char *name, bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const char *k = *(char *const *)((const char *)base + mid * stride);
        int c = strcmp(k, name);
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
