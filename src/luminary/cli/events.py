"""``luminary events list|tail``: the registry's event log."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from luminary.cli._output import OUTPUT, Output, emit_json, fmt_time, new_table, out

app = typer.Typer(help="The event log: registrations, alias moves, dataset versions.")

KIND = typer.Option("--kind", "-k", help="Only these kinds (repeatable), e.g. alias.set.")


@app.command("list")
def list_events(
    after: Annotated[int, typer.Option("--after", help="Only events after this seq.")] = 0,
    kind: Annotated[list[str] | None, KIND] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1)] = 100,
    output: Output = OUTPUT,
) -> None:
    """Events, oldest first."""
    import luminary as lm

    events = lm.get_store().list_events(after=after, limit=limit, kinds=kind)
    if output is Output.json:
        emit_json([e.to_dict() for e in events])
        return
    table = new_table()
    for col in ("seq", "when", "kind", "subject", "who", "details"):
        table.add_column(col)
    for e in events:
        details = ", ".join(f"{k}={v}" for k, v in e.payload.items() if v is not None)
        table.add_row(str(e.seq), fmt_time(e.at), e.kind, e.subject, e.actor, details)
    out.print(table if events else "no events")


@app.command("tail")
def tail(
    kind: Annotated[list[str] | None, KIND] = None,
    interval: Annotated[float, typer.Option("--interval", min=0.05)] = 1.0,
    from_start: Annotated[
        bool, typer.Option("--from-start", help="Replay old events too.")
    ] = False,
    count: Annotated[
        int, typer.Option("--count", min=0, help="Stop after this many events (0: never).")
    ] = 0,
) -> None:
    """Follow the event log, one JSON line per event (Ctrl-C stops)."""
    import json

    import luminary as lm

    store = lm.get_store()
    after = 0
    if not from_start:
        last = store.list_events(after=0, limit=1_000_000)
        after = last[-1].seq if last else 0
    seen = 0
    while True:
        for event in store.list_events(after=after, limit=1000, kinds=kind):
            out.print(json.dumps(event.to_dict()), soft_wrap=True, markup=False)
            after = event.seq
            seen += 1
            if count and seen >= count:
                return
        time.sleep(interval)
