"""The main job behind ``luminary demo``: generate jets, train a DeepSets tagger, track it all.

Every stage shows progress; the run records params, per-step and per-epoch metrics, the
trained weights, the confusion matrix and the environment. The job ends with a summary and
where everything is stored.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from luminary.store.models import ParamValue

__all__ = ["DemoConfig", "DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    project: str = "cms-btag-demo"
    n_jets: int = 20_000
    max_constituents: int = 30
    hidden: int = 32
    epochs: int = 6
    batch_size: int = 256
    lr: float = 1e-2
    seed: int = 0


@dataclass(frozen=True)
class DemoResult:
    run_id: str
    val_accuracy: float
    val_auc: float
    points_logged: int
    elapsed_s: float


def run_demo(config: DemoConfig | None = None, console: Console | None = None) -> DemoResult:
    import numpy as np

    import luminary as lm
    from luminary.demo._deepsets import DeepSets, train
    from luminary.demo._jets import CLASSES, FEATURES, make_jets, train_test_split

    cfg = config or DemoConfig()
    con = console or Console()
    t0 = time.perf_counter()
    store = lm.get_store()
    con.rule("[bold]Luminary demo: a DeepSets jet tagger on synthetic jets")

    with con.status(
        f"generating {cfg.n_jets:,} jets with up to {cfg.max_constituents} constituents…"
    ):
        jets = make_jets(cfg.n_jets, max_constituents=cfg.max_constituents, seed=cfg.seed)
        train_set, val_set = train_test_split(jets, test_fraction=0.2, seed=cfg.seed)
    con.print(
        f"[green]✓[/] {len(jets):,} jets ({', '.join(CLASSES)}), "
        f"{float(jets.mask.sum(axis=1).mean()):.1f} constituents per jet on average, "
        f"{len(FEATURES)} features each"
    )

    model = DeepSets.init(len(FEATURES), len(CLASSES), cfg.hidden, seed=cfg.seed)
    params: dict[str, ParamValue] = {
        "model": "deepsets",
        "hidden": cfg.hidden,
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "n_train": len(train_set),
        "n_val": len(val_set),
        "max_constituents": cfg.max_constituents,
        "features": list(FEATURES),
        "classes": list(CLASSES),
        "n_parameters": model.n_parameters,
    }
    steps_per_epoch = -(-len(train_set) // cfg.batch_size)
    with lm.start_run(
        project=cfg.project, params=params, tags={"task": "jet-tagging", "data": "synthetic"}
    ) as run:
        con.print(f"[green]✓[/] run [bold]{run.name}[/] ({run.id}) in project {run.project}")
        progress = Progress(
            TextColumn("[bold]training[/] epoch {task.fields[epoch]}/{task.fields[epochs]}"),
            BarColumn(),
            TextColumn("loss {task.fields[loss]:.3f}  val AUC {task.fields[auc]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=con,
        )
        with progress:
            task = progress.add_task(
                "train",
                total=cfg.epochs * steps_per_epoch,
                epoch=1,
                epochs=cfg.epochs,
                loss=float("nan"),
                auc="-",
            )

            def on_step(step: int, m: dict[str, float]) -> None:
                run.log({"train/loss": m["loss"], "train/accuracy": m["accuracy"]}, step=step)
                progress.update(task, advance=1, loss=m["loss"])

            def on_epoch(epoch: int, m: dict[str, float]) -> None:
                run.log(m, step=epoch)
                progress.update(task, epoch=min(epoch + 2, cfg.epochs), auc=f"{m['val_auc']:.4f}")

            result = train(
                model,
                train_set,
                val_set,
                epochs=cfg.epochs,
                batch_size=cfg.batch_size,
                lr=cfg.lr,
                seed=cfg.seed,
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
    elapsed = time.perf_counter() - t0

    efficiency = np.diag(result.confusion) / np.maximum(result.confusion.sum(axis=1), 1)
    table = Table(title="result", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("validation accuracy", f"{result.val_accuracy:.3f}")
    table.add_row("validation AUC (one-vs-rest, macro)", f"{result.val_auc:.4f}")
    for name, eff in zip(CLASSES, efficiency, strict=True):
        table.add_row(f"  {name} jets correctly tagged", f"{eff:.3f}")
    table.add_row("training time", f"{result.elapsed_s:.1f} s")
    table.add_row("metric points logged", f"{points:,}")
    table.add_row("trainable parameters", f"{model.n_parameters:,}")
    con.print(table)

    where = Table(title="where everything is stored", title_justify="left", show_header=False)
    where.add_column(style="bold")
    where.add_column()
    where.add_row("run", f"{run.id} (project {cfg.project})")
    where.add_row("metadata", _describe_db(store))
    where.add_row("artifacts", f"{store.blobs.url} (content-addressed by BLAKE3)")
    con.print(where)
    con.print(
        "next: "
        f"[cyan]luminary runs get {run.id}[/] · "
        f"[cyan]luminary runs metrics {run.id} val_auc[/] · "
        f"[cyan]luminary runs list -p {cfg.project}[/] · "
        f"[cyan]luminary artifacts get {run.id} model[/]"
    )
    con.print(f"[dim]demo finished in {elapsed:.1f} s[/]")
    return DemoResult(run.id, result.val_accuracy, result.val_auc, points, elapsed)


def _describe_db(store: object) -> str:
    engine = getattr(store, "engine", None)
    if engine is None:
        return repr(store)
    return str(engine.url.render_as_string(hide_password=True))
