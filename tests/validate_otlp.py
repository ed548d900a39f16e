#!/usr/bin/python3
"""Validates the OTLP/HTTP destinations against OpenTelemetry's own message
definitions.

A tiny HTTP listener on 127.0.0.1 (a free port) stands in for a collector:
it records each request and answers 200 with {} (an empty
Export*ServiceResponse). Then:
  - `push_fixture otlp_metrics <listener>/v1/metrics` exports once: one POST
    to /v1/metrics with Content-Type application/json, User-Agent
    libperfmetrics/<version>, a Content-Length equal to the body's length and
    no Content-Encoding; the fixture sees it delivered (exit 0);
  - `push_fixture otlp_traces <listener>/v1/traces` flushes a tracer of two
    spans: the same for /v1/traces;
  - each body goes through tests/otlp/check_otlp.js: protobufjs with the code
    generated from opentelemetry-proto that @opentelemetry/otlp-transformer
    ships (installed into tests/otlp/node_modules by tests/run) reads it
    (fromObject), verifies it, encodes it to protobuf and decodes it again;
    what comes back is compared with the body field by field (proto3
    defaults, which the decoder leaves out, ignored), so a field the
    definitions do not know, a wrong type or a misspelt name fails;
  - the values: resource attributes service.name, job and instance; the
    scope; fx_requests a cumulative monotonic sum of 42 and 3 with the code
    attribute, fx_temperature_celsius a gauge of -12.5, fx_latency_seconds a
    cumulative histogram with count 5, sum 56.05, bucket counts 1 2 1 1,
    bounds 0.1 1 10, min 0.05, max 50; times as decimal strings, start before
    time; the spans' names, kinds, ids (one trace, the child's parent is the
    root), attributes, status, and the resource with the tracer's service.
    Span.flags postdates the generated definitions: it is checked here (257:
    sampled, parent known to be local).
A missing node, npm or tests/otlp/node_modules fails the run when CI=true;
otherwise those checks are skipped (exit 77 when something was skipped and
nothing failed). Prints "validate_otlp: N passed, N failed".
"""

import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from pmcheck import built_program, check, exit_status, missing

NAME = "validate_otlp"
HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "otlp", "check_otlp.js")
GENERATED = os.path.join(HERE, "otlp", "node_modules", "@opentelemetry", "otlp-transformer",
                         "build", "src", "generated", "root.js")
DEST = [("job", "push_fixture"), ("instance", "fx1")]


class Recorder(http.server.BaseHTTPRequestHandler):
    requests = []

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(n)
        Recorder.requests.append((self.command, self.path, dict(self.headers.items()), body))
        reply = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, fmt, *args):
        pass


