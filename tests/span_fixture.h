/* A fixed, hand-made batch of ended spans, shared by tests/test_span_format.c
 * and tests/dump_spans.c (whose output tests/validate_spans.py checks; keep
 * EXPECTED there in step with sf_fixture_build). The records are filled the
 * way lib/span.c fills them, with strings pointing at literals.
 *
 * The batch: a server root span with one attribute of each type and two
 * events; its client child in error, with hostile strings everywhere (quotes,
 * backslashes, newlines, control characters, UTF-8), non-finite and extreme
 * numbers and dropped counts; a consumer span whose parent is remote; and a
 * span with nothing set but its ids. */
#ifndef PM_TEST_SPAN_FIXTURE_H
#define PM_TEST_SPAN_FIXTURE_H

#include "internal/span_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define SF_SPANS 4
#define SF_T0 UINT64_C(1700000000000000000)

/* Hostile strings (mirrored in validate_spans.py). */
#define SF_QUOTES "say \"hi\""
#define SF_BACKSLASH "C:\\dir\\"
#define SF_NEWLINES "multi\nline\r\n"
#define SF_CONTROL "ctl\x01\x1f\x7f\b\f\t end"
#define SF_UTF8 "\xc3\xa9\xe2\x9c\x93 \xc3\xbc\xc3\xb1\xc3\xad \xf0\x9f\x98\x80"
#define SF_FAKE_ESCAPE "\\n is not a newline, \\u0041 not an A"

typedef struct sf_fixture {
    pm_span_rec rec[SF_SPANS];
    const pm_span_rec *ptr[SF_SPANS];
    pm_span_attr many_attrs[16]; /* a record whose attributes outgrew the inline array */
    pm_span_batch_t batch;
} sf_fixture;

/* Bytes base, base+1, ... */
static inline void sf_fill_id(uint8_t *id, size_t n, uint8_t base)
{
    for (size_t i = 0; i < n; i++) id[i] = (uint8_t)(base + i);
}

/* A record with ids, name, kind and times; no attributes, events or status. */
static inline void sf_rec_init(pm_span_rec *r, uint8_t trace_base, uint8_t span_base,
                               const char *name, pm_span_kind_t kind, uint64_t start, uint64_t end)
{
    memset(r, 0, sizeof *r);
    sf_fill_id(r->base.ctx.trace_id, 16, trace_base);
    sf_fill_id(r->base.ctx.span_id, 8, span_base);
    r->base.ctx.flags = PM_TRACE_FLAG_SAMPLED;
    r->base.kind = (uint8_t)kind;
    r->base.sampled = 1;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->start_ns = start;
    r->end_ns = end;
    r->attrs = r->attrs_inline;
    r->events = r->events_inline;
    r->capattrs = PM_SPAN_INLINE_ATTRS;
    r->capevents = PM_SPAN_INLINE_EVENTS;
}

static inline void sf_attr_string(pm_span_rec *r, const char *key, const char *v)
{
    pm_span_attr *a = &r->attrs[r->nattrs++];
    a->key = key;
    a->type = PM_ATTR_STRING;
    a->v.s = v;
}

static inline void sf_attr_int(pm_span_rec *r, const char *key, int64_t v)
{
    pm_span_attr *a = &r->attrs[r->nattrs++];
    a->key = key;
    a->type = PM_ATTR_INT;
    a->v.i = v;
}

static inline void sf_attr_double(pm_span_rec *r, const char *key, double v)
{
    pm_span_attr *a = &r->attrs[r->nattrs++];
    a->key = key;
    a->type = PM_ATTR_DOUBLE;
    a->v.d = v;
}

static inline void sf_attr_bool(pm_span_rec *r, const char *key, int v)
{
    pm_span_attr *a = &r->attrs[r->nattrs++];
    a->key = key;
    a->type = PM_ATTR_BOOL;
    a->v.b = v;
}

