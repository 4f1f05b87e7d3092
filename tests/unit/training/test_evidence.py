"""Reading and judging the shadow comparison of a drift.json as promotion evidence."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from regressops.errors import ConfigError
from regressops.training.evidence import check_subject, judge_evidence, read_evidence


def drift_json(path: Path, *, rows: int = 100, rmse: float = 4.0, champion: float = 5.0) -> Path:
    shadow = {
        "status": "better", "model_name": "m", "model_version": "2", "rows_labelled": rows,
        "rmse": rmse, "champion": {"model_version": "1", "rmse": champion},
    }  # fmt: skip
    path.write_text(json.dumps({"generated_at": "t", "performance": {"shadow": shadow}}))
    return path


def test_evidence_reads_back_and_judges_against_the_champion_now(tmp_path: Path) -> None:
    ev = read_evidence(drift_json(tmp_path / "d.json"))
    assert (ev.model_name, ev.model_version, ev.champion_version) == ("m", "2", "1")
    assert len(ev.sha256) == 64
    check_subject(ev, "m", "2")
    assert judge_evidence(ev, "1", min_rows=30)[0] is True
    moved = judge_evidence(ev, "3", min_rows=30)
    assert moved[0] is False and "v3 holds @champion now" in moved[1]
    few = judge_evidence(ev, "1", min_rows=101)
    assert few == (
        False,
        "too few labelled rows in the evidence: 100 < monitor.min_labelled_rows 101",
    )
    worse = judge_evidence(
        read_evidence(drift_json(tmp_path / "w.json", rmse=6.0)), "1", min_rows=1
    )
    assert worse[0] is False and "not better than champion v1" in worse[1]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the evidence"),
        ("not json", "is not a drift.json"),
        ('{"performance": null}', "holds no comparison with a challenger in shadow"),
        ('{"performance": {"shadow": {"model_name": "m"}}}', "incomplete shadow comparison"),
    ],
)
def test_bad_evidence_is_one_line(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "d.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError, match=message) as info:
        read_evidence(path)
    assert "\n" not in info.value.message


def test_evidence_about_another_model_or_version_is_refused(tmp_path: Path) -> None:
    ev = read_evidence(drift_json(tmp_path / "d.json"))
    for name, version in (("other", "2"), ("m", "3")):
        with pytest.raises(ConfigError, match="is about m v2 in shadow, not"):
            check_subject(ev, name, version)
