"""Linear least squares over partitions: an exact fit by a tree of QR reductions, and minibatch.

**Exact** (:func:`fit_exact`): every partition folds its training rows, transformed by the
FeatureSpec, into the triangular factor ``R`` of ``[1 | X | y]``
(:class:`regressops.models._qr.QRFactor`, the in-process exact solver's own factor); the factors
are merged pairwise on the workers in a tree (TSQR: ``qr([R_a; R_b])``), and the client solves
the ``p x p`` system with the same rank handling as the in-process fit. When the factor is
ill-conditioned (the in-process rule, ``cond > 1e3``) two steps of iterative refinement
follow, each one more pass computing ``A^T (b - A z)`` per partition in extended precision,
summed, then ``z += R^-1 R^-T g``. Memory per task: one partition and a ``p x p`` factor;
on the client: ``p x p``.

**In one pass** (:func:`profile_and_factor`, then ``fit_exact(..., raw_factor=...)``): when
the features and the target are numbers with no missing value, the profile's pass reads each
partition once into one matrix and also folds its raw rows ``[1 | X | y]`` into the factor;
the FeatureSpec's standardisation being an affine change of variables, that factor is the
factor of the transformed rows with its shift and scale relabelled
(:func:`in_spec_coordinates`), and the fit reads the data no more (refinement aside).

**Minibatch** (:func:`fit_minibatch`): the workers read and transform partitions, the client's
:class:`~regressops.models.linear.LinearRegressor` folds them in with ``partial_fit`` (one
epoch of minibatch steps over each partition) while the next partitions are being prepared,
for ``epochs`` passes over the data.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from regressops.compute.engines import Engine
from regressops.compute.partitions import (
    Columns,
    Partition,
    column_kinds,
    read_columns,
    read_table,
    table_columns,
    table_matrix,
)
from regressops.compute.profile import (
    ColumnProfile,
    TableProfile,
    merge_profiles,
    profile_frame,
    sample_rows,
)
from regressops.compute.rows import Side, SplitPlan, held_out, select
from regressops.compute.sketch import Moments, QuantileSummary
from regressops.errors import DataError, DivergenceError
from regressops.features import FeatureSpec
from regressops.models._qr import QRFactor, power_of_two_scale
from regressops.models.linear import LinearRegressor

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]
REFINE_STEPS = 2
AUTO_RETRIES = 8
_GRADIENT_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class LinearFitPlan:
    """How the linear model is fitted.

    Attributes
    ----------
    solver : {"exact", "minibatch"}
    alpha : float
        L2 penalty (ridge), as :class:`LinearRegressor`'s.
    fit_intercept : bool
    epochs : int
        Most passes over the data of the minibatch fit.
    tol : float
        The minibatch fit stops once a pass improves the mean loss by less than this share.
    batch_size : int
        Rows per minibatch step.
    random_state : int
        Seeds the minibatch shuffling.
    params : dict
        Further :class:`LinearRegressor` parameters of the minibatch fit.
    """

    solver: str = "exact"
    alpha: float = 0.0
    fit_intercept: bool = True
    epochs: int = 20
    tol: float = 1e-3
    batch_size: int = 256
    random_state: int = 42
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Design:
    """What a partition task needs to turn its rows into ``(X, y)``."""

    spec: FeatureSpec
    target: str
    plan: SplitPlan
    side: Side = "train"

    @property
    def columns(self) -> list[str]:
        return [*self.spec.names, self.target]

    def read(self, part: Partition) -> tuple[FloatArray, FloatArray]:
        """The partition's rows on ``side`` as the model matrix and the target."""
        frame = select(read_columns(part, self.columns), part, self.plan, self.side)
        y = np.asarray(frame[self.target], dtype=np.float64)
        if not np.isfinite(y).all():
            raise DataError(
                f"the target {self.target!r} is missing or not finite in "
                f"{int((~np.isfinite(y)).sum())} row(s) of {part.label}; expected numbers",
                reason="target_missing",
            )
        return self.spec.transform(frame), y


