"""The request objects of the training path: checked once when built, passed down unchanged;
the data loaded once per command and split by one function."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from regressops.config import Settings
from regressops.data.selection import DataSelection
from regressops.data.split import SplitPlan, split_from_description, split_rows
from regressops.errors import ConfigError
from regressops.training.candidates import RecordPlan, train_candidates
from regressops.training.estimator import EstimatorParams


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        (lambda: DataSelection(), "no_data"),
        (lambda: DataSelection(dataset="d", data="f.csv"), "ambiguous_data"),
        (lambda: DataSelection(data="f.csv", target="y", data_version=1), "ambiguous_data"),
        (lambda: DataSelection(dataset="d", data_version=-1), "invalid_version"),
        (lambda: DataSelection(dataset="d", features=["a", "a"]), "duplicate_feature"),
        (lambda: DataSelection(data="f.csv", target="y", features=["y"]), "target_is_feature"),
        (lambda: SplitPlan(test_size=0), "invalid_test_size"),
        (lambda: SplitPlan(test_size=1.5), "invalid_test_size"),
        (lambda: SplitPlan(seed=-1), "invalid_random_state"),
        (lambda: SplitPlan(test_size=20, key="id"), "invalid_test_size"),
        (lambda: SplitPlan(shuffle=False, key="id"), "invalid_split"),
        (lambda: EstimatorParams("svm"), "unknown_model_kind"),
        (lambda: EstimatorParams("linear", {"solver": "newton"}), "unknown_solver"),
        (lambda: EstimatorParams.build("linear", max_iter=0), "invalid_parameter"),
        (lambda: RecordPlan(cv=-1), "invalid_cv"),
    ],
)
def test_a_bad_request_is_refused_when_built(build: Any, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert info.value.reason == reason and "\n" not in info.value.message


def test_request_objects_are_frozen() -> None:
    selection = DataSelection(dataset="diabetes", features=" bmi,bp")  # type: ignore[arg-type]
    assert selection.features == ("bmi", "bp")
    with pytest.raises(AttributeError):
        selection.dataset = "insurance"  # type: ignore[misc]
    with pytest.raises(TypeError):
        EstimatorParams.build("ridge", alpha=2.0).params["alpha"] = 1.0  # type: ignore[index]


@given(
    n=st.integers(10, 400),
    size=st.one_of(st.floats(0.05, 0.6), st.integers(1, 9)),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_a_recorded_split_rebuilds_to_the_same_rows(
    n: int, size: float | int, shuffle: bool, seed: int
) -> None:
    split = split_rows(SplitPlan(test_size=size, shuffle=shuffle, seed=seed), n)
    again = split_from_description(split.description)
    np.testing.assert_array_equal(split.train, again.train)
    np.testing.assert_array_equal(split.test, again.test)
    assert sorted([*split.train, *split.test]) == list(range(n))


def test_candidates_load_the_data_once_and_share_one_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import regressops.training.sources as sources

    calls: list[DataSelection] = []
    real = sources.load_training_data

    def counting(selection: DataSelection, **kw: Any) -> Any:
        calls.append(selection)
        return real(selection, **kw)

    monkeypatch.setattr(sources, "load_training_data", counting)
    kinds = ["linear", "ridge", "tree", "forest", "hgb"]
    recorded = train_candidates(
        DataSelection("diabetes"),
        SplitPlan(seed=3),
        [EstimatorParams(k) for k in kinds],
        record=RecordPlan(cv=0, track=False),
        plots=False,
        settings=Settings(home=tmp_path),
        output=tmp_path / "m",
    )
    assert len(calls) == 1  # five candidates, one load (was six)
    splits = {str(c.result.bundle.lineage["split"]) for c in recorded.candidates}
    assert len(splits) == 1 and {c.kind for c in recorded.candidates} == set(kinds)
    assert {c.gates.n_rows for c in recorded.candidates} == {89}
