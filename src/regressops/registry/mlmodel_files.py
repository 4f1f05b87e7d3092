"""The MLflow model directory of a regressops bundle, written without importing MLflow.

:func:`write_model_dir` lays a model out exactly as MLflow 3.17's ``mlflow.pyfunc.log_model(
loader_module="regressops.registry.pyfunc", data_path=<bundle>, signature=infer_signature(example,
predictions), input_example=example, pip_requirements=model_requirements())`` does
(:func:`regressops.registry.tracking.log_bundle_model`):

- ``data/bundle/`` — the bundle, copied with its file modes;
- ``input_example.json`` (the example rows, pandas ``split`` orient without the index) and
  ``serving_input_example.json`` (the same under ``dataframe_split``, indented);
- ``MLmodel`` — the pyfunc flavour naming our loader module, the signature (a column spec per
  feature, a float64 tensor out), the input example's info, ``model_id``/``model_uuid``,
  ``run_id``, ``artifact_path``, ``mlflow_version``, ``utc_time_created`` and
  ``model_size_bytes`` (the size of ``data/`` and the examples, measured before ``MLmodel`` is
  written, as MLflow does);
- ``requirements.txt``, ``conda.yaml`` and ``python_env.yaml`` for the pinned requirements.

Each field follows MLflow 3.17's own code (``mlflow/models/model.py``, ``models/utils.py``,
``types/utils.py``, ``pyfunc/__init__.py``, ``utils/environment.py``); the compatibility tests
compare the files with the ones MLflow writes. An example this module does not know how MLflow
would describe raises :class:`NotDirect`, and the caller logs through MLflow instead.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import json
import os
import platform
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.registry.pyfunc import BUNDLE_SUBPATH

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

LOADER_MODULE = "regressops.registry.pyfunc"
EXAMPLE_FILE = "input_example.json"
SERVING_EXAMPLE_FILE = "serving_input_example.json"
_BUILD_PACKAGES = ("pip", "setuptools", "wheel")


class NotDirect(Exception):
    """This run cannot be written without MLflow (exactly as MLflow would): use MLflow."""


def mlflow_version() -> str:
    """The installed MLflow's version, read from its metadata (MLflow is not imported)."""
    return importlib.metadata.version("mlflow")


def write_model_dir(
    path: Path,
    *,
    bundle_dir: Path,
    example: pd.DataFrame | None,
    predictions: np.ndarray | None,
    requirements: list[str],
    model_id: str,
    run_id: str,
    artifact_location: str,
) -> None:
    """Write the MLflow model directory of ``bundle_dir`` at ``path`` (created).

    Parameters
    ----------
    path : Path
        The model directory to create.
    bundle_dir : Path
        The saved bundle (copied to ``data/bundle``).
    example : DataFrame, optional
        The input example (:func:`~regressops.registry.tracking.example_frame`); without one the
        model has no signature and no example files, as under MLflow.
    predictions : ndarray, optional
        The bundle's predictions of ``example`` (the signature's output).
    requirements : list of str
        Pinned pip requirements.
    model_id, run_id : str
        The logged model and the run it belongs to.
    artifact_location : str
        The logged model's artefact URI (``MLmodel``'s ``artifact_path``).

    Raises
    ------
    NotDirect
        The example holds a column type this module does not describe as MLflow would.
    """
    doc: dict[str, Any] = {
        "artifact_path": artifact_location,
        "flavors": {
            "python_function": {
                "code": None,
                "data": BUNDLE_SUBPATH,
                "env": {"conda": "conda.yaml", "virtualenv": "python_env.yaml"},
                "loader_module": LOADER_MODULE,
                "python_version": platform.python_version(),
                "streamable": False,
            }
        },
        "mlflow_version": mlflow_version(),
        "model_id": model_id,
        "model_uuid": model_id,
        "prompts": None,
        "run_id": run_id,
        "utc_time_created": str(dt.datetime.now(dt.UTC).replace(tzinfo=None)),
    }
    if example is not None:
        assert predictions is not None
        doc["signature"] = signature(example, predictions)
        doc["is_signature_from_type_hint"] = False
        doc["type_hint_from_example"] = False
    path.mkdir(parents=True)
    shutil.copytree(bundle_dir, path / BUNDLE_SUBPATH, ignore=shutil.ignore_patterns("__pycache__"))
    if example is not None:
        doc["saved_input_example_info"] = _write_examples(path, example)
    if size := _total_size(path):
        doc["model_size_bytes"] = size
    _write_yaml(path / "MLmodel", doc)
    reqs = pip_requirements(requirements)
    conda = {
        "name": "mlflow-env",
        "channels": ["conda-forge"],
        "dependencies": [f"python={platform.python_version()}", _pip_dependency(), {"pip": reqs}],
    }
    _write_yaml(path / "conda.yaml", conda)
    (path / "requirements.txt").write_text("\n".join(reqs))
    python_env = {
        "python": platform.python_version(),
        "build_dependencies": [_pinned(p) for p in _BUILD_PACKAGES],
        "dependencies": ["-r requirements.txt"],
    }
    _write_yaml(path / "python_env.yaml", python_env, sort_keys=False)


