"""Environment capture: what a run ran on and with what code.

The process-wide part (Python, packages, host, CPU, memory, GPUs) is computed once per process;
the git state once per working directory. Both run on the run's background thread, never on the
caller's.
"""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["capture_environment", "git_state", "gpu_inventory"]


def capture_environment(cwd: str | None = None) -> dict[str, Any]:
    env = dict(_process_environment())
    env["command"] = list(sys.argv)
    env["cwd"] = cwd or os.getcwd()
    env["git"] = git_state(env["cwd"])
    return env


@functools.cache
def _process_environment() -> dict[str, Any]:
    import psutil

    packages = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return {
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "platform": {
            "system": platform.system(),
            "release": platform.release(),
            "machine": platform.machine(),
        },
        "host": socket.gethostname(),
        "cpu": {
            "model": _cpu_model(),
            "logical": psutil.cpu_count(logical=True),
            "physical": psutil.cpu_count(logical=False),
        },
        "memory_bytes": psutil.virtual_memory().total,
        "gpus": gpu_inventory(),
        "packages": dict(sorted(packages.items())),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def gpu_inventory() -> list[dict[str, Any]]:
    """GPUs seen through NVML (``luminary[gpu]``) or ``nvidia-smi``; empty when there are none."""
    try:
        import pynvml
    except ImportError:
        return _nvidia_smi()
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError:
        return []
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            name = pynvml.nvmlDeviceGetName(handle)
            mem = pynvml.nvmlDeviceGetMemoryInfo(handle)
            gpus.append(
                {
                    "index": i,
                    "name": name.decode() if isinstance(name, bytes) else name,
                    "memory_bytes": int(mem.total),
                    "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
                }
            )
        return gpus
    finally:
        pynvml.nvmlShutdown()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _nvidia_smi() -> list[dict[str, Any]]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,uuid", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append(
                {
                    "index": int(parts[0]),
                    "name": parts[1],
                    "memory_bytes": int(float(parts[2])) * 2**20,
                    "uuid": parts[3],
                }
            )
    return gpus


@functools.cache
def git_state(cwd: str) -> dict[str, Any] | None:
    """Commit, branch, dirty flag and origin of the git work tree holding ``cwd``, if any."""
    exe = shutil.which("git")
    if exe is None:
        return None

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return None
    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": commit,
        "branch": git("rev-parse", "--abbrev-ref", "HEAD"),
        "dirty": bool(status),
        "remote": git("config", "--get", "remote.origin.url"),
        "root": git("rev-parse", "--show-toplevel"),
    }
