"""A model version's lineage laid out as a left-to-right graph for the lineage page, without
I/O: nodes in columns and the edges between them."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from luminary.lineage import Lineage

__all__ = ["NODE_H", "NODE_W", "Edge", "Graph", "Node", "lineage_graph"]


@dataclass(frozen=True)
class Node:
    id: str
    kind: str  # dataset, run, ancestor, version, derived, alias
    label: str
    sub: str
    href: str | None
    x: int
    y: int


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass(frozen=True)
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    width: int
    height: int


NODE_W, NODE_H, COL_GAP, ROW_GAP, PAD = 190, 44, 60, 16, 10


def lineage_graph(lin: Lineage) -> Graph:
    """Columns: dataset versions → run → ancestors (oldest first) → the version → derived
    versions → aliases. Each node is linked to the node(s) of the column before it."""
    from urllib.parse import quote

    columns: list[list[tuple[str, str, str, str, str | None]]] = []
    if lin.inputs:
        columns.append(
            [
                (
                    f"d:{d.ref}",
                    "dataset",
                    d.ref,
                    f"{d.file_count} files",
                    f"/datasets/{quote(d.dataset, safe='')}",
                )
                for d in lin.inputs
            ]
        )
    if lin.run is not None:
        r = lin.run
        columns.append([(f"r:{r.id}", "run", r.name, r.id, f"/runs/{r.id}")])
    for a in reversed(lin.ancestors):
        columns.append([(f"v:{a.ref}", "ancestor", a.ref, a.format, _version_href(a.model))])
    v = lin.version
    columns.append([(f"v:{v.ref}", "version", v.ref, v.format, _version_href(v.model))])
    if lin.derived:
        columns.append(
            [
                (f"v:{d.ref}", "derived", d.ref, d.format, _version_href(d.model))
                for d in lin.derived
            ]
        )
    if v.aliases:
        columns.append(
            [(f"a:{a}", "alias", a, f"→ {v.ref}", _version_href(v.model)) for a in v.aliases]
        )
    tallest = max(len(c) for c in columns)
    height = PAD * 2 + tallest * NODE_H + (tallest - 1) * ROW_GAP
    nodes: list[Node] = []
    placed: list[list[Node]] = []
    for ci, column in enumerate(columns):
        x = PAD + ci * (NODE_W + COL_GAP)
        block = len(column) * NODE_H + (len(column) - 1) * ROW_GAP
        top = (height - block) // 2
        here = [
            Node(nid, kind, label, sub, href, x, top + ri * (NODE_H + ROW_GAP))
            for ri, (nid, kind, label, sub, href) in enumerate(column)
        ]
        placed.append(here)
        nodes.extend(here)
    version_col = next(c for c in placed if c[0].kind == "version")
    edges = [
        Edge(a.x + NODE_W, a.y + NODE_H // 2, b.x, b.y + NODE_H // 2)
        for left, right in itertools.pairwise(placed)
        for a in (version_col if right[0].kind == "alias" else left)
        for b in right
    ]
    width = PAD * 2 + len(columns) * NODE_W + (len(columns) - 1) * COL_GAP
    return Graph(nodes, edges, width, height)


def _version_href(model: str) -> str:
    from urllib.parse import quote

    return f"/models/{quote(model, safe='')}"
