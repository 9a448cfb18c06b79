"""The "explanations" section: what ``explanations.json`` (``trainground explain``) says.

Read as a file: the report never imports ``explain/``. Per class, the features (or image
regions) that push the model towards it; per flagged sample, its attribution under the
label it carries against the label suggested, i.e. why it is suspected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from trainground.report.summary import fmt


@dataclass
class ExplainedSample:
    """One flagged sample: index, labels, why, and (images) heatmap overlays as data URIs."""

    index: int
    given: str
    suggested: str
    why: str
    given_top: list[tuple[str, str]] = field(default_factory=list)
    suggested_top: list[tuple[str, str]] = field(default_factory=list)
    thumbnail: str = ""
    heatmap_given: str = ""
    heatmap_suggested: str = ""


@dataclass
class ExplanationsView:
    """Method, per-class top features (tables) or mean heatmaps (images), explained samples."""

    method: str
    kind: str
    per_class: list[tuple[str, list[tuple[str, str]], str]] = field(default_factory=list)
    samples: list[ExplainedSample] = field(default_factory=list)
    sanity: list[tuple[str, str]] = field(default_factory=list)

    def why(self) -> dict[int, str]:
        """Sample index -> one line of why it is suspected (for the sample table)."""
        return {s.index: s.why for s in self.samples}


def _top(items: list[dict[str, Any]] | None) -> list[tuple[str, str]]:
    return [(str(i["feature"]), f"{i['value']:+.3g}") for i in (items or [])]


def explanations_view(record: dict[str, Any]) -> ExplanationsView:
    """The view of ``explanations.json``."""
    view = ExplanationsView(method=str(record.get("method", "")), kind=str(record.get("kind", "")))
    for entry in record.get("per_class") or []:
        view.per_class.append((str(entry.get("class")), _top(entry.get("top")), str(entry.get("heatmap", ""))))
    for s in record.get("samples") or []:
        view.samples.append(ExplainedSample(
            index=int(s["index"]), given=str(s.get("given")), suggested=str(s.get("suggested")),
            why=str(s.get("why", "")), given_top=_top(s.get("given_top")), suggested_top=_top(s.get("suggested_top")),
            thumbnail=str(s.get("thumbnail", "")), heatmap_given=str(s.get("heatmap_given", "")),
            heatmap_suggested=str(s.get("heatmap_suggested", "")),
        ))
    for key, value in (record.get("sanity") or {}).items():
        view.sanity.append((str(key), fmt(value) if isinstance(value, int | float) else str(value)))
    return view
