"""The Dask engine on a real LocalCluster of worker processes: answers, outputs, failures."""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from helpers.partitions import synthetic, train_rows, write_parts
from regressops.compute.engines import ComputeRequest, open_engine
from regressops.compute.inputs import InputSelection
from regressops.compute.linear import LinearFitPlan
from regressops.compute.partitions import list_files
from regressops.compute.rows import SplitPlan
from regressops.compute.scoring import score_to_parquet
from regressops.config import Settings
from regressops.errors import ComputeError, DataError, SchemaError
from regressops.models.bundle import load_bundle
from regressops.models.linear import LinearRegressor
from regressops.training.partitioned import train_partitioned

distributed = pytest.importorskip("distributed")
SPLIT = SplitPlan(0.2, 5)


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


def _request(address: str, rows: int = 100_000, timeout: float = 10.0) -> ComputeRequest:
    return ComputeRequest(
        engine="dask", scheduler=address, partition_rows=rows, connect_timeout=timeout
    )


def _train(folder: Path, out: Path, compute: ComputeRequest, **fit: Any) -> Any:
    return train_partitioned(
        selection=InputSelection(path=str(folder), target="y"),
        fit=LinearFitPlan(**fit),
        split=SPLIT,
        compute=compute,
        output=out,
        settings=Settings(home=out.parent / "home"),
    )


@pytest.mark.slow
def test_million_rows_on_worker_processes_equal_the_in_process_fit(
    cluster: Any, tmp_path: Path
) -> None:
    frame = synthetic(1_000_000, 10, categorical=False)
    folder = write_parts(frame, tmp_path / "in", files=4, row_group=50_000)
    result = _train(folder, tmp_path / "model", _request(cluster.scheduler_address, 125_000))
    assert result.metrics["fit"]["engine"] == "dask"
    assert result.bundle.lineage["partitions"] == 8
    rows = train_rows(frame, SPLIT, files=4)
    spec = result.bundle.spec
    ref = LinearRegressor().fit(spec.transform(rows), rows["y"].to_numpy())
    np.testing.assert_allclose(result.bundle.coef, ref.coef_, rtol=1e-10)
    assert result.bundle.intercept == pytest.approx(ref.intercept_, rel=1e-10)
    assert result.metrics["n_test"] + result.metrics["train"]["n"] == len(frame)
    assert result.metrics["r2"] > 0.99


def test_scoring_writes_one_parquet_file_per_partition_with_model_columns(
    cluster: Any, tmp_path: Path
) -> None:
    frame = synthetic(6_000, 3)
    folder = write_parts(frame, tmp_path / "in", files=3, row_group=1000)
    compute = _request(cluster.scheduler_address, 2000)
    bundle = load_bundle(_train(folder, tmp_path / "model", compute).path)
    parts = list_files(folder, partition_rows=2000).partitions
    with open_engine(compute) as engine:
        result = score_to_parquet(engine, parts, bundle, tmp_path / "scores")
    assert (result.rows, result.files) == (6000, 3)
    written = pd.read_parquet(tmp_path / "scores")
    assert sorted(p.name for p in (tmp_path / "scores").iterdir()) == [
        "part-00000.parquet",
        "part-00001.parquet",
        "part-00002.parquet",
    ]
    np.testing.assert_allclose(written["prediction"], bundle.predict_frame(frame), rtol=1e-12)
    assert set(written["model_name"]) == {bundle.name}
    assert set(written["model_version"]) == {"local"}
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_a_partition_with_another_schema_fails_and_writes_nothing(
    cluster: Any, tmp_path: Path
) -> None:
    frame = synthetic(3_000, 3)
    folder = write_parts(frame, tmp_path / "in", files=2, row_group=500)
    odd = frame.iloc[:100].assign(x1=lambda f: f["x1"].map("{:.3f}".format))  # text, not numbers
    odd.to_parquet(folder / "part-009.parquet", index=False)
    with pytest.raises(SchemaError, match=r"column 'x1' holds text values in partition \d+ \("):
        _train(folder, tmp_path / "model", _request(cluster.scheduler_address, 1000))
    assert not (tmp_path / "model").exists()


def test_an_input_of_zero_rows_fails_and_writes_nothing(cluster: Any, tmp_path: Path) -> None:
    folder = write_parts(synthetic(0, 3), tmp_path / "in", files=1, row_group=10)
    with pytest.raises(DataError, match="no training rows"):
        _train(folder, tmp_path / "model", _request(cluster.scheduler_address))
    assert not (tmp_path / "model").exists()


def test_an_unreachable_scheduler_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    folder = write_parts(synthetic(100, 2), tmp_path / "in", files=1, row_group=50)
    with pytest.raises(ComputeError, match="cannot reach the Dask scheduler") as caught:
        _train(folder, tmp_path / "model", _request(f"tcp://127.0.0.1:{port}", timeout=1.0))
    assert caught.value.reason == "scheduler_unreachable"
    assert not (tmp_path / "model").exists()


def test_a_worker_dying_mid_fit_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    import dask

    frame = synthetic(400_000, 10, categorical=False)
    folder = write_parts(frame, tmp_path / "in", files=8, row_group=50_000)
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=1,
            dashboard_address=":0",
            silence_logs=logging.CRITICAL,
        ) as local,
        distributed.Client(local) as watcher,
    ):
        pid = next(iter(watcher.run(os.getpid).values()))
        outcome: list[BaseException] = []

        def fit() -> None:
            try:
                _train(folder, tmp_path / "model", _request(local.scheduler_address, 50_000))
            except BaseException as exc:
                outcome.append(exc)

        runner = threading.Thread(target=fit)
        runner.start()
        deadline = time.monotonic() + 60
        while not any(watcher.processing().values()):  # a partition task is on the worker
            assert time.monotonic() < deadline, "the fit never started"
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        runner.join(timeout=120)
    assert outcome and isinstance(outcome[0], ComputeError), outcome
    assert outcome[0].reason == "worker_died"
    assert "worker died" in str(outcome[0]) and "\n" not in str(outcome[0])
    assert not (tmp_path / "model").exists()


def test_scoring_a_bad_or_empty_input_writes_nothing(cluster: Any, tmp_path: Path) -> None:
    frame = synthetic(2_000, 3)
    folder = write_parts(frame, tmp_path / "in", files=2, row_group=500)
    compute = _request(cluster.scheduler_address, 1000)
    bundle = load_bundle(_train(folder, tmp_path / "model", compute).path)
    frame.drop(columns=["x2"]).iloc[:10].to_parquet(folder / "part-009.parquet", index=False)
    empty = write_parts(synthetic(0, 3), tmp_path / "empty", files=1, row_group=10)
    with open_engine(compute) as engine:
        bad = list_files(folder, partition_rows=1000).partitions
        with pytest.raises(SchemaError, match=r"partition \d+ \(part-009.parquet.*\) lacks"):
            score_to_parquet(engine, bad, bundle, tmp_path / "scores")
        nothing = list_files(empty, partition_rows=1000).partitions
        with pytest.raises(DataError, match="no rows to predict"):
            score_to_parquet(engine, nothing, bundle, tmp_path / "scores")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "in", "model"]


def _profiler_enabled() -> bool:
    import dask

    return bool(dask.config.get("distributed.worker.profile.enabled"))


def test_a_local_engine_starts_its_workers_without_the_statistical_profiler() -> None:
    with open_engine(ComputeRequest(engine="dask", scheduler="local:1")) as engine:
        assert list(engine.client.run(_profiler_enabled).values()) == [False]
    assert _profiler_enabled()  # the setting does not leak into the caller's Dask config
