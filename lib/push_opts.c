/* Push destination options (include/perfmetrics/push.h) and the accessors
 * the engine and the kinds read them with (lib/internal/push_internal.h).
 * Options are copied into each destination, so a host may reuse or free
 * them as soon as a destination is made. */
#include "internal/push_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A list of owned strings (header or label names and values, prefixes). */
typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist;

struct pm_push_opts {
    char *name;
    double step_s, whole_s;
    unsigned attempts;
    double first_s, cap_s;
    size_t q_payloads, q_bytes;
    strlist hnames, hvalues, lnames, lvalues, prefixes;
    int gzip;
};

static const pm_alloc_t *A = &pm__default_alloc;

static void strlist_free(strlist *l)
{
    for (size_t i = 0; i < l->n; i++) pm__free(A, l->v[i]);
    pm__free(A, l->v);
    memset(l, 0, sizeof *l);
}

static pm_status_t strlist_push(strlist *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 4;
        char **v = pm__alloc(A, cap * sizeof *v);
        if (!v) return PM_ENOMEM;
        if (l->n) memcpy(v, l->v, l->n * sizeof *v);
        pm__free(A, l->v);
        l->v = v;
        l->cap = cap;
    }
    char *c = pm__strdup(A, s);
    if (!c) return PM_ENOMEM;
    l->v[l->n++] = c;
    return PM_OK;
}

static void strlist_pop(strlist *l) { pm__free(A, l->v[--l->n]); }

static pm_status_t strlist_copy(strlist *dst, const strlist *src)
{
    for (size_t i = 0; i < src->n; i++)
        if (strlist_push(dst, src->v[i]) != PM_OK) return PM_ENOMEM;
    return PM_OK;
}

static void defaults(pm_push_opts_t *o)
{
    o->step_s = 2;
    o->whole_s = 10;
    o->attempts = 4;
    o->first_s = 0.5;
    o->cap_s = 30;
    o->q_payloads = 16;
    o->q_bytes = (size_t)64 << 20;
}

pm_status_t pm_push_opts_new(pm_push_opts_t **out)
{
    if (!out) return PM_EINVAL;
    *out = pm__calloc(A, sizeof **out);
    if (!*out) return PM_ENOMEM;
    defaults(*out);
    return PM_OK;
}

void pm_push_opts_free(pm_push_opts_t *o)
{
    if (!o) return;
    pm__free(A, o->name);
    strlist_free(&o->hnames);
    strlist_free(&o->hvalues);
    strlist_free(&o->lnames);
    strlist_free(&o->lvalues);
    strlist_free(&o->prefixes);
    pm__free(A, o);
}

/* Label-value text: UTF-8 within the library's label-value bound. */
static pm_status_t check_value_text(const char *s)
{
    size_t n = strlen(s);
    if (n > PM_MAX_LABEL_VALUE) return PM_EINVAL;
    return pm__valid_utf8(s, n) ? PM_OK : PM_EUTF8;
}

pm_status_t pm_push_opts_set_name(pm_push_opts_t *o, const char *name)
{
    if (!o || !name || !*name) return PM_EINVAL;
    pm_status_t st = check_value_text(name);
    if (st != PM_OK) return st;
    char *c = pm__strdup(A, name);
    if (!c) return PM_ENOMEM;
    pm__free(A, o->name);
    o->name = c;
    return PM_OK;
}

pm_status_t pm_push_opts_set_timeouts(pm_push_opts_t *o, double step_s, double whole_s)
{
    if (!o) return PM_EINVAL;
    if (!(step_s > 0) || !(whole_s >= step_s) || !(whole_s <= 3600)) return PM_ERANGE;
    o->step_s = step_s;
    o->whole_s = whole_s;
    return PM_OK;
}

pm_status_t pm_push_opts_set_retry(pm_push_opts_t *o, unsigned attempts, double first_s,
                                   double cap_s)
{
    if (!o) return PM_EINVAL;
    /* The cap bound keeps every wait a representable timespec. */
    if (attempts == 0 || attempts > 100 || !(first_s > 0) || !(cap_s >= first_s) ||
        !(cap_s <= 86400))
        return PM_ERANGE;
    o->attempts = attempts;
    o->first_s = first_s;
    o->cap_s = cap_s;
    return PM_OK;
}

pm_status_t pm_push_opts_set_queue(pm_push_opts_t *o, size_t payloads, size_t bytes)
{
    if (!o) return PM_EINVAL;
    if (payloads == 0 || bytes == 0) return PM_ERANGE;
    o->q_payloads = payloads;
    o->q_bytes = bytes;
    return PM_OK;
}

static int is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9') return 1;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return 1;
    return c && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Headers the library writes itself: a second copy from the host would make
 * the request ambiguous (two Content-Length) or lie about the body. */
static const char *const reserved_headers[] = {
    "host", "content-type", "content-length", "content-encoding", "connection", "user-agent",
    "transfer-encoding", "te", "trailer", "upgrade", "expect", "keep-alive",
    "x-prometheus-remote-write-version",
};

static int ieq(const char *a, const char *b)
{
    for (; *a && *b; a++, b++) {
        unsigned char x = (unsigned char)*a, y = (unsigned char)*b;
        if (x >= 'A' && x <= 'Z') x = (unsigned char)(x | 0x20);
        if (y >= 'A' && y <= 'Z') y = (unsigned char)(y | 0x20);
        if (x != y) return 0;
    }
    return *a == *b;
}

