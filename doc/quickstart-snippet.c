#include <perfmetrics/perfmetrics.h>
#include <stdio.h>
int main(void) {
    pm_registry_t *reg; pm_counter_t *jobs; pm_histogram_t *h; pm_gauge_t *queue;
    if (pm_registry_new(NULL, &reg) != PM_OK) return 1;
    pm_counter_new(reg, "jobs", "Jobs processed.", &jobs);
    pm_gauge_new(reg, "queue_length", "Jobs waiting.", &queue);
    pm_histogram_new(reg, "job_seconds", "Time per job.", &h);
    for (int i = 0; i < 3; i++) { PM_TIMER_SCOPE(h); pm_counter_inc(jobs); }
    pm_gauge_set(queue, 2);
    pm_snapshot_t *snap; pm_buf_t *text;
    pm_snapshot_new(reg, &snap); pm_buf_new(&text);
    pm_format(snap, PM_FORMAT_PROMETHEUS, text); fputs(pm_buf_data(text), stdout);
    pm_buf_free(text); pm_snapshot_release(snap); pm_registry_free(reg); return 0;
}
