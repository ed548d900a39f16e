/* Attaching a registry to a directory of shared cell blocks
 * (include/perfmetrics/cells.h): the reading side of several processes'
 * blocks.
 *
 * Each block found there gets a mirror: a private cell block in the
 * registry's list, whose binding table maps this registry's series to the
 * writer's cells and whose pages hold a copy of the writer's pages. Snapshot
 * code reads mirrors exactly as it reads local blocks. A snapshot (or
 * pm_cells_attach_refresh) goes through three steps:
 *
 *  scan (under snap_lock only): lists the directory, opens and maps new
 *    blocks, probes each writer's flock (free: the writer is gone), reads
 *    new catalog records and registers their families and series here. This
 *    is the part that makes system calls and takes the registry lock itself.
 *  copy (under r->lock): maps pages the writers added since, and copies each
 *    block into the mirror's spare pages inside the writer's sequence lock
 *    (retried when a grow ran meanwhile); only a consistent copy replaces the
 *    mirror's pages. Histogram bindings then take their region's place from
 *    the copied slot. A block whose writer is gone is copied one last time,
 *    added into the series for good (gauges excepted) and taken off the list,
 *    in the same lock hold, so no snapshot sees it twice or not at all.
 *  settle (no lock): unmaps and deletes what was folded.
 *
 * Nothing in a writer's files is trusted: catalog records are parsed with
 * every length checked, region places and sizes are checked against the
 * copied pages' bounds before they index anything, and a family whose
 * definition differs from this registry's makes its bindings rejected (and
 * counted), not merged. */
#include "internal/cells_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define SUFFIX ".pmcells"
#define COPY_TRIES 64
#define CAT_CHUNK 65536

typedef struct pending {
    pm_series *s;
    uint64_t index;
} pending;

struct pm_cremote {
    pm_cremote *next;
    char *base; /* "<dir>/<pid>.<n>" */
    int fd, catfd;
    const pm_cshared_hdr *hdr;
    double **rpages; /* the writer's pages, mapped read-only */
    double **spare;  /* copy target, swapped with the mirror's pages */
    size_t nrpages, caprpages;
    pm_cells_t *mirror;
    bool listed; /* mirror is on r->cells */
    bool dead;   /* writer's lock is free: fold at the next copy */
    bool broken; /* catalog malformed: no further records trusted */
    bool folded;
    bool own; /* one of this registry's own shared blocks: ignored */
    uint64_t catoff;
    pending *pend;
    size_t npend, cappend;
};

enum {
    ST_BLOCKS,
    ST_FOLDED,
    ST_BINDINGS,
    ST_REJECTED,
    ST_RETRIES,
    ST_N
};

struct pm_cells_attach {
    pm_registry *reg;
    pm_cells_attach_t *next; /* r->attaches, under snap_lock */
    char *dir;
    int lockfd;
    pm_cremote *remotes;
    _Atomic uint64_t stat[ST_N];
};

static void stat_add(pm_cells_attach_t *a, int which, uint64_t n)
{
    atomic_fetch_add_explicit(&a->stat[which], n, memory_order_relaxed);
}

static char *str_join(const pm_alloc_t *al, const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *p = pm__alloc(al, na + nb + 1);
    if (!p) return NULL;
    memcpy(p, a, na);
    memcpy(p + na, b, nb + 1);
    return p;
}

/* ------------------------------------------------------------ remotes */

static void remote_free(pm_registry *r, pm_cremote *rm)
{
    for (size_t i = 0; i < rm->nrpages; i++) {
        munmap(rm->rpages[i], PM_CELLS_PAGE_BYTES);
        pm__free_aligned(&r->a, rm->spare[i]);
    }
    pm__free(&r->a, rm->rpages);
    pm__free(&r->a, rm->spare);
    if (rm->hdr) munmap((void *)(uintptr_t)rm->hdr, PM_CSHARED_HDR_BYTES);
    if (rm->fd >= 0) close(rm->fd);
    if (rm->catfd >= 0) close(rm->catfd);
    if (rm->mirror) {
        pm_cells_t *m = rm->mirror;
        for (size_t i = 0; i < m->npages; i++) pm__free_aligned(&r->a, m->pages[i]);
        pm__free(&r->a, m->pages);
        pm__free(&r->a, m->tab);
        pm__free(&r->a, m);
    }
    for (size_t i = 0; i < rm->npend; i++) pm__series_release(rm->pend[i].s);
    pm__free(&r->a, rm->pend);
    pm__free(&r->a, rm->base);
    pm__free(&r->a, rm);
}

