"""Datasets declared in ``regressops.toml``, and the lookup of any dataset's contract.

A user's own dataset is declared without writing Python::

    [datasets.sales]
    source = "postgresql+psycopg://etl@db:5432/shop"   # or "env:SALES_DB_URL"
    password_env = "SALES_DB_PASSWORD"                 # the password, from the environment
    table = "public.sales"                             # or query = "SELECT ... WHERE d >= :since"
    target = "amount"
    features = ["region", "units"]
    key = "order_id"
    schema = "my_checks:sales_schema"                  # optional: a pandera DataFrameSchema

    [datasets.sales.columns]
    order_id = { dtype = "int" }
    region = { dtype = "str", allowed = ["north", "south"] }
    units = { dtype = "int", min = 0 }
    amount = { dtype = "float", min = 0 }

A built-in dataset may be declared too, to point it at another source or tighten its bounds;
the declared keys override the shipped contract. :func:`get_contract` returns the contract of
any dataset, checking the declaration with one clear line per mistake.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from regressops import config_check
from regressops.config import Settings, config_file, get_settings
from regressops.data.schemas import (
    BUILTIN_CONTRACTS,
    ColumnRule,
    DatasetContract,
    DtypeKind,
    OnFail,
)
from regressops.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


class ColumnDeclaration(BaseModel):
    """A column as declared in ``regressops.toml``."""

    model_config = ConfigDict(extra="forbid")

    dtype: DtypeKind = "float"
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: list[str] | None = None
    unique: bool = False
    pattern: str | None = None


class DatasetDeclaration(BaseModel):
    """A dataset as declared under ``[datasets.NAME]`` in ``regressops.toml``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: str | None = None
    password_env: str | None = None
    table: str | None = None
    query: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    target: str | None = None
    features: list[str] | None = None
    categorical: list[str] | None = None
    key: str | None = None
    columns: dict[str, ColumnDeclaration] | None = None
    min_rows: int | None = Field(None, ge=0)
    max_rows: int | None = Field(None, ge=1)
    max_failure_rate: float | None = Field(None, ge=0.0, le=1.0)
    on_fail: OnFail | None = None
    schema_module: str | None = Field(None, alias="schema")
    path: str | None = None  # a local copy of a built-in dataset (see regressops.datasets)


def get_contract(name: str, settings: Settings | None = None) -> DatasetContract:
    """Return the contract of dataset ``name``: built-in, declared, or built-in overridden.

    Raises
    ------
    ConfigError
        The name is unsafe, unknown, or its declaration in ``regressops.toml`` is invalid.
    """
    settings = settings or get_settings()
    check_dataset_name(name)
    raw = settings.datasets.get(name)
    base = BUILTIN_CONTRACTS.get(name)
    if raw is None and base is None:
        known = sorted(set(BUILTIN_CONTRACTS) | set(settings.datasets))
        raise ConfigError(
            f"unknown dataset {name!r}; expected a built-in or declared one: {known} (declare "
            f"your own under [datasets.{name}] in regressops.toml)",
            reason="unknown_dataset",
        )
    try:
        decl = DatasetDeclaration.model_validate(raw or {})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ConfigError(
            f"invalid [datasets.{name}] in regressops.toml: {where}: {err['msg']}",
            reason="invalid_dataset_declaration",
        ) from None
    return _merge(name, decl, base)


def check_declarations(settings: Settings | None = None) -> None:
    """Refuse unknown keys in every ``[datasets.NAME]`` table, naming the closest valid key.

    Raises
    ------
    ConfigError
        ``[datasets.NAME]`` (or its ``columns``) holds a key no declaration has.
    """
    settings = settings or get_settings()
    problems: list[str] = []
    toml = config_file()
    text = toml.read_text(encoding="utf-8") if toml is not None else ""
    for name, raw in settings.datasets.items():
        if not isinstance(raw, dict):
            continue
        where_in = ("datasets", name)
        for path, message in config_check.unknown_names(raw, DatasetDeclaration, where_in):
            line = config_check.line_of(text, path) if text else None
            where = f"{toml}{f' line {line}' if line else ''}: " if toml is not None else ""
            problems.append(f"{where}{message}")
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(problems[0] + more, reason="unknown_setting")


def check_dataset_name(name: str) -> str:
    """Return ``name`` if it is a safe dataset name (letters, digits, ``_.-``)."""
    if not _NAME.fullmatch(name or "") or ".." in name:
        raise ConfigError(
            f"invalid dataset name {name!r}; expected letters, digits, '_', '-' or '.'",
            reason="invalid_dataset_name",
        )
    return name


def _merge(name: str, decl: DatasetDeclaration, base: DatasetContract | None) -> DatasetContract:
    if decl.table and decl.query:
        raise ConfigError(
            f"[datasets.{name}] declares both table and query; expected one of them",
            reason="invalid_dataset_declaration",
        )
    if decl.columns is not None:
        columns = tuple(
            ColumnRule(
                name=col,
                dtype=c.dtype,
                nullable=c.nullable,
                min=c.min,
                max=c.max,
                allowed=tuple(c.allowed) if c.allowed is not None else None,
                unique=c.unique,
                pattern=c.pattern,
            )
            for col, c in decl.columns.items()
        )
    elif base is not None:
        columns = base.columns
    else:
        raise ConfigError(
            f"[datasets.{name}] declares no columns; expected [datasets.{name}.columns] with a "
            "dtype per column",
            reason="invalid_dataset_declaration",
        )
    target = decl.target or (base.target if base else None)
    if not target:
        raise ConfigError(
            f"[datasets.{name}] needs target = COLUMN", reason="invalid_dataset_declaration"
        )
    names = [c.name for c in columns]
    features = tuple(
        decl.features
        if decl.features is not None
        else (base.features if base else [c for c in names if c not in (target, decl.key)])
    )
    key = decl.key if decl.key is not None else (base.key if base else None)
    unknown = [c for c in [target, *features, *([key] if key else [])] if c not in names]
    if unknown:
        raise ConfigError(
            f"[datasets.{name}] names column(s) {unknown} that its columns do not declare",
            reason="invalid_dataset_declaration",
        )
    if decl.categorical is not None:
        categorical = tuple(decl.categorical)
    elif base is not None and decl.columns is None:
        categorical = base.categorical
    else:
        categorical = tuple(
            f for f in features if (rule := _rule(columns, f)) and rule.dtype in ("str", "bool")
        )
    return DatasetContract(
        name=name,
        target=target,
        features=features,
        categorical=categorical,
        columns=columns,
        key=key,
        min_rows=decl.min_rows if decl.min_rows is not None else (base.min_rows if base else 1),
        max_rows=decl.max_rows if decl.max_rows is not None else (base.max_rows if base else None),
        max_failure_rate=decl.max_failure_rate,
        on_fail=decl.on_fail or "stop",
        source=decl.source,
        password_env=decl.password_env,
        table=decl.table,
        query=decl.query,
        params=dict(decl.params),
        schema_module=decl.schema_module,
        builtin=base is not None,
    )


def _rule(columns: tuple[ColumnRule, ...], name: str) -> ColumnRule | None:
    return next((c for c in columns if c.name == name), None)
