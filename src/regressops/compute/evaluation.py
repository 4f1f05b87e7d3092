"""Regression metrics over partitions: sums per partition, combined, then R², RMSE, MSE, MAE.

The squared and absolute errors are summed per partition and the target's spread is combined
with :class:`~regressops.compute.sketch.Moments`, so the metrics equal
:func:`regressops.training.metrics.regression_metrics` on all rows to rounding.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from regressops.compute.engines import Engine
from regressops.compute.linear import Design
from regressops.compute.partitions import Partition
from regressops.compute.rows import held_out
from regressops.compute.sketch import Moments
from regressops.errors import DataError


@dataclass(frozen=True)
class ErrorSums:
    """The combinable pieces of the regression metrics of some rows."""

    n: int = 0
    squared: float = 0.0
    absolute: float = 0.0
    target: Moments = field(default_factory=Moments)

    def merge(self, other: ErrorSums) -> ErrorSums:
        """Sums over both sets of rows."""
        return ErrorSums(
            self.n + other.n,
            self.squared + other.squared,
            self.absolute + other.absolute,
            self.target.merge(other.target),
        )

    def metrics(self) -> dict[str, float]:
        """``r2``, ``rmse``, ``mse``, ``mae`` (scikit-learn's definitions).

        Raises
        ------
        DataError
            No row was scored.
        """
        if self.n == 0:
            raise DataError("no rows to score; expected at least one", reason="empty")
        mse = self.squared / self.n
        spread = self.target.m2
        if self.n < 2:
            r2 = math.nan
        elif spread == 0.0:
            r2 = 1.0 if self.squared == 0.0 else 0.0
        else:
            r2 = 1.0 - self.squared / spread
        return {"r2": r2, "rmse": math.sqrt(mse), "mse": mse, "mae": self.absolute / self.n}


def error_sums(y: Any, predicted: Any) -> ErrorSums:
    """The error sums of one set of rows."""
    if not len(y):
        return ErrorSums()
    residual = y - predicted
    return ErrorSums(
        len(y), float(residual @ residual), float(np.abs(residual).sum()), Moments.of(y)
    )


Sides = tuple[ErrorSums, ErrorSums]


def _split_task(part: Partition, *, design: Design, coef: Any, intercept: float) -> Sides:
    X, y = replace(design, side="all").read(part)
    test = held_out(design.plan, part.file_index, part.first_row, len(y))
    predicted = X @ coef + intercept
    return error_sums(y[~test], predicted[~test]), error_sums(y[test], predicted[test])


def _merge(a: Sides, b: Sides) -> Sides:
    return a[0].merge(b[0]), a[1].merge(b[1])


def score_split(
    engine: Engine, partitions: Sequence[Partition], design: Design, coef: Any, intercept: float
) -> Sides:
    """One pass: the error sums of ``X @ coef + intercept`` on the training and the test rows.

    ``design.spec`` should ignore unknown categories (those first seen in the test rows).
    """
    task = functools.partial(_split_task, design=design, coef=coef, intercept=intercept)
    return engine.map_reduce(task, list(partitions), _merge)
