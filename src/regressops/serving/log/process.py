"""A writer process for the prediction log: formatting and disk writes off the server's GIL.

The server's writer thread hands each interval's batches to :class:`ProcessSink`, which sends
them down a pipe to a child process (``python -m regressops.serving.log.process``) as raw
float64 buffers plus a small JSON header — no formatting, and ``writev`` releases the GIL while
the kernel copies. The child rebuilds the batches, writes them with the real sink
(:class:`~regressops.serving.log.sinks.JsonLinesSink` or
:class:`~regressops.serving.log.sinks.SqlSink`) and acknowledges how many it wrote; only
then does the server count the rows as written. So a child that dies or fails leaves the rows in
the server's queue, and the next write starts a new child and sends them again.

The child ignores SIGINT, SIGTERM and SIGHUP and runs in its own session: a signal to the
server's process group cannot stop it before the server has drained its queue. It exits when
its input closes (the server shutting down, or dying), after writing what it received.

Wire format, per write call: ``<u64 header length><header JSON><buffers>``; the header lists
the batches (metadata, shape) and the buffers follow in order: for a numeric matrix its
``n x d`` float64 values, then the ``n`` float64 predictions. Columns of a categorical model
travel inside the header as JSON lists. The child answers one JSON line per call:
``{"done": batches_written, "rows": rows_written, "error": null | "..."}``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import struct
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson

from regressops.errors import ConfigError
from regressops.serving.log.batch import LogBatch
from regressops.serving.log.segments import Rotation
from regressops.serving.log.sinks import (
    PartialWriteError,
    PredictionSink,
    is_off,
    is_sql_url,
    open_thread_sink,
    writev_all,
)

logger = logging.getLogger(__name__)

_LEN = struct.Struct("<Q")
_TARGET_ENV = "REGRESSOPS_LOG_WRITER_TARGET"
_HOME_ENV = "REGRESSOPS_LOG_WRITER_HOME"
_ROTATION_ENV = "REGRESSOPS_LOG_WRITER_ROTATION"
START_SECONDS = 60.0


class ProcessSink:
    """A :class:`~regressops.serving.log.sinks.PredictionSink` run by a child process.

    Parameters
    ----------
    target : str or None
        What ``--prediction-log`` names (``None``: JSON lines under ``home``).
    home : Path
        The server's home folder.
    rotation : Rotation, optional
        Segment rotation and retention of a JSON-lines log.

    Raises
    ------
    ConfigError
        The child could not open the sink (its message says why).
    """

    def __init__(self, target: str | None, home: Path, rotation: Rotation | None = None) -> None:
        self.target = target
        self.home = Path(home)
        self.rotation = rotation
        self._proc: subprocess.Popen[bytes] | None = None
        self._start()

    def _start(self) -> None:
        env = {**os.environ, _HOME_ENV: str(self.home)}
        env[_TARGET_ENV] = "" if self.target is None else self.target  # env, not argv: secrets
        env[_ROTATION_ENV] = self.rotation.to_env() if self.rotation is not None else ""
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "regressops.serving.log.process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            start_new_session=True,
        )
        assert proc.stdout is not None
        answer = _read_answer(proc.stdout)
        if answer is None or answer.get("ready") is not True:
            proc.kill()
            proc.wait(10)
            error = (answer or {}).get("error") or "the prediction log writer process did not start"
            raise ConfigError(str(error), reason="prediction_log")
        self._proc = proc

    def write(self, batches: list[LogBatch]) -> int:
        """Send ``batches`` to the child and return the rows it wrote.

        Raises
        ------
        PartialWriteError
            The child (or its sink) failed; ``remaining`` lists the batches not written.
        """
        if self._proc is None or self._proc.poll() is not None:
            logger.warning("prediction log writer process is gone; starting a new one")
            self._start()
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        header, buffers = encode(batches)
        try:
            writev_all(proc.stdin.fileno(), [_LEN.pack(len(header)), header, *buffers])
        except OSError as exc:
            self._abandon()
            raise PartialWriteError(batches, exc) from exc
        answer = _read_answer(proc.stdout)
        if answer is None:
            self._abandon()
            raise PartialWriteError(batches, OSError("the prediction log writer process exited"))
        if answer.get("error"):
            done = int(answer["done"])
            remaining = batches[done:]
            resume = int(answer.get("resume_row") or 0)
            if remaining and resume:  # the child wrote the first lines of that request
                remaining[0] = replace(remaining[0], first_row=resume)
            raise PartialWriteError(remaining, OSError(str(answer["error"])))
        return int(answer["rows"])

    def close(self) -> None:
        """Close the child's input and wait for it to finish writing and exit."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        assert proc.stdin is not None
        with contextlib.suppress(OSError):
            proc.stdin.close()
        try:
            code = proc.wait(START_SECONDS)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(10)
        if code != 0:
            logger.error("prediction log writer process exited with code %s", code)

    def _abandon(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)


