"""``python -m bot``: the command line, one module per area; :mod:`bot.cli.main` holds the root app."""

from bot.cli.main import app

__all__ = ["app"]