/* Whether fd is one of r's own shared blocks (its cells are already in r). */
static bool own_block(pm_registry *r, int fd)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) return false;
    bool own = false;
    pthread_mutex_lock(&r->lock);
    for (const pm_cells_t *b = r->cells; b && !own; b = b->next) {
        uint64_t dev, ino;
        if (!b->sh) continue;
        pm__cshared_id(b->sh, &dev, &ino);
        own = dev == (uint64_t)sb.st_dev && ino == (uint64_t)sb.st_ino;
    }
    pthread_mutex_unlock(&r->lock);
    return own;
}

/* Opens the block "<base>.pmcells" into *out: NULL when it is not (yet) a
 * block this library can read. r's own blocks are remembered, ignored.
 * PM_ENOMEM when memory ran out. */
static pm_status_t remote_open(pm_cells_attach_t *a, const char *base, pm_cremote **out)
{
    pm_registry *r = a->reg;
    *out = NULL;
    pm_cremote *rm = pm__calloc(&r->a, sizeof *rm);
    if (!rm) return PM_ENOMEM;
    rm->fd = rm->catfd = -1;
    rm->base = str_join(&r->a, base, "");
    char *pages = str_join(&r->a, base, SUFFIX), *cat = str_join(&r->a, base, ".pmcat");
    rm->mirror = pm__calloc(&r->a, sizeof *rm->mirror);
    bool ok = rm->base && pages && cat && rm->mirror;
    if (!ok) {
        pm__free(&r->a, pages);
        pm__free(&r->a, cat);
        remote_free(r, rm);
        return PM_ENOMEM;
    }
    ok = (rm->fd = open(pages, O_RDONLY | O_CLOEXEC)) >= 0;
    if (ok && own_block(r, rm->fd)) {
        /* Remembered, so that the next look does not open it again. */
        close(rm->fd);
        rm->fd = -1;
        rm->own = true;
        pm__free(&r->a, pages);
        pm__free(&r->a, cat);
        *out = rm;
        return PM_OK;
    }
    struct stat sb;
    if (ok) ok = fstat(rm->fd, &sb) == 0 && sb.st_size >= (off_t)PM_CSHARED_HDR_BYTES;
    if (ok) {
        void *m = mmap(NULL, PM_CSHARED_HDR_BYTES, PROT_READ, MAP_SHARED, rm->fd, 0);
        ok = m != MAP_FAILED;
        if (ok) rm->hdr = m;
    }
    if (ok)
        ok = rm->hdr->magic == PM_CSHARED_MAGIC && rm->hdr->version == PM_CSHARED_VERSION &&
             rm->hdr->page_doubles == PM_CELLS_PAGE_DOUBLES;
    if (ok) ok = (rm->catfd = open(cat, O_RDONLY | O_CLOEXEC)) >= 0;
    pm__free(&r->a, pages);
    pm__free(&r->a, cat);
    if (!ok) {
        remote_free(r, rm);
        return PM_OK;
    }
    rm->mirror->reg = r;
    rm->mirror->remote = rm;
    *out = rm;
    return PM_OK;
}

/* ------------------------------------------------------------ catalog */

/* The family and series one record describes, registered in r as
 * pm_family_new would; PM_ENOMEM means "retry later", any other error that
 * the record is rejected. */
