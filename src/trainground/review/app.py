"""The review web application (FastAPI, server-side jinja2 templates, a little inline JavaScript).

Every request must carry the session's token (``?token=`` or the ``X-Review-Token``
header), else 403. Pages are rendered with autoescaping: labels, column names and
file names come from the user's data and are shown as text, never run. Actions are plain
HTML forms (POST, then a redirect back), so the page works by mouse without any script;
the script only adds keyboard shortcuts. Files are served by sample index only.
"""

from __future__ import annotations

import math
import secrets
from typing import Any
from urllib.parse import urlencode

import jinja2
import pandas as pd
from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from trainground.review.evidence import Evidence
from trainground.review.export import changes_frame, corrected_frame
from trainground.review.run import ReviewRun
from trainground.review.store import PAGE_SIZE, ReviewStore, conflicting

REVIEWER_COOKIE = "tg_reviewer"
_FILTERS = ("issue", "cls", "max_score", "status", "all", "page")

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("trainground.review", "templates"),
    autoescape=True,  # every template, whatever its name: values come from user data
    undefined=jinja2.StrictUndefined,
)


def new_token() -> str:
    return secrets.token_urlsafe(24)


def clean_reviewer(name: str | None) -> str:
    """A reviewer name as stored: printable, trimmed, at most 64 characters."""
    text = "".join(ch for ch in (name or "") if ch.isprintable()).strip()
    return text[:64]


