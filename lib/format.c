/* Format dispatch (pm_format, pm_format_write, pm_format_content_type) and the
 * pieces the three formats share: the output writer, number formatting,
 * escaping and per-family label/bucket texts. Formatters read snapshots only. */
#include "internal/format_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ writer */

/* Initial room for buffer mode: avoids a few early doublings for the common
 * exposition sizes without over-allocating for a tiny one. */
#define PM__BUF_INITIAL 4096u

pm_status_t pm__writer_init_buf(pm__writer_t *w, pm_buf_t *b)
{
    w->status = PM_OK;
    w->buf = b;
    w->buf_start = b->len;
    w->fn = NULL;
    w->user = NULL;
    pm_status_t st = pm__buf_reserve(b, b->len, PM__BUF_INITIAL);
    if (st != PM_OK) return st;
    /* Output goes straight into the buffer past its committed length; the
     * last byte of capacity stays free for the NUL written on commit. */
    w->base = b->data;
    w->p = b->data + b->len;
    w->end = b->data + b->cap - 1;
    return PM_OK;
}

pm_status_t pm__writer_init_stream(pm__writer_t *w, pm_write_fn fn, void *user)
{
    w->status = PM_OK;
    w->buf = NULL;
    w->buf_start = 0;
    w->fn = fn;
    w->user = user;
    /* Heap, not stack: pm_format_write may run on a host thread with a small stack. */
    w->base = malloc(PM__STAGE_SIZE);
    if (!w->base) return PM_ENOMEM;
    w->p = w->base;
    w->end = w->base + PM__STAGE_SIZE;
    return PM_OK;
}

static void pm__w_to_scratch(pm__writer_t *w)
{
    w->p = w->scratch;
    w->end = w->scratch + sizeof w->scratch;
}

void pm__w_make_room(pm__writer_t *w, size_t n)
{
    if (w->status == PM_OK) {
        if (w->buf) {
            size_t used = (size_t)(w->p - w->buf->data);
            pm_status_t st = pm__buf_reserve(w->buf, used, n);
            if (st == PM_OK) {
                w->base = w->buf->data;
                w->p = w->base + used;
                w->end = w->base + w->buf->cap - 1;
                return;
            }
            w->status = st;
        } else {
            /* n <= PM__W_SCRATCH < PM__STAGE_SIZE, so an empty stage fits it. */
            size_t len = (size_t)(w->p - w->base);
            if (len == 0 || w->fn(w->user, w->base, len) == 0) {
                w->p = w->base;
                return;
            }
            w->status = PM_ECALLBACK;
        }
    }
    pm__w_to_scratch(w);
}

void pm__w_bytes_slow(pm__writer_t *w, const char *s, size_t n)
{
    if (w->status != PM_OK) {
        /* Output is being discarded; keep the window valid for inline writers. */
        pm__w_to_scratch(w);
        return;
    }
    if (w->buf) {
        /* Buffer mode grows once to fit the whole run. */
        pm__w_make_room(w, n);
        if (w->status != PM_OK) return;
        memcpy(w->p, s, n);
        w->p += n;
        return;
    }
    /* Stream mode: fill the stage to the brim before each flush, so every
     * chunk but the last is exactly PM__STAGE_SIZE bytes. */
    while (n && w->status == PM_OK) {
        size_t room = (size_t)(w->end - w->p);
        if (room == 0) {
            pm__w_make_room(w, 1);
            continue;
        }
        size_t k = room < n ? room : n;
        memcpy(w->p, s, k);
        w->p += k;
        s += k;
        n -= k;
    }
}

pm_status_t pm__writer_finish(pm__writer_t *w)
{
    if (w->buf) {
        pm_buf_t *b = w->buf;
        if (w->status == PM_OK) {
            b->len = (size_t)(w->p - b->data);
        } else {
            b->len = w->buf_start; /* no partial output on error */
        }
        if (b->data) b->data[b->len] = '\0';
        return w->status;
    }
    if (w->status == PM_OK && w->p > w->base &&
        w->fn(w->user, w->base, (size_t)(w->p - w->base)) != 0)
        w->status = PM_ECALLBACK;
    free(w->base);
    w->base = w->p = w->end = NULL;
    return w->status;
}

