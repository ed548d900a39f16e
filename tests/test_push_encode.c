/* The push encoders (issue 13): the Snappy block compressor against a
 * decompressor written here from format_description.txt, the remote-write
 * protobuf against bytes derived by hand from prompb's messages, the OTLP
 * metrics JSON exactly, and StatsD lines received by a UDP socket here. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>
#include <perfmetrics/push.h>

#include "../lib/internal/format_internal.h"
#include "../lib/internal/push_encode.h"
#include "../lib/internal/snapshot_internal.h"
#include "../lib/internal/snappy.h"
#include "span_fixture.h"

#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <time.h>

/* ------------------------------------------------------------ snappy */

/* A strict Snappy block decoder: returns the decoded length, or -1 on any
 * malformed input (bad varint, element past the end, offset 0 or before the
 * start, length not matching the preamble). */
static long long snappy_decode(const uint8_t *s, size_t n, uint8_t **out)
{
    size_t i = 0, len = 0;
    unsigned shift = 0;
    for (;;) {
        if (i >= n || shift > 63) return -1;
        uint8_t b = s[i++];
        len |= (size_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
    }
    uint8_t *d = malloc(len + 1);
    if (!d) return -1;
    size_t o = 0;
    while (i < n) {
        uint8_t tag = s[i++];
        size_t l, off;
        switch (tag & 3) {
        case 0:
            l = tag >> 2;
            if (l >= 60) {
                unsigned k = (unsigned)l - 59;
                if (i + k > n) goto bad;
                l = 0;
                for (unsigned j = 0; j < k; j++) l |= (size_t)s[i + j] << (8 * j);
                i += k;
            }
            l += 1;
            if (i + l > n || o + l > len) goto bad;
            memcpy(d + o, s + i, l);
            i += l;
            o += l;
            continue;
        case 1:
            if (i + 1 > n) goto bad;
            l = 4 + ((tag >> 2) & 7);
            off = ((size_t)(tag >> 5) << 8) | s[i];
            i += 1;
            break;
        case 2:
            if (i + 2 > n) goto bad;
            l = 1 + (tag >> 2);
            off = s[i] | (size_t)s[i + 1] << 8;
            i += 2;
            break;
        default:
            if (i + 4 > n) goto bad;
            l = 1 + (tag >> 2);
            off = s[i] | (size_t)s[i + 1] << 8 | (size_t)s[i + 2] << 16 | (size_t)s[i + 3] << 24;
            i += 4;
            break;
        }
        if (off == 0 || off > o || o + l > len) goto bad;
        for (size_t j = 0; j < l; j++, o++) d[o] = d[o - off]; /* may overlap: byte by byte */
    }
    if (o != len) goto bad;
    *out = d;
    return (long long)len;
bad:
    free(d);
    return -1;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Compresses, checks the bound, decodes, compares; returns the compressed size. */
static size_t snappy_round_trip(const uint8_t *src, size_t n)
{
    size_t bound = pm__snappy_bound(n);
    uint8_t *c = malloc(bound + 64);
    CHECK(c != NULL);
    memset(c, 0xee, bound + 64);
    size_t cn = pm__snappy_compress(src, n, c);
    CHECK(cn <= bound);
    for (size_t i = bound; i < bound + 64; i++)
        if (c[i] != 0xee) {
            TH_FAIL_("wrote past the bound for n=%zu", n);
            break;
        }
    uint8_t *d = NULL;
    long long dn = snappy_decode(c, cn, &d);
    if (dn != (long long)n) {
        TH_FAIL_("n=%zu: decoded %lld bytes", n, dn);
    } else if (n && memcmp(d, src, n) != 0) {
        TH_FAIL_("n=%zu: decoded bytes differ", n);
    }
    free(d);
    free(c);
    return cn;
}

TEST(snappy_edges)
{
    uint8_t one = 'x';
    /* 0 bytes: just the preamble, a zero varint. */
    uint8_t c[64];
    CHECK_EQ_U64(pm__snappy_compress(&one, 0, c), 1);
    CHECK_EQ_INT(c[0], 0);
    /* 1 byte: preamble 1, literal tag (len - 1) << 2 = 0, the byte. */
    CHECK_EQ_U64(pm__snappy_compress(&one, 1, c), 3);
    CHECK_EQ_INT(c[0], 1);
    CHECK_EQ_INT(c[1], 0);
    CHECK_EQ_INT(c[2], 'x');
    size_t sizes[] = {0, 1, 2, 3, 4, 5, 14, 15, 16, 17, 59, 60, 61, 62, 255, 256, 257, 65535, 65536,
                      65537, 131071, 131072, 131073, 300000};
    uint8_t *buf = malloc(300000);
    CHECK(buf != NULL);
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
        for (size_t i = 0; i < sizes[k]; i++) buf[i] = (uint8_t)rng();
        snappy_round_trip(buf, sizes[k]);
        memset(buf, 'a', sizes[k]);
        snappy_round_trip(buf, sizes[k]);
    }
    free(buf);
}

TEST(snappy_random_and_repetitive)
{
    size_t n = 1 << 20;
    uint8_t *buf = malloc(n);
    CHECK(buf != NULL);
    /* Incompressible: at most the literal overhead. */
    for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rng();
    size_t cn = snappy_round_trip(buf, n);
    CHECK(cn <= n + n / 60 + 16);
    /* One byte repeated: long overlapping copies. */
    memset(buf, 0, n);
    cn = snappy_round_trip(buf, n);
    CHECK(cn < n / 20);
    /* Records that repeat with small changes, like remote-write bodies. */
    size_t o = 0;
    for (unsigned i = 0; o + 64 < n; i++)
        o += (size_t)snprintf((char *)buf + o, 64, "__name__\x05http_requests_total code=%u ", i % 7);
    cn = snappy_round_trip(buf, o);
    CHECK(cn < o / 4);
    /* Mixed: runs of random bytes and of copies at every offset width. */
    for (int round = 0; round < 200; round++) {
        size_t len = 1 + rng() % 200000;
        for (size_t i = 0; i < len; i++) {
            uint64_t r = rng();
            if (i > 3000 && r % 5 == 0) {
                size_t back = 1 + (r >> 8) % (i < 70000 ? i : 70000), run = 1 + (r >> 32) % 100;
                for (size_t j = 0; j < run && i < len; j++, i++) buf[i] = buf[i - back];
                i--;
            } else {
                buf[i] = (uint8_t)(r % 8);
            }
        }
        snappy_round_trip(buf, len);
    }
    free(buf);
}

/* ------------------------------------------------------------ snapshots */

static pm_registry_t *quiet_registry(void)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    CHECK_OK(pm_registry_opts_new(&o));
    CHECK_OK(pm_registry_opts_set_self_metrics(o, 0));
    CHECK_OK(pm_registry_new(o, &r));
    pm_registry_opts_free(o);
    return r;
}

