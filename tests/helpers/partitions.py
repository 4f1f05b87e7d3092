"""Helpers of the compute-engine tests (imported as ``helpers.partitions``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def write_parts(frame: pd.DataFrame, folder: Path, *, files: int, row_group: int) -> Path:
    """Write ``frame`` as ``files`` Parquet files of row groups of ``row_group`` rows, in order."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), files)):
        table = pa.Table.from_pandas(frame.iloc[rows], preserve_index=False)
        pq.write_table(table, folder / f"part-{i:03d}.parquet", row_group_size=row_group)
    return folder


def synthetic(n: int, d: int, *, seed: int = 0, categorical: bool = True) -> pd.DataFrame:
    """A well-conditioned regression table: ``d`` numeric features (some gaps), a category."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)) * rng.uniform(0.5, 20, d) + rng.uniform(-10, 10, d)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(d)])
    y = X @ rng.uniform(-3, 3, d) + 5.0 + rng.standard_normal(n)
    if categorical:
        frame["kind"] = rng.choice(["a", "b", "c"], n)
        y = y + frame["kind"].map({"a": 0.0, "b": 2.0, "c": -1.0}).to_numpy()
    frame["y"] = y
    return frame


def train_rows(frame: pd.DataFrame, plan: Any, *, files: int) -> pd.DataFrame:
    """The rows of ``frame`` (as written by :func:`write_parts`) that ``plan`` trains on."""
    from regressops.compute.rows import held_out

    masks = [
        held_out(plan, i, 0, len(rows))
        for i, rows in enumerate(np.array_split(np.arange(len(frame)), files))
    ]
    return frame[~np.concatenate(masks)]
