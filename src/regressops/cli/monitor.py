"""``regressops monitor``: drift of the logged (or given) rows against the model's reference.

Exit codes: 0 whatever the verdict, unless ``--fail-on`` names it: 8 for dataset drift
(``--fail-on drift``), 9 for degraded performance (``--fail-on performance``); errors keep
theirs (2 options and settings, 3 data, 4 model/bundle, 6 registry).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from regressops.cli.options import EngineOpt, JsonOpt, SchedulerOpt
from regressops.cli.support import error_line, out, print_json, run, shown

FAIL_ON = ("drift", "performance")


def monitor(
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Bundle directory or models:/NAME@ALIAS."),
    ] = None,
    prediction_log: Annotated[
        str | None,
        typer.Option(help="JSON-lines path or SQLAlchemy URL (default: the server's default)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Rows logged since: 24h, 30m, 7d or an ISO time.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Rows logged until this ISO time.")] = None,
    last: Annotated[int | None, typer.Option(min=1, help="The newest N logged rows.")] = None,
    reference_data: Annotated[
        Path | None, typer.Option(help="Reference table (CSV/Parquet) instead of the bundle's.")
    ] = None,
    reference_dataset: Annotated[
        str | None, typer.Option(help="A dataset (its lake version) as the reference.")
    ] = None,
    data_version: Annotated[
        int | None, typer.Option(min=0, help="Lake version of --reference-dataset.")
    ] = None,
    current_data: Annotated[
        Path | None,
        typer.Option(
            help="Current table (CSV/Parquet; with --engine dask also a folder) instead of the log."
        ),
    ] = None,
    current_dataset: Annotated[
        str | None,
        typer.Option(help="With --engine dask: a dataset's clean lake version as current data."),
    ] = None,
    current_version: Annotated[
        int | None, typer.Option(min=0, help="Lake version of --current-dataset.")
    ] = None,
    target: Annotated[
        str | None, typer.Option(help="The column of the tables that is not a feature.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option(
            help="request_id,row,label file: performance on those rows (default: the labels "
            "POST /feedback stored beside the log)."
        ),
    ] = None,
    shadow: Annotated[
        str | None,
        typer.Option(
            help="The challenger to compare on the labelled rows: models:/NAME@ALIAS or a "
            "bundle (default: the one the log holds shadow rows of)."
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Folder for drift.json and report.html."),
    ] = None,
    json_output: JsonOpt = False,
    engine: EngineOpt = None,
    scheduler: SchedulerOpt = None,
    fail_on: Annotated[
        list[str] | None,
        typer.Option(
            help="Exit 8 on dataset drift ('drift'), 9 on degraded performance ('performance')."
        ),
    ] = None,
) -> None:
    """Judge drift (and performance, given labels) of the logged rows against the reference.

    With --engine dask: the statistics of a large --current-data (Parquet/CSV file or folder)
    or --current-dataset are computed per partition on a Dask cluster and combined.
    """
    from regressops.cli import compute
    from regressops.config import get_settings
    from regressops.errors import ConfigError
    from regressops.monitoring.monitor import (
        MonitorRequest,
        check_output_dir,
        parse_time,
        run_monitor,
        write_report,
    )
    from regressops.monitoring.window import LogSelection

    settings = get_settings()
    fail = [f.strip() for item in fail_on or [] for f in item.split(",") if f.strip()]
    bad = [f for f in fail if f not in FAIL_ON]
    if bad:
        run(_refuse, ConfigError(f"--fail-on takes drift or performance, not {bad[0]!r}"))
    since_at = run(parse_time, since) if since else None
    until_at = run(parse_time, until) if until else None
    partitioned = compute.engine_requested(engine, scheduler) and (
        engine is not None
        or scheduler is not None
        or current_data is not None
        or current_dataset is not None
    )
    if partitioned:
        _check_partitioned(
            current=current_data is not None or current_dataset is not None,
            log=bool(prediction_log or since or until or last or labels),
        )
    elif current_dataset is not None or current_version is not None:
        compute.fail_config("--current-dataset reads over partitions: add --engine dask")
    directory = output or settings.reports_dir / "monitor"
    created = not directory.exists()
    run(check_output_dir, directory)  # before any work: an unwritable folder fails at once
    request = MonitorRequest(
        model=model,
        prediction_log=prediction_log,
        selection=LogSelection(since=since_at, until=until_at, last=last),
        reference_data=reference_data,
        reference_dataset=reference_dataset,
        data_version=data_version,
        current_data=current_data,
        target=target,
        labels=labels,
        shadow=shadow,
    )
    try:
        if partitioned:
            report = _run_partitioned(
                request,
                engine=engine,
                scheduler=scheduler,
                current_data=current_data,
                current_dataset=current_dataset,
                current_version=current_version,
            )
        else:
            report = run(run_monitor, request, settings=settings)
        json_path, html_path = run(write_report, report, directory)
    except typer.Exit:
        if created and not any(directory.iterdir()):
            directory.rmdir()  # a failed run leaves no trace, not even an empty folder
        raise
    doc = report.to_dict()
    if json_output:
        doc.pop("distributions", None)
        print_json(doc)
    else:
        _table(doc, json_path, html_path)
    code = exit_code(doc, fail)
    if code:
        error_line(
            "dataset drift" if code == DRIFT_EXIT else "performance degraded"
        )  # the reason of a non-zero exit, on stderr
        raise typer.Exit(code)


def _check_partitioned(*, current: bool, log: bool) -> None:
    from regressops.cli import compute

    if not current:
        compute.fail_config(
            "monitor --engine dask reads a large table: give --current-data PATH or "
            "--current-dataset NAME"
        )
    if log:
        compute.fail_config(
            "monitor --engine dask reads --current-data or --current-dataset, not the prediction "
            "log; drop --prediction-log, --since, --until, --last and --labels"
        )


def _run_partitioned(
    request: Any,
    *,
    engine: str | None,
    scheduler: str | None,
    current_data: Path | None,
    current_dataset: str | None,
    current_version: int | None,
) -> Any:
    """The report of a window read over partitions (``--engine dask``)."""
    from regressops.cli import compute
    from regressops.compute.inputs import InputSelection
    from regressops.monitoring.partitioned import run_monitor_partitioned

    selection = run(
        InputSelection,
        path=str(current_data) if current_data is not None else None,
        dataset=current_dataset,
        version=current_version,
        target=request.target,
    )
    return run(
        run_monitor_partitioned,
        request,
        selection,
        compute=compute.request(engine, scheduler),
    )


DRIFT_EXIT = 8
DEGRADED_EXIT = 9


def exit_code(doc: dict[str, Any], fail_on: list[str]) -> int:
    """The exit code ``--fail-on`` asks for: 8 dataset drift, 9 degraded performance, else 0."""
    if "drift" in fail_on and doc.get("status") == "drift":
        return DRIFT_EXIT
    perf = doc.get("performance") or {}
    if "performance" in fail_on and perf.get("degraded"):
        return DEGRADED_EXIT
    return 0


def _refuse(exc: Exception) -> None:
    raise exc


def _table(doc: dict[str, Any], json_path: Path, html_path: Path) -> None:
    from rich.table import Table

    def num(v: Any) -> str:
        return "–" if v is None else f"{v:.4g}"

    table = Table(title="Drift by feature")
    columns = ("feature", "type", "method", "score", "adj. p", "threshold", "verdict", "std score")
    for col in columns:
        table.add_column(col, justify="left" if col in ("feature", "type", "method") else "right")
    colours = {"drift": "red", "ok": "green", "not_enough_data": "yellow", "watch": "yellow"}
    for name, f in doc["features"].items():
        status = f"[{colours.get(f['status'], 'white')}]{f['status']}[/]"
        table.add_row(
            name,
            f["type"],
            f["method"],
            num(f["score"]),
            num(f["p_adjusted"]),
            num(f["threshold"]),
            status,
            num(f["std_score"]),
        )
    console = out()
    console.print(table)
    pred = doc.get("prediction")
    if pred:
        console.print(f"predictions: {pred['method']} {num(pred['score'])} → {pred['status']}")
    perf = doc.get("performance")
    if perf:
        console.print(
            f"performance on {perf['rows_labelled']} labelled rows: rmse {num(perf['rmse'])} "
            f"(test {num(perf['reference'].get('rmse'))}) → {perf['status']}"
        )
        sh = perf.get("shadow")
        if sh:
            console.print(
                f"challenger {sh['model_name']} v{sh['model_version']} in shadow on "
                f"{sh['rows_labelled']} labelled rows: rmse {num(sh['rmse'])} against champion "
                f"v{sh['champion']['model_version']} {num(sh['champion']['rmse'])} → "
                f"{sh['status']}",
                markup=False,
            )
    verdict = {
        "ok": "[green]no dataset drift[/]",
        "drift": "[red]dataset drift[/]",
        "not_enough_data": "[yellow]not enough data[/]",
    }[doc["status"]]
    console.print(
        f"{verdict}: {len(doc['drifted_features'])} of {len(doc['features'])} features drifted "
        f"(share {doc['share_drifted']:.2f}, threshold {doc['drift_share']:.2f}); "
        f"{doc['current']['rows']} current rows"
    )
    engine = doc["current"].get("engine")
    if engine:
        approx = [
            n
            for n, f in doc["features"].items()
            if not f.get("approximation", {}).get("exact", True)
        ]
        unsure = [n for n in approx if not doc["features"][n]["approximation"]["verdict_certain"]]
        console.print(
            f"{engine['partitions']} partitions on {engine['name']} ({engine['scheduler']}); "
            f"{len(approx)} score(s) from quantile summaries, bounds in drift.json"
            + (
                f"; verdict within the bound of its threshold: {', '.join(unsure)}"
                if unsure
                else ""
            ),
            markup=False,
        )
    console.print(f"wrote {shown(json_path)} and {shown(html_path)}")
