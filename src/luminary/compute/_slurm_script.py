"""The Slurm executor's logic that does no I/O: pool options, ``sbatch`` flags, batch scripts,
and the parsing of ``squeue``, ``sacct`` and ``sinfo`` output.

Resources map to ``sbatch`` flags per node (one task per node, ``--cpus-per-task`` for the
CPUs, ``--mem`` in MiB, ``--gres`` for devices). Slurm has no fraction of a ``gpu`` gres: a
fractional request (``gpus=0.5``, or GPU memory alone) takes ``shard`` gres when the pool sets
``shards_per_gpu`` (the fraction of that many shards, rounded up), else one whole GPU.

A time limit becomes ``--time`` = limit + the job's grace, in whole minutes (Slurm's unit,
rounded up), with ``--signal=B:TERM@grace``: the runner hears SIGTERM near the limit and has
the grace to record how the job ended before Slurm kills it. ``--no-requeue`` keeps Slurm from
rerunning a job behind the queue's back; retries and preemption are Luminary's.

Environment: the runner's ``env`` is written into the script as ``export`` lines (values
quoted; Slurm shows a job's script to its owner and the cluster's admins only) on top of the
submitter's environment (``--export=ALL``, so ``PATH``, a virtual environment and
``SLURM_CONF`` reach the job); ``CUDA_VISIBLE_DEVICES`` is left to Slurm, which sets it for
the devices it assigns, and emptied for a job that asked for none.
"""

from __future__ import annotations

import math
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from luminary.compute.models import Job, JobSpec, Pool, Resources
from luminary.errors import InvalidArgumentError, nearest

__all__ = [
    "LIVE_STATES",
    "TERMINAL_STATES",
    "SlurmOptions",
    "array_script",
    "batch_script",
    "check_array",
    "gres_request",
    "job_name",
    "parse_sacct",
    "parse_sinfo",
    "parse_squeue",
    "sbatch_flags",
]

#: Slurm job states after which nothing of the job runs any more.
TERMINAL_STATES = frozenset(
    {
        "BOOT_FAIL",
        "CANCELLED",
        "COMPLETED",
        "DEADLINE",
        "FAILED",
        "NODE_FAIL",
        "OUT_OF_MEMORY",
        "PREEMPTED",
        "REVOKED",
        "SPECIAL_EXIT",
        "TIMEOUT",
    }
)
#: States of a job that is waiting, running or finishing; any other state counts as live too.
LIVE_STATES = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})

_OPTIONS = ("partition", "account", "qos", "spool", "gres", "shards_per_gpu", "extra", "conf")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Variables the script or Slurm sets itself.
_OWN_VARS = frozenset({"CUDA_VISIBLE_DEVICES", "LUMINARY_RANK", "MASTER_ADDR"})
#: Per-rank wrapper of a gang's command: the rank is Slurm's task id.
_RANK_WRAPPER = 'LUMINARY_RANK=$SLURM_PROCID; export LUMINARY_RANK; exec "$@"'


@dataclass(frozen=True)
class SlurmOptions:
    """A Slurm pool's ``options``, checked: where jobs go (``partition``, ``account``,
    ``qos``), the ``spool`` folder for scripts and outputs (``None``: the executor picks one),
    the ``gres`` name of a GPU (``gpu``, or ``gpu:a100`` for a type), ``shards_per_gpu``
    (0: fractions take a whole GPU), ``extra`` sbatch flags and the ``conf`` file
    (``SLURM_CONF``) of the cluster when it is not the default one."""

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    spool: str | None = None
    gres: str = "gpu"
    shards_per_gpu: int = 0
    extra: tuple[str, ...] = ()
    conf: str | None = None

    @classmethod
    def from_pool(cls, pool: Pool) -> SlurmOptions:
        opts = dict(pool.options)
        for key in opts:
            if key not in _OPTIONS:
                hint = nearest(key, _OPTIONS, "option")
                msg = (
                    f"pool {pool.name!r}: option {key}={opts[key]!r} is not a Slurm option; {hint}"
                )
                raise InvalidArgumentError(msg)
        shards_text = opts.get("shards_per_gpu", "0").strip() or "0"
        if not shards_text.isdigit() or int(shards_text) > 1024:
            msg = (
                f"pool {pool.name!r}: shards_per_gpu={shards_text!r} is not valid; give the "
                "number of shard gres per GPU in slurm.conf (1 to 1024), or 0 for none"
            )
            raise InvalidArgumentError(msg)
        gres = opts.get("gres", "gpu").strip() or "gpu"
        if not re.fullmatch(r"[A-Za-z0-9_]+(:[A-Za-z0-9_.-]+)?", gres):
            msg = f"pool {pool.name!r}: gres={gres!r} is not valid; give a name such as 'gpu'"
            raise InvalidArgumentError(msg)
        try:
            extra = tuple(shlex.split(opts.get("extra", "")))
        except ValueError as exc:
            msg = f"pool {pool.name!r}: extra={opts['extra']!r} does not parse ({exc})"
            raise InvalidArgumentError(msg) from None
        return cls(
            partition=opts.get("partition") or None,
            account=opts.get("account") or None,
            qos=opts.get("qos") or None,
            spool=opts.get("spool") or None,
            gres=gres,
            shards_per_gpu=int(shards_text),
            extra=extra,
            conf=opts.get("conf") or None,
        )


