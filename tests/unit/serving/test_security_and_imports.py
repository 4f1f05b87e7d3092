"""Keys, request ids, bind warnings; the serving path imports neither sklearn, pandas nor mlflow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from regressops.serving.security import ApiKeyGuard, bind_warning, is_loopback, request_id


def test_api_key_guard() -> None:
    guard = ApiKeyGuard(["alpha", "beta"])
    assert guard.enabled and not ApiKeyGuard([]).enabled
    assert guard.check(b"beta", None)
    assert guard.check(None, b"Bearer alpha") and guard.check(None, b"bearer  alpha")
    assert not guard.check(b"alph", None) and not guard.check(None, b"Basic alpha")
    assert not guard.check(None, None) and not guard.check(b"", None)
    assert guard.is_open("/healthz") and guard.is_open("/docs-assets/x.js")
    assert not guard.is_open("/stream") and not guard.is_open("/admin/reload")


def test_request_ids() -> None:
    assert request_id(b"trace-01:ab") == "trace-01:ab"
    for bad in (None, b"", b"has space", b"x" * 129, b"\xff\xfe"):
        rid = request_id(bad)
        assert len(rid) == 32 and rid != bad
    assert request_id(None) != request_id(None)


def test_bind_warning() -> None:
    assert bind_warning("127.0.0.1", []) is None and bind_warning("::1", []) is None
    assert bind_warning("0.0.0.0", ["k"]) is None
    assert "without API keys" in (bind_warning("0.0.0.0", []) or "")
    assert is_loopback("localhost") and is_loopback("127.0.0.5") and not is_loopback("10.0.0.1")


def test_serving_a_linear_model_imports_no_sklearn_pandas_or_mlflow(
    diabetes_bundle: tuple[Path, Any], tmp_path: Path
) -> None:
    code = f"""
import json, sys
from pathlib import Path
from starlette.testclient import TestClient
from regressops.config import Settings
from regressops.serving.app import create_app
from regressops.serving import server  # the module `regressops serve` runs
app = create_app(Settings(home=Path({str(tmp_path)!r})), model={str(diabetes_bundle[0])!r})
with TestClient(app) as c:
    statuses = [
        c.post("/stream", json={{"data": [0.0] * 10}}).status_code,
        c.post("/invocations", json={{"instances": [[0.0] * 10]}}).status_code,
        c.get("/model-check").status_code,
        c.get("/metrics").status_code,
        c.get("/openapi.json").status_code,
    ]
heavy = sorted(m for m in ("sklearn", "pandas", "mlflow", "scipy") if m in sys.modules)
print(json.dumps({{"statuses": statuses, "heavy": heavy}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [200, 200, 200, 200, 200]
    assert result["heavy"] == []
