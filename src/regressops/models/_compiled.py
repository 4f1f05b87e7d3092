"""Compiled inner loop of the ``sgd`` solver, with numba (the optional ``fast`` extra).

``sgd`` makes one update per sample, so its cost is the loop itself. With numba installed
(``pip install regressops[fast]``) the epoch runs as one compiled loop over the rows in the
order drawn, and the importance sampling's row norms and draws are compiled too; without it (or
with ``REGRESSOPS_NUMBA=0`` in the environment) the numpy path of
:func:`regressops.models._epochs.epoch_sgd` runs, which computes blocks of sequential updates
with a triangular solve. Both make the same updates, in the same order, from the same random
draws: they differ by rounding only.

The loop compiles on first use (about a second) and is cached on disk by numba afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

ENV_SWITCH = "REGRESSOPS_NUMBA"
GATHER = 256  # rows gathered and standardised ahead of their updates
_OFF = {"0", "off", "false", "no"}


def sgd_epoch_loop(
    X: FloatArray,
    y: FloatArray,
    cw: FloatArray,
    has_cw: bool,
    order: NDArray[np.intp],
    x_mean: FloatArray,
    x_scale: FloatArray,
    y_mean: float,
    y_scale: float,
    icpt: float,
    step: float,
    decay: FloatArray,
    theta: FloatArray,
    theta_avg: FloatArray,
    n_avg: int,
    averaging: bool,
) -> int:
    """One ``sgd`` epoch over the rows ``order``; updates ``theta``/``theta_avg`` in place.

    For each row in turn: standardise it (``x = [(x - x_mean) / x_scale, icpt]``, as products
    with the reciprocals), take the residual ``r = (y - y_mean) / y_scale - x @ theta``, then
    ``theta = decay * theta + x * g * r`` with ``g = step * cw[i]`` (``step`` without ``cw``);
    when ``averaging``, fold the new iterate into the running average. Rows are gathered a
    block at a time ahead of their updates. Returns the new number of averaged iterates.

    Plain Python as written (tests run it so on small inputs); :func:`sgd_loop` compiles it.
    """
    d, n = X.shape[1], order.shape[0]
    rows = GATHER
    xa = np.empty((rows, d + 1))
    yb = np.empty(rows)
    gb = np.empty(rows)
    inv_scale = 1.0 / x_scale  # multiplications: a division per value would cost as much
    inv_y = 1.0 / y_scale  # as the rest of the update
    for start in range(0, n, rows):
        m = min(rows, n - start)
        # Gather and standardise the next rows first: independent of each other, so their
        # cache misses overlap instead of stalling every update in turn.
        for k in range(m):
            i = order[start + k]
            for j in range(d):
                xa[k, j] = (X[i, j] - x_mean[j]) * inv_scale[j]
            xa[k, d] = icpt
            yb[k] = (y[i] - y_mean) * inv_y
            gb[k] = step * cw[i] if has_cw else step
        for k in range(m):
            dot = 0.0
            for j in range(d + 1):
                dot += xa[k, j] * theta[j]
            u = gb[k] * (yb[k] - dot)
            for j in range(d + 1):
                theta[j] = decay[j] * theta[j] + xa[k, j] * u
            if averaging:
                n_avg += 1
                inv = 1.0 / n_avg
                for j in range(d + 1):
                    theta_avg[j] += (theta[j] - theta_avg[j]) * inv
    return n_avg


def sorted_draws(cdf: FloatArray, u: FloatArray) -> NDArray[np.intp]:
    """Row drawn by each sorted uniform ``u``: the first ``i`` with ``cdf[i] > u`` (or the last).

    ``np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)`` as one merge walk
    (``u`` sorted), without the binary searches.
    """
    n = cdf.shape[0]
    out = np.empty(u.shape[0], dtype=np.intp)
    i = 0
    for k in range(u.shape[0]):
        while i < n and cdf[i] <= u[k]:
            i += 1
        out[k] = i if i < n else n - 1
    return out


def row_norms2(
    X: FloatArray, x_mean: FloatArray, x_scale: FloatArray, icpt: float, out: FloatArray
) -> None:
    """``out[i] = |(X[i] - x_mean) / x_scale|**2 + icpt**2``, in one pass without temporaries."""
    d = X.shape[1]
    inv_scale = 1.0 / x_scale
    for i in range(X.shape[0]):
        total = icpt * icpt
        for j in range(d):
            v = (X[i, j] - x_mean[j]) * inv_scale[j]
            total += v * v
        out[i] = total


_KERNELS: dict[str, Callable[..., Any]] = {
    "sgd_epoch": sgd_epoch_loop,
    "sorted_draws": sorted_draws,
    "row_norms2": row_norms2,
}


@cache
def _compiled(name: str) -> Callable[..., Any] | None:
    try:
        import numba
    except ImportError:
        logger.debug("numba is not installed: sgd runs its numpy path")
        return None
    return numba.njit(cache=True, nogil=True)(_KERNELS[name])


def kernel(name: str) -> Callable[..., Any] | None:
    """The compiled kernel ``name`` (see ``_KERNELS``), or None (numba missing, or switched off).

    ``REGRESSOPS_NUMBA=0`` (or ``off``/``false``/``no``) in the environment switches the
    compiled kernels off; it is read at every call.
    """
    if os.environ.get(ENV_SWITCH, "").strip().lower() in _OFF:
        return None
    return _compiled(name)


def sgd_loop() -> Callable[..., int] | None:
    """The compiled :func:`sgd_epoch_loop`, or None (see :func:`kernel`)."""
    return kernel("sgd_epoch")