/* ----------------------------------------------------------------- numbers */

static const char pm__digit_pairs[201] = "00010203040506070809"
                                         "10111213141516171819"
                                         "20212223242526272829"
                                         "30313233343536373839"
                                         "40414243444546474849"
                                         "50515253545556575859"
                                         "60616263646566676869"
                                         "70717273747576777879"
                                         "80818283848586878889"
                                         "90919293949596979899";

size_t pm__fmt_u64(char *out, uint64_t v)
{
    /* Two digits per division: counters are mostly integers, and this is the
     * hot path of every exposition. */
    char tmp[20];
    char *q = tmp + sizeof tmp;
    while (v >= 100) {
        unsigned r = (unsigned)(v % 100);
        v /= 100;
        q -= 2;
        memcpy(q, pm__digit_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        q -= 2;
        memcpy(q, pm__digit_pairs + 2 * v, 2);
    } else {
        *--q = (char)('0' + v);
    }
    size_t n = (size_t)(tmp + sizeof tmp - q);
    memcpy(out, q, n);
    return n;
}

/* Rewrites printf output so it does not depend on the C locale: any run of
 * bytes that is not a digit, sign or exponent mark is the locale's decimal
 * point (possibly multibyte) and becomes '.'. out may equal in. */
static size_t pm__c_locale_number(char *out, const char *in)
{
    size_t n = 0;
    int in_point = 0;
    for (; *in; in++) {
        char c = *in;
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
            out[n++] = c;
            in_point = 0;
        } else if (!in_point) {
            out[n++] = '.';
            in_point = 1;
        }
    }
    out[n] = '\0';
    return n;
}

static size_t pm__fmt_nonfinite(char *out, double v)
{
    const char *t = isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf";
    size_t n = strlen(t);
    memcpy(out, t, n + 1);
    return n;
}

size_t pm__fmt_double(char *out, double v)
{
    if (!isfinite(v)) return pm__fmt_nonfinite(out, v);
    /* Every integer-valued double below 2^63 prints exactly as digits; the
     * range test comes first because the cast is undefined outside it.
     * -0.0 prints as "0" (equal as a value). */
    if (v > -9223372036854775808.0 && v < 9223372036854775808.0) {
        int64_t i = (int64_t)v;
        if ((double)i == v) {
            size_t n;
            if (i < 0) {
                out[0] = '-';
                n = 1 + pm__fmt_u64(out + 1, (uint64_t)(-(i + 1)) + 1u);
            } else {
                n = pm__fmt_u64(out, (uint64_t)i);
            }
            out[n] = '\0';
            return n;
        }
    }
    /* Shortest of 15/16/17 significant digits that reads back to the same
     * double (17 always does). 15 first: most decimal inputs (0.1, 2.5e-3)
     * round-trip there and print without binary noise. */
    char tmp[48];
    for (int prec = 15;; prec++) {
        snprintf(tmp, sizeof tmp, "%.*g", prec, v);
        if (prec == 17 || strtod(tmp, NULL) == v) break;
    }
    return pm__c_locale_number(out, tmp);
}

