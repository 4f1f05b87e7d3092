"""What a worker of ``regressops serve --workers N`` knows about its supervisor.

- :func:`supervisor_pid`: the supervisor's pid when this process is one of its workers.
- :func:`watch_supervisor`: a worker whose supervisor is gone (killed with SIGKILL, OOM-killed)
  shuts itself down gracefully — requests in flight finish, the prediction log is flushed and
  its writer process exits — instead of serving on as an orphan that keeps the port.
- Reload rounds: one ``/admin/reload`` (or one SIGHUP to the supervisor) reloads every worker,
  yet counts once in ``regressops_model_reloads_total``. The supervisor numbers each round in a
  file of the shared metrics folder before forwarding SIGHUP (:func:`start_reload_round`); the
  first worker to claim the round (:func:`claim_reload_round`) counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path

logger = logging.getLogger(__name__)

SUPERVISOR_ENV = "REGRESSOPS_SUPERVISOR_PID"
ROUND_FILE = "regressops-reload-round"
WATCH_SECONDS = 0.2


def supervisor_pid() -> int | None:
    """The supervisor's pid when this process is a worker it started (and it is alive)."""
    value = os.environ.get(SUPERVISOR_ENV, "")
    if value.isdigit() and int(value) == os.getppid():
        return int(value)
    return None


async def watch_supervisor(
    pid: int, on_gone: Callable[[], None] | None = None, every: float = WATCH_SECONDS
) -> None:
    """Wait until the supervisor ``pid`` is gone, then call ``on_gone`` (default: SIGTERM self).

    A process whose parent dies is re-parented, so ``os.getppid()`` changes: polling it costs
    one system call per ``every`` seconds and works wherever the supervisor dies of.
    """
    while os.getppid() == pid:
        await asyncio.sleep(every)
    logger.warning("the supervisor (pid %d) is gone: this worker shuts down", pid)
    (on_gone or _terminate_self)()


def _terminate_self() -> None:
    # uvicorn's handler: stop accepting, finish requests in flight, run the lifespan shutdown
    os.kill(os.getpid(), signal.SIGTERM)


def start_reload_round(folder: str | None) -> int | None:
    """Supervisor side: number a new reload round in ``folder`` (written whole, then renamed)."""
    if not folder:
        return None
    path = Path(folder) / ROUND_FILE
    try:
        number = int(path.read_text() or 0) + 1 if path.exists() else 1
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(str(number))
        tmp.replace(path)
    except (OSError, ValueError) as exc:
        logger.warning("could not number the reload round: %s", exc)
        return None
    return number


def claim_reload_round(folder: str | None) -> bool:
    """Worker side: True when this worker is the first to claim the current round.

    Also True when no round is numbered (a single worker, or a SIGHUP sent to the worker
    itself): then the reload is this worker's own and counts.
    """
    if not folder:
        return True
    try:
        number = (Path(folder) / ROUND_FILE).read_text().strip()
    except OSError:
        return True
    try:
        fd = os.open(Path(folder) / f"{ROUND_FILE}-{number}.claimed", os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    except OSError:
        return True
    with contextlib.suppress(OSError):
        os.close(fd)
    return True