class HybridSink:
    """Small requests formatted and written in the server's writer thread, large ones by a child.

    A single-record line costs about as much to format (3 us) as to encode for the child, and a
    child busy with thousands of tiny lines competes with the server for the CPU; a 1,000-row
    request costs 0.2 ms of formatting under the server's GIL and 0.6 ms of kernel time to
    write, which the child takes off the server. Both append to the same file (``O_APPEND``,
    one ``writev`` per flush each: lines never interleave).

    Parameters
    ----------
    target : str or None
        A JSON-lines path (``None``: ``<home>/predictions.jsonl``).
    home : Path
        The server's home folder.
    min_rows : int, default=64
        Requests of at least this many rows go to the child.
    """

    def __init__(
        self,
        target: str | None,
        home: Path,
        rotation: Rotation | None = None,
        *,
        min_rows: int = 64,
    ) -> None:
        small = open_thread_sink(target, home, rotation)
        assert small is not None
        self.small: PredictionSink = small
        self.min_rows = min_rows
        try:
            self.large = ProcessSink(target, home, rotation)
        except (ConfigError, OSError):
            self.small.close()
            raise

    def write(self, batches: list[LogBatch]) -> int:
        """Write the large batches through the child and the small ones here.

        Raises
        ------
        PartialWriteError
            Lists every batch either path did not write.
        """
        large = [b for b in batches if len(b) >= self.min_rows]
        small = [b for b in batches if len(b) < self.min_rows] if large else batches
        remaining: list[LogBatch] = []
        cause: BaseException | None = None
        rows = 0
        for sink, part in ((self.small, small), (self.large, large)):
            if not part:
                continue
            try:
                rows += sink.write(part)
            except PartialWriteError as exc:
                remaining += exc.remaining
                rows += sum(len(b) for b in part) - sum(len(b) for b in exc.remaining)
                cause = exc.cause
            except Exception as exc:  # a failing sink keeps every batch it was given
                remaining += part
                cause = exc
        if cause is not None:
            raise PartialWriteError(remaining, cause)
        return rows

    def close(self) -> None:
        """Close both paths."""
        try:
            self.large.close()
        finally:
            self.small.close()


def open_server_sink(
    target: str | None, home: Path, writer: str = "process", rotation: Rotation | None = None
) -> PredictionSink | None:
    """The sink a server started with ``--prediction-log target`` writes through.

    ``None`` when the log is off; a SQL URL, or ``writer="thread"``, writes from the server's
    writer thread; otherwise a :class:`HybridSink` (falling back to the thread, with a warning,
    where no process can be started).

    Raises
    ------
    ConfigError
        The log cannot be opened (the message says why).
    """
    if is_off(target):
        return None
    if writer == "process" and not is_sql_url(target):
        try:
            return HybridSink(target, home, rotation)
        except OSError as exc:  # no process can be started here
            logger.warning("no prediction log writer process (%s); using a thread", exc)
    return open_thread_sink(target, home, rotation)


def _read_answer(stream: IO[bytes]) -> dict[str, Any] | None:
    line = stream.readline()
    if not line:
        return None
    answer: dict[str, Any] = orjson.loads(line)
    return answer


