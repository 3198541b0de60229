"""The CPU estimate used when no CPU counter is readable, and the CPU time it rests on.

    joules = TDP / logical CPUs per package x CPU-seconds of the measured processes

that is, the package's TDP shared evenly among its hardware threads, charged for the time the
measured processes kept them busy. Idle power and memory are not counted. Published
comparisons put TDP-style estimates up to 40 % off an external meter: the figure is labelled
``estimated`` with its constants, never mixed with measured ones.

The TDP comes from, in order: the ``tdp_w`` argument, ``LUMINARY_CPU_TDP_W``, the table
below (matched on ``/proc/cpuinfo``'s ``model name``), else :data:`DEFAULT_WATTS_PER_CPU`.
A given TDP is that of one package, divided by the table's thread count when the model is
listed, else by the logical CPUs per package this machine shows.

Table values are the default TDP and thread count from the vendors' public product pages
(amd.com/en/products/processors/server/epyc, ark.intel.com). Cloud-only models (EPYC 7B13,
7R13, Xeon 8259CL, 8375C…) have no public sheet and are not listed: give ``tdp_w``.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from luminary.energy._meter import Meter, Reading
from luminary.errors import InvalidArgumentError, NotFoundError

__all__ = [
    "CPU_TABLE",
    "DEFAULT_WATTS_PER_CPU",
    "TDP_ENV",
    "CpuSpec",
    "EstimateMeter",
    "ProcessSet",
    "TdpChoice",
    "choose_tdp",
    "cpu_model",
    "lookup_cpu",
]

TDP_ENV = "LUMINARY_CPU_TDP_W"


@dataclass(frozen=True)
class CpuSpec:
    """One CPU model: a ``model name`` substring, TDP per package and threads per package."""

    key: str
    tdp_w: float
    threads: int

    @property
    def watts_per_cpu(self) -> float:
        return self.tdp_w / self.threads


CPU_TABLE: tuple[CpuSpec, ...] = (
    # AMD EPYC, Rome (7002), Milan (7003), Genoa (9004), Bergamo (97x4)
    CpuSpec("EPYC 7302", 155, 32),
    CpuSpec("EPYC 7452", 155, 64),
    CpuSpec("EPYC 7702", 200, 128),
    CpuSpec("EPYC 7742", 225, 128),
    CpuSpec("EPYC 7543", 225, 64),
    CpuSpec("EPYC 7643", 225, 96),
    CpuSpec("EPYC 7713", 225, 128),
    CpuSpec("EPYC 7763", 280, 128),
    CpuSpec("EPYC 9534", 280, 128),
    CpuSpec("EPYC 9554", 360, 128),
    CpuSpec("EPYC 9654", 360, 192),
    CpuSpec("EPYC 9754", 360, 256),
    # Intel Xeon, Broadwell (E5 v4), Skylake/Cascade Lake, Ice Lake, Sapphire Rapids
    CpuSpec("E5-2630 v4", 85, 20),
    CpuSpec("E5-2680 v4", 120, 28),
    CpuSpec("Gold 6130", 125, 32),
    CpuSpec("Gold 6148", 150, 40),
    CpuSpec("Gold 6248R", 205, 48),
    CpuSpec("Gold 6248", 150, 40),
    CpuSpec("Gold 6338", 205, 64),
    CpuSpec("Platinum 8358", 250, 64),
    CpuSpec("Platinum 8380", 270, 80),
    CpuSpec("Platinum 8480+", 350, 112),
)

#: Watts per logical CPU when the model is unknown and no TDP is given: the median of the
#: table's TDP per logical CPU (3.2 W), rounded to 0.1 W.
DEFAULT_WATTS_PER_CPU: float = round(statistics.median(s.watts_per_cpu for s in CPU_TABLE), 1)


@functools.cache  # the CPU does not change while the process runs
def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """This machine's CPU ``model name`` (``""`` when unknown)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return ""
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else ""


@functools.cache
def _packages(cpuinfo: Path = Path("/proc/cpuinfo")) -> int:
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return 1
    return max(1, len(set(re.findall(r"^physical id\s*:\s*(\d+)", text, re.MULTILINE))))


def lookup_cpu(model: str) -> CpuSpec | None:
    """The table entry whose key appears in ``model`` as a whole token (longest key first)."""
    for spec in sorted(CPU_TABLE, key=lambda s: -len(s.key)):
        if re.search(rf"(?<![\w+]){re.escape(spec.key)}(?![\w+])", model):
            return spec
    return None


@dataclass(frozen=True)
class TdpChoice:
    """The constants of an estimate and where they came from."""

    watts_per_cpu: float
    tdp_w: float | None  # None for the default
    threads: int | None  # logical CPUs per package the TDP is shared among
    source: str  # e.g. "table: AMD EPYC 7763", "given: tdp_w=", "env LUMINARY_CPU_TDP_W"


def _positive(value: float, what: str) -> float:
    if not value > 0:
        msg = f"{what}={value!r} is not valid; give the CPU package's TDP in watts (> 0)"
        raise InvalidArgumentError(msg)
    return float(value)


