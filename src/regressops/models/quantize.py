"""Symmetric int8 quantisation of a linear model's coefficients, with its error bound.

A linear bundle predicts ``ŷ = x · w + b`` where ``x`` is a row of the *model matrix* (numeric
features standardised by the feature spec, categoricals one-hot) and ``w`` the coefficients over
its columns. Quantising stores each coefficient as an 8-bit integer ``q_j`` in ``[-127, 127]``
and a float scale: ``w_j ≈ s_j · q_j`` with ``q_j = round(w_j / s_j)``. The intercept ``b``
stays a float.

Two granularities:

``per-tensor``
    One scale for every coefficient, ``s = max_j |w_j| / 127``. Storage: one byte per
    coefficient plus one float.
``per-feature``
    One scale per *input feature*, ``s_f = max_{j ∈ f} |w_j| / 127`` over the model columns
    feature ``f`` expands to (one for a numeric feature, one per category for a categorical).
    For a numeric feature the coefficient is then stored exactly (``q = ±127``), so a model of
    numeric features only is reproduced to rounding — but every feature also stores a float,
    so it is *larger* than the float coefficients it replaces.

The error bound follows from rounding to the nearest integer: ``|w_j − s_j q_j| ≤ s_j / 2``,
hence for any row ``x``::

    |ŷ_float − ŷ_int8| = |Σ_j x_j (w_j − s_j q_j)| ≤ Σ_j (s_j / 2) |x_j|

which for one scale is ``(s/2) · Σ_j |x_j|`` (:func:`error_bound`). Serving multiplies by the
dequantised coefficients ``s_j q_j`` in float64, so a quantised bundle is served by the same
numpy code path as any linear bundle.

This module needs numpy only.

Examples
--------
>>> import numpy as np
>>> qc = quantize_coefficients(np.array([0.5, -1.27, 0.0]))
>>> qc.q.tolist(), float(qc.scales[0])
([50, -127, 0], 0.01)
>>> float(error_bound(qc, np.array([[1.0, 1.0, 1.0]]))[0])
0.015
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from regressops.errors import BundleError, ConfigError
from regressops.features import CategoricalFeature, FeatureSpec

if TYPE_CHECKING:
    from regressops.models.bundle import ModelBundle

Granularity = Literal["per-tensor", "per-feature"]
GRANULARITIES: tuple[str, ...] = ("per-tensor", "per-feature")
QMAX = 127  # symmetric: [-127, 127]; -128 is never used, so negation stays in range
INT8_KIND = "linear-int8"
SCHEME = "symmetric-int8"
_EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class QuantizedCoefficients:
    """Coefficients stored as int8 values with one scale per group of model columns.

    Attributes
    ----------
    q : ndarray of int8, shape (n_columns,)
        The quantised coefficients, in ``[-127, 127]``.
    scales : ndarray of float64, shape (n_groups,)
        One scale per group (one group: per-tensor).
    groups : ndarray of int, shape (n_columns,)
        The group (index into ``scales``) of each model column.
    granularity : {"per-tensor", "per-feature"}
        How the groups were formed.
    """

    q: np.ndarray
    scales: np.ndarray
    groups: np.ndarray
    granularity: str

    @property
    def column_scales(self) -> np.ndarray:
        """The scale of each model column, shape ``(n_columns,)``."""
        return np.asarray(self.scales[self.groups], dtype=np.float64)

    def dequantize(self) -> np.ndarray:
        """The float64 coefficients ``s_j · q_j`` the model predicts with."""
        return self.column_scales * self.q.astype(np.float64)

    @property
    def nbytes(self) -> int:
        """Bytes of the stored parameters: one per coefficient, eight per scale."""
        return int(self.q.size + 8 * self.scales.size)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form kept in ``model.json`` under ``quantization``."""
        return {
            "scheme": SCHEME,
            "bits": 8,
            "granularity": self.granularity,
            "q": [int(v) for v in self.q],
            "scales": [float(s) for s in self.scales],
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], spec: FeatureSpec) -> QuantizedCoefficients:
        """Read :meth:`to_dict`'s form back, checking every value.

        The groups are not stored: they follow from the granularity and the feature spec
        (see :func:`feature_groups`).

        Raises
        ------
        BundleError
            Wrong scheme, counts, integer range, or non-finite or negative scales.
        """
        try:
            if doc.get("scheme") != SCHEME or int(doc.get("bits", 0)) != 8:
                raise ValueError(f"scheme {doc.get('scheme')!r} is not {SCHEME!r}")
            granularity = str(doc["granularity"])
            if granularity not in GRANULARITIES:
                raise ValueError(f"granularity {granularity!r}")
            raw_q = np.asarray(doc["q"], dtype=np.float64)
            scales = np.asarray(doc["scales"], dtype=np.float64)
            groups = (
                feature_groups(spec)
                if granularity == "per-feature"
                else np.zeros(spec.n_outputs, dtype=np.int64)
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BundleError(f"invalid quantization in model.json: {exc}") from None
        problems = []
        n_columns = spec.n_outputs
        if raw_q.shape != (n_columns,):
            problems.append(f"{raw_q.size} int8 values for {n_columns} model columns")
        elif not (np.isfinite(raw_q).all() and (raw_q == np.round(raw_q)).all()):
            problems.append("non-integer values")
        elif np.abs(raw_q).max(initial=0) > QMAX:
            problems.append(f"values outside [-{QMAX}, {QMAX}]")
        if scales.ndim != 1 or not scales.size or not (np.isfinite(scales) & (scales >= 0)).all():
            problems.append("scales must be finite and >= 0")
        elif scales.size != (int(groups.max()) + 1 if groups.size else 1):
            problems.append(f"{scales.size} scale(s) for {int(groups.max()) + 1} group(s)")
        if problems:
            raise BundleError(f"invalid quantization in model.json: {'; '.join(problems)}")
        return cls(raw_q.astype(np.int8), scales, groups, granularity)


def quantize_coefficients(
    coef: np.ndarray,
    *,
    granularity: str = "per-tensor",
    groups: Sequence[int] | np.ndarray | None = None,
) -> QuantizedCoefficients:
    """Quantise ``coef`` to symmetric int8.

    Parameters
    ----------
    coef : ndarray of shape (n_columns,)
        Finite float coefficients over the model matrix's columns.
    granularity : {"per-tensor", "per-feature"}, default="per-tensor"
        One scale for all, or one per group of columns.
    groups : sequence of int, optional
        The group of each column for ``"per-feature"`` (default: one group per column); see
        :func:`feature_groups`.

    Returns
    -------
    QuantizedCoefficients

    Raises
    ------
    ConfigError
        Unknown granularity, or ``groups`` not matching ``coef``.
    BundleError
        Non-finite coefficients.
    """
    w = np.asarray(coef, dtype=np.float64).reshape(-1)
    if not np.isfinite(w).all():
        raise BundleError("cannot quantise non-finite coefficients", reason="not_finite")
    if granularity == "per-tensor":
        g = np.zeros(w.size, dtype=np.int64)
    elif granularity == "per-feature":
        g = np.arange(w.size) if groups is None else np.asarray(groups, dtype=np.int64)
        if g.shape != w.shape or (g.size and g.min() < 0):
            raise ConfigError(
                f"{g.size} group indices for {w.size} coefficients", reason="invalid_groups"
            )
    else:
        raise ConfigError(
            f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}",
            reason="invalid_granularity",
        )
    n_groups = int(g.max()) + 1 if g.size else 1
    peak = np.zeros(n_groups)
    np.maximum.at(peak, g, np.abs(w))
    # A peak below 127 times the smallest float would give a zero scale for a non-zero
    # coefficient; the smallest positive float keeps it (q then stays within 127).
    scales = np.where(peak > 0, np.maximum(peak / QMAX, np.nextafter(0.0, 1.0)), 0.0)
    col = scales[g]
    safe = np.where(col > 0, col, 1.0)
    q = np.clip(np.rint(w / safe), -QMAX, QMAX)
    q[col == 0] = 0
    return QuantizedCoefficients(q.astype(np.int8), scales, g, granularity)