# ---------------------------------------------------------------------- the wire format
def encode(batches: list[LogBatch]) -> tuple[bytes, list[Any]]:
    """The header and the buffers that carry ``batches`` (no copy of a float64 matrix)."""
    meta: list[dict[str, Any]] = []
    buffers: list[Any] = []
    for b in batches:
        item: dict[str, Any] = {
            "ts": b.ts,
            "request_id": b.request_id,
            "endpoint": b.endpoint,
            "model_name": b.model_name,
            "model_version": b.model_version,
            "names": b.names,
            "latency_ms": b.latency_ms,
            "rows": int(b.predictions.shape[0]),
            "first_row": b.first_row,
        }
        if b.request_ids is not None:
            item["request_ids"], item["request_rows"] = b.request_ids, b.request_rows
        if isinstance(b.features, np.ndarray):
            matrix = np.ascontiguousarray(b.features, dtype=np.float64)
            item["width"] = int(matrix.shape[1]) if matrix.ndim == 2 else 0
            buffers.append(matrix.data.cast("B"))
        else:
            item["columns"] = {k: _plain(b.features[k]) for k in b.names}
        buffers.append(np.ascontiguousarray(b.predictions, dtype=np.float64).data.cast("B"))
        meta.append(item)
    return orjson.dumps(meta), buffers


def decode(meta: list[dict[str, Any]], payload: memoryview) -> list[LogBatch]:
    """The batches :func:`encode` sent (``meta``: its header, decoded)."""
    batches = []
    offset = 0
    for item in meta:
        n = int(item["rows"])
        features: np.ndarray | dict[str, Any]
        if "columns" in item:
            features = item["columns"]
        else:
            width = int(item["width"])
            features = np.frombuffer(payload, np.float64, n * width, offset).reshape(n, width)
            offset += n * width * 8
        preds = np.frombuffer(payload, np.float64, n, offset)
        offset += n * 8
        batches.append(
            LogBatch(
                item["ts"],
                item["request_id"],
                item["endpoint"],
                item["model_name"],
                item["model_version"],
                item["names"],
                features,
                preds,
                item["latency_ms"],
                int(item.get("first_row", 0)),
                item.get("request_ids"),
                item.get("request_rows"),
            )
        )
    return batches


def payload_size(meta: list[dict[str, Any]]) -> int:
    """Bytes of buffers that follow a header (``meta``: the header, decoded)."""
    total = 0
    for item in meta:
        n = int(item["rows"])
        total += n * 8 * (1 + (0 if "columns" in item else int(item["width"])))
    return total


def _plain(values: Any) -> list[Any]:
    return values.tolist() if isinstance(values, np.ndarray) else list(values)


# ---------------------------------------------------------------------- the child
def _read_exact(stream: IO[bytes], size: int) -> bytes | None:
    data = stream.read(size)
    if data is None or len(data) < size:
        return None
    return data


def main() -> int:
    """Run the writer: open the sink, then write every batch the server sends until EOF."""
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    with contextlib.suppress(OSError):  # background work: the server's requests come first
        os.nice(10)
    logging.basicConfig(level=logging.WARNING, format="prediction log writer: %(message)s")
    target = os.environ.get(_TARGET_ENV) or None
    home = Path(os.environ.get(_HOME_ENV, "."))
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    try:
        rotation = Rotation.from_env(os.environ.get(_ROTATION_ENV))
        sink: PredictionSink | None = open_thread_sink(target, home, rotation)
    except ConfigError as exc:
        stdout.write(orjson.dumps({"ready": False, "error": exc.message}) + b"\n")
        return 2
    if sink is None:
        stdout.write(b'{"ready":false,"error":"the prediction log is off"}\n')
        return 2
    stdout.write(b'{"ready":true}\n')
    stdout.flush()
    try:
        while True:
            size = _read_exact(stdin, _LEN.size)
            if size is None:
                return 0
            header = _read_exact(stdin, _LEN.unpack(size)[0])
            if header is None:
                return 0
            meta = orjson.loads(header)
            payload = _read_exact(stdin, payload_size(meta))
            if payload is None:
                return 0
            batches = decode(meta, memoryview(payload))
            try:
                rows = sink.write(batches)
                answer: dict[str, Any] = {"done": len(batches), "rows": rows, "error": None}
            except PartialWriteError as exc:
                done = len(batches) - len(exc.remaining)
                resume = exc.remaining[0].first_row if exc.remaining else 0
                answer = {"done": done, "resume_row": resume, "rows": 0, "error": str(exc.cause)}
            except Exception as exc:  # the sink is failing: the server keeps the rows
                answer = {"done": 0, "rows": 0, "error": f"{exc.__class__.__name__}: {exc}"}
            stdout.write(orjson.dumps(answer) + b"\n")
            stdout.flush()
    finally:
        sink.close()


if __name__ == "__main__":
    sys.exit(main())
