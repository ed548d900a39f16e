"""Registries, snapshots, exposition and exporters."""

import math
import weakref
from typing import Callable, Dict, List, NamedTuple, Optional

from . import _core
from ._collector import Collector, collect_trampoline
from ._core import (AlreadyExistsError, Handle, NotFoundError, buffer_bytes, check, encode, ffi,
                    in_callback, lib, report_callback_error, _str)

FORMATS = {"prometheus": 1, "openmetrics": 2, "json": 3}
TYPES = {1: "counter", 2: "gauge", 3: "histogram"}


def _format_code(fmt):
    try:
        return FORMATS[fmt]
    except (KeyError, TypeError):
        raise ValueError("format must be one of %s, not %r" % (", ".join(FORMATS), fmt)) from None


def content_type(fmt: str = "prometheus") -> str:
    """The HTTP Content-Type of a format ("prometheus", "openmetrics", "json")."""
    return _str(lib.pm_format_content_type(_format_code(fmt)))


CONTENT_TYPE_LATEST = content_type("prometheus")


class Sample(NamedTuple):
    """One exposed sample, named as the Prometheus text format names it."""

    name: str
    labels: Dict[str, str]
    value: float


class MetricFamily(NamedTuple):
    """A family read from a snapshot: its samples in exposition order."""

    name: str
    documentation: str
    type: str
    unit: str
    samples: List[Sample]


def _le(bound):
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _read_family(f):
    name = _str(lib.pm_snap_family_name(f))
    ftype = TYPES.get(lib.pm_snap_family_type(f), "unknown")
    names = [_str(lib.pm_snap_family_label_name(f, i))
             for i in range(lib.pm_snap_family_label_count(f))]
    bounds = [lib.pm_snap_family_bucket_bound(f, i)
              for i in range(lib.pm_snap_family_bucket_count(f))] + [math.inf]
    samples = []
    for i in range(lib.pm_snap_family_series_count(f)):
        s = lib.pm_snap_family_series(f, i)
        labels = {n: _str(lib.pm_snap_series_label_value(s, j)) for j, n in enumerate(names)}
        if lib.pm_snap_series_is_overflow(s):
            labels = {"pm_overflow": "true"}
        if ftype == "counter":
            samples.append(Sample(name + "_total", labels, lib.pm_snap_series_value(s)))
        elif ftype == "gauge":
            samples.append(Sample(name, labels, lib.pm_snap_series_value(s)))
        else:
            for j, b in enumerate(bounds):
                samples.append(Sample(name + "_bucket", dict(labels, le=_le(b)),
                                      float(lib.pm_snap_series_bucket_cumulative(s, j))))
            samples.append(Sample(name + "_count", labels, float(lib.pm_snap_series_count(s))))
            samples.append(Sample(name + "_sum", labels, lib.pm_snap_series_sum(s)))
    return MetricFamily(name, _str(lib.pm_snap_family_help(f)), ftype,
                        _str(lib.pm_snap_family_unit(f)), samples)


