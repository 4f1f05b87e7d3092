"""Settings are never silently wrong: every command refuses bad settings with one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from regressops import cli
from regressops.config import get_settings

runner = CliRunner()
COMMANDS = [
    ["train", "--dataset", "diabetes", "--no-track"],
    ["evaluate", "--dataset", "diabetes"],
    ["tune", "--dataset", "diabetes"],
    ["predictions"],
    ["models", "list"],
    ["serve"],
    ["extract", "diabetes"],
]


def _run(args: list[str]) -> tuple[int, list[str]]:
    get_settings.cache_clear()
    result = runner.invoke(cli.app, args)
    return result.exit_code, result.stderr.strip().splitlines()


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        (
            "REGRESSOPS_TRAIN__TEST_SIZE",
            "abc",
            "train.test_size (from REGRESSOPS_TRAIN__TEST_SIZE)",
        ),
        ("REGRESSOPS_TRAIN__TEST_SIZE", "0", "Input should be greater than 0"),
        ("REGRESSOPS_SERVE__PORT", "abc", "serve.port (from REGRESSOPS_SERVE__PORT)"),
        ("REGRESSOPS_SERVE__PROT", "9000", "did you mean REGRESSOPS_SERVE__PORT?"),
    ],
)
def test_an_invalid_setting_is_one_line_and_exit_2_in_every_command(
    monkeypatch: pytest.MonkeyPatch, args: list[str], var: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(var, value)
    code, lines = _run(args)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    assert expected in lines[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[serve\nport = 1\n", "invalid TOML: Expected ']' at the end of a table declaration "
         "(at line 1, column 7)"),
        ("[trian]\ntest_size = 0.3\n", "line 1: unknown section 'trian'; did you mean 'train'?"),
        ("[serve]\nhost = 'x'\nprot = 9000\n", "line 3: unknown key 'prot' in [serve]; did you "
         "mean 'port'?"),
        ("[serve]\nport = 'abc'\n", "invalid setting serve.port ({toml} line 2): Input should be"),
        ("[gates.datasets.sales]\nmin_r3 = 0.5\n", "unknown key 'min_r3' in "
         "[gates.datasets.sales]"),
        # declared datasets have free names; only their inner keys are fixed
        ("[datasets.sales]\ntabel = 'public.sales'\n", "line 2: unknown key 'tabel' in "
         "[datasets.sales]; did you mean 'table'?"),
        ("[datasets.sales.columns]\nunits = { dtyp = 'int' }\n", "unknown key 'dtyp' in "
         "[datasets.sales.columns.units]; did you mean 'dtype'?"),
    ],
)  # fmt: skip
def test_the_settings_file_is_checked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, text: str, expected: str
) -> None:
    toml = tmp_path / "regressops.toml"
    toml.write_text(text)
    monkeypatch.setenv("REGRESSOPS_CONFIG", str(toml))
    for args in (["models", "list"], ["train", "--dataset", "diabetes", "--no-track"]):
        code, lines = _run(args)
        assert code == 2 and len(lines) == 1, lines
        assert lines[0].startswith(f"error: {toml}") or "invalid setting" in lines[0], lines
        assert expected.format(toml=toml) in lines[0], lines


def test_a_named_settings_file_that_does_not_exist_is_an_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("REGRESSOPS_CONFIG", str(tmp_path / "typo.toml"))
    code, lines = _run(["models", "list"])
    assert code == 2 and lines == [
        f"error: REGRESSOPS_CONFIG names {tmp_path / 'typo.toml'}, which does not exist (set it "
        "to an existing file, or to 'none' to read no settings file)"
    ]


def test_help_answers_even_with_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REGRESSOPS_SERVE__PORT", "abc")
    result = runner.invoke(cli.app, ["train", "--help"])
    assert result.exit_code == 0 and "Usage" in result.stdout


def test_a_valid_file_still_applies(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    toml = tmp_path / "regressops.toml"
    toml.write_text("[serve]\nport = 9100\n[datasets.sales]\ntable = 't'\ntarget = 'y'\n")
    monkeypatch.setenv("REGRESSOPS_CONFIG", str(toml))
    get_settings.cache_clear()
    assert get_settings().serve.port == 9100
    assert get_settings().datasets["sales"]["table"] == "t"
