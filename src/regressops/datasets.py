"""Built-in datasets and their specs: diabetes, insurance, california.

Each dataset is a :class:`DatasetInfo` (name, target, features, categorical columns, source and
provenance) with a loader returning one DataFrame of features plus target.

- ``diabetes``: ships inside scikit-learn (442 rows, 10 standardised features).
- ``insurance``: the Medical Cost Personal dataset (1338 rows, categoricals ``sex``, ``smoker``,
  ``region``), shipped with this package (see ``datasets_data/PROVENANCE.md``).
- ``california``: scikit-learn's California housing (20640 rows, 8 features). Loaded from a local
  file when one is configured (``REGRESSOPS_CALIFORNIA_PATH``, or ``path`` under
  ``[datasets.california]`` in ``regressops.toml``): the raw ``cal_housing.data``, the
  ``cal_housing.tgz`` archive, or a CSV/Parquet of the scikit-learn frame. Otherwise through
  :func:`sklearn.datasets.fetch_california_housing` (its cache, then the network); offline with
  no cache, a :class:`~regressops.errors.DataError` says how to point at a local copy.
"""

from __future__ import annotations

import io
import logging
import os
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from regressops.config import Settings, get_settings
from regressops.errors import ConfigError, DataError

if TYPE_CHECKING:
    import pandas as pd

logger = logging.getLogger(__name__)

CALIFORNIA_PATH_ENV = "REGRESSOPS_CALIFORNIA_PATH"
CALIFORNIA_RAW_COLUMNS = [
    "longitude",
    "latitude",
    "housingMedianAge",
    "totalRooms",
    "totalBedrooms",
    "population",
    "households",
    "medianIncome",
    "medianHouseValue",
]
CALIFORNIA_FEATURES = [
    "MedInc",
    "HouseAge",
    "AveRooms",
    "AveBedrms",
    "Population",
    "AveOccup",
    "Latitude",
    "Longitude",
]


@dataclass(frozen=True)
class DatasetInfo:
    """What a built-in dataset is and how to load it.

    Attributes
    ----------
    name : str
        Dataset name as used on the command line.
    target : str
        Target column.
    features : tuple of str
        Feature columns, in model order.
    categorical : tuple of str
        The categorical features (one-hot encoded by the FeatureSpec).
    description, source : str
        One line each, for the CLI and lineage.
    """

    name: str
    target: str
    features: tuple[str, ...]
    categorical: tuple[str, ...]
    description: str
    source: str
    loader: Callable[[Settings], pd.DataFrame]

    def load(self, settings: Settings | None = None) -> pd.DataFrame:
        """Load the dataset as one DataFrame (features, then target)."""
        frame = self.loader(settings or get_settings())
        return frame[[*self.features, self.target]]


def _load_diabetes(settings: Settings) -> pd.DataFrame:
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True).frame


def _load_insurance(settings: Settings) -> pd.DataFrame:
    import pandas as pd

    data = resources.files("regressops").joinpath("datasets_data", "insurance.csv").read_bytes()
    return pd.read_csv(io.BytesIO(data))


def california_from_raw(raw: pd.DataFrame) -> pd.DataFrame:
    """Apply scikit-learn's transformation to the raw ``cal_housing.data`` columns.

    Gives exactly the frame of ``fetch_california_housing(as_frame=True).frame``.
    """
    import pandas as pd

    hh = raw["households"]
    return pd.DataFrame(
        {
            "MedInc": raw["medianIncome"],
            "HouseAge": raw["housingMedianAge"],
            "AveRooms": raw["totalRooms"] / hh,
            "AveBedrms": raw["totalBedrooms"] / hh,
            "Population": raw["population"],
            "AveOccup": raw["population"] / hh,
            "Latitude": raw["latitude"],
            "Longitude": raw["longitude"],
            "MedHouseVal": raw["medianHouseValue"] / 100_000.0,
        }
    )


