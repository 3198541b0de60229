"""The one wall clock every record is stamped with: integer milliseconds since the epoch, and
its conversions to and from aware UTC datetimes."""

from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as stored in every ``*_ms`` column."""
    return time.time_ns() // 1_000_000


def to_ms(when: datetime) -> int:
    """Milliseconds since the epoch of ``when`` (a naive datetime means UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def from_ms(ms: int | None) -> datetime | None:
    """An aware UTC datetime from milliseconds since the epoch (None stays None)."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


def utc(ms: int) -> datetime:
    """An aware UTC datetime from milliseconds since the epoch."""
    return datetime.fromtimestamp(ms / 1000, tz=UTC)
