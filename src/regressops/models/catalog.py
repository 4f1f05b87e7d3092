"""The model catalog: which kinds of regressor regressops trains, how, and how they are saved.

========  =============================================  ==========================================
kind      estimator                                      bundle
========  =============================================  ==========================================
linear    our :class:`~regressops.models.linear.         coefficients in ``model.json``; served with
          LinearRegressor` (any solver)                  numpy only
ridge     our LinearRegressor, ``solver="exact"`` with   coefficients, like ``linear`` (so a ridge
          an L2 penalty ``alpha`` (default 1.0)          model is served with numpy only too)
tree      scikit-learn ``DecisionTreeRegressor``         ``model.skops`` (no pickle)
forest    scikit-learn ``RandomForestRegressor``         ``model.skops``
hgb       scikit-learn ``HistGradientBoostingRegressor`` ``model.skops``
========  =============================================  ==========================================

``ridge`` is deliberately our own exact solver with ``alpha`` rather than scikit-learn's ``Ridge``:
the result is a set of coefficients, so the bundle stays linear, loads without scikit-learn and
is served by the same numpy dot product as ``linear``.

Each kind has default parameters (sized so that a model trains in seconds on the built-in data
and its bundle stays a few MB) and a search space for :mod:`regressops.training.tune`, declared
as data (:class:`Dimension`) so it can be shown, logged and tested. scikit-learn is imported only
when an estimator is built.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from regressops.errors import ConfigError, ModelError
from regressops.features import FeatureSpec
from regressops.models.bundle import ModelBundle

logger = logging.getLogger(__name__)


class Trial(Protocol):
    """The part of :class:`optuna.trial.Trial` that :func:`suggest_params` uses."""

    def suggest_int(self, name: str, low: int, high: int, *, log: bool = False) -> int: ...

    def suggest_float(self, name: str, low: float, high: float, *, log: bool = False) -> float: ...

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any: ...


@dataclass(frozen=True)
class Dimension:
    """One hyper-parameter's range in a search space.

    Attributes
    ----------
    type : {"int", "float", "categorical"}
        How the value is drawn.
    low, high : float
        Bounds (inclusive) for ``int`` and ``float``.
    log : bool
        Draw on a log scale.
    choices : tuple
        The values of a ``categorical`` dimension.
    """

    type: Literal["int", "float", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = False
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-able description."""
        if self.type == "categorical":
            return {"type": self.type, "choices": list(self.choices)}
        return {"type": self.type, "low": self.low, "high": self.high, "log": self.log}


@dataclass(frozen=True)
class ModelKind:
    """A kind of model in the catalog.

    Attributes
    ----------
    name : str
        The kind's name on the command line (``--model NAME``).
    estimator : tuple of (str, str)
        Module and class of the estimator.
    description : str
        One line for help texts and docs.
    linear : bool
        True when the fitted model is coefficients (bundle served with numpy only).
    defaults : mapping
        Parameters used unless overridden.
    fixed : mapping
        Parameters the kind always sets (e.g. ``solver="exact"`` for ridge).
    search_space : mapping of str to Dimension
        Parameters tuned by :mod:`regressops.training.tune`.
    seeded : bool
        The estimator takes ``random_state``.
    """

    name: str
    estimator: tuple[str, str]
    description: str
    linear: bool
    defaults: Mapping[str, Any] = field(default_factory=dict)
    fixed: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, Dimension] = field(default_factory=dict)
    seeded: bool = True

    def estimator_class(self) -> type:
        """Import and return the estimator class."""
        module, name = self.estimator
        cls: type = getattr(importlib.import_module(module), name)
        return cls


