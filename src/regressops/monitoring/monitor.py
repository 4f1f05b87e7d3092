"""``regressops monitor``: judge a window against the reference, write drift.json and the report.

Two forms: a model (a bundle directory or ``models:/NAME@ALIAS``) whose stored reference is
compared with the rows its server logged (or with ``current_data``), or two tables compared
without a model. :func:`run_monitor` returns a :class:`MonitorReport`; :func:`write_report`
writes ``DIR/drift.json`` and ``DIR/report.html`` atomically.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, DataError
from regressops.monitoring.drift import DriftDetector, DriftResult
from regressops.monitoring.fitted import CurrentColumn
from regressops.monitoring.performance import (
    Labels,
    Performance,
    ShadowComparison,
    compare_shadow,
    join_labels,
    judge_performance,
    measure_shadow,
    read_label_sink,
    read_labels,
)
from regressops.monitoring.reference import ReferenceProfile, build_reference, load_reference
from regressops.monitoring.tables import TableWindow, check_columns, check_kinds, infer_kinds
from regressops.monitoring.window import LogSelection, LogWindow, read_window

if TYPE_CHECKING:
    import pandas as pd

    from regressops.models.bundle import ModelBundle

logger = logging.getLogger(__name__)

DRIFT_FILE = "drift.json"
REPORT_FILE = "report.html"
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True)
class MonitorRequest:
    """What to compare: built and checked once at the edge (the CLI), passed down unchanged.

    Attributes
    ----------
    model : str or None
        A bundle directory or ``models:/NAME@ALIAS``; None for the two-table form.
    prediction_log : str or None
        The log's file or SQL URL (default: ``serve.prediction_log``, then the home's file).
    selection : LogSelection
        Time range and last N rows (the model's name and version are added from the model).
    reference_data : Path or None
        A table to use as reference instead of the bundle's.
    reference_dataset : str or None
        A dataset (its clean lake version, or the built-in copy) to use as reference.
    data_version : int or None
        The dataset's lake version.
    current_data : Path or None
        A table to use as the current window instead of the log.
    target : str or None
        The column that is not a feature (its values give performance with a model).
    labels : Path or None
        ``request_id,row,label`` rows joined with the logged predictions (default: the labels
        ``POST /feedback`` stored beside the prediction log, when there are any).
    shadow : str or None
        The challenger to compare with the model on the labelled rows: a bundle directory or
        ``models:/NAME@ALIAS``. With the log, its rows logged in shadow (default: the
        challenger the log holds shadow rows of, the one with most rows); with a table, its
        predictions of the table's rows.
    """

    model: str | None = None
    prediction_log: str | None = None
    selection: LogSelection = field(default_factory=LogSelection)
    reference_data: Path | None = None
    reference_dataset: str | None = None
    data_version: int | None = None
    current_data: Path | None = None
    target: str | None = None
    labels: Path | None = None
    shadow: str | None = None


@dataclass
class MonitorReport:
    """Everything ``drift.json`` and ``report.html`` hold."""

    drift: DriftResult
    performance: Performance | None
    reference: dict[str, Any]
    current: dict[str, Any]
    model: dict[str, Any] | None
    generated_at: str
    approximation: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The content of ``drift.json``.

        A window judged from partition statistics (``monitor --engine dask``) adds an
        ``approximation`` to each judged column: exact, or the statistic's bound.
        """
        doc = self.drift.to_dict()
        approx = self.approximation or {}
        for name, part in approx.get("features", {}).items():
            doc["features"][name]["approximation"] = part
        for extra in ("prediction", "target"):
            if approx.get(extra) is not None and doc.get(extra) is not None:
                doc[extra]["approximation"] = approx[extra]
        return {
            "status": doc.pop("status"),
            "dataset_drift": doc.pop("dataset_drift"),
            "share_drifted": doc.pop("share_drifted"),
            "drift_share": doc.pop("drift_share"),
            "generated_at": self.generated_at,
            "model": self.model,
            "reference": self.reference,
            "current": self.current,
            **doc,
            "performance": self.performance.to_dict() if self.performance else None,
            "distributions": {
                "features": {n: f.distribution for n, f in self.drift.features.items()},
                "prediction": self.drift.prediction.distribution if self.drift.prediction else None,
                "target": self.drift.target.distribution if self.drift.target else None,
            },
        }


def parse_time(text: str, *, now: dt.datetime | None = None) -> dt.datetime:
    """``24h``, ``30m``, ``7d`` (that long before now) or an ISO-8601 time (UTC if naive).

    Raises
    ------
    ConfigError
        Neither form.
    """
    match = _DURATION.match(text)
    if match:
        now = now or dt.datetime.now(dt.UTC)
        return now - dt.timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    try:
        when = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(
            f"invalid time {text!r}; expected a duration such as 24h, 30m, 7d or an ISO time "
            "such as 2026-01-31T12:00",
            reason="invalid_time",
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def run_monitor(request: MonitorRequest, *, settings: Settings | None = None) -> MonitorReport:
    """Compare the current window with the reference.

    Raises
    ------
    ConfigError
        Neither a model nor a reference table; an unreadable log; a bad method setting.
    BundleError
        The bundle has no stored reference and none was given.
    DataError
        An empty log or window, a log of another model, features missing from the current
        data, a labels file with the wrong columns, columns of different kinds.
    RegistryError
        A ``models:/`` reference cannot be resolved.
    """
    settings = settings or get_settings()
    s = settings.monitor
    bundle, reference = resolve_reference(
        request, settings=settings, has_current=request.current_data is not None
    )
    detector = DriftDetector(settings=s).fit(reference)
    kinds = {n: p.kind for n, p in reference.features.items()}
    performance: Performance | None = None
    target_col: CurrentColumn | None = None
    if request.current_data is not None:
        frame = _read(request.current_data, "current data")
        check_columns(frame, list(kinds), what=f"current data {request.current_data}")
        if bundle is None:
            check_kinds(kinds, infer_kinds(frame[list(kinds)]))
        preds = _predict(bundle, frame) if bundle is not None else None
        window: Any = TableWindow(frame, kinds, preds)
        current = {
            "source": str(request.current_data),
            "rows": len(frame),
            "from": None,
            "to": None,
            "model_version": None,
        }
        if request.target and request.target in frame.columns:
            y = frame[request.target].to_numpy(dtype=np.float64, na_value=np.nan)
            target_col = CurrentColumn(y)
            if preds is not None and bundle is not None:
                keep = np.isfinite(y)
                performance = judge_performance(
                    y[keep], preds[keep], reference=bundle.metrics, settings=s
                )
                if request.shadow is not None:
                    challenger, _ = _load_model(request.shadow, settings)
                    assert challenger is not None
                    check_columns(
                        frame,
                        challenger.spec.names,
                        what=f"current data {request.current_data} for the challenger",
                    )
                    performance = dataclasses.replace(
                        performance,
                        labels_source=f"column {request.target} of {request.current_data}",
                        shadow=measure_shadow(
                            y[keep],
                            preds[keep],
                            _predict(challenger, frame)[keep],
                            identity=(challenger.name, challenger.version, bundle.version),
                            settings=s,
                        ),
                    )
    else:
        assert bundle is not None
        labels = _labels(request, settings)
        window, current = _log_window(request, bundle, kinds, settings, keep_ids=labels is not None)
        if labels is not None:
            segments, predictions = window.segments(), window.predictions()
            y_true, y_pred, unmatched = join_labels(
                labels, segments=segments, predictions=predictions
            )
            performance = dataclasses.replace(
                judge_performance(
                    y_true, y_pred, unmatched=unmatched, reference=bundle.metrics, settings=s
                ),
                labels_source=labels.source,
                shadow=_shadow(request, bundle, labels, (segments, predictions), settings),
            )
    if window.rows == 0:
        raise DataError("the current data has no rows", reason="empty_window")
    result = detector.calculate(window, target=target_col)
    model = (
        None
        if bundle is None
        else {"name": bundle.name, "version": bundle.version, "source": request.model}
    )
    return MonitorReport(
        drift=result,
        performance=performance,
        reference={"source": reference.source, "rows": reference.rows},
        current=current,
        model=model,
        generated_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )


def resolve_reference(
    request: MonitorRequest, *, settings: Settings, has_current: bool
) -> tuple[ModelBundle | None, ReferenceProfile]:
    """The model (if any) and the reference a window is compared with.

    Parameters
    ----------
    request : MonitorRequest
        The model and the reference options.
    settings : Settings
        The monitor's settings and the home.
    has_current : bool
        A current table is given (without a model there is no log to read).

    Raises
    ------
    ConfigError
        Neither a model nor a reference table; no current data without a model.
    BundleError, DataError, RegistryError
        See :func:`run_monitor`.
    """
    bundle, bundle_dir = _load_model(request.model, settings)
    if bundle is None and request.reference_data is None and request.reference_dataset is None:
        raise ConfigError(
            "nothing to compare with: give --model, or --reference-data FILE with "
            "--current-data FILE",
            reason="no_reference",
        )
    if bundle is None and not has_current:
        raise ConfigError(
            "without --model there is no prediction log to read: give --current-data FILE",
            reason="no_current",
        )
    return bundle, _reference(request, bundle, bundle_dir, settings)


def check_output_dir(directory: str | os.PathLike[str]) -> Path:
    """Create ``directory`` if needed and make sure files can be written into it.

    Raises
    ------
    ConfigError
        The directory cannot be created or written to.
    """
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-check."):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report to {out}: {exc.strerror or exc}", reason="unwritable_output"
        ) from None
    return out


def write_report(report: MonitorReport, directory: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``drift.json`` and ``report.html`` into ``directory`` (each via a temp sibling).

    Raises
    ------
    ConfigError
        The directory cannot be written.
    """
    from regressops.monitoring.report_html import render_html

    out = check_output_dir(directory)
    doc = report.to_dict()
    files = {
        DRIFT_FILE: json.dumps(doc, indent=2, allow_nan=False) + "\n",
        REPORT_FILE: render_html(doc),
    }
    temps: list[Path] = []
    try:
        for name, text in files.items():
            fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", dir=out)
            temps.append(Path(tmp_name))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        for name, tmp in zip(files, temps, strict=True):
            os.replace(tmp, out / name)
    except OSError as exc:
        for tmp in temps:
            tmp.unlink(missing_ok=True)
        raise ConfigError(
            f"cannot write the report to {out}: {exc.strerror or exc}", reason="unwritable_output"
        ) from None
    return out / DRIFT_FILE, out / REPORT_FILE


# ---------------------------------------------------------------------- helpers
def _load_model(ref: str | None, settings: Settings) -> tuple[ModelBundle | None, Path | None]:
    if ref is None:
        return None, None
    from regressops.models.bundle import load_bundle

    if not str(ref).startswith("models:/"):  # a bundle directory: no registry imports needed
        return load_bundle(ref), Path(ref)
    from regressops.registry.resolve import resolve_model

    path = resolve_model(ref, settings=settings).path
    return load_bundle(path), path


def _read(path: Path, what: str) -> pd.DataFrame:
    from regressops.data.files import read_table

    frame = read_table(path)
    if frame.empty:
        raise DataError(f"the {what} {path} has no rows", reason="empty_window")
    return frame


def _reference(
    request: MonitorRequest, bundle: ModelBundle | None, bundle_dir: Path | None, s: Settings
) -> ReferenceProfile:
    sample = s.monitor.reference_sample
    if request.reference_data is not None or request.reference_dataset is not None:
        if request.reference_data is not None:
            frame, source = (
                _read(request.reference_data, "reference data"),
                str(request.reference_data),
            )
            target = request.target
        else:
            from regressops.data.selection import DataSelection
            from regressops.training.sources import load_training_data

            td = load_training_data(
                DataSelection(dataset=request.reference_dataset, data_version=request.data_version),
                settings=s,
            )
            frame, target = td.frame, request.target or td.target
            version = td.lineage.get("data_version", td.lineage.get("version"))
            source = f"dataset {request.reference_dataset}" + (
                f" version {version}" if version is not None else ""
            )
        if bundle is not None:
            kinds: dict[str, str] = {f.name: f.kind for f in bundle.spec.features}
            check_columns(frame, list(kinds), what=f"reference {source}")
            preds = _predict(bundle, frame)
        else:
            kinds = infer_kinds(frame, exclude=[target] if target else [])
            preds = None
        return build_reference(
            frame, kinds=kinds, source=source, predictions=preds, target=target, sample_size=sample
        )
    assert bundle_dir is not None
    return load_reference(bundle_dir)


def _predict(bundle: ModelBundle, frame: pd.DataFrame) -> np.ndarray:
    """The model's predictions on a table (unseen categories scored as all zeros)."""
    spec = dataclasses.replace(bundle.spec, unknown="ignore")
    return np.asarray(bundle.predict_matrix(spec.transform(frame)), dtype=np.float64)


def _labels(request: MonitorRequest, settings: Settings) -> Labels | None:
    """``--labels FILE``, else the labels ``POST /feedback`` stored beside the log (if any)."""
    from regressops.serving.log.labels import labels_target

    if request.labels is not None:
        return read_labels(request.labels)
    log = request.prediction_log or settings.serve.prediction_log
    labels = read_label_sink(labels_target(log, settings.home))
    return labels if labels is not None and len(labels) else None


def _shadow(
    request: MonitorRequest,
    bundle: ModelBundle,
    labels: Labels,
    champion: tuple[Any, np.ndarray],
    settings: Settings,
) -> ShadowComparison | None:
    """The challenger in shadow against the champion on the labelled rows both scored.

    None when the log holds no shadow rows in the time range and no ``--shadow`` was named.
    """
    from regressops.serving.log.reader import require_log_target

    where = require_log_target(
        request.prediction_log or settings.serve.prediction_log, settings.home
    )
    sel = LogSelection(since=request.selection.since, until=request.selection.until, shadow=True)
    if request.shadow is not None:
        challenger, _ = _load_model(request.shadow, settings)
        assert challenger is not None
        name, version = challenger.name, challenger.version
        sel = dataclasses.replace(sel, model_name=name, model_version=version)
        window = read_window(where, kinds={}, selection=sel, keep_ids=True)
    else:
        window = read_window(where, kinds={}, selection=sel, keep_ids=True)
        if not window.models:
            return None
        (name, version), _ = window.models.most_common(1)[0]
        if len(window.models) > 1:  # several challengers took turns: the one with most rows
            sel = dataclasses.replace(sel, model_name=name, model_version=version)
            window = read_window(where, kinds={}, selection=sel, keep_ids=True)
    return compare_shadow(
        labels,
        champion=champion,
        shadow=(window.segments(), window.predictions()),
        identity=(name, version, bundle.version),
        settings=settings.monitor,
    )


def _log_window(
    request: MonitorRequest,
    bundle: ModelBundle,
    kinds: dict[str, str],
    settings: Settings,
    *,
    keep_ids: bool,
) -> tuple[LogWindow, dict[str, Any]]:
    from regressops.serving.log.reader import require_log_target

    target = request.prediction_log or settings.serve.prediction_log
    where = require_log_target(target, settings.home)
    selection = dataclasses.replace(
        request.selection, model_name=bundle.name, model_version=bundle.version
    )
    window = read_window(
        where,
        kinds=kinds,
        selection=selection,
        keep_ids=keep_ids,
        workers=settings.monitor.worker_count(),
    )
    if window.rows == 0:
        raise DataError(_empty_message(where, window, selection), reason="empty_window")
    current = {
        "source": where,
        "rows": window.rows,
        "from": window.first_ts,
        "to": window.last_ts,
        "model_version": ", ".join(sorted(window.versions)),
        "selection": selection.describe(),
    }
    return window, current


def _empty_message(where: str, window: LogWindow, sel: LogSelection) -> str:
    if not window.seen:
        return f"the prediction log {where} is empty"
    held = ", ".join(f"{n} version {v}: {c} rows" for (n, v), c in window.seen.most_common(5))
    ours = sum(
        c for (n, v), c in window.seen.items() if n == sel.model_name and v == sel.model_version
    )
    if ours:
        return f"no logged rows of {sel.describe()} in {where} (the log holds {ours} rows of it)"
    return (
        f"the prediction log {where} holds no rows of model {sel.model_name} version "
        f"{sel.model_version}; it holds {held}"
    )