static pm_snapshot_t *snapshot_at(pm_registry_t *r, double t)
{
    pm_snapshot_t *s = NULL;
    CHECK_OK(pm_snapshot_new(r, &s));
    s->time = t; /* a fixed time, for exact bytes */
    return s;
}

static pm_family_t *family(pm_registry_t *r, pm_type_t t, const char *name, const char *help,
                           const char *const *labels, size_t nl, const double *bounds, size_t nb)
{
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    CHECK_OK(pm_family_opts_new(&o));
    if (nl) CHECK_OK(pm_family_opts_set_labels(o, labels, nl));
    if (nb) CHECK_OK(pm_family_opts_set_buckets(o, bounds, nb));
    CHECK_OK(pm_family_new(r, t, name, help, o, &f));
    pm_family_opts_free(o);
    return f;
}

/* ------------------------------------------------------------ remote-write */

#define S(lit) lit, sizeof(lit) - 1

static void expect_bytes(const pm_buf_t *b, const char *want, size_t n)
{
    if (pm_buf_len(b) != n || memcmp(pm_buf_data(b), want, n) != 0) {
        TH_FAIL_("bytes differ (got %zu, want %zu)", pm_buf_len(b), n);
        const uint8_t *g = (const uint8_t *)pm_buf_data(b);
        fprintf(stderr, "  got: ");
        for (size_t i = 0; i < pm_buf_len(b); i++) fprintf(stderr, "%02x ", g[i]);
        fprintf(stderr, "\n  want:");
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %02x", (uint8_t)want[i]);
        fprintf(stderr, "\n");
    }
}

TEST(remote_write_bytes)
{
    pm_registry_t *r = quiet_registry();
    const char *code[] = {"code"};
    pm_family_t *req = family(r, PM_TYPE_COUNTER, "req", "", code, 1, NULL, 0);
    const char *v200[] = {"200"};
    CHECK_OK(pm_counter_add_labeled(req, v200, 1, 3));
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(r, "g", "", &g));
    pm_gauge_set(g, 1.5);
    pm_snapshot_t *s = snapshot_at(r, 1700000000.123);

    const char *ln[] = {"job"}, *lv[] = {"j"};
    pm__push_view_t v = {1, ln, lv, NULL, NULL};
    pm_buf_t *b = NULL;
    CHECK_OK(pm_buf_new(&b));
    size_t n = 0;
    CHECK_OK(pm__remote_write_encode(s, &v, b, &n));
    CHECK_EQ_U64(n, 2);
    /* Families come sorted by name: g, then req. Derived by hand:
     *   Sample{value=1.5 (fixed64 3ff8000000000000), timestamp=1700000000123
     *   (varint fb d0 95 ff bc 31)}: 09 <8> 10 <6> = 16 bytes
     *   g: labels __name__="g" (0a 08 __name__ 12 01 g: 13 bytes), job="j"
     *   (0a 03 job 12 01 j: 8 bytes); TimeSeries = 2+13 + 2+8 + 2+16 = 43 (0x2b)
     *   req: __name__="req_total" (21 bytes), code="200" (11), job="j" (8);
     *   TimeSeries = 2+21 + 2+11 + 2+8 + 2+16 = 64 (0x40) */
    static const char want[] =
        "\x0a\x2b"
        "\x0a\x0d" "\x0a\x08__name__" "\x12\x01g"
        "\x0a\x08" "\x0a\x03job" "\x12\x01j"
        "\x12\x10" "\x09\x00\x00\x00\x00\x00\x00\xf8\x3f" "\x10\xfb\xd0\x95\xff\xbc\x31"
        "\x0a\x40"
        "\x0a\x15" "\x0a\x08__name__" "\x12\x09req_total"
        "\x0a\x0b" "\x0a\x04" "code" "\x12\x03" "200"
        "\x0a\x08" "\x0a\x03job" "\x12\x01j"
        "\x12\x10" "\x09\x00\x00\x00\x00\x00\x00\x08\x40" "\x10\xfb\xd0\x95\xff\xbc\x31";
    expect_bytes(b, want, sizeof want - 1);

    /* The series' own label wins over the destination's of the same name (g
     * has no code label: it gets the destination's); appending keeps what
     * was there. */
    const char *ln2[] = {"code", "Zone"}, *lv2[] = {"dest", "eu"};
    pm__push_view_t v2 = {2, ln2, lv2, NULL, NULL};
    pm_buf_reset(b);
    CHECK_OK(pm_buf_append(b, "X", 1));
    CHECK_OK(pm__remote_write_encode(s, &v2, b, &n));
    /* "Zone" sorts before "__name__" in byte order ('Z' 0x5a < '_' 0x5f). */
    static const char want2[] =
        "X"
        "\x0a\x3b"
        "\x0a\x0a" "\x0a\x04Zone" "\x12\x02" "eu"
        "\x0a\x0d" "\x0a\x08__name__" "\x12\x01g"
        "\x0a\x0c" "\x0a\x04" "code" "\x12\x04" "dest"
        "\x12\x10" "\x09\x00\x00\x00\x00\x00\x00\xf8\x3f" "\x10\xfb\xd0\x95\xff\xbc\x31"
        "\x0a\x42"
        "\x0a\x0a" "\x0a\x04Zone" "\x12\x02" "eu"
        "\x0a\x15" "\x0a\x08__name__" "\x12\x09req_total"
        "\x0a\x0b" "\x0a\x04" "code" "\x12\x03" "200"
        "\x12\x10" "\x09\x00\x00\x00\x00\x00\x00\x08\x40" "\x10\xfb\xd0\x95\xff\xbc\x31";
    expect_bytes(b, want2, sizeof want2 - 1);
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* A protobuf reader for the checks below: the WriteRequest as text lines,
 * one per TimeSeries: `name{a="x",b="y"} value @ts`, labels in wire order. */