def quantize_bundle(bundle: ModelBundle, *, granularity: str = "per-tensor") -> ModelBundle:
    """Return a ``linear-int8`` copy of a float linear bundle (same spec, intercept, lineage).

    The copy records where it came from under ``quantization.source`` in ``model.json``
    (the float model's kind, version and metrics); its metrics are the caller's to set.

    Raises
    ------
    BundleError
        ``bundle`` is not a float linear model (already quantised, or a tree).
    """
    import dataclasses

    if not bundle.is_linear or bundle.coef is None or bundle.quantized is not None:
        raise BundleError(
            f"only a float linear model can be quantised; {bundle.name!r} is of kind "
            f"{bundle.kind!r}",
            reason="not_quantizable",
        )
    groups = feature_groups(bundle.spec)
    qc = quantize_coefficients(bundle.coef, granularity=granularity, groups=groups)
    source = {"kind": bundle.kind, "version": bundle.version, "created_at": bundle.created_at}
    return dataclasses.replace(
        bundle,
        kind=INT8_KIND,
        coef=qc.dequantize(),
        quantized=qc,
        extra={k: v for k, v in bundle.extra.items() if k not in ("plots",)}
        | {"quantized_from": source},
    )


def feature_groups(spec: FeatureSpec) -> np.ndarray:
    """The input feature (index into ``spec.features``) of each model column.

    A numeric feature is one column; a categorical one column per category.
    """
    groups: list[int] = []
    for i, f in enumerate(spec.features):
        groups.extend([i] * (len(f.categories) if isinstance(f, CategoricalFeature) else 1))
    return np.asarray(groups, dtype=np.int64)


