/* Allocation through the registry's hooks (zstd customMem style). */
#include "internal/pm_internal.h"

#include <stdlib.h>

static void *default_alloc(void *user, size_t n)
{
    (void)user;
    return malloc(n);
}

static void default_free(void *user, void *p)
{
    (void)user;
    free(p);
}

const pm_alloc_t pm__default_alloc = {default_alloc, default_free, NULL};

void *pm__alloc(const pm_alloc_t *a, size_t n) { return a->alloc(a->user, n ? n : 1); }

void *pm__calloc(const pm_alloc_t *a, size_t n)
{
    void *p = pm__alloc(a, n);
    if (p) memset(p, 0, n);
    return p;
}

void pm__free(const pm_alloc_t *a, void *p)
{
    if (p) a->free(a->user, p);
}

/* The hook gives no alignment promise beyond malloc's, so over-allocate and
 * keep the original pointer just below the aligned block. */
void *pm__alloc_aligned(const pm_alloc_t *a, size_t n)
{
    if (n > SIZE_MAX - PM_CACHELINE - sizeof(void *)) return NULL;
    unsigned char *raw = pm__alloc(a, n + PM_CACHELINE + sizeof(void *));
    if (!raw) return NULL;
    uintptr_t p = ((uintptr_t)raw + sizeof(void *) + PM_CACHELINE - 1) & ~(uintptr_t)(PM_CACHELINE - 1);
    memcpy((void *)(p - sizeof(void *)), &raw, sizeof raw);
    memset((void *)p, 0, n);
    return (void *)p;
}

void pm__free_aligned(const pm_alloc_t *a, void *p)
{
    if (!p) return;
    void *raw;
    memcpy(&raw, (unsigned char *)p - sizeof(void *), sizeof raw);
    pm__free(a, raw);
}

char *pm__strdup(const pm_alloc_t *a, const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = pm__alloc(a, n);
    if (d) memcpy(d, s, n);
    return d;
}

void pm_free(void *ptr) { free(ptr); }
