/* History store, the writing side (include/perfmetrics/history.h).
 *
 * Crash safety rests on three rules. (1) A record is one write(2) of its
 * whole frame to a file opened O_APPEND, so a crash or a full disk can tear
 * only the record being written. (2) A write that comes back short is undone
 * at once (ftruncate back to the segment's previous size), so a full disk
 * leaves the file as it was and the next append starts clean. (3) Opening a
 * store truncates a torn tail of its newest segment, so appends never follow
 * garbage; a frame in the middle that does not hold is left for readers to
 * skip (there is nothing to repair: the records after it are good).
 * Each writer starts a new segment, so it never rewrites what others may be
 * reading. */
#include "internal/history_internal.h"

#include <perfmetrics/export.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct pm_history_opts {
    uint64_t seg_bytes, total_bytes;
    pm_history_sync_t sync;
    char *name;
    char **prefixes;
    size_t nprefixes;
};

typedef struct {
    uint64_t seq, bytes;
} segment;

struct pm_history {
    pthread_mutex_t mu; /* appends, rotation */
    pm_history_opts_t o;
    char *dir;
    int lockfd, fd;
    segment *segs; /* oldest first; the last is the one being written */
    size_t nsegs, capsegs;
    pm_buf_t *buf;
    pm_exporter_t *ex;
    pm_tracer_t *tracer; /* with our span exporter, or NULL */
    _Atomic uint64_t stat[PM_HISTORY_STAT_RECOVERED + 1];
};

/* ------------------------------------------------------------ options */

pm_status_t pm_history_opts_new(pm_history_opts_t **out)
{
    if (!out) return PM_EINVAL;
    pm_history_opts_t *o = calloc(1, sizeof *o);
    *out = o;
    if (!o) return PM_ENOMEM;
    o->seg_bytes = (uint64_t)8 << 20;
    o->total_bytes = (uint64_t)256 << 20;
    o->sync = PM_HISTORY_SYNC_ROTATE;
    return PM_OK;
}

static void opts_clear(pm_history_opts_t *o)
{
    free(o->name);
    for (size_t i = 0; i < o->nprefixes; i++) free(o->prefixes[i]);
    free(o->prefixes);
}

void pm_history_opts_free(pm_history_opts_t *o)
{
    if (!o) return;
    opts_clear(o);
    free(o);
}

pm_status_t pm_history_opts_set_limits(pm_history_opts_t *o, uint64_t segment_bytes,
                                       uint64_t total_bytes)
{
    if (!o) return PM_EINVAL;
    if (segment_bytes < 4096 || segment_bytes > total_bytes) return PM_ERANGE;
    o->seg_bytes = segment_bytes;
    o->total_bytes = total_bytes;
    return PM_OK;
}

pm_status_t pm_history_opts_set_sync(pm_history_opts_t *o, pm_history_sync_t mode)
{
    if (!o) return PM_EINVAL;
    if ((int)mode < PM_HISTORY_SYNC_NONE || mode > PM_HISTORY_SYNC_ROTATE) return PM_ERANGE;
    o->sync = mode;
    return PM_OK;
}

pm_status_t pm_history_opts_set_name(pm_history_opts_t *o, const char *name)
{
    if (!o || !name) return PM_EINVAL;
    size_t n = strlen(name);
    if (!n || n > 4096 || !pm__valid_utf8(name, n)) return PM_EUTF8;
    char *d = strdup(name);
    if (!d) return PM_ENOMEM;
    free(o->name);
    o->name = d;
    return PM_OK;
}

pm_status_t pm_history_opts_add_prefix(pm_history_opts_t *o, const char *prefix)
{
    if (!o || !prefix) return PM_EINVAL;
    char **v = realloc(o->prefixes, (o->nprefixes + 1) * sizeof *v);
    if (!v) return PM_ENOMEM;
    o->prefixes = v;
    if (!(v[o->nprefixes] = strdup(prefix))) return PM_ENOMEM;
    o->nprefixes++;
    return PM_OK;
}

static pm_status_t opts_copy(pm_history_opts_t *d, const pm_history_opts_t *s)
{
    *d = (pm_history_opts_t){s->seg_bytes, s->total_bytes, s->sync, NULL, NULL, 0};
    if (s->name && !(d->name = strdup(s->name))) return PM_ENOMEM;
    for (size_t i = 0; i < s->nprefixes; i++)
        if (pm_history_opts_add_prefix(d, s->prefixes[i]) != PM_OK) return PM_ENOMEM;
    return PM_OK;
}

