"""``LUMINARY_SYNC``: the durability a commit gets is the one the setting names."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import luminary as lm
from luminary.config import Settings
from luminary.errors import InvalidArgumentError
from luminary.store import SqlStore, get_store, open_store

# SQLite's PRAGMA synchronous answers a number: 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA.
_PRAGMA = {"normal": 1, "full": 2}


def _synchronous(store: SqlStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.exec_driver_sql("PRAGMA synchronous").scalar_one())


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "normal"),
        ({"LUMINARY_SYNC": "normal"}, "normal"),
        ({"LUMINARY_SYNC": "full"}, "full"),
        ({"LUMINARY_SYNC": "FULL"}, "full"),
        ({"LUMINARY_SQLITE_SYNC": "FULL"}, "full"),  # the older name still works
        ({"LUMINARY_SYNC": "full", "LUMINARY_SQLITE_SYNC": "full"}, "full"),
    ],
)
def test_the_pragma_in_effect_matches_the_setting(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    store = open_store()
    assert isinstance(store, SqlStore)
    try:
        assert _synchronous(store) == _PRAGMA[expected]
    finally:
        store.close()
    # The SDK's runs write through the same setting, on every pooled connection.
    with lm.start_run("sync") as run:
        run.log({"loss": 1.0})
        run.flush()
        sdk_store = get_store()
        assert isinstance(sdk_store, SqlStore)
        assert _synchronous(sdk_store) == _PRAGMA[expected]


def test_full_also_fsyncs_the_blobs_datasets_add_copies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMINARY_SYNC", "full")
    assert Settings.from_env().fsync_blobs
    monkeypatch.setenv("LUMINARY_SYNC", "normal")
    assert not Settings.from_env().fsync_blobs


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"LUMINARY_SYNC": "fsync"}, "LUMINARY_SYNC='fsync'"),
        ({"LUMINARY_SYNC": ""}, "LUMINARY_SYNC=''"),
        ({"LUMINARY_SYNC": "off"}, "LUMINARY_SYNC='off'"),
        ({"LUMINARY_SQLITE_SYNC": "sometimes"}, "LUMINARY_SQLITE_SYNC='sometimes'"),
        ({"LUMINARY_SYNC": "full", "LUMINARY_SQLITE_SYNC": "normal"}, "disagree"),
    ],
)
def test_a_bad_value_is_refused_with_the_valid_ones(
    env: dict[str, str], named: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvalidArgumentError) as info:
        Settings.from_env()
    assert named in str(info.value)
    if named != "disagree":
        assert "normal" in str(info.value)
        assert "full" in str(info.value)


def test_the_engine_refuses_a_pragma_it_does_not_know(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="normal"):
        SqlStore(f"sqlite:///{tmp_path / 'x.db'}", str(tmp_path / "blobs"), sqlite_sync="OFF; --")
    bulk = SqlStore(f"sqlite:///{tmp_path / 'y.db'}", str(tmp_path / "blobs"), sqlite_sync="off")
    try:  # a throwaway database (a benchmark's seed) may turn syncing off
        assert _synchronous(bulk) == 0
    finally:
        bulk.close()


def test_the_cli_says_what_is_wrong_without_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LUMINARY_SYNC", "always")
    done = subprocess.run(
        [sys.executable, "-c", "from luminary.cli import main; main()", "runs", "list"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "LUMINARY_SYNC='always' is not valid" in done.stderr
    assert "LUMINARY_SYNC=full" in done.stderr
    assert "Traceback" not in done.stderr
