"""MLflow tracking and model registry for regressops.

- :mod:`~regressops.registry.connection`: connect fast-failing, redact credentials, map errors.
- :mod:`~regressops.registry.tracking`: log a training run with its bundle as a pyfunc model.
- :mod:`~regressops.registry.pyfunc`: the pyfunc loader module (no pickle).
- :mod:`~regressops.registry.lifecycle`: register, promote (``@champion``/``@challenger``),
  rollback, archive, list.
- :mod:`~regressops.registry.locks`: per-model change lock across processes.
- :mod:`~regressops.registry.resolve`: ``models:/NAME@ALIAS`` to a local bundle directory.

MLflow is imported only inside the functions that talk to it.
"""

from __future__ import annotations

from regressops.registry.resolve import (
    is_model_uri,
    parse_model_uri,
    resolve_bundle_path,
    resolve_model,
)

__all__ = ["is_model_uri", "parse_model_uri", "resolve_bundle_path", "resolve_model"]
