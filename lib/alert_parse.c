/* The alert expression language and rule files (grammar: doc/alerting.md):
 * a lexer and recursive-descent parser producing pm__anode trees, the
 * rule-file parser (rules built with the pm_alert_rule_* setters),
 * pm_alert_rules_check and the engine's loaders.
 *
 * Errors: the first one wins (pm__perr keeps it), positioned at the offending
 * token in file coordinates. The parser stops at the first error, so every
 * check that concerns an earlier token runs before the parser looks further
 * right: the leftmost problem is the one reported. */
#include "internal/alert_internal.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const pm_alloc_t *A = &pm__default_alloc;

#define MAX_EXPR_LEN 65536u
#define MAX_FILE_LEN (16u << 20)
/* Deeper trees are refused, so every recursive walk over a tree (free, copy,
 * walk, evaluation) and the parser itself stay within a small stack. */
#define MAX_DEPTH 256u

/* ------------------------------------------------------------ characters */

static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_alpha_(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_name_start(int c) { return is_alpha_(c) || c == ':'; }
static bool is_name_char(int c) { return is_alpha_(c) || c == ':' || is_digit(c); }
static bool is_label_char(int c) { return is_alpha_(c) || is_digit(c); }
static bool is_blank(int c) { return c == ' ' || c == '\t'; }
static bool is_space(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

static char lower(char c) { return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c; }

static bool ci_eq(const char *s, size_t n, const char *lit)
{
    size_t m = strlen(lit);
    if (n != m) return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s[i]) != lit[i]) return false;
    return true;
}

static bool lit_eq(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

static char *dupn(const char *s, size_t n)
{
    char *d = pm__alloc(A, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

/* Grows *arr (elements of `size` bytes, *cap of them) to hold `need`. The old
 * block is copied byte for byte: only for elements that may move. */
static bool grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return true;
    size_t nc = *cap ? *cap : 4;
    while (nc < need) {
        if (nc > SIZE_MAX / 2 / size) return false;
        nc *= 2;
    }
    void *p = pm__alloc(A, nc * size);
    if (!p) return false;
    if (*cap) memcpy(p, *arr, *cap * size);
    pm__free(A, *arr);
    *arr = p;
    *cap = nc;
    return true;
}

/* Writes at most `max` bytes of s[0..n) quoted with '...' into out, bytes
 * outside printable ASCII as '?', "..." appended when cut. */
static void quote_text(char *out, size_t outsz, const char *s, size_t n)
{
    const size_t max = 40;
    char tmp[48];
    size_t k = 0;
    for (; k < n && k < max; k++) {
        unsigned char c = (unsigned char)s[k];
        tmp[k] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    tmp[k] = '\0';
    snprintf(out, outsz, "'%s%s'", tmp, n > max ? "..." : "");
}

/* ------------------------------------------------------------ numbers */

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define EXACT_DOUBLE_OPS 1
#else
#define EXACT_DOUBLE_OPS 0
#endif

/* Parses all of s[0..n) as [+-] (digits [. digits] | . digits) [e [+-] digits]
 * or [+-] inf / nan (any case). Independent of LC_NUMERIC: with at most 19
 * significant digits and a small exponent the value is one correctly rounded
 * IEEE operation on exact operands (Clinger's fast path); otherwise strtod
 * reads the digits written without a decimal point ("12345e-3"), the one
 * spelling every locale reads alike. */
static bool parse_number(const char *s, size_t n, double *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
    if (ci_eq(s + i, n - i, "inf")) {
        *out = neg ? -INFINITY : INFINITY;
        return true;
    }
    if (ci_eq(s + i, n - i, "nan")) {
        *out = NAN;
        return true;
    }
    size_t ds = i;
    uint64_t mant = 0;
    int nsig = 0;
    long adj = 0; /* value = mant x 10^(adj + exponent) */
    bool any = false, dropped = false, point = false;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '.' && !point) {
            point = true;
            continue;
        }
        if (!is_digit(c)) break;
        any = true;
        int d = c - '0';
        if (nsig == 0 && d == 0) {
            if (point) adj--;
        } else if (nsig < 19) {
            mant = mant * 10 + (uint64_t)d;
            nsig++;
            if (point) adj--;
        } else {
            if (!point) adj++;
            if (d) dropped = true;
        }
    }
    if (!any) return false;
    size_t me = i;
    long ex = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        bool eneg = false;
        if (i < n && (s[i] == '+' || s[i] == '-')) eneg = s[i++] == '-';
        if (i >= n || !is_digit(s[i])) return false;
        for (; i < n && is_digit(s[i]); i++)
            if (ex < 1000000) ex = ex * 10 + (s[i] - '0');
        if (eneg) ex = -ex;
    }
    if (i != n) return false;
    if (mant == 0) {
        *out = neg ? -0.0 : 0.0;
        return true;
    }
    long e = adj + ex;
#if EXACT_DOUBLE_OPS
    if (!dropped && mant <= (UINT64_C(1) << 53) && e >= -22 && e <= 22) {
        double v = e < 0 ? (double)mant / pow10_exact[-e] : (double)mant * pow10_exact[e];
        *out = neg ? -v : v;
        return true;
    }
#endif
    /* Every significant digit (up to 780, then a sticky 1 for any non-zero
     * digit cut: more digits than a double's exact midpoints ever need). */
    char buf[800];
    size_t bn = 0;
    long badj = 0;
    bool seen = false, sticky = false;
    point = false;
    for (size_t k = ds; k < me; k++) {
        char c = s[k];
        if (c == '.') {
            point = true;
            continue;
        }
        if (!seen && c == '0') {
            if (point) badj--;
            continue;
        }
        seen = true;
        if (bn < 780) {
            buf[bn++] = c;
            if (point) badj--;
        } else {
            if (!point) badj++;
            if (c != '0') sticky = true;
        }
    }
    if (sticky) {
        buf[bn++] = '1';
        badj--;
    }
    long x = badj + ex;
    if (x > 99999) x = 99999;
    if (x < -99999) x = -99999;
    snprintf(buf + bn, sizeof buf - bn, "e%ld", x);
    double v = strtod(buf, NULL);
    *out = neg ? -v : v;
    return true;
}

bool pm__aparse_number(const char *s, size_t n, double *out) { return parse_number(s, n, out); }

/* ------------------------------------------------------------ durations */

enum { DUR_OK = 0, DUR_SYNTAX, DUR_ORDER, DUR_RANGE };

/* Parses all of s[0..n) as a duration (units y w d h m s ms, decreasing,
 * each with an integer or decimal count) into nanoseconds. */
static int parse_duration(const char *s, size_t n, int64_t *out)
{
    static const int64_t unit_ns[] = {
        365LL * 86400 * PM__NS_PER_S, 7LL * 86400 * PM__NS_PER_S, 86400LL * PM__NS_PER_S,
        3600LL * PM__NS_PER_S,        60LL * PM__NS_PER_S,        PM__NS_PER_S,
        1000000LL};
    size_t i = 0;
    int last = -1;
    bool order_bad = false, range_bad = false;
    int64_t total = 0;
    if (n == 0) return DUR_SYNTAX;
    while (i < n) {
        if (!is_digit(s[i])) return DUR_SYNTAX;
        uint64_t ip = 0;
        for (; i < n && is_digit(s[i]); i++) {
            if (ip > (UINT64_MAX - 9) / 10) range_bad = true;
            else ip = ip * 10 + (uint64_t)(s[i] - '0');
        }
        uint64_t fd = 0;
        int fk = 0;
        if (i < n && s[i] == '.') {
            i++;
            if (i >= n || !is_digit(s[i])) return DUR_SYNTAX;
            for (; i < n && is_digit(s[i]); i++)
                if (fk < 18) {
                    fd = fd * 10 + (uint64_t)(s[i] - '0');
                    fk++;
                }
        }
        int u;
        if (i + 1 < n && s[i] == 'm' && s[i + 1] == 's') {
            u = 6;
            i += 2;
        } else if (i < n) {
            const char *p = strchr("ywdhms", s[i]);
            if (!p || !s[i]) return DUR_SYNTAX;
            u = (int)(p - "ywdhms");
            i++;
        } else {
            return DUR_SYNTAX; /* a count without a unit */
        }
        if (u <= last) order_bad = true;
        last = u;
        int64_t part, fpart = 0;
        if (ip > (uint64_t)INT64_MAX || __builtin_mul_overflow((int64_t)ip, unit_ns[u], &part)) {
            range_bad = true;
            continue;
        }
        if (fk) {
            double p10 = 1;
            for (int k = 0; k < fk; k++) p10 *= 10;
            fpart = (int64_t)llround((double)fd / p10 * (double)unit_ns[u]);
        }
        if (__builtin_add_overflow(part, fpart, &part) ||
            __builtin_add_overflow(total, part, &total))
            range_bad = true;
    }
    if (order_bad) return DUR_ORDER;
    if (range_bad) return DUR_RANGE;
    *out = total;
    return DUR_OK;
}

/* ------------------------------------------------------------ lexer */

typedef enum tkind {
    T_EOF = 0,
    T_NUM,    /* a number literal */
    T_DUR,    /* a duration literal */
    T_BADNUM, /* starts like a number, is neither a number nor a duration */
    T_IDENT,
    T_STR,
    T_LPAREN, T_RPAREN, T_LBRACE, T_RBRACE, T_LBRACK, T_RBRACK, T_COMMA,
    T_ADD, T_SUB, T_MUL, T_DIV, T_MOD, T_POW,
    T_EQL, T_NEQ, T_GT, T_LT, T_GTE, T_LTE,
    T_ASSIGN, T_RE, T_NRE,
    T_ERR /* a stray character, or a bad string (lerr says which) */
} tkind;

enum { LE_CHAR = 0, LE_UNTERM, LE_ESCAPE, LE_NUL, LE_UTF8 };

typedef struct tok {
    tkind k;
    size_t pos, end; /* [pos, end) in the expression */
    double num;
    int64_t dur;
    int dres; /* T_BADNUM: why it is no duration */
    int lerr; /* T_ERR */
    size_t lerr_pos;
} tok;

static bool is_mantissa(const char *s, size_t n)
{
    bool any = false, point = false;
    for (size_t i = 0; i < n; i++) {
        if (is_digit(s[i])) any = true;
        else if (s[i] == '.' && !point) point = true;
        else return false;
    }
    return any;
}