def job_name(job: Job) -> str:
    return f"luminary-{job.id}"


def gres_request(resources: Resources, options: SlurmOptions, pool: Pool) -> str | None:
    """The ``--gres`` value for one node's devices, or ``None`` for a job without GPUs."""
    if not resources.wants_gpu:
        return None
    if resources.whole_gpus:
        return f"{options.gres}:{resources.whole_gpus}"
    fraction = resources.gpus
    if not fraction and resources.gpu_memory_mb and pool.gpu_memory_mb:
        fraction = min(1.0, resources.gpu_memory_mb / pool.gpu_memory_mb)
    if options.shards_per_gpu and fraction:
        shards = math.ceil(round(fraction * options.shards_per_gpu, 6))
        return f"shard:{max(1, min(shards, options.shards_per_gpu))}"
    return f"{options.gres}:1"


def _time_flags(spec: JobSpec) -> list[str]:
    if spec.time_limit_s is None:
        return []
    minutes = max(1, math.ceil((spec.time_limit_s + spec.grace_s) / 60))
    flags = [f"--time={minutes}"]
    if spec.grace_s >= 1:
        flags.append(f"--signal=B:TERM@{math.ceil(spec.grace_s)}")
    return flags


def sbatch_flags(
    spec: JobSpec, *, name: str, output: str, options: SlurmOptions, pool: Pool
) -> list[str]:
    """``sbatch`` flags for ``spec`` (per node resources, time, where it goes), before the
    pool's ``extra`` flags and the script."""
    r = spec.resources
    flags = [
        "--parsable",
        f"--job-name={name}",
        f"--nodes={spec.nodes}",
        "--ntasks-per-node=1",
        f"--cpus-per-task={max(1, math.ceil(r.cpus))}",
        f"--output={output}",
        "--export=ALL",
        "--no-requeue",
    ]
    if r.memory_mb:
        flags.append(f"--mem={r.memory_mb}M")
    gres = gres_request(r, options, pool)
    if gres:
        flags.append(f"--gres={gres}")
    flags += _time_flags(spec)
    for key in ("partition", "account", "qos"):
        value = getattr(options, key)
        if value:
            flags.append(f"--{key}={value}")
    if spec.workdir:
        flags.append(f"--chdir={spec.workdir}")
    return [*flags, *options.extra]


def _exports(env: Mapping[str, str], *, wants_gpu: bool) -> list[str]:
    lines = []
    for key in sorted(env):
        if not _ENV_NAME.fullmatch(key):
            msg = (
                f"environment variable {key!r} cannot be passed to a Slurm job; names are "
                "letters, digits and underscores, not starting with a digit"
            )
            raise InvalidArgumentError(msg)
        if key not in _OWN_VARS:
            lines.append(f"export {key}={shlex.quote(env[key])}")
    if not wants_gpu:
        lines.append("export CUDA_VISIBLE_DEVICES=")
    return lines


def _node_body(command: Sequence[str], env: Mapping[str, str], spec: JobSpec) -> list[str]:
    """Lines that start ``command`` on every node of ``spec``: exec'd directly on one node,
    through ``srun`` (one task per node, rank from ``SLURM_PROCID``) for a gang."""
    lines = _exports(env, wants_gpu=spec.resources.wants_gpu)
    argv = shlex.join(command)
    if not spec.gang:
        return [*lines, "export LUMINARY_RANK=0", f"exec {argv}"]
    port = "${MASTER_PORT:-$((10000 + SLURM_JOB_ID % 20000))}"
    return [
        *lines,
        'MASTER_ADDR="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"',
        f"MASTER_PORT={port}",
        "export MASTER_ADDR MASTER_PORT",
        f"exec srun --nodes={spec.nodes} --ntasks={spec.nodes} --ntasks-per-node=1 "
        f"--kill-on-bad-exit=1 --export=ALL sh -c {shlex.quote(_RANK_WRAPPER)} luminary-rank "
        f"{argv}",
    ]


def _comment(text: str) -> str:
    """``text`` made safe for a ``#`` comment line: a newline in a job's name or command would
    otherwise end the comment and run the rest as shell."""
    return "".join(c if c.isprintable() else " " for c in text)


def batch_script(job: Job, command: Sequence[str], env: Mapping[str, str]) -> str:
    """The batch script of one attempt of ``job``."""
    title = _comment(f"Luminary job {job.id}, attempt {job.attempt}: {job.spec.label()}")
    head = ["#!/bin/sh", f"# {title}"]
    return "\n".join([*head, *_node_body(command, env, job.spec)]) + "\n"


