"""Registering and promoting models with their quality gates re-checked under the registry lock.

This is where gates (training layer) meet the registry lifecycle: :func:`make_gate_check` builds
the check that :func:`regressops.registry.lifecycle.promote` runs while it holds the model's
lock, so a candidate is always compared with the champion it is about to replace, on the
candidate's own held-out rows (``eval/heldout.parquet`` of its run). The report of every check
is logged to the candidate's run under ``gates/``.

With live evidence (``promote --evidence DIR/drift.json``, :mod:`regressops.training.evidence`)
the step *beats the champion* is judged on the labelled rows both the champion and the
challenger in shadow scored, instead of on held-out rows; the absolute gates still run.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, RegistryError
from regressops.models.bundle import ModelBundle, load_bundle
from regressops.reasons import Reason
from regressops.registry import lifecycle
from regressops.registry.cards import card_context, publish_card
from regressops.registry.connection import connect, mlflow_errors, tracking_uri
from regressops.registry.resolve import resolve_model
from regressops.registry.tracking import EVAL_ARTIFACT
from regressops.training.evidence import (
    ShadowEvidence,
    check_subject,
    judge_evidence,
    read_evidence,
)
from regressops.training.gates import GateReport, evaluate_gates

if TYPE_CHECKING:
    import pandas as pd
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

logger = logging.getLogger(__name__)


def make_gate_check(
    client: MlflowClient,
    store: str,
    settings: Settings,
    *,
    candidate: ModelBundle | None = None,
    eval_frame: pd.DataFrame | None = None,
    known: GateReport | None = None,
) -> lifecycle.GateCheckFn:
    """Return the gate check for :func:`~regressops.registry.lifecycle.promote`.

    Parameters
    ----------
    client, store
        Registry client and tracking URI.
    settings : Settings
        Gate settings and the model cache.
    candidate, eval_frame : optional
        The candidate bundle and its held-out rows when in memory (``train --register``);
        otherwise both are fetched from the registry and the version's run.
    known : GateReport, optional
        A report already computed against a champion; reused when that champion is still the
        champion under the lock (no need to evaluate twice).
    """

    def check(mv: ModelVersion, champion_mv: ModelVersion | None) -> tuple[bool, str, dict]:
        champ_version = str(champion_mv.version) if champion_mv is not None else None
        if known is not None and _champion_version(known) == champ_version:
            report = known
        else:
            bundle = candidate or _bundle(client, store, settings, mv.name, str(mv.version))
            rows = eval_frame if eval_frame is not None else _heldout(client, store, mv)
            champion = (
                _bundle(client, store, settings, mv.name, champ_version) if champ_version else None
            )
            report = evaluate_gates(bundle, rows, champion=champion, settings=settings)
        _log_report(client, mv, report)
        return report.passed, report.summary(), report.to_dict()

    return check


def promote_version(
    name: str,
    version: str,
    *,
    alias: str = lifecycle.CHAMPION,
    why: str = "",
    force: bool = False,
    tracking: str | None = None,
    settings: Settings | None = None,
    evidence: str | os.PathLike[str] | None = None,
) -> lifecycle.Change:
    """Promote a registered version to ``alias`` after re-checking its gates.

    Parameters
    ----------
    evidence : path, optional
        A ``drift.json`` of ``regressops monitor`` comparing this version in shadow with the
        champion on labelled rows: it then stands for the *beats the champion* gate (the
        absolute gates are still re-checked) and is recorded on the version.

    Raises
    ------
    GateFailed
        A gate failed, or the evidence shows too few rows, a worse RMSE or another champion;
        nothing moved.
    ConfigError
        The evidence is unreadable, about another model or version, or given with ``force`` or
        for ``@challenger``.
    RegistryError
        Unknown model or version, unreachable store, busy registry, ``force`` without reason.
    """
    settings = settings or get_settings()
    shadow = _evidence(evidence, name, version, alias, force) if evidence is not None else None
    store = tracking_uri(settings, tracking)
    client = connect(store)
    check = make_gate_check(client, store, settings)
    if shadow is not None:
        check = _evidence_check(check, shadow, settings.monitor.min_labelled_rows)
        why = why or shadow.summary()
    change = lifecycle.promote(
        client, store, name, version, alias=alias, why=why, check=check, force=force,
        evidence=shadow.to_dict() if shadow is not None else None,
    )  # fmt: skip
    if change.action != "unchanged":
        bundle = _bundle(client, store, settings, name, str(version))
        status = change.action + (f" (forced: {why})" if force else "")
        report: Any = change.report
        if not report:  # forced: keep the gate report the card showed until now
            with mlflow_errors(f"model {name!r} version {version}"):
                earlier = card_context(client.get_model_version(name, str(version)).tags)
            report = earlier.gates if earlier is not None else None
        _publish(client, name, str(version), bundle, report, status)
    return change


def _evidence(
    path: str | os.PathLike[str], name: str, version: str, alias: str, force: bool
) -> ShadowEvidence:
    """Read the evidence and refuse what it cannot support before touching the registry."""
    if force:
        raise ConfigError(
            "--evidence and --force exclude each other: evidence is checked, --force skips checks",
            reason=Reason.BAD_EVIDENCE,
        )
    if alias != lifecycle.CHAMPION:
        raise ConfigError(
            "--evidence supports promotion to @champion only", reason=Reason.BAD_EVIDENCE
        )
    shadow = read_evidence(path)
    check_subject(shadow, name, version)
    return shadow


def _evidence_check(
    gates: lifecycle.GateCheckFn, shadow: ShadowEvidence, min_rows: int
) -> lifecycle.GateCheckFn:
    """The check under the lock: the evidence against the champion now, then the absolute
    gates (no champion comparison on held-out rows: the evidence stands for it)."""

    def check(mv: ModelVersion, champion_mv: ModelVersion | None) -> tuple[bool, str, dict]:
        champion = str(champion_mv.version) if champion_mv is not None else None
        held, why = judge_evidence(shadow, champion, min_rows=min_rows)
        if not held:
            return False, why, {"evidence": shadow.to_dict(), "passed": False}
        passed, summary, report = gates(mv, None)
        live = {"name": "beats_champion_live", "passed": True, "skipped": False, "detail": why}
        report = {**report, "checks": [*report.get("checks", []), live]}
        return passed, f"{why}; {summary}", {**report, "evidence": shadow.to_dict()}

    return check


def register_and_promote(
    client: MlflowClient,
    store: str,
    name: str,
    *,
    model_uri: str,
    run_id: str,
    model_id: str | None,
    bundle: ModelBundle,
    eval_frame: pd.DataFrame,
    report: GateReport | None,
    alias: str = lifecycle.CHAMPION,
    why: str = "",
    settings: Settings | None = None,
) -> tuple[str, lifecycle.Change | None, str]:
    """Register a logged model and give it ``alias`` if its gates pass.

    A version that fails its gates stays registered, tagged ``archived`` with the reason (the
    champion does not move).

    Returns
    -------
    tuple
        ``(version, change or None, gate summary)``; the change is None when the gates failed.
    """
    from regressops.errors import GateFailed

    settings = settings or get_settings()
    metrics = {k: v for k, v in (report.candidate.get("metrics", {}) if report else {}).items()}
    version = lifecycle.register_version(
        client,
        store,
        name,
        model_uri=model_uri,
        run_id=run_id,
        model_id=model_id,
        metrics=metrics or {k: bundle.metrics[k] for k in ("r2", "rmse") if k in bundle.metrics},
        kind=bundle.kind,
        why=why or "trained",
    )
    check = make_gate_check(
        client, store, settings, candidate=bundle, eval_frame=eval_frame, known=report
    )
    try:
        change = lifecycle.promote(client, store, name, version, alias=alias, why=why, check=check)
    except GateFailed as exc:
        summary = str(exc.details.get("summary", exc.message))
        lifecycle.archive(client, store, name, version, why=f"failed gates: {summary}")
        _publish(client, name, version, bundle, exc.details.get("report"), "archived: failed gates")
        return version, None, summary
    known = report.to_dict() if report is not None else None
    _publish(client, name, version, bundle, change.report or known, change.action)
    return version, change, change.detail


def load_registered(
    uri: str, *, settings: Settings | None = None, tracking: str | None = None
) -> ModelBundle:
    """Resolve ``models:/NAME@ALIAS`` (or ``/VERSION``) and load its bundle."""
    resolved = resolve_model(uri, settings=settings, tracking=tracking)
    return load_bundle(resolved.path)


def _bundle(
    client: MlflowClient, store: str, settings: Settings, name: str, version: str
) -> ModelBundle:
    resolved = resolve_model(f"models:/{name}/{version}", settings=settings, client=client)
    return load_bundle(resolved.path)


def _heldout(client: MlflowClient, store: str, mv: ModelVersion) -> pd.DataFrame:
    import mlflow
    import pandas as pd

    if not mv.run_id:
        raise RegistryError(
            f"{mv.name} v{mv.version} has no training run, so no held-out rows to check gates on",
            reason="no_heldout_rows",
        )
    with (
        tempfile.TemporaryDirectory(prefix="regressops-eval-") as tmp,
        mlflow_errors(f"held-out rows of {mv.name} v{mv.version} (run {mv.run_id})"),
    ):
        path = mlflow.artifacts.download_artifacts(
            run_id=mv.run_id, artifact_path=EVAL_ARTIFACT, dst_path=tmp, tracking_uri=store
        )
        return pd.read_parquet(Path(path))


def _log_report(client: MlflowClient, mv: ModelVersion, report: GateReport) -> None:
    if not mv.run_id:
        return
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    try:
        client.log_dict(mv.run_id, report.to_dict(), f"gates/promotion-v{mv.version}-{stamp}.json")
    except Exception as exc:  # the decision stands; the copy in the run is a convenience
        logger.warning("could not log the gate report to run %s: %s", mv.run_id, exc)


def _publish(
    client: MlflowClient,
    name: str,
    version: str,
    bundle: ModelBundle,
    report: dict[str, Any] | None,
    status: str,
) -> None:
    """Write the version's model card; the lifecycle change stands if the write fails."""
    try:
        publish_card(client, name, version, bundle, gates=report, status=status)
    except RegistryError as exc:
        logger.warning("could not write the model card of %s v%s: %s", name, version, exc.message)


def _champion_version(report: GateReport) -> str | None:
    champion: dict[str, Any] | None = report.champion
    return str(champion["version"]) if champion else None
