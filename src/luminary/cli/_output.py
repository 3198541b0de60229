"""Shared CLI plumbing: output formats, Rich consoles, value formatting."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["OUTPUT", "Output", "emit_json", "err", "fmt_time", "fmt_value", "out", "sparkline"]


def _width(stream: Any) -> int | None:
    """Terminals set their own width; piped output gets a wide one so tables are not cropped."""
    if stream.isatty():
        return None
    return int(os.environ.get("COLUMNS", "160"))


out = Console(highlight=False, width=_width(sys.stdout))
err = Console(stderr=True, highlight=False, width=_width(sys.stderr))


class Output(StrEnum):
    table = "table"
    json = "json"


OUTPUT = typer.Option(Output.table, "--output", "-o", help="table (for people) or json.")


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str, allow_nan=False) + "\n")


def fmt_value(value: Any) -> str:
    """Numbers compactly, NaN and infinities as such, everything else as text."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value)
    return str(value)


def fmt_time(when: datetime | None) -> str:
    return "" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], width: int = 60) -> str:
    """A one-line picture of a series (min/max per bucket, NaN skipped)."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return ""
    lo, hi = min(finite), max(finite)
    n = len(values)
    buckets = min(width, n)
    chars = []
    for b in range(buckets):
        chunk = [v for v in values[b * n // buckets : (b + 1) * n // buckets] if math.isfinite(v)]
        if not chunk:
            chars.append(" ")
            continue
        mean = sum(chunk) / len(chunk)
        level = 0 if hi == lo else int((mean - lo) / (hi - lo) * (len(_BARS) - 1))
        chars.append(_BARS[level])
    return "".join(chars)


STATUS_STYLE = {"running": "cyan", "finished": "green", "failed": "red", "killed": "yellow"}


def status_text(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def new_table(title: str | None = None, **kwargs: Any) -> Table:
    return Table(title=title, title_justify="left", header_style="bold", **kwargs)