static void lex_numword(const char *s, size_t len, size_t i, tok *t)
{
    size_t j = i;
    while (j < len) {
        char c = s[j];
        if (is_label_char(c) || c == '.') {
            j++;
            continue;
        }
        /* The sign of an exponent: "1e-3" is one token. */
        if ((c == '+' || c == '-') && (s[j - 1] == 'e' || s[j - 1] == 'E') && j + 1 < len &&
            is_digit(s[j + 1]) && is_mantissa(s + i, j - 1 - i)) {
            j++;
            continue;
        }
        break;
    }
    t->end = j;
    if (parse_number(s + i, j - i, &t->num)) {
        t->k = T_NUM;
        return;
    }
    int r = parse_duration(s + i, j - i, &t->dur);
    if (r == DUR_OK) {
        t->k = T_DUR;
        t->num = (double)t->dur / 1e9;
    } else {
        t->k = T_BADNUM;
        t->dres = r;
    }
}

static void lex_string(const char *s, size_t len, size_t i, tok *t)
{
    char q = s[i];
    size_t j = i + 1;
    for (;;) {
        if (j >= len || (q != '`' && s[j] == '\n')) {
            t->k = T_ERR, t->lerr = LE_UNTERM, t->lerr_pos = i;
            return;
        }
        char c = s[j];
        if (c == '\0') {
            t->k = T_ERR, t->lerr = LE_NUL, t->lerr_pos = j;
            return;
        }
        if (c == q) break;
        if (c == '\\' && q != '`') {
            if (j + 1 >= len) {
                t->k = T_ERR, t->lerr = LE_UNTERM, t->lerr_pos = i;
                return;
            }
            char d = s[j + 1];
            if (d != '\\' && d != '"' && d != '\'' && d != 'n' && d != 't') {
                t->k = T_ERR, t->lerr = LE_ESCAPE, t->lerr_pos = j;
                return;
            }
            j += 2;
            continue;
        }
        j++;
    }
    if (!pm__valid_utf8(s + i + 1, j - i - 1)) {
        t->k = T_ERR, t->lerr = LE_UTF8, t->lerr_pos = i;
        return;
    }
    t->k = T_STR;
    t->end = j + 1;
}

/* The token at or after byte i (blanks and "# ..." comments skipped). Pure:
 * the parser peeks by lexing ahead without consuming. */
static void lex(const char *s, size_t len, size_t i, tok *t)
{
    for (;;) {
        while (i < len && is_space((unsigned char)s[i])) i++;
        if (i < len && s[i] == '#') {
            while (i < len && s[i] != '\n') i++;
            continue;
        }
        break;
    }
    memset(t, 0, sizeof *t);
    t->pos = t->end = i;
    if (i >= len) {
        t->k = T_EOF;
        return;
    }
    char c = s[i];
    if (is_digit(c) || (c == '.' && i + 1 < len && is_digit(s[i + 1]))) {
        lex_numword(s, len, i, t);
        return;
    }
    if (is_name_start(c)) {
        size_t j = i + 1;
        while (j < len && is_name_char(s[j])) j++;
        t->k = T_IDENT;
        t->end = j;
        return;
    }
    if (c == '"' || c == '\'' || c == '`') {
        lex_string(s, len, i, t);
        return;
    }
    char d = i + 1 < len ? s[i + 1] : '\0';
    t->end = i + 1;
    switch (c) {
    case '(': t->k = T_LPAREN; break;
    case ')': t->k = T_RPAREN; break;
    case '{': t->k = T_LBRACE; break;
    case '}': t->k = T_RBRACE; break;
    case '[': t->k = T_LBRACK; break;
    case ']': t->k = T_RBRACK; break;
    case ',': t->k = T_COMMA; break;
    case '+': t->k = T_ADD; break;
    case '-': t->k = T_SUB; break;
    case '*': t->k = T_MUL; break;
    case '/': t->k = T_DIV; break;
    case '%': t->k = T_MOD; break;
    case '^': t->k = T_POW; break;
    case '=':
        t->k = d == '=' ? T_EQL : d == '~' ? T_RE : T_ASSIGN;
        if (d == '=' || d == '~') t->end = i + 2;
        break;
    case '!':
        if (d == '=' || d == '~') {
            t->k = d == '=' ? T_NEQ : T_NRE;
            t->end = i + 2;
        } else {
            t->k = T_ERR, t->lerr = LE_CHAR, t->lerr_pos = i;
        }
        break;
    case '>':
        t->k = d == '=' ? T_GTE : T_GT;
        if (d == '=') t->end = i + 2;
        break;
    case '<':
        t->k = d == '=' ? T_LTE : T_LT;
        if (d == '=') t->end = i + 2;
        break;
    default: t->k = T_ERR, t->lerr = LE_CHAR, t->lerr_pos = i; break;
    }
}

/* The value of a T_STR token, unescaped and NUL-terminated. */
static char *str_value(const char *s, const tok *t)
{
    char q = s[t->pos];
    size_t a = t->pos + 1, b = t->end - 1;
    char *d = pm__alloc(A, b - a + 1);
    if (!d) return NULL;
    size_t n = 0;
    for (size_t i = a; i < b; i++) {
        char c = s[i];
        if (c == '\\' && q != '`') {
            c = s[++i];
            if (c == 'n') c = '\n';
            else if (c == 't') c = '\t';
        }
        d[n++] = c;
    }
    d[n] = '\0';
    return d;
}

/* ------------------------------------------------------------ parser */

typedef struct xp {
    const char *s;
    size_t len;
    pm__srcpos at;
    tok t; /* the current token */
    unsigned depth;
    uint64_t re_cost; /* regex expansion so far (regex_check) */
    pm_parse_error_t **err;
} xp;

/* A node with the height of its tree. */
typedef struct xnode {
    pm__anode *n;
    unsigned h;
} xnode;

static void adv(xp *P) { lex(P->s, P->len, P->t.end, &P->t); }
static void peek(const xp *P, tok *n) { lex(P->s, P->len, P->t.end, n); }

static bool tok_is(const xp *P, const tok *t, const char *word)
{
    return t->k == T_IDENT && lit_eq(P->s + t->pos, t->end - t->pos, word);
}