def push(exe, kind, url):
    proc = subprocess.run([exe, kind, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=120)
    out = proc.stdout.decode(errors="replace")
    check(proc.returncode == 0 and "sent=1 " in out, "push_fixture %s exited %d: %s %s"
          % (kind, proc.returncode, out, proc.stderr.decode(errors="replace")))


def check_request(req, path, version):
    method, got_path, headers, body = req
    h = {k.lower(): v for k, v in headers.items()}
    check(method == "POST", "%s: method %s" % (path, method))
    check(got_path == path, "path %r, want %r" % (got_path, path))
    check(h.get("content-type") == "application/json", "%s: Content-Type %r"
          % (path, h.get("content-type")))
    check(h.get("user-agent") == "libperfmetrics/" + version, "%s: User-Agent %r"
          % (path, h.get("user-agent")))
    check(h.get("content-length") == str(len(body)), "%s: Content-Length %r for %d bytes"
          % (path, h.get("content-length"), len(body)))
    check("content-encoding" not in h, "%s: Content-Encoding %r" % (path, h.get("content-encoding")))
    try:
        return json.loads(body)
    except ValueError as e:
        check(False, "%s: body is not JSON: %s" % (path, e))
        return None


def is_default(v):
    return v in ("", 0, "0", False, None) or v == [] or v == {}


def strip_defaults(v):
    """proto3 leaves default values out: so does the comparison."""
    if isinstance(v, dict):
        out = {k: strip_defaults(x) for k, x in v.items()}
        return {k: x for k, x in out.items() if not is_default(x)}
    if isinstance(v, list):
        return [strip_defaults(x) for x in v]
    return v


def compare(ours, theirs, where, diffs):
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for k in sorted(set(ours) | set(theirs)):
            if k not in theirs:
                diffs.append("%s.%s: not in the decoded message (unknown field?)" % (where, k))
            elif k not in ours:
                diffs.append("%s.%s: appeared in the decoded message" % (where, k))
            else:
                compare(ours[k], theirs[k], where + "." + k, diffs)
    elif isinstance(ours, list) and isinstance(theirs, list):
        if len(ours) != len(theirs):
            diffs.append("%s: %d items, decoded %d" % (where, len(ours), len(theirs)))
        for i, (a, b) in enumerate(zip(ours, theirs)):
            compare(a, b, "%s[%d]" % (where, i), diffs)
    elif ours != theirs:
        diffs.append("%s: %r, decoded %r" % (where, ours, theirs))


def decode(kind, doc, tmp):
    """check_otlp.js's message for doc, or None."""
    path = os.path.join(tmp, kind + ".json")
    with open(path, "w") as f:
        json.dump(doc, f)
    proc = subprocess.run(["node", CHECKER, kind, path], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, timeout=60)
    if not check(proc.returncode == 0, "check_otlp.js %s exited %d: %s"
                 % (kind, proc.returncode, proc.stderr.decode(errors="replace"))):
        return None
    got = json.loads(proc.stdout)
    check(got["bytes"] > 0, "%s: no protobuf bytes" % kind)
    return got["message"]


def attrs(lst):
    out = {}
    for a in lst:
        (vk, vv), = a["value"].items()
        out[a["key"]] = (vk, vv)
    return out


def check_metrics(doc, msg):
    diffs = []
    compare(strip_defaults(doc), strip_defaults(msg), "request", diffs)
    check(not diffs, "metrics body vs decoded:\n    " + "\n    ".join(diffs[:20]))
    rms = msg.get("resourceMetrics", [])
    if not check(len(rms) == 1, "%d resourceMetrics" % len(rms)):
        return
    res = attrs(rms[0]["resource"]["attributes"])
    want = dict([("service.name", ("stringValue", "perfmetrics"))] +
                [(k, ("stringValue", v)) for k, v in DEST])
    check(res == want, "resource attributes %r" % res)
    sms = rms[0]["scopeMetrics"]
    check(len(sms) == 1 and sms[0]["scope"]["name"] == "libperfmetrics",
          "scope %r" % [s.get("scope") for s in sms])
    metrics = {m["name"]: m for m in sms[0]["metrics"]}
    check(sorted(metrics) == ["fx_latency_seconds", "fx_requests", "fx_temperature_celsius"],
          "metrics %r" % sorted(metrics))
    req = metrics.get("fx_requests", {})
    s = req.get("sum", {})
    check(s.get("aggregationTemporality") == 2 and s.get("isMonotonic") is True,
          "fx_requests sum %r" % {k: v for k, v in s.items() if k != "dataPoints"})
    pts = {attrs(p.get("attributes", [])).get("code"): p for p in s.get("dataPoints", [])}
    check(pts.get(("stringValue", "200"), {}).get("asDouble") == 42, "fx_requests 200: %r" % pts)
    check(pts.get(("stringValue", "500"), {}).get("asDouble") == 3, "fx_requests 500: %r" % pts)
    check(req.get("description") == "Requests served.", "fx_requests description %r"
          % req.get("description"))
    for p in s.get("dataPoints", []):
        check(isinstance(p.get("timeUnixNano"), str) and int(p["startTimeUnixNano"]) <=
              int(p["timeUnixNano"]), "fx_requests times %r" % p)
    g = metrics.get("fx_temperature_celsius", {})
    gp = g.get("gauge", {}).get("dataPoints", [])
    check(len(gp) == 1 and gp[0].get("asDouble") == -12.5, "fx_temperature_celsius %r" % g)
    check(g.get("unit") == "celsius", "fx_temperature_celsius unit %r" % g.get("unit"))
    h = metrics.get("fx_latency_seconds", {}).get("histogram", {})
    check(h.get("aggregationTemporality") == 2, "histogram temporality %r"
          % h.get("aggregationTemporality"))
    hp = h.get("dataPoints", [{}])[0]
    check(hp.get("count") == "5" and hp.get("sum") == 56.05, "histogram count/sum %r" % hp)
    check(hp.get("bucketCounts") == ["1", "2", "1", "1"], "bucketCounts %r" % hp.get("bucketCounts"))
    check(hp.get("explicitBounds") == [0.1, 1, 10], "explicitBounds %r" % hp.get("explicitBounds"))
    check(hp.get("min") == 0.05 and hp.get("max") == 50, "min/max %r" % hp)


def check_traces(doc, msg):
    # Span.flags (field 16) postdates the generated definitions: checked on
    # the body itself, then left out of the comparison.
    for rs in doc.get("resourceSpans", []):
        for ss in rs.get("scopeSpans", []):
            for sp in ss.get("spans", []):
                check(sp.pop("flags", None) == 257, "span %s flags" % sp.get("name"))
    diffs = []
    compare(strip_defaults(doc), strip_defaults(msg), "request", diffs)
    check(not diffs, "traces body vs decoded:\n    " + "\n    ".join(diffs[:20]))
    rss = msg.get("resourceSpans", [])
    if not check(len(rss) == 1, "%d resourceSpans" % len(rss)):
        return
    res = attrs(rss[0]["resource"]["attributes"])
    want = dict([("service.name", ("stringValue", "push-fixture"))] +
                [(k, ("stringValue", v)) for k, v in DEST])
    check(res == want, "trace resource attributes %r" % res)
    spans = {s["name"]: s for ss in rss[0]["scopeSpans"] for s in ss["spans"]}
    check(sorted(spans) == ["fx.child", "fx.root"], "spans %r" % sorted(spans))
    root, child = spans.get("fx.root", {}), spans.get("fx.child", {})
    check(len(root.get("traceId", "")) == 32 and root.get("traceId") == child.get("traceId"),
          "trace ids %r %r" % (root.get("traceId"), child.get("traceId")))
    check(child.get("parentSpanId") == root.get("spanId") and "parentSpanId" not in root,
          "parent ids")
    check(root.get("kind") == 2 and child.get("kind") == 3, "kinds %r %r"
          % (root.get("kind"), child.get("kind")))
    check(attrs(root.get("attributes", [])) == {"http.route": ("stringValue", "/fx"),
                                                "fx.count": ("intValue", "7")},
          "root attributes %r" % root.get("attributes"))
    check(child.get("status") == {"code": 2, "message": "boom"}, "child status %r"
          % child.get("status"))
    for s in (root, child):
        check(int(s.get("startTimeUnixNano", "0")) <= int(s.get("endTimeUnixNano", "0")),
              "%s times" % s.get("name"))


def version():
    with open(os.path.join(HERE, "..", "include", "perfmetrics", "base.h")) as f:
        for line in f:
            if line.startswith("#define PM_VERSION_STRING"):
                return line.split('"')[1]
    return "?"


def main():
    exe = built_program("push_fixture")
    if not exe:
        return exit_status(NAME)
    print("using " + exe)
    have_node = shutil.which("node") is not None
    if not have_node:
        missing(NAME, "node", "nodejs")
    elif not os.path.exists(GENERATED):
        missing(NAME, "tests/otlp/node_modules (npm ci in tests/otlp)", "npm")
        have_node = False
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = "http://127.0.0.1:%d" % server.server_address[1]
    try:
        push(exe, "otlp_metrics", base + "/v1/metrics")
        push(exe, "otlp_traces", base + "/v1/traces")
    finally:
        server.shutdown()
        server.server_close()
    reqs = Recorder.requests
    check(len(reqs) == 2, "%d requests, want 2" % len(reqs))
    if len(reqs) != 2:
        return exit_status(NAME)
    v = version()
    metrics = check_request(reqs[0], "/v1/metrics", v)
    traces = check_request(reqs[1], "/v1/traces", v)
    if have_node and metrics is not None and traces is not None:
        with tempfile.TemporaryDirectory(prefix="pm-otlp-") as tmp:
            m = decode("metrics", metrics, tmp)
            if m is not None:
                check_metrics(metrics, m)
            t = decode("traces", traces, tmp)
            if t is not None:
                check_traces(traces, t)
    return exit_status(NAME)


if __name__ == "__main__":
    sys.exit(main())
