"""Model cards and int8 models in a real MLflow registry (SQLite store in a temporary home).

Every registered version gets its card as the MLflow description; the server serving it from
the registry shows the same card as HTML. A ``linear-int8`` bundle is logged, gated (against
its float model), registered and loaded back through MLflow's pyfunc like any model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from helpers.registry import diabetes_split, train_and_log
from regressops.config import GateSettings, Settings, get_settings
from regressops.models.bundle import load_bundle
from regressops.models.quantize import quantize_bundle
from regressops.registry.cards import CARD_TAG
from regressops.registry.connection import active_tracking, connect
from regressops.registry.resolve import load_registered_bundle
from regressops.registry.tracking import RunRecord, log_training_run
from regressops.serving.app import create_app
from regressops.training.gates import evaluate_gates
from regressops.training.promotion import promote_version, register_and_promote


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    home = tmp_path_factory.mktemp("home")
    settings = Settings(home=home, gates=GateSettings(min_r2=0.0, min_improvement=-0.5))
    uri = settings.resolved_tracking_uri
    return {"settings": settings, "uri": uri, "client": connect(uri), "home": home}


def _register(store: dict[str, Any], run: Any, bundle: Any, report: Any, name: str) -> tuple:
    _, test = diabetes_split()
    return register_and_promote(
        store["client"], store["uri"], name, model_uri=run.model_uri, run_id=run.run_id,
        model_id=run.model_id, bundle=bundle, eval_frame=test, report=report,
        settings=store["settings"],
    )  # fmt: skip


def test_every_registered_version_carries_its_card(
    store: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings, client, name = store["settings"], store["client"], "carded"
    run1, b1, r1 = train_and_log(settings, store["uri"], name=name, features=("bmi", "bp"))
    v1, change1, _ = _register(store, run1, b1, r1, name)
    assert change1 is not None
    card1 = client.get_model_version(name, v1).description
    assert card1.startswith(f"# {name} v{v1} (linear)")
    assert "No champion was replaced" in card1 and "## Gates" in card1
    assert f"regressops serve --model models:/{name}/{v1}" in card1

    run2, b2, _ = train_and_log(settings, store["uri"], name=name)
    v2, change2, _ = _register(store, run2, b2, None, name)
    assert change2 is not None and change2.previous == v1
    mv2 = client.get_model_version(name, v2)
    card2 = mv2.description
    assert f"champion replaced (v{v1})" in card2 and "| beats\\_champion | pass |" in card2
    assert "status: @champion" in card2
    assert CARD_TAG in mv2.tags and len(card2) <= 5000

    # the server, serving the champion from the registry, shows the same card as HTML
    monkeypatch.setenv("REGRESSOPS_HOME", str(store["home"]))
    get_settings.cache_clear()  # the resolver reads the (cached) settings of this home
    bundle = load_registered_bundle(f"models:/{name}@champion")
    assert bundle.extra["card"]
    with TestClient(create_app(settings, model=f"models:/{name}@champion")) as c:
        page = c.get("/model-check", headers={"Accept": "text/html"}).text
        assert f"<h1>{name} v{v2} (linear)</h1>" in page
        assert f"champion replaced (v{v1})" in page and "<td>beats_champion</td>" in page
        assert c.get("/model-check").json()["version"] == v2

    # a forced promotion rewrites the card with its reason
    promote_version(name, v1, force=True, why="incident 7", settings=settings)
    assert "@champion (forced: incident 7)" in client.get_model_version(name, v1).description


def test_an_int8_model_is_logged_gated_registered_and_loaded_like_any_model(
    store: dict[str, Any],
) -> None:
    import mlflow

    settings, client, name = store["settings"], store["client"], "int8-reg"
    _run, float_bundle, _ = train_and_log(settings, store["uri"], name=name)
    _, test = diabetes_split()
    q = quantize_bundle(float_bundle)
    path = q.save(settings.models_dir / f"{name}-int8")
    report = evaluate_gates(q, test, settings=settings, reference=float_bundle)
    checks = {c.name: c for c in report.checks}
    assert checks["quantization_r2_drop"].passed and checks["quantization_bound"].passed
    assert (checks["quantization_r2_drop"].value or 0.0) <= 0.001
    q.metrics = dict(report.candidate["metrics"])
    logged = log_training_run(
        RunRecord(bundle=q, bundle_dir=path, dataset="diabetes", eval_frame=test,
                  gate_report=report.to_dict()),
        uri=store["uri"], client=client, settings=settings,
    )  # fmt: skip
    version, change, _ = _register(store, logged, q, report, name)
    assert change is not None
    mv = client.get_model_version(name, version)
    assert mv.tags["regressops.kind"] == "linear-int8"
    assert "symmetric int8 (per-tensor scale" in mv.description
    assert "quantization\\_bound" in mv.description
    # through MLflow's pyfunc (mlflow models serve uses the same loader)
    with active_tracking(store["uri"]):
        model = mlflow.pyfunc.load_model(f"models:/{name}/{version}")
    np.testing.assert_allclose(
        model.predict(test[q.spec.names].astype(float)), q.predict_frame(test), rtol=1e-12
    )
    resolved = load_bundle(path)
    assert resolved.kind == "linear-int8" and resolved.quantized is not None
