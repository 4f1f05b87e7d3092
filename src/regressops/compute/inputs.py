"""What a partitioned run reads: files (Parquet, CSV) or a lake dataset's clean Delta version.

:func:`resolve_input` turns an :class:`InputSelection` (built once at the edge, the CLI) into
the partitions to read, the target/feature/categorical columns (a lake dataset's data contract
gives them; for files the caller names the target) and the input's lineage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from regressops.compute.engines import ComputeRequest
from regressops.compute.partitions import Partition, list_delta, list_files
from regressops.config import Settings
from regressops.errors import ConfigError, DataError


@dataclass(frozen=True)
class InputSelection:
    """Which data a partitioned run reads.

    Attributes
    ----------
    path : str or None
        A Parquet or CSV file or folder.
    dataset : str or None
        A lake dataset: its clean table is read.
    version : int or None
        The clean Delta version (default: the newest).
    target : str or None
        Target column (default: the dataset's contract).
    features : tuple of str or None
        Feature columns (default: the contract's, or every column but the target).
    categorical : tuple of str or None
        Categorical columns (default: the contract's, or every text/boolean column).
    """

    path: str | None = None
    dataset: str | None = None
    version: int | None = None
    target: str | None = None
    features: tuple[str, ...] | None = None
    categorical: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.dataset is None):
            raise ConfigError(
                "name exactly one input: --data PATH or --dataset NAME", reason="no_input"
            )
        if self.version is not None and self.dataset is None:
            raise ConfigError("--data-version needs --dataset", reason="no_input")


@dataclass(frozen=True)
class ResolvedInput:
    """An input listed into partitions, with its columns and lineage."""

    partitions: tuple[Partition, ...]
    target: str | None
    features: tuple[str, ...] | None
    categorical: tuple[str, ...] | None
    lineage: dict[str, Any] = field(default_factory=dict)
    name: str = "data"

    def feature_columns(self, available: Sequence[str]) -> list[str]:
        """The features: as selected, or every available column but the target."""
        if self.features is not None:
            return list(self.features)
        return [c for c in available if c != self.target and not c.startswith("_")]


def resolve_input(
    selection: InputSelection, *, settings: Settings, compute: ComputeRequest
) -> ResolvedInput:
    """List the selected input into partitions.

    Raises
    ------
    DataError
        The files or the dataset's clean version do not exist.
    """
    if selection.path is not None:
        listed = list_files(
            selection.path, partition_rows=compute.partition_rows, storage_options=compute.options
        )
        from pathlib import Path

        return ResolvedInput(
            listed.partitions,
            selection.target,
            selection.features,
            selection.categorical,
            listed.lineage,
            Path(selection.path).stem or "data",
        )
    assert selection.dataset is not None
    from regressops.data.catalog import clean_lineage
    from regressops.data.declarations import check_dataset_name, get_contract
    from regressops.data.lake import Lake

    name = check_dataset_name(selection.dataset)
    lake = Lake.from_settings(settings)
    if not lake.exists(name, "clean"):
        raise DataError(
            f"dataset {name!r} has no clean version in the lake; run 'regressops extract "
            f"--dataset {name}' then 'regressops validate --dataset {name}'",
            reason="not_validated",
        )
    contract = get_contract(name, settings)
    version = lake.open(name, "clean", selection.version).version()
    files = lake.files(name, "clean", version)
    partitions = list_delta(
        files, partition_rows=compute.partition_rows, storage_options=compute.options
    )
    lineage = {"source": "lake", "dataset": name, **clean_lineage(lake, name, version)}
    return ResolvedInput(
        partitions,
        selection.target or contract.target,
        selection.features or tuple(contract.features),
        selection.categorical or tuple(contract.categorical),
        lineage,
        name,
    )
