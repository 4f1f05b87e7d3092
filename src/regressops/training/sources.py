"""Where training gets its data: the one function that loads and checks a training table.

:func:`load_training_data` takes a built-in dataset name or a file (CSV, Parquet, JSON) with a
target column, checks the target and the feature columns, decides which features are
categorical, and returns a :class:`TrainingData` whose ``lineage`` says exactly which rows were
read (source, path, rows, a SHA-256 of the content). Training and evaluation both call it, so
every data source is added here once: a dataset extracted into the lake is read from its
newest clean Delta version (or the version asked for: time travel), the built-in copy otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

_CHUNK = 1 << 20


@dataclass(frozen=True)
class TrainingData:
    """A checked training table and where it came from.

    Attributes
    ----------
    frame : DataFrame
        The feature columns (in model order) then the target column, index reset to 0..n-1.
    target : str
        Target column: numeric, finite, no missing value.
    features : list of str
        Feature columns in model order.
    categorical : list of str
        The features to one-hot encode: the dataset's declared categoricals plus every
        non-numeric feature column.
    lineage : dict
        JSON-able provenance: ``source`` (``"dataset"`` or ``"file"``), ``dataset`` or
        ``path`` (and ``file_sha256``), ``rows``, ``columns``, ``target``, ``features``,
        ``categorical`` and ``content_hash``, the SHA-256 of the frame's content (see
        :func:`frame_sha256`). Data from the lake (``source="lake"``) also names the clean
        and raw Delta versions, the source URL (without credentials), table or query,
        extraction time, validation report and row counts (see
        :func:`regressops.data.catalog.clean_lineage`).
    keys : ndarray or None
        The values of the ``key`` column asked for (for a key-hash split), row for row.
    """

    frame: pd.DataFrame
    target: str
    features: list[str]
    categorical: list[str]
    lineage: dict[str, Any] = field(default_factory=dict)
    keys: np.ndarray | None = None

    @property
    def name(self) -> str:
        """A short name for the data: the dataset's name or the file's stem."""
        return str(self.lineage.get("dataset") or Path(str(self.lineage.get("path", "data"))).stem)

    @property
    def y(self) -> np.ndarray:
        """The target as a float64 array."""
        return self.frame[self.target].to_numpy(dtype=np.float64)


def load_training_data(
    dataset: str | None = None,
    data: str | os.PathLike[str] | None = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    *,
    settings: Settings | None = None,
    data_version: int | None = None,
    key: str | None = None,
) -> TrainingData:
    """Load a built-in dataset or a table file and check it for training.

    Parameters
    ----------
    dataset : str, optional
        A dataset name: when it has a clean version in the lake (``regressops extract`` then
        ``validate``), the newest clean version is read; otherwise the built-in copy
        (:data:`regressops.datasets.DATASETS`).
    data : path-like, optional
        A CSV, Parquet, JSON or JSON-lines file; needs ``target``.
    target : str, optional
        Target column; defaults to the dataset's target.
    features : sequence of str, optional
        Feature columns in model order; default: the dataset's features, or every column of
        the file except the target.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.
    data_version : int, optional
        Read this clean Delta version of ``dataset`` instead of the newest (time travel).
    key : str, optional
        A column to return in :attr:`TrainingData.keys` (e.g. ``id``, for a key-hash split);
        it need not be a feature.

    Returns
    -------
    TrainingData

    Raises
    ------
    ConfigError
        Neither or both of ``dataset`` and ``data``; no target for a file; an unknown
        dataset; features named twice or including the target.
    DataError
        The file cannot be read or the data has no rows (e.g. a clean version in the lake
        after every row was quarantined); the target or a feature is not a column; the target
        is not numeric or has missing or infinite values.
    """
    settings = settings or get_settings()
    if (dataset is None) == (data is None):
        raise ConfigError(
            "give either a built-in dataset (--dataset NAME) or a file (--data PATH --target "
            "COLUMN), not " + ("both" if dataset is not None else "neither"),
            reason="no_data" if dataset is None else "ambiguous_data",
        )
    if dataset is not None:
        frame, default_target, default_features, declared_cat, lineage = _from_dataset(
            dataset, settings, data_version
        )
    else:
        assert data is not None
        if data_version is not None:
            raise ConfigError(
                "--data-version selects a version of a dataset in the lake; it does not apply "
                "to --data files",
                reason="ambiguous_data",
            )
        if not target:
            raise ConfigError(
                f"--data {data} needs --target COLUMN: the column to predict",
                reason="missing_target",
            )
        frame, lineage = _from_file(Path(data))
        default_target, default_features, declared_cat = target, None, ()
    if len(frame) == 0:
        raise DataError(f"{_where(lineage)} holds no rows; nothing to train on", reason="empty")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    target = target or default_target
    if target not in columns:
        raise DataError(
            f"target column {target!r} is not in the data; available columns: {columns}",
            reason="unknown_column",
        )
    if features is None:
        chosen = (
            list(default_features)
            if default_features and target == default_target
            else [c for c in columns if c != target]
        )
    else:
        chosen = _check_features(features, columns, target)
    if not chosen:
        raise DataError(f"the data has no column besides the target {target!r}", reason="empty")
    keys = None
    if key is not None:
        if key not in columns:
            raise DataError(
                f"split key column {key!r} is not in the data; available columns: {columns}",
                reason="unknown_column",
            )
        keys = frame[key].to_numpy()
    frame = frame[[*chosen, target]].reset_index(drop=True)
    _check_target(frame[target], target)
    categorical = [
        c for c in chosen if c in declared_cat or frame[c].to_numpy().dtype.kind not in "iuf"
    ]
    lineage.update(
        {
            "rows": len(frame),
            "columns": [*chosen, target],
            "target": target,
            "features": chosen,
            "categorical": categorical,
            "content_hash": frame_sha256(frame),
        }
    )
    logger.info("loaded %d rows of %s for training", len(frame), lineage.get("source"))
    return TrainingData(
        frame=frame,
        target=target,
        features=chosen,
        categorical=categorical,
        lineage=lineage,
        keys=keys,
    )


def _where(lineage: dict[str, Any]) -> str:
    """Where training data came from, for a message: lake version, file or dataset."""
    if lineage.get("source") == "lake":
        return f"{lineage['dataset']} clean v{lineage.get('clean_version')} in the lake"
    return str(lineage.get("path") or lineage.get("dataset") or "the training data")


def frame_sha256(frame: pd.DataFrame) -> str:
    """Return a SHA-256 of a frame's column names, dtypes and values, in order.

    Numeric columns are hashed by their bytes (dtype included, so ``1`` and ``1.0`` differ),
    other columns by their values' text with a marker for missing values. The index is not
    part of the hash. Equal frames hash equal across runs, processes and machines.
    """
    h = hashlib.sha256()
    h.update(f"rows={len(frame)}\n".encode())
    for name in frame.columns:
        values = frame[name].to_numpy()
        h.update(f"column={name}\ndtype={values.dtype.kind}{values.dtype.itemsize}\n".encode())
        if values.dtype.kind in "biuf":
            h.update(np.ascontiguousarray(values).astype(values.dtype.newbyteorder("<")).tobytes())
        else:
            for v in values.tolist():
                h.update(b"\x00" if _missing(v) else str(v).encode() + b"\x1f")
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """Return the SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------- helpers
def _from_dataset(
    name: str, settings: Settings, data_version: int | None = None
) -> tuple[pd.DataFrame, str, tuple[str, ...], tuple[str, ...], dict[str, Any]]:
    from regressops.data.catalog import has_clean, read_clean
    from regressops.data.declarations import get_contract
    from regressops.datasets import CALIFORNIA_PATH_ENV, DATASETS, get_dataset

    if has_clean(name, settings):
        contract = get_contract(name, settings)
        frame, clean = read_clean(name, data_version, settings=settings)
        lineage: dict[str, Any] = {"source": "lake", "dataset": name, **clean}
        logger.info(
            "training data: %s clean v%s from the lake (raw v%s)",
            name,
            clean["clean_version"],
            clean["raw_version"],
        )
        return frame, contract.target, contract.features, contract.categorical, lineage
    if data_version is not None:
        raise ConfigError(
            f"--data-version {data_version} needs dataset {name!r} in the lake, but it has no "
            f"clean version; run 'regressops extract --dataset {name}' and 'regressops "
            f"validate --dataset {name}' first",
            reason="not_validated",
        )
    if name in settings.datasets and name not in DATASETS:
        raise DataError(
            f"dataset {name!r} is declared in regressops.toml but has no clean version in the "
            f"lake; run 'regressops extract --dataset {name}' and 'regressops validate "
            f"--dataset {name}' first",
            reason="not_validated",
        )
    info = get_dataset(name)
    logger.info("training data: the built-in copy of %s (not extracted into the lake)", name)
    frame = info.load(settings)
    lineage = {"source": "dataset", "dataset": info.name, "origin": info.source}
    local = settings.datasets.get(info.name, {}).get("path")
    if info.name == "california":
        local = os.environ.get(CALIFORNIA_PATH_ENV) or local
    if local:
        lineage["path"] = str(Path(local).resolve())
    return frame, info.target, info.features, info.categorical, lineage


