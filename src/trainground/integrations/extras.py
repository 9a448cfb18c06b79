"""Optional packages behind the integrations: one clear error, naming the pip command, when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from trainground.errors import ConfigError


def require(module: str, *, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise a :class:`ConfigError` that says how to install it.

    Args:
        module: the import name (``"torch.utils.tensorboard"``, ``"mlflow"``).
        extra: the trainground extra that installs it (``"tensorboard"``, ``"mlflow"``).
        what: what needs it, for the message ("TensorBoard logging").

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        # ``err.name`` is the package actually missing (torch.utils.tensorboard fails on ``tensorboard``).
        missing = err.name or module
        raise ConfigError(
            f"{what} needs the {missing!r} package, which is not installed: "
            f"pip install 'trainground[{extra}]'"
        ) from None
