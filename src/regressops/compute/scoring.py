"""Batch scoring over partitions: one Parquet file of predictions per input partition.

Each task reads its partition, predicts with the bundle (features imputed as in training) and
writes the partition's rows plus ``prediction``, ``model_name`` and ``model_version`` columns
as ``part-NNNNN.parquet`` into a temporary sibling of the output folder; only when every
partition has been written is the folder renamed into place, so a failed run (a bad partition,
a worker lost) leaves nothing half-written. A worker holds one partition at a time. The output
folder must be on a filesystem every worker can write to (a local cluster's disk, or a shared
volume).
"""

from __future__ import annotations

import functools
import logging
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from regressops.compute.engines import ComputeRequest, Engine, open_engine
from regressops.compute.partitions import Partition, list_files, read_partition
from regressops.errors import DataError, SchemaError
from regressops.models.bundle import ModelBundle

logger = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
MODEL_COLUMNS = ("model_name", "model_version")


@dataclass(frozen=True)
class ScoringResult:
    """What :func:`score_to_parquet` wrote.

    Attributes
    ----------
    output : Path
        The folder of Parquet files.
    rows : int
        Rows predicted.
    files : int
        Parquet files written (one per partition with rows).
    """

    output: Path
    rows: int
    files: int


def _score_task(part: Partition, *, bundle: ModelBundle, folder: str) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    frame = read_partition(part, None)
    if missing := [c for c in bundle.spec.names if c not in frame.columns]:
        raise SchemaError(
            f"{part.label} lacks feature column(s) {missing} of model {bundle.name!r}",
            reason="partition_schema",
        )
    taken = [c for c in (PREDICTION_COLUMN, *MODEL_COLUMNS) if c in frame.columns]
    if taken:
        raise DataError(
            f"{part.label} already has column(s) {taken}; remove or rename them",
            reason="column_exists",
        )
    if not len(frame):
        return 0
    frame[PREDICTION_COLUMN] = bundle.predict_frame(frame)
    frame[MODEL_COLUMNS[0]] = bundle.name
    frame[MODEL_COLUMNS[1]] = str(bundle.version)
    table = pa.Table.from_pandas(frame, preserve_index=False)
    pq.write_table(table, Path(folder) / f"part-{part.index:05d}.parquet")
    return len(frame)


def score_to_parquet(
    engine: Engine,
    partitions: Sequence[Partition],
    bundle: ModelBundle,
    output: str | Path,
) -> ScoringResult:
    """Predict every row of ``partitions`` into a folder of Parquet files (see module notes).

    Parameters
    ----------
    engine : Engine
        Where the partitions are scored.
    partitions : sequence of Partition
        The input.
    bundle : ModelBundle
        The model (its name and version are written beside each prediction).
    output : path-like
        The folder to write; replaced when it exists.

    Raises
    ------
    DataError
        The input has no rows, a partition already has an output column, or the output
        cannot be written.
    SchemaError
        A partition lacks a feature column or holds an invalid value.
    """
    out = Path(output).resolve()
    if out.exists() and not out.is_dir():
        raise DataError(f"output {out} exists and is not a folder", reason="write_failed")
    staging = out.with_name(f".{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise DataError(
            f"cannot write {out}: {exc.strerror or exc}", reason="write_failed"
        ) from None
    try:
        task = functools.partial(_score_task, bundle=bundle, folder=str(staging))
        counts = engine.map(task, list(partitions))
        rows = sum(counts)
        if rows == 0:
            raise DataError("the input has no rows to predict", reason="empty")
        _replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    files = sum(1 for c in counts if c)
    logger.info("wrote %d predictions of %r in %d files to %s", rows, bundle.name, files, out)
    return ScoringResult(out, rows, files)


def _replace(staging: Path, out: Path) -> None:
    """Put the staged folder at ``out``, replacing an older one."""
    old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
    if out.exists():
        out.rename(old)
    staging.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def predict_files(
    bundle_dir: str | Path, input_path: str | Path, output: str | Path, compute: ComputeRequest
) -> ScoringResult:
    """Load a bundle and score a Parquet/CSV file or folder into ``output`` on ``compute``'s engine.

    Raises
    ------
    BundleError
        The bundle is missing or invalid.
    DataError, SchemaError, ComputeError
        See :func:`score_to_parquet` and :func:`~regressops.compute.engines.open_engine`.
    """
    from regressops.models.bundle import load_bundle

    bundle = load_bundle(bundle_dir)
    listed = list_files(
        input_path, partition_rows=compute.partition_rows, storage_options=compute.options
    )
    with open_engine(compute) as engine:
        return score_to_parquet(engine, listed.partitions, bundle, output)
