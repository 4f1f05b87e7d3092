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
    """A script that promotes one version once a barrier file appears (for races): it writes
    ``<barrier>.ready-<version>`` when set up, then waits for ``<barrier>`` itself."""
    path.write_text(
        "import os, sys, time\n"
        "from regressops.config import Settings\n"
        "from regressops.training.promotion import promote_version\n"
        "from regressops.errors import RegressopsError\n"
        "home, uri, name, version, barrier = sys.argv[1:6]\n"
        "# the race is about the registry lock, not about latency on a loaded machine\n"
        "settings = Settings(home=home, tracking_uri=uri, gates={'max_latency_ms': 60000})\n"
        "import mlflow  # import before the barrier so both race on the registry only\n"
        "open(f'{barrier}.ready-{version}', 'w').close()\n"
        "while not os.path.exists(barrier):\n"
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
    barrier = tmp_path / "go"
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(env["home"]), uri, name, v, str(barrier)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for v in versions[1:]
    ]
    ready = [Path(f"{barrier}.ready-{v}") for v in versions[1:]]
    deadline = time.monotonic() + 300
    while not all(r.exists() for r in ready) and time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            break  # one failed while setting up: communicate() shows why
        time.sleep(0.01)
    barrier.touch()  # both are set up: release them together
    outs = [p.communicate(timeout=300) for p in procs]
    return versions, [p.returncode for p in procs], outs


def resolve_in_fresh_process(settings: Any, ref: str) -> dict[str, Any]:
    """Resolve ``ref`` in a new interpreter with ``settings``' home and store; report the
    version it names and whether MLflow was imported on the way."""
    import json as _json
    import subprocess
    import sys

    code = (
        "import json, sys\n"
        "from regressops.config import Settings\n"
        "from regressops.registry.resolve import resolve_model\n"
        f"s = Settings(home={str(settings.home)!r}, tracking_uri={settings.tracking_uri!r})\n"
        f"r = resolve_model({ref!r}, settings=s)\n"
        "print(json.dumps({'version': r.version, 'path': str(r.path),"
        " 'mlflow': 'mlflow' in sys.modules}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return dict(_json.loads(done.stdout.strip().splitlines()[-1]))