def array_script(
    jobs: Sequence[Job], commands: Sequence[Sequence[str]], envs: Sequence[Mapping[str, str]]
) -> str:
    """One batch script for a job array: array index ``i`` runs ``commands[i]`` with
    ``envs[i]`` for ``jobs[i]``. The mapping lives in the script (a ``case`` on
    ``SLURM_ARRAY_TASK_ID``), so Slurm carries it to the node and no shared folder is needed."""
    lines = [
        "#!/bin/sh",
        f"# Luminary job array of {len(jobs)} jobs",
        'case "$SLURM_ARRAY_TASK_ID" in',
    ]
    for index, (job, command, env) in enumerate(zip(jobs, commands, envs, strict=True)):
        lines.append(f"{index})  # {_comment(f'job {job.id}, attempt {job.attempt}')}")
        lines += ["  " + line for line in _node_body(command, env, job.spec)]
        lines.append("  ;;")
    lines += [
        "esac",
        'echo "luminary: no job for array index $SLURM_ARRAY_TASK_ID" >&2',
        "exit 2",
    ]
    return "\n".join(lines) + "\n"


def check_array(jobs: Sequence[Job]) -> JobSpec:
    """The spec whose resources serve every job of an array: all alike and on one node."""
    if not jobs:
        msg = "a job array needs at least one job"
        raise InvalidArgumentError(msg)
    first = jobs[0].spec
    for job in jobs:
        if job.spec.gang:
            msg = f"job {job.id} asks for {job.spec.nodes} nodes; a job array runs one-node jobs"
            raise InvalidArgumentError(msg)
        if job.spec.resources != first.resources:
            msg = (
                f"job {job.id} asks for {job.spec.resources.describe()}, job {jobs[0].id} for "
                f"{first.resources.describe()}; the jobs of an array ask for the same resources"
            )
            raise InvalidArgumentError(msg)
    limits = [j.spec.time_limit_s for j in jobs]
    longest = None if any(t is None for t in limits) else max(t for t in limits if t is not None)
    return first.with_(
        time_limit_s=longest, grace_s=max(j.spec.grace_s for j in jobs), workdir=None
    )


def _reason(state: str, why: str) -> str | None:
    state = state.split()[0].rstrip("+") if state.strip() else "UNKNOWN"
    if state not in TERMINAL_STATES:
        return None
    return state if why in ("", "None", "(null)") else f"{state} ({why})"


def parse_squeue(text: str) -> dict[str, str | None]:
    """``squeue --noheader --array --format=%i|%T|%r`` lines → job id: ``None`` while live,
    else its state (and Slurm's reason, when there is one)."""
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 2 and parts[0]:
            out[parts[0]] = _reason(parts[1], parts[2] if len(parts) > 2 else "")
    return out


def parse_sacct(text: str) -> dict[str, str | None]:
    """``sacct --noheader --parsable2 --format=JobID,State`` lines → job id: as
    :func:`parse_squeue`; job steps (``123.batch``) are left out."""
    out: dict[str, str | None] = {}
    for line in text.splitlines():
        job_id, _, state = line.strip().partition("|")
        if job_id and "." not in job_id:
            out[job_id] = _reason(state, "")
    return out


def _gres_count(gres: str, name: str) -> int:
    """How many ``name`` gres ``sinfo``'s ``%G`` lists (``gpu:a100:4(S:0-1),shard:8``)."""
    total = 0
    for part in re.sub(r"\([^)]*\)", "", gres).split(","):
        fields = part.strip().split(":")
        if fields[0] == name and len(fields) >= 2 and fields[-1].isdigit():
            total += int(fields[-1])
    return total


def parse_sinfo(text: str, pool: Pool, gres: str) -> Pool | None:
    """``sinfo --noheader --Node --format=%N|%c|%m|%G|%T`` → ``pool`` as Slurm reports it.

    Nodes that are down, drained, failed or not responding take no jobs and are left out; a
    pool whose nodes all are is returned disabled. Per-node figures are the largest node's, so
    that a job any node could run is never refused; a pool should be a partition of alike
    nodes. ``None`` when ``sinfo`` lists no node."""
    nodes: dict[str, tuple[float, int, int, bool]] = {}
    name = gres.split(":")[0]
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) < 5 or not parts[0]:
            continue
        state = parts[4].strip().lower()
        up = not (
            state.endswith("*") or state.startswith(("down", "drain", "fail", "inval", "unk"))
        )
        try:
            cpus, memory = float(parts[1].rstrip("+")), int(parts[2].rstrip("+"))
        except ValueError:
            continue
        nodes[parts[0]] = (cpus, memory, _gres_count(parts[3], name), up)
    if not nodes:
        return None
    usable = [n for n in nodes.values() if n[3]]
    counted = usable or list(nodes.values())
    return Pool(
        name=pool.name,
        executor="slurm",
        nodes=len(counted),
        gpus=max(n[2] for n in counted),
        gpu_memory_mb=pool.gpu_memory_mb,
        cpus=max(n[0] for n in counted),
        memory_mb=max(n[1] for n in counted),
        options=pool.options,
        enabled=pool.enabled and bool(usable),
    )
