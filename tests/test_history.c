/* The history store: round trips (every format of a read-back snapshot is
 * the original's, byte for byte), rotation and the size bound, reading
 * while writing, torn tails and corruption, a full disk (RLIMIT_FSIZE), the
 * one-writer lock, time ranges, bad inputs, and a writer killed with
 * SIGKILL in the middle of its appends. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char tmpl[] = "/tmp/pm-history-XXXXXX";

static char *fresh_dir(void)
{
    static char buf[64];
    strcpy(buf, tmpl);
    return mkdtemp(buf);
}

static void rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* A registry with one of everything: labels, a histogram with buckets and
 * values across its range, a gauge, an overflow series. */
static pm_registry_t *sample_registry(pm_counter_t **c, pm_histogram_t **h)
{
    pm_registry_opts_t *o = NULL;
    pm_registry_t *r = NULL;
    if (pm_registry_opts_new(&o) != PM_OK) return NULL;
    pm_registry_opts_set_self_metrics(o, 0);
    pm_registry_new(o, &r);
    pm_registry_opts_free(o);
    if (!r) return NULL;
    static const char *const ln[] = {"task_type", "status"};
    pm_family_opts_t *fo = NULL;
    pm_family_t *tasks = NULL, *lat = NULL;
    pm_family_opts_new(&fo);
    pm_family_opts_set_labels(fo, ln, 2);
    pm_family_opts_set_max_series(fo, 3);
    pm_family_new(r, PM_TYPE_COUNTER, "tasks", "Tasks by \"type\".", fo, &tasks);
    pm_family_opts_free(fo);
    pm_family_opts_new(&fo);
    pm_family_opts_set_labels(fo, ln, 1);
    pm_family_opts_set_unit(fo, "seconds");
    pm_family_new(r, PM_TYPE_HISTOGRAM, "task_duration_seconds", "Duration.", fo, &lat);
    pm_family_opts_free(fo);
    if (!tasks || !lat) return NULL;
    const char *v[][2] = {{"deploy", "ok"}, {"deploy", "error"}, {"review", "ok"}, {"x", "y"}};
    for (int i = 0; i < 4; i++) pm_counter_add_labeled(tasks, v[i], 2, (double)(i + 1) * 1.5);
    for (int i = 0; i < 1000; i++) {
        const char *t[] = {i % 3 ? "deploy" : "review"};
        pm_histogram_observe_labeled(lat, t, 1, 0.001 * (1 + i % 97) * (1 + i % 7));
    }
    pm_gauge_t *g = NULL;
    pm_gauge_new(r, "queue_length", "Queue.", &g);
    pm_gauge_set(g, -2.25);
    pm_gauge_release(g);
    if (c && pm_counter_new(r, "events", "Events.", c) != PM_OK) return NULL;
    if (h && pm_histogram_new(r, "wait_seconds", "Wait.", h) != PM_OK) return NULL;
    return r;
}

static char *text_of(const pm_snapshot_t *s, pm_format_t f)
{
    pm_buf_t *b = NULL;
    if (pm_buf_new(&b) != PM_OK || pm_format(s, f, b) != PM_OK) return NULL;
    char *t = strdup(pm_buf_data(b));
    pm_buf_free(b);
    return t;
}

static void check_same(const pm_snapshot_t *a, const pm_snapshot_t *b)
{
    pm_format_t fmts[] = {PM_FORMAT_PROMETHEUS, PM_FORMAT_OPENMETRICS, PM_FORMAT_JSON};
    for (int i = 0; i < 3; i++) {
        char *x = text_of(a, fmts[i]), *y = text_of(b, fmts[i]);
        REQUIRE(x && y);
        CHECK_STR(y, x);
        free(x);
        free(y);
    }
    CHECK_EQ_DBL(pm_snapshot_time(b), pm_snapshot_time(a));
}

/* Reads every snapshot of the store in dir; each must equal `want` when it
 * is not NULL. Returns how many, and the reader's skipped count. */
