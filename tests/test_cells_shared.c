/* Shared cell blocks and attachments (perfmetrics/cells.h, node 1.7): bad
 * inputs; a writer registry and an attached one in this process, value for
 * value and bucket for bucket; writer processes made with fork(), one that
 * exits, one killed with SIGKILL, one that frees its block, and a restarted
 * one, with exact totals; a writer growing histograms while snapshots copy;
 * definitions that clash; hostile files; a registry's own blocks; and every
 * allocation of a refresh failing in turn. */
#include "harness.h"

#include <perfmetrics/perfmetrics.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cells_writer.h"

/* ------------------------------------------------------------ helpers */

static char *temp_dir(void)
{
    char tmpl[] = "/tmp/pm-cells-XXXXXX";
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

/* Removes dir and the files in it. */
static void remove_dir(char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512];
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
}

/* Files in dir whose name ends with suffix. */
static int count_files(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;
    size_t ns = strlen(suffix);
    while (d && (de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (de->d_name[0] == '.') continue; /* ".", ".." and the attachment's lock */
        n += len > ns && !strcmp(de->d_name + len - ns, suffix);
    }
    if (d) closedir(d);
    return n;
}

static uint64_t stat_of(const pm_cells_attach_t *a, pm_cells_attach_stat_t w)
{
    uint64_t v = UINT64_MAX;
    if (pm_cells_attach_stat(a, w, &v) != PM_OK) return UINT64_MAX;
    return v;
}

/* The series of family `name` with first label value v (NULL: any) in a
 * fresh snapshot's view: value, or count for histograms; NAN when absent. */
static double value_of(pm_registry_t *r, const char *name, const char *v)
{
    pm_snapshot_t *s = NULL;
    if (pm_snapshot_new(r, &s) != PM_OK) return NAN;
    const pm_snap_series_t *x = find(s, name, v);
    double out = NAN;
    if (x) {
        const pm_snap_family_t *f = NULL;
        for (size_t i = 0; i < pm_snapshot_family_count(s); i++)
            if (!strcmp(pm_snap_family_name(pm_snapshot_family(s, i)), name))
                f = pm_snapshot_family(s, i);
        out = pm_snap_family_type(f) == PM_TYPE_HISTOGRAM ? (double)pm_snap_series_count(x)
                                                          : pm_snap_series_value(x);
    }
    pm_snapshot_release(s);
    return out;
}

static pm_family_t *labeled(pm_registry_t *r, pm_type_t t, const char *name)
{
    static const char *const lab[] = {"worker"};
    pm_family_opts_t *o = NULL;
    pm_family_t *f = NULL;
    if (pm_family_opts_new(&o) != PM_OK) return NULL;
    pm_family_opts_set_labels(o, lab, 1);
    pm_family_new(r, t, name, "Test family.", o, &f);
    pm_family_opts_free(o);
    return f;
}

/* ------------------------------------------------------------ cases */

TEST(bad_inputs)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    pm_registry_t *r = quiet_registry(), *r2 = quiet_registry();
    REQUIRE(r && r2);
    pm_cells_t *b = (pm_cells_t *)1;
    CHECK_STATUS(pm_cells_new_shared(NULL, dir, &b), PM_EINVAL);
    CHECK(b == NULL);
    b = (pm_cells_t *)1;
    CHECK_STATUS(pm_cells_new_shared(r, NULL, &b), PM_EINVAL);
    CHECK(b == NULL);
    CHECK_STATUS(pm_cells_new_shared(r, "", &b), PM_EINVAL);
    CHECK_STATUS(pm_cells_new_shared(r, dir, NULL), PM_EINVAL);
    CHECK_STATUS(pm_cells_new_shared(r, "/nonexistent-pm/deeper", &b), PM_EIO);
    CHECK(b == NULL);
    CHECK_EQ_INT(count_files(dir, ""), 0); /* nothing left by the failures */

    pm_cells_attach_t *a = (pm_cells_attach_t *)1;
    CHECK_STATUS(pm_cells_attach(NULL, dir, &a), PM_EINVAL);
    CHECK(a == NULL);
    CHECK_STATUS(pm_cells_attach(r, NULL, &a), PM_EINVAL);
    CHECK_STATUS(pm_cells_attach(r, "", &a), PM_EINVAL);
    CHECK_STATUS(pm_cells_attach(r, dir, NULL), PM_EINVAL);
    CHECK_STATUS(pm_cells_attach(r, "/nonexistent-pm/deeper", &a), PM_EIO);
    CHECK(a == NULL);
    CHECK_OK(pm_cells_attach(r, dir, &a));
    pm_cells_attach_t *a2 = (pm_cells_attach_t *)1;
    CHECK_STATUS(pm_cells_attach(r2, dir, &a2), PM_EEXIST); /* one attachment per directory */
    CHECK(a2 == NULL);
    CHECK_STATUS(pm_cells_attach(r, dir, &a2), PM_EEXIST);
    uint64_t v = 7;
    CHECK_STATUS(pm_cells_attach_stat(NULL, PM_CELLS_ATTACH_BLOCKS, &v), PM_EINVAL);
    CHECK_STATUS(pm_cells_attach_stat(a, PM_CELLS_ATTACH_BLOCKS, NULL), PM_EINVAL);
    CHECK_STATUS(pm_cells_attach_stat(a, (pm_cells_attach_stat_t)99, &v), PM_EINVAL);
    CHECK_STATUS(pm_cells_attach_stat(a, (pm_cells_attach_stat_t)-1, &v), PM_EINVAL);
    CHECK_EQ_U64(v, 7);
    CHECK_STATUS(pm_cells_attach_refresh(NULL), PM_EINVAL);
    CHECK_OK(pm_cells_attach_refresh(a));
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BLOCKS), 0);
    pm_cells_detach(NULL);
    pm_cells_detach(a);
    CHECK_OK(pm_cells_attach(r2, dir, &a2)); /* free again once detached */
    pm_cells_detach(a2);

    /* pm_cells_gauge: argument and type checks, on local and shared blocks. */
    pm_gauge_t *g = NULL, *g2 = NULL;
    pm_counter_t *c = NULL;
    REQUIRE(pm_gauge_new(r, "g", "G.", &g) == PM_OK);
    REQUIRE(pm_gauge_new(r2, "g", "G.", &g2) == PM_OK);
    REQUIRE(pm_counter_new(r, "c", "C.", &c) == PM_OK);
    pm_cells_t *blocks[2] = {NULL, NULL};
    REQUIRE(pm_cells_new(r, &blocks[0]) == PM_OK);
    REQUIRE(pm_cells_new_shared(r, dir, &blocks[1]) == PM_OK);
    for (int i = 0; i < 2; i++) {
        size_t idx = 99;
        CHECK_STATUS(pm_cells_gauge(NULL, g, &idx), PM_EINVAL);
        CHECK_STATUS(pm_cells_gauge(blocks[i], NULL, &idx), PM_EINVAL);
        CHECK_STATUS(pm_cells_gauge(blocks[i], g, NULL), PM_EINVAL);
        CHECK_STATUS(pm_cells_gauge(blocks[i], (pm_gauge_t *)c, &idx), PM_ETYPE);
        CHECK_STATUS(pm_cells_gauge(blocks[i], g2, &idx), PM_EEXIST);
        CHECK_STATUS(pm_cells_counter(blocks[i], (pm_counter_t *)g, &idx), PM_ETYPE);
        CHECK_EQ_U64(idx, 99);
        size_t i1 = 0, i2 = 1;
        CHECK_OK(pm_cells_gauge(blocks[i], g, &i1));
        CHECK_OK(pm_cells_gauge(blocks[i], g, &i2));
        CHECK_EQ_U64(i1, i2);
    }
    CHECK_EQ_INT(count_files(dir, ".pmcells"), 1);
    CHECK_EQ_INT(count_files(dir, ".pmcat"), 1);
    CHECK_EQ_INT(count_files(dir, ".tmp"), 0);
    pm_cells_free(blocks[0]);
    pm_cells_free(blocks[1]);
    CHECK_EQ_INT(count_files(dir, ".pmcells"), 1); /* the attaching side deletes it */
    pm_gauge_release(g);
    pm_gauge_release(g2);
    pm_counter_release(c);
    pm_registry_free(r);
    pm_registry_free(r2);
    remove_dir(dir);
}

