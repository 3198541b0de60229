"""Optional dependencies: import one, or raise MissingDependencyError with the extra to install.

Every optional package Luminary uses (onnx, onnxruntime, uproot, pyarrow, h5py, nvidia-ml-py,
psycopg, fsspec-xrootd, s3fs, FastAPI, tritonclient ...) is imported through :func:`require`, so
the message a user sees always names the package, what needed it and the exact install command.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from luminary.errors import MissingDependencyError


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
