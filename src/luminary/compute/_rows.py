"""Rows of compute's tables to values and back (JSON columns included)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from luminary.compute.models import Job, JobSpec, JobState, NodePlacement, Placement, Pool, Quota

__all__ = [
    "job_from_row",
    "placement_from_json",
    "placement_to_json",
    "pool_from_row",
    "quota_from_json",
]


def pool_from_row(row: Mapping[Any, Any]) -> Pool:
    data = json.loads(row["spec"])
    data["enabled"] = bool(row["enabled"])
    return Pool(**data)


def quota_from_json(text: str, project: str) -> Quota:
    data = json.loads(text)
    data["project"] = project
    return Quota(**data)


def placement_to_json(placement: Placement) -> str:
    return json.dumps(
        [
            {
                "node": p.node,
                "devices": [list(d) for d in p.devices],
                "gpu_memory_mb": p.gpu_memory_mb,
            }
            for p in placement
        ]
    )


def placement_from_json(text: str) -> Placement:
    return tuple(
        NodePlacement(
            node=p["node"],
            devices=tuple((int(i), float(f)) for i, f in p["devices"]),
            gpu_memory_mb=int(p.get("gpu_memory_mb", 0)),
        )
        for p in json.loads(text or "[]")
    )


#: Specs by job id: a job's spec never changes, and checking it again on every pass of the
#: scheduler would cost more than the pass.
_SPECS: dict[str, JobSpec] = {}
_SPECS_KEPT = 100_000


def spec_of(job_id: str, text: str) -> JobSpec:
    spec = _SPECS.get(job_id)
    if spec is None:
        if len(_SPECS) >= _SPECS_KEPT:
            _SPECS.clear()
        spec = _SPECS[job_id] = JobSpec.from_dict(json.loads(text))
    return spec


def job_from_row(row: Mapping[Any, Any]) -> Job:
    return Job(
        id=row["id"],
        run_id=row["run_id"],
        spec=spec_of(row["id"], row["spec"]),
        state=JobState(row["state"]),
        user=row["user_name"],
        submitted_ms=row["submitted_ms"],
        attempt=row["attempt"],
        pool=row["pool"],
        placement=placement_from_json(row["placement"]),
        executor_ref=row["executor_ref"],
        started_ms=row["started_ms"],
        ended_ms=row["ended_ms"],
        heartbeat_ms=row["heartbeat_ms"],
        exit_code=row["exit_code"],
        reason=row["reason"],
        cancel_requested=bool(row["cancel_requested"]),
        preempt_requested=bool(row["preempt_requested"]),
    )