# ---------------------------------------------------------------------- exact
def _factor_task(part: Partition, *, design: Design, fit_intercept: bool) -> QRFactor | None:
    X, y = design.read(part)
    if not len(X):
        return None
    factor = QRFactor.from_first_chunk(X, y, None, fit_intercept=fit_intercept)
    return factor.update(X, y)


def _merge_factors(a: QRFactor | None, b: QRFactor | None) -> QRFactor | None:
    if a is None or b is None:
        return a if b is None else b
    return a.copy().merge(b)  # a copy: a task's result may be another's input on the worker


def _gradient_task(part: Partition, *, design: Design, factor: QRFactor, z: FloatArray) -> Any:
    X, y = design.read(part)
    if not len(X):
        return np.zeros_like(z)
    # the in-process solver's own extended-precision residual product (one block pass)
    return factor._gradient(z, X, y, None, slice(None), _GRADIENT_BLOCK_ROWS)


@dataclass(frozen=True)
class LinearFit:
    """A fitted linear model over partitions.

    Attributes
    ----------
    estimator : LinearRegressor
        Carries ``coef_`` and ``intercept_`` (a fitted estimator for the bundle).
    n_rows : int
        Training rows folded in.
    refined : bool
        Whether refinement passes ran (an ill-conditioned design).
    full_rank : bool
        False when the design was rank deficient (minimum-norm coefficients).
    passes : int
        Passes over the partitions the fit took.
    """

    estimator: LinearRegressor
    n_rows: int
    refined: bool = False
    full_rank: bool = True
    passes: int = 1


def fit_exact(
    engine: Engine,
    partitions: Sequence[Partition],
    design: Design,
    plan: LinearFitPlan,
    *,
    raw_factor: QRFactor | None = None,
) -> LinearFit:
    """Least squares over every training row of ``partitions``, exactly (see module notes).

    Parameters
    ----------
    raw_factor : QRFactor, optional
        The factor of the raw training rows ``[1 | X | y]`` that :func:`profile_and_factor`
        computed in the profile's pass: it is rewritten for ``design``'s FeatureSpec (an
        affine change of variables) instead of a pass over the data.

    Raises
    ------
    DataError
        No training row, or a target value is missing.
    """
    if raw_factor is not None:
        factor: QRFactor | None = in_spec_coordinates(
            raw_factor, design.spec, fit_intercept=plan.fit_intercept
        )
    else:
        task = functools.partial(_factor_task, design=design, fit_intercept=plan.fit_intercept)
        factor = engine.map_reduce(task, list(partitions), _merge_factors)
    if factor is None:
        raise DataError("the input has no training row to fit", reason="empty")
    z, R, full_rank = factor.solve(plan.alpha)
    passes, refined = 1, False
    if full_rank and factor.needs_refinement(R):
        R11 = R[:-1, :-1]
        first, d = int(plan.fit_intercept), factor.n_features
        from scipy.linalg import solve_triangular

        for _ in range(REFINE_STEPS):
            grad = functools.partial(_gradient_task, design=design, factor=factor, z=z)
            g = engine.map_reduce(grad, list(partitions), np.add)
            if plan.alpha:
                g[first : first + d] -= plan.alpha / factor.scale**2 * z[first : first + d]
            dz = solve_triangular(R11, solve_triangular(R11, g, trans="T"))
            if not np.all(np.isfinite(dz)):
                break
            z, passes, refined = z + dz, passes + 1, True
    coef, intercept = factor.to_model(z)
    estimator = _fitted(plan, coef, intercept, factor.n_samples_seen, factor.objective(z, R))
    logger.info(
        "exact fit over %d partitions: %d rows, %d pass(es)",
        len(partitions),
        factor.n_samples_seen,
        passes,
    )
    return LinearFit(estimator, factor.n_samples_seen, refined, full_rank, passes)


