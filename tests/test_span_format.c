/* Tests for the ended-span accessors (pm_span_batch_*, pm_span_data_*) and
 * pm_span_batch_format: exact JSONL and OTLP JSON texts of a small batch,
 * hostile strings, non-finite and extreme numbers, unknown enum values, bad
 * inputs, appending, and the buffer restored on failure. Records are built by
 * hand (tests/span_fixture.h), so nothing here depends on the tracer.
 * tests/validate_spans.py parses the same batch with Python's json module. */
#include "harness.h"

#include "span_fixture.h"

#include <perfmetrics/perfmetrics.h>

#include <sys/resource.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SF_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) ||                         \
    __has_feature(memory_sanitizer)
#define SF_SANITIZED 1
#endif
#endif
#ifndef SF_SANITIZED
#define SF_SANITIZED 0
#endif

/* ------------------------------------------------------------- helpers */

/* Formats batch b into a fresh buffer; returns the text (caller frees) or
 * NULL, with the status in *st. */
static char *sf_format(const pm_span_batch_t *b, pm_span_format_t fmt, pm_status_t *st)
{
    pm_buf_t *buf = NULL;
    *st = pm_buf_new(&buf);
    if (*st != PM_OK) return NULL;
    *st = pm_span_batch_format(b, fmt, buf);
    char *out = *st == PM_OK ? strdup(pm_buf_data(buf)) : NULL;
    pm_buf_free(buf);
    return out;
}

static size_t sf_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

/* A small batch: a server root span with one attribute of each type and an
 * event with an attribute; its client child in error, with dropped counts and
 * an event without attribute. */
static void sf_small(sf_fixture *f)
{
    memset(f, 0, sizeof *f);
    pm_span_rec *a = &f->rec[0], *c = &f->rec[1];
    sf_rec_init(a, 0x01, 0xa0, "GET /items", PM_SPAN_SERVER, SF_T0, SF_T0 + 250000000);
    a->status = PM_SPAN_STATUS_OK;
    sf_attr_string(a, "http.method", "GET");
    sf_attr_int(a, "http.status_code", 200);
    sf_attr_double(a, "ratio", 0.25);
    sf_attr_bool(a, "cached", 1);
    sf_event(a, "cache miss", SF_T0 + 1000, "key", "items:42");
    sf_rec_init(c, 0x01, 0xb0, "db", PM_SPAN_CLIENT, SF_T0 + 10000000, SF_T0 + 200000000);
    memcpy(c->base.parent_id, a->base.ctx.span_id, 8);
    c->status = PM_SPAN_STATUS_ERROR;
    c->status_msg = "timeout";
    c->dropped_attrs = 2;
    c->dropped_events = 1;
    sf_event(c, "retry", SF_T0 + 100000000, NULL, NULL);
    sf_batch(f, 2, "svc");
}

/* ------------------------------------------------------------- accessors */

TEST(batch_accessors_bad_inputs)
{
    CHECK_EQ_U64(pm_span_batch_count(NULL), 0);
    CHECK(pm_span_batch_span(NULL, 0) == NULL);
    CHECK_STR(pm_span_batch_service(NULL), "");

    static sf_fixture f;
    sf_fixture_build(&f);
    CHECK_EQ_U64(pm_span_batch_count(&f.batch), SF_SPANS);
    CHECK_STR(pm_span_batch_service(&f.batch), "svc " SF_QUOTES);
    for (size_t i = 0; i < SF_SPANS; i++)
        CHECK(pm_span_batch_span(&f.batch, i) == (const pm_span_data_t *)(const void *)&f.rec[i]);
    CHECK(pm_span_batch_span(&f.batch, SF_SPANS) == NULL);
    CHECK(pm_span_batch_span(&f.batch, SIZE_MAX) == NULL);

    /* No service: "" (never NULL). No span array: an empty batch. */
    pm_span_batch_t b = {f.ptr, 2, NULL};
    CHECK_STR(pm_span_batch_service(&b), "");
    b.spans = NULL;
    CHECK_EQ_U64(pm_span_batch_count(&b), 0);
    CHECK(pm_span_batch_span(&b, 0) == NULL);
}

