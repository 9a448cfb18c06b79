"""Built-in repair policies, one module each; importing this package registers them."""

# data policies (one import per line: the training policies are added beside them)
from trainground.repair.policies import (
    drop_duplicates,  # noqa: F401
    quarantine,  # noqa: F401
    rebalance,  # noqa: F401
    relabel,  # noqa: F401
    reweight,  # noqa: F401
)
