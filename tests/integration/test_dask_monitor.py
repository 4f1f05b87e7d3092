"""``monitor`` on the Dask engine (a real LocalCluster of worker processes) against the in-process
monitor: same verdicts, every score within its stated bound, failures as one line."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from helpers.data import make_settings
from helpers.partitions import write_parts
from regressops.compute.engines import ComputeRequest
from regressops.compute.inputs import InputSelection
from regressops.compute.linear import LinearFitPlan
from regressops.compute.rows import SplitPlan
from regressops.config import Settings
from regressops.errors import ComputeError, DataError, SchemaError
from regressops.monitoring.monitor import MonitorRequest, run_monitor
from regressops.monitoring.partitioned import run_monitor_partitioned
from regressops.monitoring.reference import load_reference
from regressops.training.partitioned import train_partitioned

distributed = pytest.importorskip("distributed")
SHIFTED = "x1"
SCALES = np.array([1.0, 4.0, 0.5, 10.0])
OFFSETS = np.array([0.0, -3.0, 2.0, 50.0])


def table(n: int, *, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Four continuous features, a discrete one (``grade``), a category, the target ``y``;
    ``shift`` moves x1 by that many of its standard deviations."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4)) * SCALES + OFFSETS
    X[:, 2] = np.exp(X[:, 2])  # a skewed one
    frame = pd.DataFrame(X, columns=["x0", "x1", "x2", "x3"])
    frame.loc[rng.random(n) < 0.01, "x3"] = np.nan  # gaps
    frame["grade"] = rng.choice([1.0, 2.0, 3.0], n, p=[0.5, 0.3, 0.2])
    frame["kind"] = rng.choice(["a", "b", "c"], n)
    y = X @ np.array([1.5, -0.5, 2.0, 0.1]) + frame["grade"] + rng.standard_normal(n)
    frame["y"] = y + frame["kind"].map({"a": 0.0, "b": 1.0, "c": -2.0}).to_numpy()
    frame[SHIFTED] += shift * SCALES[1]
    return frame


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        memory_limit="1GB",
        dashboard_address=":0",
        silence_logs=logging.CRITICAL,
    ) as local:
        yield local


@pytest.fixture(scope="module")
def model(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A linear model trained over partitions on the cluster (its reference stored)."""
    root = tmp_path_factory.mktemp("model")
    folder = write_parts(table(30_000, seed=1), root / "train", files=3, row_group=5_000)
    result = train_partitioned(
        selection=InputSelection(path=str(folder), target="y"),
        fit=LinearFitPlan(),
        split=SplitPlan(0.2, 3),
        compute=_request(cluster.scheduler_address),
        output=root / "bundle",
        settings=Settings(home=root / "home"),
    )
    return result.path


def _request(address: str, rows: int = 25_000, timeout: float = 10.0) -> ComputeRequest:
    return ComputeRequest(
        engine="dask", scheduler=address, partition_rows=rows, connect_timeout=timeout
    )


def _settings(root: Path) -> Settings:
    # one feature on each method the summary answers (ks, wasserstein) and on exact PSI
    return Settings(
        home=root / "home",
        monitor={"features": {"x0": {"method": "ks"}, "x2": {"method": "psi"}}},
    )


def _compare(model: Path, current: pd.DataFrame, root: Path, address: str) -> dict[str, Any]:
    folder = write_parts(current, root / "current", files=4, row_group=25_000)
    single = root / "current.parquet"
    current.to_parquet(single, index=False)
    settings = _settings(root)
    request = MonitorRequest(model=str(model), current_data=single, target="y")
    expected = run_monitor(request, settings=settings).to_dict()
    got = run_monitor_partitioned(
        request,
        InputSelection(path=str(folder), target="y"),
        compute=_request(address),
        settings=settings,
    ).to_dict()
    assert got["status"] == expected["status"]
    assert got["current"]["rows"] == expected["current"]["rows"] == len(current)
    assert got["current"]["engine"]["partitions"] >= 4  # one or more per file
    judged = {**got["features"], "prediction": got["prediction"], "target": got["target"]}
    reference = {
        **expected["features"],
        "prediction": expected["prediction"],
        "target": expected["target"],
    }
    for name, ours in judged.items():
        theirs = reference[name]
        assert ours["status"] == theirs["status"], name
        assert ours["method"] == theirs["method"], name
        assert ours["current_missing"] == theirs["current_missing"], name
        approx = ours["approximation"]
        if approx["exact"]:
            assert ours["score"] == pytest.approx(theirs["score"], rel=1e-9, abs=1e-12), name
        else:
            low, high = approx["score_range"]
            assert low - 1e-12 <= theirs["score"] <= high + 1e-12, (name, theirs["score"], approx)
            assert abs(ours["score"] - theirs["score"]) <= approx["score_bound"] + 1e-12, name
        if theirs["std_score"] is not None:
            assert ours["std_score"] == pytest.approx(theirs["std_score"], rel=1e-9), name
    for metric in ("r2", "rmse", "mae"):
        assert got["performance"][metric] == pytest.approx(
            expected["performance"][metric], rel=1e-9
        )
    assert got["drifted_features"] == expected["drifted_features"]
    return got


