/* Read-only views of ended spans (pm_span_batch_*, pm_span_data_*), for
 * exporters and the span formats. A batch holds pointers to pm_span_rec; a
 * pm_span_data_t handle is one of those records (struct pm_span_data wraps a
 * pm_span_rec as its only member, so the two pointers convert both ways).
 *
 * Every accessor is NULL-safe and index-checked: 0, NULL or "" for a NULL
 * handle or an index out of range, and never NULL for a string of a valid
 * span ("" when unset), except the event attribute key, which is NULL when
 * the event has no attribute. A typed attribute getter called on an attribute
 * of another type returns 0 / "" (no conversion). */
#include "internal/span_internal.h"

/* The record behind a handle (a pointer to a structure converts to a pointer
 * to its first member, C11 6.7.2.1p15). */
static const pm_span_rec *pm__rec(const pm_span_data_t *s)
{
    return (const pm_span_rec *)(const void *)s;
}

static const pm_span_attr *pm__attr(const pm_span_data_t *s, size_t i)
{
    const pm_span_rec *r = pm__rec(s);
    if (!r || !r->attrs || i >= r->nattrs) return NULL;
    return &r->attrs[i];
}

static const pm_span_event *pm__event(const pm_span_data_t *s, size_t i)
{
    const pm_span_rec *r = pm__rec(s);
    if (!r || !r->events || i >= r->nevents) return NULL;
    return &r->events[i];
}

static const char *pm__str(const char *s) { return s ? s : ""; }

/* ------------------------------------------------------------------ batch */

size_t pm_span_batch_count(const pm_span_batch_t *b) { return b && b->spans ? b->n : 0; }

const pm_span_data_t *pm_span_batch_span(const pm_span_batch_t *b, size_t i)
{
    if (!b || !b->spans || i >= b->n) return NULL;
    return (const pm_span_data_t *)(const void *)b->spans[i];
}

const char *pm_span_batch_service(const pm_span_batch_t *b) { return b ? pm__str(b->service) : ""; }

/* ------------------------------------------------------------------- span */

const char *pm_span_data_name(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? r->name : "";
}

pm_span_kind_t pm_span_data_kind(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? (pm_span_kind_t)r->base.kind : (pm_span_kind_t)0;
}

const pm_trace_context_t *pm_span_data_context(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? &r->base.ctx : NULL;
}

const uint8_t *pm_span_data_parent_id(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? r->base.parent_id : NULL;
}

int pm_span_data_parent_remote(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r && r->base.parent_remote ? 1 : 0;
}

uint64_t pm_span_data_start_ns(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? r->start_ns : 0;
}

uint64_t pm_span_data_end_ns(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? r->end_ns : 0;
}

pm_span_status_t pm_span_data_status(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? (pm_span_status_t)r->status : PM_SPAN_STATUS_UNSET;
}

const char *pm_span_data_status_message(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? pm__str(r->status_msg) : "";
}

uint32_t pm_span_data_dropped_attrs(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? r->dropped_attrs : 0;
}

uint32_t pm_span_data_dropped_events(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r ? r->dropped_events : 0;
}

/* ------------------------------------------------------------- attributes */

size_t pm_span_data_attr_count(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r && r->attrs ? r->nattrs : 0;
}

const char *pm_span_data_attr_key(const pm_span_data_t *s, size_t i)
{
    const pm_span_attr *a = pm__attr(s, i);
    return a ? pm__str(a->key) : "";
}

pm_attr_type_t pm_span_data_attr_type(const pm_span_data_t *s, size_t i)
{
    const pm_span_attr *a = pm__attr(s, i);
    return a ? a->type : (pm_attr_type_t)0;
}

const char *pm_span_data_attr_string(const pm_span_data_t *s, size_t i)
{
    const pm_span_attr *a = pm__attr(s, i);
    return a && a->type == PM_ATTR_STRING ? pm__str(a->v.s) : "";
}

int64_t pm_span_data_attr_int(const pm_span_data_t *s, size_t i)
{
    const pm_span_attr *a = pm__attr(s, i);
    return a && a->type == PM_ATTR_INT ? a->v.i : 0;
}

double pm_span_data_attr_double(const pm_span_data_t *s, size_t i)
{
    const pm_span_attr *a = pm__attr(s, i);
    return a && a->type == PM_ATTR_DOUBLE ? a->v.d : 0.0;
}

int pm_span_data_attr_bool(const pm_span_data_t *s, size_t i)
{
    const pm_span_attr *a = pm__attr(s, i);
    return a && a->type == PM_ATTR_BOOL && a->v.b ? 1 : 0;
}

/* ----------------------------------------------------------------- events */

size_t pm_span_data_event_count(const pm_span_data_t *s)
{
    const pm_span_rec *r = pm__rec(s);
    return r && r->events ? r->nevents : 0;
}

const char *pm_span_data_event_name(const pm_span_data_t *s, size_t i)
{
    const pm_span_event *e = pm__event(s, i);
    return e ? pm__str(e->name) : "";
}

uint64_t pm_span_data_event_time_ns(const pm_span_data_t *s, size_t i)
{
    const pm_span_event *e = pm__event(s, i);
    return e ? e->time_ns : 0;
}

const char *pm_span_data_event_attr_key(const pm_span_data_t *s, size_t i)
{
    const pm_span_event *e = pm__event(s, i);
    return e ? e->key : NULL;
}

const char *pm_span_data_event_attr_value(const pm_span_data_t *s, size_t i)
{
    /* "" when there is no attribute: only the key says whether there is one. */
    const pm_span_event *e = pm__event(s, i);
    return e && e->key ? pm__str(e->value) : "";
}
