"""Where training gets its data: the one function that loads and checks a training table.

:func:`load_training_data` takes a :class:`~regressops.data.selection.DataSelection` (a dataset,
built in or declared in ``regressops.toml``, or a file with a target column), checks the target and
the feature columns, decides which features are categorical, and returns a :class:`TrainingData`
whose ``lineage`` says exactly which rows were read (source, path, rows, a SHA-256 of the content).
Training and evaluation both call it, so every data source is added here once: a dataset extracted
into the lake is read from its newest clean Delta version (or the version asked for: time travel),
the built-in copy otherwise.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

    from regressops.data.selection import DataSelection

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
    selection: DataSelection, *, settings: Settings | None = None, key: str | None = None
) -> TrainingData:
    """Load the data a :class:`~regressops.data.selection.DataSelection` names and check it.

    Parameters
    ----------
    selection : DataSelection
        A dataset (built in or declared in ``regressops.toml``; read from its newest clean
        lake version, or ``selection.data_version``, when it was extracted and validated;
        from the built-in copy otherwise) or a table file with its target column.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.
    key : str, optional
        A column to return in :attr:`TrainingData.keys` (the split key, e.g. ``id``). It is an
        identifier: not a feature unless ``selection.features`` names it.

    Returns
    -------
    TrainingData

    Raises
    ------
    ConfigError
        A file without a target; an unknown dataset; a data version without a clean lake
        version; the target among the features.
    DataError
        The file cannot be read or the data has no rows (e.g. a clean version in the lake
        after every row was quarantined); the target or a feature is not a column; the target
        is not numeric or has missing or infinite values.
    """
    settings = settings or get_settings()
    if selection.dataset is not None:
        frame, default_target, default_features, declared_cat, lineage, row_key = _from_dataset(
            selection.dataset, settings, selection.data_version
        )
    else:
        assert selection.path is not None
        if not selection.target:
            raise ConfigError(
                f"--data {selection.path} needs --target COLUMN: the column to predict",
                reason="missing_target",
            )
        frame, lineage = _from_file(selection.path)
        default_target, default_features, declared_cat, row_key = selection.target, (), (), None
    if len(frame) == 0:
        raise DataError(f"{_where(lineage)} holds no rows; nothing to train on", reason="empty")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    target = selection.target or str(default_target)
    if target not in columns:
        raise DataError(
            f"target column {target!r} is not in the data; available columns: {columns}",
            reason="unknown_column",
        )
    if selection.features is None:
        identifiers = {key, row_key} - {None}
        chosen = (
            list(default_features)
            if default_features and target == default_target
            else [c for c in columns if c != target and c not in identifiers]
        )
    else:
        chosen = _check_features(selection.features, columns, target)
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
    for column in categorical:
        _warn_if_dates(frame[column], column)
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
) -> tuple[pd.DataFrame, str, tuple[str, ...], tuple[str, ...], dict[str, Any], str | None]:
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
        features, categorical = contract.features, contract.categorical
        return frame, contract.target, features, categorical, lineage, contract.key
    if data_version is not None:
        raise ConfigError(
            f"clean version {data_version} of dataset {name!r} is needed (--data-version, or the "
            f"version the model was trained on), but the lake has no clean version of it; run "
            f"'regressops extract --dataset {name}' and 'regressops validate --dataset {name}' "
            "first",
            reason="not_validated",
        )
    if name in settings.datasets and name not in DATASETS:
        raise DataError(
            f"dataset {name!r} is declared in regressops.toml but has no clean version in the "
            f"lake; run 'regressops extract --dataset {name}' and 'regressops validate "
            f"--dataset {name}' first",
            reason="not_validated",
        )
    if name not in DATASETS:
        raise ConfigError(
            f"unknown dataset {name!r}; expected a built-in one ({', '.join(sorted(DATASETS))}) "
            "or one declared as [datasets.NAME] in regressops.toml"
            + (f" ({', '.join(sorted(settings.datasets))})" if settings.datasets else ""),
            reason="unknown_dataset",
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
    return frame, info.target, info.features, info.categorical, lineage, None


def _from_file(path: Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    from regressops.data.files import read_table

    frame = read_table(path)
    resolved = path.resolve()
    lineage = {"source": "file", "path": str(resolved), "file_sha256": file_sha256(resolved)}
    return frame, lineage


def _check_features(features: Sequence[str], columns: list[str], target: str) -> list[str]:
    chosen = list(features)  # stripped and checked for repeats by DataSelection
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
        example = next((v for v in values.tolist() if not _reads_as_number(v)), None)
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


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$")


def _warn_if_dates(column: pd.Series, name: str) -> None:
    """Warn when a column to one-hot encode holds dates: one category per date is useless."""
    if column.dtype.kind != "M":
        sample = column.dropna().head(200).tolist()
        if not sample or not all(isinstance(v, str) and _DATE.match(v.strip()) for v in sample):
            return
    distinct = column.nunique(dropna=True)
    logger.warning(
        "column %r holds dates: it is one-hot encoded as %d categories (one per date), which "
        "says nothing about a date the model has not seen; leave it out with --features, or "
        "derive numbers from it (e.g. days since a start date) before training",
        name,
        distinct,
    )


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float | np.number) and not isinstance(v, bool)


def _reads_as_number(v: Any) -> bool:
    """A value that is not what makes a column non-numeric: a number, a numeric text, a gap."""
    if v is None or _is_number(v):
        return True
    try:
        float(v)
    except (TypeError, ValueError):
        return False
    return not isinstance(v, bool)
