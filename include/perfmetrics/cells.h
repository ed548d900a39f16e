/* libperfmetrics — cell blocks: memory the library owns that a binding's
 * own code writes with plain stores, summed into the series at snapshot time
 * (symbol node PERFMETRICS_1.4).
 *
 * Why: a call through an FFI costs 20-150 ns, ten to a hundred times a record.
 * A binding that wants its hot path at the speed of its language keeps the
 * record on its own side: a JavaScript `counter.inc()` becomes an add into a
 * Float64Array over a page of a cell block, with no call at all.
 *
 * Model. A cell block belongs to one writer at a time (a JavaScript isolate, a
 * worker thread, a Python interpreter holding its lock): only that writer
 * stores into the block's pages, with plain 8-byte aligned stores; the
 * library only reads them (snapshots, pm_counter_value) and only writes them
 * inside calls the writer makes itself (bind, grow, free). Aligned 8-byte
 * stores and loads do not tear on the platforms the library supports, so a
 * snapshot sees each cell either before or after a store, never half of one.
 *
 * Memory is in pages of PM_CELLS_PAGE_DOUBLES doubles (64 KiB), allocated by
 * bind calls and never moved or freed before pm_cells_free, so a binding
 * makes one typed-array view per page, once. A binding's index names a double
 * in the block: page index / PM_CELLS_PAGE_DOUBLES, offset index %
 * PM_CELLS_PAGE_DOUBLES. Nothing recorded is lost: pm_cells_free adds every
 * cell into its series first.
 *
 * Counter binding: one double. The writer adds to it (never subtracts); a
 * snapshot reports the series' own value plus the cell. Values stay exact up
 * to 2^53 per cell.
 *
 * Histogram binding: a region in one page, laid out as doubles (offsets from
 * the binding's index):
 *   [0] sum   [1] min (+Inf when empty)   [2] max (-Inf when empty)
 *   [3] cap: the number of count cells, a power of two (read-only)
 *   [4] used: keys inserted so far (the writer keeps it)
 *   [5] lowest  [6] highest: the family's range (read-only)
 *   [7] nbounds (read-only)
 *   [8 .. 8+nbounds)            the family's bucket bounds (read-only)
 *   [8+nbounds .. 8+2*nbounds)  each bound's fine index (read-only)
 *   then cap counts (doubles), then cap keys as uint32 (cap / 2 doubles).
 * The writer computes a value's key exactly as the library does:
 *   idx = v >= lowest ? min((bits(v) >> 46) - (bits(lowest) >> 46), nb) + 1 : 0
 *   (bits: the IEEE-754 bit pattern; nb = (bits(highest) >> 46) -
 *   (bits(lowest) >> 46) + 1; idx nb + 1 is above the range, NaN is never
 *   recorded); then, when idx is the fine index of one or more bounds k
 *   (ascending), key = nb + 2 + k for the first such k with v <= bounds[k],
 *   else key = idx.
 * It finds the key's cell by open addressing: h = (key * 0x9E3779B1 mod 2^32)
 * >> (32 - log2(cap)), then h + 1, ... (mod cap); a key cell holds key + 1, 0
 * when free. To record v: insert the key if absent (store the key cell, then
 * add 1 to used), add 1 to its count, add v to sum, and lower min / raise max.
 * When used reaches 3/4 of cap, the writer calls pm_cells_histogram_grow
 * before its next insert; at the largest size (PM_ERANGE) it may insert
 * until 7/8 of cap, and records values with no room left through
 * pm_histogram_observe. Counts stay exact up to 2^53 per cell. */
#ifndef PERFMETRICS_CELLS_H
#define PERFMETRICS_CELLS_H

#include <perfmetrics/base.h>
#include <perfmetrics/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct pm_cells pm_cells_t;

/* Doubles per page of a cell block (64 KiB pages). */
#define PM_CELLS_PAGE_DOUBLES 8192u

