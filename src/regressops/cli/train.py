"""Model commands: ``train``, ``evaluate``, ``predict`` and ``quickstart``, and the training
output they share (metrics, leaderboard, tracking lines). ``tune`` is in :mod:`regressops.cli.tune`.

Heavy modules (scikit-learn, MLflow, Optuna) are imported inside the commands only.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from regressops.cli import compute
from regressops.cli.options import (
    DataOpt,
    DatasetOpt,
    DataVersionOpt,
    EngineOpt,
    FeaturesOpt,
    JsonOpt,
    LearningRateOpt,
    ModelRefOpt,
    RandomStateOpt,
    SchedulerOpt,
    ShuffleOpt,
    SplitKeyOpt,
    TargetOpt,
    TestSizeOpt,
    TrackingOpt,
)
from regressops.cli.requests import data_selection, estimator_params, split_plan
from regressops.cli.support import (
    err,
    fail,
    metrics_table,
    out,
    print_json,
    quiet_mlflow,
    run,
    shown,
    with_progress,
)

if TYPE_CHECKING:
    from regressops.training.candidates import Recorded
    from regressops.training.train import TrainResult


def train(
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    features: FeaturesOpt = None,
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
    learning_rate: LearningRateOpt = None,
    max_iter: Annotated[
        int | None, typer.Option(help="Maximum epochs of iterative solvers.")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Samples per minibatch update.")] = None,
    alpha: Annotated[float | None, typer.Option(help="L2 penalty.")] = None,
    test_size: TestSizeOpt = None,
    shuffle: ShuffleOpt = True,
    random_state: RandomStateOpt = None,
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
    data_version: DataVersionOpt = None,
    split_key: SplitKeyOpt = None,
    drop_drifting: Annotated[
        Path | None,
        typer.Option(
            help="A drift.json of `regressops monitor`: train without its drifted features."
        ),
    ] = None,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    quantize: Annotated[
        str | None,
        typer.Option(
            help="int8: quantise the trained linear model into <bundle>-int8 and gate, log and "
            "register that one (the float bundle stays)."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Train model(s) on one split, gate, log to MLflow, save bundles; --register the best."""
    if compute.engine_requested(engine, scheduler):
        options = {k: v for k, v in locals().items() if k not in ("engine", "scheduler")}
        compute.train(engine=engine, scheduler=scheduler, options=options, json_output=json_output)
        return
    from regressops.config import get_settings
    from regressops.training.candidates import RecordPlan, train_candidates

    quiet_mlflow()
    settings = get_settings()
    selection = run(data_selection, dataset, data, target, features, data_version)
    plan = run(split_plan, settings, test_size, shuffle, random_state, split_key)
    estimators = run(
        estimator_params, model or ["linear"], tuned=tuned, dataset=dataset, settings=settings,
        solver=solver, learning_rate=learning_rate, max_iter=max_iter, batch_size=batch_size,
        alpha=alpha,
    )  # fmt: skip
    record = run(
        RecordPlan,
        cv=settings.train.cv if cv is None else cv,
        track=settings.train.track if track is None else track,
        register=register,
        tracking_uri=tracking_uri,
        quantize=quantize,
    )
    recorded = run(
        with_progress(train_candidates, show=not json_output),
        selection, plan, estimators, record=record, output=output, model_name=model_name,
        plots=plots, drop_drifting=drop_drifting, settings=settings,
    )  # fmt: skip
    if json_output:  # one shape for one model or several (docs/cli.md)
        print_json(
            {
                **recorded.best.result.to_dict(),
                "candidates": [c.result.to_dict() for c in recorded.candidates],
                "tracking": recorded.to_dict(),
            }
        )
        exit_for(recorded, register)
        return
    from regressops.cli.data import training_data_line

    out().print(training_data_line(recorded.best.result.bundle.lineage), markup=False)
    if len(recorded.candidates) == 1:
        _show_training(recorded.best.result)
    show_recorded(recorded, register)
    exit_for(recorded, register)


def _show_training(result: TrainResult) -> None:
    m = result.metrics
    solver = m.get("fit", {}).get("solver")
    title = f"{result.bundle.name}: {result.bundle.kind}" + (f" ({solver})" if solver else "")
    metrics_table(title, {"test": {**m, "n": m.get("n_test")}, "train": m.get("train", {})})
    console = out()
    console.print(f"bundle: {shown(result.path)}  ({result.seconds:.2f}s)", markup=False)
    if not result.converged:
        n_iter = m.get("fit", {}).get("n_iter")
        console.print(
            f"[yellow]warning:[/yellow] the solver stopped at max_iter={n_iter} before "
            "converging; raise --max-iter or --learning-rate"
        )


