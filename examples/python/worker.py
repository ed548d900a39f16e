"""A small job worker instrumented with perfmetrics (the Python binding of
libperfmetrics): metrics in the style of prometheus_client, a span per job,
an alert rule, and the library's HTTP endpoint serving it all.

Run from the source tree, with the library built in build/:

    PERFMETRICS_LIBRARY=build/lib/libperfmetrics.so.1 \\
        PYTHONPATH=bindings/python /usr/bin/python3 examples/python/worker.py

It serves on a free port of 127.0.0.1 (--port to choose one), runs
--jobs jobs on --threads threads, scrapes its own /metrics once, prints a
summary and exits. bindings/python/tests/test_example.py runs it.
"""

import argparse
import random
import threading
import time
import urllib.request

import perfmetrics as pm

JOBS = pm.Counter("jobs", "Jobs finished.", ["kind", "outcome"])
JOB_SECONDS = pm.Histogram("job_seconds", "Time per job.", ["kind"],
                           buckets=(0.0005, 0.001, 0.002, 0.005, 0.01))
IN_FLIGHT = pm.Gauge("jobs_in_flight", "Jobs running now.")

RULES = """
alert JobsFailing {
  expr: sum(rate(jobs_total{outcome="error"}[10s])) > 0
  severity: warning
  annotation summary: "jobs fail at {{ $value | humanize }}/s"
}
"""


@pm.span("job.step")
def step(rng):
    time.sleep(rng.uniform(0, 0.002))


def work(kind, count, seed):
    rng = random.Random(seed)
    done = JOBS.labels(kind, "ok")  # children bound once, outside the loop
    failed = JOBS.labels(kind, "error")
    timer = JOB_SECONDS.labels(kind)
    for _ in range(count):
        with IN_FLIGHT.track_inprogress(), timer.time(), pm.span("job") as s:
            s.set_attribute("job.kind", kind)
            step(rng)
            if rng.random() < 0.1:
                s.set_status("error", "simulated failure")
                failed.inc()
            else:
                done.inc()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()

    tracer = pm.default_tracer()
    spans = []
    tracer.add_exporter("count", spans.extend)  # a Python span exporter
    engine = pm.AlertEngine(pm.REGISTRY, interval=1, dispatch_thread=False)
    engine.load_rules(RULES)
    alerts = []
    engine.add_notifier("print", lambda ev: alerts.append(ev.line))
    server = pm.start_http_server(args.port, tracer=tracer, alert_engine=engine)
    print("dashboard:", server.url)
    print("metrics:  ", server.url + "metrics")

    kinds = ["resize", "encode", "upload", "index"]
    threads = [threading.Thread(target=work, args=(kinds[i % len(kinds)], args.jobs, i))
               for i in range(args.threads)]
    for t in threads:
        t.start()
    # The engine runs on a simulated clock here: one second of its time per
    # 20 ms of real time, so that its 10 s window fills during a short run.
    now = time.time()
    while any(t.is_alive() for t in threads):
        engine.tick(now)
        now += 1
        time.sleep(0.02)
    for t in threads:
        t.join()
    engine.tick(now)
    engine.deliver()
    tracer.flush()

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    body = opener.open(server.url + "metrics", timeout=10).read().decode()
    print("scraped %d bytes; job lines:" % len(body))
    for line in body.splitlines():
        if line.startswith("jobs_total"):
            print("  " + line)
    total = sum(pm.REGISTRY.get_sample_value("jobs_total", {"kind": k, "outcome": o}) or 0
                for k in kinds for o in ("ok", "error"))
    print("jobs: %d of %d, spans exported: %d" % (total, args.jobs * args.threads, len(spans)))
    for line in alerts:
        print("alert:", line)
    server.close()
    return 0 if total == args.jobs * args.threads else 1


if __name__ == "__main__":
    raise SystemExit(main())