pm_status_t pm_push_opts_add_header(pm_push_opts_t *o, const char *name, const char *value)
{
    if (!o || !name || !value || !*name) return PM_EINVAL;
    for (const char *p = name; *p; p++)
        if (!is_tchar((unsigned char)*p)) return PM_EINVAL;
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) return PM_EINVAL;
    if (strlen(name) > 256 || strlen(value) > 8192) return PM_EINVAL;
    for (size_t i = 0; i < sizeof reserved_headers / sizeof reserved_headers[0]; i++)
        if (ieq(name, reserved_headers[i])) return PM_EEXIST;
    for (size_t i = 0; i < o->hnames.n; i++)
        if (ieq(name, o->hnames.v[i])) return PM_EEXIST;
    if (strlist_push(&o->hnames, name) != PM_OK) return PM_ENOMEM;
    if (strlist_push(&o->hvalues, value) != PM_OK) {
        strlist_pop(&o->hnames);
        return PM_ENOMEM;
    }
    return PM_OK;
}

pm_status_t pm_push_opts_add_label(pm_push_opts_t *o, const char *name, const char *value)
{
    if (!o || !name || !value) return PM_EINVAL;
    if (!pm__valid_label_name(name)) return PM_EBADLABEL;
    pm_status_t st = check_value_text(value);
    if (st != PM_OK) return st;
    for (size_t i = 0; i < o->lnames.n; i++)
        if (strcmp(name, o->lnames.v[i]) == 0) return PM_EEXIST;
    if (strlist_push(&o->lnames, name) != PM_OK) return PM_ENOMEM;
    if (strlist_push(&o->lvalues, value) != PM_OK) {
        strlist_pop(&o->lnames);
        return PM_ENOMEM;
    }
    return PM_OK;
}

pm_status_t pm_push_opts_add_prefix(pm_push_opts_t *o, const char *prefix)
{
    if (!o || !prefix) return PM_EINVAL;
    return strlist_push(&o->prefixes, prefix);
}

pm_status_t pm_push_opts_set_gzip(pm_push_opts_t *o, int enabled)
{
    if (!o) return PM_EINVAL;
#if !PM_HAVE_ZLIB
    if (enabled) return PM_EUNSUPPORTED;
#endif
    o->gzip = enabled != 0;
    return PM_OK;
}

/* ------------------------------------------------------------ internal */

pm_status_t pm__push_opts_copy(const pm_push_opts_t *src, pm_push_opts_t **out)
{
    pm_push_opts_t *o;
    pm_status_t st = pm_push_opts_new(&o);
    if (st != PM_OK) return st;
    if (src) {
        o->step_s = src->step_s;
        o->whole_s = src->whole_s;
        o->attempts = src->attempts;
        o->first_s = src->first_s;
        o->cap_s = src->cap_s;
        o->q_payloads = src->q_payloads;
        o->q_bytes = src->q_bytes;
        o->gzip = src->gzip;
        if ((src->name && !(o->name = pm__strdup(A, src->name))) ||
            strlist_copy(&o->hnames, &src->hnames) != PM_OK ||
            strlist_copy(&o->hvalues, &src->hvalues) != PM_OK ||
            strlist_copy(&o->lnames, &src->lnames) != PM_OK ||
            strlist_copy(&o->lvalues, &src->lvalues) != PM_OK ||
            strlist_copy(&o->prefixes, &src->prefixes) != PM_OK) {
            pm_push_opts_free(o);
            return PM_ENOMEM;
        }
    }
    *out = o;
    return PM_OK;
}

const char *pm__push_opts_name(const pm_push_opts_t *o, const char *kind)
{
    return o && o->name ? o->name : kind;
}

size_t pm__push_opts_nlabels(const pm_push_opts_t *o) { return o ? o->lnames.n : 0; }

const char *pm__push_opts_label_name(const pm_push_opts_t *o, size_t i)
{
    return o && i < o->lnames.n ? o->lnames.v[i] : NULL;
}

const char *pm__push_opts_label_value(const pm_push_opts_t *o, size_t i)
{
    return o && i < o->lvalues.n ? o->lvalues.v[i] : NULL;
}

bool pm__push_opts_wants(const pm_push_opts_t *o, const char *name)
{
    if (!o || o->prefixes.n == 0) return true;
    for (size_t i = 0; i < o->prefixes.n; i++)
        if (strncmp(name, o->prefixes.v[i], strlen(o->prefixes.v[i])) == 0) return true;
    return false;
}

bool pm__push_opts_gzip(const pm_push_opts_t *o) { return o && o->gzip; }

void pm__push_opts_timeouts(const pm_push_opts_t *o, double *step_s, double *whole_s)
{
    *step_s = o->step_s;
    *whole_s = o->whole_s;
}

void pm__push_opts_retry(const pm_push_opts_t *o, unsigned *attempts, double *first_s,
                         double *cap_s)
{
    *attempts = o->attempts;
    *first_s = o->first_s;
    *cap_s = o->cap_s;
}

void pm__push_opts_queue(const pm_push_opts_t *o, size_t *payloads, size_t *bytes)
{
    *payloads = o->q_payloads;
    *bytes = o->q_bytes;
}

size_t pm__push_opts_nheaders(const pm_push_opts_t *o) { return o ? o->hnames.n : 0; }

const char *pm__push_opts_header_name(const pm_push_opts_t *o, size_t i)
{
    return o && i < o->hnames.n ? o->hnames.v[i] : NULL;
}

const char *pm__push_opts_header_value(const pm_push_opts_t *o, size_t i)
{
    return o && i < o->hvalues.n ? o->hvalues.v[i] : NULL;
}
