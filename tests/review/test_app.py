"""The review application through FastAPI's TestClient: token, listing, filters, decisions, undo,
two reviewers, escaping, export."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from trainground.review.app import REVIEWER_COOKIE, create_app
from trainground.review.export import export
from trainground.review.serve import open_session

TOKEN = "test-token"


def _client(run: Path, reviewer: str = "ann") -> tuple[TestClient, object]:
    session = open_session(run)
    app = create_app(session.run, session.store, session.evidence, token=TOKEN, reviewer=reviewer)
    return TestClient(app, follow_redirects=False), session


def _rows(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr class="sample[^"]*" id="s-(\d+)"', html)]


def test_every_request_needs_the_token(run_copy: Path) -> None:
    client, session = _client(run_copy)
    for method, path in (("get", "/"), ("get", "/sample/0"), ("get", "/export.csv"), ("post", "/decide"),
                         ("post", "/undo")):
        for query in ("", "?token=wrong", "?token="):
            response = getattr(client, method)(path + query)
            assert response.status_code == 403, (method, path, query)
    assert client.post("/decide?token=nope", data={"sample": 0, "action": "keep"}).status_code == 403
    assert session.store.current() == {}
    assert client.get(f"/?token={TOKEN}").status_code == 200
    assert client.get("/", headers={"X-Review-Token": TOKEN}).status_code == 200


def test_lists_flagged_samples_worst_first_and_filters(run_copy: Path) -> None:
    client, session = _client(run_copy)
    table = pd.read_csv(run_copy / "sample_issues.csv")
    flags = [c for c in table.columns if c.startswith("is_") and c.endswith("_issue")]
    flagged = table[table[flags].any(axis=1)]
    page = client.get(f"/?token={TOKEN}").text
    rows = _rows(page)
    assert len(rows) == min(50, len(flagged)) and set(rows) <= set(flagged["index"])
    worst = [session.store.sample(i)["worst"] for i in rows]
    assert worst == sorted(worst)
    label_flagged = set(table.loc[table["is_label_issue"], "index"])
    only = _rows(client.get(f"/?token={TOKEN}&issue=label").text)
    assert only and set(only) <= label_flagged
    given = str(flagged["given_label"].iloc[0])
    by_class = _rows(client.get("/", params={"token": TOKEN, "cls": given}).text)
    assert by_class and all(session.store.sample(i)["given"] == given for i in by_class)
    low = _rows(client.get(f"/?token={TOKEN}&max_score=0.2").text)
    assert all(session.store.sample(i)["worst"] <= 0.2 for i in low)
    assert client.get(f"/?token={TOKEN}&issue=nonsense").status_code == 400


def test_decide_undo_and_resume(run_copy: Path) -> None:
    client, session = _client(run_copy)
    first = _rows(client.get(f"/?token={TOKEN}").text)[0]
    row = session.store.sample(first)
    response = client.post(f"/decide?token={TOKEN}", data={"sample": first, "action": "accept", "focus": first})
    assert response.status_code == 303 and f"token={TOKEN}" in response.headers["location"]
    assert response.headers["location"].endswith(f"#s-{first}")
    other = next(c for c in session.store.classes if c != row["suggested"])
    client.post(f"/decide?token={TOKEN}", data={"sample": first, "action": "relabel", "label": other})
    (decision,) = session.store.current([first])[first]
    assert (decision.reviewer, decision.action, decision.old_label, decision.new_label) == ("ann", "relabel",
                                                                                           row["given"], other)
    client.post(f"/undo?token={TOKEN}", data={})
    (decision,) = session.store.current([first])[first]
    assert (decision.action, decision.new_label) == ("accept", row["suggested"])
    # a new server on the same folder (a restart) finds every decision and the full history
    again = open_session(run_copy)
    assert [d.action for d in again.store.current([first])[first]] == ["accept"]
    assert [h["action"] for h in again.store.history(first)] == ["accept", "relabel"]
    assert again.store.history(first)[1]["undone_at"] is not None
    assert client.post(f"/decide?token={TOKEN}", data={"sample": first, "action": "relabel",
                                                       "label": "no such class"}).status_code == 400
    assert client.post(f"/decide?token={TOKEN}", data={"sample": 10**9, "action": "keep"}).status_code == 404


def test_two_reviewers_conflict_is_shown_and_not_applied(run_copy: Path, tmp_path: Path) -> None:
    client, session = _client(run_copy)
    first, second = _rows(client.get(f"/?token={TOKEN}").text)[:2]
    client.post(f"/decide?token={TOKEN}", data={"sample": first, "action": "exclude"})
    client.post(f"/decide?token={TOKEN}", data={"sample": second, "action": "keep"})
    bob = TestClient(client.app, follow_redirects=False, cookies={REVIEWER_COOKIE: "bob"})
    bob.post(f"/decide?token={TOKEN}", data={"sample": first, "action": "keep"})
    bob.post(f"/decide?token={TOKEN}", data={"sample": second, "action": "keep"})
    current = session.store.current([first, second])
    assert {d.reviewer for d in current[first]} == {"ann", "bob"}  # nobody's decision was overwritten
    applied, conflicts = session.store.effective()
    assert first in conflicts and second in applied
    page = client.get(f"/?token={TOKEN}").text
    row = page[page.index(f'id="s-{first}"'):]
    assert 'class="conflict"' in row[:row.index("</tr>")]
    done = export(session.run, session.store, tmp_path / "corrected.csv")
    changes = pd.read_csv(done.changes)
    assert not changes.loc[changes["index"] == first, "applied"].any()
    assert len(pd.read_csv(done.table)) == 240  # the conflicting exclusion was not applied


def test_labels_and_column_names_are_escaped(run_copy: Path) -> None:
    client, session = _client(run_copy)
    page = client.get(f"/?token={TOKEN}&all=1").text
    assert "<script>window.__xss" not in page and "<img src=x onerror" not in page
    assert "&lt;script&gt;window.__xss=2&lt;/script&gt;" in page
    detail = client.get(f"/sample/{_rows(page)[0]}?token={TOKEN}").text
    assert "<b>1</b>" not in detail and "x&lt;b&gt;1&lt;/b&gt;" in detail


def test_export_applies_decisions_and_never_overwrites(run_copy: Path, tmp_path: Path) -> None:
    client, session = _client(run_copy)
    rows = _rows(client.get(f"/?token={TOKEN}&issue=label").text)
    accepted, excluded = rows[0], rows[1]
    client.post(f"/decide?token={TOKEN}", data={"sample": accepted, "action": "accept"})
    client.post(f"/decide?token={TOKEN}", data={"sample": excluded, "action": "exclude"})
    source = pd.read_csv(session.run.source)
    out = tmp_path / "corrected.csv"
    done = export(session.run, session.store, out)
    corrected = pd.read_csv(out)
    assert len(corrected) == len(source) - 1 and list(corrected.columns) == list(source.columns)
    expected = source.drop(index=excluded)
    expected.loc[accepted, "label"] = session.store.sample(accepted)["suggested"]
    pd.testing.assert_frame_equal(corrected, expected.reset_index(drop=True))
    changes = pd.read_csv(done.changes)
    assert set(changes["index"]) == {accepted, excluded} and changes["applied"].all()
    assert set(changes["reviewer"]) == {"ann"}
    from trainground.errors import RunDirError

    with pytest.raises(RunDirError, match="--overwrite"):
        export(session.run, session.store, out)
    export(session.run, session.store, out, overwrite=True)
    with pytest.raises(RunDirError, match="data source"):
        export(session.run, session.store, session.run.source, overwrite=True)
    # the same table over HTTP
    assert client.get(f"/export.csv?token={TOKEN}").text == out.read_text()


def test_decisions_file_is_listed_and_a_foreign_one_refused(run_copy: Path) -> None:
    import json

    open_session(run_copy)
    entries = json.loads((run_copy / ".trainground-run.json").read_text())["entries"]
    assert {"review.sqlite", "review.sqlite-wal", "review.sqlite-shm"} <= set(entries)
    manifest = json.loads((run_copy / ".trainground-run.json").read_text())
    manifest["entries"] = [e for e in entries if not e.startswith("review.sqlite")]
    (run_copy / ".trainground-run.json").write_text(json.dumps(manifest))
    from trainground.errors import RunDirError

    with pytest.raises(RunDirError, match="not the review file"):
        open_session(run_copy)


def test_sample_page_shows_neighbours_in_the_models_representation(run_copy: Path) -> None:
    client, session = _client(run_copy)
    session.evidence.load()  # what the server does in a background thread
    assert session.evidence.space is not None and "model" in session.evidence.space.kind
    table = pd.read_csv(run_copy / "sample_issues.csv")
    suggested = dict(zip(table["index"], table["suggested_label"].astype(str), strict=True))
    agree = [sum(suggested[j] == suggested[i] for j, _ in session.evidence.neighbours(int(i))) / 8
             for i in table["index"]]
    # three well separated classes: a sample's neighbours share its suggested label far above chance (1/3)
    assert sum(agree) / len(agree) > 0.8
    index = int(table["index"].iloc[0])
    page = client.get(f"/sample/{index}?token={TOKEN}").text
    assert page.count('<a href="/sample/') == 8 and "penultimate layer" in page
    assert 'id="features"' in page  # a table's feature values
    assert client.get(f"/sample/{10**9}?token={TOKEN}").status_code == 404
    assert client.get(f"/sample/..%2F..%2Fetc%2Fpasswd?token={TOKEN}").status_code in (404, 422)  # indices only


def test_cli_refuses_bad_input_in_one_line(tmp_path: Path, run_copy: Path) -> None:
    from typer.testing import CliRunner

    from trainground.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["review", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such run directory" in missing.output
    (tmp_path / "empty").mkdir()
    empty = runner.invoke(app, ["review", str(tmp_path / "empty")])
    assert empty.exit_code == 2 and "sample_issues.csv" in empty.output and "Traceback" not in empty.output
    into_source = runner.invoke(app, ["review", str(run_copy), "--export", str(open_session(run_copy).run.source),
                                      "--overwrite"])
    assert into_source.exit_code == 2 and "data source" in into_source.output


def test_a_repair_folder_is_reviewed_from_its_round_0(table_run: Path, tmp_path: Path) -> None:
    import json
    import shutil

    folder = tmp_path / "repair"
    folder.mkdir()
    shutil.copytree(table_run, folder / "round_0")
    shutil.copy(table_run / "config.yaml", folder / "config.yaml")
    table = pd.read_csv(table_run / "sample_issues.csv")
    flagged = table[table["is_label_issue"]].head(3)
    pd.DataFrame({"index": flagged["index"], "action": "relabel", "old_label": flagged["given_label"],
                  "new_label": flagged["suggested_label"], "score": 0.1, "reason": "label issue"}
                 ).to_csv(folder / "changes.csv", index=False)
    (folder / "metrics.json").write_text(json.dumps({"rounds": [{"round": 0, "run_dir": "round_0"}]}))
    client, session = _client(folder)
    assert session.run.issues == folder / "round_0" / "sample_issues.csv" and session.run.db.parent == folder
    index = int(flagged["index"].iloc[0])
    page = client.get(f"/sample/{index}?token={TOKEN}").text
    assert "automatic repair: relabel" in page


def test_attributions_are_shown_when_an_explanations_file_exists(run_copy: Path) -> None:
    import json

    index = int(pd.read_csv(run_copy / "sample_issues.csv")["index"].iloc[0])
    top = [{"feature": "x2", "value": -2.0}, {"feature": "x3", "value": 0.5}, {"feature": "x<b>1</b>", "value": 0.1}]
    record = {"method": "integrated_gradients", "per_class": [],
              "samples": [{"index": index, "suggested_top": top, "heatmap_suggested": "javascript:alert(1)"}]}
    (run_copy / "explanations.json").write_text(json.dumps(record))  # the format trainground explain writes
    client, _ = _client(run_copy)
    page = client.get(f"/sample/{index}?token={TOKEN}").text
    section = page[page.index("largest attributions"):]
    assert section.index("x2") < section.index("x3") < section.index("x&lt;b&gt;1&lt;/b&gt;")  # as explain ranked them
    assert "javascript:alert" not in page  # only PNG data URIs reach an img src


def test_two_reviewers_writing_at_once_lose_nothing(run_copy: Path) -> None:
    import threading

    session = open_session(run_copy)
    samples = [int(i) for i in pd.read_csv(run_copy / "sample_issues.csv")["index"].iloc[:60]]

    def review(name: str) -> None:
        store = type(session.store)(session.run.db)  # its own store and connections, as a second server has
        for i in samples:
            store.decide(sample=i, reviewer=name, action="keep")

    threads = [threading.Thread(target=review, args=(name,)) for name in ("ann", "bob")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    current = session.store.current()
    assert all({d.reviewer for d in current[i]} == {"ann", "bob"} for i in samples)
