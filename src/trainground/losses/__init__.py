"""Losses: weighted, focal, label-smoothed, hierarchical and multi-task cross-entropy."""
