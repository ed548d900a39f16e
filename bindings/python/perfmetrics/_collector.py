"""Custom collectors in the style of prometheus_client: an object whose
collect() yields CounterMetricFamily / GaugeMetricFamily objects, run by the
library at every snapshot (on the thread taking it: a server thread too)."""

from typing import Iterable, List, Optional, Sequence, Tuple

from ._core import check, encode, ffi, in_callback, lib, report_callback_error, string_array


class _MetricFamily:
    _type = 0
    _suffix = ""

    def __init__(self, name: str, documentation: str, value: Optional[float] = None,
                 labels: Optional[Sequence[str]] = None, unit: str = ""):
        if not isinstance(name, str):
            raise TypeError("name must be str, not %s" % type(name).__name__)
        if self._suffix and name.endswith(self._suffix):
            name = name[: -len(self._suffix)]
        if value is not None and labels:
            raise ValueError("give either value (no labels) or labels, then add_metric()")
        self.name = name
        self.documentation = documentation
        self.unit = unit
        self.labels: Tuple[str, ...] = tuple(labels or ())
        self.samples: List[Tuple[Tuple[str, ...], float]] = []
        if value is not None:
            self.add_metric((), value)

    def add_metric(self, labels: Sequence[str], value: float) -> None:
        """Adds a sample with these label values (in the order of `labels`)."""
        labels = tuple(labels)
        if len(labels) != len(self.labels):
            raise ValueError("%s: expected %d label values, got %d"
                             % (self.name, len(self.labels), len(labels)))
        self.samples.append((labels, float(value)))


class CounterMetricFamily(_MetricFamily):
    """A counter family a collector emits (the name may end in "_total")."""

    _type = 1
    _suffix = "_total"


class GaugeMetricFamily(_MetricFamily):
    """A gauge family a collector emits."""

    _type = 2


class Collector:
    """What Registry.register returns (see there)."""

    def __init__(self, name, collector):
        self.name = name
        self.collector = collector
        self._ptr = None
        self._handle = ffi.new_handle(self)


def _emit(emit, fam):
    if not isinstance(fam, _MetricFamily):
        raise TypeError("collect() must yield CounterMetricFamily or GaugeMetricFamily, not %s"
                        % type(fam).__name__)
    keep, names = string_array(fam.labels, "label name")
    check(lib.pm_emit_family(emit, fam._type, encode(fam.name, "name"),
                             encode(fam.documentation, "documentation"),
                             encode(fam.unit, "unit") if fam.unit else ffi.NULL,
                             names, len(keep)), "pm_emit_family", repr(fam.name))
    for values, value in fam.samples:
        keep, arr = string_array([str(v) for v in values], "label value")
        check(lib.pm_emit_sample(emit, arr, len(keep), value), "pm_emit_sample",
              "%s%r" % (fam.name, values))


@ffi.callback("pm_status_t(pm_emit_t *, void *)", error=-13)
def collect_trampoline(emit, user):
    c = None
    try:
        c = ffi.from_handle(user)
        with in_callback():
            families: Iterable = c.collector.collect()
            for fam in families:
                _emit(emit, fam)
        return 0
    except BaseException:
        # The library discards what this run emitted and counts the failure
        # in perfmetrics_collector_failures_total{collector}.
        report_callback_error("collector", getattr(c, "name", "?"))
        return -13
