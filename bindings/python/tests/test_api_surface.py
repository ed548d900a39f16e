"""Meta-test: every public name of the package, and every public method and
property of its classes, has a docstring (where it is ours) and is called
somewhere in the tests; so a new call cannot land untested."""

import glob
import inspect
import os
import re

import pytest

import perfmetrics as pm

HERE = os.path.dirname(os.path.abspath(__file__))
CLASSES = [pm.Counter, pm.Gauge, pm.Histogram, pm.Registry, pm.Snapshot, pm.Exporter,
           pm.Tracer, pm.Span, pm.AlertEngine, pm.Server, pm.TraceContext]
# Names that tests reach only through the protocols they implement.
PROTOCOL = {"__enter__", "__exit__", "__call__"}


def sources():
    text = ""
    for path in glob.glob(os.path.join(HERE, "test_*.py")):
        if os.path.basename(path) != os.path.basename(__file__):
            with open(path, encoding="utf-8") as f:
                text += f.read()
    return text


TEXT = sources()


@pytest.mark.parametrize("name", sorted(set(pm.__all__) - {"__version__"}))
def test_every_public_name_is_tested(name):
    assert re.search(r"\bpm\.%s\b" % re.escape(name), TEXT), "no test uses pm.%s" % name


def members():
    for cls in CLASSES:
        for name, obj in inspect.getmembers(cls):
            if name.startswith("_") or name in PROTOCOL:
                continue
            if cls is pm.TraceContext and name in ("count", "index"):  # tuple's own
                continue
            yield cls.__name__, name, obj


@pytest.mark.parametrize("cls,name,obj", list(members()), ids=lambda v: str(v)[:40])
def test_every_public_member_is_tested_and_documented(cls, name, obj):
    assert re.search(r"\.%s\b" % re.escape(name), TEXT), "no test uses %s.%s" % (cls, name)
    if cls == "TraceContext" and not isinstance(obj, property):
        return  # namedtuple fields
    doc = obj.fget.__doc__ if isinstance(obj, property) else obj.__doc__
    assert doc, "%s.%s has no docstring" % (cls, name)
