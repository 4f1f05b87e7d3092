"""The ceiling for the serving benchmark: a bare ASGI app doing the minimum work.

It parses the same JSON body with orjson, takes the same dot product with the same
coefficients and answers with orjson — no validation, no logging, no metrics, no framework.
Run under the same uvicorn options as the real server::

    RAW_BUNDLE=path/to/bundle uvicorn bench.serve.raw_asgi:app --loop uvloop --http httptools
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import orjson

from regressops.models.bundle import load_bundle

_bundle = load_bundle(os.environ["RAW_BUNDLE"])
_feats = _bundle.spec.features
_scale = np.array([f.scale for f in _feats])  # type: ignore[union-attr]
_center = np.array([f.center for f in _feats])  # type: ignore[union-attr]
assert _bundle.coef is not None
_W = _bundle.coef / _scale
_B = float(_bundle.intercept - _W @ _center)
_HEADERS = [(b"content-type", b"application/json")]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /stream → {"prediction"}; POST /batch → {"predictions"}."""
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif msg["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        return
    chunks = []
    more = True
    while more:
        msg = await receive()
        chunks.append(msg.get("body", b""))
        more = msg.get("more_body", False)
    body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
    data = orjson.loads(body)["data"]
    X = np.asarray(data, dtype=np.float64)
    if scope["path"] == "/stream":
        out = orjson.dumps({"prediction": float(X @ _W + _B)})
    else:
        out = orjson.dumps({"predictions": X @ _W + _B}, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": out})
