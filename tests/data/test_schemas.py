"""Data contracts: the built-in ones hold on the shipped data; declarations in regressops.toml."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from helpers.data import make_settings
from regressops.config import Settings
from regressops.data.coerce import coerce
from regressops.data.declarations import get_contract
from regressops.data.schemas import BUILTIN_CONTRACTS
from regressops.datasets import DATASETS, load_dataset
from regressops.errors import ConfigError


@pytest.mark.parametrize("name", ["insurance", "diabetes", "california"])
def test_builtin_contracts_hold_on_the_builtin_data(
    name: str, settings: Settings, request: pytest.FixtureRequest
) -> None:
    if name == "california":
        request.getfixturevalue("california")
    contract = get_contract(name, settings)
    info = DATASETS[name]
    assert (contract.target, contract.features, contract.categorical) == (
        info.target,
        info.features,
        info.categorical,
    )
    frame = load_dataset(name, settings)
    frame.insert(0, "id", range(1, len(frame) + 1))
    coerced, failures = coerce(frame, contract)
    assert failures == {}
    contract.pandera_schema().validate(coerced, lazy=True)


def test_contract_checks_catch_bad_values() -> None:
    contract = BUILTIN_CONTRACTS["insurance"]
    frame = pd.DataFrame(
        {
            "id": [1, 2],
            "age": [30, 300],
            "sex": ["male", "MALE"],
            "bmi": ["27.5", "n/a"],
            "children": [0, 1],
            "smoker": ["no", "yes"],
            "region": ["northeast", None],
            "charges": [100.0, -1.0],
        }
    )
    coerced, failures = coerce(frame, contract)
    assert list(failures) == ["bmi"] and failures["bmi"].tolist() == ["n/a"]
    assert coerced["bmi"].iloc[0] == 27.5
    import pandera.pandas as pa

    with pytest.raises(pa.errors.SchemaErrors) as info:
        contract.pandera_schema().validate(coerced, lazy=True)
    failed = set(
        zip(info.value.failure_cases["column"], info.value.failure_cases["check"], strict=True)
    )
    assert failed >= {
        ("age", "in_range(18, 100)"),
        ("sex", "isin(['female', 'male'])"),
        ("region", "not_nullable"),
        ("charges", "in_range(0, 1000000)"),
    }


def test_a_declared_dataset(home: Path) -> None:
    settings = make_settings(
        home,
        datasets={
            "sales": {
                "source": "env:SALES_URL",
                "query": "SELECT * FROM sales WHERE day >= :since",
                "params": {"since": "2024-01-01"},
                "target": "amount",
                "key": "order_id",
                "columns": {
                    "order_id": {"dtype": "int"},
                    "region": {"dtype": "str", "allowed": ["n", "s"]},
                    "units": {"dtype": "int", "min": 0},
                    "amount": {"dtype": "float", "min": 0},
                },
            }
        },
    )
    contract = get_contract("sales", settings)
    assert contract.features == ("region", "units")  # every column but target and key
    assert contract.categorical == ("region",)
    assert contract.unique_columns() == ["order_id"]
    assert contract.query and contract.params == {"since": "2024-01-01"}
    assert not contract.builtin


def test_a_builtin_dataset_can_be_pointed_at_another_source(home: Path) -> None:
    settings = make_settings(
        home, datasets={"insurance": {"source": "env:PROD_DB", "table": "crm.policies"}}
    )
    contract = get_contract("insurance", settings)
    assert contract.table == "crm.policies" and contract.source == "env:PROD_DB"
    assert contract.columns == BUILTIN_CONTRACTS["insurance"].columns


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        ({"target": "y", "columns": {"y": {"dtype": "float"}}, "tabel": "t"}, "tabel"),
        ({"target": "y"}, "declares no columns"),
        ({"columns": {"y": {"dtype": "float"}}}, "needs target"),
        ({"target": "y", "columns": {"y": {"dtype": "decimal"}}}, "columns.y.dtype"),
        ({"target": "z", "columns": {"y": {"dtype": "float"}}}, "['z']"),
        (
            {"target": "y", "table": "t", "query": "SELECT 1", "columns": {"y": {}}},
            "both table and query",
        ),
    ],
)
def test_invalid_declarations_say_what_is_wrong(
    home: Path, declaration: dict, message: str
) -> None:
    settings = make_settings(home, datasets={"mine": declaration})
    with pytest.raises(ConfigError) as info:
        get_contract("mine", settings)
    assert message in info.value.message and "\n" not in info.value.message


@pytest.mark.parametrize("name", ["../etc", "", "a/b", "nope"])
def test_unknown_or_unsafe_names(settings: Settings, name: str) -> None:
    with pytest.raises(ConfigError):
        get_contract(name, settings)


def test_missing_schema_module_is_a_clear_error(home: Path) -> None:
    settings = make_settings(home, datasets={"insurance": {"schema": "no_such_module:schema"}})
    with pytest.raises(ConfigError, match="cannot load the pandera schema 'no_such_module:schema'"):
        get_contract("insurance", settings).extra_schema()