def error_bound(qc: QuantizedCoefficients, X: np.ndarray) -> np.ndarray:
    """Per row, the bound ``Σ_j (s_j / 2) |x_j|`` on ``|ŷ_float − ŷ_int8|``.

    Parameters
    ----------
    qc : QuantizedCoefficients
    X : ndarray of shape (n_rows, n_columns)
        Rows of the model matrix.
    """
    return np.abs(np.asarray(X, dtype=np.float64)) @ (qc.column_scales / 2.0)


def rounding_allowance(
    X: np.ndarray, coef: np.ndarray, dequantized: np.ndarray, intercept: float
) -> np.ndarray:
    """Per row, a bound on the float64 rounding in computing both predictions.

    The bound of :func:`error_bound` holds in exact arithmetic; each prediction computed in
    float64 also carries a rounding error below ``n·ε·(Σ_j |x_j w_j| + |b|)`` (the classical
    bound on a dot product of ``n`` terms), so a measured difference is compared with
    ``bound + allowance``.
    """
    A = np.abs(np.asarray(X, dtype=np.float64))
    n = A.shape[1] + 1
    size = A @ (np.abs(coef) + np.abs(dequantized)) + 2.0 * abs(intercept)
    return 2.0 * n * _EPS * size


@dataclass(frozen=True)
class QuantizationReport:
    """What quantising cost on a set of rows (the test rows of the float model).

    Attributes
    ----------
    granularity : str
    n_rows : int
    float_r2, int8_r2, float_rmse, int8_rmse : float
        Metrics of the float and quantised models on the rows.
    r2_drop : float
        ``float_r2 − int8_r2`` (negative when quantising happened to help).
    max_abs_error : float
        Largest ``|ŷ_float − ŷ_int8|`` measured.
    bound_at_max : float
        The bound at the row of that largest error.
    max_bound : float
        The largest per-row bound over the rows.
    bound_violations : int
        Rows whose measured error exceeds their bound plus the float rounding allowance.
    float_bytes, int8_bytes : int
        Bytes of the stored coefficients (float64) and of the int8 values plus scales.
    """

    granularity: str
    n_rows: int
    float_r2: float
    int8_r2: float
    float_rmse: float
    int8_rmse: float
    r2_drop: float
    max_abs_error: float
    bound_at_max: float
    max_bound: float
    bound_violations: int
    float_bytes: int
    int8_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (kept in the quantised bundle's ``model.json``)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> QuantizationReport:
        """Read :meth:`to_dict`'s form back."""
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__})


def measure(
    coef: np.ndarray,
    intercept: float,
    qc: QuantizedCoefficients,
    X: np.ndarray,
    y: np.ndarray,
) -> QuantizationReport:
    """Measure a quantisation on rows ``X`` (model matrix) with targets ``y``.

    Returns
    -------
    QuantizationReport
        Metrics before and after, the largest measured ``|Δŷ|``, the bound, and how many rows
        broke it.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    w = np.asarray(coef, dtype=np.float64)
    w8 = qc.dequantize()
    before = X @ w + intercept
    after = X @ w8 + intercept
    diff = np.abs(before - after)
    bound = error_bound(qc, X)
    allowance = rounding_allowance(X, w, w8, intercept)
    worst = int(np.argmax(diff)) if diff.size else 0
    r2_f, rmse_f = _r2_rmse(y, before)
    r2_q, rmse_q = _r2_rmse(y, after)
    return QuantizationReport(
        granularity=qc.granularity,
        n_rows=int(X.shape[0]),
        float_r2=r2_f,
        int8_r2=r2_q,
        float_rmse=rmse_f,
        int8_rmse=rmse_q,
        r2_drop=r2_f - r2_q,
        max_abs_error=float(diff[worst]) if diff.size else 0.0,
        bound_at_max=float(bound[worst]) if diff.size else 0.0,
        max_bound=float(bound.max()) if bound.size else 0.0,
        bound_violations=int(np.count_nonzero(diff > bound + allowance)),
        float_bytes=8 * w.size,
        int8_bytes=qc.nbytes,
    )


def _r2_rmse(y: np.ndarray, pred: np.ndarray) -> tuple[float, float]:
    resid = float(np.sum((y - pred) ** 2))
    total = float(np.sum((y - y.mean()) ** 2)) if y.size else 0.0
    r2 = 1.0 - resid / total if total > 0 else math.nan
    return r2, math.sqrt(resid / y.size) if y.size else math.nan
