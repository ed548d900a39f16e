/* pm_buf: the growable byte buffer formats write into, and its gzip encoding.
 * Not from the registry allocator, on purpose: a buffer outlives snapshots
 * and registries and is handed to HTTP servers that free it later.
 *
 * Small buffers are malloc's. From PM__BUF_MAP_MIN on, a buffer is an
 * anonymous mapping of its own, 2 MiB-aligned and advised to use huge
 * pages, and grows by moving its pages (mremap) rather than copying them:
 * glibc maps anything over 32 MB afresh on every growth and every buffer,
 * and first touch of 4 KiB pages is most of what formatting 1,000,000
 * series into a buffer costs (12,800 faults for 52 MB; a 2 MiB page is one
 * fault for 512 of them). */
#include "internal/format_internal.h"

#include "pm_config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#if PM_HAVE_ZLIB
#include <limits.h>
/* Makes next_in a pointer to const, so src's bytes need no cast. */
#define ZLIB_CONST
#include <zlib.h>
#endif

/* First allocation: large enough for a small exposition without regrowth. */
#define PM__BUF_MIN_CAP 256u
/* Huge-page size, and the capacity from which a buffer is its own mapping. */
#define PM__BUF_HUGE ((size_t)2 << 20)
#define PM__BUF_MAP_MIN ((size_t)4 << 20)

/* A fresh mapping of cap bytes (a multiple of PM__BUF_HUGE) at a
 * PM__BUF_HUGE boundary, or NULL. */
static char *map_aligned(size_t cap)
{
    size_t len = cap + PM__BUF_HUGE;
    char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    char *q = (char *)(((uintptr_t)p + PM__BUF_HUGE - 1) & ~(uintptr_t)(PM__BUF_HUGE - 1));
    size_t head = (size_t)(q - p), tail = len - head - cap;
    if (head) munmap(p, head);
    if (tail) munmap(q + cap, tail);
#ifdef MADV_HUGEPAGE
    madvise(q, cap, MADV_HUGEPAGE); /* advice: 4 KiB pages where it is not taken */
#endif
    return q;
}

/* Moves b's bytes into a mapping of cap bytes. All of the old capacity
 * moves, as realloc would move it: a writer (lib/format.c) may have bytes
 * past b->len that it has not committed yet. */
static pm_status_t grow_mapped(pm_buf_t *b, size_t cap)
{
    char *q = map_aligned(cap);
    if (!q) return PM_ENOMEM;
    if (!b->data) {
        q[0] = '\0';
    } else if (!b->mapped) {
        memcpy(q, b->data, b->cap);
        free(b->data);
    } else if (mremap(b->data, b->cap, b->cap, MREMAP_MAYMOVE | MREMAP_FIXED, q) == MAP_FAILED) {
        memcpy(q, b->data, b->cap); /* the pages could not move: copy them */
        munmap(b->data, b->cap);
    }
    b->data = q;
    b->cap = cap;
    b->mapped = true;
    return PM_OK;
}

static void data_free(pm_buf_t *b)
{
    if (b->mapped)
        munmap(b->data, b->cap);
    else
        free(b->data);
}

pm_status_t pm_buf_new(pm_buf_t **out)
{
    if (!out) return PM_EINVAL;
    *out = NULL;
    pm_buf_t *b = calloc(1, sizeof *b);
    if (!b) return PM_ENOMEM;
    *out = b;
    return PM_OK;
}

void pm_buf_free(pm_buf_t *b)
{
    if (!b) return;
    data_free(b);
    free(b);
}

const char *pm_buf_data(const pm_buf_t *b)
{
    /* An unallocated buffer still reads as an empty string. */
    if (!b || !b->data) return "";
    return b->data;
}

size_t pm_buf_len(const pm_buf_t *b) { return b ? b->len : 0; }

void pm_buf_reset(pm_buf_t *b)
{
    if (!b) return;
    b->len = 0;
    if (b->data) b->data[0] = '\0';
}

pm_status_t pm__buf_reserve(pm_buf_t *b, size_t used, size_t extra)
{
    /* need = used + extra + 1 (the NUL), checked for wrap-around. Objects
     * stay below PTRDIFF_MAX so that pointer differences within the buffer
     * (the writer's window arithmetic) are always defined. */
    const size_t max = (size_t)PTRDIFF_MAX;
    if (extra >= max || used >= max - extra) return PM_ENOMEM;
    size_t need = used + extra + 1;
    if (need <= b->cap) return PM_OK;
    size_t cap = b->cap < PM__BUF_MIN_CAP ? PM__BUF_MIN_CAP : b->cap;
    while (cap < need) cap = cap > max / 2 ? max : cap * 2;
    if (b->mapped || cap >= PM__BUF_MAP_MIN) {
        if (cap > max - PM__BUF_HUGE) return PM_ENOMEM;
        return grow_mapped(b, (cap + PM__BUF_HUGE - 1) & ~(PM__BUF_HUGE - 1));
    }
    char *p = realloc(b->data, cap);
    if (!p) return PM_ENOMEM; /* realloc left b->data intact */
    if (!b->data) p[0] = '\0';
    b->data = p;
    b->cap = cap;
    return PM_OK;
}

