/* Tests for pm_buf_*, pm_format, pm_format_write, pm_format_content_type and
 * the shared number/escaping helpers: exact text of small registries in each
 * format, hostile label values, bad inputs, streaming == buffered, gzip. */
#include "harness.h"

#include "internal/format_internal.h"
#include "pm_config.h"
#include <perfmetrics/perfmetrics.h>

#include <errno.h>
#include <locale.h>
#include <sys/resource.h>
#include <time.h>

#if PM_HAVE_ZLIB
#include <zlib.h>
#endif

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TF_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define TF_SANITIZED 1
#endif
#endif
#ifndef TF_SANITIZED
#define TF_SANITIZED 0
#endif

/* ------------------------------------------------------------- helpers */

static pm_registry_t *tf_registry(void)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    /* Self metrics would make the exact texts depend on the library's internals. */
    pm_registry_opts_set_self_metrics(o, 0);
    pm_registry_new(o, &r);
    pm_registry_opts_free(o);
    return r;
}

static pm_family_t *tf_family(pm_registry_t *r, pm_type_t type, const char *name, const char *help,
                              const char *unit, const char *const *labels, size_t nl,
                              const double *bounds, size_t nb, size_t max_series)
{
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    if (pm_family_opts_new(&o) != PM_OK) return NULL;
    if (unit) pm_family_opts_set_unit(o, unit);
    if (nl) pm_family_opts_set_labels(o, labels, nl);
    if (nb) pm_family_opts_set_buckets(o, bounds, nb);
    if (max_series) pm_family_opts_set_max_series(o, max_series);
    pm_status_t st = pm_family_new(r, type, name, help, o, &f);
    pm_family_opts_free(o);
    if (st != PM_OK) {
        fprintf(stderr, "  pm_family_new(%s): %s\n", name, pm_status_name(st));
        return NULL;
    }
    return f;
}

/* Formats a fresh snapshot of r; the caller frees the returned string. */
static char *tf_format_registry(pm_registry_t *r, pm_format_t fmt)
{
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    char *out = NULL;
    if (pm_snapshot_new(r, &s) == PM_OK && pm_buf_new(&b) == PM_OK && pm_format(s, fmt, b) == PM_OK)
        out = strdup(pm_buf_data(b));
    pm_buf_free(b);
    pm_snapshot_release(s);
    return out;
}

/* Replaces the variable numbers (snapshot time, creation times) with "T" so
 * the rest can be compared exactly: the value after `"timestamp":` and
 * `"created":` in JSON, and the value of every `_created` line in
 * OpenMetrics. Each replaced value must parse as a plausible Unix time. */
static char *tf_normalise_times(const char *in, int *bad)
{
    size_t n = strlen(in);
    char *out = malloc(n + 1);
    size_t o = 0;
    const char *p = in;
    while (*p) {
        const char *val = NULL;
        if (!strncmp(p, "\"timestamp\":", 12) || !strncmp(p, "\"created\":", 10)) {
            const char *colon = strchr(p, ':');
            memcpy(out + o, p, (size_t)(colon + 1 - p));
            o += (size_t)(colon + 1 - p);
            val = colon + 1;
        } else if (!strncmp(p, "_created", 8)) {
            const char *sp = strchr(p, '\n');
            const char *q = sp;
            while (q > p && q[-1] != ' ') q--;
            memcpy(out + o, p, (size_t)(q - p));
            o += (size_t)(q - p);
            val = q;
        }
        if (!val) {
            out[o++] = *p++;
            continue;
        }
        char *end = NULL;
        double t = strtod(val, &end);
        if (end == val) {
            if (!strncmp(val, "null", 4)) {
                memcpy(out + o, "null", 4);
                o += 4;
                p = val + 4;
                continue;
            }
            (*bad)++;
            end = (char *)val;
        }
        /* 2001..2100: created in this process run, so "now"-ish. */
        if (!(t > 1e9 && t < 4.2e9)) (*bad)++;
        out[o++] = 'T';
        p = end;
    }
    out[o] = '\0';
    return out;
}

/* Prints the first difference, which is what one needs when an exact text fails. */
#define CHECK_TEXT(got, want)                                                                      \
    do {                                                                                           \
        const char *tg_ = (got), *tw_ = (want);                                                    \
        if (!tg_ || strcmp(tg_, tw_) != 0) {                                                       \
            size_t i_ = 0;                                                                         \
            while (tg_ && tg_[i_] && tg_[i_] == tw_[i_]) i_++;                                     \
            TH_FAIL_("text differs at byte %zu\n--- got:\n%s\n--- want:\n%s", i_,                  \
                     tg_ ? tg_ : "(null)", tw_);                                                   \
        }                                                                                          \
    } while (0)

/* A small registry used by the exact-text tests:
 *   http_requests (counter, labels method/code): {GET,200}=3, {POST,500}=1.5
 *   latency_seconds (histogram, unit seconds, label path, bounds 0.1 1 10):
 *       {/a} observed 0.0625 0.5 4 32; {/b} nothing
 *   queue_length (gauge, no labels): -3.25
 *   idle_things (gauge, label kind, no series) */
static pm_registry_t *tf_small_registry(void)
{
    pm_registry_t *r = tf_registry();
    if (!r) return NULL;
    static const char *const req_labels[] = {"method", "code"};
    pm_family_t *req = tf_family(r, PM_TYPE_COUNTER, "http_requests", "Requests served.", NULL,
                                 req_labels, 2, NULL, 0, 0);
    static const char *const get200[] = {"GET", "200"}, *const post500[] = {"POST", "500"};
    pm_counter_t *c = NULL;
    if (!req || pm_counter_get(req, get200, 2, &c) != PM_OK) return NULL;
    pm_counter_add_u64(c, 3);
    pm_counter_release(c);
    if (pm_counter_add_labeled(req, post500, 2, 1.5) != PM_OK) return NULL;

    static const char *const path[] = {"path"};
    static const double bounds[] = {0.1, 1, 10};
    pm_family_t *lat = tf_family(r, PM_TYPE_HISTOGRAM, "latency_seconds", "Request latency.",
                                 "seconds", path, 1, bounds, 3, 0);
    static const char *const a[] = {"/a"}, *const bpath[] = {"/b"};
    pm_histogram_t *h = NULL;
    if (!lat || pm_histogram_get(lat, a, 1, &h) != PM_OK) return NULL;
    pm_histogram_observe(h, 0.0625);
    pm_histogram_observe(h, 0.5);
    pm_histogram_observe(h, 4);
    pm_histogram_observe(h, 32);
    pm_histogram_release(h);
    if (pm_histogram_get(lat, bpath, 1, &h) != PM_OK) return NULL;
    pm_histogram_release(h);

    pm_gauge_t *g = NULL;
    if (pm_gauge_new(r, "queue_length", "Items waiting.", &g) != PM_OK) return NULL;
    pm_gauge_set(g, -3.25);

    static const char *const kind[] = {"kind"};
    if (!tf_family(r, PM_TYPE_GAUGE, "idle_things", "Nothing yet.", NULL, kind, 1, NULL, 0, 0))
        return NULL;
    return r;
}

/* ------------------------------------------------------------- pm_buf */

TEST(buf_bad_inputs)
{
    CHECK_STATUS(pm_buf_new(NULL), PM_EINVAL);
    pm_buf_free(NULL);
    pm_buf_reset(NULL);
    CHECK_EQ_U64(pm_buf_len(NULL), 0);
    CHECK(pm_buf_data(NULL) != NULL);
    CHECK_STATUS(pm_buf_append(NULL, "x", 1), PM_EINVAL);
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK && b);
    CHECK_STATUS(pm_buf_append(b, NULL, 3), PM_EINVAL);
    CHECK_OK(pm_buf_append(b, NULL, 0)); /* nothing to append */
    CHECK_EQ_U64(pm_buf_len(b), 0);
    pm_buf_free(b);
}

TEST(buf_basics)
{
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    /* A new buffer reads as an empty string before any allocation. */
    CHECK_STR(pm_buf_data(b), "");
    CHECK_EQ_U64(pm_buf_len(b), 0);
    pm_buf_reset(b);
    CHECK_STR(pm_buf_data(b), "");
    CHECK_OK(pm_buf_append(b, "abc", 3));
    CHECK_OK(pm_buf_append(b, "", 0));
    CHECK_OK(pm_buf_append(b, "de", 2));
    CHECK_STR(pm_buf_data(b), "abcde");
    CHECK_EQ_U64(pm_buf_len(b), 5);
    /* Embedded NUL bytes are data, and the terminator still follows. */
    CHECK_OK(pm_buf_append(b, "x\0y", 3));
    CHECK_EQ_U64(pm_buf_len(b), 8);
    CHECK(memcmp(pm_buf_data(b), "abcdex\0y", 9) == 0);
    pm_buf_reset(b);
    CHECK_EQ_U64(pm_buf_len(b), 0);
    CHECK_STR(pm_buf_data(b), "");
    CHECK_OK(pm_buf_append(b, "again", 5));
    CHECK_STR(pm_buf_data(b), "again");
    pm_buf_free(b);
}

