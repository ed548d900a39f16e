"""Python binding against prometheus_client, in one process run.

Each case does the same work with perfmetrics (bindings/python, over
libperfmetrics.so.1 from PERFMETRICS_LIBRARY) and with Debian's
prometheus_client; repetitions of the two alternate, and each figure is the
median over BENCH_REPS repetitions (default 9, minimum 7) of about
BENCH_REP_MS milliseconds (default 50). Rows follow bench/run's table:
| case | threads | ns/op | baseline (ns/op) | ratio | info |, with
ratio = perfmetrics / prometheus_client. Run with Debian's /usr/bin/python3:

    PERFMETRICS_LIBRARY=build-bench/lib/libperfmetrics.so.1 /usr/bin/python3 bench/bench_python.py
"""

import ctypes
import os
import statistics
import sys
import threading
import time
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bindings", "python"))

import prometheus_client as prom  # noqa: E402
from prometheus_client import exposition as prom_exposition  # noqa: E402

import perfmetrics as pm  # noqa: E402
from perfmetrics import _ffi  # noqa: E402

REPS = max(7, int(os.environ.get("BENCH_REPS", "9")))
REP_S = float(os.environ.get("BENCH_REP_MS", "50")) / 1000.0
THREADS = 4


def fmt_ns(ns):
    if ns < 100:
        return "%.2f" % ns
    if ns < 10000:
        return "%.1f" % ns
    return "%.0f" % ns


def row(case, threads, ns, base_name, base_ns, info):
    base = "%s (%s)" % (base_name, "%.2f" % base_ns if base_ns < 100 else "%.0f" % base_ns)
    print("| %-40s | %7u | %10s | %-32s | %7s | %s |"
          % (case, threads, fmt_ns(ns), base, "%.2fx" % (ns / base_ns), info), flush=True)


def calibrate(fn):
    """Loop count for one repetition of about REP_S seconds."""
    n = 1
    while True:
        t = timeit.timeit(fn, number=n)
        if t >= REP_S / 4:
            return max(1, int(n * REP_S / t))
        n *= 4


def compare(ours, theirs):
    """Median ns per call of two callables, their repetitions interleaved."""
    n_ours, n_theirs = calibrate(ours), calibrate(theirs)
    a, b = [], []
    for _ in range(REPS):
        a.append(timeit.timeit(ours, number=n_ours) / n_ours * 1e9)
        b.append(timeit.timeit(theirs, number=n_theirs) / n_theirs * 1e9)
    return statistics.median(a), statistics.median(b)


def target(case, ns, base_ns):
    row(case, 1, ns, "prometheus_client", base_ns,
        "target <= 1.0: %s" % ("MET" if ns <= base_ns else "MISSED"))


def threaded(fn, per_thread, reps=3):
    """Per-operation cost (wall x threads / ops) of THREADS threads each
    calling fn per_thread times, started together: the median of reps runs
    (thread scheduling makes single runs vary a lot)."""
    return statistics.median(threaded_once(fn, per_thread) for _ in range(reps))


def threaded_once(fn, per_thread):
    barrier = threading.Barrier(THREADS + 1)

    def work():
        barrier.wait()
        for _ in range(per_thread):
            fn()

    ts = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in ts:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in ts:
        t.join()
    return (time.perf_counter() - t0) * 1e9 / per_thread


