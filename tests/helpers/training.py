"""Train from keyword options, as ``regressops train`` does: build the request objects, then
call :func:`regressops.training.train.train` with them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from regressops.config import Settings, get_settings
from regressops.data.selection import DataSelection
from regressops.data.split import SplitPlan
from regressops.training.estimator import EstimatorParams
from regressops.training.train import TrainResult, train


def split_plan(
    settings: Settings | None = None,
    *,
    test_size: float | int | None = None,
    shuffle: bool = True,
    random_state: int | None = None,
    split_key: str | None = None,
) -> SplitPlan:
    """The :class:`SplitPlan` of the ``train`` options (the settings' defaults otherwise)."""
    settings = settings or get_settings()
    return SplitPlan(
        test_size=settings.train.test_size if test_size is None else test_size,
        shuffle=shuffle,
        seed=settings.train.random_state if random_state is None else random_state,
        key=split_key,
    )


def train_with(
    *,
    dataset: str | None = None,
    data: Any = None,
    target: str | None = None,
    features: Sequence[str] | None = None,
    data_version: int | None = None,
    model: str = "linear",
    params: dict[str, Any] | None = None,
    test_size: float | int | None = None,
    shuffle: bool = True,
    random_state: int | None = None,
    split_key: str | None = None,
    settings: Settings | None = None,
    **rest: Any,
) -> TrainResult:
    """``train`` with the command's options as keywords; ``solver``, ``learning_rate``,
    ``max_iter``, ``batch_size``, ``alpha`` go to the estimator, the rest (``output``,
    ``name``, ``plots``, ``progress``) to :func:`train` as they are."""
    named = {k: rest.pop(k) for k in ("solver", "learning_rate", "max_iter", "batch_size", "alpha")
             if k in rest}  # fmt: skip
    selection = DataSelection(
        dataset=dataset, data=data, target=target, features=features, data_version=data_version
    )
    plan = split_plan(
        settings, test_size=test_size, shuffle=shuffle, random_state=random_state,
        split_key=split_key,
    )  # fmt: skip
    estimator = EstimatorParams.build(model, params=params, **named)
    return train(selection, plan, estimator, settings=settings, **rest)
