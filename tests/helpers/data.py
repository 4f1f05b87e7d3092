"""Helpers of the data-platform tests (imported as ``helpers.data``)."""

from __future__ import annotations

from pathlib import Path

from regressops.config import Settings

FAST_DATA = {"retries": 1, "retry_backoff": 0.01, "connect_timeout": 2.0}


def make_settings(home: Path, **fields: object) -> Settings:
    """Settings rooted at ``home`` with fast retries (plus any other fields)."""
    data = {**FAST_DATA, **fields.pop("data", {})}  # type: ignore[dict-item]
    return Settings(home=home, data=data, **fields)  # type: ignore[arg-type]


def sqlite_url(settings: Settings) -> str:
    """URL of the demo database of ``settings``."""
    return f"sqlite:///{(settings.home / 'demo.db').resolve()}"


def lake_files(settings: Settings) -> set[Path]:
    """Every file under the lake folder (to prove nothing was written)."""
    root = settings.lake_dir
    return {p for p in root.rglob("*") if p.is_file()} if root.exists() else set()
