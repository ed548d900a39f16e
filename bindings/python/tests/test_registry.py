"""Registries, exposition (checked with prometheus_client's parser), snapshots,
and handle lifetimes: close, double close, use after close, garbage collection."""

import gc
import json
import weakref

import pytest

import perfmetrics as pm
from conftest import families, parse


def fill(reg):
    c = pm.Counter("http_requests", "Requests served.", ["method", "code"], registry=reg)
    c.labels("GET", "200").inc(7)
    c.labels("POST", "500").inc()
    g = pm.Gauge("queue_length", "Jobs waiting.", registry=reg)
    g.set(-2.5)
    h = pm.Histogram("job_seconds", "Time per job.", ["kind"], registry=reg, buckets=(0.5, 1, 2))
    for v in (0.25, 0.75, 1.5, 3):
        h.labels("io").observe(v)
    e = pm.Gauge("esc", 'Help with \\ and "quotes"\nand a newline.', ["path"], registry=reg)
    e.labels('a"b\\c\nd').set(1)
    return c, g, h


def test_prometheus_text_parsed_by_prometheus_client(reg):
    fill(reg)
    text = pm.generate_latest(reg).decode()
    s = parse(text)
    assert s[("http_requests_total", frozenset({("method", "GET"), ("code", "200")}))] == 7
    assert s[("http_requests_total", frozenset({("method", "POST"), ("code", "500")}))] == 1
    assert s[("queue_length", frozenset())] == -2.5
    io = ("kind", "io")
    assert s[("job_seconds_bucket", frozenset({io, ("le", "0.5")}))] == 1
    assert s[("job_seconds_bucket", frozenset({io, ("le", "1.0")}))] == 2
    assert s[("job_seconds_bucket", frozenset({io, ("le", "2.0")}))] == 3
    assert s[("job_seconds_bucket", frozenset({io, ("le", "+Inf")}))] == 4
    assert s[("job_seconds_count", frozenset({io}))] == 4
    assert s[("job_seconds_sum", frozenset({io}))] == 5.5
    assert s[("esc", frozenset({("path", 'a"b\\c\nd')}))] == 1
    fams = families(text)
    assert fams["http_requests"].type == "counter"
    assert fams["http_requests"].documentation == "Requests served."
    assert fams["job_seconds"].type == "histogram"
    assert fams["esc"].documentation == 'Help with \\ and "quotes"\nand a newline.'


def test_openmetrics_parsed_by_prometheus_client(reg):
    om = pytest.importorskip("prometheus_client.openmetrics.parser")
    fill(reg)
    text = pm.generate_latest(reg, "openmetrics").decode()
    assert text.endswith("# EOF\n")
    fams = {f.name: f for f in om.text_string_to_metric_families(text)}
    assert fams["http_requests"].type == "counter"
    vals = {(s.name, frozenset(s.labels.items())): s.value for f in fams.values() for s in f.samples}
    assert vals[("http_requests_total", frozenset({("method", "GET"), ("code", "200")}))] == 7
    assert vals[("job_seconds_count", frozenset({("kind", "io")}))] == 4


def test_json_format(reg):
    fill(reg)
    doc = json.loads(pm.generate_latest(reg, "json"))
    assert isinstance(doc, dict)
    assert "http_requests" in json.dumps(doc)


def test_formats_and_content_types(reg):
    assert pm.CONTENT_TYPE_LATEST.startswith("text/plain")
    assert pm.content_type("openmetrics").startswith("application/openmetrics-text")
    assert pm.content_type("json") == "application/json"
    with pytest.raises(ValueError):
        pm.content_type("xml")
    with pytest.raises(ValueError):
        pm.generate_latest(reg, "xml")
    with pytest.raises(TypeError):
        pm.generate_latest("not a registry")


def test_collect_and_snapshot(reg):
    fill(reg)
    fams = {f.name: f for f in reg.collect()}
    assert fams["queue_length"].type == "gauge"
    assert fams["queue_length"].samples == [pm.Sample("queue_length", {}, -2.5)]
    assert fams["job_seconds"].documentation == "Time per job."
    with reg.snapshot() as snap:
        assert snap.time > 1e9
        assert snap.get_sample_value("queue_length") == -2.5
        assert snap.get_sample_value("nope") is None
        assert b"queue_length -2.5" in snap.format()
        p50 = snap.quantile("job_seconds", 0.5, {"kind": "io"})
        assert p50 == pytest.approx(0.75, rel=1 / 129)
        assert snap.quantile("job_seconds", 1.0, {"kind": "io"}) == pytest.approx(3, rel=1 / 129)
        assert snap.quantile("job_seconds", 0.5, {"kind": "cpu"}) is None
        assert snap.quantile("nope", 0.5) is None
        with pytest.raises(pm.InvalidArgumentError):
            snap.quantile("job_seconds", 2, {"kind": "io"})
        with pytest.raises(pm.InvalidArgumentError):
            snap.quantile("queue_length", 0.5)  # not a histogram
        with pytest.raises(TypeError):
            snap.quantile("job_seconds", "0.5")
    with pytest.raises(pm.ClosedError):
        snap.families()
    snap.close()  # twice: nothing