static int pb_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
    *v = 0;
    for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
        uint8_t b = *(*p)++;
        *v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) return 1;
    }
    return 0;
}

static int pb_field(const uint8_t **p, const uint8_t *end, unsigned want_tag, const uint8_t **sub,
                    size_t *len)
{
    uint64_t tag, l;
    if (!pb_varint(p, end, &tag) || tag != want_tag) return 0;
    if (!pb_varint(p, end, &l) || l > (uint64_t)(end - *p)) return 0;
    *sub = *p;
    *len = (size_t)l;
    *p += l;
    return 1;
}

static char *rw_text(const pm_buf_t *b)
{
    pm_buf_t *t = NULL;
    CHECK_OK(pm_buf_new(&t));
    const uint8_t *p = (const uint8_t *)pm_buf_data(b), *end = p + pm_buf_len(b);
    while (p < end) {
        const uint8_t *ts;
        size_t tl;
        if (!pb_field(&p, end, 0x0a, &ts, &tl)) goto bad;
        const uint8_t *q = ts, *qe = ts + tl;
        char name[300] = "", labels[2000] = "";
        size_t ll = 0;
        while (q < qe && *q == 0x0a) {
            const uint8_t *lab, *ns, *vs;
            size_t lablen, nl, vl;
            if (!pb_field(&q, qe, 0x0a, &lab, &lablen)) goto bad;
            const uint8_t *r = lab, *re = lab + lablen;
            if (!pb_field(&r, re, 0x0a, &ns, &nl) || !pb_field(&r, re, 0x12, &vs, &vl) || r != re)
                goto bad;
            if (nl == 8 && memcmp(ns, "__name__", 8) == 0) {
                snprintf(name, sizeof name, "%.*s", (int)vl, (const char *)vs);
            } else {
                ll += (size_t)snprintf(labels + ll, sizeof labels - ll, "%s%.*s=\"%.*s\"",
                                       ll ? "," : "", (int)nl, (const char *)ns, (int)vl,
                                       (const char *)vs);
            }
        }
        const uint8_t *sm;
        size_t sl;
        if (!pb_field(&q, qe, 0x12, &sm, &sl) || q != qe || sl < 10 || sm[0] != 0x09) goto bad;
        uint64_t bits = 0, tsv;
        for (int i = 0; i < 8; i++) bits |= (uint64_t)sm[1 + i] << (8 * i);
        double d;
        memcpy(&d, &bits, 8);
        const uint8_t *sp = sm + 10;
        if (sm[9] != 0x10 || !pb_varint(&sp, sm + sl, &tsv) || sp != sm + sl) goto bad;
        char line[2600];
        int n = snprintf(line, sizeof line, "%s{%s} %.17g @%lld\n", name, labels, d, (long long)tsv);
        CHECK_OK(pm_buf_append(t, line, (size_t)n));
    }
    char *out = strdup(pm_buf_data(t) ? pm_buf_data(t) : "");
    pm_buf_free(t);
    return out;
bad:
    TH_FAIL_("malformed WriteRequest");
    pm_buf_free(t);
    return strdup("");
}

static bool keep_app(const void *ctx, const char *family)
{
    return strncmp(family, (const char *)ctx, strlen((const char *)ctx)) == 0;
}

