"""``LinearRegressor``: least squares by gradient descent, SGD, mini-batches or exact QR.

A scikit-learn compatible estimator written on numpy/scipy. The iterative solvers live in
:mod:`regressops.models._iterative` (the compiled sgd loop in :mod:`regressops.models._compiled`),
the streaming, mergeable QR factor of ``"exact"`` in :mod:`regressops.models._qr` and its
Gram/Cholesky fast path in :mod:`regressops.models._gram`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context
from sklearn.utils import assert_all_finite
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from regressops.models._parallel import blas_single_thread
from regressops.models._qr import QRFactor

logger = logging.getLogger(__name__)

SOLVERS = ("gd", "sgd", "minibatch", "exact")


@dataclass(frozen=True)
class FitProgress:
    """What a progress ``callback`` receives after each step of a fit.

    Attributes
    ----------
    solver : str
        The solver running.
    step : int
        Epochs done (iterative solvers) or rows folded in so far (``"exact"``).
    total : int
        ``max_iter`` (iterative solvers; early stopping may end sooner) or the rows to fold in.
    loss : float or None
        Training objective after this epoch (iterative solvers), ``None`` for ``"exact"``.
    """

    solver: str
    step: int
    total: int
    loss: float | None = None


ProgressCallback = Callable[[FitProgress], object]


class LinearRegressor(RegressorMixin, BaseEstimator):
    """Linear least squares (optionally L2-penalised), fitted by one of four solvers.

    Minimises ``sum_i w_i (y_i - x_i @ coef - intercept)**2 + alpha * ||coef||**2`` (the
    convention of :class:`sklearn.linear_model.Ridge`; the intercept is not penalised).

    Parameters
    ----------
    solver : {"exact", "gd", "sgd", "minibatch"}, default="exact"
        ``"exact"``: the triangular factor of the centred, scaled design, from one Gram
        pass and a Cholesky where its condition number certifies ``cond**2 * eps <= 1e-12``
        (large inputs), otherwise from Householder QR with iterative refinement when
        ill-conditioned (see :mod:`regressops.models._gram`). Collinear columns (e.g. every
        one-hot category beside the intercept) get the minimum-norm least-squares
        coefficients, as with :class:`sklearn.linear_model.LinearRegression`. Streams in
        ``partial_fit`` with memory independent of the number of rows, and factors merge
        (:meth:`merge`). ``"gd"``: full-batch gradient descent. ``"sgd"``: one sample per
        update, with iterate averaging (a compiled loop when numba, the ``fast`` extra, is
        installed). ``"minibatch"``: ``batch_size`` samples per update, with iterate
        averaging.
        The iterative solvers standardise features and target internally and map the
        coefficients back.
    learning_rate : float or "auto", default="auto"
        Step size of the iterative solvers in the standardised space. ``"auto"`` takes a safe
        step from the curvature of the data (largest eigenvalue of the scaled Gram matrix and
        the spread of the per-sample norms) and halves it if the loss still blows up.
    max_iter : int, default=1000
        Maximum number of epochs (passes over the data) of the iterative solvers.
    batch_size : int, default=256
        Samples per update of ``"minibatch"`` (clipped to the number of samples).
    tol : float or None, default=1e-5
        Early stopping: training stops once the training loss has improved by less than
        ``tol`` times its best value for ``n_iter_no_change`` consecutive epochs; ``"sgd"``
        and ``"minibatch"`` stop no sooner than their averaged iterate has seen about
        ``(n_features + 1) / (2.5 * tol)`` samples (its expected excess loss), whatever the
        seed. ``None`` runs ``max_iter`` epochs.
    n_iter_no_change : int, default=5
        Epochs without sufficient improvement before stopping.
    alpha : float, default=0.0
        L2 penalty (ridge) on the coefficients.
    fit_intercept : bool, default=True
        Whether to fit an intercept.
    shuffle : bool, default=True
        Shuffle the samples every epoch (``"sgd"``, ``"minibatch"``).
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffling and the step-size estimate.
    verbose : int, default=0
        Log the loss of every epoch at INFO level (otherwise DEBUG).
    callback : callable or None, default=None
        Called as ``callback(FitProgress(...))`` after every epoch (iterative solvers) or row
        block (``"exact"``), e.g. to drive a progress bar. Its return value is ignored.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features,)
        Coefficients.
    intercept_ : float
        Intercept (0.0 when ``fit_intercept=False``).
    n_iter_ : int
        Epochs run (1 for ``"exact"``).
    loss_curve_ : list of float
        Training objective ``(sum w r**2 + alpha ||coef||**2) / (2 sum w)`` after each epoch
        (one value for ``"exact"``).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Feature names, when ``X`` had string column names.
    n_samples_seen_ : int
        Rows seen by ``fit`` or the ``partial_fit`` calls since.

    Examples
    --------
    >>> import numpy as np
    >>> from regressops.models import LinearRegressor
    >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
    >>> y = 2.0 * X[:, 0] + 1.0
    >>> model = LinearRegressor().fit(X, y)
    >>> print(model.coef_.round(6), round(model.intercept_, 6))
    [2.] 1.0
    >>> model.predict([[4.0]]).round(6)
    array([9.])
    """

    _parameter_constraints: dict[str, list[Any]] = {  # noqa: RUF012 - sklearn's convention
        "solver": [StrOptions(set(SOLVERS))],
        "learning_rate": [Interval(Real, 0, None, closed="neither"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left"), None],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "fit_intercept": ["boolean"],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callback": [callable, None],
    }

    def __init__(
        self,
        *,
        solver: str = "exact",
        learning_rate: float | str = "auto",
        max_iter: int = 1000,
        batch_size: int = 256,
        tol: float | None = 1e-5,
        n_iter_no_change: int = 5,
        alpha: float = 0.0,
        fit_intercept: bool = True,
        shuffle: bool = True,
        random_state: int | np.random.RandomState | None = None,
        verbose: int = 0,
        callback: ProgressCallback | None = None,
    ) -> None:
        self.solver = solver
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.shuffle = shuffle
        self.random_state = random_state
        self.verbose = verbose
        self.callback = callback

    # -- fitting ---------------------------------------------------------------------------

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> LinearRegressor:
        """Fit the model to ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : array-like of shape (n_samples,)
            Target values.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights; a weight of 2 counts like the row twice.

        Returns
        -------
        self : LinearRegressor
            The fitted estimator.

        Raises
        ------
        regressops.errors.DivergenceError
            When an iterative solver's loss or coefficients become non-finite or blow up.
        """
        Xa, ya = self._validate(X, y, reset=True)
        w = self._weights(sample_weight, Xa)
        self._state: Any = None
        if self.solver == "exact":
            self._fit_exact(Xa, ya, w, refine=True)
        else:
            from regressops.models._iterative import fit_iterative

            self._set_iterative(fit_iterative(self, Xa, ya, w, state=None, epochs=None))
        self.n_samples_seen_ = Xa.shape[0]
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None
    ) -> LinearRegressor:
        """Update the model with one more chunk of rows.

        ``"exact"`` folds the chunk into its triangular factor: after any sequence of chunks
        the coefficients equal ``fit`` on all rows seen (to rounding), with memory independent
        of their number. The iterative solvers run one epoch over the chunk from the current
        coefficients; standardisation and the step size come from the first chunk.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            A chunk of training data.
        y : array-like of shape (n_samples,)
            Its targets.
        sample_weight : array-like of shape (n_samples,), optional
            Non-negative weights.

        Returns
        -------
        self : LinearRegressor
            The updated estimator.
        """
        first = getattr(self, "_state", None) is None or not hasattr(self, "coef_")
        if not first and getattr(self, "_solver_fitted", self.solver) != self.solver:
            first = True
        Xa, ya = self._validate(X, y, reset=first)
        w = self._weights(sample_weight, Xa)
        if first:
            self._state = None
            self.n_samples_seen_ = 0
        if self.solver == "exact":
            self._fit_exact(Xa, ya, w, refine=False)
        else:
            from regressops.models._iterative import fit_iterative

            self._set_iterative(fit_iterative(self, Xa, ya, w, state=self._state, epochs=1))
        self.n_samples_seen_ += Xa.shape[0]
        return self

    def merge(self, other: LinearRegressor) -> LinearRegressor:
        """Fold another ``"exact"`` model's factor into this one (rows seen elsewhere).

        The result equals fitting on the union of both models' rows, so chunks of a data set
        can be fitted by ``partial_fit`` on different workers and merged. ``other`` is left
        unchanged.

        Parameters
        ----------
        other : LinearRegressor
            A fitted ``solver="exact"`` model with the same features and ``fit_intercept``.

        Returns
        -------
        self : LinearRegressor
            The merged estimator.
        """
        check_is_fitted(self)
        check_is_fitted(other)
        mine, theirs = getattr(self, "_state", None), getattr(other, "_state", None)
        if not isinstance(mine, QRFactor) or not isinstance(theirs, QRFactor):
            raise ValueError("merge needs two models fitted with solver='exact'")
        if self.n_features_in_ != other.n_features_in_:
            raise ValueError(
                f"cannot merge a model with {other.n_features_in_} features into one with "
                f"{self.n_features_in_}"
            )
        mine.merge(theirs)
        with blas_single_thread():
            z, R, _ = mine.solve(self.alpha)
        self._set_exact(mine, z, R)
        self.n_samples_seen_ += other.n_samples_seen_
        return self

    # -- prediction ------------------------------------------------------------------------

    def predict(self, X: ArrayLike) -> NDArray[np.float64]:
        """Predict targets for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Samples.

        Returns
        -------
        ndarray of shape (n_samples,)
            ``X @ coef_ + intercept_``.
        """
        check_is_fitted(self)
        Xa = validate_data(self, X, reset=False, dtype=np.float64)
        return np.asarray(Xa @ self.coef_ + self.intercept_, dtype=np.float64)

    # -- internals -------------------------------------------------------------------------

    def _validate(self, X: ArrayLike, y: ArrayLike, *, reset: bool) -> Any:
        """scikit-learn's checks; ``"exact"`` leaves X's finiteness to its factor (one pass less).

        The exact solver's Gram pass turns any NaN or infinity into non-finite sums and only
        then runs the full check (:meth:`_check_finite`), with scikit-learn's message.
        """
        return validate_data(
            self,
            X,
            y,
            reset=reset,
            dtype=np.float64,
            y_numeric=True,
            ensure_all_finite=self.solver != "exact",
        )

    def _check_finite(self, X: NDArray[np.float64]) -> None:
        assert_all_finite(X, input_name="X", estimator_name=type(self).__name__)

    @staticmethod
    def _weights(sample_weight: ArrayLike | None, X: NDArray[np.float64]) -> Any:
        if sample_weight is None:
            return None
        return _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)

    def _fit_exact(
        self, X: NDArray[np.float64], y: NDArray[np.float64], w: Any, *, refine: bool
    ) -> None:
        factor = self._state if isinstance(self._state, QRFactor) else None
        if factor is None:
            factor = QRFactor.from_first_chunk(X, y, w, fit_intercept=self.fit_intercept)
        self._fold(factor, X, y, w)
        self._state = factor
        self._solver_fitted = "exact"
        # p x p linear algebra: threaded BLAS only stalls on it (badly on a loaded machine)
        with blas_single_thread():
            z, R, full_rank = factor.solve(self.alpha)
            refine = refine and full_rank and factor.needs_refinement(R)
        if refine:
            z = factor.refine(z, R, X, y, w, self.alpha)
        self._set_exact(factor, z, R)

    def _fold(
        self, factor: QRFactor, X: NDArray[np.float64], y: NDArray[np.float64], w: Any
    ) -> None:
        """Fold rows in, reporting progress per block when a callback is set."""
        if self.callback is None:
            factor.update(X, y, w, check_finite=lambda: self._check_finite(X))
            return
        self._check_finite(X)  # before the first block: a failure leaves the factor as it was
        n, rows = X.shape[0], 262144
        for start in range(0, n, rows):
            stop = min(n, start + rows)
            factor.update(X[start:stop], y[start:stop], None if w is None else w[start:stop])
            self.callback(FitProgress("exact", stop, n))

    def _set_exact(self, factor: QRFactor, z: NDArray[np.float64], R: NDArray[np.float64]) -> None:
        coef, intercept = factor.to_model(z)
        self.coef_, self.intercept_ = np.asarray(coef, dtype=np.float64), float(intercept)
        self.n_iter_ = 1
        self.loss_curve_ = [factor.objective(z, R)]

    def _set_iterative(self, state: Any) -> None:
        self._state = state
        self._solver_fitted = self.solver
        self.coef_, self.intercept_ = state.coef, float(state.intercept)
        self.n_iter_ = state.n_iter
        self.loss_curve_ = list(state.loss_curve)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        return tags