static pm_status_t xerr(xp *P, size_t pos, const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static pm_status_t xerr(xp *P, size_t pos, const char *expected, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pm__srcpos at = {P->at.line, P->at.column + (unsigned)pos, P->at.offset + pos};
    pm_status_t st = pm__perrv(P->err, at, expected, fmt, ap);
    va_end(ap);
    return st;
}

static void describe(const xp *P, const tok *t, char *out, size_t n)
{
    switch (t->k) {
    case T_EOF: snprintf(out, n, "end of input"); return;
    case T_STR: snprintf(out, n, "a string"); return;
    case T_ERR: {
        unsigned char c = (unsigned char)P->s[t->pos];
        if (c >= 0x20 && c < 0x7f) snprintf(out, n, "'%c'", c);
        else snprintf(out, n, "byte 0x%02x", c);
        return;
    }
    default: quote_text(out, n, P->s + t->pos, t->end - t->pos); return;
    }
}

/* "expected X but found Y" at the current token, or the lexer's complaint
 * about it. */
static pm_status_t unexpected(xp *P, const char *expected)
{
    const tok *t = &P->t;
    if (t->k == T_ERR && t->lerr != LE_CHAR) {
        char q = P->s[t->pos];
        switch (t->lerr) {
        case LE_UNTERM:
            return xerr(P, t->pos, q == '"' ? "'\"'" : q == '\'' ? "\"'\"" : "'`'",
                        "unterminated string");
        case LE_ESCAPE: {
            unsigned char c = (unsigned char)P->s[t->lerr_pos + 1];
            if (c >= 0x20 && c < 0x7f)
                return xerr(P, t->lerr_pos, "an escape sequence",
                            "invalid escape sequence '\\%c' in string", c);
            return xerr(P, t->lerr_pos, "an escape sequence",
                        "invalid escape sequence (backslash and byte 0x%02x) in string", c);
        }
        case LE_NUL: return xerr(P, t->lerr_pos, NULL, "NUL byte in string");
        default: return xerr(P, t->pos, NULL, "string is not valid UTF-8");
        }
    }
    char found[64];
    describe(P, t, found, sizeof found);
    return xerr(P, t->pos, expected, "expected %s but found %s", expected, found);
}

static pm_status_t expect(xp *P, tkind k, const char *expected)
{
    if (P->t.k != k) return unexpected(P, expected);
    adv(P);
    return PM_OK;
}

static pm_status_t bad_duration(xp *P, const tok *t)
{
    char w[64];
    quote_text(w, sizeof w, P->s + t->pos, t->end - t->pos);
    if (t->k == T_BADNUM && t->dres == DUR_ORDER)
        return xerr(P, t->pos, "a duration",
                    "expected a duration but found %s: units must be in decreasing order "
                    "(e.g. 1h30m)", w);
    if (t->k == T_BADNUM && t->dres == DUR_RANGE)
        return xerr(P, t->pos, "a duration", "duration %s is out of range", w);
    return unexpected(P, "a duration");
}

static pm__anode *node_new(pm__anode_kind k, size_t pos)
{
    pm__anode *n = pm__calloc(A, sizeof *n);
    if (n) {
        n->kind = k;
        n->pos = pos;
    }
    return n;
}

static void free_labels(char **l, size_t n)
{
    for (size_t i = 0; i < n; i++) pm__free(A, l[i]);
    pm__free(A, l);
}

enum { V_SCALAR, V_VECTOR, V_RANGE };

static int vkind(const pm__anode *n)
{
    switch (n->kind) {
    case PM__AN_NUM: return V_SCALAR;
    case PM__AN_RANGE: return V_RANGE;
    case PM__AN_NEG: return vkind(n->u.neg.arg);
    case PM__AN_BIN:
        return (vkind(n->u.bin.l) == V_SCALAR && vkind(n->u.bin.r) == V_SCALAR) ? V_SCALAR
                                                                                : V_VECTOR;
    default: return V_VECTOR;
    }
}

/* An operand of an operator, or an expression's value: anything but a range. */
static pm_status_t need_instant(xp *P, const pm__anode *n)
{
    if (vkind(n) != V_RANGE) return PM_OK;
    return xerr(P, n->pos, "an instant vector",
                "expected an instant vector but found a range vector");
}

/* An instant vector proper (aggregations, set operators, absent, zscore_ewma). */
static pm_status_t need_vector(xp *P, const pm__anode *n)
{
    int k = vkind(n);
    if (k == V_VECTOR) return PM_OK;
    return xerr(P, n->pos, "an instant vector", "expected an instant vector but found %s",
                k == V_RANGE ? "a range vector" : "a scalar");
}

static pm_status_t need_range(xp *P, const pm__anode *n)
{
    int k = vkind(n);
    if (k == V_RANGE) return PM_OK;
    return xerr(P, n->pos, "a range vector", "expected a range vector but found %s",
                k == V_SCALAR ? "a scalar" : "an instant vector");
}

static pm_status_t check_height(xp *P, unsigned h, size_t pos)
{
    if (h <= MAX_DEPTH) return PM_OK;
    return xerr(P, pos, NULL, "expression nested too deeply (more than %u levels)", MAX_DEPTH);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "(" [ LABEL { "," LABEL } [","] ] ")" into a sorted array without repeats. */
static pm_status_t p_labels(xp *P, char ***out, size_t *nout)
{
    char **l = NULL;
    size_t n = 0, cap = 0;
    pm_status_t st = expect(P, T_LPAREN, "'('");
    while (st == PM_OK) {
        if (P->t.k == T_RPAREN) {
            adv(P);
            break;
        }
        const tok *t = &P->t;
        if (t->k != T_IDENT || memchr(P->s + t->pos, ':', t->end - t->pos)) {
            st = unexpected(P, "a label name");
            break;
        }
        if (!grow((void **)&l, &cap, n + 1, sizeof *l) ||
            !(l[n] = dupn(P->s + t->pos, t->end - t->pos))) {
            st = PM_ENOMEM;
            break;
        }
        n++;
        adv(P);
        if (P->t.k == T_COMMA) adv(P);
        else if (P->t.k != T_RPAREN) st = unexpected(P, "',' or ')'");
    }
    if (st != PM_OK) {
        free_labels(l, n);
        return st;
    }
    if (n > 1) {
        qsort(l, n, sizeof *l, cmp_str);
        size_t w = 1;
        for (size_t i = 1; i < n; i++) {
            if (!strcmp(l[i], l[w - 1])) pm__free(A, l[i]);
            else l[w++] = l[i];
        }
        n = w;
    }
    *out = l;
    *nout = n;
    return PM_OK;
}

static pm_status_t p_or(xp *P, xnode *out);
static pm_status_t p_unary(xp *P, xnode *out);

/* ---- selectors */

static pm_status_t add_matcher(xp *P, pm__anode *n, size_t *cap, const tok *lt, pm__match_op op,
                               const tok *vt)
{
    /* Matchers hold a compiled regex_t, which POSIX does not promise may be
     * moved: a full array is rebuilt through pm__amatcher_copy. */
    if (n->u.sel.nm == *cap) {
        size_t nc = *cap ? *cap * 2 : 4;
        pm__amatcher *m = pm__calloc(A, nc * sizeof *m);
        if (!m) return PM_ENOMEM;
        for (size_t i = 0; i < n->u.sel.nm; i++) {
            if (pm__amatcher_copy(&m[i], &n->u.sel.m[i]) != PM_OK) {
                for (size_t k = 0; k < i; k++) pm__amatcher_fini(&m[k]);
                pm__free(A, m);
                return PM_ENOMEM;
            }
        }
        for (size_t i = 0; i < n->u.sel.nm; i++) pm__amatcher_fini(&n->u.sel.m[i]);
        pm__free(A, n->u.sel.m);
        n->u.sel.m = m;
        *cap = nc;
    }
    char *name = dupn(P->s + lt->pos, lt->end - lt->pos);
    char *value = name ? str_value(P->s, vt) : NULL;
    pm_status_t st = PM_ENOMEM;
    if (value && (op == PM__MATCH_RE || op == PM__MATCH_NRE)) {
        uint64_t cost = 0;
        int rc = pm__regex_check(value, strlen(value), &cost);
        bool refused = true;
        if (rc == PM__RE_EMPTY_LOOP)
            st = xerr(P, vt->pos, "a simpler regular expression",
                      "regular expression repeats without bound a part that can match the empty "
                      "string (as in (a*)+)");
        else if (rc == PM__RE_TOO_BIG)
            st = xerr(P, vt->pos, "a simpler regular expression",
                      "regular expression too complex (it expands to more than %u units, or more "
                      "than %u optional ones)", PM__REGEX_BUDGET, PM__REGEX_NULLABLE);
        else if ((P->re_cost += cost) > PM__EXPR_REGEX_BUDGET)
            st = xerr(P, vt->pos, "a simpler regular expression",
                      "the regular expressions of this expression expand to more than %u units",
                      PM__EXPR_REGEX_BUDGET);
        else
            refused = false;
        if (refused) {
            pm__free(A, name);
            pm__free(A, value);
            return st;
        }
    }
    if (value) {
        pm__srcpos at = {P->at.line, P->at.column + (unsigned)vt->pos, P->at.offset + vt->pos};
        st = pm__amatcher_init(&n->u.sel.m[n->u.sel.nm], name, op, value, at, P->err);
        if (st == PM_OK) n->u.sel.nm++;
    }
    pm__free(A, name);
    pm__free(A, value);
    return st;
}

static pm_status_t p_matchers(xp *P, pm__anode *n)
{
    size_t cap = 0;
    adv(P); /* '{' */
    for (;;) {
        if (P->t.k == T_RBRACE) {
            adv(P);
            return PM_OK;
        }
        tok lt = P->t;
        if (lt.k != T_IDENT || memchr(P->s + lt.pos, ':', lt.end - lt.pos))
            return unexpected(P, "a label matcher");
        adv(P);
        pm__match_op op;
        switch (P->t.k) {
        case T_ASSIGN: op = PM__MATCH_EQ; break;
        case T_NEQ: op = PM__MATCH_NE; break;
        case T_RE: op = PM__MATCH_RE; break;
        case T_NRE: op = PM__MATCH_NRE; break;
        default: return unexpected(P, "one of '=', '!=', '=~', '!~'");
        }
        adv(P);
        if (P->t.k != T_STR) return unexpected(P, "a string");
        pm_status_t st = add_matcher(P, n, &cap, &lt, op, &P->t);
        if (st != PM_OK) return st;
        adv(P);
        if (P->t.k == T_COMMA) adv(P);
        else if (P->t.k != T_RBRACE) return unexpected(P, "',' or '}'");
    }
}

static pm_status_t p_selector(xp *P, xnode *out)
{
    const tok id = P->t;
    pm__anode *n = node_new(PM__AN_SEL, id.pos);
    if (!n || !(n->u.sel.metric = dupn(P->s + id.pos, id.end - id.pos))) {
        pm__anode_free(n);
        return PM_ENOMEM;
    }
    adv(P);
    pm_status_t st = PM_OK;
    if (P->t.k == T_LBRACE) st = p_matchers(P, n);
    if (st == PM_OK && P->t.k == T_LBRACK) {
        adv(P);
        if (P->t.k != T_DUR) {
            st = bad_duration(P, &P->t);
        } else if (P->t.dur <= 0) {
            st = xerr(P, P->t.pos, "a duration", "a range must be longer than 0");
        } else {
            n->kind = PM__AN_RANGE;
            n->u.sel.range_ns = P->t.dur;
            adv(P);
            st = expect(P, T_RBRACK, "']'");
        }
    }
    if (st != PM_OK) {
        pm__anode_free(n);
        return st;
    }
    out->n = n;
    out->h = 1;
    return PM_OK;
}

/* ---- aggregations */

static const struct {
    const char *name;
    pm__aaggop op;
} aggs[] = {{"sum", PM__AGG_SUM},
            {"avg", PM__AGG_AVG},
            {"min", PM__AGG_MIN},
            {"max", PM__AGG_MAX},
            {"count", PM__AGG_COUNT}};

static pm_status_t p_grouping(xp *P, pm__anode *n)
{
    n->u.agg.without = tok_is(P, &P->t, "without");
    n->u.agg.grouped = true;
    adv(P);
    return p_labels(P, &n->u.agg.labels, &n->u.agg.nlabels);
}

static pm_status_t p_agg(xp *P, pm__aaggop op, xnode *out)
{
    pm__anode *n = node_new(PM__AN_AGG, P->t.pos);
    if (!n) return PM_ENOMEM;
    n->u.agg.op = op;
    adv(P);
    pm_status_t st = PM_OK;
    xnode a = {NULL, 0};
    if (tok_is(P, &P->t, "by") || tok_is(P, &P->t, "without")) st = p_grouping(P, n);
    if (st == PM_OK) st = expect(P, T_LPAREN, "'('");
    if (st == PM_OK) st = p_or(P, &a);
    if (st == PM_OK) {
        n->u.agg.arg = a.n;
        st = need_vector(P, a.n);
    }
    if (st == PM_OK) st = expect(P, T_RPAREN, "')'");
    if (st == PM_OK && (tok_is(P, &P->t, "by") || tok_is(P, &P->t, "without"))) {
        if (n->u.agg.grouped)
            st = xerr(P, P->t.pos, NULL, "an aggregation takes one 'by' or 'without' clause");
        else
            st = p_grouping(P, n);
    }
    if (st == PM_OK) st = check_height(P, a.h + 1, n->pos);
    if (st != PM_OK) {
        pm__anode_free(n);
        return st;
    }
    out->n = n;
    out->h = a.h + 1;
    return PM_OK;
}

/* ---- function calls */

enum { ARG_RANGE, ARG_Q_RANGE, ARG_RANGE_NUM, ARG_INSTANT, ARG_VECTOR, ARG_VECTOR_DUR };

static const struct {
    const char *name;
    pm__afn fn;
    int args;
} fns[] = {
    {"rate", PM__FN_RATE, ARG_RANGE},
    {"increase", PM__FN_INCREASE, ARG_RANGE},
    {"delta", PM__FN_DELTA, ARG_RANGE},
    {"avg_over_time", PM__FN_AVG_OT, ARG_RANGE},
    {"min_over_time", PM__FN_MIN_OT, ARG_RANGE},
    {"max_over_time", PM__FN_MAX_OT, ARG_RANGE},
    {"sum_over_time", PM__FN_SUM_OT, ARG_RANGE},
    {"count_over_time", PM__FN_COUNT_OT, ARG_RANGE},
    {"last_over_time", PM__FN_LAST_OT, ARG_RANGE},
    {"stddev_over_time", PM__FN_STDDEV_OT, ARG_RANGE},
    {"quantile_over_time", PM__FN_QUANTILE_OT, ARG_Q_RANGE},
    {"zscore", PM__FN_ZSCORE, ARG_RANGE},
    {"zscore_ewma", PM__FN_ZSCORE_EWMA, ARG_VECTOR_DUR},
    {"slope", PM__FN_SLOPE, ARG_RANGE},
    {"predict_linear", PM__FN_PREDICT_LINEAR, ARG_RANGE_NUM},
    /* abs of a number is a number; the evaluator takes both */
    {"abs", PM__FN_ABS, ARG_INSTANT},
    {"absent", PM__FN_ABSENT, ARG_VECTOR},
};

/* pNN: "p" and 1 to 9 digits; q = 0.NN, p100 = 1. */
static bool pnn(const char *s, size_t n, double *q)
{
    if (n < 2 || n > 10 || s[0] != 'p') return false;
    for (size_t i = 1; i < n; i++)
        if (!is_digit(s[i])) return false;
    if (lit_eq(s, n, "p100")) {
        *q = 1.0;
        return true;
    }
    char buf[16] = "0.";
    memcpy(buf + 2, s + 1, n - 1);
    return parse_number(buf, n + 1, q);
}

/* A number argument: any expression that folds to a literal ("-1", "(2)", "1h"). */
static pm_status_t p_number_arg(xp *P, double *v)
{
    xnode a;
    pm_status_t st = p_or(P, &a);
    if (st != PM_OK) return st;
    if (a.n->kind != PM__AN_NUM) st = xerr(P, a.n->pos, "a number", "expected a number literal");
    else *v = a.n->u.num;
    pm__anode_free(a.n);
    return st;
}

static pm_status_t p_call(xp *P, pm__afn fn, int args, double q, xnode *out)
{
    pm__anode *n = node_new(PM__AN_CALL, P->t.pos);
    if (!n) return PM_ENOMEM;
    n->u.call.fn = fn;
    n->u.call.param = q;
    adv(P);
    adv(P); /* '(' */
    xnode a = {NULL, 0};
    pm_status_t st = PM_OK;
    if (args == ARG_Q_RANGE) {
        size_t qpos = P->t.pos;
        st = p_number_arg(P, &n->u.call.param);
        if (st == PM_OK && !(n->u.call.param >= 0 && n->u.call.param <= 1))
            st = xerr(P, qpos, "a quantile between 0 and 1", "quantile must be between 0 and 1");
        if (st == PM_OK) st = expect(P, T_COMMA, "','");
    }
    if (st == PM_OK) st = p_or(P, &a);
    if (st == PM_OK) {
        n->u.call.arg = a.n;
        switch (args) {
        case ARG_INSTANT: st = need_instant(P, a.n); break;
        case ARG_VECTOR:
        case ARG_VECTOR_DUR: st = need_vector(P, a.n); break;
        default: st = need_range(P, a.n); break;
        }
    }
    if (st == PM_OK && args == ARG_RANGE_NUM) {
        st = expect(P, T_COMMA, "','");
        size_t ppos = P->t.pos;
        if (st == PM_OK) st = p_number_arg(P, &n->u.call.param);
        if (st == PM_OK && !isfinite(n->u.call.param))
            st = xerr(P, ppos, "a finite number", "expected a finite number of seconds");
    }
    if (st == PM_OK && args == ARG_VECTOR_DUR) {
        st = expect(P, T_COMMA, "','");
        if (st == PM_OK && P->t.k != T_DUR) st = bad_duration(P, &P->t);
        if (st == PM_OK && P->t.dur <= 0)
            st = xerr(P, P->t.pos, "a duration", "the time constant must be longer than 0");
        if (st == PM_OK) {
            n->u.call.param = P->t.num;
            adv(P);
        }
    }
    if (st == PM_OK) st = expect(P, T_RPAREN, "')'");
    if (st == PM_OK) st = check_height(P, a.h + 1, n->pos);
    if (st != PM_OK) {
        pm__anode_free(n);
        return st;
    }
    out->n = n;
    out->h = a.h + 1;
    return PM_OK;
}

/* ---- primaries */

static pm_status_t p_num(xp *P, double v, xnode *out)
{
    pm__anode *n = node_new(PM__AN_NUM, P->t.pos);
    if (!n) return PM_ENOMEM;
    n->u.num = v;
    adv(P);
    out->n = n;
    out->h = 1;
    return PM_OK;
}

static pm_status_t p_primary(xp *P, xnode *out)
{
    const tok t = P->t;
    const char *w = P->s + t.pos;
    size_t wn = t.end - t.pos;
    switch (t.k) {
    case T_NUM:
    case T_DUR: return p_num(P, t.num, out);
    case T_BADNUM: {
        if (t.dres != DUR_SYNTAX) return bad_duration(P, &t);
        char q[64];
        quote_text(q, sizeof q, w, wn);
        return xerr(P, t.pos, "a number", "invalid number %s", q);
    }
    case T_LPAREN: {
        if (P->depth >= MAX_DEPTH) return check_height(P, MAX_DEPTH + 1, t.pos);
        adv(P);
        pm_status_t st = p_or(P, out);
        if (st == PM_OK && (st = expect(P, T_RPAREN, "')'")) != PM_OK) {
            pm__anode_free(out->n);
            out->n = NULL;
        }
        return st;
    }
    case T_IDENT: {
        tok nx;
        peek(P, &nx);
        for (size_t i = 0; i < sizeof aggs / sizeof aggs[0]; i++)
            if (lit_eq(w, wn, aggs[i].name) &&
                (nx.k == T_LPAREN || tok_is(P, &nx, "by") || tok_is(P, &nx, "without")))
                return p_agg(P, aggs[i].op, out);
        if (nx.k == T_LPAREN) {
            for (size_t i = 0; i < sizeof fns / sizeof fns[0]; i++)
                if (lit_eq(w, wn, fns[i].name)) return p_call(P, fns[i].fn, fns[i].args, 0, out);
            double q;
            if (pnn(w, wn, &q)) return p_call(P, PM__FN_QUANTILE_OT, ARG_RANGE, q, out);
            char name[64];
            quote_text(name, sizeof name, w, wn);
            return xerr(P, t.pos, "a function name", "unknown function %s", name);
        }
        if (ci_eq(w, wn, "inf")) return p_num(P, INFINITY, out);
        if (ci_eq(w, wn, "nan")) return p_num(P, NAN, out);
        return p_selector(P, out);
    }
    default: return unexpected(P, "an expression");
    }
}

/* ---- operators */

/* [ ("on" | "ignoring") "(" labels ")" ] */
static pm_status_t p_mods(xp *P, pm__anode *n)
{
    tok nx;
    peek(P, &nx);
    if (nx.k != T_LPAREN || !(tok_is(P, &P->t, "on") || tok_is(P, &P->t, "ignoring")))
        return PM_OK;
    n->u.bin.matching = tok_is(P, &P->t, "on") ? 1 : 2;
    adv(P);
    return p_labels(P, &n->u.bin.mlabels, &n->u.bin.nmlabels);
}

/* The operator at the current token, for the level `lvl` (0 or, 1 and/unless,
 * 2 comparisons, 3 + -, 4 * / %); 0 when none. */
static pm__abinop op_at(const xp *P, int lvl)
{
    const tok *t = &P->t;
    switch (lvl) {
    case 0: return tok_is(P, t, "or") ? PM__OP_OR : 0;
    case 1: return tok_is(P, t, "and") ? PM__OP_AND : tok_is(P, t, "unless") ? PM__OP_UNLESS : 0;
    case 2:
        switch (t->k) {
        case T_EQL: return PM__OP_EQ;
        case T_NEQ: return PM__OP_NE;
        case T_GT: return PM__OP_GT;
        case T_LT: return PM__OP_LT;
        case T_GTE: return PM__OP_GE;
        case T_LTE: return PM__OP_LE;
        default: return 0;
        }
    case 3: return t->k == T_ADD ? PM__OP_ADD : t->k == T_SUB ? PM__OP_SUB : 0;
    default:
        return t->k == T_MUL ? PM__OP_MUL : t->k == T_DIV ? PM__OP_DIV : t->k == T_MOD ? PM__OP_MOD : 0;
    }
}

static pm_status_t p_level(xp *P, int lvl, xnode *out);

static pm_status_t p_operand(xp *P, int lvl, xnode *out)
{
    return lvl < 4 ? p_level(P, lvl + 1, out) : p_unary(P, out);
}

/* Can token t start an operand (so that "bool" before it is the modifier)? */
static bool starts_operand(const tok *t)
{
    return t->k == T_NUM || t->k == T_DUR || t->k == T_BADNUM || t->k == T_IDENT ||
           t->k == T_LPAREN || t->k == T_ADD || t->k == T_SUB;
}

/* Operand (op [bool] [modifiers] operand)*, left-associative. */
static pm_status_t p_level(xp *P, int lvl, xnode *out)
{
    xnode l;
    pm_status_t st = p_operand(P, lvl, &l);
    if (st != PM_OK) return st;
    pm__abinop op;
    while ((op = op_at(P, lvl)) != 0) {
        size_t opos = P->t.pos;
        st = PM__OP_IS_SET(op) ? need_vector(P, l.n) : need_instant(P, l.n);
        pm__anode *n = st == PM_OK ? node_new(PM__AN_BIN, l.n->pos) : NULL;
        if (st == PM_OK && !n) st = PM_ENOMEM;
        if (st != PM_OK) {
            pm__anode_free(l.n);
            return st;
        }
        n->u.bin.op = op;
        n->u.bin.l = l.n;
        adv(P);
        if (PM__OP_IS_CMP(op) && tok_is(P, &P->t, "bool")) {
            tok nx;
            peek(P, &nx);
            if (starts_operand(&nx)) {
                n->u.bin.bool_mod = true;
                adv(P);
            }
        }
        xnode r = {NULL, 0};
        st = p_mods(P, n);
        if (st == PM_OK) st = p_operand(P, lvl, &r);
        if (st == PM_OK) {
            n->u.bin.r = r.n;
            st = PM__OP_IS_SET(op) ? need_vector(P, r.n) : need_instant(P, r.n);
        }
        unsigned h = (l.h > r.h ? l.h : r.h) + 1;
        if (st == PM_OK) st = check_height(P, h, opos);
        if (st != PM_OK) {
            pm__anode_free(n);
            return st;
        }
        l.n = n;
        l.h = h;
    }
    *out = l;
    return PM_OK;
}

/* primary [ "^" [modifiers] unary ]: right-associative, binds tighter than a
 * unary minus on its left (-2^2 = -4). */
static pm_status_t p_pow(xp *P, xnode *out)
{
    xnode b;
    pm_status_t st = p_primary(P, &b);
    if (st != PM_OK || P->t.k != T_POW) {
        if (st == PM_OK) *out = b;
        return st;
    }
    size_t opos = P->t.pos;
    pm__anode *n = NULL;
    st = need_instant(P, b.n);
    if (st == PM_OK && !(n = node_new(PM__AN_BIN, b.n->pos))) st = PM_ENOMEM;
    if (st != PM_OK) {
        pm__anode_free(b.n);
        return st;
    }
    n->u.bin.op = PM__OP_POW;
    n->u.bin.l = b.n;
    adv(P);
    xnode e = {NULL, 0};
    st = p_mods(P, n);
    if (st == PM_OK && P->depth >= MAX_DEPTH) st = check_height(P, MAX_DEPTH + 1, P->t.pos);
    if (st == PM_OK) {
        P->depth++;
        st = p_unary(P, &e);
        P->depth--;
    }
    if (st == PM_OK) {
        n->u.bin.r = e.n;
        st = need_instant(P, e.n);
    }
    unsigned h = (b.h > e.h ? b.h : e.h) + 1;
    if (st == PM_OK) st = check_height(P, h, opos);
    if (st != PM_OK) {
        pm__anode_free(n);
        return st;
    }
    out->n = n;
    out->h = h;
    return PM_OK;
}

/* ("-" | "+") unary | pow. A minus on a number literal folds into it. */
static pm_status_t p_unary(xp *P, xnode *out)
{
    if (P->t.k != T_SUB && P->t.k != T_ADD) return p_pow(P, out);
    if (P->depth >= MAX_DEPTH) return check_height(P, MAX_DEPTH + 1, P->t.pos);
    bool minus = P->t.k == T_SUB;
    size_t pos = P->t.pos;
    adv(P);
    xnode a;
    P->depth++;
    pm_status_t st = p_unary(P, &a);
    P->depth--;
    if (st != PM_OK) return st;
    st = need_instant(P, a.n);
    if (st == PM_OK && minus) {
        if (a.n->kind == PM__AN_NUM) {
            a.n->u.num = -a.n->u.num;
            a.n->pos = pos;
        } else if ((st = check_height(P, a.h + 1, pos)) == PM_OK) {
            pm__anode *n = node_new(PM__AN_NEG, pos);
            if (!n) {
                st = PM_ENOMEM;
            } else {
                n->u.neg.arg = a.n;
                a.n = n;
                a.h++;
            }
        }
    }
    if (st != PM_OK) {
        pm__anode_free(a.n);
        return st;
    }
    *out = a;
    return PM_OK;
}

/* A nested expression (in parentheses, an argument): one level deeper. */
static pm_status_t p_or(xp *P, xnode *out)
{
    if (P->depth >= MAX_DEPTH) return check_height(P, MAX_DEPTH + 1, P->t.pos);
    P->depth++;
    pm_status_t st = p_level(P, 0, out);
    P->depth--;
    return st;
}

pm_status_t pm__aexpr_parse(const char *text, size_t len, pm__srcpos at, pm__anode **out,
                            pm_parse_error_t **err)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!text) return PM_EINVAL;
    if (len > MAX_EXPR_LEN)
        return pm__perr(err, at.line, at.column, at.offset, NULL,
                        "expression longer than %u bytes", MAX_EXPR_LEN);
    xp P = {text, len, at, {0}, 0, 0, err};
    lex(text, len, 0, &P.t);
    xnode x;
    pm_status_t st = p_level(&P, 0, &x);
    if (st != PM_OK) return st;
    st = need_instant(&P, x.n);
    if (st == PM_OK && P.t.k != T_EOF) st = unexpected(&P, "an operator or end of input");
    if (st != PM_OK) {
        pm__anode_free(x.n);
        return st;
    }
    *out = x.n;
    return PM_OK;
}

