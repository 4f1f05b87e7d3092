"""Compiled inner loop of the ``sgd`` solver, with numba (the optional ``fast`` extra).

``sgd`` makes one update per sample, so its cost is the loop itself. With numba installed
(``pip install regressops[fast]``) the epoch runs as one compiled loop over the rows in the
order drawn; without it (or with ``REGRESSOPS_NUMBA=0`` in the environment) the numpy path of
:func:`regressops.models._epochs.epoch_sgd` runs, which computes blocks of sequential updates
with a triangular solve. Both make the same updates, in the same order, from the same random
draws: they differ by rounding only.

The loop compiles on first use (about a second) and is cached on disk by numba afterwards.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

ENV_SWITCH = "REGRESSOPS_NUMBA"
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

    For each row: standardise it (``[(x - x_mean) / x_scale, icpt]``), take the residual
    ``r = (y - y_mean) / y_scale - x @ theta``, then ``theta = decay * theta + x * g * r``
    with ``g = step * cw[i]`` (``step`` without ``cw``); when ``averaging``, fold the new
    iterate into the running average. Returns the new number of averaged iterates.

    Plain Python as written (tests run it so on small inputs); :func:`sgd_loop` compiles it.
    """
    d = X.shape[1]
    xa = np.empty(d + 1)
    xa[d] = icpt
    for t in range(order.shape[0]):
        i = order[t]
        dot = icpt * theta[d]
        for j in range(d):
            v = (X[i, j] - x_mean[j]) / x_scale[j]
            xa[j] = v
            dot += v * theta[j]
        u = step * ((y[i] - y_mean) / y_scale - dot)
        if has_cw:
            u *= cw[i]
        for j in range(d + 1):
            theta[j] = decay[j] * theta[j] + xa[j] * u
        if averaging:
            n_avg += 1
            inv = 1.0 / n_avg
            for j in range(d + 1):
                theta_avg[j] += (theta[j] - theta_avg[j]) * inv
    return n_avg


@lru_cache(maxsize=1)
def _compiled() -> Callable[..., Any] | None:
    try:
        import numba
    except ImportError:
        logger.debug("numba is not installed: sgd runs its numpy path")
        return None
    return numba.njit(cache=True, nogil=True)(sgd_epoch_loop)


def sgd_loop() -> Callable[..., int] | None:
    """The compiled :func:`sgd_epoch_loop`, or None (numba missing, or switched off).

    ``REGRESSOPS_NUMBA=0`` (or ``off``/``false``/``no``) in the environment switches the
    compiled loop off; it is read at every call.
    """
    if os.environ.get(ENV_SWITCH, "").strip().lower() in _OFF:
        return None
    return _compiled()
