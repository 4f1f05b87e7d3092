"""Shared helpers for the registry integration tests: real bundles, real runs, real registry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from regressops.config import Settings
from regressops.data.split import train_test_indices
from regressops.datasets import DATASETS
from regressops.features import FeatureSpec
from regressops.models.catalog import make_estimator, save_bundle, to_bundle
from regressops.registry.connection import connect
from regressops.registry.tracking import LoggedRun, RunRecord, log_training_run
from regressops.training.gates import evaluate_gates


def diabetes_split() -> tuple[Any, Any]:
    frame = DATASETS["diabetes"].load()
    split = train_test_indices(len(frame), test_size=0.2, random_state=42)
    return frame.iloc[split.train], frame.iloc[split.test]


def train_and_log(
    settings: Settings,
    uri: str,
    *,
    kind: str = "linear",
    features: tuple[str, ...] | None = None,
    params: dict[str, Any] | None = None,
    name: str = "diabetes",
) -> tuple[LoggedRun, Any, Any]:
    """Train ``kind`` on diabetes, save its bundle, gate it and log the run; return all three."""
    train, test = diabetes_split()
    info = DATASETS["diabetes"]
    spec = FeatureSpec.fit(train, features=list(features or info.features), target=info.target)
    est = make_estimator(kind, params, random_state=0).fit(spec.transform(train), train["target"])
    bundle = to_bundle(
        kind,
        est,
        name=name,
        spec=spec,
        lineage={"dataset": "diabetes", "source": "sklearn", "content_hash": "abc123", "rows": 442},
    )
    path = save_bundle(bundle, settings.models_dir / f"{name}-{kind}-{len(spec.names)}")
    report = evaluate_gates(bundle, test, settings=settings)
    bundle.metrics = dict(report.candidate["metrics"])
    run = log_training_run(
        RunRecord(
            bundle=bundle,
            bundle_dir=path,
            dataset="diabetes",
            metrics={f"test_{k}": v for k, v in bundle.metrics.items()},
            eval_frame=test,
            gate_report=report.to_dict(),
        ),
        uri=uri,
        client=connect(uri),
        settings=settings,
    )
    return run, bundle, report


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_promoter(path: Path) -> Path:
    """A script that promotes one version at a given wall-clock instant (for races)."""
    path.write_text(
        "import sys, time\n"
        "from regressops.config import Settings\n"
        "from regressops.training.promotion import promote_version\n"
        "from regressops.errors import RegressopsError\n"
        "home, uri, name, version, start = sys.argv[1:6]\n"
        "settings = Settings(home=home, tracking_uri=uri)\n"
        "import mlflow  # import before the start line so both race on the registry only\n"
        "while time.time() < float(start):\n"
        "    time.sleep(0.001)\n"
        "try:\n"
        "    c = promote_version(name, version, why=f'race {version}', settings=settings)\n"
        "    print('OK', c.version, c.previous)\n"
        "except RegressopsError as e:\n"
        "    print('ERR', e.reason, e.message)\n"
        "    sys.exit(e.exit_code)\n"
    )
    return path


def race_promotions(
    env: dict[str, Any], tmp_path: Path, name: str = "race"
) -> tuple[list[str], list[int], list[tuple[str, str]]]:
    """Register three equally good versions of ``name`` (the first @champion), then let two
    processes promote the other two at the same instant.

    ``env`` holds ``settings``, ``uri``, ``client`` and ``home`` of a tracking store. Returns
    the versions, the two processes' exit codes and their (stdout, stderr).
    """
    import subprocess
    import sys
    import time

    from regressops.registry import lifecycle

    settings, uri, client = env["settings"], env["uri"], env["client"]
    versions = []
    for _ in range(3):  # equally good: each passes "beats_champion" on a tie
        run, _, _ = train_and_log(settings, uri, name=name)
        versions.append(
            lifecycle.register_version(
                client, uri, name, model_uri=run.model_uri, run_id=run.run_id, model_id=run.model_id
            )
        )
    lifecycle.promote(client, uri, name, versions[0], force=True, why="base")
    script = write_promoter(tmp_path / "promote.py")
    start = time.time() + 6.0
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(env["home"]), uri, name, v, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in versions[1:]
    ]
    outs = [p.communicate(timeout=120) for p in procs]
    return versions, [p.returncode for p in procs], outs
