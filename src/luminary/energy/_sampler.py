"""The sampler: reads meters from a background thread and sums them into an EnergyReport."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType

from luminary.energy._estimate import ProcessSet
from luminary.energy._meter import Meter, Track
from luminary.energy.models import DeviceEnergy, EnergyReport
from luminary.errors import BackendUnavailableError, InvalidArgumentError, InvalidStateError

__all__ = ["DEFAULT_INTERVAL_S", "POWER_INTERVAL_S", "Sampler"]

#: Seconds between reads of counter meters. RAPL wraps after minutes at the earliest, so
#: 0.5 s sees every wrap, and one read costs microseconds (well under 1 % of a core; see
#: benchmarks/energy_overhead.py).
DEFAULT_INTERVAL_S = 0.5
#: Seconds between reads of power meters (NVML power sampling), which integrate what they see.
POWER_INTERVAL_S = 0.1

_DEVICE_ORDER = {"cpu": 0, "dram": 1}


def _order(device: str) -> tuple[int, int, str]:
    if device in _DEVICE_ORDER:
        return (_DEVICE_ORDER[device], 0, device)
    if device.startswith("gpu") and device[3:].isdigit():
        return (2, int(device[3:]), device)
    return (3, 0, device)


class Sampler:
    """Reads ``meters`` every ``interval_s`` on a daemon thread between :meth:`start` and
    :meth:`stop`; :meth:`stop` returns the :class:`EnergyReport`.

    With ``meters=None`` the sampler makes :func:`~luminary.energy.default_meters` for this
    machine and closes them when it stops; meters passed in stay the caller's. ``pids`` are the
    processes (with their descendants) whose CPU time is counted, and estimated when no CPU
    counter is readable; the default is this process.

    The first and last readings are taken on the calling thread, so the report covers exactly
    the time between ``start()`` and ``stop()``. A meter that fails mid-way keeps what it had
    measured, and its ``detail`` says when it stopped. One-shot: a second ``stop()`` returns
    the same report. ``start``/``stop`` are meant for one thread; usable as a context manager
    (the report is then ``sampler.report``).
    """

    def __init__(
        self,
        meters: Sequence[Meter] | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        pids: Sequence[int] | None = None,
        *,
        tdp_w: float | None = None,
    ) -> None:
        if not interval_s > 0:
            msg = f"interval_s={interval_s!r} is not valid; give a positive number of seconds"
            raise InvalidArgumentError(msg)
        self.interval_s = float(interval_s)
        self.processes = ProcessSet(pids)
        self._owns_meters = meters is None
        if meters is None:
            from luminary.energy._discover import default_meters

            meters = default_meters(pids=self.processes.pids, tdp_w=tdp_w)
        devices = [m.device for m in meters]
        duplicates = sorted({d for d in devices if devices.count(d) > 1})
        if duplicates:
            msg = f"two meters for device {duplicates[0]!r}; give one meter per device"
            raise InvalidArgumentError(msg)
        self.meters = tuple(sorted(meters, key=lambda m: _order(m.device)))
        self._tracks: list[Track] = []
        self._failed: dict[int, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._lock = threading.Lock()
        self._thread_error: BaseException | None = None
        self._report: EnergyReport | None = None
        self._cpu_start = 0.0
        self._started_at = 0.0
        self.overhead_cpu_s = 0.0
        """CPU seconds the sampling thread used (``time.thread_time``), known after stop()."""

    def period_s(self, meter: Meter) -> float | None:
        """How often ``meter`` is read during the interval (None: only at start and stop)."""
        if not meter.periodic:
            return None
        if meter.kind == "power":
            return min(self.interval_s, POWER_INTERVAL_S)
        return self.interval_s

    def start(self) -> Sampler:
        if self._started or self._report is not None:
            msg = "this Sampler was already started; make a new one for each interval"
            raise InvalidStateError(msg)
        self._cpu_start = self.processes.cpu_seconds()
        self._started_at = time.monotonic()
        try:
            self._tracks = [Track(m.kind, m.read()) for m in self.meters]
        except BaseException:
            self._close_owned()
            raise
        self._started = True
        if any(self.period_s(m) is not None for m in self.meters):
            # Only meters that must be read in between need a thread (a run of a machine
            # with only the CPU-time estimate starts none).
            self._thread = threading.Thread(
                target=self._run, name="luminary-energy-sampler", daemon=True
            )
            self._thread.start()
        return self

    def _read_into(self, i: int) -> None:
        with self._lock:  # the sampling thread and snapshot() share the meters
            try:
                self._tracks[i].add(self.meters[i].read())
            except BackendUnavailableError as exc:
                self._failed[i] = (time.monotonic() - self._started_at, str(exc))

    def snapshot(self) -> EnergyReport:
        """What was used from :meth:`start` until now, without stopping (thread-safe).

        For a long-lived process such as the inference server, which exports its energy as
        a counter.
        """
        if not self._started:
            msg = "this Sampler was never started; call start() first"
            raise InvalidStateError(msg)
        if self._report is not None:
            return self._report
        for i in range(len(self.meters)):
            if i not in self._failed:
                self._read_into(i)
        with self._lock:
            now = time.monotonic()
            cpu_seconds = max(0.0, self.processes.cpu_seconds() - self._cpu_start)
            return self._build(now - self._started_at, cpu_seconds)

    def _run(self) -> None:
        cpu0 = time.thread_time()
        try:
            due: dict[int, float] = {}
            for i, meter in enumerate(self.meters):
                period = self.period_s(meter)
                if period is not None:
                    due[i] = self._tracks[i].first.time_s + period
            while True:
                live = [t for i, t in due.items() if i not in self._failed]
                timeout = max(0.0, min(live) - time.monotonic()) if live else None
                if self._stop.wait(timeout):
                    break
                now = time.monotonic()
                for i, when in due.items():
                    if when <= now and i not in self._failed:
                        self._read_into(i)
                        period = self.period_s(self.meters[i]) or self.interval_s
                        due[i] = max(when + period, now)
        except Exception as exc:  # noqa: BLE001 - a bug in a meter: re-raised by stop()
            self._thread_error = exc
        finally:
            self.overhead_cpu_s = time.thread_time() - cpu0

    def stop(self) -> EnergyReport:
        if self._report is not None:
            return self._report
        if not self._started:
            msg = "this Sampler was never started; call start() first"
            raise InvalidStateError(msg)
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        try:
            for i in range(len(self.meters)):
                if i not in self._failed:
                    self._read_into(i)
            ended_at = time.monotonic()
            cpu_seconds = max(0.0, self.processes.cpu_seconds() - self._cpu_start)
            self._report = self._build(ended_at - self._started_at, cpu_seconds)
        finally:
            self._close_owned()
        if self._thread_error is not None:
            raise self._thread_error
        return self._report

    def _close_owned(self) -> None:
        if self._owns_meters:
            for meter in self.meters:
                meter.close()

    @property
    def report(self) -> EnergyReport:
        if self._report is None:
            msg = "no report yet: the Sampler has not stopped; call stop() first"
            raise InvalidStateError(msg)
        return self._report

    def _build(self, duration_s: float, cpu_seconds: float) -> EnergyReport:
        devices = []
        for i, (meter, track) in enumerate(zip(self.meters, self._tracks, strict=True)):
            detail = meter.detail
            period = self.period_s(meter)
            if meter.kind == "power" and period is not None:
                detail += f", sampled every {period:g} s ({track.samples} readings)"
            if i in self._failed:
                after, why = self._failed[i]
                detail += f"; stopped after {after:.1f} s ({why}), energy up to then"
            utilization = track.utilization
            if meter.device == "cpu" and utilization is None and duration_s > 0:
                allowed = self.processes.allowed_cpus()
                utilization = 100.0 * cpu_seconds / (duration_s * allowed)
            joules = track.joules
            devices.append(
                DeviceEnergy(
                    device=meter.device,
                    joules=joules,
                    average_watts=joules / duration_s if duration_s > 0 else 0.0,
                    source=meter.source,
                    estimated=meter.estimated,
                    detail=detail,
                    utilization=utilization,
                )
            )
        gpus = sum(1 for m in self.meters if m.device.startswith("gpu"))
        return EnergyReport(duration_s, tuple(devices), cpu_seconds, gpus)

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
