"""A full disk, a database that cannot be opened or written: one Luminary error naming the
path, the free space and the fix (one line from the CLI, never a traceback), and nothing
half-written left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from luminary.errors import BackendUnavailableError, StorageFullError
from luminary.store import SqlStore

CLI = [sys.executable, "-m", "luminary.cli"]


def _cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, **env},
    )


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    text = " ".join(result.stderr.split())  # Rich wraps long lines
    assert text.count("error: ") == 1, text  # after any progress display, one message
    return text[text.index("error: ") :]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1 MiB file system (tmpfs), so writes fail with ENOSPC as on a full disk."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {done.stderr!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_blob_disk_is_one_error_with_path_and_free_space(
    home: Path, tmp_path: Path, small_disk: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "events.bin").write_bytes(os.urandom(3 << 20))  # larger than the disk
    blobs = small_disk / "blobs"

    result = _cli("datasets", "add", "hits", str(data), LUMINARY_BLOBS=str(blobs))

    text = _one_line_error(result)
    assert "no space left on the device holding" in text
    assert str(blobs) in text
    assert "bytes free" in text
    assert "luminary store gc" in text
    assert list(blobs.rglob(".tmp-*")) == []  # nothing half-written stays
    assert not [p for p in blobs.rglob("*") if len(p.name) == 64]
    listed = _cli("datasets", "versions", "hits", LUMINARY_BLOBS=str(blobs))
    assert listed.returncode == 1  # no version was created
    assert "no dataset 'hits'" in listed.stderr


def test_a_full_database_is_a_storage_full_error_and_keeps_what_was_committed(
    tmp_path: Path,
) -> None:
    db = tmp_path / "db" / "luminary.db"
    store = SqlStore(f"sqlite:///{db}", str(tmp_path / "blobs"))
    try:
        run = store.create_run("cms")
        pages = store.engine.connect().exec_driver_sql("PRAGMA page_count").scalar()

        @sa.event.listens_for(store.engine, "connect")
        def _cap(dbapi_conn: object, _record: object) -> None:  # SQLite's own size limit
            dbapi_conn.execute(f"PRAGMA max_page_count={int(pages or 0) + 2}")  # type: ignore[attr-defined]

        store.engine.dispose()
        with pytest.raises(StorageFullError) as caught:
            store.log_params(run.id, {f"p{i}": "x" * 500 for i in range(2000)})
        message = str(caught.value)
        assert str(db.parent) in message
        assert "bytes free" in message
        assert "LUMINARY_DB" in message
        assert store.get_run(run.id).params == {}  # the failed transaction left nothing
    finally:
        store.close()


def test_a_database_that_cannot_be_created_is_one_line_with_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker}/sub/luminary.db"

    text = _one_line_error(_cli("projects", "list", LUMINARY_DB=url))

    assert str(blocker / "sub") in text
    assert "LUMINARY_DB" in text


def test_a_read_only_database_is_one_line_with_the_fix(
    home: Path, tmp_path: Path, small_disk: Path
) -> None:
    db = small_disk / "luminary.db"
    url = f"sqlite:///{db}"
    assert _cli("projects", "create", "cms", LUMINARY_DB=url).returncode == 0
    remount = ["mount", "-o", "remount,ro", str(small_disk)]
    subprocess.run(remount, check=True, capture_output=True)

    text = _one_line_error(_cli("projects", "create", "atlas", LUMINARY_DB=url))

    assert str(db) in text
    assert "writable" in text


def test_postgres_that_refuses_connections_is_backend_unavailable() -> None:
    with pytest.raises(BackendUnavailableError, match="does not answer"):
        SqlStore("postgresql+psycopg://postgres@127.0.0.1:9/none", "/tmp/unused-blobs")
