"""Errors, handle ownership and the shutdown of library threads.

Ownership model: every C object the package creates is held by one _Owner,
which frees it exactly once (close(), a context manager's exit, or garbage
collection through weakref.finalize). An owner may depend on a parent owner
(a series on its registry): when the parent is freed first, the C library has
freed the child with it, so the child's owner only marks itself freed.
Owners never run during interpreter finalization: the atexit hook stops
every library thread that could call into Python, then turns freeing off
(the process is exiting; the kernel reclaims the memory).
"""

import atexit
import logging
import os
import threading
import weakref

from ._ffi import ffi, lib

log = logging.getLogger("perfmetrics")

# ---------------------------------------------------------------- errors


class Error(Exception):
    """A libperfmetrics call failed. .status is the pm_status_t code (negative),
    .status_name its symbolic name ("PM_EINVAL"), .what the call."""

    status = None

    def __init__(self, message, status=None, what=None):
        super().__init__(message)
        if status is not None:
            self.status = status
        self.status_name = _str(lib.pm_status_name(self.status)) if self.status is not None else None
        self.what = what


class InvalidArgumentError(Error, ValueError):
    status = -1


class OutOfMemoryError(Error, MemoryError):
    status = -2


class AlreadyExistsError(Error, ValueError):
    status = -3


class NotFoundError(Error, LookupError):
    status = -4


class BadNameError(Error, ValueError):
    status = -5


class BadLabelError(Error, ValueError):
    status = -6


class LabelCountError(Error, ValueError):
    status = -7


class EncodingError(Error, ValueError):
    status = -8


class TypeMismatchError(Error, TypeError):
    status = -9


class OutOfRangeError(Error, ValueError):
    status = -10


class StateError(Error, RuntimeError):
    status = -11


class InputOutputError(Error, OSError):
    status = -12


class CallbackError(Error, RuntimeError):
    status = -13


class ParseError(Error, ValueError):
    """Malformed input. For rule files and expressions, .line, .column, .offset
    and .expected say where (0/"" when the library gave no position)."""

    status = -14
    line = column = offset = 0
    expected = ""


class UnsupportedError(Error, NotImplementedError):
    status = -15


class ThreadError(Error, RuntimeError):
    status = -16


class ClosedError(StateError):
    """The object was closed (or its parent was): it can no longer be used."""


_BY_STATUS = {cls.status: cls for cls in (
    InvalidArgumentError, OutOfMemoryError, AlreadyExistsError, NotFoundError, BadNameError,
    BadLabelError, LabelCountError, EncodingError, TypeMismatchError, OutOfRangeError,
    StateError, InputOutputError, CallbackError, ParseError, UnsupportedError, ThreadError)}


def _str(p):
    """A C string (const char *) as str; None for NULL."""
    return None if p == ffi.NULL else ffi.string(p).decode("utf-8", "replace")


_DETAIL_MAX = 200


def make_error(status, what, detail=None):
    """The exception for a failed call: its class by status, its message the
    library's sentence for the status (pm_strerror) with the call and detail."""
    cls = _BY_STATUS.get(status, Error)
    msg = "%s: %s (%s)" % (what, _str(lib.pm_strerror(status)), _str(lib.pm_status_name(status)))
    if detail:
        # The detail quotes the caller's arguments: keep a message readable
        # when one of them is 4 KiB of label value.
        msg += ": " + (detail if len(detail) <= _DETAIL_MAX else detail[:_DETAIL_MAX] + "...")
    return cls(msg, status=status, what=what)


def check(status, what, detail=None):
    """Raises make_error(...) unless status is PM_OK."""
    if status != 0:
        raise make_error(status, what, detail)


def parse_error(status, what, perr):
    """As make_error, with the position of a pm_parse_error_t (freed here)."""
    e = perr[0]
    if e == ffi.NULL:
        return make_error(status, what)
    try:
        err = make_error(status, what, _str(lib.pm_parse_error_message(e)))
        err.line = lib.pm_parse_error_line(e)
        err.column = lib.pm_parse_error_column(e)
        err.offset = lib.pm_parse_error_offset(e)
        err.expected = _str(lib.pm_parse_error_expected(e))
        return err
    finally:
        lib.pm_parse_error_free(e)