TEST(buf_growth)
{
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    char chunk[1000];
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)('a' + i % 26);
    for (int i = 0; i < 3000; i++)
        REQUIRE(pm_buf_append(b, chunk, (size_t)(i % 1000) + 1) == PM_OK);
    size_t want = 0;
    for (int i = 0; i < 3000; i++) want += (size_t)(i % 1000) + 1;
    CHECK_EQ_U64(pm_buf_len(b), want);
    const char *d = pm_buf_data(b);
    CHECK(d[want] == '\0');
    size_t pos = 0;
    int ok = 1;
    for (int i = 0; i < 3000 && ok; i++) {
        size_t n = (size_t)(i % 1000) + 1;
        ok = memcmp(d + pos, chunk, n) == 0;
        pos += n;
    }
    CHECK(ok);
    pm_buf_free(b);
}

TEST(buf_self_append)
{
    /* Appending the buffer's own bytes must survive the reallocation. */
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm_buf_append(b, "0123456789", 10));
    for (int i = 0; i < 12; i++) REQUIRE(pm_buf_append(b, pm_buf_data(b), pm_buf_len(b)) == PM_OK);
    CHECK_EQ_U64(pm_buf_len(b), 10u << 12);
    const char *d = pm_buf_data(b);
    int ok = 1;
    for (size_t i = 0; i < pm_buf_len(b); i++) ok &= d[i] == (char)('0' + i % 10);
    CHECK(ok);
    CHECK(d[pm_buf_len(b)] == '\0');
    pm_buf_free(b);
}

/* Past 4 MiB a buffer is a mapping of its own that grows by moving its
 * pages (lib/buf.c): every byte must survive the move from malloc's memory
 * and each later move, appends of its own bytes included, and a reset
 * buffer is reused. */
TEST(buf_large_mapped)
{
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    char chunk[4093]; /* prime, so no append lines up with a page */
    for (size_t i = 0; i < sizeof chunk; i++) chunk[i] = (char)('a' + i % 26);
    const size_t target = (size_t)20 << 20;
    while (pm_buf_len(b) < target) REQUIRE(pm_buf_append(b, chunk, sizeof chunk) == PM_OK);
    size_t len = pm_buf_len(b);
    const char *d = pm_buf_data(b);
    int ok = d[len] == '\0';
    for (size_t i = 0; i < len && ok; i++) ok = d[i] == chunk[i % sizeof chunk];
    CHECK(ok);
    /* Doubling by appending itself moves the mapping with the source in it. */
    REQUIRE(pm_buf_append(b, pm_buf_data(b), len) == PM_OK);
    CHECK_EQ_U64(pm_buf_len(b), 2 * len);
    d = pm_buf_data(b);
    ok = d[2 * len] == '\0';
    for (size_t i = 0; i < 2 * len && ok; i++) ok = d[i] == chunk[(i % len) % sizeof chunk];
    CHECK(ok);
    pm_buf_reset(b);
    CHECK_EQ_U64(pm_buf_len(b), 0);
    CHECK_STR(pm_buf_data(b), "");
    CHECK_OK(pm_buf_append(b, "again", 5));
    CHECK_STR(pm_buf_data(b), "again");
    CHECK_STATUS(pm_buf_append(b, "x", SIZE_MAX / 2), PM_ENOMEM);
    CHECK_STR(pm_buf_data(b), "again");
    pm_buf_free(b);
}

TEST(buf_enomem_keeps_content)
{
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm_buf_append(b, "keep", 4));
    /* Sizes that overflow the size arithmetic or cannot be allocated: the
     * buffer must come back unchanged (the source is never read). */
    CHECK_STATUS(pm_buf_append(b, "x", SIZE_MAX), PM_ENOMEM);
    CHECK_STATUS(pm_buf_append(b, "x", SIZE_MAX - 4), PM_ENOMEM);
    CHECK_STATUS(pm_buf_append(b, "x", SIZE_MAX / 2), PM_ENOMEM);
    CHECK_EQ_U64(pm_buf_len(b), 4);
    CHECK_STR(pm_buf_data(b), "keep");
    CHECK_OK(pm_buf_append(b, "!", 1));
    CHECK_STR(pm_buf_data(b), "keep!");
    pm_buf_free(b);
}

/* ------------------------------------------------------------- gzip */

#if PM_HAVE_ZLIB
/* Inflates a gzip member with zlib itself (not our code). */
static int tf_gunzip(const unsigned char *in, size_t len, pm_buf_t *out)
{
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (inflateInit2(&zs, 15 + 16) != Z_OK) return -1;
    zs.next_in = (Bytef *)(uintptr_t)in;
    zs.avail_in = (uInt)len;
    unsigned char tmp[4096];
    int rc;
    do {
        zs.next_out = tmp;
        zs.avail_out = sizeof tmp;
        rc = inflate(&zs, Z_NO_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END) break;
        pm_buf_append(out, tmp, sizeof tmp - zs.avail_out);
    } while (rc != Z_STREAM_END);
    int ok = rc == Z_STREAM_END && zs.avail_in == 0;
    inflateEnd(&zs);
    return ok ? 0 : -1;
}
#endif

TEST(gzip_round_trip)
{
    pm_buf_t *src = NULL, *dst = NULL, *back = NULL;
    REQUIRE(pm_buf_new(&src) == PM_OK && pm_buf_new(&dst) == PM_OK && pm_buf_new(&back) == PM_OK);
    CHECK_STATUS(pm_buf_gzip(NULL, dst), PM_EINVAL);
    CHECK_STATUS(pm_buf_gzip(src, NULL), PM_EINVAL);
    CHECK_STATUS(pm_buf_gzip(src, src), PM_EINVAL);
    pm_registry_t *r = tf_small_registry();
    REQUIRE(r);
    /* Enough text to need several deflate blocks. */
    for (int i = 0; i < 200; i++) {
        char *t = tf_format_registry(r, PM_FORMAT_OPENMETRICS);
        REQUIRE(t);
        pm_buf_append(src, t, strlen(t));
        free(t);
    }
    CHECK_OK(pm_buf_append(dst, "HDR", 3));
#if PM_HAVE_ZLIB
    CHECK_EQ_INT(pm_has_zlib(), 1);
    CHECK_OK(pm_buf_gzip(src, dst));
    /* Appended after the existing bytes, with the gzip magic. */
    REQUIRE(pm_buf_len(dst) > 3 + 18);
    const unsigned char *z = (const unsigned char *)pm_buf_data(dst);
    CHECK(memcmp(z, "HDR", 3) == 0);
    CHECK(z[3] == 0x1f && z[4] == 0x8b && z[5] == 8);
    CHECK(pm_buf_len(dst) - 3 < pm_buf_len(src) / 4); /* repetitive text compresses */
    CHECK_EQ_INT(tf_gunzip(z + 3, pm_buf_len(dst) - 3, back), 0);
    CHECK_EQ_U64(pm_buf_len(back), pm_buf_len(src));
    CHECK(memcmp(pm_buf_data(back), pm_buf_data(src), pm_buf_len(src)) == 0);

    /* An empty source still gives a valid (empty) gzip member. */
    pm_buf_t *empty = NULL;
    REQUIRE(pm_buf_new(&empty) == PM_OK);
    pm_buf_reset(dst);
    pm_buf_reset(back);
    CHECK_OK(pm_buf_gzip(empty, dst));
    CHECK(pm_buf_len(dst) >= 18);
    CHECK_EQ_INT(tf_gunzip((const unsigned char *)pm_buf_data(dst), pm_buf_len(dst), back), 0);
    CHECK_EQ_U64(pm_buf_len(back), 0);
    pm_buf_free(empty);
#else
    CHECK_EQ_INT(pm_has_zlib(), 0);
    CHECK_STATUS(pm_buf_gzip(src, dst), PM_EUNSUPPORTED);
    CHECK_STR(pm_buf_data(dst), "HDR");
#endif
    pm_registry_free(r);
    pm_buf_free(src);
    pm_buf_free(dst);
    pm_buf_free(back);
}

/* ------------------------------------------------------------- API edges */

TEST(content_types)
{
    CHECK_STR(pm_format_content_type(PM_FORMAT_PROMETHEUS),
              "text/plain; version=0.0.4; charset=utf-8");
    CHECK_STR(pm_format_content_type(PM_FORMAT_OPENMETRICS),
              "application/openmetrics-text; version=1.0.0; charset=utf-8");
    CHECK_STR(pm_format_content_type(PM_FORMAT_JSON), "application/json");
    CHECK_STR(pm_format_content_type((pm_format_t)0), "");
    CHECK_STR(pm_format_content_type((pm_format_t)4), "");
    CHECK_STR(pm_format_content_type((pm_format_t)-1), "");
}

