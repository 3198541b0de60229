"""The main job behind ``luminary demo``: generate jets, train a DeepSets tagger, track it all.

Every stage shows progress; the run records params, per-step and per-epoch metrics, the
trained weights, the confusion matrix and the environment. The job ends with a summary and
where everything is stored.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from luminary.tracking.models import ParamValue

if TYPE_CHECKING:
    from luminary.demo._deepsets import TrainResult
    from luminary.demo._jets import JetSample
    from luminary.demo._serve import ServeResult

__all__ = ["DemoConfig", "DemoResult", "run_demo"]


@dataclass(frozen=True)
class DemoConfig:
    project: str = "cms-btag-demo"
    dataset: str = "demo-jets"
    model: str = "deepsets-jet-tagger"
    n_jets: int = 20_000
    max_constituents: int = 30
    hidden: tuple[int, ...] = (16, 32, 64)  # one child run per width
    epochs: int = 8
    batch_size: int = 256
    lr: float = 1e-2
    seed: int = 0
    serve: bool = True  # end by serving the production model and loading it over gRPC
    serve_seconds: float = 2.0


@dataclass(frozen=True)
class DemoResult:
    run_id: str  # the parent (scan) run
    best_run_id: str
    dataset: str  # name@version
    model: str  # name@version, aliased production
    val_accuracy: float
    val_auc: float
    points_logged: int
    elapsed_s: float
    serving: ServeResult | None = None


def run_demo(config: DemoConfig | None = None, console: Console | None = None) -> DemoResult:
    import luminary as lm
    from luminary import datasets
    from luminary.demo._jets import CLASSES, FEATURES, make_jets, train_test_split
    from luminary.demo._rootio import read_jets_root, write_jets_root
    from luminary.demo._scan import run_scan

    cfg = config or DemoConfig()
    con = console or Console()
    t0 = time.perf_counter()
    store = lm.get_store()
    con.rule("[bold]Luminary demo: a DeepSets jet tagger on synthetic jets")

    # 1. Data: a ROOT file, added as a dataset version (content-hashed, schema read).
    with (
        tempfile.TemporaryDirectory() as tmp,
        con.status(f"generating {cfg.n_jets:,} jets and writing them to a ROOT file…"),
    ):
        jets = make_jets(cfg.n_jets, max_constituents=cfg.max_constituents, seed=cfg.seed)
        root_file = write_jets_root(jets, Path(tmp) / "jets.root")
        stats = datasets.add(
            cfg.dataset,
            [root_file],
            project=cfg.project,
            message=f"{cfg.n_jets} synthetic jets, seed {cfg.seed}",
        )
    data = stats.version
    table_info = datasets.schemas(data)["jets.root"]["tables"][0]
    con.print(
        f"[green]✓[/] dataset [bold]{data.ref}[/]: TTree '{table_info['name']}' with "
        f"{table_info['entries']:,} jets, {len(table_info['columns'])} branches "
        f"({', '.join(CLASSES)}; {len(FEATURES)} features per constituent), ZSTD, "
        f"blake3 {data.manifest_digest[:12]}…"
    )

    # 2. Read it back from the store, as training code would.
    reader = datasets.open(data.ref, record=False)
    train_set, val_set = train_test_split(
        read_jets_root(reader.sources, max_constituents=cfg.max_constituents),
        test_fraction=0.2,
        seed=cfg.seed,
    )

    # 3. A width scan: one parent run; one job per width, each a child run recording the data.
    shared: dict[str, ParamValue] = {
        "model": "deepsets",
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "lr": cfg.lr,
        "seed": cfg.seed,
        "n_train": len(train_set),
        "n_val": len(val_set),
        "max_constituents": cfg.max_constituents,
        "features": list(FEATURES),
        "classes": list(CLASSES),
    }
    results: list[tuple[str, int, TrainResult, Any]] = []
    points = 0
    with lm.start_run(
        project=cfg.project,
        name="deepsets-width-scan",
        params=shared | {"scan.hidden": list(cfg.hidden)},
        tags={"task": "jet-tagging", "data": data.ref, "kind": "scan"},
    ) as parent:
        parent.use_dataset(data.ref)
        con.print(f"[green]✓[/] scan run [bold]{parent.name}[/] ({parent.id}) in {cfg.project}")
        for run_id, hidden, result, model, n_points in run_scan(
            cfg, shared, data.ref, parent.id, con
        ):
            results.append((run_id, hidden, result, model))
            points += n_points
        best = max(results, key=lambda r: r[2].val_auc)
        parent.log({"best_val_auc": best[2].val_auc, "best_val_accuracy": best[2].val_accuracy})
        parent.set_tags({"best_run": best[0]})
        parent.flush()
        points += parent.points_written

    # 4. The best model as ONNX, checked against NumPy, registered and put in production.
    registered, max_diff = _register_best(cfg, best[0], best[3], val_set, con)
    _report(con, cfg, results, best, points, parent.id, store, data.ref, registered, max_diff)

    # 5. Inference as a service: the production model served, driven over gRPC.
    serving = None
    if cfg.serve:
        from luminary.demo._serve import serve_demo

        serving = serve_demo(
            f"{cfg.model}@production",
            val_set,
            con,
            project=cfg.project,
            seconds=cfg.serve_seconds,
        )

    # 6. What it used and what it cost: energy per run with its source, then the price sheet.
    _energy_and_cost(con, cfg, results, parent.id)
    elapsed = time.perf_counter() - t0
    con.print(f"[dim]demo finished in {elapsed:.1f} s[/]")
    return DemoResult(
        parent.id,
        best[0],
        data.ref,
        registered,
        best[2].val_accuracy,
        best[2].val_auc,
        points,
        elapsed,
        serving,
    )


def _register_best(
    cfg: DemoConfig, run_id: str, model: Any, val_set: JetSample, con: Console
) -> tuple[str, float | None]:
    from luminary import registry
    from luminary.demo._jets import CLASSES, FEATURES
    from luminary.demo._onnx import export_onnx

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(
            model, Path(tmp) / "deepsets.onnx", classes=list(CLASSES), features=list(FEATURES)
        )
        max_diff = _onnx_agreement(path, model, val_set)
        version = registry.register_model(
            cfg.model,
            path,
            run=run_id,
            project=cfg.project,
            alias="production",
            description="DeepSets jet tagger (light, gluon, charm, bottom, tau)",
        )
    check = f", ONNX Runtime agrees with NumPy to {max_diff:.1e}" if max_diff is not None else ""
    con.print(
        f"[green]✓[/] registered [bold]{version.ref}[/] (ONNX) as "
        f"[bold]{cfg.model}@production[/]{check}"
    )
    return version.ref, max_diff


def _onnx_agreement(path: Path, model: Any, sample: JetSample) -> float | None:
    """Largest |probability difference| between ONNX Runtime and NumPy on 512 jets."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    import numpy as np

    n = min(512, len(sample))
    x, mask = sample.constituents[:n], sample.mask[:n]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (probs, *_) = session.run(None, {"constituents": x, "mask": mask.astype(np.float32)})
    return float(np.abs(probs - model.predict_proba(x, mask)).max())


