"""The JSON lines of a prediction log, decoded for the monitor: numeric arrays as float64 buffers.

A log line holds a request's rows column by column (``"features": {name: [values]}``,
:meth:`~regressops.serving.log.batch.LogBatch.json_lines`). Decoding such a line with orjson
makes one Python float per value, which the window then copies into numpy: for 1,000,000 rows
× 20 features that is 21 million objects and about 2 s of the monitor's 4 s. With pysimdjson
installed (part of the ``train`` extra) each wanted numeric array is parsed straight into a
float64 buffer (``Array.as_buffer``), which is about 2x faster and makes no Python float.
The two decoders give bit-identical values: both parse decimal text with correct rounding, and
whatever simdjson does not take as a plain array of numbers (``null``, text, booleans, integers
beyond 64 bits, a number out of range, malformed JSON) is decoded by orjson as before, so every
error and every torn-line rule is orjson's.

The reading rules are those of :func:`regressops.serving.log.reader.iter_log_rows`: a line torn
by a writer killed mid-write is skipped with a warning, and an unfinished last line (a writer is
appending it) ends the file. Segments are mapped, not read line by line: each line is found
with ``memchr`` and decoded from the mapping without a copy, and pages already decoded are
released every 8 MB, so the mapping adds little to the process's resident memory.
"""

from __future__ import annotations

import logging
import mmap
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from regressops.errors import ConfigError
from regressops.monitoring.log_fanout import (
    can_fan_out,
    fan_out,
    plan_parts,
    release_behind,
    report_line,
)
from regressops.serving.log.reader import recover_line
from regressops.serving.log.segments import segment_paths

try:  # the fast decoder; without it orjson decodes every line
    import simdjson
except ImportError:  # pragma: no cover - exercised by the tests that hide it
    simdjson = None  # type: ignore[assignment]

logger = logging.getLogger(__name__)

_NOT_PLAIN = (TypeError, ValueError, RuntimeError)  # simdjson: not an array of plain numbers


def decoded_lines(
    path: Path, kinds: Mapping[str, str], *, workers: int = 1
) -> Iterator[dict[str, Any]]:
    """The decoded lines of every segment of the JSON-lines log at ``path``.

    Rotated segments come first (:mod:`regressops.serving.log.segments`).

    Parameters
    ----------
    path : Path
        The log (its active segment's path).
    kinds : mapping of str to {"numeric", "categorical"}
        The features the caller reads. With pysimdjson the returned ``"features"`` hold just
        these (those the line has), numeric ones as float64 arrays; without it, every column
        as orjson decodes it.
    workers : int, default=1
        Processes that decode: a log of 64 MB or more is cut into this many parts, the later
        ones decoded by forked processes (:mod:`regressops.monitoring.log_fanout`).

    Yields
    ------
    dict
        The line, with ``"features"`` values and ``"predictions"`` as numpy arrays where they
        were plain arrays of numbers (lists otherwise).

    Raises
    ------
    ConfigError
        A segment cannot be opened.
    DataError
        A line is valid JSON but not an object.
    """
    segments = segment_paths(path) or [path]
    if workers > 1:
        sizes = [_size(p) for p in segments]
        if can_fan_out(sum(sizes), workers):
            parts = plan_parts(segments, sizes, workers)
            if len(parts) > 1:

                def read_range(seg: int, start: int, stop: int, on_event: Any) -> Any:
                    return _segment_lines(segments[seg], kinds, start, stop, on_event)

                yield from fan_out(segments, parts, read_range)
                return
    for segment in segments:
        yield from _segment_lines(segment, kinds)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # the reader reports it when it opens the file


def decode_line(line: bytes | memoryview, kinds: Mapping[str, str] | None = None) -> Any:
    """One JSON line; with pysimdjson and ``kinds`` given, wanted numeric arrays become float64.

    With ``kinds``, the line's ``"features"`` keep only the features ``kinds`` names (the
    others are not decoded); without it, or without pysimdjson, it is ``orjson.loads(line)``.

    Raises
    ------
    orjson.JSONDecodeError
        The line is not valid JSON (decided by orjson).
    """
    if simdjson is None or kinds is None:
        return orjson.loads(line)
    try:
        # a parser per line: proxies into a parser must not outlive its next document
        doc = simdjson.Parser().parse(line)
    except _NOT_PLAIN:
        return orjson.loads(line)  # orjson's verdict and error (or a number simdjson refuses)
    if not isinstance(doc, simdjson.Object):
        return _plain(doc)
    out: dict[str, Any] = {}
    for key in doc:
        value = doc[key]
        if key == "features" and isinstance(value, simdjson.Object):
            out[key] = {
                name: _numbers(value[name]) if kinds[name] == "numeric" else _plain(value[name])
                for name in value
                if name in kinds
            }
        elif key == "predictions":
            out[key] = _numbers(value)
        else:
            out[key] = _plain(value)
    return out


def _numbers(value: Any) -> Any:
    """A JSON array of plain numbers as float64 (a copy, no Python floats), else its value."""
    if isinstance(value, simdjson.Array):
        try:
            return np.frombuffer(value.as_buffer(of_type="d"), dtype=np.float64)
        except _NOT_PLAIN:
            return value.as_list()
    return _plain(value)


def _plain(value: Any) -> Any:
    """A simdjson value as Python's own (a proxy must not outlive this line)."""
    if isinstance(value, simdjson.Array):
        return value.as_list()
    if isinstance(value, simdjson.Object):
        return value.as_dict()
    return value


def _segment_lines(
    path: Path,
    kinds: Mapping[str, str],
    start: int = 0,
    stop: int | None = None,
    on_event: Callable[[str, int], None] | None = None,
) -> Iterator[dict[str, Any]]:
    """The lines of ``path`` from byte ``start`` (a line's start) to ``stop`` (after a newline).

    ``on_event(kind, number)`` hears of a torn line skipped (``"torn"``) and of a line that is
    not an object (``"not_object"``; it must raise), numbered from ``start``; by default the
    first is logged and the second raises :class:`DataError`.
    """
    report = on_event or (lambda kind, number: report_line(path, kind, number))
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConfigError(
            f"cannot read prediction log {path}: {exc.strerror}", reason="prediction_log"
        ) from None
    with handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except ValueError:  # an empty file cannot be mapped: no lines
            return
        with mapped:
            view = memoryview(mapped)
            try:
                end = len(mapped) if stop is None else min(stop, len(mapped))
                yield from _mapped_lines(mapped, view, (start, end), kinds, report)
            finally:
                view.release()


def _mapped_lines(
    mapped: mmap.mmap,
    view: memoryview,
    span: tuple[int, int],
    kinds: Mapping[str, str],
    report: Callable[[str, int], None],
) -> Iterator[dict[str, Any]]:
    pos, size = span
    number, released = 0, pos - pos % mmap.PAGESIZE
    while pos < size:
        released = release_behind(mapped, released, pos, mmap.MADV_DONTNEED)  # decoded pages
        end = mapped.find(b"\n", pos, size)
        complete = end >= 0
        stop = end if complete else size
        number += 1
        line = view[pos:stop]
        pos = stop + 1
        if not bytes(line[:1]).strip() and not bytes(line).strip():
            continue
        try:
            doc = decode_line(line, kinds)
        except orjson.JSONDecodeError:
            if not complete:  # a writer is appending this very line
                return
            # a torn fragment that the next append continued: read the whole line after it
            recovered = recover_line(line)
            report("torn", number)
            if recovered is None:
                continue
            doc = recovered
        if not isinstance(doc, dict):
            line.release()  # the error's traceback must not pin the mapping
            report("not_object", number)
            return
        yield doc
