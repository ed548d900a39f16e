/* Format dispatch (pm_format, pm_format_write, pm_format_content_type) and the
 * pieces the three formats share: the output writer, number formatting,
 * escaping and per-family label/bucket texts. Formatters read snapshots only. */
#include "internal/format_internal.h"

#include <perfmetrics/spans.h>

#include <float.h>
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

/* The exact-arithmetic shortcuts below need each double operation rounded
 * once to double (SSE2, AArch64...), not to x87 extended precision first. */
#if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
#define PM__EXACT_DOUBLE_OPS 1
#else
#define PM__EXACT_DOUBLE_OPS 0
#endif

/* 128-bit integers (gcc and clang on 64-bit targets) give an exact path for
 * the digits of a double without printf; other targets use printf and strtod. */
#if defined(__SIZEOF_INT128__)
#define PM__HAVE_U128 1
__extension__ typedef unsigned __int128 pm__u128;
#else
#define PM__HAVE_U128 0
#endif

/* Exact powers of ten (every one up to 1e22 is a double). */
static const double pm__pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

#if !PM__HAVE_U128
/* Fixed-point fast path for values with a short decimal form (21.5, 0.125,
 * 36.5625): finds the fewest decimals k such that m / 10^k == a with
 * m < 10^15. Both m and 10^k are exact doubles, so the division is correctly
 * rounded and equals strtod("m e-k") (Clinger): the check is exact. A decimal
 * of at most 15 digits that reads back is the value rounded to 15 digits, so
 * this prints what %.15g would, without printf. For 1e-4 <= |v| < 1e15
 * (%g's fixed notation); returns 0 when no such decimal exists. */
static size_t pm__fmt_fixed_short(char *out, double v)
{
#if !PM__EXACT_DOUBLE_OPS
    (void)out;
    (void)v;
    return 0;
#endif
    double a = fabs(v);
    for (int k = 1; k <= 19; k++) {
        double scaled = a * pm__pow10[k];
        if (scaled >= 1e15) return 0;
        uint64_t m = (uint64_t)(scaled + 0.5);
        if ((double)m / pm__pow10[k] != a) continue;
        char digits[24];
        size_t nd = pm__fmt_u64(digits, m);
        size_t n = 0;
        if (v < 0) out[n++] = '-';
        if (nd <= (size_t)k) { /* 0.000ddd */
            out[n++] = '0';
            out[n++] = '.';
            for (size_t i = nd; i < (size_t)k; i++) out[n++] = '0';
            memcpy(out + n, digits, nd);
            n += nd;
        } else {
            memcpy(out + n, digits, nd - (size_t)k);
            n += nd - (size_t)k;
            out[n++] = '.';
            memcpy(out + n, digits + nd - k, (size_t)k);
            n += (size_t)k;
        }
        out[n] = '\0';
        return n;
    }
    return 0;
}
#endif

/* Digit strings handed to pm__layout_g live in buffers of this size, padded
 * with '0' after the digits, so the layout copies fixed-size blocks. */
#define PM__DIGITS_BUF 32

/* Lays out sign, digits d[0..nd) (no trailing zeros; d is PM__DIGITS_BUF
 * bytes, '0' from nd on) and decimal exponent x as printf's %.{prec}g does:
 * fixed when -4 <= x < prec, else d.ddde+XX. Composes in a local buffer
 * with constant-size copies (no memcpy calls), then writes PM__NUM_MAX
 * bytes to out. nd <= 17, so every form fits: at most 25 bytes and a NUL. */
static size_t pm__layout_g(char *out, int neg, const char *d, int nd, int x, int prec)
{
    char t[64];
    size_t n = 0;
    t[0] = '-';
    n += (size_t)(neg != 0);
    if (x < -4 || x >= prec) {
        t[n] = d[0];
        t[n + 1] = '.';
        memcpy(t + n + 2, d + 1, 16);
        n += nd > 1 ? (size_t)nd + 1 : 1;
        t[n++] = 'e';
        t[n++] = x < 0 ? '-' : '+';
        unsigned ux = (unsigned)(x < 0 ? -x : x);
        if (ux < 10) t[n++] = '0';
        n += pm__fmt_u64(t + n, ux);
    } else if (x < 0) { /* 0.000ddd */
        memcpy(t + n, "0.0000", 6);
        memcpy(t + n + (size_t)(1 - x), d, 17);
        n += (size_t)(1 - x + nd);
    } else if (x + 1 >= nd) { /* digits, then zeros up to the point: the padding */
        memcpy(t + n, d, 24);
        n += (size_t)(x + 1);
    } else {
        memcpy(t + n, d, 16);
        t[n + (size_t)x + 1] = '.';
        memcpy(t + n + (size_t)x + 2, d + x + 1, 16);
        n += (size_t)nd + 1;
    }
    t[n] = '\0';
    memcpy(out, t, PM__NUM_MAX);
    return n;
}

