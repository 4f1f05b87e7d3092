"""Settings are never silently wrong: unknown names, TOML syntax errors and bad values, in one line.

:mod:`regressops.config` calls these while it builds :class:`~regressops.config.Settings`:

- :func:`read_toml` reads the settings file; a syntax error names the file and line;
- :func:`unknown_names` walks a TOML document (or the ``REGRESSOPS_*__*`` environment variables)
  against the settings models and names every section or key that no setting has, with the
  closest valid name (``unknown key 'prot' in [serve]; did you mean 'port'?``);
- :func:`value_error` turns pydantic's first validation error into one line naming the setting
  and where its value came from: the environment variable, or the file and line.

Tables whose keys are free (``[datasets.NAME]``, ``[gates.directional]``) are walked only as
deep as their fixed keys; the inner keys of a declared dataset are checked by
:func:`regressops.data.declarations.check_declarations`.
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from regressops.errors import ConfigError

ENV_PREFIX = "REGRESSOPS_"


def read_toml(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``; one line naming the file and line when it is malformed."""
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}", reason="invalid_toml") from None
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the settings file: {exc.strerror}", reason="invalid_toml"
        ) from None


def suggestion(name: str, valid: typing.Iterable[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest of ``valid``, else the list of valid names."""
    options = sorted(valid)
    close = difflib.get_close_matches(name, options, n=1, cutoff=0.6)
    if close:
        return f"; did you mean {close[0]!r}?"
    return f"; expected one of: {', '.join(options)}" if options else ""


def unknown_names(
    doc: dict[str, Any], model: type[BaseModel], path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], str]]:
    """Every key of ``doc`` that ``model`` has no field for, as ``(path, message)``.

    Recurses into nested settings models and into ``dict[str, Model]`` tables.
    """
    found: list[tuple[tuple[str, ...], str]] = []
    fields = _fields(model)
    for key, value in doc.items():
        where = (*path, key)
        if key not in fields:
            kind = "section" if isinstance(value, dict) else "key"
            inside = f" in [{'.'.join(path)}]" if path else ""
            found.append((where, f"unknown {kind} {key!r}{inside}{suggestion(key, fields)}"))
            continue
        if not isinstance(value, dict):
            continue
        nested, table = _nested(fields[key])
        if nested is not None:
            found += unknown_names(value, nested, where)
        elif table is not None:
            for name, inner in value.items():
                if isinstance(inner, dict):
                    found += unknown_names(inner, table, (*where, name))
    return found


def unknown_env(model: type[BaseModel], environ: typing.Mapping[str, str]) -> list[str]:
    """``REGRESSOPS_SECTION__KEY`` variables that name no setting, each with a suggestion."""
    problems = []
    for var in sorted(environ):
        if not var.upper().startswith(ENV_PREFIX) or "__" not in var:
            continue
        parts = var[len(ENV_PREFIX) :].lower().split("__")
        current: type[BaseModel] | None = model
        for depth, part in enumerate(parts):
            if current is None:
                break
            fields = _fields(current)
            if part not in fields:
                head = ENV_PREFIX + "__".join(parts[:depth]).upper() + ("__" if depth else "")
                close = difflib.get_close_matches(part, sorted(fields), n=1, cutoff=0.6)
                hint = f"; did you mean {head}{close[0].upper()}?" if close else ""
                problems.append(f"unknown setting {var}{hint}")
                break
            current, _ = _nested(fields[part])
    return problems


def value_error(
    loc: tuple[Any, ...], msg: str, toml_path: Path | None, toml_text: str | None
) -> str:
    """One line for an invalid value at ``loc``: the setting, where it came from, what is wrong."""
    name = ".".join(str(part) for part in loc)
    env = ENV_PREFIX + "__".join(str(part) for part in loc).upper()
    if any(k.upper() == env for k in os.environ):
        return f"invalid setting {name} (from {env}): {msg}"
    if toml_path is not None and toml_text is not None:
        line = line_of(toml_text, tuple(str(p) for p in loc))
        at = f" line {line}" if line else ""
        return f"invalid setting {name} ({toml_path}{at}): {msg}"
    return f"invalid setting {name} ({env} or regressops.toml): {msg}"


def line_of(text: str, path: tuple[str, ...]) -> int | None:
    """The line number of ``path``'s key in a TOML text (its table header when a section)."""
    *table, key = path
    header = re.compile(r"^\s*\[+\s*([^\]]+?)\s*\]+\s*(#.*)?$")
    assign = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    current: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        m = header.match(line)
        if m:
            current = [p.strip().strip("\"'") for p in m.group(1).split(".")]
            if current == list(path):
                return number
            continue
        if assign.match(line) and current == table:
            return number
    return None


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    names: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        names[name] = info.annotation
        if info.alias:
            names[info.alias] = info.annotation
    return names


def _nested(annotation: Any) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """``(Model, None)`` for a nested settings model, ``(None, Model)`` for ``dict[str, Model]``."""
    for candidate in _options(annotation):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate, None
        if typing.get_origin(candidate) is dict:
            args = typing.get_args(candidate)
            value = args[1] if len(args) == 2 else None
            if isinstance(value, type) and issubclass(value, BaseModel):
                return None, value
    return None, None


def _options(annotation: Any) -> list[Any]:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return [a for a in typing.get_args(annotation) if a is not type(None)]
    return [annotation]
