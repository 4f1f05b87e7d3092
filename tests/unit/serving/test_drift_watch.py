"""Live drift gauges in one server process: the watch driven tick by tick, then through the app."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry, generate_latest

from helpers.bundles import make_bundle
from helpers.drift import add_reference, drift_gauges, drifted, reference_rows
from regressops.config import Settings
from regressops.models.bundle import load_bundle
from regressops.monitoring.live import LiveResult
from regressops.serving.app import create_app
from regressops.serving.drift_watch import DriftWatch
from regressops.serving.predictor import Predictor


def make_client(settings: Settings, model: Path) -> TestClient:
    return TestClient(create_app(settings, model=str(model)), client=("127.0.0.1", 50000))


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("drift") / "diabetes"
    make_bundle(path, version="1")
    add_reference(path)
    return path


def _settings(tmp_path: Path, **serve: object) -> Settings:
    return Settings(home=tmp_path / "home", serve={"drift_interval_seconds": 0.2, **serve})


def _watch(settings: Settings, bundle_dir: Path, shared: Path | None = None) -> DriftWatch:
    watch = DriftWatch(settings, shared_dir=str(shared) if shared else None)
    watch.prepare(Predictor(load_bundle(bundle_dir)), bundle_dir)
    watch.install()
    return watch


def _scrape(watch: DriftWatch) -> dict[tuple[str, ...], float]:
    registry = CollectorRegistry()
    registry.register(watch.collector)
    return drift_gauges(generate_latest(registry).decode())


def test_the_watch_judges_the_window_when_due(tmp_path: Path, bundle_dir: Path) -> None:
    watch = _watch(_settings(tmp_path), bundle_dir)
    names, rows = reference_rows(bundle_dir, copies=2, shift={"bmi": 1.0})
    assert watch.tick() is None and _scrape(watch) == {}  # nothing served yet: no gauges
    for start in range(0, len(rows), 100):  # requests of 100 rows, as the server queues them
        watch.submit(rows[start : start + 100], len(rows[start : start + 100]))
    now = time.monotonic()
    assert watch.tick(now) is None  # the window filled, but the interval has not passed
    result = watch.tick(now + 1.0)
    assert result is not None and result.window_rows == len(rows)
    gauges = _scrape(watch)
    assert drifted(gauges) == {n: n == "bmi" for n in names}
    score = gauges[("regressops_feature_drift_score", "diabetes", "1", "bmi", "wasserstein")]
    assert score == pytest.approx(1.0)
    assert gauges[("regressops_dataset_drift", "diabetes", "1", "", "")] == 0.0
    assert gauges[("regressops_drift_window_rows", "diabetes", "1", "", "")] == len(rows)
    # no new rows: no new computation, the gauges stay
    assert watch.tick(now + 10.0) is None and _scrape(watch) == gauges


def test_too_few_new_rows_wait_and_a_full_queue_skips_rows(
    tmp_path: Path, bundle_dir: Path
) -> None:
    settings = _settings(tmp_path, drift_window_rows=100)
    watch = _watch(settings, bundle_dir)
    _, rows = reference_rows(bundle_dir)
    watch.submit(rows[:10], 10)  # below monitor.min_rows (30)
    assert watch.tick(time.monotonic() + 1.0) is None
    for _ in range(20):  # 200 rows queued at once: beyond a window (100) they are skipped
        watch.submit(rows[:10], 10)
    assert watch.skipped == 100
    assert watch.tick(time.monotonic() + 1.0) is not None


def test_a_reload_starts_a_new_window_and_drops_the_old_gauges(
    tmp_path: Path, bundle_dir: Path
) -> None:
    watch = _watch(_settings(tmp_path), bundle_dir)
    _, rows = reference_rows(bundle_dir, shift={"bp": 1.0})
    watch.submit(rows, len(rows))
    assert watch.tick(time.monotonic() + 1.0) is not None and _scrape(watch)
    v2 = tmp_path / "v2"
    shutil.copytree(bundle_dir, v2)
    doc = json.loads((v2 / "model.json").read_text())
    (v2 / "model.json").write_text(json.dumps({**doc, "version": "2"}))
    watch.submit(rows, len(rows))  # queued for version 1, answered before the swap
    watch.prepare(Predictor(load_bundle(v2)), v2)
    watch.install()
    assert _scrape(watch) == {}  # version 1's gauges are gone at once
    assert watch.tick(time.monotonic() + 1.0) is None  # its queued rows are not version 2's
    assert watch.watched is not None and watch.watched.window.size == 0
    _, same = reference_rows(v2)
    watch.submit(same, len(same))
    assert watch.tick(time.monotonic() + 1.0) is not None
    gauges = _scrape(watch)
    assert {k[2] for k in gauges} == {"2"} and not any(drifted(gauges).values())


def test_with_workers_the_newest_result_of_a_live_worker_of_the_same_version_shows(
    tmp_path: Path, bundle_dir: Path
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    watch = _watch(_settings(tmp_path), bundle_dir, shared)
    _, rows = reference_rows(bundle_dir, shift={"s1": 1.0})
    watch.submit(rows, len(rows))
    mine = watch.tick(time.monotonic() + 1.0)
    assert mine is not None and (shared / f"drift-{os.getpid()}.json").is_file()
    assert watch.shown() == mine

    def other(pid: int, version: str, later: float) -> LiveResult:
        doc = {**mine.to_dict(), "version": version, "computed_at": mine.computed_at + later}
        doc["window_rows"] = 123
        (shared / f"drift-{pid}.json").write_text(json.dumps(doc))
        return LiveResult.from_dict(doc)

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    other(int(dead.stdout), "1", 100.0)  # newer, but its worker is gone
    other(os.getppid(), "0", 200.0)  # newer, alive, but another version (not reloaded yet)
    assert watch.shown() == mine
    newer = other(os.getppid(), "1", 50.0)
    assert watch.shown() == newer
    assert _scrape(watch)[("regressops_drift_window_rows", "diabetes", "1", "", "")] == 123
    watch.close()
    assert not (shared / f"drift-{os.getpid()}.json").exists()


def test_the_app_exports_the_gauges_and_drops_them_on_reload(
    tmp_path: Path, bundle_dir: Path
) -> None:
    served = tmp_path / "served"
    shutil.copytree(bundle_dir, served)
    names, rows = reference_rows(served, copies=2, shift={"s5": 0.5})
    with make_client(_settings(tmp_path), served) as client:
        assert client.post("/batch", json={"data": rows.tolist()}).status_code == 200
        gauges: dict[tuple[str, ...], float] = {}
        deadline = time.monotonic() + 30
        while not gauges and time.monotonic() < deadline:
            time.sleep(0.05)
            gauges = drift_gauges(client.get("/metrics").text)
        assert drifted(gauges) == {n: n == "s5" for n in names}
        doc = json.loads((served / "model.json").read_text())
        (served / "model.json").write_text(json.dumps({**doc, "version": "2"}))
        reply = client.post("/admin/reload")
        assert reply.status_code == 200 and reply.json()["version"] == "2"
        assert drift_gauges(client.get("/metrics").text) == {}


def test_no_gauges_when_off_or_without_a_reference(
    tmp_path: Path, bundle_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _, rows = reference_rows(bundle_dir, shift={"bmi": 1.0})
    plain = tmp_path / "plain"
    make_bundle(plain, version="1")  # no reference.json
    for model, serve in ((bundle_dir, {"drift": False}), (plain, {})):
        with caplog.at_level(logging.INFO), make_client(_settings(tmp_path, **serve), model) as c:
            state = c.app.state.serving  # type: ignore[attr-defined]
            assert (state.drift is None) == (serve == {"drift": False})
            assert c.post("/batch", json={"data": rows.tolist()}).status_code == 200
            # nothing is watched, so no row was queued and no computation can ever run
            assert state.drift is None or state.drift.watched is None
            assert drift_gauges(c.get("/metrics").text) == {}
    lines = [r.getMessage() for r in caplog.records if "live drift off" in r.getMessage()]
    assert len(lines) == 1 and "holds no drift reference" in lines[0] and "retrain" in lines[0]


def test_a_categorical_model_is_watched_from_its_columns(tmp_path: Path) -> None:
    from helpers.bundles import insurance_columns

    path = tmp_path / "insurance"
    make_bundle(path, dataset="insurance", version="1")
    add_reference(path, dataset="insurance")
    columns, _ = insurance_columns()
    columns["smoker"] = ["yes"] * len(columns["smoker"])  # everyone smokes now
    with make_client(_settings(tmp_path), path) as client:
        records = [
            dict(zip(columns, values, strict=True))
            for values in zip(*columns.values(), strict=True)
        ]
        assert client.post("/batch", json={"data": records}).status_code == 200
        gauges: dict[tuple[str, ...], float] = {}
        deadline = time.monotonic() + 30
        while not gauges and time.monotonic() < deadline:
            time.sleep(0.05)
            gauges = drift_gauges(client.get("/metrics").text)
    verdict = drifted(gauges)
    assert verdict.pop("smoker") is True and not any(verdict.values()), gauges
    methods = {k[3]: k[4] for k in gauges if k[0] == "regressops_feature_drifted"}
    assert methods["smoker"] == "jensenshannon" and methods["age"] == "wasserstein"
    assert np.isfinite(list(gauges.values())).all()
