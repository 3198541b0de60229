"""``luminary resources``: this machine's CPUs, memory, GPUs, energy meters, store and servers."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer
from rich.markup import escape

from luminary.cli._output import OUTPUT, Output, emit_json, new_table, out


def resources(
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.05, help="Seconds to wait for each health check.")
    ] = 1.0,
    output: Output = OUTPUT,
) -> None:
    """What this machine offers and what it suits: CPUs, memory, GPUs (memory, utilisation,
    power, MIG), readable energy meters, the configured store, and Luminary servers running
    here."""
    from luminary.compute import collect, rows, snapshot_dict

    busy = out.status("looking at this machine…", spinner="dots")
    with busy if output is Output.table else contextlib.nullcontext():
        snap = collect(timeout=timeout)
    if output is Output.json:
        emit_json(snapshot_dict(snap))
        return
    table = new_table(title=f"resources of {snap.host}")
    table.add_column("", style="bold", no_wrap=True)
    table.add_column("resource")
    table.add_column("state")
    table.add_column("suits", style="dim")
    section = ""
    for row in rows(snap):
        table.add_row(  # values hold install commands like luminary[gpu]: not markup
            row.section if row.section != section else "",
            escape(row.name),
            escape(row.value),
            escape(row.advice),
        )
        section = row.section
    out.print(table)
