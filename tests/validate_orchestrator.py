#!/usr/bin/python3
"""Runs the orchestrator demo (examples/orchestrator, the README's first
command) and checks what a newcomer sees.

The program is $PM_BUILD_ROOT/examples/orchestrator (else the newest
build*/examples/orchestrator of the source tree). Three runs:
  - `--duration 5 --port 0`: reads the dashboard URL from its output and,
    while it runs, fetches /metrics (parsed with prometheus_client: tasks_total
    by task_type, status and agent; task_duration_seconds with consistent
    buckets for every task type; the two gauges) and polls /api/v1/alerts
    (schema of every event) until an alert fires. After it exits: status 0,
    nothing on stderr, and a summary whose numbers hold together: tasks done
    > 0 and = ok + failed, a success rate in [0, 100] that matches them, one
    latency row per task type with p50 <= p95 <= p99 (or "-" with no task),
    the rows adding up to the tasks done, operations ranked by self time, the
    slowest trace with a critical path whose steps add up to its duration, at
    least one alert fired, and a server request count that includes ours.
  - `--port 0 --quiet` (60 s), sent SIGINT about 2 s in once tasks are done:
    it stops at once, prints the summary marked "(interrupted)" with no
    progress lines, and exits 0.
  - `--help` exits 0 with the usage; an unknown flag exits 2.
Without prometheus_client the check fails when CI=true, and is skipped
(exit 77) otherwise. Prints "validate_orchestrator: N passed, N failed".
"""

import json
import math
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time

from pmcheck import OPENER, check, exit_status, find_program, missing, summary

NAME = "validate_orchestrator"
TASK_TYPES = ["code_review", "test_run", "deploy", "research", "summarize"]
STATUSES = {"ok", "error", "cancelled"}
RULES = {"HighErrorRate", "SlowTasks", "TaskQueueBacklog"}
STATES = {"pending", "firing", "resolved", "inactive"}
SEVERITIES = {"info", "warning", "critical"}
WORKERS = 4  # the demo's default

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    text_string_to_metric_families = None


