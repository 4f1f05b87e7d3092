"""Helpers for the serving tests: real uvicorn servers (and the bundles of ``helpers.bundles``).

Servers are real ``uvicorn`` processes on 127.0.0.1 with a free port, always stopped by the
fixture that started them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``regressops.serving.server.serve`` in a subprocess on 127.0.0.1.

    Parameters
    ----------
    model : Path or str
        The model reference to serve.
    home : Path
        ``REGRESSOPS_HOME`` of the server (its prediction log lands there by default).
    workers : int
        uvicorn workers.
    prediction_log : str, optional
        Log target passed to ``serve``.
    env : mapping, optional
        Extra environment variables (e.g. ``REGRESSOPS_API_KEYS``).
    """

    def __init__(
        self,
        model: Path | str,
        home: Path,
        *,
        workers: int = 1,
        prediction_log: str | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = home / f"server-{self.port}.log"
        home.mkdir(parents=True, exist_ok=True)
        code = (
            "import logging, sys\n"
            "logging.basicConfig(level=logging.INFO)\n"
            "from regressops.serving.server import serve\n"
            f"serve(model={str(model)!r}, port={self.port}, workers={workers}, "
            f"prediction_log={prediction_log!r})\n"
        )
        full_env = {**os.environ, "REGRESSOPS_HOME": str(home)}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # unless ``env`` names one
        full_env.update(env or {})
        full_env["REGRESSOPS_CONFIG"] = "none"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code], stdout=self._log, stderr=subprocess.STDOUT, env=full_env
        )

    def wait_ready(self, timeout: float = 30.0) -> ServerProcess:
        """Block until ``/readyz`` answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"server not ready in {timeout}s:\n{self.output()}")

    def output(self) -> str:
        """What the server printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_for_output(self, text: str, timeout: float = 60.0, *, times: int = 1) -> None:
        """Block until the server has printed ``text`` (e.g. uvicorn's "Shutting down") at least
        ``times`` times (e.g. "Application startup complete." once per worker)."""
        deadline = time.monotonic() + timeout
        while self.output().count(text) < times:
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise TimeoutError(f"the server never printed {text!r}:\n{self.output()}")
            time.sleep(0.01)

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the server process."""
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait, SIGKILL if needed; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._log.close()
        return int(self.proc.returncode)


def requests_then_sigterm(
    server: ServerProcess, *, n: int, rows: int, row: list[float]
) -> list[tuple[int, str]]:
    """Hold ``n`` ``/batch`` requests of ``rows`` rows in flight, SIGTERM the server, then let
    them finish; return ``(status, request_id)`` of every request.

    Each request is sent on its own connection with only half of its body, so the server has
    started all ``n`` (its in-flight gauge says so) and none can finish before the signal. The
    other halves go out once the graceful shutdown is under way.
    """
    import json
    import socket

    body = json.dumps({"data": [row] * rows}).encode()
    half = len(body) // 2
    socks: list[socket.socket] = []
    try:
        for i in range(n):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
            socks.append(sock)
            head = (
                "POST /batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nX-Request-ID: req-{i}\r\n"
                "Connection: close\r\n\r\n"
            ).encode()
            sock.sendall(head + body[:half])
        _wait_in_flight(server, n + 1)  # the /metrics request counts itself
        server.signal(signal.SIGTERM)
        server.wait_for_output("Shutting down")  # the graceful shutdown has begun, n in flight
        for sock in socks:
            sock.sendall(body[half:])
        results = [(_status_of(sock), f"req-{i}") for i, sock in enumerate(socks)]
    finally:
        for sock in socks:
            sock.close()
    server.proc.wait(30)
    return results


def _wait_in_flight(server: ServerProcess, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    seen = -1.0
    while time.monotonic() < deadline:
        text = httpx.get(f"{server.url}/metrics", timeout=5).text
        for line in text.splitlines():
            if line.startswith("regressops_requests_in_flight"):
                seen = float(line.split()[-1])
        if seen >= count:
            return
        time.sleep(0.05)
    raise TimeoutError(f"the server had {seen} requests in flight, expected {count}")


def _status_of(sock: socket.socket) -> int:
    """The HTTP status of the response on ``sock`` (read to the end); -1 if none came."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except OSError:
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return -1
    return int(data.split(b" ", 2)[1])
