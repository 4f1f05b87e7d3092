"""int8 quantisation of the seed's California model: what it costs and what it saves.

Trains the seed's model (California housing, all 8 features, ``exact``, 20% test, seed 42:
float R² 0.5758) into a temporary home, quantises it per-tensor and per-feature with
``quantize_model`` (the function behind ``regressops quantize``), and reports on the 4128 test
rows: R² and RMSE before and after, the largest ``|Δŷ|`` measured against its bound, the size
of the coefficients and of ``model.json``. Then times, interleaved, the serving predictor of the
float and the int8 bundle on all test rows (``Predictor.predict_rows``, one thread) and the
bundle load, median of ``--runs``; the float model is the reference.

    REGRESSOPS_CALIFORNIA_PATH=../shared/data/california_housing/cal_housing.data \\
        .venv/bin/python bench/bench_quantize.py            # appends to RESULTS.md
    .venv/bin/python bench/bench_quantize.py --quick        # fewer runs, printed only
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 runs, print only")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per case")
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument("--no-write", action="store_true", help="do not touch RESULTS.md")
    args = parser.parse_args()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    runs = 5 if args.quick else args.runs
    default = HERE.parent.parent / "shared" / "data" / "california_housing" / "cal_housing.data"
    os.environ.setdefault("REGRESSOPS_CALIFORNIA_PATH", str(default))

    from linear_common import load_average, median, report, table
    from regressops.config import Settings
    from regressops.models.bundle import load_bundle
    from regressops.serving.predictor import Predictor
    from regressops.training.quantization import heldout_rows, quantize_model
    from regressops.training.train import train

    with tempfile.TemporaryDirectory(prefix="bench-quantize-") as tmp:
        settings = Settings(home=Path(tmp) / "home")
        trained = train(
            dataset="california", solver="exact", test_size=0.2, random_state=42,
            output=Path(tmp) / "float", plots=False, settings=settings,
        )  # fmt: skip
        results = {
            g: quantize_model(
                model=trained.path, output=Path(tmp) / g, granularity=g, settings=settings
            )
            for g in ("per-tensor", "per-feature")
        }
        float_bundle = load_bundle(trained.path)
        names = float_bundle.spec.names
        rows = heldout_rows(float_bundle, settings)[names].to_numpy().tolist()
        before = load_average()
        timings: dict[str, list[float]] = {"float": [], **{g: [] for g in results}}
        loads: dict[str, list[float]] = {k: [] for k in timings}
        paths = {"float": trained.path, **{g: r.path for g, r in results.items()}}
        predictors = {k: Predictor(load_bundle(p)) for k, p in paths.items()}
        for _ in range(runs):  # interleaved: each run times every model once
            for key, predictor in predictors.items():
                start = time.perf_counter()
                for _ in range(20):
                    predictor.predict_rows(rows)
                timings[key].append((time.perf_counter() - start) / 20)
                start = time.perf_counter()
                load_bundle(paths[key])
                loads[key].append(time.perf_counter() - start)
        after = load_average()

    ref_predict, ref_load = median(timings["float"]), median(loads["float"])
    r0 = results["per-tensor"].report
    body = (
        f"Seed model: float R² {r0.float_r2:.4f}, RMSE {r0.float_rmse:.4f} on {r0.n_rows} test "
        f"rows. Threads: BLAS/OpenMP = {args.threads} (OMP_NUM_THREADS, OPENBLAS_NUM_THREADS); "
        f"timings are the median of {runs} interleaved runs (predict: 20 calls each). Load "
        f"average before -> after: {before} -> {after}.\n\n"
    )
    quality = []
    for g, res in results.items():
        r = res.report
        quality.append([
            g, f"{r.int8_r2:.4f}", f"{r.int8_r2 - r.float_r2:+.2e}", f"{r.int8_rmse:.4f}",
            f"{r.max_abs_error:.4g}", f"{r.bound_at_max:.4g}", f"{r.max_bound:.4g}",
            r.bound_violations, f"{r.float_bytes} -> {r.int8_bytes}",
            f"{res.source_bytes} -> {res.output_bytes}",
        ])  # fmt: skip
    body += table(
        ["scale", "int8 R²", "ΔR²", "int8 RMSE", "max \\|Δŷ\\|", "bound at that row",
         "max bound", "rows over bound", "coefficient bytes", "model.json bytes"],
        quality,
    )  # fmt: skip
    speed = [
        [
            key, f"{median(timings[key]) * 1e3:.3f}", f"{ref_predict / median(timings[key]):.2f}x",
            f"{median(loads[key]) * 1e3:.2f}", f"{ref_load / median(loads[key]):.2f}x",
        ]
        for key in timings
    ]  # fmt: skip
    body += "\n" + table(
        ["model", f"predict {len(rows)} rows ms", "vs float", "load ms", "vs float"], speed
    )
    body += "\n" + wide_sizes()
    report(
        "int8 quantisation of the seed's California model (`bench/bench_quantize.py`)",
        body,
        key="quantize",
        write=not (args.quick or args.no_write),
    )
    return 0


def wide_sizes(widths: tuple[int, ...] = (8, 100, 1000)) -> str:
    """model.json bytes of float and int8 bundles of synthetic linear models of several widths
    (the feature spec grows with the width too; coefficients are random normals)."""
    import json

    import numpy as np

    from linear_common import table
    from regressops.features import FeatureSpec
    from regressops.models.bundle import ModelBundle
    from regressops.models.quantize import quantize_bundle

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-quantize-wide-") as tmp:
        for d in widths:
            cols = {f"x{j}": rng.normal(size=50) for j in range(d)}
            spec = FeatureSpec.fit(cols)
            bundle = ModelBundle(name="wide", kind="linear", spec=spec, coef=rng.normal(size=d))
            f = bundle.save(Path(tmp) / f"f{d}") / "model.json"
            q = quantize_bundle(bundle).save(Path(tmp) / f"q{d}") / "model.json"
            spec_bytes = len(json.dumps({"feature_spec": spec.to_dict()}, indent=2))
            fb, qb = f.stat().st_size, q.stat().st_size
            rows.append([d, fb, qb, f"{qb / fb:.2f}", spec_bytes])
    headers = ["features", "float model.json B", "int8 model.json B", "ratio", "of which spec B"]
    return "Size on disk as the model widens (synthetic numeric features, per-tensor):\n\n" + table(
        headers, rows
    )


if __name__ == "__main__":
    raise SystemExit(main())
