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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* pm_buf: `data` is NULL until the first growth (pm_buf_new does not
 * allocate); otherwise data[len] == '\0' and len < cap. */
struct pm_buf {
    char *data;
    size_t len;
    size_t cap;
    bool mapped; /* data is a mapping of its own (lib/buf.c), not malloc's */
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

/* The integer part of the last timestamp-like number written, with its
 * digits: consecutive _created values mostly share it (see format.c). */
typedef struct pm__numcache {
    uint64_t ip; /* UINT64_MAX: empty */
    int ni;
    char text[16];
} pm__numcache_t;

typedef struct pm__writer {
    char *p;    /* next byte to write */
    char *end;  /* end of the writable window */
    char *base; /* start of the window: the stage (heap, stream mode), or the buffer's data */
    pm_status_t status;
    pm_buf_t *buf; /* buffer mode: the target, and its length at entry */
    size_t buf_start;
    pm_write_fn fn; /* stream mode: the callback and its argument */
    void *user;
    pm__numcache_t num;
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

/* ---- per-family and per-series texts, rendered once and copied ----
 *
 * A series' labels appear on many lines (OpenMetrics: _total and _created;
 * histograms: every bucket, _sum, _count, _created), and a family's name on
 * every line. Both are rendered once into padded scratch texts owned by the
 * formatter (grown, never shrunk, so nothing is allocated per sample) and
 * copied in 16-byte blocks: a line costs one room check and a few vector
 * moves, not one memcpy call and one escape scan per piece. */

/* A text followed by at least PM__PAD readable bytes, so it can be copied
 * in 16-byte blocks past its end. */
#define PM__PAD 16u
typedef struct pm__pad {
    char *p;
    size_t len, cap;
} pm__pad_t;

pm_status_t pm__pad_set(pm__pad_t *d, const char *s, size_t n);
void pm__pad_free(pm__pad_t *d);

/* Copies n bytes in 16-byte blocks: src must be readable, and dst
 * writable, up to PM__PAD - 1 bytes past n. */
static inline void pm__copy16(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i += 16) memcpy(dst + i, src + i, 16);
}

/* A padded text through the writer (fast copy when the window has room). */
static inline void pm__w_pad(pm__writer_t *w, const pm__pad_t *t)
{
    if ((size_t)(w->end - w->p) >= t->len + PM__PAD) {
        pm__copy16(w->p, t->p, t->len);
        w->p += t->len;
        return;
    }
    pm__w_bytes(w, t->p, t->len);
}

/* The label-name heads of one family, rendered once. Text formats: head i
 * is `{name="` for i == 0 and `",name="` after; JSON: `{"name":"` and
 * `","name":"` (names JSON-escaped). */
typedef struct pm__labelset {
    pm__pad_t text;
    size_t *off; /* head i is text.p[off[i] .. off[i + 1]) */
    size_t off_cap;
    size_t n;
    int json;
} pm__labelset_t;

pm_status_t pm__labelset_prepare(pm__labelset_t *ls, const pm_snap_family_t *f, int json);
void pm__labelset_free(pm__labelset_t *ls);

/* The fields of one series that every format reads, fetched once. */
typedef struct pm__snap_row {
    const pm_snap_series_t *s;
    double value;   /* counters and gauges */
    double created; /* NaN when unknown */
    int overflow;
    int exemplars; /* the series holds at least one exemplar */
} pm__snap_row_t;

/* Renders the label block of a series into blk. Text formats: `{a="x",b="y"`
 * without its closing quote (the le label may follow), `{pm_overflow="true`
 * for the overflow series (it stands for many label tuples), empty without
 * labels. JSON: the series object's start up to its creation time,
 * `\n{"labels":{"a":"x"},"overflow":false,"created":`, the labels `{}` for
 * the overflow series (no meaningful values: "overflow" says why) or none.
 * Errors: PM_ENOMEM. */
pm_status_t pm__block_render(pm__pad_t *blk, const pm__labelset_t *ls, const pm__snap_row_t *row);

/* Walks a family's series, rendering each one's label block one series
 * ahead: a block copied right after it was written would be loaded while
 * its stores are still in flight (the load spans several smaller stores and
 * waits for them to retire), which cost more than the rest of the line.
 *
 *   pm__walk_t wk;
 *   pm__walk_start(&wk, f, ls, blks);
 *   while (pm__walk_next(&wk)) { ... wk.row, wk.blk ... }
 *   if (wk.st != PM_OK) ...   (PM_ENOMEM from a block) */
typedef struct pm__walk {
    const pm_snap_family_t *f;
    const pm__labelset_t *ls;
    pm__pad_t *pads; /* two, owned by the caller */
    size_t next;     /* index of the series after the ready one */
    int ready;       /* pads[slot] holds the next series' block */
    int slot;
    pm_status_t st;
    pm__snap_row_t rows[2];
    const pm__snap_row_t *row; /* the current series */
    const pm__pad_t *blk;      /* its label block */
    size_t index;              /* its position in the family */
} pm__walk_t;

void pm__walk_start(pm__walk_t *wk, const pm_snap_family_t *f, const pm__labelset_t *ls,
                    pm__pad_t pads[2]);
int pm__walk_next(pm__walk_t *wk);

/* A sample-name suffix, padded for block copies. */
typedef struct pm__suffix {
    char text[PM__PAD];
    size_t len;
} pm__suffix_t;

extern const pm__suffix_t pm__sfx_none, pm__sfx_total, pm__sfx_created, pm__sfx_bucket, pm__sfx_sum,
    pm__sfx_count;

/* A number's text in a fixed array (copied whole): le label values. */
typedef struct pm__bound_text {
    char text[PM__NUM_MAX];
    size_t len;
} pm__bound_text_t;

extern const pm__bound_text_t pm__le_inf; /* "+Inf" */

/* Texts of one histogram family's bounds (without +Inf): OpenMetrics'
 * canonical le values ("1.0", "0.005") for the text formats, JSON numbers
 * (pm__w_json_number's text) for JSON. */
typedef struct pm__bounds {
    pm__bound_text_t *item;
    size_t cap;
    size_t n;
} pm__bounds_t;

pm_status_t pm__bounds_prepare(pm__bounds_t *b, const pm_snap_family_t *f, int json);
void pm__bounds_free(pm__bounds_t *b);

/* Writes `<name><suffix><block>` and its end: `"} ` (or ` ` without
 * labels), or with le, `",le="<le>"} ` (or `{le="<le>"} `). Shared by both
 * text formats. name is padded. */
void pm__w_head_slow(pm__writer_t *w, const pm__pad_t *name, const pm__suffix_t *sfx,
                     const pm__pad_t *blk, const pm__bound_text_t *le);

/* Room the unchecked head needs: every block copy may run PM__PAD - 1
 * bytes over; le adds at most 6 + PM__NUM_MAX + 3. */
static inline size_t pm__head_room(const pm__pad_t *name, const pm__pad_t *blk)
{
    return name->len + blk->len + 3 * PM__PAD + PM__NUM_MAX + 16;
}

/* The head at p, unchecked (pm__head_room bytes must be writable). */
static inline char *pm__head_put(char *p, const pm__pad_t *name, const pm__suffix_t *sfx,
                                 const pm__pad_t *blk, const pm__bound_text_t *le)
{
    pm__copy16(p, name->p, name->len);
    p += name->len;
    memcpy(p, sfx->text, PM__PAD);
    p += sfx->len;
    pm__copy16(p, blk->p, blk->len);
    p += blk->len;
    if (le) {
        if (blk->len) {
            memcpy(p, "\",le=\"", 6);
            p += 6;
        } else {
            memcpy(p, "{le=\"", 5);
            p += 5;
        }
        memcpy(p, le->text, PM__NUM_MAX);
        p += le->len;
        memcpy(p, "\"} ", 3);
        p += 3;
    } else if (blk->len) {
        memcpy(p, "\"} ", 3);
        p += 3;
    } else {
        *p++ = ' ';
    }
    return p;
}

static inline void pm__w_head(pm__writer_t *w, const pm__pad_t *name, const pm__suffix_t *sfx,
                              const pm__pad_t *blk, const pm__bound_text_t *le)
{
    if ((size_t)(w->end - w->p) < pm__head_room(name, blk)) {
        pm__w_head_slow(w, name, sfx, blk, le);
        return;
    }
    w->p = pm__head_put(w->p, name, sfx, blk, le);
}

/* pm__fmt_double with the writer's integer-part cache (format.c). */
size_t pm__fmt_double_c(char *out, double v, pm__numcache_t *cache);

/* A whole sample line, `<head><v>\n`, with one room check. */
static inline void pm__w_sample(pm__writer_t *w, const pm__pad_t *name, const pm__suffix_t *sfx,
                                const pm__pad_t *blk, const pm__bound_text_t *le, double v)
{
    if ((size_t)(w->end - w->p) < pm__head_room(name, blk) + PM__NUM_MAX + 1) {
        pm__w_head_slow(w, name, sfx, blk, le);
        pm__w_double(w, v);
        pm__w_char(w, '\n');
        return;
    }
    char *p = pm__head_put(w->p, name, sfx, blk, le);
    p += pm__fmt_double_c(p, v, &w->num);
    *p++ = '\n';
    w->p = p;
}

/* pm__w_sample for an integer value (bucket counts, _count). */
static inline void pm__w_sample_u64(pm__writer_t *w, const pm__pad_t *name, const pm__suffix_t *sfx,
                                    const pm__pad_t *blk, const pm__bound_text_t *le, uint64_t v)
{
    if ((size_t)(w->end - w->p) < pm__head_room(name, blk) + 21) {
        pm__w_head_slow(w, name, sfx, blk, le);
        pm__w_u64(w, v);
        pm__w_char(w, '\n');
        return;
    }
    char *p = pm__head_put(w->p, name, sfx, blk, le);
    p += pm__fmt_u64(p, v);
    *p++ = '\n';
    w->p = p;
}

/* Writes the cumulative `<name>_bucket{...,le="..."} n` lines of series s,
 * +Inf last (its value is count, so the two always agree). Both text formats;
 * with `exemplars` (OpenMetrics) each line carries its bucket's exemplar. */
void pm__w_buckets(pm__writer_t *w, const pm__pad_t *name, const pm__pad_t *blk,
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
/* 1 if series s holds any exemplar (defined in snapshot.c). */
int pm__snap_series_has_exemplars(const pm_snap_series_t *s);
/* Writes `# <keyword> <name><suffix> ` (the start of a metadata line). */
void pm__w_meta_head(pm__writer_t *w, const char *keyword, const pm__pad_t *name,
                     const pm__suffix_t *sfx);

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
