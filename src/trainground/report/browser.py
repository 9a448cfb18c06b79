"""Open a report in headless Chromium and measure what a reader sees (tests and benchmarks).

Needs ``selenium`` (the ``dev`` extra) and the Debian packages ``chromium`` and
``chromium-driver``. The driver is started from ``/usr/bin/chromedriver`` through a
``Service``, so Selenium Manager never downloads anything.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-dev-shm-usage", "--no-first-run", "--disable-extensions")


def chromium_paths() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` executables, or None when either is missing.

    ``TG_CHROMIUM`` / ``TG_CHROMEDRIVER`` override the Debian locations.
    """
    browser = os.environ.get("TG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    driver = os.environ.get("TG_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if Path(browser).is_file() and Path(driver).is_file():
        return browser, driver
    return None


@contextmanager
def headless_chromium(*, width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A Selenium Chrome driver on a fresh profile, browser console logged; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    paths = chromium_paths()
    if paths is None:
        raise RuntimeError("chromium and chromedriver not found (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="tg-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = paths[0]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--window-size={width},{height}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=paths[1]), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@dataclass
class PageLoad:
    """What loading a report showed.

    Attributes:
        rendered_ms: navigation start to every figure drawn (``window.tgRenderedAt``).
        wall_s: seconds from ``driver.get`` to every figure drawn, seen from Python.
        plots: figure containers in the page.
        drawn: containers that hold a non-empty SVG or canvas.
        console: browser console entries (``level``, ``message``).
        resources: URLs of every resource the page fetched (none should be remote).
    """

    rendered_ms: float
    wall_s: float
    plots: int
    drawn: int
    console: list[dict[str, Any]] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [e for e in self.console if e.get("level") == "SEVERE"]


_DRAWN = """
return Array.from(document.querySelectorAll('div.plot[data-fig]')).filter(function (d) {
  var svg = d.querySelector('svg.main-svg');
  return (svg && svg.querySelectorAll('path, rect, text').length > 0) || d.querySelector('canvas') !== null;
}).length;
"""


def load_report(driver: Any, path: str | Path, *, timeout: float = 60.0) -> PageLoad:
    """Open ``path`` and wait until every figure is drawn (or ``timeout`` seconds pass)."""
    url = Path(path).resolve().as_uri()
    started = time.perf_counter()
    driver.get(url)
    deadline = started + timeout
    rendered = None
    while time.perf_counter() < deadline:
        rendered = driver.execute_script("return window.tgRenderedAt === undefined ? null : window.tgRenderedAt;")
        if rendered is not None:
            break
        time.sleep(0.01)
    wall = time.perf_counter() - started
    plots = driver.execute_script("return document.querySelectorAll('div.plot[data-fig]').length;")
    drawn = driver.execute_script(_DRAWN)
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(function (e) { return e.name; });")
    return PageLoad(rendered_ms=float("nan") if rendered is None else float(rendered), wall_s=wall, plots=int(plots),
                    drawn=int(drawn), console=list(driver.get_log("browser")), resources=list(resources))
