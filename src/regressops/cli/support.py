"""Shared machinery of the command line: one-line errors, output, progress.

Every command in :mod:`regressops.cli` calls its library function through :func:`run`, which
turns a :class:`~regressops.errors.RegressopsError` into one red line on stderr and the error's
``exit_code``, and anything unexpected into one line and exit code 1 (the traceback only with
``regressops --debug``). :class:`OneLineErrors` does the same for Typer/Click usage errors
(unknown option, bad value: exit code 2). Output goes through :func:`out` (stdout),
:func:`print_json`, :func:`metrics_table` and :func:`shown`; long jobs run under
:func:`with_progress`. Only Typer is imported at module level; Rich is imported when used.
"""

from __future__ import annotations

import json
import math
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from regressops.errors import RegressopsError
from regressops.extras import missing_extra

if TYPE_CHECKING:
    from rich.console import Console

    from regressops.training.train import TrainEvent

T = TypeVar("T")
DEBUG_ENV = "REGRESSOPS_DEBUG"
state = {"debug": False}


# ---------------------------------------------------------------------- error handling
def _click_exception() -> type[Exception]:
    """Click's ClickException class (Typer vendors Click as ``typer._click`` in new versions)."""
    for cls in typer.BadParameter.__mro__:
        if cls.__name__ == "ClickException":
            return cls
    return Exception  # pragma: no cover - Click always has it


class OneLineErrors(TyperGroup):
    """The root group: usage errors print as one line instead of a usage box."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        click_error = _click_exception()
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name or "regressops",
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except click_error as exc:
            code = int(getattr(exc, "exit_code", 2))
            if type(exc).__name__ != "NoArgsIsHelpError":  # the help is already printed
                error_line(_usage_message(exc))
        except typer.Abort:
            error_line("aborted")
            code = 1
        if not standalone_mode:
            return code
        sys.exit(code)


def _usage_message(exc: Exception) -> str:
    format_message = getattr(exc, "format_message", None)
    message = format_message() if callable(format_message) else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
    return " ".join(f"{message}{hint}".split())


def err() -> Console:
    """The stderr console (errors, warnings, progress; no wrapping of long lines)."""
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def out() -> Console:
    """The stdout console for tables and messages (no wrapping of long lines)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def error_line(message: str) -> None:
    """Print ``message`` as one red ``error:`` line on stderr."""
    from rich.markup import escape

    err().print(f"[bold red]error:[/bold red] {escape(' '.join(message.split()))}")


def fail(message: str, exit_code: int = 1) -> NoReturn:
    """Print one red error line on stderr and exit with ``exit_code``."""
    error_line(message)
    raise typer.Exit(exit_code)


def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Call ``fn(*args, **kwargs)``, turning any exception into one line and an exit code.

    A :class:`RegressopsError` exits with its ``exit_code``; anything else with 1 and a hint to
    rerun with ``--debug``, which also prints the traceback.
    """
    try:
        return fn(*args, **kwargs)
    except typer.Exit:
        raise
    except RegressopsError as exc:
        if state["debug"]:
            err().print(traceback.format_exc(), markup=False)
        fail(exc.message, exc.exit_code)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except Exception as exc:
        if state["debug"]:
            err().print(traceback.format_exc(), markup=False)
        if (missing := missing_extra(exc)) is not None:
            fail(missing.message, missing.exit_code)
        if state["debug"]:
            fail(f"unexpected error: {type(exc).__name__}: {_first_line(exc)}", 1)
        fail(
            f"unexpected error: {type(exc).__name__}: {_first_line(exc)} (rerun as "
            "'regressops --debug ...' to see the traceback)",
            1,
        )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


# ---------------------------------------------------------------------- output helpers
def print_json(doc: Any) -> None:
    """Print ``doc`` as JSON on stdout (non-finite floats as null)."""
    typer.echo(json.dumps(_plain(doc), indent=2))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 1e5 else f"{value:.6g}"
    return "" if value is None else str(value)


def metrics_table(title: str, columns: dict[str, dict[str, Any]]) -> None:
    """Print a table of metrics, one column per set of rows (``{"test": {...}, ...}``)."""
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for metric in ("r2", "rmse", "mse", "mae", "n"):
        table.add_row(metric, *(_fmt(col.get(metric)) for col in columns.values()))
    out().print(table)


def shown(path: Path) -> str:
    """A path as the user should type it: relative to the working directory when inside it."""
    if "://" in str(path):  # an object-storage URI (a lake on S3)
        return str(path)
    rel = os.path.relpath(path.resolve())
    return shlex.quote(rel if not rel.startswith("..") else str(path.resolve()))


@contextmanager
def progress(enabled: bool = True) -> Iterator[Callable[[TrainEvent], None]]:
    """A Rich progress display on stderr driven by :class:`TrainEvent` callbacks."""
    console = err()
    if not enabled or not console.is_terminal:
        yield lambda event: None
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    labels = {"load": "loading data", "split": "splitting", "evaluate": "evaluating"}
    labels |= {"save": "saving the bundle", "done": "done", "fit": "fitting"}
    bar = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[loss]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )
    stage = bar.add_task("preparing", total=None, loss="")
    fit: list[Any] = []  # the epoch bar, once an iterative fit reports

    def on_event(event: TrainEvent) -> None:
        if event.stage == "fit" and event.total:
            if not fit:
                fit.append(bar.add_task("epochs", total=event.total, loss=""))
            loss = f"loss {event.loss:.4g}" if event.loss is not None else ""
            bar.update(fit[0], completed=event.step, loss=loss)
        bar.update(stage, description=labels.get(event.stage, event.stage))

    with bar:
        yield on_event


def with_progress(fn: Callable[..., T], *, show: bool) -> Callable[..., T]:
    """Wrap ``fn(progress=..., **kwargs)`` so it runs under a progress display.

    Use as ``run(with_progress(fn, show=True), **kwargs)``: the display is closed before
    ``run`` prints an error.
    """

    def call(**kwargs: Any) -> T:
        with progress(enabled=show) as on_event:
            return fn(progress=on_event, **kwargs)

    return call


def quiet_mlflow() -> None:
    """Keep MLflow's INFO lines off the terminal (unless MLFLOW_LOGGING_LEVEL says otherwise)."""
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")


def settings_for(tracking_uri: str | None) -> Any:
    """The settings, with ``--tracking-uri`` (when given) in place of the configured store."""
    from regressops.config import get_settings

    settings = get_settings()
    if tracking_uri:
        settings = settings.model_copy(update={"tracking_uri": tracking_uri})
    return settings