static double seven(void *u)
{
    (void)u;
    return 7;
}

/* A gauge's cells add to its own value, and go with their block. */
TEST(gauge_cells)
{
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    REQUIRE(pm_gauge_callback_new(r, "cb", "Callback.", seven, NULL) == PM_OK);
    pm_family_t *f = NULL;
    REQUIRE(pm_family_new(r, PM_TYPE_GAUGE, "plain", "Plain.", NULL, &f) == PM_OK);
    pm_gauge_t *g = NULL;
    REQUIRE(pm_gauge_get(f, NULL, 0, &g) == PM_OK);
    pm_cells_t *b = NULL;
    REQUIRE(pm_cells_new(r, &b) == PM_OK);
    size_t idx;
    CHECK_OK(pm_cells_gauge(b, g, &idx));
    st(cell(b, idx), 2.5);
    CHECK_EQ_DBL(pm_gauge_value(g), 2.5);
    pm_gauge_set(g, 1);
    CHECK_EQ_DBL(pm_gauge_value(g), 3.5); /* own value plus the cell */
    CHECK_EQ_DBL(snap_value(r, "plain"), 3.5);
    pm_cells_free(b); /* the cell goes with its block */
    CHECK_EQ_DBL(pm_gauge_value(g), 1);
    pm_gauge_release(g);
    pm_registry_free(r);
}