static int tf_sink(void *user, const char *data, size_t len)
{
    pm_buf_t *b = user;
    return pm_buf_append(b, data, len) == PM_OK ? 0 : 1;
}

TEST(format_bad_inputs)
{
    pm_registry_t *r = tf_small_registry();
    REQUIRE(r);
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK && pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm_buf_append(b, "prefix", 6));
    CHECK_STATUS(pm_format(NULL, PM_FORMAT_PROMETHEUS, b), PM_EINVAL);
    CHECK_STATUS(pm_format(s, PM_FORMAT_PROMETHEUS, NULL), PM_EINVAL);
    CHECK_STATUS(pm_format(s, (pm_format_t)0, b), PM_EINVAL);
    CHECK_STATUS(pm_format(s, (pm_format_t)4, b), PM_EINVAL);
    CHECK_STATUS(pm_format(s, (pm_format_t)-7, b), PM_EINVAL);
    CHECK_STR(pm_buf_data(b), "prefix"); /* untouched by rejected calls */
    CHECK_STATUS(pm_format_write(NULL, PM_FORMAT_JSON, tf_sink, b), PM_EINVAL);
    CHECK_STATUS(pm_format_write(s, PM_FORMAT_JSON, NULL, b), PM_EINVAL);
    CHECK_STATUS(pm_format_write(s, (pm_format_t)0, tf_sink, b), PM_EINVAL);
    CHECK_STATUS(pm_format_write(s, (pm_format_t)99, tf_sink, b), PM_EINVAL);
    CHECK_STR(pm_buf_data(b), "prefix");
    /* pm_format appends after what is there. */
    CHECK_OK(pm_format(s, PM_FORMAT_OPENMETRICS, b));
    CHECK(strncmp(pm_buf_data(b), "prefix# TYPE ", 13) == 0);
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

struct tf_failing {
    int calls;
    int fail_at; /* 1-based call that returns non-zero */
    size_t bytes;
    size_t max_chunk;
};

static int tf_failing_sink(void *user, const char *data, size_t len)
{
    struct tf_failing *f = user;
    (void)data;
    f->calls++;
    f->bytes += len;
    if (len > f->max_chunk) f->max_chunk = len;
    return f->calls == f->fail_at ? 42 : 0;
}

/* A registry whose text is far over one 16 KiB chunk. */
static pm_registry_t *tf_big_registry(int series)
{
    pm_registry_t *r = tf_registry();
    if (!r) return NULL;
    static const char *const names[] = {"shard", "detail"};
    pm_family_t *c = tf_family(r, PM_TYPE_COUNTER, "big_events", "Events, per shard.", NULL, names,
                               2, NULL, 0, 0);
    pm_family_t *g = tf_family(r, PM_TYPE_GAUGE, "big_level", "Level \"quoted\" \\ help.", NULL,
                               names, 2, NULL, 0, 0);
    pm_family_t *h = tf_family(r, PM_TYPE_HISTOGRAM, "big_wait_seconds", "Wait time.", "seconds",
                               names, 2, NULL, 0, 0);
    if (!c || !g || !h) return NULL;
    for (int i = 0; i < series; i++) {
        char shard[32], detail[64];
        snprintf(shard, sizeof shard, "s%05d", i);
        snprintf(detail, sizeof detail, "q\"u\\o\nte é✓ %d", i * 7);
        const char *v[] = {shard, detail};
        if (pm_counter_add_labeled(c, v, 2, (double)i * 3) != PM_OK) return NULL;
        if (pm_gauge_set_labeled(g, v, 2, i * 0.1 - 5) != PM_OK) return NULL;
        if (i % 10 == 0 && pm_histogram_observe_labeled(h, v, 2, 0.001 * i) != PM_OK) return NULL;
    }
    return r;
}

