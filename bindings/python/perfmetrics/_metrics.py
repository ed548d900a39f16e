"""Counter, Gauge and Histogram in the style of prometheus_client.

Hot paths (inc, set, observe, time) are one direct cffi call on a handle
resolved once: no argument conversion layer and no Python-level lock (the C
library records lock-free). A closed metric, or the parent of a labeled
family, holds None instead of a handle, so the cffi call raises TypeError;
the `except TypeError` (free in Python 3.11 until it fires) then says why.
"""

import functools
import math
import time
from typing import Any, Callable, Iterable, Optional, Sequence, Tuple, TypeVar

from . import _core
from ._core import (ClosedError, check, encode, ffi, in_callback, lib, report_callback_error,
                    string_array)
from ._registry import REGISTRY, Registry

F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M", bound="_Metric")

_counter_add = lib.pm_counter_add
_gauge_set = lib.pm_gauge_set
_gauge_add = lib.pm_gauge_add
_observe = lib.pm_histogram_observe
_timer_start = lib.pm_timer_start
_timer_stop = lib.pm_timer_stop

DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# labels() caches at most this many children per family beyond max_series:
# past the library's cardinality limit every new tuple is the overflow series,
# and the cache must not grow without bound either.
_CACHE_SLACK = 1024


def _full_name(name, namespace, subsystem, unit, suffix):
    if not isinstance(name, str):
        raise TypeError("name must be str, not %s" % type(name).__name__)
    full = "_".join(p for p in (namespace, subsystem, name) if p)
    if suffix and full.endswith(suffix):  # prometheus_client accepts "x_total" for Counter("x")
        full = full[: -len(suffix)]
    if unit and not full.endswith("_" + unit):
        full += "_" + unit
    return full


