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
ModelRefOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Bundle directory, models:/NAME@ALIAS or models:/NAME/VERSION.",
    ),
]
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

# The data selection and split that train and tune share (tune must split as train does).
FeaturesOpt = Annotated[
    str | None,
    typer.Option(help="Comma-separated feature columns, e.g. bmi,bp [default: all but target]."),
]
DataVersionOpt = Annotated[
    int | None,
    typer.Option(min=0, help="Clean lake version of --dataset to use (time travel)."),
]
TestSizeOpt = Annotated[
    str | None, typer.Option(help="Test fraction (0.2) or row count (20) [default: 0.2].")
]
ShuffleOpt = Annotated[
    bool,
    typer.Option("--shuffle/--no-shuffle", help="--no-shuffle: last rows are the test set."),
]
RandomStateOpt = Annotated[
    int | None, typer.Option(help="Seed of split and estimator [default: 42].")
]
SplitKeyOpt = Annotated[
    str | None,
    typer.Option(
        help="Split by a hash of this identifier column (e.g. id): rows keep their side; "
        "not a feature unless --features names it."
    ),
]


def learning_rate(value: str | None) -> float | None:
    """``--learning-rate``: a positive number, or ``auto`` (the default: None)."""
    if value is None or value.strip().lower() == "auto":
        return None
    try:
        rate = float(value)
    except ValueError:
        rate = float("nan")
    if not rate > 0 or rate == float("inf"):
        raise typer.BadParameter(f"expected a positive number or 'auto', got {value!r}")
    return rate


LearningRateOpt = Annotated[
    float | None,
    typer.Option(
        parser=learning_rate,
        metavar="RATE|auto",
        help="Step size of gd/sgd/minibatch [default: auto].",
    ),
]
