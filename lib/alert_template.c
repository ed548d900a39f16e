/* Annotation templates: literal text with {{ ... }} actions.
 *
 *   {{ $value }}  {{ $labels.NAME }}  {{ $alertname }}  {{ $severity }}
 *   {{ $value | humanize }}  {{ $value | humanizePercentage }}
 *   {{ $value | humanizeDuration }}  {{ $value | printf "%.2f" }}
 *
 * The pipes follow Prometheus' template functions (Go's %.4g, SI prefixes);
 * printf takes one floating conversion, checked when the template is parsed,
 * so rendering never hands an unchecked format to snprintf. Numbers are
 * written with '.' whatever the C locale says. */
#include "internal/alert_internal.h"
#include "internal/format_internal.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static const pm_alloc_t *A = &pm__default_alloc;

typedef enum tpkind { TP_LIT, TP_VALUE, TP_LABEL, TP_ALERTNAME, TP_SEVERITY } tpkind;
typedef enum tpipe { PIPE_NONE, PIPE_HUMANIZE, PIPE_PERCENT, PIPE_DURATION, PIPE_PRINTF } tpipe;

typedef struct tpart {
    tpkind k;
    tpipe pipe;
    char *s; /* TP_LIT: the text; TP_LABEL: the name; PIPE_PRINTF: the format */
    size_t n;
    size_t conv, conv_len; /* PIPE_PRINTF: where the one conversion sits in s */
    char spec[16];         /* PIPE_PRINTF: that conversion, flags each once */
} tpart;

struct pm__atmpl {
    tpart *p;
    size_t n;
};

void pm__atmpl_free(pm__atmpl *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->n; i++) pm__free(A, t->p[i].s);
    pm__free(A, t->p);
    pm__free(A, t);
}

/* ------------------------------------------------------------ parsing */

typedef struct tp {
    const char *s;
    size_t len;
    pm__srcpos at;
    pm_parse_error_t **err;
    pm__atmpl *t;
    size_t cap;
} tp;

