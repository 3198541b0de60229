"""Compute's values: what a job asks for, where it may run, and what became of it.

All frozen dataclasses with no I/O. A :class:`JobSpec` is the same whether it came from the
SDK, CLI flags or a YAML file (:meth:`JobSpec.from_dict` checks every field and names the
bad one). Resources are *per node*: a gang of ``nodes=2`` with ``Resources(gpus=4)`` holds
4 GPUs on each of 2 nodes, 8 in all, and starts whole or not at all.

GPU counts below 1 are fractions of one device (``0.5`` shares a GPU with another job);
counts of 1 or more are whole devices (``2``, not ``1.5``). Memory is in MiB.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any, NoReturn

from luminary.errors import InvalidArgumentError, nearest
from luminary.names import check_name

__all__ = [
    "EXECUTORS",
    "Agent",
    "Job",
    "JobSpec",
    "JobState",
    "LogChunk",
    "NodePlacement",
    "Placement",
    "Pool",
    "Quota",
    "Resources",
    "Signals",
    "TaskReport",
    "parse_duration",
    "parse_memory",
]

#: The executor kinds a pool may name.
EXECUTORS = ("local", "ray", "slurm")

#: The largest count of anything a spec may ask for (GPUs, CPUs, nodes): well past any pool,
#: small enough that sums of them stay exact in floating point.
MAX_COUNT = 100_000
#: The largest memory a spec may ask for, in MiB (1 PiB).
MAX_MEMORY_MB = 1 << 30
#: The longest time limit a spec may ask for: one year.
MAX_TIME_LIMIT_S = 365 * 24 * 3600.0
#: Fractions are kept to this many decimal places, so that 3 x 1/3 packs into one device.
FRACTION_DIGITS = 4

_MEMORY_UNITS = {
    "": 1,
    "m": 1,
    "mb": 1,
    "mi": 1,
    "mib": 1,
    "g": 1024,
    "gb": 1024,
    "gi": 1024,
    "gib": 1024,
    "t": 1 << 20,
    "tb": 1 << 20,
    "ti": 1 << 20,
    "tib": 1 << 20,
}
_DURATION_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_QUANTITY = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*$")


def _bad(field_name: str, value: object, valid: str) -> NoReturn:
    msg = f"{field_name}={value!r} is not valid; {valid}"
    raise InvalidArgumentError(msg)


def parse_memory(value: object, field_name: str = "memory") -> int:
    """MiB from ``4096``, ``"16G"``, ``"512Mi"``, ``"1.5GiB"``; an integer number of MiB."""
    if isinstance(value, bool):
        _bad(field_name, value, "give MiB as a number, or a size such as '16G'")
    if isinstance(value, int | float):
        number, unit = float(value), ""
    elif isinstance(value, str) and (m := _QUANTITY.match(value)):
        number, unit = float(m.group(1)), m.group(2).lower()
    else:
        _bad(field_name, value, "give MiB as a number, or a size such as '16G' or '512M'")
    if unit not in _MEMORY_UNITS:
        _bad(field_name, value, "units are M, G or T (MiB, GiB, TiB)")
    mb = number * _MEMORY_UNITS[unit]
    if not math.isfinite(mb) or mb < 0 or mb > MAX_MEMORY_MB:
        _bad(field_name, value, f"give 0 to {MAX_MEMORY_MB} MiB (1 PiB)")
    return math.ceil(mb)


def parse_duration(value: object, field_name: str = "time_limit") -> float:
    """Seconds from ``90``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1d"`` or ``"1:30:00"``."""
    if isinstance(value, bool):
        _bad(field_name, value, "give seconds, or a duration such as '2h' or '30m'")
    seconds: float
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*\d+(:\d{1,2}){1,2}\s*", value):
        seconds = 0.0
        for part in value.strip().split(":"):
            seconds = seconds * 60 + int(part)
    elif isinstance(value, str) and (m := _QUANTITY.match(value)):
        unit = m.group(2).lower()
        if unit not in _DURATION_UNITS:
            _bad(field_name, value, "units are s, m, h or d")
        seconds = float(m.group(1)) * _DURATION_UNITS[unit]
    else:
        _bad(field_name, value, "give seconds, or a duration such as '2h', '30m', '1:30:00'")
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIME_LIMIT_S:
        _bad(field_name, value, "give more than 0 seconds and at most a year")
    return seconds