TEST(format_write_callback_failure)
{
    pm_registry_t *r = tf_big_registry(1000);
    REQUIRE(r);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    pm_format_t fmts[] = {PM_FORMAT_PROMETHEUS, PM_FORMAT_OPENMETRICS, PM_FORMAT_JSON};
    for (size_t k = 0; k < 3; k++) {
        for (int fail_at = 1; fail_at <= 3; fail_at++) {
            struct tf_failing f = {0, fail_at, 0, 0};
            CHECK_STATUS(pm_format_write(s, fmts[k], tf_failing_sink, &f), PM_ECALLBACK);
            /* The first refusal stops the output: no call after it. */
            CHECK_EQ_INT(f.calls, fail_at);
            CHECK(f.max_chunk <= PM__STAGE_SIZE);
        }
    }
    pm_snapshot_release(s);
    pm_registry_free(r);

    /* Output smaller than one chunk: the single, final call fails. */
    r = tf_small_registry();
    REQUIRE(r && pm_snapshot_new(r, &s) == PM_OK);
    struct tf_failing f = {0, 1, 0, 0};
    CHECK_STATUS(pm_format_write(s, PM_FORMAT_PROMETHEUS, tf_failing_sink, &f), PM_ECALLBACK);
    CHECK_EQ_INT(f.calls, 1);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

struct tf_chunks {
    pm_buf_t *b;
    int calls;
    /* Chunks well below 16 KiB: only the last may be one; the others may be
     * short by less than one reserved number/escape, never more. */
    int short_chunks;
    size_t max_chunk;
};

static int tf_chunk_sink(void *user, const char *data, size_t len)
{
    struct tf_chunks *c = user;
    c->calls++;
    if (len > c->max_chunk) c->max_chunk = len;
    if (len < PM__STAGE_SIZE - PM__W_SCRATCH) c->short_chunks++;
    if (len == 0) return 1; /* never called with nothing */
    return pm_buf_append(c->b, data, len) == PM_OK ? 0 : 1;
}

TEST(stream_equals_buffer)
{
    pm_registry_t *r = tf_big_registry(2000);
    REQUIRE(r);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    pm_format_t fmts[] = {PM_FORMAT_PROMETHEUS, PM_FORMAT_OPENMETRICS, PM_FORMAT_JSON};
    for (size_t k = 0; k < 3; k++) {
        pm_buf_t *buffered = NULL, *streamed = NULL;
        REQUIRE(pm_buf_new(&buffered) == PM_OK && pm_buf_new(&streamed) == PM_OK);
        CHECK_OK(pm_format(s, fmts[k], buffered));
        struct tf_chunks c = {streamed, 0, 0, 0};
        CHECK_OK(pm_format_write(s, fmts[k], tf_chunk_sink, &c));
        CHECK(pm_buf_len(buffered) > 10 * PM__STAGE_SIZE);
        CHECK_EQ_U64(pm_buf_len(streamed), pm_buf_len(buffered));
        CHECK(memcmp(pm_buf_data(streamed), pm_buf_data(buffered), pm_buf_len(buffered)) == 0);
        CHECK(c.max_chunk <= PM__STAGE_SIZE);
        CHECK(c.short_chunks <= 1);
        CHECK(c.calls <= (int)(pm_buf_len(buffered) / (PM__STAGE_SIZE - PM__W_SCRATCH)) + 1);
        pm_buf_free(buffered);
        pm_buf_free(streamed);
    }
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* A text that crosses the 4 MiB mapping threshold while the writer holds
 * bytes it has not committed (lib/buf.c moves the whole capacity), after
 * existing content: the same bytes as streamed. */
TEST(stream_equals_buffer_large)
{
    pm_registry_t *r = tf_big_registry(30000);
    REQUIRE(r);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    pm_buf_t *buffered = NULL, *streamed = NULL;
    REQUIRE(pm_buf_new(&buffered) == PM_OK && pm_buf_new(&streamed) == PM_OK);
    CHECK_OK(pm_buf_append(buffered, "head\n", 5));
    CHECK_OK(pm_buf_append(streamed, "head\n", 5));
    CHECK_OK(pm_format(s, PM_FORMAT_PROMETHEUS, buffered));
    struct tf_chunks c = {streamed, 0, 0, 0};
    CHECK_OK(pm_format_write(s, PM_FORMAT_PROMETHEUS, tf_chunk_sink, &c));
    CHECK(pm_buf_len(buffered) > ((size_t)4 << 20));
    CHECK_EQ_U64(pm_buf_len(streamed), pm_buf_len(buffered));
    CHECK(memcmp(pm_buf_data(streamed), pm_buf_data(buffered), pm_buf_len(buffered)) == 0);
    pm_buf_free(buffered);
    pm_buf_free(streamed);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* Label blocks of every length up to several stage sizes, so the sample
 * heads and label copies take both their fast paths and their piecewise
 * ones at every offset of the stream's window; each format must stream
 * exactly what it buffers, and a buffer's existing content is kept. */
TEST(stream_equals_buffer_long_labels)
{
    pm_registry_t *r = tf_registry();
    REQUIRE(r);
    /* Label values are at most 4096 bytes: six of them make blocks of up to
     * 1.5 stages, more after escaping. */
    static const char *const names[] = {"k", "a", "b", "c", "d", "e", "f"};
    static const double bounds[] = {0.5, 1};
    pm_family_t *c = tf_family(r, PM_TYPE_COUNTER, "long_c", "C.", NULL, names, 7, NULL, 0, 0);
    pm_family_t *h = tf_family(r, PM_TYPE_HISTOGRAM, "long_h", "H.", NULL, names, 7, bounds, 2, 0);
    REQUIRE(c && h);
    static char val[6][4097];
    for (int i = 0; i < 60; i++) {
        const char *v[7];
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        v[0] = k;
        for (int j = 0; j < 6; j++) {
            size_t len = ((size_t)i * i * 13 + (size_t)j * 977) % 4097;
            for (size_t q = 0; q < len; q++) val[j][q] = "ab\"c\\d\nefgh"[(q + (size_t)i) % 11];
            val[j][len] = '\0';
            v[j + 1] = val[j];
        }
        REQUIRE(pm_counter_add_labeled(c, v, 7, i * 1.5) == PM_OK);
        REQUIRE(pm_histogram_observe_labeled(h, v, 7, i * 0.03) == PM_OK);
    }
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    pm_format_t fmts[] = {PM_FORMAT_PROMETHEUS, PM_FORMAT_OPENMETRICS, PM_FORMAT_JSON};
    for (size_t f = 0; f < 3; f++) {
        pm_buf_t *buffered = NULL, *streamed = NULL;
        REQUIRE(pm_buf_new(&buffered) == PM_OK && pm_buf_new(&streamed) == PM_OK);
        CHECK_OK(pm_buf_append(buffered, "prefix", 6));
        /* Room for all of it: the buffered text takes only the fast paths,
         * the streamed one the piecewise ones at every stage boundary. */
        CHECK_OK(pm__buf_reserve(buffered, 6, 8u << 20));
        CHECK_OK(pm_format(s, fmts[f], buffered));
        struct tf_chunks ch = {streamed, 0, 0, 0};
        CHECK_OK(pm_format_write(s, fmts[f], tf_chunk_sink, &ch));
        CHECK(memcmp(pm_buf_data(buffered), "prefix", 6) == 0);
        CHECK_EQ_U64(pm_buf_len(streamed) + 6, pm_buf_len(buffered));
        CHECK(memcmp(pm_buf_data(streamed), pm_buf_data(buffered) + 6, pm_buf_len(streamed)) == 0);
        CHECK(ch.max_chunk <= PM__STAGE_SIZE);
        CHECK(ch.short_chunks <= 1);
        pm_buf_free(buffered);
        pm_buf_free(streamed);
    }
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* The writer keeps the integer part of the last timestamp-like number: a
 * run of values sharing it, changing it, negative ones and others in
 * between must print exactly what pm__fmt_double prints for each. */
TEST(number_cache_matches_plain)
{
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    pm__writer_t w;
    REQUIRE(pm__writer_init_buf(&w, b) == PM_OK);
    char want[1 << 16];
    size_t wn = 0;
    uint64_t x = 0x2545F4914F6CDD1Du;
    for (int i = 0; i < 1500; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        switch (i % 6) {
        case 0:
        case 1:
        case 2: /* the same second, then the next one now and then */
            d = 1796597450.0 + (double)(i / 40) + (double)(x % 1000000000) * 1e-9;
            break;
        case 3:
            d = -(1796597450.0 + (double)(x % 1000000000) * 1e-9);
            break;
        case 4:
            d = (double)(x % 100000); /* an integer between them */
            break;
        default:
            d = (double)(x >> 11) * 0x1p-53 * pow(10, (double)(x % 20)); /* 1 .. 1e19 */
            break;
        }
        pm__w_double(&w, d);
        pm__w_char(&w, ' ');
        wn += pm__fmt_double(want + wn, d);
        want[wn++] = ' ';
    }
    REQUIRE(pm__writer_finish(&w) == PM_OK);
    CHECK_EQ_U64(pm_buf_len(b), wn);
    CHECK(memcmp(pm_buf_data(b), want, wn) == 0);
    pm_buf_free(b);
}

TEST(format_enomem_restores_buffer)
{
    if (TF_SANITIZED) {
        printf("  (skipped: address-space limit under a sanitizer)\n");
        return;
    }
    /* A registry whose text is tens of MiB (4 KiB label values), then an
     * address-space limit too small for it: pm_format must fail with
     * PM_ENOMEM and leave the buffer exactly as it was. */
    pm_registry_t *r = tf_registry();
    REQUIRE(r);
    static const char *const names[] = {"blob"};
    pm_family_t *f =
        tf_family(r, PM_TYPE_GAUGE, "blobs", "Large label values.", NULL, names, 1, NULL, 0, 0);
    REQUIRE(f);
    char *blob = malloc(4001);
    REQUIRE(blob);
    for (int i = 0; i < 6000; i++) {
        memset(blob, 'a' + i % 26, 4000);
        blob[4000] = '\0';
        snprintf(blob, 4001, "%06d", i);
        blob[6] = 'x';
        const char *v[] = {blob};
        REQUIRE(pm_gauge_set_labeled(f, v, 1, i) == PM_OK);
    }
    free(blob);
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK && pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm_buf_append(b, "before", 6));

    FILE *fp = fopen("/proc/self/statm", "r");
    REQUIRE(fp);
    unsigned long pages = 0;
    REQUIRE(fscanf(fp, "%lu", &pages) == 1);
    fclose(fp);
    rlim_t vm = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE);
    /* Only the soft limit, restored below: with TH_NOFORK=1 the later cases
     * run in this same process. */
    struct rlimit old;
    REQUIRE(getrlimit(RLIMIT_AS, &old) == 0);
    struct rlimit lim = {vm + (8u << 20), old.rlim_max};
    REQUIRE(setrlimit(RLIMIT_AS, &lim) == 0);

    for (int k = 0; k < 3; k++) {
        pm_format_t fmt = k == 0   ? PM_FORMAT_PROMETHEUS
                          : k == 1 ? PM_FORMAT_OPENMETRICS
                                   : PM_FORMAT_JSON;
        CHECK_STATUS(pm_format(s, fmt, b), PM_ENOMEM);
        CHECK_EQ_U64(pm_buf_len(b), 6);
        CHECK_STR(pm_buf_data(b), "before");
    }
    CHECK(setrlimit(RLIMIT_AS, &old) == 0);
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------- exact texts */

static const char tf_small_prometheus[] = "# HELP http_requests_total Requests served.\n"
                                          "# TYPE http_requests_total counter\n"
                                          "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
                                          "http_requests_total{method=\"POST\",code=\"500\"} 1.5\n"
                                          "# HELP idle_things Nothing yet.\n"
                                          "# TYPE idle_things gauge\n"
                                          "# HELP latency_seconds Request latency.\n"
                                          "# TYPE latency_seconds histogram\n"
                                          "latency_seconds_bucket{path=\"/a\",le=\"0.1\"} 1\n"
                                          "latency_seconds_bucket{path=\"/a\",le=\"1.0\"} 2\n"
                                          "latency_seconds_bucket{path=\"/a\",le=\"10.0\"} 3\n"
                                          "latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 4\n"
                                          "latency_seconds_sum{path=\"/a\"} 36.5625\n"
                                          "latency_seconds_count{path=\"/a\"} 4\n"
                                          "latency_seconds_bucket{path=\"/b\",le=\"0.1\"} 0\n"
                                          "latency_seconds_bucket{path=\"/b\",le=\"1.0\"} 0\n"
                                          "latency_seconds_bucket{path=\"/b\",le=\"10.0\"} 0\n"
                                          "latency_seconds_bucket{path=\"/b\",le=\"+Inf\"} 0\n"
                                          "latency_seconds_sum{path=\"/b\"} 0\n"
                                          "latency_seconds_count{path=\"/b\"} 0\n"
                                          "# HELP queue_length Items waiting.\n"
                                          "# TYPE queue_length gauge\n"
                                          "queue_length -3.25\n";

static const char tf_small_openmetrics[] = "# TYPE http_requests counter\n"
                                           "# HELP http_requests Requests served.\n"
                                           "http_requests_total{method=\"GET\",code=\"200\"} 3\n"
                                           "http_requests_created{method=\"GET\",code=\"200\"} T\n"
                                           "http_requests_total{method=\"POST\",code=\"500\"} 1.5\n"
                                           "http_requests_created{method=\"POST\",code=\"500\"} T\n"
                                           "# TYPE idle_things gauge\n"
                                           "# HELP idle_things Nothing yet.\n"
                                           "# TYPE latency_seconds histogram\n"
                                           "# UNIT latency_seconds seconds\n"
                                           "# HELP latency_seconds Request latency.\n"
                                           "latency_seconds_bucket{path=\"/a\",le=\"0.1\"} 1\n"
                                           "latency_seconds_bucket{path=\"/a\",le=\"1.0\"} 2\n"
                                           "latency_seconds_bucket{path=\"/a\",le=\"10.0\"} 3\n"
                                           "latency_seconds_bucket{path=\"/a\",le=\"+Inf\"} 4\n"
                                           "latency_seconds_count{path=\"/a\"} 4\n"
                                           "latency_seconds_sum{path=\"/a\"} 36.5625\n"
                                           "latency_seconds_created{path=\"/a\"} T\n"
                                           "latency_seconds_bucket{path=\"/b\",le=\"0.1\"} 0\n"
                                           "latency_seconds_bucket{path=\"/b\",le=\"1.0\"} 0\n"
                                           "latency_seconds_bucket{path=\"/b\",le=\"10.0\"} 0\n"
                                           "latency_seconds_bucket{path=\"/b\",le=\"+Inf\"} 0\n"
                                           "latency_seconds_count{path=\"/b\"} 0\n"
                                           "latency_seconds_sum{path=\"/b\"} 0\n"
                                           "latency_seconds_created{path=\"/b\"} T\n"
                                           "# TYPE queue_length gauge\n"
                                           "# HELP queue_length Items waiting.\n"
                                           "queue_length -3.25\n"
                                           "# EOF\n";

TEST(prometheus_exact)
{
    pm_registry_t *r = tf_small_registry();
    REQUIRE(r);
    char *t = tf_format_registry(r, PM_FORMAT_PROMETHEUS);
    CHECK_TEXT(t, tf_small_prometheus);
    free(t);
    pm_registry_free(r);
}

TEST(openmetrics_exact)
{
    pm_registry_t *r = tf_small_registry();
    REQUIRE(r);
    char *t = tf_format_registry(r, PM_FORMAT_OPENMETRICS);
    REQUIRE(t);
    int bad = 0;
    char *norm = tf_normalise_times(t, &bad);
    CHECK_EQ_INT(bad, 0);
    CHECK_TEXT(norm, tf_small_openmetrics);
    free(norm);
    free(t);
    pm_registry_free(r);
}

TEST(openmetrics_created_matches_snapshot)
{
    pm_registry_t *r = tf_small_registry();
    REQUIRE(r);
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK && pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm_format(s, PM_FORMAT_OPENMETRICS, b));
    /* The printed _created value reads back to exactly the snapshot's. */
    const pm_snap_family_t *f = NULL;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++)
        if (!strcmp(pm_snap_family_name(pm_snapshot_family(s, i)), "http_requests"))
            f = pm_snapshot_family(s, i);
    REQUIRE(f);
    double created = pm_snap_series_created(pm_snap_family_series(f, 0));
    const char *line =
        strstr(pm_buf_data(b), "http_requests_created{method=\"GET\",code=\"200\"} ");
    REQUIRE(line);
    CHECK_EQ_DBL(strtod(strchr(line, '}') + 2, NULL), created);
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

static const char tf_small_json[] =
    "{\"timestamp\":T,\"families\":[\n"
    "{\"name\":\"http_requests\",\"help\":\"Requests served.\",\"unit\":\"\",\"type\":\"counter\","
    "\"labels\":[\"method\",\"code\"],\"series\":[\n"
    "{\"labels\":{\"method\":\"GET\",\"code\":\"200\"},\"overflow\":false,\"created\":T,\"value\":"
    "3},\n"
    "{\"labels\":{\"method\":\"POST\",\"code\":\"500\"},\"overflow\":false,\"created\":T,\"value\":"
    "1.5}]},\n"
    "{\"name\":\"idle_things\",\"help\":\"Nothing yet.\",\"unit\":\"\",\"type\":\"gauge\","
    "\"labels\":[\"kind\"],\"series\":[]},\n"
    "{\"name\":\"latency_seconds\",\"help\":\"Request latency.\",\"unit\":\"seconds\","
    "\"type\":\"histogram\",\"labels\":[\"path\"],\"series\":[\n"
    "{\"labels\":{\"path\":\"/a\"},\"overflow\":false,\"created\":T,\"count\":4,\"sum\":36.5625,"
    "\"min\":0.0625,\"max\":32,\"mean\":9.140625,\"stddev\":S,\"quantiles\":{\"0.5\":Q,\"0.9\":Q,"
    "\"0.99\":Q,\"0.999\":Q},\"buckets\":[{\"le\":0.1,\"count\":1},{\"le\":1,\"count\":2},"
    "{\"le\":10,\"count\":3},{\"le\":\"+Inf\",\"count\":4}]},\n"
    "{\"labels\":{\"path\":\"/b\"},\"overflow\":false,\"created\":T,\"count\":0,\"sum\":0,"
    "\"min\":null,\"max\":null,\"mean\":null,\"stddev\":null,\"quantiles\":{\"0.5\":null,"
    "\"0.9\":null,\"0.99\":null,\"0.999\":null},\"buckets\":[{\"le\":0.1,\"count\":0},"
    "{\"le\":1,\"count\":0},{\"le\":10,\"count\":0},{\"le\":\"+Inf\",\"count\":0}]}]},\n"
    "{\"name\":\"queue_length\",\"help\":\"Items waiting.\",\"unit\":\"\",\"type\":\"gauge\","
    "\"labels\":[],\"series\":[\n"
    "{\"labels\":{},\"overflow\":false,\"created\":T,\"value\":-3.25}]}\n"
    "]}\n";

/* Replaces the text of the number after each occurrence of `key` with `with`;
 * for the estimated fields (stddev, quantiles), whose exact digits are the
 * histogram's business, after checking each is within `tol` relative of want. */
static void tf_replace_numbers(char *text, const char *key, const char *with, const double *want,
                               size_t nwant, double tol, int *bad)
{
    size_t idx = 0;
    char *p = text;
    while ((p = strstr(p, key)) != NULL) {
        char *v = p + strlen(key);
        char *end = NULL;
        double d = strtod(v, &end);
        if (end == v) { /* null */
            p = v;
            continue;
        }
        if (idx < nwant && !(fabs(d - want[idx]) <= tol * fabs(want[idx]))) {
            fprintf(stderr, "  %s: got %.17g, want %.17g\n", key, d, want[idx]);
            (*bad)++;
        }
        idx++;
        memmove(v + strlen(with), end, strlen(end) + 1);
        memcpy(v, with, strlen(with));
        p = v;
    }
}

TEST(json_exact)
{
    pm_registry_t *r = tf_small_registry();
    REQUIRE(r);
    char *t = tf_format_registry(r, PM_FORMAT_JSON);
    REQUIRE(t);
    int bad = 0;
    char *norm = tf_normalise_times(t, &bad);
    CHECK_EQ_INT(bad, 0);
    /* Nearest-rank quantiles of {0.0625, 0.5, 4, 32}; relative error <= 1/129. */
    const double q[] = {0.5, 32, 32, 32};
    tf_replace_numbers(norm, "\"0.5\":", "Q", q, 1, 1.0 / 128, &bad);
    tf_replace_numbers(norm, "\"0.9\":", "Q", q + 1, 1, 1.0 / 128, &bad);
    tf_replace_numbers(norm, "\"0.99\":", "Q", q + 2, 1, 1.0 / 128, &bad);
    tf_replace_numbers(norm, "\"0.999\":", "Q", q + 3, 1, 1.0 / 128, &bad);
    /* Population stddev of the four values is about 13.37; bucket estimate. */
    const double sd[] = {13.37};
    tf_replace_numbers(norm, "\"stddev\":", "S", sd, 1, 0.05, &bad);
    CHECK_EQ_INT(bad, 0);
    CHECK_TEXT(norm, tf_small_json);
    free(norm);
    free(t);
    pm_registry_free(r);
}

TEST(empty_snapshot)
{
    pm_registry_t *r = tf_registry();
    REQUIRE(r);
    char *t = tf_format_registry(r, PM_FORMAT_PROMETHEUS);
    CHECK_TEXT(t, "");
    free(t);
    t = tf_format_registry(r, PM_FORMAT_OPENMETRICS);
    CHECK_TEXT(t, "# EOF\n");
    free(t);
    t = tf_format_registry(r, PM_FORMAT_JSON);
    REQUIRE(t);
    int bad = 0;
    char *norm = tf_normalise_times(t, &bad);
    CHECK_EQ_INT(bad, 0);
    CHECK_TEXT(norm, "{\"timestamp\":T,\"families\":[\n]}\n");
    free(norm);
    free(t);
    /* Nothing to stream: the callback is never called. */
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    struct tf_failing f = {0, 1, 0, 0};
    CHECK_OK(pm_format_write(s, PM_FORMAT_PROMETHEUS, tf_failing_sink, &f));
    CHECK_EQ_INT(f.calls, 0);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------- hostile input */

TEST(hostile_label_values)
{
    pm_registry_t *r = tf_registry();
    REQUIRE(r);
    static const char *const names[] = {"v"};
    pm_family_t *f =
        tf_family(r, PM_TYPE_COUNTER, "hostile", "Back\\slash, \"quotes\"\nand a newline.", NULL,
                  names, 1, NULL, 0, 0);
    REQUIRE(f);
    const char *values[] = {"a\"b", "back\\slash", "new\nline",     "é✓",
                            "",     "{}=, #",      "tab\tcr\r\x01", "\\n"};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++)
        REQUIRE(pm_counter_add_labeled(f, &values[i], 1, (double)i + 1) == PM_OK);

    char *t = tf_format_registry(r, PM_FORMAT_PROMETHEUS);
    REQUIRE(t);
    CHECK_CONTAINS(t, "# HELP hostile_total Back\\\\slash, \"quotes\"\\nand a newline.\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"a\\\"b\"} 1\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"back\\\\slash\"} 2\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"new\\nline\"} 3\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"é✓\"} 4\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"\"} 5\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"{}=, #\"} 6\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"tab\tcr\r\x01\"} 7\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"\\\\n\"} 8\n");
    free(t);

    t = tf_format_registry(r, PM_FORMAT_OPENMETRICS);
    REQUIRE(t);
    /* OpenMetrics HELP is an escaped-string: '"' is escaped too. */
    CHECK_CONTAINS(t, "# HELP hostile Back\\\\slash, \\\"quotes\\\"\\nand a newline.\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"a\\\"b\"} 1\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"new\\nline\"} 3\n");
    CHECK_CONTAINS(t, "hostile_total{v=\"é✓\"} 4\n");
    free(t);

    t = tf_format_registry(r, PM_FORMAT_JSON);
    REQUIRE(t);
    CHECK_CONTAINS(t, "\"help\":\"Back\\\\slash, \\\"quotes\\\"\\nand a newline.\"");
    CHECK_CONTAINS(t, "{\"labels\":{\"v\":\"a\\\"b\"}");
    CHECK_CONTAINS(t, "{\"labels\":{\"v\":\"back\\\\slash\"}");
    CHECK_CONTAINS(t, "{\"labels\":{\"v\":\"new\\nline\"}");
    CHECK_CONTAINS(t, "{\"labels\":{\"v\":\"é✓\"}");
    CHECK_CONTAINS(t, "{\"labels\":{\"v\":\"tab\\tcr\\r\\u0001\"}");
    /* No raw control character anywhere but the line breaks between series. */
    int raw = 0;
    for (const char *p = t; *p; p++) raw += (unsigned char)*p < 0x20 && *p != '\n';
    CHECK_EQ_INT(raw, 0);
    free(t);
    pm_registry_free(r);
}

TEST(overflow_series)
{
    pm_registry_t *r = tf_registry();
    REQUIRE(r);
    static const char *const names[] = {"user"};
    pm_family_t *c = tf_family(r, PM_TYPE_COUNTER, "logins", "Logins.", NULL, names, 1, NULL, 0, 2);
    static const double bounds[] = {1, 2};
    pm_family_t *h =
        tf_family(r, PM_TYPE_HISTOGRAM, "sizes_bytes", "Sizes.", "bytes", names, 1, bounds, 2, 2);
    REQUIRE(c && h);
    const char *users[] = {"ann", "bob", "cid", "dee", "eve"};
    for (size_t i = 0; i < 5; i++) {
        REQUIRE(pm_counter_add_labeled(c, &users[i], 1, 1) == PM_OK);
        REQUIRE(pm_histogram_observe_labeled(h, &users[i], 1, 1.5) == PM_OK);
    }
    char *t = tf_format_registry(r, PM_FORMAT_PROMETHEUS);
    REQUIRE(t);
    CHECK_CONTAINS(t, "logins_total{user=\"ann\"} 1\n");
    CHECK_CONTAINS(t, "logins_total{pm_overflow=\"true\"} ");
    CHECK_CONTAINS(t, "sizes_bytes_bucket{pm_overflow=\"true\",le=\"2.0\"} ");
    CHECK_CONTAINS(t, "sizes_bytes_count{pm_overflow=\"true\"} ");
    CHECK(strstr(t, "user=\"\"") == NULL);
    /* Every observation is accounted for: 5 in total whatever the split. */
    double total = 0;
    for (const char *p = t; (p = strstr(p, "logins_total{")) != NULL; p++)
        total += strtod(strchr(p, '}') + 2, NULL);
    CHECK_EQ_DBL(total, 5);
    free(t);
    t = tf_format_registry(r, PM_FORMAT_OPENMETRICS);
    REQUIRE(t);
    CHECK_CONTAINS(t, "logins_total{pm_overflow=\"true\"} ");
    CHECK_CONTAINS(t, "logins_created{pm_overflow=\"true\"} ");
    free(t);
    t = tf_format_registry(r, PM_FORMAT_JSON);
    REQUIRE(t);
    CHECK_CONTAINS(t, "{\"labels\":{},\"overflow\":true,");
    free(t);
    pm_registry_free(r);
}

TEST(nonfinite_values)
{
    pm_registry_t *r = tf_registry();
    REQUIRE(r);
    static const char *const names[] = {"k"};
    pm_family_t *g = tf_family(r, PM_TYPE_GAUGE, "odd", "Odd values.", NULL, names, 1, NULL, 0, 0);
    REQUIRE(g);
    const char *k[] = {"nan", "pinf", "ninf", "big", "tiny", "third"};
    const double v[] = {NAN, INFINITY, -INFINITY, 1e300, -2.5e-300, 1.0 / 3};
    for (size_t i = 0; i < 6; i++) REQUIRE(pm_gauge_set_labeled(g, &k[i], 1, v[i]) == PM_OK);
    char *t = tf_format_registry(r, PM_FORMAT_PROMETHEUS);
    REQUIRE(t);
    CHECK_CONTAINS(t, "odd{k=\"nan\"} NaN\n");
    CHECK_CONTAINS(t, "odd{k=\"pinf\"} +Inf\n");
    CHECK_CONTAINS(t, "odd{k=\"ninf\"} -Inf\n");
    CHECK_CONTAINS(t, "odd{k=\"big\"} 1e+300\n");
    CHECK_CONTAINS(t, "odd{k=\"tiny\"} -2.5e-300\n");
    CHECK_CONTAINS(t, "odd{k=\"third\"} 0.3333333333333333\n");
    free(t);
    t = tf_format_registry(r, PM_FORMAT_JSON);
    REQUIRE(t);
    CHECK_CONTAINS(t, "{\"labels\":{\"k\":\"nan\"},\"overflow\":false,\"created\":");
    CHECK_CONTAINS(t, ",\"value\":null}");
    CHECK(strstr(t, "Inf\"") == NULL && strstr(t, "NaN") == NULL);
    CHECK_CONTAINS(t, ",\"value\":1e+300}");
    free(t);
    pm_registry_free(r);
}

TEST(openmetrics_histogram_sum_rules)
{
    /* _sum (and so _count) is left out where OpenMetrics forbids it: negative
     * bucket bounds, or a negative sum. The buckets stay. */
    pm_registry_t *r = tf_registry();
    REQUIRE(r);
    static const double neg[] = {-1, 0, 1};
    pm_family_t *a =
        tf_family(r, PM_TYPE_HISTOGRAM, "temps", "Temperatures.", NULL, NULL, 0, neg, 3, 0);
    static const double pos[] = {1, 2};
    pm_family_t *b = tf_family(r, PM_TYPE_HISTOGRAM, "deltas", "Deltas.", NULL, NULL, 0, pos, 2, 0);
    REQUIRE(a && b);
    REQUIRE(pm_histogram_observe_labeled(a, NULL, 0, -0.5) == PM_OK);
    REQUIRE(pm_histogram_observe_labeled(b, NULL, 0, -5) == PM_OK);
    char *t = tf_format_registry(r, PM_FORMAT_OPENMETRICS);
    REQUIRE(t);
    CHECK_CONTAINS(t, "temps_bucket{le=\"-1.0\"} 0\ntemps_bucket{le=\"0.0\"} 1\n");
    CHECK_CONTAINS(t, "temps_bucket{le=\"+Inf\"} 1\n");
    CHECK(strstr(t, "temps_sum") == NULL && strstr(t, "temps_count") == NULL);
    CHECK_CONTAINS(t, "deltas_bucket{le=\"+Inf\"} 1\n");
    CHECK(strstr(t, "deltas_sum") == NULL && strstr(t, "deltas_count") == NULL);
    free(t);
    /* Prometheus 0.0.4 has no such rule. */
    t = tf_format_registry(r, PM_FORMAT_PROMETHEUS);
    REQUIRE(t);
    CHECK_CONTAINS(t, "temps_sum -0.5\ntemps_count 1\n");
    CHECK_CONTAINS(t, "deltas_sum -5\ndeltas_count 1\n");
    free(t);
    pm_registry_free(r);
}

/* ------------------------------------------------------------- numbers */

static const char *tf_num(double v)
{
    static char out[PM__NUM_MAX];
    pm__fmt_double(out, v);
    return out;
}

static const char *tf_canon(double v)
{
    static char out[PM__NUM_MAX];
    pm__fmt_canonical(out, v);
    return out;
}

TEST(number_formatting)
{
    CHECK_STR(tf_num(0), "0");
    CHECK_STR(tf_num(-0.0), "0");
    CHECK_STR(tf_num(1), "1");
    CHECK_STR(tf_num(-5), "-5");
    CHECK_STR(tf_num(99), "99");
    CHECK_STR(tf_num(100), "100");
    CHECK_STR(tf_num(9007199254740992.0), "9007199254740992");
    CHECK_STR(tf_num(-9223372036854774784.0), "-9223372036854774784");
    CHECK_STR(tf_num(9223372036854775808.0), "9.223372036854776e+18");
    CHECK_STR(tf_num(1e19), "1e+19");
    CHECK_STR(tf_num(0.1), "0.1");
    CHECK_STR(tf_num(2.5e-3), "0.0025");
    CHECK_STR(tf_num(1.0 / 3), "0.3333333333333333");
    CHECK_STR(tf_num(0.1 + 0.2), "0.30000000000000004");
    CHECK_STR(tf_num(1700000000.123456), "1700000000.123456");
    CHECK_STR(tf_num(5e-324), "4.94065645841247e-324"); /* 15 digits read back */
    CHECK_STR(tf_num(0.000123), "0.000123");
    CHECK_STR(tf_num(0.00001), "1e-05");
    CHECK_STR(tf_num(123456789012345.5), "123456789012345.5");
    CHECK_STR(tf_num(-36.5625), "-36.5625");
    CHECK_STR(tf_num(1.5e-7), "1.5e-07");
    CHECK_STR(tf_num(1e15 + 0.5), "1000000000000000.5");
    CHECK_STR(tf_num(9.999999999999999e22), "1e+23"); /* the same double */
    CHECK_STR(tf_num(123456.78901234567), "123456.78901234567");
    CHECK_STR(tf_num(2.675), "2.675");
    CHECK_STR(tf_num(1.7976931348623157e308), "1.7976931348623157e+308");
    CHECK_STR(tf_num(NAN), "NaN");
    CHECK_STR(tf_num(INFINITY), "+Inf");
    CHECK_STR(tf_num(-INFINITY), "-Inf");
    char digits[24];
    CHECK_EQ_U64(pm__fmt_u64(digits, 0), 1);
    CHECK_EQ_U64(pm__fmt_u64(digits, UINT64_MAX), 20);
    CHECK(memcmp(digits, "18446744073709551615", 20) == 0);
}

TEST(number_round_trip)
{
    /* Random bit patterns: every finite double reads back exactly. */
    uint64_t x = 0x9E3779B97F4A7C15u;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        memcpy(&d, &x, sizeof d);
        if (i % 3 == 0) d = (double)(int64_t)(x >> (i % 60)); /* integers too */
        if (!isfinite(d)) continue;
        char out[PM__NUM_MAX];
        size_t n = pm__fmt_double(out, d);
        if (n >= PM__NUM_MAX || strtod(out, NULL) != d || strlen(out) != n) {
            if (bad++ < 5) fprintf(stderr, "  %.17g -> %s\n", d, out);
        }
        n = pm__fmt_canonical(out, d);
        if (n >= PM__NUM_MAX || strtod(out, NULL) != d || !strpbrk(out, ".e")) {
            if (bad++ < 5) fprintf(stderr, "  canonical %.17g -> %s\n", d, out);
        }
    }
    CHECK_EQ_INT(bad, 0);
}

/* The obvious reference: the first of %.15g, %.16g, %.17g that reads back. */
static size_t tf_reference(char *out, double v)
{
    for (int prec = 15;; prec++) {
        snprintf(out, PM__NUM_MAX, "%.*g", prec, v);
        if (prec == 17 || strtod(out, NULL) == v) return strlen(out);
    }
}

TEST(number_matches_reference)
{
    /* The fast paths must print exactly what the printf loop prints, except
     * for integers from 1e15 up, which the integer path writes out in full
     * (exact, where %g would switch to an exponent). */
    uint64_t x = 0x2545F4914F6CDD1Du;
    int differ = 0, n = 0;
    for (int i = 0; i < 400000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        switch (i % 5) {
        case 0:
            memcpy(&d, &x, sizeof d);
            break; /* any bit pattern */
        case 1:
            d = (double)(x % 100000000) / 1e4;
            break; /* short decimals */
        case 2:
            d = 1.7e9 + (double)(x % 1000000000) * 1e-9;
            break; /* timestamps */
        case 3:
            d = (double)(x >> 11) * 0x1p-53 * 1e3;
            break; /* random fractions */
        default:
            d = (double)(x % 2000000) * 1e-6 - 1;
            break; /* micro steps, signed */
        }
        if (!isfinite(d) || (d == floor(d) && fabs(d) >= 1e15)) continue;
        char got[PM__NUM_MAX], want[PM__NUM_MAX];
        pm__fmt_double(got, d);
        tf_reference(want, d);
        n++;
        if (strcmp(got, want) != 0 && differ++ < 5)
            fprintf(stderr, "  %.17g: got %s, reference %s\n", d, got, want);
    }
    printf("  %d values compared with the printf loop\n", n);
    CHECK_EQ_INT(differ, 0);
}

/* Reference for the canonical form, the slow way: the first %.{P-1}e that
 * reads back, laid out as Go's %g (exponent when < -4 or >= 6), ".0" added. */
static void tf_canon_reference(char *out, double v)
{
    char e[PM__NUM_MAX];
    for (int prec = 1;; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, v);
        if (prec == 17 || strtod(e, NULL) == v) break;
    }
    const char *q = e;
    size_t n = 0;
    if (*q == '-') out[n++] = *q++;
    char dig[20];
    int nd = 0;
    for (; *q != 'e'; q++)
        if (*q != '.') dig[nd++] = *q;
    int x = atoi(q + 1);
    if (x < -4 || x >= 6) {
        strcpy(out, e);
        return;
    }
    if (x < 0) {
        n += (size_t)sprintf(out + n, "0.%.*s%.*s", -x - 1, "0000", nd, dig);
    } else if (x + 1 >= nd) {
        n += (size_t)sprintf(out + n, "%.*s%.*s.0", nd, dig, x + 1 - nd, "000000");
    } else {
        n += (size_t)sprintf(out + n, "%.*s.%.*s", x + 1, dig, nd - x - 1, dig + x + 1);
    }
    out[n] = '\0';
}

TEST(canonical_matches_reference)
{
    uint64_t x = 0x853C49E6748FEA9Bu;
    int differ = 0;
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        double d;
        switch (i % 3) {
        case 0:
            memcpy(&d, &x, sizeof d);
            break;
        case 1:
            d = (double)(x % 100000) / 1000;
            break; /* typical bucket bounds */
        default:
            d = (double)(x >> 11) * 0x1p-53 * pow(10, (double)(x % 30) - 15);
            break;
        }
        if (!isfinite(d) || d == 0) continue;
        char got[PM__NUM_MAX], want[PM__NUM_MAX];
        pm__fmt_canonical(got, d);
        tf_canon_reference(want, d);
        if (strcmp(got, want) != 0 && differ++ < 5)
            fprintf(stderr, "  %.17g: got %s, reference %s\n", d, got, want);
    }
    CHECK_EQ_INT(differ, 0);
}

