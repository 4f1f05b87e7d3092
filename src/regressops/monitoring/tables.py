"""Tables (CSV, Parquet, a dataset version) as a drift reference or a current window."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from regressops.errors import DataError
from regressops.monitoring.fitted import CurrentColumn
from regressops.monitoring.reference import categorical_profile

if TYPE_CHECKING:
    import pandas as pd


def infer_kinds(frame: pd.DataFrame, *, exclude: Sequence[str] = ()) -> dict[str, str]:
    """``numeric`` for number columns (booleans excluded), ``categorical`` for the others."""
    import pandas as pd

    kinds = {}
    for name in frame.columns:
        if name in exclude:
            continue
        dtype = frame[name].dtype
        numeric = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_bool_dtype(dtype)
        kinds[str(name)] = "numeric" if numeric else "categorical"
    return kinds


def check_columns(frame: pd.DataFrame, names: Sequence[str], *, what: str) -> None:
    """Refuse a table that lacks some of ``names``.

    Raises
    ------
    DataError
        Naming the missing columns.
    """
    missing = [n for n in names if n not in frame.columns]
    if missing:
        raise DataError(
            f"{what} lacks feature column(s) {', '.join(missing)}", reason="missing_feature"
        )


def check_kinds(reference: Mapping[str, str], current: Mapping[str, str]) -> None:
    """Refuse columns whose kind differs between two tables.

    Raises
    ------
    DataError
        Naming the first such column and both kinds.
    """
    for name, kind in reference.items():
        other = current.get(name)
        if other is not None and other != kind:
            raise DataError(
                f"column {name!r} is {kind} in the reference but {other} in the current data",
                reason="type_mismatch",
            )


class TableWindow:
    """A current window held in a DataFrame.

    Parameters
    ----------
    frame : DataFrame
        The current rows.
    kinds : mapping of str to {"numeric", "categorical"}
        The features and their kinds.
    predictions : ndarray, optional
        The model's predictions on these rows.
    """

    def __init__(
        self,
        frame: pd.DataFrame,
        kinds: Mapping[str, str],
        predictions: np.ndarray | None = None,
    ) -> None:
        self.frame = frame
        self.kinds = dict(kinds)
        self.rows = len(frame)
        self._predictions = predictions

    def column(self, name: str) -> CurrentColumn:
        """One feature as a current column (text in a numeric column is kept as counts)."""
        values = self.frame[name]
        if self.kinds[name] == "numeric":
            try:
                return CurrentColumn(values.to_numpy(dtype=np.float64, na_value=np.nan))
            except (TypeError, ValueError):
                pass
        profile = categorical_profile(values.tolist())
        return CurrentColumn(profile.counts, missing=profile.missing)

    def prediction(self) -> CurrentColumn | None:
        """The model's predictions, when a model scored the table."""
        return None if self._predictions is None else CurrentColumn(self._predictions)
