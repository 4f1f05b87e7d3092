"""Live drift gauges of a real ``regressops serve`` process, on one worker and on two."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from helpers.bundles import make_bundle
from helpers.drift import add_reference, drift_gauges, drifted, reference_rows
from helpers.servers import ServerProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("served") / "diabetes"
    make_bundle(path, version="1")
    add_reference(path)
    return path


def _scrape(url: str) -> dict[tuple[str, ...], float]:
    # a new connection each time, so with several workers any of them may answer
    reply = httpx.get(f"{url}/metrics", headers={"Connection": "close"}, timeout=10)
    assert reply.status_code == 200
    return drift_gauges(reply.text)


def _wait_until_settled(shared: Path, deadline: float, quiet: float = 1.0) -> None:
    """Wait until no worker has rewritten its drift result for ``quiet`` seconds (over three
    computation intervals of 0.3 s): each has judged every row it received."""

    def state() -> set[tuple[str, int]]:
        return {(f.name, f.stat().st_mtime_ns) for f in shared.glob("drift-*.json")}

    seen, since = state(), time.monotonic()
    while time.monotonic() - since < quiet:
        assert time.monotonic() < deadline, "the workers' drift results kept changing"
        time.sleep(0.05)
        now = state()
        if now != seen:
            seen, since = now, time.monotonic()


@pytest.mark.parametrize("workers", [1, 2])
def test_the_shifted_feature_and_only_it_shows_drifted_on_metrics(
    tmp_path: Path, bundle_dir: Path, workers: int
) -> None:
    shared = tmp_path / "metrics"  # the workers' shared metrics folder, to see who computed
    shared.mkdir()
    server = ServerProcess(
        bundle_dir,
        tmp_path / "home",
        workers=workers,
        prediction_log="off",
        env={
            "REGRESSOPS_SERVE__DRIFT_INTERVAL_SECONDS": "0.3",
            "REGRESSOPS_SERVE__DRIFT_WINDOW_ROWS": str(442 * 100),  # whole copies only
            "PROMETHEUS_MULTIPROC_DIR": str(shared),
        },
    ).wait_ready()
    names, rows = reference_rows(bundle_dir, shift={"bmi": 0.5})

    def post(seed: int) -> int:
        # whole copies of the reference per request, so each worker's window holds the
        # reference's marginals exactly; bmi moved by 0.5 std
        _, rows = reference_rows(bundle_dir, shift={"bmi": 0.5}, seed=seed)
        return httpx.post(
            f"{server.url}/batch", json={"data": rows.tolist()},
            headers={"Connection": "close"}, timeout=30,
        ).status_code  # fmt: skip

    try:
        deadline = time.monotonic() + 60
        with ThreadPoolExecutor(4) as pool:  # concurrent requests reach every worker
            seed = 0
            while len(list(shared.glob("drift-*.json"))) < workers:
                assert time.monotonic() < deadline, server.output()
                assert set(pool.map(post, range(seed, seed + 8))) == {200}
                seed += 8
                time.sleep(0.5)
        gauges: dict[tuple[str, ...], float] = {}
        while not gauges and time.monotonic() < deadline:
            time.sleep(0.1)
            gauges = _scrape(server.url)
        assert drifted(gauges) == {n: n == "bmi" for n in names}, server.output()
        score = gauges[("regressops_feature_drift_score", "diabetes", "1", "bmi", "wasserstein")]
        assert score == pytest.approx(0.5, rel=1e-9)
        window = gauges[("regressops_drift_window_rows", "diabetes", "1", "", "")]
        assert window > 0 and window % len(rows) == 0
        _wait_until_settled(shared, deadline)  # every worker has judged what it got
        seen = [_scrape(server.url) for _ in range(6)]
        # one value per label set whichever worker answers: the newest result of a live worker
        values = {tuple(sorted(s.items())) for s in seen}
        assert len(values) == 1, values
        assert np.isfinite(list(seen[0].values())).all()
    finally:
        assert server.stop() in (0, -15), server.output()
    assert list(shared.glob("drift-*.json")) == []  # each worker withdrew its result