pm_status_t pm__ccat_series(pm_registry *r, const pm_ccat_rec *c, pm_series **out)
{
    *out = NULL;
    /* NUL-terminated copies of every string, in one allocation. */
    size_t bytes = c->name.n + c->help.n + c->unit.n + 3;
    for (uint32_t i = 0; i < c->nlabels; i++) bytes += c->labels[i].n + c->values[i].n + 2;
    char *buf = pm__alloc(&r->a, bytes), *at = buf;
    const char *names[PM_CCAT_MAX_LABELS], *values[PM_CCAT_MAX_LABELS];
    if (!buf) return PM_ENOMEM;
#define COPY(dst, str)                                                                             \
    do {                                                                                           \
        if ((str).n) memcpy(at, (str).p, (str).n);                                                 \
        at[(str).n] = '\0';                                                                        \
        (dst) = at;                                                                                \
        at += (str).n + 1;                                                                         \
    } while (0)
    const char *name, *help, *unit;
    COPY(name, c->name);
    COPY(help, c->help);
    COPY(unit, c->unit);
    for (uint32_t i = 0; i < c->nlabels; i++) {
        COPY(names[i], c->labels[i]);
        COPY(values[i], c->values[i]);
    }
#undef COPY
    double *bounds = NULL;
    pm_family_opts_t *o = NULL;
    pm_status_t st = pm_family_opts_new(&o);
    if (st == PM_OK) st = pm_family_opts_set_labels(o, names, c->nlabels);
    if (st == PM_OK && *unit) st = pm_family_opts_set_unit(o, unit);
    if (st == PM_OK) st = pm_family_opts_set_max_series(o, (size_t)c->max_series);
    if (st == PM_OK && c->ttl != 0) st = pm_family_opts_set_ttl(o, c->ttl);
    if (st == PM_OK && c->type != PM_TYPE_GAUGE) st = pm_family_opts_set_exemplars(o, c->exemplars);
    if (st == PM_OK && c->type == PM_TYPE_HISTOGRAM) {
        st = c->nbounds ? PM_OK : PM_EPARSE;
        if (st == PM_OK && !(bounds = pm__alloc(&r->a, c->nbounds * sizeof *bounds)))
            st = PM_ENOMEM;
        if (st == PM_OK) {
            memcpy(bounds, c->bounds, c->nbounds * sizeof *bounds);
            st = pm_family_opts_set_buckets(o, bounds, c->nbounds);
        }
        if (st == PM_OK) st = pm_family_opts_set_range(o, c->lowest, c->highest);
    }
    pm_family_t *f = NULL;
    if (st == PM_OK) st = pm_family_new(r, (pm_type_t)c->type, name, help, o, &f);
    if (st == PM_OK && f->cb) st = PM_ETYPE;
    if (st == PM_OK)
        st = c->overflow ? pm__series_overflow(f, out)
                         : pm__series_get(f, (pm_type_t)c->type, values, c->nlabels, out);
    pm_family_opts_free(o);
    pm__free(&r->a, bounds);
    pm__free(&r->a, buf);
    return st;
}

static pm_status_t pend_push(pm_registry *r, pm_cremote *rm, pm_series *s, uint64_t index)
{
    if (rm->npend == rm->cappend) {
        size_t nc = rm->cappend ? 2 * rm->cappend : 16;
        pending *p = pm__alloc(&r->a, nc * sizeof *p);
        if (!p) return PM_ENOMEM;
        if (rm->npend) memcpy(p, rm->pend, rm->npend * sizeof *p);
        pm__free(&r->a, rm->pend);
        rm->pend = p;
        rm->cappend = nc;
    }
    rm->pend[rm->npend++] = (pending){s, index};
    return PM_OK;
}

/* Reads the catalog records published since the last look. */
static pm_status_t remote_catalog(pm_cells_attach_t *a, pm_cremote *rm)
{
    pm_registry *r = a->reg;
    uint64_t end = atomic_load_explicit(&rm->hdr->catlen, memory_order_acquire);
    if (rm->broken || end <= rm->catoff) return PM_OK;
    size_t cap = CAT_CHUNK;
    unsigned char *buf = NULL;
    pm_status_t st = PM_OK;
    while (st == PM_OK && rm->catoff < end && !rm->broken) {
        size_t want = end - rm->catoff < cap ? (size_t)(end - rm->catoff) : cap;
        if (!buf && !(buf = pm__alloc(&r->a, cap))) return PM_ENOMEM;
        ssize_t got = pread(rm->catfd, buf, want, (off_t)rm->catoff);
        if (got <= 0) break; /* retried at the next look */
        size_t at = 0;
        while (at < (size_t)got) {
            pm_ccat_rec c;
            size_t used = 0;
            pm_status_t d = pm__ccat_decode(buf + at, (size_t)got - at, &c, &used);
            if (d == PM_ENOENT) break;
            if (d != PM_OK) {
                rm->broken = true;
                stat_add(a, ST_REJECTED, 1);
                break;
            }
            pm_series *s = NULL;
            pm_status_t rs = pm__ccat_series(r, &c, &s);
            if (rs == PM_ENOMEM) {
                st = PM_ENOMEM;
                break;
            }
            if (rs == PM_OK && (rs = pend_push(r, rm, s, c.index)) == PM_ENOMEM) {
                pm__series_release(s);
                st = PM_ENOMEM;
                break;
            }
            if (rs != PM_OK) stat_add(a, ST_REJECTED, 1);
            at += used;
        }
        if (at == 0 && st == PM_OK && !rm->broken) {
            /* A record larger than the buffer gets room; a short read is
             * retried at the next look. */
            uint32_t len = 0;
            if (got >= 4) memcpy(&len, buf, 4);
            if (len <= cap || len > (1u << 26) || (size_t)got < want) break;
            pm__free(&r->a, buf);
            buf = NULL;
            cap = len;
            continue;
        }
        rm->catoff += at;
    }
    pm__free(&r->a, buf);
    return st;
}

