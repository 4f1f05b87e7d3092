"""Smoke test of a deployed regressops API: ready, describes its model, answers a prediction.

Used by the CD pipeline after each deployment (a failure rolls the deployment back); standard
library only, so it runs anywhere Python does::

    API_KEY=... python deploy/smoke_test.py --url https://staging.example.com [--expect-version 7]

Checks, in order: ``GET /readyz`` is 200 (retried while the rollout settles, up to ``--wait``
seconds); ``GET /model-check`` names a model (and ``--expect-version`` when given); ``POST
/stream`` with one record built from the model's own feature description (numeric features at
their training mean, categorical at their first category) returns a finite prediction from that
same version. Exit 0 when all pass, 1 with one line saying what failed otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from typing import Any


class SmokeTestFailed(Exception):
    """One check failed; the message says which and why."""


def _call(url: str, key: str, body: Any = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    method = "GET" if data is None else "POST"
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) checked
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if key:
        req.add_header("X-API-Key", key)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - http(s) checked
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


def wait_ready(base: str, key: str, wait: float) -> None:
    """Poll ``/readyz`` until it answers 200 or ``wait`` seconds pass."""
    deadline = time.monotonic() + wait
    last = "no answer"
    while True:
        try:
            status, _ = _call(f"{base}/readyz", key, timeout=5)
            if status == 200:
                return
            last = f"HTTP {status}"
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() >= deadline:
            raise SmokeTestFailed(f"/readyz not ready after {wait:.0f} s ({last})")
        time.sleep(2)


def example_record(features: list[dict[str, Any]]) -> dict[str, Any]:
    """A valid record from ``/model-check``'s features: means and first categories."""
    record: dict[str, Any] = {}
    for f in features:
        if f["type"] == "numeric":
            record[f["name"]] = f.get("mean") if f.get("mean") is not None else 0.0
        else:
            record[f["name"]] = (f.get("categories") or [""])[0]
    return record


def smoke_test(base: str, key: str, *, expect_version: str | None, wait: float) -> dict[str, Any]:
    """Run every check against ``base``; return what the server said.

    Raises
    ------
    SmokeTestFailed
        A check failed.
    """
    base = base.rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise SmokeTestFailed(f"--url must start with http:// or https://, got {base!r}")
    wait_ready(base, key, wait)
    status, model = _call(f"{base}/model-check", key)
    if status != 200 or not isinstance(model, dict):
        raise SmokeTestFailed(f"/model-check answered HTTP {status}")
    version = str(model.get("version"))
    if expect_version and version != expect_version:
        raise SmokeTestFailed(f"serving {model.get('name')} v{version}, expected v{expect_version}")
    record = example_record(model.get("features") or [])
    status, reply = _call(f"{base}/stream", key, {"data": record})
    if status != 200 or not isinstance(reply, dict):
        raise SmokeTestFailed(f"/stream answered HTTP {status}")
    prediction = reply.get("prediction")
    if not isinstance(prediction, int | float) or not math.isfinite(prediction):
        raise SmokeTestFailed(f"/stream returned no finite prediction: {reply!r}")
    if str(reply.get("model_version")) != version:
        raise SmokeTestFailed(
            f"/stream answered with v{reply.get('model_version')}, /model-check said v{version}"
        )
    return {"model": model.get("name"), "version": version, "prediction": prediction}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="Base URL of the API.")
    parser.add_argument("--expect-version", default="", help="Model version it must serve.")
    parser.add_argument("--wait", type=float, default=120.0, help="Seconds to wait for /readyz.")
    args = parser.parse_args(argv)
    key = os.environ.get("API_KEY", "")
    try:
        result = smoke_test(
            args.url, key, expect_version=args.expect_version or None, wait=args.wait
        )
    except SmokeTestFailed as exc:
        sys.stderr.write(f"smoke test failed: {exc}\n")
        return 1
    sys.stdout.write(f"smoke test passed: {json.dumps(result)}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
