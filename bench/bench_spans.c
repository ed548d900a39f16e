/* Span benchmarks: unsampled and sampled start+end, 1 and 2 threads, against
 * a counter add and two clock reads measured in the same run. Sampled spans
 * go into the buffer in timed chunks of CHUNK spans; between chunks the
 * buffer is flushed (untimed), as an exporter keeping up would, so every
 * measured span takes the buffered path (never the drop path) and records
 * are recycled as in steady state. */
#include "bench_common.h"

#include <perfmetrics/perfmetrics.h>
#include <unistd.h>

#define SPANS_PER_REP 100000
#define CHUNK 1000

typedef struct {
    pm_tracer_t *t;
    pm_counter_t *c;
    int mode; /* 0 counter, 1 clock pair, 2 unsampled span, 3 sampled span + 2 attrs */
    unsigned cpu;
    pthread_barrier_t *bar;
    uint64_t t0, t1;
    uint64_t busy; /* chunked mode: sum of the timed chunks */
} job_t;

static volatile uint64_t g_sink;

static void run_mode(job_t *j, long n)
{
    uint64_t acc = 0;
    switch (j->mode) {
    case 0:
        for (long i = 0; i < n; i++) pm_counter_inc(j->c);
        break;
    case 1:
        for (long i = 0; i < n; i++) {
            uint64_t a = pm_now_ns(), b = pm_now_ns();
            acc += b - a;
        }
        break;
    case 2:
        for (long i = 0; i < n; i++) {
            pm_span_t *s;
            if (pm_span_start(j->t, "op", PM_SPAN_INTERNAL, NULL, &s) != PM_OK) abort();
            pm_span_end(s);
        }
        break;
    default:
        for (long i = 0; i < n; i++) {
            pm_span_t *s;
            if (pm_span_start(j->t, "op", PM_SPAN_INTERNAL, NULL, &s) != PM_OK) abort();
            pm_span_set_string(s, "task.type", "code_review");
            pm_span_set_int(s, "task.id", i);
            pm_span_end(s);
        }
    }
    g_sink = acc;
}

static void *thread_main(void *arg)
{
    job_t *j = arg;
    bench_pin_self(j->cpu);
    pthread_barrier_wait(j->bar);
    if (j->mode != 3) {
        j->t0 = bench_now();
        run_mode(j, SPANS_PER_REP);
        j->t1 = bench_now();
        return NULL;
    }
    /* Chunks: all threads time a chunk together, then wait while the main
     * thread flushes (barrier counts the workers and the main thread). */
    for (int c = 0; c < SPANS_PER_REP / CHUNK; c++) {
        pthread_barrier_wait(j->bar);
        uint64_t a = bench_now();
        run_mode(j, CHUNK);
        j->busy += bench_now() - a;
        pthread_barrier_wait(j->bar);
        pthread_barrier_wait(j->bar); /* flushed */
    }
    return NULL;
}

/* Median per-thread ns/op over the repetitions, threads 1 or 2. */
static double measure(pm_tracer_t *t, pm_counter_t *c, int mode, unsigned threads)
{
    unsigned reps = bench_reps();
    double v[64];
    for (unsigned r = 0; r < reps && r < 64; r++) {
        pthread_barrier_t bar;
        int chunked = mode == 3;
        pthread_barrier_init(&bar, NULL, threads + (chunked ? 1 : 0));
        job_t j[2];
        pthread_t th[2];
        for (unsigned i = 0; i < threads; i++) {
            j[i] = (job_t){t, c, mode, i, &bar, 0, 0, 0};
            if (pthread_create(&th[i], NULL, thread_main, &j[i])) bench_die("pthread_create", -1);
        }
        if (chunked) {
            pthread_barrier_wait(&bar); /* start */
            for (int k = 0; k < SPANS_PER_REP / CHUNK; k++) {
                pthread_barrier_wait(&bar); /* chunk begins */
                pthread_barrier_wait(&bar); /* chunk done */
                pm_tracer_flush(t, NULL);
                pthread_barrier_wait(&bar); /* flushed */
            }
        }
        uint64_t first = UINT64_MAX, last = 0;
        for (unsigned i = 0; i < threads; i++) {
            pthread_join(th[i], NULL);
            if (j[i].t0 < first) first = j[i].t0;
            if (j[i].t1 > last) last = j[i].t1;
        }
        pthread_barrier_destroy(&bar);
        if (chunked) {
            uint64_t worst = 0; /* per-thread cost: the slower thread's busy time */
            for (unsigned i = 0; i < threads; i++)
                if (j[i].busy > worst) worst = j[i].busy;
            v[r] = (double)worst / SPANS_PER_REP;
        } else {
            v[r] = (double)(last - first) / SPANS_PER_REP;
        }
        if (t) pm_tracer_flush(t, NULL); /* untimed: the next repetition starts empty */
    }
    return bench_median(v, reps < 64 ? reps : 64);
}

static pm_tracer_t *make_tracer(pm_sampler_t smp)
{
    pm_tracer_opts_t *o;
    pm_tracer_t *t;
    if (pm_tracer_opts_new(&o) != PM_OK) bench_die("pm_tracer_opts_new", -1);
    pm_tracer_opts_set_sampler(o, smp, 1.0);
    pm_tracer_opts_set_buffer(o, 1 << 20);
    pm_tracer_opts_set_batch(o, 4096, 1.0);
    pm_status_t st = pm_tracer_new(o, &t);
    if (st != PM_OK) bench_die("pm_tracer_new", st);
    pm_tracer_opts_free(o);
    return t;
}

int main(void)
{
    pm_registry_t *r = NULL;
    pm_counter_t *c = NULL;
    if (pm_registry_new(NULL, &r) != PM_OK || pm_counter_new(r, "bench_c", "h", &c) != PM_OK)
        bench_die("setup", -1);
    pm_tracer_t *never = make_tracer(PM_SAMPLER_NEVER), *always = make_tracer(PM_SAMPLER_ALWAYS);
    double ctr = measure(NULL, c, 0, 1), clk = measure(NULL, NULL, 1, 1);
    double un1 = measure(never, NULL, 2, 1), un2 = measure(never, NULL, 2, 2);
    double sa1 = measure(always, NULL, 3, 1), sa2 = measure(always, NULL, 3, 2);
    uint64_t dropped = pm_tracer_stat(always, PM_TRACER_DROPPED);
    bench_row("baseline: pm_counter_inc", 1, ctr, NULL, 0, "");
    bench_row("baseline: two pm_now_ns reads", 1, clk, NULL, 0, "clock source: %s",
              pm_clock_source());
    bench_row("span start+end, unsampled", 1, un1, "pm_counter_inc 1T", ctr,
              "target <= 3x counter add: %s", bench_verdict(un1 <= 3 * ctr));
    bench_row("span start+end, unsampled", 2, un2, "unsampled 1T", un1,
              "target <= 1.5x of 1T: %s", bench_verdict(un2 <= 1.5 * un1));
    bench_row("span start+end+2 attrs, sampled", 1, sa1, "two pm_now_ns reads", clk,
              "target <= 150 ns: %s; <= 5x two clock reads: %s; dropped %llu",
              bench_verdict(sa1 <= 150), bench_verdict(sa1 <= 5 * clk),
              (unsigned long long)dropped);
    bench_row("span start+end+2 attrs, sampled", 2, sa2, "sampled 1T", sa1,
              "target <= 1.5x of 1T: %s", bench_verdict(sa2 <= 1.5 * sa1));
    pm_tracer_free(never);
    pm_tracer_free(always);
    pm_registry_free(r);
    return dropped ? 1 : 0;
}
