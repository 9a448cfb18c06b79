"""Errors a user can fix: bad files, missing columns, bad configs, run directories in the way.

Everything raised as a :class:`TraingroundError` carries one message that names the
file, column or row at fault. The CLI prints that message without a traceback and
exits with status 2; library users catch the class.
"""

from __future__ import annotations


class TraingroundError(Exception):
    """An error caused by the input, not by trainground: the message says what to fix."""


class DataError(TraingroundError):
    """The data cannot be used as given (missing file, bad value, missing column...)."""


class ConfigError(TraingroundError):
    """A configuration value or option is invalid."""


class RunDirError(TraingroundError):
    """A run directory is missing, incomplete, or would be overwritten."""
