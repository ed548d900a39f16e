/* Shared cell blocks, the writer's side (include/perfmetrics/cells.h): the
 * block's pages are a file others map, and its catalog a file they read.
 *
 * Creation: the catalog "<pid>.<n>.pmcat" is created first (O_EXCL picks n),
 * then the page file under a temporary name, given its header and an
 * exclusive flock(2), and only then renamed to "<pid>.<n>.pmcells": an
 * attaching side, which looks only for that suffix, never sees a file
 * without its header or its lock. The lock lives as long as the descriptor,
 * so it ends with the process however the process ends.
 *
 * Pages: the file is extended by one page (ftruncate leaves it zero) and the
 * page mapped on its own, so earlier pages never move; the header's npages is
 * stored after the mapping exists. Catalog records are appended with pwrite
 * at the published length, which is stored after the write: a failed or
 * short write publishes nothing, and the next record overwrites it. */
#include "internal/cells_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

struct pm_cshared {
    const pm_alloc_t *a;
    int fd, catfd;
    pm_cshared_hdr *hdr; /* the first PM_CSHARED_HDR_BYTES of the page file */
    uint64_t catlen;
    uint64_t dev, ino;
};

static _Atomic unsigned block_seq;

/* ------------------------------------------------------------ catalog records
 * u32 length (the whole record), u8 type, u8 overflow, u8 exemplars, u8 0,
 * u64 index, u64 max_series, f64 ttl, f64 lowest, f64 highest, u32 nbounds,
 * nbounds f64, then strings as u32 length + bytes: name, help, unit; u32
 * nlabels, the label names, then (unless overflow) the label values. Native
 * byte order: the files never leave the machine. */

typedef struct {
    unsigned char *p;
    size_t n, cap;
} wbuf;

static void put(wbuf *w, const void *v, size_t n)
{
    if (w->p) memcpy(w->p + w->n, v, n);
    w->n += n;
}

static void put_u32(wbuf *w, uint32_t v) { put(w, &v, 4); }
static void put_u64(wbuf *w, uint64_t v) { put(w, &v, 8); }
static void put_f64(wbuf *w, double v) { put(w, &v, 8); }
static void put_str(wbuf *w, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    put_u32(w, (uint32_t)n);
    put(w, s, n);
}

static void encode(wbuf *w, const pm_series *s, uint64_t index)
{
    const pm_family *f = s->fam;
    const pm_hist_layout *L = s->type == PM_TYPE_HISTOGRAM ? s->h.hl : NULL;
    unsigned char head[4] = {(unsigned char)s->type, (unsigned char)s->overflow,
                             (unsigned char)(f->exemplars != 0), 0};
    put_u32(w, (uint32_t)w->cap);
    put(w, head, 4);
    put_u64(w, index);
    put_u64(w, f->max_series);
    put_f64(w, f->ttl);
    put_f64(w, L ? L->lowest : 0);
    put_f64(w, L ? L->highest : 0);
    put_u32(w, L ? L->nbounds : 0);
    for (uint32_t k = 0; L && k < L->nbounds; k++) put_f64(w, L->bounds[k]);
    put_str(w, f->name);
    put_str(w, f->help);
    put_str(w, f->unit);
    put_u32(w, (uint32_t)f->nlabels);
    for (size_t i = 0; i < f->nlabels; i++) put_str(w, f->labels[i]);
    const char *const *values = pm__series_values(s);
    for (size_t i = 0; !s->overflow && i < f->nlabels; i++) put_str(w, values[i]);
}

pm_status_t pm__ccat_encode(const pm_alloc_t *a, const pm_series *s, uint64_t index,
                            unsigned char **out, size_t *len)
{
    wbuf w = {NULL, 0, 0};
    encode(&w, s, index); /* measures */
    w.cap = w.n;
    w.n = 0;
    if (w.cap > UINT32_MAX || !(w.p = pm__alloc(a, w.cap))) return PM_ENOMEM;
    encode(&w, s, index);
    *out = w.p;
    *len = w.n;
    return PM_OK;
}

typedef struct {
    const unsigned char *p;
    size_t n, at;
    bool bad;
} rbuf;

static const unsigned char *take(rbuf *r, size_t n)
{
    if (r->bad || r->n - r->at < n) {
        r->bad = true;
        return NULL;
    }
    const unsigned char *p = r->p + r->at;
    r->at += n;
    return p;
}