TEST(remote_write_histogram_overflow_filter)
{
    pm_registry_t *r = quiet_registry();
    const double bounds[] = {0.25, 1, 10};
    const char *ln[] = {"path"};
    pm_family_t *h = family(r, PM_TYPE_HISTOGRAM, "app_latency_seconds", "", ln, 1, bounds, 3);
    const char *pa[] = {"/a"}, *pb[] = {""};
    CHECK_OK(pm_histogram_observe_labeled(h, pa, 1, 0.5));
    CHECK_OK(pm_histogram_observe_labeled(h, pa, 1, 0.75));
    CHECK_OK(pm_histogram_observe_labeled(h, pa, 1, 20));
    CHECK_OK(pm_histogram_observe_labeled(h, pb, 1, 0.125)); /* "" value: no label */
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(r, "other_gauge", "", &g));
    pm_gauge_set(g, 7);
    pm_family_t *c = family(r, PM_TYPE_COUNTER, "app_capped", "", ln, 1, NULL, 0);
    const char *px[] = {"/x"};
    CHECK_OK(pm_counter_add_labeled(c, px, 1, 2));
    pm_gauge_t *nan = NULL;
    CHECK_OK(pm_gauge_new(r, "app_nan", "", &nan));
    pm_gauge_set(nan, NAN);
    pm_snapshot_t *s = snapshot_at(r, 1.5);

    pm__push_view_t v = {0, NULL, NULL, keep_app, "app_"};
    pm_buf_t *b = NULL;
    CHECK_OK(pm_buf_new(&b));
    size_t n = 0;
    CHECK_OK(pm__remote_write_encode(s, &v, b, &n));
    CHECK_EQ_U64(n, 1 + 2 * 6 + 1);
    char *text = rw_text(b);
    CHECK_STR(text, "app_capped_total{path=\"/x\"} 2 @1500\n"
                    "app_latency_seconds_bucket{le=\"0.25\",path=\"/a\"} 0 @1500\n"
                    "app_latency_seconds_bucket{le=\"1.0\",path=\"/a\"} 2 @1500\n"
                    "app_latency_seconds_bucket{le=\"10.0\",path=\"/a\"} 2 @1500\n"
                    "app_latency_seconds_bucket{le=\"+Inf\",path=\"/a\"} 3 @1500\n"
                    "app_latency_seconds_sum{path=\"/a\"} 21.25 @1500\n"
                    "app_latency_seconds_count{path=\"/a\"} 3 @1500\n"
                    "app_latency_seconds_bucket{le=\"0.25\"} 1 @1500\n"
                    "app_latency_seconds_bucket{le=\"1.0\"} 1 @1500\n"
                    "app_latency_seconds_bucket{le=\"10.0\"} 1 @1500\n"
                    "app_latency_seconds_bucket{le=\"+Inf\"} 1 @1500\n"
                    "app_latency_seconds_sum{} 0.125 @1500\n"
                    "app_latency_seconds_count{} 1 @1500\n"
                    "app_nan{} nan @1500\n");
    free(text);
    /* NaN goes as Prometheus' ordinary NaN, never its staleness marker. */
    const char *raw = pm_buf_data(b);
    size_t len = pm_buf_len(b);
    static const char normal_nan[] = "\x09\x01\x00\x00\x00\x00\x00\xf8\x7f";
    /* The last Sample ends 09 <8 bytes> 10 <1500: dc 0b>. */
    CHECK(len > 12 && memcmp(raw + len - 12, normal_nan, 9) == 0);
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

TEST(remote_write_overflow_series)
{
    pm_registry_t *r = quiet_registry();
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    const char *ln[] = {"user"};
    CHECK_OK(pm_family_opts_new(&o));
    CHECK_OK(pm_family_opts_set_labels(o, ln, 1));
    CHECK_OK(pm_family_opts_set_max_series(o, 1));
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "hits", "", o, &f));
    pm_family_opts_free(o);
    const char *a[] = {"a"}, *bb[] = {"b"}, *cc[] = {"c"};
    CHECK_OK(pm_counter_add_labeled(f, a, 1, 1));
    CHECK_OK(pm_counter_add_labeled(f, bb, 1, 2));
    CHECK_OK(pm_counter_add_labeled(f, cc, 1, 4));
    pm_snapshot_t *s = snapshot_at(r, 2);
    const char *dn[] = {"zz"}, *dv[] = {"1"};
    pm__push_view_t v = {1, dn, dv, NULL, NULL};
    pm_buf_t *b = NULL;
    CHECK_OK(pm_buf_new(&b));
    CHECK_OK(pm__remote_write_encode(s, &v, b, NULL));
    char *text = rw_text(b);
    CHECK_STR(text, "hits_total{user=\"a\",zz=\"1\"} 1 @2000\n"
                    "hits_total{pm_overflow=\"true\",zz=\"1\"} 6 @2000\n");
    free(text);
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* The 10,000-series push of the target: encode + compress CPU time. */
TEST(remote_write_10k_series_cpu)
{
    pm_registry_t *r = quiet_registry();
    const char *ln[] = {"service", "instance"};
    pm_family_t *f = family(r, PM_TYPE_COUNTER, "app_requests", "", ln, 2, NULL, 0);
    for (int i = 0; i < 10000; i++) {
        char inst[32], svc[32];
        snprintf(svc, sizeof svc, "svc-%d", i % 50);
        snprintf(inst, sizeof inst, "10.0.%d.%d:8080", i / 256, i % 256);
        const char *vals[] = {svc, inst};
        CHECK_OK(pm_counter_add_labeled(f, vals, 2, (double)i));
    }
    pm_snapshot_t *s = snapshot_at(r, 1700000000);
    const char *dn[] = {"job", "cluster"}, *dv[] = {"bench", "eu-1"};
    pm__push_view_t v = {2, dn, dv, NULL, NULL};
    pm_buf_t *raw = NULL, *body = NULL;
    CHECK_OK(pm_buf_new(&raw));
    CHECK_OK(pm_buf_new(&body));
    double best = 1e9;
    size_t n = 0;
    for (int rep = 0; rep < 20; rep++) {
        struct timespec a, z;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
        CHECK_OK(pm__remote_write_body(s, &v, raw, body, &n));
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &z);
        double ms = (double)(z.tv_sec - a.tv_sec) * 1e3 + (double)(z.tv_nsec - a.tv_nsec) / 1e6;
        if (ms < best) best = ms;
    }
    CHECK_EQ_U64(n, 10000);
    uint8_t *d = NULL;
    long long dn2 = snappy_decode((const uint8_t *)pm_buf_data(body), pm_buf_len(body), &d);
    CHECK(dn2 == (long long)pm_buf_len(raw) && memcmp(d, pm_buf_data(raw), pm_buf_len(raw)) == 0);
    free(d);
    printf("remote-write 10000 series: %.2f ms CPU (best of 20), %zu bytes protobuf, %zu bytes "
           "snappy\n",
           best, pm_buf_len(raw), pm_buf_len(body));
    /* The target is 10 ms; allow for a slow, shared or sanitized machine. */
    CHECK(best < 50);
    pm_buf_free(raw);
    pm_buf_free(body);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* The kind itself, with a body past 4 MiB (where lib/buf.c maps buffers
 * rather than mallocs them) to a port nobody listens on: the payload fails,
 * is dropped after its one attempt, and freeing releases everything. */
