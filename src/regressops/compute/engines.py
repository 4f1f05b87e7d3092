"""Engines: where partition tasks run — in this process (numpy) or on a Dask cluster.

Partitioned algorithms (:mod:`regressops.compute.linear`, :mod:`~regressops.compute.scoring`,
:mod:`~regressops.compute.profile`) are written once against :class:`Engine`'s three verbs:

- :meth:`Engine.map_reduce` — run a function on every partition and combine the results
  pairwise in a tree (on the workers, so only the final value reaches the client);
- :meth:`Engine.map` — run a function on every partition, return the (small) results in order;
- :meth:`Engine.stream` — run a function on every partition, yield the results in partition
  order while a bounded number of later partitions are being computed.

:func:`open_engine` builds the engine of a :class:`ComputeRequest`: ``numpy`` runs the tasks
one after the other in this process (the reference, and out-of-core on one machine); ``dask``
connects to ``tcp://HOST:PORT`` or starts a local cluster of worker processes (``local:N``).
Failures become one-line :class:`~regressops.errors.ComputeError` s: an unreachable scheduler,
a worker that died (Dask's ``KilledWorker``), a lost connection; errors regressops raises on
purpose inside a task (a partition with another schema) arrive as themselves.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from regressops.config import Settings
from regressops.errors import ComputeError, ConfigError, RegressopsError

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")
FAN_IN = 8
DEFAULT_LOCAL_WORKERS = 2


@dataclass(frozen=True)
class ComputeRequest:
    """Which engine runs partitioned work, and how (built from ``[compute]`` and options).

    Attributes
    ----------
    engine : {"numpy", "dask"}
        In this process, or on a Dask cluster.
    scheduler : str
        ``local``, ``local:N`` or ``tcp://HOST:PORT`` (Dask only).
    partition_rows : int
        Rows per Parquet partition.
    worker_memory : str
        Memory limit per worker of a local cluster.
    connect_timeout : float
        Seconds to wait for a remote scheduler.
    storage_options : dict
        Object-storage options for ``s3://`` inputs.
    """

    engine: str = "numpy"
    scheduler: str = "local"
    partition_rows: int = 1_000_000
    worker_memory: str = "2GB"
    connect_timeout: float = 10.0
    storage_options: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_settings(
        cls, settings: Settings, *, engine: str | None = None, scheduler: str | None = None
    ) -> ComputeRequest:
        """The request of the ``[compute]`` settings (storage options from ``[data]``), with
        command-line overrides."""
        compute = settings.compute
        request = cls(
            engine=engine or compute.engine,
            scheduler=scheduler or compute.scheduler,
            partition_rows=compute.partition_rows,
            worker_memory=compute.worker_memory,
            connect_timeout=compute.connect_timeout,
            storage_options=tuple(sorted(settings.data.storage_options.items())),
        )
        request.check()
        return request

    def check(self) -> None:
        """Refuse an unknown engine or a malformed scheduler before any work starts."""
        if self.engine not in ("numpy", "dask"):
            raise ConfigError(
                f"unknown engine {self.engine!r}; expected numpy or dask", reason="unknown_engine"
            )
        if self.engine == "dask":
            local_workers(self.scheduler)  # raises on a malformed value

    @property
    def options(self) -> dict[str, str]:
        """Storage options as a dict."""
        return dict(self.storage_options)


def local_workers(scheduler: str) -> int | None:
    """Workers of a ``local[:N]`` scheduler, ``None`` for a remote address.

    Raises
    ------
    ConfigError
        Neither ``local``, ``local:N`` (N >= 1) nor ``tcp://``/``tls://HOST:PORT``.
    """
    if scheduler == "local":
        return DEFAULT_LOCAL_WORKERS
    if scheduler.startswith("local:"):
        count = scheduler.removeprefix("local:")
        if count.isdigit() and int(count) >= 1:
            return int(count)
    elif scheduler.startswith(("tcp://", "tls://")) and ":" in scheduler.split("://", 1)[1]:
        return None
    raise ConfigError(
        f"invalid scheduler {scheduler!r}; expected local, local:N or tcp://HOST:PORT",
        reason="invalid_scheduler",
    )


class Engine(Protocol):
    """What partitioned algorithms need from an engine."""

    name: str

    def map_reduce(
        self, fn: Callable[[Any], T], items: Sequence[Any], combine: Callable[[T, T], T]
    ) -> T:
        """``combine`` over ``fn(item)`` for every item, in a tree; items must be non-empty."""
        ...

    def map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        """``[fn(item) for item in items]``."""
        ...

    def stream(self, fn: Callable[[Any], T], items: Sequence[Any]) -> Iterator[T]:
        """``fn(item)`` for every item, yielded in order."""
        ...


def combine_all(combine: Callable[[T, T], T], *values: T) -> T:
    """Fold ``values`` left to right with ``combine`` (one node of a reduction tree)."""
    out = values[0]
    for value in values[1:]:
        out = combine(out, value)
    return out


class InProcessEngine:
    """Runs every task in this process, one after the other (numpy; the reference engine)."""

    name = "numpy"

    def map_reduce(
        self, fn: Callable[[Any], T], items: Sequence[Any], combine: Callable[[T, T], T]
    ) -> T:
        level = [fn(item) for item in items]
        while len(level) > 1:  # the same tree as on a cluster: same rounding, same result
            level = [combine_all(combine, *group) for group in _groups(level)]
        return level[0]

    def map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        return [fn(item) for item in items]

    def stream(self, fn: Callable[[Any], T], items: Sequence[Any]) -> Iterator[T]:
        return (fn(item) for item in items)


class DaskEngine:
    """Runs tasks on a Dask cluster through a ``distributed.Client``.

    Parameters
    ----------
    client : distributed.Client
        A connected client.
    prefetch : int, optional
        Partitions computed ahead of the consumer in :meth:`stream` (default: twice the
        worker threads).
    """

    name = "dask"

    def __init__(self, client: Any, *, prefetch: int | None = None) -> None:
        self.client = client
        threads = sum(client.nthreads().values()) or 1
        self.prefetch = prefetch or 2 * threads

    def map_reduce(
        self, fn: Callable[[Any], T], items: Sequence[Any], combine: Callable[[T, T], T]
    ) -> T:
        with _translated(items):
            level = self.client.map(fn, items, pure=False)
            while len(level) > 1:
                level = [
                    self.client.submit(combine_all, combine, *group, pure=False)
                    for group in _groups(level)
                ]
            result: T = level[0].result()
            return result

    def map(self, fn: Callable[[Any], T], items: Sequence[Any]) -> list[T]:
        with _translated(items):
            futures = self.client.map(fn, items, pure=False)
            return list(self.client.gather(futures))

    def stream(self, fn: Callable[[Any], T], items: Sequence[Any]) -> Iterator[T]:
        pending: deque[Any] = deque()
        todo = iter(items)
        with _translated(items):
            for item in itertools.islice(todo, self.prefetch):
                pending.append(self.client.submit(fn, item, pure=False))
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(todo, 1):
                    pending.append(self.client.submit(fn, item, pure=False))
                yield result


def _groups(level: list[Any]) -> list[list[Any]]:
    return [level[i : i + FAN_IN] for i in range(0, len(level), FAN_IN)]


@contextlib.contextmanager
def _translated(items: Sequence[Any]) -> Iterator[None]:
    """Turn a cluster's failures into one-line ComputeErrors; let ours through."""
    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    try:
        yield
    except RegressopsError:
        raise
    except KilledWorker as exc:
        task = exc.args[0] if exc.args else "a task"
        raise ComputeError(
            f"a Dask worker died while running {task} (out of memory, or killed); nothing "
            "was written",
            reason="worker_died",
        ) from None
    except (CommClosedError, OSError, TimeoutError) as exc:
        raise ComputeError(
            f"lost the Dask scheduler: {type(exc).__name__}: {_first_line(exc)}; nothing was "
            "written",
            reason="scheduler_lost",
        ) from None
    except Exception as exc:
        raise ComputeError(
            f"a partition task failed on a worker: {type(exc).__name__}: {_first_line(exc)}",
            reason="task_failed",
        ) from exc