/* Significant digits of v as printf's %.{n-1}e rounds them (locale-proof):
 * n digits into d, the decimal exponent into *x; returns the sign. */
static int pm__sci_digits(double v, int n, char *d, int *x)
{
    char tmp[48];
    snprintf(tmp, sizeof tmp, "%.*e", n - 1, v);
    pm__c_locale_number(tmp, tmp);
    const char *q = tmp;
    int neg = *q == '-';
    int nd = 0;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9' && nd < n) d[nd++] = *q;
    *x = *q == 'e' ? atoi(q + 1) : 0;
    return neg;
}

/* Rounds 17 correctly rounded digits to `keep` digits. That equals rounding
 * the exact value unless the dropped digits are exactly 5, 50, ... (then
 * the value may have been just below the midpoint): returns 0 for that case,
 * which the caller settles with printf. */
static int pm__round_digits(const char *d17, int x, int keep, char *d, int *xr)
{
    if (d17[keep] == '5') {
        int i = keep + 1;
        while (i < 17 && d17[i] == '0') i++;
        if (i == 17) return 0;
    }
    memcpy(d, d17, (size_t)keep);
    *xr = x;
    if (d17[keep] >= '5') { /* round up; a carry may ripple into a new digit */
        int i = keep - 1;
        while (i >= 0 && d[i] == '9') d[i--] = '0';
        if (i >= 0) {
            d[i]++;
        } else {
            d[0] = '1';
            (*xr)++;
        }
    }
    return 1;
}

/* Does the decimal d[0..n) x 10^(x-n+1) (negated when neg) read back as v?
 * When the digits fit in 2^53 and the power of ten is exact, one IEEE
 * multiply or divide of exact operands is correctly rounded, so the answer
 * is exact without strtod (Clinger's fast path); otherwise strtod decides. */
static int pm__reads_back(const char *d, int n, int x, int neg, double v)
{
    int e = x - (n - 1);
#if PM__EXACT_DOUBLE_OPS
    uint64_t m = 0;
    for (int i = 0; i < n; i++) m = m * 10 + (uint64_t)(d[i] - '0');
    if (m < ((uint64_t)1 << 53) && e >= -22 && e <= 22) {
        double r = e < 0 ? (double)m / pm__pow10[-e] : (double)m * pm__pow10[e];
        return (neg ? -r : r) == v;
    }
#endif
    char cand[48];
    size_t cn = 0;
    if (neg) cand[cn++] = '-';
    memcpy(cand + cn, d, (size_t)n);
    cn += (size_t)n;
    snprintf(cand + cn, sizeof cand - cn, "e%d", e);
    return strtod(cand, NULL) == v;
}

#if PM__HAVE_U128
/* ---- exact digits with integer arithmetic ----
 *
 * For 2^-46 <= |v| < 2^50 (every non-integer metric value in practice:
 * timestamps, sums, quantiles, rates), one 128-bit product gives the first
 * 18 significant digits of |v| exactly, plus whether anything non-zero
 * follows, and the rounding interval of v (the reals that strtod reads back
 * as v) on the same scale. Rounding those digits to p places is then what
 * printf's %.{p-1}e prints (correct rounding, ties to even on an exact tie),
 * and "reads back" is an integer comparison with the interval: the same
 * answers as printf + strtod, in a few nanoseconds. */

static const uint64_t pm__pow10_u64[19] = {1u,
                                           10u,
                                           100u,
                                           1000u,
                                           10000u,
                                           100000u,
                                           1000000u,
                                           10000000u,
                                           100000000u,
                                           1000000000u,
                                           10000000000u,
                                           100000000000u,
                                           1000000000000u,
                                           10000000000000u,
                                           100000000000000u,
                                           1000000000000000u,
                                           10000000000000000u,
                                           100000000000000000u,
                                           1000000000000000000u};

