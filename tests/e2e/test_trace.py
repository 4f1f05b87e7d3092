"""``regressops trace``: from a served prediction back to its model, run, lake and source."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
from typer.testing import CliRunner

from helpers.servers import ServerProcess
from regressops import cli

runner = CliRunner()
ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


def test_trace_walks_from_a_served_prediction_to_the_source_table(home: Path) -> None:
    assert runner.invoke(cli.app, ["quickstart", "--json"]).exit_code == 0
    server = ServerProcess("models:/diabetes@champion", home).wait_ready(timeout=120)
    try:
        answer = httpx.post(f"{server.url}/batch", json={"data": [ROW, ROW]}, timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        server.stop()
    rid = answer.headers["x-request-id"]
    result = runner.invoke(cli.app, ["trace", rid, "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert [r["row"] for r in doc["rows"]] == [0, 1]
    assert [r["prediction"] for r in doc["rows"]] == answer.json()["predictions"]
    assert doc["model"]["name"] == "diabetes" and doc["model"]["version"] == "1"
    assert doc["training"]["run_id"] and len(doc["training"]["run_id"]) == 32
    assert doc["data"]["dataset"] == "diabetes" and doc["data"]["source_table"] == "diabetes"
    assert doc["data"]["clean_version"] == 0 and Path(doc["data"]["validation_report"]).is_file()
    table = runner.invoke(cli.app, ["trace", rid])
    assert table.exit_code == 0 and "training run" in table.stdout
    assert doc["training"]["run_id"] in table.stdout.replace("\n", "")
    missing = runner.invoke(cli.app, ["trace", "no-such-request"])
    assert missing.exit_code == 3
    assert missing.stderr.strip().startswith("error: request 'no-such-request' is not in")