/* ------------------------------------------------------------ scan */

static bool known(const pm_cells_attach_t *a, const char *base)
{
    for (const pm_cremote *rm = a->remotes; rm; rm = rm->next)
        if (!strcmp(rm->base, base)) return true;
    return false;
}

static pm_status_t scan_dir(pm_cells_attach_t *a)
{
    pm_registry *r = a->reg;
    DIR *d = opendir(a->dir);
    if (!d) return PM_OK; /* retried at the next look */
    pm_status_t st = PM_OK;
    struct dirent *de;
    size_t nsuf = strlen(SUFFIX);
    while (st == PM_OK && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n <= nsuf || strcmp(de->d_name + n - nsuf, SUFFIX)) continue;
        size_t nd = strlen(a->dir);
        char *base = pm__alloc(&r->a, nd + 1 + n - nsuf + 1);
        if (!base) {
            st = PM_ENOMEM;
            break;
        }
        memcpy(base, a->dir, nd);
        base[nd] = '/';
        memcpy(base + nd + 1, de->d_name, n - nsuf);
        base[nd + 1 + n - nsuf] = '\0';
        if (!known(a, base)) {
            pm_cremote *rm = NULL;
            st = remote_open(a, base, &rm);
            if (rm) {
                rm->next = a->remotes;
                a->remotes = rm;
            }
        }
        pm__free(&r->a, base);
    }
    closedir(d);
    return st;
}

static pm_status_t scan_one(pm_cells_attach_t *a)
{
    pm_status_t st = scan_dir(a);
    for (pm_cremote *rm = a->remotes; rm && st == PM_OK; rm = rm->next) {
        if (rm->folded || rm->own) continue;
        /* Liveness first: once the lock is free the catalog is final, and
         * reading it after the probe catches every record. */
        if (!rm->dead && flock(rm->fd, LOCK_SH | LOCK_NB) == 0) rm->dead = true;
        st = remote_catalog(a, rm);
    }
    return st;
}

pm_status_t pm__cells_attach_scan(pm_registry *r)
{
    pm_status_t st = PM_OK;
    for (pm_cells_attach_t *a = r->attaches; a; a = a->next) {
        pm_status_t s1 = scan_one(a);
        if (st == PM_OK) st = s1;
    }
    return st;
}

/* ------------------------------------------------------------ copy */

/* Under r->lock: maps the pages the writer published since, with spare and
 * mirror pages to match. False when a mapping or memory failed. */
static bool sync_pages(pm_registry *r, pm_cremote *rm)
{
    uint64_t n = atomic_load_explicit(&rm->hdr->npages, memory_order_acquire);
    if (n > ((uint64_t)1 << 24)) return false; /* 1 TiB of cells: not a block we wrote */
    pm_cells_t *m = rm->mirror;
    while (rm->nrpages < n) {
        if (rm->nrpages == rm->caprpages) {
            size_t nc = rm->caprpages ? 2 * rm->caprpages : 4;
            double **rp = pm__alloc(&r->a, nc * sizeof *rp),
                   **sp = pm__alloc(&r->a, nc * sizeof *sp),
                   **mp = pm__alloc(&r->a, nc * sizeof *mp);
            if (!rp || !sp || !mp) {
                pm__free(&r->a, rp);
                pm__free(&r->a, sp);
                pm__free(&r->a, mp);
                return false;
            }
            if (rm->nrpages) {
                memcpy(rp, rm->rpages, rm->nrpages * sizeof *rp);
                memcpy(sp, rm->spare, rm->nrpages * sizeof *sp);
                memcpy(mp, m->pages, rm->nrpages * sizeof *mp);
            }
            pm__free(&r->a, rm->rpages);
            pm__free(&r->a, rm->spare);
            pm__free(&r->a, m->pages);
            rm->rpages = rp;
            rm->spare = sp;
            m->pages = mp;
            rm->caprpages = m->cappages = nc;
        }
        size_t i = rm->nrpages;
        void *map = mmap(NULL, PM_CELLS_PAGE_BYTES, PROT_READ, MAP_SHARED, rm->fd,
                         pm__cshared_page_offset(i));
        double *sp = pm__alloc_aligned(&r->a, PM_CELLS_PAGE_BYTES),
               *mp = pm__alloc_aligned(&r->a, PM_CELLS_PAGE_BYTES);
        if (map == MAP_FAILED || !sp || !mp) {
            if (map != MAP_FAILED) munmap(map, PM_CELLS_PAGE_BYTES);
            pm__free_aligned(&r->a, sp);
            pm__free_aligned(&r->a, mp);
            return false;
        }
        memset(mp, 0, PM_CELLS_PAGE_BYTES);
        rm->rpages[i] = map;
        rm->spare[i] = sp;
        m->pages[i] = mp;
        rm->nrpages = m->npages = i + 1;
    }
    return true;
}

