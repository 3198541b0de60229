"""RAPL energy counters through the Linux powercap tree (``/sys/class/powercap``).

The tree (Intel, and AMD Zen on Linux ≥ 5.8, both under the ``intel-rapl`` control type; a
differently named ``<vendor>-rapl`` type is handled the same way)::

    intel-rapl:0/            name = package-0    → device "cpu" (summed over packages)
        intel-rapl:0:0/      name = core         → ignored (inside the package figure)
        intel-rapl:0:1/      name = uncore       → ignored
        intel-rapl:0:2/      name = dram         → device "dram"
    intel-rapl:1/            name = package-1 or psys (psys used only without any package)

Each zone has ``energy_uj`` (a counter that wraps back to 0 after ``max_energy_range_uj``)
and ``name``. Sub-zones appear both inside their package's folder and flat in the root; they
are found either way and counted once. ``intel-rapl-mmio`` zones duplicate the package and are
skipped. The meter must be read more often than the counter wraps (minutes at full power);
the sampler's 0.5 s period is far inside that.

Since 2020 (CVE-2020-8694) ``energy_uj`` is readable by root only; :func:`rapl_status` says
so, with the command that opens it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from luminary.energy._meter import Meter, Reading
from luminary.energy.models import SourceStatus
from luminary.errors import BackendUnavailableError, InvalidArgumentError

__all__ = ["RaplMeter", "RaplZone", "find_zones", "rapl_meters", "rapl_status", "unwrap"]

DEFAULT_POWERCAP_ROOT = Path("/sys/class/powercap")
_ZONE = re.compile(r"^(?P<type>[a-z]+-rapl):(?P<ids>\d+(?::\d+)*)$")


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone: its folder, ``name`` file and wrap range (None when unreadable)."""

    path: Path
    zone: str  # the folder name, e.g. "intel-rapl:0:2"
    name: str  # the ``name`` file, e.g. "package-0", "dram"
    top_level: bool
    max_range_uj: int | None

    @property
    def device(self) -> str | None:
        """``"cpu"``, ``"dram"``, ``"psys"`` or None for zones that are not counted."""
        if self.name == "dram":
            return "dram"
        if self.top_level and self.name.startswith("package"):
            return "cpu"
        if self.top_level and self.name == "psys":
            return "psys"
        return None

    def read_uj(self) -> int:
        """The raw counter; raises OSError (including PermissionError) or ValueError."""
        return int((self.path / "energy_uj").read_text().strip())