# ------------------------------------------------------------- profile + factor
@dataclass(frozen=True)
class _Profiled:
    """One partition's (or a subtree's) profile and raw factor; ``ok`` while every one had it."""

    profile: TableProfile
    factor: QRFactor | None
    ok: bool


def _profile_factor_task(
    part: Partition,
    *,
    features: list[str],
    target: str,
    categorical: list[str],
    plan: SplitPlan,
    factor: bool,
    sample_size: int = 0,
) -> _Profiled:
    """Profile a partition's training rows; when they are numbers with no gap, factor them too
    (and with ``sample_size``, keep a bottom-k sample of the rows: ``TableProfile.sample``)."""
    columns = [*features, target]
    table = read_table(part, columns)
    sample = (
        sample_rows(table_columns(table, columns), part, plan, "train", sample_size)
        if sample_size > 0
        else None
    )
    kinds = column_kinds(table, columns)
    numeric = (
        factor
        and not set(features) & set(categorical)
        and all(kinds[c] == "number" for c in columns)
    )
    matrix = table_matrix(table, columns) if numeric and table.num_rows else None
    if matrix is None:  # text, booleans, nulls or no row: the general profile
        frame = select(table_columns(table, columns), part, plan, "train")
        rows = profile_frame(frame, part, columns=columns, categorical=categorical)
        return _sampled(sample, rows, None, numeric and not table.num_rows)
    del table
    mask = held_out(plan, part.file_index, part.first_row, len(matrix))
    if mask.any():
        matrix = matrix[~mask]
    d, n = len(features), len(matrix)
    if not n:
        frame = Columns({c: matrix[:, j] for j, c in enumerate(columns)}, kinds)
        rows = profile_frame(frame, part, columns=columns, categorical=categorical)
        return _sampled(sample, rows, None, True)
    # the features' sorted values give the quantile summaries and the range (NaN sorts last);
    # one buffer for all: a fresh 8 n bytes per column would page-fault each time in a worker
    summaries, low, high = [], np.empty(d + 1), np.empty(d + 1)
    buffer = np.empty(n)
    for j in range(d):
        buffer[:] = matrix[:, j]
        buffer.sort()
        low[j], high[j] = buffer[0], buffer[-1]
        summaries.append(QuantileSummary.of_sorted(buffer))
    del buffer
    y = matrix[:, d]
    low[d], high[d] = y.min(), y.max()
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        # a gap to impute with the median still being learnt (or an error to raise): the
        # general profile here, and the fit makes its own pass
        frame = Columns({c: matrix[:, j] for j, c in enumerate(columns)}, kinds)
        rows = profile_frame(frame, part, columns=columns, categorical=categorical)
        return _sampled(sample, rows, None, False)
    X = matrix[:, :d]
    raw = QRFactor.from_first_chunk(X, y, None, fit_intercept=True).update(X, y)
    moments = _moments(raw, low, high)
    profiles = {
        name: ColumnProfile(moments[j], summaries[j] if j < d else None)
        for j, name in enumerate(columns)
    }
    return _sampled(sample, TableProfile(profiles, kinds, {part.index: n}, part.label), raw, True)


def _sampled(sample: Any, profile: TableProfile, factor: Any, ok: bool) -> _Profiled:
    """A partition's result, with its row sample (if one was asked for) in the profile."""
    if sample is not None:
        profile = dataclasses.replace(profile, sample=sample)
    return _Profiled(profile, factor, ok)


