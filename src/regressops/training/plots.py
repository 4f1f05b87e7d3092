"""Evaluation plots as PNG files: predicted vs actual, residuals, loss curve.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, no display, no
global figure state), so plotting is safe in servers, threads and CI.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

PREDICTED_VS_ACTUAL = "predicted_vs_actual.png"
RESIDUALS = "residuals.png"
LOSS_CURVE = "loss_curve.png"
_MAX_POINTS = 20_000


def _figure(width: float = 5.5, height: float = 4.5) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | os.PathLike[str]) -> Path:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", metadata={"Software": None})
    logger.debug("wrote plot %s", out)
    return out


def _thin(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Keep at most ``_MAX_POINTS`` evenly spaced points so big test sets plot quickly."""
    n = arrays[0].size
    if n <= _MAX_POINTS:
        return arrays
    keep = np.linspace(0, n - 1, _MAX_POINTS).astype(np.int64)
    return tuple(a[keep] for a in arrays)


def plot_predicted_vs_actual(
    y_true: Any, y_pred: Any, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Scatter predictions against observed values, with the identity line; write a PNG."""
    t, p = _thin(np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel())
    fig = _figure()
    ax = fig.add_subplot()
    ax.scatter(t, p, s=10, alpha=0.5, edgecolors="none")
    lo = float(min(t.min(), p.min()))
    hi = float(max(t.max(), p.max()))
    ax.plot([lo, hi], [lo, hi], color="black", linewidth=1, linestyle="--", label="y = x")
    ax.set_xlabel("actual")
    ax.set_ylabel("predicted")
    ax.set_title(title or "Predicted vs actual (test set)")
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_residuals(
    y_true: Any, y_pred: Any, path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Plot residuals (actual - predicted) against predictions and their histogram; write a PNG."""
    t, p = _thin(np.asarray(y_true, dtype=float).ravel(), np.asarray(y_pred, dtype=float).ravel())
    residuals = t - p
    fig = _figure(width=9.0)
    ax_scatter, ax_hist = fig.subplots(1, 2)
    ax_scatter.scatter(p, residuals, s=10, alpha=0.5, edgecolors="none")
    ax_scatter.axhline(0.0, color="black", linewidth=1, linestyle="--")
    ax_scatter.set_xlabel("predicted")
    ax_scatter.set_ylabel("residual (actual - predicted)")
    ax_hist.hist(residuals, bins=min(50, max(5, residuals.size // 5)))
    ax_hist.set_xlabel("residual")
    ax_hist.set_ylabel("count")
    fig.suptitle(title or "Residuals (test set)")
    return _save(fig, path)


def plot_loss_curve(
    loss_curve: Sequence[float], path: str | os.PathLike[str], *, title: str = ""
) -> Path:
    """Plot the training loss per epoch (log scale when it is positive); write a PNG."""
    losses = np.asarray(loss_curve, dtype=float)
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(np.arange(1, losses.size + 1), losses, marker="o" if losses.size <= 30 else None)
    if losses.size and np.isfinite(losses).all() and (losses > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(title or "Loss curve")
    return _save(fig, path)


def save_evaluation_plots(
    directory: str | os.PathLike[str],
    y_true: Any,
    y_pred: Any,
    *,
    loss_curve: Sequence[float] | None = None,
    title: str = "",
) -> list[Path]:
    """Write the evaluation plots into ``directory``; the loss curve only when one is given.

    Returns
    -------
    list of Path
        The PNG files written.
    """
    out = Path(directory)
    prefix = f"{title}: " if title else ""
    paths = [
        plot_predicted_vs_actual(
            y_true, y_pred, out / PREDICTED_VS_ACTUAL, title=f"{prefix}predicted vs actual (test)"
        ),
        plot_residuals(y_true, y_pred, out / RESIDUALS, title=f"{prefix}residuals (test)"),
    ]
    if loss_curve is not None and len(loss_curve) > 0:
        paths.append(plot_loss_curve(loss_curve, out / LOSS_CURVE, title=f"{prefix}loss curve"))
    return paths