/* Offsets in a histogram binding's region (see the model above). */
#define PM_CELLS_H_SUM 0u
#define PM_CELLS_H_MIN 1u
#define PM_CELLS_H_MAX 2u
#define PM_CELLS_H_CAP 3u
#define PM_CELLS_H_USED 4u
#define PM_CELLS_H_LOWEST 5u
#define PM_CELLS_H_HIGHEST 6u
#define PM_CELLS_H_NBOUNDS 7u
#define PM_CELLS_H_BOUNDS 8u

/* Creates an empty cell block for registry r. Free it with pm_cells_free;
 * pm_registry_free frees any block left (its pages go with it).
 * Errors: PM_EINVAL (r or out NULL), PM_ENOMEM. On error *out is NULL.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_cells_new(pm_registry_t *r, pm_cells_t **out);

/* Adds every cell of b into its series (nothing recorded is lost), then frees
 * b and its pages: views over them must not be used any more. NULL is a no-op.
 * Adding a cell into the series sums the same doubles in another order than
 * a snapshot did, which can round a fractional total down by an ulp; a
 * counter's value and a histogram's sum are held at what they were (at most
 * 2^-40 of the total is added back), so a scraper never reads a reset.
 * Thread-safety: the block's writer; concurrently with snapshots and with
 * recording into the same series through other handles and blocks. */
PM_API void pm_cells_free(pm_cells_t *b);

/* Binds counter c to one cell of b and stores its index in *index. Binding
 * the same series again returns the same index. The block holds a reference
 * to the series until b is freed (pm_counter_release of the caller's handle
 * is fine meanwhile); a series removed from its family while bound stops
 * being reported, as with any handle.
 * Errors: PM_EINVAL (NULL argument), PM_ETYPE (not a counter), PM_EEXIST (c
 * is in another registry), PM_ENOMEM. Thread-safety: the block's writer. */
PM_API pm_status_t pm_cells_counter(pm_cells_t *b, pm_counter_t *c, size_t *index);

/* Binds histogram h to a region of b (layout above, 32 count cells to start)
 * and stores its index in *index; the same series again returns its current
 * index. References as for pm_cells_counter.
 * Errors: PM_EINVAL, PM_ETYPE (not a histogram), PM_EEXIST (another
 * registry), PM_ENOMEM. Thread-safety: the block's writer. */
PM_API pm_status_t pm_cells_histogram(pm_cells_t *b, pm_histogram_t *h, size_t *index);

/* Moves the histogram binding at `index` to a region with 4 times the count
 * cells (32, 128, 512, 2048, then 4096 at most) and stores its new index in *new_index; the old
 * region's doubles are zero afterwards and are not reused. Counts, sum, min
 * and max move with it; a snapshot never sees them twice or not at all.
 * Errors: PM_EINVAL (NULL argument, or index is not a histogram binding's
 * current index), PM_ERANGE (already at the largest size: the writer then
 * records the values that find no room through pm_histogram_observe),
 * PM_ENOMEM (nothing changed). Thread-safety: the block's writer. */
PM_API pm_status_t pm_cells_histogram_grow(pm_cells_t *b, size_t index, size_t *new_index);

/* The number of pages b has; page indexes below it are valid.
 * NULL b: 0. Thread-safety: the block's writer. */
PM_API size_t pm_cells_page_count(const pm_cells_t *b);

/* The first double of page `page` of b (PM_CELLS_PAGE_DOUBLES doubles,
 * 64-byte aligned), or NULL when b is NULL or page is out of range. The
 * address stays valid until pm_cells_free. Thread-safety: the block's writer. */
PM_API double *pm_cells_page(const pm_cells_t *b, size_t page);

/* The address of gauge g's value cell: a writer may store a double there
 * (an aligned 8-byte store: a set, last write wins, as pm_gauge_set), and
 * must not read-modify-write it unless it is the series' only writer (use
 * pm_gauge_add for increments from several threads). Valid while the caller
 * holds its handle g. A set that leaves the value unchanged does not count
 * as activity for the family's TTL.
 * Errors: PM_EINVAL (NULL argument), PM_ETYPE (not a gauge); on error *cell
 * is NULL. Thread-safety: any thread. */
