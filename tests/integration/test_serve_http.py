"""A real uvicorn server: headers, the tritonclient V2 client, and schemathesis on our OpenAPI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from helpers.bundles import make_bundle
from helpers.servers import ServerProcess
from regressops.models.bundle import ModelBundle

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


@pytest.fixture(scope="module")
def diabetes(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ModelBundle]]:
    root = tmp_path_factory.mktemp("serve-http")
    bundle = make_bundle(root / "diabetes")
    server = ServerProcess(root / "diabetes", root / "home").wait_ready()
    yield server, bundle
    server.stop()


@pytest.fixture(scope="module")
def insurance(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ModelBundle]]:
    root = tmp_path_factory.mktemp("serve-ins")
    bundle = make_bundle(root / "insurance", dataset="insurance")
    server = ServerProcess(root / "insurance", root / "home", prediction_log="off").wait_ready()
    yield server, bundle
    server.stop()


def test_real_server_headers(diabetes: tuple[ServerProcess, ModelBundle]) -> None:
    server, bundle = diabetes
    r = httpx.post(f"{server.url}/stream", json={"data": ROW}, headers={"X-Request-ID": "t-1"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "t-1"
    assert "server" not in r.headers  # no banner
    assert r.headers["x-content-type-options"] == "nosniff"
    record = dict(zip(bundle.spec.names, ROW, strict=True))
    assert r.json()["prediction"] == pytest.approx(float(bundle.predict_records([record])[0]))
    r = httpx.get(f"{server.url}/healthz")
    assert "server" not in r.headers and r.headers["x-request-id"]


def test_tritonclient_tensor_form(diabetes: tuple[ServerProcess, ModelBundle]) -> None:
    server, bundle = diabetes
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("diabetes") and client.is_model_ready("diabetes", "1")
        assert not client.is_model_ready("other")
        assert client.get_server_metadata()["name"] == "regressops"
        meta = client.get_model_metadata("diabetes")
        assert meta["versions"] == ["1"] and meta["outputs"][0]["name"] == "predict"
        X = np.array([ROW, [v * 2 for v in ROW], [0.0] * 10], dtype=np.float64)
        for dtype, datatype in ((np.float64, "FP64"), (np.float32, "FP32")):
            inp = triton.InferInput("input-0", list(X.shape), datatype)
            inp.set_data_from_numpy(X.astype(dtype), binary_data=False)
            out = triton.InferRequestedOutput("predict", binary_data=False)
            result = client.infer("diabetes", [inp], outputs=[out], request_id="req-9")
            expected = bundle.predict_matrix(
                bundle.spec.transform_rows(X.astype(dtype).astype(float))
            )
            np.testing.assert_allclose(result.as_numpy("predict"), expected, rtol=1e-9)
            assert result.get_response()["id"] == "req-9"
        # no outputs requested: the client asks for binary outputs; JSON comes back all the same
        result = client.infer("diabetes", [inp], model_version="1")
        assert result.as_numpy("predict").shape == (3,)
        with pytest.raises(InferenceServerException, match="unknown model 'nope'"):
            client.infer("nope", [inp])
        bad = triton.InferInput("input-0", [1, 9], "FP64")
        bad.set_data_from_numpy(np.zeros((1, 9)), binary_data=False)
        with pytest.raises(InferenceServerException, match=r"shape must be \[N, 10\]"):
            client.infer("diabetes", [bad])
        binary = triton.InferInput("input-0", [1, 10], "FP64")
        binary.set_data_from_numpy(np.zeros((1, 10)), binary_data=True)
        with pytest.raises(InferenceServerException, match="binary_data=False"):
            client.infer("diabetes", [binary])
    finally:
        client.close()


def test_tritonclient_per_column_bytes(insurance: tuple[ServerProcess, ModelBundle]) -> None:
    server, bundle = insurance
    records = [
        {
            "age": 19.0,
            "sex": "female",
            "bmi": 27.9,
            "children": 0.0,
            "smoker": "yes",
            "region": "southwest",
        },
        {
            "age": 50.0,
            "sex": "male",
            "bmi": 30.1,
            "children": 2.0,
            "smoker": "no",
            "region": "northeast",
        },
    ]
    inputs = []
    for f in bundle.spec.features:
        values = [r[f.name] for r in records]
        if f.kind == "categorical":
            t = triton.InferInput(f.name, [2], "BYTES")
            t.set_data_from_numpy(np.array(values, dtype=object), binary_data=False)
        else:
            t = triton.InferInput(f.name, [2], "FP64")
            t.set_data_from_numpy(np.array(values, dtype=np.float64), binary_data=False)
        inputs.append(t)
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    try:
        result = client.infer(
            "insurance",
            inputs,
            outputs=[triton.InferRequestedOutput("predict", binary_data=False)],
            parameters={"content_type": "pd"},
        )
        np.testing.assert_allclose(
            result.as_numpy("predict"), bundle.predict_records(records), rtol=1e-9
        )
    finally:
        client.close()


def test_schemathesis_finds_no_server_errors(
    diabetes: tuple[ServerProcess, ModelBundle], tmp_path: Path
) -> None:
    """Schemathesis fuzzes every operation of our own /openapi.json: no 5xx, and statuses,
    content types and bodies exactly as documented."""
    checks = ",".join(
        (
            "not_a_server_error",
            "status_code_conformance",
            "content_type_conformance",
            "response_schema_conformance",
        )
    )
    cmd = [
        str(Path(sys.executable).with_name("st")), "run", f"{diabetes[0].url}/openapi.json",
        "--checks", checks, "--max-examples", "15", "--seed", "7", "--no-color",
        "--report-dir", str(tmp_path),
    ]  # fmt: skip
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    paths = httpx.get(f"{diabetes[0].url}/openapi.json").json()["paths"]
    n = sum(1 for item in paths.values() for method in item if method in ("get", "post"))
    assert f"{n} operations" in out.stdout or f"Tested: {n}" in out.stdout, out.stdout[-3000:]
