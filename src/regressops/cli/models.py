"""Command-line commands of the registry: ``tune``, ``models list|promote|rollback|archive``,
and the training output they share with ``train`` (leaderboard, tracking lines).

:mod:`regressops.cli` mounts these (``app.command()(tune)``, ``app.add_typer(models_app)``).
Heavy modules (MLflow, Optuna, scikit-learn) are imported inside the commands only.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regressops.cli.options import JsonOpt, TrackingOpt
from regressops.cli.support import out, print_json, quiet_mlflow, run, settings_for

if TYPE_CHECKING:
    pass

models_app = typer.Typer(
    name="models",
    help="The model registry: list, promote, rollback, archive.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _client(tracking_uri: str | None) -> tuple[Any, str, Any]:
    from regressops.registry.connection import connect

    quiet_mlflow()
    settings = settings_for(tracking_uri)
    store = settings.resolved_tracking_uri
    return run(connect, store), store, settings


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

    from regressops.registry import listing

    store = settings_for(tracking_uri).resolved_tracking_uri

    def client() -> Any:  # only for stores that cannot be read directly (imports MLflow)
        return _client(tracking_uri)[0]

    cols: tuple[str, ...]
    if name is None:
        rows = run(listing.models_at, store, client)
        cols = listing.MODEL_COLUMNS
    else:
        rows = run(listing.versions_at, store, name, client)
        cols = listing.VERSION_COLUMNS
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
    evidence: Annotated[
        Path | None,
        typer.Option(
            help="drift.json of `regressops monitor` comparing this version in shadow with the "
            "champion on labelled rows: judges 'beats the champion' on them."
        ),
    ] = None,
    tracking_uri: TrackingOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Give a version @champion (or @challenger) after re-checking its quality gates."""
    from regressops.training.promotion import promote_version

    quiet_mlflow()
    change = run(
        promote_version, name, version, alias=alias, why=reason, force=force,
        settings=settings_for(tracking_uri), evidence=evidence,
    )  # fmt: skip
    _show_change(change, json_output)


@models_app.command()
def rollback(
    name: Annotated[str, typer.Argument(help="Registered model name.")],
    reason: Annotated[str, typer.Option(help="Why; recorded on both versions.")] = "",
    force: Annotated[
        bool,
        typer.Option("--force", help="May restore an archived version (needs --reason)."),
    ] = False,
    tracking_uri: TrackingOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Give @champion back to the previous champion in the history (skipping archived ones)."""
    from regressops.registry import lifecycle

    client, store, _ = _client(tracking_uri)
    change = run(lifecycle.rollback, client, store, name, why=reason, force=force)
    _show_change(change, json_output)


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
        f"(v{change.previous} archived)" + _skipped(change.report.get("skipped")),
        "archived": f"{change.name} v{change.version} archived",
    }.get(change.action)
    if what is None:
        was = f" (was v{change.previous})" if change.previous else ""
        what = f"{change.name} v{change.version} is now {change.action}{was}; gates {change.gates}"
    out().print(what, markup=False)


def _skipped(versions: list[str] | None) -> str:
    return f"; skipped {', '.join(versions)}" if versions else ""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ",".join(value)
    text = str(value)
    if len(text) == 25 and text[10] == "T" and text.endswith("+00:00"):
        return text[:16].replace("T", " ")  # an ISO time in UTC, to the minute
    return text