def test_a_window_on_worker_processes_matches_the_in_process_monitor(
    cluster: Any, model: Path, tmp_path: Path
) -> None:
    got = _compare(model, table(120_000, seed=7, shift=0.5), tmp_path, cluster.scheduler_address)
    assert SHIFTED in got["drifted_features"]
    assert got["features"]["x1"]["approximation"]["exact"] is False
    assert got["features"]["x1"]["approximation"]["verdict_certain"] is True
    assert got["features"]["kind"]["approximation"] == {"exact": True}
    assert got["features"]["grade"]["method"] == "jensenshannon"  # counted per value
    assert got["features"]["x2"]["approximation"] == {"exact": True}  # PSI on exact bin counts


@pytest.mark.slow
def test_a_million_row_window_matches_the_in_process_monitor(
    cluster: Any, model: Path, tmp_path: Path
) -> None:
    got = _compare(model, table(1_000_000, seed=8, shift=0.3), tmp_path, cluster.scheduler_address)
    assert got["drifted_features"] == [SHIFTED]
    bound = got["features"]["x1"]["approximation"]
    assert 0 < bound["cdf_error"] < 0.01  # the summary's rank error stays small


def test_a_small_window_is_judged_exactly(cluster: Any, model: Path, tmp_path: Path) -> None:
    """Below the summary size nothing is compressed: every score equals the in-process one."""
    got = _compare(model, table(3_000, seed=9), tmp_path, cluster.scheduler_address)
    assert all(f["approximation"] == {"exact": True} for f in got["features"].values())


def test_the_dask_trained_reference_holds_exact_moments(model: Path) -> None:
    reference = load_reference(model)
    assert reference.rows == pytest.approx(24_000, rel=0.05)  # the training side of the split
    x3 = reference.features["x3"]
    assert x3.missing > 0 and x3.rows + x3.missing == reference.rows
    assert x3.sample.size <= 10_000 and np.all(np.diff(x3.sample) >= 0)
    assert set(reference.features["kind"].counts) == {"a", "b", "c"}  # type: ignore[union-attr]


def test_a_partition_with_another_schema_or_no_rows_is_one_line(
    cluster: Any, model: Path, tmp_path: Path
) -> None:
    current = table(2_000, seed=4)
    folder = write_parts(current, tmp_path / "in", files=2, row_group=500)
    odd = current.iloc[:100].assign(x0=lambda f: f["x0"].map("{:.3f}".format))
    odd.to_parquet(folder / "part-009.parquet", index=False)
    request = MonitorRequest(model=str(model))
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(SchemaError, match=r"column 'x0' holds text values in partition \d+ \("):
        run_monitor_partitioned(
            request,
            InputSelection(path=str(folder)),
            compute=_request(cluster.scheduler_address),
            settings=settings,
        )
    empty = write_parts(table(0, seed=4), tmp_path / "empty", files=1, row_group=10)
    with pytest.raises(DataError, match="the current data has no rows") as caught:
        run_monitor_partitioned(
            request,
            InputSelection(path=str(empty)),
            compute=_request(cluster.scheduler_address),
            settings=settings,
        )
    assert "\n" not in str(caught.value)


def test_an_unreachable_scheduler_is_one_line(model: Path, tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    folder = write_parts(table(100, seed=5), tmp_path / "in", files=1, row_group=50)
    with pytest.raises(ComputeError, match="cannot reach the Dask scheduler") as caught:
        run_monitor_partitioned(
            MonitorRequest(model=str(model)),
            InputSelection(path=str(folder)),
            compute=_request(f"tcp://127.0.0.1:{port}", timeout=1.0),
            settings=Settings(home=tmp_path / "home"),
        )
    assert caught.value.reason == "scheduler_unreachable"


def test_a_lake_dataset_version_is_a_window(cluster: Any, tmp_path: Path) -> None:
    """--current-dataset: a clean Delta version read by the workers; the training data itself
    does not drift, and the contract's target gives the performance of every row."""
    from regressops.data.demo_db import seed_demo_db
    from regressops.data.extract import extract
    from regressops.data.validate import validate

    settings = make_settings(tmp_path / "home")
    seed_demo_db(dataset="insurance", settings=settings)
    rows = extract("insurance", settings=settings).rows_new
    assert validate("insurance", settings=settings).clean_version == 0
    compute = _request(cluster.scheduler_address)
    bundle = train_partitioned(
        selection=InputSelection(dataset="insurance"),
        fit=LinearFitPlan(),
        split=SplitPlan(0.2, 1),
        compute=compute,
        output=tmp_path / "model",
        settings=settings,
    ).path
    doc = run_monitor_partitioned(
        MonitorRequest(model=str(bundle)),
        InputSelection(dataset="insurance", version=0),
        compute=compute,
        settings=settings,
    ).to_dict()
    assert doc["current"]["source"] == "dataset insurance version 0"
    assert doc["current"]["rows"] == rows
    assert doc["drifted_features"] == [] and doc["status"] == "ok"
    assert doc["target"] is not None and doc["performance"]["rows_labelled"] == rows
