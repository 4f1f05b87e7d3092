"""Data contracts: what a dataset's table must hold, and the pandera schema that checks it.

A :class:`DatasetContract` names a dataset's columns with a type and rules (nullability, range,
allowed values, uniqueness, a pattern), its key, target and features, its row-count bounds and
where it is extracted from. The contracts of the built-in datasets ship here
(:data:`BUILTIN_CONTRACTS`); a user's own dataset is declared in ``regressops.toml`` and read by
:func:`regressops.data.declarations.get_contract`.

:meth:`DatasetContract.pandera_schema` builds the row-level pandera schema; uniqueness and the
row-count bounds span the whole table and are checked by :mod:`regressops.data.validate`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from regressops.datasets import DATASETS
from regressops.errors import ConfigError

if TYPE_CHECKING:
    import pandera.pandas as pa

DtypeKind = Literal["int", "float", "str", "bool", "datetime"]
OnFail = Literal["stop", "quarantine", "warn"]
PANDAS_DTYPES: dict[str, str] = {
    "int": "Int64",
    "float": "float64",
    "str": "str",
    "bool": "boolean",
    "datetime": "datetime64[us, UTC]",
}


@dataclass(frozen=True)
class ColumnRule:
    """One column of a contract: its type and the rules its values follow.

    Attributes
    ----------
    name : str
        Column name.
    dtype : {"int", "float", "str", "bool", "datetime"}
        The type values are coerced to; text that cannot be read as it fails the row.
    nullable : bool
        Whether missing values are allowed.
    min, max : float or None
        Inclusive bounds of numeric values.
    allowed : tuple of str or None
        The only values a text column may take.
    unique : bool
        No two rows share a value (checked over the whole table).
    pattern : str or None
        A regular expression every text value must match.
    """

    name: str
    dtype: DtypeKind
    nullable: bool = False
    min: float | None = None
    max: float | None = None
    allowed: tuple[str, ...] | None = None
    unique: bool = False
    pattern: str | None = None

    @property
    def pandas_dtype(self) -> str:
        """The pandas dtype the column is coerced to."""
        return PANDAS_DTYPES[self.dtype]

    def checks(self) -> list[pa.Check]:
        """The pandera value checks of the column (type and nullability are separate)."""
        import pandera.pandas as pa

        checks: list[pa.Check] = []
        if self.min is not None and self.max is not None:
            checks.append(pa.Check.in_range(_num(self.min), _num(self.max)))
        elif self.min is not None:
            checks.append(pa.Check.ge(_num(self.min)))
        elif self.max is not None:
            checks.append(pa.Check.le(_num(self.max)))
        if self.allowed is not None:
            checks.append(pa.Check.isin(list(self.allowed)))
        if self.pattern is not None:
            checks.append(pa.Check.str_matches(self.pattern))
        return checks


@dataclass(frozen=True)
class DatasetContract:
    """What a dataset's table must hold and where it comes from.

    Attributes
    ----------
    name : str
        Dataset name (also its folder in the lake).
    target : str
        Target column.
    features : tuple of str
        Feature columns, in model order.
    categorical : tuple of str
        Features one-hot encoded by training.
    columns : tuple of ColumnRule
        Every column the table must have, in order.
    key : str or None
        Column identifying a row: unique, and usable for a hash split.
    min_rows, max_rows : int or None
        Bounds on the number of rows of a validated version.
    max_failure_rate : float or None
        Meta-validation bound on the share of failing rows (``None``: the settings' default).
    on_fail : {"stop", "quarantine", "warn"}
        What ``validate`` does with failing rows unless told otherwise.
    source : str or None
        SQLAlchemy URL, or ``env:VAR`` to read it from the environment.
    password_env : str or None
        Environment variable holding the source's password.
    table, query : str or None
        What to extract (a query may use ``:name`` parameters, bound from ``params``).
    params : dict
        Values of the query's parameters.
    schema_module : str or None
        ``"package.module:attribute"`` of an extra pandera ``DataFrameSchema`` to run.
    builtin : bool
        Whether the dataset ships with regressops.
    """

    name: str
    target: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    columns: tuple[ColumnRule, ...]
    key: str | None = None
    min_rows: int = 1
    max_rows: int | None = None
    max_failure_rate: float | None = None
    on_fail: OnFail = "stop"
    source: str | None = None
    password_env: str | None = None
    table: str | None = None
    query: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    schema_module: str | None = None
    builtin: bool = False

    @property
    def column_names(self) -> list[str]:
        """The contract's columns, in order."""
        return [c.name for c in self.columns]

    def column(self, name: str) -> ColumnRule | None:
        """The rule of column ``name``, if the contract has one."""
        return next((c for c in self.columns if c.name == name), None)

    def unique_columns(self) -> list[str]:
        """Columns whose values must be unique: the key, then those marked ``unique``."""
        names = [self.key] if self.key else []
        return names + [c.name for c in self.columns if c.unique and c.name != self.key]

    def pandera_schema(self) -> pa.DataFrameSchema:
        """The row-level pandera schema: types, nullability, ranges, allowed values, patterns.

        Columns are expected already coerced (see :func:`regressops.data.validate.coerce`),
        so the schema does not coerce; every check reports the rows that fail it.
        """
        import pandera.pandas as pa

        columns = {
            c.name: pa.Column(c.pandas_dtype, c.checks(), nullable=c.nullable, coerce=False)
            for c in self.columns
        }
        return pa.DataFrameSchema(columns, strict=False, name=self.name)

    def extra_schema(self) -> pa.DataFrameSchema | None:
        """The user's pandera schema named by ``schema_module``, imported, or ``None``."""
        if not self.schema_module:
            return None
        import pandera.pandas as pa

        module_name, _, attr = self.schema_module.partition(":")
        try:
            module = importlib.import_module(module_name)
            schema = getattr(module, attr or "schema")
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"cannot load the pandera schema {self.schema_module!r} of dataset "
                f"{self.name!r}: {exc}; expected 'package.module:attribute'",
                reason="invalid_schema_module",
            ) from None
        if isinstance(schema, type) and issubclass(schema, pa.DataFrameModel):
            schema = schema.to_schema()
        if not isinstance(schema, pa.DataFrameSchema):
            raise ConfigError(
                f"{self.schema_module!r} is a {type(schema).__name__}, expected a pandera "
                "DataFrameSchema or DataFrameModel",
                reason="invalid_schema_module",
            )
        return schema


