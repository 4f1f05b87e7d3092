"""The ``regressops`` command line: one thin command per stage.

Each command parses its options, calls one library function inside :func:`_run` and renders
the result (a Rich table, or JSON with ``--json``). Errors never show a traceback: a
:class:`~regressops.errors.RegressopsError` becomes one red line on stderr and exits with the
error's ``exit_code``; a bad option or argument (Typer/Click usage error) becomes one line and
exit code 2; anything unexpected becomes one line and exit code 1, with the traceback shown only
under ``regressops --debug``.

Adding a command: define it with ``@app.command()``, import heavy modules inside the function
(``regressops --help`` must stay fast), and call the library through ``_run``::

    @app.command()
    def serve(model: Annotated[Path, typer.Option(help="Bundle directory.")]) -> None:
        \"\"\"Serve a model over HTTP.\"\"\"
        from regressops.serving import run_server

        _run(run_server, model)

The helpers (imported from :mod:`regressops.cli.support` under these names): ``_run``,
``_fail`` (one red line and an exit code), ``_out`` (stdout console), ``_print_json``,
``_metrics_table``, ``_shown`` (a path as the user would type it) and ``_with_progress``.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from regressops import __version__
from regressops.cli import data, models, monitor, quantize, retrain, serve, train, tune, webhooks
from regressops.cli.support import DEBUG_ENV, OneLineErrors, check_settings, state

# ---------------------------------------------------------------------- the app
app = typer.Typer(
    cls=OneLineErrors,
    name="regressops",
    help="From a SQL table to a monitored regression API: train, evaluate, predict, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts hold "[default: ...]", which is not markup
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"regressops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Show tracebacks of errors and debug log lines (also REGRESSOPS_DEBUG=1).",
        ),
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """regressops: train, evaluate and serve regression models, with lineage."""
    state["debug"] = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")
    if not ctx.resilient_parsing and not {"--help", "-h"} & set(state["argv"]):
        check_settings()  # every command: one line and exit code 2 for invalid settings


app.command()(train.train)
app.command()(train.evaluate)
app.command()(train.predict)
app.command()(train.quickstart)
app.command()(tune.tune)
app.command()(quantize.quantize)
app.command()(serve.serve)
app.command()(serve.predictions)
app.command()(serve.trace)
app.command()(monitor.monitor)
app.command()(retrain.retrain)
app.command("demo-db")(data.demo_db)
app.command()(data.extract)
app.command()(data.validate)
app.add_typer(data.data_app, name="data")
app.add_typer(models.models_app, name="models")
app.add_typer(webhooks.webhooks_app, name="webhooks")
app.add_typer(retrain.pipeline_app, name="pipeline")


def command_names() -> set[str]:
    """Names of the root commands (the quickstart lists the next steps it can offer)."""
    return {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}


def main() -> None:
    """Console-script entry point (``regressops``).

    With ``--debug`` (or ``REGRESSOPS_DEBUG=1``) regressops' debug log lines go to stderr too
    (why a run was logged through MLflow, how a log was decoded, ...); set up here, by the
    program, not when the CLI is called in-process.
    """
    import sys

    if "--debug" in sys.argv[1:] or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false"):
        debug_logging()
    app()


def debug_logging() -> None:
    """Send regressops' log lines from DEBUG up to stderr as ``LEVEL logger: message``."""
    import logging

    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("regressops")
    log.addHandler(handler)
    log.setLevel(logging.DEBUG)


if __name__ == "__main__":
    main()