def _moments(factor: QRFactor, low: FloatArray, high: FloatArray) -> list[Moments]:
    """Each column's moments (features, then the target) from the factor of ``[1 | X | y]``.

    With ``R`` the factor of the shifted and scaled columns ``a_j``, ``R[0, 0] R[0, j]`` is
    ``sum a_j`` and ``|R[1:, j]|^2`` the sum of ``a_j``'s squared deviations from its mean
    (the part orthogonal to the column of ones): the mean and spread are exact to rounding.
    """
    n, R = factor.n_samples_seen, factor.R
    shift = np.append(factor.shift, factor.y_shift)
    scale = np.append(factor.scale, 1.0)
    out = []
    for j in range(len(shift)):
        k = j + 1
        if low[j] == high[j]:  # a constant: no rounding noise for a spread
            out.append(Moments(n, float(low[j]), 0.0, float(low[j]), float(high[j])))
            continue
        mean = shift[j] + scale[j] * (R[0, 0] * R[0, k] / n)
        m2 = scale[j] ** 2 * float(R[1 : k + 1, k] @ R[1 : k + 1, k])
        out.append(Moments(n, float(mean), m2, float(low[j]), float(high[j])))
    return out


def _merge_profiled(a: _Profiled, b: _Profiled) -> _Profiled:
    ok = a.ok and b.ok
    factor = _merge_factors(a.factor, b.factor) if ok else None
    return _Profiled(merge_profiles(a.profile, b.profile), factor, ok)


def profile_and_factor(
    engine: Engine,
    partitions: Sequence[Partition],
    *,
    features: Sequence[str],
    target: str,
    categorical: Sequence[str] = (),
    plan: SplitPlan,
    factor: bool = True,
    sample_size: int = 0,
) -> tuple[TableProfile, QRFactor | None]:
    """One pass over the training rows: their profile and, when it can, their raw factor.

    The profile is :func:`~regressops.compute.profile.profile_input`'s of ``[*features,
    target]`` on the training side of ``plan``. When every feature and the target hold numbers
    with no missing value in any partition, the same pass folds each partition's raw rows
    ``[1 | X | y]`` into a triangular factor (merged in the tree), and the profile's means and
    spreads are read from it; :func:`fit_exact` then needs no pass of its own
    (``raw_factor=``), since the FeatureSpec's standardisation is an affine change of variables
    of the raw factor. Otherwise (a categorical feature, a gap to impute with a median the
    pass is still learning; ``factor=False``) the factor is None and :func:`fit_exact` makes
    its own pass.

    Raises
    ------
    DataError
        There are no partitions.
    SchemaError
        A partition lacks a column or holds another kind of values in it.
    """
    if not partitions:
        raise DataError("the input has no partition to read", reason="empty")
    task = functools.partial(
        _profile_factor_task,
        features=list(features),
        target=target,
        categorical=list(categorical),
        plan=plan,
        factor=factor,
        sample_size=sample_size,
    )
    out = engine.map_reduce(task, list(partitions), _merge_profiled)
    return out.profile, out.factor if out.ok else None


def in_spec_coordinates(raw: QRFactor, spec: FeatureSpec, *, fit_intercept: bool) -> QRFactor:
    """The factor of ``[1 | spec.transform(X) | y]`` from the factor of ``[1 | X | y]``.

    The spec's numeric feature ``t = (x - c) / s`` and the raw factor's working column
    ``(x - f) / q`` are the same column with shift ``(f - c) / s`` and scale ``q / s`` in
    ``t``'s units, so ``R`` is kept as it is and only relabelled. Without an intercept the
    column of ones is then eliminated (the features' factor, uncentred, by one small QR).
    """
    if not spec.is_numeric_only or raw.n_features != len(spec.features):
        raise ValueError("a raw factor is rewritten only for a spec of its numeric features")
    center = np.array([f.center for f in spec.features])  # type: ignore[union-attr]
    spread = np.array([f.scale for f in spec.features])  # type: ignore[union-attr]
    out = QRFactor((raw.shift - center) / spread, raw.scale / spread, raw.y_shift, True)
    out.R = raw.R.copy(order="F")
    out.n_samples_seen, out.sum_weights = raw.n_samples_seen, raw.sum_weights
    if fit_intercept:
        return out
    d = out.n_features
    origin = QRFactor(np.zeros(d), power_of_two_scale(out.scale), 0.0, True)
    R = out._in_coordinates_of(origin)[:, 1:]  # columns t / scale and y, with the ones' row
    plain = QRFactor(np.zeros(d), origin.scale, 0.0, False)
    from scipy.linalg import qr

    plain.R = np.asfortranarray(np.triu(qr(R, mode="r")[0][: plain.p]))
    plain.n_samples_seen, plain.sum_weights = out.n_samples_seen, out.sum_weights
    return plain


