"""The review page in headless Chromium against a real server process: filter, accept, change,
undo, keyboard shortcuts, export; ``kill -9`` mid-session loses no committed decision; an
HTML/JS payload in a label does not run.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them);
skipped without them, except under ``CI=true``, where it fails: CI must run it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from trainground.report.browser import headless_chromium
from trainground.review.store import ReviewStore

ARTIFACTS = Path(os.environ.get("TG_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")
pytestmark = pytest.mark.slow  # two server processes (each imports torch) and a browser


def start_server(run: Path, reviewer: str) -> tuple[subprocess.Popen, str]:
    """``trainground review RUN --port 0`` as its own process; its URL (with the token)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "400"}
    process = subprocess.Popen([sys.executable, "-m", "trainground.cli", "review", str(run), "--port", "0",
                                "--reviewer", reviewer], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        seen.append(line)
        match = re.search(r"(http://127\.0\.0\.1:\d+/\?token=[\w-]+)", line)
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
    process.kill()
    raise AssertionError("the review server did not start: " + "".join(seen))


def _rows(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "tr.sample")


def _decision_text(driver, index: int) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f"#s-{index} td.decision").text


def _wait_for(driver, condition, timeout: float = 20) -> None:
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # a decision reloads the page: elements of the old one go stale while the new one loads
    WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        lambda d: d.execute_script("return document.readyState") == "complete" and condition())


def test_review_in_headless_chromium(chromium: None, run_copy: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    process, url = start_server(run_copy, "ann")
    try:
        with headless_chromium(width=1400, height=900) as driver:
            driver.get(url + "&all=1")  # every sample: the payload labels are on the page
            assert driver.execute_script("return window.tgReviewReady === true")
            assert driver.execute_script("return window.__xss") is None
            body = driver.find_element(By.TAG_NAME, "body").text
            assert "<script>window.__xss=2</script>" in body  # shown as text
            driver.get(url)

            # filter by issue type
            Select(driver.find_element(By.ID, "f-issue")).select_by_value("label")
            driver.find_element(By.ID, "f-apply").click()
            _wait_for(driver, lambda: "issue=label" in driver.current_url)
            rows = _rows(driver)
            assert rows and all("label" in r.find_element(By.CSS_SELECTOR, "td:nth-child(6)").text for r in rows)
            first, second, third = (int(r.get_attribute("data-index")) for r in rows[:3])

            # accept by mouse
            driver.find_element(By.CSS_SELECTOR, f"#s-{first} button.accept").click()
            _wait_for(driver, lambda: "ann: accept" in _decision_text(driver, first))
            assert "issue=label" in driver.current_url  # the filter survives the decision

            # choose another label by mouse
            suggested = driver.find_element(By.CSS_SELECTOR, f"#s-{second} td.suggested").text
            select = Select(driver.find_element(By.CSS_SELECTOR, f"#s-{second} select.label"))
            other = next(o.get_attribute("value") for o in select.options if o.get_attribute("value") != suggested)
            select.select_by_value(other)
            driver.find_element(By.CSS_SELECTOR, f"#s-{second} button.relabel").click()
            _wait_for(driver, lambda: "ann: relabel" in _decision_text(driver, second))
            assert other in _decision_text(driver, second)

            # keyboard: the selection moved on to the third row; x excludes it, u undoes that
            selected = driver.find_element(By.CSS_SELECTOR, "tr.sample.selected")
            assert int(selected.get_attribute("data-index")) == third
            driver.find_element(By.TAG_NAME, "body").send_keys("x")
            _wait_for(driver, lambda: "ann: exclude" in _decision_text(driver, third))
            driver.find_element(By.TAG_NAME, "body").send_keys("u")
            _wait_for(driver, lambda: _decision_text(driver, third).strip() == "")
            # k goes back to the second row, a accepts its suggestion (replacing ann's relabel)
            driver.find_element(By.TAG_NAME, "body").send_keys("k")
            assert int(driver.find_element(By.CSS_SELECTOR, "tr.sample.selected").get_attribute("data-index")) == second
            driver.find_element(By.TAG_NAME, "body").send_keys("a")
            _wait_for(driver, lambda: "ann: accept" in _decision_text(driver, second))
            # l focuses the label menu, Enter sets it
            driver.find_element(By.TAG_NAME, "body").send_keys("l")
            active = driver.switch_to.active_element
            assert active.tag_name == "select"
            active.send_keys(Keys.ENTER)
            _wait_for(driver, lambda: "ann: relabel" in _decision_text(driver, third))

            # export, as the browser downloads it
            csv = driver.execute_async_script(
                "const done = arguments[0]; fetch('/export.csv' + location.search).then(r => r.text()).then(done, e => done('error ' + e));")
            exported = pd.read_csv(__import__("io").StringIO(csv))
            assert exported.loc[first, "label"] == driver.find_element(By.CSS_SELECTOR, f"#s-{first} td.suggested").text
            assert exported.loc[second, "label"] == suggested
            assert driver.get_log("browser") == []
            shot = tmp_path / "review.png"
            assert driver.save_screenshot(str(shot))

            # kill -9 mid-session: every decision the page showed is still there after a restart
            shown = ReviewStore(run_copy / "review.sqlite").current()
            assert set(shown) >= {first, second}
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=20)
            process, url = start_server(run_copy, "bob")
            driver.get(url + "&issue=label")
            assert "ann: accept" in _decision_text(driver, first)
            assert ReviewStore(run_copy / "review.sqlite").current() == shown
            # a second reviewer disagreeing makes a conflict, shown, not an overwrite
            driver.find_element(By.CSS_SELECTOR, f"#s-{first} button.exclude").click()
            _wait_for(driver, lambda: "bob: exclude" in _decision_text(driver, first))
            assert "ann: accept" in _decision_text(driver, first) and "conflict" in _decision_text(driver, first)

            # a request without the token is refused
            driver.get(url.split("?")[0])
            assert "403" in driver.find_element(By.TAG_NAME, "body").text
    finally:
        process.kill()
        process.wait(timeout=20)

    # the CLI's export (in this process: a second interpreter would only add its start-up time)
    from typer.testing import CliRunner

    from trainground.cli import app

    out = tmp_path / "corrected.csv"
    done = CliRunner().invoke(app, ["review", str(run_copy), "--export", str(out)])
    assert done.exit_code == 0, done.output
    assert "conflicting" in done.output
    changes = pd.read_csv(tmp_path / "corrected.changes.csv")
    assert set(changes.loc[changes["applied"], "index"]) >= {second}
    assert not changes.loc[changes["index"] == first, "applied"].any()  # ann and bob disagree on it
    again = CliRunner().invoke(app, ["review", str(run_copy), "--export", str(out)])
    assert again.exit_code == 2 and "--overwrite" in again.output and "Traceback" not in again.output
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "review.png")
