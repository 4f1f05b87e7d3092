"""The labels ``POST /feedback`` writes to PostgreSQL, read back by the monitor beside the SQL log,
with the challenger's shadow rows compared on them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from helpers.bundles import make_bundle
from helpers.postgres import PG_URL, temporary_schema
from regressops.config import Settings
from regressops.monitoring.monitor import MonitorRequest, run_monitor
from regressops.monitoring.performance import read_label_sink
from regressops.serving.log.batch import LogBatch
from regressops.serving.log.labels import LabelSink, labels_target
from regressops.serving.log.sinks import SqlSink

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_url() -> Iterator[str]:
    with temporary_schema("evidence_labels") as schema:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"


def test_monitor_reads_postgresql_labels_and_compares_the_shadow(
    tmp_path: Path, pg_url: str
) -> None:
    from sklearn.datasets import load_diabetes

    bundle = make_bundle(tmp_path / "v1", version="1")
    data = load_diabetes()
    x = np.asarray(data.data[:90], dtype=np.float64)
    champion = bundle.predict_matrix(bundle.spec.transform_rows(x))
    sink = SqlSink(pg_url)
    try:
        for i in range(3):  # three /batch requests of 30 rows, then the challenger's rows
            part = slice(30 * i, 30 * (i + 1))
            sink.write([
                LogBatch(time.time(), f"r{i}", "/batch", bundle.name, "1", bundle.spec.names,
                         x[part], champion[part], 1.0)
            ])  # fmt: skip
        sink.write([
            LogBatch(time.time(), "r0", "shadow:/batch", bundle.name, "2", bundle.spec.names,
                     x, champion - 2.0, 1.0,
                     request_ids=[f"r{i // 30}" for i in range(90)],
                     request_rows=[i % 30 for i in range(90)])
        ])  # fmt: skip
    finally:
        sink.close()
    truth = champion - 1.5 + np.where(np.arange(90) % 2, 0.1, -0.1)
    labels = LabelSink(labels_target(pg_url, tmp_path))
    try:
        labels.write([(f"r{i // 30}", i % 30, float(truth[i])) for i in range(89, -1, -1)])
    finally:
        labels.close()
    read = read_label_sink(pg_url)
    assert read is not None and len(read) == 90 and "postgres@" in read.source

    report = run_monitor(
        MonitorRequest(
            model=str(tmp_path / "v1"), prediction_log=pg_url, reference_dataset="diabetes"
        ),
        settings=Settings(home=tmp_path / "home"),
    )
    perf = report.to_dict()["performance"]
    assert perf["rows_labelled"] == 90 and perf["labels_unmatched"] == 0
    assert perf["rmse"] == pytest.approx(np.sqrt(np.mean((truth - champion) ** 2)), rel=1e-9)
    shadow = perf["shadow"]
    assert shadow["model_version"] == "2" and shadow["rows_labelled"] == 90
    expected = np.sqrt(np.mean((truth - (champion - 2.0)) ** 2))
    assert shadow["rmse"] == pytest.approx(expected, rel=1e-9)
    assert shadow["better_than_champion"] is True
