from __future__ import annotations

from luminary.storage.schema import RUN_STATUSES
from luminary.tracking import RunStatus


def test_the_filter_language_accepts_exactly_the_run_statuses() -> None:
    assert set(RUN_STATUSES) == {s.value for s in RunStatus}