def pip_requirements(requirements: list[str]) -> list[str]:
    """The requirements as MLflow writes them: ``mlflow`` pinned first when absent, duplicates
    dropped (an exact repeat; anything subtler raises :class:`NotDirect`)."""
    out: list[str] = []
    names: set[str] = set()
    for req in requirements:
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([A-Za-z0-9.+!_-]+)", req)
        if match is None:
            raise NotDirect(f"requirement {req!r} is not a plain pin")
        name = re.sub(r"[-_.]+", "-", match[1]).lower()
        if name in names:
            if req in out:
                continue
            raise NotDirect(f"requirement {match[1]!r} is pinned twice")
        names.add(name)
        out.append(req)
    if not names & {"mlflow", "mlflow-skinny", "mlflow-tracing"}:
        out.insert(0, f"mlflow=={mlflow_version()}")
    return out


def signature(example: pd.DataFrame, predictions: np.ndarray) -> dict[str, str | None]:
    """``MLmodel``'s signature as ``infer_signature(example, predictions)`` writes it."""
    import numpy as np

    inputs = []
    for name in example.columns:
        column = example[name]
        missing = bool(column.isna().any())
        if column.dtype == np.float64:
            kind = "double"
        elif _is_text(column):
            kind = "string"
        else:
            raise NotDirect(f"example column {name!r} of dtype {column.dtype}")
        inputs.append({"type": kind, "name": str(name), "required": not missing})
    if not isinstance(predictions, np.ndarray) or predictions.dtype.kind != "f":
        raise NotDirect(f"predictions of type {type(predictions).__name__}")
    shape = [-1, *predictions.shape[1:]]
    outputs = [{"type": "tensor", "tensor-spec": {"dtype": str(predictions.dtype), "shape": shape}}]
    return {"inputs": json.dumps(inputs), "outputs": json.dumps(outputs), "params": None}


def _is_text(column: pd.Series) -> bool:
    """A string column with at least one value, every value text or missing."""
    import pandas as pd

    values = column.dropna().tolist()
    return (
        bool(pd.api.types.is_string_dtype(column))
        and bool(values)
        and all(isinstance(v, str) for v in values)
    )


def _write_examples(path: Path, example: pd.DataFrame) -> dict[str, str]:
    """``input_example.json`` and ``serving_input_example.json``; the ``MLmodel`` info."""
    split = example.where(example.notnull(), None).to_dict(orient="split")
    del split["index"]
    (path / EXAMPLE_FILE).write_text(json.dumps(split, default=_plain))
    serving = json.dumps({"dataframe_split": split}, default=_plain, indent=2)
    (path / SERVING_EXAMPLE_FILE).write_text(serving)
    return {
        "artifact_path": EXAMPLE_FILE,
        "type": "dataframe",
        "pandas_orient": "split",
        "serving_input_path": SERVING_EXAMPLE_FILE,
    }


def _plain(value: Any) -> Any:
    """numpy scalars and arrays as Python values (MLflow's ``NumpyEncoder`` for our types)."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _total_size(path: Path) -> int:
    return sum(
        os.path.getsize(os.path.join(root, name))
        for root, _, files in os.walk(path)
        for name in files
    )


def _pip_dependency() -> str:
    try:
        return f"pip<={importlib.metadata.version('pip')}"
    except importlib.metadata.PackageNotFoundError:
        return "pip"


def _pinned(package: str) -> str:
    try:
        return f"{package}=={importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:
        return package


def _write_yaml(path: Path, doc: dict[str, Any], *, sort_keys: bool = True) -> None:
    import yaml

    with path.open("w") as out:
        yaml.safe_dump(doc, out, default_flow_style=False, sort_keys=sort_keys)