def main():
    """Exit status 1 only for a wrong result (a lost update), as bench_metrics:
    a missed speed target is reported in its row."""
    ok = True
    reg = pm.Registry(self_metrics=False)
    preg = prom.CollectorRegistry()

    # -------- the FFI floor: why cffi (ABI mode) and not ctypes
    version = _ffi.lib.pm_version
    cdll = ctypes.CDLL(_ffi.library_path)
    c_version = cdll.pm_version
    c_version.restype = ctypes.c_uint
    a, b = compare(version, c_version)
    row("python: FFI call, cffi ABI (pm_version)", 1, a, "ctypes CDLL", b,
        "the binding's choice: the lower of the two")

    # cffi releases the GIL around every call; with several Python threads
    # recording, each call then hands the GIL over (a futex wake and a
    # context switch). ctypes.PyDLL keeps the GIL, at the price of argtypes
    # conversions: this row shows what the binding pays for its choice.
    probe = pm.Registry(self_metrics=False)
    series = pm.Counter("bench_ffi", "FFI.", registry=probe)._h
    add = _ffi.lib.pm_counter_add
    py_add = ctypes.PyDLL(_ffi.library_path).pm_counter_add
    py_add.argtypes = [ctypes.c_void_p, ctypes.c_double]
    py_add.restype = None
    address = int(_ffi.ffi.cast("uintptr_t", series))
    per = int(os.environ.get("BENCH_PY_THREAD_OPS", "100000"))
    a = threaded(lambda: add(series, 1.0), per)
    b = threaded(lambda: py_add(address, 1.0), per)
    one_a, one_b = compare(lambda: add(series, 1.0), lambda: py_add(address, 1.0))
    row("python: FFI, 4 threads, cffi add", THREADS, a, "ctypes.PyDLL+argtypes", b,
        "1 thread: cffi %.0f, PyDLL %.0f ns" % (one_a, one_b))
    probe.close()

    # -------- Counter.inc()
    c = pm.Counter("bench_jobs", "Jobs.", registry=reg)
    pc = prom.Counter("bench_jobs", "Jobs.", registry=preg)
    a, b = compare(c.inc, pc.inc)
    target("python: Counter.inc()", a, b)

    # -------- Counter.labels(...).inc()
    lc = pm.Counter("bench_requests", "Requests.", ["method", "code"], registry=reg)
    plc = prom.Counter("bench_requests", "Requests.", ["method", "code"], registry=preg)
    a, b = compare(lambda: lc.labels("GET", "200").inc(), lambda: plc.labels("GET", "200").inc())
    target("python: Counter.labels(2 values).inc()", a, b)

    # -------- a child bound once
    child, pchild = lc.labels("POST", "500"), plc.labels("POST", "500")
    a, b = compare(child.inc, pchild.inc)
    row("python: bound child .inc()", 1, a, "prometheus_client", b, "")

    # -------- Gauge.set()
    g = pm.Gauge("bench_queue", "Queue.", registry=reg)
    pg = prom.Gauge("bench_queue", "Queue.", registry=preg)
    a, b = compare(lambda: g.set(3.0), lambda: pg.set(3.0))
    row("python: Gauge.set()", 1, a, "prometheus_client", b, "")

    # -------- Histogram.observe()
    h = pm.Histogram("bench_latency_seconds", "Latency.", registry=reg)
    ph = prom.Histogram("bench_latency_seconds", "Latency.", registry=preg)
    a, b = compare(lambda: h.observe(0.3), lambda: ph.observe(0.3))
    target("python: Histogram.observe(), 11 buckets", a, b)

    # -------- Histogram.observe_many(): the batch form, per value
    values = [0.001 * i for i in range(100)]

    def theirs_many():
        for v in values:
            ph.observe(v)

    a, b = compare(lambda: h.observe_many(values), theirs_many)
    row("python: Histogram.observe_many(), each", 1, a / len(values), "prometheus_client",
        b / len(values), "batches of %d; theirs: observe() in a loop" % len(values))

    # -------- Histogram.time()
    def ours_time():
        with h.time():
            pass

    def theirs_time():
        with ph.time():
            pass

    a, b = compare(ours_time, theirs_time)
    target("python: with Histogram.time(): pass", a, b)

    # -------- 4 threads, one counter and one histogram: nothing lost
    per = int(os.environ.get("BENCH_PY_THREAD_OPS", "100000"))
    tc = pm.Counter("bench_threads", "T.", registry=reg)
    th = pm.Histogram("bench_threads_seconds", "T.", registry=reg)
    ptc = prom.Counter("bench_threads", "T.", registry=preg)
    pth = prom.Histogram("bench_threads_seconds", "T.", registry=preg)

    def both():
        tc.inc()
        th.observe(0.01)

    def pboth():
        ptc.inc()
        pth.observe(0.01)

    ours_ns, theirs_ns = threaded(both, per), threaded(pboth, per)
    want = 3 * THREADS * per  # threaded() runs three times
    got_c = reg.get_sample_value("bench_threads_total")
    got_h = reg.get_sample_value("bench_threads_seconds_count")
    exact = got_c == want and got_h == want
    ok &= exact
    row("python: 4 threads inc()+observe() shared", THREADS, ours_ns, "prometheus_client",
        theirs_ns, "target no lost update: %s (counter %d, histogram %d of %d); "
        "cffi releases the GIL at each call" % ("MET" if exact else "MISSED", got_c or 0,
                                                  got_h or 0, want))

    # -------- exposition of 10,000 counter series (100 families x 100 values)
    ereg = pm.Registry(self_metrics=False)
    epreg = prom.CollectorRegistry()
    for f in range(100):
        ours_f = pm.Counter("bench_family_%03d" % f, "Family %d." % f, ["v"], registry=ereg)
        theirs_f = prom.Counter("bench_family_%03d" % f, "Family %d." % f, ["v"],
                                registry=epreg)
        for v in range(100):
            ours_f.labels("value_%03d" % v).inc(v)
            theirs_f.labels("value_%03d" % v).inc(v)
    times_a, times_b = [], []
    for _ in range(max(3, REPS // 2)):
        t0 = time.perf_counter()
        out_a = pm.generate_latest(ereg)
        times_a.append((time.perf_counter() - t0) * 1e9)
        t0 = time.perf_counter()
        out_b = prom_exposition.generate_latest(epreg)
        times_b.append((time.perf_counter() - t0) * 1e9)
    row("python: generate_latest, 10k series", 1, statistics.median(times_a), "prometheus_client",
        statistics.median(times_b), "%d vs %d bytes" % (len(out_a), len(out_b)))
    reg.close()
    ereg.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
