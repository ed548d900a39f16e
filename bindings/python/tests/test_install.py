"""Finding the library (each branch, and the error that lists what was
tried), and installing the package with pip into a fresh venv with no
package index: from the tree, and from the sdist with a bundled library."""

import os
import importlib.util
import subprocess
import sys
import tarfile
import zipfile

import pytest

import perfmetrics as pm
from perfmetrics import _ffi
from conftest import BINDING, SOURCE_ROOT

LIBRARY = os.path.realpath(pm.library_path)
RECORD_AND_EXPOSE = """
import os, perfmetrics as pm
r = pm.Registry(self_metrics=False)
c = pm.Counter("installed", "From an installed package.", ["k"], registry=r)
c.labels("v").inc(3)
print("text", pm.generate_latest(r).decode().splitlines()[-1])
print("file", pm.__file__)
print("lib", pm.library_path)
"""


def clean_env(**extra):
    """The environment without anything that would find the package or the
    library by accident."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PERFMETRICS_LIBRARY", "LD_LIBRARY_PATH",
                        "PERFMETRICS_BUNDLE_LIBRARY")}
    env.update(extra)
    return env


def backend():
    """The in-tree PEP 517 backend, imported from its file."""
    path = os.path.join(BINDING, "_build", "perfmetrics_build.py")
    spec = importlib.util.spec_from_file_location("perfmetrics_build", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def run(python, code, env, cwd):
    return subprocess.run([python, "-c", code], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120)


def fields(stdout):
    return dict(line.split(" ", 1) for line in stdout.splitlines() if " " in line)


def test_candidates_order():
    c = _ffi.candidates({"PERFMETRICS_LIBRARY": "/x/lib.so"}, "/pkg")
    assert c == [("PERFMETRICS_LIBRARY=/x/lib.so", "/x/lib.so"),
                 ("next to the package", "/pkg/libperfmetrics.so.1"),
                 ("the dynamic linker's search path", "libperfmetrics.so.1")]
    assert [p for _, p in _ffi.candidates({}, "/pkg")] == ["/pkg/libperfmetrics.so.1",
                                                           "libperfmetrics.so.1"]


def test_error_lists_every_place_tried(tmp_path):
    with pytest.raises(pm.LibraryNotFoundError) as e:
        _ffi.load(_ffi.cffi.FFI(), {}, str(tmp_path), soname="libperfmetrics-absent.so.1")
    msg = str(e.value)
    assert "next to the package: no such file" in msg
    assert "the dynamic linker's search path: " in msg and "libperfmetrics-absent.so.1" in msg
    assert "Set PERFMETRICS_LIBRARY" in msg
    assert len(e.value.attempts) == 2 and isinstance(e.value, ImportError)
    with pytest.raises(pm.LibraryNotFoundError) as e:
        _ffi.load(_ffi.cffi.FFI(), {"PERFMETRICS_LIBRARY": str(tmp_path / "nope.so")}, BINDING)
    assert "PERFMETRICS_LIBRARY=%s: no such file" % (tmp_path / "nope.so") in str(e.value)
    assert "no other place is tried" in str(e.value)
    (tmp_path / "junk.so").write_text("not a library")
    with pytest.raises(pm.LibraryNotFoundError) as e:
        _ffi.load(_ffi.cffi.FFI(), {"PERFMETRICS_LIBRARY": str(tmp_path / "junk.so")}, BINDING)
    assert "junk.so" in str(e.value)


@pytest.fixture(scope="module")
def venv(tmp_path_factory):
    """A venv (with Debian's site packages: cffi) holding the package as
    `pip install ./bindings/python` installs it, without any index."""
    d = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(d / "env")],
                   check=True, timeout=300)
    python = str(d / "env" / "bin" / "python")
    p = subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-cache-dir",
                        "--disable-pip-version-check", BINDING],
                       env=clean_env(), cwd=str(d), capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    return python, d


def test_pip_install_then_env_var(venv):
    python, d = venv
    p = run(python, RECORD_AND_EXPOSE, clean_env(PERFMETRICS_LIBRARY=LIBRARY), str(d))
    assert p.returncode == 0, p.stderr
    f = fields(p.stdout)
    assert f["text"] == 'installed_total{k="v"} 3'
    assert f["file"].startswith(str(d / "env")) and not f["file"].startswith(BINDING)
    assert f["lib"] == LIBRARY


def test_installed_package_on_the_linker_path(venv):
    python, d = venv
    p = run(python, RECORD_AND_EXPOSE,
            clean_env(LD_LIBRARY_PATH=os.path.dirname(LIBRARY)), str(d))
    assert p.returncode == 0, p.stderr
    assert fields(p.stdout)["lib"] == "libperfmetrics.so.1"


def test_installed_package_without_library_says_what_it_tried(venv):
    python, d = venv
    p = run(python, "import perfmetrics", clean_env(), str(d))
    assert p.returncode != 0
    assert "LibraryNotFoundError" in p.stderr
    assert "next to the package: no such file" in p.stderr
    assert "the dynamic linker's search path" in p.stderr


def test_sdist_with_bundled_library(tmp_path):
    perfmetrics_build = backend()
    name = perfmetrics_build.build_sdist(str(tmp_path))
    with tarfile.open(str(tmp_path / name)) as t:
        members = set(t.getnames())
    base = name[: -len(".tar.gz")]
    for rel in ("pyproject.toml", "PKG-INFO", "README.md", "_build/perfmetrics_build.py",
                "perfmetrics/__init__.py", "perfmetrics/py.typed", "tests/run_pytest.py"):
        assert "%s/%s" % (base, rel) in members
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                    str(tmp_path / "env")], check=True, timeout=300)
    python = str(tmp_path / "env" / "bin" / "python")
    p = subprocess.run([python, "-m", "pip", "install", "--no-index", "--no-cache-dir",
                        "--disable-pip-version-check", str(tmp_path / name)],
                       env=clean_env(PERFMETRICS_BUNDLE_LIBRARY=LIBRARY), cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    p = run(python, RECORD_AND_EXPOSE, clean_env(), str(tmp_path))
    assert p.returncode == 0, p.stderr
    f = fields(p.stdout)
    assert f["text"] == 'installed_total{k="v"} 3'
    assert f["lib"] == os.path.join(os.path.dirname(f["file"]), "libperfmetrics.so.1")
    # The bundled copy is what a wheel built that way carries, platform-tagged.
    wheel = perfmetrics_build.build_wheel(str(tmp_path))
    assert wheel.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(str(tmp_path / wheel)) as z:
        assert "perfmetrics/libperfmetrics.so.1" not in z.namelist()
        record = z.read("perfmetrics-%s.dist-info/RECORD" % pm.__version__).decode()
        assert "perfmetrics/_core.py,sha256=" in record


def test_versions():
    assert pm.library_version().count(".") == 2
    assert pm.__version__ == "0.1.0"
    assert os.path.exists(os.path.join(SOURCE_ROOT, "include", "perfmetrics", "base.h"))


def test_editable_wheel(tmp_path):
    perfmetrics_build = backend()
    name = perfmetrics_build.build_editable(str(tmp_path))
    with zipfile.ZipFile(str(tmp_path / name)) as z:
        assert z.read("_perfmetrics_editable.pth").decode().strip() == BINDING
    meta = perfmetrics_build.prepare_metadata_for_build_wheel(str(tmp_path / "meta"))
    text = (tmp_path / "meta" / meta / "METADATA").read_text()
    assert "Name: perfmetrics" in text and "Requires-Dist: cffi" in text
    assert perfmetrics_build.get_requires_for_build_wheel() == []


def test_bundle_of_missing_file_fails(tmp_path, monkeypatch):
    perfmetrics_build = backend()
    monkeypatch.setenv("PERFMETRICS_BUNDLE_LIBRARY", str(tmp_path / "none.so"))
    with pytest.raises(FileNotFoundError):
        perfmetrics_build.build_wheel(str(tmp_path))
    monkeypatch.setenv("PERFMETRICS_BUNDLE_LIBRARY", LIBRARY)
    wheel = perfmetrics_build.build_wheel(str(tmp_path))
    assert "-py3-none-linux_" in wheel
    with zipfile.ZipFile(str(tmp_path / wheel)) as z:
        assert "perfmetrics/libperfmetrics.so.1" in z.namelist()
