from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from luminary.energy import _rapl

#: A typical package counter range (about 262 kJ).
MAX_UJ = 262_143_328_850

MakeZone = Callable[..., Path]


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """An empty powercap root in a temporary folder."""
    root = tmp_path / "powercap"
    root.mkdir()
    return root


@pytest.fixture
def make_zone(powercap: Path) -> MakeZone:
    """Make a zone folder like the kernel's: ``name``, ``energy_uj``, ``max_energy_range_uj``.

    Sub-zones (``intel-rapl:0:2``) go inside their package's folder; ``energy_uj=None`` or
    ``max_uj=None`` leave that file out.
    """

    def make(zone: str, name: str, energy_uj: int | None = 0, max_uj: int | None = MAX_UJ) -> Path:
        parts = zone.split(":")
        parent = powercap / ":".join(parts[:2]) if len(parts) > 2 else powercap
        folder = parent / zone
        folder.mkdir(parents=True)
        (folder / "name").write_text(name + "\n")
        if energy_uj is not None:
            (folder / "energy_uj").write_text(f"{energy_uj}\n")
        if max_uj is not None:
            (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
        return folder

    return make


def set_counter(folder: Path, energy_uj: int) -> None:
    (folder / "energy_uj").write_text(f"{energy_uj}\n")


@pytest.fixture
def no_rapl(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Make default_meters() see no powercap tree, so the CPU figure is the estimate."""
    monkeypatch.setattr(_rapl, "DEFAULT_POWERCAP_ROOT", tmp_path / "no-powercap")