KINDS: dict[str, ModelKind] = {
    "linear": ModelKind(
        name="linear",
        estimator=("regressops.models.linear", "LinearRegressor"),
        description="least squares by our LinearRegressor (solvers exact, gd, sgd, minibatch)",
        linear=True,
        defaults={"solver": "exact"},
        search_space={
            "solver": Dimension("categorical", choices=("exact", "gd", "minibatch")),
            "alpha": Dimension("float", 1e-8, 1e-1, log=True),
        },
    ),
    "ridge": ModelKind(
        name="ridge",
        estimator=("regressops.models.linear", "LinearRegressor"),
        description="L2-penalised least squares: our exact solver with alpha",
        linear=True,
        defaults={"alpha": 1.0},
        fixed={"solver": "exact"},
        search_space={"alpha": Dimension("float", 1e-4, 1e3, log=True)},
    ),
    "tree": ModelKind(
        name="tree",
        estimator=("sklearn.tree", "DecisionTreeRegressor"),
        description="scikit-learn DecisionTreeRegressor",
        linear=False,
        defaults={"max_depth": 6, "min_samples_leaf": 5},
        search_space={
            "max_depth": Dimension("int", 2, 16),
            "min_samples_leaf": Dimension("int", 1, 50, log=True),
            "min_samples_split": Dimension("int", 2, 40, log=True),
        },
    ),
    "forest": ModelKind(
        name="forest",
        estimator=("sklearn.ensemble", "RandomForestRegressor"),
        description="scikit-learn RandomForestRegressor",
        linear=False,
        defaults={"n_estimators": 100, "max_depth": 10, "min_samples_leaf": 3},
        search_space={
            "n_estimators": Dimension("int", 20, 200, log=True),
            "max_depth": Dimension("int", 3, 16),
            "min_samples_leaf": Dimension("int", 1, 20, log=True),
            "max_features": Dimension("float", 0.3, 1.0),
        },
    ),
    "hgb": ModelKind(
        name="hgb",
        estimator=("sklearn.ensemble", "HistGradientBoostingRegressor"),
        description="scikit-learn HistGradientBoostingRegressor",
        linear=False,
        defaults={"max_iter": 200, "learning_rate": 0.1},
        search_space={
            "learning_rate": Dimension("float", 0.01, 0.3, log=True),
            "max_iter": Dimension("int", 50, 500, log=True),
            "max_leaf_nodes": Dimension("int", 8, 64, log=True),
            "min_samples_leaf": Dimension("int", 5, 50, log=True),
            "l2_regularization": Dimension("float", 1e-8, 10.0, log=True),
        },
    ),
}


def get_kind(name: str) -> ModelKind:
    """Return the catalog entry for ``name``.

    Raises
    ------
    ConfigError
        ``name`` is not a kind in :data:`KINDS`.
    """
    try:
        return KINDS[name]
    except KeyError:
        raise ConfigError(
            f"unknown model kind {name!r}; expected one of {', '.join(KINDS)}",
            reason="unknown_model_kind",
        ) from None


def resolve_params(
    kind: str, params: Mapping[str, Any] | None = None, *, random_state: int | None = None
) -> dict[str, Any]:
    """Merge the kind's defaults, the given parameters, its fixed values and the seed.

    Parameters
    ----------
    kind : str
        A kind in :data:`KINDS`.
    params : mapping, optional
        Parameters that override the defaults.
    random_state : int, optional
        Seed for estimators that take one (unless ``params`` sets it).

    Returns
    -------
    dict
        The full parameters, every key a parameter of the estimator.

    Raises
    ------
    ConfigError
        Unknown kind, a parameter the estimator does not take, or one that contradicts a fixed
        value of the kind.
    """
    entry = get_kind(kind)
    given = dict(params or {})
    allowed = set(_estimator_params(entry))
    unknown = sorted(set(given) - allowed)
    if unknown:
        raise ConfigError(
            f"model kind {kind!r} does not take parameter(s) {unknown}; it takes {sorted(allowed)}",
            reason="unknown_parameter",
        )
    for key, value in entry.fixed.items():
        if key in given and given[key] != value:
            raise ConfigError(
                f"model kind {kind!r} always uses {key}={value!r}; got {given[key]!r}",
                reason="invalid_parameter",
            )
    merged = {**entry.defaults, **given, **entry.fixed}
    if entry.seeded and random_state is not None and "random_state" in allowed:
        merged.setdefault("random_state", random_state)
    return merged


def make_estimator(
    kind: str, params: Mapping[str, Any] | None = None, *, random_state: int | None = None
) -> Any:
    """Build an unfitted estimator of ``kind``.

    Parameters are merged by :func:`resolve_params`; the estimator validates their values when
    it is fitted (scikit-learn's parameter constraints).
    """
    entry = get_kind(kind)
    return entry.estimator_class()(**resolve_params(kind, params, random_state=random_state))