static pm_status_t terr(tp *T, size_t pos, const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static pm_status_t terr(tp *T, size_t pos, const char *expected, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    pm__srcpos at = {T->at.line, T->at.column + (unsigned)pos, T->at.offset + pos};
    pm_status_t st = pm__perrv(T->err, at, expected, fmt, ap);
    va_end(ap);
    return st;
}

static bool is_alpha_(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_alnum_(int c) { return is_alpha_(c) || (c >= '0' && c <= '9'); }
static bool is_ws(int c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* What stands at pos inside an action ending at `end` (the "}}"). */
static void tfound(const tp *T, size_t pos, size_t end, char *out, size_t n)
{
    if (pos >= end) {
        snprintf(out, n, "'}}'");
        return;
    }
    const char *s = T->s;
    if (is_ws((unsigned char)s[pos])) {
        snprintf(out, n, "a blank");
        return;
    }
    size_t e = pos;
    if (is_alnum_((unsigned char)s[pos]) || s[pos] == '$')
        for (e = pos + 1; e < end && is_alnum_((unsigned char)s[e]); e++) {
        }
    else
        e = pos + 1;
    char w[48];
    size_t k = 0;
    for (size_t i = pos; i < e && k < 40; i++, k++) {
        unsigned char c = (unsigned char)s[i];
        w[k] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    w[k] = '\0';
    snprintf(out, n, "'%s%s'", w, e - pos > 40 ? "..." : "");
}

static pm_status_t tunexpected(tp *T, size_t pos, size_t end, const char *expected)
{
    char found[64];
    tfound(T, pos, end, found, sizeof found);
    return terr(T, pos, expected, "expected %s but found %s", expected, found);
}

static pm_status_t add_part(tp *T, tpart part)
{
    if (T->t->n == T->cap) {
        size_t nc = T->cap ? T->cap * 2 : 4;
        tpart *p = pm__alloc(A, nc * sizeof *p);
        if (!p) {
            pm__free(A, part.s);
            return PM_ENOMEM;
        }
        if (T->t->n) memcpy(p, T->t->p, T->t->n * sizeof *p);
        pm__free(A, T->t->p);
        T->t->p = p;
        T->cap = nc;
    }
    T->t->p[T->t->n++] = part;
    return PM_OK;
}

static char *dupn(const char *s, size_t n)
{
    char *d = pm__alloc(A, n + 1);
    if (!d) return NULL;
    if (n) memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

static pm_status_t add_lit(tp *T, size_t a, size_t b)
{
    if (a >= b) return PM_OK;
    char *s = dupn(T->s + a, b - a);
    if (!s) return PM_ENOMEM;
    return add_part(T, (tpart){TP_LIT, PIPE_NONE, s, b - a, 0, 0, ""});
}

/* The index of the closing quote of the string opening at i ("..." with
 * escapes, or `...`), or `end` when it is not closed before end. */
static size_t string_close(const char *s, size_t i, size_t end)
{
    char q = s[i];
    for (i++; i < end; i++) {
        if (s[i] == q) return i;
        if (s[i] == '\\' && q == '"') i++;
    }
    return end;
}

/* Checks a printf format (unescaped, map[k] = its byte k's position in the
 * template): text, "%%", and exactly one %[-+ 0#]*[w][.p](e|E|f|g|G) with
 * width and precision of at most two digits. The conversion is kept in
 * `spec` with each flag once ("%-+#0 5.1e" at most: 12 bytes), whatever
 * repeats the format had. */
static pm_status_t check_printf(tp *T, const char *f, size_t n, const size_t *map, size_t qpos,
                                tpart *part)
{
    static const char *const want = "one %f, %e or %g conversion";
    static const char flag_order[] = "-+ 0#";
    size_t found = 0;
    for (size_t i = 0; i < n; i++) {
        if (f[i] != '%') continue;
        if (i + 1 < n && f[i + 1] == '%') {
            i++;
            continue;
        }
        bool flag[5] = {false};
        size_t j = i + 1, ws, wn, ps = 0, pn = 0;
        for (const char *q; j < n && f[j] && (q = strchr(flag_order, f[j])) != NULL; j++)
            flag[q - flag_order] = true;
        for (ws = j; j < n && f[j] >= '0' && f[j] <= '9'; j++) {
        }
        wn = j - ws;
        bool point = j < n && f[j] == '.';
        if (point)
            for (ps = ++j; j < n && f[j] >= '0' && f[j] <= '9'; j++) pn++;
        bool ok = wn <= 2 && pn <= 2 && j < n && f[j] && strchr("eEfgG", f[j]);
        if (!ok) return terr(T, map[i], want, "printf: unsupported conversion; expected %s", want);
        if (found++) return terr(T, map[i], want, "printf: more than one conversion; expected %s", want);
        part->conv = i;
        part->conv_len = j + 1 - i;
        size_t k = 0;
        part->spec[k++] = '%';
        for (int x = 0; x < 5; x++)
            if (flag[x]) part->spec[k++] = flag_order[x];
        memcpy(part->spec + k, f + ws, wn);
        k += wn;
        if (point) {
            part->spec[k++] = '.';
            memcpy(part->spec + k, f + ps, pn);
            k += pn;
        }
        part->spec[k++] = f[j];
        part->spec[k] = '\0';
        i = j;
    }
    if (!found) return terr(T, qpos, want, "printf: no conversion; expected %s", want);
    return PM_OK;
}

/* printf's argument: a string at i. */
static pm_status_t parse_printf(tp *T, size_t i, size_t end, tpart *part, size_t *after)
{
    const char *s = T->s;
    if (i >= end || (s[i] != '"' && s[i] != '`'))
        return tunexpected(T, i, end, "a string");
    char q = s[i];
    size_t close = string_close(s, i, end);
    if (close >= end) return terr(T, i, q == '"' ? "'\"'" : "'`'", "unterminated string");
    size_t cap = close - i;
    char *f = pm__alloc(A, cap);
    size_t *map = pm__alloc(A, cap * sizeof *map);
    if (!f || !map) {
        pm__free(A, f);
        pm__free(A, map);
        return PM_ENOMEM;
    }
    size_t n = 0;
    pm_status_t st = PM_OK;
    for (size_t k = i + 1; k < close; k++) {
        char c = s[k];
        map[n] = k;
        if (c == '\\' && q == '"') {
            char e = s[k + 1];
            if (e == 'n') c = '\n';
            else if (e == 't') c = '\t';
            else if (e == '\\' || e == '"') c = e;
            else {
                st = terr(T, k, "an escape sequence", "invalid escape sequence in string");
                break;
            }
            k++;
        }
        if (c == '\0') {
            st = terr(T, k, NULL, "NUL byte in string");
            break;
        }
        f[n++] = c;
    }
    f[n] = '\0';
    if (st == PM_OK) st = check_printf(T, f, n, map, i, part);
    pm__free(A, map);
    if (st != PM_OK) {
        pm__free(A, f);
        return st;
    }
    part->s = f;
    part->n = n;
    *after = close + 1;
    return PM_OK;
}

/* The action in [a, end): "{{" before a, "}}" at end. */
static pm_status_t parse_action(tp *T, size_t a, size_t end)
{
    const char *s = T->s;
    size_t i = a;
    while (i < end && is_ws((unsigned char)s[i])) i++;
    if (i >= end || s[i] != '$') return tunexpected(T, i, end, "a variable");
    size_t vp = i++;
    while (i < end && is_alnum_((unsigned char)s[i])) i++;
    const char *v = s + vp + 1;
    size_t vn = i - vp - 1;
    tpart part = {TP_VALUE, PIPE_NONE, NULL, 0, 0, 0, ""};
#define IS(lit) (vn == sizeof(lit) - 1 && !memcmp(v, lit, vn))
    if (IS("value")) {
        part.k = TP_VALUE;
    } else if (IS("alertname")) {
        part.k = TP_ALERTNAME;
    } else if (IS("severity")) {
        part.k = TP_SEVERITY;
    } else if (IS("labels")) {
        part.k = TP_LABEL;
        if (i >= end || s[i] != '.') return tunexpected(T, i, end, "'.'");
        size_t np = ++i;
        if (i < end && is_alpha_((unsigned char)s[i]))
            while (i < end && is_alnum_((unsigned char)s[i])) i++;
        if (i == np) return tunexpected(T, np, end, "a label name");
        if (!(part.s = dupn(s + np, i - np))) return PM_ENOMEM;
        part.n = i - np;
    } else {
        char found[64];
        tfound(T, vp, end, found, sizeof found);
        return terr(T, vp, "a variable ($value, $labels.NAME, $alertname, $severity)",
                    "unknown variable %s", found);
    }
#undef IS
    while (i < end && is_ws((unsigned char)s[i])) i++;
    pm_status_t st = PM_OK;
    if (i < end && s[i] == '|') {
        i++;
        while (i < end && is_ws((unsigned char)s[i])) i++;
        size_t fp = i;
        while (i < end && is_alnum_((unsigned char)s[i])) i++;
        const char *fn = s + fp;
        size_t fnl = i - fp;
#define FN(lit) (fnl == sizeof(lit) - 1 && !memcmp(fn, lit, fnl))
        if (fnl == 0) st = tunexpected(T, fp, end, "a function");
        else if (FN("humanize")) part.pipe = PIPE_HUMANIZE;
        else if (FN("humanizePercentage")) part.pipe = PIPE_PERCENT;
        else if (FN("humanizeDuration")) part.pipe = PIPE_DURATION;
        else if (FN("printf")) part.pipe = PIPE_PRINTF;
        else {
            char found[64];
            tfound(T, fp, end, found, sizeof found);
            st = terr(T, fp, "a function (humanize, humanizePercentage, humanizeDuration, printf)",
                      "unknown function %s", found);
        }
#undef FN
        if (st == PM_OK && part.k != TP_VALUE)
            st = terr(T, fp, NULL, "'%.*s' applies to $value only", (int)fnl, fn);
        if (st == PM_OK && part.pipe == PIPE_PRINTF) {
            while (i < end && is_ws((unsigned char)s[i])) i++;
            st = parse_printf(T, i, end, &part, &i);
        }
        while (st == PM_OK && i < end && is_ws((unsigned char)s[i])) i++;
        if (st == PM_OK && i < end) st = tunexpected(T, i, end, "'}}'");
    } else if (i < end) {
        st = tunexpected(T, i, end, "'|' or '}}'");
    }
    if (st != PM_OK) {
        pm__free(A, part.s);
        return st;
    }
    return add_part(T, part);
}

pm_status_t pm__atmpl_parse(const char *text, size_t len, pm__srcpos at, pm__atmpl **out,
                            pm_parse_error_t **err)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!text) return PM_EINVAL;
    pm__atmpl *t = pm__calloc(A, sizeof *t);
    if (!t) return PM_ENOMEM;
    tp T = {text, len, at, err, t, 0};
    pm_status_t st = PM_OK;
    size_t lit = 0, i = 0;
    while (st == PM_OK && i < len) {
        if (!(text[i] == '{' && i + 1 < len && text[i + 1] == '{')) {
            i++;
            continue;
        }
        /* The action ends at the first "}}" outside a string. */
        size_t j = i + 2, end = len;
        while (j < len) {
            if (text[j] == '"' || text[j] == '`') {
                j = string_close(text, j, len) + 1;
                continue;
            }
            if (text[j] == '}' && j + 1 < len && text[j + 1] == '}') {
                end = j;
                break;
            }
            j++;
        }
        if (end == len) {
            st = terr(&T, i, "'}}'", "unclosed action: '{{' without '}}'");
            break;
        }
        st = add_lit(&T, lit, i);
        if (st == PM_OK) st = parse_action(&T, i + 2, end);
        i = lit = end + 2;
    }
    if (st == PM_OK) st = add_lit(&T, lit, len);
    if (st != PM_OK) {
        pm__atmpl_free(t);
        return st;
    }
    *out = t;
    return PM_OK;
}

pm_status_t pm__atmpl_copy(const pm__atmpl *t, pm__atmpl **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!t) return PM_EINVAL;
    pm__atmpl *c = pm__calloc(A, sizeof *c);
    if (!c) return PM_ENOMEM;
    if (t->n && !(c->p = pm__calloc(A, t->n * sizeof *c->p))) {
        pm__free(A, c);
        return PM_ENOMEM;
    }
    for (; c->n < t->n; c->n++) {
        tpart *d = &c->p[c->n];
        *d = t->p[c->n];
        if (d->s && !(d->s = dupn(t->p[c->n].s, t->p[c->n].n))) {
            pm__atmpl_free(c);
            return PM_ENOMEM;
        }
    }
    *out = c;
    return PM_OK;
}

/* ------------------------------------------------------------ rendering */

/* snprintf wrote the C locale's decimal point: make it '.'. */
static size_t fix_point(char *buf, size_t n)
{
    const struct lconv *lc = localeconv();
    const char *dp = lc ? lc->decimal_point : NULL;
    if (!dp || !dp[0] || (dp[0] == '.' && !dp[1])) return n;
    size_t dl = strlen(dp);
    char *p = strstr(buf, dp);
    if (!p) return n;
    *p = '.';
    memmove(p + 1, p + dl, n - (size_t)(p - buf) - dl + 1);
    return n - (dl - 1);
}

static const char *nonfinite(double v)
{
    return isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
}

/* Go's %.4g: what Prometheus' humanize functions print. */
static size_t fmt_g4(char *out, size_t cap, double v)
{
    if (!isfinite(v)) return (size_t)snprintf(out, cap, "%s", nonfinite(v));
    int n = snprintf(out, cap, "%.4g", v);
    if (n < 0 || (size_t)n >= cap) return 0;
    return fix_point(out, (size_t)n);
}

static pm_status_t put(pm_buf_t *b, const char *s, size_t n) { return pm_buf_append(b, s, n); }

static pm_status_t put_g4_suffix(pm_buf_t *b, double v, const char *suffix)
{
    char tmp[64];
    size_t n = fmt_g4(tmp, sizeof tmp, v);
    pm_status_t st = put(b, tmp, n);
    return st == PM_OK ? put(b, suffix, strlen(suffix)) : st;
}

static pm_status_t humanize(pm_buf_t *b, double v)
{
    static const char *const big[] = {"k", "M", "G", "T", "P", "E", "Z", "Y"};
    static const char *const small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
    if (v == 0 || !isfinite(v)) return put_g4_suffix(b, v, "");
    const char *prefix = "";
    if (fabs(v) >= 1) {
        for (size_t i = 0; i < 8 && fabs(v) >= 1000; i++) {
            prefix = big[i];
            v /= 1000;
        }
    } else {
        for (size_t i = 0; i < 8 && fabs(v) < 1; i++) {
            prefix = small[i];
            v *= 1000;
        }
    }
    return put_g4_suffix(b, v, prefix);
}

static pm_status_t humanize_duration(pm_buf_t *b, double v)
{
    static const char *const small[] = {"m", "u", "n", "p", "f", "a", "z", "y"};
    if (!isfinite(v)) return put_g4_suffix(b, v, "");
    if (v == 0) return put_g4_suffix(b, v, "s");
    if (fabs(v) < 1) {
        const char *prefix = "";
        for (size_t i = 0; i < 8 && fabs(v) < 1; i++) {
            prefix = small[i];
            v *= 1000;
        }
        char suffix[4];
        snprintf(suffix, sizeof suffix, "%ss", prefix);
        return put_g4_suffix(b, v, suffix);
    }
    const char *sign = v < 0 ? "-" : "";
    double a = fabs(v);
    /* Go's int64(v) saturates in practice; C's cast is undefined past it. */
    int64_t d = a >= 9223372036854775807.0 ? INT64_MAX : (int64_t)a;
    int64_t sec = d % 60, min = (d / 60) % 60, hours = (d / 3600) % 24, days = d / 86400;
    char tmp[128];
    int n;
    if (days) {
        n = snprintf(tmp, sizeof tmp, "%s%lldd %lldh %lldm %llds", sign, (long long)days,
                     (long long)hours, (long long)min, (long long)sec);
    } else if (hours) {
        n = snprintf(tmp, sizeof tmp, "%s%lldh %lldm %llds", sign, (long long)hours,
                     (long long)min, (long long)sec);
    } else if (min) {
        n = snprintf(tmp, sizeof tmp, "%s%lldm %llds", sign, (long long)min, (long long)sec);
    } else {
        pm_status_t st = put(b, sign, strlen(sign));
        return st == PM_OK ? put_g4_suffix(b, a, "s") : st;
    }
    return put(b, tmp, (size_t)n);
}

/* Text of a printf format with "%%" read as "%". */
static pm_status_t put_fmt_text(pm_buf_t *b, const char *s, size_t n)
{
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%' && i + 1 < n && s[i + 1] == '%') {
            pm_status_t st = put(b, s + run, i + 1 - run);
            if (st != PM_OK) return st;
            run = i + 2;
            i++;
        }
    }
    return put(b, s + run, n - run);
}

