#!/usr/bin/python3
"""Validates the dashboard page (lib/dashboard.html, served at /) in headless Chromium.

Starts tests/serve_fixture (found through PM_BUILD_ROOT), waits until its
alert engine reports a firing alert, and drives Debian's chromium over the
DevTools protocol on a pipe (--remote-debugging-pipe): the page is polled
in real time with deadlines, console messages and uncaught exceptions are
collected as events, and screenshots are taken at exact viewport sizes.
  - the served page: 200 text/html with the Content-Security-Policy of
    doc/server.md, byte for byte lib/dashboard.html, under 60 KiB, and no
    external URL (no http:// or https://, no protocol-relative src/href);
  - 1280x800: the page becomes ready; at least 2 charts have >= 2 points,
    the server's default charts are all drawn, and their latest values fit
    the fixture (the counter's rate, the gauge's range, the histogram's
    quantiles from bucket deltas); the fixture's firing alert is
    in the active list and the history has entries; the operations table
    and the histogram quantile table have rows; the slowest traces have a
    critical path; clicking one opens its span waterfall (?id=); hovering a
    chart shows a tooltip; the picker adds a chart, kept in localStorage, and
    its button removes it; the health
    score matches /health; the error banner is hidden; Pause stops polling
    and Resume restarts it; no horizontal page scroll; once the fixture is
    stopped, the error banner appears;
  - 390x844 (phone): after a re-render no horizontal page scroll and the
    charts fit the viewport;
  - screenshots dashboard-1280x800.png and dashboard-390x844.png in
    $PM_BUILD_ROOT/artifacts/, checked as PNGs of that size with content;
  - a fixture with --token: #token=... in the address renders data and
    leaves the address bar; without it the page shows the token form and no
    data, a wrong token is reported as rejected, and the right one entered in
    the form loads the data;
  - no JavaScript error, uncaught exception or CSP violation on any page
    (the 401 answers of the token-less page are the only expected errors).
Without chromium the check fails when CI=true and is skipped (exit 77)
otherwise. Every process started here is stopped at the end, also on failure.
Prints "validate_dashboard: N passed, N failed"; exit status 0 only if all passed.
"""

import base64
import fcntl
import json
import os
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import zlib

import pmcheck
from pmcheck import Fixture, built_program, check, exit_status, http, missing, poll, summary

NAME = "validate_dashboard"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
TOKEN = "fixture-Token_0.9~+/="
CSP_PARTS = ("default-src 'none'", "script-src 'unsafe-inline'", "style-src 'unsafe-inline'",
             "connect-src 'self'", "frame-ancestors 'none'")
SIZES = (("dashboard-1280x800.png", 1280, 800, False), ("dashboard-390x844.png", 390, 844, True))
DEADLINE = 45  # seconds for any one state to appear: the page polls every 2 s

def http_get(url, token=None):
    """(status, headers, bytes); status 0 when the server could not be reached."""
    return http(url, {"Authorization": "Bearer " + token} if token else None)


def get_json(url, token=None):
    status, _, body = http_get(url, token)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def wait_until(fn, seconds=DEADLINE):
    """fn()'s first truthy value within the deadline, else its last value."""
    return poll(fn, seconds, done=bool)


# ---------------------------------------------------------------- processes


def start_fixture(exe, log, token=None):
    """tests/serve_fixture (pmcheck.Fixture) on a free port, once it serves:
    fx.url is then its base URL, None if it did not start."""
    fx = Fixture(exe, "token" if token else "plain", ["--token", token] if token else [], log)
    fx.wait_ready()
    return fx


