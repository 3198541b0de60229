"""Running one node (rank) of a job's attempt: the command, its output, its heartbeat, its end.

A :class:`Supervisor` is what every executor ends up running: the local executor in a thread
of its agent, Ray and Slurm in ``python -m luminary.compute.runner`` on the node they chose.
It tells the queue the rank started (and does not run at all if the attempt is stale or
cancelled), starts the command in its own process group, and until the command ends:

- pumps stdout and stderr into the store in numbered chunks every quarter second (``jobs logs
  -f`` follows them) and into local files, stored as the run's artifacts at the end;
- beats the heartbeat every ``heartbeat_s``; the answer may ask it to stop: a cancel or a
  failed rank of a gang stops the command (SIGTERM, then SIGKILL after the job's grace), a
  preemption too — the command's SIGTERM handler is its checkpoint hook (see
  ``luminary.jobs.on_preempt``);
- enforces the time limit the same way;
- measures energy for the command's processes (the command's own runs do not measure again:
  it gets ``LUMINARY_ENERGY=0``) and records it, with GPU-hours and CPU-hours, on the run.

On Linux the command gets ``PR_SET_PDEATHSIG``: if the supervising process dies, the command
dies with it, and the queue's heartbeat check requeues the job — never two copies running.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

from luminary._clock import now_ms
from luminary.compute._gpumem import GpuMemoryWatch, limit_env, limit_mb, overrun
from luminary.compute._settings import job_heartbeat_s
from luminary.compute.models import Job, LogChunk, Signals, TaskReport
from luminary.errors import InvalidStateError, LuminaryError

if TYPE_CHECKING:
    from luminary.energy import EnergyReport, Sampler
    from luminary.store import Store

__all__ = ["Supervisor", "job_environment"]

log = logging.getLogger("luminary.compute")

_FLUSH_S = 0.25
_CHUNK = 64 * 1024
_LIVE_CAP = 16 * 1024 * 1024
_PR_SET_PDEATHSIG = 1
_TRUNCATED = b"\n[luminary: live output stops here; the whole stream is the run's artifact]\n"

#: util-linux's ``setpriv`` sets the parent-death signal and execs the command: far cheaper
#: than a ``preexec_fn``, which makes Python fork without ``vfork`` (11 ms a start, measured).
_SETPRIV = shutil.which("setpriv") if sys.platform == "linux" else None
try:
    _LIBC: ctypes.CDLL | None = (
        ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" and not _SETPRIV else None
    )
except OSError:  # pragma: no cover - no C library to load
    _LIBC = None


def _die_with_parent() -> None:  # runs in the child between fork and exec
    if _LIBC is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _launch_argv(argv: list[str]) -> list[str]:
    """``argv`` behind ``setpriv --pdeathsig KILL`` where it exists."""
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv] if _SETPRIV else argv


#: The runner's own credentials, which the command never inherits: in team mode the agent's
#: token is an operator's. A job that talks to the server itself gets a token through its
#: spec's ``env``.
_PRIVATE = frozenset({"LUMINARY_TOKEN"})


def job_environment(job: Job, rank: int, base: Mapping[str, str]) -> dict[str, str]:
    """The command's environment: ``base`` (with the executor's variables), the spec's
    ``env``, the job's identity and, for torchrun and DDP, the rank variables."""
    spec = job.spec
    env = {k: v for k, v in base.items() if k not in _PRIVATE}
    env.update(spec.env)
    env.update(
        LUMINARY_JOB_ID=job.id,
        LUMINARY_RUN_ID=job.run_id,
        LUMINARY_PROJECT=spec.project,
        LUMINARY_JOB_ATTEMPT=str(job.attempt),
        LUMINARY_ENERGY="0",
        LUMINARY_PREEMPT_GRACE_S=f"{spec.grace_s:g}",
        RANK=str(rank),
        NODE_RANK=str(rank),
        GROUP_RANK=str(rank),
        WORLD_SIZE=str(spec.nodes),
        NNODES=str(spec.nodes),
        LOCAL_RANK="0",
        LOCAL_WORLD_SIZE="1",
    )
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("MASTER_PORT", "29500")
    if job.placement and rank < len(job.placement) and "CUDA_VISIBLE_DEVICES" not in base:
        devices = job.placement[rank].visible_devices
        if devices:
            env["CUDA_VISIBLE_DEVICES"] = devices
    return env


