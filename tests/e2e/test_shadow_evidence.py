"""A challenger in shadow proves itself on labelled rows, as a user runs it.

Train a weak champion (v1) and a better model (v2), roll back to v1 so v2 waits aside; serve
v1 with v2 in shadow (`regressops serve --shadow` on 127.0.0.1); post rows to /predict and their
true values to /feedback; `regressops monitor` reports both models on the same labelled rows
(checked against metrics recomputed from the log and the labels); `models promote --evidence`
refuses evidence of too few rows or of another version in one line, then promotes v2.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from helpers.servers import free_port
from regressops.serving.log.reader import iter_log_rows
from regressops.training.metrics import regression_metrics

REGRESSOPS = Path(sys.executable).parent / "regressops"
NAMES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]

pytestmark = pytest.mark.slow


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    return env | {"REGRESSOPS_HOME": str(home), "REGRESSOPS_CONFIG": "none", "COLUMNS": "200"}


def cli(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REGRESSOPS), *args], env=env_for(home), capture_output=True, text=True, timeout=300
    )


def one_line(done: subprocess.CompletedProcess[str], code: int) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code and len(lines) == 1, (done.returncode, done.stderr)
    assert "Traceback" not in done.stderr
    return lines[0]


def serve(home: Path, *args: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [str(REGRESSOPS), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        env=env_for(home),
        stdout=(home / "server.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, (home / "server.out").read_text()
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise AssertionError((home / "server.out").read_text())


def test_the_shadow_challenger_is_compared_on_labelled_rows_and_promoted_on_that_evidence(
    tmp_path: Path,
) -> None:
    from sklearn.datasets import load_diabetes

    home = tmp_path / "home"
    train = ("train", "-d", "diabetes", "--register", "--no-plots", "--cv", "0")
    weak = cli(*train, "--model", "ridge", "--alpha", "300", home=home)
    assert weak.returncode == 0 and "registered diabetes v1" in weak.stdout, weak.stderr
    strong = cli(*train, "--model", "linear", home=home)
    assert strong.returncode == 0 and "diabetes v2" in strong.stdout, strong.stderr
    back = cli("models", "rollback", "diabetes", "--reason", "v2 must prove itself", home=home)
    assert back.returncode == 0 and "back on v1" in back.stdout, back.stderr

    proc, url = serve(
        home, "--model", "models:/diabetes@champion", "--shadow", "models:/diabetes/2"
    )
    data = load_diabetes()
    rng = np.random.default_rng(7)
    picked = rng.choice(len(data.target), 120, replace=False)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for i, part in enumerate(np.array_split(picked, 6)):
                records = [dict(zip(NAMES, data.data[j].tolist(), strict=True)) for j in part]
                r = client.post(
                    "/predict", json={"data": records}, headers={"X-Request-ID": f"q{i}"}
                )
                assert r.status_code == 200 and r.json()["version"] == "1", r.text
                labels = [
                    {"request_id": f"q{i}", "row": k, "label": float(data.target[j])}
                    for k, j in enumerate(part)
                ]
                if i == 0:
                    labels.append({"request_id": "never-logged", "row": 0, "label": 1.0})
                f = client.post("/feedback", json=labels)
                assert f.status_code == 200 and f.json()["accepted"] == len(labels), f.text
            bad = client.post("/feedback", json=[{"request_id": "q0", "row": -1, "label": 1}])
            assert bad.status_code == 422
    finally:
        proc.send_signal(signal.SIGTERM)  # the shadow's queue, then the log, drain before exit
        proc.wait(60)

    out = tmp_path / "monitor"
    done = cli("monitor", "--model", "models:/diabetes@champion", "-o", str(out), home=home)
    assert done.returncode == 0, done.stderr
    assert "challenger diabetes v2 in shadow on 120 labelled rows" in done.stdout
    perf = json.loads((out / "drift.json").read_text())["performance"]
    # recompute both models' metrics from the logged predictions and the posted labels
    rows = list(iter_log_rows(None, home))
    served = {
        (r["request_id"], r["row"]): r["prediction"] for r in rows if r["model_version"] == "1"
    }
    shadow = {
        (r["request_id"], r["row"]): r["prediction"] for r in rows if r["model_version"] == "2"
    }
    keys = [
        (f"q{i}", k) for i, part in enumerate(np.array_split(picked, 6)) for k in range(len(part))
    ]
    y = np.array([data.target[j] for j in picked])
    champion_m = regression_metrics(y, np.array([served[k] for k in keys]))
    shadow_m = regression_metrics(y, np.array([shadow[k] for k in keys]))
    assert perf["rows_labelled"] == 120 and perf["labels_unmatched"] == 1
    sh = perf["shadow"]
    assert sh["model_version"] == "2" and sh["rows_labelled"] == 120
    assert sh["champion"]["model_version"] == "1"
    for metric in ("r2", "rmse", "mse", "mae"):
        assert perf[metric] == pytest.approx(champion_m[metric], rel=1e-9)
        assert sh["champion"][metric] == pytest.approx(champion_m[metric], rel=1e-9)
        assert sh[metric] == pytest.approx(shadow_m[metric], rel=1e-9)
    assert sh["better_than_champion"] is True and sh["rmse"] < sh["champion"]["rmse"]
    assert "Challenger in shadow" in (out / "report.html").read_text()

    # bad evidence: one line and an exit code, nothing moved
    few = tmp_path / "few"
    done = cli(
        "monitor", "--model", "models:/diabetes@champion", "--last", "10", "-o", str(few), home=home
    )
    assert done.returncode == 0, done.stderr
    line = one_line(
        cli("models", "promote", "diabetes", "2", "--evidence", str(few / "drift.json"), home=home),
        7,
    )
    assert "too few labelled rows in the evidence: 10 < monitor.min_labelled_rows 30" in line
    line = one_line(
        cli("models", "promote", "diabetes", "1", "--evidence", str(out / "drift.json"), home=home),
        2,
    )
    assert "is about diabetes v2 in shadow, not diabetes v1" in line
    line = one_line(
        cli(
            "models",
            "promote",
            "diabetes",
            "2",
            "--evidence",
            str(tmp_path / "nope.json"),
            home=home,
        ),
        2,
    )
    assert "cannot read the evidence" in line

    done = cli(
        "models", "promote", "diabetes", "2", "--evidence", str(out / "drift.json"), home=home
    )
    assert done.returncode == 0 and "diabetes v2 is now @champion (was v1)" in done.stdout, (
        done.stderr
    )
    listed = cli("models", "list", "diabetes", "--json", home=home)
    versions = {r["version"]: r for r in json.loads(listed.stdout)}
    assert versions["2"]["aliases"] == ["champion"]
    from mlflow import MlflowClient

    from regressops.config import Settings

    uri = Settings(home=home).resolved_tracking_uri  # both URIs: a registry URI another test
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # set would win otherwise
    tags = client.get_model_version("diabetes", "2").tags
    evidence = json.loads(tags["regressops.evidence"])
    assert evidence["rows_labelled"] == 120 and evidence["champion_version"] == "1"
    last = json.loads(tags["regressops.history"].splitlines()[-1])
    assert last["event"] == "champion" and last["evidence"]["model_version"] == "2"
    assert last["why"].startswith("shadow evidence: v2 rmse")
