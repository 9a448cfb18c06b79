"""Built-in checks, one module per check; importing this package registers them all."""

from trainground.diagnosis.checks import (  # noqa: F401
    ambiguous,
    class_imbalance,
    label_issues,
    near_duplicates,
    outliers,
    underperforming_groups,
)
