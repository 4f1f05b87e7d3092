"""The MLflow pyfunc flavour of a regressops bundle: ``mlflow models serve`` on our own bundle.

A model logged by :func:`regressops.registry.tracking.log_training_run` is an MLflow model whose
pyfunc flavour names this module as its ``loader_module`` and the bundle directory as its data
(``<model>/data/bundle``). MLflow calls :func:`_load_pyfunc`, which loads the bundle with
:func:`regressops.models.bundle.load_bundle` — JSON for linear kinds, skops with our trusted-type
list for trees — so no pickle is involved anywhere (unlike a ``python_model`` instance, which
MLflow would cloudpickle). Predictions are the bundle's own: the same feature spec, the same
numbers as ``regressops serve``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from regressops.models.bundle import ModelBundle, load_bundle

#: Where the bundle sits inside a logged MLflow model directory.
BUNDLE_SUBPATH = "data/bundle"


class BundlePyfunc:
    """What MLflow's ``PyFuncModel`` wraps: a loaded bundle with ``predict``.

    Parameters
    ----------
    bundle : ModelBundle
        The loaded bundle.
    """

    def __init__(self, bundle: ModelBundle) -> None:
        self.bundle = bundle

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        """Predict a DataFrame (or mapping of columns) of raw features.

        Parameters
        ----------
        model_input : DataFrame, dict of columns, or list of records
            The features named in the bundle's spec; missing values are imputed as in
            :meth:`ModelBundle.predict_frame`.
        params : dict, optional
            Unused; accepted for MLflow's interface.

        Returns
        -------
        ndarray of shape (n_rows,)
        """
        if isinstance(model_input, list):
            return self.bundle.predict_records(model_input)
        return self.bundle.predict_frame(model_input)


def _load_pyfunc(data_path: str) -> BundlePyfunc:
    """MLflow's loader-module entry point: load the bundle at ``data_path``."""
    return BundlePyfunc(load_bundle(Path(data_path)))
