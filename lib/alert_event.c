/* Alert events (immutable, reference-counted) and event lists.
 *
 * An event is one allocation: the struct, then the four pointer arrays
 * (label names, label values, annotation names, annotation values), then
 * every string. So copying an event into a list, a queue or the history is a
 * reference, and freeing it is one call whatever its size.
 *
 * Accessors are NULL-safe: for a NULL event, 0 / NaN, "" for the rule name,
 * NULL for names and values (also for an index out of range, and for a label
 * or annotation that is absent). */
#include "internal/alert_internal.h"

#include <math.h>
#include <stdalign.h>

/* ------------------------------------------------------------ building */

/* a += b, false on overflow. */
static bool add_size(size_t *a, size_t b)
{
    if (b > SIZE_MAX - *a) return false;
    *a += b;
    return true;
}

/* Adds the bytes of n strings (NUL included) to *total; false on a NULL
 * string or overflow. */
static bool strings_size(const char *const *s, size_t n, size_t *total)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !add_size(total, strlen(s[i]) + 1)) return false;
    return true;
}

/* Names strictly increasing: the look-ups binary-search them. */
static bool sorted_unique(const char *const *names, size_t n)
{
    for (size_t i = 1; i < n; i++)
        if (strcmp(names[i - 1], names[i]) >= 0) return false;
    return true;
}

static char *copy_str(char **cursor, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = *cursor;
    memcpy(d, s, n);
    *cursor += n;
    return d;
}

pm_status_t pm__aevent_new(const pm_alloc_t *a, const pm__aevent_init *in, pm_alert_event_t **out)
{
    if (out) *out = NULL;
    if (!in || !out || !in->rule) return PM_EINVAL;
    if (in->nlabels && (!in->lname || !in->lvalue)) return PM_EINVAL;
    if (in->nannots && (!in->aname || !in->avalue)) return PM_EINVAL;
    if (!a) a = &pm__default_alloc;

    /* Sizes: struct, 2 x nlabels + 2 x nannots pointers, then the strings. */
    size_t nptr = 0, strbytes = 0, total = sizeof(pm_alert_event_t);
    bool ok = add_size(&nptr, in->nlabels) && add_size(&nptr, in->nlabels) &&
              add_size(&nptr, in->nannots) && add_size(&nptr, in->nannots) &&
              nptr <= SIZE_MAX / sizeof(char *) && add_size(&total, nptr * sizeof(char *)) &&
              strings_size(&in->rule, 1, &strbytes) &&
              strings_size(in->lname, in->nlabels, &strbytes) &&
              strings_size(in->lvalue, in->nlabels, &strbytes) &&
              strings_size(in->aname, in->nannots, &strbytes) &&
              strings_size(in->avalue, in->nannots, &strbytes) && add_size(&total, strbytes);
    if (!ok) return PM_EINVAL; /* a NULL string (a real overflow cannot be allocated anyway) */
    if (!sorted_unique(in->lname, in->nlabels) || !sorted_unique(in->aname, in->nannots))
        return PM_EINVAL;

    _Static_assert(sizeof(pm_alert_event_t) % alignof(char *) == 0, "arrays follow the struct");
    pm_alert_event_t *ev = pm__alloc(a, total);
    if (!ev) return PM_ENOMEM;
    memset(ev, 0, sizeof *ev);
    atomic_init(&ev->refs, 1u);
    ev->a = *a;
    ev->state = in->state;
    ev->prev = in->prev;
    ev->severity = in->severity;
    ev->value = in->value;
    ev->at = in->at;
    ev->active_at = in->active_at;
    ev->starts_at = in->starts_at;
    ev->ends_at = in->ends_at;
    ev->nlabels = in->nlabels;
    ev->nannots = in->nannots;

    const char **ptrs = (const char **)(void *)(ev + 1);
    ev->lname = ptrs;
    ev->lvalue = ptrs + in->nlabels;
    ev->aname = ptrs + 2 * in->nlabels;
    ev->avalue = ptrs + 2 * in->nlabels + in->nannots;
    char *cur = (char *)(void *)(ptrs + nptr);
    ev->rule = copy_str(&cur, in->rule);
    for (size_t i = 0; i < in->nlabels; i++) {
        ev->lname[i] = copy_str(&cur, in->lname[i]);
        ev->lvalue[i] = copy_str(&cur, in->lvalue[i]);
    }
    for (size_t i = 0; i < in->nannots; i++) {
        ev->aname[i] = copy_str(&cur, in->aname[i]);
        ev->avalue[i] = copy_str(&cur, in->avalue[i]);
    }
    if (in->nlabels == 0) ev->lname = ev->lvalue = NULL;
    if (in->nannots == 0) ev->aname = ev->avalue = NULL;
    ev->fingerprint = pm__alabels_hash(ev->lname, ev->lvalue, ev->nlabels);
    *out = ev;
    return PM_OK;
}

pm_alert_event_t *pm__aevent_ref(pm_alert_event_t *ev)
{
    if (ev) atomic_fetch_add_explicit(&ev->refs, 1u, memory_order_relaxed);
    return ev;
}

void pm__aevent_unref(pm_alert_event_t *ev)
{
    if (!ev) return;
    /* acq_rel: the freeing thread sees every write made before other
     * threads dropped their references (the usual refcount pattern). */
    if (atomic_fetch_sub_explicit(&ev->refs, 1u, memory_order_acq_rel) != 1u) return;
    pm_alloc_t a = ev->a;
    pm__free(&a, ev);
}

/* ------------------------------------------------------------ accessors */