def unwrap(previous_uj: int, current_uj: int, max_range_uj: int | None) -> int:
    """Microjoules between two readings of one counter, across at most one wrap.

    A counter that went down has wrapped: it ran up to ``max_range_uj`` and restarted at 0,
    so the interval holds ``current - previous + max_range_uj + 1``. Without a known range
    only ``current`` is counted (losing the part of one interval before the wrap).
    """
    if current_uj >= previous_uj:
        return current_uj - previous_uj
    if max_range_uj is None:
        return current_uj
    return current_uj - previous_uj + max_range_uj + 1


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def find_zones(root: Path = DEFAULT_POWERCAP_ROOT) -> list[RaplZone]:
    """Every RAPL zone under ``root``, sorted by zone name, each once."""
    folders: dict[str, Path] = {}
    try:
        entries = sorted(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        if _ZONE.match(entry.name) and entry.is_dir():
            folders.setdefault(entry.name, entry)
            try:
                nested = sorted(entry.iterdir())
            except OSError:
                continue
            for sub in nested:
                if _ZONE.match(sub.name) and sub.is_dir():
                    folders.setdefault(sub.name, sub)
    zones = []
    for zone, path in sorted(folders.items()):
        top_level = ":" not in zone.split(":", 1)[1]
        max_text = _read_text(path / "max_energy_range_uj")
        max_range = int(max_text) if max_text and max_text.isdigit() else None
        name = _read_text(path / "name") or ("package" if top_level else "unknown")
        zones.append(RaplZone(path, zone, name, top_level, max_range))
    return zones


def _fix_for(zone: RaplZone, root: Path) -> str:
    control = zone.zone.split(":", 1)[0]
    return (
        f"sudo chmod a+r {root}/{control}:*/energy_uj {root}/{control}:*:*/energy_uj "
        "(reset at boot: make it permanent with a udev rule or a systemd-tmpfiles line)"
    )


def _zone_problem(zone: RaplZone, root: Path) -> tuple[str, str] | None:
    """(reason, fix) when the zone's counter cannot be read, else None."""
    target = zone.path / "energy_uj"
    try:
        zone.read_uj()
    except PermissionError:
        return f"permission denied reading {target}", _fix_for(zone, root)
    except FileNotFoundError:
        return (
            f"{target} does not exist: the kernel exposes this zone without an energy counter",
            "none on this machine; the estimate is used instead",
        )
    except OSError as exc:
        return (
            f"cannot read {target}: {exc.strerror or exc}",
            f"check that {target} is the kernel's powercap file (ls -l {zone.path})",
        )
    except ValueError:
        return (
            f"{target} does not hold a whole number of microjoules",
            f"check the file's content (cat {target})",
        )
    return None


def _groups(zones: Sequence[RaplZone]) -> dict[str, list[RaplZone]]:
    """Zones per device: packages (or psys alone) → "cpu", dram → "dram"."""
    groups: dict[str, list[RaplZone]] = {}
    for zone in zones:
        if zone.device in ("cpu", "dram"):
            groups.setdefault(zone.device, []).append(zone)
    if "cpu" not in groups:
        psys = [z for z in zones if z.device == "psys"]
        if psys:
            groups["cpu"] = psys
    return dict(sorted(groups.items()))


def rapl_status(root: Path = DEFAULT_POWERCAP_ROOT) -> list[SourceStatus]:
    """One status per RAPL device ("cpu", "dram"), or one unreadable entry when none exists."""
    if not root.is_dir():
        return [
            SourceStatus(
                "rapl",
                "",
                False,
                f"no {root}: this kernel exposes no powercap counters "
                "(virtual machines usually hide RAPL)",
                "run on bare metal or a VM that passes RAPL through; on bare metal load the "
                "driver: sudo modprobe intel_rapl_msr (Intel, and AMD Zen on Linux >= 5.8)",
            )
        ]
    groups = _groups(find_zones(root))
    if not groups:
        return [
            SourceStatus(
                "rapl",
                "",
                False,
                f"no RAPL package or dram zone under {root}",
                "load the driver: sudo modprobe intel_rapl_msr "
                "(Intel, and AMD Zen on Linux >= 5.8)",
            )
        ]
    statuses = []
    for device, zones in groups.items():
        problem = next((p for z in zones if (p := _zone_problem(z, root)) is not None), None)
        if problem is None:
            statuses.append(SourceStatus("rapl", device, True, "", ""))
        else:
            statuses.append(SourceStatus("rapl", device, False, problem[0], problem[1]))
    return statuses


class RaplMeter(Meter):
    """One device's RAPL counters (all packages for ``"cpu"``), unwrapped and summed.

    ``read().value`` is joules since the meter was made. Each read unwraps every counter
    against its previous reading, so the meter must be read at least once per wrap period.
    """

    source = "rapl"

    def __init__(self, device: str, zones: Sequence[RaplZone]) -> None:
        if not zones:
            msg = f"RaplMeter({device!r}) needs at least one zone; find them with find_zones()"
            raise InvalidArgumentError(msg)
        self.device = device
        self.name = f"rapl:{device}"
        self._zones = tuple(zones)
        self._last = [self._read(z) for z in self._zones]
        self._total_uj = 0

    @staticmethod
    def _read(zone: RaplZone) -> int:
        try:
            return zone.read_uj()
        except (OSError, ValueError) as exc:
            msg = f"cannot read the RAPL counter {zone.path / 'energy_uj'}: {exc}"
            raise BackendUnavailableError(msg) from exc

    @property
    def detail(self) -> str:
        names = " + ".join(z.zone for z in self._zones)
        kinds = sorted({z.name.split("-")[0] for z in self._zones})
        plural = "s" if len(self._zones) > 1 else ""
        text = f"{names} {'/'.join(kinds)} counter{plural}"
        unknown = [z.zone for z in self._zones if z.max_range_uj is None]
        if unknown:
            text += (
                f" (no max_energy_range_uj for {', '.join(unknown)}: "
                "a counter wrap loses up to one sampling interval)"
            )
        return text

    def read(self) -> Reading:
        current = [self._read(z) for z in self._zones]
        now = time.monotonic()
        for zone, before, after in zip(self._zones, self._last, current, strict=True):
            self._total_uj += unwrap(before, after, zone.max_range_uj)
        self._last = current
        return Reading(now, self._total_uj / 1e6)


def rapl_meters(root: Path = DEFAULT_POWERCAP_ROOT) -> dict[str, RaplMeter]:
    """A meter for each RAPL device whose counters are all readable, by device."""
    meters: dict[str, RaplMeter] = {}
    for device, zones in _groups(find_zones(root)).items():
        if all(_zone_problem(z, root) is None for z in zones):
            meters[device] = RaplMeter(device, zones)
    return meters