def choose_tdp(
    tdp_w: float | None = None,
    *,
    model: str | None = None,
    environ: dict[str, str] | None = None,
    cpuinfo: Path = Path("/proc/cpuinfo"),
) -> TdpChoice:
    """The TDP to estimate with: argument, then environment, then table, then default."""
    env = os.environ if environ is None else environ
    model = cpu_model(cpuinfo) if model is None else model
    spec = lookup_cpu(model)
    given: tuple[float, str] | None = None
    if tdp_w is not None:
        given = (_positive(tdp_w, "tdp_w"), "given: tdp_w=")
    elif env.get(TDP_ENV):
        text = env[TDP_ENV]
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if not value > 0:
            msg = f"{TDP_ENV}={text!r} is not valid; give the CPU package's TDP in watts (> 0)"
            raise InvalidArgumentError(msg)
        given = (value, f"env {TDP_ENV}")
    if given is not None:
        if spec is not None:
            threads, where = spec.threads, f"{spec.threads} threads from the table"
        else:
            threads = max(1, (psutil.cpu_count(logical=True) or 1) // _packages(cpuinfo))
            where = "logical CPUs per package on this machine"
        return TdpChoice(given[0] / threads, given[0], threads, f"{given[1]}; {where}")
    if spec is not None:
        name = model or spec.key
        return TdpChoice(spec.watts_per_cpu, spec.tdp_w, spec.threads, f"table: {name}")
    shown = repr(model) if model else "unknown"
    return TdpChoice(
        DEFAULT_WATTS_PER_CPU,
        None,
        None,
        f"default: CPU model {shown} is not in the table; median of the table's TDP per "
        f"logical CPU; pass tdp_w= or set {TDP_ENV}",
    )


def _descendants(pid: int) -> list[int] | None:
    """Descendants of ``pid`` from the kernel's per-thread children lists (Linux), which is
    much cheaper than psutil's scan of every process; None where the kernel has no lists."""
    found: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except OSError:
            if current == pid:
                return None
            continue  # it exited meanwhile
        for tid in threads:
            try:
                with open(f"/proc/{current}/task/{tid}/children", "rb") as fh:
                    kids = [int(k) for k in fh.read().split()]
            except FileNotFoundError:
                if current == pid and not found:
                    return None  # the kernel does not keep the lists
                continue
            except OSError:
                continue
            found.extend(kids)
            todo.extend(kids)
    return found


class ProcessSet:
    """Cumulative CPU time of some processes and their descendants.

    The default is this process. For each live process in the set the time counted is its
    own user + system time plus that of its reaped children (which the kernel adds to the
    parent when it waits for them), so a child that exits during the interval stays counted.
    A descendant orphaned away from the set drops out; the total never goes down. Not thread
    safe.
    """

    def __init__(self, pids: Sequence[int] | None = None) -> None:
        roots = list(dict.fromkeys(pids)) if pids else [os.getpid()]
        self._roots: list[psutil.Process] = []
        for pid in roots:
            try:
                self._roots.append(psutil.Process(pid))
            except psutil.NoSuchProcess as exc:
                msg = f"no process with pid {pid}; give the pids of running processes"
                raise NotFoundError(msg) from exc
        self.pids = tuple(p.pid for p in self._roots)
        self._last = 0.0

    def _members(self) -> list[psutil.Process]:
        seen: dict[int, psutil.Process] = {}
        for root in self._roots:
            try:
                kids = _descendants(root.pid)
                if kids is None:  # no /proc/PID/task/TID/children: psutil scans all of /proc
                    family = [root, *root.children(recursive=True)]
                else:
                    family = [root, *(psutil.Process(pid) for pid in kids)]
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            for proc in family:
                seen.setdefault(proc.pid, proc)
        return list(seen.values())

    def cpu_seconds(self) -> float:
        total = 0.0
        for proc in self._members():
            try:
                t = proc.cpu_times()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            total += t.user + t.system + t.children_user + t.children_system
        self._last = max(self._last, total)
        return self._last

    def allowed_cpus(self) -> int:
        """How many logical CPUs the processes may run on (union of their affinities)."""
        allowed: set[int] = set()
        for root in self._roots:
            try:
                allowed.update(root.cpu_affinity() or [])
            except (psutil.NoSuchProcess, psutil.AccessDenied, AttributeError):
                continue
        return len(allowed) or psutil.cpu_count(logical=True) or 1


class EstimateMeter(Meter):
    """CPU energy estimated from CPU time x TDP per logical CPU; always labelled estimated.

    A counter meter that needs no sampling between start and end (``periodic = False``):
    ``read().value`` is the estimated joules since the meter was made.
    """

    source = "estimate"
    periodic = False

    def __init__(
        self,
        processes: ProcessSet | None = None,
        tdp: TdpChoice | None = None,
        *,
        tdp_w: float | None = None,
    ) -> None:
        self.device = "cpu"
        self.name = "estimate:cpu"
        self.processes = processes or ProcessSet()
        self.tdp = tdp or choose_tdp(tdp_w)
        self._start = self.processes.cpu_seconds()

    @property
    def detail(self) -> str:
        allowed = self.processes.allowed_cpus()
        if self.tdp.tdp_w is None:
            return (
                f"{self.tdp.watts_per_cpu:g} W per logical CPU x {allowed} logical CPUs x "
                f"CPU utilisation of the measured processes ({self.tdp.source})"
            )
        return (
            f"TDP {self.tdp.tdp_w:g} W x {allowed}/{self.tdp.threads} logical CPUs x CPU "
            f"utilisation of the measured processes ({self.tdp.source})"
        )

    def read(self) -> Reading:
        used = self.processes.cpu_seconds() - self._start
        return Reading(time.monotonic(), used * self.tdp.watts_per_cpu)
