"""Save and load scikit-learn tree models without pickle, through skops.

A non-linear bundle keeps its fitted estimator in ``model.skops`` (skops's zip of JSON schema and
numpy arrays), with ``"artifact_format": "skops"`` and ``"artifact": "model.skops"`` in
``model.json``. Loading never trusts what the file says about itself: the types skops reports as
untrusted must all be in :data:`TRUSTED_TYPES` (the few scikit-learn internals our tree kinds
need), and the loaded object must be an instance of the estimator class that the bundle's
``kind`` names. Anything else is refused with :class:`~regressops.errors.BundleError`.

Importing this module registers the ``"skops"`` artefact loader with
:mod:`regressops.models.bundle`; skops and scikit-learn are imported only when a file is read or
written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from regressops.errors import BundleError
from regressops.models.bundle import SKOPS_FORMAT

logger = logging.getLogger(__name__)

ARTIFACT_FORMAT = SKOPS_FORMAT
ARTIFACT_FILE = "model.skops"

#: Types beyond skops's own default-trusted set that our tree kinds contain. Nothing else is
#: accepted, whatever a file claims.
TRUSTED_TYPES: frozenset[str] = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    }
)

#: The estimator class each non-linear kind must load as (module, class name).
ESTIMATOR_CLASSES: dict[str, tuple[str, str]] = {
    "tree": ("sklearn.tree", "DecisionTreeRegressor"),
    "forest": ("sklearn.ensemble", "RandomForestRegressor"),
    "hgb": ("sklearn.ensemble", "HistGradientBoostingRegressor"),
}


def skops_writer(estimator: Any) -> Callable[[Path], dict[str, Any]]:
    """Return a ``write_artifacts`` callback for :meth:`ModelBundle.save`.

    Parameters
    ----------
    estimator : object
        A fitted scikit-learn estimator of one of the kinds in :data:`ESTIMATOR_CLASSES`.

    Returns
    -------
    callable
        ``write(tmp_dir) -> {"artifact_format": "skops", "artifact": "model.skops"}``.
    """

    def write(directory: Path) -> dict[str, Any]:
        import skops.io as sio

        sio.dump(estimator, directory / ARTIFACT_FILE)
        return {"artifact_format": ARTIFACT_FORMAT, "artifact": ARTIFACT_FILE}

    return write


def load_skops_estimator(bundle_dir: Path, model_json: Mapping[str, Any]) -> Any:
    """Load the estimator of a skops bundle, accepting only known scikit-learn types.

    Parameters
    ----------
    bundle_dir : Path
        The bundle directory.
    model_json : mapping
        The bundle's ``model.json``; ``kind`` and ``artifact`` are used.

    Returns
    -------
    object
        The fitted estimator.

    Raises
    ------
    BundleError
        Unknown kind, an artefact path outside the bundle, a missing or unreadable file, a type
        outside :data:`TRUSTED_TYPES`, or an object of another class than the kind's estimator.
    """
    kind = str(model_json.get("kind"))
    if kind not in ESTIMATOR_CLASSES:
        raise BundleError(
            f"bundle {bundle_dir}: kind {kind!r} is not a skops kind; expected one of "
            f"{sorted(ESTIMATOR_CLASSES)}",
            reason="unsupported_kind",
        )
    path = _artifact_path(bundle_dir, str(model_json.get("artifact", ARTIFACT_FILE)))
    import skops.io as sio

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:
        raise BundleError(
            f"bundle {bundle_dir}: cannot read {path.name} as a skops file ({type(exc).__name__})",
            reason="corrupt_artifact",
        ) from None
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise BundleError(
            f"bundle {bundle_dir}: {path.name} contains types regressops does not trust: "
            f"{refused}; expected only scikit-learn {kind} internals",
            reason="untrusted_types",
        )
    try:
        estimator = sio.load(path, trusted=list(untrusted))
    except Exception as exc:
        raise BundleError(
            f"bundle {bundle_dir}: cannot load {path.name}: {type(exc).__name__}: {exc}",
            reason="corrupt_artifact",
        ) from None
    expected = _estimator_class(kind)
    if type(estimator) is not expected:
        raise BundleError(
            f"bundle {bundle_dir}: {path.name} holds a {type(estimator).__name__}, but kind "
            f"{kind!r} expects {expected.__name__}",
            reason="wrong_estimator",
        )
    return estimator


def _artifact_path(bundle_dir: Path, relative: str) -> Path:
    root = bundle_dir.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise BundleError(
            f"bundle {bundle_dir}: artefact path {relative!r} points outside the bundle",
            reason="invalid_bundle",
        )
    if not path.is_file():
        raise BundleError(
            f"bundle {bundle_dir}: artefact {relative!r} is missing", reason="bundle_not_found"
        )
    return path


def _estimator_class(kind: str) -> type:
    import importlib

    module, name = ESTIMATOR_CLASSES[kind]
    cls: type = getattr(importlib.import_module(module), name)
    return cls
