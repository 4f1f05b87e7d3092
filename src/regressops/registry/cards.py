"""Model cards in the registry: every registered version's MLflow description is its card.

:func:`publish_card` renders the card (:mod:`regressops.models.card`) of a version from its
bundle, its gate report and its outcome, and writes it as the version's description (shown in
the MLflow UI) and, as compact JSON, in the tag ``regressops.card`` — from which the server
rebuilds the same card for ``GET /model-check`` (``Accept: text/html``) when it serves the
version from the registry.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regressops.models.card import CardContext, card_markdown
from regressops.registry.connection import mlflow_errors

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from regressops.models.bundle import ModelBundle

logger = logging.getLogger(__name__)

CARD_TAG = "regressops.card"
#: MLflow's SQL stores keep at most 5000 characters of a version's description.
DESCRIPTION_LIMIT = 5000


def publish_card(
    client: MlflowClient,
    name: str,
    version: str,
    bundle: ModelBundle,
    *,
    gates: Mapping[str, Any] | None = None,
    status: str | None = None,
) -> str:
    """Write the card of ``name`` version ``version`` as its description and card tag.

    Parameters
    ----------
    client : MlflowClient
    name, version : str
        The registered version.
    bundle : ModelBundle
        Its bundle.
    gates : mapping, optional
        The gate report (``GateReport.to_dict()``) of its registration or promotion.
    status : str, optional
        The outcome (``"champion"``, ``"archived: failed gates"``, ...).

    Returns
    -------
    str
        The markdown written.

    Raises
    ------
    RegistryError
        The registry refused the write.
    """
    context = CardContext(name=name, version=str(version), gates=gates or None, status=status)
    text = card_markdown(bundle, context, limit=DESCRIPTION_LIMIT)
    with mlflow_errors(f"writing the model card of {name!r} v{version}"):
        client.update_model_version(name, str(version), description=text)
        client.set_model_version_tag(name, str(version), CARD_TAG, context.to_json())
    logger.info("model card of %s v%s written (%d characters)", name, version, len(text))
    return text


def card_context(tags: Mapping[str, str] | None) -> CardContext | None:
    """The card context stored in a version's tags, or None when it has none."""
    text = (tags or {}).get(CARD_TAG)
    return CardContext.from_json(text) if text else None