def _command(job: Job) -> list[str]:
    if job.spec.function is not None:
        return [sys.executable, "-m", "luminary.compute._call", job.spec.function]
    return list(job.spec.command)


class _Pump:
    """Reads one stream of the command into a local file and numbered chunks for the store."""

    def __init__(self, stream: str, pipe: IO[bytes], path: Path, attempt: int, rank: int) -> None:
        self.stream, self.pipe, self.path = stream, pipe, path
        self.attempt, self.rank = attempt, rank
        self.seq = 0
        self.live_bytes = 0
        self.pending: list[LogChunk] = []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, name=f"luminary-{stream}", daemon=True)
        self.thread.start()

    def _read(self) -> None:
        with self.pipe, self.path.open("wb") as out:
            fd = self.pipe.fileno()
            while True:
                data = os.read(fd, _CHUNK)
                if not data:
                    break
                out.write(data)
                out.flush()
                self._queue(data)

    def _queue(self, data: bytes) -> None:
        with self.lock:
            if self.live_bytes >= _LIVE_CAP:
                return
            self.live_bytes += len(data)
            if self.live_bytes >= _LIVE_CAP:
                data += _TRUNCATED
            self.pending.append(
                LogChunk(self.attempt, self.rank, self.stream, self.seq, now_ms(), data[:_CHUNK])
            )
            self.seq += 1

    def take(self) -> list[LogChunk]:
        with self.lock:
            out, self.pending = self.pending, []
        return out