class _Metric:
    """A metric family; without label names it is also its only series."""

    _type = 0
    _suffix = ""
    _get = None  # pm_*_get
    _release = None  # pm_*_release
    # Slots: the hot paths read self._h through a slot, as fast for a child
    # made by labels() as for a family (an instance dict filled after
    # creation would not get CPython's fast attribute path).
    __slots__ = ("_name", "_documentation", "_labelnames", "_registry", "_reg_owner", "_h",
                 "_children", "_labelvalues", "_max_cache", "_fam", "_parent",
                 "_series_owner", "_finalizer", "__weakref__")
    _SHARED = ("_name", "_documentation", "_labelnames", "_registry", "_reg_owner",
               "_max_cache", "_fam")  # what a child takes from its family

    def __init__(self, name: str, documentation: str, labelnames: Iterable[str] = (),
                 namespace: str = "", subsystem: str = "", unit: str = "",
                 registry: Optional[Registry] = REGISTRY, *, max_series: Optional[int] = None,
                 ttl: Optional[float] = None, **kw: Any):
        if registry is None:
            raise ValueError("perfmetrics metrics live in a registry: registry=None is not "
                             "supported (use a perfmetrics.Registry() of their own)")
        if not isinstance(registry, Registry):
            raise TypeError("registry must be a perfmetrics.Registry")
        if isinstance(labelnames, str):
            raise TypeError("labelnames must be a sequence of str, not a str")
        self._name = _full_name(name, namespace, subsystem, unit, self._suffix)
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._registry = registry
        self._reg_owner = registry._owner
        self._h = None
        self._children = None
        self._labelvalues = ()
        self._max_cache = None
        fam_opts = ffi.new("pm_family_opts_t **")
        check(lib.pm_family_opts_new(fam_opts), "pm_family_opts_new")
        opts = fam_opts[0]
        try:
            if unit:
                check(lib.pm_family_opts_set_unit(opts, encode(unit, "unit")),
                      "pm_family_opts_set_unit", repr(unit))
            if self._labelnames:
                keep, arr = string_array(self._labelnames, "label name")
                check(lib.pm_family_opts_set_labels(opts, arr, len(keep)),
                      "pm_family_opts_set_labels", repr(self._labelnames))
            if max_series is not None:
                check(lib.pm_family_opts_set_max_series(opts, max_series),
                      "pm_family_opts_set_max_series")
                self._max_cache = max_series + _CACHE_SLACK
            if ttl is not None:
                check(lib.pm_family_opts_set_ttl(opts, float(ttl)), "pm_family_opts_set_ttl")
                # A series may expire under a held handle, which then records
                # into a detached series: with a TTL, labels() looks the
                # series up each time and caches nothing.
                self._max_cache = 0 if float(ttl) > 0 else self._max_cache
            self._set_opts(opts, **kw)
            out = ffi.new("pm_family_t **")
            check(lib.pm_family_new(registry._ptr(), self._type, encode(self._name, "name"),
                                    encode(documentation, "documentation"), opts, out),
                  "pm_family_new", repr(self._name))
            self._fam = out[0]
        finally:
            lib.pm_family_opts_free(opts)
        registry._state.metrics.add(self)
        if self._labelnames:
            self._children = {}
            if self._max_cache is None:
                self._max_cache = 10000 + _CACHE_SLACK
        else:
            self._series_owner = self._bind(())

    def _set_opts(self, opts, **kw):
        if kw:
            raise TypeError("unexpected keyword argument %r" % next(iter(kw)))

    def _bind(self, values):
        """Looks up the series for these label values (str) and makes self its
        handle; returns its owner (which releases the reference)."""
        keep, arr = string_array(values, "label value")
        out = ffi.new(type(self)._ctype)
        check(type(self)._get(self._fam, arr, len(values), out),
              type(self)._get_name, "%s%r" % (self._name, values))
        self._h = out[0]
        owner = _core._Owner(out[0], type(self)._release, self._reg_owner)
        self._finalizer = _core.attach(self, owner)
        return owner

    # ------------------------------------------------------------ labels

    def labels(self: M, *labelvalues: Any, **labelkwargs: Any) -> M:
        """The child series for these label values (positional, in the order
        of labelnames, or by name). Children are cached: bind them once and
        keep them on hot paths. In a family with a ttl nothing is cached and
        a child should not be kept (its series may expire under it)."""
        if labelkwargs:
            if labelvalues:
                raise ValueError("labels(): give label values by position or by name, not both")
            try:
                labelvalues = tuple(labelkwargs[n] for n in self._labelnames)
            except KeyError:
                labelvalues = None
            if labelvalues is None or len(labelkwargs) != len(self._labelnames):
                raise ValueError("labels(): expected the names %r, got %r"
                                 % (self._labelnames, tuple(labelkwargs)))
        try:
            return self._children[labelvalues]
        except KeyError:
            return self._new_child(labelvalues)
        except TypeError:
            if self._children is None:
                self._check_open()
                raise ValueError("%s has no label names (or is a child already): "
                                 "labels() does not apply" % self._name) from None
            raise

    def _new_child(self, raw):
        self._check_open()
        if len(raw) != len(self._labelnames):
            raise ValueError("%s: expected %d label values %r, got %d"
                             % (self._name, len(self._labelnames), self._labelnames, len(raw)))
        values = tuple(str(v) for v in raw)
        child = self._children.get(values) if self._max_cache else None
        if child is None:
            child = object.__new__(type(self))
            for attr in _Metric._SHARED:
                setattr(child, attr, getattr(self, attr))
            child._children = None
            child._parent = self
            child._labelvalues = values
            child._series_owner = child._bind(values)
            if not self._max_cache:
                return child
            child = self._children.setdefault(values, child)
        if len(self._children) < self._max_cache:
            self._children[raw] = child
        return child

    def remove(self, *labelvalues: Any) -> None:
        """Removes one child series (it leaves the exposition; a held child
        keeps working but records into a detached series)."""
        self._check_open()
        if self._children is None:
            raise ValueError("%s has no label names: remove() does not apply" % self._name)
        values = tuple(str(v) for v in labelvalues)
        keep, arr = string_array(values, "label value")
        check(lib.pm_family_remove(self._fam, arr, len(values)), "pm_family_remove",
              "%s%r" % (self._name, values))
        for k in [k for k, c in self._children.items() if c._labelvalues == values]:
            del self._children[k]

    def clear(self) -> None:
        """Removes every child series."""
        self._check_open()
        if self._children is None:
            raise ValueError("%s has no label names: clear() does not apply" % self._name)
        check(lib.pm_family_clear(self._fam), "pm_family_clear", self._name)
        self._children.clear()

    def series_count(self) -> int:
        """Live series of the family (the overflow series included)."""
        self._check_open()
        return lib.pm_family_series_count(self._fam)

    # ------------------------------------------------------------ state

    @property
    def name(self) -> str:
        """The family name as registered (without a counter's "_total")."""
        return self._name

    @property
    def labelnames(self) -> Tuple[str, ...]:
        """The family's label names."""
        return self._labelnames

    @property
    def labelvalues(self) -> Tuple[str, ...]:
        """A child's label values; () for a family."""
        return self._labelvalues

    def _check_open(self):
        if not self._reg_owner.alive():
            raise ClosedError("%s: its registry is closed" % self._name, status=-11)

    def _invalidate(self):
        # The registry was freed: every handle of the family went with it.
        self._h = None
        for c in (self._children or {}).values():
            c._h = None
        if self._children:
            self._children.clear()

    def _fail(self, value, what):
        """Why the hot path's cffi call raised TypeError: raises the right error."""
        self._check_open()
        if self._children is not None:
            raise ValueError("%s has label names %r: call labels(...) first"
                             % (self._name, self._labelnames))
        raise TypeError("%s: %s must be a real number, not %s"
                        % (self._name, what, type(value).__name__))

    def __repr__(self):
        lv = ("{%s}" % ", ".join("%s=%r" % kv for kv in zip(self._labelnames, self._labelvalues))
              if self._labelvalues else "")
        return "<%s %s%s>" % (type(self).__name__, self._name, lv)


