"""Tracking knobs read from the environment (see :mod:`luminary.config`)."""

from __future__ import annotations

from luminary.config import Settings


def heartbeat_s() -> float:
    return Settings.from_env().heartbeat_s
