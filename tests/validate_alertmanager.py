#!/usr/bin/python3
"""Validates pm_alert_format_alertmanager against a real Alertmanager.

Runs tests/dump_alerts (found at $PM_BUILD_ROOT/tests/dump_alerts, or the
newest build*/tests/dump_alerts of the source tree), which prints the
Alertmanager v2 body of a fixed set of events (tests/dump_alerts.c), and:
  - the body on its own: strict JSON, one object per firing or resolved event
    (pending ones skipped), only the fields of a postableAlert, endsAt only on
    resolved alerts, values as EXPECTED below, hostile strings byte for byte;
  - the peer: starts Debian's prometheus-alertmanager on 127.0.0.1 (a free
    port, a temporary config with a null receiver and a temporary storage
    directory, clustering off), waits for /-/ready, POSTs the body to
    /api/v2/alerts (expects 200), then GETs /api/v2/alerts and checks that
    every firing alert is there, active, with the exact labels, annotations,
    startsAt and generatorURL, and with the fingerprint the library computed
    (the two hash label sets the same way); that the resolved and pending ones
    are not among the active alerts; and, from its /metrics, that it received
    exactly the expected numbers of firing and resolved alerts.
The server is stopped at the end, also on failure. Without the binary the
peer check fails when CI=true, and is skipped (exit 77) otherwise.
Prints "validate_alertmanager: N passed, N failed"; exit status 0 only if all
passed.
"""

import datetime
import json
import os
import re
import sys
import tempfile

from pmcheck import (built_program, check, exit_status, http, missing, run_dump, start_server,
                     stop_process, summary)

AM = "/usr/bin/prometheus-alertmanager"
NAME = "validate_alertmanager"

# ---------------------------------------------------------------- expectations
# Keep in step with EVENTS in tests/dump_alerts.c.

GENERATOR = "http://127.0.0.1:9090/graph?g0.expr=up%7Bjob%3D%22api%22%7D&g0.tab=1"
UTF8 = "é✓ üñí 😀"
T0 = "2023-11-14T22:13:20.123Z"

EXPECTED = [
    dict(state="firing",
         labels={"alertname": "HighErrorRate", "path": '/v1/items?q="a\\b"\nline2',
                 "service": "api", "severity": "critical"},
         annotations={"description": 'multi\nline "quoted" \\ back\\slash',
                      "summary": "error rate 7.12% on api é✓ 😀"},
         startsAt=T0, endsAt=None),
    dict(state="firing",
         labels={"alertname": "DiskFull", "device": "C:\\dir\\", "mount": UTF8,
                 "severity": "warning"},
         annotations={"runbook": "tab\there ctl\x01 end \\n is not a newline"},
         startsAt="2023-11-14T22:13:21.123Z", endsAt=None),
    dict(state="resolved",
         labels={"alertname": "MemoryHigh", "instance": "host:9100", "severity": "info"},
         annotations={"summary": "back to normal"},
         startsAt="2023-11-14T22:03:20.123Z", endsAt="2023-11-14T22:12:20.123Z"),
    dict(state="resolved",
         labels={"alertname": "Blip", "quote": '"', "severity": "warning"},
         annotations={},
         startsAt="2023-11-14T22:11:20.123Z", endsAt="2023-11-14T22:11:40.123Z"),
    dict(state="firing",
         labels={"alertname": "Bare", "severity": "info"},
         annotations={},
         startsAt=T0, endsAt=None),
]
PENDING = ["Slow"]  # in the dump's events, absent from the body

RFC3339_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
POSTABLE_FIELDS = {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}


def parse_time(s):
    """An RFC 3339 time as an aware datetime (Go may print other fraction widths)."""
    m = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", s or "")
    if not m:
        return None
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S")
    frac = (m.group(2) or "0")[:6].ljust(6, "0")
    tz = datetime.timezone.utc
    if m.group(3) != "Z":
        sign = 1 if m.group(3)[0] == "+" else -1
        tz = datetime.timezone(sign * datetime.timedelta(hours=int(m.group(3)[1:3]),
                                                         minutes=int(m.group(3)[4:6])))
    return base.replace(microsecond=int(frac), tzinfo=tz)


