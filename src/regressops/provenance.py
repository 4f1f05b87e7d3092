"""The software a model was trained with, recorded once for ``lineage.json`` and MLflow.

:func:`environment` is the one description of a training environment: the bundle's
``lineage.json`` holds it (next to the data's lineage and the split), and the MLflow run of that
bundle logs the same record as ``environment.json`` (:func:`environment_of` reads it back from a
lineage), so the two records of one run never disagree. :data:`PACKAGES` is also the list of
pinned requirements of the logged MLflow model.
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import subprocess
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from regressops import __version__

#: The packages a trained model depends on, by distribution name.
PACKAGES = (
    "regressops", "numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "mlflow", "skops",
)  # fmt: skip
#: The keys :func:`environment` returns.
ENVIRONMENT_KEYS = (
    "regressops_version", "python", "platform", "packages", "git_commit", "git_dirty",
)  # fmt: skip


def environment() -> dict[str, Any]:
    """Return the training environment.

    Returns
    -------
    dict
        ``regressops_version``, ``python``, ``platform``, ``packages`` (distribution name to
        version, for :data:`PACKAGES` that are installed), ``git_commit`` and ``git_dirty`` of
        the repository around the working directory (``None`` outside one or without git).
    """
    commit, dirty = git_state()
    return {
        "regressops_version": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def environment_of(lineage: Mapping[str, Any]) -> dict[str, Any]:
    """The environment recorded in a bundle's lineage (:func:`environment` if it has none)."""
    if "packages" not in lineage:
        return environment()
    return {k: lineage.get(k) for k in ENVIRONMENT_KEYS}


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES`."""
    versions = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def git_commit(cwd: Path | None = None) -> str | None:
    """The git commit of the working directory, or None outside a repository."""
    return git_state(cwd)[0]


def git_state(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    """Commit and dirtiness (tracked files changed) of the git repository around ``cwd``."""
    git = shutil.which("git")
    if git is None:
        return None, None
    try:
        head = subprocess.run(  # noqa: S603 - fixed arguments, no user input
            [git, "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if head.returncode != 0 or len(head.stdout.strip()) != 40:
            return None, None
        status = subprocess.run(  # noqa: S603 - fixed arguments, no user input
            [git, "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip(), dirty
