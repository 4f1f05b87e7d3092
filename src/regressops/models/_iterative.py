"""Iterative least-squares solvers of ``LinearRegressor``: gd, sgd and minibatch.

All three work in a standardised space (features and target centred and scaled, computed
lazily per batch, never as a copy of ``X``) and minimise, with ``c_i = n w_i / W``,

    F(b, c) = (1 / 2W) * [sum_i w_i (y_i - x_i @ b - c)**2 + sum_j pen_j b_j**2]

which is the estimator's objective divided by the target's variance (``pen_j`` is ``alpha``
mapped to the standardised coefficient ``j``). Safe step sizes come from the curvature of
``F``: ``1/L`` for gd and for minibatch when one batch holds all rows (``L`` the largest
eigenvalue of the scaled Gram matrix), ``1 / (L + R2/B)`` for batches of ``B`` samples, where
``R2`` bounds the per-sample curvature (a fourth-moment ratio of the row norms). sgd draws rows
by importance (see :func:`._epochs.importance_draws`) so that one sample's curvature is at
most twice the mean row norm; without shuffling it keeps every single update non-expansive.

sgd and minibatch average their iterates (Polyak-Ruppert) from the second epoch on, which
makes constant-step SGD converge to the least-squares solution instead of wandering around it;
the average restarts whenever the last iterate beats it (still travelling, or noiseless data).
An ``"auto"`` step that still diverges is halved and the fit restarted.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state

from regressops.errors import DivergenceError
from regressops.models import _epochs as epochs
from regressops.models._parallel import blas_single_thread

if TYPE_CHECKING:
    from regressops.models.linear import LinearRegressor

logger = logging.getLogger(__name__)

FloatArray = NDArray[np.float64]

SAMPLE_ROWS = 65536  # rows used to estimate scales and curvature
BLOWUP = 1e3  # loss above BLOWUP * initial loss counts as divergence
AUTO_RETRIES = 8  # halvings of an "auto" step before giving up
# sgd/minibatch stop no sooner than (d + 1) / (samples averaged) <= AVERAGE_ERROR_TOL * tol
AVERAGE_ERROR_TOL = 2.5


@dataclass
class IterState:
    """Everything an iterative fit carries between epochs and ``partial_fit`` calls."""

    x_mean: FloatArray
    x_scale: FloatArray
    y_mean: float
    y_scale: float
    pen: FloatArray  # alpha per standardised coefficient
    step: float
    fit_intercept: bool
    rng: np.random.RandomState
    theta: FloatArray  # [b..., c] in the standardised space
    theta_avg: FloatArray
    n_avg: int = 0
    n_iter: int = 0
    loss_curve: list[float] = field(default_factory=list)
    initial_loss: float = float("nan")

    @property
    def d(self) -> int:
        return int(self.x_mean.shape[0])

    def model_theta(self) -> FloatArray:
        """The iterate reported as the model: the running average once there is one."""
        return self.theta_avg if self.n_avg else self.theta

    @property
    def coef(self) -> FloatArray:
        return np.asarray(self.model_theta()[:-1] * self.y_scale / self.x_scale)

    @property
    def intercept(self) -> float:
        if not self.fit_intercept:
            return 0.0
        c = float(self.model_theta()[-1])
        return self.y_mean + self.y_scale * c - float(self.x_mean @ self.coef)


def _loss(
    state: IterState,
    X: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    theta: FloatArray | None = None,
) -> float:
    """Standardised objective F at ``theta`` (default: the reported iterate), in row blocks."""
    theta = state.model_theta() if theta is None else theta
    b = theta[:-1] / state.x_scale
    offset = state.y_mean + state.y_scale * theta[-1] - float(state.x_mean @ b * state.y_scale)
    total, wsum = 0.0, 0.0
    step = 262144
    for start in range(0, len(X), step):
        sl = slice(start, start + step)
        r = (y[sl] - offset - state.y_scale * (X[sl] @ b)) / state.y_scale
        total += float(r @ r) if w is None else float(w[sl] @ (r * r))
        wsum += (min(start + step, len(X)) - start) if w is None else float(w[sl].sum())
    if wsum <= 0:
        return 0.0
    return 0.5 * (total + float(state.pen @ theta[:-1] ** 2)) / wsum


def _full_batch(est: LinearRegressor, n: int) -> bool:
    """gd, or minibatch with one batch per epoch: deterministic, so no averaging."""
    return est.solver == "gd" or (est.solver == "minibatch" and est.batch_size >= n)


def _init_state(
    est: LinearRegressor, X: FloatArray, y: FloatArray, w: FloatArray | None, step: float | None
) -> IterState:
    n, d = X.shape
    rng = check_random_state(est.random_state)
    total = float(n if w is None else w.sum())
    if total <= 0:
        raise ValueError("sample_weight sums to zero: at least one sample needs a positive weight")
    sample = np.sort(rng.choice(n, SAMPLE_ROWS, replace=False)) if n > SAMPLE_ROWS else slice(None)
    Xs, ws = X[sample], None if w is None else w[sample]
    if est.fit_intercept:
        x_mean = (X.sum(axis=0) if w is None else w @ X) / total
        y_mean = float((y.sum() if w is None else w @ y) / total)
    else:
        x_mean, y_mean = np.zeros(d), 0.0
    wsum_s = float(len(Xs) if ws is None else ws.sum()) or 1.0
    x_spread = np.sqrt(
        ((Xs - x_mean) ** 2 if ws is None else ws[:, None] * (Xs - x_mean) ** 2).sum(axis=0)
        / wsum_s
    )
    x_scale = np.where(np.isfinite(x_spread) & (x_spread > 0), x_spread, 1.0)
    yc = y - y_mean
    y_spread = float(np.sqrt((yc @ yc if w is None else w @ (yc * yc)) / total))
    y_scale = y_spread if np.isfinite(y_spread) and y_spread > 0 else 1.0
    pen = est.alpha / x_scale**2  # alpha ||beta||^2 / y_scale^2, per standardised b_j
    if step is None:
        step = _auto_step(est, (Xs - x_mean) / x_scale, ws, pen / total, n)
    theta = np.zeros(d + 1)
    return IterState(
        x_mean, x_scale, y_mean, y_scale, pen, step, est.fit_intercept, rng, theta, theta.copy()
    )


def _auto_step(
    est: LinearRegressor, Xs: FloatArray, ws: FloatArray | None, pen: FloatArray, n: int
) -> float:
    """Safe constant step from the curvature of the standardised objective."""
    c = np.ones(len(Xs)) if ws is None else ws * (len(Xs) / ws.sum())
    aug = np.hstack([Xs, np.full((len(Xs), 1), 1.0 if est.fit_intercept else 0.0)])
    if aug.shape[1] <= 512:
        gram = (aug * c[:, None]).T @ aug / len(Xs)
        lam = float(np.linalg.eigvalsh(gram)[-1])
    else:
        v = np.ones(aug.shape[1]) / np.sqrt(aug.shape[1])
        for _ in range(50):
            u = aug.T @ (c * (aug @ v)) / len(Xs)
            lam = float(np.linalg.norm(u))
            v = u / (lam or 1.0)
        lam *= 1.1
    L = lam + float(pen.max(initial=0.0))
    if _full_batch(est, n):
        return 1.0 / L
    norms2 = np.einsum("ij,ij->i", aug, aug)
    R2 = float((c * c * norms2 * norms2).sum() / max((c * norms2).sum(), 1e-300))
    if est.solver == "sgd":
        # One sample moves the iterate alone. With shuffle, rows are drawn with probability
        # (1/n + c_i |x_i|^2 / sum c|x|^2) / 2 and re-weighted, which bounds every update's
        # curvature by 2 mean(c |x|^2); in order, every update must be non-expansive by itself.
        bound = 2.0 * float((c * norms2).mean()) if est.shuffle else float((c * norms2).max())
        return 1.0 / (L + max(bound, 1e-12))
    return 1.0 / (L + R2 / min(est.batch_size, n))


def _run_epoch(
    est: LinearRegressor,
    state: IterState,
    X: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    cache: dict[str, Any],
) -> None:
    """One epoch; ``cache`` holds what stays valid while ``X`` does (one fit or partial_fit)."""
    n = len(X)
    if _full_batch(est, n):
        epochs.epoch_gd(state, X, y, w)
        return
    W = float(n if w is None else w.sum())
    cw = None if w is None else w * (n / W)
    pen_w = state.pen / W
    averaging = state.n_iter >= 1
    if est.solver == "sgd":
        if est.shuffle:
            if "sampling" not in cache:
                cache["sampling"] = epochs.importance_draws(state, X, cw)
            cw, cdf = cache["sampling"]
            order = epochs.draw(state, cdf)
        else:
            order = np.arange(n)
        epochs.epoch_sgd(state, X, y, cw, order, averaging, pen_w)
        return
    order = state.rng.permutation(n) if est.shuffle else np.arange(n)
    epochs.epoch_minibatch(state, X, y, cw, order, min(est.batch_size, n), averaging, pen_w)


def _restart_average_if_behind(
    state: IterState, X: FloatArray, y: FloatArray, w: FloatArray | None, avg_loss: float
) -> float:
    """Restart the running average when the last iterate beats it.

    While the iterates still travel (or converge linearly, as on noiseless data) the average
    lags behind them; once they bounce around the optimum it wins. Restarting keeps the
    average to the iterates of the current regime.
    """
    last = _loss(state, X, y, w, state.theta)
    if last < avg_loss:
        state.theta_avg = state.theta.copy()
        state.n_avg = 0
        return last
    return avg_loss


def _average_settled(est: LinearRegressor, state: IterState, n: int, loss: float) -> bool:
    """Whether the averaged iterate has seen enough samples for early stopping to judge it.

    Averaged constant-step SGD on least squares approaches the optimum with an excess loss of
    about ``loss * (d + 1) / N`` after ``N`` averaged samples, whatever the seed; its loss
    also wobbles by that much from epoch to epoch, so a stall seen earlier says little.
    Early stopping may end the fit only once that error is below ``AVERAGE_ERROR_TOL * tol``
    times the loss (floored, as the stall test is, at ``1e-6`` of the initial loss, so that
    noiseless data, whose loss goes to zero, stops as soon as it stalls).
    """
    if _full_batch(est, n) or est.tol is None or est.tol <= 0:
        return True
    samples = state.n_avg * (1 if est.solver == "sgd" else min(est.batch_size, n))
    floor = max(loss, 1e-6 * state.initial_loss)
    return loss * (state.d + 1) <= samples * AVERAGE_ERROR_TOL * est.tol * floor


def _diverged(state: IterState, loss: float) -> bool:
    return not (np.isfinite(loss) and np.all(np.isfinite(state.theta))) or loss > BLOWUP * max(
        state.initial_loss, 1e-12
    )


def _divergence_error(est: LinearRegressor, state: IterState, epoch: int) -> DivergenceError:
    if est.learning_rate == "auto":
        hint = "the data may hold extreme values: check it, scale it, or use solver='exact'"
    else:
        hint = f"lower learning_rate (e.g. {state.step / 10:g}) or use learning_rate='auto'"
    return DivergenceError(
        f"solver {est.solver!r} diverged at epoch {epoch} with learning_rate={state.step:g} "
        f"(loss became non-finite or exploded): {hint}",
        solver=est.solver,
        epoch=epoch,
        learning_rate=state.step,
    )


def fit_iterative(
    est: LinearRegressor,
    X: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    *,
    state: IterState | None,
    epochs: int | None,
) -> IterState:
    """Run ``epochs`` epochs (``None``: ``fit`` with early stopping up to ``max_iter``)."""
    # Small matrix products: threaded BLAS only adds synchronisation (and stalls badly on a
    # loaded machine), so the epochs run with single-threaded BLAS.
    with blas_single_thread():
        if state is not None:
            return _epochs(est, state, X, y, w, epochs)
        step = None if est.learning_rate == "auto" else float(est.learning_rate)
        for attempt in range(AUTO_RETRIES + 1):
            state = _init_state(est, X, y, w, step)
            try:
                return _epochs(est, state, X, y, w, epochs)
            except DivergenceError:
                if est.learning_rate != "auto" or attempt == AUTO_RETRIES:
                    raise
                step = state.step / 2
                logger.warning("%s diverged; retrying with learning rate %g", est.solver, step)
    raise AssertionError("unreachable")  # pragma: no cover


def _epochs(
    est: LinearRegressor,
    state: IterState,
    X: FloatArray,
    y: FloatArray,
    w: FloatArray | None,
    epochs: int | None,
) -> IterState:
    level = logging.INFO if est.verbose else logging.DEBUG
    if not np.isfinite(state.initial_loss):
        state.initial_loss = _loss(state, X, y, w)
    budget = est.max_iter if epochs is None else epochs
    best, stale = np.inf, 0
    cache: dict[str, Any] = {}
    for epoch in range(1, budget + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            _run_epoch(est, state, X, y, w, cache)
            loss = _loss(state, X, y, w)
            if state.n_avg:
                loss = _restart_average_if_behind(state, X, y, w, loss)
        state.n_iter += 1
        if _diverged(state, loss):
            raise _divergence_error(est, state, state.n_iter)
        state.loss_curve.append(loss * state.y_scale**2)
        logger.log(level, "%s epoch %d: loss %.6g", est.solver, state.n_iter, state.loss_curve[-1])
        if est.callback is not None:
            from regressops.models.linear import FitProgress

            est.callback(FitProgress(est.solver, epoch, budget, state.loss_curve[-1]))
        if epochs is not None or est.tol is None:
            continue
        stale = stale + 1 if loss > best - est.tol * max(best, 1e-6 * state.initial_loss) else 0
        best = min(best, loss)
        if stale >= est.n_iter_no_change and _average_settled(est, state, len(X), loss):
            return state
    if epochs is None:
        warnings.warn(
            f"LinearRegressor(solver={est.solver!r}) reached max_iter={est.max_iter} before "
            "converging; increase max_iter or tol",
            ConvergenceWarning,
            stacklevel=5,  # _epochs, fit_iterative, fit, sklearn's _fit_context, caller
        )
    return state
