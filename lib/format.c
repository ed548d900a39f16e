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
    w->num.ip = UINT64_MAX;
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
    w->num.ip = UINT64_MAX;
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

/* The number of decimal digits of v. */
static inline int pm__u64_ndigits(uint64_t v)
{
    int n = 1;
    if (v >= 10000000000000000u) {
        v /= 10000000000000000u;
        n += 16;
    }
    if (v >= 100000000u) {
        v /= 100000000u;
        n += 8;
    }
    if (v >= 10000u) {
        v /= 10000u;
        n += 4;
    }
    if (v >= 100u) {
        v /= 100u;
        n += 2;
    }
    return n + (v >= 10u);
}

/* Exactly n digits of v (v < 10^n; leading zeros when shorter) at out,
 * written back to front two at a time in place: no staging copy, and the
 * low eight digits as their own 32-bit chain. */
static inline void pm__put_digits(char *out, uint64_t v, int n)
{
    char *q = out + n;
    if (n > 8) {
        uint64_t hi = v / 100000000u;
        uint32_t lo = (uint32_t)(v - hi * 100000000u);
        for (int i = 0; i < 4; i++) {
            q -= 2;
            memcpy(q, pm__digit_pairs + 2 * (lo % 100), 2);
            lo /= 100;
        }
        v = hi;
        n -= 8;
    }
    for (; n >= 2; n -= 2) {
        q -= 2;
        memcpy(q, pm__digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (n) *--q = (char)('0' + v);
}

/* Exactly 8 digits of v < 10^8 with one 8-byte store: the two 4-digit
 * halves, then 2-digit and 1-digit lanes split with multiplications
 * (x * 10486 >> 20 is x / 100 for x < 10^4, x * 103 >> 10 is x / 10 for
 * x < 100), first digit in the lowest byte. Returns the digits as values
 * 0..9 in that byte order (before '0' is added). */
static inline uint64_t pm__put_digits8(char *out, uint32_t v)
{
    uint64_t x = (uint64_t)(v / 10000) | ((uint64_t)(v % 10000) << 32);
    uint64_t q = ((x * 10486) >> 20) & 0x0000007F0000007Fu;
    x = q | ((x - q * 100) << 16);
    q = ((x * 103) >> 10) & 0x000F000F000F000Fu;
    x = q | ((x - q * 10) << 8);
    uint64_t ascii = x + 0x3030303030303030u;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(out, &ascii, 8);
#else
    for (int i = 0; i < 8; i++) out[i] = (char)(ascii >> (8 * i));
#endif
    return x;
}

/* The number of zero bytes at the high end of d != 0, without a loop
 * whose trip count would depend on the digits (a mispredicted branch costs
 * more than formatting a number). */
static inline int pm__zero_bytes_high(uint64_t d)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_clzll(d) >> 3;
#else
    int z = 0;
    while (!(d >> 56)) {
        d <<= 8;
        z++;
    }
    return z;
#endif
}

/* pm__put_digits for v < 2^32. */
static inline void pm__put_digits32(char *out, uint32_t v, int n)
{
    char *q = out + n;
    for (; n >= 2; n -= 2) {
        q -= 2;
        memcpy(q, pm__digit_pairs + 2 * (v % 100), 2);
        v /= 100;
    }
    if (n) *--q = (char)('0' + v);
}

size_t pm__fmt_u64(char *out, uint64_t v)
{
    /* Counters are mostly integers: this is the hot path of every exposition. */
    int n = pm__u64_ndigits(v);
    pm__put_digits(out, v, n);
    return (size_t)n;
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
 * fixed when -4 <= x < prec, else d.ddde+XX. Writes out with constant-size
 * block copies (no memcpy calls), never past its PM__NUM_MAX bytes: nd <= 17,
 * so the text is at most 25 bytes and a NUL. */
static size_t pm__layout_g(char *out, int neg, const char *d, int nd, int x, int prec)
{
    char *t = out;
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
        /* At most 16 - x decimals: a shorter block keeps within 32 bytes. */
        if (x <= 13)
            memcpy(t + n + (size_t)x + 2, d + x + 1, 16);
        else
            memcpy(t + n + (size_t)x + 2, d + x + 1, 4);
        n += (size_t)nd + 1;
    }
    t[n] = '\0';
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

/* ---- exact digits with integer arithmetic ----
 *
 * Both exact paths below work on the same window: the first 18 significant
 * digits of |v| as an integer t, whether anything non-zero follows
 * (sticky), and the rounding interval of v (the reals that strtod reads back
 * as v) as the integers [lo, hi] on t's scale. Rounding t to p places is
 * then what printf's %.{p-1}e prints (correct rounding, ties to even on an
 * exact tie), and "reads back" is an integer comparison with the interval:
 * the same answers as printf + strtod, in a few nanoseconds.
 *
 * dec18 window: |v| = (t + f) 10^(x - 17), 0 <= f < 1, sticky = (f != 0),
 * t in [10^17, 10^18). The fraction path uses it for the fraction digits
 * alone (t < 10^K, see there). */
typedef struct pm__dec18 {
    uint64_t t, lo, hi;
    int sticky, x, neg;
} pm__dec18_t;

/* The 18 digits of r rounded to p = 18 - j places (pj = 10^j), as an integer
 * c scaled back (c * pj); returns 1 if that decimal reads back as v. */
static inline int pm__dec18_round(const pm__dec18_t *r, uint64_t pj, uint64_t *c)
{
    uint64_t q = r->t / pj, rem = r->t - q * pj, half = pj / 2;
    /* Bitwise, not ||: these tests go either way at random. */
    q += (uint64_t)(rem > half) | ((uint64_t)(rem == half) & ((uint64_t)r->sticky | q) & 1);
    *c = q;
    return (q * pj >= r->lo) & (q * pj <= r->hi);
}

/* Non-integers with 2^24 <= |v| < 10^15, wall-clock timestamps above all
 * (every OpenMetrics _created, every JSON "created"). The integer part I is
 * exact in the double, so only the fraction f / 2^s (s = 52 - e <= 28)
 * needs rounding: with p = 15, 16, 17 significant digits it keeps
 * k = p - digits(I) <= 9 decimals, and f 10^k < 2^62 fits 64 bits. The
 * k-decimal rounding is c = round(f 10^k / 2^s) (ties to even, as printf),
 * and I.c reads back iff |c / 10^k - f / 2^s| < 1 / 2^(s+1) (half an ulp on
 * each side, |v| being no power of two; never equal, as that needs k > s),
 * i.e. |c 2^(s+1) - 2 f 10^k| < 10^k: one product, shifts and compares per
 * p, no division, and never a carry into I. Returns 0 outside the range. */
static inline uint64_t pm__frac_round(uint64_t f, int s, int k, uint64_t *ok)
{
    /* Bitwise, not ||: these tests go either way at random, and a
     * mispredicted branch costs more than the arithmetic. */
    uint64_t pk = pm__pow10_u64[k];
    uint64_t u = f * pk, rem = u & (((uint64_t)1 << s) - 1), half = (uint64_t)1 << (s - 1);
    uint64_t c = u >> s;
    c += (uint64_t)(rem > half) | ((uint64_t)(rem == half) & c);
    uint64_t a = c << (s + 1), b = u << 1;
    *ok = (uint64_t)(a - b + pk < 2 * pk); /* |a - b| < pk, a - b taken mod 2^64 */
    return c;
}

/* The digits of the integer part ip < 10^15 at out, remembered in cache
 * (if any); returns their count. */
__attribute__((noinline)) static int pm__put_int_part(char *out, uint64_t ip, pm__numcache_t *cache)
{
    int ni = pm__u64_ndigits(ip);
    pm__put_digits(out, ip, ni);
    if (cache) {
        cache->ip = ip;
        cache->ni = ni;
        memcpy(cache->text, out, sizeof cache->text);
    }
    return ni;
}

static inline size_t pm__fmt_fraction(char *out, double v, pm__numcache_t *cache)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    int e = (int)((bits >> 52) & 0x7FF) - 1023;
    if (e < 24 || e > 49) return 0;
    uint64_t m = (bits & (((uint64_t)1 << 52) - 1)) | ((uint64_t)1 << 52);
    int s = 52 - e;
    uint64_t ip = m >> s, f = m & (((uint64_t)1 << s) - 1);
    if (f == 0 || ip >= pm__pow10_u64[15]) return 0;
    size_t n = bits >> 63;
    out[0] = '-';
    /* The integer part: timestamps written one after the other mostly
     * share it, so the writer keeps the last one's digits. */
    int ni;
    if (cache && cache->ip == ip) {
        ni = cache->ni;
        memcpy(out + n, cache->text, sizeof cache->text);
    } else {
        ni = pm__put_int_part(out + n, ip, cache);
    }
    n += (size_t)ni;
    out[n++] = '.';
    /* The three candidates are independent: computed side by side, then
     * the first that reads back is selected (17 digits always do). */
    uint64_t ok15, ok16, ok17;
    uint64_t c15 = pm__frac_round(f, s, 15 - ni, &ok15);
    uint64_t c16 = pm__frac_round(f, s, 16 - ni, &ok16);
    uint64_t c17 = pm__frac_round(f, s, 17 - ni, &ok17);
    (void)ok17;
    uint64_t m15 = 0 - ok15, m16 = (0 - ok16) & ~m15, m17 = ~(m15 | m16);
    uint64_t c = (c15 & m15) | (c16 & m16) | (c17 & m17);
    int k = 17 - ni - (int)(2 * ok15 + (ok16 & (ok15 ^ 1))); /* <= 9 decimals */
    if (k <= 8) {
        /* Left-aligned in 8 digits; the zeros past k are trimmed with the
         * rest, as the count of zero digits at the end. */
        uint64_t d = pm__put_digits8(out + n, (uint32_t)(c * pm__pow10_u64[8 - k]));
        k = 8 - pm__zero_bytes_high(d); /* c > 0: 0 and 1 are not within half an ulp */
    } else {
        pm__put_digits32(out + n, (uint32_t)c, k);
        while (out[n + (size_t)k - 1] == '0') k--;
    }
    n += (size_t)k;
    out[n] = '\0';
    return n;
}

#if PM__HAVE_U128
/* ---- the dec18 window from one 128-bit product ----
 *
 * For 2^-46 <= |v| < 2^50 (every non-integer metric value in practice:
 * sums, quantiles, rates, and timestamps the fraction path leaves out), one
 * product of the mantissa by 5^k gives t, sticky and the interval. */

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
    uint64_t w1 = pm__put_digits8(d + 2, (uint32_t)(hi - (uint64_t)top * 100000000u));
    uint64_t w2 = pm__put_digits8(d + 10, (uint32_t)(c - hi * 100000000u));
    memcpy(d + 18, "00000000000000", PM__DIGITS_BUF - 18);
    /* Trailing zeros from the digit words (c > 0, top >= 1 digit). */
    if (w2) return 18 - pm__zero_bytes_high(w2);
    if (w1) return 10 - pm__zero_bytes_high(w1);
    return top % 10 ? 2 : 1;
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
            uint64_t c15, c16, c17;
            int ok15 = pm__dec18_round(&r, 1000, &c15), ok16 = pm__dec18_round(&r, 100, &c16);
            pm__dec18_round(&r, 10, &c17);
            c = ok15 ? c15 : ok16 ? c16 : c17;
            p = ok15 ? 15 : ok16 ? 16 : 17;
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

/* Everything but the two common paths, out of line so that those keep a
 * small frame (this part's locals and calls would spill their registers). */
__attribute__((noinline)) static size_t pm__fmt_double_rest(char *out, double v)
{
    if (!isfinite(v)) return pm__fmt_nonfinite(out, v);
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

size_t pm__fmt_double_c(char *out, double v, pm__numcache_t *cache)
{
    /* Timestamps first: non-integers from 2^24 to 10^15 never reach the
     * integer test. */
    size_t n = pm__fmt_fraction(out, v, cache);
    if (n) return n;
    /* Every integer-valued double below 2^63 prints exactly as digits; the
     * range test comes first because the cast is undefined outside it
     * (NaN fails it). -0.0 prints as "0" (equal as a value). */
    if (v > -9223372036854775808.0 && v < 9223372036854775808.0) {
        int64_t i = (int64_t)v;
        if ((double)i == v) {
            n = pm__fmt_i64(out, i);
            out[n] = '\0';
            return n;
        }
    }
    return pm__fmt_double_rest(out, v);
}

size_t pm__fmt_double(char *out, double v) { return pm__fmt_double_c(out, v, NULL); }

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
    w->p = p + pm__fmt_double_c(p, v, &w->num);
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

/* The first byte of s that needs escaping (or its NUL). */
static inline const char *pm__esc_run(const char *s, const unsigned char *tab)
{
    while (tab[(unsigned char)*s] == 0) s++;
    return s;
}

/* The escape of byte c (table entry t, not 0 or PM__ESC_END) into out;
 * returns its length (2, or 6 for \u00XX). */
static size_t pm__esc_seq(char out[6], unsigned char c, unsigned char t)
{
    static const char hex[] = "0123456789abcdef";
    out[0] = '\\';
    if (t != 'u') {
        out[1] = (char)t;
        return 2;
    }
    memcpy(out + 1, "u00", 3);
    out[4] = hex[c >> 4];
    out[5] = hex[c & 15];
    return 6;
}

static void pm__w_escaped(pm__writer_t *w, const char *s, const unsigned char *tab)
{
    if (!s) return; /* a missing string prints as "" */
    for (;;) {
        const char *e = pm__esc_run(s, tab);
        if (e > s) pm__w_bytes(w, s, (size_t)(e - s));
        unsigned char t = tab[(unsigned char)*e];
        if (t == PM__ESC_END) return;
        char *p = pm__w_reserve(w, 6);
        w->p = p + pm__esc_seq(p, (unsigned char)*e, t);
        s = e + 1;
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

/* Room for n more bytes plus the padding. New bytes are zeroed once, so
 * block copies never read uninitialised memory. */
static pm_status_t pm__pad_room(pm__pad_t *d, size_t n)
{
    if (d->cap && n <= d->cap - d->len - PM__PAD) return PM_OK;
    if (n > SIZE_MAX / 2 - PM__PAD - d->len) return PM_ENOMEM;
    size_t want = d->len + n + PM__PAD, cap = d->cap ? d->cap : 64;
    while (cap < want) cap *= 2;
    char *np = realloc(d->p, cap);
    if (!np) return PM_ENOMEM;
    memset(np + d->cap, 0, cap - d->cap);
    d->p = np;
    d->cap = cap;
    return PM_OK;
}

static inline pm_status_t pm__pad_append(pm__pad_t *d, const char *s, size_t n)
{
    if (!d->cap || n > d->cap - d->len - PM__PAD) {
        pm_status_t st = pm__pad_room(d, n);
        if (st != PM_OK) return st;
    }
    memcpy(d->p + d->len, s, n);
    d->len += n;
    return PM_OK;
}

pm_status_t pm__pad_set(pm__pad_t *d, const char *s, size_t n)
{
    d->len = 0;
    return pm__pad_append(d, s, n);
}

void pm__pad_free(pm__pad_t *d)
{
    free(d->p);
    memset(d, 0, sizeof *d);
}

/* pm__w_escaped's twin for a scratch text. */
static pm_status_t pm__pad_escaped(pm__pad_t *d, const char *s, const unsigned char *tab)
{
    if (!s) return PM_OK;
    for (;;) {
        const char *e = pm__esc_run(s, tab);
        if (e > s && pm__pad_append(d, s, (size_t)(e - s)) != PM_OK) return PM_ENOMEM;
        unsigned char t = tab[(unsigned char)*e];
        if (t == PM__ESC_END) return PM_OK;
        char seq[6];
        if (pm__pad_append(d, seq, pm__esc_seq(seq, (unsigned char)*e, t)) != PM_OK)
            return PM_ENOMEM;
        s = e + 1;
    }
}

/* JSON: the fixed texts around a series' label object (see pm__block_render). */
#define PM__JSON_OPEN "\n{\"labels\":{"
#define PM__JSON_CLOSE "},\"overflow\":false,\"created\":"
#define PM__JSON_CLOSE_OVERFLOW "},\"overflow\":true,\"created\":"

pm_status_t pm__labelset_prepare(pm__labelset_t *ls, const pm_snap_family_t *f, int json)
{
    size_t n = pm_snap_family_label_count(f);
    void *off = ls->off;
    if (!pm__grow(&off, &ls->off_cap, n + 1, sizeof(size_t))) return PM_ENOMEM;
    ls->off = off;
    ls->json = json;
    ls->text.len = 0;
    pm_status_t st = PM_OK;
    for (size_t i = 0; i < n && st == PM_OK; i++) {
        ls->off[i] = ls->text.len;
        const char *open = json ? (i ? "\",\"" : PM__JSON_OPEN "\"") : (i ? "\"," : "{");
        st = pm__pad_append(&ls->text, open, strlen(open));
        if (st == PM_OK)
            st = pm__pad_escaped(&ls->text, pm_snap_family_label_name(f, i),
                                 json ? pm__esc_json : pm__esc_label);
        if (st == PM_OK) st = pm__pad_append(&ls->text, json ? "\":\"" : "=\"", json ? 3 : 2);
    }
    if (st == PM_OK) st = pm__pad_room(&ls->text, 0);
    ls->off[n] = ls->text.len;
    ls->n = st == PM_OK ? n : 0;
    return st;
}

void pm__labelset_free(pm__labelset_t *ls)
{
    pm__pad_free(&ls->text);
    free(ls->off);
    memset(ls, 0, sizeof *ls);
}

pm_status_t pm__block_render(pm__pad_t *blk, const pm__labelset_t *ls, const pm__snap_row_t *row)
{
    blk->len = 0;
    pm_status_t st = PM_OK;
    if (row->overflow || ls->n == 0) {
        if (ls->json)
            st = row->overflow
                     ? pm__pad_append(blk, PM__LIT_ARG(PM__JSON_OPEN PM__JSON_CLOSE_OVERFLOW))
                     : pm__pad_append(blk, PM__LIT_ARG(PM__JSON_OPEN PM__JSON_CLOSE));
        else if (row->overflow)
            st = pm__pad_append(blk, PM__LIT_ARG("{pm_overflow=\"true"));
        else
            st = pm__pad_room(blk, 0);
        return st;
    }
    const unsigned char *tab = ls->json ? pm__esc_json : pm__esc_label;
    for (size_t i = 0; i < ls->n && st == PM_OK; i++) {
        st = pm__pad_append(blk, ls->text.p + ls->off[i], ls->off[i + 1] - ls->off[i]);
        if (st == PM_OK) st = pm__pad_escaped(blk, pm_snap_series_label_value(row->s, i), tab);
    }
    if (st == PM_OK && ls->json) st = pm__pad_append(blk, PM__LIT_ARG("\"" PM__JSON_CLOSE));
    return st;
}

/* Fills row with series i of f; returns 0 when there is none. */
static int pm__snap_row(const pm_snap_family_t *f, size_t i, pm__snap_row_t *row)
{
    const pm_snap_series_t *s = pm_snap_family_series(f, i);
    if (!s) return 0;
    row->s = s;
    row->value = pm_snap_series_value(s);
    row->created = pm_snap_series_created(s);
    row->overflow = pm_snap_series_is_overflow(s);
    row->exemplars = pm__snap_series_has_exemplars(s);
    return 1;
}

/* Fetches series wk->next into the free slot and renders its block. */
static void pm__walk_fill(pm__walk_t *wk)
{
    int s = wk->slot;
    wk->ready = pm__snap_row(wk->f, wk->next, &wk->rows[s]);
    if (!wk->ready) return;
    wk->st = pm__block_render(&wk->pads[s], wk->ls, &wk->rows[s]);
    if (wk->st != PM_OK) wk->ready = 0;
}

void pm__walk_start(pm__walk_t *wk, const pm_snap_family_t *f, const pm__labelset_t *ls,
                    pm__pad_t pads[2])
{
    wk->f = f;
    wk->ls = ls;
    wk->pads = pads;
    wk->next = 0;
    wk->slot = 0;
    wk->st = PM_OK;
    wk->row = NULL;
    wk->blk = NULL;
    wk->index = 0;
    pm__walk_fill(wk);
}

int pm__walk_next(pm__walk_t *wk)
{
    if (!wk->ready) return 0;
    int s = wk->slot;
    wk->row = &wk->rows[s];
    wk->blk = &wk->pads[s];
    wk->index = wk->next++;
    wk->slot = s ^ 1;
    pm__walk_fill(wk); /* the next block, while this one's stores retire */
    return 1;
}

#define PM__SFX(lit)                                                                               \
    {                                                                                              \
        lit, sizeof(lit) - 1                                                                       \
    }
const pm__suffix_t pm__sfx_none = PM__SFX(""), pm__sfx_total = PM__SFX("_total"),
                   pm__sfx_created = PM__SFX("_created"), pm__sfx_bucket = PM__SFX("_bucket"),
                   pm__sfx_sum = PM__SFX("_sum"), pm__sfx_count = PM__SFX("_count");
const pm__bound_text_t pm__le_inf = {"+Inf", 4};

/* pm__w_json_number's text of a finite v, or "null". */
static size_t pm__fmt_json_number(char *out, double v)
{
    if (isfinite(v)) return pm__fmt_double(out, v);
    memcpy(out, "null", 5);
    return 4;
}

pm_status_t pm__bounds_prepare(pm__bounds_t *b, const pm_snap_family_t *f, int json)
{
    size_t n = pm_snap_family_bucket_count(f);
    void *item = b->item;
    if (!pm__grow(&item, &b->cap, n, sizeof *b->item)) return PM_ENOMEM;
    b->item = item;
    for (size_t i = 0; i < n; i++) {
        double v = pm_snap_family_bucket_bound(f, i);
        b->item[i].len =
            json ? pm__fmt_json_number(b->item[i].text, v) : pm__fmt_canonical(b->item[i].text, v);
    }
    b->n = n;
    return PM_OK;
}

void pm__bounds_free(pm__bounds_t *b)
{
    free(b->item);
    memset(b, 0, sizeof *b);
}

void pm__w_head_slow(pm__writer_t *w, const pm__pad_t *name, const pm__suffix_t *sfx,
                     const pm__pad_t *blk, const pm__bound_text_t *le)
{
    pm__w_bytes(w, name->p, name->len);
    pm__w_bytes(w, sfx->text, sfx->len);
    pm__w_bytes(w, blk->p, blk->len);
    if (le) {
        if (blk->len)
            PM__W_LIT(w, "\",le=\"");
        else
            PM__W_LIT(w, "{le=\"");
        pm__w_bytes(w, le->text, le->len);
        PM__W_LIT(w, "\"} ");
    } else if (blk->len) {
        PM__W_LIT(w, "\"} ");
    } else {
        pm__w_char(w, ' ');
    }
}

void pm__w_buckets(pm__writer_t *w, const pm__pad_t *name, const pm__pad_t *blk,
                   const pm_snap_series_t *s, const pm__bounds_t *bd, uint64_t count, int exemplars)
{
    for (size_t b = 0; b <= bd->n; b++) {
        const pm__bound_text_t *le = b < bd->n ? &bd->item[b] : &pm__le_inf;
        uint64_t n = b < bd->n ? pm_snap_series_bucket_cumulative(s, b) : count;
        if (!exemplars) {
            pm__w_sample_u64(w, name, &pm__sfx_bucket, blk, le, n);
            continue;
        }
        pm__w_head(w, name, &pm__sfx_bucket, blk, le);
        pm__w_u64(w, n);
        pm__w_exemplar(w, s, b);
        pm__w_char(w, '\n');
    }
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

void pm__w_meta_head(pm__writer_t *w, const char *keyword, const pm__pad_t *name,
                     const pm__suffix_t *sfx)
{
    PM__W_LIT(w, "# ");
    pm__w_str(w, keyword);
    pm__w_char(w, ' ');
    pm__w_bytes(w, name->p, name->len);
    pm__w_bytes(w, sfx->text, sfx->len);
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