static int read_all(const char *dir, const pm_snapshot_t *want, uint64_t *skipped)
{
    pm_history_reader_t *rd = NULL;
    if (pm_history_reader_open(dir, &rd) != PM_OK) return -1;
    int n = 0;
    pm_snapshot_t *back = NULL;
    while (pm_history_reader_next(rd, &back) == PM_OK) {
        if (want) check_same(want, back);
        pm_snapshot_release(back);
        n++;
    }
    *skipped = pm_history_reader_skipped(rd);
    pm_history_reader_close(rd);
    return n;
}

static size_t count_segments(const char *dir)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) n += strncmp(e->d_name, "hist-", 5) == 0;
    if (d) closedir(d);
    return n;
}

TEST(bad_inputs)
{
    pm_history_opts_t *o = NULL;
    CHECK_STATUS(pm_history_opts_new(NULL), PM_EINVAL);
    REQUIRE(pm_history_opts_new(&o) == PM_OK);
    CHECK_STATUS(pm_history_opts_set_limits(NULL, 4096, 4096), PM_EINVAL);
    CHECK_STATUS(pm_history_opts_set_limits(o, 4095, 1 << 20), PM_ERANGE);
    CHECK_STATUS(pm_history_opts_set_limits(o, 1 << 20, 4096), PM_ERANGE);
    CHECK_STATUS(pm_history_opts_set_sync(o, (pm_history_sync_t)7), PM_ERANGE);
    CHECK_STATUS(pm_history_opts_set_name(o, NULL), PM_EINVAL);
    CHECK_STATUS(pm_history_opts_set_name(o, ""), PM_EUTF8);
    CHECK_STATUS(pm_history_opts_set_name(o, "\xff"), PM_EUTF8);
    CHECK_STATUS(pm_history_opts_add_prefix(o, NULL), PM_EINVAL);
    pm_history_t *h = (pm_history_t *)1;
    CHECK_STATUS(pm_history_new(NULL, NULL, o, &h), PM_EINVAL);
    CHECK(h == NULL);
    CHECK_STATUS(pm_history_new(NULL, "", o, &h), PM_EINVAL);
    CHECK_STATUS(pm_history_new(NULL, "/proc/pm-no-such/dir", o, &h), PM_EIO);
    CHECK_STATUS(pm_history_append(NULL, NULL), PM_EINVAL);
    uint64_t v = 1;
    CHECK_STATUS(pm_history_stat(NULL, PM_HISTORY_STAT_RECORDS, &v), PM_EINVAL);
    CHECK_EQ_U64(v, 0);
    pm_history_free(NULL);
    pm_history_reader_t *rd = (pm_history_reader_t *)1;
    CHECK_STATUS(pm_history_reader_open(NULL, &rd), PM_EINVAL);
    CHECK(rd == NULL);
    CHECK_STATUS(pm_history_reader_open("/tmp/pm-history-none-such", &rd), PM_ENOENT);
    char *dir = fresh_dir();
    REQUIRE(dir);
    CHECK_STATUS(pm_history_reader_open(dir, &rd), PM_ENOENT); /* no segment */
    CHECK_STATUS(pm_history_reader_next(NULL, NULL), PM_EINVAL);
    CHECK_STATUS(pm_history_reader_set_range(NULL, 0, 1), PM_EINVAL);
    CHECK_EQ_U64(pm_history_reader_skipped(NULL), 0);
    pm_history_reader_progress(NULL, &v, NULL);
    CHECK_EQ_U64(v, 0);
    pm_history_reader_close(NULL);
    pm_history_opts_free(o);
    rm_rf(dir);
}

