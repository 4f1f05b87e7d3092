"""One answer from every path: the CLI's predict and every API protocol take, ignore and refuse
the same inputs, and refuse them with the same message."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from helpers.bundles import make_bundle
from regressops import cli
from regressops.config import Settings
from regressops.serving.app import create_app

runner = CliRunner()
OVERFLOW = "the prediction for record 0 is not a finite number"


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("answer") / "model"
    make_bundle(path)
    return path


@pytest.fixture
def api(model: Path, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(Settings(home=tmp_path / "h"), model=str(model), prediction_log="off")
    with TestClient(app, client=("127.0.0.1", 5000)) as client:
        yield client


def _record(model: Path, **changes: Any) -> dict[str, Any]:
    names = json.loads((model / "model.json").read_text())["feature_spec"]["features"]
    return {**{f["name"]: 0.01 for f in names}, **changes}


def _protocols(record: dict[str, Any]) -> list[tuple[str, Any]]:
    numeric = {k: v for k, v in record.items() if isinstance(v, float)}
    split = {"columns": list(record), "data": [list(record.values())]}
    return [
        ("/stream", {"data": record}),
        ("/batch", {"data": [record]}),
        ("/predict", [record]),
        ("/invocations", {"dataframe_records": [record]}),
        ("/invocations", {"dataframe_split": split}),
        ("/v2/models/diabetes/infer", {"inputs": [
            {"name": k, "shape": [1], "datatype": "FP64", "data": [v]} for k, v in numeric.items()
        ] + [
            {"name": k, "shape": [1], "datatype": "BYTES", "data": [v]}
            for k, v in record.items() if k not in numeric
        ]}),
    ]  # fmt: skip


def _message(body: dict[str, Any]) -> str:
    return str(body.get("message") or body.get("error"))


def _cli_predict(tmp_path: Path, model: Path, record: dict[str, Any]) -> tuple[int, str, Path]:
    src, dst = tmp_path / "in.csv", tmp_path / "out.csv"
    pd.DataFrame([record]).to_csv(src, index=False)
    result = runner.invoke(
        cli.app, ["predict", "--model", str(model), "--input", str(src), "--output", str(dst)]
    )
    return result.exit_code, result.stderr, dst


def test_an_overflowing_row_is_refused_by_the_cli_and_every_protocol(
    api: TestClient, model: Path, tmp_path: Path
) -> None:
    record = _record(model, bmi=1e308)
    code, stderr, dst = _cli_predict(tmp_path, model, record)
    assert code == 3 and stderr.strip().splitlines() == [f"error: {OVERFLOW}; its inputs are "
                                                         "far outside the range the model was "
                                                         "trained on"], stderr  # fmt: skip
    assert not dst.exists()
    for path, body in _protocols(record):
        r = api.post(path, json=body)
        assert 400 <= r.status_code < 500 and _message(r.json()).startswith(OVERFLOW), (
            path,
            r.text,
        )


def test_a_column_that_is_not_a_feature_is_ignored_by_the_cli_and_every_protocol(
    api: TestClient, model: Path, tmp_path: Path
) -> None:
    plain = _record(model)
    expected = api.post("/stream", json={"data": plain}).json()["prediction"]
    code, stderr, dst = _cli_predict(tmp_path, model, {**plain, "note": "unrelated"})
    assert code == 0, stderr
    written = pd.read_csv(dst)
    assert written["note"].tolist() == ["unrelated"]  # kept in the output, not used
    assert written["prediction"].tolist() == pytest.approx([expected])
    for path, body in _protocols({**plain, "note": "unrelated"}):
        r = api.post(path, json=body)
        assert r.status_code == 200, (path, r.text)
        doc = r.json()
        got = doc.get("prediction") or (doc.get("predictions") or doc["outputs"][0]["data"])
        assert (got if isinstance(got, list) else [got]) == pytest.approx([expected]), path
    csv = pd.DataFrame([{**plain, "note": "unrelated"}]).to_csv(index=False)
    r = api.post("/invocations", content=csv, headers={"Content-Type": "text/csv"})
    assert r.status_code == 200 and r.json()["predictions"] == pytest.approx([expected]), r.text
    r = api.post("/invocations", content=b"", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and r.json()["message"] == "the CSV body is empty"
    # one record under "data" is one record on every seed endpoint (as /stream takes it)
    for path in ("/batch", "/predict"):
        r = api.post(path, json={"data": plain})
        assert r.status_code == 200 and r.json()["predictions"] == pytest.approx([expected])
    # a missing feature is refused by both (a misspelt name cannot go unnoticed)
    missing = {k: v for k, v in plain.items() if k != "bmi"}
    code, stderr, _ = _cli_predict(tmp_path, model, {**missing, "bmii": 0.01})
    assert code == 3 and "bmi" in stderr
    r = api.post("/batch", json={"data": [{**missing, "bmii": 0.01}]})
    assert r.status_code == 422 and "missing feature(s) ['bmi']" in r.json()["message"]
