#!/usr/bin/python3
"""Validates the remote-write destination against a real Prometheus.

  - python3-snappy (Debian's binding of Google's library) decompresses the
    body tests/push_fixture writes (dump_rw_snappy) to exactly its protobuf
    (dump_rw_raw), and the protobuf is read here field by field (prompb's
    WriteRequest, TimeSeries, Label, Sample): labels sorted in byte order,
    __name__ present, one sample per series at one timestamp;
  - Debian's prometheus on 127.0.0.1 (a free port, a temporary storage
    directory, a config without scrape jobs) started with
    --web.enable-remote-write-receiver; `push_fixture remote_write
    <base>/api/v1/write` exports once and flushes (exit 0: delivered); then
    /api/v1/query for every series (tests/push_fixture.c's fixed values):
    fx_requests_total{code="200"} 42 and {code="500"} 3,
    fx_temperature_celsius -12.5, fx_latency_seconds_bucket le 0.1 / 1.0 /
    10.0 / +Inf = 1 / 3 / 4 / 5, _sum 56.05, _count 5, each with exactly the
    labels expected, job="push_fixture" and instance="fx1" included, and no
    other fx_ series;
  - `push_fixture bench_rw <url> 10000`: 10,000 more series pushed ten
    times; the best CPU time of an export (snapshot, encode, compress,
    queue) is printed and checked against the 10 ms target (100 ms in
    sanitized builds), and the 10,000 series are all in Prometheus;
  - a push to a path Prometheus does not serve is rejected (404), not
    retried, and reported by the fixture (exit 1).
A missing prometheus or python3-snappy fails the run when CI=true;
otherwise the checks needing it are skipped (exit 77 when something was
skipped and nothing failed). Prints "validate_remote_write: N passed, N failed".
"""

import json
import os
import subprocess
import sys
import tempfile
import urllib.parse

from pmcheck import (built_program, check, exit_status, http, missing, poll, start_server,
                     stop_process)

try:
    import snappy
except ImportError:  # reported in main()
    snappy = None

NAME = "validate_remote_write"
PROMETHEUS = "/usr/bin/prometheus"
DEST = {"job": "push_fixture", "instance": "fx1"}

# (metric name, extra labels) -> value: tests/push_fixture.c's contents.
EXPECTED = {
    ("fx_requests_total", (("code", "200"),)): 42.0,
    ("fx_requests_total", (("code", "500"),)): 3.0,
    ("fx_temperature_celsius", ()): -12.5,
    ("fx_latency_seconds_bucket", (("le", "0.1"),)): 1.0,
    ("fx_latency_seconds_bucket", (("le", "1.0"),)): 3.0,
    ("fx_latency_seconds_bucket", (("le", "10.0"),)): 4.0,
    ("fx_latency_seconds_bucket", (("le", "+Inf"),)): 5.0,
    ("fx_latency_seconds_sum", ()): 56.05,
    ("fx_latency_seconds_count", ()): 5.0,
}


# ---------------------------------------------------------------- protobuf


def varint(b, i):
    v = shift = 0
    while True:
        if i >= len(b) or shift > 63:
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        v |= (c & 0x7F) << shift
        if not c & 0x80:
            return v, i
        shift += 7


