"""Thread helpers of the linear solvers: BLAS thread limits and row ranges per worker.

Tall-skinny factorisations and small matrix products gain nothing from threaded BLAS (and
stall badly when the machine is oversubscribed), so the solvers run BLAS single-threaded and
parallelise over row ranges themselves, one worker per BLAS thread the user allows.
"""

from __future__ import annotations

import itertools
import os
from functools import lru_cache
from typing import Any

import numpy as np
from threadpoolctl import ThreadpoolController


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    return ThreadpoolController()


def _blas_threads() -> int:
    info = _blas_controller().select(user_api="blas").info()
    return max((int(lib["num_threads"]) for lib in info), default=1)


def blas_single_thread() -> Any:
    """Context in which BLAS/LAPACK run single-threaded (our threads do the parallel work)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def row_ranges(n: int, rows: int) -> list[slice]:
    """Split ``n`` rows into one contiguous range per worker (one when small)."""
    workers = min(_blas_threads(), os.cpu_count() or 1, n // (2 * rows))
    if workers <= 1:
        return [slice(0, n)]
    bounds = np.linspace(0, n, workers + 1).astype(int)
    return [slice(int(a), int(b)) for a, b in itertools.pairwise(bounds)]
