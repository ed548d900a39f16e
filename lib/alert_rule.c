/* Rule definitions: what pm_alert_rule_* builds and an engine copies. */
#include "internal/alert_internal.h"

#include <math.h>
#include <stdlib.h>

static const pm_alloc_t *A = &pm__default_alloc;

static char *dupn(const char *s, size_t n)
{
    char *d = pm__alloc(A, n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

bool pm__acmp_parse(const char *s, size_t len, pm__abinop *op)
{
    static const struct {
        const char *t;
        pm__abinop op;
    } ops[] = {{">=", PM__OP_GE}, {"<=", PM__OP_LE}, {"==", PM__OP_EQ},
               {"!=", PM__OP_NE}, {">", PM__OP_GT},  {"<", PM__OP_LT}};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        if (strlen(ops[i].t) == len && !memcmp(ops[i].t, s, len)) {
            *op = ops[i].op;
            return true;
        }
    return false;
}

void pm_alert_rule_free(pm_alert_rule_t *r)
{
    if (!r) return;
    pm__free(A, r->name);
    pm__free(A, r->expr_text);
    pm__anode_free(r->expr);
    pm__free(A, r->resolve_text);
    pm__anode_free(r->resolve);
    for (size_t i = 0; i < r->nlabels; i++) {
        pm__free(A, r->labels[i].name);
        pm__free(A, r->labels[i].value);
    }
    pm__free(A, r->labels);
    for (size_t i = 0; i < r->nannots; i++) {
        pm__free(A, r->annots[i].name);
        pm__free(A, r->annots[i].text);
        pm__atmpl_free(r->annots[i].tmpl);
    }
    pm__free(A, r->annots);
    pm__free(A, r);
}

pm_status_t pm__arule_new_at(const char *name, const char *expr, size_t expr_len, pm__srcpos at,
                             pm_alert_rule_t **out, pm_parse_error_t **err)
{
    if (err) *err = NULL;
    if (!out) return PM_EINVAL;
    *out = NULL;
    if (!name || !expr) return PM_EINVAL;
    if (!pm__valid_metric_name(name)) return PM_EBADNAME;
    pm_alert_rule_t *r = pm__calloc(A, sizeof *r);
    if (!r) return PM_ENOMEM;
    r->severity = PM_SEVERITY_WARNING;
    r->enabled = true;
    r->nodata = PM_NODATA_OK;
    r->warn = r->crit = NAN;
    r->name = pm__strdup(A, name);
    r->expr_text = dupn(expr, expr_len);
    pm_status_t st = (r->name && r->expr_text) ? PM_OK : PM_ENOMEM;
    if (st == PM_OK) st = pm__aexpr_parse(expr, expr_len, at, &r->expr, err);
    if (st != PM_OK) {
        pm_alert_rule_free(r);
        return st;
    }
    *out = r;
    return PM_OK;
}

pm_status_t pm_alert_rule_new(const char *name, const char *expr, pm_alert_rule_t **out,
                              pm_parse_error_t **err)
{
    return pm__arule_new_at(name, expr, expr ? strlen(expr) : 0, PM__SRCPOS_START, out, err);
}

static pm_status_t to_ns(double seconds, int64_t *out)
{
    if (!isfinite(seconds) || seconds < 0) return PM_ERANGE;
    if (seconds > 9.0e9) return PM_ERANGE; /* ~285 years: keeps ns in int64 */
    *out = (int64_t)llround(seconds * 1e9);
    return PM_OK;
}

pm_status_t pm_alert_rule_set_for(pm_alert_rule_t *r, double seconds)
{
    return r ? to_ns(seconds, &r->for_ns) : PM_EINVAL;
}

pm_status_t pm_alert_rule_set_keep_firing_for(pm_alert_rule_t *r, double seconds)
{
    return r ? to_ns(seconds, &r->keep_ns) : PM_EINVAL;
}

pm_status_t pm_alert_rule_set_repeat_interval(pm_alert_rule_t *r, double seconds)
{
    return r ? to_ns(seconds, &r->repeat_ns) : PM_EINVAL;
}

pm_status_t pm_alert_rule_set_severity(pm_alert_rule_t *r, pm_severity_t s)
{
    if (!r || s < PM_SEVERITY_INFO || s > PM_SEVERITY_CRITICAL) return PM_EINVAL;
    r->severity = s;
    return PM_OK;
}

pm_status_t pm_alert_rule_set_thresholds(pm_alert_rule_t *r, const char *op, double warning,
                                         double critical)
{
    pm__abinop cmp;
    if (!r || !op || !pm__acmp_parse(op, strlen(op), &cmp)) return PM_EINVAL;
    if (isnan(warning) && isnan(critical)) return PM_EINVAL;
    if (isinf(warning) || isinf(critical)) return PM_ERANGE;
    /* The thresholds compare the expression's value: a comparison or set
     * operation at the top would leave nothing sensible to compare. */
    if (r->expr->kind == PM__AN_BIN &&
        (PM__OP_IS_CMP(r->expr->u.bin.op) || PM__OP_IS_SET(r->expr->u.bin.op)) &&
        !r->expr->u.bin.bool_mod)
        return PM_EINVAL;
    r->thresholds = true;
    r->th_op = cmp;
    r->warn = warning;
    r->crit = critical;
    return PM_OK;
}

static const char *skip_blanks(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t')) p++;
    return p;
}

/* "< 0.8": a comparison operator, blanks, one number, blanks. */
static pm_status_t parse_short(pm_alert_rule_t *r, const char *cond, size_t len, pm__srcpos at,
                               pm_parse_error_t **err)
{
    const char *end = cond + len, *p = skip_blanks(cond, end);
    size_t oplen = (p + 1 < end && p[1] == '=') ? 2 : 1;
    pm__abinop op;
    if (!pm__acmp_parse(p, oplen, &op)) {
        size_t k = (size_t)(p - cond);
        return pm__perr(err, at.line, at.column + (unsigned)k, at.offset + k,
                        "a comparison operator", "expected a comparison operator");
    }
    const char *q = skip_blanks(p + oplen, end);
    size_t n = 0;
    while (q + n < end && q[n] != ' ' && q[n] != '\t') n++;
    /* One number (read as the grammar reads numbers, whatever the locale)
     * and nothing after it. */
    double v = NAN;
    bool number = n && pm__aparse_number(q, n, &v);
    const char *rest = skip_blanks(q + n, end);
    if (!number || rest != end) {
        size_t k = (size_t)((number ? rest : q) - cond);
        return pm__perr(err, at.line, at.column + (unsigned)k, at.offset + k, "a number",
                        "expected a number after the comparison");
    }
    r->resolve_short = true;
    r->resolve_op = op;
    r->resolve_val = v;
    return PM_OK;
}

pm_status_t pm__arule_set_resolve_at(pm_alert_rule_t *r, const char *cond, size_t len,
                                     pm__srcpos at, pm_parse_error_t **err)
{
    if (err) *err = NULL;
    if (!r) return PM_EINVAL;
    if (!cond) { /* remove */
        pm__free(A, r->resolve_text);
        pm__anode_free(r->resolve);
        r->resolve_text = NULL;
        r->resolve = NULL;
        r->resolve_short = false;
        return PM_OK;
    }
    char *text = dupn(cond, len);
    if (!text) return PM_ENOMEM;
    pm_alert_rule_t tmp = *r;
    tmp.resolve = NULL;
    tmp.resolve_short = false;
    const char *p = skip_blanks(cond, cond + len);
    pm_status_t st;
    if (p < cond + len && (*p == '<' || *p == '>' || *p == '=' || *p == '!'))
        st = parse_short(&tmp, cond, len, at, err);
    else
        st = pm__aexpr_parse(cond, len, at, &tmp.resolve, err);
    if (st != PM_OK) {
        pm__free(A, text);
        return st;
    }
    pm__free(A, r->resolve_text);
    pm__anode_free(r->resolve);
    r->resolve_text = text;
    r->resolve = tmp.resolve;
    r->resolve_short = tmp.resolve_short;
    r->resolve_op = tmp.resolve_op;
    r->resolve_val = tmp.resolve_val;
    return PM_OK;
}

pm_status_t pm_alert_rule_set_resolve(pm_alert_rule_t *r, const char *cond, pm_parse_error_t **err)
{
    return pm__arule_set_resolve_at(r, cond, cond ? strlen(cond) : 0, PM__SRCPOS_START, err);
}

/* A copy of the sorted array `arr` of n entries of `size` bytes with a free
 * slot at i (the entries from i on move up one); the old array is freed.
 * NULL when out of memory (the old array stays). */
static void *insert_slot(void *arr, size_t n, size_t size, size_t i)
{
    unsigned char *grown = pm__alloc(A, (n + 1) * size);
    if (!grown) return NULL;
    if (i) memcpy(grown, arr, i * size);
    if (n > i) memcpy(grown + (i + 1) * size, (unsigned char *)arr + i * size, (n - i) * size);
    pm__free(A, arr);
    return grown;
}

static bool reserved_label(const char *name)
{
    return !strcmp(name, "alertname") || !strcmp(name, "severity") ||
           !strcmp(name, "alertstate") || !strcmp(name, "alertstate_reason");
}

pm_status_t pm_alert_rule_set_label(pm_alert_rule_t *r, const char *name, const char *value)
{
    if (!r || !name || !value) return PM_EINVAL;
    if (!pm__valid_label_name(name) || reserved_label(name)) return PM_EBADLABEL;
    size_t vlen = strlen(value);
    if (vlen > PM_MAX_LABEL_VALUE) return PM_ERANGE;
    if (!pm__valid_utf8(value, vlen)) return PM_EUTF8;
    char *v = pm__strdup(A, value);
    if (!v) return PM_ENOMEM;
    bool found;
    size_t i = pm__sorted_find(r->labels, r->nlabels, sizeof *r->labels, name, &found);
    if (found) {
        pm__free(A, r->labels[i].value);
        r->labels[i].value = v;
        return PM_OK;
    }
    char *n = pm__strdup(A, name);
    pm__alabel *grown = n ? insert_slot(r->labels, r->nlabels, sizeof *grown, i) : NULL;
    if (!grown) {
        pm__free(A, n);
        pm__free(A, v);
        return PM_ENOMEM;
    }
    grown[i] = (pm__alabel){n, v};
    r->labels = grown;
    r->nlabels++;
    return PM_OK;
}

pm_status_t pm__arule_set_annotation_at(pm_alert_rule_t *r, const char *name, const char *tmpl,
                                        size_t len, pm__srcpos at, pm_parse_error_t **err)
{
    if (err) *err = NULL;
    if (!r || !name || !tmpl) return PM_EINVAL;
    if (!pm__valid_label_name(name)) return PM_EBADLABEL;
    if (!pm__valid_utf8(tmpl, len)) return PM_EUTF8;
    pm__atmpl *t = NULL;
    pm_status_t st = pm__atmpl_parse(tmpl, len, at, &t, err);
    if (st != PM_OK) return st;
    char *text = dupn(tmpl, len);
    if (!text) {
        pm__atmpl_free(t);
        return PM_ENOMEM;
    }
    bool found;
    size_t i = pm__sorted_find(r->annots, r->nannots, sizeof *r->annots, name, &found);
    if (found) {
        pm__free(A, r->annots[i].text);
        pm__atmpl_free(r->annots[i].tmpl);
        r->annots[i].text = text;
        r->annots[i].tmpl = t;
        return PM_OK;
    }
    char *n = pm__strdup(A, name);
    pm__aannot *grown = n ? insert_slot(r->annots, r->nannots, sizeof *grown, i) : NULL;
    if (!grown) {
        pm__free(A, n);
        pm__free(A, text);
        pm__atmpl_free(t);
        return PM_ENOMEM;
    }
    grown[i] = (pm__aannot){n, text, t};
    r->annots = grown;
    r->nannots++;
    return PM_OK;
}

pm_status_t pm_alert_rule_set_annotation(pm_alert_rule_t *r, const char *name, const char *tmpl,
                                         pm_parse_error_t **err)
{
    return pm__arule_set_annotation_at(r, name, tmpl, tmpl ? strlen(tmpl) : 0, PM__SRCPOS_START,
                                       err);
}

pm_status_t pm_alert_rule_set_enabled(pm_alert_rule_t *r, int enabled)
{
    if (!r) return PM_EINVAL;
    r->enabled = enabled != 0;
    return PM_OK;
}

pm_status_t pm_alert_rule_set_nodata(pm_alert_rule_t *r, pm_nodata_t policy)
{
    if (!r || policy < PM_NODATA_OK || policy > PM_NODATA_ALERTING) return PM_EINVAL;
    r->nodata = policy;
    return PM_OK;
}

pm_status_t pm__arule_copy(const pm_alert_rule_t *r, pm_alert_rule_t **out)
{
    if (!r || !out) return PM_EINVAL;
    *out = NULL;
    pm_alert_rule_t *c = pm__calloc(A, sizeof *c);
    if (!c) return PM_ENOMEM;
    *c = *r;
    c->name = c->expr_text = c->resolve_text = NULL;
    c->expr = c->resolve = NULL;
    c->labels = NULL;
    c->annots = NULL;
    c->nlabels = c->nannots = 0;
    pm_status_t st = PM_ENOMEM;
    if (!(c->name = pm__strdup(A, r->name))) goto fail;
    if (!(c->expr_text = pm__strdup(A, r->expr_text))) goto fail;
    if ((st = pm__anode_copy(r->expr, &c->expr)) != PM_OK) goto fail;
    st = PM_ENOMEM;
    if (r->resolve_text && !(c->resolve_text = pm__strdup(A, r->resolve_text))) goto fail;
    if (r->resolve && (st = pm__anode_copy(r->resolve, &c->resolve)) != PM_OK) goto fail;
    st = PM_ENOMEM;
    if (r->nlabels) {
        if (!(c->labels = pm__calloc(A, r->nlabels * sizeof *c->labels))) goto fail;
        for (; c->nlabels < r->nlabels; c->nlabels++) {
            pm__alabel *d = &c->labels[c->nlabels];
            d->name = pm__strdup(A, r->labels[c->nlabels].name);
            d->value = pm__strdup(A, r->labels[c->nlabels].value);
            if (!d->name || !d->value) {
                c->nlabels++;
                goto fail;
            }
        }
    }
    if (r->nannots) {
        if (!(c->annots = pm__calloc(A, r->nannots * sizeof *c->annots))) goto fail;
        for (; c->nannots < r->nannots; c->nannots++) {
            pm__aannot *d = &c->annots[c->nannots];
            const pm__aannot *s = &r->annots[c->nannots];
            d->name = pm__strdup(A, s->name);
            d->text = pm__strdup(A, s->text);
            st = (d->name && d->text) ? pm__atmpl_copy(s->tmpl, &d->tmpl) : PM_ENOMEM;
            if (st != PM_OK) {
                c->nannots++;
                goto fail;
            }
        }
    }
    *out = c;
    return PM_OK;
fail:
    pm_alert_rule_free(c);
    return st == PM_OK ? PM_ENOMEM : st;
}
