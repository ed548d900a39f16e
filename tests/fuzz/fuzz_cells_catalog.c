/* libFuzzer target: the catalog of shared cell blocks (lib/cells_shared.c,
 * lib/cells_attach.c), the part of another process's files an attaching
 * registry parses. Records are decoded one after another as the attaching
 * side does; each decoded record is registered in a registry (names, label
 * text, bucket lists and ranges all come from the input). Decoding must
 * never crash, read past the input or return an unknown status; a record
 * that registers must come back from the encoder as bytes that decode to the
 * same family and series. */
#include "fuzz_common.h"

#include "internal/cells_internal.h"

#include <stdio.h>
#include <stdlib.h>

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_cells_catalog: %s\n", what);
    abort();
}

static int same_str(pm_ccat_str a, pm_ccat_str b)
{
    return a.n == b.n && (!a.n || !memcmp(a.p, b.p, a.n));
}

static void round_trip(pm_registry_t *r, const pm_ccat_rec *c, pm_series *s)
{
    unsigned char *buf = NULL;
    size_t len = 0, used = 0;
    if (pm__ccat_encode(&r->a, s, c->index, &buf, &len) != PM_OK) return; /* out of memory */
    pm_ccat_rec d;
    if (pm__ccat_decode(buf, len, &d, &used) != PM_OK || used != len)
        fail("encoder output does not decode");
    if (d.type != c->type || d.overflow != c->overflow || d.index != c->index)
        fail("type, overflow or index changed");
    if (!same_str(d.name, c->name) || !same_str(d.help, c->help) || d.nlabels != c->nlabels)
        fail("name, help or labels changed");
    for (uint32_t i = 0; i < d.nlabels; i++)
        if (!same_str(d.labels[i], c->labels[i]) ||
            (!c->overflow && !same_str(d.values[i], c->values[i])))
            fail("a label name or value changed");
    if (d.type == PM_TYPE_HISTOGRAM &&
        (d.nbounds != c->nbounds || memcmp(d.bounds, c->bounds, 8 * (size_t)d.nbounds)))
        fail("buckets changed");
    pm__free(&r->a, buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return 0;
    pm_registry_opts_set_self_metrics(o, 0);
    if (pm_registry_new(o, &r) != PM_OK) {
        pm_registry_opts_free(o);
        return 0;
    }
    pm_registry_opts_free(o);
    /* A copy the size of the input: reads past it are caught. */
    unsigned char *buf = malloc(size ? size : 1);
    if (!buf) abort();
    memcpy(buf, data, size);
    size_t at = 0;
    for (int n = 0; n < 64 && at < size; n++) {
        pm_ccat_rec c;
        size_t used = 0;
        pm_status_t st = pm__ccat_decode(buf + at, size - at, &c, &used);
        if (!known_status(st)) fail("unknown status");
        if (st != PM_OK) break;
        if (used < 4 || used > size - at) fail("used out of range");
        pm_series *s = NULL;
        st = pm__ccat_series(r, &c, &s);
        if (!known_status(st)) fail("unknown status from registration");
        if (st == PM_OK) {
            round_trip(r, &c, s);
            pm__series_release(s);
        }
        at += used;
    }
    free(buf);
    pm_registry_free(r);
    return 0;
}
