"""Observers of a training: gradient, activation and per-sample statistics. They never change anything."""

from trainground.monitors.base import Monitor

__all__ = ["Monitor"]
