"""The library's embedded HTTP endpoint (/metrics, JSON APIs, dashboard),
served by its own threads: Python is only entered for Python callbacks
(callback gauges) that a scrape's snapshot runs."""

from typing import Optional

from . import _core
from ._alerts import AlertEngine
from ._core import Handle, check, encode, ffi, lib
from ._registry import REGISTRY, Registry
from ._tracing import Tracer

SERVER_STATS = {"connections": 1, "open": 2, "rejected": 3, "requests": 4, "2xx": 5, "4xx": 6,
                "5xx": 7, "timeouts": 8, "bytes_in": 9, "bytes_out": 10, "scrapes": 11,
                "unauthorized": 12}


class Server(Handle):
    """A running endpoint; close() (or `with`, or interpreter exit) stops it."""

    def __init__(self, port: int, addr: str = "127.0.0.1", registry: Registry = REGISTRY,
                 tracer: Optional[Tracer] = None, alert_engine: Optional[AlertEngine] = None,
                 token: Optional[str] = None, threads: Optional[int] = None,
                 title: Optional[str] = None, dashboard: bool = True):
        if isinstance(port, bool) or not isinstance(port, int):
            raise TypeError("port must be int, not %s" % type(port).__name__)
        po = ffi.new("pm_server_opts_t **")
        check(lib.pm_server_opts_new(po), "pm_server_opts_new")
        opts = po[0]
        reads = [registry._owner]
        try:
            check(lib.pm_server_opts_set_address(opts, encode(addr, "addr"), port),
                  "pm_server_opts_set_address", "%s port %d" % (addr, port))
            if token is not None:
                check(lib.pm_server_opts_set_token(opts, encode(token, "token")),
                      "pm_server_opts_set_token")
            if threads is not None:
                check(lib.pm_server_opts_set_threads(opts, threads), "pm_server_opts_set_threads")
            if title is not None:
                check(lib.pm_server_opts_set_title(opts, encode(title, "title")),
                      "pm_server_opts_set_title")
            check(lib.pm_server_opts_set_dashboard(opts, 1 if dashboard else 0),
                  "pm_server_opts_set_dashboard")
            if tracer is not None:
                check(lib.pm_server_opts_set_tracer(opts, tracer._ptr()), "pm_server_opts_set_tracer")
                reads.append(tracer._owner)
            if alert_engine is not None:
                check(lib.pm_server_opts_set_alert_engine(opts, alert_engine._ptr()),
                      "pm_server_opts_set_alert_engine")
                reads.append(alert_engine._owner)
            out = ffi.new("pm_server_t **")
            check(lib.pm_server_new(registry._ptr(), opts, out), "pm_server_new",
                  "%s port %d" % (addr, port))
        finally:
            lib.pm_server_opts_free(opts)
        # What the server reads must outlive it: held here, and each of them
        # closes the server first if it is closed before (reads=).
        self._uses = (registry, tracer, alert_engine)
        owner = self._own(out[0], lib.pm_server_free, reads=reads)
        _core.track_threads(owner, "server", lambda o: o.close())

    @property
    def port(self) -> int:
        """The port listened on (the one the kernel chose for port 0)."""
        return lib.pm_server_port(self._ptr())

    @property
    def url(self) -> str:
        """The dashboard's URL, "http://HOST:PORT/"."""
        buf = ffi.new("char[]", 128)
        check(lib.pm_server_url(self._ptr(), buf, 128), "pm_server_url")
        return ffi.string(buf).decode()

    def stat(self, name: str) -> int:
        """One server counter (see SERVER_STATS): "requests", "scrapes", ..."""
        if name not in SERVER_STATS:
            raise ValueError("stat must be one of %s" % ", ".join(SERVER_STATS))
        return lib.pm_server_stat(self._ptr(), SERVER_STATS[name])


def start_http_server(port: int, addr: str = "127.0.0.1", registry: Registry = REGISTRY,
                      **kw) -> Server:
    """Starts the library's HTTP endpoint for registry on addr:port (port 0:
    a free one; see Server.port). Loopback by default, unlike
    prometheus_client's 0.0.0.0. Keyword arguments are Server's."""
    return Server(port, addr, registry, **kw)


__all__ = ["Server", "start_http_server"]
