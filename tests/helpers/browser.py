"""Render a page in a real headless Chromium (Debian's ``chromium`` package).

:func:`render` takes a screenshot, dumps the rendered DOM and records Chromium's network log,
so a test can check that the page drew something, says what it should, and requested nothing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from helpers.env import in_ci

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Chromium's own background traffic (updates, sign-in, spelling dictionaries) switched off, so
# every request left in the network log is one the page made.
QUIET = (
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-spell-checking",
    "--no-pings",
    "--disable-default-apps",
    "--disable-features=OptimizationHints,MediaRouter,Translate,SpellCheck",
)


def chromium() -> str:
    """The Chromium executable; skip (fail under CI) when it is not installed."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    message = "Chromium not installed (apt-get install -y --no-install-recommends chromium)"
    if in_ci():
        pytest.fail(f"{message}; CI=true: required")
    pytest.skip(message)


@dataclass(frozen=True)
class Rendered:
    """What Chromium made of a page."""

    screenshot: Path
    dom: str
    requested: list[str]  # every URL the page asked the network for (http, https, ws, ...)


def _run(args: list[str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=True)


def render(page: Path, work: Path) -> Rendered:
    """Screenshot, DOM and network requests of ``page`` (a local HTML file)."""
    exe = chromium()
    common = [
        exe,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={work / 'profile'}",
        *QUIET,
    ]
    shot = work / "screenshot.png"
    netlog = work / "netlog.json"
    url = page.resolve().as_uri()
    _run(
        [
            *common,
            f"--screenshot={shot}",
            "--window-size=1200,1600",
            f"--log-net-log={netlog}",
            "--net-log-capture-mode=Everything",
            url,
        ]
    )
    dom = _run([*common, "--dump-dom", url]).stdout
    return Rendered(shot, dom, _requested_urls(netlog))


def _requested_urls(netlog: Path) -> list[str]:
    """URLs the page itself asked the network for, from Chromium's net log.

    A request made for a page opened from a file carries that page's site (``file://``) in its
    network isolation key; Chromium's own background requests (updates, sign-in) do not.
    """
    text = netlog.read_text(errors="replace").rstrip().rstrip(",")
    if not text.endswith("}"):
        text += "]}"  # a log cut at exit: close the event list
    urls = []
    for event in json.loads(text).get("events", []):
        params = event.get("params") or {}
        url = params.get("url")
        if isinstance(url, str) and "file://" in str(params.get("network_isolation_key", "")):
            urls.append(url)
    return urls


def distinct_colours(png: Path) -> int:
    """How many colours the screenshot uses (a blank page uses one)."""
    from PIL import Image

    with Image.open(png) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    return len(colours) if colours is not None else 1 << 20
