"""Spans: a tracer, spans as context managers and decorators, W3C trace
context, and span exporters written in Python."""

import functools
import threading
from contextvars import ContextVar
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, TypeVar, Union

from . import _core
from ._core import Handle, buffer_bytes, check, encode, ffi, in_callback, lib, report_callback_error, _str
from ._registry import Registry

F = TypeVar("F", bound=Callable[..., Any])

KINDS = {"internal": 1, "server": 2, "client": 3, "producer": 4, "consumer": 5}
_KIND_NAMES = {v: k for k, v in KINDS.items()}
STATUSES = {"unset": 0, "ok": 1, "error": 2}
_STATUS_NAMES = {v: k for k, v in STATUSES.items()}
SAMPLERS = {"always": 1, "never": 2, "ratio": 3, "parent_ratio": 4}
SPAN_FORMATS = {"jsonl": 1, "otlp_json": 2}
TRACER_STATS = {"started": 1, "sampled": 2, "ended": 3, "dropped": 4, "exported": 5,
                "attrs_dropped": 6, "events_dropped": 7, "export_failures": 8,
                "traces_completed": 9, "traces_forced": 10, "spans_detached": 11,
                "spans_unassembled": 12, "spans_other": 13}


def _choice(table, value, what):
    try:
        return table[value]
    except (KeyError, TypeError):
        raise ValueError("%s must be one of %s, not %r" % (what, ", ".join(table), value)) from None


class TraceContext(NamedTuple):
    """A W3C trace context: ids in lower-case hex."""

    trace_id: str
    span_id: str
    sampled: bool

    @property
    def traceparent(self) -> str:
        """The traceparent header value of this context."""
        return "00-%s-%s-%02x" % (self.trace_id, self.span_id, 1 if self.sampled else 0)


def _context_from_c(ctx):
    return TraceContext(bytes(ctx.trace_id).hex(), bytes(ctx.span_id).hex(),
                        bool(ctx.flags & 1))


def parse_traceparent(header: str) -> TraceContext:
    """Parses a traceparent header value; ParseError when it is malformed."""
    b = encode(header, "header")
    ctx = ffi.new("pm_trace_context_t *")
    check(lib.pm_traceparent_parse(b, len(b), ctx), "pm_traceparent_parse", repr(header))
    return _context_from_c(ctx)


# Which span is current is tracked per thread *and* per asyncio task: the C
# library's current span is per thread only, and tasks interleaving their
# `with span()` blocks on one thread would otherwise take each other's spans
# as parents and, worse, restore as current a span another task has ended
# (a dangling pointer in the library). So:
#   - the parent of a span started without one is the context's current span
#     (a ContextVar), or, when spans of other tasks are open on this thread,
#     the span that was current before any of them (a root if none);
#   - the library's current span is set to the span entered last that is still
#     open on this thread (or the one before them all), never to an ended one.
_current: "ContextVar[Optional[Span]]" = ContextVar("perfmetrics_current_span", default=None)
_threads = threading.local()  # .open: spans entered on this thread; .base: see _enter


def _open_spans():
    t = _threads
    if not hasattr(t, "open"):
        t.open = []
        t.base = ffi.NULL
    return t


def _context_of(ptr):
    ctx = ffi.new("pm_trace_context_t *")  # all zero: "a root span" if ptr is NULL
    if ptr != ffi.NULL:
        check(lib.pm_span_context(ptr, ctx), "pm_span_context")
    return ctx


def _implicit_parent():
    """The parent of a span started without an explicit one."""
    cur = _current.get()
    if cur is not None:
        if cur.closed:
            return _c_parent(cur.context)  # ended inside its block: its ids still parent
        ptr = cur._owner.ptr
        return ffi.NULL if lib.pm_span_current() == ptr else _context_of(ptr)
    t = _open_spans()
    return _context_of(t.base) if t.open else ffi.NULL


