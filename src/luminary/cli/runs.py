"""``luminary runs list|get|compare|delete|metrics``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from luminary.cli._output import (
    OUTPUT,
    Output,
    emit_json,
    err,
    fmt_duration,
    fmt_time,
    fmt_value,
    new_table,
    out,
    sparkline,
    status_text,
)
from luminary.errors import InvalidArgumentError
from luminary.tracking.models import Run, json_float

app = typer.Typer(help="Look at, compare and delete runs.")

PROJECT = typer.Option("--project", "-p", help="Project name (default: all projects).")


@app.command("list")
def list_runs(
    project: Annotated[str | None, PROJECT] = None,
    filter: Annotated[
        str | None,
        typer.Option("--filter", "-f", help='e.g. "params.lr < 0.01 and metrics.val_auc > 0.9"'),
    ] = None,
    order_by: Annotated[
        str | None, typer.Option("--order-by", help='e.g. "metrics.val_auc desc"')
    ] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=0)] = 50,
    columns: Annotated[
        str | None,
        typer.Option("--columns", "-c", help="Comma-separated, e.g. params.lr,metrics.val_auc"),
    ] = None,
    output: Output = OUTPUT,
) -> None:
    """List runs, newest first, filtered and ordered like the SDK's search_runs."""
    import luminary as lm

    runs = lm.search_runs(project, filter=filter, order_by=order_by, limit=limit)
    if output is Output.json:
        emit_json([r.to_dict() for r in runs])
        return
    if not runs:
        out.print("no runs match" if filter else "no runs yet; `luminary demo` makes one")
        return
    cols = _columns(runs, columns)
    table = new_table()
    heads = ["id", "name", "status", "started", "duration"]
    if project is None:
        heads.insert(2, "project")
    for head in heads:
        table.add_column(head, no_wrap=True, min_width=len(head))
    for kind, key in cols:
        table.add_column(f"{kind}.{key}", justify="right", min_width=min(len(key) + 7, 18))
    for r in runs:
        cells = [
            r.id,
            r.name,
            status_text(r.status.value),
            fmt_time(r.start_time)[5:16],
            fmt_duration(r.duration_s),
        ]
        if project is None:
            cells.insert(2, r.project)
        for kind, key in cols:
            source: Any = (
                r.params if kind == "params" else r.metrics if kind == "metrics" else r.tags
            )
            cells.append(fmt_value(source[key]) if key in source else "")
        table.add_row(*cells)
    out.print(table)
    total = lm.get_store().count_runs(project, filter)
    if total > len(runs):
        out.print(f"[dim]{len(runs)} of {total} runs; use --limit to see more[/]")


def _columns(runs: list[Run], spec: str | None) -> list[tuple[str, str]]:
    if spec:
        cols = []
        for item in spec.split(","):
            kind, _, key = item.strip().partition(".")
            if kind not in ("params", "metrics", "tags") or not key:
                msg = (
                    f"column {item.strip()!r} is not valid; use params.KEY, metrics.KEY or "
                    "tags.KEY, comma-separated"
                )
                raise InvalidArgumentError(msg)
            cols.append((kind, key))
        return cols
    # Params that differ between the runs shown say most; epoch-level metrics before per-step.
    keys = sorted({k for r in runs for k, v in r.params.items() if not isinstance(v, (list, dict))})
    varying = [k for k in keys if len({fmt_value(r.params.get(k)) for r in runs}) > 1]
    params = (varying or keys)[:2]
    metric_keys = sorted(
        {k for r in runs for k in r.metrics}, key=lambda k: ("/" in k, not k.startswith("val"), k)
    )
    return [("params", k) for k in params] + [("metrics", k) for k in metric_keys[:3]]


@app.command("get")
def get(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    output: Output = OUTPUT,
) -> None:
    """Everything about one run: params, metrics, tags, environment, artifacts."""
    import luminary as lm

    store = lm.get_store()
    run = store.get_run(run_id)
    env = store.get_environment(run.id)
    artifacts = store.list_artifacts(run.id)
    if output is Output.json:
        data = run.to_dict()
        data["environment"] = env
        data["artifacts"] = [a.to_dict() for a in artifacts]
        emit_json(data)
        return
    head = new_table(title=f"run {run.id}", show_header=False)
    head.add_column(style="bold")
    head.add_column()
    rows = [
        ("name", run.name),
        ("project", run.project),
        ("status", status_text(run.status.value)),
        ("parent", run.parent_id or ""),
        ("started", fmt_time(run.start_time)),
        ("ended", fmt_time(run.end_time)),
        ("duration", fmt_duration(run.duration_s)),
    ]
    git = env.get("git") or {}
    if git:
        rows.append(
            (
                "code",
                f"{git.get('commit', '')[:12]}{' (dirty)' if git.get('dirty') else ''}"
                f" {git.get('branch') or ''}",
            )
        )
    if env:
        py = env.get("python", {}).get("version", "")
        rows.append(
            (
                "host",
                f"{env.get('host', '')} · Python {py} · "
                f"{env.get('cpu', {}).get('logical', '?')} CPUs · "
                f"{len(env.get('gpus', []))} GPUs",
            )
        )
        rows.append(("command", " ".join(env.get("command", []))))
    for key, value in rows:
        head.add_row(key, value)
    out.print(head)
    for title, mapping in (
        ("params", run.params),
        ("metrics (latest)", run.metrics),
        ("tags", run.tags),
    ):
        if mapping:
            table = new_table(title=title)
            table.add_column("key")
            table.add_column("value", justify="right")
            for mkey, mvalue in mapping.items():
                table.add_row(mkey, fmt_value(mvalue))
            out.print(table)
    if artifacts:
        table = new_table(title="artifacts")
        table.add_column("path")
        table.add_column("size", justify="right")
        table.add_column("blake3", style="dim")
        for a in artifacts:
            table.add_row(a.path, _size(a.size), a.digest[:16])
        out.print(table)


