"""Resolve ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` to a local bundle directory.

The registry is asked which version the alias names (every time: aliases move), and that
version's bundle is downloaded once into ``<home>/cache/models/NAME/VERSION/`` (versions are
immutable, so the cache never goes stale), atomically: to a temporary sibling, then renamed. The
cached ``model.json`` records the registry version as the bundle's ``version`` and the registry
coordinates under ``registry``, so predictions name the version that made them. The result loads
with :func:`regressops.models.bundle.load_bundle` — no MLflow needed after this point. On a SQL
store whose version files are on this machine (a ``file:`` storage location) both steps run
without MLflow: the alias is read from the store and the bundle copied from the version's files.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, RegistryError
from regressops.models.card import CardContext
from regressops.redact import redact_text
from regressops.registry.cards import CARD_TAG, card_context
from regressops.registry.connection import connect, mlflow_errors, tracking_uri
from regressops.registry.lifecycle import alias_version, get_version
from regressops.registry.pyfunc import BUNDLE_SUBPATH
from regressops.registry.store_reader import (
    AliasTarget,
    file_uri_path,
    read_alias,
    read_version,
)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from regressops.models.bundle import ModelBundle

logger = logging.getLogger(__name__)

MODEL_URI_PREFIX = "models:/"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[A-Za-z0-9_-]+)|/(?P<version>\d+))$")


@dataclass(frozen=True)
class ModelRef:
    """A parsed registry model URI."""

    name: str
    alias: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        tail = f"@{self.alias}" if self.alias else f"/{self.version}"
        return f"{MODEL_URI_PREFIX}{self.name}{tail}"


@dataclass(frozen=True)
class ResolvedModel:
    """Where a registry model was resolved to."""

    ref: ModelRef
    version: str
    path: Path
    run_id: str | None
    card: CardContext | None = None


def is_model_uri(text: str) -> bool:
    """True when ``text`` is a registry model URI (starts with ``models:/``)."""
    return str(text).startswith(MODEL_URI_PREFIX)


def parse_model_uri(text: str) -> ModelRef:
    """Parse ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

    Raises
    ------
    ConfigError
        Any other form.
    """
    match = _URI.match(text.strip())
    if match is None:
        raise ConfigError(
            f"invalid model URI {text!r}; expected models:/NAME@ALIAS (e.g. "
            "models:/diabetes@champion) or models:/NAME/VERSION",
            reason="invalid_model_uri",
        )
    return ModelRef(match["name"], match["alias"], match["version"])


def resolve_model(
    uri: str,
    *,
    settings: Settings | None = None,
    tracking: str | None = None,
    client: MlflowClient | None = None,
) -> ResolvedModel:
    """Resolve a registry model URI to a local bundle directory (downloading it if needed).

    Parameters
    ----------
    uri : str
        ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
    settings : Settings, optional
        For the cache folder and the default tracking URI.
    tracking : str, optional
        Tracking URI overriding the settings'.
    client : MlflowClient, optional
        A connected client.

    Returns
    -------
    ResolvedModel

    Raises
    ------
    ConfigError
        Malformed URI.
    RegistryError
        Unknown model, alias or version; the store unreachable; a version without a bundle.
    """
    settings = settings or get_settings()
    ref = parse_model_uri(uri)
    store = tracking_uri(settings, tracking)
    if client is None:
        cached = _cached_without_mlflow(ref, store, settings)
        if cached is not None:
            return cached
        client = connect(store)
    if ref.alias is not None:
        mv = alias_version(client, ref.name, ref.alias)
        if mv is None:
            raise RegistryError(
                f"registered model {ref.name!r} has no alias @{ref.alias}; see "
                f"`regressops models list {ref.name}`",
                reason="unknown_alias",
            )
    else:
        mv = get_version(client, ref.name, str(ref.version))
    version = str(mv.version)
    target = cache_dir(settings, ref.name, version)
    if not (target / "model.json").is_file():
        _download(client, ref.name, version, target, store)
    logger.info("resolved %s to version %s at %s", ref, version, target)
    return ResolvedModel(
        ref=ref, version=version, path=target, run_id=mv.run_id, card=card_context(mv.tags)
    )


def cache_dir(settings: Settings, name: str, version: str) -> Path:
    """Where version ``version`` of registered model ``name`` is cached under the home."""
    return settings.home / "cache" / "models" / _safe(name) / version


def _cached_without_mlflow(ref: ModelRef, store: str, settings: Settings) -> ResolvedModel | None:
    """The resolution when the store can be read without MLflow and the version is cached.

    The same checks as through MLflow: the alias (or version) exists and is READY in the
    registry now, and the cached bundle is that version of that model. ``None``: use MLflow.
    """
    if ref.alias is not None:
        found = read_alias(store, ref.name, ref.alias)
    else:
        found = read_version(store, ref.name, str(ref.version))
    if found is None:
        return None
    target = cache_dir(settings, ref.name, found.version)
    if not (target / "model.json").is_file() and not _copy_local(found, target, store):
        return None
    try:
        registry = json.loads((target / "model.json").read_text()).get("registry", {})
    except (OSError, ValueError, AttributeError):
        return None
    same = (registry.get("name"), str(registry.get("version")), registry.get("uri"))
    if same != (ref.name, found.version, redact_text(store)):
        return None
    logger.info("resolved %s to cached version %s at %s", ref, found.version, target)
    card = card_context({CARD_TAG: found.card} if found.card else None)
    return ResolvedModel(
        ref=ref, version=found.version, path=target, run_id=found.run_id, card=card
    )


def resolve_bundle_path(uri: str, *, settings: Settings | None = None) -> Path:
    """Resolve a registry model URI and return its local bundle directory."""
    return resolve_model(uri, settings=settings).path


def model_bundle_dir(
    ref: str | os.PathLike[str], *, settings: Settings | None = None, tracking: str | None = None
) -> Path:
    """The local bundle directory of any model reference a command takes.

    ``predict``, ``evaluate`` and ``serve`` (through :func:`load_registered_bundle`) read
    ``--model`` the same way: a bundle directory as it is, ``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION`` resolved in the registry (:func:`resolve_model`).

    Raises
    ------
    ConfigError
        A malformed ``models:/`` URI.
    RegistryError
        Unknown model, alias or version; the store unreachable.
    """
    text = str(ref).strip()
    if is_model_uri(text):
        return resolve_model(text, settings=settings, tracking=tracking).path
    return Path(text)


def load_registered_bundle(uri: str) -> ModelBundle:
    """Resolve ``uri`` with the current settings and load its bundle (serving's loader).

    The version's model card context (tag ``regressops.card``) is kept in the bundle's
    ``extra["card"]``, so the server shows the same card as the registry.
    """
    return load_registered(uri)[0]


def load_registered(uri: str) -> tuple[ModelBundle, Path]:
    """:func:`load_registered_bundle` and the local directory it was loaded from (where the
    server reads the bundle's drift reference)."""
    from regressops.models.bundle import load_bundle

    resolved = resolve_model(uri)
    bundle = load_bundle(resolved.path)
    if resolved.card is not None:
        bundle.extra["card"] = resolved.card.to_json()
    return bundle, resolved.path


def alias_fingerprint(uri: str) -> str | None:
    """The version ``uri`` names now (``"diabetes/7"``), or None when the registry is unreachable.

    Cheap (one registry read), for reload polling: a new champion changes the fingerprint.
    """
    ref = parse_model_uri(uri)
    if ref.version is not None:
        return f"{ref.name}/{ref.version}"
    store = tracking_uri(get_settings())
    light = read_alias(store, ref.name, str(ref.alias))
    if light is not None:
        return f"{ref.name}/{light.version}"
    try:
        mv = alias_version(connect(store), ref.name, str(ref.alias))
    except RegistryError as exc:
        logger.warning("cannot check %s for a new version: %s", ref, exc.message)
        return None
    return f"{ref.name}/{mv.version}" if mv is not None else None


def _copy_local(found: AliasTarget, target: Path, store: str) -> bool:
    """Cache a version whose files are on this machine (a ``file:`` storage location) by
    copying its bundle, as :func:`_download` would; False when it cannot (use MLflow)."""
    location = file_uri_path(found.storage_location)
    if location is None:
        return False
    source = location / BUNDLE_SUBPATH
    if not (source / "model.json").is_file():
        return False

    def fetch(tmp: Path) -> Path:
        return Path(shutil.copytree(source, tmp / source.name))

    try:
        _install(fetch, found.name, found.version, target, store)
    except (OSError, ValueError, RegistryError) as exc:
        logger.debug("local copy of %s v%s failed: %s", found.name, found.version, exc)
        return False
    return True


def _download(client: MlflowClient, name: str, version: str, target: Path, store: str) -> None:
    import mlflow

    def fetch(tmp: Path) -> Path:
        with mlflow_errors(f"downloading {name!r} v{version} from {redact_text(store)}"):
            root = client.get_model_version_download_uri(name, version)
            return Path(
                mlflow.artifacts.download_artifacts(
                    artifact_uri=f"{root.rstrip('/')}/{BUNDLE_SUBPATH}",
                    dst_path=str(tmp),
                    tracking_uri=store,
                )
            )

    _install(fetch, name, version, target, store)


def _install(
    fetch: Callable[[Path], Path], name: str, version: str, target: Path, store: str
) -> None:
    """Fetch a version's bundle into a temporary sibling of ``target``, stamp its registry
    coordinates into ``model.json`` and rename it into place (a concurrent winner is kept)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=target.parent))
    try:
        bundle = fetch(tmp)
        if not (bundle / "model.json").is_file():
            raise RegistryError(
                f"{name!r} v{version} holds no regressops bundle (no {BUNDLE_SUBPATH}/model.json)",
                reason="not_a_bundle",
            )
        doc = json.loads((bundle / "model.json").read_text(encoding="utf-8"))
        doc["version"] = version
        doc["registry"] = {"name": name, "version": version, "uri": redact_text(store)}
        (bundle / "model.json").write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        try:
            bundle.rename(target)
        except OSError:
            if not (target / "model.json").is_file():  # not a concurrent download winning
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", name)
