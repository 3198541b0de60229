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
- ``LUMINARY_SQLITE_SYNC``: SQLite ``synchronous`` pragma; ``NORMAL`` (default) survives a
  process crash, ``FULL`` also a power cut.
- ``LUMINARY_FSYNC``: ``1`` makes every file copied into the blob store by ``datasets add``
  durable against a power cut (one fsync per file); by default the operating system flushes
  them, which survives a crash of the process. Reads verify every blob either way.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from luminary.errors import InvalidArgumentError

__all__ = ["Settings"]


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
        sync = env.get("LUMINARY_SQLITE_SYNC", "NORMAL").upper()
        if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            msg = f"LUMINARY_SQLITE_SYNC={sync!r} is not valid; use NORMAL or FULL"
            raise InvalidArgumentError(msg)
        fsync = env.get("LUMINARY_FSYNC", "0").strip().lower() in {"1", "true", "yes"}
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


def _positive_float(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        msg = f"{name}={text!r} is not valid; give a positive number of seconds"
        raise InvalidArgumentError(msg)
    return value