def buffer_bytes(write, what):
    """Runs write(buf), a pm_ call returning a status, on a fresh pm_buf_t
    and returns the bytes written (an Error if the call failed)."""
    out = ffi.new("pm_buf_t **")
    check(lib.pm_buf_new(out), "pm_buf_new")
    buf = out[0]
    try:
        check(write(buf), what)
        return ffi.unpack(lib.pm_buf_data(buf), lib.pm_buf_len(buf))
    finally:
        lib.pm_buf_free(buf)


def encode(s, what):
    """A str argument as UTF-8 bytes; TypeError for anything else, and
    ValueError for an embedded NUL, which C would silently cut the string at
    ("a\0b" would become "a")."""
    if not isinstance(s, str):
        raise TypeError("%s must be str, not %s" % (what, type(s).__name__))
    if "\0" in s:
        raise ValueError("%s must not contain NUL characters: %.200r" % (what, s))
    return s.encode("utf-8", "surrogatepass")


def string_array(values, what):
    """(keepalive, const char *const * array) for a sequence of str."""
    encoded = [ffi.new("char[]", encode(v, what)) for v in values]
    return encoded, ffi.new("const char *[]", encoded) if encoded else ffi.NULL


# ---------------------------------------------------------------- callbacks

_callback_errors = 0
_callback_errors_lock = threading.Lock()


def callback_errors():
    """How many Python callbacks (exporters, collectors, callback gauges,
    alert notifiers, span exporters) have raised since the process started. Each one was logged to
    the "perfmetrics" logger and reported to the library as a failure."""
    return _callback_errors


def report_callback_error(kind, name):
    """Called inside an `except` in a callback trampoline: counts and logs."""
    global _callback_errors
    with _callback_errors_lock:
        _callback_errors += 1
    try:
        log.exception("perfmetrics: %s %r raised; reported to the library as a failure", kind, name)
    except Exception:  # logging itself failed (closed stream at exit...): never reach C
        pass


# ---------------------------------------------------------------- ownership

_finalizing = False
_owners_lock = threading.Lock()
_live_threads = weakref.WeakSet()  # owners whose objects run library threads

# A child made by fork() has copies of the objects created before it, but
# none of their threads: freeing or stopping one there would join threads
# that do not exist. Objects from before the fork are left alone in the child.
_generation = 0


def _after_fork_in_child():
    # The module's locks may have been held by a thread that the child does
    # not have: new ones.
    global _generation, _live_threads, _owners_lock, _deferred, _deferred_lock
    global _callback_errors_lock
    _generation += 1
    _live_threads = weakref.WeakSet()
    _owners_lock = threading.Lock()
    _deferred = []
    _deferred_lock = threading.Lock()
    _callback_errors_lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Owner:
    """Frees one C object exactly once. `free` is the C destructor (called
    with the pointer); `parent` an owner this one depends on (a series on its
    registry, a span on its tracer)."""

    __slots__ = ("ptr", "free", "parent", "lock", "closed", "stop", "dependents", "generation",
                 "__weakref__")

    def __init__(self, ptr, free, parent=None):
        self.ptr = ptr
        self.free = free
        self.parent = parent
        # A child frees under its parent's lock, so that the parent cannot be
        # freed meanwhile; it needs no lock of its own (there may be
        # thousands of children).
        self.lock = (parent.lock if parent is not None and parent.generation == _generation
                     else threading.RLock())
        self.closed = False
        self.stop = None  # (kind, fn(owner)) for objects with threads: run at exit
        self.dependents = None  # see add_dependent
        self.generation = _generation

    def add_dependent(self, owner):
        """owner's object reads this one (a server reads its registry): it is
        closed before this one is freed."""
        with self.lock:
            if self.dependents is None:
                self.dependents = weakref.WeakSet()
            self.dependents.add(owner)

    def alive(self):
        o = self
        while o is not None:
            if o.closed:
                return False
            o = o.parent
        return True

    def close(self):
        """Frees the object unless it, or a parent, was closed already.
        Returns whether this call closed it."""
        if self.generation != _generation:  # from before a fork (see _generation)
            self.closed = True
            return False
        for d in list(self.dependents or ()):
            d.close()
        with self.lock:
            if self.closed:
                return False
            self.closed = True
            if not _finalizing and self.free is not None and (
                    self.parent is None or self.parent.alive()):
                self.free(self.ptr)
            return True


