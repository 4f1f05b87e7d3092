"""Regression metrics with numpy only: R², RMSE, MSE, MAE.

The formulas are scikit-learn's (``r2_score``, ``root_mean_squared_error``,
``mean_squared_error``, ``mean_absolute_error``) for one output without sample weights, so the
numbers agree with scikit-learn's to the last bits; the serving and monitoring paths can use them
without importing scikit-learn.

Examples
--------
>>> regression_metrics([3.0, -0.5, 2.0, 7.0], [2.5, 0.0, 2.0, 8.0])
{'r2': 0.9486081370449679, 'rmse': 0.6123724356957945, 'mse': 0.375, 'mae': 0.5}
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from regressops.errors import DataError

METRIC_NAMES = ("r2", "rmse", "mse", "mae")


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).ravel()
    p = np.asarray(y_pred, dtype=np.float64).ravel()
    if t.shape != p.shape:
        raise DataError(
            f"{t.size} true values but {p.size} predictions; expected the same number",
            reason="length_mismatch",
        )
    if t.size == 0:
        raise DataError("no values to score; expected at least one", reason="empty")
    if not (np.isfinite(t).all() and np.isfinite(p).all()):
        raise DataError(
            "true values or predictions hold NaN or infinity; expected finite numbers",
            reason="not_finite",
        )
    return t, p


def mse(y_true: Any, y_pred: Any) -> float:
    """Mean squared error."""
    t, p = _pair(y_true, y_pred)
    return float(np.average((t - p) ** 2))


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error."""
    return math.sqrt(mse(y_true, y_pred))


def mae(y_true: Any, y_pred: Any) -> float:
    """Mean absolute error."""
    t, p = _pair(y_true, y_pred)
    return float(np.average(np.abs(p - t)))


def r2(y_true: Any, y_pred: Any) -> float:
    """Coefficient of determination R².

    ``1 - SS_res / SS_tot``. As in scikit-learn: NaN for fewer than two values; for a constant
    ``y_true``, 1.0 when the predictions are perfect and 0.0 otherwise.
    """
    t, p = _pair(y_true, y_pred)
    if t.size < 2:
        return math.nan
    numerator = float(((t - p) ** 2).sum(axis=0))
    denominator = float(((t - np.average(t, axis=0)) ** 2).sum(axis=0))
    if denominator == 0.0:
        return 1.0 if numerator == 0.0 else 0.0
    return 1.0 - numerator / denominator


def regression_metrics(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Return ``{"r2", "rmse", "mse", "mae"}`` for one set of predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n,)
        Observed and predicted values; finite, same length, at least one.

    Returns
    -------
    dict of str to float

    Raises
    ------
    DataError
        The arrays differ in length, are empty or hold non-finite values.
    """
    t, p = _pair(y_true, y_pred)
    squared = mse(t, p)
    return {"r2": r2(t, p), "rmse": math.sqrt(squared), "mse": squared, "mae": mae(t, p)}
