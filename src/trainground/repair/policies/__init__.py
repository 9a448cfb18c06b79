"""Built-in repair policies, one module each; importing this package registers them.

Data policies: drop_duplicates, quarantine, rebalance, relabel, reweight.
Training policies: loosen_clip, lower_lr, raise_lr, reinit_dead_units, reinit_saturated, rollback,
swap_dead_relu, task_weights, tighten_clip.
"""

from trainground.repair.policies import (  # noqa: F401
    drop_duplicates,
    loosen_clip,
    lower_lr,
    quarantine,
    raise_lr,
    rebalance,
    reinit_dead_units,
    reinit_saturated,
    relabel,
    reweight,
    rollback,
    swap_dead_relu,
    task_weights,
    tighten_clip,
)
