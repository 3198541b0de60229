"""The energy sampler's own CPU cost, as a percentage of one core (target: < 1 %).

Each scenario runs a :class:`luminary.energy.Sampler` for ``--seconds`` (default 10) while the
main thread sleeps, then reports the CPU time of the sampling thread (``time.thread_time``
inside it, ``Sampler.overhead_cpu_s``) and, as a cross-check, the whole process's CPU time
over the same wall time (the main thread only sleeps, so the two should agree):

* ``estimate`` — the meters this machine gets by default (here: no RAPL, no GPU, so the CPU
  estimate, which needs no reads between start and stop);
* ``estimate, read every interval`` — the same estimate forced to read at each tick (a walk
  of the process tree), the cost a timeline of estimated power would have;
* ``rapl (fake tree)`` — RAPL meters for two packages and a DRAM zone on a powercap tree built
  in a temporary folder, read every interval like the real ones;
* ``power meter, no I/O`` — the loop alone at the power-sampling period (what NVML power
  sampling adds on top of its library calls).

    .venv/bin/python benchmarks/energy_overhead.py [--seconds 10] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from luminary.energy import (
    DEFAULT_INTERVAL_S,
    POWER_INTERVAL_S,
    EstimateMeter,
    Meter,
    Reading,
    Sampler,
    default_meters,
)
from luminary.energy._rapl import rapl_meters

TARGET_PERCENT = 1.0


class PeriodicEstimate(EstimateMeter):
    periodic = True


class NullPower(Meter):
    """A power meter that reads nothing: the cost of the sampling loop itself."""

    device = "gpu0"
    name = "null:gpu0"
    source = "nvml-power"
    kind = "power"

    @property
    def detail(self) -> str:
        return "no I/O"

    def read(self) -> Reading:
        return Reading(time.monotonic(), 0.0)


def fake_powercap(root: Path) -> Path:
    for zone, name in (
        ("intel-rapl:0", "package-0"),
        ("intel-rapl:1", "package-1"),
        ("intel-rapl:0/intel-rapl:0:2", "dram"),
    ):
        folder = root / zone
        folder.mkdir(parents=True)
        (folder / "name").write_text(name + "\n")
        (folder / "energy_uj").write_text("123456789\n")
        (folder / "max_energy_range_uj").write_text("262143328850\n")
    return root


def run(label: str, make: Callable[[], list[Meter]], seconds: float) -> dict[str, object]:
    meters = make()
    try:
        sampler = Sampler(meters, interval_s=DEFAULT_INTERVAL_S)
        periods = sorted({p for m in sampler.meters if (p := sampler.period_s(m)) is not None})
        cpu0, wall0 = time.process_time(), time.monotonic()
        sampler.start()
        time.sleep(seconds)
        report = sampler.stop()
        wall = time.monotonic() - wall0
        process_cpu = time.process_time() - cpu0
    finally:
        for meter in meters:
            meter.close()
    return {
        "scenario": label,
        "meters": ", ".join(f"{d.device}:{d.source}" for d in report.devices),
        "period_s": ", ".join(f"{p:g}" for p in periods) or "start/stop only",
        "wall_s": wall,
        "thread_cpu_s": sampler.overhead_cpu_s,
        "thread_percent": 100 * sampler.overhead_cpu_s / wall,
        "process_percent": 100 * process_cpu / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    print(
        f"# {platform.node()} · {platform.processor() or platform.machine()} · "
        f"{os.cpu_count()} logical CPUs · load {os.getloadavg()[0]:.2f} · "
        f"default interval {DEFAULT_INTERVAL_S:g} s, power {POWER_INTERVAL_S:g} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tree = fake_powercap(Path(tmp))
        scenarios: list[tuple[str, Callable[[], list[Meter]]]] = [
            ("estimate (this machine's default meters)", default_meters),
            ("estimate, read every interval", lambda: [PeriodicEstimate()]),
            ("rapl (fake tree: 2 packages + dram)", lambda: list(rapl_meters(tree).values())),
            ("power meter, no I/O", lambda: [NullPower()]),
        ]
        results = [run(label, make, args.seconds) for label, make in scenarios]

    header = f"{'scenario':44} {'meters':28} {'period s':>16} {'thread %':>9} {'process %':>10}"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['scenario']:44} {r['meters']:28} {r['period_s']:>16} "
            f"{r['thread_percent']:9.4f} {r['process_percent']:10.4f}"
        )
    worst = max(results, key=lambda r: float(str(r["thread_percent"])))
    ok = float(str(worst["thread_percent"])) < TARGET_PERCENT
    print(
        f"\nverdict: worst {float(str(worst['thread_percent'])):.4f} % of one core "
        f"({worst['scenario']}) — {'meets' if ok else 'MISSES'} the < {TARGET_PERCENT:g} % target"
    )
    if args.json:
        args.json.write_text(json.dumps({"target_percent": TARGET_PERCENT, "results": results}))


if __name__ == "__main__":
    main()