# Garbage collection can run a finalizer on any thread, a library thread
# inside a callback included. Freeing from there could join or wait for that
# very thread (a registry's export thread freeing its registry), so such frees
# are deferred to the next handle created or closed on an ordinary thread.
_tls = threading.local()
_deferred = []
_deferred_lock = threading.Lock()


class in_callback:
    """Marks the calling thread as running a Python callback for the library."""

    __slots__ = ()

    def __enter__(self):
        _tls.depth = getattr(_tls, "depth", 0) + 1

    def __exit__(self, *exc):
        _tls.depth -= 1
        return False


def _collected(owner):
    if getattr(_tls, "depth", 0):
        with _deferred_lock:
            _deferred.append(owner)
    else:
        owner.close()


def run_deferred():
    """Frees what garbage collection released inside callbacks."""
    if _deferred and not getattr(_tls, "depth", 0):
        with _deferred_lock:
            todo = _deferred[:]
            del _deferred[:]
        for o in todo:
            o.close()


def attach(obj, owner):
    """Makes garbage collection of obj close owner (once); returns the finalizer."""
    run_deferred()
    f = weakref.finalize(obj, _collected, owner)
    # At exit the package's own hook runs instead (see _shutdown).
    f.atexit = False
    return f


class Handle:
    """Base of the wrappers of owned C objects: close(), `with`, and freeing
    at garbage collection, each at most once."""

    _owner = None

    def _own(self, ptr, free, parent=None, reads=()):
        """Takes ownership of ptr; `reads` are owners this object uses, which
        then close this one before they are freed."""
        self._owner = _Owner(ptr, free, parent)
        for o in reads:
            o.add_dependent(self._owner)
        self._finalizer = attach(self, self._owner)
        return self._owner

    def _ptr(self):
        """The C pointer; ClosedError once closed (or the parent was)."""
        o = self._owner
        if o is None or not o.alive():
            raise ClosedError("%s is closed" % type(self).__name__, status=-11)
        return o.ptr

    @property
    def closed(self):
        """Whether the object (or one it depends on) was closed."""
        o = self._owner
        return o is None or not o.alive()

    def close(self):
        """Frees the C object now. Closing twice does nothing."""
        if self._owner is not None:
            self._finalizer.detach()
            self._owner.close()
        run_deferred()

    def __enter__(self):
        self._ptr()
        return self

    def __exit__(self, *exc):
        self.close()


def track_threads(owner, kind, stop):
    """Registers stop(owner) to run at interpreter exit while owner is alive:
    it must stop every library thread of the object that could call Python.
    kind (one of _STOP_ORDER) orders the calls."""
    owner.stop = (kind, stop)
    with _owners_lock:
        _live_threads.add(owner)


_STOP_ORDER = ("server", "engine", "tracer", "registry")


def _shutdown():
    """atexit: stop library threads (servers first: they read the others),
    then keep every later free from running during finalization."""
    global _finalizing
    with _owners_lock:
        owners = [o for o in _live_threads if o.stop is not None]
    owners.sort(key=lambda o: _STOP_ORDER.index(o.stop[0]))
    for o in owners:
        with o.lock:
            if o.alive():
                try:
                    o.stop[1](o)
                except Exception:
                    log.exception("perfmetrics: stopping a %s at exit failed", o.stop[0])
    _finalizing = True


atexit.register(_shutdown)
