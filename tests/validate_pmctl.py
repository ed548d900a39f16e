"""pmctl against deterministic histories written by tests/history_fixture:
golden text of summary, diff, trends and bottlenecks, bottlenecks' findings
(self time from span records, low success, slow types, queue, saturation), trends' verdicts on a history made
to improve, degrade and burst, summary's JSON checked against the
workload's own arithmetic, CSV read back with Python's csv module, the
Prometheus export parsed by prometheus_client, JSON lines, time ranges,
label filters, exit codes, and a damaged store."""

import csv
import io
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pmcheck  # noqa: E402
from pmcheck import check  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def pmctl_path():
    root = os.environ.get("PM_BUILD_ROOT")
    fixture = pmcheck.find_program("history_fixture")
    base = root if root else (os.path.dirname(os.path.dirname(fixture)) if fixture else None)
    return os.path.join(base, "pmctl", "pmctl") if base else None


def run(argv, want_rc=0):
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    check(p.returncode == want_rc, "%s: exit %d, want %d (stderr: %s)"
          % (" ".join(argv[1:3]), p.returncode, want_rc, p.stderr.strip()))
    return p


def workload(current):
    """The fixture's workload, minute by minute (must match history_fixture.c)."""
    types = ["code_review", "deploy", "research", "test_run"]
    n, per_minute = 0, []
    for minute in range(30):
        rows = []
        for t in range(4):
            for a in range(3):
                for _ in range(1 + (t + a + minute) % 3):
                    fail = n % (3 if current and t == 1 else 7) == 0
                    rows.append((types[t], a, fail, 100 + 10 * t, 0.002 * (1 + t)))
                    n += 1
        per_minute.append(rows)
    return per_minute


REPORT_FACTS = r"""(() => {
  const q = (s) => [...document.querySelectorAll(s)];
  return {
    figures: q('figure').map((f) => ({title: f.querySelector('figcaption').textContent,
      lines: [...f.querySelectorAll('polyline')].map((l) => ({name: l.dataset.series,
        points: l.getAttribute('points').trim().split(/\s+/).length,
        width: l.getBoundingClientRect().width}))})),
    tables: q('table').map((t) => t.querySelectorAll('tr').length - 1),
    tasks: document.getElementById('tasks').textContent,
    success: document.getElementById('success').textContent,
    scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth,
  };
})()"""


def check_report(path, tmp, summary):
    """The report opened in headless Chromium: its charts drawn, its tables
    and figures those of summary, nothing external, no page error."""
    import re
    import shutil
    import validate_dashboard as vd
    with open(path, encoding="utf-8") as f:
        text = f.read()
    check(not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text) and "<script" not in text,
          "report: external resources or scripts")
    exe = next((p for p in map(shutil.which, vd.BROWSERS) if p), None)
    if not exe:
        pmcheck.missing("validate_pmctl", "chromium", "chromium")
        return
    with open(os.path.join(tmp, "chromium.log"), "wb") as log:
        browser = vd.Browser(exe, os.path.join(tmp, "profile"), log)
        try:
            page = vd.Page(browser, "file://" + path, 900, 1400)
            facts = page.wait("document.readyState === 'complete' && (%s)" % REPORT_FACTS)
            check(facts is not None, "report: the page did not load")
            if facts:
                titles = [f["title"] for f in facts["figures"]]
                check(titles == ["Tasks per hour", "Success (%)", "Mean duration (s)"], "figures %r" % titles)
                for fig in facts["figures"]:
                    names = sorted(l["name"] for l in fig["lines"])
                    check(names == ["code_review", "deploy", "research", "test_run"],
                          "%s: lines %r" % (fig["title"], names))
                    check(all(l["points"] >= 15 and l["width"] > 300 for l in fig["lines"]),
                          "%s: lines drawn %r" % (fig["title"], fig["lines"]))
                check(facts["tables"] == [len(summary["by_type"]), len(summary["by_agent"])],
                      "report tables %r" % facts["tables"])
                check(facts["tasks"] == "%.0f" % summary["tasks"], "report tasks %r" % facts["tasks"])
                check(facts["success"] == "%.1f%%" % (100 * summary["success_rate"]),
                      "report success %r" % facts["success"])
                check(facts["scrollWidth"] <= facts["width"], "report overflows the page")
                art = os.path.join(os.environ.get("PM_BUILD_ROOT") or tmp, "artifacts")
                os.makedirs(art, exist_ok=True)
                png = page.screenshot(os.path.join(art, "pmctl_report.png"))
                check(png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000, "report screenshot")
            check(page.problems() == [], "report: page errors %r" % page.problems())
            page.close()
        finally:
            browser.close()