size_t pm__fmt_canonical(char *out, double v)
{
    if (!isfinite(v)) return pm__fmt_nonfinite(out, v);
    if (v == 0) {
        const char *t = signbit(v) ? "-0.0" : "0.0";
        size_t n = strlen(t);
        memcpy(out, t, n + 1);
        return n;
    }
    /* Shortest digit string that round-trips (what Go's strconv produces;
     * %.{P-1}e gives the correctly rounded P-digit one). */
    char tmp[48];
    for (int prec = 1;; prec++) {
        snprintf(tmp, sizeof tmp, "%.*e", prec - 1, v);
        if (prec == 17 || strtod(tmp, NULL) == v) break;
    }
    size_t elen = pm__c_locale_number(tmp, tmp);
    const char *q = tmp;
    int neg = *q == '-';
    if (neg) q++;
    char digits[24];
    int nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') digits[nd++] = *q;
    int exp = *q == 'e' ? atoi(q + 1) : 0;
    /* Go's %g with shortest precision: exponent form when exp < -4 or
     * exp >= 6 ("1e-05", "1e+06"); C's %e text is then exactly Go's. */
    if (exp < -4 || exp >= 6) {
        memcpy(out, tmp, elen + 1);
        return elen;
    }
    size_t n = 0;
    if (neg) out[n++] = '-';
    int dp = exp + 1; /* digits before the decimal point */
    if (dp <= 0) {
        out[n++] = '0';
        out[n++] = '.';
        for (int i = 0; i < -dp; i++) out[n++] = '0';
        memcpy(out + n, digits, (size_t)nd);
        n += (size_t)nd;
    } else if (dp >= nd) {
        memcpy(out + n, digits, (size_t)nd);
        n += (size_t)nd;
        for (int i = nd; i < dp; i++) out[n++] = '0';
        out[n++] = '.'; /* the OpenMetrics ".0" that marks a float */
        out[n++] = '0';
    } else {
        memcpy(out + n, digits, (size_t)dp);
        n += (size_t)dp;
        out[n++] = '.';
        memcpy(out + n, digits + dp, (size_t)(nd - dp));
        n += (size_t)(nd - dp);
    }
    out[n] = '\0';
    return n;
}

void pm__w_u64(pm__writer_t *w, uint64_t v)
{
    char *p = pm__w_reserve(w, 20);
    w->p = p + pm__fmt_u64(p, v);
}

void pm__w_double(pm__writer_t *w, double v)
{
    char *p = pm__w_reserve(w, PM__NUM_MAX);
    w->p = p + pm__fmt_double(p, v);
}

/* ---------------------------------------------------------------- escaping */

/* Escape tables: 0 = copy as is, PM__ESC_END = the terminating NUL, 'u' =
 * \u00XX, anything else = backslash followed by that letter. One scanner
 * serves every format, copying unescaped runs with a single memcpy. */
#define PM__ESC_END 0xFF

static const unsigned char pm__esc_label[256] = {
    [0] = PM__ESC_END, ['\\'] = '\\', ['"'] = '"', ['\n'] = 'n'};

static const unsigned char pm__esc_help[256] = {[0] = PM__ESC_END, ['\\'] = '\\', ['\n'] = 'n'};

static const unsigned char pm__esc_json[256] = {
    [0] = PM__ESC_END, [0x01] = 'u', [0x02] = 'u', [0x03] = 'u', [0x04] = 'u', [0x05] = 'u',
    [0x06] = 'u',      [0x07] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', [0x0B] = 'u',
    ['\f'] = 'f',      ['\r'] = 'r', [0x0E] = 'u', [0x0F] = 'u', [0x10] = 'u', [0x11] = 'u',
    [0x12] = 'u',      [0x13] = 'u', [0x14] = 'u', [0x15] = 'u', [0x16] = 'u', [0x17] = 'u',
    [0x18] = 'u',      [0x19] = 'u', [0x1A] = 'u', [0x1B] = 'u', [0x1C] = 'u', [0x1D] = 'u',
    [0x1E] = 'u',      [0x1F] = 'u', ['"'] = '"',  ['\\'] = '\\'};

