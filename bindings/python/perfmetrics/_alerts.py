"""The alert engine: rules from text, evaluation (host ticks or a library
thread), notifiers written in Python, active alerts and the history."""

import math
import time
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Tuple

from . import _core
from ._core import (Handle, buffer_bytes, check, encode, ffi, in_callback, lib, parse_error,
                    report_callback_error, _str)
from ._registry import REGISTRY, Registry

SEVERITIES = {"info": 1, "warning": 2, "critical": 3}
STATES = {0: "inactive", 1: "pending", 2: "firing", 3: "resolved"}
ALERT_STATS = {"evaluations": 1, "rule_failures": 2, "transitions": 3, "notify_queued": 4,
               "notify_sent": 5, "notify_failed": 6, "notify_dropped": 7,
               "series_windowed": 8, "series_refused": 9, "instances": 10,
               "instances_refused": 11, "window_bytes": 12, "last_eval_ns": 13}


class AlertEvent(NamedTuple):
    """One alert instance at one moment (a transition, a notification or an
    active instance). Times are Unix seconds; NaN when not applicable."""

    rule: str
    state: str
    prev_state: str
    severity: str
    value: float
    time: float
    active_at: float
    starts_at: float
    ends_at: float
    fingerprint: int
    labels: Dict[str, str]
    annotations: Dict[str, str]
    line: str  # the library's one-line log form


def _read_event(ev):
    labels = {_str(lib.pm_alert_event_label_name(ev, i)): _str(lib.pm_alert_event_label_value(ev, i))
              for i in range(lib.pm_alert_event_label_count(ev))}
    ann = {_str(lib.pm_alert_event_annotation_name(ev, i)):
           _str(lib.pm_alert_event_annotation_value(ev, i))
           for i in range(lib.pm_alert_event_annotation_count(ev))}
    line = buffer_bytes(lambda buf: lib.pm_alert_event_format_line(ev, buf),
                        "pm_alert_event_format_line").decode("utf-8", "replace").rstrip("\n")
    return AlertEvent(_str(lib.pm_alert_event_rule(ev)),
                      STATES.get(lib.pm_alert_event_state(ev), "unknown"),
                      STATES.get(lib.pm_alert_event_prev_state(ev), "unknown"),
                      _str(lib.pm_severity_name(lib.pm_alert_event_severity(ev))),
                      lib.pm_alert_event_value(ev), lib.pm_alert_event_time(ev),
                      lib.pm_alert_event_active_at(ev), lib.pm_alert_event_starts_at(ev),
                      lib.pm_alert_event_ends_at(ev), lib.pm_alert_event_fingerprint(ev),
                      labels, ann, line)


class _Notifier:
    def __init__(self, name, fn):
        self.name = name
        self.fn = fn
        self._handle = ffi.new_handle(self)


@ffi.callback("int(const pm_alert_event_t *, void *)", error=1)
def _notify_trampoline(ev, user):
    n = None
    try:
        n = ffi.from_handle(user)
        with in_callback():
            return 1 if n.fn(_read_event(ev)) is False else 0
    except BaseException:
        report_callback_error("alert notifier", getattr(n, "name", "?"))
        return 1


def check_rules(text: str) -> int:
    """Parses a rule file without loading it; returns the number of rules.
    ParseError (with .line, .column, .expected) when it is malformed."""
    b = encode(text, "text")
    n = ffi.new("size_t *")
    perr = ffi.new("pm_parse_error_t **")
    st = lib.pm_alert_rules_check(b, len(b), n, perr)
    if st != 0:
        raise parse_error(st, "pm_alert_rules_check", perr)
    return n[0]


def _unix_ns(now):
    if now is None:
        return time.time_ns()
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
        raise TypeError("now must be finite Unix seconds (int or float), not %r" % (now,))
    return int(round(now * 1e9))