/* 5^k for k <= 27 (5^27 < 2^64). */
static const uint64_t pm__pow5_u64[28] = {1u,
                                          5u,
                                          25u,
                                          125u,
                                          625u,
                                          3125u,
                                          15625u,
                                          78125u,
                                          390625u,
                                          1953125u,
                                          9765625u,
                                          48828125u,
                                          244140625u,
                                          1220703125u,
                                          6103515625u,
                                          30517578125u,
                                          152587890625u,
                                          762939453125u,
                                          3814697265625u,
                                          19073486328125u,
                                          95367431640625u,
                                          476837158203125u,
                                          2384185791015625u,
                                          11920928955078125u,
                                          59604644775390625u,
                                          298023223876953125u,
                                          1490116119384765625u,
                                          7450580596923828125u};

/* 18 significant digits of |v|: t in [10^17, 10^18) with |v| = (t + f) *
 * 10^(x - 17), 0 <= f < 1, sticky = (f != 0); [lo, hi] are the integers on
 * that scale whose decimal reads back as v. */
typedef struct pm__dec18 {
    uint64_t t, lo, hi;
    int sticky, x, neg;
} pm__dec18_t;

/* Fills r for 2^-46 <= |v| < 2^50; returns 0 outside that range. */
static int pm__dec18(double v, pm__dec18_t *r)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int be = (int)((bits >> 52) & 0x7FF);
    uint64_t frac = bits & (((uint64_t)1 << 52) - 1);
    int e = be - 1023; /* floor(log2 |v|) */
    if (e < -46 || e > 49) return 0;
    r->neg = (int)(bits >> 63);
    /* |v| = m 2^e2, its neighbours are (4m + 2) / 4 and (4m - 2) / 4 units of
     * 2^e2 away (4m - 1 below a power of two, where the gap halves). */
    uint64_t m = frac | ((uint64_t)1 << 52);
    int e2 = be - 1075;
    /* xe = floor(e log10 2) (78913 / 2^18 = log10 2 to 7 digits), so
     * 10^xe <= |v| < 10^(xe + 2) and |v| 10^k lies in [10^17, 10^19). */
    int xe = e >= 0 ? (e * 78913) >> 18 : -((-e * 78913 + (1 << 18) - 1) >> 18);
    int k = 17 - xe; /* 3 .. 31 */
    /* |v| 10^k = 4m 5^k 2^(e2 + k - 2): below 2^127 since 4m < 2^55 and
     * 5^31 < 2^72; the shift is 2 .. 69. */
    pm__u128 p5 = k <= 27 ? pm__pow5_u64[k] : (pm__u128)pm__pow5_u64[27] * pm__pow5_u64[k - 27];
    int sh = 2 - e2 - k;
    pm__u128 mask = ((pm__u128)1 << sh) - 1;
    pm__u128 prod = (pm__u128)(m << 2) * p5;
    pm__u128 hi = prod + 2 * p5;
    pm__u128 lo = prod - (frac ? 2 : 1) * p5;
    uint64_t t = (uint64_t)(prod >> sh);
    uint64_t hi_i = (uint64_t)(hi >> sh);
    uint64_t lo_i = (uint64_t)(lo >> sh) + ((lo & mask) != 0); /* ceiling */
    /* strtod rounds a tie to the even mantissa: an odd m excludes both ends. */
    if (m & 1) {
        if (!(hi & mask)) hi_i--;
        if (!(lo & mask)) lo_i++;
    }
    int sticky = (prod & mask) != 0;
    if (t >= pm__pow10_u64[18]) { /* 19 digits: drop one, keep the interval exact */
        sticky |= t % 10 != 0;
        t /= 10;
        hi_i /= 10;
        lo_i = (lo_i + 9) / 10;
        k--;
    }
    r->t = t;
    r->lo = lo_i;
    r->hi = hi_i;
    r->sticky = sticky;
    r->x = 17 - k;
    return 1;
}

/* The 18 digits of r rounded to p = 18 - j places (pj = 10^j), as an integer
 * c scaled back (c * pj); returns 1 if that decimal reads back as v. */
static inline int pm__dec18_round(const pm__dec18_t *r, uint64_t pj, uint64_t *c)
{
    uint64_t q = r->t / pj, rem = r->t - q * pj, half = pj / 2;
    q += rem > half || (rem == half && (r->sticky || (q & 1)));
    *c = q;
    return q * pj >= r->lo && q * pj <= r->hi;
}

/* Exactly 8 digits of v < 10^8. */
static void pm__digits8(char *out, uint32_t v)
{
    uint32_t a = v / 10000, b = v % 10000;
    memcpy(out, pm__digit_pairs + 2 * (a / 100), 2);
    memcpy(out + 2, pm__digit_pairs + 2 * (a % 100), 2);
    memcpy(out + 4, pm__digit_pairs + 2 * (b / 100), 2);
    memcpy(out + 6, pm__digit_pairs + 2 * (b % 100), 2);
}

