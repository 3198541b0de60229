"""Typed values the stores return: frozen dataclasses, aware UTC datetimes, never ORM rows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from luminary._clock import from_ms, to_ms, utc

__all__ = [
    "ArtifactEntry",
    "MetricHistory",
    "ParamValue",
    "Project",
    "Run",
    "RunStatus",
    "from_ms",
    "to_ms",
    "utc",
]

ParamValue = str | int | float | bool | None | list[Any] | dict[str, Any]


class RunStatus(StrEnum):
    QUEUED = "queued"  # a job's run, waiting for resources
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def is_terminal(self) -> bool:
        return self not in (RunStatus.RUNNING, RunStatus.QUEUED)


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    description: str
    created_at: datetime


@dataclass(frozen=True)
class Run:
    """A run as stored. ``metrics`` holds the latest value of each metric (by step, then time)."""

    id: str
    project: str
    name: str
    status: RunStatus
    parent_id: str | None
    start_time: datetime
    end_time: datetime | None
    heartbeat_at: datetime | None
    params: Mapping[str, ParamValue] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project,
            "name": self.name,
            "status": self.status.value,
            "parent_id": self.parent_id,
            "start_time": self.start_time.isoformat(),
            "end_time": self.end_time.isoformat() if self.end_time else None,
            "duration_s": self.duration_s,
            "params": dict(self.params),
            "tags": dict(self.tags),
            "metrics": {k: json_float(v) for k, v in self.metrics.items()},
        }


@dataclass(frozen=True)
class MetricHistory:
    """Every point of one metric of one run, ordered by step then time."""

    run_id: str
    key: str
    steps: list[int]
    timestamps_ms: list[int]
    values: list[float]

    def __len__(self) -> int:
        return len(self.steps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "key": self.key,
            "points": [
                {"step": s, "timestamp_ms": t, "value": json_float(v)}
                for s, t, v in zip(self.steps, self.timestamps_ms, self.values, strict=True)
            ],
        }


@dataclass(frozen=True)
class ArtifactEntry:
    """One file of a run's artifact manifest: a validated relative path and its blob."""

    path: str
    digest: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "digest": self.digest, "size": self.size}


def json_float(value: float) -> float | str:
    """JSON has no NaN or infinity: they travel as the strings "NaN", "Infinity", "-Infinity"."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value
