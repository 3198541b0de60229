"""``LUMINARY_TEST_REQUIRE``: a missing component fails the run where it is required, skips
where it is not, and an unknown name stops the run before any test.

Each case runs pytest in a child process on a real test of this suite, with the component made
missing the way a machine would lack it (no ``LUMINARY_TEST_POSTGRES_URL``; no ``xrootd`` on
``PATH``).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
POSTGRES_TEST = "tests/unit/store/test_filter.py::test_limit_offset[postgres]"
XROOTD_TEST = "tests/integration/test_blobs.py::test_round_trip[xrootd]"


def _pytest(target: str, **env: str) -> subprocess.CompletedProcess[str]:
    child = {
        k: v
        for k, v in os.environ.items()
        if k not in {"LUMINARY_TEST_REQUIRE", "LUMINARY_TEST_POSTGRES_URL", "PYTEST_ADDOPTS"}
    }
    child.update(env, PYTHONPATH=os.pathsep.join(sys.path))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rsf", target],
        cwd=ROOT,
        env=child,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize(
    ("target", "component", "env"),
    [
        (POSTGRES_TEST, "postgres", {}),
        (XROOTD_TEST, "xrootd", {"PATH": "/nonexistent"}),
    ],
)
def test_a_missing_component_fails_where_required_and_skips_elsewhere(
    target: str, component: str, env: dict[str, str]
) -> None:
    quiet = _pytest(target, **env)
    assert quiet.returncode == 0, quiet.stdout + quiet.stderr
    assert f"{component} missing" in quiet.stdout
    assert "skipped" in quiet.stdout

    strict = _pytest(target, LUMINARY_TEST_REQUIRE=f"chromium,{component}", **env)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert f"{component} is required (LUMINARY_TEST_REQUIRE=chromium,{component})" in strict.stdout
    assert "skipped" not in strict.stdout


def test_all_names_every_component() -> None:
    strict = _pytest(POSTGRES_TEST, LUMINARY_TEST_REQUIRE="all")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "postgres is required" in strict.stdout


def test_an_unknown_component_stops_the_run_before_any_test() -> None:
    done = _pytest(POSTGRES_TEST, LUMINARY_TEST_REQUIRE="postgres,postgress")
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout + done.stderr
    message = done.stdout + done.stderr
    assert "unknown component(s) postgress" in message
    assert "postgres, s3, xrootd, chromium, triton, slurm, ray, pypi" in message
    assert "passed" not in message