def _c_parent(parent):
    """A pm_trace_context_t * (or NULL: the library's current span) for parent."""
    if parent is None:
        return _implicit_parent()
    if isinstance(parent, Span):
        parent = parent.context
    if isinstance(parent, str):
        b = encode(parent, "parent")
        ctx = ffi.new("pm_trace_context_t *")
        check(lib.pm_traceparent_parse(b, len(b), ctx), "pm_traceparent_parse", repr(parent))
        return ctx
    if isinstance(parent, TraceContext):
        ctx = ffi.new("pm_trace_context_t *")
        try:
            ctx.trace_id = list(bytes.fromhex(parent.trace_id))
            ctx.span_id = list(bytes.fromhex(parent.span_id))
        except (ValueError, IndexError):
            raise ValueError("parent: bad trace or span id in %r" % (parent,)) from None
        ctx.flags = 1 if parent.sampled else 0
        return ctx
    raise TypeError("parent must be a Span, a TraceContext or a traceparent str")


class Span(Handle):
    """One span. End it with end() (a `with` block or the decorator does it);
    attributes and events on an unsampled span do nothing."""

    def __init__(self, tracer: "Tracer", name: str, kind: str = "internal", parent=None):
        k = _choice(KINDS, kind, "kind")
        b = encode(name, "name")
        p = _c_parent(parent)
        out = ffi.new("pm_span_t **")
        check(lib.pm_span_start(tracer._ptr(), b, k, p, out), "pm_span_start", repr(name))
        self.name = name
        self._tokens = []
        self._ctx = None
        self._own(out[0], lib.pm_span_end, tracer._owner)

    def end(self) -> None:
        """Ends the span (records its end time); ending twice does nothing.
        Its context stays readable, to parent spans that start later. End a
        span on the thread that entered it."""
        if not self.closed:
            if self._ctx is None:
                self._ctx = self.context
            self._leave()
        self.close()

    def _leave(self):
        # Before the library ends it: no longer open on this thread, and not
        # the library's current span (which goes to the last open one).
        t = _open_spans()
        for i in range(len(t.open) - 1, -1, -1):
            if t.open[i] is self:
                del t.open[i]
                break
        if lib.pm_span_current() == self._owner.ptr:
            lib.pm_span_enter(t.open[-1]._owner.ptr if t.open else t.base)

    @property
    def context(self) -> TraceContext:
        """The span's W3C trace context (readable after end() too)."""
        if self._ctx is not None:
            return self._ctx
        ctx = ffi.new("pm_trace_context_t *")
        check(lib.pm_span_context(self._ptr(), ctx), "pm_span_context")
        return _context_from_c(ctx)

    @property
    def traceparent(self) -> str:
        """The W3C traceparent header value for a child in another process."""
        return self.context.traceparent

    @property
    def sampled(self) -> bool:
        """Whether the span is recorded and exported."""
        return bool(lib.pm_span_is_sampled(self._ptr()))

    def set_attribute(self, key: str, value: Union[str, bool, int, float]) -> None:
        """Sets an attribute; its type follows the value's (str, bool, int, float)."""
        s = self._ptr()
        k = encode(key, "key")
        if isinstance(value, bool):
            st = lib.pm_span_set_bool(s, k, 1 if value else 0)
        elif isinstance(value, int):
            if not -2**63 <= value < 2**63:
                raise ValueError("attribute %r: %d does not fit in 64 bits" % (key, value))
            st = lib.pm_span_set_int(s, k, value)
        elif isinstance(value, float):
            st = lib.pm_span_set_double(s, k, value)
        elif isinstance(value, str):
            st = lib.pm_span_set_string(s, k, encode(value, "value"))
        else:
            raise TypeError("attribute values are str, bool, int or float, not %s"
                            % type(value).__name__)
        check(st, "pm_span_set_*", repr(key))

    def add_event(self, name: str, key: Optional[str] = None, value: Optional[str] = None
                  ) -> None:
        """Adds a timestamped event with one optional string attribute."""
        if (key is None) != (value is None):
            raise ValueError("add_event: give both key and value, or neither")
        check(lib.pm_span_add_event(self._ptr(), encode(name, "name"),
                                    ffi.NULL if key is None else encode(key, "key"),
                                    ffi.NULL if value is None else encode(value, "value")),
              "pm_span_add_event", repr(name))

    def set_status(self, status: str, message: Optional[str] = None) -> None:
        """Sets the status: "unset", "ok" or "error" (with a message)."""
        check(lib.pm_span_set_status(self._ptr(), _choice(STATUSES, status, "status"),
                                     ffi.NULL if message is None else encode(message, "message")),
              "pm_span_set_status")

    def __enter__(self) -> "Span":
        ptr = self._ptr()
        t = _open_spans()
        if not t.open:
            t.base = lib.pm_span_current()  # a span of C code, or NULL
        lib.pm_span_enter(ptr)
        t.open.append(self)
        self._tokens.append(_current.set(self))
        return self

    def __exit__(self, typ, value, tb):
        if self._tokens:
            try:
                _current.reset(self._tokens.pop())
            except ValueError:  # exited in another context than it was entered in
                pass
        if not self.closed and value is not None:
            self.set_status("error", "%s: %s" % (typ.__name__, value))
            self.add_event("exception", "exception.type", typ.__name__)
        self.end()
        return False


