"""``luminary jobs submit|list|get|logs|cancel|why|shares``: work on shared GPUs.

``luminary jobs submit --gpus 0.5 -p cms-btag -- python train.py`` queues the command;
``-f job.yaml`` reads a spec (the same fields as the flags); flags given on the command line
override the file's.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from luminary.cli._output import OUTPUT, Output, emit_json, fmt_duration, new_table, out

app = typer.Typer(help="Jobs: commands and Python calls run on pools of GPUs and CPUs, each a run.")

JOB_STYLE = {
    "queued": "yellow",
    "starting": "cyan",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def _state(state: str) -> str:
    return f"[{JOB_STYLE.get(state, 'white')}]{state}[/]"


def job_dict(job: Any) -> dict[str, Any]:
    from luminary._clock import from_ms

    def iso(ms: int | None) -> str | None:
        when = from_ms(ms)
        return None if when is None else when.isoformat()

    return {
        "id": job.id,
        "run_id": job.run_id,
        "project": job.project,
        "name": job.spec.label(),
        "state": job.state.value,
        "user": job.user,
        "attempt": job.attempt,
        "pool": job.pool,
        "placement": [
            {"node": p.node, "devices": [list(d) for d in p.devices]} for p in job.placement
        ],
        "submitted": iso(job.submitted_ms),
        "started": iso(job.started_ms),
        "ended": iso(job.ended_ms),
        "exit_code": job.exit_code,
        "reason": job.reason,
        "spec": job.spec.to_dict(),
    }


def _elapsed(job: Any) -> str:
    if job.started_ms is None:
        return ""
    end = job.ended_ms or int(time.time() * 1000)
    return fmt_duration((end - job.started_ms) / 1000)


@app.command("submit", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def submit(
    ctx: typer.Context,
    project: Annotated[str | None, typer.Option("--project", "-p", help="Project.")] = None,
    file: Annotated[
        Path | None, typer.Option("--file", "-f", help="A YAML job spec (same fields as flags).")
    ] = None,
    gpus: Annotated[
        float | None, typer.Option(help="GPUs per node: a fraction (0.5) or whole GPUs.")
    ] = None,
    gpu_memory: Annotated[
        str | None, typer.Option("--gpu-memory", help="GPU memory per GPU, e.g. 20G.")
    ] = None,
    cpus: Annotated[float | None, typer.Option(help="CPUs per node.")] = None,
    memory: Annotated[str | None, typer.Option(help="Memory per node, e.g. 16G.")] = None,
    nodes: Annotated[int | None, typer.Option(help="Nodes of a gang (torchrun/DDP).")] = None,
    priority: Annotated[int | None, typer.Option(help="Higher first, within a project.")] = None,
    time_limit: Annotated[
        str | None, typer.Option("--time-limit", "-t", help="e.g. 2h, 30m, 1:30:00.")
    ] = None,
    retries: Annotated[int | None, typer.Option(help="Re-runs after a failure.")] = None,
    preemptible: Annotated[
        bool | None,
        typer.Option(
            "--preemptible/--not-preemptible", help="May be preempted to give back borrowed quota."
        ),
    ] = None,
    grace: Annotated[
        float | None, typer.Option(help="Seconds between SIGTERM and SIGKILL.")
    ] = None,
    inputs: Annotated[
        list[str] | None, typer.Option("--input", "-i", help="Dataset version name@version.")
    ] = None,
    pool: Annotated[str | None, typer.Option(help="Run on this pool only.")] = None,
    env: Annotated[
        list[str] | None, typer.Option("--env", "-e", help="NAME=VALUE for the command.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="The run's name.")] = None,
    follow: Annotated[
        bool, typer.Option("--follow", help="Stream its output until it ends.")
    ] = False,
    output: Output = OUTPUT,
) -> None:
    """Queue a command (after ``--``) or a YAML spec. Prints the job id; ``--follow`` streams."""
    import os

    import yaml

    from luminary.compute import JobSpec
    from luminary.compute.jobs import submit_spec
    from luminary.errors import InvalidArgumentError

    data: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = yaml.safe_load(file.read_text())
        except (OSError, yaml.YAMLError) as exc:
            msg = f"job spec {str(file)!r} could not be read: {exc}"
            raise InvalidArgumentError(msg) from None
        if not isinstance(loaded, dict):
            msg = f"job spec {str(file)!r} is not a mapping of fields"
            raise InvalidArgumentError(msg)
        data.update(loaded)
    command = list(ctx.args)
    if command and command[0] == "--":
        command = command[1:]
    flags = {
        "project": project,
        "gpus": gpus,
        "gpu_memory": gpu_memory,
        "cpus": cpus,
        "memory": memory,
        "nodes": nodes,
        "priority": priority,
        "time_limit": time_limit,
        "retries": retries,
        "preemptible": preemptible,
        "grace": grace,
        "pool": pool,
        "name": name,
    }
    data.update({k: v for k, v in flags.items() if v is not None})
    if inputs:
        data["inputs"] = list(inputs)
    if env:
        pairs = {}
        for item in env:
            key, sep, value = item.partition("=")
            if not sep or not key:
                msg = f"--env {item!r} is not valid; give NAME=VALUE"
                raise InvalidArgumentError(msg)
            pairs[key] = value
        data["env"] = {**data.get("env", {}), **pairs}
    if command:
        data["command"] = command
    if "command" not in data and "function" not in data:
        msg = "give the command after --, e.g. luminary jobs submit --gpus 0.5 -- python train.py"
        raise InvalidArgumentError(msg)
    data.setdefault("project", os.environ.get("LUMINARY_PROJECT") or "default")
    data.setdefault("workdir", os.getcwd())
    handle = submit_spec(JobSpec.from_dict(data))
    job = handle.job
    if output is Output.json:
        emit_json(job_dict(job))
    else:
        out.print(
            f"submitted job [bold]{job.id}[/] (run {job.run_id}) to project {job.project}: "
            f"{escape(job.spec.resources.describe())}"
        )
    if follow:
        _follow(handle)


def _follow(handle: Any) -> None:
    for text in handle.logs(follow=True):
        sys.stdout.write(text)
        sys.stdout.flush()
    job = handle.refresh()
    out.print(f"job {job.id} {_state(job.state.value)}: {escape(job.reason)}", highlight=False)
    if job.state.value != "succeeded":
        raise typer.Exit(1)


@app.command("list")
def list_jobs(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    state: Annotated[
        list[str] | None, typer.Option("--state", "-s", help="queued, running, failed, …")
    ] = None,
    pool: Annotated[str | None, typer.Option()] = None,
    limit: Annotated[int, typer.Option(min=1, max=100_000)] = 50,
    output: Output = OUTPUT,
) -> None:
    """Jobs, newest first."""
    import luminary as lm
    from luminary.compute import JobState

    store = lm.get_store()
    states = None if not state else [JobState(s) for s in state]
    jobs = store.list_jobs(project, states, pool=pool, limit=limit)
    if output is Output.json:
        emit_json([job_dict(j) for j in jobs])
        return
    table = new_table()
    for col in ("job", "state", "project", "name", "resources", "pool", "elapsed", "reason"):
        table.add_column(col)
    for j in jobs:
        table.add_row(
            j.id,
            _state(j.state.value),
            j.project,
            escape(j.spec.label()[:40]),
            escape(j.spec.resources.describe() + (f" x{j.spec.nodes}" if j.spec.nodes > 1 else "")),
            j.pool or "",
            _elapsed(j),
            escape(j.reason[:60]),
        )
    out.print(table if jobs else "no jobs yet; luminary jobs submit -- COMMAND queues one")


@app.command("get")
def get(
    job: Annotated[str, typer.Argument(help="Job id (or a unique prefix, or its run id).")],
    output: Output = OUTPUT,
) -> None:
    """One job: its spec, state, placement and how it ended."""
    import luminary as lm

    found = lm.get_store().get_job(job)
    data = job_dict(found)
    if output is Output.json:
        emit_json(data)
        return
    table = new_table(title=f"job {found.id}", show_header=False)
    table.add_column("", style="bold")
    table.add_column("")
    for key in (
        "run_id",
        "project",
        "name",
        "state",
        "user",
        "attempt",
        "pool",
        "submitted",
        "started",
        "ended",
        "exit_code",
        "reason",
    ):
        value = data[key]
        table.add_row(key, _state(value) if key == "state" else escape(str(value or "")))
    table.add_row("resources", escape(found.spec.resources.describe()))
    if found.placement:
        where = "; ".join(
            f"{p.node}: GPUs {', '.join(f'{i}({f:g})' for i, f in p.devices) or '-'}"
            for p in found.placement
        )
        table.add_row("placement", escape(where))
    table.add_row("command", escape(" ".join(found.spec.command) or "python function"))
    out.print(table)


@app.command("logs")
def logs(
    job: Annotated[str, typer.Argument(help="Job id.")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Until the job ends.")] = False,
) -> None:
    """The job's output (stdout and stderr as written); ``-f`` follows it live."""
    from luminary.compute.jobs import get as get_job

    handle = get_job(job)
    for text in handle.logs(follow=follow):
        sys.stdout.write(text)
        sys.stdout.flush()