/* A writer registry and an attached registry in one process. */
TEST(attach_in_process)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    pm_registry_t *w = quiet_registry(), *agg = quiet_registry();
    REQUIRE(w && agg);
    pm_cells_attach_t *a = NULL;
    REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);

    pm_family_t *cf = labeled(w, PM_TYPE_COUNTER, "tasks"), *gf = labeled(w, PM_TYPE_GAUGE, "busy");
    pm_family_t *hf = hist_family(w, "latency");
    REQUIRE(cf && gf && hf);
    const char *v1[] = {"a"}, *v2[] = {"b"};
    pm_counter_t *c1 = NULL, *c2 = NULL;
    pm_gauge_t *g1 = NULL;
    pm_histogram_t *h = NULL;
    REQUIRE(pm_counter_get(cf, v1, 1, &c1) == PM_OK && pm_counter_get(cf, v2, 1, &c2) == PM_OK);
    REQUIRE(pm_gauge_get(gf, v1, 1, &g1) == PM_OK && pm_histogram_get(hf, NULL, 0, &h) == PM_OK);
    pm_cells_t *b = NULL;
    REQUIRE(pm_cells_new_shared(w, dir, &b) == PM_OK);
    size_t i1, i2, ig, ih;
    REQUIRE(pm_cells_counter(b, c1, &i1) == PM_OK && pm_cells_counter(b, c2, &i2) == PM_OK);
    REQUIRE(pm_cells_gauge(b, g1, &ig) == PM_OK && pm_cells_histogram(b, h, &ih) == PM_OK);
    st(cell(b, i1), 5);
    st(cell(b, i2), 7);
    st(cell(b, ig), 3);
    pm_counter_add(c1, 1); /* the writer's own series: not in the files */
    static double vals[3000];
    size_t nv = make_values(vals, 3000);
    hwriter hw = {b, h, ih, 0, 0};
    for (size_t i = 0; i < nv; i++) hw_record(&hw, vals[i]); /* grows several times */
    CHECK(hw.idx != ih);

    /* The writer's own view: cells plus own values. */
    CHECK_EQ_DBL(value_of(w, "tasks", "a"), 6);
    /* The attached view: the cells, registered under the same definitions. */
    CHECK_EQ_DBL(value_of(agg, "tasks", "a"), 5);
    CHECK_EQ_DBL(value_of(agg, "tasks", "b"), 7);
    CHECK_EQ_DBL(value_of(agg, "busy", "a"), 3);
    CHECK_EQ_DBL(value_of(agg, "latency", NULL), (double)nv);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BLOCKS), 1);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BINDINGS), 4);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_REJECTED), 0);
    {
        pm_snapshot_t *sw = NULL, *sa = NULL;
        REQUIRE(pm_snapshot_new(w, &sw) == PM_OK && pm_snapshot_new(agg, &sa) == PM_OK);
        check_same_histogram(find(sa, "latency", NULL), find(sw, "latency", NULL), 11);
        pm_snapshot_release(sw);
        pm_snapshot_release(sa);
    }
    /* The attached registry's own handles see the last refresh. */
    pm_family_t *acf = labeled(agg, PM_TYPE_COUNTER, "tasks");
    REQUIRE(acf);
    pm_counter_t *ac = NULL;
    REQUIRE(pm_counter_get(acf, v2, 1, &ac) == PM_OK);
    add(cell(b, i2), 1);
    CHECK_EQ_DBL(pm_counter_value(ac), 7);
    CHECK_OK(pm_cells_attach_refresh(a));
    CHECK_EQ_DBL(pm_counter_value(ac), 8);
    pm_counter_add(ac, 2); /* the attached registry's own recording adds too */
    CHECK_EQ_DBL(value_of(agg, "tasks", "b"), 10);

    /* More bindings after the first look, including a new page's worth. */
    enum {
        MANY = 9000
    }; /* more than a page of cells */
    static pm_counter_t *many[MANY];
    char name[16];
    for (int i = 0; i < MANY; i++) {
        const char *lv[] = {name};
        snprintf(name, sizeof name, "m%d", i);
        REQUIRE(pm_counter_get(cf, lv, 1, &many[i]) == PM_OK);
        size_t idx;
        REQUIRE(pm_cells_counter(b, many[i], &idx) == PM_OK);
        st(cell(b, idx), i + 1);
    }
    REQUIRE(pm_cells_page_count(b) >= 2);
    CHECK_EQ_DBL(value_of(agg, "tasks", "m8999"), MANY);
    CHECK_EQ_DBL(value_of(agg, "tasks", "m0"), 1);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BINDINGS), MANY + 4);

    /* The writer frees its block: counters and histograms stay, the gauge
     * goes, the files go. */
    pm_cells_free(b);
    CHECK_EQ_DBL(value_of(agg, "tasks", "a"), 5);
    CHECK_EQ_DBL(value_of(agg, "tasks", "b"), 10);
    CHECK(isnan(value_of(agg, "busy", "a"))); /* a gauge series no live writer binds goes */
    CHECK_EQ_DBL(value_of(agg, "latency", NULL), (double)nv);
    CHECK_EQ_DBL(value_of(agg, "tasks", "m777"), 778);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_FOLDED), 1);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BLOCKS), 0);
    CHECK_EQ_INT(count_files(dir, ".pmcells"), 0);
    CHECK_EQ_INT(count_files(dir, ".pmcat"), 0);
    /* ... and the writer's own registry kept them too. */
    CHECK_EQ_DBL(value_of(w, "tasks", "a"), 6);
    CHECK_EQ_DBL(value_of(w, "latency", NULL), (double)nv);

    /* A second block of the same writer adds on top. */
    REQUIRE(pm_cells_new_shared(w, dir, &b) == PM_OK);
    REQUIRE(pm_cells_counter(b, c1, &i1) == PM_OK);
    st(cell(b, i1), 100);
    CHECK_EQ_DBL(value_of(agg, "tasks", "a"), 105);
    pm_cells_free(b);
    CHECK_EQ_DBL(value_of(agg, "tasks", "a"), 105);

    for (int i = 0; i < MANY; i++) pm_counter_release(many[i]);
    pm_counter_release(c1);
    pm_counter_release(c2);
    pm_counter_release(ac);
    pm_gauge_release(g1);
    pm_histogram_release(h);
    pm_cells_detach(a);
    pm_registry_free(agg);
    pm_registry_free(w);
    remove_dir(dir);
}

/* ------------------------------------------------------------ processes */

/* A writer process: its own registry and shared block; records `n` into a
 * counter labelled with its number, sets a gauge to 1, records n values into
 * a histogram, says so on `ready`, then waits for a command on `cmd`:
 * 'm' records n more and says so again, 'x' exits without freeing, 'f'
 * frees the block then exits, 'w' waits forever (to be killed). */
static void writer_process(const char *dir, int id, int n, int ready, int cmd)
{
    pm_registry_t *r = quiet_registry();
    pm_family_t *cf = labeled(r, PM_TYPE_COUNTER, "jobs"), *gf = labeled(r, PM_TYPE_GAUGE, "up");
    pm_family_t *hf = hist_family(r, "job_seconds");
    char label[8];
    snprintf(label, sizeof label, "w%d", id);
    const char *v[] = {label};
    pm_counter_t *c = NULL, *all = NULL;
    pm_gauge_t *g = NULL;
    pm_histogram_t *h = NULL;
    pm_cells_t *b = NULL;
    const char *every[] = {"all"};
    if (!r || !cf || !gf || !hf || pm_counter_get(cf, v, 1, &c) ||
        pm_counter_get(cf, every, 1, &all) || pm_gauge_get(gf, every, 1, &g) ||
        pm_histogram_get(hf, NULL, 0, &h) || pm_cells_new_shared(r, dir, &b))
        _exit(3);
    size_t ic, iall, ig, ih;
    if (pm_cells_counter(b, c, &ic) || pm_cells_counter(b, all, &iall) ||
        pm_cells_gauge(b, g, &ig) || pm_cells_histogram(b, h, &ih))
        _exit(4);
    hwriter hw = {b, h, ih, 0, 0};
    char k = 'm';
    while (k == 'm') {
        for (int i = 0; i < n; i++) {
            add(cell(b, ic), 1);
            add(cell(b, iall), 1);
            hw_record(&hw, 0.001 * (i % 500 + 1));
        }
        st(cell(b, ig), 1);
        if (write(ready, "r", 1) != 1) _exit(5);
        if (read(cmd, &k, 1) != 1) _exit(6);
    }
    if (k == 'f') pm_cells_free(b);
    if (k == 'w') pause();
    _exit(0);
}

