"""``trainground recipe NAME``: the showcase workflows, one sub-command each.

Each recipe registers itself on :data:`recipe_app` from its own module
(``recipe_<name>.py`` in this package), so that recipes are added without touching
one another; the work itself lives in ``trainground.recipes``.
"""

from __future__ import annotations

import typer

from trainground.cli.app import app

recipe_app = typer.Typer(
    name="recipe",
    help="Showcase recipes: end-to-end workflows on bundled data.",
    no_args_is_help=True,
)
app.add_typer(recipe_app, name="recipe")
