"""Built-in checks, one module per check; importing this package registers them all."""

from trainground.diagnosis.checks import (  # noqa: F401
    ambiguous,
    class_imbalance,
    data_preparation,
    dead_units,
    distribution_shift,
    exploding_gradients,
    frozen_layer,
    label_issues,
    loss_spikes,
    lr_too_high,
    lr_too_low,
    near_duplicates,
    oscillating_loss,
    outliers,
    overfitting,
    plateau,
    representation_collapse,
    saturated_activations,
    underperforming_groups,
    vanishing_gradients,
)
