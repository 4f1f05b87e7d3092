"""Options shared by several commands, declared once so their names and help agree."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DatasetOpt = Annotated[
    str | None,
    typer.Option(
        "--dataset", "-d", help="Dataset: a built-in one or one declared in regressops.toml."
    ),
]
DataOpt = Annotated[
    Path | None, typer.Option("--data", help="A CSV, Parquet or JSON file (needs --target).")
]
TargetOpt = Annotated[str | None, typer.Option("--target", help="Target column of --data.")]
ModelDirOpt = Annotated[Path, typer.Option("--model", "-m", help="Model bundle directory.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON instead.")]
TrackingOpt = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        help="MLflow tracking URI [default: REGRESSOPS_TRACKING_URI or sqlite under home].",
    ),
]

DatasetNameOpt = Annotated[
    str,
    typer.Option(
        "--dataset", "-d", help="Dataset: a built-in one or one declared in regressops.toml."
    ),
]
EngineOpt = Annotated[
    str | None,
    typer.Option(
        "--engine", help="numpy (in this process) or dask [default: [compute] engine, numpy]."
    ),
]
SchedulerOpt = Annotated[
    str | None,
    typer.Option(
        "--scheduler",
        help="Dask scheduler: tcp://HOST:PORT, or local[:N] for N local worker processes.",
    ),
]