TEST(remote_write_kind_big_body_refused)
{
    int port = 0, fd = -1;
    {
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in a = {0};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
        socklen_t al = sizeof a;
        CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
        port = ntohs(a.sin_port);
        close(fd); /* bound, never listened: connections are refused */
    }
    pm_registry_t *r = quiet_registry();
    const char *ln[] = {"id"};
    pm_family_opts_t *fo = NULL;
    pm_family_t *f = NULL;
    CHECK_OK(pm_family_opts_new(&fo));
    CHECK_OK(pm_family_opts_set_labels(fo, ln, 1));
    CHECK_OK(pm_family_opts_set_max_series(fo, 50000));
    CHECK_OK(pm_family_new(r, PM_TYPE_COUNTER, "big", "", fo, &f));
    pm_family_opts_free(fo);
    for (int i = 0; i < 40000; i++) {
        char v[96];
        snprintf(v, sizeof v, "a-label-value-long-enough-to-make-the-body-big-%08d", i);
        const char *vals[] = {v};
        CHECK_OK(pm_counter_add_labeled(f, vals, 1, 1));
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/api/v1/write", port);
    pm_push_opts_t *o = NULL;
    CHECK_OK(pm_push_opts_new(&o));
    CHECK_OK(pm_push_opts_set_retry(o, 1, 0.1, 0.1));
    CHECK_OK(pm_push_opts_set_timeouts(o, 1, 2));
    pm_push_t *p = NULL;
    CHECK_OK(pm_push_remote_write_new(r, url, o, &p));
    pm_push_opts_free(o);
    CHECK_OK(pm_export_now(r));
    CHECK_OK(pm_export_now(r)); /* the raw buffer, mapped now, is reused */
    CHECK_OK(pm_push_flush(p, 10));
    uint64_t queued = 0, dropped = 0, sent = 1;
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_QUEUED, &queued));
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_DROPPED, &dropped));
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_SENT, &sent));
    CHECK_EQ_U64(queued, 2);
    CHECK_EQ_U64(dropped, 2);
    CHECK_EQ_U64(sent, 0);
    pm_push_free(p);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ OTLP metrics */

TEST(otlp_metrics_exact)
{
    pm_registry_t *r = quiet_registry();
    const char *code[] = {"code"};
    pm_family_t *req = family(r, PM_TYPE_COUNTER, "req", "Requests \"served\".", code, 1, NULL, 0);
    const char *v200[] = {"200"}, *vnone[] = {""};
    CHECK_OK(pm_counter_add_labeled(req, v200, 1, 3));
    CHECK_OK(pm_counter_add_labeled(req, vnone, 1, 1));
    pm_gauge_t *g = NULL;
    CHECK_OK(pm_gauge_new(r, "g", "", &g));
    pm_gauge_set(g, -INFINITY);
    const double bounds[] = {0.5, 2};
    pm_family_t *h = family(r, PM_TYPE_HISTOGRAM, "lat", "", NULL, 0, bounds, 2);
    CHECK_OK(pm_histogram_observe_labeled(h, NULL, 0, 0.25));
    CHECK_OK(pm_histogram_observe_labeled(h, NULL, 0, 1));
    CHECK_OK(pm_histogram_observe_labeled(h, NULL, 0, 1.5));
    pm_family_t *empty = family(r, PM_TYPE_HISTOGRAM, "lat_empty", "", code, 1, bounds, 2);
    pm_histogram_t *he = NULL;
    CHECK_OK(pm_histogram_get(empty, v200, 1, &he));
    pm_snapshot_t *s = snapshot_at(r, 1700000000.5);
    /* Fixed creation times, for exact text. */
    for (size_t i = 0; i < s->nfam; i++)
        for (size_t j = 0; j < s->fams[i]->nseries; j++) s->fams[i]->series[j].created = 1600000000;

    const char *ln[] = {"job", "service_name"}, *lv[] = {"j\"1", "svc"};
    pm__push_view_t v = {2, ln, lv, NULL, NULL};
    pm_buf_t *b = NULL;
    CHECK_OK(pm_buf_new(&b));
    CHECK_OK(pm__otlp_metrics_encode(s, &v, b));
#define T0 "\"startTimeUnixNano\":\"1600000000000000000\",\"timeUnixNano\":\"1700000000500000000\""
    CHECK_STR(pm_buf_data(b),
              "{\"resourceMetrics\":[{\"resource\":{\"attributes\":["
              "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"svc\"}},"
              "{\"key\":\"job\",\"value\":{\"stringValue\":\"j\\\"1\"}}]},"
              "\"scopeMetrics\":[{\"scope\":{\"name\":\"libperfmetrics\",\"version\":\"" PM_VERSION_STRING
              "\"},\"metrics\":[\n"
              "{\"name\":\"g\",\"description\":\"\",\"unit\":\"\",\"gauge\":{\"dataPoints\":["
              "{\"attributes\":[]," T0 ",\"asDouble\":\"-Infinity\"}]}},\n"
              "{\"name\":\"lat\",\"description\":\"\",\"unit\":\"\",\"histogram\":{\"dataPoints\":["
              "{\"attributes\":[]," T0 ",\"count\":\"3\",\"sum\":2.75,\"bucketCounts\":[\"1\",\"2\",\"0\"],"
              "\"explicitBounds\":[0.5,2],\"min\":0.25,\"max\":1.5}],\"aggregationTemporality\":2}},\n"
              "{\"name\":\"lat_empty\",\"description\":\"\",\"unit\":\"\",\"histogram\":{\"dataPoints\":["
              "{\"attributes\":[{\"key\":\"code\",\"value\":{\"stringValue\":\"200\"}}]," T0
              ",\"count\":\"0\",\"sum\":0,\"bucketCounts\":[\"0\",\"0\",\"0\"],\"explicitBounds\":[0.5,2]}],"
              "\"aggregationTemporality\":2}},\n"
              "{\"name\":\"req\",\"description\":\"Requests \\\"served\\\".\",\"unit\":\"\",\"sum\":{\"dataPoints\":["
              "{\"attributes\":[{\"key\":\"code\",\"value\":{\"stringValue\":\"200\"}}]," T0 ",\"asDouble\":3},"
              "{\"attributes\":[]," T0 ",\"asDouble\":1}],"
              "\"aggregationTemporality\":2,\"isMonotonic\":true}}\n"
              "]}]}]}\n");
#undef T0
    /* Filtered to nothing: still a valid request, with its resource. */
    pm_buf_reset(b);
    pm__push_view_t none = {0, NULL, NULL, keep_app, "zzz"};
    CHECK_OK(pm__otlp_metrics_encode(s, &none, b));
    CHECK_STR(pm_buf_data(b), "{\"resourceMetrics\":[{\"resource\":{\"attributes\":["
                              "{\"key\":\"service.name\",\"value\":{\"stringValue\":\"perfmetrics\"}}]},"
                              "\"scopeMetrics\":[{\"scope\":{\"name\":\"libperfmetrics\",\"version\":\"" PM_VERSION_STRING
                              "\"},\"metrics\":[\n]}]}]}\n");
    pm_histogram_release(he);
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
}

