"""Human review of the flagged samples of a run: a local web page, decisions kept in SQLite.

``trainground review RUN_DIR`` serves it (:func:`~trainground.review.serve.serve`);
``--export corrected.csv`` writes the input table with the decisions applied
(:func:`~trainground.review.export.export`), and ``trainground repair --decisions`` takes
the decisions as fixed labels.
"""

from trainground.review.export import Exported, export
from trainground.review.run import ReviewRun, open_review_run
from trainground.review.store import Decision, ReviewStore

__all__ = ["Decision", "Exported", "ReviewRun", "ReviewStore", "export", "open_review_run"]
