/* libperfmetrics — text formats for snapshots: Prometheus text 0.0.4,
 * OpenMetrics 1.0 text and a JSON document (schema in doc/formats.md).
 * Output goes to a growable buffer or is streamed to a write callback. */
#ifndef PERFMETRICS_FORMAT_H
#define PERFMETRICS_FORMAT_H

#include <perfmetrics/base.h>
#include <perfmetrics/snapshot.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum pm_format {
    PM_FORMAT_PROMETHEUS = 1,  /* text/plain; version=0.0.4 */
    PM_FORMAT_OPENMETRICS = 2, /* application/openmetrics-text; version=1.0.0 */
    PM_FORMAT_JSON = 3         /* application/json */
} pm_format_t;

typedef struct pm_buf pm_buf_t;

/* Creates an empty growable byte buffer (malloc-backed). Release with pm_buf_free.
 * Errors: PM_EINVAL, PM_ENOMEM. Thread-safety: any thread; one buffer, one thread at a time. */
PM_API pm_status_t pm_buf_new(pm_buf_t **out);
/* Frees; NULL is a no-op. */
PM_API void pm_buf_free(pm_buf_t *b);
/* The bytes written so far, always followed by a NUL (not counted); borrowed
 * until the next write, reset or free. Never NULL for a valid buffer. */
PM_API const char *pm_buf_data(const pm_buf_t *b);
/* Number of bytes written; 0 for NULL. */
PM_API size_t pm_buf_len(const pm_buf_t *b);
/* Empties the buffer, keeping its capacity. NULL is a no-op. */
PM_API void pm_buf_reset(pm_buf_t *b);
/* Appends bytes. Errors: PM_EINVAL, PM_ENOMEM (buffer unchanged). */
PM_API pm_status_t pm_buf_append(pm_buf_t *b, const void *data, size_t len);

/* Write callback for streaming: returns 0 on success; any other value stops
 * the output and the format call returns PM_ECALLBACK. */
typedef int (*pm_write_fn)(void *user, const char *data, size_t len);

/* Appends snapshot s in format fmt to b. On error, b is restored to its length
 * before the call. Errors: PM_EINVAL (NULL, unknown format), PM_ENOMEM.
 * Thread-safety: any thread. */
PM_API pm_status_t pm_format(const pm_snapshot_t *s, pm_format_t fmt, pm_buf_t *b);

/* Streams snapshot s in format fmt to fn in chunks (at most 16 KiB each).
 * Errors: PM_EINVAL, PM_ENOMEM, PM_ECALLBACK. Thread-safety: any thread. */
PM_API pm_status_t pm_format_write(const pm_snapshot_t *s, pm_format_t fmt, pm_write_fn fn,
                                   void *user);

/* Appends the gzip (RFC 1952) compression of src's bytes to dst.
 * Errors: PM_EINVAL (NULL, src == dst), PM_ENOMEM (dst restored),
 * PM_EUNSUPPORTED (library built without zlib; see pm_has_zlib).
 * Thread-safety: any thread; the two buffers must not be used elsewhere meanwhile. */
PM_API pm_status_t pm_buf_gzip(const pm_buf_t *src, pm_buf_t *dst);

/* Returns 1 if the library was built with zlib (pm_buf_gzip works), else 0. */
PM_API int pm_has_zlib(void);

/* The HTTP Content-Type for fmt; "" for an unknown one. Never NULL. */
PM_API const char *pm_format_content_type(pm_format_t fmt);

#ifdef __cplusplus
}
#endif
#endif
