"""Data-platform commands: ``demo-db``, ``extract``, ``validate`` and ``data show``.

Mounted on the root app by :mod:`regressops.cli`. Each command calls one library function of
:mod:`regressops.data` through :func:`~regressops.cli.support.run` (one-line errors, exit
codes) and prints a short summary, or JSON with ``--json``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from regressops.cli.options import DatasetNameOpt, JsonOpt
from regressops.cli.support import err, out, print_json, run, shown
from regressops.errors import ConfigError

if TYPE_CHECKING:
    from regressops.pipelines.data_path import DataPathResult

data_app = typer.Typer(
    help="Inspect the lake: datasets, versions, row counts, validation reports.",
    no_args_is_help=True,
)


def demo_db(
    url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL or env:VAR [default: sqlite:///<home>/demo.db]."),
    ] = None,
    dataset: Annotated[
        str, typer.Option("--dataset", "-d", help="insurance, diabetes or california.")
    ] = "insurance",
    table: Annotated[
        str | None, typer.Option(help="TABLE or SCHEMA.TABLE [default: the dataset's name].")
    ] = None,
    messy: Annotated[
        bool,
        typer.Option(
            "--messy",
            help="Inject defects: nulls, out-of-range values, duplicates, unknown categories, "
            "numbers as text.",
        ),
    ] = False,
    rows: Annotated[
        int | None, typer.Option(min=1, help="Repeat the data to this many rows (benchmarks).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Seed a source database with a built-in dataset (replacing the table)."""
    from regressops.data.demo_db import seed_demo_db

    result = run(seed_demo_db, url=url, dataset=dataset, table=table, messy=messy, rows=rows)
    if json_output:
        print_json(result.to_dict())
        return
    console = out()
    console.print(
        f"seeded table {result.table} with {result.rows:,} rows of {result.dataset} in "
        f"{result.url} ({result.seconds:.2f}s)",
        markup=False,
    )
    if result.messy:
        kinds = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in result.defects.items())
        console.print(f"defects injected (rows): {kinds}", markup=False)
    source = f" --source-url {url}" if url else ""
    table_opt = f" --table {table}" if table else ""
    console.print(f"next: regressops extract --dataset {dataset}{source}{table_opt}", markup=False)


