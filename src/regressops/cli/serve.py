"""Serving commands: ``serve`` (a model over HTTP) and ``predictions`` (the log it writes)."""

from __future__ import annotations

from typing import Annotated

import typer

from regressops.cli.options import JsonOpt
from regressops.cli.support import out, print_json, run


def serve(
    model: Annotated[
        str | None,
        typer.Option(help="Bundle directory or models:/NAME@ALIAS (default: serve.model)."),
    ] = None,
    host: Annotated[str | None, typer.Option(help="Bind address (default 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port (default 8000).")] = None,
    workers: Annotated[int | None, typer.Option(min=1, help="Worker processes.")] = None,
    prediction_log: Annotated[
        str | None,
        typer.Option(help="JSON-lines path, SQLAlchemy URL, or 'off' (default: under home)."),
    ] = None,
    access_log: Annotated[bool, typer.Option(help="Log every request line.")] = False,
) -> None:
    """Serve a model over HTTP: seed API, MLflow scoring protocol, Open Inference Protocol."""
    from regressops.serving.server import serve as run_server

    run(
        run_server,
        model=model,
        host=host,
        port=port,
        workers=workers,
        prediction_log=prediction_log,
        access_log=access_log,
    )


def predictions(
    prediction_log: Annotated[
        str | None,
        typer.Option(help="JSON-lines path or SQLAlchemy URL (default: the server's default)."),
    ] = None,
    last: Annotated[int, typer.Option(min=1, help="How many of the newest rows to show.")] = 10,
    json_output: JsonOpt = False,
) -> None:
    """Show the newest rows of the prediction log a server wrote, one row per prediction."""
    from rich.table import Table

    from regressops.config import get_settings
    from regressops.serving.log.reader import last_log_rows

    settings = get_settings()
    target = prediction_log if prediction_log is not None else settings.serve.prediction_log
    rows, total = run(last_log_rows, target, settings.home, last)
    if json_output:
        print_json({"total_rows": total, "rows": rows})
        return
    table = Table(title=f"last {len(rows)} of {total:,} logged predictions (oldest first)")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("request id", no_wrap=True, overflow="ellipsis", max_width=12)
    for col in ("endpoint", "model", "version"):
        table.add_column(col, no_wrap=True, overflow="ellipsis")
    for col in ("row", "prediction", "ms"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            r["ts"][:19].replace("T", " "),
            r["request_id"],
            r["endpoint"],
            r["model_name"],
            r["model_version"],
            str(r["row"]),
            f"{r['prediction']:.6g}",
            f"{r['latency_ms']:.3g}",
        )
    out().print(table)
