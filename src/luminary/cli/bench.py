"""``luminary bench serve``: closed-loop load on an inference server, beside direct inference."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer

from luminary.cli._output import OUTPUT, Output, emit_json, err, new_table, out

if TYPE_CHECKING:
    from luminary.bench import LoadResult

app = typer.Typer(
    help="Benchmarks: load on an inference server, compared with direct inference.",
    no_args_is_help=True,
)


class Protocol(StrEnum):
    grpc = "grpc"
    http = "http"


MODEL = typer.Argument(help="The model's name on the server.")
CONCURRENCY = typer.Option(
    "--concurrency", "-c", help="Requests kept in flight, one row per level: 1,8,32,128."
)
PROTOCOL = typer.Option("--protocol", help="grpc or http (KServe v2 binary tensors).")
URL = typer.Option(
    "--url",
    "-u",
    help="HOST:PORT of the server (default localhost:8001 for grpc, :8000 for http); "
    "'none' measures only --direct.",
)
BATCH = typer.Option("--batch-size", "-b", min=1, help="Events per request.")
DURATION = typer.Option("--duration", "-d", min=0.1, help="Seconds measured per row.")
WARMUP = typer.Option("--warmup", min=0.0, help="Seconds of load before each row's window.")
DIRECT = typer.Option(
    "--direct",
    help="Also run the model in-process with ONNX Runtime (one thread, one call at a time): "
    "an .onnx file or a registry reference NAME@ALIAS.",
)
SHAPE = typer.Option(
    "--shape",
    help="Dims per event of an input with free dims, NAME:d1,d2 (repeatable; free dims "
    "default to 1).",
)
METRICS_URL = typer.Option(
    "--metrics-url",
    help="The server's Prometheus metrics, for J/event (default: http://HOST:8002/metrics).",
)
PROCESSES = typer.Option(
    "--processes", "-P", min=1, help="Generator processes sharing the concurrency."
)


def _levels(text: str) -> list[int]:
    try:
        levels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        levels = []
    if not levels or min(levels) < 1:
        msg = f"{text!r} is not a list of whole numbers of 1 or more, e.g. 1,8,32,128"
        raise typer.BadParameter(msg, param_hint="--concurrency")
    return levels


def _shapes(items: list[str]) -> dict[str, list[int]]:
    shapes: dict[str, list[int]] = {}
    for item in items:
        name, _, dims = item.rpartition(":")
        try:
            values = [int(d) for d in dims.split(",")]
        except ValueError:
            values = []
        if not name or not values or min(values) < 1:
            msg = f"{item!r} is not NAME:d1,d2,… with dims of 1 or more, e.g. x:16"
            raise typer.BadParameter(msg, param_hint="--shape")
        shapes[name] = values
    return shapes


@contextmanager
def _progress(total: float) -> Iterator[Callable[[str, float], Callable[[float], None]]]:
    """A Rich bar over all rows on stderr; yields ``row(label, base)`` → a row's callback."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    columns: list[Any] = [
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task("starting", total=total)

        def row(label: str, base: float) -> Callable[[float], None]:
            progress.update(task, description=label, completed=base)

            def update(elapsed: float) -> None:
                progress.update(task, completed=base + elapsed)

            return update

        yield row


