"""SIGTERM loses no prediction: in-flight requests finish and every row reaches the log."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from helpers.bundles import make_bundle
from helpers.servers import ServerProcess, requests_then_sigterm
from regressops.serving.log.reader import iter_log_rows

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROW = [0.038, 0.050, 0.061, 0.021, -0.044, -0.034, -0.043, -0.002, 0.019, -0.017]
N, ROWS = 24, 400  # concurrent requests, rows in each


def _check(results: list[tuple[int, str]], logged: Counter[str]) -> None:
    # All N requests were in flight when SIGTERM arrived: every one is answered 200 and the log
    # holds exactly N x ROWS rows, ROWS for each request id.
    assert Counter(status for status, _ in results) == {200: N}, results
    assert logged == {rid: ROWS for _, rid in results}
    assert sum(logged.values()) == N * ROWS


def test_sigterm_flushes_every_row_to_json_lines(tmp_path: Path) -> None:
    make_bundle(tmp_path / "model")
    server = ServerProcess(tmp_path / "model", tmp_path / "home").wait_ready()
    try:
        results = requests_then_sigterm(server, n=N, rows=ROWS, row=ROW)
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM), server.output()  # uvicorn re-raises the signal
    rows = iter_log_rows(None, tmp_path / "home")
    _check(results, Counter(r["request_id"] for r in rows))
    assert "prediction log flushed" in server.output()


@pytest.fixture
def pg_schema() -> Iterator[str]:
    engine = sa.create_engine(PG_URL)
    try:
        with engine.connect():
            pass
    except sa.exc.OperationalError:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip("PostgreSQL at 127.0.0.1:5432 is not reachable")
    schema = f"regressops_serve_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield schema
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.mark.postgres
def test_sigterm_flushes_every_row_to_postgresql(tmp_path: Path, pg_schema: str) -> None:
    make_bundle(tmp_path / "model")
    url = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    server = ServerProcess(tmp_path / "model", tmp_path / "home", prediction_log=url).wait_ready()
    try:
        results = requests_then_sigterm(server, n=N, rows=ROWS, row=ROW)
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM), server.output()  # uvicorn re-raises the signal
    engine = sa.create_engine(PG_URL)
    with engine.connect() as conn:
        counts = conn.execute(
            sa.text(
                f'SELECT request_id, count(*) FROM "{pg_schema}".prediction_log GROUP BY request_id'
            )
        ).all()
        columns = "endpoint, model_name, features, prediction"
        query = f'SELECT {columns} FROM "{pg_schema}".prediction_log LIMIT 1'
        one = conn.execute(sa.text(query)).one()
    engine.dispose()
    _check(results, Counter({rid: n for rid, n in counts}))
    assert one.endpoint == "/batch" and one.model_name == "diabetes"
    assert set(one.features) == {"age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"}


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    todo = [pid]
    while todo:
        parent = todo.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            with contextlib.suppress(OSError):
                children = {int(c) for c in (task / "children").read_text().split()}
                todo.extend(children - found)
                found |= children
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _until(predicate: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_sigkill_of_the_supervisor_takes_the_workers_down_with_their_log(tmp_path: Path) -> None:
    make_bundle(tmp_path / "model")
    home = tmp_path / "home"
    server = ServerProcess(tmp_path / "model", home, workers=2).wait_ready()
    server.wait_for_output("Application startup complete.", times=2)  # both workers
    children: set[int] = set()
    try:
        ids = [f"kill-{i}" for i in range(30)]
        for rid in ids:  # fresh connections: both workers log rows
            r = httpx.post(f"{server.url}/batch", json={"data": [ROW] * 5},
                           headers={"X-Request-ID": rid})  # fmt: skip
            assert r.status_code == 200, r.text
        children = _descendants(server.proc.pid)
        assert len(children) >= 2, children  # the workers (and their log writers)
        server.proc.kill()  # SIGKILL: no handler runs in the supervisor
        server.proc.wait(10)
        assert _until(lambda: not any(_alive(p) for p in children), 20), (
            [p for p in children if _alive(p)],
            server.output(),
        )
        assert _port_free(server.port)
    finally:
        server.stop()
        for pid in children:  # never leave an orphan behind, even when the test fails
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
    logged = Counter(r["request_id"] for r in iter_log_rows(None, home))
    assert logged == {rid: 5 for rid in ids}, server.output()


@pytest.mark.postgres
def test_feedback_labels_reach_postgresql_beside_the_log(tmp_path: Path, pg_schema: str) -> None:
    import httpx

    from regressops.serving.log.labels import read_label_columns

    make_bundle(tmp_path / "model")
    url = f"{PG_URL}?options=-csearch_path%3D{pg_schema}"
    server = ServerProcess(tmp_path / "model", tmp_path / "home", prediction_log=url).wait_ready()
    try:
        answer = httpx.post(f"{server.url}/stream", json={"data": ROW}, timeout=30)
        rid = answer.headers["x-request-id"]
        r = httpx.post(
            f"{server.url}/feedback", json=[{"request_id": rid, "row": 0, "label": 140.0}]
        )
        assert r.status_code == 200 and r.json() == {"accepted": 1}, r.text
        bad = httpx.post(f"{server.url}/feedback", json=[{"request_id": rid, "row": "x"}])
        assert bad.status_code == 422 and bad.json()["reason"] == "invalid_request"
    finally:
        server.stop()
    labels = read_label_columns(url)
    got = zip(
        labels.request_ids.tolist(), labels.rows.tolist(), labels.labels.tolist(), strict=True
    )
    assert list(got) == [(rid, 0, 140.0)]