static inline void sf_event(pm_span_rec *r, const char *name, uint64_t t, const char *key,
                            const char *value)
{
    pm_span_event *e = &r->events[r->nevents++];
    e->name = name;
    e->time_ns = t;
    e->key = key;
    e->value = value;
}

static inline void sf_batch(sf_fixture *f, size_t n, const char *service)
{
    for (size_t i = 0; i < n; i++) f->ptr[i] = &f->rec[i];
    f->batch.spans = f->ptr;
    f->batch.n = n;
    f->batch.service = service;
}

static inline void sf_fixture_build(sf_fixture *f)
{
    memset(f, 0, sizeof *f);
    pm_span_rec *root = &f->rec[0], *child = &f->rec[1], *consumer = &f->rec[2];
    pm_span_rec *bare = &f->rec[3];

    /* trace 0102..10, span a0a1..a7 */
    sf_rec_init(root, 0x01, 0xa0, "GET /items", PM_SPAN_SERVER, SF_T0, SF_T0 + 250000000);
    root->status = PM_SPAN_STATUS_OK;
    sf_attr_string(root, "http.method", "GET");
    sf_attr_int(root, "http.status_code", 200);
    sf_attr_double(root, "ratio", 0.25);
    sf_attr_bool(root, "cached", 1);
    sf_attr_double(root, "whole", 2.0);
    sf_event(root, "cache miss", SF_T0 + 1000, "key", "items:42");
    sf_event(root, "done", SF_T0 + 249000000, NULL, NULL);

    /* same trace, span b0b1..b7, child of the root */
    sf_rec_init(child, 0x01, 0xb0, "db " SF_QUOTES, PM_SPAN_CLIENT, SF_T0 + 10000000,
                SF_T0 + 200000000);
    memcpy(child->base.parent_id, root->base.ctx.span_id, 8);
    child->attrs = f->many_attrs; /* 13 attributes: as if grown past the inline 8 */
    child->capattrs = 16;
    child->status = PM_SPAN_STATUS_ERROR;
    child->status_msg = "timeout: " SF_NEWLINES SF_CONTROL;
    sf_attr_string(child, "quotes", SF_QUOTES);
    sf_attr_string(child, "backslash", SF_BACKSLASH);
    sf_attr_string(child, "k\"\\\n\x01", SF_UTF8);
    sf_attr_string(child, "fake", SF_FAKE_ESCAPE);
    sf_attr_int(child, "min", INT64_MIN);
    sf_attr_int(child, "max", INT64_MAX);
    sf_attr_double(child, "nan", NAN);
    sf_attr_double(child, "inf", INFINITY);
    sf_attr_double(child, "-inf", -INFINITY);
    sf_attr_double(child, "tiny", 5e-324);
    sf_attr_double(child, "big", 1e300);
    sf_attr_double(child, "neg", -1.5);
    sf_attr_bool(child, "no", 0);
    child->dropped_attrs = 3;
    child->dropped_events = 1;
    sf_event(child, SF_CONTROL, SF_T0 + 20000000, SF_BACKSLASH, SF_NEWLINES);
    sf_event(child, SF_UTF8, SF_T0 + 30000000, "", "");

    /* another trace (f0f1..ff), span c0c1..c7, parent 1112..18 in another process */
    sf_rec_init(consumer, 0xf0, 0xc0, SF_UTF8, PM_SPAN_CONSUMER, SF_T0 + 300000000,
                SF_T0 + 300000000);
    sf_fill_id(consumer->base.parent_id, 8, 0x11);
    consumer->base.parent_remote = 1;
    sf_attr_string(consumer, "messaging.system", "kafka");

    /* trace d0.., span e0..: nothing else set (empty name, no status message) */
    sf_rec_init(bare, 0xd0, 0xe0, "", PM_SPAN_INTERNAL, SF_T0, SF_T0 + 1);
    bare->base.ctx.flags = 0;

    sf_batch(f, SF_SPANS, "svc " SF_QUOTES);
}

#endif
