"""A metric's series made small enough for a chart, without I/O: downsampling stored points
and shaping a store's per-bucket reduction into the same answer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["downsample", "envelope"]


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
