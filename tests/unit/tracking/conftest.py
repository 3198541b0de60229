from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from luminary.tracking import _api


@pytest.fixture(autouse=True)
def _no_leftover_active_runs() -> Iterator[None]:
    """A test that fails half-way leaves its run active; end it so the next test starts clean."""
    yield
    while _api._active:
        run = _api._active.pop()
        with contextlib.suppress(Exception):
            run.end("killed")


@pytest.fixture
def home(_isolated_home: Path) -> Path:
    """This test's LUMINARY_HOME (set by the suite-wide autouse fixture)."""
    return _isolated_home
