/* Private to the formatters (lib/buf.c, lib/format*.c): the growable buffer's
 * layout, the output writer every format writes through, and the shared
 * number / escaping / label helpers. Never installed.
 *
 * The writer exists so that one formatter body serves both pm_format (append
 * to a pm_buf) and pm_format_write (stream to a callback): formatters write
 * into a window [p, end) with memcpy and only take a slow path when the window
 * is full. Errors latch: after the first failure every write goes to a small
 * scratch area and is discarded, so formatters need not check a status after
 * each write; they check pm__w_failed() at family and series boundaries. */
#ifndef PM_FORMAT_INTERNAL_H
#define PM_FORMAT_INTERNAL_H

#include <perfmetrics/format.h>
#include <perfmetrics/snapshot.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* pm_buf: `data` is NULL until the first growth (pm_buf_new does not
 * allocate); otherwise data[len] == '\0' and len < cap. */
struct pm_buf {
    char *data;
    size_t len;
    size_t cap;
};

/* Grows b so that `extra` bytes plus the terminating NUL fit after the first
 * `used` bytes. `used` may exceed b->len: the writer fills the buffer past
 * len and commits the length only at the end. Doubles the capacity to keep
 * appends amortised O(1); sizes are overflow-checked and kept below
 * PTRDIFF_MAX. On failure b is unchanged. Errors: PM_ENOMEM. */
pm_status_t pm__buf_reserve(pm_buf_t *b, size_t used, size_t extra);

/* pm_buf_gzip at a zlib level (-1 = zlib's default, 0..9). The server uses
 * level 1: on exposition text it is ~6x faster than the default for output
 * of the same size (label names and values repeat within a few lines). */
pm_status_t pm__buf_gzip_level(const pm_buf_t *src, pm_buf_t *dst, int level);

/* Streaming chunk size, a documented bound of pm_format_write. */
#define PM__STAGE_SIZE 16384u
/* Longest text of one formatted number, NUL included ("-1.2345678901234567e-308"). */
#define PM__NUM_MAX 32u
/* Largest `n` pm__w_reserve accepts (bounded by the scratch area). */
#define PM__W_SCRATCH 128u

typedef struct pm__writer {
    char *p;    /* next byte to write */
    char *end;  /* end of the writable window */
    char *base; /* start of the window: the stage (heap, stream mode), or the buffer's data */
    pm_status_t status;
    pm_buf_t *buf; /* buffer mode: the target, and its length at entry */
    size_t buf_start;
    pm_write_fn fn; /* stream mode: the callback and its argument */
    void *user;
    char scratch[PM__W_SCRATCH]; /* write sink once status is an error */
} pm__writer_t;

/* Buffer mode: output is appended to b in place and committed by
 * pm__writer_finish; on error b keeps its old length. Errors: PM_ENOMEM. */
pm_status_t pm__writer_init_buf(pm__writer_t *w, pm_buf_t *b);
/* Stream mode: output is staged (16 KiB, heap) and passed to fn in chunks of
 * at most PM__STAGE_SIZE, all but the last nearly full. Errors: PM_ENOMEM. */
pm_status_t pm__writer_init_stream(pm__writer_t *w, pm_write_fn fn, void *user);
/* Flushes / commits, releases the stage, returns the latched status. */
pm_status_t pm__writer_finish(pm__writer_t *w);

/* Slow paths (format.c). */
void pm__w_make_room(pm__writer_t *w, size_t n);
void pm__w_bytes_slow(pm__writer_t *w, const char *s, size_t n);

static inline int pm__w_failed(const pm__writer_t *w) { return w->status != PM_OK; }

static inline void pm__w_bytes(pm__writer_t *w, const char *s, size_t n)
{
    if ((size_t)(w->end - w->p) >= n) {
        memcpy(w->p, s, n);
        w->p += n;
        return;
    }
    pm__w_bytes_slow(w, s, n);
}

static inline void pm__w_str(pm__writer_t *w, const char *s) { pm__w_bytes(w, s, strlen(s)); }

/* String literals only: the length is known at compile time. */
#define PM__W_LIT(w, lit) pm__w_bytes((w), (lit), sizeof(lit) - 1)
/* Writes `"key":` for a JSON key given as a literal needing no escaping. */
#define PM__W_KEY(w, lit) PM__W_LIT((w), "\"" lit "\":")

static inline void pm__w_char(pm__writer_t *w, char c)
{
    if (w->p == w->end) pm__w_make_room(w, 1);
    *w->p++ = c;
}

/* Returns a pointer to n (<= PM__W_SCRATCH) contiguous writable bytes;
 * the caller advances w->p by what it used. */
static inline char *pm__w_reserve(pm__writer_t *w, size_t n)
{
    if ((size_t)(w->end - w->p) < n) pm__w_make_room(w, n);
    return w->p;
}

/* ---- numbers (format.c) ---- */

/* Decimal digits of v into out (>= 21 bytes, no NUL); returns the length. */
size_t pm__fmt_u64(char *out, uint64_t v);
/* A signed integer in decimal (INT64_MIN included); no NUL. */
size_t pm__fmt_i64(char *out, int64_t v);
/* Text of v into out (PM__NUM_MAX bytes, NUL-terminated) that reads back as
 * exactly v: integers with |v| < 2^63 as plain digits, anything else as the
 * first of %.15g, %.16g, %.17g that reads back (computed with fewer printf
 * calls). Non-finite values are spelled "+Inf", "-Inf", "NaN" (Prometheus and
 * OpenMetrics). Independent of the C locale's decimal point. Returns the length. */
