"""Score a saved model on labelled data, and write predictions for a table of inputs.

:func:`evaluate` loads a bundle (a directory or a ``models:/`` reference), loads labelled data
through :func:`~regressops.training.sources.load_training_data` (the bundle's features, the given
or the bundle's target) and returns R², RMSE, MSE and MAE. With ``rows="test"`` it rebuilds the
bundle's own test split from its lineage, after checking the data is the very data it was trained on
(same content hash), so the numbers reproduce ``metrics.json``.

:func:`predict` reads a CSV, Parquet or JSON file, predicts every row and writes the input
columns plus a ``prediction`` column, atomically.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from regressops.config import Settings
from regressops.data.selection import DataSelection
from regressops.data.split import split_from_description
from regressops.errors import ConfigError, DataError
from regressops.models.bundle import ModelBundle, load_bundle
from regressops.training.metrics import regression_metrics
from regressops.training.sources import load_training_data

logger = logging.getLogger(__name__)

PREDICTION_COLUMN = "prediction"
Rows = Literal["all", "test"]


@dataclass
class EvaluationResult:
    """Metrics of a model on a set of labelled rows.

    Attributes
    ----------
    model : str
        The bundle's model name.
    bundle : Path
        The bundle directory.
    metrics : dict
        ``r2``, ``rmse``, ``mse``, ``mae`` and ``n`` (rows scored).
    data : dict
        Lineage of the data scored (source, rows, content hash).
    rows : {"all", "test"}
        Which rows were scored.
    report : Path or None
        The JSON report written, if any.
    """

    model: str
    bundle: Path
    metrics: dict[str, Any]
    data: dict[str, Any] = field(default_factory=dict)
    rows: Rows = "all"
    report: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (the report's content)."""
        return {
            "model": self.model,
            "bundle": str(self.bundle),
            "rows": self.rows,
            "metrics": self.metrics,
            "data": self.data,
        }


@dataclass
class PredictionResult:
    """What :func:`predict` wrote.

    Attributes
    ----------
    model : str
        The bundle's model name.
    rows : int
        Rows predicted.
    output : Path
        The file written.
    """

    model: str
    rows: int
    output: Path

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"model": self.model, "rows": self.rows, "output": str(self.output)}


def evaluate(
    model: str | os.PathLike[str],
    data: DataSelection,
    *,
    rows: Rows = "all",
    report: str | os.PathLike[str] | None = None,
    settings: Settings | None = None,
) -> EvaluationResult:
    """Score a model on a dataset or a labelled file.

    Parameters
    ----------
    model : str or path-like
        A bundle directory, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``
        (:func:`~regressops.registry.resolve.model_bundle_dir`).
    data : DataSelection
        A dataset (built in or declared) or a file holding the model's feature columns and the
        target; the target defaults to the model's, the features are the model's.
    rows : {"all", "test"}, default="all"
        Score every row, or only the bundle's own test rows (the data must then be exactly
        its training data).
    report : path-like, optional
        Write the result as JSON there.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.

    Returns
    -------
    EvaluationResult

    Raises
    ------
    BundleError
        The bundle is missing or invalid.
    ConfigError
        ``rows`` is invalid.
    DataError
        The data lacks a feature or the target, or (``rows="test"``) is not the training data.
    RegistryError
        A ``models:/`` reference cannot be resolved.
    """
    from regressops.registry.resolve import model_bundle_dir

    if rows not in ("all", "test"):
        raise ConfigError(f"rows must be 'all' or 'test', got {rows!r}", reason="invalid_rows")
    bundle_dir = model_bundle_dir(model, settings=settings)
    bundle = load_bundle(bundle_dir)
    lineage = bundle.lineage
    split = lineage.get("split") or {}
    key = split.get("key") if rows == "test" and split.get("method") == "key_hash" else None
    # The bundle's own test rows come from the lake version it was trained on (time travel).
    trained_on = lineage.get("dataset") if lineage.get("source") == "lake" else None
    own = rows == "test" and trained_on is not None and trained_on == data.dataset
    selection = replace(
        data,
        target=data.target or bundle.spec.target,
        features=bundle.spec.names,
        data_version=lineage.get("clean_version") if own else data.data_version,
    )
    td = load_training_data(selection, settings=settings, key=key)
    frame, y = td.frame, td.y
    if rows == "test":
        idx = _test_rows(bundle, td.lineage, td.keys)
        frame, y = frame.iloc[idx], y[idx]
    pred = bundle.predict_frame(frame)
    metrics: dict[str, Any] = {**regression_metrics(y, pred), "n": len(y)}
    data_lineage: dict[str, Any] = {
        k: td.lineage[k]
        for k in ("source", "dataset", "path", "rows", "target", "content_hash")
        if k in td.lineage
    }
    result = EvaluationResult(bundle.name, Path(bundle_dir), metrics, data_lineage, rows)
    if report is not None:
        try:
            result.report = _write_json(Path(report), result.to_dict())
        except OSError as exc:
            raise DataError(
                f"cannot write the report {report}: {exc.strerror or exc}", reason="write_failed"
            ) from None
    logger.info("evaluated %r on %d rows: r2=%.4f", bundle.name, len(y), metrics["r2"])
    return result


