"""The model card: one structure, rendered as markdown (MLflow description) and HTML (escaped)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle
from regressops.models.card import (
    CardContext,
    card_markdown,
    model_card,
    render_html,
    render_markdown,
    stored_context,
)
from regressops.models.quantize import quantize_bundle

GATES = {
    "passed": False,
    "n_rows": 89,
    "candidate": {"name": "m", "version": "2", "metrics": {"r2": 0.5, "rmse": 50.0}},
    "champion": {"name": "m", "version": "1", "metrics": {"r2": 0.45, "rmse": 53.0}},
    "checks": [
        {"name": "min_r2", "passed": True, "detail": "r2 0.5 >= 0"},
        {"name": "beats_champion", "passed": False, "detail": "rmse 50 > 49 <b>"},
        {"name": "latency", "passed": True, "skipped": True, "detail": "not run"},
    ],
}


@pytest.fixture
def bundle() -> ModelBundle:
    data = {"<script>x</script>": [1.0, 2, 3, 4], "a|b": ["p", "q", "p", "q"], "y": [1.0, 2, 3, 5]}
    spec = FeatureSpec.fit(data, target="y")
    return ModelBundle(
        name="m",
        kind="linear",
        spec=spec,
        coef=np.array([1.0, 0.5, -0.5]),
        intercept=2.0,
        metrics={"r2": 0.5, "rmse": 50.0, "mae": 40.0, "mse": 2500.0},
        lineage={"source": "lake", "dataset": "m", "clean_version": 3, "raw_version": 2,
                 "source_url": "postgresql://db/test", "source_table": "houses", "rows": 4},
        created_at="2026-11-30T00:00:00+00:00",
    )  # fmt: skip


def test_markdown_card_has_every_part(bundle: ModelBundle) -> None:
    text = render_markdown(model_card(bundle, CardContext("m", "2", GATES, "@champion")))
    for heading in ("What it predicts", "Data", "Features", "Metrics", "Gates", "How to serve"):
        assert f"## {heading}" in text
    assert text.startswith("# m v2 (linear)")
    assert "| lake clean version | 3 |" in text and "| source table | houses |" in text
    # metrics beside the champion it replaced, on the same rows
    assert "champion replaced (v1)" in text
    assert "| r2 | 0.5 | 0.45 | +0.05 |" in text and "| rmse | 50 | 53 | -3 |" in text
    assert "| beats\\_champion | FAIL | rmse 50 \\> 49 \\<b\\> |" in text
    assert "| latency | skipped |" in text
    assert "regressops serve --model models:/m/2" in text
    assert "Quality gates failed; status: @champion." in text


def test_markdown_escapes_values_from_the_data(bundle: ModelBundle) -> None:
    text = render_markdown(model_card(bundle))
    assert "\\<script\\>x\\</script\\>" in text and "<script>" not in text.split("```")[0]
    assert "| a\\|b | categorical |" in text  # a pipe cannot split the table row


def test_html_card_escapes_everything(bundle: ModelBundle) -> None:
    page = render_html(model_card(bundle, CardContext("m", "2", GATES, "@champion")))
    assert page.startswith("<!doctype html>")
    assert "<script>" not in page and "&lt;script&gt;x&lt;/script&gt;" in page
    assert "rmse 50 &gt; 49 &lt;b&gt;" in page
    assert "<td>a|b</td>" in page
    assert page.count("<table>") == 4  # data, features, metrics, gates


def test_a_local_bundle_without_registry_says_so(bundle: ModelBundle) -> None:
    text = render_markdown(model_card(bundle))
    assert text.startswith("# m local bundle (linear)")
    assert "No gate report recorded" in text and "No champion was replaced" in text
    assert "regressops serve --model PATH/TO/BUNDLE" in text


def test_an_int8_card_states_the_quantisation(bundle: ModelBundle) -> None:
    q = quantize_bundle(bundle)
    quant = {"float_r2": 0.51, "float_rmse": 49.0, "max_abs_error": 0.01, "bound_at_max": 0.03}
    q.metrics = {**bundle.metrics, "quantization": quant}
    text = render_markdown(model_card(q))
    assert "symmetric int8 (per-tensor scale, 11 bytes)" in text
    assert "largest \\|Δŷ\\| measured 0.01 (bound there 0.03)" in text


def test_a_large_card_is_shortened_to_the_registry_limit() -> None:
    cols = {f"feature_{i:03d}": [float(i), i + 1.0, i + 3.0] for i in range(300)}
    spec = FeatureSpec.fit({**cols, "y": [1.0, 2.0, 3.0]}, target="y")
    big = ModelBundle(name="wide", kind="linear", spec=spec, coef=np.ones(300))
    gates = {**GATES, "checks": [{"name": f"g{i}", "passed": True, "detail": "x" * 300}
                                  for i in range(30)]}  # fmt: skip
    full = render_markdown(model_card(big, CardContext("wide", "1", gates)))
    text = card_markdown(big, CardContext("wide", "1", gates), limit=5000)
    assert len(full) > 5000 >= len(text)
    assert "… and 295 more" in text or "card shortened" in text
    assert text.startswith("# wide v1 (linear)")


def test_context_json_round_trip_and_limit() -> None:
    ctx = CardContext("m", "2", GATES, "@champion")
    back = CardContext.from_json(ctx.to_json())
    assert (back.name, back.version, back.status) == ("m", "2", "@champion")
    assert back.gates is not None and back.gates["champion"]["metrics"]["rmse"] == 53.0
    long = {**GATES, "checks": [{"name": f"g{i}", "passed": True, "detail": "y" * 500}
                                 for i in range(40)]}  # fmt: skip
    text = CardContext("m", "2", long).to_json(limit=4800)
    assert len(text) <= 4800 and json.loads(text)["name"] == "m"
    assert CardContext.from_json("not json") == CardContext()


def test_stored_context_prefers_the_registry_card(bundle: ModelBundle) -> None:
    assert stored_context(bundle) is None
    bundle.extra["registry"] = {"name": "m", "version": "7", "uri": "sqlite:///x"}
    assert stored_context(bundle) == CardContext("m", "7")
    bundle.extra["card"] = CardContext("m", "7", GATES, "@champion").to_json()
    ctx = stored_context(bundle)
    assert ctx is not None and ctx.status == "@champion" and ctx.gates is not None
