"""Python callbacks called from the library's threads: the GIL, exceptions
that must never reach C, and interpreter exit with threads still running."""

import threading

import pytest

import perfmetrics as pm
from conftest import poll, run_python


def test_exporter_that_raises_is_counted_not_propagated(reg, caplog):
    before = pm.callback_errors()

    def broken(snapshot):
        raise RuntimeError("exporter failed")

    e = reg.add_exporter("broken", broken)
    ok = []
    reg.add_exporter("after", lambda s: ok.append(1))
    reg.export_now()  # no exception here
    reg.export_now()
    assert ok == [1, 1]  # the next exporter still ran
    assert e.failures == 2
    assert pm.callback_errors() == before + 2
    assert "exporter 'broken' raised" in caplog.text
    with pm.Registry() as r:  # the library counted the failures too
        r.add_exporter("broken", broken)
        r.export_now()
        assert r.get_sample_value("perfmetrics_exporter_failures_total",
                                  {"exporter": "broken"}) == 1


def test_exporter_returning_false_is_a_failure(reg):
    e = reg.add_exporter("declines", lambda s: False)
    reg.export_now()
    assert e.failures == 1 and e.calls == 1


def test_export_thread_calls_python_with_the_gil(reg):
    c = pm.Counter("ticks", "T.", registry=reg)
    c.inc(5)
    seen = []
    threads = set()

    def exporter(snapshot):
        threads.add(threading.get_ident())
        seen.append(snapshot.get_sample_value("ticks_total"))
        if len(seen) == 2:
            raise ValueError("an exception on the library's thread")

    reg.add_exporter("py", exporter)
    reg.start_exporting(0.01)
    try:
        assert poll(lambda: len(seen) >= 5), seen
    finally:
        reg.stop_exporting(final=False)
    assert threading.get_ident() not in threads  # it ran on the library's thread
    assert set(seen) == {5.0}
    n = len(seen)
    reg.export_now()
    assert len(seen) == n + 1
    with pytest.raises(pm.OutOfRangeError):
        reg.start_exporting(0)
    reg.start_exporting(10)
    with pytest.raises(pm.StateError):
        reg.start_exporting(10)  # already running
    reg.stop_exporting()


def test_exporter_removed_while_the_thread_runs(reg):
    calls = []
    e = reg.add_exporter("py", lambda s: calls.append(1))
    reg.start_exporting(0.005)
    assert poll(lambda: len(calls) >= 2)
    e.remove()  # waits for a running call; the GIL is released meanwhile
    n = len(calls)
    reg.export_now()
    assert len(calls) == n
    reg.stop_exporting()


EXIT_SCRIPTS = {
    "exporter thread": """
import perfmetrics as pm
r = pm.Registry()
c = pm.Counter("x", "X.", registry=r)
calls = []
def exporter(s):
    calls.append(s.get_sample_value("x_total"))
    raise RuntimeError("at any moment")
r.add_exporter("py", exporter)
r.start_exporting(0.001)
import time
deadline = time.monotonic() + 20
while len(calls) < 3 and time.monotonic() < deadline:
    c.inc()
    time.sleep(0.001)
print("calls", len(calls) >= 3)
""",
    "default registry exporter": """
import perfmetrics as pm
pm.Counter("y", "Y.").inc()
pm.REGISTRY.add_exporter("py", lambda s: None)
pm.REGISTRY.start_exporting(0.001)
pm.gauge_function("gf", "G.", lambda: 1.0)
print("calls", True)
""",
    "tracer, engine and server threads": """
import perfmetrics as pm, time, urllib.request
r = pm.Registry()
t = pm.Tracer(batch=(16, 0.001))
spans = []
t.add_exporter("py", spans.extend)
t.start()
e = pm.AlertEngine(r, interval=0.01)
e.load_rules('alert A {\\n  expr: up > 0\\n}\\n')
pm.gauge_function("up", "Up.", lambda: 1.0, registry=r)
class Col:
    def collect(self):
        yield pm.GaugeMetricFamily("from_collector", "C.", value=2)
r.register(Col())
e.add_notifier("py", lambda ev: (_ for _ in ()).throw(RuntimeError("notifier")))
e.start()
s = pm.start_http_server(0, registry=r, tracer=t, alert_engine=e)
with t.span("work"):
    pass
deadline = time.monotonic() + 20
while (not spans or e.stat("notify_failed") == 0) and time.monotonic() < deadline:
    time.sleep(0.01)
urllib.request.build_opener(urllib.request.ProxyHandler({})).open(s.url + "metrics").read()
print("calls", bool(spans) and e.stat("notify_failed") > 0)
""",
    "daemon threads recording": """
import perfmetrics as pm, threading
r = pm.Registry()
c = pm.Counter("z", "Z.", ["k"], registry=r)
h = pm.Histogram("zh", "Z.", registry=r)
started = threading.Barrier(5)
def record():
    started.wait()
    child = c.labels("a")
    while True:
        child.inc()
        with h.time(), pm.span("s"):
            pass
for _ in range(4):
    threading.Thread(target=record, daemon=True).start()
started.wait()
print("calls", True)
""",
}