TEST(round_trip_every_format)
{
    pm_counter_t *c = NULL;
    pm_histogram_t *hw = NULL;
    pm_registry_t *r = sample_registry(&c, &hw);
    REQUIRE(r);
    char *dir = fresh_dir();
    REQUIRE(dir);
    pm_history_t *h = NULL;
    REQUIRE(pm_history_new(r, dir, NULL, &h) == PM_OK);
    enum { N = 5 };
    pm_snapshot_t *orig[N];
    for (int i = 0; i < N; i++) {
        pm_counter_add(c, 0.5 + i);
        pm_histogram_observe(hw, 0.01 * (i + 1));
        REQUIRE(pm_snapshot_new(r, &orig[i]) == PM_OK);
        CHECK_OK(pm_history_append(h, orig[i]));
    }
    CHECK_OK(pm_export_now(r)); /* the exporter appends a sixth */
    uint64_t recs = 0;
    CHECK_OK(pm_history_stat(h, PM_HISTORY_STAT_RECORDS, &recs));
    CHECK_EQ_U64(recs, N + 1);
    pm_history_reader_t *rd = NULL;
    REQUIRE(pm_history_reader_open(dir, &rd) == PM_OK);
    for (int i = 0; i < N; i++) {
        pm_snapshot_t *back = NULL;
        REQUIRE(pm_history_reader_next(rd, &back) == PM_OK);
        check_same(orig[i], back);
        double q1 = NAN, q2 = NAN;
        const pm_snap_family_t *f = pm_snapshot_family(back, 0);
        (void)f;
        for (size_t k = 0; k < pm_snapshot_family_count(back); k++) {
            const pm_snap_family_t *bf = pm_snapshot_family(back, k), *of = pm_snapshot_family(orig[i], k);
            if (pm_snap_family_type(bf) != PM_TYPE_HISTOGRAM) continue;
            for (size_t j = 0; j < pm_snap_family_series_count(bf); j++) {
                CHECK_OK(pm_snap_series_quantile(pm_snap_family_series(bf, j), 0.99, &q1));
                CHECK_OK(pm_snap_series_quantile(pm_snap_family_series(of, j), 0.99, &q2));
                CHECK_EQ_DBL(q1, q2);
            }
        }
        pm_snapshot_release(back);
    }
    pm_snapshot_t *last = NULL;
    CHECK_OK(pm_history_reader_next(rd, &last));
    pm_snapshot_release(last);
    pm_snapshot_t *none = (pm_snapshot_t *)1;
    CHECK_STATUS(pm_history_reader_next(rd, &none), PM_ENOENT);
    CHECK(none == NULL);
    /* Reading while writing: a record appended now is the next one read. */
    CHECK_OK(pm_history_append(h, orig[0]));
    pm_snapshot_t *more = NULL;
    CHECK_OK(pm_history_reader_next(rd, &more));
    if (more) check_same(orig[0], more);
    pm_snapshot_release(more);
    uint64_t done = 0, total = 0;
    pm_history_reader_progress(rd, &done, &total);
    CHECK(done > 0 && total > 0);
    CHECK_EQ_U64(pm_history_reader_skipped(rd), 0);
    pm_history_reader_close(rd);
    for (int i = 0; i < N; i++) pm_snapshot_release(orig[i]);
    pm_history_free(h);
    pm_counter_release(c);
    pm_histogram_release(hw);
    pm_registry_free(r);
    rm_rf(dir);
}

TEST(rotation_bound_and_range)
{
    pm_registry_t *r = sample_registry(NULL, NULL);
    REQUIRE(r);
    char *dir = fresh_dir();
    pm_history_opts_t *o = NULL;
    REQUIRE(pm_history_opts_new(&o) == PM_OK);
    CHECK_OK(pm_history_opts_set_limits(o, 8192, 40000));
    CHECK_OK(pm_history_opts_add_prefix(o, "task"));
    pm_history_t *h = NULL;
    REQUIRE(pm_history_new(NULL, dir, o, &h) == PM_OK);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    for (int i = 0; i < 200; i++) REQUIRE(pm_history_append(h, s) == PM_OK);
    uint64_t deleted = 0, segs = 0;
    CHECK_OK(pm_history_stat(h, PM_HISTORY_STAT_DELETED, &deleted));
    CHECK_OK(pm_history_stat(h, PM_HISTORY_STAT_SEGMENTS, &segs));
    CHECK(deleted > 0);
    CHECK_EQ_U64(segs, count_segments(dir));
    /* The bound: the segments on disk hold at most total + one segment. */
    uint64_t bytes = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        char p[512];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!strncmp(e->d_name, "hist-", 5) && stat(p, &sb) == 0) bytes += (uint64_t)sb.st_size;
    }
    if (d) closedir(d);
    CHECK(bytes <= 40000 + 8192);
    pm_history_reader_t *rd = NULL;
    REQUIRE(pm_history_reader_open(dir, &rd) == PM_OK);
    pm_snapshot_t *back = NULL;
    REQUIRE(pm_history_reader_next(rd, &back) == PM_OK);
    /* Only the prefixed families were kept. */
    for (size_t k = 0; k < pm_snapshot_family_count(back); k++)
        CHECK(!strncmp(pm_snap_family_name(pm_snapshot_family(back, k)), "task", 4));
    CHECK_EQ_INT(pm_snapshot_family_count(back), 2);
    pm_snapshot_release(back);
    CHECK_OK(pm_history_reader_set_range(rd, pm_snapshot_time(s) + 1, INFINITY));
    CHECK_STATUS(pm_history_reader_next(rd, &back), PM_ENOENT);
    CHECK_STATUS(pm_history_reader_set_range(rd, 2, 1), PM_EINVAL);
    pm_history_reader_close(rd);
    pm_snapshot_release(s);
    pm_history_free(h);
    pm_history_opts_free(o);
    pm_registry_free(r);
    rm_rf(dir);
}

