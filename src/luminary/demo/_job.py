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
    hidden: tuple[int, ...] = (16, 32, 64)  # the widths the study chooses from
    study: str = "deepsets-tuning"
    trials: int = 6  # trials of the study, each a job and a child run
    parallel: int = 2
    epochs: int = 8
    batch_size: int = 256
    lr: float = 1e-2
    seed: int = 0
    serve: bool = True  # end by serving the production model and loading it over gRPC
    serve_seconds: float = 2.0


@dataclass(frozen=True)
class DemoResult:
    run_id: str  # the study's run (the trials' parent)
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
    from luminary.demo._scan import run_study

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

    # 3. A hyperparameter study: each trial a job and a child run of the study's run.
    shared: dict[str, ParamValue] = {
        "model": "deepsets",
        "epochs": cfg.epochs,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "n_train": len(train_set),
        "n_val": len(val_set),
        "max_constituents": cfg.max_constituents,
        "features": list(FEATURES),
        "classes": list(CLASSES),
    }
    study = run_study(cfg, shared, data.ref, con)
    results = _trial_rows(study, store)
    best_trial = lm.tune.best(study)
    best = next(r for r in results if r[0] == store.get_trial(best_trial._trial_id).run_id)
    study_run = store.get_study(cfg.project, cfg.study).run_id
    points = sum(_points(r[0]) for r in results)
    store.set_tags(study_run, {"best_run": best[0], "task": "jet-tagging", "data": data.ref})
    model = _load_model(best[0])

    # 4. The best model as ONNX, checked against NumPy, registered and put in production.
    registered, max_diff = _register_best(cfg, best[0], model, val_set, con)
    _report(con, cfg, results, best, points, study_run, store, data.ref, registered, max_diff)

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
    _energy_and_cost(con, cfg, results, study_run)
    elapsed = time.perf_counter() - t0
    con.print(f"[dim]demo finished in {elapsed:.1f} s[/]")
    return DemoResult(
        study_run,
        best[0],
        data.ref,
        registered,
        best[5],
        best[6],
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


#: One trial of the study as the demo reports it: run id, trial number, width, learning rate,
#: state, validation accuracy and AUC (last epoch), training seconds.
Row = tuple[str, int, Any, float, str, float, float, float]


def _trial_rows(study: Any, store: Any) -> list[Row]:
    import luminary as lm

    rows: list[Row] = []
    for t in study.get_trials(deepcopy=False):
        run_id = store.get_trial(t._trial_id).run_id
        m = lm.get_run(run_id).metrics
        rows.append(
            (
                run_id,
                t.number,
                t.params.get("hidden"),
                float(t.params.get("lr", float("nan"))),
                t.state.name.lower(),
                float(m.get("val_accuracy", float("nan"))),
                float(m.get("val_auc", float("nan"))),
                float(m.get("train_seconds", float("nan"))),
            )
        )
    return rows


def _points(run_id: str) -> int:
    import luminary as lm

    return sum(len(lm.get_metric_history(run_id, k)) for k in lm.get_run(run_id).metrics)


def _load_model(run_id: str) -> Any:
    import luminary as lm
    from luminary.demo._deepsets import DeepSets

    with tempfile.TemporaryDirectory() as tmp:
        (path,) = lm.download_artifacts(run_id, "model/deepsets.npz", dest=tmp)
        return DeepSets.load(path)


def _confusion(run_id: str) -> Any:
    import json

    import numpy as np

    import luminary as lm

    with tempfile.TemporaryDirectory() as tmp:
        (path,) = lm.download_artifacts(run_id, "model/confusion.json", dest=tmp)
        return np.array(json.loads(path.read_text())["rows_true_cols_predicted"])


def _report(
    con: Console,
    cfg: DemoConfig,
    results: list[Row],
    best: Row,
    points: int,
    study_run: str,
    store: object,
    data_ref: str,
    model_ref: str,
    max_diff: float | None,
) -> None:
    import numpy as np

    from luminary.demo._jets import CLASSES

    scan = Table(title=f"study {cfg.study} (validation set)", title_justify="left")
    for col in ("run", "trial", "hidden", "lr", "state", "accuracy", "AUC", "train time"):
        scan.add_column(col, justify="left" if col in ("run", "state") else "right")
    for run_id, number, hidden, lr, state, acc, auc, secs in results:
        style = "bold green" if run_id == best[0] else ""
        scan.add_row(
            run_id,
            str(number),
            str(hidden),
            f"{lr:.4f}",
            state,
            f"{acc:.3f}",
            f"{auc:.4f}",
            f"{secs:.1f} s" if secs == secs else "-",
            style=style,
        )
    con.print(scan)

    confusion = _confusion(best[0])
    efficiency = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    table = Table(
        title=f"best: trial {best[1]}, hidden={best[2]}, lr={best[3]:.4f}",
        title_justify="left",
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("validation accuracy", f"{best[5]:.3f}")
    table.add_row("validation AUC (one-vs-rest, macro)", f"{best[6]:.4f}")
    for name, eff in zip(CLASSES, efficiency, strict=True):
        table.add_row(f"  {name} jets correctly tagged", f"{eff:.3f}")
    table.add_row("metric points logged (all trials)", f"{points:,}")
    con.print(table)

    where = Table(title="where everything is stored", title_justify="left", show_header=False)
    where.add_column(style="bold")
    where.add_column()
    where.add_row("data", f"{data_ref} (ROOT, copy mode)")
    where.add_row("runs", f"study {study_run}, best trial {best[0]} (project {cfg.project})")
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
        f"[cyan]luminary tune show {cfg.study} -p {cfg.project}[/] · "
        f"[cyan]luminary runs list -p {cfg.project}[/] · "
        f"[cyan]luminary runs get {best[0]}[/] · "
        f"[cyan]luminary runs metrics {best[0]} val_auc[/] · "
        + (f"[cyan]luminary runs compare {best[0]} {others[0]}[/] · " if others else "")
        + f"[cyan]luminary artifacts get {best[0]} model[/] · "
        + f"[cyan]luminary serve {cfg.model}@production[/]"
    )


def _energy_and_cost(con: Console, cfg: DemoConfig, results: list[Row], scan: str) -> None:
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
