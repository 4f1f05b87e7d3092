"""Train/test split: identical to scikit-learn's train_test_split, deterministic, described."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.model_selection import train_test_split

from regressops.data.split import n_test_rows, parse_test_size, train_test_indices
from regressops.errors import ConfigError


@st.composite
def split_cases(draw: st.DrawFn) -> tuple[int, float | int, int]:
    n = draw(st.integers(2, 600))
    if draw(st.booleans()):
        size: float | int = draw(st.integers(1, n - 1))
    else:
        size = draw(st.floats(0.001, 0.999))
        if np.ceil(size * n) >= n:
            size = 0.5
    seed = draw(st.integers(0, 2**32 - 1))
    return n, size, seed


@settings(max_examples=150, deadline=None)
@given(split_cases())
def test_shuffled_split_equals_sklearn(case: tuple[int, float | int, int]) -> None:
    n, size, seed = case
    ours = train_test_indices(n, test_size=size, random_state=seed)
    train, test = train_test_split(np.arange(n), test_size=size, random_state=seed)
    np.testing.assert_array_equal(ours.train, train)
    np.testing.assert_array_equal(ours.test, test)


@settings(max_examples=60, deadline=None)
@given(split_cases())
def test_unshuffled_split_equals_sklearn_and_takes_the_last_rows(
    case: tuple[int, float | int, int],
) -> None:
    n, size, _ = case
    ours = train_test_indices(n, test_size=size, shuffle=False)
    train, test = train_test_split(np.arange(n), test_size=size, shuffle=False)
    np.testing.assert_array_equal(ours.train, train)
    np.testing.assert_array_equal(ours.test, test)
    assert ours.test.tolist() == list(range(n - len(test), n))


@settings(max_examples=60, deadline=None)
@given(split_cases())
def test_split_is_a_partition(case: tuple[int, float | int, int]) -> None:
    n, size, seed = case
    split = train_test_indices(n, test_size=size, random_state=seed)
    assert len(split.train) + len(split.test) == n
    assert len(split.test) == n_test_rows(n, size)
    assert sorted([*split.train.tolist(), *split.test.tolist()]) == list(range(n))
    assert split.train.dtype == np.int64


def test_seed_benchmark_split_is_first_422_train_last_20_test() -> None:
    split = train_test_indices(442, test_size=20, shuffle=False)
    assert split.train.tolist() == list(range(422))
    assert split.test.tolist() == list(range(422, 442))
    assert split.description == {
        "method": "tail",
        "test_size": 20,
        "n_rows": 442,
        "n_train": 422,
        "n_test": 20,
        "shuffle": False,
        "random_state": None,
    }


def test_fraction_rounds_the_test_set_up_like_sklearn() -> None:
    assert n_test_rows(20640, 0.2) == 4128
    assert n_test_rows(10, 0.25) == 3
    assert n_test_rows(442, 0.2) == 89


def test_same_seed_same_split_other_seed_other_split() -> None:
    a = train_test_indices(1000, random_state=7)
    b = train_test_indices(1000, random_state=7)
    c = train_test_indices(1000, random_state=8)
    np.testing.assert_array_equal(a.test, b.test)
    assert a.test.tolist() != c.test.tolist()


def test_without_seed_the_drawn_seed_is_recorded_and_rebuilds_the_split() -> None:
    split = train_test_indices(300, test_size=0.3)
    seed = split.description["random_state"]
    assert isinstance(seed, int)
    assert 0 <= seed < 2**32
    again = train_test_indices(300, test_size=0.3, random_state=seed)
    np.testing.assert_array_equal(split.test, again.test)
    np.testing.assert_array_equal(split.train, again.train)


def test_description_is_json_and_rebuilds_the_split() -> None:
    split = train_test_indices(123, test_size=0.25, random_state=42)
    d = json.loads(json.dumps(split.description))
    rebuilt = train_test_indices(
        d["n_rows"], test_size=d["test_size"], shuffle=d["shuffle"], random_state=d["random_state"]
    )
    np.testing.assert_array_equal(rebuilt.test, split.test)
    assert d["method"] == "shuffle"
    assert (d["n_train"], d["n_test"]) == (92, 31)


@pytest.mark.parametrize(
    ("n", "size"),
    [(10, 0), (10, 0.0), (10, 1.0), (10, 1.5), (10, -0.1), (10, 10), (10, 11), (10, -1),
     (10, True), (10, "0.2"), (10, None), (1, 0.5), (0, 1)],
)  # fmt: skip
def test_invalid_sizes_are_refused(n: int, size: object) -> None:
    with pytest.raises(ConfigError) as info:
        train_test_indices(n, test_size=size)  # type: ignore[arg-type]
    assert "\n" not in info.value.message


def test_a_fraction_that_leaves_no_training_row_is_refused() -> None:
    with pytest.raises(ConfigError, match="no training row"):
        train_test_indices(3, test_size=0.99)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "42", True])
def test_invalid_seeds_are_refused(seed: object) -> None:
    with pytest.raises(ConfigError, match="random state"):
        train_test_indices(10, random_state=seed)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("0.2", 0.2), ("20", 20), (" 5 ", 5), ("1e-1", 0.1), (".5", 0.5)],
)
def test_parse_test_size(text: str, expected: float | int) -> None:
    value = parse_test_size(text)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize("text", ["abc", "", "20%", "1/5"])
def test_parse_test_size_refuses_garbage(text: str) -> None:
    with pytest.raises(ConfigError, match="test size"):
        parse_test_size(text)
