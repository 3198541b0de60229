"""``luminary lineage REF``: data → run → model version → derived versions → aliases."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.tree import Tree

from luminary.cli._output import OUTPUT, Output, emit_json, fmt_value, out
from luminary.lineage import Lineage


def lineage(
    ref: Annotated[str, typer.Argument(help="NAME@VERSION or NAME@ALIAS.")],
    output: Output = OUTPUT,
) -> None:
    """Where a model version came from: data, code, parameters, environment, metrics."""
    from luminary.lineage import lineage as _lineage

    info = _lineage(ref)
    if output is Output.json:
        emit_json(info.to_dict())
        return
    out.print(lineage_tree(info))


def lineage_tree(info: Lineage) -> Tree:
    """The lineage as a Rich tree: model version ← run ← data, with derived versions."""
    v = info.version
    tree = Tree(
        f"[bold]{v.ref}[/] ({v.format}, blake3 {v.digest[:12]}…)"
        + (f"  aliases: [green]{', '.join(v.aliases)}[/]" if v.aliases else "")
    )
    node = tree
    for ancestor in info.ancestors:
        node = node.add(f"derived from [bold]{ancestor.ref}[/] ({ancestor.format})")
    if info.run is None:
        node.add("[yellow]no source run recorded[/]")
    else:
        r = info.run
        run_node = node.add(f"run [bold]{r.name}[/] {r.id} ({r.project}, {r.status.value})")
        if info.trial is not None:
            t = info.trial
            run_node.add(
                f"trial #{t.trial} of study [bold]{t.study}[/]"
                + (f" (study run {t.study_run_id})" if t.study_run_id else "")
                + f": luminary tune show {t.study!r} -p {r.project}"
            )
        if info.code:
            dirty = " [yellow](dirty)[/]" if info.code.get("dirty") else ""
            run_node.add(
                f"code {info.code.get('commit', '')[:12]}{dirty} "
                f"{info.code.get('branch') or ''} {info.code.get('remote') or ''}"
            )
        if info.environment:
            env = info.environment
            run_node.add(
                f"environment Python {env.get('python')} on {env.get('host')}, "
                f"{env.get('packages')} packages"
                + (f", GPUs: {', '.join(env['gpus'])}" if env.get("gpus") else "")
            )
        if r.params:
            params = ", ".join(
                f"{k}={fmt_value(x)}"
                for k, x in r.params.items()
                if not isinstance(x, (list, dict))
            )
            run_node.add(f"params {params}")
        if v.metrics:
            metrics = ", ".join(
                f"{k}={fmt_value(x)}" for k, x in sorted(v.metrics.items()) if "/" not in k
            )
            run_node.add(f"metrics {metrics}")
        data = (
            run_node.add("data") if info.inputs else run_node.add("[yellow]no dataset recorded[/]")
        )
        for d in info.inputs:
            data.add(
                f"[bold]{d.ref}[/] {d.file_count} files, {d.total_bytes:,} bytes "
                f"({d.mode}, manifest {d.manifest_digest[:12]}…)"
            )
    for child in info.derived:
        tree.add(
            f"derived: [bold]{child.ref}[/] ({child.format})"
            + (f" aliases: {', '.join(child.aliases)}" if child.aliases else "")
        )
    return tree
