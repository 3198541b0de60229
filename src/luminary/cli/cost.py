"""``luminary cost report|prices|init``: what runs used and cost, on-premises vs cloud."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from luminary.cli._output import OUTPUT, Output, emit_json, err, new_table, out
from luminary.cli._output import out as default_out

if TYPE_CHECKING:
    from luminary.costs import CostReport, EnergyTotals, PriceSheet

app = typer.Typer(help="Energy, CO2e and cost of runs and models, on-premises vs cloud.")

PRICES = typer.Option(
    "--prices", help="Price sheet (YAML); default $LUMINARY_HOME/prices.yaml, else the example."
)


@app.command("report")
def report(
    project: Annotated[
        str | None, typer.Option("--project", "-p", help="Project (default: all).")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Runs started in the last 30d, 12h, 2w … or a date."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="NAME@ALIAS or NAME@VERSION: what it cost to make (its data preparation, "
            "training run, scan and trials) and J/event to serve.",
        ),
    ] = None,
    prices: Annotated[Path | None, PRICES] = None,
    output: Output = OUTPUT,
) -> None:
    """GPU-hours, kWh, CO2e and cost of the selected runs, per option of the price sheet,
    with every assumption listed. Estimated energy is marked ~ and never mixed silently."""
    from luminary.costs import cost_report

    result = cost_report(project=project, since=since, model=model, prices=prices)
    if output is Output.json:
        emit_json(result.to_dict())
        return
    print_report(result)


@app.command("prices")
def show_prices(prices: Annotated[Path | None, PRICES] = None, output: Output = OUTPUT) -> None:
    """The price sheet in use and where each value comes from."""
    from luminary.costs import load_prices

    sheet = load_prices(prices)
    if output is Output.json:
        emit_json(sheet.to_dict())
        return
    table = new_table(title=f"prices ({_sheet_label(sheet)})")
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_column("from", style="dim")
    cur = sheet.currency
    rows = [
        ("currency", cur, "currency"),
        ("energy_price_per_kwh", f"{sheet.energy_price_per_kwh:g} {cur}", "energy_price_per_kwh"),
        ("pue", f"{sheet.pue:g}", "pue"),
        ("carbon_g_per_kwh", f"{sheet.carbon_g_per_kwh:g}", "carbon_g_per_kwh"),
        ("on_premises.gpu_hour", f"{sheet.on_premises.gpu_hour:g} {cur}", "on_premises.gpu_hour"),
        ("on_premises.cpu_hour", f"{sheet.on_premises.cpu_hour:g} {cur}", "on_premises.cpu_hour"),
    ]
    for i, c in enumerate(sheet.cloud):
        rows += [
            (f"{c.name}.gpu_hour", f"{c.gpu_hour:g} {cur}", f"cloud[{i}].gpu_hour"),
            (f"{c.name}.cpu_hour", f"{c.cpu_hour:g} {cur}", f"cloud[{i}].cpu_hour"),
        ]
        if c.pue is not None:
            rows.append((f"{c.name}.pue", f"{c.pue:g}", f"cloud[{i}].pue"))
        if c.carbon_g_per_kwh is not None:
            key = f"cloud[{i}].carbon_g_per_kwh"
            rows.append((f"{c.name}.carbon_g_per_kwh", f"{c.carbon_g_per_kwh:g}", key))
    for name, value, key in rows:
        table.add_row(name, value, sheet.origin(key))
    out.print(table)
    if sheet.example:
        out.print(_example_note(sheet))


@app.command("init")
def init(
    prices: Annotated[
        Path | None, typer.Option("--prices", help="Where to write (default $LUMINARY_HOME).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing sheet.")] = False,
) -> None:
    """Write the example price sheet, with comments, for you to edit."""
    from luminary.costs import write_example

    path = write_example(prices, force=force)
    err.print(f"wrote {path}; every number in it is an example: replace them with yours")


# -- rendering --------------------------------------------------------------------------------


def _sheet_label(sheet: PriceSheet) -> str:
    if not sheet.file:
        return "example defaults"
    return f"{sheet.path}{', untouched example' if sheet.example else ''}"


def _example_note(sheet: PriceSheet) -> str:
    hint = "" if sheet.file else " (`luminary cost init` writes an editable copy there)"
    return f"[yellow]example prices — replace them in {sheet.path}{hint}[/]"


def _num(x: float) -> str:
    return "0" if x == 0 else f"{x:.3g}"


def _money(x: float) -> str:
    return f"{x:,.2f}" if x == 0 or abs(x) >= 0.01 else f"{x:.2g}"


def joules_text(j: float) -> str:
    for unit, scale in (("GJ", 1e9), ("MJ", 1e6), ("kJ", 1e3)):
        if j >= scale:
            return f"{j / scale:.3g} {unit}"
    return f"{j:.3g} J"


def _by_source(totals: EnergyTotals, measured: bool) -> str:
    from luminary.costs import is_measured

    parts = [
        f"{source}: " + ", ".join(f"{d} {joules_text(j)}" for d, j in sorted(devices.items()))
        for source, devices in sorted(totals.by_source.items())
        if is_measured(source) == measured
    ]
    return f" ({' · '.join(parts)})" if parts else ""


def print_report(r: CostReport, console: Console | None = None) -> None:
    """The report as a Rich table with its assumptions (the demo prints it too)."""
    out = console or default_out
    sel = r.selection
    scope = [f"project {sel['project']}" if sel.get("project") else "all projects"]
    if sel.get("since"):
        scope.append(f"since {sel['since']}")
    if r.model:
        asked = sel.get("model")
        named = f"{r.model}" + (f" ({asked})" if asked and asked != r.model else "")
        out.print(f"[bold]cost to make {named}[/]: {len(r.runs)} runs in its lineage")
        roles: dict[str, int] = {}
        for u in r.runs:
            roles[u.role] = roles.get(u.role, 0) + 1
        if roles:
            out.print(
                "  "
                + ", ".join(
                    f"{n} {role}{'s' if n > 1 and role in ('scan', 'trial') else ''}"
                    for role, n in sorted(roles.items())
                )
            )
        if r.inputs:
            note = ""
            if all(u.role != "data" for u in r.runs):
                note = (
                    " (no run recorded as making them; tag the run that does produces=NAME@VERSION)"
                )
            out.print(f"  data: {', '.join(r.inputs)}{note}")
    else:
        runs = f"{len(r.runs)} run{'' if len(r.runs) == 1 else 's'}"
        out.print(f"[bold]cost of {runs}[/] · {' · '.join(scope)}")
    t = r.totals
    if t.joules == 0:
        out.print("energy: none recorded for any selected run")
    else:
        measured = f"measured {joules_text(t.measured_joules)}{_by_source(t, True)}"
        estimated = f"estimated ~{joules_text(t.estimated_joules)}{_by_source(t, False)}"
        lead = "energy"
        if t.all_estimated:
            lead = "energy (all estimated: no run had a readable counter)"
        out.print(f"{lead}: {measured}, {estimated}")

    cur = r.prices.currency
    table = new_table()
    for head in ("option", "GPU-h", "CPU-h", "PUE", "kWh measured", "kWh ~estimated"):
        table.add_column(head, justify="left" if head == "option" else "right", no_wrap=True)
    table.add_column("kg CO2e", justify="right", no_wrap=True)
    table.add_column(f"cost {cur}", justify="right", no_wrap=True)
    for o in r.options:
        mark = "~" if o.kwh_estimated > 0 else ""
        table.add_row(
            o.name,
            _num(o.gpu_hours),
            _num(o.cpu_hours),
            f"{o.pue:g}",
            _num(o.kwh_measured) if o.kwh_measured > 0 else "-",
            f"~{_num(o.kwh_estimated)}" if o.kwh_estimated > 0 else "-",
            f"{mark}{_num(o.co2e_kg)}",
            f"{'~' if o.cost_estimated else ''}{_money(o.cost)}",
        )
    out.print(table)
    out.print(
        "[dim]~ includes estimated energy; cloud prices include energy, on-premises cost is "
        "energy plus amortisation[/]"
    )

    if r.model:
        s = r.serving
        if s is None:
            out.print(
                f"to serve: none recorded (no run tagged kind=serving, model={r.model}; "
                "`luminary demo` or `luminary bench serve` records one)"
            )
        elif s.joules_per_event is None:
            out.print(f"to serve: serving run {s.run_id} recorded no serving/joules_per_event")
        else:
            how = "measured" if s.measured else f"~estimated (energy.measured={s.coverage or '?'})"
            rate = f", {s.events_per_s:.3g} events/s" if s.events_per_s is not None else ""
            mark = "" if s.measured else "~"
            out.print(
                f"to serve: {mark}{s.joules_per_event:.3g} J/event ({how}, run {s.run_id}{rate})"
            )

    assumptions = new_table(title="assumptions", show_edge=False, box=None)
    assumptions.add_column("what", style="bold")
    assumptions.add_column("value")
    assumptions.add_column("from", style="dim")
    for a in r.assumptions:
        assumptions.add_row(a.what, a.value, a.origin)
    out.print(assumptions)

    missing = r.not_measured
    if missing:
        shown = ", ".join(f"{u.run_id} ({u.name})" for u in missing[:8])
        more = f" and {len(missing) - 8} more" if len(missing) > 8 else ""
        out.print(
            f"[yellow]not measured: {len(missing)} of {len(r.runs)} runs recorded no energy[/] "
            f"(not in kWh, CO2e or energy cost): {shown}{more}"
        )
    no_hours = [u for u in r.without_resources if u.has_energy]
    if no_hours:
        out.print(
            f"[yellow]{len(no_hours)} runs recorded energy but no resources/*_seconds[/]: "
            "their hours are not in the cost"
        )
    if r.prices.example:
        out.print(_example_note(r.prices))