def create_app(run: ReviewRun, store: ReviewStore, evidence: Evidence, *, token: str, reviewer: str) -> FastAPI:
    """The application serving one review (``token`` guards every request)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    repair_changes = _repair_changes(run)

    @app.middleware("http")
    async def require_token(request: Request, call_next: Any) -> Response:
        given = request.query_params.get("token") or request.headers.get("x-review-token") or ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            return PlainTextResponse("403: this review needs the token printed when it started", status_code=403)
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; connect-src 'self'; img-src 'self' data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL: never send it on
        return response

    def who(request: Request) -> str:
        return clean_reviewer(request.cookies.get(REVIEWER_COOKIE)) or reviewer

    def url(path: str, **params: Any) -> str:
        query = {k: v for k, v in params.items() if v not in (None, "", False)}
        return f"{path}?{urlencode({'token': token, **query})}"

    def render(name: str, **context: Any) -> HTMLResponse:
        return HTMLResponse(_templates.get_template(name).render(url=url, token=token, **context))

    @app.get("/", response_class=HTMLResponse)
    def index(request: Request, issue: str = "", cls: str = "", max_score: str = "", status: str = "",
              all: str = "", page: int = 0) -> Response:  # noqa: A002 - the query parameter's name
        score = _float(max_score)
        try:
            rows, total = store.page(issue=issue, given=cls, max_score=score, status=status, flagged_only=not all,
                                     page=page)
        except ValueError as err:
            return PlainTextResponse(str(err), status_code=400)
        indices = [int(r["idx"]) for r in rows]
        decisions = store.current(indices)
        thumbs, thumb_note = evidence.thumbnails(indices) if rows else ({}, None)
        filters = {"issue": issue, "cls": cls, "max_score": max_score, "status": status, "all": all, "page": page}
        for p, row in enumerate(rows):
            row["issues"] = [i for i in store.issues if row.get(f"f_{i}")]
            row["decisions"] = decisions.get(int(row["idx"]), [])
            row["conflict"] = conflicting(row["decisions"])
            row["thumb"] = thumbs.get(int(row["idx"]))
            row["next"] = rows[p + 1]["idx"] if p + 1 < len(rows) else row["idx"]
        return render(
            "review.html.j2", rows=rows, total=total, page=page, pages=max(1, math.ceil(total / PAGE_SIZE)),
            filters=filters, issues=store.issues, classes=store.classes, counts=store.counts(), reviewer=who(request),
            folder=run.folder.name, thumb_note=thumb_note,
        )

    @app.get("/sample/{index}", response_class=HTMLResponse)
    def sample(request: Request, index: int) -> Response:
        row = store.sample(index)
        if row is None:
            return PlainTextResponse(f"no sample {index} in this run", status_code=404)
        near = evidence.neighbours(index)
        near_rows = [(store.sample(i) or {"idx": i}, sim) for i, sim in near]
        thumbs, thumb_note = evidence.thumbnails([index, *(i for i, _ in near)])
        heat_image, heat_features = evidence.heatmap(index)
        current = store.current([index]).get(index, [])
        return render(
            "sample.html.j2", row=row, issues=store.issues, classes=store.classes, reviewer=who(request),
            folder=run.folder.name, thumbs=thumbs, thumb_note=thumb_note, neighbours=near_rows,
            space=evidence.space.kind if evidence.space else None, space_ready=evidence.ready,
            space_error=evidence.space_error, features=evidence.feature_values(index), heat_image=heat_image,
            heat_features=heat_features, decisions=current, conflict=conflicting(current),
            history=store.history(index), repair=repair_changes.get(index, []),
        )

    @app.post("/decide")
    def decide(request: Request, sample: int = Form(...), action: str = Form(...), label: str = Form(""),
               focus: str = Form(""), back: str = Form("list"), issue: str = Form(""), cls: str = Form(""),
               max_score: str = Form(""), status: str = Form(""), all: str = Form(""),  # noqa: A002
               page: int = Form(0)) -> Response:
        try:
            store.decide(sample=sample, reviewer=who(request), action=action, new_label=label or None)
        except KeyError:
            return PlainTextResponse(f"no sample {sample} in this run", status_code=404)
        except ValueError as err:
            return PlainTextResponse(str(err), status_code=400)
        return _back(back, sample, focus, issue=issue, cls=cls, max_score=max_score, status=status, all=all, page=page)

    @app.post("/undo")
    def undo(request: Request, sample: str = Form(""), focus: str = Form(""), back: str = Form("list"),
             issue: str = Form(""), cls: str = Form(""), max_score: str = Form(""), status: str = Form(""),
             all: str = Form(""), page: int = Form(0)) -> Response:  # noqa: A002
        target = int(sample) if sample.strip().lstrip("-").isdigit() else None
        undone = store.undo(reviewer=who(request), sample=target)
        where = focus or (str(undone.sample) if undone is not None else "")
        return _back(back, target, where, issue=issue, cls=cls, max_score=max_score, status=status, all=all, page=page)

    @app.post("/reviewer")
    def set_reviewer(name: str = Form("")) -> Response:
        response = RedirectResponse(url("/"), status_code=303)
        name = clean_reviewer(name)
        if name:
            response.set_cookie(REVIEWER_COOKIE, name, httponly=True, samesite="strict", max_age=30 * 24 * 3600)
        return response

    @app.get("/export.csv")
    def export_csv() -> Response:
        table = corrected_frame(run, store)
        return Response(table.to_csv(index=False), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="corrected.csv"'})

    @app.get("/changes.csv")
    def changes_csv() -> Response:
        return Response(changes_frame(store).to_csv(index=False), media_type="text/csv",
                        headers={"Content-Disposition": 'attachment; filename="corrected.changes.csv"'})

    def _back(back: str, sample: int | None, focus: str, **filters: Any) -> Response:
        if back == "sample" and sample is not None:
            return RedirectResponse(url(f"/sample/{int(sample)}"), status_code=303)
        anchor = f"#s-{int(focus)}" if focus.strip().lstrip("-").isdigit() else ""
        return RedirectResponse(url("/", **{k: v for k, v in filters.items() if v}) + anchor, status_code=303)

    return app


def _float(text: str) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _repair_changes(run: ReviewRun) -> dict[int, list[dict[str, Any]]]:
    """What the automatic repair did to each sample (a repair folder's ``changes.csv``), by index."""
    if run.changes is None:
        return {}
    try:
        frame = pd.read_csv(run.changes, dtype=str, keep_default_na=False)
    except Exception:  # noqa: BLE001 - an unreadable changes.csv costs that line of evidence only
        return {}
    out: dict[int, list[dict[str, Any]]] = {}
    for record in frame.to_dict("records"):
        try:
            out.setdefault(int(record.get("index", "")), []).append(record)
        except ValueError:
            continue
    return out
