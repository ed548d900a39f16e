/* History store, the reading side (include/perfmetrics/history.h).
 *
 * A reader never writes and never trusts what it reads: every frame is
 * checked (sync word, length, CRC-32C) before its body is decoded, and the
 * decoder checks every length against the body. The newest segment may be
 * growing: a frame cut short at its end is "not yet" (PM_ENOENT, read again
 * later from the same place), while the same in a segment that has a newer
 * one after it is a torn record (skipped and counted). */
#include "internal/history_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct pm_history_reader {
    char *dir;
    char **names; /* segments known, oldest first */
    size_t nnames, cur;
    int fd;
    uint64_t off; /* in the current segment */
    unsigned char *buf;
    size_t cap;
    double start, end;
    uint64_t done, total, skipped;
};

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static uint64_t file_size(int fd)
{
    struct stat sb;
    return fstat(fd, &sb) == 0 && sb.st_size > 0 ? (uint64_t)sb.st_size : 0;
}

/* Picks up segments created since the last look (the writer rotated, or a
 * new writer started). Returns whether there are any after the current. */
static bool relist(pm_history_reader_t *rd)
{
    char **names;
    size_t n;
    if (pm__history_list(rd->dir, &names, &n) != PM_OK) return rd->cur + 1 < rd->nnames;
    uint64_t last = rd->nnames ? pm__history_segment_seq(rd->names[rd->nnames - 1]) : 0;
    for (size_t i = 0; i < n; i++) {
        if (pm__history_segment_seq(names[i]) <= last) continue;
        char **v = realloc(rd->names, (rd->nnames + 1) * sizeof *v);
        if (!v) break;
        rd->names = v;
        rd->names[rd->nnames++] = names[i];
        names[i] = NULL;
    }
    pm__history_list_free(names, n);
    return rd->cur + 1 < rd->nnames;
}

pm_status_t pm_history_reader_open(const char *dir, pm_history_reader_t **out)
{
    if (out) *out = NULL;
    if (!dir || !out) return PM_EINVAL;
    pm_history_reader_t *rd = calloc(1, sizeof *rd);
    if (!rd) return PM_ENOMEM;
    rd->fd = -1;
    rd->start = -INFINITY;
    rd->end = INFINITY;
    pm_status_t st = (rd->dir = strdup(dir)) ? PM_OK : PM_ENOMEM;
    if (st == PM_OK) {
        st = pm__history_list(dir, &rd->names, &rd->nnames);
        if (st == PM_EIO && errno == ENOENT) st = PM_ENOENT;
    }
    if (st == PM_OK && !rd->nnames) st = PM_ENOENT;
    for (size_t i = 0; st == PM_OK && i < rd->nnames; i++) {
        char *p = join(dir, rd->names[i]);
        struct stat sb;
        if (p && stat(p, &sb) == 0) rd->total += (uint64_t)sb.st_size;
        free(p);
    }
    if (st != PM_OK) {
        pm_history_reader_close(rd);
        return st;
    }
    *out = rd;
    return PM_OK;
}

pm_status_t pm_history_reader_set_range(pm_history_reader_t *rd, double start, double end)
{
    if (!rd || start != start || end != end || start > end) return PM_EINVAL;
    rd->start = start;
    rd->end = end;
    return PM_OK;
}

/* Reads n bytes at off of the current segment into rd->buf; false when the
 * file does not hold them (yet). */
