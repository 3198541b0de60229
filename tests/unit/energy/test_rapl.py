from __future__ import annotations

import os
from pathlib import Path

import pytest

from luminary.energy import RaplMeter, default_meters, find_zones, probe
from luminary.energy._rapl import rapl_meters, rapl_status, unwrap
from luminary.errors import BackendUnavailableError

from .conftest import MakeZone, set_counter


def test_unwrap_counts_plain_increase() -> None:
    assert unwrap(1_000, 4_500, 10_000) == 3_500


def test_unwrap_adds_the_range_when_the_counter_went_down() -> None:
    # 9_000 -> 10_000 (max) -> 0 -> 500: 1_000 + 1 + 500
    assert unwrap(9_000, 500, 10_000) == 1_501


def test_unwrap_without_range_counts_only_the_part_after_the_wrap() -> None:
    assert unwrap(9_000, 500, None) == 500


def test_one_package_reads_joules_from_microjoules(make_zone: MakeZone, powercap: Path) -> None:
    pkg = make_zone("intel-rapl:0", "package-0", 1_000_000)
    meter = rapl_meters(powercap)["cpu"]
    first = meter.read()
    set_counter(pkg, 3_500_000)
    last = meter.read()
    assert last.value - first.value == pytest.approx(2.5)
    assert meter.source == "rapl"
    assert not meter.estimated
    assert meter.detail == "intel-rapl:0 package counter"


def test_two_packages_are_summed_into_cpu(make_zone: MakeZone, powercap: Path) -> None:
    p0 = make_zone("intel-rapl:0", "package-0", 10_000_000)
    p1 = make_zone("intel-rapl:1", "package-1", 20_000_000)
    meter = rapl_meters(powercap)["cpu"]
    first = meter.read()
    set_counter(p0, 13_000_000)
    set_counter(p1, 24_000_000)
    assert meter.read().value - first.value == pytest.approx(7.0)
    assert meter.detail == "intel-rapl:0 + intel-rapl:1 package counters"


def test_dram_subzone_is_its_own_device_and_core_uncore_are_ignored(
    make_zone: MakeZone, powercap: Path
) -> None:
    make_zone("intel-rapl:0", "package-0", 0)
    make_zone("intel-rapl:0:0", "core", 0)
    make_zone("intel-rapl:0:1", "uncore", 0)
    dram = make_zone("intel-rapl:0:2", "dram", 5_000_000)
    meters = rapl_meters(powercap)
    assert sorted(meters) == ["cpu", "dram"]
    first = meters["dram"].read()
    set_counter(dram, 6_250_000)
    assert meters["dram"].read().value - first.value == pytest.approx(1.25)
    assert meters["dram"].detail == "intel-rapl:0:2 dram counter"
    assert [s.device for s in rapl_status(powercap)] == ["cpu", "dram"]


def test_subzone_listed_flat_and_nested_is_counted_once(
    make_zone: MakeZone, powercap: Path
) -> None:
    make_zone("intel-rapl:0", "package-0", 0)
    nested = make_zone("intel-rapl:0:2", "dram", 0)
    (powercap / "intel-rapl:0:2").symlink_to(nested)  # the kernel lists sub-zones flat too
    zones = [z.zone for z in find_zones(powercap)]
    assert zones == ["intel-rapl:0", "intel-rapl:0:2"]


def test_a_wrap_between_samples_is_added_back(make_zone: MakeZone, powercap: Path) -> None:
    pkg = make_zone("intel-rapl:0", "package-0", 900_000, max_uj=999_999)
    meter = rapl_meters(powercap)["cpu"]
    first = meter.read()
    set_counter(pkg, 100_000)  # ran 100_000 µJ to the top, then 100_000 after 0
    second = meter.read()
    assert second.value - first.value == pytest.approx(0.2)
    set_counter(pkg, 400_000)
    assert meter.read().value - first.value == pytest.approx(0.5)


def test_missing_max_range_still_measures_and_says_what_a_wrap_costs(
    make_zone: MakeZone, powercap: Path
) -> None:
    pkg = make_zone("intel-rapl:0", "package-0", 900_000, max_uj=None)
    meter = rapl_meters(powercap)["cpu"]
    first = meter.read()
    set_counter(pkg, 100_000)
    assert meter.read().value - first.value == pytest.approx(0.1)
    assert "no max_energy_range_uj for intel-rapl:0" in meter.detail
    assert rapl_status(powercap)[0].readable


