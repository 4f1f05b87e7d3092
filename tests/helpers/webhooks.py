"""Real webhook receivers for the tests (``webhook_receiver.py`` in its own process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

RECEIVER = Path(__file__).with_name("webhook_receiver.py")


class Receiver:
    """A receiver process on 127.0.0.1 verifying with ``secret`` (a ``whsec_`` string).

    Parameters
    ----------
    tmp : Path
        Folder for its record of requests.
    secret : str
        The secret it verifies with.
    fail, fail_status, hang : int
        Answer the first ``fail`` requests with ``fail_status``; hold the first ``hang`` open.
    """

    def __init__(
        self, tmp: Path, secret: str, *, fail: int = 0, fail_status: int = 503, hang: int = 0
    ) -> None:
        tmp.mkdir(parents=True, exist_ok=True)
        self.out = tmp / f"received-{os.urandom(4).hex()}.jsonl"
        env = {**os.environ, "RECEIVER_SECRET": secret}
        cmd = [sys.executable, str(RECEIVER), "--secret-env", "RECEIVER_SECRET"]
        cmd += ["--out", str(self.out), "--fail", str(fail), "--fail-status", str(fail_status)]
        cmd += ["--hang", str(hang)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the receiver listens
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"receiver did not start: {line!r}")
        self.port = int(line)
        self.url = f"http://127.0.0.1:{self.port}/hooks/regressops"

    def requests(self) -> list[dict[str, Any]]:
        """Every request received so far, in arrival order."""
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def stop(self) -> None:
        """Terminate the process and wait for it."""
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Receiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
