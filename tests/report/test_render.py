"""The page: self-contained, every section present, figures valid, size bounded."""

from __future__ import annotations

import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
from plotly.offline import get_plotlyjs

from trainground.report import read_report, render_report, top_findings, write_report
from trainground.report.repair_section import repair_tables


class _Page(HTMLParser):
    """Collects the attributes that make a browser fetch something, the tags and the scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []
        self.ids: list[str] = []
        self.plots: list[str] = []
        self.scripts: list[dict[str, str | None]] = []
        self.rows = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        for name in ("src", "href", "srcset", "data", "action", "poster"):
            if a.get(name):
                self.links.append((tag, name, a[name]))
        if tag == "link":
            self.links.append((tag, "link", a.get("href") or ""))
        if a.get("id"):
            self.ids.append(a["id"])
        if tag == "div" and "data-fig" in a:
            self.plots.append(a["data-fig"])
        if tag == "script":
            self.scripts.append(a)
        if tag == "tr" and "data-issues" in a:
            self.rows += 1


def _parse(text: str) -> _Page:
    page = _Page()
    page.feed(text)
    return page


def _figures(text: str) -> dict:
    raw = re.search(r'<script type="application/json" id="tg-figures">(.*?)</script>', text, re.DOTALL).group(1)
    return json.loads(raw)


def test_page_is_self_contained(demo_run: Path, tmp_path: Path) -> None:
    text = write_report(demo_run, tmp_path / "r.html").read_text(encoding="utf-8")
    page = _parse(text)
    # Nothing the browser would fetch: only in-page anchors and inline data: images.
    for tag, attr, value in page.links:
        assert value.startswith(("#", "data:image/png;base64,")), (tag, attr, value)
    assert all("src" not in s for s in page.scripts)  # every script inline
    assert "@import" not in text and "url(http" not in text
    assert text.count(get_plotlyjs()[:2000]) == 1  # plotly.js embedded exactly once
    assert len(page.ids) == len(set(page.ids))


def test_every_section_and_figure_of_a_diagnose_run(demo_run: Path) -> None:
    report = read_report(demo_run)
    text = render_report(report)
    page = _parse(text)
    figures = _figures(text)
    assert sorted(page.plots) == sorted(figures)
    assert {"run-curves", "run-gradients", "run-layer_grad", "run-confusion"} <= set(figures)
    for spec in figures.values():
        assert spec["data"] and "layout" in spec
    for section in ("summary", "run-training", "run-gradients", "run-layers", "run-findings", "run-samples"):
        assert f'id="{section}"' in text
    for finding in report.findings:  # every finding with its evidence and suggestion
        assert finding.message.replace("'", "&#39;") in text and finding.suggestion.replace("'", "&#39;") in text
    top = top_findings(report.findings)
    summary = text[text.index('id="summary"'):text.index('id="run-training"')]
    assert [m for m in re.findall(r"<strong>(.*?)</strong>", summary)] == [f.message.replace("'", "&#39;") for f in top]
    flagged = report.sample_issues.filter(like="is_").any(axis=1).sum()
    assert page.rows == min(200, flagged) and "sample_issues.csv" in text
    body = text[:text.index('<script type="application/json"')]  # plotly.js itself holds such strings
    assert body.count('src="data:image/png;base64,') == page.rows  # digits are images: one thumbnail a row


def test_top_rows_cap_and_the_rest_in_the_csv(demo_run: Path) -> None:
    text = render_report(read_report(demo_run), top_rows=7)
    assert _parse(text).rows == 7 and "The 7 worst are shown" in text and "are in <code>sample_issues.csv</code>" in text


def test_a_fit_run_without_sample_files_renders_with_notes(run_copy: Path) -> None:
    for name in ("sample_issues.csv", "samples.parquet", "layers.parquet", "findings.json", "model.safetensors"):
        path = run_copy / name
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    text = render_report(read_report(run_copy))
    assert "sample_issues.csv is missing" in text and "layers.parquet is missing" in text
    assert set(_figures(text)) == {"run-curves", "run-gradients"}


def test_repair_folder_page(repair_folder: Path) -> None:
    report = read_report(repair_folder)
    text = render_report(report)
    figures = _figures(text)
    assert "repair-rounds" in figures and "r0-confusion" in figures and "best-curves" in figures
    assert "best-confusion" not in figures  # the best round shows training, not the sample table again
    assert "71.0 %" in text and "95.0 %" in text  # before and after
    changes = pd.read_csv(repair_folder / "changes.csv")
    assert f"{len(changes):,} samples changed" in text and "class_weights" in text
    page = _parse(text)
    assert len(page.ids) == len(set(page.ids))


def test_repair_changes_show_the_strongest_evidence_first(repair_folder: Path) -> None:
    # Scores are in [0, 1] with low = bad (CheckResult's convention): the lowest come first.
    report = read_report(repair_folder)
    tables = repair_tables(report, limit=5)
    score_at = [c.key for c in tables.change_columns].index("score")
    shown = [float(cells[score_at].text) for _, cells in tables.changes]
    lowest = sorted(pd.read_csv(repair_folder / "changes.csv")["score"])[:5]
    assert shown == [round(v, 3) for v in lowest]


def test_size_stays_bounded_for_long_runs(run_copy: Path) -> None:
    # 40x the steps of the demo run: the page grows by the decimated series only.
    lines = (run_copy / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    steps = [json.loads(line) for line in lines if '"kind": "step"' in line]
    with open(run_copy / "metrics.jsonl", "a", encoding="utf-8") as fh:
        for k in range(1, 40):
            fh.writelines(json.dumps({**record, "step": record["step"] + k * len(steps)}) + "\n" for record in steps)
    small = len(render_report(read_report(run_copy), top_rows=10))
    assert small < len(get_plotlyjs()) + 1_000_000


def test_evidence_keeps_indices_plain_and_cuts_long_lists() -> None:
    from trainground.report.render import evidence_items

    items = dict(evidence_items({"indices": list(range(1000, 1020)), "share": 0.184411, "n": 1437, "why": "x"}))
    assert items["indices"].startswith("[1000, 1001") and items["indices"].endswith("... (20 in all)]")
    assert items["share"] == "0.1844" and items["n"] == "1437" and items["why"] == "x"
