"""False alarms and detection power of our drift defaults against Evidently 0.7's rule.

For each built-in dataset, 200 random splits into a reference half and a current half:

- **false alarms** (no shift): the share of feature tests that flag drift, the share of splits
  with at least one flagged feature, and the share judged as dataset drift;
- **power**: one continuous feature of the current half shifted by 0.1–0.5 of its standard
  deviation (a different feature in each split); the share of splits that flag that feature.

Three judges on the same splits: ours (``DriftDetector`` with default settings: pooled
chi-square and Benjamini–Hochberg), Evidently 0.7's default rule re-implemented with scipy
(:func:`evidently_rule`, its exact tests: goodness-of-fit chi-square, raw p < 0.05), and — when
``--evidently-python`` names an environment with ``evidently==0.7.23`` — real Evidently on the
first ``--evidently-splits`` splits, as a check that the re-implementation is faithful.

Run: ``.venv/bin/python bench/bench_drift_quality.py [--splits 200] [--evidently-python
/tmp/evid/bin/python] [--record]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial.distance import jensenshannon

from regressops.config import MonitorSettings
from regressops.datasets import get_dataset
from regressops.monitoring.drift import DriftDetector
from regressops.monitoring.reference import build_reference
from regressops.monitoring.tables import TableWindow

HERE = Path(__file__).resolve().parent
SHIFTS = (0.1, 0.2, 0.3, 0.5)
CALIFORNIA = HERE.parent.parent / "shared" / "data" / "california_housing" / "cal_housing.data"


# ---------------------------------------------------------------------- Evidently's rule
def _ev_kind(col: pd.Series) -> str:
    """Evidently 0.7's ``infer_column_type``: floats numeric, ints with ≤10 values categorical."""
    name = col.dtype.name
    if name.startswith("float"):
        return "num"
    if name.startswith("int"):
        return "cat" if col.nunique() <= 10 else "num"
    return "cat"


