"""Every optional dependency maps to the extra that installs it, for the one-line error."""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

from regressops.errors import MissingExtraError
from regressops.extras import MODULE_EXTRAS, missing_extra

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _extras() -> dict[str, list[str]]:
    doc = tomllib.loads(PYPROJECT.read_text())
    return dict(doc["project"]["optional-dependencies"])


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower()


def _core() -> set[str]:
    return {_name(r) for r in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]}


@pytest.mark.parametrize("extra", ["serve", "train", "dask", "prefect"])
def test_each_requirement_of_an_extra_is_mapped_to_it(extra: str) -> None:
    modules_of: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(re.sub(r"[-_.]+", "-", dist).lower(), set()).add(module)
    for requirement in _extras()[extra]:
        name = _name(requirement)
        if name == "regressops":  # train = [serve] + more
            continue
        if name in _core():  # only narrows the version of a core dependency (a cap, no module)
            continue
        modules = modules_of[re.sub(r"[-_.]+", "-", name)]
        assert any(MODULE_EXTRAS.get(m) == extra for m in modules), (requirement, modules)


def test_all_is_every_extra() -> None:
    extras = _extras()
    (everything,) = extras["all"]
    assert set(everything.partition("[")[2].rstrip("]").split(",")) == set(extras) - {"all"}


def test_only_missing_modules_of_extras_become_the_one_line_error() -> None:
    err = missing_extra(ModuleNotFoundError("No module named 'sqlalchemy'", name="sqlalchemy"))
    assert isinstance(err, MissingExtraError) and err.exit_code == 2
    assert "pip install 'regressops[serve]'" in err.message
    deep = ModuleNotFoundError("No module named 'mlflow.store'", name="mlflow.store")
    assert "regressops[train]" in str(missing_extra(deep, "models list"))
    assert missing_extra(ModuleNotFoundError("x", name="fastapi")) is None  # core: broken install
    assert missing_extra(ModuleNotFoundError("no name")) is None
    assert missing_extra(ValueError("sklearn")) is None
