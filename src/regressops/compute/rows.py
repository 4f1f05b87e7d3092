"""Which rows of a partition are training rows: a seeded hash of each row's identity.

A partitioned input has no global row order a worker could shuffle, so the train/test split
is drawn row by row: a row is a test row when a 64-bit hash (SplitMix64) of the seed, its
file's position in the input and its row number in that file, read as a fraction of
``2**64``, is below ``test_size``. The split depends on neither the partition size nor the
engine, every pass sees the same split, and the test share is ``test_size`` on average.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from regressops.errors import ConfigError

if TYPE_CHECKING:
    from regressops.compute.partitions import Columns, Partition

Side = Literal["train", "test", "all"]
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_MASK = 2**64 - 1
_KEY_SALT = 0x5EED_C0DE_D1CE_F00D  # sample keys: another stream than the split's


@dataclass(frozen=True)
class SplitPlan:
    """How rows are split: the test share and the seed of the hash.

    Attributes
    ----------
    test_size : float
        Expected share of test rows, in [0, 1) (0: every row trains).
    seed : int
        Seed of the row hash.
    """

    test_size: float = 0.2
    seed: int = 42

    def __post_init__(self) -> None:
        if not 0 <= self.test_size < 1:
            raise ConfigError(
                f"a partitioned split needs a test fraction in [0, 1), got {self.test_size!r}",
                reason="invalid_test_size",
            )

    def describe(self) -> dict[str, object]:
        """JSON-able record for lineage."""
        return {"method": "row_hash", "hash": "splitmix64(seed, file, row)", **self.__dict__}


def _mix(x: Any) -> Any:
    with np.errstate(over="ignore"):
        x = x + _GOLDEN
        x = (x ^ (x >> np.uint64(30))) * _M1
        x = (x ^ (x >> np.uint64(27))) * _M2
        return x ^ (x >> np.uint64(31))


def held_out(plan: SplitPlan, file_index: int, first_row: int, n: int) -> NDArray[np.bool_]:
    """Whether each of ``n`` rows starting at ``first_row`` of file ``file_index`` is a test row.

    Examples
    --------
    >>> mask = held_out(SplitPlan(0.25, seed=7), 0, 0, 100_000)
    >>> round(float(mask.mean()), 2)
    0.25
    >>> bool((held_out(SplitPlan(0.25, seed=7), 0, 500, 10) == mask[500:510]).all())
    True
    """
    if plan.test_size == 0:
        return np.zeros(n, dtype=np.bool_)
    hashed = _row_hashes(plan.seed, file_index, first_row, n)
    return (hashed >> np.uint64(11)) < np.uint64(int(plan.test_size * 2**53))


def row_keys(seed: int, file_index: int, first_row: int, n: int) -> NDArray[np.float64]:
    """A random number in [0, 1) for each of ``n`` rows starting at ``first_row`` of file
    ``file_index``: a function of the row's identity, so the same whatever the partitioning
    (independent of :func:`held_out`'s hash at the same seed).

    Examples
    --------
    >>> keys = row_keys(3, 1, 0, 1_000)
    >>> bool((row_keys(3, 1, 400, 5) == keys[400:405]).all()), bool(0 <= keys.min())
    (True, True)
    """
    hashed = _row_hashes(seed ^ _KEY_SALT, file_index, first_row, n)
    return (hashed >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _row_hashes(seed: int, file_index: int, first_row: int, n: int) -> NDArray[np.uint64]:
    with np.errstate(over="ignore"):
        key = _mix(np.uint64(seed & _MASK) ^ (np.uint64(file_index) * _M2))
        rows = np.arange(first_row, first_row + n, dtype=np.uint64)
        return np.asarray(_mix(rows ^ key))


def select(columns: Columns, part: Partition, plan: SplitPlan, side: Side) -> Columns:
    """The rows of one partition's columns on ``side`` of the split."""
    if side == "all" or (side == "train" and plan.test_size == 0):
        return columns  # every row trains: no copy
    mask = held_out(plan, part.file_index, part.first_row, len(columns))
    return columns.take(mask if side == "test" else ~mask)