@app.command("cancel")
def cancel(
    jobs: Annotated[list[str], typer.Argument(help="Job ids.")],
    reason: Annotated[str, typer.Option(help="Recorded with the job.")] = "cancelled by the user",
) -> None:
    """Cancel queued jobs; stop running ones (SIGTERM, then SIGKILL after their grace)."""
    from luminary.compute.jobs import get as get_job

    for job_id in jobs:
        job = get_job(job_id).cancel(reason)
        note = "stopping" if job.state.active else job.state.value
        out.print(f"job {job.id}: {_state(note)}")


@app.command("why")
def why(job: Annotated[str, typer.Argument(help="Job id.")], output: Output = OUTPUT) -> None:
    """Why a job waits: its project's share, jobs ahead of it, when room frees up."""
    import luminary as lm

    lines = lm.get_store().explain_job(job)
    if output is Output.json:
        emit_json(lines)
        return
    for line in lines:
        out.print(f"- {escape(line)}")


@app.command("shares")
def shares(output: Output = OUTPUT) -> None:
    """Each project's weight, entitled share, decayed usage and what it holds now."""
    import luminary as lm

    rows = lm.get_store().compute_shares()
    if output is Output.json:
        emit_json([_asdict(s) for s in rows])
        return
    out.print(shares_table(rows) if rows else "no projects use the queue yet")


def _asdict(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(value)


def shares_table(rows: Any) -> Any:
    table = new_table(title="fair share")
    for col in (
        "project",
        "weight",
        "share",
        "usage GPU-h",
        "GPUs",
        "CPUs",
        "quota GPUs",
        "borrowed",
        "queued",
        "cohort",
    ):
        table.add_column(col, justify="left" if col in ("project", "cohort") else "right")
    for s in rows:
        table.add_row(
            s.project,
            f"{s.weight:g}",
            f"{s.entitled:.0%}",
            f"{s.usage_gpu_h:.2f}",
            f"{s.gpus_in_use:g}",
            f"{s.cpus_in_use:g}",
            f"{s.nominal_gpus:g}",
            f"{s.borrowed_gpus:g}",
            str(s.queued),
            s.cohort or "",
        )
    return table
