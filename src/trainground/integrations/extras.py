"""Optional packages behind the integrations: one clear error, naming the pip command, when missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from trainground.errors import ConfigError


def require(module: str, *, package: str, extra: str, what: str) -> ModuleType:
    """Import ``module`` or raise a :class:`ConfigError` that says how to install it.

    Args:
        module: the import name (``"torch.utils.tensorboard"``, ``"mlflow.tracking"``).
        package: the distribution that provides it (``"tensorboard"``, ``"mlflow-skinny"``).
        extra: the trainground extra that installs it (``"tensorboard"``, ``"mlflow"``).
        what: what needs it, for the message ("TensorBoard logging").

    Returns:
        The imported module.
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        # err.name is the module actually missing (sqlalchemy under mlflow, tensorboard under torch).
        missing = f" ({err.name} is missing)" if err.name and err.name != module else ""
        raise ConfigError(
            f"{what} needs the optional package {package!r}, which is not installed{missing}: "
            f"pip install 'trainground[{extra}]'"
        ) from None