class _SpanScope:
    """What span() returns: a context manager that starts a span (made the
    thread's current one) and ends it at exit, or a decorator doing the same
    around each call."""

    __slots__ = ("_tracer", "_name", "_kind", "_parent", "_spans")

    def __init__(self, tracer, name, kind, parent):
        _choice(KINDS, kind, "kind")
        encode(name, "name")
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._parent = parent
        self._spans = []

    def __enter__(self) -> Span:
        s = Span(self._tracer or default_tracer(), self._name, self._kind, self._parent)
        self._spans.append(s)
        return s.__enter__()

    def __exit__(self, typ, value, tb):
        # With tasks sharing this scope object, the span to end is the one
        # this context entered last.
        cur = _current.get()
        for i in range(len(self._spans) - 1, -1, -1):
            if self._spans[i] is cur:
                return self._spans.pop(i).__exit__(typ, value, tb)
        return self._spans.pop().__exit__(typ, value, tb)

    def __call__(self, f: F) -> F:
        tracer, name, kind, parent = self._tracer, self._name, self._kind, self._parent

        @functools.wraps(f)
        def wrapped(*args, **kwargs):
            with Span(tracer or default_tracer(), name, kind, parent):
                return f(*args, **kwargs)
        return wrapped


class SpanData(NamedTuple):
    """An ended span as a span exporter receives it."""

    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_id: str  # "" for a root span
    start_ns: int  # Unix nanoseconds
    end_ns: int
    status: str
    status_message: str
    attributes: Dict[str, Union[str, bool, int, float]]
    events: List[Tuple[str, Dict[str, str]]]


def _read_span(d):
    attrs = {}
    for i in range(lib.pm_span_data_attr_count(d)):
        t = lib.pm_span_data_attr_type(d, i)
        key = _str(lib.pm_span_data_attr_key(d, i))
        if t == 1:
            attrs[key] = _str(lib.pm_span_data_attr_string(d, i))
        elif t == 2:
            attrs[key] = lib.pm_span_data_attr_int(d, i)
        elif t == 3:
            attrs[key] = lib.pm_span_data_attr_double(d, i)
        else:
            attrs[key] = bool(lib.pm_span_data_attr_bool(d, i))
    events = []
    for i in range(lib.pm_span_data_event_count(d)):
        k = lib.pm_span_data_event_attr_key(d, i)
        ev_attrs = {} if k == ffi.NULL else {_str(k): _str(lib.pm_span_data_event_attr_value(d, i))}
        events.append((_str(lib.pm_span_data_event_name(d, i)), ev_attrs))
    ctx = lib.pm_span_data_context(d)
    parent = bytes(ffi.unpack(ffi.cast("char *", lib.pm_span_data_parent_id(d)), 8))
    return SpanData(_str(lib.pm_span_data_name(d)), _KIND_NAMES.get(lib.pm_span_data_kind(d), "?"),
                    bytes(ctx.trace_id).hex(), bytes(ctx.span_id).hex(),
                    "" if parent == bytes(8) else parent.hex(),
                    lib.pm_span_data_start_ns(d), lib.pm_span_data_end_ns(d),
                    _STATUS_NAMES.get(lib.pm_span_data_status(d), "?"),
                    _str(lib.pm_span_data_status_message(d)), attrs, events)


