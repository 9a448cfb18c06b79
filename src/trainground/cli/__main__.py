"""``python -m trainground.cli``."""

from trainground.cli.app import main

main()
