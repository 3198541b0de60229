"""``luminary models register|list|get|versions|download|delete`` and ``models alias …``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from luminary.cli._output import (
    OUTPUT,
    Output,
    emit_json,
    err,
    fmt_time,
    fmt_value,
    new_table,
    out,
)
from luminary.cli.runs import _size

app = typer.Typer(help="The model registry: versions, aliases (production, staging…), files.")
alias_app = typer.Typer(help="Move, remove and trace aliases such as 'production'.")
app.add_typer(alias_app, name="alias")

REF = typer.Argument(help="NAME, NAME@VERSION or NAME@ALIAS (e.g. jet-tagger@production).")


@app.command("register")
def register(
    name: Annotated[str, typer.Argument(help="Model name, e.g. jet-tagger.")],
    path: Annotated[Path, typer.Argument(help="The model file (ONNX, TorchScript, …).")],
    run: Annotated[str | None, typer.Option("--run", "-r", help="Source run id.")] = None,
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    description: Annotated[str, typer.Option("--description", "-d")] = "",
    parent: Annotated[
        str | None, typer.Option("--parent", help="NAME@VERSION this one was derived from.")
    ] = None,
    alias: Annotated[
        str | None, typer.Option("--alias", "-a", help="Point this alias at it.")
    ] = None,
    allow_pickle: Annotated[
        bool,
        typer.Option("--allow-pickle", help="Accept formats whose loading executes code."),
    ] = False,
    output: Output = OUTPUT,
) -> None:
    """Register a model file as the next version of NAME."""
    from luminary.registry import register_model

    version = register_model(
        name,
        path,
        run=run,
        project=project,
        description=description,
        parent=parent,
        alias=alias,
        allow_pickle=allow_pickle,
    )
    if output is Output.json:
        emit_json(version.to_dict())
        return
    out.print(
        f"registered [bold]{version.ref}[/] ({version.format}, {_size(version.size)})"
        + (f", aliases: {', '.join(version.aliases)}" if version.aliases else "")
    )


@app.command("list")
def list_models(
    project: Annotated[str | None, typer.Option("--project", "-p")] = None,
    output: Output = OUTPUT,
) -> None:
    """List models with their latest version and aliases."""
    from luminary.registry import list_models as _list

    models = _list(project)
    if output is Output.json:
        emit_json([m.to_dict() for m in models])
        return
    if not models:
        out.print("no models yet; `luminary models register NAME FILE` adds one")
        return
    table = new_table()
    for col in ("name", "project", "latest", "aliases", "created"):
        table.add_column(col)
    for m in models:
        aliases = ", ".join(f"{a}→{v}" for a, v in m.aliases.items())
        table.add_row(
            m.name, m.project, str(m.latest_version or ""), aliases, fmt_time(m.created_at)
        )
    out.print(table)


@app.command("get")
def get(ref: Annotated[str, REF], output: Output = OUTPUT) -> None:
    """One version: file, format, signature, source run, metrics, aliases."""
    import luminary as lm

    version = lm.get_store().get_model_version(ref)
    if output is Output.json:
        emit_json(version.to_dict())
        return
    head = new_table(title=version.ref, show_header=False)
    head.add_column(style="bold")
    head.add_column()
    for key, value in (
        ("format", version.format),
        ("file", f"{version.filename} ({_size(version.size)})"),
        ("blake3", version.digest),
        ("source run", version.source_run_id or ""),
        ("derived from", version.parent or ""),
        ("aliases", ", ".join(version.aliases)),
        ("registered", f"{fmt_time(version.created_at)} by {version.created_by}"),
        ("description", version.description),
    ):
        head.add_row(key, value)
    out.print(head)
    sig = new_table(title="signature")
    for col in ("", "name", "dtype", "shape"):
        sig.add_column(col)
    for kind in ("inputs", "outputs"):
        for spec in version.signature.get(kind, []):
            shape = "[" + ", ".join("?" if d is None else str(d) for d in spec["shape"]) + "]"
            sig.add_row(kind[:-1], spec["name"], spec["dtype"], shape)
    if sig.row_count:
        out.print(sig)
    if version.metrics:
        metrics = new_table(title="metrics of the source run")
        metrics.add_column("key")
        metrics.add_column("value", justify="right")
        for mkey, mvalue in sorted(version.metrics.items()):
            metrics.add_row(mkey, fmt_value(mvalue))
        out.print(metrics)


@app.command("versions")
def versions(
    name: Annotated[str, typer.Argument(help="Model name.")],
    output: Output = OUTPUT,
) -> None:
    """Every version of a model."""
    from luminary.registry import list_model_versions

    rows = list_model_versions(name)
    if output is Output.json:
        emit_json([v.to_dict() for v in rows])
        return
    table = new_table(title=name)
    for col in (
        "version",
        "aliases",
        "format",
        "size",
        "source run",
        "derived from",
        "registered",
        "by",
    ):
        table.add_column(col)
    for v in rows:
        table.add_row(
            str(v.version),
            ", ".join(v.aliases),
            v.format,
            _size(v.size),
            v.source_run_id or "",
            v.parent or "",
            fmt_time(v.created_at),
            v.created_by,
        )
    out.print(table)


@app.command("download")
def download(
    ref: Annotated[str, REF],
    dest: Annotated[Path, typer.Option("--dest", "-d", help="File or folder.")] = Path("."),
) -> None:
    """Fetch a version's file, verified against its hash."""
    from luminary.registry import get_model

    local = get_model(ref, dest=dest)
    err.print(f"wrote {local.path} ({local.ref})")


@app.command("delete")
def delete(
    ref: Annotated[str, typer.Argument(help="NAME (the whole model) or NAME@VERSION.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
) -> None:
    """Delete a model version (not one an alias points to), or a whole model."""
    from luminary.registry import delete_model

    if not yes:
        typer.confirm(f"delete {ref}?", abort=True, err=True)
    delete_model(ref)
    err.print(f"deleted {ref}")


@alias_app.command("set")
def alias_set(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="e.g. production")],
    version: Annotated[int, typer.Argument(help="Version number.", min=1)],
) -> None:
    """Point ALIAS at VERSION (atomically; the move is recorded)."""
    from luminary.registry import set_alias

    move = set_alias(name, alias, version)
    before = f"{move.from_version}" if move.from_version is not None else "nothing"
    out.print(f"{name}@{alias}: {before} → {move.to_version}")


@alias_app.command("unset")
def alias_unset(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str, typer.Argument(help="e.g. staging")],
) -> None:
    """Remove ALIAS."""
    from luminary.registry import unset_alias

    move = unset_alias(name, alias)
    out.print(f"{name}@{alias}: {move.from_version} → nothing")


@alias_app.command("history")
def alias_history(
    name: Annotated[str, typer.Argument(help="Model name.")],
    alias: Annotated[str | None, typer.Argument(help="Only this alias.")] = None,
    output: Output = OUTPUT,
) -> None:
    """Every move of the model's aliases: who, when, from, to."""
    from luminary.registry import alias_history as _history

    moves = _history(name, alias)
    if output is Output.json:
        emit_json([m.to_dict() for m in moves])
        return
    table = new_table(title=f"{name} alias history")
    for col in ("when", "alias", "from", "to", "who"):
        table.add_column(col)
    for m in moves:
        table.add_row(
            fmt_time(m.at), m.alias, str(m.from_version or "-"), str(m.to_version or "-"), m.actor
        )
    out.print(table if moves else "no alias moves yet")