def check_top(pmctl, tmp):
    root = os.environ.get("PM_BUILD_ROOT") or os.path.dirname(os.path.dirname(pmctl))
    demo = os.path.join(root, "examples", "orchestrator")
    if not os.access(demo, os.X_OK):
        check(False, "examples/orchestrator not built (top is checked against it)")
        return
    with open(os.path.join(tmp, "orchestrator.log"), "w+") as log:
        proc = subprocess.Popen([demo, "--duration", "8", "--port", "0", "--quiet", "--seed", "3"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            def url():
                log.seek(0)
                for line in log.read().splitlines():
                    if line.startswith("metrics:"):
                        return line.split()[1].rsplit("/", 1)[0]
                return None
            base = pmcheck.poll(url, 10)
            if not check(base is not None, "orchestrator printed no URL"):
                return
            out = run([pmctl, "top", "--url", base, "--count", "3", "--interval", "0.5"]).stdout
            frames = out.count(base + "  ")
            check(frames == 2, "top: %d frames, want 2:\n%s" % (frames, out))
            rows = [l.split() for l in out.splitlines() if l.split() and l.split()[0] in
                    ("code_review", "test_run", "deploy", "research", "summarize")]
            check(len(rows) == 10, "top: %d task rows, want 2 x 5:\n%s" % (len(rows), out))
            check(all(float(r[1]) >= 0 for r in rows), "top: rates")
            check("task_queue_length" in out and "agents_busy" in out, "top: gauges")
        finally:
            pmcheck.stop_process(proc)


def main():
    fixture = pmcheck.built_program("history_fixture")
    pmctl = pmctl_path()
    if not fixture or not pmctl or not os.access(pmctl, os.X_OK):
        check(False, "history_fixture or pmctl not built")
        return pmcheck.summary("validate_pmctl")
    with tempfile.TemporaryDirectory() as tmp:
        base, cur = os.path.join(tmp, "base"), os.path.join(tmp, "cur")
        run([fixture, base, "baseline"])
        run([fixture, cur, "current"])

        # Golden text: the same bytes on every run and machine.
        for name, argv, rc in [("pmctl_summary.txt", [pmctl, "summary", "--store", base], 0),
                               ("pmctl_diff.txt", [pmctl, "diff", base, cur], 1)]:
            out = run(argv, rc).stdout
            with open(os.path.join(HERE, "golden", name)) as f:
                want = f.read()
            check(out == want, "%s differs from tests/golden/%s:\n%s" % (argv[1], name, out))

        # summary --format json against the workload's arithmetic: the window
        # is the increase from the first snapshot to the last (minutes 1..29).
        js = json.loads(run([pmctl, "summary", "--store", base, "--format", "json"]).stdout)
        rows = [r for m in workload(False)[1:] for r in m]
        check(js["snapshots"] == 30, "snapshots %r" % js["snapshots"])
        check(js["tasks"] == len(rows), "tasks %r, want %d" % (js["tasks"], len(rows)))
        ok = sum(1 for r in rows if not r[2])
        check(abs(js["success_rate"] - ok / len(rows)) < 1e-6, "success_rate %r" % js["success_rate"])
        check(js["tokens"] == sum(r[3] for r in rows), "tokens %r" % js["tokens"])
        check(abs(js["cost"] - sum(r[4] for r in rows)) < 1e-9, "cost %r" % js["cost"])
        by_type = {g["name"]: g for g in js["by_type"]}
        for t in ["code_review", "deploy", "research", "test_run"]:
            mine = [r for r in rows if r[0] == t]
            check(by_type[t]["tasks"] == len(mine), "%s tasks %r" % (t, by_type[t]["tasks"]))
            check(by_type[t]["p50"] <= by_type[t]["p95"] <= by_type[t]["p99"], "%s quantiles" % t)
        check(sum(g["tasks"] for g in js["by_agent"]) == len(rows), "agents add up")

        # Progress on long reads (the threshold lowered from 64 MiB).
        p = subprocess.run([pmctl, "summary", "--store", base], capture_output=True, text=True,
                           timeout=60, env=dict(os.environ, PMCTL_PROGRESS_BYTES="1"))
        steps = [int(x) for x in __import__("re").findall(r"pmctl: read (\d+)%", p.stderr)]
        check(p.returncode == 0 and len(steps) >= 5 and steps == sorted(steps) and steps[-1] >= 90,
              "progress: %r" % p.stderr[:300])
        p = run([pmctl, "summary", "--store", base])
        check("read" not in p.stderr, "no progress under the threshold: %r" % p.stderr)

        # A time range and a label filter.
        js = json.loads(run([pmctl, "summary", "--store", base, "--format", "json",
                             "--start", "2026-12-01T00:10:00Z", "--end", "2026-12-01T00:20:00Z",
                             "--label", "agent=agent-2"]).stdout)
        rows = [r for m in workload(False)[11:21] for r in m if r[1] == 1]
        check(js["snapshots"] == 11, "range: snapshots %r" % js["snapshots"])
        check(js["tasks"] == len(rows), "range+label: tasks %r, want %d" % (js["tasks"], len(rows)))
        check([g["name"] for g in js["by_agent"]] == ["agent-2"], "filtered agents")

        # CSV: Python's csv reader, a row per series per snapshot.
        text = run([pmctl, "export", "--store", base, "--format", "csv"]).stdout
        table = list(csv.DictReader(io.StringIO(text)))
        check(len(table) > 0 and set(table[0]) == {"time", "family", "type", "labels", "value",
                                                   "count", "sum", "p50", "p95", "p99"},
              "csv header")
        last = [r for r in table if r["time"] == "2026-12-01T00:29:00Z" and r["family"] == "tasks"]
        check(sum(float(r["value"]) for r in last) == sum(len(m) for m in workload(False)),
              "csv: last tasks total")
        hist = [r for r in table if r["type"] == "histogram"]
        check(hist and all(int(r["count"]) > 0 and float(r["p99"]) >= float(r["p50"]) for r in hist),
              "csv histograms")

        # Prometheus text of the newest snapshot, read by prometheus_client.
        from prometheus_client.parser import text_string_to_metric_families
        prom = run([pmctl, "export", "--store", base, "--format", "prom"]).stdout
        fams = {f.name: f for f in text_string_to_metric_families(prom)}
        check("tasks" in fams and "task_duration_seconds" in fams, "prom families")
        total = sum(s.value for s in fams["tasks"].samples if s.name == "tasks_total")
        check(total == sum(len(m) for m in workload(False)), "prom tasks_total %r" % total)

        # JSON lines: one snapshot each.
        lines = run([pmctl, "export", "--store", base, "--format", "json"]).stdout.splitlines()
        check(len(lines) == 30 and all(json.loads(line) for line in lines), "json lines")

        # diff: regressions found (exit 1), none against itself (exit 0), JSON.
        js = json.loads(run([pmctl, "diff", base, cur, "--format", "json"], 1).stdout)
        bad = sorted({r["type"] for r in js["rows"] if r["regression"]})
        check(bad == ["deploy"], "regressed types %r" % bad)
        run([pmctl, "diff", base, base])
        run([pmctl, "diff", base, cur, "--max-regression", "60"])

        # trends: verdicts with the statistics behind them.
        tr = os.path.join(tmp, "trend")
        run([fixture, tr, "trend"])
        js = json.loads(run([pmctl, "trends", "--store", tr, "--format", "json"]).stdout)
        v = {(r["type"], r["measure"]): r for r in js["rows"]}
        for key, want in [(("deploy", "mean_seconds"), "degrading"),
                          (("research", "tasks_per_hour"), "improving"),
                          (("test_run", "tasks_per_hour"), "volatile"),
                          (("code_review", "tasks_per_hour"), "stable"),
                          (("code_review", "mean_seconds"), "stable")]:
            check(v[key]["verdict"] == want, "trends %s: %s, want %s (%r)"
                  % (key, v[key]["verdict"], want, v[key]))
        r = v[("deploy", "mean_seconds")]
        check(r["current"]["mean"] > r["previous"]["mean"] and r["t"] > 2 and r["previous"]["n"] >= 2,
              "trends statistics %r" % r)
        out = run([pmctl, "trends", "--store", tr]).stdout
        with open(os.path.join(HERE, "golden", "pmctl_trends.txt")) as f:
            check(out == f.read(), "trends differs from tests/golden/pmctl_trends.txt:\n" + out)
        js = json.loads(run([pmctl, "trends", "--store", tr, "--period", "5m", "--format", "json"]).stdout)
        check(js["previous"] == ["2026-12-01T00:19:00Z", "2026-12-01T00:24:00Z"], "--period %r" % js["previous"])

        # bottlenecks: self time from the span records, low success, slow
        # types, queue and saturation, each with a recommendation.
        js = json.loads(run([pmctl, "bottlenecks", "--store", tr, "--format", "json"]).stdout)
        got = [(f["kind"], f["subject"]) for f in js["findings"]]
        check(got[0] == ("slow_op", "llm_call") and abs(js["findings"][0]["value"] - 60) < 0.5,
              "bottlenecks: llm_call first at 60%% of self time: %r" % js["findings"][:1])
        for want in [("low_success", "agent-3"), ("slow_type", "deploy"),
                     ("queue", "task_queue_length"), ("saturation", "agents_busy")]:
            check(want in got, "bottlenecks: %r missing from %r" % (want, got))
        check(all(f["recommendation"] for f in js["findings"]), "bottlenecks: recommendations")
        check(js["spans"] > 0 and js["snapshots"] == 30, "bottlenecks: inputs %r" % js)
        js = json.loads(run([pmctl, "bottlenecks", "--store", base, "--format", "json"]).stdout)
        kinds = {f["kind"] for f in js["findings"]}
        check(not kinds & {"low_success", "queue", "saturation"}, "bottlenecks on the calm history: %r" % kinds)
        out = run([pmctl, "bottlenecks", "--store", tr]).stdout
        with open(os.path.join(HERE, "golden", "pmctl_bottlenecks.txt")) as f:
            check(out == f.read(), "bottlenecks differs from tests/golden/pmctl_bottlenecks.txt:\n" + out)

        # report --format html: one self-contained file, read by headless Chromium.
        html = os.path.join(tmp, "report.html")
        run([pmctl, "report", "--store", tr, "--format", "html", "--output", html])
        check_report(html, tmp, json.loads(run([pmctl, "summary", "--store", tr, "--format", "json"]).stdout))

        # top: a live view of a running orchestrator's endpoint.
        check_top(pmctl, tmp)

        # Usage and store errors: exit 2 with a message.
        for argv in [[pmctl], [pmctl, "nonsense"], [pmctl, "summary"],
                     [pmctl, "summary", "--store", os.path.join(tmp, "none")],
                     [pmctl, "summary", "--store", base, "--since", "soon"],
                     [pmctl, "export", "--store", base, "--format", "xml"],
                     [pmctl, "diff", base],
                     [pmctl, "trends", "--store", base, "--period", "x"],
                     [pmctl, "top"], [pmctl, "top", "--url", "ftp://x"],
                     [pmctl, "top", "--url", "http://127.0.0.1:1", "--once"]]:
            p = run(argv, 2)
            check(p.stderr.startswith("pmctl:") or p.stderr.startswith("usage:"),
                  "%r: message %r" % (argv[1:], p.stderr))

        # A damaged store: a flipped byte costs that record, and says so.
        seg = sorted(f for f in os.listdir(base) if f.startswith("hist-"))[-1]
        path = os.path.join(base, seg)
        with open(path, "r+b") as f:
            data = f.read()
            # Frames (doc/history.md): "PMHR", length, CRC-32C, body; the
            # body's first byte is its kind (1: snapshot). Damage the middle
            # snapshot record.
            at, snaps = 8, []
            while at + 12 <= len(data):
                n = int.from_bytes(data[at + 4:at + 8], "little")
                if data[at + 12] == 1:
                    snaps.append((at + 12, n))
                at += 12 + n
            off, n = snaps[len(snaps) // 2]
            f.seek(off + n // 2)
            f.write(bytes([data[off + n // 2] ^ 0x20]))
        p = run([pmctl, "summary", "--store", base, "--format", "json"])
        check("damaged records skipped" in p.stderr, "damage reported: %r" % p.stderr)
        check(json.loads(p.stdout)["snapshots"] == 29, "one snapshot lost")
    return pmcheck.exit_status("validate_pmctl")


if __name__ == "__main__":
    sys.exit(main())
