"""MLflow scoring protocol, Open Inference Protocol and operations endpoints (in process)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from regressops.models.bundle import ModelBundle

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]
REC = {
    "age": 19,
    "sex": "female",
    "bmi": 27.9,
    "children": 0,
    "smoker": "yes",
    "region": "southwest",
}


@pytest.fixture
def expected(diabetes_bundle: tuple[Path, ModelBundle]) -> float:
    b = diabetes_bundle[1]
    return float(b.predict_records([dict(zip(b.spec.names, ROW, strict=True))])[0])


def test_invocations_formats(
    client: TestClient, expected: float, diabetes_bundle: tuple[Path, ModelBundle]
) -> None:
    names = diabetes_bundle[1].spec.names
    record = dict(zip(names, ROW, strict=True))
    shuffled = list(reversed(names))
    bodies = [
        {"dataframe_split": {"columns": names, "data": [ROW]}},
        {"dataframe_split": {"columns": shuffled, "data": [[record[n] for n in shuffled]]}},
        {"dataframe_records": [record]},
        {"instances": [ROW]},
        {"instances": [record]},
        {"inputs": {n: [v] for n, v in record.items()}},
        {"inputs": record, "params": {"anything": 1}},
    ]
    for body in bodies:
        r = client.post("/invocations", json=body)
        assert r.status_code == 200, (body, r.text)
        assert r.json()["predictions"] == pytest.approx([expected])
    csv = ",".join(names) + "\n" + ",".join(map(str, ROW)) + "\n"
    r = client.post(
        "/invocations", content=csv, headers={"Content-Type": "text/csv; charset=utf-8"}
    )
    assert r.status_code == 200 and r.json()["predictions"] == pytest.approx([expected], rel=1e-6)


def test_invocations_errors_do_not_echo_data(
    client: TestClient, diabetes_bundle: tuple[Path, ModelBundle]
) -> None:
    secret = 0.123456789
    r = client.post("/invocations", json={"instances": [[secret, "oops", *ROW[2:]]]})
    assert r.status_code == 400
    body = r.json()
    assert (
        set(body) == {"error_code", "message"} and body["error_code"] == "INVALID_PARAMETER_VALUE"
    )
    assert "feature 'sex' is a string" in body["message"] and "0.123456789" not in body["message"]
    r = client.post("/invocations", json={"instances": [ROW], "inputs": [ROW]})
    assert r.status_code == 400 and body["error_code"] and "exactly one of" in r.json()["message"]
    r = client.post("/invocations", json={"data": [ROW]})
    assert r.status_code == 400 and r.json()["error_code"] == "BAD_REQUEST"
    r = client.post("/invocations", content=b"{", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not valid JSON" in r.json()["message"]
    for ctype in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; format=pandas-split",
    ):
        r = client.post("/invocations", content=b"{}", headers={"Content-Type": ctype})
        assert r.status_code == 415, ctype
        assert set(r.json()) == {"error_code", "message"}
    r = client.post("/invocations", content="a,b\n1,2\n", headers={"Content-Type": "text/csv"})
    assert r.status_code == 400 and "CSV header" in r.json()["message"]
    names = diabetes_bundle[1].spec.names
    r = client.post(
        "/invocations",
        content=",".join(names) + "\n" + "x," * 9 + "1\n",
        headers={"Content-Type": "text/csv"},
    )
    assert (
        r.status_code == 400 and "CSV row 0, feature 'age' is not a number" in r.json()["message"]
    )


def test_mlflow_health(client: TestClient) -> None:
    assert client.get("/ping").status_code == 200
    assert client.get("/health").text == "\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", client.get("/version").text)


def test_v2_tensor_and_metadata(client: TestClient, expected: float) -> None:
    body = {
        "id": "req-7",
        "parameters": {"unknown": True, "binary_data_output": True},
        "inputs": [{"name": "input-0", "shape": [2, 10], "datatype": "FP32", "data": ROW + ROW}],
    }
    for path in ("/v2/models/diabetes/infer", "/v2/models/diabetes/versions/1/infer"):
        r = client.post(path, json=body)
        assert r.status_code == 200, r.text
        out = r.json()
        assert (
            out["id"] == "req-7" and out["model_name"] == "diabetes" and out["model_version"] == "1"
        )
        assert out["outputs"][0]["name"] == "predict" and out["outputs"][0]["shape"] == [2]
        assert out["outputs"][0]["datatype"] == "FP64"
        assert out["outputs"][0]["data"] == pytest.approx([expected, expected])
    nested = {"inputs": [{"name": "x", "shape": [1, 10], "datatype": "FP64", "data": [ROW]}]}
    assert client.post("/v2/models/diabetes/infer", json=nested).json()["outputs"][0][
        "data"
    ] == pytest.approx([expected])
    assert client.get("/v2").json()["name"] == "regressops"
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/models/diabetes/ready").json() == {"name": "diabetes", "ready": True}
    assert client.get("/v2/models/diabetes/versions/1/ready").status_code == 200
    meta = client.get("/v2/models/diabetes").json()
    assert meta["versions"] == ["1"] and meta["outputs"][0]["name"] == "predict"
    assert [i["name"] for i in meta["inputs"]][:2] == ["age", "sex"]
    assert meta["parameters"]["tensor_input"]["shape"] == [-1, 10]


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v2/models/nope/infer", {"inputs": []}, 404, "unknown model 'nope'"),
        ("/v2/models/diabetes/versions/9/infer", {"inputs": []}, 404, "unknown version '9'"),
        ("/v2/models/diabetes/infer", {"inputs": []}, 400, "non-empty"),
        (
            "/v2/models/diabetes/infer",
            {"inputs": [{"name": "t", "shape": [1, 9], "datatype": "FP64", "data": ROW[:9]}]},
            400,
            "shape must be [N, 10]",
        ),
        (
            "/v2/models/diabetes/infer",
            {"inputs": [{"name": "t", "shape": [2, 10], "datatype": "FP64", "data": ROW}]},
            400,
            "needs 20 values, got 10",
        ),
        (
            "/v2/models/diabetes/infer",
            {"inputs": [{"name": "t", "shape": [1, 10], "datatype": "BYTES", "data": ROW}]},
            400,
            "not a numeric tensor type",
        ),
        (
            "/v2/models/diabetes/infer",
            {"inputs": [{"name": "t", "shape": [1, 10], "datatype": "FP64", "data": ["a"] * 10}]},
            400,
            "data must be numbers",
        ),
        (
            "/v2/models/diabetes/infer",
            {
                "inputs": [{"name": "t", "shape": [1, 10], "datatype": "FP64", "data": ROW}],
                "outputs": [{"name": "proba"}],
            },
            400,
            "unknown output",
        ),
    ],
)
def test_v2_errors(
    client: TestClient, path: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    assert list(r.json()) == ["error"] and fragment in r.json()["error"]


def test_v2_metadata_errors(client: TestClient) -> None:
    r = client.get("/v2/models/other")
    assert r.status_code == 404 and "unknown model" in r.json()["error"]
    assert client.get("/v2/models/diabetes/versions/2").status_code == 404
    r = client.get("/v2/models/diabetes/infer")
    assert r.status_code == 405 and "error" in r.json()


def test_v2_per_column_with_categoricals(
    ins_client: TestClient, insurance_bundle: tuple[Path, ModelBundle]
) -> None:
    spec = insurance_bundle[1].spec
    inputs = [
        {
            "name": f.name,
            "shape": [2],
            "datatype": "BYTES"
            if f.kind == "categorical"
            else "INT64"
            if f.name != "bmi"
            else "FP64",
            "data": [REC[f.name], REC[f.name]],
        }
        for f in spec.features
    ]
    r = ins_client.post(
        "/v2/models/insurance/infer", json={"parameters": {"content_type": "pd"}, "inputs": inputs}
    )
    assert r.status_code == 200, r.text
    want = float(insurance_bundle[1].predict_records([REC])[0])
    assert r.json()["outputs"][0]["data"] == pytest.approx([want, want])
    inputs[1]["datatype"] = "FP64"
    r = ins_client.post("/v2/models/insurance/infer", json={"inputs": inputs})
    assert r.status_code == 400 and "expected BYTES" in r.json()["error"]
    r = ins_client.post(
        "/v2/models/insurance/infer",
        json={"inputs": [{"name": "t", "shape": [1, 6], "datatype": "FP64", "data": [1] * 6}]},
    )
    assert r.status_code == 400 and "categorical features" in r.json()["error"]


def test_docs_work_offline(client: TestClient) -> None:
    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html) + re.findall(
            r"https?://[^\s\"'<>]+", html
        )
        assert urls, page
        external = [u for u in urls if u.startswith(("http://", "https://", "//"))]
        assert external == [], (page, external)
        for url in urls:
            if url.startswith("/docs-assets/"):
                r = client.get(url)
                assert r.status_code == 200 and len(r.content) > 1000, url


def test_openapi_describes_every_endpoint(
    client: TestClient, diabetes_bundle: tuple[Path, ModelBundle]
) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for path in (
        "/stream", "/batch", "/predict", "/model-check", "/invocations", "/ping", "/health",
        "/version", "/v2", "/v2/health/live", "/v2/health/ready", "/v2/models/{name}",
        "/v2/models/{name}/versions/{version}", "/v2/models/{name}/ready",
        "/v2/models/{name}/versions/{version}/ready", "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer", "/healthz", "/readyz", "/metrics",
        "/admin/reload",
    ):  # fmt: skip
        assert path in paths, path
    data = paths["/batch"]["post"]["requestBody"]["content"]["application/json"]["schema"][
        "properties"
    ]["data"]
    record = data["oneOf"][1]["items"]
    assert (
        record["required"] == diabetes_bundle[1].spec.names
        and record["additionalProperties"] is False
    )
    assert data["oneOf"][0]["items"]["minItems"] == 10
    assert {"200", "400", "413", "415", "422", "503"} <= set(paths["/stream"]["post"]["responses"])
    assert "StreamResponse" in doc["components"]["schemas"]


def test_metrics(client: TestClient) -> None:
    for _ in range(3):
        client.post("/stream", json={"data": ROW})
    client.post("/batch", json={"data": [ROW] * 5})
    client.post("/stream", json={"data": [1]})
    text = client.get("/metrics").text
    assert 'regressops_requests_total{endpoint="/stream",method="POST",status="200"} 3.0' in text
    assert 'regressops_requests_total{endpoint="/stream",method="POST",status="422"} 1.0' in text
    assert 'regressops_rows_predicted_total{endpoint="/batch"} 5.0' in text
    assert 'regressops_rows_predicted_total{endpoint="/stream"} 3.0' in text
    assert "regressops_prediction_value_count 8.0" in text
    assert 'regressops_request_duration_seconds_count{endpoint="/stream"} 4.0' in text
    assert 'regressops_model_info{kind="linear",name="diabetes",version="1"} 1.0' in text
    assert "regressops_requests_in_flight" in text
