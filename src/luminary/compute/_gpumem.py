"""GPU memory limits: what a job is told, and the watchdog that stops a job that takes more.

A job that asks for GPU memory (``gpu_memory_mb``), or for a fraction of a device of known
size, gets a limit in MiB per device. Two things enforce it:

- **The frameworks' own limits**, set before the job's code allocates: the environment
  carries ``LUMINARY_GPU_MEMORY_MB`` and ``LUMINARY_GPU_MEMORY_FRACTION``, JAX's
  ``XLA_PYTHON_CLIENT_MEM_FRACTION`` and TensorFlow's allow-growth switch; PyTorch has no
  variable for it, so :func:`apply_torch_limit` calls
  ``torch.cuda.set_per_process_memory_fraction`` (Python-call jobs get it before the call;
  a script calls ``lm.jobs.limit_gpu_memory()``). A framework's allocator then raises its own
  out-of-memory error inside the job instead of starving its neighbours.
- **An NVML watchdog** in the supervisor, every second: the memory NVML reports for the
  job's processes on each device; beyond the limit (with 5 % for the CUDA context) the job is
  stopped and the reason recorded ("GPU memory overrun: 21,504 MiB on device 0, 20,480 MiB
  asked"). Without ``nvidia-ml-py`` or a GPU there is nothing to watch.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from luminary.compute.models import Job

__all__ = ["GpuMemoryWatch", "apply_torch_limit", "limit_env", "limit_mb", "overrun"]

log = logging.getLogger("luminary.compute")

#: Allowance over the limit before the watchdog acts (the CUDA context itself, rounding).
TOLERANCE = 0.05


def limit_mb(job: Job, device_mb: int) -> int | None:
    """The job's GPU memory limit per device in MiB: its ``gpu_memory_mb``, else its fraction
    of a ``device_mb`` device; ``None`` when it holds whole devices or the size is unknown."""
    r = job.spec.resources
    if r.gpu_memory_mb:
        return r.gpu_memory_mb
    if 0 < r.gpus < 1 and device_mb:
        return int(r.gpus * device_mb)
    return None


def limit_env(limit: int | None, device_mb: int) -> dict[str, str]:
    """The variables that tell frameworks the limit."""
    if limit is None:
        return {}
    env = {"LUMINARY_GPU_MEMORY_MB": str(limit), "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    if device_mb:
        fraction = max(0.01, min(1.0, limit / device_mb))
        env["LUMINARY_GPU_MEMORY_FRACTION"] = f"{fraction:.4f}"
        env["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{fraction:.4f}"
    return env


def apply_torch_limit() -> bool:
    """Inside a job: cap PyTorch's allocator on every visible device at the job's fraction.
    Returns whether a limit was applied (no torch, no CUDA or no limit: nothing to do)."""
    fraction = os.environ.get("LUMINARY_GPU_MEMORY_FRACTION")
    if not fraction:
        return False
    try:
        import torch  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    for device in range(torch.cuda.device_count()):
        torch.cuda.set_per_process_memory_fraction(float(fraction), device)
    return True


def overrun(used_mb_by_device: Mapping[int, float], limit: int) -> str | None:
    """Why the job must stop (the first device over its limit), or ``None``."""
    for device, used in sorted(used_mb_by_device.items()):
        if used > limit * (1 + TOLERANCE):
            return f"GPU memory overrun: {used:,.0f} MiB on device {device}, {limit:,} MiB asked"
    return None


class GpuMemoryWatch:
    """Reads, through NVML, the GPU memory used by a set of processes on given devices
    (physical indices, or UUIDs for MIG). ``usage(pids)`` returns MiB per device; empty when
    NVML is not there."""

    def __init__(self, devices: Iterable[str]) -> None:
        self._nv: Any = None
        self._handles: dict[int, Any] = {}
        try:
            from luminary._optional import require

            nv = require("pynvml", "gpu", "watching GPU memory", package="nvidia-ml-py")
            nv.nvmlInit()
        except Exception as exc:  # noqa: BLE001 - no NVML: nothing to watch, said once
            log.info("GPU memory is not watched: %s", exc)
            return
        self._nv = nv
        for position, device in enumerate(devices):
            with contextlib.suppress(Exception):
                if device.startswith(("GPU-", "MIG-")):
                    handle = nv.nvmlDeviceGetHandleByUUID(device)
                else:
                    handle = nv.nvmlDeviceGetHandleByIndex(int(device))
                self._handles[position] = handle

    @property
    def active(self) -> bool:
        return bool(self._handles)

    def usage(self, pids: set[int]) -> dict[int, float]:
        out: dict[int, float] = {}
        for position, handle in self._handles.items():
            try:
                procs = self._nv.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception:  # noqa: BLE001 - a failed read is not an overrun
                continue
            used = sum((p.usedGpuMemory or 0) for p in procs if p.pid in pids and p.usedGpuMemory)
            out[position] = used / (1 << 20)
        return out

    def close(self) -> None:
        if self._nv is not None:
            with contextlib.suppress(Exception):
                self._nv.nvmlShutdown()
