"""Fixtures of the data-platform tests: settings with fast retries, seeded SQLite sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.data import make_settings
from regressops.config import Settings
from regressops.data.demo_db import DemoDbResult, seed_demo_db


@pytest.fixture
def settings(home: Path) -> Settings:
    """This test's settings: its own home, one quick retry."""
    return make_settings(home)


@pytest.fixture
def insurance_db(settings: Settings) -> DemoDbResult:
    """The clean insurance data seeded into ``<home>/demo.db``."""
    return seed_demo_db(dataset="insurance", settings=settings)


@pytest.fixture
def messy_db(settings: Settings) -> DemoDbResult:
    """Insurance with injected defects, seeded into ``<home>/demo.db``."""
    return seed_demo_db(dataset="insurance", messy=True, settings=settings)
