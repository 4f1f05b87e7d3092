"""One epoch of each iterative solver of ``LinearRegressor`` (see :mod:`._iterative`).

Rows are gathered in shuffled order a few thousand at a time (one fancy-indexing call per
chunk), standardised, and given a trailing column for the intercept (1, or 0 without one);
the updates then work on views of that chunk. ``theta = [b..., c]`` lives in the standardised
space; ``pen_w`` is the L2 penalty per standardised coefficient divided by the total weight.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import lapack

from regressops.models import _compiled as compiled

if TYPE_CHECKING:
    from regressops.models._iterative import IterState

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.intp]

SGD_BLOCK = 128  # sequential SGD updates computed per triangular solve
GATHER_ROWS = 8192  # rows gathered and standardised per chunk
LOSS_ROWS = 262144
_NO_WEIGHTS = np.empty(0)


def gathered(
    state: IterState,
    X: FloatArray,
    y: FloatArray,
    cw: FloatArray | None,
    order: IntArray | None,
    rows: int,
) -> Iterator[tuple[FloatArray, FloatArray, FloatArray | None]]:
    """Yield standardised ``(xa, y, c)`` chunks of about ``rows`` rows, in ``order``."""
    n = len(X) if order is None else len(order)
    icpt = 1.0 if state.fit_intercept else 0.0
    for start in range(0, n, rows):
        idx: slice | IntArray = (
            slice(start, start + rows) if order is None else order[start : start + rows]
        )
        xb = X[idx]
        xa = np.empty((len(xb), xb.shape[1] + 1))
        np.subtract(xb, state.x_mean, out=xa[:, :-1])
        xa[:, :-1] /= state.x_scale
        xa[:, -1] = icpt
        yb = (y[idx] - state.y_mean) / state.y_scale
        yield xa, yb, None if cw is None else cw[idx]


def average(state: IterState, block_sum: FloatArray, count: int) -> None:
    """Fold the sum of ``count`` iterates into the running average."""
    state.theta_avg += (block_sum - count * state.theta_avg) / (state.n_avg + count)
    state.n_avg += count


def epoch_gd(state: IterState, X: FloatArray, y: FloatArray, w: FloatArray | None) -> None:
    """One full-batch gradient step."""
    theta = state.theta
    W = float(len(X) if w is None else w.sum())
    grad = np.zeros_like(theta)
    for xa, yb, wb in gathered(state, X, y, w, None, LOSS_ROWS):
        r = yb - xa @ theta
        grad -= (r if wb is None else r * wb) @ xa
    grad /= W
    grad[:-1] += state.pen * theta[:-1] / W
    if not state.fit_intercept:
        grad[-1] = 0.0
    state.theta = theta - state.step * grad


def epoch_minibatch(
    state: IterState,
    X: FloatArray,
    y: FloatArray,
    cw: FloatArray | None,
    order: IntArray,
    batch: int,
    averaging: bool,
    pen_w: FloatArray,
) -> None:
    """One pass of ``batch``-sample gradient steps, averaging the iterates when asked."""
    theta, step = state.theta, state.step
    shrink = np.append(step * pen_w, 0.0)
    rows = max(batch, GATHER_ROWS // batch * batch)
    for xa_all, y_all, c_all in gathered(state, X, y, cw, order, rows):
        for start in range(0, len(y_all), batch):
            xa = xa_all[start : start + batch]
            r = y_all[start : start + batch] - xa @ theta
            if c_all is not None:
                r *= c_all[start : start + batch]
            theta += (step / len(r)) * (r @ xa) - shrink * theta
            if averaging:
                average(state, theta, 1)


def decay_tables(
    decay: FloatArray, k: int
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Powers of the per-update L2 decay ``d`` for a block of ``k`` sequential updates.

    Returns ``d**t`` (t = 0..k), ``d**-(s+1)`` (s = 0..k-1), the weights ``sum_{i<=k-1-s} d**i``
    with which update ``s`` enters the sum of the block's iterates, and ``sum_{t=1..k} d**t``.
    """
    powers = decay[None, :] ** np.arange(k + 1)[:, None]
    inverse = 1.0 / powers[1:]
    partial = np.cumsum(powers[:k], axis=0)  # S_m = sum_{i<=m} d**i
    return powers, inverse, partial[::-1], partial[-1] * decay