/* Copies every page into the spare pages inside the writer's sequence
 * lock; true when the copy is consistent (then the spare pages become the
 * mirror's). A dead writer's sequence may be stuck odd: its slot
 * still names one complete region (lib/cells.c, h_move). */
static bool copy_pages(pm_cells_attach_t *a, pm_cremote *rm)
{
    for (int t = 0; t < COPY_TRIES; t++) {
        uint64_t g1 = atomic_load_explicit(&rm->hdr->gen, memory_order_acquire);
        if ((g1 & 1) && !rm->dead) {
            stat_add(a, ST_RETRIES, 1);
            sched_yield();
            continue;
        }
        /* A grow that ended before g1 may have moved a region into a page
         * added after the last sync_pages: its npages store came first. */
        if (atomic_load_explicit(&rm->hdr->npages, memory_order_acquire) > rm->nrpages &&
            !sync_pages(a->reg, rm))
            return false;
        for (size_t p = 0; p < rm->nrpages; p++) {
            const double *src = rm->rpages[p];
            double *dst = rm->spare[p];
            for (size_t i = 0; i < PM_CELLS_PAGE_DOUBLES; i++) dst[i] = pm__cell_load(&src[i]);
        }
        atomic_thread_fence(memory_order_acquire);
        if (rm->dead || atomic_load_explicit(&rm->hdr->gen, memory_order_relaxed) == g1) {
            double **tmp = rm->mirror->pages;
            rm->mirror->pages = rm->spare;
            rm->spare = tmp;
            return true;
        }
        stat_add(a, ST_RETRIES, 1);
    }
    return false;
}

/* Under r->lock: binds the series the catalog named since the last copy;
 * false when memory ran out (the rest waits for the next copy). */
static bool take_pending(pm_cremote *rm)
{
    pm_cells_t *m = rm->mirror;
    size_t done = 0;
    for (; done < rm->npend; done++) {
        if (pm__cells_tab_reserve(m) != PM_OK) break;
        pending *p = &rm->pend[done];
        pm_cells_binding *e = pm__cells_tab_insert(m, p->s); /* the reference moves in */
        e->index = e->slot = (size_t)p->index;
        e->ok = 0; /* until place_bindings finds it inside the copied pages */
        p->s->bound = 1;
        if (p->s->type == PM_TYPE_GAUGE) __atomic_store_n(&p->s->slot, 1u, __ATOMIC_RELEASE);
    }
    if (done) memmove(rm->pend, rm->pend + done, (rm->npend - done) * sizeof *rm->pend);
    rm->npend -= done;
    return rm->npend == 0;
}

/* Under r->lock, after a consistent copy: where each binding's cells are now,
 * checked against the copy's bounds. */