class _SpanExporter:
    def __init__(self, name, fn, fmt):
        self.name = name
        self.fn = fn
        self.fmt = fmt
        self._handle = ffi.new_handle(self)


@ffi.callback("pm_status_t(const pm_span_batch_t *, void *)", error=-13)
def _span_export_trampoline(batch, user):
    exp = None
    try:
        exp = ffi.from_handle(user)
        with in_callback():
            return -13 if exp.fn(_batch_arg(exp, batch)) is False else 0
    except BaseException:
        report_callback_error("span exporter", getattr(exp, "name", "?"))
        return -13


def _batch_arg(exp, batch):
    """What a span exporter receives: SpanData objects, or formatted bytes."""
    if exp.fmt is None:
        return [_read_span(lib.pm_span_batch_span(batch, i))
                for i in range(lib.pm_span_batch_count(batch))]
    return buffer_bytes(lambda buf: lib.pm_span_batch_format(batch, exp.fmt, buf),
                        "pm_span_batch_format")


class _TracerState:
    def __init__(self):
        self.exporters = {}  # name -> _SpanExporter (keeps each cffi handle alive)

    def free(self, ptr):
        if lib.pm_tracer_default() == ptr:
            lib.pm_tracer_set_default(ffi.NULL)
        lib.pm_tracer_free(ptr)
        self.exporters.clear()

    def stop_at_exit(self, owner):
        # Flushes what is buffered to the exporters now, while Python works;
        # then no Python exporter is left for a later flush to call.
        lib.pm_tracer_stop(owner.ptr)
        lib.pm_tracer_flush(owner.ptr, ffi.NULL)
        for name in list(self.exporters):
            lib.pm_tracer_remove_exporter(owner.ptr, name.encode())
        self.exporters.clear()


