"""``luminary session --gpus 0.5``: an interactive shell (or any program) on a slot of the queue.

The slot is a job like any other — queued, fair-shared, time-limited, tracked as a run — whose
command holds the slot while you work: ``luminary session`` waits until it starts, then runs
your shell (or ``--command``, e.g. ``jupyter lab --no-browser``) here with the slot's
``CUDA_VISIBLE_DEVICES`` and the job's run as ``LUMINARY_RUN_ID``. Leaving the shell ends the
job; reaching the time limit ends the shell. Sessions need a local pool (the shell runs on
this machine); on Slurm, ``srun --pty`` with the same flags gives the same.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import time
from typing import Annotated

import typer

from luminary.cli._output import err, out

_HOLD = (
    "import signal, time\n"
    "signal.signal(signal.SIGTERM, lambda *a: exit(0))\n"
    "while True: time.sleep(3600)"
)


def session(
    gpus: Annotated[float, typer.Option(help="GPUs: a fraction (0.5) or whole GPUs.")] = 0.0,
    gpu_memory: Annotated[str | None, typer.Option("--gpu-memory")] = None,
    cpus: Annotated[float, typer.Option()] = 1.0,
    memory: Annotated[str | None, typer.Option()] = None,
    time_limit: Annotated[str, typer.Option("--time-limit", "-t", help="e.g. 2h.")] = "2h",
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    pool: Annotated[str | None, typer.Option(help="A local pool.")] = None,
    command: Annotated[
        str | None, typer.Option("--command", "-c", help="Instead of $SHELL, e.g. 'jupyter lab'.")
    ] = None,
) -> None:
    """An interactive shell on a slot of the queue, tracked as a run, time-limited."""
    import sys

    import luminary as lm
    from luminary.compute import JobState, job_environment
    from luminary.errors import InvalidStateError

    handle = lm.jobs.submit(
        [sys.executable, "-c", _HOLD],
        project=project,
        gpus=gpus,
        gpu_memory=gpu_memory or 0,
        cpus=cpus,
        memory=memory or 0,
        time_limit=time_limit,
        pool=pool,
        name="interactive session",
        tags={"job.session": "interactive"},
    )
    out.print(f"session job [bold]{handle.id}[/] queued; waiting for a slot (Ctrl-C gives up)")
    try:
        while (job := handle.refresh()).state is not JobState.RUNNING:
            if job.state.done:
                msg = f"the session job {job.state.value}: {job.reason}"
                raise InvalidStateError(msg)
            time.sleep(0.2)
        if lm.get_store().get_pool(job.pool or "").executor != "local":
            msg = f"pool {job.pool!r} is not local; a session's shell runs on this machine"
            raise InvalidStateError(msg)
        env = job_environment(job, 0, os.environ)
        env.pop("LUMINARY_ENERGY", None)
        devices = env.get("CUDA_VISIBLE_DEVICES", "none")
        out.print(
            f"slot ready on pool {job.pool} (GPUs {devices}); run {job.run_id}. "
            f"Exit the shell to end the session (limit {time_limit})."
        )
        argv = shlex.split(command) if command else [os.environ.get("SHELL", "/bin/sh")]
        limit = job.spec.time_limit_s
        try:
            subprocess.run(argv, env=env, check=False, timeout=limit)
        except subprocess.TimeoutExpired:
            err.print(f"the session reached its time limit ({time_limit})")
    except KeyboardInterrupt:
        pass
    finally:
        handle.cancel("the interactive session ended")
    out.print(f"session {handle.id} ended; its run is {handle.run_id}")
