"""Segments of a JSON-lines prediction log: rotation by size and age, retention, reading order.

The log a server writes is ``<dir>/<stem>.jsonl`` (the current segment) plus rotated segments
``<dir>/<stem>.<UTC time of rotation>.jsonl`` beside it. Rotation renames the current segment
under an exclusive ``flock`` on ``<dir>/<stem>.jsonl.lock`` (so of several writers — worker
processes, the writer process — exactly one rotates); every writer notices at its next write
that the path names a new file and reopens it. A writer that appended a few more lines to the
renamed file before noticing loses nothing: those lines are in the rotated segment. Retention
then removes the oldest rotated segments beyond a total size or age; the current segment is
never removed. Readers take the segments oldest first (:func:`segment_paths`).
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_STAMP = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class Rotation:
    """When a JSON-lines log starts a new segment and how long old ones are kept.

    Attributes
    ----------
    max_bytes : int
        Size of the current segment that triggers a rotation.
    max_seconds : float
        Age of the current segment's first line that triggers a rotation.
    retention_bytes : int or None
        Total size of the rotated segments beyond which the oldest are removed.
    retention_seconds : float or None
        Rotated segments older than this are removed.
    """

    max_bytes: int = 256 * 1024 * 1024
    max_seconds: float = 86_400.0
    retention_bytes: int | None = None
    retention_seconds: float | None = None

    def to_env(self) -> str:
        """The rotation as text for a child process's environment."""
        import orjson

        return orjson.dumps(asdict(self)).decode()

    @classmethod
    def from_env(cls, text: str | None) -> Rotation | None:
        """The rotation :meth:`to_env` wrote, or None."""
        if not text:
            return None
        import orjson

        return cls(**orjson.loads(text))


def segment_paths(path: Path) -> list[Path]:
    """The log's segments, oldest first: the rotated ones, then ``path`` (if it exists)."""
    rotated = sorted(
        p for p in path.parent.glob(f"{path.stem}.*{path.suffix}") if _is_rotated(p, path)
    )
    return [*rotated, *([path] if path.exists() else [])]


def _is_rotated(candidate: Path, path: Path) -> bool:
    middle = candidate.name[len(path.stem) + 1 : -len(path.suffix) or None]
    return candidate != path and middle[:8].isdigit() and "T" in middle


def _first_line_time(fd: int) -> float | None:
    """The epoch time of the segment's first line (its ``"ts"``), or None when empty/unreadable."""
    head = os.pread(fd, 48, 0)
    if not head.startswith(b'{"ts":"'):
        return None
    try:
        stamp = head[7:26].decode()
        return float(calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S")))
    except (ValueError, UnicodeDecodeError):
        return None


def rotation_due(fd: int, rotation: Rotation, now: float | None = None) -> bool:
    """True when the segment open as ``fd`` is past its size or age."""
    size = os.fstat(fd).st_size
    if size == 0:
        return False
    if size >= rotation.max_bytes:
        return True
    started = _first_line_time(fd)
    return started is not None and (now or time.time()) - started >= rotation.max_seconds


def replaced(fd: int, path: Path) -> bool:
    """True when ``path`` no longer names the file open as ``fd`` (another writer rotated)."""
    try:
        return os.stat(path).st_ino != os.fstat(fd).st_ino
    except FileNotFoundError:
        return True


def rotate(fd: int, path: Path, rotation: Rotation) -> bool:
    """Rename the current segment if it is still the one open as ``fd`` and still due.

    Returns True when this call rotated (the caller reopens ``path`` either way when
    :func:`replaced` says so). Retention runs after a rotation.
    """
    lock_path = path.with_name(path.name + ".lock")
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if replaced(fd, path) or not rotation_due(fd, rotation):
                return False  # another writer rotated first
            stamp = time.strftime(_STAMP, time.gmtime())
            target = path.with_name(f"{path.stem}.{stamp}{_micros()}{path.suffix}")
            os.rename(path, target)
            logger.info("prediction log rotated to %s", target.name)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    apply_retention(path, rotation)
    return True


def _micros() -> str:
    return f"{int(time.time() * 1e6) % 1_000_000:06d}"


def apply_retention(path: Path, rotation: Rotation, now: float | None = None) -> list[Path]:
    """Remove the oldest rotated segments beyond the size or age limit; return what went."""
    if rotation.retention_bytes is None and rotation.retention_seconds is None:
        return []
    rotated = [p for p in segment_paths(path) if p != path]
    now = now or time.time()
    removed = []
    sizes = {p: p.stat().st_size for p in rotated if p.exists()}
    total = sum(sizes.values())
    for p in rotated:  # oldest first
        too_big = rotation.retention_bytes is not None and total > rotation.retention_bytes
        too_old = (
            rotation.retention_seconds is not None
            and now - p.stat().st_mtime > rotation.retention_seconds
        )
        if not (too_big or too_old):
            continue
        with contextlib.suppress(FileNotFoundError):
            p.unlink()
            removed.append(p)
            total -= sizes.get(p, 0)
    if removed:
        logger.info("prediction log retention removed %d old segments", len(removed))
    return removed