class Snapshot(Handle):
    """An immutable view of a registry at one moment (a reference to the
    library's snapshot, released by close() or garbage collection)."""

    def __init__(self, ptr):
        self._own(ptr, lib.pm_snapshot_release)

    @property
    def time(self) -> float:
        """Wall-clock time of the snapshot, seconds since the Unix epoch."""
        return lib.pm_snapshot_time(self._ptr())

    def families(self) -> List[MetricFamily]:
        """Every family, the library's own perfmetrics_* ones included, by name."""
        s = self._ptr()
        return [_read_family(lib.pm_snapshot_family(s, i))
                for i in range(lib.pm_snapshot_family_count(s))]

    def get_sample_value(self, name: str, labels: Optional[Dict[str, str]] = None
                         ) -> Optional[float]:
        """The value of sample `name` with exactly these labels, or None
        (as prometheus_client's CollectorRegistry.get_sample_value)."""
        labels = labels or {}
        for fam in self.families():
            for s in fam.samples:
                if s.name == name and s.labels == labels:
                    return s.value
        return None

    def quantile(self, name: str, q: float, labels: Optional[Dict[str, str]] = None
                 ) -> Optional[float]:
        """Quantile q (0..1) of histogram family `name`'s series with these
        labels, within 1/129 relative error inside the family's range; None
        when there is no such series or it has no observations."""
        q = _float(q, "q")
        labels = labels or {}
        s = self._ptr()
        for i in range(lib.pm_snapshot_family_count(s)):
            f = lib.pm_snapshot_family(s, i)
            if _str(lib.pm_snap_family_name(f)) != name:
                continue
            names = [_str(lib.pm_snap_family_label_name(f, j))
                     for j in range(lib.pm_snap_family_label_count(f))]
            for j in range(lib.pm_snap_family_series_count(f)):
                series = lib.pm_snap_family_series(f, j)
                values = {n: _str(lib.pm_snap_series_label_value(series, k))
                          for k, n in enumerate(names)}
                if values == labels:
                    out = ffi.new("double *")
                    st = lib.pm_snap_series_quantile(series, q, out)
                    if st == -4:  # PM_ENOENT: no observations
                        return None
                    check(st, "pm_snap_series_quantile", "%s q=%r" % (name, q))
                    return out[0]
        return None

    def format(self, fmt: str = "prometheus") -> bytes:
        """The snapshot as "prometheus" text, "openmetrics" text or "json"."""
        code = _format_code(fmt)
        s = self._ptr()
        return buffer_bytes(lambda buf: lib.pm_format(s, code, buf), "pm_format")


class Exporter:
    """A Python function that receives snapshots (see Registry.add_exporter).
    .calls and .failures count its runs and the failed ones."""

    def __init__(self, state, name, fn):
        self._state = state
        self.name = name
        self.fn = fn
        self.calls = 0
        self.failures = 0
        self._ptr = None
        self._handle = ffi.new_handle(self)

    def remove(self) -> None:
        """Unregisters; waits for a call in progress on another thread. After
        it returns, fn is never called again. Removing twice does nothing."""
        self._state.remove_exporter(self)


@ffi.callback("pm_status_t(const pm_snapshot_t *, void *)", error=-13)
def _export_trampoline(snap, user):
    # Runs on whatever thread exports (a library thread included): cffi holds
    # the GIL for the call. Nothing may propagate into C.
    exp = None
    try:
        exp = ffi.from_handle(user)
        exp.calls += 1
        with in_callback():
            ok = exp.fn(Snapshot(lib.pm_snapshot_ref(ffi.cast("pm_snapshot_t *", snap))))
        if ok is False:
            exp.failures += 1
            return -13
        return 0
    except BaseException:
        if exp is not None:
            exp.failures += 1
        report_callback_error("exporter", getattr(exp, "name", "?"))
        return -13


class _RegistryState:
    """What a registry's owner needs at free and at exit, kept apart from the
    Registry object so that the finalizer does not keep that object alive."""

    def __init__(self):
        self.owner = None
        self.metrics = weakref.WeakSet()  # wrappers whose handles die with the registry
        self.exporters = {}  # name -> Exporter (keeps each cffi handle alive)
        self.callbacks = []  # callback gauges' objects, for the same reason
        self.collectors = {}  # id(collector object) -> Collector

    def free(self, ptr):
        lib.pm_registry_free(ptr)
        for m in list(self.metrics):
            m._invalidate()
        for e in self.exporters.values():
            e._ptr = None
        self.exporters.clear()
        self.callbacks.clear()
        self.collectors.clear()

    def stop_at_exit(self, owner):
        # Export threads and Python exporters must be gone before Python
        # finalizes: a final export runs now, while Python still works.
        lib.pm_export_stop(owner.ptr, 1)
        for e in list(self.exporters.values()):
            lib.pm_exporter_remove(e._ptr)
            e._ptr = None
        self.exporters.clear()
        for c in list(self.collectors.values()):
            lib.pm_collector_remove(c._ptr)
        self.collectors.clear()

    def remove_exporter(self, exp):
        with self.owner.lock:
            if exp._ptr is None or not self.owner.alive():
                return
            check(lib.pm_exporter_remove(exp._ptr), "pm_exporter_remove")
            exp._ptr = None
            self.exporters.pop(exp.name, None)