/* The p significant digits of c (10^(p-1) <= c <= 10^p, p <= 17) into d
 * (PM__DIGITS_BUF bytes, '0'-padded) without trailing zeros; *x is the
 * decimal exponent, bumped when rounding carried into a new digit. Returns
 * the digit count. */
static int pm__dec18_digits(uint64_t c, int p, char *d, int *x)
{
    if (c == pm__pow10_u64[p]) {
        c = pm__pow10_u64[p - 1];
        (*x)++;
    }
    /* Scaled to 18 digits, the digits come out left-aligned; three
     * independent 2/8/8-digit chains instead of one of 9 divisions. */
    c *= pm__pow10_u64[18 - p];
    uint64_t hi = c / 100000000u;
    uint32_t top = (uint32_t)(hi / 100000000u);
    memcpy(d, pm__digit_pairs + 2 * top, 2);
    pm__digits8(d + 2, (uint32_t)(hi - (uint64_t)top * 100000000u));
    pm__digits8(d + 10, (uint32_t)(c - hi * 100000000u));
    memcpy(d + 18, "00000000000000", PM__DIGITS_BUF - 18);
    int nd = p;
    while (nd > 1 && d[nd - 1] == '0') nd--;
    return nd;
}
#endif

/* The fewest significant digits, from min_digits up to 17, whose correctly
 * rounded decimal reads back as v: one printf for 17 digits, shorter
 * candidates derived from them and checked exactly. Fills d (no trailing
 * zeros), *nd, *x (decimal exponent), *neg; returns the digit count tried
 * (the %g precision whose output this is). */
static int pm__shortest_digits(double v, int min_digits, char *d, int *nd, int *x, int *neg)
{
#if PM__HAVE_U128
    pm__dec18_t r;
    if (pm__dec18(v, &r)) {
        /* Constant divisors for the common case (pm__fmt_double's 15..17),
         * a loop for the canonical form. */
        uint64_t c;
        int p = min_digits;
        if (p == 15) {
            if (!pm__dec18_round(&r, 1000, &c)) p = pm__dec18_round(&r, 100, &c) ? 16 : 17;
            if (p == 17) pm__dec18_round(&r, 10, &c);
        } else {
            while (p < 17 && !pm__dec18_round(&r, pm__pow10_u64[18 - p], &c)) p++;
            if (p == 17) pm__dec18_round(&r, 10, &c);
        }
        *neg = r.neg;
        *x = r.x;
        *nd = pm__dec18_digits(c, p, d, x);
        return p;
    }
#endif
    char d17[PM__DIGITS_BUF];
    int x17;
    *neg = pm__sci_digits(v, 17, d17, &x17);
    int keep = min_digits;
    for (; keep < 17; keep++) {
        if (!pm__round_digits(d17, x17, keep, d, x)) pm__sci_digits(v, keep, d, x);
        if (pm__reads_back(d, keep, *x, *neg, v)) break;
    }
    if (keep == 17) {
        memcpy(d, d17, 17);
        *x = x17;
    }
    *nd = keep;
    while (*nd > 1 && d[*nd - 1] == '0') (*nd)--;
    memset(d + *nd, '0', PM__DIGITS_BUF - (size_t)*nd); /* pm__layout_g's padding */
    return keep;
}

size_t pm__fmt_i64(char *out, int64_t v)
{
    if (v >= 0) return pm__fmt_u64(out, (uint64_t)v);
    out[0] = '-';
    /* The magnitude without overflow, INT64_MIN included. */
    return 1 + pm__fmt_u64(out + 1, (uint64_t)(-(v + 1)) + 1u);
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
            size_t n = pm__fmt_i64(out, i);
            out[n] = '\0';
            return n;
        }
    }
    /* What "the first of %.15g, %.16g, %.17g that reads back" prints. */
    int min_digits = 15;
#if !PM__HAVE_U128
    double a = fabs(v);
    int fixed_range = a >= 1e-4 && a < 1e15;
    size_t n = fixed_range ? pm__fmt_fixed_short(out, v) : 0;
    if (n) return n;
    /* In the fixed range the fast path already ruled out 15 digits. */
    if (fixed_range) min_digits = 16;
#endif
    char d[PM__DIGITS_BUF];
    int nd, x, neg;
    int prec = pm__shortest_digits(v, min_digits, d, &nd, &x, &neg);
    return pm__layout_g(out, neg, d, nd, x, prec);
}

