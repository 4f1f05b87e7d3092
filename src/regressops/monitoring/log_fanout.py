"""Decode the later parts of a large JSON-lines log in forked processes while this one reads.

Decoding the lines is most of what ``monitor`` does with a large log, and a JSON decoder holds
the GIL, so threads cannot share it. :func:`fan_out` cuts the log's bytes (all its segments, in
order) into ``workers`` parts at line boundaries, forks one process per part after the first,
and yields the first part's lines decoded here while the others decode theirs. Each child
writes its lines to an anonymous in-memory file (``memfd``) as records: the line without its
numeric arrays (orjson) followed by the arrays' float64 bytes, 8-byte aligned. This process
then maps that file and yields those lines in order, copying the arrays out and freeing the
file's pages behind them (no pickle: nothing but numbers and orjson text crosses).

The reading rules stay those of the single-process reader: a torn line is skipped with a
warning naming its line number, a line that is not an object is a :class:`DataError` naming
its line, and an unfinished last line ends the log. A child that fails for any reason (killed,
out of memory, an unexpected error) costs only time: its part is decoded here instead.
Fan-out happens only where it is safe and pays: Linux (``os.fork``, ``os.memfd_create``), no
other thread running in this process, and a log of at least :data:`MIN_BYTES`.
"""

from __future__ import annotations

import logging
import mmap
import os
import resource
import signal
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import orjson

from regressops.errors import ConfigError, DataError

logger = logging.getLogger(__name__)

MIN_BYTES = 64 << 20  # smaller logs decode in well under a second: one process
RELEASE_BYTES = 8 << 20  # pages of a mapped log (or of a child's file) kept before freeing
_HEAD = struct.Struct("<cxxxI")  # record kind, length of its orjson text
_ALIGN = 8


@dataclass(frozen=True)
class Part:
    """A run of whole lines: ``segments[i]`` from byte ``start`` to ``stop`` for each entry."""

    ranges: tuple[tuple[int, int, int], ...]  # (segment index, start byte, stop byte)


def can_fan_out(total_bytes: int, workers: int, *, threads: int | None = None) -> bool:
    """True when a log of ``total_bytes`` should be decoded by ``workers`` processes.

    ``threads``: the threads running in this process (default: counted); forking is refused
    unless this is the only one, as a lock another thread holds would stay held in the child.
    """
    threads = threading.active_count() if threads is None else threads
    return (
        workers > 1
        and total_bytes >= MIN_BYTES
        and hasattr(os, "fork")
        and hasattr(os, "memfd_create")
        and threads == 1
    )


def plan_parts(segments: list[Path], sizes: list[int], parts: int) -> list[Part]:
    """Cut the log into at most ``parts`` runs of whole lines of about equal bytes."""
    total, last = sum(sizes), len(sizes) - 1
    starts = [(0, 0)]  # (segment index, byte) where each part starts: always a line's start
    for k in range(1, parts):
        seg, offset = 0, total * k // parts
        while seg < last and offset >= sizes[seg]:
            offset -= sizes[seg]
            seg += 1
        start = _next_line(segments[seg], offset) if sizes[seg] else None
        cut = (seg, start) if start is not None else (seg + 1, 0)
        if cut[0] <= last and cut > starts[-1]:
            starts.append(cut)
    out = []
    for (s0, b0), (s1, b1) in zip(starts, [*starts[1:], (last, sizes[last])], strict=True):
        ranges = []
        for seg in range(s0, s1 + 1):
            lo, hi = (b0 if seg == s0 else 0), (b1 if seg == s1 else sizes[seg])
            if hi > lo:
                ranges.append((seg, lo, hi))
        if ranges:
            out.append(Part(tuple(ranges)))
    return out


def _next_line(path: Path, offset: int) -> int | None:
    """The byte after the first newline at or after ``offset`` (None: none before the end)."""
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        end = mapped.find(b"\n", offset)
        if end < 0 or end + 1 >= len(mapped):
            return None
        return end + 1


