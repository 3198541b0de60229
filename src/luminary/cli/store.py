"""``luminary store check|gc``: what the blob store holds that no version needs, and removing it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, SpinnerColumn, TextColumn

from luminary.cli._output import OUTPUT, Output, emit_json, err, new_table, out
from luminary.cli.runs import _size

app = typer.Typer(help="The blob store: check it, and remove leftovers of failed writes.")

_KINDS = ("mismatched", "temporary", "unreferenced", "unknown")
NO_VERIFY = typer.Option(
    "--no-verify", help="Do not hash the blobs (fast: finds leftovers, not damaged blobs)."
)


@contextmanager
def _progress(label: str) -> Iterator[Any]:
    """A Rich progress bar on stderr; yields an ``on_progress(done, total)`` callback."""
    columns = [SpinnerColumn(), TextColumn(f"[bold]{label}[/]"), BarColumn(), DownloadColumn()]
    with Progress(*columns, console=err, transient=True) as progress:
        task = progress.add_task(label, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


def _run(operation: Any, **options: Any) -> Any:
    """``operation(store, ...)`` (check or gc) on the configured store, with a progress bar."""
    from luminary.config import Settings
    from luminary.store import open_store

    settings = Settings.from_env()
    store = open_store(settings)
    try:
        with _progress("hashing blobs") as update:
            return operation(
                store, temp_dirs=(settings.home / "tmp",), on_progress=update, **options
            )
    finally:
        store.close()


@app.command("check")
def check(
    no_verify: Annotated[bool, NO_VERIFY] = False,
    output: Output = OUTPUT,
) -> None:
    """Find blobs whose bytes do not match their name, temporaries of killed writers and blobs
    no version references, with their sizes. Exits 1 when something is found."""
    from luminary.store import check as check_store

    report = _run(check_store, verify=not no_verify)
    _show(report, output, dry_run=None)
    if not report.sound:
        raise typer.Exit(1)


@app.command("gc")
def gc(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be removed; remove nothing.")
    ] = False,
    min_age: Annotated[
        float,
        typer.Option(
            "--min-age",
            min=0,
            help="Keep temporaries and unreferenced blobs younger than this many seconds (a "
            "writer may be using them); above the longest add on stores without writer leases.",
        ),
    ] = 3600.0,
    no_verify: Annotated[bool, NO_VERIFY] = False,
    output: Output = OUTPUT,
) -> None:
    """Remove damaged blobs, and temporaries and unreferenced blobs older than --min-age;
    nothing while a dataset add runs may lose what it is about to reference."""
    from luminary.store import gc as gc_store

    report = _run(gc_store, min_age_s=min_age, dry_run=dry_run, verify=not no_verify)
    _show(report, output, dry_run=dry_run)


def _show(report: Any, output: Output, *, dry_run: bool | None) -> None:
    if output is Output.json:
        emit_json(
            {
                "url": report.url,
                "blobs": report.blobs,
                "blob_bytes": report.blob_bytes,
                "referenced": report.referenced,
                "sound": report.sound,
                "reclaimable_bytes": report.reclaimable_bytes,
                "findings": [asdict(f) for f in report.findings],
            }
        )
        return
    out.print(
        f"{report.url}: {report.blobs:,} blobs, {_size(report.blob_bytes)}; "
        f"{report.referenced:,} digests referenced"
    )
    if not report.findings:
        out.print("sound: every blob matches its name and is referenced; no temporaries")
        return
    table = new_table()
    for column in ("kind", "path", "size", "age", "action"):
        table.add_column(column, justify="right" if column in ("size", "age") else "left")
    for f in sorted(report.findings, key=lambda f: (_KINDS.index(f.kind), f.path)):
        table.add_row(f.kind, f.path, _size(f.size), f"{f.age_s:.0f} s", _action(f, dry_run))
    out.print(table)
    totals = ", ".join(
        f"{len(report.of(k))} {k} ({_size(sum(f.size for f in report.of(k)))})"
        for k in _KINDS
        if report.of(k)
    )
    out.print(totals)
    if dry_run is None:
        out.print("remove what is safe to remove with `luminary store gc` (try --dry-run first)")


def _action(f: Any, dry_run: bool | None) -> str:
    if dry_run is None:
        return ""
    if f.kept_because:
        return f"kept: {f.kept_because}"
    return "would remove" if dry_run else "removed"
