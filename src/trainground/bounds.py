"""Allowed ranges of numeric config fields, declared on the field's type.

``lr: Annotated[float, Range(gt=0)] = 1e-3`` reads as the field's contract; the config
reader (``engine/config_io.py``) checks it when a YAML file is loaded and names the file,
section and key of a value outside it. A plain ``float`` still type-checks the same.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Range:
    """Bounds of a number: ``gt``/``ge`` below, ``lt``/``le`` above (None: unbounded)."""

    gt: float | None = None
    ge: float | None = None
    lt: float | None = None
    le: float | None = None

    def violation(self, value: float) -> str | None:
        """Why ``value`` is outside the range ("must be > 0"), or None when it is inside."""
        if value != value:  # NaN is outside every range
            return f"must be a number, got {value}"
        for bound, holds in ((self.gt, lambda b: value > b), (self.ge, lambda b: value >= b),
                            (self.lt, lambda b: value < b), (self.le, lambda b: value <= b)):
            if bound is not None and not holds(bound):
                return f"must be {self.describe()}, got {value}"
        return None

    def describe(self) -> str:
        low = f"> {self.gt:g}" if self.gt is not None else f">= {self.ge:g}" if self.ge is not None else ""
        high = f"< {self.lt:g}" if self.lt is not None else f"<= {self.le:g}" if self.le is not None else ""
        return " and ".join(p for p in (low, high) if p)


# The ranges most fields share.
POSITIVE = Range(gt=0)
AT_LEAST_ONE = Range(ge=1)
NON_NEGATIVE = Range(ge=0)
FRACTION = Range(ge=0, lt=1)  # a share of something that must leave a rest (val split, dropout)
PROBABILITY = Range(ge=0, le=1)