def _num(value: float) -> float | int:
    """``18.0`` as ``18`` so that check labels read like the declaration."""
    return int(value) if float(value).is_integer() else value


# ---------------------------------------------------------------------- built-in contracts
def _floats(names: list[str], low: float, high: float) -> tuple[ColumnRule, ...]:
    return tuple(ColumnRule(n, "float", min=low, max=high) for n in names)


_REGIONS = ("northeast", "northwest", "southeast", "southwest")


def _builtin(name: str, columns: tuple[ColumnRule, ...], *, min_rows: int) -> DatasetContract:
    """A built-in dataset's contract; name, target, features and categoricals come from
    :data:`regressops.datasets.DATASETS`, so the two cannot disagree."""
    info = DATASETS[name]
    return DatasetContract(
        name=info.name,
        target=info.target,
        features=info.features,
        categorical=info.categorical,
        columns=columns,
        key="id",
        min_rows=min_rows,
        builtin=True,
    )


BUILTIN_CONTRACTS: dict[str, DatasetContract] = {
    "insurance": _builtin(
        "insurance",
        (
            ColumnRule("id", "int", unique=True),
            ColumnRule("age", "int", min=18, max=100),
            ColumnRule("sex", "str", allowed=("female", "male")),
            ColumnRule("bmi", "float", min=10, max=80),
            ColumnRule("children", "int", min=0, max=20),
            ColumnRule("smoker", "str", allowed=("no", "yes")),
            ColumnRule("region", "str", allowed=_REGIONS),
            ColumnRule("charges", "float", min=0, max=1_000_000),
        ),
        min_rows=100,
    ),
    "diabetes": _builtin(
        "diabetes",
        (
            ColumnRule("id", "int", unique=True),
            *_floats(list(DATASETS["diabetes"].features), -1.0, 1.0),
            ColumnRule("target", "float", min=0, max=1000),
        ),
        min_rows=100,
    ),
    "california": _builtin(
        "california",
        (
            ColumnRule("id", "int", unique=True),
            ColumnRule("MedInc", "float", min=0, max=20),
            ColumnRule("HouseAge", "float", min=0, max=100),
            ColumnRule("AveRooms", "float", min=0, max=200),
            ColumnRule("AveBedrms", "float", min=0, max=50),
            ColumnRule("Population", "float", min=0, max=50_000),
            ColumnRule("AveOccup", "float", min=0, max=2_000),
            ColumnRule("Latitude", "float", min=32, max=42),
            ColumnRule("Longitude", "float", min=-125, max=-114),
            ColumnRule("MedHouseVal", "float", min=0, max=10),
        ),
        min_rows=1000,
    ),
}