class Counter(_Metric):
    """A counter: inc(amount) with amount >= 0. The name may end in "_total"
    (it is dropped, and added again in the exposition)."""

    __slots__ = ()
    _type = 1
    _suffix = "_total"
    _ctype = "pm_counter_t **"
    _get = lib.pm_counter_get
    _get_name = "pm_counter_get"
    _release = lib.pm_counter_release

    def inc(self, amount: float = 1) -> None:
        """Adds amount (finite, >= 0; ValueError otherwise, as prometheus_client)."""
        if amount >= 0:
            try:
                _counter_add(self._h, amount)
                return
            except TypeError:
                pass
            self._fail(amount, "amount")
        raise ValueError("%s: counters can only be incremented by non-negative amounts, not %r"
                         % (self._name, amount))

    def get(self) -> float:
        """The current value (a read of the live series, not a snapshot)."""
        try:
            return lib.pm_counter_value(self._h)
        except TypeError:
            self._fail(None, "")

    def count_exceptions(self, exception: Any = Exception) -> "_ExceptionCounter":
        """Context manager and decorator: counts exceptions of type
        `exception` raised in the block (and lets them through)."""
        return _ExceptionCounter(self, exception)


class _ExceptionCounter:
    __slots__ = ("_metric", "_exception")

    def __init__(self, metric, exception):
        self._metric = metric
        self._exception = exception

    def __enter__(self):
        return self

    def __exit__(self, typ, value, tb):
        if typ is not None and issubclass(typ, self._exception):
            self._metric.inc()
        return False

    def __call__(self, f: F) -> F:
        @functools.wraps(f)
        def wrapped(*args, **kwargs):
            with self:
                return f(*args, **kwargs)
        return wrapped


class Gauge(_Metric):
    """A gauge: set, inc, dec, set_to_current_time, track_inprogress, time."""

    __slots__ = ()
    _type = 2
    _ctype = "pm_gauge_t **"
    _get = lib.pm_gauge_get
    _get_name = "pm_gauge_get"
    _release = lib.pm_gauge_release

    def set(self, value: float) -> None:
        """Sets the value (any float, NaN and infinities included)."""
        try:
            _gauge_set(self._h, value)
        except TypeError:
            self._fail(value, "value")

    def inc(self, amount: float = 1) -> None:
        """Adds amount (may be negative)."""
        try:
            _gauge_add(self._h, amount)
        except TypeError:
            self._fail(amount, "amount")

    def dec(self, amount: float = 1) -> None:
        """Subtracts amount."""
        try:
            _gauge_add(self._h, -amount)
        except TypeError:
            self._fail(amount, "amount")

    def set_to_current_time(self) -> None:
        """Sets the value to the current Unix time in seconds."""
        self.set(time.time())

    def get(self) -> float:
        """The current value."""
        try:
            return lib.pm_gauge_value(self._h)
        except TypeError:
            self._fail(None, "")

    def track_inprogress(self) -> "_InProgress":
        """Context manager and decorator: +1 while the block runs."""
        return _InProgress(self)

    def time(self) -> "_Timer":
        """Context manager and decorator: sets the gauge to the block's
        duration in seconds."""
        return _GaugeTimer(self)


class _InProgress:
    __slots__ = ("_metric",)

    def __init__(self, metric):
        self._metric = metric

    def __enter__(self):
        self._metric.inc()
        return self

    def __exit__(self, *exc):
        self._metric.dec()
        return False

    def __call__(self, f: F) -> F:
        metric = self._metric

        @functools.wraps(f)
        def wrapped(*args, **kwargs):
            metric.inc()
            try:
                return f(*args, **kwargs)
            finally:
                metric.dec()
        return wrapped


