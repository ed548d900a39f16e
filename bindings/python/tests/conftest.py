"""Shared fixtures. The package is imported from the source tree
(bindings/python), with the library from PERFMETRICS_LIBRARY."""

import os
import subprocess
import sys
import time

import pytest

BINDING = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE_ROOT = os.path.dirname(os.path.dirname(BINDING))
if BINDING not in sys.path:
    sys.path.insert(0, BINDING)

import perfmetrics  # noqa: E402


@pytest.fixture
def reg():
    """A fresh registry without the library's own families, closed after."""
    r = perfmetrics.Registry(self_metrics=False)
    yield r
    r.close()


def parse(text):
    """{(sample name, frozenset(labels)): value} from prometheus_client's parser."""
    parser = pytest.importorskip("prometheus_client.parser")
    out = {}
    for fam in parser.text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def families(text):
    parser = pytest.importorskip("prometheus_client.parser")
    return {f.name: f for f in parser.text_string_to_metric_families(text)}


def poll(fn, seconds=20.0, interval=0.01):
    """Calls fn until it returns a true value or the deadline passes."""
    deadline = time.monotonic() + seconds
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def run_python(code, env=None, cwd=None, timeout=120):
    """Runs code in a fresh /usr/bin/python3 (the current interpreter) with
    the source tree importable; returns the CompletedProcess."""
    e = dict(os.environ)
    e["PYTHONPATH"] = BINDING + os.pathsep + e.get("PYTHONPATH", "")
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-c", code], env=e, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
