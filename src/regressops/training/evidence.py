"""Live evidence for a promotion: the challenger in shadow against the champion on labelled rows.

``regressops monitor`` on the log of ``serve --shadow`` writes, under ``performance.shadow`` of
its ``drift.json``, both models' metrics on the same labelled rows. :func:`read_evidence` reads
that part back; ``models promote NAME VERSION --evidence DIR/drift.json`` then judges the
*beats the champion* step on it instead of on held-out rows (the absolute gates are still
re-checked): the evidence must be about ``NAME`` version ``VERSION`` in shadow of the version
that holds ``@champion`` now, cover at least ``monitor.min_labelled_rows`` labelled rows, and
show a lower RMSE than the champion's on them. Otherwise the promotion is refused with one line.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from regressops.errors import ConfigError
from regressops.reasons import Reason


@dataclass(frozen=True)
class ShadowEvidence:
    """What a ``drift.json`` says about a challenger in shadow.

    Attributes
    ----------
    source : str
        The file read.
    sha256 : str
        Its digest (recorded with the promotion, so the file can be checked later).
    generated_at : str or None
        When ``regressops monitor`` wrote it.
    model_name, model_version : str
        The challenger.
    champion_version : str
        The champion it was compared with.
    rows_labelled : int
        Labelled rows both scored.
    rmse, champion_rmse : float
        Each one's RMSE on those rows.
    """

    source: str
    sha256: str
    generated_at: str | None
    model_name: str
    model_version: str
    champion_version: str
    rows_labelled: int
    rmse: float
    champion_rmse: float

    def summary(self) -> str:
        """One line: who beat whom on how many rows."""
        return (
            f"shadow evidence: v{self.model_version} rmse {self.rmse:.6g} vs champion "
            f"v{self.champion_version} {self.champion_rmse:.6g} on {self.rows_labelled} "
            "labelled rows"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (recorded on the promoted version)."""
        return asdict(self)


def read_evidence(path: str | os.PathLike[str]) -> ShadowEvidence:
    """Read the shadow comparison of a ``drift.json``.

    Raises
    ------
    ConfigError
        The file cannot be read, is not a ``drift.json``, or holds no shadow comparison.
    """
    file = Path(path)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the evidence {file}: {exc.strerror or exc}", reason=Reason.BAD_EVIDENCE
        ) from None
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or "performance" not in doc:
        raise ConfigError(
            f"the evidence {file} is not a drift.json written by regressops monitor",
            reason=Reason.BAD_EVIDENCE,
        )
    shadow = (doc.get("performance") or {}).get("shadow")
    if not isinstance(shadow, dict):
        raise ConfigError(
            f"the evidence {file} holds no comparison with a challenger in shadow; run "
            "regressops monitor on the log of `serve --shadow` once labels have arrived",
            reason=Reason.BAD_EVIDENCE,
        )
    champion = shadow.get("champion") or {}
    try:
        evidence = ShadowEvidence(
            source=str(file),
            sha256=hashlib.sha256(raw).hexdigest(),
            generated_at=doc.get("generated_at"),
            model_name=str(shadow["model_name"]),
            model_version=str(shadow["model_version"]),
            champion_version=str(champion["model_version"]),
            rows_labelled=int(shadow["rows_labelled"]),
            rmse=_float(shadow.get("rmse")),
            champion_rmse=_float(champion.get("rmse")),
        )
    except (KeyError, TypeError, ValueError):
        raise ConfigError(
            f"the evidence {file} has an incomplete shadow comparison (model, versions, rows)",
            reason=Reason.BAD_EVIDENCE,
        ) from None
    return evidence


def check_subject(evidence: ShadowEvidence, name: str, version: str) -> None:
    """Refuse evidence about another model or version.

    Raises
    ------
    ConfigError
        One line naming what the evidence is about.
    """
    if (evidence.model_name, evidence.model_version) != (name, str(version)):
        raise ConfigError(
            f"the evidence {evidence.source} is about {evidence.model_name} "
            f"v{evidence.model_version} in shadow, not {name} v{version}",
            reason=Reason.EVIDENCE_MISMATCH,
        )


def judge_evidence(
    evidence: ShadowEvidence, champion_version: str | None, *, min_rows: int
) -> tuple[bool, str]:
    """Whether the evidence shows the challenger better than the current champion.

    Parameters
    ----------
    evidence : ShadowEvidence
        The comparison.
    champion_version : str or None
        The version holding ``@champion`` now (under the registry lock).
    min_rows : int
        ``monitor.min_labelled_rows``.

    Returns
    -------
    (bool, str)
        The verdict and one line saying why.
    """
    if champion_version != evidence.champion_version:
        now = f"v{champion_version}" if champion_version else "no version"
        return False, (
            f"the evidence compares with champion v{evidence.champion_version} but {now} holds "
            "@champion now; run regressops monitor again"
        )
    if evidence.rows_labelled < min_rows:
        return False, (
            f"too few labelled rows in the evidence: {evidence.rows_labelled} < "
            f"monitor.min_labelled_rows {min_rows}"
        )
    if not evidence.rmse < evidence.champion_rmse:
        return False, (
            f"v{evidence.model_version} is not better than champion v{evidence.champion_version} "
            f"on {evidence.rows_labelled} labelled rows (rmse {evidence.rmse:.6g} vs "
            f"{evidence.champion_rmse:.6g})"
        )
    return True, evidence.summary()


def _float(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(value)
    return number