class Registry(Handle):
    """A set of metric families, independent of every other registry.

    stripes: cells per counter series (None: the library's default, from the
    CPU count); self_metrics: include the library's perfmetrics_* families.
    close() (or `with`) frees it; every metric, exporter, server, tracer or
    engine using it is closed with it."""

    def __init__(self, stripes: Optional[int] = None, self_metrics: bool = True):
        po = ffi.new("pm_registry_opts_t **")
        check(lib.pm_registry_opts_new(po), "pm_registry_opts_new")
        opts = po[0]
        try:
            if stripes is not None:
                check(lib.pm_registry_opts_set_stripes(opts, _int(stripes, "stripes")),
                      "pm_registry_opts_set_stripes")
            check(lib.pm_registry_opts_set_self_metrics(opts, 1 if self_metrics else 0),
                  "pm_registry_opts_set_self_metrics")
            out = ffi.new("pm_registry_t **")
            check(lib.pm_registry_new(opts, out), "pm_registry_new")
        finally:
            lib.pm_registry_opts_free(opts)
        self._adopt(out[0], True)

    def _adopt(self, ptr, owned):
        self._state = st = _RegistryState()
        st.owner = self._own(ptr, st.free if owned else None)
        _core.track_threads(st.owner, "registry", st.stop_at_exit)

    def snapshot(self) -> Snapshot:
        """Takes a snapshot (runs collectors and callback gauges)."""
        out = ffi.new("pm_snapshot_t **")
        check(lib.pm_snapshot_new(self._ptr(), out), "pm_snapshot_new")
        return Snapshot(out[0])

    def get_sample_value(self, name: str, labels: Optional[Dict[str, str]] = None
                         ) -> Optional[float]:
        """The current value of one sample (see Snapshot.get_sample_value)."""
        with self.snapshot() as s:
            return s.get_sample_value(name, labels)

    def collect(self) -> List[MetricFamily]:
        """Every family of a fresh snapshot."""
        with self.snapshot() as s:
            return s.families()

    def generate(self, fmt: str = "prometheus") -> bytes:
        """A fresh snapshot in format fmt ("prometheus", "openmetrics", "json")."""
        with self.snapshot() as s:
            return s.format(fmt)

    def enable_process_collector(self) -> None:
        """Adds the standard process_* families (CPU, memory, fds, threads)."""
        check(lib.pm_process_collector_enable(self._ptr()), "pm_process_collector_enable")

    # ------------------------------------------------------------ collectors

    def register(self, collector: object, name: Optional[str] = None) -> None:
        """Registers a custom collector, as prometheus_client's
        registry.register: an object whose collect() returns or yields
        CounterMetricFamily and GaugeMetricFamily objects. The library calls
        it at every snapshot, on the thread taking it (a server thread
        included). If collect() raises, what it emitted in that run is
        discarded, the failure is counted in
        perfmetrics_collector_failures_total{collector=name} and logged
        (perfmetrics.callback_errors()). name defaults to the class name."""
        if not callable(getattr(collector, "collect", None)):
            raise TypeError("a collector needs a collect() method")
        if id(collector) in self._state.collectors:
            raise AlreadyExistsError("collector already registered", status=-3)
        name = type(collector).__name__ if name is None else name
        bname = encode(name, "name")
        c = Collector(name, collector)
        out = ffi.new("pm_collector_t **")
        check(lib.pm_collector_add(self._ptr(), bname, collect_trampoline, c._handle, ffi.NULL,
                                   out), "pm_collector_add", repr(name))
        c._ptr = out[0]
        self._state.collectors[id(collector)] = c

    def unregister(self, collector: object) -> None:
        """Removes a collector registered with register(); after it returns,
        collect() is never called again. NotFoundError if it is not there."""
        self._ptr()  # ClosedError once the registry is closed
        c = self._state.collectors.get(id(collector))
        if c is None:
            raise NotFoundError("collector not registered", status=-4)
        check(lib.pm_collector_remove(c._ptr), "pm_collector_remove")
        del self._state.collectors[id(collector)]

    # ------------------------------------------------------------ exporters

    def add_exporter(self, name: str, fn: Callable[[Snapshot], Optional[bool]]) -> Exporter:
        """Registers fn(snapshot), called by export_now() and by the export
        thread (start_exporting), on that thread, never twice at once. If fn
        raises or returns False the run counts as a failure in
        perfmetrics_exporter_failures_total{exporter=name}; an exception is
        logged and counted (perfmetrics.callback_errors()), never re-raised.
        The snapshot stays valid after the call (it holds a reference)."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        bname = encode(name, "name")
        ptr = self._ptr()
        exp = Exporter(self._state, name, fn)
        out = ffi.new("pm_exporter_t **")
        check(lib.pm_exporter_add(ptr, bname, _export_trampoline, exp._handle, ffi.NULL, out),
              "pm_exporter_add", repr(name))
        exp._ptr = out[0]
        self._state.exporters[name] = exp
        return exp

    def export_now(self) -> None:
        """Takes one snapshot and passes it to every exporter, on this thread."""
        check(lib.pm_export_now(self._ptr()), "pm_export_now")

    def start_exporting(self, interval: float = 10.0) -> None:
        """Starts the library's export thread: an export every `interval` s.
        It is stopped (with a final export) at interpreter exit at the latest."""
        ptr = self._ptr()
        check(lib.pm_export_set_interval(ptr, _float(interval, "interval")),
              "pm_export_set_interval")
        check(lib.pm_export_start(ptr), "pm_export_start")

    def stop_exporting(self, final: bool = True) -> None:
        """Stops the export thread (after a last export when final is true)."""
        check(lib.pm_export_stop(self._ptr(), 1 if final else 0), "pm_export_stop")


class _DefaultRegistry(Registry):
    """The library's process-wide registry (pm_registry_default), shared with
    C code in the same process; it lives until the process exits."""

    def __init__(self):
        ptr = lib.pm_registry_default()
        if ptr == ffi.NULL:
            raise _core.make_error(-2, "pm_registry_default")
        self._adopt(ptr, False)

    def close(self) -> None:
        raise ValueError("the default registry lives until the process exits; "
                         "use perfmetrics.Registry() for one that can be closed")

    def __exit__(self, *exc):
        pass


REGISTRY = _DefaultRegistry()


def generate_latest(registry: Registry = REGISTRY, fmt: str = "prometheus") -> bytes:
    """The registry's metrics as Prometheus text (fmt: also "openmetrics",
    "json"), from one fresh snapshot."""
    if not isinstance(registry, Registry):
        raise TypeError("registry must be a perfmetrics.Registry")
    return registry.generate(fmt)


def _int(v, what):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError("%s must be int, not %s" % (what, type(v).__name__))
    if v < 0:
        raise ValueError("%s must be >= 0" % what)
    return v


def _float(v, what):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError("%s must be a number, not %s" % (what, type(v).__name__))
    return float(v)


__all__ = ["Collector", "Registry", "REGISTRY", "Snapshot", "Exporter", "MetricFamily", "Sample",
           "generate_latest", "content_type", "CONTENT_TYPE_LATEST"]
