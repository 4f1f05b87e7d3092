"""The software side of a model's lineage: versions of regressops, Python, packages and code.

:func:`environment` returns what goes into every bundle's ``lineage.json`` next to the data's
lineage (:mod:`regressops.training.sources`) and the split: enough to rebuild the environment a
model was trained in.
"""

from __future__ import annotations

import contextlib
import platform
import shutil
import subprocess
from importlib import metadata
from typing import Any

from regressops import __version__

LINEAGE_PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "pyarrow", "regressops")


def environment() -> dict[str, Any]:
    """Return the training environment for ``lineage.json``.

    Returns
    -------
    dict
        ``regressops_version``, ``python``, ``packages`` (name to version), ``git_commit`` and
        ``git_dirty`` of the repository around the working directory (``None`` outside one or
        without git).
    """
    commit, dirty = git_state()
    return {
        "regressops_version": __version__,
        "python": platform.python_version(),
        "packages": package_versions(),
        "git_commit": commit,
        "git_dirty": dirty,
    }


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a trained model depends on."""
    versions = {}
    for name in LINEAGE_PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return versions


def git_state() -> tuple[str | None, bool | None]:
    """Commit and dirtiness (tracked files changed) of the git repository around the cwd."""
    git = shutil.which("git")
    if git is None:
        return None, None
    try:
        head = subprocess.run(  # noqa: S603 - fixed arguments, no user input
            [git, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
        if head.returncode != 0 or len(head.stdout.strip()) != 40:
            return None, None
        status = subprocess.run(  # noqa: S603 - fixed arguments, no user input
            [git, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None, None
    dirty = bool(status.stdout.strip()) if status.returncode == 0 else None
    return head.stdout.strip(), dirty
