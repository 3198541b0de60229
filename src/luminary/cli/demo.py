"""``luminary demo``: the main job, end to end."""

from __future__ import annotations

from typing import Annotated

import typer


def demo(
    jets: Annotated[int, typer.Option("--jets", min=1000, help="Jets to generate.")] = 20_000,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 6,
    hidden: Annotated[int, typer.Option("--hidden", min=4, help="Width of the network.")] = 32,
    project: Annotated[str, typer.Option("--project", "-p")] = "cms-btag-demo",
    seed: Annotated[int, typer.Option("--seed")] = 0,
) -> None:
    """Generate synthetic jets, train a DeepSets jet tagger, and track everything."""
    from luminary.cli._output import out
    from luminary.demo._job import DemoConfig, run_demo

    run_demo(
        DemoConfig(project=project, n_jets=jets, epochs=epochs, hidden=hidden, seed=seed),
        console=out,
    )