size_t pm__fmt_canonical(char *out, double v)
{
    if (!isfinite(v)) return pm__fmt_nonfinite(out, v);
    size_t n;
    if (v == 0) {
        n = 0;
        if (signbit(v)) out[n++] = '-';
        out[n++] = '0';
    } else {
        /* Go's strconv.FormatFloat(v, 'g', -1, 64): the shortest digits
         * that read back, in exponent form when the exponent is < -4 or
         * >= 6 ("1e-05", "1e+06"), which is %g's layout with precision 6. */
        char d[PM__DIGITS_BUF];
        int nd, x, neg;
        pm__shortest_digits(v, 1, d, &nd, &x, &neg);
        n = pm__layout_g(out, neg, d, nd, x, 6);
    }
    if (!memchr(out, '.', n) && !memchr(out, 'e', n)) {
        out[n++] = '.'; /* the OpenMetrics ".0" that marks a float */
        out[n++] = '0';
        out[n] = '\0';
    }
    return n;
}

void pm__w_u64(pm__writer_t *w, uint64_t v)
{
    char *p = pm__w_reserve(w, 20);
    w->p = p + pm__fmt_u64(p, v);
}

void pm__w_i64(pm__writer_t *w, int64_t v)
{
    char *p = pm__w_reserve(w, 21);
    w->p = p + pm__fmt_i64(p, v);
}

void pm__w_double(pm__writer_t *w, double v)
{
    char *p = pm__w_reserve(w, PM__NUM_MAX);
    w->p = p + pm__fmt_double(p, v);
}

void pm__w_json_number(pm__writer_t *w, double v)
{
    if (!isfinite(v))
        PM__W_LIT(w, "null");
    else
        pm__w_double(w, v); /* integer digits or %g text: both valid JSON */
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

void pm__w_buckets(pm__writer_t *w, const char *name, size_t name_len, const pm__labelset_t *ls,
                   const pm_snap_series_t *s, const pm__bounds_t *bd, uint64_t count, int exemplars)
{
    exemplars = exemplars && pm__snap_series_has_exemplars(s);
    for (size_t b = 0; b < bd->n; b++) {
        pm__w_sample_head(w, name, name_len, PM__LIT_ARG("_bucket"), ls, s, bd->item[b].text,
                          bd->item[b].len);
        pm__w_u64(w, pm_snap_series_bucket_cumulative(s, b));
        if (exemplars) pm__w_exemplar(w, s, b);
        pm__w_char(w, '\n');
    }
    pm__w_sample_head(w, name, name_len, PM__LIT_ARG("_bucket"), ls, s, PM__LIT_ARG("+Inf"));
    pm__w_u64(w, count);
    if (exemplars) pm__w_exemplar(w, s, bd->n);
    pm__w_char(w, '\n');
}

pm_status_t pm__exemplar_get(const pm_snap_series_t *s, size_t bucket, pm__exemplar_ids_t *ids,
                             double *value, double *unix_seconds)
{
    pm_trace_context_t ctx;
    pm_status_t st = pm_snap_series_exemplar(s, bucket, &ctx, value, unix_seconds);
    if (st != PM_OK) return st;
    /* The W3C encoder gives "00-<trace id>-<span id>-<flags>"; the library
     * keeps exemplars only for contexts it accepts (non-zero ids). */
    char tp[56];
    st = pm_traceparent_format(&ctx, tp, sizeof tp);
    if (st != PM_OK) return st;
    memcpy(ids->trace_id, tp + 3, 32);
    ids->trace_id[32] = '\0';
    memcpy(ids->span_id, tp + 36, 16);
    ids->span_id[16] = '\0';
    return PM_OK;
}

void pm__w_exemplar(pm__writer_t *w, const pm_snap_series_t *s, size_t bucket)
{
    pm__exemplar_ids_t ids;
    double value, t;
    if (pm__exemplar_get(s, bucket, &ids, &value, &t) != PM_OK) return;
    /* The label set is 63 code points, under OpenMetrics' limit of 128. */
    PM__W_LIT(w, " # {trace_id=\"");
    pm__w_bytes(w, ids.trace_id, 32);
    PM__W_LIT(w, "\",span_id=\"");
    pm__w_bytes(w, ids.span_id, 16);
    PM__W_LIT(w, "\"} ");
    pm__w_double(w, value);
    pm__w_char(w, ' ');
    pm__w_double(w, t);
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
