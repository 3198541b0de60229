"""Compute: the machines work runs on.

- ``_inventory.py`` — the machine inventory: CPUs, memory, GPUs (through NVML when present),
  which energy counters are readable, the store in use and the Luminary servers running here
  (``luminary resources``, the web UI's resources page).

Jobs, queues and executors (local, Ray, Slurm) live here too as they arrive.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from luminary._lazy import lazy_getattr

if TYPE_CHECKING:
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

_LAZY = {
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
