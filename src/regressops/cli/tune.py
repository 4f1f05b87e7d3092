"""``regressops tune``: search a model kind's hyper-parameters on the rows ``train`` trains on.

``tune`` takes the same data selection and split options as ``train`` (``--dataset``/``--data``,
``--features``, ``--data-version``, ``--test-size``, ``--no-shuffle``, ``--random-state``,
``--split-key``) and builds the same request objects from them, so the rows it searches are the
training rows of the split ``train`` draws: no row of ``train``'s test set is seen by tuning.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from regressops.cli.options import (
    DataOpt,
    DatasetOpt,
    DataVersionOpt,
    FeaturesOpt,
    JsonOpt,
    RandomStateOpt,
    ShuffleOpt,
    SplitKeyOpt,
    TargetOpt,
    TestSizeOpt,
    TrackingOpt,
)
from regressops.cli.requests import data_selection, split_plan
from regressops.cli.support import err, out, print_json, quiet_mlflow, run, settings_for, shown


def tune(
    dataset: DatasetOpt = None,
    data: DataOpt = None,
    target: TargetOpt = None,
    features: FeaturesOpt = None,
    model: Annotated[str, typer.Option("--model", help="Model kind to tune.")] = "hgb",
    trials: Annotated[int, typer.Option(help="Number of Optuna trials.")] = 20,
    cv: Annotated[int, typer.Option(help="Cross-validation folds per trial.")] = 5,
    test_size: TestSizeOpt = None,
    shuffle: ShuffleOpt = True,
    random_state: RandomStateOpt = None,
    split_key: SplitKeyOpt = None,
    data_version: DataVersionOpt = None,
    track: Annotated[bool, typer.Option("--track/--no-track", help="Log to MLflow.")] = True,
    tracking_uri: TrackingOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Tune a model kind with Optuna (TPE, k-fold CV on train's training rows); log to MLflow."""
    from regressops.training.sources import load_training_data
    from regressops.training.tune import tune as run_tune

    quiet_mlflow()
    settings = settings_for(tracking_uri)
    selection = run(data_selection, dataset, data, target, features, data_version)
    plan = run(split_plan, settings, test_size, shuffle, random_state, split_key)
    loaded = run(load_training_data, selection, settings=settings, key=plan.key)
    with _trial_bar(not json_output, trials, model) as progress:
        result = run(
            run_tune, loaded, plan, kind=model, n_trials=trials, cv=cv, track=track,
            progress=progress, settings=settings,
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
    if result.params_path is not None:
        console.print(f"parameters written to {shown(result.params_path)}", markup=False)
    split_args = "".join(
        f" {flag} {value}"
        for flag, value in (("--split-key", split_key), ("--test-size", test_size))
        if value is not None
    ) + ("" if shuffle else " --no-shuffle")
    console.print(
        f"train with them: regressops train --dataset {dataset or ''} --model {model} --tuned"
        f"{split_args}",
        markup=False,
    )
    if result.tracking_error:
        err().print(f"[yellow]warning:[/yellow] not logged to MLflow: {result.tracking_error}")
    elif result.parent_run_id:
        console.print(f"logged to MLflow: parent run {result.parent_run_id}", markup=False)


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
