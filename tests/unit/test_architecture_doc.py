"""docs/architecture.md's module map names every module of the package, and every module it
names exists: the map cannot fall behind the code."""

from __future__ import annotations

import re
from pathlib import Path

import regressops

PACKAGE = Path(regressops.__file__).parent
DOC = Path(__file__).parents[2] / "docs" / "architecture.md"


def _map() -> str:
    text = DOC.read_text(encoding="utf-8")
    return text[text.index("## Module map") : text.index("## Contracts")]


def test_every_module_is_in_the_map() -> None:
    section = _map()
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.name == "__init__.py" and rel.parent != Path("cli"):
            continue
        if f"`{rel.as_posix()}`" not in section and f"`{rel.name}`" not in section:
            missing.append(rel.as_posix())
    assert not missing, f"add these modules to the module map of docs/architecture.md: {missing}"


def test_every_module_the_map_names_exists() -> None:
    names = set(re.findall(r"`([\w/]+\.py)`", _map()))
    known = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py")}
    basenames = {Path(k).name for k in known}
    assert names and not [n for n in names if n not in known and Path(n).name not in basenames]
