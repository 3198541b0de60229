"""The one wall clock every record is stamped with: integer milliseconds since the epoch."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch, as stored in every ``*_ms`` column."""
    return time.time_ns() // 1_000_000