static double ns_to_seconds(int64_t ns)
{
    if (ns == INT64_MIN) return NAN;
    /* Whole seconds and the remainder apart: one division of the full count
     * by 1e9 would round twice for present-day times. */
    return (double)(ns / PM__NS_PER_S) + (double)(ns % PM__NS_PER_S) / 1e9;
}

const char *pm_alert_event_rule(const pm_alert_event_t *ev) { return ev ? ev->rule : ""; }
pm_alert_state_t pm_alert_event_state(const pm_alert_event_t *ev)
{
    return ev ? ev->state : PM_ALERT_INACTIVE;
}
pm_alert_state_t pm_alert_event_prev_state(const pm_alert_event_t *ev)
{
    return ev ? ev->prev : PM_ALERT_INACTIVE;
}
pm_severity_t pm_alert_event_severity(const pm_alert_event_t *ev)
{
    return ev ? ev->severity : (pm_severity_t)0;
}
double pm_alert_event_value(const pm_alert_event_t *ev) { return ev ? ev->value : NAN; }
double pm_alert_event_time(const pm_alert_event_t *ev) { return ev ? ns_to_seconds(ev->at) : NAN; }
double pm_alert_event_active_at(const pm_alert_event_t *ev)
{
    return ev ? ns_to_seconds(ev->active_at) : NAN;
}
double pm_alert_event_starts_at(const pm_alert_event_t *ev)
{
    return ev ? ns_to_seconds(ev->starts_at) : NAN;
}
double pm_alert_event_ends_at(const pm_alert_event_t *ev)
{
    return ev ? ns_to_seconds(ev->ends_at) : NAN;
}
uint64_t pm_alert_event_fingerprint(const pm_alert_event_t *ev) { return ev ? ev->fingerprint : 0; }

size_t pm_alert_event_label_count(const pm_alert_event_t *ev) { return ev ? ev->nlabels : 0; }
const char *pm_alert_event_label_name(const pm_alert_event_t *ev, size_t i)
{
    return ev && i < ev->nlabels ? ev->lname[i] : NULL;
}
const char *pm_alert_event_label_value(const pm_alert_event_t *ev, size_t i)
{
    return ev && i < ev->nlabels ? ev->lvalue[i] : NULL;
}

const char *pm_alert_event_label(const pm_alert_event_t *ev, const char *name)
{
    if (!ev || !name) return NULL;
    bool found;
    size_t i = pm__sorted_find(ev->lname, ev->nlabels, sizeof *ev->lname, name, &found);
    return found ? ev->lvalue[i] : NULL;
}

size_t pm_alert_event_annotation_count(const pm_alert_event_t *ev) { return ev ? ev->nannots : 0; }
const char *pm_alert_event_annotation_name(const pm_alert_event_t *ev, size_t i)
{
    return ev && i < ev->nannots ? ev->aname[i] : NULL;
}
const char *pm_alert_event_annotation_value(const pm_alert_event_t *ev, size_t i)
{
    return ev && i < ev->nannots ? ev->avalue[i] : NULL;
}
const char *pm_alert_event_annotation(const pm_alert_event_t *ev, const char *name)
{
    if (!ev || !name) return NULL;
    bool found;
    size_t i = pm__sorted_find(ev->aname, ev->nannots, sizeof *ev->aname, name, &found);
    return found ? ev->avalue[i] : NULL;
}

/* ------------------------------------------------------------ lists */

pm_status_t pm__alist_new(const pm_alloc_t *a, pm_alert_event_t *const *ev, size_t n,
                          pm_alert_list_t **out)
{
    if (out) *out = NULL;
    if (!out || (n && !ev)) return PM_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!ev[i]) return PM_EINVAL;
    if (!a) a = &pm__default_alloc;
    if (n > (SIZE_MAX - sizeof(pm_alert_list_t)) / sizeof(pm_alert_event_t *)) return PM_ENOMEM;
    /* The array follows the header in the same block. */
    _Static_assert(sizeof(pm_alert_list_t) % alignof(pm_alert_event_t *) == 0, "array alignment");
    pm_alert_list_t *l = pm__alloc(a, sizeof *l + n * sizeof(pm_alert_event_t *));
    if (!l) return PM_ENOMEM;
    l->a = *a;
    l->n = n;
    l->ev = n ? (pm_alert_event_t **)(void *)(l + 1) : NULL;
    for (size_t i = 0; i < n; i++) l->ev[i] = pm__aevent_ref(ev[i]);
    *out = l;
    return PM_OK;
}

size_t pm_alert_list_count(const pm_alert_list_t *l) { return l ? l->n : 0; }

const pm_alert_event_t *pm_alert_list_get(const pm_alert_list_t *l, size_t i)
{
    return l && i < l->n ? l->ev[i] : NULL;
}

void pm_alert_list_free(pm_alert_list_t *l)
{
    if (!l) return;
    for (size_t i = 0; i < l->n; i++) pm__aevent_unref(l->ev[i]);
    pm_alloc_t a = l->a;
    pm__free(&a, l);
}

/* ------------------------------------------------------------ names */

const char *pm_severity_name(pm_severity_t s)
{
    switch (s) {
    case PM_SEVERITY_INFO: return "info";
    case PM_SEVERITY_WARNING: return "warning";
    case PM_SEVERITY_CRITICAL: return "critical";
    }
    return "unknown";
}

const char *pm_alert_state_name(pm_alert_state_t s)
{
    switch (s) {
    case PM_ALERT_INACTIVE: return "inactive";
    case PM_ALERT_PENDING: return "pending";
    case PM_ALERT_FIRING: return "firing";
    case PM_ALERT_RESOLVED: return "resolved";
    }
    return "unknown";
}
