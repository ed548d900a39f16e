/* The history store's record format (lib/history_format.c), shared by the
 * writer (lib/history.c) and the reader (lib/history_read.c). */
#ifndef PM_HISTORY_INTERNAL_H
#define PM_HISTORY_INTERNAL_H

#include "snapshot_internal.h"

#include <perfmetrics/format.h>
#include <perfmetrics/history.h>

#define PM_HISTORY_MAGIC "PMHIST01"    /* first 8 bytes of a segment */
#define PM_HISTORY_MAGIC_LEN 8
#define PM_HISTORY_SYNC 0x52484D50u    /* "PMHR", little-endian: starts a frame */
#define PM_HISTORY_FRAME 12            /* sync, length, CRC-32C */
#define PM_HISTORY_MAX_BODY (64u << 20) /* a larger length is not a frame */
#define PM_HISTORY_KIND_SNAPSHOT 1
#define PM_HISTORY_KIND_SPANS 2

uint32_t pm__crc32c(const void *data, size_t n);
/* Appends snapshot s's body to b: the families for which wants(name, ctx)
 * holds (wants NULL: all). On error b may hold part of a body. */
pm_status_t pm__history_encode(const pm_snapshot_t *s, bool (*wants)(const char *, const void *),
                               const void *ctx, pm_buf_t *b);
/* Whether a frame that holds starts at p (sync word, a length that fits
 * before end, the body's CRC); its body length in *len. */
bool pm__history_frame_ok(const unsigned char *p, const unsigned char *end, uint32_t *len);
/* The frame header of a body. */
void pm__history_frame(unsigned char hdr[PM_HISTORY_FRAME], const void *body, size_t len);
/* A body's kind (its first byte; 0 for an empty body) and time (Unix
 * seconds; NaN when it does not parse). */
unsigned pm__history_kind(const void *body, size_t len);
double pm__history_time(const void *body, size_t len);
/* Span records: a batch's body, and a body back into a batch that
 * pm__history_spans_free releases. Errors: PM_EPARSE, PM_ENOMEM. */
pm_status_t pm__history_encode_spans(const pm_span_batch_t *batch, pm_buf_t *b);
pm_status_t pm__history_decode_spans(const void *body, size_t len, pm_span_batch_t **out);
void pm__history_spans_free(pm_span_batch_t *b);
/* Appends a span batch as a span record (the tracer's exporter; test
 * fixtures with spans of chosen times). */
pm_status_t pm__history_append_spans(pm_history_t *h, const pm_span_batch_t *b);
/* Decodes a body into the empty snapshot s. Errors: PM_EPARSE, PM_ENOMEM. */
pm_status_t pm__history_decode(const void *body, size_t len, pm_snapshot_t *s);

/* Segment file names: hist-<20 digits>.pmh. Returns the sequence number, or
 * 0 when `name` is not a segment's. */
uint64_t pm__history_segment_seq(const char *name);
/* Segments of dir, oldest first (malloc'd array of malloc'd names);
 * Errors: PM_EIO, PM_ENOMEM. */
pm_status_t pm__history_list(const char *dir, char ***names, size_t *n);
void pm__history_list_free(char **names, size_t n);

#endif
