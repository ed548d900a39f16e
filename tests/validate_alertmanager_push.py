#!/usr/bin/python3
"""Validates the Alertmanager destination against a real Alertmanager.

Starts Debian's prometheus-alertmanager on 127.0.0.1 (a free port, a
temporary config with a null receiver and resolve_timeout 3s, a temporary
storage directory, clustering off) as tests/validate_alertmanager.py does,
and drives tests/push_driver (see tests/push_driver.c): an alert engine with
the rule QueueDeep (am_queue_depth > 10, label team=ops, annotation
"depth {{ $value }}") and an Alertmanager destination resending every 0.5 s.
  - the alert fires and arrives: GET /api/v2/alerts lists it, active, with
    the exact labels, annotation, generatorURL and a startsAt of now;
  - the resend keeps it: after more firing posts than resolve_timeout
    allows without them (counted by Alertmanager's
    alertmanager_alerts_received_total), it is still active, its endsAt in
    the future, its startsAt unchanged;
  - resolved: the engine resolves it, the destination posts it with endsAt,
    Alertmanager counts one resolved alert and no longer lists it active;
  - the destination's statistics: nothing rejected, dropped or failed.
The server is stopped at the end, also on failure. Without the binary the
check fails when CI=true, and is skipped (exit 77) otherwise.
Prints "validate_alertmanager_push: N passed, N failed".
"""

import datetime
import json
import os
import sys
import tempfile

from pmcheck import (built_program, check, exit_status, http, missing, poll, start_server,
                     stop_process)
from validate_alertmanager import metric, parse_time
from validate_pushgateway import Driver

AM = "/usr/bin/prometheus-alertmanager"
NAME = "validate_alertmanager_push"

CONFIG = """global:
  resolve_timeout: 3s
route:
  receiver: "null"
  group_wait: 1h
receivers:
  - name: "null"
"""


def alerts(base, name):
    status, _, body = http(base + "/api/v2/alerts")
    if status != 200:
        return None
    return [a for a in json.loads(body) if a.get("labels", {}).get("alertname") == name]


def received(base, state):
    status, _, body = http(base + "/metrics")
    if status != 200:
        return None
    return metric(body.decode(errors="replace"), "alertmanager_alerts_received_total",
                  {"status": state, "version": "v2"}) or 0.0


def run(base, exe):
    d = Driver(exe)
    try:
        d("reg a")
        d("gauge am_queue_depth 50")
        d("am am1 %s/ 0.5" % base)
        t0 = datetime.datetime.now(datetime.timezone.utc)
        d("tick")
        got = alerts(base, "QueueDeep")
        if not check(got is not None and len(got) == 1, "firing alert listed: %r" % got):
            return
        a = got[0]
        check(a.get("labels") == {"alertname": "QueueDeep", "severity": "warning", "team": "ops"},
              "labels %r" % a.get("labels"))
        check(a.get("annotations") == {"summary": "depth 50"}, "annotations %r" % a.get("annotations"))
        check(a.get("generatorURL") == "http://127.0.0.1/graph", "generatorURL %r" % a.get("generatorURL"))
        check(a.get("status", {}).get("state") in ("active", "unprocessed"), "state %r" % a.get("status"))
        starts = parse_time(a.get("startsAt"))
        check(starts is not None and abs((starts - t0).total_seconds()) < 5,
              "startsAt %r, now %s" % (a.get("startsAt"), t0))
        ends = parse_time(a.get("endsAt"))
        check(ends is not None and ends > datetime.datetime.now(datetime.timezone.utc),
              "endsAt %r not in the future" % a.get("endsAt"))

        # Resends: at 0.5 s, 10 of them span 5 s, past resolve_timeout (3 s).
        n = poll(lambda: received(base, "firing"), 30, 0.2, done=lambda v: v is not None and v >= 11)
        check(n is not None and n >= 11, "firing posts received: %r" % n)
        got = alerts(base, "QueueDeep")
        if check(got is not None and len(got) == 1, "still listed after the resends: %r" % got):
            a = got[0]
            now = datetime.datetime.now(datetime.timezone.utc)
            check((now - t0).total_seconds() > 3.5, "the resends took %.1f s" % (now - t0).total_seconds())
            check(parse_time(a.get("startsAt")) == starts, "startsAt moved: %r" % a.get("startsAt"))
            ends = parse_time(a.get("endsAt"))
            check(ends is not None and ends > now, "endsAt %r not in the future" % a.get("endsAt"))
            check(a.get("status", {}).get("state") == "active", "state %r" % a.get("status"))

        # Resolved: posted with endsAt, so it ends at once.
        d("gauge am_queue_depth 0")
        d("tick")
        check(received(base, "resolved") == 1.0, "resolved posts received: %r" % received(base, "resolved"))
        got = alerts(base, "QueueDeep")
        check(got == [], "resolved alert still listed: %r" % got)
        st = d("stats am1").split()
        if check(len(st) == 7, "stats: %r" % st):
            queued, sent, rejected, dropped, attempts, failed = map(int, st[1:])
            check(queued == sent and rejected == 0 and dropped == 0 and failed == 0 and
                  attempts == sent and sent >= 12,
                  "stats queued/sent/rejected/dropped/attempts/failed %r" % st[1:])
        status, _, body = http(base + "/metrics")
        n = metric(body.decode(errors="replace"), "alertmanager_alerts_invalid_total", {"version": "v2"})
        check(n in (None, 0.0), "alertmanager counted %r invalid alerts" % n)
    finally:
        d.close()


def main():
    exe = built_program("push_driver")
    if not exe:
        return exit_status(NAME)
    if not os.access(AM, os.X_OK):
        missing(NAME, AM, "prometheus-alertmanager")
        return exit_status(NAME)
    with tempfile.TemporaryDirectory(prefix="pm-alertmanager-push-") as tmp:
        cfg = os.path.join(tmp, "alertmanager.yml")
        with open(cfg, "w") as f:
            f.write(CONFIG)
        proc, base = start_server("alertmanager", lambda port, attempt: [
            AM, "--config.file=" + cfg, "--storage.path=" + os.path.join(tmp, "data%d" % attempt),
            "--web.listen-address=127.0.0.1:%d" % port, "--cluster.listen-address=",
            "--log.level=warn"], tmp)
        if not check(proc is not None, "alertmanager did not become ready"):
            return exit_status(NAME)
        try:
            run(base, exe)
        finally:
            stop_process(proc)
    return exit_status(NAME)


if __name__ == "__main__":
    sys.exit(main())
