"""The pieces of the MLflow-free run writer that need no store: when it applies, the context tags
MLflow would add, the requirements and signature it writes, the names it refuses, its errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from regressops.config import Settings, TrainSettings
from regressops.errors import RegistryError
from regressops.registry.connection import store_errors
from regressops.registry.mlmodel_files import NotDirect, pip_requirements, signature
from regressops.registry.run_writer import check_names, run_context_tags
from regressops.registry.store_writer import may_write_directly


@pytest.mark.parametrize(
    ("uri", "register", "direct", "expected"),
    [
        ("sqlite:///{home}/mlflow.db", False, True, True),
        ("postgresql+psycopg://u@h/db", False, True, True),
        ("sqlite:///{home}/none.db", False, True, False),  # no store yet: MLflow creates it
        ("sqlite:///{home}/mlflow.db", True, True, False),  # registering needs MLflow
        ("sqlite:///{home}/mlflow.db", False, False, False),  # train.direct_tracking = false
        ("http://127.0.0.1:5000", False, True, False),  # a tracking server
        ("file:///tmp/mlruns", False, True, False),
    ],
)
def test_when_a_run_may_be_written_directly(
    uri: str, register: bool, direct: bool, expected: bool, tmp_path: Path
) -> None:
    (tmp_path / "mlflow.db").touch()
    settings = Settings(home=tmp_path, train=TrainSettings(direct_tracking=direct))
    uri = uri.format(home=tmp_path)
    assert may_write_directly(uri, register=register, settings=settings) is expected


def test_mlflow_settings_that_change_the_model_files_keep_mlflow(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "mlflow.db").touch()
    settings, uri = Settings(home=tmp_path), f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_LOCK_MODEL_DEPENDENCIES", "true")
    assert not may_write_directly(uri, register=False, settings=settings)
    monkeypatch.setenv("MLFLOW_LOCK_MODEL_DEPENDENCIES", "false")
    assert may_write_directly(uri, register=False, settings=settings)
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert not may_write_directly(uri, register=False, settings=settings)


@pytest.mark.parametrize("user", [None, "alice"])
def test_context_tags_are_mlflows_default_run_context(
    user: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking.context.default_context import DefaultRunContext

    if user is None:
        monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    else:
        monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    assert run_context_tags() == DefaultRunContext().tags()


def test_requirements_as_mlflow_writes_them() -> None:
    from mlflow.utils.environment import _process_pip_requirements

    ours = ["numpy==2.4.6", "scikit-learn==1.9.1", "numpy==2.4.6"]
    _, theirs, _ = _process_pip_requirements([], ours)
    assert pip_requirements(ours) == theirs  # mlflow pinned first, the repeat dropped
    with pytest.raises(NotDirect):
        pip_requirements(["numpy==2.4.6", "numpy==2.4.5"])
    with pytest.raises(NotDirect):
        pip_requirements(["numpy>=2"])


def test_signature_as_mlflow_infers_it() -> None:
    from mlflow.models import infer_signature

    example = pd.DataFrame({
        "x": [1.0, np.nan, 3.0],
        "c": pd.Series(["a", None, "b"]).astype(str),
        "d": pd.Series(["a", "b", "b"]).astype(str),
    })  # fmt: skip
    predictions = np.array([0.5, 1.5, 2.5])
    assert signature(example, predictions) == infer_signature(example, predictions).to_dict()
    with pytest.raises(NotDirect, match="column 'n'"):
        signature(pd.DataFrame({"n": [1, 2]}), predictions[:2])  # not cast to float64 first


@pytest.mark.parametrize("name", ["ok.name", "with space", "a/b", "colon:ok"])
def test_names_mlflow_accepts(name: str) -> None:
    check_names([name])


@pytest.mark.parametrize("name", ["bad!", "../up", "/abs", "a//b", "x" * 251])
def test_names_mlflow_refuses_leave_the_run_to_mlflow(name: str) -> None:
    with pytest.raises(NotDirect):
        check_names([name])


def test_store_errors_read_like_mlflows() -> None:
    import sqlalchemy as sa

    with pytest.raises(RegistryError) as caught, store_errors("logging the run to sqlite:///x"):
        raise sa.exc.OperationalError("INSERT", {}, Exception("database is locked\nmore"))
    assert caught.value.message == (
        "logging the run to sqlite:///x: (builtins.Exception) database is locked"
    )
    assert caught.value.reason == "registry_error"
    with pytest.raises(RegistryError) as caught, store_errors("logging the run to x"):
        raise PermissionError(13, "Permission denied")
    assert caught.value.message.startswith("logging the run to x is unavailable: PermissionError")
    with pytest.raises(KeyError), store_errors("x"):  # a bug is not a store error
        raise KeyError("k")