TEST(data_accessors_null)
{
    const pm_span_data_t *s = NULL;
    CHECK_STR(pm_span_data_name(s), "");
    CHECK_EQ_INT(pm_span_data_kind(s), 0);
    CHECK(pm_span_data_context(s) == NULL);
    CHECK(pm_span_data_parent_id(s) == NULL);
    CHECK_EQ_INT(pm_span_data_parent_remote(s), 0);
    CHECK_EQ_U64(pm_span_data_start_ns(s), 0);
    CHECK_EQ_U64(pm_span_data_end_ns(s), 0);
    CHECK_EQ_INT(pm_span_data_status(s), PM_SPAN_STATUS_UNSET);
    CHECK_STR(pm_span_data_status_message(s), "");
    CHECK_EQ_U64(pm_span_data_attr_count(s), 0);
    CHECK_STR(pm_span_data_attr_key(s, 0), "");
    CHECK_EQ_INT(pm_span_data_attr_type(s, 0), 0);
    CHECK_STR(pm_span_data_attr_string(s, 0), "");
    CHECK_EQ_INT(pm_span_data_attr_int(s, 0), 0);
    CHECK_EQ_DBL(pm_span_data_attr_double(s, 0), 0.0);
    CHECK_EQ_INT(pm_span_data_attr_bool(s, 0), 0);
    CHECK_EQ_U64(pm_span_data_event_count(s), 0);
    CHECK_STR(pm_span_data_event_name(s, 0), "");
    CHECK_EQ_U64(pm_span_data_event_time_ns(s, 0), 0);
    CHECK(pm_span_data_event_attr_key(s, 0) == NULL);
    CHECK_STR(pm_span_data_event_attr_value(s, 0), "");
    CHECK_EQ_U64(pm_span_data_dropped_attrs(s), 0);
    CHECK_EQ_U64(pm_span_data_dropped_events(s), 0);
}

