"""Explain a run: attributions (Captum) for its flagged samples and its classes."""

from trainground.explain.attribute import METHODS, attribute, top_features
from trainground.explain.run import ATTRIBUTIONS_FILE, EXPLANATIONS_FILE, ExplainConfig, explain_run, flagged_samples

__all__ = ["ATTRIBUTIONS_FILE", "EXPLANATIONS_FILE", "METHODS", "ExplainConfig", "attribute", "explain_run",
           "flagged_samples", "top_features"]
