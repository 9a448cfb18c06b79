"""Built-in checks, one module per check; importing this package registers them all."""

from trainground.diagnosis.checks import (  # noqa: F401
    dead_units,
    distribution_shift,
    exploding_gradients,
    frozen_layer,
    loss_spikes,
    lr_too_high,
    lr_too_low,
    oscillating_loss,
    overfitting,
    plateau,
    representation_collapse,
    saturated_activations,
    vanishing_gradients,
)
