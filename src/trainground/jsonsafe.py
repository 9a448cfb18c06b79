"""One conversion of Python, NumPy and torch values to what ``json.dumps`` writes as valid JSON.

JSON has no NaN or infinity: a non-finite float becomes ``null`` ("not a number", and the
line stays readable by every JSON parser), or its text (``"inf"``, ``"nan"``) where a reader
shows the value to a person and the difference matters (findings' evidence). NumPy/torch scalars and arrays become plain
numbers and lists, tuples become lists, mapping keys become strings.
"""

from __future__ import annotations

import math
from typing import Any, Literal


def json_safe(value: Any, *, nonfinite: Literal["null", "text"] = "null") -> Any:
    """``value`` as plain JSON types; non-finite floats as None (or ``"inf"``/``"nan"`` with ``"text"``)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v, nonfinite=nonfinite) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, nonfinite=nonfinite) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist(), nonfinite=nonfinite)  # numpy/torch scalars and arrays
    if isinstance(value, float) and not math.isfinite(value):
        return None if nonfinite == "null" else str(value)
    return value


def finite_or_none(value: float) -> float | None:
    """A float, or None when it is NaN or infinite (one scalar of :func:`json_safe`)."""
    return value if math.isfinite(value) else None
