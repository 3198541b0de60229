"""``luminary resources``: this machine's CPUs, memory, GPUs, energy meters, store and servers,
and the shared compute: pools, the queue (jobs by state) and each project's use against its
share."""

from __future__ import annotations

import contextlib
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from luminary.cli._output import OUTPUT, Output, emit_json, new_table, out

#: The job states counted as the queue (finished jobs are history: ``luminary jobs list``).
QUEUE_STATES = ("queued", "starting", "running")
#: Jobs counted per state at most; more show as this number with ``+`` in the table.
COUNT_LIMIT = 100_000


def resources(
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.05, help="Seconds to wait for each health check.")
    ] = 1.0,
    output: Output = OUTPUT,
) -> None:
    """What this machine offers and what it suits: CPUs, memory, GPUs (memory, utilisation,
    power, MIG), readable energy meters, the configured store, and Luminary servers running
    here; then the store's pools, its queue and each project's use against its share."""
    from luminary.compute import collect, rows, snapshot_dict

    busy = out.status("looking at this machine…", spinner="dots")
    with busy if output is Output.table else contextlib.nullcontext():
        snap = collect(timeout=timeout)
        compute = _compute(snap.store)
    if output is Output.json:
        shares = [asdict(s) for s in compute["shares"]]
        emit_json({**snapshot_dict(snap), **compute, "shares": shares})
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
    _print_compute(compute)


def _compute(store_info: Any) -> dict[str, Any]:
    """``pools`` (each with its live ``agents``, ``None`` when the caller may not list agents),
    ``queue`` (jobs per state in :data:`QUEUE_STATES`) and ``shares`` (each project's
    :class:`~luminary.compute.ProjectShare`); plus ``queue_note`` when the store cannot be
    read (empty lists then). An embedded store that does not exist yet is not created."""
    import luminary as lm
    from luminary._clock import now_ms
    from luminary.compute import AGENT_STALE_MS, JobState
    from luminary.errors import (
        AuthenticationError,
        BackendUnavailableError,
        InvalidArgumentError,
        PermissionDeniedError,
    )

    empty: dict[str, Any] = {"pools": [], "queue": dict.fromkeys(QUEUE_STATES, 0), "shares": []}
    if store_info.mode == "server" and not store_info.answers:
        return {**empty, "queue_note": f"the server does not answer: {store_info.detail}"}
    try:
        if store_info.mode == "embedded" and _not_created():
            return {**empty, "queue_note": "no store yet: no pools, no jobs"}
    except InvalidArgumentError as exc:
        return {**empty, "queue_note": f"bad environment: {exc}"}

    try:
        store = lm.get_store()
        pools = store.list_pools()
        try:
            cutoff = now_ms() - AGENT_STALE_MS
            agents: list[Any] | None = [a for a in store.list_agents() if a.heartbeat_ms >= cutoff]
        except PermissionDeniedError:
            agents = None  # agents are listed to server admins only
        queue = {
            s: len(store.list_jobs(None, [JobState(s)], limit=COUNT_LIMIT)) for s in QUEUE_STATES
        }
        shares = store.compute_shares()
    except BackendUnavailableError as exc:
        return {**empty, "queue_note": f"the store does not answer: {exc}"}
    except AuthenticationError as exc:
        return {**empty, "queue_note": f"the server refuses: {exc}"}
    return {
        "pools": [
            {
                **p.to_dict(),
                "agents": None if agents is None else [a.id for a in agents if a.pool == p.name],
            }
            for p in pools
        ],
        "queue": queue,
        "shares": shares,
    }


def _not_created() -> bool:
    from luminary.config import Settings

    db = Settings.from_env().db_url
    return db.startswith("sqlite:///") and not Path(db.removeprefix("sqlite:///")).is_file()


def _print_compute(compute: dict[str, Any]) -> None:
    from luminary.cli.jobs import JOB_STYLE, shares_table

    if "queue_note" in compute:
        out.print(f"pools and queue: {escape(compute['queue_note'])}")
        return
    pools = compute["pools"]
    if not pools:
        out.print("no pools yet; luminary pools add local --gpus 4 makes one")
    else:
        table = new_table(title="pools")
        for col in ("pool", "executor", "nodes", "GPUs/node", "CPUs/node", "enabled", "agents"):
            table.add_column(col)
        for p in pools:
            agents = p["agents"]
            served = "?" if agents is None else str(len(agents)) if agents else "[yellow]none[/]"
            table.add_row(
                p["name"],
                p["executor"],
                str(p["nodes"]),
                str(p["gpus"]),
                f"{p['cpus']:g}",
                "yes" if p["enabled"] else "[yellow]no[/]",
                served,
            )
        out.print(table)
    counts = compute["queue"]
    out.print(
        "queue: "
        + " · ".join(
            f"{n}{'+' if n >= COUNT_LIMIT else ''} [{JOB_STYLE[s]}]{s}[/]"
            for s, n in counts.items()
        )
    )
    if compute["shares"]:
        out.print(shares_table(compute["shares"]))
