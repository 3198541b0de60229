"""Helpers for tests that compare a run's metrics or tags exactly."""

from __future__ import annotations

from typing import Any

# What a run records about itself when it ends (its energy measurement).
RECORDED = ("energy/", "power/", "utilization/", "resources/", "energy.")


def own(values: dict[str, Any]) -> dict[str, Any]:
    """A run's metrics or tags without what its energy measurement adds at the end."""
    return {k: v for k, v in values.items() if not k.startswith(RECORDED)}
