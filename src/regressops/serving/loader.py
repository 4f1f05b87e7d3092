"""Resolve the model reference the server was started with and load its bundle.

A model reference is what ``regressops serve --model`` or ``serve.model`` in the settings names:

- a bundle directory (``.regressops/models/diabetes``): loaded with
  :func:`~regressops.models.bundle.load_bundle` (numpy only for linear kinds);
- a URI ``SCHEME:...`` such as ``models:/NAME@ALIAS``: handed to the resolver registered for the
  scheme with :func:`register_model_resolver`. The model registry registers the ``models``
  scheme when it is imported; until it exists such a reference fails with a clear message.

The model to serve never comes from a request: only the server's settings or command line name
it, and :func:`load_model` is the only place that turns the name into a model.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regressops.errors import BundleError, ConfigError
from regressops.models.bundle import MODEL_FILE, ModelBundle, load_bundle

logger = logging.getLogger(__name__)

# Two letters at least, so a Windows drive (``C:/models``) is a path, not a scheme.
_URI = re.compile(r"^(?P<scheme>[a-z][a-z0-9+.-]+):/")
# Modules that register a resolver for their scheme when imported (imported on first use only).
_RESOLVER_MODULES = {"models": "regressops.registry.resolve"}


@dataclass(frozen=True)
class ModelResolver:
    """How to load models named by a URI scheme.

    Attributes
    ----------
    load : callable
        ``load(ref) -> ModelBundle``: resolve the reference (e.g. an alias to its current
        version) and load that model; the bundle's ``version`` names what was resolved.
    fingerprint : callable, optional
        ``fingerprint(ref) -> str``: a cheap token that changes when the reference points at a
        new model (e.g. the alias's version); used by reload polling. ``None``: no polling.
    """

    load: Callable[[str], ModelBundle]
    fingerprint: Callable[[str], str] | None = None


_RESOLVERS: dict[str, ModelResolver] = {}


def register_model_resolver(scheme: str, resolver: ModelResolver) -> None:
    """Register how references ``SCHEME:...`` are loaded (the registry uses ``"models"``)."""
    _RESOLVERS[scheme] = resolver


def scheme_of(ref: str) -> str | None:
    """Return the URI scheme of ``ref`` (``"models"`` for ``models:/x@champion``), else None."""
    m = _URI.match(ref)
    return m.group("scheme") if m else None


def _resolver(scheme: str) -> ModelResolver:
    if scheme not in _RESOLVERS and scheme in _RESOLVER_MODULES:
        try:
            module = importlib.import_module(_RESOLVER_MODULES[scheme])
            # A lower layer cannot import serving to register itself: it offers
            # ``model_resolver() -> (load, fingerprint)`` and serving registers it here.
            provide = getattr(module, "model_resolver", None)
            if scheme not in _RESOLVERS and provide is not None:
                load, fingerprint = provide()
                _RESOLVERS[scheme] = ModelResolver(load=load, fingerprint=fingerprint)
        except ImportError as exc:
            logger.debug("resolver module for %s: is unavailable: %s", scheme, exc)
    try:
        return _RESOLVERS[scheme]
    except KeyError:
        raise ConfigError(
            f"model reference scheme {scheme + ':'!r} is not supported by this installation; "
            "expected a bundle directory"
            + (
                " or models:/NAME@ALIAS with the model registry installed"
                if scheme == "models"
                else ""
            ),
            reason="unsupported_model_ref",
        ) from None


def load_model(ref: str | Path) -> ModelBundle:
    """Load the model that ``ref`` names.

    Parameters
    ----------
    ref : str or Path
        A bundle directory, or a URI whose scheme has a registered resolver.

    Returns
    -------
    ModelBundle

    Raises
    ------
    ConfigError
        ``ref`` is empty or uses a scheme nothing can resolve.
    BundleError
        The bundle is missing or invalid.
    """
    text = str(ref).strip()
    if not text:
        raise ConfigError(
            "no model to serve; pass --model DIR or set serve.model", reason="no_model"
        )
    scheme = scheme_of(text)
    if scheme is not None:
        return _resolver(scheme).load(text)
    return load_bundle(Path(text))


def fingerprint(ref: str | Path) -> str | None:
    """Return a token that changes when ``ref`` points at a different model, or None.

    For a bundle directory it is the modification time and size of its ``model.json``;
    bundles are replaced by an atomic rename, so a new bundle always changes it.
    """
    text = str(ref).strip()
    scheme = scheme_of(text)
    if scheme is not None:
        resolver = _resolver(scheme)
        return resolver.fingerprint(text) if resolver.fingerprint else None
    try:
        st = (Path(text) / MODEL_FILE).stat()
    except OSError:
        return None
    return f"{st.st_mtime_ns}:{st.st_size}"


def describe(bundle: ModelBundle) -> dict[str, Any]:
    """Return the identity of a bundle for logs and responses (name, version, kind)."""
    return {"name": bundle.name, "version": bundle.version, "kind": bundle.kind}


__all__ = [
    "BundleError",
    "ModelResolver",
    "describe",
    "fingerprint",
    "load_model",
    "register_model_resolver",
    "scheme_of",
]
