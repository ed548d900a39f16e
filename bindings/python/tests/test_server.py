"""The library's HTTP endpoint started from Python: /metrics parsed by
prometheus_client, JSON endpoints, the token, Python callback gauges run by
server threads, closing."""

import json
import urllib.error
import urllib.request

import pytest

import perfmetrics as pm
from conftest import parse, poll

OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with OPENER.open(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def test_metrics_endpoint_parsed_by_prometheus_client(reg):
    c = pm.Counter("served", "Served.", ["path"], registry=reg)
    c.labels("/a").inc(4)
    pm.gauge_function("from_python", "A Python callback run by a server thread.",
                      lambda: 12.5, registry=reg)
    with pm.start_http_server(0, registry=reg, title="pytest") as srv:
        assert srv.port > 0 and srv.url == "http://127.0.0.1:%d/" % srv.port
        status, headers, body = get(srv.url + "metrics")
        assert status == 200 and headers["Content-Type"].startswith("text/plain")
        s = parse(body.decode())
        assert s[("served_total", frozenset({("path", "/a")}))] == 4
        assert s[("from_python", frozenset())] == 12.5
        status, headers, body = get(srv.url + "metrics",
                                    {"Accept": "application/openmetrics-text; version=1.0.0"})
        assert status == 200 and body.endswith(b"# EOF\n")
        status, _, body = get(srv.url + "health")
        assert status == 200 and json.loads(body)["status"] == "healthy"
        status, _, body = get(srv.url + "api/v1/metrics")
        assert status == 200 and "served" in body.decode()
        # The counters may move just after the response reached us.
        assert poll(lambda: srv.stat("scrapes") == 2 and srv.stat("requests") >= 4)
        with pytest.raises(ValueError):
            srv.stat("nope")
    assert srv.closed
    with pytest.raises(pm.ClosedError):
        srv.port
    srv.close()


def test_token_tracer_and_engine(reg):
    t = pm.Tracer()
    e = pm.AlertEngine(reg, dispatch_thread=False)
    srv = pm.Server(0, registry=reg, tracer=t, alert_engine=e, token="s3cret", threads=1,
                    dashboard=False)
    try:
        assert get(srv.url + "metrics")[0] == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert get(srv.url + "metrics", auth)[0] == 200
        with t.span("traced"):
            pass
        t.flush()
        status, _, body = get(srv.url + "api/v1/traces", auth)
        assert status == 200 and "traced" in body.decode()
        assert get(srv.url + "api/v1/alerts", auth)[0] == 200
        assert get(srv.url, auth)[0] == 404  # dashboard off
        assert poll(lambda: srv.stat("unauthorized") == 1)
    finally:
        e.close()  # closes the server that reads it first
    assert srv.closed
    t.close()


def test_bad_arguments(reg):
    with pytest.raises(pm.ParseError):
        pm.start_http_server(0, "not-an-address", registry=reg)
    with pytest.raises(pm.OutOfRangeError):
        pm.start_http_server(70000, registry=reg)
    with pytest.raises(TypeError):
        pm.start_http_server("80", registry=reg)
    with pytest.raises(pm.ParseError):
        pm.start_http_server(0, registry=reg, token="has spaces")
    with pytest.raises(pm.OutOfRangeError):
        pm.start_http_server(0, registry=reg, threads=0)
    with pm.start_http_server(0, registry=reg) as a:
        with pytest.raises(pm.InputOutputError):
            pm.start_http_server(a.port, registry=reg)  # address in use


def test_registry_close_stops_its_server():
    r = pm.Registry()
    srv = pm.start_http_server(0, registry=r)
    url = srv.url
    assert get(url + "metrics")[0] == 200
    r.close()
    assert srv.closed
    with pytest.raises(OSError):
        OPENER.open(url + "metrics", timeout=5)