static char *newest_segment(const char *dir)
{
    static char best[512];
    best[0] = '\0';
    char name[256] = "";
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));)
        if (!strncmp(e->d_name, "hist-", 5) && strcmp(e->d_name, name) > 0)
            snprintf(name, sizeof name, "%s", e->d_name);
    if (d) closedir(d);
    snprintf(best, sizeof best, "%s/%s", dir, name);
    return best;
}

static off_t size_of(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? sb.st_size : -1;
}

/* A torn tail (truncated in the middle of the last record) loses that
 * record only; the next writer truncates it and appends after it; a flipped
 * byte in the middle loses that record only. */
TEST(torn_and_corrupt)
{
    pm_registry_t *r = sample_registry(NULL, NULL);
    REQUIRE(r);
    char *dir = fresh_dir();
    pm_history_t *h = NULL;
    REQUIRE(pm_history_new(NULL, dir, NULL, &h) == PM_OK);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    for (int i = 0; i < 10; i++) REQUIRE(pm_history_append(h, s) == PM_OK);
    pm_history_free(h);
    const char *seg = newest_segment(dir);
    off_t full = size_of(seg);
    REQUIRE(full > 100);
    REQUIRE(truncate(seg, full - 37) == 0); /* tear the last record */
    /* Flip a byte in the middle of the third record's body. */
    int fd = open(seg, O_RDWR);
    REQUIRE(fd >= 0);
    off_t rec = (full - 8) / 10;
    unsigned char byte;
    REQUIRE(pread(fd, &byte, 1, 8 + 2 * rec + rec / 2) == 1);
    byte ^= 0x40;
    REQUIRE(pwrite(fd, &byte, 1, 8 + 2 * rec + rec / 2) == 1);
    close(fd);
    uint64_t skipped = 0;
    CHECK_EQ_INT(read_all(dir, s, &skipped), 8); /* 10 less the corrupt one and the torn one */
    CHECK_EQ_U64(skipped, 1); /* the torn tail of the newest is "not yet" */
    /* The next writer cuts the torn tail off and writes a new segment. */
    REQUIRE(pm_history_new(NULL, dir, NULL, &h) == PM_OK);
    uint64_t cut = 0;
    CHECK_OK(pm_history_stat(h, PM_HISTORY_STAT_RECOVERED, &cut));
    CHECK_EQ_U64(cut, (uint64_t)(rec - 37));
    CHECK_OK(pm_history_append(h, s));
    pm_history_free(h);
    CHECK_EQ_INT(read_all(dir, NULL, &skipped), 9);
    CHECK_EQ_U64(skipped, 1); /* only the corrupt one now */
    pm_snapshot_release(s);
    pm_registry_free(r);
    rm_rf(dir);
}

/* A full disk, as RLIMIT_FSIZE makes it: the append fails, nothing of it is
 * left in the file, and appends succeed again once there is room. */
