/* Writes a deterministic orchestrator history for pmctl's checks
 * (tests/validate_pmctl.py):
 *   history_fixture DIR baseline|current|trend
 * 30 snapshots one minute apart from 2026-12-01T00:00:00Z; each minute,
 * every (task_type, agent) pair completes tasks with known durations (every
 * 7th fails), tokens and cost. "current" makes deploy 50% slower and
 * failing twice as often; "trend" makes deploy slower minute by minute,
 * research busier in the second half and test_run bursty in it (for pmctl
 * trends). Snapshot times are set directly (internal header), so
 * outputs are the same on every run. */
#include "internal/snapshot_internal.h"

#include <perfmetrics/perfmetrics.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1796083200.0 /* 2026-12-01T00:00:00Z */

/* Tasks a (type, agent) pair finishes in a minute. */
static int tasks_in(int t, int a, int minute, int trend)
{
    int base = 1 + (t + a + minute) % 3;
    if (trend && t == 2 && minute >= 15) return base + 3;                 /* research: busier */
    if (trend && t == 3 && minute >= 15) return minute % 4 == 0 ? 12 : 0; /* test_run: bursts */
    return base;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: history_fixture DIR baseline|current|trend\n");
        return 2;
    }
    int current = !strcmp(argv[2], "current"), trend = !strcmp(argv[2], "trend");
    pm_registry_opts_t *ro = NULL;
    pm_registry_t *r = NULL;
    pm_registry_opts_new(&ro);
    pm_registry_opts_set_self_metrics(ro, 0);
    if (pm_registry_new(ro, &r) != PM_OK) return 1;
    pm_registry_opts_free(ro);
    static const char *const tl[] = {"task_type", "agent", "status"};
    pm_family_opts_t *fo = NULL;
    pm_family_t *tasks = NULL, *dur = NULL, *tokens = NULL, *cost = NULL;
    pm_family_opts_new(&fo);
    pm_family_opts_set_labels(fo, tl, 3);
    pm_family_new(r, PM_TYPE_COUNTER, "tasks", "Tasks finished.", fo, &tasks);
    pm_family_opts_set_labels(fo, tl, 2);
    pm_family_new(r, PM_TYPE_HISTOGRAM, "task_duration_seconds", "Task duration.", fo, &dur);
    pm_family_opts_set_labels(fo, tl + 1, 1);
    pm_family_new(r, PM_TYPE_COUNTER, "llm_tokens", "Tokens used.", fo, &tokens);
    pm_family_new(r, PM_TYPE_COUNTER, "llm_cost_dollars", "Cost.", fo, &cost);
    pm_family_opts_free(fo);
    if (!tasks || !dur || !tokens || !cost) return 1;
    pm_history_t *h = NULL;
    if (pm_history_new(NULL, argv[1], NULL, &h) != PM_OK) return 1;
    static const char *const types[] = {"code_review", "deploy", "research", "test_run"};
    static const char *const agents[] = {"agent-1", "agent-2", "agent-3"};
    unsigned n = 0;
    for (int minute = 0; minute < 30; minute++) {
        for (int t = 0; t < 4; t++)
            for (int a = 0; a < 3; a++)
                for (int k = 0; k < tasks_in(t, a, minute, trend); k++, n++) {
                    double d = 0.05 * (1 + t) * (1 + (n % 11)) * (current && t == 1 ? 1.5 : 1) *
                               (trend && t == 1 ? 1 + minute / 5.0 : 1);
                    int fail = n % (current && t == 1 ? 3 : 7) == 0;
                    const char *v[] = {types[t], agents[a], fail ? "error" : "ok"};
                    pm_counter_add_labeled(tasks, v, 3, 1);
                    pm_histogram_observe_labeled(dur, v, 2, d);
                    pm_counter_add_labeled(tokens, v + 1, 1, 100 + 10 * t);
                    pm_counter_add_labeled(cost, v + 1, 1, 0.002 * (1 + t));
                }
        pm_snapshot_t *s = NULL;
        if (pm_snapshot_new(r, &s) != PM_OK) return 1;
        s->time = T0 + 60 * minute;
        if (pm_history_append(h, s) != PM_OK) return 1;
        pm_snapshot_release(s);
    }
    pm_history_free(h);
    pm_registry_free(r);
    printf("%u tasks\n", n);
    return 0;
}
