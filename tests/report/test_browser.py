"""The demo's report in headless Chromium: no JavaScript error, every plot drawn, the table
sorts and filters, no network request; a screenshot is kept as a test artifact.

Needs the Debian packages ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them).
Without them the test is skipped, except under ``CI=true``, where it fails: CI must run it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path


from trainground.report import write_report
from trainground.report.browser import headless_chromium, load_report

ARTIFACTS = Path(os.environ.get("TG_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "artifacts")


def _click(driver, element) -> None:
    # a real click, in view first (the table sits far down the page; the page scrolls smoothly)
    driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element)
    element.click()


_COLUMN = "return Array.from(document.getElementById(arguments[0]).tBodies[0].rows).map(r => r.cells[arguments[1]].dataset.sort);"


def test_demo_report_in_headless_chromium(chromium: None, demo_run: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    page = write_report(demo_run, tmp_path / "report.html")
    with headless_chromium(width=1400, height=1000) as driver:
        load = load_report(driver, page, timeout=60)
        assert load.errors == [], load.errors
        assert load.plots >= 5 and load.drawn == load.plots, (load.plots, load.drawn)
        assert load.rendered_ms == load.rendered_ms  # not NaN: the page said it finished drawing
        assert not [r for r in load.resources if not r.startswith(("data:", "file:", "blob:", "about:"))]

        headers = driver.find_elements(By.CSS_SELECTOR, "#run-table thead th")
        labels = [h.text.strip() for h in headers]
        index_col, score_col = labels.index("index"), labels.index("label score")
        before = [float(v) for v in driver.execute_script(_COLUMN, "run-table", index_col)]
        _click(driver, headers[index_col])
        ascending = [float(v) for v in driver.execute_script(_COLUMN, "run-table", index_col)]
        assert ascending == sorted(before) and ascending != before
        _click(driver, headers[index_col])
        assert [float(v) for v in driver.execute_script(_COLUMN, "run-table", index_col)] == sorted(before, reverse=True)
        _click(driver, headers[score_col])
        scores = [float(v) for v in driver.execute_script(_COLUMN, "run-table", score_col)]
        assert scores == sorted(scores)
        assert headers[score_col].get_attribute("aria-sort") == "ascending"

        Select(driver.find_element(By.ID, "run-filter")).select_by_value("outlier")
        rows = driver.find_elements(By.CSS_SELECTOR, "#run-table tbody tr")
        visible = [r for r in rows if r.is_displayed()]
        assert 0 < len(visible) < len(rows)
        assert all("outlier" in r.get_attribute("data-issues").split() for r in visible)
        Select(driver.find_element(By.ID, "run-filter")).select_by_value("")

        assert driver.get_log("browser") == []  # clicking raised nothing either
        driver.execute_script("window.scrollTo(0, 0);")
        height = driver.execute_script("return document.documentElement.scrollHeight;")
        driver.set_window_size(1400, min(int(height), 9000))
        shot = tmp_path / "report.png"
        assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")
    shutil.copy(page, ARTIFACTS / "report.html")


def test_explanations_in_headless_chromium(chromium: None, run_copy: Path, tmp_path: Path) -> None:
    """The explanations section and the sample table's "why suspected" column, drawn and offline."""
    from selenium.webdriver.common.by import By

    from trainground.explain import ExplainConfig, explain_run

    explain_run(run_copy, config=ExplainConfig(samples=10, per_class=20))
    page = write_report(run_copy, tmp_path / "report.html")
    with headless_chromium(width=1400, height=1000) as driver:
        load = load_report(driver, page, timeout=60)
        assert load.errors == [], load.errors
        assert not [r for r in load.resources if not r.startswith(("data:", "file:", "blob:", "about:"))]
        section = driver.find_element(By.ID, "run-explanations")
        driver.execute_script("arguments[0].scrollIntoView({block: 'start', behavior: 'instant'});", section)
        images = section.find_elements(By.CSS_SELECTOR, "img")
        assert len(images) >= 10 + 3 * 10  # a mean heatmap per digit class; image and two heatmaps per sample
        assert all(driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", i)
                   for i in images)
        rows = section.find_elements(By.CSS_SELECTOR, "table.explain-samples tbody tr")
        assert len(rows) == 10 and all("logit units" in r.text for r in rows)
        headers = [h.text.strip() for h in driver.find_elements(By.CSS_SELECTOR, "#run-table thead th")]
        assert "why suspected (attribution)" in headers
        why = headers.index("why suspected (attribution)")
        cells = driver.execute_script(_COLUMN, "run-table", why)
        assert sum(bool(c) for c in cells) == 10  # the explained samples, and only those
        assert driver.get_log("browser") == []
        shot = tmp_path / "explanations.png"
        assert driver.save_screenshot(str(shot))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "explanations.png")