/* Values where the digit choice is delicate, for the exact integer path
 * (2^-46 <= |v| < 1e15): random exponents, dyadic fractions (exact decimals,
 * so exact ties at the 15th-17th digit), parsed 15-17 digit decimals and
 * their neighbours (two candidates may read back), powers of two (the
 * interval is lopsided there), wall-clock timestamps (ns / 1e9). */
static double tf_delicate(uint64_t *x, int i)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    uint64_t r = *x;
    double d;
    switch (i % 8) {
    case 0: { /* any mantissa, exponent in [-48, 51] */
        uint64_t bits = (r & ((1ull << 52) - 1)) | ((uint64_t)(1023 - 48 + (r >> 52) % 100) << 52);
        memcpy(&d, &bits, sizeof d);
        break;
    }
    case 1: /* a / 2^j: exact decimals with up to j fractional digits */
        d = ldexp((double)(r >> (11 + (r % 40))), -(int)(1 + (r >> 5) % 60));
        break;
    case 2:
    case 3: { /* a 15, 16 or 17 digit decimal, then a neighbour */
        char t[48];
        int nd = 15 + (int)(r % 3);
        snprintf(t, sizeof t, "%.*fe%d", nd - 1, (double)(r >> 11) * 0x1p-53 * 9 + 1,
                 (int)((r >> 3) % 60) - 45);
        d = strtod(t, NULL);
        int step = (int)((r >> 7) % 5) - 2;
        for (; step > 0; step--) d = nextafter(d, INFINITY);
        for (; step < 0; step++) d = nextafter(d, 0);
        break;
    }
    case 4: /* powers of two and their neighbours */
        d = ldexp(1.0, (int)(r % 96) - 47);
        if (r & 0x100) d = nextafter(d, (r & 0x200) ? INFINITY : 0);
        break;
    case 5: /* wall-clock seconds with nanoseconds */
        d = (double)(1700000000000000000ull + r % 200000000000000000ull) / 1e9;
        break;
    case 6:
        d = (double)(1700000000000000000ull + r % 200000000000000000ull) * 1e-9;
        break;
    default: /* micro- to kilo-second latencies */
        d = (double)(r >> 11) * 0x1p-53 * pow(10, (double)(r % 14) - 9);
        break;
    }
    return (r & 0x400) ? -d : d;
}

