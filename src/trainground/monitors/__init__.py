"""Observers of a training: gradient, activation, routing and per-sample statistics. They never change anything."""

from trainground.monitors.activations import (
    ActivationMonitor,
    activation_kind,
    batch_activation_stats,
)
from trainground.monitors.base import Monitor
from trainground.monitors.gradients import (
    GradientMonitor,
    layer_norms,
    parameter_layers,
)
from trainground.monitors.history import LossHistory
from trainground.monitors.predictions import PredictionMonitor
from trainground.monitors.representation import (
    RepresentationMonitor,
    effective_rank,
    penultimate_module,
    representation_stats,
)
from trainground.monitors.routing import RoutingMonitor
from trainground.monitors.samples import SampleRecorder, read_samples, sample_statistics
from trainground.monitors.table import empty_table, long_table, stat_matrix

__all__ = [
    "ActivationMonitor",
    "GradientMonitor",
    "LossHistory",
    "Monitor",
    "PredictionMonitor",
    "RepresentationMonitor",
    "RoutingMonitor",
    "SampleRecorder",
    "activation_kind",
    "batch_activation_stats",
    "effective_rank",
    "empty_table",
    "layer_norms",
    "long_table",
    "parameter_layers",
    "penultimate_module",
    "read_samples",
    "representation_stats",
    "sample_statistics",
    "stat_matrix",
]