def _count(field_name: str, value: object, *, whole: bool = False, minimum: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        _bad(field_name, value, "give a number")
    try:
        number = float(value)
    except ValueError:
        _bad(field_name, value, "give a number")
    if not math.isfinite(number) or number < minimum or number > MAX_COUNT:
        _bad(field_name, value, f"give a number from {minimum:g} to {MAX_COUNT}")
    if whole and number != int(number):
        _bad(field_name, value, "give a whole number")
    return number


@dataclass(frozen=True)
class Resources:
    """What one node of a job holds while it runs.

    ``gpus``: a fraction of one device (``0 < gpus < 1``) or a whole number of devices.
    ``gpu_memory_mb``: device memory per GPU; a job may ask for memory instead of a fraction,
    and then shares a device with others whose memory fits beside it.
    """

    gpus: float = 0.0
    gpu_memory_mb: int = 0
    cpus: float = 1.0
    memory_mb: int = 0

    def __post_init__(self) -> None:
        gpus = _count("gpus", self.gpus)
        if gpus >= 1 and gpus != int(gpus):
            _bad("gpus", self.gpus, "give a fraction below 1 (e.g. 0.5) or whole GPUs (1, 2, 4)")
        gpus = round(gpus, FRACTION_DIGITS)
        if self.gpus > 0 and gpus == 0:
            _bad("gpus", self.gpus, f"the smallest fraction is {10.0**-FRACTION_DIGITS:g}")
        object.__setattr__(self, "gpus", gpus)
        object.__setattr__(self, "cpus", _count("cpus", self.cpus))
        object.__setattr__(self, "memory_mb", parse_memory(self.memory_mb, "memory"))
        object.__setattr__(self, "gpu_memory_mb", parse_memory(self.gpu_memory_mb, "gpu_memory"))

    @property
    def whole_gpus(self) -> int:
        """Devices held whole (0 for a fraction)."""
        return int(self.gpus) if self.gpus >= 1 else 0

    @property
    def wants_gpu(self) -> bool:
        return self.gpus > 0 or self.gpu_memory_mb > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpus": self.gpus,
            "gpu_memory_mb": self.gpu_memory_mb,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
        }

    def describe(self) -> str:
        parts = []
        if self.gpus:
            parts.append(f"{self.gpus:g} GPU")
        if self.gpu_memory_mb:
            parts.append(f"{self.gpu_memory_mb} MiB GPU memory")
        parts.append(f"{self.cpus:g} CPU")
        if self.memory_mb:
            parts.append(f"{self.memory_mb} MiB memory")
        return ", ".join(parts)


class JobState(enum.StrEnum):
    """A job's life: ``queued`` → ``starting`` (claimed by an executor) → ``running`` → one of
    ``succeeded``, ``failed``, ``cancelled``. A preempted or retried job goes back to
    ``queued`` with its attempt counter raised."""

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def done(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)

    @property
    def active(self) -> bool:
        """Holding resources: claimed or running."""
        return self in (JobState.STARTING, JobState.RUNNING)