TEST(number_exact_path_matches_reference)
{
    uint64_t x = 0xD1B54A32D192ED03u;
    int differ = 0, cdiffer = 0, n = 0;
    for (int i = 0; i < 320000; i++) {
        double d = tf_delicate(&x, i);
        if (!isfinite(d) || d == 0 || (d == floor(d) && fabs(d) >= 1e15)) continue;
        char got[PM__NUM_MAX], want[PM__NUM_MAX];
        pm__fmt_double(got, d);
        tf_reference(want, d);
        n++;
        if (strcmp(got, want) != 0 && differ++ < 5)
            fprintf(stderr, "  %a (%.17g): got %s, reference %s\n", d, d, got, want);
        if (i % 4 == 0) {
            pm__fmt_canonical(got, d);
            tf_canon_reference(want, d);
            if (strcmp(got, want) != 0 && cdiffer++ < 5)
                fprintf(stderr, "  canonical %a (%.17g): got %s, reference %s\n", d, d, got, want);
        }
    }
    printf("  %d delicate values compared with the printf loop\n", n);
    CHECK_EQ_INT(differ, 0);
    CHECK_EQ_INT(cdiffer, 0);
}

TEST(canonical_le)
{
    /* The examples of the OpenMetrics "Canonical Numbers" section. */
    CHECK_STR(tf_canon(0), "0.0");
    CHECK_STR(tf_canon(0.001), "0.001");
    CHECK_STR(tf_canon(0.002), "0.002");
    CHECK_STR(tf_canon(0.01), "0.01");
    CHECK_STR(tf_canon(0.1), "0.1");
    CHECK_STR(tf_canon(0.9), "0.9");
    CHECK_STR(tf_canon(0.95), "0.95");
    CHECK_STR(tf_canon(0.99), "0.99");
    CHECK_STR(tf_canon(0.999), "0.999");
    CHECK_STR(tf_canon(1), "1.0");
    CHECK_STR(tf_canon(1.7), "1.7");
    CHECK_STR(tf_canon(10), "10.0");
    CHECK_STR(tf_canon(1e-10), "1e-10");
    CHECK_STR(tf_canon(1e-09), "1e-09");
    CHECK_STR(tf_canon(1e-05), "1e-05");
    CHECK_STR(tf_canon(0.0001), "0.0001");
    CHECK_STR(tf_canon(100000), "100000.0");
    CHECK_STR(tf_canon(1e+06), "1e+06");
    CHECK_STR(tf_canon(1e+10), "1e+10");
    CHECK_STR(tf_canon(1e+23), "1e+23");
    CHECK_STR(tf_canon(1.1e+23), "1.1e+23");
    CHECK_STR(tf_canon(0.005), "0.005");
    CHECK_STR(tf_canon(2.5), "2.5");
    CHECK_STR(tf_canon(123456.5), "123456.5");
    CHECK_STR(tf_canon(1234567), "1.234567e+06");
    CHECK_STR(tf_canon(-1), "-1.0");
    CHECK_STR(tf_canon(-0.25), "-0.25");
    CHECK_STR(tf_canon(0.1 + 0.2), "0.30000000000000004");
    CHECK_STR(tf_canon(INFINITY), "+Inf");
    CHECK_STR(tf_canon(-INFINITY), "-Inf");
    CHECK_STR(tf_canon(NAN), "NaN");
}

