"""``regressops serve``: a wrong model fails before the server starts, with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def _serve(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    exe = Path(sys.executable).with_name("regressops")
    return subprocess.run(
        [str(exe), "serve", *args], capture_output=True, text=True, timeout=60, cwd=cwd
    )


def test_missing_bundle_is_one_line_and_exit_code_4(tmp_path: Path) -> None:
    out = _serve("--model", str(tmp_path / "nowhere"), "--port", "0", cwd=tmp_path)
    assert out.returncode == 4
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "no model bundle at" in lines[0] and "Traceback" not in out.stderr


def test_registry_uri_without_registry_support_is_refused_clearly(tmp_path: Path) -> None:
    out = _serve("--model", "nosuchscheme:/x@champion", cwd=tmp_path)
    assert out.returncode == 2
    assert "not supported" in out.stderr and "Traceback" not in out.stderr


def test_serve_says_when_its_model_is_loaded(tmp_path: Path) -> None:
    import os
    import signal

    from helpers.bundles import make_bundle
    from helpers.servers import free_port

    make_bundle(tmp_path / "model")
    port = free_port()
    exe = Path(sys.executable).with_name("regressops")
    env = {**os.environ, "REGRESSOPS_HOME": str(tmp_path / "home"), "REGRESSOPS_CONFIG": "none"}
    proc = subprocess.Popen(
        [str(exe), "serve", "--model", str(tmp_path / "model"), "--port", str(port)],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()  # blocks until the line comes (or the process ends)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert first.startswith("model diabetes version 1 loaded in "), first
    assert first.rstrip().endswith(f"s; starting 1 worker(s) on http://127.0.0.1:{port}"), first
