/* libFuzzer target: arbitrary bytes as metric names, help, units, label names
 * and label values, through registration, series look-up and the three text
 * formats. Whatever the input: no crash, no undefined behaviour, every status
 * is a known code, out-parameters follow the contract (set on PM_OK, NULL on
 * error), the registry stays within its cardinality limit, and formatted
 * output never contains a NUL byte.
 *
 * Input layout: one flag byte, then NUL-separated fields:
 *   flags: bits 0-1 type (0 counter, 1 gauge, 2 histogram, 3 counter via the
 *          convenience constructors), bits 2-3 label count, bit 4 set a unit,
 *          bit 5 snapshot and format, bit 6 register the family twice.
 *   fields: name, unit, help, label names..., then label value tuples. */
#include "fuzz_common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FIELDS 64
#define MAX_SERIES 4
#define MAX_LOOKUPS 24

static void fail(const char *what, int status)
{
    fprintf(stderr, "fuzz_names: %s (status %d %s)\n", what, status, pm_status_name(status));
    abort();
}

/* Checks a constructor-like call: a known status, and *out set iff PM_OK. */
static void check_out(const char *what, int st, const void *out)
{
    if (!known_status(st)) fail(what, st);
    if ((st == PM_OK) != (out != NULL)) fail("out-parameter does not match the status", st);
}

static void check_format(const pm_snapshot_t *s, pm_buf_t *buf)
{
    static const pm_format_t fmts[] = {PM_FORMAT_PROMETHEUS, PM_FORMAT_OPENMETRICS,
                                       PM_FORMAT_JSON};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        pm_buf_reset(buf);
        int st = pm_format(s, fmts[i], buf);
        if (st != PM_OK && st != PM_ENOMEM) fail("pm_format", st);
        if (st == PM_OK && memchr(pm_buf_data(buf), '\0', pm_buf_len(buf)))
            fail("formatted output contains a NUL byte", st);
    }
}