TEST(numbers_ignore_locale)
{
    /* A host that switched LC_NUMERIC to a decimal-comma locale must still
     * get '.' in every exposition. */
    const char *locs[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8"};
    const char *got = NULL;
    for (size_t i = 0; i < sizeof locs / sizeof locs[0] && !got; i++)
        got = setlocale(LC_NUMERIC, locs[i]);
    if (!got) {
        printf("  (no decimal-comma locale installed; checking the C locale only)\n");
    }
    CHECK_STR(tf_num(2.5), "2.5");
    CHECK_STR(tf_num(1.0 / 3), "0.3333333333333333");
    CHECK_STR(tf_canon(0.005), "0.005");
    CHECK_STR(tf_canon(1), "1.0");
    setlocale(LC_NUMERIC, "C");
}

/* ------------------------------------------------------------- speed */

static double tf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int tf_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

TEST(prometheus_10k_counters_speed)
{
    pm_registry_t *r = tf_registry();
    REQUIRE(r);
    static const char *const names[] = {"handler", "code"};
    pm_family_t *f = tf_family(r, PM_TYPE_COUNTER, "speed_requests", "Requests.", NULL, names, 2,
                               NULL, 0, 20000);
    REQUIRE(f);
    for (int i = 0; i < 10000; i++) {
        char h[32], c[8];
        snprintf(h, sizeof h, "/api/v1/item%d", i / 5);
        snprintf(c, sizeof c, "%d", 200 + i % 5);
        const char *v[] = {h, c};
        REQUIRE(pm_counter_add_labeled(f, v, 2, (double)i * 17) == PM_OK);
    }
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK && pm_buf_new(&b) == PM_OK);
    double t[9];
    for (int k = 0; k < 9; k++) {
        pm_buf_reset(b);
        double t0 = tf_now();
        CHECK_OK(pm_format(s, PM_FORMAT_PROMETHEUS, b));
        t[k] = tf_now() - t0;
    }
    qsort(t, 9, sizeof t[0], tf_cmp_double);
    printf("  10000 counter series: %zu bytes, median %.3f ms, best %.3f ms\n", pm_buf_len(b),
           t[4] * 1e3, t[0] * 1e3);
    /* Only meaningful for an optimised, uninstrumented build. */
#if defined(__OPTIMIZE__) && !TF_SANITIZED
    CHECK(t[4] <= 5e-3);
#endif
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(buf_bad_inputs), TH_CASE(buf_basics), TH_CASE(buf_growth), TH_CASE(buf_large_mapped),
          TH_CASE(buf_self_append), TH_CASE(buf_enomem_keeps_content), TH_CASE(gzip_round_trip),
          TH_CASE(content_types), TH_CASE(format_bad_inputs),
          TH_CASE(format_write_callback_failure), TH_CASE(stream_equals_buffer), TH_CASE(stream_equals_buffer_large),
          TH_CASE(stream_equals_buffer_long_labels), TH_CASE(number_cache_matches_plain),
          TH_CASE(format_enomem_restores_buffer), TH_CASE(prometheus_exact),
          TH_CASE(openmetrics_exact), TH_CASE(openmetrics_created_matches_snapshot),
          TH_CASE(json_exact), TH_CASE(empty_snapshot), TH_CASE(hostile_label_values),
          TH_CASE(overflow_series), TH_CASE(nonfinite_values),
          TH_CASE(openmetrics_histogram_sum_rules), TH_CASE(number_formatting),
          TH_CASE(number_round_trip), TH_CASE(number_matches_reference),
          TH_CASE(canonical_matches_reference), TH_CASE(number_exact_path_matches_reference),
          TH_CASE(canonical_le), TH_CASE(numbers_ignore_locale),
          TH_CASE(prometheus_10k_counters_speed))