def _ev_counts(ref: pd.Series, cur: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    keys = sorted(set(ref.dropna().unique()) | set(cur.dropna().unique()), key=str)
    rc, cc = ref.value_counts(), cur.value_counts()
    return (
        np.array([rc.get(k, 0) for k in keys], dtype=float),
        np.array([cc.get(k, 0) for k in keys], dtype=float),
    )


def _ev_drifted(ref: pd.Series, cur: pd.Series, kind: str) -> bool:
    n_values = pd.concat([ref, cur]).nunique()
    if len(ref) <= 1000:
        if kind == "num" and n_values > 5:
            return bool(stats.ks_2samp(ref, cur).pvalue < 0.05)
        if n_values > 2:  # chi-square goodness of fit against the reference's shares
            r, c = _ev_counts(ref, cur)
            with np.errstate(divide="ignore", invalid="ignore"):
                p = stats.chisquare(c, r * len(cur) / len(ref)).pvalue
            return bool(not p >= 0.05)  # NaN (an empty expected cell) counts as drift
        if ref.nunique() == 1 and cur.nunique() == 1 and ref.iloc[0] == cur.iloc[0]:
            return False
        key = sorted(pd.concat([ref, cur]).dropna().unique(), key=str)[0]
        x1, x2 = (ref != key).astype(float), (cur != key).astype(float)
        n1, n2 = len(x1), len(x2)
        p1, p2 = x1.mean(), x2.mean()
        pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
        z = (p1 - p2) / np.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        return bool(2 * (1 - stats.norm.cdf(abs(z))) < 0.05)
    if kind == "num" and n_values > 5:
        norm = max(float(np.std(ref)), 0.001)
        return bool(stats.wasserstein_distance(ref, cur) / norm >= 0.1)
    if kind == "num" and ref.nunique() > 20:
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        rp = np.histogram(ref, edges)[0] / len(ref)
        cp = np.histogram(cur, edges)[0] / len(cur)
    else:
        r, c = _ev_counts(ref, cur)
        rp, cp = r / len(ref), c / len(cur)
    return bool(jensenshannon(rp, cp) >= 0.1)


def evidently_rule(ref: pd.DataFrame, cur: pd.DataFrame) -> list[str]:
    """The columns Evidently 0.7's DataDriftPreset flags, by its default tests (scipy)."""
    return [c for c in ref.columns if _ev_drifted(ref[c], cur[c], _ev_kind(ref[c]))]


# ---------------------------------------------------------------------- ours
def ours(
    ref: pd.DataFrame, cur: pd.DataFrame, kinds: dict[str, str], *, fdr: bool = True
) -> list[str]:
    """The features our defaults flag (``fdr=False``: without Benjamini–Hochberg)."""
    profile = build_reference(ref, kinds=kinds, source="bench")
    detector = DriftDetector(settings=MonitorSettings(fdr=fdr), workers=1)
    return detector.fit(profile).calculate(TableWindow(cur, kinds)).drifted_features


# ---------------------------------------------------------------------- the experiment
def load(name: str) -> tuple[pd.DataFrame, dict[str, str], list[str]]:
    """The dataset's features, our kinds, and the continuous float columns that get shifted."""
    if name == "california":
        os.environ.setdefault("REGRESSOPS_CALIFORNIA_PATH", str(CALIFORNIA))
    info = get_dataset(name)
    frame = info.load()[list(info.features)]
    kinds = {f: "categorical" if f in info.categorical else "numeric" for f in info.features}
    shiftable = [c for c in info.features if frame[c].dtype.kind == "f" and frame[c].nunique() > 5]
    return frame, kinds, shiftable


def make_splits(n: int, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        perm = rng.permutation(n)
        out.append((np.sort(perm[: n // 2]), np.sort(perm[n // 2 :])))
    return out


def run_dataset(name: str, splits: int, evidently_python: str | None, ev_splits: int) -> dict:
    frame, kinds, shiftable = load(name)
    cuts = make_splits(len(frame), splits, seed=hash(name) % 2**16)
    judges = {
        "ours": lambda r, c: ours(r, c, kinds),
        "ours_fdr_off": lambda r, c: ours(r, c, kinds, fdr=False),
        "evidently_rule": evidently_rule,
    }
    result: dict[str, Any] = {
        "dataset": name,
        "rows": len(frame),
        "features": len(kinds),
        "splits": splits,
    }
    # false alarms
    for judge, fn in judges.items():
        flags = [fn(frame.iloc[r], frame.iloc[c]) for r, c in cuts]
        result[judge] = _alarm_rates(flags, len(kinds))
    # power: a different continuous feature shifted in each split
    jobs = []
    for delta in SHIFTS:
        for judge, fn in judges.items():
            hits = 0
            for i, (r, c) in enumerate(cuts):
                col = shiftable[i % len(shiftable)]
                cur = frame.iloc[c].copy()
                cur[col] = cur[col] + delta * frame[col].std()
                hits += col in fn(frame.iloc[r], cur)
            result[judge][f"power_{delta}"] = hits / len(cuts)
    if evidently_python:
        sub = cuts[:ev_splits]
        jobs = [{"ref": r.tolist(), "cur": c.tolist(), "shift": None} for r, c in sub]
        for delta in SHIFTS:
            for i, (r, c) in enumerate(sub):
                col = shiftable[i % len(shiftable)]
                by = delta * float(frame[col].std())
                jobs.append(
                    {"ref": r.tolist(), "cur": c.tolist(), "shift": {"column": col, "by": by}}
                )
        drifted = _run_evidently(evidently_python, frame, jobs)
        real = _alarm_rates(drifted[: len(sub)], len(kinds))
        for k, delta in enumerate(SHIFTS):
            part = drifted[len(sub) * (k + 1) : len(sub) * (k + 2)]
            job_part = jobs[len(sub) * (k + 1) : len(sub) * (k + 2)]
            real[f"power_{delta}"] = sum(
                j["shift"]["column"] in d for j, d in zip(job_part, part, strict=True)
            ) / len(sub)
        real["splits"] = len(sub)
        result["evidently_0.7.23"] = real
    return result


def _alarm_rates(flags: list[list[str]], n_features: int) -> dict[str, float]:
    return {
        "feature_false_alarm": sum(len(f) for f in flags) / (len(flags) * n_features),
        "split_any_alarm": sum(bool(f) for f in flags) / len(flags),
        "dataset_drift": sum(len(f) / n_features >= 0.5 for f in flags) / len(flags),
    }


def _run_evidently(python: str, frame: pd.DataFrame, jobs: list[dict]) -> list[list[str]]:
    with tempfile.TemporaryDirectory() as tmp:
        csv = Path(tmp) / "data.csv"
        frame.to_csv(csv, index=False)
        done = subprocess.run(
            [python, str(HERE / "evidently_runner.py")],
            input=json.dumps({"csv": str(csv), "splits": jobs}),
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(done.stdout)["drifted"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument("--datasets", default="diabetes,insurance,california")
    parser.add_argument("--evidently-python", default=None)
    parser.add_argument("--evidently-splits", type=int, default=50)
    parser.add_argument("--output", type=Path, default=None, help="Write the results as JSON.")
    args = parser.parse_args()
    results = [
        run_dataset(name, args.splits, args.evidently_python, args.evidently_splits)
        for name in args.datasets.split(",")
    ]
    text = json.dumps(results, indent=2)
    if args.output:
        args.output.write_text(text + "\n")
    sys.stdout.write(render(results))


def render(results: list[dict]) -> str:
    lines = [
        "| dataset | judge | splits | feature false alarms | splits with any alarm | dataset "
        "drift | power 0.1σ | 0.2σ | 0.3σ | 0.5σ |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        for judge in ("ours", "ours_fdr_off", "evidently_rule", "evidently_0.7.23"):
            r = res.get(judge)
            if r is None:
                continue
            powers = " | ".join(f"{r[f'power_{d}']:.0%}" for d in SHIFTS)
            lines.append(
                f"| {res['dataset']} ({res['rows']} rows) | {judge} | "
                f"{r.get('splits', res['splits'])} | {r['feature_false_alarm']:.1%} | "
                f"{r['split_any_alarm']:.1%} | "
                f"{r['dataset_drift']:.1%} | {powers} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
