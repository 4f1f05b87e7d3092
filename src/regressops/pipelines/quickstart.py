"""The quickstart job on the embedded default: the data path, then train on diabetes.

:func:`quickstart` first runs the data path (:func:`~regressops.pipelines.data_path.run_data_path`:
seed ``<home>/demo.db``, extract into the lake's raw Delta table, validate into a clean version),
then trains the default model on that clean version of ``diabetes`` (into
``<home>/models/diabetes``) and writes a small input file (``<home>/samples/diabetes.csv``,
features only) so that the ``predict`` command it suggests runs as printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from regressops.config import Settings, get_settings
from regressops.training.train import Progress, TrainResult, train

if TYPE_CHECKING:
    from regressops.pipelines.data_path import DataPathResult
    from regressops.training.candidates import Recorded

QUICKSTART_DATASET = "diabetes"
SAMPLE_ROWS = 5


@dataclass
class QuickstartResult:
    """What :func:`quickstart` produced.

    Attributes
    ----------
    train : TrainResult
        The training run (bundle path, metrics).
    dataset : str
        The dataset trained on.
    sample_input : Path
        A features-only file to try ``regressops predict`` on.
    registry : Recorded or None
        The MLflow run and the registered version (``@champion`` when its gates passed).
    data : DataPathResult or None
        The demo source, raw and clean Delta versions and validation report trained from.
    """

    train: TrainResult
    dataset: str
    sample_input: Path
    registry: Recorded | None = None
    data: DataPathResult | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            **self.train.to_dict(),
            "dataset": self.dataset,
            "sample_input": str(self.sample_input),
            "registry": self.registry.to_dict() if self.registry is not None else None,
            "data": self.data.to_dict() if self.data is not None else None,
        }


def quickstart(
    *, settings: Settings | None = None, progress: Progress | None = None
) -> QuickstartResult:
    """Train on the built-in diabetes data with the default solver and write a sample input.

    Parameters
    ----------
    settings : Settings, optional
        Defaults to :func:`~regressops.config.get_settings`; everything goes under its home.
    progress : callable, optional
        Passed to :func:`~regressops.training.train.train`.

    Returns
    -------
    QuickstartResult
    """
    from regressops.data.files import write_table
    from regressops.pipelines.data_path import run_data_path

    settings = settings or get_settings()
    data = run_data_path(QUICKSTART_DATASET, settings=settings)
    from regressops.data.selection import DataSelection

    selection = DataSelection(dataset=QUICKSTART_DATASET)
    result = train(selection, settings=settings, progress=progress)
    assert result.data is not None
    sample = result.data.frame[result.data.features].tail(SAMPLE_ROWS)
    sample_path = write_table(sample, settings.home / "samples" / f"{QUICKSTART_DATASET}.csv")
    # Log the run to MLflow and register the model: @champion if its quality gates pass.
    from regressops.training.candidates import RecordPlan, record_training

    record = RecordPlan(cv=settings.train.cv, register=True)
    recorded = record_training([result], record, settings=settings, progress=progress)
    return QuickstartResult(
        train=result,
        dataset=QUICKSTART_DATASET,
        sample_input=sample_path,
        registry=recorded,
        data=data,
    )
