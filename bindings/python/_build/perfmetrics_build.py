"""An in-tree PEP 517 build backend, written with the standard library only.

Why: pip builds a package in an isolated environment and first installs the
backend named in pyproject.toml (normally setuptools) from an index. Where no
index is reachable that fails, although this package needs nothing built: it
is pure Python and loads libperfmetrics.so.1 at run time. With
`requires = []` and this backend (`backend-path`), `pip install
./bindings/python` works offline.

Hooks: build_wheel, build_sdist, build_editable (PEP 660),
prepare_metadata_for_build_wheel/_editable and the get_requires_* ones.

PERFMETRICS_BUNDLE_LIBRARY=/path/to/libperfmetrics.so.1 at build time puts a
copy of that library into the wheel, next to the package (the loader's second
place to look); the wheel is then tagged for this platform instead of "any".
"""

import base64
import hashlib
import io
import os
import platform
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "perfmetrics"
SONAME = "libperfmetrics.so.1"
BUNDLE_ENV = "PERFMETRICS_BUNDLE_LIBRARY"
SDIST_FILES = ("pyproject.toml", "README.md", "CHANGELOG.md")
SDIST_DIRS = ("_build", PACKAGE, "tests")


def _version():
    with open(os.path.join(ROOT, PACKAGE, "_version.py"), encoding="utf-8") as f:
        m = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)
    if not m:
        raise RuntimeError("perfmetrics/_version.py has no __version__")
    return m.group(1)


def _metadata():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    return ("Metadata-Version: 2.1\n"
            "Name: %s\n"
            "Version: %s\n"
            "Summary: Python binding of libperfmetrics: metrics, spans, alerts and an HTTP "
            "endpoint, in the style of prometheus_client\n"
            "License: MIT\n"
            "Requires-Python: >=3.8\n"
            "Requires-Dist: cffi>=1.12\n"
            "Description-Content-Type: text/markdown\n"
            "\n%s" % (PACKAGE, _version(), readme))


def _dist_info():
    return "%s-%s.dist-info" % (PACKAGE, _version())


def _package_files():
    """(archive name, path) of every file of the package, sorted."""
    out = []
    pkg = os.path.join(ROOT, PACKAGE)
    for dirpath, dirnames, filenames in os.walk(pkg):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith((".py", ".typed")):
                path = os.path.join(dirpath, name)
                out.append((os.path.relpath(path, ROOT).replace(os.sep, "/"), path))
    return out


def _tag(bundled):
    if not bundled:
        return "py3-none-any"
    machine = platform.machine().lower().replace("-", "_")
    return "py3-none-linux_%s" % machine


class _Wheel:
    """A wheel being written: every file is hashed into RECORD."""

    def __init__(self, path):
        self.zip = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED)
        self.records = []

    def add(self, arcname, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        info = zipfile.ZipInfo(arcname, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        self.zip.writestr(info, data)
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        self.records.append("%s,sha256=%s,%d" % (arcname, digest, len(data)))

    def finish(self, dist_info, tag):
        self.add(dist_info + "/METADATA", _metadata())
        self.add(dist_info + "/WHEEL", "Wheel-Version: 1.0\nGenerator: perfmetrics_build\n"
                 "Root-Is-Purelib: true\nTag: %s\n" % tag)
        self.add(dist_info + "/top_level.txt", PACKAGE + "\n")
        record = dist_info + "/RECORD"
        self.records.append(record + ",,")
        info = zipfile.ZipInfo(record, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        self.zip.writestr(info, "\n".join(self.records) + "\n")
        self.zip.close()


def _write_metadata_dir(metadata_directory):
    d = os.path.join(metadata_directory, _dist_info())
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata())
    with open(os.path.join(d, "WHEEL"), "w", encoding="utf-8") as f:
        f.write("Wheel-Version: 1.0\nGenerator: perfmetrics_build\nRoot-Is-Purelib: true\n"
                "Tag: %s\n" % _tag(bool(os.environ.get(BUNDLE_ENV))))
    return _dist_info()


# ---------------------------------------------------------------- PEP 517 hooks

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _write_metadata_dir(metadata_directory)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _write_metadata_dir(metadata_directory)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    bundle = os.environ.get(BUNDLE_ENV)
    if bundle and not os.path.isfile(bundle):
        raise FileNotFoundError("%s=%s: no such file" % (BUNDLE_ENV, bundle))
    tag = _tag(bool(bundle))
    name = "%s-%s-%s.whl" % (PACKAGE, _version(), tag)
    w = _Wheel(os.path.join(wheel_directory, name))
    for arcname, path in _package_files():
        with open(path, "rb") as f:
            w.add(arcname, f.read())
    if bundle:
        with open(bundle, "rb") as f:
            w.add("%s/%s" % (PACKAGE, SONAME), f.read())
    w.finish(_dist_info(), tag)
    return name


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    """A wheel holding only a .pth file that puts this source tree on sys.path."""
    name = "%s-%s-py3-none-any.whl" % (PACKAGE, _version())
    w = _Wheel(os.path.join(wheel_directory, name))
    w.add("_perfmetrics_editable.pth", ROOT + "\n")
    w.finish(_dist_info(), "py3-none-any")
    return name


def build_sdist(sdist_directory, config_settings=None):
    base = "%s-%s" % (PACKAGE, _version())
    name = base + ".tar.gz"
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as t:
        def add(rel):
            path = os.path.join(ROOT, rel)
            info = t.gettarinfo(path, "%s/%s" % (base, rel.replace(os.sep, "/")))
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = int(time.time())
            with open(path, "rb") as f:
                t.addfile(info, f)

        for rel in SDIST_FILES:
            add(rel)
        for d in SDIST_DIRS:
            for dirpath, dirnames, filenames in os.walk(os.path.join(ROOT, d)):
                dirnames[:] = sorted(x for x in dirnames if x != "__pycache__")
                for fn in sorted(filenames):
                    if not fn.endswith((".pyc", ".so.1")):
                        add(os.path.relpath(os.path.join(dirpath, fn), ROOT))
        pkg_info = _metadata().encode("utf-8")
        info = tarfile.TarInfo("%s/PKG-INFO" % base)
        info.size = len(pkg_info)
        info.mtime = int(time.time())
        t.addfile(info, io.BytesIO(pkg_info))
    return name
