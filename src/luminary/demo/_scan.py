"""The demo's width scan as jobs: one job per width, queued on the local pool, each a child run
of the scan with its own logs, energy and CPU-hours.

Each job is a Python call (:func:`train_width`) that reads the dataset version from the store
(as a job on another machine would), trains, logs per-step and per-epoch metrics into its own
run (the job's run: ``lm.start_run`` inside a job resumes it), saves the model as an artifact
and returns what the demo reports. While they run, the demo shows the queue: state, place and
latest validation AUC of each job.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from luminary.tracking.models import ParamValue

if TYPE_CHECKING:
    from luminary.compute.jobs import JobHandle
    from luminary.demo._deepsets import DeepSets, TrainResult

__all__ = ["run_scan", "train_width"]

_STYLE = {
    "queued": "yellow",
    "starting": "cyan",
    "running": "cyan",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "magenta",
}


def train_width(
    data_ref: str,
    hidden: int,
    shared: dict[str, ParamValue],
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    max_constituents: int,
) -> tuple[TrainResult, DeepSets, int]:
    """One point of the scan, run inside a job: returns the result, the model and the number of
    metric points logged."""
    import luminary as lm
    from luminary import datasets
    from luminary.demo._deepsets import DeepSets, train
    from luminary.demo._jets import CLASSES, FEATURES, train_test_split
    from luminary.demo._rootio import read_jets_root

    reader = datasets.open(data_ref, record=False)
    train_set, val_set = train_test_split(
        read_jets_root(reader.sources, max_constituents=max_constituents),
        test_fraction=0.2,
        seed=seed,
    )
    model = DeepSets.init(len(FEATURES), len(CLASSES), hidden, seed=seed)
    params = shared | {"hidden": hidden, "n_parameters": model.n_parameters}
    with lm.start_run(params=params) as run:  # the job's own run
        run.use_dataset(data_ref)

        def on_step(step: int, m: dict[str, float]) -> None:
            run.log({"train/loss": m["loss"], "train/accuracy": m["accuracy"]}, step=step)

        def on_epoch(epoch: int, m: dict[str, float]) -> None:
            run.log(m, step=epoch)
            print(f"epoch {epoch + 1}/{epochs}: val AUC {m['val_auc']:.4f}", flush=True)

        result = train(
            model,
            train_set,
            val_set,
            epochs=epochs,
            batch_size=batch_size,
            lr=lr,
            seed=seed,
            on_step=on_step,
            on_epoch=on_epoch,
        )
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "model"
            folder.mkdir()
            model.save(folder / "deepsets.npz")
            (folder / "config.json").write_text(json.dumps(params, indent=2))
            confusion = {
                "classes": list(CLASSES),
                "rows_true_cols_predicted": result.confusion.tolist(),
            }
            (folder / "confusion.json").write_text(json.dumps(confusion, indent=2))
            run.log_artifact(folder, "model")
        run.flush()
        points = run.points_written
    return result, model, points


def run_scan(
    cfg: Any,
    shared: dict[str, ParamValue],
    data_ref: str,
    parent_id: str,
    con: Console,
) -> list[tuple[str, int, TrainResult, DeepSets, int]]:
    """Submit one job per width, show the queue until all end, return (run id, width, result,
    model, points) per width. A failed job stops the demo with its reason and log."""
    import luminary as lm

    store = lm.get_store()
    had_agents = {a.id for a in store.list_agents()}
    handles: list[tuple[int, JobHandle]] = []
    for hidden in cfg.hidden:
        handles.append(
            (
                hidden,
                lm.jobs.submit(
                    train_width,
                    data_ref,
                    hidden,
                    shared,
                    cfg.epochs,
                    cfg.batch_size,
                    cfg.lr,
                    cfg.seed,
                    cfg.max_constituents,
                    project=cfg.project,
                    cpus=1,
                    name=f"deepsets-h{hidden}",
                    parent_run=parent_id,
                    time_limit="10m",
                    tags={"task": "jet-tagging", "data": data_ref},
                ),
            )
        )
    pool = store.list_pools()
    con.print(
        f"[green]✓[/] {len(handles)} training jobs queued on pool "
        f"[bold]{handles[0][1].job.pool or (pool[0].name if pool else 'local')}[/] "
        "(1 CPU each; each job is a child run of the scan)"
    )
    with Live(_table(handles, store), console=con, refresh_per_second=8, transient=False) as live:
        while not all(h.refresh().state.done for _, h in handles):
            live.update(_table(handles, store))
            time.sleep(0.15)
        live.update(_table(handles, store))
    results = []
    for hidden, handle in handles:
        job = handle.job
        if job.state.value != "succeeded":
            log = "".join(handle.logs())[-2000:]
            msg = f"training job {job.id} (hidden={hidden}) {job.state.value}: {job.reason}\n{log}"
            raise RuntimeError(msg)
        result, model, points = handle.result()
        results.append((job.run_id, hidden, result, model, points))
    _stop_started_agents(store, had_agents)
    return results


def _table(handles: list[tuple[int, JobHandle]], store: Any) -> Table:
    table = Table(title="the scan as jobs", title_justify="left")
    for col in ("job", "hidden", "state", "where", "latest output"):
        table.add_column(col, justify="right" if col == "hidden" else "left")
    for hidden, handle in handles:
        job = handle.job
        chunks = store.read_job_logs(job.id) if job.state.value != "queued" else []
        lines = b"".join(c.data for c in chunks if c.stream == "stdout").decode().splitlines()
        where = ", ".join(p.node for p in job.placement) if job.placement else ""
        state = job.state.value
        table.add_row(
            job.id,
            str(hidden),
            f"[{_STYLE.get(state, 'white')}]{state}[/]",
            where,
            lines[-1] if lines else "",
        )
    return table


def _stop_started_agents(store: Any, before: set[str]) -> None:
    """End the on-demand agents this demo started (they would idle for minutes otherwise)."""
    import socket

    for agent in store.list_agents():
        if agent.id in before or agent.host != socket.gethostname():
            continue
        try:
            os.kill(agent.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            continue
