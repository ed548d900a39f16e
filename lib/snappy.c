/* Snappy block format compressor (google/snappy format_description.txt).
 *
 * A block is the uncompressed length as a varint, then elements: literals
 * (tag 00, length - 1 in the tag's upper six bits or in 1-4 bytes after it)
 * and back-references (copies) of 4..64 bytes at an offset of up to 2^16 here
 * (tag 01: length 4..11 and offset < 2048 in two bytes; tag 10: length 1..64
 * and a 16-bit offset in three). A literal-only block is valid; matching
 * pays because remote-write bodies repeat label names and values on every
 * series, and a smaller body is less for the sender to write and the
 * receiver to decode.
 *
 * The matcher is the reference's idea in its simplest form: the input is cut
 * into 64 KiB fragments (so every offset fits in 16 bits and the hash table
 * can hold 16-bit positions), a hash of the next four bytes looks up the
 * last position with the same hash, and a hit that really matches is
 * extended as far as it goes. Misses skip ahead faster the longer they last,
 * so incompressible input costs little more than copying it. */
#include "internal/snappy.h"

#include <string.h>

#define PM__SNAPPY_FRAGMENT 65536u
#define PM__SNAPPY_HASH_BITS 13u

static inline uint32_t pm__load32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static inline uint32_t pm__snappy_hash(uint32_t v)
{
    return (v * 0x1e35a7bdu) >> (32 - PM__SNAPPY_HASH_BITS);
}

static uint8_t *pm__snappy_varint(uint8_t *d, size_t v)
{
    while (v >= 0x80) {
        *d++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *d++ = (uint8_t)v;
    return d;
}

static uint8_t *pm__snappy_literal(uint8_t *d, const uint8_t *s, size_t n)
{
    size_t m = n - 1;
    if (m < 60) {
        *d++ = (uint8_t)(m << 2);
    } else {
        /* Tag 60..63: 1..4 little-endian bytes of length - 1 follow. */
        uint8_t *tag = d++;
        unsigned bytes = 0;
        while (m) {
            *d++ = (uint8_t)m;
            m >>= 8;
            bytes++;
        }
        *tag = (uint8_t)((59 + bytes) << 2);
    }
    memcpy(d, s, n);
    return d + n;
}

/* One copy of len (4..64) bytes at offset (1..65535). */
static inline uint8_t *pm__snappy_copy1(uint8_t *d, size_t off, size_t len)
{
    if (len <= 11 && off < 2048) {
        *d++ = (uint8_t)(1 | ((len - 4) << 2) | ((off >> 8) << 5));
        *d++ = (uint8_t)off;
    } else {
        *d++ = (uint8_t)(2 | ((len - 1) << 2));
        *d++ = (uint8_t)off;
        *d++ = (uint8_t)(off >> 8);
    }
    return d;
}

static uint8_t *pm__snappy_copy(uint8_t *d, size_t off, size_t len)
{
    /* Split so that no piece is shorter than 4 (tag 01's minimum, and what
     * the matcher guarantees): 64-byte pieces while more than 67 remain. */
    while (len >= 68) {
        d = pm__snappy_copy1(d, off, 64);
        len -= 64;
    }
    if (len > 64) {
        d = pm__snappy_copy1(d, off, 60);
        len -= 60;
    }
    return pm__snappy_copy1(d, off, len);
}

/* Compresses one fragment (n <= 64 KiB); positions in table are relative to
 * the fragment's start. */
static uint8_t *pm__snappy_fragment(const uint8_t *src, size_t n, uint8_t *d, uint16_t *table)
{
    const uint8_t *lit = src; /* start of the bytes not yet emitted */
    if (n < 15) goto tail;    /* too short for a match worth its tag */
    memset(table, 0, sizeof(uint16_t) << PM__SNAPPY_HASH_BITS);
    /* Matches start and end at least 4 bytes before the end, so the 4-byte
     * loads never run past it. */
    const uint8_t *limit = src + n - 4;
    const uint8_t *ip = src + 1;
    unsigned skip = 32; /* misses in a row, times 32: the step grows with them */
    while (ip < limit) {
        uint32_t v = pm__load32(ip);
        uint32_t h = pm__snappy_hash(v);
        const uint8_t *cand = src + table[h];
        table[h] = (uint16_t)(ip - src);
        if (cand >= ip || pm__load32(cand) != v) {
            ip += skip++ >> 5;
            continue;
        }
        skip = 32;
        if (ip > lit) d = pm__snappy_literal(d, lit, (size_t)(ip - lit));
        const uint8_t *m = ip + 4, *c = cand + 4;
        const uint8_t *end = src + n;
        while (m < end && *m == *c) {
            m++;
            c++;
        }
        d = pm__snappy_copy(d, (size_t)(ip - cand), (size_t)(m - ip));
        ip = m;
        lit = m;
        /* Remember the position just before the match's end, as the
         * reference does, so runs of repeated records chain. */
        if (ip < limit) table[pm__snappy_hash(pm__load32(ip - 1))] = (uint16_t)(ip - 1 - src);
    }
tail:
    if (src + n > lit) d = pm__snappy_literal(d, lit, (size_t)(src + n - lit));
    return d;
}

size_t pm__snappy_compress(const uint8_t *src, size_t n, uint8_t *dst)
{
    uint16_t table[1u << PM__SNAPPY_HASH_BITS];
    uint8_t *d = pm__snappy_varint(dst, n);
    for (size_t off = 0; off < n; off += PM__SNAPPY_FRAGMENT) {
        size_t len = n - off < PM__SNAPPY_FRAGMENT ? n - off : PM__SNAPPY_FRAGMENT;
        d = pm__snappy_fragment(src + off, len, d, table);
    }
    return (size_t)(d - dst);
}
