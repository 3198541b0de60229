"""The Slurm executor: a job's runners as a Slurm batch job, through ``sbatch``, ``squeue``,
``scancel``, ``sinfo`` (and ``sacct`` where accounting is on); no Python bindings.

``launch`` writes a batch script and submits it on ``sbatch --parsable``'s stdin (Slurm keeps
its copy, which ``scontrol write batch_script ID`` shows; no file holding the job's
environment is left behind); the Slurm job id is the reference. A one-node job execs the
runner in the batch step with ``LUMINARY_RANK=0``; a gang runs it through ``srun``, one task
per node, with ``MASTER_ADDR`` the allocation's first host, ``MASTER_PORT`` derived from the
Slurm job id (unless ``env`` gives one) and ``LUMINARY_RANK`` from ``SLURM_PROCID``. Slurm
sets ``CUDA_VISIBLE_DEVICES`` for the GPUs it assigns. How resources, time limits and the
environment turn into flags and script lines: :mod:`luminary.compute._slurm_script`. The
runner's own output (the command's goes into the store) lands in
``<spool>/luminary-<job>-<attempt>-<slurm id>.out``.

``launch_array`` submits many alike one-node jobs as one ``sbatch --array``: references are
``<array job id>_<index>``, which ``poll`` and ``kill`` take like any other.

Pool options (strings): ``partition``, ``account``, ``qos``, ``gres`` (``gpu``),
``shards_per_gpu``, ``extra`` (more sbatch flags, shell-quoted), ``conf`` (the cluster's
``slurm.conf``, passed as ``SLURM_CONF``) and ``spool``: where Slurm writes the output files
from the compute nodes, so best on a shared file system (default
``$LUMINARY_HOME/slurm/<pool>``, else a folder in the temporary directory).

Errors, all mapped in :meth:`SlurmExecutor._run`: a missing command raises
:class:`~luminary.errors.MissingDependencyError` naming Debian's ``slurm-wlm``; a command that
fails, times out or cannot start raises :class:`~luminary.errors.BackendUnavailableError` with
its stderr (so a request the cluster can never satisfy is refused with Slurm's own words).
Thread safety: one agent thread per executor, as :class:`Executor` says.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

from luminary.compute._executor import Executor
from luminary.compute._slurm_script import (
    SlurmOptions,
    array_script,
    batch_script,
    check_array,
    job_name,
    parse_sacct,
    parse_sinfo,
    parse_squeue,
    sbatch_flags,
)
from luminary.compute.models import Job, Pool
from luminary.errors import BackendUnavailableError, InvalidArgumentError, MissingDependencyError

__all__ = ["SlurmExecutor"]

#: Seconds a Slurm command may take before the cluster counts as unreachable.
COMMAND_TIMEOUT_S = 60.0
#: A reference from ``launch`` (``123``) or ``launch_array`` (``123_4``).
_JOB_ID = re.compile(r"[0-9]+(_[0-9]+)?")
#: What ``poll`` says of a job Slurm has forgotten (past ``MinJobAge``, no accounting).
GONE = "gone from Slurm (ended; its final state was not kept)"
_INSTALL = (
    "install Slurm's client commands (on Debian: apt-get install slurm-wlm munge) "
    "or load your site's Slurm module, and check PATH"
)


class SlurmExecutor(Executor):
    """Runs jobs of a ``slurm`` pool as Slurm batch jobs."""

    kind: ClassVar[str] = "slurm"

    def __init__(self, pool: Pool) -> None:
        if pool.executor != self.kind:
            msg = f"pool {pool.name!r} has executor {pool.executor!r}; SlurmExecutor takes 'slurm'"
            raise InvalidArgumentError(msg)
        super().__init__(pool)
        self.options = SlurmOptions.from_pool(pool)
        self._sacct: bool | None = None  # unknown until tried once

    # -- the one boundary with Slurm's commands ------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.options.conf:
            env["SLURM_CONF"] = self.options.conf
        return env

    def _run(
        self, args: Sequence[str], what: str, script: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a Slurm command (``script`` on its stdin); every way it can fail becomes a
        Luminary error here."""
        try:
            done = subprocess.run(
                list(args),
                input=script if script is not None else "",
                capture_output=True,
                text=True,
                env=self._env(),
                timeout=COMMAND_TIMEOUT_S,
                check=False,
            )
        except FileNotFoundError:
            msg = f"{what} needs Slurm's `{args[0]}` command, which is not found; {_INSTALL}"
            raise MissingDependencyError(msg) from None
        except subprocess.TimeoutExpired:
            msg = (
                f"{what}: `{args[0]}` did not answer within {COMMAND_TIMEOUT_S:g} s; is slurmctld "
                f"up and reachable (pool {self.pool.name!r})?"
            )
            raise BackendUnavailableError(msg) from None
        except OSError as exc:
            msg = f"{what}: cannot run `{args[0]}`: {exc}"
            raise BackendUnavailableError(msg) from None
        if done.returncode != 0:
            stderr = done.stderr.strip() or done.stdout.strip() or "(no message)"
            msg = (
                f"{what} on pool {self.pool.name!r}: `{args[0]}` exited {done.returncode}: {stderr}"
            )
            raise BackendUnavailableError(msg)
        return done

    # -- spool ---------------------------------------------------------------------------------

    def spool(self) -> Path:
        """The folder for Slurm's output files (created on first use)."""
        if self.options.spool:
            path = Path(self.options.spool).expanduser()
        else:
            home = os.environ.get("LUMINARY_HOME") or str(Path.home() / ".luminary")
            path = Path(home).expanduser() / "slurm" / self.pool.name
            if not _writable(path):
                path = (
                    Path(tempfile.gettempdir()) / f"luminary-slurm-{os.getuid()}" / self.pool.name
                )
        try:
            path.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            msg = f"cannot create the Slurm spool folder {path}: {exc}; set the pool's 'spool'"
            raise BackendUnavailableError(msg) from None
        return path.resolve()

    # -- Executor ------------------------------------------------------------------------------

    def launch(self, job: Job, command: Sequence[str], env: Mapping[str, str]) -> str:
        name = job_name(job)
        script = batch_script(job, command, env)
        output = str(self.spool() / f"{name}-{job.attempt}-%j.out")
        flags = sbatch_flags(
            job.spec, name=name, output=output, options=self.options, pool=self.pool
        )
        asked = f"{job.spec.nodes} node(s) of {job.spec.resources.describe()}"
        done = self._run(["sbatch", *flags], f"submitting job {job.id} ({asked})", script)
        return _job_id(done.stdout, f"job {job.id}")

    def launch_array(
        self,
        jobs: Sequence[Job],
        command_for_job: Callable[[Job], Sequence[str]],
        env_for_job: Callable[[Job], Mapping[str, str]],
    ) -> list[str]:
        """Submit one-node ``jobs`` asking for the same resources as one Slurm job array;
        the references, in ``jobs``' order, are ``<array id>_<index>``. The array's time limit
        is the longest of the jobs' (none if any has none)."""
        spec = check_array(jobs)
        commands = [list(command_for_job(j)) for j in jobs]
        envs = [dict(env_for_job(j)) for j in jobs]
        name = f"luminary-array-{jobs[0].id}"
        script = array_script(jobs, commands, envs)
        output = str(self.spool() / f"{name}-{jobs[0].attempt}-%A_%a.out")
        flags = sbatch_flags(spec, name=name, output=output, options=self.options, pool=self.pool)
        flags.insert(1, f"--array=0-{len(jobs) - 1}")
        done = self._run(["sbatch", *flags], f"submitting an array of {len(jobs)} jobs", script)
        array_id = _job_id(done.stdout, f"the array of {len(jobs)} jobs")
        return [f"{array_id}_{index}" for index in range(len(jobs))]

    def poll(self, refs: Sequence[str]) -> dict[str, str | None]:
        """One ``squeue`` for all ``refs``; those it no longer lists are looked up in ``sacct``
        where accounting is on, else reported :data:`GONE`. A reference that is no Slurm job
        id is reported as such. Raises BackendUnavailableError when squeue fails (the
        controller does not answer): the jobs' fate is unknown, not ended."""
        out: dict[str, str | None] = {
            ref: f"{ref!r} is not a Slurm job id" for ref in refs if not _JOB_ID.fullmatch(ref)
        }
        refs = [ref for ref in refs if ref not in out]
        if not refs:
            return out
        args = [
            "squeue",
            "--noheader",
            "--array",
            "--states=all",
            "--format=%i|%T|%r",
            f"--jobs={','.join(refs)}",
        ]
        try:
            known = parse_squeue(self._run(args, "polling Slurm jobs").stdout)
        except BackendUnavailableError as exc:
            if "Invalid job id" not in str(exc):
                raise
            known = {}  # every ref is past MinJobAge
        missing = [ref for ref in refs if ref not in known]
        if missing:
            known.update(self._sacct_states(missing))
        return {**out, **{ref: known.get(ref, GONE) for ref in refs}}

    def _sacct_states(self, refs: Sequence[str]) -> dict[str, str | None]:
        if self._sacct is False:
            return {}
        args = ["sacct", "--noheader", "--parsable2", "--format=JobID,State"]
        try:
            out = self._run([*args, f"--jobs={','.join(refs)}"], "reading Slurm accounting")
        except MissingDependencyError:
            self._sacct = False
            return {}
        except BackendUnavailableError as exc:
            if "disabled" in str(exc):  # "Slurm accounting storage is disabled": ask no more
                self._sacct = False
            return {}
        self._sacct = True
        return {ref: state for ref, state in parse_sacct(out.stdout).items() if ref in refs}

    def kill(self, ref: str) -> None:
        """SIGKILL to every step of ``ref`` (the batch shell included), then cancel it, so that
        Slurm records it cancelled. A job already gone is not an error."""
        for args in (["scancel", "--full", "--signal=KILL", ref], ["scancel", ref]):
            try:
                self._run(args, f"cancelling Slurm job {ref}")
            except BackendUnavailableError as exc:
                if not any(s in str(exc) for s in ("Invalid job id", "already completing")):
                    raise

    def discover(self) -> Pool | None:
        """The pool's nodes, CPUs, memory and GPUs as ``sinfo`` reports them; ``None`` when
        ``sinfo`` fails or lists no node (of the partition)."""
        args = ["sinfo", "--noheader", "--Node", "--format=%N|%c|%m|%G|%T"]
        if self.options.partition:
            args.append(f"--partition={self.options.partition}")
        try:
            out = self._run(args, "discovering the Slurm pool")
        except (BackendUnavailableError, MissingDependencyError):
            return None
        return parse_sinfo(out.stdout, self.pool, self.options.gres)


def _job_id(stdout: str, what: str) -> str:
    """The job id from ``sbatch --parsable`` (``123`` or ``123;cluster``)."""
    job_id = stdout.strip().splitlines()[-1].split(";")[0].strip() if stdout.strip() else ""
    if not job_id.isdigit():
        msg = f"sbatch accepted {what} but printed no job id: {stdout.strip()!r}"
        raise BackendUnavailableError(msg)
    return job_id


def _writable(path: Path) -> bool:
    for parent in (path, *path.parents):
        if parent.exists():
            return os.access(parent, os.W_OK | os.X_OK)
    return False