def _size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(n)


@app.command("compare")
def compare(
    run_ids: Annotated[list[str], typer.Argument(help="Two or more run ids.")],
    all_keys: Annotated[bool, typer.Option("--all", help="Show equal values too.")] = False,
    output: Output = OUTPUT,
) -> None:
    """Params and metrics of runs side by side; by default only what differs."""
    import luminary as lm

    if len(run_ids) < 2:
        msg = "compare needs at least two run ids"
        raise InvalidArgumentError(msg)
    runs = [lm.get_run(r) for r in run_ids]
    if output is Output.json:
        emit_json([r.to_dict() for r in runs])
        return
    table = new_table(title="compare")
    table.add_column("")
    for r in runs:
        table.add_column(f"{r.name}\n[dim]{r.id}[/]", justify="right")
    shown = 0
    for kind in ("params", "metrics"):
        keys = sorted({k for r in runs for k in getattr(r, kind)})
        for key in keys:
            values = [getattr(r, kind).get(key) for r in runs]
            same = len({fmt_value(v) for v in values}) == 1
            if same and not all_keys:
                continue
            cells = [
                fmt_value(v) if v is not None or key in getattr(r, kind) else "-"
                for v, r in zip(values, runs, strict=True)
            ]
            if kind == "metrics":
                cells = _mark_best(values, cells)
            table.add_row(f"{kind}.{key}", *cells)
            shown += 1
    out.print(table if shown else "the runs have the same params and metrics")


def _mark_best(values: list[Any], cells: list[str]) -> list[str]:
    finite = [v for v in values if isinstance(v, float) and math.isfinite(v)]
    if len(finite) < 2:
        return cells
    hi = max(finite)
    return [f"[bold]{c}[/]" if v == hi else c for v, c in zip(values, cells, strict=True)]


@app.command("delete")
def delete(
    run_ids: Annotated[list[str], typer.Argument(help="Run ids to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete runs with their params, metrics and artifact manifests."""
    import luminary as lm

    store = lm.get_store()
    runs = [store.get_run(r) for r in run_ids]
    if not yes:
        names = ", ".join(f"{r.name} ({r.id})" for r in runs)
        typer.confirm(f"delete {len(runs)} run(s): {names}?", abort=True, err=True)
    for r in runs:
        store.delete_run(r.id)
        err.print(f"deleted run {r.id} ({r.name})")


@app.command("metrics")
def metrics(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    key: Annotated[str, typer.Argument(help="Metric key, e.g. val_auc.")],
    tail: Annotated[int, typer.Option("--tail", "-n", min=0, help="Rows to show (0: all).")] = 20,
    output: Output = OUTPUT,
) -> None:
    """Every point of one metric: a summary, a sparkline and the last rows."""
    import luminary as lm

    history = lm.get_metric_history(run_id, key)
    if output is Output.json:
        emit_json(history.to_dict())
        return
    values = history.values
    finite = [v for v in values if math.isfinite(v)]
    nan = sum(1 for v in values if math.isnan(v))
    summary = (
        f"[bold]{key}[/] of run {history.run_id}: {len(values)} points"
        + (f", min {fmt_value(min(finite))}, max {fmt_value(max(finite))}" if finite else "")
        + (f", last {fmt_value(values[-1])}" if values else "")
        + (f", {nan} NaN" if nan else "")
    )
    out.print(summary)
    if len(values) > 1:
        out.print(f"[cyan]{sparkline(values)}[/]")
    table = new_table()
    table.add_column("step", justify="right")
    table.add_column("time")
    table.add_column("value", justify="right")
    start = 0 if tail == 0 else max(0, len(values) - tail)
    for s, t, v in zip(
        history.steps[start:], history.timestamps_ms[start:], values[start:], strict=True
    ):
        when = datetime.fromtimestamp(t / 1000, tz=UTC)
        table.add_row(
            str(s),
            fmt_time(when),
            fmt_value(json_float(v)) if not math.isfinite(v) else fmt_value(v),
        )
    out.print(table)
