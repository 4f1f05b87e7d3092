"""What data a command works on, said once: :class:`DataSelection`.

``train``, ``tune`` and ``evaluate`` all name their data the same way (a dataset, built in or
declared in ``regressops.toml``, or a table file with a target column; the features; a clean
lake version). The command line builds one frozen :class:`DataSelection` from its options,
which checks the combination once, and every layer below reads the fields it needs
(:func:`regressops.training.sources.load_training_data` loads it).

Examples
--------
>>> DataSelection(dataset="diabetes", features=("bmi", "bp")).describe()
'dataset diabetes'
>>> DataSelection(data="houses.csv", target="price").describe()
'file houses.csv'
>>> DataSelection(dataset="diabetes", data="houses.csv")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
regressops.errors.ConfigError: give either a dataset (--dataset NAME) or a file ..., not both
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from regressops.errors import ConfigError


@dataclass(frozen=True)
class DataSelection:
    """The rows and columns a command works on, checked when built.

    Parameters
    ----------
    dataset : str, optional
        A dataset name: built in (``diabetes``, ``insurance``, ``california``) or declared as
        ``[datasets.NAME]`` in ``regressops.toml``. Read from its newest clean lake version when
        it has one (``regressops extract`` then ``validate``).
    data : path-like, optional
        A CSV, Parquet, JSON or JSON-lines file instead; needs ``target`` (checked when loaded:
        ``evaluate`` takes the model's).
    target : str, optional
        Target column; defaults to the dataset's.
    features : sequence of str, optional
        Feature columns in model order (names are stripped of spaces); default: the dataset's
        features, or every column of the file but the target and the split key.
    data_version : int, optional
        Clean Delta version of ``dataset`` to read (time travel); not for files.

    Raises
    ------
    ConfigError
        Neither or both of ``dataset`` and ``data``; a data version
        for a file or below 0; features that name nothing, a column twice, or the target.
    """

    dataset: str | None = None
    data: str | os.PathLike[str] | None = None
    target: str | None = None
    features: Sequence[str] | None = None
    data_version: int | None = None

    def __post_init__(self) -> None:
        if (self.dataset is None) == (self.data is None):
            raise ConfigError(
                "give either a dataset (--dataset NAME) or a file (--data PATH --target "
                "COLUMN), not " + ("both" if self.dataset is not None else "neither"),
                reason="no_data" if self.dataset is None else "ambiguous_data",
            )
        if self.data is not None:
            object.__setattr__(self, "data", Path(self.data))
            if self.data_version is not None:
                raise ConfigError(
                    "--data-version selects a version of a dataset in the lake; it does not "
                    "apply to --data files",
                    reason="ambiguous_data",
                )
        if self.data_version is not None and (
            isinstance(self.data_version, bool) or int(self.data_version) < 0
        ):
            raise ConfigError(
                f"--data-version must be a lake version (0 or more), got {self.data_version!r}",
                reason="invalid_version",
            )
        if self.features is not None:
            object.__setattr__(self, "features", _checked_features(self.features, self.target))

    @property
    def path(self) -> Path | None:
        """The file, when the selection is a file."""
        return Path(self.data) if self.data is not None else None

    def describe(self) -> str:
        """A few words naming the data (``dataset housing`` or ``file houses.csv``)."""
        if self.dataset is not None:
            version = f" v{self.data_version}" if self.data_version is not None else ""
            return f"dataset {self.dataset}{version}"
        return f"file {self.data}"


def parse_features(text: str | None) -> tuple[str, ...] | None:
    """Read ``--features bmi,bp`` (``None`` when the option was not given)."""
    return None if text is None else tuple(text.split(","))


def _checked_features(features: Sequence[str], target: str | None) -> tuple[str, ...]:
    if isinstance(features, str):
        features = features.split(",")
    chosen = tuple(str(f).strip() for f in features if str(f).strip())
    if not chosen:
        raise ConfigError("--features names no column; expected e.g. bmi,bp", reason="no_features")
    if dupes := sorted({f for f in chosen if chosen.count(f) > 1}):
        raise ConfigError(f"feature(s) {dupes} named more than once", reason="duplicate_feature")
    if target is not None and target in chosen:
        raise ConfigError(
            f"the target {target!r} cannot also be a feature", reason="target_is_feature"
        )
    return chosen