typedef struct {
    pid_t pid;
    int ready, cmd;
} child;

static int spawn(child *ch, const char *dir, int id, int n)
{
    int up[2], down[2];
    if (pipe(up) || pipe(down)) return -1;
    fflush(NULL);
    ch->pid = fork();
    if (ch->pid < 0) return -1;
    if (ch->pid == 0) {
        close(up[0]);
        close(down[1]);
        writer_process(dir, id, n, up[1], down[0]);
    }
    close(up[1]);
    close(down[0]);
    ch->ready = up[0];
    ch->cmd = down[1];
    return 0;
}

static int await_ready(child *ch)
{
    char c;
    return read(ch->ready, &c, 1) == 1 ? 0 : -1;
}

static int command(child *ch, char k) { return write(ch->cmd, &k, 1) == 1 ? 0 : -1; }

static int reap(child *ch)
{
    int status = 0;
    waitpid(ch->pid, &status, 0);
    close(ch->ready);
    close(ch->cmd);
    return status;
}

TEST(writer_processes)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    pm_registry_t *agg = quiet_registry();
    REQUIRE(agg);
    pm_cells_attach_t *a = NULL;
    REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);
    enum {
        N = 4,
        PER = 20000
    };
    child ch[N];
    for (int i = 0; i < N; i++) REQUIRE(spawn(&ch[i], dir, i, PER) == 0);
    for (int i = 0; i < N; i++) REQUIRE(await_ready(&ch[i]) == 0);
    CHECK_EQ_DBL(value_of(agg, "jobs", "all"), N * PER);
    for (int i = 0; i < N; i++) {
        char label[8];
        snprintf(label, sizeof label, "w%d", i);
        CHECK_EQ_DBL(value_of(agg, "jobs", label), PER);
    }
    CHECK_EQ_DBL(value_of(agg, "up", "all"), N);
    CHECK_EQ_DBL(value_of(agg, "job_seconds", NULL), N * PER);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BLOCKS), N);

    /* Live: the writers record more, the next snapshot has it, nothing asked. */
    for (int i = 0; i < N; i++) REQUIRE(command(&ch[i], 'm') == 0 && await_ready(&ch[i]) == 0);
    CHECK_EQ_DBL(value_of(agg, "jobs", "all"), 2 * N * PER);
    CHECK_EQ_DBL(value_of(agg, "job_seconds", NULL), 2 * N * PER);

    /* Ends: an exit without freeing, a free then exit, a SIGKILL. */
    REQUIRE(command(&ch[0], 'x') == 0);
    REQUIRE(command(&ch[1], 'f') == 0);
    REQUIRE(command(&ch[2], 'w') == 0);
    CHECK_EQ_INT(reap(&ch[0]), 0);
    CHECK_EQ_INT(reap(&ch[1]), 0);
    kill(ch[2].pid, SIGKILL);
    CHECK(WIFSIGNALED(reap(&ch[2])));
    CHECK_EQ_DBL(value_of(agg, "jobs", "all"), 2 * N * PER); /* nothing lost */
    CHECK_EQ_DBL(value_of(agg, "jobs", "w2"), 2 * PER);
    CHECK_EQ_DBL(value_of(agg, "up", "all"), 1); /* only w3 is live */
    CHECK_EQ_DBL(value_of(agg, "job_seconds", NULL), 2 * N * PER);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_FOLDED), 3);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BLOCKS), 1);
    CHECK_EQ_INT(count_files(dir, ".pmcells"), 1);

    /* A restarted worker adds on top: counters never go backwards. */
    child again;
    REQUIRE(spawn(&again, dir, 0, PER) == 0 && await_ready(&again) == 0);
    CHECK_EQ_DBL(value_of(agg, "jobs", "w0"), 3 * PER);
    CHECK_EQ_DBL(value_of(agg, "jobs", "all"), (2 * N + 1) * PER);
    CHECK_EQ_DBL(value_of(agg, "up", "all"), 2);
    REQUIRE(command(&again, 'x') == 0 && command(&ch[3], 'x') == 0);
    reap(&again);
    reap(&ch[3]);
    CHECK_EQ_DBL(value_of(agg, "jobs", "all"), (2 * N + 1) * PER);
    CHECK(isnan(value_of(agg, "up", "all"))); /* no live writer binds it any more */
    CHECK_EQ_INT(count_files(dir, ".pmcells"), 0);
    pm_cells_detach(a);
    pm_registry_free(agg);
    remove_dir(dir);
}

/* Folding adds a block's doubles into the series in another order than the
 * live sum did: a fractional counter, or a histogram's sum, must not come out
 * an ulp lower (a scraper would read a counter reset). Gauges: a series that only gone
 * writers bound goes, one the aggregate holds a handle to stays. */
