"""perfmetrics: Python binding of libperfmetrics (libperfmetrics.so.1, loaded
through cffi's ABI mode; nothing to compile), in the style of prometheus_client.

    import perfmetrics
    requests = perfmetrics.Counter("requests", "Requests served.", ["method"])
    latency = perfmetrics.Histogram("request_seconds", "Time per request.")
    get = requests.labels("GET")          # bind children once
    with latency.time():
        get.inc()
    print(perfmetrics.generate_latest().decode())

See doc/python.md in the libperfmetrics tree.
"""

from ._ffi import LibraryNotFoundError, library_path
from ._core import (AlreadyExistsError, BadLabelError, BadNameError, CallbackError, ClosedError,
                    EncodingError, Error, InputOutputError, InvalidArgumentError,
                    LabelCountError, NotFoundError, OutOfMemoryError, OutOfRangeError,
                    ParseError, StateError, ThreadError, TypeMismatchError, UnsupportedError,
                    callback_errors)
from ._registry import (CONTENT_TYPE_LATEST, REGISTRY, Exporter, MetricFamily, Registry, Sample,
                        Snapshot, content_type, generate_latest)
from ._collector import CounterMetricFamily, GaugeMetricFamily
from ._metrics import DEFAULT_BUCKETS, Counter, Gauge, Histogram, gauge_function
from ._tracing import (Span, SpanData, TraceContext, Tracer, default_tracer, parse_traceparent,
                       span)
from ._alerts import AlertEngine, AlertEvent, check_rules
from ._server import Server, start_http_server
from ._version import __version__, library_version

__all__ = [
    "AlertEngine", "AlertEvent", "Server", "Span", "SpanData", "TraceContext", "Tracer",
    "check_rules", "default_tracer", "parse_traceparent", "span", "start_http_server",
    "AlreadyExistsError", "BadLabelError", "BadNameError", "CallbackError", "ClosedError",
    "CONTENT_TYPE_LATEST", "Counter", "CounterMetricFamily", "GaugeMetricFamily", "DEFAULT_BUCKETS", "EncodingError", "Error", "Exporter",
    "Gauge", "Histogram", "InputOutputError", "InvalidArgumentError", "LabelCountError",
    "LibraryNotFoundError", "MetricFamily", "NotFoundError", "OutOfMemoryError",
    "OutOfRangeError", "ParseError", "REGISTRY", "Registry", "Sample", "Snapshot", "StateError",
    "ThreadError", "TypeMismatchError", "UnsupportedError", "__version__", "callback_errors",
    "content_type", "gauge_function", "generate_latest", "library_path", "library_version",
]