def _str_tuple(field_name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        _bad(field_name, value, "give a list of strings, e.g. ['python', 'train.py']")
    if not isinstance(value, Sequence) or not all(isinstance(v, str) for v in value):
        _bad(field_name, value, "give a list of strings")
    return tuple(value)


def _str_map(field_name: str, value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        _bad(field_name, value, "give a mapping of names to strings")
    out = {}
    for k, v in value.items():
        if not isinstance(k, str) or not k or not isinstance(v, str | int | float | bool):
            _bad(f"{field_name}[{k!r}]", v, "give string names and string values")
        out[k] = str(v)
    return out


@dataclass(frozen=True)
class JobSpec:
    """A unit of work: a command (``("python", "train.py")``) or a Python call, and what it
    needs. ``function`` is the blob digest of a pickled call (made by the SDK's
    ``lm.jobs.submit(fn, …)``); exactly one of ``command`` and ``function`` is set.

    ``nodes > 1`` makes a gang: every node gets ``resources`` and the job starts on all of them
    at once or not at all, with ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK``, ``NODE_RANK``,
    ``WORLD_SIZE`` and ``LOCAL_RANK`` set for torchrun and DDP. ``priority`` orders jobs within
    a project (higher first). ``retries`` counts re-runs after a failure; a preemption is not a
    failure. A ``preemptible`` job may be stopped to give borrowed quota back: it gets SIGTERM,
    runs its checkpoint hook, and is killed after ``grace_s``. ``inputs`` are dataset versions
    (``name@version``) recorded on the job's run for lineage. ``pool`` pins a pool; ``None``
    lets the scheduler pick any that fits. ``parent_run`` makes the job's run a child of that
    run (a scan's or a study's).
    """

    project: str
    command: tuple[str, ...] = ()
    function: str | None = None
    name: str | None = None
    resources: Resources = field(default_factory=Resources)
    nodes: int = 1
    priority: int = 0
    time_limit_s: float | None = None
    retries: int = 0
    preemptible: bool = False
    grace_s: float = 30.0
    inputs: tuple[str, ...] = ()
    pool: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    workdir: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)
    parent_run: str | None = None

    def __post_init__(self) -> None:
        check_name("project", self.project)
        command = _str_tuple("command", self.command)
        object.__setattr__(self, "command", command)
        if bool(command) == (self.function is not None):
            msg = "a job runs either a command or a Python function: give exactly one"
            raise InvalidArgumentError(msg)
        if self.function is not None and not re.fullmatch(r"[0-9a-f]{64}", self.function):
            _bad("function", self.function, "give the digest of a stored call")
        if self.name is not None and (
            not isinstance(self.name, str) or not 0 < len(self.name) <= 256
        ):
            _bad("name", self.name, "give 1 to 256 characters")
        if not isinstance(self.resources, Resources):
            _bad("resources", self.resources, "give a Resources value")
        object.__setattr__(self, "nodes", int(_count("nodes", self.nodes, whole=True, minimum=1)))
        if (
            isinstance(self.priority, bool)
            or not isinstance(self.priority, int)
            or abs(self.priority) > 1_000_000
        ):
            _bad("priority", self.priority, "give a whole number from -1000000 to 1000000")
        if self.time_limit_s is not None:
            object.__setattr__(self, "time_limit_s", parse_duration(self.time_limit_s))
        object.__setattr__(self, "retries", int(_count("retries", self.retries, whole=True)))
        if self.retries > 100:
            _bad("retries", self.retries, "give 0 to 100")
        if not isinstance(self.preemptible, bool):
            _bad("preemptible", self.preemptible, "give true or false")
        grace = _count("grace_s", self.grace_s)
        if grace > 3600:
            _bad("grace_s", self.grace_s, "give 0 to 3600 seconds")
        object.__setattr__(self, "grace_s", grace)
        inputs = _str_tuple("inputs", self.inputs)
        for ref in inputs:
            if "@" not in ref:
                _bad("inputs", ref, "name dataset versions as name@version")
        object.__setattr__(self, "inputs", inputs)
        if self.pool is not None:
            check_name("pool", self.pool)
        object.__setattr__(self, "env", _str_map("env", self.env))
        object.__setattr__(self, "tags", _str_map("tags", self.tags))
        if not isinstance(self.params, Mapping):
            _bad("params", self.params, "give a mapping of names to values")
        object.__setattr__(self, "params", dict(self.params))
        if self.parent_run is not None and (
            not isinstance(self.parent_run, str) or not 0 < len(self.parent_run) <= 64
        ):
            _bad("parent_run", self.parent_run, "give a run id")
        if self.workdir is not None and not isinstance(self.workdir, str):
            _bad("workdir", self.workdir, "give a directory path")

    @property
    def gang(self) -> bool:
        return self.nodes > 1

    @property
    def total_gpus(self) -> float:
        return self.resources.gpus * self.nodes

    def label(self) -> str:
        """A short name: the given one, the command's first words or the function."""
        if self.name:
            return self.name
        if self.command:
            return " ".join(self.command)[:80]
        return "python function"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "resources":
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> JobSpec:
        """A spec from a mapping (a YAML file, a request body): unknown keys are refused by
        name; ``resources`` may be nested or its keys given at the top level; ``memory`` and
        ``gpu_memory`` accept sizes (``"16G"``), ``time_limit`` durations (``"2h"``), and
        ``command`` a list or one shell-style string."""
        if not isinstance(data, Mapping):
            _bad("job spec", data, "give a mapping of fields")
        known = {f.name for f in fields(cls)}
        resource_keys = {"gpus", "gpu_memory", "gpu_memory_mb", "cpus", "memory", "memory_mb"}
        aliases = {"time_limit": "time_limit_s", "grace": "grace_s"}
        spec: dict[str, Any] = {}
        res: dict[str, Any] = {}
        for key, value in data.items():
            key = aliases.get(key, key)
            if key in resource_keys:
                res[key] = value
            elif key == "resources":
                if not isinstance(value, Mapping):
                    _bad("resources", value, "give a mapping (gpus, cpus, memory, gpu_memory)")
                for rk, rv in value.items():
                    if rk not in resource_keys:
                        _bad(f"resources.{rk}", rv, f"keys are {', '.join(sorted(resource_keys))}")
                    res[rk] = rv
            elif key in known:
                spec[key] = value
            else:
                hint = nearest(str(key), sorted(known | resource_keys | set(aliases)), "field")
                _bad(str(key), value, f"not a job field; {hint}")
        if isinstance(spec.get("command"), str):
            import shlex

            spec["command"] = shlex.split(spec["command"])
        for short, long in (("memory", "memory_mb"), ("gpu_memory", "gpu_memory_mb")):
            if short in res:
                res[long] = res.pop(short)
        spec["resources"] = Resources(**res)
        for key in ("command", "inputs"):
            if key in spec and isinstance(spec[key], list):
                spec[key] = tuple(spec[key])
        try:
            return cls(**spec)
        except TypeError as exc:
            msg = f"job spec is incomplete: {exc}"
            raise InvalidArgumentError(msg) from None

    def with_(self, **changes: Any) -> JobSpec:
        return replace(self, **changes)


@dataclass(frozen=True)
class NodePlacement:
    """Where one node of a job runs: the node's name and, per device index, the fraction held
    (``((0, 0.5),)`` is half of device 0), plus the device memory held per device."""

    node: str
    devices: tuple[tuple[int, float], ...] = ()
    gpu_memory_mb: int = 0

    @property
    def visible_devices(self) -> str:
        """The value for ``CUDA_VISIBLE_DEVICES``."""
        return ",".join(str(index) for index, _ in self.devices)


#: One entry per node of the job, rank order.
Placement = tuple[NodePlacement, ...]


@dataclass(frozen=True)
class Pool:
    """Machines that run jobs through one executor.

    A pool has ``nodes`` alike nodes, each with ``gpus`` devices of ``gpu_memory_mb`` each,
    ``cpus`` and ``memory_mb``. On machines without GPUs a pool may declare *logical* GPUs (as
    Ray's ``--num-gpus`` does): jobs are scheduled and given ``CUDA_VISIBLE_DEVICES`` as if
    the devices existed. ``options`` are the executor's own settings (a Ray address, a Slurm
    partition). A pool that is not ``enabled`` takes no new jobs.
    """

    name: str
    executor: str = "local"
    nodes: int = 1
    gpus: int = 0
    gpu_memory_mb: int = 0
    cpus: float = 1.0
    memory_mb: int = 0
    options: Mapping[str, str] = field(default_factory=dict)
    enabled: bool = True

    def __post_init__(self) -> None:
        check_name("pool", self.name)
        if self.executor not in EXECUTORS:
            _bad("executor", self.executor, f"executors are {', '.join(EXECUTORS)}")
        object.__setattr__(self, "nodes", int(_count("nodes", self.nodes, whole=True, minimum=1)))
        object.__setattr__(self, "gpus", int(_count("gpus", self.gpus, whole=True)))
        object.__setattr__(self, "cpus", _count("cpus", self.cpus))
        object.__setattr__(self, "memory_mb", parse_memory(self.memory_mb, "memory"))
        object.__setattr__(self, "gpu_memory_mb", parse_memory(self.gpu_memory_mb, "gpu_memory"))
        object.__setattr__(self, "options", _str_map("options", self.options))

    @property
    def total_gpus(self) -> int:
        return self.gpus * self.nodes

    @property
    def total_cpus(self) -> float:
        return self.cpus * self.nodes

    def fits(self, spec: JobSpec) -> str | None:
        """Why ``spec`` can never run here (with the numbers), or ``None`` if an empty pool
        could run it."""
        r = spec.resources
        if spec.nodes > self.nodes:
            return f"{spec.nodes} nodes asked, pool {self.name!r} has {self.nodes}"
        if r.gpus > self.gpus or (r.gpu_memory_mb and not self.gpus):
            return f"{r.gpus:g} GPUs per node asked, pool {self.name!r} has {self.gpus} per node"
        if r.gpu_memory_mb and self.gpu_memory_mb and r.gpu_memory_mb > self.gpu_memory_mb:
            return (
                f"{r.gpu_memory_mb} MiB GPU memory asked, pool {self.name!r} has "
                f"{self.gpu_memory_mb} MiB per device"
            )
        if r.cpus > self.cpus:
            return f"{r.cpus:g} CPUs per node asked, pool {self.name!r} has {self.cpus:g} per node"
        if r.memory_mb and self.memory_mb and r.memory_mb > self.memory_mb:
            return (
                f"{r.memory_mb} MiB memory per node asked, "
                f"pool {self.name!r} has {self.memory_mb} MiB"
            )
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "executor": self.executor,
            "nodes": self.nodes,
            "gpus": self.gpus,
            "gpu_memory_mb": self.gpu_memory_mb,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "options": dict(self.options),
            "enabled": self.enabled,
        }