TEST(disk_full)
{
    pm_registry_t *r = sample_registry(NULL, NULL);
    REQUIRE(r);
    char *dir = fresh_dir();
    pm_history_t *h = NULL;
    REQUIRE(pm_history_new(NULL, dir, NULL, &h) == PM_OK);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    REQUIRE(pm_history_append(h, s) == PM_OK);
    const char *seg = newest_segment(dir);
    off_t one = size_of(seg);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = (rlim_t)(one + (one - 8) / 2); /* room for half a record */
    REQUIRE(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    CHECK_STATUS(pm_history_append(h, s), PM_EIO);
    CHECK_EQ_INT(size_of(seg), one); /* the half record was taken back */
    uint64_t failed = 0;
    CHECK_OK(pm_history_stat(h, PM_HISTORY_STAT_FAILED, &failed));
    CHECK_EQ_U64(failed, 1);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &old) == 0);
    CHECK_OK(pm_history_append(h, s));
    pm_history_free(h);
    uint64_t skipped = 1;
    CHECK_EQ_INT(read_all(dir, s, &skipped), 2);
    CHECK_EQ_U64(skipped, 0);
    pm_snapshot_release(s);
    pm_registry_free(r);
    rm_rf(dir);
}

/* A real full disk: a 96 KiB tmpfs (root only, as CI runs; the
 * RLIMIT_FSIZE case above covers the same path for everyone). Appends fail
 * with PM_EIO once the disk is full, every record written before reads
 * back whole, and nothing torn is left behind. */
TEST(disk_full_tmpfs)
{
    if (geteuid() != 0) {
        printf("  info: not root: the tmpfs case did not run (disk_full covers the path)\n");
        return;
    }
    char *dir = fresh_dir();
    REQUIRE(dir);
    if (mount("tmpfs", dir, "tmpfs", 0, "size=96k") != 0) {
        printf("  info: mount tmpfs: %s: the tmpfs case did not run\n", strerror(errno));
        rm_rf(dir);
        return;
    }
    char store[128];
    snprintf(store, sizeof store, "%s/store", dir);
    pm_registry_t *r = sample_registry(NULL, NULL);
    REQUIRE(r);
    pm_history_t *h = NULL;
    REQUIRE(pm_history_new(NULL, store, NULL, &h) == PM_OK);
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(r, &s) == PM_OK);
    int ok = 0, failed = 0;
    for (int i = 0; i < 1000 && failed < 3; i++) {
        if (pm_history_append(h, s) == PM_OK)
            ok++;
        else
            failed++;
    }
    CHECK(ok > 0 && failed == 3);
    pm_history_free(h);
    uint64_t skipped = 1;
    CHECK_EQ_INT(read_all(store, s, &skipped), ok);
    CHECK_EQ_U64(skipped, 0);
    pm_snapshot_release(s);
    pm_registry_free(r);
    umount(dir);
    rm_rf(dir);
}

/* Span records: a tracer's exported spans go into the store between the
 * snapshots, come back with every field through the pm_span_data accessors
 * (and in the same OTLP JSON), and snapshot readers pass over them. */
