"""Command-line commands of the registry: ``tune``, ``models list|promote|rollback|archive``,
and the training output they share with ``train`` (leaderboard, tracking lines).

:mod:`regressops.cli` mounts these (``app.command()(tune)``, ``app.add_typer(models_app)``).
Heavy modules (MLflow, Optuna, scikit-learn) are imported inside the commands only.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regressops.cli_support import err, fail, out, print_json, run, shown

if TYPE_CHECKING:
    from regressops.training.candidates import Recorded

TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI [default: REGRESSOPS_TRACKING_URI or sqlite under home].",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead.")]

models_app = typer.Typer(
    name="models",
    help="The model registry: list, promote, rollback, archive.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def quiet_mlflow() -> None:
    """Keep MLflow's INFO lines off the terminal (unless MLFLOW_LOGGING_LEVEL says otherwise)."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")


def _settings(tracking_uri: str | None) -> Any:
    from regressops.config import get_settings

    settings = get_settings()
    if tracking_uri:
        settings = settings.model_copy(update={"tracking_uri": tracking_uri})
    return settings


def _client(tracking_uri: str | None) -> tuple[Any, str, Any]:
    from regressops.registry.connection import connect

    quiet_mlflow()
    settings = _settings(tracking_uri)
    store = settings.resolved_tracking_uri
    return run(connect, store), store, settings


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
        from regressops.registry.connection import redact_uri

        runs = ", ".join(f"{c.kind}={c.run_id}" for c in recorded.candidates)
        console.print(f"logged to {redact_uri(recorded.tracking_uri)}: {runs}", markup=False)
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
    from regressops.registry.connection import is_http, redact_uri

    name = recorded.name
    ui = (
        f"open {redact_uri(recorded.tracking_uri)} in a browser"
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
    settings = _settings(tracking_uri)
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


# ---------------------------------------------------------------------- models
@models_app.command("list")
def list_models(
    name: Annotated[
        str | None, typer.Argument(help="A registered model: list its versions.")
    ] = None,
    tracking_uri: TrackingOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """List registered models, or the versions of one with aliases, status and metrics."""
    from rich.table import Table

    from regressops.registry import lifecycle

    client, _, _ = _client(tracking_uri)
    cols: tuple[str, ...]
    if name is None:
        rows = run(lifecycle.list_models, client)
        cols = ("name", "latest", "champion", "challenger", "updated")
    else:
        rows = run(lifecycle.list_versions, client, name)
        cols = ("version", "aliases", "status", "kind", "r2", "rmse", "gates", "by", "at", "why")
    if json_output:
        print_json(rows)
        return
    table = Table(title=name or "registered models", title_justify="left")
    for col in cols:
        table.add_column(col, no_wrap=col != "why", overflow="ellipsis", max_width=48)
    for row in rows:
        table.add_row(*(_cell(row.get(c)) for c in cols))
    out().print(table)


@models_app.command()
def promote(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number to promote.")],
    alias: Annotated[str, typer.Option(help="champion or challenger.")] = "champion",
    force: Annotated[
        bool, typer.Option("--force", help="Skip the gates (needs --reason).")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why; recorded on the version.")] = "",
    tracking_uri: TrackingOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Give a version @champion (or @challenger) after re-checking its quality gates."""
    from regressops.training.promotion import promote_version

    quiet_mlflow()
    change = run(
        promote_version, name, version, alias=alias, why=reason, force=force,
        settings=_settings(tracking_uri),
    )  # fmt: skip
    _show_change(change, json_output)


@models_app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on both versions.")] = "",
    tracking_uri: TrackingOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Give @champion back to the version the current champion replaced."""
    from regressops.registry import lifecycle

    client, store, _ = _client(tracking_uri)
    _show_change(run(lifecycle.rollback, client, store, name, why=reason), json_output)


@models_app.command()
def archive(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    version: Annotated[str, typer.Argument(help="Version number to archive.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on the version.")] = "",
    tracking_uri: TrackingOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Mark a version archived (never the champion)."""
    from regressops.registry import lifecycle

    client, store, _ = _client(tracking_uri)
    _show_change(run(lifecycle.archive, client, store, name, version, why=reason), json_output)


def _show_change(change: Any, json_output: bool) -> None:
    if json_output:
        print_json({k: v for k, v in change.__dict__.items()})
        return
    what = {
        "unchanged": f"{change.name} v{change.version} is {change.detail}; nothing changed",
        "rollback": f"{change.name}: @champion is back on v{change.version} "
        f"(v{change.previous} archived)",
        "archived": f"{change.name} v{change.version} archived",
    }.get(change.action)
    if what is None:
        was = f" (was v{change.previous})" if change.previous else ""
        what = f"{change.name} v{change.version} is now {change.action}{was}; gates {change.gates}"
    out().print(what, markup=False)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value)
    text = str(value)
    if len(text) == 25 and text[10] == "T" and text.endswith("+00:00"):
        return text[:16].replace("T", " ")  # an ISO time in UTC, to the minute
    return text
