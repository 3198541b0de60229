"""Pure helpers of the UI (no I/O): downsampling a metric for a chart and laying out a model
version's lineage as a left-to-right graph."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from luminary.lineage import Lineage

__all__ = ["Edge", "Graph", "Node", "downsample", "lineage_graph"]


def downsample(steps: Sequence[int], values: Sequence[float], points: int) -> dict[str, Any]:
    """At most ``points`` (≥ 4) of a series, for a chart: the first and last points, and the
    minimum and maximum of each of ``(points - 2) // 2`` equal buckets in between, in step order.
    Peaks and dips survive, which averaging or striding would hide. NaN travels as ``None``."""
    total = len(steps)
    points = max(4, points)
    if total <= points:
        keep: list[int] = list(range(total))
    else:
        buckets = (points - 2) // 2
        inner = total - 2
        keep = [0]
        get = values.__getitem__
        for b in range(buckets):
            lo = 1 + (b * inner) // buckets
            hi = 1 + ((b + 1) * inner) // buckets
            if hi <= lo:
                continue
            span = range(lo, hi)
            i, j = min(span, key=get), max(span, key=get)
            keep.extend((i, j) if i < j else (j, i) if j < i else (i,))
        keep.append(total - 1)
    out_values = [_json(values[i]) for i in keep]
    return {
        "steps": [steps[i] for i in keep],
        "values": out_values,
        "downsampled": total > points,
        "total_points": total,
        "points": len(keep),
        "method": "min/max per bucket, first and last kept" if total > points else "none",
    }


def envelope(total: int, rows: list[tuple[int, int, float, float]]) -> dict[str, Any]:
    """The chart series from a store's per-bucket reduction: each bucket's minimum at its
    first step and its maximum at its last (within one bucket's width of where they were)."""
    steps: list[int] = []
    values: list[float | None] = []
    for first, last, low, high in rows:
        steps.append(first)
        values.append(_json(low))
        if last != first:
            steps.append(last)
            values.append(_json(high))
    return {
        "steps": steps,
        "values": values,
        "downsampled": True,
        "total_points": total,
        "points": len(steps),
        "method": "min/max per bucket, computed by the database",
    }


def _json(value: float) -> float | None:
    return value if math.isfinite(value) else None


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
