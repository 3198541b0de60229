"""``luminary demo``: the main job, end to end."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from luminary.errors import InvalidArgumentError


def demo(
    jets: Annotated[int, typer.Option("--jets", min=1000, help="Jets to generate.")] = 20_000,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 8,
    hidden: Annotated[
        str, typer.Option("--hidden", help="Network widths to compare, one run each.")
    ] = "16,32,64",
    project: Annotated[str, typer.Option("--project", "-p")] = "cms-btag-demo",
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Generate synthetic jets, train DeepSets jet taggers of a few widths, track everything."""
    # The matrices are small: one BLAS thread is fastest and steady on a shared machine.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from luminary.cli._output import out
    from luminary.demo import DemoConfig, run_demo

    try:
        widths = tuple(int(h) for h in hidden.split(","))
    except ValueError:
        widths = ()
    if not widths or min(widths) < 2:
        msg = f"--hidden {hidden!r} is not valid; give widths of 2 or more, e.g. 16,32,64"
        raise InvalidArgumentError(msg)
    config = DemoConfig(project=project, n_jets=jets, epochs=epochs, hidden=widths, seed=seed)
    run_demo(config, console=out)