def _fitted(
    plan: LinearFitPlan, coef: FloatArray, intercept: float, n_rows: int, loss: float
) -> LinearRegressor:
    """A LinearRegressor holding coefficients computed over partitions."""
    est = LinearRegressor(solver="exact", alpha=plan.alpha, fit_intercept=plan.fit_intercept)
    est.coef_ = np.asarray(coef, dtype=np.float64)
    est.intercept_ = float(intercept)
    est.n_features_in_ = len(coef)
    est.n_iter_ = 1
    est.loss_curve_ = [loss]
    est.n_samples_seen_ = n_rows
    return est


# ---------------------------------------------------------------------- minibatch
def _design_task(part: Partition, *, design: Design) -> tuple[FloatArray, FloatArray]:
    return design.read(part)


def fit_minibatch(
    engine: Engine, partitions: Sequence[Partition], design: Design, plan: LinearFitPlan
) -> LinearFit:
    """Minibatch SGD with partitions streamed from the workers (see module notes).

    Passes stop after ``plan.epochs`` or once a pass improves the mean training loss by less
    than ``plan.tol`` (relative). As the in-process fit does, an ``"auto"`` step that diverges
    is halved and the fit restarted (at most 8 times).

    Raises
    ------
    DataError
        No training row, or a target value is missing.
    DivergenceError
        The fit diverged at every step size tried.
    """
    learning_rate: float | str = plan.params.get("learning_rate", "auto")
    for attempt in range(AUTO_RETRIES + 1):
        try:
            return _stream_epochs(engine, partitions, design, plan, learning_rate)
        except DivergenceError as exc:
            if plan.params.get("learning_rate", "auto") != "auto" or attempt == AUTO_RETRIES:
                raise
            learning_rate = float(exc.details["learning_rate"]) / 2
            logger.warning("minibatch diverged; restarting with learning rate %g", learning_rate)
    raise AssertionError("unreachable")  # pragma: no cover


def _stream_epochs(
    engine: Engine,
    partitions: Sequence[Partition],
    design: Design,
    plan: LinearFitPlan,
    learning_rate: float | str,
) -> LinearFit:
    est = LinearRegressor(
        **{
            **plan.params,
            "solver": "minibatch",
            "learning_rate": learning_rate,
            "alpha": plan.alpha,
            "fit_intercept": plan.fit_intercept,
            "batch_size": plan.batch_size,
            "random_state": plan.random_state,
        }
    )
    task = functools.partial(_design_task, design=design)
    n_rows = 0
    losses: list[float] = []
    for epoch in range(plan.epochs):
        seen, total = 0, 0.0
        for X, y in engine.stream(task, list(partitions)):
            if len(X):
                est.partial_fit(X, y)
                seen += len(X)
                total += est.loss_curve_[-1] * len(X)
        if not seen:
            raise DataError("the input has no training row to fit", reason="empty")
        n_rows = seen
        losses.append(total / seen)
        logger.info("minibatch epoch %d: mean loss %.6g", epoch + 1, losses[-1])
        if len(losses) > 1 and 0 <= losses[-2] - losses[-1] < plan.tol * abs(losses[-2]):
            break
    fitted = copy.copy(est)
    fitted.loss_curve_ = losses
    fitted.n_iter_ = len(losses)
    return LinearFit(fitted, n_rows, passes=len(losses))
