"""docs/configuration.md lists every setting of the Settings model, with its environment variable,
so the page cannot fall behind the code."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from regressops.config import Settings

DOC = Path(__file__).parents[2] / "docs" / "configuration.md"


def setting_paths(model: type[BaseModel], prefix: str = "") -> list[str]:
    """Dotted paths of every leaf setting (a nested section is walked; a mapping is one leaf)."""
    paths = []
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += setting_paths(annotation, f"{path}.")
        else:
            paths.append(path)
    return paths


def test_every_setting_is_documented_with_its_variable() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [p for p in setting_paths(Settings) if f"`{p}`" not in text]
    assert not missing, f"add these settings to docs/configuration.md: {missing}"
    no_env = [
        p
        for p in setting_paths(Settings)
        if f"REGRESSOPS_{p.upper().replace('.', '__')}" not in text
    ]
    assert not no_env, f"name the environment variable of: {no_env}"


def test_documented_settings_exist() -> None:
    import re

    known = set(setting_paths(Settings))
    rows = re.findall(r"^\| `([a-z_.]+)` \|", DOC.read_text(encoding="utf-8"), re.M)
    assert rows and not [r for r in rows if r not in known]
