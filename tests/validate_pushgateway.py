#!/usr/bin/python3
"""Validates the Pushgateway destination against a real Pushgateway.

Starts Debian's prometheus-pushgateway on 127.0.0.1 (a free port, no
persistence file), drives tests/push_driver (commands on its stdin, see
tests/push_driver.c), and scrapes the Pushgateway's /metrics after each
step, checking the pushed values exactly with the prometheus_client parser:
  - PUT with grouping labels (a value with '/' sent in the @base64 form, a
    job with '/'): every family of the registry is in the group, counters,
    gauges, labelled counters and histograms (buckets, count, sum) to the
    last digit, with job and the grouping labels on every sample;
  - PUT replaces the group: families of an earlier push that the new one
    lacks are gone;
  - POST merges (gzip-compressed body): the new family joins those there;
  - a second group (another job) is independent of the first;
  - DELETE removes the group and only it;
  - the destination's statistics: every payload sent, none failed.
The server is stopped at the end, also on failure. Without the binary the
check fails when CI=true, and is skipped (exit 77) otherwise.
Prints "validate_pushgateway: N passed, N failed".
"""

import os
import subprocess
import sys
import tempfile

from prometheus_client.parser import text_string_to_metric_families

from pmcheck import (built_program, check, exit_status, http, missing, start_server, stop_process)

PGW = "/usr/bin/prometheus-pushgateway"
NAME = "validate_pushgateway"


class Driver:
    def __init__(self, exe):
        self.proc = subprocess.Popen([exe], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)

    def __call__(self, line, want_ok=True):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline().strip()
        if want_ok:
            check(reply.startswith("ok"), "driver %r: %r" % (line, reply))
        return reply

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        check(self.proc.returncode == 0, "push_driver exited %r: %s"
              % (self.proc.returncode, self.proc.stderr.read()[-2000:]))


def scrape(base):
    """{(sample name, frozenset(labels)): value} of the pushed samples (those
    with a job label)."""
    status, _, body = http(base + "/metrics")
    if not check(status == 200, "GET /metrics: HTTP %d" % status):
        return {}
    out = {}
    for fam in text_string_to_metric_families(body.decode()):
        for s in fam.samples:
            if "job" in s.labels:
                out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def group_of(samples, labels):
    """Sample name -> value for the samples whose labels include `labels`
    exactly as the group's (other labels: the sample's own)."""
    want = set(labels.items())
    got = {}
    for (name, ls), v in samples.items():
        if want <= set(ls):
            own = tuple(sorted(kv for kv in ls if kv not in want))
            got[(name, own)] = v
    return got


def expect(samples, labels, want, what):
    got = group_of(samples, labels)
    got.pop(("push_time_seconds", ()), None)
    got.pop(("push_failure_time_seconds", ()), None)
    check(got == want, "%s: group %r is %r, want %r" % (what, labels, got, want))


def run(base, exe):
    d = Driver(exe)
    try:
        url = base + "/"
        g1 = {"job": "batch", "instance": "host-1", "path": "/var/tmp"}
        d("reg a")
        d("counter pgw_rows 5")
        d("gauge pgw_temp 21.5")
        d("labeled pgw_req code 200 3")
        d("labeled pgw_req code 500 1")
        for v in ("0.05", "0.5", "2", "20"):
            d("hist pgw_seconds " + v)
        d("pgw gw1 %s batch 0 0 instance=host-1 path=/var/tmp" % url)
        d("export")
        first = {
            ("pgw_rows_total", ()): 5.0,
            ("pgw_temp", ()): 21.5,
            ("pgw_req_total", (("code", "200"),)): 3.0,
            ("pgw_req_total", (("code", "500"),)): 1.0,
            ("pgw_seconds_bucket", (("le", "0.1"),)): 1.0,
            ("pgw_seconds_bucket", (("le", "1"),)): 2.0,  # as the Pushgateway renders them
            ("pgw_seconds_bucket", (("le", "10"),)): 3.0,
            ("pgw_seconds_bucket", (("le", "+Inf"),)): 4.0,
            ("pgw_seconds_count", ()): 4.0,
            ("pgw_seconds_sum", ()): 22.55,
        }
        s = scrape(base)
        expect(s, g1, first, "PUT")
        check(("push_time_seconds", frozenset(g1.items())) in s, "PUT: no push_time_seconds")

        # A second group: a job holding '/', so base64 in the path.
        g2 = {"job": "nightly/etl", "instance": ""}  # the Pushgateway adds instance=""
        d("reg d")
        d("counter pgw_rows 1")
        d("pgw gw4 %s nightly/etl 0 0" % url)
        d("export")
        s = scrape(base)
        expect(s, g2, {("pgw_rows_total", ()): 1.0}, "second group")
        expect(s, g1, first, "first group after the second")

        # PUT replaces the group's families.
        d("reg b")
        d("gauge pgw_other 7")
        d("pgw gw2 %s batch 0 0 instance=host-1 path=/var/tmp" % url)
        d("export")
        expect(scrape(base), g1, {("pgw_other", ()): 7.0}, "PUT replaces")

        # POST merges (and gzip on the way).
        d("reg c")
        d("gauge pgw_third 9")
        d("pgw gw3 %s batch 1 1 instance=host-1 path=/var/tmp" % url)
        d("export")
        expect(scrape(base), g1, {("pgw_other", ()): 7.0, ("pgw_third", ()): 9.0}, "POST merges")

        # The values move: a second push of the same registry.
        d("reg a")
        d("counter pgw_rows 2")
        d("reg d")
        d("counter pgw_rows 10")
        d("export")
        expect(scrape(base), g2, {("pgw_rows_total", ()): 11.0}, "second push")

        # DELETE removes that group only.
        d("delete gw3")
        s = scrape(base)
        expect(s, g1, {}, "DELETE")
        expect(s, g2, {("pgw_rows_total", ()): 11.0}, "other group after DELETE")

        for gw, n in (("gw1", 1), ("gw2", 1), ("gw3", 2), ("gw4", 2)):
            st = d("stats " + gw).split()
            if check(len(st) == 7, "stats %s: %r" % (gw, st)):
                queued, sent, rejected, dropped, attempts, failed = map(int, st[1:])
                check((queued, sent, rejected, dropped, attempts, failed) == (n, n, 0, 0, n, 0),
                      "%s stats queued/sent/rejected/dropped/attempts/failed %r, want %d sent"
                      % (gw, st[1:], n))
    finally:
        d.close()


def main():
    exe = built_program("push_driver")
    if not exe:
        return exit_status(NAME)
    if not os.access(PGW, os.X_OK):
        missing(NAME, PGW, "prometheus-pushgateway")
        return exit_status(NAME)
    with tempfile.TemporaryDirectory(prefix="pm-pushgateway-") as tmp:
        proc, base = start_server("pushgateway", lambda port, attempt: [
            PGW, "--web.listen-address=127.0.0.1:%d" % port, "--log.level=warn"], tmp)
        if not check(proc is not None, "pushgateway did not become ready"):
            return exit_status(NAME)
        try:
            run(base, exe)
        finally:
            stop_process(proc)
    return exit_status(NAME)


if __name__ == "__main__":
    sys.exit(main())
