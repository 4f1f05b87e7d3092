"""Deterministic train/test splits, described in JSON for lineage.

:func:`train_test_indices` reproduces :func:`sklearn.model_selection.train_test_split` exactly
(the same rows land in the same sets in the same order) without importing scikit-learn:
with ``shuffle=True`` it permutes the row numbers with ``numpy.random.RandomState(seed)`` and
takes the first ``n_test`` as the test set, like :class:`~sklearn.model_selection.ShuffleSplit`;
with ``shuffle=False`` the last ``n_test`` rows are the test set. The returned
:class:`Split` carries a small JSON-able description, so a bundle's ``lineage.json`` says how to
rebuild the same split.

Examples
--------
>>> split = train_test_indices(10, test_size=0.2, random_state=42)
>>> split.test.tolist(), split.train.tolist()
([8, 1], [5, 0, 7, 2, 9, 4, 3, 6])
>>> train_test_indices(10, test_size=3, shuffle=False).test.tolist()
[7, 8, 9]
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from regressops.errors import ConfigError

SplitSize = float | int


@dataclass(frozen=True)
class Split:
    """Row indices of a train/test split and how they were drawn.

    Attributes
    ----------
    train, test : ndarray of int64
        Positional row indices (``frame.iloc[...]``) of the two sets, in split order.
    description : dict
        JSON-able record of the split: ``method`` (``"shuffle"`` or ``"tail"``), ``test_size``
        as given, ``n_rows``, ``n_train``, ``n_test``, ``shuffle`` and ``random_state`` (the
        seed actually used; ``None`` without shuffling).
    """

    train: np.ndarray
    test: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)


def parse_test_size(text: str) -> SplitSize:
    """Read a test size written on a command line: ``"0.2"`` is a fraction, ``"20"`` a count.

    Raises
    ------
    ConfigError
        The text is neither an integer nor a decimal number.
    """
    value = text.strip()
    try:
        if value.isdigit():
            return int(value)
        return float(value)
    except ValueError:
        raise ConfigError(
            f"test size must be a fraction in (0, 1) like 0.2 or a row count like 20, got {text!r}",
            reason="invalid_test_size",
        ) from None


def check_test_size(test_size: SplitSize) -> str:
    """Check a test size without the data: ``"count"`` (an int of at least 1) or ``"fraction"``
    (a float in (0, 1)).

    Raises
    ------
    ConfigError
        Any other value.
    """
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise ConfigError(
            f"test size must be a float in (0, 1) or an int, got {test_size!r}",
            reason="invalid_test_size",
        )
    if isinstance(test_size, numbers.Integral):
        if int(test_size) < 1:
            raise ConfigError(
                f"test size {test_size} rows is out of range; expected at least 1 row",
                reason="invalid_test_size",
            )
        return "count"
    if not 0.0 < float(test_size) < 1.0:
        raise ConfigError(
            f"test size {test_size} is out of range; expected a fraction in (0, 1) or a row count",
            reason="invalid_test_size",
        )
    return "fraction"


def n_test_rows(n_rows: int, test_size: SplitSize) -> int:
    """Return the number of test rows for ``test_size``, as scikit-learn computes it.

    A float is a fraction in (0, 1) rounded up (``ceil(test_size * n_rows)``); an int is a row
    count in ``[1, n_rows - 1]``.

    Raises
    ------
    ConfigError
        ``test_size`` is out of range, of the wrong type, or leaves no training row.
    """
    if check_test_size(test_size) == "count":
        if not 0 < int(test_size) < n_rows:
            raise ConfigError(
                f"test size {test_size} rows is out of range: the data has {n_rows} rows, so it "
                f"must be between 1 and {n_rows - 1}",
                reason="invalid_test_size",
            )
        return int(test_size)
    fraction = float(test_size)
    n_test = math.ceil(fraction * n_rows)
    if n_test >= n_rows:
        raise ConfigError(
            f"test size {test_size} of {n_rows} rows leaves no training row",
            reason="invalid_test_size",
        )
    return n_test


def train_test_indices(
    n_rows: int,
    *,
    test_size: SplitSize = 0.2,
    shuffle: bool = True,
    random_state: int | None = None,
) -> Split:
    """Split ``n_rows`` rows into train and test sets, as scikit-learn's ``train_test_split``.

    Parameters
    ----------
    n_rows : int
        Number of rows to split (at least 2).
    test_size : float or int, default=0.2
        Fraction of the rows in (0, 1) (rounded up) or number of rows in the test set.
    shuffle : bool, default=True
        Permute the rows before splitting. When False the test set is the last ``n_test``
        rows and the training set the rows before them, in order.
    random_state : int or None, default=None
        Seed of the permutation, in ``[0, 2**32)``. ``None`` draws a fresh seed, which is
        recorded in the description so the split can still be rebuilt.

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        Too few rows, an invalid ``test_size`` or an invalid ``random_state``.
    """
    if n_rows < 2:
        raise ConfigError(
            f"cannot split {n_rows} row(s) into train and test sets; need at least 2",
            reason="too_few_rows",
        )
    n_test = n_test_rows(n_rows, test_size)
    n_train = n_rows - n_test
    seed: int | None = None
    if shuffle:
        seed = _seed(random_state)
        permutation = np.random.RandomState(seed).permutation(n_rows)
        test = permutation[:n_test]
        train = permutation[n_test : n_test + n_train]
    else:
        train = np.arange(n_train)
        test = np.arange(n_train, n_rows)
    description = {
        "method": "shuffle" if shuffle else "tail",
        "test_size": test_size,
        "n_rows": n_rows,
        "n_train": n_train,
        "n_test": n_test,
        "shuffle": shuffle,
        "random_state": seed,
    }
    return Split(
        train=train.astype(np.int64, copy=False),
        test=test.astype(np.int64, copy=False),
        description=description,
    )


def _seed(random_state: int | None) -> int:
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0])
    if isinstance(random_state, bool) or not isinstance(random_state, numbers.Integral):
        raise ConfigError(
            f"random state must be an integer seed, got {random_state!r}",
            reason="invalid_random_state",
        )
    if not 0 <= int(random_state) < 2**32:
        raise ConfigError(
            f"random state must be between 0 and 2**32 - 1, got {random_state}",
            reason="invalid_random_state",
        )
    return int(random_state)


KEY_HASH = "blake2b-64"


def key_hash_indices(
    keys: Iterable[Any], *, test_size: float = 0.2, key: str | None = None
) -> Split:
    """Split rows by a hash of their key: a row stays on its side however the data grows.

    A row is in the test set when the 64-bit BLAKE2b hash of its key's text, read as a fraction
    of ``2**64``, is below ``test_size``. The assignment depends on the key alone, not on the
    other rows, their order or a seed, so rows added later never move existing rows between
    the sets; the test share is ``test_size`` on average rather than exactly.

    Parameters
    ----------
    keys : iterable
        One key per row (integers are hashed as their decimal text, other values as ``str``).
    test_size : float, default=0.2
        Expected share of test rows, in (0, 1).
    key : str, optional
        Name of the key column, recorded in the description.

    Returns
    -------
    Split
        Train and test indices in row order; the description has ``method="key_hash"``.

    Raises
    ------
    ConfigError
        ``test_size`` is not a fraction, a key is missing, or a set would be empty.

    Examples
    --------
    >>> key_hash_indices(range(1, 11), test_size=0.3, key="id").test.tolist()
    [1, 5]
    >>> key_hash_indices(range(1, 21), test_size=0.3, key="id").test.tolist()  # 10 more rows
    [1, 5, 16, 17]
    """
    if isinstance(test_size, bool) or not isinstance(test_size, float) or not 0 < test_size < 1:
        raise ConfigError(
            f"a key-hash split needs a test fraction in (0, 1), got {test_size!r}",
            reason="invalid_test_size",
        )
    hashes = [_key_hash(k) for k in keys]
    n_rows = len(hashes)
    if any(h is None for h in hashes):
        raise ConfigError(
            f"the split key {key or ''} has missing values; every row needs a key",
            reason="missing_key",
        )
    threshold = int(test_size * 2**64)
    in_test = np.array([h is not None and h < threshold for h in hashes], dtype=np.bool_)
    test = np.flatnonzero(in_test).astype(np.int64)
    train = np.flatnonzero(~in_test).astype(np.int64)
    if not len(test) or not len(train):
        raise ConfigError(
            f"the key-hash split of {n_rows} rows at test size {test_size} left an empty "
            f"{'test' if not len(test) else 'training'} set; need more rows",
            reason="invalid_test_size",
        )
    description = {
        "method": "key_hash",
        "key": key,
        "hash": KEY_HASH,
        "test_size": test_size,
        "n_rows": n_rows,
        "n_train": len(train),
        "n_test": len(test),
        "shuffle": False,
        "random_state": None,
    }
    return Split(train=train, test=test, description=description)


@dataclass(frozen=True)
class SplitPlan:
    """How rows are split into train and test sets, checked when built.

    ``train``, ``tune``, ``evaluate --test-rows`` and the candidates of one ``train`` all split
    through :func:`split_rows` with the same plan, so tuning never sees a row of the test set
    that training holds out.

    Parameters
    ----------
    test_size : float or int, default=0.2
        Test fraction in (0, 1) or a row count (not with ``key``).
    shuffle : bool, default=True
        Permute the rows before splitting; False takes the last rows as the test set.
    seed : int, default=42
        Seed of the permutation (and of the estimator), in ``[0, 2**32)``.
    key : str, optional
        Split by a hash of this column (an identifier such as ``id``) instead: a row keeps its
        side however the data grows. The key is never a feature unless the features name it.

    Raises
    ------
    ConfigError
        A test size, seed or key out of range, or a key with a row count or ``shuffle=False``.

    Examples
    --------
    >>> split_rows(SplitPlan(test_size=3, shuffle=False), 10).test.tolist()
    [7, 8, 9]
    >>> SplitPlan(test_size=20, key="id")
    Traceback (most recent call last):
    ...
    regressops.errors.ConfigError: a key-hash split needs a test fraction in (0, 1), got 20
    """

    test_size: SplitSize = 0.2
    shuffle: bool = True
    seed: int = 42
    key: str | None = None

    def __post_init__(self) -> None:
        size = self.test_size
        if isinstance(size, float) and size >= 1 and size.is_integer():
            size = int(size)  # a count written in a settings file (``test_size = 20``)
            object.__setattr__(self, "test_size", size)
        kind = check_test_size(size)
        _seed(self.seed)
        if self.key is not None:
            if not str(self.key).strip():
                raise ConfigError("--split-key names no column", reason="missing_key")
            if kind != "fraction":
                raise ConfigError(
                    f"a key-hash split needs a test fraction in (0, 1), got {size!r}",
                    reason="invalid_test_size",
                )
            if not self.shuffle:
                raise ConfigError(
                    "--split-key and --no-shuffle are two ways to split; give one",
                    reason="invalid_split",
                )

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> SplitPlan:
        """The plan that drew a recorded split (a bundle's ``lineage["split"]``)."""
        seed = description.get("random_state")
        return cls(
            test_size=description["test_size"],
            shuffle=bool(description.get("shuffle", True)) or "key" in description,
            seed=42 if seed is None else int(seed),
            key=description.get("key") if description.get("method") == "key_hash" else None,
        )


def split_rows(plan: SplitPlan, n_rows: int, *, keys: Any = None) -> Split:
    """Split ``n_rows`` rows as ``plan`` says: the one place a train/test split is decided.

    Parameters
    ----------
    plan : SplitPlan
        Test size, shuffling, seed and split key.
    n_rows : int
        Rows of the table, in the order they were loaded.
    keys : array-like, optional
        The split key's values, row for row (needed when ``plan.key`` is set).

    Returns
    -------
    Split

    Raises
    ------
    ConfigError
        Too few rows for the test size; a key-hash plan without ``keys`` or with missing keys.
    """
    if plan.key is not None:
        if keys is None:
            raise ConfigError(
                f"the split is drawn by a hash of column {plan.key!r}; its values are needed",
                reason="missing_key",
            )
        if len(keys) != n_rows:
            raise ConfigError(f"{len(keys)} split keys for {n_rows} rows", reason="missing_key")
        return key_hash_indices(keys, test_size=float(plan.test_size), key=plan.key)
    return train_test_indices(
        n_rows, test_size=plan.test_size, shuffle=plan.shuffle, random_state=plan.seed
    )


def split_from_description(description: dict[str, Any], *, keys: Any = None) -> Split:
    """Rebuild a split from its JSON description (a bundle's ``lineage["split"]``).

    Parameters
    ----------
    description : dict
        As recorded by :func:`train_test_indices` or :func:`key_hash_indices`.
    keys : array-like, optional
        The key column's values, row for row; needed for ``method="key_hash"``.

    Raises
    ------
    ConfigError
        A key-hash split without ``keys``.
    """
    if description.get("method") == "key_hash" and keys is None:
        raise ConfigError(
            f"the split was drawn by a hash of column {description.get('key')!r}; its "
            "values are needed to rebuild it",
            reason="missing_key",
        )
    plan = SplitPlan.from_description(description)
    n_rows = len(keys) if keys is not None else int(description["n_rows"])
    return split_rows(plan, n_rows, keys=keys)


def _key_hash(value: Any) -> int | None:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    integral = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    whole = isinstance(value, float) and value.is_integer()
    text = str(int(value)) if integral or whole else str(value)
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big")