static bool read_at(pm_history_reader_t *rd, uint64_t off, size_t n)
{
    if (n > rd->cap) {
        unsigned char *b = realloc(rd->buf, n);
        if (!b) return false;
        rd->buf = b;
        rd->cap = n;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(rd->fd, rd->buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        got += (size_t)r;
    }
    return true;
}

static void next_segment(pm_history_reader_t *rd)
{
    uint64_t size = file_size(rd->fd);
    if (size > rd->off) rd->done += size - rd->off;
    close(rd->fd);
    rd->fd = -1;
    rd->cur++;
}

/* After a frame that does not hold at rd->off: the offset of the next one
 * that does, or the file's size when there is none. */
static uint64_t resync(pm_history_reader_t *rd)
{
    uint64_t size = file_size(rd->fd);
    if (size <= rd->off + 1 || !read_at(rd, rd->off + 1, (size_t)(size - rd->off - 1))) return size;
    const unsigned char *p = rd->buf, *end = rd->buf + (size - rd->off - 1);
    uint32_t len;
    for (const unsigned char *q = p; q + PM_HISTORY_FRAME <= end; q++)
        if (pm__history_frame_ok(q, end, &len)) return rd->off + 1 + (uint64_t)(q - p);
    return size;
}

/* The next frame's body in rd->buf (length *len), or why not: PM_ENOENT (no
 * more for now), PM_EIO. */
static pm_status_t next_body(pm_history_reader_t *rd, uint32_t *len)
{
    for (;;) {
        if (rd->fd < 0) {
            if (rd->cur >= rd->nnames && !relist(rd)) return PM_ENOENT;
            if (rd->cur >= rd->nnames) continue;
            char *p = join(rd->dir, rd->names[rd->cur]);
            if (!p) return PM_ENOMEM;
            rd->fd = open(p, O_RDONLY | O_CLOEXEC);
            free(p);
            if (rd->fd < 0) { /* deleted by the writer's size limit meanwhile */
                rd->cur++;
                continue;
            }
            if (!read_at(rd, 0, PM_HISTORY_MAGIC_LEN) ||
                memcmp(rd->buf, PM_HISTORY_MAGIC, PM_HISTORY_MAGIC_LEN)) {
                if (!relist(rd) && rd->cur + 1 >= rd->nnames) { /* being created */
                    close(rd->fd);
                    rd->fd = -1;
                    return PM_ENOENT;
                }
                rd->skipped++;
                next_segment(rd);
                continue;
            }
            rd->off = PM_HISTORY_MAGIC_LEN;
            rd->done += PM_HISTORY_MAGIC_LEN;
        }
        uint64_t size = file_size(rd->fd);
        if (rd->off >= size) {
            if (rd->cur + 1 < rd->nnames || relist(rd)) {
                next_segment(rd);
                continue;
            }
            return PM_ENOENT;
        }
        bool newest = rd->cur + 1 >= rd->nnames;
        if (read_at(rd, rd->off, PM_HISTORY_FRAME)) {
            const unsigned char *h = rd->buf;
            uint32_t n = (uint32_t)h[4] | (uint32_t)h[5] << 8 | (uint32_t)h[6] << 16 |
                         (uint32_t)h[7] << 24;
            bool sync = h[0] == 'P' && h[1] == 'M' && h[2] == 'H' && h[3] == 'R';
            if (sync && n && n <= PM_HISTORY_MAX_BODY) {
                if (read_at(rd, rd->off, PM_HISTORY_FRAME + (size_t)n)) {
                    if (pm__history_frame_ok(rd->buf, rd->buf + PM_HISTORY_FRAME + n, len)) {
                        memmove(rd->buf, rd->buf + PM_HISTORY_FRAME, n);
                        rd->off += PM_HISTORY_FRAME + n;
                        rd->done += PM_HISTORY_FRAME + n;
                        return PM_OK;
                    }
                } else if (newest && !relist(rd)) {
                    return PM_ENOENT; /* still being written */
                }
            }
        } else if (newest && !relist(rd)) {
            return PM_ENOENT;
        }
        /* A frame that does not hold: skip to the next one that does. */
        rd->skipped++;
        uint64_t to = resync(rd);
        rd->done += to - rd->off;
        rd->off = to;
    }
}

/* The next body of `kind` in the range (in rd->buf, length *len), passing
 * over records of the other kinds this library writes. */
static pm_status_t next_of(pm_history_reader_t *rd, unsigned kind, uint32_t *len)
{
    for (;;) {
        pm_status_t st = next_body(rd, len);
        if (st != PM_OK) return st;
        unsigned k = pm__history_kind(rd->buf, *len);
        double t = pm__history_time(rd->buf, *len);
        if (t != t || (k != PM_HISTORY_KIND_SNAPSHOT && k != PM_HISTORY_KIND_SPANS)) {
            rd->skipped++; /* its checksum held, yet it is not a record we know */
            continue;
        }
        if (k == kind && t >= rd->start && t <= rd->end) return PM_OK;
    }
}

pm_status_t pm_history_reader_next_spans(pm_history_reader_t *rd, pm_span_batch_t **out)
{
    if (out) *out = NULL;
    if (!rd || !out) return PM_EINVAL;
    for (;;) {
        uint32_t len = 0;
        pm_status_t st = next_of(rd, PM_HISTORY_KIND_SPANS, &len);
        if (st != PM_OK) return st;
        st = pm__history_decode_spans(rd->buf, len, out);
        if (st != PM_EPARSE) return st;
        rd->skipped++;
    }
}

void pm_history_spans_free(pm_span_batch_t *b) { pm__history_spans_free(b); }

pm_status_t pm_history_reader_next(pm_history_reader_t *rd, pm_snapshot_t **out)
{
    if (out) *out = NULL;
    if (!rd || !out) return PM_EINVAL;
    for (;;) {
        uint32_t len = 0;
        pm_status_t st = next_of(rd, PM_HISTORY_KIND_SNAPSHOT, &len);
        if (st != PM_OK) return st;
        pm_snapshot_t *s = pm__calloc(&pm__default_alloc, sizeof *s);
        if (!s) return PM_ENOMEM;
        s->a = pm__default_alloc;
        atomic_init(&s->refs, 1);
        st = pm__history_decode(rd->buf, len, s);
        if (st == PM_OK) {
            *out = s;
            return PM_OK;
        }
        pm_snapshot_release(s);
        if (st == PM_ENOMEM) return st;
        rd->skipped++; /* its checksum held, yet it does not decode */
    }
}

void pm_history_reader_progress(const pm_history_reader_t *rd, uint64_t *done, uint64_t *total)
{
    if (done) *done = rd ? rd->done : 0;
    if (total) *total = rd ? rd->total : 0;
}

uint64_t pm_history_reader_skipped(const pm_history_reader_t *rd) { return rd ? rd->skipped : 0; }

void pm_history_reader_close(pm_history_reader_t *rd)
{
    if (!rd) return;
    if (rd->fd >= 0) close(rd->fd);
    pm__history_list_free(rd->names, rd->nnames);
    free(rd->buf);
    free(rd->dir);
    free(rd);
}