TEST(data_accessors_values)
{
    static sf_fixture f;
    sf_fixture_build(&f);
    const pm_span_data_t *root = pm_span_batch_span(&f.batch, 0);
    const pm_span_data_t *child = pm_span_batch_span(&f.batch, 1);
    const pm_span_data_t *consumer = pm_span_batch_span(&f.batch, 2);
    const pm_span_data_t *bare = pm_span_batch_span(&f.batch, 3);
    REQUIRE(root && child && consumer && bare);

    CHECK_STR(pm_span_data_name(root), "GET /items");
    CHECK_EQ_INT(pm_span_data_kind(root), PM_SPAN_SERVER);
    const pm_trace_context_t *ctx = pm_span_data_context(root);
    REQUIRE(ctx);
    CHECK_EQ_INT(ctx->trace_id[0], 0x01);
    CHECK_EQ_INT(ctx->trace_id[15], 0x10);
    CHECK_EQ_INT(ctx->span_id[7], 0xa7);
    CHECK_EQ_INT(ctx->flags, PM_TRACE_FLAG_SAMPLED);
    static const uint8_t zero[8];
    CHECK(memcmp(pm_span_data_parent_id(root), zero, 8) == 0);
    CHECK(memcmp(pm_span_data_parent_id(child), ctx->span_id, 8) == 0);
    CHECK_EQ_INT(pm_span_data_parent_remote(child), 0);
    CHECK_EQ_INT(pm_span_data_parent_remote(consumer), 1);
    CHECK_EQ_U64(pm_span_data_start_ns(root), SF_T0);
    CHECK_EQ_U64(pm_span_data_end_ns(root), SF_T0 + 250000000);
    CHECK_EQ_INT(pm_span_data_status(root), PM_SPAN_STATUS_OK);
    CHECK_EQ_INT(pm_span_data_status(child), PM_SPAN_STATUS_ERROR);
    CHECK_STR(pm_span_data_status_message(child), "timeout: " SF_NEWLINES SF_CONTROL);
    /* Unset strings read as "", never NULL. */
    CHECK_STR(pm_span_data_status_message(root), "");
    CHECK_STR(pm_span_data_name(bare), "");
    CHECK_EQ_U64(pm_span_data_dropped_attrs(child), 3);
    CHECK_EQ_U64(pm_span_data_dropped_events(child), 1);

    /* Attributes: each type, then out of range. */
    CHECK_EQ_U64(pm_span_data_attr_count(root), 5);
    CHECK_STR(pm_span_data_attr_key(root, 0), "http.method");
    CHECK_EQ_INT(pm_span_data_attr_type(root, 0), PM_ATTR_STRING);
    CHECK_STR(pm_span_data_attr_string(root, 0), "GET");
    CHECK_EQ_INT(pm_span_data_attr_type(root, 1), PM_ATTR_INT);
    CHECK_EQ_INT(pm_span_data_attr_int(root, 1), 200);
    CHECK_EQ_INT(pm_span_data_attr_type(root, 2), PM_ATTR_DOUBLE);
    CHECK_EQ_DBL(pm_span_data_attr_double(root, 2), 0.25);
    CHECK_EQ_INT(pm_span_data_attr_type(root, 3), PM_ATTR_BOOL);
    CHECK_EQ_INT(pm_span_data_attr_bool(root, 3), 1);
    CHECK_STR(pm_span_data_attr_key(root, 5), "");
    CHECK_EQ_INT(pm_span_data_attr_type(root, 5), 0);
    CHECK_STR(pm_span_data_attr_string(root, 5), "");
    CHECK_EQ_INT(pm_span_data_attr_int(root, SIZE_MAX), 0);
    CHECK_EQ_DBL(pm_span_data_attr_double(root, 5), 0.0);
    CHECK_EQ_INT(pm_span_data_attr_bool(root, 5), 0);
    /* A getter of another type reads 0 / "" (no conversion). */
    CHECK_STR(pm_span_data_attr_string(root, 1), "");
    CHECK_EQ_INT(pm_span_data_attr_int(root, 2), 0);
    CHECK_EQ_DBL(pm_span_data_attr_double(root, 1), 0.0);
    CHECK_EQ_INT(pm_span_data_attr_bool(root, 0), 0);
    /* Attributes outside the inline array, extremes. */
    CHECK_EQ_U64(pm_span_data_attr_count(child), 13);
    CHECK_STR(pm_span_data_attr_key(child, 2), "k\"\\\n\x01");
    CHECK_STR(pm_span_data_attr_string(child, 2), SF_UTF8);
    CHECK(pm_span_data_attr_int(child, 4) == INT64_MIN);
    CHECK(pm_span_data_attr_int(child, 5) == INT64_MAX);
    CHECK(isnan(pm_span_data_attr_double(child, 6)));
    CHECK_EQ_INT(pm_span_data_attr_bool(child, 12), 0);
    CHECK_EQ_U64(pm_span_data_attr_count(bare), 0);
    CHECK_STR(pm_span_data_attr_key(bare, 0), "");

    /* Events: with and without their attribute, then out of range. */
    CHECK_EQ_U64(pm_span_data_event_count(root), 2);
    CHECK_STR(pm_span_data_event_name(root, 0), "cache miss");
    CHECK_EQ_U64(pm_span_data_event_time_ns(root, 0), SF_T0 + 1000);
    CHECK_STR(pm_span_data_event_attr_key(root, 0), "key");
    CHECK_STR(pm_span_data_event_attr_value(root, 0), "items:42");
    CHECK_STR(pm_span_data_event_name(root, 1), "done");
    CHECK(pm_span_data_event_attr_key(root, 1) == NULL);
    CHECK_STR(pm_span_data_event_attr_value(root, 1), "");
    CHECK_STR(pm_span_data_event_name(root, 2), "");
    CHECK_EQ_U64(pm_span_data_event_time_ns(root, 2), 0);
    CHECK(pm_span_data_event_attr_key(root, 2) == NULL);
    CHECK_STR(pm_span_data_event_attr_value(root, SIZE_MAX), "");
    CHECK_EQ_U64(pm_span_data_event_count(bare), 0);
}