static uint32_t get_u32(rbuf *r)
{
    uint32_t v = 0;
    const unsigned char *p = take(r, 4);
    if (p) memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(rbuf *r)
{
    uint64_t v = 0;
    const unsigned char *p = take(r, 8);
    if (p) memcpy(&v, p, 8);
    return v;
}

static double get_f64(rbuf *r)
{
    double v = 0;
    const unsigned char *p = take(r, 8);
    if (p) memcpy(&v, p, 8);
    return v;
}

/* A string: no NUL inside (the library's strings are C strings). */
static pm_ccat_str get_str(rbuf *r)
{
    pm_ccat_str s = {NULL, get_u32(r)};
    s.p = (const char *)take(r, s.n);
    if (s.p && memchr(s.p, '\0', s.n)) r->bad = true;
    if (!s.p || r->bad) s.n = 0;
    return s;
}

pm_status_t pm__ccat_decode(const unsigned char *buf, size_t n, pm_ccat_rec *rec, size_t *used)
{
    if (n < 4) return PM_ENOENT;
    uint32_t len;
    memcpy(&len, buf, 4);
    if (len < 4 + 4 + 8 * 5 + 4) return PM_EPARSE;
    if (len > n) return PM_ENOENT;
    rbuf r = {buf, len, 4, false};
    memset(rec, 0, sizeof *rec);
    const unsigned char *head = take(&r, 4);
    if (!head) return PM_EPARSE;
    rec->type = head[0];
    rec->overflow = head[1];
    rec->exemplars = head[2];
    rec->index = get_u64(&r);
    rec->max_series = get_u64(&r);
    rec->ttl = get_f64(&r);
    rec->lowest = get_f64(&r);
    rec->highest = get_f64(&r);
    rec->nbounds = get_u32(&r);
    if (rec->nbounds > PM_CCAT_MAX_BOUNDS) return PM_EPARSE;
    rec->bounds = take(&r, (size_t)rec->nbounds * 8);
    rec->name = get_str(&r);
    rec->help = get_str(&r);
    rec->unit = get_str(&r);
    rec->nlabels = get_u32(&r);
    if (r.bad || rec->nlabels > PM_CCAT_MAX_LABELS || rec->overflow > 1 || rec->exemplars > 1)
        return PM_EPARSE;
    if (rec->type != PM_TYPE_COUNTER && rec->type != PM_TYPE_GAUGE &&
        rec->type != PM_TYPE_HISTOGRAM)
        return PM_EPARSE;
    for (uint32_t i = 0; i < rec->nlabels; i++) rec->labels[i] = get_str(&r);
    for (uint32_t i = 0; !rec->overflow && i < rec->nlabels; i++) rec->values[i] = get_str(&r);
    if (r.bad || r.at != len || !rec->name.n) return PM_EPARSE;
    *used = len;
    return PM_OK;
}

/* ------------------------------------------------------------ files */

static char *path_of(const pm_alloc_t *a, const char *dir, long pid, unsigned n, const char *ext)
{
    int len = snprintf(NULL, 0, "%s/%ld.%u.%s", dir, pid, n, ext);
    char *p = len > 0 ? pm__alloc(a, (size_t)len + 1) : NULL;
    if (p) snprintf(p, (size_t)len + 1, "%s/%ld.%u.%s", dir, pid, n, ext);
    return p;
}

/* The catalog, with a fresh block number; PM_EIO with errno set. */
static pm_status_t create_catalog(const pm_alloc_t *a, const char *dir, long pid, unsigned *n,
                                  int *fd)
{
    for (int tries = 0; tries < 1000; tries++) {
        *n = atomic_fetch_add_explicit(&block_seq, 1, memory_order_relaxed);
        char *p = path_of(a, dir, pid, *n, "pmcat");
        if (!p) return PM_ENOMEM;
        *fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        pm__free(a, p);
        if (*fd >= 0) return PM_OK;
        if (errno != EEXIST) return PM_EIO; /* an earlier process of this pid left one */
    }
    return PM_EIO;
}

/* The page file: header written, locked, renamed into place. */
static pm_status_t create_pages(pm_cshared *sh, const char *dir, long pid, unsigned n)
{
    const pm_alloc_t *a = sh->a;
    char *tmp = path_of(a, dir, pid, n, "tmp"), *fin = path_of(a, dir, pid, n, "pmcells");
    pm_status_t st = tmp && fin ? PM_EIO : PM_ENOMEM;
    if (st == PM_EIO && (sh->fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600)) >= 0) {
        void *m = MAP_FAILED;
        struct stat sb;
        if (ftruncate(sh->fd, PM_CSHARED_HDR_BYTES) == 0 && flock(sh->fd, LOCK_EX | LOCK_NB) == 0 &&
            fstat(sh->fd, &sb) == 0 &&
            (m = mmap(NULL, PM_CSHARED_HDR_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, sh->fd, 0)) !=
                MAP_FAILED) {
            sh->hdr = m;
            sh->hdr->magic = PM_CSHARED_MAGIC;
            sh->hdr->version = PM_CSHARED_VERSION;
            sh->hdr->page_doubles = PM_CELLS_PAGE_DOUBLES;
            sh->hdr->pid = (int32_t)pid;
            sh->dev = (uint64_t)sb.st_dev;
            sh->ino = (uint64_t)sb.st_ino;
            if (rename(tmp, fin) == 0) st = PM_OK;
        }
        if (st != PM_OK) {
            int e = errno;
            if (m != MAP_FAILED) munmap(m, PM_CSHARED_HDR_BYTES);
            sh->hdr = NULL;
            close(sh->fd);
            sh->fd = -1;
            unlink(tmp);
            errno = e;
        }
    }
    pm__free(a, tmp);
    pm__free(a, fin);
    return st;
}