def suggest_params(kind: str, trial: Trial) -> dict[str, Any]:
    """Draw one set of parameters from the kind's search space.

    Parameters
    ----------
    kind : str
        A kind in :data:`KINDS`.
    trial : optuna.trial.Trial
        Anything with Optuna's ``suggest_int``, ``suggest_float`` and ``suggest_categorical``.

    Returns
    -------
    dict
        Parameters for :func:`make_estimator` (defaults not in the space are added there).
    """
    drawn: dict[str, Any] = {}
    for name, dim in get_kind(kind).search_space.items():
        if dim.type == "categorical":
            drawn[name] = trial.suggest_categorical(name, list(dim.choices))
        elif dim.type == "int":
            drawn[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            drawn[name] = trial.suggest_float(name, dim.low, dim.high, log=dim.log)
    return drawn


def to_bundle(
    kind: str,
    estimator: Any,
    *,
    name: str,
    spec: FeatureSpec,
    params: Mapping[str, Any] | None = None,
    **fields: Any,
) -> ModelBundle:
    """Wrap a fitted estimator of ``kind`` as a :class:`ModelBundle`.

    Linear kinds keep ``coef_`` and ``intercept_`` (over ``spec.output_names``); the others keep
    the estimator, to be saved with skops by :func:`save_bundle`. ``fields`` go to the bundle
    (``metrics``, ``lineage``, ``created_at``, ...).

    Raises
    ------
    ModelError
        The estimator is not fitted, or has the wrong number of inputs for ``spec``.
    """
    entry = get_kind(kind)
    n_in = getattr(estimator, "n_features_in_", None)
    if n_in is None:
        raise ModelError(f"the {kind} estimator is not fitted", reason="not_fitted")
    if int(n_in) != spec.n_outputs:
        raise ModelError(
            f"the {kind} estimator takes {n_in} columns but the feature spec makes "
            f"{spec.n_outputs}",
            reason="spec_mismatch",
        )
    raw = params if params is not None else estimator.get_params()
    all_params = {k: v for k, v in raw.items() if not callable(v)}  # e.g. progress callbacks
    if entry.linear:
        coef = np.asarray(estimator.coef_, dtype=np.float64).ravel()
        intercept = float(np.asarray(estimator.intercept_, dtype=np.float64).ravel()[0])
        return ModelBundle(
            name=name,
            kind=kind,
            spec=spec,
            coef=coef,
            intercept=intercept,
            params=all_params,
            **fields,
        )
    return ModelBundle(
        name=name, kind=kind, spec=spec, estimator=estimator, params=all_params, **fields
    )


def save_bundle(bundle: ModelBundle, path: str | Path, *, overwrite: bool = True) -> Path:
    """Save a bundle of any kind: linear as coefficients, the others with skops (no pickle)."""
    if bundle.is_linear:
        return bundle.save(path, overwrite=overwrite)
    if bundle.estimator is None:
        raise ModelError(
            f"bundle {bundle.name!r} of kind {bundle.kind!r} has no estimator to save",
            reason="not_fitted",
        )
    from regressops.models.skops_io import skops_writer

    return bundle.save(path, overwrite=overwrite, write_artifacts=skops_writer(bundle.estimator))


def describe() -> list[dict[str, Any]]:
    """Return every kind as JSON-able rows (name, estimator, defaults, search space)."""
    return [
        {
            "kind": k.name,
            "estimator": ".".join(k.estimator),
            "description": k.description,
            "linear": k.linear,
            "defaults": {**k.defaults, **k.fixed},
            "search_space": {n: d.to_dict() for n, d in k.search_space.items()},
        }
        for k in KINDS.values()
    ]


def _estimator_params(entry: ModelKind) -> list[str]:
    cls = entry.estimator_class()
    get_param_names = getattr(cls, "_get_param_names", None)
    if get_param_names is not None:
        return list(get_param_names())
    import inspect

    return [p for p in inspect.signature(cls).parameters if p != "self"]
