"""Resolve the model reference the server was started with and load its bundle.

A model reference is what ``regressops serve --model`` or ``serve.model`` in the settings names:

- a bundle directory (``.regressops/models/diabetes``): loaded with
  :func:`~regressops.models.bundle.load_bundle` (numpy only for linear kinds);
- a registry reference ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``: resolved and
  downloaded by :mod:`regressops.registry.resolve` (imported only for such a reference, so a
  server of a bundle directory never imports MLflow); any other ``SCHEME:`` is refused.

The model to serve never comes from a request: only the server's settings or command line name
it, and :func:`load_model` is the only place that turns the name into a model.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from regressops.errors import ConfigError
from regressops.models.bundle import MODEL_FILE, ModelBundle, load_bundle

logger = logging.getLogger(__name__)

# Two letters at least, so a Windows drive (``C:/models``) is a path, not a scheme.
_URI = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]+):/")
REGISTRY_SCHEME = "models"


def scheme_of(ref: str) -> str | None:
    """Return the URI scheme of ``ref`` (``"models"`` for ``models:/x@champion``), else None."""
    m = _URI.match(ref)
    return m.group("scheme") if m else None


def _require_registry_scheme(scheme: str) -> None:
    if scheme != REGISTRY_SCHEME:
        raise ConfigError(
            f"model reference scheme {scheme + ':'!r} is not supported; expected a bundle "
            "directory, models:/NAME@ALIAS or models:/NAME/VERSION",
            reason="unsupported_model_ref",
        )


def load_model(ref: str | Path) -> ModelBundle:
    """Load the model that ``ref`` names.

    Parameters
    ----------
    ref : str or Path
        A bundle directory, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

    Returns
    -------
    ModelBundle

    Raises
    ------
    ConfigError
        ``ref`` is empty or uses a scheme other than ``models:``.
    BundleError
        The bundle is missing or invalid.
    """
    return load_model_dir(ref)[0]


def load_model_dir(ref: str | Path) -> tuple[ModelBundle, Path]:
    """:func:`load_model` and the local bundle directory it read (a ``models:/`` reference's
    download), where the bundle's other files (the drift reference) are.

    Raises
    ------
    ConfigError, BundleError, RegistryError
        As :func:`load_model`.
    """
    text = str(ref).strip()
    if not text:
        raise ConfigError(
            "no model to serve; pass --model DIR or set serve.model", reason="no_model"
        )
    scheme = scheme_of(text)
    if scheme is not None:
        _require_registry_scheme(scheme)
        from regressops.registry.resolve import load_registered

        return load_registered(text)
    return load_bundle(Path(text)), Path(text)


def fingerprint(ref: str | Path) -> str | None:
    """Return a token that changes when ``ref`` points at a different model, or None.

    For a bundle directory it is the modification time and size of its ``model.json``;
    bundles are replaced by an atomic rename, so a new bundle always changes it.
    """
    text = str(ref).strip()
    scheme = scheme_of(text)
    if scheme is not None:
        _require_registry_scheme(scheme)
        from regressops.registry.resolve import alias_fingerprint

        return alias_fingerprint(text)
    try:
        st = (Path(text) / MODEL_FILE).stat()
    except OSError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}"


__all__ = ["REGISTRY_SCHEME", "fingerprint", "load_model", "load_model_dir", "scheme_of"]