TEST(data_accessors_missing_arrays)
{
    /* A record whose counts are set but whose arrays are not (never made by
     * the tracer): read as no attributes and no events, not a crash. */
    static sf_fixture f;
    sf_fixture_build(&f);
    f.rec[0].attrs = NULL;
    f.rec[0].events = NULL;
    const pm_span_data_t *s = pm_span_batch_span(&f.batch, 0);
    CHECK_EQ_U64(pm_span_data_attr_count(s), 0);
    CHECK_STR(pm_span_data_attr_key(s, 0), "");
    CHECK_EQ_U64(pm_span_data_event_count(s), 0);
    CHECK(pm_span_data_event_attr_key(s, 0) == NULL);
    /* NULL strings inside a record read as "". */
    f.rec[1].attrs[0].key = NULL;
    f.rec[1].attrs[0].v.s = NULL;
    f.rec[1].events[0].name = NULL;
    f.rec[1].events[0].value = NULL;
    s = pm_span_batch_span(&f.batch, 1);
    CHECK_STR(pm_span_data_attr_key(s, 0), "");
    CHECK_STR(pm_span_data_attr_string(s, 0), "");
    CHECK_STR(pm_span_data_event_name(s, 0), "");
    CHECK_STR(pm_span_data_event_attr_value(s, 0), "");
    pm_status_t st;
    char *t = sf_format(&f.batch, PM_SPAN_FORMAT_JSONL, &st);
    CHECK_OK(st);
    CHECK_CONTAINS(t, "\"attributes\":{\"\":\"\",\"backslash\"");
    free(t);
}

/* ------------------------------------------------------------- exact texts */

TEST(jsonl_exact)
{
    static sf_fixture f;
    sf_small(&f);
    pm_status_t st;
    char *t = sf_format(&f.batch, PM_SPAN_FORMAT_JSONL, &st);
    CHECK_OK(st);
    CHECK_STR(t,
              "{\"trace_id\":\"0102030405060708090a0b0c0d0e0f10\",\"span_id\":\"a0a1a2a3a4a5a6a7\","
              "\"parent_span_id\":null,\"parent_remote\":false,\"name\":\"GET /items\","
              "\"kind\":\"server\",\"start_unix_nano\":1700000000000000000,"
              "\"end_unix_nano\":1700000000250000000,\"duration_ns\":250000000,"
              "\"status\":\"ok\",\"status_message\":\"\",\"attributes\":{\"http.method\":\"GET\","
              "\"http.status_code\":200,\"ratio\":0.25,\"cached\":true},\"events\":[{\"name\":"
              "\"cache miss\",\"time_unix_nano\":1700000000000001000,\"attributes\":{\"key\":"
              "\"items:42\"}}],\"dropped_attributes\":0,\"dropped_events\":0,\"service\":\"svc\"}\n"
              "{\"trace_id\":\"0102030405060708090a0b0c0d0e0f10\",\"span_id\":\"b0b1b2b3b4b5b6b7\","
              "\"parent_span_id\":\"a0a1a2a3a4a5a6a7\",\"parent_remote\":false,\"name\":\"db\","
              "\"kind\":\"client\",\"start_unix_nano\":1700000000010000000,"
              "\"end_unix_nano\":1700000000200000000,\"duration_ns\":190000000,"
              "\"status\":\"error\",\"status_message\":\"timeout\",\"attributes\":{},"
              "\"events\":[{\"name\":\"retry\",\"time_unix_nano\":1700000000100000000,"
              "\"attributes\":{}}],\"dropped_attributes\":2,\"dropped_events\":1,"
              "\"service\":\"svc\"}\n");
    free(t);
}

