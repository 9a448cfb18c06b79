"""Built-in repair policies, one module each; importing this package registers them."""

# data policies (one import per line: the training policies are added beside them)
from trainground.repair.policies import drop_duplicates  # noqa: F401
from trainground.repair.policies import quarantine  # noqa: F401
from trainground.repair.policies import rebalance  # noqa: F401
from trainground.repair.policies import relabel  # noqa: F401
from trainground.repair.policies import reweight  # noqa: F401