static void place_bindings(pm_cremote *rm)
{
    pm_cells_t *m = rm->mirror;
    size_t total = m->npages * PM_CELLS_PAGE_DOUBLES;
    for (size_t i = 0; i < m->tabcap; i++) {
        pm_cells_binding *e = &m->tab[i];
        if (!e->s) continue;
        if (e->s->type != PM_TYPE_HISTOGRAM) {
            e->ok = e->index < total;
            continue;
        }
        e->ok = 0;
        if (e->slot >= total) continue;
        double at = m->pages[e->slot / PM_CELLS_PAGE_DOUBLES][e->slot % PM_CELLS_PAGE_DOUBLES];
        if (!(at >= 0 && at < (double)total) || at != floor(at)) continue;
        size_t idx = (size_t)at, off = idx % PM_CELLS_PAGE_DOUBLES;
        const double *h = m->pages[idx / PM_CELLS_PAGE_DOUBLES] + off;
        uint32_t nb = e->s->h.hl->nbounds;
        if (PM_CELLS_PAGE_DOUBLES - off < PM_CELLS_H_BOUNDS || h[PM_CELLS_H_NBOUNDS] != (double)nb)
            continue;
        double cap = h[PM_CELLS_H_CAP];
        if (!(cap >= PM_CELLS_HCAP_MIN && cap <= PM_CELLS_HCAP_MAX)) continue;
        uint32_t c = (uint32_t)cap;
        if ((double)c != cap || (c & (c - 1)) ||
            off + pm__cells_h_doubles(nb, c) > PM_CELLS_PAGE_DOUBLES)
            continue;
        e->index = idx;
        e->cap = c;
        e->ok = 1;
    }
}

/* Under r->lock, after copy_one listed the mirror: the writer is gone; its
 * counters and histograms join the series for good, its gauges go, and the
 * mirror leaves the list. Each binding is folded while the mirror is still
 * listed, so each series' total can be compared before and after. */
static void fold_remote(pm_cells_attach_t *a, pm_cremote *rm)
{
    pm_registry *r = a->reg;
    pm_cells_t *m = rm->mirror;
    for (size_t i = 0; i < m->tabcap; i++)
        if (m->tab[i].s) pm__cells_fold_held_locked(m, &m->tab[i]);
    pm__cells_unlink_locked(r, m);
    rm->listed = false;
    for (size_t i = 0; i < m->tabcap; i++) {
        pm_series *s = m->tab[i].s;
        if (!s) continue;
        pm__series_unref_locked(r, s);
        m->tab[i].s = NULL;
        /* A gauge series that only gone writers bound, that nobody here
         * holds or set, goes too: a gauge reports live writers, and per-
         * worker label values would otherwise pile up at 0. */
        if (s->type == PM_TYPE_GAUGE && s->linked && !s->permanent &&
            atomic_load_explicit(&s->refs, memory_order_relaxed) == 1 &&
            atomic_load_explicit(&s->gbits, memory_order_relaxed) == 0)
            pm__series_unlink_locked(r, s);
    }
    m->nbound = 0;
    rm->folded = true;
    stat_add(a, ST_FOLDED, 1);
}

/* PM_ENOMEM when memory (or a mapping) failed: what was copied before
 * stays, and the next look retries. */
static pm_status_t copy_one(pm_cells_attach_t *a, pm_cremote *rm)
{
    pm_registry *r = a->reg;
    if (rm->folded || rm->own) return PM_OK;
    if (!rm->listed) {
        rm->mirror->next = r->cells;
        r->cells = rm->mirror;
        rm->listed = true;
    }
    bool bound = take_pending(rm), mapped = sync_pages(r, rm);
    bool ok = mapped && copy_pages(a, rm);
    if (ok) place_bindings(rm);
    /* A dead writer's last copy failing leaves it for the next look rather
     * than folding half of it. */
    if (rm->dead && ok && bound) fold_remote(a, rm);
    return bound && mapped ? PM_OK : PM_ENOMEM;
}

pm_status_t pm__cells_attach_copy_locked(pm_registry *r)
{
    pm_status_t st = PM_OK;
    for (pm_cells_attach_t *a = r->attaches; a; a = a->next) {
        uint64_t blocks = 0, bindings = 0;
        for (pm_cremote *rm = a->remotes; rm; rm = rm->next) {
            pm_status_t s1 = copy_one(a, rm);
            if (st == PM_OK) st = s1;
            if (rm->folded || rm->own) continue;
            blocks++;
            bindings += rm->mirror->nbound;
        }
        atomic_store_explicit(&a->stat[ST_BLOCKS], blocks, memory_order_relaxed);
        atomic_store_explicit(&a->stat[ST_BINDINGS], bindings, memory_order_relaxed);
    }
    return st;
}

/* ------------------------------------------------------------ settle */