/* ------------------------------------------------------------ trees */

void pm__anode_free(pm__anode *n)
{
    if (!n) return;
    switch (n->kind) {
    case PM__AN_SEL:
    case PM__AN_RANGE:
        pm__free(A, n->u.sel.metric);
        for (size_t i = 0; i < n->u.sel.nm; i++) pm__amatcher_fini(&n->u.sel.m[i]);
        pm__free(A, n->u.sel.m);
        break;
    case PM__AN_CALL: pm__anode_free(n->u.call.arg); break;
    case PM__AN_AGG:
        free_labels(n->u.agg.labels, n->u.agg.nlabels);
        pm__anode_free(n->u.agg.arg);
        break;
    case PM__AN_BIN:
        free_labels(n->u.bin.mlabels, n->u.bin.nmlabels);
        pm__anode_free(n->u.bin.l);
        pm__anode_free(n->u.bin.r);
        break;
    case PM__AN_NEG: pm__anode_free(n->u.neg.arg); break;
    default: break;
    }
    pm__free(A, n);
}

static pm_status_t copy_labels(char *const *src, size_t n, char ***dst, size_t *ndst)
{
    *dst = NULL;
    *ndst = 0;
    if (!n) return PM_OK;
    char **d = pm__calloc(A, n * sizeof *d);
    if (!d) return PM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(d[i] = pm__strdup(A, src[i]))) {
            free_labels(d, i);
            return PM_ENOMEM;
        }
    }
    *dst = d;
    *ndst = n;
    return PM_OK;
}

