"""Runs the binding's pytest suite and ends with the line the project's test
runner sums: "python: N passed, N failed". Used by tests/meson.build (suite
'python') with Debian's /usr/bin/python3 and PERFMETRICS_LIBRARY set.

A skipped test counts as failed when CI=true (a missing tool must fail CI);
otherwise skips are reported and, if nothing failed, the exit status is 77
(meson's "skipped") only when every test was skipped."""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CI = os.environ.get("CI") == "true"


class Tally:
    def __init__(self):
        self.passed = self.failed = self.skipped = 0

    def pytest_runtest_logreport(self, report):
        if report.failed:
            self.failed += 1
        elif report.skipped:
            if CI:
                self.failed += 1
                print("  FAIL (skipped under CI=true): %s: %s" % (report.nodeid, report.longrepr))
            else:
                self.skipped += 1
        elif report.when == "call":
            self.passed += 1


def main():
    try:
        import pytest
    except ImportError:
        print("python: pytest is missing (Debian package python3-pytest; tests/run installs it)")
        print("python: 0 passed, 1 failed" if CI else "python: 0 passed, 0 failed")
        return 1 if CI else 77
    tally = Tally()
    args = ["-q", "-p", "no:cacheprovider", "-o", "console_output_style=classic", HERE]
    rc = pytest.main(args + sys.argv[1:], plugins=[tally])
    if rc not in (0, 1, 5) and tally.failed == 0:  # interrupted, internal or usage error
        tally.failed = 1
    print("python: %d passed, %d failed%s" % (tally.passed, tally.failed,
                                             ", %d skipped" % tally.skipped if tally.skipped else ""))
    if tally.failed:
        return 1
    return 0 if tally.passed else 77


if __name__ == "__main__":
    sys.exit(main())
