"""Reports opened from disk in headless Chromium (Debian's chromium package, driven by Playwright), as a person would.

Every problem a reader would see or that breaks the page is collected: console errors, script errors, files that
fail to load, requests to the network (an offline report makes none) and pictures that do not show.
"""

from __future__ import annotations

import re
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
# --no-sandbox: Chromium's sandbox cannot start as root in a container. The others stop its background calls to
# Google's services, which fail on an offline machine and would only add noise.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}
NETWORK = re.compile(r"^(https?|wss?)://")
BROKEN_IMAGES = """() => Array.from(document.images)
    .filter(image => !image.complete || image.naturalWidth === 0)
    .map(image => image.alt || image.src.slice(0, 80))"""


def launch(playwright):
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium package (make test does)")
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)


def open_report(browser, path: Path):
    """The page of `path` once loaded, and the problems found while loading it."""
    page = browser.new_context(viewport=VIEWPORT).new_page()
    problems: list[str] = []
    page.on("console", lambda message: _console_error(message, problems))
    page.on("pageerror", lambda error: problems.append(f"script error: {error}"))
    page.on("requestfailed", lambda request: problems.append(f"failed to load {request.url}: {request.failure}"))
    page.route(NETWORK, lambda route: _refuse(route, problems))
    page.goto(Path(path).resolve().as_uri(), wait_until="load")
    page.wait_for_load_state("networkidle")
    problems.extend(f"picture not shown: {name}" for name in page.evaluate(BROKEN_IMAGES))
    return page, problems


def _console_error(message, problems: list[str]) -> None:
    if message.type == "error":
        problems.append(f"console error: {message.text} ({message.location.get('url', '')})")


def _refuse(route, problems: list[str]) -> None:
    problems.append(f"network request: {route.request.url}")
    route.abort()


def screenshot(page, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
