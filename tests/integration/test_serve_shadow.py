"""A real server with a challenger in shadow, on one worker and on two."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from helpers.bundles import make_bundle
from helpers.servers import ServerProcess
from regressops.serving.log.reader import iter_log_rows

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_answered_row_gets_a_shadow_row_from_the_challenger(
    tmp_path: Path, workers: int
) -> None:
    make_bundle(tmp_path / "champion", version="1")
    make_bundle(tmp_path / "challenger", version="2", shift=3.0)
    log = tmp_path / "predictions.jsonl"
    server = ServerProcess(
        tmp_path / "champion",
        tmp_path / "home",
        workers=workers,
        prediction_log=str(log),
        env={"REGRESSOPS_SERVE__SHADOW": str(tmp_path / "challenger")},
    ).wait_ready()
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for i in range(30):
                r = client.post("/stream", json={"data": ROW}, headers={"X-Request-ID": f"q{i}"})
                assert r.status_code == 200 and r.json()["model_version"] == "1"
            r = client.post("/batch", json={"data": [ROW] * 100}, headers={"X-Request-ID": "b"})
            assert r.status_code == 200
    finally:
        server.stop()  # SIGTERM: the shadow's queue, then the log, are drained before exit
    rows = list(iter_log_rows(str(log), tmp_path / "home"))
    served = {(r["request_id"], r["row"]): r for r in rows if r["model_version"] == "1"}
    shadow = [r for r in rows if r["model_version"] == "2"]
    assert len(served) == 130 and len(shadow) == 130, server.output()
    for s in shadow:
        champion = served[(s["request_id"], s["row"])]
        assert s["endpoint"] == "shadow:" + champion["endpoint"]
        assert s["prediction"] == pytest.approx(champion["prediction"] + 3.0)


def test_serve_refuses_an_unfit_shadow_in_one_line(tmp_path: Path) -> None:
    make_bundle(tmp_path / "small", version="1", features=["bmi", "bp"])
    make_bundle(tmp_path / "full", version="2")
    regressops = Path(sys.executable).parent / "regressops"
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    env |= {"REGRESSOPS_HOME": str(tmp_path / "home"), "COLUMNS": "300"}
    env["REGRESSOPS_CONFIG"] = str(tmp_path / "absent.toml")
    args = ["serve", "--model", str(tmp_path / "small"), "--shadow", str(tmp_path / "full")]
    done = subprocess.run(
        [str(regressops), *args, "--port", "0"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: the shadow model diabetes version 2 needs feature(s) ['age'")