TEST(otlp_json_exact)
{
    static sf_fixture f;
    sf_small(&f);
    pm_status_t st;
    char *t = sf_format(&f.batch, PM_SPAN_FORMAT_OTLP_JSON, &st);
    CHECK_OK(st);
    CHECK_STR(t,
              "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\","
              "\"value\":{\"stringValue\":\"svc\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":"
              "\"libperfmetrics\",\"version\":\"" PM_VERSION_STRING "\"},\"spans\":[\n"
              "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"a0a1a2a3a4a5a6a7\","
              "\"flags\":257,\"name\":\"GET /items\",\"kind\":2,"
              "\"startTimeUnixNano\":\"1700000000000000000\","
              "\"endTimeUnixNano\":\"1700000000250000000\",\"attributes\":["
              "{\"key\":\"http.method\",\"value\":{\"stringValue\":\"GET\"}},"
              "{\"key\":\"http.status_code\",\"value\":{\"intValue\":\"200\"}},"
              "{\"key\":\"ratio\",\"value\":{\"doubleValue\":0.25}},"
              "{\"key\":\"cached\",\"value\":{\"boolValue\":true}}],"
              "\"droppedAttributesCount\":0,\"events\":[{\"timeUnixNano\":"
              "\"1700000000000001000\",\"name\":\"cache miss\",\"attributes\":[{\"key\":\"key\","
              "\"value\":{\"stringValue\":\"items:42\"}}]}],\"droppedEventsCount\":0,"
              "\"status\":{\"code\":1,\"message\":\"\"}},\n"
              "{\"traceId\":\"0102030405060708090a0b0c0d0e0f10\",\"spanId\":\"b0b1b2b3b4b5b6b7\","
              "\"parentSpanId\":\"a0a1a2a3a4a5a6a7\",\"flags\":257,\"name\":\"db\",\"kind\":3,"
              "\"startTimeUnixNano\":\"1700000000010000000\","
              "\"endTimeUnixNano\":\"1700000000200000000\",\"attributes\":[],"
              "\"droppedAttributesCount\":2,\"events\":[{\"timeUnixNano\":"
              "\"1700000000100000000\",\"name\":\"retry\",\"attributes\":[]}],"
              "\"droppedEventsCount\":1,\"status\":{\"code\":2,\"message\":\"timeout\"}}\n"
              "]}]}]}\n");
    free(t);
}

/* ------------------------------------------------------------- content */

TEST(hostile_strings)
{
    static sf_fixture f;
    sf_fixture_build(&f);
    pm_status_t st;
    for (int k = 0; k < 2; k++) {
        char *t = sf_format(&f.batch, k ? PM_SPAN_FORMAT_OTLP_JSON : PM_SPAN_FORMAT_JSONL, &st);
        CHECK_OK(st);
        REQUIRE(t);
        /* Quotes, backslashes, newlines and control characters escaped
         * (RFC 8259), DEL and UTF-8 passed through, fake escapes doubled. */
        CHECK_CONTAINS(t, "\"say \\\"hi\\\"\"");
        CHECK_CONTAINS(t, "\"C:\\\\dir\\\\\"");
        CHECK_CONTAINS(t, "\"multi\\nline\\r\\n\"");
        CHECK_CONTAINS(t, "\"ctl\\u0001\\u001f\x7f\\b\\f\\t end\"");
        CHECK_CONTAINS(t, "\"timeout: multi\\nline\\r\\nctl\\u0001\\u001f\x7f\\b\\f\\t end\"");
        CHECK_CONTAINS(t, "\"k\\\"\\\\\\n\\u0001\"");
        CHECK_CONTAINS(t, "\"" SF_UTF8 "\"");
        CHECK_CONTAINS(t, "\"\\\\n is not a newline, \\\\u0041 not an A\"");
        CHECK_CONTAINS(t, "\"svc say \\\"hi\\\"\"");
        CHECK_CONTAINS(t, "\"db say \\\"hi\\\"\"");
        /* No raw control character but the line ends; one line per span
         * (plus the envelope's two in OTLP). */
        for (const char *p = t; *p; p++)
            if ((unsigned char)*p < 0x20 && *p != '\n') {
                TH_FAIL_("raw control byte 0x%02x at offset %zu", (unsigned)*p, (size_t)(p - t));
                break;
            }
        CHECK_EQ_U64(sf_count(t, "\n"), k ? SF_SPANS + 2 : SF_SPANS);
        free(t);
    }
}

