"""Which optional part of regressops (a pip extra) provides which third-party module.

The core install (``pip install regressops``, the ``serve`` image) serves linear and int8
bundles; training, the lake, the registry and monitoring come with ``regressops[train]``, Dask
with ``[dask]``, Prefect with ``[prefect]`` (``[all]``: everything). When a command reaches a
module of a missing extra, :func:`missing_extra` turns the ``ModuleNotFoundError`` into one line
that names the extra to install, instead of an "unexpected error".
"""

from __future__ import annotations

from regressops.errors import MissingExtraError

#: top-level module name -> the extra that installs it
MODULE_EXTRAS: dict[str, str] = {
    "sqlalchemy": "serve",
    "psycopg": "serve",
    **dict.fromkeys(
        (
            "scipy",
            "sklearn",
            "pandas",
            "pyarrow",
            "matplotlib",
            "pandera",
            "deltalake",
            "mlflow",
            "optuna",
            "skops",
            "httpx",
            "sqlparse",
            "simdjson",  # optional even there: the monitor falls back to orjson
        ),
        "train",
    ),
    "dask": "dask",
    "distributed": "dask",
    "prefect": "prefect",
}


def missing_extra(exc: BaseException, command: str | None = None) -> MissingExtraError | None:
    """Return the error naming the extra to install when ``exc`` is a missing optional module.

    Parameters
    ----------
    exc : BaseException
        What a command raised.
    command : str, optional
        The command that needed it, for the message (``"train"``, ``"models list"``).

    Returns
    -------
    MissingExtraError or None
        ``None`` when ``exc`` is not a ``ModuleNotFoundError`` for a module of an extra (a
        module missing from the core install is a broken installation, not a missing extra).

    Examples
    --------
    >>> err = missing_extra(ModuleNotFoundError("No module named 'mlflow'", name="mlflow"), "train")
    >>> err.message.split(":")[0]
    "'regressops train' needs 'mlflow' from the 'train' extra, which is not installed"
    """
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    top = exc.name.split(".")[0]
    extra = MODULE_EXTRAS.get(top)
    if extra is None:
        return None
    who = f"'regressops {command}'" if command else "this command"
    return MissingExtraError(
        f"{who} needs {top!r} from the {extra!r} extra, which is not installed: "
        f"pip install 'regressops[{extra}]' (or use the 'full' image)",
        module=top,
        extra=extra,
    )
