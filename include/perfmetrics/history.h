/* libperfmetrics — history: a bounded, crash-safe local store of snapshots
 * that the library appends to and that readers (pmctl, a host's own tools)
 * read while it is being written (symbol node PERFMETRICS_1.6).
 *
 * A store is a directory of segment files, hist-<20-digit sequence>.pmh.
 * The writer appends records to the newest segment and starts a new one
 * past the segment size; past the total size it deletes the oldest
 * segments. A record is framed (sync word, length, CRC-32C of the body) and
 * written with one write(2), so a crash or a full disk can tear at most the
 * record being written: readers stop at (or resynchronise past) a record
 * whose frame or checksum does not hold, and the next writer to open the
 * store truncates a torn tail before it appends. The format is in
 * doc/history.md.
 *
 * What a record holds: a snapshot's time and, for every family that passes
 * the prefix filter, its name, type, help, unit, label names, bucket bounds,
 * and per series its label values and value; a histogram series also its
 * count, sum, min, max, cumulative buckets and its fine buckets (the
 * pm_hdata_encode form), so quantiles read back keep the 1/129 bound.
 * Readers get records back as snapshots (perfmetrics/snapshot.h): every
 * accessor, pm_format and the quantile functions work on them. */
#ifndef PERFMETRICS_HISTORY_H
#define PERFMETRICS_HISTORY_H

#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>
#include <perfmetrics/snapshot.h>
#include <perfmetrics/spans.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_history_opts pm_history_opts_t;
typedef struct pm_history pm_history_t;
typedef struct pm_history_reader pm_history_reader_t;

/* When appended records reach the disk. */
typedef enum pm_history_sync {
    PM_HISTORY_SYNC_NONE = 0,  /* the kernel decides: a power loss may lose the last seconds */
    PM_HISTORY_SYNC_EACH = 1,  /* fdatasync after every record */
    PM_HISTORY_SYNC_ROTATE = 2 /* fdatasync when a segment is closed [default] */
} pm_history_sync_t;

/* ---------------------------------------------------------------- options */

/* Creates store options holding the defaults below. Release with
 * pm_history_opts_free. Errors: PM_EINVAL, PM_ENOMEM. Thread-safety: any. */
PM_API pm_status_t pm_history_opts_new(pm_history_opts_t **out);

/* NULL is a no-op. */
PM_API void pm_history_opts_free(pm_history_opts_t *o);

/* Segment size and total size in bytes [8 MiB, 256 MiB]: a segment is closed
 * once it reaches segment_bytes, and the oldest segments are deleted while
 * the store holds more than total_bytes (the newest segment is never
 * deleted). 4096 <= segment_bytes <= total_bytes.
 * Errors: PM_EINVAL, PM_ERANGE. */
PM_API pm_status_t pm_history_opts_set_limits(pm_history_opts_t *o, uint64_t segment_bytes,
                                              uint64_t total_bytes);

/* [PM_HISTORY_SYNC_ROTATE]. Errors: PM_EINVAL, PM_ERANGE (unknown mode). */
PM_API pm_status_t pm_history_opts_set_sync(pm_history_opts_t *o, pm_history_sync_t mode);

/* Name of the store's exporter on its registry ["history"]; label-value text.
 * Errors: PM_EINVAL, PM_EUTF8, PM_ENOMEM. */
PM_API pm_status_t pm_history_opts_set_name(pm_history_opts_t *o, const char *name);

/* Keeps only the families whose name starts with one of the prefixes added
 * (none added: every family, the library's own perfmetrics_* included).
 * Errors: PM_EINVAL, PM_ENOMEM. */
PM_API pm_status_t pm_history_opts_add_prefix(pm_history_opts_t *o, const char *prefix);

/* ---------------------------------------------------------------- writing */

/* Opens (creating it, mode 0750, when missing) the store in directory `dir`,
 * recovers its newest segment (a torn tail is truncated away) and, when r
 * is not NULL, registers an exporter on r that appends the snapshot of every
 * export run (perfmetrics/export.h: pm_export_start, pm_export_tick or
 * pm_export_now decide when). One writer per store: a second one (in this
 * process or another) gets PM_ESTATE (an advisory lock on the directory).
 * Errors: PM_EINVAL, PM_EIO (cannot create or open; errno says why),
 * PM_ESTATE, PM_EEXIST (exporter name taken), PM_ENOMEM.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_history_new(pm_registry_t *r, const char *dir, const pm_history_opts_t *o,
                                  pm_history_t **out);

/* Appends snapshot s now (a store without a registry, or an extra point).
 * A failed write (PM_EIO: disk full, I/O error) leaves the store as it was
 * and is counted; the next append tries again.
 * Errors: PM_EINVAL, PM_EIO, PM_ENOMEM. Thread-safety: any thread;
 * appends are serialised. */