pm_status_t pm__anode_copy(const pm__anode *n, pm__anode **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!n) return PM_EINVAL;
    pm__anode *c = pm__alloc(A, sizeof *c);
    if (!c) return PM_ENOMEM;
    *c = *n;
    pm_status_t st = PM_OK;
    switch (n->kind) {
    case PM__AN_SEL:
    case PM__AN_RANGE:
        c->u.sel.m = NULL;
        c->u.sel.nm = 0;
        if (!(c->u.sel.metric = pm__strdup(A, n->u.sel.metric))) {
            st = PM_ENOMEM;
            break;
        }
        if (n->u.sel.nm && !(c->u.sel.m = pm__calloc(A, n->u.sel.nm * sizeof *c->u.sel.m))) {
            st = PM_ENOMEM;
            break;
        }
        for (; c->u.sel.nm < n->u.sel.nm; c->u.sel.nm++)
            if ((st = pm__amatcher_copy(&c->u.sel.m[c->u.sel.nm], &n->u.sel.m[c->u.sel.nm])) !=
                PM_OK)
                break;
        break;
    case PM__AN_CALL:
        c->u.call.arg = NULL;
        if (n->u.call.arg) st = pm__anode_copy(n->u.call.arg, &c->u.call.arg);
        break;
    case PM__AN_AGG:
        c->u.agg.arg = NULL;
        st = copy_labels(n->u.agg.labels, n->u.agg.nlabels, &c->u.agg.labels, &c->u.agg.nlabels);
        if (st == PM_OK && n->u.agg.arg) st = pm__anode_copy(n->u.agg.arg, &c->u.agg.arg);
        break;
    case PM__AN_BIN:
        c->u.bin.l = c->u.bin.r = NULL;
        st = copy_labels(n->u.bin.mlabels, n->u.bin.nmlabels, &c->u.bin.mlabels,
                         &c->u.bin.nmlabels);
        if (st == PM_OK && n->u.bin.l) st = pm__anode_copy(n->u.bin.l, &c->u.bin.l);
        if (st == PM_OK && n->u.bin.r) st = pm__anode_copy(n->u.bin.r, &c->u.bin.r);
        break;
    case PM__AN_NEG:
        c->u.neg.arg = NULL;
        if (n->u.neg.arg) st = pm__anode_copy(n->u.neg.arg, &c->u.neg.arg);
        break;
    default: break;
    }
    if (st != PM_OK) {
        pm__anode_free(c);
        return st;
    }
    *out = c;
    return PM_OK;
}

/* Pre-order: a node before its children, left before right. */
void pm__anode_walk(const pm__anode *n, pm__anode_visit_fn fn, void *user)
{
    if (!n || !fn) return;
    switch (n->kind) {
    case PM__AN_RANGE: fn(n, user); break;
    case PM__AN_CALL:
        if (n->u.call.fn == PM__FN_ZSCORE_EWMA) fn(n, user);
        pm__anode_walk(n->u.call.arg, fn, user);
        break;
    case PM__AN_AGG: pm__anode_walk(n->u.agg.arg, fn, user); break;
    case PM__AN_BIN:
        pm__anode_walk(n->u.bin.l, fn, user);
        pm__anode_walk(n->u.bin.r, fn, user);
        break;
    case PM__AN_NEG: pm__anode_walk(n->u.neg.arg, fn, user); break;
    default: break;
    }
}

/* ------------------------------------------------------------ rule files */

typedef enum fkind {
    F_EXPR = 0, F_FOR, F_KEEP, F_REPEAT, F_SEVERITY, F_WARNING, F_CRITICAL, F_RESOLVE, F_NODATA,
    F_ENABLED, F_LABEL, F_ANNOT, F_COUNT
} fkind;

static const struct {
    const char *key;
    fkind k;
} fkeys[] = {{"expr", F_EXPR},         {"for", F_FOR},
             {"keep_firing_for", F_KEEP}, {"repeat", F_REPEAT},
             {"cooldown", F_REPEAT},   {"severity", F_SEVERITY},
             {"warning", F_WARNING},   {"critical", F_CRITICAL},
             {"resolve", F_RESOLVE},   {"nodata", F_NODATA},
             {"enabled", F_ENABLED},   {"label", F_LABEL},
             {"annotation", F_ANNOT}};

