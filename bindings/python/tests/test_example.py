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


def test_bench_runs_and_prints_table_rows():
    # bench/bench_python.py, shortened, so that it cannot rot either.
    env = dict(os.environ, BENCH_REPS="7", BENCH_REP_MS="1", BENCH_PY_THREAD_OPS="2000")
    p = subprocess.run([sys.executable, os.path.join(SOURCE_ROOT, "bench", "bench_python.py")],
                       env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = [line for line in p.stdout.splitlines() if line.startswith("| python: ")]
    assert len(rows) == 11, p.stdout
    for line in rows:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert len(cells) == 6, line
        case, threads, ns, base, ratio, info = cells
        assert threads in ("1", "4") and float(ns) > 0 and ratio.endswith("x")
    targets = [line for line in rows if "target <= 1.0" in line]
    assert len(targets) == 4
    assert "target no lost update: MET" in p.stdout