size_t pm__fmt_double(char *out, double v);
/* OpenMetrics canonical form for le/quantile label values: Go's %g of the
 * shortest representation, ".0" appended when there is no '.' or exponent
 * ("1.0", "0.005", "1e+06", "+Inf"). Returns the length. */
size_t pm__fmt_canonical(char *out, double v);

void pm__w_u64(pm__writer_t *w, uint64_t v);
void pm__w_i64(pm__writer_t *w, int64_t v);
void pm__w_double(pm__writer_t *w, double v);
/* A JSON number: pm__w_double's text, or null for NaN and the infinities. */
void pm__w_json_number(pm__writer_t *w, double v);

/* ---- escaping (format.c) ---- */

/* Label value or OpenMetrics HELP: \ -> \\, " -> \", LF -> \n. */
void pm__w_escaped_label(pm__writer_t *w, const char *s);
/* Prometheus 0.0.4 HELP: \ -> \\, LF -> \n (a quote is left as is: the
 * Prometheus parser rejects \" in HELP). */
void pm__w_escaped_help(pm__writer_t *w, const char *s);
/* A JSON string, quotes included (RFC 8259; control characters as escapes,
 * UTF-8 passed through). */
void pm__w_json_string(pm__writer_t *w, const char *s);

/* ---- per-family label rendering shared by the two text formats ---- */

/* The label-name heads of one family, rendered once: head i is `{name="`
 * for i == 0 and `",name="` after, so a series line is a run of memcpys. */
typedef struct pm__labelset {
    char *text;
    size_t text_cap;
    size_t *off; /* head i is text[off[i] .. off[i + 1]) */
    size_t off_cap;
    size_t n;
} pm__labelset_t;

/* Canonical le texts of one histogram family's bounds (without +Inf). */
typedef struct pm__bound_text {
    char text[PM__NUM_MAX];
    size_t len;
} pm__bound_text_t;

typedef struct pm__bounds {
    pm__bound_text_t *item;
    size_t cap;
    size_t n;
} pm__bounds_t;

pm_status_t pm__labelset_prepare(pm__labelset_t *ls, const pm_snap_family_t *f);
void pm__labelset_free(pm__labelset_t *ls);
pm_status_t pm__bounds_prepare(pm__bounds_t *b, const pm_snap_family_t *f);
void pm__bounds_free(pm__bounds_t *b);

/* Writes `<name><suffix>{labels} ` for series s: the family's labels (or
 * pm_overflow="true" for the overflow series), then le="<le>" when le is not
 * NULL; no braces when there is no label at all. Shared by both text formats. */
void pm__w_sample_head(pm__writer_t *w, const char *name, size_t name_len, const char *suffix,
                       size_t suffix_len, const pm__labelset_t *ls, const pm_snap_series_t *s,
                       const char *le, size_t le_len);
/* Writes the cumulative `<name>_bucket{...,le="..."} n` lines of series s,
 * +Inf last (its value is count, so the two always agree). Both text formats;
 * with `exemplars` (OpenMetrics) each line carries its bucket's exemplar. */
void pm__w_buckets(pm__writer_t *w, const char *name, size_t name_len, const pm__labelset_t *ls,
                   const pm_snap_series_t *s, const pm__bounds_t *bd, uint64_t count,
                   int exemplars);
/* OpenMetrics: writes ` # {trace_id="<32 hex>",span_id="<16 hex>"} <value> <time>`
 * when series s has an exemplar for `bucket` (see pm_snap_series_exemplar);
 * nothing otherwise. */
void pm__w_exemplar(pm__writer_t *w, const pm_snap_series_t *s, size_t bucket);
/* The lower-case hex ids of an exemplar's context, NUL-terminated. */
typedef struct pm__exemplar_ids {
    char trace_id[33];
    char span_id[17];
} pm__exemplar_ids_t;
/* Fills ids from the exemplar of s for `bucket`; returns PM_ENOENT (or
 * another error of pm_snap_series_exemplar) when there is none. */
pm_status_t pm__exemplar_get(const pm_snap_series_t *s, size_t bucket, pm__exemplar_ids_t *ids,
                             double *value, double *unix_seconds);
/* 1 if series s holds any exemplar (defined in snapshot.c): the formatters
 * skip the per-bucket look-ups for the many series that have none. */
int pm__snap_series_has_exemplars(const pm_snap_series_t *s);
/* Writes `# <keyword> <name><suffix> ` (the start of a metadata line). */
void pm__w_meta_head(pm__writer_t *w, const char *keyword, const char *name, size_t name_len,
                     const char *suffix, size_t suffix_len);

/* A string literal as (pointer, length) arguments. */
#define PM__LIT_ARG(lit) (lit), (sizeof(lit) - 1)

/* ---- the formats ---- */
pm_status_t pm__format_prometheus(const pm_snapshot_t *s, pm__writer_t *w);
pm_status_t pm__format_openmetrics(const pm_snapshot_t *s, pm__writer_t *w);
pm_status_t pm__format_json(const pm_snapshot_t *s, pm__writer_t *w);
/* The JSON document with only the families keep() accepts (by name). */
pm_status_t pm__format_json_filtered(const pm_snapshot_t *s, pm__writer_t *w,
                                     int (*keep)(const char *family, void *user), void *user);

#endif
