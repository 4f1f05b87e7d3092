"""A small exception hierarchy with machine-readable reasons.

Every error regressops raises on purpose derives from :class:`RegressopsError`. Each carries a
``reason`` (a stable, machine-readable code such as ``"unknown_dataset"``, declared in
:class:`regressops.reasons.Reason`) and a one-line human
message that says what was wrong and what was expected. The CLI prints the message and exits
with :attr:`RegressopsError.exit_code`; the API maps the reason to a 4xx JSON body.
"""

from __future__ import annotations

from typing import Any


class RegressopsError(Exception):
    """Base class of every error regressops raises on purpose.

    Parameters
    ----------
    message : str
        One readable line: what was wrong and what was expected.
    reason : str, optional
        Machine-readable reason code. Defaults to the class's ``default_reason``.
    **details : Any
        Extra structured context (column names, counts); never secrets or user data rows.
    """

    default_reason = "error"
    exit_code = 1

    def __init__(self, message: str, *, reason: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """Return ``{"reason": ..., "message": ..., **details}`` for JSON reports."""
        return {"reason": self.reason, "message": self.message, **self.details}


class ConfigError(RegressopsError):
    """Invalid settings, arguments or options."""

    default_reason = "invalid_config"
    exit_code = 2


class DataError(RegressopsError):
    """Input data is missing, malformed or does not match what is expected."""

    default_reason = "invalid_data"
    exit_code = 3


class SchemaError(DataError):
    """Records do not match a model's feature specification."""

    default_reason = "schema_mismatch"


class ValidationFailed(DataError):
    """A data validation run failed its checks."""

    default_reason = "validation_failed"


class ModelError(RegressopsError):
    """A model cannot be trained, loaded or used."""

    default_reason = "model_error"
    exit_code = 4


class DivergenceError(ModelError, ArithmeticError):
    """An iterative solver diverged (the loss or coefficients became non-finite)."""

    default_reason = "diverged"


class BundleError(ModelError):
    """A model bundle is missing, corrupt or of an unsupported format."""

    default_reason = "invalid_bundle"


class SourceError(RegressopsError):
    """A source database or file cannot be reached or read."""

    default_reason = "source_unavailable"
    exit_code = 5


class RegistryError(RegressopsError):
    """The tracking server or model registry refused or failed a request."""

    default_reason = "registry_error"
    exit_code = 6


class GateFailed(RegressopsError):
    """A candidate model failed one of its quality gates."""

    default_reason = "gate_failed"
    exit_code = 7


class MissingExtraError(ConfigError):
    """A command needs a part of regressops this installation lacks (an extra, e.g. ``train``)."""

    default_reason = "missing_extra"


class DeliveryFailed(RegressopsError):
    """A webhook did not accept an event (``regressops webhooks test``)."""

    default_reason = "delivery_failed"
    exit_code = 8
