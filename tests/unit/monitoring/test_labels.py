"""Labels as columns: the sink ``POST /feedback`` writes read back, the vectorised join, and the
challenger in shadow compared with the champion on the same labelled rows."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers.monitoring import diabetes_rows, log_rows
from regressops.config import MonitorSettings
from regressops.models.bundle import load_bundle
from regressops.monitoring.monitor import MonitorRequest, run_monitor
from regressops.monitoring.performance import (
    Labels,
    Segments,
    compare_shadow,
    join_labels,
    read_label_sink,
)
from regressops.serving.log.batch import LogBatch
from regressops.serving.log.labels import LabelSink, labels_target, read_label_columns
from regressops.training.metrics import regression_metrics


def naive_join(
    labels: dict[tuple[str, int], float], runs: list[tuple[str, int, int, int]], preds: np.ndarray
) -> tuple[list[float], list[float], int]:
    """The obvious per-label loop (first logged run holding the row wins)."""
    y, p = [], []
    for (rid, row), value in labels.items():
        for r, first, count, offset in runs:
            if r == rid and first <= row < first + count:
                y.append(value)
                p.append(float(preds[offset + row - first]))
                break
    return y, p, len(labels) - len(y)


@st.composite
def windows_and_labels(draw: st.DrawFn) -> tuple[list, np.ndarray, dict, list[int]]:
    ids = draw(st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=12))
    runs, offset = [], 0
    for rid in ids:
        first = draw(st.integers(0, 5))
        count = draw(st.integers(1, 6))
        runs.append((rid, first, count, offset))
        offset += count
    preds = np.arange(offset, dtype=np.float64) * 1.5 + 0.25
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from("abcdefgz"), st.integers(0, 12)), unique=True, max_size=40
        )
    )
    labels = {k: float(i) for i, k in enumerate(keys)}
    order = draw(st.permutations(list(range(len(keys)))))
    return runs, preds, labels, order


def as_labels(labels: dict[tuple[str, int], float], order: list[int]) -> Labels:
    items = list(labels.items())
    items = [items[i] for i in order]
    return Labels.from_columns(
        np.array([k[0] for k, _ in items], dtype=str),
        np.array([k[1] for k, _ in items], dtype=np.int64),
        np.array([v for _, v in items], dtype=np.float64),
        source="test",
    )


@settings(max_examples=150, deadline=None)
@given(windows_and_labels())
def test_join_equals_the_per_label_loop_whatever_the_order_of_the_labels(case: tuple) -> None:
    runs, preds, labels, order = case
    y_loop, p_loop, unmatched_loop = naive_join(labels, runs, preds)
    for perm in (list(range(len(labels))), order):
        y, p, unmatched = join_labels(
            as_labels(labels, perm), segments=Segments.from_runs(runs), predictions=preds
        )
        assert unmatched == unmatched_loop
        # the same pairs, whatever order the labels came in
        assert sorted(zip(y.tolist(), p.tolist(), strict=True)) == sorted(
            zip(y_loop, p_loop, strict=True)
        )


def test_a_key_labelled_twice_keeps_its_latest_label() -> None:
    labels = Labels.from_columns(
        np.array(["r", "s", "r"]), np.array([0, 0, 0]), np.array([1.0, 2.0, 3.0]), source="t"
    )
    assert len(labels) == 2
    y, p, unmatched = join_labels(
        labels, segments=Segments.from_runs([("r", 0, 1, 0)]), predictions=np.array([9.0])
    )
    assert y.tolist() == [3.0] and p.tolist() == [9.0] and unmatched == 1


def test_the_json_lines_sink_reads_back_as_columns_past_a_torn_line(tmp_path: Path) -> None:
    target = labels_target(None, tmp_path)
    sink = LabelSink(target)
    sink.write([("a", 0, 1.5), ("a", 1, 2.5)])
    sink.close()
    cols = read_label_columns(target)
    assert cols.request_ids.tolist() == ["a", "a"] and cols.rows.tolist() == [0, 1]
    assert cols.labels.tolist() == [1.5, 2.5]
    with Path(target).open("ab") as fh:  # a torn line, then a whole one, then one being written
        fh.write(b'{"ts":"x","request_id":"b","ro\n{"ts":"x","request_id":"c","row":4,"label":7}\n')
        fh.write(b'{"ts":"x","request_id":"d"')
    cols = read_label_columns(target)
    assert cols.request_ids.tolist() == ["a", "a", "c"] and cols.labels.tolist() == [1.5, 2.5, 7]
    assert read_label_sink(str(tmp_path / "none.jsonl")) is None


def test_the_sqlite_sink_reads_back_as_columns(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    assert read_label_sink(url) is None  # no table yet: no labels
    sink = LabelSink(labels_target(url, tmp_path))
    sink.write([("a", 0, 1.0), ("b", 3, -2.0)])
    sink.close()
    labels = read_label_sink(url)
    assert labels is not None and labels.request_ids.tolist() == ["a", "b"]
    assert labels.rows.tolist() == [0, 3] and labels.values.tolist() == [1.0, -2.0]


def test_shadow_comparison_is_both_models_metrics_on_the_rows_both_scored() -> None:
    rng = np.random.default_rng(0)
    champion = rng.normal(size=50)
    shadow = champion[:40] + 0.5  # the challenger scored only the first 40 rows
    truth = champion + 0.4 + rng.normal(scale=0.01, size=50)
    labels = Labels.from_columns(
        np.array(["r"] * 50), np.arange(50), truth, source="t"
    )  # every row labelled, in reverse order
    comparison = compare_shadow(
        labels,
        champion=(Segments.from_runs([("r", 0, 50, 0)]), champion),
        shadow=(Segments.from_runs([("r", 0, 40, 0)]), shadow),
        identity=("m", "2", "1"),
        settings=MonitorSettings(min_labelled_rows=30),
    )
    doc = comparison.to_dict()
    assert doc["rows_labelled"] == 40 and doc["labelled_without_shadow"] == 10
    assert doc["rmse"] == pytest.approx(regression_metrics(truth[:40], shadow)["rmse"], rel=1e-12)
    assert doc["champion"]["rmse"] == pytest.approx(
        regression_metrics(truth[:40], champion[:40])["rmse"], rel=1e-12
    )
    assert doc["better_than_champion"] is True and doc["status"] == "better"
    few = compare_shadow(
        labels,
        champion=(Segments.from_runs([("r", 0, 50, 0)]), champion),
        shadow=(Segments.from_runs([("r", 0, 40, 0)]), shadow),
        identity=("m", "2", "1"),
        settings=MonitorSettings(min_labelled_rows=41),
    )
    assert few.status == "not_enough_data" and few.better is False


def test_monitor_reads_the_feedback_labels_and_compares_the_shadow_rows(
    diabetes_bundle: Path, tmp_path: Path
) -> None:
    """No --labels: the labels beside the log are read; shadow rows give the comparison."""
    bundle = load_bundle(diabetes_bundle)
    data = diabetes_rows()
    log = tmp_path / "predictions.jsonl"
    ids = log_rows(log, bundle, data, request_rows=50)
    champion = bundle.predict_matrix(bundle.spec.transform_rows(data))
    challenger = champion + 5.0
    # the challenger's rows as the shadow scorer logs them: several requests per line
    request_ids = [rid for rid in ids for _ in range(50)][: len(data)]
    request_rows = [j for _ in ids for j in range(50)][: len(data)]
    with log.open("ab") as fh:
        batch = LogBatch(
            time.time(),
            request_ids[0],
            "shadow:/batch",
            bundle.name,
            "shadow-v",
            bundle.spec.names,
            data,
            challenger,
            1.0,
            request_ids=request_ids,
            request_rows=request_rows,
        )
        for line in batch.json_lines(line_rows=128):
            fh.write(line + b"\n")
    truth = champion + 6.0  # closer to the challenger
    sink = LabelSink(labels_target(str(log), tmp_path))
    sink.write([(r, j, float(y)) for r, j, y in zip(request_ids, request_rows, truth, strict=True)])
    sink.write([("nobody", 0, 1.0)])
    sink.close()
    doc = run_monitor(MonitorRequest(model=str(diabetes_bundle), prediction_log=str(log)))
    perf = doc.to_dict()["performance"]
    assert perf["rows_labelled"] == len(data) and perf["labels_unmatched"] == 1
    assert perf["labels_source"] == str(tmp_path / "predictions.labels.jsonl")
    assert perf["rmse"] == pytest.approx(6.0, rel=1e-9)
    shadow = perf["shadow"]
    assert shadow["model_version"] == "shadow-v" and shadow["rows_labelled"] == len(data)
    assert shadow["rmse"] == pytest.approx(1.0, rel=1e-9)
    assert shadow["champion"]["rmse"] == pytest.approx(6.0, rel=1e-9)
    assert shadow["better_than_champion"] is True


def test_a_labelled_table_compares_a_named_challenger_with_the_model(
    diabetes_bundle: Path, tmp_path: Path
) -> None:
    """The table form (what retrain runs on new source rows): --shadow scores the challenger."""
    import pandas as pd
    from sklearn.datasets import load_diabetes

    from helpers.bundles import make_bundle
    from regressops.errors import DataError

    data = load_diabetes(as_frame=True).frame
    data.to_csv(tmp_path / "rows.csv", index=False)
    challenger = make_bundle(tmp_path / "challenger", version="7")
    bundle = load_bundle(diabetes_bundle)
    doc = run_monitor(
        MonitorRequest(
            model=str(diabetes_bundle),
            current_data=tmp_path / "rows.csv",
            target="target",
            shadow=str(tmp_path / "challenger"),
        )
    ).to_dict()
    shadow = doc["performance"]["shadow"]
    x = data[bundle.spec.names]
    y = data["target"].to_numpy()
    mine = challenger.predict_matrix(challenger.spec.transform(x))
    theirs = bundle.predict_matrix(bundle.spec.transform(x))
    assert shadow["model_version"] == "7" and shadow["rows_labelled"] == 442
    assert shadow["rmse"] == pytest.approx(regression_metrics(y, mine)["rmse"], rel=1e-9)
    assert shadow["champion"]["rmse"] == pytest.approx(
        regression_metrics(y, theirs)["rmse"], rel=1e-9
    )
    # the challenger fit on all 442 rows beats the model trained on 353 of them, on all 442
    assert shadow["better_than_champion"] is True
    pd.DataFrame({"bmi": data["bmi"], "target": y}).to_csv(tmp_path / "thin.csv", index=False)
    with pytest.raises(DataError, match="lacks feature column"):
        run_monitor(
            MonitorRequest(
                model=str(diabetes_bundle),
                current_data=tmp_path / "thin.csv",
                target="target",
                shadow=str(tmp_path / "challenger"),
            )
        )


def test_monitor_shadow_option_picks_the_challenger_by_its_bundle(
    diabetes_bundle: Path, tmp_path: Path
) -> None:
    """--shadow names the challenger; one the log holds no shadow rows of compares on none."""
    from helpers.bundles import make_bundle

    bundle = load_bundle(diabetes_bundle)
    data = diabetes_rows()[:60]
    log = tmp_path / "predictions.jsonl"
    [rid] = log_rows(log, bundle, data, request_rows=60)
    champion = bundle.predict_matrix(bundle.spec.transform_rows(data))
    for version, shift in (("8", 1.0), ("9", 3.0)):  # two challengers took turns
        with log.open("ab") as fh:
            batch = LogBatch(
                time.time(), rid, "shadow:/batch", bundle.name, version, bundle.spec.names,
                data, champion + shift, 1.0,
            )  # fmt: skip
            fh.write(batch.json_lines()[0] + b"\n")
    sink = LabelSink(labels_target(str(log), tmp_path))
    sink.write([(rid, j, float(y)) for j, y in enumerate(champion + 3.0)])
    sink.close()
    make_bundle(tmp_path / "nine", name=bundle.name, version="9")
    make_bundle(tmp_path / "ten", name=bundle.name, version="10")

    def shadow_of(ref: str) -> dict:
        request = MonitorRequest(model=str(diabetes_bundle), prediction_log=str(log), shadow=ref)
        return run_monitor(request).to_dict()["performance"]["shadow"]

    nine = shadow_of(str(tmp_path / "nine"))
    assert nine["model_version"] == "9" and nine["rows_labelled"] == 60
    assert nine["rmse"] == pytest.approx(0.0, abs=1e-9) and nine["better_than_champion"] is True
    ten = shadow_of(str(tmp_path / "ten"))
    assert ten["rows_labelled"] == 0 and ten["status"] == "not_enough_data"
    assert ten["labelled_without_shadow"] == 60 and ten["better_than_champion"] is False