pm_status_t pm__cshared_open(pm_registry *r, const char *dir, pm_cshared **out)
{
    *out = NULL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return PM_EIO;
    pm_cshared *sh = pm__calloc(&r->a, sizeof *sh);
    if (!sh) return PM_ENOMEM;
    sh->a = &r->a;
    sh->fd = sh->catfd = -1;
    long pid = (long)getpid();
    unsigned n = 0;
    pm_status_t st = create_catalog(&r->a, dir, pid, &n, &sh->catfd);
    if (st == PM_OK) st = create_pages(sh, dir, pid, n);
    if (st != PM_OK) {
        int e = errno;
        if (sh->catfd >= 0) {
            close(sh->catfd);
            char *p = path_of(&r->a, dir, pid, n, "pmcat");
            if (p) unlink(p);
            pm__free(&r->a, p);
        }
        pm__free(&r->a, sh);
        errno = e;
        return st;
    }
    *out = sh;
    return PM_OK;
}

double *pm__cshared_page_new(pm_cshared *sh, size_t page)
{
    off_t off = pm__cshared_page_offset(page);
    if (ftruncate(sh->fd, off + (off_t)PM_CELLS_PAGE_BYTES) != 0) return NULL;
    void *m = mmap(NULL, PM_CELLS_PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED, sh->fd, off);
    if (m == MAP_FAILED) {
        /* Give the file back its published size: an attaching side maps only
         * what npages names anyway. */
        if (ftruncate(sh->fd, off) != 0) {
        }
        return NULL;
    }
    atomic_store_explicit(&sh->hdr->npages, page + 1, memory_order_release);
    return m;
}

pm_status_t pm__cshared_catalog(pm_cshared *sh, const pm_alloc_t *a, const pm_series *s,
                                uint64_t index)
{
    unsigned char *rec;
    size_t len;
    pm_status_t st = pm__ccat_encode(a, s, index, &rec, &len);
    if (st != PM_OK) return st;
    size_t done = 0;
    while (done < len) {
        ssize_t w = pwrite(sh->catfd, rec + done, len - done, (off_t)(sh->catlen + done));
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) break;
        done += (size_t)w;
    }
    pm__free(a, rec);
    if (done < len) return PM_EIO;
    sh->catlen += len;
    atomic_store_explicit(&sh->hdr->catlen, sh->catlen, memory_order_release);
    return PM_OK;
}

/* The writer's half of a sequence lock: odd while a region moves. */
void pm__cshared_grow_begin(pm_cshared *sh)
{
    uint64_t g = atomic_load_explicit(&sh->hdr->gen, memory_order_relaxed);
    atomic_store_explicit(&sh->hdr->gen, g + 1, memory_order_relaxed);
    atomic_thread_fence(memory_order_release);
}

void pm__cshared_grow_end(pm_cshared *sh)
{
    uint64_t g = atomic_load_explicit(&sh->hdr->gen, memory_order_relaxed);
    atomic_store_explicit(&sh->hdr->gen, g + 1, memory_order_release);
}

void pm__cshared_id(const pm_cshared *sh, uint64_t *dev, uint64_t *ino)
{
    *dev = sh->dev;
    *ino = sh->ino;
}

void pm__cshared_close(pm_cshared *sh, double **pages, size_t npages)
{
    for (size_t i = 0; i < npages; i++) munmap(pages[i], PM_CELLS_PAGE_BYTES);
    munmap(sh->hdr, PM_CSHARED_HDR_BYTES);
    close(sh->catfd);
    close(sh->fd); /* the lock goes with it: the attaching side folds the block */
    pm__free(sh->a, sh);
}