def fan_out(
    segments: list[Path], parts: list[Part], read_range: Callable[..., Iterator[dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    """Yield every line of ``parts`` in order; the parts after the first are decoded by children.

    Parameters
    ----------
    segments : list of Path
        The log's segment files, oldest first.
    parts : list of Part
        From :func:`plan_parts`.
    read_range : callable
        ``read_range(segment_index, start, stop, on_event)`` yields the decoded lines of one
        byte range; ``on_event(kind, line_number)`` receives ``"torn"`` for a torn line it
        skipped and ``"not_object"`` for a line that is not an object (then it stops); line
        numbers count from the range's start. It raises :class:`ConfigError` when a segment
        cannot be read.
    """
    children: list[tuple[int, int, Part]] = []  # (pid, memfd, part)
    running: set[int] = set()  # not reaped yet (a reaped pid may be reused: never signal it)
    try:
        for part in parts[1:]:
            fd = os.memfd_create("regressops-log-part", os.MFD_CLOEXEC)
            children.append((-1, fd, part))
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child's coverage is not collected
                _child(fd, part, read_range)
            children[-1] = (pid, fd, part)
            running.add(pid)
        yield from _here(segments, parts[0], read_range)
        for pid, fd, part in children:
            running.discard(pid)
            ok = _reap(pid, kill=False)
            yield from _collect(segments, ok, fd, part, read_range)
    finally:
        for pid in running:
            _reap(pid, kill=True)
        for _, fd, _ in children:
            os.close(fd)


def _here(
    segments: list[Path], part: Part, read_range: Callable[..., Iterator[dict[str, Any]]]
) -> Iterator[dict[str, Any]]:
    """The lines of a part decoded in this process, with the reader's own warnings and errors."""
    for seg, start, stop in part.ranges:
        first = _line_number(segments[seg], start)

        def on_event(kind: str, number: int, seg: int = seg, first: int = first) -> None:
            report_line(segments[seg], kind, first + number)

        yield from read_range(seg, start, stop, on_event)


def report_line(path: Path, kind: str, number: int) -> None:
    """Log a torn line (``kind == "torn"``) or raise :class:`DataError` for a bad one."""
    if kind == "torn":
        logger.warning("line %d of %s holds a torn fragment; skipped", number, path)
        return
    raise DataError(f"line {number} of {path} is not a prediction log line", reason="bad_log_line")


def _line_number(path: Path, start: int) -> int:
    """Lines before byte ``start`` of ``path`` (0 at the start of the file)."""
    if start == 0:
        return 0
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        count, pos = 0, 0
        while True:
            pos = mapped.find(b"\n", pos, start)
            if pos < 0:
                return count
            count, pos = count + 1, pos + 1


# --------------------------------------------------------------------------------- child
def _child(fd: int, part: Part, read_range: Callable[..., Iterator[dict[str, Any]]]) -> None:
    """Decode ``part`` into the memfd ``fd``, then leave without running any exit handler."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the parent reaps us
        with os.fdopen(fd, "wb", buffering=1 << 20, closefd=False) as out:
            for seg, start, stop in part.ranges:

                def on_event(kind: str, number: int, seg: int = seg) -> None:
                    _record(out, b"W" if kind == "torn" else b"E", {"seg": seg, "line": number})
                    if kind != "torn":
                        raise _Stop

                try:
                    for doc in read_range(seg, start, stop, on_event):
                        _write_doc(out, doc)
                except _Stop:
                    break
                except ConfigError as exc:
                    _record(out, b"C", {"message": exc.message, "reason": exc.reason})
                    break
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            _record(out, b"Z", {"peak_rss_kb": peak})
        code = 0
    except BaseException:  # noqa: S110 - the parent decodes the part itself
        pass
    finally:
        os._exit(code)


class _Stop(Exception):
    """A line that is not an object ends the child's part (the parent raises the error)."""


def _record(out: BinaryIO, kind: bytes, doc: Any) -> None:
    text = orjson.dumps(doc)
    out.write(_HEAD.pack(kind, len(text)))
    out.write(text)
    out.write(b"\0" * (-(_HEAD.size + len(text)) % _ALIGN))


def _write_doc(out: BinaryIO, doc: dict[str, Any]) -> None:
    """A line: its JSON without the float64 arrays, then the arrays' bytes (8-byte aligned)."""
    arrays: list[np.ndarray] = []
    where: list[list[Any]] = []
    head = dict(doc)
    features = doc.get("features")
    if isinstance(features, dict):
        plain = {}
        for name, values in features.items():
            if isinstance(values, np.ndarray):
                where.append(["features", name, int(values.size)])
                arrays.append(values)
            else:
                plain[name] = values
        head["features"] = plain
    predictions = doc.get("predictions")
    if isinstance(predictions, np.ndarray):
        where.append(["predictions", None, int(predictions.size)])
        arrays.append(predictions)
        del head["predictions"]
    head["\0arrays"] = where
    _record(out, b"D", head)
    for values in arrays:
        out.write(np.ascontiguousarray(values, dtype=np.float64).data.cast("B"))


# -------------------------------------------------------------------------------- parent
def _collect(
    segments: list[Path],
    ok: bool,
    fd: int,
    part: Part,
    read_range: Callable[..., Iterator[dict[str, Any]]],
) -> Iterator[dict[str, Any]]:
    """The lines a child decoded, or the part decoded here if the child did not finish."""
    size = os.fstat(fd).st_size
    if not ok or not size:  # a child exits with 0 only once its last record ("Z") is written
        logger.debug("a log-decoding process did not finish; decoding its part here")
        yield from _here(segments, part, read_range)
        return
    finished = False
    for kind, doc in _records(fd, size):
        if kind == b"Z":
            logger.debug("a log-decoding process peaked at %s KB", doc.get("peak_rss_kb"))
            finished = True
        elif kind == b"D":
            yield doc
        elif kind in (b"W", b"E"):
            seg = int(doc["seg"])
            start = next(b for s, b, _ in part.ranges if s == seg)
            number = _line_number(segments[seg], start) + int(doc["line"])
            report_line(segments[seg], "torn" if kind == b"W" else "not_object", number)
        elif kind == b"C":
            raise ConfigError(str(doc["message"]), reason=str(doc["reason"]))
    if not finished:
        raise ConfigError(
            "a process decoding the prediction log ended early; run again with monitor.workers = 1",
            reason="prediction_log",
        )


def _records(fd: int, size: int) -> Iterator[tuple[bytes, dict[str, Any]]]:
    """The child's records; arrays are copied out and the file's pages freed behind them.

    Copying (a memcpy, ~0.03 s for half of a 1M x 20 window) and freeing every 8 MB read keeps
    the window's memory where one process would have it: the child's half moves from the
    in-memory file into this process's blocks instead of staying in both until the end.
    """
    mapped = mmap.mmap(fd, size, access=mmap.ACCESS_WRITE)  # MADV_REMOVE needs a writable map
    view = memoryview(mapped)
    pos = freed = 0
    try:
        while pos + _HEAD.size <= size:
            freed = release_behind(mapped, freed, pos, mmap.MADV_REMOVE)
            kind, length = _HEAD.unpack_from(view, pos)
            pos += _HEAD.size
            doc = orjson.loads(view[pos : pos + length])
            pos += length + (-(_HEAD.size + length) % _ALIGN)
            if kind == b"D":
                for key, name, count in doc.pop("\0arrays"):
                    values = np.frombuffer(view, dtype=np.float64, count=count, offset=pos).copy()
                    pos += count * 8
                    if key == "features":
                        doc["features"][name] = values
                    else:
                        doc["predictions"] = values
            yield kind, doc
    finally:
        view.release()
        mapped.close()


def release_behind(mapped: mmap.mmap, released: int, pos: int, advice: int) -> int:
    """Free the pages of ``mapped`` read since ``released`` once :data:`RELEASE_BYTES` of them
    are behind ``pos`` (``MADV_DONTNEED`` for a file, ``MADV_REMOVE`` for a memfd); the new
    mark."""
    if pos - released < RELEASE_BYTES:
        return released
    upto = pos - pos % mmap.PAGESIZE
    mapped.madvise(advice, released, upto - released)
    return upto


def _reap(pid: int, *, kill: bool) -> bool:
    """Wait for child ``pid`` (killing it first if asked); True when it exited with 0."""
    try:
        if kill:
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
    except (ChildProcessError, ProcessLookupError):
        return False
    return os.waitstatus_to_exitcode(status) == 0
