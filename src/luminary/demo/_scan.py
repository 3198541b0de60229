"""The demo's hyperparameter search as jobs: a small Optuna study on Luminary's storage, each
trial a job on the local pool and a child run of the study, with its own logs, energy and
CPU-hours.

Each trial (:func:`train_trial`) reads the dataset version from the store (as a job on another
machine would), trains with the width and learning rate the sampler (TPE) proposes, reports
the validation AUC after every epoch so that the median pruner can stop a poor trial early
(its job ends and its slot goes to the next trial), logs per-step and per-epoch metrics into
the trial's run, and saves the model as an artifact of that run.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from luminary.tracking.models import ParamValue

if TYPE_CHECKING:
    import optuna

__all__ = ["run_study", "train_trial"]

_STYLE = {
    "running": "cyan",
    "complete": "green",
    "pruned": "magenta",
    "fail": "red",
    "waiting": "yellow",
}


def train_trial(
    trial: Any,
    data_ref: str,
    hidden_choices: tuple[int, ...],
    shared: dict[str, ParamValue],
    epochs: int,
    batch_size: int,
    seed: int,
    max_constituents: int,
) -> float:
    """One trial, run inside its job: train the width and learning rate the sampler proposes,
    report the validation AUC per epoch (pruning stops a poor trial), return the last AUC."""
    import optuna

    import luminary as lm
    from luminary import datasets
    from luminary.demo._deepsets import DeepSets, train
    from luminary.demo._jets import CLASSES, FEATURES, train_test_split
    from luminary.demo._rootio import read_jets_root

    hidden = trial.suggest_categorical("hidden", list(hidden_choices))
    lr = trial.suggest_float("lr", 3e-3, 3e-2, log=True)
    reader = datasets.open(data_ref, record=False)
    train_set, val_set = train_test_split(
        read_jets_root(reader.sources, max_constituents=max_constituents),
        test_fraction=0.2,
        seed=seed,
    )
    model = DeepSets.init(len(FEATURES), len(CLASSES), hidden, seed=seed)
    run = lm.active_run()  # the trial's run (lm.tune makes it active around the objective)
    assert run is not None
    run.log_params(shared | {"n_parameters": model.n_parameters})
    run.use_dataset(data_ref)

    def on_step(step: int, m: dict[str, float]) -> None:
        run.log({"train/loss": m["loss"], "train/accuracy": m["accuracy"]}, step=step)

    def on_epoch(epoch: int, m: dict[str, float]) -> None:
        run.log(m, step=epoch)
        print(f"epoch {epoch + 1}/{epochs}: val AUC {m['val_auc']:.4f}", flush=True)
        trial.report(m["val_auc"], epoch)
        if trial.should_prune():
            raise optuna.TrialPruned

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
        config = shared | {"hidden": hidden, "lr": lr, "n_parameters": model.n_parameters}
        (folder / "config.json").write_text(json.dumps(config, indent=2))
        confusion = {
            "classes": list(CLASSES),
            "rows_true_cols_predicted": result.confusion.tolist(),
        }
        (folder / "confusion.json").write_text(json.dumps(confusion, indent=2))
        run.log_artifact(folder, "model")
    run.log({"train_seconds": result.elapsed_s})
    run.flush()
    return float(result.val_auc)


def run_study(cfg: Any, shared: dict[str, ParamValue], data_ref: str, con: Console) -> Any:
    """Run the demo's study as jobs, showing its trials as they go; returns the study."""
    import optuna

    import luminary as lm

    store = lm.get_store()
    had_agents = {a.id for a in store.list_agents()}
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = functools.partial(
        train_trial,
        data_ref=data_ref,
        hidden_choices=tuple(cfg.hidden),
        shared=shared,
        epochs=cfg.epochs,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        max_constituents=cfg.max_constituents,
    )
    study = optuna.create_study(
        study_name=cfg.study,
        storage=lm.tune.storage(cfg.project),
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=3),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1),
        load_if_exists=True,
    )
    con.print(
        f"[green]✓[/] study [bold]{cfg.study}[/] (TPE sampler, median pruner): {cfg.trials} "
        f"trials as jobs, {cfg.parallel} at a time, 1 CPU each; each trial is a child run"
    )
    import threading

    done = threading.Event()
    box: dict[str, Any] = {}

    def drive() -> None:
        try:
            box["study"] = lm.tune.optimize(
                objective,
                cfg.trials,
                study=study,
                project=cfg.project,
                parallel=cfg.parallel,
                cpus=1,
                time_limit="10m",
                progress=False,
            )
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
        finally:
            done.set()

    driver = threading.Thread(target=drive, name="demo-study", daemon=True)
    driver.start()
    with Live(_table(study, store), console=con, refresh_per_second=8, transient=False) as live:
        while not done.wait(0.2):
            live.update(_table(study, store))
        live.update(_table(study, store))
    con.print()
    driver.join()
    if "error" in box:
        raise box["error"]
    _stop_started_agents(store, had_agents)
    return box["study"]


def _table(study: optuna.Study, store: Any) -> Table:
    table = Table(title="the study's trials, each a job", title_justify="left")
    for col in ("trial", "run", "hidden", "lr", "state", "val AUC by epoch"):
        table.add_column(col, justify="right" if col in ("trial", "hidden", "lr") else "left")
    for t in study.get_trials(deepcopy=False):
        state = t.state.name.lower()
        curve = " ".join(f"{v:.3f}" for _, v in sorted(t.intermediate_values.items()))
        table.add_row(
            str(t.number),
            store.get_trial(t._trial_id).run_id,
            str(t.params.get("hidden", "")),
            f"{t.params['lr']:.4f}" if "lr" in t.params else "",
            f"[{_STYLE.get(state, 'white')}]{state}[/]",
            curve,
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