TEST(fold_keeps_counters_and_drops_gauges)
{
    for (size_t k = 0; k < sizeof fold_cells / sizeof fold_cells[0]; k++)
        for (int order = 0; order < 2; order++) {
            char *dir = temp_dir();
            REQUIRE(dir);
            pm_registry_t *w = quiet_registry(), *agg = quiet_registry();
            REQUIRE(w && agg);
            pm_cells_attach_t *a = NULL;
            REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);
            pm_counter_t *c = NULL;
            pm_family_t *gf = labeled(w, PM_TYPE_GAUGE, "load"),
                        *agf = labeled(agg, PM_TYPE_GAUGE, "load");
            pm_histogram_t *h = NULL;
            REQUIRE(gf && agf && pm_counter_new(w, "busy_seconds", "Busy.", &c) == PM_OK);
            REQUIRE(pm_histogram_new(w, "step_seconds", "Steps.", &h) == PM_OK);
            const char *kept[] = {"kept"}, *gone[] = {"gone"};
            pm_gauge_t *g1 = NULL, *g2 = NULL, *held = NULL;
            REQUIRE(pm_gauge_get(gf, kept, 1, &g1) == PM_OK &&
                    pm_gauge_get(gf, gone, 1, &g2) == PM_OK);
            REQUIRE(pm_gauge_get(agf, kept, 1, &held) == PM_OK); /* the aggregate's own handle */
            pm_cells_t *b[3];
            for (int i = 0; i < 3; i++) {
                size_t ic, ig1, ig2, ih;
                REQUIRE(pm_cells_new_shared(w, dir, &b[i]) == PM_OK);
                REQUIRE(pm_cells_counter(b[i], c, &ic) == PM_OK);
                REQUIRE(pm_cells_histogram(b[i], h, &ih) == PM_OK);
                hwriter hw = {b[i], h, ih, 0, 0};
                hw_record(&hw, fold_cells[k][i]);
                REQUIRE(pm_cells_gauge(b[i], g1, &ig1) == PM_OK &&
                        pm_cells_gauge(b[i], g2, &ig2) == PM_OK);
                st(cell(b[i], ic), fold_cells[k][i]);
                st(cell(b[i], ig1), 1);
                st(cell(b[i], ig2), 1);
            }
            double last = value_of(agg, "busy_seconds", NULL),
                   last_sum = sum_of(agg, "step_seconds");
            CHECK_EQ_DBL(value_of(agg, "load", "gone"), 3);
            int monotonic = 1;
            for (int i = 0; i < 3; i++) {
                pm_cells_free(b[order ? 2 - i : i]);
                double v = value_of(agg, "busy_seconds", NULL), sum = sum_of(agg, "step_seconds");
                monotonic &= v >= last && sum >= last_sum; /* a histogram's _sum likewise */
                last = v;
                last_sum = sum;
            }
            CHECK(monotonic);
            CHECK_NEAR(last, fold_cells[k][0] + fold_cells[k][1] + fold_cells[k][2], 1e-15 * last);
            CHECK_NEAR(last_sum, last, 1e-15 * last);
            CHECK_EQ_DBL(value_of(agg, "step_seconds", NULL), 3);
            CHECK(isnan(value_of(agg, "load", "gone")));
            CHECK_EQ_DBL(value_of(agg, "load", "kept"), 0);
            pm_gauge_release(held);
            pm_gauge_release(g1);
            pm_gauge_release(g2);
            pm_counter_release(c);
            pm_histogram_release(h);
            pm_cells_detach(a);
            pm_registry_free(agg);
            pm_registry_free(w);
            remove_dir(dir);
        }
}

/* ------------------------------------------------------------ races */

struct grower {
    pm_registry_t *r;
    pm_cells_t *b;
    pm_histogram_t *h[8];
    pm_counter_t *c;
    long n;
    atomic_int done;
    atomic_int snaps; /* snapshots the attached side has taken */
};

/* Records into eight histograms over a wide spread of values, so every one
 * grows through every size while snapshots of the attached side copy. For
 * its first 64,000 values, where the grows are, it waits for a snapshot
 * after every 1,000, so snapshots and grows interleave however the two
 * threads are scheduled. */
static void *grow_writer(void *arg)
{
    struct grower *x = arg;
    hwriter hw[8];
    size_t ic;
    for (int k = 0; k < 8; k++) {
        size_t idx;
        if (pm_cells_histogram(x->b, x->h[k], &idx) != PM_OK) abort();
        hw[k] = (hwriter){x->b, x->h[k], idx, 0, 0};
    }
    if (pm_cells_counter(x->b, x->c, &ic) != PM_OK) abort();
    int seen = 0;
    for (long i = 0; i < x->n; i++) {
        if (i % 1000 == 0 && i <= 64000) {
            while (atomic_load(&x->snaps) == seen) sched_yield();
            seen = atomic_load(&x->snaps);
        }
        double v = 1e-6 * pow(10, (double)(rng() % 1000000) / 1e6 * 7.5); /* 1e-6 .. 30 */
        hw_record(&hw[i % 8], v);
        add(cell(x->b, ic), 1);
    }
    atomic_store(&x->done, 1);
    return NULL;
}

TEST(grow_races_attached_snapshots)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    struct grower x = {quiet_registry(), NULL, {NULL}, NULL, 400000, 0, 0};
    pm_registry_t *agg = quiet_registry();
    REQUIRE(x.r && agg);
    pm_cells_attach_t *a = NULL;
    REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);
    pm_family_t *hf = labeled(x.r, PM_TYPE_HISTOGRAM, "grow_seconds");
    REQUIRE(hf);
    for (int k = 0; k < 8; k++) {
        char lv[4];
        snprintf(lv, sizeof lv, "%d", k);
        const char *v[] = {lv};
        REQUIRE(pm_histogram_get(hf, v, 1, &x.h[k]) == PM_OK);
    }
    REQUIRE(pm_counter_new(x.r, "grow", "Grow.", &x.c) == PM_OK);
    REQUIRE(pm_cells_new_shared(x.r, dir, &x.b) == PM_OK);
    pthread_t t;
    REQUIRE(pthread_create(&t, NULL, grow_writer, &x) == 0);
    uint64_t last = 0;
    int monotonic = 1, snaps = 0;
    while (!atomic_load(&x.done) || snaps < 3) {
        pm_snapshot_t *s = NULL;
        REQUIRE(pm_snapshot_new(agg, &s) == PM_OK);
        uint64_t total = 0;
        for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
            const pm_snap_family_t *f = pm_snapshot_family(s, i);
            if (strcmp(pm_snap_family_name(f), "grow_seconds")) continue;
            for (size_t j = 0; j < pm_snap_family_series_count(f); j++)
                total += pm_snap_series_count(pm_snap_family_series(f, j));
        }
        if (total < last) /* a grow never shows counts twice or not at all */
            fprintf(stderr, "  snapshot %d: %llu observations after %llu\n", snaps,
                    (unsigned long long)total, (unsigned long long)last);
        monotonic &= total >= last;
        last = total;
        pm_snapshot_release(s);
        snaps++;
        atomic_store(&x.snaps, snaps);
    }
    pthread_join(t, NULL);
    CHECK(monotonic);
    CHECK(snaps >= 64);
    pm_snapshot_t *sw = NULL, *sa = NULL;
    REQUIRE(pm_snapshot_new(x.r, &sw) == PM_OK && pm_snapshot_new(agg, &sa) == PM_OK);
    for (int k = 0; k < 8; k++) {
        char lv[4];
        snprintf(lv, sizeof lv, "%d", k);
        const pm_snap_series_t *ws = find(sw, "grow_seconds", lv),
                               *as = find(sa, "grow_seconds", lv);
        REQUIRE(ws && as);
        CHECK_EQ_U64(pm_snap_series_count(as), pm_snap_series_count(ws));
        CHECK_EQ_U64(pm_snap_series_count(ws), (uint64_t)(x.n / 8));
    }
    CHECK_EQ_DBL(pm_snap_series_value(find(sa, "grow", NULL)), (double)x.n);
    pm_snapshot_release(sw);
    pm_snapshot_release(sa);
    pm_cells_free(x.b);
    for (int k = 0; k < 8; k++) pm_histogram_release(x.h[k]);
    pm_counter_release(x.c);
    pm_cells_detach(a);
    pm_registry_free(agg);
    pm_registry_free(x.r);
    remove_dir(dir);
}

