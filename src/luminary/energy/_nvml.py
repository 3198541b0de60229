"""NVIDIA GPUs through NVML (``pynvml`` from ``nvidia-ml-py``, the ``gpu`` extra, loaded lazily).

Each GPU is read with its cumulative energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules, Volta and newer) where the driver supports it (source ``"nvml-counter"``), else
its power (``nvmlDeviceGetPowerUsage``, milliwatts) sampled and integrated with the trapezoid
rule (``"nvml-power"``). Utilisation comes from ``nvmlDeviceGetUtilizationRates``.

Every NVML error is mapped here: a read that fails raises
:class:`~luminary.errors.BackendUnavailableError`; :func:`nvml_status` turns a missing package,
library, driver or GPU into a :class:`SourceStatus` with the fix.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from luminary._optional import require
from luminary.energy._meter import Meter, Reading, Track
from luminary.energy.models import SourceStatus
from luminary.errors import BackendUnavailableError, MissingDependencyError

__all__ = ["NvmlMeter", "compare_counter_and_sampled_power", "nvml_meters", "nvml_status"]

INSTALL = "pip install 'luminary[gpu]'"


def load_pynvml() -> ModuleType:
    """The ``pynvml`` module; MissingDependencyError naming the extra when it is absent."""
    return require("pynvml", "gpu", "GPU energy measurement", package="nvidia-ml-py")


def _name(nv: ModuleType, handle: Any) -> str:
    name = nv.nvmlDeviceGetName(handle)
    return name.decode() if isinstance(name, bytes) else str(name)


def _not_supported(nv: ModuleType, exc: BaseException) -> bool:
    cls = getattr(nv, "NVMLError_NotSupported", None)
    return cls is not None and isinstance(exc, cls)


class NvmlMeter(Meter):
    """One GPU, by NVML index: the energy counter where supported, else sampled power.

    ``kind`` is decided per instance; the meter holds one NVML initialisation until
    :meth:`close`.
    """

    def __init__(self, index: int, *, force_power: bool = False) -> None:
        nv = load_pynvml()
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            msg = f"NVML did not start: {exc}; check the NVIDIA driver with nvidia-smi"
            raise BackendUnavailableError(msg) from exc
        self._nv: ModuleType | None = nv
        self.index = index
        self.device = f"gpu{index}"
        self.name = f"nvml:{self.device}"
        try:
            self._handle = nv.nvmlDeviceGetHandleByIndex(index)
            self.model = _name(nv, self._handle)
        except nv.NVMLError as exc:
            self.close()
            msg = f"NVML has no GPU {index}: {exc}; list the GPUs with nvidia-smi -L"
            raise BackendUnavailableError(msg) from exc
        self.kind = "counter"  # decided per GPU, below
        self.source = "nvml-counter"
        self.note = ""
        if force_power:
            self.kind, self.source = "power", "nvml-power"
            self.note = "power sampling requested"
        else:
            try:
                nv.nvmlDeviceGetTotalEnergyConsumption(self._handle)
            except nv.NVMLError as exc:
                self.kind, self.source = "power", "nvml-power"
                self.note = f"energy counter unavailable ({exc})"
        self._utilization = True

    @property
    def detail(self) -> str:
        if self.kind == "counter":
            return f"NVML total energy counter of GPU {self.index} ({self.model})"
        note = f"; {self.note}" if self.note else ""
        return f"NVML power of GPU {self.index} ({self.model}), trapezoid rule{note}"

    def _live(self) -> ModuleType:
        if self._nv is None:
            msg = f"{self.name} is closed; make a new NvmlMeter"
            raise BackendUnavailableError(msg)
        return self._nv

    def read(self) -> Reading:
        nv = self._live()
        try:
            if self.kind == "counter":
                value = nv.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1e3
            else:
                value = nv.nvmlDeviceGetPowerUsage(self._handle) / 1e3
        except nv.NVMLError as exc:
            msg = f"NVML stopped answering for GPU {self.index}: {exc}"
            raise BackendUnavailableError(msg) from exc
        now = time.monotonic()
        utilization: float | None = None
        if self._utilization:
            try:
                utilization = float(nv.nvmlDeviceGetUtilizationRates(self._handle).gpu)
            except nv.NVMLError as exc:
                if not _not_supported(nv, exc):
                    msg = f"NVML stopped answering for GPU {self.index}: {exc}"
                    raise BackendUnavailableError(msg) from exc
                self._utilization = False
        return Reading(now, value, utilization)

    def close(self) -> None:
        nv, self._nv = self._nv, None
        if nv is not None:
            try:
                nv.nvmlShutdown()
            except nv.NVMLError as exc:
                msg = f"NVML did not shut down cleanly: {exc}"
                raise BackendUnavailableError(msg) from exc


def _visible(nv: ModuleType, count: int, env: str | None) -> list[int]:
    """NVML indices of the GPUs ``CUDA_VISIBLE_DEVICES`` lets this process use."""
    if env is None:
        return list(range(count))
    indices: list[int] = []
    for token in (t.strip() for t in env.split(",")):
        if token.isdigit() and int(token) < count:
            index = int(token)
        elif token.startswith(("GPU-", "MIG-")):
            try:
                handle = nv.nvmlDeviceGetHandleByUUID(token.encode())
                if token.startswith("MIG-"):
                    handle = nv.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)
                index = int(nv.nvmlDeviceGetIndex(handle))
            except nv.NVMLError:
                break
        else:
            break  # CUDA ignores everything after the first invalid entry
        if index not in indices:
            indices.append(index)
    return indices


def nvml_status() -> list[SourceStatus]:
    """One status per GPU NVML sees, or one unreadable entry saying what is missing."""
    try:
        nv = load_pynvml()
    except MissingDependencyError:
        return [
            SourceStatus(
                "nvml",
                "",
                False,
                "the Python package nvidia-ml-py (pynvml) is not installed",
                INSTALL,
            )
        ]
    try:
        nv.nvmlInit()
    except nv.NVMLError as exc:
        return [
            SourceStatus(
                "nvml",
                "",
                False,
                f"NVML did not start: {exc} (no NVIDIA GPU or driver on this machine)",
                "on a GPU machine install the NVIDIA driver, which provides libnvidia-ml.so.1; "
                "check with nvidia-smi",
            )
        ]
    try:
        count = int(nv.nvmlDeviceGetCount())
        if count == 0:
            return [
                SourceStatus(
                    "nvml",
                    "",
                    False,
                    "NVML runs but sees no GPU",
                    "check nvidia-smi -L and the container's GPU access",
                )
            ]
        statuses = []
        for index in range(count):
            try:
                handle = nv.nvmlDeviceGetHandleByIndex(index)
                try:
                    nv.nvmlDeviceGetTotalEnergyConsumption(handle)
                except nv.NVMLError:
                    nv.nvmlDeviceGetPowerUsage(handle)
            except nv.NVMLError as exc:
                statuses.append(
                    SourceStatus(
                        "nvml",
                        f"gpu{index}",
                        False,
                        f"NVML cannot read GPU {index}: {exc}",
                        "check nvidia-smi -q -d POWER for this GPU",
                    )
                )
            else:
                statuses.append(SourceStatus("nvml", f"gpu{index}", True, "", ""))
        return statuses
    finally:
        nv.nvmlShutdown()


def _pynvml_installed() -> bool:
    return "pynvml" in sys.modules or _pynvml_findable()


@functools.cache
def _pynvml_findable() -> bool:
    return importlib.util.find_spec("pynvml") is not None


def nvml_meters() -> list[NvmlMeter]:
    """A meter for each GPU this process may use; empty without pynvml, driver or GPU."""
    if not _pynvml_installed():  # checked once: a failing import costs every run
        return []
    try:
        nv = load_pynvml()
    except MissingDependencyError:
        return []
    try:
        nv.nvmlInit()
    except nv.NVMLError:
        return []
    try:
        indices = _visible(nv, int(nv.nvmlDeviceGetCount()), os.environ.get("CUDA_VISIBLE_DEVICES"))
        meters = []
        for index in indices:
            try:
                meters.append(NvmlMeter(index))
            except BackendUnavailableError:
                continue
        return meters
    finally:
        nv.nvmlShutdown()


def compare_counter_and_sampled_power(
    index: int,
    seconds: float,
    load_fn: Callable[[], object],
    *,
    period_s: float = 0.02,
    settle_s: float = 2.0,
) -> dict[str, Any]:
    """The issue's GPU check: the energy counter against the integral of sampled power.

    Calls ``load_fn()`` repeatedly for ``seconds`` (it should wait for its GPU work, e.g.
    ``torch.cuda.synchronize()``), while a thread samples power every ``period_s``. Both
    figures cover the same window, which includes ``settle_s`` of idle before and after the
    load so that the power sensor's averaging lag falls inside it. Returns the joules both
    ways and ``relative_difference = (sampled - counter) / counter``.
    """
    counter = NvmlMeter(index)
    power = NvmlMeter(index, force_power=True)
    try:
        if counter.kind != "counter":
            msg = f"GPU {index} ({counter.model}) has no energy counter to compare: {counter.note}"
            raise BackendUnavailableError(msg)
        stop = threading.Event()
        first_power = power.read()
        first_counter = counter.read()
        track = Track("power", first_power)

        def sample() -> None:
            while not stop.wait(period_s):
                track.add(power.read())

        thread = threading.Thread(target=sample, name="luminary-nvml-check", daemon=True)
        thread.start()
        time.sleep(settle_s)
        begin = time.monotonic()
        calls = 0
        while time.monotonic() - begin < seconds:
            load_fn()
            calls += 1
        load_s = time.monotonic() - begin
        time.sleep(settle_s)
        stop.set()
        thread.join()
        last_counter = counter.read()
        track.add(power.read())
        counter_j = last_counter.value - first_counter.value
        sampled_j = track.joules
        return {
            "gpu": index,
            "model": counter.model,
            "window_s": last_counter.time_s - first_counter.time_s,
            "load_s": load_s,
            "load_calls": calls,
            "settle_s": settle_s,
            "power_samples": track.samples,
            "period_s": period_s,
            "counter_joules": counter_j,
            "sampled_joules": sampled_j,
            "relative_difference": (sampled_j - counter_j) / counter_j if counter_j else None,
            "within_5_percent": bool(counter_j) and abs(sampled_j - counter_j) <= 0.05 * counter_j,
        }
    finally:
        power.close()
        counter.close()
