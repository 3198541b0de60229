"""The hash cache: BLAKE3 digests of files keyed by path, size, modification time and inode.

:class:`HashCache` maps a :data:`CacheKey`, ``(absolute path, size, mtime_ns, inode)``, to a
digest, so a file whose key is in the cache is not opened: one ``stat`` is all it costs. A remote
file's key is ``(url, size, mtime_ns, etag_hash)``: a 63-bit hash of its ETag takes the place of
the inode. The scanner decides which digests are safe to keep (see :mod:`._scan`); the cache
stores and returns them, in batches of :data:`BATCH` per SQLite statement.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from luminary.errors import (
    BackendUnavailableError,
    IntegrityError,
    InvalidStateError,
    LuminaryError,
    StorageFullError,
)

__all__ = ["BATCH", "CacheKey", "HashCache"]

CacheKey = tuple[str, int, int, int]
"""(absolute path or URL, size, mtime_ns, inode or ETag hash)."""

BATCH = 500  # cache look-ups and stores per SQLite statement

_R = TypeVar("_R")


class HashCache:
    """``(path, size, mtime_ns, inode) -> BLAKE3`` in a small SQLite file.

    One row per path (a newer key replaces the old one), so the file does not grow with every
    edit. WAL journal and a 30 s busy timeout make it safe to share between processes; a lock
    makes one instance safe to share between threads. It holds only what can be recomputed: if
    the file is damaged, delete it. Keep it on a local disk (SQLite's WAL needs shared memory,
    which network file systems do not provide).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise self._error(exc) from exc
        try:
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS file_hashes ("
                " path BLOB PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
                " inode INTEGER NOT NULL, digest TEXT NOT NULL) WITHOUT ROWID"
            )
        except sqlite3.Error as exc:
            conn.close()
            raise self._error(exc) from exc
        self._conn = conn

    def __repr__(self) -> str:
        return f"HashCache({str(self.path)!r})"

    def __enter__(self) -> HashCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def lookup_many(self, keys: Sequence[CacheKey]) -> dict[CacheKey, str]:
        """The digests of the keys that are in the cache with exactly this size, mtime, inode."""
        found: dict[CacheKey, str] = {}
        for start in range(0, len(keys), BATCH):
            chunk = keys[start : start + BATCH]
            wanted: dict[bytes, list[CacheKey]] = {}
            for key in chunk:
                wanted.setdefault(os.fsencode(key[0]), []).append(key)
            marks = ",".join("?" * len(wanted))
            sql = (
                "SELECT path, size, mtime_ns, inode, digest FROM file_hashes "
                f"WHERE path IN ({marks})"
            )
            args = list(wanted)

            def select(conn: sqlite3.Connection, sql: str = sql, args: list[bytes] = args) -> Any:
                return conn.execute(sql, args).fetchall()

            with self._lock:
                rows = self._run(select)
            for path, size, mtime_ns, inode, digest in rows:
                for key in wanted.get(bytes(path), ()):
                    if (size, mtime_ns, inode) == (key[1], key[2], _int64(key[3])):
                        found[key] = str(digest)
        return found

    def store_many(self, items: Sequence[tuple[CacheKey, str]]) -> None:
        """Remember digests (one transaction per ~500 rows)."""
        for start in range(0, len(items), BATCH):
            rows = [
                (os.fsencode(path), size, mtime_ns, _int64(inode), digest)
                for (path, size, mtime_ns, inode), digest in items[start : start + BATCH]
            ]

            def write(conn: sqlite3.Connection, rows: list[tuple[Any, ...]] = rows) -> None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    conn.executemany(
                        "INSERT OR REPLACE INTO file_hashes VALUES (?, ?, ?, ?, ?)", rows
                    )
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")

            with self._lock:
                self._run(write)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _run(self, op: Callable[[sqlite3.Connection], _R]) -> _R:
        if self._conn is None:
            msg = f"the hash cache {self.path} is closed; open a new HashCache"
            raise InvalidStateError(msg)
        try:
            return op(self._conn)
        except sqlite3.Error as exc:
            raise self._error(exc) from exc

    def _error(self, exc: BaseException) -> LuminaryError:
        full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
        if full or "database or disk is full" in str(exc):
            return StorageFullError.at(self.path.parent, f"the hash cache {self.path}")
        if isinstance(exc, sqlite3.OperationalError | OSError):
            return BackendUnavailableError(
                f"the hash cache {self.path} cannot be used ({exc}); check that its folder is "
                "writable and on a local disk, or wait for the process that holds it"
            )
        return IntegrityError(
            f"the hash cache {self.path} is not a usable SQLite database ({exc}); it only holds "
            "hashes that can be recomputed: delete the file and run again"
        )


def _int64(value: int) -> int:
    """SQLite integers are signed 64-bit; some file systems use inode numbers above 2**63."""
    return value - (1 << 64) if value >= 1 << 63 else value