class _EngineState:
    def __init__(self):
        self.notifiers = {}  # name -> _Notifier (keeps each cffi handle alive)

    def free(self, ptr):
        lib.pm_alert_engine_free(ptr)
        self.notifiers.clear()

    def stop_at_exit(self, owner):
        # The evaluation thread stops; Python notifiers are removed (each
        # removal waits for a call in progress, with the GIL released by cffi).
        lib.pm_alert_engine_stop(owner.ptr)
        for name in list(self.notifiers):
            lib.pm_alert_engine_remove_notifier(owner.ptr, name.encode())
        self.notifiers.clear()


class AlertEngine(Handle):
    """An alert-rule engine over one registry (the rule grammar is in the
    library's doc/alerting.md). interval: seconds between evaluations of the
    thread started by start(), and the expected spacing of tick() calls.
    dispatch_thread=False: notifications are delivered by deliver() on the
    calling thread (deterministic tests)."""

    def __init__(self, registry: Registry = REGISTRY, interval: float = 15.0,
                 dispatch_thread: bool = True, metrics: bool = True):
        po = ffi.new("pm_alert_engine_opts_t **")
        check(lib.pm_alert_engine_opts_new(po), "pm_alert_engine_opts_new")
        opts = po[0]
        try:
            check(lib.pm_alert_engine_opts_set_interval(opts, float(interval)),
                  "pm_alert_engine_opts_set_interval", repr(interval))
            check(lib.pm_alert_engine_opts_set_dispatch_thread(opts, 1 if dispatch_thread else 0),
                  "pm_alert_engine_opts_set_dispatch_thread")
            check(lib.pm_alert_engine_opts_set_metrics(opts, 1 if metrics else 0),
                  "pm_alert_engine_opts_set_metrics")
            out = ffi.new("pm_alert_engine_t **")
            check(lib.pm_alert_engine_new(registry._ptr(), opts, out), "pm_alert_engine_new")
        finally:
            lib.pm_alert_engine_opts_free(opts)
        self._registry = registry
        self._state = st = _EngineState()
        owner = self._own(out[0], st.free, reads=(registry._owner,))
        _core.track_threads(owner, "engine", st.stop_at_exit)

    check_rules = staticmethod(check_rules)

    def load_rules(self, text: str) -> int:
        """Loads every rule of a rule file, all or nothing; returns how many."""
        n = check_rules(text)
        b = encode(text, "text")
        perr = ffi.new("pm_parse_error_t **")
        st = lib.pm_alert_engine_load_string(self._ptr(), b, len(b), perr)
        if st != 0:
            raise parse_error(st, "pm_alert_engine_load_string", perr)
        return n

    def remove_rule(self, name: str) -> None:
        """Removes a rule; its firing instances get a resolved event."""
        check(lib.pm_alert_engine_remove_rule(self._ptr(), encode(name, "name")),
              "pm_alert_engine_remove_rule", repr(name))

    def enable_rule(self, name: str, enabled: bool = True) -> None:
        """Enables or disables a rule (disabling resolves its instances)."""
        check(lib.pm_alert_engine_enable_rule(self._ptr(), encode(name, "name"),
                                              1 if enabled else 0),
              "pm_alert_engine_enable_rule", repr(name))

    @property
    def rule_count(self) -> int:
        """Number of rules, enabled or not."""
        return lib.pm_alert_engine_rule_count(self._ptr())

    def tick(self, now: Optional[float] = None) -> None:
        """Evaluates every enabled rule once at `now` (Unix seconds; default
        the current time). Tests drive the engine with a fake clock."""
        check(lib.pm_alert_engine_tick(self._ptr(), _unix_ns(now)), "pm_alert_engine_tick")

    def start(self) -> None:
        """Starts the evaluation thread (stopped at interpreter exit at the latest)."""
        check(lib.pm_alert_engine_start(self._ptr()), "pm_alert_engine_start")

    def stop(self) -> None:
        """Stops the evaluation thread (StateError if it is not running)."""
        check(lib.pm_alert_engine_stop(self._ptr()), "pm_alert_engine_stop")

    def deliver(self, max: int = 0) -> int:
        """Delivers queued notifications on this thread (engines created with
        dispatch_thread=False); returns how many events were handed on."""
        n = ffi.new("size_t *")
        check(lib.pm_alert_engine_deliver(self._ptr(), max, n), "pm_alert_engine_deliver")
        return n[0]

    def add_notifier(self, name: str, fn: Callable[[AlertEvent], Optional[bool]],
                     min_severity: str = "info", rules: Iterable[str] = (),
                     matchers: Iterable[Tuple[str, str, str]] = (),
                     send_resolved: bool = True) -> None:
        """Registers fn(event) for events passing the filter: severity >=
        min_severity, rule in `rules` (if any), every (label, op, value)
        matcher (op "=", "!=", "=~", "!~"). It runs on the engine's dispatch
        thread (or in deliver()); an exception (or False) counts as a failed
        notification and is logged and counted, never re-raised."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        pf = ffi.new("pm_alert_filter_t **")
        check(lib.pm_alert_filter_new(pf), "pm_alert_filter_new")
        f = pf[0]
        try:
            sev = SEVERITIES.get(min_severity)
            if sev is None:
                raise ValueError("min_severity must be one of %s" % ", ".join(SEVERITIES))
            check(lib.pm_alert_filter_set_min_severity(f, sev), "pm_alert_filter_set_min_severity")
            for r in rules:
                check(lib.pm_alert_filter_add_rule(f, encode(r, "rule")),
                      "pm_alert_filter_add_rule", repr(r))
            for label, op, value in matchers:
                check(lib.pm_alert_filter_add_matcher(f, encode(label, "label"), encode(op, "op"),
                                                      encode(value, "value")),
                      "pm_alert_filter_add_matcher", repr((label, op, value)))
            check(lib.pm_alert_filter_set_send_resolved(f, 1 if send_resolved else 0),
                  "pm_alert_filter_set_send_resolved")
            n = _Notifier(name, fn)
            check(lib.pm_alert_engine_add_notifier(self._ptr(), encode(name, "name"), f,
                                                   _notify_trampoline, n._handle, ffi.NULL),
                  "pm_alert_engine_add_notifier", repr(name))
            self._state.notifiers[name] = n
        finally:
            lib.pm_alert_filter_free(f)

    def remove_notifier(self, name: str) -> None:
        """Removes a notifier; waits for a call in progress to return."""
        check(lib.pm_alert_engine_remove_notifier(self._ptr(), encode(name, "name")),
              "pm_alert_engine_remove_notifier", repr(name))
        self._state.notifiers.pop(name, None)

    def _list(self, fn, what):
        out = ffi.new("pm_alert_list_t **")
        check(fn(self._ptr(), out), what)
        try:
            return [_read_event(lib.pm_alert_list_get(out[0], i))
                    for i in range(lib.pm_alert_list_count(out[0]))]
        finally:
            lib.pm_alert_list_free(out[0])

    def active(self) -> List[AlertEvent]:
        """The pending and firing instances, by rule name then fingerprint."""
        return self._list(lib.pm_alert_engine_active, "pm_alert_engine_active")

    def history(self) -> List[AlertEvent]:
        """The transitions kept in the history ring, oldest first."""
        return self._list(lib.pm_alert_engine_history, "pm_alert_engine_history")

    @property
    def health(self) -> float:
        """Health score 0..100 from the active instances."""
        return lib.pm_alert_engine_health(self._ptr())

    def stat(self, name: str) -> int:
        """One engine counter (see ALERT_STATS)."""
        if name not in ALERT_STATS:
            raise ValueError("stat must be one of %s" % ", ".join(ALERT_STATS))
        return lib.pm_alert_engine_stat(self._ptr(), ALERT_STATS[name])


__all__ = ["AlertEngine", "AlertEvent", "check_rules"]