def test_self_metrics_switch():
    with pm.Registry() as r:
        assert any(f.name.startswith("perfmetrics_") for f in r.collect())
    with pm.Registry(self_metrics=False) as r:
        assert not any(f.name.startswith("perfmetrics_") for f in r.collect())
    with pytest.raises(pm.OutOfRangeError):
        pm.Registry(stripes=1000)
    with pytest.raises(TypeError):
        pm.Registry(stripes="4")
    with pm.Registry(stripes=4) as r:
        pm.Counter("s", "S.", registry=r).inc()
        assert r.get_sample_value("s_total") == 1


def test_default_registry():
    c = pm.Counter("pytest_default_registry_counter", "In REGISTRY.")
    c.inc(3)
    assert pm.REGISTRY.get_sample_value("pytest_default_registry_counter_total") == 3
    assert b"pytest_default_registry_counter_total 3" in pm.generate_latest()
    with pytest.raises(ValueError):
        pm.REGISTRY.close()
    with pm.REGISTRY:
        pass
    assert not pm.REGISTRY.closed


def test_process_collector(reg):
    reg.enable_process_collector()
    reg.enable_process_collector()  # twice: PM_OK
    assert reg.get_sample_value("process_resident_memory_bytes") > 0


def test_close_double_close_and_use_after_close():
    r = pm.Registry()
    c = pm.Counter("c", "C.", ["k"], registry=r)
    child = c.labels("x")
    g = pm.Gauge("g", "G.", registry=r)
    h = pm.Histogram("h", "H.", registry=r)
    r.close()
    r.close()
    assert r.closed
    for call in (child.inc, g.inc, lambda: g.set(1), lambda: h.observe(1), child.get,
                 lambda: c.labels("y"), lambda: c.remove("x"), c.clear, c.series_count,
                 r.snapshot, r.generate, lambda: pm.Counter("n", "N.", registry=r),
                 lambda: r.add_exporter("e", print), r.export_now,
                 lambda: h.observe_many([1]), lambda: h.time().__enter__().__exit__(None, None, None)):
        with pytest.raises(pm.ClosedError):
            call()
    assert issubclass(pm.ClosedError, pm.StateError)


def test_registry_context_manager():
    with pm.Registry() as r:
        c = pm.Counter("cm", "C.", registry=r)
        c.inc()
    assert r.closed
    with pytest.raises(pm.ClosedError):
        c.inc()
    with pytest.raises(pm.ClosedError):
        with r:
            pass


def test_garbage_collection_frees_once():
    # Handles dropped in every order, with and without an explicit close:
    # each C object is freed once (a double free would crash the process).
    for _ in range(3):
        r = pm.Registry()
        c = pm.Counter("gc", "G.", ["k"], registry=r)
        for i in range(50):
            c.labels(str(i)).inc()
        child = c.labels("keep")
        ref = weakref.ref(r)
        del r, c
        gc.collect()
        assert ref() is not None  # the child keeps its registry alive
        child.inc()
        del child
        gc.collect()
        assert ref() is None
    r = pm.Registry()
    c = pm.Counter("gc2", "G.", ["k"], registry=r)
    child = c.labels("a")
    r.close()
    del c, child, r
    gc.collect()
    # A cycle through a user object, collected by the cycle collector.
    r = pm.Registry()
    holder = {"r": r, "c": pm.Counter("gc3", "G.", ["k"], registry=r)}
    holder["self"] = holder
    holder["c"].labels("x").inc()
    del holder, r
    gc.collect()


def test_exporters(reg):
    c = pm.Counter("exp", "E.", registry=reg)
    seen = []
    e = reg.add_exporter("collect", lambda s: seen.append(s.get_sample_value("exp_total")))
    c.inc()
    reg.export_now()
    c.inc()
    reg.export_now()
    assert seen == [1, 2]
    assert e.calls == 2 and e.failures == 0
    kept = []
    reg.add_exporter("keep", kept.append)
    reg.export_now()
    assert kept[0].get_sample_value("exp_total") == 2  # still valid after the call
    assert seen == [1, 2, 2]
    e.remove()
    e.remove()
    reg.export_now()
    assert seen == [1, 2, 2] and e.calls == 3
    with pytest.raises(pm.AlreadyExistsError):
        reg.add_exporter("keep", print)
    with pytest.raises(pm.EncodingError):
        reg.add_exporter("", print)
    with pytest.raises(TypeError):
        reg.add_exporter("x", None)
    with pytest.raises(TypeError):
        reg.add_exporter(3, print)
    with pytest.raises(pm.OutOfRangeError):
        reg.start_exporting(-1)
    with pytest.raises(TypeError):
        reg.start_exporting("1")


