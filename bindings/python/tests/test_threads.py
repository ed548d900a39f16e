"""Python threads recording concurrently: exact totals."""

import threading

import perfmetrics as pm

THREADS = 4
N = 20000


def run_threads(fn):
    barrier = threading.Barrier(THREADS)
    errors = []

    def work(i):
        try:
            barrier.wait()
            fn(i)
        except BaseException as e:  # reported below: a thread's exception is otherwise lost
            errors.append(e)

    ts = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors


def test_one_counter_and_one_histogram_exact(reg):
    c = pm.Counter("shared", "S.", registry=reg)
    h = pm.Histogram("shared_seconds", "S.", registry=reg, buckets=(0.5,))

    def work(i):
        for _ in range(N):
            c.inc()
            h.observe(0.25)
        h.observe_many([0.75] * N)

    run_threads(work)
    assert c.get() == THREADS * N
    assert reg.get_sample_value("shared_total") == THREADS * N
    assert reg.get_sample_value("shared_seconds_count") == 2 * THREADS * N
    assert reg.get_sample_value("shared_seconds_bucket", {"le": "0.5"}) == THREADS * N
    assert reg.get_sample_value("shared_seconds_sum") == THREADS * N * (0.25 + 0.75)


def test_labels_from_many_threads_exact(reg):
    c = pm.Counter("by_worker", "B.", ["worker", "parity"], registry=reg)
    g = pm.Gauge("level", "L.", registry=reg)

    def work(i):
        for j in range(N):
            c.labels(str(j % 3), "even" if j % 2 == 0 else "odd").inc()
            g.inc()
            g.dec(0.5)

    run_threads(work)
    total = sum(s.value for f in reg.collect() if f.name == "by_worker" for s in f.samples)
    assert total == THREADS * N
    assert c.series_count() == 6
    assert g.get() == THREADS * N * 0.5


def test_timers_and_spans_from_threads(reg):
    h = pm.Histogram("timed_seconds", "T.", ["t"], registry=reg)
    tracer = pm.Tracer()
    got = []
    tracer.add_exporter("collect", got.extend)

    def work(i):
        child = h.labels(str(i))
        for _ in range(500):
            with child.time(), tracer.span("op"):
                pass

    run_threads(work)
    tracer.flush()
    assert sum(reg.get_sample_value("timed_seconds_count", {"t": str(i)})
               for i in range(THREADS)) == THREADS * 500
    assert len(got) == THREADS * 500
    tracer.close()