def reject_constant(token):
    raise ValueError("non-standard JSON token %s" % token)


def fnv_fingerprint(labels):
    """Prometheus' model.LabelSet.Fingerprint: FNV-1a 64 over name 0xff value 0xff, sorted."""
    h = 0xCBF29CE484222325
    for name in sorted(labels, key=lambda k: k.encode()):
        for part in (name, labels[name]):
            for b in part.encode() + b"\xff":
                h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


# ---------------------------------------------------------------- the body alone


def check_body(text):
    check(text.endswith("\n"), "body: dump_alerts adds no final newline")
    try:
        body = json.loads(text, parse_constant=reject_constant)
    except ValueError as e:
        check(False, "body is not strict JSON: %s" % e)
        return None
    if not check(isinstance(body, list), "body: not a JSON array"):
        return None
    if not check(len(body) == len(EXPECTED), "body: %d alerts, want %d" % (len(body), len(EXPECTED))):
        return body
    for i, (a, e) in enumerate(zip(body, EXPECTED)):
        w = "body alert %d (%s)" % (i, e["labels"]["alertname"])
        if not check(isinstance(a, dict), "%s: not an object" % w):
            continue
        check(set(a) <= POSTABLE_FIELDS, "%s: fields %r" % (w, sorted(a)))
        check(a.get("labels") == e["labels"], "%s: labels %r, want %r" % (w, a.get("labels"), e["labels"]))
        check(a.get("annotations") == e["annotations"],
              "%s: annotations %r, want %r" % (w, a.get("annotations"), e["annotations"]))
        check(a.get("startsAt") == e["startsAt"], "%s: startsAt %r, want %r" % (w, a.get("startsAt"), e["startsAt"]))
        check(RFC3339_MS.match(a.get("startsAt", "")) is not None, "%s: startsAt format" % w)
        check(a.get("endsAt") == e["endsAt"], "%s: endsAt %r, want %r" % (w, a.get("endsAt"), e["endsAt"]))
        check(a.get("generatorURL") == GENERATOR, "%s: generatorURL %r" % (w, a.get("generatorURL")))
    names = [a.get("labels", {}).get("alertname") for a in body if isinstance(a, dict)]
    for p in PENDING:
        check(p not in names, "body: pending alert %s was sent" % p)
    return body


def check_fingerprints(text):
    """The library's fingerprints, checked against the Prometheus algorithm."""
    fps = {}
    for line in text.splitlines():
        parts = line.split(" ")
        if check(len(parts) == 2, "fingerprints: bad line %r" % line):
            fps[parts[0]] = parts[1]
    for e in EXPECTED:
        name = e["labels"]["alertname"]
        check(fps.get(name) == fnv_fingerprint(e["labels"]),
              "fingerprint of %s: %r, want %r" % (name, fps.get(name), fnv_fingerprint(e["labels"])))
    return fps


# ---------------------------------------------------------------- the peer

CONFIG = """route:
  receiver: "null"
  group_wait: 1h
receivers:
  - name: "null"
"""


def start(tmp):
    """Starts the server on a free port; returns (process, base URL) or (None, None)."""
    cfg = os.path.join(tmp, "alertmanager.yml")
    with open(cfg, "w") as f:
        f.write(CONFIG)
    return start_server("alertmanager", lambda port, attempt: [
        AM, "--config.file=" + cfg, "--storage.path=" + os.path.join(tmp, "data%d" % attempt),
        "--web.listen-address=127.0.0.1:%d" % port, "--cluster.listen-address=",
        "--log.level=warn"], tmp)