def fields(b):
    """(field number, wire type, value) of one message; bytes for wire type 2."""
    i, out = 0, []
    while i < len(b):
        tag, i = varint(b, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v, i = b[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(b, i)
            v, i = b[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wt)
        if i > len(b):
            raise ValueError("field past the end")
        out.append((num, wt, v))
    return out


def decode_write_request(raw):
    """[(labels as [(name, value)], [(value, timestamp ms)])]."""
    import struct
    series = []
    for num, wt, ts in fields(raw):
        check(num == 1 and wt == 2, "WriteRequest field %d/%d" % (num, wt))
        labels, samples = [], []
        for n2, w2, v2 in fields(ts):
            if n2 == 1 and w2 == 2:
                lf = {n3: v3 for n3, w3, v3 in fields(v2) if w3 == 2}
                labels.append((lf.get(1, b"").decode(), lf.get(2, b"").decode()))
            elif n2 == 2 and w2 == 2:
                sf = {n3: (w3, v3) for n3, w3, v3 in fields(v2)}
                check(sf.get(1, (None,))[0] == 1 and sf.get(2, (None,))[0] == 0,
                      "Sample fields %r" % sorted(sf))
                value = struct.unpack("<d", sf[1][1])[0]
                samples.append((value, sf[2][1]))
            else:
                check(False, "TimeSeries field %d/%d" % (n2, w2))
        series.append((labels, samples))
    return series


def check_body(exe):
    raw = subprocess.run([exe, "dump_rw_raw"], stdout=subprocess.PIPE, timeout=60).stdout
    packed = subprocess.run([exe, "dump_rw_snappy"], stdout=subprocess.PIPE, timeout=60).stdout
    check(len(raw) > 0 and len(packed) > 0, "empty bodies")
    if snappy is None:
        missing(NAME, "python3-snappy", "python3-snappy")
    else:
        try:
            check(snappy.uncompress(packed) == raw,
                  "python-snappy decodes our block to something else")
        except Exception as e:  # snappy.UncompressError and friends
            check(False, "python-snappy rejects our block: %s" % e)
        check(len(packed) < len(raw), "snappy body %d bytes for %d raw" % (len(packed), len(raw)))
    try:
        series = decode_write_request(raw)
    except (ValueError, KeyError) as e:
        check(False, "WriteRequest does not decode: %s" % e)
        return
    check(len(series) == len(EXPECTED), "%d series, want %d" % (len(series), len(EXPECTED)))
    stamps = set()
    for labels, samples in series:
        names = [n for n, _ in labels]
        check(names == sorted(names, key=lambda s: s.encode()),
              "labels not in byte order: %r" % names)
        check(len(set(names)) == len(names), "repeated label: %r" % names)
        d = dict(labels)
        check("__name__" in d, "no __name__ in %r" % labels)
        check(all(d.get(k) == v for k, v in DEST.items()), "destination labels missing: %r" % d)
        check(len(samples) == 1, "%d samples in %r" % (len(samples), d))
        key = (d.get("__name__"), tuple(sorted((k, v) for k, v in d.items()
                                               if k != "__name__" and k not in DEST)))
        check(key in EXPECTED and samples and samples[0][0] == EXPECTED[key],
              "series %r = %r" % (key, samples))
        stamps.update(t for _, t in samples)
    check(len(stamps) == 1, "timestamps %r" % stamps)


# ---------------------------------------------------------------- prometheus


def start_prometheus(tmp):
    cfg = os.path.join(tmp, "prometheus.yml")
    with open(cfg, "w") as f:
        f.write(json.dumps({"global": {"evaluation_interval": "1m"}}))
    return start_server("prometheus", lambda port, attempt: [
        PROMETHEUS, "--config.file=" + cfg, "--web.enable-remote-write-receiver",
        "--storage.tsdb.path=" + os.path.join(tmp, "data%d" % attempt),
        "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"], tmp)


def query(base, expr):
    """The result vector of an instant query, or None."""
    status, _, body = http(base + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    if status != 200:
        return None
    doc = json.loads(body)
    if doc.get("status") != "success":
        return None
    return doc["data"]["result"]


def run_fixture(exe, args, what):
    proc = subprocess.run([exe] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=120)
    out = proc.stdout.decode(errors="replace")
    return proc.returncode, out, proc.stderr.decode(errors="replace")


def check_peer(exe, base):
    url = base + "/api/v1/write"
    rc, out, err = run_fixture(exe, ["remote_write", url], "push")
    check(rc == 0 and "sent=1 " in out, "push_fixture remote_write exited %d: %s %s"
          % (rc, out, err))
    got = poll(lambda: query(base, '{__name__=~"fx_.*"}'), 30,
               done=lambda r: r is not None and len(r) >= len(EXPECTED))
    if not check(got is not None and len(got) == len(EXPECTED),
                 "Prometheus holds %r fx_ series, want %d"
                 % (None if got is None else len(got), len(EXPECTED))):
        return
    seen = {}
    for item in got:
        m = dict(item["metric"])
        name = m.pop("__name__")
        for k, v in DEST.items():
            check(m.pop(k, None) == v, "%s: label %s missing or wrong in %r"
                  % (name, k, item["metric"]))
        seen[(name, tuple(sorted(m.items())))] = float(item["value"][1])
    for key, want in EXPECTED.items():
        check(seen.get(key) == want, "Prometheus %s%r = %r, want %r"
              % (key[0], dict(key[1]), seen.get(key), want))
    check(set(seen) == set(EXPECTED), "unexpected series: %r" % (set(seen) - set(EXPECTED)))
    # One query per series as well, by its full label set, for exact values.
    for (name, extra), want in EXPECTED.items():
        sel = ",".join('%s="%s"' % kv for kv in list(extra) + sorted(DEST.items()))
        r = query(base, "%s{%s}" % (name, sel))
        check(r is not None and len(r) == 1 and float(r[0]["value"][1]) == want,
              "query %s{%s}: %r" % (name, sel, r))

    # The target: 10,000 series per push under 10 ms of CPU.
    rc, out, err = run_fixture(exe, ["bench_rw", url, "10000"], "bench")
    check(rc == 0, "push_fixture bench_rw exited %d: %s %s" % (rc, out, err))
    line = [ln for ln in out.splitlines() if ln.startswith("bench ")]
    if check(len(line) == 1, "bench output %r" % out):
        print(line[0])
        kv = dict(p.split("=") for p in line[0].split()[1:])
        best = float(kv["best_cpu_ms"])
        # Sanitizers multiply the cost: the target holds for plain builds.
        bound = 10.0 if kv.get("sanitized") == "0" else 100.0
        check(best < bound, "export of 10,000 series took %.2f ms of CPU, bound %g" % (best, bound))
    r = poll(lambda: query(base, "count(fx_bench_total)"), 30,
             done=lambda v: v is not None and v and float(v[0]["value"][1]) == 10000)
    check(r is not None and r and float(r[0]["value"][1]) == 10000,
          "count(fx_bench_total) = %r, want 10000" % r)

    # A path Prometheus does not serve: 404, rejected, not retried.
    rc, out, err = run_fixture(exe, ["remote_write", base + "/api/v1/nowhere"], "404")
    check(rc == 1 and "sent=0 " in out and "rejected=1" in out and "failed=0 " in out,
          "push to a 404 path: exit %d, %s" % (rc, out))


def main():
    exe = built_program("push_fixture")
    if not exe:
        return exit_status(NAME)
    print("using " + exe)
    check_body(exe)
    if not os.access(PROMETHEUS, os.X_OK):
        missing(NAME, PROMETHEUS, "prometheus")
        return exit_status(NAME)
    with tempfile.TemporaryDirectory(prefix="pm-remote-write-") as tmp:
        proc, base = start_prometheus(tmp)
        try:
            if check(proc is not None, "prometheus did not start"):
                check_peer(exe, base)
        finally:
            stop_process(proc)
    return exit_status(NAME)


if __name__ == "__main__":
    sys.exit(main())
