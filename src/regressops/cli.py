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

The helpers (imported from :mod:`regressops.cli_support` under these names): ``_run``,
``_fail`` (one red line and an exit code), ``_out`` (stdout console), ``_print_json``,
``_metrics_table``, ``_shown`` (a path as the user would type it) and ``_with_progress``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regressops import __version__
from regressops.cli_support import DEBUG_ENV, OneLineErrors, state
from regressops.cli_support import fail as _fail  # noqa: F401 - for commands to use
from regressops.cli_support import metrics_table as _metrics_table
from regressops.cli_support import out as _out
from regressops.cli_support import print_json as _print_json
from regressops.cli_support import run as _run
from regressops.cli_support import shown as _shown
from regressops.cli_support import with_progress as _with_progress

if TYPE_CHECKING:
    from regressops.training.train import TrainResult


# ---------------------------------------------------------------------- the app
app = typer.Typer(
    cls=OneLineErrors,
    name="regressops",
    help="From a SQL table to a monitored regression API: train, evaluate, predict, serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"regressops {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of errors (also REGRESSOPS_DEBUG=1).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """regressops: train, evaluate and serve regression models, with lineage."""
    state["debug"] = debug or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


DatasetOpt = Annotated[
    str | None,
    typer.Option("--dataset", "-d", help="Built-in dataset: diabetes, insurance or california."),
]
DataOpt = Annotated[
    Path | None, typer.Option("--data", help="A CSV, Parquet or JSON file (needs --target).")
]
TargetOpt = Annotated[str | None, typer.Option("--target", help="Target column of --data.")]
ModelDirOpt = Annotated[Path, typer.Option("--model", "-m", help="Model bundle directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead.")]
TrackingOpt = Annotated[
    str | None,
    typer.Option(help="MLflow tracking URI [default: REGRESSOPS_TRACKING_URI or sqlite in home]."),
]


@app.command()
def train(
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    features: Annotated[
        str | None, typer.Option(help="Comma-separated feature columns, e.g. bmi,bp.")
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            help="Model kind: linear, ridge, tree, forest, hgb; repeat to train candidates on one "
            "split [default: linear]."
        ),
    ] = None,
    solver: Annotated[
        str | None, typer.Option(help="gd, sgd, minibatch or exact [default: exact].")
    ] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Step size of gd/sgd/minibatch [default: auto].")
    ] = None,
    max_iter: Annotated[
        int | None, typer.Option(help="Maximum epochs of iterative solvers.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Samples per minibatch update.")] = None,
    alpha: Annotated[float | None, typer.Option(help="L2 penalty.")] = None,
    test_size: Annotated[
        str | None, typer.Option(help="Test fraction (0.2) or row count (20) [default: 0.2].")
    ] = None,
    shuffle: Annotated[
        bool,
        typer.Option("--shuffle/--no-shuffle", help="--no-shuffle: last rows are the test set."),
    ] = True,
    random_state: Annotated[
        int | None, typer.Option(help="Seed of split and solver [default: 42].")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Bundle directory [default: <home>/models/<name>]."),
    ] = None,
    plots: Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots.")] = True,
    register: Annotated[
        bool, typer.Option("--register", help="Register the best; @champion if its gates pass.")
    ] = False,
    model_name: Annotated[
        str | None, typer.Option(help="Registered model name [default: the dataset's].")
    ] = None,
    tracking_uri: TrackingOpt = None,
    track: Annotated[
        bool | None, typer.Option("--track/--no-track", help="Log the run to MLflow [default: on].")
    ] = None,
    cv: Annotated[
        int | None, typer.Option(help="Folds of cross-validated metrics (0: none).")
    ] = None,
    tuned: Annotated[
        bool, typer.Option("--tuned", help="Use the parameters `regressops tune` wrote back.")
    ] = False,
    data_version: Annotated[
        int | None,
        typer.Option(min=0, help="Clean lake version of --dataset to train on (time travel)."),
    ] = None,
    split_key: Annotated[
        str | None,
        typer.Option(help="Split by a hash of this column (e.g. id): rows keep their side."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Train model(s) on one split, gate, log to MLflow, save bundles; --register the best."""
    from regressops.cli_registry import exit_for, quiet_mlflow, show_recorded
    from regressops.config import get_settings
    from regressops.data.split import parse_test_size
    from regressops.training.candidates import train_candidates

    quiet_mlflow()
    settings = get_settings()
    kinds = model or ["linear"]
    params = _run(_tuned_params, dataset, kinds, settings) if tuned else None
    size = _run(parse_test_size, test_size) if test_size is not None else None
    recorded = _run(
        _with_progress(train_candidates, show=not json_output),
        models=kinds,
        params=params,
        model_name=model_name,
        cv=settings.train.cv if cv is None else cv,
        track=settings.train.track if track is None else track,
        register=register,
        tracking_uri=tracking_uri,
        dataset=dataset,
        data=data,
        target=target,
        features=features.split(",") if features is not None else None,
        solver=solver,
        learning_rate=learning_rate,
        max_iter=max_iter,
        batch_size=batch_size,
        alpha=alpha,
        test_size=size,
        shuffle=shuffle,
        random_state=random_state,
        output=output,
        plots=plots,
        data_version=data_version,
        split_key=split_key,
    )
    if json_output:
        if len(recorded.candidates) == 1:
            _print_json({**recorded.best.result.to_dict(), "tracking": recorded.to_dict()})
        else:
            _print_json(
                {
                    **recorded.to_dict(),
                    "candidates": [c.result.to_dict() for c in recorded.candidates],
                }
            )
        exit_for(recorded, register)
        return
    from regressops.cli_data import training_data_line

    _out().print(training_data_line(recorded.best.result.bundle.lineage), markup=False)
    if len(recorded.candidates) == 1:
        _show_training(recorded.best.result)
    show_recorded(recorded, register)
    exit_for(recorded, register)


def _tuned_params(dataset: str | None, kinds: list[str], settings: Any) -> dict[str, Any]:
    from regressops.errors import ConfigError
    from regressops.training.tune import load_tuned_params

    if dataset is None:
        raise ConfigError("--tuned needs --dataset (tuned parameters are kept per dataset)")
    return {kind: load_tuned_params(dataset, kind, settings) for kind in kinds}


def _show_training(result: TrainResult) -> None:
    m = result.metrics
    solver = m.get("fit", {}).get("solver")
    title = f"{result.bundle.name}: {result.bundle.kind}" + (f" ({solver})" if solver else "")
    _metrics_table(title, {"test": {**m, "n": m.get("n_test")}, "train": m.get("train", {})})
    out = _out()
    out.print(f"bundle: {_shown(result.path)}  ({result.seconds:.2f}s)", markup=False)
    if not result.converged:
        n_iter = m.get("fit", {}).get("n_iter")
        out.print(
            f"[yellow]warning:[/yellow] the solver stopped at max_iter={n_iter} before "
            "converging; raise --max-iter or --learning-rate"
        )


@app.command()
def evaluate(
    model: ModelDirOpt,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    test_rows: Annotated[
        bool,
        typer.Option(
            "--test-rows", help="Score only the bundle's own test rows (needs its training data)."
        ),
    ] = False,
    report: Annotated[
        Path | None,
        typer.Option(
            help="Write the JSON report here [default: <home>/reports/evaluate-<model>.json]."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Score a model bundle on a dataset or a labelled file."""
    from regressops.config import get_settings
    from regressops.training.evaluate import evaluate as evaluate_model

    report = report or get_settings().reports_dir / f"evaluate-{model.resolve().name}.json"
    result = _run(
        evaluate_model,
        model,
        dataset=dataset,
        data=data,
        target=target,
        rows="test" if test_rows else "all",
        report=report,
    )
    if json_output:
        _print_json(result.to_dict())
        return
    source = result.data.get("dataset") or result.data.get("path")
    _metrics_table(f"{result.model} on {source} ({result.rows} rows)", {"value": result.metrics})
    if result.report is not None:
        _out().print(f"report: {_shown(result.report)}", markup=False)


@app.command()
def predict(
    model: ModelDirOpt,
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="CSV, Parquet, JSON or JSON-lines input file.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output file; its suffix picks the format.")
    ],
    json_output: JsonOpt = False,
) -> None:
    """Predict every row of a file; write the rows with a 'prediction' column."""
    from regressops.training.evaluate import predict as predict_file

    result = _run(predict_file, model, input_path, output)
    if json_output:
        _print_json(result.to_dict())
        return
    message = f"wrote {result.rows} predictions of {result.model} to {_shown(result.output)}"
    _out().print(message, markup=False)


@app.command()
def quickstart(json_output: JsonOpt = False) -> None:
    """Train on the built-in diabetes data, print metrics and the commands to run next."""
    from regressops.cli_registry import quickstart_registry_steps, quiet_mlflow
    from regressops.pipelines.quickstart import quickstart as run_quickstart

    quiet_mlflow()
    result = _run(_with_progress(run_quickstart, show=not json_output))
    if json_output:
        _print_json(result.to_dict())
        return
    _show_training(result.train)
    if result.data is not None:
        from regressops.cli_data import show_data_path

        show_data_path(result.data, result.train.bundle.lineage)
    bundle = _shown(result.train.path)
    steps = [
        f"regressops evaluate --model {bundle} --dataset {result.dataset} --test-rows",
        f"regressops predict --model {bundle} --input {_shown(result.sample_input)} "
        "--output predictions.csv",
    ]
    if "serve" in _command_names():
        steps.append(f"regressops serve --model {bundle}")
    steps += quickstart_registry_steps(result.registry)
    out = _out()
    out.print("\n[bold]Next:[/bold]")
    for step in steps:
        out.print(f"  {step}", markup=False)


@app.command()
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

    _run(
        run_server,
        model=model,
        host=host,
        port=port,
        workers=workers,
        prediction_log=prediction_log,
        access_log=access_log,
    )


@app.command()
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
    from regressops.serving.log_reader import last_log_rows

    settings = get_settings()
    target = prediction_log if prediction_log is not None else settings.serve.prediction_log
    rows, total = _run(last_log_rows, target, settings.home, last)
    if json_output:
        _print_json({"total_rows": total, "rows": rows})
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
    _out().print(table)


def _mount_registry_commands() -> None:
    from regressops.cli_registry import models_app, tune

    app.command()(tune)
    app.add_typer(models_app, name="models")


_mount_registry_commands()


def _mount_data_commands() -> None:
    from regressops.cli_data import data_app, demo_db, extract, validate

    app.command("demo-db")(demo_db)
    app.command()(extract)
    app.command()(validate)
    app.add_typer(data_app, name="data")


_mount_data_commands()


def _command_names() -> set[str]:
    return {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}


def main() -> None:
    """Console-script entry point (``regressops``)."""
    app()


if __name__ == "__main__":
    main()