class Browser:
    """Headless Chromium driven over the DevTools protocol on fds 3 and 4
    (NUL-terminated JSON messages)."""

    def __init__(self, exe, tmp, log):
        cmd_r, self.cmd_w = os.pipe()
        self.evt_r, evt_w = os.pipe()
        args = [exe, "--headless=new", "--remote-debugging-pipe", "--user-data-dir=" + tmp,
                "--no-first-run", "--no-default-browser-check", "--disable-gpu",
                "--disable-extensions", "--disable-background-networking", "--disable-sync",
                "--disable-component-update", "--disable-default-apps", "--mute-audio",
                "--hide-scrollbars", "--force-color-profile=srgb", "--enable-logging=stderr",
                "--v=0", "about:blank"]
        if os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        def wire():  # in the child: the pipe ends onto fds 3 and 4, which exec keeps
            hi = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (cmd_r, evt_w)]  # 3 may be one of them
            os.dup2(hi[0], 3)
            os.dup2(hi[1], 4)
            for fd in hi:
                os.close(fd)
        # close_fds=False: Python's own fds are close-on-exec anyway (PEP 446).
        self.proc = subprocess.Popen(args, preexec_fn=wire, close_fds=False, stdin=subprocess.DEVNULL,
                                     stdout=log, stderr=log, start_new_session=True)
        os.close(cmd_r)
        os.close(evt_w)
        self.buf = b""
        self.next_id = 0
        self.problems = {}  # session id -> [(source, text)]

    def send(self, method, params=None, session=None, timeout=30):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while True:
            reply = self._read(end)
            if reply is None:
                raise RuntimeError("chromium did not answer %s" % method)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError("%s: %s" % (method, reply["error"]))
                return reply.get("result", {})
            self._event(reply)

    def _read(self, end):
        while b"\0" not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or not select.select([self.evt_r], [], [], left)[0]:
                return None
            chunk = os.read(self.evt_r, 1 << 20)
            if not chunk:
                return None
            self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def _event(self, ev):
        """Keeps what counts as a page error: console.error, uncaught
        exceptions, and the browser's own error log (CSP, failed loads)."""
        method, p = ev.get("method"), ev.get("params", {})
        text = None
        if method == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            text = ("console", " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif method == "Runtime.exceptionThrown":
            d = p.get("exceptionDetails", {})
            text = ("exception", "%s %s" % (d.get("text", ""), d.get("exception", {}).get("description", "")))
        elif method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            e = p["entry"]
            text = (e.get("source", "log"), "%s %s" % (e.get("text", ""), e.get("url", "")))
        if text:
            self.problems.setdefault(ev.get("sessionId"), []).append(text)

    def drain(self):
        """Reads the events that arrived while nobody asked."""
        while select.select([self.evt_r], [], [], 0)[0]:
            chunk = os.read(self.evt_r, 1 << 20)
            if not chunk:
                break
            self.buf += chunk
        while b"\0" in self.buf:
            raw, self.buf = self.buf.split(b"\0", 1)
            self._event(json.loads(raw))

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("Browser.close", timeout=5)
            except (RuntimeError, OSError):
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        # Chromium's helpers (zygote, renderers) are in the session started for it.
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)
        for fd in (self.cmd_w, self.evt_r):
            os.close(fd)


