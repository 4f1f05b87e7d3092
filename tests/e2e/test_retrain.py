"""`regressops retrain` as an operator runs it, on the embedded defaults: quickstart's champion,
a real server serving ``models:/diabetes@champion`` and a real webhook receiver verifying every
event with the ``standardwebhooks`` reference library.

The tests share one quickstart home (module scope, run in file order): no new data changes
nothing; shifted rows in the source table make a new champion that the server answers with; a
gate that cannot pass keeps the champion; an unreachable source fails with its exit code.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers.servers import ServerProcess, free_port
from helpers.webhooks import Receiver
from regressops.alerts import generate_secret

REGRESSOPS = Path(sys.executable).parent / "regressops"
ADMIN_KEY = "admin-key-for-the-loop-test"
SHIFTED = ("age", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6")


class Loop:
    """One quickstart home with a server and a receiver around it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "home"
        self.secret = generate_secret()
        self.receiver = Receiver(root / "hooks", self.secret)
        self.server: ServerProcess | None = None

    def config(self, **extra: str) -> Path:
        assert self.server is not None
        lines = [
            "[[webhooks]]",
            f'url = "{self.receiver.url}"',
            'secret_env = "HOOK_SECRET"',
            "allow_private = true",
            "backoff = 0.01",
            "[retrain]",
            f'servers = ["{self.server.url}"]',
            'admin_key_env = "LOOP_ADMIN_KEY"',
            "lock_timeout = 0",
        ]
        path = self.root / "regressops.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def regressops(self, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("REGRESSOPS_")}
        base |= {
            "REGRESSOPS_HOME": str(self.home),
            "REGRESSOPS_CONFIG": str(self.config()),
            "HOOK_SECRET": self.secret,
            "LOOP_ADMIN_KEY": ADMIN_KEY,
            "COLUMNS": "200",
            **(env or {}),
        }
        done = subprocess.run(
            [str(REGRESSOPS), *args], env=base, capture_output=True, text=True, timeout=300,
            check=False,
        )  # fmt: skip
        return done.returncode, done.stdout, done.stderr

    def events(self) -> list[dict[str, Any]]:
        return [r for r in self.receiver.requests() if r.get("verified")]

    def champion(self) -> str:
        assert self.server is not None
        return str(httpx.get(f"{self.server.url}/model-check", timeout=10).json()["version"])

    def add_shifted_rows(self, first_id: int) -> int:
        """Insert every source row again with new ids and each feature moved by +0.05."""
        con = sqlite3.connect(self.home / "demo.db")
        try:
            cols = [r[1] for r in con.execute("PRAGMA table_info(diabetes)")]
            rows = con.execute("SELECT * FROM diabetes WHERE id < 100000").fetchall()
            new = []
            for k, row in enumerate(rows):
                values = list(row)
                values[cols.index("id")] = first_id + k
                for c in SHIFTED:
                    values[cols.index(c)] += 0.05
                new.append(values)
            con.executemany(f"INSERT INTO diabetes VALUES ({','.join('?' * len(cols))})", new)
            con.commit()
        finally:
            con.close()
        return len(new)


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    root = tmp_path_factory.mktemp("loop")
    state = Loop(root)
    try:
        done = subprocess.run(
            [str(REGRESSOPS), "quickstart"],
            env={**os.environ, "REGRESSOPS_HOME": str(state.home),
                 "REGRESSOPS_CONFIG": "none"},
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        state.server = ServerProcess(
            "models:/diabetes@champion", state.home, env={"REGRESSOPS_ADMIN_KEYS": ADMIN_KEY}
        ).wait_ready(timeout=120)
        yield state
    finally:
        if state.server is not None:
            state.server.stop()
        state.receiver.stop()


def _record(stdout: str) -> dict[str, Any]:
    return dict(json.loads(stdout))


def test_no_new_data_changes_nothing(loop: Loop) -> None:
    before = loop.champion()
    code, out, err = loop.regressops("retrain", "--dataset", "diabetes", "--if", "drift", "--json")
    assert code == 0, err
    record = _record(out)
    assert record["status"] == "not_triggered"
    assert "no rows the lake lacks" in record["reason"]
    assert loop.champion() == before
    assert loop.events() == []
    assert Path(record["record_path"]).is_file()


def test_drift_in_the_source_makes_a_new_champion_the_server_answers_with(loop: Loop) -> None:
    before = loop.champion()
    loop.add_shifted_rows(first_id=100000)
    code, out, err = loop.regressops(
        "retrain", "--dataset", "diabetes", "--if", "drift", "--dry-run", "--json"
    )
    assert code == 0, err
    assert _record(out)["status"] == "dry_run"
    assert loop.champion() == before and loop.events() == []

    code, out, err = loop.regressops("retrain", "--dataset", "diabetes", "--if", "drift", "--json")
    assert code == 0, err
    record = _record(out)
    assert record["status"] == "promoted", record
    new = record["versions"]["champion_after"]
    assert new != before and record["versions"]["champion_before"] == before
    assert record["reloads"] == [{"url": loop.server.url, "status": 200, "version": new}]  # type: ignore[union-attr]
    assert loop.champion() == new  # the running server answers with the new version
    types = [e["payload"]["type"] for e in loop.events()]
    assert "drift.detected" in types and "model.promoted" in types
    assert types[-1] == "retrain.finished"
    promoted = next(e["payload"] for e in loop.events() if e["payload"]["type"] == "model.promoted")
    assert promoted["data"]["versions"]["champion_after"] == new
    drift = next(e["payload"] for e in loop.events() if e["payload"]["type"] == "drift.detected")
    assert set(drift["data"]["drift"]["drifted_features"]) & set(SHIFTED)
    assert record["mlflow_run_id"] and record["timings"]["train_gate_register"] > 0
    # the same source again: the new rows are in the lake now, so nothing changes
    code, out, err = loop.regressops("retrain", "--dataset", "diabetes", "--json")
    assert code == 0, err
    assert _record(out)["status"] == "not_triggered" and loop.champion() == new


def test_a_gate_failure_keeps_the_champion_and_sends_gate_failed(loop: Loop) -> None:
    before = loop.champion()
    seen = len(loop.events())
    code, out, err = loop.regressops(
        "retrain", "--dataset", "diabetes", "--if", "always", "--json",
        env={"REGRESSOPS_GATES__MIN_IMPROVEMENT": "0.9"},
    )  # fmt: skip
    assert code == 7, err
    assert "gates failed" in err and err.count("\n") == 1
    record = _record(out)
    assert record["status"] == "kept_champion"
    assert record["versions"]["champion_after"] == before
    assert loop.champion() == before
    types = [e["payload"]["type"] for e in loop.events()[seen:]]
    assert "gate.failed" in types and "model.promoted" not in types


def test_an_unreachable_source_fails_with_exit_5_and_retrain_failed(loop: Loop) -> None:
    before = loop.champion()
    seen = len(loop.events())
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/test"
    code, out, err = loop.regressops(
        "retrain", "--dataset", "diabetes", "--if", "always",
        env={"REGRESSOPS_DATA__SOURCE_URL": closed, "REGRESSOPS_DATA__RETRIES": "0"},
    )  # fmt: skip
    assert code == 5, (out, err)
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err
    assert loop.champion() == before
    failed = [
        e["payload"] for e in loop.events()[seen:] if e["payload"]["type"] == "retrain.failed"
    ]
    assert failed and failed[0]["data"]["error"]["reason"] == "source_unreachable"
