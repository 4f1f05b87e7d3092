"""Fast path of the exact solver: the triangular factor from a Cholesky of the Gram matrix.

The factor ``R`` that :class:`~regressops.models._qr.QRFactor` keeps is, in exact arithmetic,
also the Cholesky factor of ``A^T A`` for the augmented design
``A = sqrt(w) * [1, (X - shift) / scale, y - y_shift]``. ``A^T A`` takes one pass over the rows
with level-3 BLAS (each block of rows shifted into a small cache-resident buffer, then one
``syrk``), against Householder QR's several sweeps per block; with the shift near the mean, the
column of ones is almost orthogonal to the features and eliminating it (the first Cholesky step)
is the centring, without cancellation.

The price is accuracy: a solve through ``A^T A`` loses about ``cond(A)**2 * eps`` relative, QR
about ``cond(A) * eps``. So the Cholesky factor is used only when its condition number, with its
columns normalised (the scaling Cholesky's error bound is near-optimal for, van der Sluis),
certifies ``cond**2 * eps <= GRAM_ERROR_BOUND``; otherwise (ill-conditioned, rank deficient, a
Cholesky that breaks down, non-finite sums) the caller runs Householder QR with refinement as
before. The condition number comes from the singular values of the small ``(p-1) x (p-1)``
factor, which the computed Gram matrix gives to well within the bound at these condition numbers.
"""

from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lapack, solve_triangular, svdvals

from regressops.models._parallel import blas_single_thread, row_ranges

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

_EPS = float(np.finfo(np.float64).eps)
# Accept the Cholesky factor when cond**2 * eps (the normal equations' relative error) is below
# this: cond <= ~67. QR alone gives ~cond * eps; both are far below the 1e-10 the solver promises.
GRAM_ERROR_BOUND = 1e-12
GRAM_MAX_COND = math.sqrt(GRAM_ERROR_BOUND / _EPS)
# The residual sum of squares (the objective, loss_curve_) comes out as a difference,
# sum (y - y_shift)**2 - |r12|**2, losing about eps * sum (y - y_shift)**2 / rss relative.
# Accept only while that is below this (R**2 up to about 1 - 2e-5); near-exact fits take QR.
GRAM_RSS_BOUND = 1e-11
# Below this many rows Householder QR costs next to nothing: the fast path is not tried.
GRAM_MIN_ROWS = 20_000
# Rows per block: the shifted block (rows x p doubles) stays in the L2 cache.
GRAM_BLOCK_BYTES = 1 << 20


def gram_rows(p: int) -> int:
    """Rows per block of the Gram pass for ``p`` augmented columns."""
    return max(256, GRAM_BLOCK_BYTES // (8 * p))


def augmented_gram(
    X: FloatArray,
    y: FloatArray,
    sqrt_w: FloatArray | None,
    *,
    shift: FloatArray,
    y_shift: float,
    fit_intercept: bool,
) -> FloatArray:
    """``A^T A`` of the augmented design, unscaled (``scale`` is applied by the caller).

    Contiguous row ranges run in parallel threads (one per allowed BLAS thread, each with
    single-threaded BLAS), block by block through a buffer of :func:`gram_rows` rows.
    """
    first, d = int(fit_intercept), X.shape[1]
    p = d + 1 + first
    rows = gram_rows(p)

    def part(sl: slice) -> FloatArray:
        Xs, ys = X[sl], y[sl]
        sw = None if sqrt_w is None else sqrt_w[sl]
        m = Xs.shape[0]
        buf = np.empty((min(rows, m), p))
        G = np.zeros((p, p))
        with np.errstate(invalid="ignore", over="ignore"):  # non-finite input: G says so
            for start in range(0, m, rows):
                stop = min(start + rows, m)
                out = buf[: stop - start]
                np.subtract(Xs[start:stop], shift, out=out[:, first : first + d])
                if first:
                    out[:, 0] = 1.0
                np.subtract(ys[start:stop], y_shift, out=out[:, -1])
                if sw is not None:
                    out *= sw[start:stop, None]
                G += out.T @ out  # numpy hands A^T A to BLAS syrk
        return G

    parts = row_ranges(X.shape[0], rows)
    with blas_single_thread():
        if len(parts) == 1:
            return part(parts[0])
        with ThreadPoolExecutor(len(parts)) as pool:
            return np.asarray(sum(pool.map(part, parts)))


def cholesky_factor(G: FloatArray) -> tuple[FloatArray | None, float]:
    """The upper-triangular factor of ``G = A^T A`` when it is certified accurate enough.

    ``G``'s last row and column belong to the target: the features' block is factorised, the
    last column of ``R`` is ``R11^-T g`` and its corner the square root of the residual sum of
    squares, accepted only while the cancellation in it stays below :data:`GRAM_RSS_BOUND`.

    Returns
    -------
    R : ndarray of shape (p, p) or None
        The factor, or None when the Cholesky breaks down or the normalised condition number
        exceeds :data:`GRAM_MAX_COND`.
    cond : float
        That condition number (``inf`` when there is none, ``nan`` when the factor was
        refused for the residual sum of squares' cancellation).
    """
    G11 = np.asfortranarray(G[:-1, :-1])
    norms = np.sqrt(np.diag(G11))
    if not np.all(norms > 0):
        return None, math.inf
    R11, info = lapack.dpotrf(G11, lower=0, clean=1, overwrite_a=1)
    if info != 0:
        return None, math.inf
    sv = svdvals(R11 / norms, check_finite=False)
    cond = float(sv[0] / sv[-1]) if sv[-1] > 0 else math.inf
    if not cond <= GRAM_MAX_COND:
        return None, cond
    r12 = solve_triangular(R11, G[:-1, -1], trans="T", check_finite=False)
    rss = float(G[-1, -1] - r12 @ r12)
    if not rss * GRAM_RSS_BOUND >= _EPS * G[-1, -1]:
        return None, math.nan
    p = G.shape[0]
    R = np.zeros((p, p), order="F")
    R[:-1, :-1] = R11
    R[:-1, -1] = r12
    R[-1, -1] = math.sqrt(rss)
    return R, cond


def certified_factor(
    X: FloatArray,
    y: FloatArray,
    sqrt_w: FloatArray | None,
    *,
    shift: FloatArray,
    scale: FloatArray,
    y_shift: float,
    fit_intercept: bool,
) -> tuple[FloatArray | None, bool]:
    """The rows' triangular factor in the working coordinates, when certified.

    Returns
    -------
    R : ndarray of shape (p, p) or None
        The factor of ``sqrt(w) * [1, (X - shift) / scale, y - y_shift]``, or None when it
        is not certified (see :func:`cholesky_factor`) or the sums are not finite.
    finite : bool
        Whether the Gram sums were finite: False when ``X`` or ``y`` holds a NaN or an
        infinity (or the squares overflow).
    """
    G = augmented_gram(X, y, sqrt_w, shift=shift, y_shift=y_shift, fit_intercept=fit_intercept)
    col_scale = np.concatenate([np.ones(int(fit_intercept)), scale, [1.0]])
    G /= np.outer(col_scale, col_scale)  # powers of two: exact
    if not np.all(np.isfinite(G)):
        return None, False
    with blas_single_thread():  # p x p algebra: BLAS threads only stall on it
        R, cond = cholesky_factor(G)
    if R is None:
        logger.debug(
            "Gram factor refused: normalised condition number %.3g (limit %.3g; nan: the "
            "residual sum of squares cancels); Householder QR instead",
            cond,
            GRAM_MAX_COND,
        )
    else:
        logger.debug("Gram factor used (normalised condition number %.3g)", cond)
    return R, True
