"""``luminary datasets add|list|versions|get|diff|verify|checkout``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

from luminary.cli._output import OUTPUT, Output, emit_json, err, fmt_time, new_table, out
from luminary.cli.runs import _size
from luminary.datasets import Change

app = typer.Typer(help="Versioned datasets: manifests of content hashes, with schemas.")

REF = typer.Argument(help="NAME@VERSION (or NAME for the latest).")


@contextmanager
def _progress(label: str, total: int | None = None) -> Iterator[Any]:
    """A Rich progress display on stderr; yields an ``on_progress(bytes, files)`` callback."""
    columns: list[Any] = [SpinnerColumn(), TextColumn(f"[bold]{label}[/]")]
    if total is not None:
        columns.append(BarColumn())
    columns += [
        DownloadColumn(),
        TransferSpeedColumn(),
        TextColumn("{task.fields[files]:,} files"),
        TimeElapsedColumn(),
    ]
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task(label, total=total, files=0)

        def update(done_bytes: int, done_files: int) -> None:
            progress.update(task, completed=done_bytes, files=done_files)

        yield update


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Dataset name, e.g. jets.")],
    paths: Annotated[list[str], typer.Argument(help="Files, folders or URLs (s3://, root://).")],
    reference: Annotated[
        bool, typer.Option("--reference", help="Leave the files where they are (no copy).")
    ] = False,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    message: Annotated[str, typer.Option("--message", "-m")] = "",
    store_unreadable: Annotated[
        bool,
        typer.Option(
            "--store-unreadable", help="Keep unreadable ROOT/Parquet/HDF5 files as opaque files."
        ),
    ] = False,
    workers: Annotated[int | None, typer.Option("--workers", min=1)] = None,
    output: Output = OUTPUT,
) -> None:
    """Create the next version of NAME: hash every file (unchanged ones cost one stat), read
    the schemas of ROOT, Parquet and HDF5 files, and store or reference the files."""
    from luminary.datasets import add as add_version

    with _progress("hashing") as update:
        stats = add_version(
            name,
            paths,
            mode="reference" if reference else "copy",
            project=project,
            message=message,
            store_unreadable=store_unreadable,
            workers=workers,
            on_progress=update,
        )
    if output is Output.json:
        emit_json(
            stats.version.to_dict()
            | {
                "hashed_files": stats.hashed_files,
                "stored_blobs": stats.stored_blobs,
                "schemas": stats.schemas,
            }
        )
        return
    v = stats.version
    out.print(
        f"created [bold]{v.ref}[/]: {v.file_count:,} files, {_size(v.total_bytes)} ({v.mode}); "
        f"{stats.hashed_files:,} hashed, {v.file_count - stats.hashed_files:,} unchanged"
        + (f", {stats.stored_blobs:,} new blobs" if v.mode == "copy" else "")
        + (f", {stats.schemas} data files described" if stats.schemas else "")
    )


@app.command("list")
def list_datasets(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    output: Output = OUTPUT,
) -> None:
    """List datasets."""
    import luminary as lm

    rows = lm.get_store().list_datasets(project)
    if output is Output.json:
        emit_json([d.to_dict() for d in rows])
        return
    table = new_table()
    for col in ("name", "project", "latest", "created"):
        table.add_column(col)
    for d in rows:
        table.add_row(d.name, d.project, str(d.latest_version or ""), fmt_time(d.created_at))
    out.print(table if rows else "no datasets yet; `luminary datasets add NAME PATH` adds one")


@app.command("versions")
def versions(
    name: Annotated[str, typer.Argument(help="Dataset name.")],
    output: Output = OUTPUT,
) -> None:
    """Every version of a dataset."""
    import luminary as lm

    rows = lm.get_store().list_dataset_versions(name)
    if output is Output.json:
        emit_json([v.to_dict() for v in rows])
        return
    table = new_table(title=name)
    for col in ("version", "files", "size", "mode", "created", "by", "message"):
        table.add_column(col, justify="right" if col in ("files", "size") else "left")
    for v in rows:
        table.add_row(
            str(v.version),
            f"{v.file_count:,}",
            _size(v.total_bytes),
            v.mode,
            fmt_time(v.created_at),
            v.created_by,
            v.message,
        )
    out.print(table)


@app.command("get")
def get(
    ref: Annotated[str, REF],
    limit: Annotated[int, typer.Option("--files", "-n", min=0, help="Files to list.")] = 20,
    output: Output = OUTPUT,
) -> None:
    """A version: where it lives, its schemas, and its first files."""
    import itertools

    import luminary as lm
    from luminary.datasets import files, schemas

    version = lm.get_store().get_dataset_version(ref)
    described = schemas(version)
    listed = list(itertools.islice(files(version), limit))
    if output is Output.json:
        emit_json(
            version.to_dict()
            | {
                "schemas": described,
                "files": [{"path": e.path, "size": e.size, "digest": e.digest} for e in listed],
            }
        )
        return
    head = new_table(title=version.ref, show_header=False)
    head.add_column(style="bold")
    head.add_column()
    for key, value in (
        ("files", f"{version.file_count:,} ({_size(version.total_bytes)})"),
        ("mode", version.mode),
        ("root", version.root),
        ("manifest", version.manifest_digest),
        ("created", f"{fmt_time(version.created_at)} by {version.created_by}"),
        ("message", version.message),
    ):
        head.add_row(key, value)
    out.print(head)
    if described:
        table = new_table(title="data files")
        for col in ("file", "format", "table", "entries", "columns"):
            table.add_column(col, justify="right" if col == "entries" else "left")
        for path, schema in described.items():
            if "error" in schema:
                table.add_row(path, "[red]unreadable[/]", "", "", schema["error"])
                continue
            for t in schema.get("tables", []):
                cols = ", ".join(c["name"] for c in t.get("columns", [])[:8])
                more = len(t.get("columns", [])) - 8
                table.add_row(
                    path,
                    schema.get("format", ""),
                    t.get("name", ""),
                    f"{t.get('entries', 0):,}",
                    cols + (f" +{more}" if more > 0 else ""),
                )
        out.print(table)
    table = new_table(title=f"files (first {len(listed)})")
    for col in ("path", "size", "blake3"):
        table.add_column(col)
    for e in listed:
        table.add_row(e.path, _size(e.size), e.digest[:16])
    out.print(table)


@app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="Old version, e.g. jets@1.")],
    b: Annotated[str, typer.Argument(help="New version, e.g. jets@2.")],
    limit: Annotated[int, typer.Option("--limit", "-n", min=0, help="Changes to list.")] = 50,
    output: Output = OUTPUT,
) -> None:
    """Files added, removed and modified between two versions (streamed)."""
    from luminary.datasets import diff as diff_versions

    shown: list[Change] = []
    counts = {"added": 0, "removed": 0, "modified": 0}
    for change in diff_versions(a, b):
        counts[change.kind] += 1
        if len(shown) < limit:
            shown.append(change)
    if output is Output.json:
        emit_json(
            {
                "summary": counts,
                "changes": [
                    {
                        "kind": c.kind,
                        "path": c.path,
                        "old": None
                        if c.old is None
                        else {"size": c.old.size, "digest": c.old.digest},
                        "new": None
                        if c.new is None
                        else {"size": c.new.size, "digest": c.new.digest},
                    }
                    for c in shown
                ],
            }
        )
        return
    style = {"added": "green", "removed": "red", "modified": "yellow"}
    sign = {"added": "+", "removed": "-", "modified": "~"}
    for c in shown:
        either = c.new or c.old
        sizes = (
            f"{_size(c.old.size)} → {_size(c.new.size)}"
            if c.old and c.new
            else _size(either.size if either else 0)
        )
        out.print(f"[{style[c.kind]}]{sign[c.kind]} {c.path}[/] [dim]{sizes}[/]")
    total = sum(counts.values())
    if total > len(shown):
        out.print(f"[dim]… {total - len(shown)} more (use --limit)[/]")
    out.print(
        f"{a} → {b}: {counts['added']} added, {counts['removed']} removed, "
        f"{counts['modified']} modified"
    )


@app.command("verify")
def verify(
    ref: Annotated[str, REF],
    output: Output = OUTPUT,
) -> None:
    """Re-hash every file; report missing files, changed sizes and flipped bytes by path."""
    import luminary as lm
    from luminary.datasets import verify as verify_version

    version = lm.get_store().get_dataset_version(ref)
    with _progress("verifying", total=version.total_bytes) as update:
        problems = list(verify_version(ref, on_progress=update))
    if output is Output.json:
        emit_json(
            {
                "ref": version.ref,
                "ok": not problems,
                "problems": [
                    {
                        "kind": p.kind,
                        "path": p.path,
                        "expected_size": p.expected.size,
                        "actual_size": p.actual_size,
                    }
                    for p in problems
                ],
            }
        )
    elif not problems:
        out.print(f"[green]✓[/] {version.ref}: all {version.file_count:,} files match")
    else:
        for p in problems:
            detail = {
                "missing": "missing",
                "size": f"size {p.actual_size} instead of {p.expected.size}",
                "hash": "content changed (hash mismatch)",
            }[p.kind]
            out.print(f"[red]✗[/] {p.path}: {detail}")
    if problems:
        raise typer.Exit(1)


@app.command("checkout")
def checkout(
    ref: Annotated[str, REF],
    dest: Annotated[Path, typer.Argument(help="Folder to write the files into.")],
) -> None:
    """Write a version's files into DEST, verified; files already right are kept."""
    import luminary as lm
    from luminary.datasets import checkout as do_checkout

    version = lm.get_store().get_dataset_version(ref)
    with _progress("checking out", total=version.total_bytes) as update:
        do_checkout(ref, dest, on_progress=update)
    out.print(f"{version.ref}: {version.file_count:,} files in {dest}")
