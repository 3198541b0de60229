"""Where Luminary keeps things, read from the environment.

- ``LUMINARY_HOME``: the embedded home (default ``~/.luminary``).
- ``LUMINARY_DB``: SQLAlchemy URL of the metadata database
  (default ``sqlite:///$LUMINARY_HOME/luminary.db``; e.g. ``postgresql+psycopg://…``).
- ``LUMINARY_BLOBS``: fsspec URL of the blob store: a folder, ``s3://bucket/prefix`` or
  ``root://host//path`` (default ``$LUMINARY_HOME/blobs``).
- ``LUMINARY_URI``: ``http://host:port`` of a ``luminary server``; when set, the SDK and the
  CLI use that server (team mode) instead of ``LUMINARY_DB`` and ``LUMINARY_BLOBS``.
- ``LUMINARY_TOKEN``: sent to the server as ``Authorization: Bearer …``.
- ``LUMINARY_HEARTBEAT``: seconds between run heartbeats (default 10); a running run whose
  heartbeat is three beats old is shown as killed.
- ``LUMINARY_SYNC``: what "durable" means once ``flush()`` or the end of a run returns.
  ``normal`` (default): survives a crash of the process (SQLite ``synchronous=NORMAL`` in WAL
  mode: the commit is in the write-ahead log, which the operating system writes out later), not
  a power cut or a kernel crash, which may lose the last commits (never corrupt the database).
  ``full``: survives a power cut too (SQLite ``synchronous=FULL``: an fsync at every commit,
  and every blob that ``datasets add`` copies is fsynced, as with ``LUMINARY_FSYNC=1``).
  On PostgreSQL the server decides (its ``synchronous_commit`` and ``fsync`` settings, on by
  default): a commit it acknowledges survives a power cut of the database machine whatever
  this setting says. ``LUMINARY_SQLITE_SYNC`` is the older name (also accepts ``NORMAL``/``FULL``).
- ``LUMINARY_FSYNC``: ``1`` makes every file copied into the blob store by ``datasets add``
  durable against a power cut (one fsync per file); by default the operating system flushes
  them, which survives a crash of the process. Reads verify every blob either way.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from luminary.errors import InvalidArgumentError

__all__ = ["SYNC_LEVELS", "Settings", "sync_level"]

#: ``LUMINARY_SYNC`` values and the SQLite ``synchronous`` pragma each one sets.
SYNC_LEVELS = {"normal": "NORMAL", "full": "FULL"}


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    blobs_url: str
    heartbeat_s: float = 10.0
    sqlite_sync: str = "NORMAL"
    fsync_blobs: bool = False
    uri: str | None = None
    token: str | None = None

    @property
    def stale_after_s(self) -> float:
        """A running run whose heartbeat is older than this is shown as killed."""
        return 3 * self.heartbeat_s

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Settings:
        env = os.environ
        root = Path(home or env.get("LUMINARY_HOME") or Path.home() / ".luminary").expanduser()
        db_url = env.get("LUMINARY_DB") or f"sqlite:///{root / 'luminary.db'}"
        blobs = env.get("LUMINARY_BLOBS") or str(root / "blobs")
        heartbeat = _positive_float("LUMINARY_HEARTBEAT", env.get("LUMINARY_HEARTBEAT", "10"))
        sync = _sync_from_env(env)
        fsync = env.get("LUMINARY_FSYNC", "0").strip().lower() in {"1", "true", "yes"}
        fsync = fsync or sync == "FULL"
        return cls(
            home=root,
            db_url=db_url,
            blobs_url=blobs,
            heartbeat_s=heartbeat,
            sqlite_sync=sync,
            fsync_blobs=fsync,
            uri=env.get("LUMINARY_URI") or None,
            token=env.get("LUMINARY_TOKEN") or None,
        )


def sync_level(value: str, name: str = "LUMINARY_SYNC") -> str:
    """The SQLite ``synchronous`` pragma for a ``LUMINARY_SYNC`` value (``normal`` or ``full``,
    any case); :class:`InvalidArgumentError` for anything else."""
    level = SYNC_LEVELS.get(value.strip().lower())
    if level is None:
        msg = (
            f"{name}={value!r} is not valid; use {name}=normal (survives a crash of the "
            f"process, the default) or {name}=full (survives a power cut: fsync at every commit)"
        )
        raise InvalidArgumentError(msg)
    return level


def _sync_from_env(env: Mapping[str, str]) -> str:
    new, old = env.get("LUMINARY_SYNC"), env.get("LUMINARY_SQLITE_SYNC")
    if new is not None:
        level = sync_level(new)
        if old is not None and sync_level(old, "LUMINARY_SQLITE_SYNC") != level:
            msg = (
                f"LUMINARY_SYNC={new!r} and LUMINARY_SQLITE_SYNC={old!r} disagree; "
                "unset LUMINARY_SQLITE_SYNC (the older name of LUMINARY_SYNC)"
            )
            raise InvalidArgumentError(msg)
        return level
    if old is not None:
        return sync_level(old, "LUMINARY_SQLITE_SYNC")
    return "NORMAL"


def _positive_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        msg = f"{name}={text!r} is not valid; give a positive number of seconds"
        raise InvalidArgumentError(msg)
    return value