class _Timer:
    """Histogram.time() / Gauge.time(): a context manager and a decorator."""

    __slots__ = ("_metric", "_start")

    def __init__(self, metric):
        self._metric = metric

    def __call__(self, f: F) -> F:
        timer, metric = type(self), self._metric

        @functools.wraps(f)
        def wrapped(*args, **kwargs):
            with timer(metric):
                return f(*args, **kwargs)
        return wrapped


class _HistogramTimer(_Timer):
    __slots__ = ()

    def __enter__(self):
        self._start = _timer_start()
        return self

    def __exit__(self, typ, value, tb):
        try:
            _timer_stop(self._metric._h, self._start)
        except TypeError:
            self._metric._fail(None, "")


class _GaugeTimer(_Timer):
    __slots__ = ()

    def __enter__(self):
        self._start = time.perf_counter_ns()
        return self

    def __exit__(self, typ, value, tb):
        self._metric.set((time.perf_counter_ns() - self._start) / 1e9)


class Histogram(_Metric):
    """A histogram with exact counts per bucket bound (buckets=, default the
    Prometheus ones) and quantiles with <= 0.78% relative error inside
    range=(lowest, highest) (default (1e-9, 1e4))."""

    __slots__ = ()
    _type = 3
    _ctype = "pm_histogram_t **"
    _get = lib.pm_histogram_get
    _get_name = "pm_histogram_get"
    _release = lib.pm_histogram_release

    def _set_opts(self, opts, buckets: Sequence[float] = DEFAULT_BUCKETS,
                  range: Optional[Tuple[float, float]] = None):
        bounds = [float(b) for b in buckets]
        if bounds and math.isinf(bounds[-1]) and bounds[-1] > 0:
            bounds.pop()  # prometheus_client lists +Inf; the library implies it
        if list(buckets) != list(DEFAULT_BUCKETS):
            arr = ffi.new("double[]", bounds) if bounds else ffi.NULL
            check(lib.pm_family_opts_set_buckets(opts, arr, len(bounds)),
                  "pm_family_opts_set_buckets", repr(bounds))
        if range is not None:
            lo, hi = range
            check(lib.pm_family_opts_set_range(opts, float(lo), float(hi)),
                  "pm_family_opts_set_range", repr(range))

    def observe(self, amount: float) -> None:
        """Records one value (NaN is dropped and counted by the library)."""
        try:
            _observe(self._h, amount)
        except TypeError:
            self._fail(amount, "amount")

    def observe_many(self, amounts: Iterable[float]) -> None:
        """Records every value of an iterable (one attribute look-up in all)."""
        h = self._h
        if h is None:
            self._fail(None, "")
        f = _observe
        for v in amounts:
            f(h, v)

    def time(self) -> _Timer:
        """Context manager and decorator: observes the block's duration in
        seconds (the library's clock: TSC where the kernel vouches for it)."""
        return _HistogramTimer(self)


# ---------------------------------------------------------------- callback gauge

class _GaugeCallback:
    def __init__(self, name, fn):
        self.name = name
        self.fn = fn
        self._handle = ffi.new_handle(self)


@ffi.callback("double(void *)", error=math.nan)
def _gauge_trampoline(user):
    cb = None
    try:
        cb = ffi.from_handle(user)
        with in_callback():
            return float(cb.fn())
    except BaseException:
        report_callback_error("callback gauge", getattr(cb, "name", "?"))
        return math.nan


def gauge_function(name: str, documentation: str, fn: Callable[[], float],
                   registry: Registry = REGISTRY) -> None:
    """Registers a gauge without labels whose value is fn(), called at every
    snapshot on the thread taking it (a server thread included). fn must be
    thread-safe; if it raises, the sample is NaN and the error is logged and
    counted (perfmetrics.callback_errors()). It lives as long as the registry."""
    if not callable(fn):
        raise TypeError("fn must be callable")
    cb = _GaugeCallback(name, fn)
    check(lib.pm_gauge_callback_new(registry._ptr(), encode(name, "name"),
                                    encode(documentation, "documentation"),
                                    _gauge_trampoline, cb._handle),
          "pm_gauge_callback_new", repr(name))
    registry._state.callbacks.append(cb)  # its cffi handle lives as long as the registry


__all__ = ["Counter", "Gauge", "Histogram", "gauge_function", "DEFAULT_BUCKETS"]
