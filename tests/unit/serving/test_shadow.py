"""A challenger in shadow: it scores every served row off the request path, beside the champion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from helpers.bundles import make_bundle
from regressops.config import Settings
from regressops.errors import ConfigError
from regressops.models.bundle import load_bundle
from regressops.serving.app import create_app
from regressops.serving.log.reader import iter_log_rows
from regressops.serving.predictor import Predictor
from regressops.serving.shadow import ShadowScorer

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]
SUBSET = ["bmi", "bp", "s5"]


def metric(text: str, line_start: str) -> float:
    return sum(float(s.rsplit(" ", 1)[1]) for s in text.splitlines() if s.startswith(line_start))


def serve(tmp_path: Path, champion: Path, shadow: Path, **kw: Any) -> TestClient:
    settings = Settings(home=tmp_path / "home", **kw)
    log = str(tmp_path / "predictions.jsonl")
    app = create_app(settings, model=str(champion), prediction_log=log, shadow=str(shadow))
    return TestClient(app, client=("127.0.0.1", 5000))


def logged(tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = list(iter_log_rows(str(tmp_path / "predictions.jsonl"), tmp_path / "home"))
    served = [r for r in rows if not r["endpoint"].startswith("shadow:")]
    return served, [r for r in rows if r["endpoint"].startswith("shadow:")]


def test_every_served_row_is_scored_by_the_shadow_and_logged_beside_it(tmp_path: Path) -> None:
    make_bundle(tmp_path / "champion", version="3")
    make_bundle(tmp_path / "challenger", version="4", shift=10.0)
    rows = np.random.default_rng(0).normal(0, 0.05, size=(50, 10)).round(4).tolist()
    with serve(tmp_path, tmp_path / "champion", tmp_path / "challenger") as c:
        for row in rows[:5]:
            r = c.post("/stream", json={"data": row})
            assert r.status_code == 200 and r.json()["model_version"] == "3"
        assert c.post("/batch", json={"data": rows[5:]}).status_code == 200
    # the lifespan's end drained the shadow queue and then the log
    served, shadow = logged(tmp_path)
    assert len(served) == len(shadow) == 50
    by_key = {(r["request_id"], r["row"]): r for r in served}
    for s in shadow:
        champion = by_key[(s["request_id"], s["row"])]
        assert s["endpoint"] == "shadow:" + champion["endpoint"]
        assert (s["model_name"], s["model_version"]) == ("diabetes", "4")
        assert s["features"] == champion["features"]
        assert s["prediction"] == pytest.approx(champion["prediction"] + 10.0)


def test_shadow_metrics_count_rows_and_the_difference(tmp_path: Path) -> None:
    make_bundle(tmp_path / "champion", version="3")
    make_bundle(tmp_path / "challenger", version="4", shift=-2.5)
    with serve(tmp_path, tmp_path / "champion", tmp_path / "challenger") as c:
        for _ in range(7):
            c.post("/stream", json={"data": ROW})
        state = c.app.state.serving  # type: ignore[attr-defined]
        state.shadow.close()  # score what is queued (the lifespan's end would too)
        text = c.get("/metrics").text
    assert metric(text, 'regressops_shadow_rows_total{result="scored"}') == 7
    assert metric(text, "regressops_shadow_abs_difference_sum") == pytest.approx(7 * 2.5)
    assert metric(text, 'regressops_shadow_model_info{name="diabetes",version="4"}') == 1


def test_a_shadow_on_a_subset_of_the_features(tmp_path: Path) -> None:
    make_bundle(tmp_path / "champion", version="1")
    make_bundle(tmp_path / "challenger", version="2", features=SUBSET)
    with serve(tmp_path, tmp_path / "champion", tmp_path / "challenger") as c:
        assert c.post("/batch", json={"data": [ROW, ROW]}).status_code == 200
    _, shadow = logged(tmp_path)
    small = Predictor(load_bundle(tmp_path / "challenger"))
    expected = small.predict_columns({n: [ROW[i]] for n, i in (("bmi", 2), ("bp", 3), ("s5", 8))})
    assert [s["features"] for s in shadow] == [{"bmi": ROW[2], "bp": ROW[3], "s5": ROW[8]}] * 2
    assert shadow[0]["prediction"] == pytest.approx(float(expected.predictions[0]))


def test_a_shadow_needing_other_features_is_refused_in_one_line(tmp_path: Path) -> None:
    make_bundle(tmp_path / "champion", features=SUBSET)
    make_bundle(tmp_path / "challenger", version="2")
    with (
        pytest.raises(ConfigError, match=r"needs feature\(s\) \['age', 'sex'") as info,
        serve(tmp_path, tmp_path / "champion", tmp_path / "challenger"),
    ):
        pass
    assert "\n" not in info.value.message


def test_the_served_model_itself_is_refused_as_its_shadow(tmp_path: Path) -> None:
    make_bundle(tmp_path / "champion", version="5")
    with (
        pytest.raises(
            ConfigError, match=r"the shadow model is the served model \(diabetes version 5\)"
        ),
        serve(tmp_path, tmp_path / "champion", tmp_path / "champion"),
    ):
        pass


def test_reload_swaps_both_models_or_neither(tmp_path: Path) -> None:
    make_bundle(tmp_path / "champion", version="1")
    make_bundle(tmp_path / "challenger", version="7", shift=1.0)
    with serve(tmp_path, tmp_path / "champion", tmp_path / "challenger") as c:
        c.post("/stream", json={"data": ROW})
        make_bundle(tmp_path / "challenger", version="8", shift=2.0)
        r = c.post("/admin/reload")
        assert r.status_code == 200 and r.json()["version"] == "1", r.text
        assert c.get("/model-check").json()["shadow"] == {"name": "diabetes", "version": "8"}
        c.post("/stream", json={"data": ROW})
        (tmp_path / "challenger" / "model.json").write_text("{broken")
        make_bundle(tmp_path / "champion", version="2")
        r = c.post("/admin/reload")
        assert r.status_code == 409 and "still serving diabetes version 1" in r.json()["message"]
        assert c.post("/stream", json={"data": ROW}).json()["model_version"] == "1"
    _, shadow = logged(tmp_path)
    assert [s["model_version"] for s in shadow] == ["7", "8", "8"]


def test_a_shadow_that_falls_behind_drops_rows_and_counts_them(tmp_path: Path) -> None:
    make_bundle(tmp_path / "champion")
    make_bundle(tmp_path / "challenger", version="2", shift=1.0)
    champion = Predictor(load_bundle(tmp_path / "champion"))
    scorer = ShadowScorer(
        str(tmp_path / "challenger"), registry=CollectorRegistry(), max_pending_rows=5
    )
    scorer.prepare(champion)
    scorer.install()
    batch = champion.predict_rows([ROW, ROW])
    for i in range(4):  # 2 + 2 rows queue; the third and fourth requests do not fit
        scorer.submit(f"r{i}", "/batch", batch)
    assert scorer.pending_rows == 4
    scorer.start()
    scorer.close()  # the thread scores what queued, then stops
    assert scorer.pending_rows == 0
    assert scorer.rows.labels("scored")._value.get() == 4
    assert scorer.rows.labels("dropped")._value.get() == 4


def test_queued_requests_are_scored_together_and_logged_as_one_line(tmp_path: Path) -> None:
    from regressops.serving.log.queue import PredictionLogger
    from regressops.serving.log.sinks import JsonLinesSink

    make_bundle(tmp_path / "champion")
    make_bundle(tmp_path / "challenger", version="2", shift=1.0)
    champion = Predictor(load_bundle(tmp_path / "champion"))
    scorer = ShadowScorer(str(tmp_path / "challenger"), registry=CollectorRegistry())
    scorer.prepare(champion)
    scorer.install()
    log = tmp_path / "shadow.jsonl"
    scorer.plog = PredictionLogger(JsonLinesSink(log))
    scorer.plog.start()
    sizes = [1, 1, 1, 3, 2]
    for i, n in enumerate(sizes):  # queued before the thread starts: one drain takes them all
        scorer.submit(f"r{i}", "/stream" if n == 1 else "/batch", champion.predict_rows([ROW] * n))
    scorer.start()
    scorer.close()
    scorer.plog.close()
    lines = log.read_text().splitlines()
    assert len(lines) == 2  # one per run of requests to one endpoint: 3 x /stream, 2 x /batch
    rows = list(iter_log_rows(str(log), tmp_path))
    assert [(r["request_id"], r["row"], r["endpoint"]) for r in rows] == [
        (f"r{i}", k, "shadow:/stream" if n == 1 else "shadow:/batch")
        for i, n in enumerate(sizes)
        for k in range(n)
    ]
    expected = float(champion.predict_rows([ROW]).predictions[0]) + 1.0
    assert all(r["prediction"] == pytest.approx(expected) for r in rows)
