"""Quality gates: what a model must show before it may become ``@champion``.

The gates run on the candidate's held-out rows (the test split it was evaluated on, logged with
its run, so ``regressops models promote`` re-checks them on exactly the same rows):

``finite``
    Every prediction on the held-out rows and on the edge records is a finite number.
``min_r2`` / ``max_rmse`` / ``max_mae``
    Absolute bounds from ``[gates]`` in the settings (per-dataset overrides under
    ``[gates.datasets.NAME]``).
``beats_champion``
    The candidate's RMSE is at most ``champion RMSE × (1 − min_improvement)`` on the same rows.
    Passes when there is no champion yet; fails when the champion cannot score the rows.
``edge_records``
    Records at each numeric feature's training minimum and maximum, with every category, and
    with every value missing (imputed) give finite predictions within the observed target range
    widened by its span on each side.
``invariance``
    A record predicts the same alone as inside a batch, with an extra unrelated column, and
    wherever it stands in the batch.
``directional:FEATURE``
    Declared expectations (built in for the shipped datasets, more in ``[gates.directional]``):
    raising a numeric feature by one training standard deviation moves predictions the
    expected way on average and for at least ``min_directional_share`` of the rows (ties count
    as not against); for a categorical ``"a<b"``, switching every row from ``a`` to ``b``.
``quantization_r2_drop`` / ``quantization_bound``
    For a ``linear-int8`` model: the R² lost to quantisation and the measured error against
    its bound (:mod:`regressops.training.quantization`).
``latency``
    The 99th percentile of single-record prediction time (one thread, as a serving worker runs)
    is within ``max_latency_ms``.

:func:`evaluate_gates` returns a :class:`GateReport` (JSON via :meth:`GateReport.to_dict`); a
failed report never moves the champion (:func:`raise_if_failed` raises
:class:`~regressops.errors.GateFailed`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import GateSettings, Settings, get_settings
from regressops.errors import GateFailed, RegressopsError
from regressops.features import NumericFeature
from regressops.training.metrics import regression_metrics

if TYPE_CHECKING:
    import pandas as pd

    from regressops.models.bundle import ModelBundle

#: Expected effects for the built-in datasets (well established in their literature).
BUILTIN_DIRECTIONAL: dict[str, dict[str, str]] = {
    "diabetes": {"bmi": "increasing", "s5": "increasing"},
    "insurance": {"age": "increasing", "smoker": "no<yes"},
    "california": {"MedInc": "increasing"},
}
LATENCY_CALLS = 100
DIRECTIONAL_ROWS = 200


@dataclass
class GateCheck:
    """One gate's outcome.

    Attributes
    ----------
    name : str
        The gate (``"min_r2"``, ``"beats_champion"``, ``"directional:bmi"``, ...).
    passed : bool
        True when the gate holds (or was skipped).
    value, threshold : float or None
        What was measured and the bound it was held to.
    detail : str
        One line explaining the outcome.
    skipped : bool
        The gate did not apply (e.g. no champion yet).
    """

    name: str
    passed: bool
    value: float | None = None
    threshold: float | None = None
    detail: str = ""
    skipped: bool = False


@dataclass
class GateReport:
    """Every gate's outcome for one candidate on one set of held-out rows."""

    checks: list[GateCheck] = field(default_factory=list)
    candidate: dict[str, Any] = field(default_factory=dict)
    champion: dict[str, Any] | None = None
    n_rows: int = 0

    @property
    def passed(self) -> bool:
        """True when every check passed."""
        return all(c.passed for c in self.checks)

    @property
    def failed(self) -> list[GateCheck]:
        """The checks that failed."""
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON-able report (``gates.json``)."""
        return {
            "passed": self.passed,
            "n_rows": self.n_rows,
            "candidate": self.candidate,
            "champion": self.champion,
            "checks": [_finite_dict(asdict(c)) for c in self.checks],
        }

    def summary(self) -> str:
        """One line: passed, or which gates failed and why."""
        if self.passed:
            return f"all {len(self.checks)} gates passed"
        return "; ".join(f"{c.name}: {c.detail}" for c in self.failed)


def evaluate_gates(
    candidate: ModelBundle,
    eval_frame: pd.DataFrame,
    *,
    target: str | None = None,
    dataset: str | None = None,
    champion: ModelBundle | None = None,
    settings: Settings | None = None,
    reference: ModelBundle | None = None,
) -> GateReport:
    """Run every gate for ``candidate`` on the held-out rows ``eval_frame``.

    Parameters
    ----------
    candidate : ModelBundle
        The model to check.
    eval_frame : DataFrame
        Held-out rows with the feature columns and the target.
    target : str, optional
        Target column; default ``candidate.spec.target``.
    dataset : str, optional
        Dataset name, for per-dataset bounds and directional expectations; default the
        bundle's lineage ``dataset`` or its name.
    champion : ModelBundle, optional
        The current champion, scored on the same rows.
    settings : Settings, optional
        Gate settings; default :func:`get_settings`.
    reference : ModelBundle, optional
        For a ``linear-int8`` candidate, the float model it was quantised from: the
        quantisation gates are then measured on ``eval_frame`` rather than read from the
        candidate's recorded report.

    Returns
    -------
    GateReport
    """
    gates = (settings or get_settings()).gates
    target = target or candidate.spec.target
    if target is None or target not in eval_frame.columns:
        raise GateFailed(
            f"held-out rows lack the target column {target!r}; cannot check gates",
            reason="no_target",
        )
    dataset = dataset or str(candidate.lineage.get("dataset") or candidate.name)
    y = eval_frame[target].to_numpy(dtype=np.float64)
    report = GateReport(n_rows=len(eval_frame))
    report.candidate = {
        "name": candidate.name,
        "version": candidate.version,
        "kind": candidate.kind,
    }

    pred = _predict(candidate, eval_frame)
    finite = bool(np.isfinite(pred).all())
    report.checks.append(
        GateCheck(
            "finite",
            finite,
            value=float(np.count_nonzero(~np.isfinite(pred))),
            threshold=0.0,
            detail="all predictions finite" if finite else "NaN or infinite predictions",
        )
    )
    if not finite:
        return report
    metrics = regression_metrics(y, pred)
    report.candidate["metrics"] = metrics
    report.checks.extend(_absolute_checks(metrics, gates, dataset))
    report.checks.append(_champion_check(metrics, champion, eval_frame, y, gates, report))
    report.checks.append(_edge_check(candidate, y))
    report.checks.append(_invariance_check(candidate, eval_frame))
    report.checks.extend(_directional_checks(candidate, eval_frame, gates, dataset))
    report.checks.append(_latency_check(candidate, eval_frame, gates))
    if candidate.quantized is not None:
        from regressops.training.quantization import quantization_gate

        report.checks.extend(quantization_gate(candidate, eval_frame, gates, reference=reference))
    return report


def raise_if_failed(report: GateReport) -> None:
    """Raise :class:`GateFailed` naming the failed gates when ``report`` did not pass."""
    if not report.passed:
        raise GateFailed(f"quality gates failed: {report.summary()}", failed=len(report.failed))


def directional_expectations(dataset: str, gates: GateSettings) -> dict[str, str]:
    """Return the built-in expectations for ``dataset`` updated by the settings."""
    return {**BUILTIN_DIRECTIONAL.get(dataset, {}), **gates.directional.get(dataset, {})}


# ---------------------------------------------------------------------------- checks
def _absolute_checks(
    metrics: Mapping[str, float], gates: GateSettings, dataset: str
) -> list[GateCheck]:
    bounds = gates.datasets.get(dataset)
    min_r2 = bounds.min_r2 if bounds and bounds.min_r2 is not None else gates.min_r2
    max_rmse = bounds.max_rmse if bounds and bounds.max_rmse is not None else gates.max_rmse
    max_mae = bounds.max_mae if bounds and bounds.max_mae is not None else gates.max_mae
    checks = []
    for name, metric, bound, lower in (
        ("min_r2", "r2", min_r2, True),
        ("max_rmse", "rmse", max_rmse, False),
        ("max_mae", "mae", max_mae, False),
    ):
        if bound is None:
            continue
        value = metrics[metric]
        ok = value >= bound if lower else value <= bound
        sign = ">=" if lower else "<="
        checks.append(
            GateCheck(
                name,
                bool(ok),
                value=value,
                threshold=bound,
                detail=f"{metric} {value:.4g} {'' if ok else 'not '}{sign} {bound:g}",
            )
        )
    return checks


def _champion_check(
    metrics: Mapping[str, float],
    champion: ModelBundle | None,
    frame: pd.DataFrame,
    y: np.ndarray,
    gates: GateSettings,
    report: GateReport,
) -> GateCheck:
    if champion is None:
        return GateCheck("beats_champion", True, detail="no champion yet", skipped=True)
    report.champion = _identity(champion)
    try:
        champ_pred = _predict(champion, frame)
        champ = regression_metrics(y, champ_pred)
    except RegressopsError as exc:
        return GateCheck(
            "beats_champion",
            False,
            detail=f"champion v{champion.version} cannot score these rows: {exc.message}",
        )
    report.champion["metrics"] = champ
    bound = champ["rmse"] * (1.0 - gates.min_improvement)
    ok = metrics["rmse"] <= bound * (1 + 1e-12)
    return GateCheck(
        "beats_champion",
        bool(ok),
        value=metrics["rmse"],
        threshold=bound,
        detail=(
            f"rmse {metrics['rmse']:.4g} {'<=' if ok else '>'} {bound:.4g} (champion "
            f"v{champion.version} rmse {champ['rmse']:.4g}, min_improvement "
            f"{gates.min_improvement:g})"
        ),
    )


def _edge_check(bundle: ModelBundle, y: np.ndarray) -> GateCheck:
    records = edge_records(bundle)
    pred = _predict(bundle, _frame(records))
    span = float(y.max() - y.min()) or 1.0
    low, high = float(y.min()) - span, float(y.max()) + span
    bad = ~np.isfinite(pred) | (pred < low) | (pred > high)
    n_bad = int(np.count_nonzero(bad))
    detail = f"{len(records)} edge records within [{low:.4g}, {high:.4g}]"
    if n_bad:
        worst = records[int(np.flatnonzero(bad)[0])]
        detail = (
            f"{n_bad} of {len(records)} edge records out of [{low:.4g}, {high:.4g}], e.g. {worst}"
        )
    return GateCheck("edge_records", n_bad == 0, value=float(n_bad), threshold=0.0, detail=detail)


def _invariance_check(bundle: ModelBundle, frame: pd.DataFrame) -> GateCheck:
    rows = frame[bundle.spec.names].head(50).reset_index(drop=True)
    base = _predict(bundle, rows)
    alone = np.array([_predict(bundle, rows.iloc[[i]])[0] for i in range(min(10, len(rows)))])
    extra = rows.assign(__unrelated__=np.linspace(-1e6, 1e6, len(rows)))
    order = np.random.default_rng(0).permutation(len(rows))
    shuffled = _predict(bundle, rows.iloc[order])
    problems = []
    if not np.allclose(alone, base[: len(alone)], rtol=1e-9, atol=1e-9):
        problems.append("a record alone predicts differently than in a batch")
    if not np.allclose(_predict(bundle, extra), base, rtol=1e-9, atol=1e-9):
        problems.append("an unrelated extra column changes predictions")
    if not np.allclose(shuffled, base[order], rtol=1e-9, atol=1e-9):
        problems.append("predictions depend on row order")
    return GateCheck(
        "invariance",
        not problems,
        detail="; ".join(problems) or "batch, extra column and row order change nothing",
    )


def _directional_checks(
    bundle: ModelBundle, frame: pd.DataFrame, gates: GateSettings, dataset: str
) -> list[GateCheck]:
    checks = []
    rows = frame[bundle.spec.names].head(DIRECTIONAL_ROWS).reset_index(drop=True)
    for feature, rule in directional_expectations(dataset, gates).items():
        name = f"directional:{feature}"
        if feature not in bundle.spec.names:
            checks.append(GateCheck(name, True, detail="feature not used", skipped=True))
            continue
        f = bundle.spec.feature(feature)
        if isinstance(f, NumericFeature):
            if rule not in ("increasing", "decreasing"):
                checks.append(GateCheck(name, False, detail=f"invalid rule {rule!r}"))
                continue
            step = f.std if math.isfinite(f.std) and f.std > 0 else 1.0
            lo, hi = rows.copy(), rows.copy()
            hi[feature] = rows[feature].astype(float) + step
            sign = 1.0 if rule == "increasing" else -1.0
            what = f"{feature} +{step:.3g}"
        else:
            a, sep, b = rule.partition("<")
            if not sep or a not in f.categories or b not in f.categories:
                checks.append(
                    GateCheck(
                        name,
                        False,
                        detail=f"rule {rule!r} must be 'a<b' over categories {list(f.categories)}",
                    )
                )
                continue
            lo, hi = rows.assign(**{feature: a}), rows.assign(**{feature: b})
            sign, what = 1.0, f"{feature} {a}->{b}"
        delta = sign * (_predict(bundle, hi) - _predict(bundle, lo))
        scale = float(np.abs(delta).max()) or 1.0
        share = float(np.mean(delta >= -1e-9 * scale))
        ok = share >= gates.min_directional_share and float(delta.mean()) > 0
        checks.append(
            GateCheck(
                name,
                bool(ok),
                value=share,
                threshold=gates.min_directional_share,
                detail=(
                    f"{what}: {share:.0%} of rows follow {rule!r} or stay, mean change "
                    f"{sign * float(delta.mean()):+.4g}"
                ),
            )
        )
    return checks


def _latency_check(bundle: ModelBundle, frame: pd.DataFrame, gates: GateSettings) -> GateCheck:
    from threadpoolctl import threadpool_limits

    rows = frame[bundle.spec.names]
    complete = rows[rows.notna().all(axis=1)]  # a record API clients could send: no gaps
    first = complete.iloc[0] if len(complete) else {f.name: f.impute for f in bundle.spec.features}
    record = {str(k): _plain(v) for k, v in first.items()}
    times = np.empty(LATENCY_CALLS)
    # One thread, as a serving worker runs: an OpenMP pool woken for a single record measures
    # the machine's scheduling, not the model.
    with threadpool_limits(limits=1):
        for _ in range(10):
            bundle.predict_records([record])
        for i in range(LATENCY_CALLS):
            start = time.perf_counter()
            bundle.predict_records([record])
            times[i] = time.perf_counter() - start
    p99 = float(np.percentile(times, 99) * 1000.0)
    ok = p99 <= gates.max_latency_ms
    return GateCheck(
        "latency",
        ok,
        value=p99,
        threshold=gates.max_latency_ms,
        detail=f"p99 single-record latency {p99:.3g} ms {'<=' if ok else '>'} "
        f"{gates.max_latency_ms:g} ms",
    )


# ---------------------------------------------------------------------------- helpers
def edge_records(bundle: ModelBundle) -> list[dict[str, Any]]:
    """Records at the edges of the training data: each numeric feature at its min and max,
    each category, and one record of missing values (imputed), others at their impute value."""
    base: dict[str, Any] = {f.name: f.impute for f in bundle.spec.features}
    records: list[dict[str, Any]] = [dict(base), {k: None for k in base}]
    for f in bundle.spec.features:
        if isinstance(f, NumericFeature):
            for v in (f.min, f.max):
                if math.isfinite(v):
                    records.append({**base, f.name: float(v)})
        else:
            records.extend({**base, f.name: c} for c in f.categories)
    return records


def _predict(bundle: ModelBundle, frame: pd.DataFrame) -> np.ndarray:
    # Categories first seen in held-out rows score as all zeros, as in training's evaluation.
    spec = dataclasses.replace(bundle.spec, unknown="ignore")
    return np.asarray(bundle.predict_matrix(spec.transform(frame)), dtype=np.float64).ravel()


def _frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    return pd.DataFrame.from_records(records)


def _identity(bundle: ModelBundle) -> dict[str, Any]:
    return {"name": bundle.name, "version": bundle.version, "kind": bundle.kind}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _finite_dict(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in doc.items()
    }
