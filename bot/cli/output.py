"""What every command prints the same way: an error and its exit code, one JSON line."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import typer


def fail(message: str, code: int = 1) -> NoReturn:
    """``error: MESSAGE`` on stderr, then exit with ``code``."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def print_json(document: Any) -> None:
    """One JSON document on one line of stdout."""
    json.dump(document, sys.stdout)
    sys.stdout.write("\n")
