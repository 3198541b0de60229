"""Optional dependencies: import one, or raise MissingDependencyError with the extra to install.

Every optional package Luminary uses (onnx, onnxruntime, uproot, pyarrow, h5py, nvidia-ml-py,
psycopg, fsspec-xrootd, s3fs, FastAPI, tritonclient ...) is imported through :func:`require`, so
the message a user sees always names the package, what needed it and the exact install command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from luminary.errors import MissingDependencyError

__all__ = ["FSSPEC_DRIVERS", "available", "missing_driver", "require"]

#: fsspec file systems whose driver ships in a Luminary extra: URL scheme -> (module, extra).
FSSPEC_DRIVERS = {
    "s3": ("s3fs", "s3"),
    "s3a": ("s3fs", "s3"),
    "root": ("fsspec_xrootd", "xrootd"),
}


def require(module: str, extra: str, purpose: str, *, package: str | None = None) -> ModuleType:
    """Import ``module``, or raise MissingDependencyError naming ``pip install 'luminary[extra]'``.

    ``package`` is the name on PyPI when it differs from the module (``nvidia-ml-py`` for
    ``pynvml``); ``purpose`` says what needed it ("Reading ONNX signatures").
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError.for_module(package or module, extra, purpose) from exc


def available(module: str) -> bool:
    """Whether ``module`` imports (for features that degrade quietly without it)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def missing_driver(url: str, purpose: str, exc: ImportError) -> MissingDependencyError:
    """The error for ``url`` when fsspec has no driver for its scheme: the extra to install for
    the schemes Luminary supports, else the ones it does support."""
    scheme = url.split("://", 1)[0] if "://" in url else "file"
    if scheme in FSSPEC_DRIVERS:
        module, extra = FSSPEC_DRIVERS[scheme]
        return MissingDependencyError.for_module(module, extra, purpose)
    return MissingDependencyError(
        f"{purpose} needs fsspec's {scheme!r} file system, whose package is not installed "
        f"({exc}); Luminary supports a local folder, s3:// and root://"
    )
