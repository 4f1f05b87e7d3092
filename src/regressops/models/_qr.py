"""Streaming, mergeable Householder QR for (weighted, ridge) least squares.

The design is augmented as ``A = sqrt(w) * [1, (X - shift) / scale, y - y_shift]`` (the column of
ones only with an intercept). Row blocks of ``A`` are stacked under the current triangular factor
``R`` and re-factorised with LAPACK ``dgeqrf`` (Householder), so only a ``p x p`` factor is kept,
``p = n_features + 2``: memory does not grow with the number of rows. The last column of ``R``
holds ``Q^T y`` and ``R[-1, -1]**2`` is the residual sum of squares. The normal equations are
never formed.

The shift only conditions the problem: with the column of ones kept in the factor, any shift
gives the same least-squares solution, so a stream may use its first chunk's mean, and two
factors with different shifts and scales can be merged exactly (a column operation that keeps
``R`` upper triangular). Scales are powers of two, so scaling introduces no rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lapack, lstsq, solve_triangular, svd, svdvals

from regressops.models import _gram
from regressops.models._parallel import blas_single_thread, row_ranges

FloatArray = NDArray[np.float64]

# Rows per block handed to dgeqrf: large enough for LAPACK's blocked (level-3) code path,
# small enough that the work array stays in cache / a few MB whatever n is.
DEFAULT_BLOCK_ROWS = 4096
# Refine the QR solution when the scaled factor's condition number exceeds this: below it,
# QR alone is accurate to about cond * 1e-16 and a refinement pass would change nothing.
REFINE_ABOVE_COND = 1e3
_WORK_BYTES = 16 * 2**20
_SCALE_SAMPLE = 65536
_EPS = float(np.finfo(np.float64).eps)


def power_of_two_scale(values: FloatArray) -> FloatArray:
    """Round positive scales to the nearest power of two (zero and non-finite become 1)."""
    out = np.ones_like(values, dtype=np.float64)
    ok = np.isfinite(values) & (values > 0)
    out[ok] = np.exp2(np.round(np.log2(values[ok])))
    return out


def _block_rows(p: int, block_rows: int | None) -> int:
    """Rows per block: cache-sized for narrow designs, >> p for LAPACK's blocked code on wide."""
    if block_rows is not None:
        return max(1, int(block_rows))
    return max(256, min(max(DEFAULT_BLOCK_ROWS, 128 * p), _WORK_BYTES // (8 * p)))


@dataclass
class QRFactor:
    """Triangular factor of the augmented, shifted and scaled design.

    Parameters
    ----------
    shift : ndarray of shape (n_features,)
        Subtracted from every row of ``X`` (zeros without an intercept).
    scale : ndarray of shape (n_features,)
        Powers of two dividing the shifted columns.
    y_shift : float
        Subtracted from ``y``.
    fit_intercept : bool
        Whether the factor carries the column of ones.
    """

    shift: FloatArray
    scale: FloatArray
    y_shift: float
    fit_intercept: bool
    R: FloatArray = field(init=False)
    n_samples_seen: int = field(default=0, init=False)
    sum_weights: float = field(default=0.0, init=False)
    method: str = field(default="householder", init=False)

    def __post_init__(self) -> None:
        self.R = np.zeros((self.p, self.p), order="F")

    @classmethod
    def from_first_chunk(
        cls, X: FloatArray, y: FloatArray, w: FloatArray | None, *, fit_intercept: bool
    ) -> QRFactor:
        """Create an empty factor whose shift and scale come from one (weighted) chunk."""
        d = X.shape[1]
        # Shift and scale only condition the factor (any shift gives the same solution): the
        # mean of a strided sample of rows is close enough to centre, without a pass over X.
        step = max(1, len(X) // _SCALE_SAMPLE)
        Xs, ys, ws = X[::step], y[::step], None if w is None else w[::step]
        if ws is not None and not ws.sum() > 0:  # the sample missed every weighted row
            Xs, ys, ws = X, y, w
        total = float(len(Xs) if ws is None else ws.sum())
        if fit_intercept and total > 0:
            shift = (Xs.sum(axis=0) if ws is None else ws @ Xs) / total
            y_shift = float((ys.sum() if ws is None else ws @ ys) / total)
        else:
            shift, y_shift = np.zeros(d), 0.0
        if len(Xs) and (ws is None or ws.sum() > 0):
            spread, largest = _spread(Xs, ws, shift)
            # a spread at the rounding level of the values (one row, a constant column) is
            # noise, not a scale: it would blow the column up by up to 1/eps
            spread[spread <= 16 * _EPS * largest] = 0.0
        else:
            spread = np.ones(d)
        return cls(shift, power_of_two_scale(spread), y_shift, fit_intercept)

    @property
    def n_features(self) -> int:
        return int(self.shift.shape[0])

    @property
    def p(self) -> int:
        """Columns of the augmented design: [ones], features, y."""
        return self.n_features + 1 + int(self.fit_intercept)

    def _fill(
        self, out: FloatArray, X: FloatArray, y: FloatArray, sqrt_w: FloatArray | None
    ) -> None:
        """Write the augmented rows of one block into ``out`` (Fortran order)."""
        first = int(self.fit_intercept)
        d = self.n_features
        feats = out[:, first : first + d]
        np.subtract(X, self.shift, out=feats)
        feats *= 1.0 / self.scale
        np.subtract(y, self.y_shift, out=out[:, -1])
        if first:
            out[:, 0] = 1.0 if sqrt_w is None else sqrt_w
        if sqrt_w is not None:
            out[:, first:] *= sqrt_w[:, None]

    def update(
        self,
        X: FloatArray,
        y: FloatArray,
        sample_weight: FloatArray | None = None,
        *,
        block_rows: int | None = None,
        check_finite: Callable[[], object] | None = None,
    ) -> QRFactor:
        """Fold the rows ``(X, y)`` into the factor; returns ``self``.

        ``check_finite``, when given, raises if ``X`` or ``y`` holds a non-finite value: the
        caller has not checked them. It is called before any Householder factorisation, and
        by the Gram path only when the sums come out non-finite (any NaN or infinity in the
        rows makes them so), which saves a pass over ``X``.

        From :data:`._gram.GRAM_MIN_ROWS` rows on, the rows' factor is first computed from
        the Cholesky factor of their Gram matrix (one BLAS pass, see :mod:`._gram`) and kept
        when its condition number certifies it; otherwise, large inputs are split into
        contiguous row ranges factorised in parallel threads (one per BLAS thread allowed,
        each with single-threaded BLAS), then merged: a tree (TSQR) of small Householder
        factorisations. :attr:`method` says which factorisation the last update used.
        """
        n = X.shape[0]
        if n == 0:
            return self
        sqrt_w = None if sample_weight is None else np.sqrt(sample_weight)
        if n >= _gram.GRAM_MIN_ROWS:
            finite = self._gram_update(X, y, sqrt_w)
            if finite is None:
                self.n_samples_seen += n
                self.sum_weights += float(n if sample_weight is None else sample_weight.sum())
                return self
            if check_finite is not None and not finite:
                check_finite()
        elif check_finite is not None:
            check_finite()
        self.method = "householder"
        rows = min(n, _block_rows(self.p, block_rows))
        parts = row_ranges(n, rows)
        if len(parts) == 1:
            with blas_single_thread():
                self.R = self._factor_rows(self.R, X, y, sqrt_w, rows)
        else:
            with blas_single_thread(), ThreadPoolExecutor(len(parts)) as pool:
                factors = list(
                    pool.map(
                        lambda sl: self._factor_rows(
                            None, X[sl], y[sl], None if sqrt_w is None else sqrt_w[sl], rows
                        ),
                        parts,
                    )
                )
            self.R = _triangular_factor(np.vstack([self.R, *factors]), self.p)
        self.n_samples_seen += n
        self.sum_weights += float(n if sample_weight is None else sample_weight.sum())
        return self

    def _gram_update(self, X: FloatArray, y: FloatArray, sqrt_w: FloatArray | None) -> bool | None:
        """Fold the rows in through a certified Cholesky factor.

        Returns None when done; otherwise (not certified) whether the Gram sums were finite.
        """
        R, finite = _gram.certified_factor(
            X,
            y,
            sqrt_w,
            shift=self.shift,
            scale=self.scale,
            y_shift=self.y_shift,
            fit_intercept=self.fit_intercept,
        )
        if R is None:
            return finite
        self.R = (
            R if self.n_samples_seen == 0 else _triangular_factor(np.vstack([self.R, R]), self.p)
        )
        self.method = "cholesky"
        return None

    def _factor_rows(
        self,
        R: FloatArray | None,
        X: FloatArray,
        y: FloatArray,
        sqrt_w: FloatArray | None,
        rows: int,
    ) -> FloatArray:
        """Triangular factor of ``[R; augmented rows]``, one block of ``rows`` at a time."""
        p, n = self.p, X.shape[0]
        rows = min(rows, n)
        work = np.zeros((p + rows, p), order="F")
        lwork = max(int(lapack.dgeqrf_lwork(p + rows, p)[0]), 64 * p)
        if R is not None:
            work[:p] = R
        for start in range(0, n, rows):
            stop = min(start + rows, n)
            m = stop - start
            if m < rows:
                work[p + m :] = 0.0
            self._fill(
                work[p : p + m],
                X[start:stop],
                y[start:stop],
                None if sqrt_w is None else sqrt_w[start:stop],
            )
            qr, _, _, info = lapack.dgeqrf(work, lwork=lwork, overwrite_a=1)
            if info != 0:  # pragma: no cover - LAPACK argument errors only
                raise RuntimeError(f"LAPACK dgeqrf failed with info={info}")
            if qr is not work:  # pragma: no cover - f2py copies only non-Fortran input
                work[...] = qr
            work[:p] = np.triu(work[:p])
        return np.asfortranarray(work[:p])

    def _in_coordinates_of(self, other: QRFactor) -> FloatArray:
        """This factor's R rewritten for ``other``'s shift and scale (still triangular)."""
        R = self.R.copy(order="F")
        first = int(self.fit_intercept)
        d = self.n_features
        feats = slice(first, first + d)
        if first:
            # a_other = (x - m_o)/s_o = (s/s_o) a_self + ((m - m_o)/s_o) * ones
            R[:, feats] = R[:, feats] * self.scale + np.outer(R[:, 0], self.shift - other.shift)
            R[:, -1] += R[:, 0] * (self.y_shift - other.y_shift)
        else:
            R[:, feats] = R[:, feats] * self.scale
        R[:, feats] /= other.scale
        return R

    def merge(self, other: QRFactor) -> QRFactor:
        """Fold another factor (rows seen elsewhere) into this one; returns ``self``."""
        if other.n_features != self.n_features or other.fit_intercept != self.fit_intercept:
            raise ValueError(
                "cannot merge factors of different designs: "
                f"{other.n_features} vs {self.n_features} features, "
                f"fit_intercept {other.fit_intercept} vs {self.fit_intercept}"
            )
        self.R = _triangular_factor(np.vstack([self.R, other._in_coordinates_of(self)]), self.p)
        self.n_samples_seen += other.n_samples_seen
        self.sum_weights += other.sum_weights
        return self

    def copy(self) -> QRFactor:
        """An independent copy."""
        new = QRFactor(self.shift.copy(), self.scale.copy(), self.y_shift, self.fit_intercept)
        new.R = self.R.copy(order="F")
        new.method = self.method
        new.n_samples_seen = self.n_samples_seen
        new.sum_weights = self.sum_weights
        return new

    def _penalised(self, alpha: float) -> FloatArray:
        """The factor of the design with ridge rows ``sqrt(alpha) / scale`` appended."""
        if alpha == 0:
            return self.R
        p, first, d = self.p, int(self.fit_intercept), self.n_features
        ridge = np.zeros((d, p))
        ridge[np.arange(d), first + np.arange(d)] = math.sqrt(alpha) / self.scale
        return _triangular_factor(np.vstack([self.R, ridge]), p)

    def solve(self, alpha: float = 0.0) -> tuple[FloatArray, FloatArray, bool]:
        """Solve in working coordinates.

        The numerical rank is judged on the singular values of the features' block of ``R``
        (the centred features: the column of ones is eliminated first), relative to
        :func:`rank_rtol`, with each column divided by the norm it entered the factor with
        (its rounding level), so the decision does not depend on the working scale, which a
        stream takes from its first chunk and ``fit`` from all rows. A rank-deficient design
        (duplicate or constant columns, one-hot groups beside an intercept, fewer rows than
        columns) gets the minimum-norm solution in the caller's units, as
        :class:`sklearn.linear_model.LinearRegression` does.

        Returns
        -------
        z : ndarray of shape (p - 1,)
            ``[intercept offset,] scaled coefficients``.
        R : ndarray of shape (p, p)
            The factor used (ridge rows included), for refinement and the objective.
        full_rank : bool
            False when the design is numerically rank deficient and ``z`` is the
            minimum-norm solution.
        """
        R = self._penalised(alpha)
        R11, r12 = R[:-1, :-1], R[:-1, -1]
        first = int(self.fit_intercept)
        Rf = R11[first:, first:]
        norms = np.linalg.norm(R11[:, first:], axis=0)
        norms[~(norms > 0)] = 1.0
        sv = svdvals(Rf / norms, check_finite=False) if Rf.size else np.zeros(0)
        cutoff = sv.max(initial=0.0) * rank_rtol(self.n_features, self.n_samples_seen)
        ones_ok = not first or abs(R11[0, 0]) > 0
        if ones_ok and sv.size and sv.min() > cutoff:
            return solve_triangular(R11, r12, check_finite=False), R, True
        zf = _min_norm(Rf / norms, r12[first:], self.scale * norms, cutoff) / norms
        if not first:
            return zf, R, False
        z0 = (r12[0] - R11[0, 1:] @ zf) / R11[0, 0] if ones_ok else 0.0
        return np.concatenate([[z0], zf]), R, False

    def objective(self, z: FloatArray, R: FloatArray) -> float:
        """``(sum w r^2 + alpha |coef|^2) / (2 sum w)`` at ``z``, from the penalised ``R``."""
        fit = R[:-1, :-1] @ z - R[:-1, -1]
        total = float(fit @ fit + R[-1, -1] ** 2)
        return total / (2.0 * self.sum_weights) if self.sum_weights > 0 else 0.0

    @staticmethod
    def needs_refinement(R: FloatArray) -> bool:
        """Whether the factor is ill-conditioned enough for refinement to pay off."""
        R11 = R[:-1, :-1]
        return bool(R11.size) and float(np.linalg.cond(R11)) > REFINE_ABOVE_COND

    def to_model(self, z: FloatArray) -> tuple[FloatArray, float]:
        """Map working coordinates to ``(coef, intercept)`` in the caller's units."""
        first = int(self.fit_intercept)
        coef = z[first:] / self.scale
        if not first:
            return coef, 0.0
        # the shift's dot product cancels against y_shift: sum it in extended precision
        ld = np.longdouble
        intercept = ld(self.y_shift) + ld(z[0]) - self.shift.astype(ld) @ coef.astype(ld)
        return coef, float(intercept)

    def blocks(
        self, X: FloatArray, y: FloatArray, sample_weight: FloatArray | None, rows: int
    ) -> Iterator[FloatArray]:
        """Yield the augmented rows of ``(X, y)`` block by block (views of one buffer)."""
        buf = np.empty((min(rows, max(len(X), 1)), self.p), order="F")
        sqrt_w = None if sample_weight is None else np.sqrt(sample_weight)
        for start in range(0, len(X), rows):
            stop = min(start + rows, len(X))
            out = buf[: stop - start]
            self._fill(
                out, X[start:stop], y[start:stop], None if sqrt_w is None else sqrt_w[start:stop]
            )
            yield out

    def refine(
        self,
        z: FloatArray,
        R: FloatArray,
        X: FloatArray,
        y: FloatArray,
        sample_weight: FloatArray | None,
        alpha: float,
        *,
        steps: int = 2,
        block_rows: int | None = None,
    ) -> FloatArray:
        """Iterative refinement by the corrected semi-normal equations, chunked over rows.

        Each step computes the residual ``r = b - A z`` of the original rows in extended
        precision (``numpy.longdouble``), then ``z += R^-1 R^-T A^T r`` with the QR factor
        (Björck). This recovers digits plain QR loses to ``cond`` and ``cond^2 * residual``;
        each step is one more pass over ``X``.
        """
        rows = _block_rows(self.p, block_rows)
        R11 = R[:-1, :-1]
        first, d = int(self.fit_intercept), self.n_features
        parts = row_ranges(len(X), rows)
        for _ in range(steps):

            def gradient(sl: slice, z: FloatArray = z) -> FloatArray:
                return self._gradient(z, X[sl], y[sl], sample_weight, sl, rows)

            if len(parts) == 1:
                g = gradient(parts[0])
            else:
                with blas_single_thread(), ThreadPoolExecutor(len(parts)) as pool:
                    g = np.sum(list(pool.map(gradient, parts)), axis=0)
            if alpha:
                g[first : first + d] -= alpha / self.scale**2 * z[first : first + d]
            tmp = solve_triangular(R11, g, trans="T", check_finite=False)
            dz = solve_triangular(R11, tmp, check_finite=False)
            if not np.all(np.isfinite(dz)):
                break
            z = z + dz
        return z

    def _gradient(
        self,
        z: FloatArray,
        X: FloatArray,
        y: FloatArray,
        sample_weight: FloatArray | None,
        sl: slice,
        rows: int,
    ) -> FloatArray:
        """``A^T (b - A z)`` over the rows of ``X``, in extended precision.

        Both products use the exactly shifted rows: a rounded ``A`` in ``A^T r`` would bring
        back the ``cond^2`` error the refinement removes.
        """
        ld = np.longdouble
        first = int(self.fit_intercept)
        shift, scale = self.shift.astype(ld), self.scale.astype(ld)
        zl = z.astype(ld)
        w = None if sample_weight is None else sample_weight[sl]
        g = np.zeros(len(z), dtype=ld)
        for start in range(0, len(X), rows):
            stop = min(start + rows, len(X))
            A = (X[start:stop].astype(ld) - shift) / scale
            r = y[start:stop].astype(ld) - ld(self.y_shift) - A @ zl[first:]
            if first:
                r -= zl[0]
            if w is not None:
                r *= w[start:stop]  # sqrt(w) on the residual and on A
            g[first:] += r @ A
            if first:
                g[0] += r.sum()
        return g.astype(np.float64)


def _spread(
    X: FloatArray, w: FloatArray | None, shift: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """(Weighted) root-mean-square deviation from ``shift`` and largest magnitude per column.

    In blocks of rows, so the temporaries stay small whatever the sample's size.
    """
    d, rows = X.shape[1], max(256, 2**19 // max(X.shape[1], 1))
    squares, largest = np.zeros(d), np.zeros(d)
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite X: refused later
        for start in range(0, len(X), rows):
            block = X[start : start + rows]
            dev = block - shift
            dev *= dev
            squares += dev.sum(axis=0) if w is None else w[start : start + rows] @ dev
            np.maximum(largest, np.abs(block).max(axis=0), out=largest)
    total = float(len(X) if w is None else w.sum())
    return np.sqrt(squares / total), largest


def rank_rtol(n_features: int, n_rows: int) -> float:
    """Relative singular-value cutoff below which a column direction counts as collinear.

    Exactly collinear columns leave singular values of the factor at the rounding level of
    the Householder sweeps, about ``eps`` to ``100 eps`` relative (growing slowly with the
    rows folded in); full-rank but ill-conditioned designs (raw polynomials, trending series)
    stay far above ``1e-10``. ``10 d sqrt(n) eps`` lies between the two.
    """
    return 10.0 * max(n_features, 1) * math.sqrt(max(n_rows, n_features, 1)) * _EPS


def _min_norm(Rf: FloatArray, rhs: FloatArray, scale: FloatArray, cutoff: float) -> FloatArray:
    """Least-squares ``z`` of ``Rf z = rhs`` whose coefficients ``z / scale`` have least norm.

    Singular values at or below ``cutoff`` (absolute) count as zero. The SVD of the small triangular
    factor gives one solution and the null space; the component along the null space that
    minimises the norm in the caller's units (not the scaled ones) is then removed.
    """
    if not Rf.size:
        return np.zeros(Rf.shape[1])
    U, sv, Vt = svd(Rf, check_finite=False)
    rank = int((sv > cutoff).sum()) if sv[0] > 0 else 0
    z = Vt[:rank].T @ ((U[:, :rank].T @ rhs) / sv[:rank])
    null = Vt[rank:].T
    if null.size:
        shift = lstsq(null / scale[:, None], z / scale, check_finite=False)[0]
        z = z - null @ shift
    return np.asarray(z, dtype=np.float64)


def _triangular_factor(stacked: FloatArray, p: int) -> FloatArray:
    """The ``p x p`` upper-triangular Householder factor of a stack of rows."""
    r = lapack.dgeqrf(np.asfortranarray(stacked), overwrite_a=1)[0]
    return np.asfortranarray(np.triu(r[:p]))