def evaluate(
    model: ModelRefOpt,
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    data_version: DataVersionOpt = None,
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
    """Score a model (bundle directory or models:/ reference) on a dataset or labelled file."""
    from regressops.config import get_settings
    from regressops.training.evaluate import evaluate as evaluate_model

    selection = run(data_selection, dataset, data, target, None, data_version)
    report = report or get_settings().reports_dir / f"evaluate-{_report_stem(model)}.json"
    result = run(
        evaluate_model, model, selection, rows="test" if test_rows else "all", report=report
    )
    if json_output:
        print_json(result.to_dict())
        return
    source = result.data.get("dataset") or result.data.get("path")
    metrics_table(f"{result.model} on {source} ({result.rows} rows)", {"value": result.metrics})
    if result.report is not None:
        out().print(f"report: {shown(result.report)}", markup=False)


def _report_stem(model: str) -> str:
    """``models:/diabetes@champion`` → ``diabetes-champion``; a directory → its name."""
    from regressops.registry.resolve import is_model_uri

    if is_model_uri(model):
        return re.sub(r"[^A-Za-z0-9._-]+", "-", model.split(":/", 1)[1]).strip("-")
    return Path(model).resolve().name


def predict(
    model: ModelRefOpt,
    input_path: Annotated[
        Path, typer.Option("--input", "-i", help="CSV, Parquet, JSON or JSON-lines input file.")
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Output file; its suffix picks the format.")
    ],
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Predict every row of a file; write the rows with a 'prediction' column.

    With --engine dask: every row of a Parquet/CSV file or folder, into a folder of Parquet
    files with the model's name and version beside each prediction.
    """
    if compute.engine_requested(engine, scheduler):
        compute.predict(
            engine=engine,
            scheduler=scheduler,
            model=model,
            input_path=input_path,
            output=output,
            json_output=json_output,
        )
        return
    from regressops.training.evaluate import predict as predict_file

    result = run(predict_file, model, input_path, output)
    if json_output:
        print_json(result.to_dict())
        return
    message = f"wrote {result.rows} predictions of {result.model} to {shown(result.output)}"
    out().print(message, markup=False)


def quickstart(json_output: JsonOpt = False) -> None:
    """Train on the built-in diabetes data, print metrics and the commands to run next."""
    from regressops.pipelines.quickstart import quickstart as run_quickstart

    quiet_mlflow()
    result = run(with_progress(run_quickstart, show=not json_output))
    if json_output:
        print_json(result.to_dict())
        return
    _show_training(result.train)
    if result.data is not None:
        from regressops.cli.data import show_data_path

        show_data_path(result.data, result.train.bundle.lineage)
    bundle = shown(result.train.path)
    steps = [
        f"regressops evaluate --model {bundle} --dataset {result.dataset} --test-rows",
        f"regressops predict --model {bundle} --input {shown(result.sample_input)} "
        "--output predictions.csv",
    ]
    steps.append(f"regressops serve --model {bundle}")
    steps += quickstart_registry_steps(result.registry)
    console = out()
    console.print("\n[bold]Next:[/bold]")
    for step in steps:
        console.print(f"  {step}", markup=False)


# ---------------------------------------------------------------------- train output
def show_recorded(recorded: Recorded, register: bool) -> None:
    """Print the leaderboard (several candidates) and what was logged and registered."""
    from rich.table import Table

    console = out()
    if len(recorded.candidates) > 1:
        table = Table(title=f"{recorded.name}: candidates on one split", title_justify="left")
        for col in ("#", "kind", "r2", "rmse", "mae", "cv rmse", "gates", "bundle"):
            left = col in ("kind", "gates", "bundle")
            table.add_column(col, justify="left" if left else "right", overflow="fold")
        for i, cand in enumerate(recorded.candidates, 1):
            row = cand.row()
            gates = "passed" if cand.gates.passed else "failed: " + ", ".join(row["failed"])
            table.add_row(
                str(i), row["kind"], f"{row['r2']:.4f}", f"{row['rmse']:.4g}",
                f"{row['mae']:.4g}", "" if row["cv_rmse"] is None else f"{row['cv_rmse']:.4g}",
                gates, shown(cand.result.path),
            )  # fmt: skip
        console.print(table)
    else:
        cand = recorded.best
        verdict = "passed" if cand.gates.passed else f"failed ({cand.gates.summary()})"
        cv = cand.cv.get("cv_rmse_mean")
        extra = f"; cv rmse {cv:.4g} ± {cand.cv['cv_rmse_std']:.2g}" if cv is not None else ""
        console.print(f"gates: {verdict}{extra}", markup=False)
    if recorded.tracking_error and not register:  # with --register, exit_for's error says it
        err().print(
            f"[yellow]warning:[/yellow] the run was NOT logged to MLflow: {recorded.tracking_error}"
            "; the bundle above is saved locally"
        )
    elif recorded.tracking_uri:
        from regressops.redact import redact_text

        runs = ", ".join(f"{c.kind}={c.run_id}" for c in recorded.candidates)
        console.print(f"logged to {redact_text(recorded.tracking_uri)}: {runs}", markup=False)
    if register and recorded.version:
        if recorded.change is not None:
            console.print(
                f"registered {recorded.name} v{recorded.version} ({recorded.best.kind}) as "
                f"@champion (was {recorded.change.previous or 'none'})",
                markup=False,
            )
        else:
            console.print(
                f"registered {recorded.name} v{recorded.version}, archived: "
                f"{recorded.gate_summary}",
                markup=False,
            )


def quickstart_registry_steps(recorded: Recorded | None) -> list[str]:
    """Report the quickstart's registration; return the registry commands to run next."""
    if recorded is None:
        return []
    show_recorded(recorded, register=True)
    if recorded.change is None or recorded.tracking_uri is None:
        return []
    from regressops.redact import redact_text
    from regressops.registry.connection import is_http

    name = recorded.name
    ui = (
        f"open {redact_text(recorded.tracking_uri)} in a browser"
        if is_http(recorded.tracking_uri)
        else f"mlflow ui --backend-store-uri {recorded.tracking_uri} --port 5000"
    )
    return [
        f"regressops models list {name}",
        f"regressops serve --model models:/{name}@champion",
        f"{ui}   # the MLflow UI: runs, plots, registered versions",
    ]


def exit_for(recorded: Recorded, register: bool) -> None:
    """Exit non-zero when registration was asked and did not happen or its gates failed."""
    if not register:
        return
    if recorded.tracking_error:
        fail(
            f"the run was not logged and nothing was registered (the bundle is saved locally): "
            f"{recorded.tracking_error}",
            6,
        )
    if recorded.change is None:
        fail(
            f"{recorded.name} v{recorded.version} was registered but archived; its gates failed: "
            f"{recorded.gate_summary}",
            7,
        )
