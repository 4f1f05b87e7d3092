"""The drift reference: a profile of the training rows, stored in the model bundle.

``reference.json`` holds, per feature of the FeatureSpec's raw inputs, for a numeric feature a
sorted sample of at most :data:`SAMPLE_SIZE` values (all of them when fewer) with the mean and
standard deviation of all values, and for a categorical feature the count of each category;
and the same numeric profile of the training predictions. Monitoring then needs neither the
training data nor MLflow. It is plain JSON (floats written with ``repr`` precision, so the
sample reads back bit for bit), never pickle.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.errors import BundleError, DataError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

REFERENCE_FILE = "reference.json"
REFERENCE_FORMAT_VERSION = 1
SAMPLE_SIZE = 10_000


@dataclass(frozen=True)
class NumericProfile:
    """A numeric column of the reference.

    Attributes
    ----------
    rows : int
        Non-missing values in the column (the sample holds at most :data:`SAMPLE_SIZE`).
    missing : int
        Missing values.
    mean, std : float
        Mean and population standard deviation of all non-missing values.
    sample : ndarray of float64
        Sorted values: all of them, or a uniform random sample of :data:`SAMPLE_SIZE`.
    """

    rows: int
    missing: int
    mean: float
    std: float
    sample: np.ndarray = field(repr=False)
    kind: str = "numeric"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "kind": "numeric",
            "rows": self.rows,
            "missing": self.missing,
            "mean": _finite(self.mean),
            "std": _finite(self.std),
            "sample": self.sample.tolist(),
        }


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical column of the reference: the count of each category (as text)."""

    rows: int
    missing: int
    counts: dict[str, int]
    kind: str = "categorical"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "kind": "categorical",
            "rows": self.rows,
            "missing": self.missing,
            "counts": self.counts,
        }


Profile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """What the model learned from: the profile of each feature and of the predictions.

    Attributes
    ----------
    source : str
        Where the reference came from (a bundle, a file, a dataset version).
    rows : int
        Rows of the reference table.
    features : dict of str to NumericProfile or CategoricalProfile
        One profile per feature, in model order.
    prediction : NumericProfile or None
        The profile of the model's predictions on those rows (None for a table without model).
    target : NumericProfile or None
        The profile of the target column, when the reference has one.
    """

    source: str
    rows: int
    features: dict[str, Profile]
    prediction: NumericProfile | None = None
    target: NumericProfile | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to ``reference.json``."""
        return {
            "format_version": REFERENCE_FORMAT_VERSION,
            "source": self.source,
            "rows": self.rows,
            "features": {k: p.to_dict() for k, p in self.features.items()},
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "target": self.target.to_dict() if self.target else None,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, where: str) -> ReferenceProfile:
        """Read the JSON form back.

        Raises
        ------
        BundleError
            Unsupported format version or a malformed profile.
        """
        if doc.get("format_version") != REFERENCE_FORMAT_VERSION:
            raise BundleError(
                f"{where} has reference format {doc.get('format_version')!r}; this regressops "
                f"reads {REFERENCE_FORMAT_VERSION}",
                reason="unsupported_format",
            )
        try:
            features = {str(k): _profile(v) for k, v in doc["features"].items()}
            pred, target = doc.get("prediction"), doc.get("target")
            return cls(
                source=str(doc["source"]),
                rows=int(doc["rows"]),
                features=features,
                prediction=_numeric(pred) if pred else None,
                target=_numeric(target) if target else None,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BundleError(f"{where} is not a valid drift reference ({exc!r})") from None

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``reference.json`` into ``directory`` atomically (temp sibling, then rename)."""
        target = Path(directory) / REFERENCE_FILE
        fd, tmp = tempfile.mkstemp(prefix=f".{REFERENCE_FILE}.", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_dict(), fh, allow_nan=False)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target


