"""Compute: the machines work runs on, and the queue that decides who runs on them.

- ``models.py`` — values: :class:`JobSpec` (a command or a Python call, resources per node,
  gangs, priority, time limit, retries, preemption, dataset inputs), :class:`Pool`,
  :class:`Quota`, :class:`Job`.
- ``_base.py`` — :class:`ComputeStore`, compute's part of the Store: pools, quotas, the queue,
  what agents and runners call; ``_sql.py`` implements it, ``_pass.py`` is the scheduler's
  pass over the rows and ``_policy.py`` the pure scheduler (fair share on decayed usage,
  quotas with borrowing inside a cohort and reclaim by preemption, fractions, gangs).
- Execution: ``_executor.py`` (the interface), ``_local.py``, ``_ray.py``, ``_slurm.py``;
  ``_agent.py`` serves a pool; ``_supervise.py`` runs one rank of an attempt (logs, heartbeat,
  energy, time limit, preemption); ``runner.py`` and ``agent.py`` are their entry points.
- ``jobs.py`` — the SDK: ``lm.jobs.submit(fn_or_cmd, gpus=0.5, …)``.
- ``_inventory.py`` — the machine inventory: CPUs, memory, GPUs (through NVML when present),
  which energy counters are readable, the store in use and the Luminary servers running here
  (``luminary resources``, the web UI's resources page).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from luminary._lazy import lazy_getattr
from luminary.compute._base import ComputeStore, UsageSample
from luminary.compute.models import (
    EXECUTORS,
    Agent,
    Job,
    JobSpec,
    JobState,
    LogChunk,
    NodePlacement,
    Placement,
    Pool,
    Quota,
    Resources,
    Signals,
    TaskReport,
    parse_duration,
    parse_memory,
)

if TYPE_CHECKING:
    from luminary.compute._executor import Executor
    from luminary.compute._inventory import (
        CpuInfo,
        EnergySource,
        GpuInfo,
        GpuReport,
        MemoryInfo,
        ResourceRow,
        ServerProcess,
        Snapshot,
        StoreInfo,
        collect,
        parse_server_cmdline,
        rows,
        snapshot_dict,
    )
    from luminary.compute._pass import AGENT_STALE_MS
    from luminary.compute._policy import ProjectShare
    from luminary.compute._sql import SqlCompute

_LAZY = {
    "AGENT_STALE_MS": "luminary.compute._pass",
    "Executor": "luminary.compute._executor",
    "ProjectShare": "luminary.compute._policy",
    "SqlCompute": "luminary.compute._sql",
    "CpuInfo": "luminary.compute._inventory",
    "EnergySource": "luminary.compute._inventory",
    "GpuInfo": "luminary.compute._inventory",
    "GpuReport": "luminary.compute._inventory",
    "MemoryInfo": "luminary.compute._inventory",
    "ResourceRow": "luminary.compute._inventory",
    "ServerProcess": "luminary.compute._inventory",
    "Snapshot": "luminary.compute._inventory",
    "StoreInfo": "luminary.compute._inventory",
    "collect": "luminary.compute._inventory",
    "parse_server_cmdline": "luminary.compute._inventory",
    "rows": "luminary.compute._inventory",
    "snapshot_dict": "luminary.compute._inventory",
}

__all__ = [
    "AGENT_STALE_MS",
    "EXECUTORS",
    "Agent",
    "ComputeStore",
    "Executor",
    "Job",
    "JobSpec",
    "JobState",
    "LogChunk",
    "NodePlacement",
    "Placement",
    "Pool",
    "ProjectShare",
    "Quota",
    "Resources",
    "Signals",
    "SqlCompute",
    "TaskReport",
    "UsageSample",
    "parse_duration",
    "parse_memory",
    "CpuInfo",
    "EnergySource",
    "GpuInfo",
    "GpuReport",
    "MemoryInfo",
    "ResourceRow",
    "ServerProcess",
    "Snapshot",
    "StoreInfo",
    "collect",
    "parse_server_cmdline",
    "rows",
    "snapshot_dict",
]

__getattr__ = lazy_getattr(_LAZY)