def extract(
    dataset: DatasetNameOpt,
    source_url: Annotated[
        str | None,
        typer.Option(help="SQLAlchemy URL or env:VAR [default: declared, else the demo db]."),
    ] = None,
    table: Annotated[str | None, typer.Option(help="TABLE or SCHEMA.TABLE to read.")] = None,
    query: Annotated[
        str | None, typer.Option(help="A SELECT to read instead; :name parameters allowed.")
    ] = None,
    param: Annotated[
        list[str] | None, typer.Option(help="A query parameter NAME=VALUE; repeat for more.")
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option(min=1, help="Rows per chunk [default: 100000].")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Read a table or SELECT in chunks and append the new rows as a raw Delta version."""
    from regressops.data.extract import extract as extract_data

    params = run(parse_params, param or [])
    with _rows_progress(show=not json_output, label="extracting") as on_rows:
        result = run(
            extract_data,
            dataset,
            source_url=source_url,
            table=table,
            query=query,
            params=params,
            chunk_size=chunk_size,
            progress=on_rows,
        )
    if json_output:
        print_json(result.to_dict())
        return
    what = f"table {result.table}" if result.table else "query"
    console = out()
    if result.created:
        console.print(
            f"raw v{result.raw_version} of {dataset}: {result.rows_read:,} rows read from {what} "
            f"in {result.source}, {result.rows_new:,} new ({result.seconds:.2f}s)",
            markup=False,
        )
    else:
        console.print(
            f"nothing new: all {result.rows_read:,} rows of {what} are already in the lake; raw "
            f"stays at v{result.raw_version}",
            markup=False,
        )
    console.print(f"lake: {shown(result.lake_path)}", markup=False)
    console.print(f"next: regressops validate --dataset {dataset}", markup=False)


def validate(
    dataset: DatasetNameOpt,
    version: Annotated[
        int | None, typer.Option(min=0, help="Raw version to validate [default: the newest].")
    ] = None,
    on_fail: Annotated[
        str | None,
        typer.Option(
            help="stop: write nothing; quarantine: set failing rows aside; warn: keep them "
            "[default: the dataset's, else stop]."
        ),
    ] = None,
    chunk_size: Annotated[
        int | None, typer.Option(min=1, help="Rows checked at a time [default: 100000].")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Check a raw version against the dataset's schema; write the report and a clean version."""
    from regressops.data.validate import validate as validate_data

    result = run(validate_data, dataset, version=version, on_fail=on_fail, chunk_size=chunk_size)
    if json_output:
        print_json(result.to_dict())
        return
    _checks_table(f"{dataset} raw v{result.raw_version}: {result.status}", result.report["checks"])
    rows = result.rows
    console = out()
    console.print(
        f"{rows['total']:,} rows: {rows['failed']:,} failed, {rows['clean']:,} clean"
        + (
            f", {rows['quarantined']:,} quarantined"
            if result.quarantine_version is not None
            else ""
        )
        + f"; meta-validation {result.report['meta']['status']}",
        markup=False,
    )
    console.print(
        f"clean v{result.clean_version}"
        + (
            f", quarantine v{result.quarantine_version}"
            if result.quarantine_version is not None
            else ""
        )
        + f"; report: {shown(result.report_json)} (+ .csv)",
        markup=False,
    )
    if result.status == "warned":
        console.print(
            "[yellow]warning:[/yellow] failing rows were kept in the clean version (--on-fail warn)"
        )


@data_app.command("show")
def show(
    dataset: Annotated[
        str | None, typer.Option("--dataset", "-d", help="A dataset [default: list them all].")
    ] = None,
    version: Annotated[
        int | None, typer.Option(min=0, help="A clean version to show in detail.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show the lake's datasets, a dataset's versions, or one clean version's lineage."""
    from regressops.data.catalog import describe

    if version is not None and dataset is None:
        run(_raise, ConfigError("--version needs --dataset", reason="missing_dataset"))
    doc = run(describe, dataset, version=version)
    if json_output:
        print_json(doc)
        return
    if dataset is None:
        _overview_table(doc)
        return
    for table, versions in doc["tables"].items():
        _versions_table(f"{dataset} {table}", versions)
    if doc["detail"] is not None:
        _detail(doc["detail"])


def training_data_line(lineage: dict[str, Any]) -> str:
    """One line saying which data a model was trained on (lake version or built-in copy)."""
    source = lineage.get("source")
    rows = lineage.get("rows")
    if source == "lake":
        return (
            f"data: {lineage.get('dataset')} clean v{lineage.get('clean_version')} from the lake "
            f"(raw v{lineage.get('raw_version')}, {rows} rows, validation "
            f"{lineage.get('validation_status')}); reproduce with --data-version "
            f"{lineage.get('clean_version')}"
        )
    if source == "dataset":
        return (
            f"data: the built-in copy of {lineage.get('dataset')} ({rows} rows; not extracted "
            "into the lake)"
        )
    return f"data: {lineage.get('path', 'file')} ({rows} rows)"


def show_data_path(data: DataPathResult, lineage: dict[str, Any]) -> None:
    """Print which data a quickstart model was trained on and where each artefact lives."""
    console = out()
    console.print(training_data_line(lineage), markup=False)
    console.print("\n[bold]Artefacts:[/bold]")
    ex, v = data.extract, data.validation
    lines = [
        f"source database: {data.source.url} (table {data.source.table})",
        f"raw Delta table: {shown(ex.lake_path)} (v{ex.raw_version})",
        f"clean Delta table: {shown(ex.lake_path.parent / 'clean')} (v{v.clean_version})",
        f"validation report: {shown(v.report_json)} (+ .csv)",
        f"inspect: regressops data show --dataset {data.source.dataset} --version "
        f"{v.clean_version}",
    ]
    for line in lines:
        console.print(f"  {line}", markup=False)


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["since=2024-01-01", "n=5"]`` → ``{"since": "2024-01-01", "n": 5}``.

    Whole numbers become ``int`` and decimals ``float``, so they compare with numeric columns;
    anything else stays text.
    """
    params: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param {item!r} is not NAME=VALUE", reason="invalid_parameter")
        params[name.strip()] = _number(value)
    return params


# ---------------------------------------------------------------------- rendering
def _number(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _raise(exc: Exception) -> None:
    raise exc


@contextmanager
def _rows_progress(*, show: bool, label: str) -> Iterator[Callable[[int], None] | None]:
    if not show:
        yield None
        return
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,} rows"),
        TimeElapsedColumn(),
        console=err(),
        transient=True,
    )
    task = bar.add_task(label, total=None)
    with bar:
        yield lambda rows: bar.update(task, completed=rows)


def _checks_table(title: str, checks: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for name in ("column", "check", "status", "failures", "examples"):
        table.add_column(name, justify="right" if name == "failures" else "left")
    for c in checks:
        examples = ", ".join(str(e.get("value")) for e in c["examples"][:3])
        style = {"failed": "red", "error": "red"}.get(c["status"], "")
        table.add_row(
            c["column"] or "*",
            c["check"],
            f"[{style}]{c['status']}[/{style}]" if style else c["status"],
            str(c["failures"]),
            examples,
        )
    out().print(table)


def _overview_table(doc: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"lake: {doc['lake']}", title_justify="left")
    for name in ("dataset", "raw", "clean", "quarantine"):
        table.add_column(name)
    for d in doc["datasets"]:
        cells = [
            "" if d[t] is None else f"v{d[t]['version']} ({d[t]['rows']:,} rows)"
            for t in ("raw", "clean", "quarantine")
        ]
        table.add_row(d["dataset"], *cells)
    out().print(table)
    if not doc["datasets"]:
        out().print("the lake is empty; run 'regressops extract --dataset NAME'", markup=False)


def _versions_table(title: str, versions: list[dict[str, Any]]) -> None:
    from rich.table import Table

    if not versions:
        return
    table = Table(title=title, title_justify="left")
    for name in ("version", "time", "rows", "added", "what"):
        table.add_column(name, justify="right" if name in ("rows", "added") else "left")
    for v in versions:
        table.add_row(
            f"v{v['version']}",
            v["timestamp"].replace("T", " ").removesuffix("+00:00"),
            f"{v['rows']:,}",
            "" if v["rows_added"] is None else f"{v['rows_added']:,}",
            v["summary"],
        )
    out().print(table)


def _detail(detail: dict[str, Any]) -> None:
    console = out()
    keys = (
        "clean_version",
        "raw_version",
        "source_url",
        "source_table",
        "source_query",
        "extracted_at",
        "validated_at",
        "validation_status",
        "raw_rows",
        "clean_rows",
        "quarantined_rows",
        "validation_report",
    )
    for key in keys:
        if detail.get(key) is not None:
            value = detail[key]
            if key == "validation_report":
                value = shown(Path(value))
            console.print(f"{key}: {value}", markup=False)
    if detail.get("checks"):
        _checks_table("validation checks", detail["checks"])
