"""Built-in repair policies, one module each; importing this package registers them."""

# training policies (repair-train)
from trainground.repair.policies import (  # noqa: F401
    lower_lr,
    raise_lr,
    reinit_dead_units,
    reinit_saturated,
    rollback,
    swap_dead_relu,
    task_weights,
    tighten_clip,
)