ERRORS = [(-1, "InvalidArgumentError", ValueError), (-2, "OutOfMemoryError", MemoryError),
          (-3, "AlreadyExistsError", ValueError), (-4, "NotFoundError", LookupError),
          (-5, "BadNameError", ValueError), (-6, "BadLabelError", ValueError),
          (-7, "LabelCountError", ValueError), (-8, "EncodingError", ValueError),
          (-9, "TypeMismatchError", TypeError), (-10, "OutOfRangeError", ValueError),
          (-11, "StateError", RuntimeError), (-12, "InputOutputError", OSError),
          (-13, "CallbackError", RuntimeError), (-14, "ParseError", ValueError),
          (-15, "UnsupportedError", NotImplementedError), (-16, "ThreadError", RuntimeError)]


@pytest.mark.parametrize("status,name,builtin", ERRORS)
def test_every_status_has_its_exception(status, name, builtin):
    from perfmetrics import _core
    e = _core.make_error(status, "pm_call", "detail")
    assert type(e) is getattr(pm, name)
    assert isinstance(e, pm.Error) and isinstance(e, builtin)
    assert e.status == status and e.status_name.startswith("PM_E") and e.what == "pm_call"
    assert str(e).startswith("pm_call: ") and str(e).endswith(": detail")
    assert {"CallbackError": pm.CallbackError, "OutOfMemoryError": pm.OutOfMemoryError,
            "ThreadError": pm.ThreadError, "TypeMismatchError": pm.TypeMismatchError,
            "UnsupportedError": pm.UnsupportedError}.get(name, type(e)) is type(e)
    unknown = _core.make_error(-99, "pm_call")
    assert type(unknown) is pm.Error and unknown.status == -99


def test_result_types(reg):
    c = pm.Counter("types", "T.", registry=reg)
    c.inc()
    assert all(isinstance(f, pm.MetricFamily) for f in reg.collect())
    with reg.snapshot() as s:
        assert isinstance(s, pm.Snapshot)
    assert isinstance(reg.add_exporter("t", lambda s: None), pm.Exporter)


class QueueCollector:
    def __init__(self):
        self.depth = {"fast": 3, "slow": 11}
        self.fail = False

    def collect(self):
        if self.fail:
            yield pm.GaugeMetricFamily("queue_half_done", "Emitted, then discarded.", value=1)
            raise RuntimeError("collector failed")
        g = pm.GaugeMetricFamily("queue_depth", "Jobs waiting.", labels=["queue"])
        for q, d in self.depth.items():
            g.add_metric([q], d)
        yield g
        yield pm.CounterMetricFamily("queue_jobs_total", "Jobs queued.", value=42)


def test_custom_collector(reg, caplog):
    col = QueueCollector()
    reg.register(col)
    s = parse(pm.generate_latest(reg).decode())
    assert s[("queue_depth", frozenset({("queue", "slow")}))] == 11
    assert s[("queue_jobs_total", frozenset())] == 42
    col.depth["fast"] = 5
    assert reg.get_sample_value("queue_depth", {"queue": "fast"}) == 5
    before = pm.callback_errors()
    col.fail = True
    assert reg.get_sample_value("queue_half_done") is None  # the failed run is discarded
    assert pm.callback_errors() == before + 1 and "collector 'QueueCollector' raised" in caplog.text
    with pytest.raises(pm.AlreadyExistsError):
        reg.register(col)
    with pytest.raises(TypeError):
        reg.register(object())
    reg.unregister(col)
    with pytest.raises(pm.NotFoundError):
        reg.unregister(col)
    assert reg.get_sample_value("queue_jobs_total") is None


def test_custom_collector_bad_output(reg):
    class Bad:
        def __init__(self, fams):
            self.fams = fams

        def collect(self):
            return self.fams

    before = pm.callback_errors()
    reg.register(Bad(["not a family"]), name="bad1")
    reg.register(Bad([pm.GaugeMetricFamily("bad name", "B.", value=1)]), name="bad2")
    reg.register(Bad([pm.CounterMetricFamily("neg", "N.", value=-1)]), name="bad3")
    assert reg.get_sample_value("neg_total") is None
    assert pm.callback_errors() == before + 3
    with pm.Registry() as r:  # the library counts each failure too
        r.register(Bad(["x"]), name="bad")
        assert r.get_sample_value("perfmetrics_collector_failures_total",
                                  {"collector": "bad"}) == 1
    with pytest.raises(ValueError):
        pm.GaugeMetricFamily("x", "X.", value=1, labels=["a"])
    with pytest.raises(ValueError):
        pm.GaugeMetricFamily("x", "X.", labels=["a"]).add_metric([], 1)
    with pytest.raises(TypeError):
        pm.GaugeMetricFamily(None, "X.")
    with pytest.raises(pm.EncodingError):
        reg.register(Bad([]), name="")