static void lookup(pm_family_t *f, pm_type_t type, const char *const *values, size_t n)
{
    int st;
    if (type == PM_TYPE_COUNTER) {
        pm_counter_t *c = NULL;
        st = pm_counter_get(f, values, n, &c);
        check_out("pm_counter_get", st, c);
        pm_counter_inc(c);
        pm_counter_release(c);
        st = pm_counter_add_labeled(f, values, n, 1.5);
    } else if (type == PM_TYPE_GAUGE) {
        pm_gauge_t *g = NULL;
        st = pm_gauge_get(f, values, n, &g);
        check_out("pm_gauge_get", st, g);
        pm_gauge_set(g, -2.0);
        pm_gauge_release(g);
        st = pm_gauge_set_labeled(f, values, n, 3.0);
    } else {
        pm_histogram_t *h = NULL;
        st = pm_histogram_get(f, values, n, &h);
        check_out("pm_histogram_get", st, h);
        pm_histogram_observe(h, 0.25);
        pm_histogram_release(h);
        st = pm_histogram_observe_labeled(f, values, n, 1e-3);
    }
    if (!known_status(st)) fail("labeled one-call form", st);

    /* The wrong type and the wrong label count must be refused cleanly. */
    pm_gauge_t *g = NULL;
    if (type != PM_TYPE_GAUGE) {
        st = pm_gauge_get(f, values, n, &g);
        if (st == PM_OK || g) fail("pm_gauge_get on a non-gauge family succeeded", st);
    }
    pm_counter_t *c = NULL;
    st = pm_counter_get(f, values, n ? n - 1 : 1, &c);
    if (st == PM_OK || c) fail("pm_counter_get with a wrong label count succeeded", st);
    if (!known_status(st)) fail("pm_counter_get with a wrong label count", st);
}

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    unsigned flags = data[0];

    /* Split the rest into NUL-terminated fields (a copy, so every field ends). */
    char *buf = malloc(size);
    if (!buf) return 0;
    memcpy(buf, data + 1, size - 1);
    buf[size - 1] = '\0';
    const char *field[MAX_FIELDS];
    size_t nf = 0;
    for (size_t i = 0; i < size && nf < MAX_FIELDS;) {
        field[nf++] = buf + i;
        i += strlen(buf + i) + 1;
    }
    const char *name = nf > 0 ? field[0] : "";
    const char *unit = nf > 1 ? field[1] : "";
    const char *help = nf > 2 ? field[2] : "";
    size_t rest = nf > 3 ? nf - 3 : 0;
    size_t nlabels = (flags >> 2) & 3;
    if (nlabels > rest) nlabels = rest;
    const char *const *label_names = field + 3;
    const char *const *values = field + 3 + nlabels;
    size_t nvalues = rest - nlabels;

    pm_registry_opts_t *ro = NULL;
    pm_registry_t *r = NULL;
    pm_family_opts_t *fo = NULL;
    pm_buf_t *out = NULL;
    pm_snapshot_t *snap = NULL;
    int st;

    if (pm_registry_opts_new(&ro) != PM_OK) goto done;
    pm_registry_opts_set_self_metrics(ro, (flags >> 7) & 1);
    pm_registry_opts_set_stripes(ro, 2);
    st = pm_registry_new(ro, &r);
    check_out("pm_registry_new", st, r);
    if (st != PM_OK) goto done;

    unsigned kind = flags & 3;
    pm_type_t type = kind == 1 ? PM_TYPE_GAUGE : kind == 2 ? PM_TYPE_HISTOGRAM : PM_TYPE_COUNTER;

    if (kind == 3) {
        /* Convenience constructors: the name and help alone. */
        pm_counter_t *c = NULL;
        st = pm_counter_new(r, name, help, &c);
        check_out("pm_counter_new", st, c);
        pm_counter_add(c, 2.0);
        pm_gauge_t *g = NULL;
        st = pm_gauge_new(r, name, help, &g);
        check_out("pm_gauge_new", st, g);
        if (c && g) fail("one name registered as a counter and a gauge", st);
        pm_histogram_t *h = NULL;
        st = pm_histogram_new(r, unit, help, &h);
        check_out("pm_histogram_new", st, h);
        pm_histogram_observe(h, 0.5);
    } else {
        st = pm_family_opts_new(&fo);
        check_out("pm_family_opts_new", st, fo);
        if (st != PM_OK) goto done;
        if ((st = pm_family_opts_set_max_series(fo, MAX_SERIES)) != PM_OK)
            fail("pm_family_opts_set_max_series", st);
        if (flags & 0x10) {
            st = pm_family_opts_set_unit(fo, unit);
            if (!known_status(st)) fail("pm_family_opts_set_unit", st);
        }
        st = pm_family_opts_set_labels(fo, label_names, nlabels);
        if (!known_status(st)) fail("pm_family_opts_set_labels", st);
        if (st != PM_OK) nlabels = 0; /* options unchanged on error: no labels */

        pm_family_t *f = NULL;
        st = pm_family_new(r, type, name, help, fo, &f);
        check_out("pm_family_new", st, f);
        if (f && (flags & 0x40)) {
            pm_family_t *again = NULL;
            st = pm_family_new(r, type, name, help, fo, &again);
            if (st != PM_OK || again != f) fail("registering the same family twice", st);
        }
        if (f) {
            size_t lookups = 0;
            if (nlabels == 0) {
                lookup(f, type, NULL, 0);
            } else {
                for (size_t i = 0; i + nlabels <= nvalues && lookups < MAX_LOOKUPS;
                     i += nlabels, lookups++)
                    lookup(f, type, values + i, nlabels);
            }
            if (pm_family_series_count(f) > MAX_SERIES + 1)
                fail("cardinality limit exceeded", (int)pm_family_series_count(f));
            if (nlabels && nvalues >= nlabels) {
                st = pm_family_remove(f, values, nlabels);
                if (!known_status(st)) fail("pm_family_remove", st);
            }
        }
    }

    if (flags & 0x20) {
        st = pm_snapshot_new(r, &snap);
        check_out("pm_snapshot_new", st, snap);
        if (snap && pm_buf_new(&out) == PM_OK) check_format(snap, out);
    }

done:
    pm_buf_free(out);
    pm_snapshot_release(snap);
    pm_family_opts_free(fo);
    pm_registry_free(r);
    pm_registry_opts_free(ro);
    free(buf);
    return 0;
}
