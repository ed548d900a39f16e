/* libperfmetrics — base definitions shared by every public header:
 * version macros, the export macro, status codes and allocator hooks.
 *
 * Thread classes used throughout the API (stated per function):
 *   "any thread, lock-free"  recording; never locks, allocates or makes a syscall.
 *   "any thread"             registration, look-up, snapshot; may lock and allocate.
 *   "not concurrently with X" the caller serialises the two calls.
 * Callbacks the library calls are never re-entered concurrently for one handle. */
#ifndef PERFMETRICS_BASE_H
#define PERFMETRICS_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Compile-time version of the headers. pm_version() gives the loaded library's. */
#define PM_VERSION_MAJOR 1
#define PM_VERSION_MINOR 7
#define PM_VERSION_PATCH 0
#define PM_VERSION_NUMBER (PM_VERSION_MAJOR * 10000 + PM_VERSION_MINOR * 100 + PM_VERSION_PATCH)
#define PM_VERSION_STRING "1.7.0"
#define PM_VERSION_AT_LEAST(x, y, z) (PM_VERSION_NUMBER >= ((x) * 10000 + (y) * 100 + (z)))

#if defined(PM_STATIC)
#define PM_API
#elif defined(PM_BUILDING_LIBRARY) && (defined(__GNUC__) || defined(__clang__))
#define PM_API __attribute__((visibility("default")))
#else
#define PM_API
#endif

/* Status codes. Codes are only ever appended; a retired code stays a hole.
 * XX(NAME, value, text) */
#define PM_STATUS_MAP(XX)                                                          \
    XX(OK, 0, "success")                                                           \
    XX(EINVAL, -1, "invalid argument")                                             \
    XX(ENOMEM, -2, "out of memory")                                                \
    XX(EEXIST, -3, "already registered with a different definition")              \
    XX(ENOENT, -4, "not found")                                                    \
    XX(EBADNAME, -5, "invalid metric name")                                        \
    XX(EBADLABEL, -6, "invalid or reserved label name")                            \
    XX(ELABELCOUNT, -7, "wrong number of label values")                            \
    XX(EUTF8, -8, "string is not valid UTF-8")                                     \
    XX(ETYPE, -9, "metric type mismatch")                                          \
    XX(ERANGE, -10, "value out of range")                                          \
    XX(ESTATE, -11, "operation not valid in the current state")                    \
    XX(EIO, -12, "I/O error")                                                      \
    XX(ECALLBACK, -13, "a callback reported failure")                              \
    XX(EPARSE, -14, "malformed input")                                             \
    XX(EUNSUPPORTED, -15, "not supported on this platform or build")              \
    XX(ETHREAD, -16, "could not start a thread")                                  \
    XX(ETIMEDOUT, -17, "timed out")

typedef enum pm_status {
#define PM_STATUS_ENUM_(name, value, text) PM_##name = value,
    PM_STATUS_MAP(PM_STATUS_ENUM_)
#undef PM_STATUS_ENUM_
    PM_STATUS_LAST_ = -16 /* lowest code in this version; not a status */
} pm_status_t;

/* Returns a static, human-readable sentence for `status`; never NULL
 * ("unknown status" for values not in the map).
 * Thread-safety: any thread, lock-free. */
PM_API const char *pm_strerror(int status);

/* Returns the status's symbolic name ("PM_EINVAL"); never NULL ("PM_UNKNOWN").
 * Thread-safety: any thread, lock-free. */
PM_API const char *pm_status_name(int status);

/* Returns the version of the loaded library as PM_VERSION_NUMBER would
 * compute it, so a program can compare it with the header it compiled against.
 * Thread-safety: any thread, lock-free. */
PM_API unsigned pm_version(void);

/* Returns the loaded library's version as "MAJOR.MINOR.PATCH"; static storage.
 * Thread-safety: any thread, lock-free. */
PM_API const char *pm_version_string(void);

/* Allocator hooks (per registry, see pm_registry_opts_set_allocator).
 * alloc returns NULL on failure; the library aligns what it needs itself. */
typedef void *(*pm_alloc_fn)(void *user, size_t size);
typedef void (*pm_free_fn)(void *user, void *ptr);

/* Release callback for user data handed to the library (collectors,
 * exporters): called once, when the object that holds `user` is removed or its
 * registry freed, on the thread doing that. May be NULL where accepted. */
typedef void (*pm_release_fn)(void *user);

/* Releases memory that a pm_ function documented as "release with pm_free"
 * returned. pm_free(NULL) is a no-op.
 * Thread-safety: any thread. */
PM_API void pm_free(void *ptr);

#ifdef __cplusplus
}
#endif
#endif
