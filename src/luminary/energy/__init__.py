"""Energy: measured where a counter exists, estimated only where none does, always labelled.

A leaf: it imports no domain. What runs cost is :mod:`luminary.costs`; the machine inventory is
:mod:`luminary.compute`.

Layers:

- :mod:`~luminary.energy.models` — ``DeviceEnergy``, ``EnergyReport``, ``SourceStatus``
  (frozen values; ``to_metrics``/``to_tags`` for runs).
- ``_meter`` — the ``Meter`` interface (one primitive, ``read``) and ``Track``, the arithmetic
  that turns readings into joules.
- Meters: ``_rapl`` (``/sys/class/powercap``, CPU packages and DRAM, counter wraps),
  ``_nvml`` (GPU energy counter, else sampled power; ``pynvml`` loaded lazily, the ``gpu``
  extra), ``_estimate`` (CPU time of the measured processes x TDP per logical CPU, from a
  table, the user or a default, labelled ``estimated`` with its constants).
- ``_discover`` — :func:`probe` (what is readable here, why not, the fix) and
  :func:`default_meters` (RAPL for the CPU if readable, else the estimate, never both).
- ``_sampler`` — :class:`Sampler`, the background thread that reads the meters.
- ``_measure`` — :func:`measure`, a context manager and decorator.

::

    import luminary as lm

    with lm.energy.measure() as m:
        train()
    m.report.total_joules, m.report.any_estimated, m.report.to_tags()

    @lm.energy.measure()
    def infer(batch): ...
    infer(batch); infer.last_energy      # the report of the latest call
"""

from __future__ import annotations

from luminary.energy._discover import default_meters, probe
from luminary.energy._estimate import (
    CPU_TABLE,
    DEFAULT_WATTS_PER_CPU,
    TDP_ENV,
    CpuSpec,
    EstimateMeter,
    ProcessSet,
    choose_tdp,
)
from luminary.energy._measure import MeasuredFunction, Measurement, measure
from luminary.energy._meter import Meter, Reading
from luminary.energy._nvml import NvmlMeter, compare_counter_and_sampled_power
from luminary.energy._rapl import RaplMeter, find_zones
from luminary.energy._sampler import DEFAULT_INTERVAL_S, POWER_INTERVAL_S, Sampler
from luminary.energy.models import DeviceEnergy, EnergyReport, SourceStatus

__all__ = [
    "CPU_TABLE",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_WATTS_PER_CPU",
    "POWER_INTERVAL_S",
    "TDP_ENV",
    "CpuSpec",
    "DeviceEnergy",
    "EnergyReport",
    "EstimateMeter",
    "MeasuredFunction",
    "Measurement",
    "Meter",
    "NvmlMeter",
    "ProcessSet",
    "RaplMeter",
    "Reading",
    "Sampler",
    "SourceStatus",
    "choose_tdp",
    "compare_counter_and_sampled_power",
    "default_meters",
    "find_zones",
    "measure",
    "probe",
]
