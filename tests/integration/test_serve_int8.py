"""A ``linear-int8`` bundle served by a real uvicorn server: the same endpoints, the int8
model's own predictions (within the bound of the float model's), numpy only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from helpers.bundles import make_bundle
from helpers.servers import ServerProcess
from regressops.models.bundle import ModelBundle, load_bundle
from regressops.models.quantize import error_bound, quantize_bundle

PEOPLE = [
    {"age": 19.0, "sex": "female", "bmi": 27.9, "children": 0.0, "smoker": "yes",
     "region": "southwest"},
    {"age": 52.0, "sex": "male", "bmi": 31.2, "children": 2.0, "smoker": "no",
     "region": "northeast"},
]  # fmt: skip


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ServerProcess, ModelBundle, ModelBundle]]:
    root = tmp_path_factory.mktemp("serve-int8")
    float_bundle = make_bundle(root / "float", dataset="insurance")
    quantize_bundle(float_bundle, granularity="per-feature").save(root / "int8")
    server = ServerProcess(root / "int8", root / "home", prediction_log="off").wait_ready()
    yield server, float_bundle, load_bundle(root / "int8")
    server.stop()


def test_int8_bundle_answers_every_protocol(
    served: tuple[ServerProcess, ModelBundle, ModelBundle],
) -> None:
    server, float_bundle, int8 = served
    expected = int8.predict_records(PEOPLE)
    r = httpx.post(f"{server.url}/batch", json={"data": PEOPLE})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-12)
    r = httpx.post(f"{server.url}/stream", json={"data": PEOPLE[0]})
    assert r.json()["prediction"] == pytest.approx(float(expected[0]), rel=1e-12)
    r = httpx.post(f"{server.url}/invocations", json={"dataframe_records": PEOPLE})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["predictions"], expected, rtol=1e-12)
    # what quantising cost on these rows is within the bound
    assert int8.quantized is not None
    X = float_bundle.spec.transform_records(PEOPLE)
    diff = np.abs(expected - float_bundle.predict_records(PEOPLE))
    assert np.all(diff <= error_bound(int8.quantized, X) + 1e-9)


def test_model_check_names_the_int8_kind(
    served: tuple[ServerProcess, ModelBundle, ModelBundle],
) -> None:
    server, _, _ = served
    body = httpx.get(f"{server.url}/model-check").json()
    assert body["kind"] == "linear-int8" and body["status"] == "ready"


def test_bad_input_to_an_int8_model_is_a_4xx(
    served: tuple[ServerProcess, ModelBundle, ModelBundle],
) -> None:
    server, _, _ = served
    r = httpx.post(f"{server.url}/batch", json={"data": [{**PEOPLE[0], "age": "old"}]})
    assert r.status_code == 422 and "age" in r.json()["message"]


def test_serving_an_int8_model_imports_no_sklearn_pandas_or_mlflow(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "float")
    quantize_bundle(bundle).save(tmp_path / "int8")
    code = f"""
import json, sys
from pathlib import Path
from starlette.testclient import TestClient
from regressops.config import Settings
from regressops.serving.app import create_app
app = create_app(Settings(home=Path({str(tmp_path / "home")!r})), model={str(tmp_path / "int8")!r})
with TestClient(app) as c:
    statuses = [
        c.post("/stream", json={{"data": [0.01] * 10}}).status_code,
        c.get("/model-check").status_code,
        c.get("/model-check", headers={{"Accept": "text/html"}}).status_code,
    ]
heavy = sorted(m for m in ("sklearn", "pandas", "mlflow", "scipy") if m in sys.modules)
print(json.dumps({{"statuses": statuses, "heavy": heavy}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {"statuses": [200, 200, 200], "heavy": []}