def predict(
    model: str | os.PathLike[str],
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    *,
    settings: Settings | None = None,
) -> PredictionResult:
    """Predict every row of a table file and write it with a ``prediction`` column.

    Missing feature values are imputed as in training; extra columns are kept as they are (and
    ignored by the model). A row whose prediction is not finite (an input such as ``1e308``)
    is refused with the API's error, ``non_finite_prediction``.

    Parameters
    ----------
    model : str or path-like
        A bundle directory, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
    input_path : path-like
        CSV, Parquet, JSON (records) or JSON-lines file with the model's feature columns.
    output_path : path-like
        Where to write; its suffix (``.csv``, ``.parquet``, ``.json``, ``.jsonl``) chooses the
        format. Written atomically.

    Returns
    -------
    PredictionResult

    Raises
    ------
    BundleError
        The bundle is missing or invalid.
    RegistryError
        A ``models:/`` reference cannot be resolved.
    DataError
        The input cannot be read, already has a ``prediction`` column, or the output type is
        not supported.
    SchemaError
        A feature column is missing or holds an invalid value or an unknown category.
    """
    from regressops.data.files import READABLE_SUFFIXES, read_table, write_table
    from regressops.registry.resolve import model_bundle_dir

    out = Path(output_path)
    if out.suffix.lower() not in READABLE_SUFFIXES:
        raise DataError(
            f"unsupported output type {out.suffix or '(none)'!r} for {out}; expected one of "
            f"{', '.join(READABLE_SUFFIXES)}",
            reason="unsupported_file",
        )
    bundle = load_bundle(model_bundle_dir(model, settings=settings))
    frame = read_table(input_path)
    frame.columns = [str(c) for c in frame.columns]
    if PREDICTION_COLUMN in frame.columns:
        raise DataError(
            f"{input_path} already has a {PREDICTION_COLUMN!r} column; remove or rename it",
            reason="column_exists",
        )
    result = frame.copy()
    result[PREDICTION_COLUMN] = bundle.predict_finite(frame)
    try:
        write_table(result, out)
    except OSError as exc:
        raise DataError(
            f"cannot write {out}: {exc.strerror or exc}", reason="write_failed"
        ) from None
    logger.info("wrote %d predictions of %r to %s", len(result), bundle.name, out)
    return PredictionResult(bundle.name, len(result), out)


def _test_rows(bundle: ModelBundle, data_lineage: dict[str, Any], keys: Any = None) -> np.ndarray:
    """Rebuild the bundle's test split, refusing data that differs from its training data."""
    lineage = bundle.lineage
    split = lineage.get("split")
    if not isinstance(split, dict):
        raise DataError(
            f"bundle {bundle.name!r} records no split; evaluate on all rows instead",
            reason="no_split",
        )
    if data_lineage.get("content_hash") != lineage.get("content_hash"):
        raise DataError(
            f"this data is not the data bundle {bundle.name!r} was trained on (content hash "
            f"differs); its test rows cannot be rebuilt — evaluate on all rows instead",
            reason="data_mismatch",
        )
    return split_from_description(split, keys=keys).test


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _write_json(path: Path, doc: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_text(json.dumps(_finite_or_none(doc), indent=2, allow_nan=False) + "\n")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
