"""How a model is fitted, said once: :class:`EstimatorParams`, and the fit itself.

The command line builds one frozen :class:`EstimatorParams` per ``--model`` kind from its
options (and the parameters ``regressops tune`` wrote back); its values are checked when it is
built, with scikit-learn's parameter constraints, before any data is loaded.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from regressops.errors import ConfigError

logger = logging.getLogger(__name__)

ITERATIVE_SOLVERS = frozenset({"gd", "sgd", "minibatch"})


@dataclass(frozen=True)
class EstimatorParams:
    """A model kind and its estimator parameters, checked when built.

    Parameters
    ----------
    kind : str, default="linear"
        Model kind from :data:`regressops.models.catalog.KINDS`.
    params : mapping, optional
        Estimator parameters (``None`` values are dropped; missing ones keep the estimator's
        default). A ``linear`` model without ``solver`` gets ``settings.train.solver`` at
        training (:meth:`with_default_solver`).

    Raises
    ------
    ConfigError
        An unknown kind, solver or parameter, or a value out of its range.

    Examples
    --------
    >>> EstimatorParams.build("ridge", alpha=0.5).params["alpha"]
    0.5
    >>> EstimatorParams("linear", {"solver": "newton"})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    regressops.errors.ConfigError: unknown solver 'newton'; expected one of gd, sgd, ...
    """

    kind: str = "linear"
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from regressops.models.catalog import get_kind

        get_kind(self.kind)
        clean = {k: v for k, v in dict(self.params).items() if v is not None}
        object.__setattr__(self, "params", MappingProxyType(clean))
        if self.kind == "linear" and "solver" in clean:
            from regressops.models.linear import SOLVERS

            if clean["solver"] not in SOLVERS:
                raise ConfigError(
                    f"unknown solver {clean['solver']!r}; expected one of {', '.join(SOLVERS)}",
                    reason="unknown_solver",
                )
        self.make(seed=0)  # the estimator's own constraints, once, before any data is loaded

    @classmethod
    def build(
        cls,
        kind: str = "linear",
        *,
        params: Mapping[str, Any] | None = None,
        **named: Any,
    ) -> EstimatorParams:
        """Merge ``params`` (e.g. tuned ones) with the options given by name, which win.

        ``named`` are the command line's ``solver``, ``learning_rate``, ``max_iter``,
        ``batch_size`` and ``alpha``; ``None`` means "not given".
        """
        merged = {**(params or {}), **{k: v for k, v in named.items() if v is not None}}
        return cls(kind, merged)

    @property
    def solver(self) -> str:
        """The solver name (``""`` for kinds without one)."""
        return str(self.params.get("solver", ""))

    @property
    def iterative(self) -> bool:
        """True for the epoch-based solvers (gd, sgd, minibatch)."""
        return self.solver in ITERATIVE_SOLVERS

    def with_default_solver(self, solver: str) -> EstimatorParams:
        """A ``linear`` model without a solver gets ``solver``; others are returned as they are."""
        if self.kind != "linear" or "solver" in self.params:
            return self
        return replace(self, params={**self.params, "solver": solver})

    def make(self, seed: int) -> Any:
        """Build the unfitted estimator with ``seed``, its parameters checked."""
        from regressops.models.catalog import make_estimator

        with parameter_errors():
            estimator = make_estimator(self.kind, dict(self.params), random_state=seed)
            validate = getattr(estimator, "_validate_params", None)  # scikit-learn's check
            if validate is not None:
                validate()
        return estimator


@contextlib.contextmanager
def parameter_errors() -> Iterator[None]:
    """Turn scikit-learn's InvalidParameterError (and a bad keyword) into a ConfigError."""
    from sklearn.utils._param_validation import InvalidParameterError

    try:
        yield
    except InvalidParameterError as exc:
        raise ConfigError(str(exc), reason="invalid_parameter") from None


def fit(estimator: Any, X: np.ndarray, y: np.ndarray) -> bool:
    """Fit; return False when the solver warned that it did not converge."""
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught, parameter_errors():
        warnings.simplefilter("always", ConvergenceWarning)
        estimator.fit(X, y)
    converged = True
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            converged = False
            logger.warning("%s", w.message)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return converged


def fit_details(
    estimator: Any, solver: str, converged: bool, loss_curve: list[float]
) -> dict[str, Any]:
    """The ``fit`` section of ``metrics.json``: convergence, solver, epochs, loss curve."""
    details: dict[str, Any] = {"converged": converged}
    if solver:
        details["solver"] = solver
    if hasattr(estimator, "n_iter_"):
        details["n_iter"] = int(np.max(estimator.n_iter_))
    if loss_curve:
        details["final_loss"] = loss_curve[-1]
        details["loss_curve"] = loss_curve
    return details