TEST(numbers)
{
    static sf_fixture f;
    sf_fixture_build(&f);
    pm_status_t st;
    char *j = sf_format(&f.batch, PM_SPAN_FORMAT_JSONL, &st);
    CHECK_OK(st);
    char *o = sf_format(&f.batch, PM_SPAN_FORMAT_OTLP_JSON, &st);
    CHECK_OK(st);
    REQUIRE(j && o);
    /* int64 extremes: JSON integers in JSONL, decimal strings in OTLP. */
    CHECK_CONTAINS(j, "\"min\":-9223372036854775808,\"max\":9223372036854775807,");
    CHECK_CONTAINS(o, "{\"key\":\"min\",\"value\":{\"intValue\":\"-9223372036854775808\"}}");
    CHECK_CONTAINS(o, "{\"key\":\"max\",\"value\":{\"intValue\":\"9223372036854775807\"}}");
    /* Non-finite doubles: null in JSONL, the proto3 JSON strings in OTLP. */
    CHECK_CONTAINS(j, "\"nan\":null,\"inf\":null,\"-inf\":null,");
    CHECK_CONTAINS(o, "{\"key\":\"nan\",\"value\":{\"doubleValue\":\"NaN\"}}");
    CHECK_CONTAINS(o, "{\"key\":\"inf\",\"value\":{\"doubleValue\":\"Infinity\"}}");
    CHECK_CONTAINS(o, "{\"key\":\"-inf\",\"value\":{\"doubleValue\":\"-Infinity\"}}");
    /* Finite doubles read back exactly and stay floats ("2.0", not "2"). */
    CHECK_CONTAINS(j, "\"ratio\":0.25,\"cached\":true,\"whole\":2.0}");
    CHECK_CONTAINS(j, "\"tiny\":5e-324,\"big\":1e+300,\"neg\":-1.5,\"no\":false}");
    CHECK_CONTAINS(o, "{\"key\":\"whole\",\"value\":{\"doubleValue\":2.0}}");
    CHECK_CONTAINS(o, "{\"key\":\"tiny\",\"value\":{\"doubleValue\":5e-324}}");
    /* Flags: sampled bit, HAS_IS_REMOTE, IS_REMOTE for the remote parent;
     * the unsampled bare span has only HAS_IS_REMOTE. */
    CHECK_CONTAINS(o, "\"spanId\":\"c0c1c2c3c4c5c6c7\",\"parentSpanId\":\"1112131415161718\","
                      "\"flags\":769,");
    CHECK_CONTAINS(o, "\"spanId\":\"e0e1e2e3e4e5e6e7\",\"flags\":256,");
    CHECK_CONTAINS(j, "\"parent_span_id\":\"1112131415161718\",\"parent_remote\":true,");
    CHECK_CONTAINS(j, "\"duration_ns\":0,");
    free(j);
    free(o);
}

TEST(extreme_times_and_unknown_enums)
{
    static sf_fixture f;
    memset(&f, 0, sizeof f);
    /* end before start (clock trouble): duration 0, times as recorded. */
    sf_rec_init(&f.rec[0], 0x01, 0xa0, "x", (pm_span_kind_t)0, UINT64_MAX, 5);
    f.rec[0].status = 7;
    sf_event(&f.rec[0], "e", UINT64_MAX, NULL, NULL);
    /* Values outside the enums (never made by the tracer): the "unspecified"
     * kind (OTLP 0) and the unset status. */
    sf_rec_init(&f.rec[1], 0x01, 0xb0, "y", (pm_span_kind_t)9, 0, 0);
    f.rec[1].attrs[0].key = "odd";
    f.rec[1].attrs[0].type = (pm_attr_type_t)9;
    f.rec[1].nattrs = 1;
    sf_batch(&f, 2, "svc");
    pm_status_t st;
    char *j = sf_format(&f.batch, PM_SPAN_FORMAT_JSONL, &st);
    CHECK_OK(st);
    char *o = sf_format(&f.batch, PM_SPAN_FORMAT_OTLP_JSON, &st);
    CHECK_OK(st);
    REQUIRE(j && o);
    CHECK_CONTAINS(j, "\"kind\":\"unspecified\",\"start_unix_nano\":18446744073709551615,"
                      "\"end_unix_nano\":5,\"duration_ns\":0,\"status\":\"unset\",");
    CHECK_CONTAINS(j, "\"time_unix_nano\":18446744073709551615,");
    CHECK_EQ_U64(sf_count(j, "\"kind\":\"unspecified\""), 2);
    CHECK_CONTAINS(j, "\"attributes\":{\"odd\":null}");
    CHECK_CONTAINS(o, "\"kind\":0,\"startTimeUnixNano\":\"18446744073709551615\","
                      "\"endTimeUnixNano\":\"5\",");
    CHECK_CONTAINS(o, "{\"timeUnixNano\":\"18446744073709551615\",");
    CHECK_CONTAINS(o, "\"status\":{\"code\":0,");
    CHECK_CONTAINS(o, "\"attributes\":[{\"key\":\"odd\",\"value\":{}}]");
    free(j);
    free(o);
}