static void pm__w_escaped(pm__writer_t *w, const char *s, const unsigned char *tab)
{
    static const char hex[] = "0123456789abcdef";
    if (!s) return; /* a missing string prints as "" */
    const char *run = s;
    for (;;) {
        unsigned char t = tab[(unsigned char)*s];
        if (t == 0) {
            s++;
            continue;
        }
        if (s > run) pm__w_bytes(w, run, (size_t)(s - run));
        if (t == PM__ESC_END) return;
        if (t == 'u') {
            unsigned char c = (unsigned char)*s;
            char *p = pm__w_reserve(w, 6);
            memcpy(p, "\\u00", 4);
            p[4] = hex[c >> 4];
            p[5] = hex[c & 15];
            w->p = p + 6;
        } else {
            char *p = pm__w_reserve(w, 2);
            p[0] = '\\';
            p[1] = (char)t;
            w->p = p + 2;
        }
        run = ++s;
    }
}

void pm__w_escaped_label(pm__writer_t *w, const char *s) { pm__w_escaped(w, s, pm__esc_label); }
void pm__w_escaped_help(pm__writer_t *w, const char *s) { pm__w_escaped(w, s, pm__esc_help); }

void pm__w_json_string(pm__writer_t *w, const char *s)
{
    pm__w_char(w, '"');
    pm__w_escaped(w, s, pm__esc_json);
    pm__w_char(w, '"');
}

/* ------------------------------------------------------- labels and bounds */

static int pm__grow(void **p, size_t *cap, size_t want, size_t elem)
{
    if (want <= *cap) return 1;
    if (want > SIZE_MAX / elem) return 0;
    void *np = realloc(*p, want * elem);
    if (!np) return 0;
    *p = np;
    *cap = want;
    return 1;
}

pm_status_t pm__labelset_prepare(pm__labelset_t *ls, const pm_snap_family_t *f)
{
    size_t n = pm_snap_family_label_count(f);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = pm_snap_family_label_name(f, i);
        size_t len = name ? strlen(name) : 0;
        /* `",` + name + `="`; checked although names are short by contract */
        if (len > SIZE_MAX - 4 - total) return PM_ENOMEM;
        total += len + 4;
    }
    void *text = ls->text, *off = ls->off;
    if (!pm__grow(&text, &ls->text_cap, total ? total : 1, 1)) return PM_ENOMEM;
    ls->text = text;
    if (!pm__grow(&off, &ls->off_cap, n + 1, sizeof(size_t))) return PM_ENOMEM;
    ls->off = off;
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *name = pm_snap_family_label_name(f, i);
        size_t len = name ? strlen(name) : 0;
        ls->off[i] = pos;
        if (i == 0) {
            ls->text[pos++] = '{';
        } else {
            ls->text[pos++] = '"';
            ls->text[pos++] = ',';
        }
        if (len) memcpy(ls->text + pos, name, len);
        pos += len;
        ls->text[pos++] = '=';
        ls->text[pos++] = '"';
    }
    ls->off[n] = pos;
    ls->n = n;
    return PM_OK;
}

void pm__labelset_free(pm__labelset_t *ls)
{
    free(ls->text);
    free(ls->off);
    memset(ls, 0, sizeof *ls);
}

pm_status_t pm__bounds_prepare(pm__bounds_t *b, const pm_snap_family_t *f)
{
    size_t n = pm_snap_family_bucket_count(f);
    void *item = b->item;
    if (!pm__grow(&item, &b->cap, n, sizeof *b->item)) return PM_ENOMEM;
    b->item = item;
    for (size_t i = 0; i < n; i++)
        b->item[i].len = pm__fmt_canonical(b->item[i].text, pm_snap_family_bucket_bound(f, i));
    b->n = n;
    return PM_OK;
}

void pm__bounds_free(pm__bounds_t *b)
{
    free(b->item);
    memset(b, 0, sizeof *b);
}