@pytest.mark.parametrize("name", sorted(EXIT_SCRIPTS))
def test_interpreter_exits_cleanly_with_threads_running(name):
    # The process ends with library threads running that call Python: the
    # atexit hook must stop them before Python finalizes (exit 0, no crash,
    # no hang).
    for _ in range(3):
        p = run_python(EXIT_SCRIPTS[name], timeout=60)
        assert p.returncode == 0, p.stderr[-3000:]
        assert "calls True" in p.stdout, (p.stdout, p.stderr[-3000:])
        assert "Fatal Python error" not in p.stderr


def test_registry_collected_inside_its_own_exporter():
    # The last reference to a registry goes away inside its exporter, on its
    # export thread: freeing it there would stop (join) that very thread, so
    # the free is deferred to the next ordinary call.
    from perfmetrics import _core
    holder = [pm.Registry()]
    done = threading.Event()

    def exporter(snapshot):
        if holder:
            holder.clear()  # collected right here
            done.set()

    holder[0].add_exporter("last", exporter)
    holder[0].start_exporting(0.001)
    assert done.wait(20)
    assert poll(lambda: _core._deferred)
    with pm.Registry():  # an ordinary call frees it, on this thread
        pass
    assert not _core._deferred


def test_registry_closed_while_its_export_thread_calls_python():
    r = pm.Registry()
    calls = []
    r.add_exporter("py", lambda s: calls.append(1))
    r.start_exporting(0.001)
    assert poll(lambda: len(calls) >= 3)
    r.close()  # stops the thread first; the GIL is released while it waits
    assert r.closed


def test_engine_close_delivers_queued_events_to_python(reg):
    q = pm.Gauge("backlog", "B.", registry=reg)
    q.set(5)
    e = pm.AlertEngine(reg, dispatch_thread=False)
    e.load_rules("alert Backlog {\n  expr: backlog > 1\n}\n")
    got = []
    e.add_notifier("py", got.append)
    e.tick(1_800_000_000)
    assert got == []  # queued, not delivered
    e.close()  # delivers what is queued, on this thread
    assert [(ev.rule, ev.state) for ev in got] == [("Backlog", "firing")]


FORK_SCRIPT = """
import os, time, perfmetrics as pm
r = pm.Registry()
c = pm.Counter("before_fork", "B.", registry=r)
calls = []
r.add_exporter("py", lambda s: calls.append(1))
r.start_exporting(0.001)
srv = pm.start_http_server(0, registry=r)
def wait_for(n):
    deadline = time.monotonic() + 20
    while len(calls) < n and time.monotonic() < deadline:
        time.sleep(0.001)
    return len(calls) >= n
assert wait_for(2)
pid = os.fork()
if pid == 0:
    # The child has the objects but not their threads. It records (lock-free),
    # closes the registry (forgotten, not freed) and exits: its exit hook
    # must not try to stop threads it does not have.
    c.inc()
    r.close()
    raise SystemExit(0)
_, status = os.waitpid(pid, 0)
print("child", os.waitstatus_to_exitcode(status))
print("parent", wait_for(len(calls) + 2) and srv.port > 0)
"""


def test_fork_child_leaves_the_parents_objects_alone():
    p = run_python(FORK_SCRIPT, timeout=60)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "child 0" in p.stdout and "parent True" in p.stdout, (p.stdout, p.stderr[-3000:])