/* ------------------------------------------------------------ OTLP traces */

TEST(otlp_traces_resource_labels)
{
    static sf_fixture f;
    sf_fixture_build(&f);
    /* A service name holding the very text the splice looks for: inside a
     * JSON string its quotes are escaped, so the splice is not fooled. */
    f.batch.service = "svc ]},\"scopeSpans\" x";
    pm_buf_t *plain = NULL, *b = NULL;
    CHECK_OK(pm_buf_new(&plain));
    CHECK_OK(pm_buf_new(&b));
    CHECK_OK(pm_span_batch_format(&f.batch, PM_SPAN_FORMAT_OTLP_JSON, plain));
    static const char head[] = "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
                               "\"service.name\",\"value\":{\"stringValue\":\"svc ]},\\\"scopeSpans\\\" "
                               "x\"}}";
    CHECK(strncmp(pm_buf_data(plain), head, sizeof head - 1) == 0);
    const char *ln[] = {"job", "service_name", "zone"}, *lv[] = {"j", "ignored", "e\"u"};
    pm__push_view_t v = {3, ln, lv, NULL, NULL};
    CHECK_OK(pm_buf_append(b, PM__LIT_ARG("X]},\"scopeSpans\""))); /* appends, after what is there */
    CHECK_OK(pm__otlp_traces_body(&f.batch, &v, b));
    pm_buf_t *want = NULL;
    CHECK_OK(pm_buf_new(&want));
    CHECK_OK(pm_buf_append(want, PM__LIT_ARG("X]},\"scopeSpans\"")));
    CHECK_OK(pm_buf_append(want, head, sizeof head - 1));
    static const char added[] = ",{\"key\":\"job\",\"value\":{\"stringValue\":\"j\"}},"
                                "{\"key\":\"zone\",\"value\":{\"stringValue\":\"e\\\"u\"}}";
    CHECK_OK(pm_buf_append(want, added, sizeof added - 1));
    CHECK_OK(pm_buf_append(want, pm_buf_data(plain) + sizeof head - 1,
                           pm_buf_len(plain) - (sizeof head - 1)));
    CHECK_STR(pm_buf_data(b), pm_buf_data(want));
    CHECK_EQ_U64(pm_buf_len(b), pm_buf_len(want));
    /* Without labels: the batch's body as it is. No spans: no resource. */
    pm__push_view_t none = {0, NULL, NULL, NULL, NULL};
    pm_buf_reset(b);
    CHECK_OK(pm__otlp_traces_body(&f.batch, &none, b));
    CHECK_STR(pm_buf_data(b), pm_buf_data(plain));
    f.batch.n = 0;
    pm_buf_reset(b);
    CHECK_OK(pm__otlp_traces_body(&f.batch, &v, b));
    CHECK_STR(pm_buf_data(b), "{\"resourceSpans\":[]}\n");
    pm_buf_free(want);
    pm_buf_free(plain);
    pm_buf_free(b);
}

/* ------------------------------------------------------------ StatsD */

static int udp_listener(int *port)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CHECK(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    socklen_t al = sizeof a;
    CHECK(getsockname(fd, (struct sockaddr *)&a, &al) == 0);
    *port = ntohs(a.sin_port);
    return fd;
}

