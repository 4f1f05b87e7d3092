"""The drift pieces of a partitioned input equal those of all its rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.partitions import synthetic, write_parts
from regressops.compute.engines import ComputeRequest
from regressops.compute.profile import profile_files
from regressops.errors import DataError


def test_profile_files_gives_exact_bins_counts_and_bounded_quantiles(tmp_path: Path) -> None:
    frame = synthetic(9_000, 2)
    frame.loc[frame.index[::50], "x0"] = np.nan
    folder = write_parts(frame, tmp_path / "in", files=3, row_group=1000)
    edges = {"x0": np.quantile(frame["x0"].dropna(), [0.1, 0.5, 0.9])}
    profile = profile_files(
        str(folder),
        columns=["x0", "kind"],
        compute=ComputeRequest(partition_rows=2000),
        edges=edges,
    )
    x0 = frame["x0"].to_numpy()
    finite = x0[np.isfinite(x0)]
    col = profile.columns["x0"]
    expected = np.bincount(np.searchsorted(edges["x0"], finite, side="right"), minlength=4)
    assert col.bins is not None and col.bins.tolist() == expected.tolist()
    assert (col.moments.count, col.moments.missing) == (finite.size, x0.size - finite.size)
    assert col.moments.std == pytest.approx(finite.std(), rel=1e-12)
    assert col.summary is not None
    points = np.linspace(finite.min(), finite.max(), 25)
    truth = np.searchsorted(np.sort(finite), points, side="right") / finite.size
    assert np.abs(col.summary.cdf(points) - truth).max() <= col.summary.rank_error / finite.size
    counts = profile.columns["kind"].counts
    assert counts is not None and dict(counts.counts) == frame["kind"].value_counts().to_dict()
    assert profile.n_rows == len(frame)


def test_a_folder_without_data_files_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(DataError, match="holds no Parquet"):
        profile_files(str(tmp_path), columns=["x"], compute=ComputeRequest())


def test_the_row_sample_is_the_same_whatever_the_partitioning(tmp_path: Path) -> None:
    """Bottom-k keys are per row, so the merged sample does not depend on the partition size."""
    from regressops.compute.engines import InProcessEngine
    from regressops.compute.partitions import list_files
    from regressops.compute.profile import profile_input

    frame = synthetic(6_000, 2)
    folder = write_parts(frame, tmp_path / "in", files=2, row_group=500)
    samples = []
    for rows in (500, 3_000):
        parts = list_files(folder, partition_rows=rows).partitions
        profile = profile_input(InProcessEngine(), parts, columns=["x0", "kind"], sample_size=700)
        assert profile.sample is not None
        samples.append(profile.sample.frame())
    assert len(samples[0]) == 700
    pd.testing.assert_frame_equal(samples[0], samples[1])
    assert set(samples[0]["x0"]) <= set(frame["x0"])  # rows of the input, not made up