PM_API pm_status_t pm_history_append(pm_history_t *h, const pm_snapshot_t *s);

/* Appends every span tracer t exports (sampled, ended spans, in the
 * tracer's batches) as span records: what pmctl bottlenecks ranks by self
 * time. Registers a span exporter named like the store's exporter on t;
 * pm_history_free removes it (free the store before the tracer).
 * Errors: PM_EINVAL, PM_EEXIST (the name is taken on t), PM_ENOMEM.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_history_add_tracer(pm_history_t *h, pm_tracer_t *t);

typedef enum pm_history_stat {
    PM_HISTORY_STAT_RECORDS = 0,   /* records appended */
    PM_HISTORY_STAT_BYTES = 1,     /* bytes appended */
    PM_HISTORY_STAT_FAILED = 2,    /* appends that failed (nothing written) */
    PM_HISTORY_STAT_SEGMENTS = 3,  /* segments in the store now */
    PM_HISTORY_STAT_DELETED = 4,   /* segments deleted for the total size */
    PM_HISTORY_STAT_RECOVERED = 5  /* bytes of a torn tail truncated at open */
} pm_history_stat_t;

/* One counter of h into *value. Errors: PM_EINVAL. Thread-safety: any. */
PM_API pm_status_t pm_history_stat(const pm_history_t *h, pm_history_stat_t which,
                                   uint64_t *value);

/* Unregisters the exporter, syncs and closes the store. NULL is a no-op.
 * Must be called before the registry is freed. Thread-safety: not from the
 * store's own exporter. */
PM_API void pm_history_free(pm_history_t *h);

/* ---------------------------------------------------------------- reading */

/* Opens the store in `dir` for reading: its segments as they are now, and
 * records appended to the newest one while reading. Never writes.
 * Errors: PM_EINVAL, PM_ENOENT (no such directory or no segment), PM_EIO,
 * PM_ENOMEM. Thread-safety: a reader is used by one thread at a time. */
PM_API pm_status_t pm_history_reader_open(const char *dir, pm_history_reader_t **out);

/* Restricts the records returned to snapshot times in [start, end] (Unix
 * seconds; -INFINITY / INFINITY for open ends). Errors: PM_EINVAL. */
PM_API pm_status_t pm_history_reader_set_range(pm_history_reader_t *rd, double start,
                                               double end);

/* The next record, oldest first, as a snapshot the caller releases with
 * pm_snapshot_release. PM_ENOENT at the end (more may come later while a
 * writer appends: call again). A record that fails its checksum, or a frame
 * that does not hold, is skipped and counted (pm_history_reader_skipped);
 * reading goes on at the next record that holds.
 * Errors: PM_EINVAL, PM_ENOENT, PM_EIO, PM_ENOMEM. */
PM_API pm_status_t pm_history_reader_next(pm_history_reader_t *rd, pm_snapshot_t **out);

/* The next span record (a batch the tracer exported), oldest first, passing
 * over snapshot records, as pm_history_reader_next passes over span records:
 * read spans and snapshots with a reader each. The batch's spans have every
 * pm_span_data_* accessor and pm_span_batch_format; release it with
 * pm_history_spans_free. The range applies to the batch's last end time.
 * Errors: as pm_history_reader_next. */
PM_API pm_status_t pm_history_reader_next_spans(pm_history_reader_t *rd, pm_span_batch_t **out);

/* Frees a batch from pm_history_reader_next_spans. NULL is a no-op. */
PM_API void pm_history_spans_free(pm_span_batch_t *b);

/* Bytes read so far and in the store's segments when the reader opened (for
 * progress on long reads); either may be NULL. NULL rd: zeros. */
PM_API void pm_history_reader_progress(const pm_history_reader_t *rd, uint64_t *done,
                                       uint64_t *total);

/* Records skipped because they did not hold (torn or corrupt). NULL: 0. */
PM_API uint64_t pm_history_reader_skipped(const pm_history_reader_t *rd);

/* NULL is a no-op. */
PM_API void pm_history_reader_close(pm_history_reader_t *rd);

#ifdef __cplusplus
}
#endif

#endif
