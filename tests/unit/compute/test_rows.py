"""The row-hash split: the same rows are test rows whatever the partitioning."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from regressops.compute.rows import SplitPlan, held_out
from regressops.errors import ConfigError


@given(st.lists(st.integers(1, 300), min_size=1, max_size=8), st.integers(0, 2**32))
def test_mask_does_not_depend_on_partition_boundaries(sizes: list[int], seed: int) -> None:
    plan = SplitPlan(0.3, seed)
    whole = held_out(plan, 2, 0, sum(sizes))
    pieces, start = [], 0
    for size in sizes:
        pieces.append(held_out(plan, 2, start, size))
        start += size
    assert (np.concatenate(pieces) == whole).all()


def test_share_seed_and_file_matter() -> None:
    a = held_out(SplitPlan(0.2, 1), 0, 0, 200_000)
    assert a.mean() == pytest.approx(0.2, abs=0.005)
    assert (a != held_out(SplitPlan(0.2, 2), 0, 0, 200_000)).any()
    assert (a != held_out(SplitPlan(0.2, 1), 1, 0, 200_000)).any()
    assert not held_out(SplitPlan(0.0, 1), 0, 0, 100).any()


def test_invalid_share_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"\[0, 1\)"):
        SplitPlan(1.0, 0)
