"""regressops: a regression problem from a SQL table to a monitored prediction API and back."""

__version__ = "0.1.0"

__all__ = ["__version__"]
