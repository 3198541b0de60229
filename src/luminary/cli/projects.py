"""``luminary projects list|create``."""

from __future__ import annotations

from typing import Annotated

import typer

from luminary.cli._output import OUTPUT, Output, emit_json, fmt_time, new_table, out

app = typer.Typer(help="Projects group runs and models (one per analysis or tagger).")


@app.command("list")
def list_projects(output: Output = OUTPUT) -> None:
    """List projects with their run counts."""
    import luminary as lm

    store = lm.get_store()
    projects = store.list_projects()
    counts = {p.name: store.count_runs(p.name) for p in projects}
    if output is Output.json:
        emit_json(
            [
                {
                    "id": p.id,
                    "name": p.name,
                    "description": p.description,
                    "created_at": p.created_at.isoformat(),
                    "runs": counts[p.name],
                }
                for p in projects
            ]
        )
        return
    table = new_table()
    for col in ("name", "runs", "created", "description"):
        table.add_column(col, justify="right" if col == "runs" else "left")
    for p in projects:
        table.add_row(p.name, str(counts[p.name]), fmt_time(p.created_at), p.description)
    out.print(table if projects else "no projects yet; `luminary demo` creates one")


@app.command("create")
def create(
    name: Annotated[str, typer.Argument(help="Project name, e.g. cms-btag.")],
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    output: Output = OUTPUT,
) -> None:
    """Create a project."""
    import luminary as lm

    project = lm.create_project(name, description)
    if output is Output.json:
        emit_json({"id": project.id, "name": project.name, "description": project.description})
    else:
        out.print(f"created project [bold]{project.name}[/] ({project.id})")