def _read_california_file(path: Path) -> pd.DataFrame:
    import pandas as pd

    if not path.is_file():
        raise DataError(
            f"California housing file not found: {path} (set by {CALIFORNIA_PATH_ENV} or "
            "[datasets.california] path)",
            reason="file_not_found",
        )
    name = path.name.lower()
    if name.endswith((".tgz", ".tar.gz")):
        with tarfile.open(path, "r:gz") as tar:
            member = next(
                (m for m in tar.getmembers() if m.name.endswith("cal_housing.data")), None
            )
            if member is None:
                raise DataError(f"{path} holds no cal_housing.data", reason="invalid_file")
            fh = tar.extractfile(member)
            if fh is None:
                raise DataError(f"cannot read cal_housing.data from {path}", reason="invalid_file")
            raw = pd.read_csv(fh, header=None, names=CALIFORNIA_RAW_COLUMNS)
        return california_from_raw(raw)
    if name.endswith(".data"):
        raw = pd.read_csv(path, header=None, names=CALIFORNIA_RAW_COLUMNS)
        return california_from_raw(raw)
    if name.endswith((".parquet", ".pq")):
        frame = pd.read_parquet(path)
    elif name.endswith(".csv"):
        frame = pd.read_csv(path)
    else:
        raise DataError(
            f"{path}: expected the California housing data as .csv, .parquet, .data or .tgz",
            reason="unsupported_format",
        )
    missing = [c for c in [*CALIFORNIA_FEATURES, "MedHouseVal"] if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks the scikit-learn California columns {missing}", reason="missing_column"
        )
    return frame


def _load_california(settings: Settings) -> pd.DataFrame:
    configured = os.environ.get(CALIFORNIA_PATH_ENV) or settings.datasets.get("california", {}).get(
        "path"
    )
    if configured:
        return _read_california_file(Path(configured))
    from sklearn.datasets import fetch_california_housing

    try:
        return fetch_california_housing(as_frame=True).frame
    except OSError as exc:
        raise DataError(
            "cannot download California housing (offline?): "
            f"{type(exc).__name__}; set {CALIFORNIA_PATH_ENV} to a local cal_housing.data, "
            "cal_housing.tgz or CSV of the scikit-learn frame",
            reason="dataset_unavailable",
        ) from None


DATASETS: dict[str, DatasetInfo] = {
    "diabetes": DatasetInfo(
        name="diabetes",
        target="target",
        features=("age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"),
        categorical=(),
        description="Diabetes progression after one year; 442 patients, 10 scaled features",
        source="sklearn.datasets.load_diabetes (Efron et al., 2004)",
        loader=_load_diabetes,
    ),
    "insurance": DatasetInfo(
        name="insurance",
        target="charges",
        features=("age", "sex", "bmi", "children", "smoker", "region"),
        categorical=("sex", "smoker", "region"),
        description="Medical Cost Personal dataset: annual charges of 1338 insured people",
        source="Lantz, Machine Learning with R (2013); package data insurance.csv",
        loader=_load_insurance,
    ),
    "california": DatasetInfo(
        name="california",
        target="MedHouseVal",
        features=tuple(CALIFORNIA_FEATURES),
        categorical=(),
        description="California housing, 1990 census block groups; median house value (100k USD)",
        source="Pace & Barry (1997), via sklearn.datasets.fetch_california_housing",
        loader=_load_california,
    ),
}


def get_dataset(name: str) -> DatasetInfo:
    """Return the built-in dataset called ``name``.

    Raises
    ------
    ConfigError
        No built-in dataset has that name.
    """
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(
            f"unknown dataset {name!r}; expected one of {sorted(DATASETS)}",
            reason="unknown_dataset",
        ) from None


def load_dataset(name: str, settings: Settings | None = None) -> pd.DataFrame:
    """Load the built-in dataset ``name`` as one DataFrame of features and target."""
    return get_dataset(name).load(settings)