static bool wants(const char *name, const void *ctx)
{
    const pm_history_opts_t *o = ctx;
    if (!o->nprefixes) return true;
    for (size_t i = 0; i < o->nprefixes; i++)
        if (!strncmp(name, o->prefixes[i], strlen(o->prefixes[i]))) return true;
    return false;
}

/* ------------------------------------------------------------ files */

static char *seg_path(const char *dir, uint64_t seq)
{
    size_t n = strlen(dir) + 32;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/hist-%020llu.pmh", dir, (unsigned long long)seq);
    return p;
}

static bool write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        len -= (size_t)w;
    }
    return true;
}

static void sync_dir(const char *dir)
{
    int d = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (d >= 0) {
        fsync(d);
        close(d);
    }
}

/* The end of the last record of a segment's bytes that holds, passing over
 * frames in the middle that do not (corruption, the readers' to skip): what
 * follows it is a torn tail. */
static size_t good_end(const unsigned char *p, size_t n)
{
    size_t at = PM_HISTORY_MAGIC_LEN, end = at;
    uint32_t len;
    while (at + PM_HISTORY_FRAME <= n) {
        if (pm__history_frame_ok(p + at, p + n, &len)) {
            at += PM_HISTORY_FRAME + len;
            end = at;
            continue;
        }
        size_t k = at + 1;
        while (k + PM_HISTORY_FRAME <= n && !pm__history_frame_ok(p + k, p + n, &len)) k++;
        if (k + PM_HISTORY_FRAME > n) break;
        at = k;
    }
    return end;
}

/* Truncates a torn tail of segment `path`; returns the bytes removed. */
static uint64_t recover(const char *path, uint64_t *size)
{
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return 0;
    struct stat sb;
    uint64_t cut = 0;
    if (fstat(fd, &sb) == 0 && sb.st_size >= 0) {
        size_t n = (size_t)sb.st_size;
        unsigned char *p = malloc(n ? n : 1);
        if (p && pread(fd, p, n, 0) == (ssize_t)n) {
            size_t keep = n < PM_HISTORY_MAGIC_LEN || memcmp(p, PM_HISTORY_MAGIC, PM_HISTORY_MAGIC_LEN)
                              ? 0
                              : good_end(p, n);
            if (keep < n && ftruncate(fd, (off_t)keep) == 0) {
                cut = n - keep;
                if (keep == 0) unlink(path); /* never got its magic: nothing in it */
                n = keep;
            }
        }
        free(p);
        *size = n;
    }
    close(fd);
    return cut;
}

static pm_status_t segs_push(pm_history_t *h, uint64_t seq, uint64_t bytes)
{
    if (h->nsegs == h->capsegs) {
        size_t nc = h->capsegs ? 2 * h->capsegs : 16;
        segment *v = realloc(h->segs, nc * sizeof *v);
        if (!v) return PM_ENOMEM;
        h->segs = v;
        h->capsegs = nc;
    }
    h->segs[h->nsegs++] = (segment){seq, bytes};
    return PM_OK;
}

/* Deletes the oldest segments while the store is over its total size. */
static void enforce_total(pm_history_t *h)
{
    uint64_t total = 0;
    for (size_t i = 0; i < h->nsegs; i++) total += h->segs[i].bytes;
    size_t drop = 0;
    while (drop + 1 < h->nsegs && total > h->o.total_bytes) {
        char *p = seg_path(h->dir, h->segs[drop].seq);
        if (!p || (unlink(p) != 0 && errno != ENOENT)) {
            free(p);
            break;
        }
        free(p);
        total -= h->segs[drop].bytes;
        drop++;
        atomic_fetch_add(&h->stat[PM_HISTORY_STAT_DELETED], 1);
    }
    if (drop) memmove(h->segs, h->segs + drop, (h->nsegs - drop) * sizeof *h->segs);
    h->nsegs -= drop;
    atomic_store(&h->stat[PM_HISTORY_STAT_SEGMENTS], h->nsegs);
}

