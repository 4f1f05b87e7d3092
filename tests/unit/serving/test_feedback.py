"""POST /feedback: labels for logged rows, stored beside the prediction log, read back."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from regressops.config import Settings
from regressops.serving.log.labels import labels_target, read_label_columns

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


def test_labels_for_logged_rows_land_beside_the_log(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any
) -> None:
    settings = Settings(home=tmp_path)
    with client_factory(settings, diabetes_bundle[0]) as c:
        answer = c.post("/batch", json={"data": [ROW, ROW]})
        rid = answer.headers["x-request-id"]
        labels = [{"request_id": rid, "row": 0, "label": 151.0}]
        labels.append({"request_id": rid, "row": 1, "label": 75.5})
        r = c.post("/feedback", json=labels)
        assert r.status_code == 200 and r.json() == {"accepted": 2}
        assert c.post("/feedback", json=[{"request_id": "unknown", "row": 3, "label": 1}]).json()
    target = labels_target(None, tmp_path)
    assert target == str(tmp_path / "predictions.labels.jsonl")
    got = _triples(target)
    assert got == [(rid, 0, 151.0), (rid, 1, 75.5), ("unknown", 3, 1.0)]


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"request_id": "r", "row": 0, "label": 1.0},
        [{"request_id": "r", "row": -1, "label": 1.0}],
        [{"request_id": "r", "row": 0, "label": "high"}],
        [{"request_id": "", "row": 0, "label": 1.0}],
        [{"request_id": "r", "row": 0}],
        [{"request_id": "r", "row": 0, "label": 1.0, "note": "x"}],
    ],
)
def test_malformed_feedback_is_a_422_naming_the_field(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any, body: Any
) -> None:
    with client_factory(Settings(home=tmp_path), diabetes_bundle[0]) as c:
        r = c.post("/feedback", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["reason"] == "invalid_request" and "body" in r.json()["message"]
    assert not _triples(labels_target(None, tmp_path))  # nothing half-written


def test_feedback_needs_the_same_key_as_predictions(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any
) -> None:
    settings = Settings(home=tmp_path, api_keys="k1-secret")
    label = [{"request_id": "r", "row": 0, "label": 1.0}]
    with client_factory(settings, diabetes_bundle[0]) as c:
        assert c.post("/feedback", json=label).status_code == 401
        ok = c.post("/feedback", json=label, headers={"X-API-Key": "k1-secret"})
        assert ok.status_code == 200


def test_labels_of_a_sql_log_go_to_a_table_in_its_database(
    tmp_path: Path, diabetes_bundle: Any, client_factory: Any
) -> None:
    url = f"sqlite:///{tmp_path / 'log.db'}"
    with client_factory(Settings(home=tmp_path), diabetes_bundle[0], prediction_log=url) as c:
        assert c.post("/feedback", json=[{"request_id": "r", "row": 2, "label": 9.5}]).json()
    assert _triples(url) == [("r", 2, 9.5)]


def _triples(target: str) -> list[tuple[str, int, float]]:
    """The kept labels as (request_id, row, label), oldest first."""
    cols = read_label_columns(target)
    return list(
        zip(cols.request_ids.tolist(), cols.rows.tolist(), cols.labels.tolist(), strict=True)
    )