def load_reference(bundle_dir: str | os.PathLike[str]) -> ReferenceProfile:
    """The reference stored in a model bundle.

    Raises
    ------
    BundleError
        The bundle has no ``reference.json`` (trained before it was stored: pass
        ``--reference-data``), or it cannot be read.
    """
    path = Path(bundle_dir) / REFERENCE_FILE
    if not path.is_file():
        raise BundleError(
            f"the bundle {bundle_dir} holds no drift reference (trained before reference.json "
            "was stored); pass --reference-data FILE or --reference-dataset NAME",
            reason="no_reference",
        )
    from regressops.models.bundle import read_json_object

    return ReferenceProfile.from_dict(read_json_object(path), where=str(path))


def numeric_profile(
    values: Any, *, sample_size: int = SAMPLE_SIZE, seed: int = 0
) -> NumericProfile:
    """Profile a numeric column (missing values counted, not sampled).

    Raises
    ------
    DataError
        The column holds text.
    """
    try:
        arr = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise DataError("a numeric column holds text", reason="type_mismatch") from None
    present = arr[~np.isnan(arr)]
    n = int(present.size)
    if n > sample_size:
        rng = np.random.default_rng(seed)
        sample = np.sort(rng.choice(present, size=sample_size, replace=False))
    else:
        sample = np.sort(present)
    mean = float(present.mean()) if n else math.nan
    std = float(present.std()) if n else math.nan
    return NumericProfile(rows=n, missing=int(arr.size - n), mean=mean, std=std, sample=sample)


def categorical_profile(values: Any) -> CategoricalProfile:
    """Profile a categorical column: the count of each category, as text."""
    counts: dict[str, int] = {}
    missing = 0
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            missing += 1
            continue
        key = str(v)
        counts[key] = counts.get(key, 0) + 1
    return CategoricalProfile(rows=sum(counts.values()), missing=missing, counts=counts)


def build_reference(
    frame: pd.DataFrame,
    *,
    kinds: Mapping[str, str],
    source: str,
    predictions: Any = None,
    target: str | None = None,
    sample_size: int = SAMPLE_SIZE,
) -> ReferenceProfile:
    """Profile the columns ``kinds`` names (``"numeric"`` or ``"categorical"``) of ``frame``.

    Parameters
    ----------
    frame : DataFrame
        The reference rows (the training rows, or a reference table).
    kinds : mapping of str to {"numeric", "categorical"}
        The features, in order, with their kinds (from the FeatureSpec or the table's types).
    source : str
        Where the rows came from, for the report.
    predictions : array-like, optional
        The model's predictions on these rows.
    target : str, optional
        A target column of ``frame`` to profile too.
    sample_size : int, default=10_000
        Largest numeric sample kept per column.
    """
    features: dict[str, Profile] = {}
    for name, kind in kinds.items():
        column = frame[name]
        if kind == "numeric":
            try:
                features[name] = numeric_profile(column.to_numpy(), sample_size=sample_size)
            except DataError:
                raise DataError(
                    f"reference column {name!r} is numeric but holds text", reason="type_mismatch"
                ) from None
        else:
            features[name] = categorical_profile(column.tolist())
    pred = (
        numeric_profile(predictions, sample_size=sample_size) if predictions is not None else None
    )
    tgt = None
    if target is not None and target in frame.columns:
        try:
            tgt = numeric_profile(frame[target].to_numpy(), sample_size=sample_size)
        except DataError:
            tgt = None  # a text target is no regression target; nothing to compare
    return ReferenceProfile(
        source=source, rows=len(frame), features=features, prediction=pred, target=tgt
    )


def _profile(doc: Mapping[str, Any]) -> Profile:
    if doc["kind"] == "numeric":
        return _numeric(doc)
    if doc["kind"] == "categorical":
        return CategoricalProfile(
            rows=int(doc["rows"]),
            missing=int(doc["missing"]),
            counts={str(k): int(v) for k, v in doc["counts"].items()},
        )
    raise ValueError(f"unknown column kind {doc['kind']!r}")


def _numeric(doc: Mapping[str, Any]) -> NumericProfile:
    sample = np.asarray(doc["sample"], dtype=np.float64)
    return NumericProfile(
        rows=int(doc["rows"]),
        missing=int(doc["missing"]),
        mean=math.nan if doc["mean"] is None else float(doc["mean"]),
        std=math.nan if doc["std"] is None else float(doc["std"]),
        sample=sample,
    )


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None