class Demo:
    """The demo in the background; threads collect its stdout and stderr so
    that its pipes never fill, and hand stdout over line by line."""

    def __init__(self, exe, args):
        self.started = time.monotonic()
        self.proc = subprocess.Popen([exe] + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines = queue.Queue()
        self.out, self.err = [], []
        self.readers = [
            threading.Thread(target=self._read, args=(self.proc.stdout, self.out, True)),
            threading.Thread(target=self._read, args=(self.proc.stderr, self.err, False))]
        for t in self.readers:
            t.start()

    def _read(self, pipe, into, forward):
        for line in pipe:
            into.append(line)
            if forward:
                self.lines.put(line)
        if forward:
            self.lines.put(None)

    def wait_line(self, pattern, seconds):
        """The first stdout line matching pattern within `seconds`, or None."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return None
            if line is None:
                return None
            m = re.search(pattern, line)
            if m:
                return m

    def running(self):
        return self.proc.poll() is None

    def finish(self, seconds):
        """Waits for the exit; returns (status, stdout, stderr); kills on timeout."""
        try:
            rc = self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
            check(False, "the demo did not exit within %d s" % seconds)
        for t in self.readers:
            t.join()
        return rc, "".join(self.out), "".join(self.err)


def fetch(url):
    """(status, body text) of a GET, or (None, error text)."""
    try:
        with OPENER.open(url, timeout=10) as r:
            return r.status, r.read().decode("utf-8")
    except Exception as e:  # noqa: BLE001 - any failure is a failed check
        return None, str(e)


# ---------------------------------------------------------------- /metrics


def tasks_done(text):
    """Sum of tasks_total over every series, or None when the text does not parse."""
    try:
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "tasks_total")
    except Exception:  # noqa: BLE001
        return None


def check_metrics(text):
    try:
        families = {f.name: f for f in text_string_to_metric_families(text)}
    except Exception as e:  # noqa: BLE001
        check(False, "/metrics does not parse: %s" % e)
        return
    tasks = families.get("tasks")
    if check(tasks is not None and tasks.type == "counter", "/metrics: no counter tasks_total"):
        seen, bad = set(), []
        for s in tasks.samples:
            if s.name != "tasks_total":
                continue
            lab = s.labels
            seen.add((lab.get("task_type"), lab.get("status"), lab.get("agent")))
            if not (math.isfinite(s.value) and s.value >= 0 and s.value == int(s.value)):
                bad.append((lab, s.value))
        check(not bad, "tasks_total: values %s" % bad[:3])
        check(all(t in TASK_TYPES and st in STATUSES and re.fullmatch(r"agent-[1-4]", a or "")
                  for t, st, a in seen), "tasks_total: unexpected labels %s" % sorted(seen))
        check(len(seen) == len(TASK_TYPES) * len(STATUSES) * WORKERS,
              "tasks_total: %d series, expected every type x status x agent" % len(seen))

    hist = families.get("task_duration_seconds")
    if check(hist is not None and hist.type == "histogram",
             "/metrics: no histogram task_duration_seconds"):
        by_type = {}
        for s in hist.samples:
            by_type.setdefault(s.labels.get("task_type"), []).append(s)
        check(sorted(by_type) == sorted(TASK_TYPES),
              "task_duration_seconds: task types %s" % sorted(by_type))
        for t, samples in by_type.items():
            buckets = sorted((float(s.labels["le"]), s.value) for s in samples
                             if s.name.endswith("_bucket"))
            count = [s.value for s in samples if s.name.endswith("_count")]
            total = [s.value for s in samples if s.name.endswith("_sum")]
            counts = [v for _, v in buckets]
            check(buckets and buckets[-1][0] == math.inf and count and counts[-1] == count[0]
                  and counts == sorted(counts) and total and total[0] >= 0,
                  "task_duration_seconds{task_type=%s}: buckets %s count %s sum %s"
                  % (t, buckets, count, total))

    for gauge in ("task_queue_length", "agents_busy"):
        f = families.get(gauge)
        ok = f is not None and f.type == "gauge" and len(f.samples) == 1
        check(ok and 0 <= f.samples[0].value <= (WORKERS if gauge == "agents_busy" else 256),
              "/metrics: gauge %s: %s" % (gauge, f.samples if f else "missing"))


# ---------------------------------------------------------------- /api/v1/alerts


def read_alerts_doc(text):
    """(problems, rules seen firing) of one /api/v1/alerts answer: every event
    must have the schema of doc/server.md and one of the demo's rules."""
    try:
        doc = json.loads(text)
    except ValueError as e:
        return ["not JSON: %s" % e], set()
    if not (isinstance(doc, dict) and isinstance(doc.get("active"), list)
            and isinstance(doc.get("history"), list)
            and isinstance(doc.get("health_score"), (int, float))
            and 0 <= doc["health_score"] <= 100):
        return ["%.300s" % text], set()
    problems, firing = [], set()
    for ev in doc["active"] + doc["history"]:
        ok = (isinstance(ev, dict) and ev.get("rule") in RULES and ev.get("state") in STATES
              and ev.get("severity") in SEVERITIES and isinstance(ev.get("labels"), dict)
              and ev["labels"].get("alertname") == ev.get("rule")
              and re.fullmatch(r"[0-9a-f]{16}", ev.get("fingerprint") or ""))
        if not ok:
            problems.append("event %.300s" % json.dumps(ev))
        elif ev["state"] == "firing":
            firing.add(ev["rule"])
    return problems, firing


# ---------------------------------------------------------------- the summary


def section(out, header):
    """The indented rows after the line starting with `header`, to the blank line."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(header):
            rows = []
            for row in lines[i + 1:]:
                if not row.strip():
                    break
                rows.append(row)
            return rows
    return None


def check_summary(out, requests_made, scrapes_made):
    m = re.search(r"^tasks: +(\d+) done, (\d+) ok, (\d+) failed \(success rate ([\d.]+)%\)$",
                  out, re.M)
    if not check(m, "summary: no tasks line"):
        return
    done, ok, failed, rate = int(m[1]), int(m[2]), int(m[3]), float(m[4])
    check(done > 0 and done == ok + failed,
          "summary: %d done, %d ok, %d failed" % (done, ok, failed))
    check(0 <= rate <= 100 and abs(rate - 100.0 * ok / max(done, 1)) <= 0.051,
          "summary: success rate %s%% for %d of %d" % (rate, ok, done))

    rows = section(out, "task latency") or []
    table = {}
    for row in rows[1:]:  # the first row is the column header
        cells = row.split()
        if len(cells) == 7 and cells[0] in TASK_TYPES:
            table.setdefault(cells[0], []).append(cells)
    check(sorted(table) == sorted(TASK_TYPES) and all(len(v) == 1 for v in table.values()),
          "summary: latency rows %s" % rows)
    per_type = 0
    for t, [cells] in ((t, v) for t, v in table.items() if len(v) == 1):
        n, nfailed, quantiles = int(cells[1]), int(cells[2]), cells[3:6]
        per_type += n
        if n == 0:
            check(quantiles == ["-"] * 3,
                  "summary: %s has no task but quantiles %s" % (t, quantiles))
        else:
            p50, p95, p99 = map(float, quantiles)
            check(0 < p50 <= p95 <= p99, "summary: %s p50 %s p95 %s p99 %s" % (t, p50, p95, p99))
        check(nfailed <= n, "summary: %s: %d failed of %d" % (t, nfailed, n))
    check(per_type == done, "summary: latency rows count %d tasks, %d done" % (per_type, done))

    ops = section(out, "top operations by self time") or []
    names = [r.split()[0] for r in ops[1:]]
    check(len(names) >= 1 and "llm_call" in names and "tool_call" in names,
          "summary: top operations %s" % names)
    selfs = [float(r.split()[3]) for r in ops[1:]]
    check(selfs == sorted(selfs, reverse=True), "summary: operations not ranked by self time")

    m = re.search(r"^slowest trace: (task:\w+), (\d+) spans, ([\d.]+) s", out, re.M)
    path = section(out, "  critical path:") or []
    if check(m and path, "summary: no slowest trace with a critical path"):
        steps = [float(r.split()[1]) for r in path]
        check(path[0].split()[0] == m[1], "summary: path starts at %s" % path[0])
        check(abs(sum(steps) - float(m[3])) <= 0.0005 * len(steps) + 0.001,
              "summary: path steps add up to %.3f s, trace %s s" % (sum(steps), m[3]))

    m = re.search(r"^  (\d+) alerts? fired, (\d+) resolved", out, re.M)
    if check(m, "summary: no alert count"):
        check(int(m[1]) >= 1, "summary: no alert fired")
        rows = section(out, "alerts that fired") or []
        fired = [r.split()[0] for r in rows[1:-1]]
        check(len(fired) == int(m[1]) and all(re.match(r"(%s)\b" % "|".join(RULES), f)
                                              for f in fired), "summary: alert rows %s" % fired)

    m = re.search(r"^server: (\d+) requests answered \((\d+) scrapes", out, re.M)
    if check(m, "summary: no server line"):
        check(int(m[1]) >= requests_made and int(m[2]) >= scrapes_made,
              "summary: server counted %s requests, %s scrapes; we made %d, %d"
              % (m[1], m[2], requests_made, scrapes_made))


# ---------------------------------------------------------------- the runs


def start(exe, args):
    """Starts the demo and reads its dashboard URL; (demo, url or None)."""
    demo = Demo(exe, args)
    m = demo.wait_line(r"^dashboard: (http://127\.0\.0\.1:(\d+)/)$", 30)
    check(m and int(m[2]) > 0, "%s: no dashboard line" % " ".join(args))
    return demo, (m[1] if m else None)


def short_run(exe):
    demo, url = start(exe, ["--duration", "5", "--port", "0", "--host", "127.0.0.1",
                            "--workers", str(WORKERS), "--seed", "7"])
    requests = scrapes = polls = 0
    firing, problems = set(), []
    metrics_text = None
    while url and demo.running() and not (metrics_text and firing):
        st, text = fetch(url + "metrics")
        requests += 1
        scrapes += st == 200
        if st == 200 and (tasks_done(text) or 0) > 0 and metrics_text is None:
            metrics_text = text
        st, text = fetch(url + "api/v1/alerts")
        requests += 1
        polls += 1
        if st == 200:
            found, seen = read_alerts_doc(text)
        else:
            found, seen = ["status %s: %.200s" % (st, text)], set()
        problems += found
        firing |= seen
        time.sleep(0.2)  # the next poll
    if check(metrics_text, "/metrics never showed a finished task while the demo ran"):
        check_metrics(metrics_text)
    check(polls and not problems, "/api/v1/alerts (%d polls): %s" % (polls, problems[:3]))
    check(firing, "/api/v1/alerts never showed a firing alert while the demo ran")
    rc, out, err = demo.finish(60)
    check(rc == 0, "--duration 5 exited %s" % rc)
    check(err == "", "--duration 5 wrote to stderr: %.500s" % err)
    check(re.search(r"^\[ *[\d.]+s\] done ", out, re.M), "no progress line")
    check_summary(out, requests, scrapes)


def interrupted_run(exe):
    demo, url = start(exe, ["--port", "0", "--quiet"])
    done = 0
    while url and demo.running() and (done == 0 or time.monotonic() - demo.started < 2):
        st, text = fetch(url + "metrics")
        done = (tasks_done(text) or 0) if st == 200 else 0
        time.sleep(0.1)  # the next poll
    check(done > 0, "no task done before SIGINT")
    sent = time.monotonic()
    demo.proc.send_signal(signal.SIGINT)
    rc, out, err = demo.finish(30)
    check(rc == 0, "SIGINT: exited %s; stderr %.300s" % (rc, err))
    check(time.monotonic() - sent < 10, "SIGINT: took %.1f s to exit" % (time.monotonic() - sent))
    check(re.search(r"^== summary: [\d.]+ s \(interrupted\)", out, re.M),
          "SIGINT: no interrupted summary in %.500s" % out)
    check(not re.search(r"^\[", out, re.M), "--quiet printed progress or alert lines")
    m = re.search(r"^tasks: +(\d+) done", out, re.M)
    check(m and int(m[1]) > 0, "SIGINT: summary without tasks")


def main():
    if text_string_to_metric_families is None:
        missing(NAME, "prometheus_client", "python3-prometheus-client")
        return exit_status(NAME)
    # find_program looks in <build>/tests; the demo is in <build>/examples.
    exe = find_program(os.path.join("..", "examples", "orchestrator"))
    exe = exe and os.path.normpath(exe)
    if not check(exe and os.access(exe, os.X_OK), "examples/orchestrator not built (%s)" % exe):
        return summary(NAME)
    short_run(exe)
    interrupted_run(exe)
    p = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=30)
    check(p.returncode == 0 and "--duration" in p.stdout,
          "--help: %s %s" % (p.returncode, p.stdout))
    p = subprocess.run([exe, "--bogus"], capture_output=True, text=True, timeout=30)
    check(p.returncode == 2 and "--bogus" in p.stderr, "--bogus: %s %s" % (p.returncode, p.stderr))
    return summary(NAME)


if __name__ == "__main__":
    sys.exit(main())