/* Starts segment seq: created, its magic written and the directory synced. */
static pm_status_t segment_start(pm_history_t *h, uint64_t seq)
{
    char *p = seg_path(h->dir, seq);
    if (!p) return PM_ENOMEM;
    int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
    pm_status_t st = fd < 0 ? PM_EIO : PM_OK;
    if (st == PM_OK && !write_all(fd, PM_HISTORY_MAGIC, PM_HISTORY_MAGIC_LEN)) {
        close(fd);
        unlink(p);
        st = PM_EIO;
    }
    if (st == PM_OK && (st = segs_push(h, seq, PM_HISTORY_MAGIC_LEN)) != PM_OK) {
        close(fd);
        unlink(p);
    }
    free(p);
    if (st != PM_OK) return st;
    sync_dir(h->dir);
    h->fd = fd;
    enforce_total(h);
    return PM_OK;
}

/* Under h->mu: closes the segment being written and starts the next. */
static pm_status_t rotate(pm_history_t *h)
{
    if (h->o.sync != PM_HISTORY_SYNC_NONE) fdatasync(h->fd);
    close(h->fd);
    h->fd = -1;
    return segment_start(h, h->segs[h->nsegs - 1].seq + 1);
}

/* ------------------------------------------------------------ the store */

static pm_status_t history_export(const pm_snapshot_t *s, void *user)
{
    return pm_history_append(user, s);
}