/* Every datagram waiting on fd (the first awaited up to 5 s: loopback
 * delivers during send, so the rest are there already), joined with "\n"
 * after each; *ndgrams counts them and checks each is <= 1432 bytes. */
static char *udp_drain(int fd, int *ndgrams)
{
    static char all[1 << 20];
    size_t n = 0;
    *ndgrams = 0;
    for (int wait_ms = 5000;; wait_ms = 0) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, wait_ms) <= 0) break;
        char d[65536];
        ssize_t got = recv(fd, d, sizeof d, MSG_DONTWAIT);
        if (got < 0) break;
        CHECK(got <= 1432);
        CHECK(got > 0 && d[got - 1] != '\n');
        (*ndgrams)++;
        if (n + (size_t)got + 2 < sizeof all) {
            memcpy(all + n, d, (size_t)got);
            n += (size_t)got;
            all[n++] = '\n';
        }
    }
    all[n] = '\0';
    return all;
}

static pm_push_t *statsd_dest(pm_registry_t *r, int port, pm_statsd_flavor_t fl)
{
    char hp[64];
    snprintf(hp, sizeof hp, "127.0.0.1:%d", port);
    pm_push_opts_t *o = NULL;
    CHECK_OK(pm_push_opts_new(&o));
    CHECK_OK(pm_push_opts_add_label(o, "job", "fx"));
    CHECK_OK(pm_push_opts_add_label(o, "env", "te.st"));
    pm_push_t *p = NULL;
    CHECK_OK(pm_push_statsd_new(r, hp, fl, o, &p));
    pm_push_opts_free(o);
    return p;
}

static void statsd_flavour(pm_statsd_flavor_t fl, const char *want1, const char *want2)
{
    int port = 0, fd = udp_listener(&port);
    pm_registry_t *r = quiet_registry();
    const char *code[] = {"code"};
    pm_family_t *req = family(r, PM_TYPE_COUNTER, "req", "", code, 1, NULL, 0);
    const char *v200[] = {"200"}, *v500[] = {"5|0:0"};
    CHECK_OK(pm_counter_add_labeled(req, v200, 1, 3));
    CHECK_OK(pm_counter_add_labeled(req, v500, 1, 1));
    pm_gauge_t *temp = NULL, *ok = NULL;
    CHECK_OK(pm_gauge_new(r, "temp", "", &temp));
    CHECK_OK(pm_gauge_new(r, "ok", "", &ok));
    pm_gauge_set(temp, -2.5);
    pm_gauge_set(ok, 4);
    pm_histogram_t *lat = NULL;
    CHECK_OK(pm_histogram_new(r, "lat", "", &lat));
    for (int i = 0; i < 3; i++) pm_histogram_observe(lat, 2);
    pm_push_t *p = statsd_dest(r, port, fl);

    int nd = 0;
    CHECK_OK(pm_export_now(r));
    CHECK_STR(udp_drain(fd, &nd), want1);
    CHECK_EQ_INT(nd, 1);
    /* Only what moved: req{200} +2, lat one more 2; req{5|0:0} is not sent. */
    CHECK_OK(pm_counter_add_labeled(req, v200, 1, 2));
    pm_histogram_observe(lat, 2);
    CHECK_OK(pm_export_now(r));
    CHECK_STR(udp_drain(fd, &nd), want2);
    uint64_t sent = 0, failed = 1, bytes = 0;
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_SENT, &sent));
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_FAILED, &failed));
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_BYTES, &bytes));
    CHECK_EQ_U64(sent, 2);
    CHECK_EQ_U64(failed, 0);
    CHECK_EQ_U64(bytes, strlen(want1) + strlen(want2) - 2);
    pm_push_free(p);
    pm_histogram_release(lat);
    pm_registry_free(r);
    close(fd);
}

TEST(statsd_dogstatsd)
{
#define TAGS "|#job:fx,env:te.st"
    statsd_flavour(PM_STATSD_DOGSTATSD,
                   "lat.count:3|c" TAGS "\nlat.sum:6|c" TAGS "\nlat.p50:2|g" TAGS "\nlat.p90:2|g" TAGS
                   "\nlat.p99:2|g" TAGS "\nlat.max:2|g" TAGS "\nok:4|g" TAGS "\nreq:3|c" TAGS
                   ",code:200\nreq:1|c" TAGS ",code:5_0_0\ntemp:-2.5|g" TAGS "\n",
                   "lat.count:1|c" TAGS "\nlat.sum:2|c" TAGS "\nlat.p50:2|g" TAGS "\nlat.p90:2|g" TAGS
                   "\nlat.p99:2|g" TAGS "\nlat.max:2|g" TAGS "\nok:4|g" TAGS "\nreq:2|c" TAGS
                   ",code:200\ntemp:-2.5|g" TAGS "\n");
#undef TAGS
}

TEST(statsd_plain)
{
    /* A negative gauge goes as 0 then the value: a signed gauge is a change in StatsD. */
    statsd_flavour(PM_STATSD_PLAIN,
                   "fx.te_st.lat.count:3|c\nfx.te_st.lat.sum:6|c\nfx.te_st.lat.p50:2|g\n"
                   "fx.te_st.lat.p90:2|g\nfx.te_st.lat.p99:2|g\nfx.te_st.lat.max:2|g\n"
                   "fx.te_st.ok:4|g\nfx.te_st.req.200:3|c\nfx.te_st.req.5_0_0:1|c\n"
                   "fx.te_st.temp:0|g\nfx.te_st.temp:-2.5|g\n",
                   "fx.te_st.lat.count:1|c\nfx.te_st.lat.sum:2|c\nfx.te_st.lat.p50:2|g\n"
                   "fx.te_st.lat.p90:2|g\nfx.te_st.lat.p99:2|g\nfx.te_st.lat.max:2|g\n"
                   "fx.te_st.ok:4|g\nfx.te_st.req.200:2|c\n"
                   "fx.te_st.temp:0|g\nfx.te_st.temp:-2.5|g\n");
}

