"""Counter, Gauge, Histogram: recording, labels, timers, bad inputs."""

import math

import pytest

import perfmetrics as pm
from conftest import parse


def test_counter_inc_and_value(reg):
    c = pm.Counter("jobs", "Jobs done.", registry=reg)
    c.inc()
    c.inc(2.5)
    c.inc(0)
    assert c.get() == 3.5
    assert reg.get_sample_value("jobs_total") == 3.5
    assert c.name == "jobs" and c.labelnames == () and c.labelvalues == ()


def test_counter_name_total_suffix_namespace_unit(reg):
    c = pm.Counter("requests_total", "R.", namespace="app", subsystem="http", registry=reg)
    assert c.name == "app_http_requests"
    c.inc()
    assert reg.get_sample_value("app_http_requests_total") == 1
    b = pm.Counter("sent", "Bytes.", unit="bytes", registry=reg)
    assert b.name == "sent_bytes"
    b.inc(10)
    assert "# UNIT sent_bytes bytes" in reg.generate("openmetrics").decode()


def test_counter_rejects_negative_nan_and_non_numbers(reg):
    c = pm.Counter("neg", "N.", registry=reg)
    with pytest.raises(ValueError):
        c.inc(-1)
    with pytest.raises(ValueError):
        c.inc(math.nan)
    with pytest.raises(TypeError):
        c.inc("1")
    with pytest.raises(TypeError):
        c.inc(None)
    assert c.get() == 0


def test_counter_infinite_delta_is_dropped_and_counted():
    r = pm.Registry()
    try:
        c = pm.Counter("inf", "I.", registry=r)
        c.inc(math.inf)
        assert c.get() == 0
        rejected = parse(r.generate().decode())
        assert sum(v for (n, _), v in rejected.items()
                   if n == "perfmetrics_values_rejected_total") >= 1
    finally:
        r.close()


def test_labels_positional_keyword_and_cache(reg):
    c = pm.Counter("req", "Requests.", ["method", "code"], registry=reg)
    a = c.labels("GET", "200")
    assert c.labels("GET", "200") is a
    assert c.labels(method="GET", code="200") is a
    assert c.labels("GET", 200) is a  # values are str()-ed, as prometheus_client does
    a.inc()
    c.labels("POST", "500").inc(3)
    assert a.labelvalues == ("GET", "200")
    assert reg.get_sample_value("req_total", {"method": "GET", "code": "200"}) == 1
    assert reg.get_sample_value("req_total", {"method": "POST", "code": "500"}) == 3
    assert c.series_count() == 2
    assert "method='GET'" in repr(a)


def test_labels_bad_inputs(reg):
    c = pm.Counter("lbl", "L.", ["a", "b"], registry=reg)
    with pytest.raises(ValueError):
        c.labels("x")  # too few
    with pytest.raises(ValueError):
        c.labels("x", "y", "z")
    with pytest.raises(ValueError):
        c.labels("x", b="y")  # mixed
    with pytest.raises(ValueError):
        c.labels(a="x")  # missing name
    with pytest.raises(ValueError):
        c.labels(a="x", b="y", c="z")
    with pytest.raises(TypeError):
        c.labels(["unhashable"], "y")
    with pytest.raises(ValueError):
        c.inc()  # a labeled family is not a series
    with pytest.raises(ValueError):
        c.labels("x", "y").labels("x", "y")  # a child has no labels()
    with pytest.raises(pm.EncodingError):
        c.labels("\udcff", "y")
    with pytest.raises(pm.OutOfRangeError) as e:
        c.labels("v" * 5000, "y")  # over 4096 bytes
    assert len(str(e.value)) < 400  # the message quotes a shortened argument
    with pytest.raises(ValueError):
        c.labels("a\0b", "y")  # C would cut it to "a"
    assert c.series_count() == 1  # only ("x", "y"), made above
    plain = pm.Counter("plain", "P.", registry=reg)
    with pytest.raises(ValueError):
        plain.labels("x")
    with pytest.raises(ValueError):
        plain.remove("x")
    with pytest.raises(ValueError):
        plain.clear()