pm_status_t pm_buf_append(pm_buf_t *b, const void *data, size_t len)
{
    if (!b || (!data && len)) return PM_EINVAL;
    if (len == 0) return PM_OK;
    /* Appending a part of the buffer to itself must survive the realloc. */
    const char *src = data;
    int self = b->data && src >= b->data && src < b->data + b->cap;
    size_t self_off = self ? (size_t)(src - b->data) : 0;
    pm_status_t st = pm__buf_reserve(b, b->len, len);
    if (st != PM_OK) return st;
    if (self) src = b->data + self_off;
    memmove(b->data + b->len, src, len);
    b->len += len;
    b->data[b->len] = '\0';
    return PM_OK;
}

int pm_has_zlib(void) { return PM_HAVE_ZLIB ? 1 : 0; }

pm_status_t pm_buf_gzip(const pm_buf_t *src, pm_buf_t *dst)
{
    return pm__buf_gzip_level(src, dst, -1); /* zlib's default, level 6 */
}

#if PM_HAVE_ZLIB
pm_status_t pm__buf_gzip_level(const pm_buf_t *src, pm_buf_t *dst, int level)
{
    if (!src || !dst || src == dst || level < -1 || level > 9) return PM_EINVAL;
    const size_t start = dst->len;
    const unsigned char *in = (const unsigned char *)pm_buf_data(src);
    size_t in_left = src->len;

    z_stream zs;
    memset(&zs, 0, sizeof zs);
    /* windowBits 15 + 16 selects the gzip wrapper (RFC 1952) instead of zlib's. */
    int zrc = deflateInit2(&zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
    if (zrc != Z_OK) return zrc == Z_MEM_ERROR ? PM_ENOMEM : PM_EIO;

    /* deflateBound is an upper bound for a single deflate(Z_FINISH); reserve
     * it so the common case writes once. The loop still copes with less. */
    uLong bound = deflateBound(&zs, (uLong)(in_left > ULONG_MAX ? ULONG_MAX : in_left));
    pm_status_t st = pm__buf_reserve(dst, dst->len, (size_t)bound);
    size_t out_len = dst->len;
    while (st == PM_OK) {
        /* avail_in/avail_out are 32-bit: feed large buffers in slices. */
        uInt in_now = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
        size_t room = dst->cap - 1 - out_len;
        if (room == 0) {
            st = pm__buf_reserve(dst, out_len, 4096);
            continue;
        }
        uInt out_now = room > UINT_MAX ? UINT_MAX : (uInt)room;
        zs.next_in = in;
        zs.avail_in = in_now;
        zs.next_out = (Bytef *)dst->data + out_len;
        zs.avail_out = out_now;
        int flush = in_now == in_left ? Z_FINISH : Z_NO_FLUSH;
        zrc = deflate(&zs, flush);
        size_t consumed = (size_t)(in_now - zs.avail_in);
        in += consumed;
        in_left -= consumed;
        out_len += (size_t)(out_now - zs.avail_out);
        if (zrc == Z_STREAM_END) break;
        /* Z_BUF_ERROR only means "no progress"; with room and input that
         * would loop forever, so treat a stall as an error. */
        if ((zrc != Z_OK && zrc != Z_BUF_ERROR) ||
            (zrc == Z_BUF_ERROR && consumed == 0 && zs.avail_out == out_now))
            st = zrc == Z_MEM_ERROR ? PM_ENOMEM : PM_EIO;
    }
    deflateEnd(&zs);
    if (st != PM_OK) {
        /* No partial state: dst keeps its old content and length. */
        dst->len = start;
        if (dst->data) dst->data[start] = '\0';
        return st;
    }
    dst->len = out_len;
    dst->data[out_len] = '\0';
    return PM_OK;
}
#else
pm_status_t pm__buf_gzip_level(const pm_buf_t *src, pm_buf_t *dst, int level)
{
    if (!src || !dst || src == dst || level < -1 || level > 9) return PM_EINVAL;
    return PM_EUNSUPPORTED;
}
#endif