TEST(span_records)
{
    char *dir = fresh_dir();
    pm_registry_t *r = sample_registry(NULL, NULL);
    REQUIRE(r);
    pm_tracer_opts_t *to = NULL;
    pm_tracer_t *tr = NULL;
    REQUIRE(pm_tracer_opts_new(&to) == PM_OK);
    pm_tracer_opts_set_service(to, "orchestrator");
    REQUIRE(pm_tracer_new(to, &tr) == PM_OK);
    pm_tracer_opts_free(to);
    pm_history_t *h = NULL;
    REQUIRE(pm_history_new(r, dir, NULL, &h) == PM_OK);
    CHECK_STATUS(pm_history_add_tracer(NULL, tr), PM_EINVAL);
    CHECK_STATUS(pm_history_add_tracer(h, NULL), PM_EINVAL);
    REQUIRE(pm_history_add_tracer(h, tr) == PM_OK);
    CHECK_STATUS(pm_history_add_tracer(h, tr), PM_ESTATE);
    /* One batch: a task and two steps under it. */
    pm_span_t *task = NULL, *a = NULL, *b = NULL;
    REQUIRE(pm_span_start(tr, "task", PM_SPAN_INTERNAL, NULL, &task) == PM_OK);
    pm_span_set_string(task, "task_type", "deploy");
    pm_span_set_int(task, "attempt", -3);
    pm_span_set_double(task, "score", 0.25);
    pm_span_set_bool(task, "retried", 1);
    pm_span_add_event(task, "queued", "queue", "main");
    pm_trace_context_t ctx;
    pm_span_context(task, &ctx);
    REQUIRE(pm_span_start(tr, "plan", PM_SPAN_INTERNAL, &ctx, &a) == PM_OK);
    REQUIRE(pm_span_start(tr, "llm_call", PM_SPAN_CLIENT, &ctx, &b) == PM_OK);
    pm_span_set_status(b, PM_SPAN_STATUS_ERROR, "rate limited");
    pm_span_end(a);
    pm_span_end(b);
    pm_span_end(task);
    CHECK_OK(pm_export_now(r)); /* a snapshot record */
    CHECK_OK(pm_tracer_flush(tr, NULL));
    CHECK_OK(pm_export_now(r)); /* and another after the spans */
    pm_history_reader_t *rd = NULL, *snaps = NULL;
    REQUIRE(pm_history_reader_open(dir, &rd) == PM_OK && pm_history_reader_open(dir, &snaps) == PM_OK);
    pm_span_batch_t *batch = NULL;
    REQUIRE(pm_history_reader_next_spans(rd, &batch) == PM_OK);
    CHECK_STR(pm_span_batch_service(batch), "orchestrator");
    CHECK_EQ_INT(pm_span_batch_count(batch), 3);
    int seen = 0;
    for (size_t i = 0; i < pm_span_batch_count(batch); i++) {
        const pm_span_data_t *s = pm_span_batch_span(batch, i);
        CHECK(!memcmp(pm_span_data_context(s)->trace_id, ctx.trace_id, 16));
        CHECK(pm_span_data_end_ns(s) >= pm_span_data_start_ns(s) && pm_span_data_start_ns(s) > 0);
        if (!strcmp(pm_span_data_name(s), "task")) {
            seen |= 1;
            CHECK(!memcmp(pm_span_data_context(s)->span_id, ctx.span_id, 8));
            CHECK_EQ_INT(pm_span_data_attr_count(s), 4);
            CHECK_STR(pm_span_data_attr_string(s, 0), "deploy");
            CHECK_EQ_INT(pm_span_data_attr_int(s, 1), -3);
            CHECK_EQ_DBL(pm_span_data_attr_double(s, 2), 0.25);
            CHECK_EQ_INT(pm_span_data_attr_bool(s, 3), 1);
            CHECK_EQ_INT(pm_span_data_event_count(s), 1);
            CHECK_STR(pm_span_data_event_name(s, 0), "queued");
            CHECK_STR(pm_span_data_event_attr_value(s, 0), "main");
        } else {
            CHECK(!memcmp(pm_span_data_parent_id(s), ctx.span_id, 8));
            if (!strcmp(pm_span_data_name(s), "llm_call")) {
                seen |= 2;
                CHECK_EQ_INT(pm_span_data_status(s), PM_SPAN_STATUS_ERROR);
                CHECK_STR(pm_span_data_status_message(s), "rate limited");
                CHECK_EQ_INT(pm_span_data_kind(s), PM_SPAN_CLIENT);
            }
        }
    }
    CHECK_EQ_INT(seen, 3);
    pm_buf_t *otlp = NULL;
    REQUIRE(pm_buf_new(&otlp) == PM_OK);
    CHECK_OK(pm_span_batch_format(batch, PM_SPAN_FORMAT_OTLP_JSON, otlp));
    CHECK(strstr(pm_buf_data(otlp), "\"rate limited\"") != NULL);
    pm_buf_free(otlp);
    pm_history_spans_free(batch);
    CHECK_STATUS(pm_history_reader_next_spans(rd, &batch), PM_ENOENT);
    int n = 0;
    pm_snapshot_t *s = NULL;
    while (pm_history_reader_next(snaps, &s) == PM_OK) {
        pm_snapshot_release(s);
        n++;
    }
    CHECK_EQ_INT(n, 2);
    CHECK_EQ_U64(pm_history_reader_skipped(snaps), 0);
    CHECK_STATUS(pm_history_reader_next_spans(NULL, &batch), PM_EINVAL);
    pm_history_spans_free(NULL);
    pm_history_reader_close(rd);
    pm_history_reader_close(snaps);
    pm_history_free(h);
    pm_tracer_free(tr);
    pm_registry_free(r);
    rm_rf(dir);
}