/* ------------------------------------------------------------ what is refused */

TEST(clashing_definitions_rejected)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    pm_registry_t *w = quiet_registry(), *agg = quiet_registry();
    REQUIRE(w && agg);
    pm_counter_t *mine = NULL, *c = NULL, *ok = NULL;
    REQUIRE(pm_counter_new(agg, "clash", "The aggregate's own help.", &mine) == PM_OK);
    REQUIRE(pm_counter_new(w, "clash", "Another help.", &c) == PM_OK);
    REQUIRE(pm_counter_new(w, "fine", "Fine.", &ok) == PM_OK);
    pm_cells_attach_t *a = NULL;
    REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);
    pm_cells_t *b = NULL;
    size_t i1, i2;
    REQUIRE(pm_cells_new_shared(w, dir, &b) == PM_OK);
    REQUIRE(pm_cells_counter(b, c, &i1) == PM_OK && pm_cells_counter(b, ok, &i2) == PM_OK);
    st(cell(b, i1), 9);
    st(cell(b, i2), 4);
    CHECK_EQ_DBL(value_of(agg, "clash", NULL), 0); /* not merged */
    CHECK_EQ_DBL(value_of(agg, "fine", NULL), 4);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_REJECTED), 1);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BINDINGS), 1);
    pm_cells_free(b);
    CHECK_EQ_DBL(value_of(agg, "fine", NULL), 4);
    CHECK_EQ_DBL(value_of(agg, "clash", NULL), 0);
    pm_counter_release(mine);
    pm_counter_release(c);
    pm_counter_release(ok);
    pm_cells_detach(a);
    pm_registry_free(agg);
    pm_registry_free(w);
    remove_dir(dir);
}

/* Overflow: two writer series past the aggregate's series limit add into its
 * one overflow series; a writer's own overflow series maps to it too. */
TEST(overflow_series)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    pm_registry_t *w = quiet_registry(), *agg = quiet_registry();
    REQUIRE(w && agg);
    static const char *const lab[] = {"k"};
    pm_family_opts_t *o = NULL;
    REQUIRE(pm_family_opts_new(&o) == PM_OK);
    pm_family_opts_set_labels(o, lab, 1);
    pm_family_opts_set_max_series(o, 2);
    pm_family_t *f = NULL;
    REQUIRE(pm_family_new(w, PM_TYPE_COUNTER, "capped", "Capped.", o, &f) == PM_OK);
    pm_family_opts_free(o);
    pm_cells_attach_t *a = NULL;
    REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);
    pm_cells_t *b = NULL;
    REQUIRE(pm_cells_new_shared(w, dir, &b) == PM_OK);
    const char *names[] = {"x", "y", "z", "q"};
    pm_counter_t *c[4];
    for (int i = 0; i < 4; i++) {
        const char *v[] = {names[i]};
        size_t idx;
        REQUIRE(pm_counter_get(f, v, 1, &c[i]) == PM_OK); /* z and q: the writer's overflow */
        REQUIRE(pm_cells_counter(b, c[i], &idx) == PM_OK);
        add(cell(b, idx), 10 + i);
    }
    pm_snapshot_t *s = NULL;
    REQUIRE(pm_snapshot_new(agg, &s) == PM_OK);
    double total = 0;
    size_t nseries = 0;
    for (size_t i = 0; i < pm_snapshot_family_count(s); i++) {
        const pm_snap_family_t *sf = pm_snapshot_family(s, i);
        if (strcmp(pm_snap_family_name(sf), "capped")) continue;
        nseries = pm_snap_family_series_count(sf);
        for (size_t j = 0; j < nseries; j++)
            total += pm_snap_series_value(pm_snap_family_series(sf, j));
    }
    pm_snapshot_release(s);
    CHECK_EQ_DBL(total, 10 + 11 + 12 + 13);
    CHECK_EQ_U64(nseries, 3); /* x, y and the overflow series */
    CHECK_EQ_DBL(value_of(agg, "capped", "x"), 10);
    pm_cells_free(b);
    for (int i = 0; i < 4; i++) pm_counter_release(c[i]);
    pm_cells_detach(a);
    pm_registry_free(agg);
    pm_registry_free(w);
    remove_dir(dir);
}

/* A registry attached to the directory its own shared blocks live in counts
 * them once. */
