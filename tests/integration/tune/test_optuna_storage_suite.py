"""Optuna's own storage tests, run against :class:`~luminary.tune.LuminaryStorage`.

At test time this fetches Optuna's source distribution for the installed version (``pip
download``, cached under the pytest cache or ``~/.cache/luminary-tests``; Optuna's code is
never part of this repository), extracts ``tests/storages_tests/test_storages.py`` with the
``tests`` files it imports, and runs it in a subprocess whose plugin
(``optuna_storage_plugin.py``) makes Optuna's ``StorageSupplier`` yield LuminaryStorage on an
embedded SQLite store, and on PostgreSQL where ``LUMINARY_TEST_POSTGRES_URL`` is set. Without
network the test skips, unless ``LUMINARY_TEST_REQUIRE`` names ``pypi``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests._components import require

optuna = pytest.importorskip("optuna", reason="the tune extra (luminary[tune]) is not installed")

HERE = Path(__file__).parent
SRC = HERE.parents[2] / "src"

#: Files of Optuna's source distribution the storage tests need (they import ``tests``).
NEEDED = (
    "tests/__init__.py",
    "tests/conftest.py",
    "tests/storages_tests/__init__.py",
    "tests/storages_tests/test_storages.py",
)

#: Optuna tests that cannot apply to LuminaryStorage, each with the reason.
DESELECTED = {
    # Luminary refuses an empty study name (names are shown, searched and name the study's
    # run); LuminaryStorage passes "" on, and the store answers InvalidArgumentError.
    "TestStorage::test_create_new_study_with_empty_name": "*",
    # The template's times are datetime.now() with microseconds, taken when Optuna's test
    # module is imported; Luminary keeps times to the millisecond. (The whole-second case of
    # the same test runs.)
    "TestStorage::test_create_new_trial_with_template_trial": "start_time0-complete_time0",
    # LuminaryStorage refuses to be pickled by design: it holds a store, a cache and a
    # heartbeat thread; each process opens its own (lm.tune.storage()).
    "TestStorage::test_pickle_storage": "*",
    # Tests of RDBStorage's private _get_trials, on Optuna's own "sqlite" storage.
    "test_get_trials_included_trial_ids": "",
    "test_get_trials_trial_id_greater_than": "",
}


def _cache_dir(config: pytest.Config) -> Path:
    cache = getattr(config, "cache", None)
    if cache is not None:
        return Path(cache.mkdir("luminary-optuna-sdist"))
    return Path.home() / ".cache" / "luminary-tests" / "optuna-sdist"


def _sdist(version: str, cache: Path) -> Path:
    """Optuna's source distribution for ``version``, downloaded once into ``cache``."""
    found = sorted(cache.glob(f"optuna-{version}.tar.gz"))
    if found:
        return found[0]
    cache.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        f"optuna=={version}",
        "--no-binary",
        ":all:",
        "--no-deps",
        "--no-build-isolation",
        "-d",
        str(cache),
    ]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        require("pypi", f"pip download optuna=={version} could not run: {exc}")
    found = sorted(cache.glob(f"optuna-{version}.tar.gz"))
    if done.returncode != 0 or not found:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        require("pypi", f"pip download optuna=={version} failed: {' / '.join(tail)}")
    return found[0]


def _extract(sdist: Path, version: str, into: Path) -> None:
    prefix = f"optuna-{version}/"
    with tarfile.open(sdist) as tar:
        for name in NEEDED:
            member = tar.getmember(prefix + name)
            data = tar.extractfile(member)
            assert data is not None, name
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data.read())


def _deselect_args(modes: list[str]) -> list[str]:
    path = "tests/storages_tests/test_storages.py"
    ids: list[str] = []
    for test, which in DESELECTED.items():
        if which == "":
            ids.append(test)
        elif which == "*":
            ids += [f"{test}[{m}]" for m in modes]
        elif which.startswith("luminary_"):
            ids += [f"{test}[{which}]"] if which in modes else []
        else:
            ids += [f"{test}[{m}-{which}]" for m in modes]
    return [arg for i in ids for arg in ("--deselect", f"{path}::{i}")]


def test_optunas_storage_tests_pass_on_luminary_storage(
    pytestconfig: pytest.Config, tmp_path: Path
) -> None:
    version = optuna.__version__
    sdist = _sdist(version, _cache_dir(pytestconfig))
    work = tmp_path / "optuna-tests"
    _extract(sdist, version, work)
    # the plugin is a top-level module there: Optuna's tests are a package named ``tests`` too
    shutil.copy(HERE / "optuna_storage_plugin.py", work / "luminary_optuna_plugin.py")
    (work / "pytest.ini").write_text("[pytest]\n")
    modes = ["luminary_sqlite"]
    if os.environ.get("LUMINARY_TEST_POSTGRES_URL"):
        modes.append("luminary_postgres")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(work), str(SRC)])}
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-p",
        "luminary_optuna_plugin",
        "-c",
        str(work / "pytest.ini"),
        "--rootdir",
        str(work),
        "tests/storages_tests/test_storages.py",
        *_deselect_args(modes),
    ]
    done = subprocess.run(
        cmd, cwd=work, env=env, capture_output=True, text=True, timeout=1800, check=False
    )
    out = done.stdout + done.stderr
    summary = out.strip().splitlines()[-1] if out.strip() else ""
    print(f"Optuna {version} storage tests on LuminaryStorage ({', '.join(modes)}): {summary}")
    assert done.returncode == 0, out[-6000:]
    passed = re.search(r"(\d+) passed", summary)
    assert passed is not None, summary
    assert "failed" not in summary, summary
    # every mode ran: far more than the handful of tests without a storage
    assert int(passed.group(1)) >= 50 * len(modes), summary