def _from_file(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    from regressops.data.files import read_table

    frame = read_table(path)
    resolved = path.resolve()
    lineage = {"source": "file", "path": str(resolved), "file_sha256": file_sha256(resolved)}
    return frame, lineage


def _check_features(features: Sequence[str], columns: list[str], target: str) -> list[str]:
    chosen = [str(f).strip() for f in features if str(f).strip()]
    if not chosen:
        raise ConfigError("--features names no column; expected e.g. bmi,bp", reason="no_features")
    if dupes := sorted({f for f in chosen if chosen.count(f) > 1}):
        raise ConfigError(f"feature(s) {dupes} named more than once", reason="duplicate_feature")
    if target in chosen:
        raise ConfigError(
            f"the target {target!r} cannot also be a feature", reason="target_is_feature"
        )
    if unknown := [f for f in chosen if f not in columns]:
        raise DataError(
            f"unknown feature column(s) {unknown}; available columns: "
            f"{[c for c in columns if c != target]}",
            reason="unknown_column",
        )
    return chosen


def _check_target(column: pd.Series, name: str) -> None:
    values = column.to_numpy()
    if values.dtype.kind not in "iuf":
        example = next((v for v in values.tolist() if not _is_number(v)), None)
        raise DataError(
            f"target column {name!r} is not numeric (e.g. {example!r}); regression needs a "
            "numeric target",
            reason="non_numeric_target",
        )
    y = values.astype(np.float64)
    if bad := np.flatnonzero(~np.isfinite(y)).tolist():
        kind = "missing (NaN)" if np.isnan(y[bad[0]]) else "infinite"
        raise DataError(
            f"target column {name!r} has {len(bad)} missing or infinite value(s) (first: row "
            f"{bad[0]}, {kind}); drop or fill those rows first",
            reason="missing_target",
        )


def _missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float | np.floating):
        return bool(np.isnan(v))
    return type(v).__name__ in ("NAType", "NaTType")


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)