def epoch_sgd(
    state: IterState,
    X: FloatArray,
    y: FloatArray,
    cw: FloatArray | None,
    order: IntArray,
    averaging: bool,
    pen_w: FloatArray,
) -> None:
    """One sample per update, a block of them per triangular solve.

    With ``theta_{t+1} = D theta_t + x_t u_t`` (``D`` the L2 decay, ``u_t = g_t r_t``), the
    residuals of a block satisfy ``(I + tril(P Q^T, -1) diag(g)) r = y - P theta_0`` where
    ``P = X * d**t`` and ``Q = X * d**-(s+1)``: one unit-triangular solve per block, exactly
    the sequential updates (to rounding). With numba (:mod:`._compiled`) one compiled loop
    makes the same updates one by one instead.
    """
    theta, step = state.theta, state.step
    decay = np.append(1.0 - step * pen_w, 1.0)
    loop = compiled.sgd_loop()
    if loop is not None:
        state.n_avg = loop(
            X,
            y,
            _NO_WEIGHTS if cw is None else cw,
            cw is not None,
            order,
            state.x_mean,
            state.x_scale,
            float(state.y_mean),
            float(state.y_scale),
            1.0 if state.fit_intercept else 0.0,
            float(step),
            decay,
            theta,
            state.theta_avg,
            int(state.n_avg),
            bool(averaging),
        )
        return
    smallest = float(decay.min())
    block = SGD_BLOCK
    if smallest < 1.0:  # keep d**-k far from overflow
        block = int(np.clip(27.0 / -np.log(max(smallest, 1e-300)), 1, SGD_BLOCK))
    plain = smallest == 1.0
    tables = decay_tables(decay, block)
    lower = np.tri(block, block, -1)
    const_g = step * lower
    for xa_all, y_all, c_all in gathered(state, X, y, cw, order, max(block, GATHER_ROWS)):
        for start in range(0, len(y_all), block):
            xa = xa_all[start : start + block]
            k = len(xa)
            powers, inverse, weights, geometric = tables if k == block else decay_tables(decay, k)
            P, Q = (xa, xa) if plain else (xa * powers[:k], xa * inverse)
            M = P @ Q.T
            if c_all is None:
                g = np.full(k, step)
                M *= const_g[:k, :k]
            else:
                g = step * c_all[start : start + k]
                M *= lower[:k, :k] * g[None, :]
            M.flat[:: k + 1] = 1.0
            e = y_all[start : start + k] - P @ theta
            # M is C-ordered: its transpose is a Fortran-ordered upper-triangular matrix
            r, _ = lapack.dtrtrs(M.T, e, lower=0, trans=1, unitdiag=1, overwrite_b=1)
            u = g * r  # the per-sample update sizes
            if averaging:
                average(state, geometric * theta + (xa * weights).T @ u, k)
            theta[:] = (theta + Q.T @ u) if plain else powers[k] * (theta + Q.T @ u)


def importance_draws(
    state: IterState, X: FloatArray, cw: FloatArray | None
) -> tuple[FloatArray, FloatArray]:
    """Sampling for ``sgd``: probability ``(1/n + c_i |x_i|^2 / sum c|x|^2) / 2`` per row.

    Returns the per-row multipliers ``c_i / (n p_i)`` that keep the gradient unbiased and the
    cumulative distribution to draw from (Needell, Srebro and Ward's partially biased sampling).
    """
    n = len(X)
    c = np.ones(n) if cw is None else cw
    norms2 = np.empty(n)
    icpt = 1.0 if state.fit_intercept else 0.0
    norms = compiled.kernel("row_norms2")
    if norms is not None:
        norms(X, state.x_mean, state.x_scale, icpt, norms2)
    else:
        xb = np.empty((min(n, GATHER_ROWS), X.shape[1]))  # cache-sized: no page faults
        for start in range(0, n, GATHER_ROWS):
            block = X[start : start + GATHER_ROWS]
            out = xb[: len(block)]
            np.subtract(block, state.x_mean, out=out)
            out /= state.x_scale
            norms2[start : start + len(block)] = np.einsum("ij,ij->i", out, out)
        norms2 += icpt
    cn2 = c * norms2
    p = 0.5 / n + 0.5 * cn2 / max(float(cn2.sum()), 1e-300)
    p /= p.sum()
    cdf = np.cumsum(p)
    cdf[-1] = 1.0
    return c / (n * p), cdf


def draw(state: IterState, cdf: FloatArray) -> IntArray:
    """``len(cdf)`` row indices drawn with replacement from the distribution ``cdf``."""
    u = state.rng.random_sample(len(cdf))
    u.sort()  # sorted queries walk the table in order: several times faster than random ones
    walk = compiled.kernel("sorted_draws")
    if walk is not None:
        idx = walk(cdf, u)
    else:
        idx = np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)
    state.rng.shuffle(idx)
    return idx