PM_API pm_status_t pm_gauge_cell(pm_gauge_t *g, double **cell);

/* ------------------------------------------------------------ shared blocks
 * (symbol node PERFMETRICS_1.7): several processes, one aggregate.
 *
 * A program that forks workers (Node's cluster, a pre-fork server, a pool of
 * Python processes) wants one scrape of the primary to show every worker's
 * totals, without asking each worker at scrape time. A shared block is a
 * cell block whose pages are a file in a directory, mapped by the writer and
 * by the primary: the writer records exactly as into any block, the primary
 * attaches the directory (pm_cells_attach) and every snapshot of its registry
 * adds the cells of every block found there. No message crosses between the
 * processes, at record or at scrape time.
 *
 * Files. A block is two files in the directory: "<pid>.<n>.pmcells" (a 4 KiB
 * header, then the pages: the mapping the writer stores into) and
 * "<pid>.<n>.pmcat", an append-only catalog of what each binding is (family
 * name, type, help, unit, label names and values, options, histogram buckets
 * and range), which the attaching side uses to find or register the same
 * family and series in its own registry. The writer holds an exclusive
 * flock(2) on the .pmcells file for the block's life; when the lock is free
 * (the block was freed, or the process ended in any way, a crash included)
 * the attaching side adds the block's counters and histograms into its own
 * series for good, drops its gauges (a gauge series that then no live block
 * binds, that the attaching side holds no handle to and never set, is
 * removed), and deletes both files. Counters of a cluster therefore never go
 * backwards when a worker exits or restarts, nor by rounding (the fold holds
 * a counter's value and a histogram's sum, as pm_cells_free does).
 * Directory and files are created with modes 0700 and 0600: only the same
 * user shares them. The directory belongs to one cluster: one attaching
 * registry at a time (pm_cells_attach enforces it), files not touched by
 * anything else; tmpfs (/dev/shm) keeps the pages out of the disk.
 *
 * Consistency. Counters and histograms: a snapshot of the attaching side
 * sees each cell before or after a store, and never sees a histogram's counts
 * twice or not at all while its writer grows it (the block's header carries a
 * sequence count the grow makes odd while it moves counts). Values reach the
 * attaching side when it takes a snapshot (or calls pm_cells_attach_refresh);
 * between snapshots pm_counter_value and friends there report the values of
 * the last one. A process must not write into a block it inherited by fork()
 * without exec: it makes its own (the files are opened with O_CLOEXEC).
 *
 * Limits. A histogram region at its largest size holds 4096 count cells (up
 * to 3584 distinct buckets hit); values recorded through pm_histogram_observe
 * because a region is full (possible only for families whose range spans
 * more than 3584 fine buckets, i.e. wider than the default 1e-9..1e4) count
 * in the writer's own registry only. A series removed in the writer stays in
 * the aggregate until its block is freed; one the aggregate removes (its
 * family's TTL there, pm_family_remove) stops being reported there, as with
 * any handle. Gauges are summed over the blocks that bind them (as
 * prom-client's default cluster aggregator does). The attaching side keeps
 * two private copies of each block's pages (the current one, and the one
 * the next snapshot fills). */

/* Creates a cell block for registry r whose pages are shared through files
 * in directory `dir` (created with mode 0700 if missing; its parent must
 * exist). The block works as any block (pm_cells_counter, ..., pm_cells_free,
 * which also adds its cells into r's own series), and a registry attached to
 * `dir` in another process (or this one) adds its cells too. Binding a series
 * also appends its description to the block's catalog file.
 * Errors: PM_EINVAL (NULL argument, empty dir), PM_EIO (the directory or the
 * files cannot be created or mapped: errno tells), PM_ENOMEM. On error *out is
 * NULL and no file is left. Thread-safety: any thread. */
