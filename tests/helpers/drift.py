"""Helpers for the live drift tests: a bundle's stored reference and rows drawn from it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from helpers.bundles import diabetes_columns, insurance_columns


def add_reference(bundle_dir: Path, dataset: str = "diabetes") -> None:
    """Store the drift reference of all of ``dataset``'s rows in a ``make_bundle`` bundle."""
    import pandas as pd

    from regressops.monitoring.reference import build_reference

    columns: Mapping[str, Any]
    if dataset == "diabetes":
        columns, _ = diabetes_columns()
        kinds = dict.fromkeys(columns, "numeric")
    else:
        columns, _ = insurance_columns()
        kinds = {
            n: "categorical" if n in ("sex", "smoker", "region") else "numeric" for n in columns
        }
    build_reference(pd.DataFrame(columns), kinds=kinds, source="test").save(bundle_dir)


def reference_rows(
    bundle_dir: Path, *, copies: int = 1, shift: Mapping[str, float] | None = None, seed: int = 0
) -> tuple[list[str], np.ndarray]:
    """Rows whose every numeric column holds ``copies`` copies of the stored reference sample
    (each column shuffled on its own), so their marginals equal the reference's exactly; the
    features named in ``shift`` are moved by that many reference standard deviations."""
    doc = json.loads((bundle_dir / "reference.json").read_text())
    names = list(doc["features"])
    rng = np.random.default_rng(seed)
    columns = []
    for name in names:
        profile = doc["features"][name]
        sample = np.tile(np.asarray(profile["sample"], dtype=np.float64), copies)
        column = rng.permutation(sample) + (shift or {}).get(name, 0.0) * profile["std"]
        columns.append(column)
    return names, np.column_stack(columns)


def drift_gauges(text: str) -> dict[tuple[str, ...], float]:
    """``{(metric, label values...): value}`` of the live drift series in a /metrics text."""
    from prometheus_client.parser import text_string_to_metric_families

    out: dict[tuple[str, ...], float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(("regressops_feature_drift", "regressops_dataset_drift",
                                       "regressops_drift_")):  # fmt: skip
            continue
        for s in family.samples:
            key = (
                s.name,
                *(s.labels.get(k, "") for k in ("model", "version", "feature", "method")),
            )
            out[key] = s.value
    return out


def drifted(gauges: Mapping[tuple[str, ...], float]) -> dict[str, bool]:
    """``{feature: drifted}`` from :func:`drift_gauges`' result."""
    return {k[3]: v == 1.0 for k, v in gauges.items() if k[0] == "regressops_feature_drifted"}
