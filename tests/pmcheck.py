"""Shared plumbing for the Python checks in tests/: a pass/fail tally with
the closing "<name>: N passed, N failed" line, and running a dump program
built by meson (found through PM_BUILD_ROOT, else the newest build*/ dir)."""

import glob
import os
import subprocess

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
