"""The data path on the embedded default: demo database → raw Delta → validated clean Delta.

:func:`run_data_path` chains the three data stages for one built-in dataset, the way
``quickstart`` runs them before training: seed the SQLite demo database (``demo-db``), extract
its table into the lake's raw table (``extract``; nothing new on a re-run), and validate the raw
version into a clean version (``validate``). Training then reads that clean version.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from regressops.config import Settings, get_settings
from regressops.data.demo_db import DemoDbResult, seed_demo_db
from regressops.data.extract import ExtractResult, extract
from regressops.data.source import DEMO_DB_FILE
from regressops.data.validate import ValidationResult, validate


@dataclass
class DataPathResult:
    """What :func:`run_data_path` produced and where it lives.

    Attributes
    ----------
    source : DemoDbResult
        The seeded demo table.
    extract : ExtractResult
        The raw Delta version written (or found unchanged).
    validation : ValidationResult
        The report and the clean Delta version.
    """

    source: DemoDbResult
    extract: ExtractResult
    validation: ValidationResult

    def artefacts(self) -> dict[str, str]:
        """Where each artefact lives: source, raw and clean tables, report."""
        v = self.validation
        return {
            "source database": f"{self.source.url} (table {self.source.table})",
            "raw Delta table": f"{self.extract.lake_path} (v{self.extract.raw_version})",
            "clean Delta table": f"{self.extract.lake_path.parent / 'clean'} (v{v.clean_version})",
            "validation report": f"{v.report_json} (+ {Path(v.report_csv).name})",
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "source": self.source.to_dict(),
            "extract": self.extract.to_dict(),
            "validation": {
                k: v for k, v in self.validation.to_dict().items() if k not in ("checks", "meta")
            },
            "artefacts": self.artefacts(),
        }


def run_data_path(
    dataset: str = "diabetes",
    *,
    messy: bool = False,
    on_fail: str | None = None,
    settings: Settings | None = None,
) -> DataPathResult:
    """Seed the demo database with ``dataset``, extract it, validate it.

    Parameters
    ----------
    dataset : str, default="diabetes"
        A built-in dataset.
    messy : bool, default=False
        Seed with defects (then use ``on_fail="quarantine"`` or ``"warn"``).
    on_fail : str, optional
        Passed to :func:`~regressops.data.validate.validate`.
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`.

    Returns
    -------
    DataPathResult
    """
    settings = settings or get_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{(settings.home / DEMO_DB_FILE).resolve()}"
    source = seed_demo_db(url=url, dataset=dataset, messy=messy, settings=settings)
    extracted = extract(dataset, source_url=url, table=source.table, settings=settings)
    validated = validate(dataset, on_fail=on_fail, settings=settings)
    return DataPathResult(source=source, extract=extracted, validation=validated)