PM_API pm_status_t pm_cells_new_shared(pm_registry_t *r, const char *dir, pm_cells_t **out);

/* Binds gauge g to one cell of b and stores its index in *index; the same
 * series again returns the same index. The cell is the block writer's
 * contribution to the gauge: the series reports its own value plus the sum
 * of its cells, so a writer that owns a gauge alone stores its value there
 * (a set) or adds to it (an inc, exact: the writer is the cell's only
 * writer). The cell is dropped, not added into the series, when the block is
 * freed (a gauge reports live writers only). References as for
 * pm_cells_counter.
 * Errors: PM_EINVAL (NULL argument), PM_ETYPE (not a gauge, or a callback
 * gauge), PM_EEXIST (another registry), PM_EIO (a shared block's catalog
 * cannot be written), PM_ENOMEM. Thread-safety: the block's writer. */
PM_API pm_status_t pm_cells_gauge(pm_cells_t *b, pm_gauge_t *g, size_t *index);

typedef struct pm_cells_attach pm_cells_attach_t;

/* Attaches registry r to directory `dir` (created with mode 0700 if
 * missing): from now on every snapshot of r first looks for new blocks and
 * new bindings there, registers the families and series they describe in r
 * (as pm_family_new would: a family already registered with the same
 * definition is shared, one with another definition makes that binding
 * rejected and counted), and adds their cells into those series. Blocks
 * whose writer is gone are added into r's series for good and their files
 * deleted. Free with pm_cells_detach; pm_registry_free detaches what is left.
 * Errors: PM_EINVAL (NULL argument, empty dir), PM_EEXIST (another attachment,
 * in any process, holds dir), PM_EIO (dir cannot be created or opened),
 * PM_ENOMEM. On error *out is NULL. Thread-safety: any thread. */
PM_API pm_status_t pm_cells_attach(pm_registry_t *r, const char *dir, pm_cells_attach_t **out);

/* Does now what the next snapshot of the registry would do first: finds new
 * blocks and bindings, adds the cells of every block into the series (for
 * pm_counter_value and friends), folds the blocks whose writer is gone.
 * Errors: PM_EINVAL (NULL), PM_ESTATE (inside a callback), PM_ENOMEM (nothing
 * is lost: the next refresh retries). Files that cannot be read are skipped
 * and retried, not errors. Thread-safety: any thread. */
PM_API pm_status_t pm_cells_attach_refresh(pm_cells_attach_t *a);

/* What pm_cells_attach_stat reports. */
typedef enum pm_cells_attach_stat {
    PM_CELLS_ATTACH_BLOCKS = 0,   /* blocks attached now (live writers) */
    PM_CELLS_ATTACH_FOLDED = 1,   /* blocks folded for good (writer gone) */
    PM_CELLS_ATTACH_BINDINGS = 2, /* bindings being added now */
    PM_CELLS_ATTACH_REJECTED = 3, /* bindings rejected: the family exists with
                                     another definition, or a malformed record */
    PM_CELLS_ATTACH_RETRIES = 4   /* block reads repeated because a grow ran meanwhile */
} pm_cells_attach_stat_t;

/* One counter of a into *value, as of the last refresh or snapshot.
 * Errors: PM_EINVAL (NULL, unknown stat). Thread-safety: any thread. */
PM_API pm_status_t pm_cells_attach_stat(const pm_cells_attach_t *a, pm_cells_attach_stat_t which,
                                        uint64_t *value);

/* Stops adding the directory's blocks into the registry's series: values
 * they added so far stop being reported too, except what was folded for good
 * from blocks whose writer was gone. Files are left as they are. NULL is a
 * no-op. Thread-safety: any thread, not concurrently with a refresh of a. */
PM_API void pm_cells_detach(pm_cells_attach_t *a);

#ifdef __cplusplus
}
#endif

#endif
