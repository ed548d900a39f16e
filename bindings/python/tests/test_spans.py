"""Spans: context managers, decorators, parents, attributes, events,
status, trace context, span exporters (Python objects and the library's
formats), the tracer's counters and the default tracer."""

import json

import pytest

import perfmetrics as pm


@pytest.fixture
def tracer():
    t = pm.Tracer(service="pytest")
    got = []
    t.add_exporter("collect", got.extend)
    t.got = got
    yield t
    t.close()


def test_span_context_manager_nesting_and_attributes(tracer):
    with tracer.span("outer", kind="server") as outer:
        outer.set_attribute("s", "text")
        outer.set_attribute("i", -7)
        outer.set_attribute("f", 2.5)
        outer.set_attribute("b", True)
        outer.add_event("started")
        outer.add_event("step", "k", "v")
        with tracer.span("inner") as inner:
            assert inner.context.trace_id == outer.context.trace_id
        outer.set_status("ok")
        assert outer.sampled
    assert tracer.flush() == 2
    by_name = {d.name: d for d in tracer.got}
    o, i = by_name["outer"], by_name["inner"]
    assert isinstance(o, pm.SpanData)
    assert o.kind == "server" and i.kind == "internal"
    assert i.parent_id == o.span_id and o.parent_id == ""
    assert i.trace_id == o.trace_id and len(o.trace_id) == 32 and len(o.span_id) == 16
    assert o.attributes == {"s": "text", "i": -7, "f": 2.5, "b": True}
    assert o.events == [("started", {}), ("step", {"k": "v"})]
    assert o.status == "ok" and i.status == "unset"
    assert o.start_ns <= i.start_ns <= i.end_ns <= o.end_ns


def test_module_span_uses_the_default_tracer():
    t = pm.default_tracer()
    assert pm.default_tracer() is t
    got = []
    t.add_exporter("pytest-default", got.extend)
    try:
        with pm.span("with-default") as s:
            assert isinstance(s, pm.Span)

        @pm.span("decorated")
        def work(x):
            return x * 2

        assert work(4) == 8 and work.__name__ == "work"
        t.flush()
        assert [d.name for d in got] == ["with-default", "decorated"]
    finally:
        t.remove_exporter("pytest-default")


def test_exception_sets_error_status(tracer):
    with pytest.raises(KeyError):
        with tracer.span("fails"):
            raise KeyError("missing")

    @tracer.span("decorated-fails")
    def boom():
        raise ValueError("bad")

    with pytest.raises(ValueError):
        boom()
    tracer.flush()
    by_name = {d.name: d for d in tracer.got}
    assert by_name["fails"].status == "error"
    assert "KeyError" in by_name["fails"].status_message
    assert by_name["fails"].events == [("exception", {"exception.type": "KeyError"})]
    assert by_name["decorated-fails"].status == "error"


def test_scope_object_reused_and_nested(tracer):
    scope = tracer.span("again")
    with scope as a:
        with scope as b:
            assert b.context.span_id != a.context.span_id
    tracer.flush()
    names = [d.name for d in tracer.got]
    assert names == ["again", "again"]
    parent = {d.span_id: d.parent_id for d in tracer.got}
    assert sorted(parent.values()).count("") == 1


def test_traceparent_round_trip_and_explicit_parents(tracer):
    with tracer.span("root") as root:
        header = root.traceparent
    ctx = pm.parse_traceparent(header)
    assert ctx == root_context(header)
    assert ctx.traceparent == header
    with tracer.span("remote-child", parent=header) as c1:
        pass
    with tracer.span("ctx-child", parent=ctx) as c2:
        pass
    s = tracer.start_span("manual", kind="client", parent=c1)
    s.end()
    s.end()
    tracer.flush()
    by_name = {d.name: d for d in tracer.got}
    assert by_name["remote-child"].parent_id == ctx.span_id
    assert by_name["ctx-child"].trace_id == ctx.trace_id
    assert by_name["manual"].parent_id == by_name["remote-child"].span_id
    with pytest.raises(pm.ParseError):
        pm.parse_traceparent("00-zz-00-01")
    with pytest.raises(pm.ParseError):
        tracer.span("x", parent="garbage").__enter__()
    with pytest.raises(TypeError):
        tracer.span("x", parent=42).__enter__()
    with pytest.raises(ValueError):
        tracer.span("x", parent=pm.TraceContext("nothex", "00", True)).__enter__()
    assert c2.closed


def root_context(header):
    parts = header.split("-")
    return pm.TraceContext(parts[1], parts[2], parts[3] == "01")


def test_bad_inputs(tracer):
    with pytest.raises(ValueError):
        tracer.span("x", kind="sideways")
    with pytest.raises(TypeError):
        tracer.span(3)
    with pytest.raises(ValueError):
        pm.Tracer(sampler="sometimes")
    with pytest.raises(pm.OutOfRangeError):
        pm.Tracer(sampler="ratio", ratio=2)
    with pytest.raises(pm.OutOfRangeError):
        pm.Tracer(buffer=1)
    with pytest.raises(TypeError):
        pm.Tracer(service=None)
    with tracer.span("attrs") as s:
        with pytest.raises(TypeError):
            s.set_attribute("k", [1])
        with pytest.raises(ValueError):
            s.set_attribute("k", 2**70)
        with pytest.raises(ValueError):
            s.add_event("e", "k")
        with pytest.raises(ValueError):
            s.set_status("fine")
        with pytest.raises(pm.EncodingError):
            s.set_attribute("k", "\udcff")
    with pytest.raises(pm.ClosedError):
        s.set_attribute("k", 1)  # ended
    with pytest.raises(pm.AlreadyExistsError):
        tracer.add_exporter("collect", print)
    with pytest.raises(pm.NotFoundError):
        tracer.remove_exporter("nope")
    with pytest.raises(TypeError):
        tracer.add_exporter("x", "not callable")
    with pytest.raises(ValueError):
        tracer.add_exporter("x", print, format="xml")
    with pytest.raises(ValueError):
        tracer.stat("nope")


