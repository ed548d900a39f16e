/* The contract between the push engine and the destination kinds
 * (include/perfmetrics/push.h).
 *
 * The engine (lib/push.c, lib/push_opts.c, lib/http_client.c) owns options,
 * the destination object, its sender thread and bounded queue, retries,
 * statistics, self-metrics, attaching to a registry / tracer / engine and
 * freeing. A kind (lib/push_pushgateway.c, lib/push_alertmanager.c,
 * lib/push_remote_write.c, lib/push_otlp.c, lib/push_statsd.c) turns what
 * it is given (a snapshot, a span batch, alert events) into request bodies
 * and queues them; it never touches a socket of an HTTP destination. Pure
 * encoders (lib/snappy.c, the remote-write protobuf writer, the OTLP metrics
 * JSON writer) are separate functions with tests of their own. */
#ifndef PM_PUSH_INTERNAL_H
#define PM_PUSH_INTERNAL_H

#include "pm_internal.h"

#include <perfmetrics/export.h>
#include <perfmetrics/push.h>

/* ------------------------------------------------------------ options */

/* The destination's name: the one set, else `kind`. Never NULL. */
const char *pm__push_opts_name(const pm_push_opts_t *o, const char *kind);
/* Labels added with pm_push_opts_add_label, in the order added. */
size_t pm__push_opts_nlabels(const pm_push_opts_t *o);
const char *pm__push_opts_label_name(const pm_push_opts_t *o, size_t i);
const char *pm__push_opts_label_value(const pm_push_opts_t *o, size_t i);
/* Whether the family named `name` passes the prefix filter. */
bool pm__push_opts_wants(const pm_push_opts_t *o, const char *name);
bool pm__push_opts_gzip(const pm_push_opts_t *o);

/* The engine's own reads of the options (lib/push.c). */
pm_status_t pm__push_opts_copy(const pm_push_opts_t *src, pm_push_opts_t **out); /* src NULL: defaults */
void pm__push_opts_timeouts(const pm_push_opts_t *o, double *step_s, double *whole_s);
void pm__push_opts_retry(const pm_push_opts_t *o, unsigned *attempts, double *first_s,
                         double *cap_s);
void pm__push_opts_queue(const pm_push_opts_t *o, size_t *payloads, size_t *bytes);
size_t pm__push_opts_nheaders(const pm_push_opts_t *o);
const char *pm__push_opts_header_name(const pm_push_opts_t *o, size_t i);
const char *pm__push_opts_header_value(const pm_push_opts_t *o, size_t i);

/* ------------------------------------------------------------ destinations */

typedef struct pm_push pm_push;

/* Releases a kind's state when its destination is freed (after the engine
 * has stopped calling the kind). */
typedef void (*pm__push_fini_fn)(void *state);

/* An HTTP destination for `url` (http:// only; host resolved now) with a copy
 * of `o` (NULL: defaults) and the kind's `state`, owned from here on (fini
 * runs on every path, failures included). Its sender thread runs until
 * pm_push_free. Errors: PM_EINVAL (URL), PM_EIO (resolution), PM_ETHREAD,
 * PM_ENOMEM. */
pm_status_t pm__push_http_new(const char *kind, const char *url, const pm_push_opts_t *o,
                              void *state, pm__push_fini_fn fini, pm_push **out);
/* A destination with no sender thread (StatsD sends from its exporter):
 * statistics, self-metrics, attaching and freeing only. */
pm_status_t pm__push_local_new(const char *kind, const pm_push_opts_t *o, void *state,
                               pm__push_fini_fn fini, pm_push **out);

void *pm__push_state(const pm_push *p);
const pm_push_opts_t *pm__push_opts(const pm_push *p);
/* The path of the destination's URL ("/" when it had none). */
const char *pm__push_url_path(const pm_push *p);

/* Queues one request and never blocks: `method` and the header strings are
 * static; path NULL means the URL's path; body (may be NULL) is taken on
 * every path; extra_headers holds whole "Name: value\r\n" lines or is NULL.
 * A full queue drops its oldest payloads (counted). Errors: PM_ENOMEM (the
 * payload is dropped and counted). */
pm_status_t pm__push_enqueue(pm_push *p, const char *method, const char *path, pm_buf_t *body,
                             const char *content_type, const char *content_encoding,
                             const char *extra_headers);

/* As pm__push_enqueue for a body that is a JSON array (no encoding, no
 * extra headers): while the last queued payload is one such for the same
 * method and path that the sender has not taken yet, body's elements are
 * appended to it (up to 1 MiB and the byte bound) instead of queueing a new
 * payload, so a burst of events becomes one request. A joined body is not
 * a new payload in the statistics. */
pm_status_t pm__push_enqueue_json_array(pm_push *p, const char *method, const char *path,
                                        pm_buf_t *body, const char *content_type);

/* Statistics kept by kinds that send themselves. */
void pm__push_count(pm_push *p, pm_push_stat_t which, uint64_t n);

/* Registers p's exporter on r (named after p), calling fn(snapshot, p).
 * Errors: as pm_exporter_add. */
pm_status_t pm__push_attach_exporter(pm_push *p, pm_registry *r,
                                     pm_status_t (*fn)(const pm_snapshot_t *s, pm_push *p));
/* Registers p's span exporter on t. Errors: as pm_tracer_add_exporter. */
pm_status_t pm__push_attach_tracer(pm_push *p, pm_tracer_t *t,
                                   pm_status_t (*fn)(const pm_span_batch_t *b, pm_push *p));

/* Calls fn(p) on p's sender thread every interval_s seconds (> 0), first
 * interval_s after the call, until pm_push_free: periodic work of a kind
 * (the Alertmanager resend), which may enqueue. Set once, before the
 * destination is attached. HTTP destinations only. */
void pm__push_set_periodic(pm_push *p, double interval_s, void (*fn)(pm_push *p));
/* fn(p) runs first in pm_push_free, before the queue drains: for kinds that
 * attach themselves (the Alertmanager notifier) to detach. */
void pm__push_set_detach(pm_push *p, void (*fn)(pm_push *p));

/* The kind given to pm__push_http_new / local_new ("pushgateway", ...). */
const char *pm__push_kind(const pm_push *p);

/* Formats the families of s that pass o's prefix filter (pm_format's
 * formats), appending to out. Errors: as pm_format. */
pm_status_t pm__push_format_filtered(const pm_snapshot_t *s, const pm_push_opts_t *o,
                                     pm_format_t fmt, pm_buf_t *out);

/* Frees a destination that was never attached (a failed _new). */
void pm__push_discard(pm_push *p);

#endif
