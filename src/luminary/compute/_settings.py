"""Compute's timing settings, from the environment."""

from __future__ import annotations

import math
import os

from luminary.errors import InvalidArgumentError

__all__ = ["job_heartbeat_s"]


def job_heartbeat_s() -> float:
    """Seconds between a running job's heartbeats (``LUMINARY_JOB_HEARTBEAT_S``, default 5). An
    attempt silent for a heartbeat and 1.5 s more is lost: requeued or failed."""
    text = os.environ.get("LUMINARY_JOB_HEARTBEAT_S", "5")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.1 <= value <= 3600:
        msg = f"LUMINARY_JOB_HEARTBEAT_S={text!r} is not valid; give 0.1 to 3600 seconds"
        raise InvalidArgumentError(msg)
    return value
