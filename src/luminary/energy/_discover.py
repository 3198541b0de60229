"""What this machine can measure: :func:`probe` and the meters :func:`default_meters` picks."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from luminary.energy import _rapl
from luminary.energy._estimate import EstimateMeter, ProcessSet
from luminary.energy._meter import Meter
from luminary.energy._nvml import nvml_meters, nvml_status
from luminary.energy._rapl import DEFAULT_POWERCAP_ROOT, rapl_meters, rapl_status
from luminary.energy.models import SourceStatus
from luminary.errors import InvalidArgumentError

__all__ = ["default_meters", "probe"]


def probe(powercap_root: Path = DEFAULT_POWERCAP_ROOT) -> list[SourceStatus]:
    """Every energy source, readable or not, with the reason and the fix for those that are not.

    RAPL entries per device (``"cpu"``, ``"dram"``), NVML entries per GPU, and the CPU
    estimate, which is always readable. Never raises for a missing or locked source.
    """
    return [
        *rapl_status(powercap_root),
        *nvml_status(),
        SourceStatus("estimate", "cpu", True, "", ""),
    ]


def default_meters(
    pids: Sequence[int] | None = None,
    *,
    tdp_w: float | None = None,
    powercap_root: Path | None = None,
) -> list[Meter]:
    """The meters to use here: RAPL for the CPU if readable, else the estimate (never both);
    RAPL DRAM if readable; one NVML meter per GPU this process may use.

    ``powercap_root`` defaults to ``/sys/class/powercap``. The caller owns the meters
    (``close()`` them; a :class:`Sampler` made without meters does).
    """
    if tdp_w is not None and not tdp_w > 0:
        msg = f"tdp_w={tdp_w!r} is not valid; give the CPU package's TDP in watts (> 0)"
        raise InvalidArgumentError(msg)
    rapl = rapl_meters(powercap_root or _rapl.DEFAULT_POWERCAP_ROOT)
    cpu: Meter = rapl.get("cpu") or EstimateMeter(ProcessSet(pids), tdp_w=tdp_w)
    meters: list[Meter] = [cpu]
    if "dram" in rapl:
        meters.append(rapl["dram"])
    meters.extend(nvml_meters())
    return meters
