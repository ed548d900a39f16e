/* Snappy block format (google/snappy format_description.txt), compression
 * only: the remote-write body is one Snappy block, not the framed stream
 * format. Private to lib/ and its tests. */
#ifndef PM_SNAPPY_H
#define PM_SNAPPY_H

#include <stddef.h>
#include <stdint.h>

/* Bound on the compressed size of n input bytes (length preamble, literal
 * tags and the worst case of incompressible input included). */
static inline size_t pm__snappy_bound(size_t n) { return 32 + n + n / 6; }

/* Compresses src[0, n) into dst, which must hold pm__snappy_bound(n)
 * bytes; returns the compressed length. Never fails, never allocates (its
 * hash table, 16 KiB, is on the stack). Thread-safety: any thread. */
size_t pm__snappy_compress(const uint8_t *src, size_t n, uint8_t *dst);

#endif
