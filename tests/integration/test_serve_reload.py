"""Reload without downtime (API, SIGHUP, SIGHUP to several workers); metrics across workers."""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx

from helpers.bundles import make_bundle
from helpers.servers import ServerProcess

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


class Load:
    """Bounded background load: ``threads`` clients sending ``/stream`` until stopped, or
    ``limit`` requests or ``seconds`` each; records every status and model version seen."""

    def __init__(
        self, url: str, threads: int = 3, limit: int = 50_000, seconds: float = 90
    ) -> None:
        self.url, self.limit, self.seconds = url, limit, seconds
        self.statuses: Counter[int] = Counter()
        self.versions: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run) for _ in range(threads)]

    def _run(self) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            for _ in range(self.limit):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    r = client.post("/stream", json={"data": ROW})
                    status, version = r.status_code, r.json().get("model_version", "?")
                except httpx.HTTPError:
                    status, version = -1, "?"
                with self._lock:
                    self.statuses[status] += 1
                    self.versions[version] += 1

    def answered(self) -> int:
        """Requests answered so far (any status)."""
        with self._lock:
            return sum(self.statuses.values())

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        # traffic is flowing before the test acts (not a fixed sleep: a loaded machine is slow)
        assert _wait_for(lambda: self.answered() >= 20, 60), self.statuses
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:  # and it keeps flowing after the last action
            after = self.answered() + 20
            assert _wait_for(lambda: self.answered() >= after, 60), self.statuses
        self._stop.set()
        for t in self._threads:
            t.join(30)


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _version(url: str) -> str:
    return str(httpx.get(f"{url}/readyz", timeout=5).json()["version"])


def test_reload_under_load_has_zero_failed_requests(tmp_path: Path) -> None:
    model = tmp_path / "model"
    make_bundle(model, version="1")
    server = ServerProcess(model, tmp_path / "home", prediction_log="off").wait_ready()
    try:
        with Load(server.url) as load:
            make_bundle(model, version="2", shift=10.0)
            r = httpx.post(f"{server.url}/admin/reload", timeout=10)
            assert r.status_code == 200 and r.json()["version"] == "2", r.text
            assert _wait_for(lambda: load.versions["2"] > 0), load.versions
            make_bundle(model, version="3", shift=20.0)
            server.signal(signal.SIGHUP)
            assert _wait_for(lambda: _version(server.url) == "3"), server.output()
            (model / "model.json").write_text("not json")
            r = httpx.post(f"{server.url}/admin/reload", timeout=10)
            assert (
                r.status_code == 409 and "still serving diabetes version 3" in r.json()["message"]
            )
        assert load.statuses == {200: sum(load.statuses.values())}, load.statuses
        assert set(load.versions) == {"1", "2", "3"}, load.versions
        assert _version(server.url) == "3"
    finally:
        server.stop()


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and line.split(" ")[0] != name:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_workers_share_metrics_and_roll_on_sighup(tmp_path: Path) -> None:
    model = tmp_path / "model"
    make_bundle(model, version="1")
    server = ServerProcess(model, tmp_path / "home", workers=2, prediction_log="off").wait_ready()
    server.wait_for_output("Application startup complete.", times=2)  # both workers
    try:
        for _ in range(40):  # fresh connections spread over both workers
            r = httpx.post(f"{server.url}/stream", json={"data": ROW})
            assert r.status_code == 200
        # each worker moves its counts into the shared files every second: wait for them
        assert _wait_for(
            lambda: _metric(
                httpx.get(f"{server.url}/metrics").text, "regressops_requests_total",
                endpoint="/stream", status="200",
            ) == 40
        ), httpx.get(f"{server.url}/metrics").text  # fmt: skip
        for _ in range(6):
            text = httpx.get(f"{server.url}/metrics").text
            assert (
                _metric(text, "regressops_requests_total", endpoint="/stream", status="200") == 40
            )
            assert _metric(text, "regressops_rows_predicted_total", endpoint="/stream") == 40
        with Load(server.url, threads=2) as load:
            make_bundle(model, version="2", shift=5.0)
            server.signal(signal.SIGHUP)  # forwarded to each worker, which reloads in place
            assert _wait_for(lambda: all(_version(server.url) == "2" for _ in range(6)), 60), (
                server.output()
            )
            # the load's keep-alive connections move to the new workers as the old ones stop
            assert _wait_for(lambda: load.versions["2"] > 20, 30), load.versions
        assert load.statuses == {200: sum(load.statuses.values())}, load.statuses
        assert {"1", "2"} <= set(load.versions)
    finally:
        server.stop()


def test_one_reload_of_two_workers_counts_once_and_names_the_old_version(tmp_path: Path) -> None:
    model = tmp_path / "model"
    make_bundle(model, version="1")
    server = ServerProcess(model, tmp_path / "home", workers=2, prediction_log="off").wait_ready()
    # /readyz answers once one worker is up: wait for both before the model changes
    server.wait_for_output("Application startup complete.", times=2)
    try:
        make_bundle(model, version="2", shift=5.0)
        r = httpx.post(f"{server.url}/admin/reload", timeout=30)
        assert r.status_code == 200 and r.json()["previous_version"] == "1", r.text
        assert _wait_for(lambda: all(_version(server.url) == "2" for _ in range(8)), 60), (
            server.output()
        )
        for _ in range(8):  # fresh connections: both workers answer
            last = httpx.get(f"{server.url}/model-check", timeout=5).json()["last_reload"]
            if last is None:
                # uvicorn's supervisor replaces a worker that misses its health check (a loaded
                # machine): the new worker started on version 2 and never reloaded; say so
                assert "died" in server.output(), server.output()
                continue
            assert (last["version"], last["previous_version"]) == ("2", "1"), last

        def reloads() -> float:
            text = httpx.get(f"{server.url}/metrics", timeout=5).text
            return _metric(text, "regressops_model_reloads_total", result="ok")

        assert _wait_for(lambda: reloads() >= 1, 20)
        assert reloads() == 1
    finally:
        server.stop()