static const char *const cmp_ops[] = {">=", "<=", "==", "!=", ">", "<"};

/* One field line of the rule being read, checked, kept until the closing
 * brace builds the rule. */
typedef struct rfield {
    fkind k;
    const char *key; /* as written ("cooldown") */
    size_t keylen;
    pm__srcpos key_at, name_at, val_at;
    const char *v; /* expr, resolve: the text */
    size_t vlen;
    double num;  /* durations (seconds), thresholds */
    int ival;    /* severity, nodata, enabled, comparison (index in cmp_ops) */
    char *name;  /* label, annotation */
    char *str;   /* label value, template (unescaped) */
    size_t slen;
} rfield;

/* Names seen: slices of the text, so nothing is copied. */
typedef struct hent {
    const char *p;
    size_t n;
    unsigned tag, line;
} hent;

typedef struct hset {
    hent *e;
    size_t cap, used;
} hset;

static uint64_t hhash(const char *p, size_t n, unsigned tag)
{
    uint64_t h = 1469598103934665603ULL ^ tag;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)p[i]) * 1099511628211ULL;
    return h;
}

/* PM_OK when added, PM_EEXIST (with *first, the line it was added at) when
 * already there, PM_ENOMEM. */
static pm_status_t hset_add(hset *h, const char *p, size_t n, unsigned tag, unsigned line,
                            unsigned *first)
{
    if ((h->used + 1) * 2 > h->cap) {
        size_t nc = h->cap ? h->cap * 2 : 16;
        hent *e = pm__calloc(A, nc * sizeof *e);
        if (!e) return PM_ENOMEM;
        for (size_t i = 0; i < h->cap; i++) {
            if (!h->e[i].p) continue;
            size_t k = (size_t)hhash(h->e[i].p, h->e[i].n, h->e[i].tag) & (nc - 1);
            while (e[k].p) k = (k + 1) & (nc - 1);
            e[k] = h->e[i];
        }
        pm__free(A, h->e);
        h->e = e;
        h->cap = nc;
    }
    size_t k = (size_t)hhash(p, n, tag) & (h->cap - 1);
    for (; h->e[k].p; k = (k + 1) & (h->cap - 1)) {
        const hent *x = &h->e[k];
        if (x->tag == tag && x->n == n && !memcmp(x->p, p, n)) {
            *first = x->line;
            return PM_EEXIST;
        }
    }
    h->e[k] = (hent){p, n, tag, line};
    h->used++;
    return PM_OK;
}

static void hset_clear(hset *h)
{
    if (h->cap > 64) {
        pm__free(A, h->e);
        h->e = NULL;
        h->cap = 0;
    } else if (h->cap) {
        memset(h->e, 0, h->cap * sizeof *h->e);
    }
    h->used = 0;
}

typedef struct rp {
    const char *s;
    size_t len;
    pm_parse_error_t **err;
    pm__arule_sink_fn add;
    void *user;
    /* the current line: [ls, ce) without its line ending */
    size_t ls, ce;
    unsigned line;
    /* the rule being read */
    bool in_rule;
    pm__srcpos alert_at, name_at;
    char *name;
    rfield *f;
    size_t nf, capf;
    size_t seen[F_COUNT]; /* index + 1 of the field of that kind */
    bool expr_is_cmp;
    hset names;  /* rule names of the file */
    hset fnames; /* label and annotation names of the rule */
} rp;

static pm__srcpos rpos(const rp *R, size_t off)
{
    return (pm__srcpos){R->line, (unsigned)(off - R->ls + 1), off};
}

