/* Collectors: values that live elsewhere, read when a snapshot is taken.
 *
 * Enables the built-in process and system collectors, adds a collector of
 * its own for a job queue, and prints the Prometheus text exposition.
 *
 *   cc collectors.c $(pkg-config --cflags --libs libperfmetrics) && ./a.out */
#include <perfmetrics/perfmetrics.h>

#include <stdio.h>
#include <stdlib.h>

/* The host's own data structure; the library never touches it directly. */
struct job_queue {
    const char *name;
    size_t length;
    unsigned long long done;
};

/* Called on the thread taking the snapshot, never concurrently with itself.
 * A real host would take its own queue lock here. */
static pm_status_t queue_collect(pm_emit_t *e, void *user)
{
    const struct job_queue *queues = user;
    static const char *const labels[] = {"queue"};
    pm_status_t st;

    st = pm_emit_family(e, PM_TYPE_GAUGE, "app_queue_length", "Jobs waiting in the queue.", "",
                        labels, 1);
    for (size_t i = 0; st == PM_OK && i < 2; i++) {
        const char *v[] = {queues[i].name};
        st = pm_emit_sample(e, v, 1, (double)queues[i].length);
    }
    if (st != PM_OK) return st;

    /* A counter: emitted without "_total"; the formatter adds it. */
    st = pm_emit_family(e, PM_TYPE_COUNTER, "app_jobs_done", "Jobs completed.", "", labels, 1);
    for (size_t i = 0; st == PM_OK && i < 2; i++) {
        const char *v[] = {queues[i].name};
        st = pm_emit_sample(e, v, 1, (double)queues[i].done);
    }
    return st; /* any error: this run's output is dropped and counted */
}

static int fail(const char *what, pm_status_t st)
{
    fprintf(stderr, "%s: %s\n", what, pm_strerror(st));
    return EXIT_FAILURE;
}

int main(void)
{
    struct job_queue queues[2] = {{"email", 12, 3400}, {"thumbnails", 0, 981}};
    pm_registry_t *r = NULL;
    pm_snapshot_t *s = NULL;
    pm_buf_t *b = NULL;
    pm_status_t st;
    int rc = EXIT_FAILURE;

    if ((st = pm_registry_new(NULL, &r)) != PM_OK) return fail("pm_registry_new", st);

    /* PM_EUNSUPPORTED where there is no /proc: carry on without them. */
    if ((st = pm_process_collector_enable(r)) != PM_OK)
        fprintf(stderr, "process collector: %s\n", pm_strerror(st));
    if ((st = pm_system_collector_enable(r)) != PM_OK)
        fprintf(stderr, "system collector: %s\n", pm_strerror(st));

    /* `queues` outlives the registry, so there is nothing to release. */
    if ((st = pm_collector_add(r, "job_queues", queue_collect, queues, NULL, NULL)) != PM_OK) {
        rc = fail("pm_collector_add", st);
        goto out;
    }

    if ((st = pm_snapshot_new(r, &s)) != PM_OK) {
        rc = fail("pm_snapshot_new", st);
        goto out;
    }
    if ((st = pm_buf_new(&b)) != PM_OK || (st = pm_format(s, PM_FORMAT_PROMETHEUS, b)) != PM_OK) {
        rc = fail("pm_format", st);
        goto out;
    }
    fwrite(pm_buf_data(b), 1, pm_buf_len(b), stdout);
    rc = EXIT_SUCCESS;
out:
    pm_buf_free(b);
    pm_snapshot_release(s);
    pm_registry_free(r);
    return rc;
}