@dataclass(frozen=True)
class Quota:
    """A project's share of the compute: nominal ``gpus``, ``cpus`` and ``memory_mb`` it is
    guaranteed, a fair-share ``weight``, and a ``cohort``: projects of one cohort lend each
    other idle quota (up to ``borrow_gpus``/``borrow_cpus`` beyond nominal), and a lender
    takes it back by preempting preemptible borrowers. A project without a quota row gets
    weight 1, no nominal quota and may use whatever is idle."""

    project: str
    gpus: float = 0.0
    cpus: float = 0.0
    memory_mb: int = 0
    weight: float = 1.0
    cohort: str | None = None
    borrow_gpus: float | None = None
    borrow_cpus: float | None = None

    def __post_init__(self) -> None:
        check_name("project", self.project)
        object.__setattr__(self, "gpus", _count("gpus", self.gpus))
        object.__setattr__(self, "cpus", _count("cpus", self.cpus))
        object.__setattr__(self, "memory_mb", parse_memory(self.memory_mb, "memory"))
        weight = _count("weight", self.weight)
        if weight <= 0:
            _bad("weight", self.weight, "give a positive weight")
        object.__setattr__(self, "weight", weight)
        if self.cohort is not None:
            check_name("cohort", self.cohort)
        for name in ("borrow_gpus", "borrow_cpus"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _count(name, value))

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "gpus": self.gpus,
            "cpus": self.cpus,
            "memory_mb": self.memory_mb,
            "weight": self.weight,
            "cohort": self.cohort,
            "borrow_gpus": self.borrow_gpus,
            "borrow_cpus": self.borrow_cpus,
        }


