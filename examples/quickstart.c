/* Quickstart: a counter, a labeled counter family, a timed histogram and a
 * gauge, then the Prometheus text of a snapshot on stdout.
 *   cc quickstart.c $(pkg-config --cflags --libs libperfmetrics) && ./a.out */
#include <perfmetrics/perfmetrics.h>
#include <stdio.h>

/* Fallible calls return a pm_status_t; pm_strerror says what went wrong. */
#define TRY(call)                                                                                  \
    do {                                                                                           \
        if ((st = (call)) != PM_OK) {                                                              \
            fprintf(stderr, "%s: %s\n", #call, pm_strerror(st));                                   \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

int main(void)
{
    pm_status_t st;
    pm_registry_t *reg;
    TRY(pm_registry_new(NULL, &reg));

    pm_counter_t *jobs; /* exposed as jobs_total */
    TRY(pm_counter_new(reg, "jobs", "Jobs processed.", &jobs));
    pm_counter_inc(jobs);

    static const char *const labels[] = {"method", "code"}, *const get_ok[] = {"GET", "200"};
    pm_family_opts_t *opts;
    pm_family_t *requests; /* one series per tuple of label values */
    TRY(pm_family_opts_new(&opts));
    TRY(pm_family_opts_set_labels(opts, labels, 2));
    TRY(pm_family_new(reg, PM_TYPE_COUNTER, "http_requests", "HTTP requests.", opts, &requests));
    pm_family_opts_free(opts);
    TRY(pm_counter_add_labeled(requests, get_ok, 2, 1));

    pm_histogram_t *h; /* in seconds; PM_TIMER_SCOPE records how long its block took */
    TRY(pm_histogram_new(reg, "work_seconds", "Time spent working.", &h));
    {
        PM_TIMER_SCOPE(h);
        /* ... the work ... */
    }

    pm_gauge_t *queue;
    TRY(pm_gauge_new(reg, "queue_length", "Jobs waiting.", &queue));
    pm_gauge_set(queue, 3);

    pm_snapshot_t *snap; /* formatters and exporters read snapshots, never live state */
    pm_buf_t *text;
    TRY(pm_snapshot_new(reg, &snap));
    TRY(pm_buf_new(&text));
    TRY(pm_format(snap, PM_FORMAT_PROMETHEUS, text));
    fputs(pm_buf_data(text), stdout);
    pm_buf_free(text);
    pm_snapshot_release(snap);
    pm_registry_free(reg);
    return 0;
}