def _report(
    con: Console,
    cfg: DemoConfig,
    results: list[tuple[str, int, TrainResult, Any]],
    best: tuple[str, int, TrainResult, Any],
    points: int,
    parent_id: str,
    store: object,
    data_ref: str,
    model_ref: str,
    max_diff: float | None,
) -> None:
    import numpy as np

    from luminary.demo._jets import CLASSES

    scan = Table(title="width scan (validation set)", title_justify="left")
    for col in ("run", "hidden", "parameters", "accuracy", "AUC", "train time"):
        scan.add_column(col, justify="left" if col == "run" else "right")
    for run_id, hidden, res, model in results:
        n_params = model.n_parameters
        style = "bold green" if run_id == best[0] else ""
        scan.add_row(
            run_id,
            str(hidden),
            f"{n_params:,}",
            f"{res.val_accuracy:.3f}",
            f"{res.val_auc:.4f}",
            f"{res.elapsed_s:.1f} s",
            style=style,
        )
    con.print(scan)

    res = best[2]
    efficiency = np.diag(res.confusion) / np.maximum(res.confusion.sum(axis=1), 1)
    table = Table(title=f"best: hidden={best[1]}", title_justify="left", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("validation accuracy", f"{res.val_accuracy:.3f}")
    table.add_row("validation AUC (one-vs-rest, macro)", f"{res.val_auc:.4f}")
    for name, eff in zip(CLASSES, efficiency, strict=True):
        table.add_row(f"  {name} jets correctly tagged", f"{eff:.3f}")
    table.add_row("metric points logged (all runs)", f"{points:,}")
    con.print(table)

    where = Table(title="where everything is stored", title_justify="left", show_header=False)
    where.add_column(style="bold")
    where.add_column()
    where.add_row("data", f"{data_ref} (ROOT, copy mode)")
    where.add_row("runs", f"scan {parent_id}, best {best[0]} (project {cfg.project})")
    where.add_row("model", f"{model_ref} = {cfg.model}@production (ONNX)")
    where.add_row("metadata", _describe_db(store))
    where.add_row(
        "artifacts",
        f"{getattr(store, 'blobs', None) and store.blobs.url}"  # type: ignore[attr-defined]
        " (content-addressed by BLAKE3)",
    )
    con.print(where)
    from luminary.cli.lineage import lineage_tree
    from luminary.lineage import lineage

    con.print("[bold]lineage of the production model[/]")
    con.print(lineage_tree(lineage(f"{cfg.model}@production")))
    others = [r[0] for r in results if r[0] != best[0]]
    con.print(
        "next: "
        f"[cyan]luminary lineage {cfg.model}@production[/] · "
        f"[cyan]luminary datasets get {data_ref}[/] · "
        f"[cyan]luminary runs list -p {cfg.project}[/] · "
        f"[cyan]luminary runs get {best[0]}[/] · "
        f"[cyan]luminary runs metrics {best[0]} val_auc[/] · "
        + (f"[cyan]luminary runs compare {best[0]} {others[0]}[/] · " if others else "")
        + f"[cyan]luminary artifacts get {best[0]} model[/] · "
        + f"[cyan]luminary serve {cfg.model}@production[/]"
    )


def _energy_and_cost(
    con: Console, cfg: DemoConfig, results: list[tuple[str, int, TrainResult, Any]], scan: str
) -> None:
    import luminary as lm
    from luminary.cli.cost import print_report
    from luminary.costs import cost_report

    table = Table(title="energy recorded with each run", title_justify="left")
    for col in ("run", "joules", "CPU s", "source"):
        table.add_column(col, justify="left" if col in ("run", "source") else "right")
    for run_id in [scan, *(r[0] for r in results)]:
        run = lm.get_run(run_id)
        joules = run.metrics.get("energy/total_joules")
        sources = sorted({v for k, v in run.tags.items() if k.endswith(".source")})
        table.add_row(
            f"{run.name} ({run.id})",
            "-" if joules is None else f"{joules:,.1f}",
            f"{run.metrics.get('resources/cpu_seconds', 0.0):.1f}",
            ", ".join(sources) or "not measured",
        )
    con.print(table)
    print_report(cost_report(model=f"{cfg.model}@production"), con)


def _describe_db(store: object) -> str:
    engine = getattr(store, "engine", None)
    if engine is None:
        return repr(store)
    return str(engine.url.render_as_string(hide_password=True))
