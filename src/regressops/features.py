"""FeatureSpec: the features a model takes, fitted once and applied identically everywhere.

A :class:`FeatureSpec` names each input feature with its type, its impute value, its scaling
(numeric) or its known categories (categorical, one-hot encoded). It is fitted on training data,
stored as JSON in the model bundle, and applied by training, batch prediction and the API alike,
so what the model saw in training is exactly what it sees in serving. It is also the source of
the API's request schema and of the drift reference.

This module imports only numpy at import time; pandas is imported lazily by the methods that take
a DataFrame, so the serving path can use :meth:`FeatureSpec.transform_records` and
:meth:`FeatureSpec.transform_columns` without pandas.

Examples
--------
>>> spec = FeatureSpec.fit(
...     {"age": [19, 33, 50], "smoker": ["yes", "no", "no"]}, categorical=["smoker"]
... )
>>> spec.output_names
['age', 'smoker=no', 'smoker=yes']
>>> spec.transform_records([{"age": 33, "smoker": "yes"}]).round(3).tolist()
[[-0.079, 0.0, 1.0]]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from regressops.errors import DataError, SchemaError

if TYPE_CHECKING:
    import pandas as pd

SPEC_FORMAT_VERSION = 1
UnknownPolicy = Literal["error", "ignore"]


@dataclass(frozen=True)
class NumericFeature:
    """A numeric input feature.

    Attributes
    ----------
    name : str
        Column name in the input records.
    impute : float
        Value that replaces a missing entry (the training median).
    center, scale : float
        The feature enters the model as ``(x - center) / scale``; ``0`` and ``1`` when the spec
        does not scale.
    min, max, mean, std : float
        Training statistics, kept for the model card, edge-case checks and drift reference.
    """

    name: str
    impute: float
    center: float = 0.0
    scale: float = 1.0
    min: float = math.nan
    max: float = math.nan
    mean: float = math.nan
    std: float = math.nan
    kind: Literal["numeric"] = "numeric"


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical input feature, one-hot encoded over its known categories.

    Attributes
    ----------
    name : str
        Column name in the input records.
    categories : tuple of str
        Known categories, sorted; each becomes one output column ``name=category``.
    impute : str
        Category that replaces a missing entry (the most frequent in training).
    frequencies : tuple of float
        Share of each category in the training data (drift reference).
    """

    name: str
    categories: tuple[str, ...]
    impute: str
    frequencies: tuple[float, ...] = ()
    kind: Literal["categorical"] = "categorical"


Feature = NumericFeature | CategoricalFeature


