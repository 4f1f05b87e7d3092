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
    shadow: Annotated[
        str | None,
        typer.Option(
            help="A challenger (bundle or models:/NAME@challenger) scoring every served row off "
            "the request path; its predictions are logged beside the served model's."
        ),
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
        shadow=shadow,
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


def trace(
    request_id: Annotated[str, typer.Argument(help="X-Request-ID of an answered prediction.")],
    prediction_log: Annotated[
        str | None,
        typer.Option(help="JSON-lines path or SQLAlchemy URL (default: the server's default)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Walk back from a prediction: its rows, model version, training run, lake version, source."""
    from rich.table import Table

    from regressops.pipelines.trace import trace as run_trace

    result = run(run_trace, request_id, prediction_log=prediction_log)
    if json_output:
        print_json(result.to_dict())
        return
    console = out()
    model = result.model
    console.print(
        f"request {result.request_id}: {len(result.rows)} rows answered by {model['name']} "
        f"version {model['version']} on {model['endpoint']} at {model['ts'][:19]} UTC",
        markup=False,
    )
    table = Table(title="rows and predictions", title_justify="left")
    names = list(result.rows[0]["features"])
    for col in ["row", *names, "prediction"]:
        table.add_column(col, justify="right", overflow="ellipsis", max_width=14)
    for r in result.rows[:20]:
        values = [f"{v:.6g}" if isinstance(v, float) else str(v) for v in r["features"].values()]
        table.add_row(str(r["row"]), *values, f"{r['prediction']:.6g}")
    console.print(table)
    if len(result.rows) > 20:
        console.print(f"... {len(result.rows) - 20} more rows (--json shows all)", markup=False)
    walk = Table(title="where it came from", title_justify="left", show_header=False)
    walk.add_column("what", style="bold")
    walk.add_column("value", overflow="fold")
    steps = {
        "model bundle": model.get("bundle"),
        "training run": result.training.get("run_id"),
        "trained at": result.training.get("trained_at"),
        "test metrics": ", ".join(
            f"{k} {v:.4g}" for k, v in (result.training.get("metrics") or {}).items()
        ),
        "dataset": result.data.get("dataset"),
        "lake (clean)": _version(result.data, "clean"),
        "lake (raw)": _version(result.data, "raw"),
        "validation report": result.data.get("validation_report"),
        "source": result.data.get("source_url"),
        "source table": result.data.get("source_table"),
        "source query": result.data.get("source_query"),
        "content hash": result.data.get("content_hash"),
    }
    for what, value in steps.items():
        if value not in (None, ""):
            walk.add_row(what, str(value))
    console.print(walk)
    for note in result.notes:
        console.print(f"note: {note}", markup=False)


def _version(data: dict[str, object], which: str) -> str | None:
    table = data.get(f"{which}_table")
    return None if table is None else f"{table} @ version {data.get(f'{which}_version')}"