TEST(empty_batches_and_null_entries)
{
    static sf_fixture f;
    sf_small(&f);
    pm_status_t st;
    /* Empty: nothing in JSONL; a request without ResourceSpans in OTLP (no
     * envelope without spans). */
    pm_span_batch_t empty = {f.ptr, 0, "svc"};
    char *t = sf_format(&empty, PM_SPAN_FORMAT_JSONL, &st);
    CHECK_OK(st);
    CHECK_STR(t, "");
    free(t);
    t = sf_format(&empty, PM_SPAN_FORMAT_OTLP_JSON, &st);
    CHECK_OK(st);
    CHECK_STR(t, "{\"resourceSpans\":[]}\n");
    free(t);
    /* NULL entries are skipped. */
    const pm_span_rec *holes[] = {NULL, &f.rec[1], NULL};
    pm_span_batch_t b = {holes, 3, "svc"};
    t = sf_format(&b, PM_SPAN_FORMAT_JSONL, &st);
    CHECK_OK(st);
    CHECK_EQ_U64(sf_count(t, "\n"), 1);
    CHECK_CONTAINS(t, "\"span_id\":\"b0b1b2b3b4b5b6b7\"");
    free(t);
    t = sf_format(&b, PM_SPAN_FORMAT_OTLP_JSON, &st);
    CHECK_OK(st);
    CHECK_EQ_U64(sf_count(t, "\"traceId\""), 1);
    CHECK_CONTAINS(t, "\"spans\":[\n{\"traceId\"");
    CHECK_CONTAINS(t, "\"code\":2,\"message\":\"timeout\"}}\n]}]}]}\n");
    free(t);
    const pm_span_rec *none[] = {NULL, NULL};
    pm_span_batch_t nb = {none, 2, "svc"};
    t = sf_format(&nb, PM_SPAN_FORMAT_OTLP_JSON, &st);
    CHECK_OK(st);
    CHECK_STR(t, "{\"resourceSpans\":[]}\n");
    free(t);
}

/* ------------------------------------------------------------- buffer */

TEST(bad_inputs)
{
    static sf_fixture f;
    sf_small(&f);
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm_buf_append(b, "before", 6));
    CHECK_STATUS(pm_span_batch_format(NULL, PM_SPAN_FORMAT_JSONL, b), PM_EINVAL);
    CHECK_STATUS(pm_span_batch_format(NULL, PM_SPAN_FORMAT_OTLP_JSON, b), PM_EINVAL);
    CHECK_STATUS(pm_span_batch_format(&f.batch, PM_SPAN_FORMAT_JSONL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_span_batch_format(&f.batch, PM_SPAN_FORMAT_OTLP_JSON, NULL), PM_EINVAL);
    static const int bad[] = {0, 3, -1, 1000};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_STATUS(pm_span_batch_format(&f.batch, (pm_span_format_t)bad[i], b), PM_EINVAL);
    CHECK_EQ_U64(pm_buf_len(b), 6);
    CHECK_STR(pm_buf_data(b), "before");
    pm_buf_free(b);
}

TEST(appends_to_buffer)
{
    static sf_fixture f;
    sf_small(&f);
    pm_status_t st;
    char *jsonl = sf_format(&f.batch, PM_SPAN_FORMAT_JSONL, &st);
    char *otlp = sf_format(&f.batch, PM_SPAN_FORMAT_OTLP_JSON, &st);
    REQUIRE(jsonl && otlp);
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
    CHECK_OK(pm_buf_append(b, "before\n", 7));
    CHECK_OK(pm_span_batch_format(&f.batch, PM_SPAN_FORMAT_JSONL, b));
    CHECK_OK(pm_span_batch_format(&f.batch, PM_SPAN_FORMAT_OTLP_JSON, b));
    size_t n = 7 + strlen(jsonl) + strlen(otlp);
    CHECK_EQ_U64(pm_buf_len(b), n);
    char *want = malloc(n + 1);
    REQUIRE(want);
    snprintf(want, n + 1, "before\n%s%s", jsonl, otlp);
    CHECK(strcmp(pm_buf_data(b), want) == 0);
    free(want);
    free(jsonl);
    free(otlp);
    pm_buf_free(b);
}

