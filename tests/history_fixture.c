/* Writes a deterministic orchestrator history for pmctl's checks
 * (tests/validate_pmctl.py):
 *   history_fixture DIR baseline|current|trend
 * 30 snapshots one minute apart from 2026-12-01T00:00:00Z; each minute,
 * every (task_type, agent) pair completes tasks with known durations (every
 * 7th fails), tokens and cost; every task is also a trace of spans with
 * chosen times (task > plan, llm_call, and tool_call for deploy), stored as
 * span records; queue and busy gauges. "current" makes deploy 50% slower and
 * failing twice as often; "trend" makes deploy slower minute by minute,
 * research busier in the second half and test_run bursty in it (for pmctl
 * trends), agent-3 failing every third task, the queue growing and the
 * agents always busy (for pmctl bottlenecks). Snapshot times are set directly (internal header), so
 * outputs are the same on every run. */
#include "internal/history_internal.h"
#include "internal/span_internal.h"

#include <perfmetrics/perfmetrics.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define T0 1796083200.0 /* 2026-12-01T00:00:00Z */

/* A span of the batch being built: ids from counters, times chosen. */
static pm_span_rec *span(pm_span_rec **recs, size_t *n, unsigned trace, unsigned id,
                         unsigned parent, const char *name, uint64_t start, uint64_t end)
{
    pm_span_rec *s = calloc(1, sizeof(struct pm_span_data));
    if (!s) exit(1);
    memcpy(s->base.ctx.trace_id, &trace, sizeof trace);
    s->base.ctx.trace_id[15] = 1;
    memcpy(s->base.ctx.span_id, &id, sizeof id);
    s->base.ctx.flags = 1;
    if (parent) memcpy(s->base.parent_id, &parent, sizeof parent);
    s->base.kind = PM_SPAN_INTERNAL;
    s->base.sampled = 1;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->start_ns = start;
    s->end_ns = end;
    s->attrs = s->attrs_inline;
    s->events = s->events_inline;
    recs[(*n)++] = s;
    return s;
}

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
    pm_gauge_t *queue = NULL, *busy = NULL;
    pm_gauge_new(r, "task_queue_length", "Tasks waiting.", &queue);
    pm_gauge_new(r, "agents_busy", "Agents working.", &busy);
    static const char *const types[] = {"code_review", "deploy", "research", "test_run"};
    pm_span_rec *recs[4096];
    size_t nrec = 0;
    unsigned ids = 0;
    static const char *const agents[] = {"agent-1", "agent-2", "agent-3"};
    unsigned n = 0;
    for (int minute = 0; minute < 30; minute++) {
        for (int t = 0; t < 4; t++)
            for (int a = 0; a < 3; a++)
                for (int k = 0; k < tasks_in(t, a, minute, trend); k++, n++) {
                    double d = 0.05 * (1 + t) * (1 + (n % 11)) * (current && t == 1 ? 1.5 : 1) *
                               (trend && t == 1 ? 1 + minute / 5.0 : 1);
                    int fail = n % (current && t == 1 ? 3 : 7) == 0 || (trend && a == 2 && n % 3 == 0);
                    /* The task's trace: plan 10%, llm_call 60%, deploy's tool_call 20%. */
                    uint64_t t0 = (uint64_t)((T0 + 60 * minute) * 1e9) + (uint64_t)k * 1000000;
                    uint64_t dn = (uint64_t)(d * 1e9);
                    unsigned root = ++ids, trace = root;
                    if (nrec + 4 > sizeof recs / sizeof recs[0]) exit(1);
                    span(recs, &nrec, trace, root, 0, "task", t0, t0 + dn);
                    span(recs, &nrec, trace, ++ids, root, "plan", t0, t0 + dn / 10);
                    span(recs, &nrec, trace, ++ids, root, "llm_call", t0 + dn / 10, t0 + dn / 10 + dn * 6 / 10);
                    if (t == 1) span(recs, &nrec, trace, ++ids, root, "tool_call", t0 + dn * 7 / 10, t0 + dn * 9 / 10);
                    const char *v[] = {types[t], agents[a], fail ? "error" : "ok"};
                    pm_counter_add_labeled(tasks, v, 3, 1);
                    pm_histogram_observe_labeled(dur, v, 2, d);
                    pm_counter_add_labeled(tokens, v + 1, 1, 100 + 10 * t);
                    pm_counter_add_labeled(cost, v + 1, 1, 0.002 * (1 + t));
                }
        pm_gauge_set(queue, trend ? minute / 3.0 : 0);
        pm_gauge_set(busy, trend ? 3 : 1 + minute % 3);
        struct pm_span_batch batch = {(const pm_span_rec *const *)recs, nrec, "fixture"};
        if (pm__history_append_spans(h, &batch) != PM_OK) return 1;
        for (size_t i = 0; i < nrec; i++) free(recs[i]);
        nrec = 0;
        pm_snapshot_t *s = NULL;
        if (pm_snapshot_new(r, &s) != PM_OK) return 1;
        s->time = T0 + 60 * minute;
        if (pm_history_append(h, s) != PM_OK) return 1;
        pm_snapshot_release(s);
    }
    pm_history_free(h);
    pm_gauge_release(queue);
    pm_gauge_release(busy);
    pm_registry_free(r);
    printf("%u tasks\n", n);
    return 0;
}