def metric(text, name, labels):
    """The value of one sample of the Prometheus text `text`, or None."""
    for line in text.splitlines():
        if line.startswith(name + "{") and all('%s="%s"' % kv in line for kv in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def check_peer(raw_body, fps):
    with tempfile.TemporaryDirectory(prefix="pm-alertmanager-") as tmp:
        proc, base = start(tmp)
        if not check(proc is not None, "alertmanager did not become ready"):
            return
        try:
            status, _, reply = http(base + "/api/v2/alerts", {"Content-Type": "application/json"},
                                    data=raw_body, method="POST")
            check(status == 200, "POST /api/v2/alerts: HTTP %d %r" % (status, reply[:500]))
            status, _, reply = http(base + "/api/v2/alerts")
            if not check(status == 200, "GET /api/v2/alerts: HTTP %d" % status):
                return
            got = json.loads(reply)
            by_name = {}
            for a in got:
                by_name.setdefault(a.get("labels", {}).get("alertname"), []).append(a)
            now = datetime.datetime.now(datetime.timezone.utc)
            for e in EXPECTED:
                name = e["labels"]["alertname"]
                found = by_name.get(name, [])
                if e["state"] == "resolved":
                    # Alertmanager lists only alerts that have not ended.
                    check(not found, "resolved alert %s listed as active: %r" % (name, found))
                    continue
                if not check(len(found) == 1, "firing alert %s: %d in the list" % (name, len(found))):
                    continue
                a = found[0]
                w = "alertmanager's %s" % name
                check(a.get("labels") == e["labels"], "%s labels %r, want %r" % (w, a.get("labels"), e["labels"]))
                check(a.get("annotations") == e["annotations"],
                      "%s annotations %r, want %r" % (w, a.get("annotations"), e["annotations"]))
                check(parse_time(a.get("startsAt")) == parse_time(e["startsAt"]),
                      "%s startsAt %r, want %r" % (w, a.get("startsAt"), e["startsAt"]))
                ends = parse_time(a.get("endsAt"))
                check(ends is not None and ends > now, "%s endsAt %r is not in the future" % (w, a.get("endsAt")))
                check(a.get("status", {}).get("state") in ("active", "unprocessed"),
                      "%s state %r" % (w, a.get("status")))
                check(a.get("generatorURL") == GENERATOR, "%s generatorURL %r" % (w, a.get("generatorURL")))
                check(a.get("fingerprint") == fps.get(name),
                      "%s fingerprint %r, library %r" % (w, a.get("fingerprint"), fps.get(name)))
            for p in PENDING:
                check(p not in by_name, "pending alert %s reached alertmanager" % p)
            check(len(got) == sum(e["state"] == "firing" for e in EXPECTED),
                  "alertmanager lists %d alerts" % len(got))
            status, _, reply = http(base + "/metrics")
            if check(status == 200, "GET /metrics: HTTP %d" % status):
                text = reply.decode(errors="replace")
                for state in ("firing", "resolved"):
                    n = metric(text, "alertmanager_alerts_received_total",
                               {"status": state, "version": "v2"})
                    want = sum(e["state"] == state for e in EXPECTED)
                    check(n == want, "alertmanager received %r %s alerts, want %d" % (n, state, want))
                n = metric(text, "alertmanager_alerts_invalid_total", {"version": "v2"})
                check(n in (None, 0.0), "alertmanager counted %r invalid alerts" % n)
        finally:
            stop_process(proc)


def main():
    exe = built_program("dump_alerts")
    if not exe:
        return summary(NAME)
    print("using " + exe)
    text, raw = run_dump(exe, "alertmanager")
    check_body(text)
    fps = check_fingerprints(run_dump(exe, "fingerprints")[0])
    if not os.access(AM, os.X_OK):
        missing(NAME, AM, "prometheus-alertmanager")
    else:
        check_peer(raw.rstrip(b"\n"), fps)
    return exit_status(NAME)


if __name__ == "__main__":
    sys.exit(main())
