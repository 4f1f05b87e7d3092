"""skops bundles: round trip, and refusal of anything but our known scikit-learn types."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from regressops.errors import BundleError
from regressops.features import FeatureSpec
from regressops.models.bundle import load_bundle
from regressops.models.catalog import make_estimator, save_bundle, to_bundle
from regressops.models.skops_io import TRUSTED_TYPES


@pytest.fixture
def tree_bundle(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    X = {"a": rng.normal(size=100), "b": rng.normal(size=100)}
    spec = FeatureSpec.fit(X)
    est = make_estimator("tree", random_state=0).fit(spec.transform(X), X["a"] * 2 + X["b"])
    return save_bundle(to_bundle("tree", est, name="t", spec=spec), tmp_path / "tree")


def test_tree_bundle_holds_no_pickle_and_loads_in_a_fresh_process(tree_bundle: Path) -> None:
    import subprocess
    import sys

    doc = json.loads((tree_bundle / "model.json").read_text())
    assert doc["artifact_format"] == "skops" and doc["artifact"] == "model.skops"
    assert not list(tree_bundle.glob("*.pkl")) and not list(tree_bundle.glob("*.joblib"))
    code = (
        "import sys; from regressops.models.bundle import load_bundle; "
        f"b = load_bundle({str(tree_bundle)!r}); "
        "print(type(b.estimator).__name__, 'mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["DecisionTreeRegressor", "False"]


def _replace_artifact(bundle: Path, obj: object) -> None:
    sio.dump(obj, bundle / "model.skops")


def test_untrusted_function_is_refused(tree_bundle: Path) -> None:
    from sklearn.preprocessing import FunctionTransformer

    _replace_artifact(tree_bundle, FunctionTransformer(func=os.system))
    with pytest.raises(
        BundleError, match=r"types regressops does not trust: \['posix.system'\]"
    ) as e:
        load_bundle(tree_bundle)
    assert e.value.reason == "untrusted_types"


def test_a_trusted_but_wrong_estimator_is_refused(tree_bundle: Path) -> None:
    from sklearn.linear_model import LinearRegression

    _replace_artifact(tree_bundle, LinearRegression().fit([[0.0, 1.0], [1.0, 0.0]], [0.0, 1.0]))
    with pytest.raises(BundleError, match="holds a LinearRegression, but kind 'tree' expects"):
        load_bundle(tree_bundle)


def test_forest_file_under_a_tree_kind_is_refused(tmp_path: Path, tree_bundle: Path) -> None:
    forest = make_estimator("forest", {"n_estimators": 2}).fit([[0.0, 1.0], [1.0, 0.0]], [0, 1])
    _replace_artifact(tree_bundle, forest)
    with pytest.raises(BundleError, match="holds a RandomForestRegressor"):
        load_bundle(tree_bundle)


def test_corrupt_missing_and_escaping_artifacts_are_refused(tree_bundle: Path) -> None:
    (tree_bundle / "model.skops").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match=r"cannot read model\.skops as a skops file"):
        load_bundle(tree_bundle)
    doc = json.loads((tree_bundle / "model.json").read_text())
    doc["artifact"] = "../../etc/passwd"
    (tree_bundle / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="points outside the bundle"):
        load_bundle(tree_bundle)
    doc["artifact"] = "gone.skops"
    (tree_bundle / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match=r"artefact 'gone\.skops' is missing"):
        load_bundle(tree_bundle)


def test_kind_that_is_not_a_skops_kind_is_refused(tree_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tree_bundle, copy)
    doc = json.loads((copy / "model.json").read_text())
    doc["kind"] = "svm"
    (copy / "model.json").write_text(json.dumps(doc))
    with pytest.raises(BundleError, match="kind 'svm' is not a skops kind"):
        load_bundle(copy)


def test_trusted_list_is_exactly_what_our_kinds_need() -> None:
    needed: set[str] = set()
    for kind in ("tree", "forest", "hgb"):
        params = (
            {"n_estimators": 2} if kind == "forest" else {"max_iter": 3} if kind == "hgb" else {}
        )
        est = make_estimator(kind, params).fit(np.arange(40.0).reshape(20, 2), np.arange(20.0))
        needed |= set(sio.get_untrusted_types(data=sio.dumps(est)))
    assert needed == TRUSTED_TYPES
