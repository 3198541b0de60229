"""``luminary artifacts list|get``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from luminary.cli._output import OUTPUT, Output, emit_json, err, new_table, out
from luminary.cli.runs import _size

app = typer.Typer(help="Files stored with runs (content-addressed, verified on download).")


@app.command("list")
def list_artifacts(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    prefix: Annotated[str, typer.Option("--prefix", help="Only under this folder.")] = "",
    output: Output = OUTPUT,
) -> None:
    """List a run's artifacts."""
    import luminary as lm

    entries = lm.list_artifacts(run_id, prefix)
    if output is Output.json:
        emit_json([e.to_dict() for e in entries])
        return
    if not entries:
        out.print("no artifacts")
        return
    table = new_table()
    table.add_column("path")
    table.add_column("size", justify="right")
    table.add_column("blake3", style="dim")
    for e in entries:
        table.add_row(e.path, _size(e.size), e.digest)
    out.print(table)


@app.command("get")
def get(
    run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
    path: Annotated[str, typer.Argument(help="Artifact file or folder ('' for all).")] = "",
    dest: Annotated[Path, typer.Option("--dest", "-d", help="Where to write.")] = Path("."),
) -> None:
    """Download artifacts, verifying every byte against its BLAKE3 hash."""
    import luminary as lm

    written = lm.download_artifacts(run_id, path, dest)
    for p in written:
        err.print(f"wrote {p}")
