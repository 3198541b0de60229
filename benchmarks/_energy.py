"""Every benchmark reports what it used: energy per device, with how each figure was had."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def run_measured(main: Callable[[], T]) -> T:
    """Run ``main`` under ``luminary.energy.measure`` (this process and its children), then
    print the energy line. Internal worker invocations (``--_…`` flags) run unmeasured."""
    if any(arg.startswith("--_") for arg in sys.argv[1:]):
        return main()
    from luminary.energy import measure

    with measure() as meter:
        result = main()
    report = meter.report
    devices = "; ".join(
        f"{d.device} {d.joules:,.1f} J ({'estimated' if d.estimated else 'measured'}, "
        f"{d.source}: {d.detail})"
        for d in report.devices
    )
    print(
        f"# energy of this benchmark (this process and its children): "
        f"{report.total_joules:,.1f} J over {report.duration_s:,.0f} s — {devices}",
        flush=True,
    )
    return result
