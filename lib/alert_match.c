/* Parse errors and label matchers: shared by the expression parser, the
 * templates and the notifier filters. */
#include "internal/alert_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------ parse errors */

static char *dup_plain(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

pm_status_t pm__perr(pm_parse_error_t **err, unsigned line, unsigned column, size_t offset,
                     const char *expected, const char *fmt, ...)
{
    if (!err || *err) return PM_EPARSE;
    char text[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    char msg[600];
    snprintf(msg, sizeof msg, "line %u, column %u: %s", line, column, text);

    pm_parse_error_t *e = calloc(1, sizeof *e);
    if (!e) return PM_ENOMEM;
    e->line = line;
    e->column = column;
    e->offset = offset;
    e->expected = dup_plain(expected ? expected : "");
    e->message = dup_plain(msg);
    if (!e->expected || !e->message) {
        pm_parse_error_free(e);
        return PM_ENOMEM;
    }
    *err = e;
    return PM_EPARSE;
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

static pm_status_t compile(pm__amatcher *m, pm__srcpos at, pm_parse_error_t **err)
{
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
