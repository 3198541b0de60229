"""The ``luminary`` command: ``luminary <noun> <verb>``, one module per noun.

Errors go to stderr with the fix, and the exit status is non-zero (1 for a Luminary error,
2 for a usage error).
"""

from __future__ import annotations

import sys

import typer

from luminary.cli import artifacts, demo, projects, runs

app = typer.Typer(
    name="luminary",
    help="Luminary: versioned data, tracked training, a model registry and batched inference "
    "for particle physics.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(projects.app, name="projects")
app.add_typer(runs.app, name="runs")
app.add_typer(artifacts.app, name="artifacts")
app.command("demo")(demo.demo)


@app.callback()
def _root() -> None:
    """Environment: LUMINARY_HOME (default ~/.luminary), LUMINARY_DB, LUMINARY_BLOBS."""


def main() -> None:
    import click
    from rich.text import Text

    from luminary.cli._output import err
    from luminary.errors import LuminaryError

    try:
        code = app(standalone_mode=False)
    except LuminaryError as exc:
        err.print(Text.assemble(("error: ", "bold red"), exc.message), soft_wrap=True)
        sys.exit(1)
    except click.exceptions.Abort:
        err.print("aborted")
        sys.exit(1)
    except click.exceptions.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