static int pm__w_labels_open(pm__writer_t *w, const pm__labelset_t *ls, const pm_snap_series_t *s)
{
    /* The overflow series stands for many label tuples: its "" values would
     * be misleading, so it gets one label of its own. */
    if (pm_snap_series_is_overflow(s)) {
        PM__W_LIT(w, "{pm_overflow=\"true");
        return 1;
    }
    if (ls->n == 0) return 0;
    for (size_t i = 0; i < ls->n; i++) {
        pm__w_bytes(w, ls->text + ls->off[i], ls->off[i + 1] - ls->off[i]);
        pm__w_escaped_label(w, pm_snap_series_label_value(s, i));
    }
    return 1;
}

void pm__w_sample_head(pm__writer_t *w, const char *name, size_t name_len, const char *suffix,
                       size_t suffix_len, const pm__labelset_t *ls, const pm_snap_series_t *s,
                       const char *le, size_t le_len)
{
    pm__w_bytes(w, name, name_len);
    if (suffix_len) pm__w_bytes(w, suffix, suffix_len);
    int open = pm__w_labels_open(w, ls, s);
    if (le) {
        if (open)
            PM__W_LIT(w, "\",le=\"");
        else
            PM__W_LIT(w, "{le=\"");
        pm__w_bytes(w, le, le_len);
        PM__W_LIT(w, "\"} ");
    } else if (open) {
        PM__W_LIT(w, "\"} ");
    } else {
        pm__w_char(w, ' ');
    }
}

void pm__w_meta_head(pm__writer_t *w, const char *keyword, const char *name, size_t name_len,
                     const char *suffix, size_t suffix_len)
{
    PM__W_LIT(w, "# ");
    pm__w_str(w, keyword);
    pm__w_char(w, ' ');
    pm__w_bytes(w, name, name_len);
    if (suffix_len) pm__w_bytes(w, suffix, suffix_len);
    pm__w_char(w, ' ');
}

/* ---------------------------------------------------------------- dispatch */

typedef pm_status_t (*pm__format_fn)(const pm_snapshot_t *s, pm__writer_t *w);

static pm__format_fn pm__format_lookup(pm_format_t fmt)
{
    switch (fmt) {
    case PM_FORMAT_PROMETHEUS:
        return pm__format_prometheus;
    case PM_FORMAT_OPENMETRICS:
        return pm__format_openmetrics;
    case PM_FORMAT_JSON:
        return pm__format_json;
    }
    return NULL; /* a value outside the enum, e.g. from a binding */
}

/* Runs a formatter and folds its own failure (e.g. PM_ENOMEM for its
 * per-family tables) into the writer, so finish discards partial output. */
static pm_status_t pm__format_run(const pm_snapshot_t *s, pm__format_fn fn, pm__writer_t *w)
{
    pm_status_t st = fn(s, w);
    if (st != PM_OK && w->status == PM_OK) w->status = st;
    return pm__writer_finish(w);
}

pm_status_t pm_format(const pm_snapshot_t *s, pm_format_t fmt, pm_buf_t *b)
{
    pm__format_fn fn = pm__format_lookup(fmt);
    if (!s || !b || !fn) return PM_EINVAL;
    pm__writer_t w;
    pm_status_t st = pm__writer_init_buf(&w, b);
    if (st != PM_OK) return st;
    return pm__format_run(s, fn, &w);
}

pm_status_t pm_format_write(const pm_snapshot_t *s, pm_format_t fmt, pm_write_fn write_fn,
                            void *user)
{
    pm__format_fn fn = pm__format_lookup(fmt);
    if (!s || !write_fn || !fn) return PM_EINVAL;
    pm__writer_t w;
    pm_status_t st = pm__writer_init_stream(&w, write_fn, user);
    if (st != PM_OK) return st;
    return pm__format_run(s, fn, &w);
}

const char *pm_format_content_type(pm_format_t fmt)
{
    switch (fmt) {
    case PM_FORMAT_PROMETHEUS:
        return "text/plain; version=0.0.4; charset=utf-8";
    case PM_FORMAT_OPENMETRICS:
        return "application/openmetrics-text; version=1.0.0; charset=utf-8";
    case PM_FORMAT_JSON:
        return "application/json";
    }
    return "";
}
