/* Cell blocks inside the library: the block itself (lib/cells.c), the files
 * of shared blocks (lib/cells_shared.c) and the attaching side that adds other
 * processes' blocks into a registry (lib/cells_attach.c). */
#ifndef PM_CELLS_INTERNAL_H
#define PM_CELLS_INTERNAL_H

#include "internal/pm_internal.h"

#include <perfmetrics/cells.h>

#define PM_CELLS_PAGE_BYTES (PM_CELLS_PAGE_DOUBLES * sizeof(double))
#define PM_CELLS_HCAP_MIN 32u
#define PM_CELLS_HCAP_MAX 4096u

typedef struct pm_cells_binding {
    pm_series *s; /* NULL: free entry */
    size_t index; /* first double (histograms: the region) */
    size_t slot;  /* shared and attached histograms: the double holding the region's index */
    uint32_t cap; /* histograms: count cells */
    uint8_t ok;   /* attached: the region was found valid at the last read */
} pm_cells_binding;

typedef struct pm_cshared pm_cshared;
typedef struct pm_cremote pm_cremote;

struct pm_cells {
    pm_registry *reg;
    struct pm_cells *next; /* r->cells, under r->lock */
    double **pages;
    size_t npages, cappages;
    size_t top;            /* next free double of the last page */
    pm_cells_binding *tab; /* open addressing by series address */
    size_t tabcap, nbound;
    pm_cshared *sh;     /* shared block: its files (writer side) */
    pm_cremote *remote; /* attached mirror: the block it copies (reader side) */
};

/* ------------------------------------------------------------ the files
 * "<pid>.<n>.pmcells": this header in the first 4 KiB, then page i at
 * PM_CSHARED_HDR_BYTES + i * PM_CELLS_PAGE_BYTES. The writer stores npages
 * after the file holds them and catlen after the catalog holds it (release);
 * gen is odd while a grow moves a histogram region. */
#define PM_CSHARED_MAGIC 0x31534c4c45434d50ull /* "PMCELLS1" */
#define PM_CSHARED_VERSION 1u
#define PM_CSHARED_HDR_BYTES 4096u

typedef struct pm_cshared_hdr {
    uint64_t magic;
    uint32_t version;
    uint32_t page_doubles;
    int32_t pid;
    uint32_t reserved;
    _Atomic uint64_t gen;
    _Atomic uint64_t npages;
    _Atomic uint64_t catlen;
} pm_cshared_hdr;

static inline off_t pm__cshared_page_offset(size_t page)
{
    return (off_t)(PM_CSHARED_HDR_BYTES + page * PM_CELLS_PAGE_BYTES);
}

/* A catalog record: what one binding is. Encoded by pm__ccat_encode, read
 * back by pm__ccat_decode; strings point into the decoded buffer (not NUL
 * terminated: lengths given). */
typedef struct pm_ccat_str {
    const char *p;
    uint32_t n;
} pm_ccat_str;

#define PM_CCAT_MAX_LABELS 64u
#define PM_CCAT_MAX_BOUNDS 4096u

typedef struct pm_ccat_rec {
    uint8_t type, overflow, exemplars;
    uint64_t index; /* counters and gauges: the cell; histograms: the slot */
    uint64_t max_series;
    double ttl, lowest, highest;
    uint32_t nbounds;
    const unsigned char *bounds; /* nbounds doubles, unaligned */
    pm_ccat_str name, help, unit;
    uint32_t nlabels;
    pm_ccat_str labels[PM_CCAT_MAX_LABELS], values[PM_CCAT_MAX_LABELS];
} pm_ccat_rec;

/* The record of series s bound at `index` into *out (pm__alloc'd, *len
 * bytes). PM_ENOMEM. */
pm_status_t pm__ccat_encode(const pm_alloc_t *a, const pm_series *s, uint64_t index,
                            unsigned char **out, size_t *len);
/* Decodes the record at the start of buf[0..n): PM_OK and *used bytes,
 * PM_ENOENT when the buffer holds only part of one (more may come), PM_EPARSE
 * when it is malformed (nothing after it can be trusted). */
pm_status_t pm__ccat_decode(const unsigned char *buf, size_t n, pm_ccat_rec *rec, size_t *used);
/* The family and series rec describes, found or registered in r (a
 * reference taken): PM_ENOMEM (retry later), or why it is rejected. */
pm_status_t pm__ccat_series(pm_registry *r, const pm_ccat_rec *rec, pm_series **out);

/* Writer side (cells_shared.c), under r->lock unless noted. */
pm_status_t pm__cshared_open(pm_registry *r, const char *dir, pm_cshared **out); /* no lock */
double *pm__cshared_page_new(pm_cshared *sh, size_t page);
pm_status_t pm__cshared_catalog(pm_cshared *sh, const pm_alloc_t *a, const pm_series *s,
                                uint64_t index);
void pm__cshared_grow_begin(pm_cshared *sh);
void pm__cshared_grow_end(pm_cshared *sh);
void pm__cshared_close(pm_cshared *sh, double **pages, size_t npages); /* no lock */
/* dev/ino of the block's page file, to recognise it from the attaching side. */
void pm__cshared_id(const pm_cshared *sh, uint64_t *dev, uint64_t *ino);

/* cells.c helpers shared with the attaching side. */
pm_status_t pm__cells_tab_reserve(pm_cells_t *b);
pm_cells_binding *pm__cells_tab_insert(pm_cells_t *b, pm_series *s);
void pm__cells_fold_locked(pm_cells_t *b, pm_cells_binding *e); /* gauges: nothing */
void pm__cells_unlink_locked(pm_registry *r, pm_cells_t *b);    /* off r->cells */
/* Folds e while b is still on r->cells, holding the series' total against
 * rounding (a counter's value, a histogram's sum); e then counts no more. */
void pm__cells_fold_held_locked(pm_cells_t *b, pm_cells_binding *e);
/* The doubles a histogram region of cap count cells takes. */
size_t pm__cells_h_doubles(uint32_t nbounds, uint32_t cap);

static inline double pm__cell_load(const double *p)
{
    double v;
    __atomic_load(p, &v, __ATOMIC_RELAXED);
    return v;
}

static inline void pm__cell_store(double *p, double v) { __atomic_store(p, &v, __ATOMIC_RELAXED); }

#endif
