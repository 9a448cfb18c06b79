"""The ``trainground`` command line: thin wrappers that build configs and call the library.

``app.py`` holds the Typer app, the options several commands share and their helpers; the
commands live by what they do: ``fit.py`` (they train), ``read.py`` (they read a finished
run), ``tools.py`` (range test, search, attributions). Importing this package registers them.
"""

from trainground.cli import fit, read, recipe, recipe_faults, recipe_fusion, recipe_gan, tools  # noqa: F401  (each registers its commands, in help order)
from trainground.cli.app import app, build_run_config, main

__all__ = ["app", "build_run_config", "main"]