TEST(statsd_datagrams_packed)
{
    int port = 0, fd = udp_listener(&port);
    pm_registry_t *r = quiet_registry();
    const char *ln[] = {"n"};
    pm_family_t *f = family(r, PM_TYPE_COUNTER, "many", "", ln, 1, NULL, 0);
    for (int i = 0; i < 500; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const char *vals[] = {v};
        CHECK_OK(pm_counter_add_labeled(f, vals, 1, 1));
    }
    pm_push_t *p = statsd_dest(r, port, PM_STATSD_DOGSTATSD);
    CHECK_OK(pm_export_now(r));
    int nd = 0;
    char *all = udp_drain(fd, &nd);
    int lines = 0;
    for (char *q = all; *q; q++) lines += *q == '\n';
    CHECK_EQ_INT(lines, 500);
    CHECK(nd >= 500 * 36 / 1432 && nd < 30); /* about 36 bytes a line */
    CHECK(strstr(all, "many:1|c|#job:fx,env:te.st,n:499\n") != NULL);
    /* A line longer than a datagram is dropped (counted); the rest go. */
    char big[2000];
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *bv[] = {big}, *v0[] = {"0"};
    CHECK_OK(pm_counter_add_labeled(f, bv, 1, 1));
    CHECK_OK(pm_counter_add_labeled(f, v0, 1, 1));
    CHECK_OK(pm_export_now(r));
    CHECK_STR(udp_drain(fd, &nd), "many:1|c|#job:fx,env:te.st,n:0\n");
    uint64_t queued = 0, dropped = 0;
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_DROPPED, &dropped));
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_QUEUED, &queued));
    CHECK_EQ_U64(dropped, 1);
    uint64_t sent = 0;
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_SENT, &sent));
    CHECK_EQ_U64(sent, queued - dropped);
    pm_push_free(p);
    pm_registry_free(r);
    close(fd);
}

TEST(statsd_nothing_listening)
{
    int port = 0, fd = udp_listener(&port);
    close(fd); /* the port is free now: datagrams to it are refused */
    pm_registry_t *r = quiet_registry();
    pm_counter_t *c = NULL;
    CHECK_OK(pm_counter_new(r, "c", "", &c));
    pm_push_t *p = statsd_dest(r, port, PM_STATSD_PLAIN);
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    /* The first datagram goes out; the ICMP answer makes a later send fail
     * with ECONNREFUSED. */
    uint64_t failed = 0, attempts = 0, sent = 0;
    for (int i = 0; i < 50 && failed == 0; i++) {
        pm_counter_inc(c);
        CHECK_OK(pm_export_now(r));
        CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_FAILED, &failed));
    }
    clock_gettime(CLOCK_MONOTONIC, &z);
    CHECK(failed >= 1);
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_ATTEMPTS, &attempts));
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_SENT, &sent));
    CHECK_EQ_U64(sent + failed, attempts);
    uint64_t queued = 0, dropped = 0;
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_QUEUED, &queued));
    CHECK_OK(pm_push_stat(p, PM_PUSH_STAT_DROPPED, &dropped));
    CHECK_EQ_U64(queued, sent + dropped);
    CHECK_EQ_U64(dropped, failed);
    CHECK((double)(z.tv_sec - a.tv_sec) + (double)(z.tv_nsec - a.tv_nsec) / 1e9 < 5);
    pm_push_free(p);
    pm_registry_free(r);
}

TEST(statsd_bad_arguments)
{
    pm_registry_t *r = quiet_registry();
    pm_push_t *p = (pm_push_t *)1;
    CHECK_STATUS(pm_push_statsd_new(NULL, "127.0.0.1:1", PM_STATSD_PLAIN, NULL, &p), PM_EINVAL);
    CHECK(p == NULL);
    CHECK_STATUS(pm_push_statsd_new(r, NULL, PM_STATSD_PLAIN, NULL, &p), PM_EINVAL);
    CHECK_STATUS(pm_push_statsd_new(r, "127.0.0.1:1", (pm_statsd_flavor_t)7, NULL, &p), PM_EINVAL);
    const char *bad[] = {"127.0.0.1", "127.0.0.1:", "127.0.0.1:x1", "::1:8125", ":8125",
                         "no.such.host.invalid:8125"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK_STATUS(pm_push_statsd_new(r, bad[i], PM_STATSD_PLAIN, NULL, &p), PM_EIO);
    CHECK_OK(pm_push_statsd_new(r, "[::1]:8125", PM_STATSD_PLAIN, NULL, &p));
    pm_push_free(p);
    pm_registry_free(r);
}

TEST_MAIN(TH_CASE(snappy_edges), TH_CASE(snappy_random_and_repetitive), TH_CASE(remote_write_bytes),
          TH_CASE(remote_write_histogram_overflow_filter), TH_CASE(remote_write_overflow_series),
          TH_CASE(remote_write_10k_series_cpu),
          TH_CASE(remote_write_kind_big_body_refused), TH_CASE(otlp_metrics_exact),
          TH_CASE(otlp_traces_resource_labels),
          TH_CASE(statsd_dogstatsd), TH_CASE(statsd_plain), TH_CASE(statsd_datagrams_packed),
          TH_CASE(statsd_nothing_listening), TH_CASE(statsd_bad_arguments))
