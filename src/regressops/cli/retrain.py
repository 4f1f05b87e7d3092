"""``regressops retrain``: the closed loop once (monitor → extract → validate → train → gate →
promote → reload), and ``regressops pipeline`` (the stages in order; Prefect schedules).

Exit codes: 0 when promoted or not triggered, 7 when the gates kept the champion; errors keep
theirs (2 options and settings, 3 data or validation, 5 source unreachable, 6 registry or
another retrain holding the lock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from regressops.cli.options import JsonOpt
from regressops.cli.support import error_line, out, print_json, quiet_mlflow, run

pipeline_app = typer.Typer(
    help="The stages as one pipeline: run them in order, or serve them on a schedule.",
    no_args_is_help=True,
)


def retrain(
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The dataset to retrain.")],
    when: Annotated[
        str,
        typer.Option(
            "--if", help="Trigger: drift (of the new source rows), performance, or always."
        ),
    ] = "drift",
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="The champion: models:/NAME@champion (default NAME: the dataset)."
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Judge and show what would happen; change nothing.")
    ] = False,
    json_output: JsonOpt = False,
) -> None:
    """Retrain when the trigger fires: new data, gates against the champion, promote, reload."""
    from regressops.pipelines.retrain import RetrainRequest
    from regressops.pipelines.retrain import retrain as run_retrain

    quiet_mlflow()
    request = RetrainRequest(dataset=dataset, when=when, model=model, dry_run=dry_run)  # type: ignore[arg-type]
    record = run(run_retrain, request).to_dict()
    if json_output:
        print_json(record)
    else:
        _summary(record)
    if record["status"] == "kept_champion":
        error_line(f"gates failed; the champion stays: {(record['gates'] or {}).get('summary')}")
        raise typer.Exit(7)


def _summary(record: dict[str, Any]) -> None:
    console = out()
    versions = record["versions"]
    console.print(f"[bold]retrain {record['dataset']}[/] ({record['trigger']}): {record['status']}")
    console.print(f"  why: {record['reason']}")
    if record["drift"]:
        d = record["drift"]
        console.print(
            f"  drift: {d['status']} on {d['rows']} new rows, share {d['share_drifted']:.2f} "
            f"({', '.join(d['drifted_features']) or 'no feature drifted'})"
        )
    if versions.get("candidate"):
        console.print(
            f"  versions: champion {versions.get('champion_before')} → "
            f"{versions.get('champion_after')} (candidate {versions['candidate']})"
        )
    for server in record["reloads"]:
        console.print(f"  reload {server['url']}: {server.get('version') or server.get('error')}")
    console.print(
        f"  took {record['timings'].get('total', 0):.2f}s; record {record['record_path']}"
    )


@pipeline_app.command("run")
def pipeline_run(
    config: Annotated[
        Path | None,
        typer.Option("--config", "-c", help="regressops.toml with the settings to use."),
    ] = None,
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The dataset.")] = "diabetes",
    start: Annotated[
        str | None,
        typer.Option("--from", help="Start at this stage (the earlier ones are not run)."),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Run extract → validate → train → gate → register → monitor; unchanged stages are skipped."""
    from regressops.pipelines.stages import run_pipeline

    quiet_mlflow()
    settings = run(_settings, config)
    result = run(run_pipeline, dataset, start=start, settings=settings)
    if json_output:
        print_json(result)
        return
    console = out()
    for stage in result["stages"]:
        note = stage.get("note") or ""
        console.print(
            f"  {stage['stage']:<9} {stage['status']:<8} {stage['seconds']:>7.2f}s  {note}"
        )
    console.print(f"record {result['record_path']}")


@pipeline_app.command("serve")
def pipeline_serve(
    cron: Annotated[str, typer.Option(help='When to run, as cron: "0 * * * *" every hour.')],
    dataset: Annotated[str, typer.Option("--dataset", "-d", help="The dataset.")] = "diabetes",
    when: Annotated[str, typer.Option("--if", help="Retrain trigger.")] = "drift",
) -> None:
    """Serve the retraining (and monitoring) flow on a Prefect schedule (needs [prefect])."""
    from regressops.flows import serve_retraining

    run(serve_retraining, dataset=dataset, when=when, cron=cron)


def _settings(config: Path | None) -> Any:
    import os

    from regressops.config import CONFIG_FILE_ENV, get_settings
    from regressops.errors import ConfigError

    if config is not None:
        if not config.is_file():
            raise ConfigError(f"--config {config}: no such file", reason="file_not_found")
        os.environ[CONFIG_FILE_ENV] = str(config)
        get_settings.cache_clear()
    return get_settings()