TEST(one_writer)
{
    char *dir = fresh_dir();
    pm_history_t *a = NULL, *b = NULL;
    REQUIRE(pm_history_new(NULL, dir, NULL, &a) == PM_OK);
    CHECK_STATUS(pm_history_new(NULL, dir, NULL, &b), PM_ESTATE);
    CHECK(b == NULL);
    pm_history_free(a);
    CHECK_OK(pm_history_new(NULL, dir, NULL, &b));
    pm_history_free(b);
    rm_rf(dir);
}

/* SIGKILL while appending: every record the reader returns is whole and
 * right, at most the one being written is lost, and the store opens again. */
TEST(killed_while_writing)
{
    for (int round = 0; round < 5; round++) {
        char *dir = fresh_dir();
        REQUIRE(dir);
        char d[64];
        snprintf(d, sizeof d, "%s", dir);
        int pfd[2];
        REQUIRE(pipe(pfd) == 0);
        pid_t pid = fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            pm_registry_t *r = sample_registry(NULL, NULL);
            pm_history_t *h = NULL;
            pm_history_opts_t *o = NULL;
            pm_history_opts_new(&o);
            pm_history_opts_set_limits(o, 16384, 1 << 20);
            if (!r || pm_history_new(NULL, d, o, &h) != PM_OK) _exit(2);
            pm_snapshot_t *s = NULL;
            if (pm_snapshot_new(r, &s) != PM_OK) _exit(3);
            for (uint64_t i = 0;; i++) {
                if (pm_history_append(h, s) != PM_OK) _exit(4);
                if (i == 20 && write(pfd[1], "x", 1) != 1) _exit(5);
            }
        }
        close(pfd[1]);
        char x;
        REQUIRE(read(pfd[0], &x, 1) == 1);
        close(pfd[0]);
        usleep((useconds_t)(1000 * (round + 1)));
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        CHECK(WIFSIGNALED(status));
        pm_registry_t *r = sample_registry(NULL, NULL);
        pm_snapshot_t *ref = NULL;
        REQUIRE(r && pm_snapshot_new(r, &ref) == PM_OK);
        pm_history_reader_t *rd = NULL;
        REQUIRE(pm_history_reader_open(d, &rd) == PM_OK);
        int n = 0;
        pm_snapshot_t *back = NULL;
        while (pm_history_reader_next(rd, &back) == PM_OK) {
            char *a = text_of(ref, PM_FORMAT_PROMETHEUS), *b = text_of(back, PM_FORMAT_PROMETHEUS);
            CHECK(a && b && !strcmp(a, b));
            free(a);
            free(b);
            pm_snapshot_release(back);
            n++;
        }
        CHECK(n >= 21);
        CHECK(pm_history_reader_skipped(rd) <= 1);
        pm_history_reader_close(rd);
        pm_history_t *h = NULL;
        CHECK_OK(pm_history_new(NULL, d, NULL, &h)); /* the lock died with the writer */
        pm_history_free(h);
        pm_snapshot_release(ref);
        pm_registry_free(r);
        rm_rf(d);
    }
}

TEST_MAIN(TH_CASE(bad_inputs), TH_CASE(round_trip_every_format), TH_CASE(rotation_bound_and_range),
          TH_CASE(torn_and_corrupt), TH_CASE(disk_full), TH_CASE(disk_full_tmpfs), TH_CASE(span_records), TH_CASE(one_writer),
          TH_CASE(killed_while_writing))