TEST(own_blocks_once)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    pm_registry_t *r = quiet_registry();
    REQUIRE(r);
    pm_counter_t *c = NULL;
    REQUIRE(pm_counter_new(r, "self", "Self.", &c) == PM_OK);
    pm_cells_t *b = NULL;
    pm_cells_attach_t *a = NULL;
    size_t idx;
    REQUIRE(pm_cells_new_shared(r, dir, &b) == PM_OK && pm_cells_counter(b, c, &idx) == PM_OK);
    REQUIRE(pm_cells_attach(r, dir, &a) == PM_OK);
    st(cell(b, idx), 6);
    CHECK_EQ_DBL(value_of(r, "self", NULL), 6);
    CHECK_EQ_DBL(value_of(r, "self", NULL), 6);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_BLOCKS), 0);
    pm_cells_free(b); /* folded into the series by the block; the attachment then folds nothing */
    CHECK_EQ_DBL(value_of(r, "self", NULL), 6);
    pm_counter_release(c);
    pm_registry_free(r); /* detaches what is left */
    remove_dir(dir);
}

/* Files that are not a writer's: garbage, a header with a bad magic, a
 * catalog with a malformed record, and a writer that scribbles over a
 * histogram's slot. None crashes or counts; what is valid still counts. */
TEST(hostile_files)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    char path[512];
    snprintf(path, sizeof path, "%s/1.0.pmcells", dir); /* too short */
    FILE *fp = fopen(path, "w");
    REQUIRE(fp);
    fputs("junk", fp);
    fclose(fp);
    snprintf(path, sizeof path, "%s/2.0.pmcells", dir); /* 4 KiB of 0xff: bad magic */
    fp = fopen(path, "w");
    REQUIRE(fp);
    for (int i = 0; i < 4096; i++) fputc(0xff, fp);
    fclose(fp);

    pm_registry_t *w = quiet_registry(), *agg = quiet_registry();
    REQUIRE(w && agg);
    pm_cells_attach_t *a = NULL;
    REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);
    pm_counter_t *c = NULL;
    pm_histogram_t *h = NULL;
    REQUIRE(pm_counter_new(w, "good", "Good.", &c) == PM_OK);
    REQUIRE(pm_histogram_new(w, "scribbled_seconds", "Scribbled.", &h) == PM_OK);
    pm_cells_t *b = NULL;
    size_t ic, ih;
    REQUIRE(pm_cells_new_shared(w, dir, &b) == PM_OK);
    REQUIRE(pm_cells_counter(b, c, &ic) == PM_OK && pm_cells_histogram(b, h, &ih) == PM_OK);
    st(cell(b, ic), 3);
    hwriter hw = {b, h, ih, 0, 0};
    hw_record(&hw, 0.2);
    CHECK_EQ_DBL(value_of(agg, "good", NULL), 3);
    CHECK_EQ_DBL(value_of(agg, "scribbled_seconds", NULL), 1);
    /* The writer overwrites the histogram's header (cap) with nonsense: the
     * copy is refused, never indexed with. */
    double *region = cell(b, ih);
    st(&region[PM_CELLS_H_CAP], 1e300);
    CHECK_EQ_DBL(value_of(agg, "scribbled_seconds", NULL), 0);
    st(&region[PM_CELLS_H_CAP], 3); /* not a power of two */
    CHECK_EQ_DBL(value_of(agg, "scribbled_seconds", NULL), 0);
    st(&region[PM_CELLS_H_CAP], 32);
    CHECK_EQ_DBL(value_of(agg, "scribbled_seconds", NULL), 1);
    CHECK_EQ_DBL(value_of(agg, "good", NULL), 3);

    /* A malformed record after the good ones: no further record trusted. */
    char cat[512];
    DIR *d = opendir(dir);
    struct dirent *de;
    cat[0] = '\0';
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 6 && !strcmp(de->d_name + n - 6, ".pmcat"))
            snprintf(cat, sizeof cat, "%s/%s", dir, de->d_name);
    }
    if (d) closedir(d);
    REQUIRE(cat[0]);
    pm_counter_t *late = NULL;
    size_t il;
    REQUIRE(pm_counter_new(w, "late", "Late.", &late) == PM_OK);
    REQUIRE(pm_cells_counter(b, late, &il) == PM_OK); /* its record is the last */
    st(cell(b, il), 8);
    struct stat sb;
    REQUIRE(stat(cat, &sb) == 0);
    int fd = open(cat, O_WRONLY);
    REQUIRE(fd >= 0);
    uint32_t bad = 8; /* a length too small for any record, over the last one */
    /* Find the last record's offset by walking the lengths. */
    int rfd = open(cat, O_RDONLY);
    REQUIRE(rfd >= 0);
    off_t off = 0, last = 0;
    uint32_t len = 0;
    while (pread(rfd, &len, 4, off) == 4 && len) {
        last = off;
        off += len;
    }
    close(rfd);
    REQUIRE(off == sb.st_size);
    REQUIRE(pwrite(fd, &bad, 4, last) == 4);
    close(fd);
    CHECK(isnan(value_of(agg, "late", NULL))); /* never registered */
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_REJECTED), 1);
    CHECK_EQ_DBL(value_of(agg, "good", NULL), 3);

    pm_cells_free(b);
    CHECK_EQ_DBL(value_of(agg, "good", NULL), 3);
    pm_counter_release(c);
    pm_counter_release(late);
    pm_histogram_release(h);
    pm_cells_detach(a);
    pm_registry_free(agg);
    pm_registry_free(w);
    remove_dir(dir);
}

/* The block header's sequence count, as a writer's grow leaves it: odd. An
 * attaching snapshot then keeps its last consistent copy (counted as
 * retries) instead of copying pages a grow may be moving; once even again,
 * the next snapshot has everything. The count is at byte 24 of the page
 * file (lib/internal/cells_internal.h). */
static void set_gen(const char *dir, uint64_t gen)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    char path[512] = "";
    while (d && (de = readdir(d))) {
        size_t n = strlen(de->d_name);
        if (n > 8 && !strcmp(de->d_name + n - 8, ".pmcells"))
            snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    }
    if (d) closedir(d);
    int fd = open(path, O_RDWR);
    if (fd < 0 || pwrite(fd, &gen, 8, 24) != 8) abort();
    close(fd);
}