TEST(large_batch)
{
    /* Thousands of spans: the writer grows the buffer many times over, and
     * the batch's text is the concatenation of its spans' texts. */
    enum {
        N = 5000
    };
    static sf_fixture f;
    sf_fixture_build(&f);
    const pm_span_rec **many = malloc(N * sizeof *many);
    REQUIRE(many);
    for (size_t i = 0; i < N; i++) many[i] = &f.rec[i % SF_SPANS];
    pm_span_batch_t big = {many, N, f.batch.service};
    pm_status_t st;
    char *one = sf_format(&f.batch, PM_SPAN_FORMAT_JSONL, &st);
    char *all = sf_format(&big, PM_SPAN_FORMAT_JSONL, &st);
    CHECK_OK(st);
    REQUIRE(one && all);
    size_t len = strlen(one);
    CHECK_EQ_U64(strlen(all), len * (N / SF_SPANS));
    int same = 1;
    for (size_t k = 0; k < N / SF_SPANS && same; k++) same = memcmp(all + k * len, one, len) == 0;
    CHECK(same);
    free(one);
    free(all);
    char *otlp = sf_format(&big, PM_SPAN_FORMAT_OTLP_JSON, &st);
    CHECK_OK(st);
    CHECK_EQ_U64(sf_count(otlp, "\"traceId\""), N);
    free(otlp);
    free(many);
}

TEST(enomem_restores_buffer)
{
    if (SF_SANITIZED) {
        printf("  (skipped: address-space limit under a sanitizer)\n");
        return;
    }
    /* A span whose one attribute is 64 MiB, then an address-space limit too
     * small for its text: the format fails with PM_ENOMEM and the buffer
     * keeps exactly what it had. */
    static sf_fixture f;
    sf_small(&f);
    size_t big = (size_t)64 << 20;
    char *blob = malloc(big + 1);
    REQUIRE(blob);
    memset(blob, 'x', big);
    blob[big] = '\0';
    f.rec[1].attrs[0].key = "blob";
    f.rec[1].attrs[0].type = PM_ATTR_STRING;
    f.rec[1].attrs[0].v.s = blob;
    f.rec[1].nattrs = 1;
    pm_buf_t *b = NULL;
    REQUIRE(pm_buf_new(&b) == PM_OK);
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
    CHECK_STATUS(pm_span_batch_format(&f.batch, PM_SPAN_FORMAT_JSONL, b), PM_ENOMEM);
    CHECK_EQ_U64(pm_buf_len(b), 6);
    CHECK_STR(pm_buf_data(b), "before");
    CHECK_STATUS(pm_span_batch_format(&f.batch, PM_SPAN_FORMAT_OTLP_JSON, b), PM_ENOMEM);
    CHECK_EQ_U64(pm_buf_len(b), 6);
    CHECK_STR(pm_buf_data(b), "before");
    CHECK(setrlimit(RLIMIT_AS, &old) == 0);
    /* With room again the same call succeeds. */
    CHECK_OK(pm_span_batch_format(&f.batch, PM_SPAN_FORMAT_JSONL, b));
    CHECK(pm_buf_len(b) > big);
    pm_buf_free(b);
    free(blob);
}

TEST_MAIN(TH_CASE(batch_accessors_bad_inputs), TH_CASE(data_accessors_null),
          TH_CASE(data_accessors_values), TH_CASE(data_accessors_missing_arrays),
          TH_CASE(jsonl_exact), TH_CASE(otlp_json_exact), TH_CASE(hostile_strings),
          TH_CASE(numbers), TH_CASE(extreme_times_and_unknown_enums),
          TH_CASE(empty_batches_and_null_entries), TH_CASE(bad_inputs), TH_CASE(appends_to_buffer),
          TH_CASE(large_batch), TH_CASE(enomem_restores_buffer))