def test_missing_energy_uj_is_reported_and_the_estimate_takes_over(
    make_zone: MakeZone, powercap: Path
) -> None:
    make_zone("intel-rapl:0", "package-0", energy_uj=None)
    [status] = rapl_status(powercap)
    assert (status.name, status.device, status.readable) == ("rapl", "cpu", False)
    assert "energy_uj does not exist" in status.reason
    assert status.fix
    assert rapl_meters(powercap) == {}
    meters = default_meters(powercap_root=powercap)
    assert [(m.device, m.source) for m in meters if m.device == "cpu"] == [("cpu", "estimate")]


def test_one_unreadable_package_disables_cpu_counters_rather_than_undercount(
    make_zone: MakeZone, powercap: Path
) -> None:
    make_zone("intel-rapl:0", "package-0", 0)
    make_zone("intel-rapl:1", "package-1", energy_uj=None)
    assert "cpu" not in rapl_meters(powercap)
    assert not rapl_status(powercap)[0].readable


def test_permission_denied_is_reported_with_the_chmod_fix(
    make_zone: MakeZone, powercap: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = make_zone("intel-rapl:0", "package-0", 0)
    locked = pkg / "energy_uj"
    real_read_text = Path.read_text

    def read_text(self: Path, *args: object, **kwargs: object) -> str:
        if self == locked:
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", read_text)
    [status] = [s for s in probe(powercap) if s.name == "rapl"]
    assert not status.readable
    assert status.reason == f"permission denied reading {locked}"
    assert f"sudo chmod a+r {powercap}/intel-rapl:*/energy_uj" in status.fix
    assert "udev" in status.fix
    assert rapl_meters(powercap) == {}


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads files whatever their mode"
)
def test_permission_denied_by_file_mode(make_zone: MakeZone, powercap: Path) -> None:
    pkg = make_zone("intel-rapl:0", "package-0", 0)
    (pkg / "energy_uj").chmod(0)
    [status] = rapl_status(powercap)
    assert not status.readable
    assert status.reason.startswith("permission denied")


def test_energy_uj_that_is_a_folder_is_reported(make_zone: MakeZone, powercap: Path) -> None:
    pkg = make_zone("intel-rapl:0", "package-0", energy_uj=None)
    (pkg / "energy_uj").mkdir()
    [status] = rapl_status(powercap)
    assert not status.readable
    assert status.reason.startswith(f"cannot read {pkg / 'energy_uj'}")


def test_counter_that_vanishes_mid_run_raises_backend_unavailable(
    make_zone: MakeZone, powercap: Path
) -> None:
    pkg = make_zone("intel-rapl:0", "package-0", 0)
    meter = rapl_meters(powercap)["cpu"]
    (pkg / "energy_uj").unlink()
    with pytest.raises(BackendUnavailableError, match="cannot read the RAPL counter"):
        meter.read()


def test_psys_is_used_only_without_a_package(make_zone: MakeZone, powercap: Path) -> None:
    make_zone("intel-rapl:0", "psys", 0)
    assert rapl_meters(powercap)["cpu"].detail == "intel-rapl:0 psys counter"
    make_zone("intel-rapl:1", "package-0", 0)
    assert rapl_meters(powercap)["cpu"].detail == "intel-rapl:1 package counter"


def test_other_control_type_names_and_mmio_duplicates(make_zone: MakeZone, powercap: Path) -> None:
    make_zone("amd-rapl:0", "package-0", 0)
    make_zone("intel-rapl-mmio:0", "package-0", 0)  # the same package through MMIO
    meters = rapl_meters(powercap)
    assert meters["cpu"].detail == "amd-rapl:0 package counter"


def test_no_powercap_folder_is_one_unreadable_entry(tmp_path: Path) -> None:
    [status] = rapl_status(tmp_path / "absent")
    assert (status.name, status.device, status.readable) == ("rapl", "", False)
    assert "no " in status.reason
    assert "absent" in status.reason
    assert "modprobe" in status.fix


def test_powercap_folder_without_rapl_zones(powercap: Path) -> None:
    (powercap / "dtpm").mkdir()
    [status] = rapl_status(powercap)
    assert not status.readable
    assert "no RAPL package or dram zone" in status.reason


def test_rapl_meter_needs_a_zone() -> None:
    with pytest.raises(ValueError, match="needs at least one zone"):
        RaplMeter("cpu", [])
