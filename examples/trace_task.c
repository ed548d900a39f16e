/* A task traced across two threads: a dispatcher span, steps on a worker
 * thread (one of them in parallel with the dispatcher's own step), then the
 * trace's critical path and the operations ranked by self time.
 *
 *   build/examples/trace_task          prints the analysis
 *   build/examples/trace_task --otlp   also prints the OTLP/HTTP JSON body */
#include <perfmetrics/perfmetrics.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static void work_ms(int ms)
{
    struct timespec ts = {0, ms * 1000000L};
    nanosleep(&ts, NULL);
}

struct handoff {
    pm_tracer_t *tracer;
    pm_trace_context_t parent; /* crosses the thread boundary by value */
};

static void *worker(void *arg)
{
    struct handoff *h = arg;
    pm_span_t *step;
    if (pm_span_start(h->tracer, "worker.process", PM_SPAN_CONSUMER, &h->parent, &step) != PM_OK)
        return NULL;
    pm_span_t *prev = pm_span_enter(step);
    {
        PM_SPAN_SCOPE_T(h->tracer, "worker.fetch");
        work_ms(20);
    }
    {
        PM_SPAN_SCOPE_T(h->tracer, "worker.compute");
        work_ms(60); /* the bottleneck */
        pm_span_set_string(pm_span_current(), "model", "large");
    }
    pm_span_exit(prev);
    pm_span_end(step);
    return NULL;
}

static pm_status_t print_otlp(const pm_span_batch_t *b, void *user)
{
    if (!user) return PM_OK;
    pm_buf_t *buf;
    if (pm_buf_new(&buf) != PM_OK) return PM_ENOMEM;
    pm_status_t st = pm_span_batch_format(b, PM_SPAN_FORMAT_OTLP_JSON, buf);
    if (st == PM_OK) printf("%s\n", pm_buf_data(buf));
    pm_buf_free(buf);
    return st;
}

int main(int argc, char **argv)
{
    int otlp = argc > 1 && !strcmp(argv[1], "--otlp");
    pm_tracer_t *t;
    if (pm_tracer_new(NULL, &t) != PM_OK) return 1;
    pm_tracer_add_exporter(t, "stdout", print_otlp, otlp ? (void *)1 : NULL, NULL);

    pm_span_t *task;
    pm_span_start(t, "task.run", PM_SPAN_SERVER, NULL, &task);
    pm_span_set_string(task, "task.type", "code_review");
    pm_span_t *prev = pm_span_enter(task);
    struct handoff h = {t, {{0}, {0}, 0, 0, {0}}};
    pm_span_context(task, &h.parent);
    pthread_t th;
    pthread_create(&th, NULL, worker, &h);
    {
        PM_SPAN_SCOPE_T(t, "task.plan"); /* runs while the worker works */
        work_ms(30);
    }
    pthread_join(th, NULL);
    {
        PM_SPAN_SCOPE_T(t, "task.report");
        work_ms(10);
    }
    pm_span_exit(prev);
    pm_span_end(task);
    pm_tracer_flush(t, NULL);

    pm_trace_list_t *slow;
    if (pm_tracer_traces(t, PM_TRACES_SLOWEST, &slow) == PM_OK && pm_trace_list_count(slow)) {
        printf("trace: %s, %zu spans, %.1f ms\ncritical path:\n", pm_trace_list_root(slow, 0),
               pm_trace_list_spans(slow, 0), pm_trace_list_duration(slow, 0) * 1e3);
        for (size_t i = 0; i < pm_trace_list_path_length(slow, 0); i++)
            printf("  %-16s %6.1f ms\n", pm_trace_list_path_name(slow, 0, i),
                   pm_trace_list_path_seconds(slow, 0, i) * 1e3);
        pm_trace_list_free(slow);
    }
    pm_trace_ops_t *ops;
    if (pm_tracer_ops_snapshot(t, &ops) == PM_OK) {
        size_t n = pm_trace_ops_count(ops), order[64];
        if (n > 64) n = 64;
        for (size_t i = 0; i < n; i++) order[i] = i;
        for (size_t i = 1; i < n; i++) /* insertion sort by self time, largest first */
            for (size_t j = i; j > 0 && pm_trace_ops_self_total(ops, order[j]) >
                                           pm_trace_ops_self_total(ops, order[j - 1]); j--) {
                size_t tmp = order[j];
                order[j] = order[j - 1];
                order[j - 1] = tmp;
            }
        printf("operations by self time (the bottleneck first):\n");
        for (size_t i = 0; i < n; i++) {
            double p50 = 0;
            pm_trace_ops_duration(ops, order[i], 0.5, &p50);
            printf("  %-16s self %6.1f ms   duration p50 %6.1f ms\n",
                   pm_trace_ops_name(ops, order[i]), pm_trace_ops_self_total(ops, order[i]) * 1e3,
                   p50 * 1e3);
        }
        pm_trace_ops_free(ops);
    }
    pm_tracer_free(t);
    return 0;
}