@dataclass(frozen=True)
class Job:
    """A job as the queue knows it. ``run_id`` is its run (every job is a run). ``attempt``
    counts starts (1 for the first). ``placement`` is where the current attempt runs;
    ``reason`` says why it is in its state (why it failed, who cancelled it, why it was
    requeued); ``exit_code`` is the command's (negative: killed by that signal)."""

    id: str
    run_id: str
    spec: JobSpec
    state: JobState
    user: str | None
    submitted_ms: int
    attempt: int = 0
    pool: str | None = None
    placement: Placement = ()
    executor_ref: str | None = None
    started_ms: int | None = None
    ended_ms: int | None = None
    heartbeat_ms: int | None = None
    exit_code: int | None = None
    reason: str = ""
    cancel_requested: bool = False
    preempt_requested: bool = False

    @property
    def project(self) -> str:
        return self.spec.project


@dataclass(frozen=True)
class LogChunk:
    """A piece of a job's output: ``stream`` is ``stdout`` or ``stderr``; ``seq`` numbers the
    chunks of one (attempt, rank, stream) from 0, so a resent chunk is stored once."""

    attempt: int
    rank: int
    stream: str
    seq: int
    at_ms: int
    data: bytes

    @property
    def key(self) -> str:
        """The cursor key of this chunk's stream: ``"attempt/rank/stream"``."""
        return f"{self.attempt}/{self.rank}/{self.stream}"


@dataclass(frozen=True)
class Agent:
    """A process serving a pool: it claims the pool's jobs, launches them through the pool's
    executor and watches them."""

    id: str
    pool: str
    host: str
    pid: int
    started_ms: int
    heartbeat_ms: int


@dataclass(frozen=True)
class TaskReport:
    """How one node (rank) of a job's attempt ended, as its runner saw it."""

    exit_code: int | None
    reason: str = ""
    cpu_s: float | None = None


@dataclass(frozen=True)
class Signals:
    """What the queue asks of a running attempt, answered to each heartbeat: ``stop`` with a
    ``reason`` when the job was cancelled, preempted (``preempt``: give the checkpoint hook
    its grace) or is no longer this attempt's (requeued meanwhile: stop at once)."""

    stop: bool = False
    preempt: bool = False
    reason: str = ""
