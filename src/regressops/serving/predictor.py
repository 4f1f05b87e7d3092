"""The one predictor behind every endpoint: validate decoded JSON input and predict, numpy only.

Every protocol (seed, MLflow scoring, Open Inference) decodes its body into one of three forms
and hands it here:

- *rows*: positional lists in feature order, ``[[0.06, 1.2], ...]``;
- *records*: named objects, ``[{"bmi": 0.06, "bp": 1.2}, ...]``;
- *columns*: one list per feature, ``{"bmi": [0.06, ...], "bp": [1.2, ...]}``.

Validation is vectorised: the types of all values are collected in one C-level pass, the
matrix is built with one :func:`numpy.array` call and checked with :func:`numpy.isfinite`.
Only when that fast check fails does a Python loop look for the first offending row, so the
error message can name it. The feature spec of the model is the one authority on names, types
and categories; for a linear model over numeric features the spec's scaling is folded into the
coefficients once, so a prediction is a single matrix-vector product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

import numpy as np

from regressops.errors import DataError, RegressopsError, SchemaError
from regressops.features import NumericFeature
from regressops.models.bundle import ModelBundle
from regressops.reasons import Reason

_NUMBER_TYPES = frozenset({int, float})
_SMALL = 512  # values; below this the per-value type check is cheaper than numpy's inference


@dataclass(frozen=True)
class Scored:
    """Predictions for a batch and the features they came from (for the prediction log).

    Attributes
    ----------
    predictions : ndarray of shape (n,)
        One finite float per input row.
    features : ndarray of shape (n, n_features) or dict of str to sequence
        The validated inputs: a float matrix in feature order, or one column per feature.
    """

    predictions: np.ndarray
    features: np.ndarray | dict[str, Any]

    def __len__(self) -> int:
        return int(self.predictions.shape[0])


@dataclass(frozen=True)
class RowError:
    """Why one record of a batch could not be scored (``/predict`` with ``on_error="report"``)."""

    index: int
    reason: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"index", "reason", "message"}``."""
        return {"index": self.index, "reason": self.reason, "message": self.message}


