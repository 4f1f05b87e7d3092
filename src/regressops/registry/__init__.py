"""MLflow tracking and model registry for regressops.

- :mod:`~regressops.registry.connection`: connect fast-failing, redact credentials, map errors.
- :mod:`~regressops.registry.tracking`: log a training run with its bundle as a pyfunc model.
- :mod:`~regressops.registry.pyfunc`: the pyfunc loader module (no pickle).
- :mod:`~regressops.registry.lifecycle`: register, promote (``@champion``/``@challenger``),
  rollback (:mod:`~regressops.registry.champions`: the champion history), archive.
- :mod:`~regressops.registry.listing`: list models and versions, directly from the store
  (:mod:`~regressops.registry.store_listing`, no MLflow import) or through MLflow.
- :mod:`~regressops.registry.locks`: per-model change lock across processes.
- :mod:`~regressops.registry.resolve`: ``models:/NAME@ALIAS`` to a local bundle directory.

MLflow is imported only inside the functions that talk to it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regressops.registry.resolve import (
        is_model_uri,
        parse_model_uri,
        resolve_bundle_path,
        resolve_model,
    )

__all__ = ["is_model_uri", "parse_model_uri", "resolve_bundle_path", "resolve_model"]


def __getattr__(name: str) -> Any:
    # Lazy: ``regressops.registry.listing`` (``models list``) must not pay for numpy, which
    # ``resolve`` imports through the model bundle.
    if name in __all__:
        from regressops.registry import resolve

        return getattr(resolve, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