class Supervisor:
    """Runs rank ``rank`` of ``job``'s current attempt to its end (see the module docstring).

    ``env`` is the base environment (the executor's variables included); ``node`` the name
    the queue records. :meth:`run` blocks and returns how the rank ended; it never raises for
    a failing command, only when the queue refuses the start (InvalidStateError).
    """

    def __init__(
        self,
        store: Store,
        job: Job,
        rank: int = 0,
        *,
        env: Mapping[str, str] | None = None,
        node: str | None = None,
        heartbeat_s: float | None = None,
        energy: bool = True,
        device_mb: int | None = None,
    ) -> None:
        self.store = store
        self.job = job
        self.rank = rank
        self.env = dict(os.environ if env is None else env)
        self.node = node or socket.gethostname()
        self.heartbeat_s = job_heartbeat_s() if heartbeat_s is None else heartbeat_s
        self.energy = energy and os.environ.get("LUMINARY_ENERGY", "1").lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
        if device_mb is None:
            text = self.env.get("LUMINARY_GPU_DEVICE_MB", "")
            device_mb = int(text) if text.isdigit() else 0
        self.device_mb = device_mb
        self.process: subprocess.Popen[bytes] | None = None
        self._stop = threading.Event()
        self._poke = threading.Event()

    def stop(self) -> None:
        """Ask :meth:`run` to stop the command (as a cancel would), e.g. at agent shutdown."""
        self._stop.set()

    def poke(self) -> None:
        """Beat now rather than at the next heartbeat: the queue may ask something (a cancel,
        a preemption) that should not wait."""
        self._poke.set()

    def run(self) -> TaskReport:
        job = self.job
        self.job = job = self.store.task_started(job.id, job.attempt, self.rank, self.node)
        spec = job.spec
        workdir = Path(tempfile.mkdtemp(prefix=f"luminary-job-{job.id}-"))
        env = job_environment(job, self.rank, self.env)
        limit = limit_mb(job, self.device_mb) if spec.resources.wants_gpu else None
        env.update(limit_env(limit, self.device_mb))
        start = time.monotonic()
        try:
            process = subprocess.Popen(
                _launch_argv(_command(job)),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=spec.workdir or None,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if _LIBC is not None else None,
            )
        except OSError as exc:
            report = TaskReport(
                exit_code=127, reason=f"could not start {_command(job)[0]!r}: {exc}"
            )
            return self._finish(report, [], workdir, 0.0)
        self.process = process
        assert process.stdout is not None
        assert process.stderr is not None
        pumps = [
            _Pump("stdout", process.stdout, workdir / "stdout.txt", job.attempt, self.rank),
            _Pump("stderr", process.stderr, workdir / "stderr.txt", job.attempt, self.rank),
        ]
        sampler = self._start_energy(process.pid)
        watch = None
        if limit is not None:
            devices = [d for d in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
            watch = GpuMemoryWatch(devices)
        try:
            reason = self._watch(process, pumps, start, watch, limit)
        finally:
            if watch is not None:
                watch.close()
        # the command has exited but is not reaped yet: its CPU time is still readable
        energy = _stop(sampler, job.id)
        cpu_s = _reap(process)
        for pump in pumps:
            pump.thread.join(timeout=10)
        self._send_logs(pumps)
        code = process.returncode
        if not reason:
            reason = f"exited with {code}" if code >= 0 else f"killed by {_signal_name(-code)}"
        elapsed = time.monotonic() - start
        self._record(energy, elapsed, cpu_s)
        return self._finish(
            TaskReport(exit_code=code, reason=reason, cpu_s=cpu_s), pumps, workdir, elapsed
        )

    # -- the watch loop --------------------------------------------------------------------
    def _watch(
        self,
        process: subprocess.Popen[bytes],
        pumps: list[_Pump],
        start: float,
        watch: GpuMemoryWatch | None = None,
        limit: int | None = None,
    ) -> str:
        spec = self.job.spec
        reason = ""
        next_beat = time.monotonic() + self.heartbeat_s
        next_flush = time.monotonic() + _FLUSH_S
        kill_at: float | None = None
        next_memory = time.monotonic() + 1.0
        while True:
            if _exited(process):
                return reason
            now = time.monotonic()
            if now >= next_flush:
                self._send_logs(pumps)
                next_flush = now + _FLUSH_S
            signals: Signals | None = None
            if self._stop.is_set() and not reason:
                signals = Signals(stop=True, reason="its agent is shutting down")
            elif now >= next_beat or self._poke.is_set():
                self._poke.clear()
                next_beat = now + self.heartbeat_s
                signals = self._beat()
            if signals is not None and signals.stop and not reason:
                reason = ("preempted: " if signals.preempt else "stopped: ") + signals.reason
                kill_at = self._terminate(process, spec.grace_s)
            if watch is not None and limit is not None and not reason and now >= next_memory:
                next_memory = now + 1.0
                why = overrun(watch.usage(_tree(process.pid)), limit)
                if why:
                    reason = why
                    kill_at = self._terminate(process, min(spec.grace_s, 2.0))
            if spec.time_limit_s is not None and not reason and now - start > spec.time_limit_s:
                reason = f"time limit of {spec.time_limit_s:g} s exceeded"
                kill_at = self._terminate(process, spec.grace_s)
            if kill_at is not None and now >= kill_at:
                _kill_group(process, signal.SIGKILL)
                kill_at = None
            time.sleep(0.02)

    def _beat(self) -> Signals | None:
        try:
            return self.store.task_heartbeat(self.job.id, self.job.attempt, self.rank)
        except LuminaryError as exc:
            log.warning("job %s: heartbeat failed (%s); the command goes on", self.job.id, exc)
            return None

    @staticmethod
    def _terminate(process: subprocess.Popen[bytes], grace_s: float) -> float:
        _kill_group(process, signal.SIGTERM)
        return time.monotonic() + grace_s

    def _send_logs(self, pumps: list[_Pump]) -> None:
        chunks = [c for p in pumps for c in p.take()]
        if not chunks:
            return
        try:
            self.store.append_job_logs(self.job.id, chunks)
        except LuminaryError as exc:
            log.warning(
                "job %s: output not streamed (%s); it is kept for the artifact", self.job.id, exc
            )

    # -- the end ---------------------------------------------------------------------------
    def _start_energy(self, pid: int) -> Sampler | None:
        if not self.energy:
            return None
        from luminary.energy import Sampler

        try:
            return Sampler(pids=[pid]).start()
        except LuminaryError as exc:
            log.warning("job %s: energy is not measured: %s", self.job.id, exc)
            return None

    def _record(self, energy: EnergyReport | None, elapsed: float, cpu_s: float | None) -> None:
        job = self.job
        prefix = f"rank{self.rank}/" if job.spec.nodes > 1 else ""
        metrics = {
            "resources/gpu_hours": job.spec.resources.gpus * elapsed / 3600.0,
            "resources/wall_hours": elapsed / 3600.0,
        }
        if cpu_s is not None:
            metrics["resources/cpu_hours"] = cpu_s / 3600.0
        tags: dict[str, str] = {}
        if energy is not None:
            metrics.update(energy.to_metrics())
            tags = energy.to_tags()
        try:
            from luminary.tracking import write_metrics

            write_metrics(
                self.store,
                job.run_id,
                {prefix + k: v for k, v in metrics.items()},
                step=job.attempt,
            )
            if tags:
                self.store.set_tags(job.run_id, tags)
        except LuminaryError as exc:
            log.warning("job %s: resources not recorded: %s", job.id, exc)

    def _finish(
        self, report: TaskReport, pumps: list[_Pump], workdir: Path, elapsed: float
    ) -> TaskReport:
        from luminary.tracking import ArtifactEntry

        job = self.job
        base = f"logs/attempt-{job.attempt}" + (f"/rank-{self.rank}" if job.spec.nodes > 1 else "")
        entries = []
        for pump in pumps:
            if pump.path.stat().st_size:
                with contextlib.suppress(LuminaryError, OSError):
                    blob = self.store.blobs.put_file(pump.path)
                    entries.append(
                        ArtifactEntry(f"{base}/{pump.stream}.txt", blob.digest, blob.size)
                    )
        if entries:
            with contextlib.suppress(LuminaryError):
                self.store.add_artifacts(job.run_id, entries)
        for pump in pumps:
            with contextlib.suppress(OSError):
                pump.path.unlink()
        with contextlib.suppress(OSError):
            workdir.rmdir()
        try:
            self.store.task_finished(job.id, job.attempt, self.rank, report)
        except InvalidStateError as exc:
            log.info("job %s: %s", job.id, exc)
        return report


def _tree(pid: int) -> set[int]:
    """``pid`` and its descendants."""
    import psutil

    try:
        return {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
    except psutil.Error:
        return {pid}


def _stop(sampler: Sampler | None, job_id: str) -> EnergyReport | None:
    if sampler is None:
        return None
    try:
        return sampler.stop()
    except LuminaryError as exc:
        log.warning("job %s: energy not recorded: %s", job_id, exc)
        return None


def _exited(process: subprocess.Popen[bytes]) -> bool:
    """Whether the command has exited, leaving it unreaped (a zombie keeps its CPU times)."""
    try:
        found = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return found is not None


def _reap(process: subprocess.Popen[bytes]) -> float | None:
    """Reap the exited command; its CPU seconds (waited-for descendants included). Sets
    ``returncode``."""
    try:
        _pid, status, usage = os.wait4(process.pid, 0)
    except ChildProcessError:  # reaped elsewhere: the exit code is all there is
        process.poll()
        if process.returncode is None:
            process.returncode = -signal.SIGKILL
        return None
    process.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_utime + usage.ru_stime


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"