#: Dask settings of the workers a ``local[:N]`` engine starts: no statistical profiler (a
#: sampling thread per worker that took ~15% of the workers' CPU in the exact fit; it feeds
#: the dashboard's profile page, which a one-command local cluster does not show).
LOCAL_CLUSTER_CONFIG: dict[str, object] = {"distributed.worker.profile.enabled": False}


@contextlib.contextmanager
def open_engine(request: ComputeRequest) -> Iterator[Engine]:
    """The engine of ``request``, with its cluster connection open for the block.

    Raises
    ------
    ComputeError
        The scheduler cannot be reached in ``connect_timeout`` seconds, or a local cluster
        cannot start.
    ConfigError
        The request is malformed.
    ModuleNotFoundError
        The ``dask`` extra is not installed.
    """
    request.check()
    if request.engine == "numpy":
        yield InProcessEngine()
        return
    # without the dask extra: ModuleNotFoundError, which the CLI turns into a one-line
    # "needs 'distributed' from the 'dask' extra" (regressops.extras)
    import dask
    from distributed import Client, LocalCluster

    workers = local_workers(request.scheduler)
    with contextlib.ExitStack() as stack:
        if workers is None:
            try:
                client = Client(request.scheduler, timeout=request.connect_timeout)
            except (OSError, TimeoutError) as exc:
                raise ComputeError(
                    f"cannot reach the Dask scheduler at {request.scheduler} within "
                    f"{request.connect_timeout:g} s ({type(exc).__name__}); is it running?",
                    reason="scheduler_unreachable",
                ) from None
        else:
            stack.enter_context(dask.config.set(LOCAL_CLUSTER_CONFIG))
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=request.worker_memory,
                dashboard_address=":0",
                silence_logs=logging.CRITICAL,  # failures come back as one line
            )
            stack.enter_context(cluster)
            client = Client(cluster)
        stack.enter_context(client)
        logger.info("dask engine on %s (%d workers)", request.scheduler, len(client.nthreads()))
        yield DaskEngine(client)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"
