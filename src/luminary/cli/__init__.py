"""The ``luminary`` command: ``luminary <noun> <verb>``, one module per noun.

Errors go to stderr with the fix, and the exit status is non-zero (1 for a Luminary error,
2 for a usage error). Input never produces a traceback: a Luminary error or a file that cannot
be read is one line; anything else is a bug, reported in one line that says how to see its
traceback (``LUMINARY_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys

import typer

from luminary.cli import (
    artifacts,
    bench,
    cost,
    datasets,
    demo,
    events,
    jobs,
    lineage,
    models,
    pools,
    projects,
    resources,
    runs,
    serve,
    server,
    session,
    store,
    tokens,
    tune,
    ui,
)

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
app.add_typer(models.app, name="models")
app.add_typer(datasets.app, name="datasets")
app.add_typer(tokens.app, name="tokens")
app.add_typer(events.app, name="events")
app.add_typer(bench.app, name="bench")
app.add_typer(cost.app, name="cost")
app.add_typer(store.app, name="store")
app.add_typer(jobs.app, name="jobs")
app.add_typer(pools.app, name="pools")
app.add_typer(pools.quotas_app, name="quotas")
app.add_typer(tune.app, name="tune")
app.command("lineage")(lineage.lineage)
app.command("demo")(demo.demo)
app.command("server")(server.server)
app.command("serve")(serve.serve)
app.command("resources")(resources.resources)
app.command("ui")(ui.ui)
app.command("session")(session.session)


@app.callback()
def _root() -> None:
    """Environment: LUMINARY_HOME (default ~/.luminary), LUMINARY_DB, LUMINARY_BLOBS;
    LUMINARY_URI=http://host:port uses a `luminary server` instead (LUMINARY_TOKEN)."""


# Typer re-exports click's exception tree (vendored in recent releases); find its root.
_CLICK_EXCEPTION: type[Exception] = next(
    c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"
)


def main() -> None:
    from rich.text import Text

    from luminary.cli._output import err
    from luminary.errors import LuminaryError

    try:
        code = app(standalone_mode=False)
    except LuminaryError as exc:
        err.print(Text.assemble(("error: ", "bold red"), exc.message), soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except _CLICK_EXCEPTION as exc:
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except OSError as exc:  # a path given on the command line: missing, unreadable, a folder
        where = f": {exc.filename}" if exc.filename else ""
        reason = exc.strerror or str(exc)
        err.print(Text.assemble(("error: ", "bold red"), f"{reason}{where}"), soft_wrap=True)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("LUMINARY_DEBUG", "") not in ("", "0"):
            raise
        msg = (
            f"internal error ({type(exc).__name__}: {exc}); this is a bug in Luminary. Run the "
            "command again with LUMINARY_DEBUG=1 to see the traceback, and report it"
        )
        err.print(Text.assemble(("error: ", "bold red"), msg), soft_wrap=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
