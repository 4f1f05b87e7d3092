"""k-fold cross-validation of a catalog model on raw rows, refitting the feature spec per fold.

Each fold fits its own :class:`~regressops.features.FeatureSpec` on the fold's training rows (no
statistic of a validation fold leaks into its model), builds the estimator from the catalog and
scores R², RMSE, MSE and MAE on the held-out fold. Used for the cross-validated metrics of a
training run and as the objective of :mod:`regressops.training.tune`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.errors import ConfigError
from regressops.features import FeatureSpec
from regressops.models.catalog import make_estimator
from regressops.training.metrics import METRIC_NAMES, regression_metrics

if TYPE_CHECKING:
    import pandas as pd

#: ``on_fold(fold_index, running_mean_rmse)``; may raise to stop early (Optuna pruning).
FoldCallback = Callable[[int, float], None]


@dataclass
class CVResult:
    """Per-fold metrics and their mean and standard deviation."""

    folds: list[dict[str, float]] = field(default_factory=list)

    @property
    def mean(self) -> dict[str, float]:
        """Mean of each metric over the folds."""
        return {m: float(np.mean([f[m] for f in self.folds])) for m in METRIC_NAMES}

    @property
    def std(self) -> dict[str, float]:
        """Standard deviation of each metric over the folds."""
        return {m: float(np.std([f[m] for f in self.folds])) for m in METRIC_NAMES}

    def flat(self, prefix: str = "cv_") -> dict[str, float]:
        """``{"cv_r2_mean": ..., "cv_r2_std": ..., ...}`` for logging."""
        out = {f"{prefix}{m}_mean": v for m, v in self.mean.items()}
        out.update({f"{prefix}{m}_std": v for m, v in self.std.items()})
        return out


def cross_validate(
    frame: pd.DataFrame,
    *,
    target: str,
    features: Sequence[str],
    categorical: Sequence[str] = (),
    kind: str,
    params: Mapping[str, Any] | None = None,
    cv: int = 5,
    random_state: int = 0,
    on_fold: FoldCallback | None = None,
) -> CVResult:
    """Cross-validate ``kind`` with ``params`` on ``frame`` over ``cv`` shuffled folds.

    Parameters
    ----------
    frame : DataFrame
        Training rows: features and target.
    target : str
        Target column.
    features, categorical : sequence of str
        Feature columns and which of them are categorical.
    kind : str
        Catalog kind.
    params : mapping, optional
        Estimator parameters (catalog defaults otherwise).
    cv : int, default=5
        Number of folds, at least 2 and at most the number of rows.
    random_state : int, default=0
        Seed of the fold assignment and of the estimator.
    on_fold : callable, optional
        Called after each fold with the running mean RMSE.

    Returns
    -------
    CVResult

    Raises
    ------
    ConfigError
        ``cv`` out of range.
    """
    n = len(frame)
    if n < 2:
        raise ConfigError(
            f"cross-validation needs at least 2 training rows, but the split left {n}; lower "
            "--test-size or pass --cv 0",
            reason="invalid_cv",
        )
    if not 2 <= cv <= n:
        raise ConfigError(
            f"--cv must be between 2 and {n} (the training rows), got {cv}", reason="invalid_cv"
        )
    from sklearn.model_selection import KFold

    result = CVResult()
    y_all = frame[target].to_numpy(dtype=np.float64)
    splitter = KFold(n_splits=cv, shuffle=True, random_state=random_state)
    for i, (train_idx, valid_idx) in enumerate(splitter.split(np.arange(n))):
        train, valid = frame.iloc[train_idx], frame.iloc[valid_idx]
        spec = FeatureSpec.fit(
            train, features=list(features), target=target, categorical=list(categorical)
        )
        estimator = make_estimator(kind, params, random_state=random_state)
        estimator.fit(spec.transform(train), y_all[train_idx])
        pred = np.asarray(estimator.predict(spec.transform(valid)), dtype=np.float64)
        result.folds.append(regression_metrics(y_all[valid_idx], pred))
        if on_fold is not None:
            on_fold(i, float(np.mean([f["rmse"] for f in result.folds])))
    return result
