"""Shared plumbing for the Python checks in tests/: a pass/fail tally with
the closing "<name>: N passed, N failed" line, running a dump program built
by meson (found through PM_BUILD_ROOT, else the newest build*/ dir), the
"missing tool" rule (a failure under CI=true, else a skip: exit 77), HTTP
to 127.0.0.1 without proxies, polling with a deadline, and the processes the
peer checks start: servers on a free port waited for until ready, and
tests/serve_fixture."""

import glob
import os
import select
import socket
import subprocess
import time
import urllib.error
import urllib.request

PASSED = 0
FAILED = 0


def check(cond, what):
    global PASSED, FAILED
    if cond:
        PASSED += 1
    else:
        FAILED += 1
        print("  FAIL: " + what)
    return cond


def summary(name):
    """Prints the closing line and returns the exit status."""
    print("%s: %d passed, %d failed" % (name, PASSED, FAILED))
    return 0 if FAILED == 0 and PASSED > 0 else 1


def find_program(prog):
    root = os.environ.get("PM_BUILD_ROOT")
    if root:
        return os.path.join(root, "tests", prog)
    src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = glob.glob(os.path.join(src, "build*", "tests", prog))
    if not found:
        return None
    return max(found, key=os.path.getmtime)


def built_program(prog):
    """find_program(prog) when it is there and executable; otherwise None,
    with a failed check (the caller then returns summary())."""
    exe = find_program(prog)
    if exe and os.access(exe, os.X_OK):
        return exe
    check(False, "%s not found (set PM_BUILD_ROOT)" % prog)
    return None


def run_dump(exe, fmt):
    """Runs `exe fmt`; returns (text, raw bytes). Output that is not UTF-8
    fails a check and is decoded with replacement characters."""
    prog = os.path.basename(exe)
    proc = subprocess.run([exe, fmt], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    check(proc.returncode == 0, "%s %s exited %d: %s"
          % (prog, fmt, proc.returncode, proc.stderr.decode(errors="replace")))
    try:
        return proc.stdout.decode("utf-8", errors="strict"), proc.stdout
    except UnicodeDecodeError as e:
        check(False, "%s output is not UTF-8: %s" % (fmt, e))
        return proc.stdout.decode("utf-8", errors="replace"), proc.stdout


# ---------------------------------------------------------------- missing tools

SKIPPED = []


def missing(name, what, package):
    """A tool some checks need is not there: under CI=true that is a failed
    check, otherwise those checks are skipped (see exit_status)."""
    if os.environ.get("CI") == "true":
        check(False, "%s is missing (Debian package %s; tests/run installs it)" % (what, package))
    else:
        print("%s: %s not available: its checks are skipped" % (name, what))
        SKIPPED.append(what)


def exit_status(name):
    """summary()'s closing line and status, but 77 (meson's "skipped") when
    something was skipped and nothing failed."""
    rc = summary(name)
    return 77 if SKIPPED and FAILED == 0 else rc


# ---------------------------------------------------------------- HTTP

# Requests go to 127.0.0.1 only: no proxy from the environment may intercept them.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url, headers=None, data=None, method=None, timeout=10):
    """(status, headers, body bytes) of one request; status 0 when nothing
    answered."""
    req = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with OPENER.open(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, OSError):
        return 0, {}, b""


def poll(fn, seconds, interval=0.2, done=lambda v: v is not None):
    """Calls fn until done(its result) (by default: the result is not None)
    or `seconds` have passed; returns the last result."""
    deadline = time.monotonic() + seconds
    while True:
        got = fn()
        if done(got) or time.monotonic() >= deadline:
            return got
        time.sleep(interval)


# ---------------------------------------------------------------- processes


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop_process(proc):
    """Ends proc if it still runs: SIGTERM, then SIGKILL after 10 s."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def start_server(name, argv, tmp, ready_path="/-/ready", seconds=60):
    """Starts a server (Prometheus, Alertmanager) on a free 127.0.0.1 port and
    waits until GET ready_path answers 200. argv(port, attempt) is its command
    line; its output goes to tmp/<name>.log. Returns (process, base URL), or
    (None, None) with the log's tail printed. A port taken between free_port()
    and the bind makes the server exit: then another one is tried."""
    log_path = os.path.join(tmp, name + ".log")
    for attempt in range(3):
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(argv(port, attempt), stdin=subprocess.DEVNULL, stdout=log,
                                    stderr=subprocess.STDOUT)
        if poll(lambda: proc.poll() is not None or http(base + ready_path, timeout=2)[0] == 200,
                seconds, 0.1, done=bool) and proc.poll() is None:
            return proc, base
        stop_process(proc)
    with open(log_path, "rb") as f:
        print("%s log:\n%s" % (name, f.read().decode(errors="replace")[-3000:]))
    return None, None


class Fixture:
    """One tests/serve_fixture process: it prints "listening <port> <url>"
    once its server is up, and runs until its stdin is closed (a pipe, so it
    also ends when this process dies). Its stderr goes to `log`, an open
    binary file."""

    def __init__(self, exe, name, args, log):
        self.name = name
        self.log_path = log.name
        self.port = self.base = self.url = None
        self.stopped = False
        self.proc = subprocess.Popen([exe] + args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=log)

    def wait_ready(self, seconds=60):
        """Reads the "listening" line; returns whether the fixture serves."""
        ready, _, _ = select.select([self.proc.stdout], [], [], seconds)
        line = self.proc.stdout.readline().decode(errors="replace") if ready else ""
        parts = line.split()
        if check(len(parts) == 3 and parts[0] == "listening" and parts[1].isdigit(),
                 "%s fixture: first line %r, want 'listening <port> <url>'%s"
                 % (self.name, line, self.log_tail())):
            self.port = int(parts[1])
            self.base = "http://127.0.0.1:%d" % self.port
            self.url = self.base + "/"
            check(parts[2] == self.url, "%s fixture: url %r, want %r"
                  % (self.name, parts[2], self.url))
        return self.port is not None

    def log_tail(self):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")[-2000:]
        except OSError:
            return ""
        return "\n  stderr: " + text if text else ""

    def stop(self):
        """Closes stdin (the fixture's cue to exit) and checks that it exits
        0; the first call only."""
        if self.stopped:
            return
        self.stopped = True
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                check(False, "%s fixture did not exit within 20 s of stdin EOF" % self.name)
                return
        self.proc.stdout.close()
        check(self.proc.returncode == 0, "%s fixture exited %d%s"
              % (self.name, self.proc.returncode, self.log_tail()))