class Tracer(Handle):
    """A tracer: sampler, a bounded buffer of ended spans, span exporters and
    trace analytics. registry (optional) receives the RED metrics
    pm_span_duration_seconds / pm_span_errors_total / pm_spans_total."""

    def __init__(self, service: str = "unknown_service", sampler: str = "parent_ratio",
                 ratio: float = 1.0, buffer: Optional[int] = None,
                 batch: Optional[Tuple[int, float]] = None, registry: Optional[Registry] = None):
        po = ffi.new("pm_tracer_opts_t **")
        check(lib.pm_tracer_opts_new(po), "pm_tracer_opts_new")
        opts = po[0]
        try:
            check(lib.pm_tracer_opts_set_service(opts, encode(service, "service")),
                  "pm_tracer_opts_set_service", repr(service))
            check(lib.pm_tracer_opts_set_sampler(opts, _choice(SAMPLERS, sampler, "sampler"),
                                                 float(ratio)), "pm_tracer_opts_set_sampler")
            if buffer is not None:
                check(lib.pm_tracer_opts_set_buffer(opts, buffer), "pm_tracer_opts_set_buffer")
            if batch is not None:
                check(lib.pm_tracer_opts_set_batch(opts, batch[0], float(batch[1])),
                      "pm_tracer_opts_set_batch")
            reads = ()
            if registry is not None:
                check(lib.pm_tracer_opts_set_registry(opts, registry._ptr()),
                      "pm_tracer_opts_set_registry")
                reads = (registry._owner,)
            out = ffi.new("pm_tracer_t **")
            check(lib.pm_tracer_new(opts, out), "pm_tracer_new")
        finally:
            lib.pm_tracer_opts_free(opts)
        self._registry = registry
        self._state = st = _TracerState()
        owner = self._own(out[0], st.free, reads=reads)
        _core.track_threads(owner, "tracer", st.stop_at_exit)

    def span(self, name: str, kind: str = "internal", parent=None) -> _SpanScope:
        """A span scope (context manager or decorator); parent None means the
        thread's current span, else a Span, TraceContext or traceparent str."""
        return _SpanScope(self, name, kind, parent)

    def start_span(self, name: str, kind: str = "internal", parent=None) -> Span:
        """Starts a span that is not made current; end it with end()."""
        return Span(self, name, kind, parent)

    def add_exporter(self, name: str, fn: Callable[[Any], Optional[bool]],
                     format: Optional[str] = None) -> None:
        """Registers fn(batch): a list of SpanData, or with format "jsonl" or
        "otlp_json" the batch's bytes in that format. Called by flush() and
        by the export thread, never twice at once. An exception (or False)
        counts as a failed export; an exception is logged and counted."""
        if not callable(fn):
            raise TypeError("fn must be callable")
        fmt = None if format is None else _choice(SPAN_FORMATS, format, "format")
        exp = _SpanExporter(name, fn, fmt)
        check(lib.pm_tracer_add_exporter(self._ptr(), encode(name, "name"),
                                         _span_export_trampoline, exp._handle, ffi.NULL),
              "pm_tracer_add_exporter", repr(name))
        self._state.exporters[name] = exp

    def remove_exporter(self, name: str) -> None:
        """Removes a span exporter (a flush calling it finishes first)."""
        check(lib.pm_tracer_remove_exporter(self._ptr(), encode(name, "name")),
              "pm_tracer_remove_exporter", repr(name))
        self._state.exporters.pop(name, None)

    def flush(self) -> int:
        """Hands every buffered ended span to the exporters now; returns how many."""
        n = ffi.new("size_t *")
        check(lib.pm_tracer_flush(self._ptr(), n), "pm_tracer_flush")
        return n[0]

    def start(self) -> None:
        """Starts the background export thread (stopped at exit at the latest)."""
        check(lib.pm_tracer_start(self._ptr()), "pm_tracer_start")

    def stop(self) -> None:
        """Stops the export thread (after a flush)."""
        check(lib.pm_tracer_stop(self._ptr()), "pm_tracer_stop")

    def stat(self, name: str) -> int:
        """One tracer counter: "started", "sampled", "ended", "dropped",
        "exported", "export_failures", ... (see TRACER_STATS)."""
        return lib.pm_tracer_stat(self._ptr(), _choice(TRACER_STATS, name, "stat"))

    def set_default(self) -> None:
        """Makes this the process's default tracer (perfmetrics.span() and
        the C library's PM_SPAN_SCOPE use it)."""
        global _default
        lib.pm_tracer_set_default(self._ptr())
        _default = self


_default: Optional[Tracer] = None
_default_lock = threading.Lock()


def default_tracer() -> Tracer:
    """The default tracer, created (with defaults) on first use."""
    global _default
    t = _default
    if t is not None and not t.closed:
        return t
    with _default_lock:
        if _default is None or _default.closed:
            Tracer().set_default()
        return _default


def span(name: str, kind: str = "internal", parent=None, tracer: Optional[Tracer] = None
         ) -> _SpanScope:
    """`with perfmetrics.span("name") as s:` or `@perfmetrics.span("name")`:
    a span of the default tracer (or `tracer`), current while the block runs.
    An exception leaving the block sets the span's status to error."""
    return _SpanScope(tracer, name, kind, parent)


__all__ = ["Tracer", "Span", "SpanData", "TraceContext", "span", "default_tracer",
           "parse_traceparent"]
