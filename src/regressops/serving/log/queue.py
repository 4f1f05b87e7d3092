"""The prediction log: every predicted row, written off the event loop, nothing lost on shutdown.

A request hands one :class:`LogBatch` (references to its arrays, no copying or formatting) to
:meth:`PredictionLogger.log`, which appends it to a queue without waking any thread. A writer
thread wakes every ``flush_interval`` seconds, formats what has queued and hands it to the sink.
:meth:`PredictionLogger.close`, called when the app shuts down (uvicorn's graceful SIGTERM
handling runs it after the last in-flight request), drains the queue before it returns. When
the sink falls behind by more than ``max_pending_rows``, :meth:`PredictionLogger.wait_for_room`
holds the requests that add more (backpressure instead of unbounded memory or lost rows).

The pieces: :mod:`~regressops.serving.log.batch` (a request's rows and their JSON lines),
:mod:`~regressops.serving.log.sinks` (the JSON-lines file and the SQL table),
:mod:`~regressops.serving.log.process` (the writer process for large requests) and
:mod:`~regressops.serving.log.reader` (one record per row back from either sink).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import Any

from regressops.serving.log.batch import LogBatch
from regressops.serving.log.sinks import PartialWriteError, PredictionSink

logger = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
MAX_PENDING_ROWS = 1_000_000  # rows queued beyond this hold new requests until the sink catches up
_RELEASE_STEP = 512  # written batches freed between GIL releases


class PredictionLogger:
    """Buffer :class:`LogBatch` objects and write them from a background thread.

    Parameters
    ----------
    sink : PredictionSink
        Where rows go.
    flush_interval : float, default=0.25
        Seconds between writes while requests keep coming.
    max_pending_rows : int, default=1,000,000
        Queued rows beyond which :attr:`backlogged` turns true.
    """

    def __init__(
        self,
        sink: PredictionSink,
        *,
        flush_interval: float = 0.25,
        max_pending_rows: int = MAX_PENDING_ROWS,
    ) -> None:
        self.sink = sink
        self.flush_interval = flush_interval
        self.max_pending_rows = max_pending_rows
        self.rows_written = 0
        self.rows_dropped = 0
        self._dropping = False  # a drop episode was announced and the sink has not recovered
        self._queued_rows = 0
        self._count_lock = threading.Lock()
        self._queue: deque[Any] = deque()
        self._wake = threading.Event()
        self._failed: list[LogBatch] = []
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._closed = False

    @property
    def pending_rows(self) -> int:
        """Rows logged but not yet written."""
        return self._queued_rows - self.rows_written

    @property
    def backlogged(self) -> bool:
        """True while more than ``max_pending_rows`` rows wait for the sink."""
        return self._queued_rows - self.rows_written > self.max_pending_rows

    @property
    def failing(self) -> bool:
        """True while the sink refuses writes (rows wait for a retry)."""
        return bool(self._failed)

    def drop(self, rows: int) -> None:
        """Count ``rows`` that were answered but not logged (the sink is unwritable and the
        operator chose to serve on: ``serve.log_when_unwritable = "drop"``)."""
        with self._count_lock:
            self.rows_dropped += rows
        if rows and not self._dropping:  # once per episode, not once per request
            self._dropping = True
            logger.warning(
                "prediction log unwritable: answered rows are not logged from now on until the "
                "sink recovers (counted in regressops_prediction_log_dropped_rows)"
            )

    def start(self) -> None:
        """Start the writer thread."""
        self._thread.start()

    def log(self, batch: LogBatch) -> None:
        """Queue one request's rows (O(1), safe to call on the event loop; wakes no thread)."""
        with self._count_lock:
            self._queued_rows += len(batch)
        self._queue.append(batch)

    async def wait_for_room(self, timeout: float = 30.0) -> bool:
        """Wait until the backlog is under ``max_pending_rows``; False on timeout or failing sink.

        The writer is woken at once; a sink that is failing will not catch up, so this returns
        False straight away rather than holding the request.
        """
        deadline = time.monotonic() + timeout
        self._wake.set()
        while self.backlogged:
            if self._failed or not self._thread.is_alive() or time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    def flush(self, timeout: float = 30.0) -> bool:
        """Block until every batch queued so far is handed to the sink; False if not all written."""
        if self._thread.is_alive():
            done = threading.Event()
            self._queue.append(done)
            self._wake.set()
            if not done.wait(timeout):
                return False
        return not self._failed

    def close(self, timeout: float = 60.0) -> None:
        """Write everything still queued, stop the thread and close the sink."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():
            self._queue.append(None)
            self._wake.set()
            self._thread.join(timeout)
        if self._failed:
            logger.error(
                "prediction log: %d rows could not be written to the sink",
                sum(len(b) for b in self._failed),
            )
        self.sink.close()

    def _run(self) -> None:
        stop = False
        while not stop:
            # Requests never wake this thread: it sleeps a whole interval (or until a flush,
            # close or backlog asks), then takes everything queued at once.
            self._wake.wait(RETRY_SECONDS if self._failed else self.flush_interval)
            self._wake.clear()
            batches: list[LogBatch] = []
            waiters: list[threading.Event] = []
            queue = self._queue
            while queue:
                item = queue.popleft()
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    batches.append(item)
            self._write(batches)
            if stop:
                for delay in (0.1, 0.5, 2.0):  # last chances before giving up on the sink
                    if not self._failed:
                        break
                    time.sleep(delay)
                    self._write([])
            for w in waiters:
                w.set()

    def _write(self, batches: list[LogBatch]) -> None:
        """Hand ``batches`` (after any earlier failed ones) to the sink; empties the list."""
        batches[:0] = self._failed
        if not batches:
            return
        try:
            n = self.sink.write(batches)
        except PartialWriteError as exc:
            self._failed = list(exc.remaining)
            self.rows_written += sum(len(b) for b in batches) - sum(len(b) for b in self._failed)
            logger.warning(
                "prediction log write failed (%s); will retry", exc.cause.__class__.__name__
            )
            return
        except Exception as exc:
            self._failed = batches
            logger.warning("prediction log write failed (%s); will retry", exc.__class__.__name__)
            return
        self._failed = []
        if self._dropping:
            self._dropping = False
            logger.warning("prediction log writable again; %d rows were dropped", self.rows_dropped)
        self.rows_written += n
        # Freeing thousands of requests' arrays at once would hold the GIL for milliseconds.
        while batches:
            del batches[-_RELEASE_STEP:]
            time.sleep(0)
