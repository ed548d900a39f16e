"""Versions: the package's, and the loaded library's (pm_version_string)."""

from ._ffi import ffi, lib

__version__ = "0.1.0"


def library_version() -> str:
    """The loaded libperfmetrics' version, "MAJOR.MINOR.PATCH"."""
    return ffi.string(lib.pm_version_string()).decode()