TEST(sequence_lock)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    pm_registry_t *w = quiet_registry(), *agg = quiet_registry();
    REQUIRE(w && agg);
    pm_cells_attach_t *a = NULL;
    REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);
    pm_counter_t *c = NULL;
    pm_histogram_t *h = NULL;
    REQUIRE(pm_counter_new(w, "seq", "Seq.", &c) == PM_OK);
    REQUIRE(pm_histogram_new(w, "seq_seconds", "Seq.", &h) == PM_OK);
    pm_cells_t *b = NULL;
    size_t ic, ih;
    REQUIRE(pm_cells_new_shared(w, dir, &b) == PM_OK);
    REQUIRE(pm_cells_counter(b, c, &ic) == PM_OK && pm_cells_histogram(b, h, &ih) == PM_OK);
    hwriter hw = {b, h, ih, 0, 0};
    st(cell(b, ic), 1);
    hw_record(&hw, 0.5);
    CHECK_EQ_DBL(value_of(agg, "seq", NULL), 1);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_RETRIES), 0);
    set_gen(dir, 1); /* a grow in progress */
    st(cell(b, ic), 2);
    hw_record(&hw, 0.25);
    CHECK_EQ_DBL(value_of(agg, "seq", NULL), 1); /* the last consistent copy */
    CHECK_EQ_DBL(value_of(agg, "seq_seconds", NULL), 1);
    CHECK(stat_of(a, PM_CELLS_ATTACH_RETRIES) >= 2);
    set_gen(dir, 2);
    CHECK_EQ_DBL(value_of(agg, "seq", NULL), 2);
    CHECK_EQ_DBL(value_of(agg, "seq_seconds", NULL), 2);
    /* Real grows move the region: the slot follows, counts stay exact. */
    for (int i = 0; i < 2000; i++) hw_record(&hw, 1e-6 * (1 + i * 37 % 1999) * (1 << (i % 20)));
    CHECK(hw.idx != ih);
    CHECK_EQ_DBL(value_of(agg, "seq_seconds", NULL), 2002);
    /* A writer that dies with the count odd (a grow cut short): folded from
     * the region its slot names. */
    set_gen(dir, 3);
    pm_cells_free(b);
    CHECK_EQ_DBL(value_of(agg, "seq", NULL), 2);
    CHECK_EQ_DBL(value_of(agg, "seq_seconds", NULL), 2002);
    CHECK_EQ_U64(stat_of(a, PM_CELLS_ATTACH_FOLDED), 1);
    pm_counter_release(c);
    pm_histogram_release(h);
    pm_cells_detach(a);
    pm_registry_free(agg);
    pm_registry_free(w);
    remove_dir(dir);
}

/* Every allocation an attaching registry makes fails in turn: each refresh
 * reports PM_OK or PM_ENOMEM, and once allocations work again the totals are
 * exact (nothing half registered, nothing counted twice), with no leak. */
TEST(out_of_memory)
{
    char *dir = temp_dir();
    REQUIRE(dir);
    pm_registry_t *w = quiet_registry();
    REQUIRE(w);
    pm_family_t *cf = labeled(w, PM_TYPE_COUNTER, "oom_jobs"), *hf = hist_family(w, "oom_seconds");
    REQUIRE(cf && hf);
    const char *v[] = {"a"};
    pm_counter_t *c = NULL;
    pm_histogram_t *h = NULL;
    REQUIRE(pm_counter_get(cf, v, 1, &c) == PM_OK && pm_histogram_get(hf, NULL, 0, &h) == PM_OK);
    pm_cells_t *b = NULL;
    size_t ic, ih;
    REQUIRE(pm_cells_new_shared(w, dir, &b) == PM_OK);
    REQUIRE(pm_cells_counter(b, c, &ic) == PM_OK && pm_cells_histogram(b, h, &ih) == PM_OK);
    st(cell(b, ic), 41);
    hwriter hw = {b, h, ih, 0, 0};
    for (int i = 0; i < 100; i++) hw_record(&hw, 0.01 * (i + 1));
    long failures = 0;
    for (long budget = 0;; budget++) {
        struct failing fa = {0, -1};
        pm_registry_opts_t *o = NULL;
        pm_registry_t *agg = NULL;
        REQUIRE(pm_registry_opts_new(&o) == PM_OK);
        pm_registry_opts_set_self_metrics(o, 0);
        pm_registry_opts_set_allocator(o, f_alloc, f_free, &fa);
        REQUIRE(pm_registry_new(o, &agg) == PM_OK);
        pm_registry_opts_free(o);
        pm_cells_attach_t *a = NULL;
        REQUIRE(pm_cells_attach(agg, dir, &a) == PM_OK);
        fa.budget = budget;
        pm_status_t s1 = pm_cells_attach_refresh(a);
        fa.budget = -1;
        CHECK(s1 == PM_OK || s1 == PM_ENOMEM);
        failures += s1 == PM_ENOMEM;
        CHECK_OK(pm_cells_attach_refresh(a));
        CHECK_EQ_DBL(value_of(agg, "oom_jobs", "a"), 41);
        CHECK_EQ_DBL(value_of(agg, "oom_seconds", NULL), 100);
        pm_cells_detach(a);
        pm_registry_free(agg);
        CHECK_EQ_INT(fa.live, 0);
        if (s1 == PM_OK) break;
    }
    CHECK(failures > 10); /* every allocation of a refresh was made to fail */
    pm_cells_free(b);
    pm_counter_release(c);
    pm_histogram_release(h);
    pm_registry_free(w);
    remove_dir(dir);
}

TEST_MAIN(TH_CASE(bad_inputs), TH_CASE(gauge_cells), TH_CASE(attach_in_process),
          TH_CASE(writer_processes), TH_CASE(fold_keeps_counters_and_drops_gauges),
          TH_CASE(grow_races_attached_snapshots), TH_CASE(clashing_definitions_rejected),
          TH_CASE(overflow_series), TH_CASE(own_blocks_once), TH_CASE(hostile_files),
          TH_CASE(sequence_lock), TH_CASE(out_of_memory))
