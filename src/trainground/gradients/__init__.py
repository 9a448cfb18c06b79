"""Gradient transforms and the Guard: clipping, accumulation, AMP, spike skip and rollback."""

from trainground.gradients.actions import ActionLog, read_actions
from trainground.gradients.agc import AdaptiveClip, adaptive_clip_
from trainground.gradients.chain import Chain, chain
from trainground.gradients.config import GuardConfig
from trainground.gradients.context import (
    GradContext,
    GradientTransform,
    HostContext,
    global_norm,
)
from trainground.gradients.global_norm import ClipByGlobalNorm, clip_by_global_norm_
from trainground.gradients.guard import Guard
from trainground.gradients.noise_scale import NoiseScale, noise_scale_terms
from trainground.gradients.norm_thresholds import DynamicClipConfig, NormThresholds
from trainground.gradients.percentile import PercentileClip, percentile_clip_
from trainground.gradients.secant import (
    SecantTrustRegion,
    secant_ratio,
    trust_scale_update,
)
from trainground.gradients.spike import SpikeSkip, spike_keep
from trainground.gradients.stats import GradientStats, layer_norms
from trainground.gradients.task_config import TaskGradientConfig
from trainground.gradients.tasks import TaskGradients
from trainground.gradients.value import ClipByValue, clip_by_value_
from trainground.gradients.zscore import ZScoreClip, zscore_clip_

__all__ = [
    "ActionLog", "AdaptiveClip", "Chain", "ClipByGlobalNorm", "ClipByValue", "DynamicClipConfig", "GradContext",
    "GradientStats", "GradientTransform", "Guard", "GuardConfig", "HostContext", "NoiseScale", "NormThresholds",
    "PercentileClip", "SecantTrustRegion",
    "SpikeSkip", "TaskGradientConfig", "TaskGradients",
    "ZScoreClip", "adaptive_clip_", "chain", "clip_by_global_norm_", "clip_by_value_", "global_norm", "layer_norms",
    "noise_scale_terms", "percentile_clip_", "read_actions", "secant_ratio", "spike_keep", "trust_scale_update",
    "zscore_clip_",
]