class Page:
    """One tab in its own browser context (fresh localStorage and sessionStorage)."""

    def __init__(self, browser, url, width, height, mobile=False):
        self.b = browser
        self.ctx = browser.send("Target.createBrowserContext")["browserContextId"]
        target = browser.send("Target.createTarget", {"url": "about:blank", "browserContextId": self.ctx})
        self.session = browser.send("Target.attachToTarget",
                                    {"targetId": target["targetId"], "flatten": True})["sessionId"]
        for m in ("Page.enable", "Runtime.enable", "Log.enable"):
            self.cmd(m)
        self.resize(width, height, mobile)
        self.cmd("Page.navigate", {"url": url})

    def cmd(self, method, params=None, timeout=30):
        return self.b.send(method, params, self.session, timeout)

    def resize(self, width, height, mobile):
        self.cmd("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile})

    def js(self, expr):
        r = self.cmd("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError("evaluating %r: %s %s" % (expr[:80], d.get("text"), d.get("exception", {}).get("description", "")))
        return r.get("result", {}).get("value")

    def wait(self, expr, seconds=DEADLINE):
        """expr's first truthy value; while the page loads, document.body may
        not exist yet, so an exception counts as "not yet"."""
        def attempt():
            try:
                return self.js(expr)
            except RuntimeError:
                return None
        return wait_until(attempt, seconds)

    def screenshot(self, path):
        data = base64.b64decode(self.cmd("Page.captureScreenshot", {"format": "png"})["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def problems(self):
        self.b.drain()
        return self.b.problems.get(self.session, [])

    def close(self):
        self.b.send("Target.disposeBrowserContext", {"browserContextId": self.ctx})


# ---------------------------------------------------------------- checks

# What the page shows, read from its DOM in one evaluation.
FACTS = r"""(() => {
  const q = (s) => [...document.querySelectorAll(s)];
  const visible = (el) => !!el && !el.hidden && getComputedStyle(el).display !== 'none' && el.getClientRects().length > 0;
  return {
    ready: document.body.dataset.ready || '', polls: +(document.body.dataset.polls || 0),
    auth: document.body.dataset.auth || '',
    charts: q('svg.chart').map((s) => ({metric: s.dataset.metric, points: +s.dataset.points, lines: +s.dataset.lines,
                                        right: s.getBoundingClientRect().right})),
    last: Object.fromEntries(q('.chart-card').map((c) => [c.dataset.chart,
      Object.fromEntries([...c.querySelectorAll('.legend li')].map((l) => [l.title, l.dataset.value === '' ? null : +l.dataset.value]))])),
    active: q('#alerts-active li[data-rule]').map((l) => ({rule: l.dataset.rule, state: l.dataset.state, text: l.textContent})),
    history: q('#alerts-history li[data-rule]').length,
    ops: q('#ops-table tbody tr').map((r) => r.dataset.op),
    quantiles: q('#quantiles-table tbody tr').length,
    slowest: q('#traces-slowest li[data-trace]').length,
    paths: q('#traces-slowest li .critical-path').filter((p) => p.querySelector('.seg')).length,
    recent: q('#traces-recent tr[data-trace]').length,
    health: (document.getElementById('health-score') || {}).textContent || '',
    banner: visible(document.getElementById('error-banner')),
    tokenForm: visible(document.getElementById('token-form')),
    main: visible(document.getElementById('main')),
    title: document.getElementById('title').textContent,
    hash: location.hash,
    scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth,
    pause: document.getElementById('pause').textContent,
  };
})()"""

EXTERNAL_ATTR = re.compile(r"""\b(?:src|href|action|xlink:href)\s*=\s*["']?\s*(?:[a-z][a-z0-9+.-]*:)?//""", re.I)


def check_served_page(base):
    status, headers, body = http_get(base)
    if not check(status == 200, "GET / answered %d" % status):
        return
    check(headers.get("Content-Type", "").startswith("text/html"), "GET / Content-Type %r" % headers.get("Content-Type"))
    csp = headers.get("Content-Security-Policy", "")
    for part in CSP_PARTS:
        check(part in csp, "GET / CSP %r lacks %r" % (csp, part))
    src = os.path.join(os.environ.get("PM_SOURCE_ROOT") or os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "lib", "dashboard.html")
    with open(src, "rb") as f:
        check(body == f.read(), "GET / is not lib/dashboard.html as it is now (rebuild the library)")
    check(len(body) < 60 * 1024, "the page is %d bytes (limit 60 KiB)" % len(body))
    text = body.decode("utf-8", errors="replace")
    for scheme in ("http://", "https://"):
        check(scheme not in text, "the page contains %r at %d" % (scheme, text.find(scheme)))
    m = EXTERNAL_ATTR.search(text)
    check(m is None, "the page references another host: %r" % (m.group(0) if m else ""))
    check(not re.search(r"@import|url\(\s*['\"]?(?!data:)", text), "the page loads a stylesheet resource")
    check(not re.search(r"<script[^>]*\bsrc\s*=", text, re.I), "the page has an external script")


def check_png(data, width, height, what):
    """A PNG of that size whose pixels are not all alike."""
    if not check(data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "%s: not a PNG" % what):
        return
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    check((w, h) == (width, height), "%s: %dx%d, want %dx%d" % (what, w, h, width, height))
    idat, pos = b"", 8
    while pos + 8 <= len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8:pos + 8 + n]
        pos += 12 + n
    try:
        raw = zlib.decompress(idat)
    except zlib.error as e:
        check(False, "%s: IDAT does not inflate: %s" % (what, e))
        return
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(ctype, 1)
    stride = 1 + w * channels * max(1, depth // 8)
    check(len(raw) == stride * h, "%s: %d bytes of pixels, want %d" % (what, len(raw), stride * h))
    rows = {raw[i * stride + 1:(i + 1) * stride] for i in range(h)}
    check(len(rows) > h // 8, "%s: only %d distinct rows of %d: a blank page?" % (what, len(rows), h))
    check(len(set(raw)) > 64, "%s: only %d distinct byte values" % (what, len(set(raw))))
    check(len(data) > 20000, "%s: only %d bytes" % (what, len(data)))


def report_problems(page, what, allow=None):
    bad = [p for p in page.problems() if not (allow and allow(p))]
    check(not bad, "%s: page errors %s" % (what, bad[:5]))


def check_values(last):
    """The latest points against what the fixture does: fixture_ticks_total
    goes up by 1 every 100 ms, fixture_queue_length stays in 0..30, and
    fixture_task_seconds observes 25..225 ms (a third of it below 75 ms)."""
    rate = last.get("fixture_ticks", {}).get("rate")
    check(rate is not None and 4 <= rate <= 12, "fixture_ticks: rate %r/s, want about 10" % rate)
    queue = last.get("fixture_queue_length", {}).get("value")
    check(queue is not None and 0 <= queue <= 30, "fixture_queue_length: %r, want 0..30" % queue)
    q = last.get("fixture_task_seconds", {})
    p50, p95, p99 = q.get("p50"), q.get("p95"), q.get("p99")
    check(None not in (p50, p95, p99) and 0.025 <= p50 <= p95 <= p99 <= 0.25,
          "fixture_task_seconds: p50 %r p95 %r p99 %r, want 0.025 <= p50 <= p95 <= p99 <= 0.25" % (p50, p95, p99))


def check_main_page(browser, fx, artifacts):
    base = fx.url
    _, alerts = get_json(base + "api/v1/alerts")
    firing = [a["rule"] for a in (alerts or {}).get("active", []) if a.get("state") == "firing"]
    _, info = get_json(base + "api/v1/info")
    info = info or {}
    page = Page(browser, base, 1280, 800)
    try:
        check(page.wait("document.body.dataset.ready === '1'"), "1280x800: the page never became ready")
        enough = "[...document.querySelectorAll('svg.chart')].filter((s) => +s.dataset.points >= 2).length >= 2"
        check(page.wait(enough), "1280x800: fewer than 2 charts with 2 points")
        f = page.js(FACTS)
        print("1280x800: %d polls; charts (name, points, lines): %s; latest: %s"
              % (f["polls"], [(c["metric"], c["points"], c["lines"]) for c in f["charts"]], f["last"]))
        check(f["title"] == info.get("title"), "title %r, info says %r" % (f["title"], info.get("title")))
        drawn = {c["metric"] for c in f["charts"]}
        for name in info.get("charts", []):
            check(name in drawn, "default chart %s is not drawn" % name)
        check(all(c["lines"] >= 1 for c in f["charts"] if c["points"]), "a chart with points has no line")
        check_values(f["last"])
        check(firing, "the fixture has no firing alert")
        for rule in firing:
            got = [a for a in f["active"] if a["rule"] == rule]
            check(got and got[0]["state"] == "firing", "firing alert %s not shown as firing: %s" % (rule, f["active"]))
        check(f["history"] >= 1, "the alert history is empty")
        check(len(f["ops"]) >= 1, "the operations table has no rows")
        check(f["quantiles"] >= 1, "the histogram quantile table has no rows")
        check(f["slowest"] >= 1 and f["paths"] >= 1, "slowest traces %d, with a critical path %d" % (f["slowest"], f["paths"]))
        check(f["recent"] >= 1, "no recent traces")
        check(re.match(r"^\d+(\.\d+)?$", f["health"]) is not None, "health score shows %r" % f["health"])

        def same_health():  # the score moves with FixtureQueueHigh: wait for a poll that agrees
            _, h = get_json(base + "health")
            shown = page.js("document.getElementById('health-score').textContent")
            try:
                return h and abs(float(shown) - h["health_score"]) <= 0.005 * max(1, h["health_score"])
            except ValueError:
                return False
        check(wait_until(same_health), "the health score never matched /health")
        check(not f["banner"], "the error banner is shown")
        check(not f["tokenForm"], "the token form is shown without a token")
        check(f["scrollWidth"] <= f["width"], "1280x800 scrolls sideways: %d > %d" % (f["scrollWidth"], f["width"]))

        # One trace's spans, fetched by id.
        page.js("document.querySelector('#traces-slowest li[data-trace]').click()")
        rows = page.wait("document.querySelectorAll('#waterfall .wf-row[data-span]').length", 15)
        check(rows and rows >= 2, "the span waterfall shows %r spans" % rows)
        page.js("document.getElementById('td-close').click()")
        check(page.js("document.getElementById('trace-detail').hidden"), "the trace detail does not close")

        # Hover: a real mouse move over a chart shows its tooltip.
        box = page.js("(() => { const r = document.querySelector('svg.chart[data-lines=\"1\"]').getBoundingClientRect();"
                      " return [r.left + r.width * 0.75, r.top + r.height / 2]; })()")
        page.cmd("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": box[0], "y": box[1]})
        tip = page.wait("(() => { const t = [...document.querySelectorAll('.tip')].find((t) => !t.hidden); return t && t.textContent; })()", 5)
        check(tip and re.search(r"\d\d:\d\d:\d\d", tip), "hovering a chart shows no tooltip: %r" % tip)
        page.cmd("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": 2, "y": 2})
        check(page.wait("[...document.querySelectorAll('.tip')].every((t) => t.hidden)", 5),
              "the tooltip stays after the pointer left")

        # The picker adds a chart (kept in localStorage) and its button removes it.
        extra = "fixture_requests"
        page.js("(() => { const s = document.getElementById('chart-picker'); s.value = %s;"
                " s.dispatchEvent(new Event('change')); })()" % json.dumps(extra))
        check(page.wait("document.querySelector('svg.chart[data-metric=\"%s\"]') !== null" % extra, 5),
              "the picker did not add a chart for %s" % extra)
        saved = json.loads(page.js("localStorage.getItem('perfmetrics.dashboard.charts') || 'null'") or "null")
        check(isinstance(saved, list) and extra in saved, "localStorage keeps the charts %r" % saved)
        page.js("document.querySelector('[data-remove=\"%s\"]').click()" % extra)
        check(page.js("document.querySelector('svg.chart[data-metric=\"%s\"]') === null" % extra),
              "the remove button left the %s chart" % extra)

        # Pause: no poll for 1.5 periods; Resume polls at once.
        period = float(info.get("refresh_seconds") or 2)
        page.js("document.getElementById('pause').click()")
        time.sleep(0.5)  # a poll already under way still counts
        before = page.js("+document.body.dataset.polls")
        time.sleep(period * 1.5)  # asserting that nothing happens takes time
        check(page.js("+document.body.dataset.polls") == before, "polls went on while paused")
        page.js("document.getElementById('pause').click()")
        check(page.wait("+document.body.dataset.polls > %d" % before, 10), "Resume did not poll")
        check(page.js(FACTS)["pause"] == "Pause", "the button does not read Pause after Resume")

        for fname, w, h, mobile in SIZES:
            if w != 1280:
                page.resize(w, h, mobile)
                polls = page.js("+document.body.dataset.polls")
                page.wait("+document.body.dataset.polls > %d" % polls)
                f = page.js(FACTS)
                check(f["width"] == w, "the viewport is %r wide, want %d" % (f["width"], w))
                check(f["scrollWidth"] <= w, "%dx%d scrolls sideways: %d" % (w, h, f["scrollWidth"]))
                check(all(c["right"] <= w for c in f["charts"]),
                      "%dx%d: a chart ends past the edge: %s" % (w, h, [c["right"] for c in f["charts"]]))
                check(sum(c["points"] >= 2 for c in f["charts"]) >= 2, "%dx%d: charts lost their data" % (w, h))
            page.js("window.scrollTo(0, 0)")
            path = os.path.join(artifacts, fname)
            check_png(page.screenshot(path), w, h, fname)
            print("saved " + path)
        report_problems(page, "dashboard")

        # The server goes away: the page says so (and the failed loads are expected now).
        fx.stop()
        check(page.wait("getComputedStyle(document.getElementById('error-banner')).display !== 'none'"),
              "no error banner once the server is gone")
        check(page.js("document.getElementById('live').dataset.state") == "error", "the live dot is not red")
    finally:
        page.close()


def check_token_pages(browser, exe, log):
    fx = start_fixture(exe, log, TOKEN)
    try:
        if not fx.url:
            return
        status, _, _ = http_get(fx.url + "api/v1/info")
        check(status == 401, "the token fixture answered %d without a token" % status)
        page = Page(browser, fx.url + "#token=" + urllib.request.quote(TOKEN, safe=""), 1280, 800)
        try:
            check(page.wait("document.body.dataset.ready === '1'"), "#token=: the page never became ready")
            # The fixture was just started: its first spans and its alert
            # engine's first evaluation may land a poll or two after ready.
            page.wait("document.querySelector('#ops-table tbody tr') && "
                      "document.querySelector('#alerts-active li[data-rule]')")
            f = page.js(FACTS)
            check(f["main"] and not f["tokenForm"], "#token=: the data is not shown")
            check(any(c["points"] >= 1 for c in f["charts"]), "#token=: no chart has data")
            check(len(f["ops"]) >= 1 and f["active"], "#token=: no operations or no alerts")
            check("token" not in f["hash"], "#token=: the token stays in the address %r" % f["hash"])
            report_problems(page, "#token= page")
        finally:
            page.close()
        page = Page(browser, fx.url, 1280, 800)
        try:
            check(page.wait("document.body.dataset.auth === 'required'"), "no token: the page did not ask for one")
            f = page.js(FACTS)
            check(f["tokenForm"], "no token: the token form is not visible")
            check(not f["main"], "no token: the data area is visible")
            check(not f["ready"] and not any(c["points"] for c in f["charts"]) and not f["active"] and not f["ops"],
                  "no token: data is shown: %s" % {k: f[k] for k in ("ready", "charts", "active", "ops")})
            submit = ("document.getElementById('token-input').value = %s;"
                      "document.getElementById('token-form').requestSubmit()")
            page.js(submit % json.dumps("not-" + TOKEN))
            check(page.wait("document.getElementById('token-msg').className === 'err'", 10),
                  "a wrong token is not reported as rejected")
            check(page.js(FACTS)["tokenForm"] and not page.js(FACTS)["main"], "a wrong token shows data")
            page.js(submit % json.dumps(TOKEN))
            check(page.wait("document.body.dataset.ready === '1'"), "the token form did not load the data")
            check(not page.js(FACTS)["tokenForm"], "the token form stays after a good token")
            # The 401 answers before the token was given are the expected errors.
            report_problems(page, "token form page",
                            allow=lambda p: p[0] == "network" and "401" in p[1])
        finally:
            page.close()
    finally:
        fx.stop()


def main():
    exe = built_program("serve_fixture")
    if not exe:
        return summary(NAME)
    chromium = next((p for p in map(shutil.which, BROWSERS) if p), None)
    if not chromium:
        missing(NAME, "chromium", "chromium")
        return exit_status(NAME)
    build = os.environ.get("PM_BUILD_ROOT") or os.path.dirname(os.path.dirname(exe))
    artifacts = os.path.join(build, "artifacts")
    os.makedirs(artifacts, exist_ok=True)
    print("using %s and %s" % (exe, chromium))
    # meson's timeout sends SIGTERM: leave through the finally blocks. (Were this
    # process killed outright, Chromium still quits when its pipe closes and the
    # fixture when its stdin does.)
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    with tempfile.TemporaryDirectory(prefix="pm-dashboard-") as tmp:
        logpath = os.path.join(tmp, "processes.log")
        with open(logpath, "wb") as log:
            fx = browser = None
            try:
                fx = start_fixture(exe, log)
                if fx.url:
                    check_served_page(fx.url)

                    def firing():
                        _, a = get_json(fx.url + "api/v1/alerts")
                        return a and any(e.get("state") == "firing" for e in a.get("active", []))
                    check(wait_until(firing, 30), "no alert became active within 30 s")
                    browser = Browser(chromium, os.path.join(tmp, "profile"), log)
                    check_main_page(browser, fx, artifacts)
                    check_token_pages(browser, exe, log)
            except (RuntimeError, OSError, ValueError) as e:
                check(False, "%s: %s" % (type(e).__name__, e))
            finally:
                if browser:
                    browser.close()
                if fx:
                    fx.stop()
        if pmcheck.FAILED:
            with open(logpath, "rb") as f:
                # Chromium's complaints about the absent desktop services are noise here.
                lines = [ln for ln in f.read().decode(errors="replace").splitlines()
                         if not re.search(r"dbus|bluez|UPower|ScreenSaver|Floss", ln)]
            print("process log (tail):\n" + "\n".join(lines[-40:]))
    return exit_status(NAME)


if __name__ == "__main__":
    sys.exit(main())