@app.command("serve")
def serve(
    model: Annotated[str, MODEL],
    concurrency: Annotated[str, CONCURRENCY] = "1,8,32,128",
    protocol: Annotated[Protocol, PROTOCOL] = Protocol.grpc,
    url: Annotated[str | None, URL] = None,
    batch_size: Annotated[int, BATCH] = 1,
    duration: Annotated[float, DURATION] = 5.0,
    warmup: Annotated[float, WARMUP] = 1.0,
    direct: Annotated[str | None, DIRECT] = None,
    shape: Annotated[list[str] | None, SHAPE] = None,
    processes: Annotated[int, PROCESSES] = 1,
    metrics_url: Annotated[str | None, METRICS_URL] = None,
    output: Output = OUTPUT,
) -> None:
    """Drive a running `luminary serve` (or Triton) with random inputs at each concurrency:
    events/s, latency percentiles, errors and the batches the server formed."""
    from luminary.bench import probe, run_direct, run_load

    levels = _levels(concurrency)
    shapes = _shapes(shape or [])
    server = (url or "").strip().lower() != "none"
    if not server and direct is None:
        msg = "--url none leaves nothing to measure; add --direct PATH_OR_REF"
        raise typer.BadParameter(msg, param_hint="--url")
    if server:
        probe(url, model, protocol.value)  # a clear error before anything runs
    step = warmup + duration
    total = step * ((len(levels) if server else 0) + (1 if direct is not None else 0))
    rows: list[LoadResult] = []
    with _progress(total) as row:
        base = 0.0
        if direct is not None:
            rows.append(
                run_direct(
                    direct,
                    duration,
                    batch_size,
                    warmup=warmup,
                    shapes=shapes,
                    progress=row("direct (onnxruntime)", base),
                )
            )
            base += step
        for level in levels if server else []:
            label = f"{protocol.value}, concurrency {level}"
            rows.append(
                run_load(
                    url,
                    model,
                    protocol.value,
                    level,
                    duration,
                    warmup,
                    batch_size,
                    shapes=shapes,
                    processes=processes,
                    progress=row(label, base),
                    metrics_url=metrics_url,
                )
            )
            base += step
    baseline = rows[0].events_per_s if direct is not None else None
    if output is Output.json:
        emit_json([_row_json(r, baseline) for r in rows])
        return
    _table(rows, baseline, model, batch_size, duration, warmup)


def _ratio(result: LoadResult, baseline: float | None) -> float | None:
    if not baseline:
        return None
    return result.events_per_s / baseline


def _row_json(result: LoadResult, baseline: float | None) -> dict[str, Any]:
    data = result.to_dict()
    if baseline is not None:
        data["vs_direct"] = _ratio(result, baseline)
    return data


def _ms(value: float | None) -> str:
    if value is None:
        return "-"
    if value < 1:
        return f"{value:.3f}"
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def _errors(result: LoadResult) -> str:
    if not result.errors:
        return "0"
    detail = ", ".join(f"{status} {n}" for status, n in result.errors.items())
    return f"[red]{result.error_count}[/] ({detail})"


def _table(
    rows: list[LoadResult],
    baseline: float | None,
    model: str,
    batch_size: int,
    duration: float,
    warmup: float,
) -> None:
    table = new_table(
        f"{model}: batch size {batch_size}, {duration:g} s measured per row after "
        f"{warmup:g} s of warm-up"
    )
    table.add_column("mode")
    table.add_column("protocol")
    for name in ("concurrency", "events/s", "p50 ms", "p90 ms", "p99 ms", "mean batch"):
        table.add_column(name, justify="right")
    table.add_column("errors", justify="right")
    table.add_column("mJ/event", justify="right")
    if baseline is not None:
        table.add_column("vs direct", justify="right")
    for r in rows:
        cells = [
            r.mode,
            r.protocol,
            str(r.concurrency),
            f"{r.events_per_s:,.0f}",
            _ms(r.p50_ms),
            _ms(r.p90_ms),
            _ms(r.p99_ms),
            "-" if r.mean_batch is None else f"{r.mean_batch:.2f}",
            _errors(r),
            _mj(r),
        ]
        if baseline is not None:
            ratio = _ratio(r, baseline)
            cells.append("-" if ratio is None else f"{ratio:.2f}x")
        table.add_row(*cells)
    out.print(table)
    if any(r.energy_source == "estimate" for r in rows):
        err.print(
            "~ energy estimated from CPU time (no counter readable here; `luminary resources` "
            "says why); server rows: the server's energy shared by model-execution time"
        )
    if any(r.mode == "server" and r.joules_per_event is None for r in rows):
        err.print("note: no energy from the server's metrics port (--metrics-url), so no mJ/event")
    if any(r.mode == "server" and r.mean_batch is None for r in rows):
        err.print("note: the server gave no statistics, so the mean batch is unknown")


def _mj(r: LoadResult) -> str:
    if r.joules_per_event is None:
        return "-"
    mark = "~" if r.energy_source == "estimate" else ""
    return f"{mark}{r.joules_per_event * 1e3:.3g}"