def test_bad_names_and_definitions(reg):
    with pytest.raises(pm.BadNameError) as e:
        pm.Counter("bad name", "B.", registry=reg)
    assert e.value.status == -5 and e.value.status_name == "PM_EBADNAME"
    assert "invalid metric name" in str(e.value)
    with pytest.raises(pm.BadLabelError):
        pm.Counter("x1", "X.", ["le"], registry=reg)
    with pytest.raises(pm.BadLabelError):
        pm.Histogram("x2", "X.", ["__reserved"], registry=reg)
    with pytest.raises(pm.BadNameError):
        pm.Counter("perfmetrics_mine", "Reserved prefix.", registry=reg)
    pm.Counter("same", "S.", registry=reg)
    pm.Counter("same", "S.", registry=reg)  # identical definition: the same family
    with pytest.raises(pm.AlreadyExistsError):
        pm.Gauge("same", "S.", registry=reg)
    with pytest.raises(TypeError):
        pm.Counter("x3", "X.", "a", registry=reg)  # labelnames as a plain str
    with pytest.raises(TypeError):
        pm.Counter(3, "X.", registry=reg)
    with pytest.raises(TypeError):
        pm.Counter("x4", None, registry=reg)
    with pytest.raises(ValueError):
        pm.Counter("x5", "X.", registry=None)
    with pytest.raises(TypeError):
        pm.Counter("x6", "X.", registry="nope")
    with pytest.raises(TypeError):
        pm.Counter("x7", "X.", registry=reg, nonsense=1)
    with pytest.raises(pm.OutOfRangeError):
        pm.Counter("x8", "X.", ["a"], registry=reg, max_series=0)
    with pytest.raises(pm.OutOfRangeError):
        pm.Counter("x9", "X.", registry=reg, ttl=-1)
    with pytest.raises(pm.EncodingError):
        pm.Counter("x10", "\udcff", registry=reg)
    assert issubclass(pm.BadNameError, pm.Error) and issubclass(pm.BadNameError, ValueError)


def test_remove_and_clear(reg):
    c = pm.Counter("rm", "R.", ["k"], registry=reg)
    a = c.labels("a")
    a.inc()
    c.labels("b").inc()
    c.remove("a")
    a.inc()  # a held child keeps working (detached series)
    assert reg.get_sample_value("rm_total", {"k": "a"}) is None
    assert c.labels("a") is not a
    with pytest.raises(pm.NotFoundError):
        c.remove("zzz")
    with pytest.raises(pm.LabelCountError):
        c.remove("a", "b")
    c.clear()
    assert c.series_count() <= 1  # only the (empty) overflow series may remain
    assert reg.get_sample_value("rm_total", {"k": "b"}) is None


def test_max_series_overflow(reg):
    c = pm.Counter("capped", "C.", ["k"], registry=reg, max_series=2)
    for i in range(5):
        c.labels(str(i)).inc()
    assert reg.get_sample_value("capped_total", {"pm_overflow": "true"}) == 3


def test_exemplars_from_the_current_span(reg):
    h = pm.Histogram("traced_seconds", "T.", registry=reg, buckets=(1,))
    t = pm.Tracer()
    try:
        with t.span("req") as s:
            h.observe(0.5)
        om = reg.generate("openmetrics").decode()
        line = [x for x in om.splitlines() if x.startswith('traced_seconds_bucket{le="1.0"}')][0]
        assert 'trace_id="%s"' % s.context.trace_id in line
        assert 'span_id="%s"' % s.context.span_id in line
        assert "trace_id" not in pm.generate_latest(reg).decode()  # 0.0.4 has no exemplars
    finally:
        t.close()


def test_ttl_family_caches_no_child(reg):
    c = pm.Counter("expiring", "E.", ["k"], registry=reg, ttl=3600)
    a, b = c.labels("x"), c.labels("x")
    assert a is not b  # each labels() looks the series up again
    a.inc()
    b.inc()
    assert reg.get_sample_value("expiring_total", {"k": "x"}) == 2
    c.remove("x")
    assert reg.get_sample_value("expiring_total", {"k": "x"}) is None


def test_gauge_operations(reg):
    g = pm.Gauge("queue", "Queue length.", registry=reg)
    g.set(5)
    g.inc()
    g.inc(2)
    g.dec()
    g.dec(0.5)
    assert g.get() == 6.5
    g.set(math.inf)
    assert g.get() == math.inf
    g.set_to_current_time()
    import time
    assert abs(g.get() - time.time()) < 60
    with pytest.raises(TypeError):
        g.set("3")
    with pytest.raises(TypeError):
        g.inc(None)
    with pytest.raises(TypeError):
        g.dec("x")


def test_gauge_track_inprogress_and_time(reg):
    g = pm.Gauge("inflight", "In flight.", registry=reg)
    with g.track_inprogress():
        assert g.get() == 1
        with g.track_inprogress():
            assert g.get() == 2
    assert g.get() == 0

    @g.track_inprogress()
    def work():
        return g.get()

    assert work() == 1 and g.get() == 0
    with pytest.raises(KeyError):
        with g.track_inprogress():
            raise KeyError("x")
    assert g.get() == 0
    d = pm.Gauge("last_seconds", "Duration.", registry=reg)
    with d.time():
        pass
    assert 0 <= d.get() < 5

    @d.time()
    def f(x):
        return x * 2

    assert f(21) == 42 and 0 <= d.get() < 5


