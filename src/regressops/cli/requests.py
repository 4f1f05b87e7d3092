"""Build the request objects of the training commands from their options, once.

``train``, ``tune`` and ``evaluate`` read the same options the same way: a
:class:`~regressops.data.selection.DataSelection` (what data), a
:class:`~regressops.data.split.SplitPlan` (how it is split) and, for ``train``, one
:class:`~regressops.training.estimator.EstimatorParams` per ``--model`` kind. Each is checked
when built, so a wrong option is one line and exit code 2 before any data is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regressops.config import Settings
    from regressops.data.selection import DataSelection
    from regressops.data.split import SplitPlan
    from regressops.training.estimator import EstimatorParams


def data_selection(
    dataset: str | None,
    data: Path | str | None,
    target: str | None,
    features: str | None = None,
    data_version: int | None = None,
) -> DataSelection:
    """The :class:`DataSelection` of ``--dataset/--data/--target/--features/--data-version``."""
    from regressops.data.selection import DataSelection, parse_features

    return DataSelection(
        dataset=dataset,
        data=data,
        target=target,
        features=parse_features(features),
        data_version=data_version,
    )


def split_plan(
    settings: Settings,
    test_size: str | None,
    shuffle: bool,
    random_state: int | None,
    split_key: str | None,
) -> SplitPlan:
    """The :class:`SplitPlan` of ``--test-size/--no-shuffle/--random-state/--split-key``."""
    from regressops.data.split import SplitPlan, parse_test_size

    size = parse_test_size(test_size) if test_size is not None else settings.train.test_size
    seed = settings.train.random_state if random_state is None else random_state
    return SplitPlan(test_size=size, shuffle=shuffle, seed=seed, key=split_key)


def estimator_params(
    kinds: list[str],
    *,
    tuned: bool,
    dataset: str | None,
    settings: Settings,
    **named: Any,
) -> list[EstimatorParams]:
    """One :class:`EstimatorParams` per kind (each once), with tuned parameters if asked."""
    from regressops.errors import ConfigError
    from regressops.training.estimator import EstimatorParams

    unique = list(dict.fromkeys(kinds))
    if tuned and dataset is None:
        raise ConfigError(
            "--tuned needs --dataset (tuned parameters are kept per dataset)",
            reason="missing_dataset",
        )
    out = []
    for kind in unique:
        extra = None
        if tuned:
            from regressops.training.tune import load_tuned_params

            assert dataset is not None
            extra = load_tuned_params(dataset, kind, settings)
        out.append(EstimatorParams.build(kind, params=extra, **named))
    return out