static pm_status_t rerr(rp *R, size_t off, const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static pm_status_t rerr(rp *R, size_t off, const char *expected, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pm_status_t st = pm__perrv(R->err, rpos(R, off), expected, fmt, ap);
    va_end(ap);
    return st;
}

/* What stands at p: "end of line", or the run of characters up to a blank. */
static void rfound(const rp *R, size_t p, char *out, size_t n)
{
    if (p >= R->ce || R->s[p] == '#') {
        snprintf(out, n, "end of line");
        return;
    }
    size_t e = p;
    while (e < R->ce && !is_blank(R->s[e]) && R->s[e] != '#') e++;
    quote_text(out, n, R->s + p, e - p);
}

static pm_status_t rexpected(rp *R, size_t p, const char *expected)
{
    char found[64];
    rfound(R, p, found, sizeof found);
    return rerr(R, p, expected, "expected %s but found %s", expected, found);
}

static size_t skip_blanks(const rp *R, size_t p)
{
    while (p < R->ce && is_blank(R->s[p])) p++;
    return p;
}

/* Only blanks and a comment may follow. */
static pm_status_t expect_eol(rp *R, size_t p)
{
    p = skip_blanks(R, p);
    if (p < R->ce && R->s[p] != '#') return rexpected(R, p, "end of line");
    return PM_OK;
}

/* The end of a word: up to a blank, a comment or the end of the line. */
static size_t word_end(const rp *R, size_t p)
{
    while (p < R->ce && !is_blank(R->s[p]) && R->s[p] != '#') p++;
    return p;
}

/* The end of an expression value: the line's end or a '#' outside a string,
 * blanks before it dropped. */
static size_t expr_end(const rp *R, size_t p)
{
    const char *s = R->s;
    size_t e = p;
    while (e < R->ce && s[e] != '#') {
        char q = s[e];
        if (q == '"' || q == '\'' || q == '`') {
            for (e++; e < R->ce && s[e] != q; e++)
                if (s[e] == '\\' && q != '`') e++;
        }
        if (e < R->ce) e++;
    }
    if (e > R->ce) e = R->ce;
    while (e > p && is_blank(s[e - 1])) e--;
    return e;
}

/* A STRING at p: "..." with \\ \" \n \t. *map (optional) receives, for every
 * byte of the value and one past it, its offset in the file. */
static pm_status_t parse_string(rp *R, size_t p, char **out, size_t *outlen, size_t **map,
                                size_t *end)
{
    const char *s = R->s;
    if (p >= R->ce || s[p] != '"') return rexpected(R, p, "a string");
    size_t cap = R->ce - p;
    char *d = pm__alloc(A, cap);
    size_t *m = map ? pm__alloc(A, cap * sizeof *m) : NULL;
    if (!d || (map && !m)) {
        pm__free(A, d);
        pm__free(A, m);
        return PM_ENOMEM;
    }
    size_t q = p + 1, n = 0;
    pm_status_t st = PM_OK;
    for (;;) {
        if (q >= R->ce) {
            st = rerr(R, p, "'\"'", "unterminated string");
            break;
        }
        char c = s[q];
        if (c == '"') break;
        if (c == '\0') {
            st = rerr(R, q, NULL, "NUL byte in string");
            break;
        }
        size_t at = q;
        if (c == '\\') {
            char e = q + 1 < R->ce ? s[q + 1] : '\0';
            if (q + 1 >= R->ce) {
                st = rerr(R, p, "'\"'", "unterminated string");
                break;
            }
            if (e == 'n') c = '\n';
            else if (e == 't') c = '\t';
            else if (e == '\\' || e == '"') c = e;
            else {
                unsigned char u = (unsigned char)e;
                if (u >= 0x20 && u < 0x7f)
                    st = rerr(R, q, "an escape sequence", "invalid escape sequence '\\%c' in string",
                              e);
                else
                    st = rerr(R, q, "an escape sequence",
                              "invalid escape sequence (backslash and byte 0x%02x) in string", u);
                break;
            }
            q += 2;
        } else {
            q++;
        }
        if (m) m[n] = at;
        d[n++] = c;
    }
    if (st != PM_OK) {
        pm__free(A, d);
        pm__free(A, m);
        return st;
    }
    if (m) m[n] = q;
    d[n] = '\0';
    if (!pm__valid_utf8(d, n)) {
        pm__free(A, d);
        pm__free(A, m);
        return rerr(R, p, NULL, "string is not valid UTF-8");
    }
    *out = d;
    *outlen = n;
    if (map) *map = m;
    *end = q + 1;
    return PM_OK;
}

/* A comparison operator at p: index in cmp_ops, or -1. */
static int parse_cmp(const rp *R, size_t p, size_t *end)
{
    for (int i = 0; i < (int)(sizeof cmp_ops / sizeof cmp_ops[0]); i++) {
        size_t n = strlen(cmp_ops[i]);
        if (p + n <= R->ce && !memcmp(R->s + p, cmp_ops[i], n)) {
            *end = p + n;
            return i;
        }
    }
    return -1;
}

/* NUMBER alone up to vend (after a comparison operator). */
static pm_status_t parse_threshold_number(rp *R, size_t p, size_t vend, double *v)
{
    /* Past vend there are only blanks before a comment or the line's end. */
    if (p >= vend) return rexpected(R, p, "a number");
    size_t we = word_end(R, p);
    if (we > vend) we = vend;
    if (we == p || !parse_number(R->s + p, we - p, v)) return rexpected(R, p, "a number");
    if (skip_blanks(R, we) < vend) return rexpected(R, skip_blanks(R, we), "end of line");
    return PM_OK;
}

static pm_status_t parse_dur_value(rp *R, size_t p, double *secs, size_t *end)
{
    size_t we = word_end(R, p);
    const char *w = R->s + p;
    int64_t ns = 0;
    int r = (we - p == 1 && w[0] == '0') ? DUR_OK : we > p ? parse_duration(w, we - p, &ns)
                                                           : DUR_SYNTAX;
    if (r == DUR_SYNTAX) return rexpected(R, p, "a duration");
    char q[64];
    quote_text(q, sizeof q, w, we - p);
    if (r == DUR_ORDER)
        return rerr(R, p, "a duration",
                    "expected a duration but found %s: units must be in decreasing order "
                    "(e.g. 1h30m)", q);
    if (r == DUR_RANGE) return rerr(R, p, "a duration", "duration %s is out of range", q);
    *secs = (double)ns / 1e9;
    *end = we;
    return PM_OK;
}

/* One of the words of `words` (NULL-terminated) at p: its index. */
static pm_status_t parse_word(rp *R, size_t p, const char *const *words, const char *expected,
                              int *idx, size_t *end)
{
    size_t we = word_end(R, p);
    for (int i = 0; words[i]; i++)
        if (lit_eq(R->s + p, we - p, words[i])) {
            *idx = i;
            *end = we;
            return PM_OK;
        }
    return rexpected(R, p, expected);
}

static bool reserved_label(const char *n)
{
    return !strcmp(n, "alertname") || !strcmp(n, "severity") || !strcmp(n, "alertstate") ||
           !strcmp(n, "alertstate_reason");
}

/* The text of a parse error's message after its "line L, column C: ". */
static const char *perr_text(const pm_parse_error_t *e)
{
    const char *m = e->message, *c = strstr(m, ", column ");
    const char *t = c ? strstr(c, ": ") : NULL;
    return t ? t + 2 : m;
}

static void rule_reset(rp *R)
{
    for (size_t i = 0; i < R->nf; i++) {
        pm__free(A, R->f[i].name);
        pm__free(A, R->f[i].str);
    }
    R->nf = 0;
    pm__free(A, R->name);
    R->name = NULL;
    memset(R->seen, 0, sizeof R->seen);
    R->expr_is_cmp = false;
    R->in_rule = false;
    hset_clear(&R->fnames);
}

static bool top_is_cmp(const pm__anode *n)
{
    return n->kind == PM__AN_BIN &&
           ((PM__OP_IS_CMP(n->u.bin.op) && !n->u.bin.bool_mod) || PM__OP_IS_SET(n->u.bin.op));
}

/* A template value: unescaped, then parsed so that an error inside it is
 * reported at its byte in the file even after escapes. */
static pm_status_t check_template(rp *R, rfield *fd, const size_t *map)
{
    pm__srcpos cat = fd->val_at;
    cat.column++;
    cat.offset++;
    pm_parse_error_t *le = NULL;
    pm__atmpl *t = NULL;
    pm_status_t st = pm__atmpl_parse(fd->str, fd->slen, cat, &t, &le);
    pm__atmpl_free(t);
    if (st == PM_OK || st == PM_ENOMEM) {
        pm_parse_error_free(le);
        return st;
    }
    size_t k = le && le->offset >= cat.offset ? le->offset - cat.offset : 0;
    if (k > fd->slen) k = fd->slen;
    if (le)
        st = rerr(R, map[k], le->expected[0] ? le->expected : NULL, "%s", perr_text(le));
    else
        st = rerr(R, map[k], NULL, "invalid template: %s", pm_strerror(st));
    pm_parse_error_free(le);
    return st;
}

static pm_status_t field_line(rp *R, size_t p)
{
    const char *s = R->s;
    size_t kp = p;
    if (p < R->ce && is_alpha_(s[p]))
        while (p < R->ce && is_label_char(s[p])) p++;
    if (p == kp) return rexpected(R, kp, "a field name");
    int fi = -1;
    for (size_t i = 0; i < sizeof fkeys / sizeof fkeys[0]; i++)
        if (lit_eq(s + kp, p - kp, fkeys[i].key)) fi = (int)i;
    if (fi < 0) {
        char q[64];
        quote_text(q, sizeof q, s + kp, p - kp);
        return rerr(R, kp, "a field name", "unknown field %s", q);
    }
    rfield fd;
    memset(&fd, 0, sizeof fd);
    fd.k = fkeys[fi].k;
    fd.key = s + kp;
    fd.keylen = p - kp;
    fd.key_at = rpos(R, kp);
    int kl = (int)fd.keylen;
    pm_status_t st;
    unsigned first;

    if (fd.k != F_LABEL && fd.k != F_ANNOT && R->seen[fd.k])
        return rerr(R, kp, NULL, "duplicate field '%.*s' (first at line %u)", kl, fd.key,
                    R->f[R->seen[fd.k] - 1].key_at.line);
    if (fd.k == F_SEVERITY && (R->seen[F_WARNING] || R->seen[F_CRITICAL]))
        return rerr(R, kp, NULL, "'severity' cannot be combined with warning/critical thresholds");
    if ((fd.k == F_WARNING || fd.k == F_CRITICAL) && R->seen[F_SEVERITY])
        return rerr(R, kp, NULL, "warning/critical thresholds cannot be combined with 'severity'");
    if ((fd.k == F_WARNING || fd.k == F_CRITICAL) && R->expr_is_cmp)
        return rerr(R, kp, "a value expression",
                    "warning/critical thresholds need a value expression, but the 'expr' at "
                    "line %u is a comparison", R->f[R->seen[F_EXPR] - 1].key_at.line);

    size_t np = 0, ne = 0;
    if (fd.k == F_LABEL || fd.k == F_ANNOT) {
        const char *what = fd.k == F_LABEL ? "label" : "annotation";
        np = skip_blanks(R, p);
        ne = np;
        if (ne < R->ce && is_alpha_(s[ne]))
            while (ne < R->ce && is_label_char(s[ne])) ne++;
        if (ne == np) return rexpected(R, np, fd.k == F_LABEL ? "a label name" : "an annotation name");
        fd.name_at = rpos(R, np);
        if (!(fd.name = dupn(s + np, ne - np))) return PM_ENOMEM;
        if (!pm__valid_label_name(fd.name) || (fd.k == F_LABEL && reserved_label(fd.name))) {
            st = rerr(R, np, fd.k == F_LABEL ? "a label name" : "an annotation name",
                      "invalid or reserved %s name '%s'", what, fd.name);
            pm__free(A, fd.name);
            return st;
        }
        st = hset_add(&R->fnames, s + np, ne - np, fd.k, R->line, &first);
        if (st == PM_EEXIST)
            st = rerr(R, np, NULL, "duplicate %s '%s' (first at line %u)", what, fd.name, first);
        if (st != PM_OK) {
            pm__free(A, fd.name);
            return st;
        }
        p = ne;
    }
    p = skip_blanks(R, p);
    if (p >= R->ce || s[p] != ':') st = rexpected(R, p, "':'");
    else st = PM_OK;
    size_t vp = skip_blanks(R, p + 1), end = vp;
    fd.val_at = rpos(R, vp);
    size_t *map = NULL;

    static const char *const severities[] = {"info", "warning", "critical", NULL};
    static const char *const nodatas[] = {"ok", "keep", "alerting", NULL};
    static const char *const bools[] = {"false", "true", NULL};
    if (st == PM_OK) switch (fd.k) {
    case F_EXPR:
    case F_RESOLVE: {
        size_t ve = expr_end(R, vp);
        end = ve;
        fd.v = s + vp;
        fd.vlen = ve - vp;
        if (ve == vp) {
            st = rexpected(R, vp, "an expression");
            break;
        }
        if (fd.k == F_RESOLVE && strchr("<>=!", s[vp])) {
            size_t e;
            if ((fd.ival = parse_cmp(R, vp, &e)) < 0) st = rexpected(R, vp, "a comparison operator");
            else st = parse_threshold_number(R, skip_blanks(R, e), ve, &fd.num);
            break;
        }
        pm__anode *tree = NULL;
        st = pm__aexpr_parse(fd.v, fd.vlen, fd.val_at, &tree, R->err);
        if (st == PM_OK && fd.k == F_EXPR) {
            R->expr_is_cmp = top_is_cmp(tree);
            if (R->expr_is_cmp && (R->seen[F_WARNING] || R->seen[F_CRITICAL]))
                st = rerr(R, vp, "a value expression",
                          "warning/critical thresholds need a value expression, not a comparison");
        }
        pm__anode_free(tree);
        break;
    }
    case F_FOR:
    case F_KEEP:
    case F_REPEAT: st = parse_dur_value(R, vp, &fd.num, &end); break;
    case F_SEVERITY: st = parse_word(R, vp, severities, "'info', 'warning' or 'critical'", &fd.ival, &end); break;
    case F_NODATA: st = parse_word(R, vp, nodatas, "'ok', 'keep' or 'alerting'", &fd.ival, &end); break;
    case F_ENABLED: st = parse_word(R, vp, bools, "'true' or 'false'", &fd.ival, &end); break;
    case F_WARNING:
    case F_CRITICAL: {
        size_t ve = expr_end(R, vp), e;
        end = ve;
        if ((fd.ival = parse_cmp(R, vp, &e)) < 0) {
            st = rexpected(R, vp, "a comparison operator");
            break;
        }
        size_t other = R->seen[fd.k == F_WARNING ? F_CRITICAL : F_WARNING];
        if (other && R->f[other - 1].ival != fd.ival) {
            char want[8];
            snprintf(want, sizeof want, "'%s'", cmp_ops[R->f[other - 1].ival]);
            st = rerr(R, vp, want, "warning and critical must use the same comparison: expected "
                      "%s but found '%s'", want, cmp_ops[fd.ival]);
            break;
        }
        size_t numpos = skip_blanks(R, e);
        st = parse_threshold_number(R, numpos, ve, &fd.num);
        if (st == PM_OK && !isfinite(fd.num))
            st = rerr(R, numpos, "a finite number", "a threshold must be a finite number");
        break;
    }
    case F_LABEL:
        st = parse_string(R, vp, &fd.str, &fd.slen, NULL, &end);
        if (st == PM_OK && fd.slen > PM_MAX_LABEL_VALUE)
            st = rerr(R, vp, NULL, "label value longer than %d bytes", PM_MAX_LABEL_VALUE);
        if (st == PM_OK && memchr(fd.str, '\0', fd.slen))
            st = rerr(R, vp, NULL, "NUL byte in string");
        break;
    case F_ANNOT:
        st = parse_string(R, vp, &fd.str, &fd.slen, &map, &end);
        if (st == PM_OK) st = check_template(R, &fd, map);
        break;
    default: break;
    }
    pm__free(A, map);
    if (st == PM_OK && fd.k != F_EXPR && fd.k != F_RESOLVE && fd.k != F_WARNING &&
        fd.k != F_CRITICAL)
        st = expect_eol(R, end);
    if (st == PM_OK && !grow((void **)&R->f, &R->capf, R->nf + 1, sizeof *R->f)) st = PM_ENOMEM;
    if (st != PM_OK) {
        pm__free(A, fd.name);
        pm__free(A, fd.str);
        return st;
    }
    R->f[R->nf++] = fd;
    if (fd.k != F_LABEL && fd.k != F_ANNOT) R->seen[fd.k] = R->nf;
    return PM_OK;
}

/* A setter refused a checked value: an error at the field all the same. */
static pm_status_t setter_failed(rp *R, pm_status_t st, pm__srcpos at, const rfield *fd)
{
    if (st == PM_ENOMEM) return st;
    if (st == PM_EPARSE && R->err && *R->err) return st;
    return pm__perr(R->err, at.line, at.column, at.offset, NULL, "%.*s: %s", (int)fd->keylen,
                    fd->key, pm_strerror(st));
}

static pm_status_t build_rule(rp *R, size_t brace)
{
    if (!R->seen[F_EXPR])
        return rerr(R, brace, "an 'expr' field", "rule '%s' has no 'expr' field", R->name);
    const rfield *e = &R->f[R->seen[F_EXPR] - 1];
    pm_alert_rule_t *r = NULL;
    pm_status_t st = pm__arule_new_at(R->name, e->v, e->vlen, e->val_at, &r, R->err);
    if (st != PM_OK) {
        if (st == PM_ENOMEM || (st == PM_EPARSE && R->err && *R->err)) return st;
        return pm__perr(R->err, R->name_at.line, R->name_at.column, R->name_at.offset,
                        "an alert name", "alert name '%s': %s", R->name, pm_strerror(st));
    }
    size_t w = R->seen[F_WARNING], c = R->seen[F_CRITICAL];
    if (w || c) {
        const rfield *t = &R->f[(w && (!c || w < c) ? w : c) - 1];
        st = pm_alert_rule_set_thresholds(r, cmp_ops[t->ival], w ? R->f[w - 1].num : NAN,
                                          c ? R->f[c - 1].num : NAN);
        if (st != PM_OK) st = setter_failed(R, st, t->val_at, t);
    }
    for (size_t i = 0; st == PM_OK && i < R->nf; i++) {
        const rfield *fd = &R->f[i];
        pm__srcpos at = fd->val_at;
        switch (fd->k) {
        case F_FOR: st = pm_alert_rule_set_for(r, fd->num); break;
        case F_KEEP: st = pm_alert_rule_set_keep_firing_for(r, fd->num); break;
        case F_REPEAT: st = pm_alert_rule_set_repeat_interval(r, fd->num); break;
        case F_SEVERITY: st = pm_alert_rule_set_severity(r, (pm_severity_t)(fd->ival + 1)); break;
        case F_NODATA: st = pm_alert_rule_set_nodata(r, (pm_nodata_t)fd->ival); break;
        case F_ENABLED: st = pm_alert_rule_set_enabled(r, fd->ival); break;
        case F_RESOLVE: st = pm__arule_set_resolve_at(r, fd->v, fd->vlen, at, R->err); break;
        case F_LABEL:
            st = pm_alert_rule_set_label(r, fd->name, fd->str);
            if (st == PM_EBADLABEL) at = fd->name_at;
            break;
        case F_ANNOT: {
            pm__srcpos cat = {at.line, at.column + 1, at.offset + 1};
            st = pm__arule_set_annotation_at(r, fd->name, fd->str, fd->slen, cat, R->err);
            if (st == PM_EBADLABEL) at = fd->name_at;
            break;
        }
        default: break;
        }
        if (st != PM_OK) st = setter_failed(R, st, at, fd);
    }
    if (st != PM_OK) {
        pm_alert_rule_free(r);
        return st;
    }
    return R->add(r, R->alert_at, R->user, R->err);
}

static pm_status_t header_line(rp *R, size_t p)
{
    const char *s = R->s;
    size_t kp = p;
    while (p < R->ce && is_name_char(s[p])) p++;
    if (!lit_eq(s + kp, p - kp, "alert")) return rexpected(R, kp, "'alert'");
    p = skip_blanks(R, p);
    size_t np = p;
    if (p < R->ce && is_name_start(s[p]))
        while (p < R->ce && is_name_char(s[p])) p++;
    if (p == np) return rexpected(R, np, "an alert name");
    size_t ne = p;
    p = skip_blanks(R, p);
    if (p >= R->ce || s[p] != '{') return rexpected(R, p, "'{'");
    pm_status_t st = expect_eol(R, p + 1);
    if (st != PM_OK) return st;
    if (!(R->name = dupn(s + np, ne - np))) return PM_ENOMEM;
    if (!pm__valid_metric_name(R->name))
        return rerr(R, np, "an alert name", "invalid alert name '%.*s'", (int)(ne - np > 64 ? 64 : ne - np),
                    R->name);
    unsigned first;
    st = hset_add(&R->names, s + np, ne - np, 0, R->line, &first);
    if (st == PM_EEXIST) {
        st = rerr(R, kp, NULL, "rule '%s' is already defined at line %u", R->name, first);
        return st == PM_EPARSE ? PM_EEXIST : st;
    }
    if (st != PM_OK) return st;
    R->alert_at = rpos(R, kp);
    R->name_at = rpos(R, np);
    R->in_rule = true;
    return PM_OK;
}

static pm_status_t rule_line(rp *R)
{
    size_t p = skip_blanks(R, R->ls);
    if (p >= R->ce || R->s[p] == '#') return PM_OK;
    if (!R->in_rule) {
        pm_status_t st = header_line(R, p);
        if (st != PM_OK) rule_reset(R);
        return st;
    }
    if (R->s[p] == '}') {
        pm_status_t st = expect_eol(R, p + 1);
        if (st == PM_OK) st = build_rule(R, p);
        rule_reset(R);
        return st;
    }
    return field_line(R, p);
}

pm_status_t pm__arules_parse(const char *text, size_t len, pm__arule_sink_fn add, void *user,
                             pm_parse_error_t **err)
{
    if (!text || !add) return PM_EINVAL;
    if (len > MAX_FILE_LEN) return PM_ERANGE;
    rp R;
    memset(&R, 0, sizeof R);
    R.s = text;
    R.len = len;
    R.err = err;
    R.add = add;
    R.user = user;
    pm_status_t st = PM_OK;
    size_t ls = 0;
    for (unsigned line = 1;; line++) {
        const char *nl = memchr(text + ls, '\n', len - ls);
        size_t le = nl ? (size_t)(nl - text) : len;
        R.ls = ls;
        R.line = line;
        R.ce = le > ls && text[le - 1] == '\r' ? le - 1 : le;
        if ((st = rule_line(&R)) != PM_OK) break;
        if (!nl) break;
        ls = le + 1;
    }
    /* R.ce is the end of the text here: the error sits just past it. */
    if (st == PM_OK && R.in_rule) st = rerr(&R, len, "'}'", "expected '}' but found end of input");
    rule_reset(&R);
    pm__free(A, R.f);
    pm__free(A, R.names.e);
    pm__free(A, R.fnames.e);
    return st;
}

/* ------------------------------------------------------------ public */

static pm_status_t count_sink(pm_alert_rule_t *r, pm__srcpos at, void *user,
                              pm_parse_error_t **err)
{
    (void)at;
    (void)err;
    pm_alert_rule_free(r);
    (*(size_t *)user)++;
    return PM_OK;
}

pm_status_t pm_alert_rules_check(const char *text, size_t len, size_t *nrules,
                                 pm_parse_error_t **err)
{
    if (err) *err = NULL;
    if (nrules) *nrules = 0;
    if (!text) return PM_EINVAL;
    size_t n = 0;
    pm_status_t st = pm__arules_parse(text, len, count_sink, &n, err);
    if (st == PM_OK && nrules) *nrules = n;
    return st;
}

typedef struct collected {
    pm_alert_rule_t **r;
    pm__srcpos *at;
    size_t n, cap, capat;
} collected;

static pm_status_t collect_sink(pm_alert_rule_t *r, pm__srcpos at, void *user,
                                pm_parse_error_t **err)
{
    (void)err;
    collected *c = user;
    if (!grow((void **)&c->r, &c->cap, c->n + 1, sizeof *c->r) ||
        !grow((void **)&c->at, &c->capat, c->n + 1, sizeof *c->at)) {
        pm_alert_rule_free(r);
        return PM_ENOMEM;
    }
    c->r[c->n] = r;
    c->at[c->n++] = at;
    return PM_OK;
}

pm_status_t pm_alert_engine_load_string(pm_alert_engine_t *e, const char *text, size_t len,
                                        pm_parse_error_t **err)
{
    if (err) *err = NULL;
    if (!e || !text) return PM_EINVAL;
    collected c;
    memset(&c, 0, sizeof c);
    pm_status_t st = pm__arules_parse(text, len, collect_sink, &c, err);
    if (st == PM_OK && c.n) {
        size_t bad = 0;
        st = pm__aengine_add_rules(e, c.r, c.n, &bad);
        if (st == PM_EEXIST && bad < c.n) {
            pm__srcpos at = c.at[bad];
            pm_status_t pe = pm__perr(err, at.line, at.column, at.offset, NULL,
                                      "rule '%s' is already loaded", c.r[bad]->name);
            if (pe == PM_ENOMEM) st = pe;
        }
    }
    for (size_t i = 0; i < c.n; i++) pm_alert_rule_free(c.r[i]);
    pm__free(A, c.r);
    pm__free(A, c.at);
    return st;
}

pm_status_t pm_alert_engine_load_file(pm_alert_engine_t *e, const char *path,
                                      pm_parse_error_t **err)
{
    if (err) *err = NULL;
    if (!e || !path) return PM_EINVAL;
    FILE *f = fopen(path, "rb");
    if (!f) return PM_EIO;
    size_t cap = 0, n = 0;
    char *buf = NULL;
    pm_status_t st = PM_OK;
    for (;;) {
        if (n == cap) {
            if (cap > MAX_FILE_LEN) {
                st = PM_ERANGE;
                break;
            }
            /* One byte past the limit tells a file of exactly 16 MiB from a
             * longer one. */
            size_t nc = cap ? cap * 2 : 65536;
            if (nc > MAX_FILE_LEN + 1) nc = MAX_FILE_LEN + 1;
            char *nb = pm__alloc(A, nc);
            if (!nb) {
                st = PM_ENOMEM;
                break;
            }
            if (n) memcpy(nb, buf, n);
            pm__free(A, buf);
            buf = nb;
            cap = nc;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) st = PM_EIO;
            break;
        }
    }
    fclose(f);
    if (st == PM_OK && n > MAX_FILE_LEN) st = PM_ERANGE;
    if (st == PM_OK) st = pm_alert_engine_load_string(e, buf ? buf : "", n, err);
    pm__free(A, buf);
    return st;
}
