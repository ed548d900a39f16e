"""Runs examples/python/*.py so that the example cannot rot."""

import glob
import os
import subprocess
import sys

import pytest

from conftest import BINDING, SOURCE_ROOT

EXAMPLES = sorted(glob.glob(os.path.join(SOURCE_ROOT, "examples", "python", "*.py")))


def test_there_is_an_example():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_runs(path):
    env = dict(os.environ, PYTHONPATH=BINDING)
    p = subprocess.run([sys.executable, path, "--jobs", "50"], env=env, capture_output=True,
                       text=True, timeout=120, cwd=SOURCE_ROOT)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "metrics:   http://127.0.0.1:" in p.stdout
    assert "jobs: 200 of 200" in p.stdout
    assert 'jobs_total{kind="resize",outcome="ok"}' in p.stdout