void pm__cells_attach_settle(pm_registry *r)
{
    for (pm_cells_attach_t *a = r->attaches; a; a = a->next)
        for (pm_cremote **p = &a->remotes; *p;) {
            pm_cremote *rm = *p;
            if (!rm->folded) {
                p = &rm->next;
                continue;
            }
            *p = rm->next;
            char *pages = str_join(&r->a, rm->base, SUFFIX),
                 *cat = str_join(&r->a, rm->base, ".pmcat");
            if (pages) unlink(pages);
            if (cat) unlink(cat);
            pm__free(&r->a, pages);
            pm__free(&r->a, cat);
            remote_free(r, rm);
        }
}

/* ------------------------------------------------------------ public calls */

pm_status_t pm_cells_attach(pm_registry_t *r, const char *dir, pm_cells_attach_t **out)
{
    if (out) *out = NULL;
    if (!r || !dir || !*dir || !out) return PM_EINVAL;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) return PM_EIO;
    pm_cells_attach_t *a = pm__calloc(&r->a, sizeof *a);
    if (!a) return PM_ENOMEM;
    a->reg = r;
    a->lockfd = -1;
    a->dir = str_join(&r->a, dir, "");
    char *lock = str_join(&r->a, dir, "/.attach");
    pm_status_t st = a->dir && lock ? PM_OK : PM_ENOMEM;
    if (st == PM_OK && (a->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
        st = PM_EIO;
    if (st == PM_OK && flock(a->lockfd, LOCK_EX | LOCK_NB) != 0)
        st = errno == EWOULDBLOCK ? PM_EEXIST : PM_EIO;
    pm__free(&r->a, lock);
    if (st != PM_OK) {
        if (a->lockfd >= 0) close(a->lockfd);
        pm__free(&r->a, a->dir);
        pm__free(&r->a, a);
        return st;
    }
    pthread_mutex_lock(&r->snap_lock);
    a->next = r->attaches;
    r->attaches = a;
    pthread_mutex_unlock(&r->snap_lock);
    *out = a;
    return PM_OK;
}

pm_status_t pm_cells_attach_refresh(pm_cells_attach_t *a)
{
    if (!a) return PM_EINVAL;
    if (pm__in_callback) return PM_ESTATE;
    pm_registry *r = a->reg;
    pthread_mutex_lock(&r->snap_lock);
    pm_status_t st = pm__cells_attach_scan(r);
    pthread_mutex_lock(&r->lock);
    pm_status_t s2 = pm__cells_attach_copy_locked(r);
    if (st == PM_OK) st = s2;
    pm__maintain_locked(r);
    pthread_mutex_unlock(&r->lock);
    pm__cells_attach_settle(r);
    pthread_mutex_unlock(&r->snap_lock);
    return st;
}

pm_status_t pm_cells_attach_stat(const pm_cells_attach_t *a, pm_cells_attach_stat_t which,
                                 uint64_t *value)
{
    if (!a || !value || (unsigned)which >= ST_N) return PM_EINVAL;
    *value = atomic_load_explicit(&a->stat[which], memory_order_relaxed);
    return PM_OK;
}

/* Under snap_lock: takes a off the registry and frees it. */
static void detach_locked(pm_cells_attach_t *a)
{
    pm_registry *r = a->reg;
    for (pm_cells_attach_t **p = &r->attaches; *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    pthread_mutex_lock(&r->lock);
    for (pm_cremote *rm = a->remotes; rm; rm = rm->next) {
        pm_cells_t *m = rm->mirror;
        if (rm->listed) pm__cells_unlink_locked(r, m);
        rm->listed = false;
        for (size_t i = 0; i < m->tabcap; i++)
            if (m->tab[i].s) pm__series_unref_locked(r, m->tab[i].s);
        m->nbound = 0;
        pm__free(&r->a, m->tab);
        m->tab = NULL;
        m->tabcap = 0;
    }
    pm__maintain_locked(r);
    pthread_mutex_unlock(&r->lock);
    while (a->remotes) {
        pm_cremote *rm = a->remotes;
        a->remotes = rm->next;
        remote_free(r, rm);
    }
    close(a->lockfd);
    pm__free(&r->a, a->dir);
    pm__free(&r->a, a);
}

void pm_cells_detach(pm_cells_attach_t *a)
{
    if (!a) return;
    pm_registry *r = a->reg;
    pthread_mutex_lock(&r->snap_lock);
    detach_locked(a);
    pthread_mutex_unlock(&r->snap_lock);
}

void pm__cells_attach_free_all(pm_registry *r)
{
    pthread_mutex_lock(&r->snap_lock);
    while (r->attaches) detach_locked(r->attaches);
    pthread_mutex_unlock(&r->snap_lock);
}