@dataclass(frozen=True)
class FeatureSpec:
    """The features of a model: names, types, impute values, scaling and categories.

    Build one with :meth:`fit`; turn records into the model's matrix with :meth:`transform`
    (DataFrame), :meth:`transform_records` (list of dicts) or :meth:`transform_columns`
    (dict of columns). Serialise with :meth:`to_dict` / :meth:`from_dict`.

    Parameters
    ----------
    features : tuple of NumericFeature or CategoricalFeature
        The input features in model order.
    target : str or None
        Name of the target column in training data (informational).
    unknown : {"error", "ignore"}
        What an unseen category does at transform time: ``"error"`` raises
        :class:`~regressops.errors.SchemaError`; ``"ignore"`` encodes it as all zeros.
    """

    features: tuple[Feature, ...]
    target: str | None = None
    unknown: UnknownPolicy = "error"
    _index: dict[str, int] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.features]
        if not names:
            raise SchemaError("a feature spec needs at least one feature", reason="no_features")
        if len(set(names)) != len(names):
            raise SchemaError(f"duplicate feature names in spec: {names}", reason="duplicate")
        if self.unknown not in ("error", "ignore"):
            raise SchemaError(
                f"unknown-category policy must be 'error' or 'ignore', got {self.unknown!r}",
                reason="invalid_policy",
            )
        object.__setattr__(self, "_index", {n: i for i, n in enumerate(names)})

    # ------------------------------------------------------------------ description
    @property
    def names(self) -> list[str]:
        """Input feature names, in order."""
        return [f.name for f in self.features]

    @property
    def output_names(self) -> list[str]:
        """Names of the model matrix's columns (categoricals expanded as ``name=category``)."""
        out: list[str] = []
        for f in self.features:
            if isinstance(f, NumericFeature):
                out.append(f.name)
            else:
                out.extend(f"{f.name}={c}" for c in f.categories)
        return out

    @property
    def n_outputs(self) -> int:
        """Number of columns of the model matrix."""
        return len(self.output_names)

    @property
    def is_numeric_only(self) -> bool:
        """True when every feature is numeric (positional list input is then unambiguous)."""
        return all(isinstance(f, NumericFeature) for f in self.features)

    def feature(self, name: str) -> Feature:
        """Return the feature called ``name``; raise :class:`SchemaError` if there is none."""
        try:
            return self.features[self._index[name]]
        except KeyError:
            raise SchemaError(
                f"unknown feature {name!r}; expected one of {self.names}",
                reason="unknown_feature",
            ) from None

    # ------------------------------------------------------------------ fitting
    @classmethod
    def fit(
        cls,
        data: pd.DataFrame | Mapping[str, Sequence[Any]],
        *,
        features: Sequence[str] | None = None,
        target: str | None = None,
        categorical: Sequence[str] | None = None,
        scale: bool = True,
        unknown: UnknownPolicy = "error",
    ) -> FeatureSpec:
        """Learn a spec from training data.

        Parameters
        ----------
        data : DataFrame or mapping of column name to values
            Training data (the target column may be present; it is never a feature).
        features : sequence of str, optional
            Feature columns in model order. Default: every column except ``target``.
        target : str, optional
            Target column name, excluded from the features.
        categorical : sequence of str, optional
            Columns to treat as categorical. Default: every non-numeric (object, string,
            category, bool) column.
        scale : bool, default=True
            Standardise numeric features to zero mean and unit variance.
        unknown : {"error", "ignore"}, default="error"
            Policy for categories not seen in training.

        Returns
        -------
        FeatureSpec

        Raises
        ------
        SchemaError
            A named feature or categorical column is missing, or a numeric column holds text.
        DataError
            A feature has no non-missing value to learn from.
        """
        columns = _as_columns(data)
        if features is None:
            features = [c for c in columns if c != target]
        features = list(features)
        missing = [f for f in features if f not in columns]
        if missing:
            raise SchemaError(
                f"feature column(s) {missing} not in data; available: {list(columns)}",
                reason="missing_column",
            )
        if target is not None and target in features:
            raise SchemaError(f"target {target!r} cannot also be a feature", reason="target")
        cat_set = set(categorical) if categorical is not None else None
        if cat_set is not None and (bad := sorted(cat_set - set(features))):
            raise SchemaError(
                f"categorical column(s) {bad} are not among the features {features}",
                reason="missing_column",
            )
        fitted: list[Feature] = []
        for name in features:
            values = columns[name]
            is_cat = (name in cat_set) if cat_set is not None else not _looks_numeric(values)
            fitted.append(
                _fit_categorical(name, values) if is_cat else _fit_numeric(name, values, scale)
            )
        return cls(features=tuple(fitted), target=target, unknown=unknown)

    # ------------------------------------------------------------------ transforming
    def transform(self, frame: pd.DataFrame | Mapping[str, Any], *, impute: bool = True) -> Any:
        """Turn a DataFrame (or a mapping of columns) into the model matrix.

        Parameters
        ----------
        frame : DataFrame or mapping of column name to values
            Must hold every feature column; extra columns are ignored.
        impute : bool, default=True
            Replace missing values by the impute value; when False a missing value raises.

        Returns
        -------
        ndarray of shape (n_rows, n_outputs), float64
        """
        return self.transform_columns(_as_columns(frame), impute=impute)

    def transform_columns(
        self, columns: Mapping[str, Any], *, impute: bool = True, allow_extra: bool = True
    ) -> np.ndarray:
        """Turn a mapping ``{feature: values}`` into the model matrix (numpy only).

        Parameters
        ----------
        columns : mapping of str to sequence or ndarray
            One equal-length column per feature.
        impute : bool, default=True
            Replace missing values (None, NaN) by the impute value; otherwise raise.
        allow_extra : bool, default=True
            Ignore columns that are not features; otherwise raise.

        Returns
        -------
        ndarray of shape (n_rows, n_outputs), float64

        Raises
        ------
        SchemaError
            A feature is missing, a value has the wrong type, is missing while ``impute`` is
            False, is not finite, or is an unknown category under the ``"error"`` policy.
        """
        missing = [n for n in self.names if n not in columns]
        if missing:
            raise SchemaError(
                f"missing feature(s) {missing}; expected {self.names}", reason="missing_feature"
            )
        if not allow_extra and (extra := [c for c in columns if c not in self._index]):
            raise SchemaError(
                f"unknown feature(s) {extra}; expected {self.names}", reason="unknown_feature"
            )
        lengths = {len(columns[n]) for n in self.names}
        if len(lengths) != 1:
            raise SchemaError("feature columns have different lengths", reason="ragged")
        n_rows = lengths.pop()
        out = np.empty((n_rows, self.n_outputs), dtype=np.float64)
        j = 0
        for f in self.features:
            if isinstance(f, NumericFeature):
                out[:, j] = self._numeric_column(f, columns[f.name], impute)
                j += 1
            else:
                k = len(f.categories)
                out[:, j : j + k] = self._one_hot(f, columns[f.name], impute)
                j += k
        return out

    def transform_records(
        self, records: Sequence[Mapping[str, Any]], *, impute: bool = False
    ) -> np.ndarray:
        """Turn named records (``[{"age": 19, "smoker": "yes"}, ...]``) into the model matrix.

        Every record must have exactly the spec's features; this is the API's path, so by
        default a missing value is an error rather than imputed.

        Raises
        ------
        SchemaError
            A record is not a mapping, misses a feature or has an unknown one, or a value is
            invalid (see :meth:`transform_columns`).
        """
        names = self.names
        expected = set(names)
        columns: dict[str, list[Any]] = {n: [] for n in names}
        for i, rec in enumerate(records):
            if not isinstance(rec, Mapping):
                raise SchemaError(
                    f"record {i} is a {type(rec).__name__}, expected an object of features",
                    reason="invalid_record",
                    row=i,
                )
            if len(rec) != len(names) or rec.keys() != expected:
                keys = set(rec)
                missing = sorted(expected - keys)
                extra = sorted(keys - expected)
                parts = []
                if missing:
                    parts.append(f"missing feature(s) {missing}")
                if extra:
                    parts.append(f"unknown feature(s) {extra}")
                raise SchemaError(
                    f"record {i}: {'; '.join(parts)}; expected {names}",
                    reason="missing_feature" if missing else "unknown_feature",
                    row=i,
                )
            for n in names:
                columns[n].append(rec[n])
        return self.transform_columns(columns, impute=impute)

    def transform_rows(self, rows: Any) -> np.ndarray:
        """Turn positional rows (``[[0.06, 1.2], ...]``) into the model matrix.

        Only for specs whose features are all numeric: values are taken in feature order.

        Raises
        ------
        SchemaError
            The spec has categorical features, the rows are not a 2-D array of the right
            width, or a value is not a finite number.
        """
        if not self.is_numeric_only:
            raise SchemaError(
                f"positional rows need numeric features only; send named records with {self.names}",
                reason="positional_not_supported",
            )
        try:
            arr = np.asarray(rows, dtype=np.float64)
        except (TypeError, ValueError):
            raise SchemaError(
                f"rows must be lists of {len(self.names)} numbers", reason="invalid_type"
            ) from None
        if arr.ndim == 1 and len(self.names) == 1:
            arr = arr.reshape(-1, 1)
        if arr.ndim != 2 or arr.shape[1] != len(self.names):
            raise SchemaError(
                f"each row must have {len(self.names)} value(s) {self.names}, got shape "
                f"{list(arr.shape)}",
                reason="wrong_shape",
            )
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr).all(axis=1))[0])
            raise SchemaError(f"row {bad} holds NaN or infinity", reason="not_finite", row=bad)
        centers = np.array([f.center for f in self.features], dtype=np.float64)  # type: ignore[union-attr]
        scales = np.array([f.scale for f in self.features], dtype=np.float64)  # type: ignore[union-attr]
        return (arr - centers) / scales

    def _numeric_column(self, f: NumericFeature, values: Any, impute: bool) -> np.ndarray:
        col = _to_float(values, f.name)
        nan = np.isnan(col)
        if nan.any():
            if not impute:
                row = int(np.flatnonzero(nan)[0])
                raise SchemaError(
                    f"feature {f.name!r} is missing or NaN in row {row}; expected a number",
                    reason="missing_value",
                    row=row,
                    feature=f.name,
                )
            col = np.where(nan, f.impute, col)
        if np.isinf(col).any():
            row = int(np.flatnonzero(np.isinf(col))[0])
            raise SchemaError(
                f"feature {f.name!r} is infinite in row {row}; expected a finite number",
                reason="not_finite",
                row=row,
                feature=f.name,
            )
        if f.center != 0.0 or f.scale != 1.0:
            col = (col - f.center) / f.scale
        return col

    def _one_hot(self, f: CategoricalFeature, values: Any, impute: bool) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(f.categories)}
        vals = values.tolist() if isinstance(values, np.ndarray) else list(values)
        idx = np.empty(len(vals), dtype=np.int64)
        for r, v in enumerate(vals):
            if _is_missing(v):
                if not impute:
                    raise SchemaError(
                        f"feature {f.name!r} is missing in row {r}; expected one of "
                        f"{list(f.categories)}",
                        reason="missing_value",
                        row=r,
                        feature=f.name,
                    )
                v = f.impute
            elif not isinstance(v, str):
                if isinstance(v, bool | int | float | np.generic):
                    v = str(v)
                else:
                    raise SchemaError(
                        f"feature {f.name!r} in row {r} is a {type(v).__name__}; expected one "
                        f"of {list(f.categories)}",
                        reason="invalid_type",
                        row=r,
                        feature=f.name,
                    )
            i = lookup.get(v)
            if i is None and v in ("True", "False"):  # a file reader's bool for "true"/"false"
                i = lookup.get(v.lower())
            if i is None:
                if self.unknown == "error":
                    raise SchemaError(
                        f"feature {f.name!r} in row {r} has unknown category {_clip(v)!r}; "
                        f"expected one of {list(f.categories)}",
                        reason="unknown_category",
                        row=r,
                        feature=f.name,
                    )
                i = -1
            idx[r] = i
        out = np.zeros((len(vals), len(f.categories)), dtype=np.float64)
        known = idx >= 0
        out[np.flatnonzero(known), idx[known]] = 1.0
        return out

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (see :meth:`from_dict`)."""
        feats = []
        for f in self.features:
            d = asdict(f)
            if isinstance(f, CategoricalFeature):
                d["categories"] = list(f.categories)
                d["frequencies"] = list(f.frequencies)
            feats.append({k: _json_float(v) for k, v in d.items()})
        return {
            "format_version": SPEC_FORMAT_VERSION,
            "target": self.target,
            "unknown": self.unknown,
            "features": feats,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """Rebuild a spec from :meth:`to_dict` output.

        Raises
        ------
        SchemaError
            The dict is not a spec of a supported format version.
        """
        try:
            version = int(data.get("format_version", 0))
            if version != SPEC_FORMAT_VERSION:
                raise SchemaError(
                    f"feature spec format {version} is not supported; expected "
                    f"{SPEC_FORMAT_VERSION}",
                    reason="unsupported_format",
                )
            feats: list[Feature] = []
            for d in data["features"]:
                d = dict(d)
                kind = d.pop("kind")
                if kind == "numeric":
                    feats.append(NumericFeature(**{k: _from_json_float(v) for k, v in d.items()}))
                elif kind == "categorical":
                    feats.append(
                        CategoricalFeature(
                            name=d["name"],
                            categories=tuple(d["categories"]),
                            impute=d["impute"],
                            frequencies=tuple(d.get("frequencies", ())),
                        )
                    )
                else:
                    raise SchemaError(f"unknown feature kind {kind!r}", reason="invalid_spec")
            return cls(
                features=tuple(feats),
                target=data.get("target"),
                unknown=data.get("unknown", "error"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"invalid feature spec: {exc}", reason="invalid_spec") from None


# ---------------------------------------------------------------------- helpers
def _as_columns(data: Any) -> Mapping[str, Any]:
    if isinstance(data, Mapping):
        return data
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):
        return {str(c): data[c].to_numpy() for c in data.columns}
    raise DataError(
        f"expected a DataFrame or a mapping of columns, got {type(data).__name__}",
        reason="invalid_type",
    )


def _looks_numeric(values: Any) -> bool:
    return np.asarray(values).dtype.kind in "iuf"


def _to_float(values: Any, name: str) -> np.ndarray:
    arr = values if isinstance(values, np.ndarray) else None
    if arr is not None and arr.dtype.kind in "iuf":
        return arr.astype(np.float64, copy=False)
    vals = values.tolist() if isinstance(values, np.ndarray) else list(values)
    out = np.empty(len(vals), dtype=np.float64)
    for r, v in enumerate(vals):
        if v is None:
            out[r] = math.nan
        elif isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            if _is_missing(v):
                out[r] = math.nan
                continue
            raise SchemaError(
                f"feature {name!r} in row {r} is {type(v).__name__} {_clip(v)!r}; "
                "expected a number",
                reason="invalid_type",
                row=r,
                feature=name,
            )
        else:
            out[r] = float(v)
    return out


def _fit_numeric(name: str, values: Any, scale: bool) -> NumericFeature:
    col = _to_float(values, name)
    finite = col[np.isfinite(col)]
    if finite.size == 0:
        raise DataError(f"feature {name!r} has no finite value to learn from", reason="empty")
    mean = float(finite.mean())
    std = float(finite.std())
    return NumericFeature(
        name=name,
        impute=float(np.median(finite)),
        center=mean if scale else 0.0,
        scale=(std if std > 0 else 1.0) if scale else 1.0,
        min=float(finite.min()),
        max=float(finite.max()),
        mean=mean,
        std=std,
    )


def _fit_categorical(name: str, values: Any) -> CategoricalFeature:
    vals = values.tolist() if isinstance(values, np.ndarray) else list(values)
    present = [str(v) for v in vals if not _is_missing(v)]
    if not present:
        raise DataError(f"feature {name!r} has no category to learn from", reason="empty")
    cats, counts = np.unique(np.array(present, dtype=object), return_counts=True)
    categories = tuple(str(c) for c in cats)
    freqs = tuple(float(c) / len(present) for c in counts)
    mode = categories[int(np.argmax(counts))]
    return CategoricalFeature(name=name, categories=categories, impute=mode, frequencies=freqs)


def _is_missing(v: Any) -> bool:
    if v is None:
        return True
    if isinstance(v, float | np.floating):
        return bool(np.isnan(v))
    # pandas.NA / NaT without importing pandas
    return type(v).__name__ in ("NAType", "NaTType")


def _clip(v: Any, n: int = 40) -> str:
    s = str(v)
    return s if len(s) <= n else s[: n - 1] + "…"


def _json_float(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _from_json_float(v: Any) -> Any:
    return math.nan if v is None else v
