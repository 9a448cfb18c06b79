"""Observers of a training: gradient, activation and per-sample statistics. They never change anything."""

from trainground.monitors.base import Monitor
from trainground.monitors.samples import SampleRecorder, read_samples, sample_statistics

__all__ = ["Monitor", "SampleRecorder", "read_samples", "sample_statistics"]