class Predictor:
    """Validate inputs against a model's feature spec and predict.

    Parameters
    ----------
    bundle : ModelBundle
        The model to serve.
    max_rows : int, default=100_000
        Largest batch accepted; larger ones raise :class:`~regressops.errors.DataError` with
        reason ``"too_many_rows"``.
    """

    def __init__(self, bundle: ModelBundle, *, max_rows: int = 100_000) -> None:
        self.bundle = bundle
        self.spec = bundle.spec
        self.max_rows = max_rows
        self.names: list[str] = self.spec.names
        self._name_set = frozenset(self.names)
        self.n_features = len(self.names)
        self.numeric_only = self.spec.is_numeric_only
        self._fast: tuple[np.ndarray, float] | None = None
        if self.numeric_only and bundle.is_linear and bundle.coef is not None:
            feats = [f for f in self.spec.features if isinstance(f, NumericFeature)]
            scale = np.array([f.scale for f in feats], dtype=np.float64)
            center = np.array([f.center for f in feats], dtype=np.float64)
            weights = np.asarray(bundle.coef, dtype=np.float64) / scale
            self._fast = (weights, float(bundle.intercept) - float(weights @ center))

    # ------------------------------------------------------------------ identity
    @property
    def name(self) -> str:
        """Model name."""
        return self.bundle.name

    @property
    def version(self) -> str:
        """Model version."""
        return self.bundle.version

    # ------------------------------------------------------------------ entry points
    def predict_batch(self, data: Any) -> Scored:
        """Predict a batch given as rows, records or columns (detected from its shape).

        Raises
        ------
        SchemaError
            The input does not match the feature spec; the message names the row and feature.
        DataError
            The batch is empty, too large, or a prediction is not finite.
        """
        if isinstance(data, Mapping):
            return self.predict_columns(data)
        if not isinstance(data, list):
            raise SchemaError(
                f"expected a list of records or rows, got {_json_type(data)}",
                reason="invalid_shape",
            )
        self._check_count(len(data))
        first = data[0]
        if isinstance(first, Mapping):
            return self.predict_records(data)
        if isinstance(first, list):
            return self.predict_rows(data)
        raise SchemaError(
            f"record 0 is {_json_type(first)}; expected an object of features or a list of "
            f"{self.n_features} values",
            reason="invalid_record",
            row=0,
        )

    def predict_one(self, data: Any) -> Scored:
        """Predict one record given as an object, a row, or a list holding exactly one of those."""
        if isinstance(data, Mapping):
            return self.predict_records([data])
        if isinstance(data, list) and data and isinstance(data[0], list | Mapping):
            if len(data) != 1:
                raise SchemaError(
                    f"this endpoint scores one record, got {len(data)}; send batches to /batch",
                    reason="invalid_shape",
                )
            return self.predict_batch(data)
        if isinstance(data, list):
            return self.predict_rows([data])
        raise SchemaError(
            f"expected one record (an object of features or a list of {self.n_features} values),"
            f" got {_json_type(data)}",
            reason="invalid_shape",
        )

    def predict_each(self, data: Any) -> tuple[list[float | None], list[RowError], Scored | None]:
        """Predict a batch, reporting invalid records one by one instead of failing the batch.

        Returns
        -------
        predictions : list of float or None
            One entry per input record; ``None`` where the record was invalid.
        errors : list of RowError
            The invalid records, in order.
        scored : Scored or None
            The valid records' predictions and features (for the log); ``None`` if none.
        """
        try:
            scored = self.predict_batch(data)
            return scored.predictions.tolist(), [], scored
        except RegressopsError as exc:
            if exc.reason in (Reason.TOO_MANY_ROWS, Reason.EMPTY_BATCH) or not isinstance(
                data, list
            ):
                raise
        errors: list[RowError] = []
        valid: list[int] = []
        for i, item in enumerate(data):
            try:
                self.predict_batch([item])
                valid.append(i)
            except RegressopsError as exc:
                errors.append(RowError(i, exc.reason, _reindex(exc.message, i)))
        out: list[float | None] = [None] * len(data)
        if not valid:
            return out, errors, None
        scored = self.predict_batch([data[i] for i in valid])
        for i, p in zip(valid, scored.predictions.tolist(), strict=True):
            out[i] = p
        return out, errors, scored

    # ------------------------------------------------------------------ forms
    def predict_rows(self, rows: list[Any]) -> Scored:
        """Predict positional rows (lists of values in feature order)."""
        self._check_count(len(rows))
        if self.numeric_only:
            return self._finish(self._rows_matrix(rows))
        self._check_row_lengths(rows)
        columns = {n: list(col) for n, col in zip(self.names, zip(*rows, strict=True), strict=True)}
        return self._predict_columns(columns)

    def predict_records(self, records: list[Any]) -> Scored:
        """Predict named records (objects with exactly the spec's features)."""
        self._check_count(len(records))
        names = self.names
        try:
            if set(map(len, records)) != {self.n_features}:
                raise KeyError
            columns = {n: [r[n] for r in records] for n in names}
        except (KeyError, TypeError, IndexError):
            self.spec.transform_records(records)  # raises, naming the first bad record
            raise SchemaError(
                "records do not match the feature spec", reason="invalid_record"
            ) from None
        return self._predict_columns(columns)

    def predict_columns(self, columns: Mapping[str, Any]) -> Scored:
        """Predict from one list per feature (``{"bmi": [..], "bp": [..]}``)."""
        missing = [n for n in self.names if n not in columns]
        extra = [c for c in columns if c not in self._name_set]
        if missing or extra:
            parts = ([f"missing feature(s) {missing}"] if missing else []) + (
                [f"unknown feature(s) {sorted(extra)}"] if extra else []
            )
            raise SchemaError(
                f"{'; '.join(parts)}; expected {self.names}",
                reason="missing_feature" if missing else "unknown_feature",
            )
        bad = [n for n in self.names if not isinstance(columns[n], list | np.ndarray)]
        if bad:
            raise SchemaError(
                f"feature {bad[0]!r} must be a list of values", reason="invalid_shape"
            )
        lengths = {len(columns[n]) for n in self.names}
        if len(lengths) != 1:
            raise SchemaError("feature columns have different lengths", reason="ragged")
        self._check_count(lengths.pop())
        return self._predict_columns({n: columns[n] for n in self.names})

    # ------------------------------------------------------------------ internals
    def _check_count(self, n: int) -> None:
        if n == 0:
            raise DataError("the batch is empty; send at least one record", reason="empty_batch")
        if n > self.max_rows:
            raise DataError(
                f"the batch has {n} rows; at most {self.max_rows} are accepted per request",
                reason="too_many_rows",
            )

    def _check_row_lengths(self, rows: list[Any]) -> None:
        try:
            if set(map(len, rows)) == {self.n_features} and all(isinstance(r, list) for r in rows):
                return
        except TypeError:
            pass
        for i, row in enumerate(rows):
            if not isinstance(row, list):
                raise SchemaError(
                    f"row {i} is {_json_type(row)}; expected a list of {self.n_features} values "
                    f"{self.names}",
                    reason="invalid_record",
                    row=i,
                )
            if len(row) != self.n_features:
                raise SchemaError(
                    f"row {i} has {len(row)} value(s); expected {self.n_features} {self.names}",
                    reason="wrong_shape",
                    row=i,
                )

    def _rows_matrix(self, rows: list[Any]) -> np.ndarray:
        """Numeric rows → float matrix, refusing non-numbers (bools and strings included).

        Large inputs: numpy infers the dtype in one C pass — any string, null or object makes
        it non-numeric — and only matrices holding exact 0s or 1s (where a JSON ``true`` could
        hide) get the per-value type check. Small inputs get that check directly (cheaper).
        """
        arr: np.ndarray | None = None
        try:
            if len(rows) * self.n_features <= _SMALL:
                if set(map(len, rows)) == {self.n_features} and (
                    set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES
                ):
                    arr = np.array(rows, dtype=np.float64)
            else:
                inferred = np.array(rows)
                if (
                    inferred.ndim == 2
                    and inferred.shape[1] == self.n_features
                    and inferred.dtype.kind in "iuf"
                    and (
                        not ((inferred == 0) | (inferred == 1)).any()
                        or set(map(type, chain.from_iterable(rows))) <= _NUMBER_TYPES
                    )
                ):
                    arr = inferred.astype(np.float64, copy=False)
        except (ValueError, TypeError, OverflowError):
            arr = None
        if arr is None or arr.ndim != 2:
            self._raise_for_rows(rows)
        assert arr is not None
        if self._fast is None:
            self._check_finite_inputs(arr)
        return arr

    def _raise_for_rows(self, rows: list[Any]) -> None:
        """Find the first bad row and value and say what is wrong with it (slow path)."""
        self._check_row_lengths(rows)
        for i, row in enumerate(rows):
            for j, v in enumerate(row):
                if type(v) not in _NUMBER_TYPES:
                    raise SchemaError(
                        f"row {i}, feature {self.names[j]!r} is {_json_type(v)}; expected a number",
                        reason="invalid_type",
                        row=i,
                        feature=self.names[j],
                    )
        raise SchemaError("rows must be lists of numbers", reason="invalid_type")

    def _check_finite_inputs(self, arr: np.ndarray) -> None:
        finite = np.isfinite(arr)
        if not finite.all():
            i, j = (int(k) for k in np.argwhere(~finite)[0])
            raise SchemaError(
                f"row {i}, feature {self.names[j]!r} is not a finite number",
                reason="not_finite",
                row=i,
                feature=self.names[j],
            )

    def _numeric_column(self, name: str, values: Any) -> np.ndarray:
        if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
            col = values.astype(np.float64, copy=False)
        else:
            vals = values.tolist() if isinstance(values, np.ndarray) else values
            if not set(map(type, vals)) <= _NUMBER_TYPES:
                for i, v in enumerate(vals):
                    if type(v) not in _NUMBER_TYPES:
                        raise SchemaError(
                            f"feature {name!r} in record {i} is {_json_type(v)}; expected a number",
                            reason="invalid_type",
                            row=i,
                            feature=name,
                        )
            try:
                col = np.array(vals, dtype=np.float64)
            except OverflowError:
                raise SchemaError(
                    f"feature {name!r} holds a number too large for a float", reason="not_finite"
                ) from None
        if not np.isfinite(col).all():
            i = int(np.flatnonzero(~np.isfinite(col))[0])
            raise SchemaError(
                f"feature {name!r} in record {i} is not a finite number",
                reason="not_finite",
                row=i,
                feature=name,
            )
        return col

    def _predict_columns(self, columns: dict[str, Any]) -> Scored:
        arrays: dict[str, Any] = {}
        for f in self.spec.features:
            if isinstance(f, NumericFeature):
                arrays[f.name] = self._numeric_column(f.name, columns[f.name])
            else:
                arrays[f.name] = columns[f.name]
        if self._fast is not None:
            matrix = np.column_stack([arrays[n] for n in self.names])
            return self._finish(matrix)
        X = self.spec.transform_columns(arrays, impute=False, allow_extra=False)
        preds = np.asarray(self.bundle.predict_matrix(X), dtype=np.float64).reshape(-1)
        return Scored(self._check_finite(preds), arrays)

    def _finish(self, matrix: np.ndarray) -> Scored:
        if self._fast is not None:
            weights, intercept = self._fast
            preds = matrix @ weights + intercept
            # A NaN or infinite input always makes its linear prediction non-finite, so one
            # check of the predictions covers the inputs too; the slow path says which.
            if not np.isfinite(preds).all():
                self._check_finite_inputs(matrix)
                self._check_finite(preds)
            return Scored(preds, matrix)
        else:
            X = self.spec.transform_rows(matrix)
            preds = np.asarray(self.bundle.predict_matrix(X), dtype=np.float64).reshape(-1)
        return Scored(self._check_finite(preds), matrix)

    @staticmethod
    def _check_finite(preds: np.ndarray) -> np.ndarray:
        finite = np.isfinite(preds)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            raise DataError(
                f"the prediction for record {i} is not a finite number; its inputs are far "
                "outside the range the model was trained on",
                reason="non_finite_prediction",
                row=i,
            )
        return preds


def _json_type(v: Any) -> str:
    """Name a decoded JSON value's type the way a caller wrote it."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, int | float):
        return "a number"
    if isinstance(v, str):
        return "a string"
    if isinstance(v, Mapping):
        return "an object"
    if isinstance(v, Sequence):
        return "a list"
    return type(v).__name__


def _reindex(message: str, index: int) -> str:
    """Rewrite "record 0"/"row 0" in a one-record error to the record's place in the batch."""
    for word in ("record", "row"):
        message = message.replace(f"{word} 0", f"{word} {index}", 1)
    return message
