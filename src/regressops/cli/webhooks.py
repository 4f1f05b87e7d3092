"""Command-line commands of the webhooks: ``webhooks list|test|deliveries|secret``.

:mod:`regressops.cli` mounts them (``app.add_typer(webhooks_app, name="webhooks")``). Each wraps
a function of :mod:`regressops.alerts`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Any

import typer

from regressops.cli.options import JsonOpt
from regressops.cli.support import fail, out, print_json, run

webhooks_app = typer.Typer(
    name="webhooks",
    help="Signed event webhooks: list them, send a test event, read the delivery log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _table(title: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, overflow="fold" if col == "error" else "ellipsis")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    out().print(table)


def _alerts() -> ModuleType:
    """:mod:`regressops.alerts`, imported inside :func:`run` so that an install without its
    HTTP client (the ``train`` extra) gets the one line naming the extra."""
    import regressops.alerts

    return regressops.alerts


def _settings() -> Any:
    from regressops.config import get_settings

    return run(get_settings)


@webhooks_app.command("list")
def list_webhooks(json_output: JsonOpt = False) -> None:
    """List the configured webhooks, their events and whether each is ready to send."""
    rows = run(run(_alerts).webhook_status, _settings())
    if json_output:
        print_json(rows)
    elif not rows:
        out().print("no webhooks configured; add a [[webhooks]] entry to regressops.toml")
    else:
        _table("webhooks", ("webhook", "events", "secret_env", "ready", "problem"), rows)


@webhooks_app.command()
def test(
    webhook: Annotated[
        str | None, typer.Option("--webhook", help="Only this webhook (its name or URL).")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Send a signed ping event to every webhook (exit code 8 if one does not accept it)."""
    import logging
    from dataclasses import asdict

    from regressops.errors import DeliveryFailed

    alerts = run(_alerts)
    logging.getLogger("regressops.alerts").setLevel(logging.ERROR)  # the table says it all
    results = run(alerts.ping, _settings(), webhook=webhook)
    rows = [asdict(r) for r in results]
    if json_output:
        print_json(rows)
    else:
        cols = ("webhook", "delivered", "attempts", "status", "error")
        _table(f"ping {results[0].event_id}", cols, rows)
    failed = [r for r in results if not r.delivered]
    if failed:
        first, more = failed[0], len(failed) - 1
        fail(
            f"webhook {first.webhook} did not accept the ping after {first.attempts} "
            f"attempt(s): {first.error}" + (f" (and {more} more webhook(s))" if more else ""),
            DeliveryFailed.exit_code,
        )


@webhooks_app.command()
def deliveries(
    last: Annotated[
        int, typer.Option("--last", "-n", min=1, help="Show the last N attempts.")
    ] = 20,
    event: Annotated[str | None, typer.Option("--event", help="Only this event id.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Show the delivery log: every attempt with its outcome, HTTP status and latency."""
    alerts = run(_alerts)
    path = alerts.delivery_log_path(_settings())
    rows = run(alerts.read_deliveries, path, last=last, event_id=event)
    if json_output:
        print_json(rows)
        return
    if not rows:
        out().print(f"no deliveries logged in {path}")
        return
    for row in rows:
        row["time"] = str(row.get("at", ""))[:19].replace("T", " ")
    cols = ("time", "event", "type", "webhook", "attempt", "outcome", "status", "latency_ms")
    _table(f"webhook deliveries ({path})", (*cols, "error"), rows)


@webhooks_app.command()
def secret() -> None:
    """Print a new random signing secret (whsec_ + base64 of 32 bytes)."""
    typer.echo(run(_alerts).generate_secret())