def test_span_exporter_formats_and_failures(tracer):
    lines, otlp = [], []
    tracer.add_exporter("jsonl", lines.append, format="jsonl")
    tracer.add_exporter("otlp", otlp.append, format="otlp_json")
    before = pm.callback_errors()

    def broken(batch):
        raise RuntimeError("span exporter failed")

    tracer.add_exporter("broken", broken)
    with tracer.span("fmt") as s:
        s.set_attribute("n", 1)
    tracer.flush()
    rows = [json.loads(x) for x in lines[0].decode().splitlines()]
    assert len(rows) == 1 and "fmt" in json.dumps(rows[0])
    body = json.loads(otlp[0])
    assert body["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["name"] == "fmt"
    assert pm.callback_errors() == before + 1
    assert tracer.stat("export_failures") == 1
    assert tracer.stat("started") >= 1 and tracer.stat("exported") >= 1
    tracer.remove_exporter("broken")


def test_tracer_thread_and_red_metrics(reg):
    t = pm.Tracer(batch=(8, 0.01), registry=reg)
    got = []
    t.add_exporter("collect", got.extend)
    t.start()
    with pytest.raises(pm.StateError):
        t.start()
    for _ in range(5):
        with t.span("op"):
            pass
    from conftest import poll
    assert poll(lambda: len(got) == 5)
    t.stop()
    assert reg.get_sample_value("pm_spans_total", {"operation": "op"}) == 5
    reg.close()
    assert t.closed  # a tracer feeding a registry is closed before it


def test_tracer_close_and_unsampled_spans():
    t = pm.Tracer(sampler="never")
    with t.span("dropped") as s:
        assert not s.sampled
        s.set_attribute("ignored", 1)
    assert t.flush() == 0
    open_span = t.start_span("left-open")
    t.close()
    t.close()
    with pytest.raises(pm.ClosedError):
        t.span("x").__enter__()
    open_span.end()  # its tracer was freed: nothing to do, no crash
    with pytest.raises(pm.ClosedError):
        open_span.set_attribute("k", 1)
    with pm.Tracer() as t2:
        t2.set_default()
        assert pm.default_tracer() is t2
    assert pm.default_tracer() is not t2  # a new default replaces a closed one


def test_asyncio_tasks_interleaving_spans(tracer):
    # Two tasks on one thread open and close spans in interleaved order: each
    # span's parent is its own task's, and the library's current span never
    # points at a span another task ended.
    import asyncio
    from perfmetrics._ffi import ffi, lib
    shared = tracer.span("shared-scope")
    leftovers = []

    async def task(name, d1, d2):
        with tracer.span(name):
            await asyncio.sleep(d1)
            with shared:
                await asyncio.sleep(d2)
                with tracer.span(name + ".leaf"):
                    pass

    async def main():
        await asyncio.gather(task("A", 0.01, 0.03), task("B", 0.02, 0.001))
        leftovers.append(lib.pm_span_current() == ffi.NULL)

    asyncio.run(main())
    with tracer.span("after"):
        pass
    tracer.flush()
    name = {d.span_id: d.name for d in tracer.got}
    parent = {}
    for d in tracer.got:
        parent.setdefault(d.name, []).append(name.get(d.parent_id, d.parent_id or "-"))
    assert parent["A"] == ["-"] and parent["B"] == ["-"] and parent["after"] == ["-"]
    assert sorted(parent["shared-scope"]) == ["A", "B"]
    assert parent["A.leaf"] == ["shared-scope"] and parent["B.leaf"] == ["shared-scope"]
    by_id = {d.span_id: d for d in tracer.got}
    for leaf in ("A.leaf", "B.leaf"):
        d = [x for x in tracer.got if x.name == leaf][0]
        assert name[by_id[d.parent_id].parent_id] == leaf[0]  # its own task's scope
    assert leftovers == [True]


def test_library_current_span_follows_python_blocks(tracer):
    from perfmetrics._ffi import ffi, lib
    assert lib.pm_span_current() == ffi.NULL
    with tracer.span("a") as a:
        assert lib.pm_span_current() == a._owner.ptr
        with tracer.span("b") as b:
            assert lib.pm_span_current() == b._owner.ptr
        assert lib.pm_span_current() == a._owner.ptr
        with tracer.span("ended-early") as e:
            e.end()  # inside its block: the current span goes back to a
            assert lib.pm_span_current() == a._owner.ptr
            with tracer.span("after-early") as c:
                pass
    assert lib.pm_span_current() == ffi.NULL
    tracer.flush()
    by_name = {d.name: d for d in tracer.got}
    assert by_name["after-early"].parent_id == by_name["ended-early"].span_id
    assert by_name["b"].parent_id == by_name["a"].span_id
    assert c.closed
