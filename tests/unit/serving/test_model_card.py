"""``GET /model-check``: JSON by default, the model card as HTML when ``Accept`` asks for it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from regressops.serving.routes_seed import prefers_html


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("text/html", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
        ("application/json, text/html;q=0.5", False),
        ("text/html;q=0.9, application/json;q=0.2", True),
        ("text/html;q=0", False),
        ("text/html;q=abc", False),
    ],
)
def test_prefers_html(accept: str, html: bool) -> None:
    assert prefers_html(accept) is html


def test_model_check_html_card_and_json_default(ins_client: TestClient) -> None:
    r = ins_client.get("/model-check", headers={"Accept": "text/html"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.headers["vary"] == "Accept"
    page = r.text
    assert "<h1>insurance v1 (linear)</h1>" in page
    assert "<h2>Features</h2>" in page and "<td>smoker</td>" in page
    assert "<h2>How to serve it</h2>" in page
    r = ins_client.get("/model-check", headers={"Accept": "*/*"})
    assert r.headers["content-type"] == "application/json"
    assert r.json()["name"] == "insurance" and r.headers["vary"] == "Accept"
