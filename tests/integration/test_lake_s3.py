"""The lake on object storage: moto's S3 server on 127.0.0.1, delta-rs conditional commits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from helpers.data import make_settings
from helpers.servers import free_port
from regressops.compute.engines import ComputeRequest
from regressops.compute.inputs import InputSelection
from regressops.compute.linear import LinearFitPlan
from regressops.compute.rows import SplitPlan
from regressops.data.demo_db import seed_demo_db
from regressops.data.extract import extract
from regressops.data.lake import Lake
from regressops.data.storage import list_files
from regressops.data.validate import validate
from regressops.errors import DataError
from regressops.training.partitioned import train_partitioned
from regressops.training.train import train

pytest.importorskip("moto.server")
boto3 = pytest.importorskip("boto3")
SCHEMA = pa.schema([("x", pa.int64()), ("y", pa.float64())])


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's S3 server as its own process (delta-rs holds the GIL while it waits on S3)."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, "moto_server exited"
            try:
                httpx.get(url, timeout=1.0)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(30)
        log.close()


@pytest.fixture
def bucket(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """A fresh bucket; credentials in the environment, as in production."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    name = f"lake-{uuid.uuid4().hex[:10]}"
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=name)
    options = {"aws_endpoint_url": endpoint, "aws_region": "us-east-1"}
    return {"uri": f"s3://{name}/lake", "options": options, "endpoint": endpoint}


def _batch(start: int, n: int) -> pa.RecordBatch:
    return pa.RecordBatch.from_pydict(
        {"x": list(range(start, start + n)), "y": [float(v) for v in range(n)]}, schema=SCHEMA
    )


def test_tables_are_written_read_and_time_travelled_on_s3(bucket: dict[str, Any]) -> None:
    lake = Lake(bucket["uri"], bucket["options"])
    assert lake.remote and lake.datasets() == []
    with lake.lock("sales"):
        assert lake.write("sales", "raw", SCHEMA, [_batch(0, 5)], mode="append", info={"n": 5}) == 0
        assert lake.write("sales", "raw", SCHEMA, [_batch(5, 3)], mode="append", info={"n": 3}) == 1
    assert lake.datasets() == ["sales"]
    assert sorted(lake.read("sales", "raw").column("x").to_pylist()) == list(range(8))
    assert lake.read("sales", "raw", 0).num_rows == 5
    assert [v.info for v in lake.history("sales", "raw")] == [{"n": 5}, {"n": 3}]
    assert all(f.startswith("s3://") for f in lake.files("sales", "raw"))
    assert sum(b.num_rows for b in lake.scan("sales", "raw")) == 8
    assert str(lake.path("sales", "raw")) == f"{bucket['uri']}/sales/raw"


def _commit_from_another_process(bucket: dict[str, Any], table_uri: str) -> None:
    code = (
        "import sys, pyarrow as pa; from deltalake import write_deltalake\n"
        "t = pa.table({'x': pa.array([100], pa.int64()), 'y': pa.array([1.0])})\n"
        "write_deltalake(sys.argv[1], t, mode='append', storage_options={"
        "'aws_endpoint_url': sys.argv[2], 'aws_region': 'us-east-1', 'aws_allow_http': 'true',"
        "'aws_conditional_put': 'etag'})\n"
    )
    subprocess.run(
        [sys.executable, "-c", code, table_uri, bucket["endpoint"]],
        check=True,
        env=dict(os.environ),
        timeout=120,
    )


def test_a_writer_that_lost_the_race_commits_nothing_and_leaves_no_files(
    bucket: dict[str, Any],
) -> None:
    lake = Lake(bucket["uri"], bucket["options"])
    with lake.lock("sales"):
        lake.write("sales", "raw", SCHEMA, [_batch(0, 5)], mode="append", info={})
    table_uri = str(lake.path("sales", "raw"))

    def racing_batches() -> Iterator[pa.RecordBatch]:
        yield _batch(10, 4)
        # another process commits v1 while this write is under way (after its lock pinned v0)
        _commit_from_another_process(bucket, table_uri)
        yield _batch(14, 4)

    with lake.lock("sales"), pytest.raises(DataError, match="another writer committed") as caught:
        lake.write("sales", "raw", SCHEMA, racing_batches(), mode="append", info={})
    assert caught.value.reason == "concurrent_write"
    assert lake.latest_version("sales", "raw") == 1  # the other writer's commit, not ours
    assert sorted(lake.read("sales", "raw").column("x").to_pylist()) == [0, 1, 2, 3, 4, 100]
    data_files = {f for f in list_files(table_uri, bucket["options"]) if "_delta_log" not in f}
    referenced = {u.split("://", 1)[1] for u in lake.open("sales", "raw").file_uris()}
    assert data_files == referenced  # our half-written data files were removed

    # a writer that sees the other commit before writing is refused up front, too
    other = Lake(bucket["uri"], bucket["options"])
    with lake.lock("sales"):
        with other.lock("sales"):
            other.write("sales", "raw", SCHEMA, [_batch(20, 1)], mode="append", info={})
        with pytest.raises(DataError, match=r"v1 -> v2"):
            lake.write("sales", "raw", SCHEMA, [_batch(30, 1)], mode="append", info={})


def test_extract_validate_and_both_engines_train_from_an_s3_lake(
    bucket: dict[str, Any], home: Path
) -> None:
    settings = make_settings(
        home, data={"lake_uri": bucket["uri"], "storage_options": bucket["options"]}
    )
    seed_demo_db(dataset="insurance", settings=settings)
    extracted = extract("insurance", settings=settings)
    assert str(extracted.lake_path).startswith("s3://")
    validated = validate("insurance", settings=settings)
    assert validated.clean_version == 0
    assert not (home / "lake").exists()  # nothing of the lake on local disk
    local = train(dataset="insurance", settings=settings, plots=False, output=home / "m1")
    assert local.bundle.lineage["source"] == "lake"
    result = train_partitioned(
        selection=InputSelection(dataset="insurance", version=0),
        fit=LinearFitPlan(),
        split=SplitPlan(0.2, 1),
        compute=ComputeRequest.from_settings(settings),
        output=home / "m2",
        settings=settings,
    )
    assert result.bundle.lineage["clean_version"] == 0
    assert result.metrics["n_test"] + result.metrics["train"]["n"] == extracted.rows_new
    assert result.metrics["r2"] > 0.6
