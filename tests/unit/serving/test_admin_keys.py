"""Reloading is an operator's right: admin keys apart from prediction keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from regressops.config import Settings
from regressops.serving.app import create_app
from regressops.serving.security import ApiKeyGuard, admin_refusal

ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]


@pytest.mark.parametrize("api_keys", ["pred-1,pred-2", None])
def test_only_admin_keys_reload_once_set(
    tmp_path: Path, diabetes_bundle: tuple[Path, Any], api_keys: str | None
) -> None:
    settings = Settings(home=tmp_path, api_keys=api_keys, admin_keys="ops-1, ops-2")
    app = create_app(settings, model=str(diabetes_bundle[0]))
    with TestClient(app, client=("10.1.2.3", 1)) as c:  # not local: keys decide
        r = c.post("/admin/reload", headers={"X-API-Key": "pred-1"})
        if api_keys:
            assert r.status_code == 403 and r.json()["reason"] == "forbidden", r.text
            assert "REGRESSOPS_ADMIN_KEYS" in r.json()["message"]
        else:
            assert r.status_code == 401
        r = c.post("/admin/reload")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert c.post("/admin/reload", headers={"X-API-Key": "wrong"}).status_code == 401
        r = c.post("/admin/reload", headers={"X-API-Key": "ops-2"})
        assert r.status_code == 200 and r.json()["reloaded"] is True, r.text
        r = c.post("/admin/reload", headers={"Authorization": "Bearer ops-1"})
        assert r.status_code == 200
        # an admin key is not a prediction key
        r = c.post("/stream", json={"data": ROW}, headers={"X-API-Key": "ops-1"})
        assert r.status_code == (401 if api_keys else 200)
        if api_keys:
            r = c.post("/stream", json={"data": ROW}, headers={"X-API-Key": "pred-2"})
            assert r.status_code == 200
        for text in (r.text, c.get("/metrics").text):
            assert "ops-1" not in text and "pred-1" not in text


def test_without_admin_keys_reload_follows_the_api_keys(
    tmp_path: Path, diabetes_bundle: tuple[Path, Any]
) -> None:
    settings = Settings(home=tmp_path, api_keys="pred-1")
    app = create_app(settings, model=str(diabetes_bundle[0]))
    with TestClient(app, client=("10.1.2.3", 1)) as c:
        assert c.post("/admin/reload").status_code == 401
        assert c.post("/admin/reload", headers={"X-API-Key": "pred-1"}).status_code == 200


def test_admin_refusal() -> None:
    admin, api = ApiKeyGuard(["a"]), ApiKeyGuard(["p"])
    assert admin_refusal(admin, api, b"a", None) is None
    assert admin_refusal(admin, api, None, b"Bearer a") is None
    statuses = [
        refusal[0] if refusal else None
        for refusal in (
            admin_refusal(admin, api, b"p", None),
            admin_refusal(admin, api, None, b"Bearer p"),
            admin_refusal(admin, api, None, None),
            admin_refusal(admin, api, b"x", None),
            admin_refusal(admin, ApiKeyGuard([]), b"p", None),
        )
    ]
    assert statuses == [403, 403, 401, 401, 401]


def test_admin_keys_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESSOPS_ADMIN_KEYS", " ops-1 ,ops-2,")
    settings = Settings()
    assert settings.admin_key_list() == ["ops-1", "ops-2"]
    assert "ops-1" not in repr(settings)
