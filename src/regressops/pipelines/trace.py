"""From a prediction back to the rows that trained its model (``regressops trace REQUEST_ID``).

Every arrow of the loop leaves a record; this walks them backwards:

1. the prediction log holds the request's rows, predictions and the model version that
   answered (:func:`~regressops.serving.log.reader.request_log_rows`);
2. that version's bundle — the registry cache ``<home>/cache/models/NAME/VERSION/``, the
   registry itself for ``models:/NAME/VERSION``, or a local bundle ``<home>/models/NAME`` of that
   version — names its training run and carries ``lineage.json``;
3. the lineage names the lake table and version trained on, the validation report, and the
   source database, table and query the rows were extracted from (password redacted).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from regressops.config import Settings, get_settings
from regressops.errors import DataError, RegressopsError
from regressops.redact import redact_text

logger = logging.getLogger(__name__)

_LINEAGE_KEYS = (
    "dataset", "source", "clean_table", "clean_version", "raw_table", "raw_version",
    "validation_report", "validation_status", "quarantined_rows", "source_url", "source_table",
    "source_query", "source_params", "extracted_at", "content_hash", "rows", "split",
)  # fmt: skip


@dataclass
class TraceResult:
    """What a request's predictions came from."""

    request_id: str
    rows: list[dict[str, Any]]
    model: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``regressops trace --json``)."""
        return {
            "request_id": self.request_id,
            "rows": self.rows,
            "model": self.model,
            "training": self.training,
            "data": self.data,
            "notes": self.notes,
        }


def trace(
    request_id: str, *, prediction_log: str | None = None, settings: Settings | None = None
) -> TraceResult:
    """Walk back from one logged request to the model version, run, lake version and source.

    Parameters
    ----------
    request_id : str
        The ``X-Request-ID`` of the answer (also in the log's ``request_id``).
    prediction_log : str, optional
        The log's file or SQL URL (default: ``serve.prediction_log`` or the file under home).
    settings : Settings, optional
        Home and tracking store.

    Returns
    -------
    TraceResult

    Raises
    ------
    DataError
        The request id is not in the log.
    ConfigError
        The log cannot be read.
    """
    from regressops.serving.log.reader import request_log_rows

    settings = settings or get_settings()
    target = prediction_log if prediction_log is not None else settings.serve.prediction_log
    rows = request_log_rows(target, settings.home, request_id)
    if not rows:
        raise DataError(
            f"request {request_id!r} is not in the prediction log; expected the X-Request-ID "
            "of an answered prediction (see `regressops predictions`)",
            reason="not_found",
        )
    first = rows[0]
    name, version = str(first["model_name"]), str(first["model_version"])
    result = TraceResult(
        request_id=request_id,
        rows=rows,
        model={"name": name, "version": version, "endpoint": first["endpoint"], "ts": first["ts"]},
    )
    bundle_dir = _find_bundle(name, version, settings, result.notes)
    if bundle_dir is None:
        return result
    result.model["bundle"] = str(bundle_dir)
    doc = _read_json(bundle_dir / "model.json")
    registry = doc.get("registry") or {}
    result.model["kind"] = doc.get("kind")
    result.training = {
        "trained_at": doc.get("created_at"),
        "registry_uri": registry.get("uri"),
        "run_id": _run_id(name, version, settings, result.notes) if version.isdigit() else None,
        "metrics": {k: v for k, v in _read_json(bundle_dir / "metrics.json").items()
                    if k in ("r2", "rmse", "mae", "mse")},
    }  # fmt: skip
    lineage = _read_json(bundle_dir / "lineage.json")
    result.data = {k: lineage[k] for k in _LINEAGE_KEYS if k in lineage}
    if result.data.get("source_url"):
        result.data["source_url"] = redact_text(str(result.data["source_url"]))
    if not lineage:
        result.notes.append(f"the bundle at {bundle_dir} has no lineage.json")
    return result


def _find_bundle(name: str, version: str, settings: Settings, notes: list[str]) -> Path | None:
    """The bundle directory of ``name`` ``version`` (cache, registry, then local bundles)."""
    from regressops.registry.resolve import cache_dir

    cached = cache_dir(settings, name, version)
    if (cached / "model.json").is_file():
        return cached
    if version.isdigit():
        try:
            from regressops.registry.resolve import resolve_model

            return resolve_model(f"models:/{name}/{version}", settings=settings).path
        except RegressopsError as exc:
            notes.append(f"registry: {exc.message}")
    local = settings.home / "models" / name
    if str(_read_json(local / "model.json").get("version")) == version:
        return local
    notes.append(
        f"no bundle of {name} version {version} found (registry cache, registry, "
        f"{local}); the walk stops at the model"
    )
    return None


def _run_id(name: str, version: str, settings: Settings, notes: list[str]) -> str | None:
    from regressops.registry.store_reader import read_version

    found = read_version(settings.resolved_tracking_uri, name, version)
    if found is None:
        notes.append("the training run could not be read from the tracking store")
        return None
    return found.run_id


def _read_json(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}