def test_histogram_observe_buckets(reg):
    h = pm.Histogram("lat_seconds", "Latency.", registry=reg, buckets=(0.1, 1, 10, math.inf))
    for v in (0.05, 0.5, 5, 50):
        h.observe(v)
    h.observe(math.nan)  # dropped by the library
    s = parse(reg.generate().decode())
    assert s[("lat_seconds_bucket", frozenset({("le", "0.1")}))] == 1
    assert s[("lat_seconds_bucket", frozenset({("le", "1.0")}))] == 2
    assert s[("lat_seconds_bucket", frozenset({("le", "10.0")}))] == 3
    assert s[("lat_seconds_bucket", frozenset({("le", "+Inf")}))] == 4
    assert s[("lat_seconds_count", frozenset())] == 4
    assert s[("lat_seconds_sum", frozenset())] == pytest.approx(55.55)
    assert reg.get_sample_value("lat_seconds_bucket", {"le": "1.0"}) == 2
    with pytest.raises(TypeError):
        h.observe("1")


def test_histogram_default_buckets_and_range(reg):
    h = pm.Histogram("d_seconds", "D.", registry=reg)
    h.observe(0.3)
    les = [lbl["le"] for n, lbl, _ in reg.collect()[0].samples if n == "d_seconds_bucket"]
    assert les == [repr(b) for b in pm.DEFAULT_BUCKETS] + ["+Inf"]
    pm.Histogram("r_seconds", "R.", registry=reg, range=(1e-6, 100))
    with pytest.raises(pm.OutOfRangeError):
        pm.Histogram("bad_range", "B.", registry=reg, range=(10, 1))
    with pytest.raises(pm.Error):
        pm.Histogram("bad_buckets", "B.", registry=reg, buckets=(1, 0.5))
    with pytest.raises(ValueError):
        pm.Histogram("bad_buckets2", "B.", registry=reg, buckets=("a",))


def test_histogram_observe_many(reg):
    h = pm.Histogram("many", "M.", registry=reg)
    h.observe_many([0.001, 0.2, 3.0])
    h.observe_many(x / 10 for x in range(7))
    assert reg.get_sample_value("many_count") == 10
    lh = pm.Histogram("many_l", "M.", ["k"], registry=reg)
    with pytest.raises(ValueError):
        lh.observe_many([1.0])
    with pytest.raises(TypeError):
        h.observe_many([1.0, "x"])


def test_histogram_time_context_and_decorator(reg):
    h = pm.Histogram("t_seconds", "T.", ["op"], registry=reg)
    child = h.labels("a")
    with child.time():
        pass
    with pytest.raises(RuntimeError):
        with child.time():
            raise RuntimeError("recorded all the same")

    @child.time()
    def f(x):
        return x + 1

    assert f.__name__ == "f"
    assert f(1) == 2 and f(2) == 3
    assert reg.get_sample_value("t_seconds_count", {"op": "a"}) == 4
    assert 0 <= reg.get_sample_value("t_seconds_sum", {"op": "a"}) < 5
    with pytest.raises(ValueError):
        with h.time():  # the family, not a series
            pass


def test_count_exceptions(reg):
    c = pm.Counter("errors", "E.", registry=reg)
    with pytest.raises(ValueError):
        with c.count_exceptions(ValueError):
            raise ValueError()
    with pytest.raises(KeyError):
        with c.count_exceptions(ValueError):
            raise KeyError()
    with c.count_exceptions():
        pass

    @c.count_exceptions()
    def boom():
        raise OSError()

    with pytest.raises(OSError):
        boom()
    assert c.get() == 2


def test_gauge_function(reg):
    calls = []

    def value():
        calls.append(1)
        return 42

    pm.gauge_function("answer", "The answer.", value, registry=reg)
    assert reg.get_sample_value("answer") == 42
    assert calls
    with pytest.raises(pm.AlreadyExistsError):
        pm.gauge_function("answer", "Again.", value, registry=reg)
    with pytest.raises(TypeError):
        pm.gauge_function("nope", "N.", 3, registry=reg)


def test_gauge_function_that_raises_gives_nan_and_is_counted(reg):
    before = pm.callback_errors()

    def broken():
        raise RuntimeError("no value")

    pm.gauge_function("broken", "B.", broken, registry=reg)
    assert math.isnan(reg.get_sample_value("broken"))
    assert pm.callback_errors() == before + 1
    pm.gauge_function("not_a_number", "B.", lambda: "x", registry=reg)
    assert math.isnan(reg.get_sample_value("not_a_number"))
    # That snapshot called both callbacks again.
    assert pm.callback_errors() == before + 3
