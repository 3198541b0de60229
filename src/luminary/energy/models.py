"""Energy values: what one device used over an interval, a whole report, and a source's status.

Frozen dataclasses, immutable and safe to share between threads. ``to_dict`` gives plain JSON
types; ``to_metrics``/``to_tags`` give the names a run records (see :class:`EnergyReport`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

__all__ = ["DeviceEnergy", "EnergyReport", "SourceStatus"]

#: What produced a figure: a hardware counter, sampled power, or a TDP-based estimate.
Source = Literal["rapl", "nvml-counter", "nvml-power", "estimate"]
SOURCES: tuple[str, ...] = ("rapl", "nvml-counter", "nvml-power", "estimate")


@dataclass(frozen=True)
class DeviceEnergy:
    """The energy one device used over the measured interval.

    ``device`` is ``"cpu"`` (all packages together), ``"dram"``, or ``"gpu0"``, ``"gpu1"``, …
    ``estimated`` is True exactly when ``source == "estimate"``; ``detail`` says how the figure
    was made, with the constants of an estimate and where they came from. ``utilization`` is
    the mean percentage over the interval where known: for ``"cpu"`` the CPU time of the
    measured processes over their allowed CPUs, for a GPU what NVML reports.
    """

    device: str
    joules: float
    average_watts: float
    source: str
    estimated: bool
    detail: str
    utilization: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DeviceEnergy:
        util = data.get("utilization")
        return cls(
            device=str(data["device"]),
            joules=float(data["joules"]),
            average_watts=float(data["average_watts"]),
            source=str(data["source"]),
            estimated=bool(data["estimated"]),
            detail=str(data["detail"]),
            utilization=None if util is None else float(util),
        )


@dataclass(frozen=True)
class EnergyReport:
    """Energy per device over one interval, with the CPU time and GPU count behind it.

    A report never hides an estimate: ``any_estimated`` is True when one device's figure is a
    TDP-based estimate, and ``to_tags()["energy.measured"]`` is ``"all"``, ``"partial"`` or
    ``"none"``.
    """

    duration_s: float
    devices: tuple[DeviceEnergy, ...]
    cpu_seconds: float
    gpu_count: int

    @property
    def total_joules(self) -> float:
        return sum((d.joules for d in self.devices), 0.0)

    @property
    def measured_joules(self) -> float:
        return sum((d.joules for d in self.devices if not d.estimated), 0.0)

    @property
    def estimated_joules(self) -> float:
        return sum((d.joules for d in self.devices if d.estimated), 0.0)

    @property
    def any_estimated(self) -> bool:
        return any(d.estimated for d in self.devices)

    @property
    def all_estimated(self) -> bool:
        """True when every device is estimated (False for a report with no device)."""
        return bool(self.devices) and all(d.estimated for d in self.devices)

    @property
    def measured(self) -> Literal["all", "partial", "none"]:
        """``"all"`` measured, ``"partial"`` (some devices estimated) or ``"none"``."""
        if not self.devices or self.all_estimated:
            return "none"
        return "partial" if self.any_estimated else "all"

    def device(self, name: str) -> DeviceEnergy | None:
        """The named device's figure, or None when the report has no such device."""
        return next((d for d in self.devices if d.device == name), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "devices": [d.to_dict() for d in self.devices],
            "cpu_seconds": self.cpu_seconds,
            "gpu_count": self.gpu_count,
            "total_joules": self.total_joules,
            "measured_joules": self.measured_joules,
            "estimated_joules": self.estimated_joules,
            "measured": self.measured,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnergyReport:
        """The inverse of :meth:`to_dict` (derived fields are recomputed, not read)."""
        return cls(
            duration_s=float(data["duration_s"]),
            devices=tuple(DeviceEnergy.from_dict(d) for d in data["devices"]),
            cpu_seconds=float(data["cpu_seconds"]),
            gpu_count=int(data["gpu_count"]),
        )

    def to_metrics(self) -> dict[str, float]:
        """Flat metric names for a run.

        ``energy/<device>_joules``, ``power/<device>_watts``, ``utilization/<device>_percent``
        (when known), ``energy/total_joules``, ``resources/cpu_seconds``,
        ``resources/gpu_seconds`` (duration x GPU count) and ``resources/duration_seconds``.
        """
        metrics: dict[str, float] = {}
        for d in self.devices:
            metrics[f"energy/{d.device}_joules"] = d.joules
            metrics[f"power/{d.device}_watts"] = d.average_watts
            if d.utilization is not None:
                metrics[f"utilization/{d.device}_percent"] = d.utilization
        metrics["energy/total_joules"] = self.total_joules
        metrics["resources/cpu_seconds"] = self.cpu_seconds
        metrics["resources/gpu_seconds"] = self.duration_s * self.gpu_count
        metrics["resources/duration_seconds"] = self.duration_s
        return metrics

    def to_tags(self) -> dict[str, str]:
        """``energy.<device>.source``, ``energy.<device>.detail`` and ``energy.measured``."""
        tags: dict[str, str] = {}
        for d in self.devices:
            tags[f"energy.{d.device}.source"] = d.source
            tags[f"energy.{d.device}.detail"] = d.detail
        tags["energy.measured"] = self.measured
        return tags


@dataclass(frozen=True)
class SourceStatus:
    """One energy source this machine has or lacks, as :func:`luminary.energy.probe` finds it.

    ``name`` is ``"rapl"``, ``"nvml"`` or ``"estimate"``; ``device`` the device it would
    measure (``""`` when the source is absent altogether). When ``readable`` is False,
    ``reason`` says why and ``fix`` what to do about it; both are ``""`` when readable.
    """

    name: str
    device: str
    readable: bool
    reason: str
    fix: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
