"""Models: the from-scratch LinearRegressor, the model bundle and the model catalog.

Import submodules directly (``from regressops.models.bundle import load_bundle``) on the serving
path: this package's ``__init__`` stays import-light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regressops.models.linear import LinearRegressor

__all__ = ["LinearRegressor"]


def __getattr__(name: str) -> Any:
    if name == "LinearRegressor":
        from regressops.models.linear import LinearRegressor

        return LinearRegressor
    raise AttributeError(name)