static pm_status_t render_printf(pm_buf_t *b, const tpart *p, double v)
{
    pm_status_t st = put_fmt_text(b, p->s, p->conv);
    if (st != PM_OK) return st;
    const char *spec = p->spec;
    char out[512];
    int n;
    if (isfinite(v)) {
        /* Checked at parse time: one floating conversion, width and
         * precision below 100, so 512 bytes hold any double. */
        n = snprintf(out, sizeof out, spec, v);
        if (n < 0 || (size_t)n >= sizeof out) return PM_ERANGE;
        n = (int)fix_point(out, (size_t)n);
    } else {
        /* Go prints NaN and infinities as words, padded to the width. */
        int width = 0;
        bool left = false;
        for (const char *q = spec + 1; *q && !strchr("eEfgG.", *q); q++) {
            if (*q == '-') left = true;
            else if (*q >= '1' && *q <= '9') {
                width = atoi(q);
                break;
            }
        }
        n = snprintf(out, sizeof out, left ? "%-*s" : "%*s", width, nonfinite(v));
    }
    st = put(b, out, (size_t)n);
    if (st != PM_OK) return st;
    size_t after = p->conv + p->conv_len;
    return put_fmt_text(b, p->s + after, p->n - after);
}

static pm_status_t render_value(pm_buf_t *b, const tpart *p, double v)
{
    switch (p->pipe) {
    case PIPE_HUMANIZE: return humanize(b, v);
    case PIPE_PERCENT: return put_g4_suffix(b, v * 100, "%");
    case PIPE_DURATION: return humanize_duration(b, v);
    case PIPE_PRINTF: return render_printf(b, p, v);
    default: {
        char tmp[PM__NUM_MAX];
        size_t n = pm__fmt_double(tmp, v);
        return put(b, tmp, n);
    }
    }
}

pm_status_t pm__atmpl_render(const pm__atmpl *t, double value, const char *alertname,
                             const char *severity, const char *const *lname,
                             const char *const *lvalue, size_t nlabels, pm_buf_t *b)
{
    if (!t || !b || (nlabels && (!lname || !lvalue))) return PM_EINVAL;
    size_t start = b->len;
    pm_status_t st = PM_OK;
    for (size_t i = 0; st == PM_OK && i < t->n; i++) {
        const tpart *p = &t->p[i];
        switch (p->k) {
        case TP_LIT: st = put(b, p->s, p->n); break;
        case TP_VALUE: st = render_value(b, p, value); break;
        case TP_ALERTNAME:
            if (alertname) st = put(b, alertname, strlen(alertname));
            break;
        case TP_SEVERITY:
            if (severity) st = put(b, severity, strlen(severity));
            break;
        case TP_LABEL:
            for (size_t k = 0; k < nlabels; k++)
                if (lname[k] && !strcmp(lname[k], p->s)) {
                    if (lvalue[k]) st = put(b, lvalue[k], strlen(lvalue[k]));
                    break;
                }
            break;
        }
    }
    if (st != PM_OK && b->data) {
        b->len = start;
        b->data[start] = '\0';
    }
    return st;
}
