"""Seed endpoints, errors, limits, headers and auth through the ASGI app (in process)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from regressops.config import ServeSettings, Settings
from regressops.models.bundle import ModelBundle

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


def _record(bundle: ModelBundle, row: list[float] = ROW) -> dict[str, float]:
    return dict(zip(bundle.spec.names, row, strict=True))


def test_stream_accepts_the_three_forms(
    client: TestClient, diabetes_bundle: tuple[Path, ModelBundle]
) -> None:
    bundle = diabetes_bundle[1]
    expected = float(bundle.predict_records([_record(bundle)])[0])
    for data in (json.dumps(ROW), json.dumps([ROW]), ROW, _record(bundle), [ROW]):
        r = client.post("/stream", json={"data": data})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["prediction"] == pytest.approx(expected)
        assert body["model_version"] == "1"
        assert body["request_id"] == r.headers["x-request-id"]


def test_batch_accepts_the_three_forms(
    client: TestClient, diabetes_bundle: tuple[Path, ModelBundle]
) -> None:
    bundle = diabetes_bundle[1]
    rows = [ROW, [v / 2 for v in ROW], [0.0] * 10]
    expected = bundle.predict_records([_record(bundle, r) for r in rows]).tolist()
    records = [_record(bundle, r) for r in rows]
    for data in (json.dumps(rows), rows, records, json.dumps(records)):
        r = client.post("/batch", json={"data": data})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"] == pytest.approx(expected)


def test_predict_fails_whole_batch_or_reports_per_record(
    client: TestClient, diabetes_bundle: tuple[Path, ModelBundle]
) -> None:
    good = _record(diabetes_bundle[1])
    bad = {**good, "bp": None}
    r = client.post("/predict", json={"data": [good, bad]})
    assert r.status_code == 422
    assert r.json()["reason"] == "invalid_type" and "record 1" in r.json()["message"]
    r = client.post("/predict", json={"data": [good, bad, good], "on_error": "report"})
    assert r.status_code == 200
    body = r.json()
    assert body["version"] == "1"
    assert body["predictions"][1] is None and body["predictions"][0] == body["predictions"][2]
    assert body["errors"] == [
        {"index": 1, "reason": "invalid_type", "message": body["errors"][0]["message"]}
    ]
    assert client.post("/predict", json={"data": [good]}).json()["errors"] is None


def test_predict_takes_the_seed_clients_bare_list_of_records(
    client: TestClient, diabetes_bundle: tuple[Path, ModelBundle]
) -> None:
    bundle = diabetes_bundle[1]
    records = [_record(bundle), _record(bundle, [v / 2 for v in ROW])]
    expected = bundle.predict_records(records).tolist()
    r = client.post("/predict", json=records)
    assert r.status_code == 200, r.text
    assert r.json() == {
        "predictions": pytest.approx(expected),
        "version": "1",
        "errors": None,
    }
    assert client.post("/predict", json={"data": records}).json() == r.json()
    for body, fragment in (([], "at least one"), ({"rows": records}, "a JSON list of records")):
        bad = client.post("/predict", json=body)
        assert bad.status_code in (400, 422), bad.text
        assert fragment in bad.json()["message"]
    schema = client.get("/openapi.json").json()
    forms = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    kinds = [s.get("type") for s in forms["schema"]["oneOf"]]
    assert kinds == ["object", "array"]


@pytest.mark.parametrize(
    ("kwargs", "status", "reason", "fragment"),
    [
        ({"content": b"{not json"}, 400, "malformed_json", "not valid JSON"),
        ({"content": b'{"data": [NaN]}'}, 400, "malformed_json", "not valid JSON"),
        ({"content": b""}, 400, "malformed_json", "empty"),
        ({"json": {"rows": []}}, 400, "invalid_body", '"data" field'),
        ({"json": [1, 2]}, 400, "invalid_body", '"data" field'),
        ({"json": {"data": "[1, 2"}}, 400, "malformed_json", "not JSON text"),
        ({"json": {"data": []}}, 422, "wrong_shape", "expected 10"),
        ({"json": {"data": [1, 2, 3]}}, 422, "wrong_shape", "has 3 value(s); expected 10"),
        ({"json": {"data": [ROW, ROW]}}, 422, "invalid_shape", "send batches to /batch"),
        ({"json": {"data": {"bmi": 1}}}, 422, "missing_feature", "missing feature(s)"),
        ({"json": {"data": 5}}, 422, "invalid_shape", "got a number"),
        (
            {"content": b'{"data": [1]}', "headers": {"content-type": "text/plain"}},
            415,
            "unsupported_media_type",
            "send application/json",
        ),
    ],
)
def test_stream_errors_name_the_problem(
    client: TestClient, kwargs: dict[str, Any], status: int, reason: str, fragment: str
) -> None:
    r = client.post("/stream", **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["reason"] == reason
    assert fragment in body["message"]
    assert body["request_id"] == r.headers["x-request-id"]


def test_batch_errors(client: TestClient) -> None:
    r = client.post("/batch", json={"data": []})
    assert (r.status_code, r.json()["reason"]) == (422, "empty_batch")
    r = client.post("/batch", json={"data": [ROW, ROW[:3]]})
    assert r.status_code == 422 and "row 1 has 3 value(s)" in r.json()["message"]
    r = client.post("/batch", json={"data": [ROW, {"a": 1}]})
    assert r.status_code == 422


def test_limits_give_413(
    tmp_path: Path, diabetes_bundle: tuple[Path, ModelBundle], client_factory: Any
) -> None:
    settings = Settings(home=tmp_path, serve=ServeSettings(max_rows=3, max_body_bytes=2048))
    with client_factory(settings, diabetes_bundle[0]) as c:
        r = c.post("/batch", json={"data": [ROW] * 4})
        assert r.status_code == 413 and r.json()["reason"] == "too_many_rows"
        assert "at most 3" in r.json()["message"]
        r = c.post("/batch", content=b'{"data": "' + b" " * 4096 + b'"}')
        assert r.status_code == 413 and r.json()["reason"] == "body_too_large"
        r = c.post("/invocations", json={"instances": [ROW] * 4})
        assert r.status_code == 413 and r.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"


def test_request_id_and_hardened_headers(client: TestClient) -> None:
    r = client.post("/stream", json={"data": ROW}, headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123" and r.json()["request_id"] == "abc-123"
    r = client.post("/stream", json={"data": ROW}, headers={"X-Request-ID": "bad id\x7f" * 3})
    assert r.headers["x-request-id"] != "bad id" and len(r.headers["x-request-id"]) == 32
    for path in ("/healthz", "/model-check", "/nope", "/metrics"):
        r = client.get(path)
        assert len(r.headers["x-request-id"]) == 32
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "server" not in r.headers
    r = client.get("/nope")
    assert r.status_code == 404 and r.json()["reason"] == "not_found"
    r = client.get("/stream")
    assert r.status_code == 405 and r.headers["allow"] == "POST"


def test_model_check(client: TestClient, diabetes_bundle: tuple[Path, ModelBundle]) -> None:
    body = client.get("/model-check").json()
    assert body["status"] == "ready" and body["name"] == "diabetes" and body["version"] == "1"
    assert [f["name"] for f in body["features"]] == diabetes_bundle[1].spec.names
    assert body["features"][0]["type"] == "numeric"
    assert body["metrics"] == diabetes_bundle[1].metrics and 0.5 < body["metrics"]["r2"] < 0.53
    assert body["lineage"]["source"] == "builtin:diabetes"
    assert body["trained_at"].startswith("2025-01-01")


def test_categorical_model(ins_client: TestClient) -> None:
    rec = {
        "age": 19,
        "sex": "female",
        "bmi": 27.9,
        "children": 0,
        "smoker": "yes",
        "region": "southwest",
    }
    r = ins_client.post("/stream", json={"data": rec})
    assert r.status_code == 200 and r.json()["prediction"] > 10_000
    r = ins_client.post("/stream", json={"data": {**rec, "region": "mars"}})
    assert r.status_code == 422 and r.json()["reason"] == "unknown_category"
    body = ins_client.get("/model-check").json()
    region = next(f for f in body["features"] if f["name"] == "region")
    assert region["type"] == "categorical" and "southwest" in region["categories"]


def test_api_keys(
    tmp_path: Path, diabetes_bundle: tuple[Path, ModelBundle], client_factory: Any
) -> None:
    settings = Settings(home=tmp_path, api_keys="k1-secret, k2-secret")
    with client_factory(settings, diabetes_bundle[0]) as c:
        for path in ("/stream", "/invocations", "/v2/models/diabetes/infer"):
            r = c.post(path, json={"data": ROW})
            assert r.status_code == 401, path
            assert r.headers["www-authenticate"] == "Bearer"
        assert (
            c.post("/stream", json={"data": ROW}, headers={"X-API-Key": "wrong"}).status_code == 401
        )
        assert c.get("/model-check").status_code == 401
        assert c.post("/admin/reload").status_code == 401
        assert (
            c.post("/stream", json={"data": ROW}, headers={"X-API-Key": "k2-secret"}).status_code
            == 200
        )
        r = c.post("/stream", json={"data": ROW}, headers={"Authorization": "Bearer k1-secret"})
        assert r.status_code == 200
        for path in ("/healthz", "/readyz", "/ping", "/v2/health/live", "/v2/health/ready"):
            assert c.get(path).status_code == 200, path
        doc = c.get("/openapi.json").json()
        assert "ApiKey" in doc["components"]["securitySchemes"]
        assert "401" in doc["paths"]["/stream"]["post"]["responses"]


def test_not_ready_before_lifespan(
    settings: Settings, diabetes_bundle: tuple[Path, ModelBundle], client_factory: Any
) -> None:
    c = client_factory(settings, diabetes_bundle[0])  # not entered: the lifespan has not run
    assert c.get("/healthz").status_code == 200
    r = c.get("/readyz")
    assert r.status_code == 503 and r.json()["ready"] is False
    r = c.post("/stream", json={"data": ROW})
    assert r.status_code == 503 and r.json()["reason"] == "not_ready"
    assert c.get("/v2/health/ready").status_code == 503
    assert (
        c.post("/invocations", json={"instances": [ROW]}).json()["error_code"]
        == "TEMPORARILY_UNAVAILABLE"
    )


def test_cors_off_by_default_and_on_when_configured(
    tmp_path: Path,
    client: TestClient,
    diabetes_bundle: tuple[Path, ModelBundle],
    client_factory: Any,
) -> None:
    r = client.post("/stream", json={"data": ROW}, headers={"Origin": "https://a.example"})
    assert "access-control-allow-origin" not in r.headers
    settings = Settings(home=tmp_path, serve=ServeSettings(cors_origins=["https://a.example"]))
    with client_factory(settings, diabetes_bundle[0]) as c:
        r = c.post("/stream", json={"data": ROW}, headers={"Origin": "https://a.example"})
        assert r.headers["access-control-allow-origin"] == "https://a.example"
