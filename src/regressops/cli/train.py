"""Model commands: ``train``, ``evaluate``, ``predict``, ``quickstart`` and ``tune``, and the
training output they share (metrics, leaderboard, tracking lines).

Heavy modules (scikit-learn, MLflow, Optuna) are imported inside the commands only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regressops.cli.options import DataOpt, DatasetOpt, JsonOpt, ModelDirOpt, TargetOpt, TrackingOpt
from regressops.cli.support import (
    err,
    fail,
    metrics_table,
    out,
    print_json,
    quiet_mlflow,
    run,
    settings_for,
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
    drop_drifting: Annotated[
        Path | None,
        typer.Option(
            help="A drift.json of `regressops monitor`: train without its drifted features."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Train model(s) on one split, gate, log to MLflow, save bundles; --register the best."""
    from regressops.config import get_settings
    from regressops.data.split import parse_test_size
    from regressops.training.candidates import train_candidates

    quiet_mlflow()
    settings = get_settings()
    kinds = model or ["linear"]
    params = run(_tuned_params, dataset, kinds, settings) if tuned else None
    size = run(parse_test_size, test_size) if test_size is not None else None
    recorded = run(
        with_progress(train_candidates, show=not json_output),
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
        drop_drifting=drop_drifting,
    )
    if json_output:
        if len(recorded.candidates) == 1:
            print_json({**recorded.best.result.to_dict(), "tracking": recorded.to_dict()})
        else:
            print_json(
                {
                    **recorded.to_dict(),
                    "candidates": [c.result.to_dict() for c in recorded.candidates],
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
    result = run(
        evaluate_model,
        model,
        dataset=dataset,
        data=data,
        target=target,
        rows="test" if test_rows else "all",
        report=report,
    )
    if json_output:
        print_json(result.to_dict())
        return
    source = result.data.get("dataset") or result.data.get("path")
    metrics_table(f"{result.model} on {source} ({result.rows} rows)", {"value": result.metrics})
    if result.report is not None:
        out().print(f"report: {shown(result.report)}", markup=False)


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


# ---------------------------------------------------------------------- tune
def tune(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="Built-in dataset name.")
    ] = None,
    data: Annotated[str | None, typer.Option(help="A CSV, Parquet or JSON file.")] = None,
    target: Annotated[str | None, typer.Option(help="Target column of --data.")] = None,
    features: Annotated[str | None, typer.Option(help="Comma-separated feature columns.")] = None,
    model: Annotated[str, typer.Option("--model", help="Model kind to tune.")] = "hgb",
    trials: Annotated[int, typer.Option(help="Number of Optuna trials.")] = 20,
    cv: Annotated[int, typer.Option(help="Cross-validation folds per trial.")] = 5,
    random_state: Annotated[int | None, typer.Option(help="Seed [default: 42].")] = None,
    test_size: Annotated[
        str | None, typer.Option(help="Rows kept out of tuning, as for train [default: 0.2].")
    ] = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log to MLflow.")] = True,
    tracking_uri: TrackingOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Tune a model kind with Optuna (TPE, k-fold CV on the training rows); log to MLflow."""
    quiet_mlflow()
    settings = settings_for(tracking_uri)
    result = run(
        _tune, settings=settings, dataset=dataset, data=data, target=target,
        features=features.split(",") if features else None, model=model, trials=trials, cv=cv,
        random_state=random_state, test_size=test_size, track=track, show=not json_output,
    )  # fmt: skip
    if json_output:
        print_json({**result.__dict__, "params_path": str(result.params_path)})
        return
    console = out()
    console.print(
        f"best {result.kind}: cv rmse {result.best_cv['cv_rmse_mean']:.4g} "
        f"(r2 {result.best_cv['cv_r2_mean']:.4f}) with {result.best_params}",
        markup=False,
    )
    console.print(f"parameters written to {shown(result.params_path)}", markup=False)
    console.print(
        f"train with them: regressops train --dataset {dataset or ''} --model {model} --tuned",
        markup=False,
    )
    if result.tracking_error:
        err().print(f"[yellow]warning:[/yellow] not logged to MLflow: {result.tracking_error}")
    elif result.parent_run_id:
        console.print(f"logged to MLflow: parent run {result.parent_run_id}", markup=False)


def _tune(
    *, settings: Any, dataset: str | None, data: str | None, target: str | None,
    features: list[str] | None, model: str, trials: int, cv: int, random_state: int | None,
    test_size: str | None, track: bool, show: bool,
) -> Any:  # fmt: skip
    from regressops.data.split import parse_test_size, train_test_indices
    from regressops.training.sources import load_training_data
    from regressops.training.tune import tune as run_tune

    td = load_training_data(dataset, data, target, features, settings=settings)
    seed = settings.train.random_state if random_state is None else random_state
    size = parse_test_size(test_size) if test_size else settings.train.test_size
    split = train_test_indices(len(td.frame), test_size=size, random_state=seed)
    rows = td.frame.iloc[split.train]
    with _trial_bar(show, trials, model) as progress:
        return run_tune(
            rows, dataset=td.name, target=td.target, features=td.features,
            categorical=td.categorical, kind=model, n_trials=trials, cv=cv, random_state=seed,
            track=track, progress=progress, settings=settings,
        )  # fmt: skip


class _trial_bar:  # noqa: N801 - used as a context manager like a function
    """A Rich bar over the trials (no-op when not on a terminal)."""

    def __init__(self, show: bool, total: int, kind: str) -> None:
        self.show, self.total, self.kind = show, total, kind
        self.bar: Any = None

    def __enter__(self) -> Any:
        console = err()
        if not self.show or not console.is_terminal:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.bar = Progress(
            TextColumn(f"tuning {self.kind}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"), console=console, transient=True,
        )  # fmt: skip
        task = self.bar.add_task("trials", total=self.total, best="")
        self.bar.__enter__()

        def update(done: int, total: int, best: float) -> None:
            self.bar.update(task, completed=done, best=f"best cv rmse {best:.4g}")

        return update

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
