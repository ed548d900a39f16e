"""The alert engine on a fake clock: rules from text, parse errors with
positions, pending -> firing -> resolved, Python notifiers (one that raises),
filters, history, health, counters, the evaluation thread."""

import math

import pytest

import perfmetrics as pm
from conftest import poll

RULES = """
alert QueueHigh {
  expr: queue_depth > 10
  for: 2s
  severity: critical
  label team: "core"
  annotation summary: "queue at {{ $value }}"
}

alert QueueWarm {
  expr: queue_depth > 5
  severity: info
}
"""

T0 = 1_800_000_000.0  # a fixed Unix time: the engine never reads a clock in tick()


@pytest.fixture
def setup(reg):
    q = pm.Gauge("queue_depth", "Queue depth.", registry=reg)
    e = pm.AlertEngine(reg, interval=1, dispatch_thread=False)
    yield reg, q, e
    e.close()


def test_rules_fire_and_resolve_on_a_fake_clock(setup):
    reg, q, e = setup
    assert e.load_rules(RULES) == 2 and e.rule_count == 2
    events = []
    e.add_notifier("all", events.append)
    q.set(20)
    e.tick(T0)
    assert [(a.rule, a.state) for a in e.active()] == [("QueueHigh", "pending"),
                                                      ("QueueWarm", "firing")]
    e.tick(T0 + 1)
    e.tick(T0 + 2)
    active = {a.rule: a for a in e.active()}
    high = active["QueueHigh"]
    assert isinstance(high, pm.AlertEvent)
    assert high.state == "firing" and high.severity == "critical"
    assert high.labels == {"alertname": "QueueHigh", "severity": "critical", "team": "core"}
    assert high.annotations == {"summary": "queue at 20"}
    assert high.value == 20 and high.starts_at == pytest.approx(T0 + 2)
    assert math.isnan(high.ends_at) and high.fingerprint > 0
    assert "FIRING critical QueueHigh" in high.line
    assert e.health < 100
    # The engine's ALERTS gauge is in the registry.
    assert reg.get_sample_value("ALERTS", {"alertname": "QueueHigh", "alertstate": "firing",
                                           "severity": "critical"}) == 1
    q.set(0)
    e.tick(T0 + 3)
    assert e.active() == []
    assert e.deliver() == len(events)
    got = [(ev.rule, ev.state) for ev in events]
    assert ("QueueHigh", "firing") in got and ("QueueHigh", "resolved") in got
    assert ("QueueWarm", "firing") in got and ("QueueWarm", "resolved") in got
    resolved = [ev for ev in events if ev.state == "resolved" and ev.rule == "QueueHigh"][0]
    assert resolved.prev_state == "firing" and resolved.ends_at == pytest.approx(T0 + 3)
    states = [(h.rule, h.state) for h in e.history()]
    assert ("QueueHigh", "pending") in states
    assert e.stat("evaluations") == 4 and e.stat("notify_sent") == len(events)
    assert e.health == 100


def test_notifier_that_raises_and_filters(setup):
    reg, q, e = setup
    e.load_rules(RULES)
    before = pm.callback_errors()
    critical, calls = [], []

    def broken(ev):
        calls.append(ev.rule)
        raise RuntimeError("pager down")

    e.add_notifier("broken", broken)
    e.add_notifier("critical", critical.append, min_severity="critical", send_resolved=False)
    e.add_notifier("core", lambda ev: None, rules=["QueueHigh"],
                   matchers=[("team", "=~", "co.*")])
    q.set(20)
    for i in range(3):
        e.tick(T0 + i)
    q.set(0)
    e.tick(T0 + 3)
    e.deliver()
    assert calls and pm.callback_errors() == before + len(calls)
    assert e.stat("notify_failed") == len(calls)
    assert [(ev.rule, ev.state) for ev in critical] == [("QueueHigh", "firing")]
    e.remove_notifier("broken")
    with pytest.raises(pm.NotFoundError):
        e.remove_notifier("broken")
    with pytest.raises(pm.AlreadyExistsError):
        e.add_notifier("critical", print)
    with pytest.raises(ValueError):
        e.add_notifier("x", print, min_severity="urgent")
    with pytest.raises(pm.ParseError):
        e.add_notifier("x", print, matchers=[("team", "=~", "(")])
    with pytest.raises(pm.InvalidArgumentError):
        e.add_notifier("x", print, matchers=[("team", "~~", "a")])
    with pytest.raises(TypeError):
        e.add_notifier("x", None)


def test_parse_errors_carry_the_position(setup):
    reg, q, e = setup
    with pytest.raises(pm.ParseError) as err:
        e.load_rules("alert Broken {\n  expr: rate(x[5m]\n}\n")
    assert err.value.line == 2 and err.value.column > 0
    assert err.value.status == -14 and "line 2" in str(err.value)
    assert e.rule_count == 0  # all or nothing
    with pytest.raises(pm.ParseError):
        pm.check_rules("alert {")
    assert pm.check_rules(RULES) == 2
    assert pm.AlertEngine.check_rules(RULES) == 2
    e.load_rules(RULES)
    with pytest.raises(pm.AlreadyExistsError):
        e.load_rules(RULES)
    with pytest.raises(TypeError):
        e.load_rules(b"alert X { expr: up }")


def test_rule_management_and_bad_inputs(setup):
    reg, q, e = setup
    e.load_rules(RULES)
    q.set(20)
    e.tick(T0)
    e.enable_rule("QueueWarm", False)
    assert [a.rule for a in e.active()] == ["QueueHigh"]
    e.enable_rule("QueueWarm")
    e.remove_rule("QueueHigh")
    assert e.rule_count == 1
    with pytest.raises(pm.NotFoundError):
        e.remove_rule("QueueHigh")
    with pytest.raises(pm.NotFoundError):
        e.enable_rule("Nope")
    with pytest.raises(pm.OutOfRangeError):
        e.tick(T0 - 100)  # earlier than the last evaluation
    with pytest.raises(TypeError):
        e.tick("now")
    with pytest.raises(TypeError):
        e.tick(math.nan)
    with pytest.raises(ValueError):
        e.stat("nope")
    with pytest.raises(pm.OutOfRangeError):
        pm.AlertEngine(reg, interval=0)
    with pytest.raises(pm.AlreadyExistsError):
        pm.AlertEngine(reg)  # one engine with metrics per registry
    pm.AlertEngine(reg, metrics=False).close()


def test_dispatch_and_evaluation_threads(reg):
    q = pm.Gauge("depth", "D.", registry=reg)
    q.set(1)
    e = pm.AlertEngine(reg, interval=0.01)
    e.load_rules("alert Up {\n  expr: depth > 0\n}\n")
    got = []
    e.add_notifier("py", got.append)
    with pytest.raises(pm.StateError):
        e.deliver()  # the dispatch thread delivers
    e.start()
    with pytest.raises(pm.StateError):
        e.start()
    assert poll(lambda: got)
    e.stop()
    assert got[0].rule == "Up" and got[0].state == "firing"
    with pytest.raises(pm.StateError):
        e.stop()
    reg.close()
    assert e.closed
    with pytest.raises(pm.ClosedError):
        e.tick()
    e.close()
