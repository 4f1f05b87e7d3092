"""``regressops monitor`` as a user runs it: train, serve with the log, post shifted rows,
monitor; the report rendered in a real headless Chromium. The same on the PostgreSQL log sink.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from helpers.browser import distinct_colours, render
from helpers.monitoring import diabetes_rows
from helpers.postgres import PG_URL, temporary_schema
from helpers.servers import ServerProcess

REGRESSOPS = Path(sys.executable).parent / "regressops"
SHIFTED = ("bmi", "s5")


def cli(
    *args: str, home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
    env |= {
        "REGRESSOPS_HOME": str(home),
        "REGRESSOPS_CONFIG": "none",
        "COLUMNS": "200",
        **extra,
    }
    return subprocess.run(
        [str(REGRESSOPS), *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    done = cli(
        "train",
        "--dataset",
        "diabetes",
        "-o",
        str(home / "bundle"),
        "--no-plots",
        "--no-track",
        home=home,
    )
    assert done.returncode == 0, done.stderr
    return home / "bundle"


def serve_and_post(bundle: Path, home: Path, prediction_log: str) -> None:
    """Serve ``bundle``, post 300 plain rows and 600 rows with bmi and s5 shifted, stop."""
    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    data = diabetes_rows()
    rng = np.random.default_rng(3)
    plain = data[rng.integers(0, len(data), 300)]
    shifted = data[rng.integers(0, len(data), 600)].copy()
    for name in SHIFTED:
        j = names.index(name)
        shifted[:, j] += 0.6 * data[:, j].std()
    server = ServerProcess(bundle, home, prediction_log=prediction_log).wait_ready()
    try:
        for part in (plain, *np.array_split(shifted, 3)):
            records = [dict(zip(names, row, strict=True)) for row in part.tolist()]
            r = httpx.post(f"{server.url}/batch", json={"data": records}, timeout=30)
            assert r.status_code == 200, r.text
    finally:
        code = server.stop()  # a clean stop writes every answered row to the log
    assert code in (0, -signal.SIGTERM), server.output()  # uvicorn re-raises the signal
    assert "prediction log flushed" in server.output()


def check_monitor(bundle: Path, home: Path, log: str, out: Path) -> dict:
    base = ["monitor", "--model", str(bundle), "--prediction-log", log]
    done = cli(*base, "-o", str(out), "--last", "600", "--fail-on", "drift", home=home)
    assert done.returncode == 0, done.stderr  # 2 of 10 features: no dataset drift
    assert "no dataset drift" in done.stdout and "bmi" in done.stdout
    doc = json.loads((out / "drift.json").read_text())
    assert doc["drifted_features"] == list(SHIFTED)
    assert doc["current"]["rows"] == 600
    assert doc["model"]["name"] == "diabetes"
    everything = cli(*base, "-o", str(out / "all"), "--json", home=home)
    assert everything.returncode == 0, everything.stderr
    assert json.loads(everything.stdout)["current"]["rows"] == 900
    return doc


def test_monitor_flags_exactly_the_shifted_features_and_the_report_renders(
    trained: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    log = tmp_path / "predictions.jsonl"
    serve_and_post(trained, home, str(log))
    doc = check_monitor(trained, home, str(log), tmp_path / "out")
    assert doc["status"] == "ok"
    shown = render(tmp_path / "out" / "report.html", tmp_path / "chromium")
    assert distinct_colours(shown.screenshot) > 50  # tables, tags and charts, not a blank page
    assert "No dataset drift" in shown.dom
    assert "2 of 10 features drifted" in shown.dom
    assert shown.requested == []  # the page asked the network for nothing


def test_the_browser_check_sees_a_page_that_requests_something(tmp_path: Path) -> None:
    page = tmp_path / "page.html"
    page.write_text("<html><body><img src='http://127.0.0.1:9/x.png'><p>x</p></body></html>")
    assert render(page, tmp_path / "chromium").requested == ["http://127.0.0.1:9/x.png"]


def test_fail_on_drift_exits_8_and_bad_input_is_one_line(trained: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    data = diabetes_rows()
    import pandas as pd

    names = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]
    frame = pd.DataFrame(data, columns=names)
    (frame + frame.std()).to_csv(tmp_path / "moved.csv", index=False)
    done = cli(
        "monitor",
        "--model",
        str(trained),
        "--current-data",
        str(tmp_path / "moved.csv"),
        "-o",
        str(tmp_path / "out"),
        "--fail-on",
        "drift",
        home=home,
    )
    assert done.returncode == 8
    assert done.stderr.strip() == "error: dataset drift"
    missing = cli(
        "monitor",
        "--model",
        str(trained),
        "--prediction-log",
        str(tmp_path / "none.jsonl"),
        "-o",
        str(tmp_path / "o2"),
        home=home,
    )
    assert missing.returncode == 2
    assert len(missing.stderr.strip().splitlines()) == 1 and "Traceback" not in missing.stderr
    assert not (tmp_path / "o2").exists()
    (tmp_path / "file").write_text("")
    unwritable = cli(
        "monitor",
        "--model",
        str(trained),
        "--current-data",
        str(tmp_path / "moved.csv"),
        "-o",
        str(tmp_path / "file" / "x"),
        home=home,
    )
    assert unwritable.returncode == 2 and "cannot write the report" in unwritable.stderr


@pytest.fixture
def pg_log() -> Iterator[str]:
    """A prediction log table in a fresh PostgreSQL schema (its URL sets the search path)."""
    with temporary_schema("regressops_monitor") as schema:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"


@pytest.mark.postgres
def test_monitor_reads_the_postgresql_log(trained: Path, tmp_path: Path, pg_log: str) -> None:
    home = tmp_path / "home"
    serve_and_post(trained, home, pg_log)
    check_monitor(trained, home, pg_log, tmp_path / "out")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-on", "everything"], "--fail-on takes drift or performance, not 'everything'"),
        (["--since", "yesterday"], "invalid time 'yesterday'"),
        ([], "nothing to compare with"),
    ],
)
def test_bad_options_are_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from regressops import cli as app

    result = CliRunner().invoke(app.app, ["monitor", "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_large_log_is_decoded_by_two_processes_to_the_same_report(
    trained: Path, tmp_path: Path
) -> None:
    """Above 64 MB the CLI decodes the log in two processes; drift.json is the same as one's."""
    from helpers.monitoring import log_rows
    from regressops.models.bundle import load_bundle
    from regressops.monitoring.log_fanout import MIN_BYTES

    bundle = load_bundle(trained)
    data = diabetes_rows()
    rng = np.random.default_rng(11)
    log = tmp_path / "predictions.jsonl"
    while not log.exists() or log.stat().st_size < MIN_BYTES + (4 << 20):
        rows = data[rng.integers(0, len(data), 40_000)]
        rows[:, 2] += 0.3 * data[:, 2].std()  # bmi shifted
        log_rows(log, bundle, rows, request_rows=2_000)
    home = tmp_path / "home"
    base = ["monitor", "--model", str(trained), "--prediction-log", str(log), "--json"]
    two = cli("--debug", *base, "-o", str(tmp_path / "two"), home=home)
    assert two.returncode == 0, two.stderr
    assert "a log-decoding process peaked at" in two.stderr  # a child decoded half of it
    one = cli(
        *base, "-o", str(tmp_path / "one"), home=home, env={"REGRESSOPS_MONITOR__WORKERS": "1"}
    )
    assert one.returncode == 0, one.stderr
    docs = [json.loads((tmp_path / d / "drift.json").read_text()) for d in ("one", "two")]
    for doc in docs:
        doc.pop("generated_at", None)
    assert docs[0] == docs[1]
    assert docs[0]["drifted_features"] == ["bmi"]