static void history_close(pm_history_t *h)
{
    if (h->fd >= 0) {
        if (h->o.sync != PM_HISTORY_SYNC_NONE) fdatasync(h->fd);
        close(h->fd);
    }
    if (h->lockfd >= 0) close(h->lockfd); /* releases the lock */
    pm_buf_free(h->buf);
    opts_clear(&h->o);
    free(h->segs);
    free(h->dir);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

/* Locks the store, recovers its newest segment and starts a new one. */
static pm_status_t history_open(pm_history_t *h)
{
    if (mkdir(h->dir, 0750) != 0 && errno != EEXIST) return PM_EIO;
    size_t n = strlen(h->dir) + 8;
    char *lock = malloc(n);
    if (!lock) return PM_ENOMEM;
    snprintf(lock, n, "%s/LOCK", h->dir);
    h->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    free(lock);
    if (h->lockfd < 0) return PM_EIO;
    if (flock(h->lockfd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK ? PM_ESTATE : PM_EIO;
    char **names = NULL;
    size_t nn = 0;
    pm_status_t st = pm__history_list(h->dir, &names, &nn);
    uint64_t last = 0;
    for (size_t i = 0; st == PM_OK && i < nn; i++) {
        size_t pn = strlen(h->dir) + strlen(names[i]) + 2;
        char *path = malloc(pn);
        if (!path) {
            st = PM_ENOMEM;
            break;
        }
        snprintf(path, pn, "%s/%s", h->dir, names[i]);
        uint64_t seq = pm__history_segment_seq(names[i]), size = 0;
        struct stat sb;
        if (i + 1 == nn) {
            atomic_fetch_add(&h->stat[PM_HISTORY_STAT_RECOVERED], recover(path, &size));
        } else if (stat(path, &sb) == 0) {
            size = (uint64_t)sb.st_size;
        }
        free(path);
        last = seq;
        if (size) st = segs_push(h, seq, size);
    }
    pm__history_list_free(names, nn);
    if (st == PM_OK) st = segment_start(h, last + 1);
    return st;
}

pm_status_t pm_history_new(pm_registry_t *r, const char *dir, const pm_history_opts_t *o,
                           pm_history_t **out)
{
    if (out) *out = NULL;
    if (!dir || !*dir || !out) return PM_EINVAL;
    pm_history_t *h = calloc(1, sizeof *h);
    if (!h) return PM_ENOMEM;
    pthread_mutex_init(&h->mu, NULL);
    h->lockfd = h->fd = -1;
    pm_history_opts_t *dflt = NULL;
    pm_status_t st = PM_OK;
    if (!o) {
        st = pm_history_opts_new(&dflt);
        o = dflt;
    }
    if (st == PM_OK) st = opts_copy(&h->o, o);
    pm_history_opts_free(dflt);
    if (st == PM_OK && !(h->dir = strdup(dir))) st = PM_ENOMEM;
    if (st == PM_OK) st = pm_buf_new(&h->buf);
    if (st == PM_OK) st = history_open(h);
    if (st == PM_OK && r)
        st = pm_exporter_add(r, h->o.name ? h->o.name : "history", history_export, h, NULL, &h->ex);
    if (st != PM_OK) {
        history_close(h);
        return st;
    }
    *out = h;
    return PM_OK;
}

static pm_status_t encode_snapshot(const void *src, const pm_history_t *h, pm_buf_t *b)
{
    return pm__history_encode(src, wants, &h->o, b);
}

static pm_status_t encode_spans(const void *src, const pm_history_t *h, pm_buf_t *b)
{
    (void)h;
    return pm__history_encode_spans(src, b);
}

/* Appends one record whose body enc writes from src. */
static pm_status_t append(pm_history_t *h, const void *src,
                          pm_status_t (*enc)(const void *src, const pm_history_t *h, pm_buf_t *b))
{
    pthread_mutex_lock(&h->mu);
    pm_buf_reset(h->buf);
    static const unsigned char zero[PM_HISTORY_FRAME];
    pm_status_t st = pm_buf_append(h->buf, zero, sizeof zero);
    if (st == PM_OK) st = enc(src, h, h->buf);
    size_t len = pm_buf_len(h->buf);
    if (st == PM_OK && len - PM_HISTORY_FRAME > PM_HISTORY_MAX_BODY) st = PM_ERANGE;
    if (st == PM_OK) {
        /* The header goes over the zeros: the buffer is ours, so the cast
         * only undoes pm_buf_data's read-only view. */
        unsigned char *data = (unsigned char *)(uintptr_t)pm_buf_data(h->buf);
        pm__history_frame(data, data + PM_HISTORY_FRAME, len - PM_HISTORY_FRAME);
        segment *cur = &h->segs[h->nsegs - 1];
        if (h->fd < 0 || (cur->bytes > PM_HISTORY_MAGIC_LEN && cur->bytes + len > h->o.seg_bytes)) {
            if (h->fd < 0 ? segment_start(h, cur->seq + 1) != PM_OK : rotate(h) != PM_OK)
                st = PM_EIO;
            cur = &h->segs[h->nsegs - 1];
        }
        if (st == PM_OK && !write_all(h->fd, data, len)) {
            /* Undo a short write (a full disk): the file stays as it was. */
            if (ftruncate(h->fd, (off_t)cur->bytes) != 0) {
                /* Cannot undo: leave this segment for readers to skip the
                 * torn record, and write the next record to a new one. */
                close(h->fd);
                h->fd = -1;
            }
            st = PM_EIO;
        }
        if (st == PM_OK) {
            cur->bytes += len;
            if (h->o.sync == PM_HISTORY_SYNC_EACH) fdatasync(h->fd);
            atomic_fetch_add(&h->stat[PM_HISTORY_STAT_RECORDS], 1);
            atomic_fetch_add(&h->stat[PM_HISTORY_STAT_BYTES], len);
            enforce_total(h);
        }
    }
    if (st != PM_OK) atomic_fetch_add(&h->stat[PM_HISTORY_STAT_FAILED], 1);
    pthread_mutex_unlock(&h->mu);
    return st == PM_ERANGE ? PM_EIO : st;
}

pm_status_t pm_history_append(pm_history_t *h, const pm_snapshot_t *s)
{
    if (!h || !s) return PM_EINVAL;
    return append(h, s, encode_snapshot);
}

pm_status_t pm__history_append_spans(pm_history_t *h, const pm_span_batch_t *b)
{
    return pm_span_batch_count(b) ? append(h, b, encode_spans) : PM_OK;
}

static pm_status_t history_spans(const pm_span_batch_t *b, void *user)
{
    return pm__history_append_spans(user, b);
}

pm_status_t pm_history_add_tracer(pm_history_t *h, pm_tracer_t *t)
{
    if (!h || !t) return PM_EINVAL;
    if (h->tracer) return PM_ESTATE;
    pm_status_t st = pm_tracer_add_exporter(t, h->o.name ? h->o.name : "history", history_spans, h,
                                            NULL);
    if (st == PM_OK) h->tracer = t;
    return st;
}

pm_status_t pm_history_stat(const pm_history_t *h, pm_history_stat_t which, uint64_t *value)
{
    if (value) *value = 0;
    if (!h || !value || (int)which < 0 || which > PM_HISTORY_STAT_RECOVERED) return PM_EINVAL;
    *value = atomic_load(&((pm_history_t *)(uintptr_t)h)->stat[which]);
    return PM_OK;
}

void pm_history_free(pm_history_t *h)
{
    if (!h) return;
    pm_exporter_remove(h->ex);
    if (h->tracer) pm_tracer_remove_exporter(h->tracer, h->o.name ? h->o.name : "history");
    history_close(h);
}
