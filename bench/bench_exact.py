"""LinearRegressor(solver="exact").fit vs scikit-learn's LinearRegression().fit, in memory.

Same synthetic float64 data for both (offset, mixed-scale columns plus noise), each call in a
fresh worker process, the methods interleaved; reports the median wall time of >= 3 runs, the
extra peak memory (RSS high-water mark above the loaded data), the memory-bandwidth floor (one
pass over X: ``X.sum(axis=0)``), which factorisation our fit used (the Gram/Cholesky fast path
or Householder QR), the time of the Householder path alone (the fallback), the largest relative
coefficient difference between the two fits, and how BLAS ran (threads, and the OpenBLAS kernel
threadpoolctl reports). Each worker first fits 50,000
rows (both estimators alike), so one-off lazy set-up (imports, thread-pool discovery) is not timed.

    .venv/bin/python bench/bench_exact.py            # n=5,000,000 d=20 and n=1,000,000 d=100
    .venv/bin/python bench/bench_exact.py --quick    # small sizes, printed only
    # with the processor's own OpenBLAS kernel (where OPENBLAS_CORETYPE pins an older one):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE .venv/bin/python bench/bench_exact.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from linear_common import (
    blas_info,
    blas_note,
    load_average,
    measure,
    median,
    report,
    run_worker,
    table,
)

FULL_CASES = [(5_000_000, 20), (1_000_000, 100)]
QUICK_CASES = [(200_000, 20), (50_000, 100)]
METHODS = ("regressops", "householder", "sklearn", "floor")


def write_data(folder: Path, n: int, d: int, seed: int = 0) -> tuple[Path, Path]:
    """Write X (n x d) and y as .npy files, chunk by chunk (the parent never holds X)."""
    rng = np.random.default_rng(seed)
    scales = 10.0 ** rng.uniform(-2, 2, d)
    offsets = rng.uniform(-100, 100, d)
    coef = rng.standard_normal(d) / scales
    x_path, y_path = folder / f"X_{n}_{d}.npy", folder / f"y_{n}_{d}.npy"
    X = np.lib.format.open_memmap(x_path, mode="w+", dtype=np.float64, shape=(n, d))
    y = np.lib.format.open_memmap(y_path, mode="w+", dtype=np.float64, shape=(n,))
    for start in range(0, n, 250_000):
        stop = min(n, start + 250_000)
        block = rng.standard_normal((stop - start, d)) * scales + offsets
        X[start:stop] = block
        y[start:stop] = block @ coef + 3.0 + rng.standard_normal(stop - start)
    X.flush()
    y.flush()
    del X, y
    return x_path, y_path


def worker(method: str, x_path: str, y_path: str) -> None:
    import json

    X, y = np.load(x_path), np.load(y_path)
    if method in ("regressops", "householder"):
        from regressops.models import LinearRegressor, _gram

        if method == "householder":  # the fallback path alone (the solver before the fast path)
            _gram.GRAM_MIN_ROWS = 2**62

        LinearRegressor(solver="exact").fit(X[:50_000], y[:50_000])  # warm-up: lazy setup
        model = LinearRegressor(solver="exact")
        out = measure(lambda: model.fit(X, y).coef_.tolist())
        out["factorisation"] = model._state.method
    elif method == "sklearn":
        from sklearn.linear_model import LinearRegression

        LinearRegression().fit(X[:50_000], y[:50_000])  # warm-up, as for ours
        out = measure(lambda: LinearRegression().fit(X, y).coef_.tolist())
    else:
        X.sum(axis=0)  # warm the pages once; then time one pass
        out = measure(lambda: X.sum(axis=0).tolist())
    out.update(blas_info())
    print(json.dumps(out))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes; print only")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="BLAS/OpenMP threads")
    parser.add_argument(
        "--write",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="append to bench/RESULTS.md (default: on for full runs)",
    )
    parser.add_argument("--worker", nargs=3, metavar=("METHOD", "X", "Y"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    write = (not args.quick) if args.write is None else args.write
    cases = QUICK_CASES if args.quick else FULL_CASES
    rows, loads, every_run = [], [load_average()], []
    with tempfile.TemporaryDirectory(prefix="bench-exact-") as tmp:
        for n, d in cases:
            x_path, y_path = write_data(Path(tmp), n, d)
            runs: dict[str, list[dict]] = {m: [] for m in METHODS}
            for _ in range(args.repeats):  # interleaved, so load changes hit all alike
                for method in METHODS:
                    runs[method].append(
                        run_worker(Path(__file__), [method, str(x_path), str(y_path)], args.threads)
                    )
            loads.append(load_average())
            every_run += [r for m in METHODS for r in runs[m]]
            t = {m: median([r["seconds"] for r in runs[m]]) for m in METHODS}
            mem = {m: median([r["extra_mb"] for r in runs[m]]) for m in METHODS}
            ours, ref = (
                np.array(runs["regressops"][0]["result"]),
                np.array(runs["sklearn"][0]["result"]),
            )
            rel = float(np.max(np.abs(ours - ref) / np.maximum(np.abs(ref), 1e-300)))
            rows.append(
                [
                    f"{n:,}",
                    d,
                    f"{n * d * 8 / 2**20:,.0f}",
                    f"{t['regressops']:.2f}",
                    f"{t['sklearn']:.2f}",
                    f"{t['sklearn'] / t['regressops']:.1f}x",
                    f"{t['householder']:.2f} ({t['sklearn'] / t['householder']:.1f}x)",
                    f"{t['floor']:.2f}",
                    f"{mem['regressops']:.0f}",
                    f"{mem['sklearn']:.0f}",
                    f"{mem['regressops'] / max(mem['sklearn'], 1e-9):.3f}",
                    f"{rel:.1e}",
                    "/".join(sorted({r["factorisation"] for r in runs["regressops"]})),
                    " / ".join(f"{r['seconds']:.2f}" for r in runs["regressops"]),
                    " / ".join(f"{r['seconds']:.2f}" for r in runs["sklearn"]),
                ]
            )
    body = (
        f"{blas_note(every_run, args.threads)}; "
        f"median of {args.repeats} interleaved runs, each in a fresh process. Load average "
        f"(1/5/15 min) before and after each case: {' -> '.join(loads)}.\n\n"
        + table(
            [
                "n",
                "d",
                "X MB",
                "ours s",
                "sklearn s",
                "speed-up",
                "Householder path s (speed-up)",
                "floor s (X.sum)",
                "ours extra MB",
                "sklearn extra MB",
                "memory ratio",
                "max rel coef diff",
                "our factorisation",
                "ours runs",
                "sklearn runs",
            ],
            rows,
        )
    )
    title = "LinearRegressor exact vs LinearRegression" + (" (quick)" if args.quick else "")
    report(title, body, key="linear-exact", write=write)


if __name__ == "__main__":
    main()
