"""The examples in the package's docstrings run, as a user would copy them."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import regressops

PACKAGE = Path(regressops.__file__).parent
MODULES = sorted(
    ".".join(("regressops", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
        ".__init__"
    )
    for p in PACKAGE.rglob("*.py")
    if ">>> " in p.read_text(encoding="utf-8")
)


def test_the_package_has_examples() -> None:
    assert len(MODULES) >= 5, MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 0, f"{name} has '>>> ' but no example ran"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"
